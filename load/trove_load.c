/*  trove-load - load generator for a Trove cluster.

    Submits --events events through a trove_submitter (pipelined, retried
    with the same req_id, bounded window) and reports how they were answered
    and how long that took. Optionally (--awards) it also follows the award
    stream (trove_awardsub, in its own thread so that award arrival times are
    not delayed by the sending loop) and measures how long after acceptance
    each event's coin was seen.

    Event ids are --id-prefix followed by a decimal counter, so every event of
    a run is unique and an award is matched to its event by parsing
    coin.events[0].id. A --dup-ratio fraction of the submissions re-send an
    earlier event (same source, id and content) in a new request once that
    event has its final answer: such a re-send must be answered "duplicate"
    (or "rejected" again if the original was rejected). Every mismatch is
    counted under "checks" and makes the exit status 1.

    Open loop (--rate R > 0): event i is due at start + i/R on the monotonic
    clock; latency is measured from that scheduled time, not from when the
    event was actually handed to the socket, so a stalled cluster shows up in
    the numbers instead of silently slowing the generator (coordinated
    omission). Closed loop (--rate 0): the window is kept full.

    Exit status: 0 when every event got a final answer and every check
    passed; 1 otherwise (including setup errors); 2 on bad usage. */
#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_client.h"
#include "trove_event.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NAMES 32            //  sources or types given on the command line
#define PREFIX_MAX 64           //  bytes of an id prefix
#define AWARD_GRACE_US 5000000  //  wait for awards this long after the last answer

//  ---------------------------------------------------------------------------
//  Options

typedef struct {
    char *config;               //  path of the cluster config
    size_t events;              //  submissions in total (new events + re-sends)
    double rate;                //  events/s, 0 = closed loop
    uint32_t users;             //  distinct users u0..u{users-1}
    char *sources [MAX_NAMES];  //  source names (owned)
    size_t nsources;
    char *types [MAX_NAMES];  //  event types (owned)
    size_t ntypes;
    double dup_ratio;          //  fraction of submissions that are re-sends
    double ooo_ratio;          //  fraction of new events with ts moved back
    double backdate_ratio;     //  fraction of new events with ts moved days back
    double backdate_days;      //  how far at most
    size_t batch;              //  events per request
    size_t window;             //  max events in flight
    uint64_t seed;             //  random seed
    char prefix [PREFIX_MAX];  //  id prefix
    char *history;             //  path of the per-event answer file, or NULL
    char *events_out;          //  path of the NDJSON of every distinct event, or NULL
    bool awards;               //  follow the award stream
    bool users_in_order;       //  event i is user i % users (fills a board)
    bool json;                 //  final report as JSON
    double report_every;       //  seconds between progress lines, 0 = none
    double stall_s;            //  give up after this long without an answer
} s_opts_t;

//  ---------------------------------------------------------------------------
//  Random numbers: splitmix64, reproducible from --seed.

static uint64_t
s_rand (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Uniform in [0, 1).
static double
s_rand_unit (uint64_t *state)
{
    return (double) (s_rand (state) >> 11) / 9007199254740992.0;
}

//  ---------------------------------------------------------------------------
//  A log-linear histogram (HDR-like, ~1.5% resolution) of microseconds, for
//  the cheap progress percentiles. The final report sorts exact samples.

#define HIST_SUB 64
#define HIST_BUCKETS (HIST_SUB * 60)

typedef struct {
    uint64_t counts [HIST_BUCKETS];
    uint64_t total;
} s_hist_t;

static size_t
s_hist_index (int64_t v)
{
    uint64_t u = v < 0 ? 0 : (uint64_t) v;
    if (u < 2 * HIST_SUB)
        return (size_t) u;
    int msb = 63 - __builtin_clzll (u);
    int shift = msb - 6;
    size_t index = (size_t) shift * HIST_SUB + (size_t) (u >> shift);
    return index < HIST_BUCKETS ? index : HIST_BUCKETS - 1;
}

static int64_t
s_hist_value (size_t index)
{
    if (index < 2 * HIST_SUB)
        return (int64_t) index;
    int shift = (int) (index / HIST_SUB) - 1;
    return (int64_t) ((HIST_SUB + index % HIST_SUB) << shift);
}

static void
s_hist_add (s_hist_t *self, int64_t v)
{
    self->counts [s_hist_index (v)]++;
    self->total++;
}

static int64_t
s_hist_percentile (const s_hist_t *self, double p)
{
    if (self->total == 0)
        return 0;
    uint64_t rank = (uint64_t) (p * (double) self->total);
    if (rank >= self->total)
        rank = self->total - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += self->counts [i];
        if (seen > rank)
            return s_hist_value (i);
    }
    return s_hist_value (HIST_BUCKETS - 1);
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
//  Award follower: an actor owning a trove_awardsub. It only writes the
//  per-event arrays (read by the main thread after the actor is gone) and
//  the atomic counters (read any time).

typedef struct {
    const trove_cfg_t *cfg;  //  cluster config (borrowed)
    const char *prefix;      //  this run's id prefix
    size_t prefix_len;
    size_t capacity;        //  size of the per-event arrays
    int64_t *seen_mono;     //  first award for event i seen at (mono µs), 0 = none
    int64_t *accepted_lat;  //  seen (wall µs) - coin.accepted_us, first award
    atomic_size_t coins;    //  awards matched to an event of this run
    atomic_size_t events;   //  events of this run with at least one award
    atomic_size_t extra;    //  awards beyond the first for the same event
    atomic_size_t foreign;  //  awards for events of other runs
    atomic_bool ready;      //  the subscription is set up
} s_awards_t;

static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_awards_t *self = (s_awards_t *) arg;
    int64_t now_mono = trove_mono_us ();
    int64_t now_wall = trove_now_us ();
    const char *id = coin->n_events > 0 && coin->events [0] ? coin->events [0]->id : NULL;
    if (!id || strncmp (id, self->prefix, self->prefix_len) != 0) {
        atomic_fetch_add (&self->foreign, 1);
        return;
    }
    const char *digits = id + self->prefix_len;
    char *end;
    errno = 0;
    unsigned long long index = strtoull (digits, &end, 10);
    if (*digits < '0' || *digits > '9' || *end || errno || index >= self->capacity) {
        atomic_fetch_add (&self->foreign, 1);
        return;
    }
    atomic_fetch_add (&self->coins, 1);
    //  Revocations and the reconciler's entries say nothing of real time.
    if (self->seen_mono [index] || coin->revoked || coin->accepted_us <= 0) {
        atomic_fetch_add (&self->extra, 1);
        return;
    }
    self->seen_mono [index] = now_mono;
    self->accepted_lat [index] = now_wall - coin->accepted_us;
    atomic_fetch_add (&self->events, 1);
}

static void
s_awards_actor (zsock_t *pipe, void *arg)
{
    s_awards_t *self = (s_awards_t *) arg;
    trove_awardsub_t *sub = trove_awardsub_new (self->cfg, true, s_on_award, self);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    if (sub && poller && zpoller_add (poller, trove_awardsub_socket (sub)) == 0)
        atomic_store (&self->ready, true);
    zsock_signal (pipe, 0);
    bool ready = atomic_load (&self->ready);
    while (poller) {
        void *which = zpoller_wait (poller, ready ? 100 : -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        else if (!which && zpoller_terminated (poller))
            break;
        //  Also on a timeout: the subscriber has gap and heartbeat timers.
        if (ready && trove_awardsub_poll (sub, 0) != 0)
            trove_log ('W', "award stream: poll failed");
    }
    zpoller_destroy (&poller);
    trove_awardsub_destroy (&sub);
}

//  ---------------------------------------------------------------------------
//  The run

//  One submission.
typedef struct {
    uint64_t event;      //  index of the event (its id counter)
    int64_t sched_us;    //  scheduled send time, monotonic µs
    int64_t latency_us;  //  scheduled time -> final answer
    uint8_t status;      //  Trove__Status of the final answer, 0 = none yet
} s_send_t;

//  One distinct event (re-sends point back to it).
typedef struct {
    int64_t ts_ms;        //  event time
    uint64_t first_send;  //  index of its first submission
    uint32_t user;        //  user number
    uint8_t source;       //  index into opts.sources
    uint8_t type;         //  index into opts.types
    uint8_t status;       //  answer to the first submission, 0 = none yet
} s_event_t;

typedef struct {
    const s_opts_t *opts;  //  options (borrowed)
    trove_submitter_t *submitter;
    FILE *history;      //  per-event answers, or NULL
    FILE *events_out;   //  every distinct event as sent (NDJSON), or NULL
    uint64_t rng;       //  random state
    s_send_t *sends;    //  opts->events entries
    size_t nsent;       //  submissions handed to the submitter
    s_event_t *events;  //  opts->events entries at most
    size_t nevents;     //  distinct events created
    uint64_t *ready;    //  events answered, candidates for a re-send
    size_t nready;
    size_t new_quota;  //  distinct events to make: events - re-sends
    double dup_owed;   //  re-sends due but not yet made
    size_t nresent;    //  re-sends made
    //  Answers
    size_t answered;
    size_t accepted, duplicate, rejected, other;
    size_t resend_mismatch;  //  re-send answered neither duplicate nor as its original
    size_t resend_accepted;  //  re-send answered "accepted": a second acceptance
    size_t new_duplicate;    //  new event answered "duplicate"
    int64_t start_us;        //  monotonic start
    int64_t last_answer_us;  //  monotonic time of the last final answer
    int64_t end_us;          //  when the sending loop ended
    s_hist_t hist;           //  latencies so far (progress)
    char errors [256];       //  first non-final answer seen, for the report
} s_run_t;

//  Writes the reason as one whitespace-free field ("-" when empty).
static void
s_write_field (FILE *file, const char *text)
{
    if (!text || !*text) {
        fputc ('-', file);
        return;
    }
    for (const char *p = text; *p; p++)
        fputc (*p == ' ' || *p == '\t' || *p == '\n' ? '_' : *p, file);
}

static void
s_on_result (void *arg, uint64_t tag, const Trove__Result *result, int64_t latency_us)
{
    (void) latency_us;  //  we measure from the scheduled time instead
    s_run_t *self = (s_run_t *) arg;
    assert (tag < self->nsent);
    s_send_t *send = &self->sends [tag];
    if (send->status)
        return;  //  the submitter promises one answer; be safe
    int64_t now = trove_mono_us ();
    int status = result->status;
    send->status = (uint8_t) (status ? status : 0xff);
    send->latency_us = now - send->sched_us;
    s_hist_add (&self->hist, send->latency_us);
    self->answered++;
    self->last_answer_us = now;
    switch (status) {
        case TROVE__STATUS__ACCEPTED:
            self->accepted++;
            break;
        case TROVE__STATUS__DUPLICATE:
            self->duplicate++;
            break;
        case TROVE__STATUS__REJECTED:
            self->rejected++;
            break;
        default:
            self->other++;
            if (!self->errors [0])
                snprintf (self->errors, sizeof self->errors, "%s %s %s", trove_event_status_name (status),
                          result->reason ? result->reason : "", result->detail ? result->detail : "");
            break;
    }
    s_event_t *event = &self->events [send->event];
    if (event->first_send == tag) {
        event->status = send->status;
        if (status == TROVE__STATUS__DUPLICATE)
            self->new_duplicate++;
        if (self->opts->dup_ratio > 0)
            self->ready [self->nready++] = send->event;
    }
    else {
        int expected = event->status == TROVE__STATUS__ACCEPTED || event->status == TROVE__STATUS__DUPLICATE
                         ? TROVE__STATUS__DUPLICATE
                         : event->status;
        if (status != expected)
            self->resend_mismatch++;
        if (status == TROVE__STATUS__ACCEPTED)
            self->resend_accepted++;
    }
    if (self->history) {
        const s_opts_t *opts = self->opts;
        fprintf (self->history, "%s %s%" PRIu64 " u%" PRIu32 " %s %s ", opts->sources [event->source],
                 opts->prefix, send->event, event->user, opts->types [event->type],
                 trove_event_status_name (status));
        s_write_field (self->history, result->reason);
        fputc ('\n', self->history);
    }
}

//  Hand the next submission to the submitter. Re-sends are spread over the
//  run (one each time a whole one is owed) and need an answered event to
//  re-send; once every new event is made, only re-sends are left, and they
//  wait for answers. Returns 0, or -1 when nothing can be sent now (window
//  full, or re-sends waiting for answers); nothing changed then.
static int
s_send_next (s_run_t *self, int64_t sched_us)
{
    const s_opts_t *opts = self->opts;
    assert (self->nsent < opts->events);
    uint64_t index;
    size_t pick = 0;
    bool resend = false;
    double owed = self->dup_owed + opts->dup_ratio;
    bool new_left = self->nevents < self->new_quota;
    if ((owed >= 1 || !new_left) && self->nready > 0) {
        pick = (size_t) (s_rand (&self->rng) % self->nready);
        index = self->ready [pick];
        resend = true;
    }
    else if (!new_left)
        return -1;
    else {
        index = self->nevents;
        s_event_t *event = &self->events [index];
        event->user =
            (uint32_t) (opts->users_in_order ? index % opts->users : s_rand (&self->rng) % opts->users);
        event->source = (uint8_t) (s_rand (&self->rng) % opts->nsources);
        event->type = (uint8_t) (s_rand (&self->rng) % opts->ntypes);
        event->ts_ms = trove_now_ms () - (int64_t) (s_rand (&self->rng) % 20);
        if (opts->ooo_ratio > 0 && s_rand_unit (&self->rng) < opts->ooo_ratio)
            event->ts_ms -= 1000 + (int64_t) (s_rand (&self->rng) % 4000);
        //  Days back: other local days (caps, streaks) and events older than
        //  what the scorer's rules engine still holds for the user.
        if (opts->backdate_ratio > 0 && s_rand_unit (&self->rng) < opts->backdate_ratio)
            event->ts_ms -= (int64_t) (s_rand_unit (&self->rng) * opts->backdate_days * 86400000.0);
        event->status = 0;
        event->first_send = self->nsent;
    }
    const s_event_t *event = &self->events [index];
    char id [PREFIX_MAX + 24];
    char user [16];
    snprintf (id, sizeof id, "%s%" PRIu64, opts->prefix, index);
    snprintf (user, sizeof user, "u%" PRIu32, event->user);
    Trove__Event ev = TROVE__EVENT__INIT;
    ev.source = opts->sources [event->source];
    ev.id = id;
    ev.user = user;
    ev.type = opts->types [event->type];
    ev.ts_ms = event->ts_ms;
    //  The send record must exist before add: a full batch goes out at once.
    size_t tag = self->nsent;
    self->sends [tag] = (s_send_t){.event = index, .sched_us = sched_us};
    self->nsent++;
    if (trove_submitter_add (self->submitter, &ev, tag) != 0) {
        self->nsent--;
        return -1;
    }
    if (resend) {
        self->ready [pick] = self->ready [--self->nready];
        self->nresent++;
        self->dup_owed = owed - 1;
    }
    else {
        self->nevents++;
        self->dup_owed = owed;
        if (self->events_out)
            fprintf (self->events_out,
                     "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":%lld}\n", ev.source,
                     ev.id, ev.user, ev.type, (long long) ev.ts_ms);
    }
    return 0;
}

static void
s_progress (s_run_t *self, s_awards_t *awards, size_t *last_answered, int64_t *last_us)
{
    int64_t now = trove_mono_us ();
    double interval = (now - *last_us) / 1e6;
    double total = (now - self->start_us) / 1e6;
    fprintf (stderr,
             "trove-load: %7.1f s  sent %zu  answered %zu  %.0f ev/s (avg %.0f)  "
             "accepted %zu  dup %zu  rej %zu  coins %zu  p50 %.3f ms  p99 %.3f ms\n",
             total, self->nsent, self->answered,
             interval > 0 ? (self->answered - *last_answered) / interval : 0,
             total > 0 ? self->answered / total : 0, self->accepted, self->duplicate, self->rejected,
             awards ? atomic_load (&awards->coins) : 0, s_hist_percentile (&self->hist, 0.50) / 1000.0,
             s_hist_percentile (&self->hist, 0.99) / 1000.0);
    *last_answered = self->answered;
    *last_us = now;
}

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

//  ---------------------------------------------------------------------------
//  Command line

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: trove-load (--dir DIR | --config FILE) [options]\n"
             "  --events N         submissions in total, re-sends included (100000)\n"
             "  --rate R           events/s, open loop; 0 = closed loop, as fast as the window allows (0)\n"
             "  --users U          distinct users u0..u<U-1> (1000)\n"
             "  --sources LIST     comma-separated, all declared in the config (web,mobile,game,partner)\n"
             "  --types LIST       comma-separated event types (checkin,visit,purchase)\n"
             "  --dup-ratio F      fraction of submissions re-sending an answered event (0)\n"
             "  --ooo-ratio F      fraction of events with ts moved 1-5 s back (0)\n"
             "  --backdate-ratio F fraction of events with ts moved up to --backdate-days back (0)\n"
             "  --backdate-days D  (1)\n"
             "  --events-out FILE  every distinct event as sent, one JSON line each (for a reference model)\n"
             "  --batch B          events per request (100)\n"
             "  --window W         max events in flight (20000)\n"
             "  --seed S           random seed (from the clock)\n"
             "  --id-prefix P      event ids are P<counter> (l<time><pid>-)\n"
             "  --history FILE     one line per submission: source id user type status reason\n"
             "  --awards           follow the award stream, report award latency\n"
             "  --json             final report as one JSON object on stdout\n"
             "  --report-every S   progress line on stderr every S seconds (0 = off)\n"
             "  --stall-timeout S  give up after S s without any answer (60)\n"
             "  --users-in-order   event i is user u<i mod U> (every user gets events)\n");
}

//  Split a comma-separated list into owned strings. Returns 0 or -1.
static int
s_split (const char *text, char **names, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        free (names [i]);
    *count = 0;
    const char *p = text;
    while (*p) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        if (len == 0 || *count == MAX_NAMES)
            return -1;
        names [(*count)++] = strndup (p, len);
        p += len + (comma ? 1 : 0);
        if (comma && !*p)
            return -1;
    }
    return *count ? 0 : -1;
}

static int
s_parse_double (const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (errno || end == text || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static int
s_parse_u64 (const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*text == '-')
        return -1;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void
s_opts_free (s_opts_t *opts)
{
    free (opts->config);
    free (opts->history);
    free (opts->events_out);
    for (size_t i = 0; i < opts->nsources; i++)
        free (opts->sources [i]);
    for (size_t i = 0; i < opts->ntypes; i++)
        free (opts->types [i]);
}

//  Returns 0, or 2 on bad usage (message printed), or 1 after --help.
static int
s_parse_args (int argc, char *argv [], s_opts_t *opts)
{
    enum {
        O_DIR = 256,
        O_CONFIG,
        O_EVENTS,
        O_RATE,
        O_USERS,
        O_SOURCES,
        O_TYPES,
        O_DUP,
        O_OOO,
        O_BACKDATE,
        O_BACKDATE_DAYS,
        O_EVENTS_OUT,
        O_BATCH,
        O_WINDOW,
        O_SEED,
        O_PREFIX,
        O_HISTORY,
        O_AWARDS,
        O_JSON,
        O_REPORT,
        O_STALL,
        O_IN_ORDER,
        O_HELP
    };
    static const struct option long_opts [] = {{"dir", required_argument, NULL, O_DIR},
                                               {"config", required_argument, NULL, O_CONFIG},
                                               {"events", required_argument, NULL, O_EVENTS},
                                               {"rate", required_argument, NULL, O_RATE},
                                               {"users", required_argument, NULL, O_USERS},
                                               {"sources", required_argument, NULL, O_SOURCES},
                                               {"types", required_argument, NULL, O_TYPES},
                                               {"dup-ratio", required_argument, NULL, O_DUP},
                                               {"ooo-ratio", required_argument, NULL, O_OOO},
                                               {"backdate-ratio", required_argument, NULL, O_BACKDATE},
                                               {"backdate-days", required_argument, NULL, O_BACKDATE_DAYS},
                                               {"events-out", required_argument, NULL, O_EVENTS_OUT},
                                               {"batch", required_argument, NULL, O_BATCH},
                                               {"window", required_argument, NULL, O_WINDOW},
                                               {"seed", required_argument, NULL, O_SEED},
                                               {"id-prefix", required_argument, NULL, O_PREFIX},
                                               {"history", required_argument, NULL, O_HISTORY},
                                               {"awards", no_argument, NULL, O_AWARDS},
                                               {"json", no_argument, NULL, O_JSON},
                                               {"report-every", required_argument, NULL, O_REPORT},
                                               {"stall-timeout", required_argument, NULL, O_STALL},
                                               {"users-in-order", no_argument, NULL, O_IN_ORDER},
                                               {"help", no_argument, NULL, O_HELP},
                                               {NULL, 0, NULL, 0}};
    *opts = (s_opts_t){.events = 100000,
                       .backdate_days = 1,
                       .users = 1000,
                       .batch = 100,
                       .window = 20000,
                       .stall_s = 60,
                       .seed = (uint64_t) trove_now_us () ^ ((uint64_t) getpid () << 32)};
    snprintf (opts->prefix, sizeof opts->prefix, "l%" PRIx64 "%x-", (uint64_t) trove_now_ms (),
              (unsigned) getpid ());
    s_split ("web,mobile,game,partner", opts->sources, &opts->nsources);
    s_split ("checkin,visit,purchase", opts->types, &opts->ntypes);
    const char *dir = NULL;
    const char *config = NULL;
    uint64_t u;
    int c;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "", long_opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
            case O_DIR:
                dir = optarg;
                break;
            case O_CONFIG:
                config = optarg;
                break;
            case O_EVENTS:
                if (s_parse_u64 (optarg, 1, 100000000, &u))
                    bad = "--events";
                else
                    opts->events = u;
                break;
            case O_RATE:
                if (s_parse_double (optarg, 0, 1e7, &opts->rate))
                    bad = "--rate";
                break;
            case O_USERS:
                if (s_parse_u64 (optarg, 1, UINT32_MAX, &u))
                    bad = "--users";
                else
                    opts->users = (uint32_t) u;
                break;
            case O_SOURCES:
                if (s_split (optarg, opts->sources, &opts->nsources))
                    bad = "--sources";
                break;
            case O_TYPES:
                if (s_split (optarg, opts->types, &opts->ntypes))
                    bad = "--types";
                break;
            case O_DUP:
                if (s_parse_double (optarg, 0, 0.99, &opts->dup_ratio))
                    bad = "--dup-ratio";
                break;
            case O_OOO:
                if (s_parse_double (optarg, 0, 1, &opts->ooo_ratio))
                    bad = "--ooo-ratio";
                break;
            case O_BATCH:
                if (s_parse_u64 (optarg, 1, 100000, &u))
                    bad = "--batch";
                else
                    opts->batch = u;
                break;
            case O_WINDOW:
                if (s_parse_u64 (optarg, 1, 10000000, &u))
                    bad = "--window";
                else
                    opts->window = u;
                break;
            case O_SEED:
                if (s_parse_u64 (optarg, 0, UINT64_MAX, &u))
                    bad = "--seed";
                else
                    opts->seed = u;
                break;
            case O_PREFIX:
                if (!*optarg || strlen (optarg) >= sizeof opts->prefix || strchr (optarg, ' '))
                    bad = "--id-prefix";
                else
                    snprintf (opts->prefix, sizeof opts->prefix, "%s", optarg);
                break;
            case O_HISTORY:
                free (opts->history);
                opts->history = strdup (optarg);
                break;
            case O_EVENTS_OUT:
                free (opts->events_out);
                opts->events_out = strdup (optarg);
                break;
            case O_BACKDATE:
                if (s_parse_double (optarg, 0, 1, &opts->backdate_ratio))
                    bad = "--backdate-ratio";
                break;
            case O_BACKDATE_DAYS:
                if (s_parse_double (optarg, 0, 366, &opts->backdate_days))
                    bad = "--backdate-days";
                break;
            case O_AWARDS:
                opts->awards = true;
                break;
            case O_JSON:
                opts->json = true;
                break;
            case O_REPORT:
                if (s_parse_double (optarg, 0, 86400, &opts->report_every))
                    bad = "--report-every";
                break;
            case O_STALL:
                if (s_parse_double (optarg, 1, 86400, &opts->stall_s))
                    bad = "--stall-timeout";
                break;
            case O_IN_ORDER:
                opts->users_in_order = true;
                break;
            case O_HELP:
                s_usage (stdout);
                return 1;
            default:
                fprintf (stderr, "trove-load: unknown option or missing value: %s\n", argv [optind - 1]);
                s_usage (stderr);
                return 2;
        }
        if (bad) {
            fprintf (stderr, "trove-load: bad value for %s: '%s'\n", bad, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "trove-load: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    if ((dir != NULL) == (config != NULL)) {
        fprintf (stderr, "trove-load: give exactly one of --dir and --config\n");
        s_usage (stderr);
        return 2;
    }
    opts->config = config ? strdup (config) : zsys_sprintf ("%s/trove.cfg", dir);
    return 0;
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
s_report_print (const s_run_t *run, const s_awards_t *awards, const s_report_t *r)
{
    const s_opts_t *opts = run->opts;
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
s_report_json (const s_run_t *run, const s_awards_t *awards, const s_report_t *r)
{
    const s_opts_t *opts = run->opts;
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
s_report_build (const s_run_t *run, const s_awards_t *awards, s_report_t *r)
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
            const s_event_t *event = &run->events [i];
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

//  ---------------------------------------------------------------------------

int
main (int argc, char *argv [])
{
    s_opts_t opts;
    int rc = s_parse_args (argc, argv, &opts);
    if (rc) {
        s_opts_free (&opts);
        return rc == 1 ? 0 : 2;
    }
    rc = 1;
    trove_log_init ("trove-load");
    //  Our own handler: the first Ctrl-C stops sending and reports what was
    //  answered so far; a second one kills the process.
    zsys_handler_set (NULL);
    struct sigaction sa = {.sa_handler = s_on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);

    s_run_t run = {.opts = &opts, .rng = opts.seed};
    run.new_quota = opts.events - (size_t) ((double) opts.events * opts.dup_ratio + 0.5);
    s_awards_t awards = {0};
    zactor_t *actor = NULL;
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (opts.config, &err);
    if (cfg && trove_curve_start (cfg, NULL, false, &err))
        trove_cfg_destroy (&cfg);
    if (!cfg) {
        trove_log ('E', "%s: %s", opts.config, err ? err : "cannot load");
        goto cleanup;
    }
    for (size_t i = 0; i < opts.nsources; i++)
        if (!trove_cfg_source_known (cfg, opts.sources [i])) {
            trove_log ('E', "source '%s' is not declared in %s", opts.sources [i], opts.config);
            goto cleanup;
        }
    if (opts.batch > trove_cfg_limits (cfg)->max_batch) {
        trove_log ('E', "--batch %zu is above the cluster's max_batch %zu", opts.batch,
                   trove_cfg_limits (cfg)->max_batch);
        goto cleanup;
    }
    run.sends = calloc (opts.events, sizeof *run.sends);
    run.events = calloc (opts.events, sizeof *run.events);
    run.ready = calloc (opts.events, sizeof *run.ready);
    if (!run.sends || !run.events || !run.ready) {
        trove_log ('E', "out of memory for %zu events", opts.events);
        goto cleanup;
    }
    if (opts.history) {
        run.history = fopen (opts.history, "w");
        if (!run.history) {
            trove_log ('E', "%s: %s", opts.history, strerror (errno));
            goto cleanup;
        }
    }
    if (opts.events_out) {
        run.events_out = fopen (opts.events_out, "w");
        if (!run.events_out) {
            trove_log ('E', "%s: %s", opts.events_out, strerror (errno));
            goto cleanup;
        }
    }
    if (opts.awards) {
        awards.cfg = cfg;
        awards.prefix = opts.prefix;
        awards.prefix_len = strlen (opts.prefix);
        awards.capacity = opts.events;
        awards.seen_mono = calloc (opts.events, sizeof *awards.seen_mono);
        awards.accepted_lat = calloc (opts.events, sizeof *awards.accepted_lat);
        if (!awards.seen_mono || !awards.accepted_lat) {
            trove_log ('E', "out of memory for %zu events", opts.events);
            goto cleanup;
        }
        actor = zactor_new (s_awards_actor, &awards);
        if (!actor || !atomic_load (&awards.ready)) {
            trove_log ('E', "cannot subscribe to the award stream of %s", opts.config);
            goto cleanup;
        }
    }
    run.submitter = trove_submitter_new (cfg, opts.batch, opts.window, s_on_result, &run);
    if (!run.submitter) {
        trove_log ('E', "cannot create the submitter for %s", opts.config);
        goto cleanup;
    }

    //  The submitter's DEALER refuses to send (ZMQ_IMMEDIATE) until an
    //  ingestor connection is up, and then waits 100 ms before trying again:
    //  wait for the connection (writable) so that start-up is not measured.
    //  If no ingestor comes within 5 s, start anyway: the submitter retries.
    zmq_pollitem_t item = {zsock_resolve (trove_submitter_socket (run.submitter)), 0, ZMQ_POLLOUT, 0};
    for (int i = 0; i < 50 && !s_interrupted; i++)
        if (zmq_poll (&item, 1, 100) == 1)
            break;

    run.start_us = trove_mono_us ();
    run.last_answer_us = run.start_us;
    int64_t next_report =
        opts.report_every > 0 ? run.start_us + (int64_t) (opts.report_every * 1e6) : INT64_MAX;
    size_t report_answered = 0;
    int64_t report_us = run.start_us;
    bool stalled = false;
    int64_t stop_at = 0;  //  after an interrupt: stop waiting at this time
    while (run.answered < run.nsent || (run.nsent < opts.events && !s_interrupted)) {
        int64_t now = trove_mono_us ();
        if (s_interrupted) {
            if (!stop_at) {
                trove_log ('W', "interrupted: waiting up to 5 s for %zu answers", run.nsent - run.answered);
                stop_at = now + 5000000;
            }
            if (now >= stop_at)
                break;
        }
        else if (run.nsent < opts.events) {
            if (opts.rate > 0) {
                double since = (double) (now - run.start_us);
                size_t due = (size_t) (since * opts.rate / 1e6) + 1;
                if (due > opts.events)
                    due = opts.events;
                while (run.nsent < due) {
                    int64_t sched = run.start_us + (int64_t) ((double) run.nsent * 1e6 / opts.rate);
                    if (s_send_next (&run, sched) != 0)
                        break;
                }
            }
            else
                while (run.nsent < opts.events && s_send_next (&run, now) == 0)
                    ;
            trove_submitter_flush (run.submitter);
        }
        //  Open loop: wake every millisecond to keep to the schedule.
        int timeout = opts.rate > 0 && run.nsent < opts.events ? 1 : 10;
        trove_submitter_poll (run.submitter, timeout);
        //  Watchers (the crash tests) follow the history file as it grows.
        if (run.history)
            fflush (run.history);
        if (run.events_out)
            fflush (run.events_out);
        now = trove_mono_us ();
        if (now >= next_report) {
            s_progress (&run, opts.awards ? &awards : NULL, &report_answered, &report_us);
            next_report += (int64_t) (opts.report_every * 1e6);
        }
        if (run.answered < run.nsent && now - run.last_answer_us > (int64_t) (opts.stall_s * 1e6)) {
            trove_log ('E', "no answer for %.0f s, %zu events unanswered: giving up", opts.stall_s,
                       run.nsent - run.answered);
            stalled = true;
            break;
        }
    }
    run.end_us = trove_mono_us ();
    if (opts.awards) {
        //  Awards trail the answers; stop waiting 5 s after the last answer.
        size_t expected = 0;
        for (size_t i = 0; i < run.nevents; i++)
            if (run.events [i].status == TROVE__STATUS__ACCEPTED)
                expected++;
        int64_t deadline = run.last_answer_us + AWARD_GRACE_US;
        while (atomic_load (&awards.events) < expected && trove_mono_us () < deadline && !s_interrupted)
            zclock_sleep (10);
        zactor_destroy (&actor);  //  joins the thread: its writes are visible now
    }
    if (opts.report_every > 0)
        s_progress (&run, opts.awards ? &awards : NULL, &report_answered, &report_us);
    s_report_t report;
    if (s_report_build (&run, opts.awards ? &awards : NULL, &report) != 0) {
        trove_log ('E', "out of memory for the report");
        goto cleanup;
    }
    if (opts.json) {
        if (s_report_json (&run, opts.awards ? &awards : NULL, &report) != 0) {
            trove_log ('E', "cannot build the JSON report");
            goto cleanup;
        }
    }
    else
        s_report_print (&run, opts.awards ? &awards : NULL, &report);
    fflush (stdout);
    bool ok = !stalled && !s_interrupted && run.answered == opts.events && run.other == 0
           && run.resend_mismatch == 0 && run.new_duplicate == 0;
    rc = ok ? 0 : 1;
cleanup:
    zactor_destroy (&actor);
    trove_submitter_destroy (&run.submitter);
    if (run.events_out && fclose (run.events_out) != 0) {
        trove_log ('E', "%s: %s", opts.events_out, strerror (errno));
        rc = 1;
    }
    if (run.history && fclose (run.history) != 0) {
        trove_log ('E', "%s: %s", opts.history, strerror (errno));
        rc = 1;
    }
    free (run.sends);
    free (run.events);
    free (run.ready);
    free (awards.seen_mono);
    free (awards.accepted_lat);
    trove_cfg_destroy (&cfg);
    free (err);
    s_opts_free (&opts);
    return rc;
}
