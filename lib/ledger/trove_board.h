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
    with -1 and cost->over set once the limit would be passed.

    This header holds what callers outside the ledger need (periods, cost,
    entries); the boards are read through the ledger's read snapshot
    (trove_ledger_board_* in trove_ledger.h). The tables and their reads in
    an LMDB transaction are ledger-internal: trove_board_internal.h. */
#ifndef TROVE_BOARD_H_INCLUDED
#define TROVE_BOARD_H_INCLUDED
#include "trove.pb-c.h"
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

//  Is board period valid? ("all", "day:YYYY-MM-DD", "week:YYYY-MM-DD" a Monday)
bool trove_board_period_valid (const char *hunt, const char *period);
//  The period names of a local day number: day and week (its Monday).
void trove_board_day_period (int64_t day, char *buf, size_t size);
void trove_board_week_period (int64_t day, char *buf, size_t size);

//  Free entries returned by a board read.
void trove_board_entries_free (Trove__BoardEntry **entries, size_t n);

#ifdef __cplusplus
}
#endif
#endif
