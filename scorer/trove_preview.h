/*  trove_preview - what a set of rules would change in a scorer shard's
    ledger. Each user's stored events are re-derived in event-time order
    with trove_engine_derive (the scorer's own engine) and the result is
    compared, coin id by coin id, with the user's live coins. It only reads
    (one LMDB read snapshot per step), so it can run against a live shard.

    Used by `trovectl rules preview` (candidate rules) and, with the rules in
    force, as the re-derivation a reconciler compares against.

    Cost: every stored event of the shard (or of the user's partition) is
    read once and held in memory, grouped by user: a whole-shard preview
    needs memory proportional to the shard's events. */
#ifndef TROVE_PREVIEW_H_INCLUDED
#define TROVE_PREVIEW_H_INCLUDED

#include "trove_ledger.h"
#include "trove_rules.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Compare rules with the ledger for every user with events in `partition`
//  (-1: all), or only `user` when not NULL/empty. Returns a JSON report
//  (caller frees):
//    {"users":N, "events":N, "mint":N, "revoke":N, "coins_delta":N,
//     "rules":[{"hunt","rule","mint","revoke","coins_delta"}],
//     "changes":[{"user","action":"mint"|"revoke","id","hunt","rule","value","version"}],
//     "truncated":bool}
//  where changes lists at most max_changes entries (sorted by user, hunt,
//  rule, id). NULL on error with *err_p (caller frees).
char *trove_preview_run (trove_ledger_t *ledger, const trove_rules_t *rules, int64_t partition,
                         const char *user, size_t max_changes, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
