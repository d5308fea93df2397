#!/usr/bin/env bash
# Chaos nemesis for a `trovectl up` cluster: seeded random faults while a
# load runs, every action logged with a timestamp, and always a heal at the end.
#
# usage: nemesis.sh --dir D --trovectl PATH --seed N [--stop-file F]
#                   [--min-gap S] [--max-gap S] [--heal-timeout S]
#
# Faults (one at a time, separated by a random gap of MIN..MAX seconds):
#   kill1      SIGKILL one process of a random type (broker, ingestor, scorer)
#   kill2      SIGKILL two distinct random processes at the same instant
#   recovery   SIGKILL a process, wait until the supervisor restarted it (its
#              pid file names a new live process), then SIGKILL the new one
#              1-30 ms later (half the time: while it opens LMDB and replays
#              its log; a scorer is ready ~20 ms after exec) or 30-400 ms later
#              (while it takes the resent backlog)
#   quick      SIGKILL, then SIGKILL of the replacement as soon as it exists
#   pause      SIGSTOP a scorer or an ingestor for 3.5-5 s (longer than the 3 s
#              ZMTP heartbeat timeout and the ingestor's 5 s give-up for the
#              longer ones), then SIGCONT
#   pausekill  SIGSTOP a scorer for 0.5-1.5 s, then SIGKILL it while stopped
#              (frozen in the middle of whatever it was doing)
#   killscorers  SIGKILL every scorer in the same instant
#   powercut   (only with --powercut all|torn|mixed, then the only fault) SIGKILL
#              the supervisor and every process in one kill(2), wait until
#              all are gone, put the files back as a power cut leaves them
#              (tests/powerloss/powercut.py --mode MODE on the journals of
#              the shim; mixed: all for odd cuts, torn for even ones
#              the LD_PRELOADed shim) and start the cluster again with the
#              shim (`trovectl up --detach`, the command in --up-cmd)
# The seed fixes the sequence of decisions (action, victim, delays); what the
# victim was doing at that instant still depends on timing.
#
# It runs until the stop file exists (checked between faults), then heals:
# SIGCONT to everything it stopped (and to every current pid, harmlessly),
# and waits (bounded) until `trovectl status` exits 0.
# Exit 0 when healed, 1 when the cluster did not become healthy in time.
#
# Log lines (DIR/nemesis.log), one per event:
#   2026-03-10T08:00:01.123Z +12.345s KILL scorer s1 pid 4242 (recovery: 1st)
# grep ' KILL ' / ' STOP ' / ' CONT ' to count.
set -uo pipefail

DIR='' TROVECTL='' SEED='' STOP_FILE='' MIN_GAP=0.5 MAX_GAP=2.5 HEAL_TIMEOUT=60 POWERCUT='' UP_CMD=''
while [ $# -gt 0 ]; do
    case $1 in
        --dir) DIR=$2; shift 2 ;;
        --trovectl) TROVECTL=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --stop-file) STOP_FILE=$2; shift 2 ;;
        --min-gap) MIN_GAP=$2; shift 2 ;;
        --max-gap) MAX_GAP=$2; shift 2 ;;
        --heal-timeout) HEAL_TIMEOUT=$2; shift 2 ;;
        --powercut) POWERCUT=$2; shift 2 ;;
        --up-cmd) UP_CMD=$2; shift 2 ;;
        *) echo "nemesis.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$DIR" ] && [ -n "$TROVECTL" ] && [ -n "$SEED" ] || { echo "usage: nemesis.sh --dir D --trovectl PATH --seed N" >&2; exit 2; }
STOP_FILE=${STOP_FILE:-$DIR/nemesis.stop}
LOG=$DIR/nemesis.log
STOPPED=$DIR/nemesis.stopped     # pids currently SIGSTOPped by us, one a line
: > "$STOPPED"

# Our own generator (a 64-bit LCG, high bits; bash arithmetic wraps) rather
# than bash's RANDOM, whose consecutive draws showed a visible bias here.
RNG=$(( SEED * 2654435761 + 1 ))
T0=$(date +%s%N)

log() {
    local now; now=$(date +%s%N)
    local el=$(( (now - T0) / 1000000 ))
    printf '%s +%d.%03ds %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" $((el / 1000)) $((el % 1000)) "$*" >> "$LOG"
}

# Random draws must not run in $(...) subshells (a subshell's draws do not
# advance our state): every helper returns through a global instead.
# rnd N -> R in 0..N-1.  rnd_ms LO HI -> R in [LO, HI].  pick A... -> PICK.
rnd() {
    RNG=$(( RNG * 6364136223846793005 + 1442695040888963407 ))
    R=$(( ((RNG >> 33) & 0x7fffffff) % $1 ))
}
rnd_ms() { rnd $(( $2 - $1 + 1 )); R=$(( $1 + R )); }
pick() { rnd $#; local a=("$@"); PICK=${a[$R]}; }
ms_to_s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
to_ms() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }'; }

NAMES=()
for f in "$DIR"/pids/*.pid; do NAMES+=("$(basename "$f" .pid)"); done
BROKERS=() INGESTORS=() SCORERS=() RECONCILERS=()
for n in "${NAMES[@]}"; do
    case $n in
        broker) BROKERS+=("$n") ;;
        i*) INGESTORS+=("$n") ;;
        s*) SCORERS+=("$n") ;;
        r*) RECONCILERS+=("$n") ;;
    esac
done

type_of() { case $1 in broker) echo broker ;; i*) echo ingestor ;; r*) echo reconciler ;; *) echo scorer ;; esac; }
pid_of() { cat "$DIR/pids/$1.pid" 2>/dev/null || true; }

# A random process of a random type -> VICTIM.
random_victim() {
    if [ ${#RECONCILERS[@]} -gt 0 ]; then rnd 4; else rnd 3; fi
    case $R in
        0) pick "${BROKERS[@]}" ;;
        1) pick "${INGESTORS[@]}" ;;
        3) pick "${RECONCILERS[@]}" ;;
        *) pick "${SCORERS[@]}" ;;
    esac
    VICTIM=$PICK
}

# kill9 NAME NOTE: SIGKILL the current pid of NAME -> KILLED (empty if none).
kill9() {
    local name=$1 note=$2 pid
    KILLED=
    pid=$(pid_of "$name")
    if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
        log "KILL $(type_of "$name") $name pid $pid ($note)"
        KILLED=$pid
    else
        log "SKIP $(type_of "$name") $name: no live pid (${pid:-none}) to kill ($note)"
    fi
}

# wait_new NAME OLDPID TIMEOUT_S: until the pid file names a live process
# other than OLDPID -> NEWPID; returns 1 on timeout.
wait_new() {
    local name=$1 old=$2 deadline=$((SECONDS + $3)) pid
    NEWPID=
    while [ $SECONDS -lt "$deadline" ]; do
        pid=$(pid_of "$name")
        if [ -n "$pid" ] && [ "$pid" != "$old" ] && kill -0 "$pid" 2>/dev/null; then
            NEWPID=$pid
            return 0
        fi
        sleep 0.01
    done
    log "WARN $name not restarted within $3 s (old pid $old)"
    return 1
}

do_kill1() { random_victim; kill9 "$VICTIM" "kill1"; }

do_kill2() {
    local a b pa pb
    random_victim; a=$VICTIM
    pick "${NAMES[@]}"; b=$PICK
    while [ "$b" = "$a" ]; do pick "${NAMES[@]}"; b=$PICK; done
    pa=$(pid_of "$a"); pb=$(pid_of "$b")
    # One kill(1) call: both signals leave within microseconds.
    kill -9 ${pa:+"$pa"} ${pb:+"$pb"} 2>/dev/null
    log "KILL $(type_of "$a") $a pid ${pa:-none} (kill2: together with $b)"
    log "KILL $(type_of "$b") $b pid ${pb:-none} (kill2: together with $a)"
}

# Kill, wait for the replacement, kill it again after DELAY ms.
kill_restart() {
    local name=$1 delay=$2 what=$3 old
    kill9 "$name" "$what: 1st"; old=$KILLED
    [ -n "$old" ] || return 0
    wait_new "$name" "$old" 15 || return 0
    [ "$delay" -gt 0 ] && sleep "$(ms_to_s "$delay")"
    if kill -9 "$NEWPID" 2>/dev/null; then
        log "KILL $(type_of "$name") $name pid $NEWPID ($what: replacement, ${delay} ms after it appeared)"
    else
        log "SKIP $name pid $NEWPID already gone ($what)"
    fi
}

do_recovery() {
    # Scorers most often: their recovery (log replay) is the interesting part.
    rnd 3
    if [ "$R" -lt 2 ]; then pick "${SCORERS[@]}"; VICTIM=$PICK; else random_victim; fi
    # A scorer is ready about 20 ms after exec (config, LMDB, log replay):
    # half the delays land in that window, half in its first batches after.
    rnd 2
    if [ "$R" -eq 0 ]; then rnd_ms 1 30; else rnd_ms 30 400; fi
    kill_restart "$VICTIM" "$R" recovery
}

do_quick() {
    rnd 2
    if [ "$R" -eq 0 ]; then pick "${SCORERS[@]}"; VICTIM=$PICK; else random_victim; fi
    kill_restart "$VICTIM" 0 quick
}

do_pause() {
    local v pid ms
    if [ $# -gt 0 ]; then v=$1; else
        rnd 2
        if [ "$R" -eq 0 ]; then pick "${SCORERS[@]}"; else pick "${INGESTORS[@]}"; fi
        v=$PICK
    fi
    rnd_ms 3500 7000; ms=$R
    pid=$(pid_of "$v")
    if [ -z "$pid" ] || ! kill -STOP "$pid" 2>/dev/null; then
        log "SKIP $(type_of "$v") $v: no live pid to stop"
        return 0
    fi
    echo "$pid" >> "$STOPPED"
    log "STOP $(type_of "$v") $v pid $pid for ${ms} ms (pause)"
    sleep "$(ms_to_s "$ms")"
    kill -CONT "$pid" 2>/dev/null
    log "CONT $(type_of "$v") $v pid $pid (pause)"
    : > "$STOPPED"
}

do_pausekill() {
    local v pid ms
    pick "${SCORERS[@]}"; v=$PICK
    rnd_ms 500 1500; ms=$R
    pid=$(pid_of "$v")
    if [ -z "$pid" ] || ! kill -STOP "$pid" 2>/dev/null; then
        log "SKIP scorer $v: no live pid to stop"
        return 0
    fi
    echo "$pid" >> "$STOPPED"
    log "STOP scorer $v pid $pid for ${ms} ms, then SIGKILL (pausekill)"
    sleep "$(ms_to_s "$ms")"
    kill -9 "$pid" 2>/dev/null
    log "KILL scorer $v pid $pid (pausekill: while stopped)"
    kill -CONT "$pid" 2>/dev/null   # a no-op on a dead pid; keeps the heal simple
    : > "$STOPPED"
}

do_killscorers() {
    local pids=() names=() n p i
    for n in "${SCORERS[@]}"; do p=$(pid_of "$n"); [ -n "$p" ] && { pids+=("$p"); names+=("$n"); }; done
    kill -9 "${pids[@]}" 2>/dev/null
    for i in "${!pids[@]}"; do log "KILL scorer ${names[$i]} pid ${pids[$i]} (killscorers: every scorer at once)"; done
}

# The whole machine loses power: every process dies at once (SIGKILL keeps
# the page cache, so the files are then cut back to what the disk held:
# powercut.py), and the cluster starts again on what is left.
CUTS=0
do_powercut() {
    local pids=() n p deadline
    p=$(cat "$DIR/trovectl.pid" 2>/dev/null); [ -n "$p" ] && pids+=("$p")
    for n in "${NAMES[@]}"; do p=$(pid_of "$n"); [ -n "$p" ] && pids+=("$p"); done
    kill -9 "${pids[@]}" 2>/dev/null
    CUTS=$((CUTS + 1))
    log "KILL all pids ${pids[*]} (powercut $CUTS: supervisor and every process at once)"
    deadline=$((SECONDS + 20))
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; do
            [ $SECONDS -lt $deadline ] || { log "WARN pid $p still alive 20 s after SIGKILL"; break; }
            sleep 0.01
        done
    done
    local cut_seed=$((SEED * 1000 + CUTS)) mode=$POWERCUT
    # mixed: odd cuts lose every unsynced write, even ones tear them.
    [ "$mode" = mixed ] && { [ $((CUTS % 2)) -eq 1 ] && mode=all || mode=torn; }
    if ! python3 "$(dirname "${BASH_SOURCE[0]}")/../powerloss/powercut.py" "$DIR/powerloss" \
            --mode "$mode" --seed "$cut_seed" >> "$DIR/powercut.log" 2>&1; then
        log "WARN powercut.py failed (see powercut.log)"
        return 1
    fi
    log "POWERCUT $CUTS ($mode, seed $cut_seed): $(tail -n 1 "$DIR/powercut.log")"
    if ! bash -c "$UP_CMD" >> "$DIR/powercut.log" 2>&1; then
        # `up` gives up waiting after 30 s, its supervisor does not: on a
        # loaded machine the restart is slow, not failed.
        deadline=$((SECONDS + HEAL_TIMEOUT))
        until "$TROVECTL" status --dir "$DIR" >/dev/null 2>&1; do
            if [ $SECONDS -ge $deadline ]; then
                log "WARN the cluster did not start again after powercut $CUTS (see powercut.log)"
                return 1
            fi
            sleep 0.5
        done
    fi
    log "POWERON $CUTS: cluster up again"
}

heal() {
    log "HEAL begin"
    local pid
    while read -r pid; do
        [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null && log "CONT pid $pid (heal)"
    done < "$STOPPED"
    : > "$STOPPED"
    for n in "${NAMES[@]}"; do
        pid=$(pid_of "$n")
        [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
    done
    local deadline=$((SECONDS + HEAL_TIMEOUT)) start=$SECONDS
    until "$TROVECTL" status --dir "$DIR" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "HEAL FAILED: trovectl status still failing after ${HEAL_TIMEOUT} s"
            "$TROVECTL" status --dir "$DIR" >> "$LOG" 2>&1
            return 1
        fi
        sleep 0.2
    done
    log "HEAL done: every process answers status ($((SECONDS - start)) s)"
    return 0
}

# Interrupted (run.sh aborting): still heal, so nothing is left stopped.
trap 'heal; exit 1' INT TERM

log "START seed $SEED processes ${NAMES[*]} gap ${MIN_GAP}-${MAX_GAP} s"
MIN_MS=$(to_ms "$MIN_GAP"); MAX_MS=$(to_ms "$MAX_GAP")
# Action weights (out of 20).
while [ ! -e "$STOP_FILE" ]; do
    rnd_ms "$MIN_MS" "$MAX_MS"
    sleep "$(ms_to_s "$R")"
    [ -e "$STOP_FILE" ] && break
    if [ -n "$POWERCUT" ]; then
        do_powercut || { log "POWERCUT FAILED"; exit 1; }
        continue
    fi
    rnd 22; r=$R
    if   [ "$r" -lt 7 ];  then do_kill1
    elif [ "$r" -lt 10 ]; then do_kill2
    elif [ "$r" -lt 13 ]; then do_recovery
    elif [ "$r" -lt 15 ]; then do_quick
    elif [ "$r" -lt 18 ]; then do_pause
    elif [ "$r" -lt 20 ]; then do_pausekill
    elif [ "$r" -lt 21 ]; then do_killscorers
    else do_pause broker
    fi
done
log "STOP-FILE seen: no more faults"
trap - INT TERM
heal
rc=$?
log "SUMMARY powercuts $CUTS kills $(grep -c ' KILL ' "$LOG") (broker $(grep -c ' KILL broker ' "$LOG"), ingestor $(grep -c ' KILL ingestor ' "$LOG"), scorer $(grep -c ' KILL scorer ' "$LOG"), reconciler $(grep -c ' KILL reconciler ' "$LOG")), stops $(grep -c ' STOP \(scorer\|ingestor\|broker\|reconciler\) ' "$LOG")"
exit $rc
