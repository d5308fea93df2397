/*  trove_rules - hunt files: parsing, versions and event matching. Scoring
    (state, event time, caps, undo) is trove_engine, which the scorer, the
    reconciler and `rules preview` share.

    A rules directory holds one YAML file per hunt version (*.yaml, *.yml):

        hunt: spring-hunt                  # id: [A-Za-z0-9._-]{1,64}
        version: 2                         # integer >= 1
        effective: 2026-03-10T00:00:00Z    # applies to events with ts >= effective
        timezone: Europe/Paris             # IANA zone of days, weeks, months (default UTC)
        start: 2026-03-01T00:00:00Z        # optional window: events outside earn nothing
        end: 2026-06-01T00:00:00Z
        lateness: 10m                      # default 10m; see trove_engine.h
        rules:
          - id: daily-checkin
            kind: each                     # every matching event earns `coins`
            match: {type: checkin, source: [web, mobile], attrs: {zone: [A, B]},
                    where: [{attr: amount, op: ">=", value: 100}]}
            coins: 1
            cap: {max: 1, per: day}        # day | week | month | hunt
            cooldown: 30s
          - {id: explorer, kind: count, match: {type: visit}, distinct: zone,
             count: 5, coins: 10, repeat: false}
          - {id: golden-path, kind: sequence, within: 24h, coins: 50,
             steps: [{type: scan, attrs: {clue: A}}, {type: purchase, source: store}]}
          - {id: week-streak, kind: streak, match: {type: play}, days: 7, coins: 25}

    Durations: an integer followed by ms, s, m, h or d. For each event and
    hunt, the version applied is the highest whose `effective` <= the
    event's ts. Anything unknown or out of range is refused with the file,
    line and problem: a typo must never silently change a hunt. */
#ifndef TROVE_RULES_H_INCLUDED
#define TROVE_RULES_H_INCLUDED

#include "trove.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_rules_t trove_rules_t;
typedef struct _trove_tz_t trove_tz_t;

typedef enum { TROVE_KIND_EACH = 1, TROVE_KIND_COUNT, TROVE_KIND_SEQUENCE, TROVE_KIND_STREAK } trove_kind_t;
typedef enum {
    TROVE_PER_NONE = 0,
    TROVE_PER_DAY,
    TROVE_PER_WEEK,
    TROVE_PER_MONTH,
    TROVE_PER_HUNT
} trove_per_t;
typedef enum { TROVE_OP_EQ, TROVE_OP_NE, TROVE_OP_LT, TROVE_OP_LE, TROVE_OP_GT, TROVE_OP_GE } trove_op_t;

typedef struct {
    char *attr;  //  attribute name
    trove_op_t op;
    double value;  //  right-hand side
} trove_where_t;

typedef struct {
    char *key;      //  attribute name
    char **values;  //  any of these (string form)
    size_t nvalues;
} trove_attr_match_t;

//  What an event must be: every present criterion holds.
typedef struct {
    char **types;  //  type: any of (none = any type)
    size_t ntypes;
    char **sources;  //  source: any of (none = any source)
    size_t nsources;
    trove_attr_match_t *attrs;  //  attrs: all must hold
    size_t nattrs;
    trove_where_t *wheres;  //  where: all must hold
    size_t nwheres;
} trove_match_t;

typedef struct {
    char *id;  //  unique within the hunt
    trove_kind_t kind;
    int64_t coins;         //  value of each award
    trove_match_t match;   //  each, count, streak
    trove_match_t *steps;  //  sequence
    size_t nsteps;
    uint32_t cap_max;  //  each: awards per period (0: no cap)
    trove_per_t cap_per;
    int64_t cooldown_ms;  //  each: 0 = none
    char *distinct;       //  count: attribute whose distinct values count, or NULL
    uint32_t count;       //  count: events (or values) per award
    bool repeat;          //  count, sequence, streak: earn again after completing
    int64_t within_ms;    //  sequence: first to last step
    uint32_t days;        //  streak: consecutive local days
} trove_rule_t;

typedef struct {
    char *hunt;          //  hunt id
    uint32_t version;    //  file version
    int64_t effective;   //  ms; applies to ts >= effective
    int64_t start, end;  //  window in ms (INT64_MIN/MAX when absent)
    int64_t lateness_ms;
    trove_tz_t *tz;
    trove_rule_t *rules;
    size_t nrules;
    bool stateful;  //  some rule needs per-user state (trove_rule_stateful)
} trove_hunt_t;

//  Load every hunt file of a directory. NULL on error, with *err_p (caller
//  frees) naming the file, line and problem. An empty directory is valid.
trove_rules_t *trove_rules_load_dir (const char *dir, char **err_p);

//  Load a single hunt file (for `trovectl rules check`). Same errors.
trove_rules_t *trove_rules_load_file (const char *path, char **err_p);

//  Parse hunt file text; name is used in messages. Same errors.
trove_rules_t *trove_rules_load_text (const char *name, const char *text, size_t size, char **err_p);

//  The rules of dir with one more hunt file (text) added, as `rules apply`
//  would make them: refused when the file is invalid or its hunt already has
//  that version with other content. NULL on error with *err_p.
trove_rules_t *trove_rules_load_dir_with (const char *dir, const char *name, const char *text, size_t size,
                                          char **err_p);

void trove_rules_destroy (trove_rules_t **self_p);

//  Number of hunt versions loaded.
size_t trove_rules_count (const trove_rules_t *self);
//  Version i (sorted by hunt id, then version descending).
const trove_hunt_t *trove_rules_at (const trove_rules_t *self, size_t i);
//  Number of distinct hunts; the version of hunt h in effect at ts (NULL
//  when none is, or ts is outside that version's window).
size_t trove_rules_hunts (const trove_rules_t *self);
const trove_hunt_t *trove_rules_effective (const trove_rules_t *self, size_t h, int64_t ts);
//  Highest version of hunt h (any time), for names and lateness.
const trove_hunt_t *trove_rules_latest (const trove_rules_t *self, size_t h);
//  Number of versions of hunt h loaded.
size_t trove_rules_versions (const trove_rules_t *self, size_t h);

//  Does the event satisfy the match?
bool trove_match (const trove_match_t *match, const Trove__Event *event);
//  Does the rule keep per-user state (all but an `each` without cap and cooldown)?
bool trove_rule_stateful (const trove_rule_t *rule);

//  Attribute value as a hunt file would write it ("3", "2.5", "true", "A").
//  Returns false when the event has no such attribute.
bool trove_attr_text (const Trove__Event *event, const char *key, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
