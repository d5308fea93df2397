/*  trove_ingest - HTTP ingest: POST /v1/events for web, mobile and partner
    sources (docs/protocol.md, "HTTP ingest"; docs/security.md).

    One request carries a JSON array of events or NDJSON (one event per
    line), authenticated by `Authorization: Bearer KEY` (trove_source). In
    order (authentication, validation, then rate tokens), a request is
    refused whole, with nothing submitted, when:
      401 the key is missing or matches no source (trove_ingest_auth, the
          HTTP server's hook, before routing);
      413 the body is over limits/max_body (the HTTP server, before this
          handler: give it trove_ingest_max_body);
      403 the key lacks the scope events:write;
      400 a bad Idempotency-Key (bad_idempotency_key);
      422 the Idempotency-Key was used with another body (idempotency_mismatch);
      400 the body is neither a JSON array of objects nor NDJSON, or empty;
      413 it holds more than limits/max_batch events, an event is over
          limits/max_event bytes, or the request needs more tokens than a
          rate-limit bucket can ever hold;
      429 the source's or a user's rate limit has not enough tokens now
          (`Retry-After` says when it will). The source pays a token for
          every event of the request, a user only for its events that pass
          the checks below: rejected events cost no user anything.
    Otherwise every event gets a result, in order: events that do not parse,
    name another source than the key's, or fail the checks every producer's
    events get (trove_event_check: fields, ts window; trove_sources_check:
    allowed types, backdating window) are rejected here (`bad_json`,
    `source_mismatch`, `type_not_allowed`, `bad_ts`, ...); the others are
    submitted through the same path as ZeroMQ producers (the ingestor's own
    ROUTER over inproc), so `accepted` means the owning scorer committed
    it. Answer 200:
      {"results":[{"index":0,"id":"e-1","status":"accepted"},
                  {"index":1,"id":"e-2","status":"rejected","reason":"type_not_allowed","detail":"..."}],
       "accepted":1,"duplicate":0,"rejected":1,"retry":0}
    RETRY answers from the cluster are resubmitted (same req_id) for up to
    10 s; what is still `retry` then is answered so, with `Retry-After: 1`.
    An `Idempotency-Key` header makes the req_id a hash of (source, key,
    body), so a client that lost an answer and resends the same body with
    the same key is told `accepted` rather than `duplicate`; the ingestor
    remembers the body's hash of the last 16,384 keys for 24 h and answers
    a reuse with another body 422 `idempotency_mismatch` (past that memory,
    or on another ingestor, such a reuse gets a req_id of its own: its
    events are answered on their merits, never a false `accepted`).

    Thread-safe: the handler runs in the HTTP server's threads. Caveats: the
    rate limits are per ingestor and in memory (trove_ratelimit). A handler
    blocks its HTTP thread until the cluster answers (at most ~10 s). */
#ifndef TROVE_INGEST_H_INCLUDED
#define TROVE_INGEST_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"
#include "trove_http.h"
#include "trove_metrics.h"
#include "trove_source.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_ingest_t trove_ingest_t;

//  The answer for one event.
typedef struct {
    int status;  //  Trove__Status
    char reason [40];
    char detail [200];
} trove_ingest_result_t;

//  Where valid events go: submit events [0..n) under req_id and fill one
//  result per event, in order. May block. Used by tests and fuzz targets;
//  the ingestor uses the inproc endpoint instead.
typedef void (trove_ingest_submit_fn) (void *arg, uint64_t req_id, Trove__Event **events, size_t n,
                                       trove_ingest_result_t *results);

//  The HTTP limits from cfg (defaults in docs/security.md).
typedef struct {
    size_t max_body;    //  bytes of a request body (limits/max_body, default limits/max_frame)
    size_t max_event;   //  bytes of one event (limits/max_event, default 16384)
    size_t max_batch;   //  events per request (limits/max_batch)
    double user_rate;   //  events/s per user (limits/user_rate, default 10; 0: no limit)
    double user_burst;  //  (limits/user_burst, default 200)
} trove_ingest_limits_t;

//  Read the HTTP limits. Returns 0, or -1 with a message in *err_p.
int trove_ingest_limits (const trove_cfg_t *cfg, trove_ingest_limits_t *limits, char **err_p);

//  An ingest handler submitting to `endpoint` (the ingestor's inproc
//  ROUTER endpoint) or, when endpoint is NULL, through fn. cfg and sources
//  are borrowed and must outlive it; metrics (optional) gets the request
//  counters. NULL on a bad limit (message in *err_p) or OOM.
trove_ingest_t *trove_ingest_new (const trove_cfg_t *cfg, const trove_sources_t *sources,
                                  const char *endpoint, trove_ingest_submit_fn *fn, void *arg,
                                  trove_metrics_t *metrics, char **err_p);

//  Use other sources from now on (keys, types, windows, rates: a reload,
//  e.g. after a key rotation). Borrowed: the caller keeps the previous ones
//  alive until trove_ingest_destroy, since a handler in progress may still
//  read them. The new ones must declare the same sources in the same order
//  (trove_sources_same_names; asserted).
void trove_ingest_set_sources (trove_ingest_t *self, const trove_sources_t *sources);

//  Make handlers in progress give up waiting (their events are answered
//  `retry`) and new ones answer 503: call before stopping the server.
void trove_ingest_stop (trove_ingest_t *self);

//  Destroy (after the HTTP server stopped); safe on NULL.
void trove_ingest_destroy (trove_ingest_t **self_p);

//  The POST /v1/events handler (arg: the trove_ingest_t). Uses
//  req->principal when the server authenticated (trove_ingest_auth), else
//  checks the key itself.
void trove_ingest_handle (void *arg, const trove_http_request_t *req, trove_http_response_t *resp);

//  The HTTP server's authentication hook (trove_http_set_auth, arg: the
//  trove_ingest_t): the key's trove_source_key_t from the sources now in
//  force, or NULL after a 401. Keys of every route (events and queries).
const void *trove_ingest_auth (void *arg, const trove_http_request_t *req, trove_http_response_t *resp);

//  The body limit to give trove_http_new.
size_t trove_ingest_max_body (const trove_ingest_t *self);

//  ---------------------------------------------------------------------------
//  Body decoding, public for tests and fuzzing.

typedef struct {
    Trove__Event *event;  //  NULL when the event did not decode
    const char *reason;   //  static reason code when it did not
    char *detail;         //  heap sentence when it did not
} trove_ingest_item_t;

//  Split a body (JSON array of objects, or NDJSON) into events. Returns 0
//  with *items_p (free with trove_ingest_items_free) and *n_p; or an HTTP
//  status (400, 413) with *err_p (a static reason code) and *detail_p (heap
//  sentence, caller frees), nothing allocated.
int trove_ingest_parse (const char *body, size_t size, const trove_ingest_limits_t *limits,
                        trove_ingest_item_t **items_p, size_t *n_p, const char **err_p, char **detail_p);
void trove_ingest_items_free (trove_ingest_item_t **items_p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
