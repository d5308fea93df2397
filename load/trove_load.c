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
    passed; 1 otherwise (including setup errors); 2 on bad usage.

    This file holds the run: event generation, the sending loop and the
    answers. The options are in trove_load_opts.c, the award follower in
    trove_load_awards.c, the numbers in trove_load_report.c. */
#include "trove_load.h"
#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_client.h"
#include "trove_event.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AWARD_GRACE_US 5000000  //  wait for awards this long after the last answer

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
//  The run

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
    trove_load_run_t *self = (trove_load_run_t *) arg;
    assert (tag < self->nsent);
    trove_load_send_t *send = &self->sends [tag];
    if (send->status)
        return;  //  the submitter promises one answer; be safe
    int64_t now = trove_mono_us ();
    int status = result->status;
    send->status = (uint8_t) (status ? status : 0xff);
    send->latency_us = now - send->sched_us;
    trove_load_hist_add (&self->hist, send->latency_us);
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
    trove_load_event_t *event = &self->events [send->event];
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
        const trove_load_opts_t *opts = self->opts;
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
s_send_next (trove_load_run_t *self, int64_t sched_us)
{
    const trove_load_opts_t *opts = self->opts;
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
        trove_load_event_t *event = &self->events [index];
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
    const trove_load_event_t *event = &self->events [index];
    char id [TROVE_LOAD_PREFIX_MAX + 24];
    char user [16];
    snprintf (id, sizeof id, "%s%" PRIu64, opts->prefix, index);
    snprintf (user, sizeof user, "u%" PRIu32, event->user);
    Trove__Event ev = TROVE__EVENT__INIT;
    ev.source = opts->sources [event->source];
    ev.id = id;
    ev.user = user;
    ev.type = opts->types [event->type];
    ev.ts_ms = event->ts_ms;
    //  Attributes follow from the index alone, so a re-send says the same.
    Trove__Attr attr [3] = {TROVE__ATTR__INIT, TROVE__ATTR__INIT, TROVE__ATTR__INIT};
    Trove__Attr *attr_ptrs [3] = {&attr [0], &attr [1], &attr [2]};
    char zone [2] = {0}, clue [2] = {0};
    if (opts->attrs) {
        uint64_t h = index * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
        zone [0] = (char) ('A' + (h % 6));
        clue [0] = (char) ('A' + ((h >> 8) % 2));
        attr [0].key = "zone";
        attr [0].value_case = TROVE__ATTR__VALUE_S;
        attr [0].s = zone;
        attr [1].key = "clue";
        attr [1].value_case = TROVE__ATTR__VALUE_S;
        attr [1].s = clue;
        attr [2].key = "amount";
        attr [2].value_case = TROVE__ATTR__VALUE_N;
        attr [2].n = (double) ((h >> 16) % 200);
        ev.n_attrs = 3;
        ev.attrs = attr_ptrs;
    }
    //  The send record must exist before add: a full batch goes out at once.
    size_t tag = self->nsent;
    self->sends [tag] = (trove_load_send_t){.event = index, .sched_us = sched_us};
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
        if (self->events_out && opts->attrs)
            fprintf (self->events_out,
                     "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":%lld,"
                     "\"attrs\":{\"zone\":\"%s\",\"clue\":\"%s\",\"amount\":%.0f}}\n",
                     ev.source, ev.id, ev.user, ev.type, (long long) ev.ts_ms, zone, clue, attr [2].n);
        else if (self->events_out)
            fprintf (self->events_out,
                     "{\"source\":\"%s\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":%lld}\n",
                     ev.source, ev.id, ev.user, ev.type, (long long) ev.ts_ms);
    }
    return 0;
}

//  A progress line on stderr: rates since the previous one and overall.
static void
s_progress (trove_load_run_t *self, trove_load_awards_t *awards)
{
    int64_t now = trove_mono_us ();
    double interval = (now - self->progress_us) / 1e6;
    double total = (now - self->start_us) / 1e6;
    fprintf (stderr,
             "trove-load: %7.1f s  sent %zu  answered %zu  %.0f ev/s (avg %.0f)  "
             "accepted %zu  dup %zu  rej %zu  coins %zu  p50 %.3f ms  p99 %.3f ms\n",
             total, self->nsent, self->answered,
             interval > 0 ? (self->answered - self->progress_answered) / interval : 0,
             total > 0 ? self->answered / total : 0, self->accepted, self->duplicate, self->rejected,
             awards ? atomic_load (&awards->coins) : 0,
             trove_load_hist_percentile (&self->hist, 0.50) / 1000.0,
             trove_load_hist_percentile (&self->hist, 0.99) / 1000.0);
    self->progress_answered = self->answered;
    self->progress_us = now;
}

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}


//  Everything a run needs before its first event: the config (and the
//  options checked against it), the arrays, the output files, the award
//  follower (with --awards) and the submitter. Returns 0, or -1 after
//  logging.
static int
s_setup (trove_load_run_t *run, trove_load_awards_t *awards, zactor_t **actor_p, trove_cfg_t **cfg_p)
{
    const trove_load_opts_t *opts = run->opts;
    char *err = NULL;
    trove_cfg_t *cfg = *cfg_p = trove_cfg_load (opts->config, &err);
    if (cfg && trove_curve_start (cfg, NULL, false, &err))
        trove_cfg_destroy (cfg_p);
    if (!*cfg_p) {
        trove_log ('E', "%s: %s", opts->config, err ? err : "cannot load");
        free (err);
        return -1;
    }
    for (size_t i = 0; i < opts->nsources; i++)
        if (!trove_cfg_source_known (cfg, opts->sources [i])) {
            trove_log ('E', "source '%s' is not declared in %s", opts->sources [i], opts->config);
            return -1;
        }
    if (opts->batch > trove_cfg_limits (cfg)->max_batch) {
        trove_log ('E', "--batch %zu is above the cluster's max_batch %zu", opts->batch,
                   trove_cfg_limits (cfg)->max_batch);
        return -1;
    }
    run->sends = calloc (opts->events, sizeof *run->sends);
    run->events = calloc (opts->events, sizeof *run->events);
    run->ready = calloc (opts->events, sizeof *run->ready);
    if (!run->sends || !run->events || !run->ready) {
        trove_log ('E', "out of memory for %zu events", opts->events);
        return -1;
    }
    if (opts->history && !(run->history = fopen (opts->history, "w"))) {
        trove_log ('E', "%s: %s", opts->history, strerror (errno));
        return -1;
    }
    if (opts->events_out && !(run->events_out = fopen (opts->events_out, "w"))) {
        trove_log ('E', "%s: %s", opts->events_out, strerror (errno));
        return -1;
    }
    if (opts->awards) {
        awards->cfg = cfg;
        awards->prefix = opts->prefix;
        awards->prefix_len = strlen (opts->prefix);
        awards->capacity = opts->events;
        awards->seen_mono = calloc (opts->events, sizeof *awards->seen_mono);
        awards->accepted_lat = calloc (opts->events, sizeof *awards->accepted_lat);
        if (!awards->seen_mono || !awards->accepted_lat) {
            trove_log ('E', "out of memory for %zu events", opts->events);
            return -1;
        }
        *actor_p = zactor_new (trove_load_awards_actor, awards);
        if (!*actor_p || !atomic_load (&awards->ready)) {
            trove_log ('E', "cannot subscribe to the award stream of %s", opts->config);
            return -1;
        }
    }
    run->submitter = trove_submitter_new (cfg, opts->batch, opts->window, s_on_result, run);
    if (!run->submitter) {
        trove_log ('E', "cannot create the submitter for %s", opts->config);
        return -1;
    }
    return 0;
}

//  Hand the submitter what is due now: open loop, the events scheduled up
//  to now; closed loop, as many as the window takes.
static void
s_send_due (trove_load_run_t *run, int64_t now)
{
    const trove_load_opts_t *opts = run->opts;
    if (opts->rate > 0) {
        double since = (double) (now - run->start_us);
        size_t due = (size_t) (since * opts->rate / 1e6) + 1;
        if (due > opts->events)
            due = opts->events;
        while (run->nsent < due) {
            int64_t sched = run->start_us + (int64_t) ((double) run->nsent * 1e6 / opts->rate);
            if (s_send_next (run, sched) != 0)
                break;
        }
    }
    else
        while (run->nsent < opts->events && s_send_next (run, now) == 0)
            ;
    trove_submitter_flush (run->submitter);
}

//  Send every event and wait for every answer; after an interrupt, wait up
//  to 5 s for the answers still due. Returns true when it gave up because
//  no answer came for --stall-timeout.
static bool
s_send_all (trove_load_run_t *run, trove_load_awards_t *awards)
{
    const trove_load_opts_t *opts = run->opts;
    //  The submitter's DEALER refuses to send (ZMQ_IMMEDIATE) until an
    //  ingestor connection is up, and then waits 100 ms before trying again:
    //  wait for the connection (writable) so that start-up is not measured.
    //  If no ingestor comes within 5 s, start anyway: the submitter retries.
    zmq_pollitem_t item = {zsock_resolve (trove_submitter_socket (run->submitter)), 0, ZMQ_POLLOUT, 0};
    for (int i = 0; i < 50 && !s_interrupted; i++)
        if (zmq_poll (&item, 1, 100) == 1)
            break;

    run->start_us = trove_mono_us ();
    run->last_answer_us = run->progress_us = run->start_us;
    int64_t next_report =
        opts->report_every > 0 ? run->start_us + (int64_t) (opts->report_every * 1e6) : INT64_MAX;
    int64_t stop_at = 0;  //  after an interrupt: stop waiting at this time
    while (run->answered < run->nsent || (run->nsent < opts->events && !s_interrupted)) {
        int64_t now = trove_mono_us ();
        if (s_interrupted) {
            if (!stop_at) {
                trove_log ('W', "interrupted: waiting up to 5 s for %zu answers", run->nsent - run->answered);
                stop_at = now + 5000000;
            }
            if (now >= stop_at)
                break;
        }
        else if (run->nsent < opts->events)
            s_send_due (run, now);
        //  Open loop: wake every millisecond to keep to the schedule.
        int timeout = opts->rate > 0 && run->nsent < opts->events ? 1 : 10;
        trove_submitter_poll (run->submitter, timeout);
        //  Watchers (the crash tests) follow the history file as it grows.
        if (run->history)
            fflush (run->history);
        if (run->events_out)
            fflush (run->events_out);
        now = trove_mono_us ();
        if (now >= next_report) {
            s_progress (run, awards);
            next_report += (int64_t) (opts->report_every * 1e6);
        }
        if (run->answered < run->nsent && now - run->last_answer_us > (int64_t) (opts->stall_s * 1e6)) {
            trove_log ('E', "no answer for %.0f s, %zu events unanswered: giving up", opts->stall_s,
                       run->nsent - run->answered);
            return true;
        }
    }
    return false;
}

//  Awards trail the answers: wait until every accepted event has one, up to
//  AWARD_GRACE_US after the last answer, then stop the follower.
static void
s_wait_awards (const trove_load_run_t *run, trove_load_awards_t *awards, zactor_t **actor_p)
{
    size_t expected = 0;
    for (size_t i = 0; i < run->nevents; i++)
        if (run->events [i].status == TROVE__STATUS__ACCEPTED)
            expected++;
    int64_t deadline = run->last_answer_us + AWARD_GRACE_US;
    while (atomic_load (&awards->events) < expected && trove_mono_us () < deadline && !s_interrupted)
        zclock_sleep (10);
    zactor_destroy (actor_p);  //  joins the thread: its writes are visible now
}

int
main (int argc, char *argv [])
{
    trove_load_opts_t opts;
    int rc = trove_load_opts_parse (argc, argv, &opts);
    if (rc) {
        trove_load_opts_free (&opts);
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

    trove_load_run_t run = {.opts = &opts, .rng = opts.seed};
    run.new_quota = opts.events - (size_t) ((double) opts.events * opts.dup_ratio + 0.5);
    trove_load_awards_t awards = {0};
    trove_load_awards_t *followed = opts.awards ? &awards : NULL;
    zactor_t *actor = NULL;
    trove_cfg_t *cfg = NULL;
    if (s_setup (&run, &awards, &actor, &cfg))
        goto cleanup;
    bool stalled = s_send_all (&run, followed);
    run.end_us = trove_mono_us ();
    if (followed)
        s_wait_awards (&run, &awards, &actor);
    if (opts.report_every > 0)
        s_progress (&run, followed);
    if (trove_load_report (&run, followed))
        goto cleanup;
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
    trove_load_opts_free (&opts);
    return rc;
}
