/*  trove_console - the operator console's files. See trove_console.h. */
#include "trove_console.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  The page loads its own scripts and styles and calls this listener only.
#define S_CSP                                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const trove_embed_file_t *
trove_console_file (const char *name)
{
    return trove_embed_find (trove_console_files, trove_console_files_count, name);
}

const char *
trove_console_type (const char *name)
{
    assert (name);
    const char *dot = strrchr (name, '.');
    if (dot && strcmp (dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp (dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp (dot, ".css") == 0)
        return "text/css; charset=utf-8";
    return "application/octet-stream";
}

//  GET /console/ and GET /console/NAME
static void
s_file (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    const char *name = *req->rest ? req->rest : "index.html";
    const trove_embed_file_t *file = trove_console_file (name);
    if (!file) {
        trove_http_reply_error (resp, 404, "not_found", "no such console file");
        return;
    }
    //  The server sends a body up to its first NUL: text files have none
    //  (embed.cmake adds one at the end only).
    assert (strlen (file->data) == file->size);
    char *body = strdup (file->data);
    if (!body) {
        trove_http_reply_error (resp, 503, "overloaded", "out of memory");
        return;
    }
    trove_http_reply (resp, 200, body);
    resp->content_type = trove_console_type (name);
    trove_http_reply_header (resp, "X-Content-Type-Options", "nosniff");
    trove_http_reply_header (resp, "Content-Security-Policy", S_CSP);
}

//  GET /console: relative URLs of the page need the trailing slash.
static void
s_redirect (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    (void) req;
    trove_http_reply_error (resp, 301, "moved", "the console is at /console/");
    trove_http_reply_header (resp, "Location", "/console/");
}

int
trove_console_routes (trove_http_t *http)
{
    assert (http);
    if (trove_http_route_open (http, "GET", "/console/", s_file, NULL)
        || trove_http_route_open (http, "GET", "/console", s_redirect, NULL))
        return -1;
    return 0;
}
