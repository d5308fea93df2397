/*  trove_engine_arena - the bump allocator one engine call works in. See
    trove_engine_internal.h. Chunks beyond the caller's first one come from
    the heap, each at least CHUNK_MIN bytes (below glibc's mmap threshold,
    so a call that overflows costs one malloc, not a system call). */
#include "trove_engine_internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN (64 * 1024)

struct _engine_chunk_t {
    engine_chunk_t *next;
    alignas (max_align_t) char data [];
};

static void *
s_pb_alloc (void *arg, size_t size)
{
    return engine_alloc (arg, size);
}

static void
s_pb_free (void *arg, void *ptr)
{
    //  protobuf-c frees what it unpacked on a failed unpack: the arena
    //  lets go of it with the rest.
    (void) arg;
    (void) ptr;
}

void
engine_arena_init (engine_arena_t *self, void *first, size_t size)
{
    assert (self);
    assert (((uintptr_t) first & (ENGINE_ALIGN - 1)) == 0);
    self->at = first;
    self->end = (char *) first + size;
    self->last = NULL;
    self->chunks = NULL;
    self->pb = (ProtobufCAllocator){s_pb_alloc, s_pb_free, self};
}

void
engine_arena_release (engine_arena_t *self)
{
    assert (self);
    while (self->chunks) {
        engine_chunk_t *next = self->chunks->next;
        free (self->chunks);
        self->chunks = next;
    }
    self->at = self->end = self->last = NULL;
}

void *
engine_arena_alloc_slow (engine_arena_t *self, size_t size)
{
    size_t data = size > CHUNK_MIN ? size : CHUNK_MIN;
    engine_chunk_t *chunk = malloc (sizeof *chunk + data);
    if (!chunk)
        return NULL;
    chunk->next = self->chunks;
    self->chunks = chunk;
    self->at = chunk->data + size;
    self->end = chunk->data + data;
    self->last = chunk->data;
    return chunk->data;
}

void *
engine_realloc (engine_arena_t *self, void *ptr, size_t old, size_t size)
{
    if (ptr && ptr == self->last) {
        size_t have = (size_t) (self->at - (char *) ptr);
        size_t want = (size + ENGINE_ALIGN - 1) & ~(ENGINE_ALIGN - 1);
        if (want <= have || want - have <= (size_t) (self->end - self->at)) {
            if (want > have)
                self->at += want - have;
            return ptr;
        }
    }
    void *p = engine_alloc (self, size ? size : 1);
    if (p && ptr && old)
        memcpy (p, ptr, old < size ? old : size);
    return p;
}

char *
engine_strdup (engine_arena_t *self, const char *s)
{
    size_t n = strlen (s) + 1;
    char *p = engine_alloc (self, n);
    return p ? memcpy (p, s, n) : NULL;
}
