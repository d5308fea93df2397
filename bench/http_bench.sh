#!/usr/bin/env bash
#   bench/http_bench.sh - HTTP ingest throughput next to the ZeroMQ path, in
#   the same run, on the same cluster.
#
#   Usage: bench/http_bench.sh [BUILD_DIR] [EVENTS]
#
#   One cluster (1 ingestor, 2 scorers, sync = full, loopback ports 7800+),
#   its ingestor serving HTTP ingest; rate limits set out of the way (user
#   limit off, source limit 10^9/s). Rounds, alternated so that both paths
#   see the same ledger growth: ZeroMQ (`trove-load --rate 0 --batch 100`,
#   its default window of 20,000 events in flight), HTTP (`bench-http-load
#   --batch 100 --conns 32`: 3,200 in flight; the ingestor has 32 HTTP
#   threads), twice each, then HTTP with 4 connections (400 in flight) and
#   with batches of 1000 (16 connections). Each round EVENTS events (default
#   200,000), closed loop.
#   Then bench-curve-zmq (what CURVE costs the ZeroMQ transport), and prints
#   a markdown block for bench/RESULTS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=$(cd "${1:-$repo/build}" && pwd)
events=${2:-200000}
export PATH="$build:$PATH"
load="$build/bench-http-load"
for exe in trovectl trove-load trove-ingestor "$load"; do
    command -v "$exe" >/dev/null || { echo "bench/http_bench.sh: $exe missing: build first" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-httpbench.XXXXXX")
dir="$tmp/cluster"
P=7800
cleanup() { trovectl down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
log() { echo "http_bench: $*" >&2; }

key=$(trove-ingestor --new-key | awk '$1 == "key" {print $3}')
hash=$(echo "$key" | trove-ingestor --hash-key)
mkdir -p "$dir"
cat >"$dir/trove.cfg" <<CFG
trove
    partitions = 256
    rules = "$dir/rules"
    sync = full
limits
    max_batch = 1000
    max_frame = 1048576
    user_rate = 0
sources
    web
        keys = "$hash"
        rate = 1000000000
        burst = 1000000000
    mobile
    game
    partner
    load
broker
    pub = "tcp://127.0.0.1:$((P + 1))"
    sub = "tcp://127.0.0.1:$((P + 2))"
    control = "tcp://127.0.0.1:$((P + 3))"
ingestor
    i0
        endpoint = "tcp://127.0.0.1:$((P + 10))"
        http = "127.0.0.1:$((P + 250))"
        http_threads = 32
scorer
    s0
        events = "tcp://127.0.0.1:$((P + 20))"
        query = "tcp://127.0.0.1:$((P + 21))"
        partitions = "0-127"
        data = "$dir/data/s0"
    s1
        events = "tcp://127.0.0.1:$((P + 22))"
        query = "tcp://127.0.0.1:$((P + 23))"
        partitions = "128-255"
        data = "$dir/data/s1"
CFG
trovectl up --dir "$dir" --detach >/dev/null
until trovectl status --dir "$dir" >/dev/null 2>&1; do sleep 0.2; done
trove-load --dir "$dir" --events 2000 --rate 0 --json >/dev/null

zmq_round() {
    log "trove-load --events $events --rate 0 --batch 100"
    trove-load --dir "$dir" --events "$events" --rate 0 --batch 100 --json | jq -c \
        '{path: "zeromq (trove-load, window 20000)", events_per_s: .throughput, answer_ms: .latency_ms}'
}
http_round() {
    log "bench-http-load --events $events --batch $1 --conns $2"
    "$load" --address "127.0.0.1:$((P + 250))" --key "$key" --events "$events" --batch "$1" --conns "$2" \
        --users 10000 --json |
        jq -c --arg b "$1" --arg c "$2" '{path: ("http, batch " + $b + ", " + $c + " connections"), events_per_s, request_ms, refused_429_503}'
}
started=$(date +%s)
{
    zmq_round
    http_round 100 32
    zmq_round
    http_round 100 32
    http_round 100 4
    http_round 1000 16
} | tee "$tmp/rounds.jsonl"
echo
echo "## HTTP ingest vs ZeroMQ (bench/http_bench.sh, $(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
echo "Command: \`bench/http_bench.sh $build $events\` ($(( $(date +%s) - started )) s of rounds); $(nproc) cores, $(uname -r)."
echo
echo "| round | path | events/s | latency p50 / p99 (ms) |"
echo "|---|---|---|---|"
jq -r -s 'to_entries[] | .value as $v | ($v.request_ms // $v.answer_ms) as $l |
    "| \(.key + 1) | \($v.path) | \($v.events_per_s | floor) | \($l.p50 * 10 | floor / 10) / \($l.p99 * 10 | floor / 10) |"' \
    "$tmp/rounds.jsonl"
echo
echo "ZeroMQ latency: trove-load's answer time (scheduled -> final answer, 100-event requests); HTTP: request time."
if [ -x "$build/bench-curve-zmq" ]; then
    log "bench-curve-zmq --messages 200000"
    echo
    echo "CURVE vs plain ZeroMQ, same run (\`bench-curve-zmq --messages 200000\`: one-way DEALER -> ROUTER, TCP loopback):"
    echo
    echo "| message | plain msg/s | CURVE msg/s | CURVE / plain |"
    echo "|---|---|---|---|"
    "$build/bench-curve-zmq" --messages 200000 --json |
        jq -r '.[] | "| \(.size) B | \(.plain_per_s) | \(.curve_per_s) | \(.ratio * 100 | floor) % |"'
fi
