/*  trovectl balance, coins, coin, tail - a user's balance and coins, one
    coin with its events, the award stream. Every query goes through
    trove_router, as the HTTP API's do (the same shard, the same cost). */
#include "trovectl.h"
#include "trove_error.h"
#include "trove_event.h"
#include "trove_json.h"
#include "trove_router.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Timeout of the queries of balance, coins and coin (the router retries
//  once on a fresh socket).
#define S_QUERY_TIMEOUT_MS 2000
//  Coins per "coins" query.
#define S_COINS_PAGE 200

//  "web/e-1,web/e-2" into buf.
static void
s_coin_events (const Trove__Coin *coin, char *buf, size_t size)
{
    size_t used = 0;
    buf [0] = 0;
    for (size_t i = 0; i < coin->n_events && used < size; i++)
        used += snprintf (buf + used, size - used, "%s%s/%s", i ? "," : "", coin->events [i]->source,
                          coin->events [i]->id);
}

static void
s_print_coin_line (const Trove__Coin *coin, bool with_user)
{
    char minted [40], events [1024];
    trove_format_rfc3339 (coin->minted_ms, minted, sizeof minted);
    s_coin_events (coin, events, sizeof events);
    if (with_user)
        printf ("s%u #%llu %s user=%s value=%lld hunt=%s rule=%s v%u reason=%s minted=%s events=%s%s\n",
                coin->shard, (unsigned long long) coin->aseq, coin->id, coin->user, (long long) coin->value,
                coin->hunt, coin->rule, coin->rule_version, coin->reason, minted, events,
                coin->revoked ? " REVOKED" : "");
    else
        printf ("%s value=%lld hunt=%s rule=%s v%u reason=%s minted=%s events=%s%s\n", coin->id,
                (long long) coin->value, coin->hunt, coin->rule, coin->rule_version, coin->reason, minted,
                events, coin->revoked ? " REVOKED" : "");
}

//  q to the shard that owns q->user, through router. Prints the failure and
//  returns NULL when no answer came or the answer is an error.
static Trove__QueryReply *
s_ask_owner (trove_router_t *router, const trove_cfg_t *cfg, const Trove__Query *q)
{
    const char *shard = trove_cfg_shard_name (cfg, trove_cfg_shard_of_user (cfg, q->user));
    char *err = NULL;
    Trove__QueryReply *reply = trove_router_user (router, q, &err);
    if (!reply) {
        trovectl_fail ("scorer %s: %s", shard, err ? err : "no reply");
        free (err);
        return NULL;
    }
    if (reply->error && *reply->error) {
        trovectl_fail ("scorer %s: %s query failed: %s", shard, q->kind, reply->error);
        trove_client_reply_free (&reply);
    }
    return reply;
}

//  A router for the queries of a command; NULL after printing the error.
static trove_router_t *
s_router_new (const trove_cfg_t *cfg)
{
    trove_router_t *router = trove_router_new (cfg, S_QUERY_TIMEOUT_MS);
    if (!router)
        trovectl_fail ("cannot create the sockets to the scorers");
    return router;
}

//  ---------------------------------------------------------------------------
//  balance

const char *const trovectl_balance_help =
    "usage: trovectl balance USER [USER...] [--as-of TIME] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Print each user's coin balance, asked from the user's scorer shard.\n"
    "Output: \"USER BALANCE\" per line; --json: {\"user\":..,\"balance\":N,\"hunts\":\n"
    "{HUNT: N, ...},\"cost\":UNITS} per line (per-hunt balances, the query's cost).\n"
    "  --as-of TIME  the balance as the ledger stood at TIME (RFC 3339 or ms since\n"
    "                the epoch; processing time: the entries written by then).\n"
    "Exit 1 if a shard does not answer.\n";

//  --as-of TIME: 0 when absent; -1 (after the error) when unreadable.
static int64_t
s_as_of (const trovectl_opts_t *opts)
{
    int64_t ms = 0;
    if (opts->as_of && trove_parse_instant (opts->as_of, &ms))
        return trovectl_fail ("--as-of %s: want an RFC 3339 time or milliseconds since the epoch",
                              opts->as_of),
             -1;
    return ms;
}

int
trovectl_balance (const trovectl_opts_t *opts)
{
    if (opts->nargs == 0)
        return trovectl_fail ("balance: name at least one user (see trovectl balance --help)");
    int64_t as_of_ms = s_as_of (opts);
    if (as_of_ms < 0)
        return 1;
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    trove_router_t *router = s_router_new (cfg);
    int rc = router ? 0 : 1;
    for (int i = 0; i < opts->nargs && rc == 0; i++) {
        const char *user = opts->args [i];
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "balance";
        query.user = (char *) user;
        query.as_of_ms = as_of_ms;
        Trove__QueryReply *reply = s_ask_owner (router, cfg, &query);
        if (!reply) {
            rc = 1;
            break;
        }
        if (opts->json) {
            json_t *root = trove_json_balance (user, reply);
            if (as_of_ms)
                json_object_set_new (root, "as_of_ms", json_integer (as_of_ms));
            trovectl_print_json (root);
        }
        else
            printf ("%s %lld\n", user, (long long) reply->balance);
        trove_client_reply_free (&reply);
    }
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  coins

const char *const trovectl_coins_help =
    "usage: trovectl coins USER [--limit N] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "List a user's coins, newest first: id, value, hunt, rule, rule version,\n"
    "reason, mint time (RFC 3339) and the earning events (source/id).\n"
    "  --limit N  at most N coins (default 50, 0 = all).\n"
    "  --as-of TIME  the coins the user held at TIME instead (RFC 3339 or ms since\n"
    "                the epoch): each coin's entry then, revoked ones left out.\n"
    "--json: one coin object per line.\n";

int
trovectl_coins (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("coins: name one user (see trovectl coins --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    const char *user = opts->args [0];
    int64_t as_of_ms = s_as_of (opts);
    if (as_of_ms < 0) {
        trove_cfg_destroy (&cfg);
        return 1;
    }
    trove_router_t *router = s_router_new (cfg);
    long limit = opts->limit < 0 ? 50 : opts->limit;
    long shown = 0;
    char *cursor = router ? strdup ("") : NULL;
    int rc = router ? 0 : 1;
    while (cursor && (limit == 0 || shown < limit)) {
        Trove__Query query = TROVE__QUERY__INIT;
        query.kind = "coins";
        query.user = (char *) user;
        query.cursor = cursor;
        query.as_of_ms = as_of_ms;  //  one page: the coins held then
        long want = limit == 0 || limit - shown > S_COINS_PAGE ? S_COINS_PAGE : limit - shown;
        query.limit = (uint32_t) want;
        Trove__QueryReply *reply = s_ask_owner (router, cfg, &query);
        if (!reply) {
            rc = 1;
            break;
        }
        for (size_t i = 0; i < reply->n_coins && (limit == 0 || shown < limit); i++, shown++) {
            if (opts->json)
                trovectl_print_json (trove_json_coin (reply->coins [i]));
            else
                s_print_coin_line (reply->coins [i], false);
        }
        free (cursor);
        cursor = NULL;
        if (reply->next_cursor && *reply->next_cursor && reply->n_coins > 0)
            cursor = strdup (reply->next_cursor);
        trove_client_reply_free (&reply);
    }
    free (cursor);
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  coin

const char *const trovectl_coin_help =
    "usage: trovectl coin ID [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Show one coin and the events that earned it (each as its full event JSON).\n"
    "The coin id does not name its shard, so every shard is asked.\n"
    "--json: one document {\"coin\":{..},\"events\":[{event}..],\"cost\":UNITS} (units\n"
    "read on every shard), the same as the ingestors' GET /v1/coins/ID.\n"
    "Exit 1 if the coin is not found (or a shard that might hold it is down).\n";

int
trovectl_coin (const trovectl_opts_t *opts)
{
    if (opts->nargs != 1)
        return trovectl_fail ("coin: name one coin id (see trovectl coin --help)");
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int rc = 1;
    //  Every shard at once, as the HTTP API does (the same cost).
    trove_router_t *router = trove_router_new (cfg, S_QUERY_TIMEOUT_MS);
    char *err = NULL;
    Trove__QueryReply *reply = router ? trove_router_coin (router, opts->args [0], &err) : NULL;
    trove_router_destroy (&router);
    if (!reply || (reply->error && *reply->error) || reply->n_coins == 0) {
        if (!reply)
            trovectl_fail ("coin %s not found (%s)", opts->args [0], err ? err : "cannot create sockets");
        else if (!(reply->error && *reply->error) || trove_error_parse (reply->error) == TROVE_E_NOT_FOUND)
            trovectl_fail ("coin %s not found", opts->args [0]);
        else
            trovectl_fail ("coin %s: %s", opts->args [0], reply->error);
        free (err);
        goto fail;
    }
    const Trove__Coin *coin = reply->coins [0];
    if (opts->json)
        trovectl_print_json (trove_json_coin_provenance (reply));
    else {
        char minted [40];
        trove_format_rfc3339 (coin->minted_ms, minted, sizeof minted);
        printf ("coin         %s\nuser         %s\nvalue        %lld\nhunt         %s\n"
                "rule         %s (version %u)\nreason       %s\nminted       %s\n"
                "shard        %s (aseq %llu)\n%s",
                coin->id, coin->user, (long long) coin->value, coin->hunt, coin->rule, coin->rule_version,
                coin->reason, minted,
                trove_cfg_shard_name (cfg, coin->shard < trove_cfg_shards (cfg) ? coin->shard : 0),
                (unsigned long long) coin->aseq, coin->revoked ? "revoked      yes\n" : "");
        printf ("events       %zu\n", reply->n_events);
        for (size_t i = 0; i < reply->n_events; i++) {
            if (!reply->events [i]->event)
                continue;
            char *text = trove_event_to_json (reply->events [i]->event);
            printf ("  %s\n", text ? text : "?");
            free (text);
        }
    }
    rc = 0;
fail:
    trove_client_reply_free (&reply);
    trove_cfg_destroy (&cfg);
    return rc;
}

//  ---------------------------------------------------------------------------
//  tail

const char *const trovectl_tail_help =
    "usage: trovectl tail [--from-start] [--count N] [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Follow the award stream: every award of every shard exactly once, in award\n"
    "sequence order per shard (gaps are fetched from the scorers).\n"
    "  --from-start  begin with each shard's first award (default: from now).\n"
    "  --count N     stop after N awards (default: run until SIGINT).\n"
    "Output: \"sSHARD #ASEQ ID user=.. value=.. ..\" per award; --json: one coin\n"
    "object per line.\n";

typedef struct {
    bool json;   //  --json
    long count;  //  stop after this many, 0 = never
    long seen;   //  printed so far
} s_tail_t;

static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    s_tail_t *self = (s_tail_t *) arg;
    if (self->count && self->seen >= self->count)
        return;
    self->seen++;
    if (self->json)
        trovectl_print_json (trove_json_coin (coin));
    else
        s_print_coin_line (coin, true);
    fflush (stdout);
}

int
trovectl_tail (const trovectl_opts_t *opts)
{
    if (opts->nargs)
        return trovectl_fail ("tail: unexpected argument '%s'", opts->args [0]);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    trovectl_catch_signals ();
    s_tail_t state = {.json = opts->json, .count = opts->count > 0 ? opts->count : 0};
    trove_awardsub_t *sub = trove_awardsub_new (cfg, !opts->from_start, s_on_award, &state);
    int rc = 0;
    if (!sub)
        rc = trovectl_fail ("cannot subscribe to %s", trove_cfg_broker_sub (cfg));
    while (sub && !trovectl_interrupted () && !(state.count && state.seen >= state.count))
        trove_awardsub_poll (sub, 200);
    trove_awardsub_destroy (&sub);
    trove_cfg_destroy (&cfg);
    return rc;
}
