/*  trove_board_internal - the leaderboard tables (trove_board.h) in an LMDB
    environment: the writer's side (the ledger's apply thread) and the reads
    in a transaction. Ledger-internal: included by lib/ledger/trove_board.c, the
    ledger's files (trove_ledger_internal.h), and the board's own unit test,
    benchmark and table tool; everyone else reads the boards through
    trove_ledger.h's read snapshot. */
#ifndef TROVE_BOARD_INTERNAL_H_INCLUDED
#define TROVE_BOARD_INTERNAL_H_INCLUDED
#include "trove_board.h"
#include <lmdb.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_board_t trove_board_t;

//  Open (creating) the tables in txn (a write transaction of env; its
//  maxdbs must leave room for 5 more). NULL with *err_p on failure.
trove_board_t *trove_board_new (MDB_txn *txn, char **err_p);
void trove_board_destroy (trove_board_t **self_p);

//  --- writing (the ledger's apply thread) ------------------------------------
//  Count a coin entry (a mint adds its value, a revocation takes it back)
//  on its boards. Kept in memory until trove_board_flush.
int trove_board_add (trove_board_t *self, const Trove__Coin *coin);
//  Write what was added since the last flush into txn. Returns 0 or an
//  LMDB error (the caller aborts txn). The added deltas are gone either way.
int trove_board_flush (trove_board_t *self, MDB_txn *txn);
//  Forget what was added since the last flush (its transaction was aborted).
void trove_board_discard (trove_board_t *self);
//  Exclude a user from every board (excluded true) or put the user back.
//  Returns 0 or an LMDB error.
int trove_board_set_excluded (trove_board_t *self, MDB_txn *txn, const char *user, bool excluded,
                              const char *reason);

//  --- reading (any thread, in txn) ---------------------------------------------
//  Up to limit entries in board order, starting at the top, or after
//  (after_score, after_user) when after_user is not NULL. Entries get user
//  and score (rank 0: the caller knows positions). *more_p: entries follow.
//  Free the entries with trove_board_entries_free. Returns 0 or -1.
int trove_board_top (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period,
                     int64_t after_score, const char *after_user, size_t limit, trove_cost_t *cost,
                     Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
//  Users with a score above score, and with exactly score, for each of n
//  scores (nodes shared between the paths are read once).
int trove_board_counts (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period,
                        const int64_t *scores, size_t n, trove_cost_t *cost, uint64_t *above,
                        uint64_t *equal);
//  The k entries just before (score, user) in board order (closest last)
//  and the k just after (closest first); (score, user) itself is in
//  neither. Free both with trove_board_entries_free.
int trove_board_window (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period,
                        int64_t score, const char *user, size_t k, trove_cost_t *cost,
                        Trove__BoardEntry ***before_p, size_t *nbefore_p, Trove__BoardEntry ***after_p,
                        size_t *nafter_p);
//  A user's score on a board (0 when not on it); *excluded_p when the user
//  is excluded (may be NULL).
int trove_board_score (trove_board_t *self, MDB_txn *txn, const char *user, const char *hunt,
                       const char *period, trove_cost_t *cost, int64_t *score_p, bool *excluded_p);
//  A user's all-time score per hunt (the per-hunt balances; "*" left out,
//  unread), as entries with hunt and score.
int trove_board_hunts (trove_board_t *self, MDB_txn *txn, const char *user, trove_cost_t *cost,
                       Trove__BoardEntry ***entries_p, size_t *n_p);
//  The boards of a hunt (entries with period and users) in reverse name
//  order: weeks newest first, then days newest first, then "all"; at most
//  limit.
int trove_board_list (trove_board_t *self, MDB_txn *txn, const char *hunt, size_t limit, trove_cost_t *cost,
                      Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
//  The excluded users (entries with user and reason), at most limit.
int trove_board_excluded (trove_board_t *self, MDB_txn *txn, size_t limit, trove_cost_t *cost,
                          Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
#ifdef __cplusplus
}
#endif
#endif
