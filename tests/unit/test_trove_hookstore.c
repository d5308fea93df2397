/*  test_trove_hookstore - positions and dead letters of trove-webhooks on
    disk (webhooks/trove_hookstore): what a commit wrote is there after a
    reopen, a doomed or uncommitted batch writes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_hookstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir [64];

static int
s_setup (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "/tmp/test-hookstore-XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

static trove_hookstore_t *
s_open (void)
{
    char *err = NULL;
    trove_hookstore_t *store = trove_hookstore_new (s_dir, 1 << 20, true, &err);
    if (!store)
        fail_msg ("open: %s", err ? err : "?");
    return store;
}

typedef struct {
    char ids [8][32];
    char json [8][64];
    size_t n;
} s_seen_t;

static int
s_collect (void *arg, const char *id, const char *json)
{
    s_seen_t *seen = arg;
    assert_true (seen->n < 8);
    snprintf (seen->ids [seen->n], sizeof seen->ids [0], "%s", id);
    snprintf (seen->json [seen->n++], sizeof seen->json [0], "%s", json);
    return 0;
}

static void
test_commit_survives_reopen (void **state)
{
    (void) state;
    trove_hookstore_t *store = s_open ();
    assert_int_equal (trove_hookstore_cursor (store, "a", 0), 0);
    assert_int_equal (trove_hookstore_has_cursor (store, "a", 0), 0);
    assert_int_equal (trove_hookstore_begin (store), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "a", 0, 41), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "a", 1, 7), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "ab", 0, 99), 0);
    assert_int_equal (trove_hookstore_put_dead (store, "a.0.9", "{\"id\":\"a.0.9\"}"), 0);
    assert_int_equal (trove_hookstore_put_dead (store, "a.0.10", "{\"id\":\"a.0.10\"}"), 0);
    assert_int_equal (trove_hookstore_commit (store), 0);
    trove_hookstore_destroy (&store);
    assert_null (store);
    store = s_open ();
    //  Names that prefix each other do not mix.
    assert_int_equal (trove_hookstore_cursor (store, "a", 0), 41);
    assert_int_equal (trove_hookstore_cursor (store, "a", 1), 7);
    assert_int_equal (trove_hookstore_cursor (store, "ab", 0), 99);
    assert_int_equal (trove_hookstore_cursor (store, "b", 0), 0);
    //  A saved 0 is a position (a new endpoint has none).
    assert_int_equal (trove_hookstore_has_cursor (store, "a", 0), 1);
    assert_int_equal (trove_hookstore_has_cursor (store, "b", 0), 0);
    assert_int_equal (trove_hookstore_begin (store), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "z", 0, 0), 0);
    assert_int_equal (trove_hookstore_commit (store), 0);
    assert_int_equal (trove_hookstore_has_cursor (store, "z", 0), 1);
    assert_int_equal (trove_hookstore_cursor (store, "z", 0), 0);
    char *json = trove_hookstore_dead (store, "a.0.9");
    assert_string_equal (json, "{\"id\":\"a.0.9\"}");
    free (json);
    assert_null (trove_hookstore_dead (store, "a.0.8"));
    s_seen_t seen = {0};
    assert_int_equal (trove_hookstore_each_dead (store, s_collect, &seen), 0);
    assert_int_equal (seen.n, 2);
    assert_string_equal (seen.ids [0], "a.0.10");  //  byte order
    assert_string_equal (seen.ids [1], "a.0.9");
    //  Delete one (and one that is absent: not an error); move a cursor.
    assert_int_equal (trove_hookstore_begin (store), 0);
    assert_int_equal (trove_hookstore_del_dead (store, "a.0.9"), 0);
    assert_int_equal (trove_hookstore_del_dead (store, "a.0.404"), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "a", 0, 50), 0);
    assert_int_equal (trove_hookstore_commit (store), 0);
    trove_hookstore_destroy (&store);
    store = s_open ();
    assert_null (trove_hookstore_dead (store, "a.0.9"));
    assert_int_equal (trove_hookstore_cursor (store, "a", 0), 50);
    trove_hookstore_destroy (&store);
    trove_hookstore_destroy (&store);
}

static void
test_uncommitted_batch_writes_nothing (void **state)
{
    (void) state;
    trove_hookstore_t *store = s_open ();
    uint64_t before = trove_hookstore_cursor (store, "a", 0);
    assert_int_equal (trove_hookstore_begin (store), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "a", 0, before + 100), 0);
    assert_int_equal (trove_hookstore_put_dead (store, "a.0.77", "{}"), 0);
    //  Closed without commit (a kill between the puts and the commit).
    trove_hookstore_destroy (&store);
    store = s_open ();
    assert_int_equal (trove_hookstore_cursor (store, "a", 0), before);
    assert_null (trove_hookstore_dead (store, "a.0.77"));
    //  A doomed batch (a put refused: an empty key) commits nothing.
    assert_int_equal (trove_hookstore_begin (store), 0);
    assert_int_equal (trove_hookstore_set_cursor (store, "a", 0, before + 5), 0);
    assert_int_equal (trove_hookstore_put_dead (store, "", "{}"), -1);
    assert_int_equal (trove_hookstore_commit (store), -1);
    assert_int_equal (trove_hookstore_cursor (store, "a", 0), before);
    trove_hookstore_destroy (&store);
}

static void
test_unusable_directory (void **state)
{
    (void) state;
    char path [128];
    snprintf (path, sizeof path, "%s/file", s_dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fclose (f);
    snprintf (path, sizeof path, "%s/file/sub", s_dir);
    char *err = NULL;
    assert_null (trove_hookstore_new (path, 1 << 20, true, &err));
    assert_non_null (err);
    free (err);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_commit_survives_reopen),
        cmocka_unit_test (test_uncommitted_batch_writes_nothing),
        cmocka_unit_test (test_unusable_directory),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
