/*  trove_submitter - a pipelined producer, shared by trovectl and trove-load.
    It submits events to the ingestors (a DEALER connected to each), keeps
    every event until it has a final answer (accepted / duplicate /
    rejected), resubmits on timeout or RETRY with the same req_id (so a
    retried event that was in fact committed is answered "accepted", not
    "duplicate"), and bounds the number of events in flight (credit window).

    Caveats: sockets are trove_sock role TROVE_SOCK_SUBMIT (linger 0,
    IMMEDIATE). Nothing is persisted: events a submitter holds are lost if
    the process dies before their answer (the caller resubmits them; an
    event committed meanwhile is then answered "duplicate"). Callbacks run
    inside add/poll and must not call poll or destroy. Not thread-safe: one
    object per thread. */
#ifndef TROVE_SUBMITTER_H_INCLUDED
#define TROVE_SUBMITTER_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_submitter_t trove_submitter_t;

//  Called once per event when its answer is final. tag is what the caller gave
//  trove_submitter_add. latency_us is from the first submission to the final
//  answer. result is borrowed for the duration of the call.
typedef void (trove_submitter_fn) (void *arg, uint64_t tag, const Trove__Result *result, int64_t latency_us);

//  Create a submitter for the ingestors of cfg: a DEALER (ZMQ_IMMEDIATE)
//  connected to each, requests sent to one of them at a time (chosen at
//  random), the next one taken when the one in use has said nothing for a
//  whole timeout while requests wait, or refused sends that long; answers
//  are taken from every ingestor.
//  Requests go out in the order they were made (one never overtakes an
//  older one's first transmission), so one producer's events reach their
//  scorer in its order while nothing fails (docs/architecture.md, "Order").
//  batch:
//  events per request (0 or more than limits/max_batch means max_batch; a
//  request is also closed before it would exceed max_frame); window: max
//  events in flight (0 = 4 batches). cfg is only read here. NULL on failure
//  (no ingestor in cfg, a bad endpoint, OOM).
trove_submitter_t *trove_submitter_new (const trove_cfg_t *cfg, size_t batch, size_t window,
                                        trove_submitter_fn *fn, void *arg);
void trove_submitter_destroy (trove_submitter_t **self_p);
//  Resend a request when its reply takes longer than timeout_ms (default
//  2000), then after twice as long each time (up to 8 x timeout_ms).
void trove_submitter_set_timeout (trove_submitter_t *self, int timeout_ms);

//  Queue one event (copied) with a caller tag. A full batch is sent at once;
//  a partial one by flush, or by poll once it is 5 ms old. Returns 0, or -1
//  when the window is full (call trove_submitter_poll first) or on OOM. An
//  event that alone exceeds max_frame is answered REJECTED "frame_too_large"
//  through fn before add returns.
int trove_submitter_add (trove_submitter_t *self, const Trove__Event *event, uint64_t tag);
//  Send what is queued now, even if a batch is not full.
void trove_submitter_flush (trove_submitter_t *self);
//  Wait up to timeout_ms for answers, deliver final ones through fn, resend
//  what timed out (same req_id) or got RETRY (after a backoff of 50 ms
//  doubling to 1 s). Returns early once some answer arrived, when nothing
//  is pending, or when a signal interrupts the wait. Returns the number of
//  events still unanswered. A refused request (SubmitReply.error) rejects
//  its events with reason = the code before the error's first colon and
//  detail = the whole error, unless the error mentions "retry".
size_t trove_submitter_poll (trove_submitter_t *self, int timeout_ms);
//  Reason of the last RETRY answer ("storage_full", ...), or "" if none.
const char *trove_submitter_last_retry (trove_submitter_t *self);
//  Events added but not yet final.
size_t trove_submitter_pending (trove_submitter_t *self);
//  The socket to include in a caller's zpoller, if it wants to multiplex.
void *trove_submitter_socket (trove_submitter_t *self);

#ifdef __cplusplus
}
#endif
#endif
