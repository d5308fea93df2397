/*  trove_board - leaderboards of one scorer shard: indexes kept in the
    ledger tables' write transaction (the apply thread's, together with the
    balances, so a board never disagrees with the coins), and reads whose
    cost is counted and bounded (docs/queries.md).

    A board is (hunt, period): hunt is a hunt id or "*" (every hunt), period
    is "all", "day:YYYY-MM-DD" or "week:YYYY-MM-DD" (its Monday), in the
    hunt's time zone: a coin counts on the day and week of its earning
    event's local date (Coin.local_day), so a late event lands on its own
    day's board and past boards are kept. "*" has only "all". A user's score
    on a board is the sum of the user's live coins counted there; a user
    with score 0 is not on it; scores above 2^40 - 1 count as 2^40 - 1.

    Order: score descending, then user id ascending (bytewise). Rank: 1 +
    the number of users with a higher score, so equal scores share a rank
    (1, 2, 2, 4). Excluded users (staff, banned) keep their coins and
    balances but are on no board.

    Tables (in the ledger's environment; integers big-endian unless noted):
      bscores   user NUL period NUL hunt         -> score i64 (little-endian)
      border    hunt NUL period NUL | ~score u64 | user -> (empty)
      bcounts   hunt NUL period NUL | level u8 | prefix u64 -> u32[16] (LE)
      boards    hunt NUL period                  -> (empty): boards that had a user
      excluded  user                             -> reason
    bcounts is a 16-way tree over the score (10 levels of 4 bits): node
    (level j, prefix p) counts the users whose score >> 4j has p as its
    high part, per digit (score >> 4j) & 15; digit 0 is counted at level 0
    only (no count of users above a score reads it elsewhere), so a score
    below 16^k touches k nodes. The users above a score are
    the sums of the digits above its own in the 10 nodes on its path: a
    rank costs 10 reads whatever the board's size. A score change rewrites
    only the nodes whose path changes (usually one).

    Cost: one unit is one LMDB entry read (a get, or a cursor step that
    yields an entry). Each read function charges its trove_cost_t and stops
    with -1 and cost->over set once the limit would be passed. */
#ifndef TROVE_BOARD_H_INCLUDED
#define TROVE_BOARD_H_INCLUDED
#include "trove.pb-c.h"
#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

//  The highest score the boards distinguish.
#define TROVE_BOARD_SCORE_MAX ((INT64_C (1) << 40) - 1)
//  The longest period name ("week:2026-03-09").
#define TROVE_BOARD_PERIOD_MAX 16

typedef struct {
    uint64_t used;   //  units read so far
    uint64_t limit;  //  0: no limit
    bool over;       //  a read was refused: the query needs more than limit
} trove_cost_t;

//  Charge n units. False (and over set) when that passes the limit.
bool trove_cost_charge (trove_cost_t *cost, uint64_t n);

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

//  --- reading (any thread, its own read transaction) ---------------------------
//  Is board period valid? ("all", "day:YYYY-MM-DD", "week:YYYY-MM-DD" a Monday)
bool trove_board_period_valid (const char *hunt, const char *period);
//  The period names of a local day number: day and week (its Monday).
void trove_board_day_period (int64_t day, char *buf, size_t size);
void trove_board_week_period (int64_t day, char *buf, size_t size);

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
void trove_board_entries_free (Trove__BoardEntry **entries, size_t n);

#ifdef __cplusplus
}
#endif
#endif
