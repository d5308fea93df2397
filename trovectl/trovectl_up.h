/*  trovectl up / down - internal interface between the files of `up`: the
    files of a local cluster (trovectl_layout.c), its supervisor
    (trovectl_super.c) and the commands (trovectl_up.c). */
#ifndef TROVECTL_UP_H_INCLUDED
#define TROVECTL_UP_H_INCLUDED

#include "trovectl.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

//  Longest cluster directory: leaves room for the file names under it.
#define TROVECTL_DIR_MAX 3072

//  ---------------------------------------------------------------------------
//  The files of a cluster (trovectl_layout.c). Each returns 0, or -1 after
//  printing a one-line error.

//  Make dir and its logs, pids, rules and data (0700); its absolute path
//  into absolute (TROVECTL_DIR_MAX bytes).
int trovectl_layout_dirs (const char *dir, char *absolute);
//  A new cluster in dir: the demo key of source web in DIR/web.key (0600;
//  the config gets its hash), the CURVE certificates in DIR/curve unless
//  insecure, and the config at cfgpath for this port layout.
int trovectl_layout_new (const char *dir, const char *cfgpath, long base, long shards, long ingestors,
                         const char *sync, bool insecure);
//  DIR/rules/demo.yaml (etc/rules/demo.yaml) unless it exists.
int trovectl_layout_demo_rules (const char *dir);
//  DIR/web.key, the demo key of source web, into path; false when absent.
bool trovectl_layout_key_file (const char *dir, char *path, size_t size);
//  True when path exists.
bool trovectl_layout_exists (const char *path);

//  ---------------------------------------------------------------------------
//  The supervisor (trovectl_super.c)


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
} trovectl_child_t;


typedef struct {
    char dir [TROVECTL_DIR_MAX];  //  absolute cluster directory
    char cfgpath [PATH_MAX];      //  DIR/trove.cfg
    char pidpath [PATH_MAX];      //  DIR/trovectl.pid
    const trove_cfg_t *cfg;       //  the cluster
    trovectl_child_t *children;   //  broker, ingestors, scorers
    size_t nchildren;             //  number of children
    bool foreground;              //  also report on stderr/stdout
    bool json;                    //  --json
} trovectl_super_t;

//  Fill self->children (free them) from self->cfg. 0, or -1 on OOM.
int trovectl_super_plan (trovectl_super_t *self);
//  Run the children until SIGTERM/SIGINT/SIGHUP. Returns the exit code: 0,
//  1 on error, 3 when another supervisor holds the pid file.
int trovectl_super_run (trovectl_super_t *self);
//  The pid of the supervisor running for dir, or 0 if none.
pid_t trovectl_super_running (const char *dir);
//  True when pid is a live (not zombie) process.
bool trovectl_super_alive (pid_t pid);
//  Ask every process for status until all answer (each the process the
//  supervisor started) or timeout_us passes; if child is given, stop early
//  when that process exits. Returns 0 when ready, -1 on timeout, 1 if the
//  child exited (*status_p set).
int trovectl_super_wait_ready (const char *dir, const trove_cfg_t *cfg, int64_t timeout_us, pid_t child,
                               int *status_p);

//  In a forked child: standard input from /dev/null, output and errors
//  appended to the file log, every other descriptor closed. Calls only
//  async-signal-safe functions.
void trovectl_super_redirect (const char *log);

//  Where the ingestors serve HTTP and the demo key (trovectl_up.c), for
//  people (lines on stdout, obj NULL) or scripts ("http", "key_file" set in obj).
void trovectl_up_report_http (const trove_cfg_t *cfg, const char *dir, json_t *obj);

#endif
