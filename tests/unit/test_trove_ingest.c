/*  Tests for trove_ingest: body decoding (JSON array, NDJSON, every 400 and
    413), the handler with a stub backend (401, source filled in and
    mismatched, 413 over a burst, 429 with Retry-After and nothing
    submitted, the answer's JSON, Idempotency-Key bound to the body: 422
    idempotency_mismatch), and the inproc path against a fake ingestor
    ROUTER that answers RETRY first: the events are resubmitted with the
    same req_id, and only those. Issue 18: rejected events cost a user no
    token (validation before rate limits), user ids with invisible or
    format characters are rejected invisible_char, a key without
    events:write gets 403, and trove_ingest_auth as the server's hook (401
    before routing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "trove_ingest.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_WEB "trk_web_key_0000000000000000"
#define KEY_PARTNER "trk_partner_key_000000000000"

static trove_cfg_t *
s_load (void)
{
    char hw [TROVE_SOURCE_HASH_SIZE], hp [TROVE_SOURCE_HASH_SIZE];
    trove_source_key_hash (KEY_WEB, strlen (KEY_WEB), hw);
    trove_source_key_hash (KEY_PARTNER, strlen (KEY_PARTNER), hp);
    char path [] = "/tmp/trove-ingest-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    fprintf (
        f,
        "limits\n    max_batch = 10\n    max_event = 300\n    user_rate = 0.001\n    user_burst = 4\n"
        "sources\n    web\n        keys = \"%s\"\n        rate = 0.001\n        burst = 12\n"
        "    partner\n        keys = \"%s\"\n"
        "broker\n    pub = \"tcp://127.0.0.1:1\"\n    sub = \"tcp://127.0.0.1:2\"\n"
        "    control = \"tcp://127.0.0.1:3\"\nscorer\n    s0\n        events = \"tcp://127.0.0.1:5\"\n"
        "        query = \"tcp://127.0.0.1:6\"\n        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
        hw, hp);
    fclose (f);
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    unlink (path);
    assert_non_null (cfg);
    return cfg;
}

static void
test_parse (void **state)
{
    (void) state;
    trove_cfg_t *cfg = s_load ();
    trove_ingest_limits_t lim;
    assert_int_equal (trove_ingest_limits (cfg, &lim, NULL), 0);
    assert_int_equal (lim.max_batch, 10);
    assert_int_equal (lim.max_event, 300);
    assert_int_equal (lim.max_body, 1048576);
    trove_ingest_item_t *items;
    size_t n;
    const char *err;
    char *detail;
    const char *array = " [{\"source\":\"web\",\"id\":\"1\",\"user\":\"u\",\"type\":\"t\",\"ts\":1},"
                        " 7, {\"id\":\"2\",\"bogus\":1}, {\"id\":\"3\",\"id\":\"4\"}]";
    assert_int_equal (trove_ingest_parse (array, strlen (array), &lim, &items, &n, &err, &detail), 400);
    assert_string_equal (err, "bad_json");  //  a duplicated key fails the whole array
    free (detail);
    array = "[{\"source\":\"web\",\"id\":\"1\",\"user\":\"u\",\"type\":\"t\",\"ts\":1}, 7, "
            "{\"id\":\"2\",\"bogus\":1}]";
    assert_int_equal (trove_ingest_parse (array, strlen (array), &lim, &items, &n, &err, &detail), 0);
    assert_int_equal (n, 3);
    assert_non_null (items [0].event);
    assert_string_equal (items [0].event->id, "1");
    assert_null (items [1].event);
    assert_string_equal (items [1].reason, "bad_json");
    assert_string_equal (items [2].reason, "unknown_field");
    trove_ingest_items_free (&items, n);
    assert_null (items);
    const char *nd = "\n{\"id\":\"a\"}\r\n  \n{not json\n{\"id\":\"b\"}";
    assert_int_equal (trove_ingest_parse (nd, strlen (nd), &lim, &items, &n, &err, &detail), 0);
    assert_int_equal (n, 3);
    assert_string_equal (items [0].event->id, "a");
    assert_string_equal (items [1].reason, "bad_json");
    assert_string_equal (items [2].event->id, "b");
    trove_ingest_items_free (&items, n);
    struct {
        const char *body;
        int status;
        const char *err;
    } bad [] = {
        {"", 400, "empty"},
        {" \n\r\n", 400, "empty"},
        {"[]", 400, "empty"},
        {"[{\"id\":1}", 400, "bad_json"},
        {"[1] [2]", 400, "bad_json"},
        {"[1,2,3,4,5,6,7,8,9,10,11]", 413, "too_many_events"},
        {"{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n", 413, "too_many_events"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        items = NULL;
        assert_int_equal (
            trove_ingest_parse (bad [i].body, strlen (bad [i].body), &lim, &items, &n, &err, &detail),
            bad [i].status);
        assert_string_equal (err, bad [i].err);
        assert_null (items);
        free (detail);
    }
    char big [400];
    memset (big, ' ', sizeof big);
    memcpy (big, "{\"id\":\"x\"}", 10);
    big [sizeof big - 1] = 0;  //  one 399-byte line
    assert_int_equal (trove_ingest_parse (big, strlen (big), &lim, &items, &n, &err, &detail), 413);
    assert_string_equal (err, "event_too_large");
    free (detail);
    snprintf (big, sizeof big, "[{\"id\":\"%0300d\"}]", 0);
    assert_int_equal (trove_ingest_parse (big, strlen (big), &lim, &items, &n, &err, &detail), 413);
    free (detail);
    trove_cfg_destroy (&cfg);
}

//  The stub backend: accepts everything, remembers what it got.
typedef struct {
    size_t calls, events;
    uint64_t req_ids [16];
    char sources [16][16];
} s_stub_t;

static void
s_stub_submit (void *arg, uint64_t req_id, Trove__Event **events, size_t n, trove_ingest_result_t *results)
{
    s_stub_t *stub = arg;
    stub->req_ids [stub->calls % 16] = req_id;
    for (size_t i = 0; i < n; i++) {
        snprintf (stub->sources [(stub->events + i) % 16], 16, "%s", events [i]->source);
        results [i].status = TROVE__STATUS__ACCEPTED;
        results [i].reason [0] = results [i].detail [0] = 0;
    }
    stub->calls++;
    stub->events += n;
}

//  body with every "NOW" replaced by the current time in epoch ms (heap).
static char *
s_now (const char *body)
{
    char now [24];
    snprintf (now, sizeof now, "%lld", (long long) trove_now_ms ());
    char *out = calloc (1, strlen (body) * 3 + 1);
    assert_non_null (out);
    for (const char *p = body; *p;)
        if (strncmp (p, "NOW", 3) == 0) {
            strcat (out, now);
            p += 3;
        }
        else
            strncat (out, p++, 1);
    return out;
}

static unsigned
s_post (trove_ingest_t *ingest, const char *auth, const char *idem, const char *raw, json_t **json_p,
        char *retry_after)
{
    char *body = s_now (raw);
    const char *headers [] = {"Authorization", auth, "Idempotency-Key", idem};
    trove_http_request_t req = {.method = "POST",
                                .path = "/v1/events",
                                .body = body,
                                .body_size = strlen (body),
                                .headers = headers,
                                .nheaders = idem ? 2
                                          : auth ? 1
                                                 : 0};
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    trove_ingest_handle (ingest, &req, &resp);
    if (retry_after) {
        retry_after [0] = 0;
        for (size_t i = 0; i < resp.nheaders; i++)
            if (strcmp (resp.header_name [i], "Retry-After") == 0)
                strcpy (retry_after, resp.header_value [i]);
    }
    *json_p = json_loads (resp.body ? resp.body : "", 0, NULL);
    assert_non_null (*json_p);
    free (resp.body);
    free (body);
    return resp.status;
}

static const char *
s_status (json_t *root, size_t i, const char *field)
{
    return json_string_value (json_object_get (json_array_get (json_object_get (root, "results"), i), field));
}

static void
test_handle (void **state)
{
    (void) state;
    trove_cfg_t *cfg = s_load ();
    trove_sources_t *sources = trove_sources_new (cfg, NULL);
    assert_non_null (sources);
    s_stub_t stub = {0};
    trove_metrics_t *metrics = trove_metrics_new ();
    trove_ingest_t *ingest = trove_ingest_new (cfg, sources, NULL, s_stub_submit, &stub, metrics, NULL);
    assert_non_null (ingest);
    json_t *j;
    char after [40];
    const char *one = "{\"id\":\"1\",\"user\":\"u1\",\"type\":\"t\",\"ts\":NOW}";
    assert_int_equal (s_post (ingest, NULL, NULL, one, &j, NULL), 401);
    json_decref (j);
    assert_int_equal (s_post (ingest, "Bearer trk_nobody_0000000000000", NULL, one, &j, NULL), 401);
    json_decref (j);
    assert_int_equal (s_post (ingest, "Basic " KEY_WEB, NULL, one, &j, NULL), 401);
    json_decref (j);
    assert_int_equal (stub.calls, 0);
    //  Source filled in from the key, another source's event refused.
    const char *two = "{\"id\":\"1\",\"user\":\"u1\",\"type\":\"t\",\"ts\":NOW}\n"
                      "{\"source\":\"partner\",\"id\":\"2\",\"user\":\"u2\",\"type\":\"t\",\"ts\":NOW}\n"
                      "{\"source\":\"web\",\"id\":\"3\",\"user\":\"u2\",\"type\":\"t\",\"ts\":NOW}\n";
    assert_int_equal (s_post (ingest, "Bearer  " KEY_WEB " ", NULL, two, &j, NULL), 200);
    assert_string_equal (s_status (j, 0, "status"), "accepted");
    assert_string_equal (s_status (j, 1, "status"), "rejected");
    assert_string_equal (s_status (j, 1, "reason"), "source_mismatch");
    assert_string_equal (s_status (j, 1, "id"), "2");
    assert_string_equal (s_status (j, 2, "status"), "accepted");
    assert_int_equal (json_integer_value (json_object_get (j, "accepted")), 2);
    assert_int_equal (json_integer_value (json_object_get (j, "rejected")), 1);
    json_decref (j);
    assert_int_equal (stub.calls, 1);
    assert_int_equal (stub.events, 2);
    assert_string_equal (stub.sources [0], "web");
    assert_string_equal (stub.sources [1], "web");
    //  u3: 5 events in one request is over its burst (4): 413, nothing taken.
    const char *five =
        "[{\"id\":\"a\",\"user\":\"u3\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"b\",\"user\":\"u3\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"c\",\"user\":\"u3\",\"type\":\"t\",\"ts\":NOW},"
        "{\"id\":\"d\",\"user\":\"u3\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"e\",\"user\":\"u3\",\"type\":\"t\",\"ts\":NOW}]";
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, five, &j, NULL), 413);
    assert_string_equal (json_string_value (json_object_get (j, "error")), "over_burst");
    json_decref (j);
    //  u1 has 3 tokens left: 3 pass, then 429 with Retry-After.
    const char *three =
        "[{\"id\":\"x\",\"user\":\"u1\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"y\",\"user\":\"u1\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"z\",\"user\":\"u1\",\"type\":\"t\",\"ts\":NOW}]";
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, three, &j, NULL), 200);
    json_decref (j);
    size_t before = stub.events;
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, one, &j, after), 429);
    assert_string_equal (json_string_value (json_object_get (j, "scope")), "user");
    assert_true (atol (after) >= 1);
    json_decref (j);
    assert_int_equal (stub.events, before);
    //  The source's bucket (12): 3 + 3 + 5 (refused, not taken) ... 6 used; 6 more pass, then 429.
    const char *six =
        "[{\"id\":\"1\",\"user\":\"v1\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"2\",\"user\":\"v2\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"3\",\"user\":\"v3\",\"type\":\"t\",\"ts\":NOW},"
        "{\"id\":\"4\",\"user\":\"v4\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"5\",\"user\":\"v5\",\"type\":\"t\",\"ts\":NOW},{\"id\":\"6\",\"user\":\"v6\",\"type\":\"t\",\"ts\":NOW}]";
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, six, &j, NULL), 200);
    json_decref (j);
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, "{\"id\":\"9\",\"user\":\"w\",\"type\":\"t\",\"ts\":NOW}", &j, after),
                      429);
    assert_string_equal (json_string_value (json_object_get (j, "scope")), "source");
    json_decref (j);
    //  Another source has its own bucket; Idempotency-Key gives a stable
    //  req_id for the same body, and refuses another body (issue 18).
    char *w = s_now ("{\"id\":\"9\",\"user\":\"w\",\"type\":\"t\",\"ts\":NOW}");
    char *w2 = s_now ("{\"id\":\"9\",\"user\":\"w2\",\"type\":\"t\",\"ts\":NOW}");
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, "k1", w, &j, NULL), 200);
    json_decref (j);
    uint64_t first = stub.req_ids [(stub.calls - 1) % 16];
    size_t calls = stub.calls;
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, "k1", w, &j, NULL), 200);
    json_decref (j);
    assert_int_equal (stub.calls, calls + 1);
    assert_true (stub.req_ids [(stub.calls - 1) % 16] == first);
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, "k1", w2, &j, NULL), 422);
    assert_string_equal (json_string_value (json_object_get (j, "error")), "idempotency_mismatch");
    json_decref (j);
    assert_int_equal (stub.calls, calls + 1);  //  nothing submitted
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, "k2", w, &j, NULL), 200);
    json_decref (j);
    assert_true (stub.req_ids [(stub.calls - 1) % 16] != first);
    //  The same key under another source is another key.
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, "k1", w2, &j, NULL), 429);  //  web's bucket is empty
    json_decref (j);
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, "bad key", w, &j, NULL), 400);
    assert_string_equal (json_string_value (json_object_get (j, "error")), "bad_idempotency_key");
    json_decref (j);
    free (w);
    free (w2);
    //  Stopping: 503.
    trove_ingest_stop (ingest);
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, one, &j, after), 503);
    json_decref (j);
    char *text = trove_metrics_render (metrics);
    assert_non_null (strstr (text, "trove_ingestor_http_requests_total{code=\"401\"} 3"));
    assert_non_null (strstr (text, "trove_ingestor_http_requests_total{code=\"429\"} 3"));
    free (text);
    trove_ingest_destroy (&ingest);
    trove_metrics_destroy (&metrics);
    trove_sources_destroy (&sources);
    trove_cfg_destroy (&cfg);
}

//  A fake ingestor ROUTER: answers the first submission with RETRY for its
//  second event, then checks the resubmission carries the same req_id and
//  only that event.
typedef struct {
    zsock_t *router;
    int ok;
} s_fake_t;

static void *
s_fake_run (void *arg)
{
    s_fake_t *fake = arg;
    uint64_t req_id = 0;
    for (int round = 0; round < 2; round++) {
        zframe_t *routing_id = NULL, *raw = NULL;
        const char *reason;
        Trove__Msg *msg = trove_msg_recv_routed (fake->router, 1 << 20, &routing_id, &reason, &raw);
        if (!msg || msg->body_case != TROVE__MSG__BODY_SUBMIT)
            return NULL;
        Trove__SubmitRequest *s = msg->submit;
        if (round == 0)
            req_id = s->req_id;
        else if (s->req_id != req_id || s->n_events != 1 || strcmp (s->events [0]->id, "b") != 0)
            return NULL;
        Trove__Result results [2], *ptrs [2];
        for (size_t i = 0; i < s->n_events; i++) {
            trove__result__init (&results [i]);
            ptrs [i] = &results [i];
            bool retry = round == 0 && i == 1;
            results [i].status = retry ? TROVE__STATUS__RETRY : TROVE__STATUS__ACCEPTED;
            results [i].reason = retry ? "shard_unavailable" : "";
        }
        Trove__SubmitReply reply = TROVE__SUBMIT_REPLY__INIT;
        reply.req_id = s->req_id;
        reply.n_results = s->n_events;
        reply.results = ptrs;
        Trove__Msg out = TROVE__MSG__INIT;
        out.body_case = TROVE__MSG__BODY_SUBMIT_REPLY;
        out.submit_reply = &reply;
        trove_msg_send (fake->router, zframe_data (routing_id), zframe_size (routing_id), &out, 0);
        trove_msg_free (&msg);
        zframe_destroy (&routing_id);
        zframe_destroy (&raw);
    }
    fake->ok = 1;
    return NULL;
}

static void
test_inproc_retry (void **state)
{
    (void) state;
    trove_cfg_t *cfg = s_load ();
    trove_sources_t *sources = trove_sources_new (cfg, NULL);
    s_fake_t fake = {zsock_new_router ("inproc://test-ingest"), 0};
    assert_non_null (fake.router);
    trove_ingest_t *ingest = trove_ingest_new (cfg, sources, "inproc://test-ingest", NULL, NULL, NULL, NULL);
    assert_non_null (ingest);
    pthread_t thread;
    pthread_create (&thread, NULL, s_fake_run, &fake);
    json_t *j;
    const char *body = "{\"id\":\"a\",\"user\":\"p\",\"type\":\"t\",\"ts\":NOW}\n{\"id\":\"b\",\"user\":\"q\",\"type\":\"t\",\"ts\":NOW}";
    assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, body, &j, NULL), 200);
    pthread_join (thread, NULL);
    assert_int_equal (fake.ok, 1);
    assert_string_equal (s_status (j, 0, "status"), "accepted");
    assert_string_equal (s_status (j, 1, "status"), "accepted");
    json_decref (j);
    trove_ingest_destroy (&ingest);
    zsock_destroy (&fake.router);
    trove_sources_destroy (&sources);
    trove_cfg_destroy (&cfg);
}

#define KEY_READ "trk_read_key_000000000000000"

static void
test_order_and_scopes (void **state)
{
    (void) state;
    char hw [TROVE_SOURCE_HASH_SIZE], hp [TROVE_SOURCE_HASH_SIZE], hr [TROVE_SOURCE_HASH_SIZE];
    trove_source_key_hash (KEY_WEB, strlen (KEY_WEB), hw);
    trove_source_key_hash (KEY_PARTNER, strlen (KEY_PARTNER), hp);
    trove_source_key_hash (KEY_READ, strlen (KEY_READ), hr);
    char path [] = "/tmp/trove-ingest-XXXXXX";
    int fd = mkstemp (path);
    FILE *f = fdopen (fd, "w");
    fprintf (f,
             "limits\n    max_batch = 10\n    user_rate = 0.001\n    user_burst = 4\n"
             "sources\n    web\n        keys = \"%s %s=users:read+boards:read\"\n        types = \"checkin\"\n"
             "        max_past_s = 60\n    partner\n        keys = \"%s=events:write\"\n"
             "broker\n    pub = \"tcp://127.0.0.1:1\"\n    sub = \"tcp://127.0.0.1:2\"\n"
             "    control = \"tcp://127.0.0.1:3\"\nscorer\n    s0\n        events = \"tcp://127.0.0.1:5\"\n"
             "        query = \"tcp://127.0.0.1:6\"\n        partitions = \"0-255\"\n        data = \"/tmp/x\"\n",
             hw, hr, hp);
    fclose (f);
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    unlink (path);
    assert_non_null (cfg);
    trove_sources_t *sources = trove_sources_new (cfg, NULL);
    assert_non_null (sources);
    s_stub_t stub = {0};
    trove_ingest_t *ingest = trove_ingest_new (cfg, sources, NULL, s_stub_submit, &stub, NULL, NULL);
    assert_non_null (ingest);
    json_t *j;
    //  Four events of user "victim" the web key may not send (a type it is
    //  not allowed, ts before its window, a ts in 1970, no type at all):
    //  each rejected, none submitted, and none costs the user a token.
    const char *bad = "{\"id\":\"b1\",\"user\":\"victim\",\"type\":\"purchase\",\"ts\":NOW}\n"
                      "{\"id\":\"b2\",\"user\":\"victim\",\"type\":\"checkin\",\"ts\":\"2020-01-01T00:00:00Z\"}\n"
                      "{\"id\":\"b3\",\"user\":\"victim\",\"type\":\"checkin\",\"ts\":1}\n"
                      "{\"id\":\"b4\",\"user\":\"victim\",\"ts\":NOW}\n";
    for (int round = 0; round < 3; round++) {
        assert_int_equal (s_post (ingest, "Bearer " KEY_WEB, NULL, bad, &j, NULL), 200);
        assert_string_equal (s_status (j, 0, "reason"), "type_not_allowed");
        assert_string_equal (s_status (j, 1, "reason"), "bad_ts");
        assert_string_equal (s_status (j, 2, "reason"), "bad_ts");
        assert_string_equal (s_status (j, 3, "reason"), "missing_field");
        assert_int_equal (json_integer_value (json_object_get (j, "rejected")), 4);
        json_decref (j);
    }
    assert_int_equal (stub.calls, 0);
    //  The victim's own valid events from another source still pass: its
    //  whole burst (4) is there.
    const char *good = "[{\"id\":\"g1\",\"user\":\"victim\",\"type\":\"visit\",\"ts\":NOW},"
                       "{\"id\":\"g2\",\"user\":\"victim\",\"type\":\"visit\",\"ts\":NOW},"
                       "{\"id\":\"g3\",\"user\":\"victim\",\"type\":\"visit\",\"ts\":NOW},"
                       "{\"id\":\"g4\",\"user\":\"victim\",\"type\":\"visit\",\"ts\":NOW}]";
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, NULL, good, &j, NULL), 200);
    assert_int_equal (json_integer_value (json_object_get (j, "accepted")), 4);
    json_decref (j);
    assert_int_equal (stub.events, 4);
    //  User ids that hide characters (bidirectional controls, zero-width
    //  and other format characters, C1 controls, separators): rejected
    //  invisible_char; a visible non-ASCII id passes.
    const char *hidden = "{\"id\":\"h1\",\"user\":\"adm\\u202Enib\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h2\",\"user\":\"bob\\u200B\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h3\",\"user\":\"\\u2066x\\u2069\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h4\",\"user\":\"a\\u0085b\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h5\",\"user\":\"so\\u00ADft\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h6\",\"user\":\"x\\uFEFF\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h7\",\"user\":\"p\\u2028q\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h8\",\"user\":\"tag\\uDB40\\uDC41\",\"type\":\"visit\",\"ts\":NOW}\n"
                         "{\"id\":\"h9\",\"user\":\"zo\\u00e9 \\u5c0f\\u660e\",\"type\":\"visit\",\"ts\":NOW}\n";
    assert_int_equal (s_post (ingest, "Bearer " KEY_PARTNER, NULL, hidden, &j, NULL), 200);
    for (size_t i = 0; i < 8; i++) {
        if (strcmp (s_status (j, i, "reason") ? s_status (j, i, "reason") : "", "invisible_char") != 0)
            fail_msg ("event %zu: %s", i, s_status (j, i, "status"));
        assert_non_null (strstr (s_status (j, i, "detail"), "U+"));
    }
    assert_string_equal (s_status (j, 0, "detail") + 15, "202E, an invisible or format character (controls, "
                                                          "bidirectional marks, zero-width characters are refused)");
    assert_string_equal (s_status (j, 8, "status"), "accepted");
    json_decref (j);
    assert_int_equal (stub.events, 5);
    //  A read key may not write: 403, nothing submitted.
    assert_int_equal (s_post (ingest, "Bearer " KEY_READ, NULL, good, &j, NULL), 403);
    assert_string_equal (json_string_value (json_object_get (j, "error")), "forbidden");
    json_decref (j);
    assert_int_equal (stub.events, 5);
    //  The server's hook: who the key is, or a 401 before any route.
    const char *headers [] = {"Authorization", "Bearer " KEY_READ};
    trove_http_request_t req = {.method = "GET", .path = "/x", .headers = headers, .nheaders = 1};
    trove_http_response_t resp;
    memset (&resp, 0, sizeof resp);
    const trove_source_key_t *who = trove_ingest_auth (ingest, &req, &resp);
    assert_non_null (who);
    assert_int_equal (who->source, 0);
    assert_int_equal (who->scopes, TROVE_SCOPE_USERS_READ | TROVE_SCOPE_BOARDS_READ);
    assert_true (who->scoped);
    headers [1] = "Bearer trk_nobody_0000000000000";
    assert_null (trove_ingest_auth (ingest, &req, &resp));
    assert_int_equal (resp.status, 401);
    free (resp.body);
    trove_ingest_destroy (&ingest);
    trove_sources_destroy (&sources);
    trove_cfg_destroy (&cfg);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse),
        cmocka_unit_test (test_handle),
        cmocka_unit_test (test_inproc_retry),
        cmocka_unit_test (test_order_and_scopes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
