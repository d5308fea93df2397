/*  trove_client - the client side of Trove's sockets, shared by trovectl and
    trove-load:

    - trove_client_call: one request/reply (Msg.query -> Msg.query_reply) to a
      scorer query endpoint, an ingestor or the broker control endpoint, with a
      timeout and retries on a fresh DEALER (lazy pirate).
    - trove_submitter: a pipelined producer. It submits events to the
      ingestors (DEALER connected to all of them), keeps every event until it
      has a final answer (accepted / duplicate / rejected), resubmits on
      timeout or RETRY with the same req_id (so a retried event that was in
      fact committed is answered "accepted", not "duplicate"), and bounds the
      number of events in flight (credit window).
    - trove_awardsub: the award stream. SUB to the broker, per-shard sequence
      tracking; on a gap, a late join or a heartbeat showing a higher aseq it
      fetches the missing awards from the scorer ("awards" query), so the
      caller sees every award of every shard exactly once, in aseq order per
      shard.

    Caveats: every socket is a client (connect, linger 0, ZMQ_MAXMSGSIZE =
    the cluster's max_frame), so a reply larger than max_frame is dropped by
    libzmq and looks like a timeout. Nothing is persisted: events a
    submitter holds are lost if the process dies before their answer (the
    caller resubmits them; an event committed meanwhile is then answered
    "duplicate"). Callbacks run inside add/poll and must not call poll or
    destroy. Not thread-safe: one object per thread. */
#ifndef TROVE_CLIENT_H_INCLUDED
#define TROVE_CLIENT_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Send query to endpoint and wait up to timeout_ms for the reply, retrying
//  `retries` more times on a new socket. Returns the reply (free with
//  trove__query_reply__free_unpacked... use trove_client_reply_free), or NULL
//  with *err_p (caller frees) on timeout or a malformed answer. A reply whose
//  `error` is set is still returned: the caller decides.
Trove__QueryReply *trove_client_call (const char *endpoint, const Trove__Query *query, int timeout_ms,
                                      int retries, char **err_p);
void trove_client_reply_free (Trove__QueryReply **reply_p);
//  Same as trove_client_call, with the receive limit (ZMQ_MAXMSGSIZE) set to
//  max_frame (trove_client_call uses 64 MiB, the ceiling of limits/max_frame).
//  A query with req_id 0 gets a random one. Returns NULL with *err_p
//  "interrupted" when a signal interrupts the wait.
Trove__QueryReply *trove_client_call_max (const char *endpoint, const Trove__Query *query, int timeout_ms,
                                          int retries, size_t max_frame, char **err_p);
//  The same query to n endpoints at once (each attempt waits timeout_ms for
//  every endpoint still silent, then retries those on fresh sockets).
//  replies [i] gets endpoint i's reply or NULL. Returns the number of
//  replies; -1 if interrupted by a signal (replies received so far are kept).
int trove_client_call_all (const char *const *endpoints, size_t n, const Trove__Query *query, int timeout_ms,
                           int retries, size_t max_frame, Trove__QueryReply **replies);
//  A random, non-zero 64-bit request id (libsodium). Can't fail.
uint64_t trove_client_req_id (void);

//  ---------------------------------------------------------------------------
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

//  ---------------------------------------------------------------------------
typedef struct _trove_awardsub_t trove_awardsub_t;

//  Called for each award, in aseq order per shard, exactly once.
typedef void (trove_awardsub_fn) (void *arg, const Trove__Coin *coin);

//  Subscribe to the award stream of cfg's cluster. from_now: start after each
//  shard's current last aseq (asked at start, every shard at once, 500 ms, one
//  retry; a shard that does not answer is asked again by poll, or starts at
//  its first award or heartbeat seen); otherwise from aseq 1. cfg is only
//  read here. NULL on failure (bad endpoint, OOM).
trove_awardsub_t *trove_awardsub_new (const trove_cfg_t *cfg, bool from_now, trove_awardsub_fn *fn,
                                      void *arg);
void trove_awardsub_destroy (trove_awardsub_t **self_p);
//  Process what arrived within timeout_ms (and catch up gaps: "awards"
//  queries of 1000, 1 s timeout; an unreachable scorer is retried with a
//  backoff up to 2 s, later awards of that shard wait, nothing is skipped).
//  Returns early once something arrived. Returns 0, or -1 when a signal
//  interrupted the wait.
int trove_awardsub_poll (trove_awardsub_t *self, int timeout_ms);
//  Last aseq delivered for a shard.
uint64_t trove_awardsub_last (trove_awardsub_t *self, size_t shard);
void *trove_awardsub_socket (trove_awardsub_t *self);

#ifdef __cplusplus
}
#endif
#endif
