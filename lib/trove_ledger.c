/*  trove_ledger - a scorer shard's LMDB state. */
#include "trove_ledger.h"
#include "trove_hash.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTITIONS 65536
#define KEY_MAX 512

typedef struct {
    uint32_t partition;         //  partition whose counter moved in this batch
    uint64_t before;            //  its value before the batch
} s_undo_t;

struct _trove_ledger_t {
    MDB_env *env;               //  the environment (one per shard)
    MDB_dbi dedup, events, coins, usercoins, balances, awards;
    MDB_txn *txn;               //  open write transaction, or NULL
    MDB_txn *rtxn;              //  reusable read transaction (reset when idle)
    uint32_t shard;             //  shard index, stamped on coins
    uint64_t *pseq;             //  last pseq per partition (valid where loaded)
    uint8_t *pseq_loaded;       //  1 when pseq[p] was read from the log
    s_undo_t *undo;             //  counters to restore if the batch aborts
    size_t nundo, undo_cap;
    uint64_t aseq;              //  last committed award sequence
    uint64_t aseq_pending;      //  last award sequence inside the open batch
    uint64_t nevents;           //  committed event count
    uint64_t nevents_pending;
    void **frames;              //  packed Msg{award} of the batch
    size_t *sizes;
    size_t nframes, frames_cap;
    size_t nready;              //  frames of the last committed batch
    char error [256];           //  last storage error
    bool full;                  //  last error was MAP_FULL / ENOSPC
};

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
    self->shard = shard;
    self->pseq = calloc (MAX_PARTITIONS, sizeof *self->pseq);
    self->pseq_loaded = calloc (MAX_PARTITIONS, 1);
    if (!self->pseq || !self->pseq_loaded) {
        snprintf (err, sizeof err, "out of memory");
        goto fail;
    }
    if (trove_mkdir_p (dir, 0700)) {
        snprintf (err, sizeof err, "cannot create %s: %s", dir, strerror (errno));
        goto fail;
    }
    int rc;
    if ((rc = mdb_env_create (&self->env))
    ||  (rc = mdb_env_set_maxdbs (self->env, 8))
    ||  (rc = mdb_env_set_mapsize (self->env, map_size))
    ||  (rc = mdb_env_open (self->env, dir, sync ? 0 : MDB_NOSYNC, 0600))) {
        snprintf (err, sizeof err, "cannot open LMDB environment %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    //  A killed predecessor leaves its reader slot behind; clear it now.
    int dead = 0;
    mdb_reader_check (self->env, &dead);
    if (dead)
        trove_log ('I', "cleared %d stale LMDB reader slot(s) in %s", dead, dir);
    if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn))
    ||  (rc = mdb_dbi_open (txn, "dedup", MDB_CREATE, &self->dedup))
    ||  (rc = mdb_dbi_open (txn, "events", MDB_CREATE, &self->events))
    ||  (rc = mdb_dbi_open (txn, "coins", MDB_CREATE, &self->coins))
    ||  (rc = mdb_dbi_open (txn, "usercoins", MDB_CREATE, &self->usercoins))
    ||  (rc = mdb_dbi_open (txn, "balances", MDB_CREATE, &self->balances))
    ||  (rc = mdb_dbi_open (txn, "awards", MDB_CREATE, &self->awards))) {
        snprintf (err, sizeof err, "cannot open databases in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    MDB_cursor *cursor;
    MDB_val key, val;
    if ((rc = mdb_cursor_open (txn, self->awards, &cursor))) {
        snprintf (err, sizeof err, "cannot read awards in %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    if (mdb_cursor_get (cursor, &key, &val, MDB_LAST) == 0 && key.mv_size == 8)
        self->aseq = trove_get_be64 (key.mv_data);
    mdb_cursor_close (cursor);
    MDB_stat stat;
    if ((rc = mdb_stat (txn, self->events, &stat)) == 0)
        self->nevents = stat.ms_entries;
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc) {
        snprintf (err, sizeof err, "cannot initialise %s: %s", dir, mdb_strerror (rc));
        goto fail;
    }
    self->aseq_pending = self->aseq;
    self->nevents_pending = self->nevents;
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
    if (self->rtxn)
        mdb_txn_abort (self->rtxn);
    if (self->env)
        mdb_env_close (self->env);
    s_frames_clear (self);
    free (self->frames);
    free (self->sizes);
    free (self->undo);
    free (self->pseq);
    free (self->pseq_loaded);
    free (self);
    *self_p = NULL;
}

int
trove_ledger_begin (trove_ledger_t *self)
{
    assert (!self->txn);
    s_frames_clear (self);
    self->nundo = 0;
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->txn);
    if (rc) {
        self->txn = NULL;
        return s_fail_rc (self, "begin", rc);
    }
    return 0;
}

void
trove_ledger_abort (trove_ledger_t *self)
{
    if (!self->txn)
        return;
    mdb_txn_abort (self->txn);
    self->txn = NULL;
    //  Undo in reverse so the oldest saved value wins.
    for (size_t i = self->nundo; i-- > 0;)
        self->pseq [self->undo [i].partition] = self->undo [i].before;
    self->nundo = 0;
    self->aseq_pending = self->aseq;
    self->nevents_pending = self->nevents;
    s_frames_clear (self);
}

int
trove_ledger_commit (trove_ledger_t *self)
{
    assert (self->txn);
    int rc = mdb_txn_commit (self->txn);
    self->txn = NULL;       //  mdb_txn_commit frees the handle even on failure
    if (rc) {
        s_fail_rc (self, "commit", rc);
        for (size_t i = self->nundo; i-- > 0;)
            self->pseq [self->undo [i].partition] = self->undo [i].before;
        self->nundo = 0;
        self->aseq_pending = self->aseq;
        self->nevents_pending = self->nevents;
        s_frames_clear (self);
        return -1;
    }
    self->aseq = self->aseq_pending;
    self->nevents = self->nevents_pending;
    self->nready = self->nframes;
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

const char *trove_ledger_error (trove_ledger_t *self) { return self->error; }
bool trove_ledger_full (trove_ledger_t *self) { return self->full; }
uint64_t trove_ledger_last_aseq (trove_ledger_t *self) { return self->aseq; }
uint64_t trove_ledger_event_count (trove_ledger_t *self) { return self->nevents; }

//  Next pseq of a partition within the open batch (loading the last one from
//  the log the first time a partition is seen).
static int
s_next_pseq (trove_ledger_t *self, uint32_t p, uint64_t *pseq_p)
{
    if (!self->pseq_loaded [p]) {
        MDB_cursor *cursor;
        int rc = mdb_cursor_open (self->txn, self->events, &cursor);
        if (rc)
            return s_fail_rc (self, "events cursor", rc);
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
        else
        if (rc && rc != MDB_NOTFOUND) {
            mdb_cursor_close (cursor);
            return s_fail_rc (self, "events cursor", rc);
        }
        mdb_cursor_close (cursor);
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
    self->undo [self->nundo++] = (s_undo_t) {p, self->pseq [p]};
    *pseq_p = ++self->pseq [p];
    return 0;
}

static int
s_push_frame (trove_ledger_t *self, void *frame, size_t size)
{
    if (self->nframes == self->frames_cap) {
        size_t cap = self->frames_cap ? self->frames_cap * 2 : 256;
        void **frames = realloc (self->frames, cap * sizeof *frames);
        if (frames)
            self->frames = frames;
        size_t *sizes = frames ? realloc (self->sizes, cap * sizeof *sizes) : NULL;
        if (!sizes) {
            free (frame);
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->sizes = sizes;
        self->frames_cap = cap;
    }
    self->frames [self->nframes] = frame;
    self->sizes [self->nframes++] = size;
    return 0;
}

typedef struct {
    trove_ledger_t *self;
    const Trove__Event *event;
    int64_t accepted_us;
} s_mint_t;

//  Mint one award: coin, user index, award log, balance; all in the batch.
static int
s_mint (void *arg, const trove_award_t *award)
{
    s_mint_t *m = arg;
    trove_ledger_t *self = m->self;
    char id [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id (award->hunt, award->rule, m->event->user, award->occurrence, award->occurrence_len, id);

    Trove__EventRef ref = TROVE__EVENT_REF__INIT;
    ref.source = m->event->source;
    ref.id = m->event->id;
    Trove__EventRef *refs [1] = {&ref};
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = id;
    coin.user = m->event->user;
    coin.hunt = (char *) award->hunt;
    coin.rule = (char *) award->rule;
    coin.rule_version = award->version;
    coin.value = award->value;
    coin.n_events = 1;
    coin.events = refs;
    coin.minted_ms = trove_now_ms ();
    coin.shard = self->shard;
    coin.aseq = self->aseq_pending + 1;
    coin.reason = "scored";
    coin.event_ts_ms = m->event->ts_ms;
    coin.accepted_us = m->accepted_us;

    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_AWARD;
    msg.award = &coin;
    size_t size;
    void *frame = trove_msg_pack (&msg, &size);
    if (!frame) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    //  The coin is stored as the award message itself: one encoding, read back
    //  by queries and by catch-up alike.
    MDB_val key = {TROVE_COIN_ID_LEN, id}, val = {size, frame};
    int rc = mdb_put (self->txn, self->coins, &key, &val, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        free (frame);       //  already minted: ids are deterministic, minting is idempotent
        return 0;
    }
    if (rc) {
        free (frame);
        return s_fail_rc (self, "put coin", rc);
    }
    uint8_t seq [8];
    trove_put_be64 (seq, coin.aseq);
    MDB_val akey = {8, seq};
    MDB_val idval = {TROVE_COIN_ID_LEN, id};
    if ((rc = mdb_put (self->txn, self->awards, &akey, &idval, MDB_APPEND))) {
        free (frame);
        return s_fail_rc (self, "put award", rc);
    }
    size_t ulen = strlen (m->event->user);
    uint8_t ukey [KEY_MAX];
    memcpy (ukey, m->event->user, ulen);
    ukey [ulen] = 0;
    memcpy (ukey + ulen + 1, seq, 8);
    MDB_val uk = {ulen + 9, ukey};
    if ((rc = mdb_put (self->txn, self->usercoins, &uk, &idval, 0))) {
        free (frame);
        return s_fail_rc (self, "put user coin", rc);
    }
    MDB_val bkey = {ulen, m->event->user}, bval;
    int64_t balance = 0;
    rc = mdb_get (self->txn, self->balances, &bkey, &bval);
    if (rc == 0 && bval.mv_size == 8)
        memcpy (&balance, bval.mv_data, 8);
    else
    if (rc && rc != MDB_NOTFOUND) {
        free (frame);
        return s_fail_rc (self, "get balance", rc);
    }
    balance += award->value;
    bval = (MDB_val) {8, &balance};
    if ((rc = mdb_put (self->txn, self->balances, &bkey, &bval, 0))) {
        free (frame);
        return s_fail_rc (self, "put balance", rc);
    }
    self->aseq_pending = coin.aseq;
    return s_push_frame (self, frame, size);
}

int
trove_ledger_apply (trove_ledger_t *self, const Trove__Event *ev, uint32_t partition, uint64_t req_id,
                    int64_t accepted_us, const trove_rules_t *rules, Trove__Status *status_p)
{
    assert (self->txn);
    assert (partition < MAX_PARTITIONS);
    size_t slen = strlen (ev->source), ilen = strlen (ev->id);
    uint8_t dkey [KEY_MAX];
    assert (slen + 1 + ilen <= sizeof dkey);    //  validation bounds these
    memcpy (dkey, ev->source, slen);
    dkey [slen] = 0;
    memcpy (dkey + slen + 1, ev->id, ilen);
    MDB_val key = {slen + 1 + ilen, dkey}, val;
    int rc = mdb_get (self->txn, self->dedup, &key, &val);
    if (rc == 0) {
        uint64_t first = val.mv_size >= 8 ? trove_get_be64 (val.mv_data) : 0;
        //  The same submission retried (its answer was lost) is still "accepted".
        *status_p = first == req_id && req_id != 0 ? TROVE__STATUS__ACCEPTED : TROVE__STATUS__DUPLICATE;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return s_fail_rc (self, "get dedup", rc);

    uint64_t pseq;
    if (s_next_pseq (self, partition, &pseq))
        return -1;
    uint8_t dval [20];
    trove_put_be64 (dval, req_id);
    trove_put_be32 (dval + 8, partition);
    trove_put_be64 (dval + 12, pseq);
    val = (MDB_val) {sizeof dval, dval};
    if ((rc = mdb_put (self->txn, self->dedup, &key, &val, 0)))
        return s_fail_rc (self, "put dedup", rc);

    Trove__EventRecord rec = TROVE__EVENT_RECORD__INIT;
    rec.event = (Trove__Event *) ev;
    rec.partition = partition;
    rec.pseq = pseq;
    rec.accepted_us = accepted_us;
    size_t size = trove__event_record__get_packed_size (&rec);
    uint8_t ekey [12];
    trove_put_be32 (ekey, partition);
    trove_put_be64 (ekey + 4, pseq);
    MDB_val k = {12, ekey};
    val = (MDB_val) {size, NULL};
    //  MDB_RESERVE: serialise straight into the page, no intermediate buffer.
    if ((rc = mdb_put (self->txn, self->events, &k, &val, MDB_RESERVE)))
        return s_fail_rc (self, "put event", rc);
    trove__event_record__pack (&rec, val.mv_data);
    self->nevents_pending++;

    s_mint_t mint = {self, ev, accepted_us};
    if (trove_rules_score (rules, ev, s_mint, &mint))
        return -1;
    *status_p = TROVE__STATUS__ACCEPTED;
    return 0;
}

//  --- reads ----------------------------------------------------------------

static int
s_read_begin (trove_ledger_t *self, MDB_txn **txn_p)
{
    int rc = self->rtxn ? mdb_txn_renew (self->rtxn) : mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->rtxn);
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
    if (self->rtxn)
        mdb_txn_reset (self->rtxn);
}

int
trove_ledger_balance (trove_ledger_t *self, const char *user, int64_t *balance_p)
{
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    MDB_val key = {strlen (user), (void *) user}, val;
    *balance_p = 0;
    int rc = mdb_get (txn, self->balances, &key, &val);
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

static int
s_get_coin (trove_ledger_t *self, MDB_txn *txn, const void *id, Trove__Coin **coin_p)
{
    MDB_val key = {TROVE_COIN_ID_LEN, (void *) id}, val;
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
                    Trove__Coin ***coins_p, size_t *n_p, char **next_p)
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
    int rc = mdb_cursor_open (txn, self->usercoins, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "cursor", rc);
    }
    uint8_t kbuf [KEY_MAX];
    memcpy (kbuf, user, ulen);
    kbuf [ulen] = 0;
    trove_put_be64 (kbuf + ulen + 1, before);
    MDB_val key = {ulen + 9, kbuf}, val;
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get (cur, &key, &val, MDB_PREV) : mdb_cursor_get (cur, &key, &val, MDB_LAST);
    uint64_t last = 0;
    bool more = false;
    while (rc == 0 && key.mv_size == ulen + 9 && memcmp (key.mv_data, user, ulen) == 0
           && ((uint8_t *) key.mv_data) [ulen] == 0) {
        if (*n_p == limit) {
            more = true;
            break;
        }
        Trove__Coin *coin = NULL;
        if (val.mv_size != TROVE_COIN_ID_LEN || s_grow_coins (coins_p, *n_p, &cap)
        ||  s_get_coin (self, txn, val.mv_data, &coin) != 0) {
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
        if (!self->error [0])
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
                   Trove__EventRecord ***events_p, size_t *n_p)
{
    *coin_p = NULL;
    *events_p = NULL;
    *n_p = 0;
    if (strlen (coin_id) != TROVE_COIN_ID_LEN)
        return 1;
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    int rc = s_get_coin (self, txn, coin_id, coin_p);
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
        if (mdb_get (txn, self->dedup, &key, &val) || val.mv_size != 20)
            continue;
        uint8_t ekey [12];
        memcpy (ekey, (uint8_t *) val.mv_data + 8, 12);
        key = (MDB_val) {12, ekey};
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
    int rc = mdb_cursor_open (txn, self->awards, &cur);
    if (rc) {
        s_read_end (self);
        return s_fail_rc (self, "cursor", rc);
    }
    uint8_t kbuf [8];
    trove_put_be64 (kbuf, from);
    MDB_val key = {8, kbuf}, val;
    rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && *n_p < limit) {
        Trove__Coin *coin = NULL;
        if (val.mv_size != TROVE_COIN_ID_LEN || s_grow_coins (coins_p, *n_p, &cap)
        ||  s_get_coin (self, txn, val.mv_data, &coin) != 0) {
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
