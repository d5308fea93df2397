/*  fake_peers - the fixtures test_trove_client, test_trove_submitter and
    test_trove_awardsub share: a test cluster config on loopback (ports
    15000-15999, chosen from the pid and the test's slot so the three can
    run at once) and fake query servers (zactors with a ROUTER, scripted).
    See fake_peers.h. */
#include "fake_peers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

fake_cluster_t fake_cluster;

//  The fake query servers, by slot; fake_server_stop destroys them.
static struct {
    fake_server_t fake [FAKE_SERVERS];  //  fake query servers
    zactor_t *actor [FAKE_SERVERS];     //  their threads
} s_servers;

static void
s_endpoint (char *buf, int port)
{
    snprintf (buf, 64, "tcp://127.0.0.1:%d", port);
}

int
fake_cluster_setup (int slot)
{
    if (slot < 0 || slot > 2)
        return -1;
    fake_cluster.base = 15000 + (int) (getpid () % 33) * 30 + slot * 10;
    snprintf (fake_cluster.dir, sizeof fake_cluster.dir, "/tmp/trove-test-fake-XXXXXX");
    if (!mkdtemp (fake_cluster.dir))
        return -1;
    char path [400];
    const char *subdirs [] = {"rules", "data", "data/s0", "data/s1"};
    for (size_t i = 0; i < 4; i++) {
        snprintf (path, sizeof path, "%s/%s", fake_cluster.dir, subdirs [i]);
        if (mkdir (path, 0700))
            return -1;
    }
    s_endpoint (fake_cluster.ingestor, fake_cluster.base + 0);
    s_endpoint (fake_cluster.broker_sub, fake_cluster.base + 2);
    s_endpoint (fake_cluster.query [0], fake_cluster.base + 5);
    s_endpoint (fake_cluster.query [1], fake_cluster.base + 7);
    s_endpoint (fake_cluster.call [0], fake_cluster.base + 8);
    s_endpoint (fake_cluster.call [1], fake_cluster.base + 9);
    snprintf (path, sizeof path, "%s/trove.cfg", fake_cluster.dir);
    FILE *f = fopen (path, "w");
    if (!f)
        return -1;
    int p = fake_cluster.base;
    fprintf (f,
             "trove\n"
             "    partitions = 256\n"
             "    rules = \"rules\"\n"
             "    sync = none\n"
             "limits\n"
             "    max_batch = 1000\n"
             "    max_frame = %d\n"
             "sources\n"
             "    web\n"
             "broker\n"
             "    pub = \"tcp://127.0.0.1:%d\"\n"
             "    sub = \"tcp://127.0.0.1:%d\"\n"
             "    control = \"tcp://127.0.0.1:%d\"\n"
             "ingestor\n"
             "    i0\n"
             "        endpoint = \"tcp://127.0.0.1:%d\"\n"
             "scorer\n"
             "    s0\n"
             "        events = \"tcp://127.0.0.1:%d\"\n"
             "        query = \"tcp://127.0.0.1:%d\"\n"
             "        partitions = \"0-127\"\n"
             "        data = \"data/s0\"\n"
             "    s1\n"
             "        events = \"tcp://127.0.0.1:%d\"\n"
             "        query = \"tcp://127.0.0.1:%d\"\n"
             "        partitions = \"128-255\"\n"
             "        data = \"data/s1\"\n",
             FAKE_MAX_FRAME, p + 1, p + 2, p + 3, p + 0, p + 4, p + 5, p + 6, p + 7);
    if (fclose (f))
        return -1;
    char *err = NULL;
    fake_cluster.cfg = trove_cfg_load (path, &err);
    if (!fake_cluster.cfg) {
        fprintf (stderr, "test config refused: %s\n", err ? err : "?");
        free (err);
        return -1;
    }
    //  The fakes bind what the config says the clients connect to.
    if (strcmp (trove_cfg_ingestor_endpoint (fake_cluster.cfg, 0), fake_cluster.ingestor)
        || strcmp (trove_cfg_broker_sub (fake_cluster.cfg), fake_cluster.broker_sub)
        || strcmp (trove_cfg_shard_query (fake_cluster.cfg, 0), fake_cluster.query [0])
        || strcmp (trove_cfg_shard_query (fake_cluster.cfg, 1), fake_cluster.query [1])
        || trove_cfg_shards (fake_cluster.cfg) != 2
        || trove_cfg_limits (fake_cluster.cfg)->max_frame != FAKE_MAX_FRAME)
        return -1;
    return 0;
}

int
fake_cluster_teardown (void)
{
    trove_cfg_destroy (&fake_cluster.cfg);
    char cmd [300];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", fake_cluster.dir);
    return system (cmd) == 0 ? 0 : -1;
}

int
fake_bind (zsock_t *sock, const char *endpoint)
{
    int64_t deadline = trove_mono_us () + 2000000;
    while (true) {
        if (zsock_bind (sock, "%s", endpoint) != -1)
            return 0;
        if (zmq_errno () != EADDRINUSE || trove_mono_us () >= deadline)
            return -1;
        zclock_sleep (5);
    }
}

//  ---------------------------------------------------------------------------
//  Fake query servers (see fake_peers.h)

void
fake_coin_fill (Trove__Coin *coin, char *id, size_t id_size, uint32_t shard, uint64_t aseq)
{
    trove__coin__init (coin);
    snprintf (id, id_size, "coin-%u-%llu", shard, (unsigned long long) aseq);
    coin->id = id;
    coin->user = "u1";
    coin->hunt = "h";
    coin->rule = "r";
    coin->value = (int64_t) aseq * 10;
    coin->shard = shard;
    coin->aseq = aseq;
    coin->reason = "scored";
}

static void
s_server_answer (fake_server_t *fake, zsock_t *router, zframe_t *rid, const Trove__Query *query,
                 fake_act_t act)
{
    if (act == FAKE_SILENT)
        return;
    void *handle = zsock_resolve (router);
    if (act == FAKE_GARBAGE || act == FAKE_JUNK_THEN_REPLY) {
        //  field 31 with wire type 7: not protobuf at all
        static const char junk [] = "\xff\xff\xff this is no trove.Msg";
        zmq_send (handle, zframe_data (rid), zframe_size (rid), ZMQ_SNDMORE);
        zmq_send (handle, junk, sizeof junk - 1, 0);
        if (act == FAKE_GARBAGE)
            return;
    }
    Trove__Coin coins [64];
    Trove__Coin *ptrs [64];
    char ids [64][40];
    Trove__StatusInfo status = TROVE__STATUS_INFO__INIT;
    Trove__QueryReply reply = TROVE__QUERY_REPLY__INIT;
    reply.req_id = query->req_id;
    pthread_mutex_lock (&fake->lock);
    if (streq (query->kind, "status")) {
        status.role = "scorer";
        status.shard = (int32_t) fake->shard;
        status.last_aseq = fake->status_last;
        reply.status = &status;
        reply.last_aseq = fake->status_last;
    }
    else if (streq (query->kind, "awards")) {
        uint64_t aseq = query->from_aseq ? query->from_aseq : 1;
        for (; aseq <= fake->available && reply.n_coins < 64
               && reply.n_coins < (query->limit ? query->limit : 1000);
             aseq++) {
            fake_coin_fill (&coins [reply.n_coins], ids [reply.n_coins], sizeof ids [0], fake->shard, aseq);
            ptrs [reply.n_coins] = &coins [reply.n_coins];
            reply.n_coins++;
        }
        reply.coins = ptrs;
        reply.last_aseq = fake->available;
    }
    else
        reply.error = "bad_query";
    pthread_mutex_unlock (&fake->lock);
    Trove__Msg msg = TROVE__MSG__INIT;
    msg.body_case = TROVE__MSG__BODY_QUERY_REPLY;
    msg.query_reply = &reply;
    if (act == FAKE_JUNK_THEN_REPLY) {
        //  somebody else's answer first
        reply.req_id = query->req_id + 1;
        trove_msg_send (router, zframe_data (rid), zframe_size (rid), &msg, 0);
        //  then ours after an empty delimiter (REQ style), which is tolerated
        reply.req_id = query->req_id;
        size_t size;
        void *buf = trove_msg_pack (&msg, &size);
        zmq_send (handle, zframe_data (rid), zframe_size (rid), ZMQ_SNDMORE);
        zmq_send (handle, "", 0, ZMQ_SNDMORE);
        zmq_send (handle, buf, size, 0);
        free (buf);
        return;
    }
    trove_msg_send (router, zframe_data (rid), zframe_size (rid), &msg, 0);
}

static void
s_server_actor (zsock_t *pipe, void *args)
{
    fake_server_t *fake = args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    if (router) {
        zsock_set_linger (router, 0);
        fake->bound = fake_bind (router, fake->endpoint) == 0;
    }
    zsock_signal (pipe, 0);
    zpoller_t *poller = fake->bound ? zpoller_new (pipe, router, NULL) : NULL;
    while (poller) {
        void *which = zpoller_wait (poller, -1);
        if (which == router) {
            zmsg_t *in = zmsg_recv (router);
            if (!in)
                continue;
            zframe_t *rid = zmsg_pop (in);
            zframe_t *body = zmsg_last (in);
            Trove__Msg *msg =
                body ? trove_msg_decode (zframe_data (body), zframe_size (body), FAKE_MAX_FRAME, NULL) : NULL;
            if (rid && msg && msg->body_case == TROVE__MSG__BODY_QUERY) {
                pthread_mutex_lock (&fake->lock);
                size_t n = fake->nqueries++;
                if (n < FAKE_LOG) {
                    fake->req_id [n] = msg->query->req_id;
                    fake->from_aseq [n] = msg->query->from_aseq;
                    snprintf (fake->kind [n], sizeof fake->kind [n], "%s", msg->query->kind);
                    fake->at_us [n] = trove_mono_us ();
                }
                fake_act_t act = fake->script [n < fake->nscript ? n : fake->nscript - 1];
                pthread_cond_broadcast (&fake->changed);
                pthread_mutex_unlock (&fake->lock);
                if (act == FAKE_RESTART) {
                    zpoller_destroy (&poller);
                    zsock_destroy (&router);
                    router = zsock_new (ZMQ_ROUTER);
                    if (router)
                        zsock_set_linger (router, 0);
                    poller = router && fake_bind (router, fake->endpoint) == 0
                               ? zpoller_new (pipe, router, NULL)
                               : NULL;
                }
                else
                    s_server_answer (fake, router, rid, msg->query, act);
            }
            trove_msg_free (&msg);
            zframe_destroy (&rid);
            zmsg_destroy (&in);
        }
        else if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            free (command);
            if (term)
                break;
        }
        else if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

fake_server_t *
fake_server_start (size_t slot, const char *endpoint, uint32_t shard, const fake_act_t *script,
                   size_t nscript)
{
    assert_true (slot < FAKE_SERVERS);
    fake_server_t *fake = &s_servers.fake [slot];
    assert_null (s_servers.actor [slot]);
    memset (fake, 0, sizeof *fake);
    snprintf (fake->endpoint, sizeof fake->endpoint, "%s", endpoint);
    fake->shard = shard;
    fake->nscript = nscript ? nscript : 1;
    for (size_t i = 0; i < nscript && i < 8; i++)
        fake->script [i] = script [i];
    pthread_mutex_init (&fake->lock, NULL);
    pthread_cond_init (&fake->changed, NULL);
    s_servers.actor [slot] = zactor_new (s_server_actor, fake);
    assert_non_null (s_servers.actor [slot]);
    if (!fake->bound)
        fail_msg ("fake server cannot bind %s (port in use?)", endpoint);
    return fake;
}

void
fake_server_stop (size_t slot)
{
    assert_true (slot < FAKE_SERVERS);
    if (s_servers.actor [slot]) {
        zactor_destroy (&s_servers.actor [slot]);
        pthread_cond_destroy (&s_servers.fake [slot].changed);
        pthread_mutex_destroy (&s_servers.fake [slot].lock);
    }
}

size_t
fake_server_wait (fake_server_t *fake, size_t n, int timeout_ms)
{
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&fake->lock);
    while (fake->nqueries < n)
        if (pthread_cond_timedwait (&fake->changed, &fake->lock, &until) == ETIMEDOUT)
            break;
    size_t got = fake->nqueries;
    pthread_mutex_unlock (&fake->lock);
    return got;
}

size_t
fake_server_count (fake_server_t *fake)
{
    pthread_mutex_lock (&fake->lock);
    size_t n = fake->nqueries;
    pthread_mutex_unlock (&fake->lock);
    return n;
}

void
fake_server_set_available (fake_server_t *fake, uint64_t available)
{
    pthread_mutex_lock (&fake->lock);
    fake->available = available;
    pthread_mutex_unlock (&fake->lock);
}

void
fake_server_set_status (fake_server_t *fake, uint64_t last_aseq)
{
    pthread_mutex_lock (&fake->lock);
    fake->status_last = last_aseq;
    pthread_mutex_unlock (&fake->lock);
}

int
fake_server_find (fake_server_t *fake, const char *kind, uint64_t from_aseq)
{
    int found = -1;
    pthread_mutex_lock (&fake->lock);
    for (size_t i = 0; i < fake->nqueries && i < FAKE_LOG && found < 0; i++)
        if (streq (fake->kind [i], kind) && (from_aseq == 0 || fake->from_aseq [i] == from_aseq))
            found = (int) i;
    pthread_mutex_unlock (&fake->lock);
    return found;
}

trove_cfg_t *
fake_bad_cfg (void)
{
    char path [400];
    snprintf (path, sizeof path, "%s/bad.cfg", fake_cluster.dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs ("broker\n"
           "    pub = \"tcp://127.0.0.1:1\"\n"
           "    sub = \"tcp://nowhere:no-port\"\n"
           "    control = \"tcp://127.0.0.1:3\"\n"
           "scorer\n"
           "    s0\n"
           "        events = \"tcp://127.0.0.1:4\"\n"
           "        query = \"tcp://127.0.0.1:5\"\n"
           "        partitions = \"0-255\"\n"
           "        data = \"data/s0\"\n",
           f);
    assert_int_equal (fclose (f), 0);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    if (!cfg)
        fail_msg ("bad.cfg refused: %s", err ? err : "?");
    return cfg;
}
