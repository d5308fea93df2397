/*  Fuzz target: an HTTP ingest body (JSON array or NDJSON) through
    trove_ingest_parse and trove_event_from_json, then the validation every
    decoded event gets. Property checked: a valid event's JSON form decodes
    to the same event. */
#include "fuzz_common.h"
#include "trove_event.h"
#include "trove_ingest.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const trove_cfg_t *cfg = fuzz_cfg ();
    trove_ingest_limits_t limits;
    if (trove_ingest_limits (cfg, &limits, NULL))
        abort ();
    trove_ingest_item_t *items;
    size_t n;
    const char *err;
    char *detail;
    int status = trove_ingest_parse ((const char *) data, size, &limits, &items, &n, &err, &detail);
    if (status) {
        if ((status != 400 && status != 413) || !err || !detail)
            abort ();
        free (detail);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        Trove__Event *ev = items [i].event;
        if (!ev) {
            if (!items [i].reason)
                abort ();
            continue;
        }
        char why [256];
        if (trove_event_check (ev, cfg, FUZZ_NOW_MS, why, sizeof why))
            continue;
        char *json = trove_event_to_json (ev);
        if (json) {
            Trove__Event *back = trove_event_from_json (json, strlen (json), NULL, NULL);
            if (!back || strcmp (back->id, ev->id) || strcmp (back->user, ev->user)
                || back->ts_ms != ev->ts_ms)
                abort ();
            trove_event_destroy (&back);
        }
        free (json);
    }
    trove_ingest_items_free (&items, n);
    return 0;
}
