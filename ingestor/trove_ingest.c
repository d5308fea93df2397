/*  trove_ingest - HTTP ingest handler: authenticate, decode, limit, submit. */
#include "trove_ingest.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_msg.h"
#include "trove_ratelimit.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_DEADLINE_US 10000000  //  how long RETRY answers are resubmitted
#define S_POOL_MAX 64           //  idle DEALERs kept
#define S_USER_SLOTS 65536      //  rate-limit buckets (source and user)
#define S_IDEM_SLOTS 16384      //  Idempotency-Keys remembered (with their body's hash)
#define S_IDEM_PROBE 8          //  slots looked at per key
#define S_IDEM_TTL_US (24LL * 3600 * 1000000)
#define S_IDEM_MAX 200  //  bytes of an Idempotency-Key

//  One Idempotency-Key seen: a keyed hash of (source, key) and of the body.
typedef struct {
    uint8_t key [16];
    uint8_t body [16];
    int64_t at_us;  //  0: free
} s_idem_t;

//  Request counters by answer code (bounded label set).
static const unsigned s_codes [] = {200, 400, 401, 403, 413, 422, 429, 503};
#define S_NCODES (sizeof s_codes / sizeof s_codes [0])

struct _trove_ingest_t {
    const trove_cfg_t *cfg;          //  borrowed
    const trove_sources_t *sources;  //  borrowed; swapped under sources_mutex
    pthread_mutex_t sources_mutex;   //  guards the sources pointer
    trove_ingest_limits_t limits;
    trove_ratelimit_t *ratelimit;  //  source and user buckets
    char *endpoint;                //  inproc ROUTER of the ingestor, or NULL
    trove_ingest_submit_fn *fn;    //  else this backend
    void *arg;
    size_t max_frame;            //  receive limit for replies
    atomic_bool stopping;        //  set by trove_ingest_stop
    pthread_mutex_t pool_mutex;  //  guards pool
    zsock_t *pool [S_POOL_MAX];  //  idle DEALERs to endpoint
    size_t npool;
    trove_counter_t *requests [S_NCODES + 1];  //  by code, last: other
    pthread_mutex_t idem_mutex;                //  guards idem
    s_idem_t *idem;                            //  S_IDEM_SLOTS
    uint8_t idem_secret [32];                  //  keys the slot hash: no aimed collisions
};

static int
s_size_knob (const trove_cfg_t *cfg, const char *path, size_t def, size_t min, size_t max, size_t *out,
             char **err)
{
    const char *text = trove_cfg_get (cfg, path, NULL);
    *out = def;
    if (!text)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (!*text || *end || errno || *text == '-' || v < min || v > max) {
        *err = trove_strdupf ("%s = '%s': want an integer in %zu..%zu", path, text, min, max);
        return -1;
    }
    *out = (size_t) v;
    return 0;
}

static int
s_rate_knob (const trove_cfg_t *cfg, const char *path, double def, double min, double *out, char **err)
{
    const char *text = trove_cfg_get (cfg, path, NULL);
    *out = def;
    if (!text)
        return 0;
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (!*text || *end || errno || !(v >= min && v <= 1e9)) {
        *err = trove_strdupf ("%s = '%s': want a number in %g..1e9", path, text, min);
        return -1;
    }
    *out = v;
    return 0;
}

int
trove_ingest_limits (const trove_cfg_t *cfg, trove_ingest_limits_t *limits, char **err_p)
{
    const trove_limits_t *lim = trove_cfg_limits (cfg);
    char *err = NULL;
    limits->max_batch = lim->max_batch;
    if (s_size_knob (cfg, "limits/max_body", lim->max_frame, 1024, 64 * 1024 * 1024, &limits->max_body, &err)
        || s_size_knob (cfg, "limits/max_event", 16384, 256, 1024 * 1024, &limits->max_event, &err)
        || s_rate_knob (cfg, "limits/user_rate", 10, 0, &limits->user_rate, &err)
        || s_rate_knob (cfg, "limits/user_burst", 200, 1, &limits->user_burst, &err)) {
        if (err_p)
            *err_p = err;
        else
            free (err);
        return -1;
    }
    return 0;
}

trove_ingest_t *
trove_ingest_new (const trove_cfg_t *cfg, const trove_sources_t *sources, const char *endpoint,
                  trove_ingest_submit_fn *fn, void *arg, trove_metrics_t *metrics, char **err_p)
{
    assert (cfg && sources);
    assert (endpoint || fn);
    trove_ingest_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->sources = sources;
    self->fn = fn;
    self->arg = arg;
    self->max_frame = trove_cfg_limits (cfg)->max_frame + 65536;
    atomic_init (&self->stopping, false);
    pthread_mutex_init (&self->pool_mutex, NULL);
    pthread_mutex_init (&self->sources_mutex, NULL);
    pthread_mutex_init (&self->idem_mutex, NULL);
    if (trove_ingest_limits (cfg, &self->limits, err_p)) {
        trove_ingest_destroy (&self);
        return NULL;
    }
    self->ratelimit = trove_ratelimit_new (S_USER_SLOTS);
    self->endpoint = endpoint ? strdup (endpoint) : NULL;
    self->idem = calloc (S_IDEM_SLOTS, sizeof *self->idem);
    if (sodium_init () >= 0)
        randombytes_buf (self->idem_secret, sizeof self->idem_secret);
    if (!self->ratelimit || (endpoint && !self->endpoint) || !self->idem) {
        if (err_p)
            *err_p = strdup ("out of memory");
        trove_ingest_destroy (&self);
        return NULL;
    }
    if (metrics) {
        static const char *const labels [] = {"code", NULL};
        for (size_t i = 0; i <= S_NCODES; i++) {
            char code [16];
            snprintf (code, sizeof code, i < S_NCODES ? "%u" : "other", i < S_NCODES ? s_codes [i] : 0);
            const char *values [] = {code, NULL};
            self->requests [i] =
                trove_metrics_counter (metrics, "trove_ingestor_http_requests_total",
                                       "HTTP ingest requests by answer code.", labels, values);
        }
    }
    return self;
}

void
trove_ingest_set_sources (trove_ingest_t *self, const trove_sources_t *sources)
{
    assert (self && sources);
    assert (trove_sources_same_names (self->sources, sources));
    pthread_mutex_lock (&self->sources_mutex);
    self->sources = sources;
    pthread_mutex_unlock (&self->sources_mutex);
}

void
trove_ingest_stop (trove_ingest_t *self)
{
    assert (self);
    atomic_store (&self->stopping, true);
}

void
trove_ingest_destroy (trove_ingest_t **self_p)
{
    assert (self_p);
    trove_ingest_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->npool; i++)
            zsock_destroy (&self->pool [i]);
        pthread_mutex_destroy (&self->pool_mutex);
        pthread_mutex_destroy (&self->sources_mutex);
        pthread_mutex_destroy (&self->idem_mutex);
        free (self->idem);
        trove_ratelimit_destroy (&self->ratelimit);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

size_t
trove_ingest_max_body (const trove_ingest_t *self)
{
    assert (self);
    return self->limits.max_body;
}

//  ---------------------------------------------------------------------------
//  Body decoding

void
trove_ingest_items_free (trove_ingest_item_t **items_p, size_t n)
{
    trove_ingest_item_t *items = *items_p;
    if (!items)
        return;
    for (size_t i = 0; i < n; i++) {
        trove_event_destroy (&items [i].event);
        free (items [i].detail);
    }
    free (items);
    *items_p = NULL;
}

static void
s_item_decode (trove_ingest_item_t *item, const char *text, size_t len)
{
    item->event = trove_event_from_json (text, len, &item->reason, &item->detail);
    if (!item->event && !item->reason)
        item->reason = trove_strerror (TROVE_E_BAD_JSON);
}

static bool
s_blank (const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p [i] != ' ' && p [i] != '\t' && p [i] != '\r' && p [i] != '\n')
            return false;
    return true;
}

int
trove_ingest_parse (const char *body, size_t size, const trove_ingest_limits_t *limits,
                    trove_ingest_item_t **items_p, size_t *n_p, const char **err_p, char **detail_p)
{
    *items_p = NULL;
    *n_p = 0;
    *detail_p = NULL;
    size_t start = 0;
    while (start < size
           && (body [start] == ' ' || body [start] == '\t' || body [start] == '\r' || body [start] == '\n'))
        start++;
    if (start == size) {
        *err_p = trove_strerror (TROVE_E_EMPTY);
        *detail_p = strdup ("the body holds no event");
        return 400;
    }
    trove_ingest_item_t *items = NULL;
    size_t n = 0;
    if (body [start] == '[') {
        json_error_t jerr;
        json_t *root = json_loadb (body, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_array (root)) {
            *err_p = trove_strerror (TROVE_E_BAD_JSON);
            *detail_p = root ? strdup ("want a JSON array of events, or NDJSON")
                             : trove_strdupf ("invalid JSON array: %s (line %d)", jerr.text, jerr.line);
            json_decref (root);
            return 400;
        }
        n = json_array_size (root);
        if (n == 0 || n > limits->max_batch) {
            json_decref (root);
            *err_p = n ? trove_strerror (TROVE_E_TOO_MANY_EVENTS) : trove_strerror (TROVE_E_EMPTY);
            *detail_p = n ? trove_strdupf ("%zu events, limit %zu per request", n, limits->max_batch)
                          : strdup ("the body holds no event");
            return n ? 413 : 400;
        }
        items = calloc (n, sizeof *items);
        if (!items) {
            json_decref (root);
            *err_p = trove_strerror (TROVE_E_INTERNAL);
            *detail_p = strdup ("out of memory");
            return 503;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *element = json_array_get (root, i);
            if (!json_is_object (element)) {
                items [i].reason = trove_strerror (TROVE_E_BAD_JSON);
                items [i].detail = strdup ("an event must be a JSON object");
                continue;
            }
            //  Each event is decoded by the same code as a ZeroMQ producer's
            //  JSON line, from its compact text.
            char *text = json_dumps (element, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (text && strlen (text) > limits->max_event) {
                *err_p = trove_strerror (TROVE_E_EVENT_TOO_LARGE);
                *detail_p =
                    trove_strdupf ("event %zu is %zu bytes, limit %zu", i, strlen (text), limits->max_event);
                free (text);
                json_decref (root);
                trove_ingest_items_free (&items, n);
                return 413;
            }
            if (text)
                s_item_decode (&items [i], text, strlen (text));
            else {
                items [i].reason = trove_strerror (TROVE_E_INTERNAL);
                items [i].detail = strdup ("out of memory");
            }
            free (text);
        }
        json_decref (root);
    }
    else {
        //  NDJSON: blank lines are ignored; sizes are checked before any
        //  decoding, so a refused body costs one scan.
        for (size_t p = start; p < size;) {
            const char *nl = memchr (body + p, '\n', size - p);
            size_t len = nl ? (size_t) (nl - (body + p)) : size - p;
            if (!s_blank (body + p, len)) {
                if (len > limits->max_event) {
                    *err_p = trove_strerror (TROVE_E_EVENT_TOO_LARGE);
                    *detail_p =
                        trove_strdupf ("event %zu is %zu bytes, limit %zu", n, len, limits->max_event);
                    return 413;
                }
                if (++n > limits->max_batch) {
                    *err_p = trove_strerror (TROVE_E_TOO_MANY_EVENTS);
                    *detail_p = trove_strdupf ("more than %zu events, limit %zu per request",
                                               limits->max_batch, limits->max_batch);
                    return 413;
                }
            }
            p += len + 1;
        }
        items = calloc (n ? n : 1, sizeof *items);
        if (!items) {
            *err_p = trove_strerror (TROVE_E_INTERNAL);
            *detail_p = strdup ("out of memory");
            return 503;
        }
        size_t k = 0;
        for (size_t p = start; p < size && k < n;) {
            const char *nl = memchr (body + p, '\n', size - p);
            size_t len = nl ? (size_t) (nl - (body + p)) : size - p;
            if (!s_blank (body + p, len))
                s_item_decode (&items [k++], body + p, len);
            p += len + 1;
        }
    }
    *items_p = items;
    *n_p = n;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Submission through the ingestor's own ROUTER (inproc): the same path, the
//  same answers as any ZeroMQ producer.

static zsock_t *
s_pool_take (trove_ingest_t *self)
{
    zsock_t *sock = NULL;
    pthread_mutex_lock (&self->pool_mutex);
    if (self->npool)
        sock = self->pool [--self->npool];
    pthread_mutex_unlock (&self->pool_mutex);
    if (sock)
        return sock;
    return trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_INPROC, self->endpoint, self->max_frame);
}

//  Sockets move between the server's threads: the mutex is the full memory
//  barrier ZeroMQ asks for.
static void
s_pool_give (trove_ingest_t *self, zsock_t **sock_p)
{
    pthread_mutex_lock (&self->pool_mutex);
    if (self->npool < S_POOL_MAX) {
        self->pool [self->npool++] = *sock_p;
        *sock_p = NULL;
    }
    pthread_mutex_unlock (&self->pool_mutex);
    zsock_destroy (sock_p);
}

static void
s_result (trove_ingest_result_t *r, int status, const char *reason, const char *detail)
{
    r->status = status;
    snprintf (r->reason, sizeof r->reason, "%s", reason ? reason : "");
    snprintf (r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

//  Wait for the reply to req_id until deadline_us; NULL on timeout or stop.
static Trove__Msg *
s_wait_reply (trove_ingest_t *self, zsock_t *sock, uint64_t req_id, int64_t deadline_us)
{
    zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
    while (!atomic_load (&self->stopping)) {
        int64_t left = (deadline_us - trove_mono_us ()) / 1000;
        if (left <= 0)
            return NULL;
        if (zmq_poll (&item, 1, left > 100 ? 100 : left) <= 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        zframe_t *frame = zframe_recv_nowait (sock);
        if (!frame)
            continue;
        const char *reason;
        Trove__Msg *msg =
            trove_msg_decode (zframe_data (frame), zframe_size (frame), self->max_frame, &reason);
        zframe_destroy (&frame);
        //  A late reply to an earlier request on this socket is skipped.
        if (msg && msg->body_case == TROVE__MSG__BODY_SUBMIT_REPLY && msg->submit_reply->req_id == req_id)
            return msg;
        trove_msg_free (&msg);
    }
    return NULL;
}

static void
s_inproc_submit (trove_ingest_t *self, uint64_t req_id, Trove__Event **events, size_t n,
                 trove_ingest_result_t *results)
{
    size_t *pending = malloc (n * sizeof *pending);
    Trove__Event **batch = malloc (n * sizeof *batch);
    zsock_t *sock = pending && batch ? s_pool_take (self) : NULL;
    size_t npending = 0;
    for (size_t i = 0; i < n; i++) {
        s_result (&results [i], TROVE__STATUS__RETRY, trove_strerror (TROVE_E_OVERLOADED),
                  "the ingestor could not take the request");
        if (pending)
            pending [npending++] = i;
    }
    int64_t deadline = trove_mono_us () + S_DEADLINE_US;
    int64_t backoff_ms = 50;
    while (sock && npending && !atomic_load (&self->stopping) && trove_mono_us () < deadline) {
        for (size_t k = 0; k < npending; k++)
            batch [k] = events [pending [k]];
        Trove__SubmitRequest submit = TROVE__SUBMIT_REQUEST__INIT;
        submit.req_id = req_id;
        submit.n_events = npending;
        submit.events = batch;
        Trove__Msg msg = TROVE__MSG__INIT;
        msg.body_case = TROVE__MSG__BODY_SUBMIT;
        msg.submit = &submit;
        Trove__Msg *reply = NULL;
        if (trove_msg_send (zsock_resolve (sock), NULL, 0, &msg, ZMQ_DONTWAIT) == 0)
            reply = s_wait_reply (self, sock, req_id, deadline);
        if (!reply) {
            for (size_t k = 0; k < npending; k++)
                s_result (&results [pending [k]], TROVE__STATUS__RETRY, "timeout",
                          "no answer from the cluster in time; resubmit (same Idempotency-Key)");
            break;
        }
        Trove__SubmitReply *sr = reply->submit_reply;
        size_t still = 0;
        if (sr->error && *sr->error) {
            //  Refused whole (e.g. frame_too_large): final for every event.
            char code [40];
            snprintf (code, sizeof code, "%.*s", (int) strcspn (sr->error, ":"), sr->error);
            int status = strstr (sr->error, "retry") ? TROVE__STATUS__RETRY : TROVE__STATUS__REJECTED;
            for (size_t k = 0; k < npending; k++)
                s_result (&results [pending [k]], status, code, sr->error);
        }
        else if (sr->n_results != npending) {
            for (size_t k = 0; k < npending; k++)
                s_result (&results [pending [k]], TROVE__STATUS__RETRY, trove_strerror (TROVE_E_INTERNAL),
                          "malformed answer");
        }
        else
            for (size_t k = 0; k < npending; k++) {
                const Trove__Result *r = sr->results [k];
                s_result (&results [pending [k]], r->status, r->reason, r->detail);
                if (r->status == TROVE__STATUS__RETRY)
                    pending [still++] = pending [k];
            }
        trove_msg_free (&reply);
        npending = still;
        //  RETRY: the same req_id again after a backoff, like trove_submitter.
        int64_t until = trove_mono_us () + backoff_ms * 1000;
        while (npending && !atomic_load (&self->stopping) && trove_mono_us () < until
               && trove_mono_us () < deadline)
            zclock_sleep (10);
        backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
    }
    if (sock)
        s_pool_give (self, &sock);
    free (pending);
    free (batch);
}

//  ---------------------------------------------------------------------------
//  The handler

static void
s_count (trove_ingest_t *self, unsigned code)
{
    size_t i = 0;
    while (i < S_NCODES && s_codes [i] != code)
        i++;
    trove_counter_inc (self->requests [i]);
}

static void
s_refuse (trove_ingest_t *self, trove_http_response_t *resp, unsigned status, const char *code,
          const char *detail)
{
    trove_http_reply_error (resp, status, code, detail);
    s_count (self, status);
}

static void
s_unauthorized (trove_http_response_t *resp, bool had_key)
{
    trove_http_reply_error (resp, 401, trove_strerror (TROVE_E_UNAUTHORIZED),
                            had_key ? "the key matches no source"
                                    : "missing header Authorization: Bearer KEY");
    trove_http_reply_header (resp, "WWW-Authenticate", "Bearer realm=\"trove\"");
}

static const trove_sources_t *
s_sources (trove_ingest_t *self)
{
    //  One set for the whole request; the main thread never waits behind a check.
    pthread_mutex_lock (&self->sources_mutex);
    const trove_sources_t *sources = self->sources;
    pthread_mutex_unlock (&self->sources_mutex);
    return sources;
}

const void *
trove_ingest_auth (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_ingest_t *self = arg;
    assert (self);
    size_t keylen = 0;
    const char *key = trove_http_bearer (req, &keylen);
    const trove_source_key_t *who = key ? trove_sources_key (s_sources (self), key, keylen) : NULL;
    if (!who) {
        s_unauthorized (resp, key != NULL);
        //  trove_ingestor_http_requests_total keeps counting the ingest
        //  path's 401s (every path's are in ..._refused_total).
        if (req->path && strcmp (req->path, "/v1/events") == 0)
            s_count (self, 401);
    }
    return who;
}

//  The body's hash, for the req_id and the Idempotency-Key check.
static void
s_body_hash (const trove_http_request_t *req, uint8_t out [16])
{
    crypto_generichash (out, 16, (const unsigned char *) req->body, req->body_size, NULL, 0);
}

//  The req_id of a submission: from the client's Idempotency-Key and the
//  body (so a resend of the same body is answered `accepted`, and another
//  body under the same key is never taken for a resend), else random.
static uint64_t
s_req_id (const char *source, const char *idem, const uint8_t body [16])
{
    uint64_t id = 0;
    if (idem && *idem) {
        crypto_generichash_state st;
        uint8_t hash [16];
        crypto_generichash_init (&st, NULL, 0, sizeof hash);
        crypto_generichash_update (&st, (const unsigned char *) "trove-http-v2", 14);
        crypto_generichash_update (&st, (const unsigned char *) source, strlen (source) + 1);
        crypto_generichash_update (&st, (const unsigned char *) idem, strlen (idem) + 1);
        crypto_generichash_update (&st, body, 16);
        crypto_generichash_final (&st, hash, sizeof hash);
        memcpy (&id, hash, sizeof id);
    }
    else
        randombytes_buf (&id, sizeof id);
    return id ? id : 1;
}

//  An Idempotency-Key is 1..200 bytes of visible ASCII.
static bool
s_idem_valid (const char *idem)
{
    size_t len = strlen (idem);
    if (len == 0 || len > S_IDEM_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (idem [i] <= ' ' || idem [i] > '~')
            return false;
    return true;
}

//  Was (source, idem) seen with another body? When remember is set, note
//  this body for it (the request is going to be submitted).
static bool
s_idem_mismatch (trove_ingest_t *self, const char *source, const char *idem, const uint8_t body [16],
                 bool remember)
{
    uint8_t key [16];
    crypto_generichash_state st;
    crypto_generichash_init (&st, self->idem_secret, sizeof self->idem_secret, sizeof key);
    crypto_generichash_update (&st, (const unsigned char *) source, strlen (source) + 1);
    crypto_generichash_update (&st, (const unsigned char *) idem, strlen (idem));
    crypto_generichash_final (&st, key, sizeof key);
    uint64_t h;
    memcpy (&h, key, sizeof h);
    int64_t now = trove_mono_us ();
    bool mismatch = false;
    pthread_mutex_lock (&self->idem_mutex);
    s_idem_t *slot = NULL, *free_slot = NULL, *oldest = NULL;
    for (size_t k = 0; k < S_IDEM_PROBE; k++) {
        s_idem_t *e = &self->idem [(h + k) % S_IDEM_SLOTS];
        bool live = e->at_us && now - e->at_us < S_IDEM_TTL_US;
        if (live && memcmp (e->key, key, sizeof key) == 0) {
            slot = e;
            break;
        }
        if (!live) {
            if (!free_slot)
                free_slot = e;
        }
        else if (!oldest || e->at_us < oldest->at_us)
            oldest = e;
    }
    if (slot)
        mismatch = memcmp (slot->body, body, 16) != 0;
    else if (remember) {
        //  A free slot of the window, else its oldest: memory stays bounded,
        //  and a key forgotten this way is still bound by its req_id.
        slot = free_slot ? free_slot : oldest;
        memcpy (slot->key, key, sizeof key);
        memcpy (slot->body, body, 16);
    }
    if (slot && remember && !mismatch)
        slot->at_us = now;
    pthread_mutex_unlock (&self->idem_mutex);
    return mismatch;
}

static json_t *
s_result_json (size_t index, const char *id, int status, const char *reason, const char *detail)
{
    json_t *o = json_object ();
    if (!o)
        return NULL;
    json_object_set_new (o, "index", json_integer ((json_int_t) index));
    if (id)
        json_object_set_new (o, "id", json_string (id));
    json_object_set_new (o, "status", json_string (trove_event_status_name (status)));
    if (reason && *reason)
        json_object_set_new (o, "reason", json_string (reason));
    if (detail && *detail)
        json_object_set_new (o, "detail", json_string (detail));
    return o;
}

void
trove_ingest_handle (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    trove_ingest_t *self = arg;
    assert (self);
    trove_ingest_item_t *items = NULL;
    size_t n = 0;
    trove_ratelimit_ask_t *asks = NULL;
    zhashx_t *users = NULL;
    Trove__Event **submit = NULL;
    size_t *submit_index = NULL;
    trove_ingest_result_t *results = NULL;
    if (atomic_load (&self->stopping)) {
        s_refuse (self, resp, 503, "stopping", "this ingestor is stopping; use another or retry");
        trove_http_reply_header (resp, "Retry-After", "1");
        return;
    }
    //  1. Who: the server's authentication hook ran before routing; without
    //  one (tests, fuzzing) the key is checked here. Never logged, echoed
    //  or kept.
    const trove_sources_t *sources = s_sources (self);
    const trove_source_key_t *who = req->principal;
    if (!who) {
        size_t keylen = 0;
        const char *key = trove_http_bearer (req, &keylen);
        who = key ? trove_sources_key (sources, key, keylen) : NULL;
        if (!who) {
            s_unauthorized (resp, key != NULL);
            s_count (self, 401);
            return;
        }
    }
    if (!trove_source_key_can (who, TROVE_SCOPE_EVENTS_WRITE)) {
        s_refuse (self, resp, 403, "forbidden",
                  "this key may not send events (it lacks the scope events:write)");
        return;
    }
    const trove_source_policy_t *policy = trove_sources_policy (sources, (size_t) who->source);
    //  2. What: the request, then every event.
    const char *idem = trove_http_header (req, "Idempotency-Key");
    if (idem && !s_idem_valid (idem)) {
        s_refuse (self, resp, 400, trove_strerror (TROVE_E_BAD_IDEMPOTENCY_KEY),
                  "Idempotency-Key: 1 to 200 visible ASCII characters");
        return;
    }
    uint8_t body_hash [16];
    s_body_hash (req, body_hash);
    if (idem && s_idem_mismatch (self, policy->name, idem, body_hash, false)) {
        s_refuse (self, resp, 422, trove_strerror (TROVE_E_IDEMPOTENCY_MISMATCH),
                  "this Idempotency-Key was used with another body; a resend must be byte for byte the same");
        return;
    }
    const char *err = NULL;
    char *detail = NULL;
    int status = trove_ingest_parse (req->body, req->body_size, &self->limits, &items, &n, &err, &detail);
    if (status) {
        s_refuse (self, resp, (unsigned) status, err, detail);
        free (detail);
        return;
    }
    //  A source speaks for itself only; an event without `source` is the
    //  key's. Then the checks the ingestor makes on every path (fields,
    //  the ts window, the source's types and backdating window), so that
    //  what will be rejected costs no user any token.
    int64_t now_ms = trove_now_ms ();
    size_t nsubmit = 0;
    for (size_t i = 0; i < n; i++) {
        Trove__Event *ev = items [i].event;
        if (!ev)
            continue;
        if (!*ev->source) {
            char *name = strdup (policy->name);
            if (!name)
                goto oom;
            free (ev->source);
            ev->source = name;
        }
        else if (strcmp (ev->source, policy->name) != 0) {
            //  Kept (for its id in the answer), never submitted.
            items [i].reason = trove_strerror (TROVE_E_SOURCE_MISMATCH);
            items [i].detail = trove_strdupf (
                "the key is source '%s'; it may not send events of another source", policy->name);
            continue;
        }
        char why [256];
        const char *reason = trove_event_check (ev, self->cfg, now_ms, why, sizeof why);
        if (!reason)
            reason = trove_sources_check (sources, who->source, ev, now_ms, why, sizeof why);
        if (reason) {
            items [i].reason = reason;
            items [i].detail = strdup (why);
            continue;
        }
        nsubmit++;
    }
    //  3. How much: the source pays for every event of the request (its own
    //  key's garbage throttles only itself), each user only for its events
    //  that can be accepted; all or nothing.
    users = zhashx_new ();
    asks = calloc (n + 1, sizeof *asks);
    //  The source's bucket key starts with a NUL, which no user id holds
    //  (text is checked): a user cannot share its source's bucket.
    size_t skey_size = strlen (policy->name) + 1;
    char *skey = malloc (skey_size);
    if (!users || !asks || !skey) {
        free (skey);
        goto oom;
    }
    skey [0] = 0;
    memcpy (skey + 1, policy->name, skey_size - 1);
    size_t nasks = 0;
    asks [nasks++] = (trove_ratelimit_ask_t){skey, skey_size, (double) n, policy->rate, policy->burst};
    for (size_t i = 0; i < n && self->limits.user_rate > 0; i++) {
        if (!items [i].event || items [i].reason)
            continue;
        const char *user = items [i].event->user;
        size_t slot = (size_t) zhashx_lookup (users, user);
        if (slot) {
            asks [slot].tokens += 1;
            continue;
        }
        asks [nasks] =
            (trove_ratelimit_ask_t){user, strlen (user), 1, self->limits.user_rate, self->limits.user_burst};
        zhashx_insert (users, user, (void *) nasks);
        nasks++;
    }
    long wait_s = 0;
    size_t which = 0;
    int rc = trove_ratelimit_take (self->ratelimit, asks, nasks, trove_mono_us (), &wait_s, &which);
    free (skey);
    if (rc) {
        const char *scope = which == 0 ? "source" : "user";
        //  The user id is not cut into the sentence: a cut could split a
        //  UTF-8 sequence and make the answer unencodable.
        char *why = which == 0 ? trove_strdupf ("source '%s': %g events/s, burst %g", policy->name,
                                                policy->rate, policy->burst)
                               : trove_strdupf ("a user of this request: %g events/s, burst %g",
                                                self->limits.user_rate, self->limits.user_burst);
        if (rc == 1) {
            json_t *root =
                json_pack ("{s:s, s:s, s:s, s:I}", "error", trove_strerror (TROVE_E_RATE_LIMITED), "scope",
                           scope, "detail", why ? why : "", "retry_after_s", (json_int_t) wait_s);
            if (root && which > 0 && asks [which].key_size <= 128)
                json_object_set_new (root, "user", json_string (asks [which].key));
            char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
            json_decref (root);
            trove_http_reply (resp, 429, text);
            trove_http_reply_code (resp, trove_strerror (TROVE_E_RATE_LIMITED));
            s_count (self, 429);
            char after [24];
            snprintf (after, sizeof after, "%ld", wait_s);
            trove_http_reply_header (resp, "Retry-After", after);
        }
        else {
            char *more = trove_strdupf ("the request alone exceeds the burst of the %s limit (%s); split it",
                                        scope, why ? why : "");
            s_refuse (self, resp, 413, trove_strerror (TROVE_E_OVER_BURST), more);
            free (more);
        }
        free (why);
        goto done;
    }
    //  4. Submit what is left, in order.
    submit = calloc (nsubmit ? nsubmit : 1, sizeof *submit);
    submit_index = calloc (nsubmit ? nsubmit : 1, sizeof *submit_index);
    results = calloc (nsubmit ? nsubmit : 1, sizeof *results);
    if (!submit || !submit_index || !results)
        goto oom;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items [i].event && !items [i].reason) {
            submit_index [k] = i;
            submit [k++] = items [i].event;
        }
    if (idem && s_idem_mismatch (self, policy->name, idem, body_hash, true)) {
        //  A concurrent request with the same key and another body got in first.
        s_refuse (self, resp, 422, trove_strerror (TROVE_E_IDEMPOTENCY_MISMATCH),
                  "this Idempotency-Key was used with another body; a resend must be byte for byte the same");
        goto done;
    }
    if (nsubmit) {
        uint64_t req_id = s_req_id (policy->name, idem, body_hash);
        if (self->endpoint)
            s_inproc_submit (self, req_id, submit, nsubmit, results);
        else
            self->fn (self->arg, req_id, submit, nsubmit, results);
    }
    json_t *list = json_array ();
    size_t counts [5] = {0};
    k = 0;
    for (size_t i = 0; list && i < n; i++) {
        const char *id = items [i].event ? items [i].event->id : NULL;
        json_t *o;
        if (k < nsubmit && submit_index [k] == i) {
            const trove_ingest_result_t *r = &results [k++];
            o = s_result_json (i, id, r->status, r->reason, r->detail);
            counts [r->status >= 0 && r->status < 5 ? r->status : 0]++;
        }
        else {
            o = s_result_json (i, id, TROVE__STATUS__REJECTED, items [i].reason, items [i].detail);
            counts [TROVE__STATUS__REJECTED]++;
        }
        if (!o || json_array_append_new (list, o)) {
            json_decref (list);
            list = NULL;
        }
    }
    json_t *root = list ? json_pack ("{s:o, s:I, s:I, s:I, s:I}", "results", list, "accepted",
                                     (json_int_t) counts [TROVE__STATUS__ACCEPTED], "duplicate",
                                     (json_int_t) counts [TROVE__STATUS__DUPLICATE], "rejected",
                                     (json_int_t) counts [TROVE__STATUS__REJECTED], "retry",
                                     (json_int_t) counts [TROVE__STATUS__RETRY])
                        : NULL;
    char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
    json_decref (root);
    if (!text)
        goto oom;
    trove_http_reply (resp, 200, text);
    s_count (self, 200);
    if (counts [TROVE__STATUS__RETRY])
        trove_http_reply_header (resp, "Retry-After", "1");
    goto done;
oom:
    resp->nheaders = 0;
    s_refuse (self, resp, 503, trove_strerror (TROVE_E_OVERLOADED), "out of memory; retry later");
    trove_http_reply_header (resp, "Retry-After", "1");
done:
    trove_ingest_items_free (&items, n);
    zhashx_destroy (&users);
    free (asks);
    free (submit);
    free (submit_index);
    free (results);
}
