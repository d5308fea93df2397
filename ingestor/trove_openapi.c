/*  trove_openapi - GET /v1/openapi.json. See trove_openapi.h. */
#include "trove_openapi.h"
#include "trove_error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void
s_serve (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    //  Like every route, a parameter it does not take is refused, so a typo
    //  is never silently ignored.
    if (req->nargs) {
        trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                                "this path takes no parameter");
        return;
    }
    const trove_embed_file_t *doc = &trove_openapi_files [0];
    char *body = malloc (doc->size + 1);
    if (!body) {
        trove_http_reply_error (resp, 503, trove_strerror (TROVE_E_OVERLOADED), "out of memory; retry later");
        trove_http_reply_header (resp, "Retry-After", "1");
        return;
    }
    memcpy (body, doc->data, doc->size + 1);
    trove_http_reply (resp, 200, body);
}

int
trove_openapi_route (trove_http_t *http)
{
    assert (http);
    return trove_http_route_open (http, "GET", "/v1/openapi.json", s_serve, NULL);
}
