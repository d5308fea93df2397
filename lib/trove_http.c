/*  trove_http - HTTP server with a route table (libmicrohttpd). */
#include "trove_http.h"
#include "trove_util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define S_MAX_ROUTES 32
#define S_MAX_PAIRS 128  //  headers or query arguments kept per request

typedef struct {
    char *method;  //  exact method
    char *path;    //  exact path, or prefix when it ends in '/'
    trove_http_fn *fn;
    void *arg;
} s_route_t;

struct _trove_http_t {
    s_route_t routes [S_MAX_ROUTES];
    size_t nroutes;
    size_t max_body;            //  bytes; more is answered 413
    struct MHD_Daemon *daemon;  //  NULL until started
    uint16_t port;              //  served port
    pthread_mutex_t log_mutex;  //  guards last_error
    char last_error [256];      //  libmicrohttpd's last message, for start errors
};

//  Per connection (request) state, while the body arrives.
typedef struct {
    char *body;  //  received so far (NUL-terminated), NULL when none
    size_t size, cap;
    bool too_large;  //  over max_body: the rest is discarded
    bool answered;   //  a response is queued
} s_conn_t;

trove_http_t *
trove_http_new (size_t max_body)
{
    trove_http_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max_body = max_body;
    pthread_mutex_init (&self->log_mutex, NULL);
    return self;
}

void
trove_http_destroy (trove_http_t **self_p)
{
    assert (self_p);
    trove_http_t *self = *self_p;
    if (self) {
        if (self->daemon)
            MHD_stop_daemon (self->daemon);
        for (size_t i = 0; i < self->nroutes; i++) {
            free (self->routes [i].method);
            free (self->routes [i].path);
        }
        pthread_mutex_destroy (&self->log_mutex);
        free (self);
        *self_p = NULL;
    }
}

int
trove_http_route (trove_http_t *self, const char *method, const char *path, trove_http_fn *fn, void *arg)
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
    self->nroutes++;
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

void
trove_http_dispatch (trove_http_t *self, const trove_http_request_t *req, trove_http_response_t *resp)
{
    assert (self);
    assert (req && resp);
    memset (resp, 0, sizeof *resp);
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
        trove_http_reply_error (resp, 400, "bad_path", "the path is not UTF-8 text");
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
        trove_http_reply_error (resp, 404, "not_found", "no such path");
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
        trove_http_reply_error (resp, 500, "internal", "the handler gave no answer");
    }
}

//  ---------------------------------------------------------------------------
//  libmicrohttpd glue

static enum MHD_Result
s_queue (struct MHD_Connection *connection, trove_http_response_t *resp)
{
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
        ok = MHD_add_response_header (response, resp->header_name [i], resp->header_value [i]);
    if (ok == MHD_YES)
        ok = MHD_queue_response (connection, resp->status, response);
    MHD_destroy_response (response);
    return ok;
}

typedef struct {
    const char *pairs [2 * S_MAX_PAIRS];
    size_t n;
} s_pairs_t;

static enum MHD_Result
s_collect (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    s_pairs_t *pairs = cls;
    if (pairs->n == S_MAX_PAIRS)
        return MHD_NO;  //  stop iterating: the rest is ignored
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
s_too_large (trove_http_t *self, struct MHD_Connection *connection, s_conn_t *c)
{
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    char detail [120];
    snprintf (detail, sizeof detail, "the body is larger than %zu bytes", self->max_body);
    trove_http_reply_error (&resp, 413, "body_too_large", detail);
    //  The rest of the body is not read: the connection closes after.
    trove_http_reply_header (&resp, "Connection", "close");
    c->answered = true;
    return s_queue (connection, &resp);
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    trove_http_t *self = cls;
    s_conn_t *c = *con_cls;
    if (!c) {
        c = calloc (1, sizeof *c);
        if (!c)
            return MHD_NO;
        *con_cls = c;
        const char *length =
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull (length, NULL, 10) > self->max_body)
            return s_too_large (self, connection, c);
        return MHD_YES;
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
        //  in the middle of a body. Memory stays bounded; the connection
        //  timeout bounds a slow sender.
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
    if (c->too_large)
        return s_too_large (self, connection, c);
    s_pairs_t headers = {.n = 0}, args = {.n = 0};
    MHD_get_connection_values (connection, MHD_HEADER_KIND, s_collect, &headers);
    MHD_get_connection_values (connection, MHD_GET_ARGUMENT_KIND, s_collect, &args);
    //  libmicrohttpd leaves them encoded (s_unescape_none) but for '+'.
    char *arena = NULL;
    int decoded = s_decode_pairs (&args, &arena);
    if (decoded) {
        free (arena);
        trove_http_response_t resp;
        memset (&resp, 0, sizeof resp);
        if (decoded == -1)
            trove_http_reply_error (&resp, 400, "bad_query",
                                    "a query argument is not percent-encoded UTF-8 text");
        else
            trove_http_reply_error (&resp, 503, "overloaded", "out of memory; retry later");
        c->answered = true;
        return s_queue (connection, &resp);
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
    };
    trove_http_response_t resp;
    trove_http_dispatch (self, &req, &resp);
    free (arena);
    c->answered = true;
    return s_queue (connection, &resp);
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
    (void) cls, (void) connection, (void) toe;
    s_conn_t *c = *con_cls;
    if (c) {
        free (c->body);
        free (c);
        *con_cls = NULL;
    }
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
    pthread_mutex_unlock (&self->log_mutex);
    trove_log ('W', "http: %s", line);
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
    pthread_mutex_lock (&self->log_mutex);
    self->last_error [0] = 0;
    pthread_mutex_unlock (&self->log_mutex);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs (addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &addr)->sin6_port
                                                      : ((struct sockaddr_in *) &addr)->sin_port);
    errno = 0;
    self->daemon =
        MHD_start_daemon (flags, port, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_log, self,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr, MHD_OPTION_NOTIFY_COMPLETED,
                          s_completed, self, MHD_OPTION_UNESCAPE_CALLBACK, s_unescape_none, NULL,
                          MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned) 256,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 30, MHD_OPTION_END);
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
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info && info->port ? info->port : port;
    return 0;
fail:
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
