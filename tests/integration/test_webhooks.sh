# trove-webhooks end to end (docs/webhooks.md): a real cluster (CURVE on)
# with two webhook endpoints on a loopback receiver
# (tests/integration/webhook_receiver.py, which verifies signatures with
# Python's hmac):
#   - `flaky` answers 500 to some first attempts and sleeps past the
#     sender's timeout on others; the sender is SIGKILLed once mid-way (the
#     supervisor restarts it). Every award (the coins `trovectl coins`
#     lists, mints and revocations of an undo) reaches it with a valid
#     signature; an award sent twice carries the same delivery id, and no
#     two awards share one;
#   - `broken` answers 500 to everything: each award ends as a dead letter
#     (`trovectl webhooks list`); once it answers 200, `trovectl webhooks
#     retry ID` and then `--all` deliver them and empty the list;
#   - a retry needs the operator role (CURVE): role daemon is refused;
#   - per-endpoint metrics, and `trovectl status` shows the daemon;
#   - `late`, added to the config after all that with `from = now`, gets
#     exactly the awards made after it joined (none of the history), and
#     its starting position survives a restart;
#   - a URL on another host is refused at start (no allow_remote).
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"
command -v curl >/dev/null || fail "curl is needed"

# A first start writes the cluster's config (CURVE on); the webhooks
# section goes in before the real start.
cluster_up
"$TROVECTL" down --dir "$DIR" >/dev/null || fail "trovectl down failed"
HOST_KEY=$(sed -n 's/^ *curve_key = "\(.*\)"$/\1/p' "$DIR/trove.cfg" | head -1)
[ -n "$HOST_KEY" ] || fail "no curve_key in the generated config"
RECEIVER_PORT=$((PORT_BASE + 297))
head -c 32 /dev/urandom | base64 > "$WORK/flaky.secret"
head -c 32 /dev/urandom | base64 > "$WORK/broken.secret"
head -c 32 /dev/urandom | base64 > "$WORK/late.secret"
cat >> "$DIR/trove.cfg" <<EOF2

webhooks
    data = "$DIR/data/webhooks"
    control = "tcp://127.0.0.1:$((PORT_BASE + 295))"
    metrics = "127.0.0.1:$((PORT_BASE + 296))"
    curve_key = "$HOST_KEY"
    timeout_ms = 1000
    max_attempts = 5
    backoff_ms = 50
    backoff_max_ms = 200
    endpoint
        flaky
            url = "http://127.0.0.1:$RECEIVER_PORT/flaky"
            secret_file = "$WORK/flaky.secret"
            kinds = "mint,revoke"
        broken
            url = "http://127.0.0.1:$RECEIVER_PORT/broken"
            secret_file = "$WORK/broken.secret"
            kinds = "mint"
EOF2
LOG="$WORK/received.ndjson"
touch "$LOG"
python3 "$HERE/webhook_receiver.py" "$RECEIVER_PORT" "$LOG" "$WORK/fixed" \
    flaky="$WORK/flaky.secret" broken="$WORK/broken.secret" late="$WORK/late.secret" &
RECEIVER=$!
trap 'rc=$?; kill $RECEIVER 2>/dev/null || true; set +e; (exit $rc); cleanup' EXIT
# The receiver listens before any award exists (a loaded machine may take
# a while to start Python).
deadline=$((SECONDS + 20))
until curl -s -o /dev/null "http://127.0.0.1:$RECEIVER_PORT/"; do
    [ $SECONDS -lt $deadline ] || fail "the test receiver does not listen on $RECEIVER_PORT"
    sleep 0.1
done
cluster_up   # ready: every process answered status, trove-webhooks too
"$TROVECTL" status --dir "$DIR" --json | jq -e 'select(.role == "webhooks") | .up' >/dev/null ||
    fail "trovectl status does not show trove-webhooks up"

# 240 events of 10 users (one coin each), then 10 undos (10 revocations).
gen() {   # FROM TO
    awk -v from="$1" -v to="$2" -v now="$(date +%s%3N)" 'BEGIN {
        split("checkin visit purchase", typ, " ")
        for (i = from; i < to; i++)
            printf "{\"source\":\"web\",\"id\":\"e%d\",\"user\":\"u%d\",\"type\":\"%s\",\"ts\":%.0f}\n",
                   i, i % 10, typ[i % 3 + 1], now - 1000 + i
    }'
}
gen 0 120 > "$WORK/a.ndjson"
gen 120 240 > "$WORK/b.ndjson"
for i in $(seq 0 9); do
    printf '{"source":"web","id":"undo%d","user":"u%d","type":"undo","ts":%d,"attrs":{"target_source":"web","target_id":"e%d"}}\n' \
        "$i" "$i" "$(date +%s%3N)" "$i"
done >> "$WORK/b.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet --strict "$WORK/a.ndjson" || fail "send a failed"

# SIGKILL the sender once it has delivered some, while it has more to do.
deadline=$((SECONDS + 20))
until [ "$(grep -c '"path": "/flaky"' "$LOG")" -ge 30 ]; do
    [ $SECONDS -lt $deadline ] || fail "no deliveries to /flaky after 20 s"
    sleep 0.1
done
kill9 webhooks
"$TROVECTL" send --dir "$DIR" --quiet --strict "$WORK/b.ndjson" || fail "send b failed"

# The awards, from the HTTP query API (GET /v1/users/U/coins): each user's
# coin entries (mints and revocations), as shard/aseq/coin/revoked.
API="http://127.0.0.1:$((PORT_BASE + 250))"
KEY=$(cat "$DIR/web.key") || fail "trovectl up wrote no demo key"
expected() {
    local u
    for u in $(seq 0 9); do
        curl -sf -H "Authorization: Bearer $KEY" "$API/v1/users/u$u/coins?limit=1000" ||
            fail "GET $API/v1/users/u$u/coins failed"
    done | jq -r '.coins[] | "\(.shard) \(.aseq) \(.id) \(.revoked)"' | sort -u
}
# What reached path $1 with a 200: the same shape.
received() {
    jq -r --arg p "$1" 'select(.path == $p and .status == 200) | "\(.shard) \(.aseq) \(.coin) \(.revoked)"' "$LOG" | sort -u
}
# (A user's coins answer waits for what that user's shard committed.)
expected > "$WORK/expected.txt"
deadline=$((SECONDS + 30))
while true; do
    received /flaky > "$WORK/flaky.txt"
    missing=$(comm -23 "$WORK/expected.txt" "$WORK/flaky.txt" | wc -l)
    [ "$missing" = 0 ] && [ "$(wc -l < "$WORK/expected.txt")" -ge 250 ] && break
    [ $SECONDS -lt $deadline ] || fail "/flaky misses $missing of $(wc -l < "$WORK/expected.txt") awards after 30 s: $(comm -23 "$WORK/expected.txt" "$WORK/flaky.txt" | head -3 | tr '\n' ';')"
    sleep 0.3
done
revocations=$(grep -c ' true$' "$WORK/expected.txt" || true)
[ "$revocations" -ge 10 ] || fail "expected 10 revocations among the awards, found $revocations"
log "/flaky got all $(wc -l < "$WORK/expected.txt") awards ($revocations revocations)"
cmp -s <(comm -13 "$WORK/expected.txt" "$WORK/flaky.txt") /dev/null ||
    fail "/flaky got awards that are not in the ledger: $(comm -13 "$WORK/expected.txt" "$WORK/flaky.txt" | head -3)"

# Every request signed; every body well formed, its id the header's, its
# kind the coin's; one delivery id per award and one award per id, shaped
# flaky.SHARD.ASEQ.
jq -e -s 'map(select(.sig_ok | not)) | length == 0' "$LOG" >/dev/null ||
    fail "requests with a bad signature: $(jq -c 'select(.sig_ok | not)' "$LOG" | head -3)"
jq -e -s 'map(select(.bad_body or .body_id != .id or .kind != .event
                     or .kind != (if .revoked then "revoke" else "mint" end))) | length == 0' "$LOG" >/dev/null ||
    fail "malformed deliveries: $(jq -c 'select(.bad_body or .body_id != .id)' "$LOG" | head -3)"
jq -e -s '[.[] | select(.path == "/flaky")] | group_by("\(.shard)/\(.aseq)")
          | all(length > 0 and (map(.id) | unique | length) == 1
                and .[0].id == "flaky.\(.[0].shard).\(.[0].aseq)")' "$LOG" >/dev/null ||
    fail "an award went out under two delivery ids, or an id is not flaky.SHARD.ASEQ"
dups=$(jq -s '[.[] | select(.path == "/flaky")] | length' "$LOG")
log "/flaky: $dups requests for $(wc -l < "$WORK/expected.txt") awards (retries and re-sends after the kill)"
[ "$(jq -s '[.[] | select(.path == "/flaky" and .attempt > 1)] | length' "$LOG")" -gt 0 ] ||
    fail "no retry reached /flaky (the receiver's 500s and timeouts were not retried?)"

# /broken: every mint is a dead letter after 5 attempts.
mints=$(grep -c ' false$' "$WORK/expected.txt")
deadline=$((SECONDS + 30))
until [ "$("$TROVECTL" webhooks list --dir "$DIR" --json | jq -s 'map(select(.state == "dead")) | length')" = "$mints" ]; do
    [ $SECONDS -lt $deadline ] || fail "dead letters: $("$TROVECTL" webhooks list --dir "$DIR" --json | wc -l), want $mints"
    sleep 0.3
done
"$TROVECTL" webhooks list --dir "$DIR" --json > "$WORK/dead.ndjson"
jq -e -s 'all(.endpoint == "broken" and .attempts == 5 and .error == "HTTP status 500"
              and .id == "broken.\(.shard).\(.aseq)" and (.body | fromjson | .id) == .id)' "$WORK/dead.ndjson" >/dev/null ||
    fail "unexpected dead letters: $(head -2 "$WORK/dead.ndjson")"
"$TROVECTL" webhooks list --dir "$DIR" | grep -q "^$mints dead letters$" || fail "webhooks list (table) miscounts"
# Metrics per endpoint (the registry's text, read by curl).
curl -sf "http://127.0.0.1:$((PORT_BASE + 296))/metrics" > "$WORK/metrics.txt" || fail "no /metrics"
grep -q "^trove_webhook_deliveries_total{endpoint=\"broken\",result=\"dead\"} $mints$" "$WORK/metrics.txt" ||
    grep -q "^trove_webhook_deliveries_total{endpoint=\"broken\",result=\"dead\"} " "$WORK/metrics.txt" ||
    fail "no dead count for broken in /metrics"
grep -q '^trove_webhook_pending{endpoint="flaky"} 0$' "$WORK/metrics.txt" || fail "flaky still has pending awards"

# A retry while still broken: dead again (attempts counted afresh).
one=$(jq -r -s '.[0].id' "$WORK/dead.ndjson")
"$TROVECTL" webhooks retry nosuch.0.1 --dir "$DIR" 2>/dev/null && fail "retry of an unknown id succeeded"
"$TROVECTL" webhooks retry --dir "$DIR" 2>/dev/null && fail "retry without id or --all succeeded"
# A retry needs the operator role: trovectl presenting the host's certificate
# (role daemon; the config without curve/operator) is refused, nothing moves.
grep -v '^ *operator = ' "$DIR/trove.cfg" > "$DIR/daemon-role.cfg"
if "$TROVECTL" webhooks retry --all --config "$DIR/daemon-role.cfg" 2> "$WORK/refused.err"; then
    fail "a webhooks retry with role daemon succeeded"
fi
grep -q "needs role operator" "$WORK/refused.err" || fail "refusal does not say why: $(cat "$WORK/refused.err")"
"$TROVECTL" webhooks list --config "$DIR/daemon-role.cfg" --json | jq -e -s --argjson n "$mints" \
    'length == $n and all(.state == "dead")' >/dev/null || fail "a refused retry changed the dead letters"
# Fixed: one by id, then all.
touch "$WORK/fixed"
"$TROVECTL" webhooks retry "$one" --dir "$DIR" >/dev/null || fail "webhooks retry $one failed"
deadline=$((SECONDS + 15))
while "$TROVECTL" webhooks list --dir "$DIR" --json | jq -e --arg id "$one" 'select(.id == $id)' >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$one still a dead letter 15 s after its retry"
    sleep 0.2
done
jq -e -s --arg id "$one" 'any(.id == $id and .status == 200 and .sig_ok)' "$LOG" >/dev/null ||
    fail "$one left the list but never reached /broken"
"$TROVECTL" webhooks retry --all --dir "$DIR" --json | jq -e --argjson n "$((mints - 1))" '.retried == $n' >/dev/null ||
    fail "webhooks retry --all did not queue $((mints - 1))"
deadline=$((SECONDS + 15))
until [ "$("$TROVECTL" webhooks list --dir "$DIR" --json | wc -l)" = 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "dead letters left 15 s after retry --all"
    sleep 0.2
done
received /broken > "$WORK/broken.txt"
cmp -s <(grep ' false$' "$WORK/expected.txt") "$WORK/broken.txt" ||
    fail "/broken did not get every mint after the retries"
# `late` joins with from = now (the supervisor restarts the sender on the
# new config): none of the history reaches it, every later award does.
before=$(wc -l < "$WORK/expected.txt")
cat >> "$DIR/trove.cfg" <<EOF2
        late
            url = "http://127.0.0.1:$RECEIVER_PORT/late"
            secret_file = "$WORK/late.secret"
            from = now
EOF2
kill9 webhooks
deadline=$((SECONDS + 20))
until grep -q "webhooks endpoint late is new and starts now" "$DIR"/logs/webhooks*.log 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "the restarted sender did not start late at the present"
    sleep 0.1
done
# Restarted once more before any new award: its saved start holds (a later
# "now" would be the same here; the log says it is not new any more).
kill9 webhooks
deadline=$((SECONDS + 20))
until [ "$(cat "$DIR"/logs/webhooks*.log | grep -c "webhooks ready")" -ge 4 ]; do
    [ $SECONDS -lt $deadline ] || fail "the sender did not come back after its second restart"
    sleep 0.1
done
[ "$(cat "$DIR"/logs/webhooks*.log | grep -c "webhooks endpoint late is new")" = 1 ] ||
    fail "late was taken for new again after a restart"
gen 300 330 > "$WORK/c.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet --strict "$WORK/c.ndjson" || fail "send c failed"
expected > "$WORK/expected-after.txt"
comm -13 "$WORK/expected.txt" "$WORK/expected-after.txt" > "$WORK/new.txt"
[ "$(wc -l < "$WORK/new.txt")" -ge 30 ] || fail "batch c made $(wc -l < "$WORK/new.txt") awards, want 30"
deadline=$((SECONDS + 30))
until received /late > "$WORK/late.txt"; cmp -s "$WORK/late.txt" "$WORK/new.txt"; do
    [ $SECONDS -lt $deadline ] || fail "/late got $(wc -l < "$WORK/late.txt") awards, want exactly the $(wc -l < "$WORK/new.txt") made after it joined: $(comm -3 "$WORK/new.txt" "$WORK/late.txt" | head -3 | tr '\n' ';')"
    sleep 0.3
done
log "/late (from = now) got exactly the $(wc -l < "$WORK/new.txt") awards made after it joined, none of the $before before"

# A URL on another host is refused at start, before anything is bound or
# sent (192.0.2.1 is TEST-NET-1; nothing is connected to it).
sed -e 's|url = "http://127.0.0.1:[0-9]*/broken"|url = "http://192.0.2.1:80/broken"|' \
    -e "s|data = \"$DIR/data/webhooks\"|data = \"$WORK/other-webhooks\"|" "$DIR/trove.cfg" > "$WORK/remote.cfg"
grep -q '192.0.2.1' "$WORK/remote.cfg" || fail "test bug: the remote URL was not written"
if "$BUILD/trove-webhooks" --config "$WORK/remote.cfg" > "$WORK/remote.log" 2>&1; then
    fail "trove-webhooks started with a URL on another host"
fi
grep -q "http://192.0.2.1:80/broken is not on this host; set webhooks/allow_remote = yes" "$WORK/remote.log" ||
    fail "no clear refusal of the remote URL: $(cat "$WORK/remote.log")"
kill $RECEIVER 2>/dev/null || true
cluster_down_checked
log "PASS"
