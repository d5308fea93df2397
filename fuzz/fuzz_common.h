/*  Shared by the fuzz targets: one cluster config, loaded once, with a
    source `web` that has a key (KEY below, so inputs can get past the
    authentication), allowed types and a backdating window, and a source
    `partner` without keys. Rate limits are high so that their code runs
    without refusing every input. */
#ifndef TROVE_FUZZ_COMMON_H_INCLUDED
#define TROVE_FUZZ_COMMON_H_INCLUDED

#include "trove_cfg.h"
#include "trove_source.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_KEY "trk_fuzz_key_0000000000000000"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

__attribute__ ((unused)) static trove_cfg_t *
fuzz_cfg (void)
{
    static trove_cfg_t *cfg;
    if (cfg)
        return cfg;
    char hash [TROVE_SOURCE_HASH_SIZE];
    if (trove_source_key_hash (FUZZ_KEY, strlen (FUZZ_KEY), hash))
        abort ();
    char path [] = "/tmp/trove-fuzz-cfg-XXXXXX";
    int fd = mkstemp (path);
    FILE *f = fd >= 0 ? fdopen (fd, "w") : NULL;
    if (!f)
        abort ();
    fprintf (
        f,
        "limits\n    max_batch = 100\n    max_attrs = 8\n    max_body = 65536\n    max_event = 4096\n"
        "    user_rate = 1000000\n    user_burst = 1000000\n"
        "sources\n    web\n        keys = \"%s\"\n        types = \"checkin,visit,purchase,undo\"\n"
        "        max_past_s = 86400\n        rate = 1000000\n        burst = 1000000\n    partner\n"
        "broker\n    pub = \"tcp://127.0.0.1:1\"\n    sub = \"tcp://127.0.0.1:2\"\n"
        "    control = \"tcp://127.0.0.1:3\"\nscorer\n    s0\n        events = \"tcp://127.0.0.1:5\"\n"
        "        query = \"tcp://127.0.0.1:6\"\n        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
        hash);
    fclose (f);
    cfg = trove_cfg_load (path, NULL);
    unlink (path);
    if (!cfg)
        abort ();
    return cfg;
}

__attribute__ ((unused)) static trove_sources_t *
fuzz_sources (void)
{
    static trove_sources_t *sources;
    if (!sources && !(sources = trove_sources_new (fuzz_cfg (), NULL)))
        abort ();
    return sources;
}

//  A fixed "now" so that a crash replays the same (2026-03-10T00:00:00Z).
#define FUZZ_NOW_MS 1773100800000LL

#endif
