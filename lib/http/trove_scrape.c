/*  trove_scrape - one HTTP/1.0 GET. See trove_scrape.h. */
#include "trove_scrape.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HEAD_MAX 16384  //  bytes of an answer's head

static char *s_fail (char **err_p, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static char *
s_fail (char **err_p, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    if (vasprintf (err_p, fmt, args) < 0)
        *err_p = NULL;
    va_end (args);
    return NULL;
}

//  Wait for events on fd until deadline_us (monotonic). Returns true when ready.
static bool
s_wait (int fd, short events, int64_t deadline_us)
{
    while (true) {
        int64_t left_ms = (deadline_us - trove_mono_us ()) / 1000;
        if (left_ms <= 0)
            return false;
        struct pollfd p = {fd, events, 0};
        int rc = poll (&p, 1, (int) left_ms);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

//  Split "HOST:PORT" / "[HOST]:PORT" into host and port.
static int
s_split (const char *address, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon = strrchr (address, ':');
    if (!colon || !colon [1] || strlen (colon + 1) >= psize)
        return -1;
    const char *h = address;
    size_t hlen = (size_t) (colon - address);
    if (hlen >= 2 && h [0] == '[' && h [hlen - 1] == ']')
        h++, hlen -= 2;
    if (hlen == 0 || hlen >= hsize)
        return -1;
    memcpy (host, h, hlen);
    host [hlen] = 0;
    strcpy (port, colon + 1);
    return 0;
}

char *
trove_scrape (const char *address, const char *path, int timeout_ms, size_t max, size_t *size_p, char **err_p)
{
    assert (address && path && err_p);
    *err_p = NULL;
    char host [256], port [16];
    if (s_split (address, host, sizeof host, port, sizeof port))
        return s_fail (err_p, "bad address '%.200s': want HOST:PORT", address);
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo (host, port, &hints, &ai) || !ai)
        return s_fail (err_p, "bad address '%.200s': want a numeric host and port", address);
    int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
    int fd = socket (ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (fd < 0) {
        freeaddrinfo (ai);
        return s_fail (err_p, "socket: %s", strerror (errno));
    }
    int rc = connect (fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo (ai);
    if (rc && errno != EINPROGRESS) {
        s_fail (err_p, "%s: connect: %s", address, strerror (errno));
        goto done;
    }
    if (rc) {
        int soerr = 0;
        socklen_t slen = sizeof soerr;
        if (!s_wait (fd, POLLOUT, deadline)) {
            s_fail (err_p, "%s: connect timed out", address);
            goto done;
        }
        if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) || soerr) {
            s_fail (err_p, "%s: connect: %s", address, strerror (soerr ? soerr : errno));
            goto done;
        }
    }
    char request [1024];
    int n = snprintf (request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: text/plain\r\n\r\n",
                      path, address);
    if (n < 0 || (size_t) n >= sizeof request) {
        s_fail (err_p, "path too long");
        goto done;
    }
    for (size_t sent = 0; sent < (size_t) n;) {
        ssize_t w = send (fd, request + sent, (size_t) n - sent, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t) w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            s_fail (err_p, "%s: send: %s", address, strerror (errno));
            goto done;
        }
        else if (!s_wait (fd, POLLOUT, deadline)) {
            s_fail (err_p, "%s: timed out sending", address);
            goto done;
        }
    }
    //  Read to the end: HTTP/1.0, the server closes after the body.
    while (true) {
        if (cap - len < 4096) {
            if (cap >= max + S_HEAD_MAX) {
                s_fail (err_p, "%s: answer larger than %zu bytes", address, max);
                goto done;
            }
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > max + S_HEAD_MAX + 4096)
                ncap = max + S_HEAD_MAX + 4096;
            char *nbuf = realloc (buf, ncap + 1);
            if (!nbuf) {
                s_fail (err_p, "out of memory");
                goto done;
            }
            buf = nbuf, cap = ncap;
        }
        ssize_t r = recv (fd, buf + len, cap - len, 0);
        if (r > 0)
            len += (size_t) r;
        else if (r == 0)
            break;
        else if (errno != EAGAIN && errno != EINTR) {
            s_fail (err_p, "%s: recv: %s", address, strerror (errno));
            goto done;
        }
        else if (!s_wait (fd, POLLIN, deadline)) {
            s_fail (err_p, "%s: timed out reading the answer", address);
            goto done;
        }
    }
    if (!buf) {
        s_fail (err_p, "%s: empty answer", address);
        goto done;
    }
    buf [len] = 0;
    unsigned status = 0;
    char *head_end = strstr (buf, "\r\n\r\n");
    if (sscanf (buf, "HTTP/1.%*1[01] %3u", &status) != 1 || !head_end) {
        s_fail (err_p, "%s: not an HTTP answer", address);
        goto done;
    }
    if (status != 200) {
        s_fail (err_p, "%s: HTTP status %u", address, status);
        goto done;
    }
    char *body = head_end + 4;
    size_t size = len - (size_t) (body - buf);
    if (size > max) {
        s_fail (err_p, "%s: answer larger than %zu bytes", address, max);
        goto done;
    }
    if (strlen (body) != size) {
        s_fail (err_p, "%s: a NUL byte in the answer", address);
        goto done;
    }
    memmove (buf, body, size + 1);
    close (fd);
    if (size_p)
        *size_p = size;
    return buf;
done:
    close (fd);
    free (buf);
    return NULL;
}
