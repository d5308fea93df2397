#!/usr/bin/env bash
# Daemons bind before they connect (issue 16): a host that cannot bind one
# of its own endpoints stops before it sends a packet anywhere.
#
# Every daemon runs alone, on a config whose peers (the endpoints it
# connects to) are at 10.99.0.x, inside its own network namespace that
# holds only loopback (scripts/loopback-only.sh): there an attempt to reach
# 10.99.0.x fails at once and the kernel counts it (/proc/net/snmp
# OutNoRoutes). For each daemon:
#   control  every endpoint it binds is on loopback: it starts and tries
#            its peers, so the counter moves (proves the probe sees a
#            connect; the broker connects to nobody and has no control);
#   refusal  for each endpoint it binds, a config where only that one is at
#            10.99.1.1 (not on this host): the daemon exits non-zero on its
#            own and the counter has not moved.
# usage: test_bind_first.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$HERE/../.." && pwd)
NS="$REPO/scripts/loopback-only.sh"
P=$PORT_BASE
mkdir -p "$WORK/rules"
cp "$REPO/etc/rules/demo.yaml" "$WORK/rules/"

# The endpoints, by name; a peer's are at 10.99.0.x, the daemon's own on
# loopback unless named in BAD.
declare -A EP=(
    [broker_pub]="tcp://H:$((P + 1))" [broker_sub]="tcp://H:$((P + 2))" [broker_control]="tcp://H:$((P + 3))"
    [broker_metrics]="H:$((P + 200))"
    [i0_endpoint]="tcp://H:$((P + 10))" [i0_metrics]="H:$((P + 210))" [i0_http]="H:$((P + 250))"
    [s0_events]="tcp://H:$((P + 20))" [s0_query]="tcp://H:$((P + 21))" [s0_metrics]="H:$((P + 230))"
    [s0_reconcile]="tcp://H:$((P + 60))"
    [webhooks_control]="tcp://H:$((P + 295))" [webhooks_metrics]="H:$((P + 296))"
)
declare -A OWN=(
    [trove-broker]="broker_pub broker_sub broker_control broker_metrics"
    [trove-ingestor]="i0_endpoint i0_metrics i0_http"
    [trove-scorer]="s0_events s0_query s0_metrics"
    [trove-reconciler]="s0_reconcile"
    [trove-webhooks]="webhooks_control webhooks_metrics"
)
declare -A ARGS=([trove-broker]="" [trove-ingestor]="--name i0" [trove-scorer]="--shard s0"
    [trove-reconciler]="--shard s0" [trove-webhooks]="")

# write_cfg FILE DAEMON BAD: the config as DAEMON sees it.
write_cfg() {
    local file=$1 daemon=$2 bad=$3 name host
    declare -A A
    for name in "${!EP[@]}"; do
        host=10.99.0.1
        [[ " ${OWN[$daemon]} " == *" $name "* ]] && host=127.0.0.1
        [ "$name" = "$bad" ] && host=10.99.1.1
        A[$name]=${EP[$name]/H/$host}
    done
    cat > "$file" <<EOF
trove
    partitions = 256
    rules = "$WORK/rules"
    map_size_mb = 64
    sync = none
    allow_unauthenticated = yes
sources
    web
broker
    pub = "${A[broker_pub]}"
    sub = "${A[broker_sub]}"
    control = "${A[broker_control]}"
    metrics = "${A[broker_metrics]}"
ingestor
    i0
        endpoint = "${A[i0_endpoint]}"
        metrics = "${A[i0_metrics]}"
        http = "${A[i0_http]}"
scorer
    s0
        events = "${A[s0_events]}"
        query = "${A[s0_query]}"
        partitions = "0-255"
        data = "$WORK/data/s0"
        metrics = "${A[s0_metrics]}"
        replica = "$WORK/data/r0"
        reconcile = "${A[s0_reconcile]}"
        reconcile_every_s = 0
webhooks
    data = "$WORK/data/webhooks"
    control = "${A[webhooks_control]}"
    metrics = "${A[webhooks_metrics]}"
    endpoint
        local
            url = "http://127.0.0.1:$((P + 297))/hook"
            secret = "0123456789abcdef"
EOF
}

# In a namespace of its own: start the daemon, wait (bounded) until it
# exits or the kernel counted an attempt to leave loopback, stop it, print
# "ATTEMPTS EXIT" (EXIT: its status, or "running" when it had to be stopped).
PROBE='
noroutes() { awk '"'"'$1 == "Ip:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "OutNoRoutes") c = i; h = 1 } else print $c }'"'"' /proc/net/snmp; }
before=$(noroutes)
"$@" > "$LOGFILE" 2>&1 &
pid=$!
state=running
for ((i = 0; i < 200; i++)); do
    [ "$(noroutes)" != "$before" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; state=$?; break; fi
    sleep 0.05
done
if [ "$state" = running ]; then
    # Moved, or still up after 10 s: one more look before stopping it.
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid"; else wait "$pid"; state=$?; fi
fi
echo "$(( $(noroutes) - before )) $state"
'

probe() {
    local cfg=$1 daemon=$2 log=$3
    # shellcheck disable=SC2086  # ARGS: an option and its value
    LOGFILE=$log "$NS" bash -c "$PROBE" probe "$BUILD/$daemon" --config "$cfg" ${ARGS[$daemon]}
}

checks=0
for daemon in trove-broker trove-ingestor trove-scorer trove-reconciler trove-webhooks; do
    rm -rf "$WORK/data"
    if [ "$daemon" != trove-broker ]; then
        write_cfg "$WORK/control.cfg" "$daemon" ""
        read -r attempts state < <(probe "$WORK/control.cfg" "$daemon" "$WORK/$daemon-control.log")
        [ "$state" = running ] || { cat "$WORK/$daemon-control.log" >&2; fail "$daemon did not start on loopback endpoints (exit $state)"; }
        [ "$attempts" -gt 0 ] || fail "$daemon started but the probe saw no attempt to reach its peers at 10.99.0.x: the check below could not see one either"
        log "control: $daemon bound its endpoints and tried its peers ($attempts attempts counted)"
    fi
    for bad in ${OWN[$daemon]}; do
        rm -rf "$WORK/data"
        write_cfg "$WORK/bad.cfg" "$daemon" "$bad"
        read -r attempts state < <(probe "$WORK/bad.cfg" "$daemon" "$WORK/$daemon-$bad.log")
        if [ "$state" = running ]; then
            cat "$WORK/$daemon-$bad.log" >&2
            fail "$daemon kept running although it cannot bind its $bad at 10.99.1.1"
        fi
        [ "$state" -ne 0 ] || fail "$daemon exited 0 although it cannot bind its $bad"
        if [ "$attempts" -ne 0 ]; then
            cat "$WORK/$daemon-$bad.log" >&2
            fail "$daemon tried to reach another host ($attempts attempts) before it found it cannot bind its $bad"
        fi
        grep -q "10.99.1.1" "$WORK/$daemon-$bad.log" ||
            fail "$daemon's error does not name the address it could not bind: $(tail -n 3 "$WORK/$daemon-$bad.log")"
        checks=$((checks + 1))
    done
    log "refusal: $daemon stops before any connect when any of its ${OWN[$daemon]} cannot be bound"
done
echo "PASS: $checks unbindable endpoints, each daemon stopped before trying a peer"
