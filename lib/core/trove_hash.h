/*  trove_hash - the stable user hash that decides where a user's state lives,
    and the deterministic coin id.

    User -> partition: FNV-1a 64 over the UTF-8 bytes of the user id
    (offset basis 0xcbf29ce484222325, prime 0x100000001b3), then modulo the
    cluster's partition count. It is fixed forever: changing it would move
    every user. Golden vectors live in tests/unit/test_trove_hash.c.

    Coin id: BLAKE2b with a 16-byte digest (libsodium crypto_generichash)
    over "trove-coin-v1" NUL hunt NUL rule NUL user NUL occurrence, printed as
    32 lower-case hex characters. The occurrence key says which achievement
    the coin is for (for an `each` rule: source NUL id of the event), so a
    replay or the reconciler derives the same id. */
#ifndef TROVE_HASH_H_INCLUDED
#define TROVE_HASH_H_INCLUDED

#include "trove.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROVE_COIN_ID_LEN 32

//  FNV-1a 64 of the bytes. Can't fail.
uint64_t trove_hash_fnv1a64 (const void *data, size_t len);

//  Partition of a user for a cluster with `partitions` partitions (> 0).
uint32_t trove_hash_partition (const char *user, size_t len, uint32_t partitions);
//  Partition of an event's identity, (source, id): its shard keeps the
//  claim that makes (source, id) unique cluster-wide. FNV-1a 64 of
//  source NUL id, mod partitions. Can't fail.
uint32_t trove_hash_claim_partition (const char *source, const char *id, uint32_t partitions);

//  Coin id into out (TROVE_COIN_ID_LEN + 1 bytes). occurrence may contain NULs,
//  hence its explicit length. Can't fail.
void trove_hash_coin_id (const char *hunt, const char *rule, const char *user, const void *occurrence,
                         size_t occurrence_len, char *out);

//  Digest of a set of live coins (order does not matter): hex BLAKE2b-128
//  over the lines "id value version source/id,source/id...\n" sorted by id,
//  into out (TROVE_COIN_ID_LEN + 1 bytes). The scorer and the reconciler
//  compare users by it. Returns 0, -1 on OOM.
int trove_hash_coins_digest (Trove__Coin *const *coins, size_t n, char *out);

#ifdef __cplusplus
}
#endif
#endif
