#!/usr/bin/env bash
#   bench/breakdown.sh - where the answer's latency goes at 5,000 events/s:
#   a fresh cluster of SHARDS scorers (trovectl up, loopback ports from
#   PORT_BASE), a 2,000-event warm-up, then `trove-load --events 60000
#   --users 1000 --rate 5000`; prints the load's answer p50/p99 and, from
#   the daemons' /metrics, the means of: the ingestor's receipt-to-answer,
#   each scorer's ingestor-receipt-to-log-commit and log commit time, and
#   events per commit. The cluster is stopped and removed at the end.
#
#   Usage: bench/breakdown.sh BUILD_DIR [SHARDS] [PORT_BASE]
#          (defaults: 2 shards, port base 9100)
set -euo pipefail
B=$(cd "${1:?usage: bench/breakdown.sh BUILD_DIR [SHARDS] [PORT_BASE]}" && pwd)
N=${2:-2}
P=${3:-9100}
D=$(mktemp -d /tmp/trove-breakdown.XXXXXX)
trap '"$B/trovectl" down --dir "$D/c" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
export PATH=$B:$PATH
trovectl up --dir "$D/c" --port-base "$P" --shards "$N" --detach >/dev/null
trove-load --dir "$D/c" --events 2000 --users 1000 --rate 0 --stall-timeout 30 --json >/dev/null 2>&1
out=$(trove-load --dir "$D/c" --events 60000 --users 1000 --rate 5000 --json 2>/dev/null)
#   mean PORT METRIC [SCALE]: sum/count of a histogram (times SCALE)
mean() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" -v k="${3:-1000}" '
        $1 ~ "^"m"_sum" { s += $2 } $1 ~ "^"m"_count" { c += $2 }
        END { if (c) printf "%.2f", s / c * k; else printf "-" }'
}
echo "shards=$N answer p50/p99 $(echo "$out" | jq .latency_ms.p50)/$(echo "$out" | jq .latency_ms.p99) ms;" \
     "ingestor receipt to answer mean $(mean $((P + 210)) trove_ingestor_answer_seconds) ms"
for k in $(seq 0 $((N - 1))); do
    sp=$((P + 230 + k))
    echo "  s$k: ingestor receipt to log commit $(mean $sp trove_scorer_receive_to_commit_seconds) ms," \
         "log commit $(mean $sp trove_scorer_log_commit_seconds) ms," \
         "events per commit $(mean $sp trove_scorer_batch_events 1)"
done
