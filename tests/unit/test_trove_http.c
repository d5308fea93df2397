/*  Tests for trove_http: routing (exact, prefix, longest match, 404, 405
    with Allow), the body limit, header and argument lookup, a handler that
    answers nothing, percent-decoding and the Bearer key; then a real server
    on loopback: a POST round trip, 413 for a body over the limit with and
    without Content-Length, the path routed as sent (encoded) and the
    arguments decoded, 400 bad_query for arguments that do not decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void
s_echo (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
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
    trove_http_destroy (&http);
    trove_http_destroy (&http);
    assert_null (http);
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

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_routing),
        cmocka_unit_test (test_unescape),
        cmocka_unit_test (test_server),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
