/*  trove_ratelimit - token buckets keyed by text (a source, a user), for the
    abuse limits of the HTTP ingest (docs/security.md).

    Each key has a bucket of `burst` tokens refilled at `rate` tokens per
    second; a request takes one token per event. trove_ratelimit_take asks
    several buckets at once (the source and every user of a request) and
    takes from all of them or from none, so a refused request costs nothing
    and can be retried whole after the wait it is told.

    Memory is bounded whatever arrives: buckets live in a fixed table of
    `slots` entries addressed by a keyed hash (SipHash, random key per
    process, so a client cannot aim collisions). A key whose probe window
    (8 slots) is full of busy buckets shares the first one: two users may
    then share a limit, which is stricter, never looser. A bucket that is
    full again (idle long enough) is free for another key.

    Thread-safe (one mutex); a take is a few hash probes. Caveats: memory
    only, so limits restart full with the process; each ingestor limits on
    its own (N ingestors behind a load balancer allow up to N times the
    rate). */
#ifndef TROVE_RATELIMIT_H_INCLUDED
#define TROVE_RATELIMIT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_ratelimit_t trove_ratelimit_t;

//  One bucket asked by a take: key bytes, tokens wanted, and the bucket's
//  rate (tokens/s) and burst (capacity). rate <= 0 means "no limit": the ask
//  always passes and no bucket is used.
typedef struct {
    const char *key;
    size_t key_size;
    double tokens;
    double rate;
    double burst;
} trove_ratelimit_ask_t;

//  A table of at least `slots` buckets (rounded up to a power of two, at
//  least 64). NULL on OOM.
trove_ratelimit_t *trove_ratelimit_new (size_t slots);

//  Destroy; safe on NULL.
void trove_ratelimit_destroy (trove_ratelimit_t **self_p);

//  Take asks [i].tokens from every bucket, all or nothing, at time now_us
//  (monotonic microseconds). Returns 0 when taken. Returns 1 when some
//  bucket is short: nothing is taken, *wait_s_p gets the whole seconds
//  (>= 1) after which every bucket would have enough, *which_p the index of
//  the first short ask. Returns 2 when an ask wants more than its burst (it
//  could never pass: the caller must split the request); *which_p names it.
int trove_ratelimit_take (trove_ratelimit_t *self, const trove_ratelimit_ask_t *asks, size_t n,
                          int64_t now_us, long *wait_s_p, size_t *which_p);

#ifdef __cplusplus
}
#endif
#endif
