/*  bench-raw-lmdb - the ceiling LMDB and the disk set for Trove's scorer on
    this machine: batched write transactions, each committed durably.

    Each transaction puts --batch values of --value bytes under 16-byte keys
    and commits. --keys seq (the default) uses increasing keys, like most of
    a scorer's ledger (event log, award log, dedup keys of producers with
    counters): appends touch few pages, this is LMDB's best case and the
    ceiling. --keys random scatters inserts over the whole B-tree (like coin
    ids, which are hashes): every put dirties its own leaf page. With the default flags every commit is
    fsync'ed (what `sync = full` means for a scorer); --nosync opens the
    environment with MDB_NOSYNC to show what the fsync costs.

    Usage: bench-raw-lmdb [--dir DIR] [--batches N] [--batch B] [--value BYTES]
                          [--keys seq|random] [--seconds S] [--nosync] [--json]
    Without --dir a fresh directory under $TMPDIR (default /tmp) is used and
    removed at the end. Stops after N batches or S seconds, whichever first. */
#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t
s_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  splitmix64: cheap, good enough to scatter keys.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: bench-raw-lmdb [--dir DIR] [--batches N] [--batch B] "
                     "[--value BYTES] [--keys seq|random] [--seconds S] [--nosync] [--json]\n");
}

static void
s_remove_dir (const char *dir)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", dir);
    unlink (path);
    rmdir (dir);
}

int
main (int argc, char *argv [])
{
    const char *dir = NULL;
    size_t batches = 300;
    size_t batch = 1000;
    size_t value_size = 150;
    double max_seconds = 10;
    bool nosync = false;
    bool json = false;
    bool random_keys = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--dir") == 0 && i + 1 < argc)
            dir = argv [++i];
        else if (strcmp (argv [i], "--batches") == 0 && i + 1 < argc)
            batches = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--batch") == 0 && i + 1 < argc)
            batch = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--value") == 0 && i + 1 < argc)
            value_size = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--seconds") == 0 && i + 1 < argc)
            max_seconds = atof (argv [++i]);
        else if (strcmp (argv [i], "--keys") == 0 && i + 1 < argc && strcmp (argv [i + 1], "seq") == 0) {
            random_keys = false;
            i++;
        }
        else if (strcmp (argv [i], "--keys") == 0 && i + 1 < argc && strcmp (argv [i + 1], "random") == 0) {
            random_keys = true;
            i++;
        }
        else if (strcmp (argv [i], "--nosync") == 0)
            nosync = true;
        else if (strcmp (argv [i], "--json") == 0)
            json = true;
        else {
            s_usage ();
            return 2;
        }
    }
    if (batches == 0 || batch == 0 || value_size == 0 || value_size > 65536 || max_seconds <= 0) {
        s_usage ();
        return 2;
    }
    int rc = 1;
    char tmpdir [4096] = "";
    MDB_env *env = NULL;
    MDB_dbi dbi;
    char *value = malloc (value_size);
    if (!value)
        goto cleanup;
    memset (value, 'v', value_size);
    if (!dir) {
        const char *base = getenv ("TMPDIR");
        snprintf (tmpdir, sizeof tmpdir, "%s/bench-raw-lmdb.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp (tmpdir)) {
            fprintf (stderr, "bench-raw-lmdb: mkdtemp: %s\n", strerror (errno));
            tmpdir [0] = 0;
            goto cleanup;
        }
        dir = tmpdir;
    }
    int err;
    if ((err = mdb_env_create (&env)) || (err = mdb_env_set_mapsize (env, (size_t) 4 << 30))
        || (err = mdb_env_open (env, dir, nosync ? MDB_NOSYNC : 0, 0644))) {
        fprintf (stderr, "bench-raw-lmdb: open %s: %s\n", dir, mdb_strerror (err));
        goto cleanup;
    }
    MDB_txn *txn;
    if ((err = mdb_txn_begin (env, NULL, 0, &txn)) || (err = mdb_dbi_open (txn, NULL, 0, &dbi))
        || (err = mdb_txn_commit (txn))) {
        fprintf (stderr, "bench-raw-lmdb: dbi: %s\n", mdb_strerror (err));
        goto cleanup;
    }
    uint64_t state = 42;
    uint64_t counter = 0;
    size_t done = 0;
    int64_t start = s_mono_us ();
    int64_t worst_commit = 0;
    int64_t deadline = start + (int64_t) (max_seconds * 1e6);
    while (done < batches && s_mono_us () < deadline) {
        if ((err = mdb_txn_begin (env, NULL, 0, &txn))) {
            fprintf (stderr, "bench-raw-lmdb: begin: %s\n", mdb_strerror (err));
            goto cleanup;
        }
        for (size_t i = 0; i < batch; i++) {
            //  Big-endian counter first: byte order is numeric order.
            uint64_t k [2];
            if (random_keys) {
                k [0] = s_next (&state);
                k [1] = s_next (&state);
            }
            else {
                k [0] = __builtin_bswap64 (++counter);
                k [1] = 0;
            }
            memcpy (value, k, sizeof k < value_size ? sizeof k : value_size);
            MDB_val key = {sizeof k, k};
            MDB_val data = {value_size, value};
            if ((err = mdb_put (txn, dbi, &key, &data, 0))) {
                fprintf (stderr, "bench-raw-lmdb: put: %s\n", mdb_strerror (err));
                mdb_txn_abort (txn);
                goto cleanup;
            }
        }
        int64_t before = s_mono_us ();
        if ((err = mdb_txn_commit (txn))) {
            fprintf (stderr, "bench-raw-lmdb: commit: %s\n", mdb_strerror (err));
            goto cleanup;
        }
        int64_t took = s_mono_us () - before;
        if (took > worst_commit)
            worst_commit = took;
        done++;
    }
    double seconds = (s_mono_us () - start) / 1e6;
    double puts = (double) (done * batch) / seconds;
    double commits = (double) done / seconds;
    if (json)
        printf (
            "{\"bench\":\"raw_lmdb\",\"keys\":\"%s\",\"sync\":%s,\"batches\":%zu,\"batch\":%zu,\"value\":%zu,"
            "\"seconds\":%.3f,\"puts_per_s\":%.0f,\"commits_per_s\":%.1f,"
            "\"max_commit_ms\":%.3f}\n",
            random_keys ? "random" : "seq", nosync ? "false" : "true", done, batch, value_size, seconds, puts,
            commits, worst_commit / 1e3);
    else
        printf ("raw lmdb (%s keys, %s): %zu commits x %zu puts x %zu B in %.3f s = %.0f puts/s, "
                "%.1f commits/s, slowest commit %.3f ms\n",
                random_keys ? "random" : "sequential", nosync ? "MDB_NOSYNC" : "fsync per commit", done,
                batch, value_size, seconds, puts, commits, worst_commit / 1e3);
    rc = 0;
cleanup:
    if (env)
        mdb_env_close (env);
    if (tmpdir [0])
        s_remove_dir (tmpdir);
    free (value);
    return rc;
}
