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
    "\n"
    "Common options:\n"
    "  --dir DIR      cluster directory, config DIR/trove.cfg\n"
    "                 (default: $TROVE_DIR, else ./trove-data)\n"
    "  --config FILE  cluster config file (instead of --dir)\n"
    "  --json         machine-readable output\n"
    "  --help         help of a command: trovectl COMMAND --help\n"
    "\n"
    "A failed command prints one line on stderr and exits non-zero.\n";

typedef struct {
    const char *name;
    int (*run) (int argc, char **argv);
} s_command_t;

static const s_command_t s_commands [] = {
    {"send", trovectl_send},
    {"balance", trovectl_balance},
    {"coins", trovectl_coins},
    {"coin", trovectl_coin},
    {"tail", trovectl_tail},
    {"status", trovectl_status},
    {"up", trovectl_up},
    {"down", trovectl_down},
    {"top", trovectl_top},
    {"rules", trovectl_rules},
    {"reconcile", trovectl_reconcile},
    {"board", trovectl_board},
    {"progress", trovectl_progress},
    {"exclude", trovectl_exclude},
    {"include", trovectl_exclude},
    {"curve", trovectl_curve},
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
    int rc = command->run (n, args);
    free (args);
    fflush (stdout);
    return rc;
}
