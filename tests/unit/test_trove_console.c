/*  test_trove_console - the operator console's files as the ingestor
    serves them (ingestor/trove_console, through trove_http_dispatch behind
    an authentication hook that refuses everyone): every file of console/
    is embedded byte for byte, served without a key with its content type
    and the security headers; an unknown name is 404; /console redirects;
    any other method still needs a key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_console.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The hook of a server where no key is valid.
static const void *
s_refuse (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    (void) req;
    trove_http_reply_error (resp, 401, "unauthorized", "no key is valid here");
    return NULL;
}

static trove_http_t *
s_server (void)
{
    trove_http_t *http = trove_http_new (1024);
    assert_non_null (http);
    assert_int_equal (trove_http_set_auth (http, s_refuse, NULL), 0);
    assert_int_equal (trove_console_routes (http), 0);
    return http;
}

static void
s_get (trove_http_t *http, const char *method, const char *path, trove_http_response_t *resp)
{
    trove_http_request_t req = {.method = method, .path = path, .body = "", .body_size = 0};
    trove_http_dispatch (http, &req, resp);
}

static const char *
s_header (const trove_http_response_t *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcmp (resp->header_name [i], name) == 0)
            return resp->header_value [i];
    return NULL;
}

static void
test_files_are_the_sources (void **state)
{
    (void) state;
    const char *names [] = {"index.html", "console.js", "trove.js", "metrics.js", "style.css"};
    assert_int_equal (trove_console_files_count, 5);
    for (size_t i = 0; i < 5; i++) {
        const trove_embed_file_t *f = trove_console_file (names [i]);
        assert_non_null (f);
        char path [512];
        snprintf (path, sizeof path, "%s/console/%s", TROVE_SOURCE_DIR, names [i]);
        size_t size = 0;
        char *text = trove_read_file (path, &size);
        assert_non_null (text);
        assert_int_equal (f->size, size);
        assert_memory_equal (f->data, text, size);
        assert_int_equal (f->data [f->size], 0);
        free (text);
    }
    assert_null (trove_console_file ("embed.cmake"));
    assert_null (trove_console_file ("../trove.cfg"));
}

static void
test_served_without_a_key (void **state)
{
    (void) state;
    trove_http_t *http = s_server ();
    struct {
        const char *path, *type, *file;
    } cases [] = {
        {"/console/", "text/html; charset=utf-8", "index.html"},
        {"/console/index.html", "text/html; charset=utf-8", "index.html"},
        {"/console/trove.js", "text/javascript; charset=utf-8", "trove.js"},
        {"/console/style.css", "text/css; charset=utf-8", "style.css"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        trove_http_response_t resp;
        s_get (http, "GET", cases [i].path, &resp);
        assert_int_equal (resp.status, 200);
        assert_string_equal (resp.content_type, cases [i].type);
        assert_string_equal (resp.body, trove_console_file (cases [i].file)->data);
        assert_string_equal (s_header (&resp, "X-Content-Type-Options"), "nosniff");
        const char *csp = s_header (&resp, "Content-Security-Policy");
        assert_non_null (csp);
        assert_non_null (strstr (csp, "connect-src 'self'"));
        assert_non_null (strstr (csp, "script-src 'self'"));
        free (resp.body);
    }
    trove_http_response_t resp;
    s_get (http, "GET", "/console/nope.js", &resp);
    assert_int_equal (resp.status, 404);
    assert_non_null (strstr (resp.body, "\"not_found\""));
    free (resp.body);
    s_get (http, "GET", "/console/../x", &resp);
    assert_int_equal (resp.status, 404);
    free (resp.body);
    s_get (http, "GET", "/console", &resp);
    assert_int_equal (resp.status, 301);
    assert_string_equal (s_header (&resp, "Location"), "/console/");
    free (resp.body);
    //  Only GET is open: anything else meets the key check first.
    s_get (http, "POST", "/console/", &resp);
    assert_int_equal (resp.status, 401);
    free (resp.body);
    //  Other paths are not opened by the console's routes.
    s_get (http, "GET", "/v1/metrics", &resp);
    assert_int_equal (resp.status, 401);
    free (resp.body);
    trove_http_destroy (&http);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_files_are_the_sources),
        cmocka_unit_test (test_served_without_a_key),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
