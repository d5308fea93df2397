/*  trove_cfg - the cluster configuration: endpoints, the shard map, sources
    and limits. One file describes the whole cluster (every process reads the
    same file), so the shard map and the endpoints always agree.

    Format: ZPL (ZeroMQ Property Language, czmq zconfig); see etc/trove.cfg
    for a commented example. Partitions are fixed when a cluster is created:
    the user hash maps a user to a partition, the shard map maps partitions to
    scorer shards. Every partition must belong to exactly one shard.

    Caveats: the file is read once at start; a changed shard map needs every
    process restarted (and partition moves, which do not exist yet). */
#ifndef TROVE_CFG_H_INCLUDED
#define TROVE_CFG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_cfg_t trove_cfg_t;

//  Limits every event must respect (docs/events.md).
typedef struct {
    size_t max_source;  //  bytes
    size_t max_id;
    size_t max_user;
    size_t max_type;
    size_t max_attrs;  //  attributes per event
    size_t max_attr_key;
    size_t max_attr_value;    //  bytes of a string value
    size_t max_batch;         //  events per submit request
    size_t max_frame;         //  bytes of one ZeroMQ frame (ZMQ_MAXMSGSIZE)
    int64_t max_past_ms;      //  how far before now ts may be
    int64_t max_future_ms;    //  how far after now ts may be
    size_t max_query_cost;    //  units one query may read (docs/queries.md)
    size_t max_user_history;  //  stored events of a user a re-derive reads (late events, undo)
} trove_limits_t;

//  Load and validate a config file. On error returns NULL and, if err_p is
//  given, a message the caller frees.
trove_cfg_t *trove_cfg_load (const char *path, char **err_p);

//  Destroy; safe on NULL.
void trove_cfg_destroy (trove_cfg_t **self_p);

const trove_limits_t *trove_cfg_limits (const trove_cfg_t *self);
uint32_t trove_cfg_partitions (const trove_cfg_t *self);
size_t trove_cfg_shards (const trove_cfg_t *self);
//  Shard index owning a partition.
size_t trove_cfg_shard_of (const trove_cfg_t *self, uint32_t partition);
//  Shard index of a user (hash, then shard map).
size_t trove_cfg_shard_of_user (const trove_cfg_t *self, const char *user);
const char *trove_cfg_shard_name (const trove_cfg_t *self, size_t shard);
const char *trove_cfg_shard_events (const trove_cfg_t *self, size_t shard);
const char *trove_cfg_shard_query (const trove_cfg_t *self, size_t shard);
const char *trove_cfg_shard_data (const trove_cfg_t *self, size_t shard);
//  The shard's reconciler: its replica directory (`replica`, default the
//  data directory + "-replica"), its control endpoint (`reconcile`, NULL
//  when none) and its run interval (`reconcile_every_s`, default 60; 0:
//  only on request).
const char *trove_cfg_shard_replica (const trove_cfg_t *self, size_t shard);
const char *trove_cfg_shard_reconcile (const trove_cfg_t *self, size_t shard);
long trove_cfg_shard_reconcile_every (const trove_cfg_t *self, size_t shard);

size_t trove_cfg_ingestors (const trove_cfg_t *self);
const char *trove_cfg_ingestor_name (const trove_cfg_t *self, size_t index);
const char *trove_cfg_ingestor_endpoint (const trove_cfg_t *self, size_t index);
//  Index of the ingestor with this name, or -1.
int trove_cfg_ingestor_find (const trove_cfg_t *self, const char *name);

//  Broker: publishers connect to pub (XSUB), subscribers to sub (XPUB);
//  control answers status queries.
const char *trove_cfg_broker_pub (const trove_cfg_t *self);
const char *trove_cfg_broker_sub (const trove_cfg_t *self);
const char *trove_cfg_broker_control (const trove_cfg_t *self);

//  Paths in the file (rules, data) are relative to the config file's folder;
//  these return them resolved.
const char *trove_cfg_rules_dir (const trove_cfg_t *self);

//  Prometheus /metrics address ("127.0.0.1:9100") of a process, or NULL when
//  the config gives none (then the process serves no metrics).
const char *trove_cfg_broker_metrics (const trove_cfg_t *self);
const char *trove_cfg_ingestor_metrics (const trove_cfg_t *self, size_t index);
const char *trove_cfg_shard_metrics (const trove_cfg_t *self, size_t shard);
//  Where an ingestor writes refused messages (trove_deadletter): its
//  `deadletter` path, by default deadletter/NAME.ndjson beside the config.
const char *trove_cfg_ingestor_deadletter (const trove_cfg_t *self, size_t index);
//  LMDB map size for scorers, bytes.
size_t trove_cfg_map_size (const trove_cfg_t *self);
//  "full" (fsync every commit, the default) or "none" (survives a process
//  kill but not an OS crash); see etc/trove.cfg.
bool trove_cfg_sync (const trove_cfg_t *self);

bool trove_cfg_source_known (const trove_cfg_t *self, const char *source);
//  Declared sources: count, name by index, index by name (-1 when unknown).
size_t trove_cfg_sources (const trove_cfg_t *self);
const char *trove_cfg_source_name (const trove_cfg_t *self, size_t index);
int trove_cfg_source_index (const trove_cfg_t *self, const char *source);

//  CURVE between processes (docs/security.md, "CURVE"): trove/curve = yes.
//  Then every server socket is a CURVE server with ZAP domain "trove" that
//  admits the public certificates in the peers folder, and every client
//  knows its server's public key from the config. When on, the load checked
//  that the paths and every server key below are present and well formed.
bool trove_cfg_curve (const trove_cfg_t *self);
//  This host's certificate (czmq zcert; the secret key in the file named
//  like it plus "_secret") and the folder of admitted public certificates,
//  resolved; NULL when CURVE is off.
const char *trove_cfg_curve_cert (const trove_cfg_t *self);
const char *trove_cfg_curve_peers (const trove_cfg_t *self);
//  curve/operator: the certificate trovectl presents (role operator), or
//  NULL: trovectl then presents curve/cert.
const char *trove_cfg_curve_operator (const trove_cfg_t *self);
//  Z85 public keys of the servers: the broker (pub, sub, control), an
//  ingestor (endpoint), a scorer shard (events, query) and its reconciler
//  (reconcile). NULL when CURVE is off.
const char *trove_cfg_broker_curve_key (const trove_cfg_t *self);
const char *trove_cfg_ingestor_curve_key (const trove_cfg_t *self, size_t index);
const char *trove_cfg_shard_curve_key (const trove_cfg_t *self, size_t shard);
const char *trove_cfg_shard_reconcile_key (const trove_cfg_t *self, size_t shard);

//  The `webhooks` section (docs/webhooks.md): what trove-webhooks delivers
//  where. The load checked every value: URLs are http:// or https:// with a
//  host, each endpoint has exactly one of secret (16 characters or more) or
//  secret_file, kinds are known, names are [a-z0-9_-] and unique.
#define TROVE_HOOK_MINT 1u    //  a coin minted (reason scored, reconciled, ...)
#define TROVE_HOOK_REVOKE 2u  //  a coin revoked (undo, reconciled)
#define TROVE_HOOK_KINDS (TROVE_HOOK_MINT | TROVE_HOOK_REVOKE)

typedef struct {
    const char *name;         //  its section name: the delivery ids, cursors and metrics carry it
    const char *url;          //  http[s]://HOST[:PORT]/PATH
    const char *secret;       //  HMAC key, or NULL (then secret_file)
    const char *secret_file;  //  resolved path of a file holding the key, or NULL
    unsigned kinds;           //  TROVE_HOOK_* it wants
    bool from_now;            //  from = now: a new endpoint starts at the stream's present
} trove_cfg_hook_t;

typedef struct {
    const char *data;       //  the daemon's LMDB directory (resolved)
    const char *control;    //  its ROUTER endpoint: status, dead letters, retries
    const char *metrics;    //  its /metrics address, or NULL
    const char *curve_key;  //  Z85 public key of its host (CURVE), or NULL
    bool allow_remote;      //  URLs outside loopback allowed (allow_remote = yes)
    long timeout_ms;        //  one attempt, connect to last byte
    long max_attempts;      //  then the delivery is dead-lettered
    long backoff_ms;        //  delay after the first failure; doubles per attempt
    long backoff_max_ms;    //  cap of the delay
    long max_inflight;      //  concurrent requests per endpoint
    long max_pending;       //  unsettled awards per endpoint before reading stops
    size_t nhooks;          //  endpoints
    const trove_cfg_hook_t *hooks;
} trove_cfg_webhooks_t;

//  The webhooks section, or NULL when the config has none.
const trove_cfg_webhooks_t *trove_cfg_webhooks (const trove_cfg_t *self);
//  A kind's name ("mint", "revoke") and back (0 when unknown).
const char *trove_cfg_hook_kind_name (unsigned kind);
unsigned trove_cfg_hook_kind (const char *name);

//  Any value by path ("trove/partitions"), or def when absent.
const char *trove_cfg_get (const trove_cfg_t *self, const char *path, const char *def);

#ifdef __cplusplus
}
#endif
#endif
