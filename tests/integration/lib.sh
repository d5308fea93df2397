# Shared helpers for the integration tests (sourced). Each test runs a real
# cluster on loopback under `trovectl up` supervision in a temp dir.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
TROVECTL="$BUILD/trovectl"
TROVE_LOAD="$BUILD/trove-load"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/trove-it-XXXXXX)
DIR="$WORK/cluster"
# A port base per running test keeps concurrent tests (ctest -j, the plain
# and ASan suites) apart: each holds an flock on one of 70 slots for its
# lifetime (the kernel drops it when the test and the daemons it started
# are gone, so a killed run leaves no stale reservation). Each cluster uses
# P+1 .. P+293; all below 32768 (etc/trove.cfg says why).
reserve_port_base() {
    local root=/tmp/trove-test-ports start=$(($$ % 70)) i slot
    mkdir -p "$root"
    for ((i = 0; i < 70; i++)); do
        slot=$(((start + i) % 70))
        exec {PORT_LOCK_FD}>>"$root/slot-$slot.lock"
        if flock -n "$PORT_LOCK_FD"; then
            PORT_BASE=$((10000 + slot * 300))
            return 0
        fi
        exec {PORT_LOCK_FD}>&-
    done
    echo "lib.sh: all 70 port slots are in use ($root)" >&2
    exit 1
}
if [ -n "${TROVE_TEST_PORT_BASE:-}" ]; then
    PORT_BASE=$TROVE_TEST_PORT_BASE
else
    reserve_port_base
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cleanup() {
    local rc=$?
    "$TROVECTL" down --dir "$DIR" >/dev/null 2>&1 || true
    if [ $rc -ne 0 ]; then
        echo "--- logs of the failed run ($DIR/logs) ---" >&2
        tail -n 30 "$DIR"/logs/*.log >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Stop the cluster cleanly and fail if any daemon reported a sanitizer error
# or a leak on the way out (the ASan build of the suite runs these too).
cluster_down_checked() {
    "$TROVECTL" down --dir "$DIR" >/dev/null || fail "trovectl down failed"
    if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$DIR"/logs/*.log 2>/dev/null; then
        grep -h -A20 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$DIR"/logs/*.log | head -60 >&2
        fail "a daemon reported a sanitizer error"
    fi
}

cluster_up() {
    if ! "$TROVECTL" up --dir "$DIR" --port-base "$PORT_BASE" --detach "$@" >/dev/null; then
        ps -eo pid,ppid,stat,etimes,wchan:30,args | grep -E "[t]rove" >&2 || true
        "$TROVECTL" status --dir "$DIR" >&2 || true
        fail "trovectl up failed"
    fi
}

# Wait (bounded) until every scorer's tables hold all it accepted (LAG 0):
# leaderboard reads do not wait for the apply thread (docs/queries.md).
settle() {
    local deadline=$((SECONDS + 30)) lag
    while true; do
        lag=$("$TROVECTL" status --dir "$DIR" --json 2>/dev/null |
            jq -s '[.[] | select(.role == "scorer") | (.inflight // 0)] | add // 0' 2>/dev/null || echo "?")
        [ "$lag" = 0 ] && return 0
        [ $SECONDS -lt $deadline ] || fail "the scorers' tables still trail by $lag events after 30 s"
        sleep 0.1
    done
}

# Events stored by the cluster's scorers, from `trovectl status` (asked up to
# three times: on a loaded machine one process may miss a 1 s status round,
# and a bare `$(status | jq)` under `set -e -o pipefail` would end the test
# without a word).
stored_events() {
    local i out
    for i in 1 2 3; do
        if out=$("$TROVECTL" status --dir "$DIR" --json 2>"$WORK/status.err"); then
            jq -s '[.[] | select(.role == "scorer") | .events] | add' <<<"$out"
            return 0
        fi
    done
    fail "trovectl status: a process missed 3 status rounds: $(tr '\n' ' ' < "$WORK/status.err")"
}

# Wait (bounded) until every process of the cluster answers status.
wait_healthy() {
    local deadline=$((SECONDS + ${1:-60}))
    until "$TROVECTL" status --dir "$DIR" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "cluster not healthy after ${1:-60}s"
        sleep 0.2
    done
}

# Wait (bounded) until the pid file of a process names a live process other than $2.
wait_restarted() {
    local name=$1 old=$2 deadline=$((SECONDS + 60)) pid
    while :; do
        pid=$(cat "$DIR/pids/$name.pid" 2>/dev/null || echo)
        if [ -n "$pid" ] && [ "$pid" != "$old" ] && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        [ $SECONDS -lt $deadline ] || fail "$name was not restarted"
        sleep 0.1
    done
}

kill9() {
    local name=$1 pid
    pid=$(cat "$DIR/pids/$name.pid") || fail "no pid file for $name"
    kill -9 "$pid" || fail "could not kill $name ($pid)"
    log "SIGKILL $name (pid $pid)"
    wait_restarted "$name" "$pid"
}

# Expected balances from NDJSON events: first occurrence of each (source,id)
# counts; demo hunt: checkin 1, visit 2, purchase 5. Prints "user balance" sorted.
expected_balances() {
    jq -r '[.source, .id, .user, .type] | @tsv' "$@" | awk -F'\t' '
        !seen[$1 "\t" $2]++ {
            v = ($4 == "checkin") ? 1 : ($4 == "visit") ? 2 : ($4 == "purchase") ? 5 : 0
            bal[$3] += v; users[$3] = 1
        }
        END { for (u in users) print u, bal[u] }' | sort
}

# Actual balances of the given users: "user balance" sorted.
actual_balances() {
    "$TROVECTL" balance --dir "$DIR" --json "$@" | jq -r '"\(.user) \(.balance)"' | sort
}

# The test-only mutant build (lib/core/trove_mutant.h), shared by every test
# that proves a check can fail: one build carries all the known bugs and
# each cluster switches one on with TROVE_MUTANT=NAME in its environment.
# Built once per build dir under a lock (tests run two at a time); later
# callers find it up to date in seconds. Sets MUTANT_BUILD.
mutant_build() {
    local src
    src=$(cd "$HERE/../.." && pwd)
    MUTANT_BUILD="$BUILD/mutants"
    local lock_fd
    exec {lock_fd}>>"$BUILD/mutants.lock"
    flock "$lock_fd"
    log "mutant build: $MUTANT_BUILD"
    cmake -S "$src" -B "$MUTANT_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROVE_SANITIZE=OFF \
        -DTROVE_MUTANT_BUILD=ON > "$WORK/mutant-cmake.log" 2>&1 ||
        { tail -n 30 "$WORK/mutant-cmake.log" >&2; fail "cannot configure the mutant build"; }
    cmake --build "$MUTANT_BUILD" --parallel 2 --target trovectl trove-broker trove-ingestor trove-scorer \
        trove-reconciler trove-load trove-powerloss > "$WORK/mutant-build.log" 2>&1 ||
        { tail -n 30 "$WORK/mutant-build.log" >&2; fail "cannot build the mutant build"; }
    exec {lock_fd}>&-
}
