/*  trovectl up - the supervisor of a local cluster: it starts the broker,
    the ingestors, the scorers and their reconcilers (and trove-webhooks
    when the config has a webhooks section), restarts any that
    dies (with backoff) and stops them all on SIGTERM/SIGINT/SIGHUP.

    Files in DIR:
      trovectl.pid      the supervisor's pid; the supervisor holds an flock on
                        it for its whole life, so a stale file (after SIGKILL)
                        is recognized as such.
      pids/NAME.pid     pid of each child, rewritten at every restart.
      logs/NAME.log     stdout and stderr of each child (appended).
      logs/supervisor.log  starts, exits (with status) and restarts.

    Caveats: if the supervisor is killed with SIGKILL its children keep
    running (each is in its own process group). The next `up` finds them
    through DIR/pids (a live pid whose command line names DIR/trove.cfg) and
    stops them before starting new ones. Readiness also checks that the pid
    answering status is the one started, so a stranger on a configured port
    makes `up --detach` fail after 30 s instead of looking ready. */
#include "trovectl_up.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_BACKOFF_MIN_US 100000
#define S_BACKOFF_MAX_US 2000000
#define S_BACKOFF_RESET_US 10000000
#define S_STOP_GRACE_US 5000000

static void s_log (trovectl_super_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));


//  Append a line to DIR/logs/supervisor.log (and stderr in the foreground).
static void
s_log (trovectl_super_t *self, const char *fmt, ...)
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


//  The start of /proc/PID/WHAT into buf (NUL-terminated). Returns the bytes
//  read, or -1 when the file cannot be opened (no such process).
static ssize_t
s_read_proc (pid_t pid, const char *what, char *buf, size_t size)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, what);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (buf, 1, size - 1, file);
    fclose (file);
    buf [n] = 0;
    return (ssize_t) n;
}

//  True when pid is a live (not zombie) process.
bool
trovectl_super_alive (pid_t pid)
{
    if (pid <= 0 || (kill (pid, 0) == -1 && errno == ESRCH))
        return false;
    char buf [512];
    if (s_read_proc (pid, "stat", buf, sizeof buf) < 0)
        return true;
    const char *paren = strrchr (buf, ')');
    return !(paren && paren [1] == ' ' && (paren [2] == 'Z' || paren [2] == 'X'));
}


//  The pid of the supervisor running for dir, or 0 if none. A supervisor
//  holds an exclusive flock on DIR/trovectl.pid.
pid_t
trovectl_super_running (const char *dir)
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
    char self [TROVECTL_DIR_MAX];
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


void
trovectl_super_redirect (const char *log)
{
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
}

//  Start one child. On failure it is scheduled again after its backoff.
static void
s_start (trovectl_super_t *self, trovectl_child_t *child)
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
        trovectl_super_redirect (child->log);
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
s_reap (trovectl_super_t *self, bool restart)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0) {
        trovectl_child_t *child = NULL;
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
s_running_children (trovectl_super_t *self)
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
s_stop_all (trovectl_super_t *self, const sigset_t *set)
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
        trovectl_child_t *child = &self->children [i];
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
int
trovectl_super_wait_ready (const char *dir, const trove_cfg_t *cfg, int64_t timeout_us, pid_t child,
                           int *status_p)
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
    char buf [8192];
    ssize_t got = s_read_proc (pid, "cmdline", buf, sizeof buf);
    if (got < 0)
        return false;
    size_t n = (size_t) got;
    for (size_t at = 0; at < n; at += strlen (buf + at) + 1)
        if (strcmp (buf + at, cfgpath) == 0)
            return true;
    return false;
}


//  Children of a previous supervisor that was killed (SIGKILL) still hold
//  the ports: stop them (SIGTERM, SIGKILL after the grace time).
static void
s_stop_leftovers (trovectl_super_t *self)
{
    for (size_t i = 0; i < self->nchildren; i++) {
        trovectl_child_t *child = &self->children [i];
        pid_t pid = s_child_pid (self->dir, child->name);
        if (pid <= 0 || pid == getpid () || !trovectl_super_alive (pid)
            || !s_uses_config (pid, self->cfgpath))
            continue;
        s_log (self, "%s (pid %d) is left over from a previous supervisor: stopping it", child->name,
               (int) pid);
        kill (pid, SIGTERM);
        int64_t deadline = trove_mono_us () + S_STOP_GRACE_US;
        while (trovectl_super_alive (pid) && trove_mono_us () < deadline)
            usleep (20000);
        if (trovectl_super_alive (pid)) {
            kill (pid, SIGKILL);
            for (int tries = 0; tries < 100 && trovectl_super_alive (pid); tries++)
                usleep (10000);
        }
    }
}


//  Run the children until SIGTERM/SIGINT/SIGHUP. Returns the exit code: 0,
//  1 on error, 3 when another supervisor holds the pid file.
int
trovectl_super_run (trovectl_super_t *self)
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
            trovectl_child_t *child = &self->children [i];
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
                        trovectl_up_report_http (self->cfg, self->dir, obj);
                    trovectl_print_json (obj);
                }
                else {
                    printf ("cluster ready in %s (supervisor pid %d); Ctrl-C stops it\n", self->dir,
                            (int) getpid ());
                    trovectl_up_report_http (self->cfg, self->dir, NULL);
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
int
trovectl_super_plan (trovectl_super_t *self)
{
    const trove_cfg_t *cfg = self->cfg;
    size_t reconcilers = 0;
    for (size_t k = 0; k < trove_cfg_shards (cfg); k++)
        reconcilers += trove_cfg_shard_reconcile (cfg, k) != NULL;
    size_t base = 1 + trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg) + reconcilers;
    //  trove-webhooks last, when the config has a webhooks section.
    self->nchildren = base + (trove_cfg_webhooks (cfg) != NULL);
    self->children = calloc (self->nchildren, sizeof *self->children);
    if (!self->children)
        return -1;
    for (size_t i = 0; i < self->nchildren; i++) {
        trovectl_child_t *child = &self->children [i];
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
        else if (i == base) {
            program = "trove-webhooks";
            snprintf (child->name, sizeof child->name, "webhooks");
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
