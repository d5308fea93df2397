/*  trove_console - the operator console's static files (console/ in the
    source tree: index.html, console.js, trove.js, metrics.js, style.css),
    compiled into the ingestor by the build (cmake/embed.cmake writes them
    into a generated C file, lib/core/trove_embed) and served on the HTTP listener:
      GET /console/       index.html
      GET /console/NAME   a file by its name (404 for any other)
      GET /console        301 to /console/
    The routes are open (no key): the files are the same for everyone and
    hold no secret. The page asks for an operator key (admin scope) and
    sends it on every API call it makes (docs/console.md). Answers carry
    their content type, `X-Content-Type-Options: nosniff` and a
    Content-Security-Policy that lets the page load only its own files and
    talk only to this listener. */
#ifndef TROVE_CONSOLE_H_INCLUDED
#define TROVE_CONSOLE_H_INCLUDED
#include "trove_embed.h"
#include "trove_http.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The files, written by cmake/embed.cmake.
extern const trove_embed_file_t trove_console_files [];
extern const size_t trove_console_files_count;

//  The embedded file of this name, or NULL.
const trove_embed_file_t *trove_console_file (const char *name);
//  The content type of a file name by its extension (static).
const char *trove_console_type (const char *name);
//  Add the console's open GET routes to http (before trove_http_start).
//  Returns 0 or -1.
int trove_console_routes (trove_http_t *http);

#ifdef __cplusplus
}
#endif
#endif
