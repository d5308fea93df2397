#!/usr/bin/env bash
#   bench/memory.sh - peak resident memory of every Trove daemon, and of the
#   Redis peer (bench/peers), holding the same data (issue 20 item 7).
#
#   Usage: bench/memory.sh [BUILD_DIR] [EVENTS]   (default build/, 1000000)
#
#   Two data sets, each on a fresh local cluster (`trovectl up`, 1 broker,
#   1 ingestor, 2 scorers, reconcilers off) and then on a fresh Redis:
#     events: EVENTS events of 10,000 users;
#     users:  EVENTS events of EVENTS users (drawn at random, as trove-load
#             and bench-redis-peer draw them: about 63 % of them get one).
#   Closed loop (trove-load --rate 0, bench-redis-peer --rate 0); Trove's
#   scorers are then left to apply everything to their tables before the
#   figures are read. Peak = VmHWM from /proc (the process's high-water
#   mark of resident memory, which for a scorer includes the pages of its
#   LMDB files mapped in and touched: file-backed, shared with the page
#   cache, given back under memory pressure); anon = RssAnon at the end (the
#   process's own heap and stacks; all of Redis's data is anon); data on
#   disk = du of the cluster's directory (Redis: its AOF). Prints a
#   markdown table. Ports 8500+ (Trove) and 8796
#   (Redis), loopback only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BUILD=$(cd "${1:-$repo/build}" && pwd)
EVENTS=${2:-1000000}
for exe in trovectl trove-load trove-broker trove-ingestor trove-scorer bench-redis-peer; do
    [ -x "$BUILD/$exe" ] || { echo "bench/memory.sh: $BUILD/$exe is missing: build first" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "bench/memory.sh: jq is needed" >&2; exit 2; }

DIR=""
cleanup () {
    if [ -n "$DIR" ]; then
        "$BUILD/trovectl" down --dir "$DIR" >/dev/null 2>&1 || true
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

kib_to_mib () { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

#   trove USERS: one cluster, one data set; prints table rows.
trove () {
    local users=$1
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/trove-bench-mem.XXXXXX")
    "$BUILD/trovectl" up --dir "$DIR" --port-base 8500 --detach >/dev/null
    "$BUILD/trovectl" down --dir "$DIR" >/dev/null
    sed -i 's/reconcile_every_s = 60/reconcile_every_s = 0/' "$DIR/trove.cfg"
    "$BUILD/trovectl" up --dir "$DIR" --detach >/dev/null
    local t
    t=$("$BUILD/trove-load" --dir "$DIR" --events "$EVENTS" --users "$users" --rate 0 --id-prefix mem- --json \
        2>/dev/null | jq -r '"\(.accepted) accepted at \(.throughput | floor) ev/s"')
    #   Everything applied to the tables (the apply thread's peak included).
    local lag
    for _ in $(seq 600); do
        lag=$("$BUILD/trovectl" status --dir "$DIR" --json 2>/dev/null |
            jq -s '[.[] | select(.role == "scorer") | .inflight] | add // 1')
        [ "$lag" = 0 ] && break
        sleep 0.5
    done
    local disk
    disk=$(du -sk "$DIR" | cut -f1)
    for pidfile in "$DIR"/pids/*.pid; do
        local name pid hwm rss anon
        name=$(basename "$pidfile" .pid)
        pid=$(cat "$pidfile")
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        echo "| $users | Trove $name | $(kib_to_mib "$hwm") | $(kib_to_mib "$rss") | $(kib_to_mib "$anon") | |"
    done
    echo "| $users | Trove, all data on disk ($t) | | | | $(kib_to_mib "$disk") |"
    "$BUILD/trovectl" down --dir "$DIR" >/dev/null
    rm -rf "$DIR"
    DIR=""
}

#   redis USERS: the peer on a fresh Redis, the same data set.
redis () {
    local users=$1 out
    out=$(bash "$here/peers/redis.sh" "$BUILD" --port 8796 --users "$users" --rates "0:$EVENTS" --memory)
    local run mem
    run=$(grep -v '"memory"' <<<"$out" | tail -1)
    mem=$(grep '"memory"' <<<"$out" | jq -c .memory)
    local hwm used peak aof
    hwm=$(jq -r .vmhwm_kib <<<"$mem")
    aof=$(jq -r .aof_bytes <<<"$mem")
    used=$(jq -r .used_memory_bytes <<<"$mem")
    peak=$(jq -r .used_memory_peak_bytes <<<"$mem")
    echo "| $users | Redis server ($(jq -r '"\(.accepted // .events) events at \(.throughput | floor) ev/s"' <<<"$run"); used_memory $(kib_to_mib $((used / 1024))) MiB, peak $(kib_to_mib $((peak / 1024))) MiB) | $(kib_to_mib "$hwm") | | | $(kib_to_mib $((aof / 1024))) (AOF) |"
}

echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$repo" rev-parse --short HEAD), $(nproc) cores, $EVENTS events"
echo
echo "| users | process | peak RSS (VmHWM) MiB | RSS at the end MiB | of which anon MiB | on disk MiB |"
echo "|---|---|---:|---:|---:|---:|"
for users in 10000 "$EVENTS"; do
    trove "$users"
    redis "$users"
done
