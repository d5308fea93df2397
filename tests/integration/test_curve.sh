# CURVE on every ZeroMQ link (docs/security.md, "CURVE between hosts"), on a
# real cluster started with `trovectl up --curve`:
#   - everything works through CURVE: events over ZeroMQ and HTTP, balances,
#     the award stream through the broker, a reconciler run, status;
#   - a client with an unknown key, a plain client and a client with the
#     wrong server key are refused by the ingestor (and a stranger by a
#     scorer's query endpoint): nothing is accepted, the ledger is unchanged,
#     and each refusal is logged and counted under its reason;
#   - a daemon refuses to start with a secret key others can read.
source "$(dirname "$0")/lib.sh"
P=$PORT_BASE

cluster_up --curve --shards 2
# Source game gets small HTTP-style limits: they must bind producers on
# ZeroMQ too (certificate role producer), not the cluster's own tools.
"$TROVECTL" down --dir "$DIR" > /dev/null
awk '{ print } /^    game$/ { print "        rate = 20"; print "        burst = 20" }' "$DIR/trove.cfg" > "$DIR/trove.cfg.new" &&
    mv "$DIR/trove.cfg.new" "$DIR/trove.cfg"
cluster_up
wait_healthy
grep -q '^    curve = yes' "$DIR/trove.cfg" || fail "up --curve wrote no curve = yes"
[ "$(stat -c %a "$DIR/curve/host.cert_secret")" = 600 ] || fail "secret key file is not 0600"
KEY=$("$TROVECTL" curve show "$DIR/curve/host.cert")
# (grep -F: Z85 keys hold characters that regexes and sed/awk replacements read as syntax.)
[ "$(grep -cF "curve_key = \"$KEY\"" "$DIR/trove.cfg")" -eq 4 ] || fail "config does not carry the host key 4 times"

# --- Everything through CURVE ---
now=$(date +%s%3N)
awk -v now="$now" 'BEGIN { for (i = 0; i < 2000; i++)
    printf "{\"source\":\"game\",\"id\":\"c-%d\",\"user\":\"cu-%d\",\"type\":\"checkin\",\"ts\":%.0f}\n", i, i % 97, now - i }' \
    > "$WORK/events.ndjson"
timeout 120 "$TROVECTL" tail --dir "$DIR" --from-start --count 2001 --json > "$WORK/tail.json" &
TAIL_PID=$!
"$TROVECTL" send --dir "$DIR" --json "$WORK/events.ndjson" > "$WORK/send.json"
accepted=$(jq -r 'select(.status) | .status' "$WORK/send.json" | grep -c '^accepted$' || true)
[ "$accepted" -eq 2000 ] || fail "expected 2000 accepted over CURVE, got $accepted"
code=$(curl -s -o "$WORK/http.json" -w '%{http_code}' -H "Authorization: Bearer $(cat "$DIR/web.key")" \
    -d "[{\"id\":\"h-1\",\"user\":\"cu-0\",\"type\":\"checkin\",\"ts\":$now}]" "http://127.0.0.1:$((P + 250))/v1/events")
[ "$code" = 200 ] && jq -e '.accepted == 1' "$WORK/http.json" >/dev/null || fail "HTTP ingest over CURVE: $code $(cat "$WORK/http.json")"
expected_balances "$WORK/events.ndjson" | awk '$1 == "cu-0" {$2 += 1} {print}' > "$WORK/expected.txt"
# shellcheck disable=SC2046
actual_balances $(cut -d' ' -f1 "$WORK/expected.txt") > "$WORK/actual.txt"
diff "$WORK/expected.txt" "$WORK/actual.txt" || fail "balances over CURVE differ"
# The award stream (broker XPUB over CURVE) brings every coin.
# (timeout 120 bounds it: 124 when it had not seen them all by then)
wait $TAIL_PID || fail "tail failed (rc $?) after $(wc -l < "$WORK/tail.json") of 2001 coins"
[ "$(wc -l < "$WORK/tail.json")" -eq 2001 ] || fail "tail: $(wc -l < "$WORK/tail.json") coins, want 2001"
"$TROVECTL" reconcile --dir "$DIR" --json > "$WORK/run.json" || fail "reconcile over CURVE: $(cat "$WORK/run.json")"
jq -s -e 'all(.[]; .error == null)' "$WORK/run.json" >/dev/null || fail "reconcile: $(cat "$WORK/run.json")"
log "2001 events over CURVE (ZeroMQ and HTTP), balances exact, 2001 coins streamed, reconciled"

# --- Refusals ---
stored() { stored_events; }
STORED=$(stored)
[ "$STORED" -eq 2001 ] || fail "stored $STORED, want 2001"
# Refusals counted by the /metrics at $1 (addresses, space separated) under
# the reasons $2 (separated by |).
refused() {
    local a
    # shellcheck disable=SC2086
    for a in $1; do curl -s "http://$a/metrics"; done | awk -v reasons="$2" '
        BEGIN { n = split(reasons, r, "|") }
        index($0, "trove_curve_refused_total{") == 1 {
            for (i = 1; i <= n; i++) if (index($0, "reason=\"" r[i] "\"}")) s += $NF
        }
        END { print s + 0 }'
}
# Wait (bounded) until that count exceeds $3.
wait_refused() {
    local deadline=$((SECONDS + 10))
    until [ "$(refused "$1" "$2")" -gt "$3" ]; do
        [ $SECONDS -lt $deadline ] || fail "$1 counted no new CURVE refusal '$2' in 10 s"
        sleep 0.1
    done
}
I0="127.0.0.1:$((P + 210))" SCORERS="127.0.0.1:$((P + 230)) 127.0.0.1:$((P + 231))"
unchanged() {
    [ "$(stored)" -eq "$STORED" ] || fail "$1: stored events changed ($(stored), was $STORED)"
    # shellcheck disable=SC2046
    actual_balances $(cut -d' ' -f1 "$WORK/expected.txt") | diff -q "$WORK/expected.txt" - >/dev/null ||
        fail "$1: balances changed"
}
echo "{\"source\":\"game\",\"id\":\"refused-1\",\"user\":\"cu-1\",\"type\":\"purchase\",\"ts\":$now}" > "$WORK/one.ndjson"
"$TROVECTL" curve new "$WORK/stranger.cert" --name stranger >/dev/null
# A client whose certificate is not in the peers folder.
# (Configs made from the cluster's drop its `operator` line: trovectl would
# present the operator's certificate instead.)
sed "s#cert = \"curve/host.cert\"#cert = \"$WORK/stranger.cert\"#; s#\"curve/peers\"#\"$DIR/curve/peers\"#; /^    operator = /d" \
    "$DIR/trove.cfg" > "$WORK/stranger.cfg"
before=$(refused "$I0" unknown_key)
if "$TROVECTL" send --config "$WORK/stranger.cfg" --timeout 2 "$WORK/one.ndjson" > "$WORK/out" 2>&1; then
    fail "a stranger's event was answered: $(cat "$WORK/out")"
fi
grep -q "unanswered" "$WORK/out" && grep -q "CURVE is on" "$WORK/out" || fail "stranger: $(cat "$WORK/out")"
wait_refused "$I0" unknown_key "$before"
grep -q "CURVE: refused a peer on tcp://127.0.0.1:$((P + 10)): its public key is not in the peers folder" "$DIR/logs/i0.log" ||
    fail "the ingestor did not log the refusal"
unchanged "unknown key"
# The same stranger asking the scorer that owns cu-1 directly.
before=$(refused "$SCORERS" unknown_key)
if "$TROVECTL" balance --config "$WORK/stranger.cfg" cu-1 > "$WORK/out" 2>&1; then fail "a stranger got a balance"; fi
wait_refused "$SCORERS" unknown_key "$before"
# A plain ZeroMQ client: the server sees the wrong mechanism (not_curve), or
# the client hanging up first on seeing CURVE (other).
sed '/^    curve = yes/d; /^    operator = /d' "$DIR/trove.cfg" > "$DIR/plain.cfg"
before=$(refused "$I0" "not_curve|other")
if "$TROVECTL" send --config "$DIR/plain.cfg" --timeout 2 "$WORK/one.ndjson" > "$WORK/out" 2>&1; then
    fail "a plain client's event was answered: $(cat "$WORK/out")"
fi
wait_refused "$I0" "not_curve|other" "$before"
unchanged "plain client"
# A client that has the wrong server key (a man in the middle would).
WRONG=$("$TROVECTL" curve show "$WORK/stranger.cert")
awk -v k="$WRONG" '/^ *curve_key = / { match($0, /^ */); print substr($0, 1, RLENGTH) "curve_key = \"" k "\""; next }
    /^    operator = / { next } { print }' "$DIR/trove.cfg" > "$DIR/wrong.cfg"
[ "$(grep -cF "curve_key = \"$WRONG\"" "$DIR/wrong.cfg")" -eq 4 ] || fail "wrong.cfg does not carry the wrong key"
before=$(refused "$I0" bad_key)
if "$TROVECTL" send --config "$DIR/wrong.cfg" --timeout 2 "$WORK/one.ndjson" > "$WORK/out" 2>&1; then
    fail "a client with the wrong server key was answered: $(cat "$WORK/out")"
fi
wait_refused "$I0" bad_key "$before"
unchanged "wrong server key"
log "unknown key, plain client, wrong server key: refused, logged, counted; ledger unchanged"

# --- Roles (docs/security.md, "Roles"): what an admitted certificate may do ---
# cfg_as NAME: a config in which trovectl presents $WORK/NAME.cert.
cfg_as() {
    sed "s#cert = \"curve/host.cert\"#cert = \"$2\"#; s#\"curve/peers\"#\"$DIR/curve/peers\"#; /^    operator = /d" \
        "$DIR/trove.cfg" > "$WORK/$1.cfg"
}
"$TROVECTL" curve new "$WORK/prod.cert" --name prod --role producer --source game >/dev/null
"$TROVECTL" curve new "$WORK/reader.cert" --name reader --role reader >/dev/null
cp "$WORK/prod.cert" "$WORK/reader.cert" "$DIR/curve/peers/"
cfg_as prod "$WORK/prod.cert"
cfg_as reader "$WORK/reader.cert"
cfg_as daemon "$DIR/curve/host.cert"
grep -q 'role = "daemon"' "$DIR/curve/host.cert" && grep -q 'role = "operator"' "$DIR/curve/operator.cert" ||
    fail "trovectl up made no daemon and operator certificates"
refused_scorers() { for a in $SCORERS; do curl -s "http://$a/metrics"; done | awk '$1 == "trove_scorer_refused_total" {s += $2} END {print s + 0}'; }
# A producer speaks for its source only.
printf '{"source":"game","id":"role-1","user":"cu-3","type":"checkin","ts":%s}\n{"source":"web","id":"role-2","user":"cu-3","type":"checkin","ts":%s}\n' \
    "$now" "$now" > "$WORK/role.ndjson"
"$TROVECTL" send --config "$WORK/prod.cfg" --json --timeout 20 "$WORK/role.ndjson" > "$WORK/out" 2>&1 || true
jq -e -s 'map(select(.line)) | (.[0].status == "accepted") and (.[1].status == "rejected") and (.[1].reason == "source_mismatch")' \
    "$WORK/out" >/dev/null || fail "producer of game: want accepted then rejected source_mismatch: $(cat "$WORK/out")"
# A producer gets its source's limits (burst 20, 20 events/s): a request of
# 30 of its events can never pass; 10 can.
awk -v now="$now" 'BEGIN { for (i = 0; i < 30; i++)
    printf "{\"source\":\"game\",\"id\":\"burst-%d\",\"user\":\"cu-9\",\"type\":\"checkin\",\"ts\":%s}\n", i, now }' > "$WORK/burst.ndjson"
"$TROVECTL" send --config "$WORK/prod.cfg" --json --timeout 20 "$WORK/burst.ndjson" > "$WORK/out" 2>&1 || true
jq -e -s 'map(select(.line)) | length == 30 and all(.status == "rejected" and .reason == "over_burst")' "$WORK/out" >/dev/null ||
    fail "30 events of a producer whose burst is 20: want all rejected over_burst: $(head -c 400 "$WORK/out")"
head -n 10 "$WORK/burst.ndjson" | sed 's/burst-/fits-/' > "$WORK/fits.ndjson"
"$TROVECTL" send --config "$WORK/prod.cfg" --json --timeout 20 "$WORK/fits.ndjson" > "$WORK/out" 2>&1 || true
jq -e -s 'map(select(.line)) | length == 10 and all(.status == "accepted")' "$WORK/out" >/dev/null ||
    fail "10 events of a producer within its burst: want accepted: $(head -c 400 "$WORK/out")"
curl -s "http://$I0/metrics" | awk '$1 == "trove_ingestor_rate_limited_total" && $2 > 0 {f = 1} END {exit !f}' ||
    fail "trove_ingestor_rate_limited_total did not count the refusal"
STORED=$((STORED + 10))
# A reader may read, not write.
"$TROVECTL" balance --config "$WORK/reader.cfg" --json cu-3 > "$WORK/out" 2>&1 || fail "a reader could not read: $(cat "$WORK/out")"
printf '{"source":"game","id":"role-3","user":"cu-3","type":"checkin","ts":%s}\n' "$now" > "$WORK/role3.ndjson"
"$TROVECTL" send --config "$WORK/reader.cfg" --json --timeout 20 "$WORK/role3.ndjson" > "$WORK/out" 2>&1 || true
jq -e -s 'map(select(.line)) | .[0].status == "rejected" and .[0].reason == "not_allowed"' "$WORK/out" >/dev/null ||
    fail "a reader's event: want rejected not_allowed: $(cat "$WORK/out")"
# Control operations are the operator's: producer, reader and even the
# daemons' own certificate are refused; the operator (trovectl with the
# cluster's config) is not.
before=$(refused_scorers)
for who in prod reader daemon; do
    if "$TROVECTL" exclude --config "$WORK/$who.cfg" cu-4 --reason test > "$WORK/out" 2>&1; then
        fail "$who could exclude a user: $(cat "$WORK/out")"
    fi
    grep -q "not_allowed" "$WORK/out" || fail "$who exclude: want not_allowed: $(cat "$WORK/out")"
    if "$TROVECTL" reconcile --config "$WORK/$who.cfg" --json > "$WORK/out" 2>&1; then
        fail "$who could run the reconciler: $(cat "$WORK/out")"
    fi
    grep -q "not_allowed" "$WORK/out" || fail "$who reconcile: want not_allowed: $(cat "$WORK/out")"
done
[ "$(refused_scorers)" -gt "$before" ] || fail "the scorers counted no refusal in trove_scorer_refused_total"
"$TROVECTL" exclude --dir "$DIR" cu-4 --reason test > "$WORK/out" 2>&1 || fail "the operator could not exclude: $(cat "$WORK/out")"
"$TROVECTL" include --dir "$DIR" cu-4 > "$WORK/out" 2>&1 || fail "the operator could not include: $(cat "$WORK/out")"
[ "$(stored)" -eq $((STORED + 1)) ] || fail "stored $(stored) after the role checks, want $((STORED + 1)) (only the producer's game event)"
log "roles: a producer sends its source only, a reader only reads, only the operator runs control operations"

# --- Start-up refusals ---
cp "$DIR/curve/host.cert" "$WORK/open.cert"
cp "$DIR/curve/host.cert_secret" "$WORK/open.cert_secret"
chmod 644 "$WORK/open.cert_secret"
sed "s#cert = \"curve/host.cert\"#cert = \"$WORK/open.cert\"#; s#\"curve/peers\"#\"$DIR/curve/peers\"#; s#:$((P + 1))\"#:$((P + 291))\"#; s#:$((P + 2))\"#:$((P + 292))\"#; s#:$((P + 3))\"#:$((P + 293))\"#; /metrics = /d" \
    "$DIR/trove.cfg" > "$WORK/open.cfg"
if timeout 10 "$BUILD/trove-broker" --config "$WORK/open.cfg" > "$WORK/out" 2>&1; then fail "broker started with an open secret key"; fi
grep -q "chmod 600" "$WORK/out" || fail "broker: $(cat "$WORK/out")"
log "a daemon refuses a secret key others can read"
cluster_down_checked
