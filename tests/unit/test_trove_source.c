/*  Tests for trove_source: key hashing and generation, authentication
    (two keys of one source, a wrong key, a hash given as a key), types and
    backdating window, defaults, and refused configs (a key instead of its
    hash is refused without echoing it). Issue 18: key scopes ("=scope+scope"
    after a hash; none: the scopes keys had before), bad scopes refused, the
    read rate limit's defaults and overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_source.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_A "trk_aaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "trk_bbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_P "trk_pppppppppppppppppppppppp"

static trove_cfg_t *
s_load (const char *sources, char **err_p)
{
    char path [] = "/tmp/trove-source-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    fprintf (
        f,
        "limits\n    max_past_s = 1000\n    source_rate = 50\nsources\n%s"
        "broker\n    pub = \"tcp://127.0.0.1:1\"\n    sub = \"tcp://127.0.0.1:2\"\n"
        "    control = \"tcp://127.0.0.1:3\"\nscorer\n    s0\n        events = \"tcp://127.0.0.1:5\"\n"
        "        query = \"tcp://127.0.0.1:6\"\n        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
        sources);
    fclose (f);
    trove_cfg_t *cfg = trove_cfg_load (path, err_p);
    unlink (path);
    return cfg;
}

static void
test_key_hash (void **state)
{
    (void) state;
    char hash [TROVE_SOURCE_HASH_SIZE];
    assert_int_equal (trove_source_key_hash (KEY_A, strlen (KEY_A), hash), 0);
    assert_int_equal (strlen (hash), 72);
    assert_memory_equal (hash, "blake2b:", 8);
    char again [TROVE_SOURCE_HASH_SIZE];
    trove_source_key_hash (KEY_A, strlen (KEY_A), again);
    assert_string_equal (hash, again);
    assert_int_equal (trove_source_key_hash ("short", 5, hash), -1);
    assert_int_equal (trove_source_key_hash ("has a space in the key", 22, hash), -1);
    char key [64], other [64];
    trove_source_key_new (key);
    trove_source_key_new (other);
    assert_int_equal (strlen (key), 43);
    assert_memory_equal (key, "trk_", 4);
    assert_string_not_equal (key, other);
    assert_int_equal (trove_source_key_hash (key, strlen (key), hash), 0);
}

static void
test_auth_and_policy (void **state)
{
    (void) state;
    char ha [TROVE_SOURCE_HASH_SIZE], hb [TROVE_SOURCE_HASH_SIZE], hp [TROVE_SOURCE_HASH_SIZE];
    trove_source_key_hash (KEY_A, strlen (KEY_A), ha);
    trove_source_key_hash (KEY_B, strlen (KEY_B), hb);
    trove_source_key_hash (KEY_P, strlen (KEY_P), hp);
    char text [1024];
    snprintf (text, sizeof text,
              "    load\n    web\n        keys = \"%s %s\"\n        types = \"checkin, visit\"\n"
              "        max_past_s = 60\n        burst = 7\n    partner\n        keys = \"%s\"\n",
              ha, hb, hp);
    trove_cfg_t *cfg = s_load (text, NULL);
    assert_non_null (cfg);
    trove_sources_t *src = trove_sources_new (cfg, NULL);
    assert_non_null (src);
    assert_int_equal (trove_sources_count (src), 3);
    assert_true (trove_sources_any_key (src));
    assert_int_equal (trove_sources_auth (src, KEY_A, strlen (KEY_A)), 1);
    assert_int_equal (trove_sources_auth (src, KEY_B, strlen (KEY_B)), 1);
    assert_int_equal (trove_sources_auth (src, KEY_P, strlen (KEY_P)), 2);
    assert_int_equal (trove_sources_auth (src, "trk_cccccccccccccccccccccccc", 28), -1);
    assert_int_equal (trove_sources_auth (src, ha, strlen (ha)), -1);  //  the hash is not the key
    assert_int_equal (trove_sources_auth (src, KEY_A, strlen (KEY_A) - 1), -1);
    assert_int_equal (trove_sources_auth (src, NULL, 0), -1);
    const trove_source_policy_t *web = trove_sources_policy (src, 1);
    assert_string_equal (web->name, "web");
    assert_int_equal (web->nkeys, 2);
    assert_int_equal (web->max_past_ms, 60000);
    assert_true (web->rate == 50 && web->burst == 7);  //  limits/source_rate, own burst
    const trove_source_policy_t *load = trove_sources_policy (src, 0);
    assert_int_equal (load->nkeys, 0);
    assert_int_equal (load->max_past_ms, 1000000);  //  limits/max_past_s
    assert_true (load->burst == 2000);

    Trove__Event ev = TROVE__EVENT__INIT;
    ev.source = "web", ev.id = "1", ev.user = "u", ev.type = "visit";
    int64_t now = 1800000000000;
    ev.ts_ms = now - 59000;
    char detail [200];
    assert_null (trove_sources_check (src, 1, &ev, now, detail, sizeof detail));
    ev.ts_ms = now - 61000;
    assert_string_equal (trove_sources_check (src, 1, &ev, now, detail, sizeof detail), "bad_ts");
    assert_null (trove_sources_check (src, 0, &ev, now, detail, sizeof detail));  //  load: 1000 s
    ev.ts_ms = now;
    ev.type = "purchase";
    assert_string_equal (trove_sources_check (src, 1, &ev, now, detail, sizeof detail), "type_not_allowed");
    assert_non_null (strstr (detail, "purchase"));
    assert_null (trove_sources_check (src, 2, &ev, now, detail, sizeof detail));  //  partner: any type
    assert_null (trove_sources_check (src, -1, &ev, now, detail, sizeof detail));
    trove_sources_destroy (&src);
    trove_sources_destroy (&src);
    trove_cfg_destroy (&cfg);
}

static void
test_refused (void **state)
{
    (void) state;
    const char *bad [] = {
        "    web\n        keys = \"" KEY_A "\"\n",  //  the key itself
        "    web\n        keys = \"blake2b:1234\"\n",
        "    web\n        types = \" , \"\n",
        "    web\n        max_past_s = 5000\n",  //  over limits/max_past_s
        "    web\n        rate = -1\n",
        "    web\n        burst = 0\n",
        "    web\n        rate = fast\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        trove_cfg_t *cfg = s_load (bad [i], NULL);
        assert_non_null (cfg);
        char *err = NULL;
        assert_null (trove_sources_new (cfg, &err));
        assert_non_null (err);
        assert_null (strstr (err, KEY_A));  //  never echoes a secret
        free (err);
        trove_cfg_destroy (&cfg);
    }
}

//  What a reload may change: not the list of sources.
static void
test_same_names (void **state)
{
    (void) state;
    trove_cfg_t *a = s_load ("    web\n    game\n", NULL);
    trove_cfg_t *b = s_load ("    web\n        types = \"x\"\n    game\n", NULL);
    trove_cfg_t *c = s_load ("    game\n    web\n", NULL);
    trove_sources_t *sa = trove_sources_new (a, NULL), *sb = trove_sources_new (b, NULL),
                    *sc = trove_sources_new (c, NULL);
    trove_cfg_destroy (&a);  //  the sources outlive their config
    assert_true (trove_sources_same_names (sa, sb));
    assert_false (trove_sources_same_names (sa, sc));
    assert_string_equal (trove_sources_policy (sa, 1)->name, "game");
    trove_sources_destroy (&sa);
    trove_sources_destroy (&sb);
    trove_sources_destroy (&sc);
    trove_cfg_destroy (&b);
    trove_cfg_destroy (&c);
}

//  The commented sample config is valid, keys and all.
static void
test_sample_config (void **state)
{
    (void) state;
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (TROVE_SOURCE_DIR "/etc/trove.cfg", &err);
    assert_non_null (cfg);
    trove_sources_t *src = trove_sources_new (cfg, &err);
    if (!src)
        fail_msg ("%s", err);
    assert_true (trove_sources_any_key (src));
    trove_sources_destroy (&src);
    trove_cfg_destroy (&cfg);
}

static void
test_scopes (void **state)
{
    (void) state;
    char ha [TROVE_SOURCE_HASH_SIZE], hb [TROVE_SOURCE_HASH_SIZE], hp [TROVE_SOURCE_HASH_SIZE];
    trove_source_key_hash (KEY_A, strlen (KEY_A), ha);
    trove_source_key_hash (KEY_B, strlen (KEY_B), hb);
    trove_source_key_hash (KEY_P, strlen (KEY_P), hp);
    char text [1024];
    snprintf (text, sizeof text,
              "    web\n        keys = \"%s=events:write, %s=users:read+boards:read\"\n        read_rate = 5\n"
              "    partner\n        keys = \"%s\"\n",
              ha, hb, hp);
    trove_cfg_t *cfg = s_load (text, NULL);
    assert_non_null (cfg);
    trove_sources_t *src = trove_sources_new (cfg, NULL);
    assert_non_null (src);
    const trove_source_key_t *a = trove_sources_key (src, KEY_A, strlen (KEY_A));
    const trove_source_key_t *b = trove_sources_key (src, KEY_B, strlen (KEY_B));
    const trove_source_key_t *p = trove_sources_key (src, KEY_P, strlen (KEY_P));
    assert_non_null (a);
    assert_non_null (b);
    assert_non_null (p);
    assert_null (trove_sources_key (src, "trk_nobody_00000000000", 22));
    assert_int_equal (a->source, 0);
    assert_int_equal (p->source, 1);
    assert_true (trove_source_key_can (a, TROVE_SCOPE_EVENTS_WRITE));
    assert_false (trove_source_key_can (a, TROVE_SCOPE_USERS_READ));
    assert_false (trove_source_key_can (b, TROVE_SCOPE_EVENTS_WRITE));
    assert_true (trove_source_key_can (b, TROVE_SCOPE_USERS_READ));
    assert_true (trove_source_key_can (b, TROVE_SCOPE_BOARDS_READ));
    assert_false (trove_source_key_can (b, TROVE_SCOPE_ADMIN));
    //  No scopes in the config: what keys could do before scopes.
    assert_false (p->scoped);
    assert_int_equal (p->scopes, TROVE_SCOPE_UNSCOPED);
    assert_false (trove_source_key_can (p, TROVE_SCOPE_ADMIN));
    assert_int_equal (trove_sources_unscoped (src), 1);
    assert_string_equal (trove_source_scope_name (TROVE_SCOPE_BOARDS_READ), "boards:read");
    //  Read limits: the source's own, else limits/read_rate and read_burst (50, 100).
    assert_true (trove_sources_policy (src, 0)->read_rate == 5);
    assert_true (trove_sources_policy (src, 1)->read_rate == 50);
    assert_true (trove_sources_policy (src, 1)->read_burst == 100);
    trove_sources_destroy (&src);
    trove_cfg_destroy (&cfg);
    trove_source_key_t admin = {0, TROVE_SCOPE_ADMIN, true};
    assert_true (trove_source_key_can (&admin, TROVE_SCOPE_EVENTS_WRITE | TROVE_SCOPE_USERS_READ));
    assert_false (trove_source_key_can (NULL, TROVE_SCOPE_USERS_READ));
    //  Bad scopes: refused, the value not echoed.
    const char *bad [] = {"=", "=write", "=events:write+", "=+users:read", "=events:write++admin", "=ADMIN"};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        snprintf (text, sizeof text, "    web\n        keys = \"%s%s\"\n", ha, bad [i]);
        cfg = s_load (text, NULL);
        assert_non_null (cfg);
        char *err = NULL;
        assert_null (trove_sources_new (cfg, &err));
        assert_non_null (strstr (err, "scopes"));
        assert_null (strstr (err, ha + 8));
        free (err);
        trove_cfg_destroy (&cfg);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_key_hash),      cmocka_unit_test (test_auth_and_policy),
        cmocka_unit_test (test_refused),       cmocka_unit_test (test_same_names),
        cmocka_unit_test (test_sample_config), cmocka_unit_test (test_scopes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
