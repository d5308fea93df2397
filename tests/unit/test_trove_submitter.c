/*  test_trove_submitter - lib/net/trove_submitter against a fake ingestor ROUTER
    driven from the test thread, on loopback TCP (fake_peers.c: the cluster
    config). The submitter is non-blocking, so the test interleaves its poll
    with the fake's: exactly-once delivery of final answers, RETRY and
    timeout resends with the same req_id, the credit window, whole-request
    refusals and the max_frame limits.

    Every wait is bounded; nothing sleeps and hopes. */
#include "fake_peers.h"
#include "trove_submitter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What a test holds. The per-test teardown destroys whatever is left, so a
//  failed test does not leave a port bound for the next.
static struct {
    zsock_t *ingestor;       //  fake ingestor ROUTER
    trove_submitter_t *sub;  //  submitter under test
} s_fx;

static int
s_group_setup (void **state)
{
    (void) state;
    return fake_cluster_setup (1);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    return fake_cluster_teardown ();
}

static int
s_setup (void **state)
{
    (void) state;
    memset (&s_fx, 0, sizeof s_fx);
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
    return 0;
}

//  trove_submitter against a fake ingestor ROUTER in the test thread.

#define S_TAGS 64

typedef struct {
    int calls [S_TAGS];             //  final answers per tag
    Trove__Status status [S_TAGS];  //  last status per tag
    char reason [S_TAGS][96];       //  last reason per tag
    int64_t latency_us [S_TAGS];    //  last latency per tag
    int total;                      //  every call
} s_results_t;

static void
s_on_result (void *arg, uint64_t tag, const Trove__Result *result, int64_t latency_us)
{
    s_results_t *self = arg;
    self->total++;
    if (tag >= S_TAGS)
        return;
    self->calls [tag]++;
    self->status [tag] = result->status;
    snprintf (self->reason [tag], sizeof self->reason [tag], "%s", result->reason ? result->reason : "");
    self->latency_us [tag] = latency_us;
}

//  Add event "e-<n>" with tag n; user is "u1" unless given.
static int
s_add (trove_submitter_t *sub, int n, const char *user)
{
    char id [32];
    snprintf (id, sizeof id, "e-%d", n);
    Trove__Event event = TROVE__EVENT__INIT;
    event.source = "web";
    event.id = id;
    event.user = (char *) (user ? user : "u1");
    event.type = "visit";
    event.ts_ms = 1773129600000;
    return trove_submitter_add (sub, &event, (uint64_t) n);
}

static int
s_event_no (const Trove__Event *event)
{
    assert_true (strncmp (event->id, "e-", 2) == 0);
    return atoi (event->id + 2);
}

typedef struct {
    zframe_t *rid;                 //  routing id of the producer
    Trove__Msg *msg;               //  the decoded Msg{submit}
    Trove__SubmitRequest *submit;  //  msg->submit
    size_t frame_size;             //  bytes of the body frame
    int64_t at_us;                 //  when it arrived (monotonic)
} s_request_t;

static void
s_request_free (s_request_t *req)
{
    zframe_destroy (&req->rid);
    trove_msg_free (&req->msg);
    req->submit = NULL;
}

static zsock_t *
s_ingestor_new (void)
{
    zsock_t *router = s_fx.ingestor = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    zsock_set_linger (router, 0);
    if (fake_bind (router, fake_cluster.ingestor))
        fail_msg ("fake ingestor cannot bind %s (port in use?)", fake_cluster.ingestor);
    return router;
}

//  Wait up to timeout_ms for the next request at the fake ingestor, driving
//  the submitter (poll without waiting: linger, resends, replies) meanwhile.
static bool
s_next_request (zsock_t *router, trove_submitter_t *sub, int timeout_ms, s_request_t *req)
{
    memset (req, 0, sizeof *req);
    void *handle = zsock_resolve (router);
    int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
    while (trove_mono_us () < deadline) {
        trove_submitter_poll (sub, 0);
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 2) < 1)
            continue;
        zmsg_t *zmsg = zmsg_recv (router);
        assert_non_null (zmsg);
        req->at_us = trove_mono_us ();
        //  a DEALER sends one body frame; the ROUTER adds the routing id
        assert_int_equal (zmsg_size (zmsg), 2);
        req->rid = zmsg_pop (zmsg);
        zframe_t *body = zmsg_first (zmsg);
        req->frame_size = zframe_size (body);
        req->msg = trove_msg_decode (zframe_data (body), zframe_size (body), 1 << 20, NULL);
        zmsg_destroy (&zmsg);
        assert_non_null (req->msg);
        assert_int_equal (req->msg->body_case, TROVE__MSG__BODY_SUBMIT);
        req->submit = req->msg->submit;
        assert_true (req->submit->req_id != 0);
        return true;
    }
    return false;
}

static const char *
s_reason_of (Trove__Status status)
{
    return status == TROVE__STATUS__REJECTED ? "bad_user"
         : status == TROVE__STATUS__RETRY    ? "shard_unavailable"
                                             : "";
}

//  Answer req_id with one result per status, or refuse it whole (error).
static void
s_reply (zsock_t *router, zframe_t *rid, uint64_t req_id, const Trove__Status *statuses, size_t n,
         const char *error)
{
    Trove__Result results [S_TAGS];
    Trove__Result *ptrs [S_TAGS];
    assert_true (n <= S_TAGS);
    for (size_t i = 0; i < n; i++) {
        trove__result__init (&results [i]);
        results [i].status = statuses [i];
        results [i].reason = (char *) s_reason_of (statuses [i]);
        results [i].detail = "from the fake ingestor";
        ptrs [i] = &results [i];
    }
    Trove__SubmitReply reply = TROVE__SUBMIT_REPLY__INIT;
    reply.req_id = req_id;
    reply.n_results = n;
    reply.results = ptrs;
    if (error)
        reply.error = (char *) error;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT_REPLY;
    msg.submit_reply = &reply;
    assert_int_equal (trove_msg_send (router, zframe_data (rid), zframe_size (rid), &msg, 0), 0);
}

//  Answer every event of req with the same status.
static void
s_reply_all (zsock_t *router, const s_request_t *req, Trove__Status status)
{
    Trove__Status statuses [S_TAGS];
    for (size_t i = 0; i < req->submit->n_events && i < S_TAGS; i++)
        statuses [i] = status;
    s_reply (router, req->rid, req->submit->req_id, statuses, req->submit->n_events, NULL);
}

//  Poll until at most goal events are pending (bounded); returns pending.
static size_t
s_drive (trove_submitter_t *sub, size_t goal, int timeout_ms)
{
    int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
    while (trove_submitter_pending (sub) > goal && trove_mono_us () < deadline)
        trove_submitter_poll (sub, 20);
    return trove_submitter_pending (sub);
}

static void
test_submitter_delivers_each_answer_once (void **state)
{
    (void) state;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 4, 0, s_on_result, &results);
    assert_non_null (sub);
    assert_non_null (trove_submitter_socket (sub));
    for (int n = 0; n < 10; n++)
        assert_int_equal (s_add (sub, n, NULL), 0);
    assert_int_equal (trove_submitter_pending (sub), 10);
    trove_submitter_flush (sub);  //  the last 2 do not fill a batch

    //  The fake answers by event number: n % 3 = 0 accepted, 1 duplicate,
    //  2 rejected. Every event is seen once, in batches of at most 4.
    static const Trove__Status by_rest [3] = {TROVE__STATUS__ACCEPTED, TROVE__STATUS__DUPLICATE,
                                              TROVE__STATUS__REJECTED};
    int seen [10] = {0};
    int nseen = 0, nrequests = 0;
    uint64_t req_ids [10];
    while (nseen < 10) {
        s_request_t req;
        if (!s_next_request (router, sub, 3000, &req))
            fail_msg ("the fake ingestor got %d of 10 events", nseen);
        assert_true (req.submit->n_events >= 1 && req.submit->n_events <= 4);
        assert_true (nrequests < 10);
        for (int k = 0; k < nrequests; k++)
            assert_true (req_ids [k] != req.submit->req_id);  //  one req_id per request
        req_ids [nrequests++] = req.submit->req_id;
        Trove__Status statuses [4];
        int prev = -1;
        for (size_t i = 0; i < req.submit->n_events; i++) {
            const Trove__Event *event = req.submit->events [i];
            int n = s_event_no (event);
            assert_true (n >= 0 && n < 10);
            assert_true (n > prev);  //  submission order within a request
            prev = n;
            assert_string_equal (event->source, "web");
            assert_string_equal (event->user, "u1");
            assert_int_equal (event->ts_ms, 1773129600000);
            seen [n]++;
            nseen++;
            statuses [i] = by_rest [n % 3];
        }
        s_reply (router, req.rid, req.submit->req_id, statuses, req.submit->n_events, NULL);
        s_request_free (&req);
    }
    assert_int_equal (nrequests, 3);  //  4 + 4 + 2
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    assert_int_equal (trove_submitter_poll (sub, 0), 0);
    for (int n = 0; n < 10; n++) {
        assert_int_equal (seen [n], 1);
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], by_rest [n % 3]);
        assert_string_equal (results.reason [n], s_reason_of (by_rest [n % 3]));
        assert_true (results.latency_us [n] >= 0 && results.latency_us [n] < 10000000);
    }
    assert_int_equal (results.total, 10);
    //  nothing more goes out once everything is final
    s_request_t extra;
    assert_false (s_next_request (router, sub, 100, &extra));
    trove_submitter_destroy (&s_fx.sub);
    assert_null (s_fx.sub);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

//  Requests leave in the order they were made, even when the first ones
//  are refused by the socket (no ingestor connected yet: ZMQ_IMMEDIATE):
//  issue 17 saw a file's last request applied first about once in five.
static void
test_submitter_sends_in_order (void **state)
{
    (void) state;
    s_results_t results;
    memset (&results, 0, sizeof results);
    //  No ingestor yet: every send is refused until it binds.
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 2, 40, s_on_result, &results);
    assert_non_null (sub);
    for (int n = 0; n < 20; n++) {
        assert_int_equal (s_add (sub, n, NULL), 0);
        trove_submitter_poll (sub, 0);
        if (n % 3 == 0)
            zclock_sleep (40);  //  spread the first sends over the retry timer
    }
    trove_submitter_flush (sub);
    zsock_t *router = s_ingestor_new ();
    int next = 0;
    while (next < 20) {
        s_request_t req;
        if (!s_next_request (router, sub, 5000, &req))
            fail_msg ("the fake ingestor got %d of 20 events", next);
        for (size_t i = 0; i < req.submit->n_events; i++) {
            int n = s_event_no (req.submit->events [i]);
            if (n != next)
                fail_msg ("event %d arrived when %d was due: requests overtook each other", n, next);
            next++;
        }
        s_reply_all (router, &req, TROVE__STATUS__ACCEPTED);
        s_request_free (&req);
    }
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

static void
test_submitter_resends_retry_with_same_req_id (void **state)
{
    (void) state;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 6, 0, s_on_result, &results);
    assert_non_null (sub);
    assert_string_equal (trove_submitter_last_retry (sub), "");
    for (int n = 0; n < 6; n++)
        assert_int_equal (s_add (sub, n, NULL), 0);  //  a full batch goes at once

    s_request_t first;
    assert_true (s_next_request (router, sub, 3000, &first));
    assert_int_equal (first.submit->n_events, 6);
    uint64_t req_id = first.submit->req_id;
    //  even events accepted, odd ones RETRY
    Trove__Status statuses [6];
    for (int i = 0; i < 6; i++)
        statuses [i] = i % 2 ? TROVE__STATUS__RETRY : TROVE__STATUS__ACCEPTED;
    s_reply (router, first.rid, req_id, statuses, 6, NULL);
    int64_t replied_us = trove_mono_us ();

    //  the resend: same req_id, only the RETRY events, in order, after the
    //  backoff (50 ms)
    s_request_t second;
    assert_true (s_next_request (router, sub, 3000, &second));
    assert_true (second.submit->req_id == req_id);
    assert_int_equal (second.submit->n_events, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal (s_event_no (second.submit->events [i]), 2 * i + 1);
    assert_true (second.at_us - replied_us >= 45000);
    for (int n = 0; n < 6; n += 2) {
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], TROVE__STATUS__ACCEPTED);
        assert_int_equal (results.calls [n + 1], 0);  //  RETRY is not final
    }
    assert_int_equal (trove_submitter_pending (sub), 3);
    assert_string_equal (trove_submitter_last_retry (sub), "shard_unavailable");

    //  A stale answer to the first transmission (6 results) is ignored; then
    //  event 3 gets RETRY again, 1 and 5 are accepted.
    Trove__Status stale [6];
    for (int i = 0; i < 6; i++)
        stale [i] = TROVE__STATUS__REJECTED;
    s_reply (router, first.rid, req_id, stale, 6, NULL);
    Trove__Status again [3] = {TROVE__STATUS__ACCEPTED, TROVE__STATUS__RETRY, TROVE__STATUS__ACCEPTED};
    s_reply (router, second.rid, req_id, again, 3, NULL);
    replied_us = trove_mono_us ();

    s_request_t third;
    assert_true (s_next_request (router, sub, 3000, &third));
    assert_true (third.submit->req_id == req_id);
    assert_int_equal (third.submit->n_events, 1);
    assert_int_equal (s_event_no (third.submit->events [0]), 3);
    assert_true (third.at_us - replied_us >= 90000);  //  backoff doubled: 100 ms
    assert_int_equal (results.calls [1], 1);
    assert_int_equal (results.status [1], TROVE__STATUS__ACCEPTED);
    assert_int_equal (results.calls [5], 1);
    assert_int_equal (results.status [5], TROVE__STATUS__ACCEPTED);
    assert_int_equal (results.calls [3], 0);
    s_reply_all (router, &third, TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_drive (sub, 0, 3000), 0);

    for (int n = 0; n < 6; n++) {
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], TROVE__STATUS__ACCEPTED);
    }
    assert_int_equal (results.total, 6);
    s_request_t extra;
    assert_false (s_next_request (router, sub, 150, &extra));
    s_request_free (&first);
    s_request_free (&second);
    s_request_free (&third);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

static void
test_submitter_resends_after_timeout (void **state)
{
    (void) state;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    //  batch 10: the 3 events go by the linger (5 ms), not by a full batch
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 10, 0, s_on_result, &results);
    assert_non_null (sub);
    trove_submitter_set_timeout (sub, 150);
    for (int n = 0; n < 3; n++)
        assert_int_equal (s_add (sub, n, NULL), 0);

    s_request_t first;
    assert_true (s_next_request (router, sub, 3000, &first));
    assert_int_equal (first.submit->n_events, 3);
    //  dropped: no answer. The same request comes again after the timeout.
    s_request_t second;
    assert_true (s_next_request (router, sub, 3000, &second));
    assert_true (second.submit->req_id == first.submit->req_id);
    assert_int_equal (second.submit->n_events, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal (s_event_no (second.submit->events [i]), i);
    if (second.at_us - first.at_us < 100000 || second.at_us - first.at_us > 1000000)
        fail_msg ("resent after %lld us, timeout is 150 ms", (long long) (second.at_us - first.at_us));
    assert_int_equal (results.total, 0);

    s_reply_all (router, &second, TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    for (int n = 0; n < 3; n++) {
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], TROVE__STATUS__ACCEPTED);
        //  latency counts from the first transmission
        assert_true (results.latency_us [n] >= 150000);
    }
    //  A late answer to the dropped transmission changes nothing.
    Trove__Status late [3] = {TROVE__STATUS__REJECTED, TROVE__STATUS__REJECTED, TROVE__STATUS__REJECTED};
    s_reply (router, first.rid, first.submit->req_id, late, 3, NULL);
    s_request_t extra;
    assert_false (s_next_request (router, sub, 100, &extra));
    assert_int_equal (results.total, 3);
    s_request_free (&first);
    s_request_free (&second);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

static void
test_submitter_window_bounds_events_in_flight (void **state)
{
    (void) state;
    const size_t window = 6;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    trove_submitter_t *sub = s_fx.sub =
        trove_submitter_new (fake_cluster.cfg, 2, window, s_on_result, &results);
    assert_non_null (sub);
    int added = 0;
    while (added < 20 && s_add (sub, added, NULL) == 0)
        added++;
    assert_int_equal (added, (int) window);
    assert_int_equal (trove_submitter_pending (sub), window);
    assert_int_equal (s_add (sub, 99, NULL), -1);

    //  The fake tracks which events it holds unanswered.
    bool unanswered [S_TAGS] = {false};
    size_t nunanswered = 0, most = 0;
    s_request_t reqs [3];
    for (int r = 0; r < 3; r++) {
        assert_true (s_next_request (router, sub, 3000, &reqs [r]));
        for (size_t i = 0; i < reqs [r].submit->n_events; i++) {
            int n = s_event_no (reqs [r].submit->events [i]);
            assert_true (n >= 0 && n < S_TAGS);
            if (!unanswered [n]) {
                unanswered [n] = true;
                nunanswered++;
            }
        }
        if (nunanswered > most)
            most = nunanswered;
    }
    assert_int_equal (nunanswered, window);
    s_request_t extra;
    assert_false (s_next_request (router, sub, 100, &extra));
    assert_int_equal (s_add (sub, 99, NULL), -1);  //  still full

    //  One request answered: two credits come back, no more.
    s_reply_all (router, &reqs [0], TROVE__STATUS__ACCEPTED);
    for (size_t i = 0; i < reqs [0].submit->n_events; i++) {
        unanswered [s_event_no (reqs [0].submit->events [i])] = false;
        nunanswered--;
    }
    assert_int_equal (s_drive (sub, window - 2, 3000), window - 2);
    assert_int_equal (s_add (sub, 6, NULL), 0);
    assert_int_equal (s_add (sub, 7, NULL), 0);
    assert_int_equal (s_add (sub, 99, NULL), -1);
    s_request_t more;
    assert_true (s_next_request (router, sub, 3000, &more));
    for (size_t i = 0; i < more.submit->n_events; i++) {
        int n = s_event_no (more.submit->events [i]);
        assert_true (n == 6 || n == 7);
        if (!unanswered [n]) {
            unanswered [n] = true;
            nunanswered++;
        }
    }
    if (nunanswered > most)
        most = nunanswered;
    assert_true (most <= window);
    assert_int_equal (most, window);

    s_reply_all (router, &reqs [1], TROVE__STATUS__ACCEPTED);
    s_reply_all (router, &reqs [2], TROVE__STATUS__ACCEPTED);
    s_reply_all (router, &more, TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    for (int n = 0; n < 8; n++)
        assert_int_equal (results.calls [n], 1);
    assert_int_equal (results.total, 8);  //  nothing for the refused adds
    for (int r = 0; r < 3; r++)
        s_request_free (&reqs [r]);
    s_request_free (&more);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

static void
test_submitter_whole_request_refusal (void **state)
{
    (void) state;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 3, 0, s_on_result, &results);
    assert_non_null (sub);
    trove_submitter_set_timeout (sub, 150);

    //  A refusal rejects every event of the request, reason = the code
    //  before the colon (docs/protocol.md).
    const char *refusal = "batch_too_large: 3 events, max_batch is 2";
    for (int n = 0; n < 3; n++)
        assert_int_equal (s_add (sub, n, NULL), 0);
    s_request_t req;
    assert_true (s_next_request (router, sub, 3000, &req));
    assert_int_equal (req.submit->n_events, 3);
    s_reply (router, req.rid, req.submit->req_id, NULL, 0, refusal);
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    for (int n = 0; n < 3; n++) {
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], TROVE__STATUS__REJECTED);
        assert_string_equal (results.reason [n], "batch_too_large");
    }
    s_request_free (&req);
    s_request_t extra;
    assert_false (s_next_request (router, sub, 100, &extra));  //  never resent

    //  A refusal that mentions "retry" is transient: the same events come
    //  again with the same req_id after the backoff.
    for (int n = 3; n < 6; n++)
        assert_int_equal (s_add (sub, n, NULL), 0);
    assert_true (s_next_request (router, sub, 3000, &req));
    uint64_t req_id = req.submit->req_id;
    s_reply (router, req.rid, req_id, NULL, 0, "overloaded: please retry later");
    s_request_free (&req);
    assert_true (s_next_request (router, sub, 3000, &req));
    assert_string_equal (trove_submitter_last_retry (sub), "overloaded: please retry later");
    assert_true (req.submit->req_id == req_id);
    assert_int_equal (req.submit->n_events, 3);
    for (int n = 3; n < 6; n++)
        assert_int_equal (results.calls [n], 0);

    //  A refusal with req_id 0 (an undecodable frame) matches no request:
    //  nothing is rejected, the request is resent after its timeout.
    s_reply (router, req.rid, 0, NULL, 0, "malformed: not a trove.Msg");
    int64_t refused_us = trove_mono_us ();
    s_request_free (&req);
    assert_true (s_next_request (router, sub, 3000, &req));
    assert_true (req.at_us - refused_us < 1000000);  //  timeout 150 ms
    assert_true (req.submit->req_id == req_id);
    assert_int_equal (req.submit->n_events, 3);
    for (int n = 3; n < 6; n++)
        assert_int_equal (results.calls [n], 0);
    s_reply_all (router, &req, TROVE__STATUS__ACCEPTED);
    s_request_free (&req);
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    for (int n = 3; n < 6; n++) {
        assert_int_equal (results.calls [n], 1);
        assert_int_equal (results.status [n], TROVE__STATUS__ACCEPTED);
    }
    assert_int_equal (results.total, 6);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

static void
test_submitter_respects_max_frame (void **state)
{
    (void) state;
    zsock_t *router = s_ingestor_new ();
    s_results_t results;
    memset (&results, 0, sizeof results);
    trove_submitter_t *sub = s_fx.sub = trove_submitter_new (fake_cluster.cfg, 100, 0, s_on_result, &results);
    assert_non_null (sub);

    //  An event alone larger than max_frame is rejected before add returns.
    char *huge = malloc (FAKE_MAX_FRAME + 1);
    assert_non_null (huge);
    memset (huge, 'x', FAKE_MAX_FRAME);
    huge [FAKE_MAX_FRAME] = 0;
    assert_int_equal (s_add (sub, 0, huge), 0);
    free (huge);
    assert_int_equal (results.calls [0], 1);
    assert_int_equal (results.status [0], TROVE__STATUS__REJECTED);
    assert_string_equal (results.reason [0], "frame_too_large");
    assert_int_equal (trove_submitter_pending (sub), 0);

    //  Events of ~5000 bytes: a request closes before it would exceed
    //  max_frame (16384), so 3 go together, then 2.
    char *big = malloc (5001);
    assert_non_null (big);
    memset (big, 'y', 5000);
    big [5000] = 0;
    for (int n = 1; n <= 5; n++)
        assert_int_equal (s_add (sub, n, big), 0);
    free (big);
    trove_submitter_flush (sub);
    size_t sizes [5];
    int nrequests = 0, nseen = 0;
    while (nseen < 5) {
        s_request_t req;
        if (!s_next_request (router, sub, 3000, &req))
            fail_msg ("the fake ingestor got %d of 5 events", nseen);
        assert_true (req.frame_size <= FAKE_MAX_FRAME);
        assert_true (nrequests < 5);
        sizes [nrequests++] = req.submit->n_events;
        nseen += (int) req.submit->n_events;
        s_reply_all (router, &req, TROVE__STATUS__ACCEPTED);
        s_request_free (&req);
    }
    assert_int_equal (nrequests, 2);
    assert_int_equal (sizes [0] + sizes [1], 5);
    assert_true ((sizes [0] == 3 && sizes [1] == 2) || (sizes [0] == 2 && sizes [1] == 3));
    assert_int_equal (s_drive (sub, 0, 3000), 0);
    for (int n = 1; n <= 5; n++)
        assert_int_equal (results.calls [n], 1);
    assert_int_equal (results.total, 6);
    trove_submitter_destroy (&s_fx.sub);
    zsock_destroy (&s_fx.ingestor);
}

//  Constructors refuse what cannot work.
static void
test_submitter_refuses_bad_configs (void **state)
{
    (void) state;
    s_results_t results;
    trove_cfg_t *cfg = fake_bad_cfg ();
    //  no ingestor
    assert_null (trove_submitter_new (cfg, 0, 0, s_on_result, &results));
    trove_cfg_destroy (&cfg);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_submitter_delivers_each_answer_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_sends_in_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_resends_retry_with_same_req_id, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_resends_after_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_window_bounds_events_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_whole_request_refusal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_respects_max_frame, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_submitter_refuses_bad_configs, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
