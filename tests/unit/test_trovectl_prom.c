/*  test_trovectl_prom - the Prometheus text parser and histogram quantiles
    of trovectl top (trovectl/trovectl_prom). The bodies below are the shape
    lib/core/trove_metrics renders; the expected quantiles were worked out by hand
    from PromQL's histogram_quantile () rule (linear inside the bucket). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trovectl_prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static trovectl_prom_t *
s_parse (const char *text)
{
    trovectl_prom_t *prom = trovectl_prom_parse (text, strlen (text));
    assert_non_null (prom);
    return prom;
}

static void
test_samples_labels_and_comments (void **state)
{
    (void) state;
    const char *body = "# HELP trove_ingestor_events_total Events answered.\n"
                       "# TYPE trove_ingestor_events_total counter\n"
                       "trove_ingestor_events_total{source=\"web\",result=\"accepted\"} 42\n"
                       "\n"
                       "trove_scorer_last_aseq 7\r\n"
                       "process_start_time_seconds 1700000000.5\n"
                       "up{job=\"a\"} 1 1700000000000\n"
                       "last_line_without_newline 3";
    trovectl_prom_t *prom = s_parse (body);
    assert_int_equal (prom->count, 5);
    const trovectl_prom_sample_t *s = &prom->samples [0];
    assert_string_equal (s->key, "trove_ingestor_events_total{source=\"web\",result=\"accepted\"}");
    assert_string_equal (s->name, "trove_ingestor_events_total");
    assert_int_equal (s->nlabels, 2);
    assert_string_equal (trovectl_prom_label (s, "source"), "web");
    assert_string_equal (trovectl_prom_label (s, "result"), "accepted");
    assert_null (trovectl_prom_label (s, "reason"));
    assert_true (s->value == 42);
    //  CRLF line ends; a trailing timestamp is not the value
    assert_string_equal (prom->samples [1].key, "trove_scorer_last_aseq");
    assert_true (prom->samples [1].value == 7);
    assert_true (prom->samples [3].value == 1);
    assert_true (prom->samples [4].value == 3);
    //  the process start time is kept apart: it tells a restart
    assert_true (prom->started == 1700000000.5);
    trovectl_prom_destroy (&prom);
    assert_null (prom);
    trovectl_prom_destroy (&prom);
}

static void
test_no_start_time_is_nan (void **state)
{
    (void) state;
    //  with a label it is some other series
    trovectl_prom_t *prom = s_parse ("process_start_time_seconds{x=\"1\"} 5\n");
    assert_int_equal (prom->count, 1);
    assert_true (isnan (prom->started));
    trovectl_prom_destroy (&prom);
}

static void
test_label_values_unescaped (void **state)
{
    (void) state;
    trovectl_prom_sample_t s;
    const char *line = "m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"two\\nlines\", d = \"}{,\"} 1.5";
    assert_int_equal (trovectl_prom_parse_line (line, strlen (line), &s), 0);
    assert_string_equal (s.name, "m");
    assert_int_equal (s.nlabels, 4);
    assert_string_equal (trovectl_prom_label (&s, "a"), "x\"y");
    assert_string_equal (trovectl_prom_label (&s, "b"), "back\\slash");
    assert_string_equal (trovectl_prom_label (&s, "c"), "two\nlines");
    assert_string_equal (trovectl_prom_label (&s, "d"), "}{,");
    //  the key stays as rendered: it is the series' identity
    assert_int_equal (strlen (s.key), strlen (line) - 4);
    assert_true (s.value == 1.5);
    free (s.key);
}

static void
test_labels_beyond_the_maximum_are_dropped (void **state)
{
    (void) state;
    trovectl_prom_sample_t s;
    const char *line = "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\"} 2";
    assert_int_equal (trovectl_prom_parse_line (line, strlen (line), &s), 0);
    assert_int_equal (s.nlabels, TROVECTL_PROM_MAX_LABELS);
    assert_string_equal (trovectl_prom_label (&s, "d"), "4");
    assert_null (trovectl_prom_label (&s, "e"));
    assert_string_equal (s.key, "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\"}");
    free (s.key);
}

static void
test_special_values (void **state)
{
    (void) state;
    trovectl_prom_t *prom = s_parse ("a +Inf\nb -Inf\nc NaN\nd 1e3\ne -0.25\n");
    assert_int_equal (prom->count, 5);
    assert_true (isinf (prom->samples [0].value) && prom->samples [0].value > 0);
    assert_true (isinf (prom->samples [1].value) && prom->samples [1].value < 0);
    assert_true (isnan (prom->samples [2].value));
    assert_true (prom->samples [3].value == 1000);
    assert_true (prom->samples [4].value == -0.25);
    trovectl_prom_destroy (&prom);
}

static void
test_malformed_lines_are_skipped (void **state)
{
    (void) state;
    const char *bad [] = {
        "",                      //  blank
        "   ",                   //  blank
        "# a comment 1",         //  comment
        "9starts_with_digit 1",  //  not a name
        "no_value",              //  no value
        "no_value ",             //  no value
        "m{a=\"1\" 1",           //  unclosed braces
        "m{a=\"1} 1",            //  unclosed quote
        "m{a=1} 1",              //  value not quoted
        "m{=\"1\"} 1",           //  label without a name
        "m 12abc",               //  not a number
        "m{a=\"1\"}1",           //  no space before the value
        "m 123456789012345678901234567890123456789012345678901234567890123456789",  //  too long
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        trovectl_prom_sample_t s;
        memset (&s, 0x5a, sizeof s);
        if (trovectl_prom_parse_line (bad [i], strlen (bad [i]), &s) != -1)
            fail_msg ("accepted '%s'", bad [i]);
    }
    //  A body of them parses to its good lines only.
    trovectl_prom_t *prom = s_parse ("m{a=1} 1\ngood 2\nm{a=\"1} 1\n");
    assert_int_equal (prom->count, 1);
    assert_string_equal (prom->samples [0].name, "good");
    trovectl_prom_destroy (&prom);
}

static void
test_parse_uses_exactly_size_bytes (void **state)
{
    (void) state;
    const char body [] = "a 1\nb 2\nc 3";
    //  "a 1\nb 2" : the third line lies beyond size
    trovectl_prom_t *prom = trovectl_prom_parse (body, 7);
    assert_non_null (prom);
    assert_int_equal (prom->count, 2);
    assert_true (prom->samples [1].value == 2);
    trovectl_prom_destroy (&prom);
}

static void
test_many_samples_grow (void **state)
{
    (void) state;
    size_t n = 1000;
    char *body = malloc (n * 32);
    assert_non_null (body);
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += (size_t) sprintf (body + used, "m{i=\"%zu\"} %zu\n", i, i);
    trovectl_prom_t *prom = trovectl_prom_parse (body, used);
    free (body);
    assert_non_null (prom);
    assert_int_equal (prom->count, n);
    //  find: by the hint, and anywhere when the hint is wrong
    const trovectl_prom_sample_t *s = trovectl_prom_find (prom, "m{i=\"500\"}", 500);
    assert_non_null (s);
    assert_true (s->value == 500);
    s = trovectl_prom_find (prom, "m{i=\"999\"}", 3);
    assert_non_null (s);
    assert_true (s->value == 999);
    assert_null (trovectl_prom_find (prom, "m{i=\"1000\"}", 0));
    assert_null (trovectl_prom_find (prom, "m", 100000));
    trovectl_prom_destroy (&prom);
}

static void
test_hist_add_keeps_bounds_in_order (void **state)
{
    (void) state;
    trovectl_prom_hist_t h = {.n = 0};
    trovectl_prom_hist_add (&h, INFINITY, 10);
    trovectl_prom_hist_add (&h, 0.5, 4);
    trovectl_prom_hist_add (&h, 0.1, 1);
    trovectl_prom_hist_add (&h, 0.5, 2);  //  the same bound: summed
    assert_int_equal (h.n, 3);
    assert_true (h.le [0] == 0.1 && h.count [0] == 1);
    assert_true (h.le [1] == 0.5 && h.count [1] == 6);
    assert_true (isinf (h.le [2]) && h.count [2] == 10);
    for (int i = 0; i < 100; i++)
        trovectl_prom_hist_add (&h, 1000 + i, 1);
    assert_int_equal (h.n, TROVECTL_PROM_MAX_BUCKETS);
}

static void
test_hist_quantile_like_promql (void **state)
{
    (void) state;
    //  le 0.1: 10, le 0.2: 30, le 0.4: 40, +Inf: 40 (cumulative)
    trovectl_prom_hist_t h = {.n = 0};
    trovectl_prom_hist_add (&h, 0.1, 10);
    trovectl_prom_hist_add (&h, 0.2, 30);
    trovectl_prom_hist_add (&h, 0.4, 40);
    trovectl_prom_hist_add (&h, INFINITY, 40);
    //  rank 20 lies in (0.1, 0.2]: 10 of its 20 -> 0.15
    assert_float_equal (trovectl_prom_hist_quantile (&h, 0.5), 0.15, 1e-12);
    //  rank 5 in the first bucket, from 0 -> 0.05
    assert_float_equal (trovectl_prom_hist_quantile (&h, 0.125), 0.05, 1e-12);
    //  rank 39.6 in (0.2, 0.4]: 9.6 of its 10 -> 0.392
    assert_float_equal (trovectl_prom_hist_quantile (&h, 0.99), 0.392, 1e-12);
    //  a quantile in the +Inf bucket is the highest finite bound
    trovectl_prom_hist_add (&h, INFINITY, 60);  //  +Inf now 100
    assert_float_equal (trovectl_prom_hist_quantile (&h, 0.99), 0.4, 1e-12);
}

static void
test_hist_quantile_edges (void **state)
{
    (void) state;
    trovectl_prom_hist_t h = {.n = 0};
    assert_true (isnan (trovectl_prom_hist_quantile (&h, 0.5)));
    //  no +Inf bucket
    trovectl_prom_hist_add (&h, 0.1, 3);
    trovectl_prom_hist_add (&h, 0.2, 5);
    assert_true (isnan (trovectl_prom_hist_quantile (&h, 0.5)));
    //  no observation
    trovectl_prom_hist_t empty = {.n = 0};
    trovectl_prom_hist_add (&empty, 0.1, 0);
    trovectl_prom_hist_add (&empty, INFINITY, 0);
    assert_true (isnan (trovectl_prom_hist_quantile (&empty, 0.5)));
    //  a first bound <= 0 is the answer in the first bucket
    trovectl_prom_hist_t neg = {.n = 0};
    trovectl_prom_hist_add (&neg, -1, 5);
    trovectl_prom_hist_add (&neg, 1, 10);
    trovectl_prom_hist_add (&neg, INFINITY, 10);
    assert_float_equal (trovectl_prom_hist_quantile (&neg, 0.25), -1, 1e-12);
    //  a cumulative count that decreases (one series reset) reads as the
    //  running maximum: le 0.1: 10, le 0.2: 4 -> 10, +Inf: 20
    trovectl_prom_hist_t reset = {.n = 0};
    trovectl_prom_hist_add (&reset, 0.1, 10);
    trovectl_prom_hist_add (&reset, 0.2, 4);
    trovectl_prom_hist_add (&reset, 0.4, 20);
    trovectl_prom_hist_add (&reset, INFINITY, 20);
    //  rank 10 falls in the first bucket: all of it -> 0.1
    assert_float_equal (trovectl_prom_hist_quantile (&reset, 0.5), 0.1, 1e-12);
    //  rank 15: (0.2, 0.4] holds 10, 5 of them -> 0.3
    assert_float_equal (trovectl_prom_hist_quantile (&reset, 0.75), 0.3, 1e-12);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_samples_labels_and_comments),
        cmocka_unit_test (test_no_start_time_is_nan),
        cmocka_unit_test (test_label_values_unescaped),
        cmocka_unit_test (test_labels_beyond_the_maximum_are_dropped),
        cmocka_unit_test (test_special_values),
        cmocka_unit_test (test_malformed_lines_are_skipped),
        cmocka_unit_test (test_parse_uses_exactly_size_bytes),
        cmocka_unit_test (test_many_samples_grow),
        cmocka_unit_test (test_hist_add_keeps_bounds_in_order),
        cmocka_unit_test (test_hist_quantile_like_promql),
        cmocka_unit_test (test_hist_quantile_edges),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
