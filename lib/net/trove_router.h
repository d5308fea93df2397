/*  trove_router - the player-facing queries of a whole cluster, for
    trovectl and the HTTP API (docs/queries.md). A user's query (balance,
    coins, progress, exclusion) goes to the scorer shard that owns the user
    (by the user hash, as events do); a leaderboard query goes to every
    shard and the answers are merged:
    - top N: each shard is asked for its share (N / shards + a margin) and
      asked again, after its last entry, only when the merge shows it may
      hold more of the top N; ranks come from positions on the first page,
      from the shards' counts after a position;
    - around a user: the owner gives the user's score, every shard its
      count of higher scores and its k entries on each side of the user's
      position; the merge keeps the k closest on each side, and the shards'
      counts at their scores give their ranks.
    A reply's cost is the sum of the shards' costs. Replies are built here
    (free with trove_client_reply_free). One DEALER per shard, kept open:
    a query costs no connection set-up. Not thread-safe: one router per
    thread. */
#ifndef TROVE_ROUTER_H_INCLUDED
#define TROVE_ROUTER_H_INCLUDED
#include "trove.pb-c.h"
#include "trove_cfg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_router_t trove_router_t;

//  A router for cfg (which must outlive it); each shard call waits up to
//  timeout_ms (then retries once on a fresh socket). NULL on failure.
trove_router_t *trove_router_new (const trove_cfg_t *cfg, int timeout_ms);
void trove_router_destroy (trove_router_t **self_p);

//  Send q to the shard owning q->user. NULL with *err_p when no shard
//  answered; a reply with error set is returned as is.
Trove__QueryReply *trove_router_user (trove_router_t *self, const Trove__Query *q, char **err_p);
//  Send q to every shard; replies [i] for shard i (NULL: no answer).
//  Returns the number of answers.
int trove_router_all (trove_router_t *self, const Trove__Query *q, Trove__QueryReply **replies);

//  The board's entries in order with their ranks: the first limit, or
//  the limit after (after_score, after_user) when after_user is set.
Trove__QueryReply *trove_router_top (trove_router_t *self, const char *hunt, const char *period, size_t limit,
                                     int64_t after_score, const char *after_user, char **err_p);
//  user's rank and score (entry and balance) with k entries on each side.
Trove__QueryReply *trove_router_around (trove_router_t *self, const char *hunt, const char *period,
                                        const char *user, size_t k, char **err_p);
//  The boards of hunt (period, users summed over shards), at most limit.
Trove__QueryReply *trove_router_boards (trove_router_t *self, const char *hunt, size_t limit, char **err_p);
//  A coin and its earning events. A coin id does not name its shard: every
//  shard is asked and the cost is the sum of their costs. Returns the
//  holding shard's reply; else a reply with error "not_found" when every
//  shard answered, or a shard's other error (cost_limit, ...); NULL with
//  *err_p ("N shard(s) did not answer: ...") when it is nowhere among the
//  shards that answered.
Trove__QueryReply *trove_router_coin (trove_router_t *self, const char *coin_id, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
