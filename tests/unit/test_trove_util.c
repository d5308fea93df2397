/*  test_trove_util - clocks, logging, UTF-8, hex, big-endian, directories,
    files and RFC 3339 (lib/core/trove_util). Expected dates were computed
    independently with Python's datetime, not with the code under test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  A fresh directory under /tmp; removed by s_rmtree.
static void
s_tempdir (char *out, size_t size)
{
    snprintf (out, size, "/tmp/trove-test-util-XXXXXX");
    assert_non_null (mkdtemp (out));
}

static void
s_rmtree (const char *dir)
{
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
}

static void
s_write_file (const char *path, const void *data, size_t len)
{
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

static bool
s_is_dir (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

//  ---------------------------------------------------------------------------
//  Clocks

static void
test_now_ms_matches_wall_clock (void **state)
{
    (void) state;
    //  Bounds from the same precise clock: time () reads a coarse clock that
    //  can lag the precise one across a second boundary.
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    int64_t before = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t now = trove_now_ms ();
    clock_gettime (CLOCK_REALTIME, &ts);
    int64_t after = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true (now >= before);
    assert_true (now <= after);
    //  Sanity: after 2020-01-01 and before 2100-01-01.
    assert_true (now > 1577836800000LL);
    assert_true (now < 4102444800000LL);
}

static void
test_now_us_agrees_with_now_ms (void **state)
{
    (void) state;
    int64_t ms = trove_now_ms ();
    int64_t us = trove_now_us ();
    int64_t ms2 = trove_now_ms ();
    assert_true (us / 1000 >= ms);
    assert_true (us / 1000 <= ms2);
}

static void
test_mono_us_advances (void **state)
{
    (void) state;
    int64_t a = trove_mono_us ();
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep (&pause, NULL);
    int64_t b = trove_mono_us ();
    assert_true (b - a >= 20000);
    assert_true (b - a < 5 * 1000 * 1000);
    int64_t prev = trove_mono_us ();
    for (int i = 0; i < 1000; i++) {
        int64_t now = trove_mono_us ();
        assert_true (now >= prev);
        prev = now;
    }
}

//  ---------------------------------------------------------------------------
//  Logging: capture stderr into a file.

typedef struct {
    char dir [256];
    char path [300];
    int saved;
} s_capture_t;

static void
s_capture_start (s_capture_t *c)
{
    s_tempdir (c->dir, sizeof c->dir);
    snprintf (c->path, sizeof c->path, "%s/stderr", c->dir);
    fflush (stderr);
    c->saved = dup (STDERR_FILENO);
    assert_true (c->saved >= 0);
    int fd = open (c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    assert_int_equal (dup2 (fd, STDERR_FILENO), STDERR_FILENO);
    close (fd);
}

//  Returns what was written to stderr; the caller frees.
static char *
s_capture_stop (s_capture_t *c)
{
    fflush (stderr);
    assert_int_equal (dup2 (c->saved, STDERR_FILENO), STDERR_FILENO);
    close (c->saved);
    char *text = trove_read_file (c->path, NULL);
    assert_non_null (text);
    s_rmtree (c->dir);
    return text;
}

static void
test_log_line_format (void **state)
{
    (void) state;
    unsetenv ("TROVE_DEBUG");
    trove_log_init ("tester");
    s_capture_t cap;
    s_capture_start (&cap);
    int64_t before = trove_now_ms ();
    trove_log ('I', "hello %d %s", 42, "world");
    trove_log ('W', "careful");
    trove_log ('E', "broken");
    int64_t after = trove_now_ms ();
    char *text = s_capture_stop (&cap);

    //  Line 1: "<rfc3339 stamp> INFO tester[pid]: hello 42 world"
    char stamp [32];
    memcpy (stamp, text, 24);
    stamp [24] = 0;
    int64_t ms;
    assert_int_equal (trove_parse_rfc3339 (stamp, &ms), 0);
    assert_true (ms >= before && ms <= after);
    assert_int_equal (stamp [23], 'Z');
    char expect [128];
    snprintf (expect, sizeof expect, " INFO tester[%d]: hello 42 world\n", (int) getpid ());
    assert_memory_equal (text + 24, expect, strlen (expect));

    char *line2 = strchr (text, '\n') + 1;
    snprintf (expect, sizeof expect, " WARN tester[%d]: careful\n", (int) getpid ());
    assert_memory_equal (line2 + 24, expect, strlen (expect));
    char *line3 = strchr (line2, '\n') + 1;
    snprintf (expect, sizeof expect, " ERROR tester[%d]: broken\n", (int) getpid ());
    assert_memory_equal (line3 + 24, expect, strlen (expect));
    assert_string_equal (strchr (line3, '\n'), "\n");
    free (text);
}

static void
test_log_debug_only_with_env (void **state)
{
    (void) state;
    unsetenv ("TROVE_DEBUG");
    trove_log_init ("dbg");
    s_capture_t cap;
    s_capture_start (&cap);
    trove_log ('D', "hidden");
    char *text = s_capture_stop (&cap);
    assert_string_equal (text, "");
    free (text);

    setenv ("TROVE_DEBUG", "1", 1);
    trove_log_init ("dbg");
    s_capture_start (&cap);
    trove_log ('D', "shown");
    text = s_capture_stop (&cap);
    assert_non_null (strstr (text, " DEBUG dbg["));
    assert_non_null (strstr (text, "]: shown\n"));
    free (text);
    unsetenv ("TROVE_DEBUG");
    trove_log_init ("trove");
}

static void
test_log_long_message_is_truncated_to_one_line (void **state)
{
    (void) state;
    trove_log_init ("long");
    char big [3000];
    memset (big, 'x', sizeof big - 1);
    big [sizeof big - 1] = 0;
    s_capture_t cap;
    s_capture_start (&cap);
    trove_log ('I', "%s", big);
    char *text = s_capture_stop (&cap);
    char *colon = strstr (text, "]: ");
    assert_non_null (colon);
    size_t xs = strspn (colon + 3, "x");
    assert_int_equal (xs, 1023);
    assert_string_equal (colon + 3 + xs, "\n");
    free (text);
    trove_log_init ("trove");
}

//  ---------------------------------------------------------------------------
//  UTF-8

#define VALID(s) assert_true (trove_utf8_valid ((s), sizeof (s) - 1))
#define INVALID(s) assert_false (trove_utf8_valid ((s), sizeof (s) - 1))

static void
test_utf8_valid_text (void **state)
{
    (void) state;
    VALID ("");
    VALID ("plain ascii ~!@#$%^&*()");
    VALID ("caf\xc3\xa9");       //  U+00E9, 2 bytes
    VALID ("\xc2\x80");          //  U+0080, smallest 2-byte
    VALID ("\xdf\xbf");          //  U+07FF, largest 2-byte
    VALID ("\xe0\xa0\x80");      //  U+0800, smallest 3-byte
    VALID ("\xe2\x82\xac");      //  U+20AC euro sign
    VALID ("\xed\x9f\xbf");      //  U+D7FF, just below surrogates
    VALID ("\xee\x80\x80");      //  U+E000, just above surrogates
    VALID ("\xef\xbf\xbf");      //  U+FFFF
    VALID ("\xf0\x90\x80\x80");  //  U+10000, smallest 4-byte
    VALID ("\xf0\x9f\x98\x80");  //  U+1F600 emoji
    VALID ("\xf4\x8f\xbf\xbf");  //  U+10FFFF, the last code point
    VALID ("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e ok");
}

static void
test_utf8_overlong (void **state)
{
    (void) state;
    INVALID ("\xc0\x80");          //  NUL as 2 bytes
    INVALID ("\xc1\xbf");          //  U+007F as 2 bytes
    INVALID ("\xe0\x80\x80");      //  NUL as 3 bytes
    INVALID ("\xe0\x9f\xbf");      //  U+07FF as 3 bytes
    INVALID ("\xf0\x80\x80\x80");  //  NUL as 4 bytes
    INVALID ("\xf0\x8f\xbf\xbf");  //  U+FFFF as 4 bytes
}

static void
test_utf8_surrogates (void **state)
{
    (void) state;
    INVALID ("\xed\xa0\x80");              //  U+D800
    INVALID ("\xed\xaf\xbf");              //  U+DBFF
    INVALID ("\xed\xb0\x80");              //  U+DC00
    INVALID ("\xed\xbf\xbf");              //  U+DFFF
    INVALID ("\xed\xa0\xbd\xed\xb8\x80");  //  CESU-8 pair for U+1F600
}

static void
test_utf8_truncated_and_stray (void **state)
{
    (void) state;
    INVALID ("\xc3");
    INVALID ("abc\xc3");
    INVALID ("\xe2\x82");
    INVALID ("\xf0\x9f\x98");
    INVALID ("\xf0\x9f");
    INVALID ("\xc3"
             "a");             //  lead byte followed by ASCII
    INVALID ("\xe2\x28\xa1");  //  bad second byte
    INVALID ("\xe2\x82\x28");  //  bad third byte
    INVALID ("\x80");          //  stray continuation
    INVALID ("a\xbf"
             "b");
    //  The length is honoured: a valid sequence cut by len is truncated...
    assert_false (trove_utf8_valid ("caf\xc3\xa9", 4));
    //  ...and bytes beyond len are not looked at.
    assert_true (trove_utf8_valid ("abc\xff", 3));
    assert_true (trove_utf8_valid ("abc\x01", 3));
}

static void
test_utf8_above_max_and_bad_lead (void **state)
{
    (void) state;
    INVALID ("\xf4\x90\x80\x80");  //  U+110000
    INVALID ("\xf4\xbf\xbf\xbf");
    INVALID ("\xf5\x80\x80\x80");
    INVALID ("\xf7\xbf\xbf\xbf");          //  U+1FFFFF
    INVALID ("\xf8\x88\x80\x80\x80");      //  5-byte form
    INVALID ("\xfc\x84\x80\x80\x80\x80");  //  6-byte form
    INVALID ("\xfe");
    INVALID ("\xff");
}

static void
test_utf8_control_characters (void **state)
{
    (void) state;
    INVALID ("a\x00"
             "b");  //  embedded NUL
    INVALID ("\x01");
    INVALID ("tab\there");
    INVALID ("line\n");
    INVALID ("cr\r");
    INVALID ("\x1b[31m");  //  ESC
    INVALID ("\x1f");
    INVALID ("del\x7f");
    VALID (" ");  //  0x20 is the first allowed
    VALID ("~");  //  0x7e is the last ASCII allowed
}

//  ---------------------------------------------------------------------------
//  Hex

static void
test_hex (void **state)
{
    (void) state;
    const uint8_t bytes [] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
    char out [2 * sizeof bytes + 1];
    memset (out, '?', sizeof out);
    trove_hex (bytes, sizeof bytes, out);
    assert_string_equal (out, "00017f80abcdefff");

    char empty [1] = {'?'};
    trove_hex (bytes, 0, empty);
    assert_string_equal (empty, "");

    uint8_t all [256];
    for (int i = 0; i < 256; i++)
        all [i] = (uint8_t) i;
    char big [513];
    trove_hex (all, sizeof all, big);
    assert_int_equal (strlen (big), 512);
    for (int i = 0; i < 256; i++) {
        char two [3];
        snprintf (two, sizeof two, "%02x", i);
        assert_memory_equal (big + 2 * i, two, 2);
    }
}

//  ---------------------------------------------------------------------------
//  Big-endian

static void
test_be64 (void **state)
{
    (void) state;
    uint8_t buf [10];
    memset (buf, 0xee, sizeof buf);
    trove_put_be64 (buf + 1, 0x0102030405060708ULL);
    const uint8_t want [] = {0xee, 1, 2, 3, 4, 5, 6, 7, 8, 0xee};
    assert_memory_equal (buf, want, sizeof want);
    assert_true (trove_get_be64 (buf + 1) == 0x0102030405060708ULL);

    const uint64_t values [] = {
        0, 1, 0xff, 0x100, 0x7fffffffffffffffULL, 0x8000000000000000ULL, 0xfedcba9876543210ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values [0]; i++) {
        trove_put_be64 (buf, values [i]);
        assert_true (trove_get_be64 (buf) == values [i]);
    }
    trove_put_be64 (buf, UINT64_MAX);
    for (int i = 0; i < 8; i++)
        assert_int_equal (buf [i], 0xff);
    trove_put_be64 (buf, 0x8000000000000000ULL);
    assert_int_equal (buf [0], 0x80);
    assert_int_equal (buf [7], 0x00);
}

static void
test_be32 (void **state)
{
    (void) state;
    uint8_t buf [6];
    memset (buf, 0xee, sizeof buf);
    trove_put_be32 (buf + 1, 0xa1b2c3d4);
    const uint8_t want [] = {0xee, 0xa1, 0xb2, 0xc3, 0xd4, 0xee};
    assert_memory_equal (buf, want, sizeof want);
    assert_int_equal (trove_get_be32 (buf + 1), 0xa1b2c3d4);

    const uint32_t values [] = {0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000, UINT32_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values [0]; i++) {
        trove_put_be32 (buf, values [i]);
        assert_int_equal (trove_get_be32 (buf), values [i]);
    }
}

//  The reason for big-endian keys: memcmp order equals numeric order.
static void
test_be_byte_order_is_numeric_order (void **state)
{
    (void) state;
    const uint64_t sorted [] = {0,
                                1,
                                255,
                                256,
                                65535,
                                65536,
                                1ULL << 32,
                                (1ULL << 32) + 1,
                                0x00ffffffffffffffULL,
                                1ULL << 56,
                                UINT64_MAX - 1,
                                UINT64_MAX};
    size_t n = sizeof sorted / sizeof sorted [0];
    for (size_t i = 0; i + 1 < n; i++) {
        uint8_t a [8], b [8];
        trove_put_be64 (a, sorted [i]);
        trove_put_be64 (b, sorted [i + 1]);
        assert_true (memcmp (a, b, 8) < 0);
    }
    const uint32_t sorted32 [] = {0, 1, 255, 256, 65535, 65536, 0x00ffffff, 0x01000000, UINT32_MAX};
    n = sizeof sorted32 / sizeof sorted32 [0];
    for (size_t i = 0; i + 1 < n; i++) {
        uint8_t a [4], b [4];
        trove_put_be32 (a, sorted32 [i]);
        trove_put_be32 (b, sorted32 [i + 1]);
        assert_true (memcmp (a, b, 4) < 0);
    }
}

//  ---------------------------------------------------------------------------
//  mkdir -p

static void
test_mkdir_p_creates_nested (void **state)
{
    (void) state;
    char dir [256], path [400];
    s_tempdir (dir, sizeof dir);
    snprintf (path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal (trove_mkdir_p (path, 0750), 0);
    assert_true (s_is_dir (path));
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    mode_t mask = umask (0);
    umask (mask);
    assert_int_equal (st.st_mode & 0777, 0750 & ~mask);
    //  Again: existing directories are fine.
    assert_int_equal (trove_mkdir_p (path, 0750), 0);
    //  Trailing slash and a sibling branch.
    snprintf (path, sizeof path, "%s/a/x/y/", dir);
    assert_int_equal (trove_mkdir_p (path, 0700), 0);
    snprintf (path, sizeof path, "%s/a/x/y", dir);
    assert_true (s_is_dir (path));
    s_rmtree (dir);
}

//  trove_fsync_dir syncs a directory and its parent; a path that is not a
//  directory is an error with errno, never a silent success.
static void
test_fsync_dir (void **state)
{
    (void) state;
    char dir [256], path [400];
    s_tempdir (dir, sizeof dir);
    snprintf (path, sizeof path, "%s/sub", dir);
    assert_int_equal (trove_mkdir_p (path, 0700), 0);
    assert_int_equal (trove_fsync_dir (path), 0);
    snprintf (path, sizeof path, "%s/sub/", dir);  //  trailing slash: same parent
    assert_int_equal (trove_fsync_dir (path), 0);
    assert_int_equal (trove_fsync_dir ("/"), 0);
    snprintf (path, sizeof path, "%s/missing", dir);
    errno = 0;
    assert_int_equal (trove_fsync_dir (path), -1);
    assert_int_equal (errno, ENOENT);
    snprintf (path, sizeof path, "%s/file", dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fclose (f);
    errno = 0;
    assert_int_equal (trove_fsync_dir (path), -1);
    assert_int_equal (errno, ENOTDIR);
    s_rmtree (dir);
}

static void
test_parse_instant (void **state)
{
    (void) state;
    int64_t ms = 0;
    assert_int_equal (trove_parse_instant ("1700000000000", &ms), 0);
    assert_int_equal (ms, 1700000000000);
    assert_int_equal (trove_parse_instant ("2023-11-14T22:13:20Z", &ms), 0);
    assert_int_equal (ms, 1700000000000);
    assert_int_equal (trove_parse_instant ("2023-11-15T00:13:20.5+02:00", &ms), 0);
    assert_int_equal (ms, 1700000000500);
    const char *bad [] = {"",
                          "0",
                          "-5",
                          "yesterday",
                          "1700000000000x",
                          "9999999999999999",
                          "2023-13-01T00:00:00Z",
                          "1969-12-31T00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert_int_equal (trove_parse_instant (bad [i], &ms), -1);
    assert_int_equal (trove_parse_instant (NULL, &ms), -1);
}

static void
test_mkdir_p_relative (void **state)
{
    (void) state;
    char dir [256], cwd [512];
    s_tempdir (dir, sizeof dir);
    assert_non_null (getcwd (cwd, sizeof cwd));
    assert_int_equal (chdir (dir), 0);
    assert_int_equal (trove_mkdir_p ("rel/one/two", 0755), 0);
    assert_true (s_is_dir ("rel/one/two"));
    assert_int_equal (chdir (cwd), 0);
    s_rmtree (dir);
}

static void
test_mkdir_p_errors (void **state)
{
    (void) state;
    char dir [256], file [300], path [400];
    s_tempdir (dir, sizeof dir);
    snprintf (file, sizeof file, "%s/file", dir);
    s_write_file (file, "x", 1);
    //  A component is a regular file.
    snprintf (path, sizeof path, "%s/file/sub", dir);
    errno = 0;
    assert_int_equal (trove_mkdir_p (path, 0755), -1);
    assert_int_equal (errno, ENOTDIR);
    //  The path is too long for the internal buffer.
    char *longpath = malloc (5000);
    assert_non_null (longpath);
    memset (longpath, 'a', 4999);
    longpath [0] = '/';
    longpath [4999] = 0;
    errno = 0;
    assert_int_equal (trove_mkdir_p (longpath, 0755), -1);
    assert_int_equal (errno, ENAMETOOLONG);
    free (longpath);
    s_rmtree (dir);
}

//  Like mkdir -p, a path that exists but is not a directory is an error:
//  callers (LMDB data dirs) rely on a directory being there after 0.
static void
test_mkdir_p_existing_file_is_an_error (void **state)
{
    (void) state;
    char dir [256], file [300];
    s_tempdir (dir, sizeof dir);
    snprintf (file, sizeof file, "%s/file", dir);
    s_write_file (file, "x", 1);
    int rc = trove_mkdir_p (file, 0755);
    bool is_dir = s_is_dir (file);
    s_rmtree (dir);
    assert_false (is_dir);
    assert_int_equal (rc, -1);
}

//  ---------------------------------------------------------------------------
//  read_file

static void
test_read_file_small_and_empty (void **state)
{
    (void) state;
    char dir [256], path [300];
    s_tempdir (dir, sizeof dir);
    snprintf (path, sizeof path, "%s/small", dir);
    s_write_file (path, "hello\nworld\n", 12);
    size_t size = 999;
    char *text = trove_read_file (path, &size);
    assert_non_null (text);
    assert_int_equal (size, 12);
    assert_string_equal (text, "hello\nworld\n");
    free (text);
    //  size_p is optional.
    text = trove_read_file (path, NULL);
    assert_string_equal (text, "hello\nworld\n");
    free (text);

    snprintf (path, sizeof path, "%s/empty", dir);
    s_write_file (path, "", 0);
    size = 999;
    text = trove_read_file (path, &size);
    assert_non_null (text);
    assert_int_equal (size, 0);
    assert_string_equal (text, "");
    free (text);
    s_rmtree (dir);
}

static void
test_read_file_binary_and_large (void **state)
{
    (void) state;
    char dir [256], path [300];
    s_tempdir (dir, sizeof dir);
    //  Sizes around the internal 4 KiB buffer and its doublings.
    const size_t sizes [] = {1, 4094, 4095, 4096, 4097, 8191, 8192, 100000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes [0]; k++) {
        size_t n = sizes [k];
        uint8_t *data = malloc (n);
        assert_non_null (data);
        for (size_t i = 0; i < n; i++)
            data [i] = (uint8_t) (i * 7 + k);  //  includes NUL bytes
        snprintf (path, sizeof path, "%s/f%zu", dir, n);
        s_write_file (path, data, n);
        size_t size = 0;
        char *text = trove_read_file (path, &size);
        assert_non_null (text);
        assert_int_equal (size, n);
        assert_memory_equal (text, data, n);
        assert_int_equal (text [n], 0);
        free (text);
        free (data);
    }
    s_rmtree (dir);
}

static void
test_read_file_errors (void **state)
{
    (void) state;
    char dir [256], path [300];
    s_tempdir (dir, sizeof dir);
    snprintf (path, sizeof path, "%s/missing", dir);
    size_t size = 77;
    assert_null (trove_read_file (path, &size));
    assert_int_equal (size, 77);
    //  A directory opens but cannot be read.
    assert_null (trove_read_file (dir, &size));
    s_rmtree (dir);
}

//  ---------------------------------------------------------------------------
//  RFC 3339

static int64_t
s_parse_ok (const char *text)
{
    int64_t ms = 0x5a5a5a5a;
    if (trove_parse_rfc3339 (text, &ms) != 0)
        fail_msg ("'%s' should parse", text);
    return ms;
}

static void
test_rfc3339_parse_valid (void **state)
{
    (void) state;
    assert_int_equal (s_parse_ok ("1970-01-01T00:00:00Z"), 0);
    assert_int_equal (s_parse_ok ("2026-03-10T00:00:00Z"), 1773100800000LL);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00Z"), 1773129600000LL);
    assert_int_equal (s_parse_ok ("2024-02-29T12:34:56.789Z"), 1709210096789LL);
    assert_int_equal (s_parse_ok ("2000-02-29T00:00:00Z"), 951782400000LL);
    assert_int_equal (s_parse_ok ("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    assert_true (s_parse_ok ("1969-12-31T23:59:59.999Z") == -1);
    //  Lower case and space separator (RFC 3339 section 5.6 note).
    assert_int_equal (s_parse_ok ("2026-03-10t08:00:00z"), 1773129600000LL);
    assert_int_equal (s_parse_ok ("2026-03-10 08:00:00Z"), 1773129600000LL);
}

static void
test_rfc3339_parse_offsets (void **state)
{
    (void) state;
    assert_int_equal (s_parse_ok ("2026-03-10T01:00:00.5+02:00"), 1773097200500LL);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00-05:30"), 1773149400000LL);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00+00:00"), 1773129600000LL);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00-00:00"), 1773129600000LL);
    //  The same instant written in three zones.
    assert_int_equal (s_parse_ok ("2026-03-10T13:45:00+05:45"), s_parse_ok ("2026-03-10T08:00:00Z"));
    assert_int_equal (s_parse_ok ("2026-03-09T23:00:00-09:00"), s_parse_ok ("2026-03-10T08:00:00Z"));
    //  An offset can cross a day and a year boundary.
    assert_int_equal (s_parse_ok ("2026-01-01T00:30:00+01:00"), s_parse_ok ("2025-12-31T23:30:00Z"));
}

static void
test_rfc3339_parse_fractions (void **state)
{
    (void) state;
    int64_t base = 1773129600000LL;
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.5Z"), base + 500);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.05Z"), base + 50);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.005Z"), base + 5);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.123Z"), base + 123);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.000Z"), base);
    //  Sub-millisecond digits are truncated, not rounded.
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.123456789Z"), base + 123);
    assert_int_equal (s_parse_ok ("2026-03-10T08:00:00.9999Z"), base + 999);
    //  A leap second folds into :59.
    assert_int_equal (s_parse_ok ("2016-12-31T23:59:60Z"), s_parse_ok ("2016-12-31T23:59:59Z"));
}

static void
test_rfc3339_parse_invalid (void **state)
{
    (void) state;
    const char *bad [] = {
        "",
        "garbage",
        "2026",
        "2026-03-10",             //  date only
        "2026-03-10T08:00:00",    //  no zone
        "2026-03-10T08:00Z",      //  no seconds
        "2026-03-10T08:00:00.Z",  //  fraction without digits
        "2026-03-10T08:00:00ZZ",  //  trailing garbage
        "2026-03-10T08:00:00Z ",
        "2026-03-10T08:00:00+02",  //  offset without minutes
        "2026-03-10T08:00:00+0200",
        "2026-03-10T08:00:00+24:00",
        "2026-03-10T08:00:00+02:60",
        "2026-03-10X08:00:00Z",
        "2026/03/10T08:00:00Z",
        "26-03-10T08:00:00Z",
        "2026-3-10T08:00:00Z",
        "2026-03-1T08:00:00Z",
        "2026-03-10T8:00:00Z",
        "+2026-03-10T08:00:00Z",
        " 2026-03-10T08:00:00Z",
        "2026-00-10T08:00:00Z",  //  month 0
        "2026-13-10T08:00:00Z",  //  month 13
        "2026-03-00T08:00:00Z",  //  day 0
        "2026-03-32T08:00:00Z",
        "2025-02-29T00:00:00Z",  //  2025 is not a leap year
        "1900-02-29T00:00:00Z",  //  nor 1900
        "2100-02-29T00:00:00Z",  //  nor 2100
        "2024-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-06-31T00:00:00Z",
        "2026-09-31T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-03-10T24:00:00Z",
        "2026-03-10T08:60:00Z",
        "2026-03-10T08:00:61Z",
        "2026-03-10T08:00:00.5",
        "2026-03-10T08:00:0aZ",
        "1773129600000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        int64_t ms = 12345;
        if (trove_parse_rfc3339 (bad [i], &ms) != -1)
            fail_msg ("'%s' should not parse", bad [i]);
        assert_int_equal (ms, 12345);  //  untouched on error
    }
}

static void
test_rfc3339_format (void **state)
{
    (void) state;
    char out [40];
    trove_format_rfc3339 (0, out, sizeof out);
    assert_string_equal (out, "1970-01-01T00:00:00.000Z");
    trove_format_rfc3339 (1773129600000LL, out, sizeof out);
    assert_string_equal (out, "2026-03-10T08:00:00.000Z");
    trove_format_rfc3339 (1709210096789LL, out, sizeof out);
    assert_string_equal (out, "2024-02-29T12:34:56.789Z");
    trove_format_rfc3339 (1773097200500LL, out, sizeof out);
    assert_string_equal (out, "2026-03-09T23:00:00.500Z");
    trove_format_rfc3339 (253402300799999LL, out, sizeof out);
    assert_string_equal (out, "9999-12-31T23:59:59.999Z");
    //  Before the epoch the fraction stays positive.
    trove_format_rfc3339 (-1, out, sizeof out);
    assert_string_equal (out, "1969-12-31T23:59:59.999Z");
    trove_format_rfc3339 (-1000, out, sizeof out);
    assert_string_equal (out, "1969-12-31T23:59:59.000Z");
    trove_format_rfc3339 (-1001, out, sizeof out);
    assert_string_equal (out, "1969-12-31T23:59:58.999Z");
    //  25 bytes is enough; a smaller buffer is truncated, never overrun.
    char exact [25];
    trove_format_rfc3339 (1709210096789LL, exact, sizeof exact);
    assert_string_equal (exact, "2024-02-29T12:34:56.789Z");
    char small [12];
    memset (small, '?', sizeof small);
    trove_format_rfc3339 (1709210096789LL, small, 11);
    assert_string_equal (small, "2024-02-29");
    assert_int_equal (small [11], '?');
}

//  ts_ms comes from the network (any int64): formatting it for an error
//  message must be defined behaviour for every value, not only sane dates.
static void
test_rfc3339_format_extremes (void **state)
{
    (void) state;
    char out [40];
    memset (out, '?', sizeof out);
    trove_format_rfc3339 (INT64_MAX, out, sizeof out);
    assert_non_null (memchr (out, 0, sizeof out));
    memset (out, '?', sizeof out);
    trove_format_rfc3339 (INT64_MIN, out, sizeof out);
    assert_non_null (memchr (out, 0, sizeof out));
    memset (out, '?', sizeof out);
    trove_format_rfc3339 (INT64_MIN + 1, out, sizeof out);
    assert_non_null (memchr (out, 0, sizeof out));
}

static void
test_rfc3339_round_trip (void **state)
{
    (void) state;
    const int64_t values [] = {0,
                               1,
                               999,
                               1000,
                               -1,
                               -999,
                               -86400000,
                               951782400000LL,
                               1709210096789LL,
                               1773129600123LL,
                               4102444799999LL,
                               253402300799999LL};
    char out [40];
    for (size_t i = 0; i < sizeof values / sizeof values [0]; i++) {
        trove_format_rfc3339 (values [i], out, sizeof out);
        assert_int_equal (s_parse_ok (out), values [i]);
    }
    //  A pseudo-random walk over 1970..2200.
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t) (x % 7258118400000ULL);
        trove_format_rfc3339 (ms, out, sizeof out);
        assert_int_equal (strlen (out), 24);
        assert_int_equal (s_parse_ok (out), ms);
    }
    //  parse -> format normalises to UTC with milliseconds.
    trove_format_rfc3339 (s_parse_ok ("2026-03-10T10:00:00.25+02:00"), out, sizeof out);
    assert_string_equal (out, "2026-03-10T08:00:00.250Z");
}

//  A log line a peer can provoke: one per interval, the rest counted and
//  reported with the next line.
static void
test_log_limited (void **state)
{
    (void) state;
    trove_lograte_t rate = {0};
    for (int i = 0; i < 100; i++)
        trove_log_limited (&rate, 60000000, 'W', "bad frame %d", i);
    assert_true (rate.logged_us > 0);
    assert_int_equal (rate.unlogged, 99);  //  one line, 99 counted
    rate.logged_us -= 60000001;            //  the interval has passed
    trove_log_limited (&rate, 60000000, 'W', "bad frame again");
    assert_int_equal (rate.unlogged, 0);  //  that line named the 99
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_log_limited),
        cmocka_unit_test (test_now_ms_matches_wall_clock),
        cmocka_unit_test (test_now_us_agrees_with_now_ms),
        cmocka_unit_test (test_mono_us_advances),
        cmocka_unit_test (test_log_line_format),
        cmocka_unit_test (test_log_debug_only_with_env),
        cmocka_unit_test (test_log_long_message_is_truncated_to_one_line),
        cmocka_unit_test (test_utf8_valid_text),
        cmocka_unit_test (test_utf8_overlong),
        cmocka_unit_test (test_utf8_surrogates),
        cmocka_unit_test (test_utf8_truncated_and_stray),
        cmocka_unit_test (test_utf8_above_max_and_bad_lead),
        cmocka_unit_test (test_utf8_control_characters),
        cmocka_unit_test (test_hex),
        cmocka_unit_test (test_be64),
        cmocka_unit_test (test_be32),
        cmocka_unit_test (test_be_byte_order_is_numeric_order),
        cmocka_unit_test (test_mkdir_p_creates_nested),
        cmocka_unit_test (test_mkdir_p_relative),
        cmocka_unit_test (test_fsync_dir),
        cmocka_unit_test (test_parse_instant),
        cmocka_unit_test (test_mkdir_p_errors),
        cmocka_unit_test (test_mkdir_p_existing_file_is_an_error),
        cmocka_unit_test (test_read_file_small_and_empty),
        cmocka_unit_test (test_read_file_binary_and_large),
        cmocka_unit_test (test_read_file_errors),
        cmocka_unit_test (test_rfc3339_parse_valid),
        cmocka_unit_test (test_rfc3339_parse_offsets),
        cmocka_unit_test (test_rfc3339_parse_fractions),
        cmocka_unit_test (test_rfc3339_parse_invalid),
        cmocka_unit_test (test_rfc3339_format),
        cmocka_unit_test (test_rfc3339_format_extremes),
        cmocka_unit_test (test_rfc3339_round_trip),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
