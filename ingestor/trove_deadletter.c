/*  trove_deadletter - refused messages, one JSON line each. */
#include "trove_deadletter.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_BYTES 256

struct _trove_deadletter_t {
    char *path;
    char *process;
    size_t max_bytes;
    int fd;
    size_t size;   //  bytes in the current file
    size_t count;  //  lines written since start
};

static int
s_open (trove_deadletter_t *self)
{
    self->fd = open (self->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (self->fd < 0)
        return -1;
    struct stat st;
    self->size = fstat (self->fd, &st) == 0 ? (size_t) st.st_size : 0;
    return 0;
}

trove_deadletter_t *
trove_deadletter_new (const char *path, const char *process, size_t max_bytes, char **err_p)
{
    trove_deadletter_t *self = calloc (1, sizeof *self);
    char *dir = strdup (path);
    if (!self || !dir || !(self->path = strdup (path)) || !(self->process = strdup (process))) {
        if (err_p)
            *err_p = strdup ("out of memory");
        free (dir);
        trove_deadletter_destroy (&self);
        return NULL;
    }
    self->fd = -1;
    self->max_bytes = max_bytes;
    if (trove_mkdir_p (dirname (dir), 0750) || s_open (self)) {
        if (err_p && asprintf (err_p, "dead-letter file %s: %s", path, strerror (errno)) < 0)
            *err_p = NULL;
        free (dir);
        trove_deadletter_destroy (&self);
        return NULL;
    }
    free (dir);
    return self;
}

void
trove_deadletter_destroy (trove_deadletter_t **self_p)
{
    assert (self_p);
    trove_deadletter_t *self = *self_p;
    if (self) {
        if (self->fd >= 0)
            close (self->fd);
        free (self->path);
        free (self->process);
        free (self);
        *self_p = NULL;
    }
}

int
trove_deadletter_add (trove_deadletter_t *self, const void *peer, size_t peer_len, const char *reason,
                      const void *data, size_t size)
{
    char peer_hex [2 * 64 + 1] = "", head_hex [2 * HEAD_BYTES + 1] = "", now [40];
    trove_hex (peer, peer_len > 64 ? 64 : peer_len, peer_hex);
    if (data)
        trove_hex (data, size > HEAD_BYTES ? HEAD_BYTES : size, head_hex);
    trove_format_rfc3339 (trove_now_ms (), now, sizeof now);
    json_t *line =
        json_pack ("{s:s,s:s,s:s,s:s,s:I,s:s}", "time", now, "process", self->process, "reason",
                   reason ? reason : "", "peer", peer_hex, "size", (json_int_t) size, "head", head_hex);
    char *text = line ? json_dumps (line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref (line);
    if (!text)
        return -1;
    size_t len = strlen (text);
    text [len++] = '\n';  //  json_dumps leaves room: its NUL
    if (self->size + len > self->max_bytes && self->size > 0) {
        //  Rotate once: the newest lines are the ones an operator wants.
        char old [4096];
        snprintf (old, sizeof old, "%s.1", self->path);
        close (self->fd);
        self->fd = -1;
        if (rename (self->path, old) || s_open (self)) {
            free (text);
            return -1;
        }
    }
    ssize_t n = write (self->fd, text, len);
    free (text);
    if (n != (ssize_t) len)
        return -1;
    self->size += len;
    self->count++;
    return 0;
}

size_t
trove_deadletter_count (const trove_deadletter_t *self)
{
    return self->count;
}
