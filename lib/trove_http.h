/*  trove_http - a small HTTP/1.1 server (libmicrohttpd) with a route table,
    for the ingestor's HTTP API (POST /v1/events, later read-only queries).

    A route is a method and a path: a path ending in '/' is a prefix (the
    handler gets the rest of the path in req->rest, e.g. "/v1/users/" with
    "u42/balance"), any other path must match exactly. The longest matching
    route wins. A path some route knows under another method is answered
    405 with `Allow`; an unknown path 404. The server reads the whole body
    (at most max_body bytes: more is answered 413 without calling a
    handler, as soon as Content-Length or the received bytes tell) and then
    calls the handler once, in one of the server's threads: handlers must be
    thread-safe and may block (a blocked handler holds one thread of the
    pool). The handler fills a response: status, a body (JSON unless it sets
    another content type) and up to TROVE_HTTP_MAX_HEADERS extra headers.

    Paths are routed as sent, percent-encoded: req->path and req->rest are
    not decoded, so a handler splits the rest on '/' first and then decodes
    each segment (trove_http_unescape): "a%2Fb" is one segment "a/b". Query
    arguments arrive decoded ('+' and %XX); a request whose arguments do not
    decode to UTF-8 text (a bad escape, %00, a control character) is
    answered 400 `bad_query` without calling a handler.

    trove_http_dispatch runs the same routing on a request built by the
    caller, without a socket: unit tests and fuzz targets use it.

    Caveats: no TLS (terminate it in front, or keep the address private);
    request headers are bounded by libmicrohttpd's per-connection memory
    (32 KiB: more is answered 431 by libmicrohttpd); a client idle for the
    connection timeout (30 s) is dropped; at most 256 connections at once.
    Nothing is logged about requests except libmicrohttpd's own errors
    (never a header: they may carry keys). */
#ifndef TROVE_HTTP_H_INCLUDED
#define TROVE_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROVE_HTTP_MAX_HEADERS 4

typedef struct _trove_http_t trove_http_t;

//  A request as a handler sees it. Every pointer is borrowed for the call.
typedef struct {
    const char *method;  //  "GET", "POST", ...
    const char *path;    //  without the query string, percent-encoded as sent
    const char *rest;    //  the path after a prefix route ("" for an exact route), encoded
    const char *body;    //  NUL-terminated copy of the body (may contain NULs)
    size_t body_size;
    const char *const *headers;  //  name, value, name, value, ... (2 * nheaders)
    size_t nheaders;
    const char *const *args;  //  query arguments, decoded, same layout (value may be "")
    size_t nargs;
} trove_http_request_t;

//  What a handler answers. status 0 means "not set": 500 is sent.
typedef struct {
    unsigned status;
    char *body;                //  heap, taken by the server; NULL: empty
    const char *content_type;  //  static; NULL: application/json
    char header_name [TROVE_HTTP_MAX_HEADERS][40];
    char header_value [TROVE_HTTP_MAX_HEADERS][160];
    size_t nheaders;
} trove_http_response_t;

typedef void (trove_http_fn) (void *arg, const trove_http_request_t *req, trove_http_response_t *resp);

//  A server (not listening yet) reading bodies of at most max_body bytes.
//  NULL on OOM.
trove_http_t *trove_http_new (size_t max_body);

//  Stop serving (waits for handlers in progress) and free; safe on NULL.
void trove_http_destroy (trove_http_t **self_p);

//  Add a route (before trove_http_start). method and path are copied; arg is
//  passed to fn. Returns 0, or -1 when the server is started, the path does
//  not begin with '/', or out of memory.
int trove_http_route (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg);

//  Serve on address ("127.0.0.1:8080", "[::1]:8080"; port 0 picks one) with
//  `threads` threads (1..64). Returns 0, or -1 with a message in *err_p
//  (caller frees): bad address, port in use, already started.
int trove_http_start (trove_http_t *self, const char *address, unsigned threads, char **err_p);

//  The port served (useful after port 0), 0 when not serving.
uint16_t trove_http_port (trove_http_t *self);

//  Route req (req->rest is ignored and set by routing) and fill resp, exactly
//  as a request from a socket would be, body limit included. The caller
//  frees resp->body. Can't fail (out of memory gives a 500).
void trove_http_dispatch (trove_http_t *self, const trove_http_request_t *req, trove_http_response_t *resp);

//  Header value of a request, by case-insensitive name, or NULL.
const char *trove_http_header (const trove_http_request_t *req, const char *name);
//  Query argument value of a request (the first when repeated), or NULL.
const char *trove_http_arg (const trove_http_request_t *req, const char *name);
//  The key of an "Authorization: Bearer KEY" header (scheme in any case,
//  spaces around the key ignored) and its length in *len_p, or NULL when
//  there is none. Points into the request.
const char *trove_http_bearer (const trove_http_request_t *req, size_t *len_p);
//  Percent-decode len bytes of in ("%2F" -> '/'; '+' stays '+') into out
//  (size bytes, NUL-terminated). Returns the decoded length, or -1 when a
//  '%' is not followed by two hex digits, the result is not UTF-8 text
//  (control characters and NUL included) or does not fit.
int trove_http_unescape (const char *in, size_t len, char *out, size_t size);

//  Set the status and take ownership of a heap body (may be NULL: empty).
void trove_http_reply (trove_http_response_t *resp, unsigned status, char *body);
//  An error answer: {"error": code, "detail": detail}. Can't fail (falls back
//  to an empty body on OOM).
void trove_http_reply_error (trove_http_response_t *resp, unsigned status, const char *code,
                             const char *detail);
//  Add a response header (name < 40, value < 160 bytes). Returns 0, or -1
//  when full or too long.
int trove_http_reply_header (trove_http_response_t *resp, const char *name, const char *value);

#ifdef __cplusplus
}
#endif
#endif
