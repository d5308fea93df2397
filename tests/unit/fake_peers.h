/*  fake_peers - fixtures shared by the client, submitter and awardsub unit
    tests: a test cluster config on loopback and fake query servers (a
    scorer's query socket, or any status endpoint).

    The cluster (fake_cluster_setup): a temp dir holding trove.cfg with one
    ingestor (i0), a broker and two scorers (s0: partitions 0-127, s1:
    128-255), on 10 ports from 15000 + 30 * (pid % 33) + 10 * slot; each
    test program passes its own slot (0-2) so the three never share a port.

    A fake query server is a zactor with a ROUTER. What it does with the
    n-th query is script [n] (the last entry repeats). "status" is answered
    with status_last, "awards" from a table holding the coins aseq
    1..available of its shard. Every wait is bounded. */
#ifndef FAKE_PEERS_H_INCLUDED
#define FAKE_PEERS_H_INCLUDED

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_cfg.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <czmq.h>
#include <pthread.h>
#include <stdbool.h>

#define FAKE_MAX_FRAME 16384  //  limits/max_frame of the test cluster
#define FAKE_SERVERS 2        //  fake query servers at once (slots)

typedef struct {
    char dir [256];        //  temp dir: config, rules, data
    trove_cfg_t *cfg;      //  the test cluster
    int base;              //  first of its 10 ports
    char ingestor [64];    //  ingestor i0 endpoint (fake ROUTER)
    char broker_sub [64];  //  broker/sub (fake PUB)
    char query [2][64];    //  scorer s0, s1 query endpoints (fake ROUTERs)
    char call [2][64];     //  endpoints for the trove_client_call tests
} fake_cluster_t;

extern fake_cluster_t fake_cluster;

//  Write and load the cluster config into fake_cluster, using the ports of
//  slot (0-2). Returns 0 or -1; for cmocka's group setup.
int fake_cluster_setup (int slot);

//  Free the config and remove the temp dir. Returns 0 or -1.
int fake_cluster_teardown (void);

//  Bind sock to endpoint. A socket closed just before (the previous test's
//  fake on the same port) releases its listener asynchronously, in libzmq's
//  I/O thread: retries while the port is still in use, for at most 2 s.
int fake_bind (zsock_t *sock, const char *endpoint);

typedef enum {
    FAKE_REPLY,            //  a good reply
    FAKE_SILENT,           //  nothing
    FAKE_GARBAGE,          //  one frame that is not a trove.Msg
    FAKE_JUNK_THEN_REPLY,  //  garbage, a reply with another req_id, then the
                           //  good reply after an empty delimiter frame
    FAKE_RESTART           //  no answer: close the ROUTER (the connection drops)
                           //  and bind a new one, as a restarted server would
} fake_act_t;

#define FAKE_LOG 32

typedef struct {
    char endpoint [64];             //  bound by the actor
    uint32_t shard;                 //  coins of the table carry this shard
    fake_act_t script [8];          //  action per query received
    size_t nscript;                 //  entries in script
    bool bound;                     //  the bind worked (set before the actor signals)
    pthread_mutex_t lock;           //  guards everything below
    pthread_cond_t changed;         //  signalled on each query received
    uint64_t status_last;           //  "status": last_aseq to report
    uint64_t available;             //  "awards": coins 1..available exist
    size_t nqueries;                //  queries received
    uint64_t req_id [FAKE_LOG];     //  per query received
    uint64_t from_aseq [FAKE_LOG];  //  per query received
    char kind [FAKE_LOG][16];       //  per query received
    int64_t at_us [FAKE_LOG];       //  per query received (monotonic)
} fake_server_t;

//  Fill coin as the fake's table holds coin aseq of shard (id into id).
void fake_coin_fill (Trove__Coin *coin, char *id, size_t id_size, uint32_t shard, uint64_t aseq);

//  Start fake slot on endpoint with a script (FAKE_REPLY when nscript is 0).
//  Fails the test when it cannot bind.
fake_server_t *fake_server_start (size_t slot, const char *endpoint, uint32_t shard, const fake_act_t *script,
                                  size_t nscript);

//  Stop fake slot, if started. A test's teardown stops every slot, so a
//  failed test does not leave a port bound (or a thread running).
void fake_server_stop (size_t slot);

//  Wait up to timeout_ms until the fake received n queries; returns how many
//  it received.
size_t fake_server_wait (fake_server_t *fake, size_t n, int timeout_ms);

//  Queries the fake received.
size_t fake_server_count (fake_server_t *fake);

//  "awards": coins 1..available exist.
void fake_server_set_available (fake_server_t *fake, uint64_t available);

//  "status": report last_aseq.
void fake_server_set_status (fake_server_t *fake, uint64_t last_aseq);

//  Index of the first query of kind (from from_aseq, or any when 0) the fake
//  received, or -1.
int fake_server_find (fake_server_t *fake, const char *kind, uint64_t from_aseq);

//  A config the clients must refuse: no ingestor, and a broker/sub endpoint
//  libzmq cannot parse (it loads: the refusal is the constructors').
trove_cfg_t *fake_bad_cfg (void);

#endif
