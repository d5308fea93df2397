/*  trovectl_prom - the samples of a Prometheus text exposition (the answer
    of a /metrics endpoint) and histogram quantiles as PromQL computes them.
    A process-private module of trovectl (trovectl top reads every
    process's /metrics with it); tests/unit/test_trovectl_prom.c tests it.

    Only samples are read: "name{label="value",...} value [timestamp]".
    Comments (# HELP, # TYPE), blank and malformed lines are skipped; label
    values are unescaped (\\, \", \n); values are what strtod reads (also
    +Inf, -Inf, NaN). */
#ifndef TROVECTL_PROM_H_INCLUDED
#define TROVECTL_PROM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Labels kept per sample (the daemons use at most 3, plus le); further
//  labels are checked but not kept.
#define TROVECTL_PROM_MAX_LABELS 4
//  Buckets of an aggregated histogram (the daemons use 12).
#define TROVECTL_PROM_MAX_BUCKETS 64

typedef struct {
    char *key;                                     //  series as rendered, "name{labels}": its identity
    char *name;                                    //  metric name
    int nlabels;                                   //  labels kept
    char *label_name [TROVECTL_PROM_MAX_LABELS];   //  label names
    char *label_value [TROVECTL_PROM_MAX_LABELS];  //  unescaped label values
    double value;                                  //  sample value (may be +-Inf or NaN)
} trovectl_prom_sample_t;

//  One /metrics answer (one successful scrape of one process).
typedef struct {
    trovectl_prom_sample_t *samples;  //  in the order of the answer
    size_t count;                     //  used
    size_t max;                       //  allocated
    double started;                   //  process_start_time_seconds, NAN when absent
    int64_t at_us;                    //  monotonic time the answer was complete
} trovectl_prom_t;

//  Parse a /metrics body (size bytes, need not be NUL-terminated). Lines
//  that are not samples are skipped; process_start_time_seconds (without
//  labels) is also kept in started. NULL on OOM.
trovectl_prom_t *trovectl_prom_parse (const char *body, size_t size);
//  Free a parse and NULL the pointer; safe on NULL.
void trovectl_prom_destroy (trovectl_prom_t **self_p);

//  Parse one line (len bytes, no newline) into sample. Returns 0 (free
//  sample->key, which holds every string of the sample), or -1 when the line
//  is not a sample (comment, blank, malformed, OOM); nothing is allocated
//  then.
int trovectl_prom_parse_line (const char *line, size_t len, trovectl_prom_sample_t *sample);

//  Value of the label name of sample, or NULL.
const char *trovectl_prom_label (const trovectl_prom_sample_t *sample, const char *name);
//  The sample of scrape with this key ("name{labels}" as rendered), or NULL;
//  hint is where to look first (series keep their order between scrapes).
const trovectl_prom_sample_t *trovectl_prom_find (const trovectl_prom_t *scrape, const char *key,
                                                  size_t hint);

//  A histogram summed over processes: buckets by upper bound.
typedef struct {
    double le [TROVECTL_PROM_MAX_BUCKETS];     //  upper bounds, increasing
    double count [TROVECTL_PROM_MAX_BUCKETS];  //  cumulative increase of each bucket
    size_t n;                                  //  buckets
} trovectl_prom_hist_t;

//  Add count to the bucket le (a new bound is inserted in order; beyond
//  TROVECTL_PROM_MAX_BUCKETS bounds, new ones are dropped).
void trovectl_prom_hist_add (trovectl_prom_hist_t *self, double le, double count);
//  The q-quantile (0..1) as PromQL histogram_quantile () computes it: linear
//  interpolation inside the bucket where it falls; in the +Inf bucket, the
//  highest finite bound; in a first bucket with bound <= 0, that bound.
//  Cumulative counts that decrease (a reset) are read as their running
//  maximum. NAN when there is no observation or no +Inf bucket.
double trovectl_prom_hist_quantile (const trovectl_prom_hist_t *self, double q);

#endif
