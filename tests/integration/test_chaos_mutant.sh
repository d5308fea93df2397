# Proof that the chaos suite can fail: a scorer that acknowledges before it
# commits (the mutant build's ack_before_commit, lib/core/trove_mutant.h,
# test only) must be caught losing accepted events by the chaos checker.
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$HERE/../.." && pwd)
mutant_build
MUTANT=$MUTANT_BUILD
export TROVE_MUTANT=ack_before_commit

# Each run kills scorers while they commit; a lost acknowledged event is
# likely in one run and near certain in three.
caught=0
for seed in 11 12 13; do
    set +e
    bash "$SRC/tests/chaos/run.sh" "$MUTANT" --seed "$seed" --events 30000 --rate 3000 --users 200 \
        --port-base "$PORT_BASE" --min-gap 0.3 --max-gap 1.2 --dir "$WORK/run-$seed" > "$WORK/chaos-$seed.log" 2>&1
    rc=$?
    set -e
    lost=$(grep -o 'lost [0-9][0-9]*' "$WORK/chaos-$seed.log" | head -1 | cut -d' ' -f2)
    log "mutant, seed $seed: chaos exit $rc, lost ${lost:-?}"
    if [ "$rc" -ne 0 ] && [ "${lost:-0}" -gt 0 ]; then
        caught=1
        break
    fi
done
[ "$caught" -eq 1 ] || fail "the chaos suite did not catch a scorer that acknowledges before committing"
log "the chaos suite caught the ack-before-commit mutant"
