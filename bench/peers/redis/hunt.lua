--  bench/peers/redis/hunt.lua - Trove's demo hunt as one Redis Lua script,
--  run once per batch of events (EVALSHA) by bench-redis-peer's consumer.
--
--  KEYS[1]  the events stream (the consumer read the batch from it)
--  KEYS[2]  the ledger stream (one entry per accepted event)
--  ARGV[1]  the consumer group, whose pending entries this batch acknowledges
--  ARGV[2]  the hunt's name (part of every coin id)
--  ARGV[3..] six per event: stream entry id, source, id, user, type, ts (ms)
--
--  Per event, what Trove's scorer does with it (README.md, "Delivery
--  semantics"; docs/architecture.md, "Coin ids"):
--    dedup     SET dedup:<source>\0<id> "<user>\0<type>\0<ts>" NX. Taken
--              already: the same content is a duplicate, other content is
--              Trove's `rejected id_conflict`; neither changes anything else.
--    state     HINCRBY state:<user> <rule> 1: the rule's per-user state
--              (an `each` rule without caps keeps a count).
--    coin      one per matching rule of etc/rules/demo.yaml (each rule:
--              checkin 1, visit 2, purchase 5). Its id is derived as Trove's
--              is, from hunt, rule, user and the earning event (SHA-1 here:
--              Redis has no BLAKE2b), never from arrival order:
--              HSET coin:<id> user rule value event ts, and the user's coin
--              index RPUSH coins:<user> <id> (Trove's `coins USER`).
--    balance   INCRBY balance:<user> <value>
--    ledger    XADD <KEYS[2]> * source id user type ts coin: the event log.
--  Then XACK of every entry of the batch, duplicates and rejections included
--  (they have their final answer).
--
--  Returns {accepted, duplicate, rejected}.
--
--  Durability: redis.conf has `appendfsync always`. Redis writes every
--  command this script ran (wrapped in MULTI/EXEC) to the AOF and fsyncs it
--  before it sends any reply of that event-loop turn, so when the EVALSHA
--  reply arrives, the whole batch is on disk: the reply is the durable
--  answer, as Trove's `accepted` is.

local rules = {
    checkin = {'checkin', 1},
    visit = {'visit', 2},
    purchase = {'purchase', 5},
}

local stream, ledger = KEYS[1], KEYS[2]
local group, hunt = ARGV[1], ARGV[2]
local accepted, duplicate, rejected = 0, 0, 0
local acks = {}

for i = 3, #ARGV - 5, 6 do
    local entry, source, id, user, etype, ts =
        ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    acks[#acks + 1] = entry
    local dedup = 'dedup:' .. source .. '\0' .. id
    local content = user .. '\0' .. etype .. '\0' .. ts
    if redis.call('SET', dedup, content, 'NX') then
        accepted = accepted + 1
        local coin = ''
        local rule = rules[etype]
        if rule then
            redis.call('HINCRBY', 'state:' .. user, rule[1], 1)
            coin = redis.sha1hex('trove-coin-v1\0' .. hunt .. '\0' .. rule[1] .. '\0' .. user .. '\0'
                                 .. source .. '\0' .. id)
            redis.call('HSET', 'coin:' .. coin, 'user', user, 'rule', rule[1], 'value', rule[2],
                       'event', source .. '\0' .. id, 'ts', ts)
            redis.call('RPUSH', 'coins:' .. user, coin)
            redis.call('INCRBY', 'balance:' .. user, rule[2])
        end
        redis.call('XADD', ledger, '*', 'source', source, 'id', id, 'user', user, 'type', etype,
                   'ts', ts, 'coin', coin)
    elseif redis.call('GET', dedup) == content then
        duplicate = duplicate + 1
    else
        rejected = rejected + 1
    end
end

--  unpack() puts every id on Lua's C stack (at most ~8000): acknowledge in
--  slices.
for first = 1, #acks, 1000 do
    redis.call('XACK', stream, group, unpack(acks, first, math.min(first + 999, #acks)))
end
return {accepted, duplicate, rejected}
