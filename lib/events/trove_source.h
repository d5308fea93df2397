/*  trove_source - what each declared source may do: its keys (HTTP ingest),
    the event types it may send, how far back its `ts` may go, its rate.

    Config (docs/security.md, etc/trove.cfg), under each source name of the
    `sources` section, every knob optional:

        sources
            web
                keys = "blake2b:<64 hex>=events:write blake2b:<64 hex>=users:read+boards:read"
                types = "checkin,visit,purchase"              #  default: any
                max_past_s = 86400       #  backdating window, <= limits/max_past_s
                rate = 1000              #  events/s over HTTP (limits/source_rate)
                burst = 2000             #  (limits/source_burst)
                read_rate = 50           #  GET requests/s (limits/read_rate)
                read_burst = 100         #  (limits/read_burst)

    A key is never in the config, only its hash (BLAKE2b-256 of the key text,
    `trove-ingestor --hash-key` prints it; `--new-key` makes a key): a copied
    config mints nothing. Two keys at once give rotation without downtime
    (add the new one, move the clients, remove the old one). A source
    without keys cannot use HTTP. Per-user limits are global
    (limits/user_rate, limits/user_burst).

    Scopes (docs/security.md, "Key scopes"): after a key's hash, `=` and
    the scopes it has, joined by '+': events:write (POST /v1/events),
    users:read (balance, coins, progress of a user; a coin by id),
    boards:read (leaderboards), admin (all of them, and the details of
    every source's events in what it reads). A key without `=...` keeps
    what keys could do before scopes existed: events:write, users:read and
    boards:read (TROVE_SCOPE_UNSCOPED; the ingestor warns at start).

    Self-contained (nothing borrowed from the config) and thread-safe after
    creation (read-only). */
#ifndef TROVE_SOURCE_H_INCLUDED
#define TROVE_SOURCE_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_sources_t trove_sources_t;

//  Shortest and longest key accepted (printable ASCII, no space).
#define TROVE_SOURCE_KEY_MIN 16
#define TROVE_SOURCE_KEY_MAX 256
//  Text size of a key hash: "blake2b:" + 64 hex + NUL.
#define TROVE_SOURCE_HASH_SIZE 73

//  Limits of one source as configured (defaults applied).
typedef struct {
    const char *name;
    size_t nkeys;                 //  0: this source cannot use HTTP
    int64_t max_past_ms;          //  backdating window
    double rate, burst;           //  events/s and bucket size over HTTP; rate 0: no limit
    double read_rate, read_burst;  //  GET requests/s and bucket size; read_rate 0: no limit
} trove_source_policy_t;

//  Scopes of a key (bits).
#define TROVE_SCOPE_EVENTS_WRITE 1u
#define TROVE_SCOPE_USERS_READ 2u
#define TROVE_SCOPE_BOARDS_READ 4u
#define TROVE_SCOPE_ADMIN 8u
//  What a key without scopes in the config may do (as before scopes).
#define TROVE_SCOPE_UNSCOPED (TROVE_SCOPE_EVENTS_WRITE | TROVE_SCOPE_USERS_READ | TROVE_SCOPE_BOARDS_READ)

//  Who a key is: its source and what it may do.
typedef struct {
    int source;       //  index in the config
    unsigned scopes;  //  TROVE_SCOPE_* (admin implies every other)
    bool scoped;      //  the config gave its scopes (else TROVE_SCOPE_UNSCOPED)
} trove_source_key_t;

//  Read every source's section and the global HTTP limits from cfg. NULL on
//  a bad value (message in *err_p, caller frees): a malformed key hash, an
//  unknown type syntax, a number out of range.
trove_sources_t *trove_sources_new (const trove_cfg_t *cfg, char **err_p);

//  Destroy; safe on NULL.
void trove_sources_destroy (trove_sources_t **self_p);

//  The source whose key this is (its index in the config), or -1 when the
//  key matches no source. Compares in constant time against every key, so
//  the time taken says nothing about which key was near.
int trove_sources_auth (const trove_sources_t *self, const char *key, size_t size);

//  The same, with what the key may do: NULL when it matches no source. The
//  answer lives as long as the sources.
const trove_source_key_t *trove_sources_key (const trove_sources_t *self, const char *key, size_t size);

//  May this key do what scope says? (admin may do everything)
bool trove_source_key_can (const trove_source_key_t *key, unsigned scope);

//  The config's name of one scope bit ("events:write", ...).
const char *trove_source_scope_name (unsigned scope);

//  How many keys have no scopes in the config (for a start-up warning).
size_t trove_sources_unscoped (const trove_sources_t *self);

//  The source's own rules for a valid event of that source (index from
//  trove_cfg_source_index; -1 or out of range: nothing to check). Returns
//  NULL when allowed, else a static reason ("type_not_allowed", "bad_ts")
//  and a sentence in detail.
const char *trove_sources_check (const trove_sources_t *self, int source, const Trove__Event *event,
                                 int64_t now_ms, char *detail, size_t size);

//  Policy of a source by index (asserts index < count).
const trove_source_policy_t *trove_sources_policy (const trove_sources_t *self, size_t index);
size_t trove_sources_count (const trove_sources_t *self);
//  True when both declare the same sources in the same order (so source
//  indices mean the same in both: what a reload may change is keys, types,
//  windows and rates, not the list).
bool trove_sources_same_names (const trove_sources_t *self, const trove_sources_t *other);
//  True when some source has a key (HTTP ingest is usable).
bool trove_sources_any_key (const trove_sources_t *self);

//  Hash of a key as the config spells it ("blake2b:" + hex) into out
//  (TROVE_SOURCE_HASH_SIZE bytes). Returns 0, or -1 when the key is not
//  16..256 printable ASCII characters without spaces.
int trove_source_key_hash (const char *key, size_t size, char *out);

//  A new random key (43 characters: "trk_" + 39 of base64url, 234 bits)
//  into out (at least 64 bytes). Can't fail.
void trove_source_key_new (char *out);

#ifdef __cplusplus
}
#endif
#endif
