/*  bench-late - what an event later than the rules engine's state costs the
    scorer: it re-derives the user from its stored events in the batch that
    logs the event (docs/architecture.md, "Lateness"). For each history
    length H, one user gets H events in event-time order (the `trail` hunt:
    a day cap, a distinct count, a sequence, a streak), then events older
    than everything the engine still holds are applied one per batch, and
    trove_ledger_apply is timed for each; the same run times in-order events
    of a user with the same history (the same-run baseline). The tables are
    caught up before each timed event, so the figure is the scorer's work
    (read the user's events, derive, write the difference), not the wait
    for the apply thread that a busy shard adds.

    usage: bench-late [--histories 10,100,1000,10000] [--trials N] [--dir D]
    Prints one JSON line per history length. */
#include "trove_engine.h"
#include "trove_event.h"
#include "trove_ledger.h"
#include "trove_rules.h"
#include "trove_util.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_trail =
    "hunt: trail\nversion: 1\ntimezone: Europe/Paris\nlateness: 10m\nrules:\n"
    "  - {id: daily, kind: each, match: {type: checkin}, coins: 3, cap: {max: 1, per: day}}\n"
    "  - {id: explorer, kind: count, match: {type: visit}, distinct: zone, count: 3, coins: 10, repeat: "
    "true}\n"
    "  - {id: path, kind: sequence, within: 1h, coins: 50, repeat: true,\n"
    "     steps: [{type: visit, attrs: {zone: A}}, {type: visit, attrs: {zone: B}}, {type: purchase}]}\n"
    "  - {id: streak, kind: streak, match: {type: checkin}, days: 3, coins: 25, repeat: true}\n";

static Trove__Event *
s_event (const char *user, const char *id, int64_t ts_ms, int k)
{
    static const char *types [] = {"checkin", "visit", "visit", "purchase"};
    static const char *zones [] = {"A", "B", "C", "D", "E"};
    char json [320];
    snprintf (json, sizeof json,
              "{\"source\":\"web\",\"id\":\"%s\",\"user\":\"%s\",\"type\":\"%s\",\"ts\":%lld,"
              "\"attrs\":{\"zone\":\"%s\"}}",
              id, user, types [k % 4], (long long) ts_ms, zones [(k / 4) % 5]);
    const char *reason = NULL;
    Trove__Event *ev = trove_event_from_json (json, strlen (json), &reason, NULL);
    if (!ev) {
        fprintf (stderr, "bench-late: bad event %s: %s\n", json, reason ? reason : "?");
        exit (1);
    }
    return ev;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  Apply one event in a batch of its own; returns the apply's microseconds.
static int64_t
s_timed (trove_ledger_t *ledger, const trove_rules_t *rules, Trove__Event *ev, uint64_t req)
{
    if (trove_ledger_wait_applied (ledger, 60000) || trove_ledger_begin (ledger)) {
        fprintf (stderr, "bench-late: %s\n", trove_ledger_error (ledger));
        exit (1);
    }
    Trove__Status status;
    int64_t t0 = trove_mono_us ();
    if (trove_ledger_apply (ledger, ev, 1, req, 1, rules, &status) || status != TROVE__STATUS__ACCEPTED) {
        fprintf (stderr, "bench-late: apply: %s (status %d)\n", trove_ledger_error (ledger), (int) status);
        exit (1);
    }
    int64_t took = trove_mono_us () - t0;
    if (trove_ledger_commit (ledger)) {
        fprintf (stderr, "bench-late: commit: %s\n", trove_ledger_error (ledger));
        exit (1);
    }
    return took;
}

int
main (int argc, char **argv)
{
    char histories [256] = "10,100,1000,10000", dir_arg [400] = "";
    int trials = 50;
    static struct option opts [] = {
        {"histories", required_argument, 0, 'h'}, {"trials", required_argument, 0, 't'},
        {"dir", required_argument, 0, 'd'},       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h')
            snprintf (histories, sizeof histories, "%s", optarg);
        else if (c == 't')
            trials = atoi (optarg) > 0 ? atoi (optarg) : 50;
        else if (c == 'd')
            snprintf (dir_arg, sizeof dir_arg, "%s", optarg);
        else {
            fprintf (stderr, "usage: bench-late [--histories 10,100,1000,10000] [--trials N] [--dir D]\n");
            return 2;
        }
    }
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text ("trail.yaml", s_trail, strlen (s_trail), &err);
    if (!rules) {
        fprintf (stderr, "bench-late: %s\n", err);
        return 1;
    }
    char base [512];
    snprintf (base, sizeof base, "%s/bench-late-XXXXXX", *dir_arg ? dir_arg : "/tmp");
    if (!mkdtemp (base)) {
        perror ("bench-late: mkdtemp");
        return 1;
    }
    const int64_t t0 = 1774000000000;  //  2026-03-20, spacing 10 minutes: a week = 1008 events
    uint64_t req = 1;
    for (char *save = NULL, *tok = strtok_r (histories, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
        int h = atoi (tok);
        if (h < 1)
            continue;
        char data [600];
        snprintf (data, sizeof data, "%s/h%d", base, h);
        trove_ledger_t *ledger = trove_ledger_new (data, 0, (size_t) 4 << 30, false, &err);
        if (!ledger) {
            fprintf (stderr, "bench-late: %s\n", err);
            return 1;
        }
        trove_ledger_set_history_max (ledger, 0);
        //  Two users with the same history: one gets late events, the other
        //  in-order ones.
        const char *users [] = {"late", "order"};
        for (int u = 0; u < 2; u++)
            for (int k = 0; k < h; k += 1000) {
                trove_ledger_begin (ledger);
                for (int i = k; i < h && i < k + 1000; i++) {
                    char id [48];
                    snprintf (id, sizeof id, "%s-%d", users [u], i);
                    Trove__Event *ev = s_event (users [u], id, t0 + (int64_t) i * 600000, i);
                    Trove__Status status;
                    if (trove_ledger_apply (ledger, ev, 1, req++, 1, rules, &status)) {
                        fprintf (stderr, "bench-late: fill: %s\n", trove_ledger_error (ledger));
                        return 1;
                    }
                    trove_event_destroy (&ev);
                }
                if (trove_ledger_commit (ledger)) {
                    fprintf (stderr, "bench-late: fill commit: %s\n", trove_ledger_error (ledger));
                    return 1;
                }
            }
        int64_t *late = calloc ((size_t) trials, sizeof *late), *order = calloc ((size_t) trials, sizeof *order);
        uint64_t before_rederives;
        trove_ledger_counts_t counts;
        trove_ledger_counts (ledger, &counts);
        before_rederives = counts.rederives;
        for (int t = 0; t < trials; t++) {
            char id [48];
            //  Older than anything the state still holds (its checkpoint has
            //  folded all but the last ~10 minutes): a re-derive.
            snprintf (id, sizeof id, "late-x%d", t);
            Trove__Event *ev = s_event ("late", id, t0 - 3600000 + t * 1000, t);
            late [t] = s_timed (ledger, rules, ev, req++);
            trove_event_destroy (&ev);
            snprintf (id, sizeof id, "order-x%d", t);
            ev = s_event ("order", id, t0 + (int64_t) h * 600000 + (int64_t) t * 600000, t);
            order [t] = s_timed (ledger, rules, ev, req++);
            trove_event_destroy (&ev);
        }
        trove_ledger_counts (ledger, &counts);
        qsort (late, (size_t) trials, sizeof *late, s_cmp);
        qsort (order, (size_t) trials, sizeof *order, s_cmp);
        printf ("{\"history\":%d,\"trials\":%d,\"rederives\":%llu,\"late_us_p50\":%lld,\"late_us_p99\":%lld,"
                "\"in_order_us_p50\":%lld,\"in_order_us_p99\":%lld,\"late_over_in_order\":%.1f,"
                "\"us_per_history_event\":%.2f}\n",
                h, trials, (unsigned long long) (counts.rederives - before_rederives),
                (long long) late [trials / 2], (long long) late [(trials * 99) / 100],
                (long long) order [trials / 2], (long long) order [(trials * 99) / 100],
                order [trials / 2] ? (double) late [trials / 2] / (double) order [trials / 2] : 0.0,
                (double) late [trials / 2] / h);
        fflush (stdout);
        free (late);
        free (order);
        trove_ledger_destroy (&ledger);
    }
    trove_rules_destroy (&rules);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system (cmd) != 0)
        fprintf (stderr, "bench-late: could not remove %s\n", base);
    return 0;
}
