/*  test_trove_preview - what candidate rules would change in a ledger
    (scorer/trove_preview): a real ledger in a temp dir holds the coins of the
    rules in force; each test previews other rules and checks the report
    (counts, per-rule totals, the changes, the filters, the truncation). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_event.h"
#include "trove_ledger.h"
#include "trove_preview.h"
#include "trove_rules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The rules in force: checkin pays 1, visit 2.
static const char *s_live_rules = "hunt: demo\nversion: 1\nrules:\n"
                                  "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
                                  "  - {id: visit, kind: each, match: {type: visit}, coins: 2}\n";

typedef struct {
    char dir [64];         //  temp dir of the ledger
    trove_rules_t *rules;  //  in force
    trove_ledger_t *ledger;
} s_fixture_t;

static trove_rules_t *
s_rules (const char *text)
{
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text ("demo.yaml", text, strlen (text), &err);
    if (!rules)
        fail_msg ("rules: %s", err);
    return rules;
}

static void
s_apply (s_fixture_t *f, const char *id, const char *user, const char *type, uint32_t partition)
{
    char json [256];
    snprintf (json, sizeof json,
              "{\"source\":\"web\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":1700000000000}", id,
              user, type);
    const char *reason;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
    assert_non_null (ev);
    Trove__Status status = 0;
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, partition, 1, 0, f->rules, &status), 0);
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    assert_int_equal (status, TROVE__STATUS__ACCEPTED);
    trove_event_destroy (&ev);
}

//  ann: a checkin and two visits (partition 7); bob: a checkin (partition 9).
static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/trove-test-preview-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    f->rules = s_rules (s_live_rules);
    char *err = NULL;
    f->ledger = trove_ledger_new (f->dir, 0, 64 * 1024 * 1024, false, &err);
    if (!f->ledger)
        fail_msg ("ledger: %s", err);
    s_apply (f, "e1", "ann", "checkin", 7);
    s_apply (f, "e2", "ann", "visit", 7);
    s_apply (f, "e3", "ann", "visit", 7);
    s_apply (f, "e4", "bob", "checkin", 9);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    trove_ledger_destroy (&f->ledger);
    trove_rules_destroy (&f->rules);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

//  The report of previewing rules_text, parsed.
static json_t *
s_preview (s_fixture_t *f, const char *rules_text, int64_t partition, const char *user, size_t max_changes)
{
    trove_rules_t *rules = s_rules (rules_text);
    char *err = NULL;
    char *text = trove_preview_run (f->ledger, rules, partition, user, max_changes, &err);
    trove_rules_destroy (&rules);
    if (!text)
        fail_msg ("preview: %s", err);
    json_t *report = json_loads (text, 0, NULL);
    free (text);
    assert_non_null (report);
    return report;
}

static json_int_t
s_int (const json_t *obj, const char *key)
{
    const json_t *value = json_object_get (obj, key);
    if (!json_is_integer (value))
        fail_msg ("no integer \"%s\"", key);
    return json_integer_value (value);
}

static void
test_same_rules_change_nothing (void **state)
{
    s_fixture_t *f = *state;
    json_t *r = s_preview (f, s_live_rules, -1, NULL, 100);
    assert_int_equal (s_int (r, "users"), 2);
    assert_int_equal (s_int (r, "events"), 4);
    assert_int_equal (s_int (r, "mint"), 0);
    assert_int_equal (s_int (r, "revoke"), 0);
    assert_int_equal (s_int (r, "coins_delta"), 0);
    assert_int_equal (json_array_size (json_object_get (r, "rules")), 0);
    assert_int_equal (json_array_size (json_object_get (r, "changes")), 0);
    assert_true (json_is_false (json_object_get (r, "truncated")));
    json_decref (r);
}

static void
test_new_value_revokes_and_mints (void **state)
{
    s_fixture_t *f = *state;
    //  visit pays 3: each visit coin (same id) is revoked at 2 and minted at 3
    json_t *r = s_preview (f,
                           "hunt: demo\nversion: 1\nrules:\n"
                           "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
                           "  - {id: visit, kind: each, match: {type: visit}, coins: 3}\n",
                           -1, NULL, 100);
    assert_int_equal (s_int (r, "mint"), 2);
    assert_int_equal (s_int (r, "revoke"), 2);
    assert_int_equal (s_int (r, "coins_delta"), 2);
    json_t *rules = json_object_get (r, "rules");
    assert_int_equal (json_array_size (rules), 1);
    json_t *rule = json_array_get (rules, 0);
    assert_string_equal (json_string_value (json_object_get (rule, "hunt")), "demo");
    assert_string_equal (json_string_value (json_object_get (rule, "rule")), "visit");
    assert_int_equal (s_int (rule, "mint"), 2);
    assert_int_equal (s_int (rule, "revoke"), 2);
    assert_int_equal (s_int (rule, "coins_delta"), 2);
    json_t *changes = json_object_get (r, "changes");
    assert_int_equal (json_array_size (changes), 4);
    size_t i;
    json_t *change;
    const char *revoked [2] = {NULL, NULL};
    size_t nrevoked = 0;
    json_array_foreach (changes, i, change)
    {
        assert_string_equal (json_string_value (json_object_get (change, "user")), "ann");
        assert_string_equal (json_string_value (json_object_get (change, "rule")), "visit");
        assert_int_equal (strlen (json_string_value (json_object_get (change, "id"))), 32);
        bool mint = strcmp (json_string_value (json_object_get (change, "action")), "mint") == 0;
        assert_int_equal (s_int (change, "value"), mint ? 3 : 2);
        if (!mint)
            revoked [nrevoked++] = json_string_value (json_object_get (change, "id"));
    }
    //  the same coins, by id: revoked at one value, minted at the other
    assert_int_equal (nrevoked, 2);
    assert_string_not_equal (revoked [0], revoked [1]);
    json_array_foreach (changes, i, change)
    {
        if (strcmp (json_string_value (json_object_get (change, "action")), "mint") == 0) {
            const char *id = json_string_value (json_object_get (change, "id"));
            assert_true (strcmp (id, revoked [0]) == 0 || strcmp (id, revoked [1]) == 0);
        }
    }
    json_decref (r);
}

static void
test_removed_and_added_rules (void **state)
{
    s_fixture_t *f = *state;
    //  visit gone, a checkin bonus of 5 added
    json_t *r = s_preview (f,
                           "hunt: demo\nversion: 1\nrules:\n"
                           "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
                           "  - {id: bonus, kind: each, match: {type: checkin}, coins: 5}\n",
                           -1, NULL, 100);
    assert_int_equal (s_int (r, "revoke"), 2);
    assert_int_equal (s_int (r, "mint"), 2);
    assert_int_equal (s_int (r, "coins_delta"), 2 * 5 - 2 * 2);
    //  the changes in user order: ann's before bob's
    json_t *changes = json_object_get (r, "changes");
    assert_int_equal (json_array_size (changes), 4);
    assert_string_equal (json_string_value (json_object_get (json_array_get (changes, 0), "user")), "ann");
    assert_string_equal (json_string_value (json_object_get (json_array_get (changes, 3), "user")), "bob");
    assert_string_equal (json_string_value (json_object_get (json_array_get (changes, 3), "rule")), "bonus");
    assert_string_equal (json_string_value (json_object_get (json_array_get (changes, 3), "action")), "mint");
    json_decref (r);
}

static void
test_filters_user_and_partition (void **state)
{
    s_fixture_t *f = *state;
    const char *bonus = "hunt: demo\nversion: 1\nrules:\n"
                        "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
                        "  - {id: visit, kind: each, match: {type: visit}, coins: 2}\n"
                        "  - {id: bonus, kind: each, match: {type: checkin}, coins: 5}\n";
    json_t *r = s_preview (f, bonus, -1, "bob", 100);
    assert_int_equal (s_int (r, "users"), 1);
    assert_int_equal (s_int (r, "events"), 1);
    assert_int_equal (s_int (r, "mint"), 1);
    assert_int_equal (s_int (r, "coins_delta"), 5);
    json_decref (r);
    //  "" is no filter
    r = s_preview (f, bonus, -1, "", 100);
    assert_int_equal (s_int (r, "users"), 2);
    json_decref (r);
    //  partition 7 holds ann's events only; 8 none
    r = s_preview (f, bonus, 7, NULL, 100);
    assert_int_equal (s_int (r, "users"), 1);
    assert_int_equal (s_int (r, "events"), 3);
    assert_int_equal (s_int (r, "mint"), 1);
    json_decref (r);
    r = s_preview (f, bonus, 8, NULL, 100);
    assert_int_equal (s_int (r, "users"), 0);
    assert_int_equal (s_int (r, "events"), 0);
    json_decref (r);
}

static void
test_changes_truncated_counts_kept (void **state)
{
    s_fixture_t *f = *state;
    json_t *r = s_preview (f,
                           "hunt: demo\nversion: 1\nrules:\n"
                           "  - {id: checkin, kind: each, match: {type: checkin}, coins: 4}\n"
                           "  - {id: visit, kind: each, match: {type: visit}, coins: 2}\n",
                           -1, NULL, 1);
    //  the checkin coins of ann and bob, each revoked at 1 and minted at 4
    assert_int_equal (s_int (r, "mint"), 2);
    assert_int_equal (s_int (r, "revoke"), 2);
    assert_int_equal (s_int (r, "coins_delta"), 2 * 3);
    assert_int_equal (json_array_size (json_object_get (r, "changes")), 1);
    assert_true (json_is_true (json_object_get (r, "truncated")));
    json_decref (r);
    r = s_preview (f, s_live_rules, -1, NULL, 0);
    assert_true (json_is_false (json_object_get (r, "truncated")));
    json_decref (r);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_same_rules_change_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_new_value_revokes_and_mints, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_removed_and_added_rules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_filters_user_and_partition, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_changes_truncated_counts_kept, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
