/*  bench-queries - latency and cost of the player-facing queries through
    trove_router against a running cluster (bench/queries.sh drives it):
    one client, queries one after the other, for each kind in turn.

    usage: bench-queries --config FILE [--seconds S] [--users U] [--heavy H]
                         [--hunt HUNT] [--kinds balance,history,top,around]
    balance and around ask for random users u0..u<U-1>; history asks for a
    page of 50 coins of a random user among u0..u<H-1> (users with 50 coins
    or more). Prints one JSON object per kind: queries, qps, p50/p99/max
    latency (microseconds), mean and max cost (units), errors. */
#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_client.h"
#include "trove_router.h"
#include "trove_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_SAMPLES 2000000

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static uint64_t s_rng = 88172645463325252ULL;

static uint64_t
s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

int
main (int argc, char **argv)
{
    const char *config = NULL, *hunt = "demo", *kinds = "balance,history,top,around";
    double seconds = 10;
    long users = 1000000, heavy = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp (argv [i], "--config"))
            config = argv [i + 1];
        else if (!strcmp (argv [i], "--seconds"))
            seconds = atof (argv [i + 1]);
        else if (!strcmp (argv [i], "--users"))
            users = atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--heavy"))
            heavy = atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--hunt"))
            hunt = argv [i + 1];
        else if (!strcmp (argv [i], "--kinds"))
            kinds = argv [i + 1];
        else {
            fprintf (stderr, "bench-queries: unknown option %s\n", argv [i]);
            return 2;
        }
    }
    if (!config || users <= 0 || heavy <= 0) {
        fprintf (stderr,
                 "usage: bench-queries --config FILE [--seconds S] [--users U] [--heavy H] [--hunt H] "
                 "[--kinds balance,history,top,around]\n");
        return 2;
    }
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (config, &err);
    if (cfg && trove_curve_start (cfg, NULL, false, &err))
        trove_cfg_destroy (&cfg);
    if (!cfg) {
        fprintf (stderr, "bench-queries: %s\n", err ? err : "bad config");
        free (err);
        return 1;
    }
    trove_router_t *router = trove_router_new (cfg, 5000);
    int64_t *lat = malloc (S_MAX_SAMPLES * sizeof *lat);
    if (!router || !lat)
        return 1;
    char list [256];
    snprintf (list, sizeof list, "%s", kinds);
    for (char *save = NULL, *kind = strtok_r (list, ",", &save); kind; kind = strtok_r (NULL, ",", &save)) {
        size_t n = 0, errors = 0;
        uint64_t cost_sum = 0, cost_max = 0;
        char first_error [200] = "";
        int64_t start = trove_mono_us (), end = start + (int64_t) (seconds * 1e6);
        while (trove_mono_us () < end && n < S_MAX_SAMPLES) {
            char user [32];
            bool is_heavy = !strcmp (kind, "history");
            snprintf (user, sizeof user, "u%llu",
                      (unsigned long long) (s_rand () % (uint64_t) (is_heavy ? heavy : users)));
            Trove__QueryReply *reply = NULL;
            char *qerr = NULL;
            int64_t t0 = trove_mono_us ();
            if (!strcmp (kind, "balance") || is_heavy) {
                Trove__Query q = TROVE__QUERY__INIT;
                q.kind = is_heavy ? "coins" : "balance";
                q.user = user;
                q.limit = 50;
                reply = trove_router_user (router, &q, &qerr);
            }
            else if (!strcmp (kind, "top"))
                reply = trove_router_top (router, hunt, "all", 100, 0, NULL, &qerr);
            else if (!strcmp (kind, "around"))
                reply = trove_router_around (router, hunt, "all", user, 5, &qerr);
            else {
                fprintf (stderr, "bench-queries: unknown kind %s\n", kind);
                return 2;
            }
            lat [n++] = trove_mono_us () - t0;
            if (!reply || (reply->error && *reply->error)
                || (!strcmp (kind, "top") && reply->n_entries != 100) || (is_heavy && reply->n_coins != 50)) {
                if (!errors)
                    snprintf (first_error, sizeof first_error, "%s",
                              reply  ? (*reply->error ? reply->error : "short answer")
                              : qerr ? qerr
                                     : "no answer");
                errors++;
            }
            if (reply) {
                cost_sum += reply->cost;
                if (reply->cost > cost_max)
                    cost_max = reply->cost;
            }
            free (qerr);
            trove_client_reply_free (&reply);
        }
        double took = (double) (trove_mono_us () - start) / 1e6;
        qsort (lat, n, sizeof *lat, s_cmp_i64);
        printf (
            "{\"kind\":\"%s\",\"queries\":%zu,\"qps\":%.0f,\"p50_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld,"
            "\"cost_mean\":%.1f,\"cost_max\":%llu,\"errors\":%zu,\"first_error\":\"%s\"}\n",
            kind, n, n / took, (long long) (n ? lat [n / 2] : 0), (long long) (n ? lat [n * 99 / 100] : 0),
            (long long) (n ? lat [n - 1] : 0), n ? (double) cost_sum / n : 0.0, (unsigned long long) cost_max,
            errors, first_error);
        fflush (stdout);
    }
    free (lat);
    trove_router_destroy (&router);
    trove_cfg_destroy (&cfg);
    return 0;
}
