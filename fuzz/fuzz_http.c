/*  Fuzz target: HTTP request handling past the socket: routing
    (trove_http_dispatch) behind the authentication hook (trove_ingest_auth,
    as trove-ingestor wires it) and the POST /v1/events handler with its
    scopes, decoding, validation, limits, Idempotency-Key and per-event
    answers, submitting to a stub that validates like an ingestor. Input layout: a request line
    "METHOD PATH", header lines "Name: value", an empty line, the body.
    Properties checked: every answer has a known status and a JSON body; a
    200 lists one result per event. */
#include "fuzz_common.h"
#include "trove_event.h"
#include "trove_http.h"
#include "trove_ingest.h"

#include <jansson.h>

static void
s_submit (void *arg, uint64_t req_id, Trove__Event **events, size_t n, trove_ingest_result_t *results)
{
    (void) arg, (void) req_id;
    const trove_cfg_t *cfg = fuzz_cfg ();
    for (size_t i = 0; i < n; i++) {
        const char *reason =
            trove_event_check (events [i], cfg, FUZZ_NOW_MS, results [i].detail, sizeof results [i].detail);
        if (!reason)
            reason =
                trove_sources_check (fuzz_sources (), trove_cfg_source_index (cfg, events [i]->source),
                                     events [i], FUZZ_NOW_MS, results [i].detail, sizeof results [i].detail);
        results [i].status = reason ? TROVE__STATUS__REJECTED : TROVE__STATUS__ACCEPTED;
        snprintf (results [i].reason, sizeof results [i].reason, "%s", reason ? reason : "");
    }
}

static void
s_query (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    //  As a query route would: the rest of the path echoed in JSON.
    json_t *root = json_pack ("{s:s}", "rest", req->rest);
    trove_http_reply (resp, 200, root ? json_dumps (root, 0) : NULL);
    json_decref (root);
}

static trove_http_t *
s_server (void)
{
    static trove_http_t *http;
    static trove_ingest_t *ingest;
    if (http)
        return http;
    ingest = trove_ingest_new (fuzz_cfg (), fuzz_sources (), NULL, s_submit, NULL, NULL, NULL);
    http = ingest ? trove_http_new (trove_ingest_max_body (ingest)) : NULL;
    //  As trove-ingestor wires it: the key before the route.
    if (!http || trove_http_set_auth (http, trove_ingest_auth, ingest)
        || trove_http_route (http, "POST", "/v1/events", trove_ingest_handle, ingest)
        || trove_http_route (http, "GET", "/v1/users/", s_query, NULL))
        abort ();
    return http;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    trove_http_t *http = s_server ();
    char *text = malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text [size] = 0;
    //  Split: request line, headers up to an empty line, then the body.
    const char *pairs [64];
    size_t npairs = 0;
    char *p = text, *end = text + size;
    char *line_end = memchr (p, '\n', (size_t) (end - p));
    char *line = p;
    p = line_end ? line_end + 1 : end;
    if (line_end)
        *line_end = 0;
    char *space = strchr (line, ' ');
    const char *method = line, *path = "/v1/events";
    if (space) {
        *space = 0;
        path = space + 1;
    }
    while (p < end) {
        line_end = memchr (p, '\n', (size_t) (end - p));
        if (!line_end)
            break;
        *line_end = 0;
        if (line_end == p) {
            p = line_end + 1;
            break;
        }
        char *colon = strchr (p, ':');
        if (colon && npairs < 32) {
            *colon = 0;
            pairs [2 * npairs] = p;
            pairs [2 * npairs + 1] = colon [1] == ' ' ? colon + 2 : colon + 1;
            npairs++;
        }
        p = line_end + 1;
    }
    trove_http_request_t req = {.method = method,
                                .path = path,
                                .body = p,
                                .body_size = (size_t) (end - p),
                                .headers = pairs,
                                .nheaders = npairs};
    trove_http_response_t resp;
    trove_http_dispatch (http, &req, &resp);
    static const unsigned known [] = {200, 400, 401, 403, 404, 405, 413, 422, 429, 503};
    size_t k = 0;
    while (k < sizeof known / sizeof known [0] && known [k] != resp.status)
        k++;
    if (k == sizeof known / sizeof known [0] || !resp.body)
        abort ();
    json_t *root = json_loads (resp.body, 0, NULL);
    if (!root)
        abort ();
    if (resp.status == 200 && strcmp (method, "POST") == 0) {
        json_t *results = json_object_get (root, "results");
        size_t total = 0;
        const char *keys [] = {"accepted", "duplicate", "rejected", "retry"};
        for (int i = 0; i < 4; i++)
            total += (size_t) json_integer_value (json_object_get (root, keys [i]));
        if (!json_is_array (results) || json_array_size (results) != total || total == 0)
            abort ();
    }
    json_decref (root);
    free (resp.body);
    free (text);
    return 0;
}
