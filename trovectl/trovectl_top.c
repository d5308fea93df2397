/*  trovectl top - a live view of a running cluster, built from the
    Prometheus /metrics endpoint of every process (see lib/core/trove_metrics.h
    and the metric families the daemons register).

    Every interval, each process named in the config with a `metrics`
    address is scraped at once over plain HTTP/1.0 (300 ms for the whole
    exchange: a process that does not answer in time is shown as down). Rates
    and latency quantiles are computed between two successive scrapes of the
    same process:
    - counters: increase / time between the two scrapes. A process restart
      resets its counters: when process_start_time_seconds changed, or when
      a series went down, the new value is the increase (what Prometheus's
      rate() assumes too). A series that appeared since the previous scrape
      started at 0.
    - histograms: the increase of every bucket, summed over the processes,
      then the quantile as PromQL histogram_quantile () computes it
      (trovectl_prom.h).
    - gauges (apply backlog, last aseq, inflight): the last value.

    Caveats: the first view comes one interval after the start (it needs two
    scrapes). A process that was down or too slow on the previous scrape has
    no rate in the view where it comes back (no baseline), so totals dip for
    one interval. Each scrape renders the process's whole registry, holding
    its metrics mutex briefly; an interval below 0.1 s is refused. */
#include "trovectl.h"
#include "trovectl_prom.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  The whole HTTP exchange with one process, connect to last byte.
#define S_SCRAPE_TIMEOUT_MS 300
//  Largest /metrics answer accepted (a daemon's is a few kB).
#define S_MAX_ANSWER (8 << 20)
//  Labels kept per sample (the daemons use at most 3, plus le).
#define TROVECTL_PROM_MAX_LABELS 4
//  Buckets of an aggregated histogram (the daemons use 12).
#define TROVECTL_PROM_MAX_BUCKETS 64
//  Interval bounds, seconds.
#define S_MIN_INTERVAL 0.1
#define S_MAX_INTERVAL 3600.0

const char *const trovectl_top_help =
    "usage: trovectl top [--dir DIR | --config FILE] [--interval SECONDS] [--count N]\n"
    "                    [--json]\n"
    "\n"
    "Live view of the cluster from the Prometheus /metrics of every process that\n"
    "has a `metrics` address in the config (a process that does not answer within\n"
    "300 ms is shown as down). Every interval it shows, between the last two\n"
    "scrapes: ingested events/s by source and by answer, rejections/s by reason,\n"
    "p50/p99 of the ingestors' answer latency; per scorer shard: accepted\n"
    "events/s, apply lag (accepted events its ledger tables do not hold yet), last\n"
    "award sequence, coins/s, p50/p99 of the log commit time; broker messages/s.\n"
    "The first view comes one interval after the start.\n"
    "\n"
    "  --interval SECONDS  time between views (default 1, at least 0.1).\n"
    "  --count N           stop after N views (default: run until SIGINT).\n"
    "  --json              one JSON object per view and per line instead of the\n"
    "                      screen: {\"interval_s\",\"up\",\"processes\",\"ingest\":{\n"
    "                      \"events_per_s\",\"accepted_per_s\",\"by_source\",\"by_result\",\n"
    "                      \"rejections_per_s\",\"answer_seconds\":{\"p50\",\"p99\"},\n"
    "                      \"inflight\"},\"ingestors\":[..],\"shards\":[{\"name\",\"up\",\n"
    "                      \"accepted_per_s\",\"events_per_s\",\"lag\",\"last_aseq\",\n"
    "                      \"coins_per_s\",\"commit_seconds\":{\"p50\",\"p99\"}}],\n"
    "                      \"commit_seconds\",\"broker\":{\"up\",\"messages_per_s\"}};\n"
    "                      a value not known (process down, no observation) is null.\n"
    "On a terminal the screen is cleared and redrawn; otherwise views follow each\n"
    "other, separated by a blank line.\n"
    "Exit: 0 after N views or on SIGINT; 1 when the config names no metrics\n"
    "address or cannot be loaded.\n";

//  ---------------------------------------------------------------------------
//  HTTP/1.0 GET /metrics, every process at once. Each connection is a small
//  state machine driven by poll (): connecting -> sending -> reading ->
//  done, or failed from any state (error or deadline).

typedef enum { S_CONNECTING, S_SENDING, S_READING, S_DONE, S_FAILED } s_conn_state_t;
typedef enum { S_EV_WRITABLE, S_EV_READABLE, S_EV_TIMEOUT } s_conn_event_t;

typedef struct {
    s_conn_state_t state;  //  where the exchange is
    int fd;                //  socket, -1 when closed
    char request [160];    //  the GET request
    size_t request_len;    //  its length
    size_t sent;           //  bytes of it sent
    char *answer;          //  bytes received (NUL-terminated)
    size_t len;            //  used
    size_t max;            //  allocated
    char error [96];       //  why it failed
} s_conn_t;

static void
s_conn_fail (s_conn_t *self, const char *fmt, const char *detail)
{
    snprintf (self->error, sizeof self->error, fmt, detail);
    self->state = S_FAILED;
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
}

//  Start a connection to "HOST:PORT" or "[HOST]:PORT" (numeric host).
static void
s_conn_start (s_conn_t *self, const char *address)
{
    memset (self, 0, sizeof *self);
    self->fd = -1;
    self->state = S_CONNECTING;
    char host [128];
    const char *colon = strrchr (address, ':');
    const char *h = address;
    size_t hlen = colon ? (size_t) (colon - address) : 0;
    if (hlen >= 2 && h [0] == '[' && h [hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (!colon || hlen == 0 || hlen >= sizeof host || !colon [1]) {
        s_conn_fail (self, "bad metrics address '%s'", address);
        return;
    }
    memcpy (host, h, hlen);
    host [hlen] = 0;
    struct addrinfo hints, *ai = NULL;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo (host, colon + 1, &hints, &ai) || !ai) {
        s_conn_fail (self, "bad metrics address '%s'", address);
        return;
    }
    self->request_len = (size_t) snprintf (self->request, sizeof self->request,
                                           "GET /metrics HTTP/1.0\r\nHost: %.100s\r\n\r\n", address);
    self->fd = socket (ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->fd < 0)
        s_conn_fail (self, "socket: %s", strerror (errno));
    else if (connect (self->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        self->state = S_SENDING;
    else if (errno != EINPROGRESS)
        s_conn_fail (self, "connect: %s", strerror (errno));
    freeaddrinfo (ai);
}

static void
s_conn_on (s_conn_t *self, s_conn_event_t event)
{
    switch (self->state) {
        case S_CONNECTING:
            if (event == S_EV_TIMEOUT)
                s_conn_fail (self, "connect timed out%s", "");
            else {
                int err = 0;
                socklen_t errlen = sizeof err;
                if (getsockopt (self->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
                    err = errno;
                if (err)
                    s_conn_fail (self, "connect: %s", strerror (err));
                else
                    self->state = S_SENDING;
            }
            break;
        case S_SENDING:
            if (event == S_EV_TIMEOUT)
                s_conn_fail (self, "no answer in time%s", "");
            else {
                ssize_t n =
                    send (self->fd, self->request + self->sent, self->request_len - self->sent, MSG_NOSIGNAL);
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                    s_conn_fail (self, "send: %s", strerror (errno));
                else if (n > 0 && (self->sent += (size_t) n) == self->request_len)
                    self->state = S_READING;
            }
            break;
        case S_READING:
            if (event == S_EV_TIMEOUT)
                s_conn_fail (self, "no answer in time%s", "");
            else {
                if (self->max - self->len < 4096) {
                    size_t max = self->max ? self->max * 2 : 16384;
                    char *answer = max <= S_MAX_ANSWER ? realloc (self->answer, max) : NULL;
                    if (!answer) {
                        s_conn_fail (self, "answer too large%s", "");
                        break;
                    }
                    self->answer = answer;
                    self->max = max;
                }
                ssize_t n = recv (self->fd, self->answer + self->len, self->max - self->len - 1, 0);
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                    s_conn_fail (self, "recv: %s", strerror (errno));
                else if (n > 0)
                    self->len += (size_t) n;
                else if (n == 0) {
                    //  HTTP/1.0: the server closes after the answer
                    self->answer [self->len] = 0;
                    close (self->fd);
                    self->fd = -1;
                    self->state = S_DONE;
                }
            }
            break;
        case S_DONE:
        case S_FAILED:
            break;
    }
}

//  The body of a complete answer, or NULL (and error set) when it is not
//  "200" with a body.
static const char *
s_conn_body (s_conn_t *self, size_t *size_p)
{
    if (self->len < 12 || strncmp (self->answer, "HTTP/1.", 7) || strncmp (self->answer + 8, " 200", 4)) {
        char status [48];
        size_t n = 0;
        while (n < self->len && n < sizeof status - 1 && self->answer [n] != '\r' && self->answer [n] != '\n')
            n++;
        memcpy (status, self->answer ? self->answer : "", n);
        status [n] = 0;
        snprintf (self->error, sizeof self->error, "HTTP answer '%s'", n ? status : "(empty)");
        return NULL;
    }
    const char *body = strstr (self->answer, "\r\n\r\n");
    if (!body) {
        snprintf (self->error, sizeof self->error, "HTTP answer without a body");
        return NULL;
    }
    body += 4;
    *size_p = self->len - (size_t) (body - self->answer);
    return body;
}

//  ---------------------------------------------------------------------------
//  The processes we scrape

typedef struct {
    const char *role;       //  "broker", "ingestor", "scorer"
    const char *name;       //  "broker", "i0", "s0", ...
    int shard;              //  scorer shard, -1 otherwise
    const char *address;    //  "127.0.0.1:PORT" (borrowed from the config)
    trovectl_prom_t *cur;   //  this round's scrape, NULL when down
    trovectl_prom_t *prev;  //  the previous round's, NULL when down then
    char error [96];        //  why it is down
} s_target_t;

//  Scrape every target at once, within S_SCRAPE_TIMEOUT_MS. The previous
//  round's scrape moves to prev. Returns 0, or -1 when interrupted or out of
//  memory.
static int
s_scrape_all (s_target_t *targets, size_t count)
{
    int rc = -1;
    s_conn_t *conns = calloc (count, sizeof *conns);
    struct pollfd *fds = calloc (count, sizeof *fds);
    size_t *which = calloc (count, sizeof *which);
    if (!conns || !fds || !which)
        goto cleanup;
    for (size_t i = 0; i < count; i++) {
        trovectl_prom_destroy (&targets [i].prev);
        targets [i].prev = targets [i].cur;
        targets [i].cur = NULL;
        s_conn_start (&conns [i], targets [i].address);
    }
    int64_t deadline = trove_mono_us () + S_SCRAPE_TIMEOUT_MS * 1000;
    while (!trovectl_interrupted ()) {
        nfds_t nfds = 0;
        for (size_t i = 0; i < count; i++) {
            s_conn_state_t state = conns [i].state;
            if (state == S_DONE || state == S_FAILED)
                continue;
            fds [nfds].fd = conns [i].fd;
            fds [nfds].events = state == S_READING ? POLLIN : POLLOUT;
            fds [nfds].revents = 0;
            which [nfds++] = i;
        }
        if (nfds == 0)
            break;
        int64_t left_us = deadline - trove_mono_us ();
        if (left_us <= 0) {
            for (nfds_t k = 0; k < nfds; k++)
                s_conn_on (&conns [which [k]], S_EV_TIMEOUT);
            break;
        }
        int n = poll (fds, nfds, (int) ((left_us + 999) / 1000));
        if (n < 0 && errno != EINTR)
            goto cleanup;
        for (nfds_t k = 0; n > 0 && k < nfds; k++)
            if (fds [k].revents)
                s_conn_on (&conns [which [k]], fds [k].events == POLLIN ? S_EV_READABLE : S_EV_WRITABLE);
    }
    if (trovectl_interrupted ())
        goto cleanup;
    int64_t now = trove_mono_us ();
    for (size_t i = 0; i < count; i++) {
        s_target_t *target = &targets [i];
        s_conn_t *conn = &conns [i];
        size_t size = 0;
        const char *body = conn->state == S_DONE ? s_conn_body (conn, &size) : NULL;
        if (body) {
            target->cur = trovectl_prom_parse (body, size);
            if (!target->cur)
                goto cleanup;
            target->cur->at_us = now;
            target->error [0] = 0;
        }
        else
            snprintf (target->error, sizeof target->error, "%s", conn->error);
    }
    rc = 0;
cleanup:
    for (size_t i = 0; conns && i < count; i++) {
        if (conns [i].fd >= 0)
            close (conns [i].fd);
        free (conns [i].answer);
    }
    free (conns);
    free (fds);
    free (which);
    return rc;
}

//  Increase of the series of sample i of target since the previous scrape
//  (see the top of the file for counter resets), or NAN when there is no
//  previous scrape to compare with.
static double
s_increase (const s_target_t *target, size_t i)
{
    const trovectl_prom_sample_t *sample = &target->cur->samples [i];
    const trovectl_prom_t *prev = target->prev;
    if (!prev)
        return NAN;
    if (isfinite (prev->started) && isfinite (target->cur->started)
        && fabs (prev->started - target->cur->started) > 1e-3)
        return sample->value;  //  restarted
    const trovectl_prom_sample_t *before = trovectl_prom_find (prev, sample->key, i);
    if (!before)
        return sample->value;
    double delta = sample->value - before->value;
    return delta < 0 ? sample->value : delta;
}

//  Seconds between the two scrapes of target, or 0 when it has not two.
static double
s_elapsed (const s_target_t *target)
{
    if (!target->cur || !target->prev || target->cur->at_us <= target->prev->at_us)
        return 0;
    return (double) (target->cur->at_us - target->prev->at_us) / 1e6;
}

//  Per second increase of the samples named name of target (whose label
//  `label` is `value` when label is given), or NAN without a baseline.
static double
s_rate (const s_target_t *target, const char *name, const char *label, const char *value)
{
    double elapsed = s_elapsed (target);
    if (elapsed <= 0)
        return NAN;
    double sum = 0;
    for (size_t i = 0; i < target->cur->count; i++) {
        const trovectl_prom_sample_t *sample = &target->cur->samples [i];
        if (strcmp (sample->name, name))
            continue;
        const char *v = label ? trovectl_prom_label (sample, label) : NULL;
        if (label && !(v && strcmp (v, value) == 0))
            continue;
        sum += s_increase (target, i);
    }
    return sum / elapsed;
}

//  Last value of the gauge name (no labels) of target, or NAN.
static double
s_gauge (const s_target_t *target, const char *name)
{
    if (!target->cur)
        return NAN;
    for (size_t i = 0; i < target->cur->count; i++)
        if (strcmp (target->cur->samples [i].name, name) == 0)
            return target->cur->samples [i].value;
    return NAN;
}

//  ---------------------------------------------------------------------------
//  Histograms: bucket increases summed over processes, quantiles.

//  Add the bucket increases of histogram name of target (name_bucket
//  samples). Does nothing without a baseline.
static void
s_hist_collect (trovectl_prom_hist_t *self, const s_target_t *target, const char *name)
{
    if (s_elapsed (target) <= 0)
        return;
    char bucket [128];
    snprintf (bucket, sizeof bucket, "%s_bucket", name);
    for (size_t i = 0; i < target->cur->count; i++) {
        const trovectl_prom_sample_t *sample = &target->cur->samples [i];
        const char *le = strcmp (sample->name, bucket) == 0 ? trovectl_prom_label (sample, "le") : NULL;
        if (!le)
            continue;
        char *end;
        double bound = strtod (le, &end);
        if (*end || isnan (bound))
            continue;
        trovectl_prom_hist_add (self, bound, s_increase (target, i));
    }
}

//  ---------------------------------------------------------------------------
//  One view, as JSON (the screen is drawn from it too)

static json_t *
s_num (double value)
{
    return isfinite (value) ? json_real (value) : json_null ();
}

//  {"p50":..,"p99":..}
static json_t *
s_quantiles (const trovectl_prom_hist_t *hist)
{
    return json_pack ("{s:o,s:o}", "p50", s_num (trovectl_prom_hist_quantile (hist, 0.5)), "p99",
                      s_num (trovectl_prom_hist_quantile (hist, 0.99)));
}

//  obj [key] += value (NAN adds nothing but creates the key).
static void
s_tally (json_t *obj, const char *key, double value)
{
    json_t *old = json_object_get (obj, key);
    double sum = (old ? json_number_value (old) : 0) + (isfinite (value) ? value : 0);
    json_object_set_new (obj, key, json_real (sum));
}

//  Sum of a and b where NAN means "unknown": known values win.
static double
s_plus (double a, double b)
{
    return isnan (a) ? b : isnan (b) ? a : a + b;
}

static json_t *
s_report (s_target_t *targets, size_t count, double interval_s)
{
    size_t up = 0;
    trovectl_prom_hist_t answer = {.n = 0}, commit = {.n = 0};
    json_t *by_source = json_object (), *by_result = json_object (), *rejections = json_object ();
    json_t *ingestors = json_array (), *shards = json_array (), *broker = json_null ();
    double events = NAN, inflight = NAN;
    for (size_t i = 0; i < count; i++) {
        s_target_t *t = &targets [i];
        bool is_up = t->cur != NULL;
        up += is_up;
        json_t *proc = json_pack ("{s:s,s:s,s:b}", "name", t->name, "address", t->address, "up", is_up);
        if (!is_up)
            json_object_set_new (proc, "error", json_string (t->error));
        if (strcmp (t->role, "ingestor") == 0) {
            double rate = NAN;
            if (is_up && s_elapsed (t) > 0) {
                rate = s_rate (t, "trove_ingestor_events_total", NULL, NULL);
                for (size_t k = 0; k < t->cur->count; k++) {
                    const trovectl_prom_sample_t *s = &t->cur->samples [k];
                    const char *source = trovectl_prom_label (s, "source"),
                               *result = trovectl_prom_label (s, "result");
                    const char *reason = trovectl_prom_label (s, "reason");
                    double per_s = s_increase (t, k) / s_elapsed (t);
                    if (strcmp (s->name, "trove_ingestor_events_total") == 0 && source && result) {
                        s_tally (by_source, source, per_s);
                        s_tally (by_result, result, per_s);
                    }
                    else if (strcmp (s->name, "trove_ingestor_not_accepted_total") == 0 && reason)
                        s_tally (rejections, reason, per_s);
                }
                s_hist_collect (&answer, t, "trove_ingestor_answer_seconds");
            }
            double flight = s_gauge (t, "trove_ingestor_inflight_events");
            events = s_plus (events, rate);
            inflight = s_plus (inflight, flight);
            json_object_set_new (proc, "events_per_s", s_num (rate));
            json_object_set_new (proc, "inflight", s_num (flight));
            json_array_append_new (ingestors, proc);
        }
        else if (strcmp (t->role, "scorer") == 0) {
            trovectl_prom_hist_t mine = {.n = 0};
            json_object_set_new (proc, "shard", json_integer (t->shard));
            json_object_set_new (
                proc, "accepted_per_s",
                s_num (is_up ? s_rate (t, "trove_scorer_events_total", "result", "accepted") : NAN));
            json_object_set_new (proc, "events_per_s",
                                 s_num (is_up ? s_rate (t, "trove_scorer_events_total", NULL, NULL) : NAN));
            json_object_set_new (proc, "lag", s_num (s_gauge (t, "trove_scorer_apply_backlog_events")));
            double aseq = s_gauge (t, "trove_scorer_last_aseq");
            json_object_set_new (proc, "last_aseq",
                                 isfinite (aseq) ? json_integer ((json_int_t) aseq) : json_null ());
            json_object_set_new (
                proc, "coins_per_s",
                s_num (is_up ? s_rate (t, "trove_scorer_coins_minted_total", NULL, NULL) : NAN));
            if (is_up) {
                s_hist_collect (&mine, t, "trove_scorer_log_commit_seconds");
                s_hist_collect (&commit, t, "trove_scorer_log_commit_seconds");
            }
            json_object_set_new (proc, "commit_seconds", s_quantiles (&mine));
            json_array_append_new (shards, proc);
        }
        else {
            json_object_set_new (
                proc, "messages_per_s",
                s_num (is_up ? s_rate (t, "trove_broker_forwarded_total", NULL, NULL) : NAN));
            json_decref (broker);
            broker = proc;
        }
    }
    json_t *accepted = json_object_get (by_result, "accepted");
    json_t *ingest =
        json_pack ("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "events_per_s", s_num (events), "accepted_per_s",
                   accepted ? json_incref (accepted) : s_num (isnan (events) ? NAN : 0), "by_source",
                   by_source, "by_result", by_result, "rejections_per_s", rejections, "answer_seconds",
                   s_quantiles (&answer), "inflight", s_num (inflight));
    char ts [40];
    trove_format_rfc3339 (trove_now_ms (), ts, sizeof ts);
    return json_pack ("{s:s,s:f,s:I,s:I,s:o,s:o,s:o,s:o,s:o}", "ts", ts, "interval_s", interval_s, "up",
                      (json_int_t) up, "processes", (json_int_t) count, "ingest", ingest, "ingestors",
                      ingestors, "shards", shards, "commit_seconds", s_quantiles (&commit), "broker", broker);
}

//  ---------------------------------------------------------------------------
//  The screen

//  A number of the report, NAN when null or absent.
static double
s_get (const json_t *obj, const char *key)
{
    json_t *value = json_object_get (obj, key);
    return json_is_number (value) ? json_number_value (value) : NAN;
}

static const char *
s_fmt_rate (double value, char *buf, size_t size)
{
    if (isnan (value))
        snprintf (buf, size, "-");
    else
        snprintf (buf, size, "%.1f", value);
    return buf;
}

static const char *
s_fmt_count (double value, char *buf, size_t size)
{
    if (isnan (value))
        snprintf (buf, size, "-");
    else
        snprintf (buf, size, "%.0f", value);
    return buf;
}

static const char *
s_fmt_seconds (double value, char *buf, size_t size)
{
    if (isnan (value))
        snprintf (buf, size, "-");
    else if (value < 0.001)
        snprintf (buf, size, "%.0f us", value * 1e6);
    else if (value < 1)
        snprintf (buf, size, "%.2f ms", value * 1e3);
    else
        snprintf (buf, size, "%.2f s", value);
    return buf;
}

//  "key value  key value ..." of an object of rates, or "none".
static void
s_print_rates (const char *title, const json_t *obj)
{
    printf ("  %-12s", title);
    const char *key;
    json_t *value;
    char buf [32];
    if (json_object_size (obj) == 0)
        printf (" none");
    json_object_foreach ((json_t *) obj, key, value)
        printf (" %s %s", key, s_fmt_rate (json_number_value (value), buf, sizeof buf));
    printf ("\n");
}

static void
s_print_screen (const json_t *report, const char *cfg_path, bool tty)
{
    char a [32], b [32], c [32], d [32], e [32];
    if (tty)
        printf ("\033[H\033[2J");
    const json_t *ingest = json_object_get (report, "ingest");
    printf ("trovectl top  %s  %s  every %.1f s  %lld/%lld up\n\n", cfg_path,
            json_string_value (json_object_get (report, "ts")), s_get (report, "interval_s"),
            (long long) s_get (report, "up"), (long long) s_get (report, "processes"));

    const json_t *answer = json_object_get (ingest, "answer_seconds");
    printf ("INGEST  %s events/s  accepted %s/s  answer p50 %s  p99 %s  inflight %s\n",
            s_fmt_rate (s_get (ingest, "events_per_s"), a, sizeof a),
            s_fmt_rate (s_get (ingest, "accepted_per_s"), b, sizeof b),
            s_fmt_seconds (s_get (answer, "p50"), c, sizeof c),
            s_fmt_seconds (s_get (answer, "p99"), d, sizeof d),
            s_fmt_count (s_get (ingest, "inflight"), e, sizeof e));
    s_print_rates ("by answer", json_object_get (ingest, "by_result"));
    s_print_rates ("by source", json_object_get (ingest, "by_source"));
    s_print_rates ("rejections", json_object_get (ingest, "rejections_per_s"));
    size_t i;
    json_t *proc;
    json_array_foreach (json_object_get (report, "ingestors"), i, proc)
    {
        printf ("  %-8s %-4s %-22s", json_string_value (json_object_get (proc, "name")),
                json_is_true (json_object_get (proc, "up")) ? "up" : "DOWN",
                json_string_value (json_object_get (proc, "address")));
        if (json_is_true (json_object_get (proc, "up")))
            printf (" %s events/s  inflight %s\n", s_fmt_rate (s_get (proc, "events_per_s"), a, sizeof a),
                    s_fmt_count (s_get (proc, "inflight"), b, sizeof b));
        else
            printf (" %s\n", json_string_value (json_object_get (proc, "error")));
    }

    printf ("\n%-8s %-4s %11s %11s %9s %12s %9s %11s %11s\n", "SHARD", "UP", "ACCEPTED/S", "EVENTS/S", "LAG",
            "LAST_ASEQ", "COINS/S", "COMMIT_P50", "COMMIT_P99");
    json_array_foreach (json_object_get (report, "shards"), i, proc)
    {
        const char *name = json_string_value (json_object_get (proc, "name"));
        if (!json_is_true (json_object_get (proc, "up"))) {
            printf ("%-8s %-4s %s\n", name, "DOWN", json_string_value (json_object_get (proc, "error")));
            continue;
        }
        const json_t *commit = json_object_get (proc, "commit_seconds");
        char lag [32], aseq [32], coins [32], p50 [32], p99 [32];
        printf ("%-8s %-4s %11s %11s %9s %12s %9s %11s %11s\n", name, "up",
                s_fmt_rate (s_get (proc, "accepted_per_s"), a, sizeof a),
                s_fmt_rate (s_get (proc, "events_per_s"), b, sizeof b),
                s_fmt_count (s_get (proc, "lag"), lag, sizeof lag),
                s_fmt_count (s_get (proc, "last_aseq"), aseq, sizeof aseq),
                s_fmt_rate (s_get (proc, "coins_per_s"), coins, sizeof coins),
                s_fmt_seconds (s_get (commit, "p50"), p50, sizeof p50),
                s_fmt_seconds (s_get (commit, "p99"), p99, sizeof p99));
    }
    const json_t *commit = json_object_get (report, "commit_seconds");
    printf ("%-8s %-4s %11s %11s %9s %12s %9s %11s %11s\n", "all", "", "", "", "", "", "",
            s_fmt_seconds (s_get (commit, "p50"), c, sizeof c),
            s_fmt_seconds (s_get (commit, "p99"), d, sizeof d));

    const json_t *broker = json_object_get (report, "broker");
    if (json_is_object (broker)) {
        if (json_is_true (json_object_get (broker, "up")))
            printf ("\nBROKER  up    %s  %s messages/s\n",
                    json_string_value (json_object_get (broker, "address")),
                    s_fmt_rate (s_get (broker, "messages_per_s"), a, sizeof a));
        else
            printf ("\nBROKER  DOWN  %s  %s\n", json_string_value (json_object_get (broker, "address")),
                    json_string_value (json_object_get (broker, "error")));
    }
    if (!tty)
        printf ("\n");
}

//  ---------------------------------------------------------------------------
//  The command

//  The seconds of --interval TEXT into *interval. Returns 0, or -1 after
//  printing a one-line error.
static int
s_parse_interval (const char *text, double *interval)
{
    char *end;
    errno = 0;
    double value = strtod (text, &end);
    if (errno || end == text || *end || !(value >= S_MIN_INTERVAL && value <= S_MAX_INTERVAL)) {
        trovectl_fail ("--interval '%s': want seconds from %g to %g", text, S_MIN_INTERVAL, S_MAX_INTERVAL);
        return -1;
    }
    *interval = value;
    return 0;
}

//  Sleep until the monotonic time until_us. Returns 0, or -1 when
//  interrupted by SIGINT/SIGTERM.
static int
s_sleep_until (int64_t until_us)
{
    while (!trovectl_interrupted ()) {
        int64_t left = until_us - trove_mono_us ();
        if (left <= 0)
            return 0;
        struct timespec ts = {.tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000};
        nanosleep (&ts, NULL);  //  EINTR: the loop looks at trovectl_interrupted ()
    }
    return -1;
}

//  The processes of cfg that have a metrics address (*count_p of them, maybe
//  0). NULL on OOM.
static s_target_t *
s_targets (const trove_cfg_t *cfg, size_t *count_p)
{
    size_t max = 1 + trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg), count = 0;
    s_target_t *targets = calloc (max, sizeof *targets);
    if (!targets)
        return NULL;
    const char *address = trove_cfg_broker_metrics (cfg);
    if (address && *address)
        targets [count++] = (s_target_t){.role = "broker", .name = "broker", .shard = -1, .address = address};
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++)
        if ((address = trove_cfg_ingestor_metrics (cfg, i)) && *address)
            targets [count++] = (s_target_t){.role = "ingestor",
                                             .name = trove_cfg_ingestor_name (cfg, i),
                                             .shard = -1,
                                             .address = address};
    for (size_t i = 0; i < trove_cfg_shards (cfg); i++)
        if ((address = trove_cfg_shard_metrics (cfg, i)) && *address)
            targets [count++] = (s_target_t){.role = "scorer",
                                             .name = trove_cfg_shard_name (cfg, i),
                                             .shard = (int) i,
                                             .address = address};
    *count_p = count;
    return targets;
}

int
trovectl_top (const trovectl_opts_t *opts)
{
    double interval = 1.0;
    int rc = 1;
    trove_cfg_t *cfg = NULL;
    s_target_t *targets = NULL;
    size_t count = 0;
    if (opts->interval && s_parse_interval (opts->interval, &interval))
        goto cleanup;
    if (opts->nargs) {
        trovectl_fail ("top: unexpected argument '%s'", opts->args [0]);
        goto cleanup;
    }
    char path [4096];
    trovectl_cfg_path (opts, path, sizeof path);
    char *err = NULL;
    cfg = trove_cfg_load (path, &err);
    if (!cfg) {
        trovectl_fail ("%s", err ? err : "cannot load config");
        free (err);
        goto cleanup;
    }

    targets = s_targets (cfg, &count);
    if (!targets) {
        trovectl_fail ("out of memory");
        goto cleanup;
    }
    if (count == 0) {
        trovectl_fail ("top: %s gives no metrics address (metrics = \"127.0.0.1:PORT\" of the broker, "
                       "ingestors or scorers)",
                       path);
        goto cleanup;
    }

    trovectl_catch_signals ();

    bool tty = !opts->json && isatty (STDOUT_FILENO);
    long views = opts->count > 0 ? opts->count : 0;  //  0: until SIGINT
    int64_t round_us = trove_mono_us ();
    int scraped = s_scrape_all (targets, count);
    for (long view = 0; scraped == 0 && (views == 0 || view < views); view++) {
        if (s_sleep_until (round_us + (int64_t) (interval * 1e6)))
            break;
        int64_t now_us = trove_mono_us ();
        if ((scraped = s_scrape_all (targets, count)))
            break;
        json_t *report = s_report (targets, count, (double) (now_us - round_us) / 1e6);
        round_us = now_us;
        if (!report) {
            trovectl_fail ("out of memory");
            goto cleanup;
        }
        if (opts->json) {
            char *text = json_dumps (report, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (6));
            if (text)
                puts (text);
            free (text);
        }
        else
            s_print_screen (report, path, tty);
        json_decref (report);
        fflush (stdout);
    }
    if (scraped && !trovectl_interrupted ()) {
        trovectl_fail ("out of memory");
        goto cleanup;
    }
    //  SIGINT ends a live view: not an error
    rc = 0;
cleanup:
    for (size_t i = 0; targets && i < count; i++) {
        trovectl_prom_destroy (&targets [i].cur);
        trovectl_prom_destroy (&targets [i].prev);
    }
    free (targets);
    trove_cfg_destroy (&cfg);
    return rc;
}
