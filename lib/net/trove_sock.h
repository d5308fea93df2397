/*  trove_sock - every ZeroMQ socket Trove makes, made here, with one set of
    options (docs/protocol.md, "Socket options"). CURVE is applied here too
    (through trove_curve), so no caller sets a socket option itself.

    The options every socket gets:
      - ZMQ_MAXMSGSIZE = max_frame + TROVE_SOCK_FRAME_SLACK: a message is at
        most one frame of max_frame bytes plus its envelope (routing id,
        delimiter); anything larger is refused by libzmq before it is
        buffered. trove_msg_decode then enforces max_frame exactly, so a
        too-large message is answered or counted as malformed.
      - reconnect after 100 ms;
      - TCP keepalive (idle 5 s, 3 probes 1 s apart, ~8 s to find a
        half-open connection), never ZMTP heartbeats: libzmq 4.3 times out a
        connection whose input is stopped by back-pressure (it cannot read
        the peer's PINGs) and can then abort on `!_io_error`
        (stream_engine_base.cpp; libzmq issues 3937, 4767), which the chaos
        suite hit under load.
      - a ROUTER sets ZMQ_ROUTER_MANDATORY: an unroutable reply fails
        instead of vanishing.

    What differs between sockets differs by role, on purpose:

      role                 linger  reconnect max  HWM      IMMEDIATE  CURVE refusals
      TROVE_SOCK_LINK      200 ms  2 s            100000   DEALER     watched (logged, counted)
      TROVE_SOCK_REQUEST   0       100 ms         default  no         reported to the caller
      TROVE_SOCK_SUBMIT    0       100 ms         default  yes        reported to the caller
      TROVE_SOCK_INPROC    0       -              default  no         no CURVE (inproc)

    LINK: a daemon's sockets (its ROUTER listeners, DEALERs to other
    daemons, PUB to the broker, the broker's XSUB/XPUB). Linger is finite so
    SIGTERM never hangs; correctness never depends on it (SIGKILL flushes
    nothing). A DEALER sends fail (EAGAIN) while no connection is up rather
    than queueing into a pipe a reconnect would drop; the reconnect backs
    off to 2 s so a host that is down is not hammered.
    REQUEST: clients that ask and wait (trovectl, trove-load, the shard
    router, the award subscriber's SUB): linger 0 so an unanswered request
    never holds the process's exit; a request sent while connecting is
    queued and goes out when the connection is up; reconnect stays at 100 ms
    because a client is waiting. A refused CURVE handshake shows as a
    timeout the caller reports (trove_curve_hint), so it is not watched.
    SUBMIT: a REQUEST socket whose sends fail while no connection is up, so
    the submitter can fail over to another ingestor.
    INPROC: in-process plumbing (the HTTP ingest's DEALERs to the
    ingestor's ROUTER, socket monitors): no CURVE, no TCP.

    Caveats: trove_curve_start must run before a LINK or REQUEST socket binds
    or connects when the config turns CURVE on. Not thread-safe per socket,
    as ZeroMQ. */
#ifndef TROVE_SOCK_H_INCLUDED
#define TROVE_SOCK_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Bytes a message may carry above max_frame (its envelope).
#define TROVE_SOCK_FRAME_SLACK 65536

typedef enum {
    TROVE_SOCK_LINK,     //  daemon to daemon
    TROVE_SOCK_REQUEST,  //  a client that asks and waits
    TROVE_SOCK_SUBMIT,   //  a producer that fails over (IMMEDIATE)
    TROVE_SOCK_INPROC    //  in-process plumbing
} trove_sock_role_t;

//  A socket of ZeroMQ type `type` with the options of role, not bound or
//  connected yet. max_frame is the cluster's limits/max_frame. NULL when
//  libzmq refuses (too many sockets, context terminated).
zsock_t *trove_sock_new (int type, trove_sock_role_t role, size_t max_frame);

//  Bind sock to endpoint as role (a CURVE server when CURVE is on, except
//  for inproc endpoints). Returns 0, or -1 (logged with the endpoint).
int trove_sock_bind (zsock_t *sock, trove_sock_role_t role, const char *endpoint);

//  Connect sock to endpoint as role (a CURVE client with the endpoint's
//  server key when CURVE is on, except for inproc endpoints). Returns 0,
//  or -1 (logged with the endpoint): bad endpoint, no server key.
int trove_sock_connect (zsock_t *sock, trove_sock_role_t role, const char *endpoint);

//  trove_sock_new, then trove_sock_bind. NULL (logged) on failure.
zsock_t *trove_sock_bound (int type, trove_sock_role_t role, const char *endpoint, size_t max_frame);

//  trove_sock_new, then trove_sock_connect. NULL (logged) on failure.
zsock_t *trove_sock_connected (int type, trove_sock_role_t role, const char *endpoint, size_t max_frame);

#ifdef __cplusplus
}
#endif
#endif
