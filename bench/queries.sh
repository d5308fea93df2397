#!/usr/bin/env bash
#   bench/queries.sh - the player-facing queries on a board of USERS users
#   (default 1,000,000), one run:
#     (a) load: USERS users get one event each (demo hunt: every event pays),
#         and u0..u999 60 more each (their history has a page of 50);
#     (b) bench-queries alone (the same-run baseline): balance, a history
#         page of 50, top 100 and around-me (k = 5) on the demo all-time
#         board, 10 s each, one client;
#     (c) the same while trove-load ingests 20,000 events/s (random users),
#         what the load itself achieved (answer latency p50/p99), and the
#         scorers' apply backlog meanwhile (sampled once a second).
#   Usage: bench/queries.sh [BUILD_DIR] [USERS] [RATE]
#          (default build, 1000000, 20000 events/s in (c))
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
USERS=${2:-1000000}
RATE=${3:-20000}
DIR=$(mktemp -d /tmp/trove-bench-q-XXXXXX)
trap '"$BUILD/trovectl" down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$(dirname "$0")" rev-parse --short HEAD), $(nproc) cores"
# Reconcilers only on request: a periodic run would blur the measurement.
"$BUILD/trovectl" up --dir "$DIR" --port-base 7800 --detach >/dev/null
"$BUILD/trovectl" down --dir "$DIR" >/dev/null
sed -i 's/reconcile_every_s = 60/reconcile_every_s = 0/' "$DIR/trove.cfg"
"$BUILD/trovectl" up --dir "$DIR" --detach >/dev/null
until "$BUILD/trovectl" status --dir "$DIR" >/dev/null 2>&1; do sleep 0.2; done

echo "(a) load:"
"$BUILD/trove-load" --dir "$DIR" --events "$USERS" --users "$USERS" --users-in-order --types checkin --rate 0 --id-prefix fill- --json 2>/dev/null |
    jq -c '{events: .accepted, throughput: (.throughput | floor)}'
"$BUILD/trove-load" --dir "$DIR" --events 60000 --users 1000 --users-in-order --types checkin --rate 0 --id-prefix heavy- --json 2>/dev/null |
    jq -c '{events: .accepted, throughput: (.throughput | floor)}'
# Boards read the tables as applied: wait until the scorers caught up.
lag() { "$BUILD/trovectl" status --dir "$DIR" --json 2>/dev/null | jq -s '[.[] | select(.role == "scorer") | .inflight] | add // 0'; }
until [ "$(lag)" = 0 ]; do sleep 0.5; done
"$BUILD/trovectl" board --dir "$DIR" demo --list --json | jq -c '{boards: .entries}'

echo "(b) queries alone:"
"$BUILD/bench-queries" --config "$DIR/trove.cfg" --users "$USERS" --heavy 1000 --seconds 10

echo "(c) queries while $RATE events/s are ingested:"
"$BUILD/trove-load" --dir "$DIR" --events $((RATE * 50)) --users "$USERS" --rate "$RATE" --id-prefix live- --json 2>/dev/null |
    jq -c '{load_achieved: (.throughput | floor), answer_p50_ms: .latency_ms.p50, answer_p99_ms: .latency_ms.p99}' > "$DIR/load.json" &
load=$!
# The scorers' apply backlog (events accepted, not yet in the tables) once a
# second: a question about a user waits for that user's records only.
( while kill -0 $load 2>/dev/null; do lag; sleep 1; done > "$DIR/lag.txt" ) &
sleep 2
"$BUILD/bench-queries" --config "$DIR/trove.cfg" --users "$USERS" --heavy 1000 --seconds 10
wait $load
cat "$DIR/load.json"
sort -n "$DIR/lag.txt" | awk '{ v[NR] = $1 } END { if (NR) printf "{\"apply_backlog_events\": {\"samples\": %d, \"p50\": %d, \"max\": %d}}\n", NR, v[int((NR + 1) / 2)], v[NR] }'
