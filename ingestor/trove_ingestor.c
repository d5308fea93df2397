/*  trove-ingestor - the front door. Producers submit batches of events
    (ROUTER); the ingestor validates each event, maps its user to a partition
    and the partition to a scorer shard, forwards one sub-batch per shard
    (DEALER per shard), and answers the producer once every shard has
    answered: an event is "accepted" only after its shard committed it.

    The ingestor keeps no durable state: everything it holds is in flight,
    owned by a producer that has not had its answer and will resubmit (with
    the same req_id) if the ingestor dies. Any ingestor can take over any
    producer. See docs/protocol.md, "producer -> ingestor".

    HTTP ingest (docs/protocol.md, "HTTP ingest"): when the ingestor's
    section has `http = "ADDRESS:PORT"`, POST /v1/events is served by a pool
    of libmicrohttpd threads (ingestor/trove_ingest). Those threads submit over
    inproc DEALERs to this same ROUTER: an HTTP request is one more producer,
    answered by the same code after the same commits, so `accepted` means
    durable there too. Sources, keys and limits: docs/security.md. The same
    listener serves the read-only query API (GET /v1/users/..., /v1/coins/...,
    /v1/leaderboards/...; ingestor/trove_api, docs/queries.md) with the same keys:
    its threads ask the scorers directly (trove_router), not this loop.

    SIGHUP reloads the sources (keys, types, backdating windows, rates)
    and the HTTPS certificate from the config file without a restart: key
    and certificate rotation without downtime.

    Usage: trove-ingestor --config FILE --name NAME
           trove-ingestor --routes --config FILE --name NAME
                                         (prints its HTTP route table, binds nothing)
           trove-ingestor --new-key      (prints a new source key and its hash)
           trove-ingestor --hash-key     (reads a key on stdin, prints its hash) */
#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_daemon.h"
#include "trove_deadletter.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_hash.h"
#include "trove_http.h"
#include "trove_ingest.h"
#include "trove_admin.h"
#include "trove_api.h"
#include "trove_openapi.h"
#include "trove_console.h"
#include "trove_metrics.h"
#include "trove_msg.h"
#include "trove_outbox.h"
#include "trove_ratelimit.h"
#include "trove_sock.h"
#include "trove_source.h"
#include "trove_util.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_SIZE 65536            //  max sub-batches in flight (power of two)
#define SHARD_WINDOW 65536         //  max events in flight per shard (credit)
#define MAX_PENDING_EVENTS 400000  //  stop reading producers above this
#define RESEND_US 1000000          //  resend a sub-batch unanswered this long
#define GIVEUP_US 15000000         //  then answer RETRY (shard_unavailable): resends at 1, 3, 7 s first
#define TIMER_MS 100

typedef struct _s_request_t s_request_t;

struct _s_request_t {
    zframe_t *routing_id;    //  the producer
    uint64_t req_id;         //  the producer's submission id
    Trove__Result *results;  //  one per event
    Trove__Result **result_ptrs;
    size_t nresults;
    size_t remaining;     //  sub-batches not yet answered
    int16_t *source;      //  source index of each event (-1: undeclared)
    int64_t received_us;  //  when the request arrived (monotonic)
    zhashx_t *index;      //  the requests in flight it is listed in, or NULL
    char key [48];        //  its key there
    //  Two phases (docs/protocol.md, "Event identity"): first the claims
    //  of the events whose (source, id) another shard keeps than their
    //  user's, then the events. Kept for the second phase:
    Trove__Msg *msg;            //  the submit message (owned): its events
    uint32_t *partition;        //  each event's user partition
    uint32_t *claim_partition;  //  each event's (source, id) partition
    size_t *shard_of;           //  each event's shard, SIZE_MAX: not forwarded
    int64_t batch_received_us;  //  receipt time carried in its batches
    bool claiming;              //  in the first phase
};

//  What an outbox item of a request carries.
#define S_SUB_EVENTS 0
#define S_SUB_CLAIMS 1

#define S_RESULTS 5
#define S_MAX_SOURCES 256

//  The ingestor's metrics (docs/metrics.md). Handles are looked up once.
typedef struct {
    trove_metrics_t *registry;
    //  [source index, or the last row for undeclared][result]
    trove_counter_t *events [S_MAX_SOURCES + 1][S_RESULTS];
    zhashx_t *rejections;               //  reason -> trove_counter_t *
    trove_histogram_t *request_events;  //  events per submit request
    trove_histogram_t *answer_seconds;  //  request received -> answered
    trove_gauge_t *inflight;            //  events received, not answered
    trove_counter_t **resends;          //  per shard
    trove_counter_t **giveups;          //  per shard
    trove_counter_t *joined;            //  resubmissions joined to their request in flight
    trove_counter_t *rate_limited;      //  producers' requests refused by their limits
    trove_gauge_t **shard_inflight;     //  per shard: events sent, unanswered (credit used)
    trove_gauge_t **shard_queued;       //  per shard: sub-batches waiting for credit
    trove_counter_t *bad_frames;
} s_metrics_t;

typedef struct {
    trove_daemon_t *daemon;  //  the start-up's: config, registry, CURVE
    trove_cfg_t *cfg;        //  the daemon's
    const char *name;
    zsock_t *front;     //  ROUTER for producers
    zsock_t **dealers;  //  one per shard, to its events ROUTER
    zsock_t *pub;       //  PUB to the broker: heartbeats
    size_t nshards;
    trove_outbox_t *outbox;          //  sub-batches not yet answered
    trove_deadletter_t *deadletter;  //  refused whole messages
    trove_sources_t *sources;        //  per-source keys, types, windows
    zlist_t *old_sources;            //  replaced by reloads, freed at exit
    const char *config;              //  config file path, for reloads
    trove_ingest_t *ingest;          //  POST /v1/events, or NULL
    trove_api_t *api;                //  GET query routes, or NULL
    trove_admin_t *admin;            //  operator routes, or NULL
    trove_http_t *http;              //  HTTP server, or NULL
    size_t pending_events;           //  events received and unanswered
    //  Requests in flight by req_id and size: a producer that resends one
    //  (its answer is late, not lost) is not given a second copy of the work
    //  (that is how an overloaded shard is kept from drowning in resends).
    zhashx_t *requests;
    //  Producers from outside (certificate role producer) get the limits
    //  of HTTP ingest: per source and per user (docs/security.md).
    trove_ratelimit_t *ratelimit;
    trove_ingest_limits_t limits;
    int64_t started_ms;
    uint64_t received, answered;  //  counters for status
    s_metrics_t m;                //  Prometheus metrics
} s_ingestor_t;

static trove_counter_t *
s_events_counter (s_ingestor_t *self, int source, Trove__Status status)
{
    size_t row = source >= 0 && source < S_MAX_SOURCES ? (size_t) source : S_MAX_SOURCES;
    size_t col = (size_t) status < S_RESULTS ? (size_t) status : 0;
    trove_counter_t **slot = &self->m.events [row][col];
    if (!*slot) {
        //  Undeclared sources share one label value: label sets stay bounded
        //  whatever arrives from the network.
        const char *name = row == S_MAX_SOURCES ? "other" : trove_cfg_source_name (self->cfg, row);
        static const char *const labels [] = {"source", "result", NULL};
        const char *values [] = {name, trove_event_status_name ((int) col), NULL};
        *slot = trove_metrics_counter (self->m.registry, "trove_ingestor_events_total",
                                       "Events answered to producers, by source and answer.", labels, values);
    }
    return *slot;
}

static void
s_count_answers (s_ingestor_t *self, s_request_t *req)
{
    for (size_t i = 0; i < req->nresults; i++) {
        const Trove__Result *r = &req->results [i];
        trove_counter_inc (s_events_counter (self, req->source ? req->source [i] : -1, r->status));
        if (r->status == TROVE__STATUS__REJECTED || r->status == TROVE__STATUS__RETRY) {
            const char *reason = r->reason && *r->reason ? r->reason : "none";
            char key [160];
            snprintf (key, sizeof key, "%d\x1f%s", (int) r->status, reason);
            trove_counter_t *c = zhashx_lookup (self->m.rejections, key);
            if (!c) {
                static const char *const labels [] = {"result", "reason", NULL};
                const char *values [] = {trove_event_status_name (r->status), reason, NULL};
                c = trove_metrics_counter (self->m.registry, "trove_ingestor_not_accepted_total",
                                           "Events rejected or to retry, by reason code.", labels, values);
                if (c)
                    zhashx_insert (self->m.rejections, key, c);
            }
            trove_counter_inc (c);
        }
    }
    trove_histogram_observe (self->m.answer_seconds, (trove_mono_us () - req->received_us) / 1e6);
    trove_gauge_set_int (self->m.inflight, (int64_t) self->pending_events);
}

static void
s_request_reply (s_ingestor_t *self, s_request_t *req, const char *error)
{
    Trove__SubmitReply body = TROVE__SUBMIT_REPLY__INIT;
    body.req_id = req->req_id;
    body.n_results = req->nresults;
    body.results = req->result_ptrs;
    body.error = (char *) (error ? error : "");
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT_REPLY;
    msg.submit_reply = &body;
    //  A producer that went away will resubmit; nothing to keep.
    trove_msg_send (self->front, zframe_data (req->routing_id), zframe_size (req->routing_id), &msg,
                    ZMQ_DONTWAIT);
    self->answered += req->nresults;
    self->pending_events -= req->nresults;
    s_count_answers (self, req);
}

static void
s_request_destroy (s_request_t **req_p)
{
    s_request_t *req = *req_p;
    if (!req)
        return;
    if (req->index)
        zhashx_delete (req->index, req->key);
    zframe_destroy (&req->routing_id);
    for (size_t i = 0; i < req->nresults; i++) {
        free (req->results [i].reason);
        free (req->results [i].detail);
    }
    free (req->results);
    free (req->result_ptrs);
    free (req->source);
    trove_msg_free (&req->msg);
    free (req->partition);
    free (req->claim_partition);
    free (req->shard_of);
    free (req);
    *req_p = NULL;
}

static void
s_set_result (Trove__Result *r, Trove__Status status, const char *reason, const char *detail)
{
    free (r->reason);
    free (r->detail);
    r->status = status;
    r->reason = strdup (reason ? reason : "");
    r->detail = strdup (detail ? detail : "");
}

//  A sub-batch is answered (by its shard or by giving up): fill in the
//  request, and answer the producer when it was the last one.
static void s_request_advance (s_ingestor_t *self, s_request_t *req);

static void
s_sub_complete (s_ingestor_t *self, trove_outbox_item_t *sub, Trove__Result **results)
{
    s_request_t *req = sub->owner;
    bool claims = sub->kind == S_SUB_CLAIMS;
    for (size_t i = 0; i < sub->events; i++) {
        uint32_t at = sub->index [i];
        Trove__Result *r = &req->results [at];
        if (claims && results && results [i]->status == TROVE__STATUS__ACCEPTED)
            continue;  //  claimed: the event goes on to its user's shard
        if (results)
            s_set_result (r, results [i]->status, results [i]->reason, results [i]->detail);
        else
            s_set_result (r, TROVE__STATUS__RETRY, trove_strerror (TROVE_E_SHARD_UNAVAILABLE),
                          "the owning scorer shard did not answer in time; resubmit with the same req_id");
        if (claims)
            req->shard_of [at] = SIZE_MAX;  //  not claimed: not forwarded
    }
    trove_outbox_remove (self->outbox, &sub);
    if (--req->remaining == 0)
        s_request_advance (self, req);
}

static int
s_sub_send (s_ingestor_t *self, trove_outbox_item_t *sub)
{
    if (zmq_send (zsock_resolve (self->dealers [sub->shard]), sub->frame, sub->size, ZMQ_DONTWAIT) == -1)
        return -1;  //  no connection (IMMEDIATE) or HWM: try again on the timer
    trove_outbox_sent (self->outbox, sub, trove_mono_us ());
    return 0;
}

//  Send what the shard's credit allows, oldest first.
static void
s_shard_pump (s_ingestor_t *self, size_t shard)
{
    trove_outbox_item_t *sub;
    while ((sub = trove_outbox_next (self->outbox, shard)) && s_sub_send (self, sub) == 0)
        ;
}

static void
s_answer_status (s_ingestor_t *self, zframe_t *routing_id, uint64_t req_id)
{
    Trove__StatusInfo status = TROVE__STATUS_INFO__INIT;
    trove_daemon_status (self->daemon, &status);
    status.events = self->received;
    status.inflight = self->pending_events;
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.req_id = req_id;
    reply.status = &status;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_QUERY_REPLY;
    msg.query_reply = &reply;
    trove_msg_send (self->front, zframe_data (routing_id), zframe_size (routing_id), &msg, ZMQ_DONTWAIT);
}

//  Answer a request that cannot even be split (malformed, too large).
//  A refused whole message goes to the dead-letter file (never retried).
static void
s_dead_letter (s_ingestor_t *self, zframe_t *routing_id, const char *why, const void *data, size_t size)
{
    if (self->deadletter
        && trove_deadletter_add (self->deadletter, zframe_data (routing_id), zframe_size (routing_id), why,
                                 data, size))
        trove_log ('W', "cannot write the dead-letter file: %s", strerror (errno));
}

static void
s_refuse (s_ingestor_t *self, zframe_t *routing_id, uint64_t req_id, const char *error)
{
    Trove__SubmitReply body = TROVE__SUBMIT_REPLY__INIT;
    body.req_id = req_id;
    body.error = (char *) error;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT_REPLY;
    msg.submit_reply = &body;
    trove_msg_send (self->front, zframe_data (routing_id), zframe_size (routing_id), &msg, ZMQ_DONTWAIT);
}

//  The shard an event of req goes to in this phase, or SIZE_MAX: its
//  claim's shard when another one than its user's keeps it, its user's.
static size_t
s_sub_shard (s_ingestor_t *self, s_request_t *req, size_t i, int kind)
{
    if (req->shard_of [i] == SIZE_MAX)
        return SIZE_MAX;
    if (kind == S_SUB_EVENTS)
        return req->shard_of [i];
    size_t c = trove_cfg_shard_of (self->cfg, req->claim_partition [i]);
    return c != req->shard_of [i] ? c : SIZE_MAX;
}

//  Queue a phase's sub-batches of req, one per shard, and send what the
//  shards' credit allows.
static void
s_send_subs (s_ingestor_t *self, s_request_t *req, int kind)
{
    size_t n = req->nresults;
    Trove__SubmitRequest *submit = req->msg->submit;
    for (size_t s = 0; s < self->nshards; s++) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            count += s_sub_shard (self, req, i, kind) == s;
        if (!count)
            continue;
        uint32_t *index = calloc (count, sizeof *index);
        Trove__Event **events = calloc (count, sizeof *events);
        uint32_t *parts = calloc (count, sizeof *parts);
        size_t k = 0;
        for (size_t i = 0; index && events && parts && i < n; i++)
            if (s_sub_shard (self, req, i, kind) == s) {
                events [k] = submit->events [i];
                parts [k] = kind == S_SUB_CLAIMS ? req->claim_partition [i] : req->partition [i];
                index [k++] = (uint32_t) i;
            }
        Trove__ShardBatch batch = TROVE__SHARD_BATCH__INIT;
        batch.req_id = submit->req_id;
        batch.n_events = batch.n_partitions = k;
        batch.events = events;
        batch.partitions = parts;
        batch.received_us = req->batch_received_us;
        batch.claims = kind == S_SUB_CLAIMS;
        //  batch_id is known only once the outbox takes the item: add it
        //  first, then pack into it.
        trove_outbox_item_t *sub =
            k == count ? trove_outbox_add (self->outbox, s, k, NULL, 0, req, index, trove_mono_us ()) : NULL;
        if (sub) {
            index = NULL;  //  owned by the outbox now
            sub->kind = kind;
            batch.batch_id = sub->batch_id;
            Trove__Msg msg = TROVE__MSG__INIT;
            msg.body_case = TROVE__MSG__BODY_BATCH;
            msg.batch = &batch;
            sub->frame = trove_msg_pack (&msg, &sub->size);
            if (!sub->frame)
                trove_outbox_remove (self->outbox, &sub);
        }
        if (sub)
            req->remaining++;
        else
            for (size_t i = 0; i < n; i++)
                if (s_sub_shard (self, req, i, kind) == s) {
                    s_set_result (&req->results [i], TROVE__STATUS__RETRY,
                                  trove_strerror (TROVE_E_OVERLOADED), "out of memory");
                    req->shard_of [i] = SIZE_MAX;
                }
        free (index);
        free (events);
        free (parts);
    }
    for (size_t s = 0; s < self->nshards; s++)
        s_shard_pump (self, s);
}

//  Every sub-batch of the phase answered: after the claims, the events;
//  after the events, the answer.
static void
s_request_advance (s_ingestor_t *self, s_request_t *req)
{
    if (req->claiming) {
        req->claiming = false;
        req->remaining = 1;
        s_send_subs (self, req, S_SUB_EVENTS);
        if (--req->remaining > 0)
            return;
    }
    s_request_reply (self, req, NULL);
    s_request_destroy (&req);
}

//  Take a producer's tokens for the events of req that passed the checks:
//  its source's bucket and each user's, all or nothing (the rules of HTTP
//  ingest, ingestor/trove_ingest). NULL when taken; else why, *wait_s_p set
//  (0: the request alone exceeds a burst and can never pass).
static const char *
s_producer_limit (s_ingestor_t *self, Trove__SubmitRequest *submit, s_request_t *req,
                  const trove_peer_t *peer, long *wait_s_p)
{
    int index = trove_cfg_source_index (self->cfg, peer->source);
    if (index < 0 || !self->ratelimit)
        return NULL;  //  an unknown source was rejected event by event already
    const trove_source_policy_t *policy = trove_sources_policy (self->sources, (size_t) index);
    size_t n = submit->n_events;
    trove_ratelimit_ask_t *asks = calloc (n + 1, sizeof *asks);
    zhashx_t *users = zhashx_new ();
    char skey [80];
    skey [0] = 0;  //  NUL first: no user id can be it
    size_t skey_size = 1 + (size_t) snprintf (skey + 1, sizeof skey - 1, "%s", policy->name);
    if (!asks || !users) {
        free (asks);
        zhashx_destroy (&users);
        return NULL;  //  out of memory: let it through rather than refuse wrongly
    }
    size_t nasks = 1, valid = 0;
    for (size_t i = 0; i < n; i++) {
        if (req->results [i].status)
            continue;  //  already rejected: costs no token
        valid++;
        if (self->limits.user_rate <= 0)
            continue;
        const char *user = submit->events [i]->user;
        size_t slot = (size_t) zhashx_lookup (users, user);
        if (slot)
            asks [slot].tokens += 1;
        else {
            asks [nasks] = (trove_ratelimit_ask_t){user, strlen (user), 1, self->limits.user_rate,
                                                   self->limits.user_burst};
            zhashx_insert (users, user, (void *) nasks++);
        }
    }
    asks [0] = (trove_ratelimit_ask_t){skey, skey_size, (double) valid, policy->rate, policy->burst};
    size_t which = 0;
    int rc =
        valid ? trove_ratelimit_take (self->ratelimit, asks, nasks, trove_mono_us (), wait_s_p, &which) : 0;
    free (asks);
    zhashx_destroy (&users);
    if (rc == 2)
        *wait_s_p = 0;
    return rc == 0 ? NULL : which == 0 ? "the source's events/s" : "a user's events/s";
}

//  The same (source, id) twice in one request: the later copies are answered
//  `duplicate` here. The scorer cannot tell them apart from a retry of the
//  first (same req_id), so they must not reach it.
static void
s_mark_repeats (Trove__SubmitRequest *submit, s_request_t *req, size_t *shard_of, size_t *count)
{
    size_t n = submit->n_events, cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *table = calloc (cap, sizeof *table);  //  event index + 1, 0 = empty
    if (!table)
        return;  //  the scorer then answers the copies `accepted`: still counted once
    for (size_t i = 0; i < n; i++) {
        if (shard_of [i] == SIZE_MAX)
            continue;
        const Trove__Event *ev = submit->events [i];
        uint64_t h = trove_hash_fnv1a64 (ev->source, strlen (ev->source)) * 31
                   ^ trove_hash_fnv1a64 (ev->id, strlen (ev->id));
        for (size_t slot = h & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
            if (table [slot] == 0) {
                table [slot] = (uint32_t) i + 1;
                break;
            }
            const Trove__Event *other = submit->events [table [slot] - 1];
            if (strcmp (other->source, ev->source) == 0 && strcmp (other->id, ev->id) == 0) {
                //  The same event again, or another under the same id.
                uint8_t a [TROVE_EVENT_CONTENT_SIZE], b [TROVE_EVENT_CONTENT_SIZE];
                trove_event_content_hash (other, a);
                trove_event_content_hash (ev, b);
                if (memcmp (a, b, sizeof a) == 0)
                    s_set_result (&req->results [i], TROVE__STATUS__DUPLICATE, "",
                                  "repeated within the request");
                else
                    s_set_result (
                        &req->results [i], TROVE__STATUS__REJECTED, trove_strerror (TROVE_E_ID_CONFLICT),
                        "an earlier event of this request has this source and id and says something "
                        "else; ids are unique per source");
                count [shard_of [i]]--;
                shard_of [i] = SIZE_MAX;
                break;
            }
        }
    }
    free (table);
}

static void
s_submit (s_ingestor_t *self, zframe_t **routing_id_p, Trove__Msg **msg_p, int64_t received_us,
          const trove_peer_t *peer)
{
    Trove__SubmitRequest *submit = (*msg_p)->submit;
    const trove_limits_t *lim = trove_cfg_limits (self->cfg);
    if (!trove_curve_allows (peer, TROVE_ROLE_PRODUCER)) {
        char error [200];
        snprintf (error, sizeof error, "not_allowed: certificate '%s' (role %s) may not submit events",
                  peer->name, trove_curve_role_name (peer->role));
        s_refuse (self, *routing_id_p, submit->req_id, error);
        s_dead_letter (self, *routing_id_p, error, NULL, trove__submit_request__get_packed_size (submit));
        return;
    }
    if (submit->n_events > lim->max_batch) {
        char error [120];
        snprintf (error, sizeof error, "batch_too_large: %zu events, limit %zu", submit->n_events,
                  lim->max_batch);
        s_refuse (self, *routing_id_p, submit->req_id, error);
        s_dead_letter (self, *routing_id_p, error, NULL, trove__submit_request__get_packed_size (submit));
        return;
    }
    //  The same submission again while it is in flight: its answer will go
    //  to where this copy came from (the producer may have reconnected).
    char key [48];
    snprintf (key, sizeof key, "%016llx/%zu", (unsigned long long) submit->req_id, submit->n_events);
    s_request_t *same = self->requests ? zhashx_lookup (self->requests, key) : NULL;
    if (same) {
        zframe_destroy (&same->routing_id);
        same->routing_id = *routing_id_p;
        *routing_id_p = NULL;
        trove_counter_inc (self->m.joined);
        return;
    }
    s_request_t *req = calloc (1, sizeof *req);
    size_t n = submit->n_events;
    if (req) {
        req->results = calloc (n ? n : 1, sizeof *req->results);
        req->result_ptrs = calloc (n ? n : 1, sizeof *req->result_ptrs);
    }
    uint32_t *partition = calloc (n ? n : 1, sizeof *partition);
    size_t *shard_of = calloc (n ? n : 1, sizeof *shard_of);
    size_t *count = calloc (self->nshards, sizeof *count);
    if (!req || !req->results || !req->result_ptrs || !partition || !shard_of || !count) {
        if (req) {
            free (req->results);
            free (req->result_ptrs);
            free (req);
        }
        free (partition);
        free (shard_of);
        free (count);
        s_refuse (self, *routing_id_p, submit->req_id, "overloaded: out of memory, retry later");
        return;
    }
    req->routing_id = *routing_id_p;
    *routing_id_p = NULL;
    req->req_id = submit->req_id;
    req->nresults = n;
    req->received_us = trove_mono_us ();
    req->source = calloc (n ? n : 1, sizeof *req->source);  //  NULL: counted as "other"
    trove_histogram_observe (self->m.request_events, (double) n);
    self->received += n;
    snprintf (req->key, sizeof req->key, "%016llx/%zu", (unsigned long long) submit->req_id, n);
    self->pending_events += n;
    int64_t now_ms = received_us / 1000;
    for (size_t i = 0; i < n; i++) {
        if (req->source)
            req->source [i] = (int16_t) trove_cfg_source_index (self->cfg, submit->events [i]->source);
        trove__result__init (&req->results [i]);
        //  Every result gets heap strings from s_set_result before it is sent.
        req->results [i].reason = req->results [i].detail = NULL;
        req->result_ptrs [i] = &req->results [i];
        char detail [256];
        const char *reason = trove_event_check (submit->events [i], self->cfg, now_ms, detail, sizeof detail);
        //  The source's own rules (types, backdating), for every producer.
        if (!reason)
            reason = trove_sources_check (
                self->sources,
                req->source ? req->source [i]
                            : trove_cfg_source_index (self->cfg, submit->events [i]->source),
                submit->events [i], now_ms, detail, sizeof detail);
        //  A producer's certificate names the one source it speaks for.
        if (!reason && peer->role == TROVE_ROLE_PRODUCER
            && strcmp (submit->events [i]->source, peer->source)) {
            snprintf (detail, sizeof detail, "certificate '%s' sends for source '%s', not '%s'", peer->name,
                      peer->source, submit->events [i]->source);
            reason = trove_strerror (TROVE_E_SOURCE_MISMATCH);
        }
        if (reason) {
            s_set_result (&req->results [i], TROVE__STATUS__REJECTED, reason, detail);
            shard_of [i] = SIZE_MAX;
            continue;
        }
        const char *user = submit->events [i]->user;
        partition [i] = trove_hash_partition (user, strlen (user), trove_cfg_partitions (self->cfg));
        shard_of [i] = trove_cfg_shard_of (self->cfg, partition [i]);
        count [shard_of [i]]++;
    }
    if (peer->role == TROVE_ROLE_PRODUCER) {
        long wait_s = 0;
        const char *limit = s_producer_limit (self, submit, req, peer, &wait_s);
        if (limit) {
            char error [360];
            if (wait_s)
                snprintf (error, sizeof error, "%s: %s of certificate '%s' (source %s); retry after %ld s",
                          trove_strerror (TROVE_E_RATE_LIMITED), limit, peer->name, peer->source, wait_s);
            else
                snprintf (error, sizeof error, "%s: the request alone exceeds %s limit; split it",
                          trove_strerror (TROVE_E_OVER_BURST), limit);
            trove_counter_inc (self->m.rate_limited);
            s_refuse (self, req->routing_id, submit->req_id, error);
            self->pending_events -= n;
            s_request_destroy (&req);
            free (partition);
            free (shard_of);
            free (count);
            return;
        }
    }
    s_mark_repeats (submit, req, shard_of, count);
    free (count);
    if (self->requests && zhashx_insert (self->requests, req->key, req) == 0)
        req->index = self->requests;
    //  The request keeps the message (its events) for the second phase.
    req->msg = *msg_p;
    *msg_p = NULL;
    req->partition = partition;
    req->shard_of = shard_of;
    req->batch_received_us = received_us;
    req->claim_partition = calloc (n ? n : 1, sizeof *req->claim_partition);
    bool claims = false;
    for (size_t i = 0; i < n; i++) {
        if (shard_of [i] == SIZE_MAX)
            continue;
        if (!req->claim_partition) {
            s_set_result (&req->results [i], TROVE__STATUS__RETRY, trove_strerror (TROVE_E_OVERLOADED),
                          "out of memory");
            shard_of [i] = SIZE_MAX;
            continue;
        }
        const Trove__Event *ev = submit->events [i];
        req->claim_partition [i] =
            trove_hash_claim_partition (ev->source, ev->id, trove_cfg_partitions (self->cfg));
        claims |= trove_cfg_shard_of (self->cfg, req->claim_partition [i]) != shard_of [i];
    }
    req->claiming = claims;
    req->remaining = 1;  //  held until every sub-batch is queued
    s_send_subs (self, req, claims ? S_SUB_CLAIMS : S_SUB_EVENTS);
    if (--req->remaining == 0)
        s_request_advance (self, req);
}

static void
s_front_message (s_ingestor_t *self)
{
    int64_t received_us = trove_now_us ();
    zframe_t *routing_id, *body = NULL;
    const char *reason;
    zframe_t *raw;
    Trove__Msg *msg = trove_msg_recv_from (self->front, trove_cfg_limits (self->cfg)->max_frame, &routing_id,
                                           &reason, &raw, &body);
    trove_peer_t peer;
    trove_curve_peer (body, &peer);
    zframe_destroy (&body);
    if (msg && msg->body_case == TROVE__MSG__BODY_SUBMIT)
        s_submit (self, &routing_id, &msg, received_us, &peer);
    else if (msg && msg->body_case == TROVE__MSG__BODY_QUERY && strcmp (msg->query->kind, "status") == 0)
        s_answer_status (self, routing_id, msg->query->req_id);
    else if (routing_id) {
        //  Malformed input is answered and changes nothing.
        trove_counter_inc (self->m.bad_frames);
        const char *why = msg ? "malformed: unexpected message type" : reason;
        s_refuse (self, routing_id, 0, why);
        s_dead_letter (self, routing_id, why, raw ? zframe_data (raw) : NULL, raw ? zframe_size (raw) : 0);
        trove_log ('D', "refused a bad frame: %s", why);
    }
    trove_msg_free (&msg);
    zframe_destroy (&raw);
    zframe_destroy (&routing_id);
}

static void
s_shard_message (s_ingestor_t *self, size_t shard)
{
    zframe_t *frame = zframe_recv (self->dealers [shard]);
    if (!frame)
        return;
    const char *reason = NULL;
    Trove__Msg *msg = trove_msg_decode (zframe_data (frame), zframe_size (frame),
                                        trove_cfg_limits (self->cfg)->max_frame, &reason);
    if (msg && msg->body_case == TROVE__MSG__BODY_BATCH_REPLY) {
        Trove__ShardBatchReply *reply = msg->batch_reply;
        trove_outbox_item_t *sub = trove_outbox_find (self->outbox, reply->batch_id);
        //  A late answer for a sub-batch we already gave up on is ignored:
        //  the producer resubmits and the scorer's dedup answers.
        if (sub && sub->shard == shard && sub->sent_us && reply->n_results == sub->events)
            s_sub_complete (self, sub, reply->results);
    }
    else
        trove_log ('W', "bad message from shard %s: %s", trove_cfg_shard_name (self->cfg, shard),
                   msg ? "unexpected type" : reason);
    trove_msg_free (&msg);
    zframe_destroy (&frame);
    s_shard_pump (self, shard);
}

static void
s_resend (void *arg, trove_outbox_item_t *sub)
{
    s_ingestor_t *self = arg;
    trove_counter_inc (self->m.resends [sub->shard]);
    s_sub_send (self, sub);
}

static void
s_giveup (void *arg, trove_outbox_item_t *sub)
{
    s_ingestor_t *self = arg;
    trove_counter_inc (self->m.giveups [sub->shard]);
    s_sub_complete (self, sub, NULL);
}

//  Resend what waited too long for an answer; give up on what waited much too
//  long. Idempotent at the scorer, so a resend is always safe.
static void
s_heartbeat (s_ingestor_t *self)
{
    Trove__Heartbeat hb = TROVE__HEARTBEAT__INIT;
    hb.lag = self->pending_events;
    trove_daemon_heartbeat (self->daemon, self->pub, &hb);
}

static void
s_timer (s_ingestor_t *self)
{
    trove_outbox_expire (self->outbox, trove_mono_us (), RESEND_US, GIVEUP_US, s_resend, s_giveup, self);
    for (size_t s = 0; s < self->nshards; s++) {
        s_shard_pump (self, s);
        trove_gauge_set_int (self->m.shard_inflight [s], (int64_t) trove_outbox_inflight (self->outbox, s));
        trove_gauge_set_int (self->m.shard_queued [s], (int64_t) trove_outbox_queued (self->outbox, s));
    }
    trove_gauge_set_int (self->m.inflight, (int64_t) self->pending_events);
}

static int
s_metrics_init (s_ingestor_t *self)
{
    s_metrics_t *m = &self->m;
    m->registry = trove_daemon_metrics (self->daemon);
    m->rejections = zhashx_new ();
    m->resends = calloc (self->nshards, sizeof *m->resends);
    m->giveups = calloc (self->nshards, sizeof *m->giveups);
    m->shard_inflight = calloc (self->nshards, sizeof *m->shard_inflight);
    m->shard_queued = calloc (self->nshards, sizeof *m->shard_queued);
    if (!m->registry || !m->rejections || !m->resends || !m->giveups || !m->shard_inflight
        || !m->shard_queued)
        return -1;
    static const double sizes [] = {1, 10, 100, 1000, 10000};
    static const double secs [] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5};
    m->request_events = trove_metrics_histogram (m->registry, "trove_ingestor_request_events",
                                                 "Events per submit request.", NULL, NULL, sizes, 5);
    m->answer_seconds = trove_metrics_histogram (
        m->registry, "trove_ingestor_answer_seconds",
        "Submit request received to answered (every shard committed).", NULL, NULL, secs, 11);
    m->rate_limited = trove_metrics_counter (
        m->registry, "trove_ingestor_rate_limited_total",
        "ZeroMQ requests of certificates of role producer refused by their source's or users' rate limits.",
        NULL, NULL);
    m->joined = trove_metrics_counter (
        m->registry, "trove_ingestor_joined_total",
        "Resubmissions joined to the same request still in flight (not forwarded again).", NULL, NULL);
    m->inflight = trove_metrics_gauge (m->registry, "trove_ingestor_inflight_events",
                                       "Events received and not answered yet.", NULL, NULL);
    m->bad_frames =
        trove_metrics_counter (m->registry, "trove_ingestor_bad_frames_total",
                               "Frames refused whole (malformed, too large, unknown fields).", NULL, NULL);
    static const char *const labels [] = {"shard", NULL};
    for (size_t s = 0; s < self->nshards; s++) {
        const char *values [] = {trove_cfg_shard_name (self->cfg, s), NULL};
        m->resends [s] =
            trove_metrics_counter (m->registry, "trove_ingestor_resends_total",
                                   "Sub-batches sent again to a shard after no answer.", labels, values);
        m->giveups [s] =
            trove_metrics_counter (m->registry, "trove_ingestor_giveups_total",
                                   "Sub-batches answered RETRY shard_unavailable.", labels, values);
        m->shard_inflight [s] = trove_metrics_gauge (
            m->registry, "trove_ingestor_shard_inflight_events",
            "Events sent to a shard and not answered (its credit in use).", labels, values);
        m->shard_queued [s] =
            trove_metrics_gauge (m->registry, "trove_ingestor_shard_queued_batches",
                                 "Sub-batches waiting for a shard's credit or connection.", labels, values);
    }
    return 0;
}

//  At shutdown: forget an item, and its request with its last item.
static void
s_drop (void *arg, trove_outbox_item_t *sub)
{
    s_ingestor_t *self = arg;
    s_request_t *req = sub->owner;
    trove_outbox_remove (self->outbox, &sub);
    if (--req->remaining == 0)
        s_request_destroy (&req);
}

static void s_reload_tls (s_ingestor_t *self, const trove_cfg_t *cfg);

//  SIGHUP: read the sources again (keys, types, windows, rates), and the
//  HTTPS certificate. The old
//  ones stay alive until exit (an HTTP handler may be using them); a bad
//  file or a changed list of sources changes nothing and is logged.
static void
s_reload_sources (s_ingestor_t *self)
{
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (trove_daemon_config_path (self->daemon), &err);
    trove_sources_t *sources = cfg ? trove_sources_new (cfg, &err) : NULL;
    if (cfg)
        s_reload_tls (self, cfg);
    trove_cfg_destroy (&cfg);
    if (!sources)
        trove_log ('E', "reload refused, sources unchanged: %s", err ? err : "out of memory");
    else if (!trove_sources_same_names (self->sources, sources)) {
        trove_log ('E', "reload refused, sources unchanged: adding, removing or reordering sources "
                        "needs a restart");
        trove_sources_destroy (&sources);
    }
    else if (zlist_append (self->old_sources, self->sources)) {
        trove_log ('E', "reload refused: out of memory");
        trove_sources_destroy (&sources);
    }
    else {
        self->sources = sources;
        //  The query API first: once POST /v1/events refuses an old key,
        //  so does every GET.
        if (self->api)
            trove_api_set_sources (self->api, sources);
        if (self->ingest)
            trove_ingest_set_sources (self->ingest, sources);
        size_t keys = 0;
        for (size_t i = 0; i < trove_sources_count (sources); i++)
            keys += trove_sources_policy (sources, i)->nkeys;
        trove_log ('I', "sources reloaded from %s: %zu sources, %zu keys",
                   trove_daemon_config_path (self->daemon), trove_sources_count (sources), keys);
    }
    free (err);
}

//  --new-key / --hash-key: the key goes to stdout only, once, for the
//  operator to hand to the source; the config gets only the hash.
static int
s_key_tool (bool make)
{
    char key [TROVE_SOURCE_KEY_MAX + 2] = "";
    char hash [TROVE_SOURCE_HASH_SIZE];
    if (make)
        trove_source_key_new (key);
    else if (!fgets (key, sizeof key, stdin)) {
        fprintf (stderr, "trove-ingestor: no key on stdin\n");
        return 1;
    }
    key [strcspn (key, "\r\n")] = 0;
    if (trove_source_key_hash (key, strlen (key), hash)) {
        explicit_bzero (key, sizeof key);
        fprintf (stderr, "trove-ingestor: a key is %d to %d printable characters without spaces\n",
                 TROVE_SOURCE_KEY_MIN, TROVE_SOURCE_KEY_MAX);
        return 1;
    }
    if (make)
        printf ("key  = %s\nhash = %s\n", key, hash);
    else
        printf ("%s\n", hash);
    explicit_bzero (key, sizeof key);
    return 0;
}

//  HTTPS when the config gives this ingestor tls_cert and tls_key (both or
//  neither). Returns 0 or -1 with *err.
static int
s_http_tls (s_ingestor_t *self, char **err)
{
    char path [200];
    snprintf (path, sizeof path, "ingestor/%s/tls_cert", self->name);
    const char *cert = trove_cfg_get (self->cfg, path, NULL);
    snprintf (path, sizeof path, "ingestor/%s/tls_key", self->name);
    const char *key = trove_cfg_get (self->cfg, path, NULL);
    snprintf (path, sizeof path, "ingestor/%s/tls_priorities", self->name);
    const char *priorities = trove_cfg_get (self->cfg, path, NULL);
    if (!cert && !key)
        return 0;
    if (!cert || !key) {
        *err = trove_strdupf ("ingestor %s: tls_cert and tls_key go together (HTTPS needs both)", self->name);
        return -1;
    }
    return trove_http_set_tls (self->http, cert, key, priorities, err);
}

//  SIGHUP: the HTTPS certificate and key again (a renewed certificate).
//  A pair that fails its checks changes nothing and is logged.
static void
s_reload_tls (s_ingestor_t *self, const trove_cfg_t *cfg)
{
    if (!self->http || !trove_http_tls (self->http))
        return;
    char path [200];
    snprintf (path, sizeof path, "ingestor/%s/tls_cert", self->name);
    const char *cert = trove_cfg_get (cfg, path, NULL);
    snprintf (path, sizeof path, "ingestor/%s/tls_key", self->name);
    const char *key = trove_cfg_get (cfg, path, NULL);
    char *err = NULL;
    if (!cert || !key)
        trove_log ('E', "tls reload refused, certificate unchanged: the config no longer names tls_cert and "
                        "tls_key (turning HTTPS off needs a restart)");
    else if (trove_http_reload_tls (self->http, cert, key, &err))
        trove_log ('E', "tls reload refused, certificate unchanged: %s", err ? err : "out of memory");
    else
        trove_log ('I', "tls certificate reloaded from %s", cert);
    free (err);
}

//  The HTTP server of this ingestor's `http` address, not started: limits,
//  the key check, every route (POST /v1/events, the GET query routes,
//  GET /v1/openapi.json). *address_p is the address, NULL when there is
//  none (then nothing is made); *limits the connection limits read.
//  Returns 0, or -1 with a message in *err.
static int
s_http_build (s_ingestor_t *self, const char *inproc, const char **address_p, trove_http_limits_t *limits,
              char **err)
{
    char path [200];
    snprintf (path, sizeof path, "ingestor/%s/http", self->name);
    const char *address = *address_p = trove_cfg_get (self->cfg, path, NULL);
    if (!address)
        return 0;
    if (trove_http_limits_read (self->cfg, limits, err))
        return -1;
    self->ingest = trove_ingest_new (self->cfg, self->sources, inproc, NULL, NULL, self->m.registry, err);
    if (!self->ingest)
        return -1;
    self->api = trove_api_new (self->cfg, self->sources);
    self->admin = self->api ? trove_admin_new (self->cfg, self->api) : NULL;
    self->http = trove_http_new (trove_ingest_max_body (self->ingest));
    //  The key before the route: no path or method is told to a stranger.
    if (!self->api || !self->admin || !self->http || trove_http_set_limits (self->http, limits)
        || trove_http_set_auth (self->http, trove_ingest_auth, self->ingest)
        || (self->m.registry && trove_http_set_metrics (self->http, self->m.registry))
        || trove_http_route (self->http, "POST", "/v1/events", trove_ingest_handle, self->ingest)
        || trove_api_routes (self->api, self->http) || trove_admin_routes (self->admin, self->http)
        || trove_console_routes (self->http) || trove_openapi_route (self->http)) {
        *err = strdup ("out of memory");
        return -1;
    }
    return 0;
}

//  Serve POST /v1/events and the GET query routes when the config gives
//  this ingestor an `http` address. Returns 0 (serving, or nothing to
//  serve) or -1.
static int
s_http_start (s_ingestor_t *self, const char *inproc, char **err)
{
    const char *address = NULL;
    trove_http_limits_t limits;
    if (s_http_build (self, inproc, &address, &limits, err))
        return -1;
    if (!address)
        return trove_daemon_serve_metrics (self->daemon, NULL, NULL);
    if (!trove_sources_any_key (self->sources))
        trove_log ('W', "http on %s, but no source has keys: every request will be answered 401", address);
    char path [200];
    snprintf (path, sizeof path, "ingestor/%s/http_threads", self->name);
    long threads = atol (trove_cfg_get (self->cfg, path, "16"));
    //  Keys from before scopes keep what they could do (docs/security.md).
    size_t unscoped = trove_sources_unscoped (self->sources);
    if (unscoped)
        trove_log ('W',
                   "%zu source keys have no scopes: each may write events and read users and boards; "
                   "give each key only what it needs (keys = \"HASH=events:write\", docs/security.md)",
                   unscoped);
    if (s_http_tls (self, err))
        return -1;
    //  On this listener too when its address is the metrics address.
    if (trove_daemon_serve_metrics (self->daemon, self->http, address))
        return -1;
    if (trove_http_start (self->http, address, threads > 0 && threads <= 64 ? (unsigned) threads : 0, err))
        return -1;
    trove_log ('I',
               "http%s ingest and queries on %s (%ld threads; at most %zu connections, %zu per client, "
               "head within %u s)",
               trove_http_tls (self->http) ? "s" : "", address, threads, limits.max_connections,
               limits.max_per_client, limits.header_timeout_s);
    return 0;
}

static int
s_new_key (void)
{
    return s_key_tool (true);
}

static int
s_hash_key (void)
{
    return s_key_tool (false);
}

static const trove_daemon_tool_t s_tools [] = {
    {"--new-key", s_new_key}, {"--hash-key", s_hash_key}, {NULL, NULL}};

static int
s_daemon_run (trove_daemon_t *daemon)
{
    //  Files this process creates (dead letters) are the service user's only.
    int rc = 1;
    char *err = NULL;
    zmq_pollitem_t *items = NULL;
    s_ingestor_t *self = calloc (1, sizeof *self);
    if (!self)
        goto done;
    self->daemon = daemon;
    self->cfg = trove_daemon_cfg (daemon);
    self->started_ms = trove_daemon_started_ms (daemon);
    const char *name = self->name = trove_daemon_name (daemon);
    size_t index = trove_daemon_index (daemon);
    self->old_sources = zlist_new ();
    if (!self->old_sources)
        goto done;
    self->sources = trove_sources_new (self->cfg, &err);
    if (!self->sources) {
        trove_log ('E', "%s", err);
        goto done;
    }
    size_t max_frame = trove_cfg_limits (self->cfg)->max_frame;
    self->nshards = trove_cfg_shards (self->cfg);
    if (s_metrics_init (self) || trove_daemon_secure (daemon))
        goto done;
    self->front = trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK,
                                    trove_cfg_ingestor_endpoint (self->cfg, index), max_frame);
    //  HTTP ingest submits here, as one more producer.
    char inproc [120];
    snprintf (inproc, sizeof inproc, "inproc://trove-ingestor-%s", name);
    if (self->front && trove_sock_bind (self->front, TROVE_SOCK_LINK, inproc))
        goto done;
    self->dealers = calloc (self->nshards, sizeof *self->dealers);
    self->outbox = trove_outbox_new (self->nshards, SHARD_WINDOW, RING_SIZE);
    self->requests = zhashx_new ();
    self->ratelimit = trove_ratelimit_new (65536);
    if (trove_ingest_limits (self->cfg, &self->limits, &err)) {
        trove_log ('E', "%s", err);
        goto done;
    }
    items = calloc (self->nshards + 1, sizeof *items);
    if (!self->front || !self->dealers || !self->outbox || !self->requests || !items)
        goto done;
    //  64 MiB, then rotated once: bounded, the newest kept.
    self->deadletter =
        trove_deadletter_new (trove_cfg_ingestor_deadletter (self->cfg, index), name, 64 * 1024 * 1024, &err);
    if (!self->deadletter) {
        trove_log ('E', "%s", err);
        goto done;
    }
    //  Every listener before the first outgoing connection: a host that
    //  cannot bind its own address (wrong config, wrong machine) stops
    //  here without sending a packet anywhere (docs/protocol.md, "Start-up").
    if (s_http_start (self, inproc, &err)) {
        trove_log ('E', "%s", err ? err : "out of memory");
        goto done;
    }
    self->pub = trove_sock_connected (ZMQ_PUB, TROVE_SOCK_LINK, trove_cfg_broker_pub (self->cfg), max_frame);
    if (!self->pub)
        goto done;
    for (size_t s = 0; s < self->nshards; s++) {
        self->dealers [s] = trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_LINK,
                                                  trove_cfg_shard_events (self->cfg, s), max_frame);
        if (!self->dealers [s])
            goto done;
        items [s + 1] = (zmq_pollitem_t){zsock_resolve (self->dealers [s]), 0, ZMQ_POLLIN, 0};
    }
    items [0] = (zmq_pollitem_t){zsock_resolve (self->front), 0, ZMQ_POLLIN, 0};
    trove_log ('I', "ingestor %s ready on %s, %zu shard(s)", name,
               trove_cfg_ingestor_endpoint (self->cfg, index), self->nshards);
    int64_t next_timer = trove_mono_us () + TIMER_MS * 1000;
    int64_t next_heartbeat = 0;
    while (!zsys_interrupted) {
        //  Back-pressure: stop reading producers while too much is in flight;
        //  their own windows and TCP hold the rest.
        bool room = self->pending_events < MAX_PENDING_EVENTS
                 && trove_outbox_live (self->outbox) + self->nshards < RING_SIZE - 1;
        items [0].events = room ? ZMQ_POLLIN : 0;
        int64_t wait_ms = (next_timer - trove_mono_us ()) / 1000;
        if (zmq_poll (items, (int) self->nshards + 1, wait_ms < 0 ? 0 : wait_ms) == -1
            && zmq_errno () != EINTR)
            break;
        for (size_t s = 0; s < self->nshards; s++)
            for (int k = 0; k < 1000 && (zsock_events (self->dealers [s]) & ZMQ_POLLIN); k++)
                s_shard_message (self, s);
        for (int k = 0; room && k < 256 && (zsock_events (self->front) & ZMQ_POLLIN); k++) {
            s_front_message (self);
            room = self->pending_events < MAX_PENDING_EVENTS
                && trove_outbox_live (self->outbox) + self->nshards < RING_SIZE - 1;
        }
        if (trove_daemon_reload_asked (daemon))
            s_reload_sources (self);
        if (trove_mono_us () >= next_timer) {
            s_timer (self);
            next_timer = trove_mono_us () + TIMER_MS * 1000;
        }
        if (trove_mono_us () >= next_heartbeat) {
            s_heartbeat (self);
            next_heartbeat = trove_mono_us () + 1000000;
        }
    }
    trove_log ('I', "ingestor %s stopping", name);
    rc = 0;
done:
    free (err);
    free (items);
    if (self) {
        //  HTTP handlers still waiting give up first (their events are
        //  answered retry); then the server stops and joins its threads.
        if (self->ingest)
            trove_ingest_stop (self->ingest);
        trove_http_destroy (&self->http);
        //  After the server: its threads' routers are gone with them.
        trove_admin_destroy (&self->admin);
        trove_api_destroy (&self->api);
        trove_ingest_destroy (&self->ingest);
        trove_sources_destroy (&self->sources);
        while (self->old_sources && zlist_size (self->old_sources)) {
            trove_sources_t *old = zlist_pop (self->old_sources);
            trove_sources_destroy (&old);
        }
        zlist_destroy (&self->old_sources);
        if (self->outbox)
            trove_outbox_each (self->outbox, s_drop, self);
        trove_outbox_destroy (&self->outbox);
        zhashx_destroy (&self->requests);  //  emptied by s_drop
        trove_ratelimit_destroy (&self->ratelimit);
        trove_deadletter_destroy (&self->deadletter);
        zhashx_destroy (&self->m.rejections);
        free (self->m.resends);
        free (self->m.giveups);
        free (self->m.shard_inflight);
        free (self->m.shard_queued);
        for (size_t s = 0; s < self->nshards && self->dealers; s++)
            zsock_destroy (&self->dealers [s]);
        free (self->dealers);
        zsock_destroy (&self->front);
        zsock_destroy (&self->pub);
        free (self);
    }
    return rc;
}

static const trove_daemon_spec_t s_spec = {
    .role = "ingestor",
    .name_option = "--name",
    .usage = "usage: trove-ingestor --config FILE --name NAME\n"
             "       trove-ingestor --routes --config FILE --name NAME\n"
             "                                   print its HTTP routes (binds nothing)\n"
             "       trove-ingestor --new-key    print a new source key and its hash\n"
             "       trove-ingestor --hash-key   read a key on stdin, print its hash\n",
    .metrics = true,
    .reload = true,  //  SIGHUP: read the sources again
    .tools = s_tools,
};

//  --routes: the route table of this ingestor's HTTP listener, built as
//  the daemon builds it (s_http_build, and /metrics when it shares the
//  address) and printed (trove_http_routes), nothing bound or started: what
//  tests/integration/test_openapi.sh compares with docs/openapi.json.
static int
s_print_routes (int argc, char *argv [], int at)
{
    char **args = calloc ((size_t) argc, sizeof *args);
    if (!args)
        return 1;
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (i != at)
            args [n++] = argv [i];
    int rc = 1;
    trove_daemon_t *daemon = trove_daemon_new (&s_spec, n, args, &rc);
    s_ingestor_t *self = daemon ? calloc (1, sizeof *self) : NULL;
    char *err = NULL, *routes = NULL;
    const char *address = NULL;
    trove_http_limits_t limits;
    if (!self)
        goto done;
    self->daemon = daemon;
    self->cfg = trove_daemon_cfg (daemon);
    self->name = trove_daemon_name (daemon);
    self->m.registry = trove_daemon_metrics (daemon);
    rc = 1;
    self->sources = trove_sources_new (self->cfg, &err);
    if (!self->sources || s_http_build (self, "inproc://trove-routes", &address, &limits, &err))
        goto done;
    if (!address) {
        err = trove_strdupf ("ingestor '%s' has no http address: no routes", self->name);
        goto done;
    }
    if (trove_daemon_metrics_shared (daemon, address) && trove_metrics_route (self->m.registry, self->http))
        goto done;
    routes = trove_http_routes (self->http);
    if (routes && fputs (routes, stdout) >= 0 && fflush (stdout) == 0)
        rc = 0;
done:
    if (rc && daemon)
        trove_log ('E', "--routes: %s", err ? err : "out of memory");
    free (routes);
    free (err);
    if (self) {
        trove_http_destroy (&self->http);
        trove_admin_destroy (&self->admin);
        trove_api_destroy (&self->api);
        trove_ingest_destroy (&self->ingest);
        trove_sources_destroy (&self->sources);
        free (self);
    }
    trove_daemon_destroy (&daemon);
    free (args);
    return rc;
}

int
main (int argc, char *argv [])
{
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], "--routes") == 0)
            return s_print_routes (argc, argv, i);
    return trove_daemon_main (&s_spec, argc, argv, s_daemon_run);
}
