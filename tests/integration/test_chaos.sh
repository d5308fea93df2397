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
SEEDS=${TROVE_CHAOS_SEEDS:-4242 777 31337}
DURATION=${TROVE_CHAOS_DURATION:-30s}
RATE=${TROVE_CHAOS_RATE:-1000}

for seed in $SEEDS; do
    log "chaos run: seed $seed, $DURATION at $RATE events/s"
    bash "$HERE/../chaos/run.sh" "$BUILD" --seed "$seed" --duration "$DURATION" --rate "$RATE" \
        --users 200 --port-base "$PORT_BASE" --dir "$WORK/run-$seed" > "$WORK/chaos-$seed.log" 2>&1 \
        || {
            cat "$WORK/chaos-$seed.log" >&2
            kept="/tmp/trove-chaos-failed-$seed-$$"
            cp -a "$WORK/run-$seed" "$kept" 2>/dev/null || true
            fail "chaos run failed (seed $seed): report above; history, nemesis log, logs and data kept in $kept"
        }
    grep -E "RESULT|lost [0-9]|kills" "$WORK/chaos-$seed.log" | head -5 >&2
done
