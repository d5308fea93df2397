/*  bench-redis-peer - the system a team would build instead of Trove, under
    the same load as trove-load gives Trove: Redis Streams in, one Lua
    script per batch doing what the demo hunt does, AOF `appendfsync
    always` (bench/peers/README.md; bench/peers/redis.sh runs the server).

    One process, so that every time is read from one monotonic clock:
      - producer threads (--producers, one connection each) XADD one stream
        entry per event (source, id, user, type, ts and the scheduled send
        time in ns), pipelined;
      - the main thread is the consumer: XREADGROUP COUNT --batch BLOCK,
        then EVALSHA of bench/peers/redis/hunt.lua on the batch (dedup,
        rule state, coin, balance, ledger entry, XACK). With `appendfsync
        always` the script's reply comes after its writes are fsynced: that
        reply is the durable answer, and each event's latency is "reply
        received" minus its scheduled send time.

    Events are made as trove-load makes them: user u<random below --users>,
    source one of web, mobile, game, partner, type one of checkin, visit,
    purchase, ts = now minus up to 20 ms, ids unique to the run.

    Closed loop (--rate 0): at most --window events in flight (sent and not
    yet answered), 20,000 by default as trove-load's --window; a producer
    waits for answers when the window is full. Open loop (--rate R): event i
    is due at start + i/R on the monotonic clock and its latency counts
    from then, not from when a producer got to send it, so a stalled
    producer or server shows up in the numbers instead of slowing the
    schedule (no coordinated omission).

    Nothing leaves loopback: --host must be an IPv4 address in 127.0.0.0/8.

    Usage: bench-redis-peer [--host 127.0.0.1] [--port P] [--events N]
           [--users U] [--rate R] [--batch B] [--window W] [--producers P]
           [--script FILE] [--seed S] [--json]
    Prints one line, or with --json one JSON object like trove-load's
    (events, throughput, latency_ms {p50, p90, p99, p999, max}, errors).
    Exit status: 0 when every event was answered accepted; 1 otherwise
    (including setup errors); 2 on bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef TROVE_PEER_SCRIPT
#    define TROVE_PEER_SCRIPT "bench/peers/redis/hunt.lua"
#endif

#define S_STREAM "trove:events"  //  the events stream
#define S_LEDGER "trove:ledger"  //  the ledger stream
#define S_GROUP "hunt"           //  the consumer group
#define S_HUNT "demo"            //  the hunt's name, in coin ids
#define S_PIPELINE 1000          //  most XADDs a producer sends before reading their replies
#define S_BLOCK "100"            //  XREADGROUP BLOCK (ms): how often the consumer looks at the clock
#define S_FIELDS 6               //  script arguments per event
#define S_MAX_PRODUCERS 64

static const char *s_sources [] = {"web", "mobile", "game", "partner"};
static const char *s_types [] = {"checkin", "visit", "purchase"};
#define S_COUNT(a) (sizeof (a) / sizeof (a) [0])

//  ---------------------------------------------------------------------------
//  Options: one row each (name, value, how it is read, range, help).

typedef struct {
    const char *host;    //  Redis address, 127.0.0.0/8 only
    size_t port;         //  Redis port
    size_t events;       //  events in total
    size_t users;        //  distinct users u0..u{users-1}
    double rate;         //  events/s, 0 = closed loop
    size_t batch;        //  XREADGROUP COUNT: most events per script call
    size_t window;       //  closed loop: most events in flight
    size_t producers;    //  producer threads (connections)
    const char *script;  //  the Lua script's path
    size_t seed;         //  random seed
    double stall_s;      //  give up after this long without an answer
    bool json;           //  report as one JSON object
} s_opts_t;

typedef enum { S_TEXT, S_SIZE, S_DOUBLE, S_FLAG, S_HELP } s_type_t;

typedef struct {
    const char *name;  //  long option, without "--"
    const char *arg;   //  its value in the usage, NULL when it takes none
    s_type_t type;     //  how the value is read
    size_t field;      //  offset in s_opts_t
    double min, max;   //  range of a number
    const char *help;  //  usage line
} s_option_t;

#define S_AT(f) offsetof (s_opts_t, f)
static const s_option_t s_options [] = {
    {"host", "ADDR", S_TEXT, S_AT (host), 0, 0, "Redis address, in 127.0.0.0/8 only (127.0.0.1)"},
    {"port", "P", S_SIZE, S_AT (port), 1, 65535, "Redis port (6379)"},
    {"events", "N", S_SIZE, S_AT (events), 1, 100000000, "events in total (100000)"},
    {"users", "U", S_SIZE, S_AT (users), 1, 4294967295.0, "distinct users u0..u<U-1> (1000)"},
    {"rate", "R", S_DOUBLE, S_AT (rate), 0, 1e7, "events/s, open loop; 0 = closed loop (0)"},
    {"batch", "B", S_SIZE, S_AT (batch), 1, 100000, "most events per script call (XREADGROUP COUNT) (1000)"},
    {"window", "W", S_SIZE, S_AT (window), 1, 10000000, "closed loop: most events in flight (20000)"},
    {"producers", "P", S_SIZE, S_AT (producers), 1, S_MAX_PRODUCERS, "producer threads (2)"},
    {"script", "FILE", S_TEXT, S_AT (script), 0, 0, "the hunt's Lua script (" TROVE_PEER_SCRIPT ")"},
    {"seed", "S", S_SIZE, S_AT (seed), 0, 1.8e19, "random seed (from the clock)"},
    {"stall-timeout", "S", S_DOUBLE, S_AT (stall_s), 1, 86400, "give up after S s without an answer (30)"},
    {"json", NULL, S_FLAG, S_AT (json), 0, 0, "report as one JSON object"},
    {"help", NULL, S_HELP, 0, 0, 0, "this text"},
};
#define S_NOPTIONS S_COUNT (s_options)

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: bench-redis-peer [options]\n");
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        const s_option_t *o = &s_options [i];
        char left [40];
        snprintf (left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf (out, "  %-20s %s\n", left, o->help);
    }
}

//  Store one option's value. Returns 0, or -1 when it is out of range or
//  not a number.
static int
s_opt_store (const s_option_t *o, const char *value, s_opts_t *opts)
{
    char *field = (char *) opts + o->field;
    char *end;
    errno = 0;
    switch (o->type) {
        case S_TEXT:
            *(const char **) field = value;
            return 0;
        case S_FLAG:
            *(bool *) field = true;
            return 0;
        case S_SIZE: {
            if (*value == '-')
                return -1;
            unsigned long long v = strtoull (value, &end, 10);
            if (errno || end == value || *end || (double) v < o->min || (double) v > o->max)
                return -1;
            *(size_t *) field = (size_t) v;
            return 0;
        }
        case S_DOUBLE: {
            double v = strtod (value, &end);
            if (errno || end == value || *end || !(v >= o->min && v <= o->max))
                return -1;
            *(double *) field = v;
            return 0;
        }
        case S_HELP:
            break;
    }
    return -1;
}

//  Only IPv4 loopback: the project's rule is that nothing leaves the machine,
//  and a typo in --host must not become a connect to another one.
static bool
s_loopback (const char *host)
{
    struct in_addr addr;
    return inet_pton (AF_INET, host, &addr) == 1 && (ntohl (addr.s_addr) >> 24) == 127;
}

//  Returns 0, 1 after --help, or 2 on bad usage (message printed).
static int
s_opts_parse (int argc, char *argv [], s_opts_t *opts)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    *opts = (s_opts_t){.host = "127.0.0.1",
                       .port = 6379,
                       .events = 100000,
                       .users = 1000,
                       .batch = 1000,
                       .window = 20000,
                       .producers = 2,
                       .script = TROVE_PEER_SCRIPT,
                       .seed = (size_t) now.tv_nsec ^ ((size_t) getpid () << 32),
                       .stall_s = 30};
    struct option longopts [S_NOPTIONS + 1];
    for (size_t i = 0; i < S_NOPTIONS; i++)
        longopts [i] = (struct option){
            s_options [i].name, s_options [i].arg ? required_argument : no_argument, NULL, 256 + (int) i};
    longopts [S_NOPTIONS] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
        if (c < 256) {
            fprintf (stderr, "bench-redis-peer: unknown option or missing value: %s\n", argv [optind - 1]);
            s_usage (stderr);
            return 2;
        }
        const s_option_t *o = &s_options [c - 256];
        if (o->type == S_HELP) {
            s_usage (stdout);
            return 1;
        }
        if (s_opt_store (o, optarg, opts)) {
            fprintf (stderr, "bench-redis-peer: bad value for --%s: '%s'\n", o->name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "bench-redis-peer: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    if (!s_loopback (opts->host)) {
        fprintf (stderr,
                 "bench-redis-peer: --host %s refused: only IPv4 addresses in 127.0.0.0/8 "
                 "(nothing leaves loopback)\n",
                 opts->host);
        return 2;
    }
    return 0;
}


//  ---------------------------------------------------------------------------
//  Shared state of a run

typedef struct {
    const s_opts_t *opts;       //  options (borrowed)
    int64_t start_ns;           //  monotonic start: event i of an open loop is due at start + i/rate
    char prefix [48];           //  event ids are <prefix><counter>
    atomic_size_t next;         //  events claimed by producers
    atomic_size_t done;         //  events with a final outcome (answered, or failed to send)
    atomic_bool fatal;          //  a connection broke or the run gave up: everyone stops
    pthread_mutex_t lock;       //  with wake: a closed-loop producer waits for room in the window
    pthread_cond_t wake;        //  signalled when done moves or fatal is set
    atomic_size_t send_errors;  //  XADDs answered with an error
    char first_error [256];     //  the first error seen, for the report (under lock)
} s_run_t;

static int64_t
s_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  splitmix64, reproducible from --seed (each producer has its own state).
static uint64_t
s_rand (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Keep the first error for the report; later ones are only counted.
static void
s_run_error (s_run_t *self, const char *what, const char *detail)
{
    pthread_mutex_lock (&self->lock);
    if (!self->first_error [0])
        snprintf (self->first_error, sizeof self->first_error, "%s: %s", what, detail ? detail : "");
    pthread_mutex_unlock (&self->lock);
}

//  Stop everyone: a broken connection or a stall.
static void
s_run_abort (s_run_t *self, const char *what, const char *detail)
{
    s_run_error (self, what, detail);
    atomic_store (&self->fatal, true);
    pthread_mutex_lock (&self->lock);
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

//  Events with their final outcome: closed-loop producers may send more.
static void
s_run_done (s_run_t *self, size_t count)
{
    atomic_fetch_add (&self->done, count);
    pthread_mutex_lock (&self->lock);
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

static redisContext *
s_connect (const s_opts_t *opts, const char *who)
{
    struct timeval timeout = {5, 0};
    redisContext *ctx = redisConnectWithTimeout (opts->host, (int) opts->port, timeout);
    if (!ctx || ctx->err) {
        fprintf (stderr, "bench-redis-peer: %s: cannot connect to %s:%zu: %s\n", who, opts->host, opts->port,
                 ctx ? ctx->errstr : "out of memory");
        redisFree (ctx);
        return NULL;
    }
    return ctx;
}


//  ---------------------------------------------------------------------------
//  Producers

typedef struct {
    s_run_t *run;       //  shared state
    uint64_t rng;       //  this producer's random state
    redisContext *ctx;  //  its connection
} s_producer_t;

//  Events sent and not answered yet. done is read first: it never passes
//  next, so a next read after it cannot be below it.
static size_t
s_run_inflight (s_run_t *self)
{
    size_t done = atomic_load (&self->done);
    return atomic_load (&self->next) - done;
}

//  Claim the next events to send: open loop, those due by now (sleeping
//  until the next one is due); closed loop, as many as the window has room
//  for (waiting for answers when it is full). Returns how many, from
//  *first; 0 when every event is claimed or the run is aborted.
static size_t
s_producer_claim (s_run_t *run, size_t *first)
{
    const s_opts_t *opts = run->opts;
    while (!atomic_load (&run->fatal)) {
        size_t next = atomic_load (&run->next);
        if (next >= opts->events)
            return 0;
        size_t room;
        if (opts->rate > 0) {
            double since = (double) (s_mono_ns () - run->start_ns);
            size_t due = (size_t) (since * opts->rate / 1e9) + 1;
            if (due > opts->events)
                due = opts->events;
            if (next >= due) {
                int64_t at = run->start_ns + (int64_t) ((double) next * 1e9 / opts->rate);
                struct timespec ts = {(time_t) (at / 1000000000), (long) (at % 1000000000)};
                clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                continue;
            }
            room = due - next;
        }
        else {
            size_t inflight = s_run_inflight (run);
            if (inflight >= opts->window) {
                pthread_mutex_lock (&run->lock);
                while (!atomic_load (&run->fatal) && s_run_inflight (run) >= opts->window)
                    pthread_cond_wait (&run->wake, &run->lock);
                pthread_mutex_unlock (&run->lock);
                continue;
            }
            room = opts->window - inflight;
            if (room > opts->events - next)
                room = opts->events - next;
        }
        if (room > S_PIPELINE)
            room = S_PIPELINE;
        if (atomic_compare_exchange_weak (&run->next, &next, next + room)) {
            *first = next;
            return room;
        }
    }
    return 0;
}

//  XADD events [first, first + count), pipelined, then read every reply.
//  Returns 0, or -1 when the connection broke.
static int
s_producer_send (s_producer_t *self, size_t first, size_t count)
{
    s_run_t *run = self->run;
    const s_opts_t *opts = run->opts;
    int64_t now_ns = s_mono_ns ();
    int64_t ts_ms = s_wall_ms ();
    for (size_t i = first; i < first + count; i++) {
        int64_t sched = opts->rate > 0 ? run->start_ns + (int64_t) ((double) i * 1e9 / opts->rate) : now_ns;
        char id [80], user [24], ts [24], sched_text [24];
        snprintf (id, sizeof id, "%s%zu", run->prefix, i);
        snprintf (user, sizeof user, "u%" PRIu64, s_rand (&self->rng) % opts->users);
        const char *source = s_sources [s_rand (&self->rng) % S_COUNT (s_sources)];
        const char *type = s_types [s_rand (&self->rng) % S_COUNT (s_types)];
        snprintf (ts, sizeof ts, "%" PRId64, ts_ms - (int64_t) (s_rand (&self->rng) % 20));
        snprintf (sched_text, sizeof sched_text, "%" PRId64, sched);
        if (redisAppendCommand (self->ctx, "XADD %s * source %s id %s user %s type %s ts %s sched %s",
                                S_STREAM, source, id, user, type, ts, sched_text)
            != REDIS_OK) {
            s_run_abort (run, "producer", "out of memory");
            return -1;
        }
    }
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        redisReply *reply = NULL;
        if (redisGetReply (self->ctx, (void **) &reply) != REDIS_OK) {
            s_run_abort (run, "producer: XADD", self->ctx->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            s_run_error (run, "XADD", reply->str);
            failed++;
        }
        freeReplyObject (reply);
    }
    if (failed) {
        //  Never in the stream: their outcome is final, an error.
        atomic_fetch_add (&run->send_errors, failed);
        s_run_done (run, failed);
    }
    return 0;
}

static void *
s_producer (void *arg)
{
    s_producer_t *self = (s_producer_t *) arg;
    size_t first, count;
    while ((count = s_producer_claim (self->run, &first)) > 0)
        if (s_producer_send (self, first, count) != 0)
            break;
    return NULL;
}


//  ---------------------------------------------------------------------------
//  The consumer

typedef struct {
    s_run_t *run;         //  shared state
    redisContext *ctx;    //  its connection
    char sha [48];        //  the script's SHA-1 (SCRIPT LOAD)
    char count [24];      //  --batch, as XREADGROUP's COUNT
    const char **argv;    //  EVALSHA arguments of one batch
    size_t *argvlen;      //  ... and their lengths
    int64_t *sched;       //  scheduled send time of each event of the batch
    int64_t *latency_ns;  //  per answered event: scheduled send -> script reply
    size_t answered;      //  events answered by the script
    size_t accepted, duplicate, rejected;
    size_t script_errors;    //  events of batches the script failed on
    size_t batches;          //  script calls
    int64_t last_answer_ns;  //  when the last answer came
} s_consumer_t;

//  The value of field name in a stream entry's field list, or NULL.
static const redisReply *
s_field (const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element [i]->type == REDIS_REPLY_STRING && strcmp (fields->element [i]->str, name) == 0)
            return fields->element [i + 1]->type == REDIS_REPLY_STRING ? fields->element [i + 1] : NULL;
    return NULL;
}

//  Queue the next XREADGROUP (it blocks in the server until entries come,
//  at most S_BLOCK_MS). Returns 0, or -1 on out of memory.
static int
s_consumer_read (s_consumer_t *self)
{
    const char *argv [] = {"XREADGROUP", "GROUP", S_GROUP,   "c1",     "COUNT", self->count,
                           "BLOCK",      S_BLOCK, "STREAMS", S_STREAM, ">"};
    if (redisAppendCommandArgv (self->ctx, (int) S_COUNT (argv), argv, NULL) != REDIS_OK) {
        s_run_abort (self->run, "consumer", "out of memory");
        return -1;
    }
    return 0;
}

//  Queue the script call for the entries of one XREADGROUP reply and the
//  next XREADGROUP behind it, so that both are read in the same turn of the
//  server's event loop and share its AOF fsync (with a read after the
//  reply, each batch would wait for two fsyncs: XREADGROUP writes too, its
//  pending entries). The arguments are copied into hiredis's output buffer:
//  entries may be freed on return. Returns the events the script got (0:
//  no call queued), or -1 when the run is aborted.
static long
s_consumer_call (s_consumer_t *self, const redisReply *entries)
{
    static const char *names [S_FIELDS - 1] = {"source", "id", "user", "type", "ts"};
    s_run_t *run = self->run;
    size_t argc = 0;
    const char *head [] = {"EVALSHA", self->sha, "2", S_STREAM, S_LEDGER, S_GROUP, S_HUNT};
    for (size_t i = 0; i < S_COUNT (head); i++) {
        self->argv [argc] = head [i];
        self->argvlen [argc++] = strlen (head [i]);
    }
    size_t events = 0, malformed = 0;
    for (size_t e = 0; e < entries->elements; e++) {
        const redisReply *entry = entries->element [e];
        const redisReply *fields = NULL, *sched = NULL;
        if (entry->type == REDIS_REPLY_ARRAY && entry->elements == 2
            && entry->element [0]->type == REDIS_REPLY_STRING
            && entry->element [1]->type == REDIS_REPLY_ARRAY) {
            fields = entry->element [1];
            sched = s_field (fields, "sched");
        }
        const redisReply *values [S_FIELDS - 1] = {NULL};
        bool complete = fields && sched;
        for (size_t f = 0; complete && f < S_FIELDS - 1; f++)
            complete = (values [f] = s_field (fields, names [f])) != NULL;
        if (!complete) {
            malformed++;
            continue;
        }
        self->argv [argc] = entry->element [0]->str;
        self->argvlen [argc++] = entry->element [0]->len;
        for (size_t f = 0; f < S_FIELDS - 1; f++) {
            self->argv [argc] = values [f]->str;
            self->argvlen [argc++] = values [f]->len;
        }
        self->sched [events++] = strtoll (sched->str, NULL, 10);
    }
    if (malformed || self->answered + events > run->opts->events) {
        //  Another writer on our stream: its entries would be counted as ours.
        s_run_abort (run, "stream " S_STREAM, "entries this run did not write (another writer?)");
        return -1;
    }
    if (events && redisAppendCommandArgv (self->ctx, (int) argc, self->argv, self->argvlen) != REDIS_OK) {
        s_run_abort (run, "consumer", "out of memory");
        return -1;
    }
    return s_consumer_read (self) == 0 ? (long) events : -1;
}

//  Read the script's reply for the events of the last call and record each
//  one's latency at that moment. Returns 0, or -1 when the connection broke.
static int
s_consumer_answer (s_consumer_t *self, size_t events)
{
    s_run_t *run = self->run;
    redisReply *reply = NULL;
    int rc = redisGetReply (self->ctx, (void **) &reply);
    int64_t now = s_mono_ns ();
    if (rc != REDIS_OK) {
        s_run_abort (run, "consumer: EVALSHA", self->ctx->errstr);
        return -1;
    }
    self->batches++;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
        for (size_t i = 0; i < events; i++)
            self->latency_ns [self->answered++] = now - self->sched [i];
        self->accepted += (size_t) reply->element [0]->integer;
        self->duplicate += (size_t) reply->element [1]->integer;
        self->rejected += (size_t) reply->element [2]->integer;
        self->last_answer_ns = now;
    }
    else {
        self->script_errors += events;
        s_run_error (run, "EVALSHA", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    }
    freeReplyObject (reply);
    s_run_done (run, events);
    return 0;
}

//  Read and answer batches until every event has its outcome, the run is
//  aborted, or nothing came for --stall-timeout. One XREADGROUP is always
//  queued; the last one is left unread (the connection is closed).
static void
s_consumer_run (s_consumer_t *self)
{
    s_run_t *run = self->run;
    const s_opts_t *opts = run->opts;
    int64_t last_progress = s_mono_ns ();
    size_t last_done = 0;
    if (s_consumer_read (self))
        return;
    while (!atomic_load (&run->fatal) && atomic_load (&run->done) < opts->events) {
        redisReply *reply = NULL;
        if (redisGetReply (self->ctx, (void **) &reply) != REDIS_OK) {
            s_run_abort (run, "consumer: XREADGROUP", self->ctx->errstr);
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            s_run_abort (run, "XREADGROUP", reply->str);
            freeReplyObject (reply);
            return;
        }
        //  [[stream, [[id, [field, value, ...]], ...]]], or nil after BLOCK
        long events = 0;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
            && reply->element [0]->type == REDIS_REPLY_ARRAY && reply->element [0]->elements == 2
            && reply->element [0]->element [1]->type == REDIS_REPLY_ARRAY)
            events = s_consumer_call (self, reply->element [0]->element [1]);
        else
            events = s_consumer_read (self);
        freeReplyObject (reply);
        if (events < 0 || (events > 0 && s_consumer_answer (self, (size_t) events) != 0))
            return;
        int64_t now = s_mono_ns ();
        size_t done = atomic_load (&run->done);
        if (done != last_done) {
            last_done = done;
            last_progress = now;
        }
        else if (now - last_progress > (int64_t) (opts->stall_s * 1e9)) {
            char detail [96];
            snprintf (detail, sizeof detail, "no answer for %.0f s, %zu events without one", opts->stall_s,
                      opts->events - done);
            s_run_abort (run, "stalled", detail);
            return;
        }
    }
}


//  ---------------------------------------------------------------------------
//  Set-up: the script, the stream and its group, the server's version.

//  Read the whole file at path. Returns a string the caller frees, or NULL.
static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = NULL;
    long size = -1;
    if (fseek (file, 0, SEEK_END) == 0 && (size = ftell (file)) >= 0 && fseek (file, 0, SEEK_SET) == 0
        && (text = malloc ((size_t) size + 1)) != NULL) {
        if (fread (text, 1, (size_t) size, file) != (size_t) size) {
            free (text);
            text = NULL;
        }
        else
            text [size] = 0;
    }
    fclose (file);
    return text;
}

//  Load the script, make a fresh events stream and its group, read the
//  server's version into version. Returns 0, or -1 after a message.
static int
s_setup (s_consumer_t *consumer, const char *script_path, char *version, size_t version_size)
{
    redisContext *ctx = consumer->ctx;
    char *script = s_read_file (script_path);
    if (!script) {
        fprintf (stderr, "bench-redis-peer: cannot read the script %s: %s\n", script_path, strerror (errno));
        return -1;
    }
    redisReply *reply = redisCommand (ctx, "SCRIPT LOAD %s", script);
    free (script);
    int rc = -1;
    if (!reply || reply->type != REDIS_REPLY_STRING) {
        fprintf (stderr, "bench-redis-peer: SCRIPT LOAD %s: %s\n", script_path,
                 reply ? (reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply") : ctx->errstr);
        goto done;
    }
    snprintf (consumer->sha, sizeof consumer->sha, "%s", reply->str);
    freeReplyObject (reply);
    //  The events stream is this program's: a fresh one per run, so that
    //  entries an earlier run left unread are not counted as this run's.
    reply = redisCommand (ctx, "DEL %s", S_STREAM);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        fprintf (stderr, "bench-redis-peer: DEL %s: %s\n", S_STREAM, reply ? reply->str : ctx->errstr);
        goto done;
    }
    freeReplyObject (reply);
    reply = redisCommand (ctx, "XGROUP CREATE %s %s $ MKSTREAM", S_STREAM, S_GROUP);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        fprintf (stderr, "bench-redis-peer: XGROUP CREATE: %s\n", reply ? reply->str : ctx->errstr);
        goto done;
    }
    freeReplyObject (reply);
    reply = redisCommand (ctx, "INFO server");
    snprintf (version, version_size, "unknown");
    if (reply && reply->type == REDIS_REPLY_STRING) {
        const char *line = strstr (reply->str, "redis_version:");
        if (line)
            snprintf (version, version_size, "%.*s", (int) strcspn (line + 14, "\r\n"), line + 14);
    }
    rc = reply ? 0 : -1;
    if (!reply)
        fprintf (stderr, "bench-redis-peer: INFO: %s\n", ctx->errstr);
done:
    freeReplyObject (reply);
    return rc;
}


//  ---------------------------------------------------------------------------
//  Report: exact percentiles over every answered event, as trove-load's.

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

//  Milliseconds at quantile p of n sorted samples (ns), 0 when there are none.
static double
s_pick (const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t) (p * (double) n);
    return sorted [rank < n ? rank : n - 1] / 1e6;
}

static void
s_report (const s_run_t *run, s_consumer_t *consumer, const char *version)
{
    const s_opts_t *opts = run->opts;
    size_t n = consumer->answered;
    qsort (consumer->latency_ns, n, sizeof *consumer->latency_ns, s_cmp_i64);
    double elapsed = n ? (consumer->last_answer_ns - run->start_ns) / 1e9 : 0;
    double throughput = elapsed > 0 ? (double) n / elapsed : 0;
    size_t errors = atomic_load (&run->send_errors) + consumer->script_errors;
    size_t unanswered = opts->events - atomic_load (&run->done);
    double p50 = s_pick (consumer->latency_ns, n, 0.50), p90 = s_pick (consumer->latency_ns, n, 0.90),
           p99 = s_pick (consumer->latency_ns, n, 0.99), p999 = s_pick (consumer->latency_ns, n, 0.999),
           max = s_pick (consumer->latency_ns, n, 1);
    if (opts->json) {
        printf (
            "{\"peer\":\"redis\",\"redis_version\":\"%s\",\"rate\":%.1f,\"users\":%zu,\"batch\":%zu,"
            "\"window\":%zu,\"producers\":%zu,\"events\":%zu,\"answered\":%zu,\"accepted\":%zu,"
            "\"duplicate\":%zu,\"rejected\":%zu,\"errors\":%zu,\"unanswered\":%zu,\"batches\":%zu,"
            "\"mean_batch\":%.1f,\"elapsed_s\":%.3f,\"throughput\":%.1f,"
            "\"latency_ms\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}\n",
            version, opts->rate, opts->users, opts->batch, opts->window, opts->producers, opts->events, n,
            consumer->accepted, consumer->duplicate, consumer->rejected, errors, unanswered,
            consumer->batches, consumer->batches ? (double) n / (double) consumer->batches : 0, elapsed,
            throughput, n, p50, p90, p99, p999, max);
    }
    else {
        printf ("bench-redis-peer: Redis %s, %zu events, %s, batch %zu, %zu producers\n", version,
                opts->events, opts->rate > 0 ? "open loop" : "closed loop", opts->batch, opts->producers);
        if (opts->rate > 0)
            printf ("  target rate     %.0f events/s\n", opts->rate);
        printf ("  answers         accepted %zu  duplicate %zu  rejected %zu  errors %zu  unanswered %zu\n",
                consumer->accepted, consumer->duplicate, consumer->rejected, errors, unanswered);
        printf ("  script calls    %zu (%.1f events each)\n", consumer->batches,
                consumer->batches ? (double) n / (double) consumer->batches : 0);
        printf ("  elapsed         %.3f s\n", elapsed);
        printf ("  throughput      %.0f answers/s\n", throughput);
        printf ("  send->answer    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n", p50, p90, p99,
                p999, max);
    }
    if (run->first_error [0])
        fprintf (stderr, "bench-redis-peer: first error: %s\n", run->first_error);
}


int
main (int argc, char *argv [])
{
    s_opts_t opts;
    int rc = s_opts_parse (argc, argv, &opts);
    if (rc)
        return rc == 1 ? 0 : 2;
    rc = 1;
    s_run_t run = {.opts = &opts};
    pthread_mutex_init (&run.lock, NULL);
    pthread_cond_init (&run.wake, NULL);
    snprintf (run.prefix, sizeof run.prefix, "r%" PRIx64 "%x-", (uint64_t) s_wall_ms (),
              (unsigned) getpid ());
    s_producer_t producers [S_MAX_PRODUCERS] = {{0}};
    pthread_t threads [S_MAX_PRODUCERS];
    size_t started = 0;
    char version [32];
    s_consumer_t consumer = {.run = &run};
    snprintf (consumer.count, sizeof consumer.count, "%zu", opts.batch);
    consumer.argv = malloc ((7 + S_FIELDS * opts.batch) * sizeof *consumer.argv);
    consumer.argvlen = malloc ((7 + S_FIELDS * opts.batch) * sizeof *consumer.argvlen);
    consumer.sched = malloc (opts.batch * sizeof *consumer.sched);
    consumer.latency_ns = malloc (opts.events * sizeof *consumer.latency_ns);
    if (!consumer.argv || !consumer.argvlen || !consumer.sched || !consumer.latency_ns) {
        fprintf (stderr, "bench-redis-peer: out of memory for %zu events\n", opts.events);
        goto cleanup;
    }
    if (!(consumer.ctx = s_connect (&opts, "consumer")))
        goto cleanup;
    if (s_setup (&consumer, opts.script, version, sizeof version))
        goto cleanup;
    for (size_t i = 0; i < opts.producers; i++) {
        producers [i] = (s_producer_t){.run = &run, .rng = (uint64_t) opts.seed + i * 0x5851f42d4c957f2dULL};
        if (!(producers [i].ctx = s_connect (&opts, "producer")))
            goto cleanup;
    }
    run.start_ns = s_mono_ns ();
    consumer.last_answer_ns = run.start_ns;
    for (; started < opts.producers; started++)
        if (pthread_create (&threads [started], NULL, s_producer, &producers [started]) != 0) {
            s_run_abort (&run, "start", "cannot create a producer thread");
            break;
        }
    if (started == opts.producers)
        s_consumer_run (&consumer);
    else
        s_run_abort (&run, "start", "cannot create a producer thread");
    //  Producers stop once every event is claimed; after an abort, at once.
    if (atomic_load (&run.done) < opts.events)
        s_run_abort (&run, "run", "ended before every event had an answer");
    for (size_t i = 0; i < started; i++)
        pthread_join (threads [i], NULL);
    s_report (&run, &consumer, version);
    fflush (stdout);
    rc = consumer.accepted == opts.events ? 0 : 1;
cleanup:
    for (size_t i = 0; i < opts.producers; i++)
        redisFree (producers [i].ctx);
    redisFree (consumer.ctx);
    free (consumer.argv);
    free (consumer.argvlen);
    free (consumer.sched);
    free (consumer.latency_ns);
    pthread_cond_destroy (&run.wake);
    pthread_mutex_destroy (&run.lock);
    return rc;
}
