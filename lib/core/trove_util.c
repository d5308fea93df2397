/*  trove_util - clocks, logging, UTF-8, hex, big-endian, files. */
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char s_process [64] = "trove";
static bool s_debug = false;

int64_t
trove_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
trove_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
trove_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
trove_log_init (const char *process)
{
    snprintf (s_process, sizeof s_process, "%s", process);
    s_debug = getenv ("TROVE_DEBUG") != NULL;
}

void
trove_log (char level, const char *fmt, ...)
{
    if (level == 'D' && !s_debug)
        return;
    char stamp [40];
    trove_format_rfc3339 (trove_now_ms (), stamp, sizeof stamp);
    char line [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (line, sizeof line, fmt, args);
    va_end (args);
    const char *name = level == 'E' ? "ERROR" : level == 'W' ? "WARN" : level == 'D' ? "DEBUG" : "INFO";
    //  One write per line so lines from several processes never interleave.
    fprintf (stderr, "%s %s %s[%d]: %s\n", stamp, name, s_process, (int) getpid (), line);
}

void
trove_log_limited (trove_lograte_t *rate, int64_t every_us, char level, const char *fmt, ...)
{
    int64_t now = trove_mono_us ();
    if (rate->logged_us && now - rate->logged_us < every_us) {
        rate->unlogged++;
        return;
    }
    char line [900];
    va_list args;
    va_start (args, fmt);
    vsnprintf (line, sizeof line, fmt, args);
    va_end (args);
    if (rate->unlogged)
        trove_log (level, "%s (and %llu more like it since the last such line)", line,
                   (unsigned long long) rate->unlogged);
    else
        trove_log (level, "%s", line);
    rate->logged_us = now;
    rate->unlogged = 0;
}

bool
trove_utf8_valid (const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *) s;
    size_t i = 0;
    while (i < len) {
        uint8_t c = p [i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        }
        else
            return false;
        if (i + n >= len)
            return false;  //  truncated sequence
        for (size_t k = 1; k <= n; k++) {
            if ((p [i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p [i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

void
trove_hex (const uint8_t *bytes, size_t len, char *out)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out [2 * i] = digits [bytes [i] >> 4];
        out [2 * i + 1] = digits [bytes [i] & 15];
    }
    out [2 * len] = 0;
}

void
trove_put_be64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p [i] = (uint8_t) v;
        v >>= 8;
    }
}

uint64_t
trove_get_be64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p [i];
    return v;
}

void
trove_put_be32 (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24);
    p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8);
    p [3] = (uint8_t) v;
}

uint32_t
trove_get_be32 (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16) | ((uint32_t) p [2] << 8) | p [3];
}

//  mkdir, where "already exists" is success only if it is a directory.
static int
s_mkdir_one (const char *path, unsigned mode)
{
    if (mkdir (path, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    struct stat st;
    if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
        return 0;
    errno = ENOTDIR;
    return -1;
}

int
trove_mkdir_p (const char *path, unsigned mode)
{
    char buf [4096];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (s_mkdir_one (buf, mode))
                return -1;
            *p = '/';
        }
    }
    return s_mkdir_one (buf, mode);
}

int
trove_parse_instant (const char *text, int64_t *ms_p)
{
    size_t n = text ? strspn (text, "0123456789") : 0;
    if (n > 0 && n <= 15 && text [n] == 0) {
        *ms_p = strtoll (text, NULL, 10);
        return *ms_p > 0 ? 0 : -1;
    }
    int64_t ms;
    if (!text || trove_parse_rfc3339 (text, &ms) || ms <= 0)
        return -1;
    *ms_p = ms;
    return 0;
}

static int
s_fsync_one (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

int
trove_fsync_dir (const char *path)
{
    char parent [4096];
    if (snprintf (parent, sizeof parent, "%s", path) >= (int) sizeof parent) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t n = strlen (parent);
    while (n > 1 && parent [n - 1] == '/')
        parent [--n] = 0;
    char *slash = strrchr (parent, '/');
    if (!slash)
        snprintf (parent, sizeof parent, ".");
    else if (slash == parent)
        parent [1] = 0;
    else
        *slash = 0;
    return s_fsync_one (path) || s_fsync_one (parent) ? -1 : 0;
}

char *
trove_strdupf (const char *fmt, ...)
{
    char buf [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (buf, sizeof buf, fmt, args);
    va_end (args);
    return strdup (buf);
}

char *
trove_read_file (const char *path, size_t *size_p)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap);
    while (buf) {
        size_t n = fread (buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len - 1 == 0) {
            char *bigger = realloc (buf, cap * 2);
            if (!bigger) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    bool failed = ferror (f);
    fclose (f);
    if (!buf || failed) {
        free (buf);
        return NULL;
    }
    buf [len] = 0;
    if (size_p)
        *size_p = len;
    return buf;
}

static int
s_digits (const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p) [i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int64_t
s_days_from_civil (int y, int m, int d)
{
    //  Howard Hinnant's algorithm: proleptic Gregorian date to days since 1970-01-01.
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int
trove_parse_rfc3339 (const char *text, int64_t *ms_p)
{
    const char *p = text;
    int y, mo, d, h, mi, s;
    if (s_digits (&p, 4, &y) || *p++ != '-' || s_digits (&p, 2, &mo) || *p++ != '-' || s_digits (&p, 2, &d)
        || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (s_digits (&p, 2, &h) || *p++ != ':' || s_digits (&p, 2, &mi) || *p++ != ':' || s_digits (&p, 2, &s))
        return -1;
    static const int mdays [] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays [mo - 1] || h > 23 || mi > 59 || s > 60)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh, om;
        if (s_digits (&p, 2, &oh) || *p++ != ':' || s_digits (&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    }
    else
        return -1;
    if (*p)
        return -1;
    if (s == 60)
        s = 59;  //  a leap second is folded into the second before it
    int64_t secs = s_days_from_civil (y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
    *ms_p = secs * 1000 + ms;
    return 0;
}

void
trove_format_rfc3339 (int64_t ms, char *out, size_t size)
{
    //  Floor division without overflow, even at INT64_MIN.
    int64_t secs64 = ms / 1000;
    int frac = (int) (ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs64--;
    }
    time_t secs = (time_t) secs64;
    struct tm tm;
    if (!gmtime_r (&secs, &tm)) {
        snprintf (out, size, "(out of range: %lld ms)", (long long) ms);
        return;
    }
    snprintf (out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
              tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}
