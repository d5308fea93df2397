/*  trove_submitter - the pipelined producer. See trove_submitter.h for the
    contracts. */
#include "trove_submitter.h"
#include "trove_client.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

//  Events are grouped into requests; a group keeps its req_id for
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
    zsock_t **socks;   //  one DEALER per ingestor, all connected
    char **endpoints;  //  every ingestor's
    size_t nendpoints;
    size_t current;            //  the one requests are sent to
    int64_t switched_us;       //  when it was chosen (monotonic)
    int64_t failing_since_us;  //  first failed send since the last success, or 0
    int64_t heard_us;          //  last reply from the current ingestor (or its choice)
    size_t max_frame;          //  frame limit of the cluster
    size_t batch;              //  events per request
    size_t window;             //  events in flight at most
    int timeout_ms;            //  resend when a reply takes longer
    trove_submitter_fn *fn;    //  final answers go here
    void *arg;                 //  for fn
    zhashx_t *groups;          //  key -> s_group_t *, every sent or idle group (owned)
    zlistx_t *order;           //  the same groups, oldest first
    s_group_t *open;           //  the group being filled, or NULL
    size_t pending;            //  events added and not final
    Trove__Event **scratch;    //  event pointers of one transmission (capacity: batch)
    char last_retry [128];     //  reason of the last RETRY answer, for messages
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
        self->socks [i] =
            trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_SUBMIT, self->endpoints [i], self->max_frame);
        if (!self->socks [i])
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
    for (s_group_t *g = zlistx_first (self->order); g && g != group && !older_unsent;
         g = zlistx_next (self->order))
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
        result.reason = (char *) trove_strerror (TROVE_E_FRAME_TOO_LARGE);
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
            while (trove_client_recv (items [i].socket, self->max_frame, ZMQ_DONTWAIT, &msg) == 0) {
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
