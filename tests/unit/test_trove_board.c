/*  test_trove_board - leaderboard indexes (lib/ledger/trove_board) on a real LMDB
    environment: exact order, ties, ranks, windows, periods, exclusions,
    revocations, listing, cost, and a randomized cross-check of the count
    tree and the windows against a brute-force model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_board_internal.h"
#include "trove_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char dir [64];
    MDB_env *env;
    trove_board_t *board;
    MDB_txn *txn;  //  the open write transaction
} s_fx_t;

static int
s_setup (void **state)
{
    s_fx_t *f = calloc (1, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/test-board-XXXXXX");
    if (!mkdtemp (f->dir))
        return -1;
    if (mdb_env_create (&f->env) || mdb_env_set_maxdbs (f->env, 8) || mdb_env_set_mapsize (f->env, 256 << 20)
        || mdb_env_open (f->env, f->dir, MDB_NOSYNC, 0600))
        return -1;
    if (mdb_txn_begin (f->env, NULL, 0, &f->txn))
        return -1;
    char *err = NULL;
    f->board = trove_board_new (f->txn, &err);
    if (!f->board) {
        fprintf (stderr, "board: %s\n", err ? err : "?");
        return -1;
    }
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fx_t *f = *state;
    if (f->txn)
        mdb_txn_abort (f->txn);
    trove_board_destroy (&f->board);
    assert_null (f->board);
    mdb_env_close (f->env);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system (cmd);
    free (f);
    return rc == 0 ? 0 : -1;
}

//  Day number of 2026-03-10 (a Tuesday); its week starts 2026-03-09.
#define D0 20522

static void
s_coin (s_fx_t *f, const char *user, const char *hunt, int64_t value, int32_t day, bool revoked)
{
    Trove__Coin c = TROVE__COIN__INIT;
    c.user = (char *) user;
    c.hunt = (char *) hunt;
    c.value = value;
    c.local_day = day;
    c.revoked = revoked;
    assert_int_equal (trove_board_add (f->board, &c), 0);
}

static void
s_flush (s_fx_t *f)
{
    assert_int_equal (trove_board_flush (f->board, f->txn), 0);
}

//  "user:score user:score ..." of a board's top (limit entries).
static void
s_top_text (s_fx_t *f, const char *hunt, const char *period, size_t limit, char *out, size_t size)
{
    Trove__BoardEntry **e;
    size_t n;
    bool more;
    trove_cost_t cost = {0, 0, false};
    assert_int_equal (trove_board_top (f->board, f->txn, hunt, period, 0, NULL, limit, &cost, &e, &n, &more),
                      0);
    out [0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf (out + strlen (out), size - strlen (out), "%s%s:%lld", i ? " " : "", e [i]->user,
                  (long long) e [i]->score);
    trove_board_entries_free (e, n);
}

static void
s_counts (s_fx_t *f, const char *hunt, const char *period, int64_t score, uint64_t want_above,
          uint64_t want_equal)
{
    uint64_t above, equal;
    trove_cost_t cost = {0, 0, false};
    assert_int_equal (trove_board_counts (f->board, f->txn, hunt, period, &score, 1, &cost, &above, &equal),
                      0);
    if (above != want_above || equal != want_equal)
        fail_msg ("%s/%s score %lld: above %llu equal %llu, want %llu %llu", hunt, period, (long long) score,
                  (unsigned long long) above, (unsigned long long) equal, (unsigned long long) want_above,
                  (unsigned long long) want_equal);
    assert_int_equal (cost.used, 10);  //  one node per level, whatever the board's size
}

static void
test_order_ties_periods (void **state)
{
    s_fx_t *f = *state;
    s_coin (f, "carol", "h", 5, D0, false);
    s_coin (f, "alice", "h", 5, D0, false);
    s_coin (f, "bob", "h", 7, D0, false);
    s_coin (f, "dave", "h", 2, D0 + 1, false);  //  Wednesday: same week, next day
    s_coin (f, "erin", "h", 9, D0 + 6, false);  //  Monday 2026-03-16: next week
    s_coin (f, "alice", "other", 4, D0, false);
    s_flush (f);
    char text [512];
    s_top_text (f, "h", "all", 10, text, sizeof text);
    assert_string_equal (text, "erin:9 bob:7 alice:5 carol:5 dave:2");  //  ties: user ascending
    s_top_text (f, "h", "day:2026-03-10", 10, text, sizeof text);
    assert_string_equal (text, "bob:7 alice:5 carol:5");
    s_top_text (f, "h", "day:2026-03-11", 10, text, sizeof text);
    assert_string_equal (text, "dave:2");
    s_top_text (f, "h", "week:2026-03-09", 10, text, sizeof text);
    assert_string_equal (text, "bob:7 alice:5 carol:5 dave:2");
    s_top_text (f, "h", "week:2026-03-16", 10, text, sizeof text);
    assert_string_equal (text, "erin:9");
    s_top_text (f, "*", "all", 10, text, sizeof text);
    assert_string_equal (text, "alice:9 erin:9 bob:7 carol:5 dave:2");
    //  Ranks: 1 + users above; ties share it.
    s_counts (f, "h", "all", 9, 0, 1);
    s_counts (f, "h", "all", 5, 2, 2);
    s_counts (f, "h", "all", 2, 4, 1);
    s_counts (f, "h", "all", 3, 4, 0);
    s_counts (f, "h", "all", 0, 5, 0);  //  everyone is above nothing
    //  Paging after a position: stable whatever is added before it.
    Trove__BoardEntry **e;
    size_t n;
    bool more;
    trove_cost_t cost = {0, 0, false};
    assert_int_equal (trove_board_top (f->board, f->txn, "h", "all", 5, "alice", 2, &cost, &e, &n, &more), 0);
    assert_int_equal (n, 2);
    assert_string_equal (e [0]->user, "carol");
    assert_string_equal (e [1]->user, "dave");
    assert_false (more);
    trove_board_entries_free (e, n);
    assert_int_equal (trove_board_top (f->board, f->txn, "h", "all", 0, NULL, 2, &cost, &e, &n, &more), 0);
    assert_true (more);
    trove_board_entries_free (e, n);
    //  Per-hunt balances ("*" left out).
    cost = (trove_cost_t){0, 0, false};
    assert_int_equal (trove_board_hunts (f->board, f->txn, "alice", &cost, &e, &n), 0);
    assert_int_equal (cost.used, 3);  //  two hunts and the end; "*" is not read
    assert_int_equal (n, 2);
    assert_string_equal (e [0]->hunt, "h");
    assert_int_equal (e [0]->score, 5);
    assert_string_equal (e [1]->hunt, "other");
    assert_int_equal (e [1]->score, 4);
    trove_board_entries_free (e, n);
    //  The boards of h: weeks then days newest first, then all, with users.
    assert_int_equal (trove_board_list (f->board, f->txn, "h", 10, &cost, &e, &n, &more), 0);
    const char *want [] = {"week:2026-03-16", "week:2026-03-09", "day:2026-03-16",
                           "day:2026-03-11",  "day:2026-03-10",  "all"};
    uint64_t users [] = {1, 4, 1, 1, 3, 5};
    assert_int_equal (n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal (e [i]->period, want [i]);
        assert_int_equal (e [i]->users, users [i]);
    }
    trove_board_entries_free (e, n);
}

static void
test_window_revocation_exclusion (void **state)
{
    s_fx_t *f = *state;
    const char *names [] = {"u0", "u1", "u2", "u3", "u4", "u5", "u6"};
    int64_t scores [] = {10, 8, 8, 8, 5, 3, 1};
    for (int i = 0; i < 7; i++)
        s_coin (f, names [i], "h", scores [i], D0, false);
    s_flush (f);
    //  Around u2 (8), k = 2: u0 u1 | u3 u4.
    Trove__BoardEntry **before, **after;
    size_t nb, na;
    trove_cost_t cost = {0, 0, false};
    assert_int_equal (
        trove_board_window (f->board, f->txn, "h", "all", 8, "u2", 2, &cost, &before, &nb, &after, &na), 0);
    assert_int_equal (nb, 2);
    assert_int_equal (na, 2);
    assert_string_equal (before [0]->user, "u0");
    assert_string_equal (before [1]->user, "u1");
    assert_string_equal (after [0]->user, "u3");
    assert_string_equal (after [1]->user, "u4");
    trove_board_entries_free (before, nb);
    trove_board_entries_free (after, na);
    //  At the edges: fewer entries, and a position past the end.
    assert_int_equal (
        trove_board_window (f->board, f->txn, "h", "all", 1, "u6", 3, &cost, &before, &nb, &after, &na), 0);
    assert_int_equal (nb, 3);
    assert_int_equal (na, 0);
    assert_string_equal (before [2]->user, "u5");
    trove_board_entries_free (before, nb);
    trove_board_entries_free (after, na);
    assert_int_equal (
        trove_board_window (f->board, f->txn, "h", "all", 0, "zz", 1, &cost, &before, &nb, &after, &na), 0);
    assert_int_equal (nb, 1);
    assert_string_equal (before [0]->user, "u6");
    trove_board_entries_free (before, nb);
    trove_board_entries_free (after, na);

    //  A revocation moves u0 down; taking everything back takes u6 off.
    s_coin (f, "u0", "h", 7, D0, true);
    s_coin (f, "u6", "h", 1, D0, true);
    s_flush (f);
    char text [256];
    s_top_text (f, "h", "all", 10, text, sizeof text);
    assert_string_equal (text, "u1:8 u2:8 u3:8 u4:5 u0:3 u5:3");
    s_counts (f, "h", "all", 3, 4, 2);
    int64_t score;
    bool excluded;
    assert_int_equal (trove_board_score (f->board, f->txn, "u6", "h", "all", &cost, &score, &excluded), 0);
    assert_int_equal (score, 0);

    //  Excluding u1 takes it off every board; its score is kept.
    assert_int_equal (trove_board_set_excluded (f->board, f->txn, "u1", true, "staff"), 0);
    s_top_text (f, "h", "all", 10, text, sizeof text);
    assert_string_equal (text, "u2:8 u3:8 u4:5 u0:3 u5:3");
    s_top_text (f, "h", "day:2026-03-10", 10, text, sizeof text);
    assert_string_equal (text, "u2:8 u3:8 u4:5 u0:3 u5:3");
    s_counts (f, "h", "all", 5, 2, 1);
    //  Coins earned while excluded are counted, not indexed.
    s_coin (f, "u1", "h", 100, D0, false);
    s_flush (f);
    s_top_text (f, "h", "all", 1, text, sizeof text);
    assert_string_equal (text, "u2:8");
    assert_int_equal (trove_board_score (f->board, f->txn, "u1", "h", "all", &cost, &score, &excluded), 0);
    assert_int_equal (score, 108);
    assert_true (excluded);
    Trove__BoardEntry **e;
    size_t n;
    bool more;
    assert_int_equal (trove_board_excluded (f->board, f->txn, 10, &cost, &e, &n, &more), 0);
    assert_int_equal (n, 1);
    assert_string_equal (e [0]->user, "u1");
    assert_string_equal (e [0]->reason, "staff");
    trove_board_entries_free (e, n);
    //  Back in: with everything it earned meanwhile.
    assert_int_equal (trove_board_set_excluded (f->board, f->txn, "u1", false, ""), 0);
    s_top_text (f, "h", "all", 2, text, sizeof text);
    assert_string_equal (text, "u1:108 u2:8");
    s_counts (f, "h", "all", 8, 1, 2);
    assert_int_equal (trove_board_excluded (f->board, f->txn, 10, &cost, &e, &n, &more), 0);
    assert_int_equal (n, 0);
    trove_board_entries_free (e, n);
}

static void
test_cost_limit (void **state)
{
    s_fx_t *f = *state;
    char user [16];
    for (int i = 0; i < 300; i++) {
        snprintf (user, sizeof user, "u%03d", i);
        s_coin (f, user, "h", 1 + i % 17, D0, false);
    }
    s_flush (f);
    Trove__BoardEntry **e;
    size_t n;
    bool more;
    trove_cost_t cost = {0, 100, false};
    //  101 entries read at most: 100 fits, 200 does not.
    assert_int_equal (trove_board_top (f->board, f->txn, "h", "all", 0, NULL, 99, &cost, &e, &n, &more), 0);
    assert_int_equal (n, 99);
    assert_int_equal (cost.used, 100);
    assert_false (cost.over);
    trove_board_entries_free (e, n);
    cost = (trove_cost_t){0, 100, false};
    assert_int_equal (trove_board_top (f->board, f->txn, "h", "all", 0, NULL, 200, &cost, &e, &n, &more), -1);
    assert_true (cost.over);
    assert_null (e);
    assert_int_equal (n, 0);
    assert_true (cost.used <= 100);
    //  Counting is bounded by the levels, not by the users.
    s_counts (f, "h", "all", 18, 0, 0);
    s_counts (f, "h", "all", 17, 0, 17);  //  i % 17 == 16 for 17 of the 300
}

static void
test_periods_valid (void **state)
{
    (void) state;
    assert_true (trove_board_period_valid ("h", "all"));
    assert_true (trove_board_period_valid ("h", "day:2026-03-10"));
    assert_true (trove_board_period_valid ("h", "week:2026-03-09"));
    assert_false (trove_board_period_valid ("h", "week:2026-03-10"));  //  not a Monday
    assert_false (trove_board_period_valid ("h", "day:2026-02-30"));
    assert_false (trove_board_period_valid ("h", "day:2026-3-10"));
    assert_false (trove_board_period_valid ("h", "day:2026-03-10x"));
    assert_false (trove_board_period_valid ("h", "month:2026-03"));
    assert_false (trove_board_period_valid ("*", "day:2026-03-10"));
    assert_true (trove_board_period_valid ("*", "all"));
    assert_false (trove_board_period_valid ("", "all"));
    char p [TROVE_BOARD_PERIOD_MAX + 1];
    trove_board_week_period (D0 + 5, p, sizeof p);  //  Sunday
    assert_string_equal (p, "week:2026-03-09");
    trove_board_day_period (D0, p, sizeof p);
    assert_string_equal (p, "day:2026-03-10");
    trove_board_week_period (-1, p, sizeof p);  //  1969-12-31, a Wednesday
    assert_string_equal (p, "week:1969-12-29");
}

//  Random scores, updates and removals against a plain array.
static void
test_random_against_model (void **state)
{
    s_fx_t *f = *state;
    enum { USERS = 600 };
    int64_t model [USERS] = {0};
    char name [USERS][8];
    for (int i = 0; i < USERS; i++)
        snprintf (name [i], sizeof name [i], "r%04d", i);
    srand (7);
    for (int round = 0; round < 30; round++) {
        for (int j = 0; j < 100; j++) {
            int u = rand () % USERS;
            //  Small and huge steps, and sometimes everything taken back.
            int64_t v = rand () % 4 == 0 ? (int64_t) (rand () % 100000) * 1000 : 1 + rand () % 40;
            bool back = model [u] > 0 && rand () % 5 == 0;
            if (back)
                v = model [u];
            s_coin (f, name [u], "h", v, D0, back);
            model [u] += back ? -v : v;
        }
        s_flush (f);
        for (int t = 0; t < 40; t++) {
            int64_t s = t == 0 ? 0 : model [rand () % USERS] + (rand () % 3) - 1;
            uint64_t above = 0, equal = 0;
            for (int i = 0; i < USERS; i++) {
                above += model [i] > 0 && model [i] > s;
                equal += model [i] > 0 && model [i] == s && s > 0;
            }
            s_counts (f, "h", "all", s, above, equal);
        }
    }
    //  The whole order, and a window in the middle.
    int order [USERS], n = 0;
    for (int i = 0; i < USERS; i++)
        if (model [i] > 0)
            order [n++] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0; b--) {
            int x = order [b - 1], y = order [b];
            if (model [x] < model [y] || (model [x] == model [y] && strcmp (name [x], name [y]) > 0)) {
                order [b - 1] = y;
                order [b] = x;
            }
        }
    Trove__BoardEntry **e;
    size_t ne;
    bool more;
    trove_cost_t cost = {0, 0, false};
    assert_int_equal (trove_board_top (f->board, f->txn, "h", "all", 0, NULL, USERS, &cost, &e, &ne, &more),
                      0);
    assert_int_equal (ne, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal (e [i]->user, name [order [i]]);
        assert_int_equal (e [i]->score, model [order [i]]);
    }
    trove_board_entries_free (e, ne);
    int mid = n / 2;
    Trove__BoardEntry **before, **after;
    size_t nb, na;
    assert_int_equal (trove_board_window (f->board, f->txn, "h", "all", model [order [mid]],
                                          name [order [mid]], 5, &cost, &before, &nb, &after, &na),
                      0);
    assert_int_equal (nb, 5);
    assert_int_equal (na, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal (before [i]->user, name [order [mid - 5 + i]]);
        assert_string_equal (after [i]->user, name [order [mid + 1 + i]]);
    }
    trove_board_entries_free (before, nb);
    trove_board_entries_free (after, na);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_order_ties_periods, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_window_revocation_exclusion, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cost_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_periods_valid, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_random_against_model, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
