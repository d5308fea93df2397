/*  test_trove_client - lib/net/trove_client against fake servers in this process,
    on loopback TCP (fake_peers.c: the cluster config and the servers):
    trove_client_call / _call_all against a fake query ROUTER (zactor) that
    answers, stays silent, answers garbage or restarts, per a script.

    Every wait is bounded; nothing sleeps and hopes. */
#include "fake_peers.h"
#include "trove_client.h"

#include <stdlib.h>
#include <string.h>


static int
s_group_setup (void **state)
{
    (void) state;
    return fake_cluster_setup (0);
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
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    fake_server_stop (0);
    fake_server_stop (1);
    return 0;
}

static Trove__Query
s_status_query (uint64_t req_id)
{
    Trove__Query query = TROVE__QUERY__INIT;
    query.req_id = req_id;
    query.kind = "status";
    return query;
}

//  ---------------------------------------------------------------------------
//  trove_client_call

static void
test_call_returns_the_matching_reply (void **state)
{
    (void) state;
    fake_server_t *fake = fake_server_start (0, fake_cluster.call [0], 0, NULL, 0);
    fake_server_set_status (fake, 42);

    Trove__Query query = s_status_query (777);
    char *err = NULL;
    int64_t start = trove_mono_us ();
    Trove__QueryReply *reply = trove_client_call (fake_cluster.call [0], &query, 2000, 1, &err);
    int64_t took_ms = (trove_mono_us () - start) / 1000;
    if (!reply)
        fail_msg ("no reply: %s", err ? err : "?");
    assert_null (err);
    assert_int_equal (reply->req_id, 777);
    assert_int_equal (reply->last_aseq, 42);
    assert_non_null (reply->status);
    assert_string_equal (reply->status->role, "scorer");
    assert_true (took_ms < 2000);  //  answered on the first attempt, no timeout
    trove_client_reply_free (&reply);
    assert_null (reply);
    trove_client_reply_free (&reply);  //  safe twice

    //  req_id 0: the client picks a random one and matches on it
    query.req_id = 0;
    reply = trove_client_call (fake_cluster.call [0], &query, 2000, 0, NULL);
    assert_non_null (reply);
    assert_int_equal (fake_server_count (fake), 2);
    assert_true (fake->req_id [1] != 0);
    assert_int_equal (reply->req_id, fake->req_id [1]);
    assert_string_equal (fake->kind [0], "status");
    trove_client_reply_free (&reply);
    fake_server_stop (0);
}

static void
test_call_times_out_after_every_attempt (void **state)
{
    (void) state;
    fake_act_t script [] = {FAKE_SILENT};
    fake_server_t *fake = fake_server_start (0, fake_cluster.call [0], 0, script, 1);
    Trove__Query query = s_status_query (0);
    char *err = NULL;
    int64_t start = trove_mono_us ();
    Trove__QueryReply *reply = trove_client_call (fake_cluster.call [0], &query, 200, 1, &err);
    int64_t took_ms = (trove_mono_us () - start) / 1000;
    assert_null (reply);
    assert_non_null (err);
    if (!strstr (err, "no reply") || !strstr (err, "2 attempts"))
        fail_msg ("unexpected error '%s'", err);
    free (err);
    //  two attempts of 200 ms each, and not much more
    if (took_ms < 395 || took_ms > 1500)
        fail_msg ("2 x 200 ms took %lld ms", (long long) took_ms);
    //  the same question was asked twice, on fresh sockets, with one req_id
    assert_int_equal (fake_server_wait (fake, 2, 1000), 2);
    assert_true (fake->req_id [0] != 0);
    assert_int_equal (fake->req_id [0], fake->req_id [1]);
    assert_true (fake->at_us [1] - fake->at_us [0] >= 150000);

    //  no err_p: the same failure is reported by NULL alone
    assert_null (trove_client_call (fake_cluster.call [0], &query, 50, 0, NULL));
    fake_server_stop (0);
}

static void
test_call_skips_garbage (void **state)
{
    (void) state;
    //  Garbage on the first attempt is ignored (the attempt waits out its
    //  timeout), the retry is answered properly.
    fake_act_t script [] = {FAKE_GARBAGE, FAKE_REPLY};
    fake_server_t *fake = fake_server_start (0, fake_cluster.call [0], 0, script, 2);
    fake_server_set_status (fake, 7);
    Trove__Query query = s_status_query (0);
    char *err = NULL;
    int64_t start = trove_mono_us ();
    Trove__QueryReply *reply = trove_client_call (fake_cluster.call [0], &query, 200, 1, &err);
    int64_t took_ms = (trove_mono_us () - start) / 1000;
    if (!reply)
        fail_msg ("no reply: %s", err ? err : "?");
    assert_int_equal (reply->last_aseq, 7);
    assert_int_equal (fake_server_count (fake), 2);
    assert_int_equal (fake->req_id [0], fake->req_id [1]);
    assert_int_equal (reply->req_id, fake->req_id [1]);
    assert_true (took_ms >= 190);
    trove_client_reply_free (&reply);
    fake_server_stop (0);

    //  Only garbage: NULL, and the error says the replies were not valid.
    fake_act_t garbage [] = {FAKE_GARBAGE};
    fake = fake_server_start (0, fake_cluster.call [0], 0, garbage, 1);
    err = NULL;
    reply = trove_client_call (fake_cluster.call [0], &query, 150, 1, &err);
    assert_null (reply);
    assert_non_null (err);
    if (!strstr (err, "no valid reply"))
        fail_msg ("unexpected error '%s'", err);
    free (err);
    assert_int_equal (fake_server_wait (fake, 2, 1000), 2);
    fake_server_stop (0);

    //  Garbage and somebody else's answer, then ours (after a delimiter) in
    //  the same attempt: ours is returned at once.
    fake_act_t junk [] = {FAKE_JUNK_THEN_REPLY};
    fake = fake_server_start (0, fake_cluster.call [0], 0, junk, 1);
    fake_server_set_status (fake, 9);
    query.req_id = 1000;
    start = trove_mono_us ();
    reply = trove_client_call (fake_cluster.call [0], &query, 2000, 0, &err);
    took_ms = (trove_mono_us () - start) / 1000;
    if (!reply)
        fail_msg ("no reply: %s", err ? err : "?");
    assert_int_equal (reply->req_id, 1000);
    assert_int_equal (reply->last_aseq, 9);
    assert_true (took_ms < 2000);
    assert_int_equal (fake_server_count (fake), 1);
    trove_client_reply_free (&reply);
    fake_server_stop (0);
}

static void
test_call_notices_a_dropped_connection (void **state)
{
    (void) state;
    //  The server takes the request and restarts without answering: the
    //  request is lost with the connection. The call says so at once instead
    //  of waiting out its (here one-minute) timeout...
    fake_act_t restart [] = {FAKE_RESTART};
    fake_server_t *fake = fake_server_start (0, fake_cluster.call [0], 0, restart, 1);
    Trove__Query query = s_status_query (0);
    char *err = NULL;
    Trove__QueryReply *reply = trove_client_call (fake_cluster.call [0], &query, 60000, 0, &err);
    assert_null (reply);
    if (!err || !strstr (err, "lost before the reply") || !strstr (err, "1 attempt"))
        fail_msg ("unexpected error '%s'", err ? err : "(none)");
    free (err);
    assert_int_equal (fake_server_count (fake), 1);
    fake_server_stop (0);

    //  ... and a retry asks the new server, which answers.
    fake_act_t then_reply [] = {FAKE_RESTART, FAKE_REPLY};
    fake = fake_server_start (0, fake_cluster.call [0], 0, then_reply, 2);
    fake_server_set_status (fake, 5);
    err = NULL;
    reply = trove_client_call (fake_cluster.call [0], &query, 60000, 1, &err);
    if (!reply)
        fail_msg ("no reply: %s", err ? err : "?");
    assert_int_equal (reply->last_aseq, 5);
    assert_int_equal (fake_server_count (fake), 2);
    assert_int_equal (fake->req_id [0], fake->req_id [1]);
    trove_client_reply_free (&reply);
    fake_server_stop (0);
}

static void
test_call_all_keeps_answers_and_retries_the_silent (void **state)
{
    (void) state;
    fake_act_t silent [] = {FAKE_SILENT};
    fake_server_t *good = fake_server_start (0, fake_cluster.call [0], 0, NULL, 0);
    fake_server_t *mute = fake_server_start (1, fake_cluster.call [1], 0, silent, 1);
    fake_server_set_status (good, 11);
    const char *endpoints [] = {fake_cluster.call [0], fake_cluster.call [1]};
    Trove__QueryReply *replies [2] = {NULL, NULL};
    Trove__Query query = s_status_query (0);
    int64_t start = trove_mono_us ();
    int rc = trove_client_call_all (endpoints, 2, &query, 200, 1, FAKE_MAX_FRAME, replies);
    int64_t took_ms = (trove_mono_us () - start) / 1000;
    assert_int_equal (rc, 1);
    assert_non_null (replies [0]);
    assert_null (replies [1]);
    assert_int_equal (replies [0]->last_aseq, 11);
    //  the answered endpoint is asked once, the silent one on every attempt
    assert_int_equal (fake_server_count (good), 1);
    assert_int_equal (fake_server_wait (mute, 2, 1000), 2);
    assert_int_equal (replies [0]->req_id, good->req_id [0]);
    if (took_ms < 395 || took_ms > 1500)
        fail_msg ("2 x 200 ms took %lld ms", (long long) took_ms);
    trove_client_reply_free (&replies [0]);
    assert_int_equal (trove_client_call_all (NULL, 0, &query, 100, 0, FAKE_MAX_FRAME, NULL), 0);
    fake_server_stop (0);
    fake_server_stop (1);
}

//  ---------------------------------------------------------------------------

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_call_returns_the_matching_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_call_times_out_after_every_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_call_skips_garbage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_call_notices_a_dropped_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_call_all_keeps_answers_and_retries_the_silent, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
