#!/usr/bin/env bash
#   bench/peers/redis.sh - Trove's peer: Redis Streams with one Lua script per
#   batch and AOF `appendfsync always` (bench/peers/README.md), under the
#   load trove-load gives Trove.
#
#   Usage: bench/peers/redis.sh BUILD_DIR [--events N] [--users U]
#              [--rates "0 5000 20000"] [--port P] [--batch B] [--producers P]
#              [--window W] [--warmup N] [--memory]
#
#   BUILD_DIR holds bench-redis-peer. Starts redis-server on 127.0.0.1:P
#   (default 7996) with bench/peers/redis/redis.conf.in in a temporary
#   directory, waits for PING, warms up with --warmup events (2,000), then runs
#   bench-redis-peer once per rate of --rates, in that order (0 = closed
#   loop, else open loop at that many events/s), with FLUSHALL and an AOF
#   rewrite before each run so every run starts from an empty data set and a
#   small AOF. A rate may be given as RATE:EVENTS to run EVENTS events at
#   that rate instead of --events (bench/run.sh gives each rate the count
#   Trove's part has). Prints one JSON line per run on stdout (progress on
#   stderr); stops Redis and removes the directory at exit, whatever
#   happens (set TROVE_BENCH_KEEP=1 to keep the directory). --memory: after
#   each run, one more line {"memory": {...}} with Redis's used_memory and
#   used_memory_peak (INFO memory), redis-server's peak resident set
#   (VmHWM, KiB, from /proc: the process's high-water mark since it
#   started, so give one rate per invocation to measure one data set) and
#   the AOF's size.
#   Exit status: 0 when every run answered every event accepted; 1
#   otherwise; 2 on bad usage or when something is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=""
events=100000
users=1000
rates="0 5000 20000"
port=7996
warmup=2000
memory=0
extra=()
usage () { sed -n '6,8p' "$0" | sed 's/^#   \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --events|--users|--rates|--port|--batch|--producers|--window|--warmup)
            [ $# -ge 2 ] || usage
            case "$1" in
                --events) events=$2 ;;
                --users) users=$2 ;;
                --rates) rates=$2 ;;
                --port) port=$2 ;;
                --warmup) warmup=$2 ;;
                *) extra+=("$1" "$2") ;;
            esac
            shift 2 ;;
        --memory) memory=1; shift ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^#   \{0,1\}//'; exit 0 ;;
        -*) echo "redis.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$build" ] || usage; build=$1; shift ;;
    esac
done
[ -n "$build" ] || usage
peer="$(cd "$build" && pwd)/bench-redis-peer"
if [ ! -x "$peer" ]; then
    echo "redis.sh: $peer is missing: it needs hiredis (run scripts/install-deps.sh, then cmake -S . -B $build and build)" >&2
    exit 2
fi
for exe in redis-server redis-cli; do
    if ! command -v "$exe" >/dev/null; then
        echo "redis.sh: $exe is not installed: run scripts/install-deps.sh (Debian package redis-server)" >&2
        exit 2
    fi
done

log () { echo "redis.sh: $*" >&2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-peer-redis.XXXXXX")
redis_pid=""
stop_redis () {
    [ -n "$redis_pid" ] || return 0
    kill "$redis_pid" 2>/dev/null || true
    #   SIGTERM: Redis fsyncs the AOF and exits; give it 10 s, then SIGKILL.
    local _
    for _ in $(seq 100); do
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
}
cleanup () {
    stop_redis
    if [ "${TROVE_BENCH_KEEP:-0}" = 1 ]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sed -e "s|@PORT@|$port|" -e "s|@DIR@|$tmp|" "$here/redis/redis.conf.in" >"$tmp/redis.conf"
redis-server "$tmp/redis.conf" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
cli () { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
deadline=$((SECONDS + 10))
until [ "$(cli ping 2>/dev/null)" = PONG ]; do
    if ! kill -0 "$redis_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "redis.sh: redis-server did not answer PING on 127.0.0.1:$port; its log:" >&2
        tail -20 "$tmp/redis.log" >&2
        exit 1
    fi
    sleep 0.1
done
log "redis-server $(cli info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p') on 127.0.0.1:$port, dir $tmp"

#   Empty data set and a small AOF: FLUSHALL, then rewrite the AOF and wait
#   until the rewrite is over, so that it does not run during the next run.
reset () {
    [ "$(cli flushall)" = OK ] || { echo "redis.sh: FLUSHALL failed" >&2; exit 1; }
    cli bgrewriteaof >/dev/null
    local deadline=$((SECONDS + 30))
    while cli info persistence | grep -q -E '^aof_rewrite_(in_progress|scheduled):1'; do
        [ $SECONDS -lt $deadline ] || { echo "redis.sh: the AOF rewrite did not end in 30 s" >&2; exit 1; }
        sleep 0.05
    done
}

#   run NAME ARGS...: bench-redis-peer --json, its line on stdout.
run () {
    local name=$1; shift
    log "bench-redis-peer $*"
    if ! "$peer" --host 127.0.0.1 --port "$port" --users "$users" "${extra[@]}" --json "$@" \
        >"$tmp/$name.json" 2>"$tmp/$name.err"; then
        echo "redis.sh: bench-redis-peer $* failed:" >&2
        tail -20 "$tmp/$name.err" >&2
        cat "$tmp/$name.json" >&2
        exit 1
    fi
}

reset
run warmup --events "$warmup" --rate 0
for item in $rates; do
    rate=${item%%:*}
    n=$events
    [ "$item" = "$rate" ] || n=${item#*:}
    reset
    run "rate$rate" --events "$n" --rate "$rate"
    cat "$tmp/rate$rate.json"
    if [ "$memory" = 1 ]; then
        info=$(cli info memory | tr -d '\r')
        used=$(sed -n 's/^used_memory:\(.*\)$/\1/p' <<<"$info")
        peak=$(sed -n 's/^used_memory_peak:\(.*\)$/\1/p' <<<"$info")
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$redis_pid/status")
        aof=$(cli info persistence | tr -d '\r' | sed -n 's/^aof_current_size:\(.*\)$/\1/p')
        echo "{\"memory\": {\"rate\": $rate, \"used_memory_bytes\": $used, \"used_memory_peak_bytes\": $peak, \"vmhwm_kib\": $hwm, \"aof_bytes\": ${aof:-0}}}"
    fi
done
stop_redis
