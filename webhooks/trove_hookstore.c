/*  trove_hookstore - positions and dead letters in LMDB. See
    trove_hookstore.h.

    Tables: "cursors" key ENDPOINT NUL be32(shard) -> be64(through);
    "dead" key the delivery id -> the dead letter's JSON text. */
#include "trove_hookstore.h"
#include "trove_util.h"

#include <assert.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _trove_hookstore_t {
    MDB_env *env;
    MDB_dbi cursors, dead;
    MDB_txn *txn;  //  the write batch, or NULL
    bool doomed;   //  a put of the batch failed: commit aborts
};

trove_hookstore_t *
trove_hookstore_new (const char *dir, size_t map_size, bool sync, char **err_p)
{
    assert (dir);
    trove_hookstore_t *self = calloc (1, sizeof *self);
    int rc = 0;
    MDB_txn *txn = NULL;
    if (!self)
        goto fail;
    if (trove_mkdir_p (dir, 0750)) {
        if (err_p)
            *err_p = trove_strdupf ("cannot make %s", dir);
        goto fail_quiet;
    }
    if ((rc = mdb_env_create (&self->env)) || (rc = mdb_env_set_maxdbs (self->env, 4))
        || (rc = mdb_env_set_mapsize (self->env, map_size))
        || (rc = mdb_env_open (self->env, dir, sync ? 0 : MDB_NOSYNC, 0640)))
        goto fail;
    if (trove_fsync_dir (dir)) {
        if (err_p)
            *err_p = trove_strdupf ("cannot sync %s", dir);
        goto fail_quiet;
    }
    int stale;
    mdb_reader_check (self->env, &stale);
    if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn))
        || (rc = mdb_dbi_open (txn, "cursors", MDB_CREATE, &self->cursors))
        || (rc = mdb_dbi_open (txn, "dead", MDB_CREATE, &self->dead)) || (rc = mdb_txn_commit (txn))) {
        txn = NULL;
        goto fail;
    }
    return self;
fail:
    if (err_p)
        *err_p = trove_strdupf ("cannot open the webhooks store in %s: %s", dir,
                                rc ? mdb_strerror (rc) : "out of memory");
fail_quiet:
    trove_hookstore_destroy (&self);
    return NULL;
}

void
trove_hookstore_destroy (trove_hookstore_t **self_p)
{
    assert (self_p);
    trove_hookstore_t *self = *self_p;
    if (self) {
        if (self->txn)
            mdb_txn_abort (self->txn);
        if (self->env)
            mdb_env_close (self->env);
        free (self);
        *self_p = NULL;
    }
}

//  The cursors key: ENDPOINT NUL be32(shard). Returns its length.
static size_t
s_cursor_key (const char *endpoint, uint32_t shard, uint8_t *key, size_t size)
{
    size_t len = strlen (endpoint);
    assert (len + 5 <= size);
    (void) size;
    memcpy (key, endpoint, len + 1);
    trove_put_be32 (key + len + 1, shard);
    return len + 5;
}

//  A saved position: 1 found (in *through), 0 none, -1 unreadable.
static int
s_cursor_get (trove_hookstore_t *self, const char *endpoint, uint32_t shard, uint64_t *through)
{
    assert (self && endpoint);
    uint8_t k [80];
    MDB_val key = {s_cursor_key (endpoint, shard, k, sizeof k), k}, val;
    MDB_txn *txn;
    *through = 0;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    int rc = mdb_get (txn, self->cursors, &key, &val);
    int found = rc == MDB_NOTFOUND ? 0 : rc || val.mv_size != 8 ? -1 : 1;
    if (found == 1)
        *through = trove_get_be64 (val.mv_data);
    mdb_txn_abort (txn);
    return found;
}

uint64_t
trove_hookstore_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard)
{
    uint64_t through;
    return s_cursor_get (self, endpoint, shard, &through) == 1 ? through : 0;
}

int
trove_hookstore_has_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard)
{
    uint64_t through;
    return s_cursor_get (self, endpoint, shard, &through);
}

char *
trove_hookstore_dead (trove_hookstore_t *self, const char *id)
{
    assert (self && id);
    MDB_val key = {strlen (id), (void *) id}, val;
    MDB_txn *txn;
    char *json = NULL;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return NULL;
    if (mdb_get (txn, self->dead, &key, &val) == 0)
        json = strndup (val.mv_data, val.mv_size);
    mdb_txn_abort (txn);
    return json;
}

int
trove_hookstore_each_dead (trove_hookstore_t *self, trove_hookstore_fn *fn, void *arg)
{
    assert (self && fn);
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    if (mdb_cursor_open (txn, self->dead, &cursor)) {
        mdb_txn_abort (txn);
        return -1;
    }
    int rc = 0;
    MDB_val key, val;
    for (int op = MDB_FIRST; mdb_cursor_get (cursor, &key, &val, op) == 0; op = MDB_NEXT) {
        char *id = strndup (key.mv_data, key.mv_size);
        char *json = strndup (val.mv_data, val.mv_size);
        int stop = id && json ? fn (arg, id, json) : -1;
        free (id);
        free (json);
        if (stop) {
            rc = stop < 0 ? -1 : 0;
            break;
        }
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return rc;
}

int
trove_hookstore_begin (trove_hookstore_t *self)
{
    assert (self && !self->txn);
    self->doomed = false;
    if (mdb_txn_begin (self->env, NULL, 0, &self->txn)) {
        self->txn = NULL;
        return -1;
    }
    return 0;
}

//  One put or delete of the batch: a failure dooms it.
static int
s_batch (trove_hookstore_t *self, int rc)
{
    if (rc && rc != MDB_NOTFOUND) {
        trove_log ('E', "webhooks store: %s", mdb_strerror (rc));
        self->doomed = true;
        return -1;
    }
    return 0;
}

int
trove_hookstore_set_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard, uint64_t through)
{
    assert (self && self->txn && endpoint);
    uint8_t k [80], v [8];
    trove_put_be64 (v, through);
    MDB_val key = {s_cursor_key (endpoint, shard, k, sizeof k), k}, val = {8, v};
    return s_batch (self, mdb_put (self->txn, self->cursors, &key, &val, 0));
}

int
trove_hookstore_put_dead (trove_hookstore_t *self, const char *id, const char *json)
{
    assert (self && self->txn && id && json);
    MDB_val key = {strlen (id), (void *) id}, val = {strlen (json), (void *) json};
    return s_batch (self, mdb_put (self->txn, self->dead, &key, &val, 0));
}

int
trove_hookstore_del_dead (trove_hookstore_t *self, const char *id)
{
    assert (self && self->txn && id);
    MDB_val key = {strlen (id), (void *) id};
    return s_batch (self, mdb_del (self->txn, self->dead, &key, NULL));
}

int
trove_hookstore_commit (trove_hookstore_t *self)
{
    assert (self && self->txn);
    MDB_txn *txn = self->txn;
    self->txn = NULL;
    if (self->doomed) {
        mdb_txn_abort (txn);
        return -1;
    }
    int rc = mdb_txn_commit (txn);
    if (rc) {
        trove_log ('E', "webhooks store commit: %s", mdb_strerror (rc));
        return -1;
    }
    return 0;
}
