/*  trove_admin - the operator routes of the ingestor's HTTP API: what the
    operator console (console/, ingestor/trove_console) needs beyond the
    query API. Every route needs a key with the `admin` scope (401 / 403 /
    429 as the query API, trove_api_authorize):
      GET  /v1/metrics                  the processes whose /metrics this
                                        ingestor reads: {"targets": [{"role",
                                        "name"[, "shard"]}]}
      GET  /v1/metrics/{role}/{name}    that process's /metrics (text
                                        exposition 0.0.4), read from its
                                        `metrics` address (2 s; 503 when it
                                        does not answer)
      POST /v1/rules/preview?file=NAME.yaml[&user=USER]
                                        body: a hunt file; what the scorers'
                                        rules_preview answers, merged as
                                        `trovectl rules preview --json`
      GET  /v1/reconciler/reports       each shard's reconciler's last report
    docs/queries.md, "Operator routes". Handlers run in the HTTP server's
    threads and block on the cluster: a preview holds a thread while the
    scorers replay (up to 2 x 30 s). */
#ifndef TROVE_ADMIN_H_INCLUDED
#define TROVE_ADMIN_H_INCLUDED
#include "trove_api.h"
#include "trove_cfg.h"
#include "trove_http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_admin_t trove_admin_t;

//  The routes of cfg's cluster, keys checked by api. cfg and api must
//  outlive the server. NULL on OOM.
trove_admin_t *trove_admin_new (const trove_cfg_t *cfg, trove_api_t *api);
//  Destroy after the server is destroyed.
void trove_admin_destroy (trove_admin_t **self_p);
//  Add the routes to http (before trove_http_start). Returns 0 or -1.
int trove_admin_routes (trove_admin_t *self, trove_http_t *http);

#ifdef __cplusplus
}
#endif
#endif
