#!/usr/bin/env bash
#   The cost of metrics on throughput, measured in one run: the same
#   closed-loop load (300,000 events) on a fresh cluster with /metrics served
#   (the default of `trovectl up`) and with the metrics lines removed from its
#   config, alternating, ROUNDS times each. While the load runs, a scraper
#   fetches every /metrics endpoint every second, as Prometheus would.
#   Usage: bench/metrics_overhead.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
ROUNDS=${2:-3}
DIR=$(mktemp -d /tmp/trove-mo-XXXXXX)
trap '"$BUILD/trovectl" down --dir "$DIR/c" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

scrape_loop() {
    local addrs
    addrs=$(grep -o 'metrics = "[^"]*"' "$DIR/c/trove.cfg" | sed 's/.*"\(.*\)"/\1/')
    while :; do
        for a in $addrs; do
            exec 3<>"/dev/tcp/${a%:*}/${a##*:}" 2>/dev/null || continue
            printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
            cat <&3 >/dev/null
            exec 3<&-
        done
        sleep 1
    done
}

one() {
    local mode=$1
    "$BUILD/trovectl" down --dir "$DIR/c" >/dev/null 2>&1 || true
    rm -rf "$DIR/c"
    "$BUILD/trovectl" up --dir "$DIR/c" --port-base 7700 --detach >/dev/null
    if [ "$mode" = off ]; then
        "$BUILD/trovectl" down --dir "$DIR/c" >/dev/null
        sed -i '/metrics = /d' "$DIR/c/trove.cfg"
        "$BUILD/trovectl" up --dir "$DIR/c" --detach >/dev/null
    fi
    "$BUILD/trove-load" --dir "$DIR/c" --events 2000 --rate 0 >/dev/null 2>&1
    local scraper=""
    if [ "$mode" = on ]; then
        scrape_loop &
        scraper=$!
    fi
    "$BUILD/trove-load" --dir "$DIR/c" --events 300000 --rate 0 --json 2>/dev/null | jq -r '.throughput'
    [ -z "$scraper" ] || kill "$scraper" 2>/dev/null || true
}

on=(); off=()
for _ in $(seq "$ROUNDS"); do
    on+=("$(one on)")
    off+=("$(one off)")
done
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.0f", s / NR }'; }
echo "with metrics (scraped every second): ${on[*]} -> mean $(mean "${on[@]}") events/s"
echo "without metrics:                     ${off[*]} -> mean $(mean "${off[@]}") events/s"
