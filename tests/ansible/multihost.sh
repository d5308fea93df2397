#!/usr/bin/env bash
# Multi-host test of the Ansible deployment (ansible/README.md, "Testing"),
# on one machine: four fake hosts on loopback addresses 127.0.1.1-4, each
# with its own sshd bound to its own address, its own throwaway keys, its
# own directory tree and process tree (tests/ansible/fakehost-init.sh), and
# Ansible connecting to them over real ssh as it would to VMs.
#
# usage: tests/ansible/multihost.sh BUILD_DIR [--keep] [--seed N]
#
#   h1 127.0.1.1  runit        broker, ingestor i0
#   h2 127.0.1.2  supervisord  scorer s0, reconciler of s0
#   h3 127.0.1.3  runit        scorer s1, reconciler of s1
#   h4 127.0.1.4  supervisord  (joins as ingestor i1 in step 6)
#
# Steps (each asserts; the first failure stops the test):
#   1. boot the hosts, wait until every sshd answers
#   2. first converge (site.yml) succeeds, with CURVE (the default): each
#      host has its certificate, the secret key 0600 and the service
#      user's, and every host's peers folder holds the public certificate
#      of every host and of the controller's client
#   3. second converge reports changed=0 on every host
#   4. end to end across hosts: events through i0 on h1, balances from the
#      scorers on h2 and h3
#   5. a config change (trove_map_size_mb) restarts exactly the scorers and
#      reconcilers (pids before/after), not the broker nor the ingestor
#   6. while load flows: an inventory edit adds ingestor i1 on h4 and
#      site.yml runs; nothing else restarts, no event is lost, i1 takes
#      events afterwards (every host's peers folder now has h4's certificate)
#   7. while load flows: rolling upgrade (upgrade.yml) to another release;
#      never more than one process down at once, every process runs the new
#      release, no event lost
#   8. while load flows: chaos.yml kills random processes across hosts; then
#      the chaos checker (tests/chaos/check.sh) verifies the whole ledger:
#      every accepted event of the whole test stored exactly once, every
#      balance and coin as recomputed from the producers' answers, and the
#      reconcilers find nothing left to repair
#   9. an inventory edit that adds a scorer shard is refused with a clear
#      message, and nothing changes
# Leaves nothing running: a trap kills each host's PID 1 (which ends every
# process of that host, sshd and supervisor included) and the load, and
# removes the work directory (kept with --keep or on failure).
set -uo pipefail
export LC_ALL=C

usage() { sed -n '8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
BUILD=$(cd "$1" 2>/dev/null && pwd) || usage
shift
KEEP=0 SEED=$(( $(date +%s) % 100000 ))
while [ $# -gt 0 ]; do
    case $1 in
        --keep) KEEP=1; shift ;;
        --seed) SEED=$2; shift 2 ;;
        *) usage ;;
    esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ANSIBLE_DIR=$REPO/ansible
TROVECTL=$BUILD/trovectl
TROVE_LOAD=$BUILD/trove-load
SSH_PORT=2222
PORT_BASE=7400
RATE=300          # events/s of the background load
CHUNK=1500        # events per trove-load run (5 s at RATE)

T0=$SECONDS
ts() { date -u +%H:%M:%S; }
say() { echo "[$(ts) +$((SECONDS - T0))s] $*"; }
fail() { echo "[$(ts) +$((SECONDS - T0))s] FAIL: $*" >&2; RESULT=1; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "multihost.sh: needs root (mount namespaces, overlays)" >&2; exit 2; }
for tool in ansible-playbook sshd ssh ssh-keygen runsvdir supervisord unshare nsenter jq curl b2sum mdb_stat; do
    command -v "$tool" >/dev/null || { echo "multihost.sh: $tool missing: run scripts/install-deps.sh" >&2; exit 2; }
done
for prog in trove-broker trove-ingestor trove-scorer trove-reconciler trovectl trove-load; do
    [ -x "$BUILD/$prog" ] || { echo "multihost.sh: $BUILD/$prog missing: build first" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/trove-ansible-XXXXXX)
D=$WORK/client                 # the controller's view: trove.cfg, histories (tests/chaos/check.sh layout)
INV=$WORK/inventory
LOGS=$WORK/logs
mkdir -p "$D" "$INV/group_vars" "$LOGS" "$WORK/ssh" "$WORK/cp" "$WORK/tmp"
RESULT=1
declare -A INIT_PID            # host -> outer pid of its PID 1
LOAD_PID='' SAMPLER_PID=''

cleanup() {
    [ -n "$LOAD_PID" ] && { touch "$WORK/load.stop"; kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
    [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; }
    # ssh connection masters (ControlPersist) of the controller.
    for sock in "$WORK"/cp/*; do
        [ -S "$sock" ] && ssh -o ControlPath="$sock" -O exit dummy >/dev/null 2>&1
    done
    # A host's PID 1 takes every process of its PID namespace with it; its
    # mounts go with the last of them.
    for h in "${!INIT_PID[@]}"; do
        kill -KILL "${INIT_PID[$h]}" 2>/dev/null
    done
    for h in "${!INIT_PID[@]}"; do
        for _ in $(seq 100); do kill -0 "${INIT_PID[$h]}" 2>/dev/null || break; sleep 0.05; done
    done
    wait 2>/dev/null
    if [ $RESULT -eq 0 ] && [ $KEEP -eq 0 ]; then
        rm -rf "$WORK"
    else
        echo "multihost.sh: kept $WORK (logs/: every ansible run; client/: config, histories, check/; hosts/hN: each host's tree)"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------------------
# Hosts
HOSTS=(h1 h2 h3 h4)
declare -A ADDR=([h1]=127.0.1.1 [h2]=127.0.1.2 [h3]=127.0.1.3 [h4]=127.0.1.4)
declare -A SUP=([h1]=runit [h2]=supervisord [h3]=runit [h4]=supervisord)

ssh-keygen -q -t ed25519 -N '' -C trove-multihost-controller -f "$WORK/ssh/id_ed25519"
: > "$WORK/ssh/known_hosts"
boot_host() {
    local h=$1 r=$WORK/hosts/$1
    mkdir -p "$r/ssh"
    ssh-keygen -q -t ed25519 -N '' -C "trove-multihost-$h" -f "$r/ssh/host_ed25519_key"
    cp "$WORK/ssh/id_ed25519.pub" "$r/ssh/authorized_keys"
    echo "[${ADDR[$h]}]:$SSH_PORT $(cut -d' ' -f1,2 "$r/ssh/host_ed25519_key.pub")" >> "$WORK/ssh/known_hosts"
    unshare --mount --uts --ipc --pid --fork --mount-proc --propagation private \
        bash "$HERE/fakehost-init.sh" "$r" "$h" "${ADDR[$h]}" "$SSH_PORT" "${SUP[$h]}" \
        > "$r/init.log" 2>&1 &
    local unshare_pid=$! child='' deadline=$((SECONDS + 10))
    while [ -z "$child" ]; do
        child=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}')
        [ -n "$child" ] || { [ $SECONDS -lt $deadline ] || fail "host $h: no PID 1 (see $r/init.log)"; sleep 0.05; }
    done
    INIT_PID[$h]=$child
}
# Run a command inside a host (its mounts and processes).
on_host() { local h=$1; shift; nsenter -t "${INIT_PID[$h]}" -m -p -u -- "$@"; }

say "seed $SEED, work directory $WORK, build $BUILD"
for h in "${HOSTS[@]}"; do boot_host "$h"; done
SSH_OPTS=(-F /dev/null -i "$WORK/ssh/id_ed25519" -p "$SSH_PORT" -o UserKnownHostsFile="$WORK/ssh/known_hosts"
          -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=2)
for h in "${HOSTS[@]}"; do
    deadline=$((SECONDS + 30))
    until out=$(ssh "${SSH_OPTS[@]}" "root@${ADDR[$h]}" hostname 2>&1) && [ "$out" = "$h" ]; do
        [ $SECONDS -lt $deadline ] || fail "host $h: ssh to ${ADDR[$h]}:$SSH_PORT does not answer: $out (see $WORK/hosts/$h/init.log)"
        sleep 0.2
    done
done
say "1. hosts up: $(for h in "${HOSTS[@]}"; do printf '%s=%s(%s, pid %s) ' "$h" "${ADDR[$h]}" "${SUP[$h]}" "${INIT_PID[$h]}"; done)"

# ---------------------------------------------------------------------------
# Inventory. write_inventory [--with-i1] [--with-s2]: the edits of steps 6 and 9.
write_inventory() {
    local with_i1=0 with_s2=0
    for a in "$@"; do case $a in --with-i1) with_i1=1 ;; --with-s2) with_s2=1 ;; esac; done
    {
        echo "---"
        echo "# Multi-host test inventory (tests/ansible/multihost.sh): fake hosts on loopback."
        echo "all:"
        echo "  children:"
        echo "    brokers:"
        echo "      hosts:"
        echo "        h1:"
        echo "    ingestors:"
        echo "      hosts:"
        echo "        h1: {trove_ingestors: [i0]}"
        [ $with_i1 -eq 1 ] && echo "        h4: {trove_ingestors: [i1]}"
        echo "    scorers:"
        echo "      hosts:"
        echo "        h2: {trove_shards: [s0]}"
        echo "        h3: {trove_shards: [s1]}"
        [ $with_s2 -eq 1 ] && echo "        h4: {trove_shards: [s2]}"
        echo "    reconcilers:"
        echo "      hosts:"
        echo "        h2: {trove_reconciler_shards: [s0]}"
        echo "        h3: {trove_reconciler_shards: [s1]}"
        echo "  hosts:"
        for h in "${HOSTS[@]}"; do
            echo "    $h: {ansible_host: ${ADDR[$h]}, trove_supervisor: ${SUP[$h]}}"
        done
    } > "$INV/hosts.yml"
}
# write_group_vars KEY=VALUE...: group_vars/all.yml with these overrides.
MAP_SIZE=1024 VERSION=0.1.0 BINARIES=$BUILD
write_group_vars() {
    cat > "$INV/group_vars/all.yml" <<EOF
---
# Multi-host test: connection to the fake hosts (root over ssh, keys made
# for this run), and the cluster's settings.
ansible_user: root
ansible_port: $SSH_PORT
ansible_ssh_private_key_file: $WORK/ssh/id_ed25519
ansible_ssh_common_args: -F /dev/null -o UserKnownHostsFile=$WORK/ssh/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
ansible_python_interpreter: /usr/bin/python3
# Root already: become through su (no sudo on the test machine).
ansible_become_method: su

trove_version: "$VERSION"
trove_binaries_dir: $BINARIES
trove_port_base: $PORT_BASE
trove_map_size_mb: $MAP_SIZE
trove_sync: full
trove_rules_files:
  - $REPO/etc/rules/demo.yaml
  - $HERE/files/chaos.yaml
trove_client_config: $D/trove.cfg
trove_health_retries: 90
EOF
}
write_inventory
write_group_vars

export ANSIBLE_CONFIG=$ANSIBLE_DIR/ansible.cfg
export ANSIBLE_SSH_CONTROL_PATH_DIR=$WORK/cp
export ANSIBLE_LOCAL_TEMP=$WORK/tmp
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0

# play NAME PLAYBOOK [args...]: run it, log to logs/NAME.log, print the recap.
play() {
    local name=$1 playbook=$2 start=$SECONDS rc
    shift 2
    (cd "$ANSIBLE_DIR" && LC_ALL=C.UTF-8 ansible-playbook -i "$INV/hosts.yml" "$playbook" "$@") > "$LOGS/$name.log" 2>&1
    rc=$?
    PLAY_SECONDS=$((SECONDS - start))
    say "   $playbook ($name): rc $rc in ${PLAY_SECONDS}s; recap:"
    sed -n '/^PLAY RECAP/,$p' "$LOGS/$name.log" | grep -E '^[a-z0-9]+ +:' | sed 's/^/      /'
    return $rc
}
# pids: "host program name pid exe start" for every Trove daemon of every
# host; start is the process's start time in clock ticks since boot (field 22
# of /proc/PID/stat: the hosts share the kernel, so it orders them all).
pids() {
    local h
    for h in "${HOSTS[@]}"; do
        on_host "$h" sh -c 'for p in $(pgrep -f "^/opt/trove/"); do
                              set -- $(tr "\0" " " < /proc/$p/cmdline)
                              echo "$(basename "$1") ${5:-broker} $p $(readlink /proc/$p/exe) $(sed "s/.*) //" /proc/$p/stat | cut -d" " -f20)"
                            done' 2>/dev/null | sed "s/^/$h /"
    done | sort
}
status_json() { "$TROVECTL" status --config "$D/trove.cfg" --json 2>/dev/null; }
wait_healthy() {
    local deadline=$((SECONDS + ${1:-60}))
    until "$TROVECTL" status --config "$D/trove.cfg" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { "$TROVECTL" status --config "$D/trove.cfg"; fail "cluster not healthy after ${1:-60}s"; }
        sleep 0.2
    done
}
# Accepted events (distinct source/id) over every history file so far.
accepted_total() { cat "$D"/history*.txt 2>/dev/null | awk '$5 == "accepted" { a[$1 " " $2] = 1 } END { print length(a) + 0 }'; }
# no_loss STEP: once the lag drained, the scorers store exactly the accepted events.
no_loss() {
    local deadline=$((SECONDS + 60)) lag stored accepted
    while :; do
        lag=$(status_json | jq -s '[.[] | select(.role != "broker") | (.inflight // 0)] | add // 0')
        [ "$lag" = 0 ] && break
        [ $SECONDS -lt $deadline ] || fail "$1: lag still $lag after 60 s"
        sleep 0.2
    done
    stored=$(status_json | jq -s '[.[] | select(.role == "scorer") | .events] | add')
    accepted=$(accepted_total)
    [ "$stored" = "$accepted" ] || fail "$1: scorers store $stored events, producers were told accepted for $accepted"
    say "   $1: stored events $stored == accepted events $accepted (whole test so far): none lost, none doubled"
}

# Background load: trove-load runs of CHUNK events at RATE/s one after the
# other until load.stop exists; each reads the client config when it starts
# (so runs after step 6 also use i1) and writes its history (the checker's
# input) and its JSON report.
load_start() {
    local phase=$1
    rm -f "$WORK/load.stop"
    (
        n=0
        while [ ! -e "$WORK/load.stop" ]; do
            n=$((n + 1))
            "$TROVE_LOAD" --config "$D/trove.cfg" --events "$CHUNK" --rate "$RATE" --users 300 \
                --sources web,mobile,game,partner --types checkin,visit,purchase,share \
                --seed $((SEED + n)) --id-prefix "$phase-$n-" --history "$D/history-$phase-$n.txt" \
                --json --stall-timeout 60 > "$WORK/load-$phase-$n.json" 2> "$WORK/load-$phase-$n.err"
            echo "$n $? $(date +%s.%N)" >> "$WORK/load-$phase.runs"
        done
    ) &
    LOAD_PID=$!
    local deadline=$((SECONDS + 20))
    until [ -s "$D/history-$phase-1.txt" ]; do
        [ $SECONDS -lt $deadline ] || fail "$phase: the load does not start"
        sleep 0.1
    done
}
# load_stop PHASE: let the current run finish, then report sent/accepted.
load_stop() {
    local phase=$1
    touch "$WORK/load.stop"
    wait "$LOAD_PID"; LOAD_PID=''
    local bad
    bad=$(awk '$2 != 0' "$WORK/load-$phase.runs")
    [ -z "$bad" ] || { cat "$WORK"/load-"$phase"-*.err | tail -n 20; fail "$phase: trove-load runs failed (run rc time): $bad"; }
    LOAD_FIGURES=$(jq -s '{runs: length, sent: (map(.submitted) | add), accepted: (map(.accepted) | add),
                           duplicate: (map(.duplicate) | add), rejected: (map(.rejected) | add),
                           unanswered: (map(.unanswered) | add)}' -c "$WORK"/load-"$phase"-*.json)
    say "   $phase load (trove-load, ${RATE}/s): $LOAD_FIGURES"
    [ "$(jq '.unanswered + .rejected + .duplicate' <<<"$LOAD_FIGURES")" = 0 ] || fail "$phase: events not accepted"
    [ "$(jq '.sent == .accepted' <<<"$LOAD_FIGURES")" = true ] || fail "$phase: sent != accepted"
}

# ---------------------------------------------------------------------------
say "2. first converge"
play converge1 site.yml || fail "first converge failed (logs/converge1.log)"
CONVERGE1=$PLAY_SECONDS
[ -s "$D/trove.cfg" ] || fail "site.yml did not write the client config"
wait_healthy 60
# check_curve HOST...: CURVE on these hosts (ansible/README.md, "CURVE between
# hosts"): the client config says curve = yes with the controller's client
# certificate; each host has its certificate with the secret key 0600 and
# the service user's; every host's peers folder holds exactly the public
# certificate of each host (the same file as that host's host.cert) and of
# the controller's client.
check_curve() {
    local h p want got
    grep -q '^    curve = yes$' "$D/trove.cfg" || fail "the client config does not say curve = yes"
    grep -q "^    cert = \"$D/trove-client.cert\"$" "$D/trove.cfg" || fail "the client config does not name the client certificate"
    [ -f "$D/trove-client.cert_secret" ] || fail "no client certificate on the controller"
    want="client-controller.cert $(printf '%s.cert ' "$@")"
    for h in "$@"; do
        got=$(on_host "$h" stat -c '%a %U' /etc/trove/curve/host.cert_secret 2>&1)
        [ "$got" = "600 trove" ] || fail "$h: /etc/trove/curve/host.cert_secret: $got (want mode 600, owner trove)"
        got=$(on_host "$h" stat -c '%a %U' /etc/trove/curve/peers 2>&1)
        [ "$got" = "700 trove" ] || fail "$h: /etc/trove/curve/peers: $got (want mode 700, owner trove)"
        got=$(on_host "$h" ls /etc/trove/curve/peers | sort | tr '\n' ' ')
        [ "$got" = "$want" ] || fail "$h: peers folder holds '$got', want '$want'"
        on_host "$h" cat /etc/trove/curve/peers/client-controller.cert | cmp -s - "$D/trove-client.cert" \
            || fail "$h: peers/client-controller.cert is not the controller's client certificate"
        for p in "$@"; do
            on_host "$p" cat /etc/trove/curve/host.cert | cmp -s - <(on_host "$h" cat "/etc/trove/curve/peers/$p.cert") \
                || fail "$h: peers/$p.cert is not $p's certificate"
        done
    done
}
check_curve h1 h2 h3
say "   CURVE: host.cert_secret 600 trove on h1 h2 h3; each peers folder: $(on_host h1 ls /etc/trove/curve/peers | tr '\n' ' ')"

say "3. second converge: must change nothing"
play converge2 site.yml || fail "second converge failed"
CONVERGE2=$PLAY_SECONDS
IDEMPOTENCE=$(sed -n '/^PLAY RECAP/,$p' "$LOGS/converge2.log" | grep -E '^[a-z0-9]+ +:')
if grep -vq 'changed=0 ' <<<"$IDEMPOTENCE"; then
    grep -B3 -E '^changed:' "$LOGS/converge2.log" | head -40
    fail "second converge changed something"
fi
[ "$(wc -l <<<"$IDEMPOTENCE")" -eq 3 ] || fail "the recap should list h1 h2 h3"

# ---------------------------------------------------------------------------
say "4. end to end across hosts"
status_json > "$WORK/status.json"
hosts_of=$(jq -r '"\(.role)/\(.name)@\(.host)"' "$WORK/status.json" | sort | tr '\n' ' ')
[ "$hosts_of" = "broker/broker@h1 ingestor/i0@h1 scorer/s0@h2 scorer/s1@h3 " ] || fail "processes not where the inventory puts them: $hosts_of"
say "   trovectl status: $hosts_of"
now=$(date +%s%3N)
for k in $(seq 0 39); do
    printf '{"source":"web","id":"e2e-%d","user":"e2e-u%d","type":"purchase","ts":%s}\n' "$k" $((k % 20)) "$now"
done > "$WORK/e2e.ndjson"
"$TROVECTL" send "$WORK/e2e.ndjson" --config "$D/trove.cfg" --json --timeout 30 > "$WORK/e2e.out" 2> "$WORK/e2e.err" \
    || fail "trovectl send failed: $(cat "$WORK/e2e.err")"
jq -r 'select(.line) | "web \(.id) e2e-u\((.line - 1) % 20) purchase \(.status) \(.reason // "-")"' "$WORK/e2e.out" > "$D/history-e2e.txt"
[ "$(grep -c ' accepted ' "$D/history-e2e.txt")" -eq 40 ] || fail "not every e2e event was accepted: $(cat "$WORK/e2e.err")"
"$TROVECTL" balance $(seq -f 'e2e-u%g' 0 19) --config "$D/trove.cfg" --json > "$WORK/e2e.balances" || fail "trovectl balance failed"
[ "$(jq -s 'map(select(.balance == 10)) | length' "$WORK/e2e.balances")" = 20 ] || fail "balances wrong: $(cat "$WORK/e2e.balances")"
by_shard=$(status_json | jq -r 'select(.role == "scorer") | "\(.name)@\(.host)=\(.events)"' | tr '\n' ' ')
status_json | jq -e -s '[.[] | select(.role == "scorer") | .events > 0] | all' >/dev/null || fail "one shard got no event: $by_shard"
say "   40 events sent to i0@h1: all accepted; 20 balances of 10 coins read from the scorers; events per shard: $by_shard"

# ---------------------------------------------------------------------------
say "5. config change: trove_map_size_mb $MAP_SIZE -> 2048 (read by scorers and reconcilers only)"
pids > "$WORK/pids.before5"
MAP_SIZE=2048; write_group_vars
play config-change site.yml || fail "converge after the config change failed"
pids > "$WORK/pids.after5"
restarted=$(join <(awk '{print $1 "/" $2 "/" $3, $4}' "$WORK/pids.before5" | sort) \
                 <(awk '{print $1 "/" $2 "/" $3, $4}' "$WORK/pids.after5" | sort) | awk '$2 != $3 {print $1}' | sort | tr '\n' ' ')
[ "$(wc -l < "$WORK/pids.after5")" -eq 6 ] || fail "expected 6 daemons, found: $(cat "$WORK/pids.after5")"
expected="h2/trove-reconciler/s0 h2/trove-scorer/s0 h3/trove-reconciler/s1 h3/trove-scorer/s1 "
[ "$restarted" = "$expected" ] || fail "restarted: '$restarted', expected '$expected'"
grep -q 'map_size_mb = 2048' "$D/trove.cfg" || fail "config not changed"
say "   restarted exactly: $restarted(broker and i0 kept their pids)"
wait_healthy 60
no_loss "step 5"

# ---------------------------------------------------------------------------
say "6. scale out while events flow: inventory edit adds ingestor i1 on h4"
load_start scale
pids > "$WORK/pids.before6"
write_inventory --with-i1
diff -u <(write_inventory; cat "$INV/hosts.yml") <(write_inventory --with-i1; cat "$INV/hosts.yml") | grep '^[+-] ' | sed 's/^/      inventory edit: /'
play scale site.yml || fail "converge adding i1 failed"
SCALE_SECONDS=$PLAY_SECONDS
scale_done=$(date +%s.%N)
pids > "$WORK/pids.after6"
grep -q '^h4 trove-ingestor i1 ' "$WORK/pids.after6" || fail "i1 does not run on h4"
grep -v '^h4 ' "$WORK/pids.after6" | cut -d' ' -f1-4 > "$WORK/pids.after6.old"
cut -d' ' -f1-4 "$WORK/pids.before6" | diff - "$WORK/pids.after6.old" > /dev/null || fail "instances restarted by adding an ingestor: $(diff "$WORK/pids.before6" "$WORK/pids.after6")"
# Keep the load going until a run that started after the converge (so it
# knows i1) has finished.
deadline=$((SECONDS + 60))
until awk -v t="$scale_done" '$3 > t' "$WORK/load-scale.runs" 2>/dev/null | grep -q . \
      && [ "$(awk -v t="$scale_done" '$3 > t' "$WORK/load-scale.runs" | wc -l)" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "the load did not go on after the converge"
    sleep 0.2
done
load_stop scale
SCALE_FIGURES=$LOAD_FIGURES
i1_accepted=$(curl -s --max-time 5 "http://127.0.1.4:$((PORT_BASE + 201))/metrics" \
              | awk '/^trove_ingestor_events_total\{.*result="accepted"/ { s += $NF } END { print s + 0 }')
[ "${i1_accepted:-0}" -gt 0 ] || fail "i1 answered no event"
check_curve h1 h2 h3 h4
say "   i1 on h4 started; no other instance restarted (pids); converge ${SCALE_SECONDS}s while the load ran; i1 accepted $i1_accepted events since; h4's certificate in every peers folder"
no_loss "step 6"

# ---------------------------------------------------------------------------
say "7. rolling upgrade while events flow: release 0.1.0 -> 0.2.0-test"
mkdir -p "$WORK/release2"
cp "$BUILD"/trove-broker "$BUILD"/trove-ingestor "$BUILD"/trove-scorer "$BUILD"/trove-reconciler "$BUILD"/trovectl "$WORK/release2/"
pids > "$WORK/pids.before7"
load_start upgrade
# Sample the cluster meanwhile: how many processes are down at once.
( while [ ! -e "$WORK/sampler.stop" ]; do
      status_json | jq -s -c '[.[] | select(.up | not) | .name]' >> "$WORK/upgrade.samples"
      sleep 0.1
  done ) &
SAMPLER_PID=$!
VERSION=0.2.0-test BINARIES=$WORK/release2; write_group_vars
play upgrade upgrade.yml || fail "rolling upgrade failed"
UPGRADE_SECONDS=$PLAY_SECONDS
touch "$WORK/sampler.stop"; wait "$SAMPLER_PID"; SAMPLER_PID=''
load_stop upgrade
UPGRADE_FIGURES=$LOAD_FIGURES
pids > "$WORK/pids.after7"
grep -v -q '/opt/trove/releases/0.2.0-test/bin/' "$WORK/pids.after7" && fail "not every process runs the new release: $(cat "$WORK/pids.after7")"
[ "$(wc -l < "$WORK/pids.after7")" -eq 7 ] || fail "expected 7 daemons: $(cat "$WORK/pids.after7")"
same=$(join <(awk '{print $1 "/" $2 "/" $3, $4}' "$WORK/pids.before7" | sort) \
            <(awk '{print $1 "/" $2 "/" $3, $4}' "$WORK/pids.after7" | sort) | awk '$2 == $3 {print $1}')
[ -z "$same" ] || fail "not restarted by the upgrade: $same"
max_down=$(jq -s 'map(length) | max' "$WORK/upgrade.samples")
down_seen=$(jq -r -s 'map(select(length > 0) | join("+")) | unique | join(" ")' "$WORK/upgrade.samples")
[ "$max_down" -le 1 ] || fail "more than one process down at once during the upgrade: $(jq -c 'select(length > 1)' "$WORK/upgrade.samples" | head -3)"
# One at a time: the new processes started in the playbook's order (broker,
# scorers, reconcilers, ingestors; hosts in inventory order), each at least
# 0.2 s after the previous one (which had answered its health check by then).
order=$(sort -n -k6 "$WORK/pids.after7" | awk '{ printf "%s%s/%s@%s", (NR > 1 ? " " : ""), $2, $3, $1 }')
expected="trove-broker/broker@h1 trove-scorer/s0@h2 trove-scorer/s1@h3 trove-reconciler/s0@h2 trove-reconciler/s1@h3 trove-ingestor/i0@h1 trove-ingestor/i1@h4"
[ "$order" = "$expected" ] || fail "upgrade order: $order, expected $expected"
gaps=$(sort -n -k6 "$WORK/pids.after7" | awk -v hz="$(getconf CLK_TCK)" 'NR > 1 { printf "%s%.2f", (NR > 2 ? " " : ""), ($6 - prev) / hz } { prev = $6 }')
awk -v g="$gaps" 'BEGIN { n = split(g, a, " "); for (i = 1; i <= n; i++) if (a[i] < 0.2) exit 1 }' || fail "restarts overlap: gaps $gaps s"
say "   restart order: $order; seconds between starts: $gaps"
say "   every process restarted on 0.2.0-test in ${UPGRADE_SECONDS}s; $(wc -l < "$WORK/upgrade.samples") status samples, at most $max_down down at once (seen down: ${down_seen:-none})"
no_loss "step 7"
# The new release is now the inventory's: a converge changes nothing.
play converge3 site.yml || fail "converge after the upgrade failed"
sed -n '/^PLAY RECAP/,$p' "$LOGS/converge3.log" | grep -E '^[a-z0-9]+ +:' | grep -vq 'changed=0 ' && fail "converge after the upgrade changed something"

# ---------------------------------------------------------------------------
say "8. chaos while events flow (seed $SEED)"
load_start chaos
play chaos chaos.yml -e trove_chaos_rounds=8 -e trove_chaos_seed="$SEED" || fail "chaos.yml failed"
CHAOS_SECONDS=$PLAY_SECONDS
grep -E 'seed [0-9]+: ' "$LOGS/chaos.log" | head -1 | sed 's/^ *"msg": /   plan: /'
KILLS=$(grep -c -E '^changed: \[h[0-9]\] => \(item=round' "$LOGS/chaos.log")
[ "$KILLS" -gt 0 ] || fail "chaos.yml killed nothing"
load_stop chaos
CHAOS_FIGURES=$LOAD_FIGURES
say "   chaos.yml: $KILLS processes SIGKILLed across hosts in ${CHAOS_SECONDS}s; the checker now verifies the whole test's ledger"
bash "$REPO/tests/chaos/check.sh" "$BUILD" "$D" --no-down --seed "$SEED" > "$WORK/check.out" 2>&1
CHECK_RC=$?
sed 's/^/      /' "$WORK/check.out" | grep -E 'check:|VIOLATION|RESULT|submissions|stored|users' | head -40
[ $CHECK_RC -eq 0 ] || fail "the chaos checker found violations (see $D/check)"

# ---------------------------------------------------------------------------
say "9. an inventory edit adding scorer shard s2 is refused"
pids > "$WORK/pids.before9"
for h in h1 h2 h3 h4; do on_host "$h" cat /etc/trove/layout.json 2>/dev/null; done | b2sum > "$WORK/layout.before9"
write_inventory --with-i1 --with-s2
if play refuse site.yml; then fail "site.yml accepted a new scorer shard"; fi
grep -q 'Refusing to change the scorer shards' "$LOGS/refuse.log" || fail "no clear refusal message (logs/refuse.log)"
grep -o 'Refusing to change the scorer shards[^"]*' "$LOGS/refuse.log" | head -1 | fold -s -w 110 | sed 's/^/      /'
pids > "$WORK/pids.after9"
diff "$WORK/pids.before9" "$WORK/pids.after9" > /dev/null || fail "the refused run changed processes"
for h in h1 h2 h3 h4; do on_host "$h" cat /etc/trove/layout.json 2>/dev/null; done | b2sum | diff - "$WORK/layout.before9" > /dev/null \
    || fail "the refused run changed a layout"
grep -q 's2' "$D/trove.cfg" && fail "the refused run rendered s2"
write_inventory --with-i1

# ---------------------------------------------------------------------------
RESULT=0
echo
echo "== multi-host Ansible test: PASS in $((SECONDS - T0)) s (seed $SEED)"
echo "   converge: first ${CONVERGE1}s, second ${CONVERGE2}s; idempotence recap:"
sed 's/^/      /' <<<"$IDEMPOTENCE"
echo "   scale-out (i1 added while flowing): $SCALE_FIGURES, lost 0"
echo "   rolling upgrade: $UPGRADE_FIGURES, lost 0"
echo "   chaos: $KILLS kills, $CHAOS_FIGURES; $(grep -E 'stored [0-9]+ ' "$D/check/summary.txt" | sed 's/^ *//')"
