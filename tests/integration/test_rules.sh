# The rules engine through a running cluster:
# 1. a file of events shuffled within `lateness` yields exactly the coins
#    (ids, values, provenance) of the same file sorted by ts (the hunt's
#    lateness, 4 days, spans the whole file, so any delivery order is within
#    it: retries under load cannot make the comparison flaky);
# 2. `rules apply` of a new version takes effect without a restart and
#    without losing an event sent meanwhile;
# 3. `rules preview` reports the differences and writes nothing (the LMDB
#    environments are byte-for-byte the same dump before and after);
# 4. undo through the cluster revokes, with a reason.
source "$(dirname "$0")/lib.sh"

NOW=$(date +%s%3N)
HOUR=3600000
cat > "$WORK/trail.yaml" <<EOF
hunt: trail
version: 1
timezone: Europe/Paris
lateness: 4d
rules:
  - {id: daily, kind: each, match: {type: tcheck}, coins: 3, cap: {max: 1, per: day}}
  - {id: explorer, kind: count, match: {type: tvisit}, distinct: zone, count: 3, coins: 10, repeat: true}
  - id: path
    kind: sequence
    within: 1h
    coins: 50
    repeat: true
    steps:
      - {type: tscan, attrs: {clue: A}}
      - {type: tscan, attrs: {clue: B}}
      - {type: tbuy}
  - {id: streak, kind: streak, match: {type: tplay}, days: 2, coins: 25, repeat: true}
EOF

# 40 users x 30 events over the last 3 days (ending an hour ago). Each line
# is "ts random json": sorted by ts, then in random order.
awk -v now="$NOW" -v hour="$HOUR" 'BEGIN {
    srand(7); split("tcheck tvisit tscan tscan tbuy tplay", typ, " "); n = 0
    for (u = 0; u < 40; u++) for (k = 0; k < 30; k++) {
        # bursts of 6 events a few minutes apart (arrival jitter reorders
        # them), bursts spread over 3 days (days, caps and streaks)
        ts = k % 6 == 0 ? now - 2 * hour - int(rand() * 70 * hour) : prev + int(rand() * 240000)
        t = typ[int(rand() * 6) + 1]
        attrs = "{}"
        if (t == "tvisit") attrs = sprintf("{\"zone\":\"%s\"}", substr("ABCDE", int(rand() * 5) + 1, 1))
        if (t == "tscan") attrs = sprintf("{\"clue\":\"%s\"}", rand() < 0.5 ? "A" : "B")
        printf "%.0f %.0f {\"source\":\"%s\",\"id\":\"r-%d\",\"user\":\"ru-%d\",\"type\":\"%s\",\"ts\":%.0f,\"attrs\":%s}\n",
            ts, int(rand() * 1000000000), rand() < 0.5 ? "web" : "mobile", n++, u, t, ts, attrs
        prev = ts
    }
}' > "$WORK/gen.txt"
sort -n -k1,1 "$WORK/gen.txt" | cut -d' ' -f3- > "$WORK/sorted.ndjson"
sort -n -k2,2 "$WORK/gen.txt" | cut -d' ' -f3- > "$WORK/shuffled.ndjson"
cmp -s "$WORK/sorted.ndjson" "$WORK/shuffled.ndjson" && fail "the shuffle did not change the order"
USERS=$(seq 0 39 | sed 's/^/ru-/')

# Live coins of the users: "user id value rule version provenance", sorted;
# a coin is live when its latest entry (highest aseq) is not a revocation.
live_coins() {
    local u
    for u in "$@"; do "$TROVECTL" coins --dir "$DIR" --json --limit 0 "$u"; done |
        jq -s -r 'map(select(.id)) | group_by(.id) | map(max_by(.aseq)) | map(select(.revoked | not)) | .[] |
                  "\(.user) \(.id) \(.value) \(.rule) v\(.rule_version) \([.events[] | .source + "/" + .id] | join(","))"' |
        sort
}
revocations() {
    local u
    for u in "$@"; do "$TROVECTL" coins --dir "$DIR" --json --limit 0 "$u"; done |
        jq -s 'map(select(.id and .revoked)) | length'
}
send_all_accepted() {
    "$TROVECTL" send --dir "$DIR" --json "$1" > "$WORK/send.json"
    local n acc
    n=$(wc -l < "$1")
    acc=$(jq -r 'select(.status) | .status' "$WORK/send.json" | grep -c '^accepted$' || true)
    [ "$acc" -eq "$n" ] || fail "$1: $acc of $n accepted"
}

# --- 1. sorted run ------------------------------------------------------------
cluster_up
wait_healthy
"$TROVECTL" rules check "$WORK/trail.yaml" >/dev/null || fail "rules check refused trail.yaml"
"$TROVECTL" rules apply --dir "$DIR" "$WORK/trail.yaml" > "$WORK/apply.txt" || fail "rules apply failed"
[ "$(grep -c 'applied trail.yaml (hunt trail version 1)' "$WORK/apply.txt")" -eq 2 ] || fail "apply: $(cat "$WORK/apply.txt")"
send_all_accepted "$WORK/sorted.ndjson"
# shellcheck disable=SC2086
live_coins $USERS > "$WORK/coins-sorted.txt"
n_sorted=$(wc -l < "$WORK/coins-sorted.txt")
for rule in daily explorer path streak; do
    grep -q " $rule v1 " "$WORK/coins-sorted.txt" || fail "no $rule coin in the sorted run"
done
log "sorted: $n_sorted live coins"
"$TROVECTL" down --dir "$DIR" >/dev/null

# --- 1b. shuffled run on fresh ledgers, same config and rules ------------------
rm -rf "$DIR/data"
cluster_up
wait_healthy
send_all_accepted "$WORK/shuffled.ndjson"
# shellcheck disable=SC2086
live_coins $USERS > "$WORK/coins-shuffled.txt"
# shellcheck disable=SC2086
rev=$(revocations $USERS)
log "shuffled: $(wc -l < "$WORK/coins-shuffled.txt") live coins, $rev revocations on the way"
diff "$WORK/coins-sorted.txt" "$WORK/coins-shuffled.txt" || fail "shuffled within lateness != sorted by ts"
[ "$rev" -gt 0 ] || fail "the shuffle caused no rescoring: the comparison proves nothing"

# --- 2. rules apply without restart, events flowing -----------------------------
pids_before=$(cat "$DIR"/pids/s*.pid | sort | tr '\n' ' ')
awk -v now="$NOW" 'BEGIN { srand(3); split("checkin visit purchase", t, " ")
    for (i = 0; i < 3000; i++)
        printf "{\"source\":\"web\",\"id\":\"bg-%d\",\"user\":\"bg-%d\",\"type\":\"%s\",\"ts\":%.0f}\n", i, i % 100, t[i % 3 + 1], now - i
}' > "$WORK/background.ndjson"
sed -e 's/^version: 1/version: 2/' -e "s/^timezone:/effective: $(date -u -d @$(((NOW - HOUR / 2) / 1000)) +%Y-%m-%dT%H:%M:%SZ)\ntimezone:/" \
    -e 's/coins: 3, cap/coins: 7, cap/' "$WORK/trail.yaml" > "$WORK/trail-v2.yaml"
grep -q '^effective:' "$WORK/trail-v2.yaml" || fail "v2 file"
("$TROVECTL" send --dir "$DIR" --json "$WORK/background.ndjson" > "$WORK/bg.json") &
bg=$!
"$TROVECTL" rules apply --dir "$DIR" "$WORK/trail-v2.yaml" > "$WORK/apply2.txt" || fail "apply v2 failed"
wait $bg || fail "background send failed"
acc=$(jq -r 'select(.status) | .status' "$WORK/bg.json" | grep -c '^accepted$' || true)
[ "$acc" -eq 3000 ] || fail "events sent during apply: $acc of 3000 accepted"
expected_balances "$WORK/background.ndjson" > "$WORK/bg-expected.txt"
# shellcheck disable=SC2046
actual_balances $(cut -d' ' -f1 "$WORK/bg-expected.txt") > "$WORK/bg-actual.txt"
diff "$WORK/bg-expected.txt" "$WORK/bg-actual.txt" || fail "balances of events sent during apply"
[ "$(cat "$DIR"/pids/s*.pid | sort | tr '\n' ' ')" = "$pids_before" ] || fail "a scorer restarted"
printf '{"source":"web","id":"fresh-1","user":"fresh-user","type":"tcheck","ts":%d}\n' "$NOW" > "$WORK/fresh.ndjson"
send_all_accepted "$WORK/fresh.ndjson"
live_coins fresh-user | grep -q " 7 daily v2 web/fresh-1$" || fail "v2 not in force: $(live_coins fresh-user)"
log "apply v2: 3000 events during apply accepted, scorers not restarted, new coins v2"

# --- 3. preview writes nothing and reports the difference -------------------------
sed -e 's/^version: 2/version: 3/' -e 's/^effective: .*/effective: 2020-01-01T00:00:00Z/' \
    -e 's/coins: 7, cap/coins: 9, cap/' "$WORK/trail-v2.yaml" > "$WORK/trail-v3.yaml"
# Quiet: wait until every scorer applied its log (lag 0), then dump.
settle
dump() { local d; for d in "$DIR"/data/s*; do mdb_dump -a "$d"; cat "$d"/wal/wal-*; done | md5sum; }
before=$(dump)
# shellcheck disable=SC2086
live_coins $USERS fresh-user | awk '$4 == "daily"' > "$WORK/daily.txt"
daily=$(wc -l < "$WORK/daily.txt")
daily_sum=$(awk '{s += $3} END {print s + 0}' "$WORK/daily.txt")
"$TROVECTL" rules preview --dir "$DIR" --json "$WORK/trail-v3.yaml" > "$WORK/preview.json" || fail "preview failed"
after=$(dump)
[ "$before" = "$after" ] || fail "preview changed an LMDB environment"
jq -e --argjson n "$daily" --argjson sum "$daily_sum" '.mint == $n and .revoke == $n and
        .coins_delta == 9 * $n - $sum and .rules == [{"hunt": "trail", "rule": "daily", "mint": $n,
        "revoke": $n, "coins_delta": (9 * $n - $sum)}]' "$WORK/preview.json" >/dev/null ||
    fail "preview report (want $daily daily coins re-valued): $(head -c 600 "$WORK/preview.json")"
"$TROVECTL" rules preview --dir "$DIR" --json --user ru-3 "$WORK/trail-v3.yaml" > "$WORK/preview-one.json"
one=$(live_coins ru-3 | grep -c ' daily ')
jq -e --argjson n "$one" '.users == 1 and .mint == $n and .revoke == $n' "$WORK/preview-one.json" >/dev/null ||
    fail "preview --user: $(cat "$WORK/preview-one.json")"
"$TROVECTL" rules preview --dir "$DIR" "$WORK/trail-v3.yaml" | head -3 >&2
log "preview: $daily daily coins would be re-valued; LMDB unchanged"

# --- 4. undo through the cluster ---------------------------------------------------
target=$(live_coins ru-5 | awk '$4 == "path" {print $6; exit}')
[ -n "$target" ] || fail "ru-5 has no path coin to undo"
step=${target#*,}; step=${step%%,*}  # the middle step of the sequence
printf '{"source":"web","id":"undo-1","user":"ru-5","type":"undo","ts":%d,"attrs":{"target_source":"%s","target_id":"%s"}}\n' \
    "$NOW" "${step%%/*}" "${step#*/}" > "$WORK/undo.ndjson"
send_all_accepted "$WORK/undo.ndjson"
"$TROVECTL" coins --dir "$DIR" --json --limit 0 ru-5 > "$WORK/ru-5.json"
jq -e -s --arg s "$step" 'map(select(.revoked and .reason == "undo" and ([.events[] | .source + "/" + .id] | index($s))))
    | length > 0' "$WORK/ru-5.json" >/dev/null ||
    fail "undo of $step did not revoke the coin citing it: $("$TROVECTL" coins --dir "$DIR" --limit 5 ru-5)"
live_coins ru-5 | grep -q "$step" && fail "a live coin still cites the undone $step"
bal=$("$TROVECTL" balance --dir "$DIR" --json ru-5 | jq .balance)
sum=$(live_coins ru-5 | awk '{s += $3} END {print s + 0}')
[ "$bal" -eq "$sum" ] || fail "ru-5 balance $bal != sum of live coins $sum"
log "undo of $step revoked its coins; balance = live coins"

cluster_down_checked
