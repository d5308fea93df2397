/*  trove_openapi - GET /v1/openapi.json: the OpenAPI 3.1 description of
    the ingestor's HTTP API (docs/openapi.json, compiled in at build time by
    cmake/embed.cmake, so the document served is the one the binary was
    built and tested with; nothing to configure).

    An open route, like GET /metrics: it needs no key, because it tells
    nothing that docs/ does not (paths, parameters, shapes and codes; no
    key, user, hunt or address). A stranger still gets 401 for every other
    path (docs/security.md, "The HTTP listener"). The document is checked
    against the server by tests/integration/test_openapi.sh: every route
    the ingestor registers must be documented and every documented route
    must exist; the real answers must match their documented codes and
    schemas. */
#ifndef TROVE_OPENAPI_H_INCLUDED
#define TROVE_OPENAPI_H_INCLUDED
#include "trove_embed.h"
#include "trove_http.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The document: docs/openapi.json, the one file of this table (written by
//  cmake/embed.cmake).
extern const trove_embed_file_t trove_openapi_files [];
extern const size_t trove_openapi_files_count;

//  Add GET /v1/openapi.json to http as an open route (before
//  trove_http_start). Returns 0 or -1 (see trove_http_route).
int trove_openapi_route (trove_http_t *http);

#ifdef __cplusplus
}
#endif
#endif
