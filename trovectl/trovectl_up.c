/*  trovectl up / down - run a local cluster under a supervisor.

    `up` writes DIR/trove.cfg and DIR/rules/demo.yaml (unless they exist: a
    restarted cluster keeps its config and data), then supervises one broker,
    the ingestors and the scorers of the config, restarting any that dies.
    A new config gives each ingestor an HTTP listener (POST /v1/events and
    the GET query API) and source `web` a demo key: the key goes to
    DIR/web.key (0600), only its hash to the config.

    Files in DIR:
      trovectl.pid      the supervisor's pid; the supervisor holds an flock on
                        it for its whole life, so a stale file (after SIGKILL)
                        is recognized as such.
      pids/NAME.pid     pid of each child, rewritten at every restart.
      logs/NAME.log     stdout and stderr of each child (appended).
      logs/supervisor.log  starts, exits (with status) and restarts.
      web.key           the demo key of source `web` (HTTP: Authorization:
                        Bearer KEY), written with a new config.

    Caveats: if the supervisor is killed with SIGKILL its children keep
    running (each is in its own process group). The next `up` finds them
    through DIR/pids (a live pid whose command line names DIR/trove.cfg) and
    stops them before starting new ones. Readiness also checks that the pid
    answering status is the one started, so a stranger on a configured port
    makes `up --detach` fail after 30 s instead of looking ready. */
#include "trovectl.h"
#include "trove_source.h"
#include "trove_curve.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_BACKOFF_MIN_US 100000
#define S_BACKOFF_MAX_US 2000000
#define S_BACKOFF_RESET_US 10000000
#define S_READY_TIMEOUT_US 30000000
#define S_STOP_GRACE_US 5000000
#define S_DOWN_TIMEOUT_US 15000000
//  Longest cluster directory: leaves room for the file names under it.
#define S_DIR_MAX 3072

//  The demo hunt, exactly etc/rules/demo.yaml.
static const char *s_demo_yaml =
    "# Demo hunt used by `trovectl up` and the tests: every event of a type earns coins.\n"
    "hunt: demo\n"
    "version: 1\n"
    "effective: 2020-01-01T00:00:00Z\n"
    "rules:\n"
    "  - id: checkin\n"
    "    kind: each\n"
    "    match: {type: checkin}\n"
    "    coins: 1\n"
    "  - id: visit\n"
    "    kind: each\n"
    "    match: {type: visit}\n"
    "    coins: 2\n"
    "  - id: purchase\n"
    "    kind: each\n"
    "    match: {type: purchase}\n"
    "    coins: 5\n";

static const char *s_up_help =
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

static const char *s_down_help =
    "usage: trovectl down [--dir DIR] [--json]\n"
    "\n"
    "Stop the cluster that `trovectl up` runs in DIR: SIGTERM to its supervisor,\n"
    "then wait (up to 15 s) until it is gone. If none runs, says so and exits 0.\n";

typedef struct {
    char name [64];           //  "broker", "i0", "s0", ...
    char path [PATH_MAX];     //  program to run
    char *argv [6];           //  its arguments (argv [0] = path)
    char option [16];         //  "--name", "--shard" or ""
    char value [64];          //  its value: the process's name, or the reconciler's shard
    char log [PATH_MAX];      //  DIR/logs/NAME.log
    char pidfile [PATH_MAX];  //  DIR/pids/NAME.pid
    pid_t pid;                //  running process, 0 when not running
    int64_t started_us;       //  last start (monotonic)
    int64_t restart_us;       //  when to start again (monotonic)
    int64_t backoff_us;       //  delay before the next restart
} s_child_t;

typedef struct {
    char dir [S_DIR_MAX];     //  absolute cluster directory
    char cfgpath [PATH_MAX];  //  DIR/trove.cfg
    char pidpath [PATH_MAX];  //  DIR/trovectl.pid
    const trove_cfg_t *cfg;   //  the cluster
    s_child_t *children;      //  broker, ingestors, scorers
    size_t nchildren;         //  number of children
    bool foreground;          //  also report on stderr/stdout
    bool json;                //  --json
} s_super_t;

static void s_log (s_super_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void s_report_http (const trove_cfg_t *cfg, const char *dir, json_t *obj);

//  Append a line to DIR/logs/supervisor.log (and stderr in the foreground).
static void
s_log (s_super_t *self, const char *fmt, ...)
{
    char message [1024], stamp [40], path [PATH_MAX + 32];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    trove_format_rfc3339 (trove_now_ms (), stamp, sizeof stamp);
    snprintf (path, sizeof path, "%s/logs/supervisor.log", self->dir);
    FILE *file = fopen (path, "a");
    if (file) {
        fprintf (file, "%s %s\n", stamp, message);
        fclose (file);
    }
    if (self->foreground && !self->json)
        fprintf (stderr, "%s %s\n", stamp, message);
}

//  Print a JSON value as one line and take it.
static void
s_print_json (json_t *value)
{
    char *text = json_dumps (value, JSON_COMPACT);
    if (text)
        puts (text);
    free (text);
    json_decref (value);
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

//  Write a whole file atomically (temporary file, then rename), 0600: the
//  config and the hunts are the cluster's own. 0 or -1.
static int
s_write_file (const char *path, const char *text)
{
    char tmp [PATH_MAX + 16];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *file = fd >= 0 && fchmod (fd, 0600) == 0 ? fdopen (fd, "w") : NULL;
    if (!file) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    bool ok = fputs (text, file) >= 0;
    ok = fflush (file) == 0 && ok;
    ok = fsync (fileno (file)) == 0 && ok;
    ok = fclose (file) == 0 && ok;
    if (!ok || rename (tmp, path)) {
        unlink (tmp);
        return -1;
    }
    return 0;
}

//  Write a secret file atomically, mode 0600 from its creation. 0 or -1.
static int
s_write_secret (const char *path, const char *text)
{
    char tmp [PATH_MAX + 16];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1)
        return -1;
    size_t len = strlen (text);
    bool ok = fchmod (fd, 0600) == 0 && write (fd, text, len) == (ssize_t) len;
    ok = fsync (fd) == 0 && ok;
    ok = close (fd) == 0 && ok;
    if (!ok || rename (tmp, path)) {
        unlink (tmp);
        return -1;
    }
    return 0;
}

//  True when pid is a live (not zombie) process.
static bool
s_alive (pid_t pid)
{
    if (pid <= 0 || (kill (pid, 0) == -1 && errno == ESRCH))
        return false;
    char path [64], buf [512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return true;
    size_t n = fread (buf, 1, sizeof buf - 1, file);
    fclose (file);
    buf [n] = 0;
    const char *paren = strrchr (buf, ')');
    return !(paren && paren [1] == ' ' && (paren [2] == 'Z' || paren [2] == 'X'));
}

//  The pid of the supervisor running for dir, or 0 if none. A supervisor
//  holds an exclusive flock on DIR/trovectl.pid.
static pid_t
s_running (const char *dir)
{
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/trovectl.pid", dir);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    pid_t pid = 0;
    if (flock (fd, LOCK_SH | LOCK_NB) == 0)
        flock (fd, LOCK_UN);  //  nobody holds it: stale
    else
        //  held; the pid may be a moment late after the lock
        for (int tries = 0; tries < 50 && pid <= 0; tries++) {
            char buf [32] = "";
            ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf [n] = 0;
                pid = (pid_t) atol (buf);
            }
            if (pid <= 0)
                usleep (10000);
        }
    close (fd);
    return pid > 0 ? pid : 0;
}

//  Program `name` next to our own executable, else `name` (searched in PATH).
static void
s_find_program (const char *name, char *out, size_t size)
{
    char self [S_DIR_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self [n] = 0;
        char *slash = strrchr (self, '/');
        if (slash) {
            *slash = 0;
            snprintf (out, size, "%s/%s", self, name);
            if (access (out, X_OK) == 0)
                return;
        }
    }
    snprintf (out, size, "%s", name);
}

//  The config of a new cluster, in the format of etc/trove.cfg; web_hash is
//  the hash of source web's demo key; curve_key the public key of DIR/curve's
//  certificate when CURVE is on, else NULL. Caller frees.
static char *
s_config_text (const char *dir, long base, long shards, long ingestors, const char *sync,
               const char *web_hash, const char *curve_key)
{
    //  One host, one certificate: every process serves and connects with it.
    char broker_line [96] = "", key_line [96] = "", reconcile_line [96] = "";
    if (curve_key) {
        snprintf (broker_line, sizeof broker_line, "    curve_key = \"%s\"\n", curve_key);
        snprintf (key_line, sizeof key_line, "        curve_key = \"%s\"\n", curve_key);
        snprintf (reconcile_line, sizeof reconcile_line, "        reconcile_key = \"%s\"\n", curve_key);
    }
    //  Every section may name dir twice.
    size_t size = 8192 + (size_t) (shards + ingestors + 2) * (512 + 2 * strlen (dir));
    char *text = malloc (size);
    if (!text)
        return NULL;
    size_t used = 0;
#define S_ADD(...) used += (size_t) snprintf (text + used, size - used, __VA_ARGS__)
    S_ADD ("#   Trove cluster configuration (ZPL: ZeroMQ Property Language, indent 4 spaces).\n"
           "#   Written by `trovectl up`; every process of the cluster reads this file: the\n"
           "#   shard map and the endpoints below are the single source of truth. See\n"
           "#   etc/trove.cfg for what each knob means.\n"
           "trove\n"
           "    #   Number of partitions; fixed when the cluster is created.\n"
           "    partitions = 256\n"
           "    #   Directory of hunt files (*.yaml), one per hunt.\n"
           "    rules = \"%s/rules\"\n"
           "    #   LMDB map size per scorer, MiB.\n"
           "    map_size_mb = 4096\n"
           "    #   full: fsync every commit (survives process kill, OS crash, power loss).\n"
           "    #   none: no fsync (survives a process kill only).\n"
           "    sync = %s\n"
           "%s"
           "\n"
           "limits\n"
           "    #   Events per submit request; frame size limit (bytes) on every socket.\n"
           "    max_batch = 1000\n"
           "    max_frame = 1048576\n"
           "    max_attrs = 32\n"
           "    #   How far ts may be before / after the receiving ingestor's clock (seconds).\n"
           "    max_past_s = 31622400\n"
           "    max_future_s = 300\n"
           "\n"
           "#   Sources allowed to submit events. HTTP (POST /v1/events, the GET query\n"
           "#   API) needs a key of a source: the config holds only its hash\n"
           "#   (docs/security.md, trove-ingestor --new-key).\n"
           "sources\n"
           "    web\n"
           "        #   the demo key is in web.key, next to this file; after its hash, what\n"
           "        #   it may do (scopes, docs/security.md)\n"
           "        keys = \"%s=events:write+users:read+boards:read\"\n"
           "    mobile\n"
           "    game\n"
           "    partner\n"
           "    load\n"
           "\n"
           "broker\n"
           "    #   Scorers publish awards and heartbeats to `pub` (XSUB);\n"
           "    #   subscribers connect to `sub` (XPUB); `control` answers status.\n"
           "    pub = \"tcp://127.0.0.1:%ld\"\n"
           "    sub = \"tcp://127.0.0.1:%ld\"\n"
           "    control = \"tcp://127.0.0.1:%ld\"\n"
           "    #   Prometheus /metrics of each process (plain HTTP, loopback).\n"
           "    metrics = \"127.0.0.1:%ld\"\n"
           "%s"
           "\n"
           "ingestor\n",
           dir, sync,
           curve_key ? "    #   CURVE on every ZeroMQ link (docs/security.md); certificates in curve/\n"
                       "    curve = yes\n"
                       "\n"
                       "curve\n"
                       "    cert = \"curve/host.cert\"\n"
                       "    peers = \"curve/peers\"\n"
                       "    #   trovectl presents this one: role operator (control operations)\n"
                       "    operator = \"curve/operator.cert\"\n"
                     : "",
           web_hash, base + 1, base + 2, base + 3, base + 200, broker_line);
    for (long k = 0; k < ingestors; k++)
        S_ADD ("    i%ld\n"
               "        endpoint = \"tcp://127.0.0.1:%ld\"\n"
               "        metrics = \"127.0.0.1:%ld\"\n"
               "        #   HTTP: POST /v1/events and the GET query API (source keys)\n"
               "        http = \"127.0.0.1:%ld\"\n"
               "%s",
               k, base + 10 + k, base + 210 + k, base + 250 + k, key_line);
    S_ADD ("\nscorer\n");
    for (long k = 0; k < shards; k++)
        S_ADD ("    s%ld\n"
               "        events = \"tcp://127.0.0.1:%ld\"\n"
               "        query = \"tcp://127.0.0.1:%ld\"\n"
               "        partitions = \"%ld-%ld\"\n"
               "        data = \"%s/data/s%ld\"\n"
               "        metrics = \"127.0.0.1:%ld\"\n"
               "        #   its reconciler (trove-reconciler --shard s%ld)\n"
               "        replica = \"%s/data/r%ld\"\n"
               "        reconcile = \"tcp://127.0.0.1:%ld\"\n"
               "        reconcile_every_s = 60\n"
               "%s%s",
               k, base + 20 + 2 * k, base + 21 + 2 * k, k * 256 / shards, (k + 1) * 256 / shards - 1, dir, k,
               base + 230 + k, k, dir, k, base + 60 + k, key_line, reconcile_line);
#undef S_ADD
    return text;
}

//  A new certificate DIR/curve/NAME.cert (+ _secret) of role, admitted in
//  DIR/curve/peers. Returns its public key (caller frees), or NULL after
//  printing the error.
static char *
s_curve_cert (const char *dir, const char *name, const char *role)
{
    char folder [PATH_MAX], cert [PATH_MAX + 32], peer [PATH_MAX + 32];
    snprintf (folder, sizeof folder, "%s/curve/peers", dir);
    if (trove_mkdir_p (folder, 0700)) {
        trovectl_fail ("cannot create %s: %s", folder, strerror (errno));
        return NULL;
    }
    snprintf (cert, sizeof cert, "%s/curve/%s.cert", dir, name);
    snprintf (peer, sizeof peer, "%s/curve/peers/%s.cert", dir, name);
    char *err = NULL;
    char *key = trove_curve_keygen (cert, name, role, NULL, &err);
    FILE *in = key ? fopen (cert, "r") : NULL;
    char text [4096];
    size_t size = in ? fread (text, 1, sizeof text - 1, in) : 0;
    if (in)
        fclose (in);
    text [size] = 0;
    if (key && (size == 0 || s_write_file (peer, text))) {
        err = trove_strdupf ("cannot copy %s to %s", cert, peer);
        free (key);
        key = NULL;
    }
    if (!key)
        trovectl_fail ("up (CURVE): %s", err ? err : "out of memory");
    free (err);
    return key;
}

//  The certificates of a local cluster: the host's (every daemon, role
//  daemon) and the operator's (trovectl). Returns the host's public key
//  (caller frees), or NULL after printing the error.
static char *
s_curve_certs (const char *dir)
{
    char *op = s_curve_cert (dir, "operator", "operator");
    if (!op)
        return NULL;
    free (op);
    return s_curve_cert (dir, "host", "daemon");
}

//  Write the pid of a child, atomically.
static void
s_write_pid (const char *path, pid_t pid)
{
    char text [32];
    snprintf (text, sizeof text, "%d\n", (int) pid);
    char tmp [PATH_MAX + 16];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1)
        return;
    bool ok = write (fd, text, strlen (text)) == (ssize_t) strlen (text);
    close (fd);
    if (!ok || rename (tmp, path))
        unlink (tmp);
}

//  Start one child. On failure it is scheduled again after its backoff.
static void
s_start (s_super_t *self, s_child_t *child)
{
    //  Everything the child needs is prepared before fork: between fork and
    //  exec it makes async-signal-safe calls only.
    char failed [PATH_MAX + 64];
    int failed_len = snprintf (failed, sizeof failed, "trovectl: cannot run %s\n", child->path);
    bool search = strchr (child->path, '/') == NULL;
    sigset_t none;
    sigemptyset (&none);
    pid_t pid = fork ();
    if (pid == 0) {
        setpgid (0, 0);  //  the terminal's SIGINT is for the supervisor
        signal (SIGPIPE, SIG_DFL);
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        sigprocmask (SIG_SETMASK, &none, NULL);
        int null = open ("/dev/null", O_RDONLY);
        int log = open (child->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (null >= 0)
            dup2 (null, 0);
        if (log >= 0) {
            dup2 (log, 1);
            dup2 (log, 2);
        }
        if (close_range (3, ~0U, 0))
            for (int fd = 3; fd < 4096; fd++)
                close (fd);
        if (chdir (self->dir)) {
            //  paths in the config are absolute when we wrote it
        }
        if (search)
            execvp (child->path, child->argv);
        else
            execv (child->path, child->argv);
        if (write (2, failed, (size_t) failed_len) < 0) {
            //  nothing more we can do
        }
        _exit (127);
    }
    int64_t now = trove_mono_us ();
    if (pid < 0) {
        s_log (self, "%s: fork failed: %s; retrying in %lld ms", child->name, strerror (errno),
               (long long) (child->backoff_us / 1000));
        child->restart_us = now + child->backoff_us;
        return;
    }
    child->pid = pid;
    child->started_us = now;
    s_write_pid (child->pidfile, pid);
    char line [PATH_MAX * 2] = "";
    size_t used = 0;
    for (int i = 0; child->argv [i] && used < sizeof line; i++)
        used += (size_t) snprintf (line + used, sizeof line - used, "%s%s", i ? " " : "", child->argv [i]);
    s_log (self, "%s started, pid %d: %s", child->name, (int) pid, line);
}

static void
s_describe (int status, char *buf, size_t size)
{
    if (WIFEXITED (status))
        snprintf (buf, size, "exited with status %d", WEXITSTATUS (status));
    else if (WIFSIGNALED (status))
        snprintf (buf, size, "killed by signal %d (%s)", WTERMSIG (status), strsignal (WTERMSIG (status)));
    else
        snprintf (buf, size, "ended with wait status 0x%x", status);
}

//  Collect exited children; if restart, schedule them again with backoff.
static void
s_reap (s_super_t *self, bool restart)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0) {
        s_child_t *child = NULL;
        for (size_t i = 0; i < self->nchildren; i++)
            if (self->children [i].pid == pid)
                child = &self->children [i];
        if (!child)
            continue;
        int64_t now = trove_mono_us ();
        int64_t up_us = now - child->started_us;
        char how [128];
        s_describe (status, how, sizeof how);
        child->pid = 0;
        if (!restart) {
            s_log (self, "%s (pid %d) %s", child->name, (int) pid, how);
            continue;
        }
        if (up_us >= S_BACKOFF_RESET_US)
            child->backoff_us = S_BACKOFF_MIN_US;
        int64_t delay = child->backoff_us;
        child->backoff_us = delay * 2 > S_BACKOFF_MAX_US ? S_BACKOFF_MAX_US : delay * 2;
        child->restart_us = now + delay;
        s_log (self, "%s (pid %d) %s after %.1f s; restarting in %lld ms", child->name, (int) pid, how,
               up_us / 1e6, (long long) (delay / 1000));
    }
}

static size_t
s_running_children (s_super_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nchildren; i++)
        if (self->children [i].pid > 0)
            n++;
    return n;
}

//  Wait for a signal in set up to ms milliseconds; returns it or 0.
static int
s_wait_signal (const sigset_t *set, long ms)
{
    struct timespec timeout = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait (set, NULL, &timeout);
    return sig > 0 ? sig : 0;
}

//  SIGTERM to every child, SIGKILL to those still there after the grace time.
static void
s_stop_all (s_super_t *self, const sigset_t *set)
{
    for (size_t i = 0; i < self->nchildren; i++)
        if (self->children [i].pid > 0)
            kill (self->children [i].pid, SIGTERM);
    int64_t deadline = trove_mono_us () + S_STOP_GRACE_US;
    while (s_running_children (self) && trove_mono_us () < deadline) {
        s_wait_signal (set, 50);
        s_reap (self, false);
    }
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children [i];
        if (child->pid > 0) {
            s_log (self, "%s (pid %d) still running after %d s: SIGKILL", child->name, (int) child->pid,
                   S_STOP_GRACE_US / 1000000);
            kill (child->pid, SIGKILL);
            int status;
            if (waitpid (child->pid, &status, 0) == child->pid) {
                char how [128];
                s_describe (status, how, sizeof how);
                s_log (self, "%s (pid %d) %s", child->name, (int) child->pid, how);
            }
            child->pid = 0;
        }
    }
}

//  The pid in DIR/pids/NAME.pid, or 0.
static pid_t
s_child_pid (const char *dir, const char *name)
{
    char path [PATH_MAX + 64], buf [32] = "";
    snprintf (path, sizeof path, "%s/pids/%s.pid", dir, name);
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    if (!fgets (buf, sizeof buf, file))
        buf [0] = 0;
    fclose (file);
    return (pid_t) atol (buf);
}

//  True when every process answered status and, where it tells its pid, is
//  the process the supervisor started (not a stranger on the same port).
static bool
s_all_ours (const char *dir, const trovectl_proc_t *procs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const Trove__QueryReply *reply = procs [i].reply;
        if (!reply || (reply->error && *reply->error))
            return false;
        if (reply->status && reply->status->pid && reply->status->pid != s_child_pid (dir, procs [i].name))
            return false;
    }
    return true;
}

//  Ask every process for status until all answer or timeout_us passes; if
//  child is given, stop early when that process exits. Returns 0 when ready,
//  -1 on timeout, 1 if the child exited (*status_p set).
static int
s_wait_ready (const char *dir, const trove_cfg_t *cfg, int64_t timeout_us, pid_t child, int *status_p)
{
    size_t count = 0;
    trovectl_proc_t *procs = trovectl_procs (cfg, &count);
    if (!procs)
        return -1;
    int rc = -1;
    int64_t deadline = trove_mono_us () + timeout_us;
    while (trove_mono_us () < deadline) {
        if (child > 0 && waitpid (child, status_p, WNOHANG) == child) {
            rc = 1;
            break;
        }
        if (trovectl_probe (cfg, procs, count, 300, 0) < 0)
            break;
        if (s_all_ours (dir, procs, count)) {
            rc = 0;
            break;
        }
        usleep (100000);
    }
    trovectl_procs_free (&procs, count);
    return rc;
}

//  True when process pid was started with our config (its command line
//  holds cfgpath as one argument).
static bool
s_uses_config (pid_t pid, const char *cfgpath)
{
    char path [64], buf [8192];
    snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    size_t n = fread (buf, 1, sizeof buf - 1, file);
    fclose (file);
    buf [n] = 0;
    for (size_t at = 0; at < n; at += strlen (buf + at) + 1)
        if (strcmp (buf + at, cfgpath) == 0)
            return true;
    return false;
}

//  Children of a previous supervisor that was killed (SIGKILL) still hold
//  the ports: stop them (SIGTERM, SIGKILL after the grace time).
static void
s_stop_leftovers (s_super_t *self)
{
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children [i];
        pid_t pid = s_child_pid (self->dir, child->name);
        if (pid <= 0 || pid == getpid () || !s_alive (pid) || !s_uses_config (pid, self->cfgpath))
            continue;
        s_log (self, "%s (pid %d) is left over from a previous supervisor: stopping it", child->name,
               (int) pid);
        kill (pid, SIGTERM);
        int64_t deadline = trove_mono_us () + S_STOP_GRACE_US;
        while (s_alive (pid) && trove_mono_us () < deadline)
            usleep (20000);
        if (s_alive (pid)) {
            kill (pid, SIGKILL);
            for (int tries = 0; tries < 100 && s_alive (pid); tries++)
                usleep (10000);
        }
    }
}

//  Run the children until SIGTERM/SIGINT/SIGHUP. Returns the exit code: 0,
//  1 on error, 3 when another supervisor holds the pid file.
static int
s_supervise (s_super_t *self)
{
    sigset_t set, old;
    sigemptyset (&set);
    sigaddset (&set, SIGCHLD);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGHUP);
    //  Blocked before any thread exists, so every signal waits for sigtimedwait.
    sigprocmask (SIG_BLOCK, &set, &old);
    int rc = 1;
    int fd = open (self->pidpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        s_log (self, "cannot open %s: %s", self->pidpath, strerror (errno));
        goto fail;
    }
    int locked = -1;
    for (int tries = 0; tries < 20 && locked; tries++) {
        locked = flock (fd, LOCK_EX | LOCK_NB);
        if (locked)
            usleep (20000);
    }
    if (locked) {
        s_log (self, "another supervisor runs for %s", self->dir);
        rc = 3;
        goto fail;
    }
    char text [32];
    snprintf (text, sizeof text, "%d\n", (int) getpid ());
    if (ftruncate (fd, 0) || pwrite (fd, text, strlen (text), 0) != (ssize_t) strlen (text)) {
        s_log (self, "cannot write %s: %s", self->pidpath, strerror (errno));
        goto fail;
    }
    s_log (self, "supervisor pid %d: %zu processes, config %s", (int) getpid (), self->nchildren,
           self->cfgpath);
    s_stop_leftovers (self);
    for (size_t i = 0; i < self->nchildren; i++)
        s_start (self, &self->children [i]);
    bool ready = !self->foreground;  //  with --detach the parent waits for it
    int64_t next_probe = trove_mono_us () + 200000;
    size_t count = 0;
    trovectl_proc_t *procs = self->foreground ? trovectl_procs (self->cfg, &count) : NULL;
    int sig = 0;
    while (true) {
        sig = s_wait_signal (&set, 100);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            break;
        s_reap (self, true);
        int64_t now = trove_mono_us ();
        for (size_t i = 0; i < self->nchildren; i++) {
            s_child_t *child = &self->children [i];
            if (child->pid == 0 && child->restart_us <= now)
                s_start (self, child);
        }
        if (!ready && procs && now >= next_probe) {
            trovectl_probe (self->cfg, procs, count, 300, 0);
            if (s_all_ours (self->dir, procs, count)) {
                ready = true;
                if (self->json) {
                    json_t *obj = json_pack ("{s:s,s:i,s:b}", "dir", self->dir, "supervisor_pid",
                                             (int) getpid (), "ready", 1);
                    if (obj)
                        s_report_http (self->cfg, self->dir, obj);
                    s_print_json (obj);
                }
                else {
                    printf ("cluster ready in %s (supervisor pid %d); Ctrl-C stops it\n", self->dir,
                            (int) getpid ());
                    s_report_http (self->cfg, self->dir, NULL);
                }
                fflush (stdout);
                s_log (self, "cluster ready");
            }
            next_probe = trove_mono_us () + 200000;
        }
    }
    trovectl_procs_free (&procs, count);
    s_log (self, "received %s: stopping", strsignal (sig));
    s_stop_all (self, &set);
    for (size_t i = 0; i < self->nchildren; i++)
        unlink (self->children [i].pidfile);
    s_log (self, "supervisor stopped");
    unlink (self->pidpath);
    rc = 0;
fail:
    if (fd != -1)
        close (fd);  //  releases the lock
    sigprocmask (SIG_SETMASK, &old, NULL);
    return rc;
}

//  Fill self->children from the config.
static int
s_plan (s_super_t *self)
{
    const trove_cfg_t *cfg = self->cfg;
    size_t reconcilers = 0;
    for (size_t k = 0; k < trove_cfg_shards (cfg); k++)
        reconcilers += trove_cfg_shard_reconcile (cfg, k) != NULL;
    self->nchildren = 1 + trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg) + reconcilers;
    self->children = calloc (self->nchildren, sizeof *self->children);
    if (!self->children)
        return -1;
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children [i];
        const char *program;
        if (i == 0) {
            program = "trove-broker";
            snprintf (child->name, sizeof child->name, "broker");
        }
        else if (i <= trove_cfg_ingestors (cfg)) {
            program = "trove-ingestor";
            snprintf (child->option, sizeof child->option, "--name");
            snprintf (child->name, sizeof child->name, "%s", trove_cfg_ingestor_name (cfg, i - 1));
        }
        else if (i <= trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg)) {
            program = "trove-scorer";
            snprintf (child->option, sizeof child->option, "--shard");
            snprintf (child->name, sizeof child->name, "%s",
                      trove_cfg_shard_name (cfg, i - 1 - trove_cfg_ingestors (cfg)));
        }
        else {
            //  The reconcilers, in shard order, of the shards that have one.
            size_t nth = i - 1 - trove_cfg_ingestors (cfg) - trove_cfg_shards (cfg), k = 0;
            for (size_t seen = 0; k < trove_cfg_shards (cfg); k++)
                if (trove_cfg_shard_reconcile (cfg, k) && seen++ == nth)
                    break;
            program = "trove-reconciler";
            snprintf (child->option, sizeof child->option, "--shard");
            snprintf (child->value, sizeof child->value, "%s", trove_cfg_shard_name (cfg, k));
            snprintf (child->name, sizeof child->name, "r%s", trove_cfg_shard_name (cfg, k));
        }
        if (!*child->value)
            snprintf (child->value, sizeof child->value, "%s", child->name);
        s_find_program (program, child->path, sizeof child->path);
        snprintf (child->log, sizeof child->log, "%s/logs/%s.log", self->dir, child->name);
        snprintf (child->pidfile, sizeof child->pidfile, "%s/pids/%s.pid", self->dir, child->name);
        child->argv [0] = child->path;
        child->argv [1] = "--config";
        child->argv [2] = self->cfgpath;
        child->argv [3] = *child->option ? child->option : NULL;
        child->argv [4] = *child->option ? child->value : NULL;
        child->argv [5] = NULL;
        child->backoff_us = S_BACKOFF_MIN_US;
    }
    return 0;
}

//  DIR/web.key, the demo key of source web, into path; false when absent.
static bool
s_key_file (const char *dir, char *path, size_t size)
{
    snprintf (path, size, "%s/web.key", dir);
    return s_exists (path);
}

//  Where the ingestors serve HTTP and the demo key, for people (lines on
//  stdout) or scripts (fields "http": [URL, ...], "key_file" set in obj).
static void
s_report_http (const trove_cfg_t *cfg, const char *dir, json_t *obj)
{
    char keyfile [PATH_MAX];
    bool key = s_key_file (dir, keyfile, sizeof keyfile);
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
            s_report_http (cfg, dir, obj);
        s_print_json (obj);
        return;
    }
    if (already)
        printf ("cluster in %s is already running (supervisor pid %d) and ready\n", dir, (int) pid);
    else
        printf ("cluster up in %s (supervisor pid %d)\n", dir, (int) pid);
    s_report_http (cfg, dir, NULL);
}

int
trovectl_up (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir json detach port-base shards ingestors sync curve insecure", &opts))
        return 1;
    if (opts.help) {
        fputs (s_up_help, stdout);
        return 0;
    }
    if (opts.nargs)
        return trovectl_fail ("up: unexpected argument '%s' (see trovectl up --help)", opts.args [0]);
    long base = opts.port_base < 0 ? 7400 : opts.port_base;
    long shards = opts.shards < 0 ? 2 : opts.shards;
    long ingestors = opts.ingestors < 0 ? 1 : opts.ingestors;
    const char *sync = opts.sync ? opts.sync : "full";
    //  20 shards fill the port layout (scorer k at P+20+2k up to P+59, its
    //  reconciler from P+60, its /metrics P+230+k below the HTTP ports).
    if (shards < 1 || shards > 20)
        return trovectl_fail ("up: --shards %ld: want 1 to 20 (the port layout of a local cluster)", shards);
    if (ingestors < 1 || ingestors > 10)
        return trovectl_fail ("up: --ingestors %ld: want 1 to 10", ingestors);
    if (base < 1024 || base + 300 > 65535)
        return trovectl_fail ("up: --port-base %ld: ports would leave 1024-65535", base);
    if (strcmp (sync, "full") && strcmp (sync, "none"))
        return trovectl_fail ("up: --sync '%s': want full or none", sync);
    if (opts.curve && opts.insecure)
        return trovectl_fail ("up: --curve and --insecure contradict each other");

    int rc = 1;
    trove_cfg_t *cfg = NULL;
    s_super_t super;
    memset (&super, 0, sizeof super);
    super.json = opts.json;
    const char *dir = trovectl_dir (opts.dir);
    char absolute [PATH_MAX];
    if (trove_mkdir_p (dir, 0700) || !realpath (dir, absolute)) {
        trovectl_fail ("cannot create %s: %s", dir, strerror (errno));
        goto fail;
    }
    if (strlen (absolute) >= sizeof super.dir) {
        trovectl_fail ("directory name too long: %s", absolute);
        goto fail;
    }
    memcpy (super.dir, absolute, strlen (absolute) + 1);
    const char *subdirs [] = {"logs", "pids", "rules", "data"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs [0]; i++) {
        char path [PATH_MAX + 16];
        snprintf (path, sizeof path, "%s/%s", super.dir, subdirs [i]);
        //  Logs, pids, hunts and ledgers are the cluster owner's only, also
        //  when an older trovectl made them 0755.
        if (trove_mkdir_p (path, 0700) || chmod (path, 0700)) {
            trovectl_fail ("cannot create %s: %s", path, strerror (errno));
            goto fail;
        }
    }
    snprintf (super.cfgpath, sizeof super.cfgpath, "%s/trove.cfg", super.dir);
    snprintf (super.pidpath, sizeof super.pidpath, "%s/trovectl.pid", super.dir);
    if (!s_exists (super.cfgpath)) {
        //  A new cluster: a new demo key for source web, the config gets its hash.
        char key [80], hash [TROVE_SOURCE_HASH_SIZE], keyfile [PATH_MAX], line [96];
        trove_source_key_new (key);
        trove_source_key_hash (key, strlen (key), hash);
        snprintf (line, sizeof line, "%s\n", key);
        s_key_file (super.dir, keyfile, sizeof keyfile);
        bool written = s_write_secret (keyfile, line) == 0;
        explicit_bzero (key, sizeof key);
        explicit_bzero (line, sizeof line);
        if (!written) {
            trovectl_fail ("cannot write %s: %s", keyfile, strerror (errno));
            goto fail;
        }
        char *curve_key = NULL;
        if (!opts.insecure && !(curve_key = s_curve_certs (super.dir)))
            goto fail;
        char *text = s_config_text (super.dir, base, shards, ingestors, sync, hash, curve_key);
        free (curve_key);
        if (!text || s_write_file (super.cfgpath, text)) {
            free (text);
            trovectl_fail ("cannot write %s: %s", super.cfgpath, strerror (errno));
            goto fail;
        }
        free (text);
    }
    else if (opts.port_base >= 0 || opts.shards >= 0 || opts.ingestors >= 0 || opts.sync || opts.curve
             || opts.insecure)
        fprintf (stderr, "trovectl: note: %s exists; layout options are ignored\n", super.cfgpath);
    char rules [PATH_MAX + 32];
    snprintf (rules, sizeof rules, "%s/rules/demo.yaml", super.dir);
    if (!s_exists (rules) && s_write_file (rules, s_demo_yaml)) {
        trovectl_fail ("cannot write %s: %s", rules, strerror (errno));
        goto fail;
    }
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

    pid_t running = s_running (super.dir);
    if (running > 0) {
        if (s_wait_ready (super.dir, cfg, S_READY_TIMEOUT_US, 0, NULL)) {
            trovectl_fail ("cluster in %s is already running (supervisor pid %d) but not ready "
                           "after 30 s (see trovectl status)",
                           super.dir, (int) running);
            goto fail;
        }
        s_report_up (opts.json, cfg, super.dir, running, true);
        rc = 0;
        goto fail;
    }
    if (s_plan (&super)) {
        trovectl_fail ("out of memory");
        goto fail;
    }
    if (!opts.detach) {
        super.foreground = true;
        rc = s_supervise (&super);
        if (rc == 3)
            rc = trovectl_fail ("another supervisor started for %s meanwhile", super.dir);
        goto fail;
    }
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0) {
        trovectl_fail ("fork: %s", strerror (errno));
        goto fail;
    }
    if (pid == 0) {
        //  The supervisor: its own session, no terminal, output to its log.
        setsid ();
        char log [PATH_MAX + 32];
        snprintf (log, sizeof log, "%s/logs/supervisor.log", super.dir);
        int null = open ("/dev/null", O_RDWR);
        int fd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (null >= 0)
            dup2 (null, 0);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
        }
        if (close_range (3, ~0U, 0))
            for (int i = 3; i < 4096; i++)
                close (i);
        int code = s_supervise (&super);
        free (super.children);
        trove_cfg_destroy (&cfg);
        //  not exit (): nothing of the parent's atexit state is ours
        _exit (code);
    }
    int status = 0;
    int ready = s_wait_ready (super.dir, cfg, S_READY_TIMEOUT_US, pid, &status);
    if (ready == 1 && WIFEXITED (status) && WEXITSTATUS (status) == 3) {
        //  another `up` won the race: behave as if it had been running
        running = s_running (super.dir);
        if (running > 0 && s_wait_ready (super.dir, cfg, S_READY_TIMEOUT_US, 0, NULL) == 0) {
            s_report_up (opts.json, cfg, super.dir, running, true);
            rc = 0;
        }
        else
            trovectl_fail ("another supervisor runs for %s but the cluster is not ready", super.dir);
        goto fail;
    }
    if (ready == 1) {
        trovectl_fail ("the supervisor exited (status %d); see %s/logs/supervisor.log",
                       WIFEXITED (status) ? WEXITSTATUS (status) : -1, super.dir);
        goto fail;
    }
    if (ready < 0) {
        trovectl_fail ("cluster in %s not ready after 30 s (supervisor pid %d still runs; "
                       "see trovectl status, %s/logs, trovectl down)",
                       super.dir, (int) pid, super.dir);
        goto fail;
    }
    s_report_up (opts.json, cfg, super.dir, pid, false);
    rc = 0;
fail:
    free (super.children);
    trove_cfg_destroy (&cfg);
    return rc;
}

int
trovectl_down (int argc, char **argv)
{
    trovectl_opts_t opts;
    if (trovectl_parse (argc, argv, "dir json", &opts))
        return 1;
    if (opts.help) {
        fputs (s_down_help, stdout);
        return 0;
    }
    if (opts.nargs)
        return trovectl_fail ("down: unexpected argument '%s' (see trovectl down --help)", opts.args [0]);
    const char *dir = trovectl_dir (opts.dir);
    pid_t pid = s_running (dir);
    if (pid <= 0) {
        if (opts.json)
            s_print_json (json_pack ("{s:s,s:b}", "dir", dir, "running", 0));
        else
            printf ("no cluster running in %s\n", dir);
        return 0;
    }
    if (kill (pid, SIGTERM) && errno != ESRCH)
        return trovectl_fail ("cannot signal supervisor pid %d: %s", (int) pid, strerror (errno));
    int64_t deadline = trove_mono_us () + S_DOWN_TIMEOUT_US;
    while (s_alive (pid) || s_running (dir) > 0) {
        if (trove_mono_us () >= deadline)
            return trovectl_fail ("supervisor pid %d still running after %d s", (int) pid,
                                  S_DOWN_TIMEOUT_US / 1000000);
        usleep (50000);
    }
    if (opts.json)
        s_print_json (json_pack ("{s:s,s:b,s:b,s:i}", "dir", dir, "running", 1, "stopped", 1,
                                 "supervisor_pid", (int) pid));
    else
        printf ("cluster in %s stopped (supervisor pid %d)\n", dir, (int) pid);
    return 0;
}
