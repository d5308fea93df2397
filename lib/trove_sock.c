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
    zsock_set_heartbeat_ivl (sock, 1000);
    zsock_set_heartbeat_timeout (sock, 3000);
    zsock_set_heartbeat_ttl (sock, 3000);
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
