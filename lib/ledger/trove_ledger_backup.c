/*  trove_ledger_backup - consistent copies of a ledger's tables, for
    `trovectl backup` and `trovectl restore`.

    Why the tables alone: the apply thread writes every log record with
    the apply mark in one transaction (trove_ledger.c invariant 2), so any
    read snapshot of the tables is a whole ledger up to its mark; records
    after it are not in the copy at all, never in part. Copying the log as
    well would race with its appends and trims for no gain. */
#include "trove_ledger.h"
#include "trove_util.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_fail (char **err_p, const char *fmt, const char *what, const char *why)
{
    if (err_p)
        *err_p = trove_strdupf (fmt, what, why);
    return -1;
}

//  The mark and counts of an open environment, in one read transaction.
static int
s_info (MDB_env *env, trove_ledger_copy_info_t *info)
{
    MDB_txn *txn;
    MDB_dbi meta, events, coins;
    int rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    memset (info, 0, sizeof *info);
    MDB_stat st;
    MDB_val key = {7, "applied"}, val;
    if ((rc = mdb_dbi_open (txn, "meta", 0, &meta)) || (rc = mdb_dbi_open (txn, "events", 0, &events))
        || (rc = mdb_dbi_open (txn, "coins", 0, &coins)))
        goto done;
    rc = mdb_get (txn, meta, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        info->position = trove_get_be64 (val.mv_data);
    else if (rc == 0)
        rc = MDB_CORRUPTED;
    else if (rc == MDB_NOTFOUND)
        rc = 0;  //  nothing applied yet
    if (rc)
        goto done;
    if ((rc = mdb_stat (txn, events, &st)))
        goto done;
    info->events = st.ms_entries;
    if ((rc = mdb_stat (txn, coins, &st)))
        goto done;
    info->coins = st.ms_entries;
done:
    mdb_txn_abort (txn);
    return rc;
}

static int
s_open (const char *dir, size_t map_size, unsigned flags, MDB_env **env_p)
{
    int rc;
    if ((rc = mdb_env_create (env_p)))
        return rc;
    if ((rc = mdb_env_set_maxdbs (*env_p, 16)) || (map_size && (rc = mdb_env_set_mapsize (*env_p, map_size)))
        || (rc = mdb_env_open (*env_p, dir, flags, 0600))) {
        mdb_env_close (*env_p);
        *env_p = NULL;
    }
    return rc;
}

int
trove_ledger_copy_info (const char *dir, trove_ledger_copy_info_t *info, char **err_p)
{
    char path [4096];
    struct stat st;
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    if (stat (path, &st))
        return s_fail (err_p, "no ledger tables in %s: %s", dir, strerror (errno));
    MDB_env *env;
    int rc = s_open (dir, 0, MDB_RDONLY | MDB_NOLOCK, &env);
    if (rc)
        return s_fail (err_p, "cannot open the ledger tables in %s: %s", dir, mdb_strerror (rc));
    rc = s_info (env, info);
    mdb_env_close (env);
    if (rc)
        return s_fail (err_p, "cannot read the ledger tables in %s: %s", dir,
                       rc == MDB_NOTFOUND ? "not a Trove ledger (no meta, events or coins table)"
                                          : mdb_strerror (rc));
    info->bytes = (uint64_t) st.st_size;
    return 0;
}

int
trove_ledger_copy (const char *dir, size_t map_size, const char *out, trove_ledger_copy_info_t *info,
                   char **err_p)
{
    char path [4096];
    struct stat st;
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    if (stat (path, &st))
        return s_fail (err_p, "no ledger tables in %s: %s", dir, strerror (errno));
    snprintf (path, sizeof path, "%s/data.mdb", out);
    if (stat (path, &st) == 0)
        return s_fail (err_p, "%s already holds a copy (%s)", out, "choose an empty directory");
    if (trove_mkdir_p (out, 0700))
        return s_fail (err_p, "cannot create %s: %s", out, strerror (errno));
    //  Read-only, with the lock file: a live scorer sees us as a reader and
    //  keeps the pages of our snapshot until the copy is done.
    MDB_env *env;
    int rc = s_open (dir, map_size, MDB_RDONLY, &env);
    if (rc)
        return s_fail (err_p, "cannot open the ledger tables in %s: %s", dir, mdb_strerror (rc));
    rc = mdb_env_copy2 (env, out, MDB_CP_COMPACT);
    mdb_env_close (env);
    if (rc)
        return s_fail (err_p, "cannot copy the ledger tables to %s: %s", out, mdb_strerror (rc));
    //  mdb_env_copy2 does not sync: the copy is a backup only once it is
    //  on disk, with its name.
    FILE *f = fopen (path, "r+");
    int synced = f && fflush (f) == 0 && fdatasync (fileno (f)) == 0;
    int saved = errno;
    if (f)
        fclose (f);
    if (!synced || trove_fsync_dir (out)) {
        errno = synced ? errno : saved;
        return s_fail (err_p, "cannot sync the copy in %s: %s", out, strerror (errno));
    }
    return trove_ledger_copy_info (out, info, err_p);
}
