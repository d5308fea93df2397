/*  trove_ledger_log - the batch: trove_ledger_begin, _claim, _apply,
    _commit, _abort; the dedup and claim checks, the per-partition pseq
    counters, the award frames, and the rules engine's state store.

    INVARIANTS (with trove_ledger.c's 1-5)

    L1. Log sequence numbers are dense and increasing: a batch's records
        take lseq + 1, lseq + 2, ... and are appended with MDB_APPEND. The
        batch's counters (lseq, aseq, events) advance in *_pending copies
        and become the real ones only when the commit succeeded.
    L2. pseq is dense per partition: the next event of partition p gets the
        partition's last stored (or committed) pseq + 1; a rolled-back
        batch restores each counter it moved (undo list). A reconciler's
        request gets no pseq (0) and is not an event of the partition.
    L3. Exactly-once per (source, id): apply consults the batch and the
        unapplied log (pending) first, then the batch's snapshot of the
        tables (invariant 3 makes the two cover everything committed). A
        retried submission (same req_id) is ACCEPTED again, another one is
        DUPLICATE; an undo that arrives before its target leaves a marker
        so the target is stored but never scored.
    L4. A record is self-contained: the event, its coin entries (spliced
        from the award frames, the same bytes the subscribers get), the
        rule states it wrote and its req_id. The tables are rebuilt from
        records alone (trove_ledger_apply.c).
    L5. A claim (source, id) -> content hash never changes once stored: the
        first content wins, other content is rejected id_conflict. */
#include "trove_ledger_internal.h"
#include "trove_mutant.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

//  --- the batch's memory: frames, states, pending keys, user marks ------------------

void
ledger_frames_clear (trove_ledger_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        free (self->frames [i]);
    self->nframes = 0;
    self->nready = 0;
}

static void
log_dedup_key (const char *source, const char *id, char *out, size_t size)
{
    snprintf (out, size, "%s\x1f%s", source, id);
}

void
ledger_state_destroy (void **item)
{
    ledger_state_t *st = *item;
    if (st) {
        free (st->hunt);
        free (st->data);
        free (st);
        *item = NULL;
    }
}

//  Record a state in a map (copying the data).
int
ledger_state_set (zhashx_t *map, const char *user, const char *hunt, uint64_t lseq, const void *data,
                  size_t size)
{
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    ledger_state_t *st = calloc (1, sizeof *st);
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
log_states_staged_clear (trove_ledger_t *self, bool keep)
{
    for (ledger_state_t *st = zhashx_first (self->states_staged); st && keep;
         st = zhashx_next (self->states_staged)) {
        //  Move the contents; the emptied shell is freed with the rest.
        ledger_state_t *moved = malloc (sizeof *moved);
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
log_record_clear (trove_ledger_t *self)
{
    self->ncoins = 0;  //  the coins themselves are the frames from rec_first_frame
    self->rec_first_frame = self->nframes;
    self->nstates = 0;
}

void
ledger_pending_add (trove_ledger_t *self, const char *source, const char *id, uint64_t req_id, uint64_t lseq,
                    bool undone)
{
    char key [KEY_MAX];
    log_dedup_key (source, id, key, sizeof key);
    ledger_pending_t *p = zhashx_lookup (self->pending, key);
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
        *p = (ledger_pending_t){.req_id = req_id, .lseq = lseq, .undone = undone};
        zhashx_insert (self->pending, key, p);
    }
    char *copy = strdup (key);
    if (copy)
        zlistx_add_end (self->pending_order, copy);
    self->staged_keys++;
}

//  A claim committed (or staged) and not applied yet: the same list as the
//  dedup entries, so staging, abort and pruning treat both alike.
void
ledger_claim_pending_add (trove_ledger_t *self, const char *source, const char *id, const uint8_t *content,
                          uint64_t lseq)
{
    char key [KEY_MAX + 2];
    snprintf (key, sizeof key, "\x01%s\x1f%s", source, id);
    ledger_pending_t *p = zhashx_lookup (self->pending, key);
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
int
ledger_user_mark (zlistx_t *list, const char *user, uint64_t lseq, const void *data, size_t size)
{
    size_t len = strlen (user);
    ledger_mark_t *m = malloc (sizeof *m + len + 1 + size);
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
void
ledger_users_commit (trove_ledger_t *self)
{
    ledger_mark_t *m;
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

//  --- the batch: begin, abort, commit ------------------------------------------------

//  The log's segments holding only records the tables hold durably may be
//  reused: only up to `trimmable` (invariant 4).
static void
log_trim (trove_ledger_t *self)
{
    trove_wal_trim (self->wal, atomic_load (&self->trimmable));
}

int
trove_ledger_begin (trove_ledger_t *self)
{
    assert (!self->in_batch);
    ledger_frames_clear (self);
    self->nundo = 0;
    self->staged_keys = 0;
    if (atomic_load (&self->apply_failing)) {
        pthread_mutex_lock (&self->mutex);
        snprintf (self->error, sizeof self->error, "%s", self->apply_error);
        self->full = self->apply_full;
        pthread_mutex_unlock (&self->mutex);
        return -1;
    }
    //  The map size is the shard's storage budget: the log holds no more
    //  than that of records the tables do not hold yet (a full map or a
    //  slow disk behind the tables stops new batches, not just queries).
    uint64_t live = 0;
    trove_wal_bytes (self->wal, NULL, &live);
    if (live >= self->log_max) {
        snprintf (
            self->error, sizeof self->error,
            "the log holds %llu MiB the tables have not applied, as much as the map (trove/map_size_mb)",
            (unsigned long long) (live >> 20));
        self->full = true;
        return -1;
    }
    //  One snapshot of the tables for the whole batch. It is taken after the
    //  last absorb, so every dedup entry dropped from `pending` is in it.
    MDB_txn *rtxn;
    if (ledger_snapshot_begin (self, &rtxn))
        return -1;
    self->in_batch = true;
    self->batch_reading = true;
    log_trim (self);
    return 0;
}

void
ledger_batch_end_reading (trove_ledger_t *self)
{
    self->batch_reading = false;
    ledger_snapshot_end (self);
}

static void
log_batch_rollback (trove_ledger_t *self)
{
    ledger_batch_end_reading (self);
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
    ledger_records_free (self->batch_head);
    self->batch_head = self->batch_tail = NULL;
    ledger_frames_clear (self);
    log_states_staged_clear (self, false);
}

void
trove_ledger_abort (trove_ledger_t *self)
{
    if (!self->in_batch)
        return;
    self->in_batch = false;
    trove_wal_discard (self->wal);
    log_batch_rollback (self);
}

int
trove_ledger_commit (trove_ledger_t *self)
{
    assert (self->in_batch);
    self->in_batch = false;
    //  The batch's records in the log, one write and one fdatasync.
    int rc = 0;
    for (ledger_record_t *r = self->batch_head; r && rc == 0; r = r->next)
        rc = trove_wal_add (self->wal, r->lseq, r->data, r->size);
    if (rc == 0)
        rc = trove_wal_commit (self->wal);
    if (rc) {
        int saved = errno;
        snprintf (self->error, sizeof self->error, "commit: %s", trove_wal_error (self->wal));
        self->full = saved == ENOSPC;
        trove_wal_discard (self->wal);
        log_batch_rollback (self);
        return -1;
    }
    ledger_batch_end_reading (self);
    //  Durable: the events are accepted. Hand the records to the apply thread.
    size_t n = (size_t) (self->lseq_pending - self->lseq);
    self->lseq = self->lseq_pending;
    self->aseq = self->aseq_pending;
    self->nevents = self->nevents_pending;
    self->nready = self->nframes;
    self->staged_keys = 0;
    //  The batch's states are now committed: pending until applied.
    log_states_staged_clear (self, true);
    ledger_users_commit (self);
    ledger_apply_enqueue (self, self->batch_head, self->batch_tail, n);
    self->batch_head = self->batch_tail = NULL;
    self->error [0] = 0;
    self->full = false;
    return 0;
}

//  --- award frames and pseq counters ----------------------------------------------

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

//  Next pseq of a partition within the open batch.
static int
log_pseq_next (trove_ledger_t *self, uint32_t p, uint64_t *pseq_p)
{
    if (!self->pseq_loaded [p]) {
        //  Not seen since start and not in the unapplied log: the tables
        //  hold its last pseq.
        MDB_txn *txn;
        MDB_cursor *cursor;
        if (ledger_snapshot_cursor (self, self->events, "events cursor", &txn, &cursor))
            return -1;
        uint64_t last;
        int rc = ledger_pseq_last (cursor, p, &last);
        mdb_cursor_close (cursor);
        ledger_snapshot_end (self);
        if (rc && rc != MDB_NOTFOUND)
            return ledger_fail_rc (self, "events cursor", rc);
        self->pseq [p] = last;
        self->pseq_loaded [p] = 1;
    }
    if (self->nundo == self->undo_cap) {
        size_t cap = self->undo_cap ? self->undo_cap * 2 : 256;
        ledger_undo_t *bigger = realloc (self->undo, cap * sizeof *bigger);
        if (!bigger) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->undo = bigger;
        self->undo_cap = cap;
    }
    self->undo [self->nundo++] = (ledger_undo_t){p, self->pseq [p]};
    *pseq_p = ++self->pseq [p];
    return 0;
}

static int
log_frame_push (trove_ledger_t *self, void *frame, size_t size, const Trove__Coin *coin)
{
    if (self->nframes == self->frames_cap) {
        size_t cap = self->frames_cap ? self->frames_cap * 2 : 256;
        void **frames = realloc (self->frames, cap * sizeof *frames);
        if (frames)
            self->frames = frames;
        size_t *sizes = frames ? realloc (self->sizes, cap * sizeof *sizes) : NULL;
        if (sizes)
            self->sizes = sizes;
        ledger_frame_meta_t *meta = sizes ? realloc (self->frame_meta, cap * sizeof *meta) : NULL;
        if (!meta) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->frame_meta = meta;
        self->frames_cap = cap;
    }
    self->frames [self->nframes] = frame;
    ledger_frame_meta_t *m = &self->frame_meta [self->nframes];
    snprintf (m->hunt, sizeof m->hunt, "%s", coin->hunt);
    snprintf (m->rule, sizeof m->rule, "%s", coin->rule);
    snprintf (m->id, sizeof m->id, "%s", coin->id);
    m->revoked = coin->revoked;
    self->sizes [self->nframes++] = size;
    return 0;
}

//  One coin change from the engine (or an undo): it joins the event's log
//  record and the batch's award frames with the next aseq.
int
ledger_log_change (void *arg, const trove_change_t *ch)
{
    trove_ledger_t *self = arg;
    Trove__Coin coin = trove_change_coin_view (ch);
    coin.minted_ms = trove_now_ms ();
    coin.shard = self->shard;
    coin.aseq = self->aseq_pending + 1;
    size_t len = trove__coin__get_packed_size (&coin);
    uint8_t *frame = malloc (1 + 10 + len);
    if (!frame) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    frame [0] = TAG_MSG_AWARD;
    size_t at = 1;
    for (size_t v = len;; v >>= 7) {
        frame [at++] = (uint8_t) ((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    trove__coin__pack (&coin, frame + at);
    if (log_frame_push (self, frame, at + len, &coin)) {
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
log_seen (trove_ledger_t *self, const char *source, const char *id, uint64_t *req_id_p)
{
    char key [KEY_MAX];
    log_dedup_key (source, id, key, sizeof key);
    ledger_pending_t *p = zhashx_lookup (self->pending, key);
    if (p) {
        *req_id_p = p->req_id;
        return p->undone ? 2 : 1;
    }
    uint8_t dkey [KEY_MAX];
    size_t dlen = ledger_key_pair (source, id, dkey);
    if (!dlen)
        return 0;  //  cannot be stored, so never was (validation bounds real events)
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    MDB_val k = {dlen, dkey}, val;
    int rc = mdb_get (txn, self->dedup, &k, &val);
    bool marker = false;
    if (rc == 0) {
        *req_id_p = val.mv_size >= 8 ? trove_get_be64 (val.mv_data) : 0;
        marker = val.mv_size >= 12 && trove_get_be32 ((uint8_t *) val.mv_data + 8) == MARKER_PARTITION;
    }
    ledger_snapshot_end (self);
    if (rc == 0)
        return marker ? 2 : 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    return ledger_fail_rc (self, "get dedup", rc);
}

//  --- the engine's state store: the open batch, then the unapplied log, then
//  the tables ---------------------------------------------------------------

int
ledger_store_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p)
{
    trove_ledger_t *self = arg;
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    ledger_state_t *st = zhashx_lookup (self->states_staged, key);
    if (!st)
        st = zhashx_lookup (self->states_pending, key);
    if (st) {
        *data_p = st->data;
        *size_p = st->size;
        return st->size ? 0 : 1;
    }
    uint8_t skey [KEY_MAX];
    size_t sl = ledger_key_pair (user, hunt, skey);
    if (!sl)
        return -1;
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    MDB_val k = {sl, skey}, val;
    int rc = mdb_get (txn, self->states, &k, &val);
    //  The batch holds its snapshot, so the data stays valid while scoring.
    if (rc == 0) {
        *data_p = val.mv_data;
        *size_p = val.mv_size;
    }
    ledger_snapshot_end (self);
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return 1;
    return ledger_fail_rc (self, "get state", rc);
}

int
ledger_store_put (void *arg, const char *user, const char *hunt, const void *data, size_t size)
{
    trove_ledger_t *self = arg;
    if (ledger_state_set (self->states_staged, user, hunt, self->lseq_pending + 1, data, size)) {
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
    //  TEST-ONLY MUTANT (trove_mutant.h): the state stays in memory for this
    //  batch but is not written with it, so it is gone once the batch is applied.
    if (TROVE_MUTANT (state_not_saved))
        return 0;
    //  The record borrows the staged copy (packed before the next put).
    char key [KEY_MAX];
    snprintf (key, sizeof key, "%s\x1f%s", user, hunt);
    ledger_state_t *st = zhashx_lookup (self->states_staged, key);
    Trove__StateEntry *e = &self->rec_states [self->nstates++];
    trove__state_entry__init (e);
    e->hunt = st->hunt;
    e->data.data = st->data;
    e->data.len = st->size;
    return 0;
}

//  --- the cluster-wide identity of events, and the events ------------------------

//  A record staged in the log joins the batch's list (the apply thread
//  gets the list at commit).
static void
log_batch_push (trove_ledger_t *self, ledger_record_t *r)
{
    if (self->batch_tail)
        self->batch_tail->next = r;
    else
        self->batch_head = r;
    self->batch_tail = r;
}

int
trove_ledger_claim (trove_ledger_t *self, const Trove__Event *ev, Trove__Status *status_p, char *why,
                    size_t why_size)
{
    assert (self->in_batch);
    uint8_t content [TROVE_EVENT_CONTENT_SIZE];
    trove_event_content_hash (ev, content);
    char key [KEY_MAX + 2];
    snprintf (key, sizeof key, "\x01%s\x1f%s", ev->source, ev->id);
    const uint8_t *held = NULL;
    ledger_pending_t *p = zhashx_lookup (self->pending, key);
    MDB_val val;
    MDB_txn *txn = NULL;
    if (p && p->claim)
        held = p->content;
    else {
        uint8_t dkey [KEY_MAX];
        size_t dlen = ledger_key_pair (ev->source, ev->id, dkey);
        if (!dlen)
            return -1;  //  validation bounds these
        if (ledger_snapshot_begin (self, &txn))
            return -1;
        MDB_val k = {dlen, dkey};
        int rc = mdb_get (txn, self->claims, &k, &val);
        if (rc == 0 && val.mv_size == TROVE_EVENT_CONTENT_SIZE)
            held = val.mv_data;
        else if (rc && rc != MDB_NOTFOUND) {
            ledger_snapshot_end (self);
            return ledger_fail_rc (self, "get claim", rc);
        }
    }
    if (held) {
        bool same = memcmp (held, content, TROVE_EVENT_CONTENT_SIZE) == 0;
        if (txn)
            ledger_snapshot_end (self);
        *status_p = same ? TROVE__STATUS__ACCEPTED : TROVE__STATUS__REJECTED;
        if (!same)
            snprintf (why, why_size,
                      "source '%s' already sent an event with id '%s' that says something else "
                      "(another user, type, ts or attributes); ids are unique per source",
                      ev->source, ev->id);
        return 0;
    }
    if (txn)
        ledger_snapshot_end (self);
    //  New: a record of its own, committed with the batch.
    Trove__Claim claim = TROVE__CLAIM__INIT;
    claim.source = ev->source;
    claim.id = ev->id;
    claim.content.data = content;
    claim.content.len = sizeof content;
    Trove__LogRecord rec = TROVE__LOG_RECORD__INIT;
    rec.claim = &claim;
    ledger_record_t *r = calloc (1, sizeof *r);
    if (!r) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    r->lseq = self->lseq_pending + 1;
    r->size = trove__log_record__get_packed_size (&rec);
    r->data = malloc (r->size ? r->size : 1);
    if (!r->data) {
        free (r);
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    trove__log_record__pack (&rec, r->data);
    log_batch_push (self, r);
    self->lseq_pending++;
    ledger_claim_pending_add (self, ev->source, ev->id, content, self->lseq_pending);
    *status_p = TROVE__STATUS__ACCEPTED;
    return 0;
}

int
trove_ledger_apply (trove_ledger_t *self, const Trove__Event *ev, uint32_t partition, uint64_t req_id,
                    int64_t accepted_us, const trove_rules_t *rules, Trove__Status *status_p)
{
    assert (self->in_batch);
    assert (partition < MAX_PARTITIONS);
    assert (strlen (ev->source) + 1 + strlen (ev->id) < KEY_MAX);  //  validation bounds these
    uint64_t first;
    int seen = log_seen (self, ev->source, ev->id, &first);
    if (seen < 0)
        return -1;
    //  TEST-ONLY MUTANT (trove_mutant.h): an event sent again by another
    //  submission is applied again (tests/integration/test_mutants.sh).
    if (TROVE_MUTANT (dedup_skipped) && seen == 1 && first != req_id)
        seen = 0;
    if (seen == 1) {
        //  The same submission retried (its answer was lost) is still "accepted".
        *status_p = first == req_id && req_id != 0 ? TROVE__STATUS__ACCEPTED : TROVE__STATUS__DUPLICATE;
        return 0;
    }
    //  Named by an undo that came first: never scored, if the undo was its
    //  user's (seen: the marker's user tag, 0 for any user).
    bool skipped = seen == 2 && (first == 0 || first == ledger_user_tag (ev->user));
    const char *tsource = NULL, *tid = NULL;
    bool undo = trove_engine_undo_target (ev, &tsource, &tid);
    int target_seen = 0;
    if (undo) {
        uint64_t ignored;
        target_seen = log_seen (self, tsource, tid, &ignored);
        if (target_seen < 0)
            return -1;
    }
    //  A reconciler's re-derive request is kept (dedup, the log) but is not
    //  an event of the user's log: no pseq, not in `events`, not pulled.
    bool request =
        strcmp (ev->source, TROVE_RECONCILER_SOURCE) == 0 && strcmp (ev->type, TROVE_RECONCILE_TYPE) == 0;
    ledger_record_t *r = calloc (1, sizeof *r);
    if (!r) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    log_record_clear (self);
    self->scoring_accepted_us = accepted_us;
    int rc = -1;
    int scored = 0;
    trove_store_t store = {ledger_store_get, ledger_store_put, self};
    if (request) {
        const char *run = "";
        for (size_t i = 0; i < ev->n_attrs; i++)
            if (strcmp (ev->attrs [i]->key, "run") == 0 && ev->attrs [i]->value_case == TROVE__ATTR__VALUE_S)
                run = ev->attrs [i]->s;
        scored = ledger_derive_user (self, ev->user, NULL, rules, 0, trove_strerror (TROVE_REASON_RECONCILED),
                                     run);
    }
    else if (undo) {
        //  Wherever the target went (a buffer, a checkpoint, a stateless
        //  coin), event-time order without it is the answer. An undo that
        //  comes first leaves a marker instead (below).
        if (target_seen == 1)
            scored = ledger_derive_user (self, ev->user, ev, rules, self->history_max,
                                         trove_strerror (TROVE_REASON_UNDO), NULL);
    }
    else if (!skipped) {
        scored = trove_engine_score (rules, ev, accepted_us, &store, ledger_log_change, self);
        if (scored == 1)  //  before what the engine has folded: placed exactly by a re-derive
            scored = ledger_derive_user (self, ev->user, ev, rules, self->history_max,
                                         trove_strerror (TROVE_REASON_RESCORED), NULL);
    }
    if (scored < 0) {
        if (!self->error [0])
            snprintf (self->error, sizeof self->error, "rules engine: out of memory or unreadable state");
        goto done;
    }
    if (scored == 1) {
        //  The user's history is too long to re-read for this event: refused
        //  before anything was written (the engine changed nothing).
        self->reject_reason = trove_strerror (TROVE_E_HISTORY_LIMIT);
        *status_p = TROVE__STATUS__REJECTED;
        rc = 0;
        goto done;
    }
    uint64_t pseq = 0;
    if (!request && log_pseq_next (self, partition, &pseq))
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
    r->data = malloc (r->size ? r->size : 1);
    if (!r->data) {
        snprintf (self->error, sizeof self->error, "out of memory");
        goto done;
    }
    trove__log_record__pack (&rec, r->data);
    //  Then the coins as field 3, spliced from their award frames.
    uint8_t *out = (uint8_t *) r->data + base;
    for (size_t i = 0; i < self->ncoins; i++) {
        size_t f = self->rec_first_frame + i;
        memcpy (out, self->frames [f], self->sizes [f]);
        out [0] = TAG_LOG_COINS;
        out += self->sizes [f];
    }
    log_batch_push (self, r);
    r = NULL;
    self->lseq_pending++;
    self->nevents_pending += !request;
    ledger_pending_add (self, ev->source, ev->id, req_id, self->lseq_pending, false);
    if (ledger_user_mark (self->users_staged, ev->user, self->lseq_pending, self->batch_tail->data,
                          self->batch_tail->size))
        self->marks_lost = true;
    if (undo && target_seen == 0)
        ledger_pending_add (self, tsource, tid, ledger_user_tag (ev->user), self->lseq_pending, true);
    *status_p = TROVE__STATUS__ACCEPTED;
    rc = 0;
done:
    log_record_clear (self);
    free (r);
    return rc;
}
