/*  trovectl rules - check, apply and preview hunt files.

    check runs the parser locally. apply and preview send the file to every
    scorer shard over its query socket (docs/protocol.md, "rules_apply",
    "rules_preview"): each scorer validates it against its own rules
    directory, and apply then writes it there (atomically) and swaps its
    rules; preview re-derives the stored events with the candidate and
    reports the differences with the ledger without writing anything. */
#include "trovectl.h"
#include "trove_json.h"
#include "trove_rules.h"
#include "trove_util.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_APPLY_TIMEOUT_MS 10000
#define S_PREVIEW_TIMEOUT_MS 600000

const char *const trovectl_rules_help =
    "usage: trovectl rules check FILE...\n"
    "       trovectl rules apply FILE [--dir DIR | --config FILE] [--json]\n"
    "       trovectl rules preview FILE [--user USER] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "check    validate hunt files; on error print FILE:LINE: problem and exit 1.\n"
    "apply    send the file to every scorer: each validates it with the rules it\n"
    "         has, stores it in its rules directory and uses it from the next\n"
    "         event on (no restart; the file name is kept, so applying a changed\n"
    "         file of the same name replaces it). Events with ts >= the file's\n"
    "         `effective` are scored with it; coins record the version.\n"
    "preview  replay the stored events (of USER, or of every user) in event-time\n"
    "         order with the rules as they would be after apply, and list per\n"
    "         rule and per user the coins that would be minted and revoked\n"
    "         compared with the ledger. Writes nothing.\n";

//  Print a JSON value as one line and take it.
static void
s_print (json_t *value)
{
    char *line = value ? json_dumps (value, JSON_COMPACT) : NULL;
    puts (line ? line : "{}");
    free (line);
    json_decref (value);
}

static int
s_check (int nfiles, char **files, bool json, bool quiet)
{
    int rc = 0;
    for (int i = 0; i < nfiles; i++) {
        char *err = NULL;
        trove_rules_t *rules = trove_rules_load_file (files [i], &err);
        if (!rules) {
            if (json)
                s_print (json_pack ("{s:s,s:b,s:s}", "file", files [i], "ok", 0, "error", err ? err : "?"));
            fprintf (stderr, "%s\n", err ? err : "cannot load");
            free (err);
            rc = 1;
            continue;
        }
        const trove_hunt_t *h = trove_rules_at (rules, 0);
        if (quiet)
            ;
        else if (json)
            s_print (json_pack ("{s:s,s:b,s:s,s:I,s:I}", "file", files [i], "ok", 1, "hunt", h->hunt,
                                "version", (json_int_t) h->version, "rules", (json_int_t) h->nrules));
        else
            printf ("%s: ok: hunt %s version %u, %zu rule(s)\n", files [i], h->hunt, h->version, h->nrules);
        trove_rules_destroy (&rules);
    }
    return rc;
}

//  Send the file to the scorers (one shard when only is >= 0). Each reply's
//  report goes to on_report. Returns the number of failures. One shard after
//  the other, not all at once through trove_router_all: the scorers of a
//  local cluster share one rules folder and each writes the file there; two
//  writing at once fail ("cannot write ...", test_rules).
static int
s_send_all (const trove_cfg_t *cfg, const char *kind, const char *path, const char *user, long only,
            int timeout_ms, void (*on_report) (void *, size_t, json_t *), void *arg)
{
    size_t size;
    char *text = trove_read_file (path, &size);
    if (!text)
        return trovectl_fail ("rules: cannot read %s: %s", path, strerror (errno));
    if (strlen (text) != size) {
        free (text);
        return trovectl_fail ("rules: %s contains a NUL byte", path);
    }
    char *copy = strdup (path);
    int failures = 0;
    for (size_t shard = 0; shard < trove_cfg_shards (cfg); shard++) {
        if (only >= 0 && shard != (size_t) only)
            continue;
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = (char *) kind;
        query.rules_name = basename (copy);
        query.rules_text = text;
        query.user = (char *) (user ? user : "");
        Trove__QueryReply *reply = trovectl_query (cfg, shard, &query, NULL, timeout_ms);
        if (!reply) {
            failures++;
            continue;
        }
        json_error_t jerr;
        json_t *report = json_loads (reply->report, 0, &jerr);
        if (!report) {
            trovectl_fail ("scorer %s: unreadable report", trove_cfg_shard_name (cfg, shard));
            failures++;
        }
        else {
            on_report (arg, shard, report);
            json_decref (report);
        }
        trove_client_reply_free (&reply);
    }
    free (copy);
    free (text);
    return failures;
}

typedef struct {
    const trove_cfg_t *cfg;
    bool json;
} s_print_t;

static void
s_on_applied (void *arg, size_t shard, json_t *report)
{
    s_print_t *p = arg;
    if (p->json) {
        char *line = json_dumps (report, JSON_COMPACT);
        puts (line ? line : "{}");
        free (line);
    }
    else
        printf ("%s: applied %s (hunt %s version %lld); %lld hunt version(s) loaded\n",
                trove_cfg_shard_name (p->cfg, shard), json_string_value (json_object_get (report, "file")),
                json_string_value (json_object_get (report, "hunt")),
                (long long) json_integer_value (json_object_get (report, "version")),
                (long long) json_integer_value (json_object_get (report, "versions_loaded")));
}

//  Preview reports of every shard (merged by trove_json_preview_merge).
typedef struct {
    json_t **reports;  //  one per shard (NULL: not asked)
} s_reports_t;

static void
s_on_preview (void *arg, size_t shard, json_t *report)
{
    s_reports_t *m = arg;
    m->reports [shard] = json_incref (report);
}

int
trovectl_rules (const trovectl_opts_t *opts)
{
    if (opts->nargs < 2)
        return trovectl_fail ("rules: want check|apply|preview and a FILE (see trovectl rules --help)");
    const char *sub = opts->args [0];
    if (strcmp (sub, "check") == 0)
        return s_check (opts->nargs - 1, opts->args + 1, opts->json, false);
    bool apply = strcmp (sub, "apply") == 0;
    if (!apply && strcmp (sub, "preview"))
        return trovectl_fail ("rules: unknown subcommand '%s' (check, apply or preview)", sub);
    if (opts->nargs != 2)
        return trovectl_fail ("rules %s: one FILE at a time", sub);
    if (opts->user && apply)
        return trovectl_fail ("rules apply: --user does not apply");
    //  Refuse locally first: a clear message without touching the cluster.
    if (s_check (1, opts->args + 1, false, true) != 0)
        return 1;
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int failures;
    if (apply) {
        s_print_t p = {cfg, opts->json};
        failures =
            s_send_all (cfg, "rules_apply", opts->args [1], NULL, -1, S_APPLY_TIMEOUT_MS, s_on_applied, &p);
    }
    else {
        size_t shards = trove_cfg_shards (cfg);
        s_reports_t m = {calloc (shards, sizeof (json_t *))};
        long only = opts->user ? (long) trove_cfg_shard_of_user (cfg, opts->user) : -1;
        failures = m.reports ? s_send_all (cfg, "rules_preview", opts->args [1], opts->user, only,
                                           S_PREVIEW_TIMEOUT_MS, s_on_preview, &m)
                             : trovectl_fail ("out of memory");
        json_t *out = failures == 0 ? trove_json_preview_merge (m.reports, shards) : NULL;
        if (failures == 0 && !out)
            failures = trovectl_fail ("out of memory");
        if (out && opts->json) {
            char *line = json_dumps (out, JSON_COMPACT);
            puts (line ? line : "{}");
            free (line);
        }
        else if (out) {
            json_t *rules = json_object_get (out, "rules"), *changes = json_object_get (out, "changes"),
                   *value;
            printf ("preview of %s: %lld user(s), %lld event(s) replayed; would mint %lld and revoke %lld "
                    "coin(s), balance change %+lld\n",
                    opts->args [1], (long long) json_integer_value (json_object_get (out, "users")),
                    (long long) json_integer_value (json_object_get (out, "events")),
                    (long long) json_integer_value (json_object_get (out, "mint")),
                    (long long) json_integer_value (json_object_get (out, "revoke")),
                    (long long) json_integer_value (json_object_get (out, "coins_delta")));
            size_t i;
            json_array_foreach (rules, i, value)
                printf ("  rule %s/%s: mint %lld, revoke %lld, coins %+lld\n",
                        json_string_value (json_object_get (value, "hunt")),
                        json_string_value (json_object_get (value, "rule")),
                        (long long) json_integer_value (json_object_get (value, "mint")),
                        (long long) json_integer_value (json_object_get (value, "revoke")),
                        (long long) json_integer_value (json_object_get (value, "coins_delta")));
            json_array_foreach (changes, i, value)
                printf ("  %s %s %s/%s %s %lld\n", json_string_value (json_object_get (value, "user")),
                        json_string_value (json_object_get (value, "action")),
                        json_string_value (json_object_get (value, "hunt")),
                        json_string_value (json_object_get (value, "rule")),
                        json_string_value (json_object_get (value, "id")),
                        (long long) json_integer_value (json_object_get (value, "value")));
            if (json_is_true (json_object_get (out, "truncated")))
                printf ("  (list truncated: 200 changes per shard)\n");
        }
        json_decref (out);
        for (size_t k = 0; m.reports && k < shards; k++)
            json_decref (m.reports [k]);
        free (m.reports);
    }
    trove_cfg_destroy (&cfg);
    return failures ? 1 : 0;
}
