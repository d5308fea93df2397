/*  trove_json - JSON shapes of query answers. See trove_json.h. */
#include "trove_json.h"
#include "trove_event.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *
s_str (const char *text)
{
    return json_string (text ? text : "");
}

json_t *
trove_json_coin (const Trove__Coin *coin)
{
    char minted [40];
    trove_format_rfc3339 (coin->minted_ms, minted, sizeof minted);
    json_t *events = json_array ();
    for (size_t i = 0; i < coin->n_events; i++)
        json_array_append_new (events, json_pack ("{s:o,s:o}", "source", s_str (coin->events [i]->source),
                                                  "id", s_str (coin->events [i]->id)));
    json_t *obj =
        json_pack ("{s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:o,s:b}", "id", s_str (coin->id), "user",
                   s_str (coin->user), "hunt", s_str (coin->hunt), "rule", s_str (coin->rule), "rule_version",
                   (json_int_t) coin->rule_version, "value", (json_int_t) coin->value, "reason",
                   s_str (coin->reason), "minted", json_string (minted), "minted_ms",
                   (json_int_t) coin->minted_ms, "shard", (json_int_t) coin->shard, "aseq",
                   (json_int_t) coin->aseq, "events", events, "revoked", coin->revoked);
    if (obj && coin->run && *coin->run)
        json_object_set_new (obj, "run", json_string (coin->run));
    return obj;
}

void
trove_json_event_redact (json_t *event, const char *source)
{
    const char *from = json_string_value (json_object_get (event, "source"));
    if (!json_is_object (event) || (from && strcmp (from, source) == 0))
        return;
    json_object_set_new (event, "id", json_null ());
    json_object_del (event, "attrs");
}

void
trove_json_coin_redact (json_t *coin, const char *source)
{
    json_t *events = json_object_get (coin, "events");
    size_t i;
    json_t *e;
    json_array_foreach (events, i, e) trove_json_event_redact (e, source);
}

json_t *
trove_json_coin_provenance (const Trove__QueryReply *reply)
{
    json_t *events = json_array ();
    for (size_t i = 0; i < reply->n_events; i++) {
        if (!reply->events [i]->event)
            continue;
        char *text = trove_event_to_json (reply->events [i]->event);
        json_t *event = text ? json_loads (text, 0, NULL) : NULL;
        free (text);
        json_array_append_new (events, event ? event : json_null ());
    }
    return json_pack ("{s:o,s:o,s:I}", "coin",
                      reply->n_coins ? trove_json_coin (reply->coins [0]) : json_null (), "events", events,
                      "cost", (json_int_t) reply->cost);
}

json_t *
trove_json_coins (const char *user, const Trove__QueryReply *reply)
{
    json_t *coins = json_array ();
    for (size_t i = 0; coins && i < reply->n_coins; i++)
        if (json_array_append_new (coins, trove_json_coin (reply->coins [i]))) {
            json_decref (coins);
            return NULL;
        }
    return json_pack ("{s:s,s:o,s:o,s:I}", "user", user, "coins", coins, "next_cursor",
                      s_str (reply->next_cursor), "cost", (json_int_t) reply->cost);
}

json_t *
trove_json_balance (const char *user, const Trove__QueryReply *reply)
{
    json_t *hunts = json_object ();
    for (size_t h = 0; h < reply->n_entries; h++)
        json_object_set_new (hunts, reply->entries [h]->hunt, json_integer (reply->entries [h]->score));
    return json_pack ("{s:s,s:I,s:o,s:I}", "user", user, "balance", (json_int_t) reply->balance, "hunts",
                      hunts, "cost", (json_int_t) reply->cost);
}

json_t *
trove_json_board (const Trove__QueryReply *reply, bool list)
{
    json_t *entries = json_array ();
    for (size_t i = 0; i < reply->n_entries; i++) {
        const Trove__BoardEntry *e = reply->entries [i];
        json_array_append_new (
            entries, list ? json_pack ("{s:s,s:I}", "period", e->period, "users", (json_int_t) e->users)
                          : json_pack ("{s:I,s:s,s:I}", "rank", (json_int_t) e->rank, "user", e->user,
                                       "score", (json_int_t) e->score));
    }
    return json_pack ("{s:o,s:I,s:b}", "entries", entries, "cost", (json_int_t) reply->cost, "more",
                      reply->more);
}

json_t *
trove_json_around (const char *user, const Trove__QueryReply *reply)
{
    json_t *obj = trove_json_board (reply, false);
    if (obj
        && (json_object_set_new (obj, "user", json_string (user))
            || json_object_set_new (obj, "score", json_integer (reply->balance)))) {
        json_decref (obj);
        return NULL;
    }
    return obj;
}

json_t *
trove_json_progress (const char *user, const Trove__QueryReply *reply)
{
    json_t *rules = json_array ();
    for (size_t i = 0; i < reply->n_progress; i++) {
        const Trove__Progress *p = reply->progress [i];
        json_t *o =
            json_pack ("{s:s,s:s,s:s,s:I,s:I,s:I}", "hunt", p->hunt, "rule", p->rule, "kind", p->kind, "have",
                       (json_int_t) p->have, "need", (json_int_t) p->need, "done", (json_int_t) p->done);
        if (o && *p->period) {
            json_object_set_new (o, "period", json_string (p->period));
            json_object_set_new (o, "left", json_integer (p->left));
        }
        json_array_append_new (rules, o);
    }
    return json_pack ("{s:s,s:o,s:I}", "user", user, "rules", rules, "cost", (json_int_t) reply->cost);
}

static void
s_add_int (json_t *obj, const char *key, json_int_t by)
{
    json_object_set_new (obj, key, json_integer (json_integer_value (json_object_get (obj, key)) + by));
}

json_t *
trove_json_preview_merge (json_t *const *reports, size_t n)
{
    json_t *by_rule = json_object (), *changes = json_array ();
    json_int_t users = 0, events = 0, mint = 0, revoke = 0, delta = 0;
    bool truncated = false;
    for (size_t k = 0; k < n && by_rule && changes; k++) {
        const json_t *report = reports [k];
        if (!report)
            continue;
        users += json_integer_value (json_object_get (report, "users"));
        events += json_integer_value (json_object_get (report, "events"));
        mint += json_integer_value (json_object_get (report, "mint"));
        revoke += json_integer_value (json_object_get (report, "revoke"));
        delta += json_integer_value (json_object_get (report, "coins_delta"));
        truncated |= json_is_true (json_object_get (report, "truncated"));
        size_t i;
        json_t *r;
        json_array_foreach (json_object_get (report, "rules"), i, r)
        {
            char key [200];
            snprintf (key, sizeof key, "%s/%s", json_string_value (json_object_get (r, "hunt")),
                      json_string_value (json_object_get (r, "rule")));
            json_t *into = json_object_get (by_rule, key);
            if (!into)
                json_object_set_new (by_rule, key, json_deep_copy (r));
            else {
                s_add_int (into, "mint", json_integer_value (json_object_get (r, "mint")));
                s_add_int (into, "revoke", json_integer_value (json_object_get (r, "revoke")));
                s_add_int (into, "coins_delta", json_integer_value (json_object_get (r, "coins_delta")));
            }
        }
        json_t *more = json_deep_copy (json_object_get (report, "changes"));
        if (json_is_array (more))
            json_array_extend (changes, more);
        json_decref (more);
    }
    json_t *rules = json_array ();
    const char *key;
    json_t *value;
    json_object_foreach (by_rule, key, value) json_array_append (rules, value);
    json_decref (by_rule);
    if (!rules || !changes) {
        json_decref (rules);
        json_decref (changes);
        return NULL;
    }
    return json_pack ("{s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:b}", "users", users, "events", events, "mint", mint,
                      "revoke", revoke, "coins_delta", delta, "rules", rules, "changes", changes, "truncated",
                      truncated);
}
