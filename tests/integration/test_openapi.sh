# The OpenAPI description of the HTTP API (docs/openapi.json) against the
# real server (tests/openapi/check_openapi.py does the checking):
#   1. the document is structurally OpenAPI 3.1 (required fields, unique
#      operation ids, every $ref resolves, path parameters declared, every
#      schema a valid JSON Schema 2020-12), and each of those checks can
#      fail (selftest: a broken document, an undocumented route and a bad
#      answer are each caught);
#   2. the ingestor's real route table (`trove-ingestor --routes`, built as
#      the daemon builds it) and the document agree both ways, open routes
#      included; with /metrics on its own address the table differs only by
#      the /metrics routes;
#   3. against a running cluster, every documented operation is called with
#      valid and invalid inputs (listener refusals on raw sockets included:
#      413, 400 framing, 431, 505, 408; 401, 403, 422, 429, 404 excluded and
#      503 from a stopped shard; the award stream read until its opening
#      position and an award, resumed by header and by parameter; the
#      operator routes with an admin key and without; the console's files):
#      each answer's status is one the operation
#      documents, with the error code the docs give for that input, and its
#      body and required headers validate against the documented schemas;
#      GET /v1/openapi.json (no key) is docs/openapi.json byte for byte.
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || fail "curl is needed"
python3 -c 'import jsonschema' 2>/dev/null || fail "python3-jsonschema is needed (scripts/install-deps.sh)"
CHECK="$HERE/../openapi/check_openapi.py"
DOC="$HERE/../../docs/openapi.json"

# --- 1. the document alone ---------------------------------------------------------------------
python3 "$CHECK" lint "$DOC" || fail "docs/openapi.json is not a valid OpenAPI 3.1 document"
python3 "$CHECK" selftest "$DOC" || fail "a check of check_openapi.py cannot fail"

# --- the cluster: a hunt with every progress kind, keys with fewer scopes, small limits ----------
mkdir -p "$DIR/rules"
cat > "$DIR/rules/oa.yaml" <<'EOF'
hunt: oa
version: 1
effective: 2020-01-01T00:00:00Z
rules:
  - {id: daily, kind: each, match: {type: checkin}, coins: 3, cap: {max: 2, per: day}}
  - {id: zones, kind: count, match: {type: visit}, distinct: zone, count: 5, coins: 20}
  - {id: clues, kind: sequence, within: 1d, coins: 50, steps: [{type: clueA}, {type: clueB}]}
EOF
# `up` writes the config; it is then edited with the cluster down.
log "openapi: the document alone is valid; a cluster to write its config"
cluster_up
"$TROVECTL" down --dir "$DIR" >/dev/null || fail "trovectl down failed"
log "openapi: config written"
CFG="$DIR/trove.cfg"
"$BUILD/trove-ingestor" --routes --config "$CFG" --name i0 >"$WORK/routes-apart.txt" ||
    fail "trove-ingestor --routes failed"
HTTP_PORT=$((PORT_BASE + 250))
new_key() { "$BUILD/trove-ingestor" --new-key | awk -v w="$1" '$1 == w {print $3}'; }
WRITE_KEY=$(new_key key)
WRITE_HASH=$(echo "$WRITE_KEY" | "$BUILD/trove-ingestor" --hash-key)
READ_KEY=$(new_key key)
READ_HASH=$(echo "$READ_KEY" | "$BUILD/trove-ingestor" --hash-key)
ADMIN_KEY=$(new_key key)
ADMIN_HASH=$(echo "$ADMIN_KEY" | "$BUILD/trove-ingestor" --hash-key)
[ -n "$WRITE_KEY" ] && [ -n "$READ_KEY" ] && [ -n "$ADMIN_KEY" ] || fail "trove-ingestor --new-key printed no key"
# /metrics on the API's listener; a write-only source with a burst of 3 and
# a read-only one with 2 reads, both refilled too slowly to matter; an
# operator key (admin) of source load; queries
# of at most 150 units; a request head within 1 s.
sed -i -e "s|metrics = \"127.0.0.1:$((PORT_BASE + 210))\"|metrics = \"127.0.0.1:$HTTP_PORT\"|" \
    -e "s|^    mobile\$|    mobile\n        keys = \"$WRITE_HASH=events:write\"\n        rate = 0.01\n        burst = 3|" \
    -e "s|^    partner\$|    partner\n        keys = \"$READ_HASH=users:read\"\n        read_rate = 0.01\n        read_burst = 2|" \
    -e "s|^    load\$|    load\n        keys = \"$ADMIN_HASH=admin\"|" \
    -e "s|^limits\$|limits\n    max_query_cost = 150\n    http_header_timeout_s = 1|" "$CFG"
grep -q "metrics = \"127.0.0.1:$HTTP_PORT\"" "$CFG" && grep -q "read_burst = 2" "$CFG" &&
    grep -q "max_query_cost = 150" "$CFG" && grep -q "$ADMIN_HASH=admin" "$CFG" || fail "test setup: the config was not edited as expected"
cluster_up
wait_healthy
log "openapi: the cluster is up with the edited config"

# --- 2. the route table, from a config with the cluster running (--routes binds nothing) ------------
"$BUILD/trove-ingestor" --routes --config "$CFG" --name i0 >"$WORK/routes.txt" ||
    fail "trove-ingestor --routes failed while the cluster runs (did it bind?)"
python3 "$CHECK" routes "$DOC" "$WORK/routes.txt" || fail "the route table and docs/openapi.json disagree"
[ "$(diff "$WORK/routes-apart.txt" "$WORK/routes.txt" | grep '^[<>]' | sort)" = "> GET /metrics open
> HEAD /metrics open" ] || fail "with /metrics apart the routes differ by more than /metrics:
$(diff "$WORK/routes-apart.txt" "$WORK/routes.txt")"

# --- 3. every operation against the running cluster ------------------------------------------------
API="http://127.0.0.1:$HTTP_PORT"
KEY=$(cat "$DIR/web.key") || fail "trovectl up wrote no demo key"
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/openapi.json")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "no GET /v1/openapi.json on $API after 30 s"
    sleep 0.2
done
python3 "$CHECK" live "$DOC" --base "$API" --dir "$DIR" --trovectl "$TROVECTL" \
    --key "$KEY" --write-key "$WRITE_KEY" --read-key "$READ_KEY" --admin-key "$ADMIN_KEY" ||
    fail "answers of the running server disagree with docs/openapi.json"
log "openapi: live answers checked"
cluster_down_checked
log "openapi: document valid, routes documented both ways, every operation's answers valid"
