# Prometheus metrics: every daemon serves /metrics; counters move exactly as
# a known workload says: 100 events = 85 new, 10 repeated, 5 rejected.
source "$(dirname "$0")/lib.sh"

cluster_up
wait_healthy

# GET /metrics with bash alone (no HTTP client needed): prints the body.
scrape() {
    local hostport=$1 host port
    host=${hostport%:*}
    port=${hostport##*:}
    exec 3<>"/dev/tcp/$host/$port" || fail "cannot connect to $hostport"
    printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&3
    local reply
    reply=$(cat <&3)
    exec 3<&-
    grep -q '^HTTP/1\.[01] 200' <<<"$reply" || fail "GET $hostport/metrics: $(head -1 <<<"$reply")"
    grep -qi '^content-type: text/plain; version=0.0.4' <<<"$reply" || fail "$hostport: wrong content type"
    sed '1,/^\r*$/d' <<<"$reply"
}
metrics_addr() {
    local section="^    $1\$"
    [ "$1" = broker ] && section='^broker$'
    grep -A12 "$section" "$DIR/trove.cfg" | grep -m1 'metrics =' | sed 's/.*"\(.*\)".*/\1/'
}
# Sum of the samples of a metric whose labels contain every given label text.
value() {
    local body=$1 name=$2; shift 2
    awk -v name="$name" -v want="$*" '
        $1 ~ "^" name "({|$)" {
            ok = 1; n = split(want, w, " ")
            for (i = 1; i <= n; i++) if (index($1, w[i]) == 0) ok = 0
            if (ok) sum += $2
        }
        END { printf "%d\n", sum }' <<<"$body"
}
# Every line is a comment (# HELP / # TYPE) or `name{labels} value`.
check_format() {
    local body=$1 where=$2 bad
    bad=$(grep -v -E '^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfa]+$' <<<"$body" || true)
    [ -z "$bad" ] || fail "$where: lines not in the exposition format: $(head -3 <<<"$bad")"
}

EVENTS="$WORK/events.ndjson"
now=$(date +%s%3N)
awk -v now="$now" 'BEGIN {
    for (i = 0; i < 85; i++) printf "{\"source\":\"web\",\"id\":\"m-%d\",\"user\":\"u%d\",\"type\":\"checkin\",\"ts\":%.0f}\n", i, i, now
    for (i = 0; i < 5; i++) printf "{\"source\":\"web\",\"id\":\"bad-%d\",\"user\":\"u%d\",\"type\":\"checkin\",\"ts\":1000}\n", i, i
}' > "$EVENTS"
# the repeats go in a second submission, so that the scorers answer them
awk -v now="$now" 'BEGIN { for (i = 0; i < 10; i++) printf "{\"source\":\"web\",\"id\":\"m-%d\",\"user\":\"u%d\",\"type\":\"checkin\",\"ts\":%.0f}\n", i, i, now }' > "$WORK/repeats.ndjson"
"$TROVECTL" send --dir "$DIR" --json "$EVENTS" > /dev/null
"$TROVECTL" send --dir "$DIR" --json "$WORK/repeats.ndjson" > /dev/null

ingest=$(scrape "$(metrics_addr i0)")
check_format "$ingest" "ingestor"
[ "$(value "$ingest" trove_ingestor_events_total 'source="web"' 'result="accepted"')" -eq 85 ] || fail "accepted != 85"
[ "$(value "$ingest" trove_ingestor_events_total 'source="web"' 'result="duplicate"')" -eq 10 ] || fail "duplicate != 10"
[ "$(value "$ingest" trove_ingestor_events_total 'source="web"' 'result="rejected"')" -eq 5 ] || fail "rejected != 5"
[ "$(value "$ingest" trove_ingestor_not_accepted_total 'reason="bad_ts"')" -eq 5 ] || fail "bad_ts != 5"
[ "$(value "$ingest" trove_ingestor_request_events_count)" -eq 2 ] || fail "requests != 2"
grep -q '^process_start_time_seconds ' <<<"$ingest" || fail "no process_start_time_seconds"

# Every query kind is counted under its own label (the scorer's query table):
# progress goes to the user's shard, a board's top N to every shard.
"$TROVECTL" progress --dir "$DIR" u1 > /dev/null || fail "progress"
"$TROVECTL" board --dir "$DIR" demo > /dev/null || fail "board"

accepted=0; duplicate=0; coins=0; progress=0; board_top=0; other=0
for s in s0 s1; do
    body=$(scrape "$(metrics_addr "$s")")
    check_format "$body" "$s"
    accepted=$((accepted + $(value "$body" trove_scorer_events_total 'result="accepted"')))
    duplicate=$((duplicate + $(value "$body" trove_scorer_events_total 'result="duplicate"')))
    coins=$((coins + $(value "$body" trove_scorer_coins_minted_total)))
    rule_coins=$((${rule_coins:-0} + $(value "$body" trove_scorer_rule_coins_total 'hunt="demo"' 'rule="checkin"')))
    grep -q '^trove_scorer_ledger_bytes{env="tables"} [1-9]' <<<"$body" || fail "$s: no ledger size"
    progress=$((progress + $(value "$body" trove_scorer_queries_total 'kind="progress"')))
    board_top=$((board_top + $(value "$body" trove_scorer_queries_total 'kind="board_top"')))
    other=$((other + $(value "$body" trove_scorer_queries_total 'kind="other"')))
done
[ "$progress" -eq 1 ] || fail "queries counted as progress: $progress, want 1"
[ "$board_top" -eq 2 ] || fail "queries counted as board_top: $board_top, want 2 (one per shard)"
[ "$other" -eq 0 ] || fail "known query kinds counted as other: $other"
[ "$accepted" -eq 85 ] || fail "scorers accepted $accepted, want 85"
[ "$duplicate" -eq 10 ] || fail "scorers answered $duplicate duplicates, want 10"
[ "$coins" -eq 85 ] || fail "scorers minted $coins coins, want 85"
[ "$rule_coins" -eq 85 ] || fail "demo/checkin coins $rule_coins, want 85"

broker=$(scrape "$(metrics_addr broker)")
check_format "$broker" "broker"
# (publishers send only what someone subscribed to: with no subscriber here,
# the broker forwards nothing, so only the family is checked)
grep -q '^trove_broker_forwarded_total ' <<<"$broker" || fail "no trove_broker_forwarded_total"
log "metrics: exact counts on ingestor, scorers (queries by kind) and broker"
cluster_down_checked
