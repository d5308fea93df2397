/*  trove_sock - socket construction: the options and the roles are
    explained in trove_sock.h; this file is their only implementation. */
#include "trove_sock.h"
#include "trove_curve.h"
#include "trove_util.h"

#include <assert.h>
#include <string.h>

//  What a role sets beyond the options every socket gets.
typedef struct {
    int linger_ms;
    int reconnect_max_ms;  //  0: no backoff
    int hwm;               //  0: libzmq's default
    bool immediate;        //  DEALER sends fail while no connection is up
    bool watch;            //  CURVE refusals logged and counted
    bool tcp;              //  may carry TCP (keepalive, CURVE)
} s_role_t;

static const s_role_t s_roles [] = {
    [TROVE_SOCK_LINK] = {200, 2000, 100000, true, true, true},
    [TROVE_SOCK_REQUEST] = {0, 0, 0, false, false, true},
    [TROVE_SOCK_SUBMIT] = {0, 0, 0, true, false, true},
    [TROVE_SOCK_INPROC] = {0, 0, 0, false, false, false},
};

static const s_role_t *
s_role (trove_sock_role_t role)
{
    assert ((size_t) role < sizeof s_roles / sizeof s_roles [0]);
    return &s_roles [role];
}

zsock_t *
trove_sock_new (int type, trove_sock_role_t role, size_t max_frame)
{
    const s_role_t *r = s_role (role);
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, r->linger_ms);
    zsock_set_maxmsgsize (sock, (int) (max_frame + TROVE_SOCK_FRAME_SLACK));
    if (r->hwm) {
        zsock_set_sndhwm (sock, r->hwm);
        zsock_set_rcvhwm (sock, r->hwm);
    }
    if (r->tcp) {
        zsock_set_reconnect_ivl (sock, 100);
        if (r->reconnect_max_ms)
            zsock_set_reconnect_ivl_max (sock, r->reconnect_max_ms);
        zsock_set_tcp_keepalive (sock, 1);
        zsock_set_tcp_keepalive_idle (sock, 5);
        zsock_set_tcp_keepalive_intvl (sock, 1);
        zsock_set_tcp_keepalive_cnt (sock, 3);
    }
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 1);
    if (type == ZMQ_DEALER && r->immediate)
        zsock_set_immediate (sock, 1);
    return sock;
}

//  CURVE secures TCP only: an inproc peer is this process.
static bool
s_curve_applies (const s_role_t *r, const char *endpoint)
{
    return r->tcp && strncmp (endpoint, "inproc://", 9) != 0;
}

int
trove_sock_bind (zsock_t *sock, trove_sock_role_t role, const char *endpoint)
{
    assert (sock);
    assert (endpoint);
    const s_role_t *r = s_role (role);
    if (s_curve_applies (r, endpoint))
        return trove_curve_bind (sock, endpoint, r->watch);
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        trove_log ('E', "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int
trove_sock_connect (zsock_t *sock, trove_sock_role_t role, const char *endpoint)
{
    assert (sock);
    assert (endpoint);
    const s_role_t *r = s_role (role);
    if (s_curve_applies (r, endpoint))
        return trove_curve_connect (sock, endpoint, r->watch);
    if (zsock_connect (sock, "%s", endpoint) == -1) {
        trove_log ('E', "cannot connect %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

zsock_t *
trove_sock_bound (int type, trove_sock_role_t role, const char *endpoint, size_t max_frame)
{
    zsock_t *sock = trove_sock_new (type, role, max_frame);
    if (sock && trove_sock_bind (sock, role, endpoint))
        zsock_destroy (&sock);
    return sock;
}

zsock_t *
trove_sock_connected (int type, trove_sock_role_t role, const char *endpoint, size_t max_frame)
{
    zsock_t *sock = trove_sock_new (type, role, max_frame);
    if (sock && trove_sock_connect (sock, role, endpoint))
        zsock_destroy (&sock);
    return sock;
}
