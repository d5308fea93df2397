/*  Tests for trove_http: routing (exact, prefix, longest match, 404, 405
    with Allow), the route table as listed (trove_http_routes), the body
    limit, header and argument lookup, a handler that answers nothing,
    percent-decoding and the Bearer key; then a real server on loopback: a
    POST round trip, 413 for a body over the limit with and
    without Content-Length, the path routed as sent (encoded) and the
    arguments decoded, 400 bad_query for arguments that do not decode.
    Issue 18 (hostile HTTP): request framing (trove_http_frame_check on a
    table of heads; then every smuggling case over a real socket: 400 with a
    JSON error, the connection closed, the handler never called and the
    bytes after it never run as a request; the same on a kept-alive
    connection's second request), the header deadline, the per-client cap,
    authentication before routing (401 for unknown paths and OPTIONS), and
    every refusal counted by reason.
    Streaming responses: bytes arrive as the writer writes them; a stream
    waiting for bytes holds no thread (a one-thread server answers other
    requests meanwhile); the cap on open streams (503); a client that does
    not read stops the writer (bounded buffer) and later gets every byte in
    order; a client that leaves is seen by the writer; destroy ends a
    stream whose writer waits; through dispatch the client is gone at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_http.h"
#include "trove_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static atomic_int s_calls;  //  handler calls, for "the smuggled request never ran"

static void
s_echo (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    atomic_fetch_add (&s_calls, 1);
    const char *tag = arg;
    const char *h = trove_http_header (req, "x-test");
    const char *a = trove_http_arg (req, "q");
    char *body = NULL;
    assert_true (asprintf (&body, "%s|%s|%s|%zu|%s|%s", tag, req->method, req->rest, req->body_size,
                           h ? h : "-", a ? a : "-")
                 > 0);
    trove_http_reply (resp, 200, body);
    resp->content_type = "text/plain";
    trove_http_reply_header (resp, "X-Route", tag);
}

static void
s_silent (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg, (void) req, (void) resp;
}

static trove_http_t *
s_server (void)
{
    trove_http_t *http = trove_http_new (100);
    assert_non_null (http);
    assert_int_equal (trove_http_route (http, "POST", "/v1/events", s_echo, "events"), 0);
    assert_int_equal (trove_http_route (http, "GET", "/v1/users/", s_echo, "users"), 0);
    assert_int_equal (trove_http_route (http, "GET", "/v1/users/special/", s_echo, "special"), 0);
    assert_int_equal (trove_http_route (http, "GET", "/v1/silent", s_silent, NULL), 0);
    assert_int_equal (trove_http_route (http, "GET", "no-slash", s_silent, NULL), -1);
    return http;
}

static unsigned
s_dispatch (trove_http_t *http, const char *method, const char *path, const char *body, char *out,
            size_t size)
{
    const char *headers [] = {"X-Test", "hv"};
    const char *args [] = {"q", "7"};
    trove_http_request_t req = {.method = method,
                                .path = path,
                                .body = body,
                                .body_size = body ? strlen (body) : 0,
                                .headers = headers,
                                .nheaders = 1,
                                .args = args,
                                .nargs = 1};
    trove_http_response_t resp;
    trove_http_dispatch (http, &req, &resp);
    snprintf (out, size, "%s", resp.body ? resp.body : "");
    free (resp.body);
    if (resp.status == 405) {
        assert_int_equal (resp.nheaders, 1);
        assert_string_equal (resp.header_name [0], "Allow");
        strncat (out, resp.header_value [0], size - strlen (out) - 1);
    }
    return resp.status;
}

static void
test_routing (void **state)
{
    (void) state;
    trove_http_t *http = s_server ();
    char out [300];
    assert_int_equal (s_dispatch (http, "POST", "/v1/events", "abc", out, sizeof out), 200);
    assert_string_equal (out, "events|POST||3|hv|7");
    assert_int_equal (s_dispatch (http, "GET", "/v1/users/u42/balance", NULL, out, sizeof out), 200);
    assert_string_equal (out, "users|GET|u42/balance|0|hv|7");
    assert_int_equal (s_dispatch (http, "GET", "/v1/users/special/x", NULL, out, sizeof out), 200);
    assert_string_equal (out, "special|GET|x|0|hv|7");  //  longest prefix wins
    assert_int_equal (s_dispatch (http, "POST", "/v1/events/", NULL, out, sizeof out), 404);  //  exact only
    assert_int_equal (s_dispatch (http, "GET", "/v1/events", NULL, out, sizeof out), 405);
    assert_non_null (strstr (out, "POST"));
    assert_int_equal (s_dispatch (http, "DELETE", "/v1/users/u", NULL, out, sizeof out), 405);
    assert_int_equal (s_dispatch (http, "GET", "/", NULL, out, sizeof out), 404);
    assert_int_equal (s_dispatch (http, NULL, NULL, NULL, out, sizeof out), 404);
    assert_int_equal (s_dispatch (http, "GET", "/v1/silent", NULL, out, sizeof out), 500);
    char big [200];
    memset (big, 'x', 101);
    big [101] = 0;
    assert_int_equal (s_dispatch (http, "POST", "/v1/events", big, out, sizeof out), 413);
    assert_non_null (strstr (out, "body_too_large"));
    //  The table as added, prefixes with their '/', open routes marked.
    assert_int_equal (trove_http_route_open (http, "HEAD", "/metrics", s_silent, NULL), 0);
    char *routes = trove_http_routes (http);
    assert_non_null (routes);
    assert_string_equal (routes, "POST /v1/events\nGET /v1/users/\nGET /v1/users/special/\nGET /v1/silent\n"
                                 "HEAD /metrics open\n");
    free (routes);
    trove_http_destroy (&http);
    trove_http_destroy (&http);
    assert_null (http);
    http = trove_http_new (100);
    routes = trove_http_routes (http);
    assert_string_equal (routes, "");
    free (routes);
    trove_http_destroy (&http);
}

static void
test_unescape (void **state)
{
    (void) state;
    char out [16];
    assert_int_equal (trove_http_unescape ("a%2Fb", 5, out, sizeof out), 3);
    assert_string_equal (out, "a/b");
    assert_int_equal (trove_http_unescape ("a+b%2b%2B", 9, out, sizeof out), 5);
    assert_string_equal (out, "a+b++");  //  '+' is not a space in a path
    assert_int_equal (trove_http_unescape ("%C3%a9", 6, out, sizeof out), 2);
    assert_string_equal (out, "\xc3\xa9");
    assert_int_equal (trove_http_unescape ("abc/def", 3, out, sizeof out), 3);  //  only len bytes
    assert_string_equal (out, "abc");
    assert_int_equal (trove_http_unescape ("", 0, out, sizeof out), 0);
    assert_string_equal (out, "");
    assert_int_equal (trove_http_unescape ("%zz", 3, out, sizeof out), -1);   //  not hex
    assert_int_equal (trove_http_unescape ("ab%4", 4, out, sizeof out), -1);  //  cut escape
    assert_int_equal (trove_http_unescape ("ab%", 3, out, sizeof out), -1);
    assert_int_equal (trove_http_unescape ("a%00b", 5, out, sizeof out), -1);              //  NUL
    assert_int_equal (trove_http_unescape ("a%0Ab", 5, out, sizeof out), -1);              //  control
    assert_int_equal (trove_http_unescape ("%FF", 3, out, sizeof out), -1);                //  not UTF-8
    assert_int_equal (trove_http_unescape ("%C3", 3, out, sizeof out), -1);                //  cut sequence
    assert_int_equal (trove_http_unescape ("0123456789abcdef", 16, out, sizeof out), -1);  //  no room
    assert_int_equal (trove_http_unescape ("0123456789abcde", 15, out, sizeof out), 15);
    assert_int_equal (trove_http_unescape ("x", 1, out, 0), -1);

    const char *headers [] = {"authorization", "bearer   trk_k1  ", "X-Other", "v"};
    trove_http_request_t req = {.headers = headers, .nheaders = 2};
    size_t len = 0;
    const char *key = trove_http_bearer (&req, &len);
    assert_non_null (key);
    assert_int_equal (len, 6);
    assert_memory_equal (key, "trk_k1", 6);
    headers [1] = "Basic trk_k1";
    assert_null (trove_http_bearer (&req, &len));
    headers [1] = "Bearer    ";
    assert_null (trove_http_bearer (&req, &len));
    req.nheaders = 0;
    assert_null (trove_http_bearer (&req, &len));
}

//  One request over a fresh TCP connection; returns the whole answer.
static char *
s_roundtrip (uint16_t port, const char *request, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    struct timeval tv = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send (fd, request + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;  //  the server may close early after a 413
        sent += (size_t) n;
    }
    char *out = calloc (1, 8192);
    size_t got = 0;
    ssize_t n;
    while (got < 8191 && (n = recv (fd, out + got, 8191 - got, 0)) > 0)
        got += (size_t) n;
    close (fd);
    return out;
}

static void
test_server (void **state)
{
    (void) state;
    trove_http_t *http = s_server ();
    char *err = NULL;
    assert_int_equal (trove_http_start (http, "nonsense", 2, &err), -1);
    assert_non_null (err);
    free (err);
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    uint16_t port = trove_http_port (http);
    assert_true (port > 0);
    assert_int_equal (trove_http_route (http, "GET", "/late", s_silent, NULL), -1);  //  started
    const char *post = "POST /v1/events?q=1 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nContent-Length: 5\r\n"
                       "Connection: close\r\n\r\nhello";
    char *out = s_roundtrip (port, post, strlen (post));
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    assert_non_null (strstr (out, "X-Route: events"));
    assert_non_null (strstr (out, "Cache-Control: no-store"));
    assert_non_null (strstr (out, "events|POST||5|yes|1"));
    free (out);
    const char *large = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n";
    out = s_roundtrip (port, large, strlen (large));
    assert_non_null (strstr (out, "HTTP/1.1 413"));
    free (out);
    char chunked [1024];
    int len = snprintf (chunked, sizeof chunked,
                        "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        "Connection: close\r\n\r\n60\r\n%096d\r\n60\r\n%096d\r\n0\r\n\r\n",
                        0, 0);
    out = s_roundtrip (port, chunked, (size_t) len);
    assert_non_null (strstr (out, "HTTP/1.1 413"));
    free (out);
    //  The path as sent ("a%2Fb" stays one segment), the arguments decoded
    //  ('+' a space, %2B a plus).
    const char *get = "GET /v1/users/a%2Fb/balance?q=x+y%2Bz%C3%A9 HTTP/1.1\r\nHost: x\r\nX-Test: g\r\n"
                      "Connection: close\r\n\r\n";
    out = s_roundtrip (port, get, strlen (get));
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    assert_non_null (strstr (out, "users|GET|a%2Fb/balance|0|g|x y+z\xc3\xa9"));
    free (out);
    const char *bad [] = {"q=%zz", "q=a%00b", "q=%FF", "%zz=1", "q=%0A"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char request [200];
        len = snprintf (request, sizeof request,
                        "GET /v1/users/u1/balance?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        bad [i]);
        out = s_roundtrip (port, request, (size_t) len);
        assert_non_null (strstr (out, "HTTP/1.1 400"));
        assert_non_null (strstr (out, "bad_query"));
        free (out);
    }
    trove_http_destroy (&http);
}

//  ---------------------------------------------------------------------------
//  Issue 18: framing, deadlines, caps, authentication before routing

static void
test_frame_check (void **state)
{
    (void) state;
    struct {
        const char *head;
        int status;        //  0 ok, 1 incomplete, else the refusal
        const char *code;  //  for refusals
    } cases [] = {
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}", 0, NULL},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 0, NULL},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\ntransfer-encoding:  CHUNKED \r\n\r\n", 0, NULL},
        {"GET /v1/users/u1/balance HTTP/1.0\r\n\r\n", 0, NULL},
        {"GET /x HTTP/1.1\r\nHost: x\r\n", 1, NULL},
        {"GET /x HTTP/1.1\r", 1, NULL},
        {"", 1, NULL},
        {"POS", 1, NULL},
        //  Smuggling: the two framings at once, in either order and case.
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "ambiguous_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n", 400,
         "ambiguous_length"},
        //  Several Content-Length, equal or not.
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", 400, "ambiguous_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 40\r\n\r\n", 400,
         "ambiguous_length"},
        //  Content-Length that is not digits.
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +7\r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7x\r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400, "bad_content_length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
         "bad_content_length"},
        //  Transfer-Encoding other than exactly chunked.
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "bad_transfer_encoding"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
         "bad_transfer_encoding"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400, "bad_transfer_encoding"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "bad_transfer_encoding"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_transfer_encoding"},
        //  Host: none on 1.1, or two.
        {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "missing_host"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_header"},
        //  A name with a space before the colon (another parser's other header).
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 7\r\n\r\n", 400, "bad_header"},
        {"POST / HTTP/1.1\r\nHost: x\r\n Content-Length: 7\r\n\r\n", 400, "bad_header"},  //  folded
        {"POST / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "bad_header"},
        {"POST / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, "bad_header"},
        //  Bare LF or CR line ends.
        {"POST / HTTP/1.1\nHost: x\n\n", 400, "bad_request_line"},
        {"POST / HTTP/1.1\r\nHost: x\nContent-Length: 7\r\n\r\n", 400, "bad_header"},
        {"POST / HTTP/1.1\r\nHost: x\rContent-Length: 7\r\n\r\n", 400, "bad_header"},
        //  Request lines.
        {"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request_line"},
        {"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request_line"},
        {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request_line"},
        {"G(T / HTTP/1.1\r\n", 400, "bad_request_line"},
        {"G(T", 400, "bad_request_line"},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version"},
        {"GET / FTP/1.1\r\n\r\n", 400, "bad_request_line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        trove_http_frame_t frame;
        const char *code = NULL, *detail = NULL;
        int status = trove_http_frame_check (cases [i].head, strlen (cases [i].head), &frame, &code, &detail);
        if (status != cases [i].status)
            fail_msg ("case %zu (%s): %d, want %d", i, cases [i].head, status, cases [i].status);
        if (cases [i].code) {
            assert_string_equal (code, cases [i].code);
            assert_non_null (detail);
        }
    }
    trove_http_frame_t frame;
    const char *code, *detail;
    const char *ok = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}GET";
    assert_int_equal (trove_http_frame_check (ok, strlen (ok), &frame, &code, &detail), 0);
    assert_int_equal (frame.head_size, strlen (ok) - 10);
    assert_true (frame.has_length && !frame.chunked && frame.http11);
    assert_int_equal (frame.length, 7);
    //  A head over 32 KiB: 431 once that much arrived without its end.
    char *big = malloc (TROVE_HTTP_MAX_HEAD + 10);
    assert_non_null (big);
    memset (big, 'a', TROVE_HTTP_MAX_HEAD + 10);
    memcpy (big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal (trove_http_frame_check (big, TROVE_HTTP_MAX_HEAD - 1, &frame, &code, &detail), 1);
    assert_int_equal (trove_http_frame_check (big, TROVE_HTTP_MAX_HEAD + 10, &frame, &code, &detail), 431);
    free (big);
    //  The field checks libmicrohttpd's split headers get.
    const char *two [] = {"Host", "x", "Content-Length", "1", "content-length", "1"};
    assert_int_equal (trove_http_fields_check (true, two, 3, &code, &detail), 400);
    assert_string_equal (code, "ambiguous_length");
    assert_int_equal (trove_http_fields_check (true, two, 2, &code, &detail), 0);
    assert_int_equal (trove_http_fields_check (true, two + 2, 1, &code, &detail), 400);
    assert_string_equal (code, "missing_host");
    assert_int_equal (trove_http_fields_check (false, two + 2, 1, &code, &detail), 0);
}

//  A connection to port from a loopback source address (127.0.0.x), or -1.
static int
s_connect_from (uint16_t port, const char *source)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    if (source) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        inet_pton (AF_INET, source, &local.sin_addr);
        assert_int_equal (bind (fd, (struct sockaddr *) &local, sizeof local), 0);
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    struct timeval tv = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

//  Read until the server closes (or 5 s pass: then "closed" is false).
static char *
s_read_all (int fd, bool *closed)
{
    char *out = calloc (1, 16384);
    size_t got = 0;
    ssize_t n = 0;
    while (got < 16383 && (n = recv (fd, out + got, 16383 - got, 0)) > 0)
        got += (size_t) n;
    *closed = n == 0 || (n < 0 && errno == ECONNRESET);
    return out;
}

//  How many answers (status lines) out holds.
static int
s_answers (const char *out)
{
    int n = 0;
    for (const char *p = out; (p = strstr (p, "HTTP/1.1 ")); p++)
        n += p [9] >= '1' && p [9] <= '5';
    return n;
}

//  The value of trove_ingestor_http_refused_total{reason} in a render.
static long
s_refused (trove_metrics_t *metrics, const char *reason)
{
    char *text = trove_metrics_render (metrics);
    char name [120];
    snprintf (name, sizeof name, "trove_ingestor_http_refused_total{reason=\"%s\"} ", reason);
    const char *at = text ? strstr (text, name) : NULL;
    long value = at ? atol (at + strlen (name)) : -1;
    free (text);
    return value;
}

static char *s_wait_closed (int fd, int seconds);

static void
test_smuggling (void **state)
{
    (void) state;
    trove_http_t *http = s_server ();
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    uint16_t port = trove_http_port (http);
    //  Each request is followed by a second one that must never run.
    const char *next = "GET /v1/users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    struct {
        const char *request;
        const char *code;
    } cases [] = {
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "ambiguous_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
         "ambiguous_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
         "ambiguous_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 50\r\n\r\nabc",
         "ambiguous_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nabc", "bad_content_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nabc", "bad_content_length"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", "bad_transfer_encoding"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
         "bad_transfer_encoding"},
        {"POST /v1/events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "missing_host"},
        {"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", "bad_header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        atomic_store (&s_calls, 0);
        int fd = s_connect_from (port, NULL);
        char request [600];
        int len = snprintf (request, sizeof request, "%s%s", cases [i].request, next);
        assert_int_equal (send (fd, request, (size_t) len, MSG_NOSIGNAL), len);
        bool closed = false;
        char *out = s_read_all (fd, &closed);
        close (fd);
        if (strncmp (out, "HTTP/1.1 400 ", 13) != 0 || !strstr (out, cases [i].code) || s_answers (out) != 1
            || !closed || atomic_load (&s_calls) != 0)
            fail_msg ("case %zu: closed %d, handler calls %d, answer:\n%s", i, closed, atomic_load (&s_calls),
                      out);
        //  The body is exactly one JSON error.
        const char *body = strstr (out, "\r\n\r\n");
        assert_non_null (body);
        assert_non_null (strstr (body, "{\"error\":\""));
        assert_null (strstr (body + 4, "\r\n"));
        free (out);
    }
    //  A kept-alive connection: the first request is served, the second
    //  (two Content-Length) refused and the connection closed; the third
    //  never runs.
    atomic_store (&s_calls, 0);
    int fd = s_connect_from (port, NULL);
    const char *keep = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 9\r\n\r\nabc"
                       "GET /v1/users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal (send (fd, keep, strlen (keep), MSG_NOSIGNAL), (ssize_t) strlen (keep));
    bool closed = false;
    char *out = s_read_all (fd, &closed);
    close (fd);
    if (!strstr (out, "HTTP/1.1 200") || !strstr (out, "HTTP/1.1 400") || !strstr (out, "ambiguous_length")
        || s_answers (out) != 2 || !closed || atomic_load (&s_calls) != 1)
        fail_msg ("kept-alive: closed %d, calls %d:\n%s", closed, atomic_load (&s_calls), out);
    free (out);
    //  A head cut short by the client (it shuts its side down): closed at
    //  once, long before the head deadline (10 s), without spinning.
    fd = s_connect_from (port, NULL);
    assert_int_equal (send (fd, "POST /v1/events HTTP/1.1\r\nHo", 29, MSG_NOSIGNAL), 29);
    shutdown (fd, SHUT_WR);
    out = s_wait_closed (fd, 5);
    close (fd);
    assert_string_equal (out, "");
    free (out);
    //  Well-framed requests still go through, chunked included.
    fd = s_connect_from (port, NULL);
    const char *chunked = "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_int_equal (send (fd, chunked, strlen (chunked), MSG_NOSIGNAL), (ssize_t) strlen (chunked));
    out = s_read_all (fd, &closed);
    close (fd);
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    assert_non_null (strstr (out, "events|POST||3|-|-"));
    free (out);
    trove_http_destroy (&http);
}

//  Wait (bounded) until fd is closed by the server; returns what it sent.
static char *
s_wait_closed (int fd, int seconds)
{
    struct timeval tv = {seconds, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    bool closed = false;
    char *out = s_read_all (fd, &closed);
    if (!closed)
        fail_msg ("the server kept the connection open %d s", seconds);
    return out;
}

static void
test_deadlines_and_caps (void **state)
{
    (void) state;
    trove_metrics_t *metrics = trove_metrics_new ();
    trove_http_t *http = s_server ();
    trove_http_limits_t limits;
    trove_http_limits_default (&limits);
    assert_int_equal (limits.max_connections, 256);
    assert_int_equal (limits.max_per_client, 32);
    assert_int_equal (limits.header_timeout_s, 10);
    limits.max_per_client = 3;
    limits.header_timeout_s = 3;  //  the cap below is filled well within it
    limits.body_timeout_s = 2;
    assert_int_equal (trove_http_set_limits (http, &limits), 0);
    assert_int_equal (trove_http_set_metrics (http, metrics), 0);
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    assert_int_equal (trove_http_set_limits (http, &limits), -1);  //  started
    uint16_t port = trove_http_port (http);
    //  A head that never ends is closed after the deadline with 408.
    int slow = s_connect_from (port, "127.0.0.2");
    assert_int_equal (send (slow, "GET /v1/users/u HTTP/1.1\r\nHost: x\r\n", 35, MSG_NOSIGNAL), 35);
    char *out = s_wait_closed (slow, 10);
    close (slow);
    assert_non_null (strstr (out, "HTTP/1.1 408"));
    assert_non_null (strstr (out, "header_timeout"));
    free (out);
    //  A body that stops coming is closed after its deadline.
    int stalled = s_connect_from (port, "127.0.0.4");
    const char *part = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc";
    assert_int_equal (send (stalled, part, strlen (part), MSG_NOSIGNAL), (ssize_t) strlen (part));
    out = s_wait_closed (stalled, 10);
    close (stalled);
    free (out);
    //  Counted by reason (the door counts before it closes).
    assert_int_equal (s_refused (metrics, "header_timeout"), 1);
    assert_int_equal (s_refused (metrics, "body_timeout"), 1);
    //  Every connection is closed: the gauge comes back to 0 (bounded wait).
    bool zero = false;
    for (int i = 0; i < 100 && !zero; i++) {
        char *text = trove_metrics_render (metrics);
        zero = text && strstr (text, "\ntrove_ingestor_http_connections 0\n");
        free (text);
        if (!zero)
            usleep (50000);
    }
    assert_true (zero);
    trove_http_destroy (&http);
    trove_metrics_destroy (&metrics);
}

static void
test_per_client_cap (void **state)
{
    (void) state;
    trove_metrics_t *metrics = trove_metrics_new ();
    trove_http_t *http = s_server ();
    trove_http_limits_t limits;
    trove_http_limits_default (&limits);
    limits.max_per_client = 3;
    limits.header_timeout_s = 60;  //  no deadline meets these connections
    limits.body_timeout_s = 60;
    assert_int_equal (trove_http_set_limits (http, &limits), 0);
    assert_int_equal (trove_http_set_metrics (http, metrics), 0);
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    uint16_t port = trove_http_port (http);
    //  Three connections of 127.0.0.3 in their bodies (served) fill its
    //  cap: a fourth is closed at once without an answer; 127.0.0.1 is
    //  still served.
    const char *head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n";
    int held [3];
    for (int i = 0; i < 3; i++) {
        held [i] = s_connect_from (port, "127.0.0.3");
        assert_int_equal (send (held [i], head, strlen (head), MSG_NOSIGNAL), (ssize_t) strlen (head));
    }
    //  (each counts once libmicrohttpd has taken it from the door: until
    //  then a fourth may slip in, and is served)
    const char *get = "GET /v1/users/u1/balance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 100 && s_refused (metrics, "per_client_cap") == 0; i++) {
        int over = s_connect_from (port, "127.0.0.3");
        send (over, get, strlen (get), MSG_NOSIGNAL);  //  may fail: closed at once
        char *out = s_wait_closed (over, 5);
        close (over);
        assert_true (out [0] == 0 || strstr (out, "HTTP/1.1 200"));
        free (out);
    }
    assert_int_equal (s_refused (metrics, "per_client_cap"), 1);
    char *out = s_roundtrip (port, get, strlen (get));
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    free (out);
    for (int i = 0; i < 3; i++)
        close (held [i]);
    //  Three slow heads of 127.0.0.5 at its cap: once they have been at it
    //  for over a second, a quick request of the same address gets in in
    //  place of the oldest, which is closed without an answer.
    int slow [3];
    for (int i = 0; i < 3; i++) {
        slow [i] = s_connect_from (port, "127.0.0.5");
        assert_int_equal (send (slow [i], "GET /v1/users/u HTTP/1.1\r\n", 26, MSG_NOSIGNAL), 26);
    }
    usleep (1300000);  //  the rule is about their age: past 1 s
    int quick = s_connect_from (port, "127.0.0.5");
    assert_int_equal (send (quick, get, strlen (get), MSG_NOSIGNAL), (ssize_t) strlen (get));
    out = s_wait_closed (quick, 5);
    close (quick);
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    free (out);
    out = s_wait_closed (slow [0], 5);
    assert_string_equal (out, "");
    free (out);
    for (int i = 0; i < 3; i++)
        close (slow [i]);
    assert_int_equal (s_refused (metrics, "per_client_cap"), 2);
    trove_http_destroy (&http);
    trove_metrics_destroy (&metrics);
}

//  Authentication hook: the key "good" is the principal "p".
static const void *
s_auth (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    size_t len;
    const char *key = trove_http_bearer (req, &len);
    if (key && len == 4 && memcmp (key, "good", 4) == 0)
        return "p";
    trove_http_reply_error (resp, 401, "unauthorized", "no");
    return NULL;
}

static void
s_whoami (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    trove_http_reply (resp, 200, strdup (req->principal ? (const char *) req->principal : "none"));
}

static unsigned
s_auth_dispatch (trove_http_t *http, const char *method, const char *path, const char *auth)
{
    const char *headers [] = {"Authorization", auth};
    trove_http_request_t req = {.method = method, .path = path, .headers = headers, .nheaders = auth ? 1 : 0};
    trove_http_response_t resp;
    trove_http_dispatch (http, &req, &resp);
    if (resp.status == 200)
        assert_string_equal (resp.body, "p");
    free (resp.body);
    return resp.status;
}

static void
test_auth_first (void **state)
{
    (void) state;
    trove_metrics_t *metrics = trove_metrics_new ();
    trove_http_t *http = trove_http_new (100);
    assert_int_equal (trove_http_route (http, "POST", "/v1/events", s_whoami, NULL), 0);
    assert_int_equal (trove_http_set_auth (http, s_auth, NULL), 0);
    assert_int_equal (trove_http_set_metrics (http, metrics), 0);
    //  Without a valid key nothing is routed: 401 for every path and method.
    assert_int_equal (s_auth_dispatch (http, "GET", "/nope", NULL), 401);
    assert_int_equal (s_auth_dispatch (http, "OPTIONS", "/v1/events", NULL), 401);
    assert_int_equal (s_auth_dispatch (http, "GET", "/v1/events", "Bearer bad"), 401);
    assert_int_equal (s_auth_dispatch (http, "POST", "/v1/events", NULL), 401);
    //  With one: routing as before, the handler sees the principal.
    assert_int_equal (s_auth_dispatch (http, "GET", "/nope", "Bearer good"), 404);
    assert_int_equal (s_auth_dispatch (http, "OPTIONS", "/v1/events", "Bearer good"), 405);
    assert_int_equal (s_auth_dispatch (http, "POST", "/v1/events", "Bearer good"), 200);
    //  Over a socket too, the body never read for a stranger.
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    const char *options = "OPTIONS /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    char *out = s_roundtrip (trove_http_port (http), options, strlen (options));
    assert_non_null (strstr (out, "HTTP/1.1 401"));
    assert_non_null (strstr (out, "Connection: close"));
    free (out);
    const char *post = "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
                       "Content-Length: 3\r\nConnection: close\r\n\r\nabc";
    out = s_roundtrip (trove_http_port (http), post, strlen (post));
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    free (out);
    assert_int_equal (s_refused (metrics, "unauthorized"), 5);
    assert_int_equal (s_refused (metrics, "not_found"), 1);
    assert_int_equal (s_refused (metrics, "method_not_allowed"), 1);
    trove_http_destroy (&http);
    trove_metrics_destroy (&metrics);
}

//  ---------------------------------------------------------------------------
//  Streaming responses

#define S_FLOOD_LINES 3000  //  9-byte lines the flood writer sends (27 KB, the buffer 256 B)

//  A stream's writer thread. Modes: "steps" writes "first", waits for
//  step 1, writes "second", then keeps writing "x" until the client is
//  gone; "flood" writes numbered lines, noting when the buffer was full.
typedef struct {
    trove_http_stream_t *stream;
    bool flood;
    pthread_t thread;
    atomic_int step;      //  the test lets a "steps" writer go on
    atomic_int first_rc;  //  rc of the first write (2: not yet)
    atomic_bool full;     //  a flood write found no room
    atomic_bool gone;     //  a write returned -1
    atomic_bool done;     //  the thread ended the stream
} s_writer_t;

static s_writer_t s_writers [4];
static atomic_int s_nwriters;

static void *
s_writer_run (void *arg)
{
    s_writer_t *w = arg;
    int rc = trove_http_stream_write (w->stream, "first\n", 6, 1000);
    atomic_store (&w->first_rc, rc);
    if (w->flood) {
        for (int i = 0; rc == 0 && i < S_FLOOD_LINES; i++) {
            char line [16];
            snprintf (line, sizeof line, "%08d\n", i);
            //  No wait at first: the buffer fills while the client reads nothing.
            rc = trove_http_stream_write (w->stream, line, 9, 0);
            if (rc == 1) {
                atomic_store (&w->full, true);
                assert_true (trove_http_stream_queued (w->stream) <= 256);
                for (int tries = 0; rc == 1 && tries < 100; tries++)
                    rc = trove_http_stream_write (w->stream, line, 9, 100);
            }
        }
    }
    else if (rc == 0) {
        //  Bounded: the test moves on within seconds, or the stream closes.
        for (int i = 0; i < 1000 && !atomic_load (&w->step) && !trove_http_stream_closed (w->stream); i++)
            usleep (10000);
        if (atomic_load (&w->step))
            rc = trove_http_stream_write (w->stream, "second\n", 7, 1000);
        for (int i = 0; rc == 0 && i < 1000; i++) {
            rc = trove_http_stream_write (w->stream, "x", 1, 100);
            usleep (10000);
        }
    }
    atomic_store (&w->gone, rc == -1);
    trove_http_stream_end (&w->stream);
    atomic_store (&w->done, true);
    return NULL;
}

static void
s_stream_handler (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    trove_http_stream_t *stream = trove_http_reply_stream (req, resp, "text/event-stream", 256);
    if (!stream)
        return;
    int i = atomic_fetch_add (&s_nwriters, 1);
    assert_true (i < 4);
    s_writer_t *w = &s_writers [i];
    memset (w, 0, sizeof *w);
    w->stream = stream;
    w->flood = trove_http_arg (req, "flood") != NULL;
    atomic_store (&w->first_rc, 2);
    assert_int_equal (pthread_create (&w->thread, NULL, s_writer_run, w), 0);
}

//  Read from fd until `want` was received (bounded: 5 s); returns all read.
static char *
s_read_until (int fd, const char *want)
{
    char *out = calloc (1, 65536);
    size_t got = 0;
    for (int i = 0; i < 50 && !strstr (out, want) && got < 65535; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, 100) == 1) {
            ssize_t n = recv (fd, out + got, 65535 - got, 0);
            if (n <= 0)
                break;
            got += (size_t) n;
        }
    }
    return out;
}

static void
s_wait_flag (atomic_bool *flag)
{
    for (int i = 0; i < 500 && !atomic_load (flag); i++)
        usleep (10000);
    assert_true (atomic_load (flag));
}

static void
test_stream (void **state)
{
    (void) state;
    atomic_store (&s_nwriters, 0);
    trove_http_t *http = s_server ();
    assert_int_equal (trove_http_route (http, "GET", "/stream", s_stream_handler, NULL), 0);
    trove_http_limits_t limits;
    trove_http_limits_default (&limits);
    limits.max_streams = 1;
    assert_int_equal (trove_http_set_limits (http, &limits), 0);
    trove_metrics_t *metrics = trove_metrics_new ();
    assert_int_equal (trove_http_set_metrics (http, metrics), 0);
    //  One thread: a stream that held it would block every other request.
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 1, NULL), 0);
    uint16_t port = trove_http_port (http);
    const char *get = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = s_connect_from (port, NULL);
    assert_int_equal (send (fd, get, strlen (get), MSG_NOSIGNAL), (ssize_t) strlen (get));
    char *out = s_read_until (fd, "first\n");
    assert_non_null (strstr (out, "HTTP/1.1 200"));
    assert_non_null (strstr (out, "Content-Type: text/event-stream"));
    assert_non_null (strstr (out, "chunked"));
    assert_non_null (strstr (out, "first\n"));
    assert_null (strstr (out, "second"));
    free (out);
    char *text = trove_metrics_render (metrics);
    assert_non_null (strstr (text, "\ntrove_ingestor_http_streams 1\n"));
    free (text);
    //  The stream waits for its writer: the only thread answers others.
    const char *user = "GET /v1/users/u1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    out = s_roundtrip (port, user, strlen (user));
    assert_non_null (strstr (out, "users|GET|u1"));
    free (out);
    //  The cap: one stream open.
    const char *get_close = "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    out = s_roundtrip (port, get_close, strlen (get_close));
    assert_non_null (strstr (out, "HTTP/1.1 503"));
    assert_non_null (strstr (out, "\"overloaded\""));
    assert_non_null (strstr (out, "Retry-After: 1"));
    free (out);
    //  The writer goes on; the bytes follow.
    atomic_store (&s_writers [0].step, 1);
    out = s_read_until (fd, "second\n");
    assert_non_null (strstr (out, "second\n"));
    free (out);
    //  The client leaves: the writer learns it, its stream is freed (room
    //  for another).
    close (fd);
    s_wait_flag (&s_writers [0].done);
    assert_true (atomic_load (&s_writers [0].gone));
    pthread_join (s_writers [0].thread, NULL);
    text = trove_metrics_render (metrics);
    assert_non_null (strstr (text, "\ntrove_ingestor_http_streams 0\n"));
    free (text);

    //  A client that reads nothing: the writer finds the buffer full
    //  (bounded), waits, and the client then gets every line, in order.
    fd = socket (AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    const char *flood = "GET /stream?flood=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal (send (fd, flood, strlen (flood), MSG_NOSIGNAL), (ssize_t) strlen (flood));
    s_wait_flag (&s_writers [1].full);
    bool closed = false;
    struct timeval tv = {10, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char *all = calloc (1, 200000);
    size_t got = 0;
    ssize_t n;
    while (got < 199999 && (n = recv (fd, all + got, 199999 - got, 0)) > 0)
        got += (size_t) n;
    closed = got < 199999;
    assert_true (closed);
    close (fd);
    //  De-chunk by looking for each line in order.
    const char *at = strstr (all, "first\n");
    assert_non_null (at);
    for (int i = 0; i < S_FLOOD_LINES; i++) {
        char line [16];
        snprintf (line, sizeof line, "%08d\n", i);
        const char *next = strstr (at, line);
        if (!next)
            fail_msg ("line %d missing", i);
        at = next + 9;
    }
    free (all);
    s_wait_flag (&s_writers [1].done);
    assert_false (atomic_load (&s_writers [1].gone));
    pthread_join (s_writers [1].thread, NULL);

    //  Destroy while a stream's writer waits: the stream closes, the
    //  writer learns it, destroy returns once it let go.
    fd = s_connect_from (port, NULL);
    assert_int_equal (send (fd, get, strlen (get), MSG_NOSIGNAL), (ssize_t) strlen (get));
    out = s_read_until (fd, "first\n");
    assert_non_null (strstr (out, "first\n"));
    free (out);
    trove_http_destroy (&http);
    //  Destroy returned once the writer let go of its handle: it had
    //  learnt the stream was gone by then (`gone` is set before the
    //  release; `done` only after it, so it is read after the join).
    assert_true (atomic_load (&s_writers [2].gone));
    pthread_join (s_writers [2].thread, NULL);
    assert_true (atomic_load (&s_writers [2].done));
    close (fd);
    trove_metrics_destroy (&metrics);

    //  Without a socket (dispatch) the client is gone at once.
    http = s_server ();
    assert_int_equal (trove_http_route (http, "GET", "/stream", s_stream_handler, NULL), 0);
    char answer [200];
    assert_int_equal (s_dispatch (http, "GET", "/stream", NULL, answer, sizeof answer), 200);
    s_wait_flag (&s_writers [3].done);
    assert_int_equal (atomic_load (&s_writers [3].first_rc), -1);
    pthread_join (s_writers [3].thread, NULL);
    trove_http_destroy (&http);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_routing),
        cmocka_unit_test (test_unescape),
        cmocka_unit_test (test_server),
        cmocka_unit_test (test_frame_check),
        cmocka_unit_test (test_smuggling),
        cmocka_unit_test (test_deadlines_and_caps),
        cmocka_unit_test (test_per_client_cap),
        cmocka_unit_test (test_auth_first),
        cmocka_unit_test (test_stream),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
