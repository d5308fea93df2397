/*  Tests for trove_rules: hunt file loading and scoring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_engine.h"
#include "trove_event.h"
#include "trove_rules.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char hunt [8][64];
    char rule [8][64];
    uint32_t version [8];
    int64_t value [8];
    char id [8][TROVE_COIN_ID_LEN + 1];
    size_t n;
} s_awards_t;

static int
s_collect (void *arg, const trove_change_t *a)
{
    s_awards_t *out = arg;
    assert_true (out->n < 8);
    snprintf (out->hunt [out->n], 64, "%s", a->hunt);
    snprintf (out->rule [out->n], 64, "%s", a->rule);
    out->version [out->n] = a->version;
    out->value [out->n] = a->value;
    assert_false (a->revoke);
    snprintf (out->id [out->n], sizeof out->id [0], "%s", a->id);
    out->n++;
    return 0;
}

static char *
s_tempdir (void)
{
    char *dir = strdup ("/tmp/trove-test-rules-XXXXXX");
    assert_non_null (mkdtemp (dir));
    return dir;
}

static void
s_write (const char *dir, const char *name, const char *text)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

static void
s_cleanup (char *dir)
{
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
    free (dir);
}

static Trove__Event *
s_event (const char *json)
{
    const char *reason;
    char *err = NULL;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, &err);
    if (!ev)
        fail_msg ("bad test event %s: %s", json, err);
    return ev;
}

static s_awards_t
s_score (trove_rules_t *rules, const char *json)
{
    s_awards_t out = {0};
    Trove__Event *ev = s_event (json);
    trove_memstore_t *mem = trove_memstore_new ();
    trove_store_t store = trove_memstore_store (mem);
    assert_int_equal (trove_engine_score (rules, ev, 0, &store, s_collect, &out), 0);
    trove_memstore_destroy (&mem);
    trove_event_destroy (&ev);
    return out;
}

static const char *s_demo =
    "hunt: demo\n"
    "version: 1\n"
    "effective: 2020-01-01T00:00:00Z\n"
    "rules:\n"
    "  - id: checkin\n"
    "    kind: each\n"
    "    match: {type: checkin}\n"
    "    coins: 1\n"
    "  - id: big-spender\n"
    "    kind: each\n"
    "    match: {type: purchase, source: [store, web], where: [{attr: amount, op: \">=\", value: 100}]}\n"
    "    coins: 5\n"
    "  - id: zone-visit\n"
    "    kind: each\n"
    "    match: {type: visit, attrs: {zone: [A, B], vip: true}}\n"
    "    coins: 2\n";

static void
test_each_scores_matching_events (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    s_write (dir, "demo.yaml", s_demo);
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_dir (dir, &err);
    assert_non_null (rules);
    assert_int_equal (trove_rules_count (rules), 1);

    s_awards_t a = s_score (
        rules,
        "{\"source\":\"web\",\"id\":\"e1\",\"user\":\"u1\",\"type\":\"checkin\",\"ts\":1700000000000}");
    assert_int_equal (a.n, 1);
    assert_string_equal (a.hunt [0], "demo");
    assert_string_equal (a.rule [0], "checkin");
    assert_int_equal (a.version [0], 1);
    assert_int_equal (a.value [0], 1);
    //  occurrence of `each` is source NUL id
    char id [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("demo", "checkin", "u1", "web\0e1", 6, id);
    assert_string_equal (a.id [0], id);

    a = s_score (
        rules, "{\"source\":\"web\",\"id\":\"e2\",\"user\":\"u1\",\"type\":\"other\",\"ts\":1700000000000}");
    assert_int_equal (a.n, 0);

    //  where: amount >= 100 and source in [store, web]
    a = s_score (rules, "{\"source\":\"store\",\"id\":\"e3\",\"user\":\"u1\",\"type\":\"purchase\",\"ts\":"
                        "1700000000000,\"attrs\":{\"amount\":100}}");
    assert_int_equal (a.n, 1);
    assert_int_equal (a.value [0], 5);
    a = s_score (rules, "{\"source\":\"store\",\"id\":\"e4\",\"user\":\"u1\",\"type\":\"purchase\",\"ts\":"
                        "1700000000000,\"attrs\":{\"amount\":99.5}}");
    assert_int_equal (a.n, 0);
    a = s_score (rules, "{\"source\":\"mobile\",\"id\":\"e5\",\"user\":\"u1\",\"type\":\"purchase\",\"ts\":"
                        "1700000000000,\"attrs\":{\"amount\":500}}");
    assert_int_equal (a.n, 0);
    //  a string amount is not a number
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"e6\",\"user\":\"u1\",\"type\":\"purchase\",\"ts\":"
                        "1700000000000,\"attrs\":{\"amount\":\"500\"}}");
    assert_int_equal (a.n, 0);

    //  attrs: any of the listed values, and booleans compare as true/false
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"e7\",\"user\":\"u1\",\"type\":\"visit\",\"ts\":"
                        "1700000000000,\"attrs\":{\"zone\":\"B\",\"vip\":true}}");
    assert_int_equal (a.n, 1);
    assert_int_equal (a.value [0], 2);
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"e8\",\"user\":\"u1\",\"type\":\"visit\",\"ts\":"
                        "1700000000000,\"attrs\":{\"zone\":\"C\",\"vip\":true}}");
    assert_int_equal (a.n, 0);
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"e9\",\"user\":\"u1\",\"type\":\"visit\",\"ts\":"
                        "1700000000000,\"attrs\":{\"zone\":\"A\"}}");
    assert_int_equal (a.n, 0);
    trove_rules_destroy (&rules);
    assert_null (rules);
    trove_rules_destroy (&rules);
    s_cleanup (dir);
}

static void
test_versions_follow_event_time (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    s_write (dir, "h1.yaml",
             "hunt: h\nversion: 1\neffective: 2020-01-01T00:00:00Z\n"
             "rules:\n  - {id: c, kind: each, match: {type: checkin}, coins: 1}\n");
    s_write (dir, "h2.yaml",
             "hunt: h\nversion: 2\neffective: 2023-11-01T00:00:00Z\nstart: 2020-01-01T00:00:00Z\n"
             "end: 2024-01-01T00:00:00Z\n"
             "rules:\n  - {id: c, kind: each, match: {type: checkin}, coins: 3}\n");
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_dir (dir, &err);
    assert_non_null (rules);
    assert_int_equal (trove_rules_count (rules), 2);
    //  2023-10-31T23:59:59.999Z: version 1
    s_awards_t a = s_score (rules, "{\"source\":\"web\",\"id\":\"a\",\"user\":\"u\",\"type\":\"checkin\","
                                   "\"ts\":\"2023-10-31T23:59:59.999Z\"}");
    assert_int_equal (a.n, 1);
    assert_int_equal (a.version [0], 1);
    assert_int_equal (a.value [0], 1);
    //  exactly at effective: version 2
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"b\",\"user\":\"u\",\"type\":\"checkin\",\"ts\":\"2023-"
                        "11-01T00:00:00Z\"}");
    assert_int_equal (a.n, 1);
    assert_int_equal (a.version [0], 2);
    assert_int_equal (a.value [0], 3);
    //  after version 2's end: nothing (version 2 applies, and its window is closed)
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"c\",\"user\":\"u\",\"type\":\"checkin\",\"ts\":\"2024-"
                        "01-01T00:00:00Z\"}");
    assert_int_equal (a.n, 0);
    //  before any version is effective: nothing
    a = s_score (rules, "{\"source\":\"web\",\"id\":\"d\",\"user\":\"u\",\"type\":\"checkin\",\"ts\":\"2019-"
                        "12-31T23:59:59Z\"}");
    assert_int_equal (a.n, 0);
    trove_rules_destroy (&rules);
    s_cleanup (dir);
}

static void
s_expect_error (const char *text, const char *expect)
{
    char *dir = s_tempdir ();
    s_write (dir, "bad.yaml", text);
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_dir (dir, &err);
    assert_null (rules);
    assert_non_null (err);
    if (!strstr (err, expect))
        fail_msg ("error '%s' does not contain '%s'", err, expect);
    free (err);
    s_cleanup (dir);
}

static void
test_bad_files_are_refused_with_line (void **state)
{
    (void) state;
    s_expect_error (
        "hunt: h\nversion: 1\nrules:\n  - id: c\n    kind: each\n    match: {type: a}\n    coinz: 1\n",
        "bad.yaml:7: unknown key 'coinz' in rule 'c' (kind each)");
    s_expect_error (
        "hunt: h\nversion: 1\nrules:\n  - id: c\n    kind: count\n    match: {type: a}\n    coins: 1\n",
        "bad.yaml:4: rule 'c' (kind count) needs count");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: c, kind: bogus, match: {type: a}, coins: 1}\n",
                    "bad.yaml:4: rule 'c': unknown kind 'bogus'");
    s_expect_error (
        "hunt: h\nversion: 1\nrules:\n  - {id: c, kind: each, match: {type: a}, coins: 1, distinct: z}\n",
        "unknown key 'distinct' in rule 'c' (kind each)");
    s_expect_error ("hunt: h\nversion: 1\ntimezone: Mars/Olympus\nrules: []\n", "bad.yaml:3: timezone:");
    s_expect_error ("hunt: h\nversion: 1\nlateness: 10 minutes\nrules: []\n", "lateness must be a duration");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: c, kind: each, match: {type: a}, coins: 1, cap: "
                    "{max: 1, per: year}}\n",
                    "cap.per must be day, week, month or hunt");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: s, kind: sequence, steps: [{type: a}], within: "
                    "1h, coins: 1}\n",
                    "a sequence has 2 to 16 steps");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: s, kind: sequence, steps: [{type: a}, {typo: b}], "
                    "within: 1h, coins: 1}\n",
                    "unknown key 'typo' in a sequence step");
    s_expect_error (
        "hunt: h\nversion: 1\nrules:\n  - {id: s, kind: streak, match: {type: a}, days: 1, coins: 1}\n",
        "days must be an integer in 2..366");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: c, kind: each, match: {type: a}}\n",
                    "has no coins");
    s_expect_error ("hunt: h\nversion: x\nrules: []\n", "bad.yaml:2: version must be an integer");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: c, kind: each, match: {type: a}, coins: 1}\n"
                    "  - {id: c, kind: each, match: {type: b}, coins: 1}\n",
                    "rule id 'c' is used twice");
    s_expect_error ("hunt: h\nversion: 1\nrules:\n  - {id: c, kind: each, match: {where: [{attr: x, op: "
                    "'=~', value: 1}]}, coins: 1}\n",
                    "op '=~'");
    s_expect_error ("hunt: h\nversion: 1\nrules: [\n", "YAML error");
    s_expect_error ("hunt: 'no spaces allowed'\nversion: 1\nrules: []\n", "'hunt' must be");
    s_expect_error ("hunt: h\nversion: 1\neffective: yesterday\nrules: []\n",
                    "effective must be an RFC 3339 time");
    s_expect_error ("", "empty file");
}

//  The example hunt of the rules design loads as written.
static void
test_example_hunt_loads (void **state)
{
    (void) state;
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_file (TROVE_SOURCE_DIR "/etc/examples/spring-hunt.yaml", &err);
    if (!rules)
        fail_msg ("%s", err);
    assert_int_equal (trove_rules_count (rules), 1);
    const trove_hunt_t *h = trove_rules_at (rules, 0);
    assert_string_equal (h->hunt, "spring-hunt");
    assert_int_equal (h->version, 2);
    assert_int_equal (h->lateness_ms, 600000);
    assert_int_equal (h->nrules, 5);
    assert_int_equal (h->rules [0].kind, TROVE_KIND_EACH);
    assert_int_equal (h->rules [0].cap_max, 1);
    assert_int_equal (h->rules [0].cap_per, TROVE_PER_DAY);
    assert_int_equal (h->rules [0].cooldown_ms, 30000);
    assert_int_equal (h->rules [1].kind, TROVE_KIND_COUNT);
    assert_string_equal (h->rules [1].distinct, "zone");
    assert_int_equal (h->rules [1].count, 5);
    assert_false (h->rules [1].repeat);
    assert_int_equal (h->rules [2].kind, TROVE_KIND_SEQUENCE);
    assert_int_equal (h->rules [2].nsteps, 3);
    assert_int_equal (h->rules [2].within_ms, 24 * 3600000LL);
    assert_int_equal (h->rules [3].kind, TROVE_KIND_STREAK);
    assert_int_equal (h->rules [3].days, 7);
    assert_int_equal (h->rules [4].match.nwheres, 1);
    assert_true (h->stateful);
    trove_rules_destroy (&rules);
}

static void
test_missing_dir_and_single_file (void **state)
{
    (void) state;
    char *err = NULL;
    assert_null (trove_rules_load_dir ("/nonexistent/trove/rules", &err));
    assert_non_null (strstr (err, "cannot open rules directory"));
    free (err);
    char *dir = s_tempdir ();
    s_write (dir, "demo.yaml", s_demo);
    char path [600];
    snprintf (path, sizeof path, "%s/demo.yaml", dir);
    trove_rules_t *rules = trove_rules_load_file (path, &err);
    assert_non_null (rules);
    assert_int_equal (trove_rules_count (rules), 1);
    trove_rules_destroy (&rules);
    //  the same version twice is an error
    s_write (dir, "copy.yaml", s_demo);
    assert_null (trove_rules_load_dir (dir, &err));
    assert_non_null (strstr (err, "version 1 is defined twice"));
    free (err);
    s_cleanup (dir);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_each_scores_matching_events),
        cmocka_unit_test (test_versions_follow_event_time),
        cmocka_unit_test (test_bad_files_are_refused_with_line),
        cmocka_unit_test (test_missing_dir_and_single_file),
        cmocka_unit_test (test_example_hunt_loads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
