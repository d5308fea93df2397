/*  trove_engine_internal - what the engine's files share: the rule kinds'
    interface and the occurrence key. Private: included only by
    lib/rules/trove_engine*.c (trove_engine.h is the public API).

    The engine is one class in two files:
      trove_engine.c        scoring, replay, undo, the memory store, derive,
                            the progress loop
      trove_engine_kinds.c  the rule kinds: each kind's step and progress
                            functions and the table engine_kinds
    Internal names carry their object: engine_* are shared between the
    files (declared here); trove_engine_kinds.c's own helpers are static
    and prefixed kind_*. */
#ifndef TROVE_ENGINE_INTERNAL_H_INCLUDED
#define TROVE_ENGINE_INTERNAL_H_INCLUDED

#include "trove_engine.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define OCC_MAX 600

//  Occurrence key "a" NUL "b" [NUL "c"] into buf; returns its length.
static inline size_t
engine_occ (char *buf, const char *a, const char *b, const char *c)
{
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
} engine_step_t;

//  A rule kind's step: apply s->ev to the rule state rs. Sets *coin_p to the
//  coin the event earns (left NULL when it earns none). Returns 0, or -1
//  when out of memory (rs may then hold a partial update; the caller drops
//  the whole state).
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

#endif
