# Player-facing queries through a running two-shard cluster, exact answers
# on a known data set (docs/queries.md):
#   - leaderboard top N with ties and ranks, merged across shards; around a
#     user; the "*" board; paging after a position stays stable while a new
#     leader arrives;
#   - daily boards roll over at midnight in the hunt's time zone (New York),
#     not UTC; weekly boards; the list of boards;
#   - exclusion takes a user off every board and back;
#   - balance per hunt, progress per rule, and each answer's cost;
#   - the HTTP query API of the ingestor (GET /v1/...): every answer the same
#     JSON as `trovectl ... --json`, user ids with '/' and UTF-8 in the path,
#     401 / 400 / 404 / 503 (a silent shard) refusals;
#   - the cost limit refuses a query that would read too much (trovectl and
#     HTTP 422).
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || fail "curl is needed"

mkdir -p "$DIR/rules"
cat > "$DIR/rules/qb.yaml" <<'EOF'
hunt: qb
version: 1
timezone: America/New_York
rules:
  - {id: small, kind: each, match: {type: small}, coins: 1}
  - {id: big, kind: each, match: {type: big}, coins: 10}
  - {id: daily, kind: each, match: {type: checkin}, coins: 3, cap: {max: 2, per: day}}
  - {id: clues, kind: sequence, within: 1d, coins: 50, steps: [{type: clueA}, {type: clueB}, {type: clueC}]}
  - {id: zones, kind: count, match: {type: visit}, distinct: zone, count: 5, coins: 20}
EOF
cluster_up
wait_healthy

# The HTTP API: `trovectl up` gives ingestor i0 http at P+250 and source web
# a demo key in DIR/web.key.
API="http://127.0.0.1:$((PORT_BASE + 250))"
KEY=$(cat "$DIR/web.key") || fail "trovectl up wrote no demo key"
[ "$(stat -c %a "$DIR/web.key")" = 600 ] || fail "web.key mode $(stat -c %a "$DIR/web.key"), want 600"
grep -qF "$KEY" "$DIR/trove.cfg" && fail "the key itself is in trove.cfg"
# http GET PATH [curl args...]: CODE, the body in $WORK/http.json, headers in $WORK/http.hdr
http() {
    local path=$1
    shift
    CODE=$(curl -s -o "$WORK/http.json" -D "$WORK/http.hdr" -w '%{http_code}' "$@" "$API$path") ||
        fail "curl $API$path failed"
}
get() { http "$1" -H "Authorization: Bearer $KEY"; }
# refused CODE ERROR PATH [curl args...]: the answer is CODE {"error": ERROR, ...}
refused() {
    local code=$1 error=$2 path=$3
    shift 3
    if [ $# -eq 0 ]; then get "$path"; else http "$path" "$@"; fi
    [ "$CODE" = "$code" ] || fail "GET $path: HTTP $CODE, want $code: $(cat "$WORK/http.json")"
    jq -e --arg e "$error" '.error == $e and (.detail | length) > 0' "$WORK/http.json" >/dev/null ||
        fail "GET $path: $(cat "$WORK/http.json"), want error $error"
}
# same PATH TROVECTL-ARGS...: 200, and the body is exactly what `trovectl ARGS --json` prints
same() {
    local path=$1 want
    shift
    get "$path"
    want=$("$TROVECTL" "$@" --dir "$DIR" --json) || fail "trovectl $* failed"
    [ "$CODE" = 200 ] || fail "GET $path: HTTP $CODE: $(cat "$WORK/http.json")"
    [ "$(cat "$WORK/http.json")" = "$want" ] || fail "GET $path: $(cat "$WORK/http.json")
                     trovectl $*: $want"
}
# Wait (bounded) until the API answers: 401 without a key.
wait_api() {
    local deadline=$((SECONDS + 30)) code=
    until code=$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/users/nobody/balance") && [ "$code" = 401 ]; do
        [ $SECONDS -lt $deadline ] || fail "no HTTP API on $API after 30 s (last: ${code:-none})"
        sleep 0.2
    done
}
wait_api

# Three days ago in New York: 23:59:30 and, 60 s later, 00:00:30 the next
# day. Both instants fall on the same UTC date (04:59 and 05:00 UTC, or
# 03:59 / 04:00 in summer): only the hunt's zone tells the days apart.
D=$(TZ=America/New_York date -d '3 days ago' +%F)
D1=$(TZ=America/New_York date -d "$D + 1 day" +%F)
T1=$(($(TZ=America/New_York date -d "$D 23:59:30" +%s) * 1000))
T2=$((T1 + 60000))
[ "$(TZ=UTC date -d @$((T1 / 1000)) +%F)" = "$(TZ=UTC date -d @$((T2 / 1000)) +%F)" ] || fail "test setup: not one UTC date"
monday() { local dow; dow=$(date -d "$1" +%u); date -d "$1 - $((dow - 1)) days" +%F; }
W=$(monday "$D")
W1=$(monday "$D1")

# Scores: ann 30, bob 30, cat 21, dan 10, eve 10, fay 5 (all-time).
# Before midnight (day D): ann 20, bob 30, dan 10; after (day D1): ann 10, cat 21, eve 10, fay 5.
n=0
ev() {  # user type ts [attrs]
    n=$((n + 1))
    printf '{"source":"web","id":"q-%d","user":"%s","type":"%s","ts":%d,"attrs":%s}\n' $n "$1" "$2" "$3" "${4:-{\}}"
}
{
    ev ann big $T1; ev ann big $T1
    ev bob big $T1; ev bob big $T1; ev bob big $T1
    ev dan big $T1
    ev ann big $T2
    ev cat big $T2; ev cat big $T2
    ev eve big $T2
    for i in 1 2 3 4 5; do ev fay small $T2; done
} > "$WORK/board.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet "$WORK/board.ndjson" 2>/dev/null || fail "send"
# cat 21: one more small coin after midnight
ev cat small $T2 > "$WORK/one.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet "$WORK/one.ndjson" 2>/dev/null || fail "send"
settle  # boards read the tables as applied (docs/queries.md, Freshness)

board() { "$TROVECTL" board --dir "$DIR" "$@"; }
board_text() { board "$@" | grep -v '^cost '; }

# --- top N, ties, ranks (merged over both shards) -------------------------------
expect="1 ann 30
1 bob 30
3 cat 21
4 dan 10
4 eve 10
6 fay 5"
[ "$(board_text qb)" = "$expect" ] || fail "top: $(board qb)"
[ "$(board_text '*')" = "$expect" ] || fail "* board: $(board '*')"
[ "$(board_text qb --limit 3)" = "$(head -3 <<<"$expect")" ] || fail "top 3: $(board qb --limit 3)"
board qb --limit 3 --json | jq -e '.more == true and (.entries | length) == 3 and .cost > 0' >/dev/null ||
    fail "top 3 --json: $(board qb --limit 3 --json)"

# --- around a user ------------------------------------------------------------------
[ "$(board_text qb --user cat --k 1)" = "1 bob 30
3 cat 21
4 dan 10" ] || fail "around cat: $(board qb --user cat --k 1)"
[ "$(board_text qb --user fay --k 2)" = "4 dan 10
4 eve 10
6 fay 5" ] || fail "around fay: $(board qb --user fay --k 2)"

# --- days in the hunt's zone, weeks, the list -----------------------------------------
[ "$(board_text qb --period "day:$D")" = "1 bob 30
2 ann 20
3 dan 10" ] || fail "day $D: $(board qb --period "day:$D")"
[ "$(board_text qb --period "day:$D1")" = "1 cat 21
2 ann 10
2 eve 10
4 fay 5" ] || fail "day $D1: $(board qb --period "day:$D1")"
if [ "$W" = "$W1" ]; then
    [ "$(board_text qb --period "week:$W")" = "$expect" ] || fail "week $W: $(board qb --period "week:$W")"
else  # midnight was also the end of a week (Sunday night)
    [ "$(board_text qb --period "week:$W1")" = "$(board_text qb --period "day:$D1")" ] || fail "week $W1"
fi
board qb --list --json > "$WORK/list.json"
jq -e --arg d "day:$D" --arg d1 "day:$D1" '
    (.entries | map({(.period): .users}) | add) as $b
    | $b.all == 6 and $b[$d] == 3 and $b[$d1] == 4' "$WORK/list.json" >/dev/null || fail "list: $(cat "$WORK/list.json")"
board qb --period day:2026-02-30 2>"$WORK/err.txt" && fail "a bad period was accepted"
grep -q "bad period" "$WORK/err.txt" || fail "bad period error: $(cat "$WORK/err.txt")"

# --- paging stays stable while a new leader arrives ----------------------------------
page2_before=$(board_text qb --limit 2 --after 30:bob)
[ "$page2_before" = "3 cat 21
4 dan 10" ] || fail "page 2: $page2_before"
for i in 1 2 3 4 5; do ev zed big $T2; done > "$WORK/zed.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet "$WORK/zed.ndjson" 2>/dev/null || fail "send zed"
settle
# The same entries after the same position; their ranks now count zed.
[ "$(board_text qb --limit 2 --after 30:bob)" = "4 cat 21
5 dan 10" ] || fail "page 2 after a new leader: $(board qb --limit 2 --after 30:bob)"
[ "$(board_text qb --limit 1)" = "1 zed 50" ] || fail "zed leads: $(board qb --limit 1)"

# --- exclusion --------------------------------------------------------------------------
"$TROVECTL" exclude --dir "$DIR" zed --reason staff > /dev/null || fail "exclude"
[ "$(board_text qb --limit 2)" = "1 ann 30
1 bob 30" ] || fail "after exclude: $(board qb --limit 2)"
[ "$(board_text qb --period "day:$D1" --limit 1)" = "1 cat 21" ] || fail "day board after exclude"
board qb --user zed 2>"$WORK/err.txt" && fail "an excluded user was ranked"
grep -q "excluded" "$WORK/err.txt" || fail "excluded error: $(cat "$WORK/err.txt")"
refused 404 excluded /v1/leaderboards/qb/around/zed
same "/v1/leaderboards/qb?limit=2" board qb --limit 2
[ "$("$TROVECTL" exclude --dir "$DIR" --list)" = "zed staff" ] || fail "exclude --list"
[ "$("$TROVECTL" balance --dir "$DIR" zed)" = "zed 50" ] || fail "an excluded user keeps the balance"
"$TROVECTL" include --dir "$DIR" zed > /dev/null || fail "include"
[ "$(board_text qb --limit 1)" = "1 zed 50" ] || fail "after include: $(board qb --limit 1)"

# --- balance per hunt, progress, costs ------------------------------------------------------
NOW=$(date +%s%3N)
{
    ev pat clueA $((NOW - 60000)); ev pat clueB $((NOW - 50000))
    ev pat visit $((NOW - 40000)) '{"zone":"n"}'
    ev pat visit $((NOW - 39000)) '{"zone":"s"}'
    ev pat visit $((NOW - 38000)) '{"zone":"n"}'
    ev pat checkin $((NOW - 30000))
    ev pat small $((NOW - 20000))
} > "$WORK/pat.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet "$WORK/pat.ndjson" 2>/dev/null || fail "send pat"
settle
"$TROVECTL" balance --dir "$DIR" --json pat > "$WORK/bal.json"
# (the demo hunt of every `trovectl up` cluster also pays for checkin and visit)
jq -e '.balance == 11 and .hunts.qb == 4 and .hunts.demo == 7 and .cost == 4' "$WORK/bal.json" >/dev/null || fail "balance: $(cat "$WORK/bal.json")"
"$TROVECTL" progress --dir "$DIR" --json pat > "$WORK/progress.json"
jq -e '(.rules | map({(.rule): .}) | add) as $r
       | $r.clues.have == 2 and $r.clues.need == 3 and $r.clues.done == 0
       and $r.zones.have == 2 and $r.zones.need == 5
       and $r.daily.have == 1 and $r.daily.need == 2 and $r.daily.left == 1 and ($r.daily.period | startswith("day:"))
       and .cost == 2' "$WORK/progress.json" >/dev/null || fail "progress: $(cat "$WORK/progress.json")"

# --- the same over HTTP ------------------------------------------------------------------------
same /v1/users/pat/balance balance pat
same /v1/users/pat/progress progress pat
same /v1/users/nobody/balance balance nobody
same /v1/leaderboards/qb board qb
same "/v1/leaderboards/qb?limit=3" board qb --limit 3
same "/v1/leaderboards/qb?limit=2&after=30:bob" board qb --limit 2 --after 30:bob
same "/v1/leaderboards/qb?period=day:$D" board qb --period "day:$D"
same "/v1/leaderboards/qb?period=week:$W1&limit=4" board qb --period "week:$W1" --limit 4
same /v1/leaderboards/%2A board '*'
same "/v1/leaderboards/qb/around/cat?k=1" board qb --user cat --k 1
same "/v1/leaderboards/qb/around/fay?k=2&period=day:$D1" board qb --user fay --k 2 --period "day:$D1"
same /v1/leaderboards/qb/around/nobody board qb --user nobody
same /v1/leaderboards/qb/periods board qb --list
same "/v1/leaderboards/qb/periods?limit=1" board qb --list --limit 1
# Coins: two pages over HTTP are the history trovectl prints, newest first.
"$TROVECTL" coins --dir "$DIR" --json --limit 0 fay | jq -s -c . > "$WORK/fay.json"
[ "$(jq length "$WORK/fay.json")" = 5 ] || fail "fay's coins: $(cat "$WORK/fay.json")"
get "/v1/users/fay/coins?limit=3"
[ "$CODE" = 200 ] || fail "coins page 1: HTTP $CODE"
cp "$WORK/http.json" "$WORK/page1.json"
jq -e '.user == "fay" and (.coins | length) == 3 and .next_cursor != "" and .cost == 8' "$WORK/page1.json" >/dev/null ||
    fail "coins page 1: $(cat "$WORK/page1.json")"
get "/v1/users/fay/coins?limit=3&cursor=$(jq -r .next_cursor "$WORK/page1.json")"
[ "$CODE" = 200 ] || fail "coins page 2: HTTP $CODE"
jq -e '(.coins | length) == 2 and .next_cursor == ""' "$WORK/http.json" >/dev/null || fail "coins page 2: $(cat "$WORK/http.json")"
[ "$(jq -s -c '.[0].coins + .[1].coins' "$WORK/page1.json" "$WORK/http.json")" = "$(cat "$WORK/fay.json")" ] ||
    fail "coins over HTTP differ from trovectl coins --json"
# One coin by id, found on whichever shard holds it (fay's and cat's are on both shards).
for u in fay cat; do
    id=$("$TROVECTL" coins --dir "$DIR" --json --limit 1 "$u" | jq -r .id)
    same "/v1/coins/$id" coin "$id"
    jq -e --arg u "$u" '.coin.user == $u and (.events | length) == 1 and .cost > 2' "$WORK/http.json" >/dev/null ||
        fail "coin $id: $(cat "$WORK/http.json")"
done
# User ids are path segments, percent-decoded one by one: "x/y é".
ev "x/y é" small "$((NOW - 10000))" > "$WORK/slash.ndjson"
"$TROVECTL" send --dir "$DIR" --quiet "$WORK/slash.ndjson" 2>/dev/null || fail "send x/y é"
settle
same /v1/users/x%2Fy%20%C3%A9/balance balance "x/y é"
jq -e '.user == "x/y é" and .balance == 1' "$WORK/http.json" >/dev/null || fail "x/y é: $(cat "$WORK/http.json")"
# (lower-case escapes too; coins --json prints one coin per line, the page wraps them)
get "/v1/users/x%2fy%20%c3%a9/coins?limit=1"
[ "$CODE" = 200 ] || fail "coins of x/y é: HTTP $CODE: $(cat "$WORK/http.json")"
[ "$(jq -c '.coins[0]' "$WORK/http.json")" = "$("$TROVECTL" coins --dir "$DIR" --json --limit 1 "x/y é" | jq -c .)" ] ||
    fail "coins of x/y é: $(cat "$WORK/http.json")"

# Refusals: the key first, then the path, then the parameters.
refused 401 unauthorized /v1/users/pat/balance -H "X-Nothing: 1"
grep -qi '^WWW-Authenticate: Bearer' "$WORK/http.hdr" || fail "401 without WWW-Authenticate"
refused 401 unauthorized /v1/users/pat/balance -H "Authorization: Bearer trk_not_a_key_of_anybody_00000"
refused 401 unauthorized /v1/coins/nothing -H "Authorization: Basic $KEY"
refused 404 not_found /v1/coins/0123456789abcdef0123456789abcdef
refused 404 not_found /v1/users/pat/nothing
refused 404 not_found /v1/users/pat/balance/
refused 404 not_found /v1/leaderboards/qb/around
refused 404 not_found /v1/nothing
refused 400 bad_coin_id /v1/coins/nothing
refused 400 bad_path /v1/users/pat%zz/balance
refused 400 bad_path /v1/users/pat%00/balance
refused 400 bad_path /v1/users/%FF/balance
refused 400 bad_hunt /v1/leaderboards/q%20b
refused 400 bad_period "/v1/leaderboards/qb?period=day:2026-02-30"
refused 400 bad_period "/v1/leaderboards/%2A?period=day:$D"
refused 400 bad_param "/v1/leaderboards/qb?limit=0"
refused 400 bad_param "/v1/leaderboards/qb?limit=1001"
refused 400 bad_param "/v1/leaderboards/qb?after=bob"
refused 400 bad_param "/v1/leaderboards/qb?limit=2&limit=3"
refused 400 bad_param "/v1/leaderboards/qb/around/cat?k=101"
refused 400 bad_param "/v1/users/pat/coins?cursor=x"
refused 400 bad_param "/v1/users/pat/balance?limit=1"
refused 400 bad_query "/v1/users/pat/coins?limit=%zz"
refused 405 method_not_allowed /v1/users/pat/balance -X POST -H "Authorization: Bearer $KEY"

# A shard that does not answer: 503 with Retry-After, then served again.
S1=$(cat "$DIR/pids/s1.pid")
kill -STOP "$S1"
get /v1/coins/0123456789abcdef0123456789abcdef
STOPPED_CODE=$CODE
cp "$WORK/http.json" "$WORK/stopped.json"
get /v1/leaderboards/qb
STOPPED_BOARD=$CODE
kill -CONT "$S1"
[ "$STOPPED_CODE" = 503 ] || fail "coin with a stopped shard: HTTP $STOPPED_CODE: $(cat "$WORK/stopped.json")"
jq -e '.error == "shard_unavailable"' "$WORK/stopped.json" >/dev/null || fail "503 body: $(cat "$WORK/stopped.json")"
[ "$STOPPED_BOARD" = 503 ] || fail "board with a stopped shard: HTTP $STOPPED_BOARD: $(cat "$WORK/http.json")"
grep -qi '^Retry-After: 1' "$WORK/http.hdr" || fail "503 without Retry-After: $(cat "$WORK/http.hdr")"
same /v1/leaderboards/qb board qb
log "http queries: answers equal trovectl --json; 401/400/404/405/503"

# --- the cost limit ------------------------------------------------------------------------------
"$TROVECTL" down --dir "$DIR" > /dev/null
sed -i 's/^limits$/limits\n    max_query_cost = 5/' "$DIR/trove.cfg"
grep -q "max_query_cost = 5" "$DIR/trove.cfg" || fail "test setup: no limits section in trove.cfg"
cluster_up
wait_healthy
board qb --limit 100 2>"$WORK/err.txt" && fail "a top 100 within 5 units?"
grep -q "cost_limit" "$WORK/err.txt" || fail "cost limit error: $(cat "$WORK/err.txt")"
"$TROVECTL" coins --dir "$DIR" --limit 50 fay 2>"$WORK/err.txt" >/dev/null && fail "a history of 5 coins within 5 units?"
grep -q "cost_limit" "$WORK/err.txt" || fail "coins cost limit error: $(cat "$WORK/err.txt")"
# The same over HTTP: 422 cost_limit.
wait_api
refused 422 cost_limit "/v1/leaderboards/qb?limit=100"
refused 422 cost_limit "/v1/users/fay/coins?limit=50"
# A coin: 4 units on its shard, 2 on the other; the merged 6 pass the limit.
refused 422 cost_limit "/v1/coins/$id"
"$TROVECTL" coin --dir "$DIR" "$id" 2>"$WORK/err.txt" >/dev/null && fail "a coin within 5 units?"
grep -q "cost_limit" "$WORK/err.txt" || fail "coin cost limit error: $(cat "$WORK/err.txt")"
# Small queries still pass.
[ "$("$TROVECTL" balance --dir "$DIR" fay)" = "fay 5" ] || fail "balance under the limit"
[ "$(board_text qb --limit 1)" = "1 zed 50" ] || fail "top 1 under the limit"
same /v1/users/fay/balance balance fay
same "/v1/leaderboards/qb?limit=1" board qb --limit 1
cluster_down_checked
