/*  trove_hash - user partition hash and coin ids. */
#include "trove_hash.h"
#include "trove_util.h"
#include "trove.pb-c.h"

#include <stdio.h>
#include <stdlib.h>

#include <assert.h>
#include <sodium.h>
#include <string.h>

uint64_t
trove_hash_fnv1a64 (const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p [i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t
trove_hash_partition (const char *user, size_t len, uint32_t partitions)
{
    assert (partitions > 0);
    return (uint32_t) (trove_hash_fnv1a64 (user, len) % partitions);
}

uint32_t
trove_hash_claim_partition (const char *source, const char *id, uint32_t partitions)
{
    assert (partitions > 0);
    //  FNV-1a continues byte by byte: hash source, its NUL, then id.
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = source;; p++) {
        h = (h ^ (uint8_t) *p) * 0x100000001b3ULL;
        if (!*p)
            break;
    }
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t) *p) * 0x100000001b3ULL;
    return (uint32_t) (h % partitions);
}

void
trove_hash_coin_id (const char *hunt, const char *rule, const char *user, const void *occurrence,
                    size_t occurrence_len, char *out)
{
    //  One buffer, one call: made for every coin the engine mints or
    //  replays, and an update per part cost a third of the hash.
    static const char prefix [] = "trove-coin-v1";
    size_t lh = strlen (hunt), lr = strlen (rule), lu = strlen (user);
    size_t size = sizeof prefix + lh + 1 + lr + 1 + lu + 1 + occurrence_len;
    uint8_t stack [512], *buf = size <= sizeof stack ? stack : malloc (size);
    uint8_t digest [16];
    if (buf) {
        uint8_t *p = buf;
        memcpy (p, prefix, sizeof prefix);  //  with its NUL
        p += sizeof prefix;
        memcpy (p, hunt, lh + 1);
        p += lh + 1;
        memcpy (p, rule, lr + 1);
        p += lr + 1;
        memcpy (p, user, lu + 1);
        p += lu + 1;
        if (occurrence_len)
            memcpy (p, occurrence, occurrence_len);
        crypto_generichash (digest, sizeof digest, buf, size, NULL, 0);
        if (buf != stack)
            free (buf);
    }
    else {
        //  Out of memory for a very long key: the same hash part by part.
        crypto_generichash_state state;
        static const uint8_t nul = 0;
        crypto_generichash_init (&state, NULL, 0, 16);
        crypto_generichash_update (&state, (const uint8_t *) prefix, sizeof prefix);
        crypto_generichash_update (&state, (const uint8_t *) hunt, lh);
        crypto_generichash_update (&state, &nul, 1);
        crypto_generichash_update (&state, (const uint8_t *) rule, lr);
        crypto_generichash_update (&state, &nul, 1);
        crypto_generichash_update (&state, (const uint8_t *) user, lu);
        crypto_generichash_update (&state, &nul, 1);
        crypto_generichash_update (&state, occurrence, occurrence_len);
        crypto_generichash_final (&state, digest, sizeof digest);
    }
    trove_hex (digest, sizeof digest, out);
}

static int
s_coin_id_order (const void *a, const void *b)
{
    return strcmp ((*(Trove__Coin *const *) a)->id, (*(Trove__Coin *const *) b)->id);
}

int
trove_hash_coins_digest (Trove__Coin *const *coins, size_t n, char *out)
{
    Trove__Coin **sorted = malloc ((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return -1;
    if (n)
        memcpy (sorted, coins, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_coin_id_order);
    crypto_generichash_state st;
    crypto_generichash_init (&st, NULL, 0, 16);
    for (size_t i = 0; i < n; i++) {
        const Trove__Coin *c = sorted [i];
        char head [96];
        int len = snprintf (head, sizeof head, "%s %lld %u ", c->id, (long long) c->value, c->rule_version);
        crypto_generichash_update (&st, (const unsigned char *) head, (unsigned long long) len);
        for (size_t k = 0; k < c->n_events; k++) {
            if (k)
                crypto_generichash_update (&st, (const unsigned char *) ",", 1);
            crypto_generichash_update (&st, (const unsigned char *) c->events [k]->source,
                                       strlen (c->events [k]->source));
            crypto_generichash_update (&st, (const unsigned char *) "/", 1);
            crypto_generichash_update (&st, (const unsigned char *) c->events [k]->id,
                                       strlen (c->events [k]->id));
        }
        crypto_generichash_update (&st, (const unsigned char *) "\n", 1);
    }
    unsigned char digest [16];
    crypto_generichash_final (&st, digest, sizeof digest);
    trove_hex (digest, sizeof digest, out);
    free (sorted);
    return 0;
}
