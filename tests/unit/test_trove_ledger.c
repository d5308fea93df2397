/*  Tests for trove_ledger against a real LMDB environment in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_engine.h"
#include "trove_event.h"
#include "trove_hash.h"
#include "trove_ledger.h"
#include "trove_msg.h"
#include "trove_rules.h"
#include "trove_util.h"

#include <czmq.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *dir;  //  temp dir: rules/ and data/
    char data [600];
    trove_rules_t *rules;
    trove_ledger_t *ledger;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = strdup ("/tmp/trove-test-ledger-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    char path [600];
    snprintf (path, sizeof path, "%s/demo.yaml", f->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("hunt: demo\nversion: 1\nrules:\n"
           "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
           "  - {id: visit, kind: each, match: {type: visit}, coins: 2}\n"
           "  - {id: visit-bonus, kind: each, match: {type: visit}, coins: 10}\n",
           file);
    fclose (file);
    char *err = NULL;
    f->rules = trove_rules_load_file (path, &err);
    assert_non_null (f->rules);
    snprintf (f->data, sizeof f->data, "%s/data", f->dir);
    f->ledger = trove_ledger_new (f->data, 3, 64 * 1024 * 1024, true, &err);
    if (!f->ledger)
        fail_msg ("ledger: %s", err);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    trove_ledger_destroy (&f->ledger);
    trove_rules_destroy (&f->rules);
    char cmd [700];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f->dir);
    free (f);
    return 0;
}

static Trove__Event *
s_event (const char *source, const char *id, const char *user, const char *type)
{
    char json [512];
    snprintf (json, sizeof json,
              "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":1700000000000}",
              source, id, user, type);
    const char *reason;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
    assert_non_null (ev);
    return ev;
}

//  Apply one event in its own batch and commit; returns the status.
static Trove__Status
s_apply1 (s_fixture_t *f, const char *source, const char *id, const char *user, const char *type,
          uint64_t req)
{
    Trove__Event *ev = s_event (source, id, user, type);
    Trove__Status status = 0;
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, 7, req, 123, f->rules, &status), 0);
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    //  reads see the tables: wait until the log is applied
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    trove_event_destroy (&ev);
    return status;
}

static int64_t
s_balance (s_fixture_t *f, const char *user)
{
    int64_t balance = -1;
    assert_int_equal (trove_ledger_balance (f->ledger, user, &balance, NULL), 0);
    return balance;
}

//  A copy of a live ledger is a whole ledger at its position: a new ledger
//  opened on it has the same balances and dedup, and carries on after it.
static void
test_copy_is_a_ledger_at_its_position (void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal (s_apply1 (f, "web", "e1", "alice", "checkin", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_apply1 (f, "web", "e2", "alice", "visit", 2), TROVE__STATUS__ACCEPTED);
    char out [700], *err = NULL;
    snprintf (out, sizeof out, "%s/copy", f->dir);
    //  Another process copies, as trovectl does: LMDB forbids opening one
    //  environment twice in a process (closing one drops the other's locks).
    trove_ledger_copy_info_t info = {0};
    int fds [2];
    assert_int_equal (pipe (fds), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        int rc = trove_ledger_copy (f->data, 64 * 1024 * 1024, out, &info, &err);
        if (rc)
            fprintf (stderr, "copy: %s\n", err);
        _exit (rc || write (fds [1], &info, sizeof info) != (ssize_t) sizeof info);
    }
    int wstatus;
    assert_int_equal (waitpid (pid, &wstatus, 0), pid);
    assert_true (WIFEXITED (wstatus) && WEXITSTATUS (wstatus) == 0);
    assert_int_equal (read (fds [0], &info, sizeof info), (ssize_t) sizeof info);
    close (fds [0]);
    close (fds [1]);
    assert_int_equal (info.events, 2);
    assert_int_equal (info.position, trove_ledger_applied (f->ledger));
    assert_true (info.bytes > 0);
    //  Later events are not in it.
    assert_int_equal (s_apply1 (f, "web", "e3", "alice", "checkin", 3), TROVE__STATUS__ACCEPTED);
    //  A second copy into the same place is refused before anything is
    //  opened (so this process may ask).
    trove_ledger_copy_info_t again;
    assert_int_equal (trove_ledger_copy (f->data, 64 * 1024 * 1024, out, &again, &err), -1);
    assert_non_null (strstr (err, "already holds a copy"));
    free (err);
    err = NULL;
    assert_int_equal (trove_ledger_copy_info (out, &again, &err), 0);
    assert_int_equal (again.events, 2);
    //  Not a ledger: a clear error.
    assert_int_equal (trove_ledger_copy_info (f->dir, &again, &err), -1);
    assert_non_null (strstr (err, "no ledger tables"));
    free (err);
    err = NULL;
    trove_ledger_t *copy = trove_ledger_new (out, 3, 64 * 1024 * 1024, true, &err);
    if (!copy)
        fail_msg ("open the copy: %s", err);
    int64_t balance = -1;
    assert_int_equal (trove_ledger_balance (copy, "alice", &balance, NULL), 0);
    assert_int_equal (balance, 1 + 2 + 10);
    assert_int_equal (trove_ledger_event_count (copy), 2);
    trove_ledger_destroy (&copy);
}

static void
test_apply_mints_coins_and_balance (void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal (s_balance (f, "alice"), 0);
    assert_int_equal (s_apply1 (f, "web", "e1", "alice", "checkin", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_apply1 (f, "web", "e2", "alice", "visit", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_apply1 (f, "web", "e3", "alice", "nothing", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_balance (f, "alice"), 13);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 3);
    assert_int_equal (trove_ledger_event_count (f->ledger), 3);

    //  The awards of the last batch are published as Msg{award}.
    void **frames;
    size_t *sizes;
    size_t n = trove_ledger_awards_ready (f->ledger, &frames, &sizes);
    assert_int_equal (n, 0);  //  last batch (e3) minted nothing

    Trove__Coin **coins;
    size_t ncoins;
    char *next;
    assert_int_equal (trove_ledger_coins (f->ledger, "alice", "", 10, &coins, &ncoins, &next, NULL), 0);
    assert_int_equal (ncoins, 3);
    assert_string_equal (next, "");
    //  newest first: visit-bonus (aseq 3), visit (2), checkin (1)
    assert_int_equal (coins [0]->aseq, 3);
    assert_string_equal (coins [0]->rule, "visit-bonus");
    assert_int_equal (coins [2]->aseq, 1);
    assert_string_equal (coins [2]->rule, "checkin");
    assert_int_equal (coins [2]->shard, 3);
    assert_int_equal (coins [2]->accepted_us, 123);
    assert_string_equal (coins [2]->reason, "scored");
    char expect [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("demo", "checkin", "alice", "web\0e1", 6, expect);
    assert_string_equal (coins [2]->id, expect);
    assert_int_equal (coins [2]->n_events, 1);
    assert_string_equal (coins [2]->events [0]->source, "web");
    assert_string_equal (coins [2]->events [0]->id, "e1");
    trove_ledger_free_coins (coins, ncoins);
    free (next);

    //  provenance of one coin
    Trove__Coin *coin;
    Trove__EventRecord **events;
    size_t nevents;
    assert_int_equal (trove_ledger_coin (f->ledger, expect, &coin, &events, &nevents, NULL), 0);
    assert_int_equal (nevents, 1);
    assert_string_equal (events [0]->event->type, "checkin");
    assert_int_equal (events [0]->partition, 7);
    assert_int_equal (events [0]->pseq, 1);
    trove__coin__free_unpacked (coin, NULL);
    trove_ledger_free_events (events, nevents);
    assert_int_equal (
        trove_ledger_coin (f->ledger, "00000000000000000000000000000000", &coin, &events, &nevents, NULL), 1);
    assert_int_equal (trove_ledger_coin (f->ledger, "short", &coin, &events, &nevents, NULL), 1);

    //  award log in aseq order
    assert_int_equal (trove_ledger_awards (f->ledger, 2, 10, &coins, &ncoins), 0);
    assert_int_equal (ncoins, 2);
    assert_int_equal (coins [0]->aseq, 2);
    assert_int_equal (coins [1]->aseq, 3);
    trove_ledger_free_coins (coins, ncoins);
}

static void
test_dedup_and_retried_submission (void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal (s_apply1 (f, "web", "e1", "bob", "checkin", 42), TROVE__STATUS__ACCEPTED);
    //  the same submission retried (answer lost): still accepted, nothing added
    assert_int_equal (s_apply1 (f, "web", "e1", "bob", "checkin", 42), TROVE__STATUS__ACCEPTED);
    //  another submission of the same (source, id): duplicate
    assert_int_equal (s_apply1 (f, "web", "e1", "bob", "checkin", 43), TROVE__STATUS__DUPLICATE);
    //  the same id from another source is another event
    assert_int_equal (s_apply1 (f, "mobile", "e1", "bob", "checkin", 43), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_balance (f, "bob"), 2);
    assert_int_equal (trove_ledger_event_count (f->ledger), 2);

    //  twice inside one batch: the second sees the first
    Trove__Event *ev = s_event ("web", "e9", "bob", "checkin");
    Trove__Status a, b;
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, 7, 50, 0, f->rules, &a), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, 7, 51, 0, f->rules, &b), 0);
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    assert_int_equal (a, TROVE__STATUS__ACCEPTED);
    assert_int_equal (b, TROVE__STATUS__DUPLICATE);
    trove_event_destroy (&ev);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (s_balance (f, "bob"), 3);
}

//  Queries about one user wait for that user's records only: the ledger
//  knows which users have committed records the tables do not hold yet.
static void
test_user_pending_until_applied (void **state)
{
    s_fixture_t *f = *state;
    //  A ledger whose apply thread waits (for 10 minutes or a million
    //  records) unless hurried: what is committed stays pending meanwhile.
    trove_ledger_destroy (&f->ledger);
    setenv ("TROVE_APPLY_MIN", "1000000", 1);
    setenv ("TROVE_APPLY_DELAY_MS", "600000", 1);
    char *err = NULL;
    f->ledger = trove_ledger_new (f->data, 3, 64 * 1024 * 1024, true, &err);
    unsetenv ("TROVE_APPLY_MIN");
    unsetenv ("TROVE_APPLY_DELAY_MS");
    assert_non_null (f->ledger);
    Trove__Status status;
    Trove__Event *a1 = s_event ("web", "p1", "ann", "checkin");
    Trove__Event *b1 = s_event ("web", "p2", "bob", "checkin");
    Trove__Event *a2 = s_event ("web", "p3", "ann", "visit");
    Trove__Event *c1 = s_event ("web", "p4", "cat", "checkin");
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, a1, 7, 1, 0, f->rules, &status), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, b1, 7, 1, 0, f->rules, &status), 0);
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    assert_int_equal (trove_ledger_committed (f->ledger), 2);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "ann"), 1);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "bob"), 2);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "cat"), 0);
    //  An aborted batch leaves no mark
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, c1, 7, 2, 0, f->rules, &status), 0);
    trove_ledger_abort (f->ledger);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "cat"), 0);
    //  A newer record of ann moves her mark; bob's stays
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, a2, 7, 3, 0, f->rules, &status), 0);
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "ann"), 3);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "bob"), 2);
    assert_int_equal (trove_ledger_applied (f->ledger), 0);
    //  Once applied nobody waits, and the reads see it all
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "ann"), 0);
    assert_int_equal (trove_ledger_user_pending (f->ledger, "bob"), 0);
    assert_int_equal (s_balance (f, "ann"), 13);
    assert_int_equal (s_balance (f, "bob"), 1);
    assert_int_equal (s_balance (f, "cat"), 0);
    trove_event_destroy (&a1);
    trove_event_destroy (&b1);
    trove_event_destroy (&a2);
    trove_event_destroy (&c1);
}

static void
test_abort_leaves_nothing_and_reopen_keeps_all (void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal (s_apply1 (f, "web", "e1", "carol", "checkin", 1), TROVE__STATUS__ACCEPTED);
    Trove__Event *ev = s_event ("web", "e2", "carol", "visit");
    Trove__Status status;
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, 7, 1, 0, f->rules, &status), 0);
    trove_ledger_abort (f->ledger);
    trove_ledger_abort (f->ledger);  //  safe twice
    trove_event_destroy (&ev);
    assert_int_equal (s_balance (f, "carol"), 1);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 1);
    assert_int_equal (trove_ledger_event_count (f->ledger), 1);
    void **frames;
    size_t *sizes;
    assert_int_equal (trove_ledger_awards_ready (f->ledger, &frames, &sizes), 0);

    //  sequence numbers were rolled back with the batch: the next event gets pseq 2
    assert_int_equal (s_apply1 (f, "web", "e3", "carol", "checkin", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (trove_ledger_awards_ready (f->ledger, &frames, &sizes), 1);
    const char *reason;
    Trove__Msg *msg = trove_msg_decode (frames [0], sizes [0], 1 << 20, &reason);
    assert_non_null (msg);
    assert_int_equal (msg->body_case, TROVE__MSG__BODY_AWARD);
    assert_int_equal (msg->award->aseq, 2);
    char id [TROVE_COIN_ID_LEN + 1];
    snprintf (id, sizeof id, "%s", msg->award->id);
    trove_msg_free (&msg);
    Trove__Coin *coin;
    Trove__EventRecord **events;
    size_t nevents;
    assert_int_equal (trove_ledger_coin (f->ledger, id, &coin, &events, &nevents, NULL), 0);
    assert_int_equal (events [0]->pseq, 2);
    trove__coin__free_unpacked (coin, NULL);
    trove_ledger_free_events (events, nevents);

    //  close and reopen: everything is still there, counters continue
    trove_ledger_destroy (&f->ledger);
    assert_null (f->ledger);
    char *err = NULL;
    f->ledger = trove_ledger_new (f->data, 3, 64 * 1024 * 1024, true, &err);
    assert_non_null (f->ledger);
    assert_int_equal (s_balance (f, "carol"), 2);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 2);
    assert_int_equal (trove_ledger_event_count (f->ledger), 2);
    assert_int_equal (s_apply1 (f, "web", "e3", "carol", "checkin", 9), TROVE__STATUS__DUPLICATE);
    assert_int_equal (s_apply1 (f, "web", "e4", "carol", "checkin", 9), TROVE__STATUS__ACCEPTED);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 3);
}

static void
test_coins_paging_newest_first (void **state)
{
    s_fixture_t *f = *state;
    for (int i = 0; i < 5; i++) {
        char id [16];
        snprintf (id, sizeof id, "p%d", i);
        s_apply1 (f, "web", id, "dave", "checkin", 1);
        s_apply1 (f, "web", id, "dave2", "checkin", 1);  //  a neighbour key must not leak in
    }
    Trove__Coin **coins;
    size_t n;
    char *next;
    uint64_t seen [5];
    size_t total = 0;
    char cursor [32] = "";
    do {
        assert_int_equal (trove_ledger_coins (f->ledger, "dave", cursor, 2, &coins, &n, &next, NULL), 0);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal (coins [i]->user, "dave");
            assert_true (total < 5);
            seen [total++] = coins [i]->aseq;
        }
        snprintf (cursor, sizeof cursor, "%s", next);
        trove_ledger_free_coins (coins, n);
        free (next);
    } while (*cursor);
    assert_int_equal (total, 5);
    for (size_t i = 1; i < total; i++)
        assert_true (seen [i] < seen [i - 1]);
    assert_int_equal (trove_ledger_coins (f->ledger, "dave", "notanumber", 2, &coins, &n, &next, NULL), -1);
    assert_int_equal (trove_ledger_coins (f->ledger, "nobody", "", 2, &coins, &n, &next, NULL), 0);
    assert_int_equal (n, 0);
    trove_ledger_free_coins (coins, n);
    free (next);
}

static void
test_full_map_refuses_then_recovers_with_bigger_map (void **state)
{
    s_fixture_t *f = *state;
    trove_ledger_destroy (&f->ledger);
    char path [700];
    snprintf (path, sizeof path, "%s/small", f->dir);
    char *err = NULL;
    //  a 1 MiB map fills after a few thousand events
    f->ledger = trove_ledger_new (path, 0, 1024 * 1024, false, &err);
    assert_non_null (f->ledger);
    assert_int_equal (s_apply1 (f, "web", "first", "erin", "checkin", 1), TROVE__STATUS__ACCEPTED);
    bool refused = false;
    uint64_t committed_events = 1;
    for (int batch = 0; batch < 2000 && !refused; batch++) {
        if (trove_ledger_begin (f->ledger)) {
            //  the tables are full: new batches are refused as storage full
            refused = true;
            assert_true (trove_ledger_full (f->ledger));
            assert_non_null (strstr (trove_ledger_error (f->ledger), "MDB_MAP_FULL"));
            break;
        }
        size_t applied = 0;
        for (int i = 0; i < 100; i++) {
            char id [32];
            snprintf (id, sizeof id, "b%d-%d", batch, i);
            Trove__Event *ev = s_event ("web", id, "erin", "checkin");
            Trove__Status status;
            int rc = trove_ledger_apply (f->ledger, ev, 1, 1, 0, f->rules, &status);
            trove_event_destroy (&ev);
            if (rc) {
                refused = true;
                break;
            }
            applied++;
        }
        if (refused) {
            //  the log itself is full: the whole batch is discarded
            assert_true (trove_ledger_full (f->ledger));
            trove_ledger_abort (f->ledger);
        }
        else if (trove_ledger_commit (f->ledger) == 0)
            committed_events += applied;
        else {
            refused = true;
            assert_true (trove_ledger_full (f->ledger));
        }
        //  give the apply thread a chance to hit the wall
        trove_ledger_wait_applied (f->ledger, 50);
    }
    assert_true (refused);
    assert_int_equal (trove_ledger_event_count (f->ledger), committed_events);
    //  reopen with a bigger map: every committed event is applied, none twice
    trove_ledger_destroy (&f->ledger);
    f->ledger = trove_ledger_new (path, 0, 64 * 1024 * 1024, false, &err);
    assert_non_null (f->ledger);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 20000), 0);
    assert_int_equal (trove_ledger_event_count (f->ledger), committed_events);
    assert_int_equal (s_balance (f, "erin"), (int64_t) committed_events);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), committed_events);
    assert_int_equal (trove_ledger_committed (f->ledger), trove_ledger_applied (f->ledger));
    //  and it takes new events again
    assert_int_equal (s_apply1 (f, "web", "after", "erin", "checkin", 1), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_balance (f, "erin"), (int64_t) committed_events + 1);
}

static void
test_unapplied_log_is_applied_after_restart (void **state)
{
    s_fixture_t *f = *state;
    //  Commit without waiting for the tables, then close at once: the
    //  destroy drains; a crash would leave the log tail, applied at the next
    //  open (the recovery path), and dedup must hold across the two.
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    for (int i = 0; i < 500; i++) {
        char id [32];
        snprintf (id, sizeof id, "r%d", i);
        Trove__Event *ev = s_event ("web", id, i % 2 ? "gus" : "hal", "visit");
        Trove__Status status;
        assert_int_equal (trove_ledger_apply (f->ledger, ev, (uint32_t) i % 4, 5, 0, f->rules, &status), 0);
        assert_int_equal (status, TROVE__STATUS__ACCEPTED);
        trove_event_destroy (&ev);
    }
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    //  an already committed but maybe unapplied event is a duplicate right away
    Trove__Event *ev = s_event ("web", "r7", "gus", "visit");
    Trove__Status status;
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_apply (f->ledger, ev, 3, 6, 0, f->rules, &status), 0);
    assert_int_equal (status, TROVE__STATUS__DUPLICATE);
    trove_ledger_abort (f->ledger);
    trove_event_destroy (&ev);
    trove_ledger_destroy (&f->ledger);
    char *err = NULL;
    f->ledger = trove_ledger_new (f->data, 3, 64 * 1024 * 1024, true, &err);
    assert_non_null (f->ledger);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (s_balance (f, "gus"), 250 * 12);
    assert_int_equal (s_balance (f, "hal"), 250 * 12);
    assert_int_equal (trove_ledger_event_count (f->ledger), 500);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 1000);
    assert_int_equal (s_apply1 (f, "web", "r499", "gus", "visit", 9), TROVE__STATUS__DUPLICATE);
}

static void
test_sigkill_after_commit_loses_nothing (void **state)
{
    s_fixture_t *f = *state;
    trove_ledger_destroy (&f->ledger);
    char path [700];
    snprintf (path, sizeof path, "%s/killed", f->dir);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        //  the child commits batches and is killed at once: whatever the
        //  apply thread had not applied stays only in the log
        trove_ledger_t *ledger = trove_ledger_new (path, 0, 64 * 1024 * 1024, true, NULL);
        if (!ledger)
            _exit (2);
        for (int b = 0; b < 20; b++) {
            if (trove_ledger_begin (ledger))
                _exit (3);
            for (int i = 0; i < 50; i++) {
                char id [32];
                snprintf (id, sizeof id, "k%d-%d", b, i);
                Trove__Event *ev = s_event ("web", id, "ivy", "checkin");
                Trove__Status status;
                if (trove_ledger_apply (ledger, ev, 2, 1, 0, f->rules, &status))
                    _exit (4);
                trove_event_destroy (&ev);
            }
            if (trove_ledger_commit (ledger))
                _exit (5);
        }
        kill (getpid (), SIGKILL);
        _exit (6);
    }
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    char *err = NULL;
    f->ledger = trove_ledger_new (path, 0, 64 * 1024 * 1024, true, &err);
    assert_non_null (f->ledger);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (trove_ledger_event_count (f->ledger), 1000);
    assert_int_equal (trove_ledger_last_aseq (f->ledger), 1000);
    assert_int_equal (s_balance (f, "ivy"), 1000);
    assert_int_equal (s_apply1 (f, "web", "k19-49", "ivy", "checkin", 9), TROVE__STATUS__DUPLICATE);
    assert_int_equal (s_apply1 (f, "web", "k20-0", "ivy", "checkin", 9), TROVE__STATUS__ACCEPTED);
    assert_int_equal (s_balance (f, "ivy"), 1001);
}

static void
test_open_errors (void **state)
{
    (void) state;
    char *err = NULL;
    assert_null (trove_ledger_new ("/proc/trove-cannot-exist", 0, 1 << 20, true, &err));
    assert_non_null (err);
    free (err);
}


//  Stateful rules through the ledger: state in the tables, revocations as
//  entries, undo by provenance, and the state surviving a restart.
static Trove__Event *
s_event_at (const char *source, const char *id, const char *user, const char *type, const char *ts,
            const char *attrs)
{
    char json [512];
    snprintf (json, sizeof json,
              "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":\"%s\"%s%s}", source,
              id, user, type, ts, attrs ? ",\"attrs\":" : "", attrs ? attrs : "");
    const char *reason;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
    assert_non_null (ev);
    return ev;
}

static void
s_apply_batch (s_fixture_t *f, trove_rules_t *rules, Trove__Event **evs, size_t n)
{
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    for (size_t i = 0; i < n; i++) {
        Trove__Status status = 0;
        assert_int_equal (trove_ledger_apply (f->ledger, evs [i], 7, 99, 1, rules, &status), 0);
        assert_int_equal (status, TROVE__STATUS__ACCEPTED);
        trove_event_destroy (&evs [i]);
    }
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
}

static size_t
s_live (s_fixture_t *f, const char *user, const char *rule)
{
    Trove__Coin **coins;
    size_t n, count = 0;
    assert_int_equal (trove_ledger_live_coins (f->ledger, user, &coins, &n), 0);
    for (size_t i = 0; i < n; i++)
        count += strcmp (coins [i]->rule, rule) == 0;
    trove_ledger_free_coins (coins, n);
    return count;
}

static void
test_stateful_rules_undo_and_restart (void **state)
{
    s_fixture_t *f = *state;
    const char *yaml = "hunt: t\nversion: 1\nrules:\n"
                       "  - {id: day, kind: each, match: {type: a}, coins: 3, cap: {max: 1, per: day}}\n"
                       "  - {id: two, kind: count, match: {type: a}, count: 2, coins: 10, repeat: true}\n"
                       "  - {id: any, kind: each, match: {type: b}, coins: 1}\n";
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text ("t.yaml", yaml, strlen (yaml), &err);
    assert_non_null (rules);
    //  One batch: two a's the same day (the second is late: the slot moves),
    //  and a b (stateless).
    Trove__Event *evs [] = {
        s_event_at ("w", "a2", "u", "a", "2026-05-01T10:05:00Z", NULL),
        s_event_at ("w", "a1", "u", "a", "2026-05-01T10:00:00Z", NULL),
        s_event_at ("w", "b1", "u", "b", "2026-05-01T10:06:00Z", NULL),
    };
    s_apply_batch (f, rules, evs, 3);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    //  day slot (3, now citing a1) + two (10) + any (1); one re-issue on the way
    assert_int_equal (s_balance (f, "u"), 14);
    assert_int_equal (s_live (f, "u", "day"), 1);
    assert_int_equal (s_live (f, "u", "two"), 1);
    char id [TROVE_COIN_ID_LEN + 1];
    trove_hash_coin_id ("t", "day", "u",
                        "cap\0day:2026-05-01\0"
                        "0",
                        20, id);
    Trove__Coin *coin;
    Trove__EventRecord **events;
    size_t nevents;
    assert_int_equal (trove_ledger_coin (f->ledger, id, &coin, &events, &nevents, NULL), 0);
    assert_false (coin->revoked);
    assert_int_equal (coin->n_events, 1);
    assert_string_equal (coin->events [0]->id, "a1");
    trove__coin__free_unpacked (coin, NULL);
    trove_ledger_free_events (events, nevents);

    //  Undo b1 (stateless: revoked by provenance) in a later batch.
    Trove__Event *undo [] = {
        s_event_at ("w", "u1", "u", "undo", "2026-05-01T10:07:00Z",
                    "{\"target_source\":\"w\",\"target_id\":\"b1\"}"),
    };
    s_apply_batch (f, rules, undo, 1);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (s_balance (f, "u"), 13);
    assert_int_equal (s_live (f, "u", "any"), 0);

    //  Undo of an event not arrived yet: the event is stored, never scored.
    Trove__Event *early [] = {
        s_event_at ("w", "u2", "u", "undo", "2026-05-01T10:08:00Z",
                    "{\"target_source\":\"w\",\"target_id\":\"b9\"}"),
        s_event_at ("w", "b9", "u", "b", "2026-05-01T10:08:30Z", NULL),
    };
    s_apply_batch (f, rules, early, 2);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    assert_int_equal (s_balance (f, "u"), 13);

    //  Restart: the rule state comes back from the tables (count goes on).
    trove_ledger_destroy (&f->ledger);
    f->ledger = trove_ledger_new (f->data, 3, 64 * 1024 * 1024, true, &err);
    assert_non_null (f->ledger);
    Trove__Event *more [] = {
        s_event_at ("w", "a3", "u", "a", "2026-05-01T10:09:00Z", NULL),
        s_event_at ("w", "a4", "u", "a", "2026-05-02T10:00:00Z", NULL),
    };
    s_apply_batch (f, rules, more, 2);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    //  a3: third a (no slot, count 1 of 2); a4: new day slot (3) + count done (10)
    assert_int_equal (s_balance (f, "u"), 26);
    assert_int_equal (s_live (f, "u", "two"), 2);
    trove_rules_destroy (&rules);
}


static int
s_collect_live (void *arg, const trove_change_t *ch)
{
    zhashx_t *want = arg;
    char value [32];
    snprintf (value, sizeof value, "%lld", (long long) ch->value);
    zhashx_update (want, ch->id, strdup (value));
    return 0;
}

//  SIGKILL right after commits of stateful scoring: the rule state of the
//  unapplied log tail comes back with it, so scoring goes on exactly (the
//  first events after the restart are scored before the tail is applied).
static void
test_sigkill_keeps_rule_state (void **state)
{
    s_fixture_t *f = *state;
    trove_ledger_destroy (&f->ledger);
    const char *yaml = "hunt: t\nversion: 1\nrules:\n"
                       "  - {id: day, kind: each, match: {type: a}, coins: 3, cap: {max: 2, per: day}}\n"
                       "  - {id: seven, kind: count, match: {type: a}, count: 7, coins: 10, repeat: true}\n";
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text ("t.yaml", yaml, strlen (yaml), &err);
    assert_non_null (rules);
    //  1,050 events of one user, 7 minutes apart, every tenth one 5 minutes
    //  early (within lateness): the first 1,000 before the kill.
    Trove__Event *all [1050];
    for (int i = 0; i < 1050; i++) {
        char id [32], ts [40];
        snprintf (id, sizeof id, "s%d", i);
        trove_format_rfc3339 (1777600000000LL + (int64_t) i * 420000 - (i % 10 == 9 ? 300000 : 0), ts,
                              sizeof ts);
        all [i] = s_event_at ("web", id, "ivy", "a", ts, NULL);
    }
    char path [700];
    snprintf (path, sizeof path, "%s/killed", f->dir);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        trove_ledger_t *ledger = trove_ledger_new (path, 0, 64 * 1024 * 1024, true, NULL);
        if (!ledger)
            _exit (2);
        for (int b = 0; b < 20; b++) {
            if (trove_ledger_begin (ledger))
                _exit (3);
            for (int i = 0; i < 50; i++) {
                Trove__Status status;
                if (trove_ledger_apply (ledger, all [b * 50 + i], 2, 1, 0, rules, &status))
                    _exit (4);
            }
            if (trove_ledger_commit (ledger))
                _exit (5);
        }
        kill (getpid (), SIGKILL);
        _exit (6);
    }
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    f->ledger = trove_ledger_new (path, 0, 64 * 1024 * 1024, true, &err);
    assert_non_null (f->ledger);
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    for (int i = 1000; i < 1050; i++) {
        Trove__Status st;
        assert_int_equal (trove_ledger_apply (f->ledger, all [i], 2, 1, 0, rules, &st), 0);
        assert_int_equal (st, TROVE__STATUS__ACCEPTED);
    }
    assert_int_equal (trove_ledger_commit (f->ledger), 0);
    assert_int_equal (trove_ledger_wait_applied (f->ledger, 10000), 0);
    //  The ledger's live coins are exactly those of event-time order.
    zhashx_t *want = zhashx_new ();
    zhashx_set_destructor (want, (zhashx_destructor_fn *) zstr_free);
    assert_int_equal (trove_engine_derive (rules, all, 1050, s_collect_live, want), 0);
    Trove__Coin **coins;
    size_t n;
    assert_int_equal (trove_ledger_live_coins (f->ledger, "ivy", &coins, &n), 0);
    assert_int_equal (n, zhashx_size (want));
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const char *value = zhashx_lookup (want, coins [i]->id);
        assert_non_null (value);
        assert_int_equal (atoll (value), coins [i]->value);
        sum += coins [i]->value;
    }
    assert_int_equal (s_balance (f, "ivy"), sum);
    trove_ledger_free_coins (coins, n);
    zhashx_destroy (&want);
    for (int i = 0; i < 1050; i++)
        trove_event_destroy (&all [i]);
    trove_rules_destroy (&rules);
}

//  A ledger written before the log was trove_wal: its log is an LMDB
//  environment in DIR/log (key lseq big-endian, value LogRecord). Its
//  records above the apply mark are moved into the new log at the first
//  start (and applied), the old environment is removed, and the ledger
//  goes on from there; a second start finds nothing left to move.
static void
test_old_lmdb_log_is_moved (void **state)
{
    s_fixture_t *f = *state;
    char old [700], logdir [720], path [760];
    snprintf (old, sizeof old, "%s/old", f->dir);
    snprintf (logdir, sizeof logdir, "%s/log", old);
    assert_int_equal (trove_mkdir_p (logdir, 0700), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 2), 0);
    assert_int_equal (mdb_env_open (env, logdir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, "log", MDB_CREATE, &dbi), 0);
    //  Two events of ann that earned no coin yet (the coins live in the
    //  record; none here keeps the record small), then a claim.
    for (int i = 1; i <= 3; i++) {
        Trove__Event *ev = s_event ("web", i == 1 ? "old-1" : "old-2", "ann", "checkin");
        Trove__EventRecord er = TROVE__EVENT_RECORD__INIT;
        er.event = ev;
        er.partition = 7;
        er.pseq = (uint64_t) i;
        er.accepted_us = 123;
        Trove__Claim claim = TROVE__CLAIM__INIT;
        uint8_t content [16] = {1};
        claim.source = "web";
        claim.id = "claimed";
        claim.content.data = content;
        claim.content.len = sizeof content;
        Trove__LogRecord rec = TROVE__LOG_RECORD__INIT;
        if (i < 3) {
            rec.record = &er;
            rec.req_id = 40 + (uint64_t) i;
        }
        else
            rec.claim = &claim;
        uint8_t buf [512], key [8];
        size_t size = trove__log_record__get_packed_size (&rec);
        assert_true (size <= sizeof buf);
        trove__log_record__pack (&rec, buf);
        trove_put_be64 (key, (uint64_t) i);
        MDB_val k = {8, key}, v = {size, buf};
        assert_int_equal (mdb_put (txn, dbi, &k, &v, MDB_APPEND), 0);
        trove_event_destroy (&ev);
    }
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);

    char *err = NULL;
    trove_ledger_t *ledger = trove_ledger_new (old, 3, 64 * 1024 * 1024, true, &err);
    if (!ledger)
        fail_msg ("open with an old log: %s", err);
    assert_int_equal (trove_ledger_wait_applied (ledger, 10000), 0);
    assert_int_equal (trove_ledger_event_count (ledger), 2);
    snprintf (path, sizeof path, "%s/data.mdb", logdir);
    assert_int_not_equal (access (path, F_OK), 0);
    trove_ledger_destroy (&ledger);
    //  Reopen: the moved records are in the new log or the tables, once.
    ledger = trove_ledger_new (old, 3, 64 * 1024 * 1024, true, &err);
    assert_non_null (ledger);
    assert_int_equal (trove_ledger_event_count (ledger), 2);
    trove_ledger_destroy (&f->ledger);
    f->ledger = ledger;
    assert_int_equal (s_apply1 (f, "web", "old-2", "ann", "checkin", 99), TROVE__STATUS__DUPLICATE);
    assert_int_equal (s_apply1 (f, "web", "new-1", "ann", "checkin", 100), TROVE__STATUS__ACCEPTED);
    assert_int_equal (trove_ledger_event_count (f->ledger), 3);
    //  The claim came along: another content under its id is refused.
    Trove__Event *ev = s_event ("web", "claimed", "bob", "checkin");
    Trove__Status status = 0;
    char why [256];
    assert_int_equal (trove_ledger_begin (f->ledger), 0);
    assert_int_equal (trove_ledger_claim (f->ledger, ev, &status, why, sizeof why), 0);
    assert_int_equal (status, TROVE__STATUS__REJECTED);
    trove_ledger_abort (f->ledger);
    trove_event_destroy (&ev);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_apply_mints_coins_and_balance, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_copy_is_a_ledger_at_its_position, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stateful_rules_undo_and_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigkill_keeps_rule_state, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dedup_and_retried_submission, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_abort_leaves_nothing_and_reopen_keeps_all, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_user_pending_until_applied, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_coins_paging_newest_first, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_full_map_refuses_then_recovers_with_bigger_map, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_unapplied_log_is_applied_after_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigkill_after_commit_loses_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_old_lmdb_log_is_moved, s_setup, s_teardown),
        cmocka_unit_test (test_open_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
