/*  trove_metrics - a metrics registry for Prometheus: counters, gauges and
    histograms, updated from any thread and served over HTTP as the text
    exposition format 0.0.4 (GET /metrics).

    A metric family is a name, a help text, a type and up to
    TROVE_METRICS_MAX_LABELS label names. A child is one fixed combination of
    label values; registering a (name, label values) pair creates it the first
    time and returns the same handle every time after. Creating a child takes
    the registry's mutex; updating it through its handle never does: updates
    are C11 relaxed atomics, safe from any thread, wait-free for counters and
    histogram buckets (gauges and sums use a compare-and-swap loop).

    Label sets must stay bounded (shard, result, message type: never a user id
    or an event id). Each family refuses children beyond
    TROVE_METRICS_MAX_CHILDREN: the registration returns NULL, logs one
    warning per family, and every update function does nothing when given
    NULL, so the sample is dropped without the caller checking.

    Keep the handles: look a child up once (at startup or at its first use),
    not on every event. A lookup is a hash probe under the mutex.

    Output: one # HELP and one # TYPE line per family, families in
    registration order, children in creation order. Label values and help
    texts are escaped as the format requires (\\, \" and \n).

    Caveats: memory only; every value restarts from zero with the process
    (Prometheus handles counter resets). The HTTP endpoint has no TLS and no
    authentication: bind it to loopback or a private interface. A handle must not
    be used after trove_metrics_destroy. Rendering holds the mutex, so a child
    being created waits for a render in progress (updates do not). */
#ifndef TROVE_METRICS_H_INCLUDED
#define TROVE_METRICS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most label names a family can have.
#define TROVE_METRICS_MAX_LABELS 3
//  Most children (label value combinations) a family can have.
#define TROVE_METRICS_MAX_CHILDREN 1024

typedef struct _trove_metrics_t trove_metrics_t;
typedef struct _trove_counter_t trove_counter_t;
typedef struct _trove_gauge_t trove_gauge_t;
typedef struct _trove_histogram_t trove_histogram_t;
typedef struct _trove_http_t trove_http_t;

//  An empty registry. NULL on OOM.
trove_metrics_t *trove_metrics_new (void);
//  Stops the HTTP server if one runs (waiting for a request in progress),
//  then frees the registry and every handle it gave. Safe on NULL and twice.
void trove_metrics_destroy (trove_metrics_t **self_p);

//  Registration. Common rules for the three functions below:
//  - name matches [a-zA-Z_:][a-zA-Z0-9_:]* and does not start with "__";
//  - label_names is NULL (no labels) or a NULL-terminated array of at most
//    TROVE_METRICS_MAX_LABELS names matching [a-zA-Z_][a-zA-Z0-9_]*, none
//    starting with "__", no duplicates, neither "le" nor "quantile" (which
//    Prometheus gives a meaning: histogram buckets, summary quantiles);
//  - label_values is NULL-terminated with exactly as many values as there
//    are label names (NULL when there are none); each value is any valid
//    UTF-8 (it is escaped on output);
//  - help is required; the help of the first registration is kept.
//  The first call with a name creates the family; later calls must give the
//  same type and the same label names in the same order (and, for
//  histograms, the same bounds). A name whose samples would collide with
//  another family's (a gauge "x_count" beside a histogram "x") is refused.
//  Returns the child's handle, the same one for the same label values, owned
//  by the registry. Returns NULL when a rule above is broken, when the family
//  has TROVE_METRICS_MAX_CHILDREN children already, or on OOM.

//  A counter: a value that only goes up. Its name must end in "_total".
trove_counter_t *trove_metrics_counter (trove_metrics_t *self, const char *name, const char *help,
                                        const char *const *label_names, const char *const *label_values);
//  A gauge: a double that goes up and down. Starts at 0.
trove_gauge_t *trove_metrics_gauge (trove_metrics_t *self, const char *name, const char *help,
                                    const char *const *label_names, const char *const *label_values);
//  A histogram with nbounds upper bounds (each bucket counts observations
//  <= its bound), strictly increasing and not NaN; only the last may be
//  +Inf, and the +Inf bucket is always added. nbounds may be 0 (then only
//  +Inf, _sum and _count). Rendered as
//  cumulative name_bucket{...,le="..."} lines, then name_sum and name_count.
trove_histogram_t *trove_metrics_histogram (trove_metrics_t *self, const char *name, const char *help,
                                            const char *const *label_names, const char *const *label_values,
                                            const double *bounds, size_t nbounds);

//  Updates: lock-free, from any thread. Each does nothing on a NULL handle.
void trove_counter_add (trove_counter_t *counter, uint64_t n);
void trove_counter_inc (trove_counter_t *counter);
void trove_gauge_set (trove_gauge_t *gauge, double value);
void trove_gauge_add (trove_gauge_t *gauge, double delta);  //  negative to decrease
//  Integer forms; exact while the gauge stays within +-2^53.
void trove_gauge_set_int (trove_gauge_t *gauge, int64_t value);
void trove_gauge_add_int (trove_gauge_t *gauge, int64_t delta);
//  NaN observations are dropped (they would poison _sum for good).
void trove_histogram_observe (trove_histogram_t *histogram, double value);

//  Current values (0 for a NULL handle). A histogram's count is the sum of
//  its buckets; under concurrent updates its sum may lag or lead it by the
//  observations in progress.
uint64_t trove_counter_value (trove_counter_t *counter);
double trove_gauge_value (trove_gauge_t *gauge);
uint64_t trove_histogram_count (trove_histogram_t *histogram);
double trove_histogram_sum (trove_histogram_t *histogram);

//  Register the gauge process_start_time_seconds (standard name) and set it
//  to when this process started, in seconds since the epoch (from /proc;
//  the current time when /proc is unreadable). Returns 0, or -1 on OOM or
//  when the name is taken by something else.
int trove_metrics_process_start (trove_metrics_t *self);

//  The whole registry in the text exposition format 0.0.4, each line ending
//  in "\n" ("" when empty). The caller frees it. NULL on OOM.
char *trove_metrics_render (trove_metrics_t *self);

//  Serve the registry over HTTP on a listener of its own (trove_http, one
//  thread), bound to address only: "127.0.0.1:9100" or "[::1]:9100"
//  (numeric addresses only; port 0 picks a free port, see
//  trove_metrics_port). The routes are trove_metrics_route's; any other
//  path answers 404, any other method 405 (JSON errors, as trove_http's).
//  At most 16 connections, each dropped after 10 s idle. Runs until
//  trove_metrics_destroy.
//  Returns 0, or -1 when the address does not parse, when already serving,
//  or when the server cannot start (address in use, no permission); then,
//  when err is not NULL, *err is a message naming the address that the
//  caller frees (or NULL on OOM).
int trove_metrics_serve (trove_metrics_t *self, const char *address, char **err);

//  Add GET and HEAD /metrics to http (not started yet), open to every
//  client even when http authenticates its other routes: a process whose
//  metrics and API addresses are the same serves both on one listener.
//  GET answers 200 with Content-Type "text/plain; version=0.0.4" and the
//  registry; HEAD the same without the body. The registry must outlive
//  http. Returns 0, or -1 (http started, out of memory).
int trove_metrics_route (trove_metrics_t *self, trove_http_t *http);

//  The port the server listens on, 0 when not serving.
uint16_t trove_metrics_port (trove_metrics_t *self);

#ifdef __cplusplus
}
#endif
#endif
