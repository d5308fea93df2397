/*  Fuzz target: a frame from the network, as an ingestor or a scorer reads
    it (trove_msg_decode), then the validation of every event it carries
    (trove_event_check, the source's rules). Property checked: a valid
    event survives its JSON form unchanged (to_json, from_json, check). */
#include "fuzz_common.h"
#include "trove_event.h"
#include "trove_msg.h"

static void
s_check_event (const Trove__Event *ev)
{
    char detail [256];
    const trove_cfg_t *cfg = fuzz_cfg ();
    const char *reason = trove_event_check (ev, cfg, FUZZ_NOW_MS, detail, sizeof detail);
    if (!reason)
        reason = trove_sources_check (fuzz_sources (), trove_cfg_source_index (cfg, ev->source), ev,
                                      FUZZ_NOW_MS, detail, sizeof detail);
    if (reason)
        return;
    Trove__Event *copy = trove_event_dup (ev);
    char *json = copy ? trove_event_to_json (copy) : NULL;
    if (json) {
        const char *why;
        Trove__Event *back = trove_event_from_json (json, strlen (json), &why, NULL);
        //  The JSON form is exact to the millisecond; a valid event must
        //  come back valid, with the same identity.
        if (!back || strcmp (back->source, ev->source) || strcmp (back->id, ev->id)
            || strcmp (back->user, ev->user) || strcmp (back->type, ev->type) || back->ts_ms != ev->ts_ms
            || back->n_attrs != ev->n_attrs
            || trove_event_check (back, cfg, FUZZ_NOW_MS, detail, sizeof detail))
            abort ();
        trove_event_destroy (&back);
    }
    free (json);
    trove_event_destroy (&copy);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *reason;
    Trove__Msg *msg = trove_msg_decode (data, size, 1 << 20, &reason);
    if (!msg)
        return 0;
    if (msg->body_case == TROVE__MSG__BODY_SUBMIT)
        for (size_t i = 0; i < msg->submit->n_events; i++)
            s_check_event (msg->submit->events [i]);
    else if (msg->body_case == TROVE__MSG__BODY_BATCH)
        for (size_t i = 0; i < msg->batch->n_events; i++)
            s_check_event (msg->batch->events [i]);
    //  Whatever decoded must pack again.
    size_t packed;
    void *frame = trove_msg_pack (msg, &packed);
    free (frame);
    trove_msg_free (&msg);
    return 0;
}
