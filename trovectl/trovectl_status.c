/*  trovectl status - ask every process of the cluster for its status and
    listen to the heartbeats that travel through the broker. */
#include "trovectl.h"
#include "trove_curve.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *
s_str (const char *text)
{
    return json_string (text ? text : "");
}

const char *const trovectl_status_help =
    "usage: trovectl status [--dir DIR | --config FILE] [--json]\n"
    "\n"
    "Ask the broker, every ingestor, every scorer and trove-webhooks (when the\n"
    "config has a webhooks section) for its status (500 ms\n"
    "timeout, one retry) and print a table: role, name, shard, endpoint, up or\n"
    "down, pid, last award sequence and events stored (scorers), lag, uptime,\n"
    "the age of its last heartbeat seen through the broker (\"-\": none within\n"
    "1.1 s, e.g. the broker is down; up/down comes from asking each process\n"
    "directly), and the last error if there was one. LAG is, for a scorer, the accepted\n"
    "events its ledger tables do not hold yet (queries wait for them); for an\n"
    "ingestor, the events it has not answered yet; for trove-webhooks, the awards\n"
    "not delivered or dead-lettered yet.\n"
    "--json: one object per process per line (lag is \"inflight\").\n"
    "Exit 1 if any process is down.\n";

trovectl_proc_t *
trovectl_procs (const trove_cfg_t *cfg, size_t *count_p)
{
    size_t count =
        1 + trove_cfg_ingestors (cfg) + trove_cfg_shards (cfg) + (trove_cfg_webhooks (cfg) != NULL);
    trovectl_proc_t *procs = calloc (count, sizeof *procs);
    if (!procs)
        return NULL;
    size_t n = 0;
    procs [n++] = (trovectl_proc_t){"broker", "broker", -1, trove_cfg_broker_control (cfg), NULL, 0};
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++)
        procs [n++] = (trovectl_proc_t){
            "ingestor", trove_cfg_ingestor_name (cfg, i), -1, trove_cfg_ingestor_endpoint (cfg, i), NULL, 0};
    for (size_t i = 0; i < trove_cfg_shards (cfg); i++)
        procs [n++] = (trovectl_proc_t){
            "scorer", trove_cfg_shard_name (cfg, i), (int) i, trove_cfg_shard_query (cfg, i), NULL, 0};
    if (trove_cfg_webhooks (cfg))
        procs [n++] =
            (trovectl_proc_t){"webhooks", "webhooks", -1, trove_cfg_webhooks (cfg)->control, NULL, 0};
    *count_p = count;
    return procs;
}

void
trovectl_procs_free (trovectl_proc_t **procs_p, size_t count)
{
    trovectl_proc_t *procs = *procs_p;
    if (procs) {
        for (size_t i = 0; i < count; i++)
            trove_client_reply_free (&procs [i].reply);
        free (procs);
        *procs_p = NULL;
    }
}

int
trovectl_probe (const trove_cfg_t *cfg, trovectl_proc_t *procs, size_t count, int timeout_ms, int retries)
{
    const char **endpoints = calloc (count ? count : 1, sizeof *endpoints);
    Trove__QueryReply **replies = calloc (count ? count : 1, sizeof *replies);
    int rc = -1;
    if (!endpoints || !replies)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        endpoints [i] = procs [i].endpoint;
        trove_client_reply_free (&procs [i].reply);
    }
    Trove__Query query = TROVE__QUERY__INIT;
    query.kind = "status";
    rc = trove_client_call_all (endpoints, count, &query, timeout_ms, retries,
                                trove_cfg_limits (cfg)->max_frame, replies);
    for (size_t i = 0; i < count; i++)
        procs [i].reply = replies [i];
fail:
    free (endpoints);
    free (replies);
    return rc;
}

static void
s_format_uptime (int64_t ms, char *buf, size_t size)
{
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf (buf, size, "%llds", (long long) s);
    else if (s < 3600)
        snprintf (buf, size, "%lldm%02llds", (long long) (s / 60), (long long) (s % 60));
    else if (s < 86400)
        snprintf (buf, size, "%lldh%02lldm", (long long) (s / 3600), (long long) (s % 3600 / 60));
    else
        snprintf (buf, size, "%lldd%02lldh", (long long) (s / 86400), (long long) (s % 86400 / 3600));
}

//  Record the heartbeats that arrive before `until` (monotonic us), stopping
//  early once every process has been heard.
static void
s_collect_heartbeats (const trove_cfg_t *cfg, zsock_t *sub, trovectl_proc_t *procs, size_t count,
                      int64_t until)
{
    size_t heard = 0;
    while (heard < count && !trovectl_interrupted ()) {
        int64_t left = (until - trove_mono_us ()) / 1000;
        if (left <= 0)
            break;
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long) left) <= 0)
            continue;
        zframe_t *frame = zframe_recv (sub);
        if (!frame)
            continue;
        const char *reason;
        Trove__Msg *msg = trove_msg_decode (zframe_data (frame), zframe_size (frame),
                                            trove_cfg_limits (cfg)->max_frame + 65536, &reason);
        zframe_destroy (&frame);
        if (msg && msg->body_case == TROVE__MSG__BODY_HEARTBEAT) {
            const Trove__Heartbeat *hb = msg->heartbeat;
            for (size_t i = 0; i < count; i++)
                if (strcmp (procs [i].role, hb->role) == 0 && strcmp (procs [i].name, hb->name) == 0) {
                    if (!procs [i].heartbeat_ms)
                        heard++;
                    procs [i].heartbeat_ms = hb->sent_ms;
                }
        }
        trove_msg_free (&msg);
    }
}

//  What status shows of one process.
typedef struct {
    const trovectl_proc_t *proc;    //  the process
    const Trove__StatusInfo *info;  //  its status, NULL when it gave none
    bool up;                        //  answered without error
    uint64_t last_aseq;             //  scorers: last award sequence
    int64_t uptime;                 //  ms since its start, -1: unknown
} s_row_t;

static s_row_t
s_row (const trovectl_proc_t *proc, int64_t now)
{
    s_row_t row = {proc, proc->reply ? proc->reply->status : NULL, false, 0, -1};
    row.up = proc->reply && !(proc->reply->error && *proc->reply->error);
    if (proc->reply)
        row.last_aseq = proc->reply->last_aseq;
    if (row.info && row.info->last_aseq > row.last_aseq)
        row.last_aseq = row.info->last_aseq;
    if (row.info && row.info->started_ms)
        row.uptime = now - row.info->started_ms;
    return row;
}

static void
s_print_row_json (const s_row_t *row, int64_t now)
{
    const trovectl_proc_t *proc = row->proc;
    const Trove__StatusInfo *info = row->info;
    json_t *obj = json_pack ("{s:s,s:s,s:o,s:s,s:b}", "role", proc->role, "name", proc->name, "shard",
                             proc->shard >= 0 ? json_integer (proc->shard) : json_null (), "endpoint",
                             proc->endpoint, "up", row->up);
    if (proc->reply && proc->reply->error && *proc->reply->error)
        json_object_set_new (obj, "error", json_string (proc->reply->error));
    if (info) {
        json_object_set_new (obj, "pid", json_integer (info->pid));
        json_object_set_new (obj, "uptime_s", json_integer (row->uptime >= 0 ? row->uptime / 1000 : 0));
        json_object_set_new (obj, "version", s_str (info->version));
        json_object_set_new (obj, "host", s_str (info->host));
        json_object_set_new (obj, "inflight", json_integer ((json_int_t) info->inflight));
        if (info->last_error && *info->last_error)
            json_object_set_new (obj, "last_error", json_string (info->last_error));
    }
    if (proc->shard >= 0 && row->up) {
        json_object_set_new (obj, "last_aseq", json_integer ((json_int_t) row->last_aseq));
        json_object_set_new (obj, "events", json_integer (info ? (json_int_t) info->events : 0));
    }
    json_object_set_new (obj, "heartbeat_age_s",
                         proc->heartbeat_ms ? json_real ((now - proc->heartbeat_ms) / 1000.0) : json_null ());
    trovectl_print_json (obj);
}

static void
s_print_row (const s_row_t *row, int64_t now)
{
    const trovectl_proc_t *proc = row->proc;
    const Trove__StatusInfo *info = row->info;
    char shard [16] = "-", pid [24] = "-", aseq [24] = "-", events [24] = "-", upt [32] = "-";
    char lag [24] = "-";
    if (proc->shard >= 0)
        snprintf (shard, sizeof shard, "%d", proc->shard);
    if (info) {
        snprintf (pid, sizeof pid, "%lld", (long long) info->pid);
        if (strcmp (proc->role, "broker"))
            snprintf (lag, sizeof lag, "%llu", (unsigned long long) info->inflight);
        if (row->uptime >= 0)
            s_format_uptime (row->uptime, upt, sizeof upt);
    }
    if (proc->shard >= 0 && row->up) {
        snprintf (aseq, sizeof aseq, "%llu", (unsigned long long) row->last_aseq);
        snprintf (events, sizeof events, "%llu", info ? (unsigned long long) info->events : 0ULL);
    }
    char hb [24] = "-";
    if (proc->heartbeat_ms)
        snprintf (hb, sizeof hb, "%.1fs ago", (now - proc->heartbeat_ms) / 1000.0);
    printf ("%-8s %-8s %-5s %-24s %-4s %-8s %-10s %-10s %-8s %-9s %s%s%s\n", proc->role, proc->name, shard,
            proc->endpoint, row->up ? "up" : "down", pid, aseq, events, lag, hb, upt,
            info && info->last_error && *info->last_error ? "  last error: " : "",
            info && info->last_error ? info->last_error : "");
}

int
trovectl_status (const trovectl_opts_t *opts)
{
    if (opts->nargs)
        return trovectl_fail ("status: unexpected argument '%s'", opts->args [0]);
    trove_cfg_t *cfg = trovectl_load_cfg (opts);
    if (!cfg)
        return 1;
    int rc = 1;
    size_t count = 0;
    trovectl_proc_t *procs = trovectl_procs (cfg, &count);
    //  Heartbeats travel through the broker: subscribe first, probe each
    //  process directly meanwhile, then listen until a heartbeat period passed.
    int64_t listen_until = trove_mono_us () + 1100 * 1000;
    zsock_t *sub = trove_sock_new (ZMQ_SUB, TROVE_SOCK_REQUEST, trove_cfg_limits (cfg)->max_frame);
    if (sub) {
        zsock_set_subscribe (sub, "");
        if (trove_sock_connect (sub, TROVE_SOCK_REQUEST, trove_cfg_broker_sub (cfg)))
            zsock_destroy (&sub);
    }
    if (!procs || trovectl_probe (cfg, procs, count, 500, 1) < 0) {
        trovectl_fail (procs ? "interrupted" : "out of memory");
        zsock_destroy (&sub);
        goto fail;
    }
    if (sub)
        s_collect_heartbeats (cfg, sub, procs, count, listen_until);
    zsock_destroy (&sub);
    size_t down = 0;
    if (!opts->json)
        printf ("%-8s %-8s %-5s %-24s %-4s %-8s %-10s %-10s %-8s %-9s %s\n", "ROLE", "NAME", "SHARD",
                "ENDPOINT", "UP", "PID", "LAST_ASEQ", "EVENTS", "LAG", "HEARTBEAT", "UPTIME");
    int64_t now = trove_now_ms ();
    for (size_t i = 0; i < count; i++) {
        s_row_t row = s_row (&procs [i], now);
        down += !row.up;
        if (opts->json)
            s_print_row_json (&row, now);
        else
            s_print_row (&row, now);
    }
    if (down) {
        trovectl_fail ("%zu of %zu processes down", down, count);
        goto fail;
    }
    rc = 0;
fail:
    trovectl_procs_free (&procs, count);
    trove_cfg_destroy (&cfg);
    return rc;
}
