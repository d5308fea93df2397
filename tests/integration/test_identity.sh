# The identity of an event is its (source, id), cluster-wide (issue 18,
# finding 2; docs/architecture.md, "Event identity"): the shard that owns
# the partition of hash(source NUL id) keeps a claim on it (the event's
# content), so that
#   - the same event sent again is `duplicate`, whichever shard its user is on;
#   - the same (source, id) with other content (another user: on another
#     shard too; another ts) is `rejected id_conflict`, and scores nothing;
#   - claims survive a restart.
# 300 events of random users and ids (about half of them claimed on another
# shard than their user's, with 2 shards), then a copy of each, then each id
# again for another user, then again after a restart.
source "$(dirname "$0")/lib.sh"

cluster_up
wait_healthy
now=$(date +%s%3N)
awk -v now="$now" 'BEGIN { srand(11); for (i = 0; i < 300; i++)
    printf "{\"source\":\"web\",\"id\":\"idn-%d-%d\",\"user\":\"iu-%d\",\"type\":\"purchase\",\"ts\":%.0f}\n", i, int(rand() * 1e6), i, now - i }' \
    > "$WORK/first.ndjson"
# The same ids for other users (on either shard), and for the same users at another ts.
sed 's/"user":"iu-/"user":"other-/' "$WORK/first.ndjson" > "$WORK/other_user.ndjson"
awk -v t="$((now - 999999))" '{ sub(/"ts":[0-9]+/, "\"ts\":" t); print }' "$WORK/first.ndjson" > "$WORK/other_ts.ndjson"

answers() { jq -r 'select(.line) | "\(.status) \(.reason // "-")"' "$1" | sort | uniq -c | awk '{printf "%s %s %s; ", $1, $2, $3}'; }
send() { "$TROVECTL" send --dir "$DIR" --json --timeout 60 "$1" > "$2" 2>/dev/null || true; }
want_all() {  # FILE STATUS REASON
    local n
    n=$(jq -r --arg s "$2" --arg r "$3" 'select(.line) | select(.status == $s and ((.reason // "-") == $r))' "$1" | jq -s length)
    [ "$n" -eq 300 ] || fail "$4: want 300 x $2 $3, got $(answers "$1")"
}
send "$WORK/first.ndjson" "$WORK/a1.json"
want_all "$WORK/a1.json" accepted - "first send"
send "$WORK/first.ndjson" "$WORK/a2.json"
want_all "$WORK/a2.json" duplicate - "the same events again"
send "$WORK/other_user.ndjson" "$WORK/a3.json"
want_all "$WORK/a3.json" rejected id_conflict "the same ids for other users"
send "$WORK/other_ts.ndjson" "$WORK/a4.json"
want_all "$WORK/a4.json" rejected id_conflict "the same ids at another ts"
jq -e -s 'map(select(.line)) | all(.detail | test("ids are unique per source"))' "$WORK/a3.json" > /dev/null ||
    fail "id_conflict without a clear detail: $(head -c 300 "$WORK/a3.json")"

cross=0
settle
stored=$(stored_events)
[ "$stored" -eq 300 ] || fail "stored $stored events, want 300"
balances=$("$TROVECTL" balance --dir "$DIR" --json $(seq -f 'other-%g' 0 299) | jq -s 'map(.balance) | add')
[ "$balances" -eq 0 ] || fail "the conflicting events scored $balances coins"
# Each shard holds claims; across two shards both keep some whose users live on the other.
for s in 0 1; do
    n=$(mdb_stat -s claims "$DIR/data/s$s" 2>/dev/null | awk '/Entries:/ {print $2}')
    [ "${n:-0}" -gt 0 ] || fail "shard s$s keeps no claim"
    cross=$((cross + n))
done
[ "$cross" -eq 300 ] || fail "the shards keep $cross claims, want 300 (one per (source, id))"

# Claims survive a restart.
"$TROVECTL" down --dir "$DIR" > /dev/null
cluster_up
wait_healthy
send "$WORK/other_user.ndjson" "$WORK/a5.json"
want_all "$WORK/a5.json" rejected id_conflict "other users after a restart"
send "$WORK/first.ndjson" "$WORK/a6.json"
want_all "$WORK/a6.json" duplicate - "the same events after a restart"
log "300 ids: duplicates answered duplicate, other users and other ts id_conflict, before and after a restart; 300 claims over 2 shards"
cluster_down_checked
