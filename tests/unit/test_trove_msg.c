/*  test_trove_msg - frame decoding with every check a network frame needs,
    packing, and sending over ZeroMQ (lib/events/trove_msg).

    Frames with unknown fields are built by hand from raw protobuf bytes, so
    these tests do not depend on protobuf-c to produce what it should refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_msg.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME (1024 * 1024)

//  A growable byte buffer for hand-made protobuf.
typedef struct {
    uint8_t data [4096];
    size_t size;
} s_buf_t;

static void
s_put (s_buf_t *b, const void *data, size_t size)
{
    assert_true (b->size + size <= sizeof b->data);
    memcpy (b->data + b->size, data, size);
    b->size += size;
}

static void
s_put_varint (s_buf_t *b, uint64_t v)
{
    do {
        uint8_t byte = (uint8_t) (v & 0x7f);
        v >>= 7;
        if (v)
            byte |= 0x80;
        s_put (b, &byte, 1);
    } while (v);
}

//  Field number 99 as a varint (wire type 0), value 1: bytes 98 06 01.
static void
s_put_unknown_varint (s_buf_t *b)
{
    s_put_varint (b, (99 << 3) | 0);
    s_put_varint (b, 1);
}

//  A length-delimited field (wire type 2) holding inner.
static void
s_put_message (s_buf_t *b, uint32_t field, const s_buf_t *inner)
{
    s_put_varint (b, ((uint64_t) field << 3) | 2);
    s_put_varint (b, inner->size);
    s_put (b, inner->data, inner->size);
}

static void
s_pack_event (s_buf_t *b, const Trove__Event *ev)
{
    size_t size = trove__event__get_packed_size (ev);
    assert_true (b->size + size <= sizeof b->data);
    b->size += trove__event__pack (ev, b->data + b->size);
}

//  A sample event with two attributes.
typedef struct {
    Trove__Event ev;
    Trove__Attr a1, a2;
    Trove__Attr *attrs [2];
} s_event_t;

static void
s_event_init (s_event_t *e, const char *id)
{
    trove__event__init (&e->ev);
    trove__attr__init (&e->a1);
    trove__attr__init (&e->a2);
    e->ev.source = "web";
    e->ev.id = (char *) id;
    e->ev.user = "u42";
    e->ev.type = "checkin";
    e->ev.ts_ms = 1773129600000LL;
    e->a1.key = "zone";
    e->a1.value_case = TROVE__ATTR__VALUE_S;
    e->a1.s = "B";
    e->a2.key = "amount";
    e->a2.value_case = TROVE__ATTR__VALUE_N;
    e->a2.n = 12.5;
    e->attrs [0] = &e->a1;
    e->attrs [1] = &e->a2;
    e->ev.attrs = e->attrs;
    e->ev.n_attrs = 2;
}

//  Msg{submit: SubmitRequest{req_id: 7, events: [e-1, e-2]}}.
typedef struct {
    Trove__Msg msg;
    Trove__SubmitRequest submit;
    s_event_t e1, e2;
    Trove__Event *events [2];
} s_submit_t;

static void
s_submit_init (s_submit_t *s)
{
    trove__msg__init (&s->msg);
    trove__submit_request__init (&s->submit);
    s_event_init (&s->e1, "e-1");
    s_event_init (&s->e2, "e-2");
    s->events [0] = &s->e1.ev;
    s->events [1] = &s->e2.ev;
    s->submit.req_id = 7;
    s->submit.events = s->events;
    s->submit.n_events = 2;
    s->msg.body_case = TROVE__MSG__BODY_SUBMIT;
    s->msg.submit = &s->submit;
}

static void
s_assert_submit (const Trove__Msg *msg)
{
    assert_int_equal (msg->body_case, TROVE__MSG__BODY_SUBMIT);
    assert_int_equal (msg->submit->req_id, 7);
    assert_int_equal (msg->submit->n_events, 2);
    const Trove__Event *ev = msg->submit->events [1];
    assert_string_equal (ev->source, "web");
    assert_string_equal (ev->id, "e-2");
    assert_string_equal (ev->user, "u42");
    assert_string_equal (ev->type, "checkin");
    assert_int_equal (ev->ts_ms, 1773129600000LL);
    assert_int_equal (ev->n_attrs, 2);
    assert_string_equal (ev->attrs [0]->key, "zone");
    assert_int_equal (ev->attrs [0]->value_case, TROVE__ATTR__VALUE_S);
    assert_string_equal (ev->attrs [0]->s, "B");
    assert_int_equal (ev->attrs [1]->value_case, TROVE__ATTR__VALUE_N);
    assert_true (ev->attrs [1]->n == 12.5);
}

//  Decode that must fail with want.
static void
s_decode_bad (const void *data, size_t size, size_t max, const char *want)
{
    const char *reason = NULL;
    Trove__Msg *msg = trove_msg_decode (data, size, max, &reason);
    if (msg) {
        trove_msg_free (&msg);
        fail_msg ("frame of %zu bytes should be refused (%s)", size, want);
    }
    assert_non_null (reason);
    assert_string_equal (reason, want);
    //  reason_p is optional.
    assert_null (trove_msg_decode (data, size, max, NULL));
}

//  ---------------------------------------------------------------------------

static void
test_pack_and_decode_valid (void **state)
{
    (void) state;
    s_submit_t s;
    s_submit_init (&s);
    size_t size = 0;
    void *buf = trove_msg_pack (&s.msg, &size);
    assert_non_null (buf);
    assert_int_equal (size, trove__msg__get_packed_size (&s.msg));
    assert_true (size > 40);
    const uint8_t *bytes = buf;
    assert_int_equal (bytes [0], 0x0a);  //  field 1 (submit), wire type 2
    const char *reason = "untouched";
    Trove__Msg *msg = trove_msg_decode (buf, size, MAX_FRAME, &reason);
    assert_non_null (msg);
    assert_string_equal (reason, "untouched");  //  not written on success
    s_assert_submit (msg);
    trove_msg_free (&msg);
    assert_null (msg);
    trove_msg_free (&msg);  //  safe twice
    free (buf);
}

static void
test_decode_other_bodies (void **state)
{
    (void) state;
    //  A heartbeat.
    Trove__Heartbeat hb = TROVE__HEARTBEAT__INIT;
    hb.role = "scorer";
    hb.shard = 3;
    hb.last_aseq = 99;
    hb.incarnation = 0x1122334455667788ULL;
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_HEARTBEAT;
    msg.heartbeat = &hb;
    size_t size;
    void *buf = trove_msg_pack (&msg, &size);
    Trove__Msg *out = trove_msg_decode (buf, size, MAX_FRAME, NULL);
    assert_non_null (out);
    assert_int_equal (out->body_case, TROVE__MSG__BODY_HEARTBEAT);
    assert_string_equal (out->heartbeat->role, "scorer");
    assert_int_equal (out->heartbeat->shard, 3);
    assert_int_equal (out->heartbeat->last_aseq, 99);
    assert_true (out->heartbeat->incarnation == 0x1122334455667788ULL);
    trove_msg_free (&out);
    free (buf);

    //  A body present but empty is still a body: Msg{submit: {}} is 0a 00.
    const uint8_t empty_submit [] = {0x0a, 0x00};
    out = trove_msg_decode (empty_submit, sizeof empty_submit, MAX_FRAME, NULL);
    assert_non_null (out);
    assert_int_equal (out->body_case, TROVE__MSG__BODY_SUBMIT);
    assert_int_equal (out->submit->n_events, 0);
    trove_msg_free (&out);

    //  An award (Coin with nested EventRefs).
    Trove__EventRef r1 = TROVE__EVENT_REF__INIT, r2 = TROVE__EVENT_REF__INIT;
    r1.source = "web";
    r1.id = "e-1";
    r2.source = "game";
    r2.id = "g-9";
    Trove__EventRef *refs [] = {&r1, &r2};
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = "e9f10fe3f80741ac60545315cec8db2f";
    coin.user = "u1";
    coin.value = -5;
    coin.events = refs;
    coin.n_events = 2;
    msg.body_case = TROVE__MSG__BODY_AWARD;
    msg.award = &coin;
    buf = trove_msg_pack (&msg, &size);
    out = trove_msg_decode (buf, size, MAX_FRAME, NULL);
    assert_non_null (out);
    assert_int_equal (out->body_case, TROVE__MSG__BODY_AWARD);
    assert_string_equal (out->award->id, coin.id);
    assert_int_equal (out->award->value, -5);
    assert_int_equal (out->award->n_events, 2);
    assert_string_equal (out->award->events [1]->id, "g-9");
    trove_msg_free (&out);
    free (buf);
}

static void
test_decode_empty_is_malformed (void **state)
{
    (void) state;
    //  Zero bytes unpack to a Msg with no body.
    s_decode_bad ("", 0, MAX_FRAME, "malformed");
    //  A Msg holding only an unknown field has no body either: the missing
    //  body is what is reported.
    const uint8_t only_unknown [] = {0x98, 0x06, 0x01};
    s_decode_bad (only_unknown, sizeof only_unknown, MAX_FRAME, "malformed");
}

static void
test_decode_truncated (void **state)
{
    (void) state;
    s_submit_t s;
    s_submit_init (&s);
    size_t size;
    uint8_t *buf = trove_msg_pack (&s.msg, &size);
    assert_non_null (buf);
    //  Every proper prefix cuts the one top-level field: never valid.
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc (cut ? cut : 1);  //  exact size, so ASan sees over-reads
        memcpy (copy, buf, cut);
        s_decode_bad (copy, cut, MAX_FRAME, "malformed");
        free (copy);
    }
    free (buf);
}

static void
test_decode_garbage (void **state)
{
    (void) state;
    const uint8_t ff [16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    s_decode_bad (ff, sizeof ff, MAX_FRAME, "malformed");
    s_decode_bad ("hello, world", 12, MAX_FRAME, "malformed");
    s_decode_bad ("{\"submit\":{}}", 13, MAX_FRAME, "malformed");
    //  Field 1 with the wrong wire type (varint instead of a message).
    const uint8_t wrong_type [] = {0x08, 0x01};
    s_decode_bad (wrong_type, sizeof wrong_type, MAX_FRAME, "malformed");
    //  A length running past the end.
    const uint8_t long_len [] = {0x0a, 0x7f, 0x08, 0x01};
    s_decode_bad (long_len, sizeof long_len, MAX_FRAME, "malformed");
    //  Wire types 6 and 7 do not exist.
    const uint8_t bad_wire [] = {0x0e, 0x00};
    s_decode_bad (bad_wire, sizeof bad_wire, MAX_FRAME, "malformed");

    //  Pseudo-random frames (fixed seed): none may decode; AddressSanitizer
    //  checks the decoder never reads outside them.
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 2000; round++) {
        size_t len = 1 + round % 97;
        uint8_t *frame = malloc (len);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            frame [i] = (uint8_t) x;
        }
        const char *reason = NULL;
        Trove__Msg *msg = trove_msg_decode (frame, len, MAX_FRAME, &reason);
        if (msg)
            fail_msg ("random frame %d (%zu bytes) decoded", round, len);
        assert_non_null (reason);
        assert_true (strcmp (reason, "malformed") == 0 || strcmp (reason, "unknown_field") == 0);
        free (frame);
    }
}

static void
test_decode_too_large (void **state)
{
    (void) state;
    s_submit_t s;
    s_submit_init (&s);
    size_t size;
    void *buf = trove_msg_pack (&s.msg, &size);
    //  Exactly at the limit is fine; one byte over is not.
    Trove__Msg *msg = trove_msg_decode (buf, size, size, NULL);
    assert_non_null (msg);
    trove_msg_free (&msg);
    s_decode_bad (buf, size, size - 1, "frame_too_large");
    s_decode_bad (buf, size, 0, "frame_too_large");
    free (buf);
    //  The size is checked before anything is parsed: even garbage says too large.
    uint8_t *big = calloc (1, MAX_FRAME + 1);
    assert_non_null (big);
    memset (big, 0xff, MAX_FRAME + 1);
    s_decode_bad (big, MAX_FRAME + 1, MAX_FRAME, "frame_too_large");
    free (big);
}

static void
test_decode_unknown_field_top_level (void **state)
{
    (void) state;
    s_submit_t s;
    s_submit_init (&s);
    s_buf_t b = {.size = 0};
    size_t size;
    void *packed = trove_msg_pack (&s.msg, &size);
    s_put (&b, packed, size);
    free (packed);
    //  Control: the frame as packed is fine.
    Trove__Msg *msg = trove_msg_decode (b.data, b.size, MAX_FRAME, NULL);
    assert_non_null (msg);
    trove_msg_free (&msg);
    //  Field 99 (varint) appended to Msg.
    s_put_unknown_varint (&b);
    s_decode_bad (b.data, b.size, MAX_FRAME, "unknown_field");
}

static void
test_decode_unknown_field_length_delimited (void **state)
{
    (void) state;
    //  Msg{submit: {req_id: 1}} plus field 100 as bytes "hi".
    s_buf_t inner = {.size = 0};
    s_put_varint (&inner, (1 << 3) | 0);
    s_put_varint (&inner, 1);
    s_buf_t b = {.size = 0};
    s_put_message (&b, 1, &inner);
    Trove__Msg *msg = trove_msg_decode (b.data, b.size, MAX_FRAME, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->submit->req_id, 1);
    trove_msg_free (&msg);
    s_put_varint (&b, (100 << 3) | 2);
    s_put_varint (&b, 2);
    s_put (&b, "hi", 2);
    s_decode_bad (b.data, b.size, MAX_FRAME, "unknown_field");
    //  A field number that exists in other messages but not in Msg (9).
    s_buf_t c = {.size = 0};
    s_put_message (&c, 1, &inner);
    s_put_varint (&c, (9 << 3) | 0);
    s_put_varint (&c, 5);
    s_decode_bad (c.data, c.size, MAX_FRAME, "unknown_field");
}

//  Msg{submit: SubmitRequest{req_id: 7, events: [event (+ extra in event)]}}
static void
s_build_submit_with_event (s_buf_t *out, bool unknown_in_event, bool unknown_in_submit)
{
    s_event_t e;
    s_event_init (&e, "e-1");
    s_buf_t event = {.size = 0};
    s_pack_event (&event, &e.ev);
    if (unknown_in_event)
        s_put_unknown_varint (&event);
    s_buf_t submit = {.size = 0};
    s_put_varint (&submit, (1 << 3) | 0);  //  req_id = 7
    s_put_varint (&submit, 7);
    s_put_message (&submit, 2, &event);  //  events
    if (unknown_in_submit)
        s_put_unknown_varint (&submit);
    out->size = 0;
    s_put_message (out, 1, &submit);  //  Msg.submit
}

static void
test_decode_unknown_field_nested (void **state)
{
    (void) state;
    s_buf_t b;
    //  Control: hand-built and valid.
    s_build_submit_with_event (&b, false, false);
    Trove__Msg *msg = trove_msg_decode (b.data, b.size, MAX_FRAME, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->submit->req_id, 7);
    assert_int_equal (msg->submit->n_events, 1);
    assert_string_equal (msg->submit->events [0]->id, "e-1");
    trove_msg_free (&msg);
    //  Unknown field inside the Event inside the SubmitRequest.
    s_build_submit_with_event (&b, true, false);
    s_decode_bad (b.data, b.size, MAX_FRAME, "unknown_field");
    //  Unknown field inside the SubmitRequest itself.
    s_build_submit_with_event (&b, false, true);
    s_decode_bad (b.data, b.size, MAX_FRAME, "unknown_field");
}

static void
test_decode_unknown_field_deep (void **state)
{
    (void) state;
    //  Inside an Attr of an Event of a SubmitRequest (four levels down).
    s_buf_t attr = {.size = 0};
    s_put_varint (&attr, (1 << 3) | 2);
    s_put_varint (&attr, 1);
    s_put (&attr, "k", 1);
    s_put_varint (&attr, (4 << 3) | 0);  //  b = true
    s_put_varint (&attr, 1);
    for (int bad = 0; bad < 2; bad++) {
        s_buf_t a = attr;
        if (bad)
            s_put_unknown_varint (&a);
        s_buf_t event = {.size = 0};
        s_put_varint (&event, (1 << 3) | 2);  //  source = "web"
        s_put_varint (&event, 3);
        s_put (&event, "web", 3);
        s_put_message (&event, 6, &a);  //  attrs
        s_buf_t submit = {.size = 0};
        s_put_message (&submit, 2, &event);
        s_buf_t msg = {.size = 0};
        s_put_message (&msg, 1, &submit);
        if (bad)
            s_decode_bad (msg.data, msg.size, MAX_FRAME, "unknown_field");
        else {
            Trove__Msg *m = trove_msg_decode (msg.data, msg.size, MAX_FRAME, NULL);
            assert_non_null (m);
            assert_int_equal (m->submit->events [0]->attrs [0]->value_case, TROVE__ATTR__VALUE_B);
            trove_msg_free (&m);
        }
    }

    //  Inside a singular message field: QueryReply.status (7), then inside an
    //  EventRecord's Event (QueryReply.events -> EventRecord.event).
    for (int bad = 0; bad < 2; bad++) {
        s_buf_t status = {.size = 0};
        s_put_varint (&status, (1 << 3) | 2);  //  role = "s"
        s_put_varint (&status, 1);
        s_put (&status, "s", 1);
        if (bad)
            s_put_unknown_varint (&status);
        s_buf_t reply = {.size = 0};
        s_put_message (&reply, 7, &status);
        s_buf_t msg = {.size = 0};
        s_put_message (&msg, 8, &reply);  //  Msg.query_reply
        if (bad)
            s_decode_bad (msg.data, msg.size, MAX_FRAME, "unknown_field");
        else {
            Trove__Msg *m = trove_msg_decode (msg.data, msg.size, MAX_FRAME, NULL);
            assert_non_null (m);
            assert_string_equal (m->query_reply->status->role, "s");
            trove_msg_free (&m);
        }
    }
    for (int bad = 0; bad < 2; bad++) {
        s_event_t e;
        s_event_init (&e, "e-7");
        s_buf_t event = {.size = 0};
        s_pack_event (&event, &e.ev);
        if (bad)
            s_put_unknown_varint (&event);
        s_buf_t record = {.size = 0};
        s_put_message (&record, 1, &event);
        s_put_varint (&record, (3 << 3) | 0);  //  pseq = 5
        s_put_varint (&record, 5);
        s_buf_t reply = {.size = 0};
        s_put_message (&reply, 5, &record);
        s_buf_t msg = {.size = 0};
        s_put_message (&msg, 8, &reply);
        if (bad)
            s_decode_bad (msg.data, msg.size, MAX_FRAME, "unknown_field");
        else {
            Trove__Msg *m = trove_msg_decode (msg.data, msg.size, MAX_FRAME, NULL);
            assert_non_null (m);
            assert_int_equal (m->query_reply->events [0]->pseq, 5);
            assert_string_equal (m->query_reply->events [0]->event->id, "e-7");
            trove_msg_free (&m);
        }
    }
    //  Inside an EventRef of an award Coin.
    for (int bad = 0; bad < 2; bad++) {
        s_buf_t ref = {.size = 0};
        s_put_varint (&ref, (2 << 3) | 2);
        s_put_varint (&ref, 2);
        s_put (&ref, "id", 2);
        if (bad)
            s_put_unknown_varint (&ref);
        s_buf_t coin = {.size = 0};
        s_put_message (&coin, 7, &ref);
        s_buf_t msg = {.size = 0};
        s_put_message (&msg, 5, &coin);  //  Msg.award
        if (bad)
            s_decode_bad (msg.data, msg.size, MAX_FRAME, "unknown_field");
        else {
            Trove__Msg *m = trove_msg_decode (msg.data, msg.size, MAX_FRAME, NULL);
            assert_non_null (m);
            assert_string_equal (m->award->events [0]->id, "id");
            trove_msg_free (&m);
        }
    }
}

//  ---------------------------------------------------------------------------
//  Sending

static Trove__Msg *
s_recv_decode (zsock_t *sock)
{
    zframe_t *frame = zframe_recv (sock);
    assert_non_null (frame);
    const char *reason = NULL;
    Trove__Msg *msg = trove_msg_decode (zframe_data (frame), zframe_size (frame), MAX_FRAME, &reason);
    if (!msg)
        fail_msg ("received frame refused: %s", reason);
    zframe_destroy (&frame);
    return msg;
}

static void
test_send_pair_round_trip (void **state)
{
    (void) state;
    zsock_t *a = zsock_new_pair ("@inproc://test-msg-pair");
    zsock_t *b = zsock_new_pair (">inproc://test-msg-pair");
    assert_non_null (a);
    assert_non_null (b);
    zsock_set_rcvtimeo (b, 5000);
    zsock_set_rcvtimeo (a, 5000);

    s_submit_t s;
    s_submit_init (&s);
    //  Through the zsock_t * ...
    assert_int_equal (trove_msg_send (a, NULL, 0, &s.msg, 0), 0);
    Trove__Msg *msg = s_recv_decode (b);
    s_assert_submit (msg);
    assert_false (zsock_rcvmore (b));  //  exactly one frame
    trove_msg_free (&msg);
    //  ... and through the raw libzmq handle, the other way.
    assert_int_equal (trove_msg_send (zsock_resolve (b), NULL, 0, &s.msg, ZMQ_DONTWAIT), 0);
    msg = s_recv_decode (a);
    s_assert_submit (msg);
    trove_msg_free (&msg);

    //  With a routing id the id goes first, as its own frame.
    assert_int_equal (trove_msg_send (a, "peer-1", 6, &s.msg, 0), 0);
    zmsg_t *parts = zmsg_recv (b);
    assert_non_null (parts);
    assert_int_equal (zmsg_size (parts), 2);
    zframe_t *id = zmsg_pop (parts);
    assert_true (zframe_streq (id, "peer-1"));
    zframe_destroy (&id);
    zframe_t *body = zmsg_pop (parts);
    msg = trove_msg_decode (zframe_data (body), zframe_size (body), MAX_FRAME, NULL);
    assert_non_null (msg);
    s_assert_submit (msg);
    trove_msg_free (&msg);
    zframe_destroy (&body);
    zmsg_destroy (&parts);

    zsock_destroy (&b);
    zsock_destroy (&a);
}

static void
test_send_router_dealer (void **state)
{
    (void) state;
    zsock_t *router = zsock_new_router ("@inproc://test-msg-router");
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (router);
    assert_non_null (dealer);
    zsock_set_identity (dealer, "dealer-A");
    assert_int_equal (zsock_connect (dealer, "inproc://test-msg-router"), 0);
    zsock_set_rcvtimeo (router, 5000);
    zsock_set_rcvtimeo (dealer, 5000);

    Trove__Heartbeat hb = TROVE__HEARTBEAT__INIT;
    hb.role = "ingestor";
    Trove__Msg ping = TROVE__MSG__INIT;
    ping.body_case = TROVE__MSG__BODY_HEARTBEAT;
    ping.heartbeat = &hb;
    assert_int_equal (trove_msg_send (dealer, NULL, 0, &ping, 0), 0);
    zframe_t *from = zframe_recv (router);
    assert_non_null (from);
    assert_true (zframe_streq (from, "dealer-A"));
    Trove__Msg *got = s_recv_decode (router);
    assert_string_equal (got->heartbeat->role, "ingestor");
    trove_msg_free (&got);

    //  Reply by routing id: only the body reaches the dealer.
    s_submit_t s;
    s_submit_init (&s);
    assert_int_equal (trove_msg_send (router, zframe_data (from), zframe_size (from), &s.msg, 0), 0);
    got = s_recv_decode (dealer);
    s_assert_submit (got);
    assert_false (zsock_rcvmore (dealer));
    trove_msg_free (&got);
    zframe_destroy (&from);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}

static void
test_send_would_block (void **state)
{
    (void) state;
    //  A PAIR with no peer cannot queue: -1 / EAGAIN with ZMQ_DONTWAIT.
    zsock_t *lonely = zsock_new_pair ("@inproc://test-msg-lonely");
    assert_non_null (lonely);
    s_submit_t s;
    s_submit_init (&s);
    errno = 0;
    assert_int_equal (trove_msg_send (lonely, NULL, 0, &s.msg, ZMQ_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    errno = 0;
    assert_int_equal (trove_msg_send (lonely, "id", 2, &s.msg, ZMQ_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    zsock_destroy (&lonely);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_pack_and_decode_valid),
        cmocka_unit_test (test_decode_other_bodies),
        cmocka_unit_test (test_decode_empty_is_malformed),
        cmocka_unit_test (test_decode_truncated),
        cmocka_unit_test (test_decode_garbage),
        cmocka_unit_test (test_decode_too_large),
        cmocka_unit_test (test_decode_unknown_field_top_level),
        cmocka_unit_test (test_decode_unknown_field_length_delimited),
        cmocka_unit_test (test_decode_unknown_field_nested),
        cmocka_unit_test (test_decode_unknown_field_deep),
        cmocka_unit_test (test_send_pair_round_trip),
        cmocka_unit_test (test_send_router_dealer),
        cmocka_unit_test (test_send_would_block),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
