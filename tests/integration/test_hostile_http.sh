# Hostile HTTP (issue 18): the back doors a probe of the HTTP listener found,
# each against a real cluster, with exact status codes and the ledger
# (events stored, balances) unchanged after every refusal:
#   - request smuggling: both framing headers, two Content-Length (equal or
#     not), a negative or non-numeric one, a Transfer-Encoding other than
#     chunked, HTTP/1.1 without Host: 400 with a JSON error, the connection
#     closed, the bytes after it never run as a request;
#   - slowloris: a slow head meets the head deadline (408); 500 slow
#     connections from 127.0.0.2 while 127.0.0.1 sends normal requests: at
#     least 99% of those succeed; the slow ones meet the per-client cap;
#     counted, and logged as a summary, not one line each;
#   - limits in order: 40 rejected events of a user cost it no token;
#   - key scopes: 403 without the scope, read keys apart from write keys, a
#     read rate limit, other sources' event ids and attrs hidden;
#   - Idempotency-Key bound to the body: 422 idempotency_mismatch;
#   - 401 before routing for the query API too, counted;
#   - user ids with bidirectional controls: rejected invisible_char;
#   - `trovectl up` makes its folders 0700 and its files 0600.
source "$(dirname "$0")/lib.sh"
INGESTOR="$BUILD/trove-ingestor"
SLOWLORIS="$BUILD/tests/slowloris"
command -v curl >/dev/null || fail "curl is needed"
[ -x "$SLOWLORIS" ] || fail "no $SLOWLORIS (built with the tests)"

# --- trovectl up's files ----------------------------------------------------
"$TROVECTL" up --dir "$WORK/modes" --port-base "$PORT_BASE" --detach >/dev/null || fail "trovectl up (modes) failed"
"$TROVECTL" down --dir "$WORK/modes" >/dev/null || fail "trovectl down (modes) failed"
for d in "" /logs /pids /rules /data; do
    m=$(stat -c %a "$WORK/modes$d")
    [ "$m" = 700 ] || fail "trovectl up made $WORK/modes$d mode $m, want 700"
done
for f in "$WORK/modes/trove.cfg" "$WORK/modes/web.key" "$WORK"/modes/logs/*.log "$WORK"/modes/rules/*.yaml; do
    m=$(stat -c %a "$f")
    [ "$m" = 600 ] || fail "trovectl up made $f mode $m, want 600"
done
log "trovectl up: folders 0700, config, key, hunts and logs 0600"

# --- the cluster -------------------------------------------------------------
new_key() { "$INGESTOR" --new-key | awk '$1 == "key" {print $3}'; }
hash_of() { echo "$1" | "$INGESTOR" --hash-key; }
KEY_WW=$(new_key)     # web, events:write
KEY_WR=$(new_key)     # web, users:read
KEY_WB=$(new_key)     # web, boards:read
KEY_M=$(new_key)      # mobile, no scopes (as before scopes)
KEY_ADMIN=$(new_key)  # partner, admin
KEY_L=$(new_key)      # load, users:read (the normal requests during the slowloris)
P=$PORT_BASE
HTTP_PORT=$((P + 250))
BASE="http://127.0.0.1:$HTTP_PORT"
cat >"$DIR.cfg" <<CFG
trove
    partitions = 256
    rules = "$DIR/rules"
    sync = full
limits
    user_rate = 0.001
    user_burst = 10
    http_max_per_client = 32
    http_header_timeout_s = 3
sources
    web
        keys = "$(hash_of "$KEY_WW")=events:write $(hash_of "$KEY_WR")=users:read $(hash_of "$KEY_WB")=boards:read"
        types = "checkin,visit"
    mobile
        keys = "$(hash_of "$KEY_M")"
        read_rate = 0.001
        read_burst = 3
    partner
        keys = "$(hash_of "$KEY_ADMIN")=admin"
    load
        keys = "$(hash_of "$KEY_L")=users:read"
        read_rate = 1000000
        read_burst = 1000000
broker
    pub = "tcp://127.0.0.1:$((P + 1))"
    sub = "tcp://127.0.0.1:$((P + 2))"
    control = "tcp://127.0.0.1:$((P + 3))"
ingestor
    i0
        endpoint = "tcp://127.0.0.1:$((P + 10))"
        metrics = "127.0.0.1:$((P + 210))"
        http = "127.0.0.1:$HTTP_PORT"
        http_threads = 4
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
mkdir -p "$DIR"
mv "$DIR.cfg" "$DIR/trove.cfg"
cluster_up
wait_healthy
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/events")" = 401 ]; do
    [ $SECONDS -lt $deadline ] || fail "no HTTP listener on $BASE"
    sleep 0.2
done
grep -q "source keys have no scopes" "$DIR/logs/i0.log" || fail "no warning about the key without scopes"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ev() { printf '{"id":"%s","user":"%s","type":"%s","ts":"%s"%s}' "$1" "$2" "${3:-checkin}" "${4:-$NOW}" "${5:-}"; }
stored() { stored_events; }
USERS="smug victim shared idem u1"
balances() { "$TROVECTL" balance --dir "$DIR" $USERS | tr '\n' ' '; }
snapshot() { STORED=$(stored); BALANCES=$(balances); }
unchanged() {
    local s b
    s=$(stored)
    b=$(balances)
    [ "$s" = "$STORED" ] || fail "$1 changed the ledger: $s events stored, was $STORED"
    [ "$b" = "$BALANCES" ] || fail "$1 changed balances: $b, was $BALANCES"
}
# http METHOD PATH KEY [curl args]: CODE, body in $WORK/resp, headers in $WORK/hdr
http() {
    local method=$1 path=$2 key=$3
    shift 3
    local auth=()
    [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
    CODE=$(curl -s -o "$WORK/resp" -D "$WORK/hdr" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$BASE$path") ||
        fail "curl $method $path failed"
}
expect() {   # expect CODE [ERROR] WHAT
    local code=$1 error=${2:-}
    [ "$CODE" = "$code" ] || fail "$3: HTTP $CODE, want $code: $(head -c 400 "$WORK/resp")"
    if [ -n "$error" ]; then
        jq -e --arg e "$error" '.error == $e' "$WORK/resp" >/dev/null || fail "$3: $(cat "$WORK/resp"), want $error"
    fi
}
metric() {   # metric REASON: trove_ingestor_http_refused_total{reason}
    curl -s "http://127.0.0.1:$((P + 210))/metrics" |
        awk -v r="trove_ingestor_http_refused_total{reason=\"$1\"}" '$1 == r {print $2}'
}
snapshot
[ "$STORED" = 0 ] || fail "a new cluster holds $STORED events"

# --- 1. request smuggling -------------------------------------------------------
# raw FILE: the bytes of FILE on a new connection; the answer in $WORK/raw.out;
# CLOSED=1 when the server closed the connection within 5 s.
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT"
    cat "$1" >&3
    if timeout 5 cat <&3 >"$WORK/raw.out"; then CLOSED=1; else CLOSED=0; fi
    exec 3<&- 3>&-
}
SMUGGLED=$(ev smuggled smug checkin)
SECOND="POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY_WW\r\nContent-Length: ${#SMUGGLED}\r\n\r\n$SMUGGLED"
AUTH="Authorization: Bearer $KEY_WW"
case_no=0
smuggle() {   # smuggle ERROR HEADERS BODY: a POST with HEADERS and BODY, then a second request
    case_no=$((case_no + 1))
    printf "POST /v1/events HTTP/1.1\r\n$2\r\n\r\n%b$SECOND" "$3" >"$WORK/raw.in"
    raw "$WORK/raw.in"
    local answers
    answers=$(grep -o 'HTTP/1.1 [1-5][0-9][0-9] ' "$WORK/raw.out" | wc -l)
    head -1 "$WORK/raw.out" | grep -q '^HTTP/1.1 400 ' || fail "smuggling case $case_no: $(head -c 300 "$WORK/raw.out")"
    [ "$answers" = 1 ] || fail "smuggling case $case_no: $answers answers: $(cat "$WORK/raw.out")"
    [ "$CLOSED" = 1 ] || fail "smuggling case $case_no: the connection stayed open"
    sed '1,/^\r$/d' "$WORK/raw.out" | jq -e --arg e "$1" '.error == $e and (.detail | length) > 0' >/dev/null ||
        fail "smuggling case $case_no: $(cat "$WORK/raw.out"), want error $1"
}
ONE=$(ev s1 smug)
smuggle ambiguous_length "Host: x\r\n$AUTH\r\nContent-Length: 5\r\nTransfer-Encoding: chunked" "0\r\n\r\n"
smuggle ambiguous_length "Host: x\r\n$AUTH\r\nTransfer-Encoding: chunked\r\nContent-Length: 5" "0\r\n\r\n"
smuggle ambiguous_length "Host: x\r\n$AUTH\r\nContent-Length: ${#ONE}\r\nContent-Length: ${#ONE}" "$ONE"
smuggle ambiguous_length "Host: x\r\n$AUTH\r\nContent-Length: ${#ONE}\r\nContent-Length: 999" "$ONE"
smuggle bad_content_length "Host: x\r\n$AUTH\r\nContent-Length: -1" "$ONE"
smuggle bad_content_length "Host: x\r\n$AUTH\r\nContent-Length: 12abc" "$ONE"
smuggle bad_transfer_encoding "Host: x\r\n$AUTH\r\nTransfer-Encoding: gzip, chunked" "0\r\n\r\n"
smuggle bad_transfer_encoding "Host: x\r\n$AUTH\r\nTransfer-Encoding: identity" "$ONE"
smuggle missing_host "$AUTH\r\nContent-Length: ${#ONE}" "$ONE"
smuggle bad_header "Host: x\r\n$AUTH\r\nContent-Length : ${#ONE}" "$ONE"
unchanged "request smuggling"
# A kept-alive connection: one good request, then one with two lengths.
GOOD=$(ev k1 u1)
printf "POST /v1/events HTTP/1.1\r\nHost: x\r\n$AUTH\r\nContent-Length: ${#GOOD}\r\n\r\n%sPOST /v1/events HTTP/1.1\r\nHost: x\r\n$AUTH\r\nContent-Length: ${#ONE}\r\nContent-Length: 1\r\n\r\n%s$SECOND" \
    "$GOOD" "$ONE" >"$WORK/raw.in"
raw "$WORK/raw.in"
# (an answer's body has no final newline: the next status line follows it)
[ "$(grep -o 'HTTP/1.1 [1-5][0-9][0-9] ' "$WORK/raw.out" | tr '\n' ' ')" = "HTTP/1.1 200  HTTP/1.1 400  " ] &&
    grep -q ambiguous_length "$WORK/raw.out" || fail "kept-alive: $(cat "$WORK/raw.out")"
[ "$CLOSED" = 1 ] || fail "kept-alive: the connection stayed open after the refusal"
[ "$(stored)" = $((STORED + 1)) ] || fail "kept-alive: $(stored) events stored, want $((STORED + 1)) (the good one)"
[ "$("$TROVECTL" balance --dir "$DIR" smug)" = "smug 0" ] || fail "a smuggled event was scored"
snapshot
for r in ambiguous_length bad_content_length bad_transfer_encoding missing_host bad_header; do
    [ "$(metric $r)" -ge 1 ] || fail "refusal $r not counted"
done
log "smuggling: 10 framings refused 400 (JSON, connection closed), nothing after them ran"

# --- 2. slowloris ------------------------------------------------------------------
# One slow head alone meets the head deadline (3 s here): 408, closed.
exec 4<>"/dev/tcp/127.0.0.1/$HTTP_PORT"
printf 'GET /v1/users/u1/balance HTTP/1.1\r\nHost: x\r\n' >&4
timeout 10 cat <&4 >"$WORK/slow1.out" || fail "a slow head was not closed within 10 s"
exec 4<&- 4>&-
head -1 "$WORK/slow1.out" | grep -q '^HTTP/1.1 408 ' && grep -q header_timeout "$WORK/slow1.out" ||
    fail "slow head: $(cat "$WORK/slow1.out")"
[ "$(metric header_timeout)" = 1 ] || fail "header_timeout counted $(metric header_timeout), want 1"
"$SLOWLORIS" --port "$HTTP_PORT" --from 127.0.0.2 --conns 500 --seconds 25 >"$WORK/slow.out" &
SLOW_PID=$!
deadline=$((SECONDS + 15))
until [ "$(metric per_client_cap)" -ge 100 ]; do
    [ $SECONDS -lt $deadline ] || fail "the slow client was never capped (per_client_cap $(metric per_client_cap))"
    sleep 0.2
done
ok=0
total=300
for i in $(seq 1 $total); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $KEY_L" \
        "$BASE/v1/users/u$((i % 7))/balance" || true)
    [ "$code" = 200 ] && ok=$((ok + 1))
done
# The attacker's own address: its quick requests may take the place of its
# slowest heads (measured, not asserted: the attacker churns the same slots).
same=0
for i in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.2 \
        -H "Authorization: Bearer $KEY_L" "$BASE/v1/users/u$((i % 7))/balance" || true)
    [ "$code" = 200 ] && same=$((same + 1))
done
wait "$SLOW_PID" || fail "slowloris failed"
log "slowloris: $ok of $total normal requests answered 200 during the attack ($same of 50 from the attacker's own address); attacker: $(cat "$WORK/slow.out")"
[ $((ok * 100)) -ge $((total * 99)) ] || fail "only $ok of $total normal requests succeeded during the slowloris"
# The attacker's slow heads were closed: over its cap at once, or later to
# make room (its oldest first), or at the head deadline.
closed=$(sed -n 's/.* closed=\([0-9]*\).*/\1/p' "$WORK/slow.out")
[ "${closed:-0}" -ge 32 ] || fail "the attacker's held connections were never closed: $(cat "$WORK/slow.out")"
# Thousands of dropped connections, a handful of log lines.
drops=$(($(metric per_client_cap) + $(metric header_timeout)))
lines=$(grep -c "WARN.*http:" "$DIR/logs/i0.log" || true)
[ "$lines" -le 5 ] || fail "$lines log lines for $drops dropped connections: $(grep "http:" "$DIR/logs/i0.log" | head)"
# The summary comes at the end of the minute the drops fell in.
deadline=$((SECONDS + 75))
until grep "connections dropped or refused in the last minute" "$DIR/logs/i0.log" | grep -q per_client_cap; do
    [ $SECONDS -lt $deadline ] || fail "no summary naming the cap in the ingestor's log: $(grep "http:" "$DIR/logs/i0.log")"
    sleep 1
done
unchanged "the slowloris"
log "slowloris: capped, $drops drops counted, $lines log lines and a summary"

# --- 3. limits in order: rejected events cost the user nothing ----------------------
# web may send checkin and visit only; 4 requests x 10 purchases of user
# victim (its burst is 10) are rejected, then mobile's 10 valid events pass.
for r in 1 2 3 4; do
    for i in $(seq 1 10); do ev "bad-$r-$i" victim purchase; echo; done >"$WORK/bad.ndjson"
    http POST /v1/events "$KEY_WW" --data-binary "@$WORK/bad.ndjson"
    expect 200 "" "rejected batch $r"
    jq -e '.rejected == 10 and ([.results[].reason] | unique) == ["type_not_allowed"]' "$WORK/resp" >/dev/null ||
        fail "rejected batch $r: $(cat "$WORK/resp")"
done
unchanged "rejected events"
for i in $(seq 1 10); do ev "m-$i" victim visit; echo; done >"$WORK/good.ndjson"
http POST /v1/events "$KEY_M" --data-binary "@$WORK/good.ndjson"
expect 200 "" "the victim's valid events"
jq -e '.accepted == 10' "$WORK/resp" >/dev/null || fail "victim: $(cat "$WORK/resp")"
[ "$("$TROVECTL" balance --dir "$DIR" victim)" = "victim 20" ] || fail "victim: $("$TROVECTL" balance --dir "$DIR" victim)"
snapshot
log "limits in order: 40 rejected events took no token of their user"

# --- 4. key scopes ----------------------------------------------------------------------
ev w-secret shared checkin "$NOW" ',"attrs":{"zone":"W"}' >"$WORK/w.json"
http POST /v1/events "$KEY_WW" --data-binary "@$WORK/w.json"; expect 200 "" "web event"
jq -e '.accepted == 1' "$WORK/resp" >/dev/null || fail "web event: $(cat "$WORK/resp")"
ev m-secret shared visit "$NOW" ',"attrs":{"zone":"M"}' >"$WORK/m.json"
http POST /v1/events "$KEY_M" --data-binary "@$WORK/m.json"; expect 200 "" "mobile event"
jq -e '.accepted == 1' "$WORK/resp" >/dev/null || fail "mobile event: $(cat "$WORK/resp")"
snapshot
http POST /v1/events "$KEY_WR" --data-binary "@$WORK/w.json"; expect 403 forbidden "a read key writing"
http POST /v1/events "$KEY_WB" --data-binary "@$WORK/w.json"; expect 403 forbidden "a boards key writing"
http GET /v1/users/shared/balance "$KEY_WW"; expect 403 forbidden "a write key reading a user"
http GET /v1/leaderboards/demo "$KEY_WW"; expect 403 forbidden "a write key reading a board"
http GET /v1/leaderboards/demo "$KEY_WR"; expect 403 forbidden "a users key reading a board"
http GET /v1/users/shared/balance "$KEY_WB"; expect 403 forbidden "a boards key reading a user"
http GET /v1/leaderboards/demo "$KEY_WB"; expect 200 "" "a boards key reading a board"
unchanged "403 answers"
# web's read key sees web's event in full, mobile's without id and attrs.
http GET "/v1/users/shared/coins?limit=10" "$KEY_WR"; expect 200 "" "coins of shared"
jq -e '[.coins[].events[]] | (map(select(.source == "web")) | .[0].id == "w-secret")
       and (map(select(.source == "mobile")) | .[0].id == null)' "$WORK/resp" >/dev/null ||
    fail "web's view of shared's coins: $(cat "$WORK/resp")"
MCOIN=$(jq -r '.coins[] | select(.events[0].source == "mobile") | .id' "$WORK/resp")
[ -n "$MCOIN" ] || fail "no coin from mobile's event: $(cat "$WORK/resp")"
http GET "/v1/coins/$MCOIN" "$KEY_WR"; expect 200 "" "mobile's coin read by web"
jq -e '.events[0].source == "mobile" and .events[0].id == null and (.events[0] | has("attrs") | not)
       and .events[0].type == "visit" and .coin.events[0].id == null' "$WORK/resp" >/dev/null ||
    fail "web's view of mobile's coin: $(cat "$WORK/resp")"
grep -q "m-secret\|\"M\"" "$WORK/resp" && fail "mobile's event details leaked: $(cat "$WORK/resp")"
# admin sees all; mobile (no scopes) sees its own.
http GET "/v1/coins/$MCOIN" "$KEY_ADMIN"; expect 200 "" "admin"
jq -e '.events[0].id == "m-secret" and .events[0].attrs.zone == "M"' "$WORK/resp" >/dev/null ||
    fail "admin's view: $(cat "$WORK/resp")"
# mobile's reads: 3 per source at most (read_burst 3, read_rate 0.001).
http GET "/v1/coins/$MCOIN" "$KEY_M"; expect 200 "" "mobile read 1"
jq -e '.events[0].id == "m-secret"' "$WORK/resp" >/dev/null || fail "mobile's view of its own coin: $(cat "$WORK/resp")"
http GET /v1/users/shared/balance "$KEY_M"; expect 200 "" "mobile read 2"
http GET /v1/leaderboards/demo "$KEY_M"; expect 200 "" "mobile read 3"
http GET /v1/users/shared/balance "$KEY_M"; expect 429 rate_limited "mobile read 4"
jq -e '.scope == "read"' "$WORK/resp" >/dev/null || fail "read 429: $(cat "$WORK/resp")"
grep -qi '^Retry-After: [1-9]' "$WORK/hdr" || fail "read 429 without Retry-After"
# ... while mobile's writes have their own bucket.
ev m-after u1 visit >"$WORK/ma.json"
http POST /v1/events "$KEY_M" --data-binary "@$WORK/ma.json"; expect 200 "" "mobile writes after its reads ran out"
snapshot
log "scopes: 403 without the scope, other sources' ids and attrs hidden, reads limited apart"

# --- 5. Idempotency-Key bound to the body --------------------------------------------------
ev idem-1 idem checkin >"$WORK/a.json"
ev idem-1 idem visit >"$WORK/b.json"
http POST /v1/events "$KEY_WW" --data-binary "@$WORK/a.json" -H "Idempotency-Key: order-77"; expect 200 "" "first use"
jq -e '.results[0].status == "accepted"' "$WORK/resp" >/dev/null || fail "first use: $(cat "$WORK/resp")"
snapshot
http POST /v1/events "$KEY_WW" --data-binary "@$WORK/b.json" -H "Idempotency-Key: order-77"
expect 422 idempotency_mismatch "the same key with another body"
unchanged "422 idempotency_mismatch"
http POST /v1/events "$KEY_WW" --data-binary "@$WORK/a.json" -H "Idempotency-Key: order-77"; expect 200 "" "a resend"
jq -e '.results[0].status == "accepted"' "$WORK/resp" >/dev/null || fail "resend: $(cat "$WORK/resp")"
unchanged "a resend"
[ "$("$TROVECTL" balance --dir "$DIR" idem)" = "idem 1" ] || fail "idem: $("$TROVECTL" balance --dir "$DIR" idem)"
log "Idempotency-Key: another body 422, the same body accepted again, stored once"

# --- 6. 401 before routing, counted for the query API too ---------------------------------
before=$(metric unauthorized)
http GET /v1/users/shared/balance ""; expect 401 unauthorized "a query without a key"
http GET /nowhere ""; expect 401 unauthorized "an unknown path without a key"
http OPTIONS /v1/events ""; expect 401 unauthorized "OPTIONS without a key"
http GET /v1/users/shared/balance "trk_not_a_key_of_anybody_000000"; expect 401 unauthorized "a wrong key"
[ "$(metric unauthorized)" = $((before + 4)) ] || fail "401s counted: $(metric unauthorized), want $((before + 4))"
[ "$(metric forbidden)" -ge 6 ] && [ "$(metric idempotency_mismatch)" = 1 ] && [ "$(metric rate_limited)" -ge 1 ] ||
    fail "refusals not counted: $(curl -s "http://127.0.0.1:$((P + 210))/metrics" | grep refused_total)"
unchanged "401 answers"

# --- 7. user ids that hide characters ----------------------------------------------------------
printf '{"id":"bidi-1","user":"adm\\u202enib","type":"checkin","ts":"%s"}\n{"id":"bidi-2","user":"a\\u200bb","type":"checkin","ts":"%s"}\n' \
    "$NOW" "$NOW" >"$WORK/bidi.ndjson"
http POST /v1/events "$KEY_WW" --data-binary "@$WORK/bidi.ndjson"; expect 200 "" "hidden characters"
jq -e '[.results[].reason] == ["invisible_char", "invisible_char"] and (.results[0].detail | test("U\\+202E"))' \
    "$WORK/resp" >/dev/null || fail "hidden characters: $(cat "$WORK/resp")"
unchanged "invisible_char"
log "401 before routing counted; user ids with U+202E / U+200B rejected invisible_char"

grep -F -e "$KEY_WW" -e "$KEY_WR" -e "$KEY_M" -e "$KEY_ADMIN" -e "$KEY_L" "$DIR"/logs/*.log && fail "a key was logged"
cluster_down_checked
log "hostile HTTP: every door held, the ledger unchanged by every refusal"
