/*  trove_cfg - cluster configuration. */
#include "trove_cfg.h"
#include "trove_hash.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHARDS 256
#define MAX_INGESTORS 64
#define MAX_SOURCES 256
#define MAX_HOOKS 64

typedef struct {
    char *name;       //  section name, e.g. "s0"
    char *events;     //  endpoint the shard binds for ingestor batches
    char *query;      //  endpoint the shard binds for queries
    char *data;       //  LMDB directory
    char *metrics;    //  /metrics address or NULL
    char *replica;    //  reconciler's LMDB directory (resolved, owned)
    char *reconcile;  //  reconciler's control endpoint, or NULL
    long reconcile_every_s;
    char *curve_key;      //  Z85 public key of the scorer's host (CURVE)
    char *reconcile_key;  //  Z85 public key of the reconciler's host
} s_shard_t;

struct _trove_cfg_t {
    zconfig_t *root;        //  parsed file
    trove_limits_t limits;  //  event limits
    uint32_t partitions;    //  fixed partition count
    uint16_t *owner;        //  shard index of each partition
    s_shard_t shards [MAX_SHARDS];
    size_t nshards;  //  number of shards
    char *ingestor_names [MAX_INGESTORS];
    char *ingestor_eps [MAX_INGESTORS];
    char *ingestor_metrics [MAX_INGESTORS];
    char *ingestor_deadletter [MAX_INGESTORS];  //  resolved path (owned)
    char *ingestor_keys [MAX_INGESTORS];        //  Z85 server keys (CURVE)
    size_t ningestors;                          //  number of ingestors
    char *sources [MAX_SOURCES];
    size_t nsources;       //  number of declared sources
    size_t map_size;       //  LMDB map size in bytes
    bool sync;             //  fsync every commit
    char *rules_dir;       //  resolved rules directory
    char *base;            //  folder of the config file
    bool curve;            //  trove/curve = yes
    char *curve_cert;      //  resolved curve/cert (owned)
    char *curve_peers;     //  resolved curve/peers (owned)
    char *curve_operator;  //  resolved curve/operator, or NULL (owned)

    //  The webhooks section (strings borrowed from root unless owned).
    bool has_webhooks;                    //  a webhooks section is present
    trove_cfg_webhooks_t webhooks;        //  its values
    trove_cfg_hook_t hooks [MAX_HOOKS];   //  its endpoints
    char *webhooks_data;                  //  resolved webhooks/data (owned)
    char *hook_secret_files [MAX_HOOKS];  //  resolved secret_file paths (owned)
};

//  path as written in the file, resolved against the config file's folder.
static char *
s_resolve (const trove_cfg_t *self, const char *path)
{
    char *out = NULL;
    if (path [0] == '/' || strcmp (self->base, ".") == 0)
        out = strdup (path);
    else if (asprintf (&out, "%s/%s", self->base, path) < 0)
        out = NULL;
    return out;
}

//  The Z85 public key `key` of section, required when CURVE is on: 40 Z85
//  characters (32 bytes). NULL with *err set when missing or malformed.
static char *
s_curve_key (zconfig_t *node, const char *key, const char *section, char **err)
{
    char *value = zconfig_get (node, key, NULL);
    uint8_t raw [32];
    if (*err)
        return NULL;
    if (!value || !*value)
        *err = trove_strdupf ("%s: missing '%s' (the server's CURVE public key; trove/curve = yes)", section,
                              key);
    else if (strlen (value) != 40 || !zmq_z85_decode (raw, value))
        *err = trove_strdupf ("%s: '%s' is not a CURVE public key (40 Z85 characters)", section, key);
    return *err ? NULL : value;
}

static int
s_parse_u64 (const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v < min || v > max || *text == '-')
        return -1;
    *out = v;
    return 0;
}

//  "0-127,200,300-301" -> marks owner[p] = shard. Returns -1 on syntax error,
//  out-of-range or double assignment (message in err).
static int
s_assign_partitions (trove_cfg_t *self, const char *spec, size_t shard, char **err)
{
    const char *p = spec;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long lo = strtoul (p, &end, 10), hi = lo;
        if (end == p || errno)
            goto bad;
        p = end;
        if (*p == '-') {
            p++;
            hi = strtoul (p, &end, 10);
            if (end == p || errno)
                goto bad;
            p = end;
        }
        if (hi < lo || hi >= self->partitions) {
            *err = trove_strdupf ("scorer %s: partitions '%s' outside 0-%u", self->shards [shard].name, spec,
                                  self->partitions - 1);
            return -1;
        }
        for (unsigned long i = lo; i <= hi; i++) {
            if (self->owner [i] != UINT16_MAX) {
                *err = trove_strdupf ("partition %lu is given to both scorer %s and scorer %s", i,
                                      self->shards [self->owner [i]].name, self->shards [shard].name);
                return -1;
            }
            self->owner [i] = (uint16_t) shard;
        }
        if (*p == ',')
            p++;
        else if (*p)
            goto bad;
    }
    return 0;
bad:
    *err = trove_strdupf ("scorer %s: bad partitions '%s' (want e.g. 0-127,200)", self->shards [shard].name,
                          spec);
    return -1;
}

static const char *
s_need (zconfig_t *node, const char *key, const char *section, char **err)
{
    char *value = zconfig_get (node, key, NULL);
    if (!value || !*value) {
        if (!*err)
            *err = trove_strdupf ("%s: missing '%s'", section, key);
        return NULL;
    }
    return value;
}

//  The `webhooks` section (docs/webhooks.md). Returns 0 (also when there is
//  none), or -1 with *err set.
static int
s_load_webhooks (trove_cfg_t *self, char **err)
{
    zconfig_t *section = zconfig_locate (self->root, "webhooks");
    if (!section)
        return 0;
    trove_cfg_webhooks_t *w = &self->webhooks;
    self->has_webhooks = true;
    self->webhooks_data = s_resolve (self, zconfig_get (section, "data", "webhooks"));
    if (!self->webhooks_data) {
        *err = strdup ("out of memory");
        return -1;
    }
    w->data = self->webhooks_data;
    w->control = s_need (section, "control", "webhooks", err);
    if (!w->control)
        return -1;
    w->metrics = zconfig_get (section, "metrics", NULL);
    const char *remote = zconfig_get (section, "allow_remote", "no");
    if (strcmp (remote, "yes") && strcmp (remote, "no")) {
        *err = trove_strdupf ("webhooks/allow_remote = '%s': want yes or no", remote);
        return -1;
    }
    w->allow_remote = strcmp (remote, "yes") == 0;
    if (self->curve && !(w->curve_key = s_curve_key (section, "curve_key", "webhooks", err)))
        return -1;
    struct {
        const char *key, *def;
        uint64_t min, max;
        long *field;
    } knobs [] = {
        {"timeout_ms", "5000", 100, 600000, &w->timeout_ms},
        {"max_attempts", "8", 1, 1000, &w->max_attempts},
        {"backoff_ms", "500", 1, 3600000, &w->backoff_ms},
        {"backoff_max_ms", "60000", 1, 86400000, &w->backoff_max_ms},
        {"max_inflight", "8", 1, 256, &w->max_inflight},
        {"max_pending", "10000", 1, 10000000, &w->max_pending},
    };
    for (size_t i = 0; i < sizeof knobs / sizeof knobs [0]; i++) {
        const char *text = zconfig_get (section, knobs [i].key, knobs [i].def);
        uint64_t v;
        if (s_parse_u64 (text, knobs [i].min, knobs [i].max, &v)) {
            *err = trove_strdupf ("webhooks/%s = '%s': want an integer in %llu..%llu", knobs [i].key, text,
                                  (unsigned long long) knobs [i].min, (unsigned long long) knobs [i].max);
            return -1;
        }
        *knobs [i].field = (long) v;
    }
    if (w->backoff_max_ms < w->backoff_ms) {
        *err = trove_strdupf ("webhooks: backoff_max_ms %ld is below backoff_ms %ld", w->backoff_max_ms,
                              w->backoff_ms);
        return -1;
    }
    zconfig_t *endpoints = zconfig_locate (section, "endpoint");
    for (zconfig_t *e = endpoints ? zconfig_child (endpoints) : NULL; e; e = zconfig_next (e)) {
        if (w->nhooks == MAX_HOOKS) {
            *err = trove_strdupf ("webhooks: more than %d endpoints", MAX_HOOKS);
            return -1;
        }
        trove_cfg_hook_t *hook = &self->hooks [w->nhooks];
        char where [160];
        snprintf (where, sizeof where, "webhooks/endpoint/%.64s", zconfig_name (e));
        hook->name = zconfig_name (e);
        size_t len = strlen (hook->name);
        bool name_ok = len > 0 && len <= 64;
        for (const char *c = hook->name; *c; c++)
            name_ok &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!name_ok) {
            *err = trove_strdupf ("%s: an endpoint name is 1 to 64 of a-z 0-9 _ -", where);
            return -1;
        }
        for (size_t k = 0; k < w->nhooks; k++)
            if (strcmp (self->hooks [k].name, hook->name) == 0) {
                *err = trove_strdupf ("%s: named twice", where);
                return -1;
            }
        hook->url = s_need (e, "url", where, err);
        if (!hook->url)
            return -1;
        const char *rest = strncmp (hook->url, "http://", 7) == 0  ? hook->url + 7
                         : strncmp (hook->url, "https://", 8) == 0 ? hook->url + 8
                                                                   : NULL;
        if (!rest || !*rest || *rest == '/' || *rest == ':' || strpbrk (hook->url, " \t\r\n@")) {
            *err = trove_strdupf ("%s: url '%s': want http://HOST[:PORT]/PATH or https://... (no user "
                                  "part, no spaces)",
                                  where, hook->url);
            return -1;
        }
        hook->secret = zconfig_get (e, "secret", NULL);
        const char *file = zconfig_get (e, "secret_file", NULL);
        if ((hook->secret != NULL) == (file != NULL)) {
            *err = trove_strdupf ("%s: give exactly one of secret and secret_file", where);
            return -1;
        }
        if (hook->secret && strlen (hook->secret) < 16) {
            *err = trove_strdupf ("%s: secret is shorter than 16 characters", where);
            return -1;
        }
        if (file && !(hook->secret_file = self->hook_secret_files [w->nhooks] = s_resolve (self, file))) {
            *err = strdup ("out of memory");
            return -1;
        }
        const char *kinds = zconfig_get (e, "kinds", "mint,revoke");
        char word [32];
        for (const char *at = kinds; *at;) {
            size_t n = strcspn (at, ",");
            unsigned kind = 0;
            if (n < sizeof word) {
                memcpy (word, at, n);
                word [n] = 0;
                kind = trove_cfg_hook_kind (word);
            }
            if (!kind) {
                *err = trove_strdupf ("%s: kinds '%s': want a comma-separated list of mint, revoke", where,
                                      kinds);
                return -1;
            }
            hook->kinds |= kind;
            at += n + (at [n] == ',');
        }
        if (!hook->kinds) {
            *err = trove_strdupf ("%s: kinds is empty", where);
            return -1;
        }
        //  Where a new endpoint starts (one with no saved position).
        const char *from = zconfig_get (e, "from", "start");
        if (strcmp (from, "start") && strcmp (from, "now")) {
            *err = trove_strdupf ("%s: from '%s': want start (every award ever made) or now", where, from);
            return -1;
        }
        hook->from_now = strcmp (from, "now") == 0;
        w->nhooks++;
    }
    if (w->nhooks == 0) {
        *err = strdup ("webhooks: no endpoint (section webhooks/endpoint/NAME)");
        return -1;
    }
    w->hooks = self->hooks;
    return 0;
}

trove_cfg_t *
trove_cfg_load (const char *path, char **err_p)
{
    char *err = NULL;
    trove_cfg_t *self = calloc (1, sizeof *self);
    if (!self) {
        err = trove_strdupf ("out of memory");
        goto fail;
    }
    //  zconfig_load leaks its file when the text is not valid ZPL: read the
    //  file ourselves and parse the text.
    char *text = trove_read_file (path, NULL);
    if (!text) {
        err = trove_strdupf ("cannot read config %s: %s", path, strerror (errno));
        goto fail;
    }
    const char *slash = strrchr (path, '/');
    self->base = slash ? strndup (path, slash == path ? 1 : (size_t) (slash - path)) : strdup (".");
    if (!self->base) {
        free (text);
        err = trove_strdupf ("out of memory");
        goto fail;
    }
    self->root = zconfig_str_load (text);
    free (text);
    if (!self->root) {
        err = trove_strdupf ("config %s is not valid ZPL (see etc/trove.cfg)", path);
        goto fail;
    }
    self->limits = (trove_limits_t){
        .max_source = 64,
        .max_id = 128,
        .max_user = 128,
        .max_type = 64,
        .max_attrs = 32,
        .max_attr_key = 64,
        .max_attr_value = 256,
        .max_batch = 1000,
        .max_frame = 1024 * 1024,
        .max_past_ms = 366LL * 86400 * 1000,
        .max_future_ms = 5 * 60 * 1000,
        .max_query_cost = 10000,
        .max_user_history = 20000,
    };
    struct {
        const char *key;
        uint64_t min, max;
        void *field;
        bool is_ms;
    } knobs [] = {
        {"limits/max_batch", 1, 100000, &self->limits.max_batch, false},
        {"limits/max_frame", 4096, 64 * 1024 * 1024, &self->limits.max_frame, false},
        {"limits/max_attrs", 0, 1024, &self->limits.max_attrs, false},
        {"limits/max_past_s", 0, 100ULL * 366 * 86400, &self->limits.max_past_ms, true},
        {"limits/max_future_s", 0, 366ULL * 86400, &self->limits.max_future_ms, true},
        {"limits/max_query_cost", 1, 100000000, &self->limits.max_query_cost, false},
        {"limits/max_user_history", 100, 10000000, &self->limits.max_user_history, false},
    };
    for (size_t i = 0; i < sizeof knobs / sizeof knobs [0]; i++) {
        char *text = zconfig_get (self->root, knobs [i].key, NULL);
        if (!text)
            continue;
        uint64_t v;
        if (s_parse_u64 (text, knobs [i].min, knobs [i].max, &v)) {
            err = trove_strdupf ("%s = '%s': want an integer in %llu..%llu", knobs [i].key, text,
                                 (unsigned long long) knobs [i].min, (unsigned long long) knobs [i].max);
            goto fail;
        }
        if (knobs [i].is_ms)
            *(int64_t *) knobs [i].field = (int64_t) v * 1000;
        else
            *(size_t *) knobs [i].field = (size_t) v;
    }
    uint64_t v;
    if (s_parse_u64 (zconfig_get (self->root, "trove/partitions", "256"), 1, 65535, &v)) {
        err = trove_strdupf ("trove/partitions: want an integer in 1..65535");
        goto fail;
    }
    self->partitions = (uint32_t) v;
    if (s_parse_u64 (zconfig_get (self->root, "trove/map_size_mb", "4096"), 1, 1 << 24, &v)) {
        err = trove_strdupf ("trove/map_size_mb: want an integer in 1..16777216");
        goto fail;
    }
    self->map_size = (size_t) v * 1024 * 1024;
    const char *sync = zconfig_get (self->root, "trove/sync", "full");
    if (strcmp (sync, "full") && strcmp (sync, "none")) {
        err = trove_strdupf ("trove/sync = '%s': want full or none", sync);
        goto fail;
    }
    self->sync = strcmp (sync, "full") == 0;
    const char *curve = zconfig_get (self->root, "trove/curve", "no");
    if (strcmp (curve, "yes") && strcmp (curve, "no")) {
        err = trove_strdupf ("trove/curve = '%s': want yes or no", curve);
        goto fail;
    }
    self->curve = strcmp (curve, "yes") == 0;
    if (self->curve) {
        const char *cert = s_need (self->root, "curve/cert", "curve (trove/curve = yes)", &err);
        const char *peers = s_need (self->root, "curve/peers", "curve (trove/curve = yes)", &err);
        if (err)
            goto fail;
        self->curve_cert = s_resolve (self, cert);
        self->curve_peers = s_resolve (self, peers);
        const char *op = zconfig_get (self->root, "curve/operator", NULL);
        if (op && !(self->curve_operator = s_resolve (self, op)))
            err = strdup ("out of memory");
        if (!self->curve_cert || !self->curve_peers) {
            err = strdup ("out of memory");
            goto fail;
        }
    }

    self->owner = malloc (self->partitions * sizeof *self->owner);
    if (!self->owner) {
        err = trove_strdupf ("out of memory");
        goto fail;
    }
    memset (self->owner, 0xff, self->partitions * sizeof *self->owner);
    zconfig_t *scorers = zconfig_locate (self->root, "scorer");
    for (zconfig_t *s = scorers ? zconfig_child (scorers) : NULL; s; s = zconfig_next (s)) {
        if (self->nshards == MAX_SHARDS) {
            err = trove_strdupf ("more than %d scorers", MAX_SHARDS);
            goto fail;
        }
        s_shard_t *shard = &self->shards [self->nshards++];
        char section [128];
        snprintf (section, sizeof section, "scorer/%s", zconfig_name (s));
        shard->name = zconfig_name (s);
        shard->events = (char *) s_need (s, "events", section, &err);
        shard->query = (char *) s_need (s, "query", section, &err);
        const char *data = s_need (s, "data", section, &err);
        shard->data = data ? s_resolve (self, data) : NULL;
        shard->metrics = zconfig_get (s, "metrics", NULL);
        if (shard->data) {
            char fallback [4200];
            snprintf (fallback, sizeof fallback, "%s-replica", shard->data);
            const char *replica = zconfig_get (s, "replica", NULL);
            shard->replica = replica ? s_resolve (self, replica) : strdup (fallback);
        }
        shard->reconcile = zconfig_get (s, "reconcile", NULL);
        shard->reconcile_every_s = atol (zconfig_get (s, "reconcile_every_s", "60"));
        if (shard->reconcile_every_s < 0)
            shard->reconcile_every_s = 60;
        const char *parts = s_need (s, "partitions", section, &err);
        if (err)
            goto fail;
        if (self->curve) {
            shard->curve_key = s_curve_key (s, "curve_key", section, &err);
            if (shard->reconcile)
                shard->reconcile_key = s_curve_key (s, "reconcile_key", section, &err);
            if (err)
                goto fail;
        }
        if (s_assign_partitions (self, parts, self->nshards - 1, &err))
            goto fail;
    }
    if (self->nshards == 0) {
        err = trove_strdupf ("no scorer shards configured (section 'scorer')");
        goto fail;
    }
    for (uint32_t p = 0; p < self->partitions; p++)
        if (self->owner [p] == UINT16_MAX) {
            err = trove_strdupf ("partition %u belongs to no scorer: the shard map must cover 0-%u", p,
                                 self->partitions - 1);
            goto fail;
        }
    zconfig_t *ingestors = zconfig_locate (self->root, "ingestor");
    for (zconfig_t *s = ingestors ? zconfig_child (ingestors) : NULL; s; s = zconfig_next (s)) {
        if (self->ningestors == MAX_INGESTORS) {
            err = trove_strdupf ("more than %d ingestors", MAX_INGESTORS);
            goto fail;
        }
        char section [128];
        snprintf (section, sizeof section, "ingestor/%s", zconfig_name (s));
        self->ingestor_names [self->ningestors] = zconfig_name (s);
        self->ingestor_eps [self->ningestors] = (char *) s_need (s, "endpoint", section, &err);
        self->ingestor_metrics [self->ningestors] = zconfig_get (s, "metrics", NULL);
        if (self->curve)
            self->ingestor_keys [self->ningestors] = s_curve_key (s, "curve_key", section, &err);
        if (err)
            goto fail;
        char fallback [160];
        snprintf (fallback, sizeof fallback, "deadletter/%s.ndjson", zconfig_name (s));
        self->ingestor_deadletter [self->ningestors] =
            s_resolve (self, zconfig_get (s, "deadletter", fallback));
        if (!self->ingestor_deadletter [self->ningestors]) {
            err = strdup ("out of memory");
            goto fail;
        }
        self->ningestors++;
    }
    zconfig_t *sources = zconfig_locate (self->root, "sources");
    for (zconfig_t *s = sources ? zconfig_child (sources) : NULL; s; s = zconfig_next (s)) {
        if (self->nsources == MAX_SOURCES) {
            err = trove_strdupf ("more than %d sources", MAX_SOURCES);
            goto fail;
        }
        if (strcmp (zconfig_name (s), "reconciler") == 0) {
            err = strdup ("source name 'reconciler' is reserved (the reconciler's requests to scorers)");
            goto fail;
        }
        self->sources [self->nsources++] = zconfig_name (s);
    }
    self->rules_dir = s_resolve (self, zconfig_get (self->root, "trove/rules", "rules"));
    if (!self->rules_dir) {
        err = trove_strdupf ("out of memory");
        goto fail;
    }
    if (!s_need (self->root, "broker/pub", "broker", &err)
        || !s_need (self->root, "broker/sub", "broker", &err)
        || !s_need (self->root, "broker/control", "broker", &err))
        goto fail;
    if (self->curve && !s_curve_key (self->root, "broker/curve_key", "broker", &err))
        goto fail;
    if (s_load_webhooks (self, &err))
        goto fail;
    return self;
fail:
    trove_cfg_destroy (&self);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

void
trove_cfg_destroy (trove_cfg_t **self_p)
{
    assert (self_p);
    trove_cfg_t *self = *self_p;
    if (self) {
        zconfig_destroy (&self->root);
        for (size_t i = 0; i < self->nshards; i++) {
            free (self->shards [i].data);
            free (self->shards [i].replica);
        }
        free (self->rules_dir);
        free (self->curve_cert);
        free (self->curve_peers);
        free (self->curve_operator);
        for (size_t i = 0; i < MAX_INGESTORS; i++)
            free (self->ingestor_deadletter [i]);
        free (self->webhooks_data);
        for (size_t i = 0; i < MAX_HOOKS; i++)
            free (self->hook_secret_files [i]);
        free (self->base);
        free (self->owner);
        free (self);
        *self_p = NULL;
    }
}

const trove_limits_t *
trove_cfg_limits (const trove_cfg_t *self)
{
    return &self->limits;
}
uint32_t
trove_cfg_partitions (const trove_cfg_t *self)
{
    return self->partitions;
}
size_t
trove_cfg_shards (const trove_cfg_t *self)
{
    return self->nshards;
}
size_t
trove_cfg_map_size (const trove_cfg_t *self)
{
    return self->map_size;
}
bool
trove_cfg_sync (const trove_cfg_t *self)
{
    return self->sync;
}

size_t
trove_cfg_shard_of (const trove_cfg_t *self, uint32_t partition)
{
    assert (partition < self->partitions);
    return self->owner [partition];
}

size_t
trove_cfg_shard_of_user (const trove_cfg_t *self, const char *user)
{
    return self->owner [trove_hash_partition (user, strlen (user), self->partitions)];
}

const char *
trove_cfg_shard_name (const trove_cfg_t *self, size_t i)
{
    assert (i < self->nshards);
    return self->shards [i].name;
}
const char *
trove_cfg_shard_events (const trove_cfg_t *self, size_t i)
{
    assert (i < self->nshards);
    return self->shards [i].events;
}
const char *
trove_cfg_shard_query (const trove_cfg_t *self, size_t i)
{
    assert (i < self->nshards);
    return self->shards [i].query;
}
const char *
trove_cfg_shard_data (const trove_cfg_t *self, size_t i)
{
    assert (i < self->nshards);
    return self->shards [i].data;
}
size_t
trove_cfg_ingestors (const trove_cfg_t *self)
{
    return self->ningestors;
}
const char *
trove_cfg_ingestor_name (const trove_cfg_t *self, size_t i)
{
    assert (i < self->ningestors);
    return self->ingestor_names [i];
}
const char *
trove_cfg_ingestor_endpoint (const trove_cfg_t *self, size_t i)
{
    assert (i < self->ningestors);
    return self->ingestor_eps [i];
}

int
trove_cfg_ingestor_find (const trove_cfg_t *self, const char *name)
{
    for (size_t i = 0; i < self->ningestors; i++)
        if (strcmp (self->ingestor_names [i], name) == 0)
            return (int) i;
    return -1;
}

const char *
trove_cfg_broker_pub (const trove_cfg_t *self)
{
    return zconfig_get (self->root, "broker/pub", NULL);
}
const char *
trove_cfg_broker_sub (const trove_cfg_t *self)
{
    return zconfig_get (self->root, "broker/sub", NULL);
}
const char *
trove_cfg_broker_control (const trove_cfg_t *self)
{
    return zconfig_get (self->root, "broker/control", NULL);
}
const char *
trove_cfg_rules_dir (const trove_cfg_t *self)
{
    return self->rules_dir;
}

const char *
trove_cfg_broker_metrics (const trove_cfg_t *self)
{
    return zconfig_get (self->root, "broker/metrics", NULL);
}

const char *
trove_cfg_ingestor_metrics (const trove_cfg_t *self, size_t index)
{
    assert (index < self->ningestors);
    return self->ingestor_metrics [index];
}

const char *
trove_cfg_ingestor_deadletter (const trove_cfg_t *self, size_t index)
{
    assert (index < self->ningestors);
    return self->ingestor_deadletter [index];
}

const char *
trove_cfg_shard_replica (const trove_cfg_t *self, size_t shard)
{
    assert (shard < self->nshards);
    return self->shards [shard].replica;
}

const char *
trove_cfg_shard_reconcile (const trove_cfg_t *self, size_t shard)
{
    assert (shard < self->nshards);
    return self->shards [shard].reconcile;
}

long
trove_cfg_shard_reconcile_every (const trove_cfg_t *self, size_t shard)
{
    assert (shard < self->nshards);
    return self->shards [shard].reconcile_every_s;
}

const char *
trove_cfg_shard_metrics (const trove_cfg_t *self, size_t shard)
{
    assert (shard < self->nshards);
    return self->shards [shard].metrics;
}

int
trove_cfg_source_index (const trove_cfg_t *self, const char *source)
{
    for (size_t i = 0; i < self->nsources; i++)
        if (strcmp (self->sources [i], source) == 0)
            return (int) i;
    return -1;
}

bool
trove_cfg_source_known (const trove_cfg_t *self, const char *source)
{
    return trove_cfg_source_index (self, source) >= 0;
}

size_t
trove_cfg_sources (const trove_cfg_t *self)
{
    return self->nsources;
}

const char *
trove_cfg_source_name (const trove_cfg_t *self, size_t index)
{
    assert (index < self->nsources);
    return self->sources [index];
}

const char *
trove_cfg_get (const trove_cfg_t *self, const char *path, const char *def)
{
    return zconfig_get (self->root, path, def);
}

bool
trove_cfg_curve (const trove_cfg_t *self)
{
    assert (self);
    return self->curve;
}

const char *
trove_cfg_curve_cert (const trove_cfg_t *self)
{
    assert (self);
    return self->curve_cert;
}

const char *
trove_cfg_curve_operator (const trove_cfg_t *self)
{
    assert (self);
    return self->curve_operator;
}

const char *
trove_cfg_curve_peers (const trove_cfg_t *self)
{
    assert (self);
    return self->curve_peers;
}

const char *
trove_cfg_broker_curve_key (const trove_cfg_t *self)
{
    assert (self);
    return self->curve ? zconfig_get (self->root, "broker/curve_key", NULL) : NULL;
}

const char *
trove_cfg_ingestor_curve_key (const trove_cfg_t *self, size_t index)
{
    assert (self);
    assert (index < self->ningestors);
    return self->ingestor_keys [index];
}

const char *
trove_cfg_shard_curve_key (const trove_cfg_t *self, size_t shard)
{
    assert (self);
    assert (shard < self->nshards);
    return self->shards [shard].curve_key;
}

const char *
trove_cfg_shard_reconcile_key (const trove_cfg_t *self, size_t shard)
{
    assert (self);
    assert (shard < self->nshards);
    return self->shards [shard].reconcile_key;
}

const trove_cfg_webhooks_t *
trove_cfg_webhooks (const trove_cfg_t *self)
{
    assert (self);
    return self->has_webhooks ? &self->webhooks : NULL;
}

//  The kinds, once: their bits and their names in configs and bodies.
static const struct {
    unsigned kind;
    const char *name;
} s_hook_kinds [] = {
    {TROVE_HOOK_MINT, "mint"},
    {TROVE_HOOK_REVOKE, "revoke"},
};

const char *
trove_cfg_hook_kind_name (unsigned kind)
{
    for (size_t i = 0; i < sizeof s_hook_kinds / sizeof s_hook_kinds [0]; i++)
        if (s_hook_kinds [i].kind == kind)
            return s_hook_kinds [i].name;
    return NULL;
}

unsigned
trove_cfg_hook_kind (const char *name)
{
    for (size_t i = 0; name && i < sizeof s_hook_kinds / sizeof s_hook_kinds [0]; i++)
        if (strcmp (s_hook_kinds [i].name, name) == 0)
            return s_hook_kinds [i].kind;
    return 0;
}
