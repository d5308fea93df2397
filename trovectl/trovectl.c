/*  trovectl - the command line of a Trove cluster: send events, query
    balances and coins, follow the award stream, check status; `up` and
    `down` (trovectl_up.c) run a local cluster.

    Every command takes --json (machine-readable output) and exits non-zero
    with a one-line error on stderr when it fails. This file holds the
    command table and main (); each command lives in a file of its own, the
    options every command shares in trovectl_opts.c. */
#include "trovectl.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage =
    "usage: trovectl COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  send [FILE|-]        submit NDJSON events, wait for every answer\n"
    "  balance USER...      coin balance of users\n"
    "  coins USER           a user's coins, newest first\n"
    "  coin ID              one coin and its earning events\n"
    "  tail                 follow the award stream\n"
    "  status               status of every process of the cluster\n"
    "  top                  live rates and latencies from every /metrics\n"
    "  up                   run a local cluster (writes DIR/trove.cfg)\n"
    "  down                 stop the cluster started by `up`\n"
    "  reconcile            re-derive the ledger from the event log and repair it\n"
    "  board HUNT           leaderboard: top N, around a user (--user), boards (--list)\n"
    "  progress USER        progress on every rule (clues found, streak days, cap left)\n"
    "  exclude|include USER take a user off every leaderboard, or put back\n"
    "  rules check|apply|preview FILE\n"
    "                       validate a hunt file, apply it to every scorer\n"
    "                       without a restart, or preview its effect\n"
    "  curve new|show PATH  make a CURVE certificate, print its public key\n"
    "  backup OUT           consistent copies of this machine's shard ledgers\n"
    "  restore IN           put a backup back into a stopped cluster\n"
    "  webhooks list|retry  dead letters of trove-webhooks: show, deliver again\n"
    "\n"
    "Common options:\n"
    "  --dir DIR      cluster directory, config DIR/trove.cfg\n"
    "                 (default: $TROVE_DIR, else ./trove-data)\n"
    "  --config FILE  cluster config file (instead of --dir)\n"
    "  --json         machine-readable output\n"
    "  --help         help of a command: trovectl COMMAND --help\n"
    "\n"
    "A failed command prints one line on stderr and exits non-zero.\n";

//  Every command once: its name, what runs it, the options it accepts (the
//  rows of trovectl_opts.c's table; --help always) and its --help text.
typedef struct {
    const char *name;          //  the word after trovectl
    trovectl_command_fn *run;  //  runs it
    const char *options;       //  the options it accepts, space separated
    const char *const *help;   //  its --help text
} s_command_t;

static const s_command_t s_commands [] = {
    {"send", trovectl_send, "dir config json quiet strict timeout", &trovectl_send_help},
    {"balance", trovectl_balance, "dir config json as-of", &trovectl_balance_help},
    {"coins", trovectl_coins, "dir config json limit as-of", &trovectl_coins_help},
    {"coin", trovectl_coin, "dir config json", &trovectl_coin_help},
    {"tail", trovectl_tail, "dir config json from-start count", &trovectl_tail_help},
    {"status", trovectl_status, "dir config json", &trovectl_status_help},
    {"up", trovectl_up, "dir json detach port-base shards ingestors sync curve insecure", &trovectl_up_help},
    {"down", trovectl_down, "dir json", &trovectl_down_help},
    {"top", trovectl_top, "dir config json count interval", &trovectl_top_help},
    {"rules", trovectl_rules, "dir config json user", &trovectl_rules_help},
    {"reconcile", trovectl_reconcile, "dir config json user shard wait report", &trovectl_reconcile_help},
    {"board", trovectl_board, "dir config json period limit user k list after", &trovectl_board_help},
    {"progress", trovectl_progress, "dir config json", &trovectl_progress_help},
    {"exclude", trovectl_exclude, "dir config json reason list", &trovectl_exclude_help},
    {"include", trovectl_exclude, "dir config json", &trovectl_exclude_help},
    {"curve", trovectl_curve, "name role source json", &trovectl_curve_help},
    {"backup", trovectl_backup, "dir config json shard", &trovectl_backup_help},
    {"restore", trovectl_restore, "dir config json shard", &trovectl_restore_help},
    {"webhooks", trovectl_webhooks, "dir config json all", &trovectl_webhooks_help},
};

int
main (int argc, char **argv)
{
    //  czmq must not install its own SIGINT/SIGTERM handlers: we have ours.
    zsys_handler_set (NULL);
    signal (SIGPIPE, SIG_IGN);
    //  The command is the first word that is neither an option nor its value.
    int at = 1;
    while (at < argc && argv [at][0] == '-' && argv [at][1]) {
        if (strcmp (argv [at], "--help") == 0 || strcmp (argv [at], "-h") == 0) {
            fputs (s_usage, stdout);
            return 0;
        }
        at += trovectl_takes_value (argv [at]) ? 2 : 1;
    }
    if (at >= argc) {
        fputs (s_usage, stdout);
        return 1;
    }
    if (strcmp (argv [at], "help") == 0) {
        fputs (s_usage, stdout);
        return 0;
    }
    const s_command_t *command = NULL;
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands [0]; i++)
        if (strcmp (argv [at], s_commands [i].name) == 0)
            command = &s_commands [i];
    if (!command)
        return trovectl_fail ("unknown command '%s' (see trovectl --help)", argv [at]);
    //  argv for the command: its name first, then every other argument.
    char **args = calloc ((size_t) argc + 1, sizeof *args);
    if (!args)
        return trovectl_fail ("out of memory");
    int n = 0;
    args [n++] = argv [at];
    for (int i = 1; i < argc; i++)
        if (i != at)
            args [n++] = argv [i];
    trovectl_opts_t opts;
    int rc = 1;
    if (trovectl_parse (n, args, command->options, &opts) == 0) {
        if (opts.help) {
            fputs (*command->help, stdout);
            rc = 0;
        }
        else
            rc = command->run (&opts);
    }
    free (args);
    fflush (stdout);
    return rc;
}
