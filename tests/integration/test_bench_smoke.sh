# The benchmark still works: `bench/run.sh --quick` runs every part, Trove's
# (a)-(d) and the Redis peer (e), and prints every figure as a positive
# number. The figures themselves mean nothing here (a few seconds per part,
# next to other tests): timing goals are benchmarks, not assertions
# (CONTRIBUTING.md). Needs redis-server and bench-redis-peer (hiredis):
# scripts/install-deps.sh.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$HERE/../.." && pwd)

command -v redis-server >/dev/null || fail "redis-server is not installed: run scripts/install-deps.sh"
[ -x "$BUILD/bench-redis-peer" ] \
    || fail "$BUILD/bench-redis-peer is missing (libhiredis-dev): run scripts/install-deps.sh and build again"

# The cluster and Redis on this test's port slot (lib.sh), the temp files
# under $WORK (removed by lib.sh's cleanup).
started=$SECONDS
if ! TMPDIR="$WORK" bash "$REPO/bench/run.sh" --quick --port-base "$PORT_BASE" "$BUILD" \
    >"$WORK/block.md" 2>"$WORK/run.err"; then
    tail -n 40 "$WORK/run.err" >&2
    fail "bench/run.sh --quick failed"
fi
log "bench/run.sh --quick: $((SECONDS - started)) s"

# positive WHAT VALUE: VALUE is a number above 0.
positive() {
    if ! [[ "$2" =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v v="$2" 'BEGIN { exit !(v > 0) }'; then
        fail "$1: '$2' is not a positive number; the block was:
$(cat "$WORK/block.md")"
    fi
}

# row PREFIX: the one table row that starts with PREFIX.
row() {
    local lines
    lines=$(grep -F -- "$1" "$WORK/block.md" | grep -c '^|' || true)
    [ "$lines" = 1 ] || fail "want one row starting '$1', found $lines; the block was:
$(cat "$WORK/block.md")"
    grep -F -- "$1" "$WORK/block.md" | grep '^|'
}

# Part (a)-(c): the first N numbers of the result column (whole words:
# not the 50 of "p50").
check_result() {
    local prefix=$1 n=$2 numbers i
    mapfile -t numbers < <(row "$prefix" | awk -F'|' '{ print $4 }' \
        | grep -oE '(^|[[:space:]*(])-?[0-9]+(\.[0-9]+)?' | tr -d ' *(')
    [ "${#numbers[@]}" -ge "$n" ] || fail "row '$prefix' has ${#numbers[@]} numbers, want $n"
    for ((i = 0; i < n; i++)); do positive "row '$prefix', figure $((i + 1))" "${numbers[$i]}"; done
}
check_result "| (a) |" 2        # msg/s, MB/s
check_result "| (b) |" 3        # puts/s, commits/s, slowest commit
check_result "| (b2) |" 2
check_result "| (b3) |" 2
check_result "| (b4) |" 1
check_result "| (c) |" 3        # events/s, answer p50, p99

# Part (d): every column of both rates. Part (e): Trove, Redis, and the ratio.
# cells PREFIX FIRST LAST: fields FIRST..LAST of the row (split on '|').
cells() {
    local prefix=$1 first=$2 last=$3 line f value
    line=$(row "$prefix")
    for ((f = first; f <= last; f++)); do
        value=$(awk -F'|' -v f="$f" '{ gsub(/^ +| +$/, "", $f); print $f }' <<<"$line")
        positive "row '$prefix', column $((f - 1))" "$value"
    done
}
cells "| 5000 |" 2 10
cells "| 20000 |" 2 10
for prefix in "| closed loop, events/s" "| answer p50 at 5,000 " "| answer p99 at 5,000 " \
    "| answer p50 at 20,000 " "| answer p99 at 20,000 "; do
    cells "$prefix" 3 5
done
grep -q "^(e) The peer" "$WORK/block.md" || fail "no part (e) in the block"
log "bench smoke: every figure of (a)-(e) printed and positive"
