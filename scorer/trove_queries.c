/*  trove_queries - balance, progress and leaderboard answers of a scorer
    shard: handlers of rows of the query table (trove_query_table.c). See
    trove_queries.h. */
#include "trove_queries.h"
#include "trove_board.h"
#include "trove_engine.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Append the entries of an array (taking them) to a.
static int
s_take (trove_query_answer_t *a, Trove__BoardEntry **entries, size_t n)
{
    if (n == 0) {
        free (entries);
        return 0;
    }
    Trove__BoardEntry **all = realloc (a->entries, (a->nentries + n) * sizeof *all);
    if (!all) {
        trove_board_entries_free (entries, n);
        return -1;
    }
    memcpy (all + a->nentries, entries, n * sizeof *all);
    a->entries = all;
    a->nentries += n;
    free (entries);
    return 0;
}

//  One kind's read of the boards in snapshot snap: entries into *x (and *y
//  for a second list), *more when the page was cut. May set a->error.
//  Returns 0 or -1 (storage, or the cost ran out).
typedef int (s_board_fn) (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x,
                          size_t *nx, Trove__BoardEntry ***y, size_t *ny, bool *more);

//  Run fn in one snapshot of the tables (unless the answer already failed);
//  what it read goes into a.
static void
s_board_read (trove_query_ctx_t *ctx, trove_query_answer_t *a, s_board_fn *fn)
{
    if (a->error || a->cost.over)
        return;
    trove_ledger_read_t *snap = trove_ledger_read_begin (ctx->ledger);
    Trove__BoardEntry **x = NULL, **y = NULL;
    size_t nx = 0, ny = 0;
    bool more = false;
    int rc = 0;
    if (!snap)
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    else
        rc = fn (snap, a, &x, &nx, &y, &ny, &more);
    trove_ledger_read_end (&snap);
    if (rc && !a->cost.over)
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    if (s_take (a, x, nx) || s_take (a, y, ny))
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
    a->reply->more = more;
}

static const char *
s_period (const Trove__Query *q)
{
    return *q->period ? q->period : "all";
}

//  balance: the total, then the user's score on each hunt's board.
static int
s_balance_hunts (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
                 Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) y, (void) ny, (void) more;
    return trove_ledger_board_hunts (snap, a->q->user, &a->cost, x, nx);
}

//  balance as the ledger stood at q->as_of_ms: the sums of the live coins
//  then, in all and per hunt (the boards only know now).
static void
s_balance_as_of (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    Trove__Coin **coins = NULL;
    size_t n = 0;
    if (trove_ledger_live_coins_as_of (ctx->ledger, a->q->user, a->q->as_of_ms, &a->cost, &coins, &n)) {
        a->error = a->cost.over ? NULL : trove_strerror (TROVE_E_STORAGE_ERROR);
        return;
    }
    Trove__BoardEntry **hunts = calloc (n ? n : 1, sizeof *hunts);
    size_t nh = 0;
    for (size_t i = 0; i < n && hunts; i++) {
        a->reply->balance += coins [i]->value;
        size_t h = 0;
        while (h < nh && strcmp (hunts [h]->hunt, coins [i]->hunt))
            h++;
        if (h == nh) {
            Trove__BoardEntry *e = malloc (sizeof *e);
            if (e)
                trove__board_entry__init (e);
            if (!e || !(e->hunt = strdup (coins [i]->hunt))) {
                free (e);
                trove_board_entries_free (hunts, nh);
                hunts = NULL;
                break;
            }
            hunts [nh++] = e;
        }
        hunts [h]->score += coins [i]->value;
    }
    trove_ledger_free_coins (coins, n);
    if (!hunts || s_take (a, hunts, nh))
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
}

void
trove_queries_balance (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    if (a->q->as_of_ms > 0) {
        s_balance_as_of (ctx, a);
        return;
    }
    if (trove_ledger_balance (ctx->ledger, a->q->user, &a->reply->balance, &a->cost))
        a->error = a->cost.over ? NULL : trove_strerror (TROVE_E_STORAGE_ERROR);
    s_board_read (ctx, a, s_balance_hunts);
}

//  progress: where the user stands on each rule of each hunt (or of q->hunt).
void
trove_queries_progress (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    const trove_rules_t *rules = *ctx->rules_p;
    if (!rules) {
        a->error = trove_strerror (TROVE_E_NO_RULES);
        return;
    }
    int64_t now = trove_now_ms ();
    for (size_t h = 0; h < trove_rules_hunts (rules); h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, now);
        if (!v)
            v = trove_rules_latest (rules, h);  //  before its start or after its end: show where it stands
        if (!v || (*q->hunt && strcmp (q->hunt, v->hunt)))
            continue;
        Trove__HuntState *state = NULL;
        if (trove_ledger_state (ctx->ledger, q->user, v->hunt, &a->cost, &state)) {
            a->error = a->cost.over ? NULL : trove_strerror (TROVE_E_STORAGE_ERROR);
            return;
        }
        Trove__Progress **p = NULL;
        size_t n = 0;
        int rc = trove_engine_progress (v, state, now, &p, &n);
        if (state)
            trove__hunt_state__free_unpacked (state, NULL);
        Trove__Progress **all = rc ? NULL : realloc (a->progress, (a->nprogress + n) * sizeof *all);
        if (!all) {
            trove_engine_progress_free (p, n);
            a->error = trove_strerror (TROVE_E_NO_MEMORY);
            return;
        }
        memcpy (all + a->nprogress, p, n * sizeof *all);
        a->progress = all;
        a->nprogress += n;
        free (p);
    }
}

static int
s_top (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
       Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) y, (void) ny;
    const Trove__Query *q = a->q;
    return trove_ledger_board_top (snap, q->hunt, s_period (q), q->score, q->has_after ? q->user : NULL,
                                   a->limit, &a->cost, x, nx, more);
}

void
trove_queries_board_top (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    s_board_read (ctx, a, s_top);
}

//  The owning shard looks the user's score up; the others are given the
//  position (has_after).
static int
s_around (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
          Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) more;
    const Trove__Query *q = a->q;
    const char *period = s_period (q);
    int64_t score = q->score;
    bool excluded = false;
    int rc = 0;
    if (!q->has_after)
        rc = trove_ledger_board_score (snap, q->user, q->hunt, period, &a->cost, &score, &excluded);
    a->reply->balance = score;
    if (rc == 0 && excluded)
        a->error = "excluded: the user is on no leaderboard";
    else if (rc == 0 && (a->counts = calloc (2, sizeof *a->counts))) {
        rc = trove_ledger_board_counts (snap, q->hunt, period, &score, 1, &a->cost, a->counts, a->counts + 1);
        if (rc == 0)
            rc = trove_ledger_board_window (snap, q->hunt, period, score, q->user, q->k > 100 ? 100 : q->k,
                                            &a->cost, x, nx, y, ny);
        a->reply->above = a->counts;
        a->reply->equal = a->counts + 1;
        a->reply->n_above = a->reply->n_equal = 1;
    }
    else if (rc == 0)
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
    return rc;
}

void
trove_queries_board_around (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    s_board_read (ctx, a, s_around);
}

static int
s_counts (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
          Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) x, (void) nx, (void) y, (void) ny, (void) more;
    const Trove__Query *q = a->q;
    size_t n = q->n_scores;
    if (n > 1000)
        a->error = "too many scores (at most 1000)";
    else if (n && !(a->counts = calloc (2 * n, sizeof *a->counts)))
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
    else if (n) {
        int rc = trove_ledger_board_counts (snap, q->hunt, s_period (q), q->scores, n, &a->cost, a->counts,
                                            a->counts + n);
        a->reply->above = a->counts;
        a->reply->equal = a->counts + n;
        a->reply->n_above = a->reply->n_equal = n;
        return rc;
    }
    return 0;
}

void
trove_queries_board_counts (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    s_board_read (ctx, a, s_counts);
}

static int
s_list (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
        Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) y, (void) ny;
    return trove_ledger_board_list (snap, a->q->hunt, a->limit, &a->cost, x, nx, more);
}

void
trove_queries_board_list (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    s_board_read (ctx, a, s_list);
}

static int
s_excluded (trove_ledger_read_t *snap, trove_query_answer_t *a, Trove__BoardEntry ***x, size_t *nx,
            Trove__BoardEntry ***y, size_t *ny, bool *more)
{
    (void) y, (void) ny;
    return trove_ledger_board_excluded (snap, a->limit, &a->cost, x, nx, more);
}

void
trove_queries_board_excluded (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    s_board_read (ctx, a, s_excluded);
}

void
trove_queries_board_exclude (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    if (trove_ledger_set_excluded (ctx->ledger, a->q->user, a->q->exclude, a->q->reason))
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
}
