/*  trove_client - one request/reply (Msg.query -> Msg.query_reply) to a
    scorer query endpoint, an ingestor, a reconciler or the broker control
    endpoint, with a timeout and retries on a fresh DEALER (lazy pirate);
    the same to several endpoints at once. Shared by trovectl, trove-load,
    the shard router and the award subscriber. The pipelined producer is
    trove_submitter, the award stream trove_awardsub.

    Caveats: every socket is a request client (trove_sock role
    TROVE_SOCK_REQUEST: connect, linger 0, ZMQ_MAXMSGSIZE = max_frame plus
    the envelope slack), so a reply much larger than max_frame is dropped by
    libzmq and looks like a timeout. A server that drops the connection
    after taking a request (killed, restarted) fails the attempt at once
    instead of waiting out the timeout. Not thread-safe: one call at a time
    per thread. */
#ifndef TROVE_CLIENT_H_INCLUDED
#define TROVE_CLIENT_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Send query to endpoint and wait up to timeout_ms for the reply, retrying
//  `retries` more times on a new socket. Returns the reply (free with
//  trove__query_reply__free_unpacked... use trove_client_reply_free), or NULL
//  with *err_p (caller frees) on timeout or a malformed answer. A reply whose
//  `error` is set is still returned: the caller decides.
Trove__QueryReply *trove_client_call (const char *endpoint, const Trove__Query *query, int timeout_ms,
                                      int retries, char **err_p);
void trove_client_reply_free (Trove__QueryReply **reply_p);
//  Same as trove_client_call, with the receive limit (ZMQ_MAXMSGSIZE) set to
//  max_frame (trove_client_call uses 64 MiB, the ceiling of limits/max_frame).
//  A query with req_id 0 gets a random one. Returns NULL with *err_p
//  "interrupted" when a signal interrupts the wait.
Trove__QueryReply *trove_client_call_max (const char *endpoint, const Trove__Query *query, int timeout_ms,
                                          int retries, size_t max_frame, char **err_p);
//  The same query to n endpoints at once (each attempt waits timeout_ms for
//  every endpoint still silent, then retries those on fresh sockets).
//  replies [i] gets endpoint i's reply or NULL. Returns the number of
//  replies; -1 if interrupted by a signal (replies received so far are kept).
int trove_client_call_all (const char *const *endpoints, size_t n, const Trove__Query *query, int timeout_ms,
                           int retries, size_t max_frame, Trove__QueryReply **replies);
//  A random, non-zero 64-bit request id (libsodium). Can't fail.
uint64_t trove_client_req_id (void);

//  Receive one message (every frame of it) from a ZeroMQ socket handle and
//  decode its last frame, so that an optional empty delimiter before the
//  body is tolerated. Returns -1 when nothing was received (errno EAGAIN,
//  EINTR, ...), else 0 with *msg_p the decoded message (caller frees, with
//  trove_msg_free) or NULL when the frame was not a valid trove.Msg of at
//  most max_frame bytes.
int trove_client_recv (void *handle, size_t max_frame, int flags, Trove__Msg **msg_p);

#ifdef __cplusplus
}
#endif
#endif
