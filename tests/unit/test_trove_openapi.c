/*  Tests for trove_openapi: GET /v1/openapi.json is served without a key
    behind an authentication hook that refuses everyone, with the document
    compiled in (docs/openapi.json: JSON, OpenAPI 3.1); a parameter is
    refused; another method on the path still needs a key. The document
    itself is checked against the server by tests/integration/test_openapi.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_openapi.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const void *
s_nobody (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg, (void) req;
    trove_http_reply_error (resp, 401, "unauthorized", "no key is good here");
    return NULL;
}

static unsigned
s_get (trove_http_t *http, const char *method, const char *path, size_t nargs, char **body_p)
{
    const char *args [] = {"x", "1"};
    trove_http_request_t req = {.method = method, .path = path, .args = args, .nargs = nargs};
    trove_http_response_t resp;
    trove_http_dispatch (http, &req, &resp);
    *body_p = resp.body;
    assert_null (resp.content_type);  //  application/json
    return resp.status;
}

static void
test_served_open (void **state)
{
    (void) state;
    trove_http_t *http = trove_http_new (100);
    assert_non_null (http);
    assert_int_equal (trove_http_set_auth (http, s_nobody, NULL), 0);
    assert_int_equal (trove_openapi_route (http), 0);
    char *body = NULL;
    assert_int_equal (s_get (http, "GET", "/v1/openapi.json", 0, &body), 200);
    assert_int_equal (trove_openapi_files_count, 1);
    assert_string_equal (trove_openapi_files [0].name, "openapi.json");
    assert_int_equal (strlen (body), trove_openapi_files [0].size);
    assert_memory_equal (body, trove_openapi_files [0].data, trove_openapi_files [0].size);
    json_error_t jerr;
    json_t *doc = json_loads (body, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null (doc);
    assert_string_equal (json_string_value (json_object_get (doc, "openapi")), "3.1.0");
    assert_non_null (json_object_get (json_object_get (doc, "paths"), "/v1/openapi.json"));
    json_decref (doc);
    free (body);
    assert_int_equal (s_get (http, "GET", "/v1/openapi.json", 1, &body), 400);
    assert_non_null (strstr (body, "\"bad_param\""));
    free (body);
    assert_int_equal (s_get (http, "HEAD", "/v1/openapi.json", 0, &body), 401);
    free (body);
    assert_int_equal (s_get (http, "GET", "/v1/openapi.jsonx", 0, &body), 401);
    free (body);
    trove_http_destroy (&http);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_served_open),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
