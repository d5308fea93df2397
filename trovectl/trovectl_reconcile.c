/*  trovectl reconcile - ask each shard's reconciler (trove-reconciler) for a
    run now, or for the report of a run. The reconciler answers when the run
    is over, with its report (docs/protocol.md, "reconciler"). */
#include "trovectl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RUN_TIMEOUT_MS (30 * 60 * 1000)
//  A reconciler that dies during the run drops the request (the client sees
//  the connection go): ask its replacement. A run is idempotent.
#define S_RUN_RETRIES 3

const char *const trovectl_reconcile_help =
    "usage: trovectl reconcile [--shard NAME] [--user USER] [--wait] [--json]\n"
    "       trovectl reconcile --report [RUN] [--shard NAME] [--json]\n"
    "                          [--dir DIR | --config FILE]\n"
    "\n"
    "Run each shard's reconciler now (or only --shard's; with --user only that\n"
    "user): it re-derives the coins from its replica of the event log with the\n"
    "rules in force, compares them with the scorer's ledger and has the scorer\n"
    "repair what differs (entries with reason `reconciled` and the run id).\n"
    "The command always waits for the run (--wait is accepted for scripts) and\n"
    "prints its report. --report prints the report of RUN, or of the last run.\n"
    "Exit 1 when a reconciler cannot be reached or a run failed, 3 when a run\n"
    "left users it could not repair.\n";

static void
s_print_report (json_t *r, bool json)
{
    if (json) {
        char *line = json_dumps (r, JSON_COMPACT);
        puts (line ? line : "{}");
        free (line);
        return;
    }
    json_t *d = json_object_get (r, "discrepancies"), *i = json_object_get (r, "integrity");
    printf ("%s %s: %lld events, %lld users, %lld digests; mismatched %lld (missing %lld, extra %lld, "
            "amended %lld); "
            "repaired %lld, verified %lld, unrepaired %lld; gaps %lld, provenance missing %lld, balance != "
            "sum %lld; "
            "position %lld, digest %s, %.1f s\n",
            json_string_value (json_object_get (r, "shard")), json_string_value (json_object_get (r, "run")),
            (long long) json_integer_value (json_object_get (r, "events_scanned")),
            (long long) json_integer_value (json_object_get (r, "users_checked")),
            (long long) json_integer_value (json_object_get (r, "digests_compared")),
            (long long) json_integer_value (json_object_get (r, "mismatched_users")),
            (long long) json_integer_value (json_object_get (d, "missing")),
            (long long) json_integer_value (json_object_get (d, "extra")),
            (long long) json_integer_value (json_object_get (d, "amended")),
            (long long) json_integer_value (json_object_get (r, "repairs_applied")),
            (long long) json_integer_value (json_object_get (r, "repairs_verified")),
            (long long) json_integer_value (json_object_get (r, "unrepaired")),
            (long long) json_integer_value (json_object_get (i, "sequence_gaps")),
            (long long) json_integer_value (json_object_get (i, "provenance_missing")),
            (long long) json_integer_value (json_object_get (i, "balance_not_sum")),
            (long long) json_integer_value (json_object_get (r, "log_position")),
            json_string_value (json_object_get (r, "shard_digest")),
            json_real_value (json_object_get (r, "duration_s")));
}

int
trovectl_reconcile (const trovectl_opts_t *opts)
{
    if (opts->nargs > (opts->report ? 1 : 0))
        return trovectl_fail ("reconcile: unexpected argument '%s' (see trovectl reconcile --help)",
                              opts->args [0]);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int rc = 0;
    bool found = false;
    for (size_t k = 0; k < trove_cfg_shards (cfg); k++) {
        const char *name = trove_cfg_shard_name (cfg, k);
        if (opts->shard && strcmp (opts->shard, name))
            continue;
        if (opts->user && !opts->shard && trove_cfg_shard_of_user (cfg, opts->user) != k)
            continue;
        found = true;
        const char *endpoint = trove_cfg_shard_reconcile (cfg, k);
        if (!endpoint) {
            rc = trovectl_fail ("shard %s has no reconciler (`reconcile` endpoint in its config section)",
                                name);
            continue;
        }
        Trove__Query q = TROVE__QUERY__INIT;
        q.kind = opts->report ? "report" : "reconcile";
        q.user = (char *) (opts->user ? opts->user : "");
        q.cursor = opts->report && opts->nargs ? opts->args [0] : "";
        char *err = NULL;
        Trove__QueryReply *reply = trove_client_call_max (endpoint, &q, S_RUN_TIMEOUT_MS, S_RUN_RETRIES,
                                                          trove_cfg_limits (cfg)->max_frame, &err);
        if (!reply || (reply->error && *reply->error)) {
            rc = trovectl_fail ("reconciler of %s: %s", name, reply ? reply->error : err ? err : "no answer");
            free (err);
            trove_client_reply_free (&reply);
            continue;
        }
        json_error_t jerr;
        json_t *report = json_loads (reply->report, 0, &jerr);
        if (!report)
            rc = trovectl_fail ("reconciler of %s: unreadable report", name);
        else {
            s_print_report (report, opts->json);
            if (rc == 0 && json_integer_value (json_object_get (report, "unrepaired")) > 0)
                rc = 3;
            json_decref (report);
        }
        trove_client_reply_free (&reply);
    }
    if (!found)
        rc = trovectl_fail ("no shard %s", opts->shard ? opts->shard : "matches");
    trove_cfg_destroy (&cfg);
    return rc;
}
