# The exact ledger, judged by a model that is not Trove (issue 17): the
# reference model of tests/oracle (Python, written from the docs) first
# checks itself against hand-computed stories, then judges real clusters
# fed the generated user stories in four arrival orders (sorted, shuffled
# within lateness, a fifth up to 3 days late, any order), two seeds each:
# every user's coins and balances must equal the model's before any
# reconciler run, and a reconciler run must then repair nothing
# (tests/oracle/run.sh --strict). The fifth order, under SIGKILLs of every
# process type, is the chaos suite's check M (test_chaos).
source "$(dirname "$0")/lib.sh"
ORACLE=$(cd "$HERE/../oracle" && pwd)
/usr/bin/python3 "$ORACLE/selftest.py" > "$WORK/selftest.txt" 2>&1 || { cat "$WORK/selftest.txt"; fail "the model fails its hand-computed stories"; }
log "model selftest: $(tail -n 1 "$WORK/selftest.txt")"
SEEDS=${TROVE_ORACLE_SEEDS:-"1 2"}
ORDERS=${TROVE_ORACLE_ORDERS:-"sorted shuffled late random"}
bash "$ORACLE/run.sh" "$BUILD" --strict --seeds "$SEEDS" --orders "$ORDERS" \
    --users "${TROVE_ORACLE_USERS:-150}" --out "$WORK/oracle" > "$WORK/oracle.log" 2>&1 || {
    tail -n 40 "$WORK/oracle.log"
    fail "the ledger differs from the model (tests/oracle/run.sh)"
}
grep -E "PASS|FAIL|seed" "$WORK/oracle.log" | tail -n 12
log "every user equal to the model in real time, nothing to repair: seeds $SEEDS x orders $ORDERS"
