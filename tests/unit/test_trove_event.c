/*  test_trove_event - event validation, the JSON form, deep copies
    (lib/events/trove_event). Limits come from the sample etc/trove.cfg. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_event.h"
#include "trove_cfg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TROVE_SOURCE_DIR
#    error "TROVE_SOURCE_DIR must name the source tree (tests/CMakeLists.txt)"
#endif
#define SAMPLE_CFG TROVE_SOURCE_DIR "/etc/trove.cfg"

//  2026-03-10T08:00:00Z, the "receiving ingestor's clock" of these tests.
#define NOW_MS 1773129600000LL

static trove_cfg_t *s_cfg;

static int
s_group_setup (void **state)
{
    (void) state;
    char *err = NULL;
    s_cfg = trove_cfg_load (SAMPLE_CFG, &err);
    if (!s_cfg) {
        fprintf (stderr, "%s: %s\n", SAMPLE_CFG, err);
        free (err);
        return -1;
    }
    //  The limits these tests are written against.
    const trove_limits_t *lim = trove_cfg_limits (s_cfg);
    if (lim->max_attrs != 32 || lim->max_user != 128 || lim->max_source != 64
        || lim->max_past_ms != 31622400000LL || lim->max_future_ms != 300000)
        return -1;
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    trove_cfg_destroy (&s_cfg);
    return 0;
}

//  A valid event on the stack, strings borrowed.
typedef struct {
    Trove__Event ev;
    Trove__Attr attr_storage [40];
    Trove__Attr *attrs [40];
} s_event_t;

static void
s_event_init (s_event_t *e)
{
    trove__event__init (&e->ev);
    e->ev.source = "web";
    e->ev.id = "e-1";
    e->ev.user = "u42";
    e->ev.type = "checkin";
    e->ev.ts_ms = NOW_MS - 1000;
    for (size_t i = 0; i < 40; i++) {
        trove__attr__init (&e->attr_storage [i]);
        e->attrs [i] = &e->attr_storage [i];
    }
    e->ev.attrs = e->attrs;
    e->ev.n_attrs = 0;
}

static Trove__Attr *
s_add_attr (s_event_t *e, const char *key)
{
    Trove__Attr *a = e->attrs [e->ev.n_attrs++];
    a->key = (char *) key;
    return a;
}

static Trove__Attr *
s_add_str (s_event_t *e, const char *key, const char *value)
{
    Trove__Attr *a = s_add_attr (e, key);
    a->value_case = TROVE__ATTR__VALUE_S;
    a->s = (char *) value;
    return a;
}

static Trove__Attr *
s_add_num (s_event_t *e, const char *key, double value)
{
    Trove__Attr *a = s_add_attr (e, key);
    a->value_case = TROVE__ATTR__VALUE_N;
    a->n = value;
    return a;
}

//  Runs the check; returns the reason (NULL = valid) and checks the detail.
static const char *
s_check (const Trove__Event *ev, const char *detail_has)
{
    char detail [256] = "";
    const char *reason = trove_event_check (ev, s_cfg, NOW_MS, detail, sizeof detail);
    if (reason) {
        assert_true (strlen (detail) > 0);
        if (detail_has && !strstr (detail, detail_has))
            fail_msg ("detail '%s' does not mention '%s'", detail, detail_has);
    }
    return reason;
}

static char *
s_repeat (char c, size_t n)
{
    char *s = malloc (n + 1);
    assert_non_null (s);
    memset (s, c, n);
    s [n] = 0;
    return s;
}

//  ---------------------------------------------------------------------------
//  trove_event_check

static void
test_check_valid (void **state)
{
    (void) state;
    s_event_t e;
    s_event_init (&e);
    assert_null (s_check (&e.ev, NULL));
    s_add_str (&e, "zone", "B");
    s_add_num (&e, "amount", 12.5);
    Trove__Attr *b = s_add_attr (&e, "vip");
    b->value_case = TROVE__ATTR__VALUE_B;
    b->b = 1;
    s_add_str (&e, "note", "");  //  an empty string value is allowed
    s_add_str (&e, "name", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_null (s_check (&e.ev, NULL));
    //  Every declared source.
    const char *sources [] = {"web", "mobile", "game", "partner", "load"};
    for (size_t i = 0; i < 5; i++) {
        e.ev.source = (char *) sources [i];
        assert_null (s_check (&e.ev, NULL));
    }
}

static void
test_check_undo_needs_its_target (void **state)
{
    (void) state;
    s_event_t e;
    s_event_init (&e);
    e.ev.type = "undo";
    assert_string_equal (s_check (&e.ev, "'target_source'"), "bad_undo");
    s_add_str (&e, "target_source", "web");
    assert_string_equal (s_check (&e.ev, "'target_id'"), "bad_undo");
    s_add_num (&e, "target_id", 7);  //  a number is not an id
    assert_string_equal (s_check (&e.ev, "'target_id'"), "bad_undo");
    s_event_init (&e);
    e.ev.type = "undo";
    s_add_str (&e, "target_source", "web");
    s_add_str (&e, "target_id", "e7");
    assert_null (s_check (&e.ev, NULL));
}

static void
test_check_missing_field (void **state)
{
    (void) state;
    s_event_t e;
    const char *fields [] = {"source", "id", "user", "type"};
    for (int i = 0; i < 4; i++) {
        for (int empty = 0; empty < 2; empty++) {
            s_event_init (&e);
            char **slot = i == 0 ? &e.ev.source : i == 1 ? &e.ev.id : i == 2 ? &e.ev.user : &e.ev.type;
            *slot = empty ? "" : NULL;
            assert_string_equal (s_check (&e.ev, fields [i]), "missing_field");
        }
    }
    s_event_init (&e);
    e.ev.ts_ms = 0;
    assert_string_equal (s_check (&e.ev, "'ts' is missing"), "missing_field");
    //  An attribute without a key.
    s_event_init (&e);
    s_add_str (&e, "", "v");
    assert_string_equal (s_check (&e.ev, "attrs key"), "missing_field");
}

static void
test_check_too_long (void **state)
{
    (void) state;
    s_event_t e;
    const trove_limits_t *lim = trove_cfg_limits (s_cfg);
    struct {
        int field;
        size_t max;
        const char *name;
    } cases [] = {
        {0, lim->max_source, "source"},
        {1, lim->max_id, "id"},
        {2, lim->max_user, "user"},
        {3, lim->max_type, "type"},
    };
    for (size_t i = 0; i < 4; i++) {
        for (int over = 0; over < 2; over++) {
            s_event_init (&e);
            char *text = s_repeat ('x', cases [i].max + over);
            char **slot = cases [i].field == 0 ? &e.ev.source
                        : cases [i].field == 1 ? &e.ev.id
                        : cases [i].field == 2 ? &e.ev.user
                                               : &e.ev.type;
            *slot = text;
            const char *reason = s_check (&e.ev, cases [i].name);
            if (over)
                assert_string_equal (reason, "too_long");
            else if (cases [i].field == 0)
                assert_string_equal (reason, "unknown_source");  //  long enough, but unknown
            else
                assert_null (reason);
            free (text);
        }
    }
    //  Attribute key and string value.
    char *key = s_repeat ('k', lim->max_attr_key + 1);
    s_event_init (&e);
    s_add_str (&e, key, "v");
    assert_string_equal (s_check (&e.ev, "attrs key"), "too_long");
    key [lim->max_attr_key] = 0;
    assert_null (s_check (&e.ev, NULL));
    free (key);
    char *value = s_repeat ('v', lim->max_attr_value + 1);
    s_event_init (&e);
    s_add_str (&e, "k", value);
    assert_string_equal (s_check (&e.ev, "attrs value"), "too_long");
    value [lim->max_attr_value] = 0;
    assert_null (s_check (&e.ev, NULL));
    free (value);
    //  Length is in bytes, not characters: 43 x "é" = 86 bytes > 64.
    char source [200] = "";
    for (int i = 0; i < 43; i++)
        strcat (source, "\xc3\xa9");
    s_event_init (&e);
    e.ev.source = source;
    assert_string_equal (s_check (&e.ev, "86 bytes"), "too_long");
}

static void
test_check_bad_utf8 (void **state)
{
    (void) state;
    s_event_t e;
    const char *bad [] = {"\xc3\x28", "\xed\xa0\x80", "\xc0\xaf", "tab\there", "nl\n", "\x7f", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_event_init (&e);
        e.ev.user = (char *) bad [i];
        assert_string_equal (s_check (&e.ev, "'user'"), "bad_utf8");
        s_event_init (&e);
        e.ev.type = (char *) bad [i];
        assert_string_equal (s_check (&e.ev, "'type'"), "bad_utf8");
        s_event_init (&e);
        e.ev.id = (char *) bad [i];
        assert_string_equal (s_check (&e.ev, "'id'"), "bad_utf8");
        s_event_init (&e);
        s_add_str (&e, bad [i], "v");
        assert_string_equal (s_check (&e.ev, "attrs key"), "bad_utf8");
        s_event_init (&e);
        s_add_str (&e, "k", bad [i]);
        assert_string_equal (s_check (&e.ev, "attrs value"), "bad_utf8");
    }
    //  A bad source is reported as bad_utf8 before unknown_source.
    s_event_init (&e);
    e.ev.source = "w\xffz";
    assert_string_equal (s_check (&e.ev, "'source'"), "bad_utf8");
}

static void
test_check_unknown_source (void **state)
{
    (void) state;
    s_event_t e;
    const char *bad [] = {"nope", "Web", "web ", "webx", "we"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_event_init (&e);
        e.ev.source = (char *) bad [i];
        assert_string_equal (s_check (&e.ev, bad [i]), "unknown_source");
    }
}

static void
test_check_bad_ts (void **state)
{
    (void) state;
    s_event_t e;
    const trove_limits_t *lim = trove_cfg_limits (s_cfg);
    s_event_init (&e);
    //  Edges of the window are inside it.
    e.ev.ts_ms = NOW_MS - lim->max_past_ms;
    assert_null (s_check (&e.ev, NULL));
    e.ev.ts_ms = NOW_MS + lim->max_future_ms;
    assert_null (s_check (&e.ev, NULL));
    e.ev.ts_ms = NOW_MS;
    assert_null (s_check (&e.ev, NULL));
    //  One millisecond beyond is not.
    e.ev.ts_ms = NOW_MS - lim->max_past_ms - 1;
    assert_string_equal (s_check (&e.ev, "2025-03-09T07:59:59.999Z"), "bad_ts");
    e.ev.ts_ms = NOW_MS + lim->max_future_ms + 1;
    assert_string_equal (s_check (&e.ev, "2026-03-10T08:05:00.001Z"), "bad_ts");
    e.ev.ts_ms = -1;
    assert_string_equal (s_check (&e.ev, "in the past"), "bad_ts");
    e.ev.ts_ms = INT64_MAX;
    assert_string_equal (s_check (&e.ev, NULL), "bad_ts");
    e.ev.ts_ms = INT64_MIN;
    assert_string_equal (s_check (&e.ev, NULL), "bad_ts");
    //  Seconds (not milliseconds) are a common producer mistake: far in the past.
    e.ev.ts_ms = NOW_MS / 1000;
    assert_string_equal (s_check (&e.ev, NULL), "bad_ts");
}

static void
test_check_too_many_attrs (void **state)
{
    (void) state;
    s_event_t e;
    static char keys [40][8];
    s_event_init (&e);
    for (int i = 0; i < 32; i++) {
        snprintf (keys [i], sizeof keys [i], "k%d", i);
        s_add_num (&e, keys [i], i);
    }
    assert_null (s_check (&e.ev, NULL));
    snprintf (keys [32], sizeof keys [32], "k32");
    s_add_num (&e, keys [32], 32);
    assert_string_equal (s_check (&e.ev, "33 attributes, limit 32"), "too_many_attrs");
}

static void
test_check_bad_attr (void **state)
{
    (void) state;
    s_event_t e;
    //  Duplicate key, whatever the value types.
    s_event_init (&e);
    s_add_str (&e, "zone", "A");
    s_add_num (&e, "n", 1);
    s_add_num (&e, "zone", 2);
    assert_string_equal (s_check (&e.ev, "'zone' appears twice"), "bad_attr");
    //  Not finite numbers.
    const double bad [] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        s_event_init (&e);
        s_add_num (&e, "amount", bad [i]);
        assert_string_equal (s_check (&e.ev, "'amount' is not a finite number"), "bad_attr");
    }
    //  Large but finite numbers are fine.
    s_event_init (&e);
    s_add_num (&e, "big", 1.7e308);
    s_add_num (&e, "neg", -0.0);
    assert_null (s_check (&e.ev, NULL));
    //  No value at all.
    s_event_init (&e);
    s_add_attr (&e, "empty");
    assert_string_equal (s_check (&e.ev, "'empty' has no value"), "bad_attr");
}

static void
test_check_detail_truncates_safely (void **state)
{
    (void) state;
    s_event_t e;
    s_event_init (&e);
    e.ev.source = "a-rather-long-unknown-source-name";
    char detail [8];
    memset (detail, '?', sizeof detail);
    assert_string_equal (trove_event_check (&e.ev, s_cfg, NOW_MS, detail, sizeof detail), "unknown_source");
    assert_int_equal (strlen (detail), 7);
}

//  ---------------------------------------------------------------------------
//  JSON

static const Trove__Attr *
s_find_attr (const Trove__Event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp (ev->attrs [i]->key, key) == 0)
            return ev->attrs [i];
    fail_msg ("no attribute '%s'", key);
    return NULL;
}

static Trove__Event *
s_parse_ok (const char *json)
{
    const char *reason = "unset";
    char *err = NULL;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, &err);
    if (!ev)
        fail_msg ("'%s' refused: %s %s", json, reason, err ? err : "");
    return ev;
}

//  Expects a refusal with reason; returns nothing, checks err mentions err_has.
static void
s_parse_bad (const char *json, size_t len, const char *want_reason, const char *err_has)
{
    const char *reason = NULL;
    char *err = NULL;
    Trove__Event *ev = trove_event_from_json (json, len, &reason, &err);
    if (ev) {
        trove_event_destroy (&ev);
        fail_msg ("'%s' should be refused with %s", json, want_reason);
    }
    assert_non_null (reason);
    if (strcmp (reason, want_reason))
        fail_msg ("'%s': reason %s, want %s (%s)", json, reason, want_reason, err ? err : "");
    assert_non_null (err);
    if (err_has && !strstr (err, err_has))
        fail_msg ("'%s': error '%s' does not mention '%s'", json, err, err_has);
    free (err);
    //  The out parameters are optional.
    assert_null (trove_event_from_json (json, len, NULL, NULL));
}

#define PARSE_BAD(json, reason, has) s_parse_bad ((json), strlen (json), (reason), (has))

static void
test_json_parse_valid_rfc3339 (void **state)
{
    (void) state;
    Trove__Event *ev =
        s_parse_ok ("{\"source\":\"web\",\"id\":\"e-1\",\"user\":\"u42\",\"type\":\"checkin\","
                    "\"ts\":\"2026-03-10T08:00:00Z\",\"attrs\":{\"zone\":\"B\",\"amount\":12.5,\"vip\":true,"
                    "\"count\":3,\"off\":false,\"name\":\"caf\\u00e9\"}}");
    assert_string_equal (ev->source, "web");
    assert_string_equal (ev->id, "e-1");
    assert_string_equal (ev->user, "u42");
    assert_string_equal (ev->type, "checkin");
    assert_int_equal (ev->ts_ms, 1773129600000LL);
    assert_int_equal (ev->n_attrs, 6);
    const Trove__Attr *a = s_find_attr (ev, "zone");
    assert_int_equal (a->value_case, TROVE__ATTR__VALUE_S);
    assert_string_equal (a->s, "B");
    a = s_find_attr (ev, "amount");
    assert_int_equal (a->value_case, TROVE__ATTR__VALUE_N);
    assert_true (a->n == 12.5);
    a = s_find_attr (ev, "count");
    assert_int_equal (a->value_case, TROVE__ATTR__VALUE_N);
    assert_true (a->n == 3.0);
    a = s_find_attr (ev, "vip");
    assert_int_equal (a->value_case, TROVE__ATTR__VALUE_B);
    assert_true (a->b);
    a = s_find_attr (ev, "off");
    assert_int_equal (a->value_case, TROVE__ATTR__VALUE_B);
    assert_false (a->b);
    a = s_find_attr (ev, "name");
    assert_string_equal (a->s, "caf\xc3\xa9");
    //  What was parsed is a valid event.
    assert_null (s_check (ev, NULL));
    trove_event_destroy (&ev);
    assert_null (ev);
    trove_event_destroy (&ev);  //  safe twice
}

static void
test_json_parse_ts_forms (void **state)
{
    (void) state;
    Trove__Event *ev = s_parse_ok ("{\"source\":\"web\",\"id\":\"1\",\"user\":\"u\",\"type\":\"t\","
                                   "\"ts\":1773129600123}");
    assert_int_equal (ev->ts_ms, 1773129600123LL);
    assert_int_equal (ev->n_attrs, 0);
    trove_event_destroy (&ev);
    ev = s_parse_ok ("{\"ts\":\"2026-03-10T01:00:00.5+02:00\"}");
    assert_int_equal (ev->ts_ms, 1773097200500LL);
    trove_event_destroy (&ev);
    //  Bad ts forms.
    PARSE_BAD ("{\"ts\":\"yesterday\"}", "bad_ts", "'ts'");
    PARSE_BAD ("{\"ts\":\"2025-02-29T00:00:00Z\"}", "bad_ts", NULL);
    PARSE_BAD ("{\"ts\":\"2026-03-10T08:00:00\"}", "bad_ts", NULL);
    PARSE_BAD ("{\"ts\":1773129600000.5}", "bad_ts", NULL);
    PARSE_BAD ("{\"ts\":true}", "bad_ts", NULL);
    PARSE_BAD ("{\"ts\":null}", "bad_ts", NULL);
    PARSE_BAD ("{\"ts\":[1]}", "bad_ts", NULL);
}

static void
test_json_parse_missing_fields_are_empty (void **state)
{
    (void) state;
    //  Parsing does not judge completeness; the check does.
    Trove__Event *ev = s_parse_ok ("{}");
    assert_string_equal (ev->source, "");
    assert_string_equal (ev->id, "");
    assert_string_equal (ev->user, "");
    assert_string_equal (ev->type, "");
    assert_int_equal (ev->ts_ms, 0);
    assert_int_equal (ev->n_attrs, 0);
    assert_string_equal (s_check (ev, "source"), "missing_field");
    trove_event_destroy (&ev);
    //  Whitespace around the object is fine; an empty attrs object too.
    ev = s_parse_ok (" \n{\"source\":\"web\", \"attrs\":{}}\n ");
    assert_string_equal (ev->source, "web");
    assert_int_equal (ev->n_attrs, 0);
    trove_event_destroy (&ev);
    //  Control characters parse (JSON escapes) but fail the check.
    ev = s_parse_ok ("{\"source\":\"web\",\"id\":\"1\",\"user\":\"a\\u0001b\",\"type\":\"t\","
                     "\"ts\":1773129600000}");
    assert_string_equal (s_check (ev, "'user'"), "bad_utf8");
    trove_event_destroy (&ev);
}

static void
test_json_unknown_field (void **state)
{
    (void) state;
    PARSE_BAD ("{\"source\":\"web\",\"colour\":\"red\"}", "unknown_field", "'colour'");
    PARSE_BAD ("{\"Source\":\"web\"}", "unknown_field", "'Source'");
    PARSE_BAD ("{\"ts_ms\":1773129600000}", "unknown_field", "'ts_ms'");
}

static void
test_json_bad_json (void **state)
{
    (void) state;
    PARSE_BAD ("", "bad_json", "invalid JSON");
    PARSE_BAD ("{", "bad_json", "invalid JSON");
    PARSE_BAD ("{\"source\":\"web\",}", "bad_json", NULL);
    PARSE_BAD ("{'source':'web'}", "bad_json", NULL);
    PARSE_BAD ("{\"source\":\"web\"} {}", "bad_json", NULL);                  //  two values
    PARSE_BAD ("{\"source\":\"web\",\"source\":\"app\"}", "bad_json", NULL);  //  duplicate key
    PARSE_BAD ("{\"user\":\"a\\u0000b\"}", "bad_json", NULL);                 //  NUL inside a string
    PARSE_BAD ("{\"attrs\":{\"n\":1e999}}", "bad_json", NULL);                //  overflow
    //  Not an object.
    PARSE_BAD ("[]", "bad_json", "must be a JSON object");
    PARSE_BAD ("[{\"source\":\"web\"}]", "bad_json", "must be a JSON object");
    PARSE_BAD ("\"web\"", "bad_json", NULL);
    PARSE_BAD ("42", "bad_json", NULL);
    PARSE_BAD ("null", "bad_json", NULL);
}

static void
test_json_invalid_utf8_in_string (void **state)
{
    (void) state;
    PARSE_BAD ("{\"user\":\"\xff\"}", "bad_json", NULL);
    PARSE_BAD ("{\"user\":\"caf\xc3\"}", "bad_json", NULL);                    //  truncated
    PARSE_BAD ("{\"user\":\"\xc0\xaf\"}", "bad_json", NULL);                   //  overlong
    PARSE_BAD ("{\"user\":\"\xed\xa0\x80\"}", "bad_json", NULL);               //  surrogate
    PARSE_BAD ("{\"attrs\":{\"k\":\"\xf4\x90\x80\x80\"}}", "bad_json", NULL);  //  > U+10FFFF
    PARSE_BAD ("{\"attrs\":{\"\xfe\":1}}", "bad_json", NULL);                  //  in a key
    //  A lone surrogate escape is invalid too.
    PARSE_BAD ("{\"user\":\"\\ud800\"}", "bad_json", NULL);
}

static void
test_json_bad_field_types (void **state)
{
    (void) state;
    PARSE_BAD ("{\"source\":1}", "missing_field", "'source' must be a string");
    PARSE_BAD ("{\"id\":42}", "missing_field", "'id' must be a string");
    PARSE_BAD ("{\"user\":null}", "missing_field", "'user'");
    PARSE_BAD ("{\"type\":{}}", "missing_field", "'type'");
    //  Attributes: only string, number, boolean.
    PARSE_BAD ("{\"attrs\":{\"list\":[1,2]}}", "bad_attr", "'list'");
    PARSE_BAD ("{\"attrs\":{\"obj\":{\"a\":1}}}", "bad_attr", "'obj'");
    PARSE_BAD ("{\"attrs\":{\"ok\":1,\"nothing\":null}}", "bad_attr", "'nothing'");
    PARSE_BAD ("{\"attrs\":[]}", "bad_attr", "'attrs' must be an object");
    PARSE_BAD ("{\"attrs\":\"zone=B\"}", "bad_attr", NULL);
    PARSE_BAD ("{\"attrs\":{\"k\":1,\"k\":2}}", "bad_json", NULL);
}

static void
test_json_respects_len (void **state)
{
    (void) state;
    const char *text = "{\"source\":\"web\"}garbage after the object";
    const char *reason = NULL;
    Trove__Event *ev = trove_event_from_json (text, 16, &reason, NULL);
    assert_non_null (ev);
    assert_string_equal (ev->source, "web");
    trove_event_destroy (&ev);
    //  Cut short, the same text is not JSON.
    s_parse_bad (text, 15, "bad_json", NULL);
}

static void
test_json_to_json_exact (void **state)
{
    (void) state;
    s_event_t e;
    s_event_init (&e);
    e.ev.ts_ms = 1773129600000LL;
    s_add_str (&e, "zone", "B");
    s_add_num (&e, "amount", 12.5);
    Trove__Attr *b = s_add_attr (&e, "vip");
    b->value_case = TROVE__ATTR__VALUE_B;
    b->b = 1;
    char *json = trove_event_to_json (&e.ev);
    assert_non_null (json);
    assert_string_equal (json, "{\"source\":\"web\",\"id\":\"e-1\",\"user\":\"u42\",\"type\":\"checkin\","
                               "\"ts\":\"2026-03-10T08:00:00.000Z\","
                               "\"attrs\":{\"zone\":\"B\",\"amount\":12.5,\"vip\":true}}");
    free (json);
    //  No attributes, escapes, non-ASCII text.
    s_event_init (&e);
    e.ev.ts_ms = 1709210096789LL;
    e.ev.user = "quote\"back\\slash caf\xc3\xa9";
    json = trove_event_to_json (&e.ev);
    assert_string_equal (json,
                         "{\"source\":\"web\",\"id\":\"e-1\",\"user\":\"quote\\\"back\\\\slash caf\xc3\xa9\","
                         "\"type\":\"checkin\",\"ts\":\"2024-02-29T12:34:56.789Z\",\"attrs\":{}}");
    free (json);
}

static void
s_assert_events_equal (const Trove__Event *a, const Trove__Event *b)
{
    assert_string_equal (a->source, b->source);
    assert_string_equal (a->id, b->id);
    assert_string_equal (a->user, b->user);
    assert_string_equal (a->type, b->type);
    assert_int_equal (a->ts_ms, b->ts_ms);
    assert_int_equal (a->n_attrs, b->n_attrs);
    for (size_t i = 0; i < a->n_attrs; i++) {
        const Trove__Attr *x = a->attrs [i];
        const Trove__Attr *y = s_find_attr (b, x->key);
        assert_int_equal (x->value_case, y->value_case);
        if (x->value_case == TROVE__ATTR__VALUE_S)
            assert_string_equal (x->s, y->s);
        else if (x->value_case == TROVE__ATTR__VALUE_N)
            assert_true (x->n == y->n);
        else
            assert_int_equal (!!x->b, !!y->b);
    }
}

static void
test_json_round_trip (void **state)
{
    (void) state;
    s_event_t e;
    s_event_init (&e);
    e.ev.user = "\xe6\x97\xa5\xe6\x9c\xac-user \"quoted\"";
    e.ev.ts_ms = 1773129600123LL;
    s_add_str (&e, "zone", "B/\\1");
    s_add_num (&e, "amount", 12.5);
    s_add_num (&e, "whole", 3);
    s_add_num (&e, "tiny", 1e-300);
    s_add_num (&e, "neg", -42.125);
    s_add_num (&e, "third", 1.0 / 3.0);
    Trove__Attr *b = s_add_attr (&e, "no");
    b->value_case = TROVE__ATTR__VALUE_B;
    b->b = 0;
    s_add_str (&e, "empty", "");
    char *json = trove_event_to_json (&e.ev);
    assert_non_null (json);
    Trove__Event *back = s_parse_ok (json);
    s_assert_events_equal (&e.ev, back);
    //  And the text is stable: to_json (from_json (to_json (ev))) == to_json (ev).
    char *again = trove_event_to_json (back);
    assert_string_equal (json, again);
    free (again);
    free (json);
    trove_event_destroy (&back);

    //  From JSON text with an offset ts, the round trip normalises it to UTC.
    Trove__Event *ev = s_parse_ok ("{\"source\":\"game\",\"id\":\"x\",\"user\":\"u\",\"type\":\"t\","
                                   "\"ts\":\"2026-03-10T10:00:00.250+02:00\",\"attrs\":{\"n\":7}}");
    json = trove_event_to_json (ev);
    assert_non_null (strstr (json, "\"ts\":\"2026-03-10T08:00:00.250Z\""));
    back = s_parse_ok (json);
    s_assert_events_equal (ev, back);
    free (json);
    trove_event_destroy (&back);
    trove_event_destroy (&ev);
}

//  ---------------------------------------------------------------------------
//  dup

static void
test_dup_is_deep (void **state)
{
    (void) state;
    Trove__Event *orig = s_parse_ok ("{\"source\":\"web\",\"id\":\"e-9\",\"user\":\"u1\",\"type\":\"buy\","
                                     "\"ts\":1773129600000,\"attrs\":{\"s\":\"str\",\"n\":2.5,\"b\":true}}");
    Trove__Event *copy = trove_event_dup (orig);
    assert_non_null (copy);
    assert_ptr_not_equal (copy, orig);
    assert_ptr_not_equal (copy->source, orig->source);
    assert_ptr_not_equal (copy->user, orig->user);
    assert_ptr_not_equal (copy->attrs, orig->attrs);
    s_assert_events_equal (orig, copy);
    for (size_t i = 0; i < copy->n_attrs; i++) {
        assert_ptr_not_equal (copy->attrs [i], orig->attrs [i]);
        assert_ptr_not_equal (copy->attrs [i]->key, orig->attrs [i]->key);
    }
    //  Changing the original does not change the copy; freeing it neither
    //  (AddressSanitizer would see a use after free).
    orig->user [0] = 'X';
    trove_event_destroy (&orig);
    assert_string_equal (copy->user, "u1");
    assert_string_equal (s_find_attr (copy, "s")->s, "str");
    assert_null (s_check (copy, NULL));
    trove_event_destroy (&copy);
}

static void
test_dup_borrowed_and_unpacked (void **state)
{
    (void) state;
    //  An event whose strings are NULL (never set): the copy owns "" strings.
    Trove__Event bare = TROVE__EVENT__INIT;
    bare.source = NULL;
    bare.id = NULL;
    bare.user = NULL;
    bare.type = NULL;
    Trove__Event *copy = trove_event_dup (&bare);
    assert_non_null (copy);
    assert_string_equal (copy->source, "");
    assert_string_equal (copy->type, "");
    assert_int_equal (copy->n_attrs, 0);
    trove_event_destroy (&copy);

    //  An event inside an unpacked protobuf message (strings owned by protobuf-c,
    //  absent ones pointing at its shared empty string).
    s_event_t e;
    s_event_init (&e);
    e.ev.type = "";
    s_add_str (&e, "zone", "C");
    s_add_num (&e, "n", -1.5);
    size_t size = trove__event__get_packed_size (&e.ev);
    uint8_t *buf = malloc (size);
    assert_non_null (buf);
    trove__event__pack (&e.ev, buf);
    Trove__Event *unpacked = trove__event__unpack (NULL, size, buf);
    assert_non_null (unpacked);
    copy = trove_event_dup (unpacked);
    trove__event__free_unpacked (unpacked, NULL);
    free (buf);
    assert_non_null (copy);
    s_assert_events_equal (&e.ev, copy);
    assert_string_equal (copy->type, "");
    trove_event_destroy (&copy);
}

//  Content hash: the same event whatever the attributes' order; any field
//  but source and id changes it.
static void
test_content_hash (void **state)
{
    (void) state;
    const char *texts [] = {
        "{\"source\":\"web\",\"id\":\"a\",\"user\":\"u\",\"type\":\"t\",\"ts\":1000,\"attrs\":{\"x\":1,\"y\":"
        "\"b\"}}",
        "{\"source\":\"app\",\"id\":\"b\",\"user\":\"u\",\"type\":\"t\",\"ts\":1000,\"attrs\":{\"y\":\"b\","
        "\"x\":1}}",
        "{\"source\":\"web\",\"id\":\"a\",\"user\":\"v\",\"type\":\"t\",\"ts\":1000,\"attrs\":{\"x\":1,\"y\":"
        "\"b\"}}",
        "{\"source\":\"web\",\"id\":\"a\",\"user\":\"u\",\"type\":\"t\",\"ts\":1001,\"attrs\":{\"x\":1,\"y\":"
        "\"b\"}}",
        "{\"source\":\"web\",\"id\":\"a\",\"user\":\"u\",\"type\":\"t\",\"ts\":1000,\"attrs\":{\"x\":\"1\","
        "\"y\":\"b\"}}",
    };
    uint8_t h [5][TROVE_EVENT_CONTENT_SIZE];
    for (int i = 0; i < 5; i++) {
        const char *reason;
        Trove__Event *ev = trove_event_from_json (texts [i], strlen (texts [i]), &reason, NULL);
        assert_non_null (ev);
        trove_event_content_hash (ev, h [i]);
        trove_event_destroy (&ev);
    }
    assert_memory_equal (h [0], h [1], TROVE_EVENT_CONTENT_SIZE);  //  order, source, id: no matter
    for (int i = 2; i < 5; i++)
        assert_memory_not_equal (h [0], h [i], TROVE_EVENT_CONTENT_SIZE);  //  user, ts, a typed value
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_content_hash),
        cmocka_unit_test (test_check_valid),
        cmocka_unit_test (test_check_missing_field),
        cmocka_unit_test (test_check_undo_needs_its_target),
        cmocka_unit_test (test_check_too_long),
        cmocka_unit_test (test_check_bad_utf8),
        cmocka_unit_test (test_check_unknown_source),
        cmocka_unit_test (test_check_bad_ts),
        cmocka_unit_test (test_check_too_many_attrs),
        cmocka_unit_test (test_check_bad_attr),
        cmocka_unit_test (test_check_detail_truncates_safely),
        cmocka_unit_test (test_json_parse_valid_rfc3339),
        cmocka_unit_test (test_json_parse_ts_forms),
        cmocka_unit_test (test_json_parse_missing_fields_are_empty),
        cmocka_unit_test (test_json_unknown_field),
        cmocka_unit_test (test_json_bad_json),
        cmocka_unit_test (test_json_invalid_utf8_in_string),
        cmocka_unit_test (test_json_bad_field_types),
        cmocka_unit_test (test_json_respects_len),
        cmocka_unit_test (test_json_to_json_exact),
        cmocka_unit_test (test_json_round_trip),
        cmocka_unit_test (test_dup_is_deep),
        cmocka_unit_test (test_dup_borrowed_and_unpacked),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
