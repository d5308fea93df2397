/*  Tests for trove_harden: which addresses are local, and the start-up check
    per role with and without trove/allow_unauthenticated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_harden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_local (void **state)
{
    (void) state;
    const char *local [] = {"tcp://127.0.0.1:7410", "tcp://127.3.2.1:1",  "tcp://localhost:80",
                            "tcp://[::1]:5",        "ipc:///run/trove/x", "inproc://a",
                            "127.0.0.1:7600",       "[::1]:7600",         NULL};
    const char *exposed [] = {"tcp://*:7410",
                              "tcp://0.0.0.0:7410",
                              "tcp://10.0.0.5:1",
                              "tcp://eth0:1",
                              "0.0.0.0:7600",
                              "[::]:80",
                              "tcp://[::ffff:127.0.0.1]:1",
                              "pgm://x;y:1",
                              "garbage",
                              "tcp://128.0.0.1:1",
                              NULL};
    for (int i = 0; local [i]; i++)
        assert_true (trove_harden_local (local [i]));
    for (int i = 0; exposed [i]; i++)
        assert_false (trove_harden_local (exposed [i]));
}

static char *
s_config (const char *trove_line, const char *metrics)
{
    char *path = strdup ("/tmp/trove-harden-XXXXXX");
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    fprintf (f,
             "trove\n    %s\nsources\n    web\nbroker\n    pub = \"tcp://127.0.0.1:1\"\n"
             "    sub = \"tcp://127.0.0.1:2\"\n    control = \"tcp://*:3\"\n"
             "ingestor\n    i0\n        endpoint = \"tcp://127.0.0.1:4\"\n        metrics = \"%s\"\n"
             "scorer\n    s0\n        events = \"tcp://127.0.0.1:5\"\n        query = \"tcp://127.0.0.1:6\"\n"
             "        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
             trove_line, metrics);
    fclose (f);
    return path;
}

static void
test_check (void **state)
{
    (void) state;
    char *path = s_config ("partitions = 256", "0.0.0.0:7600");
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    assert_non_null (cfg);
    char *err = NULL;
    assert_int_equal (trove_harden_check (cfg, "ingestor", "i0", &err), -1);
    assert_non_null (strstr (err, "metrics 0.0.0.0:7600"));
    free (err);
    err = NULL;
    assert_int_equal (trove_harden_check (cfg, "broker", NULL, &err), -1);
    assert_non_null (strstr (err, "control tcp://*:3"));
    free (err);
    assert_int_equal (trove_harden_check (cfg, "scorer", "s0", NULL), 0);
    assert_int_equal (trove_harden_check (cfg, "reconciler", "s0", NULL), 0);  //  no reconcile endpoint
    err = NULL;
    assert_int_equal (trove_harden_check (cfg, "scorer", "s9", &err), -1);
    free (err);
    trove_cfg_destroy (&cfg);
    unlink (path);
    free (path);
    path = s_config ("allow_unauthenticated = yes", "0.0.0.0:7600");
    cfg = trove_cfg_load (path, NULL);
    assert_int_equal (trove_harden_check (cfg, "ingestor", "i0", NULL), 0);
    assert_int_equal (trove_harden_check (cfg, "broker", NULL, NULL), 0);
    trove_cfg_destroy (&cfg);
    unlink (path);
    free (path);
    //  The key read in `limits` (where older docs put it) allows nothing,
    //  and the refusal says where it belongs.
    path = s_config ("partitions = 256\nlimits\n    allow_unauthenticated = yes", "0.0.0.0:7600");
    cfg = trove_cfg_load (path, NULL);
    assert_non_null (cfg);
    err = NULL;
    assert_int_equal (trove_harden_check (cfg, "ingestor", "i0", &err), -1);
    assert_non_null (strstr (err, "limits/allow_unauthenticated is ignored"));
    free (err);
    trove_cfg_destroy (&cfg);
    unlink (path);
    free (path);
}

static void
test_check_webhooks (void **state)
{
    (void) state;
    //  No webhooks section: nothing to check, the role is not in the config.
    char *path = s_config ("partitions = 256", "127.0.0.1:7600");
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    assert_non_null (cfg);
    assert_int_equal (trove_harden_check (cfg, "webhooks", NULL, NULL), -1);
    trove_cfg_destroy (&cfg);
    unlink (path);
    free (path);
    const char *section = "partitions = 256\nwebhooks\n    control = \"%s\"\n    metrics = \"%s\"\n"
                          "    endpoint\n        a\n            url = \"http://127.0.0.1:9/\"\n"
                          "            secret = \"0123456789abcdef\"";
    char line [512];
    snprintf (line, sizeof line, section, "tcp://127.0.0.1:8", "127.0.0.1:7700");
    path = s_config (line, "127.0.0.1:7600");
    cfg = trove_cfg_load (path, NULL);
    assert_non_null (cfg);
    assert_int_equal (trove_harden_check (cfg, "webhooks", NULL, NULL), 0);
    trove_cfg_destroy (&cfg);
    unlink (path);
    free (path);
    const char *exposed [][2] = {{"tcp://*:8", "127.0.0.1:7700"}, {"tcp://127.0.0.1:8", "0.0.0.0:7700"}};
    for (size_t i = 0; i < 2; i++) {
        snprintf (line, sizeof line, section, exposed [i][0], exposed [i][1]);
        path = s_config (line, "127.0.0.1:7600");
        cfg = trove_cfg_load (path, NULL);
        assert_non_null (cfg);
        char *err = NULL;
        assert_int_equal (trove_harden_check (cfg, "webhooks", NULL, &err), -1);
        assert_non_null (
            strstr (err, i == 0 ? "webhooks: control tcp://*:8" : "webhooks: metrics 0.0.0.0:7700"));
        free (err);
        trove_cfg_destroy (&cfg);
        unlink (path);
        free (path);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_local),
        cmocka_unit_test (test_check),
        cmocka_unit_test (test_check_webhooks),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
