#!/usr/bin/env bash
# Triage: replay some users' events (in the file's order, one `trovectl send`
# per event unless --chunk) on a fresh local cluster with the given rules,
# then compare with the model, before and after `trovectl reconcile`, and
# print every coin entry of those users.
#
# usage: tests/oracle/one.sh BUILD_DIR RULES_DIR EVENTS_FILE [USER...] [--chunk]
#   no USER: every event of the file. Keeps its files in $ONE_OUT (default
#   a temp dir, printed).
set -euo pipefail
ORACLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
BUILD_ARG=${1:?usage: one.sh BUILD_DIR RULES_DIR EVENTS_FILE [USER...]}
RULES=$(cd "${2:?rules dir}" && pwd)
EVENTS=$(cd "$(dirname "${3:?events}")" && pwd)/$(basename "$3")
shift 3
CHUNK=0
SEL=()
for a in "$@"; do
    if [ "$a" = --chunk ]; then CHUNK=1; else SEL+=("$a"); fi
done
source "$ORACLE/../integration/lib.sh" "$BUILD_ARG"
for f in "$RULES"/*.yaml; do "$TROVECTL" rules check "$f" >/dev/null || fail "rules check $f"; done
O=${ONE_OUT:-$(mktemp -d /tmp/oracle-one-XXXXXX)}
mkdir -p "$O"

if [ ${#SEL[@]} -gt 0 ]; then
    printf '%s\n' "${SEL[@]}" > "$O/users.txt"
    jq -c --rawfile u "$O/users.txt" 'select(.user as $x | ($u | split("\n")) | index($x))' "$EVENTS" > "$O/events.ndjson"
else
    cp "$EVENTS" "$O/events.ndjson"
    jq -r .user "$EVENTS" | sort -u > "$O/users.txt"
fi
mkdir -p "$DIR/rules"
cp "$RULES"/*.yaml "$DIR/rules/"
cluster_up
wait_healthy
"$TROVECTL" down --dir "$DIR" >/dev/null
sed -i 's/^\(\s*reconcile_every_s\s*=\s*\).*/\10/' "$DIR/trove.cfg"
rm -rf "$DIR/data"
cluster_up
wait_healthy
cp "$DIR"/rules/*.yaml "$O/" 2>/dev/null || true
: > "$O/answers.ndjson"
if [ "$CHUNK" = 1 ]; then
    "$TROVECTL" send --dir "$DIR" --json "$O/events.ndjson" >> "$O/answers.ndjson" 2>/dev/null
else
    while IFS= read -r line; do
        printf '%s\n' "$line" | "$TROVECTL" send --dir "$DIR" --json - >> "$O/answers.ndjson" 2>/dev/null
    done < "$O/events.ndjson"
fi
jq -r 'select(.status) | "\(.source) \(.id) - - \(.status) \(.reason // "-")"' "$O/answers.ndjson" > "$O/history.txt"
mkdir -p "$O/rules"
cp "$DIR"/rules/*.yaml "$O/rules/"
"$PY" "$ORACLE/model.py" --rules "$O/rules" --events "$O/events.ndjson" --accepted "$O/history.txt" --out "$O/expected.json"
DUMP_RAW="$O/coins-realtime.ndjson" "$ORACLE/dump.sh" "$BUILD" "$DIR" "$O/users.txt" > "$O/actual-realtime.json"
echo "== real time"
"$PY" "$ORACLE/compare.py" --expected "$O/expected.json" --actual "$O/actual-realtime.json" || true
echo "== coin entries (aseq order)"
jq -s -r 'sort_by(.aseq) | .[] | "\(.aseq) \(.user) \(.id[0:8]) \(.hunt)/\(.rule) v\(.rule_version) \(.value) \(if .revoked then "REVOKE" else "mint" end) \(.reason) \([.events[] | .source + "/" + .id] | join(","))"' "$O/coins-realtime.ndjson"
"$TROVECTL" balance --dir "$DIR" --json $(cat "$O/users.txt")
"$TROVECTL" reconcile --dir "$DIR" --json > "$O/reconcile.json" || true
DUMP_RAW="$O/coins-reconciled.ndjson" "$ORACLE/dump.sh" "$BUILD" "$DIR" "$O/users.txt" > "$O/actual-reconciled.json"
echo "== after reconcile ($(jq -s -c 'map(.mismatched_users) | add' "$O/reconcile.json") mismatched users)"
"$PY" "$ORACLE/compare.py" --expected "$O/expected.json" --actual "$O/actual-reconciled.json" || true
echo "files: $O"
