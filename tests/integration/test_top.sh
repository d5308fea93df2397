# trovectl top: under a steady open-loop load, the accepted events/s it
# computes from the daemons' /metrics match the load's rate (within +-50%),
# every shard shows its lag and commit p50, and top exits 0 after --count.
source "$(dirname "$0")/lib.sh"

RATE=2000
SECONDS_OF_LOAD=10

cluster_up
wait_healthy

# Without a metrics address in the config, top refuses with one line.
grep -v 'metrics =' "$DIR/trove.cfg" > "$WORK/nometrics.cfg"
if "$TROVECTL" top --config "$WORK/nometrics.cfg" --count 1 > /dev/null 2> "$WORK/nometrics.err"; then
    fail "top without metrics addresses exited 0"
fi
[ "$(wc -l < "$WORK/nometrics.err")" -eq 1 ] || fail "top without metrics: not one line: $(cat "$WORK/nometrics.err")"

"$TROVE_LOAD" --dir "$DIR" --events $((RATE * SECONDS_OF_LOAD)) --rate "$RATE" --sources web,mobile \
    > "$WORK/load.out" 2>&1 &
LOAD_PID=$!

# Bounded wait until the ingestor has answered events (the load has begun),
# so that the views below fall inside the load.
deadline=$((SECONDS + 20))
while :; do
    seen=$("$TROVECTL" top --dir "$DIR" --json --count 1 --interval 0.2 | jq '.ingest.accepted_per_s // 0') ||
        seen=0
    awk -v s="$seen" 'BEGIN { exit !(s > 0) }' && break
    kill -0 "$LOAD_PID" 2>/dev/null || fail "trove-load ended before any event was accepted: $(tail -3 "$WORK/load.out")"
    [ $SECONDS -lt $deadline ] || fail "no accepted events seen by top after 20 s"
done
log "load running ($seen events/s in a 0.2 s view)"

# top itself is bounded: 3 views of 1 s (plus 300 ms scrapes); timeout is a guard.
rc=0
timeout 20 "$TROVECTL" top --dir "$DIR" --json --count 3 --interval 1 > "$WORK/top.json" || rc=$?
[ $rc -eq 0 ] || fail "trovectl top exited $rc"
[ "$(wc -l < "$WORK/top.json")" -eq 3 ] || fail "want 3 JSON lines, got $(wc -l < "$WORK/top.json")"
jq -e . "$WORK/top.json" > /dev/null || fail "top --json printed invalid JSON"

last=$(tail -1 "$WORK/top.json")
log "last view: $(jq -c '{up, processes, ingest: .ingest | {accepted_per_s, answer_seconds}, shards: [.shards[] | {name, accepted_per_s, lag, commit_seconds}]}' <<<"$last")"
jq -e '.up == .processes' <<<"$last" > /dev/null || fail "a process is down: $last"
accepted=$(jq '.ingest.accepted_per_s' <<<"$last")
awk -v a="$accepted" -v r="$RATE" 'BEGIN { exit !(a >= r * 0.5 && a <= r * 1.5) }' ||
    fail "accepted events/s $accepted not within 50% of $RATE"
# The scorers see the same events: their sum is in the same range.
shard_sum=$(jq '[.shards[].accepted_per_s] | add' <<<"$last")
awk -v a="$shard_sum" -v r="$RATE" 'BEGIN { exit !(a >= r * 0.5 && a <= r * 1.5) }' ||
    fail "shards' accepted events/s $shard_sum not within 50% of $RATE"
# Sources: only the two the load uses carry events.
jq -e '.ingest.by_source | (.web > 0) and (.mobile > 0)' <<<"$last" > /dev/null ||
    fail "by_source lacks web or mobile: $last"
jq -e '.shards | length == 2' <<<"$last" > /dev/null || fail "want 2 shards: $last"
jq -e '[.shards[] | has("lag") and (.lag | type == "number") and has("last_aseq")
        and (.commit_seconds | has("p50") and has("p99"))] | all' <<<"$last" > /dev/null ||
    fail "per-shard lag / last_aseq / commit p50 missing: $last"
# Events were committed in the interval, so the quantiles are known.
jq -e '(.ingest.answer_seconds.p50 | type == "number") and (.commit_seconds.p50 | type == "number")
       and .ingest.answer_seconds.p50 <= .ingest.answer_seconds.p99' <<<"$last" > /dev/null ||
    fail "answer / commit p50 not known or p50 > p99: $last"
jq -e '.broker.up and (.broker.messages_per_s | type == "number")' <<<"$last" > /dev/null ||
    fail "broker view missing: $last"

# The load ends by itself (bounded by its --stall-timeout too).
wait "$LOAD_PID" || fail "trove-load failed: $(tail -5 "$WORK/load.out")"
log "top: accepted $accepted events/s at a load of $RATE/s"
cluster_down_checked
