/*  test_trove_hookcursor - an endpoint's settled-prefix position
    (webhooks/trove_hookcursor): the position moves only over awards that
    are all settled, whatever order they settle in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_hookcursor.h"

#include <stdbool.h>
#include <stdlib.h>

static void
test_moves_over_settled_prefix_only (void **state)
{
    (void) state;
    trove_hookcursor_t *c = trove_hookcursor_new (2);
    assert_non_null (c);
    for (uint64_t a = 1; a <= 5; a++)
        assert_int_equal (trove_hookcursor_add (c, 0, a, true), 1);
    assert_int_equal (trove_hookcursor_through (c, 0), 0);
    assert_int_equal (trove_hookcursor_pending (c), 5);
    //  3 and 2 settle first: nothing moves while 1 is out.
    assert_int_equal (trove_hookcursor_settle (c, 0, 3), 0);
    assert_int_equal (trove_hookcursor_settle (c, 0, 2), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 0);
    assert_int_equal (trove_hookcursor_settle (c, 0, 1), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 3);
    assert_int_equal (trove_hookcursor_settle (c, 0, 5), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 3);
    assert_int_equal (trove_hookcursor_settle (c, 0, 4), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 5);
    assert_int_equal (trove_hookcursor_pending (c), 0);
    //  The other shard never moved.
    assert_int_equal (trove_hookcursor_through (c, 1), 0);
    trove_hookcursor_destroy (&c);
    assert_null (c);
    trove_hookcursor_destroy (&c);
}

static void
test_unwanted_awards_settle_at_once (void **state)
{
    (void) state;
    trove_hookcursor_t *c = trove_hookcursor_new (1);
    //  Nothing pending: an unwanted award moves the position itself.
    assert_int_equal (trove_hookcursor_add (c, 0, 1, false), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 1);
    //  Behind a pending one, it waits for it.
    assert_int_equal (trove_hookcursor_add (c, 0, 2, true), 1);
    assert_int_equal (trove_hookcursor_add (c, 0, 3, false), 0);
    assert_int_equal (trove_hookcursor_add (c, 0, 4, false), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 1);
    assert_int_equal (trove_hookcursor_settle (c, 0, 2), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 4);
    trove_hookcursor_destroy (&c);
}

static void
test_resume_skips_what_was_settled (void **state)
{
    (void) state;
    trove_hookcursor_t *c = trove_hookcursor_new (1);
    trove_hookcursor_start (c, 0, 10);
    assert_int_equal (trove_hookcursor_through (c, 0), 10);
    //  The stream starts earlier (another endpoint is behind): skipped.
    assert_int_equal (trove_hookcursor_add (c, 0, 9, true), 0);
    assert_int_equal (trove_hookcursor_add (c, 0, 10, true), 0);
    assert_int_equal (trove_hookcursor_pending (c), 0);
    assert_int_equal (trove_hookcursor_add (c, 0, 11, true), 1);
    //  A gap in aseq is allowed; going back is refused and changes nothing.
    assert_int_equal (trove_hookcursor_add (c, 0, 15, true), 1);
    assert_int_equal (trove_hookcursor_add (c, 0, 13, true), -1);
    assert_int_equal (trove_hookcursor_add (c, 0, 15, true), -1);
    assert_int_equal (trove_hookcursor_pending (c), 2);
    assert_int_equal (trove_hookcursor_settle (c, 0, 11), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 14);
    assert_int_equal (trove_hookcursor_settle (c, 0, 15), 0);
    assert_int_equal (trove_hookcursor_through (c, 0), 15);
    trove_hookcursor_destroy (&c);
}

static void
test_settle_refuses_unknown_and_twice (void **state)
{
    (void) state;
    trove_hookcursor_t *c = trove_hookcursor_new (1);
    assert_int_equal (trove_hookcursor_add (c, 0, 1, true), 1);
    assert_int_equal (trove_hookcursor_add (c, 0, 2, true), 1);
    assert_int_equal (trove_hookcursor_settle (c, 0, 3), -1);
    assert_int_equal (trove_hookcursor_settle (c, 0, 2), 0);
    assert_int_equal (trove_hookcursor_settle (c, 0, 2), -1);
    assert_int_equal (trove_hookcursor_pending (c), 1);
    assert_int_equal (trove_hookcursor_settle (c, 0, 1), 0);
    assert_int_equal (trove_hookcursor_settle (c, 0, 1), -1);
    assert_int_equal (trove_hookcursor_through (c, 0), 2);
    trove_hookcursor_destroy (&c);
}

//  Many awards settled in a random order: after each settle the position
//  is exactly the longest settled prefix (checked against a plain array).
static void
test_random_orders_match_a_model (void **state)
{
    (void) state;
    enum { N = 3000 };
    srand (7);
    for (int round = 0; round < 5; round++) {
        trove_hookcursor_t *c = trove_hookcursor_new (1);
        static bool settled [N + 1];
        static uint64_t order [N];
        for (uint64_t a = 1; a <= N; a++) {
            settled [a] = false;
            order [a - 1] = a;
            assert_int_equal (trove_hookcursor_add (c, 0, a, true), 1);
        }
        for (size_t i = N - 1; i > 0; i--) {
            size_t j = (size_t) rand () % (i + 1);
            uint64_t t = order [i];
            order [i] = order [j];
            order [j] = t;
        }
        uint64_t model = 0;
        for (size_t i = 0; i < N; i++) {
            assert_int_equal (trove_hookcursor_settle (c, 0, order [i]), 0);
            settled [order [i]] = true;
            while (model < N && settled [model + 1])
                model++;
            assert_int_equal (trove_hookcursor_through (c, 0), model);
            assert_int_equal (trove_hookcursor_pending (c), N - i - 1);
        }
        trove_hookcursor_destroy (&c);
    }
}

//  Adding while settling from the front reuses the space (a long run with
//  a bounded window does not grow without bound, and stays correct).
static void
test_sliding_window (void **state)
{
    (void) state;
    trove_hookcursor_t *c = trove_hookcursor_new (1);
    for (uint64_t a = 1; a <= 100000; a++) {
        assert_int_equal (trove_hookcursor_add (c, 0, a, true), 1);
        if (a > 8) {
            assert_int_equal (trove_hookcursor_settle (c, 0, a - 8), 0);
            assert_int_equal (trove_hookcursor_through (c, 0), a - 8);
        }
    }
    assert_int_equal (trove_hookcursor_pending (c), 8);
    trove_hookcursor_destroy (&c);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_moves_over_settled_prefix_only),
        cmocka_unit_test (test_unwanted_awards_settle_at_once),
        cmocka_unit_test (test_resume_skips_what_was_settled),
        cmocka_unit_test (test_settle_refuses_unknown_and_twice),
        cmocka_unit_test (test_random_orders_match_a_model),
        cmocka_unit_test (test_sliding_window),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
