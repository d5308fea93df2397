# The clients for apps and partners against a real cluster: the JS module
# (console/trove.js, run by node: tests/js/test_client.mjs) submits, reads a
# balance, coins, a coin's events and a board, and gets the API's refusals as
# TroveError; the Python example (etc/examples/partner.py, stdlib only)
# submits and reads a balance. Expected balances are the demo hunt's values
# written out by hand (checkin 1, visit 2, purchase 5).
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || fail "node is needed (nodejs, scripts/install-deps.sh)"
PYTHON=/usr/bin/python3
cluster_up
wait_healthy
API="http://127.0.0.1:$((PORT_BASE + 250))"
KEY=$(cat "$DIR/web.key")
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/users/nobody/balance")" = 401 ]; do
    [ $SECONDS -lt $deadline ] || fail "no HTTP API on $API after 30 s"
    sleep 0.2
done

node "$HERE/../js/test_client.mjs" "$API" "$KEY" || fail "the JS client test failed"

out=$(TROVE_URL="$API" TROVE_KEY="$KEY" "$PYTHON" "$HERE/../../etc/examples/partner.py" "partner/u 1" checkin purchase) ||
    fail "the partner example failed: $out"
[ "$(grep -c ': accepted$' <<<"$out")" = 2 ] || fail "partner example, events: $out"
balance=$(tail -1 <<<"$out")
jq -e '.user == "partner/u 1" and .balance == 6' <<<"$balance" >/dev/null || fail "partner example, balance: $balance"
# A key of no source: the example says 401 and exits non-zero.
if out=$(TROVE_URL="$API" TROVE_KEY=trk_no_such_key_0123456789abcdef "$PYTHON" "$HERE/../../etc/examples/partner.py" u1 2>&1); then
    fail "the partner example succeeded with a bad key: $out"
fi
grep -q "HTTP 401 unauthorized" <<<"$out" || fail "partner example, bad key: $out"
cluster_down_checked
log "JS client and Python partner example: submit, balance and refusals as expected"
