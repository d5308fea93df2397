#!/usr/bin/python3
"""Self-test of the reference model: tiny stories whose coins were worked out
by hand from the docs (not by running the model). Run: /usr/bin/python3
tests/oracle/selftest.py  (exit 0: all pass).

Each expected coin is (hunt, rule, occurrence key parts, value, version,
[event ids of its provenance, in order]); the coin id is computed here from
docs/architecture.md "Coin ids" independently of model.py.
"""
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model  # noqa: E402

FAILS = []


def cid(hunt, rule, user, *occ):
    text = "\0".join(["trove-coin-v1", hunt, rule, user] + [str(x) for x in occ])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


BASE = 1_780_000_000_000  # 2026-05-28: small integer ts are offsets from it


def ev(i, typ, ts, source="web", user="u", **attrs):
    if isinstance(ts, int) and ts < BASE:
        ts += BASE
    return {"source": source, "id": i, "user": user, "type": typ, "ts": ts, "attrs": attrs}


def story(name, hunts, events, expected, user="u"):
    """hunts: {file name: YAML text}; expected: list of (hunt, rule, occ
    tuple, value, version, [ids] or [(source, id)])."""
    with tempfile.TemporaryDirectory() as d:
        for fn, text in hunts.items():
            with open(os.path.join(d, fn), "w") as f:
                f.write(text)
        rules = model.load_rules(d)
        evs = model.accepted_events(events)
        got = model.summarize(model.derive(rules, evs))["users"].get(user, {"coins": [], "balance": 0})
    want = []
    for hunt, rule, occ, value, version, refs in expected:
        refs = [list(r) if isinstance(r, tuple) else ["web", r] for r in refs]
        want.append({"id": cid(hunt, rule, user, *occ), "hunt": hunt, "rule": rule, "version": version,
                     "value": value, "events": refs})
    want.sort(key=lambda c: c["id"])
    bal = sum(c["value"] for c in want)
    if got["coins"] != want or got["balance"] != bal:
        FAILS.append(name)
        print("FAIL %s" % name)
        gi = {c["id"]: c for c in got["coins"]}
        wi = {c["id"]: c for c in want}
        for k in sorted(set(gi) | set(wi)):
            if gi.get(k) != wi.get(k):
                print("   id %s\n     want %s\n     got  %s" % (k, wi.get(k), gi.get(k)))
    else:
        print("ok   %s (%d coins, balance %d)" % (name, len(want), bal))


def hunt(rules, extra=""):
    return {"h.yaml": "hunt: h\nversion: 1\neffective: 2020-01-01T00:00:00Z\n%srules:\n%s" % (extra, rules)}


PARIS = "timezone: Europe/Paris\n"
NY = "timezone: America/New_York\n"

# 0. the coin id formula against a value read from a real cluster (demo hunt,
#    rule checkin, user pu, event web/p2)
if cid("demo", "checkin", "pu", "web", "p2") != "d41b8bf0fdf85e7db18e0bf974a63344":
    FAILS.append("coin id vector")
    print("FAIL coin id vector")
else:
    print("ok   coin id vector")

# 1. each without cap: every matching event, occurrence = source, id; undo
#    events and other types earn nothing
story("each", hunt("  - {id: r, kind: each, match: {type: t}, coins: 3}\n"), [
    ev("1", "t", 1000), ev("2", "t", 2000, "game"), ev("3", "x", 3000),
], [("h", "r", ("web", "1"), 3, 1, ["1"]), ("h", "r", ("game", "2"), 3, 1, [("game", "2")])])

# 2. cap per local day in Paris (UTC+1 on 10 March): 22:50Z is 23:50 on the
#    10th, 23:10Z and 23:20Z are the 11th (cap 1: the second is refused)
story("cap day across local midnight (Paris)", hunt(
    "  - {id: r, kind: each, match: {type: t}, coins: 1, cap: {max: 1, per: day}}\n", PARIS), [
    ev("1", "t", "2026-03-10T22:50:00Z"), ev("2", "t", "2026-03-10T23:10:00Z"),
    ev("3", "t", "2026-03-10T23:20:00Z"),
], [("h", "r", ("cap", "day:2026-03-10", 0), 1, 1, ["1"]),
    ("h", "r", ("cap", "day:2026-03-11", 0), 1, 1, ["2"])])

# 3. cap per week (Monday first) in New York across the DST change of Sunday
#    8 March 2026: 06:30Z is Sunday 01:30 EST (week of Monday 2 March);
#    9 March 03:30Z is still Sunday (23:30 EDT): same week, refused;
#    04:30Z is Monday 00:30 EDT: week of 9 March; Wednesday: refused
story("cap week across DST (New York)", hunt(
    "  - {id: r, kind: each, match: {type: t}, coins: 2, cap: {max: 1, per: week}}\n", NY), [
    ev("1", "t", "2026-03-08T06:30:00Z"), ev("2", "t", "2026-03-09T03:30:00Z"),
    ev("3", "t", "2026-03-09T04:30:00Z"), ev("4", "t", "2026-03-11T16:00:00Z"),
], [("h", "r", ("cap", "week:2026-03-02", 0), 2, 1, ["1"]),
    ("h", "r", ("cap", "week:2026-03-09", 0), 2, 1, ["3"])])

# 4. cap per month in Paris after its DST change (29 March: UTC+2):
#    31 March 21:50Z = 23:50 local (March), 22:10Z = 00:10 on 1 April
story("cap month across local midnight (Paris, summer time)", hunt(
    "  - {id: r, kind: each, match: {type: t}, coins: 4, cap: {max: 1, per: month}}\n", PARIS), [
    ev("1", "t", "2026-03-31T21:50:00Z"), ev("2", "t", "2026-03-31T22:10:00Z"),
    ev("3", "t", "2026-04-15T10:00:00Z"),
], [("h", "r", ("cap", "month:2026-03", 0), 4, 1, ["1"]),
    ("h", "r", ("cap", "month:2026-04", 0), 4, 1, ["2"])])

# 5. cooldown 30m (from the previous award; exactly 30 min later earns):
#    0 award, +10 skip, +30 award, +45 skip (15 after the award), +61 award
M = 60000
story("cooldown", hunt("  - {id: r, kind: each, match: {type: t}, coins: 1, cooldown: 30m}\n"), [
    ev("1", "t", 0 + 10 ** 12), ev("2", "t", 10 * M + 10 ** 12), ev("3", "t", 30 * M + 10 ** 12),
    ev("4", "t", 45 * M + 10 ** 12), ev("5", "t", 61 * M + 10 ** 12),
], [("h", "r", ("web", "1"), 1, 1, ["1"]), ("h", "r", ("web", "3"), 1, 1, ["3"]),
    ("h", "r", ("web", "5"), 1, 1, ["5"])])

# 6. cap per hunt, slots in event-time order whatever the arrival order
story("cap hunt, arrival order irrelevant", hunt(
    "  - {id: r, kind: each, match: {type: t}, coins: 2, cap: {max: 2, per: hunt}}\n"), [
    ev("3", "t", 3000), ev("1", "t", 1000), ev("2", "t", 2000),
], [("h", "r", ("cap", "hunt", 0), 2, 1, ["1"]), ("h", "r", ("cap", "hunt", 1), 2, 1, ["2"])])

# 7. count without repeat: the 2nd event earns, the 4th does not
story("count", hunt("  - {id: r, kind: count, match: {type: t}, count: 2, coins: 5}\n"), [
    ev("1", "t", 1000), ev("2", "t", 2000), ev("3", "t", 3000), ev("4", "t", 4000),
], [("h", "r", ("count", 1), 5, 1, ["1", "2"])])

# 8. count distinct with repeat: A A B -> award (A, B); then B B C: B counts
#    again (each award counts afresh) -> award (B, C); no zone: not counted
story("count distinct repeat", hunt(
    "  - {id: r, kind: count, match: {type: v}, distinct: zone, count: 2, coins: 10, repeat: true}\n"), [
    ev("1", "v", 1000, zone="A"), ev("2", "v", 2000, zone="A"), ev("3", "v", 3000, zone="B"),
    ev("4", "v", 4000, zone="B"), ev("5", "v", 5000, zone="B"), ev("n", "v", 5500),
    ev("6", "v", 6000, zone="C"),
], [("h", "r", ("count", 1), 10, 1, ["1", "3"]), ("h", "r", ("count", 2), 10, 1, ["4", "6"])])

# 9. sequence within 10m: a b 11 min apart is too slow; a b exactly 10 min
#    apart completes (last - first <= within)
story("sequence within", hunt(
    "  - {id: r, kind: sequence, within: 10m, coins: 50, steps: [{type: a}, {type: b}]}\n"), [
    ev("1", "a", 0 + 10 ** 12), ev("2", "b", 11 * M + 10 ** 12),
    ev("3", "a", 20 * M + 10 ** 12), ev("4", "b", 30 * M + 10 ** 12),
], [("h", "r", ("sequence", 1), 50, 1, ["3", "4"])])

# 10. sequence a b a c: the partial (a b) survives the second a (the first
#     completion in event time wins); without repeat a later one earns nothing
story("sequence restart keeps progress", hunt(
    "  - {id: r, kind: sequence, within: 1h, coins: 50, steps: [{type: a}, {type: b}, {type: c}]}\n"), [
    ev("1", "a", 1000), ev("2", "b", 2000), ev("3", "a", 3000), ev("4", "c", 4000),
    ev("5", "a", 5000), ev("6", "b", 6000), ev("7", "c", 7000),
], [("h", "r", ("sequence", 1), 50, 1, ["1", "2", "4"])])

# 11. sequence: equal ts ordered by (source, id): b from game plays before a
#     from web, so it cannot be step 2; b from web has the wrong source;
#     b from game later completes. Repeat: a second run earns sequence 2.
story("sequence ties and source", hunt(
    "  - {id: r, kind: sequence, within: 1h, coins: 7, repeat: true, steps: [{type: a}, {type: b, source: game}]}\n"), [
    ev("x", "a", 1000, "web"), ev("w", "b", 1000, "game"), ev("y", "b", 2000, "web"),
    ev("z", "b", 3000, "game"), ev("p", "a", 4000, "web"), ev("q", "b", 5000, "game"),
], [("h", "r", ("sequence", 1), 7, 1, [("web", "x"), ("game", "z")]),
    ("h", "r", ("sequence", 2), 7, 1, [("web", "p"), ("game", "q")])])

# 12. streak of 2 local days (Paris) with repeat: 23:30 and 00:30 local are
#     two days (award 1); the next two days award again; a gap earns nothing
story("streak", hunt(
    "  - {id: r, kind: streak, match: {type: p}, days: 2, coins: 25, repeat: true}\n", PARIS), [
    ev("1", "p", "2026-03-10T22:30:00Z"), ev("2", "p", "2026-03-10T23:30:00Z"),
    ev("3", "p", "2026-03-11T12:00:00Z"), ev("4", "p", "2026-03-12T12:00:00Z"),
    ev("5", "p", "2026-03-13T12:00:00Z"), ev("6", "p", "2026-03-15T12:00:00Z"),
    ev("7", "p", "2026-03-17T12:00:00Z"),
], [("h", "r", ("streak", 1), 25, 1, ["1", "2"]), ("h", "r", ("streak", 2), 25, 1, ["4", "5"])])

# 13. where on a number: >= 100 and != 7 (both must hold); a string or a
#     missing amount never satisfies where
story("where", hunt(
    "  - {id: r, kind: each, match: {type: buy, where: [{attr: amount, op: \">=\", value: 100}, {attr: amount, op: \"!=\", value: 150}]}, coins: 5}\n"), [
    ev("1", "buy", 1000, amount=99.5), ev("2", "buy", 2000, amount=100), ev("3", "buy", 3000, amount=150),
    ev("4", "buy", 4000, amount="120"), ev("5", "buy", 5000), ev("6", "buy", 6000, amount=150.5),
], [("h", "r", ("web", "2"), 5, 1, ["2"]), ("h", "r", ("web", "6"), 5, 1, ["6"])])

# 14. undo after its target: the count goes on as if it never happened
story("undo after target", hunt("  - {id: r, kind: count, match: {type: t}, count: 2, coins: 5}\n"), [
    ev("1", "t", 1000), ev("2", "t", 2000),
    ev("u", "undo", 2500, target_source="web", target_id="2"), ev("3", "t", 3000),
], [("h", "r", ("count", 1), 5, 1, ["1", "3"])])

# 15. undo before its target (in arrival and in ts): the target never counts
story("undo before target", hunt("  - {id: r, kind: each, match: {type: t}, coins: 1}\n"), [
    ev("u", "undo", 500, target_source="web", target_id="2"), ev("1", "t", 1000), ev("2", "t", 2000),
], [("h", "r", ("web", "1"), 1, 1, ["1"])])

# 16. duplicates: the first (source, id) counts, a later copy with other
#     content is ignored
story("duplicates", hunt("  - {id: r, kind: each, match: {type: t}, coins: 1}\n"
                         "  - {id: s, kind: each, match: {type: s}, coins: 9}\n"), [
    ev("1", "t", 1000), ev("1", "s", 1000), ev("1", "t", 5000),
], [("h", "r", ("web", "1"), 1, 1, ["1"])])

# 17. versions: v1 (coins 1) from 2026-01-01; v2 (coins 2) from 2026-03-10,
#     ending 2026-03-20. 9 March: v1; 10 March 00:00:00Z exactly: v2; 25 March:
#     outside v2's window, nothing (no fallback to v1). A count that
#     completes under v2 is v2's, with v2's value.
story("versions and windows", {
    "v1.yaml": "hunt: h\nversion: 1\neffective: 2026-01-01T00:00:00Z\nrules:\n"
               "  - {id: r, kind: each, match: {type: t}, coins: 1}\n"
               "  - {id: c, kind: count, match: {type: t}, count: 2, coins: 10}\n",
    "v2.yaml": "hunt: h\nversion: 2\neffective: 2026-03-10T00:00:00Z\nend: 2026-03-20T00:00:00Z\nrules:\n"
               "  - {id: r, kind: each, match: {type: t}, coins: 2}\n"
               "  - {id: c, kind: count, match: {type: t}, count: 2, coins: 20}\n",
}, [
    ev("1", "t", "2026-03-09T12:00:00Z"), ev("2", "t", "2026-03-10T00:00:00Z"),
    ev("3", "t", "2026-03-25T12:00:00Z"),
], [("h", "r", ("web", "1"), 1, 1, ["1"]), ("h", "r", ("web", "2"), 2, 2, ["2"]),
    ("h", "c", ("count", 1), 20, 2, ["1", "2"])])

# 18. window: start is in, end is out
story("window edges", hunt("  - {id: r, kind: each, match: {type: t}, coins: 1}\n",
                           "start: 2026-03-01T00:00:00Z\nend: 2026-03-02T00:00:00Z\n"), [
    ev("0", "t", "2026-02-28T23:59:59.999Z"), ev("1", "t", "2026-03-01T00:00:00Z"),
    ev("2", "t", "2026-03-01T23:59:59.999Z"), ev("3", "t", "2026-03-02T00:00:00Z"),
], [("h", "r", ("web", "1"), 1, 1, ["1"]), ("h", "r", ("web", "2"), 1, 1, ["2"])])

# 19. attrs: a list of allowed values, and a boolean written "true";
#     ts with an offset (+01:00) is the same instant as Z
story("attrs and RFC 3339 offsets", hunt(
    "  - {id: r, kind: each, match: {type: t, attrs: {zone: [A, B], vip: true}}, coins: 1, cap: {max: 1, per: day}}\n"), [
    ev("1", "t", "2026-03-10T00:30:00+01:00", zone="A", vip=True),   # 9 March 23:30Z
    ev("2", "t", "2026-03-10T00:10:00Z", zone="B", vip=True),
    ev("3", "t", "2026-03-10T12:00:00Z", zone="C", vip=True),
    ev("4", "t", "2026-03-11T12:00:00Z", zone="A", vip=False),
], [("h", "r", ("cap", "day:2026-03-09", 0), 1, 1, ["1"]),
    ("h", "r", ("cap", "day:2026-03-10", 0), 1, 1, ["2"])])

# 20. undo of a streak day breaks the streak
story("undo breaks a streak", hunt(
    "  - {id: r, kind: streak, match: {type: p}, days: 3, coins: 25}\n"), [
    ev("1", "p", "2026-03-10T12:00:00Z"), ev("2", "p", "2026-03-11T12:00:00Z"),
    ev("u", "undo", "2026-03-11T12:05:00Z", target_source="web", target_id="2"),
    ev("3", "p", "2026-03-12T12:00:00Z"), ev("4", "p", "2026-03-13T12:00:00Z"),
    ev("5", "p", "2026-03-14T12:00:00Z"),
], [("h", "r", ("streak", 1), 25, 1, ["3", "4", "5"])])

print("selftest: %s" % ("PASS" if not FAILS else "FAIL (%s)" % ", ".join(FAILS)))
sys.exit(1 if FAILS else 0)
