/*  trove_harden - refuse exposed unauthenticated endpoints. */
#include "trove_harden.h"
#include "trove_util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
trove_harden_local (const char *endpoint)
{
    if (!endpoint)
        return true;  //  nothing bound
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    const char *host = endpoint;
    if (strncmp (host, "tcp://", 6) == 0)
        host += 6;
    else if (strstr (host, "://"))
        return false;  //  pgm, udp, ws...: not ours to judge
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return false;
    char text [128];
    size_t len = (size_t) (colon - host);
    if (len >= sizeof text)
        return false;
    memcpy (text, host, len);
    text [len] = 0;
    if (strcmp (text, "localhost") == 0 || strcmp (text, "lo") == 0)
        return true;
    if (text [0] == '[' && len > 2 && text [len - 1] == ']') {
        text [len - 1] = 0;
        struct in6_addr a6;
        return inet_pton (AF_INET6, text + 1, &a6) == 1 && memcmp (&a6, &in6addr_loopback, sizeof a6) == 0;
    }
    struct in_addr a4;
    if (inet_pton (AF_INET, text, &a4) != 1)
        return false;  //  "*", an interface name, a host name: maybe exposed
    return (ntohl (a4.s_addr) >> 24) == 127;
}

int
trove_harden_check (const trove_cfg_t *cfg, const char *role, const char *name, char **err_p)
{
    assert (cfg && role);
    const char *what [8] = {NULL};
    const char *where [8] = {NULL};
    size_t n = 0;
    if (strcmp (role, "ingestor") == 0) {
        int i = name ? trove_cfg_ingestor_find (cfg, name) : -1;
        if (i >= 0) {
            what [n] = "endpoint", where [n++] = trove_cfg_ingestor_endpoint (cfg, (size_t) i);
            what [n] = "metrics", where [n++] = trove_cfg_ingestor_metrics (cfg, (size_t) i);
        }
    }
    else if (strcmp (role, "broker") == 0) {
        what [n] = "pub", where [n++] = trove_cfg_broker_pub (cfg);
        what [n] = "sub", where [n++] = trove_cfg_broker_sub (cfg);
        what [n] = "control", where [n++] = trove_cfg_broker_control (cfg);
        what [n] = "metrics", where [n++] = trove_cfg_broker_metrics (cfg);
    }
    else if (strcmp (role, "scorer") == 0 || strcmp (role, "reconciler") == 0) {
        for (size_t s = 0; name && s < trove_cfg_shards (cfg); s++)
            if (strcmp (trove_cfg_shard_name (cfg, s), name) == 0) {
                if (role [0] == 's') {
                    what [n] = "events", where [n++] = trove_cfg_shard_events (cfg, s);
                    what [n] = "query", where [n++] = trove_cfg_shard_query (cfg, s);
                    what [n] = "metrics", where [n++] = trove_cfg_shard_metrics (cfg, s);
                }
                else
                    what [n] = "reconcile", where [n++] = trove_cfg_shard_reconcile (cfg, s);
                break;
            }
    }
    else if (strcmp (role, "webhooks") == 0 && trove_cfg_webhooks (cfg)) {
        what [n] = "control", where [n++] = trove_cfg_webhooks (cfg)->control;
        what [n] = "metrics", where [n++] = trove_cfg_webhooks (cfg)->metrics;
    }
    if (n == 0) {
        if (err_p)
            *err_p = trove_strdupf ("%s '%s' is not in the config", role, name ? name : "");
        return -1;
    }
    const char *allow = trove_cfg_get (cfg, "trove/allow_unauthenticated", "no");
    bool allowed = strcmp (allow, "yes") == 0;
    //  "broker: pub ...", "scorer s0: events ...".
    const char *sep = name && role [0] != 'b' ? " " : "";
    if (!*sep)
        name = "";
    for (size_t i = 0; i < n; i++) {
        if (trove_harden_local (where [i]))
            continue;
        //  With CURVE every ZeroMQ endpoint authenticates its peers; /metrics
        //  stays plain HTTP.
        if (trove_cfg_curve (cfg) && strcmp (what [i], "metrics"))
            continue;
        if (allowed) {
            trove_log ('W',
                       "%s%s%s: %s %s is reachable from other hosts without authentication "
                       "(trove/allow_unauthenticated = yes)",
                       role, sep, name, what [i], where [i]);
            continue;
        }
        //  Older copies of etc/trove.cfg showed the key under `limits`,
        //  where nothing reads it: say so rather than leave it a mystery.
        bool misplaced = trove_cfg_get (cfg, "limits/allow_unauthenticated", NULL) != NULL;
        if (err_p)
            *err_p = trove_strdupf ("%s%s%s: %s %s is reachable from other hosts and has no authentication; "
                                    "bind it to 127.0.0.1, or set trove/allow_unauthenticated = yes on a "
                                    "trusted network (docs/security.md)%s",
                                    role, sep, name, what [i], where [i],
                                    misplaced ? "; limits/allow_unauthenticated is ignored: the key "
                                                "belongs in the trove section"
                                              : "");
        return -1;
    }
    return 0;
}
