/*  trove_api - the read-only HTTP JSON API of the player-facing queries,
    served by the ingestor's HTTP server (the process web back ends already
    talk to for POST /v1/events) through trove_router (docs/queries.md):
      GET /v1/users/{user}/balance
      GET /v1/users/{user}/coins?limit=N&cursor=C
      GET /v1/users/{user}/progress
      GET /v1/coins/{id}
      GET /v1/leaderboards/{hunt}?period=P&limit=N&after=SCORE:USER
      GET /v1/leaderboards/{hunt}/around/{user}?period=P&k=K
      GET /v1/leaderboards/{hunt}/periods?limit=N
      GET /v1/awards/stream?user=U&hunt=H&rule=R&last_event_id=ID
          (Server-Sent Events: ingestor/trove_stream)
    Path segments are percent-decoded one by one (a user "a/b" is
    /v1/users/a%2Fb/balance). Every request needs "Authorization: Bearer
    KEY" with a key of a declared source (401 otherwise, checked first:
    the server's hook, trove_ingest_auth, or here when none ran), with the
    scope of the route (403 forbidden otherwise): users:read for
    /v1/users/..., /v1/coins/... and /v1/awards/stream, boards:read for /v1/leaderboards/...;
    then a read token of the key's source (sources/S/read_rate, read_burst;
    429 rate_limited with scope "read" and Retry-After otherwise). A key
    without admin sees only its own source's events in detail: in a coin's
    "events" and in a coin's provenance, another source's event keeps its
    "source" (and, in provenance, "user", "type", "ts") but its "id" is
    null and its "attrs" are left out.
    Answers: 200 with the JSON of trove_json (what `trovectl ... --json`
    prints); 400 a malformed request (bad_path, bad_user, bad_hunt,
    bad_coin_id, bad_period, bad_param: an unknown or repeated parameter, a
    limit outside 1..1000, k outside 0..100, a bad cursor or after); 404 an
    unknown coin or path, or a user excluded from the boards (excluded);
    422 cost_limit (the query would read more than limits/max_query_cost);
    503 with Retry-After: 1 when a shard does not answer; 500 when a shard
    cannot read its ledger. Handlers run in the HTTP server's threads, each
    with its own router (made at its first request). */
#ifndef TROVE_API_H_INCLUDED
#define TROVE_API_H_INCLUDED
#include "trove_cfg.h"
#include "trove_http.h"
#include "trove_source.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_api_t trove_api_t;

//  The API for cfg's cluster, keys checked against sources. cfg and sources
//  (and every set given to trove_api_set_sources) must outlive the server
//  it is routed on. NULL on failure.
trove_api_t *trove_api_new (const trove_cfg_t *cfg, const trove_sources_t *sources);
//  Destroy after the server is destroyed (its threads hold routers).
void trove_api_destroy (trove_api_t **self_p);
//  Add the GET routes to http (before trove_http_start). Returns 0 or -1.
int trove_api_routes (trove_api_t *self, trove_http_t *http);
//  Check keys against sources from now on (SIGHUP reload; same as
//  trove_ingest_set_sources). Thread-safe; a request already checking its
//  key may still read the previous set, so keep that alive until the server
//  is destroyed (the ingestor frees replaced sets at exit).
void trove_api_set_sources (trove_api_t *self, const trove_sources_t *sources);
//  Only the query arguments named in `allowed` (space-separated; a name
//  must match a whole word), each at most once: true, else false after
//  filling resp with 400 bad_param (naming the parameter when it is short
//  text). Every route of the API checks its arguments with it.
bool trove_api_params (const trove_http_request_t *req, trove_http_response_t *resp, const char *allowed);
//  Check a request for another module's route as these routes check theirs:
//  a key of a source (401), with scope (a TROVE_SCOPE_ bit; 403 forbidden),
//  and a read token of its source (429). Returns the key, or NULL after
//  filling resp with the refusal.
const trove_source_key_t *trove_api_authorize (trove_api_t *self, const trove_http_request_t *req,
                                               trove_http_response_t *resp, unsigned scope);

#ifdef __cplusplus
}
#endif
#endif
