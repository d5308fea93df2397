/*  trove_embed - files compiled into a daemon at build time (cmake/embed.cmake
    writes the tables): the API's description and the operator console, so
    what a daemon serves is always what it was built with. */
#ifndef TROVE_EMBED_H_INCLUDED
#define TROVE_EMBED_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *name;  //  base name, "index.html"
    const char *data;  //  its bytes, NUL-terminated
    size_t size;       //  bytes, without the NUL
} trove_embed_file_t;

//  The file of this name in a table of count files, or NULL.
const trove_embed_file_t *trove_embed_find (const trove_embed_file_t *files, size_t count, const char *name);

#ifdef __cplusplus
}
#endif
#endif
