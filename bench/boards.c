/*  bench-boards - what the leaderboards cost the ledger's apply thread, one
    core, no fsync: coin entries of --users users (random, demo values 1, 2
    or 5) counted on their boards (trove_board_add + trove_board_flush) in
    transactions of --txn coins, against the same transactions writing
    only what the apply thread wrote for a coin before the boards (the coin
    by aseq, its id, the user's index entry, the balance): the same-run
    baseline. Then the read costs on the resulting board of --users users.

    usage: bench-boards [--coins N] [--users U] [--txn T] [--dir D] */
#include "trove_board_internal.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t
s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static MDB_env *
s_env (const char *dir)
{
    MDB_env *env;
    if (mdb_env_create (&env) || mdb_env_set_maxdbs (env, 16) || mdb_env_set_mapsize (env, 16ULL << 30)
        || mdb_env_open (env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0600)) {
        fprintf (stderr, "bench-boards: cannot open %s\n", dir);
        exit (1);
    }
    return env;
}

int
main (int argc, char **argv)
{
    long coins = 1000000, users = 1000000, per_txn = 5000;
    const char *base = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp (argv [i], "--coins"))
            coins = atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--users"))
            users = atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--txn"))
            per_txn = atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--dir"))
            base = argv [i + 1];
    }
    char dir [2][256];
    for (int k = 0; k < 2; k++) {
        snprintf (dir [k], sizeof dir [k], "%s/bench-boards-%d-XXXXXX", base, k);
        if (!mkdtemp (dir [k]))
            return 1;
    }
    //  (a) baseline: the pre-board apply writes of a coin.
    MDB_env *env = s_env (dir [0]);
    MDB_txn *txn;
    MDB_dbi dcoins, dids, dusers;
    mdb_txn_begin (env, NULL, 0, &txn);
    mdb_dbi_open (txn, "coins", MDB_CREATE, &dcoins);
    mdb_dbi_open (txn, "coinids", MDB_CREATE, &dids);
    mdb_dbi_open (txn, "users", MDB_CREATE, &dusers);
    mdb_txn_commit (txn);
    char blob [120];
    memset (blob, 'c', sizeof blob);
    int64_t t0 = trove_mono_us ();
    for (long c = 0; c < coins; c += per_txn) {
        mdb_txn_begin (env, NULL, 0, &txn);
        for (long i = c; i < c + per_txn && i < coins; i++) {
            char user [24], ukey [40];
            int ul =
                snprintf (user, sizeof user, "u%llu", (unsigned long long) (s_rand () % (uint64_t) users));
            uint8_t seq [8], id [16];
            trove_put_be64 (seq, (uint64_t) i + 1);
            for (int b = 0; b < 16; b++)
                id [b] = (uint8_t) s_rand ();
            MDB_val k = {8, seq}, v = {sizeof blob, blob};
            mdb_put (txn, dcoins, &k, &v, MDB_APPEND);
            k = (MDB_val){16, id};
            v = (MDB_val){8, seq};
            mdb_put (txn, dids, &k, &v, 0);
            memcpy (ukey, user, (size_t) ul + 1);
            memcpy (ukey + ul + 1, seq, 8);
            k = (MDB_val){(size_t) ul + 9, ukey};
            v = (MDB_val){0, NULL};
            mdb_put (txn, dusers, &k, &v, 0);
            int64_t bal = 0;
            k = (MDB_val){(size_t) ul + 1, user};
            if (mdb_get (txn, dusers, &k, &v) == 0 && v.mv_size == 8)
                memcpy (&bal, v.mv_data, 8);
            bal += 2;
            v = (MDB_val){8, &bal};
            mdb_put (txn, dusers, &k, &v, 0);
        }
        mdb_txn_commit (txn);
    }
    double base_us = (double) (trove_mono_us () - t0) / (double) coins;
    mdb_env_close (env);

    //  (b) the boards of the same coins.
    env = s_env (dir [1]);
    mdb_txn_begin (env, NULL, 0, &txn);
    trove_board_t *board = trove_board_new (txn, NULL);
    mdb_txn_commit (txn);
    if (!board)
        return 1;
    static const int64_t values [] = {1, 2, 5};
    t0 = trove_mono_us ();
    for (long c = 0; c < coins; c += per_txn) {
        mdb_txn_begin (env, NULL, 0, &txn);
        for (long i = c; i < c + per_txn && i < coins; i++) {
            char user [24];
            snprintf (user, sizeof user, "u%llu", (unsigned long long) (s_rand () % (uint64_t) users));
            Trove__Coin coin = TROVE__COIN__INIT;
            coin.user = user;
            coin.hunt = "demo";
            coin.value = values [s_rand () % 3];
            coin.local_day = 20522 + (int32_t) (i * 7 / coins);  //  a week of days
            trove_board_add (board, &coin);
        }
        if (trove_board_flush (board, txn)) {
            fprintf (stderr, "bench-boards: flush failed\n");
            return 1;
        }
        mdb_txn_commit (txn);
    }
    double board_us = (double) (trove_mono_us () - t0) / (double) coins;

    //  Reads on the board of every user.
    mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    trove_cost_t cost = {0, 0, false};
    int64_t zero = 0;
    uint64_t on_board, eq;
    trove_board_counts (board, txn, "demo", "all", &zero, 1, &cost, &on_board, &eq);
    int reads = 20000;
    uint64_t rank_units = 0, top_units = 0, window_units = 0;
    t0 = trove_mono_us ();
    for (int r = 0; r < reads; r++) {
        int64_t s = (int64_t) (s_rand () % 40);
        uint64_t above;
        cost = (trove_cost_t){0, 0, false};
        trove_board_counts (board, txn, "demo", "all", &s, 1, &cost, &above, &eq);
        rank_units += cost.used;
    }
    double rank_us = (double) (trove_mono_us () - t0) / reads;
    t0 = trove_mono_us ();
    for (int r = 0; r < reads / 10; r++) {
        Trove__BoardEntry **e;
        size_t n;
        bool more;
        cost = (trove_cost_t){0, 0, false};
        trove_board_top (board, txn, "demo", "all", 0, NULL, 100, &cost, &e, &n, &more);
        top_units += cost.used;
        trove_board_entries_free (e, n);
    }
    double top_us = (double) (trove_mono_us () - t0) / (reads / 10);
    t0 = trove_mono_us ();
    for (int r = 0; r < reads; r++) {
        Trove__BoardEntry **b, **a;
        size_t nb, na;
        char user [24];
        snprintf (user, sizeof user, "u%llu", (unsigned long long) (s_rand () % (uint64_t) users));
        cost = (trove_cost_t){0, 0, false};
        trove_board_window (board, txn, "demo", "all", (int64_t) (s_rand () % 40), user, 5, &cost, &b, &nb,
                            &a, &na);
        window_units += cost.used;
        trove_board_entries_free (b, nb);
        trove_board_entries_free (a, na);
    }
    double window_us = (double) (trove_mono_us () - t0) / reads;
    mdb_txn_abort (txn);
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info (env, &info);
    mdb_env_stat (env, &st);
    printf (
        "{\"coins\":%ld,\"users\":%ld,\"txn\":%ld,\"baseline_us_per_coin\":%.2f,\"boards_us_per_coin\":%.2f,"
        "\"boards_vs_baseline\":%.2f,\"users_on_board\":%llu,\"boards_mb\":%.0f,"
        "\"rank_us\":%.2f,\"rank_units\":%.1f,\"top100_us\":%.1f,\"top100_units\":%.1f,\"window5_us\":%.2f,"
        "\"window5_units\":%.1f}\n",
        coins, users, per_txn, base_us, board_us, board_us / base_us, (unsigned long long) on_board,
        (double) info.me_last_pgno * st.ms_psize / 1e6, rank_us, (double) rank_units / reads, top_us,
        (double) top_units / (reads / 10), window_us, (double) window_units / reads);
    trove_board_destroy (&board);
    mdb_env_close (env);
    for (int k = 0; k < 2; k++) {
        char cmd [600];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir [k]);
        if (system (cmd))
            fprintf (stderr, "bench-boards: could not remove %s\n", dir [k]);
    }
    return 0;
}
