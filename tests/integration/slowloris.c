/*  slowloris - a slow-header attacker for tests/integration/test_hostile_http.sh
    (issue 18). Holds up to CONNS connections to 127.0.0.1:PORT from the
    loopback address FROM, each sending a request line and then one header
    line every INTERVAL ms, never the blank line that ends a head; a
    connection the server closes is opened again at the next round, as an
    attacker would. Runs SECONDS seconds, then prints one line of counts:
      connects=N refused=N closed=N answered_408=N max_open=N
    (refused: closed by the server before it sent anything within the
    round, i.e. at once; closed: closed later; answered_408: closed with a
    408 answer). Loopback only. Exit 0, or 2 on bad arguments.

    Usage: slowloris --port PORT --from 127.0.0.X --conns N --seconds S
                     [--interval-ms MS] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int lines;  //  header lines sent
} s_slot_t;

static long long
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_open (const struct sockaddr_in *to, const struct sockaddr_in *from)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind (fd, (const struct sockaddr *) from, sizeof *from)
        || connect (fd, (const struct sockaddr *) to, sizeof *to)) {
        close (fd);
        return -1;
    }
    static const char line [] = "GET /v1/users/slow/balance HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (send (fd, line, sizeof line - 1, MSG_NOSIGNAL) < 0) {
        close (fd);
        return -1;
    }
    return fd;
}

int
main (int argc, char *argv [])
{
    int port = 0, conns = 0, seconds = 0, interval = 1000;
    const char *from_text = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp (argv [i], "--port") == 0)
            port = atoi (argv [i + 1]);
        else if (strcmp (argv [i], "--from") == 0)
            from_text = argv [i + 1];
        else if (strcmp (argv [i], "--conns") == 0)
            conns = atoi (argv [i + 1]);
        else if (strcmp (argv [i], "--seconds") == 0)
            seconds = atoi (argv [i + 1]);
        else if (strcmp (argv [i], "--interval-ms") == 0)
            interval = atoi (argv [i + 1]);
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    struct sockaddr_in from = {.sin_family = AF_INET};
    to.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (port <= 0 || port > 65535 || conns <= 0 || conns > 4000 || seconds <= 0 || seconds > 600
        || interval < 10 || !from_text || inet_pton (AF_INET, from_text, &from.sin_addr) != 1
        || (ntohl (from.sin_addr.s_addr) >> 24) != 127) {
        fprintf (stderr, "usage: slowloris --port PORT --from 127.0.0.X --conns N --seconds S "
                         "[--interval-ms MS]\n");
        return 2;
    }
    s_slot_t *slots = calloc ((size_t) conns, sizeof *slots);
    struct pollfd *fds = calloc ((size_t) conns, sizeof *fds);
    if (!slots || !fds)
        return 1;
    for (int i = 0; i < conns; i++)
        slots [i].fd = -1;
    long connects = 0, refused = 0, closed = 0, answered_408 = 0, max_open = 0;
    long long end = s_now_ms () + (long long) seconds * 1000;
    while (s_now_ms () < end) {
        long long round_end = s_now_ms () + interval;
        long open = 0;
        for (int i = 0; i < conns; i++) {
            s_slot_t *s = &slots [i];
            if (s->fd < 0) {
                s->fd = s_open (&to, &from);
                s->lines = 0;
                connects += s->fd >= 0;
            }
            else if (send (s->fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
                close (s->fd);
                s->fd = -1;
                closed++;
                continue;
            }
            else
                s->lines++;
            open += s->fd >= 0;
        }
        if (open > max_open)
            max_open = open;
        //  Until the next round: see who the server closed.
        while (s_now_ms () < round_end) {
            int n = 0;
            for (int i = 0; i < conns; i++)
                fds [i] = (struct pollfd){slots [i].fd, POLLIN, 0};
            n = poll (fds, (nfds_t) conns, (int) (round_end - s_now_ms ()));
            if (n <= 0)
                continue;
            for (int i = 0; i < conns; i++) {
                if (!fds [i].revents || slots [i].fd < 0)
                    continue;
                char buf [512];
                ssize_t got = recv (slots [i].fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (got > 0) {
                    buf [got] = 0;
                    answered_408 += strstr (buf, " 408 ") != NULL;
                }
                if (got > 0 || got == 0 || errno != EAGAIN) {
                    close (slots [i].fd);
                    if (slots [i].lines == 0)
                        refused++;
                    else
                        closed++;
                    slots [i].fd = -1;
                }
            }
        }
    }
    for (int i = 0; i < conns; i++)
        if (slots [i].fd >= 0)
            close (slots [i].fd);
    printf ("connects=%ld refused=%ld closed=%ld answered_408=%ld max_open=%ld\n", connects, refused, closed,
            answered_408, max_open);
    free (slots);
    free (fds);
    return 0;
}
