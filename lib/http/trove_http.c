/*  trove_http - HTTP server with a route table (libmicrohttpd behind a door
    that checks each connection's first request head). See trove_http.h;
    the door is trove_http_door.c, the framing checks trove_http_frame.c,
    what they share trove_http_internal.h. */
#include "trove_http_internal.h"
#include "trove_error.h"
#include "trove_util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_LOG_WINDOW_US 60000000  //  one line per minute about dropped connections

//  Refusal reasons counted (trove_ingestor_http_refused_total{reason}); an
//  error code outside the list counts as bad_request (400) or other.
static const char *const s_reasons [] = {
    //  framing (the door, or a kept-alive connection's later request)
    "bad_request_line", "bad_header", "ambiguous_length", "bad_content_length", "bad_transfer_encoding",
    "missing_host", "headers_too_large", "http_version",
    //  connections
    "header_timeout", "body_timeout", "per_client_cap", "connection_limit",
    //  requests
    "unauthorized", "forbidden", "not_found", "method_not_allowed", "body_too_large", "event_too_large",
    "too_many_events", "over_burst", "rate_limited", "idempotency_mismatch", "bad_request", "unavailable",
    "other"};
_Static_assert(sizeof s_reasons / sizeof s_reasons [0] == HTTP_NREASONS, "HTTP_NREASONS counts s_reasons");

size_t
http_reason_index (const char *code, unsigned status)
{
    for (size_t i = 0; code && i < HTTP_NREASONS; i++)
        if (strcmp (s_reasons [i], code) == 0)
            return i;
    const char *fallback = status == 400 ? trove_strerror (TROVE_E_BAD_REQUEST)
                         : status == 503 ? "unavailable"
                                         : "other";
    for (size_t i = 0; i < HTTP_NREASONS; i++)
        if (strcmp (s_reasons [i], fallback) == 0)
            return i;
    return HTTP_NREASONS - 1;
}

//  Count a dropped connection or a refusal; a log line at most once a
//  minute (the door's tick writes the summary of the rest).
void
http_dropped (trove_http_t *self, size_t reason, const char *what)
{
    trove_counter_inc (self->refused [reason]);
    //  Only connection-level drops are logged (a flood of 401s is a
    //  number in /metrics, not lines on a disk).
    if (!what)
        return;
    pthread_mutex_lock (&self->log_mutex);
    self->log_dropped [reason]++;
    bool say = !self->log_said;
    self->log_said = true;
    pthread_mutex_unlock (&self->log_mutex);
    if (say)
        trove_log ('W', "http: %s (further ones are summed up once a minute)", what);
}

//  Once a minute: "N connections dropped in the last minute (...)".
void
http_log_tick (trove_http_t *self, int64_t now_us)
{
    char line [600] = "";
    uint64_t total = 0;
    pthread_mutex_lock (&self->log_mutex);
    if (now_us - self->log_window_us >= S_LOG_WINDOW_US) {
        size_t used = 0;
        for (size_t i = 0; i <= HTTP_NREASONS; i++) {
            if (!self->log_dropped [i])
                continue;
            total += self->log_dropped [i];
            int n = snprintf (line + used, sizeof line - used, "%s%s %llu", used ? ", " : "",
                              i < HTTP_NREASONS ? s_reasons [i] : "connection errors",
                              (unsigned long long) self->log_dropped [i]);
            if (n > 0 && (size_t) n < sizeof line - used)
                used += (size_t) n;
        }
        memset (self->log_dropped, 0, sizeof self->log_dropped);
        self->log_window_us = now_us;
        self->log_said = false;
    }
    pthread_mutex_unlock (&self->log_mutex);
    if (total)
        trove_log ('W', "http: %llu connections dropped or refused in the last minute (%s)",
                   (unsigned long long) total, line);
}

void
trove_http_limits_default (trove_http_limits_t *limits)
{
    limits->max_connections = 256;
    limits->max_per_client = 32;
    limits->header_timeout_s = 10;
    limits->body_timeout_s = 60;
    limits->idle_timeout_s = 30;
    limits->max_streams = 64;
}

static int
s_knob (const trove_cfg_t *cfg, const char *name, unsigned long min, unsigned long max, unsigned long *out,
        char **err)
{
    char path [80];
    snprintf (path, sizeof path, "limits/%s", name);
    const char *text = trove_cfg_get (cfg, path, NULL);
    if (!text)
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul (text, &end, 10);
    if (!*text || *end || errno || *text == '-' || v < min || v > max) {
        *err = trove_strdupf ("%s = '%s': want an integer in %lu..%lu", path, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int
trove_http_limits_read (const trove_cfg_t *cfg, trove_http_limits_t *limits, char **err_p)
{
    trove_http_limits_default (limits);
    unsigned long conns = limits->max_connections, per = limits->max_per_client,
                  header = limits->header_timeout_s, body = limits->body_timeout_s,
                  idle = limits->idle_timeout_s, streams = limits->max_streams;
    char *err = NULL;
    if (s_knob (cfg, "http_max_connections", 1, 65536, &conns, &err)
        || s_knob (cfg, "http_max_per_client", 0, 65536, &per, &err)
        || s_knob (cfg, "http_header_timeout_s", 1, 3600, &header, &err)
        || s_knob (cfg, "http_body_timeout_s", 1, 3600, &body, &err)
        || s_knob (cfg, "http_idle_timeout_s", 1, 3600, &idle, &err)
        || s_knob (cfg, "http_max_streams", 1, 4096, &streams, &err)) {
        if (err_p)
            *err_p = err;
        else
            free (err);
        return -1;
    }
    limits->max_connections = conns;
    limits->max_per_client = per;
    limits->header_timeout_s = (unsigned) header;
    limits->body_timeout_s = (unsigned) body;
    limits->idle_timeout_s = (unsigned) idle;
    limits->max_streams = streams;
    return 0;
}

trove_http_t *
trove_http_new (size_t max_body)
{
    trove_http_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max_body = max_body;
    self->listen_fd = -1;
    self->wake [0] = self->wake [1] = -1;
    trove_http_limits_default (&self->limits);
    atomic_init (&self->stopping, false);
    pthread_mutex_init (&self->log_mutex, NULL);
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->streams_gone, NULL);
    return self;
}

void
trove_http_destroy (trove_http_t **self_p)
{
    assert (self_p);
    trove_http_t *self = *self_p;
    if (self) {
        atomic_store (&self->stopping, true);
        if (self->door_running) {
            if (write (self->wake [1], "x", 1) < 0) {
                //  The door also wakes every tick and sees `stopping`.
            }
            pthread_join (self->door, NULL);
        }
        for (size_t i = 0; i < self->npending; i++)
            close (self->pending [i].fd);
        if (self->listen_fd >= 0)
            close (self->listen_fd);
        for (int i = 0; i < 2; i++)
            if (self->wake [i] >= 0)
                close (self->wake [i]);
        //  Closes every connection (their socket contexts are freed on the
        //  way); none may be suspended waiting for a stream's bytes.
        http_streams_stop (self);
        if (self->daemon)
            MHD_stop_daemon (self->daemon);
        http_streams_wait (self);
        http_tls_free (self);
        for (size_t i = 0; i < self->nroutes; i++) {
            free (self->routes [i].method);
            free (self->routes [i].path);
        }
        free (self->clients);
        free (self->pending);
        pthread_cond_destroy (&self->streams_gone);
        pthread_mutex_destroy (&self->mutex);
        pthread_mutex_destroy (&self->log_mutex);
        free (self);
        *self_p = NULL;
    }
}

static int
s_add_route (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg,
             bool open)
{
    assert (self);
    assert (method && path && fn);
    if (self->daemon || self->nroutes == HTTP_MAX_ROUTES || path [0] != '/')
        return -1;
    http_route_t *r = &self->routes [self->nroutes];
    r->method = strdup (method);
    r->path = strdup (path);
    if (!r->method || !r->path) {
        free (r->method);
        free (r->path);
        return -1;
    }
    r->fn = fn;
    r->arg = arg;
    r->open = open;
    self->nroutes++;
    return 0;
}

int
trove_http_route (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg)
{
    return s_add_route (self, method, path, fn, arg, false);
}

int
trove_http_route_open (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg)
{
    return s_add_route (self, method, path, fn, arg, true);
}

char *
trove_http_routes (trove_http_t *self)
{
    assert (self);
    size_t size = 1;
    for (size_t i = 0; i < self->nroutes; i++)
        size += strlen (self->routes [i].method) + strlen (self->routes [i].path) + 8;
    char *text = malloc (size);
    if (!text)
        return NULL;
    size_t used = 0;
    text [0] = 0;
    for (size_t i = 0; i < self->nroutes; i++) {
        const http_route_t *r = &self->routes [i];
        int n = snprintf (text + used, size - used, "%s %s%s\n", r->method, r->path, r->open ? " open" : "");
        assert (n > 0 && (size_t) n < size - used);
        used += (size_t) n;
    }
    return text;
}

int
trove_http_set_limits (trove_http_t *self, const trove_http_limits_t *limits)
{
    assert (self && limits);
    if (self->daemon || limits->max_connections == 0 || limits->header_timeout_s == 0
        || limits->body_timeout_s == 0 || limits->idle_timeout_s == 0)
        return -1;
    self->limits = *limits;
    return 0;
}

int
trove_http_set_auth (trove_http_t *self, trove_http_auth_fn *fn, void *arg)
{
    assert (self);
    if (self->daemon)
        return -1;
    self->auth = fn;
    self->auth_arg = arg;
    return 0;
}

int
trove_http_set_metrics (trove_http_t *self, trove_metrics_t *registry)
{
    assert (self && registry);
    if (self->daemon)
        return -1;
    static const char *const labels [] = {"reason", NULL};
    for (size_t i = 0; i < HTTP_NREASONS; i++) {
        const char *values [] = {s_reasons [i], NULL};
        self->refused [i] = trove_metrics_counter (
            registry, "trove_ingestor_http_refused_total",
            "HTTP requests refused and connections dropped by the ingestor's listener, by reason.", labels,
            values);
    }
    self->connections = trove_metrics_gauge (registry, "trove_ingestor_http_connections",
                                             "Open HTTP connections (reading a head or served).", NULL, NULL);
    self->streams_open = trove_metrics_gauge (
        registry, "trove_ingestor_http_streams",
        "Streaming responses open (GET /v1/awards/stream), at most limits/http_max_streams.", NULL, NULL);
    return 0;
}

const char *
trove_http_header (const trove_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers [2 * i] && strcasecmp (req->headers [2 * i], name) == 0)
            return req->headers [2 * i + 1];
    return NULL;
}

const char *
trove_http_arg (const trove_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nargs; i++)
        if (req->args [2 * i] && strcmp (req->args [2 * i], name) == 0)
            return req->args [2 * i + 1] ? req->args [2 * i + 1] : "";
    return NULL;
}

const char *
trove_http_bearer (const trove_http_request_t *req, size_t *len_p)
{
    const char *h = trove_http_header (req, "Authorization");
    if (!h || strncasecmp (h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    size_t len = strlen (h);
    while (len && h [len - 1] == ' ')
        len--;
    *len_p = len;
    return len ? h : NULL;
}

static int
s_hex_digit (char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

int
trove_http_unescape (const char *in, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in [i];
        if (c == '%') {
            int hi = i + 2 < len ? s_hex_digit (in [i + 1]) : -1;
            int lo = i + 2 < len ? s_hex_digit (in [i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char) (hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= size)
            return -1;
        out [n++] = c;
    }
    if (size == 0)
        return -1;
    out [n] = 0;
    //  NUL and control characters included: the text must stay one C string.
    return n <= INT32_MAX && trove_utf8_valid (out, n) ? (int) n : -1;
}

void
trove_http_reply (trove_http_response_t *resp, unsigned status, char *body)
{
    free (resp->body);
    resp->status = status;
    resp->body = body;
}

void
trove_http_reply_code (trove_http_response_t *resp, const char *code)
{
    snprintf (resp->error, sizeof resp->error, "%s", code ? code : "");
}

void
trove_http_reply_error (trove_http_response_t *resp, unsigned status, const char *code, const char *detail)
{
    json_t *root = json_pack ("{s:s, s:s}", "error", code, "detail", detail ? detail : "");
    char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
    json_decref (root);
    if (text) {
        //  One line, newline-terminated, like the other answers.
        char *line = trove_strdupf ("%s\n", text);
        if (line && strlen (line) == strlen (text) + 1) {
            free (text);
            text = line;
        }
        else
            free (line);
    }
    trove_http_reply (resp, status, text);
    trove_http_reply_code (resp, code);
}

int
trove_http_reply_header (trove_http_response_t *resp, const char *name, const char *value)
{
    if (resp->nheaders == TROVE_HTTP_MAX_HEADERS || strlen (name) >= sizeof resp->header_name [0]
        || strlen (value) >= sizeof resp->header_value [0])
        return -1;
    strcpy (resp->header_name [resp->nheaders], name);
    strcpy (resp->header_value [resp->nheaders], value);
    resp->nheaders++;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Routing

//  Does route r take path? Sets *rest to what follows a prefix.
static bool
s_route_matches (const http_route_t *r, const char *path, const char **rest)
{
    size_t len = strlen (r->path);
    if (len && r->path [len - 1] == '/') {
        if (strncmp (path, r->path, len) != 0)
            return false;
        *rest = path + len;
        return true;
    }
    *rest = "";
    return strcmp (path, r->path) == 0;
}

//  The body limit, routing and the handler; authentication already done.
static void
s_route (trove_http_t *self, const trove_http_request_t *req, trove_http_response_t *resp)
{
    if (req->body_size > self->max_body) {
        char detail [120];
        snprintf (detail, sizeof detail, "the body is %zu bytes, limit %zu", req->body_size, self->max_body);
        trove_http_reply_error (resp, 413, "body_too_large", detail);
        return;
    }
    const http_route_t *best = NULL;
    const char *best_rest = "";
    size_t best_len = 0;
    char allow [200] = "";
    const char *path = req->path ? req->path : "";
    const char *method = req->method ? req->method : "";
    //  Handlers echo paths into JSON, which must be UTF-8 text (found by
    //  fuzz/fuzz_http: a path with invalid UTF-8 gave a handler no body).
    if (!trove_utf8_valid (path, strlen (path))) {
        trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PATH), "the path is not UTF-8 text");
        return;
    }
    for (size_t i = 0; i < self->nroutes; i++) {
        const http_route_t *r = &self->routes [i];
        const char *rest;
        if (!s_route_matches (r, path, &rest))
            continue;
        if (strcmp (r->method, method) != 0) {
            if (!strstr (allow, r->method) && strlen (allow) + strlen (r->method) + 3 < sizeof allow) {
                if (*allow)
                    strcat (allow, ", ");
                strcat (allow, r->method);
            }
            continue;
        }
        size_t len = strlen (r->path);
        if (!best || len > best_len)
            best = r, best_len = len, best_rest = rest;
    }
    if (!best && *allow) {
        trove_http_reply_error (resp, 405, "method_not_allowed",
                                "this path takes another method (see Allow)");
        trove_http_reply_header (resp, "Allow", allow);
        return;
    }
    if (!best) {
        trove_http_reply_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND), "no such path");
        return;
    }
    trove_http_request_t routed = *req;
    routed.rest = best_rest;
    routed.method = method;
    routed.path = path;
    routed.server = self;
    if (!routed.body)
        routed.body = "", routed.body_size = 0;
    best->fn (best->arg, &routed, resp);
    if (resp->status < 100 || resp->status > 599) {
        if (resp->stream)
            http_stream_drop (resp->stream);
        resp->stream = NULL;
        resp->content_type = NULL;
        resp->nheaders = 0;
        trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), "the handler gave no answer");
    }
}

//  Authentication hook; false when it refused (resp filled, 401 when it
//  said nothing).
static bool
s_authenticate (trove_http_t *self, trove_http_request_t *req, trove_http_response_t *resp)
{
    if (!self->auth)
        return true;
    const char *path = req->path ? req->path : "", *method = req->method ? req->method : "", *rest;
    for (size_t i = 0; i < self->nroutes; i++) {
        const http_route_t *r = &self->routes [i];
        if (r->open && strcmp (r->method, method) == 0 && s_route_matches (r, path, &rest))
            return true;
    }
    req->principal = self->auth (self->auth_arg, req, resp);
    if (req->principal)
        return true;
    if (resp->status < 400 || resp->status > 599) {
        resp->nheaders = 0;
        trove_http_reply_error (resp, 401, trove_strerror (TROVE_E_UNAUTHORIZED), "missing or unknown key");
    }
    return false;
}

static void
s_count_answer (trove_http_t *self, const trove_http_response_t *resp)
{
    if (resp->status >= 400)
        http_dropped (self, http_reason_index (resp->error [0] ? resp->error : NULL, resp->status), NULL);
}

void
trove_http_dispatch (trove_http_t *self, const trove_http_request_t *req, trove_http_response_t *resp)
{
    assert (self);
    assert (req && resp);
    memset (resp, 0, sizeof *resp);
    trove_http_request_t authed = *req;
    if (s_authenticate (self, &authed, resp))
        s_route (self, &authed, resp);
    //  No socket: the client of a stream is gone before its first byte.
    if (resp->stream)
        http_stream_drop (resp->stream);
    resp->stream = NULL;
    s_count_answer (self, resp);
}

//  ---------------------------------------------------------------------------
//  libmicrohttpd glue

static enum MHD_Result
s_queue (trove_http_t *self, struct MHD_Connection *connection, trove_http_response_t *resp, bool close)
{
    s_count_answer (self, resp);
    char *body = resp->body;
    resp->body = NULL;
    struct MHD_Response *response;
    if (resp->stream) {
        //  The body comes from the stream (it took the connection's reference).
        free (body);
        body = NULL;
        response = http_stream_response (resp->stream, connection);
        resp->stream = NULL;
    }
    else
        response = MHD_create_response_from_buffer (body ? strlen (body) : 0, body ? body : (char *) "",
                                                    body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!response) {
        free (body);
        return MHD_NO;  //  out of memory: libmicrohttpd closes the connection
    }
    enum MHD_Result ok = MHD_add_response_header (
        response, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type ? resp->content_type : "application/json");
    if (ok == MHD_YES)
        ok = MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (size_t i = 0; ok == MHD_YES && i < resp->nheaders; i++)
        if (strcasecmp (resp->header_name [i], "Connection") != 0)
            ok = MHD_add_response_header (response, resp->header_name [i], resp->header_value [i]);
    //  An answer given before the body was read closes the connection: the
    //  unread rest must never be taken for a request.
    if (ok == MHD_YES && close)
        ok = MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok == MHD_YES)
        ok = MHD_queue_response (connection, resp->status, response);
    MHD_destroy_response (response);
    return ok;
}

typedef struct {
    const char *pairs [2 * HTTP_MAX_PAIRS];
    size_t n;
    bool truncated;
} s_pairs_t;

static enum MHD_Result
s_collect (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    s_pairs_t *pairs = cls;
    if (pairs->n == HTTP_MAX_PAIRS) {
        pairs->truncated = true;
        return MHD_NO;  //  stop iterating: the rest is ignored
    }
    pairs->pairs [2 * pairs->n] = key;
    pairs->pairs [2 * pairs->n + 1] = value ? value : "";
    pairs->n++;
    return MHD_YES;
}

//  Decode the query arguments in place: each pointer is moved into *arena_p
//  (caller frees). Returns 0, -1 when one is not percent-encoded UTF-8 text,
//  -2 when out of memory.
static int
s_decode_pairs (s_pairs_t *pairs, char **arena_p)
{
    size_t total = 0;
    for (size_t i = 0; i < 2 * pairs->n; i++)
        total += strlen (pairs->pairs [i]) + 1;
    char *arena = *arena_p = malloc (total ? total : 1);
    if (!arena)
        return -2;
    size_t used = 0;
    for (size_t i = 0; i < 2 * pairs->n; i++) {
        const char *raw = pairs->pairs [i];
        int len = trove_http_unescape (raw, strlen (raw), arena + used, total - used);
        if (len < 0)
            return -1;
        pairs->pairs [i] = arena + used;
        used += (size_t) len + 1;
    }
    return 0;
}

static enum MHD_Result
s_early (trove_http_t *self, struct MHD_Connection *connection, s_conn_t *c, trove_http_response_t *resp)
{
    c->answered = true;
    return s_queue (self, connection, resp, true);
}

static enum MHD_Result
s_too_large (trove_http_t *self, struct MHD_Connection *connection, s_conn_t *c)
{
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    char detail [120];
    snprintf (detail, sizeof detail, "the body is larger than %zu bytes", self->max_body);
    trove_http_reply_error (&resp, 413, "body_too_large", detail);
    return s_early (self, connection, c, &resp);
}

static void
s_sock_state (struct MHD_Connection *connection, trove_http_t *self, int state)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_sock_t *sock = info ? info->socket_context : NULL;
    if (!sock)
        return;
    pthread_mutex_lock (&self->mutex);
    sock->state = state;
    sock->since_us = trove_mono_us ();
    if (state == HTTP_IN_BODY)
        sock->requests++;
    pthread_mutex_unlock (&self->mutex);
}

//  The first call of a request: its head is in. Framing (for a kept-alive
//  connection's later requests: the door saw only the first), then the key,
//  then the announced size.
static enum MHD_Result
s_head (trove_http_t *self, struct MHD_Connection *connection, s_conn_t *c, const char *url,
        const char *method, const char *version)
{
    s_sock_state (connection, self, HTTP_IN_BODY);
    s_pairs_t headers = {.n = 0};
    MHD_get_connection_values (connection, MHD_HEADER_KIND, s_collect, &headers);
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    const char *code = NULL, *detail = NULL;
    int status = headers.truncated ? 431 : 0;
    if (status)
        code = "headers_too_large", detail = "more than 128 header fields";
    else
        status = trove_http_fields_check (version && strcmp (version, "HTTP/1.1") == 0, headers.pairs,
                                          headers.n, &code, &detail);
    if (status) {
        trove_http_reply_error (&resp, (unsigned) status, code, detail);
        return s_early (self, connection, c, &resp);
    }
    trove_http_request_t req = {
        .method = method, .path = url, .body = "", .headers = headers.pairs, .nheaders = headers.n};
    if (!s_authenticate (self, &req, &resp))
        return s_early (self, connection, c, &resp);
    c->principal = req.principal;
    const char *length =
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull (length, NULL, 10) > self->max_body)
        return s_too_large (self, connection, c);
    return MHD_YES;
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    trove_http_t *self = cls;
    s_conn_t *c = *con_cls;
    if (!c) {
        c = calloc (1, sizeof *c);
        if (!c)
            return MHD_NO;
        *con_cls = c;
        return s_head (self, connection, c, url, method, version);
    }
    if (c->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        //  Without Content-Length (chunked), the excess is read and dropped
        //  and 413 answered at the end: libmicrohttpd 0.9.75 cannot answer
        //  in the middle of a body. Memory stays bounded; the body deadline
        //  bounds a slow sender.
        if (c->too_large || c->size + n > self->max_body) {
            free (c->body);
            c->body = NULL;
            c->too_large = true;
            return MHD_YES;
        }
        if (c->size + n + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->size + n + 1)
                cap *= 2;
            char *body = realloc (c->body, cap);
            if (!body)
                return MHD_NO;
            c->body = body;
            c->cap = cap;
        }
        memcpy (c->body + c->size, upload_data, n);
        c->size += n;
        c->body [c->size] = 0;
        return MHD_YES;
    }
    s_sock_state (connection, self, HTTP_HANDLING);
    if (c->too_large)
        return s_too_large (self, connection, c);
    s_pairs_t headers = {.n = 0}, args = {.n = 0};
    MHD_get_connection_values (connection, MHD_HEADER_KIND, s_collect, &headers);
    MHD_get_connection_values (connection, MHD_GET_ARGUMENT_KIND, s_collect, &args);
    //  libmicrohttpd leaves them encoded (s_unescape_none) but for '+'.
    char *arena = NULL;
    int decoded = s_decode_pairs (&args, &arena);
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    if (decoded) {
        free (arena);
        if (decoded == -1)
            trove_http_reply_error (&resp, 400, "bad_query",
                                    "a query argument is not percent-encoded UTF-8 text");
        else {
            trove_http_reply_error (&resp, 503, trove_strerror (TROVE_E_OVERLOADED),
                                    "out of memory; retry later");
            //  As every 503 of the API (docs/openapi.json requires it).
            trove_http_reply_header (&resp, "Retry-After", "1");
        }
        c->answered = true;
        return s_queue (self, connection, &resp, false);
    }
    trove_http_request_t req = {
        .method = method,
        .path = url,
        .body = c->body ? c->body : "",
        .body_size = c->size,
        .headers = headers.pairs,
        .nheaders = headers.n,
        .args = args.pairs,
        .nargs = args.n,
        .principal = c->principal,
    };
    //  Authenticated at the head (s_head); a server without a hook has none.
    s_route (self, &req, &resp);
    free (arena);
    c->answered = true;
    bool close = false;
    for (size_t i = 0; i < resp.nheaders; i++)
        close |= strcasecmp (resp.header_name [i], "Connection") == 0;
    return s_queue (self, connection, &resp, close);
}

//  Paths and query arguments are not decoded by libmicrohttpd (it would
//  turn "a%2Fb" into two path segments and cut a value at "%00"): routing
//  sees the path as sent, handlers decode its segments, s_access the
//  arguments.
static size_t
s_unescape_none (void *cls, struct MHD_Connection *connection, char *text)
{
    (void) cls, (void) connection;
    return strlen (text);
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void) toe;
    trove_http_t *self = cls;
    s_conn_t *c = *con_cls;
    if (c) {
        free (c->body);
        free (c);
        *con_cls = NULL;
    }
    //  Waiting for the next request: the header deadline runs again.
    s_sock_state (connection, self, HTTP_WAIT_HEAD);
}

static void
s_notify (void *cls, struct MHD_Connection *connection, void **socket_context,
          enum MHD_ConnectionNotificationCode code)
{
    trove_http_t *self = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        http_sock_t *sock = calloc (1, sizeof *sock);
        if (!sock || !fd || !addr || !addr->client_addr) {
            free (sock);
            return;  //  not watched: libmicrohttpd's idle timeout still holds
        }
        sock->fd = fd->connect_fd;
        http_client_key (addr->client_addr, sock->key);
        sock->state = HTTP_WAIT_HEAD;
        sock->since_us = trove_mono_us ();
        pthread_mutex_lock (&self->mutex);
        http_client_t *client = http_client (self, sock->key, true);
        if (client)
            client->active++;
        sock->next = self->socks;
        if (self->socks)
            self->socks->prev = sock;
        self->socks = sock;
        self->nsocks++;
        pthread_mutex_unlock (&self->mutex);
        trove_gauge_add_int (self->connections, 1);
        *socket_context = sock;
        return;
    }
    http_sock_t *sock = *socket_context;
    if (!sock)
        return;
    //  Before libmicrohttpd closes the socket: the reaper holds the mutex
    //  while it shuts a socket down, so it never touches a reused fd.
    pthread_mutex_lock (&self->mutex);
    http_client_t *client = http_client (self, sock->key, false);
    if (client) {
        client->active--;
        http_client_forget (self, client);
    }
    if (sock->prev)
        sock->prev->next = sock->next;
    else
        self->socks = sock->next;
    if (sock->next)
        sock->next->prev = sock->prev;
    self->nsocks--;
    pthread_mutex_unlock (&self->mutex);
    trove_gauge_add_int (self->connections, -1);
    free (sock);
    *socket_context = NULL;
}

static void
s_log (void *cls, const char *fmt, va_list args)
{
    trove_http_t *self = cls;
    char line [256];
    vsnprintf (line, sizeof line, fmt, args);
    size_t len = strlen (line);
    while (len && (line [len - 1] == '\n' || line [len - 1] == '\r'))
        line [--len] = 0;
    pthread_mutex_lock (&self->log_mutex);
    memcpy (self->last_error, line, len + 1);
    bool say = self->log_direct || !self->log_said;
    if (!self->log_direct) {
        self->log_dropped [HTTP_NREASONS]++;
        self->log_said = true;
    }
    pthread_mutex_unlock (&self->log_mutex);
    //  A flood of broken connections must not fill the disk: one line a
    //  minute, the rest summed up by the door's tick.
    if (say)
        trove_log ('W', "http: %s", line);
}


int
trove_http_start (trove_http_t *self, const char *address, unsigned threads, char **err_p)
{
    assert (self);
    assert (address);
    char *message = NULL;
    struct sockaddr_storage addr;
    if (self->daemon) {
        message = trove_strdupf ("http: already serving on port %u", self->port);
        goto fail;
    }
    if (http_parse_address (address, &addr)) {
        message = trove_strdupf ("http: '%s' is not a numeric address:port", address);
        goto fail;
    }
    if (threads < 1 || threads > 64) {
        message = trove_strdupf ("http: %u threads: want 1..64", threads);
        goto fail;
    }
    size_t max = self->limits.max_connections;
    self->clients = calloc (max, sizeof *self->clients);
    self->pending = calloc (max, sizeof *self->pending);
    if (!self->clients || !self->pending || pipe2 (self->wake, O_CLOEXEC | O_NONBLOCK)) {
        message = trove_strdupf ("http: cannot serve on %s: %s", address, strerror (errno ? errno : ENOMEM));
        goto fail;
    }
    if (http_listen (self, &addr)) {
        message = trove_strdupf ("http: cannot serve on %s: %s", address, strerror (errno));
        goto fail;
    }
    pthread_mutex_lock (&self->log_mutex);
    self->last_error [0] = 0;
    self->log_direct = true;
    self->log_window_us = trove_mono_us ();
    pthread_mutex_unlock (&self->log_mutex);
    //  Suspend and resume: a stream waiting for bytes holds no thread.
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET
                   | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    //  Options that depend on the server: a pool only with more than one
    //  thread (libmicrohttpd warns at every start about a pool of one);
    //  HTTPS with the certificate from a callback, so a reload needs no
    //  restart (trove_http_tls.c).
    struct MHD_OptionItem opts [4];
    size_t nopts = 0;
    if (threads > 1)
        opts [nopts++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
    if (self->tls_pair) {
        if (http_tls_claim (self)) {
            message = strdup ("http: another listener of this process serves HTTPS (one per process)");
            goto fail;
        }
        flags |= MHD_USE_TLS;
        opts [nopts++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, http_tls_callback ()};
        opts [nopts++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, self->tls_priorities};
    }
    opts [nopts] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    errno = 0;
    //  Room above the door's own limit: a connection closing is counted out
    //  by the door a moment before libmicrohttpd forgets it.
    self->daemon =
        MHD_start_daemon (flags, 0, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_log, self,
                          MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_NOTIFY_CONNECTION,
                          s_notify, self, MHD_OPTION_UNESCAPE_CALLBACK, s_unescape_none, NULL,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned) (max + 64), MHD_OPTION_CONNECTION_TIMEOUT,
                          self->limits.idle_timeout_s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!self->daemon) {
        int error = errno;
        pthread_mutex_lock (&self->log_mutex);
        message = trove_strdupf ("http: cannot serve on %s: %s", address,
                                 self->last_error [0] ? self->last_error
                                 : error              ? strerror (error)
                                                      : "libmicrohttpd failed to start");
        pthread_mutex_unlock (&self->log_mutex);
        goto fail;
    }
    if (pthread_create (&self->door, NULL, http_door, self)) {
        message = trove_strdupf ("http: cannot serve on %s: no thread", address);
        MHD_stop_daemon (self->daemon);
        self->daemon = NULL;
        goto fail;
    }
    self->door_running = true;
    pthread_mutex_lock (&self->log_mutex);
    self->log_direct = false;
    pthread_mutex_unlock (&self->log_mutex);
    return 0;
fail:
    if (!self->daemon)
        http_tls_release (self);
    if (self->listen_fd >= 0)
        close (self->listen_fd);
    self->listen_fd = -1;
    for (int i = 0; i < 2; i++) {
        if (self->wake [i] >= 0)
            close (self->wake [i]);
        self->wake [i] = -1;
    }
    free (self->clients);
    free (self->pending);
    self->clients = NULL;
    self->pending = NULL;
    self->port = 0;
    if (err_p)
        *err_p = message;
    else
        free (message);
    return -1;
}

uint16_t
trove_http_port (trove_http_t *self)
{
    assert (self);
    return self->daemon ? self->port : 0;
}
