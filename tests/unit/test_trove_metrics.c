/*  Tests for trove_metrics: exact exposition text, escaping, refused names
    and registrations, the child bound, concurrent updates, the HTTP
    endpoint, and every rendered line checked by a strict parser of the text
    format 0.0.4 written here (independently of the module). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_http.h"
#include "trove_metrics.h"
#include "trove_util.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const s_no_labels [] = {NULL};


//  --------------------------------------------------------------------------
//  A strict line parser for the text exposition format 0.0.4, as Trove emits
//  it: every family opens with # HELP then # TYPE (once per name), samples
//  have no timestamp, histograms give for each label set their buckets with
//  increasing le ending at +Inf, then _sum, then _count equal to +Inf.

typedef struct {
    char name [128];       //  current family
    char type [16];        //  its type
    char seen [256][128];  //  families seen so far
    size_t nseen;
    bool group;               //  histogram: inside a label set's lines
    char group_labels [512];  //  its labels, le excluded
    double last_le;
    double last_bucket;
    bool inf_seen, sum_seen;
    double inf_count;
    char *why;  //  reason of the failure
    size_t why_size;
} s_parser_t;

static int
s_fail (s_parser_t *parser, int line, const char *reason)
{
    snprintf (parser->why, parser->why_size, "line %d: %s", line, reason);
    return -1;
}

//  Reads [first][rest]* into out; returns the characters read (0: none).
static size_t
s_scan_name (const char *p, bool colon, char *out, size_t size)
{
    size_t len = 0;
    while (p [len]) {
        char c = p [len];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':')
               || (len > 0 && c >= '0' && c <= '9');
        if (!ok)
            break;
        len++;
    }
    if (len == 0 || len >= size)
        return 0;
    memcpy (out, p, len);
    out [len] = 0;
    return len;
}

//  A float as the format allows: digits, '.', exponent, sign; or +Inf, -Inf, NaN.
static bool
s_parse_value (const char *text, double *value)
{
    if (strcmp (text, "+Inf") == 0 || strcmp (text, "-Inf") == 0 || strcmp (text, "NaN") == 0) {
        *value = strcmp (text, "NaN") == 0 ? NAN : text [0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    if (!*text || strspn (text, "0123456789.eE+-") != strlen (text))
        return false;
    char *end;
    *value = strtod (text, &end);
    return *end == 0;
}

static int
s_parse_comment (s_parser_t *p, int n, const char *line)
{
    char name [128];
    bool help = strncmp (line, "# HELP ", 7) == 0;
    if (!help && strncmp (line, "# TYPE ", 7) != 0)
        return s_fail (p, n, "comment neither HELP nor TYPE");
    size_t len = s_scan_name (line + 7, true, name, sizeof name);
    if (!len)
        return s_fail (p, n, "bad metric name in comment");
    const char *rest = line + 7 + len;
    if (help) {
        if (p->group)
            return s_fail (p, n, "histogram label set not finished");
        for (size_t i = 0; i < p->nseen; i++)
            if (strcmp (p->seen [i], name) == 0)
                return s_fail (p, n, "second HELP for a family");
        if (*rest && *rest != ' ')
            return s_fail (p, n, "no space after HELP name");
        for (const char *c = rest; *c; c++)
            if (*c == '\\' && (c [1] != '\\' && c [1] != 'n'))
                return s_fail (p, n, "bad escape in HELP");
            else if (*c == '\\')
                c++;
        snprintf (p->name, sizeof p->name, "%s", name);
        snprintf (p->seen [p->nseen++], sizeof p->seen [0], "%s", name);
        p->type [0] = 0;
        return 0;
    }
    if (strcmp (name, p->name) != 0 || p->type [0])
        return s_fail (p, n, "TYPE not right after its HELP");
    if (strcmp (rest, " counter") && strcmp (rest, " gauge") && strcmp (rest, " histogram")
        && strcmp (rest, " summary") && strcmp (rest, " untyped"))
        return s_fail (p, n, "unknown TYPE");
    snprintf (p->type, sizeof p->type, "%s", rest + 1);
    return 0;
}

//  Parses {a="x",b="y"} at *pp; puts the labels except le into out and le's
//  value into le (empty when absent).
static int
s_parse_labels (s_parser_t *p, int n, const char **pp, char *out, size_t size, char *le, size_t le_size)
{
    const char *c = *pp;
    char names [8][128];
    size_t nnames = 0;
    out [0] = le [0] = 0;
    if (*c != '{')
        return 0;
    c++;
    while (*c != '}') {
        char name [128], value [512];
        size_t len = s_scan_name (c, false, name, sizeof name);
        if (!len)
            return s_fail (p, n, "bad label name");
        c += len;
        if (c [0] != '=' || c [1] != '"')
            return s_fail (p, n, "label name not followed by =\"");
        c += 2;
        const char *start = c;
        while (*c != '"') {
            if (!*c)
                return s_fail (p, n, "unterminated label value");
            if (*c == '\\') {
                if (c [1] != '\\' && c [1] != '"' && c [1] != 'n')
                    return s_fail (p, n, "bad escape in label value");
                c++;
            }
            c++;
        }
        if ((size_t) (c - start) >= sizeof value)
            return s_fail (p, n, "label value too long for the test");
        memcpy (value, start, (size_t) (c - start));
        value [c - start] = 0;
        c++;
        for (size_t i = 0; i < nnames; i++)
            if (strcmp (names [i], name) == 0)
                return s_fail (p, n, "duplicate label name");
        if (nnames == 8)
            return s_fail (p, n, "too many labels for the test");
        snprintf (names [nnames++], sizeof names [0], "%s", name);
        int written;
        if (strcmp (name, "le") == 0)
            written = snprintf (le, le_size, "%s", value);
        else {
            size_t used = strlen (out);
            written =
                snprintf (out + used, size - used, "%s%s=\"%s\"", used ? "," : "", name, value) + (int) used;
        }
        if (written < 0 || (size_t) written >= (strcmp (name, "le") == 0 ? le_size : size))
            return s_fail (p, n, "labels too long for the test");
        if (*c == ',' && c [1] != '}')
            c++;
        else if (*c != '}')
            return s_fail (p, n, "labels not separated by ','");
    }
    *pp = c + 1;
    return 0;
}

static int
s_parse_sample (s_parser_t *p, int n, const char *line)
{
    char name [160], labels [512], le [64];
    size_t len = s_scan_name (line, true, name, sizeof name);
    if (!len)
        return s_fail (p, n, "bad metric name");
    if (!p->type [0])
        return s_fail (p, n, "sample before HELP and TYPE");
    const char *c = line + len;
    if (s_parse_labels (p, n, &c, labels, sizeof labels, le, sizeof le))
        return -1;
    double value;
    if (*c != ' ' || !s_parse_value (c + 1, &value))
        return s_fail (p, n, "value missing or not a float (or a timestamp follows)");

    if (strcmp (p->type, "histogram") != 0) {
        if (strcmp (name, p->name) != 0)
            return s_fail (p, n, "sample name is not its family's");
        if (le [0])
            return s_fail (p, n, "le label outside a histogram");
        if (strcmp (p->type, "counter") == 0 && !(value >= 0))
            return s_fail (p, n, "counter negative or NaN");
        return 0;
    }
    size_t base = strlen (p->name);
    if (strncmp (name, p->name, base) != 0)
        return s_fail (p, n, "sample name is not its family's");
    const char *suffix = name + base;
    if (strcmp (suffix, "_bucket") == 0) {
        double bound;
        if (!le [0] || !s_parse_value (le, &bound) || isnan (bound))
            return s_fail (p, n, "bucket without a numeric le");
        if (!p->group) {
            p->group = true;
            snprintf (p->group_labels, sizeof p->group_labels, "%s", labels);
            p->last_le = -INFINITY;
            p->last_bucket = 0;
            p->inf_seen = p->sum_seen = false;
        }
        else if (strcmp (labels, p->group_labels) != 0)
            return s_fail (p, n, "new label set before the last one's _count");
        if (p->inf_seen || p->sum_seen)
            return s_fail (p, n, "bucket after +Inf or _sum");
        if (!(bound > p->last_le))
            return s_fail (p, n, "le not increasing");
        if (!(value >= p->last_bucket) || value != floor (value))
            return s_fail (p, n, "bucket counts not cumulative integers");
        p->last_le = bound;
        p->last_bucket = value;
        if (isinf (bound)) {
            p->inf_seen = true;
            p->inf_count = value;
        }
        return 0;
    }
    if (le [0])
        return s_fail (p, n, "le label on _sum or _count");
    if (!p->group || strcmp (labels, p->group_labels) != 0 || !p->inf_seen)
        return s_fail (p, n, "_sum or _count without buckets ending at +Inf");
    if (strcmp (suffix, "_sum") == 0) {
        if (p->sum_seen)
            return s_fail (p, n, "second _sum");
        p->sum_seen = true;
        return 0;
    }
    if (strcmp (suffix, "_count") == 0) {
        if (!p->sum_seen)
            return s_fail (p, n, "_count before _sum");
        if (value != p->inf_count)
            return s_fail (p, n, "_count differs from the +Inf bucket");
        p->group = false;
        return 0;
    }
    return s_fail (p, n, "histogram sample neither _bucket, _sum nor _count");
}

//  0 when every line of text is valid, else -1 with the reason in why.
static int
s_check_exposition (const char *text, char *why, size_t why_size)
{
    s_parser_t *p = calloc (1, sizeof *p);
    assert_non_null (p);
    p->why = why;
    p->why_size = why_size;
    int rc = 0, n = 0;
    if (*text && text [strlen (text) - 1] != '\n')
        rc = s_fail (p, 0, "text does not end with a newline");
    for (const char *line = text; rc == 0 && *line;) {
        const char *eol = strchr (line, '\n');
        char buf [2048];
        size_t len = (size_t) (eol - line);
        n++;
        if (len >= sizeof buf) {
            rc = s_fail (p, n, "line too long for the test");
            break;
        }
        memcpy (buf, line, len);
        buf [len] = 0;
        if (len == 0 || strchr (buf, '\r'))
            rc = s_fail (p, n, "empty line or carriage return");
        else if (buf [0] == '#')
            rc = s_parse_comment (p, n, buf);
        else
            rc = s_parse_sample (p, n, buf);
        line = eol + 1;
    }
    if (rc == 0 && p->group)
        rc = s_fail (p, n, "text ends inside a histogram label set");
    free (p);
    return rc;
}

static void
s_assert_valid (const char *text)
{
    char why [256] = "";
    if (s_check_exposition (text, why, sizeof why))
        fail_msg ("invalid exposition (%s):\n%s", why, text);
}


//  --------------------------------------------------------------------------
//  Rendering

static void
test_render_exact (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    assert_non_null (m);

    trove_counter_t *events = trove_metrics_counter (m, "trove_events_total", "Events received.", NULL, NULL);
    assert_non_null (events);
    trove_counter_add (events, 2);
    trove_counter_inc (events);

    const char *const result_names [] = {"shard", "result", NULL};
    const char *const ok [] = {"0", "ok", NULL};
    const char *const rejected [] = {"1", "rejected", NULL};
    trove_counter_t *r_ok = trove_metrics_counter (m, "trove_results_total",
                                                   "Events scored, by shard and result.", result_names, ok);
    trove_counter_t *r_rej = trove_metrics_counter (
        m, "trove_results_total", "Events scored, by shard and result.", result_names, rejected);
    assert_non_null (r_ok);
    assert_non_null (r_rej);
    assert_ptr_not_equal (r_ok, r_rej);
    trove_counter_add (r_ok, 5);
    trove_counter_inc (r_rej);

    trove_gauge_t *depth = trove_metrics_gauge (m, "trove_queue_depth", "Events waiting.", NULL, s_no_labels);
    trove_gauge_set (depth, 2.5);

    const char *const peer [] = {"peer", NULL};
    const char *const scorer [] = {"scorer", NULL};
    trove_gauge_t *conns = trove_metrics_gauge (m, "trove_connections", "Open connections.", peer, scorer);
    trove_gauge_set_int (conns, 3);
    trove_gauge_add_int (conns, -1);
    assert_true (trove_gauge_value (conns) == 2);

    const char *const stage [] = {"stage", NULL};
    const char *const score [] = {"score", NULL};
    const double bounds [] = {0.25, 0.5, 1};
    trove_histogram_t *lat = trove_metrics_histogram (
        m, "trove_latency_seconds", "Time from receipt to answer.", stage, score, bounds, 3);
    assert_non_null (lat);
    //  0.25 sits in the 0.25 bucket: bounds are inclusive
    const double seen [] = {0.125, 0.25, 0.375, 0.75, 2};
    for (size_t i = 0; i < 5; i++)
        trove_histogram_observe (lat, seen [i]);
    trove_histogram_observe (lat, NAN);  //  dropped
    assert_int_equal (trove_histogram_count (lat), 5);
    assert_true (trove_histogram_sum (lat) == 3.5);

    const double sizes [] = {10, 100, INFINITY};  //  a trailing +Inf is the implicit one
    trove_histogram_t *batch =
        trove_metrics_histogram (m, "trove_batch_events", "Events per batch.", NULL, NULL, sizes, 3);
    trove_histogram_observe (batch, 100);

    const char *expected = "# HELP trove_events_total Events received.\n"
                           "# TYPE trove_events_total counter\n"
                           "trove_events_total 3\n"
                           "# HELP trove_results_total Events scored, by shard and result.\n"
                           "# TYPE trove_results_total counter\n"
                           "trove_results_total{shard=\"0\",result=\"ok\"} 5\n"
                           "trove_results_total{shard=\"1\",result=\"rejected\"} 1\n"
                           "# HELP trove_queue_depth Events waiting.\n"
                           "# TYPE trove_queue_depth gauge\n"
                           "trove_queue_depth 2.5\n"
                           "# HELP trove_connections Open connections.\n"
                           "# TYPE trove_connections gauge\n"
                           "trove_connections{peer=\"scorer\"} 2\n"
                           "# HELP trove_latency_seconds Time from receipt to answer.\n"
                           "# TYPE trove_latency_seconds histogram\n"
                           "trove_latency_seconds_bucket{stage=\"score\",le=\"0.25\"} 2\n"
                           "trove_latency_seconds_bucket{stage=\"score\",le=\"0.5\"} 3\n"
                           "trove_latency_seconds_bucket{stage=\"score\",le=\"1\"} 4\n"
                           "trove_latency_seconds_bucket{stage=\"score\",le=\"+Inf\"} 5\n"
                           "trove_latency_seconds_sum{stage=\"score\"} 3.5\n"
                           "trove_latency_seconds_count{stage=\"score\"} 5\n"
                           "# HELP trove_batch_events Events per batch.\n"
                           "# TYPE trove_batch_events histogram\n"
                           "trove_batch_events_bucket{le=\"10\"} 0\n"
                           "trove_batch_events_bucket{le=\"100\"} 1\n"
                           "trove_batch_events_bucket{le=\"+Inf\"} 1\n"
                           "trove_batch_events_sum 100\n"
                           "trove_batch_events_count 1\n";
    char *text = trove_metrics_render (m);
    assert_non_null (text);
    assert_string_equal (text, expected);
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
    assert_null (m);
    trove_metrics_destroy (&m);
}

static void
test_empty_render_is_empty (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    char *text = trove_metrics_render (m);
    assert_string_equal (text, "");
    free (text);
    trove_metrics_destroy (&m);
}

static void
test_float_values (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *const k [] = {"k", NULL};
    struct {
        const char *label;
        double value;
        const char *text;
    } cases [] = {
        {"tenth", 0.1, "0.1"},           {"third", 1.0 / 3, "0.3333333333333333"},
        {"small", -0.001, "-0.001"},     {"big", 1e21, "1e+21"},
        {"int", 123456789, "123456789"}, {"inf", INFINITY, "+Inf"},
        {"ninf", -INFINITY, "-Inf"},     {"nan", NAN, "NaN"},
    };
    size_t ncases = sizeof cases / sizeof cases [0];
    for (size_t i = 0; i < ncases; i++) {
        const char *const v [] = {cases [i].label, NULL};
        trove_gauge_set (trove_metrics_gauge (m, "g", "Values.", k, v), cases [i].value);
    }
    char *text = trove_metrics_render (m);
    for (size_t i = 0; i < ncases; i++) {
        char line [128];
        snprintf (line, sizeof line, "\ng{k=\"%s\"} %s\n", cases [i].label, cases [i].text);
        if (!strstr (text, line))
            fail_msg ("missing%s in:\n%s", line, text);
    }
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
}

static void
test_escaping (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *const names [] = {"path", NULL};
    const char *const tricky [] = {"C:\\dir \"quoted\"\nnext caf\xc3\xa9", NULL};
    trove_counter_t *c = trove_metrics_counter (m, "trove_odd_total",
                                                "Back\\slash, \"quotes\" and\na newline.", names, tricky);
    assert_non_null (c);
    trove_counter_inc (c);
    char *text = trove_metrics_render (m);
    assert_string_equal (text, "# HELP trove_odd_total Back\\\\slash, \"quotes\" and\\na newline.\n"
                               "# TYPE trove_odd_total counter\n"
                               "trove_odd_total{path=\"C:\\\\dir \\\"quoted\\\"\\nnext caf\xc3\xa9\"} 1\n");
    s_assert_valid (text);
    free (text);
    //  the lookup is by the raw value, not the escaped one
    assert_ptr_equal (trove_metrics_counter (m, "trove_odd_total", "x", names, tricky), c);
    //  label values must be UTF-8
    const char *const bad [][2] = {
        {"\xff", NULL}, {"\xc0\xaf", NULL}, {"\xed\xa0\x80", NULL}, {"ab\xe2\x82", NULL}};
    for (size_t i = 0; i < 4; i++)
        assert_null (trove_metrics_counter (m, "trove_odd_total", "x", names, bad [i]));
    trove_metrics_destroy (&m);
}


//  --------------------------------------------------------------------------
//  Refusals

static void
test_invalid_names_refused (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *bad_names [] = {"", "1abc", "a-b", "a b", "__reserved", "caf\xc3\xa9", "a.b", "a{b}"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names [0]; i++) {
        assert_null (trove_metrics_gauge (m, bad_names [i], "h", NULL, NULL));
        assert_null (trove_metrics_histogram (m, bad_names [i], "h", NULL, NULL, NULL, 0));
    }
    assert_null (trove_metrics_gauge (m, NULL, "h", NULL, NULL));
    //  colons are fine in metric names, not in label names
    assert_non_null (trove_metrics_gauge (m, "trove:ratio_5m", "h", NULL, NULL));
    assert_non_null (trove_metrics_gauge (m, "_x9", "h", NULL, NULL));
    //  counters must say so
    assert_null (trove_metrics_counter (m, "trove_events", "h", NULL, NULL));
    assert_non_null (trove_metrics_counter (m, "trove_events_total", "h", NULL, NULL));

    const char *const v1 [] = {"v", NULL};
    const char *const v2 [] = {"v", "w", NULL};
    const char *const v4 [] = {"v", "w", "x", "y", NULL};
    const char *const colon [] = {"a:b", NULL};
    const char *const reserved [] = {"__name__", NULL};
    const char *const digit [] = {"9a", NULL};
    const char *const empty [] = {"", NULL};
    const char *const dup [] = {"a", "a", NULL};
    const char *const four [] = {"a", "b", "c", "d", NULL};
    const char *const le [] = {"le", NULL};
    const char *const ab [] = {"a", "b", NULL};
    assert_null (trove_metrics_gauge (m, "l1", "h", colon, v1));
    assert_null (trove_metrics_gauge (m, "l2", "h", reserved, v1));
    assert_null (trove_metrics_gauge (m, "l3", "h", digit, v1));
    assert_null (trove_metrics_gauge (m, "l4", "h", empty, v1));
    assert_null (trove_metrics_gauge (m, "l5", "h", dup, v2));
    assert_null (trove_metrics_gauge (m, "l6", "h", four, v4));
    //  values must match the names one for one
    assert_null (trove_metrics_gauge (m, "l7", "h", ab, v1));
    assert_null (trove_metrics_gauge (m, "l8", "h", ab, v4));
    assert_null (trove_metrics_gauge (m, "l9", "h", ab, NULL));
    assert_null (trove_metrics_gauge (m, "l10", "h", NULL, v1));
    //  "le" and "quantile" mean something to Prometheus: refused everywhere
    const char *const quantile [] = {"quantile", NULL};
    assert_null (trove_metrics_histogram (m, "l11", "h", le, v1, NULL, 0));
    assert_null (trove_metrics_gauge (m, "l12", "h", le, v1));
    assert_null (trove_metrics_gauge (m, "l12", "h", quantile, v1));
    //  three labels is the maximum
    const char *const three [] = {"a", "b", "c", NULL};
    const char *const v3 [] = {"1", "2", "3", NULL};
    assert_non_null (trove_metrics_gauge (m, "l13", "h", three, v3));

    //  bounds: strictly increasing, no NaN, only a last +Inf
    const double down [] = {1, 0.5};
    const double same [] = {1, 1};
    const double nan [] = {0.5, NAN};
    const double ninf [] = {-INFINITY, 1};
    const double mid_inf [] = {1, INFINITY, 2};
    assert_null (trove_metrics_histogram (m, "b1", "h", NULL, NULL, down, 2));
    assert_null (trove_metrics_histogram (m, "b2", "h", NULL, NULL, same, 2));
    assert_null (trove_metrics_histogram (m, "b3", "h", NULL, NULL, nan, 2));
    assert_null (trove_metrics_histogram (m, "b4", "h", NULL, NULL, ninf, 2));
    assert_null (trove_metrics_histogram (m, "b5", "h", NULL, NULL, mid_inf, 3));
    assert_null (trove_metrics_histogram (m, "b6", "h", NULL, NULL, NULL, 2));
    const double neg [] = {-1, 0, 1};
    trove_histogram_t *only_inf = trove_metrics_histogram (m, "b7", "h", NULL, NULL, NULL, 0);
    trove_histogram_t *negative = trove_metrics_histogram (m, "b8", "h", NULL, NULL, neg, 3);
    assert_non_null (only_inf);
    assert_non_null (negative);
    trove_histogram_observe (only_inf, 7);
    trove_histogram_observe (negative, -5);
    trove_histogram_observe (negative, INFINITY);

    //  nothing refused left a family behind
    char *text = trove_metrics_render (m);
    assert_null (strstr (text, "l1 "));
    assert_null (strstr (text, "b1"));
    assert_non_null (strstr (text, "b7_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null (strstr (text, "b8_bucket{le=\"-1\"} 1\n"));
    assert_non_null (strstr (text, "b8_sum +Inf\n"));
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
}

static void
test_same_name_rules (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *const shard [] = {"shard", NULL};
    const char *const other [] = {"peer", NULL};
    const char *const zero [] = {"0", NULL};
    const char *const one [] = {"1", NULL};
    trove_counter_t *c0 = trove_metrics_counter (m, "trove_x_total", "X.", shard, zero);
    trove_counter_t *c1 = trove_metrics_counter (m, "trove_x_total", "Other help is ignored.", shard, one);
    assert_non_null (c0);
    assert_non_null (c1);
    assert_ptr_not_equal (c0, c1);
    //  same name and labels: same handle
    assert_ptr_equal (trove_metrics_counter (m, "trove_x_total", "X.", shard, zero), c0);
    //  same name, another type or other label names: refused
    assert_null (trove_metrics_gauge (m, "trove_x_total", "X.", shard, zero));
    assert_null (trove_metrics_histogram (m, "trove_x_total", "X.", shard, zero, NULL, 0));
    assert_null (trove_metrics_counter (m, "trove_x_total", "X.", other, zero));
    assert_null (trove_metrics_counter (m, "trove_x_total", "X.", NULL, NULL));

    const double b1 [] = {1, 2};
    const double b2 [] = {1, 3};
    const double b3 [] = {1, 2, INFINITY};
    trove_histogram_t *h = trove_metrics_histogram (m, "trove_h", "H.", NULL, NULL, b1, 2);
    assert_non_null (h);
    assert_ptr_equal (trove_metrics_histogram (m, "trove_h", "H.", NULL, NULL, b3, 3), h);
    assert_null (trove_metrics_histogram (m, "trove_h", "H.", NULL, NULL, b2, 2));
    assert_null (trove_metrics_histogram (m, "trove_h", "H.", NULL, NULL, b1, 1));
    //  names a histogram's samples use are taken, both ways round
    assert_null (trove_metrics_gauge (m, "trove_h_count", "G.", NULL, NULL));
    assert_null (trove_metrics_gauge (m, "trove_h_bucket", "G.", NULL, NULL));
    assert_null (trove_metrics_gauge (m, "trove_h_sum", "G.", NULL, NULL));
    assert_non_null (trove_metrics_gauge (m, "trove_y_sum", "G.", NULL, NULL));
    assert_null (trove_metrics_histogram (m, "trove_y", "H.", NULL, NULL, b1, 2));
    assert_non_null (trove_metrics_gauge (m, "trove_h_other", "G.", NULL, NULL));

    char *text = trove_metrics_render (m);
    assert_non_null (strstr (text, "# HELP trove_x_total X.\n"));
    assert_null (strstr (text, "Other help"));
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
}

static void
test_child_bound (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *const names [] = {"tenant", NULL};
    trove_gauge_t *first = NULL;
    for (int i = 0; i < TROVE_METRICS_MAX_CHILDREN; i++) {
        char value [16];
        snprintf (value, sizeof value, "t%d", i);
        const char *const values [] = {value, NULL};
        trove_gauge_t *g = trove_metrics_gauge (m, "trove_tenant_items", "Items.", names, values);
        assert_non_null (g);
        trove_gauge_set_int (g, i);
        if (i == 0)
            first = g;
    }
    const char *const extra [] = {"t1024", NULL};
    trove_gauge_t *refused = trove_metrics_gauge (m, "trove_tenant_items", "Items.", names, extra);
    assert_null (refused);
    //  the caller drops the sample without checking
    trove_gauge_set (refused, 1);
    trove_gauge_add (refused, 1);
    assert_true (trove_gauge_value (refused) == 0);
    trove_counter_add (NULL, 1);
    trove_histogram_observe (NULL, 1);
    assert_int_equal (trove_counter_value (NULL), 0);
    assert_int_equal (trove_histogram_count (NULL), 0);
    //  existing children are still found, other families are not limited
    const char *const t0 [] = {"t0", NULL};
    assert_ptr_equal (trove_metrics_gauge (m, "trove_tenant_items", "Items.", names, t0), first);
    assert_non_null (trove_metrics_gauge (m, "trove_other", "Other.", names, extra));

    char *text = trove_metrics_render (m);
    size_t samples = 0;
    for (const char *p = text; (p = strstr (p, "\ntrove_tenant_items{")); p++)
        samples++;
    assert_int_equal (samples, TROVE_METRICS_MAX_CHILDREN);
    assert_non_null (strstr (text, "\ntrove_tenant_items{tenant=\"t1023\"} 1023\n"));
    assert_null (strstr (text, "trove_tenant_items{tenant=\"t1024\"}"));
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
}


//  --------------------------------------------------------------------------
//  Threads

#define S_THREADS 4
#define S_INCREMENTS 100000

typedef struct {
    trove_metrics_t *m;
    trove_counter_t *counter;  //  what this thread's registration returned
    trove_gauge_t *gauge;
    trove_histogram_t *histogram;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    const char *const names [] = {"kind", NULL};
    const char *const values [] = {"hit", NULL};
    const double bounds [] = {0.5, 1.5};
    //  every thread registers the same child and must get the same handle
    w->counter = trove_metrics_counter (w->m, "trove_hits_total", "Hits.", names, values);
    w->gauge = trove_metrics_gauge (w->m, "trove_level", "Level.", names, values);
    w->histogram = trove_metrics_histogram (w->m, "trove_sizes", "Sizes.", names, values, bounds, 2);
    for (int i = 0; i < S_INCREMENTS; i++) {
        trove_counter_inc (w->counter);
        trove_gauge_add (w->gauge, 1);
        trove_histogram_observe (w->histogram, (double) (i % 3));
    }
    return NULL;
}

static void
test_concurrent_updates (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    s_worker_t workers [S_THREADS];
    pthread_t threads [S_THREADS];
    for (int i = 0; i < S_THREADS; i++) {
        workers [i] = (s_worker_t){.m = m};
        assert_int_equal (pthread_create (&threads [i], NULL, s_worker, &workers [i]), 0);
    }
    //  renders taken meanwhile are valid too (+Inf always equals _count)
    for (int i = 0; i < 20; i++) {
        char *text = trove_metrics_render (m);
        s_assert_valid (text);
        free (text);
    }
    for (int i = 0; i < S_THREADS; i++)
        assert_int_equal (pthread_join (threads [i], NULL), 0);
    for (int i = 1; i < S_THREADS; i++) {
        assert_non_null (workers [i].counter);
        assert_ptr_equal (workers [i].counter, workers [0].counter);
        assert_ptr_equal (workers [i].gauge, workers [0].gauge);
        assert_ptr_equal (workers [i].histogram, workers [0].histogram);
    }
    assert_int_equal (trove_counter_value (workers [0].counter), S_THREADS * S_INCREMENTS);
    assert_true (trove_gauge_value (workers [0].gauge) == S_THREADS * S_INCREMENTS);
    assert_int_equal (trove_histogram_count (workers [0].histogram), S_THREADS * S_INCREMENTS);
    //  i % 3 over 0..99999: 33334 zeros, 33333 ones, 33333 twos per thread
    assert_true (trove_histogram_sum (workers [0].histogram) == S_THREADS * (33333.0 + 2 * 33333.0));
    char *text = trove_metrics_render (m);
    assert_non_null (strstr (text, "trove_hits_total{kind=\"hit\"} 400000\n"));
    assert_non_null (strstr (text, "trove_sizes_bucket{kind=\"hit\",le=\"0.5\"} 133336\n"));
    assert_non_null (strstr (text, "trove_sizes_bucket{kind=\"hit\",le=\"1.5\"} 266668\n"));
    assert_non_null (strstr (text, "trove_sizes_count{kind=\"hit\"} 400000\n"));
    s_assert_valid (text);
    free (text);
    trove_metrics_destroy (&m);
}


//  --------------------------------------------------------------------------
//  HTTP

//  Sends request to 127.0.0.1:port and returns everything read until the
//  server closes (HTTP/1.0), NUL-terminated. Fails the test on error.
static char *
s_http (uint16_t port, const char *request)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct timeval timeout = {10, 0};  //  a hung server fails the test, not the suite
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    size_t len = strlen (request);
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send (fd, request + sent, len - sent, MSG_NOSIGNAL);
        assert_true (n > 0);
        sent += (size_t) n;
    }
    size_t size = 4096, used = 0;
    char *reply = malloc (size);
    assert_non_null (reply);
    for (;;) {
        if (used + 1024 > size) {
            size *= 2;
            reply = realloc (reply, size);
            assert_non_null (reply);
        }
        ssize_t n = recv (fd, reply + used, size - used - 1, 0);
        assert_true (n >= 0);
        if (n == 0)
            break;
        used += (size_t) n;
    }
    reply [used] = 0;
    close (fd);
    return reply;
}

//  The value of a header (case-insensitive name) in a raw reply, copied into out.
static bool
s_header (const char *reply, const char *name, char *out, size_t size)
{
    const char *end = strstr (reply, "\r\n\r\n");
    size_t len = strlen (name);
    for (const char *line = strstr (reply, "\r\n"); line && line < end; line = strstr (line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp (p, name, len) == 0 && p [len] == ':') {
            p += len + 1;
            while (*p == ' ')
                p++;
            size_t vlen = (size_t) (strstr (p, "\r\n") - p);
            if (vlen >= size)
                return false;
            memcpy (out, p, vlen);
            out [vlen] = 0;
            return true;
        }
    }
    return false;
}

static void
test_http_endpoint (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    assert_int_equal (trove_metrics_port (m), 0);
    const char *const names [] = {"q", NULL};
    const char *const values [] = {"say \"hi\"\n", NULL};
    trove_counter_add (trove_metrics_counter (m, "trove_http_test_total", "Test.", names, values), 42);
    const double bounds [] = {1, 2, 3};
    trove_histogram_observe (trove_metrics_histogram (m, "trove_h", "H.", NULL, NULL, bounds, 3), 2);
    assert_int_equal (trove_metrics_process_start (m), 0);

    char *err = NULL;
    assert_int_equal (trove_metrics_serve (m, "127.0.0.1:0", &err), 0);
    assert_null (err);
    uint16_t port = trove_metrics_port (m);
    assert_true (port > 0);

    char *reply = s_http (port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply, "HTTP/1.", 7) == 0);
    assert_true (strncmp (reply + 8, " 200 ", 5) == 0);
    char type [128];
    assert_true (s_header (reply, "Content-Type", type, sizeof type));
    assert_string_equal (type, "text/plain; version=0.0.4");
    char *body = strstr (reply, "\r\n\r\n");
    assert_non_null (body);
    char *text = trove_metrics_render (m);
    assert_string_equal (body + 4, text);
    s_assert_valid (body + 4);
    free (text);
    free (reply);

    //  a query string is still /metrics
    reply = s_http (port, "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_true (strncmp (reply + 8, " 200 ", 5) == 0);
    free (reply);

    reply = s_http (port, "GET /other HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 404 ", 5) == 0);
    free (reply);
    reply = s_http (port, "GET / HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 404 ", 5) == 0);
    free (reply);
    reply = s_http (port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    assert_true (strncmp (reply + 8, " 405 ", 5) == 0);
    assert_true (s_header (reply, "Allow", type, sizeof type));
    assert_string_equal (type, "GET, HEAD");
    free (reply);
    reply = s_http (port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 200 ", 5) == 0);
    assert_string_equal (strstr (reply, "\r\n\r\n"), "\r\n\r\n");  //  no body
    free (reply);

    //  a second server is refused, on this registry or on this port
    assert_int_equal (trove_metrics_serve (m, "127.0.0.1:0", &err), -1);
    assert_non_null (err);
    free (err);
    trove_metrics_t *other = trove_metrics_new ();
    char address [32];
    snprintf (address, sizeof address, "127.0.0.1:%u", port);
    err = NULL;
    assert_int_equal (trove_metrics_serve (other, address, &err), -1);
    assert_non_null (err);
    assert_non_null (strstr (err, address));
    free (err);
    assert_int_equal (trove_metrics_port (other), 0);
    assert_int_equal (trove_metrics_serve (other, "127.0.0.1:0", NULL), 0);
    assert_true (trove_metrics_port (other) != port);
    trove_metrics_destroy (&other);

    trove_metrics_destroy (&m);  //  stops the server
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), -1);
    close (fd);
}

//  Refuses every key: only open routes answer without one.
static const void *
s_refuse_all (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg, (void) req, (void) resp;
    return NULL;
}

static void
s_api_route (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) arg, (void) req;
    trove_http_reply (resp, 200, strdup ("{}"));
}

//  Metrics and API on one address: one listener, /metrics open to
//  Prometheus while every other route still needs a key.
static void
test_route_on_api_listener (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    trove_counter_add (trove_metrics_counter (m, "trove_shared_total", "Shared.", NULL, NULL), 7);
    trove_http_t *http = trove_http_new (1024);
    assert_non_null (http);
    assert_int_equal (trove_http_set_auth (http, s_refuse_all, NULL), 0);
    assert_int_equal (trove_http_route (http, "GET", "/v1/thing", s_api_route, NULL), 0);
    assert_int_equal (trove_metrics_route (m, http), 0);
    char *err = NULL;
    assert_int_equal (trove_http_start (http, "127.0.0.1:0", 2, &err), 0);
    uint16_t port = trove_http_port (http);

    char *reply = s_http (port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 200 ", 5) == 0);
    char type [128];
    assert_true (s_header (reply, "Content-Type", type, sizeof type));
    assert_string_equal (type, "text/plain; version=0.0.4");
    assert_non_null (strstr (reply, "trove_shared_total 7\n"));
    free (reply);
    reply = s_http (port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 200 ", 5) == 0);
    free (reply);
    //  The key still guards the rest, /metrics under another method too.
    reply = s_http (port, "GET /v1/thing HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 401 ", 5) == 0);
    free (reply);
    reply = s_http (port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 401 ", 5) == 0);
    free (reply);
    reply = s_http (port, "GET /metricsx HTTP/1.0\r\n\r\n");
    assert_true (strncmp (reply + 8, " 401 ", 5) == 0);
    free (reply);

    //  A route cannot be added to a started server.
    assert_int_equal (trove_metrics_route (m, http), -1);
    trove_http_destroy (&http);
    trove_metrics_destroy (&m);
}

static void
test_serve_bad_address (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    const char *bad [] = {"localhost:9100", "127.0.0.1",    "127.0.0.1:", ":9100",   "127.0.0.1:65536",
                          "127.0.0.1:-1",   "127.0.0.1:9x", "1.2.3:80",   "[::1:80", "[nope]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char *err = NULL;
        assert_int_equal (trove_metrics_serve (m, bad [i], &err), -1);
        assert_non_null (err);
        free (err);
        assert_int_equal (trove_metrics_port (m), 0);
    }
    assert_int_equal (trove_metrics_serve (m, "nonsense", NULL), -1);
    trove_metrics_destroy (&m);
}


//  --------------------------------------------------------------------------
//  The checker and the process helper

static void
test_strict_parser_rejects (void **state)
{
    (void) state;
    const char *head = "# HELP h H.\n# TYPE h histogram\n";
    const char *bad [] = {
        "# HELP c C.\n# TYPE c counter\nc 1",                              //  no final newline
        "# TYPE c counter\nc 1\n",                                         //  no HELP
        "# HELP c C.\nc 1\n",                                              //  no TYPE
        "# HELP c C.\n# TYPE c counter\nc{a=\"x} 1\n",                     //  unterminated
        "# HELP c C.\n# TYPE c counter\nc{a=\"\\t\"} 1\n",                 //  bad escape
        "# HELP c C.\n# TYPE c counter\nc{a=\"1\",} 1\n",                  //  trailing comma
        "# HELP c C.\n# TYPE c counter\nc{a=\"1\",a=\"2\"} 1\n",           //  duplicate label
        "# HELP c C.\n# TYPE c counter\nc one\n",                          //  not a float
        "# HELP c C.\n# TYPE c counter\nc 0x10\n",                         //  hex
        "# HELP c C.\n# TYPE c counter\nd 1\n",                            //  wrong family
        "# HELP c C.\n# TYPE c counter\nc -1\n",                           //  negative counter
        "# HELP c C.\n# TYPE c counter\nc 1 1700000000\n",                 //  timestamp
        "# HELP c C.\n# TYPE c counter\n# HELP c C.\n# TYPE c counter\n",  //  twice
        "# HELP c C.\n# TYPE c counter\n\nc 1\n",                          //  empty line
    };
    char why [256];
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        if (s_check_exposition (bad [i], why, sizeof why) == 0)
            fail_msg ("accepted bad text %zu:\n%s", i, bad [i]);
    const char *bad_histograms [] = {
        "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  //  not cumulative
        "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",     //  le decreasing
        "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",                           //  no +Inf
        "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",                        //  count differs
        "h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n",                        //  order
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\n",                                   //  no count
        "h_bucket 1\nh_sum 1\nh_count 1\n",                                     //  no le
        "h_bucket{a=\"1\",le=\"+Inf\"} 1\nh_bucket{a=\"2\",le=\"+Inf\"} 1\n",   //  unfinished set
        "h 1\n",                                                                //  bare name
    };
    for (size_t i = 0; i < sizeof bad_histograms / sizeof bad_histograms [0]; i++) {
        char *text = trove_strdupf ("%s%s", head, bad_histograms [i]);
        if (s_check_exposition (text, why, sizeof why) == 0)
            fail_msg ("accepted bad histogram %zu:\n%s", i, text);
        free (text);
    }
    s_assert_valid ("");
    s_assert_valid ("# HELP h H.\n# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.5\"} 0\n"
                    "h_bucket{a=\"1\",le=\"+Inf\"} 3\nh_sum{a=\"1\"} 4.5\nh_count{a=\"1\"} 3\n");
}

static void
test_process_start (void **state)
{
    (void) state;
    trove_metrics_t *m = trove_metrics_new ();
    assert_int_equal (trove_metrics_process_start (m), 0);
    assert_int_equal (trove_metrics_process_start (m), 0);  //  same gauge again
    trove_gauge_t *g = trove_metrics_gauge (m, "process_start_time_seconds", "x", NULL, NULL);
    double now = (double) trove_now_ms () / 1000.0;
    //  this process started moments ago (boot time drifts by seconds at most)
    assert_true (trove_gauge_value (g) > now - 3600);
    assert_true (trove_gauge_value (g) < now + 60);
    char *text = trove_metrics_render (m);
    assert_non_null (strstr (text, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1"));
    s_assert_valid (text);
    free (text);
    //  the name taken by something else: refused
    trove_metrics_t *taken = trove_metrics_new ();
    assert_non_null (trove_metrics_histogram (taken, "process_start_time_seconds", "x", NULL, NULL, NULL, 0));
    assert_int_equal (trove_metrics_process_start (taken), -1);
    trove_metrics_destroy (&taken);
    trove_metrics_destroy (&m);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_render_exact),          cmocka_unit_test (test_empty_render_is_empty),
        cmocka_unit_test (test_float_values),          cmocka_unit_test (test_escaping),
        cmocka_unit_test (test_invalid_names_refused), cmocka_unit_test (test_same_name_rules),
        cmocka_unit_test (test_child_bound),           cmocka_unit_test (test_concurrent_updates),
        cmocka_unit_test (test_http_endpoint),         cmocka_unit_test (test_serve_bad_address),
        cmocka_unit_test (test_route_on_api_listener), cmocka_unit_test (test_strict_parser_rejects),
        cmocka_unit_test (test_process_start),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
