# HTTP ingest (POST /v1/events on the ingestor) against a real cluster: every
# refusal of docs/security.md with its exact status code, and after each one
# the ledger unchanged (events stored, balances); then what is accepted is
# durable and scored once. Also: the ingestor refuses a config that exposes
# an unauthenticated endpoint, and a key hash that is not one.
source "$(dirname "$0")/lib.sh"
INGESTOR="$BUILD/trove-ingestor"
command -v curl >/dev/null || fail "curl is needed"

new_key() { "$INGESTOR" --new-key | awk -v f="$1" '$1 == f {print $3}'; }
KEY_A=$(new_key key)
KEY_B="trk_rotation_second_key_0123456789"
KEY_P="trk_partner_key_abcdefghijklmnopq"
HASH_A=$(echo "$KEY_A" | "$INGESTOR" --hash-key)
HASH_B=$(echo "$KEY_B" | "$INGESTOR" --hash-key)
HASH_P=$(echo "$KEY_P" | "$INGESTOR" --hash-key)
[[ "$HASH_A" =~ ^blake2b:[0-9a-f]{64}$ ]] || fail "bad hash '$HASH_A'"
P=$PORT_BASE
HTTP_PORT=$((P + 250))
URL="http://127.0.0.1:$HTTP_PORT/v1/events"

write_config() {   # write_config FILE INGESTOR_ENDPOINT EXTRA_TROVE_LINE WEB_KEYS
    cat >"$1" <<CFG
trove
    partitions = 256
    rules = "$DIR/rules"
    sync = full
$3
limits
    max_batch = 50
    max_frame = 1048576
    max_body = 65536
    max_event = 2048
    user_rate = 0.001
    user_burst = 6
sources
    web
        keys = "$4"
        types = "checkin,visit,purchase"
        max_past_s = 86400
        rate = 0.001
        burst = 1000
    partner
        keys = "$HASH_P"
        rate = 0.001
        burst = 3
    load
broker
    pub = "tcp://127.0.0.1:$((P + 1))"
    sub = "tcp://127.0.0.1:$((P + 2))"
    control = "tcp://127.0.0.1:$((P + 3))"
ingestor
    i0
        endpoint = "$2"
        metrics = "127.0.0.1:$((P + 210))"
        http = "127.0.0.1:$HTTP_PORT"
        http_threads = 2
scorer
    s0
        events = "tcp://127.0.0.1:$((P + 20))"
        query = "tcp://127.0.0.1:$((P + 21))"
        partitions = "0-127"
        data = "$DIR/data/s0"
    s1
        events = "tcp://127.0.0.1:$((P + 22))"
        query = "tcp://127.0.0.1:$((P + 23))"
        partitions = "128-255"
        data = "$DIR/data/s1"
CFG
}

# --- hardening: refused configs (the ingestor alone, no cluster needed) ----
mkdir -p "$DIR"
write_config "$WORK/exposed.cfg" "tcp://0.0.0.0:$((P + 10))" "" "$HASH_A"
if "$INGESTOR" --config "$WORK/exposed.cfg" --name i0 2>"$WORK/exposed.log"; then
    fail "the ingestor started with an unauthenticated endpoint on 0.0.0.0"
fi
grep -q "reachable from other hosts" "$WORK/exposed.log" || fail "no clear refusal: $(cat "$WORK/exposed.log")"
write_config "$WORK/badhash.cfg" "tcp://127.0.0.1:$((P + 10))" "" "$KEY_A"
if "$INGESTOR" --config "$WORK/badhash.cfg" --name i0 2>"$WORK/badhash.log"; then
    fail "the ingestor started with a key (not a hash) in the config"
fi
grep -q "must be 'blake2b:'" "$WORK/badhash.log" || fail "no clear refusal: $(cat "$WORK/badhash.log")"
grep -qF "$KEY_A" "$WORK/badhash.log" && fail "the refusal logged the secret"
log "refused: exposed endpoint, key instead of hash (secret not logged)"

# --- the cluster ------------------------------------------------------------
write_config "$DIR/trove.cfg" "tcp://127.0.0.1:$((P + 10))" "" "$HASH_A $HASH_B"
cluster_up
wait_healthy
DL="$DIR/deadletter/i0.ndjson"
[ "$(stat -c %a "$DL")" = 600 ] || fail "dead-letter file mode $(stat -c %a "$DL"), want 600"
[ "$(stat -c %a "$DIR/deadletter")" = 700 ] || fail "dead-letter dir mode $(stat -c %a "$DIR/deadletter")"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
OLD=$(date -u -d '2 days ago' +%Y-%m-%dT%H:%M:%SZ)
ev() { printf '{"id":"%s","user":"%s","type":"%s","ts":"%s"%s}' "$1" "$2" "${3:-checkin}" "${4:-$NOW}" "${5:-}"; }

# post KEY FILE [curl args...]: sets CODE, body in $WORK/resp, headers in $WORK/hdr
post() {
    local key=$1 file=$2
    shift 2
    local auth=()
    [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
    CODE=$(curl -s -o "$WORK/resp" -D "$WORK/hdr" -w '%{http_code}' -X POST "$URL" "${auth[@]}" \
        --data-binary "@$file" "$@") || fail "curl failed"
}
expect() {   # expect CODE what
    [ "$CODE" = "$1" ] || fail "$2: HTTP $CODE, want $1: $(head -c 400 "$WORK/resp")"
}
stored() {   # events stored in every shard, summed
    stored_events
}
balances() { "$TROVECTL" balance --dir "$DIR" u1 u2 u3 u4 p1 | tr '\n' ' '; }
unchanged() {   # unchanged WHAT: the ledger is as it was
    local s b
    s=$(stored)
    b=$(balances)
    [ "$s" = "$STORED" ] || fail "$1 changed the ledger: $s events stored, was $STORED"
    [ "$b" = "$BALANCES" ] || fail "$1 changed balances: $b, was $BALANCES"
}
snapshot() { STORED=$(stored); BALANCES=$(balances); }

snapshot
[ "$STORED" = 0 ] || fail "a new cluster holds $STORED events"

# 401: no key, wrong key, wrong scheme, a hash in place of the key.
ev a1 u1 >"$WORK/one.json"
post "" "$WORK/one.json"; expect 401 "no key"
grep -qi '^WWW-Authenticate: Bearer' "$WORK/hdr" || fail "401 without WWW-Authenticate"
post "trk_not_a_key_of_anybody_000000" "$WORK/one.json"; expect 401 "wrong key"
post "$HASH_A" "$WORK/one.json"; expect 401 "the hash as a key"
CODE=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST "$URL" -H "Authorization: Basic $KEY_A" \
    --data-binary "@$WORK/one.json"); expect 401 "Basic scheme"
jq -e '.error == "unauthorized"' "$WORK/resp" >/dev/null || fail "401 body: $(cat "$WORK/resp")"
unchanged "401 answers"

# 400 / 404 / 405: routing answers only to a valid key (401 before routing).
printf '[{"id":"x1","user":"u1"' >"$WORK/bad.json"
post "$KEY_A" "$WORK/bad.json"; expect 400 "truncated array"
jq -e '.error == "bad_json"' "$WORK/resp" >/dev/null || fail "400 body: $(cat "$WORK/resp")"
printf '  \n\n' >"$WORK/empty.json"
post "$KEY_A" "$WORK/empty.json"; expect 400 "empty body"
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$URL"); expect 401 "GET /v1/events without a key"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY_A" "$URL"); expect 405 "GET /v1/events"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/v1/nope" -d x); expect 401 "unknown path without a key"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$URL"); expect 401 "OPTIONS without a key"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY_A" -X POST "http://127.0.0.1:$HTTP_PORT/v1/nope" -d x); expect 404 "unknown path"
unchanged "400/404/405 answers"

# 413: body over max_body (with Content-Length, then chunked), an event over
# max_event, more than max_batch events, a user's events over its burst.
head -c 70000 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
post "$KEY_A" "$WORK/big.json"; expect 413 "body over max_body"
jq -e '.error == "body_too_large"' "$WORK/resp" >/dev/null || fail "413 body: $(cat "$WORK/resp")"
post "$KEY_A" "$WORK/big.json" -H "Transfer-Encoding: chunked"; expect 413 "chunked body over max_body"
ev big1 u1 checkin "$NOW" ",\"attrs\":{\"a\":\"$(head -c 2100 /dev/zero | tr '\0' x)\"}" >"$WORK/bigev.json"
post "$KEY_A" "$WORK/bigev.json"; expect 413 "event over max_event"
jq -e '.error == "event_too_large"' "$WORK/resp" >/dev/null || fail "413 body: $(cat "$WORK/resp")"
for i in $(seq 1 51); do ev "m$i" "u$((i % 4 + 1))"; echo; done >"$WORK/many.ndjson"
post "$KEY_A" "$WORK/many.ndjson"; expect 413 "51 events, max_batch 50"
jq -e '.error == "too_many_events"' "$WORK/resp" >/dev/null || fail "413 body: $(cat "$WORK/resp")"
for i in $(seq 1 7); do ev "o$i" u3; echo; done >"$WORK/over.ndjson"
post "$KEY_A" "$WORK/over.ndjson"; expect 413 "7 events of one user, burst 6"
jq -e '.error == "over_burst"' "$WORK/resp" >/dev/null || fail "413 body: $(cat "$WORK/resp")"
unchanged "413 answers"

# Accepted: a JSON array with the first key; every refusal inside it is per
# event (another source's name, a type the source may not send, backdated).
{
    echo '['
    ev a1 u1 checkin; echo ','
    ev a2 u2 purchase; echo ','
    printf '{"source":"partner","id":"a3","user":"p1","type":"checkin","ts":"%s"},' "$NOW"
    ev a4 u1 hack; echo ','
    ev a5 u1 visit "$OLD"; echo ','
    echo '"not an object"]'
} >"$WORK/batch.json"
post "$KEY_A" "$WORK/batch.json"; expect 200 "mixed batch"
jq -e '[.results[] | .status + ":" + (.reason // "")] ==
       ["accepted:", "accepted:", "rejected:source_mismatch", "rejected:type_not_allowed", "rejected:bad_ts", "rejected:bad_json"]
       and .accepted == 2 and .rejected == 4' "$WORK/resp" >/dev/null || fail "mixed batch: $(cat "$WORK/resp")"
[ "$(stored)" = 2 ] || fail "$(stored) events stored, want 2"
[ "$("$TROVECTL" balance --dir "$DIR" u1 u2 p1 | tr '\n' ' ')" = "u1 1 u2 5 p1 0 " ] ||
    fail "balances after the batch: $("$TROVECTL" balance --dir "$DIR" u1 u2 p1 | tr '\n' ' ')"

# NDJSON with the second key (rotation: both keys valid), a duplicate.
{ ev a1 u1; echo; echo; ev b1 u4 visit; echo; } >"$WORK/nd.ndjson"
post "$KEY_B" "$WORK/nd.ndjson"; expect 200 "ndjson, second key"
jq -e '[.results[].status] == ["duplicate", "accepted"]' "$WORK/resp" >/dev/null || fail "ndjson: $(cat "$WORK/resp")"

# Idempotency-Key: a resend of the same events with the same key is `accepted`.
ev c1 u2 visit >"$WORK/idem.json"
post "$KEY_A" "$WORK/idem.json" -H "Idempotency-Key: order-42"; expect 200 "idempotent first"
post "$KEY_A" "$WORK/idem.json" -H "Idempotency-Key: order-42"; expect 200 "idempotent resend"
jq -e '.results[0].status == "accepted"' "$WORK/resp" >/dev/null || fail "resend with the key: $(cat "$WORK/resp")"
post "$KEY_A" "$WORK/idem.json"; expect 200 "resend without the key"
jq -e '.results[0].status == "duplicate"' "$WORK/resp" >/dev/null || fail "resend without key: $(cat "$WORK/resp")"
[ "$(stored)" = 4 ] || fail "$(stored) events stored, want 4"

# 429: user u3 has burst 6 (rate 0.001/s); 5 pass, 2 more do not.
for i in 1 2 3 4 5; do ev "r$i" u3; echo; done >"$WORK/five.ndjson"
post "$KEY_A" "$WORK/five.ndjson"; expect 200 "5 events of u3"
snapshot
{ ev r6 u3; echo; ev r7 u3; echo; } >"$WORK/two.ndjson"
post "$KEY_A" "$WORK/two.ndjson"; expect 429 "u3 over its rate"
AFTER=$(awk -F': ' 'tolower($1) == "retry-after" {print $2+0}' "$WORK/hdr")
[ -n "$AFTER" ] && [ "$AFTER" -ge 1 ] || fail "429 without Retry-After: $(cat "$WORK/hdr")"
jq -e '.error == "rate_limited" and .scope == "user" and .retry_after_s >= 1' "$WORK/resp" >/dev/null ||
    fail "429 body: $(cat "$WORK/resp")"
unchanged "429 (user)"
# 429: source partner has burst 3.
printf '{"id":"p1","user":"p1","type":"checkin","ts":"%s"}\n{"id":"p2","user":"p1","type":"checkin","ts":"%s"}\n' \
    "$NOW" "$NOW" >"$WORK/p.ndjson"
post "$KEY_P" "$WORK/p.ndjson"; expect 200 "partner 2 events"
snapshot
post "$KEY_P" "$WORK/p.ndjson"; expect 429 "partner over its source rate"
jq -e '.scope == "source"' "$WORK/resp" >/dev/null || fail "429 body: $(cat "$WORK/resp")"
grep -qi '^Retry-After: [1-9]' "$WORK/hdr" || fail "429 without Retry-After"
unchanged "429 (source)"

# Rotation without downtime: the config keeps only key B, SIGHUP; key A is
# refused from then on (by POST /v1/events and the GET query API), key B
# goes on, nothing restarted. (An empty body
# tells the two apart without submitting: 401 before 400.)
write_config "$DIR/trove.cfg" "tcp://127.0.0.1:$((P + 10))" "" "$HASH_B"
I0=$(cat "$DIR/pids/i0.pid")
kill -HUP "$I0"
deadline=$((SECONDS + 10))
while post "$KEY_A" "$WORK/empty.json"; [ "$CODE" != 401 ]; do
    [ "$CODE" = 400 ] || fail "during the reload: HTTP $CODE"
    [ $SECONDS -lt $deadline ] || fail "key A still valid 10 s after SIGHUP"
    sleep 0.1
done
post "$KEY_B" "$WORK/empty.json"; expect 400 "key B after the reload"
post "$KEY_B" "$WORK/nd.ndjson"; expect 200 "key B after the reload"
# The query API on the same listener follows the reload too.
query() {   # query KEY PATH: sets CODE, body in $WORK/resp
    CODE=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "Authorization: Bearer $1" \
        "http://127.0.0.1:$HTTP_PORT$2") || fail "curl failed"
}
query "$KEY_A" /v1/users/u2/balance; expect 401 "query with key A after the reload"
query "$KEY_B" /v1/users/u2/balance; expect 200 "query with key B after the reload"
[ "$(cat "$WORK/resp")" = "$("$TROVECTL" balance --dir "$DIR" --json u2)" ] ||
    fail "balance over HTTP: $(cat "$WORK/resp")"
[ "$(cat "$DIR/pids/i0.pid")" = "$I0" ] || fail "the ingestor restarted"
grep -q "sources reloaded" "$DIR/logs/i0.log" || fail "no reload in the log"
# A reload that would remove a source is refused; key B still works.
sed -i 's/^    partner$/    partnerx/' "$DIR/trove.cfg"
kill -HUP "$I0"
deadline=$((SECONDS + 10))
until grep -q "reload refused" "$DIR/logs/i0.log"; do
    [ $SECONDS -lt $deadline ] || fail "no refused reload in the log"
    sleep 0.1
done
post "$KEY_B" "$WORK/empty.json"; expect 400 "key B after a refused reload"
query "$KEY_B" /v1/users/u2/balance; expect 200 "query with key B after a refused reload"
log "key rotation by SIGHUP: old key 401, new key served, no restart"

# Exact end state: 11 events, balances from the demo hunt (checkin 1, visit 2, purchase 5).
[ "$(stored)" = 11 ] || fail "$(stored) events stored, want 11"
[ "$(balances)" = "u1 1 u2 7 u3 5 u4 2 p1 2 " ] || fail "final balances: $(balances)"
curl -s "http://127.0.0.1:$((P + 210))/metrics" >"$WORK/metrics"
for c in 200 400 401 413 429; do
    grep -q "^trove_ingestor_http_requests_total{code=\"$c\"} [1-9]" "$WORK/metrics" || fail "no $c in metrics"
done
for r in unauthorized not_found method_not_allowed body_too_large event_too_large too_many_events over_burst rate_limited; do
    grep -q "^trove_ingestor_http_refused_total{reason=\"$r\"} [1-9]" "$WORK/metrics" || fail "no refusal $r in metrics"
done
grep -qF "$KEY_A" "$DIR"/logs/*.log && fail "a key was logged"
log "http ingest: 401/400/404/405/413/429 refused with nothing written; 11 events accepted exactly"
cluster_down_checked
