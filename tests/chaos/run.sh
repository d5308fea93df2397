#!/usr/bin/env bash
# Chaos run: a local cluster (2 ingestors, 3 scorer shards, the broker, under
# `trovectl up` supervision), a fixed-rate load with re-sends and out-of-order
# events, a seeded nemesis killing and pausing processes meanwhile, then a heal
# and the checker. See tests/chaos/README.md.
#
# usage: tests/chaos/run.sh BUILD_DIR [--seed N] [--events N] [--rate R]
#            [--duration 10m|90s] [--users U] [--port-base P] [--dir D] [--keep]
#            [--min-gap S] [--max-gap S] [--no-nemesis] [--no-inject]
#            [--powercut all|torn|mixed]
#
# --powercut MODE: the nemesis cuts the power instead (tests/powerloss/
# README.md): every process runs with the power-loss shim preloaded, and each
# fault kills them all and undoes what no fsync covered (MODE all: every
# unsynced write; torn: a random half of their 512-byte sectors; mixed: all
# and torn in turn).
#
# Exit 0 when the checker found no violation (and every step ran), 1 otherwise.
# The cluster directory D (default /tmp/trove-chaos-SEED-XXXXXX) holds the
# history files, D/nemesis.log, D/load.json, D/check/ (evidence) and the
# daemons' logs and data; it is removed after a passing run unless --keep (or
# --dir) is given, and always kept after a failing one.
set -uo pipefail
export LC_ALL=C

usage() { sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
BUILD=$(cd "$1" 2>/dev/null && pwd) || usage
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TROVECTL=$BUILD/trovectl
TROVE_LOAD=$BUILD/trove-load

SEED=$(( $(date +%s) % 100000 )) EVENTS=50000 RATE=1000 USERS=300 DURATION=''
PORT_BASE=$((10000 + ($$ % 70) * 300)) D='' KEEP=0 MIN_GAP='' MAX_GAP='' NEMESIS=1 INJECT=1 POWERCUT=''
while [ $# -gt 0 ]; do
    case $1 in
        --seed) SEED=$2; shift 2 ;;
        --events) EVENTS=$2; DURATION=''; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --users) USERS=$2; shift 2 ;;
        --port-base) PORT_BASE=$2; shift 2 ;;
        --dir) D=$2; KEEP=1; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --min-gap) MIN_GAP=$2; shift 2 ;;
        --max-gap) MAX_GAP=$2; shift 2 ;;
        --no-nemesis) NEMESIS=0; shift ;;
        --no-inject) INJECT=0; shift ;;
        --powercut) POWERCUT=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown option $1" >&2; usage ;;
    esac
done
case $POWERCUT in
    '') MIN_GAP=${MIN_GAP:-0.5} MAX_GAP=${MAX_GAP:-2.5} ;;
    all|torn|mixed)
        # A cut stops everything: leave the cluster time to take load between cuts.
        MIN_GAP=${MIN_GAP:-1.5} MAX_GAP=${MAX_GAP:-4}
        SHIM=$BUILD/tests/libtrove-powerloss.so
        [ -f "$SHIM" ] || { echo "run.sh: $SHIM is missing: build first" >&2; exit 2; }
        command -v python3 >/dev/null || { echo "run.sh: python3 is needed for --powercut" >&2; exit 2; } ;;
    *) echo "run.sh: --powercut wants all, torn or mixed" >&2; exit 2 ;;
esac
# --duration 10m | 90s | 600: the number of events that lasts that long at --rate.
if [ -n "$DURATION" ]; then
    case $DURATION in
        *m) secs=$(( ${DURATION%m} * 60 )) ;;
        *s) secs=${DURATION%s} ;;
        *) secs=$DURATION ;;
    esac
    [[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || { echo "run.sh: bad --duration $DURATION" >&2; exit 2; }
    EVENTS=$(awk -v s="$secs" -v r="$RATE" 'BEGIN { printf "%d", s * r }')
fi
[ "$PORT_BASE" -ge 1024 ] && [ $((PORT_BASE + 300)) -lt 32768 ] || { echo "run.sh: --port-base must be in 1024..32467" >&2; exit 2; }
for tool in jq b2sum mdb_stat; do
    command -v $tool >/dev/null || { echo "run.sh: $tool is needed (apt-get install jq coreutils lmdb-utils)" >&2; exit 2; }
done
if [ -z "$D" ]; then
    D=$(mktemp -d "/tmp/trove-chaos-$SEED-XXXXXX")
else
    mkdir -p "$D"
    [ ! -e "$D/trove.cfg" ] || { echo "run.sh: $D already holds a cluster; give a fresh --dir" >&2; exit 2; }
fi
D=$(cd "$D" && pwd)

T0=$SECONDS
log() { echo "[$(date +%H:%M:%S)] chaos: $*"; }
LOAD_PID='' NEM_PID='' INJ_PID='' RESULT=1

cleanup() {
    touch "$D/nemesis.stop" 2>/dev/null
    for p in $INJ_PID $LOAD_PID; do kill "$p" 2>/dev/null; done
    # The nemesis heals on TERM (SIGCONT to what it stopped) before exiting.
    [ -n "$NEM_PID" ] && kill -0 "$NEM_PID" 2>/dev/null && { kill -TERM "$NEM_PID"; wait "$NEM_PID" 2>/dev/null; }
    "$TROVECTL" down --dir "$D" >/dev/null 2>&1
    if [ $RESULT -eq 0 ] && [ $KEEP -eq 0 ]; then
        rm -rf "$D"
    else
        log "kept $D (history*.txt, nemesis.log, load.json, check/, logs/, data/)"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log "seed $SEED  events $EVENTS  rate $RATE/s  users $USERS  port base $PORT_BASE  dir $D"
# Besides the demo hunt (`each`), a hunt with per-user rule state: a cap and
# a count. Their coins do not depend on arrival order (ids name the slot and
# the completion), so the checker's own reference needs no event times; the
# scorers' rule state must survive every kill for them to come out exact.
# And a hunt whose coins depend on event time in a zone with DST (a cap per
# local day, a sequence within an hour, a streak of two local days): a
# tenth of the events are backdated up to 3 days (later than anything the
# engine's buffer holds: the scorer re-derives the user), and the checker
# judges it with the independent model of tests/oracle (check M).
mkdir -p "$D/rules"
cat > "$D/rules/chaos.yaml" <<'EOF'
hunt: chaos
version: 1
lateness: 30s
rules:
  - {id: capped, kind: each, match: {type: checkin}, coins: 3, cap: {max: 3, per: hunt}}
  - {id: every4, kind: count, match: {type: visit}, count: 4, coins: 7, repeat: true}
EOF
cat > "$D/rules/chaos-time.yaml" <<'EOF'
hunt: chaos-time
version: 1
timezone: Europe/Paris
lateness: 30s
rules:
  - {id: daily, kind: each, match: {type: share}, coins: 2, cap: {max: 2, per: day}}
  - {id: trio, kind: sequence, within: 1h, coins: 11, repeat: true,
     steps: [{type: checkin}, {type: visit}, {type: purchase}]}
  - {id: two-days, kind: streak, match: {type: purchase}, days: 2, coins: 13, repeat: true}
EOF
# With --powercut every daemon journals its writes under D/data (the shim)
# and the nemesis restarts the cluster with the same command.
UP_ENV=()
if [ -n "$POWERCUT" ]; then
    mkdir -p "$D/powerloss"
    UP_ENV=(env "LD_PRELOAD=$SHIM" "TROVE_POWERLOSS_DIR=$D/data" "TROVE_POWERLOSS_JOURNAL=$D/powerloss"
            "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
    mkdir -p "$D/data"
fi
if ! "${UP_ENV[@]}" "$TROVECTL" up --dir "$D" --port-base "$PORT_BASE" --detach --ingestors 2 --shards 3 > "$D/up.txt" 2>&1; then
    cat "$D/up.txt"; log "trovectl up failed"; exit 1
fi
deadline=$((SECONDS + 60))
until "$TROVECTL" status --dir "$D" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "cluster not healthy after start"; exit 1; }
    sleep 0.2
done

# --- workload: trove-load, several sources, fixed rate, re-sends, out of order.
# `share` earns nothing in the demo hunt: the checker's reference must say 0.
"$TROVE_LOAD" --dir "$D" --events "$EVENTS" --rate "$RATE" --users "$USERS" \
    --sources web,mobile,game,partner --types checkin,visit,purchase,share \
    --dup-ratio 0.05 --ooo-ratio 0.05 --backdate-ratio 0.1 --backdate-days 3 --seed "$SEED" --id-prefix "c$SEED-" \
    --history "$D/history.txt" --events-out "$D/events-load.ndjson" --awards --json --report-every 10 \
    > "$D/load.json" 2> "$D/load.err" &
LOAD_PID=$!

# --- a second producer (trovectl send, its own retries): small requests that
# mix valid events with invalid ones (rejected), so that one request carries
# both and the checker can require that the rejected ones left nothing.
inject() {
    RANDOM=$((SEED + 7919))
    local n=0 k now types=(checkin visit purchase share) sources=(web mobile game partner)
    : > "$D/history-send.txt"
    while [ ! -e "$D/nemesis.stop" ]; do
        n=$((n + 1)); now=$(date +%s%3N)
        local f=$D/inject/req$n
        mkdir -p "$D/inject"
        : > "$f.ndjson"; : > "$f.meta"
        for k in 1 2 3 4 5 6; do   # valid
            local src=${sources[$((RANDOM % 4))]} u=u$((RANDOM % USERS)) t=${types[$((RANDOM % 4))]} id=inj$SEED-$n-$k
            printf '{"source":"%s","id":"%s","user":"%s","type":"%s","ts":%s}\n' "$src" "$id" "$u" "$t" "$now" >> "$f.ndjson"
            echo "$src $id $u $t" >> "$f.meta"
        done
        # invalid: far future ts, unknown source, too old ts, unknown field
        local u=u$((RANDOM % USERS)) r=rej$((RANDOM % 50))
        printf '{"source":"web","id":"rej%s-%s-1","user":"%s","type":"purchase","ts":%s}\n' "$SEED" "$n" "$u" $((now + 86400000)) >> "$f.ndjson"
        echo "web rej$SEED-$n-1 $u purchase" >> "$f.meta"
        printf '{"source":"evil","id":"rej%s-%s-2","user":"%s","type":"visit","ts":%s}\n' "$SEED" "$n" "$r" "$now" >> "$f.ndjson"
        echo "evil rej$SEED-$n-2 $r visit" >> "$f.meta"
        printf '{"source":"game","id":"rej%s-%s-3","user":"%s","type":"purchase","ts":%s}\n' "$SEED" "$n" "$r" $((now - 400 * 86400000)) >> "$f.ndjson"
        echo "game rej$SEED-$n-3 $r purchase" >> "$f.meta"
        printf '{"source":"mobile","id":"rej%s-%s-4","user":"%s","type":"checkin","ts":%s,"bonus":1}\n' "$SEED" "$n" "$u" "$now" >> "$f.ndjson"
        echo "mobile rej$SEED-$n-4 $u checkin" >> "$f.meta"
        cat "$f.ndjson" >> "$D/events-send.ndjson"
        "$TROVECTL" send "$f.ndjson" --dir "$D" --json --timeout 180 > "$f.out" 2> "$f.err"
        # history format; an event without an answer is written "unanswered".
        jq -r 'select(.line) | "\(.line) \(.status) \(.reason // "-" | gsub(" "; "_"))"' "$f.out" 2>/dev/null \
            | awk 'FILENAME == ARGV[1] { meta[FNR] = $0; next } { ans[$1] = $2 " " ($3 == "" ? "-" : $3) }
                   END { for (i = 1; i in meta; i++) print meta[i], (i in ans) ? ans[i] : "unanswered -" }' "$f.meta" - \
            >> "$D/history-send.txt"
        sleep $((1 + RANDOM % 3))
    done
}
if [ $INJECT -eq 1 ]; then inject & INJ_PID=$!; fi

# --- nemesis
rm -f "$D/nemesis.stop"
if [ $NEMESIS -eq 1 ]; then
    # Wait for the load to be flowing before the first fault.
    deadline=$((SECONDS + 20))
    until [ -s "$D/history.txt" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
    PC_ARGS=()
    [ -n "$POWERCUT" ] && PC_ARGS=(--powercut "$POWERCUT" --up-cmd "$(printf '%q ' "${UP_ENV[@]}" "$TROVECTL" up --dir "$D" --detach)")
    bash "$HERE/nemesis.sh" --dir "$D" --trovectl "$TROVECTL" --seed "$SEED" \
        --stop-file "$D/nemesis.stop" --min-gap "$MIN_GAP" --max-gap "$MAX_GAP" "${PC_ARGS[@]}" &
    NEM_PID=$!
fi

wait "$LOAD_PID"; LOAD_RC=$?; LOAD_PID=
log "trove-load ended (rc $LOAD_RC) after $((SECONDS - T0)) s"
touch "$D/nemesis.stop"
if [ -n "$INJ_PID" ]; then wait "$INJ_PID"; INJ_PID=; fi
NEM_RC=0
if [ -n "$NEM_PID" ]; then wait "$NEM_PID"; NEM_RC=$?; NEM_PID=; fi
[ -f "$D/nemesis.log" ] && grep -E ' (KILL|STOP|SKIP|WARN|HEAL|POWERCUT)' "$D/nemesis.log" | sed 's/^/    /' | tail -n 200
log "nemesis ended (rc $NEM_RC): $(grep SUMMARY "$D/nemesis.log" 2>/dev/null | sed 's/.*SUMMARY //')"

# --- check
bash "$HERE/check.sh" "$BUILD" "$D" --seed "$SEED"
CHECK_RC=$?

echo "== chaos run: seed $SEED, $((SECONDS - T0)) s"
echo "   load: rc $LOAD_RC  $(jq -c '{submitted, accepted, duplicate, rejected, other, unanswered, checks}' "$D/load.json" 2>/dev/null || echo "no report: $(tail -n 2 "$D/load.err")")"
echo "   awards: $(jq -c '.awards | {coins, events, accepted_events, extra, awarded_unaccepted, accepted_to_award_max_ms: .accepted_to_award_ms.max, p99: .accepted_to_award_ms.p99}' "$D/load.json" 2>/dev/null)"
[ -f "$D/nemesis.log" ] && echo "   nemesis: $(grep SUMMARY "$D/nemesis.log" | sed 's/.*SUMMARY //')"
echo "   injected (trovectl send): $(awk '{print $5}' "$D/history-send.txt" 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
# Awards seen by trove-load's subscriber (through the broker, with catch-up
# from the scorers) for its own accepted scoring events, within its 5 s grace
# after the last answer. Fewer is reported, not failed: the ledger checks above
# are the authority; a shortfall here means awards arrived late or not at all.
LOAD_SCORING=$(awk '$5 == "accepted" && ($4 == "checkin" || $4 == "visit" || $4 == "purchase")' "$D/history.txt" 2>/dev/null | wc -l)
AWARDED=$(jq '.awards.events // 0' "$D/load.json" 2>/dev/null || echo 0)
if [ "${AWARDED:-0}" -lt "$LOAD_SCORING" ]; then
    echo "   WARNING: trove-load's award subscriber saw coins for $AWARDED of $LOAD_SCORING accepted scoring events"
else
    echo "   awards seen by the subscriber: $AWARDED of $LOAD_SCORING accepted scoring events"
fi
PROBLEMS=()
[ $LOAD_RC -eq 0 ] || PROBLEMS+=("trove-load exited $LOAD_RC (its own checks or unanswered events; see load.json, load.err)")
[ $NEM_RC -eq 0 ] || PROBLEMS+=("the nemesis failed (rc $NEM_RC: 1 = the cluster did not heal; see nemesis.log and the output above)")
[ $CHECK_RC -eq 0 ] || PROBLEMS+=("the checker found violations (check/summary.txt)")
if [ ${#PROBLEMS[@]} -eq 0 ]; then
    RESULT=0
    echo "   RESULT: PASS"
else
    for p in "${PROBLEMS[@]}"; do echo "   problem: $p"; done
    echo "   RESULT: FAIL (reproduce: tests/chaos/run.sh $BUILD --seed $SEED --events $EVENTS --rate $RATE --users $USERS)"
fi
exit $RESULT
