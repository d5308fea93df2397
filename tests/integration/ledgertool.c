/*  ledgertool - TEST ONLY: damage a scorer's ledger tables the way a bug or a
    lying disk would, so that the reconciler's repairs can be tested. It
    writes the tables directly (LMDB serializes it with the scorer's own
    writer), bypassing the log: nothing of this is ever acknowledged.

    usage: ledgertool DATA_DIR delete-coin COIN_ID
           ledgertool DATA_DIR add-coin USER HUNT RULE VALUE OCCURRENCE
           ledgertool DATA_DIR add-balance USER DELTA
    add-balance changes the stored balance only (no coin, no board): the
    accounting fault of issue 17 that the reconciler's integrity check must
    report.
    add-coin writes a coin no event explains as the next award. Both keep the
    tables consistent with themselves (balance, leaderboards), as a lost or
    invented coin entry would. Run it while the scorer is stopped (it reads
    its last aseq from the tables at start). */
#include "trove.pb-c.h"
#include "trove_board_internal.h"
#include "trove_hash.h"
#include "trove_util.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static MDB_env *s_env;  //  closed on every way out (leak checks run on this tool too)

static int
s_fail (const char *what, int rc)
{
    fprintf (stderr, "ledgertool: %s: %s\n", what, rc ? mdb_strerror (rc) : "failed");
    if (s_env)
        mdb_env_close (s_env);  //  also ends an open transaction's reader/writer slot
    return 1;
}

static int
s_unhex (const char *hex, uint8_t *out)
{
    if (strlen (hex) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf (hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out [i] = (uint8_t) v;
    }
    return 0;
}

static int
s_balance_add (MDB_txn *txn, MDB_dbi users, const char *user, int64_t delta)
{
    size_t ul = strlen (user);
    char key [600];
    memcpy (key, user, ul);
    key [ul] = 0;
    MDB_val k = {ul + 1, key}, v;
    int64_t balance = 0;
    if (mdb_get (txn, users, &k, &v) == 0 && v.mv_size == 8)
        memcpy (&balance, v.mv_data, 8);
    balance += delta;
    v = (MDB_val){8, &balance};
    return mdb_put (txn, users, &k, &v, 0);
}

int
main (int argc, char **argv)
{
    if (argc < 4) {
        fprintf (stderr,
                 "usage: ledgertool DATA_DIR delete-coin ID | add-coin USER HUNT RULE VALUE OCCURRENCE"
                 " | add-balance USER DELTA\n");
        return 2;
    }
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi coins, coinids, users;
    int rc;
    if ((rc = mdb_env_create (&env)) || !(s_env = env) || (rc = mdb_env_set_maxdbs (env, 16))
        || (rc = mdb_env_set_mapsize (env, 1ULL << 32)) || (rc = mdb_env_open (env, argv [1], 0, 0640)))
        return s_fail ("open", rc);
    if ((rc = mdb_txn_begin (env, NULL, 0, &txn)) || (rc = mdb_dbi_open (txn, "coins", 0, &coins))
        || (rc = mdb_dbi_open (txn, "coinids", 0, &coinids)) || (rc = mdb_dbi_open (txn, "users", 0, &users)))
        return s_fail ("tables", rc);
    trove_board_t *board = trove_board_new (txn, NULL);
    if (!board)
        return s_fail ("board tables", 0);
    if (strcmp (argv [2], "delete-coin") == 0) {
        uint8_t raw [16];
        if (s_unhex (argv [3], raw)) {
            trove_board_destroy (&board);
            return s_fail ("bad coin id", 0);
        }
        MDB_val k = {16, raw}, v;
        if ((rc = mdb_get (txn, coinids, &k, &v)) || v.mv_size != 8) {
            trove_board_destroy (&board);
            return s_fail ("coin not found", rc);
        }
        uint8_t seq [8];
        memcpy (seq, v.mv_data, 8);
        MDB_val ck = {8, seq}, cv;
        Trove__Msg *msg = NULL;
        if ((rc = mdb_get (txn, coins, &ck, &cv))
            || !(msg = trove__msg__unpack (NULL, cv.mv_size, cv.mv_data))
            || msg->body_case != TROVE__MSG__BODY_AWARD) {
            trove__msg__free_unpacked (msg, NULL);
            trove_board_destroy (&board);
            return s_fail ("coin entry", rc);
        }
        const Trove__Coin *coin = msg->award;
        size_t ul = strlen (coin->user);
        char ukey [600];
        memcpy (ukey, coin->user, ul);
        ukey [ul] = 0;
        memcpy (ukey + ul + 1, seq, 8);
        MDB_val uk = {ul + 9, ukey};
        if ((rc = mdb_del (txn, users, &uk, NULL)) || (rc = mdb_del (txn, coins, &ck, NULL))
            || (rc = mdb_del (txn, coinids, &k, NULL))
            || (rc = s_balance_add (txn, users, coin->user, coin->revoked ? coin->value : -coin->value))) {
            trove__msg__free_unpacked (msg, NULL);
            trove_board_destroy (&board);
            return s_fail ("delete", rc);
        }
        //  The entry never was: its boards take it back.
        msg->award->revoked = !msg->award->revoked;
        if (trove_board_add (board, msg->award) || (rc = trove_board_flush (board, txn))) {
            trove__msg__free_unpacked (msg, NULL);
            trove_board_destroy (&board);
            return s_fail ("boards", rc);
        }
        trove__msg__free_unpacked (msg, NULL);
    }
    else if (strcmp (argv [2], "add-coin") == 0 && argc == 8) {
        const char *user = argv [3], *hunt = argv [4], *rule = argv [5], *occ = argv [7];
        int64_t value = atoll (argv [6]);
        char id [TROVE_COIN_ID_LEN + 1];
        trove_hash_coin_id (hunt, rule, user, occ, strlen (occ), id);
        MDB_cursor *cur;
        mdb_cursor_open (txn, coins, &cur);
        MDB_val k, v;
        uint64_t aseq = 1;
        if (mdb_cursor_get (cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
            aseq = trove_get_be64 (k.mv_data) + 1;
        mdb_cursor_close (cur);
        Trove__Coin coin = TROVE__COIN__INIT;
        coin.id = id;
        coin.user = (char *) user;
        coin.hunt = (char *) hunt;
        coin.rule = (char *) rule;
        coin.rule_version = 1;
        coin.value = value;
        coin.reason = "injected";
        coin.aseq = aseq;
        coin.minted_ms = trove_now_ms ();
        Trove__Msg msg = TROVE__MSG__INIT;
        msg.body_case = TROVE__MSG__BODY_AWARD;
        msg.award = &coin;
        uint8_t seq [8], raw [16];
        trove_put_be64 (seq, aseq);
        s_unhex (id, raw);
        MDB_val ck = {8, seq}, cv = {trove__msg__get_packed_size (&msg), NULL};
        if ((rc = mdb_put (txn, coins, &ck, &cv, MDB_RESERVE))) {
            trove_board_destroy (&board);
            return s_fail ("add", rc);
        }
        trove__msg__pack (&msg, cv.mv_data);
        MDB_val ik = {16, raw}, iv = {8, seq};
        size_t ul = strlen (user);
        char ukey [600];
        memcpy (ukey, user, ul);
        ukey [ul] = 0;
        memcpy (ukey + ul + 1, seq, 8);
        MDB_val uk = {ul + 9, ukey}, empty = {0, NULL};
        if ((rc = mdb_put (txn, coinids, &ik, &iv, 0)) || (rc = mdb_put (txn, users, &uk, &empty, 0))
            || (rc = s_balance_add (txn, users, user, value)) || trove_board_add (board, &coin)
            || (rc = trove_board_flush (board, txn))) {
            trove_board_destroy (&board);
            return s_fail ("add", rc);
        }
        printf ("%s\n", id);
    }
    else if (strcmp (argv [2], "add-balance") == 0 && argc == 5) {
        if ((rc = s_balance_add (txn, users, argv [3], atoll (argv [4])))) {
            trove_board_destroy (&board);
            return s_fail ("add-balance", rc);
        }
    }
    else {
        trove_board_destroy (&board);
        return s_fail ("unknown command", 0);
    }
    trove_board_destroy (&board);
    if ((rc = mdb_txn_commit (txn)))
        return s_fail ("commit", rc);
    mdb_env_close (env);
    return 0;
}
