#!/usr/bin/env bash
# Chaos checker: reads what producers were told (history files) and what the
# cluster holds (through `trovectl --json` only), and requires that every
# accepted event is applied exactly once and nothing else is.
#
# usage: check.sh BUILD_DIR CLUSTER_DIR [--history FILE]... [--sample-users N]
#                 [--seed S] [--liveness-timeout S] [--no-down]
#
# It is independent of Trove's code: bash, awk, jq, b2sum (coreutils) and
# mdb_stat (lmdb-utils). The reference it computes is its own: the demo hunt
# (etc/rules/demo.yaml, kind `each`: checkin 1, visit 2, purchase 5, any other
# type 0) and the hunt `chaos` that run.sh writes (per user: the first 3
# checkins earn 3 each, every 4th visit earns 7), with coin ids recomputed
# from the documented formula hex(BLAKE2b-128("trove-coin-v1" NUL hunt NUL
# rule NUL user NUL occurrence)): occurrence source NUL id (demo), "cap" NUL
# "hunt" NUL slot (capped), "count" NUL n (every4).
#
# History lines (trove-load --history format, also written by run.sh for the
# events it sends with `trovectl send`): source id user type status reason.
#
# Checks, in order (each violation is printed with its evidence):
#   H  answers: every submission has a final answer; per (source,id) at most
#      one `accepted`, and answers agree (accepted + duplicates, or all
#      rejected); no event only ever answered `duplicate`.
#   L1 liveness: every process answers `trovectl status` (bounded wait) and
#      the scorers' and ingestors' lag drains to 0.
#   S  stored events across scorers (status `events`) == distinct accepted
#      events; award entries (sum of `last_aseq`) >= the coins expected
#      (replays of out-of-order events re-issue chaos coins: revoke + mint).
#   B  every user's balance in the demo and chaos hunts == reference from
#      accepted events.
#   M  every user's coins and balances, all hunts (chaos-time: a day cap, a
#      sequence and a streak in Europe/Paris), == the independent model of
#      tests/oracle (model.py, from the docs), before any reconciler run.
#   Q  leaderboards: the "*" all-time board is exactly the reference balances
#      (positive ones), in order, with ranks; per-hunt balances add up.
#   C  for the sampled users: the live coins (latest entry of each id not a
#      revocation) of `trovectl coins --limit 0` are exactly the expected
#      coins (ids recomputed, value, rule, earning event for demo coins); the
#      entries of every id alternate mint, revoke, mint (never minted twice
#      while live); no demo coin is ever revoked; balance == sum of live coins.
#   R  rejected events: none stored (their users' balances are in B; for a
#      sample, the coin id they would have minted is `not found`).
#   X  reconcilers (if configured), after every check above (which judged
#      the ledger as real time left it): a run must find nothing to repair
#      (no mismatched user, no balance that is not the sum of its coins).
#   L2 liveness: a fresh event sent with `trovectl send` is accepted and its
#      coin is in its user's balance within the bounded time.
#   D  after `trovectl down`: no daemon left; for every shard `mdb_stat -e`
#      of the tables and the log env succeed and `mdb_stat -r` lists no reader;
#      no sanitizer report in the logs.
# Informational: supervisor deaths by cause (any death not by SIGKILL is
# reported as a violation: only the nemesis kills, with SIGKILL).
#
# Exit 0 when no violation, 1 otherwise, 2 on bad usage.
set -uo pipefail
export LC_ALL=C

usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
BUILD=$(cd "$1" && pwd) || usage
D=$(cd "$2" && pwd) || usage
shift 2
TROVECTL=$BUILD/trovectl
HISTORIES=() SAMPLE=400 SEED=1 LIVE_TIMEOUT=10 DOWN=1
while [ $# -gt 0 ]; do
    case $1 in
        --history) HISTORIES+=("$2"); shift 2 ;;
        --sample-users) SAMPLE=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --liveness-timeout) LIVE_TIMEOUT=$2; shift 2 ;;
        --no-down) DOWN=0; shift ;;
        *) usage ;;
    esac
done
if [ ${#HISTORIES[@]} -eq 0 ]; then
    for f in "$D"/history*.txt; do [ -e "$f" ] && HISTORIES+=("$f"); done
fi
[ ${#HISTORIES[@]} -gt 0 ] || { echo "check.sh: no history file in $D" >&2; exit 2; }

OUT=$D/check          # evidence files
rm -rf "$OUT"; mkdir -p "$OUT"
VIOLATIONS=0
declare -A SUMMARY

ts() { date -u +%H:%M:%S.%3N; }
say() { echo "[$(ts)] check: $*"; }
violation() {
    VIOLATIONS=$((VIOLATIONS + 1))
    echo "[$(ts)] VIOLATION: $*"
}
# evidence FILE [N]: the first N lines of an evidence file, indented.
evidence() { head -n "${2:-10}" "$1" | sed 's/^/      /'; local n; n=$(wc -l < "$1"); [ "$n" -le "${2:-10}" ] || echo "      ... ($n lines, all in $1)"; }

value_of() { case $1 in checkin) echo 1 ;; visit) echo 2 ;; purchase) echo 5 ;; *) echo 0 ;; esac; }
# Same table for awk.
AWK_VALUE='function value(t) { return t == "checkin" ? 1 : t == "visit" ? 2 : t == "purchase" ? 5 : 0 }'

tctl() { "$TROVECTL" "$1" --dir "$D" "${@:2}"; }

# ---------------------------------------------------------------------------
# H: the answers
cat "${HISTORIES[@]}" > "$OUT/history.all"
SUBMISSIONS=$(wc -l < "$OUT/history.all")
awk '$5 != "accepted" && $5 != "duplicate" && $5 != "rejected"' "$OUT/history.all" > "$OUT/unanswered.txt"
# Per (source,id): how it was answered. Columns: source id user type nacc ndup nrej nother
awk '{ k = $1 " " $2; if (!(k in user)) { order[++n] = k; user[k] = $3; type[k] = $4 }
       if ($3 != user[k] || $4 != type[k]) mismatch[k] = 1
       if ($5 == "accepted") acc[k]++; else if ($5 == "duplicate") dup[k]++
       else if ($5 == "rejected") rej[k]++; else oth[k]++ }
     END { for (i = 1; i <= n; i++) { k = order[i]
             printf "%s %s %s %d %d %d %d %d\n", k, user[k], type[k], acc[k], dup[k], rej[k], oth[k], (k in mismatch) } }' \
    "$OUT/history.all" > "$OUT/events.txt"
DISTINCT=$(wc -l < "$OUT/events.txt")
awk '$5 > 1' "$OUT/events.txt" > "$OUT/accepted_twice.txt"
awk '$5 == 0 && $6 > 0 && $7 == 0' "$OUT/events.txt" > "$OUT/dup_never_accepted.txt"
awk '$7 > 0 && ($5 > 0 || $6 > 0)' "$OUT/events.txt" > "$OUT/rejected_and_accepted.txt"
awk '$5 == 0 && $6 == 0 && $7 == 0' "$OUT/events.txt" > "$OUT/no_final_answer.txt"
awk '$9 == 1' "$OUT/events.txt" > "$OUT/content_mismatch.txt"
awk '$5 == 1 { print $1, $2, $3, $4 }' "$OUT/events.txt" > "$OUT/accepted.txt"
awk '$7 > 0 && $5 == 0 { print $1, $2, $3, $4 }' "$OUT/events.txt" > "$OUT/rejected.txt"
ACCEPTED=$(wc -l < "$OUT/accepted.txt")
REJECTED=$(wc -l < "$OUT/rejected.txt")
ACCEPTED_SCORING=$(awk "$AWK_VALUE"' value($4) > 0' "$OUT/accepted.txt" | wc -l)
# The chaos hunt, per user: "user checkins visits".
AWK_CHAOS='function capped(n) { return n < 3 ? n : 3 } function every4(n) { return int(n / 4) }'
awk '$4 == "checkin" { c[$3]++; u[$3] = 1 } $4 == "visit" { v[$3]++; u[$3] = 1 }
     END { for (x in u) print x, c[x] + 0, v[x] + 0 }' "$OUT/accepted.txt" | sort > "$OUT/chaos_counts.txt"
CHAOS_COINS=$(awk "$AWK_CHAOS"' { s += capped($2) + every4($3) } END { print s + 0 }' "$OUT/chaos_counts.txt")
EXPECTED_COINS_ALL=$((ACCEPTED_SCORING + CHAOS_COINS))
say "history: $SUBMISSIONS submissions, $DISTINCT distinct events, $ACCEPTED accepted ($ACCEPTED_SCORING earn coins), $REJECTED rejected, answers: $(awk '{print $5}' "$OUT/history.all" | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"
[ -s "$OUT/unanswered.txt" ] && { violation "H: $(wc -l < "$OUT/unanswered.txt") submissions without a final answer"; evidence "$OUT/unanswered.txt"; }
[ -s "$OUT/no_final_answer.txt" ] && { violation "H: $(wc -l < "$OUT/no_final_answer.txt") events never finally answered (state unknown)"; evidence "$OUT/no_final_answer.txt"; }
[ -s "$OUT/accepted_twice.txt" ] && { violation "H: $(wc -l < "$OUT/accepted_twice.txt") events answered accepted more than once (source id user type accepted duplicate rejected other)"; evidence "$OUT/accepted_twice.txt"; }
[ -s "$OUT/dup_never_accepted.txt" ] && { violation "H: $(wc -l < "$OUT/dup_never_accepted.txt") events answered only duplicate, never accepted (stored without an acknowledgement)"; evidence "$OUT/dup_never_accepted.txt"; }
[ -s "$OUT/rejected_and_accepted.txt" ] && { violation "H: $(wc -l < "$OUT/rejected_and_accepted.txt") events answered both rejected and accepted/duplicate"; evidence "$OUT/rejected_and_accepted.txt"; }
[ -s "$OUT/content_mismatch.txt" ] && { violation "H: history lines of one (source,id) disagree on user/type (checker input broken)"; evidence "$OUT/content_mismatch.txt"; }

# ---------------------------------------------------------------------------
# L1: every process answers, lag drained
ONLINE=1 NUSERS="?" NSAMPLE="?"
deadline=$((SECONDS + 60)); t0=$SECONDS
until tctl status >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
        tctl status > "$OUT/status_unhealthy.txt" 2>&1
        violation "L1: cluster not healthy 60 s after healing (trovectl status exits non-zero); the online checks (S B C R L2) are skipped"
        evidence "$OUT/status_unhealthy.txt" 20
        ONLINE=0
        break
    fi
    sleep 0.2
done
deadline=$((SECONDS + 30))
while [ $ONLINE -eq 1 ]; do
    tctl status --json > "$OUT/status.json" 2>/dev/null
    lag=$(jq -s '[.[] | select(.role != "broker") | (.inflight // 0)] | add // 0' "$OUT/status.json" 2>/dev/null || echo "?")
    [ "$lag" = 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
        violation "L1: lag (scorers' unapplied + ingestors' unanswered events) still $lag after 30 s"
        jq -c '{name, inflight}' "$OUT/status.json" | sed 's/^/      /'
        break
    fi
    sleep 0.2
done
[ $ONLINE -eq 1 ] && say "L1: every process answers status, lag 0 ($((SECONDS - t0)) s)"

online_checks() {

# ---------------------------------------------------------------------------
# S: counts
STORED=$(jq -s '[.[] | select(.role == "scorer") | .events] | add' "$OUT/status.json")
MINTED=$(jq -s '[.[] | select(.role == "scorer") | .last_aseq] | add' "$OUT/status.json")
jq -r 'select(.role == "scorer") | "\(.name) events \(.events) last_aseq \(.last_aseq) pid \(.pid) uptime \(.uptime_s)s"' "$OUT/status.json" > "$OUT/scorers.txt"
SUMMARY[stored]=$STORED; SUMMARY[minted]=$MINTED
if [ "$STORED" != "$ACCEPTED" ]; then
    violation "S: scorers store $STORED events, $ACCEPTED distinct events were answered accepted ($((STORED - ACCEPTED)) extra)"
    evidence "$OUT/scorers.txt"
else
    say "S: stored events $STORED == accepted $ACCEPTED"
fi
if [ "$MINTED" -lt "$EXPECTED_COINS_ALL" ]; then
    violation "S: scorers hold $MINTED award entries (sum of last_aseq), fewer than the $EXPECTED_COINS_ALL coins expected ($ACCEPTED_SCORING demo + $CHAOS_COINS chaos)"
    evidence "$OUT/scorers.txt"
else
    say "S: award entries $MINTED >= coins expected $EXPECTED_COINS_ALL ($ACCEPTED_SCORING demo + $CHAOS_COINS chaos; the rest re-issue chaos coins)"
fi

# ---------------------------------------------------------------------------
# B: every balance
awk "$AWK_VALUE $AWK_CHAOS"' FILENAME == ARGV[1] { bal[$3] += value($4); next }
     FILENAME == ARGV[2] { bal[$1] += 3 * capped($2) + 7 * every4($3); next } { users[$3] = 1 }
     END { for (u in users) print u, bal[u] + 0 }' "$OUT/accepted.txt" "$OUT/chaos_counts.txt" "$OUT/events.txt" | sort > "$OUT/balance_expected.txt"
: > "$OUT/balance_actual.txt"
balance_rc=0
# In chunks (argument lists stay small).
cut -d' ' -f1 "$OUT/balance_expected.txt" | xargs -r -n 200 "$TROVECTL" balance --dir "$D" --json > "$OUT/balance.json" 2> "$OUT/balance.err" || balance_rc=$?
jq -r '"\(.user) \(.balance)"' "$OUT/balance.json" | sort > "$OUT/balance_actual.txt"
# The reference here covers the demo and chaos hunts; chaos-time is the model's (M).
jq -r '"\(.user) \((.hunts.demo // 0) + (.hunts.chaos // 0))"' "$OUT/balance.json" | sort > "$OUT/balance_actual_dc.txt"
[ $balance_rc -eq 0 ] || { violation "B: trovectl balance failed (rc $balance_rc)"; evidence "$OUT/balance.err"; }
join -a1 -a2 -e MISSING -o 0,1.2,2.2 "$OUT/balance_expected.txt" "$OUT/balance_actual_dc.txt" \
    | awk '$2 != $3 { print $1, "expected", $2, "actual", $3, "diff", ($3 ~ /^-?[0-9]+$/ && $2 ~ /^-?[0-9]+$/) ? $3 - $2 : "?" }' > "$OUT/balance_wrong.txt"
NUSERS=$(wc -l < "$OUT/balance_expected.txt")
cut -d' ' -f1 "$OUT/balance_expected.txt" > "$OUT/users.txt"
SUMMARY[wrong_balances]=$(wc -l < "$OUT/balance_wrong.txt")
if [ -s "$OUT/balance_wrong.txt" ]; then
    violation "B: $(wc -l < "$OUT/balance_wrong.txt") of $NUSERS users have a wrong balance in the demo and chaos hunts (user expected actual)"
    evidence "$OUT/balance_wrong.txt" 20
else
    say "B: $NUSERS balances in the demo and chaos hunts equal the reference (total $(awk '{s += $2} END {print s + 0}' "$OUT/balance_expected.txt") coins' worth)"
fi

# ---------------------------------------------------------------------------
# M: every hunt, chaos-time included, against the independent model of the
# docs (tests/oracle/model.py, Python): every user's balance, per-hunt
# balances and live coins (ids, values, versions, provenance), as real time
# left them. Needs the events with their times (run.sh writes them).
ORACLE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../oracle" && pwd)
TOTALS_EXPECTED=$OUT/balance_expected.txt
if ls "$D"/events-*.ndjson > /dev/null 2>&1 && [ -f "$D/rules/chaos-time.yaml" ]; then
    cat "$D"/events-*.ndjson > "$OUT/events.ndjson"
    if ! /usr/bin/python3 "$ORACLE/model.py" --rules "$D/rules" --events "$OUT/events.ndjson" \
            --accepted "$OUT/history.all" --out "$OUT/model.json" 2> "$OUT/model.err"; then
        violation "M: the model failed"; evidence "$OUT/model.err"
    else
        jq -r '.users | to_entries[] | "\(.key) \(.value.balance)"' "$OUT/model.json" | sort > "$OUT/balance_total_expected.txt"
        TOTALS_EXPECTED=$OUT/balance_total_expected.txt
        if ! DUMP_VIA=tail bash "$ORACLE/dump.sh" "$BUILD" "$D" "$OUT/users.txt" > "$OUT/model_actual.json" 2> "$OUT/model_dump.err"; then
            violation "M: reading the ledger (tests/oracle/dump.sh) failed"; evidence "$OUT/model_dump.err"
        elif /usr/bin/python3 "$ORACLE/compare.py" --expected "$OUT/model.json" --actual "$OUT/model_actual.json" \
                > "$OUT/model_compare.txt" 2>&1; then
            say "M: every user's coins and balances (all hunts) equal the model's: $(tail -n 1 "$OUT/model_compare.txt")"
        else
            violation "M: the ledger differs from the model (expected vs actual)"; evidence "$OUT/model_compare.txt" 30
        fi
    fi
fi

# ---------------------------------------------------------------------------
# Q: leaderboards (docs/queries.md): the "*" all-time board holds exactly the
# users with a positive balance, each with that score, in order (score
# descending, user id ascending) and ranked 1 + users with a higher score;
# each user's per-hunt balances add up to the balance.
if [ "$NUSERS" -le 1000 ]; then
    "$TROVECTL" board --dir "$D" '*' --limit 1000 --json > "$OUT/board.json" 2> "$OUT/board.err" ||
        { violation "Q: trovectl board failed"; evidence "$OUT/board.err"; }
    jq -r '.entries[] | "\(.rank) \(.user) \(.score)"' "$OUT/board.json" > "$OUT/board_actual.txt" 2>/dev/null || true
    awk '$2 > 0' "$TOTALS_EXPECTED" | LC_ALL=C sort -k2,2nr -k1,1 |
        awk '{ n++; if ($2 != prev) rank = n; prev = $2; print rank, $1, $2 }' > "$OUT/board_expected.txt"
    jq -r 'select(((.hunts // {}) | [.[]] | add // 0) != .balance) | "\(.user) balance \(.balance) hunts \(.hunts)"' \
        "$OUT/balance.json" > "$OUT/hunts_wrong.txt"
    if ! diff "$OUT/board_expected.txt" "$OUT/board_actual.txt" > "$OUT/board_diff.txt"; then
        violation "Q: the \"*\" board differs from the reference balances (< expected, > actual: rank user score)"
        evidence "$OUT/board_diff.txt" 20
    elif [ -s "$OUT/hunts_wrong.txt" ]; then
        violation "Q: per-hunt balances do not add up to the balance"
        evidence "$OUT/hunts_wrong.txt" 20
    else
        say "Q: the \"*\" board ranks exactly the $(wc -l < "$OUT/board_expected.txt") users with coins; per-hunt balances add up"
    fi
else
    say "Q: skipped ($NUSERS users: more than one board page)"
fi

# ---------------------------------------------------------------------------
# C: the coins of a sample of users, id by id (demo and chaos; chaos-time is M's)
if [ "$NUSERS" -le "$SAMPLE" ]; then
    cp "$OUT/users.txt" "$OUT/sample_users.txt"
else
    # Seeded sample: sort by a hash of (seed, user).
    awk -v seed="$SEED" '{ h = seed; for (i = 1; i <= length($1); i++) h = (h * 31 + index("0123456789abcdefghijklmnopqrstuvwxyz-_.", substr($1, i, 1))) % 1000003; print h, $1 }' \
        "$OUT/users.txt" | sort -n | head -n "$SAMPLE" | cut -d' ' -f2 > "$OUT/sample_users.txt"
fi
NSAMPLE=$(wc -l < "$OUT/sample_users.txt")

# preimage_files LIST DIR: for "source id user type" lines with a scoring type,
# write DIR/N = the coin id preimage and print "N user value rule source id".
preimages() {
    mkdir -p "$2"
    awk -v dir="$2" "$AWK_VALUE"' value($4) > 0 {
        f = dir "/" NR
        printf "trove-coin-v1%cdemo%c%s%c%s%c%s%c%s", 0, 0, $4, 0, $3, 0, $1, 0, $2 > f
        close(f)
        print NR, $3, value($4), $4, $1, $2 }' "$1"
}
# chaos_preimages COUNTS DIR: the same for the chaos hunt's coins, from
# "user checkins visits" lines; provenance is not compared ("- -").
chaos_preimages() {
    mkdir -p "$2"
    awk -v dir="$2" "$AWK_CHAOS"' {
        for (k = 0; k < capped($2); k++) {
            f = dir "/c" NR "-" k
            printf "trove-coin-v1%cchaos%ccapped%c%s%ccap%chunt%c%d", 0, 0, 0, $1, 0, 0, 0, k > f
            close(f)
            print "c" NR "-" k, $1, 3, "capped", "-", "-"
        }
        for (k = 1; k <= every4($3); k++) {
            f = dir "/v" NR "-" k
            printf "trove-coin-v1%cchaos%cevery4%c%s%ccount%c%d", 0, 0, 0, $1, 0, 0, k > f
            close(f)
            print "v" NR "-" k, $1, 7, "every4", "-", "-"
        }
    }' "$1"
}
# hashes DIR: "N coinid" for every file of DIR.
hashes() { (cd "$1" && find . -type f -printf '%f\n' | xargs -r b2sum -l 128 | awk '{ print $2, $1 }'); }

awk 'FILENAME == ARGV[1] { want[$1] = 1; next } ($3 in want)' "$OUT/sample_users.txt" "$OUT/accepted.txt" > "$OUT/sample_accepted.txt"
awk 'FILENAME == ARGV[1] { want[$1] = 1; next } ($1 in want)' "$OUT/sample_users.txt" "$OUT/chaos_counts.txt" > "$OUT/sample_chaos.txt"
{ preimages "$OUT/sample_accepted.txt" "$OUT/pre"; chaos_preimages "$OUT/sample_chaos.txt" "$OUT/pre"; } | sort -k1,1 > "$OUT/pre.map"
hashes "$OUT/pre" | sort -k1,1 > "$OUT/pre.hash"
# expected: user coinid value rule source id
join "$OUT/pre.map" "$OUT/pre.hash" | awk '{ print $2, $7, $3, $4, $5, $6 }' | sort > "$OUT/coins_expected.txt"
rm -rf "$OUT/pre"

: > "$OUT/coins.json"; coins_err=0
while read -r u; do
    "$TROVECTL" coins "$u" --dir "$D" --json --limit 0 >> "$OUT/coins.json" 2>> "$OUT/coins.err" || { coins_err=$((coins_err + 1)); echo "$u" >> "$OUT/coins_failed_users.txt"; }
done < "$OUT/sample_users.txt"
[ $coins_err -eq 0 ] || { violation "C: trovectl coins failed for $coins_err users"; evidence "$OUT/coins.err"; }
# actual: the live coins, "user coinid value rule source id [flags]"
jq -s -r 'map(select(.id)) | group_by(.id) | map(max_by(.aseq)) | .[] | select(.revoked | not) |
       select(.hunt != "chaos-time") |
       "\(.user) \(.id) \(.value) \(.rule) " +
       (if .hunt == "chaos" then "- -" else "\(.events[0].source // "-") \(.events[0].id // "-")" end) +
       (if .hunt != "demo" and .hunt != "chaos" then " hunt=\(.hunt)" else "" end) +
       (if .hunt == "demo" and (.events | length) != 1 then " events=\(.events | length)" else "" end)' \
    "$OUT/coins.json" | sort > "$OUT/coins_actual.txt"
ACTUAL_COINS=$(wc -l < "$OUT/coins_actual.txt")
EXPECTED_COINS=$(wc -l < "$OUT/coins_expected.txt")
comm -23 "$OUT/coins_expected.txt" "$OUT/coins_actual.txt" > "$OUT/coins_missing.txt"
comm -13 "$OUT/coins_expected.txt" "$OUT/coins_actual.txt" > "$OUT/coins_unexpected.txt"
# Entries of one id must alternate mint, revoke, mint...; demo coins are never revoked.
jq -s -r 'map(select(.id)) | group_by(.id) | map(sort_by(.aseq)) | .[] |
          select(.[0].revoked or ([range(1; length) as $i | .[$i].revoked == .[$i - 1].revoked] | any)
                 or (.[0].hunt == "demo" and length > 1)) |
          "\(.[0].user) \(.[0].id) \(.[0].hunt)/\(.[0].rule) entries: \([.[] | if .revoked then "revoke#\(.aseq)" else "mint#\(.aseq)" end] | join(" "))"' \
    "$OUT/coins.json" > "$OUT/coin_ids_repeated.txt"
# balance == sum of listed coins (live ones)
jq -s -r 'map(select(.id)) | group_by(.id) | map(max_by(.aseq)) | .[] | select(.revoked | not) | "\(.user) \(.value)"' "$OUT/coins.json" \
    | awk '{ s[$1] += $2 } END { for (u in s) print u, s[u] }' | sort > "$OUT/coins_sum.txt"
awk 'FILENAME == ARGV[1] { want[$1] = 1; next } ($1 in want)' "$OUT/sample_users.txt" "$OUT/balance_actual.txt" \
    | join -a1 -e 0 -o 0,1.2,2.2 - "$OUT/coins_sum.txt" | awk '$2 != $3 { print $1, "balance", $2, "sum_of_coins", $3 }' > "$OUT/balance_not_sum.txt"
SUMMARY[coins_missing]=$(wc -l < "$OUT/coins_missing.txt")
SUMMARY[coins_unexpected]=$(wc -l < "$OUT/coins_unexpected.txt")
[ -s "$OUT/coins_missing.txt" ] && { violation "C: $(wc -l < "$OUT/coins_missing.txt") expected coins missing or different (user coinid value rule source id): accepted events not applied"; evidence "$OUT/coins_missing.txt"; }
[ -s "$OUT/coins_unexpected.txt" ] && { violation "C: $(wc -l < "$OUT/coins_unexpected.txt") coins that no accepted event explains (user coinid value rule source id [flags])"; evidence "$OUT/coins_unexpected.txt"; }
[ -s "$OUT/coin_ids_repeated.txt" ] && { violation "C: coin ids minted twice while live, revoked while not live, or demo coins revoked"; evidence "$OUT/coin_ids_repeated.txt"; }
[ -s "$OUT/balance_not_sum.txt" ] && { violation "C: balance differs from the sum of the user's coins"; evidence "$OUT/balance_not_sum.txt"; }
if [ ! -s "$OUT/coins_missing.txt" ] && [ ! -s "$OUT/coins_unexpected.txt" ] && [ ! -s "$OUT/coin_ids_repeated.txt" ] && [ ! -s "$OUT/balance_not_sum.txt" ]; then
    say "C: $NSAMPLE users, $ACTUAL_COINS live coins == $EXPECTED_COINS expected: ids recomputed (demo: one per accepted scoring event; chaos: cap slots and count completions), entries alternate mint/revoke, balance == sum"
fi

# ---------------------------------------------------------------------------
# R: rejected events left nothing (balances above; here: their coin ids)
if [ "$REJECTED" -gt 0 ]; then
    awk "$AWK_VALUE"' value($4) > 0' "$OUT/rejected.txt" | head -n 20 > "$OUT/rejected_sample.txt"
    preimages "$OUT/rejected_sample.txt" "$OUT/pre" | sort -k1,1 > "$OUT/rpre.map"
    hashes "$OUT/pre" | sort -k1,1 > "$OUT/rpre.hash"
    rm -rf "$OUT/pre"
    : > "$OUT/rejected_found.txt"; rchecked=0
    while read -r _ user _ rule source id coinid; do
        if out=$("$TROVECTL" coin "$coinid" --dir "$D" --json 2>&1); then
            echo "$source $id $user $rule coin $coinid FOUND: $out" >> "$OUT/rejected_found.txt"
        elif ! grep -q "not found" <<<"$out"; then
            echo "$source $id $user $rule coin $coinid: inconclusive: $out" >> "$OUT/rejected_found.txt"
        fi
        rchecked=$((rchecked + 1))
    done < <(join "$OUT/rpre.map" "$OUT/rpre.hash")
    if [ -s "$OUT/rejected_found.txt" ]; then
        violation "R: a rejected event has a coin (or the lookup failed)"; evidence "$OUT/rejected_found.txt"
    else
        say "R: $REJECTED rejected events, none stored (counts, balances), $rchecked would-be coin ids not found"
    fi
fi

# ---------------------------------------------------------------------------
# X: the reconcilers (when the cluster has them) judge after everything
# above, which saw the ledger exactly as real time left it: real time is
# exact for any arrival order and any kill, so a reconciler run must find
# nothing to repair. A repair is a violation (what it repaired is evidence).
if grep -q '^ *reconcile = ' "$D/trove.cfg" 2>/dev/null; then
    if tctl reconcile --json > "$OUT/reconcile.json" 2> "$OUT/reconcile.err"; then
        found=$(jq -s -c '{mismatched: (map(.mismatched_users) | add), repaired: (map(.repairs_applied) | add), unrepaired: (map(.unrepaired) | add), balance_not_sum: (map(.integrity.balance_not_sum) | add), events: (map(.events_scanned) | add)}' "$OUT/reconcile.json")
        bad=$(jq -s 'map(.mismatched_users + .unrepaired + .integrity.balance_not_sum) | add' "$OUT/reconcile.json")
        if [ "$bad" != 0 ]; then
            violation "X: the reconciler found what real time got wrong: $found"
            evidence "$OUT/reconcile.json"
        else
            say "X: a reconciler run after the checks finds nothing to repair: $found"
        fi
    else
        violation "X: trovectl reconcile failed"
        evidence "$OUT/reconcile.err"
    fi
fi

# ---------------------------------------------------------------------------
# L2: a fresh event goes through within the bound
LIVE_ID=live-$(date +%s%N) LIVE_USER=live-$RANDOM-$$
printf '{"source":"web","id":"%s","user":"%s","type":"purchase","ts":%s}\n' "$LIVE_ID" "$LIVE_USER" "$(date +%s%3N)" > "$OUT/live.ndjson"
t0=$(date +%s%N)
live_ok=0
if "$TROVECTL" send "$OUT/live.ndjson" --dir "$D" --json --timeout "$LIVE_TIMEOUT" > "$OUT/live.out" 2>&1 \
   && grep -q '"status":"accepted"' "$OUT/live.out"; then
    deadline=$(( $(date +%s) + LIVE_TIMEOUT ))
    while [ "$(date +%s)" -le $deadline ]; do
        b=$("$TROVECTL" balance "$LIVE_USER" --dir "$D" --json 2>/dev/null | jq -r .balance)
        [ "$b" = 5 ] && { live_ok=1; break; }
        sleep 0.05
    done
fi
live_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
SUMMARY[liveness_ms]=$live_ms
if [ $live_ok -eq 1 ] && [ $live_ms -le $((LIVE_TIMEOUT * 1000)) ]; then
    say "L2: fresh event web/$LIVE_ID accepted and in $LIVE_USER's balance after $live_ms ms"
    echo "web $LIVE_ID $LIVE_USER purchase accepted -" >> "$D/history-live.txt"
else
    violation "L2: fresh event web/$LIVE_ID for $LIVE_USER not accepted and scored within ${LIVE_TIMEOUT} s ($live_ms ms; balance ${b:-?})"
    evidence "$OUT/live.out"
fi

}
[ $ONLINE -eq 1 ] && online_checks

# ---------------------------------------------------------------------------
# Supervisor: every death should be one of the nemesis' SIGKILLs
SUP=$D/logs/supervisor.log
if [ -f "$SUP" ]; then
    # Deaths while supervised (a restart follows); stops by `trovectl down` are not.
    grep -E '\(pid [0-9]+\) .*; restarting in' "$SUP" > "$OUT/deaths.txt"
    grep -v 'killed by signal 9 ' "$OUT/deaths.txt" > "$OUT/deaths_unexpected.txt"
    SUMMARY[deaths]=$(wc -l < "$OUT/deaths.txt")
    if [ -s "$OUT/deaths_unexpected.txt" ]; then
        violation "supervisor saw $(wc -l < "$OUT/deaths_unexpected.txt") deaths the nemesis did not cause (not SIGKILL)"
        evidence "$OUT/deaths_unexpected.txt"
    fi
fi

# ---------------------------------------------------------------------------
# D: down, then every LMDB environment opens cleanly with no reader left
if [ $DOWN -eq 1 ]; then
    pids=$(cat "$D"/pids/*.pid 2>/dev/null)
    tctl down > "$OUT/down.txt" 2>&1 || { violation "D: trovectl down failed"; evidence "$OUT/down.txt"; }
    for p in $pids; do
        if kill -0 "$p" 2>/dev/null && grep -q trove "/proc/$p/cmdline" 2>/dev/null; then
            violation "D: pid $p ($(tr '\0' ' ' < "/proc/$p/cmdline")) still runs after trovectl down"
        fi
    done
    envs=0
    for s in "$D"/data/*/; do
        s=${s%/}
        envs_of=("$s")
        [ -d "$s/log" ] && envs_of+=("$s/log")  #  an LMDB log from before trove_wal (moved at start); reconcilers: the replica
        for env in "${envs_of[@]}"; do
            envs=$((envs + 1))
            name=${env#"$D"/}; f=$OUT/mdb_$(echo "$name" | tr '/' '_')
            mdb_stat -e "$env" > "$f.e" 2>&1 || { violation "D: mdb_stat -e $name failed"; evidence "$f.e"; }
            # mdb_stat -r exits 1 even when it listed the table (its exit code
            # is the reader list's printf count): judge it by its output.
            mdb_stat -r "$env" > "$f.r" 2>&1
            if ! head -n 1 "$f.r" | grep -q '^Reader Table Status'; then
                violation "D: mdb_stat -r $name could not read the reader table"; evidence "$f.r"
            elif ! grep -q '(no active readers)' "$f.r"; then
                violation "D: $name has reader slots left after every process stopped (stale readers)"
                evidence "$f.r"
            fi
        done
    done
    say "D: cluster down; $envs LMDB environments checked (mdb_stat -e, -r)"
    if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$D"/logs/*.log > "$OUT/sanitizer.txt" 2>/dev/null; then
        violation "D: a daemon reported a sanitizer error"; evidence "$OUT/sanitizer.txt"
    fi
fi

# ---------------------------------------------------------------------------
{
    echo "== chaos check summary ($D)"
    echo "   submissions $SUBMISSIONS  distinct events $DISTINCT  accepted $ACCEPTED  rejected $REJECTED  duplicate answers $(awk '$5 == "duplicate"' "$OUT/history.all" | wc -l)  unanswered $(wc -l < "$OUT/unanswered.txt")"
    if [ -n "${SUMMARY[stored]:-}" ]; then
        st=${SUMMARY[stored]}
        echo "   stored $st  award entries ${SUMMARY[minted]} (coins expected $EXPECTED_COINS_ALL)  lost $(( ACCEPTED > st ? ACCEPTED - st : 0 ))  duplicated $(( st > ACCEPTED ? st - ACCEPTED : 0 ))"
    else
        echo "   stored ?  (the cluster could not be read)"
    fi
    echo "   users $NUSERS  wrong balances ${SUMMARY[wrong_balances]:-?}  coin-checked users $NSAMPLE  coins missing ${SUMMARY[coins_missing]:-?}  coins unexpected ${SUMMARY[coins_unexpected]:-?}"
    echo "   deaths seen by the supervisor ${SUMMARY[deaths]:-?}  liveness ${SUMMARY[liveness_ms]:-?} ms"
    if [ $VIOLATIONS -eq 0 ]; then echo "   RESULT: PASS (no violation)"; else echo "   RESULT: FAIL ($VIOLATIONS violations; evidence in $OUT)"; fi
} | tee "$OUT/summary.txt"
[ $VIOLATIONS -eq 0 ]
