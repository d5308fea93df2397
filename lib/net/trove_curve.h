/*  trove_curve - CURVE encryption and authentication on every ZeroMQ link
    between processes (docs/security.md, "CURVE between hosts").

    With `trove/curve = yes` every socket a process binds is a CURVE server
    with ZAP domain "trove" whose clients must hold a certificate in the
    config's peers folder (czmq zauth), and every socket it connects is a
    CURVE client that knows its server's public key from the config (the
    endpoint's section gives it: `curve_key`, `reconcile_key`). Each process
    uses its host's certificate (`curve/cert`) on both sides.

    The state is per process, not per object, because ZeroMQ's is: zauth
    serves the one ZAP endpoint of czmq's one context. A daemon calls
    trove_curve_start once, after loading its config and before creating
    any socket, and trove_curve_stop after closing its sockets; every bind
    and connect then goes through trove_curve_bind / trove_curve_connect,
    which do plain ZeroMQ while CURVE is off (or not started: unit tests).

    Refused peers are invisible to ZeroMQ applications (a CURVE client with
    the wrong key retries forever). So the sockets a daemon keeps are watched
    (socket monitor, ZMQ_EVENT_HANDSHAKE_FAILED_*): every refusal is counted
    in trove_curve_refused_total{endpoint,reason} (peers our servers
    refused) or trove_curve_rejected_total{endpoint,reason} (servers that
    refused us), and logged, at most once per 10 s per socket.

    Roles. What a peer may do is written in its certificate in the peers
    folder, as metadata that zauth hands to every message of that peer
    (`role`, and `source` for a producer; a client cannot choose it, the
    server's copy of its certificate says it):
      daemon    the cluster's own processes (ingestors, scorers, brokers,
                reconcilers; trove-load and `trovectl send` on a daemon
                host): everything but control operations
      operator  trovectl: control operations (rules apply, leaderboard
                exclusions, reconciler runs) and every read
      producer  submits events of its `source` only (others are rejected
                `source_mismatch`); reads the award stream
      reader    queries and the award stream, no writes
    A certificate without `role` counts as daemon (host certificates made
    before roles existed; the daemons warn at start). With CURVE off there
    are no identities and everything is allowed: only for a trusted
    loopback (`trovectl up --insecure`). */
#ifndef TROVE_CURVE_H_INCLUDED
#define TROVE_CURVE_H_INCLUDED

#include "trove_cfg.h"
#include "trove_metrics.h"

#include <czmq.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  ZAP domain of every Trove CURVE server.
#define TROVE_CURVE_DOMAIN "trove"

typedef enum {
    TROVE_ROLE_ANY = 0,  //  CURVE off: no identity, everything allowed
    TROVE_ROLE_DAEMON,
    TROVE_ROLE_OPERATOR,
    TROVE_ROLE_PRODUCER,
    TROVE_ROLE_READER,
} trove_role_t;

//  A peer, as the server's copy of its certificate says.
typedef struct {
    trove_role_t role;
    char source [72];  //  producer: the only source it may send ("" otherwise)
    char name [72];    //  the certificate's name, for messages
} trove_peer_t;

//  The sender of a frame received on a socket this process bound (its
//  certificate's metadata). TROVE_ROLE_ANY while CURVE is off.
void trove_curve_peer (zframe_t *frame, trove_peer_t *peer);

//  Role names as written in certificates ("daemon", ...), and back
//  (TROVE_ROLE_ANY for an unknown name).
const char *trove_curve_role_name (trove_role_t role);
trove_role_t trove_curve_role_of (const char *name);

//  May peer do what needs role at least? ANY (CURVE off) may do anything;
//  operator may do what a daemon or reader may; daemon what a reader may.
bool trove_curve_allows (const trove_peer_t *peer, trove_role_t needs);

//  Set the process up from cfg. When CURVE is on: load this host's
//  certificate (its secret file must exist, hold a secret key, and be
//  readable by the owner only), check the peers folder, and, when serve is
//  true (daemons that bind), start zauth on it. metrics (may be NULL) gets
//  the refusal counters. 0, or -1 with a message in *err_p (caller frees).
//  A second call replaces what the first set up.
int trove_curve_start (const trove_cfg_t *cfg, trove_metrics_t *metrics, bool serve, char **err_p);
//  The same, presenting the certificate at cert_path instead of curve/cert
//  (trovectl presents curve/operator when the config names one).
int trove_curve_start_as (const trove_cfg_t *cfg, const char *cert_path, trove_metrics_t *metrics, bool serve,
                          char **err_p);

//  Undo trove_curve_start (stop zauth and the watcher); safe when not started.
void trove_curve_stop (void);

//  True between a trove_curve_start with trove/curve = yes and its stop.
bool trove_curve_enabled (void);

//  "" while CURVE is off; else a hint for "no answer" errors: a server that
//  does not admit this host's key never answers, it just refuses.
const char *trove_curve_hint (void);

//  Bind sock to endpoint, as a CURVE server when enabled. watch:
//  watch it for refused peers. 0, or -1 (logged) when bind fails.
int trove_curve_bind (zsock_t *sock, const char *endpoint, bool watch);

//  Connect sock to endpoint, as a CURVE client of the server the config
//  gives for that endpoint when enabled. watch: watch it for
//  servers refusing us. 0, or -1 (logged) when the endpoint has no key in
//  the config or connect fails.
int trove_curve_connect (zsock_t *sock, const char *endpoint, bool watch);

//  A new certificate at path (public, 0644) and path_secret (0600), name,
//  role and source (each may be NULL) in its metadata. Refuses to
//  overwrite an existing secret file, an unknown role, a producer without
//  a source. Returns the Z85 public key (caller frees), or NULL with a
//  message in *err_p.
char *trove_curve_keygen (const char *path, const char *name, const char *role, const char *source,
                          char **err_p);

//  The Z85 public key of the certificate at path (public or secret file),
//  or NULL with a message in *err_p.
char *trove_curve_public_key (const char *path, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
