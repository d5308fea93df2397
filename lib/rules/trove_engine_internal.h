/*  trove_engine_internal - what the engine's files share: the rule kinds'
    interface and the occurrence key. Private: included only by
    lib/rules/trove_engine*.c (trove_engine.h is the public API).

    The engine is one class in three files:
      trove_engine.c        scoring, replay, undo, the memory store, derive,
                            the progress loop
      trove_engine_kinds.c  the rule kinds: each kind's step and progress
                            functions and the table engine_kinds
      trove_engine_arena.c  the arena every call's working state lives in
      trove_engine_codec.c  rule states read and written without protobuf-c
    Internal names carry their object: engine_* are shared between the
    files (declared here); trove_engine_kinds.c's own helpers are static
    and prefixed kind_*. */
#ifndef TROVE_ENGINE_INTERNAL_H_INCLUDED
#define TROVE_ENGINE_INTERNAL_H_INCLUDED

#include "trove_engine.h"

#include <assert.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Arena: everything one engine call decodes, creates or changes (states
//  unpacked through its protobuf-c allocator, rule states, refs, coins) is
//  bump-allocated here and let go of at once when the call ends. Nothing in
//  a working state is ever freed on its own: a replaced field is simply
//  left behind until the call ends. Per event that was dozens of mallocs
//  and frees, a third of the engine's time (bench-engine).

typedef struct _engine_chunk_t engine_chunk_t;

typedef struct {
    char *at, *end;          //  free space in the current chunk
    char *last;              //  the latest allocation (grows in place)
    engine_chunk_t *chunks;  //  heap chunks, freed by engine_arena_release
    ProtobufCAllocator pb;   //  the same arena as protobuf-c sees it
} engine_arena_t;

#define ENGINE_ALIGN (alignof (max_align_t))

//  An arena whose first chunk is the caller's (typically on its stack:
//  most calls never touch the heap).
void engine_arena_init (engine_arena_t *self, void *first, size_t size);
//  Free the heap chunks; the arena is unusable until init again.
void engine_arena_release (engine_arena_t *self);
//  A new chunk: NULL when out of memory.
void *engine_arena_alloc_slow (engine_arena_t *self, size_t size);

//  size bytes aligned for any type, or NULL when out of memory.
static inline void *
engine_alloc (engine_arena_t *self, size_t size)
{
    size = (size + ENGINE_ALIGN - 1) & ~(ENGINE_ALIGN - 1);
    if (size > (size_t) (self->end - self->at))
        return engine_arena_alloc_slow (self, size);
    void *p = self->at;
    self->at += size;
    self->last = p;
    return p;
}

//  ptr (old bytes, from this arena, or NULL) grown to size: in place when it
//  is the latest allocation, else copied. NULL when out of memory.
void *engine_realloc (engine_arena_t *self, void *ptr, size_t old, size_t size);
char *engine_strdup (engine_arena_t *self, const char *s);

//  --------------------------------------------------------------------------
//  Rule states read and written by hand (trove_engine_codec.c): the same
//  bytes and values as protobuf-c for the plain form the engine writes.

//  Decode a packed RuleState into the arena: 0, 1 when it is not in plain
//  form (nothing usable: ask protobuf-c), -1 out of memory.
int engine_rule_state_decode (engine_arena_t *a, const uint8_t *at, size_t len, Trove__RuleState **rs_p);
//  Can the writer below pack it (no unknown fields kept anywhere in it)?
bool engine_rule_state_plain (const Trove__RuleState *rs);
//  What protobuf-c's get_packed_size and pack give for a plain state.
size_t engine_rule_state_size (const Trove__RuleState *rs);
size_t engine_rule_state_pack (const Trove__RuleState *rs, uint8_t *out);

//  An event as a BufferedEvent (its unknown fields left out), the bytes
//  protobuf-c packs; only for an event engine_event_plain accepts.
bool engine_event_plain (const Trove__Event *ev);
size_t engine_buffered_size (const Trove__Event *ev, int64_t accepted_us);
size_t engine_buffered_pack (const Trove__Event *ev, int64_t accepted_us, uint8_t *out);
//  Decode a packed BufferedEvent into the arena: 0, 1 when it is not in
//  plain form (ask protobuf-c), -1 out of memory.
int engine_buffered_decode (engine_arena_t *a, const uint8_t *at, size_t len, Trove__BufferedEvent **b_p);

#define OCC_MAX 600

//  Occurrence key "a" NUL "b" [NUL "c"] into buf; returns its length.
//  Inline and without printf: it is made for every coin.
static inline size_t
engine_occ (char *buf, const char *a, const char *b, const char *c)
{
    size_t la = strlen (a), lb = strlen (b), lc = c ? strlen (c) : 0;
    if (la + lb + lc + 2 < OCC_MAX) {
        memcpy (buf, a, la + 1);
        memcpy (buf + la + 1, b, lb + 1);
        if (c)
            memcpy (buf + la + lb + 2, c, lc + 1);
        return la + 1 + lb + (c ? 1 + lc : 0);
    }
    size_t n = (size_t) snprintf (buf, OCC_MAX, "%s", a) + 1;
    n += (size_t) snprintf (buf + n, OCC_MAX - n, "%s", b);
    if (c) {
        n++;
        n += (size_t) snprintf (buf + n, OCC_MAX - n, "%s", c);
    }
    return n;
}

//  What a rule kind's step sees of the event being applied.
typedef struct {
    const char *user;
    const trove_hunt_t *v;
    const trove_rule_t *r;
    const Trove__Event *ev;
    int64_t accepted_us;
    Trove__EventRef **self_refs;  //  the event itself, as one reference
    engine_arena_t *arena;        //  where the rule state and the coin are made
} engine_step_t;

//  A rule kind's step: apply s->ev to the rule state rs. Sets *coin_p to the
//  coin the event earns (left NULL when it earns none), made in s->arena.
//  Returns 0, or -1 when out of memory (rs may then hold a partial update;
//  the caller drops the whole state).
typedef int (engine_step_fn) (const engine_step_t *s, Trove__RuleState *rs, Trove__Coin **coin_p);

//  Progress of one rule kind: fills p's need/have/done/period from rs (NULL
//  when the user has no state for the rule). Returns 0 or -1 (out of memory).
typedef int (engine_progress_fn) (const trove_hunt_t *v, const trove_rule_t *r, const Trove__RuleState *rs,
                                  int64_t now_ms, Trove__Progress *p);

//  One rule kind; engine_kinds has one row per trove_kind_t.
typedef struct {
    const char *name;              //  as in the hunt file and in progress answers
    bool own_match;                //  matches events itself (its steps), not r->match
    engine_step_fn *step;          //  apply one event
    engine_progress_fn *progress;  //  where a user stands
} engine_kind_t;

extern const engine_kind_t engine_kinds [];

//  Inline: called per rule per event.
static inline const engine_kind_t *
engine_kind (trove_kind_t kind)
{
    assert (kind >= TROVE_KIND_EACH && kind <= TROVE_KIND_STREAK);
    return &engine_kinds [kind];
}

//  A protobuf varint: its size, and written at p (returns the byte after it).
//  Shared by the engine's writers of packed states and its codecs.
static inline size_t
engine_varint_size (uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

static inline uint8_t *
engine_put_varint (uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t) v;
    return p;
}

#endif
