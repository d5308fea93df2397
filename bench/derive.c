/*  bench-derive - re-derivation throughput: what a reconciler run costs per
    event on one core. N events of U users (in event-time order per user,
    as a replica holds them grouped by partition) are derived user by user
    with trove_engine_derive, the function the reconciler and the scorer's
    re-derive request use, and each user's live coins digested
    (trove_hash_coins_digest), as a run does before comparing.

    usage: bench-derive [--events N] [--users U] [--rules demo|trail]
      demo:  3 plain `each` rules (etc/rules/demo.yaml)
      trail: a cap per day, a distinct count, a 3-step sequence, a streak
    Prints a line of JSON: events, users, seconds, events_per_s, coins. */
#include "trove_engine.h"
#include "trove_hash.h"
#include "trove_rules.h"
#include "trove_util.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_demo = "hunt: demo\nversion: 1\nrules:\n"
                            "  - {id: checkin, kind: each, match: {type: checkin}, coins: 1}\n"
                            "  - {id: visit, kind: each, match: {type: visit}, coins: 2}\n"
                            "  - {id: purchase, kind: each, match: {type: purchase}, coins: 5}\n";
static const char *s_trail =
    "hunt: trail\nversion: 1\ntimezone: Europe/Paris\nlateness: 10m\nrules:\n"
    "  - {id: daily, kind: each, match: {type: checkin}, coins: 3, cap: {max: 1, per: day}}\n"
    "  - {id: explorer, kind: count, match: {type: visit}, distinct: zone, count: 3, coins: 10, repeat: "
    "true}\n"
    "  - {id: path, kind: sequence, within: 1h, coins: 50, repeat: true,\n"
    "     steps: [{type: visit, attrs: {zone: A}}, {type: visit, attrs: {zone: B}}, {type: purchase}]}\n"
    "  - {id: streak, kind: streak, match: {type: checkin}, days: 3, coins: 25, repeat: true}\n";

typedef struct {
    Trove__Coin **coins;
    size_t n, cap;
} s_live_t;

static int
s_collect (void *arg, const trove_change_t *ch)
{
    s_live_t *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->coins = realloc (l->coins, l->cap * sizeof *l->coins);
    }
    Trove__Coin *c = calloc (1, sizeof *c);
    trove__coin__init (c);
    c->id = strdup (ch->id);
    c->value = ch->value;
    c->rule_version = ch->version;
    l->coins [l->n++] = c;
    return 0;
}

int
main (int argc, char **argv)
{
    long events = 5000000, users = 100000;
    const char *which = "demo";
    static const struct option options [] = {{"events", required_argument, NULL, 'e'},
                                             {"users", required_argument, NULL, 'u'},
                                             {"rules", required_argument, NULL, 'r'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (c == 'e')
            events = atol (optarg);
        else if (c == 'u')
            users = atol (optarg);
        else if (c == 'r')
            which = optarg;
        else
            return 2;
    }
    const char *yaml = strcmp (which, "trail") == 0 ? s_trail : s_demo;
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text (which, yaml, strlen (yaml), &err);
    if (!rules || users <= 0 || events <= 0) {
        fprintf (stderr, "bench-derive: %s\n", err ? err : "bad arguments");
        return 1;
    }
    //  Events grouped by user, each user's in ts order (as in a replica).
    long per = events / users;
    Trove__Event *pool = calloc ((size_t) (per * users), sizeof *pool);
    Trove__Attr *attrs = calloc ((size_t) (per * users), sizeof *attrs);
    Trove__Attr **attr_ptrs = calloc ((size_t) (per * users), sizeof *attr_ptrs);
    char *text = calloc ((size_t) (per * users), 48);
    const char *types [] = {"checkin", "visit", "purchase", "share"};
    const char *zones [] = {"A", "B", "C", "D"};
    unsigned seed = 1;
    int64_t t0 = 1777600000000LL;
    for (long u = 0; u < users; u++) {
        int64_t ts = t0 + (int64_t) (rand_r (&seed) % 86400) * 1000;
        for (long k = 0; k < per; k++) {
            long i = u * per + k;
            Trove__Event *e = &pool [i];
            trove__event__init (e);
            char *t = text + i * 48;
            snprintf (t, 16, "u%ld", u % 100000000);
            snprintf (t + 16, 32, "e%ld", i % 1000000000000L);
            e->source = "web";
            e->user = t;
            e->id = t + 16;
            e->type = (char *) types [rand_r (&seed) % 4];
            ts += (rand_r (&seed) % 7200) * 1000;
            e->ts_ms = ts;
            trove__attr__init (&attrs [i]);
            attrs [i].key = "zone";
            attrs [i].value_case = TROVE__ATTR__VALUE_S;
            attrs [i].s = (char *) zones [rand_r (&seed) % 4];
            attr_ptrs [i] = &attrs [i];
            e->n_attrs = 1;
            e->attrs = &attr_ptrs [i];
        }
    }
    Trove__Event **ptrs = calloc ((size_t) per, sizeof *ptrs);
    size_t coins = 0;
    int64_t start = trove_mono_us ();
    for (long u = 0; u < users; u++) {
        for (long k = 0; k < per; k++)
            ptrs [k] = &pool [u * per + k];
        s_live_t live = {0};
        trove_engine_derive (rules, ptrs, (size_t) per, s_collect, &live);
        char digest [TROVE_COIN_ID_LEN + 1];
        trove_hash_coins_digest (live.coins, live.n, digest);
        coins += live.n;
        for (size_t i = 0; i < live.n; i++) {
            free (live.coins [i]->id);
            free (live.coins [i]);
        }
        free (live.coins);
    }
    double secs = (trove_mono_us () - start) / 1e6;
    printf ("{\"bench\":\"derive\",\"rules\":\"%s\",\"events\":%ld,\"users\":%ld,\"seconds\":%.2f,"
            "\"events_per_s\":%.0f,\"coins\":%zu}\n",
            which, per * users, users, secs, per * users / secs, coins);
    free (ptrs);
    free (text);
    free (attr_ptrs);
    free (attrs);
    free (pool);
    trove_rules_destroy (&rules);
    return 0;
}
