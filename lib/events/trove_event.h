/*  trove_event - the event model: validation against the cluster's limits,
    and the JSON form producers write (one object per line, NDJSON).

    JSON form:
      {"source":"web","id":"e-1","user":"u42","type":"checkin",
       "ts":"2026-03-10T08:00:00Z" | 1773129600000, "attrs":{"zone":"B","amount":12.5,"vip":true}}
    Every rejection has a stable reason code; the list is in docs/events.md. */
#ifndef TROVE_EVENT_H_INCLUDED
#define TROVE_EVENT_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Check an event against the config (sources, limits, ts window around now_ms).
//  Returns NULL when valid, else a static reason code; detail gets a sentence.
const char *trove_event_check (const Trove__Event *event, const trove_cfg_t *cfg, int64_t now_ms,
                               char *detail, size_t detail_size);

//  Parse one JSON object. On error returns NULL, *reason_p gets a static
//  reason code ("bad_json", "unknown_field", "bad_ts", "bad_attr", "missing_field")
//  and *err_p a message the caller frees.
Trove__Event *trove_event_from_json (const char *text, size_t len, const char **reason_p, char **err_p);

//  JSON text of an event (compact, one line); the caller frees. NULL on OOM.
char *trove_event_to_json (const Trove__Event *event);

//  The answer's name as the JSON and metrics spell it: "accepted",
//  "duplicate", "rejected", "retry" ("unspecified" for anything else).
//  Can't fail.
const char *trove_event_status_name (int status);

//  Free an event made by trove_event_from_json or trove_event_dup. Safe on NULL.
void trove_event_destroy (Trove__Event **event_p);

//  Deep copy of any event (e.g. one inside an unpacked message). NULL on OOM.
Trove__Event *trove_event_dup (const Trove__Event *event);

//  What an event says, as 16 bytes (BLAKE2b-128): its user, type, ts and
//  attributes (sorted by key, typed), not its source and id. Two sends of
//  one event agree whatever their attributes' order; the cluster-wide
//  identity of (source, id) is checked against it (id_conflict).
#define TROVE_EVENT_CONTENT_SIZE 16
void trove_event_content_hash (const Trove__Event *event, uint8_t out [TROVE_EVENT_CONTENT_SIZE]);

#ifdef __cplusplus
}
#endif
#endif
