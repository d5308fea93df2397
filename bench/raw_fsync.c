/*  bench-raw-fsync - the floor of a durable answer on this machine: append
    --size bytes to a file the way the scorer's write-ahead log does
    (lib/ledger/trove_wal: blocks pre-written with zeros, one pwrite at the
    next offset, one fdatasync) and time each append. Nothing Trove does
    per batch can be faster than this; the answer latency at low rates
    should be a small multiple of it.

    Usage: bench-raw-fsync [--dir DIR] [--size BYTES] [--count N] [--seconds S]
                           [--json]
    Defaults: 1024 bytes, 2000 appends or 10 s, whichever first, in a fresh
    directory under $TMPDIR (default /tmp), removed at the end. The file is
    pre-written to what the run needs (at most 64 MiB; the offset wraps). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX (64LL * 1024 * 1024)

static int64_t
s_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: bench-raw-fsync [--dir DIR] [--size BYTES] [--count N] [--seconds S] [--json]\n");
}

int
main (int argc, char **argv)
{
    const char *dir = NULL;
    long long size = 1024, count = 2000;
    double seconds = 10;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (!strcmp (argv [i], "--dir") && more)
            dir = argv [++i];
        else if (!strcmp (argv [i], "--size") && more)
            size = atoll (argv [++i]);
        else if (!strcmp (argv [i], "--count") && more)
            count = atoll (argv [++i]);
        else if (!strcmp (argv [i], "--seconds") && more)
            seconds = atof (argv [++i]);
        else if (!strcmp (argv [i], "--json"))
            json = true;
        else {
            s_usage ();
            return 2;
        }
    }
    if (size < 1 || size > 16 * 1024 * 1024 || count < 1 || seconds <= 0) {
        fprintf (stderr, "bench-raw-fsync: --size 1..16777216, --count >= 1, --seconds > 0\n");
        return 2;
    }
    char tmp [4096];
    if (!dir) {
        const char *t = getenv ("TMPDIR");
        snprintf (tmp, sizeof tmp, "%s/bench-raw-fsync.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp (tmp)) {
            fprintf (stderr, "bench-raw-fsync: cannot create a directory under %s: %s\n", t ? t : "/tmp",
                     strerror (errno));
            return 1;
        }
    }
    char path [4200];
    snprintf (path, sizeof path, "%s/log", dir ? dir : tmp);
    int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        fprintf (stderr, "bench-raw-fsync: cannot create %s: %s\n", path, strerror (errno));
        return 1;
    }
    long long span = size * count < FILE_MAX ? size * count : FILE_MAX;
    span = (span + 4095) / 4096 * 4096;
    if (span < size)
        span = (size + 4095) / 4096 * 4096;
    static char zeros [4096];
    int rc = 0;
    for (long long off = 0; off < span && rc == 0; off += sizeof zeros)
        if (pwrite (fd, zeros, sizeof zeros, off) != (ssize_t) sizeof zeros)
            rc = -1;
    if (rc || fdatasync (fd)) {
        fprintf (stderr, "bench-raw-fsync: cannot pre-write %s: %s\n", path, strerror (errno));
        close (fd);
        unlink (path);
        if (!dir)
            rmdir (tmp);
        return 1;
    }
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    char *buf = malloc ((size_t) size);
    int64_t *lat = malloc ((size_t) count * sizeof *lat);
    if (!buf || !lat) {
        fprintf (stderr, "bench-raw-fsync: out of memory\n");
        return 1;
    }
    memset (buf, 0x5a, (size_t) size);
    long long off = 0, n = 0;
    int64_t start = s_mono_ns (), deadline = start + (int64_t) (seconds * 1e9);
    while (n < count && s_mono_ns () < deadline) {
        if (off + size > span)
            off = 0;
        int64_t t0 = s_mono_ns ();
        if (pwrite (fd, buf, (size_t) size, off) != (ssize_t) size || fdatasync (fd)) {
            fprintf (stderr, "bench-raw-fsync: append failed: %s\n", strerror (errno));
            rc = 1;
            break;
        }
        lat [n++] = s_mono_ns () - t0;
        off += size;
    }
    double elapsed = (double) (s_mono_ns () - start) / 1e9;
    close (fd);
    unlink (path);
    if (!dir)
        rmdir (tmp);
    if (rc || n == 0) {
        free (buf);
        free (lat);
        return 1;
    }
    double sum = 0;
    for (long long i = 0; i < n; i++)
        sum += (double) lat [i];
    qsort (lat, (size_t) n, sizeof *lat, s_cmp);
    double mean_us = sum / (double) n / 1e3, p50_us = (double) lat [n / 2] / 1e3,
           p99_us = (double) lat [(n * 99) / 100] / 1e3, max_us = (double) lat [n - 1] / 1e3;
    if (json)
        printf ("{\"size\":%lld,\"appends\":%lld,\"appends_per_s\":%.0f,\"mean_us\":%.1f,\"p50_us\":%.1f,"
                "\"p99_us\":%.1f,\"max_us\":%.1f}\n",
                size, n, (double) n / elapsed, mean_us, p50_us, p99_us, max_us);
    else
        printf ("%lld appends of %lld bytes + fdatasync: %.0f/s, mean %.1f us, p50 %.1f us, p99 %.1f us, max "
                "%.1f us\n",
                n, size, (double) n / elapsed, mean_us, p50_us, p99_us, max_us);
    free (buf);
    free (lat);
    return 0;
}
