/*  trove_preview - rules vs ledger, read-only. See trove_preview.h. */
#include "trove_preview.h"
#include "trove_engine.h"
#include "trove_event.h"

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *user;   //  filter, or NULL
    zhashx_t *by_user;  //  user -> zlistx of Trove__Event (owned)
    size_t events;
} s_scan_t;

static void
s_event_free (void **item)
{
    trove_event_destroy ((Trove__Event **) item);
}

static void
s_list_free (void **item)
{
    zlistx_destroy ((zlistx_t **) item);
}

static int
s_on_event (void *arg, const Trove__EventRecord *rec)
{
    s_scan_t *scan = arg;
    const Trove__Event *ev = rec->event;
    if (scan->user && strcmp (ev->user, scan->user))
        return 0;
    zlistx_t *list = zhashx_lookup (scan->by_user, ev->user);
    if (!list) {
        if (!(list = zlistx_new ()))
            return -1;
        zlistx_set_destructor (list, s_event_free);
        zhashx_insert (scan->by_user, ev->user, list);
    }
    Trove__Event *copy = trove_event_dup (ev);
    if (!copy)
        return -1;
    zlistx_add_end (list, copy);
    scan->events++;
    return 0;
}

//  A derived coin.
typedef struct {
    char id [TROVE_COIN_ID_LEN + 1];
    char *hunt, *rule;
    int64_t value;
    uint32_t version;
} s_coin_t;

static void
s_coin_free (void **item)
{
    s_coin_t *c = *item;
    if (c) {
        free (c->hunt);
        free (c->rule);
        free (c);
        *item = NULL;
    }
}

static int
s_on_derived (void *arg, const trove_change_t *ch)
{
    zhashx_t *derived = arg;
    s_coin_t *c = calloc (1, sizeof *c);
    if (!c)
        return -1;
    snprintf (c->id, sizeof c->id, "%s", ch->id);
    c->hunt = strdup (ch->hunt);
    c->rule = strdup (ch->rule);
    c->value = ch->value;
    c->version = ch->version;
    if (!c->hunt || !c->rule) {
        s_coin_free ((void **) &c);
        return -1;
    }
    zhashx_update (derived, c->id, c);
    return 0;
}

typedef struct {
    json_t *rules;    //  "hunt/rule" -> {mint, revoke, coins_delta}
    json_t *changes;  //  array
    size_t max_changes;
    bool truncated;
    json_int_t mint, revoke, delta;
} s_report_t;

static void
s_count (s_report_t *r, const char *user, bool mint, const char *id, const char *hunt, const char *rule,
         int64_t value, uint32_t version)
{
    char key [200];
    snprintf (key, sizeof key, "%s/%s", hunt, rule);
    json_t *entry = json_object_get (r->rules, key);
    if (!entry) {
        entry = json_pack ("{s:s,s:s,s:I,s:I,s:I}", "hunt", hunt, "rule", rule, "mint", (json_int_t) 0,
                           "revoke", (json_int_t) 0, "coins_delta", (json_int_t) 0);
        json_object_set_new (r->rules, key, entry);
    }
    const char *field = mint ? "mint" : "revoke";
    json_object_set_new (entry, field,
                         json_integer (json_integer_value (json_object_get (entry, field)) + 1));
    json_int_t d = mint ? value : -value;
    json_object_set_new (entry, "coins_delta",
                         json_integer (json_integer_value (json_object_get (entry, "coins_delta")) + d));
    if (mint)
        r->mint++;
    else
        r->revoke++;
    r->delta += d;
    if (json_array_size (r->changes) >= r->max_changes) {
        r->truncated = true;
        return;
    }
    json_array_append_new (r->changes,
                           json_pack ("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "user", user, "action",
                                      mint ? "mint" : "revoke", "id", id, "hunt", hunt, "rule", rule, "value",
                                      (json_int_t) value, "version", (json_int_t) version));
}

static int
s_by_text (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

char *
trove_preview_run (trove_ledger_t *ledger, const trove_rules_t *rules, int64_t partition, const char *user,
                   size_t max_changes, char **err_p)
{
    char *text = NULL;
    const char *fail = NULL;
    s_scan_t scan = {user && *user ? user : NULL, zhashx_new (), 0};
    s_report_t report = {json_object (), json_array (), max_changes, false, 0, 0, 0};
    const char **users = NULL;
    if (!scan.by_user || !report.rules || !report.changes) {
        fail = "out of memory";
        goto done;
    }
    zhashx_set_destructor (scan.by_user, s_list_free);
    if (trove_ledger_scan_events (ledger, partition, s_on_event, &scan)) {
        fail = trove_ledger_error (ledger);
        goto done;
    }
    //  Users in a stable order, so that the report does not depend on hashing.
    size_t nusers = zhashx_size (scan.by_user), k = 0;
    users = calloc (nusers ? nusers : 1, sizeof *users);
    if (!users) {
        fail = "out of memory";
        goto done;
    }
    for (zlistx_t *l = zhashx_first (scan.by_user); l; l = zhashx_next (scan.by_user))
        users [k++] = zhashx_cursor (scan.by_user);
    qsort (users, nusers, sizeof *users, s_by_text);
    for (size_t u = 0; u < nusers && !fail; u++) {
        zlistx_t *list = zhashx_lookup (scan.by_user, users [u]);
        size_t n = zlistx_size (list), i = 0;
        Trove__Event **events = calloc (n ? n : 1, sizeof *events);
        zhashx_t *derived = zhashx_new ();
        Trove__Coin **live = NULL;
        size_t nlive = 0;
        if (!events || !derived) {
            fail = "out of memory";
        }
        else {
            zhashx_set_destructor (derived, s_coin_free);
            for (Trove__Event *ev = zlistx_first (list); ev; ev = zlistx_next (list))
                events [i++] = ev;
            if (trove_engine_derive (rules, events, n, s_on_derived, derived))
                fail = "rules engine: out of memory";
            else if (trove_ledger_live_coins (ledger, users [u], &live, &nlive))
                fail = trove_ledger_error (ledger);
        }
        if (!fail) {
            //  Revocations: live coins the rules do not derive (or with another value).
            zhashx_t *seen = zhashx_new ();
            for (size_t c = 0; c < nlive && seen; c++) {
                s_coin_t *d = zhashx_lookup (derived, live [c]->id);
                zhashx_insert (seen, live [c]->id, live [c]);
                if (!d || d->value != live [c]->value)
                    s_count (&report, users [u], false, live [c]->id, live [c]->hunt, live [c]->rule,
                             live [c]->value, live [c]->rule_version);
            }
            //  Mints: derived coins missing from the ledger (or with another value).
            size_t nd = zhashx_size (derived), j = 0;
            const char **ids = calloc (nd ? nd : 1, sizeof *ids);
            if (!seen || !ids)
                fail = "out of memory";
            else {
                for (s_coin_t *d = zhashx_first (derived); d; d = zhashx_next (derived))
                    ids [j++] = d->id;
                qsort (ids, nd, sizeof *ids, s_by_text);
                for (j = 0; j < nd; j++) {
                    s_coin_t *d = zhashx_lookup (derived, ids [j]);
                    Trove__Coin *l = zhashx_lookup (seen, d->id);
                    if (!l || l->value != d->value)
                        s_count (&report, users [u], true, d->id, d->hunt, d->rule, d->value, d->version);
                }
            }
            free (ids);
            zhashx_destroy (&seen);
        }
        trove_ledger_free_coins (live, nlive);
        zhashx_destroy (&derived);
        free (events);
    }
    if (!fail) {
        json_t *rule_list = json_array ();
        const char *key;
        json_t *value;
        json_object_foreach (report.rules, key, value) json_array_append (rule_list, value);
        json_t *out = json_pack ("{s:I,s:I,s:I,s:I,s:I,s:o,s:O,s:b}", "users", (json_int_t) nusers, "events",
                                 (json_int_t) scan.events, "mint", report.mint, "revoke", report.revoke,
                                 "coins_delta", report.delta, "rules", rule_list, "changes", report.changes,
                                 "truncated", report.truncated);
        text = out ? json_dumps (out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref (out);
        if (!text)
            fail = "out of memory";
    }
done:
    if (fail && err_p)
        *err_p = strdup (*fail ? fail : "storage error");
    free (users);
    zhashx_destroy (&scan.by_user);
    json_decref (report.rules);
    json_decref (report.changes);
    return text;
}
