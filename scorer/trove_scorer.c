/*  trove-scorer - one shard of the ledger. The only writer of its LMDB
    environment.

    Loop: wait on the events ROUTER (ingestor batches) and the query ROUTER.
    When batches arrive, take every batch that is already queued (up to a
    bound) into ONE write transaction: dedup, event log, rules, coins,
    balances, award log. Commit; only then answer each ingestor and publish
    the awards. A crash before the commit leaves nothing; a crash after it
    loses only answers, and the ingestor's resend is answered from the dedup
    index. See docs/protocol.md, "ingestor -> scorer".

    Usage: trove-scorer --config FILE --shard NAME */
#include "trove_cfg.h"
#include "trove_mutant.h"
#include "trove_curve.h"
#include "trove_daemon.h"
#include "trove_engine.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_hash.h"
#include "trove_ledger.h"
#include "trove_metrics.h"
#include "trove_msg.h"
#include "trove_preview.h"
#include "trove_query_table.h"
#include "trove_rules.h"
#include "trove_sock.h"
#include "trove_source.h"
#include "trove_util.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Group-commit bounds: how much one transaction may take.
#define BATCH_MAX_MSGS 1024
#define BATCH_MAX_EVENTS 32768
#define HEARTBEAT_MS 1000

typedef struct {
    zframe_t *routing_id;    //  the ingestor's DEALER
    uint64_t batch_id;       //  echoed in the reply
    int64_t received_us;     //  ingestor's receipt (wall clock)
    Trove__Result *results;  //  one per event
    Trove__Result **result_ptrs;
    size_t nresults;
    bool claims;  //  a batch of claims, not events
} s_reply_t;

typedef struct {
    trove_cfg_t *cfg;          //  cluster config
    size_t shard;              //  our shard index
    const char *name;          //  our shard name
    trove_rules_t *rules;      //  hunt rules
    trove_ledger_t *ledger;    //  our LMDB state
    trove_sources_t *sources;  //  per-source rules (types, backdating), re-checked here
    zsock_t *events;           //  ROUTER: ingestor batches
    zsock_t *query;            //  ROUTER: queries
    zsock_t *pub;              //  PUB -> broker: awards, heartbeats
    uint64_t incarnation;      //  random per start: lets peers see a restart
    int64_t started_ms;
    int64_t next_heartbeat_us;
    int64_t next_gauges_us;  //  next gauge update
    s_reply_t *replies;      //  replies of the current batch
    size_t nreplies;
    char last_error [256];  //  shown by status
    zlistx_t *parked;       //  queries waiting for the tables to catch up
    struct {
        trove_metrics_t *registry;
        trove_counter_t *events [5];           //  by Trove__Status of the answer
        trove_counter_t *claims [5];           //  claims, by answer
        trove_histogram_t *batch_events;       //  events per log commit
        trove_histogram_t *commit_seconds;     //  log commit (fsync) time
        trove_histogram_t *to_commit_seconds;  //  ingestor receipt to log commit
        trove_counter_t *coins;                //  coins minted
        trove_counter_t *revoked;              //  coins revoked (compensating entries)
        trove_counter_t *failed_batches;       //  batches answered RETRY (storage)
        trove_gauge_t *backlog;                //  committed, not in the tables yet
        trove_gauge_t *last_aseq;
        zhashx_t *queries;            //  kind -> counter
        zhashx_t *minted;             //  "hunt\x1frule" -> counter
        trove_gauge_t *tables_bytes;  //  LMDB pages in use: tables, log
        trove_gauge_t *log_bytes;
        trove_gauge_t *map_bytes;          //  configured map size
        trove_histogram_t *query_seconds;  //  arrival to answer, waits included
        trove_counter_t *rederives;        //  events placed by re-deriving their user
        trove_counter_t *rederive_events;  //  stored events those re-derives read
        trove_counter_t *refused;          //  requests refused: the peer's role may not
        trove_lograte_t refused_log;       //  their log lines
        trove_lograte_t bad_log;           //  bad messages' log lines
        trove_counter_t *repairs;          //  users a reconciler request repaired
        trove_counter_t *repair_entries;   //  entries those repairs wrote
        trove_ledger_counts_t seen;        //  counts already added
    } m;                                   //  Prometheus metrics
} s_scorer_t;

//  A request refused for the sender's role: counted, logged at most once per
//  10 s (a hostile client must not fill the disk).
static void
s_refused (s_scorer_t *self, const char *what, const char *kind, const trove_peer_t *peer)
{
    trove_counter_inc (self->m.refused);
    trove_log_limited (&self->m.refused_log, 10000000, 'W', "refused a %s %s from certificate '%s' (role %s)",
                       what, kind, peer->name, trove_curve_role_name (peer->role));
}

//  A query that must see everything committed when it arrived.
typedef struct {
    zframe_t *routing_id;
    Trove__Msg *msg;
    uint64_t target;  //  the log position its answer must reflect
    int64_t arrived_us;
} s_parked_t;

#define MAX_BACKLOG 200000  //  committed events not yet applied: stop taking more

static void
s_set_error (s_scorer_t *self, const char *text)
{
    snprintf (self->last_error, sizeof self->last_error, "%s", text);
}

//  Gauges, at most once a second: from the main loop on a timer of their own
//  (the heartbeat is postponed while awards flow, they must not be).
static void
s_update_gauges (s_scorer_t *self)
{
    int64_t now = trove_mono_us ();
    if (now < self->next_gauges_us)
        return;
    self->next_gauges_us = now + 1000000;
    trove_gauge_set_int (self->m.last_aseq, (int64_t) trove_ledger_last_aseq (self->ledger));
    trove_gauge_set_int (self->m.backlog, (int64_t) trove_ledger_backlog (self->ledger));
    uint64_t tables, log;
    trove_ledger_sizes (self->ledger, &tables, &log);
    trove_gauge_set_int (self->m.tables_bytes, (int64_t) tables);
    trove_gauge_set_int (self->m.log_bytes, (int64_t) log);
    trove_ledger_counts_t now_counts;
    trove_ledger_counts (self->ledger, &now_counts);
    trove_counter_add (self->m.rederives, now_counts.rederives - self->m.seen.rederives);
    trove_counter_add (self->m.rederive_events, now_counts.rederive_events - self->m.seen.rederive_events);
    trove_counter_add (self->m.repairs, now_counts.repairs - self->m.seen.repairs);
    trove_counter_add (self->m.repair_entries, now_counts.repair_entries - self->m.seen.repair_entries);
    self->m.seen = now_counts;
}

static void
s_publish_heartbeat (s_scorer_t *self)
{
    Trove__Heartbeat hb = TROVE__HEARTBEAT__INIT;
    hb.role = "scorer";
    hb.shard = (uint32_t) self->shard;
    hb.last_aseq = trove_ledger_last_aseq (self->ledger);
    hb.incarnation = self->incarnation;
    hb.name = (char *) self->name;
    hb.started_ms = self->started_ms;
    hb.lag = trove_ledger_backlog (self->ledger);
    hb.last_error = self->last_error;
    //  PUB never blocks; a lost heartbeat is replaced by the next one.
    trove_msg_send_heartbeat (self->pub, &hb);
    self->next_heartbeat_us = trove_mono_us () + HEARTBEAT_MS * 1000;
}

//  How far the ingestor's receipt time of a batch may be from our clock:
//  clocks of one cluster agree within seconds, and an ingestor resends a
//  batch for seconds, not hours.
#define RECEIVED_SKEW_US (300LL * 1000000)
#define RECEIVED_AGE_US (3600LL * 1000000)

//  Validate one event the way the ingestor did, plus what only we can check:
//  that it belongs to this shard. Never trust the network: everything the
//  ledger depends on is checked where the ledger is written (a client that
//  reaches this socket directly gets no wider door than the ingestor's).
static const char *
s_check (s_scorer_t *self, const Trove__Event *ev, uint32_t partition, bool claim, int64_t received_us,
         char *detail, size_t size)
{
    //  The time windows are checked at the ingestor's receipt time, carried
    //  in the batch, as the ingestor checked them: a resend gets the same
    //  answer. That time must itself be plausible for our clock.
    const char *reason = NULL;
    int64_t now_us = trove_now_us ();
    if (strcmp (ev->source, TROVE_RECONCILER_SOURCE) == 0) {
        //  Not a producer's source: only a reconciler's re-derive request,
        //  which reaches the scorer directly (ingestors refuse the source).
        if (strcmp (ev->type, TROVE_RECONCILE_TYPE) || !*ev->id || !*ev->user) {
            snprintf (detail, size, "source '%s' only sends type '%s'", TROVE_RECONCILER_SOURCE,
                      TROVE_RECONCILE_TYPE);
            return trove_strerror (TROVE_E_BAD_RECONCILE);
        }
    }
    else if (received_us > now_us + RECEIVED_SKEW_US || received_us < now_us - RECEIVED_AGE_US) {
        snprintf (detail, size,
                  "the batch says the ingestor received it at %lld us, too far from this scorer's clock",
                  (long long) received_us);
        return trove_strerror (TROVE_E_BAD_TS);
    }
    else if ((reason = trove_event_check (ev, self->cfg, received_us / 1000, detail, size)))
        return reason;
    else if ((reason = trove_sources_check (self->sources, trove_cfg_source_index (self->cfg, ev->source), ev,
                                            received_us / 1000, detail, size)))
        return reason;
    //  An event comes to its user's shard; a claim to the shard of its
    //  (source, id).
    uint32_t expect =
        claim ? trove_hash_claim_partition (ev->source, ev->id, trove_cfg_partitions (self->cfg))
              : trove_hash_partition (ev->user, strlen (ev->user), trove_cfg_partitions (self->cfg));
    if (partition != expect || trove_cfg_shard_of (self->cfg, partition) != self->shard) {
        snprintf (detail, size, "%s is partition %u, not owned by shard %s",
                  claim ? "this (source, id)" : "the user", expect, self->name);
        return trove_strerror (TROVE_E_WRONG_SHARD);
    }
    return NULL;
}

static void
s_replies_free (s_scorer_t *self)
{
    for (size_t i = 0; i < self->nreplies; i++) {
        zframe_destroy (&self->replies [i].routing_id);
        //  Only rejections carry a detail of their own (strdup'ed).
        for (size_t k = 0; k < self->replies [i].nresults; k++)
            if (self->replies [i].results [k].status == TROVE__STATUS__REJECTED)
                free (self->replies [i].results [k].detail);
        free (self->replies [i].results);
        free (self->replies [i].result_ptrs);
    }
    self->nreplies = 0;
}

//  Turn every answer of this batch into RETRY: nothing of it was committed.
static void
s_replies_retry (s_scorer_t *self, const char *reason)
{
    for (size_t i = 0; i < self->nreplies; i++)
        for (size_t k = 0; k < self->replies [i].nresults; k++) {
            Trove__Result *r = &self->replies [i].results [k];
            if (r->status != TROVE__STATUS__REJECTED) {
                r->status = TROVE__STATUS__RETRY;
                r->reason = (char *) reason;
            }
        }
}

//  Take one queued ingestor message into the open transaction. Returns the
//  number of events it carried, 0 when nothing was queued, -1 after a storage
//  error (the transaction is then doomed).
static int
s_take_one (s_scorer_t *self, bool *storage_failed)
{
    if (!(zsock_events (self->events) & ZMQ_POLLIN))
        return 0;
    zframe_t *routing_id, *body = NULL;
    const char *reason;
    Trove__Msg *msg = trove_msg_recv_from (self->events, trove_cfg_limits (self->cfg)->max_frame, &routing_id,
                                           &reason, NULL, &body);
    if (!routing_id && !reason)
        return 0;
    //  Only the cluster's own processes (ingestors, reconcilers) write here.
    trove_peer_t peer;
    trove_curve_peer (body, &peer);
    zframe_destroy (&body);
    bool allowed = trove_curve_allows (&peer, TROVE_ROLE_DAEMON);
    int taken = 1;  //  count a bad message as progress so the loop moves on
    if (!msg || msg->body_case != TROVE__MSG__BODY_BATCH
        || msg->batch->n_partitions != msg->batch->n_events) {
        trove_log_limited (&self->m.bad_log, 10000000, 'W', "dropped a bad message on the events socket: %s",
                           msg ? "not a well-formed batch" : reason);
        s_set_error (self, "bad message on events socket");
        goto done;
    }
    Trove__ShardBatch *batch = msg->batch;
    s_reply_t *reply = &self->replies [self->nreplies];
    memset (reply, 0, sizeof *reply);
    reply->batch_id = batch->batch_id;
    reply->received_us = batch->received_us;
    reply->claims = batch->claims;
    reply->results = calloc (batch->n_events ? batch->n_events : 1, sizeof *reply->results);
    reply->result_ptrs = calloc (batch->n_events ? batch->n_events : 1, sizeof *reply->result_ptrs);
    if (!reply->results || !reply->result_ptrs) {
        free (reply->results);
        free (reply->result_ptrs);
        trove_log ('E', "out of memory; batch dropped (the ingestor will resend)");
        goto done;
    }
    reply->routing_id = routing_id;
    routing_id = NULL;
    reply->nresults = batch->n_events;
    self->nreplies++;
    for (size_t i = 0; i < batch->n_events; i++) {
        Trove__Result *r = &reply->results [i];
        trove__result__init (r);
        reply->result_ptrs [i] = r;
        r->reason = "";
        if (!allowed) {
            if (i == 0)
                s_refused (self, "batch", "", &peer);
            r->status = TROVE__STATUS__REJECTED;
            r->reason = (char *) trove_strerror (TROVE_E_NOT_ALLOWED);
            char text [200];
            snprintf (text, sizeof text,
                      "certificate '%s' (role %s) may not write to a scorer: role daemon only", peer.name,
                      trove_curve_role_name (peer.role));
            r->detail = strdup (text);
            continue;
        }
        if (*storage_failed) {
            r->status = TROVE__STATUS__RETRY;
            continue;
        }
        char detail [360];
        const Trove__Event *ev = batch->events [i];
        const char *bad = s_check (self, ev, batch->partitions [i], batch->claims, batch->received_us, detail,
                                   sizeof detail);
        if (bad) {
            r->status = TROVE__STATUS__REJECTED;
            r->reason = (char *) bad;
            r->detail = strdup (detail);
            continue;
        }
        //  The identity of (source, id), cluster-wide: this shard keeps the
        //  claims of its partitions of hash(source NUL id); an event whose
        //  claim is kept elsewhere was claimed there by its ingestor first.
        Trove__Status status;
        bool claim_here =
            batch->claims
            || (strcmp (ev->source, TROVE_RECONCILER_SOURCE)
                && trove_cfg_shard_of (self->cfg, trove_hash_claim_partition (
                                                      ev->source, ev->id, trove_cfg_partitions (self->cfg)))
                       == self->shard);
        if (claim_here) {
            if (trove_ledger_claim (self->ledger, ev, &status, detail, sizeof detail)) {
                *storage_failed = true;
                r->status = TROVE__STATUS__RETRY;
                continue;
            }
            if (status == TROVE__STATUS__REJECTED) {
                r->status = status;
                r->reason = (char *) trove_strerror (TROVE_E_ID_CONFLICT);
                r->detail = strdup (detail);
                continue;
            }
            if (batch->claims) {
                r->status = status;  //  claimed: the ingestor forwards the event to its user's shard
                continue;
            }
        }
        if (trove_ledger_apply (self->ledger, batch->events [i], batch->partitions [i], batch->req_id,
                                batch->received_us, self->rules, &status)) {
            *storage_failed = true;
            r->status = TROVE__STATUS__RETRY;
            continue;
        }
        r->status = status;
        if (status == TROVE__STATUS__REJECTED) {
            r->reason = (char *) trove_ledger_reject_reason (self->ledger);
            char text [160];
            snprintf (text, sizeof text,
                      "placing this event exactly needs more than limits/max_user_history = %zu of the "
                      "user's stored events",
                      trove_cfg_limits (self->cfg)->max_user_history);
            r->detail = strdup (text);
        }
    }
    taken = (int) (batch->n_events ? batch->n_events : 1);
done:
    trove_msg_free (&msg);
    zframe_destroy (&routing_id);
    return taken;
}

static void
s_send_replies (s_scorer_t *self)
{
    for (size_t i = 0; i < self->nreplies; i++) {
        s_reply_t *reply = &self->replies [i];
        trove_counter_t **by_status = reply->claims ? self->m.claims : self->m.events;
        for (size_t k = 0; k < reply->nresults; k++)
            trove_counter_inc (by_status [reply->results [k].status < 5 ? reply->results [k].status : 0]);
        Trove__ShardBatchReply body = TROVE__SHARD_BATCH_REPLY__INIT;
        body.batch_id = reply->batch_id;
        body.n_results = reply->nresults;
        body.results = reply->result_ptrs;
        body.incarnation = self->incarnation;
        Trove__Msg msg = TROVE__MSG__INIT;
        msg.body_case = TROVE__MSG__BODY_BATCH_REPLY;
        msg.batch_reply = &body;
        //  If the ingestor is gone the reply is lost; it (or the producer)
        //  resends and the dedup index answers.
        if (trove_msg_send (self->events, zframe_data (reply->routing_id), zframe_size (reply->routing_id),
                            &msg, ZMQ_DONTWAIT))
            trove_log ('D', "reply to ingestor not sent: %s", zmq_strerror (zmq_errno ()));
    }
    s_replies_free (self);
}

//  Coins minted per hunt and rule: bounded by the rules files.
static trove_counter_t *
s_minted_counter (s_scorer_t *self, const char *hunt, const char *rule)
{
    char key [160];
    snprintf (key, sizeof key, "%s\x1f%s", hunt, rule);
    trove_counter_t *c = zhashx_lookup (self->m.minted, key);
    if (!c) {
        static const char *const labels [] = {"hunt", "rule", NULL};
        const char *values [] = {hunt, rule, NULL};
        c = trove_metrics_counter (self->m.registry, "trove_scorer_rule_coins_total",
                                   "Coins minted, by hunt and rule.", labels, values);
        if (c)
            zhashx_insert (self->m.minted, key, c);
    }
    return c;
}

static void
s_process_batches (s_scorer_t *self)
{
    bool storage_failed = false;
    if (trove_ledger_begin (self->ledger)) {
        trove_log ('E', "cannot begin a transaction: %s", trove_ledger_error (self->ledger));
        s_set_error (self, trove_ledger_error (self->ledger));
        storage_failed = true;
    }
    size_t events = 0;
    while (self->nreplies < BATCH_MAX_MSGS && events < BATCH_MAX_EVENTS) {
        int n = s_take_one (self, &storage_failed);
        if (n <= 0)
            break;
        events += (size_t) n;
    }
    int64_t commit_start_us = trove_mono_us ();
    //  TEST-ONLY MUTANT (trove_mutant.h): answer before the commit, the bug
    //  the chaos suite must catch (tests/integration/test_chaos_mutant.sh).
    if (TROVE_MUTANT (ack_before_commit) && !storage_failed) {
        s_send_replies (self);
        //  A slow disk: widen the window in which an acknowledged batch is
        //  not yet committed, so that the chaos nemesis reliably hits it.
        usleep (50000);
    }
    if (storage_failed) {
        trove_counter_inc (self->m.failed_batches);
        const char *why =
            trove_strerror (trove_ledger_full (self->ledger) ? TROVE_E_STORAGE_FULL : TROVE_E_STORAGE_ERROR);
        trove_log ('E', "batch of %zu events not committed (%s): %s", events, why,
                   trove_ledger_error (self->ledger));
        s_set_error (self, trove_ledger_error (self->ledger));
        trove_ledger_abort (self->ledger);
        s_replies_retry (self, why);
    }
    else if (trove_ledger_commit (self->ledger)) {
        trove_counter_inc (self->m.failed_batches);
        const char *why =
            trove_strerror (trove_ledger_full (self->ledger) ? TROVE_E_STORAGE_FULL : TROVE_E_STORAGE_ERROR);
        trove_log ('E', "commit failed (%s): %s", why, trove_ledger_error (self->ledger));
        s_set_error (self, trove_ledger_error (self->ledger));
        s_replies_retry (self, why);
    }
    else {
        trove_histogram_observe (self->m.commit_seconds, (trove_mono_us () - commit_start_us) / 1e6);
        trove_histogram_observe (self->m.batch_events, (double) events);
        int64_t now_us = trove_now_us ();
        for (size_t i = 0; i < self->nreplies; i++)
            if (self->replies [i].received_us > 0)
                trove_histogram_observe (self->m.to_commit_seconds,
                                         (now_us - self->replies [i].received_us) / 1e6);
    }
    //  Commit, then acknowledge: the answers go out only now.
    s_send_replies (self);
    if (!storage_failed) {
        void **frames;
        size_t *sizes;
        size_t n = trove_ledger_awards_ready (self->ledger, &frames, &sizes);
        for (size_t i = 0; i < n; i++)
            zmq_send (zsock_resolve (self->pub), frames [i], sizes [i], ZMQ_DONTWAIT);
        for (size_t i = 0; i < n; i++) {
            if (trove_ledger_award_revoked (self->ledger, i)) {
                trove_counter_inc (self->m.revoked);
                continue;
            }
            const char *hunt, *rule;
            trove_ledger_award_rule (self->ledger, i, &hunt, &rule);
            trove_counter_inc (self->m.coins);
            trove_counter_inc (s_minted_counter (self, hunt, rule));
        }
    }
}

//  A page is bounded by count and also by size: cut it so the reply fits in
//  one frame (the client asks again from where it stopped).
static void
s_fit_frame (s_scorer_t *self, Trove__QueryReply *reply, char **next_p)
{
    size_t budget = trove_cfg_limits (self->cfg)->max_frame - 4096, used = 0, keep = 0;
    for (size_t i = 0; i < reply->n_events; i++)
        used += trove__event_record__get_packed_size (reply->events [i]) + 8;
    while (keep < reply->n_coins) {
        size_t size = trove__coin__get_packed_size (reply->coins [keep]) + 8;
        if (used + size > budget && keep > 0)
            break;
        used += size;
        keep++;
    }
    if (keep == reply->n_coins)
        return;
    reply->n_coins = keep;
    if (next_p && *next_p) {
        //  coins pages are "aseq below the cursor": continue after the last kept coin
        free (*next_p);
        if (asprintf (next_p, "%llu", (unsigned long long) reply->coins [keep - 1]->aseq) < 0)
            *next_p = NULL;
        reply->next_cursor = *next_p ? *next_p : "";
    }
}

static void
s_count_query (s_scorer_t *self, const char *kind, int64_t arrived_us)
{
    const char *label = trove_query_label (kind);
    trove_counter_t *c = zhashx_lookup (self->m.queries, label);
    if (!c) {
        static const char *const labels [] = {"kind", NULL};
        const char *values [] = {label, NULL};
        c = trove_metrics_counter (self->m.registry, "trove_scorer_queries_total",
                                   "Queries answered, by kind.", labels, values);
        if (c)
            zhashx_insert (self->m.queries, label, c);
    }
    trove_counter_inc (c);
    trove_histogram_observe (self->m.query_seconds, (trove_mono_us () - arrived_us) / 1e6);
}

static void
s_answer_query (s_scorer_t *self, zframe_t *routing_id, const Trove__Query *q)
{
    trove_query_ctx_t ctx = {self->cfg,    self->shard,      self->name,      self->ledger,
                             &self->rules, self->started_ms, self->last_error};
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    trove_query_answer_t answer;
    trove_query_answer (&ctx, q, &reply, &answer);
    s_fit_frame (self, &reply, &answer.next);
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_QUERY_REPLY;
    msg.query_reply = &reply;
    trove_msg_send (self->query, zframe_data (routing_id), zframe_size (routing_id), &msg, ZMQ_DONTWAIT);
    trove_query_answer_free (&answer);
}

static void
s_process_queries (s_scorer_t *self)
{
    for (int i = 0; i < 100 && (zsock_events (self->query) & ZMQ_POLLIN); i++) {
        zframe_t *routing_id, *body = NULL;
        const char *reason;
        Trove__Msg *msg = trove_msg_recv_from (self->query, trove_cfg_limits (self->cfg)->max_frame,
                                               &routing_id, &reason, NULL, &body);
        if (!routing_id && !reason)
            break;
        trove_peer_t peer;
        trove_curve_peer (body, &peer);
        zframe_destroy (&body);
        trove_role_t needs = msg && msg->body_case == TROVE__MSG__BODY_QUERY
                               ? trove_query_role (msg->query->kind)
                               : TROVE_ROLE_READER;
        if (msg && msg->body_case == TROVE__MSG__BODY_QUERY && !trove_curve_allows (&peer, needs)) {
            //  Answered, so that a refused client learns why.
            char text [240];
            snprintf (text, sizeof text, "%s: '%s' needs role %s; certificate '%s' has role %s",
                      trove_strerror (TROVE_E_NOT_ALLOWED), msg->query->kind, trove_curve_role_name (needs),
                      peer.name, trove_curve_role_name (peer.role));
            Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
            reply.req_id = msg->query->req_id;
            reply.error = text;
            Trove__Msg out = TROVE__MSG__INIT;
            out.body_case = TROVE__MSG__BODY_QUERY_REPLY;
            out.query_reply = &reply;
            trove_msg_send (self->query, zframe_data (routing_id), zframe_size (routing_id), &out,
                            ZMQ_DONTWAIT);
            s_refused (self, "query", msg->query->kind, &peer);
        }
        else if (msg && msg->body_case == TROVE__MSG__BODY_QUERY) {
            //  Reads see the ledger tables, which trail the log by a few
            //  milliseconds: answer once they hold what the query must see
            //  (docs/queries.md, Freshness).
            uint64_t target = trove_query_target (self->ledger, msg->query);
            s_parked_t *parked = NULL;
            //  While the tables cannot be written, waiting would be forever:
            //  answer from what they hold.
            if (target > trove_ledger_applied (self->ledger) && !trove_ledger_apply_failing (self->ledger))
                parked = calloc (1, sizeof *parked);
            if (parked) {
                *parked = (s_parked_t){routing_id, msg, target, trove_mono_us ()};
                routing_id = NULL;
                msg = NULL;
                zlistx_add_end (self->parked, parked);
                trove_ledger_hurry (self->ledger);
            }
            else {
                s_answer_query (self, routing_id, msg->query);
                s_count_query (self, msg->query->kind, trove_mono_us ());
            }
        }
        else
            trove_log_limited (&self->m.bad_log, 10000000, 'W',
                               "dropped a bad message on the query socket: %s", msg ? "not a query" : reason);
        trove_msg_free (&msg);
        zframe_destroy (&routing_id);
    }
}

//  The apply thread made progress: drop applied dedup entries, answer the
//  queries that waited for it.
static void
s_absorb (s_scorer_t *self)
{
    trove_ledger_absorb (self->ledger);
    uint64_t applied = trove_ledger_applied (self->ledger);
    bool failing = trove_ledger_apply_failing (self->ledger);
    //  Targets differ per query: answer every one that is ready.
    s_parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        if (parked->target <= applied || failing) {
            s_answer_query (self, parked->routing_id, parked->msg->query);
            s_count_query (self, parked->msg->query->kind, parked->arrived_us);
            zframe_destroy (&parked->routing_id);
            trove_msg_free (&parked->msg);
            free (parked);
            zlistx_delete (self->parked, zlistx_cursor (self->parked));  //  cursor moves back
        }
        parked = zlistx_next (self->parked);
    }
}

static int
s_metrics_init (s_scorer_t *self)
{
    trove_metrics_t *r = self->m.registry;
    self->m.queries = zhashx_new ();
    self->m.minted = zhashx_new ();
    if (!self->m.queries || !self->m.minted)
        return -1;
    static const char *const labels [] = {"result", NULL};
    for (int i = 0; i < 5; i++) {
        const char *values [] = {trove_event_status_name (i), NULL};
        self->m.events [i] = trove_metrics_counter (
            r, "trove_scorer_events_total", "Events answered to ingestors, by answer.", labels, values);
        self->m.claims [i] = trove_metrics_counter (r, "trove_scorer_claims_total",
                                                    "Claims of (source, id) answered to ingestors, by "
                                                    "answer: accepted (claimed, now or before by the "
                                                    "same content), rejected (id_conflict).",
                                                    labels, values);
    }
    static const double sizes [] = {1, 10, 100, 1000, 10000, 32768};
    static const double secs [] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 1};
    self->m.batch_events =
        trove_metrics_histogram (r, "trove_scorer_batch_events",
                                 "Events per write-ahead log commit (group commit).", NULL, NULL, sizes, 6);
    self->m.commit_seconds =
        trove_metrics_histogram (r, "trove_scorer_log_commit_seconds",
                                 "Write-ahead log commit time, fsync included.", NULL, NULL, secs, 11);
    self->m.to_commit_seconds = trove_metrics_histogram (
        r, "trove_scorer_receive_to_commit_seconds",
        "From the ingestor's receipt of a batch (its clock) to this shard's log commit.", NULL, NULL, secs,
        11);
    self->m.query_seconds = trove_metrics_histogram (
        r, "trove_scorer_query_seconds", "Query arrival to answer, waits for the tables included.", NULL,
        NULL, secs, 11);
    self->m.coins = trove_metrics_counter (r, "trove_scorer_coins_minted_total", "Coins minted.", NULL, NULL);
    self->m.revoked = trove_metrics_counter (
        r, "trove_scorer_coins_revoked_total",
        "Coins revoked by compensating entries (late events, undo, new rules).", NULL, NULL);
    self->m.failed_batches =
        trove_metrics_counter (r, "trove_scorer_failed_batches_total",
                               "Batches answered RETRY because storage refused them.", NULL, NULL);
    self->m.backlog = trove_metrics_gauge (r, "trove_scorer_apply_backlog_events",
                                           "Accepted events the ledger tables do not hold yet.", NULL, NULL);
    self->m.last_aseq =
        trove_metrics_gauge (r, "trove_scorer_last_aseq", "Last award sequence number.", NULL, NULL);
    static const char *const env [] = {"env", NULL};
    static const char *const tables [] = {"tables", NULL}, *const logv [] = {"log", NULL};
    self->m.tables_bytes =
        trove_metrics_gauge (r, "trove_scorer_ledger_bytes",
                             "LMDB map in use (up to the last page), by environment.", env, tables);
    self->m.log_bytes = trove_metrics_gauge (
        r, "trove_scorer_ledger_bytes", "LMDB map in use (up to the last page), by environment.", env, logv);
    self->m.map_bytes =
        trove_metrics_gauge (r, "trove_scorer_ledger_map_bytes",
                             "LMDB map size of each environment (trove/map_size_mb).", NULL, NULL);
    trove_gauge_set_int (self->m.map_bytes, (int64_t) trove_cfg_map_size (self->cfg));
    self->m.refused = trove_metrics_counter (
        r, "trove_scorer_refused_total",
        "Batches and queries refused because the sender's certificate role may not make them.", NULL, NULL);
    self->m.rederives = trove_metrics_counter (
        r, "trove_scorer_rederives_total",
        "Events placed exactly by re-deriving their user (later than the engine's state, or an undo).", NULL,
        NULL);
    self->m.rederive_events = trove_metrics_counter (r, "trove_scorer_rederive_events_total",
                                                     "Stored events those re-derives read.", NULL, NULL);
    //  Named for the reconciler, whose finding it is; counted where the
    //  repair is written (the reconciler serves no /metrics).
    self->m.repairs = trove_metrics_counter (
        r, "trove_reconciler_repairs_total",
        "Users a reconciler request repaired: real time is exact, so each is an incident.", NULL, NULL);
    self->m.repair_entries = trove_metrics_counter (r, "trove_reconciler_repair_entries_total",
                                                    "Ledger entries those repairs wrote.", NULL, NULL);
    return 0;
}


//  Who owns this data directory: the shard's name and index and the
//  partitions the shard map gives it. A ledger opened under another
//  identity (a config or playbook naming the wrong directory) would take
//  another shard's events and answer for its users: refuse to start.
static int
s_bind_identity (s_scorer_t *self)
{
    uint32_t n = trove_cfg_partitions (self->cfg);
    size_t size = 64 + strlen (self->name) + (size_t) n * 12;
    char *identity = malloc (size);
    if (!identity)
        return -1;
    int len =
        snprintf (identity, size, "shard %s (index %zu), partitions of %u:", self->name, self->shard, n);
    for (uint32_t p = 0; p < n;) {
        uint32_t q = p;
        if (trove_cfg_shard_of (self->cfg, p) != self->shard) {
            p++;
            continue;
        }
        while (q + 1 < n && trove_cfg_shard_of (self->cfg, q + 1) == self->shard)
            q++;
        len += snprintf (identity + len, size - (size_t) len, q > p ? " %u-%u" : " %u", p, q);
        p = q + 1;
    }
    char *err = NULL;
    int rc = trove_ledger_identity (self->ledger, identity, &err);
    if (rc)
        trove_log ('E', "%s", err ? err : "out of memory");
    free (err);
    free (identity);
    return rc;
}

static int
s_daemon_run (trove_daemon_t *daemon)
{
    //  Files this process creates (the ledger, hunt files of `trovectl rules
    //  apply`) are the service user's only (trove_daemon: umask 077).
    int rc = 1;
    char *err = NULL;
    s_scorer_t self_ = {0}, *self = &self_;
    self->cfg = trove_daemon_cfg (daemon);
    self->shard = trove_daemon_index (daemon);
    const char *name = self->name = trove_daemon_name (daemon);
    self->started_ms = trove_daemon_started_ms (daemon);
    self->incarnation = trove_daemon_incarnation (daemon);
    self->m.registry = trove_daemon_metrics (daemon);
    self->rules = trove_rules_load_dir (trove_cfg_rules_dir (self->cfg), &err);
    if (!self->rules) {
        trove_log ('E', "rules: %s", err);
        goto done;
    }
    self->ledger = trove_ledger_new (trove_cfg_shard_data (self->cfg, self->shard), (uint32_t) self->shard,
                                     trove_cfg_map_size (self->cfg), trove_cfg_sync (self->cfg), &err);
    if (!self->ledger) {
        trove_log ('E', "%s", err);
        goto done;
    }
    if (s_bind_identity (self))
        goto done;
    trove_ledger_set_history_max (self->ledger, trove_cfg_limits (self->cfg)->max_user_history);
    self->sources = trove_sources_new (self->cfg, &err);
    if (!self->sources) {
        trove_log ('E', "%s", err);
        goto done;
    }
    if (s_metrics_init (self) || trove_daemon_serve_metrics (daemon, NULL, NULL)
        || trove_daemon_secure (daemon))
        goto done;
    self->replies = calloc (BATCH_MAX_MSGS, sizeof *self->replies);
    self->parked = zlistx_new ();
    size_t max_frame = trove_cfg_limits (self->cfg)->max_frame;
    self->events = trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK,
                                     trove_cfg_shard_events (self->cfg, self->shard), max_frame);
    self->query = trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK,
                                    trove_cfg_shard_query (self->cfg, self->shard), max_frame);
    if (!self->replies || !self->parked || !self->events || !self->query)
        goto done;
    self->pub = trove_sock_connected (ZMQ_PUB, TROVE_SOCK_LINK, trove_cfg_broker_pub (self->cfg), max_frame);
    if (!self->pub)
        goto done;
    trove_log ('I', "shard %s (%zu) ready: %zu hunt version(s), %llu events, last aseq %llu", name,
               self->shard, trove_rules_count (self->rules),
               (unsigned long long) trove_ledger_event_count (self->ledger),
               (unsigned long long) trove_ledger_last_aseq (self->ledger));
    s_publish_heartbeat (self);
    zmq_pollitem_t items [] = {
        {zsock_resolve (self->events), 0, ZMQ_POLLIN, 0},
        {zsock_resolve (self->query), 0, ZMQ_POLLIN, 0},
        {NULL, trove_ledger_fd (self->ledger), ZMQ_POLLIN, 0},
    };
    while (!zsys_interrupted) {
        //  Back-pressure: while the tables are far behind the log, take no
        //  new batches (the ingestors' credit and resends hold them).
        items [0].events = trove_ledger_backlog (self->ledger) < MAX_BACKLOG ? ZMQ_POLLIN : 0;
        int64_t wait_ms = (self->next_heartbeat_us - trove_mono_us ()) / 1000;
        if (zmq_poll (items, 3, wait_ms < 0 ? 0 : wait_ms) == -1 && zmq_errno () != EINTR) {
            trove_log ('E', "poll failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        if (items [2].revents & ZMQ_POLLIN)
            s_absorb (self);
        if (items [0].revents & ZMQ_POLLIN)
            s_process_batches (self);
        if (items [1].revents & ZMQ_POLLIN)
            s_process_queries (self);
        if (trove_mono_us () >= self->next_heartbeat_us)
            s_publish_heartbeat (self);
        s_update_gauges (self);
    }
    trove_log ('I', "shard %s stopping", name);
    rc = 0;
done:
    free (err);
    zsock_destroy (&self->events);
    zsock_destroy (&self->query);
    zsock_destroy (&self->pub);
    free (self->replies);
    for (s_parked_t *parked = self->parked ? zlistx_first (self->parked) : NULL; parked;
         parked = zlistx_next (self->parked)) {
        zframe_destroy (&parked->routing_id);
        trove_msg_free (&parked->msg);
        free (parked);
    }
    zlistx_destroy (&self->parked);
    //  Destroying the ledger applies what the log holds (or leaves it to the
    //  next start): nothing committed is lost either way.
    trove_ledger_destroy (&self->ledger);
    zhashx_destroy (&self->m.queries);
    zhashx_destroy (&self->m.minted);
    trove_rules_destroy (&self->rules);
    trove_sources_destroy (&self->sources);
    return rc;
}

static const trove_daemon_spec_t s_spec = {
    .role = "scorer",
    .name_option = "--shard",
    .usage = "usage: trove-scorer --config FILE --shard NAME\n",
    .metrics = true,
};

int
main (int argc, char *argv [])
{
    return trove_daemon_main (&s_spec, argc, argv, s_daemon_run);
}
