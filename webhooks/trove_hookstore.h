/*  trove_hookstore - what trove-webhooks keeps on disk, in its own LMDB
    environment (webhooks/data): each endpoint's position per shard
    (trove_hookcursor) and the dead letters.

    Writes are grouped: begin, any number of puts and deletes, commit; the
    commit is one LMDB transaction, so a dead letter and the position that
    moved past it are durable together or not at all.

    Dead letter: key the delivery id, value a JSON object (docs/webhooks.md,
    "Dead letters"): id, endpoint, shard, aseq, kind, attempts, error,
    dead_ms, state ("dead" or "retrying"), body (the exact bytes sent).

    Caveats: with trove/sync = full every commit is fsynced (LMDB's
    default); with none it survives a process kill, not an OS crash. A full
    map fails the commit: nothing of the batch is written, and the caller
    keeps what it meant to write and tries again. One process writes (LMDB
    allows readers elsewhere, e.g. mdb_dump). */
#ifndef TROVE_HOOKSTORE_H_INCLUDED
#define TROVE_HOOKSTORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_hookstore_t trove_hookstore_t;

//  Open (creating) the environment in dir. NULL on failure with a message
//  in *err_p (caller frees).
trove_hookstore_t *trove_hookstore_new (const char *dir, size_t map_size, bool sync, char **err_p);
void trove_hookstore_destroy (trove_hookstore_t **self_p);

//  The saved position of an endpoint on a shard, 0 when none.
uint64_t trove_hookstore_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard);
//  1 when a position of the endpoint on the shard was ever saved (a new
//  endpoint has none: 0), -1 when the store cannot be read.
int trove_hookstore_has_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard);

//  A dead letter's JSON text (caller frees), or NULL when there is none.
char *trove_hookstore_dead (trove_hookstore_t *self, const char *id);

//  Call fn for each dead letter in id order (text borrowed for the call);
//  stops when fn returns non-zero. Returns 0, or -1 when the store could
//  not be read.
typedef int (trove_hookstore_fn) (void *arg, const char *id, const char *json);
int trove_hookstore_each_dead (trove_hookstore_t *self, trove_hookstore_fn *fn, void *arg);

//  A write batch. begin returns 0 or -1; the puts and deletes return 0 or
//  -1 (then the batch is doomed: commit aborts it and returns -1); commit
//  returns 0 once everything is durable (as trove/sync says), or -1 with
//  nothing written. Deleting an absent dead letter is not an error.
int trove_hookstore_begin (trove_hookstore_t *self);
int trove_hookstore_set_cursor (trove_hookstore_t *self, const char *endpoint, uint32_t shard,
                                uint64_t through);
int trove_hookstore_put_dead (trove_hookstore_t *self, const char *id, const char *json);
int trove_hookstore_del_dead (trove_hookstore_t *self, const char *id);
int trove_hookstore_commit (trove_hookstore_t *self);

#ifdef __cplusplus
}
#endif
#endif
