/*  trove_outbox - in-flight sub-batches with credit and resend. */
#include "trove_outbox.h"

#include <assert.h>
#include <stdlib.h>

typedef struct {
    trove_outbox_item_t *head, *tail;  //  queued, oldest first
    size_t queued;                     //  items in the queue
    size_t inflight;                   //  events sent and unanswered
} s_shard_t;

struct _trove_outbox_t {
    trove_outbox_item_t **ring;  //  live items by batch_id & mask
    size_t mask;
    size_t live;       //  live items
    uint64_t next_id;  //  last batch_id given
    s_shard_t *shards;
    size_t nshards;
    size_t window;  //  credit per shard, in events
};

trove_outbox_t *
trove_outbox_new (size_t shards, size_t window, size_t capacity)
{
    trove_outbox_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    size_t size = 2;
    while (size < capacity)
        size *= 2;
    self->ring = calloc (size, sizeof *self->ring);
    self->shards = calloc (shards ? shards : 1, sizeof *self->shards);
    if (!self->ring || !self->shards) {
        trove_outbox_destroy (&self);
        return NULL;
    }
    self->mask = size - 1;
    self->nshards = shards;
    self->window = window;
    return self;
}

static void
s_free_item (trove_outbox_item_t *item)
{
    free (item->frame);
    free (item->index);
    free (item);
}

void
trove_outbox_destroy (trove_outbox_t **self_p)
{
    assert (self_p);
    trove_outbox_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->ring && i <= self->mask; i++)
        if (self->ring [i])
            s_free_item (self->ring [i]);
    free (self->ring);
    free (self->shards);
    free (self);
    *self_p = NULL;
}

bool
trove_outbox_full (trove_outbox_t *self)
{
    //  One slot stays free so that an id with a free slot always exists.
    return self->live + 1 >= self->mask + 1;
}

trove_outbox_item_t *
trove_outbox_add (trove_outbox_t *self, size_t shard, size_t events, void *frame, size_t size, void *owner,
                  uint32_t *index, int64_t now_us)
{
    assert (shard < self->nshards);
    if (trove_outbox_full (self))
        return NULL;
    trove_outbox_item_t *item = calloc (1, sizeof *item);
    if (!item)
        return NULL;
    //  Skip ids whose slot is still held by an old, slow item.
    do
        item->batch_id = ++self->next_id;
    while (item->batch_id == 0 || self->ring [item->batch_id & self->mask]);
    item->shard = shard;
    item->events = events;
    item->frame = frame;
    item->size = size;
    item->owner = owner;
    item->index = index;
    item->queued_us = now_us;
    self->ring [item->batch_id & self->mask] = item;
    self->live++;
    s_shard_t *s = &self->shards [shard];
    if (s->tail)
        s->tail->next = item;
    else
        s->head = item;
    s->tail = item;
    s->queued++;
    return item;
}

trove_outbox_item_t *
trove_outbox_next (trove_outbox_t *self, size_t shard)
{
    assert (shard < self->nshards);
    s_shard_t *s = &self->shards [shard];
    //  An item bigger than the whole window still goes out alone.
    if (s->head && (s->inflight == 0 || s->inflight + s->head->events <= self->window))
        return s->head;
    return NULL;
}

static void
s_unqueue (s_shard_t *s, trove_outbox_item_t *item)
{
    trove_outbox_item_t **link = &s->head, *prev = NULL;
    while (*link && *link != item) {
        prev = *link;
        link = &(*link)->next;
    }
    if (!*link)
        return;
    *link = item->next;
    if (s->tail == item)
        s->tail = prev;
    item->next = NULL;
    s->queued--;
}

void
trove_outbox_sent (trove_outbox_t *self, trove_outbox_item_t *item, int64_t now_us)
{
    if (!item->sent_us) {
        s_shard_t *s = &self->shards [item->shard];
        s_unqueue (s, item);
        s->inflight += item->events;
    }
    item->sent_us = now_us ? now_us : 1;
}

trove_outbox_item_t *
trove_outbox_find (trove_outbox_t *self, uint64_t batch_id)
{
    trove_outbox_item_t *item = self->ring [batch_id & self->mask];
    return item && item->batch_id == batch_id ? item : NULL;
}

void
trove_outbox_remove (trove_outbox_t *self, trove_outbox_item_t **item_p)
{
    trove_outbox_item_t *item = *item_p;
    if (!item)
        return;
    s_shard_t *s = &self->shards [item->shard];
    if (item->sent_us)
        s->inflight -= item->events;
    else
        s_unqueue (s, item);
    assert (self->ring [item->batch_id & self->mask] == item);
    self->ring [item->batch_id & self->mask] = NULL;
    self->live--;
    s_free_item (item);
    *item_p = NULL;
}

void
trove_outbox_expire (trove_outbox_t *self, int64_t now_us, int64_t resend_us, int64_t giveup_us,
                     trove_outbox_fn *resend, trove_outbox_fn *giveup, void *arg)
{
    for (size_t i = 0; i <= self->mask && self->live; i++) {
        trove_outbox_item_t *item = self->ring [i];
        if (!item)
            continue;
        if (now_us - item->queued_us > giveup_us)
            giveup (arg, item);
        else if (item->sent_us && now_us - item->sent_us > resend_us << (item->resends < 3 ? item->resends : 3)) {
            item->resends++;
            resend (arg, item);
        }
    }
}

void
trove_outbox_each (trove_outbox_t *self, trove_outbox_fn *fn, void *arg)
{
    for (size_t i = 0; i <= self->mask && self->live; i++)
        if (self->ring [i])
            fn (arg, self->ring [i]);
}

size_t
trove_outbox_live (trove_outbox_t *self)
{
    return self->live;
}
size_t
trove_outbox_inflight (trove_outbox_t *self, size_t shard)
{
    return self->shards [shard].inflight;
}
size_t
trove_outbox_queued (trove_outbox_t *self, size_t shard)
{
    return self->shards [shard].queued;
}
