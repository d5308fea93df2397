/*  test_trove_cfg - the cluster configuration (lib/core/trove_cfg): the sample
    etc/trove.cfg, defaults, and every way a broken file is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_cfg.h"
#include "trove_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TROVE_SOURCE_DIR
#    error "TROVE_SOURCE_DIR must name the source tree (tests/CMakeLists.txt)"
#endif
#define SAMPLE_CFG TROVE_SOURCE_DIR "/etc/trove.cfg"

static char s_dir [256];  //  temp dir for generated configs
static int s_seq;         //  file counter

static int
s_group_setup (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "/tmp/trove-test-cfg-XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    char cmd [300];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

//  Write text into a fresh file; returns its path (static buffer).
static const char *
s_write (const char *text)
{
    static char path [400];
    snprintf (path, sizeof path, "%s/cfg-%d.cfg", s_dir, ++s_seq);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_true (fputs (text, f) >= 0);
    assert_int_equal (fclose (f), 0);
    return path;
}

#define BROKER                             \
    "broker\n"                             \
    "    pub = \"tcp://127.0.0.1:9401\"\n" \
    "    sub = \"tcp://127.0.0.1:9402\"\n" \
    "    control = \"tcp://127.0.0.1:9403\"\n"
#define SOURCES "sources\n    web\n    app\n"
#define SCORER(name, parts)                           \
    "    " name "\n"                                  \
    "        events = \"inproc://" name "-events\"\n" \
    "        query = \"inproc://" name "-query\"\n"   \
    "        partitions = \"" parts "\"\n"            \
    "        data = \"data/" name "\"\n"

//  Loads text that must fail, and checks the message contains want.
static void
s_expect_error (const char *text, const char *want)
{
    const char *path = s_write (text);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    if (cfg) {
        trove_cfg_destroy (&cfg);
        fail_msg ("config should be refused (want '%s'):\n%s", want, text);
    }
    assert_non_null (err);
    if (!strstr (err, want))
        fail_msg ("error '%s' does not contain '%s'", err, want);
    free (err);
    //  Without err_p the same failure is reported by NULL alone.
    assert_null (trove_cfg_load (path, NULL));
}

static trove_cfg_t *
s_load_ok (const char *text)
{
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (s_write (text), &err);
    if (!cfg)
        fail_msg ("config refused: %s\n%s", err ? err : "(no message)", text);
    assert_null (err);
    return cfg;
}

//  ---------------------------------------------------------------------------

static void
test_sample_config_loads (void **state)
{
    (void) state;
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (SAMPLE_CFG, &err);
    if (!cfg)
        fail_msg ("%s: %s", SAMPLE_CFG, err);
    assert_null (err);

    assert_int_equal (trove_cfg_partitions (cfg), 256);
    assert_int_equal (trove_cfg_shards (cfg), 2);
    assert_string_equal (trove_cfg_shard_name (cfg, 0), "s0");
    assert_string_equal (trove_cfg_shard_name (cfg, 1), "s1");
    assert_string_equal (trove_cfg_shard_events (cfg, 0), "tcp://127.0.0.1:7420");
    assert_string_equal (trove_cfg_shard_query (cfg, 0), "tcp://127.0.0.1:7421");
    assert_string_equal (trove_cfg_shard_data (cfg, 0), "/var/lib/trove/s0");
    assert_string_equal (trove_cfg_shard_events (cfg, 1), "tcp://127.0.0.1:7430");
    assert_string_equal (trove_cfg_shard_query (cfg, 1), "tcp://127.0.0.1:7431");
    assert_string_equal (trove_cfg_shard_data (cfg, 1), "/var/lib/trove/s1");

    assert_int_equal (trove_cfg_ingestors (cfg), 1);
    assert_string_equal (trove_cfg_ingestor_name (cfg, 0), "i0");
    assert_string_equal (trove_cfg_ingestor_endpoint (cfg, 0), "tcp://127.0.0.1:7410");
    assert_int_equal (trove_cfg_ingestor_find (cfg, "i0"), 0);
    assert_int_equal (trove_cfg_ingestor_find (cfg, "i1"), -1);
    assert_int_equal (trove_cfg_ingestor_find (cfg, ""), -1);

    assert_string_equal (trove_cfg_broker_pub (cfg), "tcp://127.0.0.1:7401");
    assert_string_equal (trove_cfg_broker_sub (cfg), "tcp://127.0.0.1:7402");
    assert_string_equal (trove_cfg_broker_control (cfg), "tcp://127.0.0.1:7403");
    //  Relative paths are resolved against the config file's folder.
    assert_string_equal (trove_cfg_rules_dir (cfg), TROVE_SOURCE_DIR "/etc/rules");
    assert_true (trove_cfg_map_size (cfg) == (size_t) 4096 * 1024 * 1024);
    assert_true (trove_cfg_sync (cfg));

    const char *known [] = {"web", "mobile", "game", "partner", "load"};
    for (size_t i = 0; i < 5; i++)
        assert_true (trove_cfg_source_known (cfg, known [i]));
    assert_false (trove_cfg_source_known (cfg, "nope"));
    assert_false (trove_cfg_source_known (cfg, "Web"));
    assert_false (trove_cfg_source_known (cfg, ""));
    assert_false (trove_cfg_source_known (cfg, "web "));

    const trove_limits_t *lim = trove_cfg_limits (cfg);
    assert_non_null (lim);
    assert_int_equal (lim->max_batch, 1000);
    assert_int_equal (lim->max_frame, 1048576);
    assert_int_equal (lim->max_attrs, 32);
    assert_int_equal (lim->max_past_ms, 31622400LL * 1000);
    assert_int_equal (lim->max_future_ms, 300LL * 1000);
    //  Not configurable: the documented defaults.
    assert_int_equal (lim->max_source, 64);
    assert_int_equal (lim->max_id, 128);
    assert_int_equal (lim->max_user, 128);
    assert_int_equal (lim->max_type, 64);
    assert_int_equal (lim->max_attr_key, 64);
    assert_int_equal (lim->max_attr_value, 256);

    assert_string_equal (trove_cfg_get (cfg, "trove/partitions", "x"), "256");
    assert_string_equal (trove_cfg_get (cfg, "trove/sync", NULL), "full");
    assert_string_equal (trove_cfg_get (cfg, "scorer/s1/partitions", NULL), "128-255");
    assert_string_equal (trove_cfg_get (cfg, "trove/nothing", "fallback"), "fallback");
    assert_null (trove_cfg_get (cfg, "nothing/at/all", NULL));

    trove_cfg_destroy (&cfg);
    assert_null (cfg);
    trove_cfg_destroy (&cfg);  //  safe twice
    assert_null (cfg);
}

static void
test_sample_shard_map (void **state)
{
    (void) state;
    trove_cfg_t *cfg = trove_cfg_load (SAMPLE_CFG, NULL);
    assert_non_null (cfg);
    for (uint32_t p = 0; p < 256; p++)
        assert_int_equal (trove_cfg_shard_of (cfg, p), p < 128 ? 0 : 1);
    //  Users: partition from the golden vectors (test_trove_hash.c), then the map.
    assert_int_equal (trove_cfg_shard_of_user (cfg, "u1"), 1);      //  partition 243
    assert_int_equal (trove_cfg_shard_of_user (cfg, "alice"), 0);   //  partition 7
    assert_int_equal (trove_cfg_shard_of_user (cfg, "u42"), 0);     //  partition 90
    assert_int_equal (trove_cfg_shard_of_user (cfg, "foobar"), 1);  //  partition 232
    char user [32];
    for (int i = 0; i < 1000; i++) {
        snprintf (user, sizeof user, "user-%d", i);
        uint32_t p = trove_hash_partition (user, strlen (user), 256);
        assert_int_equal (trove_cfg_shard_of_user (cfg, user), trove_cfg_shard_of (cfg, p));
    }
    trove_cfg_destroy (&cfg);
}

static void
test_defaults_and_custom_map (void **state)
{
    (void) state;
    //  No trove or limits section: defaults apply.
    trove_cfg_t *cfg = s_load_ok (BROKER SOURCES "scorer\n" SCORER ("only", "0-255"));
    assert_int_equal (trove_cfg_partitions (cfg), 256);
    assert_int_equal (trove_cfg_shards (cfg), 1);
    assert_true (trove_cfg_sync (cfg));
    assert_true (trove_cfg_map_size (cfg) == (size_t) 4096 * 1024 * 1024);
    //  rules defaults to "rules" next to the config file; data is resolved too.
    char want_path [400];
    snprintf (want_path, sizeof want_path, "%s/rules", s_dir);
    assert_string_equal (trove_cfg_rules_dir (cfg), want_path);
    snprintf (want_path, sizeof want_path, "%s/data/only", s_dir);
    assert_string_equal (trove_cfg_shard_data (cfg, 0), want_path);
    assert_int_equal (trove_cfg_ingestors (cfg), 0);
    assert_int_equal (trove_cfg_ingestor_find (cfg, "i0"), -1);
    const trove_limits_t *lim = trove_cfg_limits (cfg);
    assert_int_equal (lim->max_batch, 1000);
    assert_int_equal (lim->max_frame, 1024 * 1024);
    assert_int_equal (lim->max_attrs, 32);
    assert_int_equal (lim->max_past_ms, 366LL * 86400 * 1000);
    assert_int_equal (lim->max_future_ms, 5 * 60 * 1000);
    assert_true (trove_cfg_source_known (cfg, "app"));
    trove_cfg_destroy (&cfg);

    //  Small cluster, comma lists, sync = none, knobs set.
    cfg = s_load_ok ("trove\n    partitions = 6\n    sync = none\n    map_size_mb = 16\n"
                     "    rules = \"/srv/rules\"\n"
                     "limits\n    max_batch = 7\n    max_frame = 4096\n    max_attrs = 0\n"
                     "    max_past_s = 60\n    max_future_s = 0\n" BROKER SOURCES
                     "ingestor\n    a\n        endpoint = \"inproc://a\"\n"
                     "    b\n        endpoint = \"inproc://b\"\n"
                     "scorer\n" SCORER ("x", "0,2,4") SCORER ("y", "5,1-1,3"));
    assert_int_equal (trove_cfg_partitions (cfg), 6);
    assert_false (trove_cfg_sync (cfg));
    assert_true (trove_cfg_map_size (cfg) == 16 * 1024 * 1024);
    assert_string_equal (trove_cfg_rules_dir (cfg), "/srv/rules");
    lim = trove_cfg_limits (cfg);
    assert_int_equal (lim->max_batch, 7);
    assert_int_equal (lim->max_frame, 4096);
    assert_int_equal (lim->max_attrs, 0);
    assert_int_equal (lim->max_past_ms, 60000);
    assert_int_equal (lim->max_future_ms, 0);
    const size_t want [] = {0, 1, 0, 1, 0, 1};
    for (uint32_t p = 0; p < 6; p++)
        assert_int_equal (trove_cfg_shard_of (cfg, p), want [p]);
    assert_string_equal (trove_cfg_shard_name (cfg, 1), "y");
    assert_string_equal (trove_cfg_shard_events (cfg, 1), "inproc://y-events");
    assert_int_equal (trove_cfg_ingestors (cfg), 2);
    assert_int_equal (trove_cfg_ingestor_find (cfg, "b"), 1);
    assert_string_equal (trove_cfg_ingestor_endpoint (cfg, 1), "inproc://b");
    assert_string_equal (trove_cfg_ingestor_name (cfg, 0), "a");
    //  "u1" hashes to partition 0x08c47b07b56747f3 % 6 = 5, owned by y.
    assert_int_equal (trove_cfg_shard_of_user (cfg, "u1"), 1);
    trove_cfg_destroy (&cfg);
}

//  A config named without a folder resolves paths against the working directory.
static void
test_relative_config_path (void **state)
{
    (void) state;
    const char *path = s_write (BROKER SOURCES "trove\n    rules = \"hunts\"\n"
                                               "scorer\n" SCORER ("s0", "0-255"));
    char cwd [512];
    assert_non_null (getcwd (cwd, sizeof cwd));
    assert_int_equal (chdir (s_dir), 0);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (strrchr (path, '/') + 1, &err);
    assert_int_equal (chdir (cwd), 0);
    if (!cfg)
        fail_msg ("%s", err);
    assert_string_equal (trove_cfg_rules_dir (cfg), "hunts");
    assert_string_equal (trove_cfg_shard_data (cfg, 0), "data/s0");
    trove_cfg_destroy (&cfg);

    //  Absolute paths are kept as written.
    cfg = s_load_ok (BROKER SOURCES "trove\n    rules = \"/abs/hunts\"\n"
                                    "scorer\n    s0\n        events = \"e\"\n        query = \"q\"\n"
                                    "        partitions = \"0-255\"\n        data = \"/abs/data\"\n");
    assert_string_equal (trove_cfg_rules_dir (cfg), "/abs/hunts");
    assert_string_equal (trove_cfg_shard_data (cfg, 0), "/abs/data");
    trove_cfg_destroy (&cfg);
}

static void
test_nonexistent_file (void **state)
{
    (void) state;
    char *err = NULL;
    char path [400];
    snprintf (path, sizeof path, "%s/does-not-exist.cfg", s_dir);
    assert_null (trove_cfg_load (path, &err));
    assert_non_null (err);
    assert_non_null (strstr (err, "cannot read config"));
    assert_non_null (strstr (err, "does-not-exist.cfg"));
    assert_non_null (strstr (err, "No such file"));
    free (err);
    assert_null (trove_cfg_load (path, NULL));
}

static void
test_missing_scorer (void **state)
{
    (void) state;
    s_expect_error (BROKER SOURCES, "no scorer shards configured");
    s_expect_error (BROKER SOURCES "scorer\n", "no scorer shards configured");
    //  A scorer without one of its keys.
    s_expect_error (BROKER SOURCES "scorer\n    s0\n        query = \"q\"\n        partitions = \"0-255\"\n"
                                   "        data = \"d\"\n",
                    "scorer/s0: missing 'events'");
    s_expect_error (BROKER SOURCES "scorer\n    s0\n        events = \"e\"\n        partitions = \"0-255\"\n"
                                   "        data = \"d\"\n",
                    "scorer/s0: missing 'query'");
    s_expect_error (BROKER SOURCES "scorer\n    s0\n        events = \"e\"\n        query = \"q\"\n"
                                   "        partitions = \"0-255\"\n",
                    "scorer/s0: missing 'data'");
    s_expect_error (BROKER SOURCES "scorer\n    s0\n        events = \"e\"\n        query = \"q\"\n"
                                   "        data = \"d\"\n",
                    "scorer/s0: missing 'partitions'");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", ""), "scorer/s0: missing 'partitions'");
}

static void
test_overlapping_partitions (void **state)
{
    (void) state;
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-128") SCORER ("s1", "128-255"),
                    "partition 128 is given to both scorer s0 and scorer s1");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-255") SCORER ("s1", "17"),
                    "partition 17 is given to both scorer s0 and scorer s1");
    //  Within one scorer.
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-200,100-255"),
                    "partition 100 is given to both scorer s0 and scorer s0");
}

static void
test_uncovered_partition (void **state)
{
    (void) state;
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-127") SCORER ("s1", "129-255"),
                    "partition 128 belongs to no scorer: the shard map must cover 0-255");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-254"), "partition 255 belongs to no scorer");
    s_expect_error ("trove\n    partitions = 4\n" BROKER SOURCES "scorer\n" SCORER ("s0", "1-3"),
                    "partition 0 belongs to no scorer: the shard map must cover 0-3");
}

static void
test_bad_partitions_syntax (void **state)
{
    (void) state;
    const char *bad [] = {"abc", "0-", "-", "0-12x", "0-127;128-255", "0-127,,128-255", "0 - 255", "0-255 x"};
    char text [1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        snprintf (text, sizeof text,
                  BROKER SOURCES "scorer\n    s0\n        events = \"e\"\n        query = \"q\"\n"
                                 "        partitions = \"%s\"\n        data = \"d\"\n",
                  bad [i]);
        char want [128];
        snprintf (want, sizeof want, "scorer s0: bad partitions '%s'", bad [i]);
        s_expect_error (text, want);
    }
    //  Out of range and reversed ranges.
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0-256"),
                    "scorer s0: partitions '0-256' outside 0-255");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "300"), "outside 0-255");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "255-0"), "outside 0-255");
    s_expect_error (BROKER SOURCES "scorer\n" SCORER ("s0", "0--255"), "0--255");
}

static void
test_bad_values (void **state)
{
    (void) state;
    const char *ok = BROKER SOURCES "scorer\n" SCORER ("s0", "0-255");
    char text [2048];
    //  sync
    snprintf (text, sizeof text, "trove\n    sync = sometimes\n%s", ok);
    s_expect_error (text, "trove/sync = 'sometimes': want full or none");
    snprintf (text, sizeof text, "trove\n    sync = FULL\n%s", ok);
    s_expect_error (text, "want full or none");
    //  partitions count
    const char *bad_counts [] = {"0", "65536", "-1", "abc", "12x", ""};
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts [0]; i++) {
        snprintf (text, sizeof text, "trove\n    partitions = \"%s\"\n%s", bad_counts [i], ok);
        s_expect_error (text, "trove/partitions: want an integer in 1..65535");
    }
    //  map size
    snprintf (text, sizeof text, "trove\n    map_size_mb = 0\n%s", ok);
    s_expect_error (text, "trove/map_size_mb: want an integer in 1..16777216");
    //  limits
    snprintf (text, sizeof text, "limits\n    max_batch = 0\n%s", ok);
    s_expect_error (text, "limits/max_batch = '0': want an integer in 1..100000");
    snprintf (text, sizeof text, "limits\n    max_frame = 4095\n%s", ok);
    s_expect_error (text, "limits/max_frame = '4095': want an integer in 4096..67108864");
    snprintf (text, sizeof text, "limits\n    max_attrs = -3\n%s", ok);
    s_expect_error (text, "limits/max_attrs = '-3'");
    snprintf (text, sizeof text, "limits\n    max_future_s = soon\n%s", ok);
    s_expect_error (text, "limits/max_future_s = 'soon'");
    snprintf (text, sizeof text, "limits\n    max_past_s = 99999999999999999999999\n%s", ok);
    s_expect_error (text, "limits/max_past_s");
}

static void
test_missing_broker_and_ingestor_endpoint (void **state)
{
    (void) state;
    s_expect_error (SOURCES "scorer\n" SCORER ("s0", "0-255"), "broker: missing 'broker/pub'");
    s_expect_error ("broker\n    pub = \"p\"\n    sub = \"s\"\n" SOURCES "scorer\n" SCORER ("s0", "0-255"),
                    "broker: missing 'broker/control'");
    s_expect_error (BROKER SOURCES "ingestor\n    i0\n        bind = \"x\"\n"
                                   "scorer\n" SCORER ("s0", "0-255"),
                    "ingestor/i0: missing 'endpoint'");
}

static void
test_not_zpl (void **state)
{
    (void) state;
    //  Tabs and odd indentation are not ZPL.
    s_expect_error ("trove\n\tpartitions = 4\n" BROKER SOURCES "scorer\n" SCORER ("s0", "0-3"),
                    "is not valid ZPL");
    s_expect_error ("{\"trove\": {\"partitions\": 4}}\n", "is not valid ZPL");
}

static void
test_webhooks_section (void **state)
{
    (void) state;
    const char *base = BROKER SOURCES "scorer\n" SCORER ("s0", "0-255");
    //  None: NULL.
    trove_cfg_t *cfg = s_load_ok (base);
    assert_null (trove_cfg_webhooks (cfg));
    trove_cfg_destroy (&cfg);
    char text [4096];
    snprintf (text, sizeof text,
              "%swebhooks\n"
              "    control = \"tcp://127.0.0.1:9490\"\n"
              "    max_attempts = 3\n"
              "    endpoint\n"
              "        a-1\n"
              "            url = \"http://127.0.0.1:8080/hook\"\n"
              "            secret = \"0123456789abcdef\"\n"
              "        b_2\n"
              "            url = \"https://hooks.example/x\"\n"
              "            secret_file = \"b.secret\"\n"
              "            kinds = \"revoke\"\n"
              "            from = \"now\"\n",
              base);
    cfg = s_load_ok (text);
    const trove_cfg_webhooks_t *w = trove_cfg_webhooks (cfg);
    assert_non_null (w);
    assert_string_equal (w->control, "tcp://127.0.0.1:9490");
    assert_null (w->metrics);
    assert_false (w->allow_remote);
    assert_int_equal (w->max_attempts, 3);
    assert_int_equal (w->timeout_ms, 5000);
    assert_int_equal (w->backoff_ms, 500);
    assert_int_equal (w->backoff_max_ms, 60000);
    assert_int_equal (w->max_inflight, 8);
    assert_non_null (strstr (w->data, "/webhooks"));
    assert_int_equal (w->nhooks, 2);
    assert_string_equal (w->hooks [0].name, "a-1");
    assert_string_equal (w->hooks [0].secret, "0123456789abcdef");
    assert_null (w->hooks [0].secret_file);
    assert_int_equal (w->hooks [0].kinds, TROVE_HOOK_MINT | TROVE_HOOK_REVOKE);
    assert_null (w->hooks [1].secret);
    assert_string_equal (w->hooks [1].secret_file + strlen (w->hooks [1].secret_file) - 9, "/b.secret");
    assert_int_equal (w->hooks [1].kinds, TROVE_HOOK_REVOKE);
    assert_false (w->hooks [0].from_now);  //  the default: from = start
    assert_true (w->hooks [1].from_now);
    trove_cfg_destroy (&cfg);
    assert_string_equal (trove_cfg_hook_kind_name (TROVE_HOOK_MINT), "mint");
    assert_int_equal (trove_cfg_hook_kind ("revoke"), TROVE_HOOK_REVOKE);
    assert_int_equal (trove_cfg_hook_kind ("spend"), 0);
    //  Refusals, each naming what is wrong.
    const struct {
        const char *section, *want;
    } bad [] = {
        {"webhooks\n    endpoint\n        a\n            url = \"http://h/\"\n            secret = "
         "\"0123456789abcdef\"\n",
         "webhooks: missing 'control'"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n", "webhooks: no endpoint"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        A\n            url = "
         "\"http://h/\"\n            secret = \"0123456789abcdef\"\n",
         "an endpoint name is 1 to 64 of a-z 0-9 _ -"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"ftp://h/\"\n            secret = \"0123456789abcdef\"\n",
         "url 'ftp://h/': want http://"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"http://u@h/\"\n            secret = \"0123456789abcdef\"\n",
         "no user part"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"http://h/\"\n",
         "give exactly one of secret and secret_file"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"http://h/\"\n            secret = \"short\"\n",
         "secret is shorter than 16 characters"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"http://h/\"\n            secret = \"0123456789abcdef\"\n            kinds = \"mint,spend\"\n",
         "kinds 'mint,spend': want a comma-separated list of mint, revoke"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    endpoint\n        a\n            url = "
         "\"http://h/\"\n            secret = \"0123456789abcdef\"\n            from = \"later\"\n",
         "from 'later': want start (every award ever made) or now"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    max_attempts = 0\n    endpoint\n        a\n"
         "            url = \"http://h/\"\n            secret = \"0123456789abcdef\"\n",
         "webhooks/max_attempts = '0': want an integer in 1..1000"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    backoff_ms = 900\n    backoff_max_ms = 800\n"
         "    endpoint\n        a\n            url = \"http://h/\"\n            secret = "
         "\"0123456789abcdef\"\n",
         "backoff_max_ms 800 is below backoff_ms 900"},
        {"webhooks\n    control = \"tcp://127.0.0.1:1\"\n    allow_remote = maybe\n    endpoint\n        a\n"
         "            url = \"http://h/\"\n            secret = \"0123456789abcdef\"\n",
         "webhooks/allow_remote = 'maybe': want yes or no"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        snprintf (text, sizeof text, "%s%s", base, bad [i].section);
        s_expect_error (text, bad [i].want);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_sample_config_loads),
        cmocka_unit_test (test_sample_shard_map),
        cmocka_unit_test (test_defaults_and_custom_map),
        cmocka_unit_test (test_relative_config_path),
        cmocka_unit_test (test_nonexistent_file),
        cmocka_unit_test (test_missing_scorer),
        cmocka_unit_test (test_overlapping_partitions),
        cmocka_unit_test (test_uncovered_partition),
        cmocka_unit_test (test_bad_partitions_syntax),
        cmocka_unit_test (test_bad_values),
        cmocka_unit_test (test_missing_broker_and_ingestor_endpoint),
        cmocka_unit_test (test_not_zpl),
        cmocka_unit_test (test_webhooks_section),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
