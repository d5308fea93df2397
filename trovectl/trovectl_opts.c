/*  trovectl - what every command shares: the option table and its parser,
    the cluster config, errors, JSON lines and signals.

    Every option of every command is one row of s_options: its name, whether
    it takes a value, where the value goes in trovectl_opts_t and a line of
    help. A command names the options it accepts (trovectl_parse's
    `allowed`); main () finds the command word with the same table. */
#include "trovectl.h"
#include "trove_curve.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

void
trovectl_catch_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

bool
trovectl_interrupted (void)
{
    return s_interrupted != 0;
}

int
trovectl_fail (const char *fmt, ...)
{
    char buf [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (buf, sizeof buf, fmt, args);
    va_end (args);
    //  one line, whatever the message contains
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fflush (stdout);
    fprintf (stderr, "trovectl: %s\n", buf);
    return 1;
}

const char *
trovectl_dir (const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *env = getenv ("TROVE_DIR");
    return env && *env ? env : "./trove-data";
}

void
trovectl_print_json (json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT) : NULL;
    if (text)
        puts (text);
    free (text);
    json_decref (value);
}

//  ---------------------------------------------------------------------------
//  Options

//  How an option's value is stored.
typedef enum {
    S_FLAG,   //  no value: bool set to true
    S_TEXT,   //  const char *, borrowed from argv
    S_NUMBER  //  long, a non-negative integer (-1 when absent)
} s_type_t;

typedef struct {
    const char *name;  //  long option, without "--"
    s_type_t type;     //  how its value is stored
    size_t field;      //  offset of the value in trovectl_opts_t
    const char *help;  //  what it is, which commands take it
} s_option_t;

#define S_OPTION(name, type, field, help)                   \
    {                                                       \
        name, type, offsetof (trovectl_opts_t, field), help \
    }

static const s_option_t s_options [] = {
    S_OPTION ("dir", S_TEXT, dir, "cluster directory (every command)"),
    S_OPTION ("config", S_TEXT, config, "cluster config file, instead of --dir"),
    S_OPTION ("json", S_FLAG, json, "machine-readable output"),
    S_OPTION ("help", S_FLAG, help, "help of the command (always accepted)"),
    S_OPTION ("quiet", S_FLAG, quiet, "send: nothing per event"),
    S_OPTION ("strict", S_FLAG, strict, "send: exit 2 when an event was rejected"),
    S_OPTION ("from-start", S_FLAG, from_start, "tail: from each shard's first award"),
    S_OPTION ("detach", S_FLAG, detach, "up: supervise in the background"),
    S_OPTION ("limit", S_NUMBER, limit, "coins, board: at most N entries"),
    S_OPTION ("count", S_NUMBER, count, "tail, top: stop after N"),
    S_OPTION ("timeout", S_NUMBER, timeout, "send: give up after SECONDS"),
    S_OPTION ("port-base", S_NUMBER, port_base, "up: first port of the layout"),
    S_OPTION ("shards", S_NUMBER, shards, "up: scorer shards"),
    S_OPTION ("ingestors", S_NUMBER, ingestors, "up: ingestors"),
    S_OPTION ("sync", S_TEXT, sync, "up: LMDB durability, full or none"),
    S_OPTION ("user", S_TEXT, user, "board, rules preview, reconcile: a user"),
    S_OPTION ("shard", S_TEXT, shard, "reconcile, backup, restore: one shard by name"),
    S_OPTION ("wait", S_FLAG, wait, "reconcile: wait for the reports"),
    S_OPTION ("report", S_FLAG, report, "reconcile: show the last reports"),
    S_OPTION ("period", S_TEXT, period, "board: which period"),
    S_OPTION ("k", S_NUMBER, k, "board --user: neighbours on each side"),
    S_OPTION ("list", S_FLAG, list, "board: the boards of a hunt"),
    S_OPTION ("reason", S_TEXT, reason, "exclude: why"),
    S_OPTION ("after", S_TEXT, after, "board: the page after SCORE:USER"),
    S_OPTION ("curve", S_FLAG, curve, "up: CURVE on every link (the default)"),
    S_OPTION ("name", S_TEXT, name, "curve new: the certificate's name"),
    S_OPTION ("insecure", S_FLAG, insecure, "up: no CURVE"),
    S_OPTION ("role", S_TEXT, role, "curve new: daemon, operator, producer"),
    S_OPTION ("source", S_TEXT, source, "curve new: a producer's source"),
    S_OPTION ("interval", S_TEXT, interval, "top: seconds between views"),
    S_OPTION ("as-of", S_TEXT, as_of, "balance, coins: as the ledger stood at TIME"),
    S_OPTION ("all", S_FLAG, all, "webhooks retry: every dead letter"),
};

#define S_NOPTIONS (sizeof s_options / sizeof s_options [0])
//  getopt_long's value of option i: above every short option character.
#define S_OPT_BASE 256

static const s_option_t *
s_option_named (const char *name)
{
    for (size_t i = 0; i < S_NOPTIONS; i++)
        if (strcmp (s_options [i].name, name) == 0)
            return &s_options [i];
    return NULL;
}

bool
trovectl_takes_value (const char *text)
{
    if (strncmp (text, "--", 2) || strchr (text, '='))
        return false;
    const s_option_t *option = s_option_named (text + 2);
    return option && option->type != S_FLAG;
}

static bool
s_allowed (const char *allowed, const char *name)
{
    size_t len = strlen (name);
    for (const char *p = allowed; (p = strstr (p, name)); p += len)
        if ((p == allowed || p [-1] == ' ') && (p [len] == ' ' || p [len] == 0))
            return true;
    return false;
}

static int
s_parse_number (const char *name, const char *text, long *value)
{
    char *end;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || end == text || *end || v < 0) {
        trovectl_fail ("--%s '%s': want a non-negative integer", name, text);
        return -1;
    }
    *value = v;
    return 0;
}

//  Store the value of option (optarg for those that take one) in opts.
//  Returns 0, or -1 after printing a one-line error.
static int
s_store (const s_option_t *option, const char *value, trovectl_opts_t *opts)
{
    char *field = (char *) opts + option->field;
    switch (option->type) {
        case S_FLAG:
            *(bool *) field = true;
            return 0;
        case S_TEXT:
            *(const char **) field = value;
            return 0;
        case S_NUMBER:
            return s_parse_number (option->name, value, (long *) field);
    }
    return -1;
}

int
trovectl_parse (int argc, char **argv, const char *allowed, trovectl_opts_t *opts)
{
    static struct option longopts [S_NOPTIONS + 1];
    for (size_t i = 0; i < S_NOPTIONS; i++)
        longopts [i] = (struct option){s_options [i].name,
                                       s_options [i].type == S_FLAG ? no_argument : required_argument, NULL,
                                       S_OPT_BASE + (int) i};
    memset (opts, 0, sizeof *opts);
    opts->command = argv [0];
    for (size_t i = 0; i < S_NOPTIONS; i++)
        if (s_options [i].type == S_NUMBER)
            *(long *) ((char *) opts + s_options [i].field) = -1;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long (argc, argv, ":", longopts, NULL)) != -1) {
        const char *problem = NULL;
        if (c == '?')
            problem = "unknown option";
        else if (c == ':')
            problem = "missing value of option";
        if (problem) {
            if (optopt && optopt < S_OPT_BASE)
                trovectl_fail ("%s: %s '-%c' (see trovectl %s --help)", argv [0], problem, optopt, argv [0]);
            else
                trovectl_fail ("%s: %s '%s' (see trovectl %s --help)", argv [0], problem, argv [optind - 1],
                               argv [0]);
            return -1;
        }
        const s_option_t *option = &s_options [c - S_OPT_BASE];
        if (strcmp (option->name, "help") && !s_allowed (allowed, option->name)) {
            trovectl_fail ("%s: option --%s does not apply (see trovectl %s --help)", argv [0], option->name,
                           argv [0]);
            return -1;
        }
        if (s_store (option, optarg, opts))
            return -1;
    }
    opts->args = argv + optind;
    opts->nargs = argc - optind;
    return 0;
}


void
trovectl_cfg_path (const trovectl_opts_t *opts, char *path, size_t size)
{
    if (opts->config)
        snprintf (path, size, "%s", opts->config);
    else
        snprintf (path, size, "%s/trove.cfg", trovectl_dir (opts->dir));
}

//  Load the cluster config named by --config, or DIR/trove.cfg.
trove_cfg_t *
trovectl_load_cfg (const trovectl_opts_t *opts)
{
    char path [4096];
    trovectl_cfg_path (opts, path, sizeof path);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    //  trovectl is the operator's tool: it presents the operator's
    //  certificate when the config names one this user can read (control
    //  operations need it), else the host's.
    const char *op = cfg && trove_cfg_curve (cfg) ? trove_cfg_curve_operator (cfg) : NULL;
    char secret [4096 + 8];
    snprintf (secret, sizeof secret, "%s_secret", op ? op : "");
    if (cfg
        && (op && access (secret, R_OK) == 0 ? trove_curve_start_as (cfg, op, NULL, false, &err)
                                             : trove_curve_start (cfg, NULL, false, &err)))
        trove_cfg_destroy (&cfg);
    if (!cfg) {
        trovectl_fail ("%s", err ? err : "cannot load config");
        free (err);
    }
    return cfg;
}


//  One query to a scorer shard; prints the failure and returns NULL on
//  timeout or when the reply carries an error other than `tolerated`.
Trove__QueryReply *
trovectl_query (const trove_cfg_t *cfg, size_t shard, Trove__Query *query, const char *tolerated,
                int timeout_ms)
{
    char *err = NULL;
    const char *endpoint = trove_cfg_shard_query (cfg, shard);
    Trove__QueryReply *reply =
        trove_client_call_max (endpoint, query, timeout_ms, 1, trove_cfg_limits (cfg)->max_frame, &err);
    if (!reply) {
        trovectl_fail ("scorer %s: %s", trove_cfg_shard_name (cfg, shard), err ? err : "no reply");
        free (err);
        return NULL;
    }
    if (reply->error && *reply->error && !(tolerated && strcmp (reply->error, tolerated) == 0)) {
        trovectl_fail ("scorer %s: %s query failed: %s", trove_cfg_shard_name (cfg, shard), query->kind,
                       reply->error);
        trove_client_reply_free (&reply);
    }
    return reply;
}
