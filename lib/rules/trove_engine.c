/*  trove_engine - per-user rule state, event time, undo. See trove_engine.h;
    the rule kinds are in trove_engine_kinds.c (trove_engine_internal.h).

    A stored state (HuntState) is read field by field: what an event does
    not touch stays packed and is written back as it was ("Packed fields",
    "Hunt state" below); what it touches is unpacked into the call's arena
    (trove_engine_internal.h) together with every rule state, ref and coin
    the call makes: fields are replaced, never freed, and the whole arena
    goes when the call returns. Rule states and buffered events in the
    plain form the engine writes are read and written by hand
    (trove_engine_codec.c, protobuf-c's bytes); anything else by protobuf-c.

    Over 1,800 lines: the packed reading and writing shares its types and
    its lists of rule states with scoring, replay and fold, which are what
    it is shaped for; apart, both files would need a header of the same
    private types. The memory store and derive (the last quarter) are the
    next to move out. */
#include "trove_engine_internal.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_tz.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The arena's first chunk, on the stack of trove_engine_score: enough for
//  the states one event loads in bench-engine (one chunk of heap beyond).
#define ARENA_STACK (16 * 1024)

//  A growing list of coins (in the arena).
typedef struct {
    Trove__Coin **v;
    size_t n, cap;
} s_coins_t;

//  Context of one engine call.
typedef struct {
    const trove_rules_t *rules;
    const char *user;
    trove_change_fn *emit;
    void *arg;
    engine_arena_t *arena;  //  the call's working memory
} s_ctx_t;

static int
s_coins_push (engine_arena_t *a, s_coins_t *c, Trove__Coin *coin)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        Trove__Coin **v = engine_realloc (a, c->v, c->cap * sizeof *v, cap * sizeof *v);
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v [c->n++] = coin;
    return 0;
}

static bool
s_refs_have (Trove__EventRef *const *refs, size_t n, const char *source, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (refs [i]->source, source) == 0 && strcmp (refs [i]->id, id) == 0)
            return true;
    return false;
}

trove_change_t
trove_change_of_coin (const Trove__Coin *c, bool revoke, const char *reason)
{
    assert (c);
    return (trove_change_t){
        .revoke = revoke,
        .id = c->id,
        .user = c->user,
        .hunt = c->hunt,
        .rule = c->rule,
        .version = c->rule_version,
        .value = c->value,
        .refs = c->events,
        .nrefs = c->n_events,
        .event_ts_ms = c->event_ts_ms,
        .local_day = c->local_day,
        .accepted_us = c->accepted_us,
        .reason = reason,
    };
}

static int
s_emit (s_ctx_t *ctx, const Trove__Coin *c, bool revoke, const char *reason)
{
    trove_change_t ch = trove_change_of_coin (c, revoke, reason);
    return ctx->emit (ctx->arg, &ch);
}

//  --------------------------------------------------------------------------
//  Packed fields

//  One element of a repeated field: packed (a slice of the stored bytes,
//  or of bytes packed in the arena) until decoded into msg, which is then
//  the truth.
typedef struct {
    const uint8_t *at;
    size_t len;
    void *msg;
    //  A packed rule state's rule and kind, read once (named: 1, unreadable
    //  in plain form: -1, not read yet: 0).
    int named;
    const char *rule;
    size_t rule_len;
    uint32_t kind;
} s_slice_t;

//  A repeated message field. Rule states (checkpoint, head) are decoded
//  one by one, when an event touches their rule. The buffer and the tail
//  are packed slices while lazy, else decoded in the HuntState (whose
//  array for them is then the truth).
typedef struct {
    bool lazy;
    s_slice_t *v;
    size_t n, cap;
} s_packed_t;

//  A working state: the decoded part and the fields kept packed (unknown:
//  whole top-level fields the engine does not know, written back after the
//  others as protobuf-c does).
typedef struct {
    Trove__HuntState *hs;
    s_packed_t rules, head, buffer, tail, unknown;
} s_state_t;

//  Where an event orders, read from its packed form: strings are not
//  NUL-terminated, so their length is where strcmp would stop.
typedef struct {
    int64_t ts;
    const char *source, *id;
    size_t source_len, id_len;
} s_key_t;

static int
s_slice_push (engine_arena_t *a, s_packed_t *f, const uint8_t *at, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        s_slice_t *v = engine_realloc (a, f->v, f->cap * sizeof *v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v [f->n++] = (s_slice_t){.at = at, .len = len};
    return 0;
}

//  Read a varint at *p (< end); 0 or -1 when malformed.
static int
s_varint (const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    if (*p < end && !(**p & 0x80)) {
        *value = *(*p)++;  //  one byte: tags, lengths and flags nearly always
        return 0;
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

//  The next field at *p: its number, wire type, and for a length-delimited
//  one its bytes (*data, *len); other wire types are skipped over (a
//  varint's value in *len). 0, or -1 when malformed or of a group type.
static int
s_field (const uint8_t **p, const uint8_t *end, uint32_t *number, unsigned *wire, const uint8_t **data,
         uint64_t *len)
{
    uint64_t tag;
    if (s_varint (p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
        return -1;
    *number = (uint32_t) (tag >> 3);
    *wire = (unsigned) (tag & 7);
    *data = *p;
    switch (*wire) {
        case 0:
            return s_varint (p, end, len);
        case 1:
        case 5:
            *len = *wire == 1 ? 8 : 4;
            break;
        case 2:
            if (s_varint (p, end, len))
                return -1;
            *data = *p;
            break;
        default:
            return -1;
    }
    if (*len > (uint64_t) (end - *p))
        return -1;
    *p += *len;
    return 0;
}

//  Plain rule states and buffered events are packed by the engine's own
//  writers (the same bytes): 1 a rule state, 2 a buffered event, 0 neither
//  (protobuf-c packs it).
static int
s_own_codec (const ProtobufCMessage *m)
{
    if (m->descriptor == &trove__rule_state__descriptor)
        return engine_rule_state_plain ((const Trove__RuleState *) m);
    if (m->descriptor != &trove__buffered_event__descriptor)
        return 0;
    const Trove__BufferedEvent *b = (const Trove__BufferedEvent *) m;
    return !m->n_unknown_fields && b->event && !b->event->base.n_unknown_fields
                && engine_event_plain (b->event)
             ? 2
             : 0;
}

static size_t
s_msg_size (const ProtobufCMessage *m)
{
    switch (s_own_codec (m)) {
        case 1:
            return engine_rule_state_size ((const Trove__RuleState *) m);
        case 2:
            return engine_buffered_size (((const Trove__BufferedEvent *) m)->event,
                                         ((const Trove__BufferedEvent *) m)->accepted_us);
        default:
            return protobuf_c_message_get_packed_size (m);
    }
}

static size_t
s_msg_pack (const ProtobufCMessage *m, uint8_t *out)
{
    switch (s_own_codec (m)) {
        case 1:
            return engine_rule_state_pack ((const Trove__RuleState *) m, out);
        case 2:
            return engine_buffered_pack (((const Trove__BufferedEvent *) m)->event,
                                         ((const Trove__BufferedEvent *) m)->accepted_us, out);
        default:
            return protobuf_c_message_pack (m, out);
    }
}

//  A message packed into the arena, as a slice.
static int
s_pack_slice (engine_arena_t *a, const ProtobufCMessage *m, s_slice_t *s)
{
    s->len = s_msg_size (m);
    uint8_t *buf = engine_alloc (a, s->len ? s->len : 1);
    if (!buf)
        return -1;
    s_msg_pack (m, buf);
    s->at = buf;
    return 0;
}

//  strcmp of a packed string with a C string.
static int
s_strcmp_n (const char *a, size_t alen, const char *b)
{
    size_t blen = strlen (b);
    int c = memcmp (a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

//  --------------------------------------------------------------------------
//  Rule state

//  The rule name and kind of a packed RuleState: 0, or -1 when not in the
//  plain form the engine writes (the caller decodes it instead).
static int
s_slice_rule (s_slice_t s, const char **rule, size_t *rule_len, uint32_t *kind)
{
    const uint8_t *p = s.at, *end = s.at + s.len, *data;
    uint64_t len;
    uint32_t number;
    unsigned wire;
    bool seen [3] = {false};
    *rule = "";
    *rule_len = 0;
    *kind = 0;
    while (p < end) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 1 || number == 2) {
            if (seen [number] || wire != (number == 1 ? 2u : 0u))
                return -1;
            seen [number] = true;
        }
        if (number == 1)
            *rule = (const char *) data, *rule_len = strnlen ((const char *) data, len);
        else if (number == 2)
            *kind = (uint32_t) len;
    }
    return 0;
}

//  The state of rule r in the list (a checkpoint or a head), decoded; created
//  (or reset when the rule changed kind). NULL when out of memory or the
//  state is unreadable.
static Trove__RuleState *
s_rule_state (engine_arena_t *a, s_packed_t *st, const trove_rule_t *r)
{
    for (size_t i = 0; i < st->n; i++) {
        s_slice_t *e = &st->v [i];
        Trove__RuleState *rs = e->msg;
        if (!rs) {
            if (!e->named)
                e->named = s_slice_rule (*e, &e->rule, &e->rule_len, &e->kind) == 0 ? 1 : -1;
            if (e->named == 1) {
                if (s_strcmp_n (e->rule, e->rule_len, r->id))
                    continue;  //  another rule's: stays packed
                if (e->kind != (uint32_t) r->kind) {
                    st->v [i] = st->v [--st->n];
                    break;
                }
            }
            int rc = engine_rule_state_decode (a, e->at, e->len, &rs);
            if (rc < 0)
                return NULL;
            if (rc > 0 && !(rs = trove__rule_state__unpack (&a->pb, e->len, e->at)))
                return NULL;
            e->msg = rs;
        }
        if (strcmp (rs->rule, r->id))
            continue;
        if (rs->kind == (uint32_t) r->kind)
            return rs;
        st->v [i] = st->v [--st->n];
        break;
    }
    Trove__RuleState *rs = engine_alloc (a, sizeof *rs);
    if (!rs || s_slice_push (a, st, NULL, 0))
        return NULL;
    trove__rule_state__init (rs);
    rs->kind = (uint32_t) r->kind;
    rs->rule = r->id;  //  never changed, and the rules outlive the call
    st->v [st->n - 1].msg = rs;
    return rs;
}

//  Which rules of v an event matches, one bit per rule (a sequence: any of
//  its steps) for the first 64; rules beyond are matched when asked. The
//  event being scored is matched once per hunt: its mask serves the
//  stateful test, the stateless rules and the head's steps.
#define MASK_RULES 64

static uint64_t
s_match_mask (const trove_hunt_t *v, const Trove__Event *ev)
{
    uint64_t mask = 0;
    for (size_t i = 0; i < v->nrules && i < MASK_RULES; i++) {
        const trove_rule_t *r = &v->rules [i];
        bool hit = false;
        if (r->kind == TROVE_KIND_SEQUENCE) {
            for (size_t j = 0; j < r->nsteps && !hit; j++)
                hit = trove_match (&r->steps [j], ev);
        }
        else
            hit = trove_match (&r->match, ev);
        if (hit)
            mask |= (uint64_t) 1 << i;
    }
    return mask;
}

//  Does rule i of v match ev, as s_match_mask tells (NULL: not made).
static bool
s_rule_matches (const trove_hunt_t *v, size_t i, const Trove__Event *ev, const uint64_t *mask)
{
    if (mask && i < MASK_RULES)
        return (*mask >> i) & 1;
    const trove_rule_t *r = &v->rules [i];
    if (r->kind == TROVE_KIND_SEQUENCE) {
        for (size_t j = 0; j < r->nsteps; j++)
            if (trove_match (&r->steps [j], ev))
                return true;
        return false;
    }
    return trove_match (&r->match, ev);
}

//  Apply one event to the rule states st under version v; the coins it
//  earns are appended to out. mask: ev's s_match_mask for v, or NULL.
//  Returns 0 or -1 (out of memory).
static int
s_process (s_ctx_t *ctx, s_packed_t *st, const trove_hunt_t *v, const Trove__Event *ev, int64_t accepted_us,
           const uint64_t *mask, s_coins_t *out)
{
    //  In the arena, not on the stack: rule states and coins keep it (refs
    //  are shared, never changed); ev's strings live as long as the arena.
    Trove__EventRef *self_ref = engine_alloc (ctx->arena, sizeof *self_ref);
    Trove__EventRef **self_refs = engine_alloc (ctx->arena, sizeof *self_refs);
    if (!self_ref || !self_refs)
        return -1;
    trove__event_ref__init (self_ref);
    self_ref->source = ev->source;
    self_ref->id = ev->id;
    self_refs [0] = self_ref;
    engine_step_t step = {ctx->user, v, NULL, ev, accepted_us, self_refs, ctx->arena};
    for (size_t i = 0; i < v->nrules; i++) {
        const trove_rule_t *r = &v->rules [i];
        if (!trove_rule_stateful (r))
            continue;
        const engine_kind_t *kind = engine_kind (r->kind);
        if (!kind->own_match && !s_rule_matches (v, i, ev, mask))
            continue;
        Trove__RuleState *rs = s_rule_state (ctx->arena, st, r);
        if (!rs)
            return -1;
        Trove__Coin *coin = NULL;
        step.r = r;
        if (kind->step (&step, rs, &coin))
            return -1;
        if (coin && s_coins_push (ctx->arena, out, coin))
            return -1;
    }
    return 0;
}

//  Does the event match a stateful rule of v (so it belongs in the buffer)?
static bool
s_matches_stateful (const trove_hunt_t *v, const Trove__Event *ev, const uint64_t *mask)
{
    for (size_t i = 0; i < v->nrules; i++)
        if (trove_rule_stateful (&v->rules [i]) && s_rule_matches (v, i, ev, mask))
            return true;
    return false;
}

//  --------------------------------------------------------------------------
//  Hunt state: load, replay, fold, save
//
//  A stored state is not unpacked whole. Its checkpoint, buffer, tail and
//  head (fields 3 to 6) stay packed, as slices of the stored bytes, until
//  something needs them decoded: an in-order event only reads the order
//  key of the last buffered event and decodes the head's states of the
//  rules it matches, so it appends its own packed event (and coins) and
//  writes every other slice back as it was. A fold decodes the events it
//  folds and the checkpoint's states they touch, a replay (late event,
//  undo) the buffer and tail. The bytes written are exactly what protobuf-c
//  packs for the same state (fields in number order, proto3 defaults left
//  out, unknown fields last), so the format on disk does not change.

static int
s_event_order (const Trove__Event *a, const Trove__Event *b)
{
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    int c = strcmp (a->source, b->source);
    return c ? c : strcmp (a->id, b->id);
}

//  The order key of a packed BufferedEvent: 0, or -1 when it is not in the
//  plain form the engine writes (the caller decodes it instead).
static int
s_slice_key (s_slice_t s, s_key_t *key)
{
    const uint8_t *p = s.at, *end = s.at + s.len, *ev = NULL, *data;
    uint64_t len = 0, evlen = 0;
    uint32_t number;
    unsigned wire;
    while (p < end) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 1) {
            if (wire != 2 || ev)
                return -1;  //  a repeated submessage merges: leave that to protobuf-c
            ev = data;
            evlen = len;
        }
    }
    if (!ev)
        return -1;
    *key = (s_key_t){0, "", "", 0, 0};
    bool seen [6] = {false};
    for (p = ev, end = ev + evlen; p < end;) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 1 || number == 2 || number == 5) {
            if (seen [number] || (number == 5 ? wire != 0 : wire != 2))
                return -1;
            seen [number] = true;
        }
        if (number == 1)
            key->source = (const char *) data, key->source_len = strnlen ((const char *) data, len);
        else if (number == 2)
            key->id = (const char *) data, key->id_len = strnlen ((const char *) data, len);
        else if (number == 5)
            key->ts = (int64_t) len;
    }
    return 0;
}

//  s_event_order (key's event, ev).
static int
s_key_order (const s_key_t *key, const Trove__Event *ev)
{
    if (key->ts != ev->ts_ms)
        return key->ts < ev->ts_ms ? -1 : 1;
    int c = s_strcmp_n (key->source, key->source_len, ev->source);
    return c ? c : s_strcmp_n (key->id, key->id_len, ev->id);
}

//  The coin id of a packed Coin: 0, or -1 when not in plain form.
static int
s_slice_coin_id (s_slice_t s, const char **id, size_t *id_len)
{
    const uint8_t *p = s.at, *end = s.at + s.len, *data;
    uint64_t len;
    uint32_t number;
    unsigned wire;
    bool seen = false;
    *id = "";
    *id_len = 0;
    while (p < end) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 1) {
            if (wire != 2 || seen)
                return -1;
            seen = true;
            *id = (const char *) data;
            *id_len = strnlen ((const char *) data, len);
        }
    }
    return 0;
}

//  What folding needs of a packed Coin in the tail: its rule and the last
//  of its earning events (every kind appends the event that earns it
//  last). Strings are not NUL-terminated.
typedef struct {
    const char *rule, *source, *id;
    size_t rule_len, source_len, id_len;
} s_coin_key_t;

//  0, or -1 when the coin is not in the plain form the engine writes.
static int
s_slice_coin_key (s_slice_t s, s_coin_key_t *key)
{
    const uint8_t *p = s.at, *end = s.at + s.len, *data, *ref = NULL;
    uint64_t len, ref_len = 0;
    uint32_t number;
    unsigned wire;
    bool seen_rule = false;
    *key = (s_coin_key_t){"", "", "", 0, 0, 0};
    while (p < end) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 4) {
            if (wire != 2 || seen_rule)
                return -1;
            seen_rule = true;
            key->rule = (const char *) data;
            key->rule_len = strnlen ((const char *) data, len);
        }
        else if (number == 7) {
            if (wire != 2)
                return -1;
            ref = data;
            ref_len = len;
        }
    }
    if (!ref)
        return -1;
    bool seen [3] = {false};
    for (p = ref, end = ref + ref_len; p < end;) {
        if (s_field (&p, end, &number, &wire, &data, &len))
            return -1;
        if (number == 1 || number == 2) {
            if (wire != 2 || seen [number])
                return -1;
            seen [number] = true;
        }
        if (number == 1)
            key->source = (const char *) data, key->source_len = strnlen ((const char *) data, len);
        else if (number == 2)
            key->id = (const char *) data, key->id_len = strnlen ((const char *) data, len);
    }
    return 0;
}

static bool
s_same_n (const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp (a, b, alen) == 0;
}

//  Decode the lazy buffer or tail into the HuntState (in the arena).
static int
s_decode_field (s_ctx_t *ctx, s_state_t *st, s_packed_t *f)
{
    if (!f->lazy)
        return 0;
    void **v = engine_alloc (ctx->arena, (f->n ? f->n : 1) * sizeof *v);
    if (!v)
        return -1;
    const ProtobufCMessageDescriptor *d =
        f == &st->buffer ? &trove__buffered_event__descriptor : &trove__coin__descriptor;
    for (size_t i = 0; i < f->n; i++) {
        int rc = f == &st->buffer ? engine_buffered_decode (ctx->arena, f->v [i].at, f->v [i].len,
                                                            (Trove__BufferedEvent **) &v [i])
                                  : 1;
        if (rc < 0)
            return -1;
        if (rc > 0 && !(v [i] = protobuf_c_message_unpack (d, &ctx->arena->pb, f->v [i].len, f->v [i].at)))
            return -1;
    }
    Trove__HuntState *hs = st->hs;
    if (f == &st->buffer)
        hs->buffer = (Trove__BufferedEvent **) v, hs->n_buffer = f->n;
    else
        hs->tail = (Trove__Coin **) v, hs->n_tail = f->n;
    f->lazy = false;
    f->n = 0;
    return 0;
}

static size_t
s_n_buffer (const s_state_t *st)
{
    return st->buffer.lazy ? st->buffer.n : st->hs->n_buffer;
}

//  *order_p = s_event_order (buffered event i, ev): any negative, zero or
//  positive value (strcmp and memcmp answer the byte difference, e.g. -2
//  for '5' against '7'), so failure is told apart by the return: 0, or -1
//  when out of memory or unreadable.
static int
s_buffered_order (s_ctx_t *ctx, const s_state_t *st, size_t i, const Trove__Event *ev, int *order_p)
{
    if (!st->buffer.lazy) {
        *order_p = s_event_order (st->hs->buffer [i]->event, ev);
        return 0;
    }
    s_key_t key;
    if (s_slice_key (st->buffer.v [i], &key) == 0) {
        *order_p = s_key_order (&key, ev);
        return 0;
    }
    Trove__BufferedEvent *b =
        trove__buffered_event__unpack (&ctx->arena->pb, st->buffer.v [i].len, st->buffer.v [i].at);
    if (!b || !b->event)
        return -1;
    *order_p = s_event_order (b->event, ev);
    return 0;
}

//  A string field as protobuf-c unpacks it (a NUL-terminated copy).
static char *
s_string_dup (engine_arena_t *a, const uint8_t *data, size_t len)
{
    char *s = engine_alloc (a, len + 1);
    if (s) {
        memcpy (s, data, len);
        s [len] = 0;
    }
    return s;
}

//  The top-level scalar fields of a stored state (all but 3 to 6), as
//  trove__hunt_state__unpack reads them (the last of a repeated scalar
//  wins, a bool is any nonzero varint), without its descriptor walk: read
//  for every state an event touches. NULL when a field is not in the
//  plain form (the caller leaves it to protobuf-c) or out of memory.
static Trove__HuntState *
s_state_rest (engine_arena_t *a, const uint8_t *rest, size_t size)
{
    Trove__HuntState *hs = engine_alloc (a, sizeof *hs);
    if (!hs)
        return NULL;
    trove__hunt_state__init (hs);
    for (const uint8_t *p = rest, *end = rest + size; p < end;) {
        const uint8_t *data;
        uint64_t len;
        uint32_t number;
        unsigned wire;
        if (s_field (&p, end, &number, &wire, &data, &len))
            return NULL;
        bool text = number == 1 || number == 10 || number == 11;
        if (wire != (text ? 2u : 0u))
            return NULL;
        char *str = text ? s_string_dup (a, data, (size_t) len) : NULL;
        if (text && !str)
            return NULL;
        switch (number) {
            case 1:
                hs->hunt = str;
                break;
            case 2:
                hs->max_ts = (int64_t) len;
                break;
            case 7:
                hs->has_head = len != 0;
                break;
            case 8:
                hs->has_folded = len != 0;
                break;
            case 9:
                hs->folded_ts = (int64_t) len;
                break;
            case 10:
                hs->folded_source = str;
                break;
            case 11:
                hs->folded_id = str;
                break;
            default:
                return NULL;
        }
    }
    return hs;
}

//  Split a stored state (copied into the arena: the store's bytes are
//  borrowed only until its next call) into its packed fields and the rest,
//  which is unpacked. Bytes this reading refuses are left to protobuf-c:
//  when it reads them, they are packed again its way and split again.
static int
s_state_decode (s_ctx_t *ctx, const void *stored, size_t size, s_state_t *st)
{
    uint8_t *data = engine_alloc (ctx->arena, size ? size : 1);
    if (!data)
        return -1;
    if (size)
        memcpy (data, stored, size);
    for (int pass = 0; pass < 2; pass++) {
        memset (st, 0, sizeof *st);
        uint8_t *rest = engine_alloc (ctx->arena, size ? size : 1);
        if (!rest)
            return -1;
        size_t nrest = 0;
        bool plain = true;
        st->buffer.lazy = st->tail.lazy = true;
        for (const uint8_t *p = data, *end = data + size; p < end && plain;) {
            const uint8_t *start = p, *field;
            uint64_t len;
            uint32_t number;
            unsigned wire;
            if (s_field (&p, end, &number, &wire, &field, &len)) {
                plain = false;
                break;
            }
            s_packed_t *f = number == 3 ? &st->rules
                          : number == 4 ? &st->buffer
                          : number == 5 ? &st->tail
                          : number == 6 ? &st->head
                                        : NULL;
            if (f && wire != 2)
                plain = false;
            else if (f && s_slice_push (ctx->arena, f, field, (size_t) len))
                return -1;
            else if (!f && number > 11
                     && s_slice_push (ctx->arena, &st->unknown, start, (size_t) (p - start)))
                return -1;
            else if (!f && number <= 11) {
                memcpy (rest + nrest, start, (size_t) (p - start));
                nrest += (size_t) (p - start);
            }
        }
        if (plain && (st->hs = s_state_rest (ctx->arena, rest, nrest)))
            return 0;
        if (plain)
            return (st->hs = trove__hunt_state__unpack (&ctx->arena->pb, nrest, rest)) ? 0 : -1;
        if (pass == 1)
            break;
        Trove__HuntState *whole = trove__hunt_state__unpack (&ctx->arena->pb, size, data);
        if (!whole)
            return -1;  //  unreadable
        size = trove__hunt_state__get_packed_size (whole);
        if (!(data = engine_alloc (ctx->arena, size ? size : 1)))
            return -1;
        trove__hunt_state__pack (whole, data);
    }
    return -1;
}

//  0 with *st loaded (a fresh state when the store has none), or -1 when
//  the store failed or the state is unreadable (refuse rather than start
//  over).
static int
s_state_load (s_ctx_t *ctx, const trove_store_t *store, const char *hunt, s_state_t *st)
{
    const void *data;
    size_t size;
    int rc = store->get (store->arg, ctx->user, hunt, &data, &size);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return s_state_decode (ctx, data, size, st);
    memset (st, 0, sizeof *st);
    if (!(st->hs = engine_alloc (ctx->arena, sizeof *st->hs)))
        return -1;
    trove__hunt_state__init (st->hs);
    st->hs->hunt = (char *) hunt;  //  the rules' own, which outlive the call
    return 0;
}

static uint8_t *
s_put_bytes (uint8_t *p, uint8_t tag, const void *data, size_t len)
{
    *p++ = tag;
    p = engine_put_varint (p, len);
    memcpy (p, data, len);
    return p + len;
}

//  The bytes of one repeated field (tag: field number << 3 | 2): with msgs
//  NULL the elements of f (packed slices, or decoded messages), else the n
//  decoded messages. sizes: the decoded messages' packed sizes, filled
//  when *p is NULL (the sizing pass).
static size_t
s_put_field (uint8_t **p, uint8_t tag, const s_packed_t *f, ProtobufCMessage *const *msgs, size_t n,
             size_t *sizes)
{
    size_t total = 0;
    if (!msgs)
        n = f->n;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *m = msgs ? msgs [i] : f->v [i].msg;
        if (!m) {
            total += 1 + engine_varint_size (f->v [i].len) + f->v [i].len;
            if (*p)
                *p = s_put_bytes (*p, tag, f->v [i].at, f->v [i].len);
            continue;
        }
        if (!*p)
            sizes [i] = s_msg_size (m);
        total += 1 + engine_varint_size (sizes [i]) + sizes [i];
        if (*p) {
            *(*p)++ = tag;
            *p = engine_put_varint (*p, sizes [i]);
            *p += s_msg_pack (m, *p);
        }
    }
    return total;
}

//  Store the state, packed in the arena (the store keeps its own copy).
static int
s_state_save (s_ctx_t *ctx, const trove_store_t *store, s_state_t *st)
{
    Trove__HuntState *hs = st->hs;
    //  Field by field in number order, as protobuf-c does.
    struct {
        uint8_t tag;
        const s_packed_t *f;
        ProtobufCMessage *const *msgs;
        size_t n;
        size_t *sizes;
    } rep [4] = {
        {0x1a, &st->rules, NULL, 0, NULL},
        {0x22, &st->buffer, st->buffer.lazy ? NULL : (ProtobufCMessage *const *) hs->buffer, hs->n_buffer,
         NULL},
        {0x2a, &st->tail, st->tail.lazy ? NULL : (ProtobufCMessage *const *) hs->tail, hs->n_tail, NULL},
        {0x32, &st->head, NULL, 0, NULL},
    };
    size_t hunt_len = hs->hunt ? strlen (hs->hunt) : 0;
    size_t src_len = hs->folded_source ? strlen (hs->folded_source) : 0;
    size_t id_len = hs->folded_id ? strlen (hs->folded_id) : 0;
    size_t size = (hunt_len ? 1 + engine_varint_size (hunt_len) + hunt_len : 0)
                + (hs->max_ts ? 1 + engine_varint_size ((uint64_t) hs->max_ts) : 0) + (hs->has_head ? 2 : 0)
                + (hs->has_folded ? 2 : 0)
                + (hs->folded_ts ? 1 + engine_varint_size ((uint64_t) hs->folded_ts) : 0)
                + (src_len ? 1 + engine_varint_size (src_len) + src_len : 0)
                + (id_len ? 1 + engine_varint_size (id_len) + id_len : 0);
    for (size_t k = 0; k < 4; k++) {
        size_t n = rep [k].msgs ? rep [k].n : rep [k].f->n;
        if (n && !(rep [k].sizes = engine_alloc (ctx->arena, n * sizeof *rep [k].sizes)))
            return -1;
        uint8_t *none = NULL;
        size += s_put_field (&none, rep [k].tag, rep [k].f, rep [k].msgs, rep [k].n, rep [k].sizes);
    }
    for (size_t i = 0; i < st->unknown.n; i++)
        size += st->unknown.v [i].len;
    uint8_t *buf = engine_alloc (ctx->arena, size ? size : 1), *p = buf;
    if (!buf)
        return -1;
    if (hunt_len)
        p = s_put_bytes (p, 0x0a, hs->hunt, hunt_len);
    if (hs->max_ts)
        *p++ = 0x10, p = engine_put_varint (p, (uint64_t) hs->max_ts);
    for (size_t k = 0; k < 4; k++)
        s_put_field (&p, rep [k].tag, rep [k].f, rep [k].msgs, rep [k].n, rep [k].sizes);
    if (hs->has_head)
        *p++ = 0x38, *p++ = 1;
    if (hs->has_folded)
        *p++ = 0x40, *p++ = 1;
    if (hs->folded_ts)
        *p++ = 0x48, p = engine_put_varint (p, (uint64_t) hs->folded_ts);
    if (src_len)
        p = s_put_bytes (p, 0x52, hs->folded_source, src_len);
    if (id_len)
        p = s_put_bytes (p, 0x5a, hs->folded_id, id_len);
    for (size_t i = 0; i < st->unknown.n; i++) {
        memcpy (p, st->unknown.v [i].at, st->unknown.v [i].len);
        p += st->unknown.v [i].len;
    }
    assert ((size_t) (p - buf) == size);
    return store->put (store->arg, ctx->user, hs->hunt, buf, size);
}

//  A copy of the checkpoint to replay from: the packed rule states are
//  shared (never written to), the decoded ones packed again.
static int
s_checkpoint_copy (s_ctx_t *ctx, const s_state_t *st, s_packed_t *copy)
{
    memset (copy, 0, sizeof *copy);
    for (size_t i = 0; i < st->rules.n; i++) {
        s_slice_t s = st->rules.v [i];
        if (s.msg && s_pack_slice (ctx->arena, s.msg, &s))
            return -1;
        if (s_slice_push (ctx->arena, copy, s.at, s.len))
            return -1;
    }
    return 0;
}

bool
trove_coin_same (const Trove__Coin *a, const Trove__Coin *b)
{
    if (a->value != b->value || a->rule_version != b->rule_version || a->n_events != b->n_events)
        return false;
    for (size_t i = 0; i < a->n_events; i++)
        if (strcmp (a->events [i]->source, b->events [i]->source)
            || strcmp (a->events [i]->id, b->events [i]->id))
            return false;
    return true;
}

static Trove__Coin *
s_find (Trove__Coin *const *coins, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (coins [i]->id, id) == 0)
            return coins [i];
    return NULL;
}

//  Replay the buffer from the checkpoint and turn the difference with the
//  coins it earned before into revocations and mints. trigger: the event
//  that caused this (its new coins are "scored", others "rescored").
static int
s_replay (s_ctx_t *ctx, size_t h, s_state_t *st, const Trove__Event *trigger, const char *revoke_reason)
{
    if (s_decode_field (ctx, st, &st->buffer) || s_decode_field (ctx, st, &st->tail))
        return -1;
    Trove__HuntState *hs = st->hs;
    s_packed_t replayed;
    if (s_checkpoint_copy (ctx, st, &replayed))
        return -1;
    s_coins_t fresh = {0};
    int rc = 0;
    for (size_t i = 0; i < hs->n_buffer && rc == 0; i++) {
        const Trove__Event *ev = hs->buffer [i]->event;
        const trove_hunt_t *v = trove_rules_effective (ctx->rules, h, ev->ts_ms);
        if (v)
            rc = s_process (ctx, &replayed, v, ev, hs->buffer [i]->accepted_us, NULL, &fresh);
    }
    if (rc == 0) {
        //  What the replay ends with is the new head.
        st->head = replayed;
        hs->has_head = true;
    }
    for (size_t i = 0; i < hs->n_tail && rc == 0; i++) {
        Trove__Coin *now = s_find (fresh.v, fresh.n, hs->tail [i]->id);
        if (!now || !trove_coin_same (now, hs->tail [i]))
            rc = s_emit (ctx, hs->tail [i], true, revoke_reason);
    }
    for (size_t i = 0; i < fresh.n && rc == 0; i++) {
        Trove__Coin *before = s_find (hs->tail, hs->n_tail, fresh.v [i]->id);
        if (before && trove_coin_same (before, fresh.v [i]))
            continue;
        bool earned =
            trigger && s_refs_have (fresh.v [i]->events, fresh.v [i]->n_events, trigger->source, trigger->id);
        rc = s_emit (ctx, fresh.v [i], false,
                     earned ? trove_strerror (TROVE_REASON_SCORED) : trove_strerror (TROVE_REASON_RESCORED));
    }
    if (rc == 0) {
        //  The tail now lists what the ledger holds for the buffer.
        hs->tail = fresh.v;
        hs->n_tail = fresh.n;
    }
    return rc;
}

//  Remember ev as the last event folded into the checkpoint (its strings
//  live as long as the arena).
static void
s_set_folded (Trove__HuntState *hs, const Trove__Event *ev)
{
    hs->has_folded = true;
    hs->folded_ts = ev->ts_ms;
    hs->folded_source = ev->source;
    hs->folded_id = ev->id;
}

//  Can ev still be placed exactly in st? Not when it orders before an event
//  already folded into the checkpoint: the checkpoint cannot be unwound.
//  1 too late, 0 not, -1 unreadable or out of memory.
static int
s_too_late (s_ctx_t *ctx, const s_state_t *st, const Trove__Event *ev)
{
    const Trove__HuntState *hs = st->hs;
    if (hs->has_folded) {
        if (ev->ts_ms != hs->folded_ts)
            return ev->ts_ms < hs->folded_ts;
        int c = strcmp (ev->source, hs->folded_source);
        return (c ? c : strcmp (ev->id, hs->folded_id)) < 0;
    }
    //  A state written before folded positions were kept: whatever it has
    //  folded orders before its buffer (or at most at its newest ts).
    if (st->rules.n == 0)
        return 0;
    if (s_n_buffer (st) == 0)
        return ev->ts_ms <= hs->max_ts;
    int c;
    return s_buffered_order (ctx, st, 0, ev, &c) ? -1 : c > 0;
}

//  Drop the tail's coin with this id, if any: the one after it moves into
//  its place, as in the decoded tail.
static int
s_tail_drop (s_state_t *st, const char *id)
{
    Trove__HuntState *hs = st->hs;
    if (!st->tail.lazy) {
        for (size_t t = 0; t < hs->n_tail; t++)
            if (strcmp (hs->tail [t]->id, id) == 0) {
                hs->tail [t] = hs->tail [--hs->n_tail];
                break;
            }
        return 0;
    }
    for (size_t t = 0; t < st->tail.n; t++) {
        const char *tid;
        size_t tid_len;
        if (s_slice_coin_id (st->tail.v [t], &tid, &tid_len))
            return -1;  //  the caller decodes the tail
        if (s_strcmp_n (tid, tid_len, id) == 0) {
            st->tail.v [t] = st->tail.v [--st->tail.n];
            break;
        }
    }
    return 0;
}

//  Fold events that can no longer move into the checkpoint; their coins
//  leave the tail (they are final).
static int
s_fold (s_ctx_t *ctx, size_t h, s_state_t *st, int64_t lateness_ms)
{
    Trove__HuntState *hs = st->hs;
    size_t drop = 0, n = s_n_buffer (st);
    while (drop < n) {
        Trove__BufferedEvent *b;
        if (st->buffer.lazy) {
            s_key_t key;
            if (n - drop <= TROVE_ENGINE_BUFFER_MAX && s_slice_key (st->buffer.v [drop], &key) == 0
                && !(key.ts < hs->max_ts - lateness_ms))
                break;
            int rc = engine_buffered_decode (ctx->arena, st->buffer.v [drop].at, st->buffer.v [drop].len, &b);
            if (rc < 0)
                return -1;
            if (rc > 0)
                b = trove__buffered_event__unpack (&ctx->arena->pb, st->buffer.v [drop].len,
                                                   st->buffer.v [drop].at);
            if (!b || !b->event)
                return -1;
        }
        else
            b = hs->buffer [drop];
        if (!(b->event->ts_ms < hs->max_ts - lateness_ms || n - drop > TROVE_ENGINE_BUFFER_MAX))
            break;
        const Trove__Event *ev = b->event;
        const trove_hunt_t *v = trove_rules_effective (ctx->rules, h, ev->ts_ms);
        s_coins_t coins = {0};
        if (v && s_process (ctx, &st->rules, v, ev, b->accepted_us, NULL, &coins))
            return -1;
        for (size_t c = 0; c < coins.n; c++)
            if (s_tail_drop (st, coins.v [c]->id)
                && (s_decode_field (ctx, st, &st->tail) || s_tail_drop (st, coins.v [c]->id)))
                return -1;
        s_set_folded (hs, ev);
        drop++;
    }
    if (drop && st->buffer.lazy) {
        st->buffer.v += drop;
        st->buffer.n -= drop;
        st->buffer.cap -= drop;
    }
    else if (drop) {
        memmove (hs->buffer, hs->buffer + drop, (hs->n_buffer - drop) * sizeof *hs->buffer);
        hs->n_buffer -= drop;
    }
    return 0;
}

//  Fold every buffered event but the one just appended (the last) without
//  replaying them. The head is the checkpoint with the whole buffer
//  replayed, so the checkpoint once every older event is folded is the
//  head as it was before the new event (before), and their coins are the
//  tail's coins they earned: the same states, bytes and tail a fold event
//  by event makes, with none of its decoding, steps and coin ids. A fresh
//  replay (s_fold) was what most in-order events paid for: a user's first
//  event after a pause of more than `lateness` folds their whole previous
//  session.
//
//  Exact when the head was made by the versions a fold would apply now:
//  when the hunt has one version (versions are only ever added, and
//  `rules apply` refuses another content under an existing version).
//  Each tail coin is matched to its fold by rule and last earning event,
//  and dropped as s_tail_drop would (the last one moves into its place),
//  so the tail keeps its order. Returns 0 folded, 1 declined (nothing
//  changed: the caller folds event by event), -1 out of memory.
static int
s_fold_whole (s_ctx_t *ctx, size_t h, s_state_t *st, const s_packed_t *before, size_t tail_old)
{
    engine_arena_t *a = ctx->arena;
    size_t n_old = st->buffer.n - 1, m = st->tail.n;
    s_key_t *keys = engine_alloc (a, n_old * sizeof *keys);
    s_coin_key_t *coins = engine_alloc (a, (tail_old ? tail_old : 1) * sizeof *coins);
    size_t *at = engine_alloc (a, (m ? m : 1) * sizeof *at);
    if (!keys || !coins || !at)
        return -1;
    for (size_t i = 0; i < n_old; i++)
        if (s_slice_key (st->buffer.v [i], &keys [i]))
            return 1;
    for (size_t t = 0; t < tail_old; t++)
        if (s_slice_coin_key (st->tail.v [t], &coins [t]))
            return 1;
    for (size_t t = 0; t < m; t++)
        at [t] = t;
    size_t left = m;
    for (size_t i = 0; i < n_old; i++) {
        const trove_hunt_t *v = trove_rules_effective (ctx->rules, h, keys [i].ts);
        for (size_t r = 0; v && r < v->nrules; r++) {
            if (!trove_rule_stateful (&v->rules [r]))
                continue;
            const char *rule = v->rules [r].id;
            size_t rule_len = strlen (rule);
            for (size_t q = 0; q < left; q++) {
                const s_coin_key_t *c = &coins [at [q]];
                if (at [q] < tail_old && s_same_n (c->rule, c->rule_len, rule, rule_len)
                    && s_same_n (c->source, c->source_len, keys [i].source, keys [i].source_len)
                    && s_same_n (c->id, c->id_len, keys [i].id, keys [i].id_len)) {
                    at [q] = at [--left];
                    break;
                }
            }
        }
    }
    for (size_t q = 0; q < left; q++)
        if (at [q] < tail_old)
            return 1;  //  a coin no fold would take: not a tail this engine wrote
    s_slice_t *tail = engine_alloc (a, (left ? left : 1) * sizeof *tail);
    const s_key_t *last = &keys [n_old - 1];
    char *source = engine_alloc (a, last->source_len + 1);
    char *id = engine_alloc (a, last->id_len + 1);
    if (!tail || !source || !id)
        return -1;
    for (size_t q = 0; q < left; q++)
        tail [q] = st->tail.v [at [q]];
    st->tail.v = tail;
    st->tail.n = st->tail.cap = left;
    st->rules = *before;
    memcpy (source, last->source, last->source_len);
    source [last->source_len] = 0;
    memcpy (id, last->id, last->id_len);
    id [last->id_len] = 0;
    Trove__HuntState *hs = st->hs;
    hs->has_folded = true;
    hs->folded_ts = last->ts;
    hs->folded_source = source;
    hs->folded_id = id;
    st->buffer.v += n_old;
    st->buffer.n -= n_old;
    st->buffer.cap -= n_old;
    return 0;
}

//  ev as a buffered event: a view that shares its fields (ev outlives the
//  arena) and leaves out its unknown fields, as trove_event_dup did.
static Trove__Event *
s_event_copy (engine_arena_t *a, const Trove__Event *src)
{
    Trove__Event *ev = engine_alloc (a, sizeof *ev);
    if (!ev)
        return NULL;
    trove__event__init (ev);
    ev->source = src->source;
    ev->id = src->id;
    ev->user = src->user;
    ev->type = src->type;
    ev->ts_ms = src->ts_ms;
    ev->n_attrs = src->n_attrs;
    ev->attrs = src->attrs;
    return ev;
}

//  Put ev in its place in the buffer. at_end: it orders after every
//  buffered event (a packed buffer gets it packed, at its end).
static int
s_buffer_insert (s_ctx_t *ctx, s_state_t *st, const Trove__Event *ev, int64_t accepted_us, bool at_end)
{
    if (st->buffer.lazy && at_end && engine_event_plain (ev)) {
        //  Packed straight from the event (the common case).
        size_t len = engine_buffered_size (ev, accepted_us);
        uint8_t *at = engine_alloc (ctx->arena, len);
        if (!at)
            return -1;
        engine_buffered_pack (ev, accepted_us, at);
        return s_slice_push (ctx->arena, &st->buffer, at, len);
    }
    Trove__BufferedEvent *b = engine_alloc (ctx->arena, sizeof *b);
    if (!b)
        return -1;
    trove__buffered_event__init (b);
    b->accepted_us = accepted_us;
    if (!(b->event = s_event_copy (ctx->arena, ev)))
        return -1;
    if (st->buffer.lazy && at_end) {
        s_slice_t s;
        return s_pack_slice (ctx->arena, &b->base, &s) || s_slice_push (ctx->arena, &st->buffer, s.at, s.len)
                 ? -1
                 : 0;
    }
    if (s_decode_field (ctx, st, &st->buffer))
        return -1;
    Trove__HuntState *hs = st->hs;
    Trove__BufferedEvent **v =
        engine_realloc (ctx->arena, hs->buffer, hs->n_buffer * sizeof *v, (hs->n_buffer + 1) * sizeof *v);
    if (!v)
        return -1;
    hs->buffer = v;
    size_t at = hs->n_buffer;
    while (at > 0 && s_event_order (hs->buffer [at - 1]->event, ev) > 0)
        at--;
    memmove (hs->buffer + at + 1, hs->buffer + at, (hs->n_buffer - at) * sizeof *hs->buffer);
    hs->buffer [at] = b;
    hs->n_buffer++;
    return 0;
}

//  Append coins to the tail.
static int
s_tail_append (s_ctx_t *ctx, s_state_t *st, const s_coins_t *coins)
{
    Trove__HuntState *hs = st->hs;
    if (st->tail.lazy) {
        for (size_t i = 0; i < coins->n; i++) {
            s_slice_t s;
            if (s_pack_slice (ctx->arena, &coins->v [i]->base, &s)
                || s_slice_push (ctx->arena, &st->tail, s.at, s.len))
                return -1;
        }
        return 0;
    }
    if (!coins->n)
        return 0;
    Trove__Coin **bigger = engine_realloc (ctx->arena, hs->tail, hs->n_tail * sizeof *bigger,
                                           (hs->n_tail + coins->n) * sizeof *bigger);
    if (!bigger)
        return -1;
    memcpy (bigger + hs->n_tail, coins->v, coins->n * sizeof *bigger);
    hs->tail = bigger;
    hs->n_tail += coins->n;
    return 0;
}

//  Emit every coin in the list as a mint, reason "scored".
static int
s_emit_all (s_ctx_t *ctx, s_coins_t *coins)
{
    for (size_t i = 0; i < coins->n; i++)
        if (s_emit (ctx, coins->v [i], false, trove_strerror (TROVE_REASON_SCORED)))
            return -1;
    return 0;
}

//  The stateful part of one hunt for one event, from the hunt's state st.
//  The caller checked that ev is not too late for it.
static int
s_score_stateful (s_ctx_t *ctx, const trove_store_t *store, size_t h, const trove_hunt_t *v,
                  const Trove__Event *ev, int64_t accepted_us, const uint64_t *mask, s_state_t *st)
{
    Trove__HuntState *hs = st->hs;
    int rc = 0;
    size_t n = s_n_buffer (st);
    bool fresh = st->rules.n == 0 && n == 0 && hs->max_ts == 0;
    int last = -1;
    if (n && s_buffered_order (ctx, st, n - 1, ev, &last))
        return -1;
    bool folded = false;
    if ((fresh || hs->has_head) && last < 0) {
        //  In order (the common case): the buffer's replay would end in the
        //  head, so only this event is new. Append it and go on from there.
        //  When it pushes every older event out of the buffer, the head as
        //  it is now becomes the checkpoint (s_fold_whole): kept aside
        //  before the event changes it.
        s_packed_t before = {0};
        size_t tail_old = st->tail.n;
        bool whole = false;
        if (n && st->buffer.lazy && st->tail.lazy && trove_rules_versions (ctx->rules, h) == 1) {
            int64_t max_ts = ev->ts_ms > hs->max_ts ? ev->ts_ms : hs->max_ts;
            s_key_t key;
            whole = s_slice_key (st->buffer.v [n - 1], &key) == 0 && key.ts < max_ts - v->lateness_ms
                 && !(ev->ts_ms < max_ts - v->lateness_ms);
        }
        if (whole) {
            before.n = before.cap = st->head.n;
            if (st->head.n && !(before.v = engine_alloc (ctx->arena, st->head.n * sizeof *before.v)))
                return -1;
            if (st->head.n)
                memcpy (before.v, st->head.v, st->head.n * sizeof *before.v);
        }
        rc = s_buffer_insert (ctx, st, ev, accepted_us, true);
        s_coins_t coins = {0};
        if (rc == 0)
            rc = s_process (ctx, &st->head, v, ev, accepted_us, mask, &coins);
        hs->has_head = true;
        if (rc == 0)
            rc = s_emit_all (ctx, &coins);
        if (rc == 0)
            rc = s_tail_append (ctx, st, &coins);
        if (ev->ts_ms > hs->max_ts || fresh)
            hs->max_ts = ev->ts_ms;
        if (rc == 0 && whole) {
            int w = s_fold_whole (ctx, h, st, &before, tail_old);
            rc = w < 0 ? -1 : 0;
            folded = w == 0;
        }
    }
    else {
        rc = s_buffer_insert (ctx, st, ev, accepted_us, last < 0);
        if (fresh || ev->ts_ms > hs->max_ts)
            hs->max_ts = ev->ts_ms;
        if (rc == 0)
            rc = s_replay (ctx, h, st, ev, trove_strerror (TROVE_REASON_RESCORED));
    }
    if (rc == 0 && !folded)
        rc = s_fold (ctx, h, st, v->lateness_ms);
    if (rc == 0)
        rc = s_state_save (ctx, store, st);
    return rc;
}

static int
s_undo (s_ctx_t *ctx, const trove_store_t *store, const char *source, const char *id)
{
    for (size_t h = 0; h < trove_rules_hunts (ctx->rules); h++) {
        const trove_hunt_t *latest = trove_rules_latest (ctx->rules, h);
        const void *data;
        size_t size;
        int got = store->get (store->arg, ctx->user, latest->hunt, &data, &size);
        if (got < 0)
            return -1;
        if (got)
            continue;
        s_state_t st;
        if (s_state_decode (ctx, data, size, &st) || s_decode_field (ctx, &st, &st.buffer))
            return -1;
        Trove__HuntState *hs = st.hs;
        for (size_t i = 0; i < hs->n_buffer; i++) {
            const Trove__Event *b = hs->buffer [i]->event;
            if (strcmp (b->source, source) || strcmp (b->id, id))
                continue;
            memmove (hs->buffer + i, hs->buffer + i + 1, (hs->n_buffer - i - 1) * sizeof *hs->buffer);
            hs->n_buffer--;
            if (s_replay (ctx, h, &st, NULL, trove_strerror (TROVE_REASON_UNDO))
                || s_state_save (ctx, store, &st))
                return -1;
            break;
        }
    }
    return 0;
}

Trove__Coin
trove_change_coin_view (const trove_change_t *ch)
{
    assert (ch);
    Trove__Coin coin = TROVE__COIN__INIT;
    coin.id = (char *) ch->id;
    coin.user = (char *) ch->user;
    coin.hunt = (char *) ch->hunt;
    coin.rule = (char *) ch->rule;
    coin.rule_version = ch->version;
    coin.value = ch->value;
    coin.n_events = ch->nrefs;
    coin.events = (Trove__EventRef **) ch->refs;
    coin.event_ts_ms = ch->event_ts_ms;
    coin.local_day = ch->local_day;
    coin.accepted_us = ch->accepted_us;
    coin.reason = (char *) (ch->reason ? ch->reason : "");
    coin.run = (char *) (ch->run ? ch->run : "");
    coin.revoked = ch->revoke;
    return coin;
}

Trove__Coin *
trove_change_coin (const trove_change_t *ch)
{
    Trove__Coin coin = trove_change_coin_view (ch);
    return trove_msg_coin_dup (&coin);
}

bool
trove_engine_unscored (const Trove__Event *ev)
{
    return strcmp (ev->type, "undo") == 0
        || (strcmp (ev->type, TROVE_RECONCILE_TYPE) == 0
            && strcmp (ev->source, TROVE_RECONCILER_SOURCE) == 0);
}

bool
trove_engine_undo_target (const Trove__Event *ev, const char **source_p, const char **id_p)
{
    if (strcmp (ev->type, "undo"))
        return false;
    const char *source = NULL, *id = NULL;
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const Trove__Attr *a = ev->attrs [i];
        if (a->value_case != TROVE__ATTR__VALUE_S)
            continue;
        if (strcmp (a->key, "target_source") == 0)
            source = a->s;
        else if (strcmp (a->key, "target_id") == 0)
            id = a->s;
    }
    if (!source || !id || !*source || !*id)
        return false;
    *source_p = source;
    *id_p = id;
    return true;
}

static int
s_score (const trove_rules_t *rules, const Trove__Event *ev, int64_t accepted_us, const trove_store_t *store,
         trove_change_fn *emit, void *arg)
{
    alignas (max_align_t) char first [ARENA_STACK];
    engine_arena_t arena;
    engine_arena_init (&arena, first, sizeof first);
    s_ctx_t ctx = {rules, ev->user, emit, arg, &arena};
    const char *tsource, *tid;
    if (trove_engine_undo_target (ev, &tsource, &tid)) {
        int rc = s_undo (&ctx, store, tsource, tid);
        engine_arena_release (&arena);
        return rc;
    }
    if (trove_engine_unscored (ev))
        return 0;  //  validation refuses an undo without its target; never scored (nothing allocated)
    //  First every state the event would change: when it falls before what
    //  one of them has folded, nothing is changed and the caller re-derives
    //  the user (exact for any lateness). Each state is read once.
    size_t nh = trove_rules_hunts (rules);
    s_state_t *states = engine_alloc (&arena, (nh ? nh : 1) * sizeof *states);
    if (!states) {
        engine_arena_release (&arena);
        return -1;
    }
    memset (states, 0, (nh ? nh : 1) * sizeof *states);
    uint64_t *masks = engine_alloc (&arena, (nh ? nh : 1) * sizeof *masks);
    if (!masks) {
        engine_arena_release (&arena);
        return -1;
    }
    int rc = 0;
    for (size_t h = 0; h < nh && rc == 0; h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, ev->ts_ms);
        if (v)
            masks [h] = s_match_mask (v, ev);
        if (!v || !v->stateful || !s_matches_stateful (v, ev, &masks [h]))
            continue;
        if (s_state_load (&ctx, store, v->hunt, &states [h]))
            rc = -1;
        else
            rc = s_too_late (&ctx, &states [h], ev);
    }
    for (size_t h = 0; h < nh && rc == 0; h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, ev->ts_ms);
        if (!v)
            continue;
        for (size_t i = 0; i < v->nrules && rc == 0; i++) {
            const trove_rule_t *r = &v->rules [i];
            if (trove_rule_stateful (r) || !s_rule_matches (v, i, ev, &masks [h]))
                continue;
            Trove__EventRef ref = TROVE__EVENT_REF__INIT;
            ref.source = ev->source;
            ref.id = ev->id;
            Trove__EventRef *refs [1] = {&ref};
            char occ [OCC_MAX];
            size_t occ_len = engine_occ (occ, ev->source, ev->id, NULL);
            char id [TROVE_COIN_ID_LEN + 1];
            trove_hash_coin_id (v->hunt, r->id, ev->user, occ, occ_len, id);
            trove_change_t ch = {
                .id = id,
                .user = ev->user,
                .hunt = v->hunt,
                .rule = r->id,
                .version = v->version,
                .value = r->coins,
                .refs = refs,
                .nrefs = 1,
                .event_ts_ms = ev->ts_ms,
                .local_day = (int32_t) trove_tz_day (v->tz, ev->ts_ms),
                .accepted_us = accepted_us,
                .reason = trove_strerror (TROVE_REASON_SCORED),
            };
            if (emit (arg, &ch))
                rc = -1;
        }
        if (rc == 0 && states [h].hs)
            rc = s_score_stateful (&ctx, store, h, v, ev, accepted_us, &masks [h], &states [h]);
    }
    engine_arena_release (&arena);
    return rc;
}

int
trove_engine_score (const trove_rules_t *rules, const Trove__Event *ev, int64_t accepted_us,
                    const trove_store_t *store, trove_change_fn *emit, void *arg)
{
    return s_score (rules, ev, accepted_us, store, emit, arg);
}

//  --------------------------------------------------------------------------
//  In-memory store

typedef struct {
    void *data;
    size_t size;
    size_t cap;  //  bytes allocated: a state changes size with every event
} s_blob_t;

struct _trove_memstore_t {
    zhashx_t *map;  //  "user \x1f hunt" -> s_blob_t
};

static void
s_blob_destroy (void **item)
{
    s_blob_t *b = *item;
    if (b) {
        free (b->data);
        free (b);
        *item = NULL;
    }
}

trove_memstore_t *
trove_memstore_new (void)
{
    trove_memstore_t *self = calloc (1, sizeof *self);
    if (self && !(self->map = zhashx_new ()))
        free (self), self = NULL;
    if (self)
        zhashx_set_destructor (self->map, s_blob_destroy);
    return self;
}

void
trove_memstore_destroy (trove_memstore_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->map);
        free (*self_p);
        *self_p = NULL;
    }
}

//  "user \x1f hunt" into buf (size KEY_MAX), or a malloc'd copy when too
//  long (*heap_p set: free it). NULL when out of memory.
#define KEY_MAX 256
static char *
s_mem_key (char *buf, const char *user, const char *hunt, char **heap_p)
{
    size_t lu = strlen (user), lh = strlen (hunt);
    *heap_p = NULL;
    if (lu + lh + 2 > KEY_MAX)
        return *heap_p = zsys_sprintf ("%s\x1f%s", user, hunt);
    memcpy (buf, user, lu);
    buf [lu] = '\x1f';
    memcpy (buf + lu + 1, hunt, lh + 1);
    return buf;
}

static int
s_mem_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p)
{
    trove_memstore_t *self = arg;
    char buf [KEY_MAX], *heap;
    char *key = s_mem_key (buf, user, hunt, &heap);
    if (!key)
        return -1;
    s_blob_t *b = zhashx_lookup (self->map, key);
    zstr_free (&heap);
    if (!b)
        return 1;
    *data_p = b->data;
    *size_p = b->size;
    return 0;
}

static int
s_mem_put (void *arg, const char *user, const char *hunt, const void *src, size_t size)
{
    trove_memstore_t *self = arg;
    char buf [KEY_MAX], *heap;
    char *key = s_mem_key (buf, user, hunt, &heap);
    if (!key)
        return -1;
    int rc = 0;
    s_blob_t *old = size ? zhashx_lookup (self->map, key) : NULL;
    if (size == 0)
        zhashx_delete (self->map, key);
    else if (old && src != old->data) {
        //  Rewritten in place: a state is put after every event (its own
        //  bytes, as got, go the other way: realloc could move them). It
        //  grows by an eighth more than it needs, so that most puts, a few
        //  bytes longer or shorter than the last, do not realloc.
        void *data = old->data;
        if (size > old->cap) {
            size_t cap = size + size / 8;
            if ((data = realloc (old->data, cap)))
                old->cap = cap;
        }
        if (data) {
            memcpy (data, src, size);
            old->data = data;
            old->size = size;
        }
        else
            rc = -1;
    }
    else {
        s_blob_t *b = malloc (sizeof *b);
        if (b && (b->data = malloc (size))) {
            memcpy (b->data, src, size);
            b->size = b->cap = size;
            zhashx_update (self->map, key, b);
        }
        else {
            free (b);
            rc = -1;
        }
    }
    zstr_free (&heap);
    return rc;
}

trove_store_t
trove_memstore_store (trove_memstore_t *self)
{
    return (trove_store_t){s_mem_get, s_mem_put, self};
}

size_t
trove_memstore_bytes (trove_memstore_t *self, size_t *entries_p)
{
    size_t bytes = 0;
    for (s_blob_t *b = zhashx_first (self->map); b; b = zhashx_next (self->map))
        bytes += b->size;
    if (entries_p)
        *entries_p = zhashx_size (self->map);
    return bytes;
}

//  --------------------------------------------------------------------------
//  Derivation in event-time order

typedef struct {
    zhashx_t *live;  //  id -> Trove__Coin (owned)
} s_live_t;

static int
s_live_change (void *arg, const trove_change_t *ch)
{
    s_live_t *l = arg;
    if (ch->revoke) {
        zhashx_delete (l->live, ch->id);
        return 0;
    }
    Trove__Coin *c = trove_change_coin (ch);
    if (!c)
        return -1;
    zhashx_update (l->live, ch->id, c);
    return 0;
}

static void
s_coin_destroy (void **item)
{
    if (*item) {
        trove__coin__free_unpacked (*item, NULL);
        *item = NULL;
    }
}

static int
s_ptr_event_order (const void *a, const void *b)
{
    return s_event_order (*(Trove__Event *const *) a, *(Trove__Event *const *) b);
}

static int
s_coin_order (const void *a, const void *b)
{
    const Trove__Coin *x = *(Trove__Coin *const *) a, *y = *(Trove__Coin *const *) b;
    int c = strcmp (x->hunt, y->hunt);
    if (!c)
        c = strcmp (x->rule, y->rule);
    return c ? c : strcmp (x->id, y->id);
}

int
trove_engine_derive (const trove_rules_t *rules, Trove__Event *const *events, size_t n, trove_change_fn *emit,
                     void *arg)
{
    return trove_engine_derive_into (rules, events, n, emit, arg, NULL);
}

int
trove_engine_derive_into (const trove_rules_t *rules, Trove__Event *const *events, size_t n,
                          trove_change_fn *emit, void *arg, trove_memstore_t *into)
{
    int rc = -1;
    Trove__Event **sorted = malloc ((n ? n : 1) * sizeof *sorted);
    zhashx_t *undone = zhashx_new ();
    s_live_t live = {zhashx_new ()};
    trove_memstore_t *mem = into ? into : trove_memstore_new ();
    Trove__Coin **list = NULL;
    if (!sorted || !undone || !live.live || !mem)
        goto done;
    zhashx_set_destructor (live.live, s_coin_destroy);
    if (n)
        memcpy (sorted, events, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_ptr_event_order);
    for (size_t i = 0; i < n; i++) {
        const char *s, *id;
        if (trove_engine_undo_target (sorted [i], &s, &id)) {
            char *key = zsys_sprintf ("%s\x1f%s", s, id);
            if (!key)
                goto done;
            zhashx_update (undone, key, (void *) 1);
            zstr_free (&key);
        }
    }
    trove_store_t store = trove_memstore_store (mem);
    for (size_t i = 0; i < n; i++) {
        if (trove_engine_unscored (sorted [i]))
            continue;  //  undo: applied by leaving its target out
        char *key = zsys_sprintf ("%s\x1f%s", sorted [i]->source, sorted [i]->id);
        if (!key)
            goto done;
        bool skip = zhashx_lookup (undone, key) != NULL;
        zstr_free (&key);
        if (!skip && s_score (rules, sorted [i], 0, &store, s_live_change, &live))
            goto done;
    }
    size_t nlive = zhashx_size (live.live), k = 0;
    list = malloc ((nlive ? nlive : 1) * sizeof *list);
    if (!list)
        goto done;
    for (Trove__Coin *c = zhashx_first (live.live); c; c = zhashx_next (live.live))
        list [k++] = c;
    qsort (list, nlive, sizeof *list, s_coin_order);
    s_ctx_t ctx = {rules, NULL, emit, arg, NULL};
    rc = 0;
    for (size_t i = 0; i < nlive && rc == 0; i++)
        rc = s_emit (&ctx, list [i], false, trove_strerror (TROVE_REASON_SCORED));
done:
    free (list);
    free (sorted);
    zhashx_destroy (&undone);
    zhashx_destroy (&live.live);
    if (mem != into)
        trove_memstore_destroy (&mem);
    return rc;
}

int
trove_engine_progress (const trove_hunt_t *v, const Trove__HuntState *state, int64_t now_ms,
                       Trove__Progress ***progress_p, size_t *n_p)
{
    *progress_p = calloc (v->nrules ? v->nrules : 1, sizeof **progress_p);
    *n_p = 0;
    if (!*progress_p)
        return -1;
    //  The state after every event seen: the head when the buffer has one.
    Trove__RuleState *const *states = NULL;
    size_t nstates = 0;
    if (state) {
        states = state->has_head ? state->head : state->rules;
        nstates = state->has_head ? state->n_head : state->n_rules;
    }
    for (size_t i = 0; i < v->nrules; i++) {
        const trove_rule_t *r = &v->rules [i];
        const Trove__RuleState *rs = NULL;
        for (size_t k = 0; k < nstates && !rs; k++)
            if (strcmp (states [k]->rule, r->id) == 0 && states [k]->kind == (uint32_t) r->kind)
                rs = states [k];
        Trove__Progress *p = malloc (sizeof *p);
        if (!p)
            goto fail;
        trove__progress__init (p);
        (*progress_p) [(*n_p)++] = p;
        const engine_kind_t *kind = engine_kind (r->kind);
        p->hunt = strdup (v->hunt);
        p->rule = strdup (r->id);
        p->kind = strdup (kind->name);
        if (!p->hunt || !p->rule || !p->kind || kind->progress (v, r, rs, now_ms, p))
            goto fail;
    }
    return 0;
fail:
    trove_engine_progress_free (*progress_p, *n_p);
    *progress_p = NULL;
    *n_p = 0;
    return -1;
}

void
trove_engine_progress_free (Trove__Progress **progress, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (progress [i])
            trove__progress__free_unpacked (progress [i], NULL);
    free (progress);
}
