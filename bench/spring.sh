#!/usr/bin/env bash
#   bench/spring.sh - the pipeline with every rule kind (issue 20 item 3):
#   the same cluster shape as bench/run.sh (c) (1 broker, 1 ingestor, 2
#   scorers, sync = full), closed loop, first with the demo hunt (stateless
#   `each`, the baseline of this run), then with etc/examples/spring-hunt.yaml
#   (each + cap + cooldown, distinct count, sequence, streak, where), its
#   window moved around today and its `store` source (not configured by
#   `trovectl up`) read as `partner`; events of the types it matches, with
#   the attributes it reads (`trove-load --attrs`: zone, clue, amount).
#   Prints one JSON line per hunt and the ratio.
#
#   Usage: bench/spring.sh [BUILD_DIR] [EVENTS] [USERS] [PORT_BASE]
#          (defaults: build, 300000, 10000, 7900)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../build}" && pwd)
EVENTS=${2:-300000}
USERS=${3:-10000}
P=${4:-7900}
D=$(mktemp -d /tmp/trove-bench-spring.XXXXXX)
trap '"$B/trovectl" down --dir "$D/demo" >/dev/null 2>&1 || true; "$B/trovectl" down --dir "$D/spring" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
export PATH=$B:$PATH
types=checkin,visit,scan,purchase,play

#   run NAME: a fresh cluster in $D/NAME with the rules already in place
run() {
    local name=$1
    trovectl up --dir "$D/$name" --port-base "$P" --detach >/dev/null
    trove-load --dir "$D/$name" --events 2000 --users "$USERS" --types "$types" --attrs --rate 0 \
        --stall-timeout 30 --json >/dev/null
    trove-load --dir "$D/$name" --events "$EVENTS" --users "$USERS" --types "$types" --attrs --rate 0 --json |
        jq -c --arg hunt "$name" '{hunt: $hunt, throughput, answer_p50_ms: .latency_ms.p50,
            answer_p99_ms: .latency_ms.p99, accepted, unanswered}'
    trovectl down --dir "$D/$name" >/dev/null
}

#   The demo hunt: trovectl up writes it.
demo=$(run demo)
echo "$demo"
#   Spring: write the layout, swap the rules, start again.
trovectl up --dir "$D/spring" --port-base "$P" --detach >/dev/null
trovectl down --dir "$D/spring" >/dev/null
rm -f "$D/spring/rules/"*.yaml
year=$(date -u +%Y)
sed -e "s/^effective: .*/effective: $((year - 1))-01-01T00:00:00Z/" \
    -e "s/^start: .*/start: $((year - 1))-01-01T00:00:00Z/" \
    -e "s/^end: .*/end: $((year + 2))-01-01T00:00:00Z/" \
    -e 's/source: store/source: partner/' \
    "$here/../etc/examples/spring-hunt.yaml" > "$D/spring/rules/spring-hunt.yaml"
spring=$(run spring)
echo "$spring"
awk -v a="$(echo "$spring" | jq .throughput)" -v b="$(echo "$demo" | jq .throughput)" \
    'BEGIN { printf "spring / demo throughput: %.2f\n", a / b }'
