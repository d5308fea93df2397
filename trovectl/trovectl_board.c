/*  trovectl board / progress / exclude / include - the player-facing
    queries through trove_router (docs/queries.md). Every answer reports its
    cost in units. */
#include "trovectl.h"
#include "trove_json.h"
#include "trove_router.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS 5000

const char *const trovectl_board_help =
    "usage: trovectl board HUNT [--period P] [--limit N] [--after SCORE:USER] [--json]\n"
    "       trovectl board HUNT --user USER [--k K] [--period P] [--json]\n"
    "       trovectl board HUNT --list [--limit N] [--json]\n"
    "                      [--dir DIR | --config FILE]\n"
    "\n"
    "HUNT is a hunt id, or '*' for every hunt together (all-time only).\n"
    "P is all (default), day:YYYY-MM-DD or week:YYYY-MM-DD (a Monday), in the\n"
    "hunt's time zone; past days and weeks stay readable.\n"
    "  top N (default 10) in board order: score descending, then user id;\n"
    "    --after SCORE:USER continues after that entry (the next page);\n"
    "  --user: USER's rank with K (default 5) entries on each side;\n"
    "  --list: the hunt's boards and their users, newest first.\n"
    "Rank = 1 + users with a higher score (equal scores share a rank).\n"
    "Output: \"RANK USER SCORE\" per line, then \"cost N units\"; --json: one\n"
    "object with entries, cost and more (--user: also user and score), the\n"
    "same as the ingestors' GET /v1/leaderboards/HUNT[/around/USER|/periods].\n"
    "Exit 1 on an error (cost_limit included).\n";

const char *const trovectl_progress_help =
    "usage: trovectl progress USER [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "USER's progress on every rule of the hunts in force: each + cap: awards\n"
    "used and left this period; count: events (or distinct values) toward the\n"
    "next award; sequence: steps matched; streak: consecutive days. Output:\n"
    "\"HUNT RULE KIND HAVE/NEED done D [period P, left L]\" per rule.\n";

const char *const trovectl_exclude_help =
    "usage: trovectl exclude USER [--reason TEXT] [--dir DIR | --config FILE] [--json]\n"
    "       trovectl include USER [--dir DIR | --config FILE] [--json]\n"
    "       trovectl exclude --list [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Take USER off every leaderboard (staff, banned; coins and balance stay),\n"
    "or put USER back with every coin earned meanwhile. --list: the excluded.\n";

static int
s_reply_error (const char *what, Trove__QueryReply *reply, char *err)
{
    int rc = trovectl_fail ("%s: %s", what, reply ? reply->error : err ? err : "no answer");
    free (err);
    trove_client_reply_free (&reply);
    return rc;
}

static bool
s_failed (Trove__QueryReply *reply)
{
    return !reply || (reply->error && *reply->error);
}

static void
s_print_entries (const Trove__QueryReply *r, bool json, bool list, const char *around)
{
    if (json) {
        json_t *obj = around ? trove_json_around (around, r) : trove_json_board (r, list);
        char *text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
        puts (text ? text : "{}");
        free (text);
        json_decref (obj);
        return;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        const Trove__BoardEntry *e = r->entries [i];
        if (list)
            printf ("%s %llu\n", e->period, (unsigned long long) e->users);
        else
            printf ("%llu %s %lld\n", (unsigned long long) e->rank, e->user, (long long) e->score);
    }
    printf ("cost %llu units%s\n", (unsigned long long) r->cost, r->more ? " (more follow)" : "");
}

int
trovectl_board (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("board: name one hunt (see trovectl board --help)");
    const char *hunt = opts->args [0], *period = opts->period ? opts->period : "all";
    int64_t after_score = 0;
    const char *after_user = NULL;
    if (opts->after) {
        char *end;
        after_score = strtoll (opts->after, &end, 10);
        if (end == opts->after || *end != ':' || !end [1])
            return trovectl_fail ("board: --after '%s': want SCORE:USER (the last entry of a page)",
                                  opts->after);
        after_user = end + 1;
    }
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    trove_router_t *router = trove_router_new (cfg, S_TIMEOUT_MS);
    int rc = 0;
    if (!router)
        rc = trovectl_fail ("board: cannot create sockets");
    else {
        char *err = NULL;
        Trove__QueryReply *reply;
        size_t limit = opts->limit > 0 ? (size_t) opts->limit : 10;
        if (opts->list)
            reply = trove_router_boards (router, hunt, opts->limit > 0 ? (size_t) opts->limit : 50, &err);
        else if (opts->user)
            reply = trove_router_around (router, hunt, period, opts->user,
                                         opts->k >= 0 ? (size_t) opts->k : 5, &err);
        else
            reply = trove_router_top (router, hunt, period, limit, after_score, after_user, &err);
        if (s_failed (reply))
            rc = s_reply_error ("board", reply, err);
        else {
            s_print_entries (reply, opts->json, opts->list, opts->list ? NULL : opts->user);
            trove_client_reply_free (&reply);
        }
    }
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return rc;
}

int
trovectl_progress (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("progress: name one user (see trovectl progress --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    trove_router_t *router = trove_router_new (cfg, S_TIMEOUT_MS);
    int rc = 0;
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "progress";
    q.user = opts->args [0];
    char *err = NULL;
    Trove__QueryReply *reply = router ? trove_router_user (router, &q, &err) : NULL;
    if (s_failed (reply))
        rc = s_reply_error ("progress", reply, err);
    else {
        for (size_t i = 0; !opts->json && i < reply->n_progress; i++) {
            const Trove__Progress *p = reply->progress [i];
            if (*p->period)
                printf ("%s %s %s %u/%u done %u period %s left %u\n", p->hunt, p->rule, p->kind, p->have,
                        p->need, p->done, p->period, p->left);
            else
                printf ("%s %s %s %u/%u done %u\n", p->hunt, p->rule, p->kind, p->have, p->need, p->done);
        }
        if (opts->json) {
            json_t *obj = trove_json_progress (q.user, reply);
            char *text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
            puts (text ? text : "{}");
            free (text);
            json_decref (obj);
        }
        else
            printf ("cost %llu units\n", (unsigned long long) reply->cost);
        trove_client_reply_free (&reply);
    }
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return rc;
}

int
trovectl_exclude (const trovectl_opts_t *opts)
{
    bool include = strcmp (opts->command, "include") == 0;
    if (opts->nargs != (opts->list ? 0 : 1))
        return trovectl_fail ("%s: name one user (see trovectl %s --help)", opts->command, opts->command);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    trove_router_t *router = trove_router_new (cfg, S_TIMEOUT_MS);
    int rc = 0;
    Trove__Query q = TROVE__QUERY__INIT;
    char *err = NULL;
    if (!router)
        rc = trovectl_fail ("%s: cannot create sockets", opts->command);
    else if (opts->list) {
        q.kind = "board_excluded";
        q.limit = 1000;
        Trove__QueryReply *replies [256] = {NULL};
        size_t n = trove_cfg_shards (cfg);
        if (trove_router_all (router, &q, replies) != (int) n)
            rc = trovectl_fail ("exclude --list: a shard did not answer");
        for (size_t k = 0; k < n; k++) {
            for (size_t i = 0; rc == 0 && replies [k] && i < replies [k]->n_entries; i++) {
                const Trove__BoardEntry *e = replies [k]->entries [i];
                if (opts->json) {
                    json_t *o = json_pack ("{s:s,s:s}", "user", e->user, "reason", e->reason);
                    char *text = json_dumps (o, JSON_COMPACT);
                    puts (text ? text : "{}");
                    free (text);
                    json_decref (o);
                }
                else
                    printf ("%s %s\n", e->user, e->reason);
            }
            trove_client_reply_free (&replies [k]);
        }
    }
    else {
        q.kind = "board_exclude";
        q.user = opts->args [0];
        q.exclude = !include;
        q.reason = (char *) (opts->reason ? opts->reason : "");
        Trove__QueryReply *reply = trove_router_user (router, &q, &err);
        if (s_failed (reply))
            rc = s_reply_error (opts->command, reply, err);
        else {
            if (opts->json) {
                json_t *o = json_pack ("{s:s,s:b}", "user", q.user, "excluded", !include);
                char *text = json_dumps (o, JSON_COMPACT);
                puts (text ? text : "{}");
                free (text);
                json_decref (o);
            }
            else
                printf ("%s %s\n", q.user, include ? "included" : "excluded");
            trove_client_reply_free (&reply);
        }
    }
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return rc;
}
