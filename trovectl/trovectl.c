/*  trovectl - the command line of a Trove cluster: send events, query
    balances and coins, follow the award stream, check status; `up` and
    `down` (trovectl_up.c) run a local cluster.

    Every command takes --json (machine-readable output) and exits non-zero
    with a one-line error on stderr when it fails. */
#include "trovectl.h"
#include "trove_json.h"
#include "trove_curve.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_router.h"
#include "trove_util.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Timeout and retries of the queries of balance, coins and coin.
#define S_QUERY_TIMEOUT_MS 2000
#define S_QUERY_RETRIES 1
//  Coins per "coins" query.
#define S_COINS_PAGE 200

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

//  SIGINT/SIGTERM set s_interrupted instead of killing us (no SA_RESTART,
//  so a blocking wait returns EINTR).
static void
s_catch_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

int
trovectl_fail (const char *fmt, ...)
{
    char buf [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (buf, sizeof buf, fmt, args);
    va_end (args);
    //  one line, whatever the message contains
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fflush (stdout);
    fprintf (stderr, "trovectl: %s\n", buf);
    return 1;
}

const char *
trovectl_dir (const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *env = getenv ("TROVE_DIR");
    return env && *env ? env : "./trove-data";
}

//  ---------------------------------------------------------------------------
//  Options

enum {
    S_OPT_DIR = 256,
    S_OPT_CONFIG,
    S_OPT_JSON,
    S_OPT_HELP,
    S_OPT_QUIET,
    S_OPT_STRICT,
    S_OPT_FROM_START,
    S_OPT_DETACH,
    S_OPT_LIMIT,
    S_OPT_COUNT,
    S_OPT_TIMEOUT,
    S_OPT_PORT_BASE,
    S_OPT_SHARDS,
    S_OPT_INGESTORS,
    S_OPT_SYNC,
    S_OPT_USER,
    S_OPT_SHARD,
    S_OPT_WAIT,
    S_OPT_REPORT,
    S_OPT_PERIOD,
    S_OPT_K,
    S_OPT_LIST,
    S_OPT_REASON,
    S_OPT_AFTER,
    S_OPT_CURVE,
    S_OPT_NAME,
    S_OPT_INSECURE,
    S_OPT_ROLE,
    S_OPT_SOURCE
};

static const struct option s_options [] = {{"dir", required_argument, NULL, S_OPT_DIR},
                                           {"config", required_argument, NULL, S_OPT_CONFIG},
                                           {"json", no_argument, NULL, S_OPT_JSON},
                                           {"help", no_argument, NULL, S_OPT_HELP},
                                           {"quiet", no_argument, NULL, S_OPT_QUIET},
                                           {"strict", no_argument, NULL, S_OPT_STRICT},
                                           {"from-start", no_argument, NULL, S_OPT_FROM_START},
                                           {"detach", no_argument, NULL, S_OPT_DETACH},
                                           {"limit", required_argument, NULL, S_OPT_LIMIT},
                                           {"count", required_argument, NULL, S_OPT_COUNT},
                                           {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
                                           {"port-base", required_argument, NULL, S_OPT_PORT_BASE},
                                           {"shards", required_argument, NULL, S_OPT_SHARDS},
                                           {"ingestors", required_argument, NULL, S_OPT_INGESTORS},
                                           {"sync", required_argument, NULL, S_OPT_SYNC},
                                           {"user", required_argument, NULL, S_OPT_USER},
                                           {"shard", required_argument, NULL, S_OPT_SHARD},
                                           {"wait", no_argument, NULL, S_OPT_WAIT},
                                           {"report", no_argument, NULL, S_OPT_REPORT},
                                           {"period", required_argument, NULL, S_OPT_PERIOD},
                                           {"k", required_argument, NULL, S_OPT_K},
                                           {"list", no_argument, NULL, S_OPT_LIST},
                                           {"reason", required_argument, NULL, S_OPT_REASON},
                                           {"after", required_argument, NULL, S_OPT_AFTER},
                                           {"curve", no_argument, NULL, S_OPT_CURVE},
                                           {"name", required_argument, NULL, S_OPT_NAME},
                                           {"insecure", no_argument, NULL, S_OPT_INSECURE},
                                           {"role", required_argument, NULL, S_OPT_ROLE},
                                           {"source", required_argument, NULL, S_OPT_SOURCE},
                                           {NULL, 0, NULL, 0}};

static bool
s_allowed (const char *allowed, const char *name)
{
    size_t len = strlen (name);
    for (const char *p = allowed; (p = strstr (p, name)); p += len)
        if ((p == allowed || p [-1] == ' ') && (p [len] == ' ' || p [len] == 0))
            return true;
    return false;
}

static int
s_parse_number (const char *name, const char *text, long *value)
{
    char *end;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || end == text || *end || v < 0) {
        trovectl_fail ("--%s '%s': want a non-negative integer", name, text);
        return -1;
    }
    *value = v;
    return 0;
}

int
trovectl_parse (int argc, char **argv, const char *allowed, trovectl_opts_t *opts)
{
    memset (opts, 0, sizeof *opts);
    opts->limit = opts->count = opts->timeout = -1;
    opts->port_base = opts->shards = opts->ingestors = opts->k = -1;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long (argc, argv, ":", s_options, NULL)) != -1) {
        const char *problem = NULL;
        if (c == '?')
            problem = "unknown option";
        else if (c == ':')
            problem = "missing value of option";
        if (problem) {
            if (optopt && optopt < 256)
                trovectl_fail ("%s: %s '-%c' (see trovectl %s --help)", argv [0], problem, optopt, argv [0]);
            else
                trovectl_fail ("%s: %s '%s' (see trovectl %s --help)", argv [0], problem, argv [optind - 1],
                               argv [0]);
            return -1;
        }
        const char *name = s_options [c - S_OPT_DIR].name;
        if (c != S_OPT_HELP && !s_allowed (allowed, name)) {
            trovectl_fail ("%s: option --%s does not apply (see trovectl %s --help)", argv [0], name,
                           argv [0]);
            return -1;
        }
        int rc = 0;
        switch (c) {
            case S_OPT_DIR:
                opts->dir = optarg;
                break;
            case S_OPT_CONFIG:
                opts->config = optarg;
                break;
            case S_OPT_JSON:
                opts->json = true;
                break;
            case S_OPT_HELP:
                opts->help = true;
                break;
            case S_OPT_QUIET:
                opts->quiet = true;
                break;
            case S_OPT_STRICT:
                opts->strict = true;
                break;
            case S_OPT_FROM_START:
                opts->from_start = true;
                break;
            case S_OPT_DETACH:
                opts->detach = true;
                break;
            case S_OPT_PERIOD:
                opts->period = optarg;
                break;
            case S_OPT_K:
                rc = s_parse_number ("k", optarg, &opts->k);
                break;
            case S_OPT_LIST:
                opts->list = true;
                break;
            case S_OPT_REASON:
                opts->reason = optarg;
                break;
            case S_OPT_AFTER:
                opts->after = optarg;
                break;
            case S_OPT_CURVE:
                opts->curve = true;
                break;
            case S_OPT_NAME:
                opts->name = optarg;
                break;
            case S_OPT_INSECURE:
                opts->insecure = true;
                break;
            case S_OPT_ROLE:
                opts->role = optarg;
                break;
            case S_OPT_SOURCE:
                opts->source = optarg;
                break;
            case S_OPT_LIMIT:
                rc = s_parse_number (name, optarg, &opts->limit);
                break;
            case S_OPT_COUNT:
                rc = s_parse_number (name, optarg, &opts->count);
                break;
            case S_OPT_TIMEOUT:
                rc = s_parse_number (name, optarg, &opts->timeout);
                break;
            case S_OPT_PORT_BASE:
                rc = s_parse_number (name, optarg, &opts->port_base);
                break;
            case S_OPT_SHARDS:
                rc = s_parse_number (name, optarg, &opts->shards);
                break;
            case S_OPT_INGESTORS:
                rc = s_parse_number (name, optarg, &opts->ingestors);
                break;
            case S_OPT_SYNC:
                opts->sync = optarg;
                break;
            case S_OPT_USER:
                opts->user = optarg;
                break;
            case S_OPT_SHARD:
                opts->shard = optarg;
                break;
            case S_OPT_WAIT:
                opts->wait = true;
                break;
            case S_OPT_REPORT:
                opts->report = true;
                break;
            default:
                break;
        }
        if (rc)
            return -1;
    }
    opts->args = argv + optind;
    opts->nargs = argc - optind;
    return 0;
}

//  Load the cluster config named by --config, or DIR/trove.cfg.
trove_cfg_t *
trovectl_load_cfg (const trovectl_opts_t *opts)
{
    char path [4096];
    if (opts->config)
        snprintf (path, sizeof path, "%s", opts->config);
    else
        snprintf (path, sizeof path, "%s/trove.cfg", trovectl_dir (opts->dir));
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    //  trovectl is the operator's tool: it presents the operator's
    //  certificate when the config names one this user can read (control
    //  operations need it), else the host's.
    const char *op = cfg && trove_cfg_curve (cfg) ? trove_cfg_curve_operator (cfg) : NULL;
    char secret [4096 + 8];
    snprintf (secret, sizeof secret, "%s_secret", op ? op : "");
    if (cfg && (op && access (secret, R_OK) == 0 ? trove_curve_start_as (cfg, op, NULL, false, &err)
                                                  : trove_curve_start (cfg, NULL, false, &err)))
        trove_cfg_destroy (&cfg);
    if (!cfg) {
        trovectl_fail ("%s", err ? err : "cannot load config");
        free (err);
    }
    return cfg;
}

//  Print a JSON value as one line and take it.
static void
s_print_json (json_t *value)
{
    char *text = json_dumps (value, JSON_COMPACT);
    if (text)
        puts (text);
    free (text);
    json_decref (value);
}

static json_t *
s_str (const char *text)
{
    return json_string (text ? text : "");
}

//  "web/e-1,web/e-2" into buf.
static void
s_coin_events (const Trove__Coin *coin, char *buf, size_t size)
{
    size_t used = 0;
    buf [0] = 0;
    for (size_t i = 0; i < coin->n_events && used < size; i++)
        used += snprintf (buf + used, size - used, "%s%s/%s", i ? "," : "", coin->events [i]->source,
                          coin->events [i]->id);
}

static void
s_print_coin_line (const Trove__Coin *coin, bool with_user)
{
    char minted [40], events [1024];
    trove_format_rfc3339 (coin->minted_ms, minted, sizeof minted);
    s_coin_events (coin, events, sizeof events);
    if (with_user)
        printf ("s%u #%llu %s user=%s value=%lld hunt=%s rule=%s v%u reason=%s minted=%s events=%s%s\n",
                coin->shard, (unsigned long long) coin->aseq, coin->id, coin->user, (long long) coin->value,
                coin->hunt, coin->rule, coin->rule_version, coin->reason, minted, events,
                coin->revoked ? " REVOKED" : "");
    else
        printf ("%s value=%lld hunt=%s rule=%s v%u reason=%s minted=%s events=%s%s\n", coin->id,
                (long long) coin->value, coin->hunt, coin->rule, coin->rule_version, coin->reason, minted,
                events, coin->revoked ? " REVOKED" : "");
}

//  One query to a scorer shard; prints the failure and returns NULL on
//  timeout or when the reply carries an error other than `tolerated`.
static Trove__QueryReply *
s_query (const trove_cfg_t *cfg, size_t shard, Trove__Query *query, const char *tolerated)
{
    return trovectl_query (cfg, shard, query, tolerated, S_QUERY_TIMEOUT_MS);
}

Trove__QueryReply *
trovectl_query (const trove_cfg_t *cfg, size_t shard, Trove__Query *query, const char *tolerated,
                int timeout_ms)
{
    char *err = NULL;
    const char *endpoint = trove_cfg_shard_query (cfg, shard);
    Trove__QueryReply *reply = trove_client_call_max (endpoint, query, timeout_ms, S_QUERY_RETRIES,
                                                      trove_cfg_limits (cfg)->max_frame, &err);
    if (!reply) {
        trovectl_fail ("scorer %s: %s", trove_cfg_shard_name (cfg, shard), err ? err : "no reply");
        free (err);
        return NULL;
    }
    if (reply->error && *reply->error && !(tolerated && strcmp (reply->error, tolerated) == 0)) {
        trovectl_fail ("scorer %s: %s query failed: %s", trove_cfg_shard_name (cfg, shard), query->kind,
                       reply->error);
        trove_client_reply_free (&reply);
    }
    return reply;
}

//  ---------------------------------------------------------------------------
//  send

static const char *s_send_help =
    "usage: trovectl send [FILE|-] [--dir DIR | --config FILE] [--json] [--quiet]\n"
    "                     [--strict] [--timeout SECONDS]\n"
    "\n"
    "Submit NDJSON events (one JSON object per line, see docs/events.md) from FILE\n"
    "or standard input to the cluster's ingestors and wait until every event has a\n"
    "final answer. Blank lines are skipped; a line that does not parse is reported\n"
    "as rejected (with its reason code) and not sent. Events that get RETRY or no\n"
    "answer are resubmitted with the same request id until they are answered.\n"
    "\n"
    "Output, one line per event, in the order the answers arrive:\n"
    "  default: line N SOURCE/ID STATUS [REASON: DETAIL]\n"
    "  --json:  {\"line\":N,\"source\":..,\"id\":..,\"status\":\"accepted|duplicate|rejected\",\n"
    "            \"reason\":..,\"detail\":..}\n"
    "  --quiet: nothing per event.\n"
    "The summary always goes to standard error: a sentence, or with --json one\n"
    "line {\"summary\":{\"events\":N,\"accepted\":A,\"duplicate\":D,\"rejected\":R,\n"
    "\"unanswered\":U}}.\n"
    "\n"
    "  --timeout SECONDS  give up after this long (default 0: never); unanswered\n"
    "                     events are counted in the summary and the exit code is 1.\n"
    "  --strict           exit 2 when any event was rejected.\n"
    "Exit: 0 when every event was answered (even rejected), 1 on error or timeout,\n"
    "2 with --strict and rejections.\n";

typedef struct {
    long line;     //  line number in the input
    char *source;  //  for the report
    char *id;      //  for the report
} s_line_t;

typedef struct {
    bool json;        //  --json
    bool quiet;       //  --quiet
    s_line_t *lines;  //  by tag
    size_t nlines;    //  used
    size_t maxlines;  //  allocated
    size_t accepted, duplicate, rejected;
} s_send_t;

static void
s_send_report (s_send_t *self, long line, const char *source, const char *id, int status, const char *reason,
               const char *detail)
{
    if (status == TROVE__STATUS__ACCEPTED)
        self->accepted++;
    else if (status == TROVE__STATUS__DUPLICATE)
        self->duplicate++;
    else
        self->rejected++;
    if (self->quiet)
        return;
    if (self->json) {
        json_t *obj =
            json_pack ("{s:I,s:o,s:o,s:s}", "line", (json_int_t) line, "source",
                       source ? json_string (source) : json_null (), "id",
                       id ? json_string (id) : json_null (), "status", trove_event_status_name (status));
        json_object_set_new (obj, "reason", reason && *reason ? json_string (reason) : json_null ());
        if (detail && *detail)
            json_object_set_new (obj, "detail", json_string (detail));
        s_print_json (obj);
    }
    else {
        printf ("line %ld %s/%s %s", line, source ? source : "?", id ? id : "?",
                trove_event_status_name (status));
        if (reason && *reason)
            printf (" %s", reason);
        if (detail && *detail)
            printf (": %s", detail);
        printf ("\n");
    }
}

static void
s_on_result (void *arg, uint64_t tag, const Trove__Result *result, int64_t latency_us)
{
    (void) latency_us;
    s_send_t *self = (s_send_t *) arg;
    s_line_t *line = &self->lines [tag];
    s_send_report (self, line->line, line->source, line->id, result->status, result->reason, result->detail);
    free (line->source);
    free (line->id);
    line->source = line->id = NULL;
}

//  Best effort source and id of a line that did not parse as an event.
static void
s_guess_ids (const char *text, size_t len, char **source_p, char **id_p)
{
    *source_p = *id_p = NULL;
    json_t *root = json_loadb (text, len, 0, NULL);
    if (json_is_object (root)) {
        const char *source = json_string_value (json_object_get (root, "source"));
        const char *id = json_string_value (json_object_get (root, "id"));
        *source_p = source ? strdup (source) : NULL;
        *id_p = id ? strdup (id) : NULL;
    }
    json_decref (root);
}

static int
s_cmd_send (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json quiet strict timeout", &opts))
        return 1;
    if (opts.help) {
        fputs (s_send_help, stdout);
        return 0;
    }
    if (opts.nargs > 1)
        return trovectl_fail ("send: one input file at most (see trovectl send --help)");
    int rc = 1;
    trove_cfg_t *cfg = NULL;
    trove_submitter_t *submitter = NULL;
    FILE *input = NULL;
    char *text = NULL;
    s_send_t state = {.json = opts.json, .quiet = opts.quiet};
    const char *path = opts.nargs ? opts.args [0] : "-";
    cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        goto fail;
    if (trove_cfg_ingestors (cfg) == 0) {
        trovectl_fail ("the config has no ingestors");
        goto fail;
    }
    input = strcmp (path, "-") ? fopen (path, "r") : stdin;
    if (!input) {
        trovectl_fail ("cannot read %s: %s", path, strerror (errno));
        goto fail;
    }
    submitter = trove_submitter_new (cfg, 0, 20000, s_on_result, &state);
    if (!submitter) {
        trovectl_fail ("cannot create a submitter for the ingestors");
        goto fail;
    }
    s_catch_signals ();
    int64_t deadline = opts.timeout > 0 ? trove_mono_us () + opts.timeout * 1000000LL : INT64_MAX;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    bool stopped = false;  //  interrupted or timed out
    while (!stopped && (len = getline (&text, &cap, input)) != -1) {
        lineno++;
        while (len > 0 && (text [len - 1] == '\n' || text [len - 1] == '\r'))
            text [--len] = 0;
        size_t start = strspn (text, " \t");
        if ((size_t) len == start)
            continue;
        const char *reason = NULL;
        char *err = NULL;
        Trove__Event *event = trove_event_from_json (text, (size_t) len, &reason, &err);
        if (!event) {
            char *source, *id;
            s_guess_ids (text, (size_t) len, &source, &id);
            s_send_report (&state, lineno, source, id, TROVE__STATUS__REJECTED, reason ? reason : "bad_json",
                           err);
            free (source);
            free (id);
            free (err);
            continue;
        }
        if (state.nlines == state.maxlines) {
            size_t max = state.maxlines ? state.maxlines * 2 : 1024;
            s_line_t *lines = realloc (state.lines, max * sizeof *lines);
            if (!lines) {
                trove_event_destroy (&event);
                trovectl_fail ("out of memory");
                goto fail;
            }
            state.lines = lines;
            state.maxlines = max;
        }
        s_line_t *line = &state.lines [state.nlines];
        line->line = lineno;
        line->source = strdup (event->source);
        line->id = strdup (event->id);
        while (trove_submitter_add (submitter, event, state.nlines) == -1) {
            trove_submitter_poll (submitter, 100);
            if (s_interrupted || trove_mono_us () >= deadline) {
                stopped = true;
                break;
            }
        }
        trove_event_destroy (&event);
        if (stopped) {
            free (line->source);
            free (line->id);
            break;
        }
        state.nlines++;
    }
    if (!stopped && ferror (input)) {
        trovectl_fail ("reading %s: %s", path, strerror (errno));
        goto fail;
    }
    trove_submitter_flush (submitter);
    while (!stopped && trove_submitter_pending (submitter) > 0) {
        trove_submitter_poll (submitter, 200);
        if (s_interrupted || trove_mono_us () >= deadline)
            stopped = true;
    }
    fflush (stdout);
    size_t unanswered = trove_submitter_pending (submitter);
    //  events never handed to the submitter (stopped while reading)
    size_t events = state.accepted + state.duplicate + state.rejected + unanswered;
    if (opts.json)
        fprintf (stderr,
                 "{\"summary\":{\"events\":%zu,\"accepted\":%zu,\"duplicate\":%zu,"
                 "\"rejected\":%zu,\"unanswered\":%zu}}\n",
                 events, state.accepted, state.duplicate, state.rejected, unanswered);
    else
        fprintf (stderr, "%zu events: %zu accepted, %zu duplicate, %zu rejected%s", events, state.accepted,
                 state.duplicate, state.rejected, unanswered ? "" : "\n");
    if (unanswered && !opts.json)
        fprintf (stderr, ", %zu unanswered\n", unanswered);
    if (stopped) {
        const char *why = trove_submitter_last_retry (submitter);
        trovectl_fail (
            "%s with %zu event%s unanswered%s%s%s%s", s_interrupted ? "interrupted" : "timed out", unanswered,
            unanswered == 1 ? "" : "s", stopped && !feof (input) ? " (input not read to the end)" : "",
            *why ? "; last answer: retry " : "", why, *why || s_interrupted ? "" : trove_curve_hint ());
        goto fail;
    }
    rc = opts.strict && state.rejected ? 2 : 0;
fail:
    trove_submitter_destroy (&submitter);
    for (size_t i = 0; i < state.nlines; i++) {
        free (state.lines [i].source);
        free (state.lines [i].id);
    }
    free (state.lines);
    free (text);
    if (input && input != stdin)
        fclose (input);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  balance

static const char *s_balance_help =
    "usage: trovectl balance USER [USER...] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Print each user's coin balance, asked from the user's scorer shard.\n"
    "Output: \"USER BALANCE\" per line; --json: {\"user\":..,\"balance\":N,\"hunts\":\n"
    "{HUNT: N, ...},\"cost\":UNITS} per line (per-hunt balances, the query's cost).\n"
    "Exit 1 if a shard does not answer.\n";

static int
s_cmd_balance (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json", &opts))
        return 1;
    if (opts.help) {
        fputs (s_balance_help, stdout);
        return 0;
    }
    if (opts.nargs == 0)
        return trovectl_fail ("balance: name at least one user (see trovectl balance --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        return 1;
    int rc = 0;
    for (int i = 0; i < opts.nargs && rc == 0; i++) {
        const char *user = opts.args [i];
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "balance";
        query.user = (char *) user;
        Trove__QueryReply *reply = s_query (cfg, trove_cfg_shard_of_user (cfg, user), &query, NULL);
        if (!reply) {
            rc = 1;
            break;
        }
        if (opts.json)
            s_print_json (trove_json_balance (user, reply));
        else
            printf ("%s %lld\n", user, (long long) reply->balance);
        trove_client_reply_free (&reply);
    }
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  coins

static const char *s_coins_help =
    "usage: trovectl coins USER [--limit N] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "List a user's coins, newest first: id, value, hunt, rule, rule version,\n"
    "reason, mint time (RFC 3339) and the earning events (source/id).\n"
    "  --limit N  at most N coins (default 50, 0 = all).\n"
    "--json: one coin object per line.\n";

static int
s_cmd_coins (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json limit", &opts))
        return 1;
    if (opts.help) {
        fputs (s_coins_help, stdout);
        return 0;
    }
    if (opts.nargs != 1)
        return trovectl_fail ("coins: name one user (see trovectl coins --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        return 1;
    const char *user = opts.args [0];
    size_t shard = trove_cfg_shard_of_user (cfg, user);
    long limit = opts.limit < 0 ? 50 : opts.limit;
    long shown = 0;
    char *cursor = strdup ("");
    int rc = 0;
    while (cursor && (limit == 0 || shown < limit)) {
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "coins";
        query.user = (char *) user;
        query.cursor = cursor;
        long want = limit == 0 || limit - shown > S_COINS_PAGE ? S_COINS_PAGE : limit - shown;
        query.limit = (uint32_t) want;
        Trove__QueryReply *reply = s_query (cfg, shard, &query, NULL);
        if (!reply) {
            rc = 1;
            break;
        }
        for (size_t i = 0; i < reply->n_coins && (limit == 0 || shown < limit); i++, shown++) {
            if (opts.json)
                s_print_json (trove_json_coin (reply->coins [i]));
            else
                s_print_coin_line (reply->coins [i], false);
        }
        free (cursor);
        cursor = NULL;
        if (reply->next_cursor && *reply->next_cursor && reply->n_coins > 0)
            cursor = strdup (reply->next_cursor);
        trove_client_reply_free (&reply);
    }
    free (cursor);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  coin

static const char *s_coin_help =
    "usage: trovectl coin ID [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Show one coin and the events that earned it (each as its full event JSON).\n"
    "The coin id does not name its shard, so every shard is asked.\n"
    "--json: one document {\"coin\":{..},\"events\":[{event}..],\"cost\":UNITS} (units\n"
    "read on every shard), the same as the ingestors' GET /v1/coins/ID.\n"
    "Exit 1 if the coin is not found (or a shard that might hold it is down).\n";

static int
s_cmd_coin (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json", &opts))
        return 1;
    if (opts.help) {
        fputs (s_coin_help, stdout);
        return 0;
    }
    if (opts.nargs != 1)
        return trovectl_fail ("coin: name one coin id (see trovectl coin --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        return 1;
    int rc = 1;
    //  Every shard at once, as the HTTP API does (the same cost).
    trove_router_t *router = trove_router_new (cfg, S_QUERY_TIMEOUT_MS);
    char *err = NULL;
    Trove__QueryReply *reply = router ? trove_router_coin (router, opts.args [0], &err) : NULL;
    trove_router_destroy (&router);
    if (!reply || (reply->error && *reply->error) || reply->n_coins == 0) {
        if (!reply)
            trovectl_fail ("coin %s not found (%s)", opts.args [0], err ? err : "cannot create sockets");
        else if (!(reply->error && *reply->error) || strcmp (reply->error, "not_found") == 0)
            trovectl_fail ("coin %s not found", opts.args [0]);
        else
            trovectl_fail ("coin %s: %s", opts.args [0], reply->error);
        free (err);
        goto fail;
    }
    const Trove__Coin *coin = reply->coins [0];
    if (opts.json)
        s_print_json (trove_json_coin_provenance (reply));
    else {
        char minted [40];
        trove_format_rfc3339 (coin->minted_ms, minted, sizeof minted);
        printf ("coin         %s\nuser         %s\nvalue        %lld\nhunt         %s\n"
                "rule         %s (version %u)\nreason       %s\nminted       %s\n"
                "shard        %s (aseq %llu)\n%s",
                coin->id, coin->user, (long long) coin->value, coin->hunt, coin->rule, coin->rule_version,
                coin->reason, minted,
                trove_cfg_shard_name (cfg, coin->shard < trove_cfg_shards (cfg) ? coin->shard : 0),
                (unsigned long long) coin->aseq, coin->revoked ? "revoked      yes\n" : "");
        printf ("events       %zu\n", reply->n_events);
        for (size_t i = 0; i < reply->n_events; i++) {
            if (!reply->events [i]->event)
                continue;
            char *text = trove_event_to_json (reply->events [i]->event);
            printf ("  %s\n", text ? text : "?");
            free (text);
        }
    }
    rc = 0;
fail:
    trove_client_reply_free (&reply);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  tail

static const char *s_tail_help =
    "usage: trovectl tail [--from-start] [--count N] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Follow the award stream: every award of every shard exactly once, in award\n"
    "sequence order per shard (gaps are fetched from the scorers).\n"
    "  --from-start  begin with each shard's first award (default: from now).\n"
    "  --count N     stop after N awards (default: run until SIGINT).\n"
    "Output: \"sSHARD #ASEQ ID user=.. value=.. ..\" per award; --json: one coin\n"
    "object per line.\n";

typedef struct {
    bool json;   //  --json
    long count;  //  stop after this many, 0 = never
    long seen;   //  printed so far
} s_tail_t;

static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_tail_t *self = (s_tail_t *) arg;
    if (self->count && self->seen >= self->count)
        return;
    self->seen++;
    if (self->json)
        s_print_json (trove_json_coin (coin));
    else
        s_print_coin_line (coin, true);
    fflush (stdout);
}

static int
s_cmd_tail (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json from-start count", &opts))
        return 1;
    if (opts.help) {
        fputs (s_tail_help, stdout);
        return 0;
    }
    if (opts.nargs)
        return trovectl_fail ("tail: unexpected argument '%s'", opts.args [0]);
    trove_cfg_t *cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        return 1;
    s_catch_signals ();
    s_tail_t state = {.json = opts.json, .count = opts.count > 0 ? opts.count : 0};
    trove_awardsub_t *sub = trove_awardsub_new (cfg, !opts.from_start, s_on_award, &state);
    int rc = 0;
    if (!sub)
        rc = trovectl_fail ("cannot subscribe to %s", trove_cfg_broker_sub (cfg));
    while (sub && !s_interrupted && !(state.count && state.seen >= state.count))
        trove_awardsub_poll (sub, 200);
    trove_awardsub_destroy (&sub);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  status

static const char *s_status_help =
    "usage: trovectl status [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Ask the broker, every ingestor and every scorer for its status (500 ms\n"
    "timeout, one retry) and print a table: role, name, shard, endpoint, up or\n"
    "down, pid, last award sequence and events stored (scorers), lag, uptime,\n"
    "the age of its last heartbeat seen through the broker (\"-\": none within\n"
    "1.1 s, e.g. the broker is down; up/down comes from asking each process\n"
    "directly), and the last error if there was one. LAG is, for a scorer, the accepted\n"
    "events its ledger tables do not hold yet (queries wait for them); for an\n"
    "ingestor, the events it has not answered yet.\n"
    "--json: one object per process per line (lag is \"inflight\").\n"
    "Exit 1 if any process is down.\n";

trovectl_proc_t *
trovectl_procs (const trove_cfg_t *cfg, size_t *count_p)
{
    size_t count = 1 + trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg);
    trovectl_proc_t *procs = calloc (count, sizeof *procs);
    if (!procs)
        return NULL;
    size_t n = 0;
    procs [n++] = (trovectl_proc_t){"broker", "broker", -1, trove_cfg_broker_control (cfg), NULL, 0};
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++)
        procs [n++] = (trovectl_proc_t){
            "ingestor", trove_cfg_ingestor_name (cfg, i), -1, trove_cfg_ingestor_endpoint (cfg, i), NULL, 0};
    for (size_t i = 0; i < trove_cfg_shards (cfg); i++)
        procs [n++] = (trovectl_proc_t){
            "scorer", trove_cfg_shard_name (cfg, i), (int) i, trove_cfg_shard_query (cfg, i), NULL, 0};
    *count_p = count;
    return procs;
}

void
trovectl_procs_free (trovectl_proc_t **procs_p, size_t count)
{
    trovectl_proc_t *procs = *procs_p;
    if (procs) {
        for (size_t i = 0; i < count; i++)
            trove_client_reply_free (&procs [i].reply);
        free (procs);
        *procs_p = NULL;
    }
}

int
trovectl_probe (const trove_cfg_t *cfg, trovectl_proc_t *procs, size_t count, int timeout_ms, int retries)
{
    const char **endpoints = calloc (count ? count : 1, sizeof *endpoints);
    Trove__QueryReply **replies = calloc (count ? count : 1, sizeof *replies);
    int rc = -1;
    if (!endpoints || !replies)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        endpoints [i] = procs [i].endpoint;
        trove_client_reply_free (&procs [i].reply);
    }
    Trove__Query query = TROVE__QUERY__INIT;
    query.kind = "status";
    rc = trove_client_call_all (endpoints, count, &query, timeout_ms, retries,
                                trove_cfg_limits (cfg)->max_frame, replies);
    for (size_t i = 0; i < count; i++)
        procs [i].reply = replies [i];
fail:
    free (endpoints);
    free (replies);
    return rc;
}

static void
s_format_uptime (int64_t ms, char *buf, size_t size)
{
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf (buf, size, "%llds", (long long) s);
    else if (s < 3600)
        snprintf (buf, size, "%lldm%02llds", (long long) (s / 60), (long long) (s % 60));
    else if (s < 86400)
        snprintf (buf, size, "%lldh%02lldm", (long long) (s / 3600), (long long) (s % 3600 / 60));
    else
        snprintf (buf, size, "%lldd%02lldh", (long long) (s / 86400), (long long) (s % 86400 / 3600));
}

//  Record the heartbeats that arrive before `until` (monotonic us), stopping
//  early once every process has been heard.
static void
s_collect_heartbeats (const trove_cfg_t *cfg, zsock_t *sub, trovectl_proc_t *procs, size_t count,
                      int64_t until)
{
    size_t heard = 0;
    while (heard < count && !s_interrupted) {
        int64_t left = (until - trove_mono_us ()) / 1000;
        if (left <= 0)
            break;
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long) left) <= 0)
            continue;
        zframe_t *frame = zframe_recv (sub);
        if (!frame)
            continue;
        const char *reason;
        Trove__Msg *msg = trove_msg_decode (zframe_data (frame), zframe_size (frame),
                                            trove_cfg_limits (cfg)->max_frame + 65536, &reason);
        zframe_destroy (&frame);
        if (msg && msg->body_case == TROVE__MSG__BODY_HEARTBEAT) {
            const Trove__Heartbeat *hb = msg->heartbeat;
            for (size_t i = 0; i < count; i++)
                if (strcmp (procs [i].role, hb->role) == 0 && strcmp (procs [i].name, hb->name) == 0) {
                    if (!procs [i].heartbeat_ms)
                        heard++;
                    procs [i].heartbeat_ms = hb->sent_ms;
                }
        }
        trove_msg_free (&msg);
    }
}

static int
s_cmd_status (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir config json", &opts))
        return 1;
    if (opts.help) {
        fputs (s_status_help, stdout);
        return 0;
    }
    if (opts.nargs)
        return trovectl_fail ("status: unexpected argument '%s'", opts.args [0]);
    trove_cfg_t *cfg = trovectl_load_cfg (&opts);
    if (!cfg)
        return 1;
    int rc = 1;
    size_t count = 0;
    trovectl_proc_t *procs = trovectl_procs (cfg, &count);
    //  Heartbeats travel through the broker: subscribe first, probe each
    //  process directly meanwhile, then listen until a heartbeat period passed.
    int64_t listen_until = trove_mono_us () + 1100 * 1000;
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (sub) {
        zsock_set_maxmsgsize (sub, (int) trove_cfg_limits (cfg)->max_frame + 65536);
        zsock_set_subscribe (sub, "");
        if (trove_curve_connect (sub, trove_cfg_broker_sub (cfg), false))
            zsock_destroy (&sub);
    }
    if (!procs || trovectl_probe (cfg, procs, count, 500, 1) < 0) {
        trovectl_fail (procs ? "interrupted" : "out of memory");
        zsock_destroy (&sub);
        goto fail;
    }
    if (sub)
        s_collect_heartbeats (cfg, sub, procs, count, listen_until);
    zsock_destroy (&sub);
    size_t down = 0;
    if (!opts.json)
        printf ("%-8s %-8s %-5s %-24s %-4s %-8s %-10s %-10s %-8s %-9s %s\n", "ROLE", "NAME", "SHARD",
                "ENDPOINT", "UP", "PID", "LAST_ASEQ", "EVENTS", "LAG", "HEARTBEAT", "UPTIME");
    int64_t now = trove_now_ms ();
    for (size_t i = 0; i < count; i++) {
        trovectl_proc_t *proc = &procs [i];
        const Trove__StatusInfo *info = proc->reply ? proc->reply->status : NULL;
        bool up = proc->reply && !(proc->reply->error && *proc->reply->error);
        if (!up)
            down++;
        uint64_t last_aseq = 0;
        if (proc->reply)
            last_aseq = proc->reply->last_aseq;
        if (info && info->last_aseq > last_aseq)
            last_aseq = info->last_aseq;
        int64_t uptime = info && info->started_ms ? now - info->started_ms : -1;
        if (opts.json) {
            json_t *obj = json_pack ("{s:s,s:s,s:o,s:s,s:b}", "role", proc->role, "name", proc->name, "shard",
                                     proc->shard >= 0 ? json_integer (proc->shard) : json_null (), "endpoint",
                                     proc->endpoint, "up", up);
            if (proc->reply && proc->reply->error && *proc->reply->error)
                json_object_set_new (obj, "error", json_string (proc->reply->error));
            if (info) {
                json_object_set_new (obj, "pid", json_integer (info->pid));
                json_object_set_new (obj, "uptime_s", json_integer (uptime >= 0 ? uptime / 1000 : 0));
                json_object_set_new (obj, "version", s_str (info->version));
                json_object_set_new (obj, "host", s_str (info->host));
                json_object_set_new (obj, "inflight", json_integer ((json_int_t) info->inflight));
                if (info->last_error && *info->last_error)
                    json_object_set_new (obj, "last_error", json_string (info->last_error));
            }
            if (proc->shard >= 0 && up) {
                json_object_set_new (obj, "last_aseq", json_integer ((json_int_t) last_aseq));
                json_object_set_new (obj, "events", json_integer (info ? (json_int_t) info->events : 0));
            }
            json_object_set_new (obj, "heartbeat_age_s",
                                 proc->heartbeat_ms ? json_real ((now - proc->heartbeat_ms) / 1000.0)
                                                    : json_null ());
            s_print_json (obj);
        }
        else {
            char shard [16] = "-", pid [24] = "-", aseq [24] = "-", events [24] = "-", upt [32] = "-";
            char lag [24] = "-";
            if (proc->shard >= 0)
                snprintf (shard, sizeof shard, "%d", proc->shard);
            if (info) {
                snprintf (pid, sizeof pid, "%lld", (long long) info->pid);
                if (strcmp (proc->role, "broker"))
                    snprintf (lag, sizeof lag, "%llu", (unsigned long long) info->inflight);
                if (uptime >= 0)
                    s_format_uptime (uptime, upt, sizeof upt);
            }
            if (proc->shard >= 0 && up) {
                snprintf (aseq, sizeof aseq, "%llu", (unsigned long long) last_aseq);
                snprintf (events, sizeof events, "%llu", info ? (unsigned long long) info->events : 0ULL);
            }
            char hb [24] = "-";
            if (proc->heartbeat_ms)
                snprintf (hb, sizeof hb, "%.1fs ago", (now - proc->heartbeat_ms) / 1000.0);
            printf ("%-8s %-8s %-5s %-24s %-4s %-8s %-10s %-10s %-8s %-9s %s%s%s\n", proc->role, proc->name,
                    shard, proc->endpoint, up ? "up" : "down", pid, aseq, events, lag, hb, upt,
                    info && info->last_error && *info->last_error ? "  last error: " : "",
                    info && info->last_error ? info->last_error : "");
        }
    }
    if (down) {
        trovectl_fail ("%zu of %zu processes down", down, count);
        goto fail;
    }
    rc = 0;
fail:
    trovectl_procs_free (&procs, count);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------

static const char *s_usage =
    "usage: trovectl COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  send [FILE|-]        submit NDJSON events, wait for every answer\n"
    "  balance USER...      coin balance of users\n"
    "  coins USER           a user's coins, newest first\n"
    "  coin ID              one coin and its earning events\n"
    "  tail                 follow the award stream\n"
    "  status               status of every process of the cluster\n"
    "  top                  live rates and latencies from every /metrics\n"
    "  up                   run a local cluster (writes DIR/trove.cfg)\n"
    "  down                 stop the cluster started by `up`\n"
    "  reconcile            re-derive the ledger from the event log and repair it\n"
    "  board HUNT           leaderboard: top N, around a user (--user), boards (--list)\n"
    "  progress USER        progress on every rule (clues found, streak days, cap left)\n"
    "  exclude|include USER take a user off every leaderboard, or put back\n"
    "  rules check|apply|preview FILE\n"
    "                       validate a hunt file, apply it to every scorer\n"
    "                       without a restart, or preview its effect\n"
    "  curve new|show PATH  make a CURVE certificate, print its public key\n"
    "\n"
    "Common options:\n"
    "  --dir DIR      cluster directory, config DIR/trove.cfg\n"
    "                 (default: $TROVE_DIR, else ./trove-data)\n"
    "  --config FILE  cluster config file (instead of --dir)\n"
    "  --json         machine-readable output\n"
    "  --help         help of a command: trovectl COMMAND --help\n"
    "\n"
    "A failed command prints one line on stderr and exits non-zero.\n";

typedef struct {
    const char *name;
    int (*run) (int argc, char **argv);
} s_command_t;

static const s_command_t s_commands [] = {
    {"send", s_cmd_send},
    {"balance", s_cmd_balance},
    {"coins", s_cmd_coins},
    {"coin", s_cmd_coin},
    {"tail", s_cmd_tail},
    {"status", s_cmd_status},
    {"up", trovectl_up},
    {"down", trovectl_down},
    {"top", trovectl_top},
    {"rules", trovectl_rules},
    {"reconcile", trovectl_reconcile},
    {"board", trovectl_board},
    {"progress", trovectl_progress},
    {"exclude", trovectl_exclude},
    {"include", trovectl_exclude},
    {"curve", trovectl_curve},
};

//  True when option text takes the next argument as its value.
static bool
s_takes_value (const char *text)
{
    if (strncmp (text, "--", 2) || strchr (text, '='))
        return false;
    for (const struct option *o = s_options; o->name; o++)
        if (strcmp (text + 2, o->name) == 0)
            return o->has_arg == required_argument;
    return false;
}

int
main (int argc, char **argv)
{
    //  czmq must not install its own SIGINT/SIGTERM handlers: we have ours.
    zsys_handler_set (NULL);
    signal (SIGPIPE, SIG_IGN);
    //  The command is the first word that is neither an option nor its value.
    int at = 1;
    while (at < argc && argv [at][0] == '-' && argv [at][1]) {
        if (strcmp (argv [at], "--help") == 0 || strcmp (argv [at], "-h") == 0) {
            fputs (s_usage, stdout);
            return 0;
        }
        at += s_takes_value (argv [at]) ? 2 : 1;
    }
    if (at >= argc) {
        fputs (s_usage, stdout);
        return 1;
    }
    if (strcmp (argv [at], "help") == 0) {
        fputs (s_usage, stdout);
        return 0;
    }
    const s_command_t *command = NULL;
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands [0]; i++)
        if (strcmp (argv [at], s_commands [i].name) == 0)
            command = &s_commands [i];
    if (!command)
        return trovectl_fail ("unknown command '%s' (see trovectl --help)", argv [at]);
    //  argv for the command: its name first, then every other argument.
    char **args = calloc ((size_t) argc + 1, sizeof *args);
    if (!args)
        return trovectl_fail ("out of memory");
    int n = 0;
    args [n++] = argv [at];
    for (int i = 1; i < argc; i++)
        if (i != at)
            args [n++] = argv [i];
    int rc = command->run (n, args);
    free (args);
    fflush (stdout);
    return rc;
}
