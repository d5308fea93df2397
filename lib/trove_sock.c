/*  trove_sock - socket construction. */
#include "trove_sock.h"
#include "trove_curve.h"
#include "trove_util.h"

void
trove_sock_tune (zsock_t *sock, size_t max_frame)
{
    //  Correctness never depends on linger (SIGKILL flushes nothing); a finite
    //  value only keeps SIGTERM from hanging.
    zsock_set_linger (sock, 200);
    zsock_set_maxmsgsize (sock, (int) max_frame + 65536);
    zsock_set_sndhwm (sock, 100000);
    zsock_set_rcvhwm (sock, 100000);
    zsock_set_reconnect_ivl (sock, 100);
    zsock_set_reconnect_ivl_max (sock, 2000);
    //  Half-open connections (a host gone without a FIN) are found by TCP
    //  keepalive (~8 s), not ZMTP heartbeats: libzmq 4.3 times out a
    //  connection whose input is stopped by back-pressure (it cannot read
    //  the peer's PINGs) and can then abort on `!_io_error`
    //  (stream_engine_base.cpp; libzmq issues 3937, 4767), which the chaos
    //  suite hit under load.
    zsock_set_tcp_keepalive (sock, 1);
    zsock_set_tcp_keepalive_idle (sock, 5);
    zsock_set_tcp_keepalive_intvl (sock, 1);
    zsock_set_tcp_keepalive_cnt (sock, 3);
}

zsock_t *
trove_sock_router (const char *endpoint, size_t max_frame)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock)
        return NULL;
    trove_sock_tune (sock, max_frame);
    zsock_set_router_mandatory (sock, 1);
    if (trove_curve_bind (sock, endpoint, true))
        zsock_destroy (&sock);
    return sock;
}

zsock_t *
trove_sock_dealer (const char *endpoint, const char *identity, size_t max_frame)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    trove_sock_tune (sock, max_frame);
    zsock_set_immediate (sock, 1);
    if (identity)
        zsock_set_identity (sock, identity);
    if (trove_curve_connect (sock, endpoint, true))
        zsock_destroy (&sock);
    return sock;
}
