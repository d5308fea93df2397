/*  Tests for trove_api without a cluster, through trove_http_dispatch:
    the key (401 first, WWW-Authenticate), the path shapes (404), path
    segments decoded one by one and checked (400 bad_path, bad_user,
    bad_hunt, bad_coin_id), the query parameters (400 bad_param: unknown,
    repeated, limit and k out of range, cursor, after; bad_period), a key
    reload (trove_api_set_sources), and 503 with Retry-After when the shards
    do not answer (the cfg's shard is a closed port). Issue 18: key scopes
    (403 for a write-only key, each read scope to its own routes, admin to
    all, a key without scopes as before) and the read rate limit (429 with
    Retry-After, per source). What a cluster answers is
    tests/integration/test_queries.sh; which event details a key sees,
    tests/integration/test_hostile_http.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_WEB "trk_web_key_0000000000000000"
#define KEY_NEW "trk_new_key_1111111111111111"
#define KEY_WRITE "trk_write_key_22222222222222"
#define KEY_USERS "trk_users_key_33333333333333"
#define KEY_BOARDS "trk_boards_key_4444444444444"
#define KEY_ADMIN "trk_admin_key_55555555555555"
#define COIN "0123456789abcdef0123456789abcdef"

//  A one-shard cluster whose shard nobody serves (port 1 is closed), with
//  source web keyed by key.
static trove_cfg_t *
s_load (const char *key)
{
    char hash [TROVE_SOURCE_HASH_SIZE];
    assert_int_equal (trove_source_key_hash (key, strlen (key), hash), 0);
    char path [] = "/tmp/trove-api-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    fprintf (
        f,
        "sources\n    web\n        keys = \"%s\"\n    load\n"
        "broker\n    pub = \"tcp://127.0.0.1:1\"\n    sub = \"tcp://127.0.0.1:1\"\n"
        "    control = \"tcp://127.0.0.1:1\"\nscorer\n    s0\n        events = \"tcp://127.0.0.1:1\"\n"
        "        query = \"tcp://127.0.0.1:1\"\n        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
        hash);
    fclose (f);
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    unlink (path);
    assert_non_null (cfg);
    return cfg;
}

typedef struct {
    trove_cfg_t *cfg;
    trove_sources_t *sources;
    trove_api_t *api;
    trove_http_t *http;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->cfg = s_load (KEY_WEB);
    f->sources = trove_sources_new (f->cfg, NULL);
    assert_non_null (f->sources);
    f->api = trove_api_new (f->cfg, f->sources);
    assert_non_null (f->api);
    f->http = trove_http_new (1024);
    assert_non_null (f->http);
    assert_int_equal (trove_api_routes (f->api, f->http), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    trove_http_destroy (&f->http);
    trove_api_destroy (&f->api);
    assert_null (f->api);
    trove_sources_destroy (&f->sources);
    trove_cfg_destroy (&f->cfg);
    free (f);
    return 0;
}

//  GET path with "Authorization: auth" (NULL: none) and args (name, value,
//  ..., NULL). Returns the status; the error code in code (or ""), the
//  answer's first header (name: value) in header.
static unsigned
s_get (s_fixture_t *f, const char *auth, const char *path, const char *const *args, char *code, char *header)
{
    const char *headers [] = {"Authorization", auth};
    size_t nargs = 0;
    while (args && args [2 * nargs])
        nargs++;
    trove_http_request_t req = {.method = "GET",
                                .path = path,
                                .headers = headers,
                                .nheaders = auth ? 1 : 0,
                                .args = args,
                                .nargs = nargs};
    trove_http_response_t resp;
    trove_http_dispatch (f->http, &req, &resp);
    json_t *root = resp.body ? json_loads (resp.body, 0, NULL) : NULL;
    //  Every answer is a JSON object.
    assert_non_null (root);
    const char *error = json_string_value (json_object_get (root, "error"));
    snprintf (code, 40, "%s", error ? error : "");
    if (resp.nheaders)
        snprintf (header, 256, "%s: %s", resp.header_name [0], resp.header_value [0]);
    else
        header [0] = 0;
    json_decref (root);
    free (resp.body);
    return resp.status;
}

#define S_EXPECT(f, auth, path, args, status, want)                                               \
    do {                                                                                          \
        char code_ [40], header_ [256];                                                           \
        unsigned got_ = s_get (f, auth, path, args, code_, header_);                              \
        if (got_ != (status) || strcmp (code_, want))                                             \
            fail_msg ("GET %s: %u %s, want %u %s", path, got_, code_, (unsigned) (status), want); \
    } while (0)

static void
test_auth (void **state)
{
    s_fixture_t *f = *state;
    char code [40], header [256];
    assert_int_equal (s_get (f, NULL, "/v1/users/u1/balance", NULL, code, header), 401);
    assert_string_equal (code, "unauthorized");
    assert_string_equal (header, "WWW-Authenticate: Bearer realm=\"trove\"");
    S_EXPECT (f, "Bearer trk_not_a_key_000000000000", "/v1/users/u1/balance", NULL, 401, "unauthorized");
    S_EXPECT (f, "Basic " KEY_WEB, "/v1/coins/" COIN, NULL, 401, "unauthorized");
    //  Before anything about the path or the parameters.
    S_EXPECT (f, NULL, "/v1/users/%zz/nothing", NULL, 401, "unauthorized");
    const char *unknown [] = {"x", "1", NULL};
    S_EXPECT (f, NULL, "/v1/leaderboards/qb", unknown, 401, "unauthorized");
    //  The scheme in any case, spaces around the key.
    S_EXPECT (f, "bearer  " KEY_WEB " ", "/v1/users/u1/nothing", NULL, 404, "not_found");
}

static void
test_paths (void **state)
{
    s_fixture_t *f = *state;
    const char *auth = "Bearer " KEY_WEB;
    //  Shapes: 404
    const char *not_found [] = {"/v1/users/u1",
                                "/v1/users/u1/",
                                "/v1/users//balance",
                                "/v1/users/u1/balance/",
                                "/v1/users/u1/x",
                                "/v1/users/u1/balance/x",
                                "/v1/users/",
                                "/v1/coins/",
                                "/v1/coins/" COIN "/x",
                                "/v1/leaderboards/",
                                "/v1/leaderboards/qb/",
                                "/v1/leaderboards/qb/around",
                                "/v1/leaderboards/qb/around/",
                                "/v1/leaderboards/qb/top",
                                "/v1/leaderboards/qb/periods/x",
                                "/v1/leaderboards/qb/around/u1/x/y",
                                "/v1/nothing"};
    for (size_t i = 0; i < sizeof not_found / sizeof not_found [0]; i++)
        S_EXPECT (f, auth, not_found [i], NULL, 404, "not_found");
    //  Segments that do not decode to UTF-8 text: 400 bad_path
    const char *bad_path [] = {"/v1/users/%zz/balance", "/v1/users/u%00/balance",
                               "/v1/users/%FF/balance", "/v1/users/a%0Ab/balance",
                               "/v1/coins/%",           "/v1/leaderboards/q%2"};
    for (size_t i = 0; i < sizeof bad_path / sizeof bad_path [0]; i++)
        S_EXPECT (f, auth, bad_path [i], NULL, 400, "bad_path");
    //  Raw bytes that are not UTF-8: refused by the server before any route.
    S_EXPECT (f, auth, "/v1/users/\xff/balance", NULL, 400, "bad_path");
    char path [700];
    snprintf (path, sizeof path, "/v1/users/%0513d/balance", 0);  //  a segment over 512 bytes
    S_EXPECT (f, auth, path, NULL, 400, "bad_path");
    //  A user id over 128 bytes, hunts and coin ids not as they are spelled.
    snprintf (path, sizeof path, "/v1/users/%0129d/progress", 0);
    S_EXPECT (f, auth, path, NULL, 400, "bad_user");
    snprintf (path, sizeof path, "/v1/leaderboards/qb/around/%0129d", 0);
    S_EXPECT (f, auth, path, NULL, 400, "bad_user");
    S_EXPECT (f, auth, "/v1/leaderboards/q%20b", NULL, 400, "bad_hunt");
    S_EXPECT (f, auth, "/v1/leaderboards/q%2Fb/periods", NULL, 400, "bad_hunt");
    snprintf (path, sizeof path, "/v1/leaderboards/%065d", 0);
    S_EXPECT (f, auth, path, NULL, 400, "bad_hunt");
    S_EXPECT (f, auth, "/v1/coins/0123456789ABCDEF0123456789abcdef", NULL, 400, "bad_coin_id");
    S_EXPECT (f, auth, "/v1/coins/0123456789abcdef0123456789abcde", NULL, 400, "bad_coin_id");
    S_EXPECT (f, auth, "/v1/coins/0123456789abcdef0123456789abcdef0", NULL, 400, "bad_coin_id");
    S_EXPECT (f, auth, "/v1/coins/xyz", NULL, 400, "bad_coin_id");
}

static void
test_params (void **state)
{
    s_fixture_t *f = *state;
    const char *auth = "Bearer " KEY_WEB;
    struct {
        const char *path;
        const char *args [7];
        const char *code;
    } cases [] = {
        {"/v1/users/u1/balance", {"limit", "5", NULL}, "bad_param"},  //  balance takes none
        {"/v1/users/u1/progress", {"cursor", "", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "0", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "1001", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "+5", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", " 5", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "99999999999999999999", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"limit", "5", "limit", "6", NULL}, "bad_param"},  //  twice
        {"/v1/users/u1/coins", {"cursor", "abc", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"cursor", "123456789012345678901", NULL}, "bad_param"},
        {"/v1/users/u1/coins", {"Limit", "5", NULL}, "bad_param"},  //  names are exact
        {"/v1/coins/" COIN, {"limit", "5", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"k", "5", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"limit", "1001", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", "x", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", "30", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", "30:", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", ":bob", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", "-3:bob", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"after", "1234567890123456789:bob", NULL}, "bad_param"},
        {"/v1/leaderboards/qb", {"period", "day:2026-02-30", NULL}, "bad_period"},
        {"/v1/leaderboards/qb", {"period", "week:2026-03-10", NULL}, "bad_period"},  //  a Tuesday
        {"/v1/leaderboards/qb", {"period", "", NULL}, "bad_period"},
        {"/v1/leaderboards/*", {"period", "day:2026-03-10", NULL}, "bad_period"},  //  * has only all
        {"/v1/leaderboards/qb/around/u1", {"k", "101", NULL}, "bad_param"},
        {"/v1/leaderboards/qb/around/u1", {"k", "-1", NULL}, "bad_param"},
        {"/v1/leaderboards/qb/around/u1", {"limit", "5", NULL}, "bad_param"},
        {"/v1/leaderboards/qb/around/u1", {"period", "month:2026-03", NULL}, "bad_period"},
        {"/v1/leaderboards/qb/periods", {"period", "all", NULL}, "bad_param"},
        {"/v1/leaderboards/qb/periods", {"limit", "0", NULL}, "bad_param"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char code [40], header [256];
        unsigned status = s_get (f, auth, cases [i].path, cases [i].args, code, header);
        if (status != 400 || strcmp (code, cases [i].code))
            fail_msg ("case %zu: GET %s?%s=%s: %u %s, want 400 %s", i, cases [i].path, cases [i].args [0],
                      cases [i].args [1], status, code, cases [i].code);
    }
}

static void
test_reload (void **state)
{
    s_fixture_t *f = *state;
    //  The new set has only the new key; the old set stays the caller's.
    trove_cfg_t *cfg = s_load (KEY_NEW);
    trove_sources_t *fresh = trove_sources_new (cfg, NULL);
    assert_non_null (fresh);
    trove_api_set_sources (f->api, fresh);
    S_EXPECT (f, "Bearer " KEY_WEB, "/v1/users/u1/nothing", NULL, 401, "unauthorized");
    S_EXPECT (f, "Bearer " KEY_NEW, "/v1/users/u1/nothing", NULL, 404, "not_found");
    trove_api_set_sources (f->api, f->sources);
    S_EXPECT (f, "Bearer " KEY_WEB, "/v1/users/u1/nothing", NULL, 404, "not_found");
    S_EXPECT (f, "Bearer " KEY_NEW, "/v1/users/u1/nothing", NULL, 401, "unauthorized");
    trove_sources_destroy (&fresh);
    trove_cfg_destroy (&cfg);
}

//  A valid request reaches the router: the shard does not answer (2 s,
//  once more on a fresh socket), so 503 with Retry-After. ~4 s.
static void
test_unavailable (void **state)
{
    s_fixture_t *f = *state;
    char code [40], header [256];
    assert_int_equal (s_get (f, "Bearer " KEY_WEB, "/v1/coins/" COIN, NULL, code, header), 503);
    assert_string_equal (code, "shard_unavailable");
    assert_string_equal (header, "Retry-After: 1");
}

static void
test_scopes (void **state)
{
    (void) state;
    const char *keys [] = {KEY_WRITE, KEY_USERS, KEY_BOARDS, KEY_ADMIN, KEY_WEB};
    const char *scopes [] = {"=events:write", "=users:read", "=boards:read", "=admin", ""};
    char line [1024] = "";
    for (int i = 0; i < 5; i++) {
        char hash [TROVE_SOURCE_HASH_SIZE];
        assert_int_equal (trove_source_key_hash (keys [i], strlen (keys [i]), hash), 0);
        strcat (line, hash);
        strcat (line, scopes [i]);
        strcat (line, " ");
    }
    char hash_new [TROVE_SOURCE_HASH_SIZE + 16];
    assert_int_equal (trove_source_key_hash (KEY_NEW, strlen (KEY_NEW), hash_new), 0);
    strcat (hash_new, "=users:read");
    char path [] = "/tmp/trove-api-XXXXXX";
    int fd = mkstemp (path);
    FILE *file = fdopen (fd, "w");
    fprintf (file,
             "sources\n    web\n        keys = \"%s\"\n        read_rate = 0.001\n        read_burst = 7\n"
             "    load\n        keys = \"%s\"\nbroker\n    pub = \"tcp://127.0.0.1:1\"\n"
             "    sub = \"tcp://127.0.0.1:1\"\n    control = \"tcp://127.0.0.1:1\"\nscorer\n    s0\n"
             "        events = \"tcp://127.0.0.1:1\"\n        query = \"tcp://127.0.0.1:1\"\n"
             "        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
             line, hash_new);
    fclose (file);
    s_fixture_t fx = {0}, *f = &fx;
    f->cfg = trove_cfg_load (path, NULL);
    unlink (path);
    assert_non_null (f->cfg);
    f->sources = trove_sources_new (f->cfg, NULL);
    assert_non_null (f->sources);
    assert_int_equal (trove_sources_unscoped (f->sources), 1);  //  KEY_WEB
    f->api = trove_api_new (f->cfg, f->sources);
    f->http = trove_http_new (1024);
    assert_int_equal (trove_api_routes (f->api, f->http), 0);
    //  A write-only key reads nothing: 403 before the path is looked at.
    S_EXPECT (f, "Bearer " KEY_WRITE, "/v1/users/u1/balance", NULL, 403, "forbidden");
    S_EXPECT (f, "Bearer " KEY_WRITE, "/v1/coins/" COIN, NULL, 403, "forbidden");
    S_EXPECT (f, "Bearer " KEY_WRITE, "/v1/leaderboards/qb", NULL, 403, "forbidden");
    //  users:read: users and coins, not boards; boards:read the other way.
    S_EXPECT (f, "Bearer " KEY_USERS, "/v1/users/u1/nothing", NULL, 404, "not_found");
    S_EXPECT (f, "Bearer " KEY_USERS, "/v1/coins/xyz", NULL, 400, "bad_coin_id");
    S_EXPECT (f, "Bearer " KEY_USERS, "/v1/leaderboards/qb/nothing", NULL, 403, "forbidden");
    S_EXPECT (f, "Bearer " KEY_BOARDS, "/v1/leaderboards/qb/nothing", NULL, 404, "not_found");
    S_EXPECT (f, "Bearer " KEY_BOARDS, "/v1/users/u1/nothing", NULL, 403, "forbidden");
    //  admin and a key without scopes (as before scopes): both.
    S_EXPECT (f, "Bearer " KEY_ADMIN, "/v1/users/u1/nothing", NULL, 404, "not_found");
    S_EXPECT (f, "Bearer " KEY_WEB, "/v1/leaderboards/qb/nothing", NULL, 404, "not_found");
    //  web's read bucket (7) is spent by the 5 reads above that passed
    //  their scope; 2 more pass, then 429 with Retry-After. Refusals (403)
    //  took no token. Source load has its own bucket.
    S_EXPECT (f, "Bearer " KEY_USERS, "/v1/users/u1/nothing", NULL, 404, "not_found");
    S_EXPECT (f, "Bearer " KEY_USERS, "/v1/users/u1/nothing", NULL, 404, "not_found");
    char code [40], header [256];
    assert_int_equal (s_get (f, "Bearer " KEY_USERS, "/v1/users/u1/nothing", NULL, code, header), 429);
    assert_string_equal (code, "rate_limited");
    assert_memory_equal (header, "Retry-After: ", 13);
    assert_true (atol (header + 13) >= 1);
    S_EXPECT (f, "Bearer " KEY_BOARDS, "/v1/leaderboards/qb/nothing", NULL, 429, "rate_limited");
    S_EXPECT (f, "Bearer " KEY_NEW, "/v1/users/u1/nothing", NULL, 404, "not_found");
    trove_http_destroy (&f->http);
    trove_api_destroy (&f->api);
    trove_sources_destroy (&f->sources);
    trove_cfg_destroy (&f->cfg);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_auth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_paths, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_params, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unavailable, s_setup, s_teardown),
        cmocka_unit_test (test_scopes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
