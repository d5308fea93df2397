# Player-facing queries through a running two-shard cluster, exact answers
# on a known data set (docs/queries.md):
#   - leaderboard top N with ties and ranks, merged across shards; around a
#     user; the "*" board; paging after a position stays stable while a new
#     leader arrives;
#   - daily boards roll over at midnight in the hunt's time zone (New York),
#     not UTC; weekly boards; the list of boards;
#   - exclusion takes a user off every board and back;
#   - balance per hunt, progress per rule, and each answer's cost;
#   - the cost limit refuses a query that would read too much.
source "$(dirname "$0")/lib.sh"

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
"$TROVECTL" balance --dir "$DIR" --json pat > "$WORK/bal.json"
# (the demo hunt of every `trovectl up` cluster also pays for checkin and visit)
jq -e '.balance == 11 and .hunts.qb == 4 and .hunts.demo == 7 and .cost == 4' "$WORK/bal.json" >/dev/null || fail "balance: $(cat "$WORK/bal.json")"
"$TROVECTL" progress --dir "$DIR" --json pat > "$WORK/progress.json"
jq -e '(.rules | map({(.rule): .}) | add) as $r
       | $r.clues.have == 2 and $r.clues.need == 3 and $r.clues.done == 0
       and $r.zones.have == 2 and $r.zones.need == 5
       and $r.daily.have == 1 and $r.daily.need == 2 and $r.daily.left == 1 and ($r.daily.period | startswith("day:"))
       and .cost == 2' "$WORK/progress.json" >/dev/null || fail "progress: $(cat "$WORK/progress.json")"

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
# Small queries still pass.
[ "$("$TROVECTL" balance --dir "$DIR" fay)" = "fay 5" ] || fail "balance under the limit"
[ "$(board_text qb --limit 1)" = "1 zed 50" ] || fail "top 1 under the limit"
cluster_down_checked
