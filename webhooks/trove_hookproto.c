/*  trove_hookproto - delivery ids, signatures, retry schedule. See
    trove_hookproto.h. */
#include "trove_hookproto.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
trove_hookproto_id (const char *endpoint, uint32_t shard, uint64_t aseq, char *id)
{
    assert (endpoint && id);
    if (strlen (endpoint) > 64)
        return -1;
    snprintf (id, TROVE_HOOKPROTO_ID_MAX, "%s.%" PRIu32 ".%" PRIu64, endpoint, shard, aseq);
    return 0;
}

//  A decimal number of at most max, all digits, no sign, no leading zero
//  (one spelling per id). Returns 0 or -1.
static int
s_number (const char *text, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && text [0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text [i] < '0' || text [i] > '9')
            return -1;
        unsigned d = (unsigned) (text [i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int
trove_hookproto_id_parse (const char *text, char *endpoint, uint32_t *shard_p, uint64_t *aseq_p)
{
    assert (text && endpoint && shard_p && aseq_p);
    const char *dot1 = strchr (text, '.');
    const char *dot2 = dot1 ? strchr (dot1 + 1, '.') : NULL;
    if (!dot2 || dot1 == text || dot1 - text > 64)
        return -1;
    uint64_t shard, aseq;
    if (s_number (dot1 + 1, (size_t) (dot2 - dot1 - 1), UINT32_MAX, &shard)
        || s_number (dot2 + 1, strlen (dot2 + 1), UINT64_MAX, &aseq))
        return -1;
    memcpy (endpoint, text, (size_t) (dot1 - text));
    endpoint [dot1 - text] = 0;
    *shard_p = (uint32_t) shard;
    *aseq_p = aseq;
    return 0;
}

void
trove_hookproto_sign (const uint8_t *secret, size_t secret_len, int64_t ts, const char *body, size_t body_len,
                      char *sig)
{
    assert (secret && body && sig);
    char stamp [32];
    int stamp_len = snprintf (stamp, sizeof stamp, "%" PRId64 ".", ts);
    crypto_auth_hmacsha256_state state;
    unsigned char mac [crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init (&state, secret, secret_len);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) stamp, (unsigned long long) stamp_len);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) body, body_len);
    crypto_auth_hmacsha256_final (&state, mac);
    char hex [2 * crypto_auth_hmacsha256_BYTES + 1];
    sodium_bin2hex (hex, sizeof hex, mac, sizeof mac);
    snprintf (sig, TROVE_HOOKPROTO_SIG_MAX, "t=%" PRId64 ",v1=%s", ts, hex);
}

int64_t
trove_hookproto_backoff_ms (long failures, long base_ms, long cap_ms, uint32_t random)
{
    assert (failures >= 1 && base_ms >= 1 && cap_ms >= base_ms);
    int64_t delay = base_ms;
    for (long i = 1; i < failures && delay < cap_ms; i++)
        delay *= 2;
    if (delay > cap_ms)
        delay = cap_ms;
    int64_t half = delay / 2;
    return delay - half + (int64_t) ((uint64_t) half * random / UINT32_MAX);
}
