# A short run of the chaos harness (tests/chaos/run.sh): 2 ingestors, 3 scorer
# shards and the broker under supervision, a fixed-rate load with re-sends and
# out-of-order events plus a second producer mixing rejected events, a seeded
# nemesis (SIGKILL of every process type, two at once, kills during recovery,
# SIGSTOP longer than the heartbeat timeout), then the heal and the checker:
# every accepted event applied exactly once, balances and coin ids equal the
# checker's own reference, LMDB environments clean, the cluster live.
# A failing run keeps its directory (/tmp/trove-chaos-SEED-*) and prints it.
source "$(dirname "$0")/lib.sh"

SEED=${TROVE_CHAOS_SEED:-4242}
EVENTS=${TROVE_CHAOS_EVENTS:-15000}
RATE=${TROVE_CHAOS_RATE:-1000}

log "chaos run: seed $SEED, $EVENTS events at $RATE/s"
bash "$HERE/../chaos/run.sh" "$BUILD" --seed "$SEED" --events "$EVENTS" --rate "$RATE" \
    --users 200 --port-base "$PORT_BASE" || fail "chaos run failed (seed $SEED): see the checker's report above"
