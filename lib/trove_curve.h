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
    refused us), and logged, at most once per 10 s per socket. */
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

//  Set the process up from cfg. When CURVE is on: load this host's
//  certificate (its secret file must exist, hold a secret key, and be
//  readable by the owner only), check the peers folder, and, when serve is
//  true (daemons that bind), start zauth on it. metrics (may be NULL) gets
//  the refusal counters. 0, or -1 with a message in *err_p (caller frees).
//  A second call replaces what the first set up.
int trove_curve_start (const trove_cfg_t *cfg, trove_metrics_t *metrics, bool serve, char **err_p);

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

//  A new certificate at path (public, 0644) and path_secret (0600), name in
//  its metadata. Refuses to overwrite an existing secret file. Returns the
//  Z85 public key (caller frees), or NULL with a message in *err_p.
char *trove_curve_keygen (const char *path, const char *name, char **err_p);

//  The Z85 public key of the certificate at path (public or secret file),
//  or NULL with a message in *err_p.
char *trove_curve_public_key (const char *path, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
