# A ledger belongs to its shard (issue 21 item 3): its first start records
# the shard's name, index and partitions in the tables, and a scorer started
# on another shard's data directory (a config or playbook naming the wrong
# one) refuses to start, says why, and writes nothing.
source "$(dirname "$0")/lib.sh"

cluster_up --shards 2
wait_healthy
"$TROVE_LOAD" --dir "$DIR" --events 500 --users 50 --rate 0 --json > "$WORK/load.json" 2>/dev/null || fail "trove-load failed"
settle
before=$(stored_events)
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
