/*  trove_ledger - a scorer shard's write-ahead log and ledger tables: open,
    close, recovery and what the other files share (trove_ledger_internal.h
    lists the files and their concerns; trove_ledger.h the tables).

    INVARIANTS (the numbers refer to these in the other files)

    1. Durable when: an event is accepted, and its coins exist, once the
       log's write of its batch returned (trove_ledger_commit: trove_wal,
       one fdatasync with sync). Nothing before: an aborted or failed batch leaves no
       trace in the log, and the in-memory state of the batch (dedup keys,
       pseq counters, states, marks, frames) is rolled back with it.
    2. The tables lag the log: they hold exactly the log records up to the
       apply mark (meta "applied", written in the same transaction as the
       records it covers), never part of a record and never a record out
       of order. Reads see the tables (what has been applied).
    3. Everything committed and not applied yet is visible to the batch in
       memory: its dedup keys and claims (pending), its rule states
       (states_pending), its user's records (users_records). An entry
       leaves memory only once the tables hold it (trove_ledger_absorb
       compares with the apply mark), and a batch takes its snapshot after
       the last absorb, so no check ever misses a committed record.
    4. The log keeps every record the tables may still lose: it is trimmed
       only up to `trimmable`, the apply mark of the transaction before the
       last one (with MDB_NOMETASYNC an OS crash may lose the tables' last
       transaction, never the one before).
    5. Recovery redoes: at open, the log records above the apply mark are
       read back (log_recover_record) into the same memory a commit builds (3),
       the counters (lseq, aseq, pseq, event count) move past them, and
       they are queued for the apply thread again. Applying a record twice
       is harmless (trove_ledger_apply.c, invariant A4), so a crash at any
       instant loses nothing committed and duplicates nothing. */
#include "trove_ledger_internal.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

//  --- shared helpers ------------------------------------------------------------

int
ledger_fail_rc (trove_ledger_t *self, const char *what, int rc)
{
    snprintf (self->error, sizeof self->error, "%s: %s", what, mdb_strerror (rc));
    self->full = rc == MDB_MAP_FULL || rc == ENOSPC;
    return -1;
}

void
ledger_records_free (ledger_record_t *head)
{
    while (head) {
        ledger_record_t *next = head->next;
        free (head->data);
        free (head);
        head = next;
    }
}

size_t
ledger_key_pair (const char *a, const char *b, uint8_t *out)
{
    size_t al = strlen (a), bl = strlen (b);
    if (al + 1 + bl > KEY_MAX)
        return 0;
    memcpy (out, a, al);
    out [al] = 0;
    memcpy (out + al + 1, b, bl);
    return al + 1 + bl;
}

//  32 hex chars -> 16 bytes. Returns 0 or -1.
int
ledger_coin_id_raw (const char *hex, uint8_t *out)
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
size_t
ledger_balance_key (const char *user, uint8_t *out)
{
    size_t ulen = strlen (user);
    memcpy (out, user, ulen);
    out [ulen] = 0;
    return ulen + 1;
}

int
ledger_snapshot_begin (trove_ledger_t *self, MDB_txn **txn_p)
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
        return ledger_fail_rc (self, "read", rc);
    }
    *txn_p = self->rtxn;
    return 0;
}

//  Readers must never hold a snapshot while the process waits: that would pin
//  old pages and make the file grow.
void
ledger_snapshot_end (trove_ledger_t *self)
{
    if (self->rtxn && !self->batch_reading)
        mdb_txn_reset (self->rtxn);
}

int
ledger_snapshot_cursor (trove_ledger_t *self, MDB_dbi dbi, const char *what, MDB_txn **txn_p,
                        MDB_cursor **cur_p)
{
    if (ledger_snapshot_begin (self, txn_p))
        return -1;
    int rc = mdb_cursor_open (*txn_p, dbi, cur_p);
    if (rc) {
        ledger_snapshot_end (self);
        return ledger_fail_rc (self, what, rc);
    }
    return 0;
}

//  Unpack a stored coin (a packed Msg{award}) into a standalone Coin.
Trove__Coin *
ledger_coin_unpack (const MDB_val *val)
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
int
ledger_coin_at (trove_ledger_t *self, MDB_txn *txn, const void *aseq_be, Trove__Coin **coin_p)
{
    MDB_val key = {8, (void *) aseq_be}, val;
    int rc = mdb_get (txn, self->coins, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc)
        return ledger_fail_rc (self, "get coin", rc);
    *coin_p = ledger_coin_unpack (&val);
    if (!*coin_p) {
        snprintf (self->error, sizeof self->error, "coin record is corrupt");
        return -1;
    }
    return 0;
}

void
ledger_coin_item_free (void **item)
{
    if (*item) {
        trove__coin__free_unpacked (*item, NULL);
        *item = NULL;
    }
}

//  The partition's events end just before the first key of partition p + 1.
int
ledger_pseq_last (MDB_cursor *cur, uint32_t p, uint64_t *last_p)
{
    uint8_t kbuf [12];
    trove_put_be32 (kbuf, p + 1);
    trove_put_be64 (kbuf + 4, 0);
    MDB_val key = {12, kbuf}, val;
    int rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get (cur, &key, &val, MDB_PREV) : mdb_cursor_get (cur, &key, &val, MDB_LAST);
    *last_p = 0;
    if (rc == 0 && key.mv_size == 12 && trove_get_be32 (key.mv_data) == p)
        *last_p = trove_get_be64 ((uint8_t *) key.mv_data + 4);
    return rc;
}

//  --- open, recovery, close ------------------------------------------------------

static int
env_open (MDB_env **env_p, const char *dir, size_t map_size, unsigned flags, int maxdbs, char *err,
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
    //  LMDB never syncs the directory: without this a power cut soon after
    //  the first start could take data.mdb's name (and the tables) away.
    if (!(flags & (MDB_NOSYNC | MDB_RDONLY)) && trove_fsync_dir (dir)) {
        snprintf (err, size, "cannot sync the directory %s: %s", dir, strerror (errno));
        return -1;
    }
    //  A killed predecessor leaves its reader slot behind; clear it now.
    int dead = 0;
    mdb_reader_check (*env_p, &dead);
    if (dead)
        trove_log ('I', "cleared %d stale LMDB reader slot(s) in %s", dead, dir);
    return 0;
}

//  Recovery, one record of the log above the apply mark: into the memory a
//  commit builds (invariant 3), queued for the apply thread again.
typedef struct {
    trove_ledger_t *self;
    ledger_record_t *head, *tail;
    size_t n;
    char *err;
    size_t size;
} log_recovery_t;

static int
log_recover_record (void *arg, uint64_t lseq, const void *data, size_t size)
{
    log_recovery_t *rv = arg;
    trove_ledger_t *self = rv->self;
    Trove__LogRecord *rec = trove__log_record__unpack (NULL, size, data);
    ledger_record_t *r = calloc (1, sizeof *r);
    void *copy = malloc (size ? size : 1);
    if (!rec || (!rec->claim && (!rec->record || !rec->record->event)) || !r || !copy) {
        if (rec)
            trove__log_record__free_unpacked (rec, NULL);
        free (r);
        free (copy);
        snprintf (rv->err, rv->size, "log record %llu is unreadable", (unsigned long long) lseq);
        return -1;
    }
    memcpy (copy, data, size);
    *r = (ledger_record_t){lseq, copy, size, NULL};
    if (rv->tail)
        rv->tail->next = r;
    else
        rv->head = r;
    rv->tail = r;
    rv->n++;
    if (rec->claim)
        ledger_claim_pending_add (self, rec->claim->source, rec->claim->id, rec->claim->content.data, lseq);
    if (!rec->record) {
        self->lseq = lseq;  //  a claim only
        trove__log_record__free_unpacked (rec, NULL);
        return 0;
    }
    const Trove__EventRecord *er = rec->record;
    ledger_pending_add (self, er->event->source, er->event->id, rec->req_id, lseq, false);
    if (ledger_user_mark (self->users_staged, er->event->user, lseq, data, size))
        self->marks_lost = true;
    if (rec->undone && rec->undone->source && rec->undone->id)
        ledger_pending_add (self, rec->undone->source, rec->undone->id, ledger_user_tag (er->event->user),
                            lseq, true);
    for (size_t i = 0; i < rec->n_states; i++)
        if (ledger_state_set (self->states_pending, er->event->user, rec->states [i]->hunt, lseq,
                              rec->states [i]->data.data, rec->states [i]->data.len)) {
            trove__log_record__free_unpacked (rec, NULL);
            snprintf (rv->err, rv->size, "out of memory");
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
    return 0;
}

//  Ledgers written before the log was trove_wal kept it in an LMDB
//  environment (DIR/log). Its records above the apply mark move to the new
//  log (committed there first), then the old environment is removed. A
//  crash in between leaves both: the new log then already holds them.
static int
log_migrate (trove_ledger_t *self, const char *olddir, uint64_t applied, log_recovery_t *rv, char *err,
             size_t size)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/data.mdb", olddir);
    struct stat st;
    if (stat (path, &st))
        return 0;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *cursor = NULL;
    int rc;
    if ((rc = mdb_env_create (&env)) || (rc = mdb_env_set_maxdbs (env, 2))
        || (rc = mdb_env_set_mapsize (env, (size_t) st.st_size + (1 << 20)))
        || (rc = mdb_env_open (env, olddir, MDB_RDONLY | MDB_NOLOCK, 0600))
        || (rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_dbi_open (txn, "log", 0, &dbi))
        || (rc = mdb_cursor_open (txn, dbi, &cursor))) {
        snprintf (err, size, "cannot read the old log in %.300s: %s", olddir, mdb_strerror (rc));
        goto done;
    }
    MDB_val key, val;
    size_t n = 0;
    bool moved = trove_wal_last (self->wal) > applied;  //  moved before a crash
    for (rc = mdb_cursor_get (cursor, &key, &val, MDB_FIRST); rc == 0 && !moved;
         rc = mdb_cursor_get (cursor, &key, &val, MDB_NEXT)) {
        uint64_t lseq = key.mv_size == 8 ? trove_get_be64 (key.mv_data) : 0;
        if (lseq <= applied)
            continue;
        if (lseq != trove_wal_last (self->wal) + 1 + n) {
            snprintf (err, size, "old log in %.300s: record %llu follows %llu", olddir,
                      (unsigned long long) lseq, (unsigned long long) (trove_wal_last (self->wal) + n));
            rc = -1;
            goto done;
        }
        if (trove_wal_add (self->wal, lseq, val.mv_data, val.mv_size)) {
            snprintf (err, size, "%s", trove_wal_error (self->wal));
            rc = -1;
            goto done;
        }
        if (log_recover_record (rv, lseq, val.mv_data, val.mv_size)) {
            rc = -1;
            goto done;
        }
        n++;
    }
    if (rc != MDB_NOTFOUND && !moved) {
        snprintf (err, size, "cannot read the old log in %.300s: %s", olddir, mdb_strerror (rc));
        goto done;
    }
    if ((rc = trove_wal_commit (self->wal))) {
        snprintf (err, size, "cannot move the old log: %s", trove_wal_error (self->wal));
        goto done;
    }
    mdb_cursor_close (cursor);
    cursor = NULL;
    mdb_txn_abort (txn);
    txn = NULL;
    mdb_env_close (env);
    env = NULL;
    trove_log ('I', "log: moved %zu record(s) from the LMDB log in %s to the new log", n, olddir);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", olddir);
    unlink (path);
    rmdir (olddir);
done:
    trove_wal_discard (self->wal);
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    if (env)
        mdb_env_close (env);
    return rc ? -1 : 0;
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
    zhashx_set_destructor (self->states_pending, ledger_state_destroy);
    zhashx_set_destructor (self->states_staged, ledger_state_destroy);
    zlistx_set_destructor (self->pending_order, (zlistx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->users_pending, (zhashx_destructor_fn *) zstr_free);
    zlistx_set_destructor (self->users_order, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_destructor (self->users_staged, (zlistx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->users_records, (zhashx_destructor_fn *) zlistx_destroy);
    //  The tables may lose their last transaction in an OS crash
    //  (NOMETASYNC: one fsync per commit instead of two, never corrupt): the
    //  log is trimmed only up to the transaction before, so it can redo it.
    if (env_open (&self->env, dir, map_size, sync ? MDB_NOMETASYNC : MDB_NOSYNC, 16, err, sizeof err))
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
    if (ledger_apply_migrations (self, txn, dir, err, sizeof err))
        goto fail;
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
    //  The apply mark just read may be in the page cache only (a killed
    //  predecessor's last commit, NOMETASYNC): durable before the log trims
    //  anything on its word (invariant 4).
    if (sync && (rc = mdb_env_sync (self->env, 1))) {
        snprintf (err, sizeof err, "cannot sync %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    uint64_t applied = atomic_load (&self->applied);
    self->log_max = map_size;
    char logdir [4096], waldir [4096];
    snprintf (logdir, sizeof logdir, "%s/log", dir);
    snprintf (waldir, sizeof waldir, "%s/wal", dir);
    log_recovery_t rv = {self, NULL, NULL, 0, err, sizeof err};
    char *werr = NULL;
    self->wal = trove_wal_new (waldir, sync, LOG_SEGMENT < map_size / 4 ? LOG_SEGMENT : map_size / 4, applied,
                               log_recover_record, &rv, &werr);
    if (!self->wal) {
        if (!err [0])
            snprintf (err, sizeof err, "cannot open the log in %.400s: %s", waldir,
                      werr ? werr : "out of memory");
        free (werr);
        ledger_records_free (rv.head);
        goto fail;
    }
    if (log_migrate (self, logdir, applied, &rv, err, sizeof err)) {
        ledger_records_free (rv.head);
        goto fail;
    }
    if (self->lseq < trove_wal_last (self->wal))
        self->lseq = trove_wal_last (self->wal);
    if (self->lseq < applied)
        self->lseq = applied;
    self->staged_keys = 0;
    ledger_users_commit (self);
    if (rv.n)
        trove_log ('I', "log: %zu committed event(s) to apply", rv.n);
    ledger_apply_enqueue (self, rv.head, rv.tail, rv.n);
    self->lseq_pending = self->lseq;
    self->aseq_pending = self->aseq;
    self->nevents_pending = self->nevents;
    if (pthread_create (&self->thread, NULL, ledger_apply_thread, self)) {
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
    ledger_records_free (self->queue_head);
    if (self->rtxn)
        mdb_txn_abort (self->rtxn);
    if (self->env)
        mdb_env_close (self->env);
    trove_wal_destroy (&self->wal);
    ledger_frames_clear (self);
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

//  --- apply progress (the apply mark, invariants 2-3) ----------------------------------

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
    size_t removable = zlistx_size (self->pending_order) - (self->in_batch ? self->staged_keys : 0);
    while (removable-- > 0) {
        char *key = zlistx_first (self->pending_order);
        ledger_pending_t *p = key ? zhashx_lookup (self->pending, key) : NULL;
        if (p && p->lseq > applied)
            break;
        zhashx_delete (self->pending, key);
        zlistx_delete (self->pending_order, zlistx_cursor (self->pending_order));
    }
    //  Users whose records the tables now hold (a newer record keeps its entry).
    ledger_mark_t *m;
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
    for (ledger_state_t *st = zhashx_first (self->states_pending); st;
         st = zhashx_next (self->states_pending))
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
    return ledger_wait_applied_to (self, self->lseq, timeout_ms);
}

//  Wait until the tables hold every record up to lseq. 0, or -1 after
//  timeout_ms or when the apply thread fails.
int
ledger_wait_applied_to (trove_ledger_t *self, uint64_t lseq, int timeout_ms)
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

//  --- state and counters ------------------------------------------------------------

void
trove_ledger_sizes (trove_ledger_t *self, uint64_t *tables_p, uint64_t *log_p)
{
    MDB_envinfo info;
    MDB_stat stat;
    *tables_p = *log_p = 0;
    if (mdb_env_info (self->env, &info) == 0 && mdb_env_stat (self->env, &stat) == 0)
        *tables_p = ((uint64_t) info.me_last_pgno + 1) * stat.ms_psize;
    trove_wal_bytes (self->wal, log_p, NULL);
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

int
trove_ledger_identity (trove_ledger_t *self, const char *identity, char **err_p)
{
    MDB_txn *txn;
    MDB_val key = {8, "identity"}, val;
    const char *dir = "?";
    mdb_env_get_path (self->env, &dir);
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_get (txn, self->meta, &key, &val);
        if (rc == 0) {
            bool same = val.mv_size == strlen (identity) && memcmp (val.mv_data, identity, val.mv_size) == 0;
            if (!same && err_p)
                *err_p = trove_strdupf ("the ledger in %s belongs to %.*s, not to %s: is the config's data "
                                        "directory right? (refusing to start)",
                                        dir, (int) val.mv_size, (const char *) val.mv_data, identity);
            mdb_txn_abort (txn);
            return same ? 0 : -1;
        }
        //  First start (or a ledger from before identities): bind it.
        val = (MDB_val){strlen (identity), (void *) identity};
        if (rc == MDB_NOTFOUND && (rc = mdb_put (txn, self->meta, &key, &val, 0)) == 0)
            rc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
    }
    if (rc && err_p)
        *err_p = trove_strdupf ("cannot record the ledger's identity in %s: %s", dir, mdb_strerror (rc));
    return rc ? -1 : 0;
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
