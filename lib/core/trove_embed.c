/*  trove_embed - files compiled in at build time. See trove_embed.h. */
#include "trove_embed.h"

#include <assert.h>
#include <string.h>

const trove_embed_file_t *
trove_embed_find (const trove_embed_file_t *files, size_t count, const char *name)
{
    assert (files || count == 0);
    assert (name);
    for (size_t i = 0; i < count; i++)
        if (strcmp (files [i].name, name) == 0)
            return &files [i];
    return NULL;
}
