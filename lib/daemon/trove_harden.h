/*  trove_harden - start-up checks that keep a daemon from exposing what must
    not be exposed (docs/security.md, "Hardening").

    Every /metrics address, and every ZeroMQ endpoint unless `trove/curve =
    yes` (trove_curve), is unauthenticated, so a daemon refuses to bind one
    on an address other hosts can reach (anything but 127.0.0.0/8, ::1,
    localhost, ipc://, inproc://) unless the config says
    `trove/allow_unauthenticated = yes`: then it starts and logs a warning
    per endpoint. The HTTP ingest address is
    authenticated (source keys) and may be public (put TLS in front). */
#ifndef TROVE_HARDEN_H_INCLUDED
#define TROVE_HARDEN_H_INCLUDED

#include "trove_cfg.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  True when an endpoint ("tcp://127.0.0.1:7410", "ipc://x", "inproc://x")
//  or an HTTP address ("127.0.0.1:7600", "[::1]:80") can be reached from
//  this host only. Anything unparsable counts as exposed. Can't fail.
bool trove_harden_local (const char *endpoint);

//  Check the endpoints the process `role` ("ingestor", "scorer", "broker",
//  "reconciler", "webhooks") named `name` (ingestor or shard name; ignored for the
//  broker) binds. Returns 0 when none is exposed, or when
//  trove/allow_unauthenticated = yes (each exposed one is then logged as a
//  warning); else -1 with a message naming the endpoint in *err_p (caller
//  frees). An unknown role or name is -1 too.
int trove_harden_check (const trove_cfg_t *cfg, const char *role, const char *name, char **err_p);

#ifdef __cplusplus
}
#endif
#endif
