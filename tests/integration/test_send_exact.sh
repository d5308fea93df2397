# 10,000 events from three sources, 10% of them repeated with the same
# (source, id): every balance is exact; sending the file again changes nothing
# and every event is answered `duplicate`.
source "$(dirname "$0")/lib.sh"

cluster_up
wait_healthy

EVENTS="$WORK/events.ndjson"
now=$(date +%s%3N)
# 9,000 distinct events, then 1,000 repeats of earlier ones, shuffled in.
awk -v now="$now" 'BEGIN {
    srand(42); split("web mobile game", src, " "); split("checkin visit purchase noop", typ, " ")
    for (i = 0; i < 9000; i++) {
        line[i] = sprintf("{\"source\":\"%s\",\"id\":\"ev-%d\",\"user\":\"user-%d\",\"type\":\"%s\",\"ts\":%.0f,\"attrs\":{\"n\":%d}}",
                          src[i % 3 + 1], i, int(rand() * 300), typ[int(rand() * 4) + 1], now - int(rand() * 60000), i)
    }
    n = 9000
    for (k = 0; k < 1000; k++) line[n++] = line[int(rand() * 9000)]
    for (i = n - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = line[i]; line[i] = line[j]; line[j] = t }
    for (i = 0; i < n; i++) print line[i]
}' > "$EVENTS"
[ "$(wc -l < "$EVENTS")" -eq 10000 ] || fail "generator"

"$TROVECTL" send --dir "$DIR" --json "$EVENTS" > "$WORK/first.json"
accepted=$(jq -r 'select(.status) | .status' "$WORK/first.json" | grep -c '^accepted$' || true)
duplicate=$(jq -r 'select(.status) | .status' "$WORK/first.json" | grep -c '^duplicate$' || true)
log "first send: accepted=$accepted duplicate=$duplicate"
[ "$accepted" -eq 9000 ] || fail "expected 9000 accepted, got $accepted"
[ "$duplicate" -eq 1000 ] || fail "expected 1000 duplicate, got $duplicate"

expected_balances "$EVENTS" > "$WORK/expected.txt"
users=$(cut -d' ' -f1 "$WORK/expected.txt")
# shellcheck disable=SC2086
actual_balances $users > "$WORK/actual.txt"
diff "$WORK/expected.txt" "$WORK/actual.txt" || fail "balances differ from the expected counts"
log "balances of $(wc -l < "$WORK/expected.txt") users exact"

"$TROVECTL" send --dir "$DIR" --json "$EVENTS" > "$WORK/second.json"
again=$(jq -r 'select(.status) | .status' "$WORK/second.json" | grep -c '^duplicate$' || true)
[ "$again" -eq 10000 ] || fail "second send: expected 10000 duplicate, got $again"
# shellcheck disable=SC2086
actual_balances $users > "$WORK/actual2.txt"
diff "$WORK/expected.txt" "$WORK/actual2.txt" || fail "second send changed balances"

# provenance: a coin of the first user leads back to exactly its event
u=$(head -1 "$WORK/expected.txt" | cut -d' ' -f1)
coin=$("$TROVECTL" coins --dir "$DIR" --json "$u" | jq -r 'select(.id) | .id' | head -1)
if [ -n "$coin" ]; then
    "$TROVECTL" coin --dir "$DIR" --json "$coin" > "$WORK/coin.json"
    grep -q "\"$u\"" "$WORK/coin.json" || fail "coin $coin does not show user $u"
fi
cluster_down_checked
