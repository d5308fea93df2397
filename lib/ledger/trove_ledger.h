/*  trove_ledger - a scorer shard's durable state: a write-ahead log and the
    ledger tables, in two LMDB environments. The scorer is the only writer.

    Why two: a commit in LMDB rewrites every page it touched, and the ledger
    tables are keyed by user, coin id and (source, id): random keys, so one
    event dirties several pages. Committing them synchronously for every
    small batch costs milliseconds of disk per batch. So the answer waits
    only for the log, which is append-only (a few pages per commit), and a
    background thread applies the log to the tables in large transactions.

    Writes happen in batches (group commit): trove_ledger_begin, then
    trove_ledger_apply for each event, then trove_ledger_commit. apply checks
    dedup against the tables AND the log entries not applied yet, scores the
    event with trove_engine (rule state read from the batch, the log entries
    not applied yet, then the tables) and stages one log record (event, its
    coin changes, its new rule states, req_id). commit makes
    the batch durable in the log (fsync): from then on the event is accepted,
    and its coins exist. The apply thread then writes, in one transaction per
    backlog: dedup, event log by partition, coins, user index, balances, award
    log, and the last applied log sequence number. Applied log entries are
    trimmed from the log.

    Layout of the tables (env `DIR`; integers big-endian). Only dedup,
    coinids and users take random keys, and their entries are small; coins
    and events grow at their right edge:
      dedup      source NUL id             -> req_id u64 | partition u32 | pseq u64
      events     partition u32 | pseq u64  -> EventRecord (protobuf)
      coins      aseq u64                  -> Msg{award: Coin} (protobuf): the award log
      coinids    coin id (16 bytes)        -> aseq u64 of its latest entry (mint or revocation)
      users      user NUL                  -> balance i64 (little-endian)
                 user NUL aseq u64         -> (empty): the user's coins, newest last
      states     user NUL hunt             -> HuntState (protobuf): trove_engine's rule state
      meta       "applied"                 -> last applied log sequence u64
                 "identity"                -> the owner's shard, index, partitions (text)
    and of the log (`DIR/wal`, trove_wal): one LogRecord (protobuf) per lseq.

    Reads see the tables, i.e. what has been applied. trove_ledger_applied
    and trove_ledger_committed tell how far behind they are; a caller that
    needs to see its own writes waits for the apply notification (the fd).

    A revocation is a coin entry of its own (revoked = true, a new aseq,
    the value it takes back): nothing is ever deleted, and a coin's latest
    entry says whether it is live. An undo whose target is outside every
    engine buffer revokes the user's live coins citing the target; for that
    it waits until the tables hold everything committed (undo is rare). An
    undo whose target has not arrived leaves a dedup marker (partition
    0xFFFFFFFF): the target is then stored when it comes, never scored.

    Caveats:
    - SIGKILL at any instant: a log commit is atomic; an uncommitted batch
      leaves no trace; at restart the unapplied log tail is applied again
      (idempotent: applied lseq is stored with the tables). Stale reader
      slots of a killed process are cleared at open (mdb_reader_check).
    - Full map or full disk in the log: the batch is refused (-1, nothing
      written; the caller answers RETRY). In the tables: the apply thread
      stops and retries; trove_ledger_begin then refuses new batches, and the
      log keeps every accepted event until a restart with a bigger map.
    - Durability: with sync (default) both environments fsync every commit;
      without it a commit survives a process kill but not an OS crash. */
#ifndef TROVE_LEDGER_H_INCLUDED
#define TROVE_LEDGER_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_board.h"
#include "trove_rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_ledger_t trove_ledger_t;

//  Open (creating if needed) the ledger in dir for shard index `shard`.
//  NULL on failure with *err_p (caller frees).
trove_ledger_t *trove_ledger_new (const char *dir, uint32_t shard, size_t map_size, bool sync, char **err_p);
void trove_ledger_destroy (trove_ledger_t **self_p);

//  At most this many stored events of a user are re-read to place one
//  event exactly (default 20,000; 0: no limit).
void trove_ledger_set_history_max (trove_ledger_t *self, size_t max);
//  Why the last trove_ledger_apply answered TROVE__STATUS__REJECTED.
const char *trove_ledger_reject_reason (trove_ledger_t *self);
//  Since start (for metrics): re-derives done to place an event (late
//  events, undo) and the stored events they read; reconciler requests that
//  found something to repair, and the entries they wrote.
typedef struct {
    uint64_t rederives, rederive_events;
    uint64_t repairs, repair_entries;
} trove_ledger_counts_t;
void trove_ledger_counts (trove_ledger_t *self, trove_ledger_counts_t *counts);

//  Claim (source, id) for this event's content (trove_event_content_hash)
//  within the batch: the cluster-wide identity of events, kept by the shard
//  that owns the partition of hash(source NUL id) (docs/architecture.md,
//  "Event identity"). *status_p: ACCEPTED (claimed now, committed with the
//  batch, or claimed before by the same content) or REJECTED (claimed by
//  other content: reason id_conflict, a sentence in why). Returns 0, or -1
//  on a storage error (abort the batch).
int trove_ledger_claim (trove_ledger_t *self, const Trove__Event *event, Trove__Status *status_p, char *why,
                        size_t why_size);

//  Start a batch. Returns 0, or -1 if LMDB refuses (e.g. MDB_PANIC).
int trove_ledger_begin (trove_ledger_t *self);

//  Apply one validated event within the batch. Sets *status_p to
//  TROVE__STATUS__ACCEPTED (new event, scored; or a resubmission of an event
//  accepted under the same req_id), TROVE__STATUS__DUPLICATE (accepted
//  before under another req_id), or TROVE__STATUS__REJECTED with the reason
//  in trove_ledger_reject_reason (nothing written). Scoring is exact for
//  any arrival order: an event the rules engine cannot place in its state,
//  an undo of a stored event and a reconciler's request re-derive the user
//  from its stored events, in this batch (rejected `history_limit` when the
//  user has more than trove_ledger_set_history_max of them). Returns 0, or
//  -1 on a storage error; after -1 the batch must be aborted.
int trove_ledger_apply (trove_ledger_t *self, const Trove__Event *event, uint32_t partition, uint64_t req_id,
                        int64_t accepted_us, const trove_rules_t *rules, Trove__Status *status_p);

//  Commit the batch. Returns 0, or -1 (batch discarded, ledger unchanged).
int trove_ledger_commit (trove_ledger_t *self);
//  Discard the batch. Safe when no batch is open.
void trove_ledger_abort (trove_ledger_t *self);

//  Awards of the last committed batch, packed Msg{award} frames ready to publish.
//  Valid until the next trove_ledger_begin.
size_t trove_ledger_awards_ready (trove_ledger_t *self, void ***frames_p, size_t **sizes_p);

//  Hunt and rule of the coin in award frame index (of the last committed
//  batch); the strings belong to the rules.
void trove_ledger_award_rule (trove_ledger_t *self, size_t index, const char **hunt_p, const char **rule_p);

//  Is the coin in award frame index a revocation?
bool trove_ledger_award_revoked (trove_ledger_t *self, size_t index);

//  Bytes of the map in use: tables and log (LMDB's last page, not the file).
void trove_ledger_sizes (trove_ledger_t *self, uint64_t *tables_p, uint64_t *log_p);

//  Log sequence numbers: last committed, last applied to the tables.
uint64_t trove_ledger_committed (trove_ledger_t *self);
uint64_t trove_ledger_applied (trove_ledger_t *self);
//  The last committed record of user that the tables do not hold yet, or 0:
//  a query about one user waits only for that (main thread).
uint64_t trove_ledger_user_pending (trove_ledger_t *self, const char *user);
//  True while the apply thread cannot write the tables (full map, disk
//  error): they stay behind the log until that is fixed.
bool trove_ledger_apply_failing (trove_ledger_t *self);
//  Events committed but not yet applied.
size_t trove_ledger_backlog (trove_ledger_t *self);
//  A file descriptor that becomes readable when the apply thread made
//  progress; then call trove_ledger_absorb (main thread).
int trove_ledger_fd (trove_ledger_t *self);
void trove_ledger_absorb (trove_ledger_t *self);
//  Ask the apply thread not to wait for a bigger transaction (a reader
//  waits for the tables).
void trove_ledger_hurry (trove_ledger_t *self);
//  Block until everything committed is applied, or timeout_ms passed.
//  Returns 0, or -1 on timeout or when the apply thread is failing.
int trove_ledger_wait_applied (trove_ledger_t *self, int timeout_ms);

//  Text of the last storage error ("MDB_MAP_FULL: ..."), or "".
const char *trove_ledger_error (trove_ledger_t *self);
//  True when the last failure was a full map or a full disk.
bool trove_ledger_full (trove_ledger_t *self);

//  --- reads (each in its own short read transaction) -----------------------
uint64_t trove_ledger_last_aseq (trove_ledger_t *self);
uint64_t trove_ledger_event_count (trove_ledger_t *self);

//  The reads below charge cost (one unit per LMDB entry read; NULL: not
//  counted) and fail with -1 and cost->over set past its limit.
//  Balance of a user (0 when unknown). Returns 0 or -1.
int trove_ledger_balance (trove_ledger_t *self, const char *user, int64_t *balance_p, trove_cost_t *cost);

//  Up to limit coins of a user, newest first, starting after cursor ("" for
//  the start). Coins are unpacked into *coins_p (free with
//  trove_ledger_free_coins); *next_p gets the cursor for the next page
//  (caller frees; "" when there is no more). Returns 0 or -1.
int trove_ledger_coins (trove_ledger_t *self, const char *user, const char *cursor, size_t limit,
                        Trove__Coin ***coins_p, size_t *n_p, char **next_p, trove_cost_t *cost);

//  One coin and the records of the events that earned it. Returns 0, 1 when
//  the coin does not exist, -1 on error. Free with trove_ledger_free_coins /
//  trove_ledger_free_events.
int trove_ledger_coin (trove_ledger_t *self, const char *coin_id, Trove__Coin **coin_p,
                       Trove__EventRecord ***events_p, size_t *n_p, trove_cost_t *cost);
//  A user's rule state of one hunt as the tables hold it (*state_p NULL
//  when none). Free with trove__hunt_state__free_unpacked. Returns 0 or -1.
int trove_ledger_state (trove_ledger_t *self, const char *user, const char *hunt, trove_cost_t *cost,
                        Trove__HuntState **state_p);

//  --- the leaderboards (trove_board.h), read in one snapshot ------------------
//  A read snapshot of the tables: several reads see the same state. Main
//  thread only, one at a time (it is the ledger's reusable read
//  transaction: no allocation). NULL on error (trove_ledger_error). End it
//  with trove_ledger_read_end before the caller waits for anything: a held
//  snapshot pins old pages and makes the file grow.
typedef struct _trove_ledger_read_t trove_ledger_read_t;
trove_ledger_read_t *trove_ledger_read_begin (trove_ledger_t *self);
//  End the snapshot; *read_p becomes NULL. Safe with NULL.
void trove_ledger_read_end (trove_ledger_read_t **read_p);

//  The board reads below charge cost as the other reads do and return 0, or
//  -1 (cost->over set past its limit, or a storage error). Entries are
//  freed with trove_board_entries_free.
//  Up to limit entries of board (hunt, period) in board order, starting at
//  the top, or after (after_score, after_user) when after_user is not NULL.
//  Entries get user and score (rank 0: the caller knows positions).
//  *more_p: entries follow.
int trove_ledger_board_top (trove_ledger_read_t *read, const char *hunt, const char *period,
                            int64_t after_score, const char *after_user, size_t limit, trove_cost_t *cost,
                            Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
//  Users with a score above score, and with exactly score, for each of n
//  scores.
int trove_ledger_board_counts (trove_ledger_read_t *read, const char *hunt, const char *period,
                               const int64_t *scores, size_t n, trove_cost_t *cost, uint64_t *above,
                               uint64_t *equal);
//  The k entries just before (score, user) in board order (closest last)
//  and the k just after (closest first); (score, user) itself is in
//  neither.
int trove_ledger_board_window (trove_ledger_read_t *read, const char *hunt, const char *period, int64_t score,
                               const char *user, size_t k, trove_cost_t *cost, Trove__BoardEntry ***before_p,
                               size_t *nbefore_p, Trove__BoardEntry ***after_p, size_t *nafter_p);
//  A user's score on a board (0 when not on it); *excluded_p when the user
//  is excluded (may be NULL).
int trove_ledger_board_score (trove_ledger_read_t *read, const char *user, const char *hunt,
                              const char *period, trove_cost_t *cost, int64_t *score_p, bool *excluded_p);
//  A user's all-time score per hunt (entries with hunt and score; "*" left
//  out).
int trove_ledger_board_hunts (trove_ledger_read_t *read, const char *user, trove_cost_t *cost,
                              Trove__BoardEntry ***entries_p, size_t *n_p);
//  The boards of a hunt (entries with period and users), weeks newest
//  first, then days newest first, then "all"; at most limit.
int trove_ledger_board_list (trove_ledger_read_t *read, const char *hunt, size_t limit, trove_cost_t *cost,
                             Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
//  The excluded users (entries with user and reason), at most limit.
int trove_ledger_board_excluded (trove_ledger_read_t *read, size_t limit, trove_cost_t *cost,
                                 Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p);
//  Exclude a user from every leaderboard (staff, banned), or put the user
//  back (excluded false). Durable when it returns 0. Its own write
//  transaction: it waits for the apply thread's (milliseconds). -1 on error.
int trove_ledger_set_excluded (trove_ledger_t *self, const char *user, bool excluded, const char *reason);

//  Awards with aseq >= from, at most limit, in aseq order.
int trove_ledger_awards (trove_ledger_t *self, uint64_t from, size_t limit, Trove__Coin ***coins_p,
                         size_t *n_p);

//  Every stored event of one partition (or all when partition < 0), in
//  (partition, pseq) order, in one read snapshot. fn returns 0 to go on, 1
//  to stop, -1 to fail. Returns 0 or -1.
typedef int (trove_ledger_event_fn) (void *arg, const Trove__EventRecord *record);
int trove_ledger_scan_events (trove_ledger_t *self, int64_t partition, trove_ledger_event_fn *fn, void *arg);

//  Up to limit stored events of a partition with pseq >= from, in pseq
//  order, and the partition's last stored pseq (same snapshot): what a
//  reconciler pulls. Free with trove_ledger_free_events. Returns 0 or -1.
int trove_ledger_events_from (trove_ledger_t *self, uint32_t partition, uint64_t from, size_t limit,
                              Trove__EventRecord ***records_p, size_t *n_p, uint64_t *last_p);

//  The live coins of a user: each coin id whose latest entry is a mint.
//  Free with trove_ledger_free_coins. Returns 0 or -1.
int trove_ledger_live_coins (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p);

//  A user's stored sums checked against its live coins, in one snapshot:
//  the balance (stored) and the sum of the live coins' values, and how many
//  of the user's all-time board scores (each hunt's and "*") differ from
//  the sums of its live coins in that hunt (or in all). A ledger that keeps
//  its invariant has balance == live_sum and boards_differ == 0.
typedef struct {
    int64_t balance;         //  stored
    int64_t live_sum;        //  sum of live coins
    uint32_t boards_differ;  //  boards whose stored score is not the sum
} trove_ledger_audit_t;

//  The user's live coins as the ledger stood at as_of_ms (processing time:
//  the entries written up to then, by the scorer's clock), each coin's
//  latest entry by then if it is not a revocation. cost (or NULL) pays one
//  unit per entry read. Returns 0 or -1 (cost->over set when it ran out).
int trove_ledger_live_coins_as_of (trove_ledger_t *self, const char *user, int64_t as_of_ms,
                                   trove_cost_t *cost, Trove__Coin ***coins_p, size_t *n_p);

//  The same as trove_ledger_live_coins, with the audit of the user's sums.
int trove_ledger_audit_user (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p,
                             trove_ledger_audit_t *audit);

void trove_ledger_free_coins (Trove__Coin **coins, size_t n);
void trove_ledger_free_events (Trove__EventRecord **events, size_t n);

//  Bind the ledger to the process that owns it: identity (shard name, index,
//  partitions) is recorded in the tables at the first call and must be the
//  same at every later one. Returns 0, or -1 with *err_p (caller frees) when
//  the ledger belongs to another identity (a config naming the wrong data
//  directory: the caller must refuse to start) or on a storage error.
int trove_ledger_identity (trove_ledger_t *self, const char *identity, char **err_p);

//  --- backups (trove_ledger_backup.c) ----------------------------------------

//  What a copy of the tables holds. position: its apply mark, the lseq of
//  the last log record in it (every record up to it, none after).
typedef struct {
    uint64_t position;
    uint64_t events;  //  stored events
    uint64_t coins;   //  award log entries (mints and revocations)
    uint64_t bytes;   //  size of data.mdb
} trove_ledger_copy_info_t;

//  Copy the tables of the ledger in dir, live or not, into the directory out
//  (created; must not hold a data.mdb): LMDB's compacting copy of one read
//  snapshot, then synced. The copy is a whole ledger at its position; the
//  log is not needed (a scorer started on it begins a new log after the
//  position). Only from a process that does not have this ledger open
//  (LMDB: closing a second handle on an environment drops the first one's
//  locks), e.g. trovectl. Returns 0, or -1 with *err_p (caller frees).
int trove_ledger_copy (const char *dir, size_t map_size, const char *out, trove_ledger_copy_info_t *info,
                       char **err_p);

//  Read what the tables in dir hold, read-only and without a lock file (a
//  copy no process has open). Returns 0, or -1 with *err_p (caller frees).
int trove_ledger_copy_info (const char *dir, trove_ledger_copy_info_t *info, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
