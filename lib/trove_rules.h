/*  trove_rules - the rules engine: hunt files in, awards out. The same code
    runs in the scorer (real time) and the reconciler (batch): scoring is a
    pure function of the rules, the event and (for stateful kinds, later) the
    user's rule state, so a replay derives the same coins.

    A rules directory holds one YAML file per hunt version (*.yaml, *.yml):

        hunt: spring-hunt                  # id: [A-Za-z0-9._-]{1,64}
        version: 2                         # integer >= 1
        effective: 2026-03-10T00:00:00Z    # applies to events with ts >= effective
        start: 2026-03-01T00:00:00Z        # optional window: events outside earn nothing
        end: 2026-06-01T00:00:00Z
        rules:
          - id: daily-checkin
            kind: each                     # every matching event earns `coins`
            match: {type: checkin, source: [web, mobile], attrs: {zone: [A, B]},
                    where: [{attr: amount, op: ">=", value: 100}]}
            coins: 1

    For each event and each hunt, the version applied is the highest version
    whose `effective` <= the event's ts. Supported kinds: `each`. Other kinds
    of the treasure-hunt design (count, sequence, streak, caps) are refused at
    load time with a clear message until they exist.

    Occurrence key of `each`: source NUL id of the event (so the coin id is
    tied to exactly that event; see trove_hash.h). */
#ifndef TROVE_RULES_H_INCLUDED
#define TROVE_RULES_H_INCLUDED

#include "trove.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_rules_t trove_rules_t;

//  One award the engine decided on. Pointers are borrowed, valid during the
//  emit call only.
typedef struct {
    const char *hunt;
    const char *rule;
    uint32_t version;        //  version of the hunt file that minted it
    int64_t value;           //  coins
    const void *occurrence;  //  occurrence key, see above
    size_t occurrence_len;
} trove_award_t;

//  Called for each award; return 0 to go on, -1 to stop scoring (the error is
//  passed back to the caller of trove_rules_score).
typedef int (trove_rules_emit_fn) (void *arg, const trove_award_t *award);

//  Load every hunt file of a directory. NULL on error, with *err_p (caller
//  frees) naming the file, line and problem. An empty directory is valid.
trove_rules_t *trove_rules_load_dir (const char *dir, char **err_p);

//  Load a single hunt file (for `trovectl rules check`). Same errors.
trove_rules_t *trove_rules_load_file (const char *path, char **err_p);

void trove_rules_destroy (trove_rules_t **self_p);

//  Number of hunt versions loaded.
size_t trove_rules_count (const trove_rules_t *self);

//  Score one event against every hunt: emit each award in a deterministic
//  order (hunt id, then rule order in the file). Returns 0, or -1 if emit
//  returned -1.
int trove_rules_score (const trove_rules_t *self, const Trove__Event *event, trove_rules_emit_fn *emit,
                       void *arg);

#ifdef __cplusplus
}
#endif
#endif
