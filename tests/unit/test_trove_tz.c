/*  test_trove_tz - IANA time zones (lib/rules/trove_tz), against the zone files of
    the installed tzdata package and against TZif files written here.
    Expected offsets and dates were computed independently: real zones
    with Python's zoneinfo, POSIX rule forms with glibc (TZ=... date), not
    with the code under test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_tz.h"
#include "trove_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONEINFO "/usr/share/zoneinfo"

//  Epoch ms of an RFC 3339 instant.
static int64_t
s_ms (const char *text)
{
    int64_t ms;
    assert_int_equal (trove_parse_rfc3339 (text, &ms), 0);
    return ms;
}

static trove_tz_t *
s_zone (const char *name)
{
    char *err = NULL;
    trove_tz_t *tz = trove_tz_new (name, &err);
    if (!tz)
        fail_msg ("%s: %s", name, err ? err : "(no message)");
    assert_null (err);
    return tz;
}

//  A fresh directory under /tmp; removed by s_rmtree.
static void
s_tempdir (char *out, size_t size)
{
    snprintf (out, size, "/tmp/trove-test-tz-XXXXXX");
    assert_non_null (mkdtemp (out));
}

static void
s_rmtree (const char *dir)
{
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
}

static void
s_write_file (const char *dir, const char *name, const void *data, size_t len)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

//  Loading name must fail with a message that contains expect.
static void
s_expect_error (const char *name, const char *expect)
{
    char *err = NULL;
    trove_tz_t *tz = trove_tz_new (name, &err);
    if (tz)
        fail_msg ("'%s' loaded, expected an error with '%s'", name, expect);
    assert_non_null (err);
    if (!strstr (err, expect))
        fail_msg ("'%s': error '%s' does not contain '%s'", name, err, expect);
    free (err);
}

//  ---------------------------------------------------------------------------
//  Offsets and local days in real zones

typedef struct {
    const char *zone;
    const char *instant;    //  UTC
    int32_t offset;         //  seconds east of UTC
    const char *local_day;  //  local date at that instant
} s_case_t;

static const s_case_t s_cases [] = {
    {"UTC", "2026-03-29T01:00:00Z", 0, "2026-03-29"},
    {"Etc/UTC", "1969-12-31T23:59:59Z", 0, "1969-12-31"},
    {"UTC", "1960-06-01T12:00:00Z", 0, "1960-06-01"},
    //  Spring forward at 02:00 local, fall back at 03:00 local.
    {"Europe/Paris", "2026-03-28T22:59:59Z", 3600, "2026-03-28"},  //  23:59:59+01
    {"Europe/Paris", "2026-03-28T23:00:00Z", 3600, "2026-03-29"},  //  00:00:00+01
    {"Europe/Paris", "2026-03-29T00:59:59Z", 3600, "2026-03-29"},  //  01:59:59+01
    {"Europe/Paris", "2026-03-29T01:00:00Z", 7200, "2026-03-29"},  //  03:00:00+02
    {"Europe/Paris", "2026-03-29T21:59:59Z", 7200, "2026-03-29"},  //  23:59:59+02
    {"Europe/Paris", "2026-03-29T22:00:00Z", 7200, "2026-03-30"},  //  00:00:00+02
    {"Europe/Paris", "2026-10-24T21:59:59Z", 7200, "2026-10-24"},
    {"Europe/Paris", "2026-10-24T22:00:00Z", 7200, "2026-10-25"},
    {"Europe/Paris", "2026-10-25T00:59:59Z", 7200, "2026-10-25"},  //  02:59:59+02
    {"Europe/Paris", "2026-10-25T01:00:00Z", 3600, "2026-10-25"},  //  02:00:00+01
    {"Europe/Paris", "2026-10-25T22:59:59Z", 3600, "2026-10-25"},
    {"Europe/Paris", "2026-10-25T23:00:00Z", 3600, "2026-10-26"},
    //  After 2037: the footer rule (last Sunday of March and October).
    {"Europe/Paris", "2090-03-25T22:59:59Z", 3600, "2090-03-25"},
    {"Europe/Paris", "2090-03-25T23:00:00Z", 3600, "2090-03-26"},
    {"Europe/Paris", "2090-03-26T00:59:59Z", 3600, "2090-03-26"},
    {"Europe/Paris", "2090-03-26T01:00:00Z", 7200, "2090-03-26"},
    {"Europe/Paris", "2090-10-28T21:59:59Z", 7200, "2090-10-28"},
    {"Europe/Paris", "2090-10-28T22:00:00Z", 7200, "2090-10-29"},
    {"Europe/Paris", "2090-10-29T00:59:59Z", 7200, "2090-10-29"},
    {"Europe/Paris", "2090-10-29T01:00:00Z", 3600, "2090-10-29"},
    //  Around and after the last year the rule is expanded for (2200).
    {"Europe/Paris", "2200-10-26T00:59:59Z", 7200, "2200-10-26"},
    {"Europe/Paris", "2200-10-26T01:00:00Z", 3600, "2200-10-26"},
    {"Europe/Paris", "2201-03-29T00:59:59Z", 3600, "2201-03-29"},
    {"Europe/Paris", "2201-03-29T01:00:00Z", 7200, "2201-03-29"},
    {"Europe/Paris", "2250-07-01T12:00:00Z", 7200, "2250-07-01"},
    {"Europe/Paris", "2250-12-01T12:00:00Z", 3600, "2250-12-01"},
    //  Before 1970.
    {"Europe/Paris", "1960-06-01T12:00:00Z", 3600, "1960-06-01"},
    {"Europe/Paris", "1944-08-25T12:00:00Z", 7200, "1944-08-25"},
    {"Europe/Paris", "1969-12-31T23:30:00Z", 3600, "1970-01-01"},
    {"America/New_York", "2026-03-08T04:59:59Z", -18000, "2026-03-07"},
    {"America/New_York", "2026-03-08T05:00:00Z", -18000, "2026-03-08"},
    {"America/New_York", "2026-03-08T06:59:59Z", -18000, "2026-03-08"},  //  01:59:59-05
    {"America/New_York", "2026-03-08T07:00:00Z", -14400, "2026-03-08"},  //  03:00:00-04
    {"America/New_York", "2026-11-01T05:59:59Z", -14400, "2026-11-01"},  //  01:59:59-04
    {"America/New_York", "2026-11-01T06:00:00Z", -18000, "2026-11-01"},  //  01:00:00-05
    {"America/New_York", "2090-03-12T06:59:59Z", -18000, "2090-03-12"},
    {"America/New_York", "2090-03-12T07:00:00Z", -14400, "2090-03-12"},
    {"America/New_York", "1960-07-01T03:59:59Z", -14400, "1960-06-30"},
    {"America/New_York", "1960-07-01T04:00:00Z", -14400, "1960-07-01"},
    {"Asia/Kolkata", "2026-06-01T18:29:59Z", 19800, "2026-06-01"},
    {"Asia/Kolkata", "2026-06-01T18:30:00Z", 19800, "2026-06-02"},
    {"Asia/Kolkata", "2090-01-01T00:00:00Z", 19800, "2090-01-01"},  //  footer "IST-5:30"
    //  Southern hemisphere: DST spans the new year.
    {"Australia/Sydney", "2026-01-15T00:00:00Z", 39600, "2026-01-15"},
    {"Australia/Sydney", "2026-07-15T00:00:00Z", 36000, "2026-07-15"},
    {"Australia/Sydney", "2026-04-04T15:59:59Z", 39600, "2026-04-05"},  //  02:59:59+11
    {"Australia/Sydney", "2026-04-04T16:00:00Z", 36000, "2026-04-05"},  //  02:00:00+10
    {"Australia/Sydney", "2026-10-03T15:59:59Z", 36000, "2026-10-04"},
    {"Australia/Sydney", "2026-10-03T16:00:00Z", 39600, "2026-10-04"},
    {"Australia/Sydney", "2026-12-31T12:59:59Z", 39600, "2026-12-31"},
    {"Australia/Sydney", "2026-12-31T13:00:00Z", 39600, "2027-01-01"},
    {"Australia/Sydney", "2090-01-15T00:00:00Z", 39600, "2090-01-15"},
    {"Australia/Sydney", "2090-07-15T00:00:00Z", 36000, "2090-07-15"},
    {"Australia/Sydney", "2250-01-15T00:00:00Z", 39600, "2250-01-15"},
    {"Australia/Sydney", "2250-07-15T00:00:00Z", 36000, "2250-07-15"},
    {"Australia/Sydney", "2250-04-06T15:59:59Z", 39600, "2250-04-07"},
    {"Australia/Sydney", "2250-04-06T16:00:00Z", 36000, "2250-04-07"},
    //  Half-hour DST: "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0".
    {"Australia/Lord_Howe", "2090-01-15T00:00:00Z", 39600, "2090-01-15"},
    {"Australia/Lord_Howe", "2090-07-15T00:00:00Z", 37800, "2090-07-15"},
    //  v3 rule times: "IST-2IDT,M3.4.4/26,M10.5.0" (Thursday 26:00).
    {"Asia/Jerusalem", "2090-03-23T23:59:59Z", 7200, "2090-03-24"},
    {"Asia/Jerusalem", "2090-03-24T00:00:00Z", 10800, "2090-03-24"},
    //  Negative rule time: "<-02>2<-01>,M3.5.0/-1,M10.5.0/0".
    {"America/Nuuk", "2090-03-26T00:59:59Z", -7200, "2090-03-25"},
    {"America/Nuuk", "2090-03-26T01:00:00Z", -3600, "2090-03-26"},
    //  "<-03>3": no DST.
    {"America/Sao_Paulo", "2090-06-01T02:59:59Z", -10800, "2090-05-31"},
    {"America/Sao_Paulo", "2090-06-01T03:00:00Z", -10800, "2090-06-01"},
};

static void
test_offsets_and_days (void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases [0]; i++) {
        const s_case_t *c = &s_cases [i];
        trove_tz_t *tz = s_zone (c->zone);
        assert_string_equal (trove_tz_name (tz), c->zone);
        int64_t ms = s_ms (c->instant);
        int32_t offset = trove_tz_offset (tz, ms);
        char day [32];
        trove_tz_day_text (trove_tz_day (tz, ms), day, sizeof day);
        if (offset != c->offset || strcmp (day, c->local_day) != 0)
            fail_msg ("%s at %s: offset %d day %s, expected %d %s", c->zone, c->instant, offset, day,
                      c->offset, c->local_day);
        //  Any millisecond of the second gives the same answer.
        assert_int_equal (trove_tz_offset (tz, ms + 999), c->offset);
        trove_tz_destroy (&tz);
        assert_null (tz);
    }
}

static void
test_negative_millis_round_down (void **state)
{
    (void) state;
    trove_tz_t *tz = s_zone ("UTC");
    assert_int_equal (trove_tz_day (tz, 0), 0);
    assert_int_equal (trove_tz_day (tz, -1), -1);  //  1969-12-31T23:59:59.999Z
    assert_int_equal (trove_tz_day (tz, -86400000), -1);
    assert_int_equal (trove_tz_day (tz, -86400001), -2);
    trove_tz_destroy (&tz);

    //  Paris went from +01 to +02 at 1945-04-02T01:00:00Z; one ms before
    //  is still the earlier second.
    tz = s_zone ("Europe/Paris");
    int64_t change = s_ms ("1945-04-02T01:00:00Z");
    assert_true (change < 0);
    assert_int_equal (trove_tz_offset (tz, change - 1), 3600);
    assert_int_equal (trove_tz_offset (tz, change), 7200);
    trove_tz_destroy (&tz);
}

static void
test_week_starts_on_monday (void **state)
{
    (void) state;
    assert_int_equal (20521, 2932 * 7 - 3);  //  2026-03-09, a Monday: (day + 3) / 7 exactly
    trove_tz_t *tz = s_zone ("Europe/Paris");
    //  Sunday 2026-03-08 23:59:59 and Monday 2026-03-09 00:00 local.
    assert_int_equal (trove_tz_week (tz, s_ms ("2026-03-08T22:59:59Z")), 2931);
    assert_int_equal (trove_tz_week (tz, s_ms ("2026-03-08T23:00:00Z")), 2932);
    trove_tz_destroy (&tz);

    //  New York's week of 2026-03-02 has its DST change on the Sunday
    //  (2026-03-08): every instant of the local week is in one week.
    tz = s_zone ("America/New_York");
    int64_t monday = s_ms ("2026-03-02T05:00:00Z");       //  00:00-05
    int64_t next_monday = s_ms ("2026-03-09T04:00:00Z");  //  00:00-04
    assert_int_equal (trove_tz_week (tz, monday - 1), 2930);
    for (int64_t ms = monday; ms < next_monday; ms += 15 * 60 * 1000)
        assert_int_equal (trove_tz_week (tz, ms), 2931);
    assert_int_equal (trove_tz_week (tz, next_monday - 1), 2931);
    assert_int_equal (trove_tz_week (tz, next_monday), 2932);
    trove_tz_destroy (&tz);

    //  Floor division before 1970: Monday 1969-12-29 starts week 0.
    tz = s_zone ("UTC");
    assert_int_equal (trove_tz_week (tz, s_ms ("1970-01-05T00:00:00Z")), 1);
    assert_int_equal (trove_tz_week (tz, s_ms ("1970-01-04T23:59:59Z")), 0);
    assert_int_equal (trove_tz_week (tz, s_ms ("1969-12-29T00:00:00Z")), 0);
    assert_int_equal (trove_tz_week (tz, s_ms ("1969-12-28T23:59:59Z")), -1);
    trove_tz_destroy (&tz);
}

static void
test_month (void **state)
{
    (void) state;
    trove_tz_t *tz = s_zone ("Europe/Paris");
    char text [16];
    //  2026-03-31T23:30+02 is March; an hour later it is April in Paris
    //  though still March in UTC.
    int64_t month = trove_tz_month (tz, s_ms ("2026-03-31T21:30:00Z"));
    assert_int_equal (month, 2026 * 12 + 2);
    trove_tz_month_text (month, text, sizeof text);
    assert_string_equal (text, "2026-03");
    month = trove_tz_month (tz, s_ms ("2026-03-31T22:30:00Z"));
    assert_int_equal (month, 2026 * 12 + 3);
    trove_tz_month_text (month, text, sizeof text);
    assert_string_equal (text, "2026-04");
    //  New year in Paris, not yet in UTC.
    assert_int_equal (trove_tz_month (tz, s_ms ("2025-12-31T23:30:00Z")), 2026 * 12);
    assert_int_equal (trove_tz_month (tz, s_ms ("1969-12-31T23:30:00Z")), 1970 * 12);
    trove_tz_destroy (&tz);

    tz = s_zone ("America/New_York");
    assert_int_equal (trove_tz_month (tz, s_ms ("1970-01-01T04:59:59Z")), 1969 * 12 + 11);
    assert_int_equal (trove_tz_month (tz, s_ms ("1970-01-01T05:00:00Z")), 1970 * 12);
    trove_tz_destroy (&tz);
}

static void
test_day_and_month_text (void **state)
{
    (void) state;
    static const struct {
        int64_t day;
        const char *text;
    } days [] = {
        {0, "1970-01-01"},        {-1, "1969-12-31"},      {-365, "1969-01-01"},     {19782, "2024-02-29"},
        {11016, "2000-02-29"},    {20541, "2026-03-29"},   {-719162, "0001-01-01"},  {-719528, "0000-01-01"},
        {-719529, "-0001-12-31"}, {2932896, "9999-12-31"}, {2932897, "10000-01-01"},
    };
    char text [32];
    for (size_t i = 0; i < sizeof days / sizeof days [0]; i++) {
        trove_tz_day_text (days [i].day, text, sizeof text);
        assert_string_equal (text, days [i].text);
    }
    static const struct {
        int64_t month;
        const char *text;
    } months [] = {
        {1970 * 12, "1970-01"}, {1969 * 12 + 11, "1969-12"}, {2026 * 12 + 2, "2026-03"}, {0, "0000-01"},
        {-1, "-0001-12"},       {-12, "-0001-01"},
    };
    for (size_t i = 0; i < sizeof months / sizeof months [0]; i++) {
        trove_tz_month_text (months [i].month, text, sizeof text);
        assert_string_equal (text, months [i].text);
    }
    //  Cut to the buffer, always terminated.
    char small [5];
    trove_tz_day_text (0, small, sizeof small);
    assert_string_equal (small, "1970");
    trove_tz_month_text (0, small, sizeof small);
    assert_string_equal (small, "0000");
    trove_tz_day_text (0, NULL, 0);
    //  Extremes neither overflow nor overrun.
    trove_tz_day_text (INT64_MIN, text, sizeof text);
    assert_true (strlen (text) < sizeof text - 1);
    trove_tz_day_text (INT64_MAX, text, sizeof text);
    assert_true (strlen (text) < sizeof text - 1);
    trove_tz_month_text (INT64_MIN, text, sizeof text);
    assert_string_equal (text, "-768614336404564651-05");
    trove_tz_month_text (INT64_MAX, text, sizeof text);
    assert_string_equal (text, "768614336404564650-08");
}

static void
test_extreme_instants (void **state)
{
    (void) state;
    const char *zones [] = {"UTC", "Europe/Paris", "Australia/Sydney", "Asia/Jerusalem", "America/Nuuk"};
    const int64_t instants [] = {INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX};
    for (size_t z = 0; z < sizeof zones / sizeof zones [0]; z++) {
        trove_tz_t *tz = s_zone (zones [z]);
        for (size_t i = 0; i < sizeof instants / sizeof instants [0]; i++) {
            int32_t offset = trove_tz_offset (tz, instants [i]);
            assert_true (offset > -86400 && offset < 86400);
            //  floor ((day + 3) / 7) without relying on what is tested.
            int64_t day = trove_tz_day (tz, instants [i]);
            int64_t week = trove_tz_week (tz, instants [i]);
            assert_true (week * 7 <= day + 3 && day + 3 < week * 7 + 7);
            (void) trove_tz_month (tz, instants [i]);
        }
        trove_tz_destroy (&tz);
    }
}

//  Every zone the tzdata package lists must load, and leap-second ("right/")
//  files too, whose offsets are the same away from transitions.
static void
test_every_listed_zone_loads (void **state)
{
    (void) state;
    char *tab = trove_read_file (ZONEINFO "/zone1970.tab", NULL);
    assert_non_null (tab);
    int loaded = 0;
    char *save = NULL;
    for (char *line = strtok_r (tab, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (line [0] == '#')
            continue;
        //  Third tab-separated field.
        char *name = strchr (line, '\t');
        name = name ? strchr (name + 1, '\t') : NULL;
        assert_non_null (name);
        name++;
        char *end = strchr (name, '\t');
        if (end)
            *end = 0;
        trove_tz_t *tz = s_zone (name);
        int32_t offset = trove_tz_offset (tz, s_ms ("2026-07-01T00:00:00Z"));
        assert_true (offset >= -12 * 3600 && offset <= 14 * 3600);
        trove_tz_destroy (&tz);
        loaded++;
    }
    free (tab);
    assert_true (loaded > 300);

    //  Debian 12 ships right/ in tzdata; later releases in tzdata-legacy.
    //  Its files stop where the leap-second table expires (2026 with
    //  tzdata 2025b) and have no footer, so test before then.
    if (access (ZONEINFO "/right/Europe/Paris", R_OK) == 0) {
        trove_tz_t *tz = s_zone ("right/Europe/Paris");
        assert_int_equal (trove_tz_offset (tz, s_ms ("2025-07-01T00:00:00Z")), 7200);
        assert_int_equal (trove_tz_offset (tz, s_ms ("2025-12-01T00:00:00Z")), 3600);
        trove_tz_destroy (&tz);
    }
}

//  ---------------------------------------------------------------------------
//  TZif files written here

typedef struct {
    int32_t utoff;
    uint8_t isdst;
} s_type_t;

//  A TZif file: version 0 (v1) or '2'..'4', one designation "XXX" shared by
//  every type. The v1 block of a v2+ file carries the same data, as zic
//  -b fat writes it. Returns the length written into out.
static size_t
s_tzif (uint8_t *out, uint8_t version, const int64_t *times, const uint8_t *types_of, size_t ntimes,
        const s_type_t *types, size_t ntypes, const char *footer)
{
    size_t len = 0;
    for (int pass = 0; pass < (version ? 2 : 1); pass++) {
        int time_size = pass ? 8 : 4;
        memcpy (out + len, "TZif", 4);
        out [len + 4] = version;
        memset (out + len + 5, 0, 15);
        uint32_t counts [6] = {0, 0, 0, (uint32_t) ntimes, (uint32_t) ntypes, 4};
        for (int i = 0; i < 6; i++)
            trove_put_be32 (out + len + 20 + 4 * i, counts [i]);
        len += 44;
        for (size_t i = 0; i < ntimes; i++) {
            if (time_size == 8)
                trove_put_be64 (out + len, (uint64_t) times [i]);
            else
                trove_put_be32 (out + len, (uint32_t) times [i]);
            len += time_size;
        }
        if (ntimes)
            memcpy (out + len, types_of, ntimes);
        len += ntimes;
        for (size_t i = 0; i < ntypes; i++) {
            trove_put_be32 (out + len, (uint32_t) types [i].utoff);
            out [len + 4] = types [i].isdst;
            out [len + 5] = 0;
            len += 6;
        }
        memcpy (out + len, "XXX", 4);
        len += 4;
    }
    if (version)
        len += (size_t) sprintf ((char *) out + len, "\n%s\n", footer);
    return len;
}

static const s_type_t s_xst [] = {{0, 0}, {-18000, 0}, {-14400, 1}};  //  LMT, XST, XDT
static const int64_t s_at_0 [] = {0};
static const uint8_t s_to_1 [] = {1};
static const uint8_t s_to_2 [] = {2};

typedef struct {
    const char *name;
    uint8_t version;
    const int64_t *times;
    const uint8_t *types_of;
    size_t ntimes;
    const s_type_t *types;
    size_t ntypes;
    const char *footer;
    struct {
        const char *instant;
        int32_t offset;
    } expect [8];
} s_file_case_t;

static const s_type_t s_v1_types [] = {{0, 0}, {3600, 0}, {7200, 1}};
static const int64_t s_v1_times [] = {0, 1000000000};
static const uint8_t s_v1_to [] = {1, 2};
static const s_type_t s_dst_first [] = {{7200, 1}, {3600, 0}};
static const s_type_t s_ist [] = {{19800, 0}};
static const s_type_t s_minus3 [] = {{-10800, 0}};

static const s_file_case_t s_file_cases [] = {
    //  v1: no footer, the last type holds forever; before the first
    //  transition, the first type.
    {"v1",
     0,
     s_v1_times,
     s_v1_to,
     2,
     s_v1_types,
     3,
     NULL,
     {{"1969-12-31T23:59:59Z", 0},
      {"1970-01-01T00:00:00Z", 3600},
      {"2001-09-09T01:46:39Z", 3600},
      {"2001-09-09T01:46:40Z", 7200},
      {"2300-01-01T00:00:00Z", 7200}}},
    //  Before the first transition: the first standard type, not type 0.
    {"dst-first",
     0,
     s_at_0,
     s_to_1,
     1,
     s_dst_first,
     2,
     NULL,
     {{"1960-01-01T00:00:00Z", 3600}, {"2026-07-01T00:00:00Z", 3600}}},
    //  No transitions: the footer holds for all time.
    {"quoted",
     '2',
     NULL,
     NULL,
     0,
     s_ist,
     1,
     "<+0530>-5:30",
     {{"1960-01-01T00:00:00Z", 19800}, {"2026-07-01T00:00:00Z", 19800}, {"2300-01-01T00:00:00Z", 19800}}},
    {"ist",
     '2',
     NULL,
     NULL,
     0,
     s_ist,
     1,
     "IST-5:30",
     {{"1960-01-01T00:00:00Z", 19800}, {"2300-01-01T00:00:00Z", 19800}}},
    {"minus3",
     '3',
     NULL,
     NULL,
     0,
     s_minus3,
     1,
     "<-03>3",
     {{"1960-01-01T00:00:00Z", -10800}, {"2300-01-01T00:00:00Z", -10800}}},
    //  v3: DST from Saturday 23:00 (-1) to Monday 02:00 (26).
    {"v3-times",
     '3',
     s_at_0,
     s_to_1,
     1,
     s_xst,
     3,
     "XST5XDT,M3.2.0/-1,M11.1.0/26",
     {{"1969-12-31T23:59:59Z", 0},
      {"2026-03-08T03:59:59Z", -18000},
      {"2026-03-08T04:00:00Z", -14400},
      {"2026-11-02T05:59:59Z", -14400},
      {"2026-11-02T06:00:00Z", -18000},
      {"2300-03-11T03:59:59Z", -18000},
      {"2300-03-11T04:00:00Z", -14400}}},
    //  The same rule with no transitions at all.
    {"v3-no-transitions",
     '3',
     NULL,
     NULL,
     0,
     s_xst + 1,
     2,
     "XST5XDT,M3.2.0/-1,M11.1.0/26",
     {{"1960-06-01T12:00:00Z", -14400},
      {"1969-12-31T23:59:59Z", -18000},
      {"2026-03-08T03:59:59Z", -18000},
      {"2026-03-08T04:00:00Z", -14400},
      {"2026-11-02T06:00:00Z", -18000},
      {"1700-07-01T00:00:00Z", -14400}}},
    //  Jn: Feb 29 is never counted, J60 is March 1 even in 2028.
    {"julian",
     '2',
     s_at_0,
     s_to_1,
     1,
     s_xst,
     3,
     "XST5XDT,J60,J300",
     {{"2028-02-29T07:00:00Z", -18000},
      {"2028-03-01T06:59:59Z", -18000},
      {"2028-03-01T07:00:00Z", -14400},
      {"2028-10-27T05:59:59Z", -14400},
      {"2028-10-27T06:00:00Z", -18000}}},
    //  n: zero-based, Feb 29 counted: 59 is Feb 29 in 2028.
    {"zero-based",
     '2',
     s_at_0,
     s_to_1,
     1,
     s_xst,
     3,
     "XST5XDT,59,299",
     {{"2028-02-29T06:59:59Z", -18000},
      {"2028-02-29T07:00:00Z", -14400},
      {"2028-10-26T05:59:59Z", -14400},
      {"2028-10-26T06:00:00Z", -18000},
      {"2027-03-01T07:00:00Z", -14400}}},
    //  DST all year, the way zic writes it: each end is the next start.
    {"all-year",
     '3',
     s_at_0,
     s_to_2,
     1,
     s_xst,
     3,
     "EST5EDT,0/0,J365/25",
     {{"1970-01-01T00:00:00Z", -14400},
      {"2026-01-01T04:59:59Z", -14400},
      {"2026-01-01T05:00:00Z", -14400},
      {"2026-07-01T00:00:00Z", -14400},
      {"2026-12-31T23:59:59Z", -14400},
      {"2300-01-01T05:00:00Z", -14400}}},
    //  No dates: the US rules, as glibc and tzcode default.
    {"default-dates",
     '2',
     s_at_0,
     s_to_1,
     1,
     s_xst,
     3,
     "XST5XDT",
     {{"2026-03-08T06:59:59Z", -18000},
      {"2026-03-08T07:00:00Z", -14400},
      {"2026-11-01T05:59:59Z", -14400},
      {"2026-11-01T06:00:00Z", -18000}}},
    //  Explicit DST offset, v4 header.
    {"v4",
     '4',
     s_at_0,
     s_to_1,
     1,
     s_xst,
     3,
     "XST5:00XDT3:30,M3.2.0,M11.1.0",
     {{"2026-07-01T00:00:00Z", -12600}, {"2026-12-01T00:00:00Z", -18000}}},
};

static void
test_written_files (void **state)
{
    (void) state;
    char dir [64];
    s_tempdir (dir, sizeof dir);
    setenv ("TZDIR", dir, 1);
    uint8_t data [4096];
    for (size_t i = 0; i < sizeof s_file_cases / sizeof s_file_cases [0]; i++) {
        const s_file_case_t *c = &s_file_cases [i];
        size_t len =
            s_tzif (data, c->version, c->times, c->types_of, c->ntimes, c->types, c->ntypes, c->footer);
        s_write_file (dir, c->name, data, len);
        trove_tz_t *tz = s_zone (c->name);
        for (size_t k = 0; k < 8 && c->expect [k].instant; k++) {
            int32_t offset = trove_tz_offset (tz, s_ms (c->expect [k].instant));
            if (offset != c->expect [k].offset)
                fail_msg ("%s at %s: %d, expected %d", c->name, c->expect [k].instant, offset,
                          c->expect [k].offset);
        }
        trove_tz_destroy (&tz);
    }
    unsetenv ("TZDIR");
    s_rmtree (dir);
}

//  ---------------------------------------------------------------------------
//  Errors

static void
test_bad_names (void **state)
{
    (void) state;
    static const struct {
        const char *name;
        const char *expect;
    } cases [] = {
        {"", "invalid time zone name '': empty"},
        {"../etc/passwd", "'.' or '..' component"},
        {"Europe/../../etc/passwd", "'.' or '..' component"},
        {"Europe/..", "'.' or '..' component"},
        {"./UTC", "'.' or '..' component"},
        {"/etc/passwd", "absolute path"},
        {"Europe//Paris", "empty path component"},
        {"Europe/Paris/", "empty path component"},
        {"Europe/Pa ris", "byte 0x20 at 9"},
        {"Europe/Paris\n", "byte 0x0a at 12"},
        {"Europe\\Paris", "byte 0x5c"},
        {"Europe/Paris;ls", "byte 0x3b"},
        {"Europe/Pariss", "unknown time zone 'Europe/Pariss'"},
        {"Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"},
        {"Europe", "unknown time zone 'Europe'"},                  //  a directory
        {"Europe/Paris/x", "unknown time zone 'Europe/Paris/x'"},  //  under a file
        {"zone1970.tab", "no TZif magic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++)
        s_expect_error (cases [i].name, cases [i].expect);
    char name [200];
    memset (name, 'A', sizeof name);
    name [129] = 0;
    s_expect_error (name, "longer than 128 characters");
    name [128] = 0;
    s_expect_error (name, "unknown time zone");
    s_expect_error (NULL, "empty");
    //  Without err_p: NULL, nothing leaked.
    assert_null (trove_tz_new ("Europe/Pariss", NULL));
    assert_null (trove_tz_new ("../x", NULL));
    //  Destroying nothing is fine.
    trove_tz_t *tz = NULL;
    trove_tz_destroy (&tz);
    trove_tz_destroy (NULL);
}

static void
test_utc_needs_no_file (void **state)
{
    (void) state;
    char dir [64];
    s_tempdir (dir, sizeof dir);
    setenv ("TZDIR", dir, 1);
    const char *names [] = {"UTC", "Etc/UTC"};
    for (int i = 0; i < 2; i++) {
        trove_tz_t *tz = s_zone (names [i]);
        assert_string_equal (trove_tz_name (tz), names [i]);
        assert_int_equal (trove_tz_offset (tz, s_ms ("2026-07-01T00:00:00Z")), 0);
        assert_int_equal (trove_tz_offset (tz, s_ms ("1900-07-01T00:00:00Z")), 0);
        assert_int_equal (trove_tz_day (tz, s_ms ("2026-03-29T23:59:59Z")), 20541);
        trove_tz_destroy (&tz);
    }
    //  The directory really is the one used.
    s_expect_error ("Europe/Paris", "unknown time zone 'Europe/Paris'");
    unsetenv ("TZDIR");
    s_rmtree (dir);
}

//  Every proper prefix of real files must be refused as truncated.
static void
test_truncated_files (void **state)
{
    (void) state;
    char dir [64];
    s_tempdir (dir, sizeof dir);
    setenv ("TZDIR", dir, 1);
    const char *zones [] = {ZONEINFO "/Europe/Paris", ZONEINFO "/Asia/Kolkata"};
    for (int z = 0; z < 2; z++) {
        size_t size;
        char *data = trove_read_file (zones [z], &size);
        assert_non_null (data);
        assert_true (size > 100);
        for (size_t cut = 0; cut < size; cut++) {
            s_write_file (dir, "cut", data, cut);
            s_expect_error ("cut", "truncated");
        }
        //  The whole file loads.
        s_write_file (dir, "cut", data, size);
        trove_tz_t *tz = s_zone ("cut");
        trove_tz_destroy (&tz);
        free (data);
    }
    unsetenv ("TZDIR");
    s_rmtree (dir);
}

//  Hand-made damage, each with the message it must produce.
static void
test_corrupt_files (void **state)
{
    (void) state;
    char dir [64];
    s_tempdir (dir, sizeof dir);
    setenv ("TZDIR", dir, 1);
    uint8_t data [4096];
    size_t len;
    //  Where things are in a v2 file written by s_tzif with 1 transition
    //  and 3 types: header 44, v1 block 4 + 1 + 18 + 4 = 27, second header
    //  at 71, its transition at 115, type index at 123, types at 124, the
    //  designations at 142 and the footer at 146.
    const size_t h2 = 71, block2 = h2 + 44;
    const size_t type0 = block2 + 8 + 1;

    s_write_file (dir, "text", "this is not a zone file at all, just some text\n", 47);
    s_expect_error ("text", "not a valid TZif file: no TZif magic");
    s_write_file (dir, "short", "hi\n", 3);
    s_expect_error ("short", "truncated");
    s_write_file (dir, "empty", "", 0);
    s_expect_error ("empty", "truncated (0 bytes)");

    static const struct {
        const char *footer;
        const char *expect;
    } footers [] = {
        {"garbage", "bad TZ string 'garbage'"},
        {"CET", "bad TZ string"},
        {"CE-1", "bad TZ string"},
        {"CET-25", "bad TZ string"},
        {"CET-1CEST,M13.5.0,M10.5.0/3", "bad TZ string"},
        {"CET-1CEST,M3.6.0,M10.5.0/3", "bad TZ string"},
        {"CET-1CEST,M3.5.7,M10.5.0/3", "bad TZ string"},
        {"CET-1CEST,M3.5.0,M10.5.0/168", "bad TZ string"},
        {"CET-1CEST,M3.5.0,M10.5.0/3:60", "bad TZ string"},
        {"CET-1CEST,M3.5.0", "bad TZ string"},
        {"CET-1CEST,M3.5.0,M10.5.0,", "bad TZ string"},
        {"CET-1CEST,J0,J365", "bad TZ string"},
        {"CET-1CEST,366,1", "bad TZ string"},
        {"<+05>-5<", "bad TZ string"},
        {"<+0>-5", "bad TZ string"},
        {"CET-1\tx", "footer is not a TZ string"},
    };
    for (size_t i = 0; i < sizeof footers / sizeof footers [0]; i++) {
        len = s_tzif (data, '2', s_at_0, s_to_1, 1, s_xst, 3, footers [i].footer);
        s_write_file (dir, "bad", data, len);
        s_expect_error ("bad", footers [i].expect);
    }
    //  A footer of 300 characters.
    char long_footer [301];
    memset (long_footer, 'A', 300);
    long_footer [300] = 0;
    len = s_tzif (data, '2', s_at_0, s_to_1, 1, s_xst, 3, long_footer);
    s_write_file (dir, "bad", data, len);
    s_expect_error ("bad", "footer TZ string longer than 255 characters");

    //  Damage to a valid file at a given offset (automatic: the offsets are
    //  variables, not constant expressions).
    const struct {
        size_t offset;  //  from the start of the file
        int size;       //  1 or 4 bytes written big-endian
        uint32_t value;
        const char *expect;
    } damage [] = {
        {4, 1, '5', "unsupported TZif version (byte 0x35)"},
        {4, 1, '1', "unsupported TZif version"},
        {h2, 1, 'X', "no TZif magic"},
        {h2 + 4, 1, 0, "second header is not version 2 or later"},
        {h2 + 36, 4, 0, "bad counts in header (0 types"},
        {h2 + 36, 4, 257, "bad counts"},
        {h2 + 24, 4, 2, "bad counts"},
        {h2 + 20, 4, 2, "bad counts"},
        {h2 + 32, 4, 0xffffffff, "truncated"},
        {h2 + 40, 4, 0xffffffff, "truncated"},
        {h2 + 28, 4, 0xffffffff, "truncated"},
        {32, 4, 0xffffffff, "truncated"},  //  v1 timecnt
        {block2 + 8, 1, 3, "transition 0 has type 3 of 3"},
        {type0, 4, 0x80000000, "bad local time type 0"},
        {type0, 4, 100000, "bad local time type 0"},
        {type0 + 4, 1, 2, "bad local time type 0"},
        {type0 + 5, 1, 4, "bad local time type 0"},
        {type0 + 22, 1, 'Y', "no footer after the data"},
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage [0]; i++) {
        len = s_tzif (data, '2', s_at_0, s_to_1, 1, s_xst, 3, "XST5XDT,M3.2.0,M11.1.0");
        if (damage [i].size == 4)
            trove_put_be32 (data + damage [i].offset, damage [i].value);
        else
            data [damage [i].offset] = (uint8_t) damage [i].value;
        s_write_file (dir, "bad", data, len);
        s_expect_error ("bad", damage [i].expect);
    }
    //  Transitions out of order.
    const int64_t backwards [] = {1000, 1000};
    const uint8_t to [] = {1, 2};
    len = s_tzif (data, '2', backwards, to, 2, s_xst, 3, "XST5XDT,M3.2.0,M11.1.0");
    s_write_file (dir, "bad", data, len);
    s_expect_error ("bad", "transition times not ascending at 1");
    len = s_tzif (data, 0, backwards, to, 2, s_xst, 3, NULL);
    s_write_file (dir, "bad", data, len);
    s_expect_error ("bad", "transition times not ascending at 1");
    unsetenv ("TZDIR");
    s_rmtree (dir);
}

//  Random damage to real files: each must load or be refused, never crash
//  or read out of bounds (run under ASan to mean it).
static void
test_random_damage (void **state)
{
    (void) state;
    char dir [64];
    s_tempdir (dir, sizeof dir);
    setenv ("TZDIR", dir, 1);
    const char *zones [] = {"Europe/Paris", "Australia/Sydney", "Asia/Jerusalem", "America/Nuuk"};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    int refused = 0, loaded = 0;
    for (int z = 0; z < 4; z++) {
        char path [256];
        snprintf (path, sizeof path, ZONEINFO "/%s", zones [z]);
        size_t size;
        uint8_t *original = (uint8_t *) trove_read_file (path, &size);
        assert_non_null (original);
        uint8_t *data = malloc (size);
        assert_non_null (data);
        for (int round = 0; round < 300; round++) {
            memcpy (data, original, size);
            int flips = 1 + round % 4;
            for (int f = 0; f < flips; f++) {
                //  xorshift64: deterministic, so a failure reproduces.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                //  A third in the first header, where counts live, a third
                //  in the footer, a third anywhere.
                size_t at = (size_t) (seed >> 32);
                if (round % 3 == 0)
                    at %= 44;
                else if (round % 3 == 1)
                    at = size - 1 - at % 40;
                else
                    at %= size;
                data [at] = (uint8_t) seed;
            }
            s_write_file (dir, "damaged", data, size);
            char *err = NULL;
            trove_tz_t *tz = trove_tz_new ("damaged", &err);
            if (tz) {
                assert_null (err);
                for (int64_t ms = -4000000000000LL; ms < 10000000000000LL; ms += 86400000LL * 7919) {
                    int32_t offset = trove_tz_offset (tz, ms);
                    assert_true (offset >= -89999 && offset <= 93599);
                    (void) trove_tz_month (tz, ms);
                }
                trove_tz_destroy (&tz);
                loaded++;
            }
            else {
                assert_non_null (err);
                free (err);
                refused++;
            }
        }
        free (data);
        free (original);
    }
    //  The damage is real enough to be refused sometimes, and mild enough
    //  to load sometimes.
    assert_true (refused > 100);
    assert_true (loaded > 10);
    unsetenv ("TZDIR");
    s_rmtree (dir);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_offsets_and_days),
        cmocka_unit_test (test_negative_millis_round_down),
        cmocka_unit_test (test_week_starts_on_monday),
        cmocka_unit_test (test_month),
        cmocka_unit_test (test_day_and_month_text),
        cmocka_unit_test (test_extreme_instants),
        cmocka_unit_test (test_every_listed_zone_loads),
        cmocka_unit_test (test_written_files),
        cmocka_unit_test (test_bad_names),
        cmocka_unit_test (test_utc_needs_no_file),
        cmocka_unit_test (test_truncated_files),
        cmocka_unit_test (test_corrupt_files),
        cmocka_unit_test (test_random_damage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
