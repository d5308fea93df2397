/*  trove-load - internal interface between its files: the options
    (trove_load_opts.c), the award follower (trove_load_awards.c), the report
    (trove_load_report.c) and the run itself (trove_load.c). */
#ifndef TROVE_LOAD_H_INCLUDED
#define TROVE_LOAD_H_INCLUDED

#include "trove_cfg.h"
#include "trove_awardsub.h"
#include "trove_client.h"
#include "trove_submitter.h"

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TROVE_LOAD_MAX_NAMES 32   //  sources or types given on the command line
#define TROVE_LOAD_PREFIX_MAX 64  //  bytes of an id prefix

//  ---------------------------------------------------------------------------
//  Options (trove_load_opts.c)

typedef struct {
    const char *dir;                       //  --dir (borrowed from argv)
    const char *config_arg;                //  --config (borrowed from argv)
    char *config;                          //  path of the cluster config
    size_t events;                         //  submissions in total (new events + re-sends)
    double rate;                           //  events/s, 0 = closed loop
    uint32_t users;                        //  distinct users u0..u{users-1}
    char *sources [TROVE_LOAD_MAX_NAMES];  //  source names (owned)
    size_t nsources;
    char *types [TROVE_LOAD_MAX_NAMES];  //  event types (owned)
    size_t ntypes;
    double dup_ratio;                     //  fraction of submissions that are re-sends
    double ooo_ratio;                     //  fraction of new events with ts moved back
    double backdate_ratio;                //  fraction of new events with ts moved days back
    double backdate_days;                 //  how far at most
    size_t batch;                         //  events per request
    size_t window;                        //  max events in flight
    uint64_t seed;                        //  random seed
    char prefix [TROVE_LOAD_PREFIX_MAX];  //  id prefix
    char *history;                        //  path of the per-event answer file, or NULL
    char *events_out;                     //  path of the NDJSON of every distinct event, or NULL
    bool awards;                          //  follow the award stream
    bool users_in_order;                  //  event i is user i % users (fills a board)
    bool attrs;                           //  zone, clue and amount attributes on every event
    bool json;                            //  final report as JSON
    double report_every;                  //  seconds between progress lines, 0 = none
    double stall_s;                       //  give up after this long without an answer
} trove_load_opts_t;

//  A log-linear histogram (HDR-like, ~1.5% resolution) of microseconds, for
//  the cheap progress percentiles (trove_load_report.c). The final report
//  sorts exact samples.
#define TROVE_LOAD_HIST_SUB 64
#define TROVE_LOAD_HIST_BUCKETS (TROVE_LOAD_HIST_SUB * 60)

typedef struct {
    uint64_t counts [TROVE_LOAD_HIST_BUCKETS];
    uint64_t total;
} trove_load_hist_t;

//  Award follower (trove_load_awards.c): an actor owning a trove_awardsub.
//  It only writes the per-event arrays (read by the main thread after the
//  actor is gone) and the atomic counters (read any time).
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
} trove_load_awards_t;

//  One submission.
typedef struct {
    uint64_t event;      //  index of the event (its id counter)
    int64_t sched_us;    //  scheduled send time, monotonic µs
    int64_t latency_us;  //  scheduled time -> final answer
    uint8_t status;      //  Trove__Status of the final answer, 0 = none yet
} trove_load_send_t;

//  One distinct event (re-sends point back to it).
typedef struct {
    int64_t ts_ms;        //  event time
    uint64_t first_send;  //  index of its first submission
    uint32_t user;        //  user number
    uint8_t source;       //  index into opts.sources
    uint8_t type;         //  index into opts.types
    uint8_t status;       //  answer to the first submission, 0 = none yet
} trove_load_event_t;

//  ---------------------------------------------------------------------------
//  The run (trove_load.c)

typedef struct {
    const trove_load_opts_t *opts;  //  options (borrowed)
    trove_submitter_t *submitter;
    FILE *history;               //  per-event answers, or NULL
    FILE *events_out;            //  every distinct event as sent (NDJSON), or NULL
    uint64_t rng;                //  random state
    trove_load_send_t *sends;    //  opts->events entries
    size_t nsent;                //  submissions handed to the submitter
    trove_load_event_t *events;  //  opts->events entries at most
    size_t nevents;              //  distinct events created
    uint64_t *ready;             //  events answered, candidates for a re-send
    size_t nready;
    size_t new_quota;  //  distinct events to make: events - re-sends
    double dup_owed;   //  re-sends due but not yet made
    size_t nresent;    //  re-sends made
    //  Answers
    size_t answered;
    size_t accepted, duplicate, rejected, other;
    size_t resend_mismatch;    //  re-send answered neither duplicate nor as its original
    size_t resend_accepted;    //  re-send answered "accepted": a second acceptance
    size_t new_duplicate;      //  new event answered "duplicate"
    int64_t start_us;          //  monotonic start
    int64_t last_answer_us;    //  monotonic time of the last final answer
    int64_t end_us;            //  when the sending loop ended
    trove_load_hist_t hist;    //  latencies so far (progress)
    size_t progress_answered;  //  answers at the last progress line
    int64_t progress_us;       //  monotonic time of the last progress line
    char errors [256];         //  first non-final answer seen, for the report
} trove_load_run_t;

//  Parse the command line into opts (free it with trove_load_opts_free,
//  also after a failure). Returns 0, or 2 on bad usage (message printed), or
//  1 after --help.
int trove_load_opts_parse (int argc, char *argv [], trove_load_opts_t *opts);
void trove_load_opts_free (trove_load_opts_t *opts);

//  The zactor body of the award follower; arg is a trove_load_awards_t.
void trove_load_awards_actor (zsock_t *pipe, void *arg);

void trove_load_hist_add (trove_load_hist_t *self, int64_t v);
//  The p-quantile (0..1) of the histogram, or 0 when it is empty.
int64_t trove_load_hist_percentile (const trove_load_hist_t *self, double p);

//  Print the final report of run (awards NULL without --awards) on stdout,
//  as text or, with --json, one JSON object. Returns 0, or -1 after logging
//  (out of memory).
int trove_load_report (const trove_load_run_t *run, const trove_load_awards_t *awards);

#endif
