/*  Hostile input against a running cluster: every bad frame or event gets a
    clear answer, the daemons keep running, and nothing is written.
    Usage: badinput CONFIG (run by test_bad_input.sh, which starts the cluster). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_cfg.h"
#include "trove_hash.h"
#include "trove_client.h"
#include "trove_curve.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static trove_cfg_t *s_cfg;

//  Send raw bytes to the ingestor, return the decoded answer (or NULL on timeout).
static Trove__Msg *
s_roundtrip (const void *data, size_t size)
{
    zsock_t *dealer =
        trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_LINK, trove_cfg_ingestor_endpoint (s_cfg, 0), 64 << 20);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (dealer, 5000);
    zsock_set_sndtimeo (dealer, 5000);
    //  IMMEDIATE: wait for the connection before sending
    int rc = -1;
    for (int i = 0; i < 100 && rc == -1; i++) {
        rc = zmq_send (zsock_resolve (dealer), data, size, ZMQ_DONTWAIT);
        if (rc == -1)
            zclock_sleep (20);
    }
    assert_true (rc >= 0);
    zframe_t *frame = zframe_recv (dealer);
    Trove__Msg *msg = NULL;
    if (frame) {
        const char *reason;
        msg = trove_msg_decode (zframe_data (frame), zframe_size (frame), 64 << 20, &reason);
        zframe_destroy (&frame);
    }
    zsock_destroy (&dealer);
    return msg;
}

static Trove__Msg *
s_submit (Trove__Event **events, size_t n)
{
    Trove__SubmitRequest req = TROVE__SUBMIT_REQUEST__INIT;
    req.req_id = 77;
    req.events = events;
    req.n_events = n;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT;
    msg.submit = &req;
    size_t size;
    void *buf = trove_msg_pack (&msg, &size);
    Trove__Msg *reply = s_roundtrip (buf, size);
    free (buf);
    return reply;
}

static uint64_t
s_total_events (void)
{
    uint64_t total = 0;
    for (size_t s = 0; s < trove_cfg_shards (s_cfg); s++) {
        Trove__Query q = TROVE__QUERY__INIT;
        q.kind = "status";
        q.req_id = 1;
        char *err = NULL;
        Trove__QueryReply *reply = trove_client_call (trove_cfg_shard_query (s_cfg, s), &q, 2000, 2, &err);
        if (!reply)
            fail_msg ("scorer %zu not answering: %s", s, err);
        assert_non_null (reply->status);
        total += reply->status->events;
        trove_client_reply_free (&reply);
    }
    return total;
}

static void
s_expect_refused (const void *data, size_t size, const char *prefix)
{
    Trove__Msg *reply = s_roundtrip (data, size);
    assert_non_null (reply);
    assert_int_equal (reply->body_case, TROVE__MSG__BODY_SUBMIT_REPLY);
    if (strncmp (reply->submit_reply->error, prefix, strlen (prefix)))
        fail_msg ("error '%s', expected '%s...'", reply->submit_reply->error, prefix);
    assert_int_equal (reply->submit_reply->n_results, 0);
    trove_msg_free (&reply);
}

static void
test_bad_frames_are_refused (void **state)
{
    (void) state;
    uint64_t before = s_total_events ();
    s_expect_refused ("\xff\xff\xff\xff garbage", 13, "malformed");
    //  a valid submit, truncated
    Trove__Event ev = TROVE__EVENT__INIT;
    ev.source = "web";
    ev.id = "x1";
    ev.user = "u1";
    ev.type = "checkin";
    ev.ts_ms = trove_now_ms ();
    Trove__Event *evs [1] = {&ev};
    Trove__SubmitRequest req = TROVE__SUBMIT_REQUEST__INIT;
    req.req_id = 5;
    req.events = evs;
    req.n_events = 1;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_SUBMIT;
    msg.submit = &req;
    size_t size;
    uint8_t *buf = trove_msg_pack (&msg, &size);
    s_expect_refused (buf, size - 3, "malformed");
    //  a well-formed unknown field: tag 99 varint value 1 = 3 bytes
    uint8_t tail [3] = {(uint8_t) (((99 << 3) & 0x7f) | 0x80), (uint8_t) ((99 << 3) >> 7), 1};
    uint8_t *longer = malloc (size + 3);
    memcpy (longer, buf, size);
    memcpy (longer + size, tail, 3);
    s_expect_refused (longer, size + 3, "unknown_field");
    free (longer);
    free (buf);
    //  an oversized frame (over max_frame, under the transport limit)
    size_t big = trove_cfg_limits (s_cfg)->max_frame + 1000;
    uint8_t *huge = calloc (1, big);
    s_expect_refused (huge, big, "frame_too_large");
    free (huge);
    //  too many events in one request
    size_t n = trove_cfg_limits (s_cfg)->max_batch + 1;
    Trove__Event **many = calloc (n, sizeof *many);
    for (size_t i = 0; i < n; i++)
        many [i] = &ev;
    Trove__Msg *reply = s_submit (many, n);
    assert_non_null (reply);
    assert_int_equal (strncmp (reply->submit_reply->error, "batch_too_large", 15), 0);
    trove_msg_free (&reply);
    free (many);
    assert_int_equal (s_total_events (), before);
}

static void
test_bad_events_are_rejected_with_reasons (void **state)
{
    (void) state;
    uint64_t before = s_total_events ();
    int64_t now = trove_now_ms ();
    Trove__Event ev [8];
    Trove__Event *evs [8];
    for (int i = 0; i < 8; i++) {
        trove__event__init (&ev [i]);
        ev [i].source = "web";
        ev [i].id = "bad";
        ev [i].user = "u1";
        ev [i].type = "checkin";
        ev [i].ts_ms = now;
        evs [i] = &ev [i];
    }
    ev [0].user = "";                 //  missing_field
    ev [1].id = "bad\xc3\x28";        //  bad_utf8
    ev [2].ts_ms = 32503680000000LL;  //  year 3000: bad_ts
    ev [3].ts_ms = -5;                //  bad_ts
    ev [4].source = "nobody";         //  unknown_source
    char longid [300];
    memset (longid, 'a', sizeof longid - 1);
    longid [sizeof longid - 1] = 0;
    ev [5].id = longid;  //  too_long
    ev [6].type = "";    //  missing_field
    ev [7].ts_ms = 0;    //  missing_field
    static const char *const expect [8] = {"missing_field",  "bad_utf8", "bad_ts",        "bad_ts",
                                           "unknown_source", "too_long", "missing_field", "missing_field"};
    Trove__Msg *reply = s_submit (evs, 8);
    assert_non_null (reply);
    assert_int_equal (reply->submit_reply->n_results, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal (reply->submit_reply->results [i]->status, TROVE__STATUS__REJECTED);
        assert_string_equal (reply->submit_reply->results [i]->reason, expect [i]);
        assert_true (strlen (reply->submit_reply->results [i]->detail) > 0);
    }
    trove_msg_free (&reply);
    assert_int_equal (s_total_events (), before);
}

//  A client that reaches a scorer's events socket directly (no ingestor)
//  gets no wider door: the scorer checks what the ledger depends on
//  itself (issue 18): the time windows, the source's types and backdating,
//  and the plausibility of the receipt time the batch claims.
static void
test_scorer_checks_what_the_ingestor_checks (void **state)
{
    (void) state;
    uint64_t before = s_total_events ();
    const char *user = "u-direct";
    uint32_t partition = trove_hash_partition (user, strlen (user), trove_cfg_partitions (s_cfg));
    size_t shard = trove_cfg_shard_of (s_cfg, partition);
    int64_t now = trove_now_ms ();
    Trove__Event ev [5];
    Trove__Event *evs [5];
    uint32_t parts [5];
    static const char *const ids [5] = {"direct-1", "direct-2", "direct-3", "direct-4", "direct-5"};
    for (int i = 0; i < 5; i++) {
        trove__event__init (&ev [i]);
        ev [i].source = "web";
        ev [i].id = (char *) ids [i];
        ev [i].user = (char *) user;
        ev [i].type = "purchase";
        ev [i].ts_ms = now;
        evs [i] = &ev [i];
        parts [i] = partition;
    }
    ev [0].ts_ms = 1000;                   //  1970
    ev [1].ts_ms = now + 10LL * 86400000;  //  ten days ahead
    ev [2].source = "mobile";              //  mobile may not send "share" (test config)
    ev [2].type = "share";
    ev [3].source = "mobile";             //  older than mobile's 7-day window,
    ev [3].ts_ms = now - 8LL * 86400000;  //  inside the global 366 days
    static const char *const expect [4] = {"bad_ts", "bad_ts", "type_not_allowed", "bad_ts"};
    Trove__ShardBatch batch = TROVE__SHARD_BATCH__INIT;
    batch.batch_id = 77;
    batch.req_id = 78;
    batch.events = evs;
    batch.n_events = 4;
    batch.partitions = parts;
    batch.n_partitions = 4;
    batch.received_us = now * 1000;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_BATCH;
    msg.batch = &batch;
    zsock_t *dealer =
        trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_LINK, trove_cfg_shard_events (s_cfg, shard), 64 << 20);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (dealer, 5000);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            //  The same (fine) event with a receipt time the batch claims
            //  to be ten days ahead, to widen every window: refused.
            batch.events = &evs [4];
            batch.n_events = 1;
            batch.n_partitions = 1;
            batch.received_us = (now + 10LL * 86400000) * 1000;
            ev [4].ts_ms = now + 10LL * 86400000;
        }
        size_t size;
        void *buf = trove_msg_pack (&msg, &size);
        int rc = -1;
        for (int i = 0; i < 100 && rc == -1; i++) {
            rc = zmq_send (zsock_resolve (dealer), buf, size, ZMQ_DONTWAIT);
            if (rc == -1)
                zclock_sleep (20);
        }
        free (buf);
        assert_true (rc >= 0);
        zframe_t *frame = zframe_recv (dealer);
        assert_non_null (frame);
        Trove__Msg *reply = trove_msg_decode (zframe_data (frame), zframe_size (frame), 64 << 20, NULL);
        zframe_destroy (&frame);
        assert_non_null (reply);
        assert_int_equal (reply->body_case, TROVE__MSG__BODY_BATCH_REPLY);
        assert_int_equal (reply->batch_reply->n_results, batch.n_events);
        for (size_t i = 0; i < batch.n_events; i++) {
            const Trove__Result *r = reply->batch_reply->results [i];
            assert_int_equal (r->status, TROVE__STATUS__REJECTED);
            assert_string_equal (r->reason, round == 0 ? expect [i] : "bad_ts");
            assert_true (strlen (r->detail) > 0);
        }
        trove_msg_free (&reply);
    }
    zsock_destroy (&dealer);
    assert_int_equal (s_total_events (), before);
}

static void
test_daemons_still_answer (void **state)
{
    (void) state;
    //  after all of the above, a good event is accepted
    Trove__Event ev = TROVE__EVENT__INIT;
    char id [64];
    snprintf (id, sizeof id, "good-%lld", (long long) trove_now_us ());
    ev.source = "web";
    ev.id = id;
    ev.user = "u1";
    ev.type = "checkin";
    ev.ts_ms = trove_now_ms ();
    Trove__Event *evs [1] = {&ev};
    uint64_t before = s_total_events ();
    Trove__Msg *reply = s_submit (evs, 1);
    assert_non_null (reply);
    assert_int_equal (reply->submit_reply->n_results, 1);
    assert_int_equal (reply->submit_reply->results [0]->status, TROVE__STATUS__ACCEPTED);
    trove_msg_free (&reply);
    assert_int_equal (s_total_events (), before + 1);
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: badinput CONFIG\n");
        return 2;
    }
    char *err = NULL;
    s_cfg = trove_cfg_load (argv [1], &err);
    //  The host's certificate (role daemon) when the cluster uses CURVE: the
    //  hostile bytes must reach the daemons' parsers, not stop at the door.
    if (s_cfg && trove_curve_start (s_cfg, NULL, false, &err))
        trove_cfg_destroy (&s_cfg);
    if (!s_cfg) {
        fprintf (stderr, "%s\n", err);
        free (err);
        return 2;
    }
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_bad_frames_are_refused),
        cmocka_unit_test (test_bad_events_are_rejected_with_reasons),
        cmocka_unit_test (test_scorer_checks_what_the_ingestor_checks),
        cmocka_unit_test (test_daemons_still_answer),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    trove_curve_stop ();
    trove_cfg_destroy (&s_cfg);
    return rc;
}
