/*  trove-load - the command line. Every option is one row of s_options:
    its name, its value's name, how the value is read and checked (type,
    range), where it goes in trove_load_opts_t and its line of --help; the
    usage text is printed from the same rows. */
#include "trove_load.h"
#include "trove_util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  How an option's value is read and stored.
typedef enum {
    S_FLAG,    //  no value: bool set to true
    S_TEXT,    //  const char *, borrowed from argv
    S_PATH,    //  char *, a copy (owned)
    S_SIZE,    //  size_t in [min, max]
    S_U32,     //  uint32_t in [min, max]
    S_U64,     //  uint64_t in [min, max]
    S_DOUBLE,  //  double in [dmin, dmax]
    S_LIST,    //  comma-separated names (owned), the count right after the array
    S_PREFIX,  //  the id prefix: not empty, no space, fits the buffer
    S_HELP     //  print the usage and stop
} s_type_t;

typedef struct {
    const char *name;   //  long option, without "--"
    const char *arg;    //  its value in the usage ("N"), NULL when it takes none
    s_type_t type;      //  how the value is read and stored
    size_t field;       //  offset of the value in trove_load_opts_t
    uint64_t min, max;  //  range of an integer
    double dmin, dmax;  //  range of a double
    const char *help;   //  usage line, NULL: not listed (named in the first line)
} s_option_t;

#define S_AT(field) offsetof (trove_load_opts_t, field)
#define S_INT(name, arg, type, field, min, max, help)       \
    {                                                       \
        name, arg, type, S_AT (field), min, max, 0, 0, help \
    }
#define S_REAL(name, arg, field, min, max, help)                \
    {                                                           \
        name, arg, S_DOUBLE, S_AT (field), 0, 0, min, max, help \
    }
#define S_OTHER(name, arg, type, field, help)           \
    {                                                   \
        name, arg, type, S_AT (field), 0, 0, 0, 0, help \
    }

static const s_option_t s_options [] = {
    S_OTHER ("dir", "DIR", S_TEXT, dir, NULL),
    S_OTHER ("config", "FILE", S_TEXT, config_arg, NULL),
    S_INT ("events", "N", S_SIZE, events, 1, 100000000, "submissions in total, re-sends included (100000)"),
    S_REAL ("rate", "R", rate, 0, 1e7,
            "events/s, open loop; 0 = closed loop, as fast as the window allows (0)"),
    S_INT ("users", "U", S_U32, users, 1, UINT32_MAX, "distinct users u0..u<U-1> (1000)"),
    S_OTHER ("sources", "LIST", S_LIST, sources,
             "comma-separated, all declared in the config (web,mobile,game,partner)"),
    S_OTHER ("types", "LIST", S_LIST, types, "comma-separated event types (checkin,visit,purchase)"),
    S_REAL ("dup-ratio", "F", dup_ratio, 0, 0.99, "fraction of submissions re-sending an answered event (0)"),
    S_REAL ("ooo-ratio", "F", ooo_ratio, 0, 1, "fraction of events with ts moved 1-5 s back (0)"),
    S_REAL ("backdate-ratio", "F", backdate_ratio, 0, 1,
            "fraction of events with ts moved up to --backdate-days back (0)"),
    S_REAL ("backdate-days", "D", backdate_days, 0, 366, "(1)"),
    S_OTHER ("events-out", "FILE", S_PATH, events_out,
             "every distinct event as sent, one JSON line each (for a reference model)"),
    S_INT ("batch", "B", S_SIZE, batch, 1, 100000, "events per request (100)"),
    S_INT ("window", "W", S_SIZE, window, 1, 10000000, "max events in flight (20000)"),
    S_INT ("seed", "S", S_U64, seed, 0, UINT64_MAX, "random seed (from the clock)"),
    S_OTHER ("id-prefix", "P", S_PREFIX, prefix, "event ids are P<counter> (l<time><pid>-)"),
    S_OTHER ("history", "FILE", S_PATH, history,
             "one line per submission: source id user type status reason"),
    S_OTHER ("awards", NULL, S_FLAG, awards, "follow the award stream, report award latency"),
    S_OTHER ("json", NULL, S_FLAG, json, "final report as one JSON object on stdout"),
    S_REAL ("report-every", "S", report_every, 0, 86400, "progress line on stderr every S seconds (0 = off)"),
    S_REAL ("stall-timeout", "S", stall_s, 1, 86400, "give up after S s without any answer (60)"),
    S_OTHER ("users-in-order", NULL, S_FLAG, users_in_order,
             "event i is user u<i mod U> (every user gets events)"),
    S_OTHER ("attrs", NULL, S_FLAG, attrs,
             "every event carries attrs zone (A-F), clue (A|B) and amount (0-199), fixed by its "
             "index (etc/examples/spring-hunt.yaml's attributes)"),
    S_OTHER ("help", NULL, S_HELP, dir, NULL),  //  stores nothing
};

//  S_LIST stores the count right after the array.
_Static_assert(offsetof (trove_load_opts_t, nsources)
                       == S_AT (sources) + sizeof (char *) * TROVE_LOAD_MAX_NAMES
                   && offsetof (trove_load_opts_t, ntypes)
                          == S_AT (types) + sizeof (char *) * TROVE_LOAD_MAX_NAMES,
               "a list's count follows its array");

#define S_NOPTIONS (sizeof s_options / sizeof s_options [0])
//  getopt_long's value of option i: above every short option character.
#define S_OPT_BASE 256

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: trove-load (--dir DIR | --config FILE) [options]\n");
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        const s_option_t *o = &s_options [i];
        if (!o->help)
            continue;
        char left [40];
        snprintf (left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf (out, "  %-18s %s\n", left, o->help);
    }
}

//  Split a comma-separated list into owned strings. Returns 0 or -1.
static int
s_split (const char *text, char **names, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        free (names [i]);
    *count = 0;
    const char *p = text;
    while (*p) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        if (len == 0 || *count == TROVE_LOAD_MAX_NAMES)
            return -1;
        names [(*count)++] = strndup (p, len);
        p += len + (comma ? 1 : 0);
        if (comma && !*p)
            return -1;
    }
    return *count ? 0 : -1;
}

static int
s_parse_double (const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (errno || end == text || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static int
s_parse_u64 (const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*text == '-')
        return -1;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

//  Store value (the option's argument) in opts. Returns 0, or -1 when the
//  value is bad.
static int
s_store (const s_option_t *o, const char *value, trove_load_opts_t *opts)
{
    char *field = (char *) opts + o->field;
    uint64_t u;
    switch (o->type) {
        case S_FLAG:
            *(bool *) field = true;
            return 0;
        case S_TEXT:
            *(const char **) field = value;
            return 0;
        case S_PATH:
            free (*(char **) field);
            *(char **) field = strdup (value);
            return 0;
        case S_SIZE:
        case S_U32:
        case S_U64:
            if (s_parse_u64 (value, o->min, o->max, &u))
                return -1;
            if (o->type == S_SIZE)
                *(size_t *) field = (size_t) u;
            else if (o->type == S_U32)
                *(uint32_t *) field = (uint32_t) u;
            else
                *(uint64_t *) field = u;
            return 0;
        case S_DOUBLE:
            return s_parse_double (value, o->dmin, o->dmax, (double *) field);
        case S_LIST:
            //  the count follows its array in trove_load_opts_t
            return s_split (value, (char **) field,
                            (size_t *) (field + TROVE_LOAD_MAX_NAMES * sizeof (char *)));
        case S_PREFIX:
            if (!*value || strlen (value) >= TROVE_LOAD_PREFIX_MAX || strchr (value, ' '))
                return -1;
            snprintf (field, TROVE_LOAD_PREFIX_MAX, "%s", value);
            return 0;
        case S_HELP:
            break;
    }
    return -1;
}

void
trove_load_opts_free (trove_load_opts_t *opts)
{
    free (opts->config);
    free (opts->history);
    free (opts->events_out);
    for (size_t i = 0; i < opts->nsources; i++)
        free (opts->sources [i]);
    for (size_t i = 0; i < opts->ntypes; i++)
        free (opts->types [i]);
}

int
trove_load_opts_parse (int argc, char *argv [], trove_load_opts_t *opts)
{
    static struct option longopts [S_NOPTIONS + 1];
    for (size_t i = 0; i < S_NOPTIONS; i++)
        longopts [i] =
            (struct option){s_options [i].name, s_options [i].arg ? required_argument : no_argument, NULL,
                            S_OPT_BASE + (int) i};
    *opts = (trove_load_opts_t){.events = 100000,
                                .backdate_days = 1,
                                .users = 1000,
                                .batch = 100,
                                .window = 20000,
                                .stall_s = 60,
                                .seed = (uint64_t) trove_now_us () ^ ((uint64_t) getpid () << 32)};
    snprintf (opts->prefix, sizeof opts->prefix, "l%" PRIx64 "%x-", (uint64_t) trove_now_ms (),
              (unsigned) getpid ());
    s_split ("web,mobile,game,partner", opts->sources, &opts->nsources);
    s_split ("checkin,visit,purchase", opts->types, &opts->ntypes);
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
        if (c < S_OPT_BASE) {
            fprintf (stderr, "trove-load: unknown option or missing value: %s\n", argv [optind - 1]);
            s_usage (stderr);
            return 2;
        }
        const s_option_t *o = &s_options [c - S_OPT_BASE];
        if (o->type == S_HELP) {
            s_usage (stdout);
            return 1;
        }
        if (s_store (o, optarg, opts)) {
            fprintf (stderr, "trove-load: bad value for --%s: '%s'\n", o->name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "trove-load: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    if ((opts->dir != NULL) == (opts->config_arg != NULL)) {
        fprintf (stderr, "trove-load: give exactly one of --dir and --config\n");
        s_usage (stderr);
        return 2;
    }
    opts->config = opts->config_arg ? strdup (opts->config_arg) : zsys_sprintf ("%s/trove.cfg", opts->dir);
    return 0;
}
