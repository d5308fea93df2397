/*  trove_engine_kinds - the rule kinds: each kind's step (apply one event
    to its rule state) and progress (where a user stands), and the table
    engine_kinds that the engine dispatches by. See trove_engine_internal.h.

    Rule states are unpacked protobuf in the call's arena (see
    trove_engine_internal.h): a field is replaced with a new value made in
    s->arena, never freed. */
#include "trove_engine_internal.h"
#include "trove_mutant.h"
#include "trove_error.h"
#include "trove_hash.h"
#include "trove_tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Trove__EventRef *
kind_ref_new (engine_arena_t *a, const char *source, const char *id)
{
    Trove__EventRef *r = engine_alloc (a, sizeof *r);
    if (!r)
        return NULL;
    trove__event_ref__init (r);
    r->source = engine_strdup (a, source);
    r->id = engine_strdup (a, id);
    return r->source && r->id ? r : NULL;
}

//  Append a ref to an array of refs.
static int
kind_refs_push (engine_arena_t *a, Trove__EventRef ***refs, size_t *n, const char *source, const char *id)
{
    Trove__EventRef **v = engine_realloc (a, *refs, *n * sizeof *v, (*n + 1) * sizeof *v);
    if (!v)
        return -1;
    *refs = v;
    if (!(v [*n] = kind_ref_new (a, source, id)))
        return -1;
    (*n)++;
    return 0;
}

static void
kind_refs_clear (Trove__EventRef ***refs, size_t *n)
{
    *refs = NULL;
    *n = 0;
}

//  dst becomes a copy of src. The refs themselves are never changed once
//  made, so they are shared, not copied.
static int
kind_refs_copy (engine_arena_t *a, Trove__EventRef ***dst, size_t *ndst, Trove__EventRef *const *src,
                size_t nsrc)
{
    kind_refs_clear (dst, ndst);
    if (!nsrc)
        return 0;
    Trove__EventRef **v = engine_alloc (a, nsrc * sizeof *v);
    if (!v)
        return -1;
    memcpy (v, src, nsrc * sizeof *v);
    *dst = v;
    *ndst = nsrc;
    return 0;
}

//  A new coin (id computed from the occurrence key), in the arena.
static Trove__Coin *
kind_coin_new (engine_arena_t *a, const char *user, const trove_hunt_t *v, const trove_rule_t *r,
               const void *occ, size_t occ_len, Trove__EventRef *const *refs, size_t nrefs,
               const Trove__Event *ev, int64_t accepted_us)
{
    Trove__Coin *c = engine_alloc (a, sizeof *c);
    if (!c)
        return NULL;
    trove__coin__init (c);
    if (!(c->id = engine_alloc (a, TROVE_COIN_ID_LEN + 1)))
        return NULL;
    trove_hash_coin_id (v->hunt, r->id, user, occ, occ_len, c->id);
    //  Borrowed: the coin lives no longer than the call, the rules and
    //  the event outlive it.
    c->user = (char *) user;
    c->hunt = v->hunt;
    c->rule = r->id;
    c->reason = (char *) trove_strerror (TROVE_REASON_SCORED);
    c->rule_version = v->version;
    c->value = r->coins;
    c->event_ts_ms = ev->ts_ms;
    c->local_day = (int32_t) trove_tz_day (v->tz, ev->ts_ms);
    c->accepted_us = accepted_us;
    if (kind_refs_copy (a, &c->events, &c->n_events, refs, nrefs))
        return NULL;
    return c;
}

//  Period number of ts for a cap.
static int64_t
kind_period (const trove_hunt_t *v, trove_per_t per, int64_t ts)
{
    switch (per) {
        case TROVE_PER_DAY:
            if (TROVE_MUTANT (utc_day))  //  TEST-ONLY MUTANT (trove_mutant.h): UTC days
                return ts >= 0 ? ts / 86400000 : -((-ts + 86399999) / 86400000);
            return trove_tz_day (v->tz, ts);
        case TROVE_PER_WEEK:
            return trove_tz_week (v->tz, ts);
        case TROVE_PER_MONTH:
            return trove_tz_month (v->tz, ts);
        default:
            return 0;
    }
}

//  The text of period p for the occurrence key and progress (made only
//  when needed: an event that earns nothing does not pay for it).
static void
kind_period_text (trove_per_t per, int64_t p, char *text, size_t size)
{
    char date [32];
    switch (per) {
        case TROVE_PER_DAY:
            trove_tz_day_text (p, date, sizeof date);
            snprintf (text, size, "day:%s", date);
            break;
        case TROVE_PER_WEEK:
            trove_tz_day_text (p * 7 - 3, date, sizeof date);
            snprintf (text, size, "week:%s", date);
            break;
        case TROVE_PER_MONTH:
            trove_tz_month_text (p, date, sizeof date);
            snprintf (text, size, "month:%s", date);
            break;
        default:
            snprintf (text, size, "hunt");
            break;
    }
}

//  --------------------------------------------------------------------------
//  Rule kinds: one step function per kind, dispatched by engine_kinds

//  A new coin of s's rule, or -1 when out of memory.
static int
kind_award (const engine_step_t *s, const char *occ, size_t occ_len, Trove__EventRef *const *refs,
            size_t nrefs, Trove__Coin **coin_p)
{
    *coin_p = kind_coin_new (s->arena, s->user, s->v, s->r, occ, occ_len, refs, nrefs, s->ev, s->accepted_us);
    return *coin_p ? 0 : -1;
}

//  each: one coin per matching event, within its cooldown and its cap per
//  period.
static int
kind_each_step (const engine_step_t *s, Trove__RuleState *rs, Trove__Coin **coin_p)
{
    const trove_rule_t *r = s->r;
    const Trove__Event *ev = s->ev;
    char occ [OCC_MAX], num [24];
    size_t occ_len;
    if (r->cooldown_ms && rs->awarded && ev->ts_ms - rs->last_award_ts < r->cooldown_ms)
        return 0;
    if (r->cap_max) {
        int64_t p = kind_period (s->v, r->cap_per, ev->ts_ms);
        if (rs->used && p < rs->period)
            return 0;  //  a late event of a past period: its slots are unknown here
        if (rs->used && p != rs->period)
            rs->used = 0;
        rs->period = p;
        //  TEST-ONLY MUTANT (trove_mutant.h) cap_off_by_one: one award too many
        if (rs->used >= r->cap_max + (TROVE_MUTANT (cap_off_by_one) ? 1u : 0u))
            return 0;
        char ptext [64];
        kind_period_text (r->cap_per, p, ptext, sizeof ptext);
        snprintf (num, sizeof num, "%u", rs->used++);
        occ_len = engine_occ (occ, "cap", ptext, num);
    }
    else
        occ_len = engine_occ (occ, ev->source, ev->id, NULL);
    rs->awarded = true;
    rs->last_award_ts = ev->ts_ms;
    return kind_award (s, occ, occ_len, s->self_refs, 1, coin_p);
}

//  count: a coin every `count` matching events (or distinct values).
static int
kind_count_step (const engine_step_t *s, Trove__RuleState *rs, Trove__Coin **coin_p)
{
    const trove_rule_t *r = s->r;
    const Trove__Event *ev = s->ev;
    char occ [OCC_MAX], num [24];
    if (rs->done && !r->repeat)
        return 0;
    if (r->distinct) {
        char text [320];
        if (!trove_attr_text (ev, r->distinct, text, sizeof text))
            return 0;
        uint64_t h = trove_hash_fnv1a64 (text, strlen (text));
        bool seen = false;
        for (size_t k = 0; k < rs->n_seen && !seen; k++)
            seen = rs->seen [k] == h;
        if (seen)
            return 0;
        uint64_t *bigger = engine_realloc (s->arena, rs->seen, rs->n_seen * sizeof *bigger,
                                           (rs->n_seen + 1) * sizeof *bigger);
        if (!bigger)
            return -1;
        rs->seen = bigger;
        rs->seen [rs->n_seen++] = h;
    }
    if (kind_refs_push (s->arena, &rs->refs, &rs->n_refs, ev->source, ev->id))
        return -1;
    if (rs->n_refs < r->count)
        return 0;
    snprintf (num, sizeof num, "%u", ++rs->done);
    size_t occ_len = engine_occ (occ, "count", num, NULL);
    int rc = kind_award (s, occ, occ_len, rs->refs, rs->n_refs, coin_p);
    kind_refs_clear (&rs->refs, &rs->n_refs);
    //  Each award counts afresh: with repeat, the next needs `count`
    //  distinct values again (so `seen` stays below `count`).
    rs->seen = NULL;
    rs->n_seen = 0;
    return rc;
}

//  sequence: a coin when the steps match in order within `within`.
//  partials [j] holds the best match of steps 0..j so far.
static int
kind_sequence_step (const engine_step_t *s, Trove__RuleState *rs, Trove__Coin **coin_p)
{
    const trove_rule_t *r = s->r;
    const Trove__Event *ev = s->ev;
    char occ [OCC_MAX], num [24];
    if (rs->done && !r->repeat)
        return 0;
    size_t k = r->nsteps;
    while (rs->n_partials < k - 1) {
        Trove__SeqPartial **bigger = engine_realloc (s->arena, rs->partials, rs->n_partials * sizeof *bigger,
                                                     (rs->n_partials + 1) * sizeof *bigger);
        if (!bigger)
            return -1;
        rs->partials = bigger;
        Trove__SeqPartial *sp = engine_alloc (s->arena, sizeof *sp);
        if (!sp)
            return -1;
        trove__seq_partial__init (sp);
        rs->partials [rs->n_partials++] = sp;
    }
    for (size_t j = 0; j + 1 < k; j++) {
        Trove__SeqPartial *sp = rs->partials [j];
        if (sp->set && ev->ts_ms - sp->start_ts > r->within_ms) {
            sp->set = false;
            kind_refs_clear (&sp->refs, &sp->n_refs);
        }
    }
    //  Highest step first: one event advances a match by one step only.
    for (size_t j = k; j-- > 0;) {
        if (!trove_match (&r->steps [j], ev))
            continue;
        if (j == 0) {
            Trove__SeqPartial *sp = rs->partials [0];
            if (kind_refs_copy (s->arena, &sp->refs, &sp->n_refs, s->self_refs, 1))
                return -1;
            sp->set = true;
            sp->start_ts = ev->ts_ms;
            return 0;
        }
        Trove__SeqPartial *prev = rs->partials [j - 1];
        if (!prev->set || ev->ts_ms - prev->start_ts > r->within_ms)
            continue;
        if (j == k - 1) {
            if (kind_refs_push (s->arena, &prev->refs, &prev->n_refs, ev->source, ev->id))
                return -1;
            snprintf (num, sizeof num, "%u", ++rs->done);
            size_t occ_len = engine_occ (occ, "sequence", num, NULL);
            int rc = kind_award (s, occ, occ_len, prev->refs, prev->n_refs, coin_p);
            for (size_t q = 0; q < rs->n_partials; q++) {
                rs->partials [q]->set = false;
                kind_refs_clear (&rs->partials [q]->refs, &rs->partials [q]->n_refs);
            }
            return rc;
        }
        Trove__SeqPartial *sp = rs->partials [j];
        if (sp->set && sp->start_ts > prev->start_ts)
            continue;  //  the match already there started later: it has more time left
        if (kind_refs_copy (s->arena, &sp->refs, &sp->n_refs, prev->refs, prev->n_refs)
            || kind_refs_push (s->arena, &sp->refs, &sp->n_refs, ev->source, ev->id))
            return -1;
        sp->set = true;
        sp->start_ts = prev->start_ts;
        return 0;
    }
    return 0;
}

//  streak: a coin after `days` consecutive local days with a matching event.
static int
kind_streak_step (const engine_step_t *s, Trove__RuleState *rs, Trove__Coin **coin_p)
{
    const trove_rule_t *r = s->r;
    const Trove__Event *ev = s->ev;
    char occ [OCC_MAX], num [24];
    if (rs->done && !r->repeat)
        return 0;
    int64_t day = trove_tz_day (s->v->tz, ev->ts_ms);
    if (rs->active && day <= rs->last_day)
        return 0;  //  same day (or a late past day)
    if (!rs->active || day != rs->last_day + 1)
        kind_refs_clear (&rs->refs, &rs->n_refs);  //  broken: a new run
    if (kind_refs_push (s->arena, &rs->refs, &rs->n_refs, ev->source, ev->id))
        return -1;
    rs->active = true;
    rs->last_day = day;
    if (rs->n_refs < r->days)
        return 0;
    snprintf (num, sizeof num, "%u", ++rs->done);
    size_t occ_len = engine_occ (occ, "streak", num, NULL);
    int rc = kind_award (s, occ, occ_len, rs->refs, rs->n_refs, coin_p);
    kind_refs_clear (&rs->refs, &rs->n_refs);
    return rc;
}

//  --------------------------------------------------------------------------
//  Progress

static int
kind_each_progress (const trove_hunt_t *v, const trove_rule_t *r, const Trove__RuleState *rs, int64_t now_ms,
                    Trove__Progress *p)
{
    if (!r->cap_max)
        return 0;
    char period [40] = "";
    int64_t now_period = kind_period (v, r->cap_per, now_ms);
    kind_period_text (r->cap_per, now_period, period, sizeof period);
    p->need = r->cap_max;
    p->have = rs && rs->period == now_period ? rs->used : 0;
    p->left = p->have < p->need ? p->need - p->have : 0;
    return (p->period = strdup (period)) ? 0 : -1;
}

static int
kind_count_progress (const trove_hunt_t *v, const trove_rule_t *r, const Trove__RuleState *rs, int64_t now_ms,
                     Trove__Progress *p)
{
    (void) v;
    (void) now_ms;
    p->need = r->count;
    p->have = rs ? (uint32_t) (r->distinct ? rs->n_seen : rs->n_refs) : 0;
    p->done = rs ? rs->done : 0;
    return 0;
}

static int
kind_sequence_progress (const trove_hunt_t *v, const trove_rule_t *r, const Trove__RuleState *rs,
                        int64_t now_ms, Trove__Progress *p)
{
    (void) v;
    p->need = (uint32_t) r->nsteps;
    p->done = rs ? rs->done : 0;
    //  partials [j] holds a match of steps 0..j
    for (size_t j = 0; rs && j < rs->n_partials; j++)
        if (rs->partials [j]->set
            && (r->within_ms <= 0 || now_ms - rs->partials [j]->start_ts <= r->within_ms))
            p->have = (uint32_t) j + 1;
    return 0;
}

static int
kind_streak_progress (const trove_hunt_t *v, const trove_rule_t *r, const Trove__RuleState *rs,
                      int64_t now_ms, Trove__Progress *p)
{
    p->need = r->days;
    p->done = rs ? rs->done : 0;
    //  Alive while its last day is today or yesterday (local).
    int64_t today = trove_tz_day (v->tz, now_ms);
    if (rs && rs->active && rs->last_day >= today - 1)
        p->have = (uint32_t) rs->n_refs;
    return 0;
}

//  One row per rule kind (trove_kind_t): adding a kind is adding a row here,
//  its keys in trove_rules.c and its state fields in proto/trove.proto.
const engine_kind_t engine_kinds [] = {
    [TROVE_KIND_EACH] = {"each", false, kind_each_step, kind_each_progress},
    [TROVE_KIND_COUNT] = {"count", false, kind_count_step, kind_count_progress},
    [TROVE_KIND_SEQUENCE] = {"sequence", true, kind_sequence_step, kind_sequence_progress},
    [TROVE_KIND_STREAK] = {"streak", false, kind_streak_step, kind_streak_progress},
};
