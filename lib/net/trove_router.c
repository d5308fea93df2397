/*  trove_router - routes player-facing queries to the owning shard and
    merges leaderboards across shards. See trove_router.h. */
#include "trove_router.h"
#include "trove_client.h"
#include "trove_error.h"
#include "trove_msg.h"
#include "trove_sock.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Shards a router serves (a cluster's config allows fewer in practice).
#define S_MAX_SHARDS 256

struct _trove_router_t {
    const trove_cfg_t *cfg;
    int timeout_ms;
    size_t nshards;
    size_t max_frame;
    zsock_t **socks;  //  per shard, to its query endpoint
};

static zsock_t *
s_connect (trove_router_t *self, size_t shard)
{
    return trove_sock_connected (ZMQ_DEALER, TROVE_SOCK_REQUEST, trove_cfg_shard_query (self->cfg, shard),
                                 self->max_frame);
}

trove_router_t *
trove_router_new (const trove_cfg_t *cfg, int timeout_ms)
{
    assert (cfg);
    trove_router_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    self->nshards = trove_cfg_shards (cfg);
    if (self->nshards > S_MAX_SHARDS) {
        free (self);
        return NULL;
    }
    self->max_frame = trove_cfg_limits (cfg)->max_frame;
    self->socks = calloc (self->nshards ? self->nshards : 1, sizeof *self->socks);
    if (!self->socks) {
        free (self);
        return NULL;
    }
    for (size_t k = 0; k < self->nshards; k++)
        if (!(self->socks [k] = s_connect (self, k))) {
            trove_router_destroy (&self);
            return NULL;
        }
    return self;
}

void
trove_router_destroy (trove_router_t **self_p)
{
    assert (self_p);
    trove_router_t *self = *self_p;
    if (self) {
        for (size_t k = 0; self->socks && k < self->nshards; k++)
            zsock_destroy (&self->socks [k]);
        free (self->socks);
        free (self);
        *self_p = NULL;
    }
}

//  Take a whole message off sock; its last frame decoded as a query reply
//  (NULL when it is not one).
static Trove__QueryReply *
s_recv_reply (trove_router_t *self, zsock_t *sock)
{
    zmsg_t *msg = zmsg_recv_nowait (sock);
    if (!msg)
        return NULL;
    zframe_t *body = zmsg_last (msg);
    Trove__Msg *m =
        body ? trove_msg_decode (zframe_data (body), zframe_size (body), self->max_frame, NULL) : NULL;
    zmsg_destroy (&msg);
    Trove__QueryReply *reply = NULL;
    if (m && m->body_case == TROVE__MSG__BODY_QUERY_REPLY) {
        reply = m->query_reply;
        m->query_reply = NULL;
        m->body_case = TROVE__MSG__BODY__NOT_SET;
    }
    trove_msg_free (&m);
    return reply;
}

//  Send queries [i] to shards [i] (distinct shards) and wait for every
//  answer; one retry on fresh sockets for the silent. replies [i] gets the
//  answer or NULL. Returns the number of answers.
static size_t
s_call (trove_router_t *self, const Trove__Query *const *queries, const size_t *shards, size_t n,
        Trove__QueryReply **replies)
{
    uint64_t ids [S_MAX_SHARDS] = {0};
    size_t answered = 0;
    for (size_t i = 0; i < n; i++)
        replies [i] = NULL;
    for (int attempt = 0; attempt < 2 && answered < n; attempt++) {
        zmq_pollitem_t items [S_MAX_SHARDS];
        size_t which [S_MAX_SHARDS], nitems = 0;
        for (size_t i = 0; i < n; i++) {
            if (replies [i])
                continue;
            zsock_t **sock = &self->socks [shards [i]];
            if (attempt > 0) {
                zsock_destroy (sock);
                *sock = s_connect (self, shards [i]);
            }
            if (!*sock)
                continue;
            Trove__Query q = *queries [i];
            q.req_id = ids [i] = trove_client_req_id ();
            Trove__Msg msg = TROVE__MSG__INIT;
            msg.body_case = TROVE__MSG__BODY_QUERY;
            msg.query = &q;
            if (trove_msg_send (*sock, NULL, 0, &msg, ZMQ_DONTWAIT))
                continue;
            items [nitems] = (zmq_pollitem_t){zsock_resolve (*sock), 0, ZMQ_POLLIN, 0};
            which [nitems++] = i;
        }
        int64_t deadline = trove_mono_us () + (int64_t) self->timeout_ms * 1000;
        while (answered < n && nitems) {
            int64_t left_ms = (deadline - trove_mono_us () + 999) / 1000;
            if (left_ms <= 0)
                break;
            if (zmq_poll (items, (int) nitems, (long) left_ms) == -1 && errno == EINTR)
                return answered;
            for (size_t j = 0; j < nitems; j++) {
                size_t i = which [j];
                if (!(items [j].revents & ZMQ_POLLIN))
                    continue;
                Trove__QueryReply *r;
                while (!replies [i] && (zsock_events (self->socks [shards [i]]) & ZMQ_POLLIN)) {
                    r = s_recv_reply (self, self->socks [shards [i]]);
                    if (r && r->req_id == ids [i]) {
                        replies [i] = r;
                        answered++;
                    }
                    else
                        trove_client_reply_free (&r);  //  a late answer to an earlier question
                }
            }
        }
    }
    return answered;
}

static Trove__QueryReply *
s_call_one (trove_router_t *self, const Trove__Query *q, size_t shard, char **err_p)
{
    Trove__QueryReply *reply = NULL;
    if (s_call (self, &q, &shard, 1, &reply) == 0 && err_p)
        *err_p = trove_strdupf ("no answer from shard %s (%s) within %d ms",
                                trove_cfg_shard_name (self->cfg, shard),
                                trove_cfg_shard_query (self->cfg, shard), self->timeout_ms);
    return reply;
}

Trove__QueryReply *
trove_router_user (trove_router_t *self, const Trove__Query *q, char **err_p)
{
    return s_call_one (self, q, trove_cfg_shard_of_user (self->cfg, q->user), err_p);
}

int
trove_router_all (trove_router_t *self, const Trove__Query *q, Trove__QueryReply **replies)
{
    const Trove__Query *qs [S_MAX_SHARDS] = {NULL};
    size_t shards [S_MAX_SHARDS] = {0};
    for (size_t k = 0; k < self->nshards; k++) {
        qs [k] = q;
        shards [k] = k;
    }
    return (int) s_call (self, qs, shards, self->nshards, replies);
}

//  ---------------------------------------------------------------------------
//  Merging

//  Board order: score descending, then user ascending.
static int
s_order (const Trove__BoardEntry *a, const Trove__BoardEntry *b)
{
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp (a->user, b->user);
}

static int
s_order_qsort (const void *a, const void *b)
{
    return s_order (*(Trove__BoardEntry *const *) a, *(Trove__BoardEntry *const *) b);
}

static Trove__BoardEntry *
s_entry_copy (const Trove__BoardEntry *e)
{
    Trove__BoardEntry *c = malloc (sizeof *c);
    if (!c)
        return NULL;
    trove__board_entry__init (c);
    c->score = e->score;
    c->rank = e->rank;
    c->users = e->users;
    if ((*e->user && !(c->user = strdup (e->user))) || (*e->period && !(c->period = strdup (e->period)))) {
        trove__board_entry__free_unpacked (c, NULL);
        return NULL;
    }
    return c;
}

//  A reply of the router's own (free with trove_client_reply_free) holding
//  copies of n entries.
static Trove__QueryReply *
s_reply_new (Trove__BoardEntry *const *entries, size_t n)
{
    Trove__QueryReply *r = malloc (sizeof *r);
    if (!r)
        return NULL;
    trove__query_reply__init (r);
    r->entries = calloc (n ? n : 1, sizeof *r->entries);
    if (!r->entries) {
        free (r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(r->entries [i] = s_entry_copy (entries [i]))) {
            trove_client_reply_free (&r);
            return NULL;
        }
        r->n_entries++;
    }
    return r;
}

static Trove__QueryReply *
s_error_reply (const char *text, uint64_t cost)
{
    Trove__QueryReply *r = s_reply_new (NULL, 0);
    if (r) {
        r->error = strdup (text);
        r->cost = cost;
        if (!r->error)
            trove_client_reply_free (&r);
    }
    return r;
}

//  Did every shard answer without error? If not, -1 with *result_p the
//  first shard's error as a reply, or NULL and *err_p for a silent shard.
static int
s_failed (trove_router_t *self, Trove__QueryReply **replies, const size_t *shards, size_t n, uint64_t cost,
          Trove__QueryReply **result_p, char **err_p)
{
    *result_p = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!replies [i]) {
            if (err_p)
                *err_p = trove_strdupf ("no answer from shard %s (%s) within %d ms",
                                        trove_cfg_shard_name (self->cfg, shards [i]),
                                        trove_cfg_shard_query (self->cfg, shards [i]), self->timeout_ms);
            return -1;
        }
        if (replies [i]->error && *replies [i]->error) {
            *result_p = s_error_reply (replies [i]->error, cost);
            return -1;
        }
    }
    return 0;
}

static void
s_free_replies (Trove__QueryReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++)
        trove_client_reply_free (&replies [i]);
}

//  Ranks of entries from every shard's count of higher scores.
static int
s_rank_by_counts (trove_router_t *self, const char *hunt, const char *period, Trove__BoardEntry **entries,
                  size_t n, uint64_t *cost_p, Trove__QueryReply **failed_p, char **err_p)
{
    int64_t *scores = calloc (n ? n : 1, sizeof *scores);
    if (!scores)
        return -1;
    size_t nscores = 0;
    for (size_t i = 0; i < n; i++)
        if (nscores == 0 || scores [nscores - 1] != entries [i]->score)
            scores [nscores++] = entries [i]->score;
    if (nscores == 0) {
        free (scores);
        return 0;
    }
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "board_counts";
    q.hunt = (char *) hunt;
    q.period = (char *) period;
    q.scores = scores;
    q.n_scores = nscores;
    Trove__QueryReply *replies [S_MAX_SHARDS] = {NULL};
    size_t shards [S_MAX_SHARDS] = {0};
    for (size_t k = 0; k < self->nshards; k++)
        shards [k] = k;
    trove_router_all (self, &q, replies);
    for (size_t k = 0; k < self->nshards; k++)
        if (replies [k])
            *cost_p += replies [k]->cost;
    int rc = s_failed (self, replies, shards, self->nshards, *cost_p, failed_p, err_p);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t s = 0;
        while (s < nscores && scores [s] != entries [i]->score)
            s++;
        uint64_t above = 0;
        for (size_t k = 0; k < self->nshards; k++)
            above += s < replies [k]->n_above ? replies [k]->above [s] : 0;
        entries [i]->rank = above + 1;
    }
    s_free_replies (replies, self->nshards);
    free (scores);
    return rc;
}

//  Refuse a merged answer that read more than the cluster allows.
static Trove__QueryReply *
s_check_cost (trove_router_t *self, Trove__QueryReply *reply)
{
    size_t max = trove_cfg_limits (self->cfg)->max_query_cost;
    if (reply && !(reply->error && *reply->error) && reply->cost > max) {
        char text [160];
        snprintf (text, sizeof text,
                  "%s: the query needs more than %zu units (limits/max_query_cost); ask for fewer entries",
                  trove_strerror (TROVE_E_COST_LIMIT), max);
        uint64_t cost = reply->cost;
        trove_client_reply_free (&reply);
        return s_error_reply (text, cost);
    }
    return reply;
}

Trove__QueryReply *
trove_router_top (trove_router_t *self, const char *hunt, const char *period, size_t limit,
                  int64_t after_score, const char *after_user, char **err_p)
{
    size_t ns = self->nshards;
    if (limit == 0)
        limit = 10;
    //  Each shard's share, with a margin: a second round is rare.
    size_t share = ns <= 1 ? limit : limit / ns + limit / 8 + 5;
    if (share > limit)
        share = limit;
    Trove__BoardEntry **all = NULL;  //  borrowed from the replies kept
    size_t nall = 0;
    Trove__QueryReply *kept [64 * 16];
    size_t nkept = 0;
    bool more [S_MAX_SHARDS], asked [S_MAX_SHARDS];
    const Trove__BoardEntry *last [S_MAX_SHARDS];
    uint64_t cost = 0;
    Trove__QueryReply *result = NULL;
    for (size_t k = 0; k < ns; k++) {
        more [k] = true;
        last [k] = NULL;
        asked [k] = false;
    }
    for (int round = 0; round < 64; round++) {
        //  Who must be asked (again): a shard that may hold more of the top.
        Trove__Query qs [S_MAX_SHARDS];
        const Trove__Query *qp [S_MAX_SHARDS];
        size_t shards [S_MAX_SHARDS], n = 0;
        for (size_t k = 0; k < ns; k++) {
            if (!more [k])
                continue;
            if (asked [k] && last [k]) {
                //  Its next entries come after its last one: they can be in
                //  the top only if fewer than limit entries reach that far.
                size_t upto = 0;
                for (size_t i = 0; i < nall; i++)
                    upto += s_order (all [i], last [k]) <= 0;
                if (upto >= limit)
                    continue;
            }
            trove__query__init (&qs [n]);
            qs [n].kind = "board_top";
            qs [n].hunt = (char *) hunt;
            qs [n].period = (char *) period;
            qs [n].limit = (uint32_t) share;
            const Trove__BoardEntry *from = last [k];
            if (from || after_user) {
                qs [n].has_after = true;
                qs [n].score = from ? from->score : after_score;
                qs [n].user = (char *) (from ? from->user : after_user);
            }
            qp [n] = &qs [n];
            shards [n++] = k;
        }
        if (n == 0 || nkept + n > sizeof kept / sizeof kept [0])
            break;
        Trove__QueryReply *replies [S_MAX_SHARDS] = {NULL};
        s_call (self, qp, shards, n, replies);
        for (size_t i = 0; i < n; i++)
            if (replies [i])
                cost += replies [i]->cost;
        if (s_failed (self, replies, shards, n, cost, &result, err_p)) {
            s_free_replies (replies, n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = shards [i];
            Trove__QueryReply *r = replies [i];
            kept [nkept++] = r;
            asked [k] = true;
            more [k] = r->more;
            if (r->n_entries)
                last [k] = r->entries [r->n_entries - 1];
            else
                more [k] = false;
            Trove__BoardEntry **grown = realloc (all, (nall + r->n_entries) * sizeof *grown);
            if (!grown && r->n_entries) {
                result = s_error_reply (trove_strerror (TROVE_E_NO_MEMORY), cost);
                goto done;
            }
            all = grown;
            for (size_t j = 0; j < r->n_entries; j++)
                all [nall++] = r->entries [j];
        }
        if (nall)
            qsort (all, nall, sizeof *all, s_order_qsort);
    }
    size_t n = nall < limit ? nall : limit;
    if (after_user) {
        if (s_rank_by_counts (self, hunt, period, all, n, &cost, &result, err_p))
            goto done;
    }
    else
        for (size_t i = 0; i < n; i++)
            all [i]->rank = i > 0 && all [i]->score == all [i - 1]->score ? all [i - 1]->rank : i + 1;
    result = s_reply_new (all, n);
    if (result) {
        result->cost = cost;
        result->more = nall > limit;
        for (size_t k = 0; k < ns; k++)
            result->more |= more [k];
    }
    result = s_check_cost (self, result);
done:
    free (all);
    s_free_replies (kept, nkept);
    return result;
}

Trove__QueryReply *
trove_router_around (trove_router_t *self, const char *hunt, const char *period, const char *user, size_t k,
                     char **err_p)
{
    size_t ns = self->nshards, owner = trove_cfg_shard_of_user (self->cfg, user);
    uint64_t cost = 0;
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "board_around";
    q.hunt = (char *) hunt;
    q.period = (char *) period;
    q.user = (char *) user;
    q.k = (uint32_t) k;
    Trove__QueryReply *mine = s_call_one (self, &q, owner, err_p);
    if (!mine || (mine->error && *mine->error))
        return mine;
    cost += mine->cost;
    int64_t score = mine->balance;
    //  The other shards, at the user's position.
    Trove__QueryReply *replies [S_MAX_SHARDS] = {NULL};
    const Trove__Query *qp [S_MAX_SHARDS] = {NULL};
    size_t shards [S_MAX_SHARDS] = {0}, n = 0;
    q.has_after = true;
    q.score = score;
    for (size_t s = 0; s < ns; s++)
        if (s != owner) {
            qp [n] = &q;
            shards [n++] = s;
        }
    s_call (self, qp, shards, n, replies);
    replies [n] = NULL;  //  the owner's reply goes last
    Trove__QueryReply *result = NULL;
    for (size_t i = 0; i < n; i++)
        if (replies [i])
            cost += replies [i]->cost;
    if (s_failed (self, replies, shards, n, cost, &result, err_p))
        goto done;
    replies [n] = mine;
    mine = NULL;
    uint64_t above = 0;
    Trove__BoardEntry **before = NULL, **after = NULL;
    size_t nb = 0, na = 0;
    Trove__BoardEntry me = TROVE__BOARD_ENTRY__INIT;
    me.user = (char *) user;
    me.score = score;
    size_t total = 0;
    for (size_t i = 0; i <= n; i++)
        total += replies [i]->n_entries;
    before = calloc (total + 1, sizeof *before);
    after = calloc (total + 1, sizeof *after);
    if (!before || !after) {
        result = s_error_reply (trove_strerror (TROVE_E_NO_MEMORY), cost);
        free (before);
        free (after);
        goto done;
    }
    for (size_t i = 0; i <= n; i++) {
        above += replies [i]->n_above ? replies [i]->above [0] : 0;
        for (size_t j = 0; j < replies [i]->n_entries; j++) {
            Trove__BoardEntry *e = replies [i]->entries [j];
            if (s_order (e, &me) < 0)
                before [nb++] = e;
            else if (s_order (e, &me) > 0)
                after [na++] = e;
        }
    }
    if (nb)
        qsort (before, nb, sizeof *before, s_order_qsort);
    if (na)
        qsort (after, na, sizeof *after, s_order_qsort);
    size_t from = nb > k ? nb - k : 0, nafter = na < k ? na : k;
    //  The window in order: k before, the user (when on the board), k after.
    Trove__BoardEntry **window = calloc (2 * k + 1, sizeof *window);
    Trove__BoardEntry **others = calloc (2 * k + 1, sizeof *others);
    size_t nw = 0, no = 0;
    if (!window || !others) {
        result = s_error_reply (trove_strerror (TROVE_E_NO_MEMORY), cost);
        goto merged;
    }
    for (size_t i = from; i < nb; i++)
        window [nw++] = before [i];
    if (score > 0)
        window [nw++] = &me;
    for (size_t i = 0; i < nafter; i++)
        window [nw++] = after [i];
    me.rank = score > 0 ? above + 1 : 0;
    //  Neighbours with another score: their ranks from every shard's counts.
    for (size_t i = 0; i < nw; i++) {
        if (window [i]->score == score)
            window [i]->rank = me.rank ? me.rank : above + 1;
        else
            others [no++] = window [i];
    }
    Trove__QueryReply *failed = NULL;
    int rc = no ? s_rank_by_counts (self, hunt, period, others, no, &cost, &failed, err_p) : 0;
    result = failed;
    if (rc == 0) {
        result = s_reply_new (window, nw);
        if (result) {
            result->balance = score;
            result->cost = cost;
        }
        result = s_check_cost (self, result);
    }
merged:
    free (window);
    free (others);
    free (before);
    free (after);
done:
    trove_client_reply_free (&mine);
    s_free_replies (replies, n + 1);
    return result;
}

static int
s_period_desc (const void *a, const void *b)
{
    return strcmp ((*(Trove__BoardEntry *const *) b)->period, (*(Trove__BoardEntry *const *) a)->period);
}

Trove__QueryReply *
trove_router_boards (trove_router_t *self, const char *hunt, size_t limit, char **err_p)
{
    size_t ns = self->nshards;
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "board_list";
    q.hunt = (char *) hunt;
    q.limit = (uint32_t) limit;
    Trove__QueryReply *replies [S_MAX_SHARDS] = {NULL};
    size_t shards [S_MAX_SHARDS] = {0};
    for (size_t k = 0; k < ns; k++)
        shards [k] = k;
    trove_router_all (self, &q, replies);
    uint64_t cost = 0;
    for (size_t k = 0; k < ns; k++)
        if (replies [k])
            cost += replies [k]->cost;
    Trove__QueryReply *result;
    if (s_failed (self, replies, shards, ns, cost, &result, err_p)) {
        s_free_replies (replies, ns);
        return result;
    }
    //  Union by period, users summed; the same order as each shard's.
    size_t total = 0;
    for (size_t k = 0; k < ns; k++)
        total += replies [k]->n_entries;
    Trove__BoardEntry **merged = calloc (total ? total : 1, sizeof *merged);
    if (!merged) {
        s_free_replies (replies, ns);
        return s_error_reply (trove_strerror (TROVE_E_NO_MEMORY), cost);
    }
    size_t n = 0;
    bool more = false;
    for (size_t k = 0; k < ns; k++) {
        more |= replies [k]->more;
        for (size_t j = 0; j < replies [k]->n_entries; j++) {
            Trove__BoardEntry *e = replies [k]->entries [j];
            size_t i = 0;
            while (i < n && strcmp (merged [i]->period, e->period))
                i++;
            if (i < n)
                merged [i]->users += e->users;
            else
                merged [n++] = e;
        }
    }
    if (n)
        qsort (merged, n, sizeof *merged, s_period_desc);
    result = s_reply_new (merged, n < limit ? n : limit);
    if (result) {
        result->cost = cost;
        result->more = more || n > limit;
    }
    free (merged);
    s_free_replies (replies, ns);
    return s_check_cost (self, result);
}

Trove__QueryReply *
trove_router_coin (trove_router_t *self, const char *coin_id, char **err_p)
{
    size_t ns = self->nshards;
    Trove__Query q = TROVE__QUERY__INIT;
    q.kind = "coin";
    q.coin_id = (char *) coin_id;
    Trove__QueryReply *replies [S_MAX_SHARDS] = {NULL};
    trove_router_all (self, &q, replies);
    uint64_t cost = 0;
    size_t found = ns, failed = ns, silent = 0, first_silent = ns;
    for (size_t k = 0; k < ns; k++) {
        Trove__QueryReply *r = replies [k];
        if (!r) {
            if (!silent++)
                first_silent = k;
            continue;
        }
        cost += r->cost;
        bool error = r->error && *r->error;
        if (!error && r->n_coins && found == ns)
            found = k;
        else if (error && trove_error_parse (r->error) != TROVE_E_NOT_FOUND && failed == ns)
            failed = k;
    }
    Trove__QueryReply *result = NULL;
    if (found < ns) {
        result = replies [found];
        replies [found] = NULL;
        result->cost = cost;
        result = s_check_cost (self, result);
    }
    else if (failed < ns)
        result = s_error_reply (replies [failed]->error, cost);
    else if (silent) {
        if (err_p)
            *err_p =
                trove_strdupf ("%zu shard%s did not answer: no answer from shard %s (%s) within %d ms",
                               silent, silent == 1 ? "" : "s", trove_cfg_shard_name (self->cfg, first_silent),
                               trove_cfg_shard_query (self->cfg, first_silent), self->timeout_ms);
    }
    else
        result = s_error_reply (trove_strerror (TROVE_E_NOT_FOUND), cost);
    s_free_replies (replies, ns);
    return result;
}
