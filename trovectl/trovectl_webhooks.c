/*  trovectl webhooks - the dead letters of trove-webhooks: list them, send
    them again (docs/webhooks.md, "Dead letters"; the control protocol is
    docs/protocol.md, "webhooks"). */
#include "trovectl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS 3000
#define S_RETRIES 1

const char *const trovectl_webhooks_help =
    "usage: trovectl webhooks list [--dir DIR | --config FILE] [--json]\n"
    "       trovectl webhooks retry ID | --all [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "list: the dead letters of trove-webhooks (deliveries that failed\n"
    "webhooks/max_attempts times): delivery id, endpoint, kind, attempts, state\n"
    "(dead, or retrying after a retry), the last error. --json: one dead letter\n"
    "per line, with the exact body sent.\n"
    "retry: deliver one dead letter again (by delivery id), or every one that is\n"
    "dead (--all), with a fresh retry schedule. A delivered one leaves the list;\n"
    "one that fails again is dead again. Needs role operator under CURVE.\n"
    "Exit 1 when trove-webhooks cannot be reached or refused.\n";

//  One control query; NULL after printing the failure.
static Trove__QueryReply *
s_call (const trove_cfg_t *cfg, Trove__Query *q)
{
    const char *endpoint = trove_cfg_webhooks (cfg)->control;
    char *err = NULL;
    Trove__QueryReply *reply =
        trove_client_call_max (endpoint, q, S_TIMEOUT_MS, S_RETRIES, trove_cfg_limits (cfg)->max_frame, &err);
    if (!reply || (reply->error && *reply->error)) {
        trovectl_fail ("webhooks at %s: %s", endpoint, reply ? reply->error : err ? err : "no answer");
        free (err);
        trove_client_reply_free (&reply);
        return NULL;
    }
    return reply;
}

static int
s_list (const trove_cfg_t *cfg, bool json)
{
    if (!json)
        printf ("%-32s %-16s %-7s %-8s %-9s %s\n", "ID", "ENDPOINT", "KIND", "ATTEMPTS", "STATE", "ERROR");
    char after [256] = "";
    size_t total = 0;
    while (true) {
        Trove__Query q = TROVE__QUERY__INIT;
        q.kind = "webhooks_list";
        q.cursor = after;
        Trove__QueryReply *reply = s_call (cfg, &q);
        if (!reply)
            return 1;
        json_t *page = json_loads (reply->report, 0, NULL);
        trove_client_reply_free (&reply);
        json_t *dead = json_object_get (page, "dead");
        if (!json_is_array (dead)) {
            json_decref (page);
            return trovectl_fail ("webhooks: unreadable answer");
        }
        size_t i;
        json_t *letter;
        json_array_foreach (dead, i, letter)
        {
            const char *id = json_string_value (json_object_get (letter, "id"));
            snprintf (after, sizeof after, "%s", id ? id : "");
            total++;
            if (json)
                trovectl_print_json (json_incref (letter));
            else
                printf ("%-32s %-16s %-7s %-8lld %-9s %s\n", id ? id : "?",
                        json_string_value (json_object_get (letter, "endpoint")),
                        json_string_value (json_object_get (letter, "kind")),
                        (long long) json_integer_value (json_object_get (letter, "attempts")),
                        json_string_value (json_object_get (letter, "state")),
                        json_string_value (json_object_get (letter, "error")));
        }
        bool more = json_is_true (json_object_get (page, "more")) && json_array_size (dead) > 0;
        json_decref (page);
        if (!more)
            break;
    }
    if (!json)
        printf ("%zu dead letter%s\n", total, total == 1 ? "" : "s");
    return 0;
}

static int
s_retry (const trove_cfg_t *cfg, const char *id, bool json)
{
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "webhooks_retry";
    q.cursor = (char *) id;
    Trove__QueryReply *reply = s_call (cfg, &q);
    if (!reply)
        return 1;
    json_t *report = json_loads (reply->report, 0, NULL);
    trove_client_reply_free (&reply);
    if (!report)
        return trovectl_fail ("webhooks: unreadable answer");
    json_int_t retried = json_integer_value (json_object_get (report, "retried"));
    json_int_t failed = json_integer_value (json_object_get (report, "failed"));
    if (json)
        trovectl_print_json (report);
    else {
        printf ("%lld dead letter%s queued for delivery%s\n", (long long) retried, retried == 1 ? "" : "s",
                failed ? " (some could not be: see the trove-webhooks log)" : "");
        json_decref (report);
    }
    return failed ? 1 : 0;
}

int
trovectl_webhooks (const trovectl_opts_t *opts)
{
    const char *verb = opts->nargs ? opts->args [0] : "";
    bool list = strcmp (verb, "list") == 0, retry = strcmp (verb, "retry") == 0;
    if (!list && !retry)
        return trovectl_fail ("webhooks: want list or retry (see trovectl webhooks --help)");
    if (list && (opts->nargs > 1 || opts->all))
        return trovectl_fail ("webhooks list: takes no argument but --dir, --config, --json");
    if (retry && (opts->nargs == 2) == opts->all)
        return trovectl_fail ("webhooks retry: give one delivery id, or --all");
    if (opts->nargs > 2)
        return trovectl_fail ("webhooks: unexpected argument '%s'", opts->args [2]);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int rc;
    if (!trove_cfg_webhooks (cfg))
        rc = trovectl_fail ("the config has no webhooks section (docs/webhooks.md)");
    else if (list)
        rc = s_list (cfg, opts->json);
    else
        rc = s_retry (cfg, opts->all ? "*" : opts->args [1], opts->json);
    trove_cfg_destroy (&cfg);
    return rc;
}
