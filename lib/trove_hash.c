/*  trove_hash - user partition hash and coin ids. */
#include "trove_hash.h"
#include "trove_util.h"

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

void
trove_hash_coin_id (const char *hunt, const char *rule, const char *user, const void *occurrence,
                    size_t occurrence_len, char *out)
{
    crypto_generichash_state state;
    static const uint8_t nul = 0;
    crypto_generichash_init (&state, NULL, 0, 16);
    crypto_generichash_update (&state, (const uint8_t *) "trove-coin-v1", 13);
    crypto_generichash_update (&state, &nul, 1);
    crypto_generichash_update (&state, (const uint8_t *) hunt, strlen (hunt));
    crypto_generichash_update (&state, &nul, 1);
    crypto_generichash_update (&state, (const uint8_t *) rule, strlen (rule));
    crypto_generichash_update (&state, &nul, 1);
    crypto_generichash_update (&state, (const uint8_t *) user, strlen (user));
    crypto_generichash_update (&state, &nul, 1);
    crypto_generichash_update (&state, occurrence, occurrence_len);
    uint8_t digest [16];
    crypto_generichash_final (&state, digest, sizeof digest);
    trove_hex (digest, sizeof digest, out);
}
