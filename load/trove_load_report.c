/*  trove-load - the numbers of a run: a cheap histogram for the progress
    lines, exact percentiles (sorted samples) and the final report, as text
    or one JSON object. */
#include "trove_load.h"
#include "trove_event.h"
#include "trove_util.h"

#include <jansson.h>
#include <stdlib.h>

static size_t
s_hist_index (int64_t v)
{
    uint64_t u = v < 0 ? 0 : (uint64_t) v;
    if (u < 2 * TROVE_LOAD_HIST_SUB)
        return (size_t) u;
    int msb = 63 - __builtin_clzll (u);
    int shift = msb - 6;
    size_t index = (size_t) shift * TROVE_LOAD_HIST_SUB + (size_t) (u >> shift);
    return index < TROVE_LOAD_HIST_BUCKETS ? index : TROVE_LOAD_HIST_BUCKETS - 1;
}

static int64_t
s_hist_value (size_t index)
{
    if (index < 2 * TROVE_LOAD_HIST_SUB)
        return (int64_t) index;
    int shift = (int) (index / TROVE_LOAD_HIST_SUB) - 1;
    return (int64_t) ((TROVE_LOAD_HIST_SUB + index % TROVE_LOAD_HIST_SUB) << shift);
}

void
trove_load_hist_add (trove_load_hist_t *self, int64_t v)
{
    self->counts [s_hist_index (v)]++;
    self->total++;
}

int64_t
trove_load_hist_percentile (const trove_load_hist_t *self, double p)
{
    if (self->total == 0)
        return 0;
    uint64_t rank = (uint64_t) (p * (double) self->total);
    if (rank >= self->total)
        rank = self->total - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < TROVE_LOAD_HIST_BUCKETS; i++) {
        seen += self->counts [i];
        if (seen > rank)
            return s_hist_value (i);
    }
    return s_hist_value (TROVE_LOAD_HIST_BUCKETS - 1);
}


//  ---------------------------------------------------------------------------
//  Exact percentiles over all samples.

typedef struct {
    size_t n;
    double p50, p90, p99, p999, max;  //  milliseconds
} s_stats_t;

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

static double
s_pick (const int64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t) (p * (double) n);
    if (rank >= n)
        rank = n - 1;
    return sorted [rank] / 1000.0;
}

//  Sorts samples in place.
static s_stats_t
s_stats (int64_t *samples, size_t n)
{
    s_stats_t stats = {.n = n};
    if (n == 0)
        return stats;
    qsort (samples, n, sizeof *samples, s_cmp_i64);
    stats.p50 = s_pick (samples, n, 0.50);
    stats.p90 = s_pick (samples, n, 0.90);
    stats.p99 = s_pick (samples, n, 0.99);
    stats.p999 = s_pick (samples, n, 0.999);
    stats.max = samples [n - 1] / 1000.0;
    return stats;
}

static json_t *
s_stats_json (const s_stats_t *stats)
{
    return json_pack ("{s:I, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t) stats->n, "p50", stats->p50, "p90",
                      stats->p90, "p99", stats->p99, "p999", stats->p999, "max", stats->max);
}


//  ---------------------------------------------------------------------------
//  Report

typedef struct {
    s_stats_t answer;           //  scheduled send -> final answer
    s_stats_t accepted_award;   //  coin.accepted_us -> award seen
    s_stats_t submit_award;     //  scheduled send -> award seen
    size_t awarded_unaccepted;  //  events with a coin whose first answer was not "accepted"
    size_t accepted_events;     //  distinct events answered "accepted" on first submission
    double elapsed_s;           //  start -> last answer
    double throughput;          //  final answers / elapsed
} s_report_t;

static void
s_report_print (const trove_load_run_t *run, const trove_load_awards_t *awards, const s_report_t *r)
{
    const trove_load_opts_t *opts = run->opts;
    printf ("trove-load: %zu submissions (%zu events, %zu re-sends), %s, batch %zu, window %zu\n", run->nsent,
            run->nevents, run->nresent, opts->rate > 0 ? "open loop" : "closed loop", opts->batch,
            opts->window);
    if (opts->rate > 0)
        printf ("  target rate     %.0f events/s\n", opts->rate);
    printf ("  answers         accepted %zu  duplicate %zu  rejected %zu  other %zu  "
            "unanswered %zu",
            run->accepted, run->duplicate, run->rejected, run->other, run->nsent - run->answered);
    if (run->nsent < opts->events)
        printf ("  not sent %zu", opts->events - run->nsent);
    printf ("\n");
    if (run->errors [0])
        printf ("  first non-final answer: %s\n", run->errors);
    printf ("  elapsed         %.3f s\n", r->elapsed_s);
    printf ("  throughput      %.0f answers/s\n", r->throughput);
    printf ("  submit->answer  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n", r->answer.p50,
            r->answer.p90, r->answer.p99, r->answer.p999, r->answer.max);
    if (awards) {
        size_t events = atomic_load (&awards->events);
        printf ("  awards          %zu coins for %zu of %zu accepted events (%zu extra, "
                "%zu from other runs, %zu on events not answered accepted)\n",
                atomic_load (&awards->coins), events, r->accepted_events, atomic_load (&awards->extra),
                atomic_load (&awards->foreign), r->awarded_unaccepted);
        printf ("  accepted->award p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n", r->accepted_award.p50,
                r->accepted_award.p90, r->accepted_award.p99, r->accepted_award.max);
        printf ("  submit->award   p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n", r->submit_award.p50,
                r->submit_award.p90, r->submit_award.p99, r->submit_award.max);
    }
    printf ("  checks          re-sends not answered duplicate %zu (accepted again %zu), "
            "new events answered duplicate %zu\n",
            run->resend_mismatch, run->resend_accepted, run->new_duplicate);
}

static int
s_report_json (const trove_load_run_t *run, const trove_load_awards_t *awards, const s_report_t *r)
{
    const trove_load_opts_t *opts = run->opts;
    json_t *root = json_pack (
        "{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o, "
        "s:{s:I, s:I, s:I}, s:I}",
        "id_prefix", opts->prefix, "rate", opts->rate, "batch", (json_int_t) opts->batch, "window",
        (json_int_t) opts->window, "submitted", (json_int_t) run->nsent, "events", (json_int_t) run->nevents,
        "resent", (json_int_t) run->nresent, "accepted", (json_int_t) run->accepted, "duplicate",
        (json_int_t) run->duplicate, "rejected", (json_int_t) run->rejected, "other", (json_int_t) run->other,
        "unanswered", (json_int_t) (run->nsent - run->answered), "elapsed_s", r->elapsed_s, "throughput",
        r->throughput, "latency_ms", s_stats_json (&r->answer), "checks", "resend_not_duplicate",
        (json_int_t) run->resend_mismatch, "resend_accepted", (json_int_t) run->resend_accepted,
        "new_duplicate", (json_int_t) run->new_duplicate, "unsent", (json_int_t) (opts->events - run->nsent));
    if (!root)
        return -1;
    if (awards) {
        json_t *aw = json_pack (
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "coins", (json_int_t) atomic_load (&awards->coins),
            "events", (json_int_t) atomic_load (&awards->events), "accepted_events",
            (json_int_t) r->accepted_events, "extra", (json_int_t) atomic_load (&awards->extra), "foreign",
            (json_int_t) atomic_load (&awards->foreign), "awarded_unaccepted",
            (json_int_t) r->awarded_unaccepted, "accepted_to_award_ms", s_stats_json (&r->accepted_award),
            "submit_to_award_ms", s_stats_json (&r->submit_award));
        if (!aw || json_object_set_new (root, "awards", aw) != 0) {
            json_decref (root);
            return -1;
        }
    }
    char *text = json_dumps (root, JSON_COMPACT);
    json_decref (root);
    if (!text)
        return -1;
    printf ("%s\n", text);
    free (text);
    return 0;
}

//  Compute the report (sorts copies of the samples). Returns 0 or -1 on OOM.
static int
s_report_build (const trove_load_run_t *run, const trove_load_awards_t *awards, s_report_t *r)
{
    *r = (s_report_t){0};
    int64_t end = run->answered ? run->last_answer_us : run->end_us;
    r->elapsed_s = (end - run->start_us) / 1e6;
    r->throughput = r->elapsed_s > 0 ? run->answered / r->elapsed_s : 0;
    size_t cap = run->nsent ? run->nsent : 1;
    int64_t *samples = malloc (cap * sizeof *samples);
    int64_t *samples2 = malloc (cap * sizeof *samples2);
    if (!samples || !samples2) {
        free (samples);
        free (samples2);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < run->nsent; i++)
        if (run->sends [i].status)
            samples [n++] = run->sends [i].latency_us;
    r->answer = s_stats (samples, n);
    for (size_t i = 0; i < run->nevents; i++)
        if (run->events [i].status == TROVE__STATUS__ACCEPTED)
            r->accepted_events++;
    if (awards) {
        size_t m = 0;
        n = 0;
        for (size_t i = 0; i < run->nevents; i++) {
            if (!awards->seen_mono [i])
                continue;
            const trove_load_event_t *event = &run->events [i];
            if (event->status != TROVE__STATUS__ACCEPTED)
                r->awarded_unaccepted++;
            samples [n++] = awards->accepted_lat [i];
            samples2 [m++] = awards->seen_mono [i] - run->sends [event->first_send].sched_us;
        }
        r->accepted_award = s_stats (samples, n);
        r->submit_award = s_stats (samples2, m);
    }
    free (samples);
    free (samples2);
    return 0;
}


int
trove_load_report (const trove_load_run_t *run, const trove_load_awards_t *awards)
{
    s_report_t report;
    if (s_report_build (run, awards, &report) != 0) {
        trove_log ('E', "out of memory for the report");
        return -1;
    }
    if (run->opts->json) {
        if (s_report_json (run, awards, &report) != 0) {
            trove_log ('E', "cannot build the JSON report");
            return -1;
        }
    }
    else
        s_report_print (run, awards, &report);
    return 0;
}
