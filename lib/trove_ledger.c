/*  trove_ledger - a scorer shard's write-ahead log and ledger tables. */
#include "trove_ledger.h"
#include "trove_board.h"
#include "trove_engine.h"
#include "trove_event.h"
#include "trove_hash.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_PARTITIONS 65536
#define KEY_MAX 512
#define APPLY_MAX 10000  //  log records per apply transaction: bounds a burst of writes
#define TRIM_MAX 4096    //  applied log entries deleted per batch
//  The tables are written in large transactions: every page a transaction
//  touches is rewritten, and random keys touch many, so fewer, bigger
//  transactions cost far less disk per event. The thread waits for
//  APPLY_MIN records or APPLY_DELAY_MS, unless a reader is waiting.
#define APPLY_MIN 5000
//  The log file is pre-written to this size once: a commit then overwrites
//  blocks the file already has, and its fdatasync flushes data only,
//  with no file-system journal commit (which would also wait for the
//  tables' writes on the same disk).
#define LOG_PREALLOC (128ULL * 1024 * 1024)
#define APPLY_DELAY_MS 50
//  Behind by more than two full transactions (a burst, or boards of a
//  million users whose every update is a random page), a transaction takes
//  up to this many times APPLY_MAX records: it writes each page it touches
//  once however many records touch it, so catching up gets cheaper per record.
#define APPLY_CATCHUP 5

typedef struct {
    uint32_t partition;  //  partition whose counter moved in this batch
    uint64_t before;     //  its value before the batch
} s_undo_t;

typedef struct {
    uint64_t req_id;  //  submission that was accepted
    uint64_t lseq;    //  its log record
    bool undone;      //  not arrived: an undo named it first (see MARKER)
    bool claim;       //  a claim (key "\x01source\x1fid"), not a dedup entry
    uint8_t content [TROVE_EVENT_CONTENT_SIZE];  //  the claim's content hash
} s_pending_t;

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
} s_user_mark_t;

//  A user's rule state for a hunt, written by a record not applied yet.
typedef struct {
    uint64_t lseq;  //  the record that wrote it
    char *hunt;
    void *data;
    size_t size;  //  0: deleted
} s_state_t;

//  Dedup value of an event that an undo named before it arrived: the event
//  is then stored when it comes but never scored. The marker keeps a tag of
//  the undo's user in its req_id slot: an undo takes back its own user's
//  event only (docs/events.md), so an event of another user under that
//  (source, id) is scored as if no undo had named it.
#define MARKER_PARTITION 0xFFFFFFFFu

//  The user tag of a marker (never 0: 0 is a marker from before tags, which
//  applies to any user).
static uint64_t
s_user_tag (const char *user)
{
    return trove_hash_fnv1a64 (user, strlen (user)) | 1;
}

//  Hunt, rule and id of an award frame's coin (for metrics and undo).
typedef struct {
    char hunt [72], rule [72];  //  rule ids are at most 64 characters
    char id [TROVE_COIN_ID_LEN + 1];
    bool revoked;
} s_frame_meta_t;

//  A packed Msg{award} is the tag of field 5, the coin's length, the coin;
//  the same coin as LogRecord field 3 differs only in the tag byte, so each
//  coin is packed once and spliced into both.
#define S_TAG_MSG_AWARD 0x2a  //  field 5, length-delimited
#define S_TAG_LOG_COINS 0x1a  //  field 3, length-delimited

typedef struct _s_record_t s_record_t;
struct _s_record_t {
    uint64_t lseq;  //  log sequence number
    void *data;     //  packed LogRecord
    size_t size;
    s_record_t *next;
};

struct _trove_ledger_t {
    //  Tables (applied state)
    MDB_env *env;
    MDB_dbi dedup, events, coins, coinids, users, meta, states;
    MDB_dbi uevents;  //  user NUL partition pseq: a user's events, for re-derives
    MDB_dbi claims;   //  source NUL id -> content hash: the cluster-wide identity of events
    trove_board_t *board;  //  leaderboard tables (deltas: apply thread only)
    MDB_txn *rtxn;         //  main thread's reusable read transaction
    //  Write-ahead log
    MDB_env *log_env;
    MDB_dbi log;
    MDB_txn *txn;        //  open log transaction, or NULL
    uint64_t log_first;  //  lowest lseq still in the log (trim point)

    uint32_t shard;        //  shard index, stamped on coins
    uint64_t *pseq;        //  last pseq per partition (valid where loaded)
    uint8_t *pseq_loaded;  //  1 when pseq[p] is known
    s_undo_t *undo;        //  counters to restore if the batch aborts
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
    zlistx_t *users_order;   //  s_user_mark_t in lseq order, for removal once applied (owns them)
    zhashx_t *users_records;  //  user -> zlistx of its marks in users_order (borrowed), lseq order
    zlistx_t *users_staged;  //  s_user_mark_t of the open batch

    s_record_t *batch_head, *batch_tail;  //  records of the open batch
    void **frames;                        //  packed Msg{award} of the batch
    size_t *sizes;
    s_frame_meta_t *frame_meta;  //  what each frame's coin is
    size_t nframes, frames_cap;
    size_t nready;  //  frames of the last committed batch

    //  Apply thread
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    s_record_t *queue_head, *queue_tail;  //  committed, not applied (mutex)
    size_t queued;                        //  records in the queue (mutex)
    bool stop;                            //  (mutex)
    bool urgent;                          //  a reader waits: apply now (mutex)
    size_t apply_min;                     //  records that make a transaction worth it
    size_t apply_max;                     //  records at most per transaction
    int64_t apply_delay_ms;               //  or the time the oldest may wait
    int64_t first_queued_us;              //  when the oldest queued record came (mutex)
    _Atomic uint64_t applied;             //  last applied lseq
    _Atomic uint64_t trimmable;           //  applied and durable in the tables: may leave the log
    _Atomic bool apply_failing;           //  the last apply attempt failed
    char apply_error [256];               //  (mutex)
    bool apply_full;                      //  (mutex)
    int efd;                              //  eventfd: apply progress
    bool sync;

    //  Rule state (trove_engine): "user \x1f hunt" -> s_state_t
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

    size_t history_max;         //  a re-derive reads at most this many of a user's events
    bool marks_lost;            //  a user mark was lost (OOM): re-derives wait for everything
    uint64_t snap_applied;      //  the `applied` mark of the batch's fresh snapshot (s_user_latest)
    const char *reject_reason;  //  why the last trove_ledger_apply said REJECTED
    trove_ledger_counts_t counts;  //  re-derives and repairs (metrics)

    char error [256];  //  last storage error (main thread)
    bool full;         //  last error was MAP_FULL / ENOSPC
};

static int s_read_begin (trove_ledger_t *self, MDB_txn **txn_p);
static int s_wait_applied_to (trove_ledger_t *self, uint64_t lseq, int timeout_ms);
static int s_get_coin_at (trove_ledger_t *self, MDB_txn *txn, const void *aseq_be, Trove__Coin **coin_p);
static Trove__Coin *s_unpack_coin (const MDB_val *val);
static int s_coin_change (trove_ledger_t *self, const Trove__Coin *c, bool revoke, const char *reason,
                          const char *run);
static void s_read_end (trove_ledger_t *self);

static int
s_fail_rc (trove_ledger_t *self, const char *what, int rc)
{
    snprintf (self->error, sizeof self->error, "%s: %s", what, mdb_strerror (rc));
    self->full = rc == MDB_MAP_FULL || rc == ENOSPC;
    return -1;
}

static void
s_frames_clear (trove_ledger_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        free (self->frames [i]);
    self->nframes = 0;
    self->nready = 0;
}

static void
s_records_free (s_record_t *head)
{
    while (head) {
        s_record_t *next = head->next;
        free (head->data);
        free (head);
        head = next;
    }
}

static void
s_dedup_key (const char *source, const char *id, char *out, size_t size)
{
    snprintf (out, size, "%s\x1f%s", source, id);
}

static void
s_state_destroy (void **item)
{
    s_state_t *st = *item;
    if (st) {
        free (st->hunt);
        free (st->data);
        free (st);
        *item = NULL;
    }
}

//  Record a state in a map (copying the data).
static int
s_state_set (zhashx_t *map, const char *user, const char *hunt, uint64_t lseq, const void *data, size_t size)
{
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    s_state_t *st = calloc (1, sizeof *st);
    if (!st || !(st->hunt = strdup (hunt)) || (size && !(st->data = malloc (size)))) {
        if (st)
            free (st->hunt);
        free (st);
        return -1;
    }
    if (size)
        memcpy (st->data, data, size);
    st->size = size;
    st->lseq = lseq;
    zhashx_update (map, key, st);  //  frees the entry it replaces
    return 0;
}

//  Empty the batch's states: into states_pending (commit) or freed.
static void
s_staged_clear (trove_ledger_t *self, bool keep)
{
    for (s_state_t *st = zhashx_first (self->states_staged); st && keep;
         st = zhashx_next (self->states_staged)) {
        //  Move the contents; the emptied shell is freed with the rest.
        s_state_t *moved = malloc (sizeof *moved);
        if (!moved)
            continue;  //  out of memory: reads would see the tables, behind by this batch

        *moved = *st;
        st->hunt = NULL;
        st->data = NULL;
        zhashx_update (self->states_pending, zhashx_cursor (self->states_staged), moved);
    }
    zhashx_purge (self->states_staged);
}

static void
s_mint_clear (trove_ledger_t *self)
{
    self->ncoins = 0;  //  the coins themselves are the frames from rec_first_frame
    self->rec_first_frame = self->nframes;
    self->nstates = 0;
}

//  --------------------------------------------------------------------------
//  Apply thread: log records -> tables.

typedef struct {
    const char *user;  //  borrowed from an unpacked record
    int64_t delta;
} s_delta_t;

//  32 hex chars -> 16 bytes. Returns 0 or -1.
static int
s_unhex (const char *hex, uint8_t *out)
{
    if (strlen (hex) != TROVE_COIN_ID_LEN)
        return -1;
    for (int i = 0; i < 16; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex [2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out [i] = (uint8_t) v;
    }
    return 0;
}

//  The balance key of a user: user NUL (its coins follow: user NUL aseq).
static size_t
s_balance_key (const char *user, uint8_t *out)
{
    size_t ulen = strlen (user);
    memcpy (out, user, ulen);
    out [ulen] = 0;
    return ulen + 1;
}

//  The user's index entry of an event (ekey: its events key, partition and
//  pseq big-endian), so a re-derive reads the user's events, not a whole
//  partition's.
static int
s_uevents_put (trove_ledger_t *self, MDB_txn *txn, const char *user, const uint8_t ekey [12])
{
    size_t ul = strlen (user);
    uint8_t ukey [KEY_MAX + 12];
    if (ul + 13 > sizeof ukey)
        return EINVAL;
    memcpy (ukey, user, ul + 1);
    memcpy (ukey + ul + 1, ekey, 12);
    MDB_val key = {ul + 13, ukey}, empty = {0, NULL};
    return mdb_put (txn, self->uevents, &key, &empty, 0);
}

//  A claim: (source, id) means this content from now on.
static int
s_apply_claim (trove_ledger_t *self, MDB_txn *txn, const Trove__Claim *claim)
{
    size_t sl = strlen (claim->source), il = strlen (claim->id);
    uint8_t key [KEY_MAX];
    if (sl + 1 + il > sizeof key || claim->content.len != TROVE_EVENT_CONTENT_SIZE)
        return EINVAL;
    memcpy (key, claim->source, sl);
    key [sl] = 0;
    memcpy (key + sl + 1, claim->id, il);
    MDB_val k = {sl + 1 + il, key}, v = {claim->content.len, claim->content.data};
    //  Replayed after a crash: the same claim again (a claim never changes).
    int rc = mdb_put (txn, self->claims, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

static int
s_apply_record (trove_ledger_t *self, MDB_txn *txn, const Trove__LogRecord *rec, zhashx_t *deltas)
{
    if (rec->claim) {
        int crc = s_apply_claim (self, txn, rec->claim);
        if (crc || !rec->record)
            return crc;
    }
    const Trove__EventRecord *er = rec->record;
    const Trove__Event *ev = er->event;
    int rc;
    size_t slen = strlen (ev->source), ilen = strlen (ev->id);
    uint8_t dkey [KEY_MAX];
    if (slen + 1 + ilen > sizeof dkey)
        return EINVAL;
    memcpy (dkey, ev->source, slen);
    dkey [slen] = 0;
    memcpy (dkey + slen + 1, ev->id, ilen);
    uint8_t dval [20];
    trove_put_be64 (dval, rec->req_id);
    trove_put_be32 (dval + 8, er->partition);
    trove_put_be64 (dval + 12, er->pseq);
    MDB_val key = {slen + 1 + ilen, dkey}, val = {sizeof dval, dval};
    if ((rc = mdb_put (txn, self->dedup, &key, &val, 0)))
        return rc;
    uint8_t ekey [12];
    trove_put_be32 (ekey, er->partition);
    trove_put_be64 (ekey + 4, er->pseq);
    key = (MDB_val){12, ekey};
    val = (MDB_val){trove__event_record__get_packed_size (er), NULL};
    if (er->pseq) {  //  0: a reconciler's request, not in the event log
        if ((rc = mdb_put (txn, self->events, &key, &val, MDB_RESERVE)))
            return rc;
        trove__event_record__pack (er, val.mv_data);
        if ((rc = s_uevents_put (self, txn, ev->user, ekey)))
            return rc;
    }
    if (rec->undone && rec->undone->source && rec->undone->id) {
        //  The undo came first: leave a marker so the target is never scored.
        size_t tl = strlen (rec->undone->source), il = strlen (rec->undone->id);
        uint8_t mkey [KEY_MAX], mval [20] = {0};
        if (tl + 1 + il <= sizeof mkey) {
            memcpy (mkey, rec->undone->source, tl);
            mkey [tl] = 0;
            memcpy (mkey + tl + 1, rec->undone->id, il);
            trove_put_be64 (mval, s_user_tag (ev->user));
            trove_put_be32 (mval + 8, MARKER_PARTITION);
            key = (MDB_val){tl + 1 + il, mkey};
            val = (MDB_val){sizeof mval, mval};
            rc = mdb_put (txn, self->dedup, &key, &val, MDB_NOOVERWRITE);
            if (rc && rc != MDB_KEYEXIST)
                return rc;  //  KEYEXIST: replayed after the target came
        }
    }
    for (size_t i = 0; i < rec->n_states; i++) {
        const Trove__StateEntry *st = rec->states [i];
        size_t ul = strlen (ev->user), hl = strlen (st->hunt);
        uint8_t skey [KEY_MAX];
        if (ul + 1 + hl > sizeof skey)
            return EINVAL;
        memcpy (skey, ev->user, ul);
        skey [ul] = 0;
        memcpy (skey + ul + 1, st->hunt, hl);
        key = (MDB_val){ul + 1 + hl, skey};
        if (st->data.len == 0) {
            rc = mdb_del (txn, self->states, &key, NULL);
            if (rc && rc != MDB_NOTFOUND)
                return rc;
        }
        else {
            val = (MDB_val){st->data.len, st->data.data};
            if ((rc = mdb_put (txn, self->states, &key, &val, 0)))
                return rc;
        }
    }
    for (size_t i = 0; i < rec->n_coins; i++) {
        Trove__Coin *coin = rec->coins [i];
        uint8_t raw [16];
        if (s_unhex (coin->id, raw))
            return EINVAL;
        uint8_t seq [8];
        trove_put_be64 (seq, coin->aseq);
        key = (MDB_val){16, raw};
        //  coinids points at a coin's latest entry (mint or revocation);
        //  an entry at or below it was applied before (replay after a crash).
        //  One lookup in the common case: a new id. On MDB_KEYEXIST, val holds
        //  the entry there.
        val = (MDB_val){8, seq};
        rc = mdb_put (txn, self->coinids, &key, &val, MDB_NOOVERWRITE);
        Trove__Coin *prev = NULL;
        if (rc == MDB_KEYEXIST) {
            if (val.mv_size != 8)
                return MDB_CORRUPTED;
            if (trove_get_be64 (val.mv_data) >= coin->aseq)
                continue;
            //  The entry this one replaces: its live value leaves the
            //  balance and the boards, whatever this entry is.
            MDB_val pkey = {8, val.mv_data}, pval;
            if ((rc = mdb_get (txn, self->coins, &pkey, &pval)) == 0 && !(prev = s_unpack_coin (&pval)))
                rc = MDB_CORRUPTED;
            if (rc && rc != MDB_NOTFOUND)
                return rc;
            val = (MDB_val){8, seq};
            rc = mdb_put (txn, self->coinids, &key, &val, 0);
        }
        int64_t was = prev && !prev->revoked ? prev->value : 0;
        if (!rc && was) {
            //  Taken back at the day and week it was counted for.
            prev->revoked = true;
            if (trove_board_add (self->board, prev))
                rc = ENOMEM;
        }
        if (prev)
            trove__coin__free_unpacked (prev, NULL);
        if (rc)
            return rc;
        Trove__Msg msg = TROVE__MSG__INIT;
        msg.body_case = TROVE__MSG__BODY_AWARD;
        msg.award = coin;
        //  Coins are keyed by aseq: they arrive in that order, so the table
        //  grows at its right edge instead of dirtying random pages.
        key = (MDB_val){8, seq};
        val = (MDB_val){trove__msg__get_packed_size (&msg), NULL};
        if ((rc = mdb_put (txn, self->coins, &key, &val, MDB_RESERVE)))
            return rc;
        trove__msg__pack (&msg, val.mv_data);
        //  A user's coin index and balance share a key prefix, hence pages.
        size_t ulen = strlen (coin->user);
        uint8_t ukey [KEY_MAX];
        if (ulen + 9 > sizeof ukey)
            return EINVAL;
        memcpy (ukey, coin->user, ulen);
        ukey [ulen] = 0;
        memcpy (ukey + ulen + 1, seq, 8);
        MDB_val uk = {ulen + 9, ukey}, empty = {0, NULL};
        if ((rc = mdb_put (txn, self->users, &uk, &empty, 0)))
            return rc;
        s_delta_t *d = zhashx_lookup (deltas, coin->user);
        if (!d) {
            d = calloc (1, sizeof *d);
            if (!d)
                return ENOMEM;
            d->user = coin->user;
            zhashx_insert (deltas, coin->user, d);
        }
        //  Balance = sum of live coins: each id counts with its latest
        //  entry only (a mint over a live entry of the same id replaces
        //  it; a revocation of a coin that is not live takes nothing).
        d->delta += (coin->revoked ? 0 : coin->value) - was;
        if (!coin->revoked && trove_board_add (self->board, coin))
            return ENOMEM;
    }
    return 0;
}

//  A ledger from before the leaderboards: count every live coin (the
//  latest entry of each id, when it is a mint) once (coins without
//  local_day use their UTC day). Marked done in meta "boards" by the same
//  transaction.
//  A one-time migration of the tables: MDB_NOTFOUND when `name` is still to
//  do (meta holds the names of those done), 0 when done, or an error.
static int
s_migration_todo (trove_ledger_t *self, MDB_txn *txn, const char *name)
{
    MDB_val key = {strlen (name), (void *) name}, val;
    return mdb_get (txn, self->meta, &key, &val);
}

//  Mark it done, in the transaction that did it.
static int
s_migration_done (trove_ledger_t *self, MDB_txn *txn, const char *name)
{
    MDB_val key = {strlen (name), (void *) name}, val = {1, "1"};
    return mdb_put (txn, self->meta, &key, &val, 0);
}

static int
s_board_rebuild (trove_ledger_t *self, MDB_txn *txn)
{
    MDB_val key, val;
    int rc = s_migration_todo (self, txn, "boards");
    if (rc != MDB_NOTFOUND)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open (txn, self->coinids, &cur)))
        return rc;
    size_t n = 0;
    //  The boards hold live coins: the latest entry of each id, if a mint.
    for (rc = mdb_cursor_get (cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT)) {
        MDB_val ckey = {8, val.mv_data}, cval;
        if (val.mv_size != 8 || (rc = mdb_get (txn, self->coins, &ckey, &cval)) == MDB_NOTFOUND) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (rc)
            break;
        Trove__Coin *coin = s_unpack_coin (&cval);
        if (!coin) {
            rc = MDB_CORRUPTED;
            break;
        }
        int added = coin->revoked ? 0 : trove_board_add (self->board, coin);
        trove__coin__free_unpacked (coin, NULL);
        if (added) {
            rc = ENOMEM;
            break;
        }
        if (++n % 10000 == 0 && (rc = trove_board_flush (self->board, txn)))
            break;
    }
    mdb_cursor_close (cur);
    if (rc != MDB_NOTFOUND) {
        trove_board_discard (self->board);
        return rc;
    }
    if ((rc = trove_board_flush (self->board, txn)))
        return rc;
    if (n)
        trove_log ('I', "leaderboards built from %zu coin entries", n);
    return s_migration_done (self, txn, "boards");
}

//  A ledger from before the per-user event index: index every stored event
//  once. Marked done in meta "uevents" by the same transaction.
static int
s_uevents_rebuild (trove_ledger_t *self, MDB_txn *txn)
{
    MDB_val key, val;
    int rc = s_migration_todo (self, txn, "uevents");
    if (rc != MDB_NOTFOUND)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open (txn, self->events, &cur)))
        return rc;
    size_t n = 0;
    for (rc = mdb_cursor_get (cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT)) {
        Trove__EventRecord *er = trove__event_record__unpack (NULL, val.mv_size, val.mv_data);
        if (!er || !er->event || key.mv_size != 12) {
            if (er)
                trove__event_record__free_unpacked (er, NULL);
            rc = MDB_CORRUPTED;
            break;
        }
        rc = s_uevents_put (self, txn, er->event->user, key.mv_data);
        trove__event_record__free_unpacked (er, NULL);
        if (rc)
            break;
        n++;
    }
    mdb_cursor_close (cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (n)
        trove_log ('I', "indexed %zu stored events by user", n);
    return s_migration_done (self, txn, "uevents");
}

//  Apply a list of records in one transaction. Returns 0 or an LMDB error.
static int
s_apply_batch (trove_ledger_t *self, s_record_t *head, uint64_t *last_p)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return rc;
    //  One balance write per user per transaction, not per coin.
    zhashx_t *deltas = zhashx_new ();
    zlistx_t *unpacked = zlistx_new ();
    if (!deltas || !unpacked) {
        rc = ENOMEM;
        goto done;
    }
    zhashx_set_destructor (deltas, (zhashx_destructor_fn *) zstr_free);
    uint64_t last = 0;
    for (s_record_t *r = head; r && rc == 0; r = r->next) {
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, r->size, r->data);
        if (!rec || (!rec->claim && (!rec->record || !rec->record->event))) {
            if (rec)
                trove__log_record__free_unpacked (rec, NULL);
            rc = EINVAL;
            break;
        }
        zlistx_add_end (unpacked, rec);
        rc = s_apply_record (self, txn, rec, deltas);
        last = r->lseq;
    }
    for (s_delta_t *d = zhashx_first (deltas); d && rc == 0; d = zhashx_next (deltas)) {
        uint8_t bkey [KEY_MAX];
        MDB_val key = {s_balance_key (d->user, bkey), bkey}, val;
        int64_t balance = 0;
        int got = mdb_get (txn, self->users, &key, &val);
        if (got == 0 && val.mv_size == 8)
            memcpy (&balance, val.mv_data, 8);
        else if (got != MDB_NOTFOUND) {
            rc = got;
            break;
        }
        balance += d->delta;
        val = (MDB_val){8, &balance};
        rc = mdb_put (txn, self->users, &key, &val, 0);
    }
    //  The boards in the same transaction as the balances: never apart.
    if (rc == 0)
        rc = trove_board_flush (self->board, txn);
    else
        trove_board_discard (self->board);
    if (rc == 0) {
        uint8_t v [8];
        trove_put_be64 (v, last);
        MDB_val key = {7, "applied"}, val = {8, v};
        rc = mdb_put (txn, self->meta, &key, &val, 0);
    }
done:
    if (rc)
        mdb_txn_abort (txn);
    else
        rc = mdb_txn_commit (txn);
    if (rc == 0)
        *last_p = last;
    zhashx_destroy (&deltas);
    if (unpacked) {
        for (Trove__LogRecord *rec = zlistx_first (unpacked); rec; rec = zlistx_next (unpacked))
            trove__log_record__free_unpacked (rec, NULL);
        zlistx_destroy (&unpacked);
    }
    return rc;
}

static void
s_notify (trove_ledger_t *self)
{
    uint64_t one = 1;
    if (write (self->efd, &one, sizeof one) < 0) {
        //  the counter is saturated: a wake-up is already pending
    }
}

static void *
s_apply_thread (void *arg)
{
    trove_ledger_t *self = arg;
    int backoff_ms = 10;
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (!self->queue_head && !self->stop)
            pthread_cond_wait (&self->cond, &self->mutex);
        if (!self->queue_head)
            break;  //  stopping and drained
        //  Let the backlog grow into a big transaction, within bounds.
        while (!self->stop && !self->urgent && self->queued < self->apply_min) {
            int64_t due_us = self->first_queued_us + self->apply_delay_ms * 1000;
            int64_t now_us = trove_mono_us ();
            if (now_us >= due_us)
                break;
            struct timespec until;
            clock_gettime (CLOCK_REALTIME, &until);
            int64_t ns = until.tv_nsec + (due_us - now_us) * 1000;
            until.tv_sec += ns / 1000000000;
            until.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait (&self->cond, &self->mutex, &until);
        }
        self->urgent = false;
        //  Take up to APPLY_MAX records (more when behind); new commits keep
        //  queueing meanwhile.
        size_t take = self->queued > 2 * self->apply_max ? self->apply_max * APPLY_CATCHUP : self->apply_max;
        s_record_t *head = self->queue_head, *tail = head;
        size_t n = 1;
        while (tail->next && n < take) {
            tail = tail->next;
            n++;
        }
        //  Detach them: commits that arrive meanwhile append to an empty or
        //  shorter queue, never to our list.
        self->queue_head = tail->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        else
            self->first_queued_us = trove_mono_us ();
        tail->next = NULL;
        pthread_mutex_unlock (&self->mutex);

        uint64_t last = 0;
        int rc = s_apply_batch (self, head, &last);

        pthread_mutex_lock (&self->mutex);
        if (rc == 0) {
            self->queued -= n;
            //  This commit's fsync made the previous commit's meta durable.
            atomic_store (&self->trimmable, atomic_load (&self->applied));
            atomic_store (&self->applied, last);
            atomic_store (&self->apply_failing, false);
            backoff_ms = 10;
            pthread_mutex_unlock (&self->mutex);
            s_records_free (head);
            s_notify (self);
            pthread_mutex_lock (&self->mutex);
        }
        else {
            //  Put them back and retry later: they are durable in the log,
            //  and nothing is lost while the tables cannot take them.
            tail->next = self->queue_head;
            self->queue_head = head;
            if (!self->queue_tail)
                self->queue_tail = tail;
            snprintf (self->apply_error, sizeof self->apply_error, "applying the log: %s", mdb_strerror (rc));
            self->apply_full = rc == MDB_MAP_FULL || rc == ENOSPC;
            bool first = !atomic_exchange (&self->apply_failing, true);
            pthread_mutex_unlock (&self->mutex);
            if (first)
                trove_log ('E', "%s (will retry)", self->apply_error);
            s_notify (self);
            usleep ((useconds_t) backoff_ms * 1000);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            pthread_mutex_lock (&self->mutex);
            if (self->stop)
                break;  //  cannot drain: the log keeps them for the next start
        }
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

static void
s_enqueue (trove_ledger_t *self, s_record_t *head, s_record_t *tail, size_t n)
{
    if (!head)
        return;
    pthread_mutex_lock (&self->mutex);
    if (self->queue_tail)
        self->queue_tail->next = head;
    else {
        self->queue_head = head;
        self->first_queued_us = trove_mono_us ();
    }
    self->queue_tail = tail;
    self->queued += n;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

//  --------------------------------------------------------------------------

static int
s_open_env (MDB_env **env_p, const char *dir, size_t map_size, unsigned flags, int maxdbs, char *err,
            size_t size)
{
    int rc;
    if (trove_mkdir_p (dir, 0700)) {
        snprintf (err, size, "cannot create %s: %s", dir, strerror (errno));
        return -1;
    }
    if ((rc = mdb_env_create (env_p)) || (rc = mdb_env_set_maxdbs (*env_p, maxdbs))
        || (rc = mdb_env_set_mapsize (*env_p, map_size)) || (rc = mdb_env_open (*env_p, dir, flags, 0600))) {
        snprintf (err, size, "cannot open LMDB environment %s: %s", dir, mdb_strerror (rc));
        return -1;
    }
    //  A killed predecessor leaves its reader slot behind; clear it now.
    int dead = 0;
    mdb_reader_check (*env_p, &dead);
    if (dead)
        trove_log ('I', "cleared %d stale LMDB reader slot(s) in %s", dead, dir);
    return 0;
}

static int
s_prealloc (MDB_env *env, uint64_t bytes)
{
    int fd;
    struct stat st;
    if (mdb_env_get_fd (env, &fd) || fstat (fd, &st))
        return -1;
    if ((uint64_t) st.st_size >= bytes)
        return 0;
    //  Never at the cost of the disk: take at most a quarter of what is free
    //  (a small disk then simply grows the log as it goes).
    struct statvfs vfs;
    if (fstatvfs (fd, &vfs) == 0
        && (bytes - (uint64_t) st.st_size) > (uint64_t) vfs.f_bavail * vfs.f_frsize / 4) {
        errno = ENOSPC;
        return -1;
    }
    //  Page-sized writes, then the cache dropped: big writes would leave big
    //  page-cache folios behind, and every later 4 KiB page LMDB rewrites
    //  would then dirty (and write back) the whole folio.
    char zeros [4096] = {0};
    int rc = 0;
    for (uint64_t off = (uint64_t) st.st_size; off < bytes && rc == 0; off += sizeof zeros)
        if (pwrite (fd, zeros, sizeof zeros, (off_t) off) != (ssize_t) sizeof zeros)
            rc = -1;
    if (rc == 0)
        rc = fdatasync (fd);
    else {
        int saved = errno;
        //  Give back what was written: a full disk must not stay full.
        if (ftruncate (fd, st.st_size))
            trove_log ('W', "cannot shrink the log back to %lld bytes: %s", (long long) st.st_size,
                       strerror (errno));
        errno = saved;
    }
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    return rc;
}

static void
s_pending_add (trove_ledger_t *self, const char *source, const char *id, uint64_t req_id, uint64_t lseq,
               bool undone)
{
    char key [KEY_MAX];
    s_dedup_key (source, id, key, sizeof key);
    s_pending_t *p = zhashx_lookup (self->pending, key);
    if (p) {
        //  The event an undo marked arrives: it replaces the marker (the key
        //  is listed again so that it leaves after this record is applied).
        p->req_id = req_id;
        p->lseq = lseq;
        p->undone = undone;
    }
    else {
        p = malloc (sizeof *p);
        if (!p)
            return;  //  then the dedup check misses it until applied
        *p = (s_pending_t){.req_id = req_id, .lseq = lseq, .undone = undone};
        zhashx_insert (self->pending, key, p);
    }
    char *copy = strdup (key);
    if (copy)
        zlistx_add_end (self->pending_order, copy);
    self->staged_keys++;
}

//  A claim committed (or staged) and not applied yet: the same list as the
//  dedup entries, so staging, abort and pruning treat both alike.
static void
s_claim_pending_add (trove_ledger_t *self, const char *source, const char *id, const uint8_t *content,
                     uint64_t lseq)
{
    char key [KEY_MAX + 2];
    snprintf (key, sizeof key, "\x01%s\x1f%s", source, id);
    s_pending_t *p = zhashx_lookup (self->pending, key);
    if (!p) {
        if (!(p = calloc (1, sizeof *p)))
            return;  //  then the check reads the tables only, until applied
        zhashx_insert (self->pending, key, p);
    }
    p->lseq = lseq;
    p->claim = true;
    memcpy (p->content, content, TROVE_EVENT_CONTENT_SIZE);
    char *copy = strdup (key);
    if (copy)
        zlistx_add_end (self->pending_order, copy);
    self->staged_keys++;
}

//  Note that user has a record at lseq (to list: users_staged for a batch
//  that may still abort, users_order once committed).
static int
s_user_mark (zlistx_t *list, const char *user, uint64_t lseq, const void *data, size_t size)
{
    size_t len = strlen (user);
    s_user_mark_t *m = malloc (sizeof *m + len + 1 + size);
    if (!m)
        return -1;  //  then a query about this user may not wait for this record (see marks_lost)
    m->lseq = lseq;
    memcpy (m->user, user, len + 1);
    m->data = m->user + len + 1;
    m->size = size;
    memcpy (m->data, data, size);
    if (!zlistx_add_end (list, m)) {
        free (m);
        return -1;
    }
    return 0;
}

//  The batch committed: its users' marks become pending.
static void
s_users_commit (trove_ledger_t *self)
{
    s_user_mark_t *m;
    while ((m = zlistx_first (self->users_staged))) {
        zlistx_detach_cur (self->users_staged);
        uint64_t *lseq = zhashx_lookup (self->users_pending, m->user);
        if (lseq)
            *lseq = m->lseq;
        else if ((lseq = malloc (sizeof *lseq))) {
            *lseq = m->lseq;
            zhashx_insert (self->users_pending, m->user, lseq);
        }
        zlistx_t *mine = zhashx_lookup (self->users_records, m->user);
        if (!mine && (mine = zlistx_new ()))
            zhashx_insert (self->users_records, m->user, mine);
        if (!mine || !zlistx_add_end (mine, m))
            self->marks_lost = true;  //  re-derives wait for the tables instead
        if (!zlistx_add_end (self->users_order, m))
            free (m);
    }
}

//  Recovery: applied entries are trimmed, the rest re-staged for the thread.
static int
s_recover (trove_ledger_t *self, char *err, size_t size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->log_env, NULL, 0, &txn);
    if (rc) {
        snprintf (err, size, "cannot read the log: %s", mdb_strerror (rc));
        return -1;
    }
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->log, &cursor))) {
        mdb_txn_abort (txn);
        snprintf (err, size, "cannot read the log: %s", mdb_strerror (rc));
        return -1;
    }
    uint64_t applied = atomic_load (&self->applied);
    MDB_val key, val;
    s_record_t *head = NULL, *tail = NULL;
    size_t n = 0;
    rc = mdb_cursor_get (cursor, &key, &val, MDB_FIRST);
    while (rc == 0) {
        uint64_t lseq = key.mv_size == 8 ? trove_get_be64 (key.mv_data) : 0;
        if (lseq <= applied) {
            if ((rc = mdb_cursor_del (cursor, 0)))
                break;
        }
        else {
            Trove__LogRecord *rec = trove__log_record__unpack (NULL, val.mv_size, val.mv_data);
            s_record_t *r = calloc (1, sizeof *r);
            void *copy = malloc (val.mv_size ? val.mv_size : 1);
            if (!rec || (!rec->claim && (!rec->record || !rec->record->event)) || !r || !copy) {
                if (rec)
                    trove__log_record__free_unpacked (rec, NULL);
                free (r);
                free (copy);
                snprintf (err, size, "log record %llu is unreadable", (unsigned long long) lseq);
                mdb_cursor_close (cursor);
                mdb_txn_abort (txn);
                s_records_free (head);
                return -1;
            }
            memcpy (copy, val.mv_data, val.mv_size);
            *r = (s_record_t){lseq, copy, val.mv_size, NULL};
            if (tail)
                tail->next = r;
            else
                head = r;
            tail = r;
            n++;
            if (rec->claim)
                s_claim_pending_add (self, rec->claim->source, rec->claim->id, rec->claim->content.data, lseq);
            if (!rec->record) {
                self->lseq = lseq;  //  a claim only
                trove__log_record__free_unpacked (rec, NULL);
                rc = mdb_cursor_get (cursor, &key, &val, MDB_NEXT);
                continue;
            }
            const Trove__EventRecord *er = rec->record;
            s_pending_add (self, er->event->source, er->event->id, rec->req_id, lseq, false);
            if (s_user_mark (self->users_staged, er->event->user, lseq, val.mv_data, val.mv_size))
                self->marks_lost = true;
            if (rec->undone && rec->undone->source && rec->undone->id)
                s_pending_add (self, rec->undone->source, rec->undone->id, s_user_tag (er->event->user), lseq,
                               true);
            for (size_t i = 0; i < rec->n_states; i++)
                if (s_state_set (self->states_pending, er->event->user, rec->states [i]->hunt, lseq,
                                 rec->states [i]->data.data, rec->states [i]->data.len)) {
                    trove__log_record__free_unpacked (rec, NULL);
                    snprintf (err, size, "out of memory");
                    mdb_cursor_close (cursor);
                    mdb_txn_abort (txn);
                    s_records_free (head);
                    return -1;
                }
            //  pseq 0: a reconciler's request, not an event of the log
            if (er->pseq && er->partition < MAX_PARTITIONS
                && (!self->pseq_loaded [er->partition] || self->pseq [er->partition] < er->pseq)) {
                self->pseq [er->partition] = er->pseq;
                self->pseq_loaded [er->partition] = 1;
            }
            for (size_t i = 0; i < rec->n_coins; i++)
                if (rec->coins [i]->aseq > self->aseq)
                    self->aseq = rec->coins [i]->aseq;
            self->nevents += er->pseq != 0;
            self->lseq = lseq;
            trove__log_record__free_unpacked (rec, NULL);
        }
        rc = mdb_cursor_get (cursor, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND) {
        mdb_txn_abort (txn);
        s_records_free (head);
        snprintf (err, size, "cannot read the log: %s", mdb_strerror (rc));
        return -1;
    }
    if ((rc = mdb_txn_commit (txn))) {
        s_records_free (head);
        snprintf (err, size, "cannot trim the log: %s", mdb_strerror (rc));
        return -1;
    }
    if (self->lseq < applied)
        self->lseq = applied;
    self->log_first = applied + 1;
    self->staged_keys = 0;
    s_users_commit (self);
    if (n)
        trove_log ('I', "log: %zu committed event(s) to apply", n);
    s_enqueue (self, head, tail, n);
    return 0;
}

trove_ledger_t *
trove_ledger_new (const char *dir, uint32_t shard, size_t map_size, bool sync, char **err_p)
{
    char err [512] = "";
    MDB_txn *txn = NULL;
    trove_ledger_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, sizeof err, "out of memory");
        goto fail;
    }
    self->efd = -1;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->cond, NULL);
    self->shard = shard;
    self->sync = sync;
    self->history_max = 20000;
    //  Tuning knobs for benchmarks (docs/architecture.md); defaults otherwise.
    const char *knob = getenv ("TROVE_APPLY_MIN");
    self->apply_min = knob && atoi (knob) > 0 ? (size_t) atoi (knob) : APPLY_MIN;
    knob = getenv ("TROVE_APPLY_MAX");
    self->apply_max = knob && atoi (knob) > 0 ? (size_t) atoi (knob) : APPLY_MAX;
    knob = getenv ("TROVE_APPLY_DELAY_MS");
    self->apply_delay_ms = knob && atoi (knob) >= 0 ? atoi (knob) : APPLY_DELAY_MS;
    self->pseq = calloc (MAX_PARTITIONS, sizeof *self->pseq);
    self->pseq_loaded = calloc (MAX_PARTITIONS, 1);
    self->pending = zhashx_new ();
    self->pending_order = zlistx_new ();
    self->states_staged = zhashx_new ();
    self->states_pending = zhashx_new ();
    self->users_pending = zhashx_new ();
    self->users_order = zlistx_new ();
    self->users_staged = zlistx_new ();
    self->users_records = zhashx_new ();
    self->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!self->pseq || !self->pseq_loaded || !self->pending || !self->pending_order || !self->states_staged
        || !self->states_pending || !self->users_pending || !self->users_order || !self->users_staged
        || !self->users_records || self->efd == -1) {
        snprintf (err, sizeof err, "out of memory");
        goto fail;
    }
    zhashx_set_destructor (self->pending, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->states_pending, s_state_destroy);
    zhashx_set_destructor (self->states_staged, s_state_destroy);
    zlistx_set_destructor (self->pending_order, (zlistx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->users_pending, (zhashx_destructor_fn *) zstr_free);
    zlistx_set_destructor (self->users_order, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_destructor (self->users_staged, (zlistx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->users_records, (zhashx_destructor_fn *) zlistx_destroy);
    char logdir [4096];
    snprintf (logdir, sizeof logdir, "%s/log", dir);
    //  The tables may lose their last transaction in an OS crash
    //  (NOMETASYNC: one fsync per commit instead of two, never corrupt): the
    //  log is trimmed only up to the transaction before, so it can redo it.
    if (s_open_env (&self->env, dir, map_size, sync ? MDB_NOMETASYNC : MDB_NOSYNC, 16, err, sizeof err)
        || s_open_env (&self->log_env, logdir, map_size, sync ? 0 : MDB_NOSYNC, 2, err, sizeof err))
        goto fail;
    int rc;
    if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn))
        || (rc = mdb_dbi_open (txn, "dedup", MDB_CREATE, &self->dedup))
        || (rc = mdb_dbi_open (txn, "events", MDB_CREATE, &self->events))
        || (rc = mdb_dbi_open (txn, "coins", MDB_CREATE, &self->coins))
        || (rc = mdb_dbi_open (txn, "coinids", MDB_CREATE, &self->coinids))
        || (rc = mdb_dbi_open (txn, "users", MDB_CREATE, &self->users))
        || (rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta))
        || (rc = mdb_dbi_open (txn, "states", MDB_CREATE, &self->states))
        || (rc = mdb_dbi_open (txn, "uevents", MDB_CREATE, &self->uevents))
        || (rc = mdb_dbi_open (txn, "claims", MDB_CREATE, &self->claims))) {
        snprintf (err, sizeof err, "cannot open databases in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    char *berr = NULL;
    if (!(self->board = trove_board_new (txn, &berr))) {
        snprintf (err, sizeof err, "%s in %s", berr ? berr : "out of memory", dir);
        free (berr);
        goto fail;
    }
    if ((rc = s_board_rebuild (self, txn))) {
        snprintf (err, sizeof err, "cannot build the leaderboards in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    if ((rc = s_uevents_rebuild (self, txn))) {
        snprintf (err, sizeof err, "cannot index the events by user in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    MDB_cursor *cursor;
    MDB_val key, val;
    if ((rc = mdb_cursor_open (txn, self->coins, &cursor))) {
        snprintf (err, sizeof err, "cannot read awards in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    if (mdb_cursor_get (cursor, &key, &val, MDB_LAST) == 0 && key.mv_size == 8)
        self->aseq = trove_get_be64 (key.mv_data);
    mdb_cursor_close (cursor);
    MDB_stat stat;
    if (mdb_stat (txn, self->events, &stat) == 0)
        self->nevents = stat.ms_entries;
    key = (MDB_val){7, "applied"};
    if (mdb_get (txn, self->meta, &key, &val) == 0 && val.mv_size == 8) {
        atomic_store (&self->applied, trove_get_be64 (val.mv_data));
        atomic_store (&self->trimmable, trove_get_be64 (val.mv_data));
    }
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc) {
        snprintf (err, sizeof err, "cannot initialise %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    if ((rc = mdb_txn_begin (self->log_env, NULL, 0, &txn))
        || (rc = mdb_dbi_open (txn, "log", MDB_CREATE, &self->log)) || (rc = mdb_txn_commit (txn))) {
        txn = NULL;
        snprintf (err, sizeof err, "cannot open the log in %.400s: %s", logdir, mdb_strerror (rc));
        goto fail;
    }
    txn = NULL;
    //  A full disk here is not fatal: the log then grows as it goes.
    if (s_prealloc (self->log_env, LOG_PREALLOC < map_size / 2 ? LOG_PREALLOC : map_size / 2))
        trove_log ('W', "cannot preallocate the log in %s: %s", logdir, strerror (errno));
    if (s_recover (self, err, sizeof err))
        goto fail;
    self->lseq_pending = self->lseq;
    self->aseq_pending = self->aseq;
    self->nevents_pending = self->nevents;
    if (pthread_create (&self->thread, NULL, s_apply_thread, self)) {
        snprintf (err, sizeof err, "cannot start the apply thread");
        goto fail;
    }
    self->thread_started = true;
    return self;
fail:
    if (txn)
        mdb_txn_abort (txn);
    trove_ledger_destroy (&self);
    if (err_p)
        *err_p = strdup (err);
    return NULL;
}

void
trove_ledger_destroy (trove_ledger_t **self_p)
{
    assert (self_p);
    trove_ledger_t *self = *self_p;
    if (!self)
        return;
    trove_ledger_abort (self);
    if (self->thread_started) {
        //  The thread drains what is committed (unless the tables refuse it;
        //  then the log keeps it for the next start).
        pthread_mutex_lock (&self->mutex);
        self->stop = true;
        pthread_cond_signal (&self->cond);
        pthread_mutex_unlock (&self->mutex);
        pthread_join (self->thread, NULL);
    }
    s_records_free (self->queue_head);
    if (self->rtxn)
        mdb_txn_abort (self->rtxn);
    if (self->env)
        mdb_env_close (self->env);
    if (self->log_env)
        mdb_env_close (self->log_env);
    s_frames_clear (self);
    free (self->frames);
    free (self->sizes);
    free (self->frame_meta);
    free (self->undo);
    free (self->pseq);
    free (self->pseq_loaded);
    free (self->rec_states);
    free (self->rec_state_ptrs);
    zhashx_destroy (&self->states_staged);
    trove_board_destroy (&self->board);
    zhashx_destroy (&self->states_pending);
    zhashx_destroy (&self->pending);
    zlistx_destroy (&self->pending_order);
    zhashx_destroy (&self->users_pending);
    zhashx_destroy (&self->users_records);  //  before the marks it points at
    zlistx_destroy (&self->users_order);
    zlistx_destroy (&self->users_staged);
    if (self->efd != -1)
        close (self->efd);
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->cond);
    free (self);
    *self_p = NULL;
}

uint64_t
trove_ledger_committed (trove_ledger_t *self)
{
    return self->lseq;
}
bool
trove_ledger_apply_failing (trove_ledger_t *self)
{
    return atomic_load (&self->apply_failing);
}

uint64_t
trove_ledger_applied (trove_ledger_t *self)
{
    return atomic_load (&self->applied);
}
int
trove_ledger_fd (trove_ledger_t *self)
{
    return self->efd;
}

uint64_t
trove_ledger_user_pending (trove_ledger_t *self, const char *user)
{
    uint64_t *lseq = user ? zhashx_lookup (self->users_pending, user) : NULL;
    return lseq && *lseq > atomic_load (&self->applied) ? *lseq : 0;
}

size_t
trove_ledger_backlog (trove_ledger_t *self)
{
    return (size_t) (self->lseq - atomic_load (&self->applied));
}

//  Forget pending dedup entries that the tables now hold.
void
trove_ledger_absorb (trove_ledger_t *self)
{
    uint64_t count;
    if (read (self->efd, &count, sizeof count) < 0) {
        //  nothing new (EAGAIN): still a good moment to prune
    }
    uint64_t applied = atomic_load (&self->applied);
    //  Staged keys of an open batch sit at the tail; they are never applied yet.
    size_t removable = zlistx_size (self->pending_order) - (self->txn ? self->staged_keys : 0);
    while (removable-- > 0) {
        char *key = zlistx_first (self->pending_order);
        s_pending_t *p = key ? zhashx_lookup (self->pending, key) : NULL;
        if (p && p->lseq > applied)
            break;
        zhashx_delete (self->pending, key);
        zlistx_delete (self->pending_order, zlistx_cursor (self->pending_order));
    }
    //  Users whose records the tables now hold (a newer record keeps its entry).
    s_user_mark_t *m;
    while ((m = zlistx_first (self->users_order)) && m->lseq <= applied) {
        uint64_t *lseq = zhashx_lookup (self->users_pending, m->user);
        if (lseq && *lseq <= applied)
            zhashx_delete (self->users_pending, m->user);
        //  The user's own list is in lseq order too: this mark is its first.
        zlistx_t *mine = zhashx_lookup (self->users_records, m->user);
        if (mine && zlistx_first (mine) == m) {
            zlistx_detach_cur (mine);
            if (zlistx_size (mine) == 0)
                zhashx_delete (self->users_records, m->user);
        }
        zlistx_delete (self->users_order, zlistx_cursor (self->users_order));
    }
    //  States the tables now hold (a newer write keeps its entry).
    if (zhashx_size (self->states_pending) == 0)
        return;
    zlistx_t *gone = zlistx_new ();
    if (!gone)
        return;  //  kept a little longer; harmless
    zlistx_set_destructor (gone, (zlistx_destructor_fn *) zstr_free);
    for (s_state_t *st = zhashx_first (self->states_pending); st; st = zhashx_next (self->states_pending))
        if (st->lseq <= applied) {
            char *key = strdup (zhashx_cursor (self->states_pending));
            if (key)
                zlistx_add_end (gone, key);
        }
    for (char *key = zlistx_first (gone); key; key = zlistx_next (gone))
        zhashx_delete (self->states_pending, key);
    zlistx_destroy (&gone);
}

void
trove_ledger_hurry (trove_ledger_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->urgent = true;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

int
trove_ledger_wait_applied (trove_ledger_t *self, int timeout_ms)
{
    return s_wait_applied_to (self, self->lseq, timeout_ms);
}

//  Wait until the tables hold every record up to lseq. 0, or -1 after
//  timeout_ms or when the apply thread fails.
static int
s_wait_applied_to (trove_ledger_t *self, uint64_t lseq, int timeout_ms)
{
    trove_ledger_hurry (self);
    int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
    while (atomic_load (&self->applied) < lseq) {
        int64_t left = (deadline - trove_mono_us ()) / 1000;
        if (left <= 0 || atomic_load (&self->apply_failing))
            return -1;
        struct pollfd pfd = {self->efd, POLLIN, 0};
        poll (&pfd, 1, (int) (left < 100 ? left : 100));
        trove_ledger_absorb (self);
    }
    trove_ledger_absorb (self);
    return 0;
}

int
trove_ledger_begin (trove_ledger_t *self)
{
    assert (!self->txn);
    s_frames_clear (self);
    self->nundo = 0;
    self->staged_keys = 0;
    if (atomic_load (&self->apply_failing)) {
        pthread_mutex_lock (&self->mutex);
        snprintf (self->error, sizeof self->error, "%s", self->apply_error);
        self->full = self->apply_full;
        pthread_mutex_unlock (&self->mutex);
        return -1;
    }
    int rc = mdb_txn_begin (self->log_env, NULL, 0, &self->txn);
    if (rc) {
        self->txn = NULL;
        return s_fail_rc (self, "begin", rc);
    }
    //  One snapshot of the tables for the whole batch. It is taken after the
    //  last absorb, so every dedup entry dropped from `pending` is in it.
    MDB_txn *rtxn;
    if (s_read_begin (self, &rtxn)) {
        mdb_txn_abort (self->txn);
        self->txn = NULL;
        return -1;
    }
    self->batch_reading = true;
    //  Trim log entries the tables already hold (a few pages at the front).
    uint64_t applied = atomic_load (&self->trimmable);
    if (self->log_first <= applied) {
        MDB_cursor *cursor;
        if (mdb_cursor_open (self->txn, self->log, &cursor) == 0) {
            MDB_val key, val;
            size_t n = 0;
            while (n++ < TRIM_MAX && mdb_cursor_get (cursor, &key, &val, MDB_FIRST) == 0 && key.mv_size == 8
                   && trove_get_be64 (key.mv_data) <= applied)
                if (mdb_cursor_del (cursor, 0))
                    break;
            mdb_cursor_close (cursor);
            self->log_first = n > TRIM_MAX ? self->log_first : applied + 1;
        }
    }
    return 0;
}

static void
s_batch_end_reading (trove_ledger_t *self)
{
    self->batch_reading = false;
    s_read_end (self);
}

static void
s_batch_rollback (trove_ledger_t *self)
{
    s_batch_end_reading (self);
    for (size_t i = self->nundo; i-- > 0;)
        self->pseq [self->undo [i].partition] = self->undo [i].before;
    self->nundo = 0;
    self->lseq_pending = self->lseq;
    self->aseq_pending = self->aseq;
    self->nevents_pending = self->nevents;
    //  Unstage the batch's dedup keys (the newest ones, at the tail).
    while (self->staged_keys > 0) {
        void *handle = zlistx_last (self->pending_order) ? zlistx_cursor (self->pending_order) : NULL;
        if (!handle)
            break;
        zhashx_delete (self->pending, zlistx_handle_item (handle));
        zlistx_delete (self->pending_order, handle);
        self->staged_keys--;
    }
    self->staged_keys = 0;
    zlistx_purge (self->users_staged);
    s_records_free (self->batch_head);
    self->batch_head = self->batch_tail = NULL;
    s_frames_clear (self);
    s_staged_clear (self, false);
}

void
trove_ledger_abort (trove_ledger_t *self)
{
    if (!self->txn)
        return;
    mdb_txn_abort (self->txn);
    self->txn = NULL;
    s_batch_rollback (self);
}

int
trove_ledger_commit (trove_ledger_t *self)
{
    assert (self->txn);
    int rc = mdb_txn_commit (self->txn);
    self->txn = NULL;  //  mdb_txn_commit frees the handle even on failure
    if (rc) {
        s_fail_rc (self, "commit", rc);
        s_batch_rollback (self);
        return -1;
    }
    s_batch_end_reading (self);
    //  Durable: the events are accepted. Hand the records to the apply thread.
    size_t n = (size_t) (self->lseq_pending - self->lseq);
    self->lseq = self->lseq_pending;
    self->aseq = self->aseq_pending;
    self->nevents = self->nevents_pending;
    self->nready = self->nframes;
    self->staged_keys = 0;
    //  The batch's states are now committed: pending until applied.
    s_staged_clear (self, true);
    s_users_commit (self);
    s_enqueue (self, self->batch_head, self->batch_tail, n);
    self->batch_head = self->batch_tail = NULL;
    self->error [0] = 0;
    self->full = false;
    return 0;
}

size_t
trove_ledger_awards_ready (trove_ledger_t *self, void ***frames_p, size_t **sizes_p)
{
    *frames_p = self->frames;
    *sizes_p = self->sizes;
    return self->nready;
}

void
trove_ledger_award_rule (trove_ledger_t *self, size_t index, const char **hunt_p, const char **rule_p)
{
    assert (index < self->nready);
    *hunt_p = self->frame_meta [index].hunt;
    *rule_p = self->frame_meta [index].rule;
}

bool
trove_ledger_award_revoked (trove_ledger_t *self, size_t index)
{
    assert (index < self->nready);
    return self->frame_meta [index].revoked;
}

void
trove_ledger_sizes (trove_ledger_t *self, uint64_t *tables_p, uint64_t *log_p)
{
    MDB_envinfo info;
    MDB_stat stat;
    *tables_p = *log_p = 0;
    if (mdb_env_info (self->env, &info) == 0 && mdb_env_stat (self->env, &stat) == 0)
        *tables_p = ((uint64_t) info.me_last_pgno + 1) * stat.ms_psize;
    if (mdb_env_info (self->log_env, &info) == 0 && mdb_env_stat (self->log_env, &stat) == 0)
        *log_p = ((uint64_t) info.me_last_pgno + 1) * stat.ms_psize;
}

const char *
trove_ledger_error (trove_ledger_t *self)
{
    return self->error;
}
bool
trove_ledger_full (trove_ledger_t *self)
{
    return self->full;
}
uint64_t
trove_ledger_last_aseq (trove_ledger_t *self)
{
    return self->aseq;
}
uint64_t
trove_ledger_event_count (trove_ledger_t *self)
{
    return self->nevents;
}


//  Next pseq of a partition within the open batch.
static int
s_next_pseq (trove_ledger_t *self, uint32_t p, uint64_t *pseq_p)
{
    if (!self->pseq_loaded [p]) {
        //  Not seen since start and not in the unapplied log: the tables
        //  hold its last pseq.
        MDB_txn *txn;
        if (s_read_begin (self, &txn))
            return -1;
        MDB_cursor *cursor;
        int rc = mdb_cursor_open (txn, self->events, &cursor);
        if (rc) {
            s_read_end (self);
            return s_fail_rc (self, "events cursor", rc);
        }
        uint8_t kbuf [12];
        trove_put_be32 (kbuf, p + 1);
        trove_put_be64 (kbuf + 4, 0);
        MDB_val key = {12, kbuf}, val;
        rc = mdb_cursor_get (cursor, &key, &val, MDB_SET_RANGE);
        rc = rc == 0 ? mdb_cursor_get (cursor, &key, &val, MDB_PREV)
                     : mdb_cursor_get (cursor, &key, &val, MDB_LAST);
        uint64_t last = 0;
        if (rc == 0 && key.mv_size == 12 && trove_get_be32 (key.mv_data) == p)
            last = trove_get_be64 ((uint8_t *) key.mv_data + 4);
        mdb_cursor_close (cursor);
        s_read_end (self);
        if (rc && rc != MDB_NOTFOUND)
            return s_fail_rc (self, "events cursor", rc);
        self->pseq [p] = last;
        self->pseq_loaded [p] = 1;
    }
    if (self->nundo == self->undo_cap) {
        size_t cap = self->undo_cap ? self->undo_cap * 2 : 256;
        s_undo_t *bigger = realloc (self->undo, cap * sizeof *bigger);
        if (!bigger) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->undo = bigger;
        self->undo_cap = cap;
    }
    self->undo [self->nundo++] = (s_undo_t){p, self->pseq [p]};
    *pseq_p = ++self->pseq [p];
    return 0;
}

static int
s_push_frame (trove_ledger_t *self, void *frame, size_t size, const Trove__Coin *coin)
{
    if (self->nframes == self->frames_cap) {
        size_t cap = self->frames_cap ? self->frames_cap * 2 : 256;
        void **frames = realloc (self->frames, cap * sizeof *frames);
        if (frames)
            self->frames = frames;
        size_t *sizes = frames ? realloc (self->sizes, cap * sizeof *sizes) : NULL;
        if (sizes)
            self->sizes = sizes;
        s_frame_meta_t *meta = sizes ? realloc (self->frame_meta, cap * sizeof *meta) : NULL;
        if (!meta) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->frame_meta = meta;
        self->frames_cap = cap;
    }
    self->frames [self->nframes] = frame;
    s_frame_meta_t *m = &self->frame_meta [self->nframes];
    snprintf (m->hunt, sizeof m->hunt, "%s", coin->hunt);
    snprintf (m->rule, sizeof m->rule, "%s", coin->rule);
    snprintf (m->id, sizeof m->id, "%s", coin->id);
    m->revoked = coin->revoked;
    self->sizes [self->nframes++] = size;
    return 0;
}

//  One coin change from the engine (or an undo): it joins the event's log
//  record and the batch's award frames with the next aseq.
static int
s_change (void *arg, const trove_change_t *ch)
{
    trove_ledger_t *self = arg;
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = (char *) ch->id;
    coin.user = (char *) ch->user;
    coin.hunt = (char *) ch->hunt;
    coin.rule = (char *) ch->rule;
    coin.rule_version = ch->version;
    coin.value = ch->value;
    coin.n_events = ch->nrefs;
    coin.events = (Trove__EventRef **) ch->refs;
    coin.minted_ms = trove_now_ms ();
    coin.shard = self->shard;
    coin.aseq = self->aseq_pending + 1;
    coin.reason = (char *) ch->reason;
    coin.event_ts_ms = ch->event_ts_ms;
    coin.local_day = ch->local_day;
    coin.accepted_us = ch->accepted_us;
    coin.revoked = ch->revoke;
    coin.run = (char *) (ch->run ? ch->run : "");
    size_t len = trove__coin__get_packed_size (&coin);
    uint8_t *frame = malloc (1 + 10 + len);
    if (!frame) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    frame [0] = S_TAG_MSG_AWARD;
    size_t at = 1;
    for (size_t v = len;; v >>= 7) {
        frame [at++] = (uint8_t) ((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    trove__coin__pack (&coin, frame + at);
    if (s_push_frame (self, frame, at + len, &coin)) {
        free (frame);
        return -1;
    }
    self->ncoins++;
    self->aseq_pending = coin.aseq;
    return 0;
}

//  Is (source, id) accepted already? Looks at the unapplied log entries,
//  then the tables. Returns 1 (yes, *req_id_p set), 0 (no), 2 (no, but an
//  undo named it: store it, never score it), -1 (error).
static int
s_seen (trove_ledger_t *self, const char *source, const char *id, uint64_t *req_id_p)
{
    char key [KEY_MAX];
    s_dedup_key (source, id, key, sizeof key);
    s_pending_t *p = zhashx_lookup (self->pending, key);
    if (p) {
        *req_id_p = p->req_id;
        return p->undone ? 2 : 1;
    }
    size_t slen = strlen (source), ilen = strlen (id);
    uint8_t dkey [KEY_MAX];
    if (slen + 1 + ilen > sizeof dkey)
        return 0;  //  cannot be stored, so never was (validation bounds real events)
    memcpy (dkey, source, slen);
    dkey [slen] = 0;
    memcpy (dkey + slen + 1, id, ilen);
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_val k = {slen + 1 + ilen, dkey}, val;
    int rc = mdb_get (txn, self->dedup, &k, &val);
    bool marker = false;
    if (rc == 0) {
        *req_id_p = val.mv_size >= 8 ? trove_get_be64 (val.mv_data) : 0;
        marker = val.mv_size >= 12 && trove_get_be32 ((uint8_t *) val.mv_data + 8) == MARKER_PARTITION;
    }
    s_read_end (self);
    if (rc == 0)
        return marker ? 2 : 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    return s_fail_rc (self, "get dedup", rc);
}

//  --- the engine's state store: the open batch, then the unapplied log, then
//  the tables ---------------------------------------------------------------

static int
s_store_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p)
{
    trove_ledger_t *self = arg;
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    s_state_t *st = zhashx_lookup (self->states_staged, key);
    if (!st)
        st = zhashx_lookup (self->states_pending, key);
    if (st) {
        *data_p = st->data;
        *size_p = st->size;
        return st->size ? 0 : 1;
    }
    size_t ul = strlen (user), hl = strlen (hunt);
    uint8_t skey [KEY_MAX];
    if (ul + 1 + hl > sizeof skey)
        return -1;
    memcpy (skey, user, ul);
    skey [ul] = 0;
    memcpy (skey + ul + 1, hunt, hl);
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_val k = {ul + 1 + hl, skey}, val;
    int rc = mdb_get (txn, self->states, &k, &val);
    //  The batch holds its snapshot, so the data stays valid while scoring.
    if (rc == 0) {
        *data_p = val.mv_data;
        *size_p = val.mv_size;
    }
    s_read_end (self);
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return 1;
    return s_fail_rc (self, "get state", rc);
}

static int
s_store_put (void *arg, const char *user, const char *hunt, const void *data, size_t size)
{
    trove_ledger_t *self = arg;
    if (s_state_set (self->states_staged, user, hunt, self->lseq_pending + 1, data, size)) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    if (self->nstates == self->states_cap) {
        size_t cap = self->states_cap ? self->states_cap * 2 : 4;
        Trove__StateEntry *v = realloc (self->rec_states, cap * sizeof *v);
        if (v)
            self->rec_states = v;
        Trove__StateEntry **ptrs = v ? realloc (self->rec_state_ptrs, cap * sizeof *ptrs) : NULL;
        if (!ptrs) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->rec_state_ptrs = ptrs;
        self->states_cap = cap;
    }
#ifdef TROVE_MUTANT_STATE_NOT_SAVED
    //  TEST-ONLY MUTANT: the state stays in memory for this batch but is not
    //  written with it, so it is gone once the batch is applied.
    return 0;
#endif
    //  The record borrows the staged copy (packed before the next put).
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    s_state_t *st = zhashx_lookup (self->states_staged, key);
    Trove__StateEntry *e = &self->rec_states [self->nstates++];
    trove__state_entry__init (e);
    e->hunt = st->hunt;
    e->data.data = st->data;
    e->data.len = st->size;
    return 0;
}

//  --- undo of an event outside every engine buffer --------------------------

static void
s_coin_item_free (void **item)
{
    if (*item) {
        trove__coin__free_unpacked (*item, NULL);
        *item = NULL;
    }
}

//  Every coin entry of a user in the tables, oldest first, into latest
//  (id -> Trove__Coin, owned: a later entry of an id replaces the earlier).
//  Returns 0 or -1.
static int
s_scan_user (trove_ledger_t *self, MDB_txn *txn, const char *user, zhashx_t *latest)
{
    size_t ul = strlen (user);
    uint8_t ukey [KEY_MAX];
    if (ul + 9 > sizeof ukey)
        return -1;
    memcpy (ukey, user, ul);
    ukey [ul] = 0;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->users, &cursor);
    if (rc)
        return s_fail_rc (self, "users cursor", rc);
    MDB_val key = {ul + 1, ukey}, val;
    int bad = 0;
    rc = mdb_cursor_get (cursor, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && !bad && key.mv_size >= ul + 1 && memcmp (key.mv_data, ukey, ul + 1) == 0) {
        if (key.mv_size == ul + 9) {
            Trove__Coin *coin = NULL;
            bad = s_get_coin_at (self, txn, (uint8_t *) key.mv_data + ul + 1, &coin);
            if (bad == 1)
                bad = 0;  //  index ahead of a coin: cannot happen in one transaction
            else if (coin)
                zhashx_update (latest, coin->id, coin);
        }
        rc = mdb_cursor_get (cursor, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (!bad && rc && rc != MDB_NOTFOUND)
        return s_fail_rc (self, "users cursor", rc);
    return bad ? -1 : 0;
}

//  Remember the latest entry of a coin (entries come in aseq order).
static int
s_latest_put (zhashx_t *latest, const Trove__Coin *coin)
{
    Trove__Coin *copy = trove_msg_coin_dup (coin);
    if (!copy)
        return -1;
    zhashx_update (latest, copy->id, copy);
    return 0;
}

//  Each record of user the tables' snapshot lacks (self->snap_applied),
//  oldest first: committed ones kept in memory (users_records), then those
//  of the open batch. fn returns 0 to go on. Returns 0, or -1 when fn
//  failed or a record is unreadable.
typedef int (s_record_fn) (const Trove__LogRecord *rec, const char *user, void *arg);

static int
s_user_records (trove_ledger_t *self, const char *user, s_record_fn *fn, void *arg)
{
    int rc = 0;
    zlistx_t *mine = zhashx_lookup (self->users_records, user);
    for (s_user_mark_t *m = mine ? zlistx_first (mine) : NULL; m && rc == 0; m = zlistx_next (mine)) {
        if (m->lseq <= self->snap_applied)
            continue;
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, m->size, m->data);
        rc = rec ? fn (rec, user, arg) : -1;
        if (rec)
            trove__log_record__free_unpacked (rec, NULL);
    }
    for (s_record_t *r = self->batch_head; r && rc == 0; r = r->next) {
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, r->size, r->data);
        const Trove__EventRecord *er = rec ? rec->record : NULL;
        if (er && er->event && strcmp (er->event->user, user) == 0)
            rc = fn (rec, user, arg);
        if (rec)
            trove__log_record__free_unpacked (rec, NULL);
    }
    return rc;
}

//  s_record_fn: the user's coin entries into a latest-entry map.
static int
s_records_coins (const Trove__LogRecord *rec, const char *user, void *arg)
{
    for (size_t i = 0; i < rec->n_coins; i++)
        if (strcmp (rec->coins [i]->user, user) == 0 && s_latest_put (arg, rec->coins [i]))
            return -1;
    return 0;
}

typedef struct {
    zlistx_t *out;  //  Trove__Event copies
    size_t max;     //  0: no limit
    bool over;      //  stopped: more than max
} s_events_walk_t;

//  s_record_fn: the record's event (an event of the log: pseq) into a list.
static int
s_records_events (const Trove__LogRecord *rec, const char *user, void *arg)
{
    (void) user;
    s_events_walk_t *w = arg;
    const Trove__EventRecord *er = rec->record;
    if (!er || !er->event || !er->pseq)
        return 0;
    if (w->max && zlistx_size (w->out) >= w->max) {
        w->over = true;
        return -1;
    }
    Trove__Event *copy = trove_event_dup (er->event);
    if (!copy)
        return -1;
    zlistx_add_end (w->out, copy);
    return 0;
}

//  The latest entry of every coin of a user, committed or earlier in this
//  batch (id -> Trove__Coin, owned). Needs the tables to hold the user's
//  committed records, so it waits for the apply thread to reach the user's
//  last one (none: no wait), then takes a fresh snapshot for the rest of
//  the batch. NULL on error (self->error set).
static zhashx_t *
s_user_latest (trove_ledger_t *self, const char *user, const char *what)
{
    s_batch_end_reading (self);
    //  A lost mark (OOM) means the memory below may miss a record: then
    //  wait until the tables hold everything committed, once.
    int rc = 0;
    if (self->marks_lost && (rc = s_wait_applied_to (self, self->lseq, 30000)) == 0)
        self->marks_lost = false;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return NULL;
    self->batch_reading = true;
    if (rc) {
        snprintf (self->error, sizeof self->error, "%s: the tables are behind the log; try again", what);
        return NULL;
    }
    //  The snapshot holds the records up to its own `applied` mark; the
    //  user's later ones are in memory (users_records) until absorbed.
    MDB_val key = {7, "applied"}, val;
    self->snap_applied = mdb_get (txn, self->meta, &key, &val) == 0 && val.mv_size == 8 ? trove_get_be64 (val.mv_data) : 0;
    zhashx_t *latest = zhashx_new ();
    if (!latest)
        return NULL;
    zhashx_set_destructor (latest, s_coin_item_free);
    //  1. The tables: the user's coins, oldest first.
    rc = s_scan_user (self, self->rtxn, user, latest);
    //  2. The user's records the snapshot lacks: aseq order throughout.
    if (rc == 0)
        rc = s_user_records (self, user, s_records_coins, latest);
    if (rc) {
        zhashx_destroy (&latest);
        if (!self->error [0])
            snprintf (self->error, sizeof self->error, "%s: out of memory or an unreadable record", what);
    }
    return latest;
}

//  --- re-deriving one user ----------------------------------------------------
//  Real time is exact for any arrival order because whatever the engine
//  cannot place in its state (an event that orders before what it has
//  folded, an undo of a stored event) and every reconciler request makes
//  the scorer re-derive the user here, in the batch that logs the event:
//  all of the user's events in event-time order with the rules in force,
//  the difference with the ledger written as entries, the rule state
//  replaced. Invariant: after this, the user's live coins and rule state
//  are those of event-time order; a second re-derive writes nothing.

static void
s_event_item_free (void **item)
{
    trove_event_destroy ((Trove__Event **) item);
}

static int
s_keep_derived (void *arg, const trove_change_t *ch)
{
    Trove__Coin *coin = trove_change_coin (ch);
    if (!coin)
        return -1;
    zhashx_update (arg, coin->id, coin);
    return 0;
}

//  Same value, version and provenance.
static bool
s_coin_same (const Trove__Coin *a, const Trove__Coin *b)
{
    if (a->value != b->value || a->rule_version != b->rule_version || a->n_events != b->n_events)
        return false;
    for (size_t i = 0; i < a->n_events; i++)
        if (strcmp (a->events [i]->source, b->events [i]->source)
            || strcmp (a->events [i]->id, b->events [i]->id))
            return false;
    return true;
}

//  An entry for an existing coin (revoked, or minted again), in this record.
static int
s_coin_change (trove_ledger_t *self, const Trove__Coin *c, bool revoke, const char *reason, const char *run)
{
    trove_change_t ch = {
        .revoke = revoke,
        .id = c->id,
        .user = c->user,
        .hunt = c->hunt,
        .rule = c->rule,
        .version = c->rule_version,
        .value = c->value,
        .refs = c->events,
        .nrefs = c->n_events,
        .event_ts_ms = c->event_ts_ms,
        .local_day = c->local_day,
        .accepted_us = c->accepted_us,
        .reason = reason,
        .run = run,
    };
    return s_change (self, &ch);
}

//  A user's stored events into out (copies): the tables, which the caller
//  made hold everything committed (s_user_latest), then the open batch.
//  Returns 0, 1 when there are more than max (max 0: no limit), -1 on error.
static int
s_user_events (trove_ledger_t *self, const char *user, size_t max, zlistx_t *out)
{
    size_t ul = strlen (user);
    uint8_t prefix [KEY_MAX];
    if (ul + 1 > sizeof prefix)
        return -1;
    memcpy (prefix, user, ul + 1);
    MDB_cursor *cur;
    int rc = mdb_cursor_open (self->rtxn, self->uevents, &cur);
    if (rc)
        return s_fail_rc (self, "user events cursor", rc);
    MDB_val key = {ul + 1, prefix}, val;
    int bad = 0;
    for (rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && !bad && key.mv_size == ul + 13 && memcmp (key.mv_data, prefix, ul + 1) == 0;
         rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT)) {
        if (max && zlistx_size (out) >= max) {
            bad = 1;
            break;
        }
        MDB_val ek = {12, (uint8_t *) key.mv_data + ul + 1}, ev;
        int got = mdb_get (self->rtxn, self->events, &ek, &ev);
        Trove__EventRecord *er = got ? NULL : trove__event_record__unpack (NULL, ev.mv_size, ev.mv_data);
        Trove__Event *copy = er && er->event ? trove_event_dup (er->event) : NULL;
        if (er)
            trove__event_record__free_unpacked (er, NULL);
        if (!copy) {
            snprintf (self->error, sizeof self->error, "re-derive: event of %s %s", user,
                      got ? mdb_strerror (got) : "unreadable");
            bad = -1;
        }
        else
            zlistx_add_end (out, copy);
    }
    mdb_cursor_close (cur);
    if (!bad && rc && rc != MDB_NOTFOUND)
        return s_fail_rc (self, "user events cursor", rc);
    //  Then the records the snapshot lacks (s_user_latest set snap_applied).
    s_events_walk_t walk = {out, max, 0};
    if (!bad && s_user_records (self, user, s_records_events, &walk))
        bad = walk.over ? 1 : -1;
    return bad;
}

//  Re-derive a user from every stored event plus ev (the event being
//  applied: stored with this record; NULL for a reconciler's request) and
//  write the difference with the ledger: revocations with reason, mints
//  "scored" when ev earned them, else "rescored" (all "reconciled", with
//  the run id, for a reconciler). Returns 0, 1 when the user has more than
//  max stored events (nothing written), -1 on error.
static int
s_rederive (trove_ledger_t *self, const char *user, const Trove__Event *ev, const trove_rules_t *rules,
            size_t max, const char *reason, const char *run)
{
    zhashx_t *latest = s_user_latest (self, user, "re-derive");
    if (!latest)
        return -1;
    zlistx_t *events = zlistx_new ();
    zhashx_t *derived = zhashx_new ();
    trove_memstore_t *mem = trove_memstore_new ();
    Trove__Event **list = NULL;
    int rc = -1;
    if (!events || !derived || !mem)
        goto done;
    zlistx_set_destructor (events, s_event_item_free);
    zhashx_set_destructor (derived, s_coin_item_free);
    if ((rc = s_user_events (self, user, max, events)))
        goto done;
    rc = -1;
    size_t n = zlistx_size (events) + (ev != NULL), k = 0;
    if (!(list = calloc (n ? n : 1, sizeof *list)))
        goto done;
    for (Trove__Event *e = zlistx_first (events); e; e = zlistx_next (events))
        list [k++] = e;
    if (ev)
        list [k++] = (Trove__Event *) ev;
    self->counts.rederives += ev != NULL;
    self->counts.rederive_events += ev ? n : 0;
    if (trove_engine_derive_into (rules, list, n, s_keep_derived, derived, mem))
        goto done;
    rc = 0;
    bool reconciler = run != NULL;
    //  Revocations first, so that an amended coin ends minted.
    for (Trove__Coin *c = zhashx_first (latest); c && rc == 0; c = zhashx_next (latest)) {
        Trove__Coin *d = zhashx_lookup (derived, c->id);
        if (!c->revoked && !(d && s_coin_same (c, d)))
            rc = s_coin_change (self, c, true, reason, run);
    }
    for (Trove__Coin *d = zhashx_first (derived); d && rc == 0; d = zhashx_next (derived)) {
        Trove__Coin *c = zhashx_lookup (latest, d->id);
        if (c && !c->revoked && s_coin_same (c, d))
            continue;
        bool earned = false;
        for (size_t i = 0; ev && i < d->n_events && !earned; i++)
            earned = strcmp (d->events [i]->source, ev->source) == 0 && strcmp (d->events [i]->id, ev->id) == 0;
        //  A coin re-issued keeps the acceptance time of its last earning
        //  event only when that is this one.
        d->accepted_us = earned ? self->scoring_accepted_us : 0;
        rc = s_coin_change (self, d, false, reconciler ? reason : earned ? "scored" : "rescored", run);
    }
    if (rc == 0 && reconciler && self->ncoins) {
        //  Real time is exact: what a reconciler still finds is an incident.
        self->counts.repairs++;
        self->counts.repair_entries += self->ncoins;
    }
    //  The user's rule state becomes what event-time order leaves.
    trove_store_t store = trove_memstore_store (mem), ledger = {s_store_get, s_store_put, self};
    for (size_t h = 0; h < trove_rules_hunts (rules) && rc == 0; h++) {
        const char *hunt = trove_rules_latest (rules, h)->hunt;
        const void *data;
        size_t size;
        int got = store.get (store.arg, user, hunt, &data, &size);
        if (got == 0)
            rc = s_store_put (self, user, hunt, data, size);
        else if (ledger.get (ledger.arg, user, hunt, &data, &size) == 0)
            rc = s_store_put (self, user, hunt, NULL, 0);
    }
done:
    if (rc < 0 && !self->error [0])
        snprintf (self->error, sizeof self->error, "re-derive: out of memory or unreadable events");
    free (list);
    zlistx_destroy (&events);
    zhashx_destroy (&derived);
    zhashx_destroy (&latest);
    trove_memstore_destroy (&mem);
    return rc;
}

void
trove_ledger_set_history_max (trove_ledger_t *self, size_t max)
{
    self->history_max = max;
}

const char *
trove_ledger_reject_reason (trove_ledger_t *self)
{
    return self->reject_reason ? self->reject_reason : "";
}

void
trove_ledger_counts (trove_ledger_t *self, trove_ledger_counts_t *counts)
{
    *counts = self->counts;
}

//  --- the cluster-wide identity of events ----------------------------------

int
trove_ledger_claim (trove_ledger_t *self, const Trove__Event *ev, Trove__Status *status_p, char *why,
                    size_t why_size)
{
    assert (self->txn);
    uint8_t content [TROVE_EVENT_CONTENT_SIZE];
    trove_event_content_hash (ev, content);
    char key [KEY_MAX + 2];
    snprintf (key, sizeof key, "\x01%s\x1f%s", ev->source, ev->id);
    const uint8_t *held = NULL;
    s_pending_t *p = zhashx_lookup (self->pending, key);
    MDB_val val;
    MDB_txn *txn = NULL;
    if (p && p->claim)
        held = p->content;
    else {
        size_t sl = strlen (ev->source), il = strlen (ev->id);
        uint8_t dkey [KEY_MAX];
        if (sl + 1 + il > sizeof dkey)
            return -1;  //  validation bounds these
        memcpy (dkey, ev->source, sl);
        dkey [sl] = 0;
        memcpy (dkey + sl + 1, ev->id, il);
        if (s_read_begin (self, &txn))
            return -1;
        MDB_val k = {sl + 1 + il, dkey};
        int rc = mdb_get (txn, self->claims, &k, &val);
        if (rc == 0 && val.mv_size == TROVE_EVENT_CONTENT_SIZE)
            held = val.mv_data;
        else if (rc && rc != MDB_NOTFOUND) {
            s_read_end (self);
            return s_fail_rc (self, "get claim", rc);
        }
    }
    if (held) {
        bool same = memcmp (held, content, TROVE_EVENT_CONTENT_SIZE) == 0;
        if (txn)
            s_read_end (self);
        *status_p = same ? TROVE__STATUS__ACCEPTED : TROVE__STATUS__REJECTED;
        if (!same)
            snprintf (why, why_size, "source '%s' already sent an event with id '%s' that says something else "
                                     "(another user, type, ts or attributes); ids are unique per source",
                      ev->source, ev->id);
        return 0;
    }
    if (txn)
        s_read_end (self);
    //  New: a record of its own, committed with the batch.
    Trove__Claim claim = TROVE__CLAIM__INIT;
    claim.source = ev->source;
    claim.id = ev->id;
    claim.content.data = content;
    claim.content.len = sizeof content;
    Trove__LogRecord rec = TROVE__LOG_RECORD__INIT;
    rec.claim = &claim;
    s_record_t *r = calloc (1, sizeof *r);
    if (!r) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    r->lseq = self->lseq_pending + 1;
    r->size = trove__log_record__get_packed_size (&rec);
    r->data = malloc (r->size ? r->size : 1);
    uint8_t kbuf [8];
    trove_put_be64 (kbuf, r->lseq);
    MDB_val key_log = {8, kbuf}, val_log = {r->size, r->data};
    int mrc = r->data ? (trove__log_record__pack (&rec, r->data), mdb_put (self->txn, self->log, &key_log, &val_log, MDB_APPEND))
                      : ENOMEM;
    if (mrc) {
        free (r->data);
        free (r);
        return s_fail_rc (self, "append a claim to the log", mrc);
    }
    if (self->batch_tail)
        self->batch_tail->next = r;
    else
        self->batch_head = r;
    self->batch_tail = r;
    self->lseq_pending++;
    s_claim_pending_add (self, ev->source, ev->id, content, self->lseq_pending);
    *status_p = TROVE__STATUS__ACCEPTED;
    return 0;
}

int
trove_ledger_apply (trove_ledger_t *self, const Trove__Event *ev, uint32_t partition, uint64_t req_id,
                    int64_t accepted_us, const trove_rules_t *rules, Trove__Status *status_p)
{
    assert (self->txn);
    assert (partition < MAX_PARTITIONS);
    assert (strlen (ev->source) + 1 + strlen (ev->id) < KEY_MAX);  //  validation bounds these
    uint64_t first;
    int seen = s_seen (self, ev->source, ev->id, &first);
    if (seen < 0)
        return -1;
#ifdef TROVE_MUTANT_DEDUP_SKIPPED
    //  TEST-ONLY MUTANT: an event sent again by another submission is
    //  applied again (tests/integration/test_mutants.sh must catch it).
    if (seen == 1 && first != req_id)
        seen = 0;
#endif
    if (seen == 1) {
        //  The same submission retried (its answer was lost) is still "accepted".
        *status_p = first == req_id && req_id != 0 ? TROVE__STATUS__ACCEPTED : TROVE__STATUS__DUPLICATE;
        return 0;
    }
    //  Named by an undo that came first: never scored, if the undo was its
    //  user's (seen: the marker's user tag, 0 for any user).
    bool skipped = seen == 2 && (first == 0 || first == s_user_tag (ev->user));
    const char *tsource = NULL, *tid = NULL;
    bool undo = trove_engine_undo_target (ev, &tsource, &tid);
    int target_seen = 0;
    if (undo) {
        uint64_t ignored;
        target_seen = s_seen (self, tsource, tid, &ignored);
        if (target_seen < 0)
            return -1;
    }
    //  A reconciler's re-derive request is kept (dedup, the log) but is not
    //  an event of the user's log: no pseq, not in `events`, not pulled.
    bool request =
        strcmp (ev->source, TROVE_RECONCILER_SOURCE) == 0 && strcmp (ev->type, TROVE_RECONCILE_TYPE) == 0;
    s_record_t *r = calloc (1, sizeof *r);
    if (!r) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    s_mint_clear (self);
    self->scoring_accepted_us = accepted_us;
    int rc = -1;
    int scored = 0;
    trove_store_t store = {s_store_get, s_store_put, self};
    if (request) {
        const char *run = "";
        for (size_t i = 0; i < ev->n_attrs; i++)
            if (strcmp (ev->attrs [i]->key, "run") == 0 && ev->attrs [i]->value_case == TROVE__ATTR__VALUE_S)
                run = ev->attrs [i]->s;
        scored = s_rederive (self, ev->user, NULL, rules, 0, "reconciled", run);
    }
    else if (undo) {
        //  Wherever the target went (a buffer, a checkpoint, a stateless
        //  coin), event-time order without it is the answer. An undo that
        //  comes first leaves a marker instead (below).
        if (target_seen == 1)
            scored = s_rederive (self, ev->user, ev, rules, self->history_max, "undo", NULL);
    }
    else if (!skipped) {
        scored = trove_engine_score (rules, ev, accepted_us, &store, s_change, self);
        if (scored == 1)  //  before what the engine has folded: placed exactly by a re-derive
            scored = s_rederive (self, ev->user, ev, rules, self->history_max, "rescored", NULL);
    }
    if (scored < 0) {
        if (!self->error [0])
            snprintf (self->error, sizeof self->error, "rules engine: out of memory or unreadable state");
        goto done;
    }
    if (scored == 1) {
        //  The user's history is too long to re-read for this event: refused
        //  before anything was written (the engine changed nothing).
        self->reject_reason = "history_limit";
        *status_p = TROVE__STATUS__REJECTED;
        rc = 0;
        goto done;
    }
    uint64_t pseq = 0;
    if (!request && s_next_pseq (self, partition, &pseq))
        goto done;

    Trove__EventRecord er = TROVE__EVENT_RECORD__INIT;
    er.event = (Trove__Event *) ev;
    er.partition = partition;
    er.pseq = pseq;
    er.accepted_us = accepted_us;
    Trove__LogRecord rec = TROVE__LOG_RECORD__INIT;
    rec.record = &er;
    rec.req_id = req_id;
    for (size_t i = 0; i < self->nstates; i++)
        self->rec_state_ptrs [i] = &self->rec_states [i];
    rec.n_states = self->nstates;
    rec.states = self->rec_state_ptrs;
    rec.skipped = skipped;
    Trove__EventRef target = TROVE__EVENT_REF__INIT;
    if (undo && target_seen == 0) {
        target.source = (char *) tsource;
        target.id = (char *) tid;
        rec.undone = &target;
    }
    r->lseq = self->lseq_pending + 1;
    size_t base = trove__log_record__get_packed_size (&rec);
    r->size = base;
    for (size_t i = 0; i < self->ncoins; i++)
        r->size += self->sizes [self->rec_first_frame + i];
    uint8_t kbuf [8];
    trove_put_be64 (kbuf, r->lseq);
    MDB_val key = {8, kbuf}, val = {r->size, NULL};
    //  Append-only: the log's commit touches a few pages whatever the keys of
    //  the tables are.
    int mrc = mdb_put (self->txn, self->log, &key, &val, MDB_APPEND | MDB_RESERVE);
    if (mrc) {
        s_fail_rc (self, "append to log", mrc);
        goto done;
    }
    trove__log_record__pack (&rec, val.mv_data);
    //  Then the coins as field 3, spliced from their award frames.
    uint8_t *out = (uint8_t *) val.mv_data + base;
    for (size_t i = 0; i < self->ncoins; i++) {
        size_t f = self->rec_first_frame + i;
        memcpy (out, self->frames [f], self->sizes [f]);
        out [0] = S_TAG_LOG_COINS;
        out += self->sizes [f];
    }
    //  The tables get a private copy (the log page belongs to LMDB).
    r->data = malloc (r->size ? r->size : 1);
    if (!r->data) {
        snprintf (self->error, sizeof self->error, "out of memory");
        goto done;
    }
    memcpy (r->data, val.mv_data, r->size);
    if (self->batch_tail)
        self->batch_tail->next = r;
    else
        self->batch_head = r;
    self->batch_tail = r;
    r = NULL;
    self->lseq_pending++;
    self->nevents_pending += !request;
    s_pending_add (self, ev->source, ev->id, req_id, self->lseq_pending, false);
    if (s_user_mark (self->users_staged, ev->user, self->lseq_pending, self->batch_tail->data,
                     self->batch_tail->size))
        self->marks_lost = true;
    if (undo && target_seen == 0)
        s_pending_add (self, tsource, tid, s_user_tag (ev->user), self->lseq_pending, true);
    *status_p = TROVE__STATUS__ACCEPTED;
    rc = 0;
done:
    s_mint_clear (self);
    free (r);
    return rc;
}

//  --- reads ----------------------------------------------------------------

static int
s_read_begin (trove_ledger_t *self, MDB_txn **txn_p)
{
    if (self->batch_reading) {
        *txn_p = self->rtxn;
        return 0;
    }
    int rc =
        self->rtxn ? mdb_txn_renew (self->rtxn) : mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->rtxn);
    if (rc) {
        if (self->rtxn)
            mdb_txn_abort (self->rtxn);
        self->rtxn = NULL;
        return s_fail_rc (self, "read", rc);
    }
    *txn_p = self->rtxn;
    return 0;
}

//  Readers must never hold a snapshot while the process waits: that would pin
//  old pages and make the file grow.
static void
s_read_end (trove_ledger_t *self)
{
    if (self->rtxn && !self->batch_reading)
        mdb_txn_reset (self->rtxn);
}

int
trove_ledger_state (trove_ledger_t *self, const char *user, const char *hunt, trove_cost_t *cost,
                    Trove__HuntState **state_p)
{
    *state_p = NULL;
    size_t ul = strlen (user), hl = strlen (hunt);
    if (ul + 1 + hl > KEY_MAX)
        return 0;
    if (cost && !trove_cost_charge (cost, 1))
        return -1;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    uint8_t key [KEY_MAX];
    memcpy (key, user, ul);
    key [ul] = 0;
    memcpy (key + ul + 1, hunt, hl);
    MDB_val k = {ul + 1 + hl, key}, v;
    int rc = mdb_get (txn, self->states, &k, &v);
    if (rc == 0)
        *state_p = trove__hunt_state__unpack (NULL, v.mv_size, v.mv_data);
    s_read_end (self);
    if (rc && rc != MDB_NOTFOUND)
        return s_fail_rc (self, "get state", rc);
    return rc == 0 && !*state_p ? s_fail_rc (self, "unreadable state", EINVAL) : 0;
}

trove_board_t *
trove_ledger_board (trove_ledger_t *self)
{
    return self->board;
}

MDB_txn *
trove_ledger_read_begin (trove_ledger_t *self)
{
    MDB_txn *txn;
    return s_read_begin (self, &txn) ? NULL : txn;
}

void
trove_ledger_read_end (trove_ledger_t *self)
{
    s_read_end (self);
}

int
trove_ledger_set_excluded (trove_ledger_t *self, const char *user, bool excluded, const char *reason)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return s_fail_rc (self, "exclude", rc);
    rc = trove_board_set_excluded (self->board, txn, user, excluded, reason);
    if (rc) {
        mdb_txn_abort (txn);
        return s_fail_rc (self, "exclude", rc);
    }
    rc = mdb_txn_commit (txn);
    return rc ? s_fail_rc (self, "exclude", rc) : 0;
}

int
trove_ledger_balance (trove_ledger_t *self, const char *user, int64_t *balance_p, trove_cost_t *cost)
{
    if (cost && !trove_cost_charge (cost, 1))
        return -1;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    uint8_t bkey [KEY_MAX];
    *balance_p = 0;
    if (strlen (user) + 1 > sizeof bkey) {
        s_read_end (self);
        return 0;
    }
    MDB_val key = {s_balance_key (user, bkey), bkey}, val;
    int rc = mdb_get (txn, self->users, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        memcpy (balance_p, val.mv_data, 8);
    s_read_end (self);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : s_fail_rc (self, "get balance", rc);
}

//  Unpack a stored coin (a packed Msg{award}) into a standalone Coin.
static Trove__Coin *
s_unpack_coin (const MDB_val *val)
{
    Trove__Msg *msg = trove__msg__unpack (NULL, val->mv_size, val->mv_data);
    if (!msg)
        return NULL;
    Trove__Coin *coin = NULL;
    if (msg->body_case == TROVE__MSG__BODY_AWARD) {
        coin = msg->award;
        msg->award = NULL;
        msg->body_case = TROVE__MSG__BODY__NOT_SET;
    }
    trove__msg__free_unpacked (msg, NULL);
    return coin;
}

//  The coin with this aseq. Returns 0, 1 when absent, -1 on error.
static int
s_get_coin_at (trove_ledger_t *self, MDB_txn *txn, const void *aseq_be, Trove__Coin **coin_p)
{
    MDB_val key = {8, (void *) aseq_be}, val;
    int rc = mdb_get (txn, self->coins, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc)
        return s_fail_rc (self, "get coin", rc);
    *coin_p = s_unpack_coin (&val);
    if (!*coin_p) {
        snprintf (self->error, sizeof self->error, "coin record is corrupt");
        return -1;
    }
    return 0;
}

static int
s_grow_coins (Trove__Coin ***coins_p, size_t n, size_t *cap_p)
{
    if (n < *cap_p)
        return 0;
    size_t cap = *cap_p ? *cap_p * 2 : 16;
    Trove__Coin **bigger = realloc (*coins_p, cap * sizeof *bigger);
    if (!bigger)
        return -1;
    *coins_p = bigger;
    *cap_p = cap;
    return 0;
}

int
trove_ledger_coins (trove_ledger_t *self, const char *user, const char *cursor, size_t limit,
                    Trove__Coin ***coins_p, size_t *n_p, char **next_p, trove_cost_t *cost)
{
    *coins_p = NULL;
    *n_p = 0;
    *next_p = NULL;
    size_t ulen = strlen (user), cap = 0;
    uint64_t before = UINT64_MAX;
    if (cursor && *cursor) {
        char *end;
        before = strtoull (cursor, &end, 10);
        if (*end) {
            snprintf (self->error, sizeof self->error, "bad cursor");
            return -1;
        }
    }
    if (ulen + 9 > KEY_MAX)
        return -1;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open (txn, self->users, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "cursor", rc);
    }
    uint8_t kbuf [KEY_MAX];
    memcpy (kbuf, user, ulen);
    kbuf [ulen] = 0;
    trove_put_be64 (kbuf + ulen + 1, before);
    MDB_val key = {ulen + 9, kbuf}, val;
    //  Units: the positioning, each index entry, each coin.
    rc = cost && !trove_cost_charge (cost, 2) ? -1 : mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    if (rc != -1)
        rc =
            rc == 0 ? mdb_cursor_get (cur, &key, &val, MDB_PREV) : mdb_cursor_get (cur, &key, &val, MDB_LAST);
    uint64_t last = 0;
    bool more = false;
    while (rc == 0 && key.mv_size == ulen + 9 && memcmp (key.mv_data, user, ulen) == 0
           && ((uint8_t *) key.mv_data) [ulen] == 0) {
        if (*n_p == limit) {
            more = true;
            break;
        }
        Trove__Coin *coin = NULL;
        if ((cost && !trove_cost_charge (cost, 2)) || s_grow_coins (coins_p, *n_p, &cap)
            || s_get_coin_at (self, txn, (uint8_t *) key.mv_data + ulen + 1, &coin) != 0) {
            rc = -1;
            break;
        }
        (*coins_p) [(*n_p)++] = coin;
        last = trove_get_be64 ((uint8_t *) key.mv_data + ulen + 1);
        rc = mdb_cursor_get (cur, &key, &val, MDB_PREV);
    }
    mdb_cursor_close (cur);
    s_read_end (self);
    if (rc != 0 && rc != MDB_NOTFOUND && !more) {
        trove_ledger_free_coins (*coins_p, *n_p);
        *coins_p = NULL;
        *n_p = 0;
        if (cost && cost->over)
            snprintf (self->error, sizeof self->error, "cost limit");
        else if (!self->error [0])
            snprintf (self->error, sizeof self->error, "reading coins failed");
        return -1;
    }
    char buf [32] = "";
    if (more)
        snprintf (buf, sizeof buf, "%llu", (unsigned long long) last);
    *next_p = strdup (buf);
    return 0;
}

int
trove_ledger_coin (trove_ledger_t *self, const char *coin_id, Trove__Coin **coin_p,
                   Trove__EventRecord ***events_p, size_t *n_p, trove_cost_t *cost)
{
    *coin_p = NULL;
    *events_p = NULL;
    *n_p = 0;
    if (strlen (coin_id) != TROVE_COIN_ID_LEN)
        return 1;
    if (cost && !trove_cost_charge (cost, 2))  //  its id, its entry
        return -1;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    uint8_t raw [16];
    if (s_unhex (coin_id, raw)) {
        s_read_end (self);
        return 1;
    }
    MDB_val ikey = {16, raw}, ival;
    int rc = mdb_get (txn, self->coinids, &ikey, &ival);
    if (rc == 0 && ival.mv_size == 8)
        rc = s_get_coin_at (self, txn, ival.mv_data, coin_p);
    else
        rc = rc == MDB_NOTFOUND || rc == 0 ? 1 : s_fail_rc (self, "get coin id", rc);
    if (rc) {
        s_read_end (self);
        return rc;
    }
    Trove__Coin *coin = *coin_p;
    *events_p = calloc (coin->n_events ? coin->n_events : 1, sizeof **events_p);
    for (size_t i = 0; *events_p && i < coin->n_events; i++) {
        const char *src = coin->events [i]->source, *id = coin->events [i]->id;
        size_t slen = strlen (src), ilen = strlen (id);
        uint8_t dkey [KEY_MAX];
        if (slen + 1 + ilen > KEY_MAX)
            continue;
        memcpy (dkey, src, slen);
        dkey [slen] = 0;
        memcpy (dkey + slen + 1, id, ilen);
        MDB_val key = {slen + 1 + ilen, dkey}, val;
        if (cost && !trove_cost_charge (cost, 2)) {  //  its dedup entry, its record
            trove_ledger_free_events (*events_p, *n_p);
            *events_p = NULL;
            *n_p = 0;
            trove__coin__free_unpacked (*coin_p, NULL);
            *coin_p = NULL;
            s_read_end (self);
            return -1;
        }
        if (mdb_get (txn, self->dedup, &key, &val) || val.mv_size != 20)
            continue;
        uint8_t ekey [12];
        memcpy (ekey, (uint8_t *) val.mv_data + 8, 12);
        key = (MDB_val){12, ekey};
        if (mdb_get (txn, self->events, &key, &val))
            continue;
        Trove__EventRecord *rec = trove__event_record__unpack (NULL, val.mv_size, val.mv_data);
        if (rec)
            (*events_p) [(*n_p)++] = rec;
    }
    s_read_end (self);
    return 0;
}

int
trove_ledger_awards (trove_ledger_t *self, uint64_t from, size_t limit, Trove__Coin ***coins_p, size_t *n_p)
{
    *coins_p = NULL;
    *n_p = 0;
    size_t cap = 0;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open (txn, self->coins, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "cursor", rc);
    }
    uint8_t kbuf [8];
    trove_put_be64 (kbuf, from);
    MDB_val key = {8, kbuf}, val;
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && *n_p < limit) {
        Trove__Coin *coin = s_unpack_coin (&val);
        if (!coin || s_grow_coins (coins_p, *n_p, &cap)) {
            if (coin)
                trove__coin__free_unpacked (coin, NULL);
            rc = -1;
            break;
        }
        (*coins_p) [(*n_p)++] = coin;
        rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cur);
    s_read_end (self);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        trove_ledger_free_coins (*coins_p, *n_p);
        *coins_p = NULL;
        *n_p = 0;
        return -1;
    }
    return 0;
}

void
trove_ledger_free_coins (Trove__Coin **coins, size_t n)
{
    for (size_t i = 0; i < n; i++)
        trove__coin__free_unpacked (coins [i], NULL);
    free (coins);
}

void
trove_ledger_free_events (Trove__EventRecord **events, size_t n)
{
    for (size_t i = 0; i < n; i++)
        trove__event_record__free_unpacked (events [i], NULL);
    free (events);
}

int
trove_ledger_scan_events (trove_ledger_t *self, int64_t partition, trove_ledger_event_fn *fn, void *arg)
{
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open (txn, self->events, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "events cursor", rc);
    }
    uint8_t kbuf [12] = {0};
    if (partition >= 0)
        trove_put_be32 (kbuf, (uint32_t) partition);
    MDB_val key = {12, kbuf}, val;
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    int stop = 0;
    while (rc == 0 && !stop) {
        if (key.mv_size != 12 || (partition >= 0 && trove_get_be32 (key.mv_data) != (uint32_t) partition))
            break;
        Trove__EventRecord *rec = trove__event_record__unpack (NULL, val.mv_size, val.mv_data);
        if (!rec || !rec->event) {
            if (rec)
                trove__event_record__free_unpacked (rec, NULL);
            snprintf (self->error, sizeof self->error, "event record is corrupt");
            stop = -1;
            break;
        }
        stop = fn (arg, rec);
        trove__event_record__free_unpacked (rec, NULL);
        rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cur);
    s_read_end (self);
    if (stop < 0)
        return -1;
    if (rc && rc != MDB_NOTFOUND)
        return s_fail_rc (self, "events cursor", rc);
    return 0;
}

//  Each board score of the user (hunt, "all") and ("*", "all") against the
//  sums of the live coins. Returns the number that differ, or -1.
static int
s_audit_boards (trove_ledger_t *self, MDB_txn *txn, const char *user, zhashx_t *latest)
{
    trove_cost_t cost = {0};
    zhashx_t *sums = zhashx_new ();  //  hunt -> int64_t *
    if (!sums)
        return -1;
    zhashx_set_destructor (sums, (zhashx_destructor_fn *) zstr_free);
    int64_t all = 0;
    int differ = 0;
    for (Trove__Coin *c = zhashx_first (latest); c && differ >= 0; c = zhashx_next (latest)) {
        if (c->revoked)
            continue;
        int64_t *sum = zhashx_lookup (sums, c->hunt);
        if (!sum && (sum = calloc (1, sizeof *sum)))
            zhashx_insert (sums, c->hunt, sum);
        if (!sum)
            differ = -1;
        else
            *sum += c->value;
        all += c->value;
    }
    Trove__BoardEntry **entries = NULL;
    size_t n = 0;
    if (differ == 0 && trove_board_hunts (self->board, txn, user, &cost, &entries, &n))
        differ = -1;
    for (size_t i = 0; differ >= 0 && i < n; i++) {
        int64_t *sum = zhashx_lookup (sums, entries [i]->hunt);
        if ((sum ? *sum : 0) != entries [i]->score)
            differ++;
        if (sum)
            zhashx_delete (sums, entries [i]->hunt);
    }
    trove_board_entries_free (entries, n);
    //  Hunts with live coins and no board score (a zero sum needs none).
    for (int64_t *sum = zhashx_first (sums); sum && differ >= 0; sum = zhashx_next (sums))
        differ += *sum != 0;
    int64_t star = 0;
    if (differ >= 0 && trove_board_score (self->board, txn, user, "*", "all", &cost, &star, NULL))
        differ = -1;
    else if (differ >= 0 && star != all)
        differ++;
    zhashx_destroy (&sums);
    return differ;
}

int
trove_ledger_live_coins (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p)
{
    return trove_ledger_audit_user (self, user, coins_p, n_p, NULL);
}

int
trove_ledger_audit_user (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p,
                         trove_ledger_audit_t *audit)
{
    *coins_p = NULL;
    *n_p = 0;
    size_t cap = 0;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    zhashx_t *latest = zhashx_new ();
    if (latest)
        zhashx_set_destructor (latest, s_coin_item_free);
    int rc = latest ? s_scan_user (self, txn, user, latest) : -1;
    if (rc == 0 && audit) {
        memset (audit, 0, sizeof *audit);
        for (Trove__Coin *c = zhashx_first (latest); c; c = zhashx_next (latest))
            audit->live_sum += c->revoked ? 0 : c->value;
        uint8_t bkey [KEY_MAX];
        MDB_val key, val;
        int got = MDB_NOTFOUND;
        if (strlen (user) + 1 <= sizeof bkey) {
            key = (MDB_val){s_balance_key (user, bkey), bkey};
            got = mdb_get (txn, self->users, &key, &val);
        }
        if (got == 0 && val.mv_size == 8)
            memcpy (&audit->balance, val.mv_data, 8);
        else if (got != MDB_NOTFOUND)
            rc = s_fail_rc (self, "get balance", got);
        int differ = rc ? 0 : s_audit_boards (self, txn, user, latest);
        if (differ < 0)
            rc = s_fail_rc (self, "audit boards", ENOMEM);
        else
            audit->boards_differ = (uint32_t) differ;
    }
    s_read_end (self);
    //  The live ones move to the caller, the rest are freed here.
    if (latest)
        zhashx_set_destructor (latest, NULL);
    for (Trove__Coin *c = latest ? zhashx_first (latest) : NULL; c; c = zhashx_next (latest)) {
        bool keep = rc == 0 && !c->revoked;
        if (keep && s_grow_coins (coins_p, *n_p, &cap))
            keep = false, rc = -1;
        if (keep)
            (*coins_p) [(*n_p)++] = c;
        else
            trove__coin__free_unpacked (c, NULL);
    }
    zhashx_destroy (&latest);
    if (rc) {
        trove_ledger_free_coins (*coins_p, *n_p);
        *coins_p = NULL;
        *n_p = 0;
        return -1;
    }
    return 0;
}

int
trove_ledger_events_from (trove_ledger_t *self, uint32_t partition, uint64_t from, size_t limit,
                          Trove__EventRecord ***records_p, size_t *n_p, uint64_t *last_p)
{
    *records_p = NULL;
    *n_p = 0;
    *last_p = 0;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open (txn, self->events, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "events cursor", rc);
    }
    //  The partition's last pseq, in the same snapshot.
    uint8_t kbuf [12];
    trove_put_be32 (kbuf, partition + 1);
    trove_put_be64 (kbuf + 4, 0);
    MDB_val key = {12, kbuf}, val;
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get (cur, &key, &val, MDB_PREV) : mdb_cursor_get (cur, &key, &val, MDB_LAST);
    if (rc == 0 && key.mv_size == 12 && trove_get_be32 (key.mv_data) == partition)
        *last_p = trove_get_be64 ((uint8_t *) key.mv_data + 4);
    trove_put_be32 (kbuf, partition);
    trove_put_be64 (kbuf + 4, from);
    key = (MDB_val){12, kbuf};
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    size_t cap = 0;
    int bad = 0;
    while (rc == 0 && *n_p < limit && key.mv_size == 12 && trove_get_be32 (key.mv_data) == partition) {
        if (*n_p == cap) {
            size_t bigger = cap ? cap * 2 : 64;
            Trove__EventRecord **v = realloc (*records_p, bigger * sizeof *v);
            if (!v) {
                bad = -1;
                break;
            }
            *records_p = v;
            cap = bigger;
        }
        Trove__EventRecord *rec = trove__event_record__unpack (NULL, val.mv_size, val.mv_data);
        if (!rec) {
            snprintf (self->error, sizeof self->error, "event record is corrupt");
            bad = -1;
            break;
        }
        (*records_p) [(*n_p)++] = rec;
        rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cur);
    s_read_end (self);
    if (bad || (rc && rc != MDB_NOTFOUND)) {
        trove_ledger_free_events (*records_p, *n_p);
        *records_p = NULL;
        *n_p = 0;
        return bad ? -1 : s_fail_rc (self, "events cursor", rc);
    }
    return 0;
}
