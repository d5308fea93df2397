/*  trove_util - small helpers shared by every Trove process: clocks, logging,
    UTF-8 checks, hex, big-endian keys, directories.
    None of these can fail except where a return value says so. */
#ifndef TROVE_UTIL_H_INCLUDED
#define TROVE_UTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Wall-clock time in milliseconds / microseconds since the epoch.
int64_t trove_now_ms (void);
int64_t trove_now_us (void);
//  Monotonic time in microseconds (for timeouts and latency).
int64_t trove_mono_us (void);

//  Log one line to stderr: "2026-11-26T10:00:00.123Z LEVEL process[shard]: message".
//  Levels: 'E'rror, 'W'arning, 'I'nfo, 'D'ebug. Debug lines print only when
//  TROVE_DEBUG is set in the environment.
void trove_log_init (const char *process);
void trove_log (char level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  A log line that a peer can provoke at will (a bad frame, a refused
//  request): at most one per `every_us` per limiter, the rest counted and
//  named in the next line ("... and N more since"). Zero-initialize it.
typedef struct {
    int64_t logged_us;  //  last line (monotonic), 0 = never
    uint64_t unlogged;  //  calls since
} trove_lograte_t;
void trove_log_limited (trove_lograte_t *rate, int64_t every_us, char level, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

//  True when [s, s+len) is well-formed UTF-8 (no overlongs, no surrogates,
//  nothing above U+10FFFF) and contains no NUL or ASCII control character.
bool trove_utf8_valid (const char *s, size_t len);

//  Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated).
void trove_hex (const uint8_t *bytes, size_t len, char *out);

//  Big-endian encode/decode, used for LMDB keys so that byte order is numeric order.
void trove_put_be64 (uint8_t *p, uint64_t v);
uint64_t trove_get_be64 (const uint8_t *p);
void trove_put_be32 (uint8_t *p, uint32_t v);
uint32_t trove_get_be32 (const uint8_t *p);

//  mkdir -p with the given mode. Returns 0 or -1 (errno set).
int trove_mkdir_p (const char *path, unsigned mode);

//  fsync the directory path and the one that holds it: after a power cut
//  the names path holds (files it just created, such as LMDB's data.mdb)
//  and path's own name exist only once both are synced. Returns 0 or -1
//  (errno set).
int trove_fsync_dir (const char *path);

//  printf into a fresh string the caller frees (at most 1023 characters;
//  longer text is cut). NULL on OOM.
char *trove_strdupf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

//  Read a whole file into a NUL-terminated buffer the caller frees. NULL on error.
char *trove_read_file (const char *path, size_t *size_p);

//  Parse RFC 3339 ("2026-03-10T00:00:00Z", "...T01:00:00.5+02:00") into epoch ms.
//  Returns 0 or -1 when the text is not a valid RFC 3339 date-time.
int trove_parse_rfc3339 (const char *text, int64_t *ms_p);

//  Format epoch ms as RFC 3339 UTC with milliseconds into out (>= 25 bytes).
void trove_format_rfc3339 (int64_t ms, char *out, size_t size);

//  An instant as a user writes it: RFC 3339 (trove_parse_rfc3339) or
//  milliseconds since the epoch (1 to 15 digits), after 1970-01-01. Returns
//  0, or -1 for anything else.
int trove_parse_instant (const char *text, int64_t *ms_p);

#ifdef __cplusplus
}
#endif
#endif
