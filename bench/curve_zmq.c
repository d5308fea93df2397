/*  bench-curve-zmq - what CURVE (encryption + authentication) costs ZeroMQ
    on this machine, measured before the daemons use it (docs/security.md).

    One-way DEALER -> ROUTER over TCP loopback, two threads with one context
    each (two processes' worth), one zmq_send per message as the pipeline
    does per request; the receiver times from the first message to the
    last. Each size runs plain, then with CURVE (czmq zcert keys, the
    ROUTER a CURVE server with a ZAP domain, the DEALER a client that knows
    the server key; no ZAP handler, so libzmq accepts any client key: the
    handshake's cost is per connection, the crypto's per message). The
    messages of a run are the same size: 100 B (heartbeat-like), 6 KiB (a
    submit of 100 events), 60 KiB (1000 events).

    Usage: bench-curve-zmq [--messages N] [--json]
    Prints, per size, messages/s and MB/s plain and with CURVE. */
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *endpoint;
    size_t messages, size;
    zcert_t *server, *client;  //  NULL: plain
    int rc;
} s_args_t;

static void *
s_sender (void *arg)
{
    s_args_t *a = arg;
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int hwm = 100000, linger = 5000;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger);
    if (a->server) {
        zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, zcert_public_key (a->server), 32);
        zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key (a->client), 32);
        zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key (a->client), 32);
    }
    char *buf = calloc (1, a->size);
    a->rc = zmq_connect (sock, a->endpoint);
    for (size_t i = 0; a->rc == 0 && i < a->messages + 1; i++)
        if (zmq_send (sock, buf, a->size, 0) < 0)
            a->rc = -1;
    free (buf);
    zmq_close (sock);
    zmq_ctx_term (ctx);
    return NULL;
}

//  Messages per second for one configuration.
static double
s_run (size_t messages, size_t size, bool curve, int port)
{
    zcert_t *server = curve ? zcert_new () : NULL, *client = curve ? zcert_new () : NULL;
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_ROUTER);
    int hwm = 100000;
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (curve) {
        int one = 1;
        zmq_setsockopt (sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key (server), 32);
        zmq_setsockopt (sock, ZMQ_ZAP_DOMAIN, "trove", 5);
    }
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    if (zmq_bind (sock, endpoint)) {
        fprintf (stderr, "bench-curve-zmq: cannot bind %s\n", endpoint);
        exit (1);
    }
    s_args_t args = {endpoint, messages, size, server, client, 0};
    pthread_t thread;
    pthread_create (&thread, NULL, s_sender, &args);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int64_t start = 0;
    //  First message (with its routing id) starts the clock.
    for (size_t i = 0; i < messages + 1; i++) {
        zmq_msg_recv (&msg, sock, 0);  //  routing id
        zmq_msg_recv (&msg, sock, 0);  //  body
        if (i == 0)
            start = zclock_usecs ();
    }
    double secs = (zclock_usecs () - start) / 1e6;
    zmq_msg_close (&msg);
    pthread_join (thread, NULL);
    zmq_close (sock);
    zmq_ctx_term (ctx);
    zcert_destroy (&server);
    zcert_destroy (&client);
    return messages / secs;
}

int
main (int argc, char *argv [])
{
    size_t messages = 200000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--messages") == 0 && i + 1 < argc)
            messages = strtoul (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--json") == 0)
            json = true;
        else {
            fprintf (stderr, "usage: bench-curve-zmq [--messages N] [--json]\n");
            return 2;
        }
    }
    const size_t sizes [] = {100, 6 * 1024, 60 * 1024};
    if (json)
        printf ("[");
    for (size_t k = 0; k < 3; k++) {
        size_t n = sizes [k] > 1024 ? messages / 10 : messages;
        double plain = s_run (n, sizes [k], false, 7890);
        double curve = s_run (n, sizes [k], true, 7891);
        if (json)
            printf (
                "%s{\"size\":%zu,\"messages\":%zu,\"plain_per_s\":%.0f,\"curve_per_s\":%.0f,\"ratio\":%.3f}",
                k ? "," : "", sizes [k], n, plain, curve, curve / plain);
        else
            printf ("%6zu B x %zu: plain %9.0f msg/s (%7.1f MB/s), CURVE %9.0f msg/s (%7.1f MB/s): %.0f %%\n",
                    sizes [k], n, plain, plain * sizes [k] / 1e6, curve, curve * sizes [k] / 1e6,
                    100 * curve / plain);
    }
    if (json)
        printf ("]\n");
    return 0;
}
