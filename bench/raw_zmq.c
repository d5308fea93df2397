/*  bench-raw-zmq - the ceiling ZeroMQ sets for Trove on this machine: one-way
    PUSH -> PULL throughput over TCP loopback with small messages.

    The sender and the receiver are two threads with one ZeroMQ context each
    (one I/O thread each), which is what two Trove processes have. The
    receiver times from the first message to the last, so connection set-up
    is not counted. Nothing is batched by the program: one zmq_send per
    message, as the pipeline's sockets do per request.

    Usage: bench-raw-zmq [--messages N] [--size BYTES] [--json]
    Prints one line (or one JSON object) with messages/s and MB/s. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

typedef struct {
    char endpoint [256];  //  where the receiver is bound
    size_t messages;      //  messages to send
    size_t size;          //  bytes per message
    int rc;               //  0 when the sender finished
} s_sender_args_t;

static int64_t
s_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
s_sender (void *arg)
{
    s_sender_args_t *args = (s_sender_args_t *) arg;
    args->rc = -1;
    void *ctx = zmq_ctx_new ();
    void *push = ctx ? zmq_socket (ctx, ZMQ_PUSH) : NULL;
    char *buf = malloc (args->size ? args->size : 1);
    if (!push || !buf)
        goto cleanup;
    memset (buf, 'x', args->size);
    int linger = 5000;
    zmq_setsockopt (push, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect (push, args->endpoint) != 0)
        goto cleanup;
    for (size_t i = 0; i < args->messages; i++) {
        //  The first bytes carry the counter so the message is not constant.
        memcpy (buf, &i, args->size < sizeof i ? args->size : sizeof i);
        if (zmq_send (push, buf, args->size, 0) != (int) args->size)
            goto cleanup;
    }
    args->rc = 0;
cleanup:
    free (buf);
    if (push)
        zmq_close (push);
    if (ctx)
        zmq_ctx_term (ctx);
    return NULL;
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: bench-raw-zmq [--messages N] [--size BYTES] [--json]\n");
}

int
main (int argc, char *argv [])
{
    size_t messages = 2000000;
    size_t size = 100;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--messages") == 0 && i + 1 < argc)
            messages = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--size") == 0 && i + 1 < argc)
            size = strtoull (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--json") == 0)
            json = true;
        else {
            s_usage ();
            return 2;
        }
    }
    if (messages == 0 || size == 0 || size > 1024 * 1024) {
        s_usage ();
        return 2;
    }
    int rc = 1;
    char *buf = malloc (size);
    void *ctx = zmq_ctx_new ();
    void *pull = ctx ? zmq_socket (ctx, ZMQ_PULL) : NULL;
    if (!buf || !pull)
        goto cleanup;
    if (zmq_bind (pull, "tcp://127.0.0.1:*") != 0) {
        fprintf (stderr, "bench-raw-zmq: bind: %s\n", zmq_strerror (zmq_errno ()));
        goto cleanup;
    }
    s_sender_args_t args = {.messages = messages, .size = size};
    size_t eplen = sizeof args.endpoint;
    zmq_getsockopt (pull, ZMQ_LAST_ENDPOINT, args.endpoint, &eplen);

    pthread_t thread;
    if (pthread_create (&thread, NULL, s_sender, &args) != 0)
        goto cleanup;
    int64_t start = 0;
    size_t received = 0;
    size_t bytes = 0;
    while (received < messages) {
        int n = zmq_recv (pull, buf, size, 0);
        if (n < 0)
            break;
        if (received == 0)
            start = s_mono_us ();
        received++;
        bytes += (size_t) n;
    }
    int64_t elapsed = s_mono_us () - start;
    pthread_join (thread, NULL);
    if (received < messages || args.rc != 0) {
        fprintf (stderr, "bench-raw-zmq: only %zu of %zu messages\n", received, messages);
        goto cleanup;
    }
    //  The first message started the clock, so messages - 1 were timed.
    double seconds = elapsed / 1e6;
    double rate = seconds > 0 ? (double) (received - 1) / seconds : 0;
    double mbps = rate * (double) size / 1e6;
    if (json)
        printf ("{\"bench\":\"raw_zmq\",\"transport\":\"tcp-loopback\",\"messages\":%zu,"
                "\"size\":%zu,\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f}\n",
                received, size, seconds, rate, mbps);
    else
        printf ("raw zmq PUSH/PULL tcp loopback: %zu x %zu B in %.3f s = %.0f msg/s, %.1f MB/s\n", received,
                size, seconds, rate, mbps);
    rc = 0;
cleanup:
    free (buf);
    if (pull)
        zmq_close (pull);
    if (ctx)
        zmq_ctx_term (ctx);
    return rc;
}
