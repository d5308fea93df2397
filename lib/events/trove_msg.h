/*  trove_msg - one frame, one trove.Msg: decoding with every check a frame from
    the network needs (size, well-formedness, unknown fields), and sending.

    A receiver never trusts a frame: trove_msg_decode either returns a fully
    valid message or NULL with a reason, and nothing else happens. */
#ifndef TROVE_MSG_H_INCLUDED
#define TROVE_MSG_H_INCLUDED

#include "trove.pb-c.h"

#include <czmq.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Decode a frame. Returns NULL when the frame is larger than max_size
//  (reason "frame_too_large"), is not a valid trove.Msg ("malformed"), carries
//  fields this version does not know ("unknown_field"), or has no body
//  ("malformed"). Free with trove_msg_free.
Trove__Msg *trove_msg_decode (const void *data, size_t size, size_t max_size, const char **reason_p);

//  Free a decoded message. Safe on NULL.
void trove_msg_free (Trove__Msg **msg_p);

//  Serialize and send msg on a ZeroMQ socket (void * from zsock_resolve or a
//  zsock_t *). If routing_id is not NULL it is sent first (ROUTER). flags are
//  zmq_send flags (ZMQ_DONTWAIT). Returns 0, or -1 with errno set; on -1
//  nothing was queued.
int trove_msg_send (void *socket, const void *routing_id, size_t routing_id_size, const Trove__Msg *msg,
                    int flags);

//  Publish a heartbeat on socket (PUB or XPUB) without blocking, after
//  filling what every process says the same way: host, version, pid and
//  send time. The caller sets role, name, shard, started_ms, incarnation,
//  lag, last_error (and last_aseq for scorers). Returns 0 or -1 (not queued:
//  the next one replaces it).
int trove_msg_send_heartbeat (void *socket, Trove__Heartbeat *heartbeat);

//  Receive one message from a ROUTER (routing id + exactly one body frame)
//  and decode it like trove_msg_decode. Blocks if nothing is queued (check
//  ZMQ_POLLIN first). *routing_id_p gets the sender's routing id (the caller
//  destroys it) or NULL when nothing could be received; then NULL is
//  returned with *reason_p NULL. Any other NULL return comes with a reason:
//  "malformed: want exactly one frame per message" or trove_msg_decode's;
//  then, if raw_p is not NULL, *raw_p gets the refused body frame (the
//  caller destroys it; NULL when there was none).
Trove__Msg *trove_msg_recv_routed (zsock_t *router, size_t max_size, zframe_t **routing_id_p,
                                   const char **reason_p, zframe_t **raw_p);
//  The same; for a message that decodes, *body_p (when not NULL) gets its
//  body frame, whose metadata say who sent it (trove_curve_peer); the
//  caller destroys it.
Trove__Msg *trove_msg_recv_from (zsock_t *router, size_t max_size, zframe_t **routing_id_p,
                                 const char **reason_p, zframe_t **raw_p, zframe_t **body_p);

//  A deep copy of a coin (free with trove__coin__free_unpacked). NULL on OOM.
Trove__Coin *trove_msg_coin_dup (const Trove__Coin *coin);

//  Serialize into a fresh buffer the caller frees. NULL on OOM.
void *trove_msg_pack (const Trove__Msg *msg, size_t *size_p);

#ifdef __cplusplus
}
#endif
#endif
