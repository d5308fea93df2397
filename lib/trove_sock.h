/*  trove_sock - ZeroMQ sockets configured the way every Trove link needs them
    (docs/protocol.md): ROUTERs that never drop silently, bounded frames,
    finite linger, fast reconnects, ZMTP heartbeats to kill half-open links. */
#ifndef TROVE_SOCK_H_INCLUDED
#define TROVE_SOCK_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A bound ROUTER with ROUTER_MANDATORY (unroutable replies fail instead of
//  vanishing) and MAXMSGSIZE = max_frame. NULL (logged) when bind fails.
zsock_t *trove_sock_router (const char *endpoint, size_t max_frame);

//  A DEALER connected to endpoint; identity may be NULL. IMMEDIATE=1 so sends
//  fail fast (EAGAIN) while no connection is up, instead of queueing to a dead pipe.
zsock_t *trove_sock_dealer (const char *endpoint, const char *identity, size_t max_frame);

//  Apply the common options (linger, heartbeats, reconnect, HWMs, maxmsgsize).
void trove_sock_tune (zsock_t *sock, size_t max_frame);

#ifdef __cplusplus
}
#endif
#endif
