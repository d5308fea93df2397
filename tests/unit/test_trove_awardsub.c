/*  test_trove_awardsub - lib/net/trove_awardsub against a fake broker PUB
    (bound at broker/sub) in the test thread and fake scorer query ROUTERs
    (zactors, fake_peers.c) answering "status" and "awards" from a table,
    on loopback TCP: live delivery, gaps, duplicates, heartbeats and late
    joins; a callback that stops a poll (trove_awardsub_stop).

    Every wait is bounded; nothing sleeps and hopes. */
#include "fake_peers.h"
#include "trove_awardsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What a test holds. The per-test teardown destroys whatever is left, so a
//  failed test does not leave a port bound (or a thread running) for the next.
static struct {
    zsock_t *broker;       //  fake broker PUB
    trove_awardsub_t *as;  //  award subscriber under test
} s_fx;

static int
s_group_setup (void **state)
{
    (void) state;
    return fake_cluster_setup (2);
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
    trove_awardsub_destroy (&s_fx.as);
    zsock_destroy (&s_fx.broker);
    fake_server_stop (0);
    fake_server_stop (1);
    return 0;
}

//  trove_awardsub against a fake broker PUB and fake scorer query ROUTERs.

#define S_AWARDS 64

typedef struct {
    size_t n;                   //  awards delivered
    uint32_t shard [S_AWARDS];  //  per award
    uint64_t aseq [S_AWARDS];   //  per award
    char id [S_AWARDS][40];     //  per award
} s_awards_t;

static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_awards_t *self = arg;
    if (self->n < S_AWARDS) {
        self->shard [self->n] = coin->shard;
        self->aseq [self->n] = coin->aseq;
        snprintf (self->id [self->n], sizeof self->id [0], "%s", coin->id);
    }
    self->n++;
}

static zsock_t *
s_broker_new (void)
{
    zsock_t *pub = s_fx.broker = zsock_new (ZMQ_PUB);
    assert_non_null (pub);
    zsock_set_linger (pub, 0);
    if (fake_bind (pub, fake_cluster.broker_sub))
        fail_msg ("fake broker cannot bind %s (port in use?)", fake_cluster.broker_sub);
    return pub;
}

static void
s_publish_award (zsock_t *pub, uint32_t shard, uint64_t aseq)
{
    Trove__Coin coin;
    char id [40];
    fake_coin_fill (&coin, id, sizeof id, shard, aseq);
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_AWARD;
    msg.award = &coin;
    assert_int_equal (trove_msg_send (pub, NULL, 0, &msg, 0), 0);
}

static void
s_publish_heartbeat (zsock_t *pub, const char *role, uint32_t shard, uint64_t last_aseq)
{
    Trove__Heartbeat beat = TROVE__HEARTBEAT__INIT;
    beat.role = (char *) role;
    beat.shard = shard;
    beat.last_aseq = last_aseq;
    beat.incarnation = 1;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_HEARTBEAT;
    msg.heartbeat = &beat;
    assert_int_equal (trove_msg_send (pub, NULL, 0, &msg, 0), 0);
}

//  Poll until goal awards were delivered (bounded); returns how many were.
static size_t
s_await_awards (trove_awardsub_t *as, s_awards_t *log, size_t goal, int timeout_ms)
{
    int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
    while (log->n < goal && trove_mono_us () < deadline)
        assert_int_equal (trove_awardsub_poll (as, 20), 0);
    return log->n;
}

//  Slow joiner: publish the award until the subscriber delivered something.
static void
s_join (zsock_t *pub, trove_awardsub_t *as, s_awards_t *log, uint32_t shard, uint64_t aseq)
{
    size_t before = log->n;
    int64_t deadline = trove_mono_us () + 5000000;
    while (log->n == before && trove_mono_us () < deadline) {
        s_publish_award (pub, shard, aseq);
        assert_int_equal (trove_awardsub_poll (as, 20), 0);
    }
    if (log->n == before)
        fail_msg ("the subscriber never got award %u/%llu", shard, (unsigned long long) aseq);
}

//  The awards delivered from index `from` on must be shard's aseqs first..last.
static void
s_expect_run (const s_awards_t *log, size_t from, uint32_t shard, uint64_t first, uint64_t last)
{
    for (uint64_t aseq = first; aseq <= last; aseq++, from++) {
        if (from >= log->n)
            fail_msg ("award %u/%llu was not delivered", shard, (unsigned long long) aseq);
        char id [40];
        snprintf (id, sizeof id, "coin-%u-%llu", shard, (unsigned long long) aseq);
        if (log->shard [from] != shard || log->aseq [from] != aseq || strcmp (log->id [from], id))
            fail_msg ("delivery %zu is %u/%llu (%s), want %u/%llu", from, log->shard [from],
                      (unsigned long long) log->aseq [from], log->id [from], shard,
                      (unsigned long long) aseq);
    }
}

static void
test_awardsub_gaps_duplicates_heartbeats (void **state)
{
    (void) state;
    fake_server_t *scorer [2];
    for (uint32_t i = 0; i < 2; i++)
        scorer [i] = fake_server_start (i, fake_cluster.query [i], i, NULL, 0);
    zsock_t *pub = s_broker_new ();
    s_awards_t log;
    memset (&log, 0, sizeof log);
    //  from_now: both scorers say "status: last_aseq 0"
    trove_awardsub_t *as = s_fx.as = trove_awardsub_new (fake_cluster.cfg, true, s_on_award, &log);
    assert_non_null (as);
    assert_non_null (trove_awardsub_socket (as));
    assert_int_equal (fake_server_count (scorer [0]), 1);
    assert_int_equal (fake_server_count (scorer [1]), 1);
    assert_string_equal (scorer [0]->kind [0], "status");

    //  Live: 1 (repeated until the subscriber joined; extra copies are
    //  duplicates), then 2.
    s_join (pub, as, &log, 0, 1);
    s_publish_award (pub, 0, 2);
    assert_int_equal (s_await_awards (as, &log, 2, 3000), 2);
    s_expect_run (&log, 0, 0, 1, 2);
    assert_int_equal (trove_awardsub_last (as, 0), 2);

    //  Duplicates, then 5: a gap. 3 and 4 come from the scorer's table.
    fake_server_set_available (scorer [0], 5);
    s_publish_award (pub, 0, 2);
    s_publish_award (pub, 0, 1);
    s_publish_award (pub, 0, 5);
    assert_int_equal (s_await_awards (as, &log, 5, 3000), 5);
    s_expect_run (&log, 0, 0, 1, 5);
    assert_true (fake_server_find (scorer [0], "awards", 3) >= 0);
    assert_int_equal (trove_awardsub_last (as, 0), 5);
    //  5 published again after the catch-up delivered it: not again. Award
    //  1 of shard 1 marks the end (same pipe, in order).
    s_publish_award (pub, 0, 5);
    s_publish_award (pub, 0, 4);
    s_publish_award (pub, 1, 1);
    assert_int_equal (s_await_awards (as, &log, 6, 3000), 6);
    s_expect_run (&log, 5, 1, 1, 1);

    //  A heartbeat from a scorer showing a higher last_aseq: catch-up.
    fake_server_set_available (scorer [0], 8);
    s_publish_heartbeat (pub, "scorer", 0, 8);
    assert_int_equal (s_await_awards (as, &log, 9, 3000), 9);
    s_expect_run (&log, 6, 0, 6, 8);
    assert_true (fake_server_find (scorer [0], "awards", 6) >= 0);

    //  A heartbeat from another role is ignored: no query to the scorer.
    size_t queries = fake_server_count (scorer [0]);
    s_publish_heartbeat (pub, "ingestor", 0, 100);
    s_publish_award (pub, 1, 2);  //  marker
    assert_int_equal (s_await_awards (as, &log, 10, 3000), 10);
    s_expect_run (&log, 9, 1, 2, 2);
    assert_int_equal (fake_server_count (scorer [0]), queries);

    //  A heartbeat ahead of the scorer's table (not committed yet): nothing
    //  is skipped, the catch-up tries again until the awards are there.
    s_publish_heartbeat (pub, "scorer", 0, 10);
    int64_t deadline = trove_mono_us () + 3000000;
    while (fake_server_count (scorer [0]) == queries && trove_mono_us () < deadline)
        trove_awardsub_poll (as, 20);
    assert_true (fake_server_count (scorer [0]) > queries);
    assert_int_equal (log.n, 10);
    fake_server_set_available (scorer [0], 10);
    assert_int_equal (s_await_awards (as, &log, 12, 5000), 12);
    s_expect_run (&log, 10, 0, 9, 10);
    assert_int_equal (trove_awardsub_last (as, 0), 10);
    assert_int_equal (trove_awardsub_last (as, 1), 2);

    //  Nothing was delivered twice.
    for (int i = 0; i < 5; i++)
        trove_awardsub_poll (as, 10);
    assert_int_equal (log.n, 12);
    trove_awardsub_destroy (&s_fx.as);
    assert_null (s_fx.as);
    trove_awardsub_destroy (&s_fx.as);
    zsock_destroy (&s_fx.broker);
    fake_server_stop (0);
    fake_server_stop (1);
}

static void
test_awardsub_start_points (void **state)
{
    (void) state;
    fake_server_t *scorer [2];
    for (uint32_t i = 0; i < 2; i++)
        scorer [i] = fake_server_start (i, fake_cluster.query [i], i, NULL, 0);
    fake_server_set_available (scorer [0], 3);
    zsock_t *pub = s_broker_new ();

    //  Not from_now: start at aseq 1, the scorer's past awards are fetched
    //  without anything published.
    s_awards_t log;
    memset (&log, 0, sizeof log);
    trove_awardsub_t *as = s_fx.as = trove_awardsub_new (fake_cluster.cfg, false, s_on_award, &log);
    assert_non_null (as);
    assert_int_equal (s_await_awards (as, &log, 3, 3000), 3);
    s_expect_run (&log, 0, 0, 1, 3);
    assert_int_equal (fake_server_find (scorer [0], "awards", 1), 0);
    assert_true (fake_server_find (scorer [1], "awards", 1) >= 0);
    //  then live
    s_join (pub, as, &log, 0, 4);
    s_expect_run (&log, 0, 0, 1, 4);
    assert_int_equal (log.n, 4);
    trove_awardsub_destroy (&s_fx.as);

    //  from_now: the scorer says its last aseq is 3; 1..3 are not delivered,
    //  4 is.
    fake_server_set_status (scorer [0], 3);
    memset (&log, 0, sizeof log);
    as = s_fx.as = trove_awardsub_new (fake_cluster.cfg, true, s_on_award, &log);
    assert_non_null (as);
    assert_int_equal (trove_awardsub_last (as, 0), 3);
    assert_int_equal (trove_awardsub_last (as, 1), 0);
    s_join (pub, as, &log, 0, 4);
    s_publish_award (pub, 0, 3);
    s_publish_award (pub, 1, 1);  //  marker
    assert_int_equal (s_await_awards (as, &log, 2, 3000), 2);
    s_expect_run (&log, 0, 0, 4, 4);
    s_expect_run (&log, 1, 1, 1, 1);
    trove_awardsub_destroy (&s_fx.as);

    //  Resumed: shard 0 after 2 (the scorer's table holds 1..3: 3 is
    //  fetched, 1 and 2 are not given again), shard 1 after 0; a shard out
    //  of range is refused. A fresh fake scorer 0, so its query log holds
    //  only what the resumed subscriber asks.
    fake_server_stop (0);
    scorer [0] = fake_server_start (0, fake_cluster.query [0], 0, NULL, 0);
    fake_server_set_available (scorer [0], 3);
    memset (&log, 0, sizeof log);
    as = s_fx.as = trove_awardsub_new (fake_cluster.cfg, false, s_on_award, &log);
    assert_non_null (as);
    assert_int_equal (trove_awardsub_shards (as), 2);
    assert_int_equal (trove_awardsub_resume (as, 0, 2), 0);
    assert_int_equal (trove_awardsub_resume (as, 2, 0), -1);
    assert_int_equal (trove_awardsub_last (as, 0), 2);
    assert_int_equal (s_await_awards (as, &log, 1, 3000), 1);
    s_expect_run (&log, 0, 0, 3, 3);
    assert_int_equal (fake_server_find (scorer [0], "awards", 1), -1);
    assert_true (fake_server_find (scorer [0], "awards", 3) >= 0);
    s_join (pub, as, &log, 0, 4);
    s_expect_run (&log, 0, 0, 3, 4);
    trove_awardsub_destroy (&s_fx.as);
    zsock_destroy (&s_fx.broker);
    fake_server_stop (0);
    fake_server_stop (1);
}

//  A subscriber whose callback stops the poll after every `every` awards.
typedef struct {
    s_awards_t log;
    trove_awardsub_t *as;
    size_t every;
} s_stopper_t;

static void
s_on_award_stop (void *arg, const Trove__Coin *coin)
{
    s_stopper_t *self = arg;
    s_on_award (&self->log, coin);
    if (self->log.n % self->every == 0)
        trove_awardsub_stop (self->as);
}

static void
test_awardsub_stop (void **state)
{
    (void) state;
    //  Shard 0 has 1..25 to catch up from; shard 1 nothing.
    fake_server_t *scorer = fake_server_start (0, fake_cluster.query [0], 0, NULL, 0);
    fake_server_start (1, fake_cluster.query [1], 1, NULL, 0);
    fake_server_set_available (scorer, 25);
    zsock_t *pub = s_broker_new ();
    s_stopper_t stopper;
    memset (&stopper, 0, sizeof stopper);
    stopper.every = 10;
    trove_awardsub_t *as = stopper.as = s_fx.as =
        trove_awardsub_new (fake_cluster.cfg, false, s_on_award_stop, &stopper);
    assert_non_null (as);
    //  The catch-up stops after the 10th award and the poll returns; later
    //  polls go on from there, nothing given twice or skipped.
    int64_t deadline = trove_mono_us () + 5000000;
    while (stopper.log.n == 0 && trove_mono_us () < deadline)
        assert_int_equal (trove_awardsub_poll (as, 20), 0);
    assert_int_equal (stopper.log.n, 10);
    assert_int_equal (trove_awardsub_last (as, 0), 10);
    assert_int_equal (trove_awardsub_poll (as, 20), 0);
    assert_int_equal (stopper.log.n, 20);
    assert_int_equal (s_await_awards (as, &stopper.log, 25, 3000), 25);
    s_expect_run (&stopper.log, 0, 0, 1, 25);
    //  Live: stopped at the 27th; 28 and 29 wait for the next polls.
    stopper.every = 27;
    fake_server_set_available (scorer, 29);
    s_join (pub, as, &stopper.log, 0, 26);
    s_publish_award (pub, 0, 27);
    s_publish_award (pub, 0, 28);
    s_publish_award (pub, 0, 29);
    assert_int_equal (s_await_awards (as, &stopper.log, 29, 3000), 29);
    s_expect_run (&stopper.log, 0, 0, 1, 29);
}

static void
test_awardsub_waits_for_an_unreachable_scorer (void **state)
{
    (void) state;
    //  s0 answers the start "status", ignores the first "awards" query (the
    //  catch-up call times out after 1 s), then answers.
    fake_act_t script [] = {FAKE_REPLY, FAKE_SILENT, FAKE_REPLY};
    fake_server_t *scorer = fake_server_start (0, fake_cluster.query [0], 0, script, 3);
    fake_server_start (1, fake_cluster.query [1], 1, NULL, 0);
    zsock_t *pub = s_broker_new ();
    s_awards_t log;
    memset (&log, 0, sizeof log);
    trove_awardsub_t *as = s_fx.as = trove_awardsub_new (fake_cluster.cfg, true, s_on_award, &log);
    assert_non_null (as);
    s_join (pub, as, &log, 0, 1);
    fake_server_set_available (scorer, 5);
    s_publish_award (pub, 0, 4);  //  2 and 3 missing
    s_publish_award (pub, 0, 5);  //  held behind the gap
    //  4 and 5 wait for 2 and 3: nothing is skipped, nothing is lost.
    assert_int_equal (s_await_awards (as, &log, 5, 8000), 5);
    s_expect_run (&log, 0, 0, 1, 5);
    int first = fake_server_find (scorer, "awards", 2);
    assert_true (first >= 0);
    pthread_mutex_lock (&scorer->lock);
    size_t asked = scorer->nqueries;
    bool again = asked > (size_t) first + 1 && streq (scorer->kind [first + 1], "awards")
              && scorer->from_aseq [first + 1] == 2;
    int64_t gap_us = again ? scorer->at_us [first + 1] - scorer->at_us [first] : 0;
    pthread_mutex_unlock (&scorer->lock);
    assert_true (again);
    //  the second try comes after the 1 s call timeout and a backoff
    if (gap_us < 1000000)
        fail_msg ("asked again after %lld us", (long long) gap_us);
    for (int i = 0; i < 3; i++)
        trove_awardsub_poll (as, 10);
    assert_int_equal (log.n, 5);
    trove_awardsub_destroy (&s_fx.as);
    zsock_destroy (&s_fx.broker);
    fake_server_stop (0);
    fake_server_stop (1);
}

//  Constructors refuse what cannot work.
static void
test_awardsub_refuses_bad_configs (void **state)
{
    (void) state;
    s_awards_t log;
    trove_cfg_t *cfg = fake_bad_cfg ();
    //  a broker/sub endpoint libzmq cannot parse
    assert_null (trove_awardsub_new (cfg, false, s_on_award, &log));
    trove_cfg_destroy (&cfg);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_awardsub_gaps_duplicates_heartbeats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_awardsub_start_points, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_awardsub_waits_for_an_unreachable_scorer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_awardsub_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_awardsub_refuses_bad_configs, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
