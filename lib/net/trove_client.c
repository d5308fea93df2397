/*  trove_client - request/reply calls to Trove's servers. See
    trove_client.h for the contracts. */
#include "trove_client.h"
#include "trove_curve.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The largest frame any cluster may allow (the ceiling of limits/max_frame),
//  used by trove_client_call, which has no config at hand.
#define S_MAX_FRAME_CEILING (64 * 1024 * 1024)

uint64_t
trove_client_req_id (void)
{
    static bool initialized = false;
    if (!initialized) {
        if (sodium_init () < 0)
            abort ();  //  no entropy source: nothing can work
        initialized = true;
    }
    uint64_t id = 0;
    while (id == 0)
        randombytes_buf (&id, sizeof id);
    return id;
}

//  A PAIR receiving sock's ZMQ_EVENT_DISCONNECTED events. A server that dies
//  (or restarts) after taking a request never answers it: its replacement
//  does not know the request, so waiting out the timeout would be wasted
//  (trovectl reconcile waits up to 30 minutes). NULL on failure.
static zsock_t *
s_monitor_disconnects (zsock_t *sock)
{
    static _Atomic unsigned long counter = 0;
    char endpoint [96];
    snprintf (endpoint, sizeof endpoint, "inproc://trove-client-monitor-%p-%lu", (void *) sock,
              (unsigned long) counter++);
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, ZMQ_EVENT_DISCONNECTED))
        return NULL;
    return trove_sock_connected (ZMQ_PAIR, TROVE_SOCK_INPROC, endpoint, 0);
}

//  Drain the monitor; true if it reported a disconnection.
static bool
s_disconnected (zsock_t *monitor)
{
    bool seen = false;
    zmq_msg_t part;
    zmq_msg_init (&part);
    //  Each event is two frames: [u16 event, u32 value] and the endpoint.
    while (zmq_msg_recv (&part, zsock_resolve (monitor), ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_size (&part) == 6) {
            uint16_t event;
            memcpy (&event, zmq_msg_data (&part), sizeof event);
            seen |= (event & ZMQ_EVENT_DISCONNECTED) != 0;
        }
    }
    zmq_msg_close (&part);
    return seen;
}

int
trove_client_recv (void *handle, size_t max_frame, int flags, Trove__Msg **msg_p)
{
    *msg_p = NULL;
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, handle, flags) == -1) {
        int saved = errno;
        zmq_msg_close (&part);
        errno = saved;
        return -1;
    }
    while (zmq_msg_more (&part)) {
        zmq_msg_close (&part);
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) == -1)
            goto fail;
    }
    *msg_p = trove_msg_decode (zmq_msg_data (&part), zmq_msg_size (&part), max_frame, NULL);
fail:
    zmq_msg_close (&part);
    return 0;
}

//  Take the query reply out of msg and free the rest. NULL if msg is not a
//  query reply.
static Trove__QueryReply *
s_take_query_reply (Trove__Msg **msg_p)
{
    Trove__Msg *msg = *msg_p;
    Trove__QueryReply *reply = NULL;
    if (msg && msg->body_case == TROVE__MSG__BODY_QUERY_REPLY) {
        reply = msg->query_reply;
        msg->query_reply = NULL;
        msg->body_case = TROVE__MSG__BODY__NOT_SET;
    }
    trove_msg_free (msg_p);
    return reply;
}

Trove__QueryReply *
trove_client_call_max (const char *endpoint, const Trove__Query *query, int timeout_ms, int retries,
                       size_t max_frame, char **err_p)
{
    assert (endpoint);
    assert (query);
    Trove__Query q = *query;
    if (q.req_id == 0)
        q.req_id = trove_client_req_id ();
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_QUERY;
    msg.query = &q;
    char *err = NULL;
    Trove__QueryReply *reply = NULL;
    bool malformed = false;
    bool lost = false;  //  the last attempt's connection dropped before the reply
    int attempt;
    for (attempt = 0; attempt <= retries && !reply; attempt++) {
        zsock_t *sock = trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_REQUEST, endpoint, max_frame);
        zsock_t *monitor = sock ? s_monitor_disconnects (sock) : NULL;
        if (!sock || !monitor) {
            zsock_destroy (&sock);
            err = trove_strdupf ("cannot connect to %s", endpoint);
            goto fail;
        }
        lost = false;
        if (trove_msg_send (sock, NULL, 0, &msg, ZMQ_DONTWAIT) == 0) {
            void *handle = zsock_resolve (sock);
            int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
            while (!reply && !lost) {
                int64_t left_ms = (deadline - trove_mono_us () + 999) / 1000;
                if (left_ms <= 0)
                    break;
                zmq_pollitem_t items [2] = {{handle, 0, ZMQ_POLLIN, 0},
                                            {zsock_resolve (monitor), 0, ZMQ_POLLIN, 0}};
                int rc = zmq_poll (items, 2, (long) left_ms);
                if (rc == -1 && (errno == EINTR || errno == ETERM)) {
                    zsock_destroy (&monitor);
                    zsock_destroy (&sock);
                    err = trove_strdupf ("interrupted");
                    goto fail;
                }
                Trove__Msg *in;
                while (!reply && trove_client_recv (handle, max_frame, ZMQ_DONTWAIT, &in) == 0) {
                    if (!in) {
                        malformed = true;
                        continue;
                    }
                    Trove__QueryReply *candidate = s_take_query_reply (&in);
                    if (candidate && candidate->req_id == q.req_id)
                        reply = candidate;
                    else if (candidate)  //  an answer to somebody else's question
                        trove__query_reply__free_unpacked (candidate, NULL);
                    else
                        malformed = true;
                }
                //  Replies first: a reply that came just before the drop counts.
                if (!reply && (items [1].revents & ZMQ_POLLIN))
                    lost = s_disconnected (monitor);
            }
        }
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zsock_destroy (&monitor);
        zsock_destroy (&sock);
    }
    if (!reply && lost) {
        err = trove_strdupf ("connection to %s lost before the reply (%d attempt%s)", endpoint, attempt,
                             attempt > 1 ? "s" : "");
        goto fail;
    }
    if (!reply) {
        err = trove_strdupf ("%s from %s within %d ms (%d attempt%s)%s",
                             malformed ? "no valid reply" : "no reply", endpoint, timeout_ms, attempt,
                             attempt > 1 ? "s" : "", malformed ? "" : trove_curve_hint ());
        goto fail;
    }
    return reply;
fail:
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

Trove__QueryReply *
trove_client_call (const char *endpoint, const Trove__Query *query, int timeout_ms, int retries, char **err_p)
{
    return trove_client_call_max (endpoint, query, timeout_ms, retries, S_MAX_FRAME_CEILING, err_p);
}

int
trove_client_call_all (const char *const *endpoints, size_t n, const Trove__Query *query, int timeout_ms,
                       int retries, size_t max_frame, Trove__QueryReply **replies)
{
    assert (query);
    assert (n == 0 || (endpoints && replies));
    int rc = -1;
    zsock_t **socks = calloc (n ? n : 1, sizeof *socks);
    uint64_t *ids = calloc (n ? n : 1, sizeof *ids);
    zmq_pollitem_t *items = calloc (n ? n : 1, sizeof *items);
    size_t *which = calloc (n ? n : 1, sizeof *which);
    if (!socks || !ids || !items || !which)
        goto fail;
    size_t answered = 0;
    for (size_t i = 0; i < n; i++)
        replies [i] = NULL;
    for (int attempt = 0; attempt <= retries && answered < n; attempt++) {
        size_t nitems = 0;
        for (size_t i = 0; i < n; i++) {
            if (replies [i])
                continue;
            Trove__Query q = *query;
            q.req_id = ids [i] = trove_client_req_id ();
            Trove__Msg msg = TROVE__MSG__INIT;
            msg.body_case = TROVE__MSG__BODY_QUERY;
            msg.query = &q;
            socks [i] = trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_REQUEST, endpoints [i], max_frame);
            if (!socks [i] || trove_msg_send (socks [i], NULL, 0, &msg, ZMQ_DONTWAIT))
                continue;
            items [nitems] = (zmq_pollitem_t){zsock_resolve (socks [i]), 0, ZMQ_POLLIN, 0};
            which [nitems++] = i;
        }
        int64_t deadline = trove_mono_us () + (int64_t) timeout_ms * 1000;
        bool interrupted = false;
        while (answered < n && !interrupted) {
            int64_t left_ms = (deadline - trove_mono_us () + 999) / 1000;
            if (left_ms <= 0 || nitems == 0)
                break;
            if (zmq_poll (items, (int) nitems, (long) left_ms) == -1 && (errno == EINTR || errno == ETERM))
                interrupted = true;
            for (size_t k = 0; k < nitems; k++) {
                size_t i = which [k];
                Trove__Msg *in;
                while (!replies [i]
                       && trove_client_recv (items [k].socket, max_frame, ZMQ_DONTWAIT, &in) == 0) {
                    Trove__QueryReply *candidate = s_take_query_reply (&in);
                    if (candidate && candidate->req_id == ids [i]) {
                        replies [i] = candidate;
                        answered++;
                    }
                    else
                        trove_client_reply_free (&candidate);
                }
            }
        }
        for (size_t i = 0; i < n; i++)
            zsock_destroy (&socks [i]);
        if (interrupted)
            goto fail;
    }
    rc = (int) answered;
fail:
    free (socks);
    free (ids);
    free (items);
    free (which);
    return rc;
}

void
trove_client_reply_free (Trove__QueryReply **reply_p)
{
    assert (reply_p);
    if (*reply_p) {
        trove__query_reply__free_unpacked (*reply_p, NULL);
        *reply_p = NULL;
    }
}
