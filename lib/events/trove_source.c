/*  trove_source - source policies and keys. */
#include "trove_source.h"
#include "trove_error.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_KEYS 8  //  per source: rotation needs two

typedef struct {
    trove_source_policy_t policy;
    uint8_t keys [S_MAX_KEYS][32];             //  BLAKE2b-256 of each key
    trove_source_key_t key_info [S_MAX_KEYS];  //  who each key is
    char **types;                              //  allowed types, NULL: any
    size_t ntypes;
} s_source_t;

static const struct {
    const char *name;
    unsigned bit;
} s_scopes [] = {{"events:write", TROVE_SCOPE_EVENTS_WRITE},
                 {"users:read", TROVE_SCOPE_USERS_READ},
                 {"boards:read", TROVE_SCOPE_BOARDS_READ},
                 {"admin", TROVE_SCOPE_ADMIN}};
#define S_NSCOPES (sizeof s_scopes / sizeof s_scopes [0])

struct _trove_sources_t {
    s_source_t *sources;  //  in the config's order
    size_t count;
};

static int
s_key_valid (const char *key, size_t size)
{
    if (size < TROVE_SOURCE_KEY_MIN || size > TROVE_SOURCE_KEY_MAX)
        return -1;
    for (size_t i = 0; i < size; i++)
        if (key [i] <= ' ' || key [i] > '~')
            return -1;
    return 0;
}

int
trove_source_key_hash (const char *key, size_t size, char *out)
{
    if (s_key_valid (key, size) || sodium_init () < 0)
        return -1;
    uint8_t hash [32];
    crypto_generichash (hash, sizeof hash, (const unsigned char *) key, size, NULL, 0);
    memcpy (out, "blake2b:", 8);
    trove_hex (hash, sizeof hash, out + 8);
    sodium_memzero (hash, sizeof hash);
    return 0;
}

void
trove_source_key_new (char *out)
{
    if (sodium_init () < 0)
        abort ();  //  no entropy source: nothing safe to do
    uint8_t raw [30];
    randombytes_buf (raw, sizeof raw);
    memcpy (out, "trk_", 4);
    sodium_bin2base64 (out + 4, 60, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out [43] = 0;
    sodium_memzero (raw, sizeof raw);
}

//  A number knob "section/key" in [min, max], or def when absent.
static int
s_number (const trove_cfg_t *cfg, const char *path, double def, double min, double max, double *out,
          char **err)
{
    const char *text = trove_cfg_get (cfg, path, NULL);
    if (!text) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (!*text || *end || errno || !(v >= min && v <= max)) {
        *err = trove_strdupf ("%s = '%s': want a number in %g..%g", path, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

//  "events:write+users:read" (len bytes) into *scopes. Returns 0 or -1.
static int
s_parse_scopes (const char *p, size_t len, unsigned *scopes)
{
    *scopes = 0;
    while (len) {
        size_t n = 0;
        while (n < len && p [n] != '+')
            n++;
        size_t s = 0;
        while (s < S_NSCOPES && (strlen (s_scopes [s].name) != n || strncmp (s_scopes [s].name, p, n) != 0))
            s++;
        if (s == S_NSCOPES)
            return -1;
        *scopes |= s_scopes [s].bit;
        p += n, len -= n;
        if (len) {
            p++, len--;  //  the '+'
            if (!len)
                return -1;
        }
    }
    return *scopes ? 0 : -1;
}

static int
s_parse_keys (s_source_t *src, int index, const char *text, const char *path, char **err)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn (p, " ,");
        size_t hash_len = strcspn (p, " ,=");
        uint8_t bin [32];
        size_t got = 0;
        unsigned scopes = TROVE_SCOPE_UNSCOPED;
        bool scoped = hash_len < len;
        if (scoped && s_parse_scopes (p + hash_len + 1, len - hash_len - 1, &scopes)) {
            *err = trove_strdupf ("%s: after a key's hash, '=' and scopes joined by '+': events:write, "
                                  "users:read, boards:read, admin",
                                  path);
            return -1;
        }
        if (hash_len != 8 + 64 || strncmp (p, "blake2b:", 8) != 0
            || sodium_hex2bin (bin, sizeof bin, p + 8, 64, NULL, &got, NULL) || got != 32) {
            //  Never echo the value: it might be a key pasted by mistake.
            *err = trove_strdupf ("%s: each key must be 'blake2b:' and 64 hex digits, the hash of the key "
                                  "(trove-ingestor --hash-key), never the key itself",
                                  path);
            return -1;
        }
        if (src->policy.nkeys == S_MAX_KEYS) {
            *err = trove_strdupf ("%s: more than %d keys", path, S_MAX_KEYS);
            return -1;
        }
        src->key_info [src->policy.nkeys] = (trove_source_key_t){index, scopes, scoped};
        memcpy (src->keys [src->policy.nkeys++], bin, 32);
        p += len;
    }
    return 0;
}

static int
s_parse_types (s_source_t *src, const char *text, const char *path, char **err)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    src->types = calloc (cap, sizeof *src->types);
    if (!src->types) {
        *err = strdup ("out of memory");
        return -1;
    }
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn (p, " ,");
        if (len > 64 || !trove_utf8_valid (p, len)) {
            *err = trove_strdupf ("%s: bad event type (at most 64 bytes of text)", path);
            return -1;
        }
        src->types [src->ntypes] = strndup (p, len);
        if (!src->types [src->ntypes++]) {
            *err = strdup ("out of memory");
            return -1;
        }
        p += len;
    }
    if (src->ntypes == 0) {
        *err = trove_strdupf ("%s is empty: leave it out to allow every type", path);
        return -1;
    }
    return 0;
}

trove_sources_t *
trove_sources_new (const trove_cfg_t *cfg, char **err_p)
{
    char *err = NULL;
    trove_sources_t *self = calloc (1, sizeof *self);
    size_t n = trove_cfg_sources (cfg);
    if (!self || !(self->sources = calloc (n ? n : 1, sizeof *self->sources))) {
        err = strdup ("out of memory");
        goto fail;
    }
    const trove_limits_t *lim = trove_cfg_limits (cfg);
    double rate, burst, read_rate, read_burst;
    if (s_number (cfg, "limits/source_rate", 1000, 0, 1e9, &rate, &err)
        || s_number (cfg, "limits/source_burst", 2000, 1, 1e9, &burst, &err)
        || s_number (cfg, "limits/read_rate", 50, 0, 1e9, &read_rate, &err)
        || s_number (cfg, "limits/read_burst", 100, 1, 1e9, &read_burst, &err))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        s_source_t *src = &self->sources [i];
        self->count++;
        const char *name = trove_cfg_source_name (cfg, i);
        //  A copy: the sources outlive the config they were read from
        //  (trove-ingestor reloads them on SIGHUP).
        src->policy.name = strdup (name);
        if (!src->policy.name) {
            err = strdup ("out of memory");
            goto fail;
        }
        char path [200];
        snprintf (path, sizeof path, "sources/%s/keys", name);
        const char *keys = trove_cfg_get (cfg, path, NULL);
        if (keys && s_parse_keys (src, (int) i, keys, path, &err))
            goto fail;
        snprintf (path, sizeof path, "sources/%s/types", name);
        const char *types = trove_cfg_get (cfg, path, NULL);
        if (types && s_parse_types (src, types, path, &err))
            goto fail;
        double past;
        snprintf (path, sizeof path, "sources/%s/max_past_s", name);
        if (s_number (cfg, path, (double) lim->max_past_ms / 1000, 0, (double) lim->max_past_ms / 1000, &past,
                      &err))
            goto fail;
        src->policy.max_past_ms = (int64_t) (past * 1000);
        snprintf (path, sizeof path, "sources/%s/rate", name);
        if (s_number (cfg, path, rate, 0, 1e9, &src->policy.rate, &err))
            goto fail;
        snprintf (path, sizeof path, "sources/%s/burst", name);
        if (s_number (cfg, path, burst, 1, 1e9, &src->policy.burst, &err))
            goto fail;
        snprintf (path, sizeof path, "sources/%s/read_rate", name);
        if (s_number (cfg, path, read_rate, 0, 1e9, &src->policy.read_rate, &err))
            goto fail;
        snprintf (path, sizeof path, "sources/%s/read_burst", name);
        if (s_number (cfg, path, read_burst, 1, 1e9, &src->policy.read_burst, &err))
            goto fail;
    }
    return self;
fail:
    trove_sources_destroy (&self);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

void
trove_sources_destroy (trove_sources_t **self_p)
{
    assert (self_p);
    trove_sources_t *self = *self_p;
    if (self) {
        for (size_t i = 0; self->sources && i < self->count; i++) {
            free ((char *) self->sources [i].policy.name);
            for (size_t t = 0; t < self->sources [i].ntypes; t++)
                free (self->sources [i].types [t]);
            free (self->sources [i].types);
            sodium_memzero (self->sources [i].keys, sizeof self->sources [i].keys);
        }
        free (self->sources);
        free (self);
        *self_p = NULL;
    }
}

const trove_source_key_t *
trove_sources_key (const trove_sources_t *self, const char *key, size_t size)
{
    assert (self);
    if (!key || s_key_valid (key, size) || sodium_init () < 0)
        return NULL;
    uint8_t hash [32];
    crypto_generichash (hash, sizeof hash, (const unsigned char *) key, size, NULL, 0);
    const trove_source_key_t *found = NULL;
    //  Every key is compared, whatever matched: no early exit to time.
    for (size_t i = 0; i < self->count; i++)
        for (size_t k = 0; k < self->sources [i].policy.nkeys; k++)
            if (sodium_memcmp (hash, self->sources [i].keys [k], sizeof hash) == 0 && !found)
                found = &self->sources [i].key_info [k];
    sodium_memzero (hash, sizeof hash);
    return found;
}

int
trove_sources_auth (const trove_sources_t *self, const char *key, size_t size)
{
    const trove_source_key_t *found = trove_sources_key (self, key, size);
    return found ? found->source : -1;
}

bool
trove_source_key_can (const trove_source_key_t *key, unsigned scope)
{
    return key && ((key->scopes & TROVE_SCOPE_ADMIN) || (key->scopes & scope) == scope);
}

const char *
trove_source_scope_name (unsigned scope)
{
    for (size_t s = 0; s < S_NSCOPES; s++)
        if (s_scopes [s].bit == scope)
            return s_scopes [s].name;
    return "?";
}

size_t
trove_sources_unscoped (const trove_sources_t *self)
{
    assert (self);
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        for (size_t k = 0; k < self->sources [i].policy.nkeys; k++)
            n += !self->sources [i].key_info [k].scoped;
    return n;
}

const char *
trove_sources_check (const trove_sources_t *self, int source, const Trove__Event *ev, int64_t now_ms,
                     char *detail, size_t size)
{
    assert (self);
    if (source < 0 || (size_t) source >= self->count)
        return NULL;
    const s_source_t *src = &self->sources [source];
    if (src->types) {
        size_t t = 0;
        while (t < src->ntypes && strcmp (src->types [t], ev->type) != 0)
            t++;
        if (t == src->ntypes) {
            snprintf (detail, size, "source '%s' may not send events of type '%s'", src->policy.name,
                      ev->type);
            return trove_strerror (TROVE_E_TYPE_NOT_ALLOWED);
        }
    }
    if (ev->ts_ms < now_ms - src->policy.max_past_ms) {
        snprintf (detail, size, "ts is more than %lld s in the past, the backdating window of source '%s'",
                  (long long) (src->policy.max_past_ms / 1000), src->policy.name);
        return trove_strerror (TROVE_E_BAD_TS);
    }
    return NULL;
}

const trove_source_policy_t *
trove_sources_policy (const trove_sources_t *self, size_t index)
{
    assert (self);
    assert (index < self->count);
    return &self->sources [index].policy;
}

size_t
trove_sources_count (const trove_sources_t *self)
{
    assert (self);
    return self->count;
}

bool
trove_sources_same_names (const trove_sources_t *self, const trove_sources_t *other)
{
    assert (self && other);
    if (self->count != other->count)
        return false;
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->sources [i].policy.name, other->sources [i].policy.name) != 0)
            return false;
    return true;
}

bool
trove_sources_any_key (const trove_sources_t *self)
{
    assert (self);
    for (size_t i = 0; i < self->count; i++)
        if (self->sources [i].policy.nkeys)
            return true;
    return false;
}
