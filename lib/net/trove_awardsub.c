/*  trove_awardsub - the award stream, every award once, in order. See
    trove_awardsub.h for the contracts. */
#include "trove_awardsub.h"
#include "trove_client.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Award catch-up: events per "awards" query, call timeout, backoff ceiling.
#define S_AWARDS_LIMIT 1000
#define S_AWARDS_TIMEOUT_MS 1000
#define S_AWARDS_BACKOFF_MAX_US 2000000
//  Awards held behind a gap, per shard; beyond that they are dropped and
//  fetched later by the catch-up (the shard's target remembers they exist).
#define S_HELD_MAX 10000

//  Per shard: the last aseq delivered, the highest aseq
//  known to exist (target: from awards seen, heartbeats and "awards"
//  replies), and the awards received ahead of a gap. While last < target the
//  missing range is fetched from the scorer before anything later is given.

typedef struct {
    char *query;        //  the scorer's query endpoint
    bool known;         //  the starting point is known
    bool probe;         //  ask the scorer for its awards even if target says nothing is missing
    uint64_t last;      //  last aseq delivered
    uint64_t target;    //  highest aseq known to exist
    Trove__Msg **held;  //  awards ahead of a gap, sorted by aseq
    size_t nheld;       //  number held
    int64_t retry_us;   //  no scorer query before this (monotonic)
    unsigned failures;  //  consecutive failed scorer queries
} s_stream_t;

struct _trove_awardsub_t {
    zsock_t *sub;           //  SUB to the broker, everything
    size_t max_frame;       //  frame limit of the cluster
    size_t nshards;         //  shards of the cluster
    s_stream_t *streams;    //  one per shard
    trove_awardsub_fn *fn;  //  awards go here
    void *arg;              //  for fn
    bool stopped;           //  the callback asked this poll to give no more
};

static void
s_stream_failed (s_stream_t *stream)
{
    int64_t delay = 200000LL << (stream->failures < 4 ? stream->failures : 4);
    if (delay > S_AWARDS_BACKOFF_MAX_US)
        delay = S_AWARDS_BACKOFF_MAX_US;
    stream->failures++;
    stream->retry_us = trove_mono_us () + delay;
}

//  Ask the shard's scorer for its last aseq (from_now start). 0 or -1.
static int
s_stream_status (trove_awardsub_t *self, s_stream_t *stream)
{
    Trove__Query query = TROVE__QUERY__INIT;
    query.kind = "status";
    Trove__QueryReply *reply = trove_client_call_max (stream->query, &query, 500, 1, self->max_frame, NULL);
    if (!reply || (reply->error && *reply->error)) {
        trove_client_reply_free (&reply);
        s_stream_failed (stream);
        return -1;
    }
    uint64_t last = reply->last_aseq;
    if (reply->status && reply->status->last_aseq > last)
        last = reply->status->last_aseq;
    stream->known = true;
    stream->last = stream->target = last;
    stream->failures = 0;
    trove_client_reply_free (&reply);
    return 0;
}

static void
s_deliver (trove_awardsub_t *self, s_stream_t *stream, Trove__Coin *coin, size_t shard)
{
    coin->shard = (uint32_t) shard;
    stream->last = coin->aseq;
    if (stream->target < stream->last)
        stream->target = stream->last;
    self->fn (self->arg, coin);
}

//  Deliver held awards that are next in line, drop those already delivered.
static void
s_drain (trove_awardsub_t *self, s_stream_t *stream, size_t shard)
{
    size_t i = 0;
    for (; i < stream->nheld; i++) {
        Trove__Coin *coin = stream->held [i]->award;
        if (coin->aseq > stream->last + 1 || self->stopped)
            break;
        if (coin->aseq == stream->last + 1)
            s_deliver (self, stream, coin, shard);
        trove_msg_free (&stream->held [i]);
    }
    if (i) {
        memmove (stream->held, stream->held + i, (stream->nheld - i) * sizeof *stream->held);
        stream->nheld -= i;
    }
}

//  Keep an award that arrived ahead of a gap (takes msg).
static void
s_hold (s_stream_t *stream, Trove__Msg **msg_p)
{
    uint64_t aseq = (*msg_p)->award->aseq;
    if (stream->nheld == S_HELD_MAX) {
        trove_msg_free (msg_p);  //  the catch-up will fetch it
        return;
    }
    size_t at = stream->nheld;
    while (at > 0 && stream->held [at - 1]->award->aseq > aseq)
        at--;
    if (at > 0 && stream->held [at - 1]->award->aseq == aseq) {
        trove_msg_free (msg_p);  //  seen it already
        return;
    }
    memmove (stream->held + at + 1, stream->held + at, (stream->nheld - at) * sizeof *stream->held);
    stream->held [at] = *msg_p;
    stream->nheld++;
    *msg_p = NULL;
}

//  Fetch what is missing from the scorer, as long as it answers. 0 or -1.
static int
s_catch_up (trove_awardsub_t *self, size_t shard)
{
    s_stream_t *stream = &self->streams [shard];
    while (stream->known && (stream->last < stream->target || stream->probe) && !self->stopped) {
        if (trove_mono_us () < stream->retry_us)
            return -1;
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "awards";
        query.from_aseq = stream->last + 1;
        query.limit = S_AWARDS_LIMIT;
        Trove__QueryReply *reply =
            trove_client_call_max (stream->query, &query, S_AWARDS_TIMEOUT_MS, 0, self->max_frame, NULL);
        if (!reply || (reply->error && *reply->error)) {
            trove_client_reply_free (&reply);
            s_stream_failed (stream);
            return -1;
        }
        stream->probe = false;
        stream->failures = 0;
        if (reply->last_aseq > stream->target)
            stream->target = reply->last_aseq;
        size_t delivered = 0;
        for (size_t i = 0; i < reply->n_coins && !self->stopped; i++) {
            Trove__Coin *coin = reply->coins [i];
            if (coin->aseq <= stream->last)
                continue;
            if (coin->aseq != stream->last + 1)
                break;  //  a hole in the answer: ask again from there
            s_deliver (self, stream, coin, shard);
            delivered++;
        }
        trove_client_reply_free (&reply);
        s_drain (self, stream, shard);
        if (delivered == 0 && stream->last < stream->target) {
            //  The scorer has nothing yet for what we believe exists (e.g. a
            //  heartbeat ahead of its commit): try again a little later.
            s_stream_failed (stream);
            return -1;
        }
    }
    return 0;
}

static void
s_on_message (trove_awardsub_t *self, Trove__Msg **msg_p)
{
    Trove__Msg *msg = *msg_p;
    if (msg->body_case == TROVE__MSG__BODY_AWARD) {
        Trove__Coin *coin = msg->award;
        if (coin->shard >= self->nshards || coin->aseq == 0)
            goto done;
        s_stream_t *stream = &self->streams [coin->shard];
        if (!stream->known) {
            stream->known = true;
            stream->last = stream->target = coin->aseq - 1;
        }
        if (coin->aseq == stream->last + 1 && !self->stopped) {
            s_deliver (self, stream, coin, coin->shard);
            s_drain (self, stream, coin->shard);
        }
        else if (coin->aseq > stream->last) {
            //  Ahead of a gap, or next in line while the caller stopped.
            if (stream->target < coin->aseq - 1)
                stream->target = coin->aseq - 1;
            s_hold (stream, msg_p);
        }
    }
    else if (msg->body_case == TROVE__MSG__BODY_HEARTBEAT) {
        Trove__Heartbeat *beat = msg->heartbeat;
        if (!beat->role || strcmp (beat->role, "scorer") || beat->shard >= self->nshards)
            goto done;
        s_stream_t *stream = &self->streams [beat->shard];
        if (!stream->known) {
            stream->known = true;
            stream->last = stream->target = beat->last_aseq;
        }
        if (beat->last_aseq > stream->target)
            stream->target = beat->last_aseq;
    }
done:
    trove_msg_free (msg_p);
}

trove_awardsub_t *
trove_awardsub_new (const trove_cfg_t *cfg, bool from_now, trove_awardsub_fn *fn, void *arg)
{
    assert (cfg);
    assert (fn);
    trove_awardsub_t *self = calloc (1, sizeof *self);
    if (!self)
        goto fail;
    self->fn = fn;
    self->arg = arg;
    self->max_frame = trove_cfg_limits (cfg)->max_frame;
    self->nshards = trove_cfg_shards (cfg);
    self->streams = calloc (self->nshards, sizeof *self->streams);
    if (!self->streams)
        goto fail;
    for (size_t i = 0; i < self->nshards; i++) {
        s_stream_t *stream = &self->streams [i];
        stream->query = strdup (trove_cfg_shard_query (cfg, i));
        stream->held = calloc (S_HELD_MAX, sizeof *stream->held);
        if (!stream->query || !stream->held)
            goto fail;
    }
    //  Subscribe first, then learn where each shard is: an award published
    //  in between is either seen live or found by the catch-up.
    self->sub = trove_sock_new (ZMQ_SUB, TROVE_SOCK_REQUEST, self->max_frame);
    if (!self->sub)
        goto fail;
    zsock_set_subscribe (self->sub, "");
    if (trove_sock_connect (self->sub, TROVE_SOCK_REQUEST, trove_cfg_broker_sub (cfg)))
        goto fail;
    if (from_now) {
        //  Every shard at once; a shard that does not answer is asked again
        //  by poll until it does (or its first award or heartbeat arrives).
        const char **endpoints = calloc (self->nshards, sizeof *endpoints);
        Trove__QueryReply **replies = calloc (self->nshards, sizeof *replies);
        if (!endpoints || !replies) {
            free (endpoints);
            free (replies);
            goto fail;
        }
        for (size_t i = 0; i < self->nshards; i++)
            endpoints [i] = self->streams [i].query;
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "status";
        trove_client_call_all (endpoints, self->nshards, &query, 500, 1, self->max_frame, replies);
        for (size_t i = 0; i < self->nshards; i++) {
            Trove__QueryReply *reply = replies [i];
            if (reply && !(reply->error && *reply->error)) {
                s_stream_t *stream = &self->streams [i];
                uint64_t last = reply->last_aseq;
                if (reply->status && reply->status->last_aseq > last)
                    last = reply->status->last_aseq;
                stream->known = true;
                stream->last = stream->target = last;
            }
            trove_client_reply_free (&replies [i]);
        }
        free (endpoints);
        free (replies);
    }
    else
        for (size_t i = 0; i < self->nshards; i++) {
            self->streams [i].known = true;
            self->streams [i].probe = true;
        }
    return self;
fail:
    trove_awardsub_destroy (&self);
    return NULL;
}

void
trove_awardsub_destroy (trove_awardsub_t **self_p)
{
    assert (self_p);
    trove_awardsub_t *self = *self_p;
    if (self) {
        for (size_t i = 0; self->streams && i < self->nshards; i++) {
            s_stream_t *stream = &self->streams [i];
            for (size_t k = 0; k < stream->nheld; k++)
                trove_msg_free (&stream->held [k]);
            free (stream->held);
            free (stream->query);
        }
        free (self->streams);
        zsock_destroy (&self->sub);
        free (self);
        *self_p = NULL;
    }
}

//  Start points and catch-ups that are due.
static void
s_awardsub_work (trove_awardsub_t *self)
{
    for (size_t i = 0; i < self->nshards && !self->stopped; i++) {
        s_stream_t *stream = &self->streams [i];
        if (!stream->known && trove_mono_us () >= stream->retry_us)
            s_stream_status (self, stream);
        if (stream->known) {
            //  Awards held while the caller had stopped a poll come first.
            s_drain (self, stream, i);
            s_catch_up (self, i);
        }
    }
}

int
trove_awardsub_poll (trove_awardsub_t *self, int timeout_ms)
{
    assert (self);
    void *handle = zsock_resolve (self->sub);
    self->stopped = false;
    s_awardsub_work (self);
    int64_t deadline = trove_mono_us () + (int64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000;
    int rc = 0;
    while (true) {
        bool received = false;
        Trove__Msg *msg;
        while (!self->stopped && trove_client_recv (handle, self->max_frame, ZMQ_DONTWAIT, &msg) == 0) {
            received = true;
            if (msg)
                s_on_message (self, &msg);
        }
        s_awardsub_work (self);
        int64_t now = trove_mono_us ();
        if (received || self->stopped || now >= deadline)
            break;
        //  Wake up for a pending catch-up retry, too.
        int64_t until = deadline;
        for (size_t i = 0; i < self->nshards; i++) {
            s_stream_t *stream = &self->streams [i];
            bool waiting = !stream->known || stream->last < stream->target || stream->probe;
            if (waiting && stream->retry_us > now && stream->retry_us < until)
                until = stream->retry_us;
        }
        long wait_ms = (long) ((until - now + 999) / 1000);
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, wait_ms < 1 ? 1 : wait_ms) == -1 && (errno == EINTR || errno == ETERM)) {
            rc = -1;
            break;
        }
    }
    return rc;
}

int
trove_awardsub_resume (trove_awardsub_t *self, size_t shard, uint64_t last)
{
    assert (self);
    if (shard >= self->nshards)
        return -1;
    s_stream_t *stream = &self->streams [shard];
    stream->known = true;
    stream->probe = true;
    stream->last = stream->target = last;
    return 0;
}

void
trove_awardsub_stop (trove_awardsub_t *self)
{
    assert (self);
    self->stopped = true;
}

size_t
trove_awardsub_shards (trove_awardsub_t *self)
{
    assert (self);
    return self->nshards;
}

uint64_t
trove_awardsub_last (trove_awardsub_t *self, size_t shard)
{
    assert (self);
    assert (shard < self->nshards);
    return self->streams [shard].last;
}

void *
trove_awardsub_socket (trove_awardsub_t *self)
{
    assert (self);
    return self->sub;
}
