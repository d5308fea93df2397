/*  test_trove_scrape - one HTTP/1.0 GET (lib/http/trove_scrape) against a
    real trove_http server on 127.0.0.1: the body of a 200, a status that
    is not 200, an answer over the size limit, a port where nothing
    listens, a bad address; and a server that never answers (a listening
    socket that is never accepted) is given up on, "timed out". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_http.h"
#include "trove_scrape.h"
#include "trove_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void
s_text (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    (void) req;
    trove_http_reply (resp, 200, strdup ("a_metric 1\nb_metric{x=\"y\"} 2\n"));
    resp->content_type = "text/plain; version=0.0.4";
}

static void
s_missing (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg;
    (void) req;
    trove_http_reply_error (resp, 404, "not_found", "nothing here");
}

static void
test_get (void **state)
{
    (void) state;
    trove_http_t *http = trove_http_new (1024);
    assert_non_null (http);
    assert_int_equal (trove_http_route (http, "GET", "/metrics", s_text, NULL), 0);
    assert_int_equal (trove_http_route (http, "GET", "/gone", s_missing, NULL), 0);
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, NULL), 0);
    char address [64];
    snprintf (address, sizeof address, "127.0.0.1:%u", trove_http_port (http));

    char *err = NULL;
    size_t size = 0;
    char *body = trove_scrape (address, "/metrics", 2000, 1000, &size, &err);
    assert_non_null (body);
    assert_null (err);
    assert_string_equal (body, "a_metric 1\nb_metric{x=\"y\"} 2\n");
    assert_int_equal (size, strlen (body));
    free (body);

    assert_null (trove_scrape (address, "/gone", 2000, 1000, NULL, &err));
    assert_non_null (strstr (err, "HTTP status 404"));
    free (err);
    assert_null (trove_scrape (address, "/metrics", 2000, 10, NULL, &err));
    assert_non_null (strstr (err, "larger than 10 bytes"));
    free (err);
    assert_null (trove_scrape ("nonsense", "/metrics", 2000, 1000, NULL, &err));
    assert_non_null (strstr (err, "bad address"));
    free (err);
    assert_null (trove_scrape ("localhost:80", "/metrics", 2000, 1000, NULL, &err));
    assert_non_null (strstr (err, "numeric"));
    free (err);
    trove_http_destroy (&http);
}

//  A loopback port that is bound and listening (and never accepted), and
//  one where nothing listens (bound, closed).
static int
s_listener (uint16_t *port_p)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    assert_int_equal (bind (fd, (struct sockaddr *) &a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal (getsockname (fd, (struct sockaddr *) &a, &len), 0);
    *port_p = ntohs (a.sin_port);
    return fd;
}

static void
test_refused_and_silent (void **state)
{
    (void) state;
    uint16_t port;
    int fd = s_listener (&port);
    close (fd);  //  nothing listens there now
    char address [64], *err = NULL;
    snprintf (address, sizeof address, "127.0.0.1:%u", port);
    assert_null (trove_scrape (address, "/metrics", 2000, 1000, NULL, &err));
    assert_non_null (strstr (err, "connect"));
    free (err);

    fd = s_listener (&port);
    assert_int_equal (listen (fd, 4), 0);  //  the kernel accepts; nobody answers
    snprintf (address, sizeof address, "127.0.0.1:%u", port);
    assert_null (trove_scrape (address, "/metrics", 300, 1000, NULL, &err));
    assert_non_null (strstr (err, "timed out"));
    free (err);
    close (fd);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_get),
        cmocka_unit_test (test_refused_and_silent),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
