/*  trove_queries - the scorer's answers to the player-facing queries:
    balance (total and per hunt), progress, and the leaderboard kinds
    (board_top, board_around, board_counts, board_list, board_exclude,
    board_excluded). Each one reads one snapshot of the ledger tables and
    counts its cost (trove_board.h); docs/queries.md gives every kind, its
    fields and its cost. The router that merges shards is trove_router. */
#ifndef TROVE_QUERIES_H_INCLUDED
#define TROVE_QUERIES_H_INCLUDED
#include "trove_ledger.h"
#include "trove_rules.h"
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What an answer allocated; freed by trove_queries_free once it is sent.
typedef struct {
    Trove__BoardEntry **entries;
    size_t nentries;
    uint64_t *counts;  //  above, then equal
    Trove__Progress **progress;
    size_t nprogress;
    char error [256];
} trove_queries_mem_t;

//  Is kind answered here?
bool trove_queries_handles (const char *kind);

//  Answer q into reply (error, cost and the kind's fields), within
//  max_cost units. limit is the entries wanted (already bounded).
void trove_queries_answer (trove_ledger_t *ledger, const trove_rules_t *rules, const Trove__Query *q,
                           size_t limit, size_t max_cost, Trove__QueryReply *reply, trove_queries_mem_t *mem);
void trove_queries_free (trove_queries_mem_t *mem);

#ifdef __cplusplus
}
#endif
#endif
