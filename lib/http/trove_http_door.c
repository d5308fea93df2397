/*  trove_http_door - the door of the HTTP server: it accepts every
    connection itself, holds it until its first request head is complete
    and well framed (or refuses it: 408, 431, 400 in JSON, the connection
    drained and closed), enforces the per-client and total connection caps,
    reaps heads and bodies that take too long, and hands good connections
    to libmicrohttpd (docs/security.md, "The HTTP listener"). */
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

void
http_client_key (const struct sockaddr *addr, uint8_t key [16])
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

http_client_t *
http_client (trove_http_t *self, const uint8_t key [16], bool create)
{
    for (size_t i = 0; i < self->nclients; i++)
        if (memcmp (self->clients [i].key, key, 16) == 0)
            return &self->clients [i];
    if (!create || self->nclients == self->limits.max_connections)
        return NULL;
    http_client_t *c = &self->clients [self->nclients++];
    memset (c, 0, sizeof *c);
    memcpy (c->key, key, 16);
    return c;
}

void
http_client_forget (trove_http_t *self, http_client_t *c)
{
    if (c->pending || c->active)
        return;
    *c = self->clients [--self->nclients];
}

//  ---------------------------------------------------------------------------
//  The door

//  Send a refusal on a connection the door holds; it is then drained
//  briefly and closed (closing at once with unread bytes would reset it
//  and could lose the answer).
static void
s_door_refuse (trove_http_t *self, http_pending_t *p, unsigned status, const char *code, const char *detail,
               size_t consumed)
{
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    trove_http_reply_error (&resp, status, code, detail);
    char what [200];
    snprintf (what, sizeof what, "a connection's request refused and closed: %u %s (%s)", status, code,
              detail);
    http_dropped (self, http_reason_index (code, status), what);
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

//  Take pending connection i off the door's list and its client's count
//  (from then on libmicrohttpd counts it as active, or nobody does).
static void
s_pending_forget (trove_http_t *self, size_t i)
{
    pthread_mutex_lock (&self->mutex);
    http_client_t *client = http_client (self, self->pending [i].key, false);
    if (client) {
        client->pending--;
        http_client_forget (self, client);
    }
    pthread_mutex_unlock (&self->mutex);
    self->pending [i] = self->pending [--self->npending];
    trove_gauge_add_int (self->connections, -1);
}

static void
s_pending_drop (trove_http_t *self, size_t i)
{
    close (self->pending [i].fd);
    s_pending_forget (self, i);
}

//  The head is complete and well framed: libmicrohttpd takes it from here.
static void
s_pending_hand_over (trove_http_t *self, size_t i)
{
    http_pending_t p = self->pending [i];
    int one = 1;
    setsockopt (p.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    //  Counted as active from libmicrohttpd's start notification on.
    s_pending_forget (self, i);
    //  It closes the socket when it cannot take it (and says why in its log).
    MHD_add_connection (self->daemon, p.fd, (struct sockaddr *) &p.addr, p.addrlen);
}

//  May a new connection of client key come in? NULL when it may (counted
//  as pending), else the reason. A client at its cap that has a connection
//  still sending its head after HTTP_SLOW_US gets room by losing its oldest
//  such: a slow-header flood from one address then churns through its own
//  connections while the same address's quick requests still get in.
static const char *
s_admit (trove_http_t *self, const uint8_t key [16], const char *host)
{
    for (int attempt = 0;; attempt++) {
        const char *refusal = NULL;
        bool capped = false;
        pthread_mutex_lock (&self->mutex);
        http_client_t *client = NULL;
        if (self->npending + self->nsocks >= self->limits.max_connections)
            refusal = "connection_limit";
        else if (!(client = http_client (self, key, true)))
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
            const http_pending_t *p = &self->pending [i];
            if (!p->closing && memcmp (p->key, key, 16) == 0 && now - p->since_us > HTTP_SLOW_US
                && (victim == SIZE_MAX || p->since_us < self->pending [victim].since_us))
                victim = i;
        }
        if (victim == SIZE_MAX)
            return refusal;
        char what [160];
        snprintf (what, sizeof what,
                  "%s is at its connection cap: its slowest head closed for a new connection", host);
        http_dropped (self, http_reason_index ("per_client_cap", 0), what);
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
        http_client_key ((struct sockaddr *) &addr, key);
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
            http_dropped (self, http_reason_index (refusal, 0), what);
            close (fd);  //  after counting: whoever sees it closed sees it counted
            continue;
        }
        http_pending_t *p = &self->pending [self->npending++];
        memset (p, 0, sizeof *p);
        p->fd = fd;
        memcpy (p->key, key, 16);
        p->addr = addr;
        p->addrlen = addrlen;
        p->since_us = trove_mono_us ();
        trove_gauge_add_int (self->connections, 1);
        //  HTTPS: the head is encrypted, libmicrohttpd reads it (and the
        //  reaper holds it to the same deadline).
        if (self->tls_pair)
            s_pending_hand_over (self, self->npending - 1);
    }
}

//  Look at what a pending connection sent so far, without taking it off
//  the socket (libmicrohttpd reads it again). Returns true when the
//  connection left the pending list.
static bool
s_door_peek (trove_http_t *self, size_t i, char *buf, short revents)
{
    http_pending_t *p = &self->pending [i];
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
        p->not_before_us = trove_mono_us () + HTTP_REPEEK_US;
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
        http_pending_t *p = &self->pending [i];
        if (p->closing && now_us - p->since_us > HTTP_LINGER_US) {
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
    for (http_sock_t *sock = self->socks; sock; sock = sock->next) {
        if (sock->state == HTTP_WAIT_HEAD && now_us - sock->since_us > header_us) {
            //  A kept-alive connection idle past the head deadline: an
            //  ordinary close, not counted. One that never sent a whole
            //  first head (HTTPS: the door could not look) is a slow head.
            if (sock->requests == 0)
                http_dropped (self, http_reason_index ("header_timeout", 408),
                              "a request head did not arrive in time: connection closed");
            shutdown (sock->fd, SHUT_RDWR);
            sock->state = HTTP_HANDLING;  //  once
        }
        else if (sock->state == HTTP_IN_BODY && now_us - sock->since_us > body_us) {
            http_dropped (self, http_reason_index ("body_timeout", 0),
                          "a request body did not arrive in time: connection closed");
            shutdown (sock->fd, SHUT_RDWR);
            sock->state = HTTP_HANDLING;
        }
    }
    pthread_mutex_unlock (&self->mutex);
}

void *
http_door (void *arg)
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
        int timeout_ms = HTTP_TICK_MS;
        for (size_t i = 0; i < n; i++) {
            http_pending_t *p = &self->pending [i];
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
        if (now - last_tick >= HTTP_TICK_MS * 1000) {
            s_door_reap (self, now);
            http_log_tick (self, now);
            last_tick = now;
        }
    }
    free (fds);
    free (buf);
    return NULL;
}

//  "a.b.c.d:port" or "[v6]:port" into *addr. Returns 0 or -1.
int
http_parse_address (const char *address, struct sockaddr_storage *addr)
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
http_listen (trove_http_t *self, const struct sockaddr_storage *addr)
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
