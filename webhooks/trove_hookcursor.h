/*  trove_hookcursor - one webhook endpoint's position in the award stream:
    per shard, the aseq through which every award is settled (delivered
    with a 2xx, dead-lettered, or not of a kind the endpoint wants). That
    position is what trove-webhooks saves, so a restart resumes after it
    and re-sends only awards that were in flight (at-least-once).

    Deliveries of one endpoint run concurrently and settle out of order:
    the position moves only over a settled prefix. Awards must be added in
    aseq order per shard (the award stream's order); gaps in aseq are
    allowed (a later award implies the earlier ones were seen elsewhere).

    Caveats: memory holds one entry per unsettled award: the caller bounds
    it (trove_hookcursor_pending, webhooks/max_pending). */
#ifndef TROVE_HOOKCURSOR_H_INCLUDED
#define TROVE_HOOKCURSOR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_hookcursor_t trove_hookcursor_t;

//  Positions for `shards` shards, each at 0 (nothing settled). NULL on OOM.
trove_hookcursor_t *trove_hookcursor_new (size_t shards);
void trove_hookcursor_destroy (trove_hookcursor_t **self_p);

//  Set a shard's position (the saved one, at start). Only before the
//  shard's first add.
void trove_hookcursor_start (trove_hookcursor_t *self, size_t shard, uint64_t through);

//  An award of the shard arrived. `wanted` false: settled at once (not of
//  the endpoint's kinds). Returns 1 when added (unsettled, the caller
//  delivers it), 0 when settled at once or already at or behind the
//  position (a replay after resume: the caller skips it), -1 on OOM or
//  when aseq does not follow the last one added (nothing changes).
int trove_hookcursor_add (trove_hookcursor_t *self, size_t shard, uint64_t aseq, bool wanted);

//  Settle an added award. Returns 0, or -1 when it is not unsettled here.
int trove_hookcursor_settle (trove_hookcursor_t *self, size_t shard, uint64_t aseq);

//  Every award of the shard up to this aseq is settled.
uint64_t trove_hookcursor_through (const trove_hookcursor_t *self, size_t shard);

//  Unsettled awards, all shards.
size_t trove_hookcursor_pending (const trove_hookcursor_t *self);

#ifdef __cplusplus
}
#endif
#endif
