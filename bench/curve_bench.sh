#!/usr/bin/env bash
#   bench/curve_bench.sh - what CURVE costs the real pipeline (issue 9).
#
#   Usage: bench/curve_bench.sh [BUILD_DIR] [EVENTS] [PAIRS]
#
#   Fresh local clusters of the same layout (`trovectl up`: 1 broker, 1
#   ingestor, 2 scorers with their reconcilers, sync = full), one at a time,
#   alternating plain and `--curve` (every ZeroMQ link CURVE-encrypted and
#   authenticated, the load generator's too), PAIRS times each (default 3):
#     closed loop: trove-load --events EVENTS --rate 0 (20,000 in flight)
#     open loop:   trove-load --events EVENTS/2 --rate 20000 (answer latency)
#   then bench-curve-zmq (raw sockets, plain vs CURVE) in the same run.
#   Prints a markdown block for bench/RESULTS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=$(cd "${1:-$repo/build}" && pwd)
events=${2:-200000}
pairs=${3:-3}
export PATH="$build:$PATH"
for exe in trovectl trove-load trove-broker trove-ingestor trove-scorer trove-reconciler; do
    command -v "$exe" >/dev/null || { echo "bench/curve_bench.sh: $exe missing: build first" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-curvebench.XXXXXX")
cleanup() {
    trovectl down --dir "$tmp/cluster" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
log() { echo "curve_bench: $*" >&2; }

round() {  # round CLUSTER RATE EVENTS
    log "$1: trove-load --events $3 --rate $2"
    trove-load --dir "$tmp/cluster" --events "$3" --rate "$2" --json 2>/dev/null | jq -c --arg c "$1" --arg r "$2" \
        '{cluster: $c, rate: $r, events_per_s: .throughput, answer_ms: .latency_ms, unanswered: (.unanswered // 0)}'
}
cluster() {  # cluster plain|curve: a fresh cluster, its two rounds, gone
    local flag=--insecure  #  CURVE is the default of trovectl up (issue 18)
    [ "$1" = curve ] && flag=--curve
    # shellcheck disable=SC2086
    trovectl up --dir "$tmp/cluster" --port-base 7800 --detach $flag >/dev/null
    trove-load --dir "$tmp/cluster" --events 2000 --rate 0 --json >/dev/null  # warm-up
    round "$1" 0 "$events"
    round "$1" 20000 $((events / 2))
    trovectl down --dir "$tmp/cluster" >/dev/null
    rm -rf "$tmp/cluster"
}
started=$(date +%s)
{
    for _ in $(seq "$pairs"); do
        cluster plain
        cluster curve
    done
} | tee "$tmp/rounds.jsonl" >&2

echo "## CURVE on the pipeline (bench/curve_bench.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD))"
echo
echo "Command: \`bench/curve_bench.sh $build $events $pairs\` ($(( $(date +%s) - started )) s of rounds); $(nproc) cores, $(uname -r)."
echo "Fresh clusters of the same layout, one at a time, alternating: plain ZeroMQ (baseline: \`trovectl up --insecure\`) and CURVE (\`trovectl up\`, the default)."
echo
echo "| round | cluster | target ev/s | achieved ev/s | answer p50 / p99 (ms) | unanswered |"
echo "|---|---|---|---|---|---|"
jq -r -s 'to_entries[] | .value as $v |
    "| \(.key + 1) | \($v.cluster) | \(if $v.rate == "0" then "closed loop" else $v.rate end) | \($v.events_per_s | floor) | \($v.answer_ms.p50 * 100 | floor / 100) / \($v.answer_ms.p99 * 100 | floor / 100) | \($v.unanswered) |"' \
    "$tmp/rounds.jsonl"
echo
jq -r -s '
    def mean(f): (map(f) | add / length);
    [.[] | select(.rate == "0")] as $c |
    ($c | map(select(.cluster == "plain")) | mean(.events_per_s)) as $p |
    ($c | map(select(.cluster == "curve")) | mean(.events_per_s)) as $q |
    "Closed loop, mean of the rounds: plain \($p | floor) ev/s, CURVE \($q | floor) ev/s: CURVE / plain = \($q / $p * 1000 | floor / 10) %."' \
    "$tmp/rounds.jsonl"
if [ -x "$build/bench-curve-zmq" ]; then
    log "bench-curve-zmq --messages 200000"
    echo
    echo "Raw sockets in the same run (\`bench-curve-zmq --messages 200000\`: one-way DEALER -> ROUTER, TCP loopback):"
    echo
    echo "| message | plain msg/s | CURVE msg/s | CURVE / plain |"
    echo "|---|---|---|---|"
    "$build/bench-curve-zmq" --messages 200000 --json |
        jq -r '.[] | "| \(.size) B | \(.plain_per_s) | \(.curve_per_s) | \(.ratio * 100 | floor) % |"'
fi
