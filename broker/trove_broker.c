/*  trove-broker - the rendezvous of the award stream. Scorers connect their
    PUB sockets to `pub` (XSUB), subscribers connect SUB sockets to `sub`
    (XPUB); subscriptions flow up, awards and heartbeats flow down.

    The broker stores nothing and never needs to: every award carries its
    shard and per-shard sequence number and lives in the scorer's ledger, so
    a subscriber that sees a gap (broker killed, slow subscriber dropped at
    the high-water mark) fetches the missing awards from the scorer. Killing
    the broker loses nothing; it only delays awards until it is back.

    Usage: trove-broker --config FILE */
#include "trove_cfg.h"
#include "trove_daemon.h"
#include "trove_error.h"
#include "trove_metrics.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    trove_daemon_t *daemon;
    trove_cfg_t *cfg;         //  the daemon's
    zsock_t *xsub;            //  publishers connect here
    zsock_t *xpub;            //  subscribers connect here
    zsock_t *control;         //  ROUTER: status
    trove_lograte_t bad_log;  //  a peer may send garbage at will
    int64_t started_ms;
    uint64_t forwarded;                //  messages passed downstream
    trove_counter_t *forwarded_total;  //  same, for Prometheus
    trove_counter_t *subscriptions_total;
} s_broker_t;

//  Move everything queued on one side to the other (multipart kept whole).
static void
s_forward (zsock_t *from, zsock_t *to, uint64_t *count)
{
    void *src = zsock_resolve (from), *dst = zsock_resolve (to);
    for (int i = 0; i < 10000 && (zsock_events (from) & ZMQ_POLLIN); i++) {
        zmq_msg_t part;
        int more;
        do {
            zmq_msg_init (&part);
            if (zmq_msg_recv (&part, src, 0) == -1) {
                zmq_msg_close (&part);
                return;
            }
            more = zmq_msg_more (&part);
            //  XPUB drops at its high-water mark instead of blocking us: the
            //  subscriber notices the gap by sequence number and catches up.
            if (zmq_msg_send (&part, dst, more ? ZMQ_SNDMORE : 0) == -1)
                zmq_msg_close (&part);
        } while (more);
        if (count)
            (*count)++;
    }
}

//  The broker's own heartbeat goes straight out of its XPUB.
static void
s_heartbeat (s_broker_t *self)
{
    Trove__Heartbeat hb = TROVE__HEARTBEAT__INIT;
    trove_daemon_heartbeat (self->daemon, self->xpub, &hb);
}

static void
s_control (s_broker_t *self)
{
    zframe_t *routing_id;
    const char *reason;
    Trove__Msg *msg = trove_msg_recv_routed (self->control, trove_cfg_limits (self->cfg)->max_frame,
                                             &routing_id, &reason, NULL);
    if (!routing_id && !reason)
        return;
    if (routing_id && msg && msg->body_case == TROVE__MSG__BODY_QUERY) {
        Trove__StatusInfo status = TROVE__STATUS_INFO__INIT;
        trove_daemon_status (self->daemon, &status);
        status.events = self->forwarded;
        Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
        reply.req_id = msg->query->req_id;
        if (strcmp (msg->query->kind, "status") == 0)
            reply.status = &status;
        else
            reply.error = (char *) trove_strerror (TROVE_E_UNKNOWN_KIND);
        Trove__Msg out = TROVE__MSG__INIT;
        out.body_case = TROVE__MSG__BODY_QUERY_REPLY;
        out.query_reply = &reply;
        trove_msg_send (self->control, zframe_data (routing_id), zframe_size (routing_id), &out,
                        ZMQ_DONTWAIT);
    }
    else
        trove_log_limited (&self->bad_log, 10000000, 'W', "dropped a bad message on the control socket: %s",
                           msg ? "not a query" : reason);
    trove_msg_free (&msg);
    zframe_destroy (&routing_id);
}

static int
s_daemon_run (trove_daemon_t *daemon)
{
    s_broker_t self_ = {0}, *self = &self_;
    int rc = 1;
    self->daemon = daemon;
    self->cfg = trove_daemon_cfg (daemon);
    self->started_ms = trove_daemon_started_ms (daemon);
    trove_metrics_t *metrics = trove_daemon_metrics (daemon);
    self->forwarded_total = trove_metrics_counter (
        metrics, "trove_broker_forwarded_total", "Award stream messages passed to subscribers.", NULL, NULL);
    self->subscriptions_total =
        trove_metrics_counter (metrics, "trove_broker_subscriptions_total",
                               "Subscription messages passed to publishers.", NULL, NULL);
    if (trove_daemon_serve_metrics (daemon, NULL, NULL) || trove_daemon_secure (daemon))
        goto done;
    size_t max_frame = trove_cfg_limits (self->cfg)->max_frame;
    self->xsub = trove_sock_bound (ZMQ_XSUB, TROVE_SOCK_LINK, trove_cfg_broker_pub (self->cfg), max_frame);
    self->xpub = trove_sock_bound (ZMQ_XPUB, TROVE_SOCK_LINK, trove_cfg_broker_sub (self->cfg), max_frame);
    self->control =
        trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK, trove_cfg_broker_control (self->cfg), max_frame);
    if (!self->xsub || !self->xpub || !self->control)
        goto done;
    trove_log ('I', "broker ready: pub %s, sub %s", trove_cfg_broker_pub (self->cfg),
               trove_cfg_broker_sub (self->cfg));
    zmq_pollitem_t items [] = {
        {zsock_resolve (self->xsub), 0, ZMQ_POLLIN, 0},
        {zsock_resolve (self->xpub), 0, ZMQ_POLLIN, 0},
        {zsock_resolve (self->control), 0, ZMQ_POLLIN, 0},
    };
    int64_t next_heartbeat = 0;
    while (!zsys_interrupted) {
        if (trove_mono_us () >= next_heartbeat) {
            s_heartbeat (self);
            next_heartbeat = trove_mono_us () + 1000000;
        }
        long wait_ms = (long) ((next_heartbeat - trove_mono_us ()) / 1000);
        if (zmq_poll (items, 3, wait_ms < 0 ? 0 : wait_ms) == -1 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN) {
            uint64_t before = self->forwarded;
            s_forward (self->xsub, self->xpub, &self->forwarded);
            trove_counter_add (self->forwarded_total, self->forwarded - before);
        }
        if (items [1].revents & ZMQ_POLLIN) {
            uint64_t n = 0;
            s_forward (self->xpub, self->xsub, &n);
            trove_counter_add (self->subscriptions_total, n);
        }
        if (items [2].revents & ZMQ_POLLIN)
            s_control (self);
    }
    trove_log ('I', "broker stopping");
    rc = 0;
done:
    zsock_destroy (&self->xsub);
    zsock_destroy (&self->xpub);
    zsock_destroy (&self->control);
    return rc;
}

static const trove_daemon_spec_t s_spec = {
    .role = "broker",
    .usage = "usage: trove-broker --config FILE\n",
    .metrics = true,
};

int
main (int argc, char *argv [])
{
    return trove_daemon_main (&s_spec, argc, argv, s_daemon_run);
}
