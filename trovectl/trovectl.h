/*  trovectl - internal interface between the command files of trovectl. */
#ifndef TROVECTL_H_INCLUDED
#define TROVECTL_H_INCLUDED

#include "trove_cfg.h"
#include "trove_awardsub.h"
#include "trove_client.h"
#include "trove_submitter.h"

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
    const char *command;   //  the command's name (argv [0])
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
    const char *as_of;     //  --as-of TIME (balance, coins)
    bool all;              //  --all (webhooks retry)
    char **args;           //  positional arguments (into argv)
    int nargs;             //  number of positional arguments
} trovectl_opts_t;

//  Parse argv (argv [0] is the command) accepting only the options named in
//  allowed (space separated, e.g. "dir config json"); --help is always
//  accepted. Returns 0, or -1 after printing a one-line error.
int trovectl_parse (int argc, char **argv, const char *allowed, trovectl_opts_t *opts);

//  A command: runs with the options main () parsed for it (those of its row
//  in trovectl.c's command table). Returns the exit code.
typedef int (trovectl_command_fn) (const trovectl_opts_t *opts);

//  True when text is a long option of the table that takes the next
//  argument as its value ("--dir", not "--dir=X", not "--json").
bool trovectl_takes_value (const char *text);

//  The path of the cluster config: --config, or DIR/trove.cfg.
void trovectl_cfg_path (const trovectl_opts_t *opts, char *path, size_t size);

//  Write a whole file atomically (temporary file, fsync, rename), mode
//  0600. 0 or -1 (errno set).
int trovectl_write_file (const char *path, const char *text);

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
    const char *role;          //  "broker", "ingestor", "scorer", "webhooks"
    const char *name;          //  "broker", "i0", "s0", ...
    int shard;                 //  scorer shard index, -1 otherwise
    const char *endpoint;      //  where it answers "status"
    Trove__QueryReply *reply;  //  its answer, NULL when down
    int64_t heartbeat_ms;      //  sent time of its last heartbeat seen via the broker, 0: none
} trovectl_proc_t;

//  Every process of cfg: broker, ingestors, scorers, trove-webhooks when
//  configured. Caller frees the array
//  with trovectl_procs_free. NULL on OOM.
trovectl_proc_t *trovectl_procs (const trove_cfg_t *cfg, size_t *count_p);
void trovectl_procs_free (trovectl_proc_t **procs_p, size_t count);
//  Ask every process for "status" at once; fills reply. Returns how many
//  answered, -1 if interrupted.
int trovectl_probe (const trove_cfg_t *cfg, trovectl_proc_t *procs, size_t count, int timeout_ms,
                    int retries);

//  The commands and their --help texts, by file: trovectl_send.c;
//  trovectl_query.c; trovectl_status.c; trovectl_board.c (leaderboards,
//  progress, exclusions; exclude serves include too); trovectl_up.c (up,
//  down); trovectl_top.c (live view from every /metrics); trovectl_rules.c
//  (rules check | apply | preview); trovectl_reconcile.c (run the
//  reconcilers, show their reports); trovectl_curve.c (curve new | show);
//  trovectl_webhooks.c (dead letters of trove-webhooks: list | retry).
trovectl_command_fn trovectl_send;
extern const char *const trovectl_send_help;
trovectl_command_fn trovectl_balance;
extern const char *const trovectl_balance_help;
trovectl_command_fn trovectl_coins;
extern const char *const trovectl_coins_help;
trovectl_command_fn trovectl_coin;
extern const char *const trovectl_coin_help;
trovectl_command_fn trovectl_tail;
extern const char *const trovectl_tail_help;
trovectl_command_fn trovectl_status;
extern const char *const trovectl_status_help;
trovectl_command_fn trovectl_board;
extern const char *const trovectl_board_help;
trovectl_command_fn trovectl_progress;
extern const char *const trovectl_progress_help;
trovectl_command_fn trovectl_exclude;
extern const char *const trovectl_exclude_help;
trovectl_command_fn trovectl_up;
extern const char *const trovectl_up_help;
trovectl_command_fn trovectl_down;
extern const char *const trovectl_down_help;
trovectl_command_fn trovectl_top;
extern const char *const trovectl_top_help;
trovectl_command_fn trovectl_rules;
extern const char *const trovectl_rules_help;
trovectl_command_fn trovectl_reconcile;
extern const char *const trovectl_reconcile_help;
trovectl_command_fn trovectl_curve;
extern const char *const trovectl_curve_help;
trovectl_command_fn trovectl_webhooks;
extern const char *const trovectl_webhooks_help;
trovectl_command_fn trovectl_backup;
extern const char *const trovectl_backup_help;
trovectl_command_fn trovectl_restore;
extern const char *const trovectl_restore_help;

#endif
