/*  test_trove_statecache - the cache of decoded rule states
    (lib/rules/trove_statecache): a state comes back only for exactly the
    bytes it was kept with, once; other bytes (the store changed) miss and
    drop it; the least recently kept state is evicted first; long keys are
    refused without harm. Run under ASan in CI, which checks that every
    state and buffer handed over is freed exactly once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_statecache.h"

#include <stdlib.h>
#include <string.h>

//  A state for hunt with max_ts, and its packed bytes (malloc'd).
static Trove__HuntState *
s_state (const char *hunt, int64_t max_ts, void **packed_p, size_t *size_p)
{
    Trove__HuntState only = TROVE__HUNT_STATE__INIT;
    only.hunt = (char *) hunt;
    only.max_ts = max_ts;
    *size_p = trove__hunt_state__get_packed_size (&only);
    *packed_p = malloc (*size_p);
    assert_non_null (*packed_p);
    trove__hunt_state__pack (&only, *packed_p);
    Trove__HuntState *hs = trove__hunt_state__unpack (NULL, *size_p, *packed_p);
    assert_non_null (hs);
    return hs;
}

//  Keep a state of (user, hunt) with max_ts; *copy_p gets a copy of its
//  bytes (the store's copy, as the engine's store would hold).
static void
s_keep (trove_statecache_t *cache, const char *user, const char *hunt, int64_t max_ts, void **copy_p,
        size_t *size_p)
{
    void *packed;
    Trove__HuntState *hs = s_state (hunt, max_ts, &packed, size_p);
    *copy_p = malloc (*size_p);
    assert_non_null (*copy_p);
    memcpy (*copy_p, packed, *size_p);
    assert_int_equal (trove_statecache_keep (cache, user, hunt, hs, packed, *size_p), 0);
}

static void
test_same_bytes_hit_once (void **state)
{
    (void) state;
    trove_statecache_t *cache = trove_statecache_new (4);
    assert_non_null (cache);
    void *bytes;
    size_t size;
    s_keep (cache, "alice", "h1", 1234, &bytes, &size);
    //  Another user or hunt: nothing.
    assert_null (trove_statecache_take (cache, "bob", "h1", bytes, size));
    assert_null (trove_statecache_take (cache, "alice", "h2", bytes, size));
    Trove__HuntState *hs = trove_statecache_take (cache, "alice", "h1", bytes, size);
    assert_non_null (hs);
    assert_string_equal (hs->hunt, "h1");
    assert_int_equal (hs->max_ts, 1234);
    trove__hunt_state__free_unpacked (hs, NULL);
    //  Taken: the caller owns it, the cache has it no more.
    assert_null (trove_statecache_take (cache, "alice", "h1", bytes, size));
    uint64_t lookups;
    assert_int_equal (trove_statecache_hits (cache, &lookups), 1);
    assert_int_equal (lookups, 4);
    free (bytes);
    trove_statecache_destroy (&cache);
    assert_null (cache);
}

static void
test_other_bytes_miss_and_drop (void **state)
{
    (void) state;
    trove_statecache_t *cache = trove_statecache_new (4);
    void *bytes, *other_packed;
    size_t size, other_size;
    s_keep (cache, "alice", "h1", 1234, &bytes, &size);
    //  The store now holds another state (a re-derive wrote it, a batch
    //  was discarded): the cached one must not come back.
    Trove__HuntState *other = s_state ("h1", 99999, &other_packed, &other_size);
    assert_null (trove_statecache_take (cache, "alice", "h1", other_packed, other_size));
    //  Same length, one byte different.
    void *flipped = malloc (size);
    memcpy (flipped, bytes, size);
    ((uint8_t *) flipped) [size - 1] ^= 1;
    void *carol;
    size_t carol_size;
    s_keep (cache, "carol", "h1", 1234, &carol, &carol_size);
    assert_int_equal (carol_size, size);
    assert_null (trove_statecache_take (cache, "carol", "h1", flipped, size));
    free (carol);
    //  And the stale entry is gone, even for the old bytes.
    assert_null (trove_statecache_take (cache, "alice", "h1", bytes, size));
    assert_int_equal (trove_statecache_hits (cache, NULL), 0);
    trove__hunt_state__free_unpacked (other, NULL);
    free (other_packed);
    free (flipped);
    free (bytes);
    trove_statecache_destroy (&cache);
}

static void
test_least_recently_kept_goes_first (void **state)
{
    (void) state;
    trove_statecache_t *cache = trove_statecache_new (2);
    void *a, *b, *c, *a2;
    size_t sa, sb, sc, sa2;
    s_keep (cache, "u1", "h", 1, &a, &sa);
    s_keep (cache, "u2", "h", 2, &b, &sb);
    //  u1 kept again (newer state): now u2 is the oldest.
    s_keep (cache, "u1", "h", 11, &a2, &sa2);
    s_keep (cache, "u3", "h", 3, &c, &sc);
    assert_null (trove_statecache_take (cache, "u2", "h", b, sb));
    //  u1's first bytes are stale; its second come back.
    assert_null (trove_statecache_take (cache, "u1", "h", a, sa));
    free (a2);
    s_keep (cache, "u1", "h", 11, &a2, &sa2);
    Trove__HuntState *hs = trove_statecache_take (cache, "u3", "h", c, sc);
    assert_non_null (hs);
    assert_int_equal (hs->max_ts, 3);
    trove__hunt_state__free_unpacked (hs, NULL);
    hs = trove_statecache_take (cache, "u1", "h", a2, sa2);
    assert_non_null (hs);
    assert_int_equal (hs->max_ts, 11);
    trove__hunt_state__free_unpacked (hs, NULL);
    free (a), free (b), free (c), free (a2);
    trove_statecache_destroy (&cache);
}

static void
test_long_key_refused_without_harm (void **state)
{
    (void) state;
    trove_statecache_t *cache = trove_statecache_new (2);
    char user [1000];
    memset (user, 'x', sizeof user - 1);
    user [sizeof user - 1] = 0;
    void *packed;
    size_t size;
    Trove__HuntState *hs = s_state ("h", 5, &packed, &size);
    void *copy = malloc (size);
    memcpy (copy, packed, size);
    //  Not kept (freed by the cache), not found.
    assert_int_equal (trove_statecache_keep (cache, user, "h", hs, packed, size), -1);
    assert_null (trove_statecache_take (cache, user, "h", copy, size));
    free (copy);
    trove_statecache_destroy (&cache);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_same_bytes_hit_once),
        cmocka_unit_test (test_other_bytes_miss_and_drop),
        cmocka_unit_test (test_least_recently_kept_goes_first),
        cmocka_unit_test (test_long_key_refused_without_harm),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
