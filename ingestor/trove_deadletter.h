/*  trove_deadletter - where whole messages that were refused go (malformed,
    oversized, unknown fields, too many events): one JSON line each, with the
    reason, the sender's routing id and the first bytes, in a size-bounded
    file (rotated once to FILE.1). The producer got a final error answer, so
    nothing retries the message; the file is for the operator who wants to
    see what was refused and why. Lines are written without fsync: it is a
    diagnostic, not a ledger.

        {"time":"2026-11-26T14:05:00.123Z","process":"i0","reason":"malformed: ...",
         "peer":"00a1b2c3d4","size":13,"head":"ffffffff20676172..."}

    head: hex of at most the first 256 bytes. */
#ifndef TROVE_DEADLETTER_H_INCLUDED
#define TROVE_DEADLETTER_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_deadletter_t trove_deadletter_t;

//  Open (creating it and its directory) the dead-letter file at path; it is
//  rotated when it would exceed max_bytes. NULL on error with *err_p.
trove_deadletter_t *trove_deadletter_new (const char *path, const char *process, size_t max_bytes,
                                          char **err_p);
void trove_deadletter_destroy (trove_deadletter_t **self_p);

//  Record one refused message. data may be NULL (only its size is known).
//  Returns 0, or -1 when the line could not be written (the caller logs;
//  nothing else depends on it).
int trove_deadletter_add (trove_deadletter_t *self, const void *peer, size_t peer_len, const char *reason,
                          const void *data, size_t size);

//  Lines written since start.
size_t trove_deadletter_count (const trove_deadletter_t *self);

#ifdef __cplusplus
}
#endif
#endif
