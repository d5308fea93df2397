/*  trove_queries - balance, progress and leaderboard answers of a scorer
    shard. See trove_queries.h. */
#include "trove_queries.h"
#include "trove_board.h"
#include "trove_engine.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_kinds [] = {"balance",      "progress",   "board_top",     "board_around",
                                       "board_counts", "board_list", "board_exclude", "board_excluded"};

bool
trove_queries_handles (const char *kind)
{
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds [0]; i++)
        if (strcmp (kind, s_kinds [i]) == 0)
            return true;
    return false;
}

void
trove_queries_free (trove_queries_mem_t *mem)
{
    trove_board_entries_free (mem->entries, mem->nentries);
    trove_engine_progress_free (mem->progress, mem->nprogress);
    free (mem->counts);
    memset (mem, 0, sizeof *mem);
}

//  Append the entries of an array (taking them) to mem.
static int
s_take (trove_queries_mem_t *mem, Trove__BoardEntry **entries, size_t n)
{
    if (n == 0) {
        free (entries);
        return 0;
    }
    Trove__BoardEntry **all = realloc (mem->entries, (mem->nentries + n) * sizeof *all);
    if (!all) {
        trove_board_entries_free (entries, n);
        return -1;
    }
    memcpy (all + mem->nentries, entries, n * sizeof *all);
    mem->entries = all;
    mem->nentries += n;
    free (entries);
    return 0;
}

static const char *
s_progress (trove_ledger_t *ledger, const trove_rules_t *rules, const Trove__Query *q, trove_cost_t *cost,
            trove_queries_mem_t *mem)
{
    if (!rules)
        return "no rules loaded";
    int64_t now = trove_now_ms ();
    for (size_t h = 0; h < trove_rules_hunts (rules); h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, now);
        if (!v)
            v = trove_rules_latest (rules, h);  //  before its start or after its end: show where it stands
        if (!v || (*q->hunt && strcmp (q->hunt, v->hunt)))
            continue;
        Trove__HuntState *state = NULL;
        if (trove_ledger_state (ledger, q->user, v->hunt, cost, &state))
            return cost->over ? NULL : "storage_error";
        Trove__Progress **p = NULL;
        size_t n = 0;
        int rc = trove_engine_progress (v, state, now, &p, &n);
        if (state)
            trove__hunt_state__free_unpacked (state, NULL);
        if (rc)
            return "out of memory";
        Trove__Progress **all = realloc (mem->progress, (mem->nprogress + n) * sizeof *all);
        if (!all) {
            trove_engine_progress_free (p, n);
            return "out of memory";
        }
        memcpy (all + mem->nprogress, p, n * sizeof *all);
        mem->progress = all;
        mem->nprogress += n;
        free (p);
    }
    return NULL;
}

void
trove_queries_answer (trove_ledger_t *ledger, const trove_rules_t *rules, const Trove__Query *q, size_t limit,
                      size_t max_cost, Trove__QueryReply *reply, trove_queries_mem_t *mem)
{
    trove_cost_t cost = {0, max_cost, false};
    const char *error = NULL;
    const char *period = *q->period ? q->period : "all";
    bool on_board = strncmp (q->kind, "board_", 6) == 0;
    bool needs_user = strcmp (q->kind, "balance") == 0 || strcmp (q->kind, "progress") == 0
                   || strcmp (q->kind, "board_around") == 0 || strcmp (q->kind, "board_exclude") == 0;
    bool needs_board = on_board && strcmp (q->kind, "board_exclude") && strcmp (q->kind, "board_excluded");
    if (needs_user && !*q->user)
        error = "missing user";
    else if (needs_board && !*q->hunt)
        error = "missing hunt";
    else if (needs_board && strcmp (q->kind, "board_list") && !trove_board_period_valid (q->hunt, period))
        error = "bad period: want all, day:YYYY-MM-DD or week:YYYY-MM-DD (a Monday); \"*\" has only all";
    else if (strcmp (q->kind, "progress") == 0)
        error = s_progress (ledger, rules, q, &cost, mem);
    else if (strcmp (q->kind, "balance") == 0) {
        if (trove_ledger_balance (ledger, q->user, &reply->balance, &cost))
            error = cost.over ? NULL : "storage_error";
    }
    else if (strcmp (q->kind, "board_exclude") == 0) {
        if (trove_ledger_set_excluded (ledger, q->user, q->exclude, q->reason))
            error = "storage_error";
    }
    if (!error && !cost.over
        && (strcmp (q->kind, "balance") == 0 || (on_board && strcmp (q->kind, "board_exclude")))) {
        trove_ledger_read_t *snap = trove_ledger_read_begin (ledger);
        Trove__BoardEntry **a = NULL, **b = NULL;
        size_t na = 0, nb = 0;
        bool more = false;
        int rc = 0;
        if (!snap)
            error = "storage_error";
        else if (strcmp (q->kind, "balance") == 0) {
            rc = trove_ledger_board_hunts (snap, q->user, &cost, &a, &na);
        }
        else if (strcmp (q->kind, "board_top") == 0) {
            rc = trove_ledger_board_top (snap, q->hunt, period, q->score, q->has_after ? q->user : NULL, limit,
                                         &cost, &a, &na, &more);
        }
        else if (strcmp (q->kind, "board_list") == 0)
            rc = trove_ledger_board_list (snap, q->hunt, limit, &cost, &a, &na, &more);
        else if (strcmp (q->kind, "board_excluded") == 0)
            rc = trove_ledger_board_excluded (snap, limit, &cost, &a, &na, &more);
        else if (strcmp (q->kind, "board_around") == 0) {
            //  The owning shard looks the user's score up; the others are
            //  given the position (has_after).
            int64_t score = q->score;
            bool excluded = false;
            if (!q->has_after)
                rc = trove_ledger_board_score (snap, q->user, q->hunt, period, &cost, &score, &excluded);
            reply->balance = score;
            if (rc == 0 && excluded)
                error = "excluded: the user is on no leaderboard";
            else if (rc == 0 && (mem->counts = calloc (2, sizeof *mem->counts))) {
                rc = trove_ledger_board_counts (snap, q->hunt, period, &score, 1, &cost, mem->counts,
                                                mem->counts + 1);
                if (rc == 0)
                    rc = trove_ledger_board_window (snap, q->hunt, period, score, q->user,
                                                    q->k > 100 ? 100 : q->k, &cost, &a, &na, &b, &nb);
                reply->above = mem->counts;
                reply->equal = mem->counts + 1;
                reply->n_above = reply->n_equal = 1;
            }
            else if (rc == 0)
                error = "out of memory";
        }
        else if (strcmp (q->kind, "board_counts") == 0) {
            size_t n = q->n_scores;
            if (n > 1000)
                error = "too many scores (at most 1000)";
            else if (n && !(mem->counts = calloc (2 * n, sizeof *mem->counts)))
                error = "out of memory";
            else if (n) {
                rc = trove_ledger_board_counts (snap, q->hunt, period, q->scores, n, &cost, mem->counts,
                                                mem->counts + n);
                reply->above = mem->counts;
                reply->equal = mem->counts + n;
                reply->n_above = reply->n_equal = n;
            }
        }
        trove_ledger_read_end (&snap);
        if (rc && !cost.over)
            error = "storage_error";
        if (s_take (mem, a, na) || s_take (mem, b, nb))
            error = "out of memory";
        reply->more = more;
    }
    if (cost.over) {
        snprintf (
            mem->error, sizeof mem->error,
            "cost_limit: the query needs more than %zu units (limits/max_query_cost); ask for fewer entries",
            max_cost);
        error = mem->error;
        trove_board_entries_free (mem->entries, mem->nentries);
        mem->entries = NULL;
        mem->nentries = 0;
        reply->n_above = reply->n_equal = 0;
    }
    if (error)
        reply->error = (char *) error;
    reply->cost = cost.used;
    reply->entries = mem->entries;
    reply->n_entries = mem->nentries;
    reply->progress = mem->progress;
    reply->n_progress = mem->nprogress;
}
