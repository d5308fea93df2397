/*  trove_admin - the operator routes. See trove_admin.h. */
#include "trove_admin.h"
#include "trove_client.h"
#include "trove_error.h"
#include "trove_json.h"
#include "trove_router.h"
#include "trove_rules.h"
#include "trove_scrape.h"
#include "trove_util.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SCRAPE_MS 2000         //  one process's /metrics
#define S_SCRAPE_MAX (8u << 20)  //  bytes of one /metrics answer
#define S_PREVIEW_MS 30000       //  per shard (the router retries once)
#define S_PREVIEW_CHANGES 200    //  what each scorer lists (trove_query_table)
#define S_REPORT_MS 3000         //  a reconciler's report
#define S_SEGMENT_MAX 128

struct _trove_admin_t {
    const trove_cfg_t *cfg;
    trove_api_t *api;
};

trove_admin_t *
trove_admin_new (const trove_cfg_t *cfg, trove_api_t *api)
{
    assert (cfg && api);
    trove_admin_t *self = calloc (1, sizeof *self);
    if (self)
        self->cfg = cfg, self->api = api;
    return self;
}

void
trove_admin_destroy (trove_admin_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

static void
s_json (trove_http_response_t *resp, json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT) : NULL;
    json_decref (value);
    if (text)
        trove_http_reply (resp, 200, text);
    else
        trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), "cannot build the answer");
}

static void
s_unavailable (trove_http_response_t *resp, const char *detail)
{
    trove_http_reply_error (resp, 503, trove_strerror (TROVE_E_SHARD_UNAVAILABLE), detail);
    trove_http_reply_header (resp, "Retry-After", "1");
}

//  ---------------------------------------------------------------------------
//  GET /v1/metrics and /v1/metrics/{role}/{name}

//  The metrics address of the process role/name in the config, or NULL.
static const char *
s_metrics_address (const trove_cfg_t *cfg, const char *role, const char *name)
{
    if (strcmp (role, "broker") == 0 && strcmp (name, "broker") == 0)
        return trove_cfg_broker_metrics (cfg);
    if (strcmp (role, "ingestor") == 0) {
        int i = trove_cfg_ingestor_find (cfg, name);
        return i >= 0 ? trove_cfg_ingestor_metrics (cfg, (size_t) i) : NULL;
    }
    if (strcmp (role, "scorer") == 0)
        for (size_t k = 0; k < trove_cfg_shards (cfg); k++)
            if (strcmp (trove_cfg_shard_name (cfg, k), name) == 0)
                return trove_cfg_shard_metrics (cfg, k);
    return NULL;
}

static void
s_metrics_list (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_admin_t *self = arg;
    if (!trove_api_authorize (self->api, req, resp, TROVE_SCOPE_ADMIN) || !trove_api_params (req, resp, ""))
        return;
    const trove_cfg_t *cfg = self->cfg;
    json_t *targets = json_array ();
    if (trove_cfg_broker_metrics (cfg))
        json_array_append_new (targets, json_pack ("{s:s,s:s}", "role", "broker", "name", "broker"));
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++)
        if (trove_cfg_ingestor_metrics (cfg, i))
            json_array_append_new (targets, json_pack ("{s:s,s:s}", "role", "ingestor", "name",
                                                       trove_cfg_ingestor_name (cfg, i)));
    for (size_t k = 0; k < trove_cfg_shards (cfg); k++)
        if (trove_cfg_shard_metrics (cfg, k))
            json_array_append_new (targets,
                                   json_pack ("{s:s,s:s,s:I}", "role", "scorer", "name",
                                              trove_cfg_shard_name (cfg, k), "shard", (json_int_t) k));
    s_json (resp, targets ? json_pack ("{s:o}", "targets", targets) : NULL);
}

static void
s_metrics_one (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_admin_t *self = arg;
    if (!trove_api_authorize (self->api, req, resp, TROVE_SCOPE_ADMIN) || !trove_api_params (req, resp, ""))
        return;
    //  {role}/{name}: names are config section names, no escapes needed.
    char role [S_SEGMENT_MAX + 1], name [S_SEGMENT_MAX + 1];
    const char *slash = strchr (req->rest, '/');
    size_t rlen = slash ? (size_t) (slash - req->rest) : 0;
    const char *address = NULL;
    if (slash && rlen && rlen <= S_SEGMENT_MAX && strlen (slash + 1) <= S_SEGMENT_MAX
        && !strchr (slash + 1, '/') && trove_http_unescape (req->rest, rlen, role, sizeof role) >= 0
        && trove_http_unescape (slash + 1, strlen (slash + 1), name, sizeof name) >= 0)
        address = s_metrics_address (self->cfg, role, name);
    if (!address) {
        trove_http_reply_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND),
                                "no such process with a metrics address: want /v1/metrics/{role}/{name}, "
                                "one of GET /v1/metrics");
        return;
    }
    char *err = NULL;
    char *text = trove_scrape (address, "/metrics", S_SCRAPE_MS, S_SCRAPE_MAX, NULL, &err);
    if (!text) {
        char detail [300];
        snprintf (detail, sizeof detail, "%s/%s did not answer: %s", role, name, err ? err : "out of memory");
        free (err);
        s_unavailable (resp, detail);
        return;
    }
    trove_http_reply (resp, 200, text);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

//  ---------------------------------------------------------------------------
//  POST /v1/rules/preview

static void
s_preview (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_admin_t *self = arg;
    if (!trove_api_authorize (self->api, req, resp, TROVE_SCOPE_ADMIN)
        || !trove_api_params (req, resp, "file user"))
        return;
    const char *file = trove_http_arg (req, "file"), *user = trove_http_arg (req, "user");
    if (!file || !*file) {
        trove_http_reply_error (
            resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
            "file: want the hunt file's name (NAME.yaml), as `rules apply` would store it");
        return;
    }
    if (user && (!*user || strlen (user) > 128)) {
        trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_USER), "a user id is 1 to 128 bytes");
        return;
    }
    //  The parser checks the text itself; a NUL would cut it short.
    if (req->body_size == 0 || strlen (req->body) != req->body_size) {
        trove_http_reply_error (resp, 400, "bad_rules",
                                "the body must be a hunt file: text, not empty, no NUL");
        return;
    }
    //  Refuse a file that does not parse here, without asking the cluster.
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text (file, req->body, req->body_size, &err);
    if (!rules) {
        trove_http_reply_error (resp, 400, "bad_rules", err ? err : "out of memory");
        free (err);
        return;
    }
    trove_rules_destroy (&rules);
    //  A router of its own: a preview replays a shard's events, far longer
    //  than the query routes' 2 s.
    trove_router_t *router = trove_router_new (self->cfg, S_PREVIEW_MS);
    if (!router) {
        s_unavailable (resp, "cannot open the sockets to the shards; retry later");
        return;
    }
    size_t shards = trove_cfg_shards (self->cfg);
    Trove__QueryReply **replies = calloc (shards, sizeof *replies);
    json_t **reports = calloc (shards, sizeof *reports);
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "rules_preview";
    q.rules_name = (char *) file;
    q.rules_text = (char *) req->body;
    q.user = (char *) (user ? user : "");
    size_t want = user ? 1 : shards, got = 0;
    if (!replies || !reports)
        trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), "out of memory");
    else {
        if (user) {
            size_t k = trove_cfg_shard_of_user (self->cfg, user);
            replies [k] = trove_router_user (router, &q, &err);
            free (err);
            got = replies [k] ? 1 : 0;
        }
        else
            got = (size_t) trove_router_all (router, &q, replies);
        const char *refused = NULL;
        for (size_t k = 0; k < shards; k++) {
            if (!replies [k])
                continue;
            if (replies [k]->error && *replies [k]->error) {
                refused = refused ? refused : replies [k]->error;
                continue;
            }
            reports [k] = json_loads (replies [k]->report ? replies [k]->report : "", 0, NULL);
            if (!reports [k] && !refused)
                refused = "a scorer's report is not JSON";
        }
        if (got < want)
            s_unavailable (resp, "a shard did not answer the preview");
        else if (refused)
            trove_http_reply_error (resp, 422, "rules_refused", refused);
        else
            s_json (resp, trove_json_preview_merge (reports, shards));
    }
    for (size_t k = 0; k < shards && replies; k++) {
        trove_client_reply_free (&replies [k]);
        if (reports)
            json_decref (reports [k]);
    }
    free (replies);
    free (reports);
    trove_router_destroy (&router);
}

//  ---------------------------------------------------------------------------
//  GET /v1/reconciler/reports

static void
s_reports (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_admin_t *self = arg;
    if (!trove_api_authorize (self->api, req, resp, TROVE_SCOPE_ADMIN) || !trove_api_params (req, resp, ""))
        return;
    json_t *shards = json_array ();
    for (size_t k = 0; shards && k < trove_cfg_shards (self->cfg); k++) {
        const char *name = trove_cfg_shard_name (self->cfg, k);
        const char *endpoint = trove_cfg_shard_reconcile (self->cfg, k);
        json_t *entry = json_pack ("{s:s}", "shard", name);
        if (!entry)
            continue;
        if (!endpoint)
            json_object_set_new (entry, "error", json_string ("no reconciler (no `reconcile` endpoint)"));
        else {
            Trove__Query q = TROVE__QUERY__INIT;
            q.kind = "report";
            char *err = NULL;
            Trove__QueryReply *reply = trove_client_call_max (endpoint, &q, S_REPORT_MS, 0,
                                                              trove_cfg_limits (self->cfg)->max_frame, &err);
            json_t *report =
                reply && !(reply->error && *reply->error) ? json_loads (reply->report, 0, NULL) : NULL;
            if (report)
                json_object_set_new (entry, "report", report);
            else
                json_object_set_new (entry, "error",
                                     json_string (reply && reply->error && *reply->error ? reply->error
                                                  : reply                                ? "unreadable report"
                                                  : err                                  ? err
                                                                                         : "no answer"));
            free (err);
            trove_client_reply_free (&reply);
        }
        json_array_append_new (shards, entry);
    }
    s_json (resp, shards ? json_pack ("{s:o}", "shards", shards) : NULL);
}

int
trove_admin_routes (trove_admin_t *self, trove_http_t *http)
{
    assert (self && http);
    if (trove_http_route (http, "GET", "/v1/metrics", s_metrics_list, self)
        || trove_http_route (http, "GET", "/v1/metrics/", s_metrics_one, self)
        || trove_http_route (http, "POST", "/v1/rules/preview", s_preview, self)
        || trove_http_route (http, "GET", "/v1/reconciler/reports", s_reports, self))
        return -1;
    return 0;
}
