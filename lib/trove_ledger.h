/*  trove_ledger - a scorer shard's durable state in one LMDB environment: the
    dedup index, the event log, the coins, the balances and the award log.
    The scorer is its only writer.

    Writes happen in batches (group commit): trove_ledger_begin, then
    trove_ledger_apply for each event, then trove_ledger_commit. Everything an
    event causes (dedup entry, log entry, coins, balances, awards) is in the
    same transaction, so after a crash an event is either fully there or not
    at all, and a replayed event is recognised by its (source, id).

    Layout (named databases; integers big-endian so that key order is numeric):
      dedup      source NUL id             -> req_id u64 | partition u32 | pseq u64
      events     partition u32 | pseq u64  -> EventRecord (protobuf)
      coins      coin id (32 hex chars)    -> Coin (protobuf)
      usercoins  user NUL aseq u64         -> coin id   (newest first by reverse scan)
      balances   user                      -> i64 (little-endian)
      awards     aseq u64                  -> coin id   (the award stream, for catch-up)

    Caveats:
    - SIGKILL at any instant: LMDB's commit is atomic; an uncommitted batch
      leaves no trace. Stale reader slots of a killed process are cleared at
      open (mdb_reader_check).
    - Full map (MDB_MAP_FULL) or full disk: trove_ledger_apply or _commit
      returns -1, the whole batch is discarded, the ledger is unchanged and
      stays usable; the caller answers RETRY and applies nothing.
    - Durability: with sync (default) every commit is fsynced; without it a
      commit survives a process kill but not an OS crash. */
#ifndef TROVE_LEDGER_H_INCLUDED
#define TROVE_LEDGER_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_ledger_t trove_ledger_t;

//  Open (creating if needed) the ledger in dir for shard index `shard`.
//  NULL on failure with *err_p (caller frees).
trove_ledger_t *trove_ledger_new (const char *dir, uint32_t shard, size_t map_size, bool sync,
                                  char **err_p);
void trove_ledger_destroy (trove_ledger_t **self_p);

//  Start a batch. Returns 0, or -1 if LMDB refuses (e.g. MDB_PANIC).
int trove_ledger_begin (trove_ledger_t *self);

//  Apply one validated event within the batch. Sets *status_p to
//  TROVE__STATUS__ACCEPTED (new event, scored; or a resubmission of an event
//  accepted under the same req_id), or TROVE__STATUS__DUPLICATE (accepted
//  before under another req_id). Returns 0, or -1 on a storage error; after
//  -1 the batch must be aborted.
int trove_ledger_apply (trove_ledger_t *self, const Trove__Event *event, uint32_t partition,
                        uint64_t req_id, int64_t accepted_us, const trove_rules_t *rules,
                        Trove__Status *status_p);

//  Commit the batch. Returns 0, or -1 (batch discarded, ledger unchanged).
int trove_ledger_commit (trove_ledger_t *self);
//  Discard the batch. Safe when no batch is open.
void trove_ledger_abort (trove_ledger_t *self);

//  Awards of the last committed batch, packed Msg{award} frames ready to publish.
//  Valid until the next trove_ledger_begin.
size_t trove_ledger_awards_ready (trove_ledger_t *self, void ***frames_p, size_t **sizes_p);

//  Text of the last storage error ("MDB_MAP_FULL: ..."), or "".
const char *trove_ledger_error (trove_ledger_t *self);
//  True when the last failure was a full map or a full disk.
bool trove_ledger_full (trove_ledger_t *self);

//  --- reads (each in its own short read transaction) -----------------------
uint64_t trove_ledger_last_aseq (trove_ledger_t *self);
uint64_t trove_ledger_event_count (trove_ledger_t *self);

//  Balance of a user (0 when unknown). Returns 0 or -1.
int trove_ledger_balance (trove_ledger_t *self, const char *user, int64_t *balance_p);

//  Up to limit coins of a user, newest first, starting after cursor ("" for
//  the start). Coins are unpacked into *coins_p (free with
//  trove_ledger_free_coins); *next_p gets the cursor for the next page
//  (caller frees; "" when there is no more). Returns 0 or -1.
int trove_ledger_coins (trove_ledger_t *self, const char *user, const char *cursor, size_t limit,
                        Trove__Coin ***coins_p, size_t *n_p, char **next_p);

//  One coin and the records of the events that earned it. Returns 0, 1 when
//  the coin does not exist, -1 on error. Free with trove_ledger_free_coins /
//  trove_ledger_free_events.
int trove_ledger_coin (trove_ledger_t *self, const char *coin_id, Trove__Coin **coin_p,
                       Trove__EventRecord ***events_p, size_t *n_p);

//  Awards with aseq >= from, at most limit, in aseq order.
int trove_ledger_awards (trove_ledger_t *self, uint64_t from, size_t limit, Trove__Coin ***coins_p,
                         size_t *n_p);

void trove_ledger_free_coins (Trove__Coin **coins, size_t n);
void trove_ledger_free_events (Trove__EventRecord **events, size_t n);

#ifdef __cplusplus
}
#endif
#endif
