/*  powerloss_shim - LD_PRELOAD library that makes a power cut testable.

    TEST ONLY. SIGKILL keeps the page cache, so a killed process loses
    nothing it wrote, synced or not; a power cut loses every write that no
    completed fsync/fdatasync covered. This shim journals, for every file
    under TROVE_POWERLOSS_DIR, each write with the bytes it overwrote (its
    pre-image) and each completed sync, into TROVE_POWERLOSS_JOURNAL/
    journal-PID. After every process was SIGKILLed, tests/powerloss/
    powercut.py reads the journals and puts the pre-images of the writes
    no sync covered back (all of them, or a random subset of 512-byte
    sectors: torn and reordered writes), and deletes files whose creation
    no fsync of their directory made durable. What is left is what a disk
    may hold after the power went.

    Journal records (little-endian), one write(2) each; a kill can cut
    the last one short (its write had not begun: powercut.py drops it):
      u32 total size, u8 type, u64 seq, u32 path length, path, then
      'W' write:    u64 offset, u64 length, u64 file size before,
                    u64 pre-image length, pre-image (the new bytes are in
                    the file: a later write of them has its own pre-image)
      'T' truncate: u64 new size, u64 file size before,
                    u64 pre-image length, pre-image (of [new size, size before))
      'S' sync of the file / 'D' sync of a directory: u64 covered seq
      'C' created (O_CREAT of a name that did not exist)
    seq numbers this process's records; a sync covers every write whose
    record's seq is at most its covered seq: that write completed before
    the sync began (writes run under the journal's lock).

    Not modelled: unlink and rename (taken as durable at once), mmap
    writes (LMDB without MDB_WRITEMAP uses pwrite/writev), fallocate.
    lock.mdb is not journaled (LMDB rebuilds its lock file). Writes to a
    file opened O_SYNC/O_DSYNC are durable when they return. */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536

typedef struct {
    char *path;     //  tracked: absolute path under the directory
    bool sync;      //  O_SYNC / O_DSYNC: every write durable on return
    bool dir;       //  a directory (its fsync makes created names durable)
    bool readable;  //  pre-images can be read through this fd
} tracked_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static tracked_t s_fds [MAX_FDS];
static char s_dir [PATH_MAX];
static size_t s_dirlen;
static char s_jdir [PATH_MAX];
static int s_journal = -1;
static pid_t s_journal_pid;
static uint64_t s_seq;

static int (*real_open) (const char *, int, ...);
static int (*real_openat) (int, const char *, int, ...);
static int (*real_close) (int);
static ssize_t (*real_write) (int, const void *, size_t);
static ssize_t (*real_pwrite) (int, const void *, size_t, off_t);
static ssize_t (*real_writev) (int, const struct iovec *, int);
static ssize_t (*real_pwritev) (int, const struct iovec *, int, off_t);
static int (*real_fsync) (int);
static int (*real_fdatasync) (int);
static int (*real_ftruncate) (int, off_t);

static void
s_die (const char *what)
{
    //  A journal that cannot be written would make the test lie: stop.
    char buf [512];
    int n = snprintf (buf, sizeof buf, "powerloss_shim: %s: %s\n", what, strerror (errno));
    if (n > 0 && real_write)
        (void) !real_write (2, buf, (size_t) n);
    abort ();
}

__attribute__ ((constructor)) static void
s_init (void)
{
    real_open = dlsym (RTLD_NEXT, "open");
    real_openat = dlsym (RTLD_NEXT, "openat");
    real_close = dlsym (RTLD_NEXT, "close");
    real_write = dlsym (RTLD_NEXT, "write");
    real_pwrite = dlsym (RTLD_NEXT, "pwrite");
    real_writev = dlsym (RTLD_NEXT, "writev");
    real_pwritev = dlsym (RTLD_NEXT, "pwritev");
    real_fsync = dlsym (RTLD_NEXT, "fsync");
    real_fdatasync = dlsym (RTLD_NEXT, "fdatasync");
    real_ftruncate = dlsym (RTLD_NEXT, "ftruncate");
    const char *dir = getenv ("TROVE_POWERLOSS_DIR");
    const char *jdir = getenv ("TROVE_POWERLOSS_JOURNAL");
    if (!dir || !jdir || !*dir || !*jdir)
        return;  //  inactive: every call passes through
    if (!realpath (dir, s_dir))
        s_die ("TROVE_POWERLOSS_DIR");
    s_dirlen = strlen (s_dir);
    snprintf (s_jdir, sizeof s_jdir, "%s", jdir);
}

static void
s_journal_append (const void *data, size_t size)
{
    if (s_journal < 0 || s_journal_pid != getpid ()) {
        //  First record of this process (or of a forked child).
        char path [PATH_MAX + 32];
        snprintf (path, sizeof path, "%s/journal-%d", s_jdir, (int) getpid ());
        s_journal = real_open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (s_journal < 0)
            s_die (path);
        s_journal_pid = getpid ();
    }
    const char *p = data;
    while (size > 0) {
        ssize_t n = real_write (s_journal, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            s_die ("journal write");
        p += n;
        size -= (size_t) n;
    }
}

//  A record: header + path + the fields + up to two byte blocks.
static void
s_record (char type, const char *path, const uint64_t *fields, size_t nfields, const void *a, size_t alen,
          const void *b, size_t blen)
{
    uint32_t plen = (uint32_t) strlen (path);
    size_t total = 4 + 1 + 8 + 4 + plen + nfields * 8 + alen + blen;
    char *buf = malloc (total);
    if (!buf)
        s_die ("out of memory");
    char *p = buf;
    uint32_t t32 = (uint32_t) total;
    memcpy (p, &t32, 4), p += 4;
    *p++ = type;
    uint64_t seq = ++s_seq;
    memcpy (p, &seq, 8), p += 8;
    memcpy (p, &plen, 4), p += 4;
    memcpy (p, path, plen), p += plen;
    memcpy (p, fields, nfields * 8), p += nfields * 8;
    if (alen)
        memcpy (p, a, alen), p += alen;
    if (blen)
        memcpy (p, b, blen);
    s_journal_append (buf, total);
    free (buf);
}

static bool
s_under_dir (const char *abs)
{
    if (!s_dirlen || strncmp (abs, s_dir, s_dirlen) || (abs [s_dirlen] != '/' && abs [s_dirlen]))
        return false;
    const char *base = strrchr (abs, '/');
    return !(base && !strcmp (base + 1, "lock.mdb"));
}

//  After a successful open: track fd if its file is under the directory.
static void
s_track (int fd, int flags, bool created)
{
    if (fd < 0 || fd >= MAX_FDS || !s_dirlen)
        return;
    char link [64], abs [PATH_MAX];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink (link, abs, sizeof abs - 1);
    if (n <= 0)
        return;
    abs [n] = 0;
    pthread_mutex_lock (&s_lock);
    free (s_fds [fd].path);
    s_fds [fd] = (tracked_t){0};
    if (s_under_dir (abs)) {
        struct stat st;
        s_fds [fd].path = strdup (abs);
        s_fds [fd].sync = (flags & (O_SYNC | O_DSYNC)) != 0;
        s_fds [fd].dir = fstat (fd, &st) == 0 && S_ISDIR (st.st_mode);
        s_fds [fd].readable = (flags & O_ACCMODE) != O_WRONLY;
        if (created)
            s_record ('C', abs, NULL, 0, NULL, 0, NULL, 0);
    }
    pthread_mutex_unlock (&s_lock);
}

static bool
s_exists_at (int dirfd, const char *path)
{
    struct stat st;
    return fstatat (dirfd, path, &st, 0) == 0;
}

//  Could path (relative to dirfd) name a file under the directory? Decided
//  before the open, so that nothing else (/dev/null, logs) is touched.
static bool
s_maybe_under_dir (int dirfd, const char *path)
{
    char full [PATH_MAX * 2], base [PATH_MAX], resolved [PATH_MAX * 3];
    if (path [0] == '/')
        snprintf (full, sizeof full, "%s", path);
    else {
        if (dirfd == AT_FDCWD) {
            if (!getcwd (base, sizeof base))
                return true;
        }
        else {
            char link [64];
            snprintf (link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink (link, base, sizeof base - 1);
            if (n <= 0)
                return true;
            base [n] = 0;
        }
        snprintf (full, sizeof full, "%s/%s", base, path);
    }
    char *slash = strrchr (full, '/');
    if (slash && slash != full) {
        *slash = 0;
        if (!realpath (full, resolved))
            return false;  //  its directory does not exist: the open fails anyway
        size_t n = strlen (resolved);
        snprintf (resolved + n, sizeof resolved - n, "/%s", slash + 1);
    }
    else if (!realpath (full, resolved))
        snprintf (resolved, sizeof resolved, "%s", full);
    return !strncmp (resolved, s_dir, s_dirlen) && (resolved [s_dirlen] == '/' || !resolved [s_dirlen]);
}

static int
s_open_common (int dirfd, const char *path, int flags, mode_t mode)
{
    if (!s_dirlen || !s_maybe_under_dir (dirfd, path))
        return real_openat (dirfd, path, flags, mode);
    bool existed = (flags & O_CREAT) ? s_exists_at (dirfd, path) : true;
    if ((flags & O_TRUNC) && existed) {
        //  A truncation on open: journal it through ftruncate below.
        int fd = real_openat (dirfd, path, flags & ~O_TRUNC, mode);
        if (fd >= 0) {
            s_track (fd, flags, false);
            if (ftruncate (fd, 0)) {
                int e = errno;
                real_close (fd);
                errno = e;
                return -1;
            }
        }
        return fd;
    }
    int fd = real_openat (dirfd, path, flags, mode);
    s_track (fd, flags, !existed);
    return fd;
}

//  The mode argument of open/openat, present only with these flags.
#define S_MODE(flags, mode)                    \
    do {                                       \
        if ((flags) & (O_CREAT | O_TMPFILE)) { \
            va_list ap;                        \
            va_start (ap, flags);              \
            mode = va_arg (ap, mode_t);        \
            va_end (ap);                       \
        }                                      \
    } while (0)

int
open (const char *path, int flags, ...)
{
    mode_t mode = 0;
    S_MODE (flags, mode);
    return s_open_common (AT_FDCWD, path, flags, mode);
}

int open64 (const char *path, int flags, ...) __attribute__ ((alias ("open")));

int
openat (int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    S_MODE (flags, mode);
    return s_open_common (dirfd, path, flags, mode);
}

int openat64 (int dirfd, const char *path, int flags, ...) __attribute__ ((alias ("openat")));

int
close (int fd)
{
    if (fd >= 0 && fd < MAX_FDS && s_fds [fd].path) {
        pthread_mutex_lock (&s_lock);
        free (s_fds [fd].path);
        s_fds [fd] = (tracked_t){0};
        pthread_mutex_unlock (&s_lock);
    }
    return real_close (fd);
}

static bool
s_tracked (int fd)
{
    return fd >= 0 && fd < MAX_FDS && s_fds [fd].path && !s_fds [fd].sync && !s_fds [fd].dir;
}

//  Under the lock: the bytes of fd's file from offset, at most len of them
//  (what a write there overwrites, or a truncation to offset cuts off), and
//  the file's size before. Caller frees.
static char *
s_pre_image (int fd, off_t offset, size_t len, uint64_t *size_before_p, size_t *prelen_p)
{
    struct stat st;
    if (fstat (fd, &st))
        s_die ("fstat");
    uint64_t size_before = (uint64_t) st.st_size;
    size_t prelen = (uint64_t) offset < size_before ? (size_t) (size_before - (uint64_t) offset) : 0;
    if (prelen > len)
        prelen = len;
    char *pre = malloc (prelen + 1);
    if (!pre)
        s_die ("out of memory");
    int rfd = s_fds [fd].readable ? fd : real_open (s_fds [fd].path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        s_die ("reopen for a pre-image");
    size_t got = 0;
    while (got < prelen) {
        ssize_t n = pread (rfd, pre + got, prelen - got, offset + (off_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            s_die ("pre-image read");
        got += (size_t) n;
    }
    if (rfd != fd)
        real_close (rfd);
    *size_before_p = size_before;
    *prelen_p = prelen;
    return pre;
}

//  Under the lock: journal the write of len bytes at offset (pre-image
//  read first), then do it. Returns what the real call returns.
static ssize_t
s_journaled_write (int fd, off_t offset, const struct iovec *iov, int iovcnt, bool positional)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov [i].iov_len;
    uint64_t size_before;
    size_t prelen;
    char *pre = s_pre_image (fd, offset, len, &size_before, &prelen);
    uint64_t fields [4] = {(uint64_t) offset, len, size_before, prelen};
    s_record ('W', s_fds [fd].path, fields, 4, pre, prelen, NULL, 0);
    free (pre);
    ssize_t rc;
    if (positional)
        rc = real_pwritev (fd, iov, iovcnt, offset);
    else
        rc = real_writev (fd, iov, iovcnt);
    return rc;
}

static ssize_t
s_write_any (int fd, const struct iovec *iov, int iovcnt, off_t offset, bool positional)
{
    if (!s_tracked (fd))
        return positional ? real_pwritev (fd, iov, iovcnt, offset) : real_writev (fd, iov, iovcnt);
    pthread_mutex_lock (&s_lock);
    if (!positional) {
        int fl = fcntl (fd, F_GETFL);
        if (fl >= 0 && (fl & O_APPEND)) {
            struct stat st;
            offset = fstat (fd, &st) == 0 ? st.st_size : 0;
        }
        else
            offset = lseek (fd, 0, SEEK_CUR);
    }
    ssize_t rc = offset < 0 ? -1 : s_journaled_write (fd, offset, iov, iovcnt, positional);
    pthread_mutex_unlock (&s_lock);
    return rc;
}

ssize_t
write (int fd, const void *buf, size_t len)
{
    if (!s_tracked (fd))
        return real_write (fd, buf, len);
    struct iovec iov = {(void *) buf, len};
    return s_write_any (fd, &iov, 1, 0, false);
}

ssize_t
pwrite (int fd, const void *buf, size_t len, off_t offset)
{
    if (!s_tracked (fd))
        return real_pwrite (fd, buf, len, offset);
    struct iovec iov = {(void *) buf, len};
    return s_write_any (fd, &iov, 1, offset, true);
}

ssize_t pwrite64 (int fd, const void *buf, size_t len, off_t offset) __attribute__ ((alias ("pwrite")));

ssize_t
writev (int fd, const struct iovec *iov, int iovcnt)
{
    return s_write_any (fd, iov, iovcnt, 0, false);
}

ssize_t
pwritev (int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    return s_write_any (fd, iov, iovcnt, offset, true);
}

ssize_t pwritev64 (int fd, const struct iovec *iov, int iovcnt, off_t offset)
    __attribute__ ((alias ("pwritev")));

int
ftruncate (int fd, off_t length)
{
    if (!s_tracked (fd))
        return real_ftruncate (fd, length);
    pthread_mutex_lock (&s_lock);
    uint64_t size_before;
    size_t prelen;
    char *pre = s_pre_image (fd, length, SIZE_MAX, &size_before, &prelen);
    uint64_t fields [3] = {(uint64_t) length, size_before, prelen};
    s_record ('T', s_fds [fd].path, fields, 3, pre, prelen, NULL, 0);
    free (pre);
    int rc = real_ftruncate (fd, length);
    pthread_mutex_unlock (&s_lock);
    return rc;
}

int ftruncate64 (int fd, off_t length) __attribute__ ((alias ("ftruncate")));

//  A completed sync covers every write journaled before it began.
static int
s_sync (int fd, int (*real) (int))
{
    if (fd < 0 || fd >= MAX_FDS || !s_fds [fd].path)
        return real (fd);
    pthread_mutex_lock (&s_lock);
    uint64_t covered = s_seq;
    pthread_mutex_unlock (&s_lock);
    int rc = real (fd);
    if (rc == 0) {
        pthread_mutex_lock (&s_lock);
        if (s_fds [fd].path)
            s_record (s_fds [fd].dir ? 'D' : 'S', s_fds [fd].path, &covered, 1, NULL, 0, NULL, 0);
        pthread_mutex_unlock (&s_lock);
    }
    return rc;
}

int
fsync (int fd)
{
    return s_sync (fd, real_fsync);
}

int
fdatasync (int fd)
{
    return s_sync (fd, real_fdatasync);
}
