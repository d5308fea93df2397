/*  trove_query_table - the scorer's query kinds, and the answers of the
    shard's own kinds. See trove_query_table.h. */
#include "trove_query_table.h"
#include "trove_board.h"
#include "trove_engine.h"
#include "trove_hash.h"
#include "trove_preview.h"
#include "trove_queries.h"
#include "trove_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUERY_MAX_LIMIT 1000

//  --------------------------------------------------------------------------
//  The shard's own kinds

//  status: who this shard is and how far it is.
static void
s_status (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    Trove__StatusInfo *status = &a->status;
    status->role = "scorer";
    status->shard = (int32_t) ctx->shard;
    status->name = (char *) ctx->name;
    status->pid = getpid ();
    status->started_ms = ctx->started_ms;
    status->last_aseq = a->reply->last_aseq;
    status->events = trove_ledger_event_count (ctx->ledger);
    //  lag: accepted events the ledger tables do not hold yet
    status->inflight = trove_ledger_backlog (ctx->ledger);
    status->version = TROVE_VERSION;
    gethostname (a->host, sizeof a->host - 1);
    status->host = a->host;
    status->last_error = (char *) ctx->last_error;
    a->reply->status = status;
}

static int
s_newest_first (const void *x, const void *y)
{
    uint64_t a = (*(Trove__Coin *const *) x)->aseq, b = (*(Trove__Coin *const *) y)->aseq;
    return a < b ? 1 : a > b ? -1 : 0;
}

//  coins: a user's coins, newest first, a page at a time; with as_of_ms the
//  coins the user held then (the live ones, newest first, up to the limit).
static void
s_coins (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    if (a->q->as_of_ms > 0) {
        if (trove_ledger_live_coins_as_of (ctx->ledger, a->q->user, a->q->as_of_ms, &a->cost, &a->coins,
                                           &a->ncoins)) {
            a->error = a->cost.over ? NULL : trove_strerror (TROVE_E_STORAGE_ERROR);
            return;
        }
        //  No coins then: a->coins is NULL, which qsort must not be given
        //  (a crash under UBSan for a user with no coins at as_of).
        if (a->ncoins > 1)
            qsort (a->coins, a->ncoins, sizeof *a->coins, s_newest_first);
        size_t keep = a->limit && a->ncoins > a->limit ? a->limit : a->ncoins;
        for (size_t i = keep; i < a->ncoins; i++)
            trove__coin__free_unpacked (a->coins [i], NULL);
        a->ncoins = keep;
        a->reply->coins = a->coins;
        a->reply->n_coins = a->ncoins;
        a->reply->next_cursor = "";
        return;
    }
    if (trove_ledger_coins (ctx->ledger, a->q->user, a->q->cursor, a->limit, &a->coins, &a->ncoins, &a->next,
                            &a->cost))
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    a->reply->coins = a->coins;
    a->reply->n_coins = a->ncoins;
    a->reply->next_cursor = a->next ? a->next : "";
}

//  coin: one coin and the events that earned it.
static void
s_coin (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    int rc = trove_ledger_coin (ctx->ledger, a->q->coin_id, &a->one, &a->events, &a->nevents, &a->cost);
    if (rc == 1)
        a->error = trove_strerror (TROVE_E_NOT_FOUND);
    else if (rc)
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    else {
        a->reply->coins = &a->one;
        a->reply->n_coins = 1;
        a->reply->events = a->events;
        a->reply->n_events = a->nevents;
    }
}

//  awards: the award log from an aseq (the broker's catch-up).
static void
s_awards (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    if (trove_ledger_awards (ctx->ledger, a->q->from_aseq, a->limit, &a->coins, &a->ncoins))
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    a->reply->coins = a->coins;
    a->reply->n_coins = a->ncoins;
}

//  events: a reconciler pulls the log of one partition (docs/protocol.md).
static void
s_events (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    if (q->partition >= trove_cfg_partitions (ctx->cfg)
        || trove_cfg_shard_of (ctx->cfg, q->partition) != ctx->shard)
        a->error = trove_strerror (TROVE_E_WRONG_SHARD);
    else if (trove_ledger_events_from (ctx->ledger, q->partition, q->from_pseq,
                                       a->limit > 500 ? 500 : a->limit, &a->events, &a->nevents,
                                       &a->reply->last_pseq))
        a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
    a->reply->events = a->events;
    a->reply->n_events = a->nevents;
}

//  digests: each user's live coins as one digest, audited against the
//  stored balance and boards (the reconciler's comparison).
static void
s_digests (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    size_t n = q->n_users < QUERY_MAX_LIMIT ? q->n_users : QUERY_MAX_LIMIT;
    a->digests = calloc (n ? n : 1, sizeof *a->digests);
    a->digest_ptrs = calloc (n ? n : 1, sizeof *a->digest_ptrs);
    a->digest_text = calloc (n ? n : 1, TROVE_COIN_ID_LEN + 1);
    for (size_t i = 0; a->digests && a->digest_ptrs && a->digest_text && i < n; i++) {
        Trove__Coin **live = NULL;
        size_t nlive = 0;
        char *text = a->digest_text + i * (TROVE_COIN_ID_LEN + 1);
        trove_ledger_audit_t audit = {0};
        if (trove_ledger_audit_user (ctx->ledger, q->users [i], &live, &nlive, &audit)
            || trove_hash_coins_digest (live, nlive, text))
            a->error = trove_strerror (TROVE_E_STORAGE_ERROR);
        Trove__UserDigest *d = &a->digests [i];
        trove__user_digest__init (d);
        d->user = q->users [i];
        d->digest = text;
        d->coins = (uint32_t) nlive;
        d->balance = audit.live_sum;
        d->audited = true;
        d->stored_balance = audit.balance;
        d->boards_differ = audit.boards_differ;
        a->digest_ptrs [i] = d;
        trove_ledger_free_coins (live, nlive);
    }
    if (!a->digests || !a->digest_ptrs || !a->digest_text)
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
    else {
        a->reply->digests = a->digest_ptrs;
        a->reply->n_digests = n;
    }
}

//  A hunt file name as `rules apply` may write it: a plain *.yaml name.
static bool
s_rules_name_ok (const char *name)
{
    size_t n = strlen (name);
    if (n < 6 || n > 128 || name [0] == '.' || strcmp (name + n - 5, ".yaml"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum ((unsigned char) name [i]) && !strchr ("._-", name [i]))
            return false;
    return true;
}

//  The rules with the query's file added, or NULL with a->error set.
static trove_rules_t *
s_rules_candidate (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    a->error = a->text;
    if (!s_rules_name_ok (q->rules_name)) {
        snprintf (a->text, sizeof a->text,
                  "bad hunt file name '%.200s': want letters, digits, . _ - ending in .yaml", q->rules_name);
        return NULL;
    }
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_dir_with (trove_cfg_rules_dir (ctx->cfg), q->rules_name,
                                                      q->rules_text, strlen (q->rules_text), &err);
    if (!rules)
        snprintf (a->text, sizeof a->text, "%s", err ? err : trove_strerror (TROVE_E_NO_MEMORY));
    else
        a->error = NULL;
    free (err);
    return rules;
}

//  Write path durably: a temporary file, fsync, rename, fsync the directory.
static int
s_write_durably (const char *dir, const char *name, const char *text, char *err, size_t size)
{
    char tmp [4096], path [4096];
    snprintf (tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf (path, sizeof path, "%s/%s", dir, name);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen (text), done = 0;
    while (fd >= 0 && done < len) {
        ssize_t n = write (fd, text + done, len - done);
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    int rc = fd < 0 || done < len || fsync (fd) ? -1 : 0;
    if (fd >= 0)
        close (fd);
    if (rc == 0)
        rc = rename (tmp, path);
    int dfd = rc == 0 ? open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        rc = fsync (dfd);
        close (dfd);
    }
    if (rc) {
        snprintf (err, size, "cannot write %.300s: %s", path, strerror (errno));
        unlink (tmp);
    }
    return rc;
}

//  rules_apply: validate, store in the rules directory, swap. Events scored
//  from now on use the new rules; nothing is restarted or lost.
static void
s_rules_apply (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    trove_rules_t *next = s_rules_candidate (ctx, a);
    if (!next)
        return;
    char *err = NULL;
    trove_rules_t *one = trove_rules_load_text (q->rules_name, q->rules_text, strlen (q->rules_text), &err);
    if (!one)
        snprintf (a->text, sizeof a->text, "%s", err ? err : trove_strerror (TROVE_E_NO_MEMORY));
    free (err);
    a->error = a->text;
    if (!one
        || s_write_durably (trove_cfg_rules_dir (ctx->cfg), q->rules_name, q->rules_text, a->text,
                            sizeof a->text)) {
        trove_rules_destroy (&one);
        trove_rules_destroy (&next);
        return;
    }
    a->error = NULL;
    const trove_hunt_t *h = trove_rules_at (one, 0);
    trove_rules_destroy (ctx->rules_p);
    *ctx->rules_p = next;
    trove_log ('I', "rules: applied %s (hunt %s version %u); %zu hunt versions loaded", q->rules_name,
               h->hunt, h->version, trove_rules_count (next));
    if (asprintf (&a->report,
                  "{\"shard\":%u,\"file\":\"%s\",\"hunt\":\"%s\",\"version\":%u,\"versions_loaded\":%zu}",
                  (unsigned) ctx->shard, q->rules_name, h->hunt, h->version, trove_rules_count (next))
        < 0)
        a->report = NULL;
    trove_rules_destroy (&one);
    a->reply->report = a->report;
    if (!a->report)
        a->error = trove_strerror (TROVE_E_NO_MEMORY);
}

//  rules_preview: what the candidate rules would mint and revoke; reads only.
static void
s_rules_preview (trove_query_ctx_t *ctx, trove_query_answer_t *a)
{
    const Trove__Query *q = a->q;
    trove_rules_t *candidate = s_rules_candidate (ctx, a);
    if (!candidate)
        return;
    //  The tables must hold everything committed (preview reads them).
    if (trove_ledger_wait_applied (ctx->ledger, 30000)) {
        snprintf (a->text, sizeof a->text, "the ledger tables are behind; try again");
        a->error = a->text;
        trove_rules_destroy (&candidate);
        return;
    }
    int64_t partition = -1;
    if (*q->user)
        partition = trove_hash_partition (q->user, strlen (q->user), trove_cfg_partitions (ctx->cfg));
    char *err = NULL;
    a->report = trove_preview_run (ctx->ledger, candidate, partition, q->user, 200, &err);
    if (a->report)
        a->reply->report = a->report;
    else {
        snprintf (a->text, sizeof a->text, "preview failed: %s", err ? err : "?");
        a->error = a->text;
    }
    free (err);
    trove_rules_destroy (&candidate);
}

//  --------------------------------------------------------------------------
//  The table

#define USER TROVE_NEEDS_USER
#define HUNT TROVE_NEEDS_HUNT
#define PERIOD TROVE_NEEDS_PERIOD

//  Roles: control operations are the operator's; the event log, the
//  reconciler's digests and previews are the cluster's own; every other
//  read is a reader's (docs/security.md, "Roles").
// clang-format off
static const trove_query_kind_t s_kinds [] = {
    // kind            handler                       freshness           needs             role                 label
    {"status",         s_status,                     TROVE_FRESH_TABLES, 0,                TROVE_ROLE_READER,   "status"},
    {"balance",        trove_queries_balance,        TROVE_FRESH_USER,   USER,             TROVE_ROLE_READER,   "balance"},
    {"coins",          s_coins,                      TROVE_FRESH_USER,   USER,             TROVE_ROLE_READER,   "coins"},
    {"coin",           s_coin,                       TROVE_FRESH_LOG,    0,                TROVE_ROLE_READER,   "coin"},
    {"progress",       trove_queries_progress,       TROVE_FRESH_USER,   USER,             TROVE_ROLE_READER,   "progress"},
    {"awards",         s_awards,                     TROVE_FRESH_LOG,    0,                TROVE_ROLE_READER,   "awards"},
    {"board_top",      trove_queries_board_top,      TROVE_FRESH_TABLES, HUNT|PERIOD,      TROVE_ROLE_READER,   "board_top"},
    {"board_around",   trove_queries_board_around,   TROVE_FRESH_OWNER,  USER|HUNT|PERIOD, TROVE_ROLE_READER,   "board_around"},
    {"board_counts",   trove_queries_board_counts,   TROVE_FRESH_TABLES, HUNT|PERIOD,      TROVE_ROLE_READER,   "board_counts"},
    {"board_list",     trove_queries_board_list,     TROVE_FRESH_TABLES, HUNT,             TROVE_ROLE_READER,   "board_list"},
    {"board_excluded", trove_queries_board_excluded, TROVE_FRESH_LOG,    0,                TROVE_ROLE_READER,   "board_excluded"},
    {"board_exclude",  trove_queries_board_exclude,  TROVE_FRESH_LOG,    USER,             TROVE_ROLE_OPERATOR, "board_exclude"},
    {"rules_apply",    s_rules_apply,                TROVE_FRESH_LOG,    0,                TROVE_ROLE_OPERATOR, "rules_apply"},
    {"rules_preview",  s_rules_preview,              TROVE_FRESH_LOG,    0,                TROVE_ROLE_DAEMON,   "rules_preview"},
    {"events",         s_events,                     TROVE_FRESH_LOG,    0,                TROVE_ROLE_DAEMON,   "events"},
    {"digests",        s_digests,                    TROVE_FRESH_LOG,    0,                TROVE_ROLE_DAEMON,   "digests"},
};
// clang-format on

#undef USER
#undef HUNT
#undef PERIOD

const trove_query_kind_t *
trove_query_kind (const char *kind)
{
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds [0]; i++)
        if (strcmp (kind, s_kinds [i].kind) == 0)
            return &s_kinds [i];
    return NULL;
}

const trove_query_kind_t *
trove_query_kinds (size_t *n_p)
{
    *n_p = sizeof s_kinds / sizeof s_kinds [0];
    return s_kinds;
}

const char *
trove_query_label (const char *kind)
{
    const trove_query_kind_t *row = trove_query_kind (kind);
    return row ? row->label : "other";
}

trove_role_t
trove_query_role (const char *kind)
{
    const trove_query_kind_t *row = trove_query_kind (kind);
    return row ? row->role : TROVE_ROLE_READER;
}

//  docs/queries.md, Freshness: a question about one user waits for that
//  user's records only (read-your-writes per user: cheap while the tables
//  trail a busy log); leaderboard reads (top N, the list of boards, a
//  rank's context from the shards that do not own the user) and status read
//  the tables as they are, at most the apply backlog behind; every other
//  query sees all that was committed when it arrived.
uint64_t
trove_query_target (trove_ledger_t *ledger, const Trove__Query *q)
{
    const trove_query_kind_t *row = trove_query_kind (q->kind);
    trove_fresh_t fresh = row ? row->fresh : TROVE_FRESH_LOG;
    if (fresh == TROVE_FRESH_OWNER)
        fresh = q->has_after ? TROVE_FRESH_TABLES : TROVE_FRESH_USER;
    if (fresh == TROVE_FRESH_TABLES)
        return 0;
    if (fresh == TROVE_FRESH_USER && *q->user)
        return trove_ledger_user_pending (ledger, q->user);
    return trove_ledger_committed (ledger);
}

//  The error of a missing or bad field the row requires, or NULL.
static const char *
s_check_needs (const trove_query_kind_t *row, const Trove__Query *q)
{
    if ((row->needs & TROVE_NEEDS_USER) && !*q->user)
        return trove_strerror (TROVE_E_MISSING_USER);
    if ((row->needs & TROVE_NEEDS_HUNT) && !*q->hunt)
        return trove_strerror (TROVE_E_MISSING_HUNT);
    if ((row->needs & TROVE_NEEDS_PERIOD)
        && !trove_board_period_valid (q->hunt, *q->period ? q->period : "all"))
        return "bad period: want all, day:YYYY-MM-DD or week:YYYY-MM-DD (a Monday); \"*\" has only all";
    return NULL;
}

void
trove_query_answer (trove_query_ctx_t *ctx, const Trove__Query *q, Trove__QueryReply *reply,
                    trove_query_answer_t *a)
{
    memset (a, 0, sizeof *a);
    trove__status_info__init (&a->status);
    a->q = q;
    a->reply = reply;
    a->limit = q->limit == 0 ? 50 : q->limit > QUERY_MAX_LIMIT ? QUERY_MAX_LIMIT : q->limit;
    size_t max_cost = trove_cfg_limits (ctx->cfg)->max_query_cost;
    a->cost = (trove_cost_t){0, max_cost, false};
    reply->req_id = q->req_id;
    reply->last_aseq = trove_ledger_last_aseq (ctx->ledger);
    const trove_query_kind_t *row = trove_query_kind (q->kind);
    if (!row)
        a->error = trove_strerror (TROVE_E_UNKNOWN_KIND);
    else if (!(a->error = s_check_needs (row, q)))
        row->handler (ctx, a);
    if (a->cost.over) {
        //  Whatever was read is dropped: a partial answer would look whole.
        snprintf (a->text, sizeof a->text,
                  "%s: the query needs more than %zu units (limits/max_query_cost); ask for fewer entries",
                  trove_strerror (TROVE_E_COST_LIMIT), max_cost);
        a->error = a->text;
        trove_board_entries_free (a->entries, a->nentries);
        a->entries = NULL;
        a->nentries = 0;
        reply->n_above = reply->n_equal = 0;
    }
    if (a->error)
        reply->error = (char *) a->error;
    reply->cost = a->cost.used;
    if (a->nentries) {
        reply->entries = a->entries;
        reply->n_entries = a->nentries;
    }
    if (a->nprogress) {
        reply->progress = a->progress;
        reply->n_progress = a->nprogress;
    }
}

void
trove_query_answer_free (trove_query_answer_t *a)
{
    trove_board_entries_free (a->entries, a->nentries);
    trove_engine_progress_free (a->progress, a->nprogress);
    free (a->counts);
    trove_ledger_free_coins (a->coins, a->ncoins);
    if (a->one)
        trove__coin__free_unpacked (a->one, NULL);
    trove_ledger_free_events (a->events, a->nevents);
    free (a->next);
    free (a->report);
    free (a->digests);
    free (a->digest_ptrs);
    free (a->digest_text);
    memset (a, 0, sizeof *a);
}
