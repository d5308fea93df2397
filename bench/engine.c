/*  bench-engine - the cost of the rules engine alone (trove_engine_score),
    with no sockets, no disk and no ledger: what one scorer thread can do at
    most, and how much state it keeps per user.

    Rules: 5 hunts (hunt-0..hunt-4, Europe/Paris, lateness 10m) of 10 rules
    each, every kind and option: two uncapped `each`, `each` with a cap per
    day, a cap per week, a 30 s cooldown (and a source), a numeric `where`;
    a `count` of 5, a `count` of 3 distinct zones with repeat, a 3-step
    `sequence` within 1h (repeat, so it keeps working all week instead of
    finishing early and flattering the numbers), a 3-day `streak`. The hunts
    use the same rules over 8 event types rotated by one per hunt, so an
    event matches about two rules of each hunt.

    Events: --events N for --users U, in sessions (a few events 5 s to 3 min
    apart) spread over 7 days from Thursday 2026-03-05 UTC, so local days,
    a Monday and streaks roll over. --late PCT of them (default 20) arrive
    after the user's next event, at most 5 minutes later in event time, well
    within lateness: the engine buffers and replays them. All events are made
    before the clock starts.

    Measured, each call of trove_engine_score timed on the monotonic clock
    (about 30 ns of clock per call on a TSC clocksource):
      1. stateful: the 50 rules above, state in one trove_memstore behind a
         probe that forwards get/put and records the largest entry written
         (the memstore's key formatting, lookup and copy are included; the
         scorer's LMDB costs differ). At the end every entry is read back
         and unpacked to show where its bytes are: checkpoint (rule states),
         buffer (events within lateness) and tail (coins those earned);
      2. baseline: the same 50 matches as uncapped `each` rules (the
         sequence's first step for the sequence), which keep no state: the
         ratio of the two is what state, buffering and replay cost;
      3. boundedness: another N/2 events for the same users a week after
         phase 1 ends; bytes of state per user must not follow the events.
    The change callback only counts mints and revocations (per rule too).
    Revocations come from late events only: with --late 0 there must be none,
    and the live coins per rule must be the same as with any other --late
    (same seed, same events): the engine converges to event-time order.

    Usage: bench-engine [--events N] [--users U] [--seed S] [--late PCT]
    Defaults: 1,000,000 events, 10,000 users, seed 1, 20 % late. Prints a
    human-readable block and a last line of JSON. Rule files are written to a
    temporary directory under $TMPDIR (default /tmp), loaded and removed before
    anything is timed (trove_rules_load_text takes a single hunt). */
#include "trove_engine.h"
#include "trove_rules.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HUNTS 5
#define RULES 10
#define TYPES 8
#define ATTRS 3
#define DAY_MS 86400000LL
//  Thursday 2026-03-05T00:00:00Z: the first week has a Monday in it.
#define T0_MS 1772668800000LL
#define SPAN_MS (7 * DAY_MS)
//  A late event is swapped with the user's next event only when that one is
//  at most this much later: late, but well within the 10 min lateness.
#define SWAP_MAX_MS (5 * 60000LL)

//  Event types and how often each occurs (percent). Hunt h sees type k of
//  the rules as s_types [(k + h) % TYPES], so the hunts differ in load.
static const char *s_types [TYPES] = {"checkin", "visit", "scan", "purchase",
                                      "play",    "share", "quiz", "photo"};
static const int s_type_weight [TYPES] = {20, 18, 15, 10, 12, 8, 9, 8};
static const char *s_zones [6] = {"A", "B", "C", "D", "E", "F"};
static const char *s_clues [2] = {"A", "B"};

//  Each rule twice: as the stateful hunts have it and as the stateless
//  baseline (an uncapped `each` with the same match). $0..$7 are types.
typedef struct {
    const char *stateful;
    const char *baseline;
} s_rule_text_t;

static const s_rule_text_t s_rules [RULES] = {
    {"{id: r0-each, kind: each, match: {type: $0}, coins: 1}",
     "{id: r0-each, kind: each, match: {type: $0}, coins: 1}"},
    {"{id: r1-each-zone, kind: each, match: {type: [$1, $2], attrs: {zone: [A, B, C]}}, coins: 2}",
     "{id: r1-each-zone, kind: each, match: {type: [$1, $2], attrs: {zone: [A, B, C]}}, coins: 2}"},
    {"{id: r2-cap-day, kind: each, match: {type: $3}, coins: 5, cap: {max: 2, per: day}}",
     "{id: r2-cap-day, kind: each, match: {type: $3}, coins: 5}"},
    {"{id: r3-cap-week, kind: each, match: {type: [$4, $5]}, coins: 10, cap: {max: 3, per: week}}",
     "{id: r3-cap-week, kind: each, match: {type: [$4, $5]}, coins: 10}"},
    {"{id: r4-cooldown, kind: each, match: {type: $0, source: mobile}, coins: 1, cooldown: 30s}",
     "{id: r4-cooldown, kind: each, match: {type: $0, source: mobile}, coins: 1}"},
    {"{id: r5-where, kind: each, match: {type: $6, where: [{attr: amount, op: \">=\", value: 100}]}, "
     "coins: 3}",
     "{id: r5-where, kind: each, match: {type: $6, where: [{attr: amount, op: \">=\", value: 100}]}, "
     "coins: 3}"},
    {"{id: r6-count, kind: count, match: {type: $1}, count: 5, coins: 10}",
     "{id: r6-count, kind: each, match: {type: $1}, coins: 10}"},
    {"{id: r7-distinct, kind: count, match: {type: $2}, distinct: zone, count: 3, repeat: true, coins: 15}",
     "{id: r7-distinct, kind: each, match: {type: $2}, coins: 15}"},
    {"{id: r8-sequence, kind: sequence, within: 1h, repeat: true, coins: 50, steps: [{type: $2, attrs: "
     "{clue: "
     "A}}, {type: $4, attrs: {clue: B}}, {type: $7, where: [{attr: amount, op: \">\", value: 50}]}]}",
     "{id: r8-sequence, kind: each, match: {type: $2, attrs: {clue: A}}, coins: 50}"},
    {"{id: r9-streak, kind: streak, match: {type: $3}, days: 3, coins: 20}",
     "{id: r9-streak, kind: each, match: {type: $3}, coins: 20}"},
};

//  One event before it becomes a Trove__Event: small, so that sorting a
//  million of them is quick.
typedef struct {
    int64_t ts;
    uint32_t user;
    uint32_t seq;  //  creation order: makes the sort order total
    uint8_t type, zone, clue, mobile, amount;
} s_gen_t;

//  The events of one phase in delivery order, ready for the engine.
typedef struct {
    size_t n;
    Trove__Event *events;
    Trove__Attr *attrs;  //  ATTRS per event
    Trove__Attr **ptrs;  //  ATTRS per event
    char (*ids) [24];
    size_t late;  //  events delivered after a later event of their user
} s_batch_t;

//  Counts what the engine emits.
typedef struct {
    size_t mints, revokes;
    size_t rule_mints [RULES], rule_revokes [RULES];
} s_tally_t;

//  Forwards to the memstore and records the largest state entry written.
typedef struct {
    trove_store_t inner;
    size_t max_entry;
    size_t gets, puts;
} s_probe_t;

//  What the state holds at the end of a phase, by part.
typedef struct {
    size_t entries, bytes, max_entry;
    size_t checkpoint, buffer, tail;  //  packed bytes of each part
    size_t buffered, coins;           //  events in buffers, coins in tails
    uint64_t digest;                  //  FNV-1a of every entry's bytes, by user and hunt
} s_census_t;

//  Timing of one phase.
typedef struct {
    double seconds;  //  sum of the calls
    double mean_ns, p50_ns, p99_ns, max_ns;
    double cpu_seconds;  //  the thread's CPU time over the phase (not preempted time)
} s_timing_t;

//  CPU time of this thread: on a shared machine the calls' monotonic
//  times include the time other processes had the core; this does not.
static int64_t
s_cpu_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
s_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  splitmix64: cheap, deterministic for a seed.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
s_below (uint64_t *state, uint64_t n)
{
    return s_next (state) % n;
}

//  Uniform in [0, 1).
static double
s_uniform (uint64_t *state)
{
    return (double) (s_next (state) >> 11) / 9007199254740992.0;
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: bench-engine [--events N] [--users U] [--seed S] [--late PCT]\n");
}

//  --------------------------------------------------------------------------
//  Rules

//  The hunt file of hunt h, stateful or baseline. Caller frees.
static char *
s_hunt_text (int h, bool baseline)
{
    size_t size = 8192;
    char *text = malloc (size);
    if (!text)
        return NULL;
    size_t n = (size_t) snprintf (
        text, size, "hunt: hunt-%d\nversion: 1\ntimezone: Europe/Paris\nlateness: 10m\nrules:\n", h);
    for (int r = 0; r < RULES; r++) {
        const char *p = baseline ? s_rules [r].baseline : s_rules [r].stateful;
        n += (size_t) snprintf (text + n, size - n, "  - ");
        for (; *p && n + 64 < size; p++) {
            if (p [0] == '$' && p [1] >= '0' && p [1] < '0' + TYPES) {
                n += (size_t) snprintf (text + n, size - n, "%s", s_types [(p [1] - '0' + h) % TYPES]);
                p++;
            }
            else
                text [n++] = *p;
        }
        n += (size_t) snprintf (text + n, size - n, "\n");
    }
    return text;
}

//  The 5 hunts, through a temporary rules directory: a trove_rules_t holds
//  several hunts only when loaded from one.
static trove_rules_t *
s_rules_load (bool baseline)
{
    const char *base = getenv ("TMPDIR");
    char dir [4096], path [4200];
    snprintf (dir, sizeof dir, "%s/bench-engine.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp (dir)) {
        fprintf (stderr, "bench-engine: mkdtemp: %s\n", strerror (errno));
        return NULL;
    }
    bool ok = true;
    for (int h = 0; h < HUNTS && ok; h++) {
        char *text = s_hunt_text (h, baseline);
        snprintf (path, sizeof path, "%s/hunt-%d.yaml", dir, h);
        FILE *file = text ? fopen (path, "w") : NULL;
        ok = file && fputs (text, file) >= 0;
        if (file && fclose (file))
            ok = false;
        free (text);
    }
    char *err = NULL;
    trove_rules_t *rules = ok ? trove_rules_load_dir (dir, &err) : NULL;
    if (!ok)
        fprintf (stderr, "bench-engine: cannot write rules to %s\n", dir);
    else if (!rules)
        fprintf (stderr, "bench-engine: rules: %s\n", err);
    free (err);
    for (int h = 0; h < HUNTS; h++) {
        snprintf (path, sizeof path, "%s/hunt-%d.yaml", dir, h);
        unlink (path);
    }
    rmdir (dir);
    return rules;
}

//  --------------------------------------------------------------------------
//  Events

static int
s_gen_order (const void *a, const void *b)
{
    const s_gen_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
s_batch_free (s_batch_t *batch)
{
    free (batch->events);
    free (batch->attrs);
    free (batch->ptrs);
    free (batch->ids);
    memset (batch, 0, sizeof *batch);
}

//  n events of users (names) over 7 days from start_ms, in event-time order
//  but for the late ones; event ids continue from *next_id.
static int
s_batch_make (s_batch_t *batch, size_t n, size_t users, char **names, int64_t start_ms, double late,
              uint64_t *rng, size_t *next_id)
{
    memset (batch, 0, sizeof *batch);
    s_gen_t *gen = malloc ((n ? n : 1) * sizeof *gen);
    size_t *next = malloc ((n ? n : 1) * sizeof *next);
    size_t *last = malloc (users * sizeof *last);
    bool *swapped = calloc (n ? n : 1, sizeof *swapped);
    batch->events = malloc ((n ? n : 1) * sizeof *batch->events);
    batch->attrs = malloc ((n ? n : 1) * ATTRS * sizeof *batch->attrs);
    batch->ptrs = malloc ((n ? n : 1) * ATTRS * sizeof *batch->ptrs);
    batch->ids = malloc ((n ? n : 1) * sizeof *batch->ids);
    int rc = -1;
    if (!gen || !next || !last || !swapped || !batch->events || !batch->attrs || !batch->ptrs || !batch->ids)
        goto done;
    //  Sessions: users come back at random times and do a few things in a
    //  row, which is what gives sequences (within 1h) and cooldowns work.
    size_t k = 0;
    for (size_t u = 0; u < users; u++) {
        size_t mine = n / users + (u < n % users);
        while (mine > 0) {
            size_t session = 1 + s_below (rng, 12);
            if (session > mine)
                session = mine;
            int64_t ts = start_ms + (int64_t) s_below (rng, SPAN_MS);
            for (size_t j = 0; j < session; j++) {
                s_gen_t *g = &gen [k];
                g->ts = ts;
                g->user = (uint32_t) u;
                g->seq = (uint32_t) k;
                int pick = (int) s_below (rng, 100), t = 0;
                while (t < TYPES - 1 && pick >= s_type_weight [t])
                    pick -= s_type_weight [t++];
                g->type = (uint8_t) t;
                g->zone = (uint8_t) s_below (rng, 6);
                g->clue = (uint8_t) s_below (rng, 2);
                g->mobile = s_below (rng, 10) < 4;
                g->amount = (uint8_t) (1 + s_below (rng, 200));
                ts += 5000 + (int64_t) s_below (rng, 175000);
                k++;
            }
            mine -= session;
        }
    }
    qsort (gen, n, sizeof *gen, s_gen_order);
    //  Late delivery: swap an event with the same user's next one. Each swap
    //  makes one event late, and takes two out of the draw: late / (1 - late)
    //  of the draws give that share of all events. The last event of a
    //  session has no close neighbour: 2 in 13 (sessions of 6.5 on average).
    for (size_t u = 0; u < users; u++)
        last [u] = SIZE_MAX;
    for (size_t i = n; i-- > 0;) {
        next [i] = last [gen [i].user];
        last [gen [i].user] = i;
    }
    double p = late / (1 - late) / (1 - 2.0 / 13);
    for (size_t i = 0; i < n; i++) {
        size_t j = next [i];
        if (swapped [i] || j == SIZE_MAX || swapped [j] || gen [j].ts - gen [i].ts > SWAP_MAX_MS
            || gen [j].ts == gen [i].ts)
            continue;
        if (s_uniform (rng) >= p)
            continue;
        s_gen_t tmp = gen [i];
        gen [i] = gen [j];
        gen [j] = tmp;
        swapped [i] = swapped [j] = true;
        batch->late++;
    }
    for (size_t i = 0; i < n; i++) {
        const s_gen_t *g = &gen [i];
        Trove__Event *ev = &batch->events [i];
        Trove__Attr *a = &batch->attrs [i * ATTRS];
        Trove__Attr **pa = &batch->ptrs [i * ATTRS];
        trove__event__init (ev);
        //  Ids follow creation, not delivery: the same seed gives the same
        //  events whatever --late, so runs differing in it are comparable.
        snprintf (batch->ids [i], sizeof batch->ids [i], "e%zu", *next_id + g->seq);
        ev->source = g->mobile ? "mobile" : "web";
        ev->id = batch->ids [i];
        ev->user = names [g->user];
        ev->type = (char *) s_types [g->type];
        ev->ts_ms = g->ts;
        for (int q = 0; q < ATTRS; q++) {
            trove__attr__init (&a [q]);
            pa [q] = &a [q];
        }
        a [0].key = "zone";
        a [0].value_case = TROVE__ATTR__VALUE_S;
        a [0].s = (char *) s_zones [g->zone];
        a [1].key = "amount";
        a [1].value_case = TROVE__ATTR__VALUE_N;
        a [1].n = g->amount;
        a [2].key = "clue";
        a [2].value_case = TROVE__ATTR__VALUE_S;
        a [2].s = (char *) s_clues [g->clue];
        ev->n_attrs = ATTRS;
        ev->attrs = pa;
    }
    *next_id += n;
    batch->n = n;
    rc = 0;
done:
    free (gen);
    free (next);
    free (last);
    free (swapped);
    if (rc)
        s_batch_free (batch);
    return rc;
}

//  --------------------------------------------------------------------------
//  Scoring

static int
s_count_change (void *arg, const trove_change_t *change)
{
    s_tally_t *tally = arg;
    //  Rule ids are "rN-...": the digit is the rule's row.
    int r = change->rule [0] == 'r' ? change->rule [1] - '0' : -1;
    if (change->revoke) {
        tally->revokes++;
        if (r >= 0 && r < RULES)
            tally->rule_revokes [r]++;
    }
    else {
        tally->mints++;
        if (r >= 0 && r < RULES)
            tally->rule_mints [r]++;
    }
    return 0;
}

static int
s_probe_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p)
{
    s_probe_t *self = arg;
    self->gets++;
    return self->inner.get (self->inner.arg, user, hunt, data_p, size_p);
}

static int
s_probe_put (void *arg, const char *user, const char *hunt, const void *data, size_t size)
{
    s_probe_t *self = arg;
    self->puts++;
    if (size > self->max_entry)
        self->max_entry = size;
    return self->inner.put (self->inner.arg, user, hunt, data, size);
}

//  Read every (user, hunt) entry back and unpack it: where the bytes are.
static int
s_census_take (trove_memstore_t *mem, char **names, size_t users, s_census_t *census)
{
    memset (census, 0, sizeof *census);
    census->digest = 0xcbf29ce484222325ULL;
    trove_store_t store = trove_memstore_store (mem);
    for (size_t u = 0; u < users; u++)
        for (int h = 0; h < HUNTS; h++) {
            char hunt [24];
            snprintf (hunt, sizeof hunt, "hunt-%d", h);
            const void *data;
            size_t size;
            int got = store.get (store.arg, names [u], hunt, &data, &size);
            if (got < 0)
                return -1;
            if (got)
                continue;
            Trove__HuntState *hs = trove__hunt_state__unpack (NULL, size, data);
            if (!hs) {
                fprintf (stderr, "bench-engine: state of %s/%s does not unpack\n", names [u], hunt);
                return -1;
            }
            census->entries++;
            census->bytes += size;
            //  The same events must leave the same bytes whatever the
            //  engine's internals: a change that keeps coins but not the
            //  stored states shows here.
            census->digest ^= size;
            census->digest *= 0x100000001b3ULL;
            for (size_t b = 0; b < size; b++) {
                census->digest ^= ((const uint8_t *) data) [b];
                census->digest *= 0x100000001b3ULL;
            }
            if (size > census->max_entry)
                census->max_entry = size;
            for (size_t i = 0; i < hs->n_rules; i++)
                census->checkpoint += trove__rule_state__get_packed_size (hs->rules [i]);
            for (size_t i = 0; i < hs->n_buffer; i++)
                census->buffer += trove__buffered_event__get_packed_size (hs->buffer [i]);
            for (size_t i = 0; i < hs->n_tail; i++)
                census->tail += trove__coin__get_packed_size (hs->tail [i]);
            census->buffered += hs->n_buffer;
            census->coins += hs->n_tail;
            trove__hunt_state__free_unpacked (hs, NULL);
        }
    return 0;
}

static void
s_census_print (const s_census_t *c)
{
    double n = c->entries ? (double) c->entries : 1;
    printf (
        "             per entry: checkpoint %.0f B, buffer %.0f B (%.2f events), tail %.0f B (%.2f coins); "
        "largest now %zu B\n",
        c->checkpoint / n, c->buffer / n, c->buffered / n, c->tail / n, c->coins / n, c->max_entry);
    printf ("             state digest %016llx\n", (unsigned long long) c->digest);
}

static int
s_ns_order (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

//  Score every event of the batch in delivery order, timing each call.
static int
s_score_all (const trove_rules_t *rules, const s_batch_t *batch, const trove_store_t *store, s_tally_t *tally,
             uint32_t *ns, s_timing_t *timing)
{
    int64_t total = 0, cpu_start = s_cpu_ns ();
    for (size_t i = 0; i < batch->n; i++) {
        const Trove__Event *ev = &batch->events [i];
        //  accepted_us only travels into the coins; event time will do.
        int64_t before = s_mono_ns ();
        int rc = trove_engine_score (rules, ev, ev->ts_ms * 1000, store, s_count_change, tally);
        int64_t took = s_mono_ns () - before;
        if (rc) {
            fprintf (stderr, "bench-engine: trove_engine_score failed at event %zu (%s)\n", i, ev->id);
            return -1;
        }
        ns [i] = took > UINT32_MAX ? UINT32_MAX : (uint32_t) took;
        total += took;
    }
    int64_t cpu = s_cpu_ns () - cpu_start;
    memset (timing, 0, sizeof *timing);
    timing->cpu_seconds = cpu / 1e9;
    if (batch->n == 0)
        return 0;
    qsort (ns, batch->n, sizeof *ns, s_ns_order);
    timing->seconds = total / 1e9;
    timing->mean_ns = (double) total / (double) batch->n;
    timing->p50_ns = ns [batch->n / 2];
    timing->p99_ns = ns [(size_t) ((double) batch->n * 0.99)];
    timing->max_ns = ns [batch->n - 1];
    return 0;
}

int
main (int argc, char *argv [])
{
    size_t nevents = 1000000;
    size_t nusers = 10000;
    uint64_t seed = 1;
    double late = 0.20;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--events") == 0 && i + 1 < argc)
            nevents = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--users") == 0 && i + 1 < argc)
            nusers = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--late") == 0 && i + 1 < argc)
            late = atof (argv [++i]) / 100;
        else {
            s_usage ();
            return 2;
        }
    }
    //  Sequence numbers are 32-bit; beyond 40 % there are not enough close
    //  pairs to swap.
    if (nevents < 2 || nusers == 0 || nevents > 2000000000 || late < 0 || late > 0.4) {
        s_usage ();
        return 2;
    }
    int rc = 1;
    uint64_t rng = seed;
    size_t next_id = 0;
    trove_rules_t *rules = s_rules_load (false);
    trove_rules_t *plain = s_rules_load (true);
    trove_memstore_t *mem = trove_memstore_new ();
    trove_memstore_t *plain_mem = trove_memstore_new ();
    char **names = calloc (nusers, sizeof *names);
    uint32_t *ns = malloc (nevents * sizeof *ns);
    s_batch_t batch = {0};
    if (!rules || !plain)
        goto cleanup;  //  said why
    if (!mem || !plain_mem || !names || !ns)
        goto oom;
    for (size_t u = 0; u < nusers; u++)
        if (asprintf (&names [u], "user-%06zu", u) < 0) {
            names [u] = NULL;
            goto oom;
        }
    int64_t gen_start = s_mono_ns ();
    if (s_batch_make (&batch, nevents, nusers, names, T0_MS, late, &rng, &next_id))
        goto oom;
    double gen_seconds = (s_mono_ns () - gen_start) / 1e9;

    //  Phase 1: stateful scoring.
    s_probe_t probe = {trove_memstore_store (mem), 0, 0, 0};
    trove_store_t store = {s_probe_get, s_probe_put, &probe};
    s_tally_t tally = {0};
    s_timing_t t1;
    if (s_score_all (rules, &batch, &store, &tally, ns, &t1))
        goto cleanup;
    size_t entries1;
    size_t bytes1 = trove_memstore_bytes (mem, &entries1);
    size_t max_entry1 = probe.max_entry;
    s_census_t census1;
    if (s_census_take (mem, names, nusers, &census1))
        goto cleanup;
    size_t gets1 = probe.gets, puts1 = probe.puts;
    size_t late1 = batch.late;

    //  Baseline: the same events, stateless rules (the store is never used;
    //  it is there so that a stateful rule by mistake would still run).
    s_probe_t plain_probe = {trove_memstore_store (plain_mem), 0, 0, 0};
    trove_store_t plain_store = {s_probe_get, s_probe_put, &plain_probe};
    s_tally_t plain_tally = {0};
    s_timing_t tb;
    if (s_score_all (plain, &batch, &plain_store, &plain_tally, ns, &tb))
        goto cleanup;

    //  Phase 2: the same users a week after phase 1 ended, half as many
    //  events. Made before its clock starts, like phase 1's.
    s_batch_free (&batch);
    size_t nevents2 = nevents / 2;
    if (s_batch_make (&batch, nevents2, nusers, names, T0_MS + 2 * SPAN_MS, late, &rng, &next_id))
        goto oom;
    s_tally_t tally2 = {0};
    s_timing_t t2;
    if (s_score_all (rules, &batch, &store, &tally2, ns, &t2))
        goto cleanup;
    size_t entries2;
    size_t bytes2 = trove_memstore_bytes (mem, &entries2);
    s_census_t census2;
    if (s_census_take (mem, names, nusers, &census2))
        goto cleanup;

    double per_user1 = (double) bytes1 / (double) nusers;
    double per_user2 = (double) bytes2 / (double) nusers;
    double ratio = tb.mean_ns > 0 ? t1.mean_ns / tb.mean_ns : 0;
    printf ("bench-engine: %d hunts x %d rules, %zu users, seed %llu (events made in %.2f s)\n", HUNTS, RULES,
            nusers, (unsigned long long) seed, gen_seconds);
    printf ("phase 1  %zu events over 7 days, %zu late (%.1f %%, <= 5 min, within lateness 10m)\n", nevents,
            late1, 100.0 * (double) late1 / (double) nevents);
    printf ("  stateful   %.0f events/s, mean %.0f ns/event (p50 %.0f, p99 %.0f, max %.0f ns)\n",
            nevents / t1.seconds, t1.mean_ns, t1.p50_ns, t1.p99_ns, t1.max_ns);
    printf ("             cpu %.0f events/s, %.0f ns/event (thread CPU time of the phase, clock reads "
            "included)\n",
            nevents / t1.cpu_seconds, t1.cpu_seconds * 1e9 / nevents);
    printf ("             %zu mints, %zu revocations, %zu store gets, %zu puts\n", tally.mints, tally.revokes,
            gets1, puts1);
    printf ("  baseline   %.0f events/s, mean %.0f ns/event (p50 %.0f, p99 %.0f ns), %zu mints, %zu puts: "
            "stateful costs %.1fx\n",
            nevents / tb.seconds, tb.mean_ns, tb.p50_ns, tb.p99_ns, plain_tally.mints, plain_probe.puts,
            ratio);
    printf ("             cpu %.0f ns/event\n", tb.cpu_seconds * 1e9 / nevents);
    printf ("  state      %zu entries (user, hunt), %zu bytes = %.0f bytes/user, largest entry %zu bytes\n",
            entries1, bytes1, per_user1, max_entry1);
    s_census_print (&census1);
    //  Live coins per rule do not depend on --late (same seed): the engine
    //  converges to event-time order when events are late within lateness.
    printf ("  per rule, 5 hunts: live coins (mints - revocations), revocations\n   ");
    for (int r = 0; r < RULES; r++)
        printf (" r%d %zu,%zu", r, tally.rule_mints [r] - tally.rule_revokes [r], tally.rule_revokes [r]);
    printf ("\n");
    printf ("phase 2  %zu more events a week later, %zu late\n", nevents2, batch.late);
    printf ("  stateful   %.0f events/s, mean %.0f ns/event (p50 %.0f, p99 %.0f, max %.0f ns)\n",
            nevents2 / t2.seconds, t2.mean_ns, t2.p50_ns, t2.p99_ns, t2.max_ns);
    printf ("             cpu %.0f events/s, %.0f ns/event\n", nevents2 / t2.cpu_seconds,
            t2.cpu_seconds * 1e9 / nevents2);
    printf ("             %zu mints, %zu revocations\n", tally2.mints, tally2.revokes);
    printf ("  state      %zu entries, %zu bytes = %.0f bytes/user (phase 1: %.0f, %+.1f %%), largest entry "
            "ever %zu bytes\n",
            entries2, bytes2, per_user2, per_user1, per_user1 > 0 ? 100 * (per_user2 / per_user1 - 1) : 0,
            probe.max_entry);
    s_census_print (&census2);
    printf (
        "{\"bench\":\"engine\",\"events\":%zu,\"users\":%zu,\"seed\":%llu,\"hunts\":%d,\"rules_per_hunt\":%d,"
        "\"late_events\":%zu,\"events_per_s\":%.0f,\"cpu_ns_per_event\":%.0f,\"ns_per_event\":%.0f,\"p50_"
        "ns\":%.0f,\"p99_ns\":%.0f,"
        "\"max_ns\":%.0f,\"baseline_ns_per_event\":%.0f,\"cost_ratio\":%.2f,\"mints\":%zu,"
        "\"revocations\":%zu,\"baseline_mints\":%zu,\"state_entries\":%zu,\"state_bytes_per_user\":%.0f,"
        "\"max_state_entry_bytes\":%zu,\"phase2_events\":%zu,\"phase2_ns_per_event\":%.0f,"
        "\"phase2_mints\":%zu,\"phase2_revocations\":%zu,\"phase2_state_entries\":%zu,"
        "\"phase2_state_bytes_per_user\":%.0f,\"phase2_max_state_entry_bytes\":%zu}\n",
        nevents, nusers, (unsigned long long) seed, HUNTS, RULES, late1, nevents / t1.seconds,
        t1.cpu_seconds * 1e9 / nevents, t1.mean_ns, t1.p50_ns, t1.p99_ns, t1.max_ns, tb.mean_ns, ratio,
        tally.mints, tally.revokes, plain_tally.mints, entries1, per_user1, max_entry1, nevents2, t2.mean_ns,
        tally2.mints, tally2.revokes, entries2, per_user2, probe.max_entry);
    rc = 0;
    goto cleanup;
oom:
    fprintf (stderr, "bench-engine: out of memory\n");
cleanup:
    s_batch_free (&batch);
    if (names)
        for (size_t u = 0; u < nusers; u++)
            free (names [u]);
    free (names);
    free (ns);
    trove_memstore_destroy (&mem);
    trove_memstore_destroy (&plain_mem);
    trove_rules_destroy (&rules);
    trove_rules_destroy (&plain);
    return rc;
}
