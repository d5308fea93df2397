/*  trovectl - internal interface between the command files of trovectl. */
#ifndef TROVECTL_H_INCLUDED
#define TROVECTL_H_INCLUDED

#include "trove_cfg.h"
#include "trove_client.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  Print "trovectl: <message>" on stderr (one line). Returns 1, the exit code
//  of a failed command.
int trovectl_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

//  Print a JSON value as one line on stdout and take it (NULL prints nothing).
void trovectl_print_json (json_t *value);

//  SIGINT/SIGTERM set a flag instead of killing us (no SA_RESTART, so a
//  blocking wait returns EINTR); trovectl_interrupted tells whether one came.
void trovectl_catch_signals (void);
bool trovectl_interrupted (void);

//  Options of every command; each command accepts a subset.
typedef struct {
    const char *dir;       //  --dir
    const char *config;    //  --config
    bool json;             //  --json
    bool help;             //  --help
    bool quiet;            //  --quiet (send)
    bool strict;           //  --strict (send)
    bool from_start;       //  --from-start (tail)
    bool detach;           //  --detach (up)
    bool curve;            //  --curve (up)
    const char *name;      //  --name (curve new)
    bool insecure;         //  --insecure (up): no CURVE
    const char *role;      //  --role (curve new)
    const char *source;    //  --source (curve new, producer)
    long limit;            //  --limit (coins), -1 when absent
    long count;            //  --count (tail), -1 when absent
    long timeout;          //  --timeout seconds (send), -1 when absent
    long port_base;        //  --port-base (up), -1 when absent
    long shards;           //  --shards (up), -1 when absent
    long ingestors;        //  --ingestors (up), -1 when absent
    const char *sync;      //  --sync (up)
    const char *user;      //  --user (rules preview, reconcile)
    const char *shard;     //  --shard NAME (reconcile)
    bool wait;             //  --wait (reconcile)
    bool report;           //  --report (reconcile)
    const char *period;    //  --period (board)
    long k;                //  --k (board --user), -1 when absent
    bool list;             //  --list (board)
    const char *reason;    //  --reason (exclude)
    const char *after;     //  --after SCORE:USER (board)
    const char *interval;  //  --interval SECONDS (top), checked by top
    char **args;           //  positional arguments (into argv)
    int nargs;             //  number of positional arguments
} trovectl_opts_t;

//  Parse argv (argv [0] is the command) accepting only the options named in
//  allowed (space separated, e.g. "dir config json"); --help is always
//  accepted. Returns 0, or -1 after printing a one-line error.
int trovectl_parse (int argc, char **argv, const char *allowed, trovectl_opts_t *opts);

//  True when text is a long option of the table that takes the next
//  argument as its value ("--dir", not "--dir=X", not "--json").
bool trovectl_takes_value (const char *text);

//  Load the cluster config named by --config, or DIR/trove.cfg; NULL after
//  printing the error.
trove_cfg_t *trovectl_load_cfg (const trovectl_opts_t *opts);

//  One query to a scorer shard; prints the failure and returns NULL on
//  timeout or when the reply carries an error other than `tolerated`.
Trove__QueryReply *trovectl_query (const trove_cfg_t *cfg, size_t shard, Trove__Query *query,
                                   const char *tolerated, int timeout_ms);

//  The cluster directory: dir if given, else $TROVE_DIR, else "./trove-data".
const char *trovectl_dir (const char *dir);

//  One process of a cluster as status sees it.
typedef struct {
    const char *role;          //  "broker", "ingestor", "scorer"
    const char *name;          //  "broker", "i0", "s0", ...
    int shard;                 //  scorer shard index, -1 otherwise
    const char *endpoint;      //  where it answers "status"
    Trove__QueryReply *reply;  //  its answer, NULL when down
    int64_t heartbeat_ms;      //  sent time of its last heartbeat seen via the broker, 0: none
} trovectl_proc_t;

//  Every process of cfg: broker, ingestors, scorers. Caller frees the array
//  with trovectl_procs_free. NULL on OOM.
trovectl_proc_t *trovectl_procs (const trove_cfg_t *cfg, size_t *count_p);
void trovectl_procs_free (trovectl_proc_t **procs_p, size_t count);
//  Ask every process for "status" at once; fills reply. Returns how many
//  answered, -1 if interrupted.
int trovectl_probe (const trove_cfg_t *cfg, trovectl_proc_t *procs, size_t count, int timeout_ms,
                    int retries);

//  Commands in trovectl_send.c, trovectl_query.c and trovectl_status.c.
int trovectl_send (int argc, char **argv);
int trovectl_balance (int argc, char **argv);
int trovectl_coins (int argc, char **argv);
int trovectl_coin (int argc, char **argv);
int trovectl_tail (int argc, char **argv);
int trovectl_status (int argc, char **argv);

//  Commands in trovectl_board.c: leaderboards, progress, exclusions.
int trovectl_board (int argc, char **argv);
int trovectl_progress (int argc, char **argv);
int trovectl_exclude (int argc, char **argv);

//  Commands in trovectl_up.c; argv [0] is the command name.
int trovectl_up (int argc, char **argv);
int trovectl_down (int argc, char **argv);

//  Command in trovectl_top.c: live view from every process's /metrics.
int trovectl_top (int argc, char **argv);

//  Command in trovectl_rules.c: rules check | apply | preview.
int trovectl_rules (int argc, char **argv);

//  Command in trovectl_reconcile.c: run the reconcilers, show their reports.
int trovectl_reconcile (int argc, char **argv);

//  trovectl curve new|show (trovectl_curve.c).
int trovectl_curve (int argc, char **argv);

#endif
