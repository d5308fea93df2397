# As-of queries (issue 22 item 5): the balance and coins of a user as the
# ledger stood at a past instant (processing time), from the entries it
# keeps. Two batches of events with an instant T between them: as of T the
# balances are those of the first batch (computed here from the events, the
# demo hunt: checkin 1, visit 2, purchase 5), as of now those of both, as of
# an instant before both 0; the HTTP API answers the same; bad instants are
# refused with a clear error.
source "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is needed"
cluster_up --shards 2
wait_healthy
KEY=$(cat "$DIR/web.key")
BASE="http://127.0.0.1:$((PORT_BASE + 250))"

gen() {   # PREFIX N SEED
    awk -v p="$1" -v n="$2" -v seed="$3" -v now="$(date +%s%3N)" 'BEGIN {
        srand(seed); split("web mobile game", src, " "); split("checkin visit purchase noop", typ, " ")
        for (i = 0; i < n; i++)
            printf "{\"source\":\"%s\",\"id\":\"%s-%d\",\"user\":\"u%d\",\"type\":\"%s\",\"ts\":%.0f}\n",
                   src[i % 3 + 1], p, i, int(rand() * 30), typ[int(rand() * 4) + 1], now - int(rand() * 60000)
    }'
}
users() { for i in $(seq 0 29); do echo "u$i"; done; }
expected() {   # FILES... -> "user balance" for u0..u29
    { [ $# -gt 0 ] && expected_balances "$@"; users | sed 's/$/ 0/'; } | sort -k1,1 -s | awk '!seen[$1]++' | sort
}
balances_as_of() {   # MS -> "user balance" for u0..u29
    # shellcheck disable=SC2046
    "$TROVECTL" balance --dir "$DIR" --json --as-of "$1" $(users) | jq -r '"\(.user) \(.balance)"' | sort
}

T0=$(date +%s%3N)
sleep 0.05
gen a 400 1 > "$WORK/a.ndjson"
"$TROVECTL" send --dir "$DIR" --json "$WORK/a.ndjson" > "$WORK/a.out"
[ "$(jq -r 'select(.status) | .status' "$WORK/a.out" | grep -c '^accepted$')" -eq 400 ] || fail "batch a not accepted"
sleep 0.05
T1=$(date +%s%3N)
sleep 0.05
gen b 300 2 > "$WORK/b.ndjson"
"$TROVECTL" send --dir "$DIR" --json "$WORK/b.ndjson" > "$WORK/b.out"
[ "$(jq -r 'select(.status) | .status' "$WORK/b.out" | grep -c '^accepted$')" -eq 300 ] || fail "batch b not accepted"
settle

expected "$WORK/a.ndjson" > "$WORK/exp1.txt"
balances_as_of "$T1" > "$WORK/got1.txt"
diff "$WORK/exp1.txt" "$WORK/got1.txt" || fail "balances as of T1 are not those of the first batch"
expected "$WORK/a.ndjson" "$WORK/b.ndjson" > "$WORK/exp2.txt"
balances_as_of "$(( $(date +%s%3N) + 1000 ))" > "$WORK/got2.txt"
diff "$WORK/exp2.txt" "$WORK/got2.txt" || fail "balances as of now are not those of both batches"
# shellcheck disable=SC2046
"$TROVECTL" balance --dir "$DIR" --json $(users) | jq -r '"\(.user) \(.balance)"' | sort > "$WORK/now.txt"
diff "$WORK/exp2.txt" "$WORK/now.txt" || fail "the current balances differ from both batches"
expected > "$WORK/exp0.txt"
balances_as_of "$T0" > "$WORK/got0.txt"
diff "$WORK/exp0.txt" "$WORK/got0.txt" || fail "balances before any event are not 0"
log "balances as of before, between and after the batches: exact for 30 users"

# Coins held at T1: one per scoring event of the first batch for that user.
u=$(awk '$2 > 0 {print $1; exit}' "$WORK/exp1.txt")
want=$(jq -r --arg u "$u" 'select(.user == $u and (.type == "checkin" or .type == "visit" or .type == "purchase")) | .id' "$WORK/a.ndjson" | sort)
got=$("$TROVECTL" coins "$u" --dir "$DIR" --json --limit 0 --as-of "$T1" | jq -r '.events[0].id' | sort)
[ "$want" = "$got" ] || fail "coins of $u as of T1: want the events $(echo $want), got $(echo $got)"
rfc=$(date -u -d "@$((T1 / 1000)).$(printf '%03d' $((T1 % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)
[ "$("$TROVECTL" balance "$u" --dir "$DIR" --as-of "$rfc" | cut -d' ' -f2)" = "$(awk -v u="$u" '$1 == u {print $2}' "$WORK/exp1.txt")" ] \
    || fail "--as-of in RFC 3339 ($rfc) differs from milliseconds"

# The HTTP API: the same answers; bad instants refused.
http_get() { curl -s -o "$WORK/resp" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$BASE$1"; }
code=$(http_get "/v1/users/$u/balance?as_of=$T1")
[ "$code" = 200 ] || fail "GET balance?as_of: HTTP $code $(cat "$WORK/resp")"
[ "$(jq .balance "$WORK/resp")" = "$(awk -v u="$u" '$1 == u {print $2}' "$WORK/exp1.txt")" ] || fail "HTTP as_of balance: $(cat "$WORK/resp")"
[ "$(jq .as_of_ms "$WORK/resp")" = "$T1" ] || fail "HTTP as_of: the answer does not say its instant"
code=$(http_get "/v1/users/$u/coins?as_of=$T1&limit=1000")
[ "$code" = 200 ] || fail "GET coins?as_of: HTTP $code"
[ "$(jq '.coins | length' "$WORK/resp")" -eq "$(echo "$want" | grep -c .)" ] || fail "HTTP as_of coins: $(head -c 300 "$WORK/resp")"
for bad in yesterday 0 -5 2026-13-01T00:00:00Z 99999999999999999999; do
    code=$(http_get "/v1/users/$u/balance?as_of=$bad")
    [ "$code" = 400 ] && grep -q "as_of" "$WORK/resp" || fail "as_of=$bad: HTTP $code $(cat "$WORK/resp")"
done
code=$(http_get "/v1/users/$u/coins?as_of=$T1&cursor=5")
[ "$code" = 400 ] || fail "as_of with a cursor: HTTP $code"
code=$(http_get "/v1/users/$u/progress?as_of=$T1")
[ "$code" = 400 ] || fail "as_of on progress: HTTP $code"
if "$TROVECTL" balance "$u" --dir "$DIR" --as-of yesterday 2> "$WORK/bad.err"; then fail "--as-of yesterday accepted"; fi
grep -q "RFC 3339" "$WORK/bad.err" || fail "unclear error: $(cat "$WORK/bad.err")"
log "HTTP as_of answers the same; bad instants refused"
cluster_down_checked
