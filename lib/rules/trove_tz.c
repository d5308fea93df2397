/*  trove_tz - IANA time zones from TZif files (RFC 8536, RFC 9636). */
#include "trove_tz.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NAME_MAX 128
//  Real TZif files are a few KiB: a bigger file is not one, and the cap
//  bounds what a bad file can make us allocate.
#define S_FILE_MAX (1024 * 1024)
//  Footer rules are expanded into the table for these years so that the hot
//  path is a binary search; other instants evaluate the rule per call.
#define S_EXPAND_FIRST 1800
#define S_EXPAND_LAST 2200
//  RFC 8536 3.2: "utoff SHOULD be in the range -89999 through 93599".
#define S_UTOFF_MIN (-89999)
#define S_UTOFF_MAX 93599
//  A type index is one byte, so more types could never be used.
#define S_TYPES_MAX 256
//  Real footers are under 60 characters.
#define S_FOOTER_MAX 255

//  Where a POSIX TZ rule switches: a day of the year and a local time.
typedef struct {
    char kind;     //  'J' (Jn: 1-365, Feb 29 never counted), 'N' (n: 0-365), 'M' (Mm.w.d)
    int month;     //  M: 1-12
    int week;      //  M: 1-5, 5 meaning the last one
    int wday;      //  M: 0-6, 0 = Sunday
    int nday;      //  J and N
    int32_t time;  //  local seconds after midnight; v3 allows -167h to 167h
} s_rule_date_t;

//  The TZ string of the footer, in force after the last transition.
typedef struct {
    int32_t std_off;      //  seconds east of UTC
    int32_t dst_off;      //  seconds east of UTC
    bool has_dst;         //  false: std_off all year
    s_rule_date_t start;  //  DST starts (local standard time)
    s_rule_date_t end;    //  DST ends (local daylight time)
} s_rule_t;

struct _trove_tz_t {
    char *name;        //  as given to trove_tz_new
    int64_t *times;    //  transition instants (s), strictly ascending: the
                       //  file's, then the rule's for S_EXPAND_* years
    int32_t *offsets;  //  UT offset from times [i] until times [i + 1]
    size_t count;      //  entries of times and offsets
    int32_t initial;   //  UT offset before times [0]
    //  The rule holds from rule_from on, and the table answers for it only
    //  in [gen_lo, gen_hi): outside, the rule is evaluated. Without a rule,
    //  rule_from is INT64_MAX, which no instant in ms can reach.
    int64_t rule_from;
    int64_t gen_lo;
    int64_t gen_hi;
    s_rule_t rule;
};

//  The TZif file being parsed: every read goes through s_take.
typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    char why [200];  //  what is wrong, when parsing fails
} s_reader_t;

//  One TZif header.
typedef struct {
    int version;  //  1 to 4
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} s_header_t;


//  ---------------------------------------------------------------------------
//  Calendar arithmetic; int64 throughout so no instant in ms can overflow it.

static int64_t
s_floor_div (int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

//  Not a - floor (a / b) * b: that product can overflow near INT64_MIN.
static int64_t
s_floor_mod (int64_t a, int64_t b)
{
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static bool
s_is_leap (int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
s_month_days (int64_t year, int month)
{
    static const int days [] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return days [month - 1] + (month == 2 && s_is_leap (year));
}

//  Howard Hinnant's algorithms (proleptic Gregorian), 400-year eras.
static int64_t
s_days_from_civil (int64_t year, int month, int mday)
{
    year -= month <= 2;
    int64_t era = s_floor_div (year, 400);
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + mday - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
s_civil_from_days (int64_t day, int64_t *year_p, int *month_p, int *mday_p)
{
    //  The usual "day + 719468" would overflow near INT64_MAX, and callers
    //  of trove_tz_day_text may pass anything.
    int64_t era = s_floor_div (day, 146097);
    int64_t doe = s_floor_mod (day, 146097) + 719468;
    era += doe / 146097;
    doe %= 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int month = (int) (mp < 10 ? mp + 3 : mp - 9);
    *year_p = yoe + era * 400 + (month <= 2);
    *month_p = month;
    *mday_p = (int) (doy - (153 * mp + 2) / 5 + 1);
}

static int64_t
s_year_of_day (int64_t day)
{
    int64_t year;
    int month, mday;
    s_civil_from_days (day, &year, &month, &mday);
    return year;
}


//  ---------------------------------------------------------------------------
//  The footer rule

static int64_t
s_rule_day (const s_rule_date_t *date, int64_t year)
{
    if (date->kind == 'M') {
        int64_t first = s_days_from_civil (year, date->month, 1);
        //  1970-01-01 (day 0) was a Thursday.
        int64_t wday = s_floor_mod (first + 4, 7);
        int64_t day = first + s_floor_mod (date->wday - wday, 7) + (date->week - 1) * 7;
        if (day >= first + s_month_days (year, date->month))
            day -= 7;
        return day;
    }
    int64_t jan1 = s_days_from_civil (year, 1, 1);
    if (date->kind == 'J')
        return jan1 + date->nday - 1 + (date->nday >= 60 && s_is_leap (year));
    return jan1 + date->nday;
}

//  The instants DST starts and ends in a year. Each rule time is local time
//  of the offset in force just before the switch.
static int64_t
s_rule_start (const s_rule_t *rule, int64_t year)
{
    return s_rule_day (&rule->start, year) * 86400 + rule->start.time - rule->std_off;
}

static int64_t
s_rule_end (const s_rule_t *rule, int64_t year)
{
    return s_rule_day (&rule->end, year) * 86400 + rule->end.time - rule->dst_off;
}

//  The offset at t: the latest switch at or before t wins. Three years are
//  looked at because a southern rule (DST over the new year) or v3 times
//  beyond 24h put the relevant switch in the year before or after.
//  Ties go to the later year, then to the end: the order s_load_rule
//  generates the table in, so both paths agree.
static int32_t
s_rule_offset (const s_rule_t *rule, int64_t t)
{
    if (!rule->has_dst)
        return rule->std_off;
    int64_t year = s_year_of_day (s_floor_div (t + rule->std_off, 86400));
    int64_t best = INT64_MIN;
    int32_t offset = rule->std_off;
    for (int64_t y = year - 1; y <= year + 1; y++) {
        int64_t start = s_rule_start (rule, y);
        int64_t end = s_rule_end (rule, y);
        if (start <= t && start >= best) {
            best = start;
            offset = rule->dst_off;
        }
        if (end <= t && end >= best) {
            best = end;
            offset = rule->std_off;
        }
    }
    return offset;
}

static bool
s_is_alpha (char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

//  A zone abbreviation: three or more letters, or <...> of letters, digits,
//  '+' and '-' ("<+0530>"). Returns the end, or NULL.
static const char *
s_parse_abbr (const char *p)
{
    const char *start;
    if (*p == '<') {
        start = ++p;
        while (s_is_alpha (*p) || s_is_digit (*p) || *p == '+' || *p == '-')
            p++;
        if (*p != '>' || p - start < 3)
            return NULL;
        return p + 1;
    }
    start = p;
    while (s_is_alpha (*p))
        p++;
    return p - start >= 3 ? p : NULL;
}

//  An unsigned number of at most max_digits digits.
static const char *
s_parse_number (const char *p, int max_digits, int *value_p)
{
    int value = 0, digits = 0;
    while (s_is_digit (*p) && digits < max_digits) {
        value = value * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || s_is_digit (*p))
        return NULL;
    *value_p = value;
    return p;
}

//  [+-]hh[:mm[:ss]] in seconds, hours at most max_hours.
static const char *
s_parse_hms (const char *p, int max_hours, int32_t *secs_p)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    int hours, minutes = 0, seconds = 0;
    if (!(p = s_parse_number (p, 3, &hours)) || hours > max_hours)
        return NULL;
    if (*p == ':') {
        if (!(p = s_parse_number (p + 1, 2, &minutes)) || minutes > 59)
            return NULL;
        if (*p == ':' && (!(p = s_parse_number (p + 1, 2, &seconds)) || seconds > 59))
            return NULL;
    }
    *secs_p = sign * (hours * 3600 + minutes * 60 + seconds);
    return p;
}

//  Jn, n or Mm.w.d, then an optional /time (02:00 by default).
static const char *
s_parse_rule_date (const char *p, s_rule_date_t *date)
{
    memset (date, 0, sizeof *date);
    if (*p == 'M') {
        date->kind = 'M';
        if (!(p = s_parse_number (p + 1, 2, &date->month)) || date->month < 1 || date->month > 12
            || *p != '.')
            return NULL;
        if (!(p = s_parse_number (p + 1, 1, &date->week)) || date->week < 1 || date->week > 5 || *p != '.')
            return NULL;
        if (!(p = s_parse_number (p + 1, 1, &date->wday)) || date->wday > 6)
            return NULL;
    }
    else if (*p == 'J') {
        date->kind = 'J';
        if (!(p = s_parse_number (p + 1, 3, &date->nday)) || date->nday < 1 || date->nday > 365)
            return NULL;
    }
    else {
        date->kind = 'N';
        if (!(p = s_parse_number (p, 3, &date->nday)) || date->nday > 365)
            return NULL;
    }
    date->time = 7200;
    if (*p == '/')
        p = s_parse_hms (p + 1, 167, &date->time);
    return p;
}

//  A POSIX TZ string with the v3 extensions. POSIX offsets count west of
//  UTC, hence the negations. Returns 0 or -1.
static int
s_parse_rule (const char *text, s_rule_t *rule)
{
    memset (rule, 0, sizeof *rule);
    int32_t secs;
    const char *p = s_parse_abbr (text);
    if (!p || !(p = s_parse_hms (p, 24, &secs)))
        return -1;
    rule->std_off = -secs;
    if (*p == 0)
        return 0;
    if (!(p = s_parse_abbr (p)))
        return -1;
    rule->has_dst = true;
    rule->dst_off = rule->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = s_parse_hms (p, 24, &secs)))
            return -1;
        rule->dst_off = -secs;
    }
    //  POSIX leaves the dates to the implementation when absent; glibc and
    //  tzcode use the US ones.
    const char *dates = *p ? p : ",M3.2.0,M11.1.0";
    if (*dates != ',' || !(dates = s_parse_rule_date (dates + 1, &rule->start)) || *dates != ','
        || !(dates = s_parse_rule_date (dates + 1, &rule->end)) || *dates != 0)
        return -1;
    return 0;
}


//  ---------------------------------------------------------------------------
//  TZif parsing. Every count comes from the file, so every read is checked.

static int
s_truncated (s_reader_t *reader)
{
    snprintf (reader->why, sizeof reader->why, "truncated (%zu bytes)", reader->size);
    return -1;
}

static const uint8_t *
s_take (s_reader_t *reader, uint64_t bytes)
{
    if (bytes > reader->size - reader->pos) {
        s_truncated (reader);
        return NULL;
    }
    const uint8_t *p = reader->data + reader->pos;
    reader->pos += (size_t) bytes;
    return p;
}

static int
s_read_header (s_reader_t *reader, s_header_t *header)
{
    //  The magic first, so that a short file of something else is not
    //  called a truncated TZif file.
    if (reader->size - reader->pos >= 4 && memcmp (reader->data + reader->pos, "TZif", 4) != 0) {
        snprintf (reader->why, sizeof reader->why, "no TZif magic");
        return -1;
    }
    const uint8_t *p = s_take (reader, 44);
    if (!p)
        return -1;
    if (p [4] == 0)
        header->version = 1;
    else if (p [4] >= '2' && p [4] <= '4')
        header->version = p [4] - '0';
    else {
        snprintf (reader->why, sizeof reader->why, "unsupported TZif version (byte 0x%02x)", p [4]);
        return -1;
    }
    header->isutcnt = trove_get_be32 (p + 20);
    header->isstdcnt = trove_get_be32 (p + 24);
    header->leapcnt = trove_get_be32 (p + 28);
    header->timecnt = trove_get_be32 (p + 32);
    header->typecnt = trove_get_be32 (p + 36);
    header->charcnt = trove_get_be32 (p + 40);
    return 0;
}

//  Bytes of a data block with the given time size (4 for v1, 8 for v2+).
//  Counts are below 2^32, so this cannot overflow 64 bits.
static uint64_t
s_block_size (const s_header_t *header, int time_size)
{
    return (uint64_t) header->timecnt * (time_size + 1) + (uint64_t) header->typecnt * 6 + header->charcnt
         + (uint64_t) header->leapcnt * (time_size + 4) + header->isstdcnt + header->isutcnt;
}

//  Reads the transitions and types into self.
static int
s_read_block (s_reader_t *reader, const s_header_t *header, int time_size, trove_tz_t *self)
{
    if (header->typecnt == 0 || header->typecnt > S_TYPES_MAX
        || (header->isstdcnt != 0 && header->isstdcnt != header->typecnt)
        || (header->isutcnt != 0 && header->isutcnt != header->typecnt)) {
        snprintf (reader->why, sizeof reader->why, "bad counts in header (%u types, %u std, %u ut)",
                  header->typecnt, header->isstdcnt, header->isutcnt);
        return -1;
    }
    //  Check the whole block first so that we allocate for no more
    //  transitions than the file holds.
    if (s_block_size (header, time_size) > reader->size - reader->pos)
        return s_truncated (reader);

    const uint8_t *times = s_take (reader, (uint64_t) header->timecnt * time_size);
    const uint8_t *indexes = s_take (reader, header->timecnt);
    const uint8_t *types = s_take (reader, (uint64_t) header->typecnt * 6);
    s_take (reader, header->charcnt);
    s_take (reader, (uint64_t) header->leapcnt * (time_size + 4));
    s_take (reader, header->isstdcnt);
    s_take (reader, header->isutcnt);

    int32_t utoffs [S_TYPES_MAX];
    int first_std = -1;
    for (uint32_t i = 0; i < header->typecnt; i++) {
        const uint8_t *type = types + 6 * i;
        int32_t utoff = (int32_t) trove_get_be32 (type);
        if (utoff < S_UTOFF_MIN || utoff > S_UTOFF_MAX || type [4] > 1 || type [5] >= header->charcnt) {
            snprintf (reader->why, sizeof reader->why, "bad local time type %u", i);
            return -1;
        }
        utoffs [i] = utoff;
        if (type [4] == 0 && first_std < 0)
            first_std = (int) i;
    }
    //  RFC 8536 says type 0; tzcode and glibc prefer the first standard
    //  type, which is the same for every zone zic writes.
    self->initial = utoffs [first_std >= 0 ? first_std : 0];

    //  Room for the rule's transitions too (two a year).
    size_t room = header->timecnt + 2 * (S_EXPAND_LAST - S_EXPAND_FIRST + 2);
    self->times = malloc (room * sizeof *self->times);
    self->offsets = malloc (room * sizeof *self->offsets);
    if (!self->times || !self->offsets) {
        snprintf (reader->why, sizeof reader->why, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < header->timecnt; i++) {
        const uint8_t *p = times + (size_t) i * time_size;
        int64_t t = time_size == 4 ? (int64_t) (int32_t) trove_get_be32 (p) : (int64_t) trove_get_be64 (p);
        if (i > 0 && t <= self->times [i - 1]) {
            snprintf (reader->why, sizeof reader->why, "transition times not ascending at %u", i);
            return -1;
        }
        if (indexes [i] >= header->typecnt) {
            snprintf (reader->why, sizeof reader->why, "transition %u has type %u of %u", i, indexes [i],
                      header->typecnt);
            return -1;
        }
        self->times [i] = t;
        self->offsets [i] = utoffs [indexes [i]];
    }
    self->count = header->timecnt;
    return 0;
}

//  The v2+ footer: "\n" TZ string "\n". Empty means no rule.
static int
s_read_footer (s_reader_t *reader, char *text, size_t size)
{
    const uint8_t *p = s_take (reader, 1);
    if (!p)
        return -1;
    if (*p != '\n') {
        snprintf (reader->why, sizeof reader->why, "no footer after the data");
        return -1;
    }
    size_t len = 0;
    while (true) {
        if (!(p = s_take (reader, 1)))
            return -1;
        if (*p == '\n')
            break;
        if (*p < 0x20 || *p > 0x7e) {
            snprintf (reader->why, sizeof reader->why, "footer is not a TZ string");
            return -1;
        }
        if (len + 1 >= size) {
            snprintf (reader->why, sizeof reader->why, "footer TZ string longer than %zu characters",
                      size - 1);
            return -1;
        }
        text [len++] = (char) *p;
    }
    text [len] = 0;
    return 0;
}

//  The footer rule holds after the last transition of the file. Its
//  transitions for S_EXPAND_* years go into the table; the table's last
//  entry then bounds where the rule must be evaluated per call.
static void
s_load_rule (trove_tz_t *self)
{
    size_t ntimes = self->count;
    self->rule_from = ntimes ? self->times [ntimes - 1] : INT64_MIN;
    self->gen_lo = self->gen_hi = INT64_MAX;
    if (!self->rule.has_dst)
        return;
    int64_t first = ntimes ? s_year_of_day (s_floor_div (self->rule_from, 86400)) - 1 : S_EXPAND_FIRST;
    if (first < S_EXPAND_FIRST)
        first = S_EXPAND_FIRST;
    for (int64_t year = first; year <= S_EXPAND_LAST; year++) {
        int64_t start = s_rule_start (&self->rule, year);
        int64_t end = s_rule_end (&self->rule, year);
        int64_t at [2] = {start, end};
        int32_t offset [2] = {self->rule.dst_off, self->rule.std_off};
        //  Ends before starts in the south; on a tie the end goes last,
        //  as in s_rule_offset.
        int order = start <= end ? 0 : 1;
        for (int k = 0; k < 2; k++) {
            int i = order ^ k;
            if (at [i] <= self->rule_from)
                continue;
            //  Only a v3 time beyond a day can make the years overlap;
            //  stop there and let the per-call rule answer from then on.
            if (self->count > ntimes && at [i] < self->times [self->count - 1])
                goto done;
            //  A later switch at the same instant replaces the earlier one
            //  (DST all year: one year's end is the next one's start).
            if (self->count > ntimes && at [i] == self->times [self->count - 1])
                self->count--;
            if (self->count > 0 && self->offsets [self->count - 1] == offset [i])
                continue;
            self->times [self->count] = at [i];
            self->offsets [self->count] = offset [i];
            self->count++;
        }
    }
done:
    if (self->count > ntimes) {
        self->gen_lo = self->times [ntimes];
        self->gen_hi = self->times [self->count - 1];
    }
}

//  Parses a whole TZif file into self. On error, the reason is in reader->why.
static int
s_parse (s_reader_t *reader, trove_tz_t *self)
{
    s_header_t header;
    if (s_read_header (reader, &header))
        return -1;
    if (header.version >= 2) {
        //  The v1 block only serves old readers: skip it for the 64-bit one.
        if (!s_take (reader, s_block_size (&header, 4)) || s_read_header (reader, &header))
            return -1;
        if (header.version < 2) {
            snprintf (reader->why, sizeof reader->why, "second header is not version 2 or later");
            return -1;
        }
    }
    int time_size = header.version >= 2 ? 8 : 4;
    if (s_read_block (reader, &header, time_size, self))
        return -1;
    self->rule_from = self->gen_lo = self->gen_hi = INT64_MAX;
    if (header.version >= 2) {
        char text [S_FOOTER_MAX + 1];
        if (s_read_footer (reader, text, sizeof text))
            return -1;
        if (*text) {
            if (s_parse_rule (text, &self->rule)) {
                snprintf (reader->why, sizeof reader->why, "bad TZ string '%.100s' in the footer", text);
                return -1;
            }
            s_load_rule (self);
        }
    }
    return 0;
}


//  ---------------------------------------------------------------------------
//  Loading

//  Names end up in a path, so nothing may climb out of the zone directory.
//  Returns 0, or -1 with *err_p set.
static int
s_check_name (const char *name, char **err_p)
{
    size_t len = strlen (name);
    const char *problem = NULL;
    if (len == 0)
        problem = "empty";
    else if (len > S_NAME_MAX) {
        *err_p =
            trove_strdupf ("invalid time zone name '%.40s...': longer than %d characters", name, S_NAME_MAX);
        return -1;
    }
    else if (name [0] == '/')
        problem = "absolute path";
    for (size_t i = 0; i < len && !problem; i++) {
        char c = name [i];
        if (!(s_is_alpha (c) || s_is_digit (c) || c == '/' || c == '_' || c == '+' || c == '-' || c == '.')) {
            //  Not echoed: it could hold bytes that garble a log line.
            *err_p = trove_strdupf (
                "invalid time zone name: byte 0x%02x at %zu is not one of A-Z a-z 0-9 / _ + - .",
                (unsigned) (uint8_t) c, i);
            return -1;
        }
    }
    for (const char *component = name; !problem;) {
        const char *slash = strchr (component, '/');
        size_t clen = slash ? (size_t) (slash - component) : strlen (component);
        if (clen == 0)
            problem = "empty path component";
        else if (clen <= 2 && strncmp (component, "..", clen) == 0)
            problem = "'.' or '..' component";
        else if (!slash)
            break;
        else
            component = slash + 1;
    }
    if (problem) {
        *err_p = trove_strdupf ("invalid time zone name '%s': %s", name, problem);
        return -1;
    }
    return 0;
}

//  Reads path into a buffer the caller frees; NULL with *err_p on error.
static uint8_t *
s_read_zone_file (const char *name, const char *path, size_t *size_p, char **err_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            *err_p = trove_strdupf ("unknown time zone '%s' (no file %s)", name, path);
        else
            *err_p = trove_strdupf ("time zone '%s': cannot open %s: %s", name, path, strerror (errno));
        return NULL;
    }
    struct stat st;
    uint8_t *data = NULL;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode))
        *err_p = trove_strdupf ("unknown time zone '%s' (%s is not a zone file)", name, path);
    else if (st.st_size > S_FILE_MAX)
        *err_p = trove_strdupf ("time zone '%s': %s is too big for a TZif file (%lld bytes)", name, path,
                                (long long) st.st_size);
    else if (!(data = malloc (st.st_size > 0 ? (size_t) st.st_size : 1)))
        *err_p = NULL;
    else {
        //  If the file changes under us, parsing what we got is still safe.
        size_t size = 0;
        while (size < (size_t) st.st_size) {
            ssize_t n = read (fd, data + size, (size_t) st.st_size - size);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                *err_p = trove_strdupf ("time zone '%s': cannot read %s: %s", name, path, strerror (errno));
                free (data);
                data = NULL;
                break;
            }
            if (n == 0)
                break;
            size += (size_t) n;
        }
        *size_p = size;
    }
    close (fd);
    return data;
}

trove_tz_t *
trove_tz_new (const char *name, char **err_p)
{
    char *err = NULL;
    trove_tz_t *self = NULL;
    if (!name)
        name = "";
    if (s_check_name (name, &err) == 0 && (self = calloc (1, sizeof *self)) && (self->name = strdup (name))) {
        self->rule_from = self->gen_lo = self->gen_hi = INT64_MAX;
        //  UTC must work on a host without tzdata: it needs no file.
        if (strcmp (name, "UTC") == 0 || strcmp (name, "Etc/UTC") == 0)
            return self;

        const char *dir = getenv ("TZDIR");
        if (!dir || !*dir)
            dir = "/usr/share/zoneinfo";
        char path [4096];
        size_t size = 0;
        uint8_t *data;
        if (snprintf (path, sizeof path, "%s/%s", dir, name) >= (int) sizeof path)
            err = trove_strdupf ("time zone '%s': path too long", name);
        else if ((data = s_read_zone_file (name, path, &size, &err))) {
            s_reader_t reader = {.data = data, .size = size};
            int rc = s_parse (&reader, self);
            free (data);
            if (rc == 0)
                return self;
            err = trove_strdupf ("time zone '%s': %s is not a valid TZif file: %s", name, path, reader.why);
        }
    }
    //  err stays NULL when we ran out of memory.
    trove_tz_destroy (&self);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

void
trove_tz_destroy (trove_tz_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    trove_tz_t *self = *self_p;
    free (self->name);
    free (self->times);
    free (self->offsets);
    free (self);
    *self_p = NULL;
}

const char *
trove_tz_name (const trove_tz_t *self)
{
    return self->name;
}


//  ---------------------------------------------------------------------------
//  Lookups: the hot path.

static int32_t
s_offset_at (const trove_tz_t *self, int64_t t)
{
    if (t >= self->rule_from && (t < self->gen_lo || t >= self->gen_hi))
        return s_rule_offset (&self->rule, t);
    const int64_t *base = self->times;
    size_t n = self->count;
    if (n == 0 || t < base [0])
        return self->initial;
    //  Last entry <= t; the loop has no unpredictable branch to stall on.
    while (n > 1) {
        size_t half = n / 2;
        base = base [half] <= t ? base + half : base;
        n -= half;
    }
    return self->offsets [base - self->times];
}

//  Local seconds since the epoch of the instant ts_ms.
static int64_t
s_local (const trove_tz_t *self, int64_t ts_ms)
{
    int64_t t = s_floor_div (ts_ms, 1000);
    return t + s_offset_at (self, t);
}

int32_t
trove_tz_offset (const trove_tz_t *self, int64_t ts_ms)
{
    return s_offset_at (self, s_floor_div (ts_ms, 1000));
}

int64_t
trove_tz_day (const trove_tz_t *self, int64_t ts_ms)
{
    return s_floor_div (s_local (self, ts_ms), 86400);
}

int64_t
trove_tz_week (const trove_tz_t *self, int64_t ts_ms)
{
    return s_floor_div (trove_tz_day (self, ts_ms) + 3, 7);
}

int64_t
trove_tz_month (const trove_tz_t *self, int64_t ts_ms)
{
    int64_t year;
    int month, mday;
    s_civil_from_days (trove_tz_day (self, ts_ms), &year, &month, &mday);
    return year * 12 + month - 1;
}

//  Years before 1 as ISO 8601 writes them: "-0001" is 2 BC. The magnitude
//  is unsigned so that even INT64_MIN has one.
static int
s_year_text (int64_t year, char *buf, size_t size)
{
    uint64_t magnitude = year < 0 ? 0 - (uint64_t) year : (uint64_t) year;
    return snprintf (buf, size, "%s%04llu", year < 0 ? "-" : "", (unsigned long long) magnitude);
}

void
trove_tz_day_text (int64_t day, char *buf, size_t size)
{
    int64_t year;
    int month, mday;
    s_civil_from_days (day, &year, &month, &mday);
    char text [32];
    s_year_text (year, text, sizeof text);
    snprintf (buf, size, "%s-%02d-%02d", text, month, mday);
}

void
trove_tz_month_text (int64_t month, char *buf, size_t size)
{
    char text [32];
    s_year_text (s_floor_div (month, 12), text, sizeof text);
    snprintf (buf, size, "%s-%02d", text, (int) s_floor_mod (month, 12) + 1);
}
