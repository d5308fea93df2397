#!/usr/bin/env bash
# Replay one finding's minimal story on a fresh local cluster and compare
# with the model (tests/oracle/one.sh): before and after `trovectl reconcile`.
# usage: tests/oracle/findings/repro.sh NAME BUILD_DIR
#   NAME: a folder here (rules/*.yaml, events.ndjson). An event's "ts" of the
#   form "T+N" / "T-N" is N ms after / before T = now - 2 h (the ingestors
#   refuse a ts far from their clock, docs/events.md).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME=${1:?usage: repro.sh NAME BUILD_DIR}
BUILD=${2:?usage: repro.sh NAME BUILD_DIR}
[ -d "$HERE/$NAME" ] || { echo "repro.sh: no finding $NAME" >&2; exit 2; }
TMP=$(mktemp -d /tmp/oracle-repro-XXXXXX)
T=$(( ($(date +%s) - 7200) * 1000 ))
jq -c --argjson T "$T" '.ts |= (if type == "string" and test("^T[+-][0-9]+$")
                                then $T + (.[1:] | tonumber) else . end)' "$HERE/$NAME/events.ndjson" > "$TMP/events.ndjson"
cat "$TMP/events.ndjson"
ONE_OUT="$TMP/out" bash "$HERE/../one.sh" "$BUILD" "$HERE/$NAME/rules" "$TMP/events.ndjson"
