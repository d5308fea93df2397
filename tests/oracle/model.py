#!/usr/bin/python3
"""Reference model of Trove's hunt semantics (tests/oracle/README.md).

Written from the documentation only (README.md, docs/*.md, the header
comments of lib/rules/trove_rules.h and lib/rules/trove_engine.h, the example hunts),
never from Trove's C code: it is the judge, so it must not share Trove's
bugs. Every place where the docs leave a choice open is marked READING and
listed in tests/oracle/README.md ("Readings of the docs").

    model.py --rules DIR --events FILE [--accepted FILE] [--user U] [--out FILE]

prints, for every user of the (accepted) events, the live coins event-time
order yields and the balances:

    {"users": {"u1": {"balance": 37, "hunts": {"spring-hunt": 37},
                      "coins": [{"id", "hunt", "rule", "version", "value",
                                 "events": [[source, id], ...]}, ...]}}}

Usable as a library too: load_rules(dir), derive(rules, events).
"""
import argparse
import calendar
import datetime as dt
import glob
import hashlib
import json
import math
import os
import re
import sys
import zoneinfo

import yaml

INF = float("inf")

# --------------------------------------------------------------------------
# time


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(v):
    """Epoch ms from RFC 3339 text or integer epoch ms.

    READING: fractional seconds beyond milliseconds are truncated (ts is
    epoch milliseconds everywhere else in the docs)."""
    if isinstance(v, bool):
        raise ValueError("bad time %r" % (v,))
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, str):
        raise ValueError("bad time %r" % (v,))
    m = _RFC3339.match(v.strip())
    if not m:
        raise ValueError("bad time %r" % (v,))
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = m.group(7)
    ms = int((frac[1:] + "000")[:3]) if frac else 0
    tz = m.group(8)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1000 + ms


_DUR = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_DUR_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


def parse_duration(v):
    """'30s' -> 30000 (an integer followed by ms, s, m, h or d)."""
    m = _DUR.match(str(v).strip())
    if not m:
        raise ValueError("bad duration %r" % (v,))
    return int(m.group(1)) * _DUR_MS[m.group(2)]


class Zone:
    """Local dates of epoch ms in an IANA zone (system tzdata via zoneinfo)."""

    def __init__(self, name):
        self.name = name
        self.tz = zoneinfo.ZoneInfo(name)
        self._cache = {}

    def local_date(self, ms):
        # floor to the second: a local date never changes inside a second
        s = ms // 1000
        d = self._cache.get(s)
        if d is None:
            d = dt.datetime.fromtimestamp(s, self.tz).date()
            if len(self._cache) > 200000:
                self._cache.clear()
            self._cache[s] = d
        return d


def period_key(zone, per, ms):
    """The cap period of an event: day:YYYY-MM-DD, week:YYYY-MM-DD (its
    Monday), month:YYYY-MM or hunt; in the hunt's time zone."""
    if per == "hunt":
        return "hunt"
    d = zone.local_date(ms)
    if per == "day":
        return "day:" + d.isoformat()
    if per == "week":
        return "week:" + (d - dt.timedelta(days=d.weekday())).isoformat()
    if per == "month":
        return "month:%04d-%02d" % (d.year, d.month)
    raise ValueError("bad period %r" % (per,))


# --------------------------------------------------------------------------
# values and matching


def attr_text(v):
    """Attribute value as a hunt file would write it ("3", "2.5", "true", "A").

    READING: a number with an integral value is written without a fraction
    ("3" for 3 and 3.0); others in the shortest form that reads back the same
    number (Python's repr: "2.5", "0.1")."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if v is None:
        return "null"
    return str(v)


def _as_list(v):
    if v is None:
        return []
    if isinstance(v, list):
        return v
    return [v]


class Match:
    """What an event must be: every present criterion holds."""

    def __init__(self, spec, where_ctx):
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ValueError("%s: match must be a mapping" % where_ctx)
        known = {"type", "source", "attrs", "where"}
        for k in spec:
            if k not in known:
                raise ValueError("%s: unknown match key %r" % (where_ctx, k))
        self.types = set(attr_text(x) for x in _as_list(spec.get("type")))
        self.sources = set(attr_text(x) for x in _as_list(spec.get("source")))
        self.attrs = []
        for k, vals in (spec.get("attrs") or {}).items():
            self.attrs.append((str(k), set(attr_text(x) for x in _as_list(vals))))
        self.wheres = []
        for w in _as_list(spec.get("where")):
            op = str(w["op"])
            if op == "==":
                op = "="
            if op not in ("=", "!=", "<", "<=", ">", ">="):
                raise ValueError("%s: bad op %r" % (where_ctx, op))
            self.wheres.append((str(w["attr"]), op, float(w["value"])))

    def __call__(self, ev):
        if self.types and ev["type"] not in self.types:
            return False
        if self.sources and ev["source"] not in self.sources:
            return False
        attrs = ev["attrs"]
        for k, vals in self.attrs:
            if k not in attrs or attr_text(attrs[k]) not in vals:
                return False
        for k, op, rhs in self.wheres:
            v = attrs.get(k)
            # READING: `where` compares numbers only; a missing attribute, a
            # string or a boolean never satisfies it (whatever the op).
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return False
            v = float(v)
            if not math.isfinite(v):
                return False
            ok = {"=": v == rhs, "!=": v != rhs, "<": v < rhs, "<=": v <= rhs,
                  ">": v > rhs, ">=": v >= rhs}[op]
            if not ok:
                return False
        return True


# --------------------------------------------------------------------------
# hunt files


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text (parsed by parse_time)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class Rule:
    def __init__(self, spec, ctx):
        self.id = str(spec["id"])
        ctx = "%s rule %s" % (ctx, self.id)
        self.kind = spec["kind"]
        if self.kind not in ("each", "count", "sequence", "streak"):
            raise ValueError("%s: bad kind %r" % (ctx, self.kind))
        self.coins = int(spec["coins"])
        self.match = Match(spec.get("match"), ctx)
        self.steps = [Match(s, ctx) for s in (spec.get("steps") or [])]
        cap = spec.get("cap")
        self.cap_max = int(cap["max"]) if cap else 0
        self.cap_per = str(cap["per"]) if cap else None
        self.cooldown = parse_duration(spec["cooldown"]) if spec.get("cooldown") else 0
        self.distinct = str(spec["distinct"]) if spec.get("distinct") is not None else None
        self.count = int(spec.get("count", 1) or 1)
        self.repeat = bool(spec.get("repeat", False))
        self.within = parse_duration(spec["within"]) if spec.get("within") else None
        self.days = int(spec.get("days", 1) or 1)


class Version:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_Loader)
        ctx = os.path.basename(path)
        self.path = path
        self.hunt = str(doc["hunt"])
        self.version = int(doc["version"])
        # READING: a file without `effective` applies from the beginning of time.
        self.effective = parse_time(doc["effective"]) if doc.get("effective") is not None else -INF
        self.start = parse_time(doc["start"]) if doc.get("start") is not None else -INF
        self.end = parse_time(doc["end"]) if doc.get("end") is not None else INF
        self.zone = Zone(doc.get("timezone") or "UTC")
        self.lateness = parse_duration(doc.get("lateness", "10m"))
        self.rules = [Rule(r, ctx) for r in (doc.get("rules") or [])]

    def in_window(self, ts):
        # READING: the window is start <= ts < end (start included, end excluded).
        return self.start <= ts < self.end


class Rules:
    def __init__(self, versions):
        self.hunts = {}
        for v in versions:
            self.hunts.setdefault(v.hunt, []).append(v)
        for h in self.hunts.values():
            h.sort(key=lambda v: v.version)

    def effective(self, hunt, ts):
        """The version of `hunt` in effect at ts: the highest version whose
        effective <= ts; None when there is none or ts is outside that
        version's window (lib/rules/trove_rules.h: NULL, no fallback to a lower
        version)."""
        best = None
        for v in self.hunts[hunt]:
            if v.effective <= ts and (best is None or v.version > best.version):
                best = v
        if best is None or not best.in_window(ts):
            return None
        return best


def load_rules(d):
    files = sorted(glob.glob(os.path.join(d, "*.yaml")) + glob.glob(os.path.join(d, "*.yml")))
    return Rules([Version(p) for p in files])


# --------------------------------------------------------------------------
# events


def norm_event(obj):
    ev = {
        "source": obj["source"],
        "id": obj["id"],
        "user": obj["user"],
        "type": obj["type"],
        "ts": parse_time(obj["ts"]),
        "attrs": obj.get("attrs") or {},
    }
    ev["key"] = (ev["ts"], ev["source"], ev["id"])
    return ev


def read_events(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            out.append(json.loads(line))
    return out


def read_accepted(path):
    """Either "source id" lines or the history format
    "source id user type status reason" (only status == accepted counts).
    Returns a list of (source, id, accepted?) in file order."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 2:
                rows.append((parts[0], parts[1], True))
            elif len(parts) >= 5:
                rows.append((parts[0], parts[1], parts[4] == "accepted"))
            else:
                raise ValueError("%s: bad line %r" % (path, line))
    return rows


def accepted_events(raw, accepted_rows=None):
    """The events the ledger holds: the first occurrence of each (source, id)
    (later ones are answered `duplicate`), restricted to the accepted ones.

    When the history has one line per event of the file, in file order, it
    is matched position by position (so the occurrence that was accepted is
    the one kept); otherwise by (source, id), keeping the first occurrence."""
    keep = []
    if accepted_rows is not None and len(accepted_rows) == len(raw) and all(
            (r[0], r[1]) == (str(e.get("source")), str(e.get("id"))) for r, e in zip(accepted_rows, raw)):
        seen = set()
        for r, e in zip(accepted_rows, raw):
            k = (e["source"], e["id"])
            if r[2] and k not in seen:
                seen.add(k)
                keep.append(e)
        return keep
    ok = None
    if accepted_rows is not None:
        ok = set((r[0], r[1]) for r in accepted_rows if r[2])
    seen = set()
    for e in raw:
        k = (e["source"], e["id"])
        if k in seen:
            continue
        if ok is not None and k not in ok:
            continue
        seen.add(k)
        keep.append(e)
    return keep


# --------------------------------------------------------------------------
# coin ids


def coin_id(hunt, rule, user, *occurrence):
    parts = ["trove-coin-v1", hunt, rule, user] + [str(p) for p in occurrence]
    return hashlib.blake2b("\0".join(parts).encode("utf-8"), digest_size=16).hexdigest()


# --------------------------------------------------------------------------
# scoring: one user, one hunt, events in event-time order


class RuleState:
    def __init__(self):
        self.done = 0            # completions (count, sequence, streak)
        self.last_award = None   # each: ts of the previous award (cooldown)
        self.slots = {}          # each + cap: period -> awards in it
        self.refs = []           # count / streak: events of the current round
        self.values = set()      # count distinct: values of the current round
        self.partials = {}       # sequence: steps matched -> events (latest start)
        self.last_day = None     # streak: local date of the last active day
        self.run = 0             # streak: consecutive days of the current round


def _ref(ev):
    return [ev["source"], ev["id"]]


def score_hunt(rules, hunt, user, events, coins):
    """events: this user's live events sorted by (ts, source, id).

    READING: rule state is per rule id and carries over from one hunt
    version to the next; each event is judged by the rules of the version in
    effect at its ts (a rule missing from that version ignores it), and a
    coin takes the version (and value) of the event that completed it."""
    states = {}
    for ev in events:
        v = rules.effective(hunt, ev["ts"])
        if v is None:
            continue
        for r in v.rules:
            st = states.get(r.id)
            if st is None:
                st = states[r.id] = RuleState()
            c = _score_rule(v, r, st, ev, user)
            if c is not None:
                # the completing (last earning) event decides the coin's
                # boards: its local day in the version's time zone
                c["_day"] = v.zone.local_date(ev["ts"])
                coins.append(c)


def _coin(v, r, user, occ, refs):
    return {
        "id": coin_id(v.hunt, r.id, user, *occ),
        "hunt": v.hunt,
        "rule": r.id,
        "version": v.version,
        "value": r.coins,
        "events": [list(x) for x in refs],
    }


def _score_rule(v, r, st, ev, user):
    ts = ev["ts"]
    if r.kind == "each":
        if not r.match(ev):
            return None
        # READING: cooldown skips an event whose ts is less than `cooldown`
        # after the previous award of the rule (exactly `cooldown` later earns);
        # events skipped (by cooldown or cap) do not restart the cooldown.
        if r.cooldown and st.last_award is not None and ts - st.last_award < r.cooldown:
            return None
        if r.cap_max:
            p = period_key(v.zone, r.cap_per, ts)
            n = st.slots.get(p, 0)
            if n >= r.cap_max:
                return None
            st.slots[p] = n + 1
            occ = ("cap", p, n)
        else:
            occ = (ev["source"], ev["id"])
        st.last_award = ts
        return _coin(v, r, user, occ, [_ref(ev)])

    if r.kind == "count":
        if not r.repeat and st.done >= 1:
            return None
        if not r.match(ev):
            return None
        if r.distinct is not None:
            # READING: an event without the attribute does not count; the
            # provenance is the event that brought each value (the first).
            if r.distinct not in ev["attrs"]:
                return None
            val = attr_text(ev["attrs"][r.distinct])
            if val in st.values:
                return None
            st.values.add(val)
        st.refs.append(_ref(ev))
        if len(st.refs) >= r.count:
            st.done += 1
            c = _coin(v, r, user, ("count", st.done), st.refs)
            st.refs = []
            st.values = set()
            return c
        return None

    if r.kind == "sequence":
        if not r.repeat and st.done >= 1:
            return None
        n = len(r.steps)
        if n == 0:
            return None
        within = r.within if r.within is not None else INF
        # partials whose first step is more than `within` before this event
        # can never complete any more
        for k in list(st.partials):
            if ts - st.partials[k][0]["ts"] > within:
                del st.partials[k]
        # READING (NFA): one partial match is kept per number of steps
        # matched, the one with the latest start; an event advances each
        # partial whose next step it matches by one step (never two steps of
        # the same partial) and starts a new partial if it matches step 1.
        cand = {}
        for k in sorted(st.partials, reverse=True):
            if r.steps[k].__call__(ev):
                cand[k + 1] = st.partials[k] + [ev]
        if r.steps[0](ev):
            if 1 not in cand:
                cand[1] = [ev]
        if n in cand:
            # a completion: award and reset every partial
            refs = cand[n]
            st.done += 1
            st.partials = {}
            return _coin(v, r, user, ("sequence", st.done), [_ref(e) for e in refs])
        for k, evs in cand.items():
            cur = st.partials.get(k)
            if cur is None or evs[0]["key"] >= cur[0]["key"]:
                st.partials[k] = evs
        return None

    if r.kind == "streak":
        if not r.repeat and st.done >= 1:
            return None
        if not r.match(ev):
            return None
        d = v.zone.local_date(ts)
        if st.last_day == d:
            return None
        if st.last_day is not None and d == st.last_day + dt.timedelta(days=1):
            st.run += 1
            st.refs.append(_ref(ev))
        else:
            st.run = 1
            st.refs = [_ref(ev)]
        st.last_day = d
        # READING: provenance = the first matching event of each day of the
        # streak; with repeat, the next award needs `days` more consecutive
        # days (the days after an award count afresh).
        if st.run >= r.days:
            st.done += 1
            c = _coin(v, r, user, ("streak", st.done), st.refs)
            st.run = 0
            st.refs = []
            return c
        return None
    return None


def derive(rules, raw_events):
    """raw_events: accepted events (JSON objects). Returns {user: [coins]}."""
    by_user = {}
    for obj in raw_events:
        ev = norm_event(obj)
        by_user.setdefault(ev["user"], []).append(ev)
    out = {}
    for user, evs in by_user.items():
        # READING: an undo takes back the target of the same user only; undo
        # events are never scored (even if a rule matches them), and an undo
        # that is itself the target of an undo still applies.
        undone = set()
        for e in evs:
            if e["type"] == "undo":
                ts_, ti = e["attrs"].get("target_source"), e["attrs"].get("target_id")
                if isinstance(ts_, str) and isinstance(ti, str):
                    undone.add((ts_, ti))
        live = [e for e in evs if e["type"] != "undo" and (e["source"], e["id"]) not in undone]
        live.sort(key=lambda e: e["key"])
        coins = []
        for hunt in sorted(rules.hunts):
            score_hunt(rules, hunt, user, live, coins)
        out[user] = coins
    return out


def boards(coins_by_user):
    """docs/queries.md "Leaderboards": per hunt the boards `all`, `day:D`
    and `week:W` (W the Monday of D) of the local day D of each coin's
    earning event (READING: the last earning event, trove_engine.h
    `local_day`), and `*` `all`. Score = sum of live coins on the board;
    users with a score above 0; order score descending then user id (bytes);
    rank = 1 + users with a higher score. Returns {"HUNT PERIOD": [[user,
    score, rank], ...]}."""
    scores = {}
    for user, coins in coins_by_user.items():
        for c in coins:
            d = c["_day"]
            w = d - dt.timedelta(days=d.weekday())
            for key in ("%s all" % c["hunt"], "%s day:%s" % (c["hunt"], d.isoformat()),
                        "%s week:%s" % (c["hunt"], w.isoformat()), "* all"):
                b = scores.setdefault(key, {})
                b[user] = b.get(user, 0) + c["value"]
    out = {}
    for key, b in scores.items():
        entries = sorted(((u, n) for u, n in b.items() if n > 0),
                         key=lambda x: (-x[1], x[0].encode("utf-8")))
        rows = []
        for i, (u, n) in enumerate(entries):
            rank = rows[-1][2] if rows and rows[-1][1] == n else i + 1
            rows.append([u, n, rank])
        if rows:
            out[key] = rows
    return out


def summarize(coins_by_user, with_boards=False):
    res = {}
    if with_boards:
        res["boards"] = boards(coins_by_user)
    users = {}
    for user, coins in coins_by_user.items():
        coins = [{k: v for k, v in c.items() if not k.startswith("_")} for c in coins]
        hunts = {}
        for c in coins:
            hunts[c["hunt"]] = hunts.get(c["hunt"], 0) + c["value"]
        ids = [c["id"] for c in coins]
        if len(ids) != len(set(ids)):
            raise RuntimeError("model: two coins with one id for user %s" % user)
        users[user] = {
            "balance": sum(c["value"] for c in coins),
            "hunts": hunts,
            "coins": sorted(coins, key=lambda c: c["id"]),
        }
    res["users"] = users
    return res


def dumps(res):
    """JSON text with one user per block and one coin per line (diff-friendly)."""
    c = lambda o: json.dumps(o, sort_keys=True, separators=(", ", ": "))
    out = ['{"users": {']
    users = sorted(res["users"])
    for i, u in enumerate(users):
        d = res["users"][u]
        out.append(' %s: {"balance": %d, "hunts": %s, "coins": [' % (c(u), d["balance"], c(d["hunts"])))
        for j, coin in enumerate(d["coins"]):
            out.append("  " + c(coin) + ("," if j + 1 < len(d["coins"]) else ""))
        out.append(" ]}" + ("," if i + 1 < len(users) else ""))
    if "boards" in res:
        out.append('}, "boards": {')
        keys = sorted(res["boards"])
        for i, k in enumerate(keys):
            out.append(" %s: %s%s" % (c(k), c(res["boards"][k]), "," if i + 1 < len(keys) else ""))
    out.append("}}")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", required=True, help="rules directory (*.yaml, *.yml)")
    ap.add_argument("--events", required=True, help="NDJSON events, in arrival order")
    ap.add_argument("--accepted", help="only these events: 'source id' lines or history lines "
                    "'source id user type status reason'")
    ap.add_argument("--user", help="print only this user")
    ap.add_argument("--out", help="write here instead of standard output")
    ap.add_argument("--boards", action="store_true", help="also the leaderboards (\"boards\")")
    a = ap.parse_args(argv)
    rules = load_rules(a.rules)
    raw = read_events(a.events)
    rows = read_accepted(a.accepted) if a.accepted else None
    evs = accepted_events(raw, rows)
    if a.user is not None:
        evs = [e for e in evs if e["user"] == a.user]
    res = summarize(derive(rules, evs), a.boards)
    if a.user is not None:
        res["users"] = {a.user: res["users"].get(a.user, {"balance": 0, "hunts": {}, "coins": []})}
    text = dumps(res)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
