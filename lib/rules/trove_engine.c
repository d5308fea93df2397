/*  trove_engine - per-user rule state, event time, undo. See trove_engine.h;
    the rule kinds are in trove_engine_kinds.c (trove_engine_internal.h).

    Working state is the unpacked protobuf (HuntState) itself: everything in
    it is malloc'd (protobuf-c's default allocator), so fields are replaced
    with malloc'd copies and trove__hunt_state__free_unpacked frees it all. */
#include "trove_engine_internal.h"
#include "trove_error.h"
#include "trove_statecache.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_tz.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A growing list of owned coins.
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
    trove_statecache_t *cache;  //  decoded states kept between calls, or NULL
} s_ctx_t;

static void
s_coins_clear (s_coins_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        trove__coin__free_unpacked (c->v [i], NULL);
    free (c->v);
    memset (c, 0, sizeof *c);
}

static int
s_coins_push (s_coins_t *c, Trove__Coin *coin)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        Trove__Coin **v = realloc (c->v, cap * sizeof *v);
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
//  Rule state

//  A list of rule states: a state's checkpoint or its head.
typedef struct {
    Trove__RuleState ***v;
    size_t *n;
} s_states_t;

static s_states_t
s_checkpoint_of (Trove__HuntState *hs)
{
    return (s_states_t){&hs->rules, &hs->n_rules};
}

static s_states_t
s_head_of (Trove__HuntState *hs)
{
    return (s_states_t){&hs->head, &hs->n_head};
}

//  The state of rule r in hs, created (or reset when the rule changed kind).
static Trove__RuleState *
s_rule_state (s_states_t *st, const trove_rule_t *r)
{
    for (size_t i = 0; i < *st->n; i++) {
        Trove__RuleState *rs = (*st->v) [i];
        if (strcmp (rs->rule, r->id) == 0) {
            if (rs->kind == (uint32_t) r->kind)
                return rs;
            trove__rule_state__free_unpacked (rs, NULL);
            (*st->v) [i] = (*st->v) [--*st->n];
            break;
        }
    }
    Trove__RuleState **v = realloc (*st->v, (*st->n + 1) * sizeof *v);
    if (!v)
        return NULL;
    *st->v = v;
    Trove__RuleState *rs = malloc (sizeof *rs);
    if (!rs)
        return NULL;
    trove__rule_state__init (rs);
    rs->kind = (uint32_t) r->kind;
    if (!(rs->rule = strdup (r->id))) {
        free (rs);
        return NULL;
    }
    (*st->v) [(*st->n)++] = rs;
    return rs;
}

//  Apply one event to the rule states of hs under version v; the coins it
//  earns are appended to out. Returns 0 or -1 (out of memory).
static int
s_process (const char *user, s_states_t st, const trove_hunt_t *v, const Trove__Event *ev,
           int64_t accepted_us, s_coins_t *out)
{
    Trove__EventRef self_ref = TROVE__EVENT_REF__INIT;
    self_ref.source = ev->source;
    self_ref.id = ev->id;
    Trove__EventRef *self_refs [1] = {&self_ref};
    engine_step_t step = {user, v, NULL, ev, accepted_us, self_refs};
    for (size_t i = 0; i < v->nrules; i++) {
        const trove_rule_t *r = &v->rules [i];
        if (!trove_rule_stateful (r))
            continue;
        const engine_kind_t *kind = engine_kind (r->kind);
        if (!kind->own_match && !trove_match (&r->match, ev))
            continue;
        Trove__RuleState *rs = s_rule_state (&st, r);
        if (!rs)
            return -1;
        Trove__Coin *coin = NULL;
        step.r = r;
        if (kind->step (&step, rs, &coin))
            return -1;
        if (coin && s_coins_push (out, coin)) {
            trove__coin__free_unpacked (coin, NULL);
            return -1;
        }
    }
    return 0;
}

//  Does the event match a stateful rule of v (so it belongs in the buffer)?
static bool
s_matches_stateful (const trove_hunt_t *v, const Trove__Event *ev)
{
    for (size_t i = 0; i < v->nrules; i++) {
        const trove_rule_t *r = &v->rules [i];
        if (!trove_rule_stateful (r))
            continue;
        if (r->kind == TROVE_KIND_SEQUENCE) {
            for (size_t j = 0; j < r->nsteps; j++)
                if (trove_match (&r->steps [j], ev))
                    return true;
        }
        else if (trove_match (&r->match, ev))
            return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Hunt state: load, replay, fold, save

static int
s_event_order (const Trove__Event *a, const Trove__Event *b)
{
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    int c = strcmp (a->source, b->source);
    return c ? c : strcmp (a->id, b->id);
}

//  The decoded form of a stored state: from the cache when it holds these
//  very bytes, else unpacked. NULL when unreadable or out of memory.
static Trove__HuntState *
s_state_decode (s_ctx_t *ctx, const char *hunt, const void *data, size_t size)
{
    Trove__HuntState *hs =
        ctx->cache ? trove_statecache_take (ctx->cache, ctx->user, hunt, data, size) : NULL;
    return hs ? hs : trove__hunt_state__unpack (NULL, size, data);
}

static Trove__HuntState *
s_state_load (s_ctx_t *ctx, const trove_store_t *store, const char *hunt, int *rc_p)
{
    const void *data;
    size_t size;
    int rc = store->get (store->arg, ctx->user, hunt, &data, &size);
    *rc_p = rc < 0 ? -1 : 0;
    if (rc < 0)
        return NULL;
    if (rc == 0) {
        Trove__HuntState *hs = s_state_decode (ctx, hunt, data, size);
        if (!hs)
            *rc_p = -1;  //  unreadable state: refuse rather than start over
        return hs;
    }
    Trove__HuntState *hs = malloc (sizeof *hs);
    if (hs) {
        trove__hunt_state__init (hs);
        if (!(hs->hunt = strdup (hunt))) {
            free (hs);
            hs = NULL;
        }
    }
    if (!hs)
        *rc_p = -1;
    return hs;
}

//  Store hs and let go of it: kept decoded in the call's cache with the
//  bytes just stored, or freed.
static int
s_state_save (s_ctx_t *ctx, const trove_store_t *store, Trove__HuntState *hs)
{
    size_t size = trove__hunt_state__get_packed_size (hs);
    uint8_t *buf = malloc (size ? size : 1);
    if (!buf) {
        trove__hunt_state__free_unpacked (hs, NULL);
        return -1;
    }
    trove__hunt_state__pack (hs, buf);
    int rc = store->put (store->arg, ctx->user, hs->hunt, buf, size);
    if (rc == 0 && ctx->cache) {
        trove_statecache_keep (ctx->cache, ctx->user, hs->hunt, hs, buf, size);
        return 0;
    }
    free (buf);
    trove__hunt_state__free_unpacked (hs, NULL);
    return rc;
}

//  A deep copy of the checkpoint (the rule states only).
static Trove__HuntState *
s_checkpoint_copy (const Trove__HuntState *hs)
{
    Trove__HuntState only = TROVE__HUNT_STATE__INIT;
    only.hunt = hs->hunt;
    only.n_rules = hs->n_rules;
    only.rules = hs->rules;
    size_t size = trove__hunt_state__get_packed_size (&only);
    uint8_t *buf = malloc (size ? size : 1);
    if (!buf)
        return NULL;
    trove__hunt_state__pack (&only, buf);
    Trove__HuntState *copy = trove__hunt_state__unpack (NULL, size, buf);
    free (buf);
    return copy;
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
s_replay (s_ctx_t *ctx, size_t h, Trove__HuntState *hs, const Trove__Event *trigger,
          const char *revoke_reason)
{
    Trove__HuntState *r = s_checkpoint_copy (hs);
    if (!r)
        return -1;
    s_coins_t fresh = {0};
    int rc = 0;
    for (size_t i = 0; i < hs->n_buffer && rc == 0; i++) {
        const Trove__Event *ev = hs->buffer [i]->event;
        const trove_hunt_t *v = trove_rules_effective (ctx->rules, h, ev->ts_ms);
        if (v)
            rc = s_process (ctx->user, s_checkpoint_of (r), v, ev, hs->buffer [i]->accepted_us, &fresh);
    }
    if (rc == 0) {
        //  What the replay ends with is the new head.
        for (size_t i = 0; i < hs->n_head; i++)
            trove__rule_state__free_unpacked (hs->head [i], NULL);
        free (hs->head);
        hs->head = r->rules;
        hs->n_head = r->n_rules;
        hs->has_head = true;
        r->rules = NULL;
        r->n_rules = 0;
    }
    trove__hunt_state__free_unpacked (r, NULL);
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
        for (size_t i = 0; i < hs->n_tail; i++)
            trove__coin__free_unpacked (hs->tail [i], NULL);
        free (hs->tail);
        hs->tail = fresh.v;
        hs->n_tail = fresh.n;
        fresh.v = NULL;
        fresh.n = 0;
    }
    s_coins_clear (&fresh);
    return rc;
}

//  Replace a string field of an unpacked message (its default is a shared
//  constant, never freed).
static int
s_set_string (char **field, const char *value)
{
    char *copy = strdup (value);
    if (!copy)
        return -1;
    if (*field && *field != protobuf_c_empty_string)
        free (*field);
    *field = copy;
    return 0;
}

//  Remember ev as the last event folded into the checkpoint.
static int
s_set_folded (Trove__HuntState *hs, const Trove__Event *ev)
{
    hs->has_folded = true;
    hs->folded_ts = ev->ts_ms;
    return s_set_string (&hs->folded_source, ev->source) || s_set_string (&hs->folded_id, ev->id) ? -1 : 0;
}

//  Can ev still be placed exactly in hs? Not when it orders before an event
//  already folded into the checkpoint: the checkpoint cannot be unwound.
static bool
s_too_late (const Trove__HuntState *hs, const Trove__Event *ev)
{
    if (hs->has_folded) {
        if (ev->ts_ms != hs->folded_ts)
            return ev->ts_ms < hs->folded_ts;
        int c = strcmp (ev->source, hs->folded_source);
        return (c ? c : strcmp (ev->id, hs->folded_id)) < 0;
    }
    //  A state written before folded positions were kept: whatever it has
    //  folded orders before its buffer (or at most at its newest ts).
    if (hs->n_rules == 0)
        return false;
    if (hs->n_buffer == 0)
        return ev->ts_ms <= hs->max_ts;
    return s_event_order (ev, hs->buffer [0]->event) < 0;
}

//  Fold events that can no longer move into the checkpoint; their coins
//  leave the tail (they are final).
static int
s_fold (s_ctx_t *ctx, size_t h, Trove__HuntState *hs, int64_t lateness_ms)
{
    size_t drop = 0;
    while (drop < hs->n_buffer
           && (hs->buffer [drop]->event->ts_ms < hs->max_ts - lateness_ms
               || hs->n_buffer - drop > TROVE_ENGINE_BUFFER_MAX)) {
        const Trove__Event *ev = hs->buffer [drop]->event;
        const trove_hunt_t *v = trove_rules_effective (ctx->rules, h, ev->ts_ms);
        s_coins_t coins = {0};
        if (v && s_process (ctx->user, s_checkpoint_of (hs), v, ev, hs->buffer [drop]->accepted_us, &coins)) {
            s_coins_clear (&coins);
            return -1;
        }
        for (size_t c = 0; c < coins.n; c++)
            for (size_t t = 0; t < hs->n_tail; t++)
                if (strcmp (hs->tail [t]->id, coins.v [c]->id) == 0) {
                    trove__coin__free_unpacked (hs->tail [t], NULL);
                    hs->tail [t] = hs->tail [--hs->n_tail];
                    break;
                }
        s_coins_clear (&coins);
        if (s_set_folded (hs, ev))
            return -1;
        trove__buffered_event__free_unpacked (hs->buffer [drop], NULL);
        drop++;
    }
    if (drop) {
        memmove (hs->buffer, hs->buffer + drop, (hs->n_buffer - drop) * sizeof *hs->buffer);
        hs->n_buffer -= drop;
    }
    return 0;
}

static int
s_buffer_insert (Trove__HuntState *hs, const Trove__Event *ev, int64_t accepted_us)
{
    Trove__BufferedEvent **v = realloc (hs->buffer, (hs->n_buffer + 1) * sizeof *v);
    if (!v)
        return -1;
    hs->buffer = v;
    Trove__BufferedEvent *b = malloc (sizeof *b);
    if (!b)
        return -1;
    trove__buffered_event__init (b);
    b->accepted_us = accepted_us;
    //  trove_event_dup's memory is all malloc'd: the state frees it with the rest.
    if (!(b->event = trove_event_dup (ev))) {
        free (b);
        return -1;
    }
    size_t at = hs->n_buffer;
    while (at > 0 && s_event_order (hs->buffer [at - 1]->event, ev) > 0)
        at--;
    memmove (hs->buffer + at + 1, hs->buffer + at, (hs->n_buffer - at) * sizeof *hs->buffer);
    hs->buffer [at] = b;
    hs->n_buffer++;
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

//  The stateful part of one hunt for one event, from the hunt's state hs
//  (taken: freed here). The caller checked that ev is not too late for it.
static int
s_score_stateful (s_ctx_t *ctx, const trove_store_t *store, size_t h, const trove_hunt_t *v,
                  const Trove__Event *ev, int64_t accepted_us, Trove__HuntState *hs)
{
    int rc = 0;
    bool fresh = hs->n_rules == 0 && hs->n_buffer == 0 && hs->max_ts == 0;
    if ((fresh || hs->has_head)
        && (hs->n_buffer == 0 || s_event_order (hs->buffer [hs->n_buffer - 1]->event, ev) < 0)) {
        //  In order (the common case): the buffer's replay would end in the
        //  head, so only this event is new. Append it and go on from there.
        rc = s_buffer_insert (hs, ev, accepted_us);
        s_coins_t coins = {0};
        if (rc == 0)
            rc = s_process (ctx->user, s_head_of (hs), v, ev, accepted_us, &coins);
        hs->has_head = true;
        if (rc == 0)
            rc = s_emit_all (ctx, &coins);
        for (size_t i = 0; i < coins.n && rc == 0; i++) {
            Trove__Coin **bigger = realloc (hs->tail, (hs->n_tail + 1) * sizeof *bigger);
            if (!bigger) {
                rc = -1;
                break;
            }
            hs->tail = bigger;
            hs->tail [hs->n_tail++] = coins.v [i];
            coins.v [i] = NULL;
        }
        for (size_t i = 0; i < coins.n; i++)
            if (coins.v [i])
                trove__coin__free_unpacked (coins.v [i], NULL);
        free (coins.v);
        if (ev->ts_ms > hs->max_ts || fresh)
            hs->max_ts = ev->ts_ms;
        if (rc == 0)
            rc = s_fold (ctx, h, hs, v->lateness_ms);
        if (rc == 0)
            return s_state_save (ctx, store, hs);
        trove__hunt_state__free_unpacked (hs, NULL);
        return rc;
    }
    else
        rc = s_buffer_insert (hs, ev, accepted_us);
    if (fresh || ev->ts_ms > hs->max_ts)
        hs->max_ts = ev->ts_ms;
    if (rc == 0)
        rc = s_replay (ctx, h, hs, ev, trove_strerror (TROVE_REASON_RESCORED));
    if (rc == 0)
        rc = s_fold (ctx, h, hs, v->lateness_ms);
    if (rc == 0)
        return s_state_save (ctx, store, hs);
    trove__hunt_state__free_unpacked (hs, NULL);
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
        Trove__HuntState *hs = s_state_decode (ctx, latest->hunt, data, size);
        if (!hs)
            return -1;
        int rc = 0;
        for (size_t i = 0; i < hs->n_buffer; i++) {
            const Trove__Event *b = hs->buffer [i]->event;
            if (strcmp (b->source, source) || strcmp (b->id, id))
                continue;
            trove__buffered_event__free_unpacked (hs->buffer [i], NULL);
            memmove (hs->buffer + i, hs->buffer + i + 1, (hs->n_buffer - i - 1) * sizeof *hs->buffer);
            hs->n_buffer--;
            rc = s_replay (ctx, h, hs, NULL, trove_strerror (TROVE_REASON_UNDO));
            if (rc == 0) {
                rc = s_state_save (ctx, store, hs);
                hs = NULL;
            }
            break;
        }
        if (hs)
            trove__hunt_state__free_unpacked (hs, NULL);
        if (rc)
            return -1;
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

//  trove_engine_score, with the caller's cache of decoded states (or NULL).
static int
s_score (const trove_rules_t *rules, const Trove__Event *ev, int64_t accepted_us, const trove_store_t *store,
         trove_change_fn *emit, void *arg, trove_statecache_t *cache)
{
    s_ctx_t ctx = {rules, ev->user, emit, arg, cache};
    const char *tsource, *tid;
    if (trove_engine_undo_target (ev, &tsource, &tid))
        return s_undo (&ctx, store, tsource, tid);
    if (trove_engine_unscored (ev))
        return 0;  //  validation refuses an undo without its target; never scored
    //  First every state the event would change: when it falls before what
    //  one of them has folded, nothing is changed and the caller re-derives
    //  the user (exact for any lateness). Each state is read once.
    size_t nh = trove_rules_hunts (rules);
    Trove__HuntState **states = calloc (nh ? nh : 1, sizeof *states);
    if (!states)
        return -1;
    int rc = 0;
    for (size_t h = 0; h < nh && rc == 0; h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, ev->ts_ms);
        if (!v || !v->stateful || !s_matches_stateful (v, ev))
            continue;
        int lrc;
        if (!(states [h] = s_state_load (&ctx, store, v->hunt, &lrc)))
            rc = -1;
        else if (s_too_late (states [h], ev))
            rc = 1;
    }
    for (size_t h = 0; h < nh && rc == 0; h++) {
        const trove_hunt_t *v = trove_rules_effective (rules, h, ev->ts_ms);
        if (!v)
            continue;
        for (size_t i = 0; i < v->nrules && rc == 0; i++) {
            const trove_rule_t *r = &v->rules [i];
            if (trove_rule_stateful (r) || !trove_match (&r->match, ev))
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
        if (rc == 0 && states [h]) {
            rc = s_score_stateful (&ctx, store, h, v, ev, accepted_us, states [h]);
            states [h] = NULL;
        }
    }
    for (size_t h = 0; h < nh; h++)
        if (states [h])
            trove__hunt_state__free_unpacked (states [h], NULL);
    free (states);
    return rc;
}

int
trove_engine_score (const trove_rules_t *rules, const Trove__Event *ev, int64_t accepted_us,
                    const trove_store_t *store, trove_change_fn *emit, void *arg)
{
    //  No cache in real time: users arrive at random, and decoded states
    //  kept between their events cost more to walk (scattered over the
    //  heap) than unpacking a fresh copy (bench/RESULTS.md, 2026-12-07).
    return s_score (rules, ev, accepted_us, store, emit, arg, NULL);
}

//  --------------------------------------------------------------------------
//  In-memory store

typedef struct {
    void *data;
    size_t size;
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

static int
s_mem_get (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p)
{
    trove_memstore_t *self = arg;
    char *key = zsys_sprintf ("%s\x1f%s", user, hunt);
    if (!key)
        return -1;
    s_blob_t *b = zhashx_lookup (self->map, key);
    zstr_free (&key);
    if (!b)
        return 1;
    *data_p = b->data;
    *size_p = b->size;
    return 0;
}

static int
s_mem_put (void *arg, const char *user, const char *hunt, const void *data, size_t size)
{
    trove_memstore_t *self = arg;
    char *key = zsys_sprintf ("%s\x1f%s", user, hunt);
    if (!key)
        return -1;
    int rc = 0;
    if (size == 0)
        zhashx_delete (self->map, key);
    else {
        s_blob_t *b = malloc (sizeof *b);
        if (b && (b->data = malloc (size))) {
            memcpy (b->data, data, size);
            b->size = size;
            zhashx_update (self->map, key, b);
        }
        else {
            free (b);
            rc = -1;
        }
    }
    zstr_free (&key);
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
    size_t nh = trove_rules_hunts (rules);
    trove_statecache_t *cache = trove_statecache_new (nh ? nh : 1);
    Trove__Coin **list = NULL;
    if (!sorted || !undone || !live.live || !mem || !cache)
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
    //  One user's events, one after the other: each of the user's states
    //  is unpacked once, not once per event (the cache holds them all).
    trove_store_t store = trove_memstore_store (mem);
    for (size_t i = 0; i < n; i++) {
        if (trove_engine_unscored (sorted [i]))
            continue;  //  undo: applied by leaving its target out
        char *key = zsys_sprintf ("%s\x1f%s", sorted [i]->source, sorted [i]->id);
        if (!key)
            goto done;
        bool skip = zhashx_lookup (undone, key) != NULL;
        zstr_free (&key);
        if (!skip && s_score (rules, sorted [i], 0, &store, s_live_change, &live, cache))
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
    trove_statecache_destroy (&cache);
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
