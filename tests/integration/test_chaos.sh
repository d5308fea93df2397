# A short run of the chaos harness (tests/chaos/run.sh): 2 ingestors, 3 scorer
# shards and the broker under supervision, a fixed-rate load with re-sends and
# out-of-order events plus a second producer mixing rejected events, a seeded
# nemesis (SIGKILL of every process type, two at once, kills during recovery,
# SIGSTOP longer than the heartbeat timeout), then the heal and the checker:
# every accepted event applied exactly once, balances and coin ids equal the
# checker's own reference, LMDB environments clean, the cluster live.
# Each run's directory lives under the test's work dir (its report is printed
# when it fails); reproduce with tests/chaos/run.sh BUILD --seed N --dir D --keep.
source "$(dirname "$0")/lib.sh"

# Three seeds, each about 50 s: 30 s of load, then healing and the checker.
# The seeds run at the same time, each its own cluster on its own port slot
# (the load is light: 1,000 events/s each), so the suite takes one seed's
# time. TROVE_CHAOS_SEEDS, TROVE_CHAOS_DURATION, TROVE_CHAOS_RATE change that.
SEEDS=${TROVE_CHAOS_SEEDS:-4242 777 31337}
DURATION=${TROVE_CHAOS_DURATION:-30s}
RATE=${TROVE_CHAOS_RATE:-1000}

declare -A pids
first=1
for seed in $SEEDS; do
    # lib.sh reserved one slot already; every further seed takes its own.
    [ $first -eq 1 ] || reserve_port_base
    first=0
    log "chaos run: seed $seed, $DURATION at $RATE events/s, port base $PORT_BASE"
    bash "$HERE/../chaos/run.sh" "$BUILD" --seed "$seed" --duration "$DURATION" --rate "$RATE" \
        --users 200 --port-base "$PORT_BASE" --dir "$WORK/run-$seed" > "$WORK/chaos-$seed.log" 2>&1 &
    pids[$seed]=$!
done
failed=""
for seed in $SEEDS; do
    if wait "${pids[$seed]}"; then
        grep -E "RESULT|lost [0-9]|kills|== chaos run" "$WORK/chaos-$seed.log" | head -6 >&2
    else
        cat "$WORK/chaos-$seed.log" >&2
        kept="/tmp/trove-chaos-failed-$seed-$$"
        cp -a "$WORK/run-$seed" "$kept" 2>/dev/null || true
        echo "chaos run failed (seed $seed): report above; history, nemesis log, logs and data kept in $kept" >&2
        failed="$failed $seed"
    fi
done
[ -z "$failed" ] || fail "chaos runs failed (seeds:$failed)"
