/*  trove_api - GET routes of the query API. See trove_api.h. */
#include "trove_api.h"
#include "trove_error.h"
#include "trove_board.h"
#include "trove_client.h"
#include "trove_hash.h"
#include "trove_json.h"
#include "trove_ratelimit.h"
#include "trove_router.h"
#include "trove_stream.h"
#include "trove_util.h"

#include <assert.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS 2000   //  per shard call (the router retries once)
#define S_MAX_LIMIT 1000    //  limit: 1..1000
#define S_MAX_K 100         //  k: 0..100 (what a shard gives on each side)
#define S_USER_MAX 128      //  bytes of a user id (docs/events.md)
#define S_HUNT_MAX 64       //  bytes of a hunt id (trove_rules)
#define S_SEGMENT_MAX 512   //  bytes of one decoded path segment
#define S_MAX_SEGMENTS 4    //  segments after a route's prefix
#define S_CURSOR_DIGITS 20  //  a coins cursor: a decimal uint64
#define S_SCORE_DIGITS 18   //  the score of `after` (scores are below 2^40)

struct _trove_api_t {
    const trove_cfg_t *cfg;
    const trove_sources_t *sources;  //  swapped under sources_mutex
    pthread_mutex_t sources_mutex;   //  guards the pointer only (held for a load)
    pthread_key_t routers;           //  each server thread's router
    trove_ratelimit_t *reads;        //  one bucket per source (read_rate, read_burst)
    trove_stream_t *streams;         //  GET /v1/awards/stream's clients
};

static void
s_router_free (void *router)
{
    trove_router_destroy ((trove_router_t **) &router);
}

trove_api_t *
trove_api_new (const trove_cfg_t *cfg, const trove_sources_t *sources)
{
    assert (cfg && sources);
    trove_api_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->sources = sources;
    if (pthread_mutex_init (&self->sources_mutex, NULL)) {
        free (self);
        return NULL;
    }
    if (pthread_key_create (&self->routers, s_router_free)) {
        pthread_mutex_destroy (&self->sources_mutex);
        free (self);
        return NULL;
    }
    self->reads = trove_ratelimit_new (64);
    self->streams = trove_stream_new (cfg);
    if (!self->reads || !self->streams) {
        trove_api_destroy (&self);
        return NULL;
    }
    return self;
}

void
trove_api_destroy (trove_api_t **self_p)
{
    assert (self_p);
    trove_api_t *self = *self_p;
    if (self) {
        //  This thread's router, if it answered requests itself (tests).
        s_router_free (pthread_getspecific (self->routers));
        pthread_setspecific (self->routers, NULL);
        pthread_key_delete (self->routers);
        pthread_mutex_destroy (&self->sources_mutex);
        trove_ratelimit_destroy (&self->reads);
        trove_stream_destroy (&self->streams);
        free (self);
        *self_p = NULL;
    }
}

void
trove_api_set_sources (trove_api_t *self, const trove_sources_t *sources)
{
    assert (self && sources);
    //  Requests in progress may still use the old set (see trove_api.h).
    pthread_mutex_lock (&self->sources_mutex);
    self->sources = sources;
    pthread_mutex_unlock (&self->sources_mutex);
}

static trove_router_t *
s_router (trove_api_t *self)
{
    trove_router_t *router = pthread_getspecific (self->routers);
    if (!router && (router = trove_router_new (self->cfg, S_TIMEOUT_MS))
        && pthread_setspecific (self->routers, router))
        trove_router_destroy (&router);
    return router;
}

//  ---------------------------------------------------------------------------
//  Answers

static void
s_json (trove_http_response_t *resp, json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT) : NULL;
    json_decref (value);
    if (text)
        trove_http_reply (resp, 200, text);
    else
        trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), "cannot build the answer");
}

//  The same with a sentence made from a format.
static void s_error (trove_http_response_t *resp, unsigned status, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_error (trove_http_response_t *resp, unsigned status, const char *code, const char *fmt, ...)
{
    char detail [300];
    va_list args;
    va_start (args, fmt);
    vsnprintf (detail, sizeof detail, fmt, args);
    va_end (args);
    trove_http_reply_error (resp, status, code, detail);
}

static void
s_unavailable (trove_http_response_t *resp, const char *code, const char *detail)
{
    trove_http_reply_error (resp, 503, code, detail);
    trove_http_reply_header (resp, "Retry-After", "1");
}

//  Answer a failed query: no reply (a shard is silent) or a reply's error.
//  Takes err. Returns true when it answered.
static bool
s_failed (trove_http_response_t *resp, const Trove__QueryReply *reply, char *err)
{
    if (!reply) {
        s_unavailable (resp, trove_strerror (TROVE_E_SHARD_UNAVAILABLE),
                       err ? err : "a shard did not answer");
        free (err);
        return true;
    }
    free (err);
    const char *e = reply->error;
    if (!e || !*e)
        return false;
    //  The scorer's and the router's texts, by the code they start with
    switch (trove_error_parse (e)) {
        case TROVE_E_COST_LIMIT:
            trove_http_reply_error (resp, 422, trove_strerror (TROVE_E_COST_LIMIT), e);
            break;
        case TROVE_E_NOT_FOUND:
            if (strcmp (e, trove_strerror (TROVE_E_NOT_FOUND)) == 0) {
                trove_http_reply_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND), "no such coin");
                break;
            }
            trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), e);
            break;
        case TROVE_E_EXCLUDED:
            trove_http_reply_error (resp, 404, trove_strerror (TROVE_E_EXCLUDED), e);
            break;
        case TROVE_E_PERIOD_TEXT:
            trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PERIOD), e);
            break;
        case TROVE_E_MISSING_USER:
        case TROVE_E_MISSING_HUNT:
        case TROVE_E_BAD_CURSOR:
            trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_REQUEST), e);
            break;
        case TROVE_E_STORAGE_ERROR:
            if (strcmp (e, trove_strerror (TROVE_E_STORAGE_ERROR)) == 0) {
                trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_STORAGE_ERROR),
                                        "a shard cannot read its ledger");
                break;
            }
            trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), e);
            break;
        default:
            trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), e);
            break;
    }
    return true;
}

//  ---------------------------------------------------------------------------
//  Requests

//  Who asks, and may they? The key names a source (of the sources now in
//  force: 401 if not), has the scope (403 if not), and its source has a
//  read token (429 if not). Returns the key, or NULL after answering.
static const trove_source_key_t *
s_authorized (trove_api_t *self, const trove_http_request_t *req, trove_http_response_t *resp, unsigned scope)
{
    //  One set for the request; the main thread never waits behind a check.
    pthread_mutex_lock (&self->sources_mutex);
    const trove_sources_t *sources = self->sources;
    pthread_mutex_unlock (&self->sources_mutex);
    const trove_source_key_t *who = req->principal;
    if (!who) {
        size_t len = 0;
        const char *key = trove_http_bearer (req, &len);
        who = key ? trove_sources_key (sources, key, len) : NULL;
        if (!who) {
            trove_http_reply_error (resp, 401, trove_strerror (TROVE_E_UNAUTHORIZED),
                                    key ? "the key matches no source"
                                        : "missing header Authorization: Bearer KEY");
            trove_http_reply_header (resp, "WWW-Authenticate", "Bearer realm=\"trove\"");
            return NULL;
        }
    }
    if (!trove_source_key_can (who, scope)) {
        s_error (resp, 403, "forbidden", "this key lacks the scope %s", trove_source_scope_name (scope));
        return NULL;
    }
    const trove_source_policy_t *policy = trove_sources_policy (sources, (size_t) who->source);
    //  Reads have their own bucket per source, apart from its events'.
    trove_ratelimit_ask_t ask = {policy->name, strlen (policy->name), 1, policy->read_rate,
                                 policy->read_burst};
    long wait_s = 0;
    size_t which = 0;
    int rc = trove_ratelimit_take (self->reads, &ask, 1, trove_mono_us (), &wait_s, &which);
    if (rc) {
        char after [24];
        snprintf (after, sizeof after, "%ld", wait_s > 0 ? wait_s : 1);
        json_t *root =
            json_pack ("{s:s, s:s, s:s, s:I}", "error", trove_strerror (TROVE_E_RATE_LIMITED), "scope",
                       "read", "detail", "too many reads for this source; retry after Retry-After seconds",
                       "retry_after_s", (json_int_t) (wait_s > 0 ? wait_s : 1));
        char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
        json_decref (root);
        trove_http_reply (resp, 429, text);
        trove_http_reply_code (resp, trove_strerror (TROVE_E_RATE_LIMITED));
        trove_http_reply_header (resp, "Retry-After", after);
        return NULL;
    }
    return who;
}

//  The name of the source a key reads for, or NULL when it sees everything
//  (admin).
static const char *
s_reader_source (trove_api_t *self, const trove_source_key_t *who)
{
    if (who->scopes & TROVE_SCOPE_ADMIN)
        return NULL;
    pthread_mutex_lock (&self->sources_mutex);
    const trove_sources_t *sources = self->sources;
    pthread_mutex_unlock (&self->sources_mutex);
    return trove_sources_policy (sources, (size_t) who->source)->name;
}

typedef struct {
    char seg [S_MAX_SEGMENTS][S_SEGMENT_MAX + 1];  //  decoded
    size_t n;
} s_path_t;

//  Split the rest of the path on '/' and decode each segment ("a%2Fb" is
//  the one segment "a/b"). Answers 404 for an empty segment or too many,
//  400 bad_path for one that is not percent-encoded UTF-8 text.
static bool
s_split (const trove_http_request_t *req, trove_http_response_t *resp, s_path_t *path, const char *want)
{
    path->n = 0;
    const char *p = req->rest;
    while (true) {
        const char *slash = strchr (p, '/');
        size_t len = slash ? (size_t) (slash - p) : strlen (p);
        if (len == 0 || path->n == S_MAX_SEGMENTS) {
            s_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND), "no such path: want %s", want);
            return false;
        }
        if (trove_http_unescape (p, len, path->seg [path->n], sizeof path->seg [0]) < 0) {
            s_error (resp, 400, trove_strerror (TROVE_E_BAD_PATH),
                     "a path segment is not percent-encoded UTF-8 text (at most %d bytes, no control "
                     "characters)",
                     S_SEGMENT_MAX);
            return false;
        }
        path->n++;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

bool
trove_api_params (const trove_http_request_t *req, trove_http_response_t *resp, const char *allowed)
{
    for (size_t i = 0; i < req->nargs; i++) {
        const char *name = req->args [2 * i] ? req->args [2 * i] : "";
        size_t len = strlen (name);
        bool known = false;
        for (const char *a = allowed; *a && !known;) {
            size_t alen = strcspn (a, " ");
            known = len && alen == len && strncmp (a, name, len) == 0;
            a += alen + (a [alen] == ' ');
        }
        //  Echoed only when it is short text.
        const char *shown = len <= 40 && trove_utf8_valid (name, len) ? name : "?";
        if (!known) {
            s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                     "unknown parameter '%s'; this path takes %s", shown, *allowed ? allowed : "none");
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (req->args [2 * j] && strcmp (req->args [2 * j], name) == 0) {
                s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM), "parameter '%s' given twice", shown);
                return false;
            }
    }
    return true;
}

//  Decimal digits only, 1..max of them.
static bool
s_digits (const char *text, size_t max)
{
    size_t len = strlen (text);
    return len > 0 && len <= max && strspn (text, "0123456789") == len;
}

//  The integer argument `name` in lo..hi, def when absent. Answers 400
//  bad_param when malformed or out of range.
static bool
s_number (const trove_http_request_t *req, trove_http_response_t *resp, const char *name, long lo, long hi,
          long def, long *value_p)
{
    const char *text = trove_http_arg (req, name);
    *value_p = def;
    if (!text)
        return true;
    long v = s_digits (text, 9) ? strtol (text, NULL, 10) : -1;
    if (v < lo || v > hi) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM), "%s: want an integer in %ld..%ld", name, lo,
                 hi);
        return false;
    }
    *value_p = v;
    return true;
}

//  A user id as events may carry it: 1..128 bytes of UTF-8 text.
static bool
s_user_ok (const char *user)
{
    size_t len = strlen (user);
    return len >= 1 && len <= S_USER_MAX && trove_utf8_valid (user, len);
}

static bool
s_check_user (trove_http_response_t *resp, const char *user)
{
    if (s_user_ok (user))
        return true;
    s_error (resp, 400, trove_strerror (TROVE_E_BAD_USER), "a user id is 1 to %d bytes of UTF-8 text",
             S_USER_MAX);
    return false;
}

//  A hunt id as hunt files spell it (1..64 of A-Z a-z 0-9 . _ -), or "*".
static bool
s_check_hunt (trove_http_response_t *resp, const char *hunt)
{
    size_t len = strlen (hunt);
    if (strcmp (hunt, "*") == 0
        || (len >= 1 && len <= S_HUNT_MAX
            && strspn (hunt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len))
        return true;
    s_error (resp, 400, trove_strerror (TROVE_E_BAD_HUNT),
             "a hunt id is 1 to %d characters of A-Z a-z 0-9 . _ -, or * for every hunt", S_HUNT_MAX);
    return false;
}

//  The router of this thread; answers 503 when it cannot be made.
static trove_router_t *
s_router_or_503 (trove_api_t *self, trove_http_response_t *resp)
{
    trove_router_t *router = s_router (self);
    if (!router)
        s_unavailable (resp, trove_strerror (TROVE_E_OVERLOADED),
                       "cannot open the sockets to the shards; retry later");
    return router;
}

//  ---------------------------------------------------------------------------
//  Handlers

//  GET /v1/users/{user}/balance|coins|progress
static void
s_users (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_api_t *self = arg;
    const trove_source_key_t *who = s_authorized (self, req, resp, TROVE_SCOPE_USERS_READ);
    if (!who)
        return;
    static const char *want = "/v1/users/{user}/balance|coins|progress";
    s_path_t path;
    if (!s_split (req, resp, &path, want))
        return;
    const char *what = path.n == 2 ? path.seg [1] : "";
    if (strcmp (what, "balance") && strcmp (what, "coins") && strcmp (what, "progress")) {
        s_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND), "no such path: want %s", want);
        return;
    }
    const char *user = path.seg [0];
    bool coins = strcmp (what, "coins") == 0;
    long limit = 0;
    bool balance = strcmp (what, "balance") == 0;
    if (!s_check_user (resp, user)
        || !trove_api_params (req, resp,
                              coins     ? "limit cursor as_of"
                              : balance ? "as_of"
                                        : "")
        || (coins && !s_number (req, resp, "limit", 1, S_MAX_LIMIT, 50, &limit)))
        return;
    //  as_of: the balance or coins as the ledger stood at that instant.
    const char *as_of_text = trove_http_arg (req, "as_of");
    int64_t as_of_ms = 0;
    if (as_of_text && trove_parse_instant (as_of_text, &as_of_ms)) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                 "as_of: want an RFC 3339 time or milliseconds since the epoch");
        return;
    }
    if (as_of_ms && trove_http_arg (req, "cursor")) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                 "as_of lists the coins held then, in one page: no cursor");
        return;
    }
    const char *cursor = coins ? trove_http_arg (req, "cursor") : NULL;
    if (cursor && *cursor && !s_digits (cursor, S_CURSOR_DIGITS)) {
        trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                                "cursor: want the next_cursor of the previous page");
        return;
    }
    trove_router_t *router = s_router_or_503 (self, resp);
    if (!router)
        return;
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = (char *) what;
    q.user = (char *) user;
    q.limit = (uint32_t) limit;
    q.cursor = (char *) (cursor ? cursor : "");
    q.as_of_ms = as_of_ms;
    char *err = NULL;
    Trove__QueryReply *reply = trove_router_user (router, &q, &err);
    if (!s_failed (resp, reply, err)) {
        if (coins) {
            json_t *root = trove_json_coins (user, reply);
            if (as_of_ms)
                json_object_set_new (root, "as_of_ms", json_integer (as_of_ms));
            const char *source = s_reader_source (self, who);
            size_t i;
            json_t *coin;
            json_array_foreach (json_object_get (root, "coins"), i, coin) if (source)
                trove_json_coin_redact (coin, source);
            s_json (resp, root);
        }
        else if (balance) {
            json_t *root = trove_json_balance (user, reply);
            if (as_of_ms)
                json_object_set_new (root, "as_of_ms", json_integer (as_of_ms));
            s_json (resp, root);
        }
        else
            s_json (resp, trove_json_progress (user, reply));
    }
    trove_client_reply_free (&reply);
}

//  GET /v1/coins/{id}
static void
s_coins (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_api_t *self = arg;
    const trove_source_key_t *who = s_authorized (self, req, resp, TROVE_SCOPE_USERS_READ);
    if (!who)
        return;
    s_path_t path;
    if (!s_split (req, resp, &path, "/v1/coins/{id}"))
        return;
    if (path.n != 1) {
        trove_http_reply_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND),
                                "no such path: want /v1/coins/{id}");
        return;
    }
    const char *id = path.seg [0];
    if (strlen (id) != TROVE_COIN_ID_LEN || strspn (id, "0123456789abcdef") != TROVE_COIN_ID_LEN) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_COIN_ID), "a coin id is %d lowercase hex digits",
                 TROVE_COIN_ID_LEN);
        return;
    }
    if (!trove_api_params (req, resp, ""))
        return;
    trove_router_t *router = s_router_or_503 (self, resp);
    if (!router)
        return;
    char *err = NULL;
    Trove__QueryReply *reply = trove_router_coin (router, id, &err);
    if (!s_failed (resp, reply, err)) {
        json_t *root = trove_json_coin_provenance (reply);
        const char *source = s_reader_source (self, who);
        if (source) {
            trove_json_coin_redact (json_object_get (root, "coin"), source);
            size_t i;
            json_t *event;
            json_array_foreach (json_object_get (root, "events"), i, event)
                trove_json_event_redact (event, source);
        }
        s_json (resp, root);
    }
    trove_client_reply_free (&reply);
}

//  GET /v1/leaderboards/{hunt}[/around/{user}|/periods]
static void
s_boards (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_api_t *self = arg;
    if (!s_authorized (self, req, resp, TROVE_SCOPE_BOARDS_READ))
        return;
    static const char *want = "/v1/leaderboards/{hunt}[/around/{user}|/periods]";
    s_path_t path;
    if (!s_split (req, resp, &path, want))
        return;
    bool top = path.n == 1;
    bool periods = path.n == 2 && strcmp (path.seg [1], "periods") == 0;
    bool around = path.n == 3 && strcmp (path.seg [1], "around") == 0;
    if (!top && !periods && !around) {
        s_error (resp, 404, trove_strerror (TROVE_E_NOT_FOUND), "no such path: want %s", want);
        return;
    }
    const char *hunt = path.seg [0], *user = around ? path.seg [2] : NULL;
    long limit = 0, k = 0;
    if (!s_check_hunt (resp, hunt) || (user && !s_check_user (resp, user))
        || !trove_api_params (req, resp,
                              top      ? "period limit after"
                              : around ? "period k"
                                       : "limit")
        || (!around && !s_number (req, resp, "limit", 1, S_MAX_LIMIT, periods ? 50 : 10, &limit))
        || (around && !s_number (req, resp, "k", 0, S_MAX_K, 5, &k)))
        return;
    const char *period = trove_http_arg (req, "period");
    period = period ? period : "all";
    if (!periods && !trove_board_period_valid (hunt, period)) {
        trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PERIOD),
                                "period: want all, day:YYYY-MM-DD or week:YYYY-MM-DD (a Monday); "
                                "\"*\" has only all");
        return;
    }
    //  after=SCORE:USER, the last entry of the previous page.
    const char *after = top ? trove_http_arg (req, "after") : NULL, *after_user = NULL;
    int64_t after_score = 0;
    if (after) {
        const char *colon = strchr (after, ':');
        char digits [S_SCORE_DIGITS + 1] = "";
        size_t len = colon ? (size_t) (colon - after) : 0;
        if (len && len <= S_SCORE_DIGITS) {
            memcpy (digits, after, len);
            digits [len] = 0;
        }
        if (!s_digits (digits, S_SCORE_DIGITS) || !s_user_ok (colon + 1)) {
            trove_http_reply_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                                    "after: want SCORE:USER (the last entry of the previous page)");
            return;
        }
        after_score = strtoll (digits, NULL, 10);
        after_user = colon + 1;
    }
    trove_router_t *router = s_router_or_503 (self, resp);
    if (!router)
        return;
    char *err = NULL;
    Trove__QueryReply *reply =
        periods  ? trove_router_boards (router, hunt, (size_t) limit, &err)
        : around ? trove_router_around (router, hunt, period, user, (size_t) k, &err)
                 : trove_router_top (router, hunt, period, (size_t) limit, after_score, after_user, &err);
    if (!s_failed (resp, reply, err))
        s_json (resp, around ? trove_json_around (user, reply) : trove_json_board (reply, periods));
    trove_client_reply_free (&reply);
}

//  A rule id as hunt files spell it: 1..64 of A-Z a-z 0-9 . _ -
static bool
s_id_ok (const char *id)
{
    size_t len = strlen (id);
    return len >= 1 && len <= S_HUNT_MAX
        && strspn (id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

//  GET /v1/awards/stream?user=U&hunt=H&rule=R&last_event_id=ID (docs/queries.md,
//  "The award stream"; the stream itself: trove_stream)
static void
s_awards_stream (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_api_t *self = arg;
    const trove_source_key_t *who = s_authorized (self, req, resp, TROVE_SCOPE_USERS_READ);
    if (!who || !trove_api_params (req, resp, "user hunt rule last_event_id"))
        return;
    const char *user = trove_http_arg (req, "user"), *hunt = trove_http_arg (req, "hunt"),
               *rule = trove_http_arg (req, "rule");
    if (user && !s_check_user (resp, user))
        return;
    if (hunt && !s_id_ok (hunt)) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_HUNT),
                 "a hunt id is 1 to %d characters of A-Z a-z 0-9 . _ -", S_HUNT_MAX);
        return;
    }
    if (rule && !s_id_ok (rule)) {
        s_error (resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                 "rule: a rule id is 1 to %d characters of A-Z a-z 0-9 . _ -", S_HUNT_MAX);
        return;
    }
    //  The header wins: a browser's EventSource reconnects with the URL it
    //  was given and the id of the last event it got in the header.
    const char *last = trove_http_header (req, "Last-Event-ID");
    if (!last || !*last)
        last = trove_http_arg (req, "last_event_id");
    size_t nshards = trove_stream_shards (self->streams);
    uint64_t *after = NULL;
    if (last && *last) {
        after = calloc (nshards ? nshards : 1, sizeof *after);
        if (!after) {
            s_unavailable (resp, trove_strerror (TROVE_E_OVERLOADED), "out of memory; retry later");
            return;
        }
        if (trove_stream_parse_id (self->streams, last, after)) {
            free (after);
            s_error (
                resp, 400, trove_strerror (TROVE_E_BAD_PARAM),
                "Last-Event-ID or last_event_id: want SHARD:ASEQ for each of the %zu shards, joined by ',' "
                "(the id of the last event received)",
                nshards);
            return;
        }
    }
    trove_stream_want_t want = {
        .user = user, .hunt = hunt, .rule = rule, .source = s_reader_source (self, who), .after = after};
    trove_stream_open (self->streams, req, resp, &want);
    free (after);
}

const trove_source_key_t *
trove_api_authorize (trove_api_t *self, const trove_http_request_t *req, trove_http_response_t *resp,
                     unsigned scope)
{
    assert (self && req && resp);
    return s_authorized (self, req, resp, scope);
}

int
trove_api_routes (trove_api_t *self, trove_http_t *http)
{
    assert (self && http);
    if (trove_http_route (http, "GET", "/v1/users/", s_users, self)
        || trove_http_route (http, "GET", "/v1/coins/", s_coins, self)
        || trove_http_route (http, "GET", "/v1/leaderboards/", s_boards, self)
        || trove_http_route (http, "GET", "/v1/awards/stream", s_awards_stream, self))
        return -1;
    return 0;
}
