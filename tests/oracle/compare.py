#!/usr/bin/python3
"""Compare the model's expected ledger with what a cluster holds.

    compare.py --expected model.json --actual actual.json [--max N] [--json FILE]
               [--users FILE] [--no-balance-check]

Both files have the shape model.py prints (with "boards" on both sides,
model.py --boards and boards.sh, every leaderboard is compared too):
    {"users": {USER: {"balance", "hunts": {HUNT: n}, "coins": [{"id", "hunt",
     "rule", "version", "value", "events": [[source, id], ...]}]}}}
Per user: the balance, the per-hunt balances (hunts at 0 are the same as
absent) and the set of live coins (id, value, rule, hunt, version,
provenance in order). Every difference is printed with its evidence (at most
--max lines, default 200), then a one-line summary. Exit 0 when equal, 1
otherwise, 2 on bad input.
"""
import argparse
import json
import sys

EMPTY = {"balance": 0, "hunts": {}, "coins": []}
FIELDS = ("value", "hunt", "rule", "version", "events")


def _coin_text(c):
    return "%s/%s v%s value %s events %s" % (
        c.get("hunt"), c.get("rule"), c.get("version"), c.get("value"),
        ",".join("%s/%s" % tuple(e) for e in c.get("events", [])))


def compare(exp, act, only=None, balance_check=True):
    """Returns (lines, stats, bad_users). only: compare these users only."""
    lines = []
    stats = {"users": 0, "users_differ": 0, "balance": 0, "hunt_balance": 0,
             "missing": 0, "extra": 0, "amended": 0, "stored_balance_not_sum": 0}
    bad = []
    eu, au = exp.get("users", {}), act.get("users", {})
    for user in sorted(set(eu) | set(au)):
        if only is not None and user not in only:
            continue
        stats["users"] += 1
        e, a = eu.get(user, EMPTY), au.get(user, EMPTY)
        ul = []
        if e.get("balance", 0) != a.get("balance", 0):
            stats["balance"] += 1
            ul.append("user %s: balance expected %s actual %s" % (user, e.get("balance", 0), a.get("balance", 0)))
        asum = sum(c.get("value", 0) for c in a.get("coins", []))
        if balance_check and "balance" in a and a["balance"] != asum:
            stats["stored_balance_not_sum"] += 1
            ul.append("user %s: actual stored balance %s but its live coins sum to %s" % (user, a["balance"], asum))
        eh = {h: n for h, n in e.get("hunts", {}).items() if n != 0}
        ah = {h: n for h, n in a.get("hunts", {}).items() if n != 0}
        for h in sorted(set(eh) | set(ah)):
            if eh.get(h, 0) != ah.get(h, 0):
                stats["hunt_balance"] += 1
                ul.append("user %s: hunt %s balance expected %s actual %s" % (user, h, eh.get(h, 0), ah.get(h, 0)))
        ec = {c["id"]: c for c in e.get("coins", [])}
        ac = {c["id"]: c for c in a.get("coins", [])}
        for cid in sorted(set(ec) | set(ac)):
            x, y = ec.get(cid), ac.get(cid)
            if y is None:
                stats["missing"] += 1
                ul.append("user %s: coin %s missing: expected %s" % (user, cid, _coin_text(x)))
            elif x is None:
                stats["extra"] += 1
                ul.append("user %s: coin %s extra: actual %s" % (user, cid, _coin_text(y)))
            else:
                diff = [f for f in FIELDS if _norm(x.get(f)) != _norm(y.get(f))]
                if diff:
                    stats["amended"] += 1
                    ul.append("user %s: coin %s differs in %s: expected %s; actual %s" % (
                        user, cid, ",".join(diff), _coin_text(x), _coin_text(y)))
        if ul:
            stats["users_differ"] += 1
            bad.append(user)
            lines.extend(ul)
    if "boards" in exp and "boards" in act and only is None:
        stats["boards"] = 0
        eb, ab = exp["boards"], act["boards"]
        for k in sorted(set(eb) | set(ab)):
            x, y = [list(r) for r in eb.get(k, [])], [list(r) for r in ab.get(k, [])]
            if x != y:
                stats["boards"] += 1
                i = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
                lines.append("board %s: %d entries expected, %d actual; first difference at position %d: "
                             "expected %s actual %s" % (k, len(x), len(y), i + 1,
                                                        x[i] if i < len(x) else "-", y[i] if i < len(y) else "-"))
    return lines, stats, bad


def _norm(v):
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, tuple):
        return [_norm(x) for x in v]
    return v


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected", required=True)
    ap.add_argument("--actual", required=True)
    ap.add_argument("--max", type=int, default=200, help="print at most this many differences")
    ap.add_argument("--json", help="also write the stats and the differing users here")
    ap.add_argument("--users", help="compare only the users listed in this file (one a line)")
    ap.add_argument("--no-balance-check", action="store_true",
                    help="do not report an actual stored balance that differs from its live coins")
    a = ap.parse_args(argv)
    try:
        with open(a.expected, encoding="utf-8") as f:
            exp = json.load(f)
        with open(a.actual, encoding="utf-8") as f:
            act = json.load(f)
    except (OSError, ValueError) as e:
        print("compare: %s" % e, file=sys.stderr)
        return 2
    only = None
    if a.users:
        with open(a.users, encoding="utf-8") as f:
            only = set(l.strip() for l in f if l.strip())
    lines, st, bad = compare(exp, act, only, not a.no_balance_check)
    for l in lines[:a.max]:
        print(l)
    if len(lines) > a.max:
        print("... %d more differences" % (len(lines) - a.max))
    ncoins = sum(len(u.get("coins", [])) for k, u in exp.get("users", {}).items() if only is None or k in only)
    summary = ("%s: %d users (%d expected coins), %d differ: balance %d, hunt balance %d, "
               "coins missing %d, extra %d, amended %d, stored balance != live coins %d" % (
                   "EQUAL" if not lines else "DIFFERENT", st["users"], ncoins, st["users_differ"],
                   st["balance"], st["hunt_balance"], st["missing"], st["extra"], st["amended"],
                   st["stored_balance_not_sum"]))
    if "boards" in st:
        summary += "; boards: %d compared, %d differ" % (
            len(set(exp["boards"]) | set(act["boards"])), st["boards"])
    print(summary)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"stats": st, "users": bad, "summary": summary}, f)
    return 0 if not lines else 1


if __name__ == "__main__":
    sys.exit(main())
