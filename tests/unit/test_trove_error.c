/*  test_trove_error - the reason codes (lib/core/trove_error): every code has a
    text, texts are unique and read back to their code, and the texts
    clients match on are the ones docs/events.md and docs/queries.md give
    (written out here, not taken from the code under test). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_error.h"

#include <string.h>

static void
test_every_code_has_a_unique_text (void **state)
{
    (void) state;
    for (int a = TROVE_OK; a < TROVE_E_COUNT_; a++) {
        const char *text = trove_strerror ((trove_err_t) a);
        assert_non_null (text);
        assert_true (*text);
        //  "internal" is both the fallback and a code of its own
        if (a == TROVE_E_UNKNOWN)
            continue;
        for (int b = a + 1; b < TROVE_E_COUNT_; b++)
            if (b != TROVE_E_UNKNOWN)
                assert_string_not_equal (text, trove_strerror ((trove_err_t) b));
    }
}

static void
test_texts_read_back (void **state)
{
    (void) state;
    for (int code = TROVE_E_UNKNOWN + 1; code < TROVE_E_COUNT_; code++)
        assert_int_equal (trove_error_parse (trove_strerror ((trove_err_t) code)), code);
    assert_int_equal (trove_error_parse (NULL), TROVE_OK);
    assert_int_equal (trove_error_parse (""), TROVE_OK);
    assert_int_equal (trove_error_parse ("no such reason"), TROVE_E_UNKNOWN);
    //  a detail after ": " keeps the code; a longer word is another text
    assert_int_equal (trove_error_parse ("cost_limit: the query needs more than 10 units"),
                      TROVE_E_COST_LIMIT);
    assert_int_equal (trove_error_parse ("excluded: the user is on no leaderboard"), TROVE_E_EXCLUDED);
    assert_int_equal (trove_error_parse ("bad period: want all"), TROVE_E_PERIOD_TEXT);
    assert_int_equal (trove_error_parse ("not_foundx"), TROVE_E_UNKNOWN);
    assert_int_equal (trove_error_parse ("not_allowed: 'rules_apply' needs role operator"),
                      TROVE_E_NOT_ALLOWED);
}

static void
test_wire_texts (void **state)
{
    (void) state;
    //  docs/events.md, "Answers and reason codes"
    static const struct {
        trove_err_t code;
        const char *text;
    } wire [] = {
        {TROVE_E_BAD_JSON, "bad_json"},
        {TROVE_E_UNKNOWN_FIELD, "unknown_field"},
        {TROVE_E_MISSING_FIELD, "missing_field"},
        {TROVE_E_TOO_LONG, "too_long"},
        {TROVE_E_BAD_UTF8, "bad_utf8"},
        {TROVE_E_INVISIBLE_CHAR, "invisible_char"},
        {TROVE_E_UNKNOWN_SOURCE, "unknown_source"},
        {TROVE_E_BAD_TS, "bad_ts"},
        {TROVE_E_TOO_MANY_ATTRS, "too_many_attrs"},
        {TROVE_E_BAD_ATTR, "bad_attr"},
        {TROVE_E_BAD_UNDO, "bad_undo"},
        {TROVE_E_WRONG_SHARD, "wrong_shard"},
        {TROVE_E_ID_CONFLICT, "id_conflict"},
        {TROVE_E_HISTORY_LIMIT, "history_limit"},
        {TROVE_E_SHARD_UNAVAILABLE, "shard_unavailable"},
        {TROVE_E_OVERLOADED, "overloaded"},
        {TROVE_E_STORAGE_FULL, "storage_full"},
        {TROVE_E_STORAGE_ERROR, "storage_error"},
        {TROVE_E_MALFORMED, "malformed"},
        {TROVE_E_FRAME_TOO_LARGE, "frame_too_large"},
        {TROVE_E_BATCH_TOO_LARGE, "batch_too_large"},
        //  query texts (docs/queries.md)
        {TROVE_E_NOT_FOUND, "not_found"},
        {TROVE_E_MISSING_USER, "missing user"},
        {TROVE_E_MISSING_HUNT, "missing hunt"},
        {TROVE_E_UNKNOWN_KIND, "unknown query kind"},
        {TROVE_E_NOT_ALLOWED, "not_allowed"},
        {TROVE_E_COST_LIMIT, "cost_limit"},
        //  coin entry reasons
        {TROVE_REASON_SCORED, "scored"},
        {TROVE_REASON_RESCORED, "rescored"},
        {TROVE_REASON_UNDO, "undo"},
    };
    for (size_t i = 0; i < sizeof wire / sizeof wire [0]; i++)
        assert_string_equal (trove_strerror (wire [i].code), wire [i].text);
    assert_string_equal (trove_strerror ((trove_err_t) -1), "internal");
    assert_string_equal (trove_strerror (TROVE_E_COUNT_), "internal");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_every_code_has_a_unique_text),
        cmocka_unit_test (test_texts_read_back),
        cmocka_unit_test (test_wire_texts),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
