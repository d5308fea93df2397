/*  trove-reconciler - the batch half of one scorer shard (docs/protocol.md,
    "reconciler"; docs/architecture.md, "Reconciler").

    1. Replica: pulls the shard's event log partition by partition, by
       sequence number (`events` queries), into its own LMDB: each reply is
       written with the partition's next pseq in one transaction, so a
       restart of either side neither loses nor re-pulls anything.
    2. Runs (every reconcile_every_s, and on request): for each partition,
       pull it to its head, re-derive every user of it from the replica in
       event-time order with trove_engine (the scorer's code, the rules in
       force), compare digests of the live coins with the scorer's
       (`digests`), check the mismatches again after a fresh pull, then ask
       the scorer to re-derive each remaining user: an event of source
       `reconciler`, type `reconcile`, id RUN/USER, sent like an ingestor's
       batch (durable, deduplicated, resent until answered). The scorer
       writes the compensating entries (reason `reconciled`, the run id).
       The repaired users are checked again.
    3. Report: JSON in REPLICA/runs/RUN.json, also the answer to a request.

    usage: trove-reconciler --config FILE --shard NAME */
#include "trove.pb-c.h"
#include "trove_cfg.h"
#include "trove_client.h"
#include "trove_engine.h"
#include "trove_daemon.h"
#include "trove_error.h"
#include "trove_hash.h"
#include "trove_msg.h"
#include "trove_rules.h"
#include "trove_curve.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PULL_LIMIT 500    //  events per pull reply
#define DIGEST_BATCH 500  //  users per digests query
#define CALL_TIMEOUT_MS 5000
#define REPAIR_TIMEOUT_MS 10000
//  Between pull rounds when nothing was new: from IDLE_MS, doubling up to
//  IDLE_MAX_MS while the shard stays quiet (a round asks every partition:
//  an idle reconciler polling every 200 ms cost a fifth of a core, and its
//  scorer a tenth). A run pulls to the head first, so this only delays the
//  replica's copy, never a run's view.
#define IDLE_MS 200
#define IDLE_MAX_MS 3200

typedef struct {
    trove_daemon_t *daemon;  //  the start-up's: config, CURVE, status
    trove_cfg_t *cfg;        //  the daemon's
    size_t shard;
    const char *name;
    char *replica_dir;
    MDB_env *env;
    MDB_dbi events, cursors;
    zsock_t *control;      //  ROUTER for requests, or NULL
    zsock_t *events_sock;  //  DEALER to the scorer's events socket (repairs)
    uint64_t batch_id;
    uint64_t gaps;    //  pseq gaps seen while pulling (integrity)
    uint64_t pulled;  //  events pulled since start
    bool behind;      //  the scorer's ledger ends before this replica: lost or replaced
} s_rec_t;

//  --------------------------------------------------------------------------
//  Replica

static uint64_t
s_cursor (s_rec_t *self, MDB_txn *txn, uint32_t p)
{
    uint8_t k [4];
    trove_put_be32 (k, p);
    MDB_val key = {4, k}, val;
    if (mdb_get (txn, self->cursors, &key, &val) == 0 && val.mv_size == 8)
        return trove_get_be64 (val.mv_data);
    return 1;  //  pseqs start at 1
}

//  Pull one partition once. Returns events stored (>= 0), or -1. *more_p is
//  set when the scorer has more after these.
static int
s_pull (s_rec_t *self, uint32_t p, bool *more_p, uint64_t *head_p)
{
    *more_p = false;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    uint64_t from = s_cursor (self, txn, p);
    mdb_txn_abort (txn);
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "events";
    q.partition = p;
    q.from_pseq = from;
    q.limit = PULL_LIMIT;
    char *err = NULL;
    Trove__QueryReply *reply =
        trove_client_call_max (trove_cfg_shard_query (self->cfg, self->shard), &q, CALL_TIMEOUT_MS, 0,
                               trove_cfg_limits (self->cfg)->max_frame, &err);
    if (!reply || (reply->error && *reply->error)) {
        trove_log ('W', "pull of partition %u: %s", p, reply ? reply->error : err);
        free (err);
        trove_client_reply_free (&reply);
        return -1;
    }
    if (head_p)
        *head_p = reply->last_pseq;
    //  The replica holds events the scorer no longer has: its ledger was
    //  lost (an empty data directory after a lost disk) or replaced (an old
    //  backup restored without moving this replica aside). Repairing
    //  against it would be wrong either way, and new events would reuse
    //  pseqs this replica already holds: stop, and say what to do.
    if (reply->last_pseq + 1 < from) {
        if (!self->behind)
            trove_log (
                'E',
                "the scorer's ledger ends at pseq %llu of partition %u but this replica holds it up to %llu: "
                "the shard's ledger was lost or replaced. Not reconciling shard %s: restore its ledger "
                "(trovectl restore), or move this replica (%s) aside if the loss is accepted",
                (unsigned long long) reply->last_pseq, p, (unsigned long long) from - 1, self->name,
                self->replica_dir);
        self->behind = true;
        trove_client_reply_free (&reply);
        return -1;
    }
    int rc = 0;
    if (reply->n_events) {
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        uint64_t next = from;
        for (size_t i = 0; i < reply->n_events && rc == 0; i++) {
            const Trove__EventRecord *er = reply->events [i];
            if (er->partition != p || er->pseq < next)
                continue;  //  not what was asked: ignore
            if (er->pseq > next)
                self->gaps += er->pseq - next;  //  the scorer's sequence skipped
            uint8_t k [12];
            trove_put_be32 (k, p);
            trove_put_be64 (k + 4, er->pseq);
            MDB_val key = {12, k}, val = {trove__event_record__get_packed_size (er), NULL};
            if ((rc = mdb_put (txn, self->events, &key, &val, MDB_RESERVE)))
                break;
            trove__event_record__pack (er, val.mv_data);
            next = er->pseq + 1;
        }
        if (rc == 0) {
            uint8_t k [4], v [8];
            trove_put_be32 (k, p);
            trove_put_be64 (v, next);
            MDB_val key = {4, k}, val = {8, v};
            rc = mdb_put (txn, self->cursors, &key, &val, 0);
        }
        rc = rc ? (mdb_txn_abort (txn), rc) : mdb_txn_commit (txn);
        if (rc) {
            trove_log ('E', "replica write: %s", mdb_strerror (rc));
            trove_client_reply_free (&reply);
            return -1;
        }
        self->pulled += reply->n_events;
        *more_p = reply->n_events == PULL_LIMIT;
    }
    int n = (int) reply->n_events;
    trove_client_reply_free (&reply);
    return n;
}

//  Pull a partition until it reached the head seen. Returns 0 or -1.
static int
s_pull_to_head (s_rec_t *self, uint32_t p)
{
    bool more = true;
    for (int rounds = 0; more && rounds < 100000; rounds++)
        if (s_pull (self, p, &more, NULL) < 0)
            return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Runs

typedef struct {
    char *user;
    zlistx_t *events;  //  Trove__Event (owned)
    char digest [TROVE_COIN_ID_LEN + 1];
    zhashx_t *coins;  //  derived live coins id -> Trove__Coin (owned)
    int64_t value;    //  sum of derived live coins
} s_user_t;

static void
s_user_free (void **item)
{
    s_user_t *u = *item;
    if (u) {
        free (u->user);
        zlistx_destroy (&u->events);
        zhashx_destroy (&u->coins);
        free (u);
        *item = NULL;
    }
}

static void
s_event_free (void **item)
{
    if (*item) {
        trove__event__free_unpacked (*item, NULL);
        *item = NULL;
    }
}

static void
s_coin_free (void **item)
{
    if (*item) {
        trove__coin__free_unpacked (*item, NULL);
        *item = NULL;
    }
}

typedef struct {
    uint64_t events, users, digests, mismatched, repairs, verified, unrepaired;
    uint64_t missing, extra, amended;  //  discrepancies by kind (coins)
    uint64_t deferred;                 //  mismatched in a partition that kept moving: next run
    uint64_t provenance_missing, balance_mismatch;
    uint64_t last_pseq_sum;  //  the position covered: sum of partitions' next pseq - 1
} s_stats_t;

static int
s_keep_coin (void *arg, const trove_change_t *ch)
{
    s_user_t *u = arg;
    Trove__Coin *copy = trove_change_coin (ch);
    if (!copy)
        return -1;
    zhashx_update (u->coins, copy->id, copy);
    u->value += copy->value;
    return 0;
}

//  Read partition p of the replica grouped by user (only `only` if set).
static zhashx_t *
s_load_partition (s_rec_t *self, uint32_t p, const char *only, uint64_t *events_p)
{
    zhashx_t *users = zhashx_new ();
    if (!users)
        return NULL;
    zhashx_set_destructor (users, s_user_free);
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn)) {
        zhashx_destroy (&users);
        return NULL;
    }
    mdb_cursor_open (txn, self->events, &cur);
    uint8_t k [12];
    trove_put_be32 (k, p);
    trove_put_be64 (k + 4, 0);
    MDB_val key = {12, k}, val;
    int rc = mdb_cursor_get (cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size == 12 && trove_get_be32 (key.mv_data) == p) {
        Trove__EventRecord *er = trove__event_record__unpack (NULL, val.mv_size, val.mv_data);
        if (er && er->event && (!only || strcmp (er->event->user, only) == 0)) {
            s_user_t *u = zhashx_lookup (users, er->event->user);
            if (!u && (u = calloc (1, sizeof *u))) {
                u->user = strdup (er->event->user);
                u->events = zlistx_new ();
                u->coins = zhashx_new ();
                zlistx_set_destructor (u->events, s_event_free);
                zhashx_set_destructor (u->coins, s_coin_free);
                zhashx_insert (users, u->user, u);
            }
            if (u) {
                zlistx_add_end (u->events, er->event);
                er->event = NULL;  //  moved
                (*events_p)++;
            }
        }
        if (er)
            trove__event_record__free_unpacked (er, NULL);
        rc = mdb_cursor_get (cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close (cur);
    mdb_txn_abort (txn);  //  short read: one partition at a time
    return users;
}

static int
s_derive (const trove_rules_t *rules, s_user_t *u)
{
    size_t n = zlistx_size (u->events), i = 0;
    Trove__Event **events = calloc (n ? n : 1, sizeof *events);
    if (!events)
        return -1;
    for (Trove__Event *e = zlistx_first (u->events); e; e = zlistx_next (u->events))
        events [i++] = e;
    zhashx_purge (u->coins);
    u->value = 0;
    int rc = trove_engine_derive (rules, events, n, s_keep_coin, u);
    size_t nc = zhashx_size (u->coins), k = 0;
    Trove__Coin **coins = calloc (nc ? nc : 1, sizeof *coins);
    for (Trove__Coin *c = coins ? zhashx_first (u->coins) : NULL; c; c = zhashx_next (u->coins))
        coins [k++] = c;
    if (rc == 0 && (!coins || trove_hash_coins_digest (coins, nc, u->digest)))
        rc = -1;
    free (coins);
    free (events);
    return rc;
}

//  Ask the scorer for the digests of users; mismatching ones go to out.
static int
s_compare (s_rec_t *self, s_user_t **users, size_t n, zlistx_t *out, s_stats_t *st, bool count)
{
    for (size_t at = 0; at < n; at += DIGEST_BATCH) {
        size_t m = n - at < DIGEST_BATCH ? n - at : DIGEST_BATCH;
        char **names = calloc (m, sizeof *names);
        if (!names)
            return -1;
        for (size_t i = 0; i < m; i++)
            names [i] = users [at + i]->user;
        Trove__Query q = TROVE__QUERY__INIT;
        q.kind = "digests";
        q.n_users = m;
        q.users = names;
        char *err = NULL;
        Trove__QueryReply *reply =
            trove_client_call_max (trove_cfg_shard_query (self->cfg, self->shard), &q, CALL_TIMEOUT_MS, 1,
                                   trove_cfg_limits (self->cfg)->max_frame, &err);
        free (names);
        if (!reply || (reply->error && *reply->error) || reply->n_digests != m) {
            trove_log ('W', "digests: %s", reply ? reply->error : err);
            free (err);
            trove_client_reply_free (&reply);
            return -1;
        }
        for (size_t i = 0; i < m; i++) {
            s_user_t *u = users [at + i];
            const Trove__UserDigest *d = reply->digests [i];
            if (count)
                st->digests++;
            //  The stored sums are checked whatever the coins: a balance or
            //  a board that is not the sum of the live coins is a ledger
            //  fault that no re-derive can see.
            if (count && (d->balance != d->stored_balance || d->boards_differ) && d->audited) {
                st->balance_mismatch++;
                trove_log ('W',
                           "integrity: user %s stores balance %lld, its live coins sum to %lld; %u board "
                           "score(s) differ",
                           d->user, (long long) d->stored_balance, (long long) d->balance, d->boards_differ);
            }
            if (strcmp (d->digest, u->digest))
                zlistx_add_end (out, u);
        }
        trove_client_reply_free (&reply);
    }
    return 0;
}

//  Classify a user's discrepancies against the ledger's live coins.
static void
s_classify (s_rec_t *self, s_user_t *u, s_stats_t *st)
{
    zhashx_t *latest = zhashx_new ();
    if (!latest)
        return;
    zhashx_set_destructor (latest, s_coin_free);
    char cursor [32] = "";
    for (int pages = 0; pages < 1000; pages++) {
        Trove__Query q = TROVE__QUERY__INIT;
        q.kind = "coins";
        q.user = u->user;
        q.limit = 1000;
        q.cursor = cursor;
        Trove__QueryReply *reply =
            trove_client_call_max (trove_cfg_shard_query (self->cfg, self->shard), &q, CALL_TIMEOUT_MS, 1,
                                   trove_cfg_limits (self->cfg)->max_frame, NULL);
        if (!reply)
            break;
        //  Newest first: the first entry seen of an id is its latest.
        for (size_t i = 0; i < reply->n_coins; i++)
            if (!zhashx_lookup (latest, reply->coins [i]->id)) {
                Trove__Coin *copy = trove_msg_coin_dup (reply->coins [i]);
                if (copy)
                    zhashx_insert (latest, copy->id, copy);
            }
        snprintf (cursor, sizeof cursor, "%s", reply->next_cursor ? reply->next_cursor : "");
        trove_client_reply_free (&reply);
        if (!*cursor)
            break;
    }
    zhashx_t *known = zhashx_new ();  //  the user's events in the log
    for (Trove__Event *e = zlistx_first (u->events); e && known; e = zlistx_next (u->events)) {
        char key [600];
        snprintf (key, sizeof key, "%s\x1f%s", e->source, e->id);
        zhashx_update (known, key, (void *) 1);
    }
    for (Trove__Coin *c = zhashx_first (latest); c; c = zhashx_next (latest)) {
        if (c->revoked)
            continue;
        Trove__Coin *d = zhashx_lookup (u->coins, c->id);
        if (!d)
            st->extra++;
        else if (d->value != c->value || d->rule_version != c->rule_version)
            st->amended++;
        for (size_t i = 0; known && i < c->n_events; i++) {
            char key [600];
            snprintf (key, sizeof key, "%s\x1f%s", c->events [i]->source, c->events [i]->id);
            if (!zhashx_lookup (known, key))
                st->provenance_missing++;
        }
    }
    for (Trove__Coin *d = zhashx_first (u->coins); d; d = zhashx_next (u->coins)) {
        Trove__Coin *c = zhashx_lookup (latest, d->id);
        if (!c || c->revoked)
            st->missing++;
    }
    zhashx_destroy (&known);
    zhashx_destroy (&latest);
}

//  Send re-derive requests for users (one batch per call), resent until
//  answered. Returns how many were accepted (or duplicate: done before).
static size_t
s_repair (s_rec_t *self, const char *run, uint32_t p, s_user_t **users, size_t n)
{
    if (n == 0)
        return 0;
    Trove__Event *evs = calloc (n, sizeof *evs);
    Trove__Event **ptrs = calloc (n, sizeof *ptrs);
    Trove__Attr *attrs = calloc (n, sizeof *attrs);
    Trove__Attr **attr_ptrs = calloc (n, sizeof *attr_ptrs);
    uint32_t *parts = calloc (n, sizeof *parts);
    char **ids = calloc (n, sizeof *ids);
    size_t done = 0;
    if (!evs || !ptrs || !attrs || !attr_ptrs || !parts || !ids)
        goto out;
    int64_t now = trove_now_ms ();
    for (size_t i = 0; i < n; i++) {
        trove__event__init (&evs [i]);
        trove__attr__init (&attrs [i]);
        attrs [i].key = "run";
        attrs [i].value_case = TROVE__ATTR__VALUE_S;
        attrs [i].s = (char *) run;
        attr_ptrs [i] = &attrs [i];
        ids [i] = trove_strdupf ("%s/%s", run, users [i]->user);
        evs [i].source = TROVE_RECONCILER_SOURCE;
        evs [i].id = ids [i] ? ids [i] : "";
        evs [i].user = users [i]->user;
        evs [i].type = TROVE_RECONCILE_TYPE;
        evs [i].ts_ms = now;
        evs [i].n_attrs = 1;
        evs [i].attrs = &attr_ptrs [i];
        ptrs [i] = &evs [i];
        parts [i] = p;
    }
    Trove__ShardBatch batch = TROVE__SHARD_BATCH__INIT;
    batch.batch_id = ++self->batch_id;
    batch.req_id = trove_client_req_id ();  //  kept across resends: "accepted" again
    batch.n_events = n;
    batch.events = ptrs;
    batch.n_partitions = n;
    batch.partitions = parts;
    batch.received_us = trove_now_us ();
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_BATCH;
    msg.batch = &batch;
    for (int attempt = 0; attempt < 30 && !zsys_interrupted; attempt++) {
        if (trove_msg_send (self->events_sock, NULL, 0, &msg, 0))
            continue;
        int64_t deadline = trove_mono_us () + REPAIR_TIMEOUT_MS * 1000LL;
        bool answered = false;
        while (!answered && trove_mono_us () < deadline && !zsys_interrupted) {
            zmq_pollitem_t item = {zsock_resolve (self->events_sock), 0, ZMQ_POLLIN, 0};
            if (zmq_poll (&item, 1, 200) <= 0)
                continue;
            zframe_t *frame = zframe_recv (self->events_sock);
            const char *reason;
            Trove__Msg *in = frame ? trove_msg_decode (zframe_data (frame), zframe_size (frame),
                                                       trove_cfg_limits (self->cfg)->max_frame, &reason)
                                   : NULL;
            zframe_destroy (&frame);
            if (in && in->body_case == TROVE__MSG__BODY_BATCH_REPLY
                && in->batch_reply->batch_id == batch.batch_id && in->batch_reply->n_results == n) {
                answered = true;
                size_t retry = 0;
                for (size_t i = 0; i < n; i++) {
                    Trove__Status s = in->batch_reply->results [i]->status;
                    if (s == TROVE__STATUS__ACCEPTED || s == TROVE__STATUS__DUPLICATE)
                        done++;
                    else if (s == TROVE__STATUS__RETRY)
                        retry++;
                    else
                        trove_log ('W', "repair of %s refused: %s", users [i]->user,
                                   in->batch_reply->results [i]->reason);
                }
                if (retry) {
                    answered = false;  //  the scorer was busy: send the whole batch again
                    done = 0;
                    deadline = 0;
                }
            }
            trove_msg_free (&in);
        }
        if (answered)
            break;
    }
out:
    for (size_t i = 0; ids && i < n; i++)
        free (ids [i]);
    free (ids);
    free (parts);
    free (attr_ptrs);
    free (attrs);
    free (ptrs);
    free (evs);
    return done;
}

static int
s_by_user (const void *a, const void *b)
{
    return strcmp ((*(s_user_t *const *) a)->user, (*(s_user_t *const *) b)->user);
}

//  One run over every partition (or one user's). Returns the report (JSON
//  text, caller frees), or NULL.
static char *
s_run (s_rec_t *self, const char *only)
{
    static unsigned counter;
    char run [64];
    snprintf (run, sizeof run, "%s-%lld-%u", self->name, (long long) trove_now_ms (), ++counter);
    int64_t t0 = trove_mono_us ();
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_dir (trove_cfg_rules_dir (self->cfg), &err);
    if (!rules) {
        trove_log ('E', "run %s: rules: %s", run, err);
        free (err);
        return NULL;
    }
    s_stats_t st = {0};
    uint64_t gaps_before = self->gaps;
    crypto_generichash_state shard_digest;
    crypto_generichash_init (&shard_digest, NULL, 0, 16);
    uint32_t partitions = trove_cfg_partitions (self->cfg);
    uint32_t only_p = only ? trove_hash_partition (only, strlen (only), partitions) : 0;
    bool failed = false;
    self->behind = false;  //  judged again by this run's pulls (and said once per run)
    for (uint32_t p = 0; p < partitions && !failed && !zsys_interrupted; p++) {
        if (trove_cfg_shard_of (self->cfg, p) != self->shard || (only && p != only_p))
            continue;
        if (s_pull_to_head (self, p)) {
            failed = true;
            break;
        }
        zhashx_t *users = s_load_partition (self, p, only, &st.events);
        size_t n = users ? zhashx_size (users) : 0, k = 0;
        s_user_t **list = calloc (n ? n : 1, sizeof *list);
        zlistx_t *mismatched = zlistx_new (), *still = zlistx_new ();
        if (!users || !list || !mismatched || !still) {
            failed = true;
            goto next;
        }
        for (s_user_t *u = zhashx_first (users); u; u = zhashx_next (users))
            list [k++] = u;
        qsort (list, n, sizeof *list, s_by_user);
        for (size_t i = 0; i < n && !failed; i++)
            failed = s_derive (rules, list [i]) != 0;
        st.users += n;
        if (failed || s_compare (self, list, n, mismatched, &st, true)) {
            failed = true;
            goto next;
        }
        if (zlistx_size (mismatched)) {
            //  Events may have arrived between the pull and the digests:
            //  pull again, re-derive those users, compare again.
            zhashx_t *fresh = NULL;
            uint64_t ignored = 0;
            if (s_pull_to_head (self, p) == 0 && (fresh = s_load_partition (self, p, only, &ignored))) {
                size_t m = 0;
                s_user_t **again = calloc (zlistx_size (mismatched), sizeof *again);
                for (s_user_t *u = zlistx_first (mismatched); u && again; u = zlistx_next (mismatched)) {
                    s_user_t *f = zhashx_lookup (fresh, u->user);
                    if (f && s_derive (rules, f) == 0)
                        again [m++] = f;
                }
                bool moved = false;
                if (again && s_compare (self, again, m, still, &st, false) == 0 && zlistx_size (still)) {
                    //  Repair only at a quiet cut: if the partition moved
                    //  since the re-check, the digests may have seen events
                    //  this derivation did not; the next run will tell.
                    bool more = false;
                    moved = s_pull (self, p, &more, NULL) != 0 || more;
                    if (moved)
                        st.deferred += zlistx_size (still);
                }
                if (again && !moved && zlistx_size (still)) {
                    st.mismatched += zlistx_size (still);
                    s_user_t **fix = calloc (zlistx_size (still) ? zlistx_size (still) : 1, sizeof *fix);
                    size_t nf = 0;
                    for (s_user_t *u = zlistx_first (still); u && fix; u = zlistx_next (still)) {
                        s_classify (self, u, &st);
                        fix [nf++] = u;
                    }
                    for (size_t at = 0; fix && at < nf; at += 200) {
                        size_t chunk = nf - at < 200 ? nf - at : 200;
                        st.repairs += s_repair (self, run, p, fix + at, chunk);
                    }
                    //  Verify: the repaired users now agree.
                    zlistx_t *left = zlistx_new ();
                    if (fix && left && s_compare (self, fix, nf, left, &st, false) == 0) {
                        st.verified += nf - zlistx_size (left);
                        st.unrepaired += zlistx_size (left);
                    }
                    zlistx_destroy (&left);
                    free (fix);
                }
                free (again);
                zhashx_destroy (&fresh);
            }
        }
        for (size_t i = 0; i < n; i++) {
            crypto_generichash_update (&shard_digest, (const unsigned char *) list [i]->user,
                                       strlen (list [i]->user));
            crypto_generichash_update (&shard_digest, (const unsigned char *) list [i]->digest,
                                       TROVE_COIN_ID_LEN);
        }
        MDB_txn *txn;
        if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn) == 0) {
            st.last_pseq_sum += s_cursor (self, txn, p) - 1;
            mdb_txn_abort (txn);
        }
    next:
        zlistx_destroy (&mismatched);
        zlistx_destroy (&still);
        free (list);
        zhashx_destroy (&users);
    }
    trove_rules_destroy (&rules);
    if (failed) {
        trove_log ('W', "run %s failed (the scorer did not answer?)", run);
        return NULL;
    }
    unsigned char d [16];
    char digest [33];
    crypto_generichash_final (&shard_digest, d, sizeof d);
    trove_hex (d, sizeof d, digest);
    int64_t ms = (trove_mono_us () - t0) / 1000;
    char started [40];
    trove_format_rfc3339 (trove_now_ms () - ms, started, sizeof started);
    json_t *report = json_pack (
        "{s:s,s:s,s:s,s:s*,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:I,s:s,s:f}",
        "run", run, "shard", self->name, "started", started, "user", only, "events_scanned",
        (json_int_t) st.events, "users_checked", (json_int_t) st.users, "digests_compared",
        (json_int_t) st.digests, "mismatched_users", (json_int_t) st.mismatched, "discrepancies", "missing",
        (json_int_t) st.missing, "extra", (json_int_t) st.extra, "amended", (json_int_t) st.amended, "users",
        (json_int_t) st.mismatched, "repairs_applied", (json_int_t) st.repairs, "repairs_verified",
        (json_int_t) st.verified, "unrepaired", (json_int_t) st.unrepaired, "deferred",
        (json_int_t) st.deferred, "integrity", "sequence_gaps", (json_int_t) (self->gaps - gaps_before),
        "provenance_missing", (json_int_t) st.provenance_missing, "balance_not_sum",
        (json_int_t) st.balance_mismatch, "log_position", (json_int_t) st.last_pseq_sum, "shard_digest",
        digest, "duration_s", ms / 1000.0);
    char *text = report ? json_dumps (report, JSON_COMPACT) : NULL;
    json_decref (report);
    if (text) {
        char path [4096];
        snprintf (path, sizeof path, "%s/runs", self->replica_dir);
        trove_mkdir_p (path, 0750);
        snprintf (path, sizeof path, "%s/runs/%s.json", self->replica_dir, run);
        FILE *f = fopen (path, "w");
        if (f) {
            fprintf (f, "%s\n", text);
            fclose (f);
        }
        snprintf (path, sizeof path, "%s/runs/last", self->replica_dir);
        f = fopen (path, "w");
        if (f) {
            fprintf (f, "%s\n", run);
            fclose (f);
        }
        trove_log ('I', "run %s: %llu events, %llu users, %llu mismatched, %llu repaired (%.1f s)", run,
                   (unsigned long long) st.events, (unsigned long long) st.users,
                   (unsigned long long) st.mismatched, (unsigned long long) st.repairs, ms / 1000.0);
    }
    return text;
}

//  --------------------------------------------------------------------------
//  Control: {kind "reconcile", user?} runs now and answers with the report;
//  {kind "report", cursor RUN or ""} answers a stored report; "status".

static void
s_control (s_rec_t *self)
{
    zframe_t *routing_id, *body = NULL;
    const char *reason;
    Trove__Msg *msg = trove_msg_recv_from (self->control, trove_cfg_limits (self->cfg)->max_frame,
                                           &routing_id, &reason, NULL, &body);
    if (!routing_id) {
        trove_msg_free (&msg);
        return;
    }
    trove_peer_t peer;
    trove_curve_peer (body, &peer);
    zframe_destroy (&body);
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    Trove__StatusInfo status = TROVE__STATUS_INFO__INIT;
    char *report = NULL;
    char refusal [200];
    if (!msg || msg->body_case != TROVE__MSG__BODY_QUERY)
        reply.error = (char *) (reason ? reason : "not a query");
    else if (strcmp (msg->query->kind, "reconcile") == 0
             && !trove_curve_allows (&peer, TROVE_ROLE_OPERATOR)) {
        //  A run writes repairs: the operator's to ask (docs/security.md, "Roles").
        reply.req_id = msg->query->req_id;
        snprintf (refusal, sizeof refusal,
                  "%s: a reconcile run needs role operator; certificate '%s' has role %s",
                  trove_strerror (TROVE_E_NOT_ALLOWED), peer.name, trove_curve_role_name (peer.role));
        reply.error = refusal;
        static trove_lograte_t refused_log;  //  a refused client may insist
        trove_log_limited (&refused_log, 10000000, 'W',
                           "refused a reconcile request from certificate '%s' (role %s)", peer.name,
                           trove_curve_role_name (peer.role));
    }
    else {
        const Trove__Query *q = msg->query;
        reply.req_id = q->req_id;
        if (strcmp (q->kind, "reconcile") == 0) {
            report = s_run (self, *q->user ? q->user : NULL);
            if (!report)
                reply.error = self->behind
                                ? "run refused: the scorer's ledger ends before this replica (lost or "
                                  "replaced ledger; see the reconciler's log)"
                                : "run failed (is the scorer up?)";
        }
        else if (strcmp (q->kind, "report") == 0) {
            char path [4096], run [256] = "";
            if (*q->cursor)
                snprintf (run, sizeof run, "%s", q->cursor);
            else {
                snprintf (path, sizeof path, "%s/runs/last", self->replica_dir);
                FILE *f = fopen (path, "r");
                if (f) {
                    if (!fgets (run, sizeof run, f))
                        run [0] = 0;
                    fclose (f);
                }
                run [strcspn (run, "\n")] = 0;
            }
            if (!*run || strchr (run, '/'))
                reply.error = "no such run";
            else {
                snprintf (path, sizeof path, "%s/runs/%s.json", self->replica_dir, run);
                size_t size;
                report = trove_read_file (path, &size);
                if (!report)
                    reply.error = "no such run";
            }
        }
        else if (strcmp (q->kind, "status") == 0) {
            trove_daemon_status (self->daemon, &status);
            status.events = self->pulled;
            reply.status = &status;
        }
        else
            reply.error = (char *) trove_strerror (TROVE_E_UNKNOWN_KIND);
    }
    reply.report = report ? report : "";
    Trove__Msg out = TROVE__MSG__INIT;
    out.body_case = TROVE__MSG__BODY_QUERY_REPLY;
    out.query_reply = &reply;
    trove_msg_send (self->control, zframe_data (routing_id), zframe_size (routing_id), &out, ZMQ_DONTWAIT);
    free (report);
    trove_msg_free (&msg);
    zframe_destroy (&routing_id);
}

static int
s_daemon_run (trove_daemon_t *daemon)
{
    //  Files this process creates (the replica, run reports) are the service
    //  user's only (trove_daemon: umask 077).
    int rc = 1;
    s_rec_t self = {0};
    self.daemon = daemon;
    self.cfg = trove_daemon_cfg (daemon);
    self.shard = trove_daemon_index (daemon);
    const char *shard_name = self.name = trove_daemon_name (daemon);
    self.replica_dir = strdup (trove_cfg_shard_replica (self.cfg, self.shard));
    int mrc;
    MDB_txn *txn;
    if (!self.replica_dir || trove_mkdir_p (self.replica_dir, 0750) || (mrc = mdb_env_create (&self.env))
        || (mrc = mdb_env_set_maxdbs (self.env, 4))
        || (mrc = mdb_env_set_mapsize (self.env, trove_cfg_map_size (self.cfg)))
        || (mrc = mdb_env_open (self.env, self.replica_dir, 0, 0640)) || trove_fsync_dir (self.replica_dir)) {
        trove_log ('E', "cannot open the replica in %s", self.replica_dir ? self.replica_dir : "?");
        goto done;
    }
    int stale;
    mdb_reader_check (self.env, &stale);
    if ((mrc = mdb_txn_begin (self.env, NULL, 0, &txn))
        || (mrc = mdb_dbi_open (txn, "events", MDB_CREATE, &self.events))
        || (mrc = mdb_dbi_open (txn, "cursors", MDB_CREATE, &self.cursors)) || (mrc = mdb_txn_commit (txn))) {
        trove_log ('E', "cannot open the replica's tables: %s", mdb_strerror (mrc));
        goto done;
    }
    //  No metrics here: refused peers are logged only.
    if (trove_daemon_secure (daemon))
        goto done;
    size_t max_frame = trove_cfg_limits (self.cfg)->max_frame;
    //  Bind before connecting: a control address this host cannot bind
    //  stops the reconciler before it sends a packet anywhere.
    const char *control = trove_cfg_shard_reconcile (self.cfg, self.shard);
    if (control && !(self.control = trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK, control, max_frame)))
        goto done;
    self.events_sock = trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_LINK,
                                             trove_cfg_shard_events (self.cfg, self.shard), max_frame);
    if (!self.events_sock)
        goto done;
    long every = trove_cfg_shard_reconcile_every (self.cfg, self.shard);
    trove_log ('I', "reconciler %s ready: replica %s, control %s, a run every %ld s", shard_name,
               self.replica_dir, control ? control : "(none)", every);
    int64_t next_run = every > 0 ? trove_mono_us () + every * 1000000LL : INT64_MAX;
    uint32_t partitions = trove_cfg_partitions (self.cfg);
    int idle_ms = IDLE_MS;
    while (!zsys_interrupted) {
        //  One pull round over the shard's partitions.
        int got = 0;
        for (uint32_t p = 0; p < partitions && !zsys_interrupted; p++) {
            if (trove_cfg_shard_of (self.cfg, p) != self.shard)
                continue;
            bool more;
            int n = s_pull (&self, p, &more, NULL);
            got += n > 0 ? n : 0;
            if (self.control && (zsock_events (self.control) & ZMQ_POLLIN))
                s_control (&self);
        }
        if (trove_mono_us () >= next_run) {
            char *report = s_run (&self, NULL);
            free (report);
            next_run = trove_mono_us () + every * 1000000LL;
        }
        if (got == 0) {
            zmq_pollitem_t item = {self.control ? zsock_resolve (self.control) : NULL, 0, ZMQ_POLLIN, 0};
            if (self.control)
                zmq_poll (&item, 1, idle_ms);
            else
                zclock_sleep (idle_ms);
            idle_ms = idle_ms * 2 > IDLE_MAX_MS ? IDLE_MAX_MS : idle_ms * 2;
            if (self.control && (zsock_events (self.control) & ZMQ_POLLIN)) {
                s_control (&self);
                idle_ms = IDLE_MS;
            }
        }
        else
            idle_ms = IDLE_MS;
    }
    trove_log ('I', "reconciler %s stopping", shard_name);
    rc = 0;
done:
    zsock_destroy (&self.control);
    zsock_destroy (&self.events_sock);
    if (self.env)
        mdb_env_close (self.env);
    free (self.replica_dir);
    return rc;
}

static const trove_daemon_spec_t s_spec = {
    .role = "reconciler",
    .name_option = "--shard",
    .usage = "usage: trove-reconciler --config FILE --shard NAME\n",
};

int
main (int argc, char **argv)
{
    return trove_daemon_main (&s_spec, argc, argv, s_daemon_run);
}
