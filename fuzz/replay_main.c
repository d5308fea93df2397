/*  Runs a fuzz target over files, without libFuzzer: the regression corpus
    replayed by ctest in the ordinary builds (gcc, and ASan/UBSan), so every
    input that once crashed stays a test even where clang is missing.
    Usage: fuzz-replay-TARGET FILE|DIR... ; exit 0 when every input ran. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
s_run_file (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek (f, 0, SEEK_END);
    long size = ftell (f);
    fseek (f, 0, SEEK_SET);
    uint8_t *data = malloc (size > 0 ? (size_t) size : 1);
    if (!data || (size > 0 && fread (data, 1, (size_t) size, f) != (size_t) size)) {
        fclose (f);
        free (data);
        return -1;
    }
    fclose (f);
    LLVMFuzzerTestOneInput (data, (size_t) size);
    free (data);
    return 0;
}

int
main (int argc, char *argv [])
{
    size_t ran = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat (argv [i], &st))
            continue;  //  an absent folder (no regressions yet) is fine
        if (!S_ISDIR (st.st_mode)) {
            if (s_run_file (argv [i]))
                return 1;
            ran++;
            continue;
        }
        DIR *dir = opendir (argv [i]);
        struct dirent *e;
        while (dir && (e = readdir (dir))) {
            if (e->d_name [0] == '.')
                continue;
            char path [4096];
            snprintf (path, sizeof path, "%s/%s", argv [i], e->d_name);
            if (s_run_file (path)) {
                closedir (dir);
                return 1;
            }
            ran++;
        }
        if (dir)
            closedir (dir);
    }
    printf ("%zu inputs ran\n", ran);
    return 0;
}
