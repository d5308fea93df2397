/*  trove_msg - frame decoding and sending. */
#include "trove_msg.h"
#include "trove_error.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

//  True when msg or any message nested in it carries fields that this build
//  does not know. protobuf-c keeps them instead of failing, so we must look.
static bool
s_has_unknown (const ProtobufCMessage *msg)
{
    if (msg->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields [i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *) msg;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *) (base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (items [k] && s_has_unknown (items [k]))
                    return true;
        }
        else {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                && *(const uint32_t *) (base + f->quantifier_offset) != f->id)
                continue;
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *) (base + f->offset);
            if (sub && s_has_unknown (sub))
                return true;
        }
    }
    return false;
}

Trove__Msg *
trove_msg_decode (const void *data, size_t size, size_t max_size, const char **reason_p)
{
    const char *reason = trove_strerror (TROVE_E_MALFORMED);
    if (size > max_size) {
        reason = trove_strerror (TROVE_E_FRAME_TOO_LARGE);
        goto fail;
    }
    Trove__Msg *msg = trove__msg__unpack (NULL, size, data);
    if (!msg)
        goto fail;
    if (msg->body_case == TROVE__MSG__BODY__NOT_SET) {
        trove__msg__free_unpacked (msg, NULL);
        goto fail;
    }
    if (s_has_unknown (&msg->base)) {
        trove__msg__free_unpacked (msg, NULL);
        reason = trove_strerror (TROVE_E_UNKNOWN_FIELD);
        goto fail;
    }
    return msg;
fail:
    if (reason_p)
        *reason_p = reason;
    return NULL;
}

void
trove_msg_free (Trove__Msg **msg_p)
{
    assert (msg_p);
    if (*msg_p) {
        trove__msg__free_unpacked (*msg_p, NULL);
        *msg_p = NULL;
    }
}

void *
trove_msg_pack (const Trove__Msg *msg, size_t *size_p)
{
    size_t size = trove__msg__get_packed_size (msg);
    uint8_t *buf = malloc (size ? size : 1);
    if (!buf)
        return NULL;
    trove__msg__pack (msg, buf);
    *size_p = size;
    return buf;
}

int
trove_msg_send (void *socket, const void *routing_id, size_t routing_id_size, const Trove__Msg *msg,
                int flags)
{
    void *handle = zsock_is (socket) ? zsock_resolve (socket) : socket;
    size_t size;
    void *buf = trove_msg_pack (msg, &size);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    if (routing_id && zmq_send (handle, routing_id, routing_id_size, ZMQ_SNDMORE | flags) == -1)
        rc = -1;
    //  After the routing frame is queued the body always follows: libzmq
    //  accepts the rest of a multipart message once its first part was taken.
    else if (zmq_send (handle, buf, size, flags) == -1)
        rc = -1;
    int saved = errno;
    free (buf);
    errno = saved;
    return rc;
}

int
trove_msg_send_heartbeat (void *socket, Trove__Heartbeat *hb)
{
    char host [256] = "";
    gethostname (host, sizeof host - 1);
    hb->host = host;
    hb->version = TROVE_VERSION;
    hb->pid = getpid ();
    hb->sent_ms = trove_now_ms ();
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_HEARTBEAT;
    msg.heartbeat = hb;
    int rc = trove_msg_send (socket, NULL, 0, &msg, ZMQ_DONTWAIT);
    hb->host = NULL;  //  was ours, on the stack
    return rc;
}

Trove__Msg *
trove_msg_recv_routed (zsock_t *router, size_t max_size, zframe_t **routing_id_p, const char **reason_p,
                       zframe_t **raw_p)
{
    return trove_msg_recv_from (router, max_size, routing_id_p, reason_p, raw_p, NULL);
}

Trove__Msg *
trove_msg_recv_from (zsock_t *router, size_t max_size, zframe_t **routing_id_p, const char **reason_p,
                     zframe_t **raw_p, zframe_t **body_p)
{
    if (body_p)
        *body_p = NULL;
    *routing_id_p = NULL;
    *reason_p = NULL;
    if (raw_p)
        *raw_p = NULL;
    zmsg_t *zmsg = zmsg_recv (router);
    if (!zmsg)
        return NULL;
    *routing_id_p = zmsg_pop (zmsg);
    zframe_t *body = zmsg_pop (zmsg);
    Trove__Msg *msg = NULL;
    if (!*routing_id_p || !body || zmsg_size (zmsg) != 0)
        *reason_p = "malformed: want exactly one frame per message";
    else
        msg = trove_msg_decode (zframe_data (body), zframe_size (body), max_size, reason_p);
    if (!msg && raw_p && body) {
        *raw_p = body;  //  the refused bytes, for the dead-letter file
        body = NULL;
    }
    if (msg && body_p) {
        *body_p = body;
        body = NULL;
    }
    zframe_destroy (&body);
    zmsg_destroy (&zmsg);
    return msg;
}

Trove__Coin *
trove_msg_coin_dup (const Trove__Coin *coin)
{
    size_t size = trove__coin__get_packed_size (coin);
    uint8_t *buf = malloc (size ? size : 1);
    if (!buf)
        return NULL;
    trove__coin__pack (coin, buf);
    Trove__Coin *copy = trove__coin__unpack (NULL, size, buf);
    free (buf);
    return copy;
}
