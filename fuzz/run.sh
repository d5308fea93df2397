#!/usr/bin/env bash
#   fuzz/run.sh - build the libFuzzer targets and run them.
#
#   Usage: fuzz/run.sh [--brief] [--seconds N] [--target T] [BUILD_DIR]
#
#   Targets: msg (protobuf decode + validation), json (JSON/NDJSON bodies),
#   http (HTTP request handling), rules (hunt file parser), frame (HTTP
#   request framing: the first bytes of a connection).
#   For each target: first every input of fuzz/corpus/T and
#   fuzz/regressions/T is run once (a crash there is a regression: exit 1),
#   then libFuzzer runs N seconds (default 600; --brief: 4, for CI) from a
#   working corpus in BUILD_DIR/work/T seeded with fuzz/corpus/T. New crashes
#   land in BUILD_DIR/artifacts/T/: fix them, then copy each input into
#   fuzz/regressions/T/ (it stays a test forever). Interesting new inputs
#   can be merged into fuzz/corpus/T with libFuzzer's -merge=1.
#   Needs clang and libclang-rt-14-dev (scripts/install-deps.sh); without
#   them it says so and exits 77 (ctest: skipped). Runs under nice -n 19.
#   BUILD_DIR defaults to build-fuzz/ at the top of the tree.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=600
targets=(msg json http rules frame)
build=""
while [ $# -gt 0 ]; do
    case "$1" in
        --brief) seconds=4 ;;
        --seconds) seconds=$2; shift ;;
        --target) targets=("$2"); shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^#   \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
build=${build:-$root/build-fuzz}

if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    echo "fuzz/run.sh: clang with libFuzzer not installed (scripts/install-deps.sh): skipped" >&2
    exit 77
fi
mkdir -p "$build"
if ! { cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=None >"$build/configure.log" 2>&1 &&
       nice -n 19 cmake --build "$build" --parallel 2 >"$build/build.log" 2>&1; }; then
    echo "fuzz/run.sh: the fuzz build failed:" >&2
    tail -n 30 "$build/configure.log" "$build/build.log" >&2
    exit 1
fi

status=0
for t in "${targets[@]}"; do
    exe="$build/fuzz_$t"
    [ -x "$exe" ] || { echo "fuzz/run.sh: no target $t" >&2; exit 2; }
    seeds="$here/corpus/$t"
    regress="$here/regressions/$t"
    work="$build/work/$t"
    artifacts="$build/artifacts/$t/"
    mkdir -p "$work" "$artifacts" "$seeds"
    inputs=("$seeds")
    [ -d "$regress" ] && inputs+=("$regress")
    #  1. every kept input once
    if ! nice -n 19 "$exe" -runs=0 "${inputs[@]}" >"$build/$t.replay.log" 2>&1; then
        echo "fuzz/run.sh: $t: a corpus or regression input fails:" >&2
        grep -A30 -E "ERROR|runtime error|deadly signal" "$build/$t.replay.log" | head -40 >&2
        status=1
        continue
    fi
    #  2. fuzz for a while
    start=$(date +%s)
    nice -n 19 "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "$seeds" >"$build/$t.fuzz.log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    cov=$(grep -oE 'cov: [0-9]+' "$build/$t.fuzz.log" | tail -1)
    ft=$(grep -oE 'ft: [0-9]+' "$build/$t.fuzz.log" | tail -1)
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$build/$t.fuzz.log" | grep -oE '[0-9]+$')
    #  When coverage (edges) last grew, and when the last new input was kept.
    last_cov=$(awk '/cov: / { for (i = 1; i <= NF; i++) if ($i == "cov:") c = $(i + 1);
                              if (c != prev) { at = $1; prev = c } } END { print at }' "$build/$t.fuzz.log")
    last_new=$(grep -E '^#[0-9]+[[:space:]]+NEW' "$build/$t.fuzz.log" | tail -1 | grep -oE '^#[0-9]+')
    echo "fuzz $t: ${took}s, ${runs:-?} runs, ${cov:-cov: ?}, ${ft:-ft: ?}," \
        "coverage last grew at ${last_cov:-?}, last new input at ${last_new:-none}, rc $rc"
    if [ $rc -ne 0 ]; then
        echo "fuzz/run.sh: $t found a crash (input in $artifacts):" >&2
        grep -A30 -E "ERROR|runtime error|deadly signal" "$build/$t.fuzz.log" | head -40 >&2
        status=1
    fi
done
exit $status
