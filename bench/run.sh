#!/usr/bin/env bash
#   bench/run.sh - Trove's benchmark, one run, a few minutes on a small machine.
#
#   Usage: bench/run.sh [--save] [--quick] [--port-base P] [BUILD_DIR]
#
#   BUILD_DIR (default: build/) must hold bench-raw-zmq, bench-raw-lmdb,
#   trovectl, trove-load, the servers and bench-redis-peer (hiredis), and
#   redis-server must be installed (scripts/install-deps.sh). It measures:
#     (a) raw ZeroMQ PUSH/PULL over TCP loopback, 100-byte messages
#     (b) raw LMDB: transactions of 1000 (and 10,000) puts of 150-byte values,
#         fsync per commit; increasing keys (the ceiling), random keys, no fsync;
#         and the floor of one durable answer: a 1 KiB append + fdatasync into
#         a pre-written file (bench-raw-fsync), and an LMDB commit of one put
#     (c) sustained durable pipeline: 1 ingestor, 2 scorers (sync = full),
#         300,000 events, closed loop (trove-load --rate 0)
#     (d) end-to-end latency, open loop with the award stream, at 5,000 and
#         20,000 events/s (submit -> answer, accepted -> award seen)
#     (e) the peer (bench/peers/README.md): Redis Streams + one Lua script per
#         batch, AOF fsync always, with the events, users and rates of (c)
#         and (d), right after them; Trove / Redis ratios of the same run
#   and prints a markdown block (date, commit, machine, commands, numbers),
#   with (c) as a fraction of (a) and (b). --save also writes that block into
#   bench/RESULTS.md, between the "bench:begin" and "bench:end" markers.
#   --quick runs every part with far fewer events (a few seconds each): it
#   proves the benchmark works (tests/integration/test_bench_smoke.sh), its
#   figures mean nothing, and it cannot be combined with --save.
#
#   The cluster runs on loopback ports P+1.. (P = --port-base, default
#   7700) and Redis on 127.0.0.1:P+296, in a temporary directory, which
#   is removed at the end (set TROVE_BENCH_KEEP=1 to keep it for a look).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
save=0
quick=0
port_base=7700
build=""
while [ $# -gt 0 ]; do
    case "$1" in
        --save) save=1 ;;
        --quick) quick=1 ;;
        --port-base)
            if ! [[ "${2:-}" =~ ^[0-9]+$ ]] || [ "$2" -lt 1024 ] || [ "$2" -gt 65000 ]; then
                echo "bench/run.sh: --port-base wants a number in 1024..65000" >&2
                exit 2
            fi
            port_base=$2; shift ;;
        -h|--help) sed -n '2,28p' "$0" | sed -E 's/^# {0,3}//'; exit 0 ;;
        -*) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
if [ "$save" = 1 ] && [ "$quick" = 1 ]; then
    echo "bench/run.sh: --quick figures are not results: no --save with --quick" >&2
    exit 2
fi
build=$(cd "${build:-$repo/build}" && pwd)
for exe in bench-raw-zmq bench-raw-lmdb bench-raw-fsync trovectl trove-load trove-broker trove-ingestor trove-scorer; do
    if [ ! -x "$build/$exe" ]; then
        echo "bench/run.sh: $build/$exe is missing: build first (cmake --build $build)" >&2
        exit 2
    fi
done
if [ ! -x "$build/bench-redis-peer" ]; then
    echo "bench/run.sh: $build/bench-redis-peer is missing: it needs hiredis (run scripts/install-deps.sh, then configure and build $build again)" >&2
    exit 2
fi
command -v redis-server >/dev/null || { echo "bench/run.sh: redis-server is not installed (part (e)): run scripts/install-deps.sh" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench/run.sh: jq is needed" >&2; exit 2; }
export PATH="$build:$PATH"

#   How much of everything. --quick: a few seconds per part, only to prove
#   that every part still runs and prints its figures.
users=1000            #  trove-load's default, given to both systems
if [ "$quick" = 1 ]; then
    zmq_n=200000 lmdb_n=100 lmdb_big_n=10 lmdb_random_n=50 lmdb_s=1
    warm_n=500 d5_n=2500 d20_n=10000 c_n=10000 fsync_n=50
else
    zmq_n=5000000 lmdb_n=1500 lmdb_big_n=300 lmdb_random_n=300 lmdb_s=10
    warm_n=2000 d5_n=100000 d20_n=300000 c_n=300000 fsync_n=2000
fi
redis_port=$((port_base + 296))   #  above every port of the cluster (P+1 .. P+293)
#   1,234,567
commas () { sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta' <<<"$1"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-bench.XXXXXX")
cluster="$tmp/cluster"
cluster_up=0
cleanup () {
    if [ "$cluster_up" = 1 ]; then
        trovectl down --dir "$cluster" >/dev/null 2>&1 || true
    fi
    if [ "${TROVE_BENCH_KEEP:-0}" = 1 ]; then
        echo "bench/run.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

log () { echo "bench: $*" >&2; }

#   Run a command, keep its stdout (one JSON object) in $tmp/$1.json.
run_json () {
    local name=$1; shift
    log "$*"
    "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" || {
        echo "bench/run.sh: '$*' failed:" >&2
        tail -20 "$tmp/$name.err" >&2
        cat "$tmp/$name.json" >&2
        exit 1
    }
}
val () { jq -r "$2" "$tmp/$1.json"; }
ms () { printf '%.3f' "$(val "$1" "$2")"; }

started=$(date +%s)

#   (a) ZeroMQ ceiling
run_json zmq bench-raw-zmq --messages "$zmq_n" --size 100 --json
#   (b) LMDB + fsync ceiling, and without fsync for reference
run_json lmdb bench-raw-lmdb --keys seq --batches "$lmdb_n" --batch 1000 --value 150 --seconds "$lmdb_s" --json
run_json lmdb_big bench-raw-lmdb --keys seq --batches "$lmdb_big_n" --batch 10000 --value 150 --seconds "$lmdb_s" --json
run_json lmdb_random bench-raw-lmdb --keys random --batches "$lmdb_random_n" --batch 1000 --value 150 --seconds "$lmdb_s" --json
run_json lmdb_nosync bench-raw-lmdb --keys seq --batches "$lmdb_n" --batch 1000 --value 150 --seconds "$lmdb_s" --nosync --json
#   The floor of one durable answer: what the scorer's log does per batch
#   (trove_wal), and what it did before (one LMDB commit of one record).
run_json fsync bench-raw-fsync --size 1024 --count "$fsync_n" --seconds "$lmdb_s" --json
run_json lmdb_one bench-raw-lmdb --keys seq --batches "$fsync_n" --batch 1 --value 1024 --seconds "$lmdb_s" --json

#   The cluster
log "trovectl up --dir $cluster --port-base $port_base --detach"
trovectl up --dir "$cluster" --port-base "$port_base" --detach >"$tmp/up.out" 2>&1 || {
    cat "$tmp/up.out" >&2
    exit 1
}
cluster_up=1
#   Warm-up doubles as the readiness check: it retries until the cluster answers.
run_json warmup trove-load --dir "$cluster" --events "$warm_n" --users "$users" --rate 0 --stall-timeout 30 --json

#   (d) end-to-end latency, open loop; first, so that the ledger's
#   background apply of the closed-loop run's backlog does not share the disk
load_d5="trove-load --dir \$DIR --events $d5_n --users $users --rate 5000 --awards --json"
run_json lat5k trove-load --dir "$cluster" --events "$d5_n" --users "$users" --rate 5000 --awards --json
load_d20="trove-load --dir \$DIR --events $d20_n --users $users --rate 20000 --awards --json"
run_json lat20k trove-load --dir "$cluster" --events "$d20_n" --users "$users" --rate 20000 --awards --json
#   (c) sustained durable throughput, closed loop
load_c="trove-load --dir \$DIR --events $c_n --users $users --rate 0 --json"
run_json pipeline trove-load --dir "$cluster" --events "$c_n" --users "$users" --rate 0 --json

trovectl down --dir "$cluster" >/dev/null 2>&1 || true
cluster_up=0

#   (e) the peer, right after, with what (c) and (d) had: the same events,
#   users and rates, in one Redis server (closed loop first, FLUSHALL and an
#   AOF rewrite before each run: bench/peers/redis.sh).
peer_rates="0:$c_n 5000:$d5_n 20000:$d20_n"
peer_cmd="bench/peers/redis.sh BUILD --port $redis_port --users $users --warmup $warm_n --rates \"$peer_rates\""
log "bench/peers/redis.sh $build --port $redis_port --users $users --warmup $warm_n --rates \"$peer_rates\""
"$here/peers/redis.sh" "$build" --port "$redis_port" --users "$users" --warmup "$warm_n" --rates "$peer_rates" \
    >"$tmp/redis.jsonl" 2>"$tmp/redis.err" || {
    echo "bench/run.sh: bench/peers/redis.sh failed:" >&2
    tail -20 "$tmp/redis.err" >&2
    exit 1
}
for pair in "redis_pipeline 0" "redis_lat5k 5000" "redis_lat20k 20000"; do
    read -r name rate <<<"$pair"
    jq -c --argjson r "$rate" 'select(.rate == $r)' "$tmp/redis.jsonl" >"$tmp/$name.json"
    [ -s "$tmp/$name.json" ] || { echo "bench/run.sh: no Redis run at rate $rate in the peer's output" >&2; exit 1; }
done

zmq_rate=$(val zmq .msgs_per_s)
lmdb_rate=$(val lmdb .puts_per_s)
pipe_rate=$(val pipeline .throughput)
frac () { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'; }
checks () {
    local f=$1
    echo "$(val "$f" '.unanswered') unanswered, $(val "$f" '.other') non-final, $(val "$f" '.checks.new_duplicate + .checks.resend_not_duplicate') check failures"
}
lat_row () {
    local f=$1 rate=$2
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$rate" \
        "$(printf '%.0f' "$(val "$f" .throughput)")" \
        "$(ms "$f" .latency_ms.p50)" "$(ms "$f" .latency_ms.p99)" "$(ms "$f" .latency_ms.max)" \
        "$(ms "$f" .awards.accepted_to_award_ms.p50)" "$(ms "$f" .awards.accepted_to_award_ms.p99)" \
        "$(ms "$f" .awards.submit_to_award_ms.p50)" "$(ms "$f" .awards.submit_to_award_ms.p99)"
}

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null || true)" ]; then commit="$commit (dirty tree)"; fi
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
block="$tmp/block.md"
quick_flag=""
[ "$quick" = 1 ] && quick_flag=" --quick"
[ "$port_base" = 7700 ] || quick_flag="$quick_flag --port-base $port_base"
#   ratio_row LABEL TROVE_FILE REDIS_FILE JQ_PATH FORMAT: Trove, Redis, Trove / Redis
ratio_row () {
    local t r
    t=$(val "$2" "$4") r=$(val "$3" "$4")
    printf "| %s | $5 | $5 | %s |\n" "$1" "$t" "$r" \
        "$(awk -v a="$t" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
}
redis_checks () {
    local f=$1
    echo "$(val "$f" .errors) errors, $(val "$f" .unanswered) unanswered, $(val "$f" .accepted)/$(val "$f" .events) accepted"
}
#   Backquotes in the single-quoted formats are markdown, not shell.
# shellcheck disable=SC2016
{
    echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    echo
    echo "Machine: $(nproc) CPU ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)."
    echo "Command: \`bench/run.sh${quick_flag} $build\` ($(( $(date +%s) - started )) s). Cluster: \`trovectl up --dir \$DIR --port-base $port_base --detach\`:"
    echo "1 broker, 1 ingestor, 2 scorers, sync = full, all on this machine with the load generator."
    echo
    echo "| | measurement | result |"
    echo "|---|---|---|"
    printf '| (a) | raw ZeroMQ PUSH/PULL, tcp loopback, 100 B messages (`bench-raw-zmq --messages %s`) | %s msg/s (%s MB/s) |\n' "$zmq_n" \
        "$(printf '%.0f' "$zmq_rate")" "$(val zmq .mb_per_s)"
    printf '| (b) | raw LMDB, 1000 puts x 150 B per txn, increasing keys, fsync per commit (`bench-raw-lmdb --keys seq --batch 1000`) | %s puts/s, %s commits/s, slowest commit %s ms |\n' \
        "$(printf '%.0f' "$lmdb_rate")" "$(val lmdb .commits_per_s)" "$(val lmdb .max_commit_ms)"
    printf '| (b2) | same, 10,000 puts per txn (`--batch 10000`): bigger group commits | %s puts/s, %s commits/s |\n' \
        "$(printf '%.0f' "$(val lmdb_big .puts_per_s)")" "$(val lmdb_big .commits_per_s)"
    printf '| (b3) | same as (b) with random keys (`--keys random`): every put dirties its own page | %s puts/s, %s commits/s |\n' \
        "$(printf '%.0f' "$(val lmdb_random .puts_per_s)")" "$(val lmdb_random .commits_per_s)"
    printf '| (b4) | same as (b) without fsync (`--nosync`), for reference | %s puts/s |\n' \
        "$(printf '%.0f' "$(val lmdb_nosync .puts_per_s)")"
    printf '| (b5) | the floor of a durable answer: 1 KiB append + fdatasync into a pre-written file, what the log does per batch (`bench-raw-fsync --size 1024`) | mean %s ms, p50 %s ms, p99 %s ms (%s appends/s) |\n' \
        "$(awk -v v="$(val fsync .mean_us)" 'BEGIN { printf "%.3f", v / 1000 }')" \
        "$(awk -v v="$(val fsync .p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')" \
        "$(awk -v v="$(val fsync .p99_us)" 'BEGIN { printf "%.3f", v / 1000 }')" "$(val fsync .appends_per_s)"
    printf '| (b6) | one LMDB commit of one 1 KiB put, fsync (`bench-raw-lmdb --batch 1 --value 1024`): the log before trove_wal | %s commits/s (mean %s ms) |\n' \
        "$(val lmdb_one .commits_per_s)" "$(awk -v c="$(val lmdb_one .commits_per_s)" 'BEGIN { printf "%.3f", (c > 0 ? 1000 / c : 0) }')"
    printf '| (c) | durable pipeline, closed loop, %s events (`%s`) | **%s events/s**; answer p50 %s ms, p99 %s ms; %s |\n' \
        "$(commas "$c_n")" "$load_c" "$(printf '%.0f' "$pipe_rate")" "$(ms pipeline .latency_ms.p50)" "$(ms pipeline .latency_ms.p99)" "$(checks pipeline)"
    printf '| | (c) / (a) | %s of raw ZeroMQ |\n' "$(frac "$pipe_rate" "$zmq_rate")"
    printf '| | (c) / (b) | %s of raw LMDB+fsync (events/s over puts/s) |\n' "$(frac "$pipe_rate" "$lmdb_rate")"
    #   lib/ledger/trove_ledger.h: one log append (answer path), then dedup, events,
    #   coins, coinids, users index in the tables (background); balances are
    #   aggregated per user per transaction and not counted.
    printf '| | (c) in LMDB puts: 6 per accepted event (1 log + 5 tables), over 2 shards | %s puts/s = %s of (b), %s of (b2) |\n' \
        "$(awk -v r="$pipe_rate" 'BEGIN { printf "%.0f", 6 * r }')" \
        "$(frac "$(awk -v r="$pipe_rate" 'BEGIN { print 6 * r }')" "$lmdb_rate")" \
        "$(frac "$(awk -v r="$pipe_rate" 'BEGIN { print 6 * r }')" "$(val lmdb_big .puts_per_s)")"
    echo
    echo "(d) End-to-end latency, open loop (latency from the scheduled send time), with the award stream"
    echo "(\`$load_d5\`, \`$load_d20\`). Milliseconds:"
    echo
    echo "| target ev/s | achieved | answer p50 | answer p99 | answer max | accepted->award p50 | accepted->award p99 | submit->award p50 | submit->award p99 |"
    echo "|---|---|---|---|---|---|---|---|---|"
    lat_row lat5k 5000
    lat_row lat20k 20000
    echo
    echo "Awards seen: $(val lat5k .awards.events)/$(val lat5k .awards.accepted_events) events at 5k/s, $(val lat20k .awards.events)/$(val lat20k .awards.accepted_events) at 20k/s."
    echo "Checks: 5k/s: $(checks lat5k); 20k/s: $(checks lat20k)."
    echo
    echo "(e) The peer (bench/peers/README.md): Redis $(val redis_pipeline .redis_version), events into a stream, one Lua"
    echo "script per batch doing the demo hunt (\`bench/peers/redis/hunt.lua\`), AOF \`appendfsync always\`; run right after"
    echo "(c) and (d) on this machine with their events, users and rates (\`$peer_cmd\`)."
    echo "Redis's answer is the script's reply, sent after its writes are fsynced; latency from the scheduled send time."
    echo "Trove / Redis above 1 in the first row, below 1 in the others: Trove does better."
    echo
    echo "| measurement | Trove | Redis | Trove / Redis |"
    echo "|---|---|---|---|"
    ratio_row "closed loop, events/s (higher is better)" pipeline redis_pipeline .throughput %.0f
    ratio_row "answer p50 at 5,000 events/s, ms (lower is better)" lat5k redis_lat5k .latency_ms.p50 %.3f
    ratio_row "answer p99 at 5,000 events/s, ms" lat5k redis_lat5k .latency_ms.p99 %.3f
    ratio_row "answer p50 at 20,000 events/s, ms" lat20k redis_lat20k .latency_ms.p50 %.3f
    ratio_row "answer p99 at 20,000 events/s, ms" lat20k redis_lat20k .latency_ms.p99 %.3f
    echo
    echo "Redis: achieved $(printf '%.0f' "$(val redis_lat5k .throughput)") and $(printf '%.0f' "$(val redis_lat20k .throughput)") events/s open loop;"
    echo "mean events per script call $(val redis_pipeline .mean_batch) (closed loop), $(val redis_lat5k .mean_batch) (5k/s), $(val redis_lat20k .mean_batch) (20k/s)."
    echo "Checks: closed loop: $(redis_checks redis_pipeline); 5k/s: $(redis_checks redis_lat5k); 20k/s: $(redis_checks redis_lat20k)."
} >"$block"

cat "$block"
if [ "$save" = 1 ]; then
    results="$here/RESULTS.md"
    if ! grep -q '<!-- bench:begin -->' "$results" 2>/dev/null; then
        echo "bench/run.sh: no bench:begin marker in $results, not saved" >&2
        exit 1
    fi
    awk -v block="$block" '
        /<!-- bench:begin -->/ { print; print ""; while ((getline line < block) > 0) print line; print ""; skip = 1; next }
        /<!-- bench:end -->/ { skip = 0 }
        !skip { print }
    ' "$results" >"$tmp/RESULTS.md"
    cp "$tmp/RESULTS.md" "$results"
    log "saved into $results"
fi
