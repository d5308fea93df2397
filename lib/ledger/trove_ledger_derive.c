/*  trove_ledger_derive - re-deriving one user in the open batch.

    Real time is exact for any arrival order because whatever the engine
    cannot place in its state (an event that orders before what it has
    folded, an undo of a stored event) and every reconciler request makes
    the scorer re-derive the user here, in the batch that logs the event:
    all of the user's events in event-time order with the rules in force,
    the difference with the ledger written as entries, the rule state
    replaced.

    INVARIANTS
    D1. After a re-derive, the user's live coins and rule state are those
        of event-time order; a second re-derive writes nothing.
    D2. It reads the tables plus the user's records they lack (memory, then
        the batch: trove_ledger.c invariant 3), in one fresh snapshot whose
        own apply mark says which records it holds (snap_applied): each
        record is read exactly once. */
#include "trove_ledger_internal.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

//  --- the user's coins and events: the tables, then the records they lack -----------

//  Remember the latest entry of a coin (entries come in aseq order).
static int
derive_latest_put (zhashx_t *latest, const Trove__Coin *coin)
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
typedef int (derive_record_fn) (const Trove__LogRecord *rec, const char *user, void *arg);

static int
derive_user_records (trove_ledger_t *self, const char *user, derive_record_fn *fn, void *arg)
{
    int rc = 0;
    zlistx_t *mine = zhashx_lookup (self->users_records, user);
    for (ledger_mark_t *m = mine ? zlistx_first (mine) : NULL; m && rc == 0; m = zlistx_next (mine)) {
        if (m->lseq <= self->snap_applied)
            continue;
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, m->size, m->data);
        rc = rec ? fn (rec, user, arg) : -1;
        if (rec)
            trove__log_record__free_unpacked (rec, NULL);
    }
    for (ledger_record_t *r = self->batch_head; r && rc == 0; r = r->next) {
        Trove__LogRecord *rec = trove__log_record__unpack (NULL, r->size, r->data);
        const Trove__EventRecord *er = rec ? rec->record : NULL;
        if (er && er->event && strcmp (er->event->user, user) == 0)
            rc = fn (rec, user, arg);
        if (rec)
            trove__log_record__free_unpacked (rec, NULL);
    }
    return rc;
}

//  derive_record_fn: the user's coin entries into a latest-entry map.
static int
derive_records_coins (const Trove__LogRecord *rec, const char *user, void *arg)
{
    for (size_t i = 0; i < rec->n_coins; i++)
        if (strcmp (rec->coins [i]->user, user) == 0 && derive_latest_put (arg, rec->coins [i]))
            return -1;
    return 0;
}

typedef struct {
    zlistx_t *out;  //  Trove__Event copies
    size_t max;     //  0: no limit
    bool over;      //  stopped: more than max
} derive_events_walk_t;

//  derive_record_fn: the record's event (an event of the log: pseq) into a list.
static int
derive_records_events (const Trove__LogRecord *rec, const char *user, void *arg)
{
    (void) user;
    derive_events_walk_t *w = arg;
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
derive_user_latest (trove_ledger_t *self, const char *user, const char *what)
{
    ledger_batch_end_reading (self);
    //  A lost mark (OOM) means the memory below may miss a record: then
    //  wait until the tables hold everything committed, once.
    int rc = 0;
    if (self->marks_lost && (rc = ledger_wait_applied_to (self, self->lseq, 30000)) == 0)
        self->marks_lost = false;
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return NULL;
    self->batch_reading = true;
    if (rc) {
        snprintf (self->error, sizeof self->error, "%s: the tables are behind the log; try again", what);
        return NULL;
    }
    //  The snapshot holds the records up to its own `applied` mark; the
    //  user's later ones are in memory (users_records) until absorbed.
    MDB_val key = {7, "applied"}, val;
    self->snap_applied =
        mdb_get (txn, self->meta, &key, &val) == 0 && val.mv_size == 8 ? trove_get_be64 (val.mv_data) : 0;
    zhashx_t *latest = zhashx_new ();
    if (!latest)
        return NULL;
    zhashx_set_destructor (latest, ledger_coin_item_free);
    //  1. The tables: the user's coins, oldest first.
    rc = ledger_user_coins (self, self->rtxn, user, INT64_MAX, NULL, latest);
    //  2. The user's records the snapshot lacks: aseq order throughout.
    if (rc == 0)
        rc = derive_user_records (self, user, derive_records_coins, latest);
    if (rc) {
        zhashx_destroy (&latest);
        if (!self->error [0])
            snprintf (self->error, sizeof self->error, "%s: out of memory or an unreadable record", what);
    }
    return latest;
}

//  --- re-deriving one user (D1) ---------------------------------------------------

static void
derive_event_item_free (void **item)
{
    trove_event_destroy ((Trove__Event **) item);
}

static int
derive_keep (void *arg, const trove_change_t *ch)
{
    Trove__Coin *coin = trove_change_coin (ch);
    if (!coin)
        return -1;
    zhashx_update (arg, coin->id, coin);
    return 0;
}

//  An entry for an existing coin (revoked, or minted again), in this record.
static int
derive_coin_change (trove_ledger_t *self, const Trove__Coin *c, bool revoke, const char *reason,
                    const char *run)
{
    trove_change_t ch = trove_change_of_coin (c, revoke, reason);
    ch.run = run;
    return ledger_log_change (self, &ch);
}

//  A user's stored events into out (copies): the tables, which the caller
//  made hold everything committed (derive_user_latest), then the open batch.
//  Returns 0, 1 when there are more than max (max 0: no limit), -1 on error.
static int
derive_user_events (trove_ledger_t *self, const char *user, size_t max, zlistx_t *out)
{
    size_t ul = strlen (user);
    uint8_t prefix [KEY_MAX];
    if (ul + 1 > sizeof prefix)
        return -1;
    memcpy (prefix, user, ul + 1);
    MDB_cursor *cur;
    int rc = mdb_cursor_open (self->rtxn, self->uevents, &cur);
    if (rc)
        return ledger_fail_rc (self, "user events cursor", rc);
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
        return ledger_fail_rc (self, "user events cursor", rc);
    //  Then the records the snapshot lacks (derive_user_latest set snap_applied).
    derive_events_walk_t walk = {out, max, 0};
    if (!bad && derive_user_records (self, user, derive_records_events, &walk))
        bad = walk.over ? 1 : -1;
    return bad;
}

//  Re-derive a user from every stored event plus ev (the event being
//  applied: stored with this record; NULL for a reconciler's request) and
//  write the difference with the ledger: revocations with reason, mints
//  "scored" when ev earned them, else "rescored" (all "reconciled", with
//  the run id, for a reconciler). Returns 0, 1 when the user has more than
//  max stored events (nothing written), -1 on error.
int
ledger_derive_user (trove_ledger_t *self, const char *user, const Trove__Event *ev,
                    const trove_rules_t *rules, size_t max, const char *reason, const char *run)
{
    zhashx_t *latest = derive_user_latest (self, user, "re-derive");
    if (!latest)
        return -1;
    zlistx_t *events = zlistx_new ();
    zhashx_t *derived = zhashx_new ();
    trove_memstore_t *mem = trove_memstore_new ();
    Trove__Event **list = NULL;
    int rc = -1;
    if (!events || !derived || !mem)
        goto done;
    zlistx_set_destructor (events, derive_event_item_free);
    zhashx_set_destructor (derived, ledger_coin_item_free);
    if ((rc = derive_user_events (self, user, max, events)))
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
    if (trove_engine_derive_into (rules, list, n, derive_keep, derived, mem))
        goto done;
    rc = 0;
    bool reconciler = run != NULL;
    //  Revocations first, so that an amended coin ends minted.
    for (Trove__Coin *c = zhashx_first (latest); c && rc == 0; c = zhashx_next (latest)) {
        Trove__Coin *d = zhashx_lookup (derived, c->id);
        if (!c->revoked && !(d && trove_coin_same (c, d)))
            rc = derive_coin_change (self, c, true, reason, run);
    }
    for (Trove__Coin *d = zhashx_first (derived); d && rc == 0; d = zhashx_next (derived)) {
        Trove__Coin *c = zhashx_lookup (latest, d->id);
        if (c && !c->revoked && trove_coin_same (c, d))
            continue;
        bool earned = false;
        for (size_t i = 0; ev && i < d->n_events && !earned; i++)
            earned =
                strcmp (d->events [i]->source, ev->source) == 0 && strcmp (d->events [i]->id, ev->id) == 0;
        //  A coin re-issued keeps the acceptance time of its last earning
        //  event only when that is this one.
        d->accepted_us = earned ? self->scoring_accepted_us : 0;
        const char *why =
            reconciler ? reason : trove_strerror (earned ? TROVE_REASON_SCORED : TROVE_REASON_RESCORED);
        rc = derive_coin_change (self, d, false, why, run);
    }
    if (rc == 0 && reconciler && self->ncoins) {
        //  Real time is exact: what a reconciler still finds is an incident.
        self->counts.repairs++;
        self->counts.repair_entries += self->ncoins;
    }
    //  The user's rule state becomes what event-time order leaves.
    trove_store_t store = trove_memstore_store (mem), ledger = {ledger_store_get, ledger_store_put, self};
    for (size_t h = 0; h < trove_rules_hunts (rules) && rc == 0; h++) {
        const char *hunt = trove_rules_latest (rules, h)->hunt;
        const void *data;
        size_t size;
        int got = store.get (store.arg, user, hunt, &data, &size);
        if (got == 0)
            rc = ledger_store_put (self, user, hunt, data, size);
        else if (ledger.get (ledger.arg, user, hunt, &data, &size) == 0)
            rc = ledger_store_put (self, user, hunt, NULL, 0);
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
