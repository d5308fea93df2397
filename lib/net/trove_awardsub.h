/*  trove_awardsub - the award stream. SUB to the broker, per-shard sequence
    tracking; on a gap, a late join or a heartbeat showing a higher aseq it
    fetches the missing awards from the scorer ("awards" query, through
    trove_client), so the caller sees every award of every shard exactly
    once, in aseq order per shard.

    Caveats: the SUB socket is trove_sock role TROVE_SOCK_REQUEST (linger
    0). Nothing is persisted: a restarted subscriber starts again from its
    `from_now` choice. Callbacks run inside poll and must not call poll or
    destroy. Not thread-safe: one object per thread. */
#ifndef TROVE_AWARDSUB_H_INCLUDED
#define TROVE_AWARDSUB_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_awardsub_t trove_awardsub_t;

//  Called for each award, in aseq order per shard, exactly once.
typedef void (trove_awardsub_fn) (void *arg, const Trove__Coin *coin);

//  Subscribe to the award stream of cfg's cluster. from_now: start after each
//  shard's current last aseq (asked at start, every shard at once, 500 ms, one
//  retry; a shard that does not answer is asked again by poll, or starts at
//  its first award or heartbeat seen); otherwise from aseq 1. cfg is only
//  read here. NULL on failure (bad endpoint, OOM).
trove_awardsub_t *trove_awardsub_new (const trove_cfg_t *cfg, bool from_now, trove_awardsub_fn *fn,
                                      void *arg);
void trove_awardsub_destroy (trove_awardsub_t **self_p);
//  Process what arrived within timeout_ms (and catch up gaps: "awards"
//  queries of 1000, 1 s timeout; an unreachable scorer is retried with a
//  backoff up to 2 s, later awards of that shard wait, nothing is skipped).
//  Returns early once something arrived. Returns 0, or -1 when a signal
//  interrupted the wait.
int trove_awardsub_poll (trove_awardsub_t *self, int timeout_ms);
//  Resume a shard after `last` (its last aseq the caller already has):
//  the next award given is last + 1, fetched from the scorer if it is no
//  longer published. Call before the first poll, on a subscriber made with
//  from_now false (a resumed SSE client, a webhook sender's saved cursor).
//  Returns 0, or -1 for a shard out of range.
int trove_awardsub_resume (trove_awardsub_t *self, size_t shard, uint64_t last);
//  From the callback: give nothing more in this poll, which returns soon
//  (the caller has to stop: its client is gone, it is shutting down). What
//  was not given yet is given by later polls, in order (a catch-up stops
//  between two awards: without this it fetches until level, however far
//  that is). Not sticky: the next poll goes on.
void trove_awardsub_stop (trove_awardsub_t *self);
//  Shards of the cluster (the size of every per-shard position).
size_t trove_awardsub_shards (trove_awardsub_t *self);
//  Last aseq delivered for a shard.
uint64_t trove_awardsub_last (trove_awardsub_t *self, size_t shard);
void *trove_awardsub_socket (trove_awardsub_t *self);

#ifdef __cplusplus
}
#endif
#endif
