/*  trove_hookproto - what a webhook receiver sees of a delivery, besides
    its body (docs/webhooks.md): the delivery id, the signature header and
    the retry schedule. Pure functions, no I/O.

    Delivery id: "ENDPOINT.SHARD.ASEQ" (e.g. "billing.0.42"): the endpoint's
    name, the shard index and the award's per-shard sequence number. The
    same award sent to the same endpoint always has the same id, across
    retries and restarts, so a receiver deduplicates on it; no two awards
    share one (an aseq is unique per shard).

    Signature: Trove-Signature: t=TS,v1=HEX where TS is the attempt's Unix
    time in seconds and HEX the lower-case hex of HMAC-SHA256(secret,
    TS "." body). A receiver recomputes it over the raw body and refuses a
    TS too far from its clock (replays). */
#ifndef TROVE_HOOKPROTO_H_INCLUDED
#define TROVE_HOOKPROTO_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest delivery id, with its NUL: 64 + "." + 10 + "." + 20 + 1.
#define TROVE_HOOKPROTO_ID_MAX 100
//  Longest signature header value, with its NUL: "t=" 20 ",v1=" 64.
#define TROVE_HOOKPROTO_SIG_MAX 96

//  Write the delivery id of (endpoint, shard, aseq) into id
//  (TROVE_HOOKPROTO_ID_MAX bytes). Returns 0, or -1 when the endpoint name
//  is too long (nothing useful is written).
int trove_hookproto_id (const char *endpoint, uint32_t shard, uint64_t aseq, char *id);

//  Parse a delivery id back. Returns 0, or -1 when text is not one (then
//  the outputs are untouched). endpoint gets 65 bytes.
int trove_hookproto_id_parse (const char *text, char *endpoint, uint32_t *shard_p, uint64_t *aseq_p);

//  The Trove-Signature value for body at time ts (Unix seconds) into sig
//  (TROVE_HOOKPROTO_SIG_MAX bytes). Can't fail (libsodium is initialised
//  by the caller: sodium_init).
void trove_hookproto_sign (const uint8_t *secret, size_t secret_len, int64_t ts, const char *body,
                           size_t body_len, char *sig);

//  Delay before attempt `failures + 1` after `failures` failed ones
//  (>= 1): base_ms doubled per failure up to cap_ms, then "equal jitter":
//  half of it fixed, the other half scaled by random (0..UINT32_MAX), so
//  receivers that failed together are not retried together, and never
//  sooner than half the schedule. Can't fail.
int64_t trove_hookproto_backoff_ms (long failures, long base_ms, long cap_ms, uint32_t random);

#ifdef __cplusplus
}
#endif
#endif
