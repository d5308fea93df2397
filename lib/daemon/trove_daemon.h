/*  trove_daemon - the start-up the daemons (trove-broker, trove-ingestor,
    trove-scorer, trove-reconciler, trove-webhooks) share, in the order
    every one of them needs it:

      1. the command line, from one option table: --config FILE, and the
         option naming this process in the config (--name for an ingestor,
         --shard for a scorer or reconciler; the broker has none); or one
         of the daemon's standalone tools (`trove-ingestor --new-key`),
         alone on the line;
      2. the log name (trove-ROLE or trove-ROLE/NAME), umask 077 (every file
         a daemon writes is the service user's only, docs/security.md,
         "Hardening"), czmq's signal handling (SIGINT and SIGTERM set
         zsys_interrupted), libsodium;
      3. the config, the process's place in it, the hardening checks;
      4. the metrics registry (process_start_time_seconds registered) and,
         after the daemon registered its own metrics, the /metrics listener
         (trove_daemon_serve_metrics); then CURVE (trove_daemon_secure),
         before any socket binds.

    The daemon then binds every listener before its first connect
    (docs/protocol.md, "Start-up") and runs its loop until zsys_interrupted;
    trove_daemon_reload_asked tells when SIGHUP asked for a reload.

    Caveats: one per process (signal handlers, CURVE and the log are
    process-wide). Every failure is logged before the function returns, so
    a daemon only has to exit with the code it is given. */
#ifndef TROVE_DAEMON_H_INCLUDED
#define TROVE_DAEMON_H_INCLUDED

#include "trove.pb-c.h"
#include "trove_cfg.h"
#include "trove_http.h"
#include "trove_metrics.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_daemon_t trove_daemon_t;

//  A command that runs instead of the daemon (`--new-key`): its exit code.
typedef int (trove_daemon_tool_fn) (void);

typedef struct {
    const char *option;        //  "--new-key"
    trove_daemon_tool_fn *fn;  //  runs when option is alone on the line
} trove_daemon_tool_t;

//  What differs between the daemons' start-ups.
typedef struct {
    const char *role;         //  "broker", "ingestor", "scorer", "reconciler", "webhooks"
    const char *name_option;  //  "--name" (an ingestor), "--shard" (a shard), NULL (broker, webhooks)
    const char *usage;        //  printed to stderr on a bad command line
    bool metrics;             //  keeps a registry served on the role's metrics address
    bool reload;              //  SIGHUP asks for a reload instead of killing
    const trove_daemon_tool_t *tools;  //  NULL, or terminated by {NULL, NULL}
} trove_daemon_spec_t;

//  The body of a daemon: runs until zsys_interrupted and returns the exit
//  code (0 after a clean stop, 1 when something failed, logged). It frees
//  everything it made before it returns: the daemon object (its config and
//  registry) goes after it.
typedef int (trove_daemon_run_fn) (trove_daemon_t *daemon);

//  A daemon's whole life, for main (): trove_daemon_new, run, then
//  trove_daemon_destroy. Returns the exit code (trove_daemon_new's when it
//  refused, else run's).
int trove_daemon_main (const trove_daemon_spec_t *spec, int argc, char **argv, trove_daemon_run_fn *run);

//  Steps 1 to 3 above, and the registry of step 4. Returns the daemon, or
//  NULL with *exit_code set: 2 for a bad command line (usage printed), a
//  tool's own code when one ran, 1 when the config is unreadable, does not
//  name this process or fails a hardening check (logged).
trove_daemon_t *trove_daemon_new (const trove_daemon_spec_t *spec, int argc, char **argv, int *exit_code);

//  Stop CURVE, free the registry (after the daemon freed everything that
//  counts into it), then the config. Safe on NULL and twice.
void trove_daemon_destroy (trove_daemon_t **self_p);

//  The loaded config, owned by the daemon object.
trove_cfg_t *trove_daemon_cfg (trove_daemon_t *self);
//  The --config path, as given.
const char *trove_daemon_config_path (trove_daemon_t *self);
//  The process's name (--name, --shard; "broker" for the broker).
const char *trove_daemon_name (trove_daemon_t *self);
//  Its index in the config: the ingestor's or the shard's (0 for the broker).
size_t trove_daemon_index (trove_daemon_t *self);
//  The registry (NULL unless spec.metrics), owned by the daemon object.
trove_metrics_t *trove_daemon_metrics (trove_daemon_t *self);
//  When this process started (ms since the epoch), and a random non-zero
//  number per start: heartbeats carry both so peers see a restart.
int64_t trove_daemon_started_ms (trove_daemon_t *self);
uint64_t trove_daemon_incarnation (trove_daemon_t *self);

//  Serve the registry on the role's metrics address (none configured:
//  nothing to do). When http is not NULL and http_address is that same
//  address, http (not started yet) gets the /metrics route instead, so one
//  listener serves both. Returns 0, or -1 (logged with the address): a
//  listener that cannot be bound is a wrong config, refused at start.
int trove_daemon_serve_metrics (trove_daemon_t *self, trove_http_t *http, const char *http_address);

//  Is the role's metrics address http_address (so trove_daemon_serve_metrics
//  routes /metrics on that HTTP listener instead of a listener of its own)?
bool trove_daemon_metrics_shared (trove_daemon_t *self, const char *http_address);

//  Start CURVE as the config says (refusals counted in the registry).
//  Returns 0, or -1 (logged).
int trove_daemon_secure (trove_daemon_t *self);

//  Fill hb's role, name, start time and incarnation and publish it on pub
//  (PUB never blocks; a lost heartbeat is replaced by the next one).
void trove_daemon_heartbeat (trove_daemon_t *self, zsock_t *pub, Trove__Heartbeat *hb);

//  Fill what every status answer says about the process: role, shard (the
//  index for a scorer or reconciler, -1 otherwise), name, pid, start time,
//  version and host. The strings are borrowed from the daemon object.
void trove_daemon_status (trove_daemon_t *self, Trove__StatusInfo *status);

//  True once after each SIGHUP (spec.reload only).
bool trove_daemon_reload_asked (trove_daemon_t *self);

#ifdef __cplusplus
}
#endif
#endif
