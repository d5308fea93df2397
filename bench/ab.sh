#!/usr/bin/env bash
#   bench/ab.sh - two builds of Trove side by side, in one run: what a change
#   costs. Fresh local clusters of the same layout (`trovectl up`, its
#   defaults: 1 ingestor, 2 scorer shards, CURVE, sync=full), one at a time,
#   alternating A and B for ROUNDS rounds; each round runs trove-load closed
#   loop (EVENTS events, 20,000 in flight) and open loop at 5,000 events/s
#   (EVENTS/2 events). Prints a Markdown table: each build's mean closed-loop
#   events/s and its answer p50/p99 at 5k/s, and B / A.
#
#   Usage: bench/ab.sh BUILD_A BUILD_B [EVENTS] [ROUNDS] [FLAGS...]
#     FLAGS go to `trovectl up` for both (e.g. --insecure).
#   Needs jq. Loopback only; ports from 7900.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '9,11p' "$0" | sed 's/^#   //' >&2; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd)
EVENTS=${3:-200000} ROUNDS=${4:-3}
shift $(($# < 4 ? $# : 4))
FLAGS=("$@")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-ab.XXXXXX")
trap 'for b in "$A" "$B"; do "$b/trovectl" down --dir "$tmp/cluster" >/dev/null 2>&1 || true; done; rm -rf "$tmp"' EXIT
log() { echo "ab: $*" >&2; }
started=$(date +%s)
round() {  # round LABEL BUILD
    local label=$1 b=$2
    rm -rf "$tmp/cluster"
    "$b/trovectl" up --dir "$tmp/cluster" --port-base 7900 --detach "${FLAGS[@]}" >/dev/null
    "$b/trove-load" --dir "$tmp/cluster" --events 2000 --rate 0 --json >/dev/null  # warm-up
    "$b/trove-load" --dir "$tmp/cluster" --events "$EVENTS" --rate 0 --users 10000 --json |
        jq -c --arg l "$label" '{build: $l, loop: "closed", eps: .throughput}' >> "$tmp/results.json"
    "$b/trove-load" --dir "$tmp/cluster" --events $((EVENTS / 2)) --rate 5000 --users 10000 --json |
        jq -c --arg l "$label" '{build: $l, loop: "5k", p50: .latency_ms.p50, p99: .latency_ms.p99}' >> "$tmp/results.json"
    "$b/trovectl" down --dir "$tmp/cluster" >/dev/null
    log "$label: $(tail -n 2 "$tmp/results.json" | tr '\n' ' ')"
}
for r in $(seq 1 "$ROUNDS"); do
    round A "$A"
    round B "$B"
done
echo "Builds: A = $A, B = $B; $ROUNDS alternating rounds, $(( $(date +%s) - started )) s; $(nproc) cores; flags: ${FLAGS[*]:-(none)}"
echo
echo "| build | closed loop events/s (mean of $ROUNDS) | 5k/s answer p50 / p99 ms (mean) |"
echo "|---|---:|---:|"
jq -s -r '
    def mean(f): (map(f) | add) / length;
    (map(select(.loop == "closed")) | group_by(.build) | map({key: .[0].build, value: mean(.eps)}) | from_entries) as $e |
    (map(select(.loop == "5k")) | group_by(.build) | map({key: .[0].build, value: {p50: mean(.p50), p99: mean(.p99)}}) | from_entries) as $l |
    ["A", "B"][] as $b |
    "| \($b) | \($e[$b] | floor) | \($l[$b].p50 * 100 | floor / 100) / \($l[$b].p99 * 100 | floor / 100) |",
    (if $b == "B" then "| B / A | \(($e.B / $e.A) * 1000 | floor / 1000) | \(($l.B.p50 / $l.A.p50) * 100 | floor / 100) / \(($l.B.p99 / $l.A.p99) * 100 | floor / 100) |" else empty end)
' "$tmp/results.json"
echo
echo "Every round:"
jq -c . "$tmp/results.json"
