#!/usr/bin/env bash
#   bench/run.sh - Trove's benchmark, one run, a few minutes on a small machine.
#
#   Usage: bench/run.sh [--save] [BUILD_DIR]
#
#   BUILD_DIR (default: build/) must hold bench-raw-zmq, bench-raw-lmdb,
#   trovectl, trove-load and the servers. It measures:
#     (a) raw ZeroMQ PUSH/PULL over TCP loopback, 100-byte messages
#     (b) raw LMDB: transactions of 1000 (and 10,000) puts of 150-byte values,
#         fsync per commit; increasing keys (the ceiling), random keys, no fsync
#     (c) sustained durable pipeline: 1 ingestor, 2 scorers (sync = full),
#         300,000 events, closed loop (trove-load --rate 0)
#     (d) end-to-end latency, open loop with the award stream, at 5,000 and
#         20,000 events/s (submit -> answer, accepted -> award seen)
#   and prints a markdown block (date, commit, machine, commands, numbers),
#   with (c) as a fraction of (a) and (b). --save also writes that block into
#   bench/RESULTS.md, between the "bench:begin" and "bench:end" markers.
#
#   The cluster runs on loopback ports 7700+ in a temporary directory, which
#   is removed at the end (set TROVE_BENCH_KEEP=1 to keep it for a look).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
save=0
build=""
for arg in "$@"; do
    case "$arg" in
        --save) save=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^#   \{0,1\}//'; exit 0 ;;
        -*) echo "bench/run.sh: unknown option $arg" >&2; exit 2 ;;
        *) build=$arg ;;
    esac
done
build=$(cd "${build:-$repo/build}" && pwd)
for exe in bench-raw-zmq bench-raw-lmdb trovectl trove-load trove-broker trove-ingestor trove-scorer; do
    if [ ! -x "$build/$exe" ]; then
        echo "bench/run.sh: $build/$exe is missing: build first (cmake --build $build)" >&2
        exit 2
    fi
done
command -v jq >/dev/null || { echo "bench/run.sh: jq is needed" >&2; exit 2; }
export PATH="$build:$PATH"

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
run_json zmq bench-raw-zmq --messages 5000000 --size 100 --json
#   (b) LMDB + fsync ceiling, and without fsync for reference
run_json lmdb bench-raw-lmdb --keys seq --batches 1500 --batch 1000 --value 150 --seconds 10 --json
run_json lmdb_big bench-raw-lmdb --keys seq --batches 300 --batch 10000 --value 150 --seconds 10 --json
run_json lmdb_random bench-raw-lmdb --keys random --batches 300 --batch 1000 --value 150 --seconds 10 --json
run_json lmdb_nosync bench-raw-lmdb --keys seq --batches 1500 --batch 1000 --value 150 --seconds 10 --nosync --json

#   The cluster
log "trovectl up --dir $cluster --port-base 7700 --detach"
trovectl up --dir "$cluster" --port-base 7700 --detach >"$tmp/up.out" 2>&1 || {
    cat "$tmp/up.out" >&2
    exit 1
}
cluster_up=1
#   Warm-up doubles as the readiness check: it retries until the cluster answers.
run_json warmup trove-load --dir "$cluster" --events 2000 --rate 0 --stall-timeout 30 --json

#   (d) end-to-end latency, open loop; first, so that the ledger's
#   background apply of the closed-loop run's backlog does not share the disk
load_d5="trove-load --dir \$DIR --events 100000 --rate 5000 --awards --json"
run_json lat5k trove-load --dir "$cluster" --events 100000 --rate 5000 --awards --json
load_d20="trove-load --dir \$DIR --events 300000 --rate 20000 --awards --json"
run_json lat20k trove-load --dir "$cluster" --events 300000 --rate 20000 --awards --json
#   (c) sustained durable throughput, closed loop
load_c="trove-load --dir \$DIR --events 300000 --rate 0 --json"
run_json pipeline trove-load --dir "$cluster" --events 300000 --rate 0 --json

trovectl down --dir "$cluster" >/dev/null 2>&1 || true
cluster_up=0

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
#   Backquotes in the single-quoted formats are markdown, not shell.
# shellcheck disable=SC2016
{
    echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    echo
    echo "Machine: $(nproc) CPU ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)."
    echo "Command: \`bench/run.sh $build\` ($(( $(date +%s) - started )) s). Cluster: \`trovectl up --dir \$DIR --port-base 7700 --detach\`:"
    echo "1 broker, 1 ingestor, 2 scorers, sync = full, all on this machine with the load generator."
    echo
    echo "| | measurement | result |"
    echo "|---|---|---|"
    printf '| (a) | raw ZeroMQ PUSH/PULL, tcp loopback, 100 B messages (`bench-raw-zmq --messages 5000000`) | %s msg/s (%s MB/s) |\n' \
        "$(printf '%.0f' "$zmq_rate")" "$(val zmq .mb_per_s)"
    printf '| (b) | raw LMDB, 1000 puts x 150 B per txn, increasing keys, fsync per commit (`bench-raw-lmdb --keys seq --batch 1000`) | %s puts/s, %s commits/s, slowest commit %s ms |\n' \
        "$(printf '%.0f' "$lmdb_rate")" "$(val lmdb .commits_per_s)" "$(val lmdb .max_commit_ms)"
    printf '| (b2) | same, 10,000 puts per txn (`--batch 10000`): bigger group commits | %s puts/s, %s commits/s |\n' \
        "$(printf '%.0f' "$(val lmdb_big .puts_per_s)")" "$(val lmdb_big .commits_per_s)"
    printf '| (b3) | same as (b) with random keys (`--keys random`): every put dirties its own page | %s puts/s, %s commits/s |\n' \
        "$(printf '%.0f' "$(val lmdb_random .puts_per_s)")" "$(val lmdb_random .commits_per_s)"
    printf '| (b4) | same as (b) without fsync (`--nosync`), for reference | %s puts/s |\n' \
        "$(printf '%.0f' "$(val lmdb_nosync .puts_per_s)")"
    printf '| (c) | durable pipeline, closed loop, 300,000 events (`%s`) | **%s events/s**; answer p50 %s ms, p99 %s ms; %s |\n' \
        "$load_c" "$(printf '%.0f' "$pipe_rate")" "$(ms pipeline .latency_ms.p50)" "$(ms pipeline .latency_ms.p99)" "$(checks pipeline)"
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
