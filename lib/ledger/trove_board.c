/*  trove_board - leaderboard indexes and their bounded reads. See
    trove_board.h for the tables and the cost model. */
#include "trove_board_internal.h"
#include "trove_tz.h"
#include "trove_util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LEVELS 10    //  4 bits each: scores up to 2^40 - 1
#define S_KEY_MAX 511  //  LMDB's default key limit
#define S_NONE (-1)

struct _trove_board_t {
    MDB_dbi scores, order, counts, boards, excluded;
    zhashx_t *deltas;  //  "user NUL period NUL hunt" (as text with \x1f) -> s_delta_t
};

typedef struct {
    char *user, *hunt;
    char period [TROVE_BOARD_PERIOD_MAX + 1];
    int64_t delta;
    uint8_t *skey;  //  its bscores key
    size_t slen;
} s_delta_t;

bool
trove_cost_charge (trove_cost_t *cost, uint64_t n)
{
    if (cost->limit && cost->used + n > cost->limit) {
        cost->over = true;
        return false;
    }
    cost->used += n;
    return true;
}

static void
s_delta_destroy (void **item)
{
    s_delta_t *d = *item;
    if (d) {
        free (d->user);
        free (d->hunt);
        free (d->skey);
        free (d);
        *item = NULL;
    }
}

trove_board_t *
trove_board_new (MDB_txn *txn, char **err_p)
{
    trove_board_t *self = calloc (1, sizeof *self);
    if (!self || !(self->deltas = zhashx_new ())) {
        free (self);
        if (err_p)
            *err_p = strdup ("out of memory");
        return NULL;
    }
    zhashx_set_destructor (self->deltas, s_delta_destroy);
    int rc;
    if ((rc = mdb_dbi_open (txn, "bscores", MDB_CREATE, &self->scores))
        || (rc = mdb_dbi_open (txn, "border", MDB_CREATE, &self->order))
        || (rc = mdb_dbi_open (txn, "bcounts", MDB_CREATE, &self->counts))
        || (rc = mdb_dbi_open (txn, "boards", MDB_CREATE, &self->boards))
        || (rc = mdb_dbi_open (txn, "excluded", MDB_CREATE, &self->excluded))) {
        if (err_p)
            *err_p = trove_strdupf ("open board tables: %s", mdb_strerror (rc));
        trove_board_destroy (&self);
        return NULL;
    }
    return self;
}

void
trove_board_destroy (trove_board_t **self_p)
{
    assert (self_p);
    trove_board_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->deltas);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------------
//  Keys

static int64_t
s_floor_div (int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void
trove_board_day_period (int64_t day, char *buf, size_t size)
{
    char date [16];
    trove_tz_day_text (day, date, sizeof date);
    snprintf (buf, size, "day:%.10s", date);
}

void
trove_board_week_period (int64_t day, char *buf, size_t size)
{
    //  1970-01-01 was a Thursday: weeks (Monday first) start at day 7w - 3.
    char date [16];
    trove_tz_day_text (s_floor_div (day + 3, 7) * 7 - 3, date, sizeof date);
    snprintf (buf, size, "week:%.10s", date);
}

bool
trove_board_period_valid (const char *hunt, const char *period)
{
    if (!hunt || !period || !*hunt)
        return false;
    if (strcmp (period, "all") == 0)
        return true;
    if (strcmp (hunt, "*") == 0)
        return false;  //  every hunt together: all-time only (time zones differ)
    bool week = strncmp (period, "week:", 5) == 0;
    if (!week && strncmp (period, "day:", 4) != 0)
        return false;
    const char *date = period + (week ? 5 : 4);
    int y, m, d;
    char tail;
    if (strlen (date) != 10 || sscanf (date, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return false;
    //  Round trip through the day number: refuses 2026-02-30 and friends.
    int64_t yy = y - (m <= 2), era = s_floor_div (yy, 400), yoe = yy - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t day = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    char again [TROVE_BOARD_PERIOD_MAX + 1];
    if (week)
        trove_board_week_period (day, again, sizeof again);
    else
        trove_board_day_period (day, again, sizeof again);
    return strcmp (again, period) == 0;
}

//  hunt NUL period NUL. Returns its length, 0 when too long.
static size_t
s_board_key (uint8_t *out, const char *hunt, const char *period)
{
    size_t hl = strlen (hunt), pl = strlen (period);
    if (hl + pl + 2 + 8 + 1 + 8 > S_KEY_MAX)
        return 0;
    memcpy (out, hunt, hl + 1);
    memcpy (out + hl + 1, period, pl + 1);
    return hl + pl + 2;
}

//  user NUL period NUL hunt. Returns its length, 0 when too long.
static size_t
s_score_key (uint8_t *out, const char *user, const char *period, const char *hunt)
{
    size_t ul = strlen (user), pl = strlen (period), hl = strlen (hunt);
    if (ul + pl + hl + 2 > S_KEY_MAX)
        return 0;
    memcpy (out, user, ul + 1);
    memcpy (out + ul + 1, period, pl + 1);
    memcpy (out + ul + pl + 2, hunt, hl);
    return ul + pl + hl + 2;
}

static int64_t
s_clamp (int64_t score)
{
    return score <= 0 ? S_NONE : score > TROVE_BOARD_SCORE_MAX ? TROVE_BOARD_SCORE_MAX : score;
}

//  board | ~score | user
static size_t
s_order_key (uint8_t *out, const uint8_t *bkey, size_t blen, int64_t score, const char *user)
{
    size_t ul = strlen (user);
    if (blen + 8 + ul > S_KEY_MAX)
        return 0;
    memcpy (out, bkey, blen);
    trove_put_be64 (out + blen, ~(uint64_t) score);
    memcpy (out + blen + 8, user, ul);
    return blen + 8 + ul;
}

static size_t
s_node_key (uint8_t *out, const uint8_t *bkey, size_t blen, int level, uint64_t prefix)
{
    memcpy (out, bkey, blen);
    out [blen] = (uint8_t) level;
    trove_put_be64 (out + blen + 1, prefix);
    return blen + 9;
}

static Trove__BoardEntry *
s_entry_new (const char *user, size_t ulen, int64_t score)
{
    Trove__BoardEntry *e = malloc (sizeof *e);
    if (!e)
        return NULL;
    trove__board_entry__init (e);
    e->score = score;
    if (user && !(e->user = strndup (user, ulen))) {
        free (e);
        return NULL;
    }
    return e;
}

void
trove_board_entries_free (Trove__BoardEntry **entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (entries [i])
            trove__board_entry__free_unpacked (entries [i], NULL);
    free (entries);
}

//  Append e (NULL: out of memory) to a growing array.
static int
s_push (Trove__BoardEntry ***entries_p, size_t *n_p, size_t *cap_p, Trove__BoardEntry *e)
{
    if (!e)
        return -1;
    if (*n_p == *cap_p) {
        size_t cap = *cap_p ? *cap_p * 2 : 16;
        Trove__BoardEntry **grown = realloc (*entries_p, cap * sizeof *grown);
        if (!grown) {
            trove__board_entry__free_unpacked (e, NULL);
            return -1;
        }
        *entries_p = grown;
        *cap_p = cap;
    }
    (*entries_p) [(*n_p)++] = e;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Writing

static int
s_delta (trove_board_t *self, const char *user, const char *hunt, const char *period, int64_t value)
{
    uint8_t key [S_KEY_MAX + 1];
    size_t len = s_score_key (key, user, period, hunt);
    if (!len)
        return 0;  //  a user id at the key limit: on no board
    //  The key as text for the hash: NUL separators become \x1f.
    char text [S_KEY_MAX + 1];
    for (size_t i = 0; i < len; i++)
        text [i] = key [i] ? (char) key [i] : '\x1f';
    text [len] = 0;
    s_delta_t *d = zhashx_lookup (self->deltas, text);
    if (!d) {
        d = calloc (1, sizeof *d);
        if (!d || !(d->user = strdup (user)) || !(d->hunt = strdup (hunt)) || !(d->skey = malloc (len))) {
            if (d) {
                free (d->user);
                free (d->hunt);
                free (d);
            }
            return -1;
        }
        memcpy (d->skey, key, len);
        d->slen = len;
        snprintf (d->period, sizeof d->period, "%s", period);
        zhashx_insert (self->deltas, text, d);
    }
    d->delta += value;
    return 0;
}

int
trove_board_add (trove_board_t *self, const Trove__Coin *coin)
{
    assert (self);
    int64_t value = coin->revoked ? -coin->value : coin->value;
    if (value == 0)
        return 0;
    int64_t day = coin->local_day ? coin->local_day : s_floor_div (coin->event_ts_ms, 86400000);
    char dayp [TROVE_BOARD_PERIOD_MAX + 1], weekp [TROVE_BOARD_PERIOD_MAX + 1];
    trove_board_day_period (day, dayp, sizeof dayp);
    trove_board_week_period (day, weekp, sizeof weekp);
    if (s_delta (self, coin->user, coin->hunt, "all", value)
        || s_delta (self, coin->user, coin->hunt, dayp, value)
        || s_delta (self, coin->user, coin->hunt, weekp, value)
        || s_delta (self, coin->user, "*", "all", value))
        return -1;
    return 0;
}

//  A flush's index writes, collected, sorted and then applied in key order:
//  neighbouring keys share pages, so a sorted pass walks each page once
//  while it is hot, and every count node is read and written once per flush
//  however many users moved through it (the low nodes are hit by nearly
//  every coin).
typedef enum { S_OP_ORDER, S_OP_COUNT, S_OP_LIST } s_table_t;

typedef struct {
    size_t off;          //  key in the plan's arena
    const uint8_t *key;  //  set once the arena stops growing
    uint16_t len;
    uint8_t table;  //  s_table_t
    int8_t digit;   //  S_OP_COUNT: which digit moves
    int8_t sign;    //  S_OP_ORDER: -1 delete, +1 put; S_OP_COUNT: -1 or +1
} s_op_t;

typedef struct {
    uint8_t *arena;
    size_t used, room;
    s_op_t *ops;
    size_t n, cap;
} s_plan_t;

static int
s_plan_add (s_plan_t *plan, s_table_t table, const uint8_t *key, size_t len, int digit, int sign)
{
    if (plan->used + len > plan->room) {
        size_t room = plan->room ? plan->room * 2 : 65536;
        while (room < plan->used + len)
            room *= 2;
        uint8_t *grown = realloc (plan->arena, room);
        if (!grown)
            return ENOMEM;
        plan->arena = grown;
        plan->room = room;
    }
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? plan->cap * 2 : 1024;
        s_op_t *grown = realloc (plan->ops, cap * sizeof *grown);
        if (!grown)
            return ENOMEM;
        plan->ops = grown;
        plan->cap = cap;
    }
    memcpy (plan->arena + plan->used, key, len);
    plan->ops [plan->n++] = (s_op_t){.off = plan->used,
                                     .len = (uint16_t) len,
                                     .table = (uint8_t) table,
                                     .digit = (int8_t) digit,
                                     .sign = (int8_t) sign};
    plan->used += len;
    return 0;
}

static void
s_plan_free (s_plan_t *plan)
{
    free (plan->arena);
    free (plan->ops);
    *plan = (s_plan_t){0};
}

//  LMDB's default order: bytes, then length.
static int
s_key_cmp (const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp (a, b, al < bl ? al : bl);
    return c ? c : al < bl ? -1 : al > bl;
}

static int
s_op_cmp (const void *x, const void *y)
{
    const s_op_t *a = x, *b = y;
    if (a->table != b->table)
        return a->table < b->table ? -1 : 1;
    int c = s_key_cmp (a->key, a->len, b->key, b->len);
    if (c)
        return c;
    return a->sign < b->sign ? -1 : a->sign > b->sign;  //  an order delete before a put of the same key
}

//  Plan a user's move on one board from score old to new (<= 0: not on it):
//  its order entry, the count nodes on the two paths, and the board's
//  listing when the user may be its first.
static int
s_plan_move (s_plan_t *plan, const char *hunt, const char *period, const char *user, int64_t old, int64_t new)
{
    int64_t o = s_clamp (old), n = s_clamp (new);
    if (o == n)
        return 0;
    uint8_t bkey [S_KEY_MAX + 1], key [S_KEY_MAX + 1];
    size_t blen = s_board_key (bkey, hunt, period), len;
    if (!blen)
        return EINVAL;
    int rc;
    if (o != S_NONE) {
        if (!(len = s_order_key (key, bkey, blen, o, user)))
            return EINVAL;
        if ((rc = s_plan_add (plan, S_OP_ORDER, key, len, 0, -1)))
            return rc;
    }
    if (n != S_NONE) {
        if (!(len = s_order_key (key, bkey, blen, n, user)))
            return EINVAL;
        if ((rc = s_plan_add (plan, S_OP_ORDER, key, len, 0, +1)))
            return rc;
    }
    for (int j = 0; j < S_LEVELS; j++) {
        int shift = 4 * j;
        if (o != S_NONE && n != S_NONE && (o >> shift) == (n >> shift))
            break;  //  the paths join here: the nodes above are unchanged
        //  Above level 0, digit 0 is never read (a count of users above a
        //  score sums only digits above its own): small scores touch only
        //  the low levels.
        int od = o == S_NONE ? S_NONE : (int) ((o >> shift) & 15);
        int nd = n == S_NONE ? S_NONE : (int) ((n >> shift) & 15);
        if (od != S_NONE && (j == 0 || od != 0)) {
            len = s_node_key (key, bkey, blen, j, (uint64_t) o >> (shift + 4));
            if ((rc = s_plan_add (plan, S_OP_COUNT, key, len, od, -1)))
                return rc;
        }
        if (nd != S_NONE && (j == 0 || nd != 0)) {
            len = s_node_key (key, bkey, blen, j, (uint64_t) n >> (shift + 4));
            if ((rc = s_plan_add (plan, S_OP_COUNT, key, len, nd, +1)))
                return rc;
        }
    }
    if (o == S_NONE) {
        //  The board's first user makes it listed (boards are never unlisted).
        size_t hl = strlen (hunt), pl = strlen (period);
        memcpy (key, hunt, hl + 1);
        memcpy (key + hl + 1, period, pl);
        if ((rc = s_plan_add (plan, S_OP_LIST, key, hl + 1 + pl, 0, +1)))
            return rc;
    }
    return 0;
}

//  One count node: the flush's net moves per digit on what is stored.
static int
s_node_apply (trove_board_t *self, MDB_cursor *cur, const s_op_t *ops, size_t n)
{
    MDB_val k = {ops [0].len, (void *) ops [0].key}, v;
    uint32_t counts [16] = {0};
    int rc = mdb_cursor_get (cur, &k, &v, MDB_SET_KEY);
    bool found = rc == 0;
    if (found && v.mv_size == sizeof counts)
        memcpy (counts, v.mv_data, sizeof counts);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    int64_t net [16] = {0};
    for (size_t i = 0; i < n; i++)
        net [ops [i].digit] += ops [i].sign;
    bool empty = true;
    for (int d = 0; d < 16; d++) {
        int64_t c = (int64_t) counts [d] + net [d];
        counts [d] = c < 0 ? 0 : c > UINT32_MAX ? UINT32_MAX : (uint32_t) c;
        empty = empty && counts [d] == 0;
    }
    (void) self;
    if (empty)
        return found ? mdb_cursor_del (cur, 0) : 0;
    k = (MDB_val){ops [0].len, (void *) ops [0].key};
    v = (MDB_val){sizeof counts, counts};
    return mdb_cursor_put (cur, &k, &v, found ? MDB_CURRENT : 0);
}

static int
s_plan_apply (trove_board_t *self, MDB_txn *txn, s_plan_t *plan)
{
    for (size_t i = 0; i < plan->n; i++)
        plan->ops [i].key = plan->arena + plan->ops [i].off;
    if (plan->n)  //  ops is NULL when the plan is empty (UBSan: qsort of NULL)
        qsort (plan->ops, plan->n, sizeof *plan->ops, s_op_cmp);
    MDB_cursor *order = NULL, *counts = NULL;
    int rc = mdb_cursor_open (txn, self->order, &order);
    if (rc == 0)
        rc = mdb_cursor_open (txn, self->counts, &counts);
    for (size_t i = 0; i < plan->n && rc == 0;) {
        const s_op_t *op = plan->ops + i;
        MDB_val k = {op->len, (void *) op->key}, v = {0, NULL};
        size_t same = 1;
        if (op->table == S_OP_ORDER) {
            if (op->sign < 0) {
                rc = mdb_cursor_get (order, &k, NULL, MDB_SET);
                rc = rc == 0 ? mdb_cursor_del (order, 0) : rc == MDB_NOTFOUND ? 0 : rc;
            }
            else
                rc = mdb_cursor_put (order, &k, &v, 0);
        }
        else {
            while (i + same < plan->n && op [same].table == op->table
                   && s_key_cmp (op [same].key, op [same].len, op->key, op->len) == 0)
                same++;
            if (op->table == S_OP_COUNT)
                rc = s_node_apply (self, counts, op, same);
            else {
                rc = mdb_put (txn, self->boards, &k, &v, MDB_NOOVERWRITE);
                rc = rc == MDB_KEYEXIST ? 0 : rc;
            }
        }
        i += same;
    }
    if (counts)
        mdb_cursor_close (counts);
    if (order)
        mdb_cursor_close (order);
    return rc;
}

static int
s_is_excluded (trove_board_t *self, MDB_txn *txn, const char *user, bool *excluded_p)
{
    MDB_val k = {strlen (user), (void *) user}, v;
    int rc = k.mv_size ? mdb_get (txn, self->excluded, &k, &v) : MDB_NOTFOUND;
    *excluded_p = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
s_delta_cmp (const void *x, const void *y)
{
    const s_delta_t *a = *(s_delta_t *const *) x, *b = *(s_delta_t *const *) y;
    return s_key_cmp (a->skey, a->slen, b->skey, b->slen);
}

int
trove_board_flush (trove_board_t *self, MDB_txn *txn)
{
    assert (self);
    size_t n = zhashx_size (self->deltas);
    if (n == 0)
        return 0;
    //  Exclusions are rare: with none, no lookup per score.
    MDB_stat st;
    int rc = mdb_stat (txn, self->excluded, &st);
    bool any_excluded = rc != 0 || st.ms_entries > 0;
    //  Scores in key order (a user's boards are neighbours), then the
    //  index writes they cause, in theirs.
    s_delta_t **sorted = malloc (n * sizeof *sorted);
    MDB_cursor *cur = NULL;
    s_plan_t plan = {0};
    rc = sorted ? mdb_cursor_open (txn, self->scores, &cur) : ENOMEM;
    size_t i = 0;
    for (s_delta_t *d = zhashx_first (self->deltas); d && rc == 0; d = zhashx_next (self->deltas))
        sorted [i++] = d;
    if (rc == 0)
        qsort (sorted, n, sizeof *sorted, s_delta_cmp);
    for (i = 0; i < n && rc == 0; i++) {
        s_delta_t *d = sorted [i];
        if (d->delta == 0)
            continue;
        MDB_val k = {d->slen, d->skey}, v;
        int64_t old = 0;
        rc = mdb_cursor_get (cur, &k, &v, MDB_SET_KEY);
        bool found = rc == 0;
        if (found && v.mv_size == 8)
            memcpy (&old, v.mv_data, 8);
        else if (rc && rc != MDB_NOTFOUND)
            break;
        int64_t new = old + d->delta;
        if (new == 0)
            rc = found ? mdb_cursor_del (cur, 0) : 0;
        else {
            k = (MDB_val){d->slen, d->skey};
            v = (MDB_val){8, &new};
            rc = mdb_cursor_put (cur, &k, &v, found ? MDB_CURRENT : 0);
        }
        if (rc)
            break;
        bool excluded = false;
        rc = any_excluded ? s_is_excluded (self, txn, d->user, &excluded) : 0;
        if (rc == 0 && !excluded)
            rc = s_plan_move (&plan, d->hunt, d->period, d->user, old, new);
    }
    if (cur)
        mdb_cursor_close (cur);
    free (sorted);
    if (rc == 0)
        rc = s_plan_apply (self, txn, &plan);
    s_plan_free (&plan);
    zhashx_purge (self->deltas);
    return rc;
}

void
trove_board_discard (trove_board_t *self)
{
    assert (self);
    zhashx_purge (self->deltas);
}

int
trove_board_set_excluded (trove_board_t *self, MDB_txn *txn, const char *user, bool excluded,
                          const char *reason)
{
    assert (self);
    size_t ul = strlen (user);
    if (ul == 0 || ul + 2 > S_KEY_MAX)
        return EINVAL;
    bool was;
    int rc = s_is_excluded (self, txn, user, &was);
    if (rc)
        return rc;
    MDB_val k = {ul, (void *) user}, v = {strlen (reason ? reason : ""), (void *) (reason ? reason : "")};
    if (was == excluded)
        return excluded ? mdb_put (txn, self->excluded, &k, &v, 0) : 0;
    //  Move each of the user's boards in or out of the index.
    s_plan_t plan = {0};
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open (txn, self->scores, &cur)))
        return rc;
    uint8_t prefix [S_KEY_MAX + 1];
    memcpy (prefix, user, ul + 1);
    MDB_val ck = {ul + 1, prefix}, cv;
    for (rc = mdb_cursor_get (cur, &ck, &cv, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get (cur, &ck, &cv, MDB_NEXT)) {
        if (ck.mv_size <= ul + 1 || memcmp (ck.mv_data, prefix, ul + 1))
            break;
        const char *period = (const char *) ck.mv_data + ul + 1;
        size_t rest = ck.mv_size - ul - 1, pl = strnlen (period, rest);
        if (pl >= rest || cv.mv_size != 8)
            continue;
        char p [TROVE_BOARD_PERIOD_MAX + 1], h [S_KEY_MAX + 1];
        if (pl > TROVE_BOARD_PERIOD_MAX)
            continue;
        memcpy (p, period, pl);
        p [pl] = 0;
        memcpy (h, period + pl + 1, rest - pl - 1);
        h [rest - pl - 1] = 0;
        int64_t score;
        memcpy (&score, cv.mv_data, 8);
        if ((rc = s_plan_move (&plan, h, p, user, excluded ? score : 0, excluded ? 0 : score)))
            break;
    }
    mdb_cursor_close (cur);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = s_plan_apply (self, txn, &plan);
    s_plan_free (&plan);
    if (rc)
        return rc;
    if (excluded)
        return mdb_put (txn, self->excluded, &k, &v, 0);
    rc = mdb_del (txn, self->excluded, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  ---------------------------------------------------------------------------
//  Reading

//  Decode an order key of board bkey: score and user. False if it is not one.
static bool
s_order_decode (const MDB_val *k, const uint8_t *bkey, size_t blen, int64_t *score_p, const char **user_p,
                size_t *ulen_p)
{
    if (k->mv_size < blen + 8 || memcmp (k->mv_data, bkey, blen))
        return false;
    *score_p = (int64_t) ~trove_get_be64 ((const uint8_t *) k->mv_data + blen);
    *user_p = (const char *) k->mv_data + blen + 8;
    *ulen_p = k->mv_size - blen - 8;
    return true;
}

int
trove_board_top (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period, int64_t after_score,
                 const char *after_user, size_t limit, trove_cost_t *cost, Trove__BoardEntry ***entries_p,
                 size_t *n_p, bool *more_p)
{
    *entries_p = NULL;
    *n_p = 0;
    *more_p = false;
    uint8_t bkey [S_KEY_MAX + 1], key [S_KEY_MAX + 1];
    size_t blen = s_board_key (bkey, hunt, period), cap = 0;
    if (!blen)
        return 0;
    MDB_val k = {blen, bkey}, v;
    if (after_user) {
        int64_t s = s_clamp (after_score);
        k = (MDB_val){s_order_key (key, bkey, blen, s == S_NONE ? 0 : s, after_user), key};
        if (!k.mv_size)
            return 0;
    }
    MDB_val start = k;
    MDB_cursor *cur;
    if (mdb_cursor_open (txn, self->order, &cur))
        return -1;
    int rc = 0, got;
    MDB_cursor_op op = MDB_SET_RANGE;
    while (true) {
        if (!trove_cost_charge (cost, 1)) {
            rc = -1;
            break;
        }
        got = mdb_cursor_get (cur, &k, &v, op);
        op = MDB_NEXT;
        int64_t score;
        const char *user;
        size_t ulen;
        if (got || !s_order_decode (&k, bkey, blen, &score, &user, &ulen))
            break;
        if (after_user && k.mv_size == start.mv_size && memcmp (k.mv_data, start.mv_data, k.mv_size) == 0)
            continue;  //  the position itself
        if (*n_p == limit) {
            *more_p = true;
            break;
        }
        if (s_push (entries_p, n_p, &cap, s_entry_new (user, ulen, score))) {
            rc = -1;
            break;
        }
    }
    mdb_cursor_close (cur);
    if (rc) {
        trove_board_entries_free (*entries_p, *n_p);
        *entries_p = NULL;
        *n_p = 0;
    }
    return rc;
}

typedef struct {
    int level;
    uint64_t prefix;
    uint32_t counts [16];
} s_node_t;

//  Read node (level, prefix) through a small per-query cache.
static int
s_node_get (trove_board_t *self, MDB_txn *txn, const uint8_t *bkey, size_t blen, int level, uint64_t prefix,
            s_node_t *cache, size_t *ncache, size_t cache_cap, trove_cost_t *cost, const uint32_t **counts_p)
{
    for (size_t i = 0; i < *ncache; i++)
        if (cache [i].level == level && cache [i].prefix == prefix) {
            *counts_p = cache [i].counts;
            return 0;
        }
    if (!trove_cost_charge (cost, 1))
        return -1;
    s_node_t *node = &cache [*ncache < cache_cap ? (*ncache)++ : cache_cap - 1];
    node->level = level;
    node->prefix = prefix;
    memset (node->counts, 0, sizeof node->counts);
    uint8_t key [S_KEY_MAX + 1];
    MDB_val k = {s_node_key (key, bkey, blen, level, prefix), key}, v;
    int rc = mdb_get (txn, self->counts, &k, &v);
    if (rc == 0 && v.mv_size == sizeof node->counts)
        memcpy (node->counts, v.mv_data, sizeof node->counts);
    else if (rc && rc != MDB_NOTFOUND)
        return -1;
    *counts_p = node->counts;
    return 0;
}

int
trove_board_counts (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period,
                    const int64_t *scores, size_t n, trove_cost_t *cost, uint64_t *above, uint64_t *equal)
{
    uint8_t bkey [S_KEY_MAX + 1];
    size_t blen = s_board_key (bkey, hunt, period);
    s_node_t cache [64];
    size_t ncache = 0;
    for (size_t i = 0; i < n; i++) {
        above [i] = equal [i] = 0;
        if (!blen)
            continue;
        int64_t s = scores [i] <= 0                    ? 0
                  : scores [i] > TROVE_BOARD_SCORE_MAX ? TROVE_BOARD_SCORE_MAX
                                                       : scores [i];
        for (int j = 0; j < S_LEVELS; j++) {
            const uint32_t *counts;
            uint64_t prefix = (uint64_t) s >> (4 * j + 4);
            int digit = (int) (((uint64_t) s >> (4 * j)) & 15);
            if (s_node_get (self, txn, bkey, blen, j, prefix, cache, &ncache, 64, cost, &counts))
                return -1;
            for (int d = digit + 1; d < 16; d++)
                above [i] += counts [d];
            if (j == 0 && scores [i] > 0)
                equal [i] = counts [digit];
        }
    }
    return 0;
}

int
trove_board_window (trove_board_t *self, MDB_txn *txn, const char *hunt, const char *period, int64_t score,
                    const char *user, size_t k, trove_cost_t *cost, Trove__BoardEntry ***before_p,
                    size_t *nbefore_p, Trove__BoardEntry ***after_p, size_t *nafter_p)
{
    *before_p = *after_p = NULL;
    *nbefore_p = *nafter_p = 0;
    uint8_t bkey [S_KEY_MAX + 1], key [S_KEY_MAX + 1];
    size_t blen = s_board_key (bkey, hunt, period), acap = 0;
    int64_t s = s_clamp (score);
    MDB_val pos = {blen ? s_order_key (key, bkey, blen, s == S_NONE ? 0 : s, user) : 0, key};
    if (!pos.mv_size || k == 0)
        return 0;
    MDB_cursor *cur;
    if (mdb_cursor_open (txn, self->order, &cur))
        return -1;
    int rc = 0;
    //  After: from the position on, itself skipped.
    MDB_val kk = pos, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    bool at_end = false;
    while (*nafter_p < k) {
        if (!trove_cost_charge (cost, 1)) {
            rc = -1;
            break;
        }
        int got = mdb_cursor_get (cur, &kk, &v, op);
        if (got && op == MDB_SET_RANGE)
            at_end = true;
        op = MDB_NEXT;
        int64_t es;
        const char *eu;
        size_t el;
        if (got || !s_order_decode (&kk, bkey, blen, &es, &eu, &el))
            break;
        if (kk.mv_size == pos.mv_size && memcmp (kk.mv_data, pos.mv_data, pos.mv_size) == 0)
            continue;
        if (s_push (after_p, nafter_p, &acap, s_entry_new (eu, el, es))) {
            rc = -1;
            break;
        }
    }
    //  Before: backwards from the position (from the end when it lies past it).
    if (rc == 0) {
        kk = pos;
        int got = at_end ? MDB_NOTFOUND : mdb_cursor_get (cur, &kk, &v, MDB_SET_RANGE);
        op = got ? MDB_LAST : MDB_PREV;
        Trove__BoardEntry **rev = NULL;
        size_t nrev = 0, rcap = 0;
        while (nrev < k) {
            if (!trove_cost_charge (cost, 1)) {
                rc = -1;
                break;
            }
            got = mdb_cursor_get (cur, &kk, &v, op);
            op = MDB_PREV;
            int64_t es;
            const char *eu;
            size_t el;
            if (got || !s_order_decode (&kk, bkey, blen, &es, &eu, &el))
                break;
            if (kk.mv_size == pos.mv_size && memcmp (kk.mv_data, pos.mv_data, pos.mv_size) == 0)
                continue;
            if (s_push (&rev, &nrev, &rcap, s_entry_new (eu, el, es))) {
                rc = -1;
                break;
            }
        }
        //  Closest last.
        for (size_t i = 0; i < nrev / 2; i++) {
            Trove__BoardEntry *t = rev [i];
            rev [i] = rev [nrev - 1 - i];
            rev [nrev - 1 - i] = t;
        }
        *before_p = rev;
        *nbefore_p = nrev;
    }
    mdb_cursor_close (cur);
    if (rc) {
        trove_board_entries_free (*before_p, *nbefore_p);
        trove_board_entries_free (*after_p, *nafter_p);
        *before_p = *after_p = NULL;
        *nbefore_p = *nafter_p = 0;
    }
    return rc;
}

int
trove_board_score (trove_board_t *self, MDB_txn *txn, const char *user, const char *hunt, const char *period,
                   trove_cost_t *cost, int64_t *score_p, bool *excluded_p)
{
    *score_p = 0;
    uint8_t key [S_KEY_MAX + 1];
    MDB_val k = {s_score_key (key, user, period, hunt), key}, v;
    if (!k.mv_size)
        return 0;
    if (!trove_cost_charge (cost, 1))
        return -1;
    int rc = mdb_get (txn, self->scores, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        memcpy (score_p, v.mv_data, 8);
    else if (rc && rc != MDB_NOTFOUND)
        return -1;
    if (excluded_p) {
        if (!trove_cost_charge (cost, 1))
            return -1;
        if (s_is_excluded (self, txn, user, excluded_p))
            return -1;
    }
    return 0;
}

int
trove_board_hunts (trove_board_t *self, MDB_txn *txn, const char *user, trove_cost_t *cost,
                   Trove__BoardEntry ***entries_p, size_t *n_p)
{
    *entries_p = NULL;
    *n_p = 0;
    uint8_t prefix [S_KEY_MAX + 1];
    size_t ul = strlen (user), cap = 0;
    if (ul + 6 > S_KEY_MAX)
        return 0;
    memcpy (prefix, user, ul + 1);
    memcpy (prefix + ul + 1, "all", 4);
    size_t plen = ul + 5;
    MDB_cursor *cur;
    if (mdb_cursor_open (txn, self->scores, &cur))
        return -1;
    //  Start just past "*" ('+' sorts after it, before any hunt id).
    prefix [plen] = '+';
    MDB_val k = {plen + 1, prefix}, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    int rc = 0;
    while (true) {
        if (!trove_cost_charge (cost, 1)) {
            rc = -1;
            break;
        }
        if (mdb_cursor_get (cur, &k, &v, op) || k.mv_size < plen || memcmp (k.mv_data, prefix, plen))
            break;
        op = MDB_NEXT;
        const char *hunt = (const char *) k.mv_data + plen;
        size_t hl = k.mv_size - plen;
        if (v.mv_size != 8 || (hl == 1 && hunt [0] == '*'))
            continue;
        int64_t score;
        memcpy (&score, v.mv_data, 8);
        Trove__BoardEntry *e = s_entry_new (NULL, 0, score);
        if (e && !(e->hunt = strndup (hunt, hl))) {
            trove__board_entry__free_unpacked (e, NULL);
            e = NULL;
        }
        if (s_push (entries_p, n_p, &cap, e)) {
            rc = -1;
            break;
        }
    }
    mdb_cursor_close (cur);
    if (rc) {
        trove_board_entries_free (*entries_p, *n_p);
        *entries_p = NULL;
        *n_p = 0;
    }
    return rc;
}

int
trove_board_list (trove_board_t *self, MDB_txn *txn, const char *hunt, size_t limit, trove_cost_t *cost,
                  Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p)
{
    *entries_p = NULL;
    *n_p = 0;
    *more_p = false;
    size_t hl = strlen (hunt), cap = 0;
    if (hl + 1 > S_KEY_MAX)
        return 0;
    uint8_t prefix [S_KEY_MAX + 1];
    memcpy (prefix, hunt, hl);
    prefix [hl] = 1;  //  just past every "hunt NUL ..." key
    MDB_cursor *cur;
    if (mdb_cursor_open (txn, self->boards, &cur))
        return -1;
    MDB_val k = {hl + 1, prefix}, v;
    int rc = 0;
    if (!trove_cost_charge (cost, 1))
        rc = -1;
    MDB_cursor_op op = rc == 0 && mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE) == 0 ? MDB_PREV : MDB_LAST;
    prefix [hl] = 0;
    while (rc == 0) {
        if (!trove_cost_charge (cost, 1)) {
            rc = -1;
            break;
        }
        if (mdb_cursor_get (cur, &k, &v, op) || k.mv_size <= hl + 1 || memcmp (k.mv_data, prefix, hl + 1))
            break;
        op = MDB_PREV;
        if (*n_p == limit) {
            *more_p = true;
            break;
        }
        char period [TROVE_BOARD_PERIOD_MAX + 1];
        size_t pl = k.mv_size - hl - 1;
        if (pl > TROVE_BOARD_PERIOD_MAX)
            continue;
        memcpy (period, (const char *) k.mv_data + hl + 1, pl);
        period [pl] = 0;
        //  Its users: the sum of the root node (every score is below it).
        int64_t zero = 0;
        uint64_t above, equal;
        if (trove_board_counts (self, txn, hunt, period, &zero, 1, cost, &above, &equal)) {
            rc = -1;
            break;
        }
        Trove__BoardEntry *e = s_entry_new (NULL, 0, 0);
        if (e && !(e->period = strdup (period))) {
            trove__board_entry__free_unpacked (e, NULL);
            e = NULL;
        }
        if (e)
            e->users = above;
        if (s_push (entries_p, n_p, &cap, e))
            rc = -1;
    }
    mdb_cursor_close (cur);
    if (rc) {
        trove_board_entries_free (*entries_p, *n_p);
        *entries_p = NULL;
        *n_p = 0;
    }
    return rc;
}

int
trove_board_excluded (trove_board_t *self, MDB_txn *txn, size_t limit, trove_cost_t *cost,
                      Trove__BoardEntry ***entries_p, size_t *n_p, bool *more_p)
{
    *entries_p = NULL;
    *n_p = 0;
    *more_p = false;
    MDB_cursor *cur;
    if (mdb_cursor_open (txn, self->excluded, &cur))
        return -1;
    MDB_val k, v;
    MDB_cursor_op op = MDB_FIRST;
    size_t cap = 0;
    int rc = 0;
    while (true) {
        if (!trove_cost_charge (cost, 1)) {
            rc = -1;
            break;
        }
        if (mdb_cursor_get (cur, &k, &v, op))
            break;
        op = MDB_NEXT;
        if (*n_p == limit) {
            *more_p = true;
            break;
        }
        Trove__BoardEntry *e = s_entry_new (k.mv_data, k.mv_size, 0);
        if (e && !(e->reason = strndup (v.mv_data, v.mv_size))) {
            trove__board_entry__free_unpacked (e, NULL);
            e = NULL;
        }
        if (s_push (entries_p, n_p, &cap, e)) {
            rc = -1;
            break;
        }
    }
    mdb_cursor_close (cur);
    if (rc) {
        trove_board_entries_free (*entries_p, *n_p);
        *entries_p = NULL;
        *n_p = 0;
    }
    return rc;
}
