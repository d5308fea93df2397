/*  test_trove_hash - golden vectors for the user hash, the partition of a
    user and the coin id (lib/core/trove_hash).

    These numbers are fixed forever: if one of these tests fails, users would
    move to other partitions or coins would change ids. Do not "fix" a vector
    without a migration plan. Every expected value here was computed
    independently of the C code, with Python:
      FNV-1a 64:  h = 0xcbf29ce484222325; for b in data: h = ((h ^ b) * 0x100000001b3) % 2**64
      coin id:    hashlib.blake2b(b"trove-coin-v1\0" + hunt + b"\0" + rule + b"\0"
                                  + user + b"\0" + occurrence, digest_size=16).hexdigest()
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_hash.h"

#include <sodium.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void
test_fnv1a64_standard_vectors (void **state)
{
    (void) state;
    //  From the FNV reference test suite.
    assert_true (trove_hash_fnv1a64 ("", 0) == 0xcbf29ce484222325ULL);
    assert_true (trove_hash_fnv1a64 ("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true (trove_hash_fnv1a64 ("foobar", 6) == 0x85944171f73967e8ULL);
}

static void
test_fnv1a64_trove_vectors (void **state)
{
    (void) state;
    assert_true (trove_hash_fnv1a64 ("u1", 2) == 0x08c47b07b56747f3ULL);
    assert_true (trove_hash_fnv1a64 ("alice", 5) == 0x508b2abb65a03907ULL);
    assert_true (trove_hash_fnv1a64 ("u42", 3) == 0x4d2f65193e88405aULL);
    //  Bytes, not characters: "élan" in UTF-8.
    assert_true (trove_hash_fnv1a64 ("\xc3\xa9lan", 5) == 0xbe4e840e64014224ULL);
}

static void
test_fnv1a64_uses_exactly_len_bytes (void **state)
{
    (void) state;
    //  Only the first len bytes count; a NUL inside the data is hashed.
    assert_true (trove_hash_fnv1a64 ("alice-and-more", 5) == trove_hash_fnv1a64 ("alice", 5));
    assert_true (trove_hash_fnv1a64 ("a\0b", 3) != trove_hash_fnv1a64 ("a", 1));
    assert_true (trove_hash_fnv1a64 ("a\0", 2) != trove_hash_fnv1a64 ("a", 1));
    const uint8_t bytes [] = {0xff, 0x00, 0x80};
    assert_true (trove_hash_fnv1a64 (bytes, 3) != trove_hash_fnv1a64 (bytes, 2));
}

static void
test_partition_golden_256 (void **state)
{
    (void) state;
    assert_int_equal (trove_hash_partition ("u1", 2, 256), 243);
    assert_int_equal (trove_hash_partition ("alice", 5, 256), 7);
    assert_int_equal (trove_hash_partition ("u42", 3, 256), 90);
    assert_int_equal (trove_hash_partition ("a", 1, 256), 140);
    assert_int_equal (trove_hash_partition ("", 0, 256), 37);
    assert_int_equal (trove_hash_partition ("foobar", 6, 256), 232);
    assert_int_equal (trove_hash_partition ("\xc3\xa9lan", 5, 256), 36);
}

static void
test_partition_other_counts (void **state)
{
    (void) state;
    //  Not a power of two: the modulo must be of the full 64-bit hash.
    assert_int_equal (trove_hash_partition ("u1", 2, 7), 2);
    assert_int_equal (trove_hash_partition ("alice", 5, 7), 1);
    assert_int_equal (trove_hash_partition ("u42", 3, 7), 0);
    assert_int_equal (trove_hash_partition ("foobar", 6, 7), 6);
    assert_int_equal (trove_hash_partition ("alice", 5, 65535), 6638);
    assert_int_equal (trove_hash_partition ("u1", 2, 1), 0);
    assert_int_equal (trove_hash_partition ("alice-and-more", 5, 256), 7);
}

static void
test_partition_in_range_and_spread (void **state)
{
    (void) state;
    //  10000 users over 16 partitions: every partition used, none crowded.
    unsigned counts [16] = {0};
    char user [32];
    for (int i = 0; i < 10000; i++) {
        int len = snprintf (user, sizeof user, "user-%d", i);
        uint32_t p = trove_hash_partition (user, (size_t) len, 16);
        assert_true (p < 16);
        assert_int_equal (p, trove_hash_fnv1a64 (user, (size_t) len) % 16);
        counts [p]++;
    }
    for (int p = 0; p < 16; p++)
        assert_in_range (counts [p], 500, 750);
}

static bool
s_is_lower_hex (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s [i] >= '0' && s [i] <= '9') || (s [i] >= 'a' && s [i] <= 'f')))
            return false;
    return true;
}

static void
test_coin_id_golden (void **state)
{
    (void) state;
    char out [TROVE_COIN_ID_LEN + 2];
    memset (out, '?', sizeof out);
    trove_hash_coin_id ("spring", "first-checkin", "u1", "web\0e-1", 7, out);
    assert_string_equal (out, "e9f10fe3f80741ac60545315cec8db2f");
    assert_int_equal (out [TROVE_COIN_ID_LEN + 1], '?');  //  wrote exactly 33 bytes

    trove_hash_coin_id ("spring", "first-checkin", "u1", "", 0, out);
    assert_string_equal (out, "18e89a04e552d0a87fa0635c4d942c32");
    trove_hash_coin_id ("spring-hunt", "first-checkin", "alice", "web\0e-1", 7, out);
    assert_string_equal (out, "ec0ceb0d0028f0a209a5a1083fcbc581");
    trove_hash_coin_id ("h", "r", "u", "o", 1, out);
    assert_string_equal (out, "659ac5bb863fcf3f174e898c8595ceb4");
    trove_hash_coin_id ("", "", "", "", 0, out);
    assert_string_equal (out, "0ab133df5b40bcbf97fd558f0ced2eb9");
    trove_hash_coin_id ("h\xc3\xa9", "r", "\xc3\xa9l", "\0\0\0", 3, out);
    assert_string_equal (out, "dfe09092fd2b60ed110c0e034d19e09e");
}

//  Keys longer than the hash's stack buffer (512 bytes) go through the heap:
//  the same id as the key hashed part by part (libsodium's BLAKE2b-128 of
//  "trove-coin-v1" NUL hunt NUL rule NUL user NUL occurrence).
static void
test_coin_id_long_key (void **state)
{
    (void) state;
    char occ [700];
    for (size_t i = 0; i < sizeof occ; i++)
        occ [i] = (char) ('a' + i % 26);
    occ [100] = 0;
    for (size_t len = 400; len <= sizeof occ; len += 150) {
        char got [TROVE_COIN_ID_LEN + 1], want [TROVE_COIN_ID_LEN + 1];
        trove_hash_coin_id ("hunt", "rule", "user", occ, len, got);
        crypto_generichash_state st;
        crypto_generichash_init (&st, NULL, 0, 16);
        crypto_generichash_update (&st, (const uint8_t *) "trove-coin-v1\0hunt\0rule\0user", 28);
        crypto_generichash_update (&st, (const uint8_t *) "", 1);
        crypto_generichash_update (&st, (const uint8_t *) occ, len);
        uint8_t digest [16];
        crypto_generichash_final (&st, digest, sizeof digest);
        for (int i = 0; i < 16; i++)
            snprintf (want + 2 * i, 3, "%02x", digest [i]);
        assert_string_equal (got, want);
    }
}

static void
test_coin_id_shape_and_determinism (void **state)
{
    (void) state;
    char a [TROVE_COIN_ID_LEN + 1], b [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("hunt", "rule", "user", "src\0id", 6, a);
    trove_hash_coin_id ("hunt", "rule", "user", "src\0id", 6, b);
    assert_int_equal (strlen (a), TROVE_COIN_ID_LEN);
    assert_true (s_is_lower_hex (a, TROVE_COIN_ID_LEN));
    assert_string_equal (a, b);
}

static void
test_coin_id_differs_when_any_input_differs (void **state)
{
    (void) state;
    char base [TROVE_COIN_ID_LEN + 1], other [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("hunt", "rule", "user", "web\0e-1", 7, base);

    trove_hash_coin_id ("hunt2", "rule", "user", "web\0e-1", 7, other);
    assert_string_not_equal (base, other);
    trove_hash_coin_id ("hunt", "rule2", "user", "web\0e-1", 7, other);
    assert_string_not_equal (base, other);
    trove_hash_coin_id ("hunt", "rule", "user2", "web\0e-1", 7, other);
    assert_string_not_equal (base, other);
    trove_hash_coin_id ("hunt", "rule", "user", "web\0e-2", 7, other);
    assert_string_not_equal (base, other);
    //  Bytes after a NUL in the occurrence count...
    trove_hash_coin_id ("hunt", "rule", "user", "web\0e-1", 4, other);
    assert_string_not_equal (base, other);
    //  ...and so does the length alone.
    trove_hash_coin_id ("hunt", "rule", "user", "web\0e-1\0", 8, other);
    assert_string_not_equal (base, other);
    //  The NUL separators keep field boundaries apart.
    char x [TROVE_COIN_ID_LEN + 1], y [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("ab", "c", "u", "o", 1, x);
    trove_hash_coin_id ("a", "bc", "u", "o", 1, y);
    assert_string_not_equal (x, y);
    trove_hash_coin_id ("h", "r", "ab", "c", 1, x);
    trove_hash_coin_id ("h", "r", "a", "bc", 2, y);
    assert_string_not_equal (x, y);
    //  Swapping user and rule changes the id.
    trove_hash_coin_id ("h", "alice", "bob", "o", 1, x);
    trove_hash_coin_id ("h", "bob", "alice", "o", 1, y);
    assert_string_not_equal (x, y);
}

//  The claim partition is FNV-1a 64 of "source NUL id", like a user's.
static void
test_claim_partition (void **state)
{
    (void) state;
    const char key [] = "web\0e-1001";
    uint32_t want = (uint32_t) (trove_hash_fnv1a64 (key, sizeof key - 1) % 256);
    assert_int_equal (trove_hash_claim_partition ("web", "e-1001", 256), want);
    assert_true (trove_hash_claim_partition ("we", "be-1001", 256) != want
                 || trove_hash_fnv1a64 ("we\0be-1001", 11) % 256 == want);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_claim_partition),
        cmocka_unit_test (test_fnv1a64_standard_vectors),
        cmocka_unit_test (test_fnv1a64_trove_vectors),
        cmocka_unit_test (test_fnv1a64_uses_exactly_len_bytes),
        cmocka_unit_test (test_partition_golden_256),
        cmocka_unit_test (test_partition_other_counts),
        cmocka_unit_test (test_partition_in_range_and_spread),
        cmocka_unit_test (test_coin_id_golden),
        cmocka_unit_test (test_coin_id_shape_and_determinism),
        cmocka_unit_test (test_coin_id_long_key),
        cmocka_unit_test (test_coin_id_differs_when_any_input_differs),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
