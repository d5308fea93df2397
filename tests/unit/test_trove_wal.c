/*  test_trove_wal - the write-ahead log's files (lib/ledger/trove_wal): what
    was committed comes back in order after a reopen, and nothing else: a
    batch torn anywhere (cut short, a byte changed, a record missing) is
    dropped whole with everything after it; records at or below the apply
    mark are not handed back; segments rotate, are reused once trimmed
    (their old records never come back) and extra ones are deleted; a
    batch that does not follow the log's last record starts a new segment;
    errors are reported, not crashed on. The files are read and damaged
    here with plain file I/O, the format as trove_wal.h writes it down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEG (64 * 1024)  //  the smallest segment the log takes

typedef struct {
    char dir [256];
} s_fixture_t;

//  What recovery handed back: lseqs and the first byte of each record.
typedef struct {
    uint64_t lseq [4096];
    uint8_t first [4096];
    size_t size [4096];
    size_t n;
} s_seen_t;

static int
s_collect (void *arg, uint64_t lseq, const void *data, size_t size)
{
    s_seen_t *seen = arg;
    assert_true (seen->n < 4096);
    seen->lseq [seen->n] = lseq;
    seen->first [seen->n] = size ? ((const uint8_t *) data) [0] : 0;
    seen->size [seen->n] = size;
    seen->n++;
    return 0;
}

static int
s_refuse (void *arg, uint64_t lseq, const void *data, size_t size)
{
    (void) arg, (void) data, (void) size;
    return lseq == 2 ? -1 : 0;
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/test_trove_wal.XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    char cmd [300];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

//  Commit records first..last, record k of size k % 300 filled with (k & 0xff),
//  in batches of `per`.
static void
s_write (trove_wal_t *wal, uint64_t first, uint64_t last, size_t per)
{
    uint8_t data [300];
    for (uint64_t k = first; k <= last; k++) {
        memset (data, (int) (k & 0xff), sizeof data);
        assert_int_equal (trove_wal_add (wal, k, data, k % 300), 0);
        if ((k - first + 1) % per == 0 || k == last)
            assert_int_equal (trove_wal_commit (wal), 0);
    }
}

static trove_wal_t *
s_open (s_fixture_t *f, uint64_t after, s_seen_t *seen)
{
    memset (seen, 0, sizeof *seen);
    char *err = NULL;
    trove_wal_t *wal = trove_wal_new (f->dir, true, SEG, after, s_collect, seen, &err);
    if (!wal)
        fail_msg ("open: %s", err ? err : "?");
    return wal;
}

//  Recovery gave exactly first..last, with their contents.
static void
s_expect (const s_seen_t *seen, uint64_t first, uint64_t last)
{
    assert_int_equal (seen->n, last >= first ? last - first + 1 : 0);
    for (size_t i = 0; i < seen->n; i++) {
        uint64_t k = first + i;
        assert_int_equal (seen->lseq [i], k);
        assert_int_equal (seen->size [i], k % 300);
        if (k % 300)
            assert_int_equal (seen->first [i], k & 0xff);
    }
}

static size_t
s_files (s_fixture_t *f)
{
    DIR *d = opendir (f->dir);
    assert_non_null (d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        n += strncmp (e->d_name, "wal-", 4) == 0;
    closedir (d);
    return n;
}

//  The path of the segment file holding the header number `number`.
static void
s_segment_path (s_fixture_t *f, uint64_t number, char *out, size_t size)
{
    DIR *d = opendir (f->dir);
    assert_non_null (d);
    struct dirent *e;
    out [0] = 0;
    while ((e = readdir (d))) {
        if (strncmp (e->d_name, "wal-", 4))
            continue;
        char path [512];
        snprintf (path, sizeof path, "%s/%s", f->dir, e->d_name);
        FILE *file = fopen (path, "rb");
        assert_non_null (file);
        uint8_t header [16];
        if (fread (header, 1, 16, file) == 16 && memcmp (header, "TROVWAL1", 8) == 0) {
            uint64_t v = 0;
            for (int i = 7; i >= 0; i--)
                v = v << 8 | header [8 + i];
            if (v == number)
                snprintf (out, size, "%s", path);
        }
        fclose (file);
    }
    closedir (d);
    assert_true (out [0]);
}

static void
test_reopen_gives_back_what_was_committed (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 0);
    assert_int_equal (trove_wal_last (wal), 0);
    s_write (wal, 1, 500, 7);
    //  A batch staged and discarded leaves nothing.
    assert_int_equal (trove_wal_add (wal, 501, "x", 1), 0);
    trove_wal_discard (wal);
    assert_int_equal (trove_wal_last (wal), 500);
    trove_wal_destroy (&wal);
    assert_null (wal);

    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 500);
    assert_int_equal (trove_wal_last (wal), 500);
    trove_wal_destroy (&wal);
    //  Above the apply mark only.
    wal = s_open (f, 321, &seen);
    s_expect (&seen, 322, 500);
    //  It goes on where it stopped.
    s_write (wal, 501, 520, 20);
    trove_wal_destroy (&wal);
    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 520);
    trove_wal_destroy (&wal);
}

//  Damage the file at `off` bytes after the header of segment 1.
static void
s_poke (s_fixture_t *f, long off, uint8_t byte)
{
    char path [512];
    s_segment_path (f, 1, path, sizeof path);
    int fd = open (path, O_WRONLY);
    assert_true (fd >= 0);
    assert_int_equal (pwrite (fd, &byte, 1, 4096 + off), 1);
    close (fd);
}

static void
test_a_torn_batch_is_dropped_whole (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    //  Records 1..3 (sizes 1, 2, 3: 32 bytes each) in one batch, 4..6 in the next.
    s_write (wal, 1, 3, 3);
    s_write (wal, 4, 6, 3);
    trove_wal_destroy (&wal);
    //  One byte of record 5's data changed: batch 4..6 goes, 1..3 stays.
    s_poke (f, 4 * 32 + 24, 0x77);
    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 3);
    assert_int_equal (trove_wal_last (wal), 3);
    //  The next batch takes its place, and the damaged bytes never return.
    s_write (wal, 4, 4, 1);
    trove_wal_destroy (&wal);
    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 4);
    trove_wal_destroy (&wal);
}

static void
test_a_batch_cut_short_is_dropped (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    s_write (wal, 1, 3, 3);
    s_write (wal, 4, 6, 3);
    trove_wal_destroy (&wal);
    //  Record 6 (the batch's last, which flags the end) never reached the
    //  disk: its header zeroed.
    for (int i = 0; i < 24; i++)
        s_poke (f, 5 * 32 + i, 0);
    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 3);
    trove_wal_destroy (&wal);
}

static void
test_segments_rotate_and_are_reused (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    //  About 180 bytes a record: 64 KiB holds ~360; 3,000 records need ~9.
    s_write (wal, 1, 3000, 50);
    trove_wal_destroy (&wal);
    assert_true (s_files (f) >= 8);
    wal = s_open (f, 0, &seen);
    s_expect (&seen, 1, 3000);
    //  The tables hold up to 2,900: the log keeps only what is still needed
    //  (the segment written to, the one before it and at most 2 spares).
    trove_wal_trim (wal, 2900);
    uint64_t files = 0, live = 0;
    trove_wal_bytes (wal, &files, &live);
    assert_true (files <= 4 * (SEG + 4096));
    assert_true (live > 0 && live <= 2 * SEG);
    assert_true (s_files (f) <= 4);
    //  More records reuse the trimmed segments: their old records (lower
    //  lseqs, another chain) never come back.
    s_write (wal, 3001, 4000, 50);
    trove_wal_destroy (&wal);
    wal = s_open (f, 2900, &seen);
    s_expect (&seen, 2901, 4000);
    trove_wal_destroy (&wal);
}

static void
test_a_gap_starts_a_new_segment (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    s_write (wal, 1, 10, 5);
    trove_wal_destroy (&wal);
    //  The tables are at 100 (the log lost its tail before): the log goes on
    //  from 101, in a segment of its own, and both read back.
    wal = s_open (f, 100, &seen);
    s_expect (&seen, 1, 0);
    assert_int_equal (trove_wal_last (wal), 100);
    s_write (wal, 101, 110, 5);
    trove_wal_destroy (&wal);
    wal = s_open (f, 100, &seen);
    s_expect (&seen, 101, 110);
    trove_wal_destroy (&wal);
    //  Below the mark, a missing record is an error, not a silent gap.
    char *err = NULL;
    memset (&seen, 0, sizeof seen);
    assert_null (trove_wal_new (f->dir, true, SEG, 5, s_collect, &seen, &err));
    assert_non_null (err);
    assert_non_null (strstr (err, "missing"));
    free (err);
}

static void
test_a_refused_record_fails_the_open (void **state)
{
    s_fixture_t *f = *state;
    s_seen_t seen;
    trove_wal_t *wal = s_open (f, 0, &seen);
    s_write (wal, 1, 3, 3);
    trove_wal_destroy (&wal);
    //  The ledger refuses a record it cannot read: the open fails and says which.
    char *err = NULL;
    assert_null (trove_wal_new (f->dir, true, SEG, 0, s_refuse, NULL, &err));
    assert_non_null (err);
    assert_non_null (strstr (err, "record 2"));
    free (err);
    err = NULL;
    //  No callback: records are skipped (a tool that only wants the tail).
    wal = trove_wal_new (f->dir, true, SEG, 0, NULL, NULL, &err);
    assert_non_null (wal);
    assert_int_equal (trove_wal_last (wal), 3);
    trove_wal_destroy (&wal);
}

static void
test_open_errors (void **state)
{
    (void) state;
    char *err = NULL;
    assert_null (trove_wal_new ("/proc/trove-wal-cannot-exist", true, 0, 0, NULL, NULL, &err));
    assert_non_null (err);
    assert_non_null (strstr (err, "/proc/trove-wal-cannot-exist"));
    free (err);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_reopen_gives_back_what_was_committed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_a_torn_batch_is_dropped_whole, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_a_batch_cut_short_is_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_segments_rotate_and_are_reused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_a_gap_starts_a_new_segment, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_a_refused_record_fails_the_open, s_setup, s_teardown),
        cmocka_unit_test (test_open_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
