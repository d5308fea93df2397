/*  trove_statecache - decoded rule states kept between engine calls. See
    trove_statecache.h. A hash from "user \x1f hunt" to the entry, and a
    list of the entries, most recently kept first, for eviction. */
#include "trove_statecache.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 600

typedef struct s_entry_t {
    Trove__HuntState *state;
    void *packed;
    size_t size;
    struct s_entry_t *prev, *next;
    char key [];  //  "user \x1f hunt" (the hash keeps a copy of its own)
} s_entry_t;

struct _trove_statecache_t {
    zhashx_t *map;            //  key -> s_entry_t
    s_entry_t *first, *last;  //  most recently kept first
    size_t capacity;
    uint64_t hits, lookups;
};

static void
s_entry_destroy (void **item)
{
    s_entry_t *e = *item;
    if (e) {
        if (e->state)
            trove__hunt_state__free_unpacked (e->state, NULL);
        free (e->packed);
        free (e);
        *item = NULL;
    }
}

trove_statecache_t *
trove_statecache_new (size_t capacity)
{
    assert (capacity >= 1);
    trove_statecache_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (!(self->map = zhashx_new ())) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->map, s_entry_destroy);
    self->capacity = capacity;
    return self;
}

void
trove_statecache_destroy (trove_statecache_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->map);
        free (*self_p);
        *self_p = NULL;
    }
}

static bool
s_key (char *key, const char *user, const char *hunt)
{
    int n = snprintf (key, KEY_MAX, "%s\x1f%s", user, hunt);
    return n > 0 && n < KEY_MAX;
}

static void
s_unlink (trove_statecache_t *self, s_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        self->first = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        self->last = e->prev;
    e->prev = e->next = NULL;
}

//  Drop the entry (unlinked first; the hash's destructor frees it).
static void
s_drop (trove_statecache_t *self, s_entry_t *e)
{
    s_unlink (self, e);
    zhashx_delete (self->map, e->key);
}

Trove__HuntState *
trove_statecache_take (trove_statecache_t *self, const char *user, const char *hunt, const void *data,
                       size_t size)
{
    assert (self);
    char key [KEY_MAX];
    self->lookups++;
    if (!s_key (key, user, hunt))
        return NULL;
    s_entry_t *e = zhashx_lookup (self->map, key);
    if (!e)
        return NULL;
    Trove__HuntState *state = NULL;
    if (e->size == size && memcmp (e->packed, data, size) == 0) {
        state = e->state;
        e->state = NULL;
        self->hits++;
    }
    //  Taken, or stale (the store holds other bytes now): either way the
    //  entry is of no further use.
    s_drop (self, e);
    return state;
}

int
trove_statecache_keep (trove_statecache_t *self, const char *user, const char *hunt, Trove__HuntState *state,
                       void *packed, size_t size)
{
    assert (self && state);
    char key [KEY_MAX];
    s_entry_t *e = NULL;
    size_t klen = s_key (key, user, hunt) ? strlen (key) : 0;
    if (klen && (e = malloc (sizeof *e + klen + 1))) {
        e->state = state;
        e->packed = packed;
        e->size = size;
        e->prev = e->next = NULL;
        memcpy (e->key, key, klen + 1);
        s_entry_t *old = zhashx_lookup (self->map, key);
        if (old)
            s_drop (self, old);
        if (zhashx_insert (self->map, key, e)) {
            free (e);
            e = NULL;
        }
    }
    if (!e) {
        trove__hunt_state__free_unpacked (state, NULL);
        free (packed);
        return -1;
    }
    e->next = self->first;
    if (self->first)
        self->first->prev = e;
    self->first = e;
    if (!self->last)
        self->last = e;
    while (zhashx_size (self->map) > self->capacity)
        s_drop (self, self->last);
    return 0;
}

uint64_t
trove_statecache_hits (const trove_statecache_t *self, uint64_t *lookups_p)
{
    assert (self);
    if (lookups_p)
        *lookups_p = self->lookups;
    return self->hits;
}
