#!/usr/bin/python3
"""Seeded generator of user stories for the oracle (tests/oracle/README.md).

    stories.py --seed N [--users 400] --out DIR [--order sorted|shuffled|late|random]
               [--now MS] [--stories K] [--noise N]

writes DIR/rules/*.yaml (three hunts of its own: every rule kind, two
versions of one, a Paris and a New York time zone), DIR/events.ndjson (in
the chosen arrival order), DIR/users.txt and DIR/stories.json (which
stories each user plays; each event also carries attrs.story).

Timestamps: the ingestors refuse a ts more than limits/max_past_s (366 days)
before or max_future_s (300 s) after their clock (docs/events.md), so every
time is relative to `now` (--now MS, default the current time rounded down
to the UTC day): most events in the last 18 days, the daylight-saving
stories at the last DST changes of Europe/Paris and America/New_York (less
than 330 days ago); nothing later than now - 1 h.

Orders (arrival order = line order):
  sorted    by ts (a resent duplicate comes after its first copy)
  shuffled  each event displaced by at most half the smallest `lateness` of
            the hunts with state (so no event arrives after one whose ts is
            more than `lateness` ahead of it: real time must be exact)
  late      like shuffled, but a fifth of the events arrive up to 3 days late
  random    any order
Everything is a function of --seed (and --now).
"""
import argparse
import datetime as dt
import functools
import json
import math
import os
import random
import sys
import zoneinfo

MIN = 60000
HOUR = 3600000
DAY = 86400000
PARIS = "Europe/Paris"
NEWYORK = "America/New_York"
SOURCES = ["web", "mobile", "game", "partner", "load"]


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ms, offset_min):
    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    d = dt.datetime.fromtimestamp(ms // 1000, tz).replace(microsecond=(ms % 1000) * 1000)
    s = d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000)
    if offset_min == 0:
        return s + "Z"
    sign = "+" if offset_min > 0 else "-"
    o = abs(offset_min)
    return s + "%s%02d:%02d" % (sign, o // 60, o % 60)


def local_ms(zone, date, h, m, s=0, fold=0):
    d = dt.datetime(date.year, date.month, date.day, h, m, s, tzinfo=zoneinfo.ZoneInfo(zone), fold=fold)
    return int(round(d.timestamp() * 1000))


def local_date(zone, ms):
    return dt.datetime.fromtimestamp(ms // 1000, zoneinfo.ZoneInfo(zone)).date()


def transitions(zone, t0, t1):
    """Instants (ms) in [t0, t1] where the UTC offset of zone changes."""
    tz = zoneinfo.ZoneInfo(zone)

    def off(ms):
        return dt.datetime.fromtimestamp(ms / 1000, tz).utcoffset()

    out = []
    t = t0
    while t < t1:
        if off(t) != off(t + HOUR):
            lo, hi = t, t + HOUR  # offset(lo) != offset(hi): find the first ms of the new offset
            while hi - lo > 1000:
                mid = (lo + hi) // 2 // 1000 * 1000
                if mid <= lo:
                    break
                if off(mid) == off(lo):
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += HOUR
    return out


# --------------------------------------------------------------------------
# hunts


def hunt_files(now):
    eff_v1 = now - 340 * DAY
    eff_v2 = now - 8 * DAY
    end_v2 = now - 1 * DAY
    return {
        "city-quest-v1.yaml": f"""# city-quest, version 1 (oracle stories): Paris time, every rule kind.
hunt: city-quest
version: 1
effective: {iso(eff_v1)}
timezone: {PARIS}
lateness: 1h
rules:
  - {{id: daily-checkin, kind: each, match: {{type: checkin}}, coins: 1, cap: {{max: 1, per: day}}}}
  - {{id: photo, kind: each, match: {{type: photo}}, coins: 2, cooldown: 30m}}
  - {{id: quiz, kind: each, match: {{type: quiz, source: [web, mobile]}}, coins: 3, cap: {{max: 2, per: week}}, cooldown: 10m}}
  - {{id: review, kind: each, match: {{type: review}}, coins: 4, cap: {{max: 1, per: month}}}}
  - {{id: explorer, kind: count, match: {{type: visit}}, distinct: zone, count: 3, coins: 10, repeat: true}}
  - {{id: sharer, kind: count, match: {{type: share}}, count: 4, coins: 6}}
  - id: golden-path
    kind: sequence
    within: 2h
    coins: 50
    repeat: true
    steps:
      - {{type: scan, attrs: {{clue: A}}}}
      - {{type: scan, attrs: {{clue: B}}}}
      - {{type: purchase, source: partner}}
  - {{id: walker, kind: streak, match: {{type: play}}, days: 3, coins: 25, repeat: true}}
  - {{id: big-spender, kind: each, match: {{type: purchase, where: [{{attr: amount, op: ">=", value: 100}}]}}, coins: 5}}
""",
        "city-quest-v2.yaml": f"""# city-quest, version 2: from {iso(eff_v2)} (most events of the stories are
# later), ends {iso(end_v2)}: new values, big-spender needs > 150.
hunt: city-quest
version: 2
effective: {iso(eff_v2)}
timezone: {PARIS}
end: {iso(end_v2)}
lateness: 1h
rules:
  - {{id: daily-checkin, kind: each, match: {{type: checkin}}, coins: 2, cap: {{max: 1, per: day}}}}
  - {{id: photo, kind: each, match: {{type: photo}}, coins: 2, cooldown: 30m}}
  - {{id: quiz, kind: each, match: {{type: quiz, source: [web, mobile]}}, coins: 3, cap: {{max: 2, per: week}}, cooldown: 10m}}
  - {{id: review, kind: each, match: {{type: review}}, coins: 4, cap: {{max: 1, per: month}}}}
  - {{id: explorer, kind: count, match: {{type: visit}}, distinct: zone, count: 3, coins: 12, repeat: true}}
  - {{id: sharer, kind: count, match: {{type: share}}, count: 4, coins: 6}}
  - id: golden-path
    kind: sequence
    within: 2h
    coins: 60
    repeat: true
    steps:
      - {{type: scan, attrs: {{clue: A}}}}
      - {{type: scan, attrs: {{clue: B}}}}
      - {{type: purchase, source: partner}}
  - {{id: walker, kind: streak, match: {{type: play}}, days: 3, coins: 25, repeat: true}}
  - {{id: big-spender, kind: each, match: {{type: purchase, where: [{{attr: amount, op: ">", value: 150}}]}}, coins: 5}}
""",
        "harbor-fest.yaml": f"""# harbor-fest (oracle stories): New York time, a window.
hunt: harbor-fest
version: 1
effective: {iso(eff_v1)}
timezone: {NEWYORK}
start: {iso(harbor_start(now))}
end: {iso(now - 3 * DAY)}
lateness: 30m
rules:
  - {{id: harbor-pass, kind: each, match: {{type: checkin}}, coins: 2, cap: {{max: 5, per: hunt}}}}
  - id: ferry
    kind: sequence
    within: 1h
    coins: 40
    steps:
      - {{type: ticket, source: partner}}
      - {{type: ride, source: [game, mobile]}}
  - {{id: lighthouse, kind: streak, match: {{type: climb}}, days: 4, coins: 30}}
  - {{id: shells, kind: count, match: {{type: collect, attrs: {{kind: [shell, pearl]}}}}, count: 3, coins: 8, repeat: true}}
  - {{id: night-market, kind: each, match: {{type: purchase}}, coins: 3, cap: {{max: 2, per: day}}, cooldown: 20m}}
  - {{id: weekly-visit, kind: each, match: {{type: visit}}, coins: 5, cap: {{max: 1, per: week}}}}
""",
        "gift-shop.yaml": f"""# gift-shop (oracle stories): UTC, default lateness, no state at all.
hunt: gift-shop
version: 1
effective: {iso(eff_v1)}
rules:
  - {{id: souvenir, kind: each, match: {{type: souvenir}}, coins: 3}}
  - {{id: vip, kind: each, match: {{type: souvenir, attrs: {{vip: true}}}}, coins: 2}}
  - {{id: donation, kind: each, match: {{type: donate, where: [{{attr: amount, op: ">=", value: 20}}]}}, coins: 7}}
  - {{id: lucky, kind: each, match: {{type: spin, where: [{{attr: amount, op: "==", value: 7}}]}}, coins: 7}}
  - {{id: spin, kind: each, match: {{type: spin, where: [{{attr: amount, op: "!=", value: 7}}, {{attr: amount, op: "<=", value: 100}}]}}, coins: 1}}
""",
    }


@functools.lru_cache(maxsize=None)
def last_transition(zone, now):
    tr = transitions(zone, now - 330 * DAY, now - 5 * DAY)
    return tr[-1] if tr else None


@functools.lru_cache(maxsize=None)
def harbor_start(now):
    t = last_transition(NEWYORK, now)
    s = now - 15 * DAY
    if t is not None:
        s = min(s, (t - 4 * DAY) // DAY * DAY)
    return s


# --------------------------------------------------------------------------
# stories


class Gen:
    def __init__(self, rng, now, user):
        self.rng = rng
        self.now = now
        self.user = user
        self.evs = []  # (event dict, resend delay or None)
        self.n = 0
        self.story = None
        self.v2 = now - 8 * DAY
        self.end_v2 = now - 1 * DAY
        self.h_start = harbor_start(now)
        self.h_end = now - 3 * DAY

    def ev(self, typ, ts, source=None, **attrs):
        self.n += 1
        src = source or self.rng.choice(SOURCES)
        a = dict(attrs)
        a["story"] = self.story
        e = {"source": src, "id": "%s.%03d" % (self.user, self.n), "user": self.user,
             "type": typ, "ts": int(ts), "attrs": a}
        self.evs.append([e, None])
        return e

    def undo(self, target, ts, source=None):
        e = self.ev("undo", ts, source)
        e["attrs"] = {"target_source": target["source"], "target_id": target["id"]}
        return e

    def resend(self, e, delay):
        self.evs.append([dict(e), delay])

    # a random local day well inside the city-quest (Paris) windows
    def paris_day(self, lo=3, hi=17):
        return local_date(PARIS, self.now - self.rng.randint(lo, hi) * DAY)

    def ny_day(self, lo=5, hi=12):
        return local_date(NEWYORK, self.now - self.rng.randint(lo, hi) * DAY)

    def rand_ts(self, lo=18 * DAY, hi=HOUR):
        return self.now - self.rng.randint(hi, lo)


def s_cap_midnight(g):
    d = g.paris_day()
    n = d + dt.timedelta(days=1)
    for date, h, m in ((d, 23, 40), (d, 23, 55), (n, 0, 5), (n, 0, 20), (n, 12, 0)):
        g.ev("checkin", local_ms(PARIS, date, h, m))


def s_cap_dst(g):
    t = last_transition(PARIS, g.now)
    d = local_date(PARIS, t)
    n = d + dt.timedelta(days=1)
    g.ev("checkin", local_ms(PARIS, d, 0, 30))
    g.ev("checkin", local_ms(PARIS, d, 23, 30))
    g.ev("checkin", local_ms(PARIS, n, 0, 10))
    # photos (cooldown 30 min) around the change itself, in absolute time
    for off in (-50, -25, 5, 20, 40):
        g.ev("photo", t + off * MIN + g.rng.randint(0, 999))
    # the quiz's week (Monday first) starts at local midnight after the change (a Sunday)
    g.ev("quiz", local_ms(PARIS, d, 23, 20), g.rng.choice(["web", "mobile"]))
    g.ev("quiz", local_ms(PARIS, d, 23, 45), g.rng.choice(["web", "mobile"]))
    g.ev("quiz", local_ms(PARIS, n, 0, 15), g.rng.choice(["web", "mobile"]))


def s_cap_dst_ny(g):
    t = last_transition(NEWYORK, g.now)
    d = local_date(NEWYORK, t)
    n = d + dt.timedelta(days=1)
    for date, h, m in ((d, 0, 30), (d, 23, 30), (n, 0, 10), (n, 1, 10)):
        g.ev("purchase", local_ms(NEWYORK, date, h, m), amount=g.rng.choice([5, 50, 120]))
    g.ev("visit", local_ms(NEWYORK, d, 23, 50), zone="A")
    g.ev("visit", local_ms(NEWYORK, n, 0, 20), zone="B")
    # around the change instant: cooldown 20 min in absolute time
    for off in (-30, -15, 10, 25):
        g.ev("purchase", t + off * MIN, amount=1)


def s_week_cap(g):
    d = g.paris_day(4, 16)
    sunday = d - dt.timedelta(days=(d.weekday() + 1) % 7)
    if (g.now - local_ms(PARIS, sunday, 0, 0)) > 17 * DAY:
        sunday += dt.timedelta(days=7)
    mon = sunday + dt.timedelta(days=1)
    wed = sunday + dt.timedelta(days=3)
    wm = lambda: g.rng.choice(["web", "mobile"])
    g.ev("quiz", local_ms(PARIS, sunday, 22, 0), wm())
    g.ev("quiz", local_ms(PARIS, sunday, 23, 30), wm())
    g.ev("quiz", local_ms(PARIS, mon, 0, 10), wm())
    g.ev("quiz", local_ms(PARIS, mon, 0, 15), wm())   # cooldown 10 min
    g.ev("quiz", local_ms(PARIS, mon, 0, 25), "game")  # wrong source
    g.ev("quiz", local_ms(PARIS, mon, 0, 40), wm())
    g.ev("quiz", local_ms(PARIS, wed, 10, 0), wm())    # week's cap reached


def s_midnight_exact(g):
    # 1 ms before local midnight and local midnight itself: two days
    d = g.paris_day()
    n = d + dt.timedelta(days=1)
    m = local_ms(PARIS, n, 0, 0)
    g.ev("checkin", m - 1)
    g.ev("checkin", m)
    g.ev("checkin", m + 1)
    dn = g.ny_day()
    mn = local_ms(NEWYORK, dn + dt.timedelta(days=1), 0, 0)
    g.ev("purchase", mn - 1, "web", amount=5)
    g.ev("purchase", mn + 20 * MIN, "web", amount=5)   # cooldown 20 min: exactly
    g.ev("purchase", mn + 40 * MIN, "web", amount=5)   # cap 2 of the new day
    g.ev("play", m - 1)
    g.ev("play", m)


def s_month_cap(g):
    # the latest first-of-month (Paris) between 55 and 2 days ago
    d = local_date(PARIS, g.now - 2 * DAY)
    first = d.replace(day=1)
    if local_ms(PARIS, first, 0, 0) < g.now - 55 * DAY:
        first = d
    last = first - dt.timedelta(days=1)
    g.ev("review", local_ms(PARIS, last, 12, 0))
    g.ev("review", local_ms(PARIS, last, 23, 50))
    g.ev("review", local_ms(PARIS, first, 0, 10))
    g.ev("review", local_ms(PARIS, first, 0, 20))


def s_cooldown(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    for off in (0, 10, 31, 50, 62, 200):
        g.ev("photo", t + off * MIN)


def s_cooldown_edge(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    for off in (0, 30 * MIN - 1, 30 * MIN, 45 * MIN, 60 * MIN + 1):
        g.ev("photo", t + off)


def s_distinct(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    zones = ["A", "A", "B", "A", "C", "D", "D", "B", None, "E", "F"]
    for z in zones:
        t += g.rng.randint(1, 90) * MIN
        if z is None:
            g.ev("visit", t)
        else:
            g.ev("visit", t, zone=z)


def s_count_plain(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    for _ in range(6):
        t += g.rng.randint(1, 300) * MIN
        g.ev("share", t)


def seq(g, t, a=True, b=True, p=True, psrc="partner", gaps=(10, 10)):
    out = []
    if a:
        out.append(g.ev("scan", t, clue="A"))
    if b:
        out.append(g.ev("scan", t + gaps[0] * MIN, clue="B"))
    if p:
        out.append(g.ev("purchase", t + (gaps[0] + gaps[1]) * MIN, psrc, amount=g.rng.choice([20, 100, 160])))
    return out


def s_seq_clean(g):
    seq(g, g.rand_ts(17 * DAY, 3 * HOUR), gaps=(g.rng.randint(1, 50), g.rng.randint(1, 60)))


def s_seq_slow(g):
    t = g.rand_ts(17 * DAY, 6 * HOUR)
    seq(g, t, gaps=(60, 61))              # last - first = 2 h 1 min: too slow
    seq(g, t + 3 * HOUR, gaps=(5, 5))     # then a clean one


def s_seq_edge(g):
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    seq(g, t, gaps=(70, 50))              # last - first = exactly `within`


def s_seq_order(g):
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    g.ev("scan", t, clue="B")
    g.ev("scan", t + 5 * MIN, clue="A")
    g.ev("purchase", t + 10 * MIN, "partner", amount=30)
    g.ev("scan", t + 15 * MIN, clue="B")
    g.ev("purchase", t + 20 * MIN, "partner", amount=30)


def s_seq_source(g):
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    seq(g, t, psrc="web")
    g.ev("purchase", t + 30 * MIN, "partner", amount=101)


def s_seq_incomplete(g):
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    if g.rng.random() < 0.5:
        seq(g, t, p=False)
    else:
        seq(g, t, a=False)


def s_seq_repeat(g):
    t = g.rand_ts(17 * DAY, 8 * HOUR)
    seq(g, t)
    seq(g, t + 3 * HOUR)
    seq(g, t + 5 * HOUR, gaps=(1, 1))


def s_seq_restart(g):
    # A B A P: does the second A throw away the partial A B (docs: the
    # partial with the latest start is kept, the first completion wins)?
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    g.ev("scan", t, clue="A")
    g.ev("scan", t + 10 * MIN, clue="B")
    g.ev("scan", t + 20 * MIN, clue="A")
    g.ev("purchase", t + 30 * MIN, "partner", amount=10)
    g.ev("scan", t + 40 * MIN, clue="B")
    g.ev("purchase", t + 50 * MIN, "partner", amount=10)


def s_seq_tie(g):
    # equal ts: (source, id) decides the order
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    g.ev("scan", t, "mobile", clue="A")
    g.ev("scan", t, "web", clue="B")
    g.ev("purchase", t + MIN, "partner", amount=10)
    t2 = t + 3 * HOUR
    g.ev("scan", t2, "web", clue="A")
    g.ev("scan", t2, "game", clue="B")   # game < web: B plays before A
    g.ev("purchase", t2 + MIN, "partner", amount=10)


def s_tie_ids(g):
    # equal ts and source: the id decides, compared as bytes ("t10" < "t9")
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    b = g.ev("scan", t, "web", clue="B")
    a = g.ev("scan", t, "web", clue="A")
    a["id"], b["id"] = g.user + ".t9", g.user + ".t10"   # B plays first: no step 2
    g.ev("purchase", t + MIN, "partner", amount=10)
    d = local_date(PARIS, t + 2 * DAY)
    t2 = local_ms(PARIS, d, 12, 0)
    c1 = g.ev("checkin", t2, "mobile")
    c2 = g.ev("checkin", t2, "mobile")
    c1["id"], c2["id"] = g.user + ".c9", g.user + ".c10"  # c10 takes the day's slot
    t3 = t + 5 * HOUR
    for i, z in ((9, "K"), (10, "L"), (11, "M")):       # count: provenance in byte order
        e = g.ev("visit", t3, "game", zone=z)
        e["id"] = "%s.v%d" % (g.user, i)


def s_burst(g):
    # many events within lateness: the buffer replays them all (at most 64)
    t = g.rand_ts(17 * DAY, 3 * HOUR)
    for i in range(44):
        typ = g.rng.choice(["checkin", "photo", "visit", "scan", "share", "play"])
        a = {}
        if typ == "visit":
            a["zone"] = g.rng.choice("ABCDEF")
        if typ == "scan":
            a["clue"] = g.rng.choice("AB")
        g.ev(typ, t + g.rng.randint(0, 25 * MIN), **a)


def s_streak_midnight(g):
    d = g.paris_day(5, 16)
    days = [d + dt.timedelta(days=i) for i in range(6)]
    g.ev("play", local_ms(PARIS, days[0], 23, 30))
    g.ev("play", local_ms(PARIS, days[1], 0, 30))
    g.ev("play", local_ms(PARIS, days[1], 9, 0))
    g.ev("play", local_ms(PARIS, days[2], 20, 0))  # 3rd day: award
    for i in (3, 4, 5):
        g.ev("play", local_ms(PARIS, days[i], g.rng.randint(0, 23), g.rng.randint(0, 59)))


def s_streak_gap(g):
    d = g.paris_day(6, 16)
    for i in (0, 1, 3, 4, 5):
        g.ev("play", local_ms(PARIS, d + dt.timedelta(days=i), g.rng.randint(0, 23), 5))


def s_streak_dst(g):
    t = last_transition(PARIS, g.now)
    d = local_date(PARIS, t)
    g.ev("play", local_ms(PARIS, d - dt.timedelta(days=1), 23, 59))
    g.ev("play", local_ms(PARIS, d, 0, 1))
    g.ev("play", local_ms(PARIS, d, 23, 59))
    g.ev("play", local_ms(PARIS, d + dt.timedelta(days=1), 23, 59))
    tn = last_transition(NEWYORK, g.now)
    dn = local_date(NEWYORK, tn)
    for i in range(-2, 3):
        g.ev("climb", local_ms(NEWYORK, dn + dt.timedelta(days=i), 23, 55 if i % 2 else 0))


def s_where(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    for amt in (99.99, 100, 100.0, 150, 150.5, 200, None):
        t += g.rng.randint(1, 30) * MIN
        if amt is None:
            g.ev("purchase", t, "web")
        else:
            g.ev("purchase", t, "web", amount=amt)
    for amt in (19.99, 20, 25):
        t += g.rng.randint(1, 30) * MIN
        g.ev("donate", t, amount=amt)
    for amt in (7, 7.0, 8, 100, 101, -3):
        t += g.rng.randint(1, 30) * MIN
        g.ev("spin", t, amount=amt)


def s_undo_count(g):
    t = g.rand_ts(17 * DAY, 4 * HOUR)
    g.ev("visit", t, zone="A")
    b = g.ev("visit", t + 5 * MIN, zone="B")
    g.ev("visit", t + 10 * MIN, zone="C")
    g.undo(b, t + 15 * MIN)
    g.ev("visit", t + 20 * MIN, zone="D")
    g.ev("visit", t + 25 * MIN, zone="E")


def s_undo_seq(g):
    t = g.rand_ts(17 * DAY, 4 * HOUR)
    _, b, _ = seq(g, t)
    g.undo(b, t + 30 * MIN)
    g.ev("scan", t + 40 * MIN, clue="B")
    g.ev("purchase", t + 50 * MIN, "partner", amount=60)


def s_undo_streak(g):
    d = g.paris_day(5, 16)
    g.ev("play", local_ms(PARIS, d, 10, 0))
    mid = g.ev("play", local_ms(PARIS, d + dt.timedelta(days=1), 10, 0))
    g.undo(mid, mid["ts"] + 5 * MIN)
    g.ev("play", local_ms(PARIS, d + dt.timedelta(days=2), 10, 0))
    g.ev("play", local_ms(PARIS, d + dt.timedelta(days=3), 10, 0))


def s_undo_before(g):
    # the undo's ts is before its target's: it arrives first even sorted
    t = g.rand_ts(17 * DAY, 2 * DAY)
    g.ev("checkin", t - 3 * HOUR)
    target = g.ev("checkin", t)
    g.undo(target, t - 2000)
    g.ev("visit", t + MIN, zone="A")
    target2 = g.ev("visit", t + 3 * MIN, "game", zone="B")
    g.undo(target2, t + 2 * MIN)
    g.ev("visit", t + 4 * MIN, zone="C")


def s_undo_late(g):
    # targets only stateless rules score: the ledger revokes their coins exactly
    t = g.rand_ts(17 * DAY, 3 * DAY)
    a = g.ev("souvenir", t, vip=True)
    b = g.ev("donate", t + MIN, amount=50)
    g.ev("souvenir", t + 2 * MIN)
    g.undo(a, t + 2 * DAY)
    g.undo(b, t + 2 * DAY + MIN)


def s_undo_old(g):
    # a refund two days later, of events that held a cap slot and a count:
    # real time revokes the coins citing them; the rest (the slot and the
    # count going to later events) is the reconciler's (docs/events.md)
    d = g.paris_day(5, 16)
    first = g.ev("checkin", local_ms(PARIS, d, 9, 0))
    g.ev("checkin", local_ms(PARIS, d, 18, 0))
    t = local_ms(PARIS, d, 10, 0)
    g.ev("visit", t, zone="A")
    b = g.ev("visit", t + 5 * MIN, zone="B")
    g.ev("visit", t + 10 * MIN, zone="C")
    g.ev("visit", t + 15 * MIN, zone="D")
    g.undo(first, t + 2 * DAY)
    g.undo(b, t + 2 * DAY + MIN)


def s_dup(g):
    t = g.rand_ts(17 * DAY, 6 * HOUR)
    a = g.ev("checkin", t)
    b = g.ev("souvenir", t + 10 * MIN)
    c = g.ev("visit", t + 20 * MIN, zone="Q")
    g.resend(a, g.rng.randint(1, 300) * MIN)
    g.resend(b, g.rng.randint(1, 5) * MIN)
    g.resend(c, 2 * MIN)


def s_dup_conflict(g):
    # the same (source, id) sent again with other content: the first accepted counts
    t = g.rand_ts(17 * DAY, 6 * HOUR)
    a = g.ev("souvenir", t, vip=True)
    other = dict(a)
    other["type"] = "donate"
    other["attrs"] = {"amount": 99, "story": g.story}
    other["ts"] = t + 30 * MIN
    g.evs.append([other, 0])


def s_window(g):
    # harbor-fest: before start, after end; city-quest v2 after its end
    g.ev("checkin", g.h_start - HOUR)
    g.ev("checkin", g.h_start - 2 * DAY)
    g.ev("checkin", g.h_end + HOUR)
    g.ev("ticket", g.h_end + 2 * HOUR, "partner")
    g.ev("ride", g.h_end + 2 * HOUR + 10 * MIN, "game")
    g.ev("checkin", g.end_v2 + 2 * HOUR)
    g.ev("play", g.end_v2 + 3 * HOUR)
    seq(g, g.end_v2 + 4 * HOUR)


def s_window_edge(g):
    g.ev("checkin", g.h_start)            # start is in the window
    g.ev("checkin", g.h_start - 1)
    g.ev("checkin", g.h_end - 1)
    g.ev("checkin", g.h_end)              # end is not
    g.ev("review", g.end_v2 - 1)
    g.ev("review", g.end_v2)


def s_version(g):
    e = g.v2
    g.ev("visit", e - 2 * HOUR, zone="A")
    g.ev("visit", e - HOUR, zone="B")
    g.ev("visit", e + 30 * MIN, zone="C")   # completes under version 2
    seq(g, e - 20 * MIN, gaps=(10, 15))
    g.ev("purchase", e - 5 * HOUR, "web", amount=120)   # v1: >= 100
    g.ev("purchase", e + 5 * HOUR, "web", amount=120)   # v2: > 150 only


def s_version_cap(g):
    e = g.v2
    g.ev("checkin", e - 1000)      # v1, same Paris day as the next ones
    g.ev("checkin", e)             # effective is inclusive: v2
    g.ev("checkin", e + HOUR)
    d = local_date(PARIS, e) + dt.timedelta(days=1)
    g.ev("checkin", local_ms(PARIS, d, 8, 0))


def s_hunt_cap(g):
    t = g.h_start + DAY
    for _ in range(7):
        t += g.rng.randint(HOUR, DAY)
        g.ev("checkin", min(t, g.h_end - HOUR))


def s_ferry(g):
    d = g.ny_day()
    t = local_ms(NEWYORK, d, 22, g.rng.randint(0, 59))
    g.ev("ticket", t, "web")                 # wrong source: no start
    g.ev("ride", t + 5 * MIN, "game")
    g.ev("ticket", t + 10 * MIN, "partner")
    g.ev("ride", t + 15 * MIN, "web")        # wrong source
    g.ev("ride", t + 70 * MIN + 1, "mobile")  # too late
    g.ev("ticket", t + 80 * MIN, "partner")
    g.ev("ride", t + 100 * MIN, "mobile")    # completes
    g.ev("ticket", t + 110 * MIN, "partner")  # no repeat
    g.ev("ride", t + 115 * MIN, "game")


def s_night_market(g):
    d = g.ny_day()
    n = d + dt.timedelta(days=1)
    for date, h, m in ((d, 23, 30), (d, 23, 45), (d, 23, 55), (n, 0, 10), (n, 0, 20), (n, 0, 50), (n, 12, 0)):
        g.ev("purchase", local_ms(NEWYORK, date, h, m), g.rng.choice(["web", "mobile"]), amount=g.rng.randint(1, 300))


def s_lighthouse(g):
    d = g.ny_day(5, 10)
    for i in range(6):
        g.ev("climb", local_ms(NEWYORK, d + dt.timedelta(days=i), 23 if i % 2 else 0, 50 if i % 2 else 10))


def s_shells(g):
    t = local_ms(NEWYORK, g.ny_day(), 9, 0)
    for k in ("shell", "rock", "pearl", "shell", "pearl", "shell", "rock", "pearl"):
        t += g.rng.randint(1, 60) * MIN
        g.ev("collect", t, kind=k)


def s_weekly_visit(g):
    d = g.ny_day(5, 11)
    sunday = d - dt.timedelta(days=(d.weekday() + 1) % 7)
    if local_ms(NEWYORK, sunday, 0, 0) < g.h_start + DAY:
        sunday += dt.timedelta(days=7)
    mon = sunday + dt.timedelta(days=1)
    g.ev("visit", local_ms(NEWYORK, sunday, 23, 30), zone="N")
    g.ev("visit", local_ms(NEWYORK, mon, 0, 30), zone="N")
    g.ev("visit", local_ms(NEWYORK, mon, 20, 30), zone="S")


def s_vip(g):
    t = g.rand_ts(17 * DAY, 2 * DAY)
    g.ev("souvenir", t, vip=True)
    g.ev("souvenir", t + MIN, vip=False)
    g.ev("souvenir", t + 2 * MIN, vip="yes")
    g.ev("souvenir", t + 3 * MIN)


STORIES = {n[2:]: f for n, f in sorted(globals().items()) if n.startswith("s_") and callable(f)}

NOISE_TYPES = ["checkin", "photo", "quiz", "review", "visit", "share", "scan", "purchase", "play",
               "ticket", "ride", "climb", "collect", "souvenir", "donate", "spin", "browse"]


def noise(g):
    typ = g.rng.choice(NOISE_TYPES)
    t = g.rand_ts()
    a = {}
    if typ == "visit":
        a["zone"] = g.rng.choice("ABCDEFG")
    elif typ == "scan":
        a["clue"] = g.rng.choice("ABC")
    elif typ in ("purchase", "donate", "spin"):
        a["amount"] = g.rng.choice([1, 7, 15, 20, 99.5, 100, 151, 300])
    elif typ == "collect":
        a["kind"] = g.rng.choice(["shell", "pearl", "rock"])
    elif typ == "souvenir" and g.rng.random() < 0.3:
        a["vip"] = True
    src = None
    if typ in ("quiz",):
        src = g.rng.choice(["web", "mobile", "game"])
    if typ in ("purchase", "ticket"):
        src = g.rng.choice(["partner", "partner", "web"])
    g.ev(typ, t, src, **a)


def generate(seed, users, now, per_user_stories=3, per_user_noise=7):
    rng = random.Random(seed)
    plan = {}
    records = []  # [event, resend delay]
    names = sorted(STORIES)
    stride = next(k for k in range(7, 100) if math.gcd(k, len(names)) == 1)
    for i in range(users):
        user = "u%d-%04d" % (seed, i)
        g = Gen(random.Random(rng.random()), now, user)
        k = max(0, per_user_stories + rng.choice([-1, 0, 0, 1]))
        chosen = [names[(i * stride) % len(names)] if j == 0 else rng.choice(names) for j in range(k)]
        plan[user] = chosen
        for s in chosen:
            g.story = s
            STORIES[s](g)
        g.story = "noise"
        for _ in range(per_user_noise + rng.randint(-2, 2)):
            noise(g)
        records.extend(g.evs)
    # every ts must stay in the past (docs/events.md: at most 300 s ahead of the clock)
    for e, _ in records:
        if e["ts"] > now - HOUR:
            e["ts"] = now - HOUR - rng.randint(0, 1000)
    return plan, records


def min_lateness_ms():
    return 30 * MIN  # harbor-fest (city-quest 1h; gift-shop and demo keep no state)


def arrange(records, order, rng):
    lat = int(min_lateness_ms() * 0.5)
    keyed = []
    for i, (e, delay) in enumerate(records):
        base = e["ts"] + (delay or 0)
        if order == "sorted":
            k = base
        elif order == "shuffled":
            k = base + rng.randint(0, lat)
        elif order == "late":
            k = base + (rng.randint(0, 3 * DAY) if rng.random() < 0.2 else rng.randint(0, lat))
        elif order == "random":
            k = rng.random()
        else:
            raise ValueError(order)
        if delay is not None and order != "random":
            k += 1  # a resend never overtakes the first copy's own slot
        keyed.append((k, i, e))
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in keyed]


def encode(e, seed):
    # the same event is written the same way in every order
    rng = random.Random("%d/%s/%s/%s" % (seed, e["source"], e["id"], e["type"]))
    e = dict(e)
    r = rng.random()
    if r < 0.15:
        e["ts"] = iso_ms(e["ts"], 0)
    elif r < 0.25:
        e["ts"] = iso_ms(e["ts"], rng.choice([60, 120, -300, -240, 330]))
    return json.dumps(e, separators=(",", ":"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--out", required=True)
    ap.add_argument("--order", choices=["sorted", "shuffled", "late", "random"], default="sorted")
    ap.add_argument("--now", type=int, help="epoch ms (default: now rounded down to the UTC day)")
    ap.add_argument("--stories", type=int, default=3, help="stories per user (about)")
    ap.add_argument("--noise", type=int, default=7, help="random events per user (about)")
    a = ap.parse_args(argv)
    now = a.now
    if now is None:
        import time
        now = int(time.time()) // 86400 * 86400 * 1000
    plan, records = generate(a.seed, a.users, now, a.stories, a.noise)
    rng = random.Random(a.seed * 1000003 + {"sorted": 1, "shuffled": 2, "late": 3, "random": 4}[a.order])
    events = arrange(records, a.order, rng)
    os.makedirs(os.path.join(a.out, "rules"), exist_ok=True)
    for name, text in hunt_files(now).items():
        with open(os.path.join(a.out, "rules", name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(a.out, "events.ndjson"), "w", encoding="utf-8") as f:
        for e in events:
            f.write(encode(e, a.seed) + "\n")
    with open(os.path.join(a.out, "users.txt"), "w", encoding="utf-8") as f:
        for u in sorted(plan):
            f.write(u + "\n")
    with open(os.path.join(a.out, "stories.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": a.seed, "now": now, "order": a.order, "users": plan}, f, indent=0, sort_keys=True)
    print("stories: %d users, %d events (%s) in %s" % (len(plan), len(events), a.order, a.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
