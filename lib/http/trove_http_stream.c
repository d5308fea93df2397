/*  trove_http_stream - streaming responses of trove_http (see trove_http.h,
    "Streaming responses").

    A stream is a bounded byte buffer with two owners: the writer (the
    handler's thread, through the handle trove_http_reply_stream returns)
    and the connection (libmicrohttpd's content reader reads the buffer).
    It is freed when both have let go. When the buffer is empty the reader
    suspends the connection (no thread waits on it; libmicrohttpd neither
    times it out nor reads it meanwhile) and the next write, the end, or
    the server stopping resumes it. `suspended` is set and cleared only
    under the stream's mutex, so a connection is resumed exactly once per
    suspension and never after it is gone. */
#include "trove_http_internal.h"
#include "trove_error.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_BLOCK 8192  //  bytes libmicrohttpd asks the reader for at most

struct _trove_http_stream_t {
    trove_http_stream_t *prev, *next;  //  in the server's list
    trove_http_t *server;
    pthread_mutex_t mutex;
    pthread_cond_t room;  //  signalled when bytes are taken or the stream closes
    char *buf;            //  queued bytes [0, used)
    size_t used, cap, limit;
    int refs;                           //  the writer and the connection
    bool ended;                         //  the writer is done
    bool closed;                        //  the connection is gone or the server stops
    bool suspended;                     //  the connection waits for bytes
    struct MHD_Connection *connection;  //  once queued
};

static void
s_resume (trove_http_stream_t *self)
{
    //  Under self->mutex: a suspended connection cannot go away meanwhile.
    if (self->suspended) {
        self->suspended = false;
        MHD_resume_connection (self->connection);
    }
}

//  Drop one reference; the last one frees the stream.
static void
s_release (trove_http_stream_t *self)
{
    pthread_mutex_lock (&self->mutex);
    int refs = --self->refs;
    pthread_mutex_unlock (&self->mutex);
    if (refs > 0)
        return;
    trove_http_t *server = self->server;
    pthread_mutex_lock (&server->mutex);
    if (self->prev)
        self->prev->next = self->next;
    else
        server->streams = self->next;
    if (self->next)
        self->next->prev = self->prev;
    server->nstreams--;
    pthread_cond_broadcast (&server->streams_gone);
    pthread_mutex_unlock (&server->mutex);
    trove_gauge_add_int (server->streams_open, -1);
    pthread_cond_destroy (&self->room);
    pthread_mutex_destroy (&self->mutex);
    free (self->buf);
    free (self);
}

//  The connection lets go: the client is gone, the body ended, or the
//  server stops.
static void
s_connection_gone (trove_http_stream_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->closed = true;
    self->suspended = false;
    self->connection = NULL;
    pthread_cond_broadcast (&self->room);
    pthread_mutex_unlock (&self->mutex);
    s_release (self);
}

trove_http_stream_t *
trove_http_reply_stream (const trove_http_request_t *req, trove_http_response_t *resp,
                         const char *content_type, size_t buffer)
{
    assert (req && resp && content_type);
    trove_http_t *server = req->server;
    assert (server);
    assert (!resp->stream);
    trove_http_stream_t *self = calloc (1, sizeof *self);
    char *buf = malloc (buffer ? buffer : 1);
    bool room = false;
    if (self && buf) {
        pthread_mutex_lock (&server->mutex);
        room = !atomic_load (&server->stopping) && server->nstreams < server->limits.max_streams;
        if (room) {
            self->server = server;
            self->buf = buf;
            self->cap = self->limit = buffer ? buffer : 1;
            self->refs = 2;
            pthread_mutex_init (&self->mutex, NULL);
            pthread_cond_init (&self->room, NULL);
            self->next = server->streams;
            if (server->streams)
                server->streams->prev = self;
            server->streams = self;
            server->nstreams++;
        }
        pthread_mutex_unlock (&server->mutex);
    }
    if (room)
        trove_gauge_add_int (server->streams_open, 1);
    else {
        free (buf);
        free (self);
        trove_http_reply_error (resp, 503, trove_strerror (TROVE_E_OVERLOADED),
                                "too many streams are open on this server; retry later");
        trove_http_reply_header (resp, "Retry-After", "1");
        return NULL;
    }
    trove_http_reply (resp, 200, NULL);
    resp->content_type = content_type;
    resp->stream = self;
    return self;
}

//  Wait on cond until deadline_us (monotonic); false when it passed.
static bool
s_wait_until (pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t deadline_us)
{
    int64_t left = deadline_us - trove_mono_us ();
    if (left <= 0)
        return false;
    //  The condition uses the realtime clock: wait at most the time left,
    //  a jump of the clock only shortens or lengthens one round.
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t) (left / 1000000);
    ts.tv_nsec += (long) (left % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait (cond, mutex, &ts);
    return true;
}

int
trove_http_stream_write (trove_http_stream_t *self, const char *data, size_t len, int timeout_ms)
{
    assert (self);
    assert (data || !len);
    int64_t deadline = trove_mono_us () + (int64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000;
    pthread_mutex_lock (&self->mutex);
    int rc = 0;
    while (!self->closed && self->used && self->used + len > self->limit)
        if (!s_wait_until (&self->room, &self->mutex, deadline))
            break;
    if (self->closed)
        rc = -1;
    else if (self->used && self->used + len > self->limit)
        rc = 1;
    else {
        if (len > self->cap) {
            char *buf = realloc (self->buf, len);
            if (!buf)
                rc = 1;  //  out of memory: the writer tries again later
            else {
                self->buf = buf;
                self->cap = len;
            }
        }
        if (rc == 0 && len) {
            memcpy (self->buf + self->used, data, len);
            self->used += len;
            s_resume (self);
        }
    }
    pthread_mutex_unlock (&self->mutex);
    return rc;
}

size_t
trove_http_stream_queued (trove_http_stream_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    size_t used = self->used;
    pthread_mutex_unlock (&self->mutex);
    return used;
}

bool
trove_http_stream_closed (trove_http_stream_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    bool closed = self->closed;
    pthread_mutex_unlock (&self->mutex);
    return closed;
}

void
trove_http_stream_end (trove_http_stream_t **self_p)
{
    assert (self_p);
    trove_http_stream_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    self->ended = true;
    s_resume (self);
    pthread_mutex_unlock (&self->mutex);
    s_release (self);
    *self_p = NULL;
}

//  libmicrohttpd's content reader: what is queued, or suspend until more.
static ssize_t
s_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    trove_http_stream_t *self = cls;
    pthread_mutex_lock (&self->mutex);
    ssize_t n;
    if (self->used) {
        size_t take = self->used < max ? self->used : max;
        memcpy (buf, self->buf, take);
        memmove (self->buf, self->buf + take, self->used - take);
        self->used -= take;
        //  A buffer grown for one large chunk shrinks back once it is sent.
        if (self->used == 0 && self->cap > self->limit) {
            char *small = realloc (self->buf, self->limit);
            if (small) {
                self->buf = small;
                self->cap = self->limit;
            }
        }
        pthread_cond_broadcast (&self->room);
        n = (ssize_t) take;
    }
    else if (self->ended || self->closed || atomic_load (&self->server->stopping))
        n = MHD_CONTENT_READER_END_OF_STREAM;
    else {
        self->suspended = true;
        MHD_suspend_connection (self->connection);
        n = 0;
    }
    pthread_mutex_unlock (&self->mutex);
    return n;
}

static void
s_free (void *cls)
{
    s_connection_gone (cls);
}

struct MHD_Response *
http_stream_response (trove_http_stream_t *self, struct MHD_Connection *connection)
{
    pthread_mutex_lock (&self->mutex);
    self->connection = connection;
    pthread_mutex_unlock (&self->mutex);
    struct MHD_Response *response =
        MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, S_BLOCK, s_read, self, s_free);
    if (!response)
        s_connection_gone (self);
    return response;
}

void
http_stream_drop (trove_http_stream_t *self)
{
    s_connection_gone (self);
}

void
http_streams_stop (trove_http_t *self)
{
    //  `stopping` is set: no stream is added, no reader suspends again.
    pthread_mutex_lock (&self->mutex);
    for (trove_http_stream_t *s = self->streams; s; s = s->next) {
        pthread_mutex_lock (&s->mutex);
        s_resume (s);
        pthread_cond_broadcast (&s->room);
        pthread_mutex_unlock (&s->mutex);
    }
    pthread_mutex_unlock (&self->mutex);
}

void
http_streams_wait (trove_http_t *self)
{
    pthread_mutex_lock (&self->mutex);
    while (self->nstreams)
        pthread_cond_wait (&self->streams_gone, &self->mutex);
    pthread_mutex_unlock (&self->mutex);
}
