/*  trove_rules - hunt files and scoring. */
#include "trove_rules.h"
#include "trove_tz.h"
#include "trove_util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct _trove_rules_t {
    trove_hunt_t *hunts;  //  sorted by hunt id, then version descending
    size_t nhunts;
    size_t *groups;  //  index of each distinct hunt's first (latest) version
    size_t ngroups;
};

//  --------------------------------------------------------------------------
//  Parsing: a small recursive walk over the libyaml document tree.

typedef struct {
    yaml_document_t *doc;  //  loaded document
    const char *path;      //  file name for messages
    char *err;             //  first error
} s_parse_t;

static int
s_fail (s_parse_t *p, yaml_node_t *node, const char *fmt, ...)
{
    if (p->err)
        return -1;
    char msg [400];
    va_list args;
    va_start (args, fmt);
    vsnprintf (msg, sizeof msg, fmt, args);
    va_end (args);
    char buf [700];
    snprintf (buf, sizeof buf, "%s:%zu: %s", p->path, node ? node->start_mark.line + 1 : 0, msg);
    p->err = strdup (buf);
    return -1;
}

static const char *
s_scalar (yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *) node->data.scalar.value : NULL;
}

static yaml_node_t *
s_get (s_parse_t *p, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const char *k = s_scalar (yaml_document_get_node (p->doc, pair->key));
        if (k && strcmp (k, key) == 0)
            return yaml_document_get_node (p->doc, pair->value);
    }
    return NULL;
}

//  Refuse keys we do not know: a typo must not silently change a hunt.
static int
s_only_keys (s_parse_t *p, yaml_node_t *map, const char *const *allowed, const char *what)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return s_fail (p, map, "%s must be a mapping", what);
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *knode = yaml_document_get_node (p->doc, pair->key);
        const char *k = s_scalar (knode);
        bool ok = false;
        for (size_t i = 0; k && allowed [i]; i++)
            ok |= strcmp (k, allowed [i]) == 0;
        if (!ok)
            return s_fail (p, knode, "unknown key '%s' in %s", k ? k : "?", what);
    }
    return 0;
}

static int
s_int (s_parse_t *p, yaml_node_t *node, const char *what, int64_t min, int64_t max, int64_t *out)
{
    const char *text = s_scalar (node);
    char *end;
    errno = 0;
    long long v = text ? strtoll (text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < min || v > max)
        return s_fail (p, node, "%s must be an integer in %lld..%lld", what, (long long) min,
                       (long long) max);
    *out = v;
    return 0;
}

static int
s_time (s_parse_t *p, yaml_node_t *node, const char *what, int64_t *out)
{
    const char *text = s_scalar (node);
    if (!text || trove_parse_rfc3339 (text, out))
        return s_fail (p, node, "%s must be an RFC 3339 time like 2026-03-10T00:00:00Z", what);
    return 0;
}

static bool
s_valid_id (const char *s)
{
    size_t n = s ? strlen (s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s [i] >= 'a' && s [i] <= 'z') || (s [i] >= 'A' && s [i] <= 'Z')
              || (s [i] >= '0' && s [i] <= '9') || s [i] == '-' || s [i] == '_' || s [i] == '.'))
            return false;
    return true;
}

//  A scalar or a sequence of scalars -> array of strings.
static int
s_strings (s_parse_t *p, yaml_node_t *node, const char *what, char ***out, size_t *n)
{
    if (node->type == YAML_SCALAR_NODE) {
        *out = calloc (1, sizeof (char *));
        if (!*out || !((*out) [0] = strdup (s_scalar (node))))
            return s_fail (p, node, "out of memory");
        *n = 1;
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return s_fail (p, node, "%s must be a value or a list of values", what);
    size_t count = node->data.sequence.items.top - node->data.sequence.items.start;
    if (count == 0)
        return s_fail (p, node, "%s must not be an empty list", what);
    *out = calloc (count, sizeof (char *));
    if (!*out)
        return s_fail (p, node, "out of memory");
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node (p->doc, node->data.sequence.items.start [i]);
        if (!s_scalar (item))
            return s_fail (p, item, "%s: each item must be a plain value", what);
        if (!((*out) [i] = strdup (s_scalar (item))))
            return s_fail (p, item, "out of memory");
        (*n)++;
    }
    return 0;
}

static int
s_parse_match (s_parse_t *p, yaml_node_t *node, trove_match_t *m, const char *what)
{
    static const char *const keys [] = {"type", "source", "attrs", "where", NULL};
    if (s_only_keys (p, node, keys, what))
        return -1;
    yaml_node_t *n;
    if ((n = s_get (p, node, "type")) && s_strings (p, n, "match.type", &m->types, &m->ntypes))
        return -1;
    if ((n = s_get (p, node, "source")) && s_strings (p, n, "match.source", &m->sources, &m->nsources))
        return -1;
    if ((n = s_get (p, node, "attrs"))) {
        if (n->type != YAML_MAPPING_NODE)
            return s_fail (p, n, "match.attrs must be a mapping of attribute: value(s)");
        size_t count = n->data.mapping.pairs.top - n->data.mapping.pairs.start;
        m->attrs = calloc (count ? count : 1, sizeof *m->attrs);
        if (!m->attrs)
            return s_fail (p, n, "out of memory");
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
            trove_attr_match_t *am = &m->attrs [m->nattrs++];
            yaml_node_t *k = yaml_document_get_node (p->doc, pair->key);
            if (!s_scalar (k) || !(am->key = strdup (s_scalar (k))))
                return s_fail (p, k, "match.attrs: bad attribute name");
            if (s_strings (p, yaml_document_get_node (p->doc, pair->value), "match.attrs value", &am->values,
                           &am->nvalues))
                return -1;
        }
    }
    if ((n = s_get (p, node, "where"))) {
        if (n->type != YAML_SEQUENCE_NODE)
            return s_fail (p, n, "match.where must be a list of {attr, op, value}");
        size_t count = n->data.sequence.items.top - n->data.sequence.items.start;
        m->wheres = calloc (count ? count : 1, sizeof *m->wheres);
        if (!m->wheres)
            return s_fail (p, n, "out of memory");
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *item = yaml_document_get_node (p->doc, n->data.sequence.items.start [i]);
            static const char *const wkeys [] = {"attr", "op", "value", NULL};
            if (s_only_keys (p, item, wkeys, "match.where item"))
                return -1;
            trove_where_t *w = &m->wheres [m->nwheres++];
            const char *attr = s_scalar (s_get (p, item, "attr"));
            const char *op = s_scalar (s_get (p, item, "op"));
            const char *value = s_scalar (s_get (p, item, "value"));
            if (!attr || !op || !value)
                return s_fail (p, item, "match.where item needs attr, op and value");
            if (!(w->attr = strdup (attr)))
                return s_fail (p, item, "out of memory");
            static const char *const ops [] = {"==", "!=", "<", "<=", ">", ">="};
            int found = -1;
            for (int k = 0; k < 6; k++)
                if (strcmp (op, ops [k]) == 0)
                    found = k;
            if (found < 0)
                return s_fail (p, item, "match.where op '%s': want one of == != < <= > >=", op);
            w->op = (trove_op_t) found;
            char *end;
            errno = 0;
            w->value = strtod (value, &end);
            if (*end || errno || end == value)
                return s_fail (p, item, "match.where value '%s' is not a number", value);
        }
    }
    return 0;
}

//  "30s", "10m", "24h", "7d", "500ms" -> milliseconds in [min, max].
static int
s_duration (s_parse_t *p, yaml_node_t *node, const char *what, int64_t min, int64_t max, int64_t *out)
{
    const char *text = s_scalar (node);
    char *end = NULL;
    errno = 0;
    long long v = text ? strtoll (text, &end, 10) : -1;
    int64_t unit = 0;
    if (text && end != text && !errno && v >= 0) {
        if (strcmp (end, "ms") == 0)
            unit = 1;
        else if (strcmp (end, "s") == 0)
            unit = 1000;
        else if (strcmp (end, "m") == 0)
            unit = 60000;
        else if (strcmp (end, "h") == 0)
            unit = 3600000;
        else if (strcmp (end, "d") == 0)
            unit = 86400000;
    }
    if (!unit || v > max / unit || v * unit < min || v * unit > max)
        return s_fail (p, node, "%s must be a duration like 30s, 10m, 24h or 7d, from %lldms to %lldd", what,
                       (long long) min, (long long) (max / 86400000));
    *out = v * unit;
    return 0;
}

static int
s_bool (s_parse_t *p, yaml_node_t *node, const char *what, bool *out)
{
    const char *text = s_scalar (node);
    if (text && strcmp (text, "true") == 0)
        *out = true;
    else if (text && strcmp (text, "false") == 0)
        *out = false;
    else
        return s_fail (p, node, "%s must be true or false", what);
    return 0;
}

#define MAX_STEPS 16
#define MAX_COUNT 1000
#define MAX_DAYS 366
#define MAX_WINDOW_MS (366LL * 86400000)

static int
s_parse_rule (s_parse_t *p, yaml_node_t *node, trove_rule_t *rule)
{
    static const char *const each_keys [] = {"id", "kind", "match", "coins", "cap", "cooldown", NULL};
    static const char *const count_keys [] = {"id",    "kind",     "match",  "coins",
                                              "count", "distinct", "repeat", NULL};
    static const char *const seq_keys [] = {"id", "kind", "steps", "within", "coins", "repeat", NULL};
    static const char *const streak_keys [] = {"id", "kind", "match", "days", "coins", "repeat", NULL};
    if (!node || node->type != YAML_MAPPING_NODE)
        return s_fail (p, node, "a rule must be a mapping");
    const char *id = s_scalar (s_get (p, node, "id"));
    if (!s_valid_id (id))
        return s_fail (p, node, "rule id must be 1-64 characters of A-Z a-z 0-9 . _ -");
    if (!(rule->id = strdup (id)))
        return s_fail (p, node, "out of memory");
    yaml_node_t *kind_node = s_get (p, node, "kind");
    const char *kind = s_scalar (kind_node);
    if (!kind)
        return s_fail (p, node, "rule '%s' has no kind (each, count, sequence or streak)", id);
    const char *const *keys;
    if (strcmp (kind, "each") == 0)
        rule->kind = TROVE_KIND_EACH, keys = each_keys;
    else if (strcmp (kind, "count") == 0)
        rule->kind = TROVE_KIND_COUNT, keys = count_keys;
    else if (strcmp (kind, "sequence") == 0)
        rule->kind = TROVE_KIND_SEQUENCE, keys = seq_keys;
    else if (strcmp (kind, "streak") == 0)
        rule->kind = TROVE_KIND_STREAK, keys = streak_keys;
    else
        return s_fail (p, kind_node, "rule '%s': unknown kind '%s' (each, count, sequence or streak)", id,
                       kind);
    char what [120];
    snprintf (what, sizeof what, "rule '%s' (kind %s)", id, kind);
    if (s_only_keys (p, node, keys, what))
        return -1;
    yaml_node_t *coins = s_get (p, node, "coins");
    if (!coins)
        return s_fail (p, node, "rule '%s' has no coins", id);
    if (s_int (p, coins, "coins", 1, 1000000000, &rule->coins))
        return -1;
    yaml_node_t *n;
    if (rule->kind != TROVE_KIND_SEQUENCE) {
        yaml_node_t *match = s_get (p, node, "match");
        if (!match)
            return s_fail (p, node, "rule '%s' has no match", id);
        if (s_parse_match (p, match, &rule->match, "match"))
            return -1;
    }
    if ((n = s_get (p, node, "repeat")) && s_bool (p, n, "repeat", &rule->repeat))
        return -1;
    int64_t v;
    switch (rule->kind) {
        case TROVE_KIND_EACH:
            if ((n = s_get (p, node, "cap"))) {
                static const char *const cap_keys [] = {"max", "per", NULL};
                if (s_only_keys (p, n, cap_keys, "cap"))
                    return -1;
                if (!s_get (p, n, "max"))
                    return s_fail (p, n, "cap needs max");
                if (s_int (p, s_get (p, n, "max"), "cap.max", 1, 1000000, &v))
                    return -1;
                rule->cap_max = (uint32_t) v;
                const char *per = s_scalar (s_get (p, n, "per"));
                static const char *const pers [] = {"day", "week", "month", "hunt"};
                for (int k = 0; per && k < 4; k++)
                    if (strcmp (per, pers [k]) == 0)
                        rule->cap_per = (trove_per_t) (TROVE_PER_DAY + k);
                if (!rule->cap_per)
                    return s_fail (p, n, "cap.per must be day, week, month or hunt");
            }
            if ((n = s_get (p, node, "cooldown"))
                && s_duration (p, n, "cooldown", 1, MAX_WINDOW_MS, &rule->cooldown_ms))
                return -1;
            break;
        case TROVE_KIND_COUNT:
            if (!s_get (p, node, "count"))
                return s_fail (p, node, "rule '%s' (kind count) needs count", id);
            if (s_int (p, s_get (p, node, "count"), "count", 1, MAX_COUNT, &v))
                return -1;
            rule->count = (uint32_t) v;
            if ((n = s_get (p, node, "distinct"))) {
                if (!s_scalar (n) || !*s_scalar (n))
                    return s_fail (p, n, "distinct must name an attribute");
                if (!(rule->distinct = strdup (s_scalar (n))))
                    return s_fail (p, n, "out of memory");
            }
            break;
        case TROVE_KIND_SEQUENCE: {
            yaml_node_t *steps = s_get (p, node, "steps");
            if (!steps || steps->type != YAML_SEQUENCE_NODE)
                return s_fail (p, steps ? steps : node, "rule '%s': steps must be a list of matches", id);
            size_t count = steps->data.sequence.items.top - steps->data.sequence.items.start;
            if (count < 2 || count > MAX_STEPS)
                return s_fail (p, steps, "rule '%s': a sequence has 2 to %d steps", id, MAX_STEPS);
            rule->steps = calloc (count, sizeof *rule->steps);
            if (!rule->steps)
                return s_fail (p, steps, "out of memory");
            for (size_t i = 0; i < count; i++) {
                yaml_node_t *item = yaml_document_get_node (p->doc, steps->data.sequence.items.start [i]);
                rule->nsteps++;
                if (s_parse_match (p, item, &rule->steps [i], "a sequence step"))
                    return -1;
            }
            if (!(n = s_get (p, node, "within")))
                return s_fail (p, node, "rule '%s': a sequence needs within (e.g. 24h)", id);
            if (s_duration (p, n, "within", 1, MAX_WINDOW_MS, &rule->within_ms))
                return -1;
            break;
        }
        case TROVE_KIND_STREAK:
            if (!s_get (p, node, "days"))
                return s_fail (p, node, "rule '%s' (kind streak) needs days", id);
            if (s_int (p, s_get (p, node, "days"), "days", 2, MAX_DAYS, &v))
                return -1;
            rule->days = (uint32_t) v;
            break;
    }
    return 0;
}

static void
s_match_clear (trove_match_t *m)
{
    for (size_t i = 0; i < m->ntypes; i++)
        free (m->types [i]);
    free (m->types);
    for (size_t i = 0; i < m->nsources; i++)
        free (m->sources [i]);
    free (m->sources);
    for (size_t a = 0; a < m->nattrs; a++) {
        free (m->attrs [a].key);
        for (size_t i = 0; i < m->attrs [a].nvalues; i++)
            free (m->attrs [a].values [i]);
        free (m->attrs [a].values);
    }
    free (m->attrs);
    for (size_t w = 0; w < m->nwheres; w++)
        free (m->wheres [w].attr);
    free (m->wheres);
}

static void
s_hunt_clear (trove_hunt_t *h)
{
    for (size_t r = 0; r < h->nrules; r++) {
        trove_rule_t *rule = &h->rules [r];
        free (rule->id);
        free (rule->distinct);
        s_match_clear (&rule->match);
        for (size_t i = 0; i < rule->nsteps; i++)
            s_match_clear (&rule->steps [i]);
        free (rule->steps);
    }
    free (h->rules);
    free (h->hunt);
    trove_tz_destroy (&h->tz);
    memset (h, 0, sizeof *h);
}

static int
s_parse_hunt (s_parse_t *p, yaml_node_t *root, trove_hunt_t *h)
{
    static const char *const keys [] = {"hunt", "version",  "effective", "timezone", "start",
                                        "end",  "lateness", "rules",     NULL};
    if (!root)
        return s_fail (p, NULL, "empty file");
    if (s_only_keys (p, root, keys, "a hunt file"))
        return -1;
    const char *hunt = s_scalar (s_get (p, root, "hunt"));
    if (!s_valid_id (hunt))
        return s_fail (p, root, "'hunt' must be 1-64 characters of A-Z a-z 0-9 . _ -");
    if (!(h->hunt = strdup (hunt)))
        return s_fail (p, root, "out of memory");
    int64_t v;
    yaml_node_t *n = s_get (p, root, "version");
    if (!n)
        return s_fail (p, root, "'version' is missing");
    if (s_int (p, n, "version", 1, UINT32_MAX, &v))
        return -1;
    h->version = (uint32_t) v;
    h->effective = INT64_MIN;
    h->start = INT64_MIN;
    h->end = INT64_MAX;
    h->lateness_ms = 10 * 60000;
    if ((n = s_get (p, root, "effective")) && s_time (p, n, "effective", &h->effective))
        return -1;
    if ((n = s_get (p, root, "start")) && s_time (p, n, "start", &h->start))
        return -1;
    if ((n = s_get (p, root, "end")) && s_time (p, n, "end", &h->end))
        return -1;
    if (h->end <= h->start)
        return s_fail (p, root, "'end' must be after 'start'");
    if ((n = s_get (p, root, "lateness"))
        && s_duration (p, n, "lateness", 0, 7 * 86400000LL, &h->lateness_ms))
        return -1;
    n = s_get (p, root, "timezone");
    const char *zone = n ? s_scalar (n) : "UTC";
    char *tz_err = NULL;
    if (!zone || !(h->tz = trove_tz_new (zone, &tz_err))) {
        s_fail (p, n, "timezone: %s", tz_err ? tz_err : "must be an IANA zone name like Europe/Paris");
        free (tz_err);
        return -1;
    }
    yaml_node_t *rules = s_get (p, root, "rules");
    if (!rules || rules->type != YAML_SEQUENCE_NODE)
        return s_fail (p, rules ? rules : root, "'rules' must be a list of rules");
    size_t count = rules->data.sequence.items.top - rules->data.sequence.items.start;
    h->rules = calloc (count ? count : 1, sizeof *h->rules);
    if (!h->rules)
        return s_fail (p, rules, "out of memory");
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node (p->doc, rules->data.sequence.items.start [i]);
        if (s_parse_rule (p, item, &h->rules [h->nrules++]))
            return -1;
        for (size_t k = 0; k + 1 < h->nrules; k++)
            if (strcmp (h->rules [k].id, h->rules [h->nrules - 1].id) == 0)
                return s_fail (p, item, "rule id '%s' is used twice", h->rules [k].id);
        h->stateful |= trove_rule_stateful (&h->rules [h->nrules - 1]);
    }
    return 0;
}

//  Parse one hunt file's text and add it. Returns 0 or -1 with *err_p.
static int
s_load_text (trove_rules_t *self, const char *path, const char *text, size_t size, char **err_p)
{
    s_parse_t p = {.path = path};
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize (&parser);
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, size);
    if (!yaml_parser_load (&parser, &doc)) {
        char buf [600];
        snprintf (buf, sizeof buf, "%s:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
                  parser.problem ? parser.problem : "unknown");
        *err_p = strdup (buf);
        yaml_parser_delete (&parser);
        return -1;
    }
    p.doc = &doc;
    trove_hunt_t hunt = {0};
    int rc = s_parse_hunt (&p, yaml_document_get_root_node (&doc), &hunt);
    if (rc == 0) {
        for (size_t i = 0; i < self->nhunts; i++)
            if (strcmp (self->hunts [i].hunt, hunt.hunt) == 0 && self->hunts [i].version == hunt.version)
                rc = s_fail (&p, NULL, "hunt '%s' version %u is defined twice", hunt.hunt, hunt.version);
    }
    if (rc == 0) {
        trove_hunt_t *bigger = realloc (self->hunts, (self->nhunts + 1) * sizeof *bigger);
        if (!bigger)
            rc = s_fail (&p, NULL, "out of memory");
        else {
            self->hunts = bigger;
            self->hunts [self->nhunts++] = hunt;
        }
    }
    if (rc) {
        s_hunt_clear (&hunt);
        *err_p = p.err;
    }
    yaml_document_delete (&doc);
    yaml_parser_delete (&parser);
    return rc;
}

static int
s_load_file (trove_rules_t *self, const char *path, char **err_p)
{
    size_t size;
    char *text = trove_read_file (path, &size);
    if (!text) {
        char buf [600];
        snprintf (buf, sizeof buf, "%s: cannot read: %s", path, strerror (errno));
        *err_p = strdup (buf);
        return -1;
    }
    int rc = s_load_text (self, path, text, size, err_p);
    free (text);
    return rc;
}

static int
s_hunt_order (const void *a, const void *b)
{
    const trove_hunt_t *x = a, *y = b;
    int c = strcmp (x->hunt, y->hunt);
    if (c)
        return c;
    return x->version < y->version ? 1 : x->version > y->version ? -1 : 0;
}

static int
s_name_order (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  Sort the versions and index the hunts. Returns 0 or -1 (out of memory).
static int
s_finish (trove_rules_t *self)
{
    qsort (self->hunts, self->nhunts, sizeof *self->hunts, s_hunt_order);
    free (self->groups);
    self->groups = calloc (self->nhunts ? self->nhunts : 1, sizeof *self->groups);
    if (!self->groups)
        return -1;
    self->ngroups = 0;
    for (size_t i = 0; i < self->nhunts; i++)
        if (i == 0 || strcmp (self->hunts [i].hunt, self->hunts [i - 1].hunt))
            self->groups [self->ngroups++] = i;
    return 0;
}

static trove_rules_t *
s_done (trove_rules_t *self, char *err, char **err_p)
{
    if (self && !err && s_finish (self))
        err = strdup ("out of memory");
    if (err || !self) {
        trove_rules_destroy (&self);
        if (!err)
            err = strdup ("out of memory");
    }
    if (err_p)
        *err_p = err;
    else
        free (err);
    return self;
}

trove_rules_t *
trove_rules_load_file (const char *path, char **err_p)
{
    trove_rules_t *self = calloc (1, sizeof *self);
    char *err = NULL;
    if (self)
        s_load_file (self, path, &err);
    return s_done (self, err, err_p);
}

trove_rules_t *
trove_rules_load_text (const char *name, const char *text, size_t size, char **err_p)
{
    trove_rules_t *self = calloc (1, sizeof *self);
    char *err = NULL;
    if (self)
        s_load_text (self, name, text, size, &err);
    return s_done (self, err, err_p);
}

//  Load every hunt file of dir; skip is a file name (not path) to leave out.
static int
s_load_dir (trove_rules_t *self, const char *dir, const char *skip, char **err_p)
{
    char *err = NULL;
    char **names = NULL;
    size_t nnames = 0;
    DIR *d = opendir (dir);
    if (!d) {
        char buf [600];
        snprintf (buf, sizeof buf, "cannot open rules directory %s: %s", dir, strerror (errno));
        err = strdup (buf);
        goto done;
    }
    struct dirent *entry;
    while ((entry = readdir (d))) {
        size_t n = strlen (entry->d_name);
        bool yaml = (n > 5 && strcmp (entry->d_name + n - 5, ".yaml") == 0)
                 || (n > 4 && strcmp (entry->d_name + n - 4, ".yml") == 0);
        if (!yaml || entry->d_name [0] == '.' || (skip && strcmp (entry->d_name, skip) == 0))
            continue;
        char **bigger = realloc (names, (nnames + 1) * sizeof *names);
        if (!bigger)
            goto oom;
        names = bigger;
        if (asprintf (&names [nnames], "%s/%s", dir, entry->d_name) < 0)
            goto oom;
        nnames++;
    }
    //  Sorted so that errors and load order do not depend on readdir order.
    qsort (names, nnames, sizeof *names, s_name_order);
    for (size_t i = 0; i < nnames && !err; i++)
        s_load_file (self, names [i], &err);
    goto done;
oom:
    err = strdup ("out of memory");
done:
    if (d)
        closedir (d);
    for (size_t i = 0; i < nnames; i++)
        free (names [i]);
    free (names);
    *err_p = err;
    return err ? -1 : 0;
}

trove_rules_t *
trove_rules_load_dir (const char *dir, char **err_p)
{
    trove_rules_t *self = calloc (1, sizeof *self);
    char *err = NULL;
    if (self)
        s_load_dir (self, dir, NULL, &err);
    return s_done (self, err, err_p);
}

trove_rules_t *
trove_rules_load_dir_with (const char *dir, const char *name, const char *text, size_t size, char **err_p)
{
    trove_rules_t *self = calloc (1, sizeof *self);
    char *err = NULL;
    //  A file of the same name is replaced by the new text.
    if (self && s_load_dir (self, dir, name, &err) == 0)
        s_load_text (self, name, text, size, &err);
    return s_done (self, err, err_p);
}

void
trove_rules_destroy (trove_rules_t **self_p)
{
    assert (self_p);
    trove_rules_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->nhunts; i++)
            s_hunt_clear (&self->hunts [i]);
        free (self->hunts);
        free (self->groups);
        free (self);
        *self_p = NULL;
    }
}

size_t
trove_rules_count (const trove_rules_t *self)
{
    return self->nhunts;
}

const trove_hunt_t *
trove_rules_at (const trove_rules_t *self, size_t i)
{
    assert (i < self->nhunts);
    return &self->hunts [i];
}

size_t
trove_rules_hunts (const trove_rules_t *self)
{
    return self->ngroups;
}

const trove_hunt_t *
trove_rules_latest (const trove_rules_t *self, size_t h)
{
    assert (h < self->ngroups);
    return &self->hunts [self->groups [h]];
}

size_t
trove_rules_versions (const trove_rules_t *self, size_t h)
{
    assert (h < self->ngroups);
    size_t end = h + 1 < self->ngroups ? self->groups [h + 1] : self->nhunts;
    return end - self->groups [h];
}

const trove_hunt_t *
trove_rules_effective (const trove_rules_t *self, size_t h, int64_t ts)
{
    assert (h < self->ngroups);
    size_t end = h + 1 < self->ngroups ? self->groups [h + 1] : self->nhunts;
    //  Versions descending: the first with effective <= ts applies.
    for (size_t k = self->groups [h]; k < end; k++)
        if (self->hunts [k].effective <= ts) {
            const trove_hunt_t *v = &self->hunts [k];
            return ts >= v->start && ts < v->end ? v : NULL;
        }
    return NULL;
}

//  --------------------------------------------------------------------------
//  Matching

bool
trove_rule_stateful (const trove_rule_t *rule)
{
    return rule->kind != TROVE_KIND_EACH || rule->cap_max || rule->cooldown_ms;
}

static bool
s_any_of (char *const *values, size_t n, const char *text)
{
    //  The first byte before strcmp: most values tried differ there (event
    //  types against every rule of every hunt), and the call costs more.
    for (size_t i = 0; i < n; i++)
        if (values [i][0] == text [0] && strcmp (values [i], text) == 0)
            return true;
    return false;
}

static const Trove__Attr *
s_attr (const Trove__Event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp (ev->attrs [i]->key, key) == 0)
            return ev->attrs [i];
    return NULL;
}

//  Strings as is, booleans as true/false, numbers in shortest form ("3", "2.5").
bool
trove_attr_text (const Trove__Event *ev, const char *key, char *buf, size_t size)
{
    const Trove__Attr *a = s_attr (ev, key);
    if (!a)
        return false;
    if (a->value_case == TROVE__ATTR__VALUE_S)
        snprintf (buf, size, "%s", a->s);
    else if (a->value_case == TROVE__ATTR__VALUE_B)
        snprintf (buf, size, "%s", a->b ? "true" : "false");
    else
        snprintf (buf, size, "%.17g", a->n);
    return true;
}

bool
trove_match (const trove_match_t *m, const Trove__Event *ev)
{
    if (m->ntypes && !s_any_of (m->types, m->ntypes, ev->type))
        return false;
    if (m->nsources && !s_any_of (m->sources, m->nsources, ev->source))
        return false;
    for (size_t i = 0; i < m->nattrs; i++) {
        const Trove__Attr *a = s_attr (ev, m->attrs [i].key);
        if (!a)
            return false;
        //  A string is its own text (no copy) unless the copy below would
        //  cut it.
        char text [320];
        const char *value = a->s;
        if (a->value_case != TROVE__ATTR__VALUE_S || strlen (a->s) >= sizeof text) {
            trove_attr_text (ev, m->attrs [i].key, text, sizeof text);
            value = text;
        }
        if (!s_any_of (m->attrs [i].values, m->attrs [i].nvalues, value))
            return false;
    }
    for (size_t i = 0; i < m->nwheres; i++) {
        const trove_where_t *w = &m->wheres [i];
        const Trove__Attr *a = s_attr (ev, w->attr);
        if (!a || a->value_case != TROVE__ATTR__VALUE_N)
            return false;
        double x = a->n;
        bool ok = w->op == TROVE_OP_EQ ? x == w->value
                : w->op == TROVE_OP_NE ? x != w->value
                : w->op == TROVE_OP_LT ? x < w->value
                : w->op == TROVE_OP_LE ? x <= w->value
                : w->op == TROVE_OP_GT ? x > w->value
                                       : x >= w->value;
        if (!ok)
            return false;
    }
    return true;
}
