# Mutants that must fail (issue 17): each is one known bug of the test-only
# mutant build (lib/core/trove_mutant.h, switched on by TROVE_MUTANT=NAME;
# never deployed), and the
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
mutant_build
caught=0 total=0
for m in $MUTANTS; do
    total=$((total + 1))
    B=$MUTANT_BUILD
    set +e
    #   Duplicates reach a scorer only across requests (the ingestor answers a
    #   repeat within one): for that mutant, any order scatters them.
    order=sorted
    [ "$m" = dedup_skipped ] && order=random
    TROVE_MUTANT=$m bash "$SRC/tests/oracle/run.sh" "$B" --seeds 1 --orders "$order" \
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
done
[ "$caught" -eq "$total" ] || fail "$((total - caught)) of $total mutants survived the model's check"
log "all $total mutants caught by the model before any reconcile"
