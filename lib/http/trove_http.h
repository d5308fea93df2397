/*  trove_http - a small HTTP/1.1 server (libmicrohttpd) with a route table:
    the only HTTP server in Trove. It serves the ingestor's HTTP API (POST
    /v1/events, the GET query API) and every daemon's GET /metrics
    (trove_metrics_route), on one listener when their addresses are the
    same.

    A route is a method and a path: a path ending in '/' is a prefix (the
    handler gets the rest of the path in req->rest, e.g. "/v1/users/" with
    "u42/balance"), any other path must match exactly. The longest matching
    route wins. With an authentication hook (trove_http_set_auth) every
    request but one for an open route (trove_http_route_open) is
    authenticated before it is routed: without a valid key an
    unknown path or an OPTIONS is 401, never 404 or 405. Then a path some
    route knows under another method is answered 405 with `Allow`; an
    unknown path 404. The server reads the whole body (at most max_body
    bytes: more is answered 413 without calling a handler, as soon as
    Content-Length or the received bytes tell) and then calls the handler
    once, in one of the server's threads: handlers must be thread-safe and
    may block (a blocked handler holds one thread of the pool). The handler
    fills a response: status, a body (JSON unless it sets another content
    type) and up to TROVE_HTTP_MAX_HEADERS extra headers.

    Paths are routed as sent, percent-encoded: req->path and req->rest are
    not decoded, so a handler splits the rest on '/' first and then decodes
    each segment (trove_http_unescape): "a%2Fb" is one segment "a/b". Query
    arguments arrive decoded ('+' and %XX); a request whose arguments do not
    decode to UTF-8 text (a bad escape, %00, a control character) is
    answered 400 `bad_query` without calling a handler.

    The door (docs/security.md, "The HTTP listener"): the server accepts
    connections itself and reads each new connection's request head
    (request line and headers) before libmicrohttpd sees a byte of it:
      - the head must be complete within limits.header_timeout_s of the
        connect (else 408 `header_timeout`, closed), at most 32 KiB (431);
      - the framing must be unambiguous (trove_http_frame_check): at most
        one Content-Length, all digits; a Transfer-Encoding only alone and
        exactly `chunked`; HTTP/1.1 with exactly one Host; CRLF line ends;
        header names without spaces; else 400 with a JSON error and the
        connection closed, so no byte after it is ever read as a request;
      - a client (IPv4 address, or IPv6 /64) holds at most
        limits.max_per_client connections, everyone at most
        limits.max_connections: more are closed at once.
    Later requests on a kept-alive connection are read by libmicrohttpd;
    their headers get the same checks (trove_http_fields_check) before any
    handler runs, and a connection waiting for its next request longer
    than header_timeout_s, or whose body takes longer than
    body_timeout_s, is closed. Every refusal and every dropped connection
    is counted (trove_http_set_metrics), and logged at most once a minute
    with a summary of the rest.

    trove_http_dispatch runs the same routing on a request built by the
    caller, without a socket: unit tests and fuzz targets use it.

    HTTPS (trove_http_set_tls): libmicrohttpd speaks TLS (GnuTLS) itself.
    The door then cannot read a first head (it is encrypted): it admits the
    connection (the caps) and hands it over at once; libmicrohttpd reads
    every head, and each gets the field checks (trove_http_fields_check)
    before any handler, as later requests do; a connection that has not
    completed a request head (the handshake included) within
    header_timeout_s is closed, counted as header_timeout. What
    libmicrohttpd's own parser refuses first is answered in its HTML.

    Streaming responses (GET /v1/awards/stream, Server-Sent Events): a
    handler may answer with a body that is written as it comes
    (trove_http_reply_stream) by a thread of its own, the writer, through a
    bounded buffer. The connection does not hold a server thread while it
    waits for bytes (libmicrohttpd suspends it and the writer resumes it),
    so streams never starve the pool of ordinary requests. At most
    limits.max_streams are open at once (more: 503 `overloaded`). A client
    that reads slower than the writer writes fills the buffer: the writer
    waits (back-pressure, bounded memory); a client that reads nothing for
    idle_timeout_s is closed like any other. The writer learns that the
    client is gone (or that the server stops) from trove_http_stream_write
    and must then release its handle soon: trove_http_destroy waits for
    every writer to release.

    Caveats: behind a proxy every connection comes from the proxy's address,
    so set max_per_client for it, or 0; a client idle for the connection timeout
    (30 s) is dropped. libmicrohttpd 0.9.75 answers a malformed
    Content-Length on a kept-alive connection's later request itself (400,
    HTML, connection closed; it repeats the status line): the first request
    of every connection is checked by the door, which answers in JSON.
    Nothing is logged about requests except connection problems (never a
    header: they may carry keys). */
#ifndef TROVE_HTTP_H_INCLUDED
#define TROVE_HTTP_H_INCLUDED

#include "trove_cfg.h"
#include "trove_metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROVE_HTTP_MAX_HEADERS 4

typedef struct _trove_http_t trove_http_t;
typedef struct _trove_http_stream_t trove_http_stream_t;

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
    const void *principal;  //  what the authentication hook returned (NULL: none ran)
    trove_http_t *server;   //  the server routing it (set by routing; for trove_http_reply_stream)
} trove_http_request_t;

//  What a handler answers. status 0 means "not set": 500 is sent.
typedef struct {
    unsigned status;
    char *body;                //  heap, taken by the server; NULL: empty
    const char *content_type;  //  static; NULL: application/json
    char header_name [TROVE_HTTP_MAX_HEADERS][40];
    char header_value [TROVE_HTTP_MAX_HEADERS][160];
    size_t nheaders;
    char error [40];              //  the error code of a refusal (trove_http_reply_error), for the counters
    trove_http_stream_t *stream;  //  a streamed body (trove_http_reply_stream), instead of body
} trove_http_response_t;

typedef void (trove_http_fn) (void *arg, const trove_http_request_t *req, trove_http_response_t *resp);

//  Authentication before routing: returns what the handlers get in
//  req->principal (not NULL), or NULL after filling resp with the refusal
//  (401). Runs in the server's threads.
typedef const void *(trove_http_auth_fn) (void *arg, const trove_http_request_t *req,
                                          trove_http_response_t *resp);

//  Connection limits (docs/security.md; config section `limits`).
typedef struct {
    size_t max_connections;     //  open connections in all (http_max_connections, 256)
    size_t max_per_client;      //  per client address (http_max_per_client, 32; 0: no cap)
    unsigned header_timeout_s;  //  to send a request head (http_header_timeout_s, 10)
    unsigned body_timeout_s;    //  to send a body after its head (http_body_timeout_s, 60)
    unsigned idle_timeout_s;    //  with no byte moving (http_idle_timeout_s, 30)
    size_t max_streams;         //  streaming responses open at once (http_max_streams, 64; 0: none)
} trove_http_limits_t;

//  The defaults above.
void trove_http_limits_default (trove_http_limits_t *limits);
//  Read them from cfg's `limits` section. Returns 0, or -1 with a message
//  in *err_p (caller frees) for a value out of range.
int trove_http_limits_read (const trove_cfg_t *cfg, trove_http_limits_t *limits, char **err_p);

//  A server (not listening yet) reading bodies of at most max_body bytes.
//  NULL on OOM.
trove_http_t *trove_http_new (size_t max_body);

//  Stop serving (waits for handlers in progress) and free; safe on NULL.
void trove_http_destroy (trove_http_t **self_p);

//  Add a route (before trove_http_start). method and path are copied; arg is
//  passed to fn. Returns 0, or -1 when the server is started, the path does
//  not begin with '/', or out of memory.
int trove_http_route (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg);

//  Add a route that the authentication hook does not guard (GET /metrics on
//  the API's listener): a request for exactly this method and path is
//  routed without a key; any other method on it still needs one. Otherwise
//  as trove_http_route.
int trove_http_route_open (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn,
                           void *arg);

//  GnuTLS priorities of HTTPS unless set otherwise: TLS 1.3 and 1.2 only,
//  AEAD ciphers only (AES-GCM, ChaCha20-Poly1305), forward-secret key
//  exchange only (docs/security.md, "HTTPS").
// clang-format off
#define TROVE_HTTP_TLS_PRIORITIES \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
    "-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:" \
    "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
// clang-format on

//  Serve HTTPS: read the certificate chain and its private key (PEM files)
//  now and check them (readable, PEM, the key is the certificate's) and the
//  GnuTLS priorities (NULL: TROVE_HTTP_TLS_PRIORITIES). Before
//  trove_http_start; one HTTPS server per process. Returns 0, or -1 with a
//  message in *err_p (caller frees) naming the file and what is wrong.
int trove_http_set_tls (trove_http_t *self, const char *cert_path, const char *key_path,
                        const char *priorities, char **err_p);
//  Read the pair again (SIGHUP: a renewed certificate): new handshakes get
//  it, open connections keep the one they shook hands with. A pair that
//  fails the checks changes nothing. Returns 0, or -1 with *err_p.
int trove_http_reload_tls (trove_http_t *self, const char *cert_path, const char *key_path, char **err_p);
//  True when the server speaks HTTPS.
bool trove_http_tls (const trove_http_t *self);

//  The route table, one line per route in the order added: "METHOD PATH",
//  then " open" for an open route ("GET /v1/users/\nGET /metrics open\n";
//  a path ending in '/' is a prefix). What a server answers is exactly this
//  table, so a check of the API's description (docs/openapi.json) reads it
//  here rather than from a list kept by hand. Caller frees; NULL on OOM.
char *trove_http_routes (trove_http_t *self);

//  Serve on address ("127.0.0.1:8080", "[::1]:8080"; port 0 picks one) with
//  `threads` threads (1..64). Returns 0, or -1 with a message in *err_p
//  (caller frees): bad address, port in use, already started.
int trove_http_start (trove_http_t *self, const char *address, unsigned threads, char **err_p);

//  The port served (useful after port 0), 0 when not serving.
uint16_t trove_http_port (trove_http_t *self);

//  Connection limits (before trove_http_start; defaults otherwise).
//  Returns 0, or -1 when started or a limit is 0 where it may not be.
int trove_http_set_limits (trove_http_t *self, const trove_http_limits_t *limits);

//  Authenticate every request with fn before routing (before
//  trove_http_start). Returns 0, or -1 when started.
int trove_http_set_auth (trove_http_t *self, trove_http_auth_fn *fn, void *arg);

//  Count refusals and connections in registry (before trove_http_start):
//  trove_ingestor_http_refused_total{reason} and the gauge
//  trove_ingestor_http_connections (docs/metrics.md). Returns 0, or -1 when
//  started.
int trove_http_set_metrics (trove_http_t *self, trove_metrics_t *registry);

//  Route req (req->rest is ignored and set by routing) and fill resp, exactly
//  as a request from a socket would be: authentication (when a hook is set;
//  req->principal is what it returns), body limit, routing. The caller frees
//  resp->body. Refusals are counted. Can't fail (out of memory gives a 500).
void trove_http_dispatch (trove_http_t *self, const trove_http_request_t *req, trove_http_response_t *resp);

//  ---------------------------------------------------------------------------
//  Request framing, public for tests and fuzzing.

//  The largest request head (request line, headers, blank line) accepted.
#define TROVE_HTTP_MAX_HEAD 32768
//  Most header fields in a request head.
#define TROVE_HTTP_MAX_FIELDS 100

//  How a well-framed request head frames its body.
typedef struct {
    size_t head_size;  //  bytes of the head, blank line included
    bool http11;       //  HTTP/1.1 (else HTTP/1.0)
    bool chunked;      //  Transfer-Encoding: chunked
    bool has_length;   //  Content-Length given
    uint64_t length;
} trove_http_frame_t;

//  Check the first len bytes a connection sent. Returns 0 when they start
//  with a complete, unambiguously framed request head (*frame filled; what
//  follows it is the body, then maybe the next request); 1 when the head is
//  not complete yet and nothing seen so far is wrong; or the HTTP status of
//  the refusal (400, 431, 505) with a static error code in *code_p and a
//  static sentence in *detail_p.
int trove_http_frame_check (const char *buf, size_t len, trove_http_frame_t *frame, const char **code_p,
                            const char **detail_p);

//  The field checks of trove_http_frame_check on headers already split
//  (name, value, name, value, ...; values without surrounding spaces), as
//  libmicrohttpd gives them for a kept-alive connection's later requests.
//  Returns 0, or 400 with *code_p and *detail_p.
int trove_http_fields_check (bool http11, const char *const *headers, size_t nheaders, const char **code_p,
                             const char **detail_p);

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
//  Name the error code of a refusal built by hand (what the counters see).
void trove_http_reply_code (trove_http_response_t *resp, const char *code);
//  An error answer: {"error": code, "detail": detail}. Can't fail (falls back
//  to an empty body on OOM).
void trove_http_reply_error (trove_http_response_t *resp, unsigned status, const char *code,
                             const char *detail);
//  Add a response header (name < 40, value < 160 bytes). Returns 0, or -1
//  when full or too long.
int trove_http_reply_header (trove_http_response_t *resp, const char *name, const char *value);

//  ---------------------------------------------------------------------------
//  Streaming responses

//  Answer req with a streamed body (status 200, content_type static, e.g.
//  "text/event-stream"; the handler may add headers): returns the writer's
//  handle (the caller's until trove_http_stream_end), the body buffered up
//  to `buffer` bytes. NULL after answering 503 `overloaded` (Retry-After: 1)
//  when limits.max_streams are open, the server is stopping, or out of
//  memory. Through trove_http_dispatch (no socket) the client is gone at
//  once: the writer's first write returns -1.
trove_http_stream_t *trove_http_reply_stream (const trove_http_request_t *req, trove_http_response_t *resp,
                                              const char *content_type, size_t buffer);
//  Queue len bytes of the body (all or nothing). Waits up to timeout_ms for
//  room while the client has not read enough. Returns 0 (queued), 1 (no
//  room yet; nothing queued), or -1: the client is gone or the server stops
//  (stop writing, end the handle). A chunk larger than the buffer is taken
//  once the buffer is empty (the buffer grows to it).
int trove_http_stream_write (trove_http_stream_t *self, const char *data, size_t len, int timeout_ms);
//  Bytes queued and not yet taken by the connection.
size_t trove_http_stream_queued (trove_http_stream_t *self);
//  True once the client is gone or the server stops.
bool trove_http_stream_closed (trove_http_stream_t *self);
//  End the body after what is queued (the connection then finishes the
//  response) and release the handle; safe on NULL.
void trove_http_stream_end (trove_http_stream_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
