/*  trove_stream - the live award stream over HTTP (Server-Sent Events). See
    trove_stream.h. */
#include "trove_stream.h"
#include "trove_awardsub.h"
#include "trove_client.h"
#include "trove_error.h"
#include "trove_json.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_BUFFER 65536           //  bytes buffered per client (its HTTP stream)
#define S_KEEPALIVE_US 15000000  //  a comment when nothing was sent this long
#define S_POLL_MS 200            //  the subscriber's wait: how soon a thread sees a stop
#define S_WRITE_MS 200           //  one wait for room in a full buffer
#define S_STATUS_MS 500          //  a scorer's "status" (position of a stream from now), once more on silence

typedef struct _s_client_t s_client_t;

struct _trove_stream_t {
    const trove_cfg_t *cfg;
    size_t nshards;
    atomic_bool stopping;
    pthread_mutex_t mutex;  //  guards clients
    s_client_t *clients;    //  list, ended ones joined at the next open or at destroy
};

struct _s_client_t {
    s_client_t *next;
    trove_stream_t *owner;
    pthread_t thread;
    atomic_bool ended;  //  the thread is done (join it)
    trove_awardsub_t *sub;
    trove_http_stream_t *http;
    char *user, *hunt, *rule, *source;  //  filters and redaction, NULL: none
    uint64_t *sent;                     //  the position of the last id sent
    bool gone;                          //  the client is gone or the stream stops
    int64_t last_write_us;              //  of the last bytes queued
};

trove_stream_t *
trove_stream_new (const trove_cfg_t *cfg)
{
    assert (cfg);
    trove_stream_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->nshards = trove_cfg_shards (cfg);
    atomic_init (&self->stopping, false);
    pthread_mutex_init (&self->mutex, NULL);
    return self;
}

static void
s_client_free (s_client_t *client)
{
    trove_awardsub_destroy (&client->sub);
    trove_http_stream_end (&client->http);
    free (client->user);
    free (client->hunt);
    free (client->rule);
    free (client->source);
    free (client->sent);
    free (client);
}

//  Join the clients whose thread ended (all of them when `all`).
static void
s_reap (trove_stream_t *self, bool all)
{
    pthread_mutex_lock (&self->mutex);
    s_client_t **at = &self->clients, *done = NULL;
    while (*at) {
        s_client_t *c = *at;
        if (all || atomic_load (&c->ended)) {
            *at = c->next;
            c->next = done;
            done = c;
        }
        else
            at = &c->next;
    }
    pthread_mutex_unlock (&self->mutex);
    while (done) {
        s_client_t *c = done;
        done = c->next;
        pthread_join (c->thread, NULL);
        s_client_free (c);
    }
}

void
trove_stream_destroy (trove_stream_t **self_p)
{
    assert (self_p);
    trove_stream_t *self = *self_p;
    if (self) {
        atomic_store (&self->stopping, true);
        s_reap (self, true);
        pthread_mutex_destroy (&self->mutex);
        free (self);
        *self_p = NULL;
    }
}

size_t
trove_stream_shards (trove_stream_t *self)
{
    assert (self);
    return self->nshards;
}

int
trove_stream_parse_id (trove_stream_t *self, const char *text, uint64_t *positions)
{
    assert (self && text && positions);
    bool *seen = calloc (self->nshards ? self->nshards : 1, sizeof *seen);
    if (!seen)
        return -1;
    int rc = 0;
    size_t named = 0;
    const char *p = text;
    while (rc == 0) {
        //  SHARD ':' ASEQ, decimal, no sign, no leading spaces
        size_t slen = strspn (p, "0123456789");
        size_t alen = slen && p [slen] == ':' ? strspn (p + slen + 1, "0123456789") : 0;
        if (slen == 0 || slen > 6 || alen == 0 || alen > 19) {
            rc = -1;
            break;
        }
        unsigned long shard = strtoul (p, NULL, 10);
        errno = 0;
        unsigned long long aseq = strtoull (p + slen + 1, NULL, 10);
        if (shard >= self->nshards || seen [shard] || errno || aseq > INT64_MAX) {
            rc = -1;
            break;
        }
        seen [shard] = true;
        positions [shard] = aseq;
        named++;
        p += slen + 1 + alen;
        if (*p == 0)
            break;
        if (*p != ',')
            rc = -1;
        p++;
    }
    free (seen);
    return rc == 0 && named == self->nshards ? 0 : -1;
}

//  "0:15,1:22" of the subscriber's position into out (or of positions).
static void
s_format_id (s_client_t *client, const uint64_t *positions, char *out, size_t size)
{
    size_t used = 0;
    out [0] = 0;
    for (size_t i = 0; i < client->owner->nshards; i++) {
        uint64_t last = positions ? positions [i] : trove_awardsub_last (client->sub, i);
        int n = snprintf (out + used, size - used, "%s%zu:%" PRIu64, i ? "," : "", i, last);
        if (n < 0 || (size_t) n >= size - used)
            break;
        used += (size_t) n;
    }
}

//  Queue text, waiting while the client reads; false when the client is
//  gone or the server stops.
static bool
s_send (s_client_t *client, const char *text, size_t len)
{
    while (!client->gone) {
        int rc = trove_http_stream_write (client->http, text, len, S_WRITE_MS);
        if (rc == 0) {
            client->last_write_us = trove_mono_us ();
            return true;
        }
        if (rc < 0 || atomic_load (&client->owner->stopping))
            client->gone = true;
    }
    return false;
}

//  The position moved since the last id sent?
static bool
s_moved (s_client_t *client)
{
    for (size_t i = 0; i < client->owner->nshards; i++)
        if (client->sent [i] != trove_awardsub_last (client->sub, i))
            return true;
    return false;
}

static void
s_remember_sent (s_client_t *client)
{
    for (size_t i = 0; i < client->owner->nshards; i++)
        client->sent [i] = trove_awardsub_last (client->sub, i);
}

static bool
s_wanted (const s_client_t *client, const Trove__Coin *coin)
{
    return (!client->user || (coin->user && strcmp (client->user, coin->user) == 0))
        && (!client->hunt || (coin->hunt && strcmp (client->hunt, coin->hunt) == 0))
        && (!client->rule || (coin->rule && strcmp (client->rule, coin->rule) == 0));
}

//  Each award of every shard, once, in order per shard (trove_awardsub).
static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_client_t *client = arg;
    if (client->gone || atomic_load (&client->owner->stopping)) {
        client->gone = true;
        trove_awardsub_stop (client->sub);
        return;
    }
    if (!s_wanted (client, coin))
        return;
    json_t *obj = trove_json_coin (coin);
    if (obj && client->source)
        trove_json_coin_redact (obj, client->source);
    char *data = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
    json_decref (obj);
    size_t idsize = client->owner->nshards * 28 + 1;
    char *id = malloc (idsize);
    char *text = NULL;
    if (data && id) {
        s_format_id (client, NULL, id, idsize);
        text = trove_strdupf ("id: %s\nevent: award\ndata: %s\n\n", id, data);
    }
    if (text && s_send (client, text, strlen (text)))
        s_remember_sent (client);
    else if (!text) {
        //  Out of memory: end the stream; the client resumes from its last id.
        trove_log ('W', "award stream: out of memory; closing a client's stream");
        client->gone = true;
    }
    free (text);
    free (id);
    free (data);
    if (client->gone)
        trove_awardsub_stop (client->sub);
}

static void *
s_client_run (void *arg)
{
    s_client_t *client = arg;
    trove_stream_t *owner = client->owner;
    size_t idsize = owner->nshards * 28 + 1;
    char *id = malloc (idsize);
    char *line = malloc (idsize + 16);
    while (id && line && !client->gone && !atomic_load (&owner->stopping)) {
        //  A signal for the process (SIGHUP: keys reloaded) may land in
        //  this thread: only the end of ZeroMQ ends the stream.
        if (trove_awardsub_poll (client->sub, S_POLL_MS) && errno == ETERM)
            break;
        if (client->gone || trove_http_stream_closed (client->http))
            break;
        if (trove_mono_us () - client->last_write_us >= S_KEEPALIVE_US) {
            //  Filtered-out awards moved the position: tell it (an id
            //  alone dispatches no event, it only moves the client's
            //  Last-Event-ID).
            bool moved = s_moved (client);
            if (moved) {
                s_format_id (client, NULL, id, idsize);
                snprintf (line, idsize + 16, "id: %s\n\n", id);
            }
            else
                snprintf (line, idsize + 16, ": keep-alive\n\n");
            if (!s_send (client, line, strlen (line)))
                break;
            if (moved)
                s_remember_sent (client);
        }
    }
    free (id);
    free (line);
    //  The connection finishes what is queued; the subscriber is freed by
    //  the reaper (its sockets belong to this thread until then: joined).
    trove_http_stream_end (&client->http);
    atomic_store (&client->ended, true);
    return NULL;
}

//  Every shard's last aseq now ("status" of each scorer at once). 0, or -1
//  when one did not answer.
static int
s_positions_now (trove_stream_t *self, uint64_t *positions)
{
    const char **endpoints = calloc (self->nshards, sizeof *endpoints);
    Trove__QueryReply **replies = calloc (self->nshards, sizeof *replies);
    int rc = endpoints && replies ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < self->nshards; i++)
        endpoints [i] = trove_cfg_shard_query (self->cfg, i);
    if (rc == 0) {
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "status";
        trove_client_call_all (endpoints, self->nshards, &query, S_STATUS_MS, 1,
                               trove_cfg_limits (self->cfg)->max_frame, replies);
        for (size_t i = 0; i < self->nshards; i++) {
            Trove__QueryReply *reply = replies [i];
            if (!reply || (reply->error && *reply->error))
                rc = -1;
            else {
                uint64_t last = reply->last_aseq;
                if (reply->status && reply->status->last_aseq > last)
                    last = reply->status->last_aseq;
                positions [i] = last;
            }
            trove_client_reply_free (&replies [i]);
        }
    }
    free (endpoints);
    free (replies);
    return rc;
}

static char *
s_dup (const char *text)
{
    return text ? strdup (text) : NULL;
}

void
trove_stream_open (trove_stream_t *self, const trove_http_request_t *req, trove_http_response_t *resp,
                   const trove_stream_want_t *want)
{
    assert (self && req && resp && want);
    s_reap (self, false);
    s_client_t *client = calloc (1, sizeof *client);
    uint64_t *start = calloc (self->nshards, sizeof *start);
    if (!client || !start)
        goto oom;
    client->owner = self;
    atomic_init (&client->ended, false);
    client->user = s_dup (want->user);
    client->hunt = s_dup (want->hunt);
    client->rule = s_dup (want->rule);
    client->source = s_dup (want->source);
    client->sent = calloc (self->nshards, sizeof *client->sent);
    if ((want->user && !client->user) || (want->hunt && !client->hunt) || (want->rule && !client->rule)
        || (want->source && !client->source) || !client->sent)
        goto oom;
    //  Subscribe first, then learn each shard's position: an award
    //  published in between is seen live or fetched by the catch-up.
    client->sub = trove_awardsub_new (self->cfg, false, s_on_award, client);
    if (!client->sub)
        goto oom;
    if (want->after)
        memcpy (start, want->after, self->nshards * sizeof *start);
    else if (s_positions_now (self, start)) {
        trove_http_reply_error (resp, 503, trove_strerror (TROVE_E_SHARD_UNAVAILABLE),
                                "a shard did not tell its position; retry later");
        trove_http_reply_header (resp, "Retry-After", "1");
        goto fail;
    }
    for (size_t i = 0; i < self->nshards; i++)
        trove_awardsub_resume (client->sub, i, start [i]);
    s_remember_sent (client);
    client->http = trove_http_reply_stream (req, resp, "text/event-stream", S_BUFFER);
    if (!client->http)
        goto fail;  //  answered 503
    //  Proxies that buffer answers (nginx) pass this one through at once.
    trove_http_reply_header (resp, "X-Accel-Buffering", "no");
    //  The start position at once: a client that leaves before its first
    //  event can resume from it; reconnect after 1 s.
    size_t idsize = self->nshards * 28 + 1;
    char *id = malloc (idsize);
    char *first = NULL;
    if (id) {
        s_format_id (client, start, id, idsize);
        first = trove_strdupf ("retry: 1000\nid: %s\n\n", id);
    }
    free (id);
    bool queued = first && trove_http_stream_write (client->http, first, strlen (first), 0) == 0;
    free (first);
    client->last_write_us = trove_mono_us ();
    if (!queued || pthread_create (&client->thread, NULL, s_client_run, client)) {
        //  The stream is answered 200 already: it ends at once, empty; the
        //  client retries.
        trove_log ('W', "award stream: cannot start a client's thread");
        s_client_free (client);
        free (start);
        return;
    }
    pthread_mutex_lock (&self->mutex);
    client->next = self->clients;
    self->clients = client;
    pthread_mutex_unlock (&self->mutex);
    free (start);
    return;
oom:
    trove_http_reply_error (resp, 503, trove_strerror (TROVE_E_OVERLOADED), "out of memory; retry later");
    trove_http_reply_header (resp, "Retry-After", "1");
fail:
    if (client)
        s_client_free (client);
    free (start);
}
