/*  trove_scrape - one blocking HTTP/1.0 GET to a numeric address, for a
    daemon that reads another daemon's /metrics (the ingestor's operator
    route GET /v1/metrics/..., ingestor/trove_admin). Plain HTTP, no
    redirects, no chunked bodies (HTTP/1.0 makes the server close after
    the body): the metrics servers of trove_http answer so. */
#ifndef TROVE_SCRAPE_H_INCLUDED
#define TROVE_SCRAPE_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  GET path from address ("127.0.0.1:7630", "[::1]:7630"; numeric host)
//  within timeout_ms from connect to last byte. Returns the body of a 200
//  answer of at most max bytes, NUL-terminated (caller frees), with its
//  size in *size_p (may be NULL); or NULL with a sentence in *err_p
//  (caller frees): bad address, refused, timed out, another status, too
//  large, a NUL byte in the body.
char *trove_scrape (const char *address, const char *path, int timeout_ms, size_t max, size_t *size_p,
                    char **err_p);

#ifdef __cplusplus
}
#endif
#endif
