# Mutants that must fail (issue 17): each is a build with one known bug
# (CMake -DTROVE_MUTANT=NAME, see CMakeLists.txt; never deployed), and the
# independent model of tests/oracle must catch it in real time, before any
# reconciler run: one story set (tests/oracle/stories.py, seed 1, in
# event-time order; in any order for dedup_skipped) sent to a cluster of
# the mutant, and its ledger
# compared with the model's answer (tests/oracle/run.sh). ack_before_commit
# needs process kills to show: tests/integration/test_chaos_mutant.sh.
#   dedup_skipped    an event sent again by another submission is applied again
#   state_not_saved  rule state is not written with its batch
#   cap_off_by_one   a capped `each` rule allows one award more per period
#   utc_day          day caps follow UTC days instead of the hunt's zone
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$HERE/../.." && pwd)
MUTANTS=${TROVE_MUTANTS:-"dedup_skipped state_not_saved cap_off_by_one utc_day"}
USERS_N=${TROVE_MUTANT_USERS:-100}
caught=0 total=0
for m in $MUTANTS; do
    total=$((total + 1))
    B="$WORK/build-$m"
    log "mutant $m: building"
    cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROVE_MUTANT="$m" > "$WORK/cmake-$m.log" 2>&1 ||
        { cat "$WORK/cmake-$m.log"; fail "cannot configure mutant $m"; }
    cmake --build "$B" --parallel 2 --target trovectl trove-broker trove-ingestor trove-scorer trove-reconciler \
        > "$WORK/build-$m.log" 2>&1 || { tail -n 30 "$WORK/build-$m.log"; fail "cannot build mutant $m"; }
    set +e
    #   Duplicates reach a scorer only across requests (the ingestor answers a
    #   repeat within one): for that mutant, any order scatters them.
    order=sorted
    [ "$m" = dedup_skipped ] && order=random
    bash "$SRC/tests/oracle/run.sh" "$B" --seeds 1 --orders "$order" \
        --users "$USERS_N" --out "$WORK/oracle-$m" > "$WORK/oracle-$m.log" 2>&1
    rc=$?
    set -e
    R="$WORK/oracle-$m/seed1-$order"
    differ=$(jq '.stats.users_differ // 0' "$R/compare-realtime.json" 2>/dev/null || echo 0)
    if [ "$rc" -ne 0 ] && [ "${differ:-0}" -gt 0 ]; then
        caught=$((caught + 1))
        log "mutant $m: caught in real time, before any reconcile: $differ users differ from the model ($(tail -n 1 "$R/compare-realtime.txt"))"
    else
        tail -n 20 "$WORK/oracle-$m.log" >&2
        log "mutant $m: NOT caught (oracle exit $rc, $differ users differ in real time)"
    fi
    rm -rf "$B"
done
[ "$caught" -eq "$total" ] || fail "$((total - caught)) of $total mutants survived the model's check"
log "all $total mutants caught by the model before any reconcile"
