# The operator console (console/, served by the ingestor at /console/) and
# its operator routes, against a real two-shard cluster:
#   - the files are served without a key, with their content types and a
#     Content-Security-Policy; the operator routes need the admin scope
#     (the demo key, without it: 403; no key: 401);
#   - GET /v1/metrics/{role}/{name} is the process's /metrics; POST
#     /v1/rules/preview answers what `trovectl rules preview --json` prints
#     and refuses a bad file or a missing name; GET /v1/reconciler/reports
#     holds the run `trovectl reconcile` just made;
#   - in headless Chromium (Debian's chromium + chromium-driver, driven by
#     python3-selenium: tests/integration/console_browser.py): a wrong key
#     is refused on the page; the operator key shows nonzero event and coin
#     rates on the overview while events arrive, the leaderboard the query
#     API gives (fetched here with curl), and a coin's earning events on
#     the player page. Screenshots: BUILD/artifacts/console/*.png.
# All of it over HTTPS (the ingestor's tls_cert/tls_key; curl trusts the
# test's certificate file, Chromium its key's hash).
# Chromium talks only to 127.0.0.1 (every background service off, every
# host name mapped to nothing): the suite runs in a loopback-only namespace.
# Chromium 156 also probes IPv6 reachability with a UDP connect() to
# 2001:4860:4860::8888 port 443 (its host resolver, before it resolves even
# 127.0.0.1), which no flag stops (--disable-ipv6, --enable-features=
# EnableIPv6ReachabilityOverride, NetworkServiceInProcess were tried); in
# the suite's loopback-only namespace that would be an attempt to leave it,
# counted by `scripts/loopback-only.sh --guard`. So chromedriver and Chromium
# run with tests/noroute's shim preloaded: such a call fails in the browser
# with ENETUNREACH before the kernel sees it (what it refused is printed).
source "$(dirname "$0")/lib.sh"
INGESTOR="$BUILD/trove-ingestor"
PYTHON=/usr/bin/python3 # Debian's, with python3-selenium
[ -f "$BUILD/tests/libtrove-noroute.so" ] || fail "no $BUILD/tests/libtrove-noroute.so (built with the tests)"
for tool in curl jq chromium chromedriver; do
    command -v "$tool" >/dev/null || fail "$tool is needed (scripts/install-deps.sh)"
done
"$PYTHON" -c 'import selenium' 2>/dev/null || fail "python3-selenium is needed (scripts/install-deps.sh)"

cluster_up
wait_healthy
# The console over HTTPS (docs/security.md, "HTTPS"): a certificate for
# 127.0.0.1 that curl trusts by its file and Chromium by its key's hash.
CERT="$WORK/api.crt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=trove-console-test" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/api.key" -out "$CERT" 2>/dev/null ||
    fail "openssl cannot make a certificate"
SPKI=$(openssl x509 -pubkey -noout -in "$CERT" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
API="https://127.0.0.1:$((PORT_BASE + 250))"
WEB_KEY=$(cat "$DIR/web.key")
# An operator key: source partner gets a key with the admin scope; i0 gets
# the certificate. Its restart (the supervisor's) reads both.
ADMIN_KEY=$("$INGESTOR" --new-key | awk '$1 == "key" {print $3}')
ADMIN_HASH=$(echo "$ADMIN_KEY" | "$INGESTOR" --hash-key)
sed -i "s/^    partner\$/    partner\n        keys = \"$ADMIN_HASH=admin\"/" "$DIR/trove.cfg"
grep -q "$ADMIN_HASH=admin" "$DIR/trove.cfg" || fail "could not add the admin key to trove.cfg"
sed -i "s|^        http = \"127.0.0.1:$((PORT_BASE + 250))\"\$|&\n        tls_cert = \"$CERT\"\n        tls_key = \"$WORK/api.key\"|" "$DIR/trove.cfg"
grep -q "tls_cert = \"$CERT\"" "$DIR/trove.cfg" || fail "could not give i0 its certificate in trove.cfg"
kill9 i0

# req METHOD PATH KEY [curl args...]: CODE; body in $WORK/body, headers in $WORK/hdr
req() {
    local method=$1 path=$2 key=$3
    shift 3
    local auth=()
    [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
    CODE=$(curl -s --cacert "$CERT" -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code}' -X "$method" "${auth[@]}" \
        "$@" "$API$path") ||
        fail "curl $method $path failed"
}
expect() { # expect CODE [ERROR] WHAT
    [ "$CODE" = "$1" ] || fail "$3: HTTP $CODE, want $1: $(head -c 400 "$WORK/body")"
    [ -z "$2" ] || jq -e --arg e "$2" '.error == $e' "$WORK/body" >/dev/null ||
        fail "$3: $(head -c 400 "$WORK/body"), want error $2"
}
deadline=$((SECONDS + 15))
until req GET /v1/metrics "$ADMIN_KEY"; [ "$CODE" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "the admin key is not accepted 15 s after SIGHUP (HTTP $CODE)"
    sleep 0.1
done

log "cluster up, admin key in force"
# --- the files: open, typed, locked down ------------------------------------------
req GET /console/ ""; expect 200 "" "GET /console/ without a key"
grep -qi '^Content-Type: text/html; charset=utf-8' "$WORK/hdr" || fail "index.html: $(grep -i content-type "$WORK/hdr")"
grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self'" "$WORK/hdr" || fail "no CSP on the console"
grep -q '<script type="module" src="console.js">' "$WORK/body" || fail "index.html is not the console's"
cmp -s "$WORK/body" "$HERE/../../console/index.html" || fail "the served index.html differs from console/index.html"
for f in console.js trove.js metrics.js; do
    req GET "/console/$f" ""; expect 200 "" "GET /console/$f"
    grep -qi '^Content-Type: text/javascript; charset=utf-8' "$WORK/hdr" || fail "$f: $(grep -i content-type "$WORK/hdr")"
    cmp -s "$WORK/body" "$HERE/../../console/$f" || fail "the served $f differs from console/$f"
done
req GET /console/style.css ""; expect 200 "" "GET /console/style.css"
grep -qi '^Content-Type: text/css' "$WORK/hdr" || fail "style.css: $(grep -i content-type "$WORK/hdr")"
req GET /console/nope.js ""; expect 404 not_found "an unknown console file"
req GET /console/../trove.cfg "" --path-as-is; expect 404 not_found "a path out of the console"
req GET /console ""; expect 301 "" "GET /console"
grep -qi '^Location: /console/' "$WORK/hdr" || fail "GET /console: no Location /console/"
req POST /console/ ""; expect 401 "" "POST /console/ without a key (only GET is open)"

log "console files"
# --- operator routes: admin only -----------------------------------------------------
req GET /v1/metrics ""; expect 401 unauthorized "GET /v1/metrics without a key"
req GET /v1/metrics "$WEB_KEY"; expect 403 forbidden "GET /v1/metrics with the demo key (no admin)"
req GET /v1/reconciler/reports "$WEB_KEY"; expect 403 forbidden "reports with the demo key"
req GET /v1/metrics "$ADMIN_KEY"; expect 200 "" "GET /v1/metrics"
jq -e '[.targets[] | "\(.role)/\(.name)"] == ["broker/broker", "ingestor/i0", "scorer/s0", "scorer/s1"]' \
    "$WORK/body" >/dev/null || fail "metrics targets: $(cat "$WORK/body")"
req GET /v1/metrics/scorer/s1 "$ADMIN_KEY"; expect 200 "" "GET /v1/metrics/scorer/s1"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$WORK/hdr" || fail "metrics content type"
curl -s "http://127.0.0.1:$((PORT_BASE + 231))/metrics" | grep '^trove_scorer_ledger_map_bytes ' > "$WORK/direct"
grep '^trove_scorer_ledger_map_bytes ' "$WORK/body" | cmp -s - "$WORK/direct" ||
    fail "s1's metrics through the ingestor differ from its own /metrics"
req GET /v1/metrics/scorer/s9 "$ADMIN_KEY"; expect 404 not_found "an unknown process"
req GET /v1/metrics/scorer "$ADMIN_KEY"; expect 404 not_found "a role without a name"

log "operator routes"
# --- the browser: refusals, then the overview while events arrive -----------------
ART="$BUILD/artifacts/console"
rm -rf "$ART" && mkdir -p "$ART"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Events the browser test sends while the overview watches: 20 checkins of erin.
jq -n --arg ts "$NOW" '[range(20) | {source: "web", id: "live-\(.)", user: "erin", type: "checkin", ts: $ts}]' \
    > "$WORK/live.json"
# One browser for the whole test (it starts in seconds, not instantly): it
# runs the refusals and the overview, touches ready, and waits for go.
timeout 150 "$PYTHON" "$HERE/console_browser.py" --url "$API/console/" --key "$ADMIN_KEY" \
    --chromedriver-port $((PORT_BASE + 296)) --profile "$WORK/chromium" --artifacts "$ART" \
    --ready "$WORK/browser.ready" --go "$WORK/browser.go" \
    --wrong-key "$WEB_KEY" --bad-key "trk_not_a_key_of_any_source_123456" \
    --live-events "$WORK/live.json" --web-key "$WEB_KEY" \
    --board "$WORK/board.json" --coin "$WORK/coin.json" --balance "$WORK/balance.json" \
    --hunt-file "$WORK/demo-v2.yaml" --preview "$WORK/preview.json" \
    --noroute-shim "$BUILD/tests/libtrove-noroute.so" --noroute-log "$WORK/noroute.log" --spki "$SPKI" --cafile "$CERT" &
BROWSER=$!
# A failure of this script stops the browser first (it quits Chromium).
stop_browser() {
    local rc=$?
    kill "$BROWSER" 2>/dev/null && wait "$BROWSER" 2>/dev/null
    (exit $rc)
    cleanup
}
trap stop_browser EXIT
deadline=$((SECONDS + 90))
until [ -e "$WORK/browser.ready" ]; do
    kill -0 $BROWSER 2>/dev/null || { wait $BROWSER || true; fail "the browser test failed (screenshots: $ART)"; }
    [ $SECONDS -lt $deadline ] || fail "the browser's overview did not finish in 90 s"
    sleep 0.1
done

log "browser: refusals and overview"
# --- events of known users (source web, the demo hunt: checkin 1, visit 2, purchase 5)
send() { # send FILE: POST the events as the web source; all accepted
    req POST /v1/events "$WEB_KEY" -H 'Content-Type: application/json' --data-binary "@$1"
    expect 200 "" "POST /v1/events"
    jq -e '.accepted == (.results | length)' "$WORK/body" >/dev/null || fail "not all accepted: $(cat "$WORK/body")"
}
jq -n --arg ts "$NOW" '[
  {user: "alice", type: "purchase"}, {user: "alice", type: "purchase"}, {user: "alice", type: "visit"},
  {user: "bob", type: "visit"}, {user: "bob", type: "visit"}, {user: "bob", type: "checkin"},
  {user: "carol", type: "checkin"}, {user: "dave", type: "purchase"}, {user: "dave", type: "checkin"}
] | to_entries | map({source: "web", id: "ev-\(.key)", user: .value.user, type: .value.type, ts: $ts})' > "$WORK/first.json"
send "$WORK/first.json"
settle

# The expected answers, from the query API.
req GET "/v1/leaderboards/demo?limit=10" "$ADMIN_KEY"; expect 200 "" "the demo board"
cp "$WORK/body" "$WORK/board.json"
jq -e '[.entries[].user] == ["erin", "alice", "dave", "bob", "carol"]' "$WORK/board.json" >/dev/null ||
    fail "the demo board: $(cat "$WORK/board.json")"
req GET "/v1/users/alice/coins" "$ADMIN_KEY"; expect 200 "" "alice's coins"
COIN=$(jq -r '[.coins[] | select(.rule == "visit")][0].id' "$WORK/body")
[ -n "$COIN" ] && [ "$COIN" != null ] || fail "alice has no visit coin: $(cat "$WORK/body")"
req GET "/v1/coins/$COIN" "$ADMIN_KEY"; expect 200 "" "alice's visit coin"
cp "$WORK/body" "$WORK/coin.json"
jq -e '[.events[].id] == ["ev-2"]' "$WORK/coin.json" >/dev/null || fail "the coin's events: $(cat "$WORK/coin.json")"
req GET "/v1/users/alice/balance" "$ADMIN_KEY"; expect 200 "" "alice's balance"
cp "$WORK/body" "$WORK/balance.json"

log "events and expected answers"
# --- rule preview ------------------------------------------------------------------------
sed -e 's/^version: 1/version: 2/' -e '/id: purchase/,/coins:/s/coins: 5/coins: 7/' "$HERE/../../etc/rules/demo.yaml" \
    > "$WORK/demo.yaml"
grep -q 'coins: 7' "$WORK/demo.yaml" || fail "could not write the candidate hunt file"
req POST "/v1/rules/preview?file=demo-v2.yaml" "$ADMIN_KEY" --data-binary "@$WORK/demo.yaml"
expect 200 "" "POST /v1/rules/preview"
# trovectl names the file by its path's base name: the same name here.
cp "$WORK/demo.yaml" "$WORK/demo-v2.yaml"
want=$("$TROVECTL" rules preview --dir "$DIR" --json "$WORK/demo-v2.yaml") || fail "trovectl rules preview failed"
cp "$WORK/body" "$WORK/preview.json"
[ "$(cat "$WORK/body")" = "$want" ] || fail "preview over HTTP: $(head -c 600 "$WORK/body")
    trovectl: ${want:0:600}"
# 3 purchases (alice 2, dave 1) change value: each revoked and minted again.
jq -e '(.rules[] | select(.rule == "purchase") | .mint == 3 and .revoke == 3 and .coins_delta == 6)' \
    "$WORK/body" >/dev/null || fail "preview of purchase 5 -> 7: $(head -c 600 "$WORK/body")"
req POST "/v1/rules/preview?file=demo-v2.yaml&user=alice" "$ADMIN_KEY" --data-binary "@$WORK/demo.yaml"
expect 200 "" "preview for one user"
jq -e '.users == 1 and .mint == 2 and .revoke == 2' "$WORK/body" >/dev/null || fail "preview --user: $(cat "$WORK/body")"
req POST "/v1/rules/preview" "$ADMIN_KEY" --data-binary "@$WORK/demo.yaml"; expect 400 bad_param "preview without file"
printf 'hunt: demo\nversion: x\n' > "$WORK/bad.yaml"
req POST "/v1/rules/preview?file=bad.yaml" "$ADMIN_KEY" --data-binary "@$WORK/bad.yaml"
expect 400 bad_rules "a hunt file that does not parse"
req POST "/v1/rules/preview?file=demo-v2.yaml" "$WEB_KEY" --data-binary "@$WORK/demo.yaml"
expect 403 forbidden "preview with the demo key"
[ ! -e "$DIR/rules/demo-v2.yaml" ] || fail "a preview wrote the hunt file"

log "rule preview"
# --- reconciler reports ------------------------------------------------------------------
"$TROVECTL" reconcile --dir "$DIR" --json > "$WORK/runs.json" || fail "trovectl reconcile failed"
req GET /v1/reconciler/reports "$ADMIN_KEY"; expect 200 "" "GET /v1/reconciler/reports"
jq -e --slurpfile runs "$WORK/runs.json" \
    '[.shards[] | {shard, run: .report.run}] == [$runs[] | {shard, run}]' "$WORK/body" >/dev/null ||
    fail "reports: $(head -c 600 "$WORK/body"); trovectl: $(cat "$WORK/runs.json")"

log "reconciler reports"
# --- the browser: leaderboard, player, reconciler pages --------------------------------
touch "$WORK/browser.go"
wait $BROWSER || fail "the browser test failed (screenshots: $ART)"
echo "console screenshots: $ART" >&2
ls "$ART"/*.png >/dev/null || fail "no screenshots in $ART"
if [ -s "$WORK/noroute.log" ]; then
    log "the browser's own attempts to leave loopback, refused in-process: $(sort -u -k3 "$WORK/noroute.log" | awk '{print $3, $4, $5, $6}' | sort -u | tr '\n' ';')"
fi
cluster_down_checked
log "console: files, operator routes, and the pages in headless Chromium"
