/*  trove_tz - IANA time zones, for the local days, weeks and months that
    caps and streaks count in ("one check-in per day in Europe/Paris").

    A zone is loaded once from the TZif file /usr/share/zoneinfo/<name>
    ($TZDIR overrides the directory, as in glibc), and is read-only after
    that: any number of threads may query one zone at the same time. We
    never touch TZ, tzset or localtime, which are process-wide and not
    thread-safe. "UTC" and "Etc/UTC" need no file.

    TZif versions 1 to 4 are read (the 64-bit block when there is one);
    instants after the file's last transition follow the POSIX TZ rule in
    its footer ("CET-1CEST,M3.5.0,M10.5.0/3"), so dates after 2037 are
    right too. Leap seconds ("right/" zones) are ignored.

    Lookups are a binary search over the transitions, with no allocation
    and no lock: they run for every event. Day, week and month numbers are
    plain integers so that they compare and hash cheaply:

        day    days since 1970-01-01 of the local date (1969-12-31 is -1)
        week   floor ((day + 3) / 7): weeks start on Monday
        month  year * 12 + (month - 1) of the local date */
#ifndef TROVE_TZ_H_INCLUDED
#define TROVE_TZ_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_tz_t trove_tz_t;

//  Load a zone by IANA name ("Europe/Paris"). Returns NULL on error and, if
//  err_p is not NULL, sets *err_p to a message the caller frees (NULL when
//  out of memory), such as "unknown time zone 'Europe/Pariss' (...)".
trove_tz_t *trove_tz_new (const char *name, char **err_p);

//  Destroy a zone and set *self_p to NULL. Does nothing if either is NULL.
void trove_tz_destroy (trove_tz_t **self_p);

//  The name the zone was loaded with.
const char *trove_tz_name (const trove_tz_t *self);

//  Seconds east of UTC in effect at the instant ts_ms (ms since the epoch).
int32_t trove_tz_offset (const trove_tz_t *self, int64_t ts_ms);

//  Local day, week and month numbers of the instant ts_ms (see above).
int64_t trove_tz_day (const trove_tz_t *self, int64_t ts_ms);
int64_t trove_tz_week (const trove_tz_t *self, int64_t ts_ms);
int64_t trove_tz_month (const trove_tz_t *self, int64_t ts_ms);

//  Day number as "YYYY-MM-DD" and month number as "YYYY-MM" into buf
//  (11 and 8 bytes suffice for years 0 to 9999; text is cut to size).
void trove_tz_day_text (int64_t day, char *buf, size_t size);
void trove_tz_month_text (int64_t month, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
