/*  trove-webhooks - deliver every award to HTTP endpoints (docs/webhooks.md).

    It follows the award stream (trove_awardsub) from each endpoint's saved
    position, POSTs one signed JSON body per award and endpoint whose kinds
    match, retries failures with exponential backoff and jitter, and after
    webhooks/max_attempts puts the delivery on the dead-letter list. An
    endpoint's position (trove_hookcursor) moves over an award only once its
    delivery is settled (2xx, or dead-lettered), and is saved with the dead
    letters in one LMDB commit (trove_hookstore): a SIGKILL re-sends at most
    what was in flight, under the same delivery id (at-least-once).

    Each endpoint has its own position, queue and concurrency
    (max_inflight): a slow or failing endpoint does not hold up the others
    until it has max_pending unsettled awards; then reading the stream
    pauses for all (its failures dead-letter within the retry schedule, so
    the pause ends).

    Control (ROUTER, webhooks/control; docs/protocol.md, "webhooks"):
    "status", "webhooks_list", "webhooks_retry" (operator role).

    usage: trove-webhooks --config FILE */
#include "trove.pb-c.h"
#include "trove_awardsub.h"
#include "trove_cfg.h"
#include "trove_client.h"
#include "trove_curve.h"
#include "trove_daemon.h"
#include "trove_error.h"
#include "trove_harden.h"
#include "trove_hookcursor.h"
#include "trove_hookproto.h"
#include "trove_hookstore.h"
#include "trove_json.h"
#include "trove_metrics.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <czmq.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_PAGE 500      //  dead letters per webhooks_list answer
#define RESPONSE_MAX 4096  //  bytes of a response body kept (for the error text)
#define STORE_MAP_SIZE (256u << 20)

typedef struct s_hook_t s_hook_t;

//  One award on its way to one endpoint (or a dead letter retried).
typedef struct {
    s_hook_t *hook;
    char id [TROVE_HOOKPROTO_ID_MAX];  //  delivery id
    uint32_t shard;
    uint64_t aseq;
    const char *kind;  //  "mint" / "revoke" (static)
    char *body;        //  the exact bytes sent, every attempt
    long attempts;     //  made so far
    int64_t due_us;    //  next attempt (monotonic)
    bool retried;      //  from the dead-letter list: not counted in the position
    CURL *easy;        //  the attempt in flight, or NULL
    struct curl_slist *headers;
    int64_t started_us;
    size_t response;               //  bytes of response body seen
    char error [CURL_ERROR_SIZE];  //  last failure
} s_delivery_t;

struct s_hook_t {
    const trove_cfg_hook_t *cfg;
    uint8_t *secret;
    size_t secret_len;
    trove_hookcursor_t *cursor;  //  position per shard
    uint64_t *saved;             //  position per shard last committed
    bool fresh;                  //  from = now and no saved position: starts at the present
    zlistx_t *waiting;           //  s_delivery_t not in flight (owned)
    size_t inflight;
    trove_counter_t *ok, *failed, *dead, *retries;
    trove_gauge_t *pending;
    trove_histogram_t *latency;
    trove_lograte_t failed_log;  //  failed attempts: one line per 10 s
};

typedef struct {
    trove_daemon_t *daemon;
    trove_cfg_t *cfg;
    const trove_cfg_webhooks_t *w;
    trove_hookstore_t *store;
    trove_awardsub_t *sub;
    zsock_t *control;
    CURLM *multi;
    s_hook_t *hooks;
    size_t nhooks, nshards;
    zlistx_t *dead_writes;   //  dead letters (JSON, key first line) not committed yet
    zlistx_t *dead_deletes;  //  ids delivered since their dead letter: not committed yet
    zlistx_t *flying;        //  s_delivery_t with an attempt in flight (not owned)
    bool dirty;              //  positions or dead letters to commit
    uint64_t delivered;      //  2xx answers since start (status)
} s_hooks_t;

static void
s_delivery_free (void **item)
{
    s_delivery_t *d = *item;
    if (d) {
        free (d->body);
        free (d);
        *item = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Start-up: endpoints, their secrets and their saved positions

//  True when the URL's host is this machine (127.0.0.0/8, ::1, localhost).
static bool
s_url_local (const char *url)
{
    const char *host = strstr (url, "://") + 3;
    size_t len = host [0] == '[' ? strcspn (host, "]") + 1 : strcspn (host, ":/?#");
    char address [300];
    snprintf (address, sizeof address, "%.*s:1", (int) (len < 256 ? len : 256), host);
    return trove_harden_local (address);
}

static int
s_hook_setup (s_hooks_t *self, s_hook_t *hook, const trove_cfg_hook_t *cfg, trove_metrics_t *metrics)
{
    hook->cfg = cfg;
    if (!self->w->allow_remote && !s_url_local (cfg->url)) {
        trove_log ('E',
                   "webhooks endpoint %s: %s is not on this host; set webhooks/allow_remote = yes to deliver "
                   "to other hosts (docs/webhooks.md)",
                   cfg->name, cfg->url);
        return -1;
    }
    if (cfg->secret) {
        hook->secret_len = strlen (cfg->secret);
        hook->secret = (uint8_t *) strdup (cfg->secret);
    }
    else {
        size_t size = 0;
        char *text = trove_read_file (cfg->secret_file, &size);
        while (text && size && strchr (" \t\r\n", text [size - 1]))
            text [--size] = 0;
        if (!text || size < 16) {
            trove_log ('E', "webhooks endpoint %s: secret_file %s %s", cfg->name, cfg->secret_file,
                       text ? "holds fewer than 16 characters" : "cannot be read");
            free (text);
            return -1;
        }
        hook->secret = (uint8_t *) text;
        hook->secret_len = size;
    }
    hook->cursor = trove_hookcursor_new (self->nshards);
    hook->saved = calloc (self->nshards, sizeof *hook->saved);
    hook->waiting = zlistx_new ();
    if (!hook->secret || !hook->cursor || !hook->saved || !hook->waiting)
        return -1;
    zlistx_set_destructor (hook->waiting, s_delivery_free);
    for (size_t s = 0; s < self->nshards; s++) {
        hook->saved [s] = trove_hookstore_cursor (self->store, cfg->name, (uint32_t) s);
        trove_hookcursor_start (hook->cursor, s, hook->saved [s]);
    }
    const char *labels [] = {"endpoint", "result", NULL};
    const char *ok [] = {cfg->name, "ok", NULL}, *failed [] = {cfg->name, "failed", NULL},
                   *dead [] = {cfg->name, "dead", NULL};
    const char *help = "Webhook attempts by result: ok (2xx), failed (retried later), dead (dead-lettered)";
    hook->ok = trove_metrics_counter (metrics, "trove_webhook_deliveries_total", help, labels, ok);
    hook->failed = trove_metrics_counter (metrics, "trove_webhook_deliveries_total", help, labels, failed);
    hook->dead = trove_metrics_counter (metrics, "trove_webhook_deliveries_total", help, labels, dead);
    const char *name_label [] = {"endpoint", NULL}, *name [] = {cfg->name, NULL};
    hook->retries =
        trove_metrics_counter (metrics, "trove_webhook_retries_total",
                               "Webhook attempts after the first of a delivery", name_label, name);
    hook->pending = trove_metrics_gauge (
        metrics, "trove_webhook_pending",
        "Awards read and not settled yet (delivered or dead-lettered): the endpoint's lag", name_label, name);
    static const double bounds [] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
    hook->latency = trove_metrics_histogram (metrics, "trove_webhook_latency_seconds",
                                             "Duration of one webhook attempt, connect to answer or failure",
                                             name_label, name, bounds, sizeof bounds / sizeof bounds [0]);
    return 0;
}

static void
s_hook_free (s_hook_t *hook)
{
    if (hook->secret)
        sodium_memzero (hook->secret, hook->secret_len);
    free (hook->secret);
    trove_hookcursor_destroy (&hook->cursor);
    free (hook->saved);
    zlistx_destroy (&hook->waiting);
}

//  `from = now`: an endpoint with no saved position starts at the award
//  stream's present. Each scorer is asked its last aseq (every shard must
//  answer), and those positions are saved durably before anything is
//  delivered, so a restart resumes there rather than at a later "now".
//  Returns 0, or -1 (logged): the start is refused and retried by the
//  supervisor.
static int
s_from_now (s_hooks_t *self)
{
    size_t fresh = 0;
    for (size_t i = 0; i < self->nhooks; i++) {
        s_hook_t *hook = &self->hooks [i];
        hook->fresh = false;
        if (!hook->cfg->from_now)
            continue;
        int known = 0;
        for (size_t s = 0; s < self->nshards && known == 0; s++)
            known = trove_hookstore_has_cursor (self->store, hook->cfg->name, (uint32_t) s);
        if (known < 0) {
            trove_log ('E', "webhooks endpoint %s: cannot read its saved position", hook->cfg->name);
            return -1;
        }
        hook->fresh = known == 0;
        fresh += hook->fresh;
    }
    if (!fresh)
        return 0;
    size_t n = self->nshards;
    const char **endpoints = calloc (n, sizeof *endpoints);
    Trove__QueryReply **replies = calloc (n, sizeof *replies);
    uint64_t *now = calloc (n, sizeof *now);
    int rc = endpoints && replies && now ? 0 : -1;
    for (size_t s = 0; rc == 0 && s < n; s++)
        endpoints [s] = trove_cfg_shard_query (self->cfg, s);
    if (rc == 0) {
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "status";
        trove_client_call_all (endpoints, n, &query, 2000, 1, trove_cfg_limits (self->cfg)->max_frame,
                               replies);
    }
    for (size_t s = 0; rc == 0 && s < n; s++) {
        Trove__QueryReply *reply = replies [s];
        if (!reply || (reply->error && *reply->error)) {
            trove_log ('E',
                       "webhooks: an endpoint with from = now starts at the award stream's present, and "
                       "scorer %s did not say where it is (%s); retrying at the next start",
                       trove_cfg_shard_name (self->cfg, s),
                       reply && reply->error ? reply->error : "no answer");
            rc = -1;
            break;
        }
        now [s] = reply->last_aseq;
        if (reply->status && reply->status->last_aseq > now [s])
            now [s] = reply->status->last_aseq;
    }
    for (size_t s = 0; replies && s < n; s++)
        trove_client_reply_free (&replies [s]);
    if (rc == 0 && trove_hookstore_begin (self->store) == 0) {
        for (size_t i = 0; i < self->nhooks; i++)
            for (size_t s = 0; self->hooks [i].fresh && s < n; s++)
                trove_hookstore_set_cursor (self->store, self->hooks [i].cfg->name, (uint32_t) s, now [s]);
        rc = trove_hookstore_commit (self->store);
        if (rc)
            trove_log ('E', "webhooks: cannot save the starting positions of the from = now endpoints");
    }
    for (size_t i = 0; rc == 0 && i < self->nhooks; i++) {
        s_hook_t *hook = &self->hooks [i];
        if (!hook->fresh)
            continue;
        for (size_t s = 0; s < n; s++) {
            hook->saved [s] = now [s];
            trove_hookcursor_start (hook->cursor, s, now [s]);
        }
        trove_log ('I',
                   "webhooks endpoint %s is new and starts now (from = now): at the next award of each shard",
                   hook->cfg->name);
    }
    free (endpoints);
    free (replies);
    free (now);
    return rc;
}

//  --------------------------------------------------------------------------
//  Deliveries

//  A new delivery of an award, or of a dead letter's body, due now.
static s_delivery_t *
s_delivery_new (s_hook_t *hook, uint32_t shard, uint64_t aseq, const char *kind, char *body)
{
    s_delivery_t *d = calloc (1, sizeof *d);
    if (!d)
        return NULL;
    d->hook = hook;
    trove_hookproto_id (hook->cfg->name, shard, aseq, d->id);
    d->shard = shard;
    d->aseq = aseq;
    d->kind = kind;
    d->body = body;
    d->due_us = trove_mono_us ();
    return d;
}

//  The award stream: queue the award for each endpoint that wants it.
static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_hooks_t *self = arg;
    unsigned kind = coin->revoked ? TROVE_HOOK_REVOKE : TROVE_HOOK_MINT;
    if (coin->shard >= self->nshards)
        return;
    for (size_t i = 0; i < self->nhooks; i++) {
        s_hook_t *hook = &self->hooks [i];
        bool wanted = (hook->cfg->kinds & kind) != 0;
        int added = trove_hookcursor_add (hook->cursor, coin->shard, coin->aseq, wanted);
        if (added <= 0) {
            if (added < 0)
                trove_log ('E', "endpoint %s: award %u/%llu out of order or no memory: not delivered",
                           hook->cfg->name, coin->shard, (unsigned long long) coin->aseq);
            self->dirty = true;
            continue;
        }
        char id [TROVE_HOOKPROTO_ID_MAX];
        trove_hookproto_id (hook->cfg->name, coin->shard, coin->aseq, id);
        json_t *obj = json_pack ("{s:s,s:s,s:o}", "id", id, "kind", trove_cfg_hook_kind_name (kind), "coin",
                                 trove_json_coin (coin));
        char *body = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
        json_decref (obj);
        s_delivery_t *d =
            body ? s_delivery_new (hook, coin->shard, coin->aseq, trove_cfg_hook_kind_name (kind), body)
                 : NULL;
        if (!d || !zlistx_add_end (hook->waiting, d)) {
            //  Out of memory: it stays unsettled, so the position stays
            //  before it and a restart delivers it.
            trove_log ('E', "endpoint %s: out of memory for delivery %s", hook->cfg->name, id);
            if (d)
                s_delivery_free ((void **) &d);
            else
                free (body);
            continue;
        }
        trove_gauge_set_int (hook->pending, (int64_t) trove_hookcursor_pending (hook->cursor));
    }
}

static size_t
s_discard (char *data, size_t size, size_t n, void *arg)
{
    (void) data;
    s_delivery_t *d = arg;
    d->response += size * n;
    //  A receiver that streams forever is cut off (a failed attempt).
    return d->response > RESPONSE_MAX ? 0 : size * n;
}

//  Start one attempt. Returns 0, or -1 (the attempt counts as failed).
static int
s_attempt (s_hooks_t *self, s_delivery_t *d)
{
    s_hook_t *hook = d->hook;
    char sig [TROVE_HOOKPROTO_SIG_MAX], line [256];
    size_t len = strlen (d->body);
    trove_hookproto_sign (hook->secret, hook->secret_len, (int64_t) time (NULL), d->body, len, sig);
    d->error [0] = 0;
    d->response = 0;
    d->easy = curl_easy_init ();
    if (!d->easy)
        return -1;
    const char *fixed [] = {"Content-Type: application/json", "User-Agent: trove-webhooks/" TROVE_VERSION,
                            "Expect:"};
    struct curl_slist *headers = NULL, *next;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed [0]; i++)
        if ((next = curl_slist_append (headers, fixed [i])))
            headers = next;
    snprintf (line, sizeof line, "Trove-Delivery: %s", d->id);
    if ((next = curl_slist_append (headers, line)))
        headers = next;
    snprintf (line, sizeof line, "Trove-Event: %s", d->kind);
    if ((next = curl_slist_append (headers, line)))
        headers = next;
    snprintf (line, sizeof line, "Trove-Attempt: %ld", d->attempts + 1);
    if ((next = curl_slist_append (headers, line)))
        headers = next;
    snprintf (line, sizeof line, "Trove-Signature: %s", sig);
    if ((next = curl_slist_append (headers, line)))
        headers = next;
    d->headers = headers;
    CURL *e = d->easy;
    curl_easy_setopt (e, CURLOPT_URL, hook->cfg->url);
    curl_easy_setopt (e, CURLOPT_POST, 1L);
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE, (long) len);
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, self->w->timeout_ms);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, self->w->timeout_ms);
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    //  Only where the URL says: no proxy from the environment, no redirect
    //  elsewhere, no other protocol.
    curl_easy_setopt (e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, d);
    curl_easy_setopt (e, CURLOPT_ERRORBUFFER, d->error);
    curl_easy_setopt (e, CURLOPT_PRIVATE, d);
    if (curl_multi_add_handle (self->multi, e) != CURLM_OK) {
        snprintf (d->error, sizeof d->error, "cannot start the request");
        curl_slist_free_all (d->headers);
        d->headers = NULL;
        curl_easy_cleanup (e);
        d->easy = NULL;
        return -1;
    }
    d->started_us = trove_mono_us ();
    hook->inflight++;
    return 0;
}

//  The dead letter of d as JSON text (caller frees), or NULL on OOM.
static char *
s_dead_letter (const s_delivery_t *d)
{
    json_t *obj = json_pack ("{s:s,s:s,s:I,s:I,s:s,s:I,s:s,s:I,s:s,s:s}", "id", d->id, "endpoint",
                             d->hook->cfg->name, "shard", (json_int_t) d->shard, "aseq", (json_int_t) d->aseq,
                             "kind", d->kind, "attempts", (json_int_t) d->attempts, "error", d->error,
                             "dead_ms", (json_int_t) trove_now_ms (), "state", "dead", "body", d->body);
    char *text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
    json_decref (obj);
    return text;
}

//  An attempt ended: settle the delivery (ok or dead) or schedule the next
//  attempt. Takes d.
static void
s_finish (s_hooks_t *self, s_delivery_t *d, bool ok)
{
    s_hook_t *hook = d->hook;
    d->attempts++;
    if (d->attempts > 1)
        trove_counter_inc (hook->retries);
    if (!ok && d->attempts < self->w->max_attempts) {
        trove_counter_inc (hook->failed);
        trove_log_limited (&hook->failed_log, 10000000, 'W', "delivery %s attempt %ld failed: %s (retried)",
                           d->id, d->attempts, d->error);
        uint32_t r = randombytes_random ();
        d->due_us =
            trove_mono_us ()
            + 1000
                  * trove_hookproto_backoff_ms (d->attempts, self->w->backoff_ms, self->w->backoff_max_ms, r);
        if (zlistx_add_end (hook->waiting, d))
            return;
        snprintf (d->error, sizeof d->error, "out of memory");  //  dead-lettered now
    }
    if (ok) {
        trove_counter_inc (hook->ok);
        self->delivered++;
        //  Always: a dead letter of it may exist from before a restart.
        char *id = strdup (d->id);
        if (!id || !zlistx_add_end (self->dead_deletes, id))
            free (id);
    }
    else {
        trove_counter_inc (hook->dead);
        char *text = s_dead_letter (d);
        if (!text || !zlistx_add_end (self->dead_writes, text)) {
            //  Cannot record it: leave it unsettled (a restart retries).
            trove_log ('E', "delivery %s: out of memory for its dead letter", d->id);
            free (text);
            s_delivery_free ((void **) &d);
            return;
        }
        trove_log ('W', "delivery %s dead-lettered after %ld attempts: %s", d->id, d->attempts, d->error);
    }
    if (!d->retried)
        trove_hookcursor_settle (hook->cursor, d->shard, d->aseq);
    trove_gauge_set_int (hook->pending, (int64_t) trove_hookcursor_pending (hook->cursor));
    self->dirty = true;
    s_delivery_free ((void **) &d);
}

//  Start the attempts that are due, within each endpoint's max_inflight.
//  Returns microseconds until the next one is due (INT64_MAX: none that a
//  free slot would start).
static int64_t
s_start_due (s_hooks_t *self)
{
    int64_t now = trove_mono_us (), next = INT64_MAX;
    for (size_t i = 0; i < self->nhooks; i++) {
        s_hook_t *hook = &self->hooks [i];
        for (s_delivery_t *d = zlistx_first (hook->waiting); d; d = zlistx_next (hook->waiting)) {
            if (d->due_us > now) {
                next = d->due_us - now < next ? d->due_us - now : next;
                continue;
            }
            if (hook->inflight >= (size_t) self->w->max_inflight)
                continue;
            //  Detached, the cursor moves back: the loop goes on after it.
            zlistx_detach_cur (hook->waiting);
            if (s_attempt (self, d) == 0 && zlistx_add_end (self->flying, d))
                continue;
            s_finish (self, d, false);
        }
    }
    return next;
}

//  Collect the attempts that ended.
static void
s_collect (s_hooks_t *self)
{
    int running;
    curl_multi_perform (self->multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode result = msg->data.result;
        s_delivery_t *d = NULL;
        curl_easy_getinfo (e, CURLINFO_PRIVATE, (char **) &d);
        long status = 0;
        curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle (self->multi, e);
        curl_easy_cleanup (e);
        void *handle = zlistx_find (self->flying, d);
        if (handle)
            zlistx_detach (self->flying, handle);
        d->easy = NULL;
        curl_slist_free_all (d->headers);
        d->headers = NULL;
        d->hook->inflight--;
        trove_histogram_observe (d->hook->latency, (trove_mono_us () - d->started_us) / 1e6);
        bool ok = result == CURLE_OK && status >= 200 && status < 300;
        if (result != CURLE_OK) {
            if (!d->error [0])
                snprintf (d->error, sizeof d->error, "%s", curl_easy_strerror (result));
        }
        else if (!ok)
            snprintf (d->error, sizeof d->error, "HTTP status %ld", status);
        s_finish (self, d, ok);
    }
}

//  Commit what settled: dead letters, deletions and moved positions, in one
//  transaction. On failure everything stays to be written next time.
static void
s_commit (s_hooks_t *self)
{
    if (!self->dirty)
        return;
    if (trove_hookstore_begin (self->store))
        return;
    for (char *text = zlistx_first (self->dead_writes); text; text = zlistx_next (self->dead_writes)) {
        json_t *obj = json_loads (text, 0, NULL);
        const char *id = obj ? json_string_value (json_object_get (obj, "id")) : NULL;
        if (id)
            trove_hookstore_put_dead (self->store, id, text);
        json_decref (obj);
    }
    for (char *id = zlistx_first (self->dead_deletes); id; id = zlistx_next (self->dead_deletes))
        trove_hookstore_del_dead (self->store, id);
    for (size_t i = 0; i < self->nhooks; i++)
        for (size_t s = 0; s < self->nshards; s++) {
            uint64_t through = trove_hookcursor_through (self->hooks [i].cursor, s);
            if (through != self->hooks [i].saved [s])
                trove_hookstore_set_cursor (self->store, self->hooks [i].cfg->name, (uint32_t) s, through);
        }
    if (trove_hookstore_commit (self->store))
        return;
    zlistx_purge (self->dead_writes);
    zlistx_purge (self->dead_deletes);
    for (size_t i = 0; i < self->nhooks; i++)
        for (size_t s = 0; s < self->nshards; s++)
            self->hooks [i].saved [s] = trove_hookcursor_through (self->hooks [i].cursor, s);
    self->dirty = false;
}

//  --------------------------------------------------------------------------
//  Dead letters: retry

//  Queue a dead letter for delivery again and mark it retrying (durably:
//  a restart resumes the retry). Returns 1 when queued, 0 when it is
//  already retrying (and start is false), -1 when it cannot be (logged in
//  *why).
static int
s_retry_one (s_hooks_t *self, const char *json, bool start, const char **why)
{
    json_t *obj = json_loads (json, 0, NULL);
    const char *id = obj ? json_string_value (json_object_get (obj, "id")) : NULL;
    const char *name = obj ? json_string_value (json_object_get (obj, "endpoint")) : NULL;
    const char *state = obj ? json_string_value (json_object_get (obj, "state")) : NULL;
    const char *body = obj ? json_string_value (json_object_get (obj, "body")) : NULL;
    const char *kind = obj ? json_string_value (json_object_get (obj, "kind")) : NULL;
    int rc = -1;
    *why = "unreadable dead letter";
    if (!id || !name || !state || !body || !kind)
        goto done;
    if (!start && strcmp (state, "retrying") == 0) {
        rc = 0;
        goto done;
    }
    s_hook_t *hook = NULL;
    for (size_t i = 0; i < self->nhooks; i++)
        if (strcmp (self->hooks [i].cfg->name, name) == 0)
            hook = &self->hooks [i];
    *why = "its endpoint is no longer in the config";
    if (!hook)
        goto done;
    char endpoint [80];
    uint32_t shard;
    uint64_t aseq;
    *why = "unreadable dead letter";
    if (trove_hookproto_id_parse (id, endpoint, &shard, &aseq))
        goto done;
    char *copy = strdup (body);
    s_delivery_t *d =
        copy ? s_delivery_new (hook, shard, aseq, trove_cfg_hook_kind_name (trove_cfg_hook_kind (kind)), copy)
             : NULL;
    *why = "out of memory";
    if (!d) {
        free (copy);
        goto done;
    }
    d->retried = true;
    if (!d->kind)
        d->kind = "mint";
    json_object_set_new (obj, "state", json_string ("retrying"));
    char *text = json_dumps (obj, JSON_COMPACT);
    if (!text || !zlistx_add_end (self->dead_writes, text) || !zlistx_add_end (hook->waiting, d)) {
        free (text);
        s_delivery_free ((void **) &d);
        goto done;
    }
    self->dirty = true;
    rc = 1;
done:
    json_decref (obj);
    return rc;
}

typedef struct {
    s_hooks_t *self;
    size_t queued, failed;
    bool start;  //  at start: resume those marked retrying
} s_retry_all_t;

static int
s_retry_each (void *arg, const char *id, const char *json)
{
    (void) id;
    s_retry_all_t *all = arg;
    json_t *obj = json_loads (json, 0, NULL);
    const char *state = obj ? json_string_value (json_object_get (obj, "state")) : NULL;
    bool retrying = state && strcmp (state, "retrying") == 0;
    json_decref (obj);
    if (all->start != retrying)
        return 0;  //  at start only those retrying; on request only those dead
    const char *why;
    int rc = s_retry_one (all->self, json, true, &why);
    if (rc > 0)
        all->queued++;
    else if (rc < 0) {
        all->failed++;
        trove_log ('W', "dead letter %s not retried: %s", id, why);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Control

typedef struct {
    json_t *list;
    const char *after;  //  page after this id
    size_t n;
    bool more;
} s_list_t;

static int
s_list_each (void *arg, const char *id, const char *json)
{
    s_list_t *l = arg;
    if (*l->after && strcmp (id, l->after) <= 0)
        return 0;
    if (l->n == LIST_PAGE) {
        l->more = true;
        return 1;
    }
    json_t *obj = json_loads (json, 0, NULL);
    if (obj) {
        json_array_append_new (l->list, obj);
        l->n++;
    }
    return 0;
}

static void
s_control (s_hooks_t *self)
{
    zframe_t *routing_id, *body = NULL;
    const char *reason;
    Trove__Msg *msg = trove_msg_recv_from (self->control, trove_cfg_limits (self->cfg)->max_frame,
                                           &routing_id, &reason, NULL, &body);
    if (!routing_id) {
        trove_msg_free (&msg);
        return;
    }
    trove_peer_t peer;
    trove_curve_peer (body, &peer);
    zframe_destroy (&body);
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    Trove__StatusInfo status = TROVE__STATUS_INFO__INIT;
    char *report = NULL;
    char refusal [256];
    if (!msg || msg->body_case != TROVE__MSG__BODY_QUERY)
        reply.error = (char *) (reason ? reason : "not a query");
    else {
        const Trove__Query *q = msg->query;
        reply.req_id = q->req_id;
        if (strcmp (q->kind, "status") == 0) {
            trove_daemon_status (self->daemon, &status);
            uint64_t pending = 0;
            for (size_t i = 0; i < self->nhooks; i++)
                pending += trove_hookcursor_pending (self->hooks [i].cursor);
            status.inflight = pending;
            status.events = self->delivered;
            reply.status = &status;
        }
        else if (strcmp (q->kind, "webhooks_list") == 0) {
            s_list_t l = {json_array (), q->cursor ? q->cursor : "", 0, false};
            if (!l.list || trove_hookstore_each_dead (self->store, s_list_each, &l))
                reply.error = "cannot read the dead letters";
            else {
                json_t *obj = json_pack ("{s:O,s:b}", "dead", l.list, "more", l.more);
                report = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
                json_decref (obj);
            }
            json_decref (l.list);
        }
        else if (strcmp (q->kind, "webhooks_retry") == 0) {
            if (!trove_curve_allows (&peer, TROVE_ROLE_OPERATOR)) {
                snprintf (refusal, sizeof refusal,
                          "%s: a webhooks retry needs role operator; certificate '%s' has role %s",
                          trove_strerror (TROVE_E_NOT_ALLOWED), peer.name, trove_curve_role_name (peer.role));
                reply.error = refusal;
            }
            else if (strcmp (q->cursor, "*") == 0) {
                s_retry_all_t all = {self, 0, 0, false};
                if (trove_hookstore_each_dead (self->store, s_retry_each, &all))
                    reply.error = "cannot read the dead letters";
                report = trove_strdupf ("{\"retried\":%zu,\"failed\":%zu}", all.queued, all.failed);
            }
            else {
                char *json = trove_hookstore_dead (self->store, q->cursor);
                const char *why = "no such dead letter";
                int rc = json ? s_retry_one (self, json, false, &why) : -1;
                if (rc < 0) {
                    snprintf (refusal, sizeof refusal, "%s: %s", q->cursor, why);
                    reply.error = refusal;
                }
                else
                    report = trove_strdupf ("{\"retried\":%d,\"failed\":0}", rc);
                free (json);
            }
            //  The retry is durable before the answer (commit, then acknowledge).
            s_commit (self);
            if (!reply.error && self->dirty)
                reply.error = "cannot write the webhooks store (see its log); try again";
        }
        else
            reply.error = (char *) trove_strerror (TROVE_E_UNKNOWN_KIND);
    }
    reply.report = report ? report : "";
    Trove__Msg out = TROVE__MSG__INIT;
    out.body_case = TROVE__MSG__BODY_QUERY_REPLY;
    out.query_reply = &reply;
    trove_msg_send (self->control, zframe_data (routing_id), zframe_size (routing_id), &out, ZMQ_DONTWAIT);
    free (report);
    trove_msg_free (&msg);
    zframe_destroy (&routing_id);
}

//  --------------------------------------------------------------------------
//  The daemon

static bool
s_full (s_hooks_t *self)
{
    for (size_t i = 0; i < self->nhooks; i++)
        if (trove_hookcursor_pending (self->hooks [i].cursor) >= (size_t) self->w->max_pending)
            return true;
    return false;
}

static size_t
s_inflight (s_hooks_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nhooks; i++)
        n += self->hooks [i].inflight;
    return n;
}

static int
s_daemon_run (trove_daemon_t *daemon)
{
    int rc = 1;
    s_hooks_t self = {0};
    self.daemon = daemon;
    self.cfg = trove_daemon_cfg (daemon);
    self.w = trove_cfg_webhooks (self.cfg);
    self.nshards = trove_cfg_shards (self.cfg);
    bool curl_ready = false;
    if (!self.w) {
        trove_log ('E', "the config has no webhooks section: nothing to deliver");
        return 1;
    }
    char *err = NULL;
    self.store = trove_hookstore_new (self.w->data, STORE_MAP_SIZE, trove_cfg_sync (self.cfg), &err);
    if (!self.store) {
        trove_log ('E', "%s", err ? err : "out of memory");
        free (err);
        goto done;
    }
    self.dead_writes = zlistx_new ();
    self.dead_deletes = zlistx_new ();
    self.flying = zlistx_new ();
    self.hooks = calloc (self.w->nhooks, sizeof *self.hooks);
    if (!self.dead_writes || !self.dead_deletes || !self.flying || !self.hooks) {
        trove_log ('E', "out of memory");
        goto done;
    }
    zlistx_set_destructor (self.dead_writes, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_destructor (self.dead_deletes, (zlistx_destructor_fn *) zstr_free);
    trove_metrics_t *metrics = trove_daemon_metrics (daemon);
    for (size_t i = 0; i < self.w->nhooks; i++) {
        self.nhooks++;
        if (s_hook_setup (&self, &self.hooks [i], &self.w->hooks [i], metrics)) {
            trove_log ('E', "cannot set up webhooks endpoint %s", self.w->hooks [i].name);
            goto done;
        }
    }
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK || !(self.multi = curl_multi_init ())) {
        trove_log ('E', "libcurl failed to initialise");
        goto done;
    }
    curl_ready = true;
    if (trove_daemon_serve_metrics (daemon, NULL, NULL) || trove_daemon_secure (daemon))
        goto done;
    //  Bind before connecting (docs/protocol.md, "Start-up").
    size_t max_frame = trove_cfg_limits (self.cfg)->max_frame;
    if (!(self.control = trove_sock_bound (ZMQ_ROUTER, TROVE_SOCK_LINK, self.w->control, max_frame)))
        goto done;
    if (s_from_now (&self))
        goto done;
    self.sub = trove_awardsub_new (self.cfg, false, s_on_award, &self);
    if (!self.sub) {
        trove_log ('E', "cannot subscribe to the award stream at %s", trove_cfg_broker_sub (self.cfg));
        goto done;
    }
    //  The stream starts at the earliest position of any endpoint; each
    //  endpoint skips what it settled already (trove_hookcursor_add).
    for (size_t s = 0; s < self.nshards; s++) {
        uint64_t from = UINT64_MAX;
        for (size_t i = 0; i < self.nhooks; i++)
            from = self.hooks [i].saved [s] < from ? self.hooks [i].saved [s] : from;
        if (from)
            trove_awardsub_resume (self.sub, s, from);
    }
    //  Retries a restart interrupted go on.
    s_retry_all_t resumed = {&self, 0, 0, true};
    trove_hookstore_each_dead (self.store, s_retry_each, &resumed);
    s_commit (&self);
    trove_log ('I', "webhooks ready: %zu endpoints, control %s, %zu retries resumed", self.nhooks,
               self.w->control, resumed.queued);
    while (!zsys_interrupted) {
        int64_t next_us = s_start_due (&self);
        //  Drive the attempts just started (connect, send) before waiting.
        s_collect (&self);
        size_t inflight = s_inflight (&self);
        //  Block in one place only: the award stream when nothing is in
        //  flight, libcurl when something is.
        int wait_ms = inflight || next_us == 0 ? 0 : next_us == INT64_MAX ? 100 : (int) (next_us / 1000 + 1);
        if (wait_ms > 100)
            wait_ms = 100;
        if (!s_full (&self)) {
            if (trove_awardsub_poll (self.sub, wait_ms) < 0 && zsys_interrupted)
                break;
        }
        else if (!inflight)
            zclock_sleep (wait_ms);
        if (inflight)
            curl_multi_poll (self.multi, NULL, 0, 20, NULL);
        s_collect (&self);
        while (zsock_events (self.control) & ZMQ_POLLIN)
            s_control (&self);
        s_commit (&self);
    }
    //  What settled since the last turn is kept: a clean stop re-sends
    //  nothing that was answered.
    s_commit (&self);
    trove_log ('I', "webhooks stopping");
    rc = 0;
done:
    trove_awardsub_destroy (&self.sub);
    zsock_destroy (&self.control);
    //  In-flight attempts are dropped: their awards are not settled, so
    //  the next start sends them again (same delivery ids).
    for (s_delivery_t *d = self.flying ? zlistx_first (self.flying) : NULL; d;
         d = zlistx_next (self.flying)) {
        curl_multi_remove_handle (self.multi, d->easy);
        curl_easy_cleanup (d->easy);
        curl_slist_free_all (d->headers);
        s_delivery_free ((void **) &d);
    }
    zlistx_destroy (&self.flying);
    if (self.multi)
        curl_multi_cleanup (self.multi);
    for (size_t i = 0; i < self.nhooks; i++)
        s_hook_free (&self.hooks [i]);
    free (self.hooks);
    zlistx_destroy (&self.dead_writes);
    zlistx_destroy (&self.dead_deletes);
    trove_hookstore_destroy (&self.store);
    if (curl_ready)
        curl_global_cleanup ();
    return rc;
}

static const trove_daemon_spec_t s_spec = {
    .role = "webhooks",
    .name_option = NULL,
    .usage = "usage: trove-webhooks --config FILE\n",
    .metrics = true,
};

int
main (int argc, char **argv)
{
    return trove_daemon_main (&s_spec, argc, argv, s_daemon_run);
}
