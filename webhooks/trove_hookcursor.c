/*  trove_hookcursor - settled-prefix positions. See trove_hookcursor.h.

    Invariant (per shard): through < every unsettled aseq <= last, the
    unsettled ones sit in [head, tail) in increasing aseq order, and the
    entry at head is unsettled (settled entries at the head are popped at
    once, moving through). */
#include "trove_hookcursor.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t through;  //  settled through this aseq
    uint64_t last;     //  last aseq added (or through)
    uint64_t *aseqs;   //  entries [head, tail): added, in order
    bool *done;        //  settled flag per entry
    size_t head, tail, cap;
} s_shard_t;

struct _trove_hookcursor_t {
    s_shard_t *shards;
    size_t nshards;
    size_t pending;  //  unsettled entries, all shards
};

trove_hookcursor_t *
trove_hookcursor_new (size_t shards)
{
    trove_hookcursor_t *self = calloc (1, sizeof *self);
    if (!self || !(self->shards = calloc (shards ? shards : 1, sizeof *self->shards))) {
        free (self);
        return NULL;
    }
    self->nshards = shards;
    return self;
}

void
trove_hookcursor_destroy (trove_hookcursor_t **self_p)
{
    assert (self_p);
    trove_hookcursor_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->nshards; i++) {
            free (self->shards [i].aseqs);
            free (self->shards [i].done);
        }
        free (self->shards);
        free (self);
        *self_p = NULL;
    }
}

void
trove_hookcursor_start (trove_hookcursor_t *self, size_t shard, uint64_t through)
{
    assert (self && shard < self->nshards);
    s_shard_t *s = &self->shards [shard];
    assert (s->head == s->tail);
    s->through = s->last = through;
}

//  Pop settled entries at the head; through follows.
static void
s_advance (trove_hookcursor_t *self, s_shard_t *s)
{
    (void) self;
    while (s->head < s->tail && s->done [s->head])
        s->head++;
    s->through = s->head < s->tail ? s->aseqs [s->head] - 1 : s->last;
}

int
trove_hookcursor_add (trove_hookcursor_t *self, size_t shard, uint64_t aseq, bool wanted)
{
    assert (self && shard < self->nshards);
    s_shard_t *s = &self->shards [shard];
    if (aseq <= s->through)
        return 0;
    if (aseq <= s->last)
        return -1;
    if (!wanted) {
        s->last = aseq;
        s_advance (self, s);
        return 0;
    }
    if (s->tail == s->cap) {
        if (s->head > 0) {
            //  Reuse the popped front before growing.
            memmove (s->aseqs, s->aseqs + s->head, (s->tail - s->head) * sizeof *s->aseqs);
            memmove (s->done, s->done + s->head, (s->tail - s->head) * sizeof *s->done);
            s->tail -= s->head;
            s->head = 0;
        }
        if (s->tail == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            uint64_t *aseqs = realloc (s->aseqs, cap * sizeof *aseqs);
            if (!aseqs)
                return -1;
            s->aseqs = aseqs;
            bool *done = realloc (s->done, cap * sizeof *done);
            if (!done)
                return -1;
            s->done = done;
            s->cap = cap;
        }
    }
    s->aseqs [s->tail] = aseq;
    s->done [s->tail++] = false;
    s->last = aseq;
    self->pending++;
    s_advance (self, s);
    return 1;
}

int
trove_hookcursor_settle (trove_hookcursor_t *self, size_t shard, uint64_t aseq)
{
    assert (self && shard < self->nshards);
    s_shard_t *s = &self->shards [shard];
    size_t lo = s->head, hi = s->tail;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->aseqs [mid] < aseq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->tail || s->aseqs [lo] != aseq || s->done [lo])
        return -1;
    s->done [lo] = true;
    self->pending--;
    s_advance (self, s);
    return 0;
}

uint64_t
trove_hookcursor_through (const trove_hookcursor_t *self, size_t shard)
{
    assert (self && shard < self->nshards);
    return self->shards [shard].through;
}

size_t
trove_hookcursor_pending (const trove_hookcursor_t *self)
{
    assert (self);
    return self->pending;
}
