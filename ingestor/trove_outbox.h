/*  trove_outbox - what a sender has handed to ZeroMQ but not yet had
    answered: the ingestor's sub-batches to the scorer shards.

    Each item is a packed frame for one shard, kept until the shard answers it
    (or the sender gives up), so it can be resent after a lost connection or a
    restarted shard. Per shard, items wait in a FIFO until the shard's credit
    (events in flight, `window`) allows them out; answers return credit.
    Items are found by batch_id in O(1) (a ring of `capacity` slots).

    Nothing here touches a socket or the clock: the caller sends, and passes
    the time in, which keeps the logic testable.

    Caveats: memory only. The ingestor needs nothing more because the
    producer owns every event until it is answered (docs/protocol.md). */
#ifndef TROVE_OUTBOX_H_INCLUDED
#define TROVE_OUTBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_outbox_t trove_outbox_t;

typedef struct _trove_outbox_item_t trove_outbox_item_t;
struct _trove_outbox_item_t {
    uint64_t batch_id;  //  unique while the item lives; echoed by the receiver
    size_t shard;       //  destination
    size_t events;      //  credit it takes
    void *frame;        //  packed message (owned)
    size_t size;
    void *owner;                //  caller's (the producer request)
    uint32_t *index;            //  caller's: event positions in the request (owned)
    int64_t queued_us;          //  when added
    int64_t sent_us;            //  last send; 0 while queued
    unsigned resends;           //  resends so far (each waits twice as long, up to 8x)
    trove_outbox_item_t *next;  //  shard FIFO link (queued items only)
    int kind;                   //  caller's (what the item is)
};

//  capacity: max live items (rounded up to a power of two). NULL on OOM.
trove_outbox_t *trove_outbox_new (size_t shards, size_t window, size_t capacity);
//  Frees every item left (frames and indexes too). Safe on NULL.
void trove_outbox_destroy (trove_outbox_t **self_p);

//  True when no further item can be added.
bool trove_outbox_full (trove_outbox_t *self);

//  Add an item for a shard, taking ownership of frame and index (freed with
//  the item). Assigns its batch_id. Returns the item, or NULL when full (the
//  caller still owns frame and index).
trove_outbox_item_t *trove_outbox_add (trove_outbox_t *self, size_t shard, size_t events, void *frame,
                                       size_t size, void *owner, uint32_t *index, int64_t now_us);

//  The oldest queued item of a shard if the shard's credit allows it, else NULL.
trove_outbox_item_t *trove_outbox_next (trove_outbox_t *self, size_t shard);
//  The caller sent item (from _next, or a resend): it leaves the queue and
//  takes credit the first time.
void trove_outbox_sent (trove_outbox_t *self, trove_outbox_item_t *item, int64_t now_us);

//  The live item with this batch_id, or NULL (answered, given up, unknown).
trove_outbox_item_t *trove_outbox_find (trove_outbox_t *self, uint64_t batch_id);
//  Forget an item (answered or given up): returns its credit, frees it.
void trove_outbox_remove (trove_outbox_t *self, trove_outbox_item_t **item_p);

//  Walk live items: sent ones unanswered for resend_us go to resend (the
//  caller resends and calls _sent), and each further resend waits twice as
//  long (up to 8 x resend_us): a shard that is slow, not gone, is not
//  buried under copies. Any item older than giveup_us (since it was added)
//  goes to giveup, which must _remove it.
typedef void (trove_outbox_fn) (void *arg, trove_outbox_item_t *item);
void trove_outbox_expire (trove_outbox_t *self, int64_t now_us, int64_t resend_us, int64_t giveup_us,
                          trove_outbox_fn *resend, trove_outbox_fn *giveup, void *arg);

//  Call fn for every live item; fn may remove the item it is given.
void trove_outbox_each (trove_outbox_t *self, trove_outbox_fn *fn, void *arg);

size_t trove_outbox_live (trove_outbox_t *self);
//  Events sent and unanswered for a shard.
size_t trove_outbox_inflight (trove_outbox_t *self, size_t shard);
//  Items waiting for credit or a connection.
size_t trove_outbox_queued (trove_outbox_t *self, size_t shard);

#ifdef __cplusplus
}
#endif
#endif
