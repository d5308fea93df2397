# The delivery guarantee under SIGKILL: during a 200,000-event load, kill a
# scorer, then an ingestor, then the broker (each restarted by `trovectl up`'s
# supervision), then stall the other scorer for 2 s (SIGSTOP/SIGCONT).
# Afterwards every event answered `accepted` is counted exactly once: per-user balances equal what the accepted events earn, and the shards
# hold exactly as many events as were accepted.
source "$(dirname "$0")/lib.sh"

EVENTS=${TROVE_CRASH_EVENTS:-200000}
RATE=${TROVE_CRASH_RATE:-25000}

cluster_up
wait_healthy

HISTORY="$WORK/history.txt"
"$TROVE_LOAD" --dir "$DIR" --events "$EVENTS" --rate "$RATE" --users 2000 --dup-ratio 0.05 \
    --ooo-ratio 0.05 --history "$HISTORY" --seed 7 --json > "$WORK/load.json" 2> "$WORK/load.err" &
load=$!

# Kill while the load runs; wait for each process to be back before the next.
progress() { [ -s "$HISTORY" ] && wc -l < "$HISTORY" || echo 0; }
wait_progress() {
    local want=$1 deadline=$((SECONDS + 120))
    while [ "$(progress)" -lt "$want" ]; do
        kill -0 $load 2>/dev/null || fail "trove-load ended before $want answers"
        [ $SECONDS -lt $deadline ] || fail "no progress to $want answers"
        sleep 0.2
    done
}
wait_progress $((EVENTS / 5))
kill9 s0
wait_progress $((EVENTS * 2 / 5))
kill9 i0
wait_progress $((EVENTS * 3 / 5))
kill9 broker
# A stalled (not dead) scorer: its ingestor's credit fills, batches wait and
# are resent; after SIGCONT everything flows again.
wait_progress $((EVENTS * 7 / 10))
pid=$(cat "$DIR/pids/s1.pid")
kill -STOP "$pid"
log "SIGSTOP s1 (pid $pid) for 2 s"
sleep 2     # the stall itself is the point here, not a wait for a condition
kill -CONT "$pid"
wait "$load" || { cat "$WORK/load.err" >&2; fail "trove-load failed"; }
wait_healthy

[ "$(wc -l < "$HISTORY")" -eq "$EVENTS" ] || fail "history has $(wc -l < "$HISTORY") lines, want $EVENTS"
accepted=$(awk '$5 == "accepted"' "$HISTORY" | wc -l)
unique_accepted=$(awk '$5 == "accepted" { print $1, $2 }' "$HISTORY" | sort -u | wc -l)
log "answers: $(awk '{print $5}' "$HISTORY" | sort | uniq -c | tr '\n' ' ')"
[ "$accepted" -eq "$unique_accepted" ] || fail "an event was answered accepted twice ($accepted vs $unique_accepted)"
unanswered=$(awk '$5 != "accepted" && $5 != "duplicate" && $5 != "rejected"' "$HISTORY" | wc -l)
[ "$unanswered" -eq 0 ] || fail "$unanswered events without a final answer"

# Events stored across all shards == events accepted.
stored=$(stored_events)
log "accepted=$accepted stored=$stored"
[ "$stored" -eq "$accepted" ] || fail "shards hold $stored events, $accepted were accepted"

# Balances == what the accepted events earn (demo hunt: checkin 1, visit 2, purchase 5).
awk '$5 == "accepted" { v = ($4 == "checkin") ? 1 : ($4 == "visit") ? 2 : ($4 == "purchase") ? 5 : 0
                        bal[$3] += v; users[$3] = 1 }
     END { for (u in users) print u, bal[u] }' "$HISTORY" | sort > "$WORK/expected.txt"
users=$(cut -d' ' -f1 "$WORK/expected.txt")
# shellcheck disable=SC2086
actual_balances $users > "$WORK/actual.txt"
diff "$WORK/expected.txt" "$WORK/actual.txt" > "$WORK/diff.txt" || { head "$WORK/diff.txt" >&2; fail "balances differ"; }
log "exactly once: $accepted accepted events, $(wc -l < "$WORK/expected.txt") users, balances exact"
cluster_down_checked
