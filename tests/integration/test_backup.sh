# Backup and restore (issue 21 item 5): `trovectl backup` copies every
# shard's ledger while the cluster runs; `trovectl restore` puts it back into
# the stopped cluster, which then holds exactly what it held at the backup:
# the balances of the events sent before it (computed here from the events,
# not by Trove), none of those sent after (their resends are accepted
# again). Refusals: a backup into a non-empty directory, a restore while the
# cluster runs, an incomplete backup, another shard map. Then a backup taken
# under load restores to a ledger the reconciler finds consistent.
source "$(dirname "$0")/lib.sh"

cluster_up --shards 2
wait_healthy

gen() {   # PREFIX N SEED -> NDJSON events of users u0..u49
    awk -v p="$1" -v n="$2" -v seed="$3" -v now="$(date +%s%3N)" 'BEGIN {
        srand(seed); split("web mobile game", src, " "); split("checkin visit purchase noop", typ, " ")
        for (i = 0; i < n; i++)
            printf "{\"source\":\"%s\",\"id\":\"%s-%d\",\"user\":\"u%d\",\"type\":\"%s\",\"ts\":%.0f}\n",
                   src[i % 3 + 1], p, i, int(rand() * 50), typ[int(rand() * 4) + 1], now - int(rand() * 60000)
    }'
}
count() {   # FILE STATUS -> how many answers had STATUS
    jq -r 'select(.status) | .status' "$1" | grep -c "^$2\$" || true
}
all_users() { for i in $(seq 0 49); do echo "u$i"; done; }
# Expected "user balance" for u0..u49 from the given event files (0 if none).
expected_all() {
    { expected_balances "$@"; all_users | sed 's/$/ 0/'; } | sort -k1,1 -s | awk '!seen[$1]++' | sort
}

gen a 600 1 > "$WORK/a.ndjson"
gen b 400 2 > "$WORK/b.ndjson"
"$TROVECTL" send --dir "$DIR" --json "$WORK/a.ndjson" > "$WORK/a.out"
[ "$(count "$WORK/a.out" accepted)" -eq 600 ] || fail "the first 600 events were not all accepted"
settle

OUT=$WORK/backup
"$TROVECTL" backup --dir "$DIR" --json "$OUT" > "$WORK/backup.json" || fail "trovectl backup failed"
events=$(jq '[.shards[].events] | add' "$WORK/backup.json")
[ "$events" -eq 600 ] || fail "the backup holds $events events, want 600"
[ "$(jq '.shards | length' "$WORK/backup.json")" -eq 2 ] || fail "the backup does not hold both shards"
for s in s0 s1; do [ -s "$OUT/$s/data.mdb" ] || fail "no $OUT/$s/data.mdb"; done
log "backup: $(jq -c '[.shards[] | {name, position, events}]' "$WORK/backup.json")"

# A second backup into the same directory is refused and changes nothing.
before=$(ls -lR "$OUT" | md5sum)
if "$TROVECTL" backup --dir "$DIR" "$OUT" 2> "$WORK/again.err"; then fail "a backup into a non-empty directory was accepted"; fi
grep -q "not empty" "$WORK/again.err" || fail "unclear refusal: $(cat "$WORK/again.err")"
[ "$(ls -lR "$OUT" | md5sum)" = "$before" ] || fail "a refused backup changed the existing one"

"$TROVECTL" send --dir "$DIR" --json "$WORK/b.ndjson" > "$WORK/b.out"
[ "$(count "$WORK/b.out" accepted)" -eq 400 ] || fail "the next 400 events were not all accepted"

# Restore refuses while the cluster runs, and a backup without its manifest.
if "$TROVECTL" restore --dir "$DIR" "$OUT" 2> "$WORK/running.err"; then fail "restore ran while the cluster runs"; fi
grep -q "stop the cluster first" "$WORK/running.err" || fail "unclear refusal: $(cat "$WORK/running.err")"
cluster_down_checked
mkdir -p "$WORK/partial/s0" && cp "$OUT/s0/data.mdb" "$WORK/partial/s0/"
if "$TROVECTL" restore --dir "$DIR" "$WORK/partial" 2> "$WORK/partial.err"; then fail "restore took a backup without a manifest"; fi
grep -q "not a complete backup" "$WORK/partial.err" || fail "unclear refusal: $(cat "$WORK/partial.err")"
cp -r "$OUT" "$WORK/othermap"
jq '.shard_map = "1,0"' "$OUT/MANIFEST.json" > "$WORK/othermap/MANIFEST.json"
if "$TROVECTL" restore --dir "$DIR" "$WORK/othermap" 2> "$WORK/othermap.err"; then fail "restore took another shard map"; fi
grep -q "shard map" "$WORK/othermap.err" || fail "unclear refusal: $(cat "$WORK/othermap.err")"
ls "$DIR/data" | grep -q pre-restore && fail "a refused restore moved data aside"

"$TROVECTL" restore --dir "$DIR" --json "$OUT" > "$WORK/restore.json" || fail "trovectl restore failed"
[ "$(jq '.restored | length' "$WORK/restore.json")" -eq 2 ] || fail "restore did not restore both shards"
[ "$(ls -d "$DIR"/data/s*.pre-restore-* | wc -l)" -eq 2 ] || fail "the old data directories were not kept aside"
cluster_up
wait_healthy
[ "$(stored_events)" -eq 600 ] || fail "after the restore the cluster stores $(stored_events) events, want 600"
expected_all "$WORK/a.ndjson" > "$WORK/expected.txt"
# shellcheck disable=SC2046
actual_balances $(all_users) > "$WORK/actual.txt"
diff "$WORK/expected.txt" "$WORK/actual.txt" || fail "balances after the restore are not those of the events before the backup"
log "restored: 600 events, $(wc -l < "$WORK/expected.txt") balances exact"

"$TROVECTL" send --dir "$DIR" --json "$WORK/a.ndjson" > "$WORK/a2.out"
[ "$(count "$WORK/a2.out" duplicate)" -eq 600 ] || fail "events in the backup were not answered duplicate"
"$TROVECTL" send --dir "$DIR" --json "$WORK/b.ndjson" > "$WORK/b2.out"
[ "$(count "$WORK/b2.out" accepted)" -eq 400 ] || fail "events after the backup were not accepted again"
settle
expected_all "$WORK/a.ndjson" "$WORK/b.ndjson" > "$WORK/expected.txt"
# shellcheck disable=SC2046
actual_balances $(all_users) > "$WORK/actual.txt"
diff "$WORK/expected.txt" "$WORK/actual.txt" || fail "balances after resending are not those of all events"

# --- a backup under load: a consistent ledger at each shard's position.
"$TROVE_LOAD" --dir "$DIR" --events 40000 --rate 2000 --users 300 --id-prefix load- --json > "$WORK/load.json" 2>/dev/null &
LOAD=$!
until [ "$(stored_events)" -gt 3000 ]; do kill -0 $LOAD 2>/dev/null || fail "the load ended early"; sleep 0.1; done
"$TROVECTL" backup --dir "$DIR" --json "$WORK/online" > "$WORK/online.json" || fail "backup under load failed"
wait $LOAD || fail "trove-load failed"
total=$(jq '[.shards[].events] | add' "$WORK/online.json")
# 1,000 before the load, up to 40,000 more (a slow machine may finish the
# load first: the backup is then a quiet one, still a valid check).
[ "$total" -gt 1000 ] && [ "$total" -le 41000 ] || fail "the backup under load holds $total events"
cluster_down_checked
"$TROVECTL" restore --dir "$DIR" "$WORK/online" > /dev/null || fail "restore of the backup under load failed"
cluster_up
wait_healthy
[ "$(stored_events)" -eq "$total" ] || fail "restored $(stored_events) events, the manifest says $total"
"$TROVECTL" reconcile --dir "$DIR" --json > "$WORK/reconcile.json" || fail "reconcile failed after the restore"
bad=$(jq -s '[.[] | .mismatched_users + .integrity.balance_not_sum + .integrity.sequence_gaps] | add' "$WORK/reconcile.json")
[ "$bad" -eq 0 ] || fail "the ledger restored from a backup under load is inconsistent: $(cat "$WORK/reconcile.json")"
log "backup under load: $total events restored, reconciler finds nothing to repair"
cluster_down_checked
