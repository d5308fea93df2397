/*  trove_ledger_internal - what the ledger's files share: the ledger's
    struct and the functions one file calls in another. Private: included
    only by lib/ledger/trove_ledger*.c (trove_ledger.h is the public API).

    The ledger is one class in five files, one concern each:
      trove_ledger.c         open, close, recovery, the apply mark, shared helpers
      trove_ledger_log.c     the batch: begin/apply/commit, dedup, claims,
                             pseq counters, award frames, the engine's state store
      trove_ledger_derive.c  re-deriving one user from its stored events
      trove_ledger_apply.c   the apply thread: log records -> tables, migrations
      trove_ledger_read.c    every read of the tables, the read snapshot API
    Internal functions are named by the object they act on: ledger_* are
    shared between the files (declared here); a file's own helpers are
    static and carry the prefix of their object (log_*, apply_*, derive_*,
    read_*). */
#ifndef TROVE_LEDGER_INTERNAL_H_INCLUDED
#define TROVE_LEDGER_INTERNAL_H_INCLUDED

#include "trove_board_internal.h"
#include "trove_engine.h"
#include "trove_event.h"
#include "trove_hash.h"
#include "trove_ledger.h"
#include "trove_wal.h"

#include <czmq.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_PARTITIONS 65536
#define KEY_MAX 512
#define APPLY_MAX 10000  //  log records per apply transaction: bounds a burst of writes
//  The tables are written in large transactions: every page a transaction
//  touches is rewritten, and random keys touch many, so fewer, bigger
//  transactions cost far less disk per event. The thread waits for
//  APPLY_MIN records or APPLY_DELAY_MS, unless a reader is waiting.
#define APPLY_MIN 5000
//  Size of one log segment (trove_wal), at most a quarter of the map.
#define LOG_SEGMENT (32ULL * 1024 * 1024)
#define APPLY_DELAY_MS 50
//  Behind by more than two full transactions (a burst, or boards of a
//  million users whose every update is a random page), a transaction takes
//  up to this many times APPLY_MAX records: it writes each page it touches
//  once however many records touch it, so catching up gets cheaper per record.
#define APPLY_CATCHUP 5

typedef struct {
    uint32_t partition;  //  partition whose counter moved in this batch
    uint64_t before;     //  its value before the batch
} ledger_undo_t;

typedef struct {
    uint64_t req_id;                             //  submission that was accepted
    uint64_t lseq;                               //  its log record
    bool undone;                                 //  not arrived: an undo named it first (see MARKER)
    bool claim;                                  //  a claim (key "\x01source\x1fid"), not a dedup entry
    uint8_t content [TROVE_EVENT_CONTENT_SIZE];  //  the claim's content hash
} ledger_pending_t;

//  A record of a user, committed (or staged) and not applied yet: queries
//  about that user wait for it, others do not (read-your-writes per user).
//  A user's record not applied yet: its lseq and a copy of the packed
//  LogRecord, so that a re-derive reads the user's events and coins from
//  the tables plus these, without waiting for the apply thread.
typedef struct {
    uint64_t lseq;
    void *data;  //  packed LogRecord (after user, owned with the mark)
    size_t size;
    char user [];
} ledger_mark_t;

//  A user's rule state for a hunt, written by a record not applied yet.
typedef struct {
    uint64_t lseq;  //  the record that wrote it
    char *hunt;
    void *data;
    size_t size;  //  0: deleted
} ledger_state_t;

//  Dedup value of an event that an undo named before it arrived: the event
//  is then stored when it comes but never scored. The marker keeps a tag of
//  the undo's user in its req_id slot: an undo takes back its own user's
//  event only (docs/events.md), so an event of another user under that
//  (source, id) is scored as if no undo had named it.
#define MARKER_PARTITION 0xFFFFFFFFu

//  The user tag of a marker (never 0: 0 is a marker from before tags, which
//  applies to any user).
static inline uint64_t
ledger_user_tag (const char *user)
{
    return trove_hash_fnv1a64 (user, strlen (user)) | 1;
}

//  Hunt, rule and id of an award frame's coin (for metrics and undo).
typedef struct {
    char hunt [72], rule [72];  //  rule ids are at most 64 characters
    char id [TROVE_COIN_ID_LEN + 1];
    bool revoked;
} ledger_frame_meta_t;

//  A packed Msg{award} is the tag of field 5, the coin's length, the coin;
//  the same coin as LogRecord field 3 differs only in the tag byte, so each
//  coin is packed once and spliced into both.
#define TAG_MSG_AWARD 0x2a  //  field 5, length-delimited
#define TAG_LOG_COINS 0x1a  //  field 3, length-delimited

typedef struct _ledger_record_t ledger_record_t;
struct _ledger_record_t {
    uint64_t lseq;  //  log sequence number
    void *data;     //  packed LogRecord
    size_t size;
    ledger_record_t *next;
};

//  The main thread's read snapshot, as the query API hands it out.
struct _trove_ledger_read_t {
    trove_ledger_t *ledger;
    MDB_txn *txn;
};

struct _trove_ledger_t {
    //  Tables (applied state)
    MDB_env *env;
    MDB_dbi dedup, events, coins, coinids, users, meta, states;
    MDB_dbi uevents;             //  user NUL partition pseq: a user's events, for re-derives
    MDB_dbi claims;              //  source NUL id -> content hash: the cluster-wide identity of events
    trove_board_t *board;        //  leaderboard tables (deltas: apply thread only)
    MDB_txn *rtxn;               //  main thread's reusable read transaction
    trove_ledger_read_t reader;  //  rtxn as trove_ledger_read_begin hands it out
    //  Write-ahead log
    trove_wal_t *wal;
    uint64_t log_max;  //  bytes of unapplied records the log may hold (the map size)
    bool in_batch;     //  a batch is open (trove_ledger_begin .. commit/abort)

    uint32_t shard;        //  shard index, stamped on coins
    uint64_t *pseq;        //  last pseq per partition (valid where loaded)
    uint8_t *pseq_loaded;  //  1 when pseq[p] is known
    ledger_undo_t *undo;   //  counters to restore if the batch aborts
    size_t nundo, undo_cap;
    uint64_t lseq, lseq_pending;
    uint64_t aseq, aseq_pending;
    uint64_t nevents, nevents_pending;

    //  Dedup entries committed (or staged) but not applied yet, by
    //  "source \x1f id" (\x1f cannot occur in valid text).
    zhashx_t *pending;
    zlistx_t *pending_order;  //  keys in lseq order, for removal once applied
    size_t staged_keys;       //  keys added by the open batch (at the tail)
    //  Users with records not applied yet: user -> uint64_t lseq of the last.
    zhashx_t *users_pending;
    zlistx_t *users_order;    //  ledger_mark_t in lseq order, for removal once applied (owns them)
    zhashx_t *users_records;  //  user -> zlistx of its marks in users_order (borrowed), lseq order
    zlistx_t *users_staged;   //  ledger_mark_t of the open batch

    ledger_record_t *batch_head, *batch_tail;  //  records of the open batch
    void **frames;                             //  packed Msg{award} of the batch
    size_t *sizes;
    ledger_frame_meta_t *frame_meta;  //  what each frame's coin is
    size_t nframes, frames_cap;
    size_t nready;  //  frames of the last committed batch

    //  Apply thread
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    ledger_record_t *queue_head, *queue_tail;  //  committed, not applied (mutex)
    size_t queued;                             //  records in the queue (mutex)
    bool stop;                                 //  (mutex)
    bool urgent;                               //  a reader waits: apply now (mutex)
    size_t apply_min;                          //  records that make a transaction worth it
    size_t apply_max;                          //  records at most per transaction
    int64_t apply_delay_ms;                    //  or the time the oldest may wait
    int64_t first_queued_us;                   //  when the oldest queued record came (mutex)
    _Atomic uint64_t applied;                  //  last applied lseq
    _Atomic uint64_t trimmable;                //  applied and durable in the tables: may leave the log
    _Atomic bool apply_failing;                //  the last apply attempt failed
    char apply_error [256];                    //  (mutex)
    bool apply_full;                           //  (mutex)
    int efd;                                   //  eventfd: apply progress
    bool sync;

    //  Rule state (trove_engine): "user \x1f hunt" -> ledger_state_t
    zhashx_t *states_staged;   //  written by the open batch
    zhashx_t *states_pending;  //  committed, not applied yet
    //  The record being built: its coins and states
    size_t rec_first_frame;  //  the record's coins are the frames from here on
    size_t ncoins, coins_cap;
    Trove__StateEntry *rec_states;  //  data borrowed from states_staged
    Trove__StateEntry **rec_state_ptrs;
    size_t nstates, states_cap;
    const Trove__Event *scoring;  //  the event being scored
    int64_t scoring_accepted_us;
    bool batch_reading;  //  rtxn is held for the open batch

    size_t history_max;            //  a re-derive reads at most this many of a user's events
    bool marks_lost;               //  a user mark was lost (OOM): re-derives wait for everything
    uint64_t snap_applied;         //  the `applied` mark of the batch's fresh snapshot (derive_user_latest)
    const char *reject_reason;     //  why the last trove_ledger_apply said REJECTED
    trove_ledger_counts_t counts;  //  re-derives and repairs (metrics)

    char error [256];  //  last storage error (main thread)
    bool full;         //  last error was MAP_FULL / ENOSPC
};

//  --- trove_ledger.c: shared helpers -----------------------------------------
//  Note an LMDB error in self->error (and self->full). Returns -1.
int ledger_fail_rc (trove_ledger_t *self, const char *what, int rc);
void ledger_records_free (ledger_record_t *head);
//  The key "a NUL b" into out (KEY_MAX bytes). Its length, or 0 when it
//  does not fit.
size_t ledger_key_pair (const char *a, const char *b, uint8_t *out);
//  32 hex chars -> 16 bytes. Returns 0 or -1.
int ledger_coin_id_raw (const char *hex, uint8_t *out);
//  The balance key of a user: user NUL (its coins follow: user NUL aseq).
size_t ledger_balance_key (const char *user, uint8_t *out);
//  Unpack a stored coin (a packed Msg{award}) into a standalone Coin.
Trove__Coin *ledger_coin_unpack (const MDB_val *val);
//  The coin with this aseq. Returns 0, 1 when absent, -1 on error.
int ledger_coin_at (trove_ledger_t *self, MDB_txn *txn, const void *aseq_be, Trove__Coin **coin_p);
//  zhashx destructor of an owned Trove__Coin.
void ledger_coin_item_free (void **item);
//  The last stored pseq of partition p (0 when none) with cur, a cursor on
//  events. Returns 0, MDB_NOTFOUND or an LMDB error.
int ledger_pseq_last (MDB_cursor *cur, uint32_t p, uint64_t *last_p);
//  The main thread's snapshot of the tables: the batch's while a batch
//  reads, else a fresh one. Returns 0 or -1 (self->error set).
int ledger_snapshot_begin (trove_ledger_t *self, MDB_txn **txn_p);
//  Let it go (unless the batch holds it): never hold one while waiting.
void ledger_snapshot_end (trove_ledger_t *self);
//  A snapshot (as ledger_snapshot_begin) and a cursor on dbi in it. Returns
//  0, or -1 with nothing held (self->error: "what: ...").
int ledger_snapshot_cursor (trove_ledger_t *self, MDB_dbi dbi, const char *what, MDB_txn **txn_p,
                            MDB_cursor **cur_p);
//  Wait until the tables hold every record up to lseq. 0, or -1 after
//  timeout_ms or when the apply thread fails.
int ledger_wait_applied_to (trove_ledger_t *self, uint64_t lseq, int timeout_ms);

//  --- trove_ledger_log.c: the batch --------------------------------------------
void ledger_frames_clear (trove_ledger_t *self);
void ledger_state_destroy (void **item);
//  Record a state in a map (copying the data).
int ledger_state_set (zhashx_t *map, const char *user, const char *hunt, uint64_t lseq, const void *data,
                      size_t size);
//  A dedup entry (or an undo's marker) committed (or staged), not applied yet.
void ledger_pending_add (trove_ledger_t *self, const char *source, const char *id, uint64_t req_id,
                         uint64_t lseq, bool undone);
//  A claim committed (or staged), not applied yet.
void ledger_claim_pending_add (trove_ledger_t *self, const char *source, const char *id,
                               const uint8_t *content, uint64_t lseq);
//  Note that user has a record at lseq (to list: users_staged for a batch
//  that may still abort, users_order once committed).
int ledger_user_mark (zlistx_t *list, const char *user, uint64_t lseq, const void *data, size_t size);
//  The batch committed: its users' marks become pending.
void ledger_users_commit (trove_ledger_t *self);
//  The batch stops holding its snapshot.
void ledger_batch_end_reading (trove_ledger_t *self);
//  One coin change (trove_change_fn): joins the record being built and the
//  batch's award frames with the next aseq.
int ledger_log_change (void *arg, const trove_change_t *ch);
//  The engine's state store (trove_store_t): the open batch, then the
//  unapplied log, then the tables.
int ledger_store_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p);
int ledger_store_put (void *arg, const char *user, const char *hunt, const void *data, size_t size);

//  --- trove_ledger_derive.c ---------------------------------------------------
//  Re-derive a user in the open batch. Returns 0, 1 when the user has more
//  than max stored events (nothing written), -1 on error.
int ledger_derive_user (trove_ledger_t *self, const char *user, const Trove__Event *ev,
                        const trove_rules_t *rules, size_t max, const char *reason, const char *run);

//  --- trove_ledger_apply.c ----------------------------------------------------
void *ledger_apply_thread (void *arg);
//  Hand committed records to the apply thread.
void ledger_apply_enqueue (trove_ledger_t *self, ledger_record_t *head, ledger_record_t *tail, size_t n);
//  One-time migrations of the tables from older layouts, in txn. Returns 0,
//  or -1 with the reason in err.
int ledger_apply_migrations (trove_ledger_t *self, MDB_txn *txn, const char *dir, char *err, size_t size);

//  --- trove_ledger_read.c -----------------------------------------------------
//  Every coin entry of a user in the tables, oldest first, into latest
//  (id -> Trove__Coin, owned: a later entry of an id replaces the earlier).
//  Returns 0 or -1.
int ledger_user_coins (trove_ledger_t *self, MDB_txn *txn, const char *user, int64_t as_of_ms,
                       trove_cost_t *cost, zhashx_t *latest);

#endif
