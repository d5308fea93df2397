/*  trovectl backup / restore - consistent copies of the scorers' ledgers
    on this machine, and putting them back.

    A backup is a directory: MANIFEST.json and, per shard, NAME/data.mdb,
    a compacting copy of one read snapshot of the shard's tables
    (trove_ledger_copy), taken while the scorer runs. Each copy is a whole
    ledger at its position (the last log record it holds); shards are
    copied one after the other, so their positions are of slightly
    different instants, as with any per-shard snapshot.

    Restore puts a backup back into a stopped cluster with the same shard
    map. The shard's data directory and its reconciler's replica are moved
    aside (NAME.pre-restore-TIME), never deleted: the replica may hold
    positions past the backup's, so the reconciler starts a fresh one. */
#include "trovectl.h"
#include "trove_ledger.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_FORMAT "trove-backup-1"

const char *const trovectl_backup_help =
    "usage: trovectl backup OUT [--shard NAME] [--json] [--dir DIR | --config FILE]\n"
    "\n"
    "Copy the ledger of every scorer shard whose data directory is on this\n"
    "machine (or only --shard's) into the new directory OUT, while the cluster\n"
    "runs: OUT/NAME/data.mdb is one consistent snapshot of the shard's tables\n"
    "(LMDB's compacting copy, synced), and OUT/MANIFEST.json records each\n"
    "shard's position (its last log record), events and coins, and the shard\n"
    "map. Events accepted after a shard's snapshot are not in its copy.\n"
    "OUT must not exist or must be empty. Exit 1 on any error (OUT is then\n"
    "incomplete: do not restore it).\n";

const char *const trovectl_restore_help =
    "usage: trovectl restore IN [--shard NAME] [--json] [--dir DIR | --config FILE]\n"
    "\n"
    "Put the backup IN (from `trovectl backup`) back: for every shard in it\n"
    "(or only --shard), the shard's data directory and its reconciler's replica\n"
    "are moved aside to PATH.pre-restore-TIME (never deleted) and the shard's\n"
    "copy becomes its ledger. The cluster must be stopped (`trovectl down`) and\n"
    "have the backup's shard map. After `trovectl up` the shard is at the\n"
    "backup's position: events accepted after it are gone until they are\n"
    "sent again (their ids are free again, so a resend is `accepted`).\n";

//  The shard map as text: the shard index of every partition.
static char *
s_shard_map (const trove_cfg_t *cfg)
{
    uint32_t n = trove_cfg_partitions (cfg);
    char *map = calloc ((size_t) n * 4 + 1, 1);
    if (!map)
        return NULL;
    char *p = map;
    for (uint32_t i = 0; i < n; i++)
        p += sprintf (p, "%s%zu", i ? "," : "", trove_cfg_shard_of (cfg, i));
    return map;
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

//  OUT may exist only as an empty directory.
static int
s_check_out (const char *out)
{
    struct stat st;
    if (stat (out, &st) != 0)
        return errno == ENOENT ? 0 : trovectl_fail ("cannot use %s: %s", out, strerror (errno));
    if (!S_ISDIR (st.st_mode))
        return trovectl_fail ("%s exists and is not a directory", out);
    if (rmdir (out) != 0)
        return trovectl_fail ("%s is not empty: a backup goes into a new directory", out);
    return 0;
}

int
trovectl_backup (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("backup wants one directory to write (see trovectl backup --help)");
    const char *out = opts->args [0];
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int rc = 1;
    char *map = s_shard_map (cfg);
    json_t *shards = json_array ();
    if (!map || !shards) {
        trovectl_fail ("out of memory");
        goto done;
    }
    if (opts->shard) {
        bool known = false;
        for (size_t s = 0; s < trove_cfg_shards (cfg); s++)
            known |= strcmp (trove_cfg_shard_name (cfg, s), opts->shard) == 0;
        if (!known) {
            trovectl_fail ("no shard named %s in the config", opts->shard);
            goto done;
        }
    }
    if (s_check_out (out))
        goto done;
    if (trove_mkdir_p (out, 0700)) {
        trovectl_fail ("cannot create %s: %s", out, strerror (errno));
        goto done;
    }
    for (size_t s = 0; s < trove_cfg_shards (cfg); s++) {
        const char *name = trove_cfg_shard_name (cfg, s), *data = trove_cfg_shard_data (cfg, s);
        if (opts->shard && strcmp (opts->shard, name))
            continue;
        char path [4096];
        snprintf (path, sizeof path, "%s/data.mdb", data);
        if (!s_exists (path)) {
            if (opts->shard) {
                trovectl_fail ("shard %s: no ledger in %s on this machine", name, data);
                goto done;
            }
            if (!opts->json)
                printf ("%s: skipped, its data directory %s is not on this machine\n", name, data);
            continue;
        }
        snprintf (path, sizeof path, "%s/%s", out, name);
        trove_ledger_copy_info_t info;
        char *err = NULL;
        if (trove_ledger_copy (data, trove_cfg_map_size (cfg), path, &info, &err)) {
            trovectl_fail ("shard %s: %s", name, err ? err : "out of memory");
            free (err);
            goto done;
        }
        json_array_append_new (shards, json_pack ("{s:s,s:I,s:I,s:I,s:I,s:I}", "name", name, "index",
                                                  (json_int_t) s, "position", (json_int_t) info.position,
                                                  "events", (json_int_t) info.events, "coins",
                                                  (json_int_t) info.coins, "bytes", (json_int_t) info.bytes));
        if (!opts->json)
            printf ("%s: position %llu, %llu events, %llu coin entries, %llu bytes -> %s\n", name,
                    (unsigned long long) info.position, (unsigned long long) info.events,
                    (unsigned long long) info.coins, (unsigned long long) info.bytes, path);
    }
    if (json_array_size (shards) == 0) {
        trovectl_fail ("no shard's ledger is on this machine: nothing to back up");
        rmdir (out);
        goto done;
    }
    char created [40], path [4096];
    trove_format_rfc3339 (trove_now_us () / 1000, created, sizeof created);
    json_t *manifest =
        json_pack ("{s:s,s:s,s:I,s:s,s:O}", "format", S_FORMAT, "created", created, "partitions",
                   (json_int_t) trove_cfg_partitions (cfg), "shard_map", map, "shards", shards);
    char *text = manifest ? json_dumps (manifest, JSON_INDENT (2)) : NULL;
    snprintf (path, sizeof path, "%s/MANIFEST.json", out);
    //  The manifest last: a backup without one is incomplete, and says so.
    if (!text || trovectl_write_file (path, text) || trove_fsync_dir (out))
        trovectl_fail ("cannot write %s: %s", path, strerror (errno));
    else {
        if (opts->json)
            trovectl_print_json (json_incref (manifest));
        else
            printf ("backup complete: %s\n", path);
        rc = 0;
    }
    free (text);
    json_decref (manifest);
done:
    json_decref (shards);
    free (map);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  Copy file from to the new file to, synced.
static int
s_copy_file (const char *from, const char *to)
{
    int in = open (from, O_RDONLY | O_CLOEXEC);
    if (in == -1)
        return -1;
    int out = open (to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out == -1) {
        close (in);
        return -1;
    }
    char buf [1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read (in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write (out, buf + done, (size_t) (n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            done += w;
        }
        if (rc)
            break;
    }
    if (rc == 0)
        rc = fdatasync (out);
    int saved = errno;
    close (in);
    close (out);
    errno = saved;
    return rc;
}

//  Move path aside (PATH.pre-restore-STAMP), if it exists. 0 or -1.
static int
s_move_aside (const char *path, const char *stamp, json_t *moved)
{
    if (!s_exists (path))
        return 0;
    char aside [4096];
    snprintf (aside, sizeof aside, "%s.pre-restore-%s", path, stamp);
    if (rename (path, aside))
        return trovectl_fail ("cannot move %s aside to %s: %s", path, aside, strerror (errno)), -1;
    json_array_append_new (moved, json_string (aside));
    return 0;
}

int
trovectl_restore (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("restore wants the backup directory (see trovectl restore --help)");
    const char *in = opts->args [0];
    char path [4096];
    snprintf (path, sizeof path, "%s/MANIFEST.json", in);
    json_error_t jerr;
    json_t *manifest = json_load_file (path, 0, &jerr);
    if (!manifest)
        return trovectl_fail ("%s is not a complete backup: %s", in, jerr.text);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg) {
        json_decref (manifest);
        return 1;
    }
    int rc = 1;
    char *map = s_shard_map (cfg);
    json_t *shards = json_object_get (manifest, "shards"), *done_list = json_array ();
    const char *format = json_string_value (json_object_get (manifest, "format"));
    const char *their_map = json_string_value (json_object_get (manifest, "shard_map"));
    if (!map || !done_list) {
        trovectl_fail ("out of memory");
        goto done;
    }
    if (!format || strcmp (format, S_FORMAT) || !json_is_array (shards) || !their_map) {
        trovectl_fail ("%s: not a backup of this format (want %s)", path, S_FORMAT);
        goto done;
    }
    if ((uint32_t) json_integer_value (json_object_get (manifest, "partitions")) != trove_cfg_partitions (cfg)
        || strcmp (their_map, map)) {
        trovectl_fail ("the backup's shard map is not this cluster's: restoring it would put users on the "
                       "wrong shards");
        goto done;
    }
    //  Every shard to restore: known here, its copy intact, its scorer down.
    size_t nprocs = 0;
    trovectl_proc_t *procs = trovectl_procs (cfg, &nprocs);
    if (!procs) {
        trovectl_fail ("out of memory");
        goto done;
    }
    trovectl_probe (cfg, procs, nprocs, 1000, 1);
    size_t i;
    json_t *shard;
    bool ok = true, any = false;
    json_array_foreach (shards, i, shard)
    {
        const char *name = json_string_value (json_object_get (shard, "name"));
        size_t index = (size_t) json_integer_value (json_object_get (shard, "index"));
        if (!name || (opts->shard && strcmp (opts->shard, name)))
            continue;
        any = true;
        if (index >= trove_cfg_shards (cfg) || strcmp (trove_cfg_shard_name (cfg, index), name)) {
            ok = !trovectl_fail ("shard %s of the backup is not shard %zu of this cluster", name, index);
            break;
        }
        for (size_t p = 0; p < nprocs; p++)
            if (procs [p].shard == (int) index && procs [p].reply) {
                ok = !trovectl_fail (
                    "shard %s is running (%s answers status): stop the cluster first (trovectl "
                    "down)",
                    name, procs [p].endpoint);
                break;
            }
        snprintf (path, sizeof path, "%s/%s", in, name);
        trove_ledger_copy_info_t info;
        char *err = NULL;
        if (ok && trove_ledger_copy_info (path, &info, &err)) {
            ok = !trovectl_fail ("shard %s: %s", name, err ? err : "out of memory");
            free (err);
        }
        else if (ok
                 && (info.position != (uint64_t) json_integer_value (json_object_get (shard, "position"))
                     || info.events != (uint64_t) json_integer_value (json_object_get (shard, "events"))))
            ok =
                !trovectl_fail ("shard %s: its copy does not match the manifest (position %llu, %llu events)",
                                name, (unsigned long long) info.position, (unsigned long long) info.events);
        if (!ok)
            break;
    }
    trovectl_procs_free (&procs, nprocs);
    if (ok && !any)
        ok = !trovectl_fail ("the backup holds no shard %s", opts->shard ? opts->shard : "at all");
    if (!ok)
        goto done;
    char stamp [40];
    time_t now = time (NULL);
    struct tm tm;
    strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r (&now, &tm));
    json_array_foreach (shards, i, shard)
    {
        const char *name = json_string_value (json_object_get (shard, "name"));
        if (!name || (opts->shard && strcmp (opts->shard, name)))
            continue;
        size_t index = (size_t) json_integer_value (json_object_get (shard, "index"));
        const char *data = trove_cfg_shard_data (cfg, index), *replica = trove_cfg_shard_replica (cfg, index);
        json_t *moved = json_array ();
        char from [4096], to [4096];
        snprintf (from, sizeof from, "%s/%s/data.mdb", in, name);
        snprintf (to, sizeof to, "%s/data.mdb", data);
        if (!moved || s_move_aside (data, stamp, moved)
            || (replica && s_move_aside (replica, stamp, moved))) {
            json_decref (moved);
            goto done;
        }
        if (trove_mkdir_p (data, 0700) || s_copy_file (from, to) || trove_fsync_dir (data)) {
            trovectl_fail ("shard %s: cannot copy %s to %s: %s (what was there is in %s)", name, from, to,
                           strerror (errno), json_string_value (json_array_get (moved, 0)));
            json_decref (moved);
            goto done;
        }
        json_array_append_new (done_list,
                               json_pack ("{s:s,s:O,s:o}", "name", name, "position",
                                          json_object_get (shard, "position"), "moved_aside", moved));
        if (!opts->json) {
            printf ("%s: restored at position %lld", name,
                    (long long) json_integer_value (json_object_get (shard, "position")));
            for (size_t m = 0; m < json_array_size (moved); m++)
                printf ("%s %s", m ? "," : "; moved aside:", json_string_value (json_array_get (moved, m)));
            printf ("\n");
        }
    }
    if (opts->json)
        trovectl_print_json (json_pack ("{s:O}", "restored", done_list));
    rc = 0;
done:
    json_decref (done_list);
    json_decref (manifest);
    free (map);
    trove_cfg_destroy (&cfg);
    return rc;
}
