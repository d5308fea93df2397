/*  trove_statecache - decoded rule states kept between engine calls, so
    that a (user, hunt) state scored again soon is not unpacked again.

    The store (trove_store_t) stays the only truth: a cached state is used
    only when the bytes the store returns are exactly the bytes it was
    packed to when it was saved (compared in full), so a store that changed
    underneath (a discarded batch, a re-derive, another writer) simply
    misses the cache. Nothing needs invalidating.

    The engine takes a state out of the cache when it loads it (the caller
    owns it while scoring) and puts it back with its packed bytes when it
    saves it. At most `capacity` states are kept; the least recently saved
    goes first. One thread at a time.

    Used where the same states come back at once: trove_engine_derive_into
    (one user's events in a row, a cache of one state per hunt) runs 1.6-2x
    faster with it. Not in real time: with users at random, 4,096 cached
    states made bench-engine 2.2x slower (walking trees scattered over the
    heap costs more than unpacking a fresh, compact copy). */
#ifndef TROVE_STATECACHE_H_INCLUDED
#define TROVE_STATECACHE_H_INCLUDED

#include "trove.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_statecache_t trove_statecache_t;

//  The scorer's size: a user active again within about this many (user,
//  hunt) states is not unpacked again. A decoded state is a few KiB.
#define TROVE_STATECACHE_DEFAULT 4096

//  A cache of at most capacity states (>= 1). NULL when out of memory.
trove_statecache_t *trove_statecache_new (size_t capacity);
void trove_statecache_destroy (trove_statecache_t **self_p);

//  The decoded state of (user, hunt) if the cache holds one whose packed
//  form is exactly data/size; NULL otherwise (unpack it). The state leaves
//  the cache: the caller owns it.
Trove__HuntState *trove_statecache_take (trove_statecache_t *self, const char *user, const char *hunt,
                                         const void *data, size_t size);

//  Keep state (taken) as the decoded form of packed/size (taken, malloc'd):
//  both are freed here on failure or on eviction. Returns 0, -1 when out of
//  memory (nothing kept; not an error for the caller's result).
int trove_statecache_keep (trove_statecache_t *self, const char *user, const char *hunt,
                           Trove__HuntState *state, void *packed, size_t size);

//  Lookups that found the state, and all lookups, since new.
uint64_t trove_statecache_hits (const trove_statecache_t *self, uint64_t *lookups_p);

#ifdef __cplusplus
}
#endif
#endif
