/*  trovectl send - submit NDJSON events to the ingestors and wait until
    every one has a final answer (trove_submitter: pipelined, retried with
    the same request id). */
#include "trovectl.h"
#include "trove_curve.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const trovectl_send_help =
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
    trove_submitter_t *submitter;  //  to the ingestors
    int64_t deadline;              //  --timeout as monotonic time, INT64_MAX: none
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
        trovectl_print_json (obj);
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

//  Hand the event of one input line (len bytes, line ends removed) to the
//  submitter, or report it rejected when it does not parse. Returns 0, 1
//  when interrupted or timed out before the submitter took it, -1 after
//  printing an error.
static int
s_send_line (s_send_t *self, const char *text, size_t len, long lineno)
{
    const char *reason = NULL;
    char *err = NULL;
    Trove__Event *event = trove_event_from_json (text, len, &reason, &err);
    if (!event) {
        char *source, *id;
        s_guess_ids (text, len, &source, &id);
        s_send_report (self, lineno, source, id, TROVE__STATUS__REJECTED,
                       reason ? reason : trove_strerror (TROVE_E_BAD_JSON), err);
        free (source);
        free (id);
        free (err);
        return 0;
    }
    if (self->nlines == self->maxlines) {
        size_t max = self->maxlines ? self->maxlines * 2 : 1024;
        s_line_t *lines = realloc (self->lines, max * sizeof *lines);
        if (!lines) {
            trove_event_destroy (&event);
            trovectl_fail ("out of memory");
            return -1;
        }
        self->lines = lines;
        self->maxlines = max;
    }
    s_line_t *line = &self->lines [self->nlines];
    line->line = lineno;
    line->source = strdup (event->source);
    line->id = strdup (event->id);
    int rc = 0;
    while (rc == 0 && trove_submitter_add (self->submitter, event, self->nlines) == -1) {
        trove_submitter_poll (self->submitter, 100);
        if (trovectl_interrupted () || trove_mono_us () >= self->deadline)
            rc = 1;
    }
    trove_event_destroy (&event);
    if (rc) {
        free (line->source);
        free (line->id);
    }
    else
        self->nlines++;
    return rc;
}

//  The summary on stderr: a sentence, or one JSON line.
static void
s_send_summary (const s_send_t *self, bool json)
{
    size_t unanswered = trove_submitter_pending (self->submitter);
    //  events never handed to the submitter (stopped while reading)
    size_t events = self->accepted + self->duplicate + self->rejected + unanswered;
    if (json)
        fprintf (stderr,
                 "{\"summary\":{\"events\":%zu,\"accepted\":%zu,\"duplicate\":%zu,"
                 "\"rejected\":%zu,\"unanswered\":%zu}}\n",
                 events, self->accepted, self->duplicate, self->rejected, unanswered);
    else
        fprintf (stderr, "%zu events: %zu accepted, %zu duplicate, %zu rejected%s", events, self->accepted,
                 self->duplicate, self->rejected, unanswered ? "" : "\n");
    if (unanswered && !json)
        fprintf (stderr, ", %zu unanswered\n", unanswered);
}

int
trovectl_send (const trovectl_opts_t *opts)
{
    if (opts->nargs > 1)
        return trovectl_fail ("send: one input file at most (see trovectl send --help)");
    int rc = 1;
    trove_cfg_t *cfg = NULL;
    FILE *input = NULL;
    char *text = NULL;
    s_send_t state = {.json = opts->json, .quiet = opts->quiet};
    const char *path = opts->nargs ? opts->args [0] : "-";
    cfg = trovectl_load_cfg (opts);
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
    state.submitter = trove_submitter_new (cfg, 0, 20000, s_on_result, &state);
    if (!state.submitter) {
        trovectl_fail ("cannot create a submitter for the ingestors");
        goto fail;
    }
    trovectl_catch_signals ();
    state.deadline = opts->timeout > 0 ? trove_mono_us () + opts->timeout * 1000000LL : INT64_MAX;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    bool stopped = false;  //  interrupted or timed out
    while (!stopped && (len = getline (&text, &cap, input)) != -1) {
        lineno++;
        while (len > 0 && (text [len - 1] == '\n' || text [len - 1] == '\r'))
            text [--len] = 0;
        if ((size_t) len == strspn (text, " \t"))
            continue;
        int sent = s_send_line (&state, text, (size_t) len, lineno);
        if (sent < 0)
            goto fail;
        stopped = sent == 1;
    }
    if (!stopped && ferror (input)) {
        trovectl_fail ("reading %s: %s", path, strerror (errno));
        goto fail;
    }
    trove_submitter_flush (state.submitter);
    while (!stopped && trove_submitter_pending (state.submitter) > 0) {
        trove_submitter_poll (state.submitter, 200);
        if (trovectl_interrupted () || trove_mono_us () >= state.deadline)
            stopped = true;
    }
    fflush (stdout);
    s_send_summary (&state, opts->json);
    if (stopped) {
        size_t unanswered = trove_submitter_pending (state.submitter);
        const char *why = trove_submitter_last_retry (state.submitter);
        trovectl_fail ("%s with %zu event%s unanswered%s%s%s%s",
                       trovectl_interrupted () ? "interrupted" : "timed out", unanswered,
                       unanswered == 1 ? "" : "s", !feof (input) ? " (input not read to the end)" : "",
                       *why ? "; last answer: retry " : "", why,
                       *why || trovectl_interrupted () ? "" : trove_curve_hint ());
        goto fail;
    }
    rc = opts->strict && state.rejected ? 2 : 0;
fail:
    trove_submitter_destroy (&state.submitter);
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
