#!/usr/bin/env bash
#   Trove's single test command (README, .ci/run):
#     1. install the Debian packages (scripts/install-deps.sh; no-op when present)
#     2. build in build/ (RelWithDebInfo) and run ctest
#     3. build in build-asan/ with AddressSanitizer + UBSan and run ctest again
#   Both ctest runs happen inside a private network namespace that holds
#   only loopback (scripts/loopback-only.sh --guard): no test can reach
#   another machine, and any attempt to (a connect or datagram to an
#   address outside 127.0.0.0/8 or ::1) fails the run.
#   A skipped test is a failure unless tests/allowed-skips.txt lists it
#   (name and reason); allowed skips are printed in the final summary.
#   Exits non-zero when any step or test fails. The last line is always
#   "N passed, N failed", summed over both ctest runs; a configure or build
#   step that fails counts as one more failure (the build keeps going, so the
#   tests that can still be built run anyway).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

JOBS=2
PASSED=0
FAILED=0
STATUS=0
ALLOWED_SKIPS=()

log() { printf '\n==== %s\n' "$*"; }

#   ctest_run <build dir> <label> [env assignments...]
#   Runs ctest, adds its counts to PASSED/FAILED.
ctest_run() {
    local dir=$1 label=$2
    shift 2
    local out="$dir/ctest-summary.log"
    log "$label: ctest (loopback only)"
    "$ROOT/scripts/loopback-only.sh" --guard \
        env "$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$JOBS" 2>&1 | tee "$out"
    local rc=${PIPESTATUS[0]}
    if grep -q "^loopback-only: FAIL" "$out"; then
        echo "test.sh: $label: a test tried to reach an address outside loopback (see above)" >&2
        FAILED=$((FAILED + 1))
    elif grep -q "^loopback-only: " "$out" && ! grep -q "^loopback-only: no attempt" "$out"; then
        echo "test.sh: $label: the tests could not run in a loopback-only network namespace" >&2
        FAILED=$((FAILED + 1))
    fi
    #   ctest counts a skipped test (SKIP_RETURN_CODE) as passed; we do not,
    #   unless it is on the list. "  5 - integration/test_disk_full (Skipped)"
    local name reason
    while read -r name; do
        reason=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ +/, ""); print; exit }' "$ROOT/tests/allowed-skips.txt" 2>/dev/null)
        if [ -n "$reason" ]; then
            ALLOWED_SKIPS+=("$label $name: $reason")
            PASSED=$((PASSED - 1))
        else
            echo "test.sh: $label: $name was skipped and is not in tests/allowed-skips.txt: counted as failed" >&2
            PASSED=$((PASSED - 1))
            FAILED=$((FAILED + 1))
            rc=1
        fi
    done < <(sed -n '/The following tests did not run:/,/^$/p' "$out" | sed -nE 's/^[[:space:]]*[0-9]+ - (.*) \(Skipped\)$/\1/p')
    #   "83% tests passed, 1 tests failed out of 6"
    local line total failed
    line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1)
    if [ -n "$line" ]; then
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        PASSED=$((PASSED + total - failed))
        FAILED=$((FAILED + failed))
        if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
            FAILED=$((FAILED + 1))     #  ctest failed for another reason
        fi
    else
        echo "test.sh: $label: no ctest summary (no tests, or ctest broke)" >&2
        FAILED=$((FAILED + 1))
    fi
    [ "$rc" -eq 0 ] || STATUS=1
}

#   build_and_test <build dir> <label> <cmake args...> -- <env for ctest...>
build_and_test() {
    local dir=$1 label=$2
    shift 2
    local cmake_args=() test_env=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    test_env=("$@")
    log "$label: configure ($dir)"
    if ! cmake -S "$ROOT" -B "$ROOT/$dir" "${cmake_args[@]}"; then
        echo "test.sh: $label: configure failed" >&2
        FAILED=$((FAILED + 1)); STATUS=1
        return
    fi
    log "$label: build"
    #   Keep going past a broken target so every test that can run still runs
    #   (tests whose program is missing show up as failed in ctest).
    local keep_going=(-k)
    [ -f "$ROOT/$dir/build.ninja" ] && keep_going=(-k 0)
    if ! cmake --build "$ROOT/$dir" --parallel "$JOBS" -- "${keep_going[@]}"; then
        echo "test.sh: $label: build failed" >&2
        FAILED=$((FAILED + 1)); STATUS=1
    fi
    ctest_run "$ROOT/$dir" "$label" "${test_env[@]}"
}

log "dependencies"
if ! bash "$ROOT/scripts/install-deps.sh"; then
    echo "test.sh: installing dependencies failed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

build_and_test build "release" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROVE_SANITIZE=OFF --
build_and_test build-asan "asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROVE_SANITIZE=ON -- \
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo
if [ ${#ALLOWED_SKIPS[@]} -gt 0 ]; then
    echo "allowed skips (tests/allowed-skips.txt), not counted as passed:"
    printf '  %s\n' "${ALLOWED_SKIPS[@]}"
else
    echo "allowed skips: none taken"
fi
[ "$FAILED" -eq 0 ] || STATUS=1
echo "$PASSED passed, $FAILED failed"
exit "$STATUS"
