# A ledger belongs to its shard (issue 21 item 3): its first start records
# the shard's name, index and partitions in the tables, and a scorer started
# on another shard's data directory (a config or playbook naming the wrong
# one) refuses to start, says why, and writes nothing. And a shard whose
# ledger is lost (an empty data directory, as after a lost disk) is caught by
# its reconciler, whose replica holds events the scorer no longer has: the
# run is refused with the reason, nothing is "repaired".
source "$(dirname "$0")/lib.sh"

cluster_up --shards 2
wait_healthy
"$TROVE_LOAD" --dir "$DIR" --events 500 --users 50 --rate 0 --json > "$WORK/load.json" 2>/dev/null || fail "trove-load failed"
settle
before=$(stored_events)
"$TROVECTL" reconcile --dir "$DIR" --json > "$WORK/rec1.json" || fail "reconcile failed"
cluster_down_checked

# Swap the two shards' data directories.
mv "$DIR/data/s0" "$DIR/data/tmp" && mv "$DIR/data/s1" "$DIR/data/s0" && mv "$DIR/data/tmp" "$DIR/data/s1"
sum_before=$(find "$DIR/data/s0" "$DIR/data/s1" -type f ! -name lock.mdb -exec md5sum {} + | sort)
set +e
timeout 30 "$BUILD/trove-scorer" --config "$DIR/trove.cfg" --shard s0 > "$WORK/s0.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a scorer on another shard's ledger did not refuse to start (exit $rc)"
grep -q "belongs to shard s1 (index 1)" "$WORK/s0.log" || fail "unclear refusal: $(tail -n 3 "$WORK/s0.log")"
sum_after=$(find "$DIR/data/s0" "$DIR/data/s1" -type f ! -name lock.mdb -exec md5sum {} + | sort)
[ "$sum_before" = "$sum_after" ] || fail "the refused start changed the ledger files"
log "refused: $(grep -o 'the ledger in .*' "$WORK/s0.log" | head -1)"

# Put them back: the cluster starts and holds what it held.
mv "$DIR/data/s0" "$DIR/data/tmp" && mv "$DIR/data/s1" "$DIR/data/s0" && mv "$DIR/data/tmp" "$DIR/data/s1"
cluster_up
wait_healthy
[ "$(stored_events)" -eq "$before" ] || fail "after swapping back the cluster stores $(stored_events) events, not $before"
cluster_down_checked

# A lost disk: s0 starts empty; its reconciler refuses to reconcile it.
mv "$DIR/data/s0" "$WORK/s0-lost"
cluster_up
wait_healthy
if "$TROVECTL" reconcile --dir "$DIR" --shard s0 --json > "$WORK/rec2.json" 2> "$WORK/rec2.err"; then
    fail "the reconciler ran against an empty ledger its replica is ahead of: $(cat "$WORK/rec2.json")"
fi
grep -q "lost or replaced" "$WORK/rec2.err" || fail "unclear refusal: $(cat "$WORK/rec2.err")"
grep -q "lost or replaced" "$DIR/logs/rs0.log" || fail "the reconciler's log does not say the ledger was lost"
"$TROVECTL" reconcile --dir "$DIR" --shard s1 --json > "$WORK/rec3.json" || fail "the other shard's run failed"
log "lost ledger: $(cat "$WORK/rec2.err")"
cluster_down_checked
