/*  trove_wal - the write-ahead log's files (trove_wal.h has the format).

    INVARIANTS
    W1. A record counts only inside a complete batch: recovery keeps records
        up to the last one flagged last-of-batch, and a commit flags its
        last record, so a batch torn by a crash is dropped whole.
    W2. Records of a segment are consecutive lseqs; a batch whose first
        lseq does not follow the current segment's last record starts a new
        segment (only after the log lost its tail: a deleted directory).
    W3. A segment is written only after its header naming its place in the
        log is durable (fdatasync), and its file exists durably (created,
        filled with zeros, fsynced with its directory) before that.
    W4. A segment is reused (its header rewritten) only when every record in
        it is at or below the trim point (the tables hold them durably).
    W5. A failed write or sync leaves the tail where it was: the next batch
        overwrites the same bytes with a chain that starts from the same
        check, so nothing of the failed batch is read back as complete. */
#include "trove_wal.h"
#include "trove_mutant.h"
#include "trove_util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define WAL_MAGIC "TROVWAL1"
#define HEADER_SIZE 4096ULL  //  one page: records start page-aligned
#define REC_HEADER 24
#define SEGMENT_DEFAULT (32ULL * 1024 * 1024)
#define SEGMENT_MIN (64ULL * 1024)
#define SPARES 2  //  unused segments kept for reuse (pre-written, no journal commit)
#define FLAG_LAST 1u
#define NONE SIZE_MAX

#define FNV_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

typedef struct {
    char *path;
    int fd;
    uint64_t number;  //  place in the log's order; 0: unused (no valid header)
    uint64_t first;   //  lseqs of its complete records (0: none)
    uint64_t last;
    uint64_t size;   //  file size
    uint64_t end;    //  offset after its last complete batch
    uint64_t check;  //  chain value at end
} wal_seg_t;

struct _trove_wal_t {
    char *dir;
    bool sync;
    uint64_t segment_size;
    wal_seg_t *segs;
    size_t nsegs, segs_cap;
    size_t cur;     //  index of the segment written to; NONE: none yet
    uint64_t lseq;  //  last committed lseq (or the `after` of the open)
    uint64_t next_number;
    uint64_t next_file;
    uint64_t trimmed;
    uint8_t *buf;  //  the staged batch, records formatted, checks not yet
    size_t len, cap;
    size_t nstaged;
    size_t last_off;  //  offset in buf of the last staged record
    uint64_t first_staged;
    char error [256];
};

static uint64_t
s_fnv (uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p [i];
        h *= FNV_PRIME;
    }
    return h;
}

static void
s_put32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p [i] = (uint8_t) (v >> (8 * i));
}

static void
s_put64 (uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p [i] = (uint8_t) (v >> (8 * i));
}

static uint32_t
s_get32 (const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p [i];
    return v;
}

static uint64_t
s_get64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p [i];
    return v;
}

//  Where a segment's chain starts: its number, so that a record left from
//  an earlier life of the file never continues the chain of its new life.
static uint64_t
s_seed (uint64_t number)
{
    uint8_t b [8];
    s_put64 (b, number);
    return s_fnv (FNV_BASIS ^ 0x5452564c4f47ULL, b, sizeof b);
}

static uint64_t
s_record_check (uint64_t prev, const uint8_t *rec)
{
    uint32_t size = s_get32 (rec);
    return s_fnv (s_fnv (prev, rec, 16), rec + REC_HEADER, size);
}

static size_t
s_padded (size_t size)
{
    return (size + 7) & ~(size_t) 7;
}

static int
s_fail (trove_wal_t *self, const char *what, const char *path)
{
    int saved = errno;
    snprintf (self->error, sizeof self->error, "%s %s: %s", what, path ? path : "", strerror (saved));
    errno = saved;
    return -1;
}

//  fsync of the directory: a created file's name is durable only then.
static int
s_sync_dir (trove_wal_t *self)
{
    if (!self->sync)
        return 0;
    int fd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return s_fail (self, "cannot open", self->dir);
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc ? s_fail (self, "cannot sync", self->dir) : 0;
}

static wal_seg_t *
s_seg_push (trove_wal_t *self, char *path, int fd)
{
    if (self->nsegs == self->segs_cap) {
        size_t cap = self->segs_cap ? self->segs_cap * 2 : 8;
        wal_seg_t *segs = realloc (self->segs, cap * sizeof *segs);
        if (!segs)
            return NULL;
        self->segs = segs;
        self->segs_cap = cap;
    }
    wal_seg_t *seg = &self->segs [self->nsegs++];
    *seg = (wal_seg_t){.path = path, .fd = fd};
    return seg;
}

static void
s_seg_close (wal_seg_t *seg)
{
    if (seg->fd >= 0)
        close (seg->fd);
    free (seg->path);
    seg->fd = -1;
    seg->path = NULL;
}

//  A new segment file of segment_size zero bytes, durable (W3). Page-sized
//  writes, then the cache dropped: big writes would leave big page-cache
//  folios behind, and every later small write would then dirty (and write
//  back) the whole folio. `spare`: only if it takes at most a quarter of
//  the free space (a full disk must not be filled by spares).
static wal_seg_t *
s_seg_create (trove_wal_t *self, bool spare)
{
    char *path = trove_strdupf ("%s/wal-%08" PRIx64, self->dir, self->next_file);
    if (!path) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return NULL;
    }
    //  The segments are pre-written, so the log itself never meets a full
    //  disk; the tables do, and they need room to apply what the log holds
    //  before the log can give any back. A needed segment leaves at least
    //  two segments' worth free for them (else the commit fails: RETRY
    //  storage_full until the tables drain and segments are reused); a
    //  spare takes at most a quarter of what is free.
    struct statvfs vfs;
    uint64_t free_bytes =
        statvfs (self->dir, &vfs) == 0 ? (uint64_t) vfs.f_bavail * vfs.f_frsize : UINT64_MAX;
    if (spare ? self->segment_size > free_bytes / 4 : free_bytes < 3 * self->segment_size) {
        errno = ENOSPC;
        s_fail (self,
                spare ? "no room for a spare log segment in"
                      : "no room for a log segment (the tables need the rest) in",
                self->dir);
        free (path);
        return NULL;
    }
    int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
        s_fail (self, "cannot create", path);
        free (path);
        return NULL;
    }
    self->next_file++;
    static const char zeros [4096];
    int rc = 0;
    for (uint64_t off = 0; off < self->segment_size && rc == 0; off += sizeof zeros)
        if (pwrite (fd, zeros, sizeof zeros, (off_t) off) != (ssize_t) sizeof zeros)
            rc = -1;
    if (rc == 0 && self->sync)
        rc = fdatasync (fd);
    if (rc == 0)
        rc = s_sync_dir (self);
    if (rc) {
        s_fail (self, "cannot write", path);
        int saved = errno;
        //  Give back what was written: a full disk must not stay full.
        close (fd);
        unlink (path);
        free (path);
        errno = saved;
        return NULL;
    }
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    wal_seg_t *seg = s_seg_push (self, path, fd);
    if (!seg) {
        close (fd);
        free (path);
        snprintf (self->error, sizeof self->error, "out of memory");
        return NULL;
    }
    seg->size = self->segment_size;
    return seg;
}

//  Is this segment free to reuse (W4)?
static bool
s_seg_free (trove_wal_t *self, size_t i)
{
    const wal_seg_t *seg = &self->segs [i];
    return i != self->cur && (seg->number == 0 || seg->last <= self->trimmed);
}

//  Make segment i the one written to: its header durable first (W3).
static int
s_seg_activate (trove_wal_t *self, size_t i)
{
    wal_seg_t *seg = &self->segs [i];
    uint8_t header [24];
    memcpy (header, WAL_MAGIC, 8);
    s_put64 (header + 8, self->next_number);
    s_put64 (header + 16, s_fnv (FNV_BASIS, header, 16));
    if (pwrite (seg->fd, header, sizeof header, 0) != (ssize_t) sizeof header
        || (self->sync && fdatasync (seg->fd)))
        return s_fail (self, "cannot write the header of", seg->path);
    seg->number = self->next_number++;
    seg->first = seg->last = 0;
    seg->end = HEADER_SIZE;
    seg->check = s_seed (seg->number);
    self->cur = i;
    return 0;
}

//  The next segment to write to: a free one, else a new file.
static int
s_rotate (trove_wal_t *self)
{
    size_t pick = self->nsegs;
    for (size_t i = 0; i < self->nsegs; i++)
        if (s_seg_free (self, i) && (pick == self->nsegs || self->segs [i].size > self->segs [pick].size))
            pick = i;
    if (pick == self->nsegs) {
        if (!s_seg_create (self, false))
            return -1;
        pick = self->nsegs - 1;
    }
    return s_seg_activate (self, pick);
}

//  Read one segment (used, numbered) and hand its complete batches above
//  `after` to fn. *lseq_p: the last lseq seen so far in the log; a record
//  above it + 1 means records are missing.
static int
s_seg_recover (trove_wal_t *self, wal_seg_t *seg, uint64_t after, uint64_t *lseq_p, trove_wal_record_fn *fn,
               void *arg)
{
    seg->end = HEADER_SIZE;
    seg->check = s_seed (seg->number);
    if (seg->size <= HEADER_SIZE)
        return 0;
    uint8_t *map = mmap (NULL, seg->size, PROT_READ, MAP_SHARED, seg->fd, 0);
    if (map == MAP_FAILED)
        return s_fail (self, "cannot map", seg->path);
    uint64_t off = HEADER_SIZE, check = seg->check, batch = off, prev = 0;
    int rc = 0;
    while (off + REC_HEADER <= seg->size) {
        const uint8_t *rec = map + off;
        uint64_t size = s_get32 (rec), lseq = s_get64 (rec + 8);
        if (size > seg->size - off - REC_HEADER || (prev && lseq != prev + 1) || lseq == 0
            || s_record_check (check, rec) != s_get64 (rec + 16))
            break;  //  the end of what this segment holds (W1, W2)
        check = s_get64 (rec + 16);
        prev = lseq;
        off += REC_HEADER + s_padded (size);
        if (!(s_get32 (rec + 4) & FLAG_LAST))
            continue;
        //  A complete batch [batch, off): hand it over.
        for (uint64_t at = batch; at < off && rc == 0;) {
            const uint8_t *r = map + at;
            uint64_t rsize = s_get32 (r), rlseq = s_get64 (r + 8);
            if (rlseq > after) {
                if (rlseq != *lseq_p + 1) {
                    snprintf (self->error, sizeof self->error,
                              "log records %" PRIu64 "..%" PRIu64 " are missing (found %" PRIu64 " in %s)",
                              *lseq_p + 1, rlseq - 1, rlseq, seg->path);
                    rc = -1;
                    break;
                }
                if (fn && fn (arg, rlseq, r + REC_HEADER, rsize)) {
                    snprintf (self->error, sizeof self->error, "log record %" PRIu64 " in %s refused", rlseq,
                              seg->path);
                    rc = -1;
                    break;
                }
            }
            if (rlseq > *lseq_p)
                *lseq_p = rlseq;
            if (!seg->first)
                seg->first = rlseq;
            seg->last = rlseq;
            at += REC_HEADER + s_padded (rsize);
        }
        if (rc)
            break;
        batch = off;
        seg->end = off;
        seg->check = check;
    }
    munmap (map, seg->size);
    return rc;
}

static int
s_by_number (const void *a, const void *b)
{
    const wal_seg_t *x = a, *y = b;
    //  Unused segments (0) last.
    uint64_t nx = x->number ? x->number : UINT64_MAX, ny = y->number ? y->number : UINT64_MAX;
    return nx < ny ? -1 : nx > ny;
}

//  Read the segments' headers.
static int
s_scan_dir (trove_wal_t *self)
{
    DIR *d = opendir (self->dir);
    if (!d)
        return s_fail (self, "cannot read", self->dir);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir (d))) {
        uint64_t index;
        char tail;
        if (sscanf (e->d_name, "wal-%8" SCNx64 "%c", &index, &tail) != 1 || strlen (e->d_name) != 12)
            continue;
        if (index >= self->next_file)
            self->next_file = index + 1;
        char *path = trove_strdupf ("%s/%s", self->dir, e->d_name);
        int fd = path ? open (path, O_RDWR | O_CLOEXEC) : -1;
        struct stat st;
        wal_seg_t *seg = NULL;
        if (fd == -1 || fstat (fd, &st) || !(seg = s_seg_push (self, path, fd))) {
            rc = path ? s_fail (self, "cannot open", path) : -1;
            if (fd >= 0)
                close (fd);
            free (path);
            break;
        }
        seg->size = (uint64_t) st.st_size;
        uint8_t header [24];
        if (pread (fd, header, sizeof header, 0) == (ssize_t) sizeof header
            && memcmp (header, WAL_MAGIC, 8) == 0 && s_fnv (FNV_BASIS, header, 16) == s_get64 (header + 16))
            seg->number = s_get64 (header + 8);
        if (seg->number >= self->next_number)
            self->next_number = seg->number + 1;
    }
    closedir (d);
    if (self->nsegs > 1)
        qsort (self->segs, self->nsegs, sizeof *self->segs, s_by_number);
    return rc;
}

trove_wal_t *
trove_wal_new (const char *dir, bool sync, uint64_t segment_size, uint64_t after, trove_wal_record_fn *fn,
               void *arg, char **err_p)
{
    trove_wal_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dir = strdup (dir))) {
        free (self);
        if (err_p)
            *err_p = strdup ("out of memory");
        return NULL;
    }
    self->sync = sync;
    self->segment_size = segment_size ? segment_size : SEGMENT_DEFAULT;
    if (self->segment_size < SEGMENT_MIN)
        self->segment_size = SEGMENT_MIN;
    self->segment_size = (self->segment_size + HEADER_SIZE - 1) / HEADER_SIZE * HEADER_SIZE;
    self->next_number = 1;
    self->lseq = after;
    self->trimmed = after;
    if (trove_mkdir_p (dir, 0700) || (sync && trove_fsync_dir (dir))) {
        s_fail (self, "cannot create", dir);
        goto fail;
    }
    if (s_scan_dir (self))
        goto fail;
    self->cur = NONE;
    for (size_t i = 0; i < self->nsegs && self->segs [i].number; i++) {
        if (s_seg_recover (self, &self->segs [i], after, &self->lseq, fn, arg))
            goto fail;
        self->cur = i;  //  the highest numbered: written to next
    }
    //  Something to write to, and a spare, so that the first commits and the
    //  first rotation do not wait for a new file (best effort: a full disk
    //  shows at the first commit that needs room).
    size_t spares = 0;
    for (size_t i = 0; i < self->nsegs; i++)
        spares += s_seg_free (self, i);
    while (spares < 1 + (self->cur == NONE)) {
        if (!s_seg_create (self, true)) {
            trove_log ('W', "log: %s", self->error);
            break;
        }
        spares++;
    }
    return self;
fail:
    if (err_p)
        *err_p = strdup (self->error [0] ? self->error : "out of memory");
    trove_wal_destroy (&self);
    return NULL;
}

void
trove_wal_destroy (trove_wal_t **self_p)
{
    assert (self_p);
    trove_wal_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nsegs; i++)
        s_seg_close (&self->segs [i]);
    free (self->segs);
    free (self->buf);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

int
trove_wal_add (trove_wal_t *self, uint64_t lseq, const void *data, size_t size)
{
    uint64_t expect = self->nstaged ? self->first_staged + self->nstaged : self->lseq + 1;
    assert (lseq == expect);
    (void) expect;
    assert (size <= UINT32_MAX);
    size_t need = REC_HEADER + s_padded (size);
    if (self->len + need > self->cap) {
        size_t cap = self->cap ? self->cap : 65536;
        while (cap < self->len + need)
            cap *= 2;
        uint8_t *buf = realloc (self->buf, cap);
        if (!buf) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        self->buf = buf;
        self->cap = cap;
    }
    uint8_t *rec = self->buf + self->len;
    s_put32 (rec, (uint32_t) size);
    s_put32 (rec + 4, 0);
    s_put64 (rec + 8, lseq);
    s_put64 (rec + 16, 0);
    if (size)
        memcpy (rec + REC_HEADER, data, size);
    memset (rec + REC_HEADER + size, 0, s_padded (size) - size);
    if (!self->nstaged)
        self->first_staged = lseq;
    self->last_off = self->len;
    self->len += need;
    self->nstaged++;
    return 0;
}

int
trove_wal_commit (trove_wal_t *self)
{
    if (!self->nstaged)
        return 0;
    wal_seg_t *seg = self->cur < self->nsegs ? &self->segs [self->cur] : NULL;
    //  A new segment when there is none, when the batch does not follow its
    //  last record (W2), or when it does not fit (unless the segment is
    //  empty: a batch larger than a segment grows it).
    if (!seg || (seg->last && seg->last + 1 != self->first_staged)
        || (seg->end + self->len > seg->size && seg->end > HEADER_SIZE)) {
        if (s_rotate (self))
            return -1;
        seg = &self->segs [self->cur];
    }
    s_put32 (self->buf + self->last_off + 4, FLAG_LAST);
    uint64_t check = seg->check;
    for (size_t at = 0; at < self->len;) {
        uint8_t *rec = self->buf + at;
        check = s_record_check (check, rec);
        s_put64 (rec + 16, check);
        at += REC_HEADER + s_padded (s_get32 (rec));
    }
    size_t done = 0;
    while (done < self->len) {
        ssize_t n = pwrite (seg->fd, self->buf + done, self->len - done, (off_t) (seg->end + done));
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            if (n == 0)
                errno = EIO;
            return s_fail (self, "cannot write to", seg->path);
        }
        done += (size_t) n;
    }
    //  TEST-ONLY MUTANT (trove_mutant.h) wal_sync_skipped: the batch is
    //  answered from the page cache, the bug the power-cut test must catch
    //  (tests/integration/test_power_loss.sh).
    if (self->sync && !TROVE_MUTANT (wal_sync_skipped) && fdatasync (seg->fd))
        return s_fail (self, "cannot sync", seg->path);
    seg->end += self->len;
    if (seg->end > seg->size)
        seg->size = seg->end;
    seg->check = check;
    if (!seg->first)
        seg->first = self->first_staged;
    seg->last = self->first_staged + self->nstaged - 1;
    self->lseq = seg->last;
    trove_wal_discard (self);
    return 0;
}

void
trove_wal_discard (trove_wal_t *self)
{
    self->len = 0;
    self->nstaged = 0;
}

void
trove_wal_trim (trove_wal_t *self, uint64_t lseq)
{
    if (lseq <= self->trimmed)
        return;
    self->trimmed = lseq;
    //  Keep SPARES free segments for reuse; give the rest back to the disk
    //  (after a burst the apply thread could not follow).
    size_t spares = 0;
    for (size_t i = 0; i < self->nsegs;) {
        if (!s_seg_free (self, i) || ++spares <= SPARES) {
            i++;
            continue;
        }
        if (unlink (self->segs [i].path))
            trove_log ('W', "log: cannot remove %s: %s", self->segs [i].path, strerror (errno));
        s_seg_close (&self->segs [i]);
        self->segs [i] = self->segs [--self->nsegs];
        if (self->cur == self->nsegs)
            self->cur = i;  //  it moved
    }
}

uint64_t
trove_wal_last (trove_wal_t *self)
{
    return self->lseq;
}

void
trove_wal_bytes (trove_wal_t *self, uint64_t *files_p, uint64_t *live_p)
{
    uint64_t files = 0, live = 0;
    for (size_t i = 0; i < self->nsegs; i++) {
        files += self->segs [i].size;
        if (self->segs [i].number && self->segs [i].last > self->trimmed)
            live += self->segs [i].end - HEADER_SIZE;
    }
    if (files_p)
        *files_p = files;
    if (live_p)
        *live_p = live;
}

const char *
trove_wal_error (trove_wal_t *self)
{
    return self->error;
}
