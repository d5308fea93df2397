/*  Property test of the ledger's accounting (issue 17), on a real LMDB.

    Random sequences of what the ledger can be asked to hold: mints, coins
    re-issued under the same id (events out of order, later than
    `lateness`), revocations, undo (after and before its target), a
    reconciler's re-derive requests and duplicates, with SIGKILL at random
    instants (in a batch before its commit, right after a commit while the
    apply thread may still be writing the tables, after the tables caught
    up) and recovery in between. After every recovery it checks the
    invariant against a plain model computed here from the ledger's own
    entries, oldest first, with nothing of the ledger's arithmetic:
      - a coin id's state is its latest entry (live when that is a mint);
      - each user's stored balance == the sum of its live coins;
      - each all-time board score (every hunt, and "*") == the sum of the
        user's live coins in that hunt (in all);
      - every event the killed process had committed is stored (the event
        count is the number of distinct events committed) and is answered
        duplicate when sent again; nothing uncommitted is;
      - at the end, a reconciler's re-derive request for every user writes
        nothing: the real-time path left the ledger where event-time order
        leads, whatever the order and the kills (the batch path of the same
        engine is the reference here; tests/oracle judges both).
    It also requires that the runs covered what they are about (re-issued
    ids, revocations, repairs, undo, each kind of kill), so that a change
    that stops producing them cannot pass silently.

    Three runs with seeds from the clock (printed); TROVE_PROP_SEED=N runs
    one with that seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_board.h"
#include "trove_engine.h"
#include "trove_event.h"
#include "trove_ledger.h"
#include "trove_rules.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USERS 4
#define OPS 700
#define PARTITION 5

static const char *s_rules_yaml =
    "hunt: p\nversion: 1\ntimezone: Europe/Paris\nlateness: 10m\nrules:\n"
    "  - {id: day, kind: each, match: {type: a}, coins: 3, cap: {max: 2, per: day}, cooldown: 20m}\n"
    "  - {id: zones, kind: count, match: {type: v}, distinct: zone, count: 3, coins: 10}\n"
    "  - {id: pairs, kind: count, match: {type: a}, count: 2, coins: 5, repeat: true}\n"
    "  - {id: path, kind: sequence, within: 3h, coins: 7, repeat: true,\n"
    "     steps: [{type: a}, {type: v, attrs: {zone: [Z1, Z2]}}]}\n"
    "  - {id: days, kind: streak, match: {type: a}, days: 2, coins: 4, repeat: true}\n"
    "  - {id: buy, kind: each, match: {type: b}, coins: 1}\n";
static const char *s_rules_q =
    "hunt: q\nversion: 1\nlateness: 1h\nrules:\n"
    "  - {id: weekly, kind: each, match: {type: v}, coins: 2, cap: {max: 3, per: week}}\n"
    "  - {id: three, kind: count, match: {type: b}, count: 3, coins: 6}\n";

typedef enum { OP_EVENT, OP_UNDO, OP_REDERIVE, OP_DUP } s_kind_t;

typedef struct {
    s_kind_t kind;
    char id [24];  //  event id (source "w"; "reconciler" for OP_REDERIVE)
    char user [8];
    char type [12];
    char zone [4];
    int64_t ts_ms;
    int target;  //  OP_UNDO / OP_DUP: index of the op it refers to
    uint64_t req_id;
} s_op_t;

typedef struct {
    uint32_t state;
} s_rng_t;

static uint32_t
s_rand (s_rng_t *r)
{
    //  xorshift32: reproducible from the seed on every platform
    uint32_t x = r->state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return r->state = x;
}

static uint32_t
s_below (s_rng_t *r, uint32_t n)
{
    return s_rand (r) % n;
}

//  The plan: OPS operations, mostly events of a few users spread over five
//  days and sent in an order far from event time.
static void
s_plan (s_op_t *ops, s_rng_t *rng)
{
    const int64_t base = 1774000000000;  //  2026-03-20, a week before Paris's DST change
    static const char *types [] = {"a", "a", "a", "v", "v", "b"};
    static const char *zones [] = {"Z1", "Z2", "Z3", "Z4"};
    for (int i = 0; i < OPS; i++) {
        s_op_t *op = &ops [i];
        memset (op, 0, sizeof *op);
        uint32_t dice = s_below (rng, 100);
        snprintf (op->user, sizeof op->user, "u%u", s_below (rng, USERS));
        op->req_id = 1000 + (uint64_t) i;
        op->ts_ms = base + (int64_t) s_below (rng, 10 * 86400) * 1000;
        if (dice < 8 && i > 0) {
            op->kind = OP_DUP;
            op->target = (int) s_below (rng, (uint32_t) i);
            continue;
        }
        if (dice < 14) {
            //  Undo a random event, sent or still to come.
            op->kind = OP_UNDO;
            op->target = (int) s_below (rng, OPS);
            snprintf (op->id, sizeof op->id, "x%d", i);
            snprintf (op->type, sizeof op->type, "undo");
            continue;
        }
        if (dice < 18) {
            op->kind = OP_REDERIVE;
            snprintf (op->id, sizeof op->id, "r%d", i);
            snprintf (op->type, sizeof op->type, "reconcile");
            continue;
        }
        op->kind = OP_EVENT;
        snprintf (op->id, sizeof op->id, "e%d", i);
        snprintf (op->type, sizeof op->type, "%s", types [s_below (rng, 6)]);
        snprintf (op->zone, sizeof op->zone, "%s", zones [s_below (rng, 4)]);
        //  Runs of events close in time, some of them in order.
        if (i > 0 && ops [i - 1].kind == OP_EVENT && s_below (rng, 2))
            op->ts_ms = ops [i - 1].ts_ms + (int64_t) s_below (rng, 90) * 60000;
    }
    //  An undo targets an event of its own user (that is what undo means).
    for (int i = 0; i < OPS; i++)
        if (ops [i].kind == OP_UNDO) {
            int t = ops [i].target;
            while (ops [t].kind != OP_EVENT)
                t = (t + 1) % OPS;
            ops [i].target = t;
            snprintf (ops [i].user, sizeof ops [i].user, "%s", ops [t].user);
        }
}

static Trove__Event *
s_event_of (const s_op_t *ops, int i)
{
    const s_op_t *op = &ops [i];
    if (op->kind == OP_DUP)
        return s_event_of (ops, op->target);
    char ts [32], attrs [160] = "";
    time_t secs = (time_t) (op->ts_ms / 1000);
    strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime (&secs));
    if (op->kind == OP_UNDO)
        snprintf (attrs, sizeof attrs, ",\"attrs\":{\"target_source\":\"w\",\"target_id\":\"%s\"}",
                  ops [op->target].id);
    else if (op->kind == OP_REDERIVE)
        snprintf (attrs, sizeof attrs, ",\"attrs\":{\"run\":\"prop-%d\"}", i);
    else if (*op->zone)
        snprintf (attrs, sizeof attrs, ",\"attrs\":{\"zone\":\"%s\"}", op->zone);
    char json [512];
    snprintf (json, sizeof json,
              "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":\"%s\"%s}",
              op->kind == OP_REDERIVE ? TROVE_RECONCILER_SOURCE : "w", op->id, op->user, op->type, ts, attrs);
    const char *reason = NULL;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
    if (!ev)
        fail_msg ("event %s: %s", json, reason ? reason : "?");
    return ev;
}

static uint64_t
s_req_of (const s_op_t *ops, int i)
{
    //  A duplicate is another submission of the same event (a new req_id).
    return ops [i].req_id;
}

typedef struct {
    char dir [64];
    char data [128];
    trove_rules_t *rules;
    s_op_t ops [OPS];
    //  coverage
    unsigned reissued, revoked, rescored, undone, kill_mid_batch, kill_after_commit, kill_after_apply;
} s_world_t;

//  --- the killed process ---------------------------------------------------

//  Apply ops from start, in random batches; after each commit, report the
//  index of the last committed op on fd; SIGKILL itself at a random point.
static void
s_child (s_world_t *w, int start, uint32_t seed, int fd)
{
    s_rng_t rng = {seed | 1};
    char *err = NULL;
    int end = start + 20 + (int) s_below (&rng, 120);
    int phase = (int) s_below (&rng, 3);  //  0 mid-batch, 1 after commit, 2 after apply
    //  Half the time the apply thread lags by up to a second: re-derives
    //  then read the user's committed records from memory, not the tables.
    if (s_below (&rng, 2)) {
        setenv ("TROVE_APPLY_MIN", "100000", 1);
        setenv ("TROVE_APPLY_DELAY_MS", "1000", 1);
    }
    trove_ledger_t *ledger = trove_ledger_new (w->data, 1, 256 * 1024 * 1024, false, &err);
    if (!ledger)
        _exit (3);
    int i = start;
    while (i < OPS) {
        int n = 1 + (int) s_below (&rng, 8);
        if (trove_ledger_begin (ledger))
            _exit (4);
        int k = 0;
        for (; k < n && i + k < OPS; k++) {
            Trove__Event *ev = s_event_of (w->ops, i + k);
            Trove__Status status;
            if (trove_ledger_apply (ledger, ev, PARTITION, s_req_of (w->ops, i + k), 1, w->rules, &status))
                _exit (5);
            trove_event_destroy (&ev);
        }
        if (i + k >= end && phase == 0)
            kill (getpid (), SIGKILL);
        if (trove_ledger_commit (ledger))
            _exit (6);
        i += k;
        int last = i - 1;
        if (write (fd, &last, sizeof last) != sizeof last)
            _exit (7);
        if (i >= end && phase == 1)
            kill (getpid (), SIGKILL);
        if (i >= end && phase == 2) {
            trove_ledger_wait_applied (ledger, 10000);
            kill (getpid (), SIGKILL);
        }
    }
    trove_ledger_destroy (&ledger);
    _exit (0);
}

//  --- the judge --------------------------------------------------------------

typedef struct {
    char id [TROVE_COIN_ID_LEN + 1];
    char hunt [8];
    int64_t value;
    bool live;
    int mints;
} s_model_coin_t;

//  Replay a user's entries oldest first; check stored sums against them.
static void
s_check_user (s_world_t *w, trove_ledger_t *ledger, const char *user)
{
    //  Every entry, newest first (pages), then reversed.
    Trove__Coin **all = NULL;
    size_t nall = 0;
    char *cursor = strdup ("");
    for (;;) {
        Trove__Coin **page;
        size_t n;
        char *next = NULL;
        assert_int_equal (trove_ledger_coins (ledger, user, cursor, 500, &page, &n, &next, NULL), 0);
        all = realloc (all, (nall + n + 1) * sizeof *all);
        memcpy (all + nall, page, n * sizeof *page);
        nall += n;
        free (page);
        free (cursor);
        cursor = next;
        if (!cursor || !*cursor)
            break;
    }
    free (cursor);
    s_model_coin_t *model = calloc (nall + 1, sizeof *model);
    size_t nmodel = 0;
    for (size_t k = nall; k-- > 0;) {
        const Trove__Coin *c = all [k];
        s_model_coin_t *m = NULL;
        for (size_t j = 0; j < nmodel && !m; j++)
            if (strcmp (model [j].id, c->id) == 0)
                m = &model [j];
        if (!m) {
            m = &model [nmodel++];
            snprintf (m->id, sizeof m->id, "%s", c->id);
            snprintf (m->hunt, sizeof m->hunt, "%s", c->hunt);
        }
        if (c->revoked) {
            w->revoked++;
            m->live = false;
        }
        else {
            if (m->mints++)
                w->reissued++;
            m->live = true;
            m->value = c->value;
        }
        w->rescored += strcmp (c->reason, "rescored") == 0;
        w->undone += strcmp (c->reason, "undo") == 0;
    }
    int64_t sum = 0, sum_p = 0, sum_q = 0;
    for (size_t j = 0; j < nmodel; j++)
        if (model [j].live) {
            sum += model [j].value;
            if (strcmp (model [j].hunt, "p") == 0)
                sum_p += model [j].value;
            else
                sum_q += model [j].value;
        }
    int64_t balance = -1;
    assert_int_equal (trove_ledger_balance (ledger, user, &balance, NULL), 0);
    if (balance != sum)
        fail_msg ("user %s: stored balance %lld, live coins sum to %lld (%zu entries)", user,
                  (long long) balance, (long long) sum, nall);
    trove_ledger_read_t *snap = trove_ledger_read_begin (ledger);
    assert_non_null (snap);
    trove_cost_t cost = {0};
    int64_t star, p, q;
    assert_int_equal (trove_ledger_board_score (snap, user, "*", "all", &cost, &star, NULL), 0);
    assert_int_equal (trove_ledger_board_score (snap, user, "p", "all", &cost, &p, NULL), 0);
    assert_int_equal (trove_ledger_board_score (snap, user, "q", "all", &cost, &q, NULL), 0);
    trove_ledger_read_end (&snap);
    assert_null (snap);
    if (star != sum || p != sum_p || q != sum_q)
        fail_msg ("user %s: boards * %lld p %lld q %lld, live coins %lld / %lld / %lld", user,
                  (long long) star, (long long) p, (long long) q, (long long) sum, (long long) sum_p,
                  (long long) sum_q);
    //  The ledger's own audit (what the reconciler reports) agrees.
    trove_ledger_audit_t audit;
    Trove__Coin **live;
    size_t nlive;
    assert_int_equal (trove_ledger_audit_user (ledger, user, &live, &nlive, &audit), 0);
    assert_int_equal (audit.live_sum, sum);
    assert_int_equal (audit.balance, balance);
    assert_int_equal (audit.boards_differ, 0);
    trove_ledger_free_coins (live, nlive);
    trove_ledger_free_coins (all, nall);
    free (model);
}

//  Distinct events committed up to op last (duplicates and re-derive
//  requests are not events of the log).
static uint64_t
s_expected_events (const s_world_t *w, int last)
{
    uint64_t n = 0;
    for (int i = 0; i <= last; i++)
        n += w->ops [i].kind == OP_EVENT || w->ops [i].kind == OP_UNDO;
    return n;
}

static void
s_check (s_world_t *w, int last)
{
    char *err = NULL;
    trove_ledger_t *ledger = trove_ledger_new (w->data, 1, 256 * 1024 * 1024, false, &err);
    if (!ledger)
        fail_msg ("reopen: %s", err);
    assert_int_equal (trove_ledger_wait_applied (ledger, 30000), 0);
    if (trove_ledger_event_count (ledger) != s_expected_events (w, last))
        fail_msg ("after op %d: %llu events stored, %llu committed", last,
                  (unsigned long long) trove_ledger_event_count (ledger),
                  (unsigned long long) s_expected_events (w, last));
    for (int u = 0; u < USERS; u++) {
        char user [8];
        snprintf (user, sizeof user, "u%d", u);
        s_check_user (w, ledger, user);
    }
    trove_ledger_destroy (&ledger);
}

//  Every committed event is known; the first op not committed is not.
static void
s_check_dedup (s_world_t *w, int last)
{
    char *err = NULL;
    trove_ledger_t *ledger = trove_ledger_new (w->data, 1, 256 * 1024 * 1024, false, &err);
    assert_non_null (ledger);
    assert_int_equal (trove_ledger_begin (ledger), 0);
    for (int i = 0; i <= last; i++) {
        if (w->ops [i].kind == OP_REDERIVE)
            continue;
        Trove__Event *ev = s_event_of (w->ops, i);
        Trove__Status status;
        //  A retried submission (same req_id) is "accepted", another one "duplicate".
        assert_int_equal (trove_ledger_apply (ledger, ev, PARTITION, 1, 1, w->rules, &status), 0);
        if (status != TROVE__STATUS__DUPLICATE)
            fail_msg ("op %d (%s) was committed but is not known after recovery", i, ev->id);
        trove_event_destroy (&ev);
    }
    trove_ledger_abort (ledger);
    trove_ledger_destroy (&ledger);
}

//  Whatever the arrival order and the kills, real time left each user
//  where event-time order leads: a reconciler's re-derive request for
//  every user writes no entry at all.
static void
s_check_nothing_to_repair (s_world_t *w)
{
    char *err = NULL;
    trove_ledger_t *ledger = trove_ledger_new (w->data, 1, 256 * 1024 * 1024, false, &err);
    assert_non_null (ledger);
    uint64_t aseq = trove_ledger_last_aseq (ledger);
    assert_int_equal (trove_ledger_begin (ledger), 0);
    for (int u = 0; u < USERS; u++) {
        char json [200];
        snprintf (json, sizeof json,
                  "{\"source\":\"%s\",\"id\":\"final-%d\",\"user\":\"u%d\",\"type\":\"%s\","
                  "\"ts\":\"2026-03-20T00:00:00Z\",\"attrs\":{\"run\":\"final\"}}",
                  TROVE_RECONCILER_SOURCE, u, u, TROVE_RECONCILE_TYPE);
        const char *reason;
        Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
        assert_non_null (ev);
        Trove__Status status;
        assert_int_equal (trove_ledger_apply (ledger, ev, PARTITION, 7, 1, w->rules, &status), 0);
        trove_event_destroy (&ev);
    }
    assert_int_equal (trove_ledger_commit (ledger), 0);
    if (trove_ledger_last_aseq (ledger) != aseq)
        fail_msg ("re-derive requests wrote %llu entries: real time was not exact",
                  (unsigned long long) (trove_ledger_last_aseq (ledger) - aseq));
    trove_ledger_destroy (&ledger);
}

static void
test_accounting_survives_kills (void **state)
{
    (void) state;
    const char *env_seed = getenv ("TROVE_PROP_SEED");
    uint32_t seed = env_seed ? (uint32_t) strtoul (env_seed, NULL, 10) : (uint32_t) time (NULL);
    int runs = env_seed ? 1 : 3;
    print_message ("ledger property test: seed %u (TROVE_PROP_SEED=%u to repeat)\n", seed, seed);
    s_world_t *w = calloc (1, sizeof *w);
    assert_non_null (w);
    for (int run = 0; run < runs; run++) {
        s_rng_t rng = {(seed + (uint32_t) run * 7919u) | 1};
        snprintf (w->dir, sizeof w->dir, "/tmp/trove-test-prop-XXXXXX");
        assert_non_null (mkdtemp (w->dir));
        snprintf (w->data, sizeof w->data, "%s/data", w->dir);
        char path [160];
        snprintf (path, sizeof path, "%s/p.yaml", w->dir);
        FILE *file = fopen (path, "w");
        assert_non_null (file);
        fputs (s_rules_yaml, file);
        fclose (file);
        snprintf (path, sizeof path, "%s/q.yaml", w->dir);
        file = fopen (path, "w");
        assert_non_null (file);
        fputs (s_rules_q, file);
        fclose (file);
        char *err = NULL;
        snprintf (path, sizeof path, "%s", w->dir);
        //  The rules directory is the temp dir itself (p.yaml, q.yaml).
        w->rules = trove_rules_load_dir (path, &err);
        if (!w->rules)
            fail_msg ("rules: %s", err);
        s_plan (w->ops, &rng);
        int last = -1;
        for (int round = 0; last < OPS - 1 && round < 200; round++) {
            int fds [2];
            assert_int_equal (pipe (fds), 0);
            uint32_t child_seed = s_rand (&rng);
            pid_t pid = fork ();
            assert_true (pid >= 0);
            if (pid == 0) {
                close (fds [0]);
                s_child (w, last + 1, child_seed, fds [1]);
            }
            close (fds [1]);
            int got;
            while (read (fds [0], &got, sizeof got) == sizeof got)
                last = got;
            close (fds [0]);
            int status;
            assert_int_equal (waitpid (pid, &status, 0), pid);
            if (WIFSIGNALED (status)) {
                assert_int_equal (WTERMSIG (status), SIGKILL);
                s_rng_t peek = {child_seed | 1};
                s_below (&peek, 120);
                int phase = (int) s_below (&peek, 3);
                w->kill_mid_batch += phase == 0;
                w->kill_after_commit += phase == 1;
                w->kill_after_apply += phase == 2;
            }
            else if (WEXITSTATUS (status) != 0)
                fail_msg ("child exited %d", WEXITSTATUS (status));
            s_check (w, last);
        }
        assert_int_equal (last, OPS - 1);
        s_check_dedup (w, last);
        s_check_nothing_to_repair (w);
        trove_rules_destroy (&w->rules);
        char cmd [160];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", w->dir);
        assert_int_equal (system (cmd), 0);
    }
    print_message ("coverage: %u re-issued ids, %u revocations, %u rescored, %u undo entries; kills: %u "
                   "mid-batch, %u after commit, %u after apply\n",
                   w->reissued, w->revoked, w->rescored, w->undone, w->kill_mid_batch, w->kill_after_commit,
                   w->kill_after_apply);
    //  The runs must have exercised what this test is about.
    assert_true (w->reissued > 0);
    assert_true (w->revoked > 0);
    assert_true (w->rescored > 0);
    assert_true (w->undone > 0);
    assert_true (w->kill_mid_batch > 0 && w->kill_after_commit > 0 && w->kill_after_apply > 0);
    free (w);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_accounting_survives_kills),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
