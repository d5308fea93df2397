/*  Tests for trove_outbox: credit per shard, lookup by batch_id, resend and
    give-up timing, ids never colliding with live items. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_outbox.h"

#include <stdlib.h>
#include <string.h>

static trove_outbox_item_t *
s_add (trove_outbox_t *box, size_t shard, size_t events, int64_t now)
{
    void *frame = malloc (16);
    uint32_t *index = calloc (events ? events : 1, sizeof *index);
    trove_outbox_item_t *item = trove_outbox_add (box, shard, events, frame, 16, NULL, index, now);
    if (!item) {
        free (frame);
        free (index);
    }
    return item;
}

static void
test_credit_limits_what_goes_out (void **state)
{
    (void) state;
    trove_outbox_t *box = trove_outbox_new (2, 100, 16);
    assert_non_null (box);
    trove_outbox_item_t *a = s_add (box, 0, 60, 1);
    trove_outbox_item_t *b = s_add (box, 0, 60, 2);
    trove_outbox_item_t *c = s_add (box, 1, 10, 3);
    assert_int_equal (trove_outbox_queued (box, 0), 2);
    //  oldest first
    assert_ptr_equal (trove_outbox_next (box, 0), a);
    trove_outbox_sent (box, a, 10);
    assert_int_equal (trove_outbox_inflight (box, 0), 60);
    //  60 + 60 > 100: b waits for credit
    assert_null (trove_outbox_next (box, 0));
    //  other shards are not held up
    assert_ptr_equal (trove_outbox_next (box, 1), c);
    trove_outbox_sent (box, c, 11);
    //  resending takes no new credit
    trove_outbox_sent (box, a, 20);
    assert_int_equal (trove_outbox_inflight (box, 0), 60);
    //  the answer returns the credit
    assert_ptr_equal (trove_outbox_find (box, a->batch_id), a);
    uint64_t id = a->batch_id;
    trove_outbox_remove (box, &a);
    assert_null (a);
    assert_null (trove_outbox_find (box, id));
    assert_int_equal (trove_outbox_inflight (box, 0), 0);
    assert_ptr_equal (trove_outbox_next (box, 0), b);
    trove_outbox_sent (box, b, 30);
    assert_int_equal (trove_outbox_queued (box, 0), 0);
    //  an item bigger than the window still goes out when nothing is in flight
    trove_outbox_item_t *big = s_add (box, 1, 500, 40);
    assert_null (trove_outbox_next (box, 1));  //  c (10) still in flight
    trove_outbox_remove (box, &c);
    assert_ptr_equal (trove_outbox_next (box, 1), big);
    assert_int_equal (trove_outbox_live (box), 2);
    trove_outbox_destroy (&box);  //  frees b and big
    assert_null (box);
    trove_outbox_destroy (&box);
}

typedef struct {
    trove_outbox_t *box;
    int resent, given_up;
    uint64_t resent_id;
} s_seen_t;

static void
s_on_resend (void *arg, trove_outbox_item_t *item)
{
    s_seen_t *seen = arg;
    seen->resent++;
    seen->resent_id = item->batch_id;
    trove_outbox_sent (seen->box, item, 5000);
}

static void
s_on_giveup (void *arg, trove_outbox_item_t *item)
{
    s_seen_t *seen = arg;
    seen->given_up++;
    trove_outbox_remove (seen->box, &item);
}

static void
test_resend_then_give_up (void **state)
{
    (void) state;
    trove_outbox_t *box = trove_outbox_new (1, 1000, 8);
    s_seen_t seen = {box, 0, 0, 0};
    trove_outbox_item_t *sent = s_add (box, 0, 5, 0);
    trove_outbox_item_t *queued = s_add (box, 0, 5000, 0);  //  never fits while `sent` is out
    trove_outbox_sent (box, sent, 100);
    uint64_t sent_id = sent->batch_id;
    //  before the resend delay: nothing
    trove_outbox_expire (box, 1000, 1000, 10000, s_on_resend, s_on_giveup, &seen);
    assert_int_equal (seen.resent, 0);
    //  after it: the sent item is resent, the queued one is not (never sent)
    trove_outbox_expire (box, 1200, 1000, 10000, s_on_resend, s_on_giveup, &seen);
    assert_int_equal (seen.resent, 1);
    assert_int_equal (seen.resent_id, sent_id);
    assert_int_equal (sent->sent_us, 5000);
    //  after the give-up delay both go, queued or not, and credit is back
    trove_outbox_expire (box, 10001, 1000, 10000, s_on_resend, s_on_giveup, &seen);
    assert_int_equal (seen.given_up, 2);
    assert_int_equal (trove_outbox_live (box), 0);
    assert_int_equal (trove_outbox_inflight (box, 0), 0);
    assert_int_equal (trove_outbox_queued (box, 0), 0);
    assert_null (trove_outbox_next (box, 0));
    (void) queued;
    trove_outbox_destroy (&box);
}

static void
test_ids_skip_live_slots_and_capacity_is_bounded (void **state)
{
    (void) state;
    trove_outbox_t *box = trove_outbox_new (1, 1 << 30, 4);
    //  capacity 4: one slot stays free, so 3 live items at most
    trove_outbox_item_t *slow = s_add (box, 0, 1, 0);
    assert_non_null (s_add (box, 0, 1, 0));
    assert_non_null (s_add (box, 0, 1, 0));
    assert_true (trove_outbox_full (box));
    assert_null (s_add (box, 0, 1, 0));
    //  free everything but the slow one, then add many: ids never land on its slot
    for (uint64_t id = 1; id < 100; id++) {
        trove_outbox_item_t *item = trove_outbox_find (box, id);
        if (item && item != slow) {
            trove_outbox_sent (box, item, 1);
            trove_outbox_remove (box, &item);
        }
    }
    for (int i = 0; i < 50; i++) {
        trove_outbox_item_t *item = s_add (box, 0, 1, 0);
        assert_non_null (item);
        assert_true ((item->batch_id & 3) != (slow->batch_id & 3));
        assert_ptr_equal (trove_outbox_find (box, slow->batch_id), slow);
        trove_outbox_remove (box, &item);
    }
    assert_int_equal (trove_outbox_live (box), 1);
    //  removing a queued (never sent) item unlinks it from its shard queue
    assert_int_equal (trove_outbox_queued (box, 0), 1);
    trove_outbox_remove (box, &slow);
    assert_int_equal (trove_outbox_queued (box, 0), 0);
    assert_null (trove_outbox_next (box, 0));
    trove_outbox_destroy (&box);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_credit_limits_what_goes_out),
        cmocka_unit_test (test_resend_then_give_up),
        cmocka_unit_test (test_ids_skip_live_slots_and_capacity_is_bounded),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
