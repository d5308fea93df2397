/*  trove_query_table - the scorer's query kinds, one row each, as Redis's
    command table: the handler, the freshness it needs, the fields it
    requires, the least certificate role that may ask it, and its label in
    trove_scorer_queries_total. Routing (how long a query waits for the
    apply thread), the role check, the required-field checks, dispatch and
    the metric all read the row: adding a query kind is adding a row here,
    its handler, and its section in docs/queries.md.

    Handlers: this file answers the shard's own kinds (status, coins, coin,
    awards, events, digests, rules_apply, rules_preview); trove_queries.c
    answers the player-facing ones (balance, progress, board_*). */
#ifndef TROVE_QUERY_TABLE_H_INCLUDED
#define TROVE_QUERY_TABLE_H_INCLUDED
#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_error.h"
#include "trove_ledger.h"
#include "trove_rules.h"

#ifdef __cplusplus
extern "C" {
#endif

//  What the ledger tables must hold before a kind is answered
//  (docs/queries.md, Freshness). The tables trail the log by a few ms.
typedef enum {
    TROVE_FRESH_TABLES,  //  the tables as they are (at most the apply backlog behind)
    TROVE_FRESH_USER,    //  the user's records still pending; all committed when no user
    TROVE_FRESH_OWNER,   //  as USER on the user's shard; as TABLES on the others (has_after)
    TROVE_FRESH_LOG,     //  everything committed when the query arrived
} trove_fresh_t;

//  Fields a kind requires, checked in this order before its handler runs.
#define TROVE_NEEDS_USER 1    //  q->user: else "missing user"
#define TROVE_NEEDS_HUNT 2    //  q->hunt: else "missing hunt"
#define TROVE_NEEDS_PERIOD 4  //  q->period valid for q->hunt ("" is all): else "bad period: ..."

//  The shard a handler answers for.
typedef struct {
    trove_cfg_t *cfg;
    size_t shard;      //  our shard index
    const char *name;  //  our shard name
    trove_ledger_t *ledger;
    trove_rules_t **rules_p;  //  the hunt rules (rules_apply replaces them)
    int64_t started_ms;
    const char *last_error;  //  shown by status
} trove_query_ctx_t;

//  One answer being built: the query, its reply, and what the answer
//  allocated (freed by trove_query_answer_free once the reply is sent).
typedef struct {
    const Trove__Query *q;
    Trove__QueryReply *reply;
    size_t limit;       //  entries wanted, bounded
    trove_cost_t cost;  //  units spent; over when the query's budget ran out
    const char *error;  //  the reply's error, set by a handler (borrowed)
    char text [600];    //  an error text built for this answer
    //  What the handler allocated
    Trove__BoardEntry **entries;
    size_t nentries;
    uint64_t *counts;  //  above, then equal
    Trove__Progress **progress;
    size_t nprogress;
    Trove__Coin **coins, *one;
    size_t ncoins;
    Trove__EventRecord **events;
    size_t nevents;
    char *next, *report;
    Trove__UserDigest *digests, **digest_ptrs;
    char *digest_text;
    Trove__StatusInfo status;
    char host [256];
} trove_query_answer_t;

//  Answer a->q into a->reply: set a reply field, or a->error. A handler
//  adds to a->cost what it reads; it cannot fail otherwise than by a->error.
typedef void (trove_query_fn) (trove_query_ctx_t *ctx, trove_query_answer_t *a);

typedef struct {
    const char *kind;         //  Trove__Query.kind
    trove_query_fn *handler;  //  answers it
    trove_fresh_t fresh;      //  what the tables must hold first
    unsigned needs;           //  TROVE_NEEDS_* bits
    trove_role_t role;        //  the least role that may ask (docs/security.md, "Roles")
    const char *label;        //  kind label in trove_scorer_queries_total
} trove_query_kind_t;

//  The row of kind, or NULL for a kind the scorer does not answer.
const trove_query_kind_t *trove_query_kind (const char *kind);

//  Every row, for metrics that list the kinds. Sets *n_p.
const trove_query_kind_t *trove_query_kinds (size_t *n_p);

//  The label of kind in trove_scorer_queries_total: its row's, or "other".
const char *trove_query_label (const char *kind);

//  The least role that may ask kind (a reader's for unknown kinds: they are
//  answered "unknown query kind").
trove_role_t trove_query_role (const char *kind);

//  The log position q's answer must reflect: answer once the ledger has
//  applied it (0: at once).
uint64_t trove_query_target (trove_ledger_t *ledger, const Trove__Query *q);

//  Answer q into reply: the row's field checks, then its handler, then the
//  cost limit (max_query_cost). a is initialised here; free it with
//  trove_query_answer_free after the reply is sent.
void trove_query_answer (trove_query_ctx_t *ctx, const Trove__Query *q, Trove__QueryReply *reply,
                         trove_query_answer_t *a);
void trove_query_answer_free (trove_query_answer_t *a);

#ifdef __cplusplus
}
#endif
#endif
