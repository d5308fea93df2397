/*  trove_rules - hunt files and scoring. */
#include "trove_rules.h"
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

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } s_op_t;

typedef struct {
    char *attr;    //  attribute name
    s_op_t op;     //  comparison
    double value;  //  right-hand side
} s_where_t;

typedef struct {
    char *key;      //  attribute name
    char **values;  //  any of these (string form)
    size_t nvalues;
} s_attr_match_t;

typedef struct {
    char *id;      //  rule id, unique within the hunt
    char **types;  //  match.type: any of (none = any type)
    size_t ntypes;
    char **sources;  //  match.source: any of (none = any source)
    size_t nsources;
    s_attr_match_t *attrs;  //  match.attrs: all must hold
    size_t nattrs;
    s_where_t *wheres;  //  match.where: all must hold
    size_t nwheres;
    int64_t coins;  //  value of each award
} s_rule_t;

typedef struct {
    char *hunt;          //  hunt id
    uint32_t version;    //  file version
    int64_t effective;   //  ms; applies to ts >= effective
    int64_t start, end;  //  window in ms (INT64_MIN/MAX when absent)
    s_rule_t *rules;
    size_t nrules;
} s_hunt_t;

struct _trove_rules_t {
    s_hunt_t *hunts;  //  sorted by hunt id, then version descending
    size_t nhunts;
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
s_parse_match (s_parse_t *p, yaml_node_t *node, s_rule_t *rule)
{
    static const char *const keys [] = {"type", "source", "attrs", "where", NULL};
    if (s_only_keys (p, node, keys, "match"))
        return -1;
    yaml_node_t *n;
    if ((n = s_get (p, node, "type")) && s_strings (p, n, "match.type", &rule->types, &rule->ntypes))
        return -1;
    if ((n = s_get (p, node, "source")) && s_strings (p, n, "match.source", &rule->sources, &rule->nsources))
        return -1;
    if ((n = s_get (p, node, "attrs"))) {
        if (n->type != YAML_MAPPING_NODE)
            return s_fail (p, n, "match.attrs must be a mapping of attribute: value(s)");
        size_t count = n->data.mapping.pairs.top - n->data.mapping.pairs.start;
        rule->attrs = calloc (count ? count : 1, sizeof *rule->attrs);
        if (!rule->attrs)
            return s_fail (p, n, "out of memory");
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
            s_attr_match_t *am = &rule->attrs [rule->nattrs++];
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
        rule->wheres = calloc (count ? count : 1, sizeof *rule->wheres);
        if (!rule->wheres)
            return s_fail (p, n, "out of memory");
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *item = yaml_document_get_node (p->doc, n->data.sequence.items.start [i]);
            static const char *const wkeys [] = {"attr", "op", "value", NULL};
            if (s_only_keys (p, item, wkeys, "match.where item"))
                return -1;
            s_where_t *w = &rule->wheres [rule->nwheres++];
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
            w->op = (s_op_t) found;
            char *end;
            errno = 0;
            w->value = strtod (value, &end);
            if (*end || errno || end == value)
                return s_fail (p, item, "match.where value '%s' is not a number", value);
        }
    }
    return 0;
}

static int
s_parse_rule (s_parse_t *p, yaml_node_t *node, s_rule_t *rule)
{
    static const char *const keys [] = {"id", "kind", "match", "coins", NULL};
    const char *kind = s_scalar (s_get (p, node, "kind"));
    if (node->type == YAML_MAPPING_NODE && kind && strcmp (kind, "each"))
        return s_fail (p, s_get (p, node, "kind"),
                       "rule kind '%s' is not supported by this version of Trove (supported: each)", kind);
    if (s_only_keys (p, node, keys, "a rule"))
        return -1;
    const char *id = s_scalar (s_get (p, node, "id"));
    if (!s_valid_id (id))
        return s_fail (p, node, "rule id must be 1-64 characters of A-Z a-z 0-9 . _ -");
    if (!(rule->id = strdup (id)))
        return s_fail (p, node, "out of memory");
    if (!kind)
        return s_fail (p, node, "rule '%s' has no kind", id);
    yaml_node_t *match = s_get (p, node, "match");
    if (!match)
        return s_fail (p, node, "rule '%s' has no match", id);
    if (s_parse_match (p, match, rule))
        return -1;
    yaml_node_t *coins = s_get (p, node, "coins");
    if (!coins)
        return s_fail (p, node, "rule '%s' has no coins", id);
    return s_int (p, coins, "coins", 1, 1000000000, &rule->coins);
}

static void
s_hunt_clear (s_hunt_t *h)
{
    for (size_t r = 0; r < h->nrules; r++) {
        s_rule_t *rule = &h->rules [r];
        free (rule->id);
        for (size_t i = 0; i < rule->ntypes; i++)
            free (rule->types [i]);
        free (rule->types);
        for (size_t i = 0; i < rule->nsources; i++)
            free (rule->sources [i]);
        free (rule->sources);
        for (size_t a = 0; a < rule->nattrs; a++) {
            free (rule->attrs [a].key);
            for (size_t i = 0; i < rule->attrs [a].nvalues; i++)
                free (rule->attrs [a].values [i]);
            free (rule->attrs [a].values);
        }
        free (rule->attrs);
        for (size_t w = 0; w < rule->nwheres; w++)
            free (rule->wheres [w].attr);
        free (rule->wheres);
    }
    free (h->rules);
    free (h->hunt);
    memset (h, 0, sizeof *h);
}

static int
s_parse_hunt (s_parse_t *p, yaml_node_t *root, s_hunt_t *h)
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
    if ((n = s_get (p, root, "effective")) && s_time (p, n, "effective", &h->effective))
        return -1;
    if ((n = s_get (p, root, "start")) && s_time (p, n, "start", &h->start))
        return -1;
    if ((n = s_get (p, root, "end")) && s_time (p, n, "end", &h->end))
        return -1;
    if (h->end <= h->start)
        return s_fail (p, root, "'end' must be after 'start'");
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
    }
    return 0;
}

static int
s_load_file (trove_rules_t *self, const char *path, char **err_p)
{
    s_parse_t p = {.path = path};
    size_t size;
    char *text = trove_read_file (path, &size);
    if (!text) {
        char buf [600];
        snprintf (buf, sizeof buf, "%s: cannot read: %s", path, strerror (errno));
        *err_p = strdup (buf);
        return -1;
    }
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
        free (text);
        return -1;
    }
    p.doc = &doc;
    s_hunt_t hunt = {0};
    int rc = s_parse_hunt (&p, yaml_document_get_root_node (&doc), &hunt);
    if (rc == 0) {
        for (size_t i = 0; i < self->nhunts; i++)
            if (strcmp (self->hunts [i].hunt, hunt.hunt) == 0 && self->hunts [i].version == hunt.version)
                rc = s_fail (&p, NULL, "hunt '%s' version %u is defined twice", hunt.hunt, hunt.version);
    }
    if (rc == 0) {
        s_hunt_t *bigger = realloc (self->hunts, (self->nhunts + 1) * sizeof *bigger);
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
    free (text);
    return rc;
}

static int
s_hunt_order (const void *a, const void *b)
{
    const s_hunt_t *x = a, *y = b;
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

trove_rules_t *
trove_rules_load_file (const char *path, char **err_p)
{
    trove_rules_t *self = calloc (1, sizeof *self);
    char *err = NULL;
    if (!self || s_load_file (self, path, &err)) {
        trove_rules_destroy (&self);
        if (err_p)
            *err_p = err ? err : strdup ("out of memory");
        else
            free (err);
        return NULL;
    }
    return self;
}

trove_rules_t *
trove_rules_load_dir (const char *dir, char **err_p)
{
    char *err = NULL;
    char **names = NULL;
    size_t nnames = 0;
    trove_rules_t *self = calloc (1, sizeof *self);
    DIR *d = opendir (dir);
    if (!self || !d) {
        char buf [600];
        snprintf (buf, sizeof buf, "cannot open rules directory %s: %s", dir, strerror (errno));
        err = strdup (buf);
        goto fail;
    }
    struct dirent *entry;
    while ((entry = readdir (d))) {
        size_t n = strlen (entry->d_name);
        bool yaml = (n > 5 && strcmp (entry->d_name + n - 5, ".yaml") == 0)
                 || (n > 4 && strcmp (entry->d_name + n - 4, ".yml") == 0);
        if (!yaml || entry->d_name [0] == '.')
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
    for (size_t i = 0; i < nnames; i++)
        if (s_load_file (self, names [i], &err))
            goto fail;
    qsort (self->hunts, self->nhunts, sizeof *self->hunts, s_hunt_order);
    goto done;
oom:
    err = strdup ("out of memory");
fail:
    trove_rules_destroy (&self);
done:
    if (d)
        closedir (d);
    for (size_t i = 0; i < nnames; i++)
        free (names [i]);
    free (names);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return self;
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
        free (self);
        *self_p = NULL;
    }
}

size_t
trove_rules_count (const trove_rules_t *self)
{
    return self->nhunts;
}

//  --------------------------------------------------------------------------
//  Scoring

static bool
s_any_of (char *const *values, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (values [i], text) == 0)
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

//  Attribute value as the text a hunt file would write: strings as is,
//  booleans as true/false, numbers in shortest form ("3", "2.5").
static void
s_attr_text (const Trove__Attr *a, char *buf, size_t size)
{
    if (a->value_case == TROVE__ATTR__VALUE_S)
        snprintf (buf, size, "%s", a->s);
    else if (a->value_case == TROVE__ATTR__VALUE_B)
        snprintf (buf, size, "%s", a->b ? "true" : "false");
    else
        snprintf (buf, size, "%.17g", a->n);
}

static bool
s_matches (const s_rule_t *rule, const Trove__Event *ev)
{
    if (rule->ntypes && !s_any_of (rule->types, rule->ntypes, ev->type))
        return false;
    if (rule->nsources && !s_any_of (rule->sources, rule->nsources, ev->source))
        return false;
    for (size_t i = 0; i < rule->nattrs; i++) {
        const Trove__Attr *a = s_attr (ev, rule->attrs [i].key);
        char text [320];
        if (!a)
            return false;
        s_attr_text (a, text, sizeof text);
        if (!s_any_of (rule->attrs [i].values, rule->attrs [i].nvalues, text))
            return false;
    }
    for (size_t i = 0; i < rule->nwheres; i++) {
        const s_where_t *w = &rule->wheres [i];
        const Trove__Attr *a = s_attr (ev, w->attr);
        if (!a || a->value_case != TROVE__ATTR__VALUE_N)
            return false;
        double x = a->n;
        bool ok = w->op == OP_EQ ? x == w->value
                : w->op == OP_NE ? x != w->value
                : w->op == OP_LT ? x < w->value
                : w->op == OP_LE ? x <= w->value
                : w->op == OP_GT ? x > w->value
                                 : x >= w->value;
        if (!ok)
            return false;
    }
    return true;
}

int
trove_rules_score (const trove_rules_t *self, const Trove__Event *ev, trove_rules_emit_fn *emit, void *arg)
{
    //  Occurrence key of `each`: source NUL id.
    size_t slen = strlen (ev->source), ilen = strlen (ev->id);
    char occurrence [512];
    if (slen + 1 + ilen > sizeof occurrence)
        return -1;  //  programmer error: validation bounds these lengths
    memcpy (occurrence, ev->source, slen);
    occurrence [slen] = 0;
    memcpy (occurrence + slen + 1, ev->id, ilen);

    for (size_t i = 0; i < self->nhunts;) {
        //  Hunts are sorted by id, versions descending: the first version with
        //  effective <= ts is the one that applies.
        size_t next = i;
        while (next < self->nhunts && strcmp (self->hunts [next].hunt, self->hunts [i].hunt) == 0)
            next++;
        const s_hunt_t *h = NULL;
        for (size_t k = i; k < next && !h; k++)
            if (self->hunts [k].effective <= ev->ts_ms)
                h = &self->hunts [k];
        i = next;
        if (!h || ev->ts_ms < h->start || ev->ts_ms >= h->end)
            continue;
        for (size_t r = 0; r < h->nrules; r++) {
            const s_rule_t *rule = &h->rules [r];
            if (!s_matches (rule, ev))
                continue;
            trove_award_t award = {
                .hunt = h->hunt,
                .rule = rule->id,
                .version = h->version,
                .value = rule->coins,
                .occurrence = occurrence,
                .occurrence_len = slen + 1 + ilen,
            };
            if (emit (arg, &award))
                return -1;
        }
    }
    return 0;
}
