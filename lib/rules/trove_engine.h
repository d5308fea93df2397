/*  trove_engine - the rules engine: events and per-user state in, coin
    changes (mints and revocations) out. The scorer runs it in real time; the
    reconciler and `rules preview` run the same code over stored events
    (trove_engine_derive). Nothing here does I/O: state goes through a store
    the caller provides, coins through a callback.

    Event time. Every kind follows the event's `ts` in the hunt's time zone,
    never arrival order; ties are broken by (ts, source, id). Per user and
    hunt the engine keeps a checkpoint (rule state with every event up to
    the lateness horizon folded in) and a buffer of the events within
    `lateness` of the newest `ts` seen for that user. A new event is put in
    its place in the buffer and the buffer is replayed from the checkpoint;
    coins the replay no longer earns are revoked and new ones minted
    (compensating entries); a coin whose value, version or provenance
    changes is revoked and minted again under the same id. Events leave the
    buffer (are folded into the checkpoint) once they are more than
    `lateness` older than the newest, or when it holds more than 64 events
    (the state is written back for every event, so the buffer is what a
    busy user costs); the state remembers the last event folded. An event that
    orders after it is placed exactly, however late. An event that orders
    before it cannot be: trove_engine_score then changes nothing and
    answers 1 ("late"), and the caller re-derives the user from all of its
    events (trove_engine_derive_into); the scorer does so in the same
    durable step (trove_ledger), so the ledger equals event-time order for
    any arrival order. Only events that match a stateful rule enter the
    buffer; an `each` rule without cap and cooldown needs no state and
    scores the event alone.

    Coin ids: trove_hash_coin_id (hunt, rule, user, occurrence), where the
    occurrence key (NUL separates parts) is:
      each without cap   source NUL id            (the event)
      each with cap      "cap" NUL period NUL slot  period "day:2026-03-10",
                         "week:2026-03-09" (its Monday), "month:2026-03" or
                         "hunt"; slot 0..max-1 in event-time order
      count              "count" NUL n            (n-th completion, 1-based)
      sequence           "sequence" NUL n
      streak             "streak" NUL n
    so a late event that changes nothing achieved changes no coin id.

    Kinds: `each` awards every matching event; `cooldown` skips an event
    within the cooldown of the rule's previous award for the user; `cap`
    allows `max` awards per local day, week (Monday first), month or the
    whole hunt. `count` awards after `count` matching events (with
    `distinct: attr`, distinct values of that attribute; each award counts
    afresh, so with `repeat` the next one needs `count` distinct values
    again). `sequence` awards
    when its steps match events in ts order with last - first <= `within`
    (one event plays one step; the partial match with the latest start is
    kept, so the first completion in event time wins; all partial matches
    reset after a completion). `streak` awards on the `days`-th consecutive
    local day with a matching event. Without `repeat: true` count, sequence
    and streak award once per user.

    Undo: an event of type `undo` with string attributes target_source and
    target_id, sent with the target's user. If the target is in a buffer,
    trove_engine_score removes it and replays the buffer: coins that no
    longer follow are revoked ("undo"), coins that now follow are minted.
    The scorer does not rely on that: it re-derives the user without the
    target whenever the target is stored (trove_engine_derive leaves every
    undone target out), which is exact wherever the target was. */
#ifndef TROVE_ENGINE_H_INCLUDED
#define TROVE_ENGINE_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_hash.h"
#include "trove_rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROVE_ENGINE_BUFFER_MAX 64

//  Where per-(user, hunt) state lives. get: 0 found (*data_p borrowed until
//  the next call into the store), 1 none, -1 error. put: size 0 deletes.
typedef struct {
    int (*get) (void *arg, const char *user, const char *hunt, const void **data_p, size_t *size_p);
    int (*put) (void *arg, const char *user, const char *hunt, const void *data, size_t size);
    void *arg;
} trove_store_t;

//  One ledger change. Pointers are borrowed for the call only.
typedef struct {
    bool revoke;  //  false: mint
    const char *id;
    const char *user, *hunt, *rule;
    uint32_t version;  //  hunt version that decided it
    int64_t value;
    Trove__EventRef *const *refs;  //  provenance: the events that earned it
    size_t nrefs;
    int64_t event_ts_ms;  //  ts of the last earning event
    int32_t local_day;    //  its local day in the hunt's time zone (the coin's boards)
    int64_t accepted_us;  //  when the last earning event was accepted
    const char *reason;   //  "scored", "rescored" (reordered or new rules), "undo", "reconciled"
    const char *run;      //  reconciler run id, or NULL
} trove_change_t;

//  The change as a coin of its own (free with trove__coin__free_unpacked):
//  for callers that keep what they are told. NULL on OOM.
Trove__Coin *trove_change_coin (const trove_change_t *change);

//  The same coin as a view: its pointers borrowed from change (reason and
//  run "" when NULL); the ledger adds what only it knows (aseq, shard).
Trove__Coin trove_change_coin_view (const trove_change_t *change);

//  The reverse: a change (revoke or mint again) for an existing coin, its
//  pointers borrowed from coin; run NULL.
trove_change_t trove_change_of_coin (const Trove__Coin *coin, bool revoke, const char *reason);

//  Same value, rule version and provenance (the events, in order): a coin
//  derived again that needs no new ledger entry.
bool trove_coin_same (const Trove__Coin *a, const Trove__Coin *b);

//  Return 0 to go on, -1 to stop (the caller gets -1).
typedef int (trove_change_fn) (void *arg, const trove_change_t *change);

//  Score one accepted event (not seen before). Returns 0; 1 when the event
//  orders before an event already folded into a state it would change
//  (nothing changed: re-derive the user with the event among its events);
//  or -1 when the store or emit failed (nothing is half-written by the
//  engine itself: the caller discards its batch).
int trove_engine_score (const trove_rules_t *rules, const Trove__Event *event, int64_t accepted_us,
                        const trove_store_t *store, trove_change_fn *emit, void *arg);

//  Is this an undo event? Sets its target.
bool trove_engine_undo_target (const Trove__Event *event, const char **source_p, const char **id_p);

//  The live coins of one user's events in event-time order, undone targets
//  left out: the exact result real time converges to. Emits each live coin
//  (as a mint, reason "scored"), ordered by hunt, rule, id. Events must all
//  be the same user's. Returns 0 or -1.
int trove_engine_derive (const trove_rules_t *rules, Trove__Event *const *events, size_t n,
                         trove_change_fn *emit, void *arg);

typedef struct _trove_memstore_t trove_memstore_t;
//  The same, leaving the derived rule state of every (user, hunt) in mem
//  (what real time would hold after these events in event-time order).
int trove_engine_derive_into (const trove_rules_t *rules, Trove__Event *const *events, size_t n,
                              trove_change_fn *emit, void *arg, trove_memstore_t *mem);

//  A user's progress on each rule of hunt version v at now_ms, from the
//  user's rule state of that hunt (NULL: none yet): each + cap: awards used
//  and left in the current period; count: events (or distinct values)
//  toward the next award; sequence: steps matched; streak: consecutive
//  days still alive at now_ms. *progress_p gets one entry per rule (free
//  with trove_engine_progress_free). Returns 0 or -1 (out of memory).
int trove_engine_progress (const trove_hunt_t *v, const Trove__HuntState *state, int64_t now_ms,
                           Trove__Progress ***progress_p, size_t *n_p);
void trove_engine_progress_free (Trove__Progress **progress, size_t n);

//  Events the engine never scores: undo (applied through its target) and a
//  reconciler's request to re-derive a user.
bool trove_engine_unscored (const Trove__Event *event);

//  The reserved source and type of a reconciler's re-derive request.
#define TROVE_RECONCILER_SOURCE "reconciler"
#define TROVE_RECONCILE_TYPE "reconcile"

//  --- an in-memory store (derive, preview, tests) -------------------------
trove_memstore_t *trove_memstore_new (void);
void trove_memstore_destroy (trove_memstore_t **self_p);
//  A store backed by it.
trove_store_t trove_memstore_store (trove_memstore_t *self);
//  Total bytes of state held, and entries.
size_t trove_memstore_bytes (trove_memstore_t *self, size_t *entries_p);

#ifdef __cplusplus
}
#endif
#endif
