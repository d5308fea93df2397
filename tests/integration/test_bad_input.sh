# Hostile frames and events against a running cluster: clear errors, daemons
# keep running, nothing written (tests/integration/badinput.c); every message
# refused whole is in the ingestor's dead-letter file with its reason.
source "$(dirname "$0")/lib.sh"

cluster_up
"$TROVECTL" down --dir "$DIR" > /dev/null
# Source mobile gets its own rules (types, a 7-day backdating window): the
# scorer must enforce them for a client that bypasses the ingestor.
awk '{ print } /^    mobile$/ { print "        types = \"checkin,visit,purchase,undo\""; print "        max_past_s = 604800" }' \
    "$DIR/trove.cfg" > "$DIR/trove.cfg.new" && mv "$DIR/trove.cfg.new" "$DIR/trove.cfg"
grep -q 'max_past_s = 604800' "$DIR/trove.cfg" || fail "could not give source mobile its own rules"
cluster_up
wait_healthy
"$BUILD/tests/badinput" "$DIR/trove.cfg"
wait_healthy 10

DL="$DIR/deadletter/i0.ndjson"
[ -s "$DL" ] || fail "no dead-letter file $DL"
jq -e -s 'all(.time and .process == "i0" and (.reason | length > 0) and (.size | type == "number") and (.peer | length > 0))' \
    "$DL" >/dev/null || fail "dead-letter lines malformed: $(head -c 500 "$DL")"
for reason in "malformed" "unknown_field" "frame_too_large" "batch_too_large"; do
    jq -e -s --arg r "$reason" 'any(.reason | startswith($r))' "$DL" >/dev/null ||
        fail "no dead letter with reason '$reason': $(jq -c '{reason, size}' "$DL" | head -20)"
done
# The garbage frame is kept as sent (its first bytes, hex).
jq -e -s 'any(.head | startswith("ffffffff2067617262616765"))' "$DL" >/dev/null || fail "garbage frame not kept: $(head -c 500 "$DL")"
log "dead letters: $(jq -r .reason "$DL" | cut -d: -f1 | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
cluster_down_checked
