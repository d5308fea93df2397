/*  trove_ratelimit - keyed token buckets. */
#include "trove_ratelimit.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_PROBES 8

typedef struct {
    uint64_t tag;   //  keyed hash of the key; 0 = empty slot
    double tokens;  //  tokens at `at_us`
    double rate;    //  refill, tokens/s (as last asked)
    double burst;   //  capacity
    int64_t at_us;  //  when tokens was computed
} s_bucket_t;

struct _trove_ratelimit_t {
    pthread_mutex_t mutex;                    //  guards the table
    s_bucket_t *table;                        //  slots buckets
    size_t mask;                              //  slots - 1
    uint8_t key [crypto_shorthash_KEYBYTES];  //  random per process
};

trove_ratelimit_t *
trove_ratelimit_new (size_t slots)
{
    if (sodium_init () < 0)
        return NULL;
    size_t size = 64;
    while (size < slots && size < ((size_t) 1 << 30))
        size *= 2;
    trove_ratelimit_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = calloc (size, sizeof *self->table);
    if (!self->table) {
        free (self);
        return NULL;
    }
    self->mask = size - 1;
    randombytes_buf (self->key, sizeof self->key);
    pthread_mutex_init (&self->mutex, NULL);
    return self;
}

void
trove_ratelimit_destroy (trove_ratelimit_t **self_p)
{
    assert (self_p);
    trove_ratelimit_t *self = *self_p;
    if (self) {
        pthread_mutex_destroy (&self->mutex);
        free (self->table);
        free (self);
        *self_p = NULL;
    }
}

//  Tokens a bucket holds at now_us.
static double
s_level (const s_bucket_t *b, int64_t now_us)
{
    double level = b->tokens + b->rate * (double) (now_us - b->at_us) / 1e6;
    return level > b->burst ? b->burst : level;
}

//  Is b one of the buckets this request already holds?
static bool
s_held (s_bucket_t *b, s_bucket_t **held, size_t nheld)
{
    for (size_t i = 0; held && i < nheld; i++)
        if (held [i] == b)
            return true;
    return false;
}

//  The bucket of a key: its own slot, a free or idle one in its probe
//  window (claimed, full), or else the window's first slot (shared). A
//  bucket the same request claimed a moment ago looks idle too (its tokens
//  are taken at the end): it is never claimed again.
static s_bucket_t *
s_find (trove_ratelimit_t *self, const trove_ratelimit_ask_t *ask, int64_t now_us, s_bucket_t **held,
        size_t nheld)
{
    uint8_t hash [crypto_shorthash_BYTES];
    crypto_shorthash (hash, (const unsigned char *) ask->key, ask->key_size, self->key);
    uint64_t tag;
    memcpy (&tag, hash, sizeof tag);
    tag |= 1;  //  never 0 (empty)
    s_bucket_t *reuse = NULL;
    for (size_t i = 0; i < S_PROBES; i++) {
        s_bucket_t *b = &self->table [(tag + i) & self->mask];
        if (b->tag == tag)
            return b;
        if (!reuse && (b->tag == 0 || s_level (b, now_us) >= b->burst) && !s_held (b, held, nheld))
            reuse = b;
    }
    if (!reuse)
        return &self->table [tag & self->mask];
    *reuse = (s_bucket_t){
        .tag = tag, .tokens = ask->burst, .rate = ask->rate, .burst = ask->burst, .at_us = now_us};
    return reuse;
}

int
trove_ratelimit_take (trove_ratelimit_t *self, const trove_ratelimit_ask_t *asks, size_t n, int64_t now_us,
                      long *wait_s_p, size_t *which_p)
{
    assert (self);
    assert (asks || n == 0);
    for (size_t i = 0; i < n; i++)
        if (asks [i].rate > 0 && asks [i].tokens > asks [i].burst) {
            if (which_p)
                *which_p = i;
            return 2;
        }
    int rc = 0;
    double wait = 0;
    size_t which = 0;
    s_bucket_t *stack [64];
    s_bucket_t **found = n <= 64 ? stack : malloc (n * sizeof *found);
    pthread_mutex_lock (&self->mutex);
    for (size_t i = 0; i < n; i++) {
        const trove_ratelimit_ask_t *ask = &asks [i];
        if (ask->rate <= 0) {
            if (found)
                found [i] = NULL;
            continue;
        }
        s_bucket_t *b = s_find (self, ask, now_us, found, i);
        //  The config is the same for every ask of a key; a shared bucket
        //  keeps the stricter of two configs.
        double level = s_level (b, now_us);
        b->tokens = level;
        b->at_us = now_us;
        if (ask->rate < b->rate)
            b->rate = ask->rate;
        if (ask->burst < b->burst)
            b->burst = ask->burst, b->tokens = level > ask->burst ? ask->burst : level;
        if (found)
            found [i] = b;
        if (b->tokens < ask->tokens) {
            double need = (ask->tokens - b->tokens) / b->rate;
            if (rc == 0)
                which = i;
            rc = 1;
            if (need > wait)
                wait = need;
        }
    }
    //  Without memory for the list of buckets, take nothing: refuse.
    if (rc == 0 && !found && n)
        rc = 1, wait = 1;
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            if (found [i])
                found [i]->tokens -= asks [i].tokens;
    pthread_mutex_unlock (&self->mutex);
    if (found != stack)
        free (found);
    if (rc == 1) {
        if (wait_s_p) {
            double whole = ceil (wait);
            *wait_s_p = whole < 1 ? 1 : whole > 86400 ? 86400 : (long) whole;
        }
        if (which_p)
            *which_p = which;
    }
    return rc;
}
