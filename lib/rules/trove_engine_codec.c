/*  trove_engine_codec - rule states (RuleState, with its EventRef and
    SeqPartial) read and written by hand. See trove_engine_internal.h.

    Every event decodes the rule states of the rules it matches and writes
    them back; through protobuf-c's descriptor walk that was a fifth of the
    engine's time (bench-engine). These functions give exactly what
    protobuf-c gives for the plain form the engine writes: fields in number
    order, proto3 defaults (0, false, "") left out, `seen` packed, the last
    of a repeated scalar winning on reading, strings NUL-terminated copies.
    Anything else (an unknown field, another wire type, a varint out of
    range, unknown fields kept in a message) is left to protobuf-c: the
    decoder answers "not plain" and the writer is not asked (the caller
    checks engine_rule_state_plain). */
#include "trove_engine_internal.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  Reading

typedef struct {
    const uint8_t *p, *end;
} s_reader_t;

//  A varint: 0, or -1 when malformed (over 10 bytes or cut short).
static int
s_varint (s_reader_t *r, uint64_t *value)
{
    if (r->p < r->end && !(*r->p & 0x80)) {
        *value = *r->p++;  //  one byte: tags, lengths and flags nearly always
        return 0;
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return -1;
        v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

//  The next field: its number and wire type; a varint's value in *value,
//  a length-delimited or fixed64 field's bytes in *data/*value (its
//  length). fixed32 is not plain in these messages. 0, or -1.
static int
s_next (s_reader_t *r, uint32_t *number, unsigned *wire, const uint8_t **data, uint64_t *value)
{
    uint64_t tag;
    if (s_varint (r, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
        return -1;
    *number = (uint32_t) (tag >> 3);
    *wire = (unsigned) (tag & 7);
    if (*wire == 0)
        return s_varint (r, value);
    if (*wire == 1) {
        //  fixed64 (a double): its 8 bytes in *data
        if (r->end - r->p < 8)
            return -1;
        *data = r->p;
        *value = 8;
        r->p += 8;
        return 0;
    }
    if (*wire != 2 || s_varint (r, value) || *value > (uint64_t) (r->end - r->p))
        return -1;
    *data = r->p;
    r->p += *value;
    return 0;
}

static char *
s_str (engine_arena_t *a, const uint8_t *data, uint64_t len)
{
    char *s = engine_alloc (a, (size_t) len + 1);
    if (s) {
        memcpy (s, data, (size_t) len);
        s [len] = 0;
    }
    return s;
}

//  An EventRef: 0, 1 not plain, -1 out of memory.
static int
s_ref_decode (engine_arena_t *a, const uint8_t *at, uint64_t len, Trove__EventRef **ref_p)
{
    Trove__EventRef *ref = engine_alloc (a, sizeof *ref);
    if (!ref)
        return -1;
    trove__event_ref__init (ref);
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value) || wire != 2 || (number != 1 && number != 2))
            return 1;
        char *s = s_str (a, data, value);
        if (!s)
            return -1;
        if (number == 1)
            ref->source = s;
        else
            ref->id = s;
    }
    *ref_p = ref;
    return 0;
}

//  Count the refs (field `field`, length-delimited) of a message's bytes.
static int
s_count (const uint8_t *at, uint64_t len, uint32_t field, size_t *n)
{
    s_reader_t r = {at, at + len};
    *n = 0;
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return -1;
        if (number == field && wire == 2)
            (*n)++;
    }
    return 0;
}

//  A SeqPartial: 0, 1 not plain, -1 out of memory.
static int
s_partial_decode (engine_arena_t *a, const uint8_t *at, uint64_t len, Trove__SeqPartial **sp_p)
{
    Trove__SeqPartial *sp = engine_alloc (a, sizeof *sp);
    if (!sp)
        return -1;
    trove__seq_partial__init (sp);
    size_t nrefs;
    if (s_count (at, len, 3, &nrefs))
        return 1;
    if (nrefs && !(sp->refs = engine_alloc (a, nrefs * sizeof *sp->refs)))
        return -1;
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        if (number == 1 && wire == 0)
            sp->set = value != 0;
        else if (number == 2 && wire == 0)
            sp->start_ts = (int64_t) value;
        else if (number == 3 && wire == 2) {
            int rc = s_ref_decode (a, data, value, &sp->refs [sp->n_refs]);
            if (rc)
                return rc;
            sp->n_refs++;
        }
        else
            return 1;
    }
    *sp_p = sp;
    return 0;
}

int
engine_rule_state_decode (engine_arena_t *a, const uint8_t *at, size_t len, Trove__RuleState **rs_p)
{
    Trove__RuleState *rs = engine_alloc (a, sizeof *rs);
    if (!rs)
        return -1;
    trove__rule_state__init (rs);
    //  First the repeated fields' sizes, so that each is one array.
    size_t nseen = 0, nrefs = 0, npartials = 0;
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        if (number == 8 && wire == 2) {
            if (value % 8)
                return 1;
            nseen += (size_t) value / 8;
        }
        else if (number == 9 && wire == 2)
            nrefs++;
        else if (number == 12 && wire == 2)
            npartials++;
    }
    if ((nseen && !(rs->seen = engine_alloc (a, nseen * sizeof *rs->seen)))
        || (nrefs && !(rs->refs = engine_alloc (a, nrefs * sizeof *rs->refs)))
        || (npartials && !(rs->partials = engine_alloc (a, npartials * sizeof *rs->partials))))
        return -1;
    r = (s_reader_t){at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        int rc = 0;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        bool u32 = number == 2 || number == 4 || number == 7;
        if (u32 && value > UINT32_MAX)
            return 1;
        if (wire != (number == 1 || number == 8 || number == 9 || number == 12 ? 2u : 0u))
            return 1;
        switch (number) {
            case 1:
                if (!(rs->rule = s_str (a, data, value)))
                    return -1;
                break;
            case 2:
                rs->kind = (uint32_t) value;
                break;
            case 3:
                rs->period = (int64_t) value;
                break;
            case 4:
                rs->used = (uint32_t) value;
                break;
            case 5:
                rs->awarded = value != 0;
                break;
            case 6:
                rs->last_award_ts = (int64_t) value;
                break;
            case 7:
                rs->done = (uint32_t) value;
                break;
            case 8:
                for (uint64_t k = 0; k < value; k += 8) {
                    uint64_t v = 0;
                    for (int b = 7; b >= 0; b--)
                        v = (v << 8) | data [k + (uint64_t) b];
                    rs->seen [rs->n_seen++] = v;
                }
                break;
            case 9:
                if ((rc = s_ref_decode (a, data, value, &rs->refs [rs->n_refs])))
                    return rc;
                rs->n_refs++;
                break;
            case 10:
                rs->active = value != 0;
                break;
            case 11:
                rs->last_day = (int64_t) value;
                break;
            case 12:
                if ((rc = s_partial_decode (a, data, value, &rs->partials [rs->n_partials])))
                    return rc;
                rs->n_partials++;
                break;
            default:
                return 1;
        }
    }
    *rs_p = rs;
    return 0;
}

//  --------------------------------------------------------------------------
//  Writing: a sizing function and a packing one per message, as protobuf-c

//  A proto3 scalar field (left out when 0).
static size_t
s_scalar_size (uint64_t v)
{
    return v ? 1 + engine_varint_size (v) : 0;
}

static uint8_t *
s_put_scalar (uint8_t *p, uint8_t tag, uint64_t v)
{
    if (v) {
        *p++ = tag;
        p = engine_put_varint (p, v);
    }
    return p;
}

//  A proto3 string field (left out when empty).
static size_t
s_string_size (const char *s)
{
    size_t n = s ? strlen (s) : 0;
    return n ? 1 + engine_varint_size (n) + n : 0;
}

static uint8_t *
s_put_string (uint8_t *p, uint8_t tag, const char *s)
{
    size_t n = s ? strlen (s) : 0;
    if (n) {
        *p++ = tag;
        p = engine_put_varint (p, n);
        memcpy (p, s, n);
        p += n;
    }
    return p;
}

static size_t
s_ref_size (const Trove__EventRef *ref)
{
    return s_string_size (ref->source) + s_string_size (ref->id);
}

static uint8_t *
s_put_refs (uint8_t *p, uint8_t tag, Trove__EventRef *const *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *p++ = tag;
        p = engine_put_varint (p, s_ref_size (refs [i]));
        p = s_put_string (p, 0x0a, refs [i]->source);
        p = s_put_string (p, 0x12, refs [i]->id);
    }
    return p;
}

static size_t
s_refs_size (Trove__EventRef *const *refs, size_t n)
{
    size_t size = 0;
    for (size_t i = 0; i < n; i++) {
        size_t one = s_ref_size (refs [i]);
        size += 1 + engine_varint_size (one) + one;
    }
    return size;
}

static size_t
s_partial_size (const Trove__SeqPartial *sp)
{
    return (sp->set ? 2 : 0) + s_scalar_size ((uint64_t) sp->start_ts) + s_refs_size (sp->refs, sp->n_refs);
}

static bool
s_refs_plain (Trove__EventRef *const *refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (refs [i]->base.n_unknown_fields)
            return false;
    return true;
}

bool
engine_rule_state_plain (const Trove__RuleState *rs)
{
    if (rs->base.n_unknown_fields || !s_refs_plain (rs->refs, rs->n_refs))
        return false;
    for (size_t i = 0; i < rs->n_partials; i++)
        if (rs->partials [i]->base.n_unknown_fields
            || !s_refs_plain (rs->partials [i]->refs, rs->partials [i]->n_refs))
            return false;
    return true;
}

size_t
engine_rule_state_size (const Trove__RuleState *rs)
{
    size_t size = s_string_size (rs->rule) + s_scalar_size (rs->kind) + s_scalar_size ((uint64_t) rs->period)
                + s_scalar_size (rs->used) + (rs->awarded ? 2 : 0)
                + s_scalar_size ((uint64_t) rs->last_award_ts) + s_scalar_size (rs->done)
                + (rs->n_seen ? 1 + engine_varint_size (8 * rs->n_seen) + 8 * rs->n_seen : 0)
                + s_refs_size (rs->refs, rs->n_refs) + (rs->active ? 2 : 0)
                + s_scalar_size ((uint64_t) rs->last_day);
    for (size_t i = 0; i < rs->n_partials; i++) {
        size_t one = s_partial_size (rs->partials [i]);
        size += 1 + engine_varint_size (one) + one;
    }
    return size;
}

size_t
engine_rule_state_pack (const Trove__RuleState *rs, uint8_t *out)
{
    uint8_t *p = out;
    p = s_put_string (p, 0x0a, rs->rule);
    p = s_put_scalar (p, 0x10, rs->kind);
    p = s_put_scalar (p, 0x18, (uint64_t) rs->period);
    p = s_put_scalar (p, 0x20, rs->used);
    if (rs->awarded)
        *p++ = 0x28, *p++ = 1;
    p = s_put_scalar (p, 0x30, (uint64_t) rs->last_award_ts);
    p = s_put_scalar (p, 0x38, rs->done);
    if (rs->n_seen) {
        *p++ = 0x42;
        p = engine_put_varint (p, 8 * rs->n_seen);
        for (size_t i = 0; i < rs->n_seen; i++)
            for (int b = 0; b < 8; b++)
                *p++ = (uint8_t) (rs->seen [i] >> (8 * b));
    }
    p = s_put_refs (p, 0x4a, rs->refs, rs->n_refs);
    if (rs->active)
        *p++ = 0x50, *p++ = 1;
    p = s_put_scalar (p, 0x58, (uint64_t) rs->last_day);
    for (size_t i = 0; i < rs->n_partials; i++) {
        const Trove__SeqPartial *sp = rs->partials [i];
        *p++ = 0x62;
        p = engine_put_varint (p, s_partial_size (sp));
        if (sp->set)
            *p++ = 0x08, *p++ = 1;
        p = s_put_scalar (p, 0x10, (uint64_t) sp->start_ts);
        p = s_put_refs (p, 0x1a, sp->refs, sp->n_refs);
    }
    return (size_t) (p - out);
}

//  --------------------------------------------------------------------------
//  A buffered event (BufferedEvent of the event as s_event_copy views it:
//  its unknown fields left out), written as protobuf-c writes it: what
//  every in-order event appends to its states' buffers.

static size_t
s_attr_size (const Trove__Attr *a)
{
    size_t size = s_string_size (a->key);
    //  A oneof member is written even when 0 or false (protobuf-c).
    if (a->value_case == TROVE__ATTR__VALUE_S) {
        size_t n = strlen (a->s);
        size += 1 + engine_varint_size (n) + n;
    }
    else if (a->value_case == TROVE__ATTR__VALUE_N)
        size += 9;
    else if (a->value_case == TROVE__ATTR__VALUE_B)
        size += 2;
    return size;
}

static size_t
s_event_size (const Trove__Event *ev)
{
    size_t size = s_string_size (ev->source) + s_string_size (ev->id) + s_string_size (ev->user)
                + s_string_size (ev->type) + s_scalar_size ((uint64_t) ev->ts_ms);
    for (size_t i = 0; i < ev->n_attrs; i++) {
        size_t one = s_attr_size (ev->attrs [i]);
        size += 1 + engine_varint_size (one) + one;
    }
    return size;
}

bool
engine_event_plain (const Trove__Event *ev)
{
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const Trove__Attr *a = ev->attrs [i];
        //  protobuf-c leaves out a oneof string that is its default (""
        //  itself, not an empty copy): not told apart here.
        if (a->base.n_unknown_fields || (a->value_case == TROVE__ATTR__VALUE_S && (!a->s || !*a->s))
            || (a->value_case != TROVE__ATTR__VALUE_S && a->value_case != TROVE__ATTR__VALUE_N
                && a->value_case != TROVE__ATTR__VALUE_B && a->value_case != TROVE__ATTR__VALUE__NOT_SET))
            return false;
    }
    return true;
}

size_t
engine_buffered_size (const Trove__Event *ev, int64_t accepted_us)
{
    size_t one = s_event_size (ev);
    return 1 + engine_varint_size (one) + one + s_scalar_size ((uint64_t) accepted_us);
}

size_t
engine_buffered_pack (const Trove__Event *ev, int64_t accepted_us, uint8_t *out)
{
    uint8_t *p = out;
    *p++ = 0x0a;
    p = engine_put_varint (p, s_event_size (ev));
    p = s_put_string (p, 0x0a, ev->source);
    p = s_put_string (p, 0x12, ev->id);
    p = s_put_string (p, 0x1a, ev->user);
    p = s_put_string (p, 0x22, ev->type);
    p = s_put_scalar (p, 0x28, (uint64_t) ev->ts_ms);
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const Trove__Attr *a = ev->attrs [i];
        *p++ = 0x32;
        p = engine_put_varint (p, s_attr_size (a));
        p = s_put_string (p, 0x0a, a->key);
        if (a->value_case == TROVE__ATTR__VALUE_S) {
            size_t n = strlen (a->s);
            *p++ = 0x12;
            p = engine_put_varint (p, n);
            memcpy (p, a->s, n);
            p += n;
        }
        else if (a->value_case == TROVE__ATTR__VALUE_N) {
            uint64_t bits;
            memcpy (&bits, &a->n, sizeof bits);
            *p++ = 0x19;
            for (int b = 0; b < 8; b++)
                *p++ = (uint8_t) (bits >> (8 * b));
        }
        else if (a->value_case == TROVE__ATTR__VALUE_B)
            *p++ = 0x20, *p++ = a->b ? 1 : 0;
    }
    p = s_put_scalar (p, 0x10, (uint64_t) accepted_us);
    return (size_t) (p - out);
}

//  An Attr: 0, 1 not plain, -1 out of memory. Of the oneof the last member
//  wins, as protobuf-c reads it.
static int
s_attr_decode (engine_arena_t *a, const uint8_t *at, uint64_t len, Trove__Attr **attr_p)
{
    Trove__Attr *attr = engine_alloc (a, sizeof *attr);
    if (!attr)
        return -1;
    trove__attr__init (attr);
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        if ((number == 1 || number == 2) && wire == 2) {
            char *str = s_str (a, data, value);
            if (!str)
                return -1;
            if (number == 1)
                attr->key = str;
            else {
                attr->value_case = TROVE__ATTR__VALUE_S;
                attr->s = str;
            }
        }
        else if (number == 3 && wire == 1) {
            uint64_t bits = 0;
            for (int b = 7; b >= 0; b--)
                bits = (bits << 8) | data [b];
            attr->value_case = TROVE__ATTR__VALUE_N;
            memcpy (&attr->n, &bits, sizeof attr->n);
        }
        else if (number == 4 && wire == 0) {
            attr->value_case = TROVE__ATTR__VALUE_B;
            attr->b = value != 0;
        }
        else
            return 1;
    }
    *attr_p = attr;
    return 0;
}

//  An Event: 0, 1 not plain, -1 out of memory.
static int
s_event_decode (engine_arena_t *a, const uint8_t *at, uint64_t len, Trove__Event **ev_p)
{
    Trove__Event *ev = engine_alloc (a, sizeof *ev);
    if (!ev)
        return -1;
    trove__event__init (ev);
    size_t nattrs;
    if (s_count (at, len, 6, &nattrs))
        return 1;
    if (nattrs && !(ev->attrs = engine_alloc (a, nattrs * sizeof *ev->attrs)))
        return -1;
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        if (number >= 1 && number <= 4 && wire == 2) {
            char *str = s_str (a, data, value);
            if (!str)
                return -1;
            char **field = number == 1 ? &ev->source
                         : number == 2 ? &ev->id
                         : number == 3 ? &ev->user
                                       : &ev->type;
            *field = str;
        }
        else if (number == 5 && wire == 0)
            ev->ts_ms = (int64_t) value;
        else if (number == 6 && wire == 2) {
            int rc = s_attr_decode (a, data, value, &ev->attrs [ev->n_attrs]);
            if (rc)
                return rc;
            ev->n_attrs++;
        }
        else
            return 1;
    }
    *ev_p = ev;
    return 0;
}

int
engine_buffered_decode (engine_arena_t *a, const uint8_t *at, size_t len, Trove__BufferedEvent **b_p)
{
    Trove__BufferedEvent *b = engine_alloc (a, sizeof *b);
    if (!b)
        return -1;
    trove__buffered_event__init (b);
    s_reader_t r = {at, at + len};
    while (r.p < r.end) {
        uint32_t number;
        unsigned wire;
        const uint8_t *data;
        uint64_t value;
        if (s_next (&r, &number, &wire, &data, &value))
            return 1;
        if (number == 1 && wire == 2 && !b->event) {
            //  (a second event field would merge into the first: protobuf-c)
            int rc = s_event_decode (a, data, value, &b->event);
            if (rc)
                return rc;
        }
        else if (number == 2 && wire == 0)
            b->accepted_us = (int64_t) value;
        else
            return 1;
    }
    *b_p = b;
    return 0;
}
