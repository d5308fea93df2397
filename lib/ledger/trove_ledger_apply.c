/*  trove_ledger_apply - the apply thread: committed log records -> the
    ledger tables, in large transactions; and the tables' one-time
    migrations.

    INVARIANTS (the tables keep these; tests/unit/test_trove_ledger_prop.c
    checks A1-A3 after random histories against a model of its own, and
    trove_ledger_audit_user checks A2-A3 for the reconciler)

    A1. At most one live entry per coin id: coinids points at a coin's
        latest entry (mint or revocation), and only that entry counts.
    A2. A user's balance is the sum of the values of the user's live coins:
        each applied entry adds its value (a mint) minus the value of the
        live entry it replaces.
    A3. A user's board scores are the sums of the same live coins, per
        hunt and period: the boards are flushed in the transaction that
        writes the balances, so the two never disagree.
    A4. Applying a record again changes nothing: a coin entry at or below
        the coin's latest aseq is skipped (no balance or board delta),
        dedup, events and states are rewritten with the same bytes, claims
        and markers are put only once. (The apply mark is committed with
        the records, so recovery normally starts after them; this is the
        second line of defence.)
    A5. The apply mark (meta "applied") is the lseq of the last record in
        the transaction that writes it: the tables hold exactly the records
        up to it (trove_ledger.c invariant 2). Once the next transaction
        committed (its fsync made this one durable) the mark becomes
        `trimmable` (invariant 4). */
#include "trove_ledger_internal.h"
#include "trove_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

//  --- applying records: one transaction per backlog -------------------------------

typedef struct {
    const char *user;  //  borrowed from an unpacked record
    int64_t delta;
} apply_delta_t;

//  The user's index entry of an event (ekey: its events key, partition and
//  pseq big-endian), so a re-derive reads the user's events, not a whole
//  partition's.
static int
apply_uevents_put (trove_ledger_t *self, MDB_txn *txn, const char *user, const uint8_t ekey [12])
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
apply_claim (trove_ledger_t *self, MDB_txn *txn, const Trove__Claim *claim)
{
    uint8_t key [KEY_MAX];
    size_t kl = ledger_key_pair (claim->source, claim->id, key);
    if (!kl || claim->content.len != TROVE_EVENT_CONTENT_SIZE)
        return EINVAL;
    MDB_val k = {kl, key}, v = {claim->content.len, claim->content.data};
    //  Replayed after a crash: the same claim again (a claim never changes).
    int rc = mdb_put (txn, self->claims, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

static int
apply_record (trove_ledger_t *self, MDB_txn *txn, const Trove__LogRecord *rec, zhashx_t *deltas)
{
    if (rec->claim) {
        int crc = apply_claim (self, txn, rec->claim);
        if (crc || !rec->record)
            return crc;
    }
    const Trove__EventRecord *er = rec->record;
    const Trove__Event *ev = er->event;
    int rc;
    uint8_t dkey [KEY_MAX];
    size_t dlen = ledger_key_pair (ev->source, ev->id, dkey);
    if (!dlen)
        return EINVAL;
    uint8_t dval [20];
    trove_put_be64 (dval, rec->req_id);
    trove_put_be32 (dval + 8, er->partition);
    trove_put_be64 (dval + 12, er->pseq);
    MDB_val key = {dlen, dkey}, val = {sizeof dval, dval};
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
        if ((rc = apply_uevents_put (self, txn, ev->user, ekey)))
            return rc;
    }
    if (rec->undone && rec->undone->source && rec->undone->id) {
        //  The undo came first: leave a marker so the target is never scored.
        uint8_t mkey [KEY_MAX], mval [20] = {0};
        size_t ml = ledger_key_pair (rec->undone->source, rec->undone->id, mkey);
        if (ml) {
            trove_put_be64 (mval, ledger_user_tag (ev->user));
            trove_put_be32 (mval + 8, MARKER_PARTITION);
            key = (MDB_val){ml, mkey};
            val = (MDB_val){sizeof mval, mval};
            rc = mdb_put (txn, self->dedup, &key, &val, MDB_NOOVERWRITE);
            if (rc && rc != MDB_KEYEXIST)
                return rc;  //  KEYEXIST: replayed after the target came
        }
    }
    for (size_t i = 0; i < rec->n_states; i++) {
        const Trove__StateEntry *st = rec->states [i];
        uint8_t skey [KEY_MAX];
        size_t sl = ledger_key_pair (ev->user, st->hunt, skey);
        if (!sl)
            return EINVAL;
        key = (MDB_val){sl, skey};
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
        if (ledger_coin_id_raw (coin->id, raw))
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
            if ((rc = mdb_get (txn, self->coins, &pkey, &pval)) == 0 && !(prev = ledger_coin_unpack (&pval)))
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
        apply_delta_t *d = zhashx_lookup (deltas, coin->user);
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

//  Apply a list of records in one transaction. Returns 0 or an LMDB error.
static int
apply_batch (trove_ledger_t *self, ledger_record_t *head, uint64_t *last_p)
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
    for (ledger_record_t *r = head; r && rc == 0; r = r->next) {
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, r->size, r->data);
        if (!rec || (!rec->claim && (!rec->record || !rec->record->event))) {
            if (rec)
                trove__log_record__free_unpacked (rec, NULL);
            rc = EINVAL;
            break;
        }
        zlistx_add_end (unpacked, rec);
        rc = apply_record (self, txn, rec, deltas);
        last = r->lseq;
    }
    for (apply_delta_t *d = zhashx_first (deltas); d && rc == 0; d = zhashx_next (deltas)) {
        uint8_t bkey [KEY_MAX];
        MDB_val key = {ledger_balance_key (d->user, bkey), bkey}, val;
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
apply_notify (trove_ledger_t *self)
{
    uint64_t one = 1;
    if (write (self->efd, &one, sizeof one) < 0) {
        //  the counter is saturated: a wake-up is already pending
    }
}

void *
ledger_apply_thread (void *arg)
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
        ledger_record_t *head = self->queue_head, *tail = head;
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
        int rc = apply_batch (self, head, &last);

        pthread_mutex_lock (&self->mutex);
        if (rc == 0) {
            self->queued -= n;
            //  This commit's fsync made the previous commit's meta durable.
            atomic_store (&self->trimmable, atomic_load (&self->applied));
            atomic_store (&self->applied, last);
            atomic_store (&self->apply_failing, false);
            backoff_ms = 10;
            pthread_mutex_unlock (&self->mutex);
            ledger_records_free (head);
            apply_notify (self);
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
            apply_notify (self);
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

void
ledger_apply_enqueue (trove_ledger_t *self, ledger_record_t *head, ledger_record_t *tail, size_t n)
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

//  --- one-time migrations of the tables ----------------------------------------------

//  A migration's step for one entry of the table it walks (key NULL: the
//  walk is over). Returns 0 or an LMDB error.
typedef int (apply_migrate_fn) (trove_ledger_t *self, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                                size_t n);

//  Run migration `name` once: fn for each entry of table dbi, then marked
//  done in meta (which holds the names of those done) by the same
//  transaction. done_fmt logs how many entries it took. Returns 0 or an
//  LMDB error.
static int
apply_migrate (trove_ledger_t *self, MDB_txn *txn, const char *name, MDB_dbi dbi, apply_migrate_fn *fn,
               const char *done_fmt)
{
    MDB_val mkey = {strlen (name), (void *) name}, key, val;
    int rc = mdb_get (txn, self->meta, &mkey, &val);
    if (rc != MDB_NOTFOUND)
        return rc;  //  done, or an error
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open (txn, dbi, &cur)))
        return rc;
    size_t n = 0;
    for (rc = mdb_cursor_get (cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT))
        if ((rc = fn (self, txn, &key, &val, ++n)))
            break;
    mdb_cursor_close (cur);
    if (rc == MDB_NOTFOUND)
        rc = fn (self, txn, NULL, NULL, n);
    if (rc)
        return rc;
    if (n)
        trove_log ('I', done_fmt, n);
    val = (MDB_val){1, "1"};
    return mdb_put (txn, self->meta, &mkey, &val, 0);
}

//  "boards", a ledger from before the leaderboards: count every live coin
//  (the latest entry of each id, when it is a mint: A1) once (coins without
//  local_day use their UTC day). Walks coinids.
static int
apply_migrate_board (trove_ledger_t *self, MDB_txn *txn, const MDB_val *key, const MDB_val *val, size_t n)
{
    (void) key;
    if (!val)
        return trove_board_flush (self->board, txn);
    MDB_val ckey = {8, val->mv_data}, cval;
    int rc;
    if (val->mv_size != 8 || (rc = mdb_get (txn, self->coins, &ckey, &cval)) == MDB_NOTFOUND)
        rc = MDB_CORRUPTED;
    Trove__Coin *coin = rc ? NULL : ledger_coin_unpack (&cval);
    if (!rc && !coin)
        rc = MDB_CORRUPTED;
    if (!rc && !coin->revoked && trove_board_add (self->board, coin))
        rc = ENOMEM;
    if (coin)
        trove__coin__free_unpacked (coin, NULL);
    if (!rc && n % 10000 == 0)
        rc = trove_board_flush (self->board, txn);
    if (rc)
        trove_board_discard (self->board);
    return rc;
}

//  "uevents", a ledger from before the per-user event index: index every
//  stored event once. Walks events.
static int
apply_migrate_uevents (trove_ledger_t *self, MDB_txn *txn, const MDB_val *key, const MDB_val *val, size_t n)
{
    (void) n;
    if (!key)
        return 0;
    Trove__EventRecord *er = trove__event_record__unpack (NULL, val->mv_size, val->mv_data);
    int rc = !er || !er->event || key->mv_size != 12
               ? MDB_CORRUPTED
               : apply_uevents_put (self, txn, er->event->user, key->mv_data);
    if (er)
        trove__event_record__free_unpacked (er, NULL);
    return rc;
}

int
ledger_apply_migrations (trove_ledger_t *self, MDB_txn *txn, const char *dir, char *err, size_t size)
{
    int rc = apply_migrate (self, txn, "boards", self->coinids, apply_migrate_board,
                            "leaderboards built from %zu coin entries");
    if (rc) {
        snprintf (err, size, "cannot build the leaderboards in %s: %s", dir, mdb_strerror (rc));
        return -1;
    }
    rc = apply_migrate (self, txn, "uevents", self->events, apply_migrate_uevents,
                        "indexed %zu stored events by user");
    if (rc) {
        snprintf (err, size, "cannot index the events by user in %s: %s", dir, mdb_strerror (rc));
        return -1;
    }
    return 0;
}

//  --- outside the thread -----------------------------------------------------------------

//  Its own write transaction: it waits for the apply thread's.
int
trove_ledger_set_excluded (trove_ledger_t *self, const char *user, bool excluded, const char *reason)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return ledger_fail_rc (self, "exclude", rc);
    rc = trove_board_set_excluded (self->board, txn, user, excluded, reason);
    if (rc) {
        mdb_txn_abort (txn);
        return ledger_fail_rc (self, "exclude", rc);
    }
    rc = mdb_txn_commit (txn);
    return rc ? ledger_fail_rc (self, "exclude", rc) : 0;
}
