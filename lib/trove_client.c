/*  trove_client - request/reply calls, the pipelined submitter and the award
    subscriber. See trove_client.h for the contracts. */
#include "trove_client.h"
#include "trove_curve.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  The largest frame any cluster may allow (the ceiling of limits/max_frame),
//  used by trove_client_call, which has no config at hand.
#define S_MAX_FRAME_CEILING (64 * 1024 * 1024)
//  Bytes a Msg{submit} adds around its events, and per event (tag + length).
#define S_SUBMIT_OVERHEAD 32
#define S_EVENT_OVERHEAD 6
//  A partly filled batch waits at most this long for more events (poll sends it).
#define S_LINGER_US 5000
//  Submit resend after a failed send (no ingestor connected, HWM reached).
#define S_SEND_RETRY_US 100000
//  Ingestors a submitter polls (a config has at most 100).
#define S_INGESTORS_MAX 128
//  Backoff after a RETRY answer: first delay, ceiling.
#define S_RETRY_MIN_US 50000
#define S_RETRY_MAX_US 1000000
//  Award catch-up: events per "awards" query, call timeout, backoff ceiling.
#define S_AWARDS_LIMIT 1000
#define S_AWARDS_TIMEOUT_MS 1000
#define S_AWARDS_BACKOFF_MAX_US 2000000
//  Awards held behind a gap, per shard; beyond that they are dropped and
//  fetched later by the catch-up (the shard's target remembers they exist).
#define S_HELD_MAX 10000

uint64_t
trove_client_req_id (void)
{
    static bool initialized = false;
    if (!initialized) {
        if (sodium_init () < 0)
            abort ();  //  no entropy source: nothing can work
        initialized = true;
    }
    uint64_t id = 0;
    while (id == 0)
        randombytes_buf (&id, sizeof id);
    return id;
}

//  A DEALER or SUB with the client options, connected to endpoint (if given).
//  NULL on failure.
static zsock_t *
s_socket (int type, const char *endpoint, size_t max_frame, bool immediate)
{
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 0);
    zsock_set_maxmsgsize (sock, (int) max_frame);
    zsock_set_reconnect_ivl (sock, 100);
    if (immediate)
        zsock_set_immediate (sock, 1);
    if (endpoint && trove_curve_connect (sock, endpoint, false)) {
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

//  A PAIR receiving sock's ZMQ_EVENT_DISCONNECTED events. A server that dies
//  (or restarts) after taking a request never answers it: its replacement
//  does not know the request, so waiting out the timeout would be wasted
//  (trovectl reconcile waits up to 30 minutes). NULL on failure.
static zsock_t *
s_monitor_disconnects (zsock_t *sock)
{
    static _Atomic unsigned long counter = 0;
    char endpoint [96];
    snprintf (endpoint, sizeof endpoint, "inproc://trove-client-monitor-%p-%lu", (void *) sock,
              (unsigned long) counter++);
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, ZMQ_EVENT_DISCONNECTED))
        return NULL;
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    if (monitor && zsock_connect (monitor, "%s", endpoint))
        zsock_destroy (&monitor);
    return monitor;
}

//  Drain the monitor; true if it reported a disconnection.
static bool
s_disconnected (zsock_t *monitor)
{
    bool seen = false;
    zmq_msg_t part;
    zmq_msg_init (&part);
    //  Each event is two frames: [u16 event, u32 value] and the endpoint.
    while (zmq_msg_recv (&part, zsock_resolve (monitor), ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_size (&part) == 6) {
            uint16_t event;
            memcpy (&event, zmq_msg_data (&part), sizeof event);
            seen |= (event & ZMQ_EVENT_DISCONNECTED) != 0;
        }
    }
    zmq_msg_close (&part);
    return seen;
}

//  Receive one message (every frame of it) and decode its last frame, so that
//  an optional empty delimiter before the body is tolerated. Returns -1 when
//  nothing was received (errno EAGAIN, EINTR, ...), else 0 with *msg_p the
//  decoded message or NULL when the frame was not a valid trove.Msg.
static int
s_recv (void *handle, size_t max_frame, int flags, Trove__Msg **msg_p)
{
    *msg_p = NULL;
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, handle, flags) == -1) {
        int saved = errno;
        zmq_msg_close (&part);
        errno = saved;
        return -1;
    }
    while (zmq_msg_more (&part)) {
        zmq_msg_close (&part);
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) == -1)
            goto fail;
    }
    *msg_p = trove_msg_decode (zmq_msg_data (&part), zmq_msg_size (&part), max_frame, NULL);
fail:
    zmq_msg_close (&part);
    return 0;
}

//  Take the query reply out of msg and free the rest. NULL if msg is not a
//  query reply.
static Trove__QueryReply *
s_take_query_reply (Trove__Msg **msg_p)
{
    Trove__Msg *msg = *msg_p;
    Trove__QueryReply *reply = NULL;
    if (msg && msg->body_case == TROVE__MSG__BODY_QUERY_REPLY) {
        reply = msg->query_reply;
        msg->query_reply = NULL;
        msg->body_case = TROVE__MSG__BODY__NOT_SET;
    }
    trove_msg_free (msg_p);
    return reply;
}

Trove__QueryReply *
trove_client_call_max (const char *endpoint, const Trove__Query *query, int timeout_ms, int retries,
                       size_t max_frame, char **err_p)
{
    assert (endpoint);
    assert (query);
    Trove__Query q = *query;
    if (q.req_id == 0)
        q.req_id = trove_client_req_id ();
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_QUERY;
    msg.query = &q;
    char *err = NULL;
    Trove__QueryReply *reply = NULL;
    bool malformed = false;
    bool lost = false;  //  the last attempt's connection dropped before the reply
    int attempt;
    for (attempt = 0; attempt <= retries && !reply; attempt++) {
        zsock_t *sock = s_socket (ZMQ_DEALER, endpoint, max_frame, false);
        zsock_t *monitor = sock ? s_monitor_disconnects (sock) : NULL;
        if (!sock || !monitor) {
            zsock_destroy (&sock);
            err = trove_strdupf ("cannot connect to %s", endpoint);
            goto fail;
        }
        lost = false;
        if (trove_msg_send (sock, NULL, 0, &msg, ZMQ_DONTWAIT) == 0) {
            void *handle = zsock_resolve (sock);
            int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
            while (!reply && !lost) {
                int64_t left_ms = (deadline - trove_mono_us () + 999) / 1000;
                if (left_ms <= 0)
                    break;
                zmq_pollitem_t items [2] = {{handle, 0, ZMQ_POLLIN, 0},
                                            {zsock_resolve (monitor), 0, ZMQ_POLLIN, 0}};
                int rc = zmq_poll (items, 2, (long) left_ms);
                if (rc == -1 && (errno == EINTR || errno == ETERM)) {
                    zsock_destroy (&monitor);
                    zsock_destroy (&sock);
                    err = trove_strdupf ("interrupted");
                    goto fail;
                }
                Trove__Msg *in;
                while (!reply && s_recv (handle, max_frame, ZMQ_DONTWAIT, &in) == 0) {
                    if (!in) {
                        malformed = true;
                        continue;
                    }
                    Trove__QueryReply *candidate = s_take_query_reply (&in);
                    if (candidate && candidate->req_id == q.req_id)
                        reply = candidate;
                    else if (candidate)  //  an answer to somebody else's question
                        trove__query_reply__free_unpacked (candidate, NULL);
                    else
                        malformed = true;
                }
                //  Replies first: a reply that came just before the drop counts.
                if (!reply && (items [1].revents & ZMQ_POLLIN))
                    lost = s_disconnected (monitor);
            }
        }
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zsock_destroy (&monitor);
        zsock_destroy (&sock);
    }
    if (!reply && lost) {
        err = trove_strdupf ("connection to %s lost before the reply (%d attempt%s)", endpoint, attempt,
                             attempt > 1 ? "s" : "");
        goto fail;
    }
    if (!reply) {
        err = trove_strdupf ("%s from %s within %d ms (%d attempt%s)%s",
                             malformed ? "no valid reply" : "no reply", endpoint, timeout_ms, attempt,
                             attempt > 1 ? "s" : "", malformed ? "" : trove_curve_hint ());
        goto fail;
    }
    return reply;
fail:
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

Trove__QueryReply *
trove_client_call (const char *endpoint, const Trove__Query *query, int timeout_ms, int retries, char **err_p)
{
    return trove_client_call_max (endpoint, query, timeout_ms, retries, S_MAX_FRAME_CEILING, err_p);
}

int
trove_client_call_all (const char *const *endpoints, size_t n, const Trove__Query *query, int timeout_ms,
                       int retries, size_t max_frame, Trove__QueryReply **replies)
{
    assert (query);
    assert (n == 0 || (endpoints && replies));
    int rc = -1;
    zsock_t **socks = calloc (n ? n : 1, sizeof *socks);
    uint64_t *ids = calloc (n ? n : 1, sizeof *ids);
    zmq_pollitem_t *items = calloc (n ? n : 1, sizeof *items);
    size_t *which = calloc (n ? n : 1, sizeof *which);
    if (!socks || !ids || !items || !which)
        goto fail;
    size_t answered = 0;
    for (size_t i = 0; i < n; i++)
        replies [i] = NULL;
    for (int attempt = 0; attempt <= retries && answered < n; attempt++) {
        size_t nitems = 0;
        for (size_t i = 0; i < n; i++) {
            if (replies [i])
                continue;
            Trove__Query q = *query;
            q.req_id = ids [i] = trove_client_req_id ();
            Trove__Msg msg = TROVE__MSG__INIT;
            msg.body_case = TROVE__MSG__BODY_QUERY;
            msg.query = &q;
            socks [i] = s_socket (ZMQ_DEALER, endpoints [i], max_frame, false);
            if (!socks [i] || trove_msg_send (socks [i], NULL, 0, &msg, ZMQ_DONTWAIT))
                continue;
            items [nitems] = (zmq_pollitem_t){zsock_resolve (socks [i]), 0, ZMQ_POLLIN, 0};
            which [nitems++] = i;
        }
        int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
        bool interrupted = false;
        while (answered < n && !interrupted) {
            int64_t left_ms = (deadline - trove_mono_us () + 999) / 1000;
            if (left_ms <= 0 || nitems == 0)
                break;
            if (zmq_poll (items, (int) nitems, (long) left_ms) == -1 && (errno == EINTR || errno == ETERM))
                interrupted = true;
            for (size_t k = 0; k < nitems; k++) {
                size_t i = which [k];
                Trove__Msg *in;
                while (!replies [i] && s_recv (items [k].socket, max_frame, ZMQ_DONTWAIT, &in) == 0) {
                    Trove__QueryReply *candidate = s_take_query_reply (&in);
                    if (candidate && candidate->req_id == ids [i]) {
                        replies [i] = candidate;
                        answered++;
                    }
                    else
                        trove_client_reply_free (&candidate);
                }
            }
        }
        for (size_t i = 0; i < n; i++)
            zsock_destroy (&socks [i]);
        if (interrupted)
            goto fail;
    }
    rc = (int) answered;
fail:
    free (socks);
    free (ids);
    free (items);
    free (which);
    return rc;
}

void
trove_client_reply_free (Trove__QueryReply **reply_p)
{
    assert (reply_p);
    if (*reply_p) {
        trove__query_reply__free_unpacked (*reply_p, NULL);
        *reply_p = NULL;
    }
}

//  ---------------------------------------------------------------------------
//  Submitter. Events are grouped into requests; a group keeps its req_id for
//  its whole life. Every transmission of a group carries exactly the group's
//  events that are not final yet, in their original order. That set only
//  shrinks, and only when an answer arrives, so the number of results in a
//  reply tells which transmission it answers: a reply whose count differs
//  from the current set is from an older transmission and is ignored (its
//  final answers will be given again to the current one, since the ingestor
//  answers a repeated req_id idempotently).

typedef struct {
    Trove__Event *event;  //  our copy; freed when final
    uint64_t tag;         //  the caller's tag
    int64_t first_us;     //  first transmission (monotonic), 0 = not sent yet
    bool final;           //  answered for good
} s_item_t;

typedef enum {
    S_OPEN,     //  being filled, never sent
    S_WAITING,  //  sent, waiting for the reply until due_us
    S_IDLE      //  to be (re)sent at due_us
} s_group_state_t;

typedef struct {
    uint64_t req_id;        //  kept across every transmission
    char key [17];          //  req_id in hex: the key in submitter->groups
    s_item_t *items;        //  events in submission order (capacity: batch)
    size_t count;           //  events in the group
    size_t live;            //  events not final yet
    size_t bytes;           //  estimated size of a transmission with every event
    s_group_state_t state;  //  see above
    int64_t due_us;         //  deadline of the current state (monotonic)
    int64_t opened_us;      //  when the first event was added (linger)
    unsigned retries;       //  consecutive RETRY rounds, for the backoff
    bool sent;              //  transmitted at least once
    unsigned sends;         //  transmissions so far
    void *handle;           //  its place in submitter->order
} s_group_t;

struct _trove_submitter_t {
    zsock_t **socks;         //  one DEALER per ingestor, all connected
    char **endpoints;        //  every ingestor's
    size_t nendpoints;
    size_t current;          //  the one requests are sent to
    int64_t switched_us;     //  when it was chosen (monotonic)
    int64_t failing_since_us;  //  first failed send since the last success, or 0
    int64_t heard_us;        //  last reply from the current ingestor (or its choice)
    size_t max_frame;        //  frame limit of the cluster
    size_t batch;            //  events per request
    size_t window;           //  events in flight at most
    int timeout_ms;          //  resend when a reply takes longer
    trove_submitter_fn *fn;  //  final answers go here
    void *arg;               //  for fn
    zhashx_t *groups;        //  key -> s_group_t *, every sent or idle group (owned)
    zlistx_t *order;         //  the same groups, oldest first
    s_group_t *open;         //  the group being filled, or NULL
    size_t pending;          //  events added and not final
    Trove__Event **scratch;  //  event pointers of one transmission (capacity: batch)
    char last_retry [128];   //  reason of the last RETRY answer, for messages
};

static void
s_group_destroy (s_group_t **self_p)
{
    s_group_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->count; i++)
            trove_event_destroy (&self->items [i].event);
        free (self->items);
        free (self);
        *self_p = NULL;
    }
}

static void
s_group_destructor (void **item_p)
{
    s_group_destroy ((s_group_t **) item_p);
}

static s_group_t *
s_group_new (size_t capacity)
{
    s_group_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->items = calloc (capacity, sizeof *self->items);
    if (!self->items) {
        free (self);
        return NULL;
    }
    self->req_id = trove_client_req_id ();
    snprintf (self->key, sizeof self->key, "%016llx", (unsigned long long) self->req_id);
    self->state = S_OPEN;
    self->bytes = S_SUBMIT_OVERHEAD;
    return self;
}

trove_submitter_t *
trove_submitter_new (const trove_cfg_t *cfg, size_t batch, size_t window, trove_submitter_fn *fn, void *arg)
{
    assert (cfg);
    assert (fn);
    const trove_limits_t *limits = trove_cfg_limits (cfg);
    trove_submitter_t *self = calloc (1, sizeof *self);
    if (!self)
        goto fail;
    self->max_frame = limits->max_frame;
    self->batch = batch == 0 || batch > limits->max_batch ? limits->max_batch : batch;
    self->window = window ? window : self->batch * 4;
    self->timeout_ms = 2000;
    self->fn = fn;
    self->arg = arg;
    self->scratch = calloc (self->batch, sizeof *self->scratch);
    self->groups = zhashx_new ();
    self->order = zlistx_new ();
    self->nendpoints = trove_cfg_ingestors (cfg);
    self->endpoints = calloc (self->nendpoints ? self->nendpoints : 1, sizeof *self->endpoints);
    if (!self->scratch || !self->groups || !self->order || !self->endpoints || self->nendpoints == 0)
        goto fail;
    zhashx_set_destructor (self->groups, s_group_destructor);
    for (size_t i = 0; i < self->nendpoints; i++)
        if (!(self->endpoints [i] = strdup (trove_cfg_ingestor_endpoint (cfg, i))))
            goto fail;
    //  Requests go to one ingestor at a time, so that this producer's reach
    //  the scorers in the order it sends them (docs/architecture.md,
    //  "Order"); producers spread over the ingestors by a random start.
    //  Every ingestor stays connected: answers still come from the one left
    //  behind after a switch.
    self->socks = calloc (self->nendpoints, sizeof *self->socks);
    if (!self->socks)
        goto fail;
    for (size_t i = 0; i < self->nendpoints; i++) {
        self->socks [i] = s_socket (ZMQ_DEALER, NULL, self->max_frame, true);
        if (!self->socks [i] || trove_curve_connect (self->socks [i], self->endpoints [i], false))
            goto fail;
    }
    self->current = (size_t) (trove_client_req_id () % self->nendpoints);
    self->switched_us = self->heard_us = trove_mono_us ();
    return self;
fail:
    trove_submitter_destroy (&self);
    return NULL;
}

void
trove_submitter_destroy (trove_submitter_t **self_p)
{
    assert (self_p);
    trove_submitter_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->order);
        zhashx_destroy (&self->groups);
        s_group_destroy (&self->open);
        for (size_t i = 0; self->socks && i < self->nendpoints; i++)
            zsock_destroy (&self->socks [i]);
        free (self->socks);
        for (size_t i = 0; self->endpoints && i < self->nendpoints; i++)
            free (self->endpoints [i]);
        free (self->endpoints);
        free (self->scratch);
        free (self);
        *self_p = NULL;
    }
}

void
trove_submitter_set_timeout (trove_submitter_t *self, int timeout_ms)
{
    assert (self);
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
}

//  Send the group's live events with its req_id. If the send fails the
//  group waits S_SEND_RETRY_US and tries again (the DEALER refuses a message
//  when no ingestor is connected).
static void
s_group_send (trove_submitter_t *self, s_group_t *group)
{
    size_t n = 0;
    for (size_t i = 0; i < group->count; i++)
        if (!group->items [i].final)
            self->scratch [n++] = group->items [i].event;
    Trove__SubmitRequest request = TROVE__SUBMIT_REQUEST__INIT;
    request.req_id = group->req_id;
    request.n_events = n;
    request.events = self->scratch;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT;
    msg.submit = &request;
    int64_t now = trove_mono_us ();
    if (trove_msg_send (self->socks [self->current], NULL, 0, &msg, ZMQ_DONTWAIT) == 0) {
        //  Each transmission waits twice as long as the one before (up to
        //  8 timeouts): an answer that is late is not lost, and copies only
        //  add to the load of what is slow.
        int64_t wait = (int64_t) self->timeout_ms * 1000 << (group->sends < 3 ? group->sends : 3);
        group->sends++;
        group->state = S_WAITING;
        group->sent = true;
        group->due_us = now + wait;
        self->failing_since_us = 0;
        for (size_t i = 0; i < group->count; i++)
            if (!group->items [i].final && group->items [i].first_us == 0)
                group->items [i].first_us = now;
    }
    else {
        group->state = S_IDLE;
        group->due_us = now + S_SEND_RETRY_US;
        if (!self->failing_since_us)
            self->failing_since_us = now;
    }
}

//  The ingestor in use looks gone: nothing heard from it for a whole
//  timeout while requests wait, or sends refused for that long (no
//  connection). Go on with the next one. A slow shard is not a reason: the
//  ingestor's other answers keep coming.
static void
s_failover (trove_submitter_t *self, int64_t now)
{
    int64_t timeout = (int64_t) self->timeout_ms * 1000;
    if (self->nendpoints < 2 || now - self->switched_us < timeout)
        return;
    //  Three timeouts of silence: an ingestor whose shards are slow still
    //  answers something now and then; a dead one says nothing at all.
    bool silent = now - self->heard_us >= 3 * timeout;
    bool refused = self->failing_since_us && now - self->failing_since_us >= timeout;
    if (!silent && !refused)
        return;
    self->current = (self->current + 1) % self->nendpoints;
    self->switched_us = self->heard_us = now;
    self->failing_since_us = 0;
}

//  Forget a finished group.
static void
s_group_done (trove_submitter_t *self, s_group_t *group)
{
    zlistx_delete (self->order, group->handle);
    zhashx_delete (self->groups, group->key);
}

//  Move the open group to the table of sent groups and send it.
static void
s_flush_open (trove_submitter_t *self)
{
    s_group_t *group = self->open;
    if (!group)
        return;
    self->open = NULL;
    if (group->count == 0) {
        s_group_destroy (&group);
        return;
    }
    zhashx_insert (self->groups, group->key, group);
    group->handle = zlistx_add_end (self->order, group);
    //  Sent in order: never before an older group's first transmission
    //  (s_timers sends it once that one went out).
    bool older_unsent = false;
    for (s_group_t *g = zlistx_first (self->order); g && g != group && !older_unsent; g = zlistx_next (self->order))
        older_unsent = !g->sent;
    group->state = S_IDLE;
    group->due_us = 0;
    if (!older_unsent)
        s_group_send (self, group);
}

//  Deliver a final answer for one item.
static void
s_finish (trove_submitter_t *self, s_group_t *group, s_item_t *item, const Trove__Result *result)
{
    int64_t latency = item->first_us ? trove_mono_us () - item->first_us : 0;
    item->final = true;
    group->live--;
    self->pending--;
    trove_event_destroy (&item->event);
    self->fn (self->arg, item->tag, result, latency);
}

static bool
s_says_retry (const char *text)
{
    return text && strcasestr (text, "retry") != NULL;
}

static void
s_on_reply (trove_submitter_t *self, const Trove__SubmitReply *reply)
{
    char key [17];
    snprintf (key, sizeof key, "%016llx", (unsigned long long) reply->req_id);
    s_group_t *group = (s_group_t *) zhashx_lookup (self->groups, key);
    if (!group)
        return;  //  a late answer for a finished group
    bool refused = reply->error && *reply->error;
    if (refused && group->state != S_WAITING)
        return;  //  refusal of an older transmission
    if (!refused && reply->n_results != group->live)
        return;  //  answer to an older, larger transmission
    size_t k = 0;
    for (size_t i = 0; i < group->count; i++) {
        s_item_t *item = &group->items [i];
        if (item->final)
            continue;
        if (refused) {
            if (s_says_retry (reply->error)) {
                snprintf (self->last_retry, sizeof self->last_retry, "%s", reply->error);
                continue;
            }
            //  "batch_too_large: 3 events, ..." -> reason code before the
            //  colon (docs/protocol.md), the whole text as the detail.
            char code [64];
            size_t len = strcspn (reply->error, ":");
            snprintf (code, sizeof code, "%.*s", (int) (len < sizeof code ? len : sizeof code - 1),
                      reply->error);
            Trove__Result result = TROVE__RESULT__INIT;
            result.status = TROVE__STATUS__REJECTED;
            result.reason = code;
            result.detail = reply->error;
            s_finish (self, group, item, &result);
            continue;
        }
        const Trove__Result *result = reply->results [k++];
        if (result->status == TROVE__STATUS__RETRY && result->reason)
            snprintf (self->last_retry, sizeof self->last_retry, "%s", result->reason);
        if (result->status == TROVE__STATUS__ACCEPTED || result->status == TROVE__STATUS__DUPLICATE
            || result->status == TROVE__STATUS__REJECTED)
            s_finish (self, group, item, result);
    }
    if (group->live == 0) {
        s_group_done (self, group);
        return;
    }
    //  Some events must come again later, with the same req_id.
    int64_t delay = S_RETRY_MIN_US << (group->retries < 5 ? group->retries : 5);
    if (delay > S_RETRY_MAX_US)
        delay = S_RETRY_MAX_US;
    group->retries++;
    group->state = S_IDLE;
    group->due_us = trove_mono_us () + delay;
}

//  Send what is due: lingering open batch, timed out or idle groups. Returns
//  the time (monotonic) of the next thing due, or INT64_MAX.
static int64_t
s_timers (trove_submitter_t *self)
{
    int64_t now = trove_mono_us ();
    int64_t next = INT64_MAX;
    if (self->open && self->open->count) {
        if (now - self->open->opened_us >= S_LINGER_US)
            s_flush_open (self);
        else
            next = self->open->opened_us + S_LINGER_US;
    }
    //  Oldest first; a group never sent waits while an older one has not
    //  gone out yet (a refused send), so requests leave in order.
    if (self->pending)
        s_failover (self, now);
    bool held = false;
    for (s_group_t *group = (s_group_t *) zlistx_first (self->order); group;
         group = (s_group_t *) zlistx_next (self->order)) {
        bool waits = held && !group->sent;  //  goes once the older one went
        if (group->due_us <= now && !waits)
            s_group_send (self, group);
        if (!group->sent)
            held = true;
        if (!waits && group->due_us < next)
            next = group->due_us;
    }
    return next;
}

int
trove_submitter_add (trove_submitter_t *self, const Trove__Event *event, uint64_t tag)
{
    assert (self);
    assert (event);
    if (self->pending >= self->window)
        return -1;
    if (self->pending == 0)
        self->heard_us = trove_mono_us ();  //  a busy spell starts: silence counts from here
    size_t size = trove__event__get_packed_size (event) + S_EVENT_OVERHEAD;
    if (size + S_SUBMIT_OVERHEAD > self->max_frame) {
        //  No request could carry it: the ingestor would drop the connection.
        Trove__Result result = TROVE__RESULT__INIT;
        result.status = TROVE__STATUS__REJECTED;
        result.reason = "frame_too_large";
        result.detail = "the event alone is larger than limits/max_frame";
        self->fn (self->arg, tag, &result, 0);
        return 0;
    }
    if (self->open && self->open->bytes + size > self->max_frame)
        s_flush_open (self);
    if (!self->open) {
        self->open = s_group_new (self->batch);
        if (!self->open)
            return -1;
        self->open->opened_us = trove_mono_us ();
    }
    s_group_t *group = self->open;
    s_item_t *item = &group->items [group->count];
    item->event = trove_event_dup (event);
    if (!item->event)
        return -1;
    item->tag = tag;
    group->count++;
    group->live++;
    group->bytes += size;
    self->pending++;
    if (group->count == self->batch)
        s_flush_open (self);
    return 0;
}

void
trove_submitter_flush (trove_submitter_t *self)
{
    assert (self);
    s_flush_open (self);
}

size_t
trove_submitter_poll (trove_submitter_t *self, int timeout_ms)
{
    assert (self);
    zmq_pollitem_t items [S_INGESTORS_MAX];
    size_t n = self->nendpoints < S_INGESTORS_MAX ? self->nendpoints : S_INGESTORS_MAX;
    for (size_t i = 0; i < n; i++)
        items [i] = (zmq_pollitem_t){zsock_resolve (self->socks [i]), 0, ZMQ_POLLIN, 0};
    int64_t deadline = trove_mono_us () + (int64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000;
    while (true) {
        bool answered = false;
        //  Answers come from every ingestor: one left behind after a switch
        //  may still answer what it was given.
        for (size_t i = 0; i < n; i++) {
            Trove__Msg *msg;
            while (s_recv (items [i].socket, self->max_frame, ZMQ_DONTWAIT, &msg) == 0) {
                if (i == self->current)
                    self->heard_us = trove_mono_us ();
                if (msg && msg->body_case == TROVE__MSG__BODY_SUBMIT_REPLY) {
                    s_on_reply (self, msg->submit_reply);
                    answered = true;
                }
                trove_msg_free (&msg);
            }
        }
        int64_t next = s_timers (self);
        int64_t now = trove_mono_us ();
        if (answered || self->pending == 0 || now >= deadline)
            break;
        int64_t until = next < deadline ? next : deadline;
        long wait_ms = (long) ((until - now + 999) / 1000);
        if (zmq_poll (items, (int) n, wait_ms < 1 ? 1 : wait_ms) == -1 && (errno == EINTR || errno == ETERM))
            break;
    }
    return self->pending;
}

const char *
trove_submitter_last_retry (trove_submitter_t *self)
{
    assert (self);
    return self->last_retry;
}

size_t
trove_submitter_pending (trove_submitter_t *self)
{
    assert (self);
    return self->pending;
}

void *
trove_submitter_socket (trove_submitter_t *self)
{
    assert (self);
    return self->socks [self->current];
}

//  ---------------------------------------------------------------------------
//  Award subscriber. Per shard: the last aseq delivered, the highest aseq
//  known to exist (target: from awards seen, heartbeats and "awards"
//  replies), and the awards received ahead of a gap. While last < target the
//  missing range is fetched from the scorer before anything later is given.

typedef struct {
    char *query;        //  the scorer's query endpoint
    bool known;         //  the starting point is known
    bool probe;         //  ask the scorer for its awards even if target says nothing is missing
    uint64_t last;      //  last aseq delivered
    uint64_t target;    //  highest aseq known to exist
    Trove__Msg **held;  //  awards ahead of a gap, sorted by aseq
    size_t nheld;       //  number held
    int64_t retry_us;   //  no scorer query before this (monotonic)
    unsigned failures;  //  consecutive failed scorer queries
} s_stream_t;

struct _trove_awardsub_t {
    zsock_t *sub;           //  SUB to the broker, everything
    size_t max_frame;       //  frame limit of the cluster
    size_t nshards;         //  shards of the cluster
    s_stream_t *streams;    //  one per shard
    trove_awardsub_fn *fn;  //  awards go here
    void *arg;              //  for fn
};

static void
s_stream_failed (s_stream_t *stream)
{
    int64_t delay = 200000LL << (stream->failures < 4 ? stream->failures : 4);
    if (delay > S_AWARDS_BACKOFF_MAX_US)
        delay = S_AWARDS_BACKOFF_MAX_US;
    stream->failures++;
    stream->retry_us = trove_mono_us () + delay;
}

//  Ask the shard's scorer for its last aseq (from_now start). 0 or -1.
static int
s_stream_status (trove_awardsub_t *self, s_stream_t *stream)
{
    Trove__Query query = TROVE__QUERY__INIT;
    query.kind = "status";
    Trove__QueryReply *reply = trove_client_call_max (stream->query, &query, 500, 1, self->max_frame, NULL);
    if (!reply || (reply->error && *reply->error)) {
        trove_client_reply_free (&reply);
        s_stream_failed (stream);
        return -1;
    }
    uint64_t last = reply->last_aseq;
    if (reply->status && reply->status->last_aseq > last)
        last = reply->status->last_aseq;
    stream->known = true;
    stream->last = stream->target = last;
    stream->failures = 0;
    trove_client_reply_free (&reply);
    return 0;
}

static void
s_deliver (trove_awardsub_t *self, s_stream_t *stream, Trove__Coin *coin, size_t shard)
{
    coin->shard = (uint32_t) shard;
    stream->last = coin->aseq;
    if (stream->target < stream->last)
        stream->target = stream->last;
    self->fn (self->arg, coin);
}

//  Deliver held awards that are next in line, drop those already delivered.
static void
s_drain (trove_awardsub_t *self, s_stream_t *stream, size_t shard)
{
    size_t i = 0;
    for (; i < stream->nheld; i++) {
        Trove__Coin *coin = stream->held [i]->award;
        if (coin->aseq > stream->last + 1)
            break;
        if (coin->aseq == stream->last + 1)
            s_deliver (self, stream, coin, shard);
        trove_msg_free (&stream->held [i]);
    }
    if (i) {
        memmove (stream->held, stream->held + i, (stream->nheld - i) * sizeof *stream->held);
        stream->nheld -= i;
    }
}

//  Keep an award that arrived ahead of a gap (takes msg).
static void
s_hold (s_stream_t *stream, Trove__Msg **msg_p)
{
    uint64_t aseq = (*msg_p)->award->aseq;
    if (stream->nheld == S_HELD_MAX) {
        trove_msg_free (msg_p);  //  the catch-up will fetch it
        return;
    }
    size_t at = stream->nheld;
    while (at > 0 && stream->held [at - 1]->award->aseq > aseq)
        at--;
    if (at > 0 && stream->held [at - 1]->award->aseq == aseq) {
        trove_msg_free (msg_p);  //  seen it already
        return;
    }
    memmove (stream->held + at + 1, stream->held + at, (stream->nheld - at) * sizeof *stream->held);
    stream->held [at] = *msg_p;
    stream->nheld++;
    *msg_p = NULL;
}

//  Fetch what is missing from the scorer, as long as it answers. 0 or -1.
static int
s_catch_up (trove_awardsub_t *self, size_t shard)
{
    s_stream_t *stream = &self->streams [shard];
    while (stream->known && (stream->last < stream->target || stream->probe)) {
        if (trove_mono_us () < stream->retry_us)
            return -1;
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "awards";
        query.from_aseq = stream->last + 1;
        query.limit = S_AWARDS_LIMIT;
        Trove__QueryReply *reply =
            trove_client_call_max (stream->query, &query, S_AWARDS_TIMEOUT_MS, 0, self->max_frame, NULL);
        if (!reply || (reply->error && *reply->error)) {
            trove_client_reply_free (&reply);
            s_stream_failed (stream);
            return -1;
        }
        stream->probe = false;
        stream->failures = 0;
        if (reply->last_aseq > stream->target)
            stream->target = reply->last_aseq;
        size_t delivered = 0;
        for (size_t i = 0; i < reply->n_coins; i++) {
            Trove__Coin *coin = reply->coins [i];
            if (coin->aseq <= stream->last)
                continue;
            if (coin->aseq != stream->last + 1)
                break;  //  a hole in the answer: ask again from there
            s_deliver (self, stream, coin, shard);
            delivered++;
        }
        trove_client_reply_free (&reply);
        s_drain (self, stream, shard);
        if (delivered == 0 && stream->last < stream->target) {
            //  The scorer has nothing yet for what we believe exists (e.g. a
            //  heartbeat ahead of its commit): try again a little later.
            s_stream_failed (stream);
            return -1;
        }
    }
    return 0;
}

static void
s_on_message (trove_awardsub_t *self, Trove__Msg **msg_p)
{
    Trove__Msg *msg = *msg_p;
    if (msg->body_case == TROVE__MSG__BODY_AWARD) {
        Trove__Coin *coin = msg->award;
        if (coin->shard >= self->nshards || coin->aseq == 0)
            goto done;
        s_stream_t *stream = &self->streams [coin->shard];
        if (!stream->known) {
            stream->known = true;
            stream->last = stream->target = coin->aseq - 1;
        }
        if (coin->aseq == stream->last + 1) {
            s_deliver (self, stream, coin, coin->shard);
            s_drain (self, stream, coin->shard);
        }
        else if (coin->aseq > stream->last + 1) {
            if (stream->target < coin->aseq - 1)
                stream->target = coin->aseq - 1;
            s_hold (stream, msg_p);
        }
    }
    else if (msg->body_case == TROVE__MSG__BODY_HEARTBEAT) {
        Trove__Heartbeat *beat = msg->heartbeat;
        if (!beat->role || strcmp (beat->role, "scorer") || beat->shard >= self->nshards)
            goto done;
        s_stream_t *stream = &self->streams [beat->shard];
        if (!stream->known) {
            stream->known = true;
            stream->last = stream->target = beat->last_aseq;
        }
        if (beat->last_aseq > stream->target)
            stream->target = beat->last_aseq;
    }
done:
    trove_msg_free (msg_p);
}

trove_awardsub_t *
trove_awardsub_new (const trove_cfg_t *cfg, bool from_now, trove_awardsub_fn *fn, void *arg)
{
    assert (cfg);
    assert (fn);
    trove_awardsub_t *self = calloc (1, sizeof *self);
    if (!self)
        goto fail;
    self->fn = fn;
    self->arg = arg;
    self->max_frame = trove_cfg_limits (cfg)->max_frame;
    self->nshards = trove_cfg_shards (cfg);
    self->streams = calloc (self->nshards, sizeof *self->streams);
    if (!self->streams)
        goto fail;
    for (size_t i = 0; i < self->nshards; i++) {
        s_stream_t *stream = &self->streams [i];
        stream->query = strdup (trove_cfg_shard_query (cfg, i));
        stream->held = calloc (S_HELD_MAX, sizeof *stream->held);
        if (!stream->query || !stream->held)
            goto fail;
    }
    //  Subscribe first, then learn where each shard is: an award published
    //  in between is either seen live or found by the catch-up.
    self->sub = s_socket (ZMQ_SUB, NULL, self->max_frame, false);
    if (!self->sub)
        goto fail;
    zsock_set_subscribe (self->sub, "");
    if (trove_curve_connect (self->sub, trove_cfg_broker_sub (cfg), false))
        goto fail;
    if (from_now) {
        //  Every shard at once; a shard that does not answer is asked again
        //  by poll until it does (or its first award or heartbeat arrives).
        const char **endpoints = calloc (self->nshards, sizeof *endpoints);
        Trove__QueryReply **replies = calloc (self->nshards, sizeof *replies);
        if (!endpoints || !replies) {
            free (endpoints);
            free (replies);
            goto fail;
        }
        for (size_t i = 0; i < self->nshards; i++)
            endpoints [i] = self->streams [i].query;
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "status";
        trove_client_call_all (endpoints, self->nshards, &query, 500, 1, self->max_frame, replies);
        for (size_t i = 0; i < self->nshards; i++) {
            Trove__QueryReply *reply = replies [i];
            if (reply && !(reply->error && *reply->error)) {
                s_stream_t *stream = &self->streams [i];
                uint64_t last = reply->last_aseq;
                if (reply->status && reply->status->last_aseq > last)
                    last = reply->status->last_aseq;
                stream->known = true;
                stream->last = stream->target = last;
            }
            trove_client_reply_free (&replies [i]);
        }
        free (endpoints);
        free (replies);
    }
    else
        for (size_t i = 0; i < self->nshards; i++) {
            self->streams [i].known = true;
            self->streams [i].probe = true;
        }
    return self;
fail:
    trove_awardsub_destroy (&self);
    return NULL;
}

void
trove_awardsub_destroy (trove_awardsub_t **self_p)
{
    assert (self_p);
    trove_awardsub_t *self = *self_p;
    if (self) {
        for (size_t i = 0; self->streams && i < self->nshards; i++) {
            s_stream_t *stream = &self->streams [i];
            for (size_t k = 0; k < stream->nheld; k++)
                trove_msg_free (&stream->held [k]);
            free (stream->held);
            free (stream->query);
        }
        free (self->streams);
        zsock_destroy (&self->sub);
        free (self);
        *self_p = NULL;
    }
}

//  Start points and catch-ups that are due.
static void
s_awardsub_work (trove_awardsub_t *self)
{
    for (size_t i = 0; i < self->nshards; i++) {
        s_stream_t *stream = &self->streams [i];
        if (!stream->known && trove_mono_us () >= stream->retry_us)
            s_stream_status (self, stream);
        if (stream->known)
            s_catch_up (self, i);
    }
}

int
trove_awardsub_poll (trove_awardsub_t *self, int timeout_ms)
{
    assert (self);
    void *handle = zsock_resolve (self->sub);
    s_awardsub_work (self);
    int64_t deadline = trove_mono_us () + (int64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000;
    int rc = 0;
    while (true) {
        bool received = false;
        Trove__Msg *msg;
        while (s_recv (handle, self->max_frame, ZMQ_DONTWAIT, &msg) == 0) {
            received = true;
            if (msg)
                s_on_message (self, &msg);
        }
        s_awardsub_work (self);
        int64_t now = trove_mono_us ();
        if (received || now >= deadline)
            break;
        //  Wake up for a pending catch-up retry, too.
        int64_t until = deadline;
        for (size_t i = 0; i < self->nshards; i++) {
            s_stream_t *stream = &self->streams [i];
            bool waiting = !stream->known || stream->last < stream->target || stream->probe;
            if (waiting && stream->retry_us > now && stream->retry_us < until)
                until = stream->retry_us;
        }
        long wait_ms = (long) ((until - now + 999) / 1000);
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, wait_ms < 1 ? 1 : wait_ms) == -1 && (errno == EINTR || errno == ETERM)) {
            rc = -1;
            break;
        }
    }
    return rc;
}

uint64_t
trove_awardsub_last (trove_awardsub_t *self, size_t shard)
{
    assert (self);
    assert (shard < self->nshards);
    return self->streams [shard].last;
}

void *
trove_awardsub_socket (trove_awardsub_t *self)
{
    assert (self);
    return self->sub;
}
