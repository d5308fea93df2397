/*  test_trove_hookproto - delivery ids, the signature header and the retry
    schedule of webhooks (webhooks/trove_hookproto).

    The signatures are golden vectors computed independently of the C code,
    with Python:
      hmac.new(secret, b"TS." + body, hashlib.sha256).hexdigest() */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_hookproto.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void
test_sign_golden (void **state)
{
    (void) state;
    const char *secret = "whsec-test-0123456789", *body = "{\"id\":\"a.0.1\"}";
    char sig [TROVE_HOOKPROTO_SIG_MAX];
    trove_hookproto_sign ((const uint8_t *) secret, strlen (secret), 1700000000, body, strlen (body), sig);
    assert_string_equal (sig,
                         "t=1700000000,v1=e93200d361ccd50c4f29b47f4bf3ebc8c2fd3d398047d6052c93e7b5b2ab2f16");
    //  The time is signed: another second, another signature.
    trove_hookproto_sign ((const uint8_t *) secret, strlen (secret), 1700000001, body, strlen (body), sig);
    assert_string_equal (sig,
                         "t=1700000001,v1=60054c61db7895d21394bb223b13d3e4095f953a5b0c4bdb2c597daab1b2f5c3");
    //  A binary key and an empty body.
    uint8_t key [20];
    memset (key, 0x0b, sizeof key);
    trove_hookproto_sign (key, sizeof key, 1700000000, "", 0, sig);
    assert_string_equal (sig,
                         "t=1700000000,v1=c48cfc0fe3586d4e4a341401af26bf0370bd53a738b23e33b4e9965cdb461df8");
}

static void
test_sign_covers_every_body_byte (void **state)
{
    (void) state;
    const char *secret = "whsec-test-0123456789";
    char a [TROVE_HOOKPROTO_SIG_MAX], b [TROVE_HOOKPROTO_SIG_MAX];
    //  Only body_len bytes are signed: the text after them does not count.
    trove_hookproto_sign ((const uint8_t *) secret, strlen (secret), 5, "{\"v\":1}xyz", 7, a);
    trove_hookproto_sign ((const uint8_t *) secret, strlen (secret), 5, "{\"v\":1}", 7, b);
    assert_string_equal (a, b);
    trove_hookproto_sign ((const uint8_t *) secret, strlen (secret), 5, "{\"v\":2}", 7, b);
    assert_string_not_equal (a, b);
}

static void
test_id_round_trip (void **state)
{
    (void) state;
    char id [TROVE_HOOKPROTO_ID_MAX], endpoint [65];
    uint32_t shard;
    uint64_t aseq;
    assert_int_equal (trove_hookproto_id ("billing", 3, 42, id), 0);
    assert_string_equal (id, "billing.3.42");
    assert_int_equal (trove_hookproto_id_parse (id, endpoint, &shard, &aseq), 0);
    assert_string_equal (endpoint, "billing");
    assert_int_equal (shard, 3);
    assert_int_equal (aseq, 42);
    //  The extremes fit.
    char longest [65];
    memset (longest, 'x', 64);
    longest [64] = 0;
    assert_int_equal (trove_hookproto_id (longest, UINT32_MAX, UINT64_MAX, id), 0);
    assert_int_equal (strlen (id), 64 + 1 + 10 + 1 + 20);
    assert_int_equal (trove_hookproto_id_parse (id, endpoint, &shard, &aseq), 0);
    assert_true (shard == UINT32_MAX && aseq == UINT64_MAX);
    //  Too long a name is refused.
    char too_long [66];
    memset (too_long, 'x', 65);
    too_long [65] = 0;
    assert_int_equal (trove_hookproto_id (too_long, 0, 1, id), -1);
}

static void
test_id_parse_refuses (void **state)
{
    (void) state;
    const char *bad [] = {"",        "billing", "billing.1",      ".1.2",
                          "b.1.",    "b..2",    "b.x.2",          "b.1.2x",
                          "b.01.2",  "b.1.-2",  "b.4294967296.1", "b.1.18446744073709551616",
                          "b.1.2.3", "b.+1.2"};
    char endpoint [65] = "untouched";
    uint32_t shard = 7;
    uint64_t aseq = 9;
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        assert_int_equal (trove_hookproto_id_parse (bad [i], endpoint, &shard, &aseq), -1);
        assert_string_equal (endpoint, "untouched");
        assert_true (shard == 7 && aseq == 9);
    }
}

static void
test_backoff_doubles_to_cap_with_jitter (void **state)
{
    (void) state;
    //  random 0: the fixed half; UINT32_MAX: the whole delay.
    assert_int_equal (trove_hookproto_backoff_ms (1, 500, 60000, 0), 250);
    assert_int_equal (trove_hookproto_backoff_ms (1, 500, 60000, UINT32_MAX), 500);
    assert_int_equal (trove_hookproto_backoff_ms (2, 500, 60000, UINT32_MAX), 1000);
    assert_int_equal (trove_hookproto_backoff_ms (3, 500, 60000, UINT32_MAX), 2000);
    assert_int_equal (trove_hookproto_backoff_ms (8, 500, 60000, UINT32_MAX), 60000);
    assert_int_equal (trove_hookproto_backoff_ms (8, 500, 60000, 0), 30000);
    //  Far past the cap (no overflow).
    assert_int_equal (trove_hookproto_backoff_ms (1000, 500, 60000, UINT32_MAX), 60000);
    assert_int_equal (trove_hookproto_backoff_ms (1000000, 1, 86400000, 0), 43200000);
    //  Within [delay/2, delay] for every random, and spread over it.
    int64_t lo = INT64_MAX, hi = 0;
    for (uint32_t r = 0; r < 1000; r++) {
        int64_t d = trove_hookproto_backoff_ms (4, 100, 60000, r * 4294967u);
        assert_true (d >= 400 && d <= 800);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true (lo <= 410 && hi >= 790);
    //  A cap below the doubled delay holds from the first failure.
    assert_int_equal (trove_hookproto_backoff_ms (1, 50, 50, UINT32_MAX), 50);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_sign_golden),
        cmocka_unit_test (test_sign_covers_every_body_byte),
        cmocka_unit_test (test_id_round_trip),
        cmocka_unit_test (test_id_parse_refuses),
        cmocka_unit_test (test_backoff_doubles_to_cap_with_jitter),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
