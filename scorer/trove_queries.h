/*  trove_queries - the scorer's answers to the player-facing queries:
    balance (total and per hunt), progress, and the leaderboard kinds
    (board_top, board_around, board_counts, board_list, board_exclude,
    board_excluded). Each is the handler of its row in the query table
    (trove_query_table.h), which checks the fields the kind requires first.
    Each one reads one snapshot of the ledger tables and counts its cost
    (trove_board.h); docs/queries.md gives every kind, its fields and its
    cost. The router that merges shards is trove_router. */
#ifndef TROVE_QUERIES_H_INCLUDED
#define TROVE_QUERIES_H_INCLUDED
#include "trove_query_table.h"

#ifdef __cplusplus
extern "C" {
#endif

trove_query_fn trove_queries_balance;
trove_query_fn trove_queries_progress;
trove_query_fn trove_queries_board_top;
trove_query_fn trove_queries_board_around;
trove_query_fn trove_queries_board_counts;
trove_query_fn trove_queries_board_list;
trove_query_fn trove_queries_board_excluded;
trove_query_fn trove_queries_board_exclude;

#ifdef __cplusplus
}
#endif
#endif
