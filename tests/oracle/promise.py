#!/usr/bin/python3
"""Which users must real time get exactly right, by the docs' own promise?

    promise.py --rules DIR --events FILE [--accepted HISTORY] [--out FILE] [--why FILE]
               [--promise any-order|lateness] [--max-user-history N]

--promise any-order (default; lib/rules/trove_engine.h since commit 9c04f1f, "Exact
in real time for any lateness"): "the ledger equals event-time order for
any arrival order"; a user with more than limits/max_user_history (20,000)
stored events may have a late event rejected `history_limit`, so such users
are left out.

--promise lateness (lib/rules/trove_engine.h before 9c04f1f, and still
docs/architecture.md "Rules engine" and docs/events.md "Undo"): "when no event arrives after another event of the same
user and hunt whose ts is more than `lateness` ahead of it, and at most 64
of that user's matching events fall within `lateness`, the coins equal
those of event-time order"; docs/events.md (undo): coins are exact "while the
target is within the hunt's lateness of the user's newest event", and an
undo that arrives before its target makes it count as never happened.

Prints the users for whom every condition holds, for every hunt, in the
arrival order of the file (one per line). Conservative where the docs leave
room: "events of the same user and hunt" are all that user's events that
match any rule of the version in effect (not only the stateful ones), and
the newest ts counts every such event that arrived before.
"""
import argparse
import sys

import model

BUFFER_MAX = 64


def matches_hunt(rules, hunt, ev):
    v = rules.effective(hunt, ev["ts"])
    if v is None:
        return None
    for r in v.rules:
        if r.kind == "sequence":
            if any(s(ev) for s in r.steps):
                return v
        elif r.match(ev):
            return v
    return None


def stateful(rules, hunt, ev):
    v = rules.effective(hunt, ev["ts"])
    if v is None:
        return False
    for r in v.rules:
        if r.kind == "each" and not r.cap_max and not r.cooldown:
            continue
        if r.kind == "sequence":
            if any(s(ev) for s in r.steps):
                return True
        elif r.match(ev):
            return True
    return False


def promised(rules, arrivals):
    """arrivals: accepted events (JSON objects) in arrival order.
    Returns ({user: True/False}, {user: reason})."""
    by_user = {}
    for obj in arrivals:
        e = model.norm_event(obj)
        by_user.setdefault(e["user"], []).append(e)
    ok, why = {}, {}
    for user, evs in by_user.items():
        reason = None
        byid = {(e["source"], e["id"]): i for i, e in enumerate(evs)}
        for hunt, versions in rules.hunts.items():
            if not any(not (r.kind == "each" and not r.cap_max and not r.cooldown)
                       for v in versions for r in v.rules):
                continue  # no state: every event is scored alone, exactly
            lat = max(v.lateness for v in versions)
            lat_min = min(v.lateness for v in versions)
            newest = None
            seen_ts = []  # ts of this hunt's events
            for i, e in enumerate(evs):
                if e["type"] == "undo":
                    tgt = (e["attrs"].get("target_source"), e["attrs"].get("target_id"))
                    j = byid.get(tgt)
                    if j is not None and j < i and stateful(rules, hunt, evs[j]):
                        if newest is not None and evs[j]["ts"] < newest - lat_min:
                            reason = "hunt %s: undo %s/%s of a target %d ms behind the newest event" % (
                                hunt, e["source"], e["id"], newest - evs[j]["ts"])
                            break
                    continue
                if matches_hunt(rules, hunt, e) is None:
                    continue
                if newest is not None and e["ts"] < newest - lat_min:
                    reason = "hunt %s: %s/%s arrived %d ms behind the newest event (lateness %d)" % (
                        hunt, e["source"], e["id"], newest - e["ts"], lat_min)
                    break
                seen_ts.append(e["ts"])
                newest = e["ts"] if newest is None else max(newest, e["ts"])
            if reason is None:
                # at most 64 of the user's events of this hunt within any `lateness`
                seen_ts.sort()
                lo = 0
                for hi, t in enumerate(seen_ts):
                    while seen_ts[lo] < t - lat:
                        lo += 1
                    if hi - lo + 1 > BUFFER_MAX:
                        reason = "hunt %s: more than %d events within lateness" % (hunt, BUFFER_MAX)
                        break
            if reason:
                break
        ok[user] = reason is None
        if reason:
            why[user] = reason
    return ok, why


def promised_any_order(arrivals, max_history):
    n = {}
    for obj in arrivals:
        n[obj["user"]] = n.get(obj["user"], 0) + 1
    ok = {u: c <= max_history for u, c in n.items()}
    why = {u: "%d events (more than limits/max_user_history %d)" % (c, max_history)
           for u, c in n.items() if c > max_history}
    return ok, why


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--promise", choices=["any-order", "lateness"], default="any-order")
    ap.add_argument("--max-user-history", type=int, default=20000)
    ap.add_argument("--withheld", help="a hunt file of the rules dir that was applied only later")
    ap.add_argument("--withheld-until", type=int, default=0,
                    help="... before the event at this line (0-based) of the events file arrived")
    ap.add_argument("--rules", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--accepted")
    ap.add_argument("--out")
    ap.add_argument("--why", help="write 'user reason' for the users left out")
    a = ap.parse_args(argv)
    rules = model.load_rules(a.rules)
    raw = model.read_events(a.events)
    rows = model.read_accepted(a.accepted) if a.accepted else None
    evs = model.accepted_events(raw, rows)
    if a.promise == "lateness":
        ok, why = promised(rules, evs)
    else:
        ok, why = promised_any_order(evs, a.max_user_history)
    if a.withheld:
        # a version applied to the past: an event scored before the apply
        # whose ts falls in that version's time was scored by the old rules
        # (docs/architecture.md: the reconciler repairs "rule versions
        # applied to the past")
        import os
        v = model.Version(os.path.join(a.rules, a.withheld))
        early = set()
        for obj in raw[:a.withheld_until]:
            early.add((obj["source"], obj["id"]))
        for obj in evs:
            e = model.norm_event(obj)
            if (e["source"], e["id"]) in early and e["ts"] >= v.effective and v.in_window(e["ts"]):
                if ok.get(e["user"]):
                    ok[e["user"]] = False
                    why[e["user"]] = "%s/%s arrived before %s was applied and falls in its time" % (
                        e["source"], e["id"], a.withheld)
    users = sorted(u for u, v in ok.items() if v)
    text = "".join(u + "\n" for u in users)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if a.why:
        with open(a.why, "w", encoding="utf-8") as f:
            for u in sorted(why):
                f.write("%s %s\n" % (u, why[u]))
    print("promise: %d of %d users must be exact in real time" % (len(users), len(ok)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
