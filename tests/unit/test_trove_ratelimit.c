/*  Tests for trove_ratelimit: refill, all-or-nothing takes over several
    buckets, the wait told, asks over a burst, no-limit asks, and a full
    table that stays bounded (keys share, never get more). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_ratelimit.h"

#include <stdio.h>
#include <string.h>

static trove_ratelimit_ask_t
s_ask (const char *key, double tokens, double rate, double burst)
{
    return (trove_ratelimit_ask_t){key, strlen (key), tokens, rate, burst};
}

static void
test_refill (void **state)
{
    (void) state;
    trove_ratelimit_t *rl = trove_ratelimit_new (100);
    assert_non_null (rl);
    trove_ratelimit_ask_t a = s_ask ("web", 1, 2, 3);  //  2/s, burst 3
    long wait = 0;
    size_t which = 99;
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        assert_int_equal (trove_ratelimit_take (rl, &a, 1, t, &wait, &which), 0);
    assert_int_equal (trove_ratelimit_take (rl, &a, 1, t, &wait, &which), 1);
    assert_int_equal (which, 0);
    assert_int_equal (wait, 1);  //  0.5 s rounds up to whole seconds
    //  After 0.5 s, one token is back; after 10 s, only the burst.
    assert_int_equal (trove_ratelimit_take (rl, &a, 1, t + 500000, &wait, &which), 0);
    assert_int_equal (trove_ratelimit_take (rl, &a, 1, t + 500000, &wait, &which), 1);
    trove_ratelimit_ask_t four = s_ask ("web", 3, 2, 3);
    assert_int_equal (trove_ratelimit_take (rl, &four, 1, t + 10500000, &wait, &which), 0);
    assert_int_equal (trove_ratelimit_take (rl, &a, 1, t + 10500000, &wait, &which), 1);
    trove_ratelimit_destroy (&rl);
    trove_ratelimit_destroy (&rl);
    assert_null (rl);
}

static void
test_all_or_nothing (void **state)
{
    (void) state;
    trove_ratelimit_t *rl = trove_ratelimit_new (100);
    long wait = 0;
    size_t which = 99;
    int64_t t = 5000000;
    trove_ratelimit_ask_t asks [3] = {s_ask ("src", 2, 1, 10), s_ask ("u1", 1, 0.1, 2),
                                      s_ask ("u2", 1, 0.1, 1)};
    assert_int_equal (trove_ratelimit_take (rl, asks, 3, t, &wait, &which), 0);
    //  u2 is empty: nothing is taken from src or u1.
    assert_int_equal (trove_ratelimit_take (rl, asks, 3, t, &wait, &which), 1);
    assert_int_equal (which, 2);
    assert_int_equal (wait, 10);  //  1 token at 0.1/s
    trove_ratelimit_ask_t u1 = s_ask ("u1", 1, 0.1, 2);
    assert_int_equal (trove_ratelimit_take (rl, &u1, 1, t, &wait, &which), 0);  //  u1 still had 1
    assert_int_equal (trove_ratelimit_take (rl, &u1, 1, t, &wait, &which), 1);
    trove_ratelimit_ask_t src = s_ask ("src", 8, 1, 10);
    assert_int_equal (trove_ratelimit_take (rl, &src, 1, t, &wait, &which), 0);  //  src had 8 left
    trove_ratelimit_destroy (&rl);
}

//  Two keys of one request never end up in one bucket while a free one is
//  in reach: a bucket claimed by the request looks idle (full) until the
//  tokens are taken, so a later key of the same request must not claim it
//  again. Each table has its own random hash key: many tables make a
//  collision of the two probe windows (1 in 64 per table) certain.
static void
test_one_request_claims_distinct_buckets (void **state)
{
    (void) state;
    for (int round = 0; round < 2000; round++) {
        trove_ratelimit_t *rl = trove_ratelimit_new (1);  //  64 slots
        assert_non_null (rl);
        trove_ratelimit_ask_t asks [2] = {s_ask ("src", 1, 0.001, 1), s_ask ("ann", 1, 0.001, 1)};
        assert_int_equal (trove_ratelimit_take (rl, asks, 2, 0, NULL, NULL), 0);
        //  Each bucket gave its only token: both keys are empty now.
        assert_int_equal (trove_ratelimit_take (rl, &asks [0], 1, 0, NULL, NULL), 1);
        assert_int_equal (trove_ratelimit_take (rl, &asks [1], 1, 0, NULL, NULL), 1);
        trove_ratelimit_destroy (&rl);
    }
}

static void
test_over_burst_and_unlimited (void **state)
{
    (void) state;
    trove_ratelimit_t *rl = trove_ratelimit_new (100);
    size_t which = 99;
    trove_ratelimit_ask_t asks [2] = {s_ask ("free", 1e6, 0, 0), s_ask ("u", 5, 1, 4)};
    assert_int_equal (trove_ratelimit_take (rl, asks, 2, 0, NULL, &which), 2);
    assert_int_equal (which, 1);
    asks [1].tokens = 4;
    assert_int_equal (trove_ratelimit_take (rl, asks, 2, 0, NULL, &which), 0);
    //  rate 0: never limited.
    for (int i = 0; i < 100; i++)
        assert_int_equal (trove_ratelimit_take (rl, asks, 1, 0, NULL, NULL), 0);
    trove_ratelimit_destroy (&rl);
}

static void
test_bounded_table (void **state)
{
    (void) state;
    //  64 slots, 10,000 busy keys: keys end up sharing buckets, so the total
    //  granted at one instant is at most what 64 buckets hold.
    trove_ratelimit_t *rl = trove_ratelimit_new (1);
    size_t granted = 0;
    for (int i = 0; i < 10000; i++) {
        char key [32];
        snprintf (key, sizeof key, "user-%d", i);
        trove_ratelimit_ask_t a = s_ask (key, 1, 0.001, 2);
        granted += trove_ratelimit_take (rl, &a, 1, 0, NULL, NULL) == 0;
    }
    assert_true (granted <= 64 * 2);
    assert_true (granted >= 64);
    trove_ratelimit_destroy (&rl);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_refill),
        cmocka_unit_test (test_all_or_nothing),
        cmocka_unit_test (test_one_request_claims_distinct_buckets),
        cmocka_unit_test (test_over_burst_and_unlimited),
        cmocka_unit_test (test_bounded_table),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
