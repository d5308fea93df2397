#!/usr/bin/env bash
# Every leaderboard of some hunts, in model.py --boards' shape:
#   {"boards": {"HUNT PERIOD": [[user, score, rank], ...], "* all": [...]}}
# usage: tests/oracle/boards.sh BUILD_DIR CLUSTER_DIR HUNT... > boards.json
#   Periods: `all` and what `trovectl board HUNT --list` lists (day:, week:);
#   `*` has only `all`. Entries in board order, paged with --after.
#   Leaderboard reads do not wait for the apply thread (docs/queries.md,
#   Freshness): call it once the cluster is settled (lib.sh `settle`).
set -euo pipefail
BUILD=${1:?usage: boards.sh BUILD_DIR CLUSTER_DIR HUNT...}
CLUSTER=${2:?usage: boards.sh BUILD_DIR CLUSTER_DIR HUNT...}
shift 2
TROVECTL="$BUILD/trovectl"
TMP=$(mktemp -d /tmp/oracle-boards-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

board() {  # board HUNT PERIOD: "[user,score,rank]" lines, every page
    local h=$1 p=$2 after="" page
    while :; do
        if [ -n "$after" ]; then
            page=$("$TROVECTL" board "$h" --period "$p" --limit 1000 --after "$after" --json --dir "$CLUSTER")
        else
            page=$("$TROVECTL" board "$h" --period "$p" --limit 1000 --json --dir "$CLUSTER")
        fi
        jq -c '.entries[] | [.user, .score, .rank]' <<< "$page"
        [ "$(jq -r '.more' <<< "$page")" = true ] || break
        after=$(jq -r '.entries[-1] | "\(.score):\(.user)"' <<< "$page")
    done
}

{
    for h in "$@" '*'; do
        periods=all
        if [ "$h" != '*' ]; then
            list=$("$TROVECTL" board "$h" --list --limit 1000 --json --dir "$CLUSTER")
            [ "$(jq -r '.more' <<< "$list")" != true ] || { echo "boards.sh: more than 1000 boards for $h" >&2; exit 1; }
            periods="all $(jq -r '.entries[].period' <<< "$list" | tr '\n' ' ')"
        fi
        for p in $periods; do
            board "$h" "$p" | jq -s -c --arg k "$h $p" '{($k): .}'
        done
    done
} | jq -s 'add // {} | with_entries(select(.value | length > 0)) | {boards: .}'
