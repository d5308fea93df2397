/*  trove_json - the JSON shapes of query answers, one definition for
    trovectl --json and the HTTP API (docs/queries.md). Each returns a new
    jansson value (caller decrefs), NULL on OOM. */
#ifndef TROVE_JSON_H_INCLUDED
#define TROVE_JSON_H_INCLUDED
#include "trove.pb-c.h"
#include <jansson.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One coin: id, user, hunt, rule, rule_version, value, reason, minted
//  (RFC 3339), minted_ms, shard, aseq, events [{source, id}], revoked, run.
json_t *trove_json_coin (const Trove__Coin *coin);
//  What a reader of another source may see (docs/security.md, "Key
//  scopes"): an event object ({"source", "id", ...}: a coin's event
//  reference or a whole event) of another source than `source` gets
//  "id": null and loses "attrs"; in a coin object, each of its "events".
void trove_json_event_redact (json_t *event, const char *source);
void trove_json_coin_redact (json_t *coin, const char *source);
//  A coin and its provenance: {"coin": .., "events": [event, ...]} from a
//  "coin" answer.
json_t *trove_json_coin_provenance (const Trove__QueryReply *reply);
//  A page of a user's coins, newest first: {"user", "coins": [coin, ...],
//  "next_cursor" ("" when no more), "cost"} from a "coins" answer.
json_t *trove_json_coins (const char *user, const Trove__QueryReply *reply);
//  A balance answer: {"user", "balance", "hunts": {hunt: n}, "cost"}.
json_t *trove_json_balance (const char *user, const Trove__QueryReply *reply);
//  Board entries: {"entries": [{rank, user, score}], "cost", "more"}; with
//  list, the entries are boards: [{period, users}].
json_t *trove_json_board (const Trove__QueryReply *reply, bool list);
//  A window around a user: the board shape plus {"user", "score"} (the
//  user's score on the board; 0 when not on it).
json_t *trove_json_around (const char *user, const Trove__QueryReply *reply);
//  A progress answer: {"user", "rules": [{hunt, rule, kind, have, need,
//  done[, period, left]}], "cost"}.
json_t *trove_json_progress (const char *user, const Trove__QueryReply *reply);
//  The rules_preview reports of several shards (the JSON objects of
//  trove_preview_run; NULL ones skipped) as one: {"users", "events",
//  "mint", "revoke", "coins_delta" (sums), "rules": [{hunt, rule, mint,
//  revoke, coins_delta}] (summed per hunt and rule, in order of first
//  appearance), "changes": [...] (each shard's, in shard order),
//  "truncated" (any shard's)}. What `trovectl rules preview --json` prints
//  and POST /v1/rules/preview answers.
json_t *trove_json_preview_merge (json_t *const *reports, size_t n);

#ifdef __cplusplus
}
#endif
#endif
