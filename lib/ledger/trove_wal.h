/*  trove_wal - a scorer shard's write-ahead log: numbered records appended
    in batches, each batch durable after ONE fdatasync, read back in order
    at start, dropped once the tables hold them.

    Why not an LMDB environment (what the log was before): an LMDB commit
    syncs twice (the pages, then the meta page), and the log's commit is
    what every accepted event waits for. Here a batch is one pwrite into
    blocks the file already has (segments are pre-written with zeros, so
    the fdatasync flushes data only, with no file-system journal commit)
    and one fdatasync.

    Layout. DIR holds segment files `wal-NNNNNNNN` of SEGMENT_SIZE bytes
    (docs/architecture.md, "The log"). A segment starts with a header block
    (magic, its number in the log's order, a check of both), then records:

        u32 size   bytes of data
        u32 flags  bit 0: the last record of its batch
        u64 lseq   the record's number (consecutive across the log)
        u64 check  FNV-1a 64 of (size, flags, lseq, data), continued from
                   the previous record's check (the segment's first record
                   continues from a value derived from the segment number)
        data, padded to a multiple of 8 bytes

    Recovery reads each segment in number order up to the first record that
    does not check, and keeps records up to the last complete batch: a
    batch is all or nothing. The chained check is what makes stale bytes
    harmless: a torn write, a record of an earlier life of a reused segment
    or of a batch that never completed chains from other bytes and stops
    the scan. A batch never spans segments.

    Space: a segment whose records are all trimmed (trove_wal_trim: the
    tables hold them durably) is reused for a later part of the log by
    rewriting its header; at most SPARES unused segments are kept, the
    rest deleted. A batch larger than a segment grows its segment. The
    log never meets a full disk inside its pre-written segments, so it
    guards the tables' room itself: a new segment is made only if it leaves
    two segments' worth free (the tables need room to apply what the log
    holds before any segment can be reused); otherwise the commit fails
    with ENOSPC.

    Errors: -1 with a message in trove_wal_error. A failed commit leaves the
    log as it was before the batch (the next batch is written at the same
    place); a failed open leaves the files alone. */
#ifndef TROVE_WAL_H_INCLUDED
#define TROVE_WAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_wal_t trove_wal_t;

//  Called by trove_wal_new for each record above `after`, in lseq order.
//  data is borrowed for the call. Return 0, or -1 to fail the open.
typedef int (trove_wal_record_fn) (void *arg, uint64_t lseq, const void *data, size_t size);

//  Open (create) the log in dir. sync: fdatasync every commit (tests and
//  benchmarks may turn it off). Records above `after` go to fn; records
//  at or below it are already in the tables. segment_size 0: the default
//  (32 MiB); it is what one segment pre-writes. NULL on failure, with
//  *err_p set (caller frees).
trove_wal_t *trove_wal_new (const char *dir, bool sync, uint64_t segment_size, uint64_t after,
                            trove_wal_record_fn *fn, void *arg, char **err_p);
void trove_wal_destroy (trove_wal_t **self_p);

//  Stage one record of the next batch; lseq must follow the last one
//  (committed or staged). Returns 0, or -1 (out of memory).
int trove_wal_add (trove_wal_t *self, uint64_t lseq, const void *data, size_t size);

//  Write the staged batch and make it durable. Returns 0, or -1 (nothing
//  of the batch counts; it stays staged until trove_wal_discard).
int trove_wal_commit (trove_wal_t *self);

//  Drop the staged batch.
void trove_wal_discard (trove_wal_t *self);

//  Records up to lseq are no longer needed: their segments may be reused.
void trove_wal_trim (trove_wal_t *self, uint64_t lseq);

//  The last committed lseq (0: none since the log was created).
uint64_t trove_wal_last (trove_wal_t *self);

//  Bytes of the log's files on disk, and how many of them hold records not
//  trimmed yet (from the first such record to the end of the last batch).
void trove_wal_bytes (trove_wal_t *self, uint64_t *files_p, uint64_t *live_p);

const char *trove_wal_error (trove_wal_t *self);

#ifdef __cplusplus
}
#endif
#endif
