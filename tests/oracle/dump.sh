#!/usr/bin/env bash
# Dump what a running cluster holds for some users, in model.py's shape:
#   {"users": {USER: {"balance", "hunts": {HUNT: n}, "coins": [{"id", "hunt",
#    "rule", "version", "value", "events": [[source, id], ...]}]}}}
# usage: tests/oracle/dump.sh BUILD_DIR CLUSTER_DIR USERS_FILE > actual.json
#   USERS_FILE: one user per line. Only `trovectl --json` queries (balance,
#   coins --limit 0) and jq. "balance" and "hunts" are the stored balances
#   (`trovectl balance`); "coins" are the live coins: per coin id its latest
#   entry (highest aseq; a user's coins are all on one shard), unless that
#   entry is a revocation. Environment: DUMP_JOBS (parallel `coins` calls,
#   default 4), DUMP_RAW=FILE also keeps every coin entry (NDJSON),
#   DUMP_VIA=tail reads the coin entries from the award log instead (one
#   `trovectl tail --from-start --count N` for N = the sum of the scorers'
#   last_aseq: every entry of every user, in well under a second, where 400
#   `coins` calls take 10-30 s on a busy 2-core machine).
set -euo pipefail
BUILD=${1:?usage: dump.sh BUILD_DIR CLUSTER_DIR USERS_FILE}
CLUSTER=${2:?usage: dump.sh BUILD_DIR CLUSTER_DIR USERS_FILE}
USERS=${3:?usage: dump.sh BUILD_DIR CLUSTER_DIR USERS_FILE}
TROVECTL="$BUILD/trovectl"
[ -x "$TROVECTL" ] || { echo "dump.sh: no $TROVECTL" >&2; exit 2; }
TMP=$(mktemp -d /tmp/oracle-dump-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

grep -v '^$' "$USERS" | sort -u > "$TMP/users"
# balances: 100 users per call
xargs -d '\n' -n 100 -a "$TMP/users" "$TROVECTL" balance --dir "$CLUSTER" --json > "$TMP/balance.ndjson" ||
    { echo "dump.sh: trovectl balance failed (above)" >&2; exit 1; }
# trovectl status, asked up to three times: on a loaded machine one process
# may miss a status round, which must not end the dump without a word.
status_json() {
    local i out
    for i in 1 2 3; do
        if out=$("$TROVECTL" status --dir "$CLUSTER" --json 2>"$TMP/status.err"); then
            printf '%s\n' "$out"
            return 0
        fi
    done
    echo "dump.sh: trovectl status: a process missed 3 rounds: $(tr '\n' ' ' < "$TMP/status.err")" >&2
    return 1
}
if [ "${DUMP_VIA:-coins}" = tail ]; then
    # every award of every shard: 1..last_aseq per shard
    status_json | jq -s -c '[.[] | select(.role == "scorer") | {shard, last_aseq}]' > "$TMP/last.json"
    n=$(jq '[.[].last_aseq] | add // 0' "$TMP/last.json")
    if [ "$n" -gt 0 ]; then
        timeout 300 "$TROVECTL" tail --dir "$CLUSTER" --from-start --count "$n" --json > "$TMP/all.ndjson" ||
            { echo "dump.sh: trovectl tail did not deliver $n awards" >&2; exit 1; }
    else
        : > "$TMP/all.ndjson"
    fi
    got=$(jq -s 'length' "$TMP/all.ndjson")
    [ "$got" -eq "$n" ] || { echo "dump.sh: tail gave $got awards of $n" >&2; exit 1; }
    jq -n -c --rawfile u "$TMP/users" '($u | split("\n") | map({(.): true}) | add) as $set | inputs | select($set[.user])' \
        "$TMP/all.ndjson" > "$TMP/coins.ndjson"
else
    # coins: one call per user (the whole history: --limit 0 pages through it)
    export TROVECTL CLUSTER
    # shellcheck disable=SC2016
    xargs -d '\n' -P "${DUMP_JOBS:-4}" -n 1 -a "$TMP/users" sh -c \
        '"$TROVECTL" coins --dir "$CLUSTER" --json --limit 0 "$1" > "$0/coins.$$.$1.ndjson"' "$TMP"
    # an empty history writes nothing: every file of a user who has coins holds only that user's
    find "$TMP" -name 'coins.*.ndjson' -exec cat {} + > "$TMP/coins.ndjson" 2>/dev/null || true
fi
[ -z "${DUMP_RAW:-}" ] || cp "$TMP/coins.ndjson" "$DUMP_RAW"
n_users=$(wc -l < "$TMP/users")
n_bal=$(jq -s 'length' "$TMP/balance.ndjson")
[ "$n_bal" -eq "$n_users" ] || { echo "dump.sh: $n_bal balances for $n_users users" >&2; exit 1; }

jq -n --slurpfile bal "$TMP/balance.ndjson" --slurpfile coins "$TMP/coins.ndjson" '
  ($coins | map(select(.id)) | group_by(.user)
   | map({key: .[0].user,
          value: (group_by(.id) | map(max_by(.aseq)) | map(select(.revoked | not))
                  | map({id, hunt, rule, version: .rule_version, value,
                         events: [.events[] | [.source, .id]]})
                  | sort_by(.id))})
   | from_entries) as $live
  | {users: ($bal | map({key: .user,
                         value: {balance, hunts, coins: ($live[.user] // [])}})
             | from_entries)}'
