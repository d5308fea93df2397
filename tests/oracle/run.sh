#!/usr/bin/env bash
# The cluster check of the oracle (tests/oracle/README.md): for each seed and
# order, generate stories (stories.py), run a fresh local cluster with their
# rules, send the events in the file's order, and compare the ledger with
# the reference model (model.py) in real time, then after `trovectl
# reconcile`, then once more after a second reconcile (which must find
# nothing).
#
# usage: tests/oracle/run.sh BUILD_DIR [--seeds "1 2"] [--orders "sorted shuffled late"]
#                            [--users N] [--now MS] [--out DIR] [--keep] [--strict]
#                            [--promise any-order|lateness] [--shards N] [--ingestors N] [--boards]
#   --out DIR  keep every run's files there (default: a temp dir, removed
#              when everything passed unless --keep)
#   --promise any-order|lateness   which users real time must get exactly
#              right (promise.py): any-order (default, lib/rules/trove_engine.h
#              since 9c04f1f): every user; lateness (the older promise, still
#              in docs/architecture.md): users none of whose events arrived
#              later than `lateness` (all of them in sorted and shuffled)
#   --strict   real time must be exact for every user whatever --promise says,
#              and the first reconcile must repair nothing (but for ORDER+apply)
#   --shards N, --ingestors N   the cluster's layout (trovectl up; default 2, 1)
#   --boards   also every leaderboard (boards.sh vs model.py --boards) after
#              reconcile (~150 `trovectl board` calls: 10-45 s)
#   ORDER may be X+apply (e.g. shuffled+apply): order X, and city-quest's
#              version 2 is installed by `trovectl rules apply` only before
#              the last two chunks of 500 events (a version applied to the past:
#              real time is then promised only for users none of whose
#              events sent before the apply falls in version 2's time)
# Exit 0 when every (seed, order) passed, 1 otherwise.
set -euo pipefail
ORACLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3

BUILD_ARG=${1:?usage: run.sh BUILD_DIR [--seeds "1 2"] [--orders "sorted shuffled late"] [--users N]}
shift
SEEDS="1"
ORDERS="sorted shuffled late"
USERS_N=400
NOW_MS=""
OUT=""
KEEP=0
STRICT=0
PROMISE=any-order
LAYOUT=()
BOARDS=0
BOARDS_ARG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS=$2; shift 2 ;;
        --orders) ORDERS=$2; shift 2 ;;
        --users) USERS_N=$2; shift 2 ;;
        --now) NOW_MS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --strict) STRICT=1; shift ;;
        --boards) BOARDS=1; BOARDS_ARG=--boards; shift ;;
        --promise) PROMISE=$2; shift 2 ;;
        --shards) LAYOUT+=(--shards "$2"); shift 2 ;;
        --ingestors) LAYOUT+=(--ingestors "$2"); shift 2 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$NOW_MS" ] || NOW_MS=$(( $(date +%s) / 86400 * 86400 * 1000 ))

# lib.sh: BUILD, TROVECTL, WORK, DIR, a port slot, cluster_up, wait_healthy, settle, log, fail
# shellcheck source=../integration/lib.sh
source "$ORACLE/../integration/lib.sh" "$BUILD_ARG"
if [ -z "$OUT" ]; then OUT=$(mktemp -d /tmp/oracle-run-XXXXXX); else mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); fi
oracle_cleanup() {
    "$TROVECTL" down --dir "$DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap oracle_cleanup EXIT

# A config with the periodic reconciler off (reconcile_every_s = 0: only on
# request), written once by `trovectl up` and reused by every run.
log "writing the cluster config (port base $PORT_BASE)"
cluster_up "${LAYOUT[@]}"
"$TROVECTL" down --dir "$DIR" >/dev/null
sed -i 's/^\(\s*reconcile_every_s\s*=\s*\).*/\10/' "$DIR/trove.cfg"
grep -q 'reconcile_every_s = 0' "$DIR/trove.cfg" || fail "no reconcile_every_s in the config trovectl up wrote"
cp "$DIR/trove.cfg" "$WORK/trove.cfg"
# Its CURVE certificates (trovectl up's default) and HTTP key go with it.
[ ! -d "$DIR/curve" ] || cp -a "$DIR/curve" "$WORK/curve"
[ ! -f "$DIR/web.key" ] || cp -a "$DIR/web.key" "$WORK/web.key"

# reconcile REPORT_FILE: run every shard's reconciler now (exit 3: users
# left unrepaired, counted below)
reconcile() {
    local rc=0
    "$TROVECTL" reconcile --dir "$DIR" --json > "$1" 2> "$1.err" || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "trovectl reconcile failed (rc $rc): $(cat "$1" "$1.err" | head -c 800)"
}
# totals REPORT_FILE: "mismatched repairs unrepaired deferred integrity"
totals() {
    jq -s -r '[ (map(.mismatched_users) | add), (map(.repairs_applied) | add), (map(.unrepaired) | add),
                (map(.deferred) | add),
                (map(.integrity.sequence_gaps + .integrity.provenance_missing + .integrity.balance_not_sum) | add) ]
              | @tsv' "$1"
}

# history EVENTS ANSWERS_DIR > HISTORY: "source id user type status reason", one line per event line
history() {
    "$PY" - "$1" "$2" <<'EOF'
import glob, json, os, sys
events, d = sys.argv[1], sys.argv[2]
lines = [l for l in open(events, encoding="utf-8") if l.strip()]
status = {}
for f in sorted(glob.glob(os.path.join(d, "ans.*"))):
    base = int(f.rsplit(".", 1)[1]) * 500
    for l in open(f, encoding="utf-8"):
        a = json.loads(l)
        if "line" in a:
            status[base + a["line"] - 1] = (a.get("status") or "none", a.get("reason") or "-")
for i, l in enumerate(lines):
    e = json.loads(l)
    st, why = status.get(i, ("unanswered", "-"))
    print(e["source"], e["id"], e["user"], e["type"], st, why)
EOF
}

declare -a TABLE=()
overall=0
for seed in $SEEDS; do
    for order in $ORDERS; do
        R="$OUT/seed$seed-$order"
        rm -rf "$R"
        mkdir -p "$R/answers"
        t0=$SECONDS
        base=${order%+apply}
        nice "$PY" "$ORACLE/stories.py" --seed "$seed" --users "$USERS_N" --order "$base" --now "$NOW_MS" --out "$R/stories" 2>/dev/null
        n_events=$(wc -l < "$R/stories/events.ndjson")
        # ORDER+apply: city-quest version 2 is applied (`trovectl rules apply`)
        # only before the last two chunks: a version applied to the past
        WITHHELD=""
        [ "$base" = "$order" ] || WITHHELD=city-quest-v2.yaml

        # a fresh cluster: the saved config, the stories' rules (trovectl up adds demo.yaml)
        "$TROVECTL" down --dir "$DIR" >/dev/null 2>&1 || true
        rm -rf "$DIR"
        mkdir -p "$DIR/rules"
        cp "$WORK/trove.cfg" "$DIR/trove.cfg"
        [ ! -d "$WORK/curve" ] || cp -a "$WORK/curve" "$DIR/curve"
        [ ! -f "$WORK/web.key" ] || cp -a "$WORK/web.key" "$DIR/web.key"
        cp "$R/stories/rules/"*.yaml "$DIR/rules/"
        [ -z "$WITHHELD" ] || rm "$DIR/rules/$WITHHELD"
        cluster_up
        wait_healthy

        # send in the file's order, 500 lines per `trovectl send`
        split -l 500 -d -a 4 "$R/stories/events.ndjson" "$R/answers/chunk."
        n_chunks=$(ls "$R"/answers/chunk.* | wc -l)
        applied_at=0
        for c in "$R"/answers/chunk.*; do
            k=${c##*.}
            if [ -n "$WITHHELD" ] && [ "$((10#$k))" -eq $((n_chunks - 2)) ]; then
                "$TROVECTL" rules apply --dir "$DIR" "$R/stories/rules/$WITHHELD" > "$R/apply.txt" ||
                    fail "rules apply $WITHHELD failed: $(cat "$R/apply.txt")"
                applied_at=$((10#$k * 500))
            fi
            "$TROVECTL" send --dir "$DIR" --json "$c" > "$R/answers/ans.$((10#$k))" 2> "$R/answers/sum.$((10#$k))" ||
                fail "trovectl send $c failed: $(tail -c 400 "$R/answers/sum.$((10#$k))")"
        done
        cp -r "$DIR/rules" "$R/rules"
        history "$R/stories/events.ndjson" "$R/answers" > "$R/history.txt"
        read -r acc dup rej other < <(awk '{n[$5]++} END {print n["accepted"]+0, n["duplicate"]+0, n["rejected"]+0, NR-n["accepted"]-n["duplicate"]-n["rejected"]}' "$R/history.txt")
        t_send=$((SECONDS - t0))

        # duplicates the file holds: every repeated (source, id) must be answered duplicate
        # Repeats of a (source, id), in the file's (= arrival) order: the same
        # content again must be answered duplicate, other content rejected
        # id_conflict (docs/architecture.md, "Event identity").
        read -r dup_want conflict_want < <("$PY" - "$R/stories/events.ndjson" "$ORACLE" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[2])
from model import norm_event
def content(e):
    attrs = tuple(sorted((k, type(v).__name__ == "bool", v) for k, v in e["attrs"].items()))
    return (e["user"], e["type"], e["ts"], attrs)
first, dup, conflict = {}, 0, 0
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    e = norm_event(json.loads(line))
    k = (e["source"], e["id"])
    if k not in first:
        first[k] = content(e)
    elif first[k] == content(e):
        dup += 1
    else:
        conflict += 1
print(dup, conflict)
EOF
)
        conflicts=$(awk '$5 == "rejected" && $6 == "id_conflict"' "$R/history.txt" | wc -l)

        "$PY" "$ORACLE/model.py" --rules "$R/rules" --events "$R/stories/events.ndjson" --accepted "$R/history.txt" \
            $BOARDS_ARG --out "$R/expected.json"
        "$PY" "$ORACLE/promise.py" --promise "$PROMISE" ${WITHHELD:+--withheld "$WITHHELD" --withheld-until "$applied_at"} --rules "$R/rules" --events "$R/stories/events.ndjson" --accepted "$R/history.txt" \
            --out "$R/promised.txt" --why "$R/not-promised.txt" 2>/dev/null
        n_prom=$(wc -l < "$R/promised.txt")

        t1=$SECONDS
        settle
        DUMP_VIA=tail "$ORACLE/dump.sh" "$BUILD" "$DIR" "$R/stories/users.txt" > "$R/actual-realtime.json"
        t_dump=$((SECONDS - t1))
        # real time: every user the docs promise exactness for (all of them
        # in sorted and shuffled), then everyone (reported)
        rt=PASS
        "$PY" "$ORACLE/compare.py" --expected "$R/expected.json" --actual "$R/actual-realtime.json" --users "$R/promised.txt" \
            --json "$R/compare-promised.json" > "$R/compare-promised.txt" || rt=FAIL
        rt_all=PASS
        "$PY" "$ORACLE/compare.py" --expected "$R/expected.json" --actual "$R/actual-realtime.json" \
            --json "$R/compare-realtime.json" > "$R/compare-realtime.txt" || rt_all=FAIL
        rt_sum=$(tail -n 1 "$R/compare-realtime.txt")
        rt_prom_sum=$(tail -n 1 "$R/compare-promised.txt")

        t1=$SECONDS
        reconcile "$R/reconcile-1.json"
        t_rec=$((SECONDS - t1))
        read -r mis1 rep1 unrep1 def1 integ1 < <(totals "$R/reconcile-1.json")
        DUMP_VIA=tail "$ORACLE/dump.sh" "$BUILD" "$DIR" "$R/stories/users.txt" > "$R/actual-reconciled.json"
        if [ "$BOARDS" = 1 ]; then
            # every leaderboard of every hunt, added to the reconciled dump
            settle
            "$ORACLE/boards.sh" "$BUILD" "$DIR" $(sed -n 's/^hunt: *//p' "$R"/rules/*.yaml | sort -u) > "$R/boards.json"
            jq -s '.[0] + .[1]' "$R/actual-reconciled.json" "$R/boards.json" > "$R/actual-reconciled+boards.json"
            mv "$R/actual-reconciled+boards.json" "$R/actual-reconciled.json"
        fi
        # the players' path: `trovectl coins` of a sample of users must show what the award log holds
        awk -v s="$seed" 'BEGIN {srand(s)} rand() < 0.1' "$R/stories/users.txt" > "$R/sample-users.txt"
        DUMP_VIA=coins "$ORACLE/dump.sh" "$BUILD" "$DIR" "$R/sample-users.txt" > "$R/sample-coins.json"
        same_path=PASS
        "$PY" "$ORACLE/compare.py" --expected "$R/actual-reconciled.json" --actual "$R/sample-coins.json" \
            --users "$R/sample-users.txt" --no-balance-check > "$R/compare-paths.txt" || same_path=FAIL
        rc_=PASS
        "$PY" "$ORACLE/compare.py" --expected "$R/expected.json" --actual "$R/actual-reconciled.json" --json "$R/compare-reconciled.json" > "$R/compare-reconciled.txt" || rc_=FAIL
        rc_sum=$(tail -n 1 "$R/compare-reconciled.txt")
        reconcile "$R/reconcile-2.json"
        read -r mis2 rep2 unrep2 def2 integ2 < <(totals "$R/reconcile-2.json")
        cp "$DIR"/logs/*.log "$R/" 2>/dev/null || true
        "$TROVECTL" down --dir "$DIR" >/dev/null 2>&1 || true

        verdict=PASS
        why=""
        [ "$other" -eq 0 ] || { verdict=FAIL; why="$why; $other events without a final answer"; }
        [ "$rej" -eq "$conflicts" ] || { verdict=FAIL; why="$why; $((rej - conflicts)) valid events rejected (not id_conflict)"; }
        [ "$conflicts" -eq "$conflict_want" ] || { verdict=FAIL; why="$why; $conflicts answered id_conflict, the file repeats $conflict_want ids with other content"; }
        [ "$dup" -eq "$dup_want" ] || { verdict=FAIL; why="$why; $dup answered duplicate, the file repeats $dup_want events unchanged"; }
        [ "$rt" = PASS ] || { verdict=FAIL; why="$why; real time differs from the model for users the docs promise exactness"; }
        if [ "$STRICT" = 1 ] && [ "$rt_all" = FAIL ]; then verdict=FAIL; why="$why; real time differs from the model (--strict)"; fi
        # Real time is exact (docs/architecture.md, "Lateness"): a reconciler
        # run on a cluster without faults repairs nothing, unless a rule
        # version was applied to the past on purpose (ORDER+apply).
        if [ "$STRICT" = 1 ] && [ -z "$WITHHELD" ] && { [ "$mis1" -ne 0 ] || [ "$rep1" -ne 0 ]; }; then
            verdict=FAIL; why="$why; the first reconcile found $mis1 users and repaired $rep1 (--strict: want none)"
        fi
        [ "$rc_" = PASS ] || { verdict=FAIL; why="$why; the reconciled ledger differs from the model"; }
        [ "$same_path" = PASS ] || { verdict=FAIL; why="$why; trovectl coins differs from the award log (compare-paths.txt)"; }
        [ "$unrep1" -eq 0 ] && [ "$def1" -eq 0 ] || { verdict=FAIL; why="$why; reconcile left $unrep1 unrepaired, $def1 deferred"; }
        [ "$integ1" -eq 0 ] || { verdict=FAIL; why="$why; reconcile integrity problems: $integ1"; }
        [ "$mis2" -eq 0 ] && [ "$rep2" -eq 0 ] || { verdict=FAIL; why="$why; a second reconcile found $mis2 users, made $rep2 repairs"; }
        [ "$verdict" = PASS ] || overall=1
        rt_users=$(jq '.stats.users_differ' "$R/compare-realtime.json")
        rtp_users=$(jq '.stats.users_differ' "$R/compare-promised.json")
        rc_users=$(jq '.stats.users_differ' "$R/compare-reconciled.json")
        line=$(printf '%-5s %-9s %-4s | events %5d: acc %5d dup %3d rej %d | real time: promised %3d users, %3d differ; all: %3d differ | reconcile: %3d mismatched, %3d repairs | then %3d differ | 2nd run %d/%d | %ds' \
            "$seed" "$order" "$verdict" "$n_events" "$acc" "$dup" "$rej" "$n_prom" "$rtp_users" "$rt_users" "$mis1" "$rep1" "$rc_users" "$mis2" "$rep2" $((SECONDS - t0)))
        TABLE+=("$line${why:+ |${why#;}}")
        echo "$line${why:+ |${why#;}}"
        echo "  real time, promised users: $rt_prom_sum"
        echo "  real time, all users:      $rt_sum"
        echo "  after reconcile:           $rc_sum"
        echo "  files: $R (generate+up+send ${t_send}s, dump ${t_dump}s, reconcile ${t_rec}s)"
    done
done

echo
echo "seed  order     verdict"
for l in "${TABLE[@]}"; do echo "$l"; done
if [ "$overall" -eq 0 ] && [ "$KEEP" = 0 ] && [[ "$OUT" == /tmp/oracle-run-* ]]; then
    rm -rf "$OUT"
else
    echo "run files: $OUT"
fi
[ "$overall" -eq 0 ] && echo "oracle: PASS" || echo "oracle: FAIL"
exit "$overall"
