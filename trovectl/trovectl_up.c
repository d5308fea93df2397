/*  trovectl up / down - run a local cluster under a supervisor.

    `up` writes DIR/trove.cfg and DIR/rules/demo.yaml (unless they exist: a
    restarted cluster keeps its config and data; trovectl_layout.c), then
    supervises one broker, the ingestors and the scorers of the config,
    restarting any that dies (trovectl_super.c). A new config gives each
    ingestor an HTTP listener (POST /v1/events and the GET query API) and
    source `web` a demo key: the key goes to DIR/web.key (0600), only its
    hash to the config. `down` stops the supervisor. */
#include "trovectl_up.h"
#include "trove_curve.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_READY_TIMEOUT_US 30000000
#define S_DOWN_TIMEOUT_US 15000000


const char *const trovectl_up_help =
    "usage: trovectl up [--dir DIR] [--detach] [--port-base P] [--shards N]\n"
    "                   [--ingestors N] [--sync full|none] [--json]\n"
    "\n"
    "Run a local cluster in DIR (default: $TROVE_DIR, else ./trove-data).\n"
    "Writes DIR/trove.cfg unless it exists (an existing cluster is restarted with\n"
    "its config and data; the layout options are then ignored) and\n"
    "DIR/rules/demo.yaml unless it exists, then starts and supervises\n"
    "trove-broker, the ingestors and the scorers (found next to trovectl, else\n"
    "in PATH), restarting any that dies (backoff 100 ms doubling to 2 s, reset\n"
    "after 10 s up). Logs: DIR/logs/NAME.log, DIR/logs/supervisor.log; pids:\n"
    "DIR/trovectl.pid, DIR/pids/NAME.pid.\n"
    "\n"
    "  --detach        run the supervisor in the background; return once every\n"
    "                  process answers status (error after 30 s).\n"
    "                  Without it: run until SIGINT/SIGTERM.\n"
    "  --port-base P   ports from P (default 7400): broker pub P+1, sub P+2,\n"
    "                  control P+3, ingestor k P+10+k, scorer k events P+20+2k,\n"
    "                  query P+21+2k; /metrics: broker P+200, ingestor k\n"
    "                  P+210+k, scorer k P+230+k; HTTP (POST /v1/events and the\n"
    "                  GET query API, docs/queries.md): ingestor k P+250+k.\n"
    "  --shards N      scorer shards (default 2, at most 20); 256 partitions split\n"
    "                  in contiguous ranges.\n"
    "  --ingestors N   ingestors (default 1, at most 10).\n"
    "  --sync full|none  LMDB durability (default full), see etc/trove.cfg.\n"
    "  --insecure      no CURVE: any local process may submit, query and run\n"
    "                  control operations (benchmarks of the bare path only).\n"
    "                  By default every ZeroMQ link is CURVE (docs/security.md):\n"
    "                  DIR/curve holds the host's certificate (role daemon) and\n"
    "                  the operator's (role operator, used by trovectl), both\n"
    "                  admitted in DIR/curve/peers.\n"
    "  --curve         (the default; kept for scripts)\n"
    "A new config gets a demo key for source web in DIR/web.key (its hash in the\n"
    "config): curl -H \"Authorization: Bearer $(cat DIR/web.key)\"\n"
    "http://127.0.0.1:P+250/v1/users/USER/balance. `up` prints each HTTP address\n"
    "and the key file (--json: \"http\" and \"key_file\").\n"
    "If a supervisor already runs for DIR, says so and exits 0 once it is ready.\n"
    "On SIGTERM the supervisor stops every child (SIGTERM, SIGKILL after 5 s).\n";


const char *const trovectl_down_help =
    "usage: trovectl down [--dir DIR] [--json]\n"
    "\n"
    "Stop the cluster that `trovectl up` runs in DIR: SIGTERM to its supervisor,\n"
    "then wait (up to 15 s) until it is gone. If none runs, says so and exits 0.\n";


//  Where the ingestors serve HTTP and the demo key, for people (lines on
//  stdout) or scripts (fields "http": [URL, ...], "key_file" set in obj).
void
trovectl_up_report_http (const trove_cfg_t *cfg, const char *dir, json_t *obj)
{
    char keyfile [PATH_MAX];
    bool key = trovectl_layout_key_file (dir, keyfile, sizeof keyfile);
    json_t *urls = obj ? json_array () : NULL;
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++) {
        char path [200];
        snprintf (path, sizeof path, "ingestor/%s/http", trove_cfg_ingestor_name (cfg, i));
        const char *address = trove_cfg_get (cfg, path, NULL);
        if (!address)
            continue;
        if (urls)
            json_array_append_new (urls, json_sprintf ("http://%s", address));
        else
            printf ("ingestor %s: HTTP on http://%s (POST /v1/events; GET /v1/users/USER/balance, "
                    "docs/queries.md)\n",
                    trove_cfg_ingestor_name (cfg, i), address);
    }
    if (obj) {
        json_object_set_new (obj, "http", urls);
        json_object_set_new (obj, "key_file", key ? json_string (keyfile) : json_null ());
    }
    else if (key)
        printf ("demo key of source web: %s (curl -H \"Authorization: Bearer $(cat %s)\" ...)\n", keyfile,
                keyfile);
}


static void
s_report_up (bool json, const trove_cfg_t *cfg, const char *dir, pid_t pid, bool already)
{
    if (json) {
        json_t *obj = json_pack ("{s:s,s:i,s:b,s:b}", "dir", dir, "supervisor_pid", (int) pid, "ready", 1,
                                 "already_running", already);
        if (obj)
            trovectl_up_report_http (cfg, dir, obj);
        trovectl_print_json (obj);
        return;
    }
    if (already)
        printf ("cluster in %s is already running (supervisor pid %d) and ready\n", dir, (int) pid);
    else
        printf ("cluster up in %s (supervisor pid %d)\n", dir, (int) pid);
    trovectl_up_report_http (cfg, dir, NULL);
}


//  The layout of a new cluster from the options, checked. Returns 0, or -1
//  after printing a one-line error.
static int
s_layout_options (const trovectl_opts_t *opts, long *base, long *shards, long *ingestors, const char **sync)
{
    *base = opts->port_base < 0 ? 7400 : opts->port_base;
    *shards = opts->shards < 0 ? 2 : opts->shards;
    *ingestors = opts->ingestors < 0 ? 1 : opts->ingestors;
    *sync = opts->sync ? opts->sync : "full";
    //  20 shards fill the port layout (scorer k at P+20+2k up to P+59, its
    //  reconciler from P+60, its /metrics P+230+k below the HTTP ports).
    if (*shards < 1 || *shards > 20)
        trovectl_fail ("up: --shards %ld: want 1 to 20 (the port layout of a local cluster)", *shards);
    else if (*ingestors < 1 || *ingestors > 10)
        trovectl_fail ("up: --ingestors %ld: want 1 to 10", *ingestors);
    else if (*base < 1024 || *base + 300 > 65535)
        trovectl_fail ("up: --port-base %ld: ports would leave 1024-65535", *base);
    else if (strcmp (*sync, "full") && strcmp (*sync, "none"))
        trovectl_fail ("up: --sync '%s': want full or none", *sync);
    else if (opts->curve && opts->insecure)
        trovectl_fail ("up: --curve and --insecure contradict each other");
    else
        return 0;
    return -1;
}

//  The files of the cluster in super->dir: a new one from the options, or
//  the existing one (whose layout the options cannot change). Returns 0, or
//  -1 after printing a one-line error.
static int
s_prepare (trovectl_super_t *super, const trovectl_opts_t *opts)
{
    long base, shards, ingestors;
    const char *sync;
    if (s_layout_options (opts, &base, &shards, &ingestors, &sync)
        || trovectl_layout_dirs (trovectl_dir (opts->dir), super->dir))
        return -1;
    snprintf (super->cfgpath, sizeof super->cfgpath, "%s/trove.cfg", super->dir);
    snprintf (super->pidpath, sizeof super->pidpath, "%s/trovectl.pid", super->dir);
    if (!trovectl_layout_exists (super->cfgpath)) {
        if (trovectl_layout_new (super->dir, super->cfgpath, base, shards, ingestors, sync, opts->insecure))
            return -1;
    }
    else if (opts->port_base >= 0 || opts->shards >= 0 || opts->ingestors >= 0 || opts->sync || opts->curve
             || opts->insecure)
        fprintf (stderr, "trovectl: note: %s exists; layout options are ignored\n", super->cfgpath);
    return trovectl_layout_demo_rules (super->dir);
}

//  The supervisor's side of --detach, in the forked child: its own session,
//  no terminal, output to its log. Never returns.
static void
s_detached (trovectl_super_t *super, trove_cfg_t *cfg)
{
    setsid ();
    char log [PATH_MAX + 32];
    snprintf (log, sizeof log, "%s/logs/supervisor.log", super->dir);
    trovectl_super_redirect (log);
    int code = trovectl_super_run (super);
    free (super->children);
    trove_cfg_destroy (&cfg);
    //  not exit (): nothing of the parent's atexit state is ours
    _exit (code);
}

//  --detach: fork the supervisor, return once the cluster is ready. Returns
//  the exit code.
static int
s_detach (trovectl_super_t *super, trove_cfg_t *cfg, bool json)
{
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0)
        return trovectl_fail ("fork: %s", strerror (errno));
    if (pid == 0)
        s_detached (super, cfg);
    int status = 0;
    int ready = trovectl_super_wait_ready (super->dir, cfg, S_READY_TIMEOUT_US, pid, &status);
    if (ready == 1 && WIFEXITED (status) && WEXITSTATUS (status) == 3) {
        //  another `up` won the race: behave as if it had been running
        pid_t running = trovectl_super_running (super->dir);
        if (running > 0 && trovectl_super_wait_ready (super->dir, cfg, S_READY_TIMEOUT_US, 0, NULL) == 0) {
            s_report_up (json, cfg, super->dir, running, true);
            return 0;
        }
        return trovectl_fail ("another supervisor runs for %s but the cluster is not ready", super->dir);
    }
    if (ready == 1)
        return trovectl_fail ("the supervisor exited (status %d); see %s/logs/supervisor.log",
                              WIFEXITED (status) ? WEXITSTATUS (status) : -1, super->dir);
    if (ready < 0)
        return trovectl_fail ("cluster in %s not ready after 30 s (supervisor pid %d still runs; "
                              "see trovectl status, %s/logs, trovectl down)",
                              super->dir, (int) pid, super->dir);
    s_report_up (json, cfg, super->dir, pid, false);
    return 0;
}

int
trovectl_up (const trovectl_opts_t *opts)
{
    if (opts->nargs)
        return trovectl_fail ("up: unexpected argument '%s' (see trovectl up --help)", opts->args [0]);
    int rc = 1;
    trove_cfg_t *cfg = NULL;
    trovectl_super_t super;
    memset (&super, 0, sizeof super);
    super.json = opts->json;
    if (s_prepare (&super, opts))
        goto fail;
    char *err = NULL;
    cfg = trove_cfg_load (super.cfgpath, &err);
    if (cfg && trove_curve_start (cfg, NULL, false, &err))
        trove_cfg_destroy (&cfg);
    if (!cfg) {
        trovectl_fail ("%s", err ? err : "cannot load the config");
        free (err);
        goto fail;
    }
    super.cfg = cfg;
    pid_t running = trovectl_super_running (super.dir);
    if (running > 0) {
        if (trovectl_super_wait_ready (super.dir, cfg, S_READY_TIMEOUT_US, 0, NULL)) {
            trovectl_fail ("cluster in %s is already running (supervisor pid %d) but not ready "
                           "after 30 s (see trovectl status)",
                           super.dir, (int) running);
            goto fail;
        }
        s_report_up (opts->json, cfg, super.dir, running, true);
        rc = 0;
    }
    else if (trovectl_super_plan (&super))
        trovectl_fail ("out of memory");
    else if (!opts->detach) {
        super.foreground = true;
        rc = trovectl_super_run (&super);
        if (rc == 3)
            rc = trovectl_fail ("another supervisor started for %s meanwhile", super.dir);
    }
    else
        rc = s_detach (&super, cfg, opts->json);
fail:
    free (super.children);
    trove_cfg_destroy (&cfg);
    return rc;
}

int
trovectl_down (const trovectl_opts_t *opts)
{
    if (opts->nargs)
        return trovectl_fail ("down: unexpected argument '%s' (see trovectl down --help)", opts->args [0]);
    const char *dir = trovectl_dir (opts->dir);
    pid_t pid = trovectl_super_running (dir);
    if (pid <= 0) {
        if (opts->json)
            trovectl_print_json (json_pack ("{s:s,s:b}", "dir", dir, "running", 0));
        else
            printf ("no cluster running in %s\n", dir);
        return 0;
    }
    if (kill (pid, SIGTERM) && errno != ESRCH)
        return trovectl_fail ("cannot signal supervisor pid %d: %s", (int) pid, strerror (errno));
    int64_t deadline = trove_mono_us () + S_DOWN_TIMEOUT_US;
    while (trovectl_super_alive (pid) || trovectl_super_running (dir) > 0) {
        if (trove_mono_us () >= deadline)
            return trovectl_fail ("supervisor pid %d still running after %d s", (int) pid,
                                  S_DOWN_TIMEOUT_US / 1000000);
        usleep (50000);
    }
    if (opts->json)
        trovectl_print_json (json_pack ("{s:s,s:b,s:b,s:i}", "dir", dir, "running", 1, "stopped", 1,
                                        "supervisor_pid", (int) pid));
    else
        printf ("cluster in %s stopped (supervisor pid %d)\n", dir, (int) pid);
    return 0;
}
