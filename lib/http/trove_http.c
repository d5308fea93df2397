/*  trove_http - HTTP server with a route table (libmicrohttpd behind a door
    that checks each connection's first request head). See trove_http.h. */
#include "trove_http.h"
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

#define S_MAX_ROUTES 32
#define S_MAX_PAIRS 128           //  headers or query arguments kept per request
#define S_TICK_MS 200             //  the door's reaper and log cadence
#define S_LOG_WINDOW_US 60000000  //  one line per minute about dropped connections
#define S_LINGER_US 2000000       //  a refused connection is drained this long, then closed
#define S_REPEEK_US 20000         //  an incomplete head is looked at again no sooner
#define S_SLOW_US 1000000         //  a head not complete after this may give way (the per-client cap)

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
#define S_NREASONS (sizeof s_reasons / sizeof s_reasons [0])

typedef struct {
    char *method;  //  exact method
    char *path;    //  exact path, or prefix when it ends in '/'
    trove_http_fn *fn;
    void *arg;
    bool open;  //  served without the authentication hook
} s_route_t;

//  A client address as the caps count it: IPv4, or the /64 of IPv6.
typedef struct {
    uint8_t key [16];
    size_t pending;  //  connections the door holds
    size_t active;   //  connections libmicrohttpd holds
} s_client_t;

//  A connection libmicrohttpd holds (its socket context).
typedef struct _s_sock_t {
    struct _s_sock_t *prev, *next;
    int fd;
    uint8_t key [16];
    int state;         //  S_WAIT_HEAD, S_IN_BODY, S_HANDLING
    int64_t since_us;  //  when that state began
} s_sock_t;

enum { S_WAIT_HEAD, S_IN_BODY, S_HANDLING };

//  A connection the door holds, before its first head is complete.
typedef struct {
    int fd;
    uint8_t key [16];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t since_us;
    int64_t not_before_us;  //  next look at an incomplete head
    size_t seen;            //  bytes peeked last time
    bool closing;           //  refused: its answer is sent, the rest is drained
} s_pending_t;

struct _trove_http_t {
    s_route_t routes [S_MAX_ROUTES];
    size_t nroutes;
    size_t max_body;  //  bytes; more is answered 413
    trove_http_limits_t limits;
    trove_http_auth_fn *auth;
    void *auth_arg;
    struct MHD_Daemon *daemon;  //  NULL until started
    uint16_t port;              //  served port
    int listen_fd;              //  -1 when not serving
    int wake [2];               //  the door's wake-up pipe
    pthread_t door;
    bool door_running;
    atomic_bool stopping;
    //  Clients and the connections libmicrohttpd holds, under mutex.
    pthread_mutex_t mutex;
    s_client_t *clients;  //  max_connections entries, nclients used
    size_t nclients;
    s_sock_t *socks;  //  list
    size_t nsocks;
    //  The door's own (its thread only).
    s_pending_t *pending;
    size_t npending;
    //  Counters (NULL when no registry).
    trove_counter_t *refused [S_NREASONS];
    trove_gauge_t *connections;
    //  Log lines about dropped connections, at most one a minute, under log_mutex.
    pthread_mutex_t log_mutex;
    char last_error [256];                  //  libmicrohttpd's last message, for start errors
    bool log_direct;                        //  while starting: every message goes through
    int64_t log_window_us;                  //  start of the current minute
    uint64_t log_dropped [S_NREASONS + 1];  //  in this minute, by reason (last: libmicrohttpd's messages)
    bool log_said;                          //  a line was written in this minute
};

//  Per request state, while the body arrives.
typedef struct {
    char *body;  //  received so far (NUL-terminated), NULL when none
    size_t size, cap;
    bool too_large;         //  over max_body: the rest is discarded
    bool answered;          //  a response is queued
    const void *principal;  //  from the authentication hook
} s_conn_t;

static size_t
s_reason_index (const char *code, unsigned status)
{
    for (size_t i = 0; code && i < S_NREASONS; i++)
        if (strcmp (s_reasons [i], code) == 0)
            return i;
    const char *fallback = status == 400 ? trove_strerror (TROVE_E_BAD_REQUEST)
                         : status == 503 ? "unavailable"
                                         : "other";
    for (size_t i = 0; i < S_NREASONS; i++)
        if (strcmp (s_reasons [i], fallback) == 0)
            return i;
    return S_NREASONS - 1;
}

//  Count a dropped connection or a refusal; a log line at most once a
//  minute (the door's tick writes the summary of the rest).
static void
s_dropped (trove_http_t *self, size_t reason, const char *what)
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
static void
s_log_tick (trove_http_t *self, int64_t now_us)
{
    char line [600] = "";
    uint64_t total = 0;
    pthread_mutex_lock (&self->log_mutex);
    if (now_us - self->log_window_us >= S_LOG_WINDOW_US) {
        size_t used = 0;
        for (size_t i = 0; i <= S_NREASONS; i++) {
            if (!self->log_dropped [i])
                continue;
            total += self->log_dropped [i];
            int n = snprintf (line + used, sizeof line - used, "%s%s %llu", used ? ", " : "",
                              i < S_NREASONS ? s_reasons [i] : "connection errors",
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
                  idle = limits->idle_timeout_s;
    char *err = NULL;
    if (s_knob (cfg, "http_max_connections", 1, 65536, &conns, &err)
        || s_knob (cfg, "http_max_per_client", 0, 65536, &per, &err)
        || s_knob (cfg, "http_header_timeout_s", 1, 3600, &header, &err)
        || s_knob (cfg, "http_body_timeout_s", 1, 3600, &body, &err)
        || s_knob (cfg, "http_idle_timeout_s", 1, 3600, &idle, &err)) {
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
        //  Closes every connection (their socket contexts are freed on the way).
        if (self->daemon)
            MHD_stop_daemon (self->daemon);
        for (size_t i = 0; i < self->nroutes; i++) {
            free (self->routes [i].method);
            free (self->routes [i].path);
        }
        free (self->clients);
        free (self->pending);
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
    if (self->daemon || self->nroutes == S_MAX_ROUTES || path [0] != '/')
        return -1;
    s_route_t *r = &self->routes [self->nroutes];
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
    for (size_t i = 0; i < S_NREASONS; i++) {
        const char *values [] = {s_reasons [i], NULL};
        self->refused [i] = trove_metrics_counter (
            registry, "trove_ingestor_http_refused_total",
            "HTTP requests refused and connections dropped by the ingestor's listener, by reason.", labels,
            values);
    }
    self->connections = trove_metrics_gauge (registry, "trove_ingestor_http_connections",
                                             "Open HTTP connections (reading a head or served).", NULL, NULL);
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
//  Framing

//  RFC 9110 token characters (method, header name).
static bool
s_tchar (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

typedef struct {
    const char *name, *value;
    size_t nlen, vlen;
} s_field_t;

static bool
s_name_is (const s_field_t *f, const char *name)
{
    return f->nlen == strlen (name) && strncasecmp (f->name, name, f->nlen) == 0;
}

static int
s_refuse_frame (int status, const char *code, const char *detail, const char **code_p, const char **detail_p)
{
    *code_p = code;
    *detail_p = detail;
    return status;
}

//  What the framing headers say, whichever parser split them.
static int
s_fields_check (bool http11, const s_field_t *fields, size_t n, trove_http_frame_t *frame,
                const char **code_p, const char **detail_p)
{
    size_t lengths = 0, encodings = 0, hosts = 0;
    const s_field_t *length = NULL, *encoding = NULL;
    for (size_t i = 0; i < n; i++) {
        const s_field_t *f = &fields [i];
        if (f->nlen == 0)
            return s_refuse_frame (400, "bad_header", "a header field has no name", code_p, detail_p);
        for (size_t k = 0; k < f->nlen; k++)
            if (!s_tchar ((unsigned char) f->name [k]))
                return s_refuse_frame (400, "bad_header",
                                       "a header name holds a character other than letters, digits and "
                                       "!#$%&'*+-.^_`|~ (a space before the colon?)",
                                       code_p, detail_p);
        for (size_t k = 0; k < f->vlen; k++) {
            unsigned char c = (unsigned char) f->value [k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return s_refuse_frame (400, "bad_header", "a header value holds a control character", code_p,
                                       detail_p);
        }
        if (s_name_is (f, "Content-Length"))
            lengths++, length = f;
        else if (s_name_is (f, "Transfer-Encoding"))
            encodings++, encoding = f;
        else if (s_name_is (f, "Host"))
            hosts++;
    }
    if (lengths && encodings)
        return s_refuse_frame (400, "ambiguous_length",
                               "the request has both Content-Length and Transfer-Encoding: send one", code_p,
                               detail_p);
    if (lengths > 1)
        return s_refuse_frame (400, "ambiguous_length", "the request has several Content-Length headers",
                               code_p, detail_p);
    if (encodings > 1)
        return s_refuse_frame (400, "bad_transfer_encoding",
                               "the request has several Transfer-Encoding headers", code_p, detail_p);
    frame->has_length = lengths == 1;
    frame->chunked = encodings == 1;
    frame->length = 0;
    if (length) {
        if (length->vlen == 0 || length->vlen > 18)
            return s_refuse_frame (400, "bad_content_length", "Content-Length must be 1 to 18 decimal digits",
                                   code_p, detail_p);
        for (size_t k = 0; k < length->vlen; k++) {
            if (length->value [k] < '0' || length->value [k] > '9')
                return s_refuse_frame (400, "bad_content_length",
                                       "Content-Length must be decimal digits only (no sign, no list)",
                                       code_p, detail_p);
            frame->length = frame->length * 10 + (uint64_t) (length->value [k] - '0');
        }
    }
    if (encoding) {
        if (!http11)
            return s_refuse_frame (400, "bad_transfer_encoding", "HTTP/1.0 has no Transfer-Encoding", code_p,
                                   detail_p);
        if (encoding->vlen != 7 || strncasecmp (encoding->value, "chunked", 7) != 0)
            return s_refuse_frame (400, "bad_transfer_encoding",
                                   "the only Transfer-Encoding taken is exactly 'chunked'", code_p, detail_p);
    }
    if (http11 && hosts == 0)
        return s_refuse_frame (400, "missing_host", "an HTTP/1.1 request must have a Host header", code_p,
                               detail_p);
    if (hosts > 1)
        return s_refuse_frame (400, "bad_header", "the request has several Host headers", code_p, detail_p);
    return 0;
}

int
trove_http_fields_check (bool http11, const char *const *headers, size_t nheaders, const char **code_p,
                         const char **detail_p)
{
    s_field_t fields [S_MAX_PAIRS];
    if (nheaders > S_MAX_PAIRS)
        return s_refuse_frame (400, "bad_header", "too many header fields", code_p, detail_p);
    for (size_t i = 0; i < nheaders; i++) {
        const char *name = headers [2 * i] ? headers [2 * i] : "";
        const char *value = headers [2 * i + 1] ? headers [2 * i + 1] : "";
        fields [i] = (s_field_t){name, value, strlen (name), strlen (value)};
    }
    trove_http_frame_t frame;
    return s_fields_check (http11, fields, nheaders, &frame, code_p, detail_p);
}

//  Where the line starting at p ends ("\r\n"), within end. Returns the
//  offset of '\r', -1 when the line is not complete, -2 when a bare CR or
//  LF is in it.
static ptrdiff_t
s_line_end (const char *p, const char *end)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n')
            return -2;  //  LF without CR
        if (*q == '\r') {
            if (q + 1 == end)
                return -1;
            return q [1] == '\n' ? q - p : -2;
        }
    }
    return -1;
}

int
trove_http_frame_check (const char *buf, size_t len, trove_http_frame_t *frame, const char **code_p,
                        const char **detail_p)
{
    assert (buf || len == 0);
    memset (frame, 0, sizeof *frame);
    const char *end = buf + (len > TROVE_HTTP_MAX_HEAD ? TROVE_HTTP_MAX_HEAD : len);
    //  Request line: METHOD SP /target SP HTTP/1.x CRLF
    ptrdiff_t eol = s_line_end (buf, end);
    if (eol == -2)
        return s_refuse_frame (400, "bad_request_line", "lines must end in CRLF", code_p, detail_p);
    if (eol == -1) {
        //  Refuse what can never become a request line without waiting for it.
        for (const char *q = buf; q < end; q++)
            if (*q == ' ')
                break;
            else if (!s_tchar ((unsigned char) *q))
                return s_refuse_frame (400, "bad_request_line", "the method is not a token", code_p,
                                       detail_p);
        if (len >= TROVE_HTTP_MAX_HEAD)
            return s_refuse_frame (431, "headers_too_large", "the request head is over 32 KiB", code_p,
                                   detail_p);
        return 1;
    }
    const char *line = buf, *line_end = buf + eol;
    const char *sp1 = memchr (line, ' ', (size_t) (line_end - line));
    const char *sp2 = sp1 ? memchr (sp1 + 1, ' ', (size_t) (line_end - sp1 - 1)) : NULL;
    if (!sp1 || sp1 == line || !sp2 || sp2 == sp1 + 1 || sp1 [1] != '/')
        return s_refuse_frame (400, "bad_request_line", "want METHOD /path HTTP/1.1", code_p, detail_p);
    for (const char *q = line; q < sp1; q++)
        if (!s_tchar ((unsigned char) *q))
            return s_refuse_frame (400, "bad_request_line", "the method is not a token", code_p, detail_p);
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char) *q <= ' ' || (unsigned char) *q >= 0x7f)
            return s_refuse_frame (
                400, "bad_request_line",
                "the target holds a space, a control or a non-ASCII byte (percent-encode it)", code_p,
                detail_p);
    size_t vlen = (size_t) (line_end - sp2 - 1);
    const char *version = sp2 + 1;
    if (vlen == 8 && memcmp (version, "HTTP/1.1", 8) == 0)
        frame->http11 = true;
    else if (vlen == 8 && memcmp (version, "HTTP/1.0", 8) == 0)
        frame->http11 = false;
    else if (vlen == 8 && memcmp (version, "HTTP/", 5) == 0 && version [6] == '.')
        return s_refuse_frame (505, "http_version", "HTTP/1.1 or HTTP/1.0 only", code_p, detail_p);
    else
        return s_refuse_frame (400, "bad_request_line", "want METHOD /path HTTP/1.1", code_p, detail_p);
    //  Header lines up to the empty line.
    s_field_t fields [TROVE_HTTP_MAX_FIELDS];
    size_t n = 0;
    const char *p = line_end + 2;
    while (true) {
        eol = s_line_end (p, end);
        if (eol == -2)
            return s_refuse_frame (400, "bad_header", "lines must end in CRLF", code_p, detail_p);
        if (eol == -1) {
            if (len >= TROVE_HTTP_MAX_HEAD)
                return s_refuse_frame (431, "headers_too_large", "the request head is over 32 KiB", code_p,
                                       detail_p);
            return 1;
        }
        if (eol == 0) {
            frame->head_size = (size_t) (p + 2 - buf);
            break;
        }
        if (*p == ' ' || *p == '\t')
            return s_refuse_frame (400, "bad_header", "folded header lines are not taken", code_p, detail_p);
        if (n == TROVE_HTTP_MAX_FIELDS)
            return s_refuse_frame (431, "headers_too_large", "more than 100 header fields", code_p, detail_p);
        const char *colon = memchr (p, ':', (size_t) eol);
        if (!colon)
            return s_refuse_frame (400, "bad_header", "a header line without a colon", code_p, detail_p);
        const char *v = colon + 1, *vend = p + eol;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend [-1] == ' ' || vend [-1] == '\t'))
            vend--;
        fields [n++] = (s_field_t){p, v, (size_t) (colon - p), (size_t) (vend - v)};
        p += eol + 2;
    }
    return s_fields_check (frame->http11, fields, n, frame, code_p, detail_p);
}

//  ---------------------------------------------------------------------------
//  Routing

//  Does route r take path? Sets *rest to what follows a prefix.
static bool
s_route_matches (const s_route_t *r, const char *path, const char **rest)
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
    const s_route_t *best = NULL;
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
        const s_route_t *r = &self->routes [i];
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
    if (!routed.body)
        routed.body = "", routed.body_size = 0;
    best->fn (best->arg, &routed, resp);
    if (resp->status < 100 || resp->status > 599) {
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
        const s_route_t *r = &self->routes [i];
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
        s_dropped (self, s_reason_index (resp->error [0] ? resp->error : NULL, resp->status), NULL);
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
    s_count_answer (self, resp);
}

//  ---------------------------------------------------------------------------
//  Clients and connections (under self->mutex)

static void
s_client_key (const struct sockaddr *addr, uint8_t key [16])
{
    memset (key, 0, 16);
    if (addr->sa_family == AF_INET)
        memcpy (key, &((const struct sockaddr_in *) addr)->sin_addr, 4);
    else if (addr->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *) addr)->sin6_addr.s6_addr;
        static const uint8_t mapped [12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp (a, mapped, 12) == 0)
            memcpy (key, a + 12, 4);
        else {
            //  One client is a /64: an IPv6 host has the whole of it.
            key [4] = 6;
            memcpy (key + 8, a, 8);
        }
    }
}

static s_client_t *
s_client (trove_http_t *self, const uint8_t key [16], bool create)
{
    for (size_t i = 0; i < self->nclients; i++)
        if (memcmp (self->clients [i].key, key, 16) == 0)
            return &self->clients [i];
    if (!create || self->nclients == self->limits.max_connections)
        return NULL;
    s_client_t *c = &self->clients [self->nclients++];
    memset (c, 0, sizeof *c);
    memcpy (c->key, key, 16);
    return c;
}

static void
s_client_forget (trove_http_t *self, s_client_t *c)
{
    if (c->pending || c->active)
        return;
    *c = self->clients [--self->nclients];
}

//  ---------------------------------------------------------------------------
//  libmicrohttpd glue

static enum MHD_Result
s_queue (trove_http_t *self, struct MHD_Connection *connection, trove_http_response_t *resp, bool close)
{
    s_count_answer (self, resp);
    char *body = resp->body;
    resp->body = NULL;
    struct MHD_Response *response =
        MHD_create_response_from_buffer (body ? strlen (body) : 0, body ? body : (char *) "",
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
    const char *pairs [2 * S_MAX_PAIRS];
    size_t n;
    bool truncated;
} s_pairs_t;

static enum MHD_Result
s_collect (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    s_pairs_t *pairs = cls;
    if (pairs->n == S_MAX_PAIRS) {
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
    s_sock_t *sock = info ? info->socket_context : NULL;
    if (!sock)
        return;
    pthread_mutex_lock (&self->mutex);
    sock->state = state;
    sock->since_us = trove_mono_us ();
    pthread_mutex_unlock (&self->mutex);
}

//  The first call of a request: its head is in. Framing (for a kept-alive
//  connection's later requests: the door saw only the first), then the key,
//  then the announced size.
static enum MHD_Result
s_head (trove_http_t *self, struct MHD_Connection *connection, s_conn_t *c, const char *url,
        const char *method, const char *version)
{
    s_sock_state (connection, self, S_IN_BODY);
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
    s_sock_state (connection, self, S_HANDLING);
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
        else
            trove_http_reply_error (&resp, 503, trove_strerror (TROVE_E_OVERLOADED),
                                    "out of memory; retry later");
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
    s_sock_state (connection, self, S_WAIT_HEAD);
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
        s_sock_t *sock = calloc (1, sizeof *sock);
        if (!sock || !fd || !addr || !addr->client_addr) {
            free (sock);
            return;  //  not watched: libmicrohttpd's idle timeout still holds
        }
        sock->fd = fd->connect_fd;
        s_client_key (addr->client_addr, sock->key);
        sock->state = S_WAIT_HEAD;
        sock->since_us = trove_mono_us ();
        pthread_mutex_lock (&self->mutex);
        s_client_t *client = s_client (self, sock->key, true);
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
    s_sock_t *sock = *socket_context;
    if (!sock)
        return;
    //  Before libmicrohttpd closes the socket: the reaper holds the mutex
    //  while it shuts a socket down, so it never touches a reused fd.
    pthread_mutex_lock (&self->mutex);
    s_client_t *client = s_client (self, sock->key, false);
    if (client) {
        client->active--;
        s_client_forget (self, client);
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
        self->log_dropped [S_NREASONS]++;
        self->log_said = true;
    }
    pthread_mutex_unlock (&self->log_mutex);
    //  A flood of broken connections must not fill the disk: one line a
    //  minute, the rest summed up by the door's tick.
    if (say)
        trove_log ('W', "http: %s", line);
}

//  ---------------------------------------------------------------------------
//  The door

//  Send a refusal on a connection the door holds; it is then drained
//  briefly and closed (closing at once with unread bytes would reset it
//  and could lose the answer).
static void
s_door_refuse (trove_http_t *self, s_pending_t *p, unsigned status, const char *code, const char *detail,
               size_t consumed)
{
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    trove_http_reply_error (&resp, status, code, detail);
    char what [200];
    snprintf (what, sizeof what, "a connection's request refused and closed: %u %s (%s)", status, code,
              detail);
    s_dropped (self, s_reason_index (code, status), what);
    const char *reason = status == 400 ? "Bad Request"
                       : status == 408 ? "Request Timeout"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 505 ? "HTTP Version Not Supported"
                                       : "Error";
    const char *body = resp.body ? resp.body : "";
    char head [300];
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                      "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                      status, reason, strlen (body));
    char *all = n > 0 ? trove_strdupf ("%s%s", head, body) : NULL;
    //  A few hundred bytes into an empty send buffer: one try is enough.
    if (all && send (p->fd, all, strlen (all), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        //  The client is gone; closing is all that is left.
    }
    free (all);
    free (resp.body);
    //  Take what was read so far (the refused head) off the socket.
    char sink [4096];
    while (consumed > 0) {
        ssize_t got = recv (p->fd, sink, consumed < sizeof sink ? consumed : sizeof sink, MSG_DONTWAIT);
        if (got <= 0)
            break;
        consumed -= (size_t) got;
    }
    int one = 1;
    setsockopt (p->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    shutdown (p->fd, SHUT_WR);
    p->closing = true;
    p->since_us = trove_mono_us ();
}

static void
s_pending_drop (trove_http_t *self, size_t i)
{
    s_pending_t *p = &self->pending [i];
    close (p->fd);
    pthread_mutex_lock (&self->mutex);
    s_client_t *client = s_client (self, p->key, false);
    if (client) {
        client->pending--;
        s_client_forget (self, client);
    }
    pthread_mutex_unlock (&self->mutex);
    self->pending [i] = self->pending [--self->npending];
    trove_gauge_add_int (self->connections, -1);
}

//  The head is complete and well framed: libmicrohttpd takes it from here.
static void
s_pending_hand_over (trove_http_t *self, size_t i)
{
    s_pending_t p = self->pending [i];
    int one = 1;
    setsockopt (p.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    pthread_mutex_lock (&self->mutex);
    s_client_t *client = s_client (self, p.key, false);
    if (client) {
        //  Counted as active from libmicrohttpd's start notification on.
        client->pending--;
        s_client_forget (self, client);
    }
    pthread_mutex_unlock (&self->mutex);
    self->pending [i] = self->pending [--self->npending];
    trove_gauge_add_int (self->connections, -1);
    //  It closes the socket when it cannot take it (and says why in its log).
    MHD_add_connection (self->daemon, p.fd, (struct sockaddr *) &p.addr, p.addrlen);
}

//  May a new connection of client key come in? NULL when it may (counted
//  as pending), else the reason. A client at its cap that has a connection
//  still sending its head after S_SLOW_US gets room by losing its oldest
//  such: a slow-header flood from one address then churns through its own
//  connections while the same address's quick requests still get in.
static const char *
s_admit (trove_http_t *self, const uint8_t key [16], const char *host)
{
    for (int attempt = 0;; attempt++) {
        const char *refusal = NULL;
        bool capped = false;
        pthread_mutex_lock (&self->mutex);
        s_client_t *client = NULL;
        if (self->npending + self->nsocks >= self->limits.max_connections)
            refusal = "connection_limit";
        else if (!(client = s_client (self, key, true)))
            refusal = "connection_limit";
        else if (self->limits.max_per_client
                 && client->pending + client->active >= self->limits.max_per_client)
            refusal = "per_client_cap", capped = true;
        else
            client->pending++;
        pthread_mutex_unlock (&self->mutex);
        if (!capped || attempt > 0)
            return refusal;
        int64_t now = trove_mono_us ();
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < self->npending; i++) {
            const s_pending_t *p = &self->pending [i];
            if (!p->closing && memcmp (p->key, key, 16) == 0 && now - p->since_us > S_SLOW_US
                && (victim == SIZE_MAX || p->since_us < self->pending [victim].since_us))
                victim = i;
        }
        if (victim == SIZE_MAX)
            return refusal;
        char what [160];
        snprintf (what, sizeof what,
                  "%s is at its connection cap: its slowest head closed for a new connection", host);
        s_dropped (self, s_reason_index ("per_client_cap", 0), what);
        s_pending_drop (self, victim);
    }
}

static void
s_door_accept (trove_http_t *self)
{
    while (true) {
        struct sockaddr_storage addr;
        socklen_t addrlen = sizeof addr;
        int fd = accept4 (self->listen_fd, (struct sockaddr *) &addr, &addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;  //  EAGAIN, or a connection that died in the backlog
        uint8_t key [16];
        s_client_key ((struct sockaddr *) &addr, key);
        char host [INET6_ADDRSTRLEN] = "?";
        if (addr.ss_family == AF_INET)
            inet_ntop (AF_INET, &((struct sockaddr_in *) &addr)->sin_addr, host, sizeof host);
        else if (addr.ss_family == AF_INET6)
            inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &addr)->sin6_addr, host, sizeof host);
        const char *refusal = s_admit (self, key, host);
        if (refusal) {
            char what [160];
            snprintf (what, sizeof what, "connection from %s closed: %s", host,
                      strcmp (refusal, "per_client_cap") == 0 ? "over the per-client cap"
                                                              : "over the connection limit");
            s_dropped (self, s_reason_index (refusal, 0), what);
            close (fd);  //  after counting: whoever sees it closed sees it counted
            continue;
        }
        s_pending_t *p = &self->pending [self->npending++];
        memset (p, 0, sizeof *p);
        p->fd = fd;
        memcpy (p->key, key, 16);
        p->addr = addr;
        p->addrlen = addrlen;
        p->since_us = trove_mono_us ();
        trove_gauge_add_int (self->connections, 1);
    }
}

//  Look at what a pending connection sent so far, without taking it off
//  the socket (libmicrohttpd reads it again). Returns true when the
//  connection left the pending list.
static bool
s_door_peek (trove_http_t *self, size_t i, char *buf, short revents)
{
    s_pending_t *p = &self->pending [i];
    if (p->closing) {
        char sink [4096];
        ssize_t got = recv (p->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
            s_pending_drop (self, i);
            return true;
        }
        return false;
    }
    ssize_t got = recv (p->fd, buf, TROVE_HTTP_MAX_HEAD, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        s_pending_drop (self, i);  //  gone before finishing its head
        return true;
    }
    if (got < 0)
        return false;
    trove_http_frame_t frame;
    const char *code = NULL, *detail = NULL;
    int status = trove_http_frame_check (buf, (size_t) got, &frame, &code, &detail);
    if (status == 0) {
        s_pending_hand_over (self, i);
        return true;
    }
    if (status == 1 && (revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        //  The client stopped sending before the end of its head: it can
        //  never be complete (and the socket would read as ready forever).
        s_pending_drop (self, i);
        return true;
    }
    if (status == 1) {
        //  Wake only when more than this has arrived: the bytes stay in
        //  the socket, so it would read as ready forever.
        int lowat = (int) got + 1;
        setsockopt (p->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        p->seen = (size_t) got;
        //  Each look reads the head from its start: a client dribbling a
        //  big head byte by byte gets a few looks a second, not one a byte.
        p->not_before_us = trove_mono_us () + S_REPEEK_US;
        return false;
    }
    s_door_refuse (self, p, (unsigned) status, code, detail, (size_t) got);
    return false;
}

//  Deadlines: heads that take too long (the door's and libmicrohttpd's
//  kept-alive connections), bodies that take too long.
static void
s_door_reap (trove_http_t *self, int64_t now_us)
{
    int64_t header_us = (int64_t) self->limits.header_timeout_s * 1000000;
    int64_t body_us = (int64_t) self->limits.body_timeout_s * 1000000;
    for (size_t i = 0; i < self->npending;) {
        s_pending_t *p = &self->pending [i];
        if (p->closing && now_us - p->since_us > S_LINGER_US) {
            s_pending_drop (self, i);
            continue;
        }
        if (!p->closing && now_us - p->since_us > header_us)
            s_door_refuse (self, p, 408, "header_timeout", "the request head did not arrive in time",
                           p->seen);
        i++;
    }
    //  libmicrohttpd's connections: shut down (it closes them on its next
    //  read) under the mutex, before it can close and reuse the fd.
    pthread_mutex_lock (&self->mutex);
    for (s_sock_t *sock = self->socks; sock; sock = sock->next) {
        if (sock->state == S_WAIT_HEAD && now_us - sock->since_us > header_us) {
            //  A kept-alive connection idle past the head deadline: an
            //  ordinary close, not counted.
            shutdown (sock->fd, SHUT_RDWR);
            sock->state = S_HANDLING;  //  once
        }
        else if (sock->state == S_IN_BODY && now_us - sock->since_us > body_us) {
            s_dropped (self, s_reason_index ("body_timeout", 0),
                       "a request body did not arrive in time: connection closed");
            shutdown (sock->fd, SHUT_RDWR);
            sock->state = S_HANDLING;
        }
    }
    pthread_mutex_unlock (&self->mutex);
}

static void *
s_door (void *arg)
{
    trove_http_t *self = arg;
    size_t max = self->limits.max_connections + 2;
    struct pollfd *fds = calloc (max, sizeof *fds);
    char *buf = malloc (TROVE_HTTP_MAX_HEAD);
    if (!fds || !buf) {
        trove_log ('E', "http: out of memory: the listener stops accepting");
        free (fds);
        free (buf);
        return NULL;
    }
    int64_t last_tick = 0;
    while (!atomic_load (&self->stopping)) {
        fds [0] = (struct pollfd){self->wake [0], POLLIN, 0};
        //  At the limit the backlog waits (the kernel holds new connections).
        bool room = self->npending < self->limits.max_connections;
        fds [1] = (struct pollfd){room ? self->listen_fd : -1, POLLIN, 0};
        size_t n = self->npending;
        int64_t now = trove_mono_us ();
        int timeout_ms = S_TICK_MS;
        for (size_t i = 0; i < n; i++) {
            s_pending_t *p = &self->pending [i];
            bool wait = !p->closing && p->not_before_us > now;
            fds [2 + i] = (struct pollfd){wait ? -1 : p->fd, POLLIN | POLLRDHUP, 0};
            if (wait && (p->not_before_us - now) / 1000 + 1 < timeout_ms)
                timeout_ms = (int) ((p->not_before_us - now) / 1000 + 1);
        }
        int ready = poll (fds, 2 + n, timeout_ms);
        if (ready < 0 && errno != EINTR)
            break;
        //  From the end: a connection leaving moves the last one into its slot.
        for (size_t i = n; ready > 0 && i-- > 0;)
            if (fds [2 + i].revents)
                s_door_peek (self, i, buf, fds [2 + i].revents);
        if (ready > 0 && (fds [1].revents & POLLIN))
            s_door_accept (self);
        now = trove_mono_us ();
        if (now - last_tick >= S_TICK_MS * 1000) {
            s_door_reap (self, now);
            s_log_tick (self, now);
            last_tick = now;
        }
    }
    free (fds);
    free (buf);
    return NULL;
}

//  "a.b.c.d:port" or "[v6]:port" into *addr. Returns 0 or -1.
static int
s_parse_address (const char *address, struct sockaddr_storage *addr)
{
    const char *colon = strrchr (address, ':');
    if (!colon || colon == address || !colon [1] || strlen (colon + 1) > 5)
        return -1;
    char *end;
    unsigned long port = strtoul (colon + 1, &end, 10);
    if (*end || port > 65535 || colon [1] < '0' || colon [1] > '9')
        return -1;
    char host [INET6_ADDRSTRLEN + 2];
    size_t len = (size_t) (colon - address);
    if (len >= sizeof host)
        return -1;
    memcpy (host, address, len);
    host [len] = 0;
    memset (addr, 0, sizeof *addr);
    if (host [0] == '[' && host [len - 1] == ']') {
        host [len - 1] = 0;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons ((uint16_t) port);
        return inet_pton (AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *in = (struct sockaddr_in *) addr;
    in->sin_family = AF_INET;
    in->sin_port = htons ((uint16_t) port);
    return inet_pton (AF_INET, host, &in->sin_addr) == 1 ? 0 : -1;
}

static int
s_listen (trove_http_t *self, const struct sockaddr_storage *addr)
{
    int fd = socket (addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->ss_family == AF_INET6)
        setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t len = addr->ss_family == AF_INET6 ? sizeof (struct sockaddr_in6) : sizeof (struct sockaddr_in);
    if (bind (fd, (const struct sockaddr *) addr, len) || listen (fd, 512)) {
        int error = errno;
        close (fd);
        errno = error;
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname (fd, (struct sockaddr *) &bound, &blen) == 0)
        self->port = ntohs (bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                        : ((struct sockaddr_in *) &bound)->sin_port);
    self->listen_fd = fd;
    return 0;
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
    if (s_parse_address (address, &addr)) {
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
    if (s_listen (self, &addr)) {
        message = trove_strdupf ("http: cannot serve on %s: %s", address, strerror (errno));
        goto fail;
    }
    pthread_mutex_lock (&self->log_mutex);
    self->last_error [0] = 0;
    self->log_direct = true;
    self->log_window_us = trove_mono_us ();
    pthread_mutex_unlock (&self->log_mutex);
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    errno = 0;
    //  Room above the door's own limit: a connection closing is counted out
    //  by the door a moment before libmicrohttpd forgets it.
    self->daemon = MHD_start_daemon (
        flags, 0, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_log, self,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_NOTIFY_CONNECTION, s_notify, self,
        MHD_OPTION_UNESCAPE_CALLBACK, s_unescape_none, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned) (max + 64), MHD_OPTION_CONNECTION_TIMEOUT,
        self->limits.idle_timeout_s, MHD_OPTION_END);
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
    if (pthread_create (&self->door, NULL, s_door, self)) {
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
