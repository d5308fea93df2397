# trovectl status: every process up; a process that cannot answer (stopped)
# is reported down and the command fails; after SIGCONT, and after a SIGKILL
# and the supervisor's restart, it is reported up again.
source "$(dirname "$0")/lib.sh"

cluster_up
wait_healthy
"$TROVECTL" status --dir "$DIR" --json > "$WORK/all.json" || fail "status failed on a healthy cluster"
[ "$(jq -s 'length' "$WORK/all.json")" -eq 4 ] || fail "status should list 4 processes"
[ "$(jq -s '[.[] | select(.up)] | length' "$WORK/all.json")" -eq 4 ] || fail "not all up"
jq -e -s 'all(.[]; .host != null and .version != null and .pid > 0)' "$WORK/all.json" >/dev/null \
    || fail "status lacks host, version or pid"

# Heartbeats through the broker: every process is heard (bounded retries: a
# fresh subscriber may just miss one period).
heard=0
for attempt in 1 2 3 4 5; do
    heard=$("$TROVECTL" status --dir "$DIR" --json | jq -s '[.[] | select(.heartbeat_age_s != null)] | length')
    [ "$heard" -eq 4 ] && break
done
[ "$heard" -eq 4 ] || fail "only $heard of 4 processes heard through the broker"

pid=$(cat "$DIR/pids/s1.pid")
kill -STOP "$pid"
set +e
"$TROVECTL" status --dir "$DIR" --json > "$WORK/stopped.json" 2> "$WORK/stopped.err"
rc=$?
set -e
kill -CONT "$pid"
[ "$rc" -ne 0 ] || fail "status exited 0 with a stopped scorer"
[ "$(jq -r 'select(.name == "s1") | .up' "$WORK/stopped.json")" = false ] || fail "s1 not reported down"
[ "$(jq -s '[.[] | select(.up)] | length' "$WORK/stopped.json")" -eq 3 ] || fail "others not reported up"
grep -q "1 of 4 processes down" "$WORK/stopped.err" || fail "no one-line error: $(cat "$WORK/stopped.err")"
wait_healthy 10

kill9 i0
wait_healthy 30
[ "$(jq -r 'select(.name == "i0") | .pid' <("$TROVECTL" status --dir "$DIR" --json))" != "" ] || fail "i0 missing"
log "status: down while stopped, up after SIGCONT and after a restart"
cluster_down_checked
