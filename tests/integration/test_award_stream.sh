# The live award stream over HTTP (GET /v1/awards/stream, Server-Sent
# Events; docs/queries.md "The award stream") against a real two-shard
# cluster, read with curl -N:
#   - every award (mints and a revocation) arrives exactly once, compared
#     with the ledger as `trovectl coins` lists it (shard, aseq, coin id,
#     revoked), not recomputed;
#   - filters user, and hunt + rule, give exactly the ledger's entries of
#     that user, that rule;
#   - a client that disconnects and resumes with the id of the last event it
#     got (Last-Event-ID header, or the last_event_id parameter) gets exactly
#     what it missed: no gap, no duplicate; also across a scorer's SIGKILL
#     and restart, for a client connected through it and one resumed after;
#   - a key without admin sees other sources' events with "id": null;
#   - open streams survive a SIGHUP (keys reloaded) of the ingestor;
#   - refusals: 401 without a key, 403 a key without users:read, 400 for a
#     malformed id, an unknown parameter, a bad user or hunt.
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || fail "curl is needed"
command -v python3 >/dev/null || fail "python3 is needed"
INGESTOR="$BUILD/trove-ingestor"

cluster_up
wait_healthy
API="http://127.0.0.1:$((PORT_BASE + 250))"
KEY=$(cat "$DIR/web.key") || fail "trovectl up wrote no demo key"
USERS=$(seq 0 4 | sed 's/^/su/')

# A key of source web that may read boards only (for the 403), by SIGHUP.
BOARDS_KEY=$("$INGESTOR" --new-key | awk '$1 == "key" {print $3}')
BOARDS_HASH=$(echo "$BOARDS_KEY" | "$INGESTOR" --hash-key)
sed -i "s|^\(        keys = \"blake2b:[0-9a-f]*=[a-z:+]*\)\"|\1 $BOARDS_HASH=boards:read\"|" "$DIR/trove.cfg"
grep -q "$BOARDS_HASH=boards:read" "$DIR/trove.cfg" || fail "could not add a key to $DIR/trove.cfg"
kill -HUP "$(cat "$DIR/pids/i0.pid")"

# code PATH [curl args...]: the HTTP status of a plain GET (body in $WORK/body)
code() {
    local path=$1
    shift
    curl -s -o "$WORK/body" -w '%{http_code}' --max-time 5 "$@" "$API$path" || true
}
refused() { # refused STATUS ERROR PATH [curl args...]
    local want=$1 error=$2 path=$3 got
    shift 3
    got=$(code "$path" "$@")
    [ "$got" = "$want" ] || fail "GET $path: HTTP $got, want $want: $(cat "$WORK/body")"
    jq -e --arg e "$error" '.error == $e' "$WORK/body" >/dev/null || fail "GET $path: $(cat "$WORK/body"), want $error"
}
AUTH=(-H "Authorization: Bearer $KEY")
deadline=$((SECONDS + 30))
until [ "$(code /v1/awards/stream -H "Authorization: Bearer $BOARDS_KEY")" = 403 ]; do
    [ $SECONDS -lt $deadline ] || fail "the boards:read key is not in force 30 s after SIGHUP: $(cat "$WORK/body")"
    sleep 0.2
done
refused 401 unauthorized /v1/awards/stream
refused 403 forbidden /v1/awards/stream -H "Authorization: Bearer $BOARDS_KEY"
refused 400 bad_param "/v1/awards/stream?usr=su1" "${AUTH[@]}"
refused 400 bad_param "/v1/awards/stream?user=su1&user=su2" "${AUTH[@]}"
refused 400 bad_user "/v1/awards/stream?user=" "${AUTH[@]}"
refused 400 bad_hunt "/v1/awards/stream?hunt=a*b" "${AUTH[@]}"
refused 400 bad_param "/v1/awards/stream?rule=a%20b" "${AUTH[@]}"
for id in x 0:1 0:1,1:2,2:3 0:1,0:2 0:-1,1:0 0:1,1:2, 0:1:2,1:0 1:2,,0:1 0:99999999999999999999,1:0; do
    refused 400 bad_param "/v1/awards/stream?last_event_id=$(jq -rn --arg v "$id" '$v | @uri')" "${AUTH[@]}"
done
for id in x 0:1 1:0,0:1,2:2; do
    refused 400 bad_param "/v1/awards/stream" "${AUTH[@]}" -H "Last-Event-ID: $id"
done
refused 400 bad_param "/v1/awards/stream?last_event_id=%200:1,1:2" "${AUTH[@]}"
log "refusals: 401, 403, 400 for bad parameters and ids"

# The stream parser (SSE, complete events only: a block ends with a blank line).
cat >"$WORK/sse.py" <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
for block in text.split("\n\n")[:-1]:
    event, data = {}, []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            event[name] = value
    if data:
        event["data"] = json.loads("\n".join(data))
    print(json.dumps(event))
EOF
# entries FILE: "shard:aseq:coin:revoked" of each award event, sorted (duplicates kept)
entries() { python3 "$WORK/sse.py" "$1" | jq -r 'select(.event == "award") | .data | "\(.shard):\(.aseq):\(.id):\(.revoked)"' | sort; }
# last_id FILE: the id of the last complete event
last_id() { python3 "$WORK/sse.py" "$1" | jq -r 'select(.id) | .id' | tail -n 1; }
# ledger_read: every entry of the users' award logs, as `trovectl coins` lists them
ledger_read() {
    local u
    for u in $USERS; do "$TROVECTL" coins --dir "$DIR" --json --limit 0 "$u"; done >"$WORK/ledger.json"
}
# ledger [JQ-FILTER]: the same lines as entries, of the entries read last
ledger() { jq -r "select(.id) | select(${1:-true}) | \"\(.shard):\(.aseq):\(.id):\(.revoked)\"" "$WORK/ledger.json" | sort; }
# start NAME QUERY [curl args...]: a stream client in the background, its
# bytes in $WORK/NAME.sse; returns when its first id arrived.
declare -A PIDS
start() {
    local name=$1 query=$2 deadline=$((SECONDS + 15))
    shift 2
    : >"$WORK/$name.sse"
    curl -sN "${AUTH[@]}" "$@" "$API/v1/awards/stream$query" >"$WORK/$name.sse" 2>/dev/null &
    PIDS[$name]=$!
    until grep -q '^id: ' "$WORK/$name.sse"; do
        [ $SECONDS -lt $deadline ] || fail "stream $name: no first event id after 15 s: $(head -c 300 "$WORK/$name.sse")"
        sleep 0.1
    done
}
stop() {
    kill "${PIDS[$1]}" 2>/dev/null || true
    wait "${PIDS[$1]}" 2>/dev/null || true
    unset "PIDS[$1]"
}
stop_all() { for name in "${!PIDS[@]}"; do stop "$name"; done; }
trap 'stop_all; cleanup' EXIT
# await WANT-FILE FILES...: until the award entries of FILES (together) are
# WANT-FILE's lines (bounded), then exactly those: none missing, none twice.
await() {
    local want=$1 deadline=$((SECONDS + 20)) n
    shift
    n=$(wc -l <"$want")
    while true; do
        # Parsed once as many award events as wanted have arrived (or at the end).
        if [ "$(cat "$@" | grep -c '^event: award$')" -ge "$n" ] || [ $SECONDS -ge $deadline ]; then
            for f in "$@"; do entries "$f"; done | sort >"$WORK/got"
            cmp -s "$WORK/got" "$want" && return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "missing:" >&2
            comm -13 "$WORK/got" "$want" | head >&2
            echo "unexpected or repeated:" >&2
            diff <(sort "$WORK/got") <(sort "$want") | grep '^<' | head >&2
            fail "the streams $* do not hold exactly the ledger's $(wc -l <"$want") entries"
        fi
        sleep 0.2
    done
}

# batch NAME FROM TO: events NAME-FROM..NAME-TO of users su0..su4 (every
# seventh from source partner), checkin / visit / purchase in turn
NOW=$(($(date +%s) * 1000))
batch() {
    local i users=(checkin visit purchase) source
    for ((i = $2; i <= $3; i++)); do
        source=web
        [ $((i % 7)) = 0 ] && source=partner
        printf '{"source":"%s","id":"%s-%d","user":"su%d","type":"%s","ts":%d}\n' \
            "$source" "$1" "$i" $((i % 5)) "${users[$((i % 3))]}" "$NOW"
    done
}
send() {
    "$TROVECTL" send --dir "$DIR" --json --timeout 30 "$1" >"$WORK/send.json" 2>/dev/null ||
        fail "trovectl send $1 failed"
    jq -e -s 'all(.status == "accepted")' "$WORK/send.json" >/dev/null ||
        fail "not every event of $1 was accepted: $(jq -c 'select(.status != "accepted")' "$WORK/send.json" | head -3)"
}

# --- every award once; filters; redaction -----------------------------------
start all ""
start user "?user=su1"
start rule "?hunt=demo&rule=purchase"
# A key reload (SIGHUP) while they are open does not end them.
kill -HUP "$(cat "$DIR/pids/i0.pid")"
batch b1 1 60 >"$WORK/b1.ndjson"
send "$WORK/b1.ndjson"
ledger_read
ledger >"$WORK/ledger1"
[ "$(wc -l <"$WORK/ledger1")" -ge 60 ] || fail "the ledger holds $(wc -l <"$WORK/ledger1") entries after 60 events"
await "$WORK/ledger1" "$WORK/all.sse"
ledger '.user == "su1"' >"$WORK/want-user"
[ -s "$WORK/want-user" ] || fail "su1 has no coins"
await "$WORK/want-user" "$WORK/user.sse"
ledger '.hunt == "demo" and .rule == "purchase"' >"$WORK/want-rule"
[ -s "$WORK/want-rule" ] || fail "no coin of rule purchase"
await "$WORK/want-rule" "$WORK/rule.sse"
python3 "$WORK/sse.py" "$WORK/all.sse" | jq -e -s '
    [.[] | select(.event == "award") | .data.events[]] as $ev
    | ($ev | map(select(.source == "partner")) | length > 0 and all(.id == null))
      and ($ev | map(select(.source == "web")) | length > 0 and all(.id | type == "string"))' >/dev/null ||
    fail "another source's events are not redacted for a key without admin"
log "60 events: all $(wc -l <"$WORK/ledger1") awards once; filters user and rule exact; partner's events redacted"

# --- disconnect, more awards (a revocation among them), resume ---------------
stop all
LAST=$(last_id "$WORK/all.sse")
batch b2 1 20 >"$WORK/b2.ndjson"
printf '{"source":"web","id":"undo-1","user":"su3","type":"undo","ts":%d,"attrs":{"target_source":"web","target_id":"b1-3"}}\n' \
    "$NOW" >>"$WORK/b2.ndjson"
send "$WORK/b2.ndjson"
start resumed "" -H "Last-Event-ID: $LAST"
ledger_read
ledger >"$WORK/ledger2"
grep -q ':true$' "$WORK/ledger2" || fail "the undo revoked nothing"
await "$WORK/ledger2" "$WORK/all.sse" "$WORK/resumed.sse"
entries "$WORK/resumed.sse" | grep -q ':true$' || fail "the revocation is not in the resumed stream"
log "resumed from $LAST: exactly the $(($(wc -l <"$WORK/ledger2") - $(wc -l <"$WORK/ledger1"))) missed entries, the revocation among them"

# --- a scorer killed and restarted -------------------------------------------
kill9 s0
batch b3 1 20 >"$WORK/b3.ndjson"
send "$WORK/b3.ndjson"
ledger_read
ledger >"$WORK/ledger3"
# Connected through the restart ...
await "$WORK/ledger3" "$WORK/all.sse" "$WORK/resumed.sse"
# ... and resumed after it, by the parameter, from the first client's last id.
start late "?last_event_id=$(jq -rn --arg v "$LAST" '$v | @uri')"
await "$WORK/ledger3" "$WORK/all.sse" "$WORK/late.sse"
ledger '.user == "su1"' >"$WORK/want-user"
await "$WORK/want-user" "$WORK/user.sse"
log "scorer s0 SIGKILLed and restarted: every award once for connected and resumed clients"

stop_all
cluster_down_checked
log "PASS"
