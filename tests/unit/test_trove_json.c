/*  test_trove_json - the JSON shapes of query answers (lib/events/trove_json), as
    trovectl --json and the HTTP API print them (json_dumps, JSON_COMPACT):
    field order and names, escaping, numbers at their limits, and what a
    string that is not UTF-8 does (jansson refuses it: the value is NULL). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_json.h"

#include <stdlib.h>
#include <string.h>

//  The compact text of value, which it takes.
static char *
s_text (json_t *value)
{
    assert_non_null (value);
    char *text = json_dumps (value, JSON_COMPACT);
    json_decref (value);
    assert_non_null (text);
    return text;
}

static void
s_expect (json_t *value, const char *expected)
{
    char *text = s_text (value);
    assert_string_equal (text, expected);
    free (text);
}

static void
test_coin_shape (void **state)
{
    (void) state;
    Trove__EventRef e1 = TROVE__EVENT_REF__INIT, e2 = TROVE__EVENT_REF__INIT;
    e1.source = "web";
    e1.id = "e-1";
    e2.source = "game";
    e2.id = "e-2";
    Trove__EventRef *refs [] = {&e1, &e2};
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = "0123456789abcdef0123456789abcdef";
    coin.user = "ann";
    coin.hunt = "demo";
    coin.rule = "visit";
    coin.rule_version = 3;
    coin.value = 2;
    coin.reason = "scored";
    coin.minted_ms = 1700000000123;
    coin.shard = 1;
    coin.aseq = 42;
    coin.events = refs;
    coin.n_events = 2;
    s_expect (
        trove_json_coin (&coin),
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"user\":\"ann\",\"hunt\":\"demo\",\"rule\":\"visit\","
        "\"rule_version\":3,\"value\":2,\"reason\":\"scored\",\"minted\":\"2023-11-14T22:13:20.123Z\","
        "\"minted_ms\":1700000000123,\"shard\":1,\"aseq\":42,"
        "\"events\":[{\"source\":\"web\",\"id\":\"e-1\"},{\"source\":\"game\",\"id\":\"e-2\"}],"
        "\"revoked\":false}");
    //  a reconciler's entry names its run; a revoked coin says so
    coin.run = "r-7";
    coin.revoked = true;
    coin.n_events = 0;
    coin.reason = NULL;  //  an absent string prints as ""
    char *text = s_text (trove_json_coin (&coin));
    assert_non_null (strstr (text, "\"reason\":\"\","));
    assert_non_null (strstr (text, "\"events\":[],\"revoked\":true,\"run\":\"r-7\"}"));
    free (text);
}

static void
test_escaping (void **state)
{
    (void) state;
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.balance = 5;
    //  quote, backslash, control characters, slash, and UTF-8 kept as is
    s_expect (
        trove_json_balance ("a\"b\\c\n\t\x01/\xc3\xa9\xe2\x82\xac", &reply),
        "{\"user\":\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\xe2\x82\xac\",\"balance\":5,\"hunts\":{},\"cost\":0}");
}

static void
test_bad_utf8_gives_null (void **state)
{
    (void) state;
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    const char *bad [] = {
        "\xff",              //  never in UTF-8
        "ab\xc3",            //  truncated sequence
        "\xc0\xaf",          //  overlong '/'
        "\xed\xa0\x80",      //  a surrogate
        "\xf4\x90\x80\x80",  //  above U+10FFFF
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        json_t *value = trove_json_balance (bad [i], &reply);
        if (value) {
            json_decref (value);
            fail_msg ("bad UTF-8 #%zu accepted", i);
        }
        assert_null (trove_json_progress (bad [i], &reply));
        assert_null (trove_json_coins (bad [i], &reply));
    }
    //  In a coin the whole coin is refused: never a document that is not JSON.
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = "x";
    coin.user = "\xff";
    assert_null (trove_json_coin (&coin));
}

static void
test_numbers_at_their_limits (void **state)
{
    (void) state;
    Trove__BoardEntry hunt = TROVE__BOARD_ENTRY__INIT;
    hunt.hunt = "demo";
    hunt.score = INT64_MIN;
    Trove__BoardEntry *entries [] = {&hunt};
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.balance = INT64_MAX;
    reply.cost = 18446744073709551615ULL;  //  above json_int_t: wraps to -1
    reply.entries = entries;
    reply.n_entries = 1;
    s_expect (trove_json_balance ("u", &reply),
              "{\"user\":\"u\",\"balance\":9223372036854775807,\"hunts\":{\"demo\":-9223372036854775808},"
              "\"cost\":-1}");
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = "c";
    coin.value = -3;
    coin.minted_ms = -1;  //  before 1970: still a date
    coin.rule_version = UINT32_MAX;
    char *text = s_text (trove_json_coin (&coin));
    assert_non_null (strstr (text, "\"rule_version\":4294967295,\"value\":-3,"));
    assert_non_null (strstr (text, "\"minted\":\"1969-12-31T23:59:59.999Z\",\"minted_ms\":-1,"));
    free (text);
}

static void
test_coins_page (void **state)
{
    (void) state;
    Trove__Coin c1 = TROVE__COIN__INIT, c2 = TROVE__COIN__INIT;
    c1.id = "c1";
    c2.id = "c2";
    Trove__Coin *coins [] = {&c1, &c2};
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.coins = coins;
    reply.n_coins = 2;
    reply.next_cursor = "cur";
    reply.cost = 8;
    char *text = s_text (trove_json_coins ("fay", &reply));
    assert_true (strncmp (text, "{\"user\":\"fay\",\"coins\":[{\"id\":\"c1\",", 33) == 0);
    assert_non_null (strstr (text, "},{\"id\":\"c2\","));
    assert_non_null (strstr (text, "}],\"next_cursor\":\"cur\",\"cost\":8}"));
    free (text);
    //  the last page: next_cursor is "" (never absent)
    reply.next_cursor = NULL;
    reply.n_coins = 0;
    s_expect (trove_json_coins ("fay", &reply),
              "{\"user\":\"fay\",\"coins\":[],\"next_cursor\":\"\",\"cost\":8}");
}

static void
test_board_list_and_around (void **state)
{
    (void) state;
    Trove__BoardEntry a = TROVE__BOARD_ENTRY__INIT, b = TROVE__BOARD_ENTRY__INIT;
    a.rank = 1;
    a.user = "ann";
    a.score = 30;
    a.period = "all";
    a.users = 12;
    b.rank = 1;
    b.user = "bob";
    b.score = 30;
    b.period = "d2024-01-02";
    b.users = 3;
    Trove__BoardEntry *entries [] = {&a, &b};
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.entries = entries;
    reply.n_entries = 2;
    reply.cost = 4;
    reply.more = true;
    reply.balance = 30;
    s_expect (trove_json_board (&reply, false), "{\"entries\":[{\"rank\":1,\"user\":\"ann\",\"score\":30},{"
                                                "\"rank\":1,\"user\":\"bob\",\"score\":30}],"
                                                "\"cost\":4,\"more\":true}");
    s_expect (trove_json_board (&reply, true),
              "{\"entries\":[{\"period\":\"all\",\"users\":12},{\"period\":\"d2024-01-02\",\"users\":3}],"
              "\"cost\":4,\"more\":true}");
    reply.n_entries = 1;
    reply.more = false;
    s_expect (trove_json_around ("ann", &reply),
              "{\"entries\":[{\"rank\":1,\"user\":\"ann\",\"score\":30}],\"cost\":4,\"more\":false,"
              "\"user\":\"ann\",\"score\":30}");
}

static void
test_progress (void **state)
{
    (void) state;
    Trove__Progress p1 = TROVE__PROGRESS__INIT, p2 = TROVE__PROGRESS__INIT;
    p1.hunt = "demo";
    p1.rule = "clues";
    p1.kind = "count";
    p1.have = 2;
    p1.need = 5;
    p1.period = "";
    p2.hunt = "demo";
    p2.rule = "daily";
    p2.kind = "each";
    p2.have = 1;
    p2.need = 1;
    p2.done = 3;
    p2.period = "d2024-01-02";
    p2.left = 7;
    Trove__Progress *progress [] = {&p1, &p2};
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.progress = progress;
    reply.n_progress = 2;
    reply.cost = 2;
    //  period and left only for a rule with a period (a cap)
    s_expect (
        trove_json_progress ("ann", &reply),
        "{\"user\":\"ann\",\"rules\":[{\"hunt\":\"demo\",\"rule\":\"clues\",\"kind\":\"count\",\"have\":2,"
        "\"need\":5,\"done\":0},{\"hunt\":\"demo\",\"rule\":\"daily\",\"kind\":\"each\",\"have\":1,"
        "\"need\":1,\"done\":3,\"period\":\"d2024-01-02\",\"left\":7}],\"cost\":2}");
}

//  Shard reports merged: counts summed, rules summed by hunt and rule in
//  order of first appearance, changes concatenated, truncated if any is,
//  a shard not asked (NULL) skipped.
static void
test_preview_merge (void **state)
{
    (void) state;
    json_t *reports [3];
    reports [0] =
        json_loads ("{\"users\":2,\"events\":10,\"mint\":3,\"revoke\":1,\"coins_delta\":4,"
                    "\"rules\":[{\"hunt\":\"h\",\"rule\":\"a\",\"mint\":3,\"revoke\":1,\"coins_delta\":4}],"
                    "\"changes\":[{\"user\":\"u1\",\"action\":\"mint\"}],\"truncated\":false}",
                    0, NULL);
    reports [1] = NULL;
    reports [2] =
        json_loads ("{\"users\":1,\"events\":5,\"mint\":1,\"revoke\":2,\"coins_delta\":-7,"
                    "\"rules\":[{\"hunt\":\"h\",\"rule\":\"b\",\"mint\":0,\"revoke\":1,\"coins_delta\":-5},"
                    "{\"hunt\":\"h\",\"rule\":\"a\",\"mint\":1,\"revoke\":1,\"coins_delta\":-2}],"
                    "\"changes\":[{\"user\":\"u7\",\"action\":\"revoke\"}],\"truncated\":true}",
                    0, NULL);
    assert_non_null (reports [0]);
    assert_non_null (reports [2]);
    s_expect (trove_json_preview_merge (reports, 3),
              "{\"users\":3,\"events\":15,\"mint\":4,\"revoke\":3,\"coins_delta\":-3,\"rules\":["
              "{\"hunt\":\"h\",\"rule\":\"a\",\"mint\":4,\"revoke\":2,\"coins_delta\":2},"
              "{\"hunt\":\"h\",\"rule\":\"b\",\"mint\":0,\"revoke\":1,\"coins_delta\":-5}],"
              "\"changes\":[{\"user\":\"u1\",\"action\":\"mint\"},{\"user\":\"u7\",\"action\":\"revoke\"}],"
              "\"truncated\":true}");
    //  The inputs are not changed.
    assert_int_equal (json_integer_value (json_object_get (
                          json_array_get (json_object_get (reports [0], "rules"), 0), "mint")),
                      3);
    s_expect (trove_json_preview_merge (reports, 0),
              "{\"users\":0,\"events\":0,\"mint\":0,\"revoke\":0,\"coins_delta\":0,\"rules\":[],"
              "\"changes\":[],\"truncated\":false}");
    json_decref (reports [0]);
    json_decref (reports [2]);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_coin_shape),
        cmocka_unit_test (test_escaping),
        cmocka_unit_test (test_bad_utf8_gives_null),
        cmocka_unit_test (test_numbers_at_their_limits),
        cmocka_unit_test (test_coins_page),
        cmocka_unit_test (test_board_list_and_around),
        cmocka_unit_test (test_progress),
        cmocka_unit_test (test_preview_merge),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
