/*  trove_daemon - the daemons' shared start-up. See trove_daemon.h. */
#include "trove_daemon.h"
#include "trove_curve.h"
#include "trove_harden.h"
#include "trove_msg.h"
#include "trove_util.h"

#include <assert.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _trove_daemon_t {
    const trove_daemon_spec_t *spec;  //  borrowed, static in the daemon
    const char *config;               //  --config (argv)
    const char *name;                 //  --name / --shard (argv), or the role
    size_t index;                     //  the ingestor's or the shard's index
    trove_cfg_t *cfg;
    trove_metrics_t *metrics;  //  NULL unless spec->metrics
    int64_t started_ms;
    uint64_t incarnation;
    char host [256];  //  for status answers
};

//  The command line: every option takes a value; which ones a daemon
//  accepts is its spec's name_option beside --config.
typedef struct {
    const char *option;
    size_t offset;  //  of the const char * it sets in s_args_t
} s_option_t;

typedef struct {
    const char *config;
    const char *name;
} s_args_t;

static const s_option_t s_options [] = {
    {"--config", offsetof (s_args_t, config)},
    {"--name", offsetof (s_args_t, name)},
    {"--shard", offsetof (s_args_t, name)},
};

//  Fill args from argv. Returns 0, or -1 for an unknown or repeated
//  option, a missing value, or a missing required option.
static int
s_parse (const trove_daemon_spec_t *spec, int argc, char **argv, s_args_t *args)
{
    memset (args, 0, sizeof *args);
    for (int i = 1; i < argc; i++) {
        const s_option_t *found = NULL;
        for (size_t k = 0; k < sizeof s_options / sizeof s_options [0]; k++) {
            const char *option = s_options [k].option;
            bool allowed = strcmp (option, "--config") == 0
                        || (spec->name_option && strcmp (option, spec->name_option) == 0);
            if (allowed && strcmp (argv [i], option) == 0)
                found = &s_options [k];
        }
        if (!found || i + 1 == argc)
            return -1;
        const char **value = (const char **) ((char *) args + found->offset);
        if (*value)
            return -1;
        *value = argv [++i];
    }
    return args->config && (args->name || !spec->name_option) ? 0 : -1;
}

//  Where this process is in the config: the ingestor or shard named on the
//  command line. Returns its index, or -1 (logged).
static int
s_find (trove_daemon_t *self)
{
    if (!self->spec->name_option)
        return 0;
    if (strcmp (self->spec->name_option, "--name") == 0) {
        int index = trove_cfg_ingestor_find (self->cfg, self->name);
        if (index < 0)
            trove_log ('E', "%s '%s' is not in %s", self->spec->role, self->name, self->config);
        return index;
    }
    for (size_t i = 0; i < trove_cfg_shards (self->cfg); i++)
        if (strcmp (trove_cfg_shard_name (self->cfg, i), self->name) == 0)
            return (int) i;
    trove_log ('E', "shard '%s' is not in %s", self->name, self->config);
    return -1;
}

static volatile sig_atomic_t s_reload;

static void
s_on_sighup (int sig)
{
    (void) sig;
    s_reload = 1;
}

trove_daemon_t *
trove_daemon_new (const trove_daemon_spec_t *spec, int argc, char **argv, int *exit_code)
{
    assert (spec && spec->role && spec->usage);
    assert (exit_code);
    *exit_code = 2;
    for (const trove_daemon_tool_t *tool = spec->tools; tool && tool->option; tool++)
        if (argc == 2 && strcmp (argv [1], tool->option) == 0) {
            *exit_code = tool->fn ();
            return NULL;
        }
    s_args_t args;
    if (s_parse (spec, argc, argv, &args)) {
        fputs (spec->usage, stderr);
        return NULL;
    }
    *exit_code = 1;
    char logname [128];
    if (spec->name_option)
        snprintf (logname, sizeof logname, "trove-%s/%s", spec->role, args.name);
    else
        snprintf (logname, sizeof logname, "trove-%s", spec->role);
    trove_log_init (logname);
    umask (077);
    zsys_init ();
    zsys_set_logstream (NULL);
    if (sodium_init () < 0) {
        trove_log ('E', "libsodium failed to initialise");
        return NULL;
    }
    char *err = NULL;
    trove_daemon_t *self = calloc (1, sizeof *self);
    if (!self) {
        trove_log ('E', "out of memory");
        return NULL;
    }
    self->spec = spec;
    self->config = args.config;
    self->name = args.name ? args.name : spec->role;
    self->started_ms = trove_now_ms ();
    gethostname (self->host, sizeof self->host - 1);
    while (self->incarnation == 0)
        randombytes_buf (&self->incarnation, sizeof self->incarnation);
    self->cfg = trove_cfg_load (args.config, &err);
    if (!self->cfg)
        goto fail;
    int index = s_find (self);
    if (index < 0)
        goto fail;
    self->index = (size_t) index;
    if (trove_harden_check (self->cfg, spec->role, args.name, &err))
        goto fail;
    if (spec->metrics) {
        self->metrics = trove_metrics_new ();
        if (!self->metrics || trove_metrics_process_start (self->metrics)) {
            trove_log ('E', "out of memory");
            goto fail;
        }
    }
    if (spec->reload) {
        struct sigaction hup = {.sa_handler = s_on_sighup};
        sigemptyset (&hup.sa_mask);
        sigaction (SIGHUP, &hup, NULL);
    }
    return self;
fail:
    if (err)
        trove_log ('E', "%s", err);
    free (err);
    trove_daemon_destroy (&self);
    return NULL;
}

void
trove_daemon_destroy (trove_daemon_t **self_p)
{
    assert (self_p);
    trove_daemon_t *self = *self_p;
    if (self) {
        trove_curve_stop ();  //  its watcher counts into the registry
        trove_metrics_destroy (&self->metrics);
        trove_cfg_destroy (&self->cfg);
        free (self);
        *self_p = NULL;
    }
}

trove_cfg_t *
trove_daemon_cfg (trove_daemon_t *self)
{
    assert (self);
    return self->cfg;
}

const char *
trove_daemon_config_path (trove_daemon_t *self)
{
    assert (self);
    return self->config;
}

const char *
trove_daemon_name (trove_daemon_t *self)
{
    assert (self);
    return self->name;
}

size_t
trove_daemon_index (trove_daemon_t *self)
{
    assert (self);
    return self->index;
}

trove_metrics_t *
trove_daemon_metrics (trove_daemon_t *self)
{
    assert (self);
    return self->metrics;
}

int64_t
trove_daemon_started_ms (trove_daemon_t *self)
{
    assert (self);
    return self->started_ms;
}

uint64_t
trove_daemon_incarnation (trove_daemon_t *self)
{
    assert (self);
    return self->incarnation;
}

//  The role's metrics address in the config, or NULL.
static const char *
s_metrics_address (trove_daemon_t *self)
{
    const char *role = self->spec->role;
    if (strcmp (role, "broker") == 0)
        return trove_cfg_broker_metrics (self->cfg);
    if (strcmp (role, "ingestor") == 0)
        return trove_cfg_ingestor_metrics (self->cfg, self->index);
    if (strcmp (role, "scorer") == 0)
        return trove_cfg_shard_metrics (self->cfg, self->index);
    if (strcmp (role, "webhooks") == 0 && trove_cfg_webhooks (self->cfg))
        return trove_cfg_webhooks (self->cfg)->metrics;
    return NULL;
}

bool
trove_daemon_metrics_shared (trove_daemon_t *self, const char *http_address)
{
    assert (self);
    const char *address = self->metrics ? s_metrics_address (self) : NULL;
    return address && http_address && strcmp (address, http_address) == 0;
}

int
trove_daemon_serve_metrics (trove_daemon_t *self, trove_http_t *http, const char *http_address)
{
    assert (self);
    const char *address = self->metrics ? s_metrics_address (self) : NULL;
    if (!address)
        return 0;
    char *err = NULL;
    if (http && trove_daemon_metrics_shared (self, http_address)) {
        if (trove_metrics_route (self->metrics, http) == 0)
            return 0;
    }
    else if (trove_metrics_serve (self->metrics, address, &err) == 0)
        return 0;
    //  Every configured listener is bound at start or the daemon refuses to
    //  run: a wrong address is a wrong config, found now, not by a silent
    //  dashboard later (the supervisor's log says which).
    trove_log ('E', "cannot serve metrics on %s: %s", address, err ? err : "out of memory");
    free (err);
    return -1;
}

int
trove_daemon_secure (trove_daemon_t *self)
{
    assert (self);
    char *err = NULL;
    if (trove_curve_start (self->cfg, self->metrics, true, &err)) {
        trove_log ('E', "%s", err ? err : "out of memory");
        free (err);
        return -1;
    }
    return 0;
}

void
trove_daemon_heartbeat (trove_daemon_t *self, zsock_t *pub, Trove__Heartbeat *hb)
{
    assert (self && pub && hb);
    hb->role = (char *) self->spec->role;
    hb->name = (char *) self->name;
    hb->started_ms = self->started_ms;
    hb->incarnation = self->incarnation;
    trove_msg_send_heartbeat (pub, hb);
}

bool
trove_daemon_reload_asked (trove_daemon_t *self)
{
    assert (self);
    (void) self;  //  the flag is the process's: one daemon per process
    if (!s_reload)
        return false;
    s_reload = 0;
    return true;
}

void
trove_daemon_status (trove_daemon_t *self, Trove__StatusInfo *status)
{
    assert (self && status);
    bool shard = self->spec->name_option && strcmp (self->spec->name_option, "--shard") == 0;
    status->role = (char *) self->spec->role;
    status->shard = shard ? (int32_t) self->index : -1;
    status->name = (char *) self->name;
    status->pid = getpid ();
    status->started_ms = self->started_ms;
    status->version = TROVE_VERSION;
    status->host = self->host;
}

int
trove_daemon_main (const trove_daemon_spec_t *spec, int argc, char **argv, trove_daemon_run_fn *run)
{
    assert (run);
    int rc;
    trove_daemon_t *self = trove_daemon_new (spec, argc, argv, &rc);
    if (self) {
        rc = run (self);
        trove_daemon_destroy (&self);
    }
    return rc;
}
