/*  trove_ledger_read - every read of the ledger tables: balances, coins,
    one coin, rule states, the award log, events of a partition, audits,
    and the read snapshot with the leaderboards for queries.

    INVARIANTS
    R1. A read sees the tables only (what has been applied, trove_ledger.c
        invariant 2), in one snapshot per call (one per
        trove_ledger_read_begin for the board reads): never a mix of two
        apply transactions.
    R2. A read given a trove_cost_t charges each unit (one LMDB entry)
        before the read it pays for; past the limit it stops with -1 and
        cost->over set, and returns nothing. */
#include "trove_ledger_internal.h"
#include "trove_error.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

//  --- one user: coins, balance, rule state ---------------------------------------

//  Every coin entry of a user in the tables, oldest first, into latest
//  (id -> Trove__Coin, owned: a later entry of an id replaces the earlier);
//  entries written after as_of_ms (their minted_ms, the scorer's clock when
//  it wrote them) are left out. cost (or NULL) pays one unit per entry.
//  Returns 0 or -1 (cost->over set when it ran out).
int
ledger_user_coins (trove_ledger_t *self, MDB_txn *txn, const char *user, int64_t as_of_ms, trove_cost_t *cost,
                   zhashx_t *latest)
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
        return ledger_fail_rc (self, "users cursor", rc);
    MDB_val key = {ul + 1, ukey}, val;
    int bad = 0;
    rc = mdb_cursor_get (cursor, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && !bad && key.mv_size >= ul + 1 && memcmp (key.mv_data, ukey, ul + 1) == 0) {
        if (key.mv_size == ul + 9) {
            Trove__Coin *coin = NULL;
            if (cost && !trove_cost_charge (cost, 1)) {
                bad = -1;
                break;
            }
            bad = ledger_coin_at (self, txn, (uint8_t *) key.mv_data + ul + 1, &coin);
            if (bad == 1)
                bad = 0;  //  index ahead of a coin: cannot happen in one transaction
            else if (coin && coin->minted_ms > as_of_ms)
                trove__coin__free_unpacked (coin, NULL);
            else if (coin)
                zhashx_update (latest, coin->id, coin);
        }
        rc = mdb_cursor_get (cursor, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (!bad && rc && rc != MDB_NOTFOUND)
        return ledger_fail_rc (self, "users cursor", rc);
    return bad ? -1 : 0;
}

int
trove_ledger_state (trove_ledger_t *self, const char *user, const char *hunt, trove_cost_t *cost,
                    Trove__HuntState **state_p)
{
    *state_p = NULL;
    uint8_t key [KEY_MAX];
    size_t kl = ledger_key_pair (user, hunt, key);
    if (!kl)
        return 0;
    if (cost && !trove_cost_charge (cost, 1))
        return -1;
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    MDB_val k = {kl, key}, v;
    int rc = mdb_get (txn, self->states, &k, &v);
    if (rc == 0)
        *state_p = trove__hunt_state__unpack (NULL, v.mv_size, v.mv_data);
    ledger_snapshot_end (self);
    if (rc && rc != MDB_NOTFOUND)
        return ledger_fail_rc (self, "get state", rc);
    return rc == 0 && !*state_p ? ledger_fail_rc (self, "unreadable state", EINVAL) : 0;
}

int
trove_ledger_balance (trove_ledger_t *self, const char *user, int64_t *balance_p, trove_cost_t *cost)
{
    if (cost && !trove_cost_charge (cost, 1))
        return -1;
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    uint8_t bkey [KEY_MAX];
    *balance_p = 0;
    if (strlen (user) + 1 > sizeof bkey) {
        ledger_snapshot_end (self);
        return 0;
    }
    MDB_val key = {ledger_balance_key (user, bkey), bkey}, val;
    int rc = mdb_get (txn, self->users, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        memcpy (balance_p, val.mv_data, 8);
    ledger_snapshot_end (self);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : ledger_fail_rc (self, "get balance", rc);
}

static int
read_coins_grow (Trove__Coin ***coins_p, size_t n, size_t *cap_p)
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
            snprintf (self->error, sizeof self->error, "%s", trove_strerror (TROVE_E_BAD_CURSOR));
            return -1;
        }
    }
    if (ulen + 9 > KEY_MAX)
        return -1;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (ledger_snapshot_cursor (self, self->users, "cursor", &txn, &cur))
        return -1;
    uint8_t kbuf [KEY_MAX];
    memcpy (kbuf, user, ulen);
    kbuf [ulen] = 0;
    trove_put_be64 (kbuf + ulen + 1, before);
    MDB_val key = {ulen + 9, kbuf}, val;
    //  Units: the positioning, each index entry, each coin.
    int rc = cost && !trove_cost_charge (cost, 2) ? -1 : mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
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
        if ((cost && !trove_cost_charge (cost, 2)) || read_coins_grow (coins_p, *n_p, &cap)
            || ledger_coin_at (self, txn, (uint8_t *) key.mv_data + ulen + 1, &coin) != 0) {
            rc = -1;
            break;
        }
        (*coins_p) [(*n_p)++] = coin;
        last = trove_get_be64 ((uint8_t *) key.mv_data + ulen + 1);
        rc = mdb_cursor_get (cur, &key, &val, MDB_PREV);
    }
    mdb_cursor_close (cur);
    ledger_snapshot_end (self);
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
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    uint8_t raw [16];
    if (ledger_coin_id_raw (coin_id, raw)) {
        ledger_snapshot_end (self);
        return 1;
    }
    MDB_val ikey = {16, raw}, ival;
    int rc = mdb_get (txn, self->coinids, &ikey, &ival);
    if (rc == 0 && ival.mv_size == 8)
        rc = ledger_coin_at (self, txn, ival.mv_data, coin_p);
    else
        rc = rc == MDB_NOTFOUND || rc == 0 ? 1 : ledger_fail_rc (self, "get coin id", rc);
    if (rc) {
        ledger_snapshot_end (self);
        return rc;
    }
    Trove__Coin *coin = *coin_p;
    *events_p = calloc (coin->n_events ? coin->n_events : 1, sizeof **events_p);
    for (size_t i = 0; *events_p && i < coin->n_events; i++) {
        uint8_t dkey [KEY_MAX];
        size_t dlen = ledger_key_pair (coin->events [i]->source, coin->events [i]->id, dkey);
        if (!dlen)
            continue;
        MDB_val key = {dlen, dkey}, val;
        if (cost && !trove_cost_charge (cost, 2)) {  //  its dedup entry, its record
            trove_ledger_free_events (*events_p, *n_p);
            *events_p = NULL;
            *n_p = 0;
            trove__coin__free_unpacked (*coin_p, NULL);
            *coin_p = NULL;
            ledger_snapshot_end (self);
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
    ledger_snapshot_end (self);
    return 0;
}

int
trove_ledger_awards (trove_ledger_t *self, uint64_t from, size_t limit, Trove__Coin ***coins_p, size_t *n_p)
{
    *coins_p = NULL;
    *n_p = 0;
    size_t cap = 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (ledger_snapshot_cursor (self, self->coins, "cursor", &txn, &cur))
        return -1;
    uint8_t kbuf [8];
    trove_put_be64 (kbuf, from);
    MDB_val key = {8, kbuf}, val;
    int rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && *n_p < limit) {
        Trove__Coin *coin = ledger_coin_unpack (&val);
        if (!coin || read_coins_grow (coins_p, *n_p, &cap)) {
            if (coin)
                trove__coin__free_unpacked (coin, NULL);
            rc = -1;
            break;
        }
        (*coins_p) [(*n_p)++] = coin;
        rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cur);
    ledger_snapshot_end (self);
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
    MDB_cursor *cur;
    if (ledger_snapshot_cursor (self, self->events, "events cursor", &txn, &cur))
        return -1;
    uint8_t kbuf [12] = {0};
    if (partition >= 0)
        trove_put_be32 (kbuf, (uint32_t) partition);
    MDB_val key = {12, kbuf}, val;
    int rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
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
    ledger_snapshot_end (self);
    if (stop < 0)
        return -1;
    if (rc && rc != MDB_NOTFOUND)
        return ledger_fail_rc (self, "events cursor", rc);
    return 0;
}

//  Each board score of the user (hunt, "all") and ("*", "all") against the
//  sums of the live coins. Returns the number that differ, or -1.
static int
read_audit_boards (trove_ledger_t *self, MDB_txn *txn, const char *user, zhashx_t *latest)
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

static int read_live (trove_ledger_t *self, const char *user, int64_t as_of_ms, trove_cost_t *cost,
                      Trove__Coin ***coins_p, size_t *n_p, trove_ledger_audit_t *audit);

int
trove_ledger_live_coins (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p)
{
    return read_live (self, user, INT64_MAX, NULL, coins_p, n_p, NULL);
}

int
trove_ledger_live_coins_as_of (trove_ledger_t *self, const char *user, int64_t as_of_ms, trove_cost_t *cost,
                               Trove__Coin ***coins_p, size_t *n_p)
{
    return read_live (self, user, as_of_ms, cost, coins_p, n_p, NULL);
}

int
trove_ledger_audit_user (trove_ledger_t *self, const char *user, Trove__Coin ***coins_p, size_t *n_p,
                         trove_ledger_audit_t *audit)
{
    return read_live (self, user, INT64_MAX, NULL, coins_p, n_p, audit);
}

static int
read_live (trove_ledger_t *self, const char *user, int64_t as_of_ms, trove_cost_t *cost,
           Trove__Coin ***coins_p, size_t *n_p, trove_ledger_audit_t *audit)
{
    *coins_p = NULL;
    *n_p = 0;
    size_t cap = 0;
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return -1;
    zhashx_t *latest = zhashx_new ();
    if (latest)
        zhashx_set_destructor (latest, ledger_coin_item_free);
    int rc = latest ? ledger_user_coins (self, txn, user, as_of_ms, cost, latest) : -1;
    if (rc == 0 && audit) {
        memset (audit, 0, sizeof *audit);
        for (Trove__Coin *c = zhashx_first (latest); c; c = zhashx_next (latest))
            audit->live_sum += c->revoked ? 0 : c->value;
        uint8_t bkey [KEY_MAX];
        MDB_val key, val;
        int got = MDB_NOTFOUND;
        if (strlen (user) + 1 <= sizeof bkey) {
            key = (MDB_val){ledger_balance_key (user, bkey), bkey};
            got = mdb_get (txn, self->users, &key, &val);
        }
        if (got == 0 && val.mv_size == 8)
            memcpy (&audit->balance, val.mv_data, 8);
        else if (got != MDB_NOTFOUND)
            rc = ledger_fail_rc (self, "get balance", got);
        int differ = rc ? 0 : read_audit_boards (self, txn, user, latest);
        if (differ < 0)
            rc = ledger_fail_rc (self, "audit boards", ENOMEM);
        else
            audit->boards_differ = (uint32_t) differ;
    }
    ledger_snapshot_end (self);
    //  The live ones move to the caller, the rest are freed here.
    if (latest)
        zhashx_set_destructor (latest, NULL);
    for (Trove__Coin *c = latest ? zhashx_first (latest) : NULL; c; c = zhashx_next (latest)) {
        bool keep = rc == 0 && !c->revoked;
        if (keep && read_coins_grow (coins_p, *n_p, &cap))
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
    MDB_cursor *cur;
    if (ledger_snapshot_cursor (self, self->events, "events cursor", &txn, &cur))
        return -1;
    //  The partition's last pseq, in the same snapshot.
    ledger_pseq_last (cur, partition, last_p);
    uint8_t kbuf [12];
    trove_put_be32 (kbuf, partition);
    trove_put_be64 (kbuf + 4, from);
    MDB_val key = {12, kbuf}, val;
    int rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
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
    ledger_snapshot_end (self);
    if (bad || (rc && rc != MDB_NOTFOUND)) {
        trove_ledger_free_events (*records_p, *n_p);
        *records_p = NULL;
        *n_p = 0;
        return bad ? -1 : ledger_fail_rc (self, "events cursor", rc);
    }
    return 0;
}

//  --- the read snapshot and the leaderboards -------------------------------------

trove_ledger_read_t *
trove_ledger_read_begin (trove_ledger_t *self)
{
    MDB_txn *txn;
    if (ledger_snapshot_begin (self, &txn))
        return NULL;
    self->reader = (trove_ledger_read_t){self, txn};
    return &self->reader;
}

void
trove_ledger_read_end (trove_ledger_read_t **read_p)
{
    assert (read_p);
    if (*read_p)
        ledger_snapshot_end ((*read_p)->ledger);
    *read_p = NULL;
}

int
trove_ledger_board_top (trove_ledger_read_t *read, const char *hunt, const char *period, int64_t after_score,
                        const char *after_user, size_t limit, trove_cost_t *cost,
                        Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p)
{
    return trove_board_top (read->ledger->board, read->txn, hunt, period, after_score, after_user, limit,
                            cost, entries_p, n_p, more_p);
}

int
trove_ledger_board_counts (trove_ledger_read_t *read, const char *hunt, const char *period,
                           const int64_t *scores, size_t n, trove_cost_t *cost, uint64_t *above,
                           uint64_t *equal)
{
    return trove_board_counts (read->ledger->board, read->txn, hunt, period, scores, n, cost, above, equal);
}

int
trove_ledger_board_window (trove_ledger_read_t *read, const char *hunt, const char *period, int64_t score,
                           const char *user, size_t k, trove_cost_t *cost, Trove__BoardEntry ***before_p,
                           size_t *nbefore_p, Trove__BoardEntry ***after_p, size_t *nafter_p)
{
    return trove_board_window (read->ledger->board, read->txn, hunt, period, score, user, k, cost, before_p,
                               nbefore_p, after_p, nafter_p);
}

int
trove_ledger_board_score (trove_ledger_read_t *read, const char *user, const char *hunt, const char *period,
                          trove_cost_t *cost, int64_t *score_p, bool *excluded_p)
{
    return trove_board_score (read->ledger->board, read->txn, user, hunt, period, cost, score_p, excluded_p);
}

int
trove_ledger_board_hunts (trove_ledger_read_t *read, const char *user, trove_cost_t *cost,
                          Trove__BoardEntry ***entries_p, size_t *n_p)
{
    return trove_board_hunts (read->ledger->board, read->txn, user, cost, entries_p, n_p);
}

int
trove_ledger_board_list (trove_ledger_read_t *read, const char *hunt, size_t limit, trove_cost_t *cost,
                         Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p)
{
    return trove_board_list (read->ledger->board, read->txn, hunt, limit, cost, entries_p, n_p, more_p);
}

int
trove_ledger_board_excluded (trove_ledger_read_t *read, size_t limit, trove_cost_t *cost,
                             Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p)
{
    return trove_board_excluded (read->ledger->board, read->txn, limit, cost, entries_p, n_p, more_p);
}
