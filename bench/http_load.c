/*  bench-http-load - closed-loop load on the HTTP ingest (POST /v1/events),
    to compare with trove-load on the ZeroMQ path (bench/http_bench.sh).

    C connections (one thread each, HTTP/1.1 keep-alive) each send NDJSON
    requests of B events with unique ids over U users, wait for the answer,
    and send the next: a closed loop, like `trove-load --rate 0`. 429/503
    answers are counted and the request is sent again after Retry-After.
    Prints events/s (accepted), request latency percentiles, and answers by
    status; --json gives one JSON object.

    Usage: bench-http-load --address 127.0.0.1:PORT --key KEY [--events N]
           [--batch B] [--conns C] [--users U] [--source S] [--json] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
    struct sockaddr_in addr;
    const char *key, *source;
    long events, batch, conns, users;
    atomic_long next;  //  next event number to send
    atomic_long accepted, other, refused, requests;
    long run_id;
} g;

typedef struct {
    double *lat;  //  per request, seconds
    size_t nlat, cap;
    int failed;
} s_worker_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (fd, (struct sockaddr *) &g.addr, sizeof g.addr)) {
        close (fd);
        return -1;
    }
    return fd;
}

//  Send a request, read one answer; returns the status, the body in buf.
static int
s_exchange (int fd, const char *req, size_t len, char *buf, size_t size, long *retry_after)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send (fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        sent += (size_t) n;
    }
    size_t got = 0;
    char *body = NULL;
    long clen = -1;
    while (1) {
        if (got + 1 >= size)
            return -1;
        ssize_t n = recv (fd, buf + got, size - 1 - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t) n;
        buf [got] = 0;
        if (!body && (body = strstr (buf, "\r\n\r\n"))) {
            body += 4;
            char *cl = strcasestr (buf, "\r\nContent-Length:");
            clen = cl ? atol (cl + 17) : 0;
            char *ra = strcasestr (buf, "\r\nRetry-After:");
            *retry_after = ra ? atol (ra + 14) : 0;
        }
        if (body && (long) (got - (size_t) (body - buf)) >= clen)
            break;
    }
    int status = atoi (buf + 9);
    memmove (buf, body, (size_t) clen);
    buf [clen] = 0;
    return status;
}

static void *
s_run (void *arg)
{
    s_worker_t *w = arg;
    size_t size = (size_t) g.batch * 256 + 1024;
    char *body = malloc (size), *req = malloc (size + 512), *buf = malloc (1 << 20);
    int fd = s_connect ();
    if (fd < 0 || !body || !req || !buf) {
        w->failed = 1;
        return NULL;
    }
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    char ts [32];
    strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    long first;
    while ((first = atomic_fetch_add (&g.next, g.batch)) < g.events) {
        long last = first + g.batch > g.events ? g.events : first + g.batch;
        size_t blen = 0;
        for (long e = first; e < last; e++)
            blen +=
                (size_t) snprintf (body + blen, size - blen,
                                   "{\"id\":\"h%ld-%ld\",\"user\":\"u%ld\",\"type\":\"%s\",\"ts\":\"%s\"}\n",
                                   g.run_id, e, (e * 7919) % g.users, e % 3 ? "visit" : "checkin", ts);
        int hlen = snprintf (req, 512,
                             "POST /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                             "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                             g.key, blen);
        memcpy (req + hlen, body, blen);
        while (1) {
            long retry_after = 0;
            double t0 = s_now ();
            int status = s_exchange (fd, req, (size_t) hlen + blen, buf, 1 << 20, &retry_after);
            double dt = s_now () - t0;
            atomic_fetch_add (&g.requests, 1);
            if (status == 200) {
                char *a = strstr (buf, "\"accepted\":");
                long acc = a ? atol (a + 11) : 0;
                atomic_fetch_add (&g.accepted, acc);
                atomic_fetch_add (&g.other, (last - first) - acc);
                if (w->nlat == w->cap) {
                    w->cap = w->cap ? 2 * w->cap : 1024;
                    w->lat = realloc (w->lat, w->cap * sizeof *w->lat);
                }
                w->lat [w->nlat++] = dt;
                break;
            }
            if (status == 429 || status == 503) {
                atomic_fetch_add (&g.refused, 1);
                usleep ((useconds_t) (retry_after > 0 ? retry_after : 1) * 100000);
                continue;
            }
            fprintf (stderr, "bench-http-load: HTTP %d: %.300s\n", status, status > 0 ? buf : "(connection)");
            w->failed = 1;
            goto done;
        }
    }
done:
    close (fd);
    free (body);
    free (req);
    free (buf);
    return NULL;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int
main (int argc, char *argv [])
{
    const char *address = NULL;
    int json = 0;
    g.events = 100000, g.batch = 100, g.conns = 4, g.users = 10000, g.source = "web";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv [i + 1] : NULL;
        if (strcmp (argv [i], "--address") == 0 && v)
            address = v, i++;
        else if (strcmp (argv [i], "--key") == 0 && v)
            g.key = v, i++;
        else if (strcmp (argv [i], "--events") == 0 && v)
            g.events = atol (v), i++;
        else if (strcmp (argv [i], "--batch") == 0 && v)
            g.batch = atol (v), i++;
        else if (strcmp (argv [i], "--conns") == 0 && v)
            g.conns = atol (v), i++;
        else if (strcmp (argv [i], "--users") == 0 && v)
            g.users = atol (v), i++;
        else if (strcmp (argv [i], "--json") == 0)
            json = 1;
        else {
            fprintf (stderr, "usage: bench-http-load --address HOST:PORT --key KEY [--events N] [--batch B] "
                             "[--conns C] [--users U] [--json]\n");
            return 2;
        }
    }
    char host [64] = "127.0.0.1";
    const char *colon = address ? strrchr (address, ':') : NULL;
    if (!colon || !g.key || g.batch < 1 || g.conns < 1 || g.conns > 256 || g.users < 1
        || (size_t) (colon - address) >= sizeof host) {
        fprintf (stderr, "bench-http-load: --address HOST:PORT and --key are required\n");
        return 2;
    }
    memcpy (host, address, (size_t) (colon - address));
    host [colon - address] = 0;
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons ((uint16_t) atoi (colon + 1));
    inet_pton (AF_INET, host, &g.addr.sin_addr);
    g.run_id = (long) time (NULL) * 1000 + getpid () % 1000;
    pthread_t threads [256];
    s_worker_t workers [256];
    memset (workers, 0, sizeof workers);
    double t0 = s_now ();
    for (long c = 0; c < g.conns; c++)
        pthread_create (&threads [c], NULL, s_run, &workers [c]);
    int failed = 0;
    size_t n = 0;
    for (long c = 0; c < g.conns; c++) {
        pthread_join (threads [c], NULL);
        failed |= workers [c].failed;
        n += workers [c].nlat;
    }
    double secs = s_now () - t0;
    double *lat = malloc ((n ? n : 1) * sizeof *lat);
    size_t k = 0;
    for (long c = 0; c < g.conns; c++) {
        memcpy (lat + k, workers [c].lat, workers [c].nlat * sizeof *lat);
        k += workers [c].nlat;
        free (workers [c].lat);
    }
    qsort (lat, n, sizeof *lat, s_cmp);
    double p50 = n ? lat [n / 2] * 1000 : 0, p99 = n ? lat [(size_t) (n * 0.99)] * 1000 : 0,
           max = n ? lat [n - 1] * 1000 : 0;
    double rate = (double) atomic_load (&g.accepted) / secs;
    if (json)
        printf (
            "{\"events\":%ld,\"accepted\":%ld,\"not_accepted\":%ld,\"refused_429_503\":%ld,\"requests\":%ld,"
            "\"seconds\":%.3f,\"events_per_s\":%.0f,\"batch\":%ld,\"conns\":%ld,"
            "\"request_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
            g.events, atomic_load (&g.accepted), atomic_load (&g.other), atomic_load (&g.refused),
            atomic_load (&g.requests), secs, rate, g.batch, g.conns, p50, p99, max);
    else
        printf (
            "%ld accepted of %ld in %.2f s: %.0f events/s; request p50 %.2f ms, p99 %.2f ms; %ld refused\n",
            atomic_load (&g.accepted), g.events, secs, rate, p50, p99, atomic_load (&g.refused));
    free (lat);
    return failed || atomic_load (&g.accepted) + atomic_load (&g.other) != g.events;
}
