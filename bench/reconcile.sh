#!/usr/bin/env bash
#   bench/reconcile.sh - what a reconciler run costs, in one run:
#     (a) re-derivation alone, one core: bench-derive, 5,000,000 events of
#         100,000 users (demo rules), and 1,000,000 with stateful rules;
#     (b) a full run on a loaded cluster (2 shards, EVENTS events of 100,000
#         users already in the ledger): duration and events/s, end to end
#         (replica pull, derivation, digests);
#     (c) the scorers' answer p50/p99 at 20,000 events/s, quiet and while
#         runs go on back to back (same cluster, same load, one after the
#         other).
#   Usage: bench/reconcile.sh [BUILD_DIR] [EVENTS]   (default build, 1000000)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
EVENTS=${2:-1000000}
DIR=$(mktemp -d /tmp/trove-bench-rec-XXXXXX)
trap '"$BUILD/trovectl" down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$(dirname "$0")" rev-parse --short HEAD)"
echo
echo "(a) re-derivation, one core:"
"$BUILD/bench-derive" --events 5000000 --users 100000 --rules demo
"$BUILD/bench-derive" --events 1000000 --users 100000 --rules trail

# A cluster whose reconcilers run only on request (the periodic run would
# blur the quiet measurement).
"$BUILD/trovectl" up --dir "$DIR" --port-base 7700 --detach >/dev/null
"$BUILD/trovectl" down --dir "$DIR" >/dev/null
sed -i 's/reconcile_every_s = 60/reconcile_every_s = 0/' "$DIR/trove.cfg"
"$BUILD/trovectl" up --dir "$DIR" --detach >/dev/null
until "$BUILD/trovectl" status --dir "$DIR" >/dev/null 2>&1; do sleep 0.2; done
"$BUILD/trove-load" --dir "$DIR" --events "$EVENTS" --users 100000 --rate 0 --json 2>/dev/null |
    jq -c '{loaded: .accepted, throughput}'

echo
echo "(b) a full run over the loaded ledger (both shards):"
"$BUILD/trovectl" reconcile --dir "$DIR" --json | jq -c '{shard, events_scanned, users_checked, mismatched_users, duration_s, events_per_s: (.events_scanned / .duration_s | floor)}'
echo "    again (replica already pulled):"
"$BUILD/trovectl" reconcile --dir "$DIR" --json | jq -c '{shard, events_scanned, duration_s, events_per_s: (.events_scanned / .duration_s | floor)}'

load() {
    "$BUILD/trove-load" --dir "$DIR" --events 400000 --users 100000 --rate 20000 --id-prefix "$1-" --json 2>/dev/null |
        jq -c --arg what "$1" '{what: $what, achieved: (.throughput | floor), p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, max_ms: .latency_ms.max}'
}
echo
echo "(c) answer latency at 20,000 events/s:"
load quiet
( while [ ! -f "$DIR/stop" ]; do "$BUILD/trovectl" reconcile --dir "$DIR" --json > /dev/null 2>&1 || true; done ) &
runs=$!
load during-runs
touch "$DIR/stop"
wait $runs 2>/dev/null || true
load quiet-again
