/*  trove_metrics - Prometheus registry and /metrics endpoint. */
#include "trove_metrics.h"
#include "trove_error.h"
#include "trove_http.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type_t;

static const char *s_type_names [] = {"counter", "gauge", "histogram"};

typedef struct _s_family_t s_family_t;

//  One child. Handles (trove_counter_t * and the others) point to it.
typedef struct _s_child_t s_child_t;
struct _s_child_t {
    _Atomic uint64_t value;       //  counter value, or gauge value as double bits
    _Atomic uint64_t sum;         //  histogram: sum of observations as double bits
    s_family_t *family;           //  the family it belongs to
    s_child_t *next;              //  next child in creation order
    char **values;                //  label values (family->nlabels of them)
    char *labels;                 //  rendered and escaped: a="x",b="y" ("" without labels)
    uint64_t hash;                //  of the label values
    _Atomic uint64_t buckets [];  //  histogram: per-bucket counts, not cumulative; +Inf last
};

struct _s_family_t {
    s_family_t *next;                              //  next family in registration order
    s_type_t type;                                 //  counter, gauge or histogram
    char *name;                                    //  metric name
    char *help;                                    //  help text as given (escaped on output)
    size_t nlabels;                                //  number of label names
    char *label_names [TROVE_METRICS_MAX_LABELS];  //  label names, in order
    double *bounds;                                //  histogram: upper bounds, +Inf excluded
    size_t nbounds;                                //  histogram: number of bounds
    s_child_t *head, *tail;                        //  children, in creation order
    size_t nchildren;                              //  number of children
    s_child_t **index;                             //  open-addressing hash of children by label values
    size_t index_size;  //  slots in index (a power of two), 0 before the first child
    bool warned;        //  the child limit was logged
};

struct _trove_metrics_t {
    pthread_mutex_t mutex;    //  guards the families and children lists (not the values)
    s_family_t *head, *tail;  //  families, in registration order
    trove_http_t *http;       //  the /metrics listener of trove_metrics_serve, NULL when none
};

//  The /metrics listener of trove_metrics_serve: connections in all, the
//  time a client may take or sit idle, the body read (only to answer 405).
#define S_HTTP_CONNECTIONS 16
#define S_HTTP_TIMEOUT_S 10
#define S_HTTP_MAX_BODY 4096


//  --------------------------------------------------------------------------
//  Values

static uint64_t
s_bits (double value)
{
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    return bits;
}

static double
s_double (uint64_t bits)
{
    double value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

static void
s_atomic_add_double (_Atomic uint64_t *target, double delta)
{
    uint64_t old = atomic_load_explicit (target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit (target, &old, s_bits (s_double (old) + delta),
                                                   memory_order_relaxed, memory_order_relaxed))
        ;
}

//  Shortest of %.15g..%.17g that reads back as the same double, or
//  +Inf / -Inf / NaN as the format spells them. out holds 32 bytes.
static void
s_format_double (double value, char *out)
{
    if (isnan (value)) {
        strcpy (out, "NaN");
        return;
    }
    if (isinf (value)) {
        strcpy (out, value > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf (out, 32, "%.*g", precision, value);
        if (strtod (out, NULL) == value)
            return;
    }
}

void
trove_counter_add (trove_counter_t *counter, uint64_t n)
{
    s_child_t *child = (s_child_t *) counter;
    if (child)
        atomic_fetch_add_explicit (&child->value, n, memory_order_relaxed);
}

void
trove_counter_inc (trove_counter_t *counter)
{
    trove_counter_add (counter, 1);
}

void
trove_gauge_set (trove_gauge_t *gauge, double value)
{
    s_child_t *child = (s_child_t *) gauge;
    if (child)
        atomic_store_explicit (&child->value, s_bits (value), memory_order_relaxed);
}

void
trove_gauge_add (trove_gauge_t *gauge, double delta)
{
    s_child_t *child = (s_child_t *) gauge;
    if (child)
        s_atomic_add_double (&child->value, delta);
}

void
trove_gauge_set_int (trove_gauge_t *gauge, int64_t value)
{
    trove_gauge_set (gauge, (double) value);
}

void
trove_gauge_add_int (trove_gauge_t *gauge, int64_t delta)
{
    trove_gauge_add (gauge, (double) delta);
}

void
trove_histogram_observe (trove_histogram_t *histogram, double value)
{
    s_child_t *child = (s_child_t *) histogram;
    if (!child || isnan (value))
        return;
    //  First bucket whose bound is >= value; nbounds (the +Inf bucket) if none.
    const double *bounds = child->family->bounds;
    size_t low = 0, high = child->family->nbounds;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (value <= bounds [mid])
            high = mid;
        else
            low = mid + 1;
    }
    atomic_fetch_add_explicit (&child->buckets [low], 1, memory_order_relaxed);
    s_atomic_add_double (&child->sum, value);
}

uint64_t
trove_counter_value (trove_counter_t *counter)
{
    s_child_t *child = (s_child_t *) counter;
    return child ? atomic_load_explicit (&child->value, memory_order_relaxed) : 0;
}

double
trove_gauge_value (trove_gauge_t *gauge)
{
    s_child_t *child = (s_child_t *) gauge;
    return child ? s_double (atomic_load_explicit (&child->value, memory_order_relaxed)) : 0;
}

uint64_t
trove_histogram_count (trove_histogram_t *histogram)
{
    s_child_t *child = (s_child_t *) histogram;
    uint64_t count = 0;
    for (size_t i = 0; child && i <= child->family->nbounds; i++)
        count += atomic_load_explicit (&child->buckets [i], memory_order_relaxed);
    return count;
}

double
trove_histogram_sum (trove_histogram_t *histogram)
{
    s_child_t *child = (s_child_t *) histogram;
    return child ? s_double (atomic_load_explicit (&child->sum, memory_order_relaxed)) : 0;
}


//  --------------------------------------------------------------------------
//  Growable text buffer; a failed allocation sticks and is reported at the end

typedef struct {
    char *data;   //  NUL-terminated text
    size_t len;   //  bytes used, NUL excluded
    size_t size;  //  bytes allocated
    bool failed;  //  an allocation failed
} s_buf_t;

static void
s_buf_append (s_buf_t *buf, const char *text, size_t len)
{
    if (buf->failed)
        return;
    if (buf->len + len + 1 > buf->size) {
        size_t size = buf->size ? buf->size : 4096;
        while (buf->len + len + 1 > size)
            size *= 2;
        char *data = realloc (buf->data, size);
        if (!data) {
            buf->failed = true;
            return;
        }
        buf->data = data;
        buf->size = size;
    }
    memcpy (buf->data + buf->len, text, len);
    buf->len += len;
    buf->data [buf->len] = 0;
}

static void
s_buf_puts (s_buf_t *buf, const char *text)
{
    s_buf_append (buf, text, strlen (text));
}

//  Escape \ and newline (help texts), and " too when quote is set (label values).
static void
s_buf_escaped (s_buf_t *buf, const char *text, bool quote)
{
    const char *run = text;
    for (const char *p = text; *p; p++) {
        const char *escape = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : *p == '"' && quote ? "\\\"" : NULL;
        if (escape) {
            s_buf_append (buf, run, (size_t) (p - run));
            s_buf_puts (buf, escape);
            run = p + 1;
        }
    }
    s_buf_puts (buf, run);
}


//  --------------------------------------------------------------------------
//  Validation

//  Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'.
//  Names starting with "__" are reserved for Prometheus itself.
static bool
s_name_valid (const char *name, bool colon)
{
    if (!name || !*name || strncmp (name, "__", 2) == 0)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':')
               || (p > name && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

//  Well-formed UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
//  Control characters are allowed (the format escapes newline; others pass).
static bool
s_utf8_valid (const char *text)
{
    const unsigned char *p = (const unsigned char *) text;
    while (*p) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        int more;
        uint32_t code, min;
        if ((c & 0xe0) == 0xc0) {
            more = 1, code = c & 0x1f, min = 0x80;
        }
        else if ((c & 0xf0) == 0xe0) {
            more = 2, code = c & 0x0f, min = 0x800;
        }
        else if ((c & 0xf8) == 0xf0) {
            more = 3, code = c & 0x07, min = 0x10000;
        }
        else
            return false;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;  //  also stops at the terminating NUL
            code = (code << 6) | (*p & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
    }
    return true;
}

//  Number of entries of a NULL-terminated array (NULL counts as empty),
//  or SIZE_MAX when there are more than limit.
static size_t
s_count (const char *const *array, size_t limit)
{
    size_t count = 0;
    while (array && array [count])
        if (++count > limit)
            return SIZE_MAX;
    return count;
}

static bool
s_labels_valid (const char *const *names, const char *const *values, size_t *count_p)
{
    size_t count = s_count (names, TROVE_METRICS_MAX_LABELS);
    if (count == SIZE_MAX || s_count (values, count) != count)
        return false;
    for (size_t i = 0; i < count; i++) {
        if (!s_name_valid (names [i], false) || !s_utf8_valid (values [i]))
            return false;
        if (strcmp (names [i], "le") == 0 || strcmp (names [i], "quantile") == 0)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp (names [i], names [j]) == 0)
                return false;
    }
    *count_p = count;
    return true;
}

//  Bounds strictly increasing, no NaN, no infinity except a last +Inf
//  (which is dropped from *nbounds_p since the +Inf bucket is implicit).
static bool
s_bounds_valid (const double *bounds, size_t *nbounds_p)
{
    size_t nbounds = *nbounds_p;
    if (nbounds && !bounds)
        return false;
    if (nbounds && isinf (bounds [nbounds - 1]) && bounds [nbounds - 1] > 0)
        nbounds--;
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite (bounds [i]) || (i > 0 && !(bounds [i] > bounds [i - 1])))
            return false;
    *nbounds_p = nbounds;
    return true;
}

static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t len = strlen (text), slen = strlen (suffix);
    return len >= slen && strcmp (text + len - slen, suffix) == 0;
}

//  True when family emits (or declares) a sample named name.
static bool
s_family_emits (s_family_t *family, const char *name)
{
    if (strcmp (family->name, name) == 0)
        return true;
    if (family->type != S_HISTOGRAM)
        return false;
    size_t len = strlen (family->name);
    return strncmp (family->name, name, len) == 0
        && (strcmp (name + len, "_bucket") == 0 || strcmp (name + len, "_sum") == 0
            || strcmp (name + len, "_count") == 0);
}

//  True when a new family (type, name) would emit a sample name some
//  existing family emits.
static bool
s_collides (trove_metrics_t *self, s_type_t type, const char *name)
{
    static const char *suffixes [] = {"", "_bucket", "_sum", "_count"};
    size_t nsuffixes = type == S_HISTOGRAM ? 4 : 1;
    size_t len = strlen (name);
    char *sample = malloc (len + 8);
    if (!sample)
        return true;
    bool collides = false;
    for (s_family_t *family = self->head; family && !collides; family = family->next)
        for (size_t i = 0; i < nsuffixes && !collides; i++) {
            memcpy (sample, name, len);
            strcpy (sample + len, suffixes [i]);
            collides = s_family_emits (family, sample);
        }
    free (sample);
    return collides;
}


//  --------------------------------------------------------------------------
//  Families and children (all under self->mutex)

static void
s_child_destroy (s_child_t **child_p)
{
    s_child_t *child = *child_p;
    if (!child)
        return;
    for (size_t i = 0; child->values && i < child->family->nlabels; i++)
        free (child->values [i]);
    free (child->values);
    free (child->labels);
    free (child);
    *child_p = NULL;
}

static void
s_family_destroy (s_family_t **family_p)
{
    s_family_t *family = *family_p;
    if (!family)
        return;
    while (family->head) {
        s_child_t *next = family->head->next;
        s_child_destroy (&family->head);
        family->head = next;
    }
    free (family->name);
    free (family->help);
    for (size_t i = 0; i < family->nlabels; i++)
        free (family->label_names [i]);
    free (family->bounds);
    free (family->index);
    free (family);
    *family_p = NULL;
}

static s_family_t *
s_family_new (s_type_t type, const char *name, const char *help, const char *const *label_names,
              size_t nlabels, const double *bounds, size_t nbounds)
{
    s_family_t *family = calloc (1, sizeof *family);
    if (!family)
        return NULL;
    family->type = type;
    family->name = strdup (name);
    family->help = strdup (help);
    if (!family->name || !family->help)
        goto fail;
    for (size_t i = 0; i < nlabels; i++) {
        family->label_names [i] = strdup (label_names [i]);
        if (!family->label_names [i])
            goto fail;
        family->nlabels++;
    }
    if (nbounds) {
        family->bounds = malloc (nbounds * sizeof *bounds);
        if (!family->bounds)
            goto fail;
        memcpy (family->bounds, bounds, nbounds * sizeof *bounds);
    }
    family->nbounds = nbounds;
    return family;
fail:
    s_family_destroy (&family);
    return NULL;
}

//  True when an existing family matches a new registration exactly.
static bool
s_family_matches (s_family_t *family, s_type_t type, const char *const *label_names, size_t nlabels,
                  const double *bounds, size_t nbounds)
{
    if (family->type != type || family->nlabels != nlabels || family->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp (family->label_names [i], label_names [i]) != 0)
            return false;
    for (size_t i = 0; i < nbounds; i++)
        if (family->bounds [i] != bounds [i])
            return false;
    return true;
}

//  FNV-1a over the values, each followed by 0xff (never in UTF-8).
static uint64_t
s_hash (const char *const *values, size_t count)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < count; i++) {
        for (const unsigned char *p = (const unsigned char *) values [i]; *p; p++)
            hash = (hash ^ *p) * 0x100000001b3ull;
        hash = (hash ^ 0xff) * 0x100000001b3ull;
    }
    return hash;
}

static s_child_t *
s_child_find (s_family_t *family, const char *const *values, uint64_t hash)
{
    if (!family->index_size)
        return NULL;
    size_t mask = family->index_size - 1;
    for (size_t slot = hash & mask; family->index [slot]; slot = (slot + 1) & mask) {
        s_child_t *child = family->index [slot];
        if (child->hash != hash)
            continue;
        size_t i = 0;
        while (i < family->nlabels && strcmp (child->values [i], values [i]) == 0)
            i++;
        if (i == family->nlabels)
            return child;
    }
    return NULL;
}

static void
s_index_put (s_child_t **index, size_t size, s_child_t *child)
{
    size_t slot = child->hash & (size - 1);
    while (index [slot])
        slot = (slot + 1) & (size - 1);
    index [slot] = child;
}

//  Keeps the index at most half full. Returns 0 or -1 on OOM.
static int
s_index_reserve (s_family_t *family)
{
    if ((family->nchildren + 1) * 2 <= family->index_size)
        return 0;
    size_t size = family->index_size ? family->index_size * 2 : 8;
    s_child_t **index = calloc (size, sizeof *index);
    if (!index)
        return -1;
    for (s_child_t *child = family->head; child; child = child->next)
        s_index_put (index, size, child);
    free (family->index);
    family->index = index;
    family->index_size = size;
    return 0;
}

static s_child_t *
s_child_new (s_family_t *family, const char *const *values, uint64_t hash)
{
    size_t nbuckets = family->type == S_HISTOGRAM ? family->nbounds + 1 : 0;
    s_buf_t labels = {0};
    s_child_t *child = calloc (1, sizeof *child + nbuckets * sizeof child->buckets [0]);
    if (!child)
        return NULL;
    child->family = family;
    child->hash = hash;
    child->values = calloc (family->nlabels ? family->nlabels : 1, sizeof *child->values);
    if (!child->values)
        goto fail;
    s_buf_puts (&labels, "");
    for (size_t i = 0; i < family->nlabels; i++) {
        child->values [i] = strdup (values [i]);
        if (!child->values [i])
            goto fail;
        if (i)
            s_buf_puts (&labels, ",");
        s_buf_puts (&labels, family->label_names [i]);
        s_buf_puts (&labels, "=\"");
        s_buf_escaped (&labels, values [i], true);
        s_buf_puts (&labels, "\"");
    }
    if (labels.failed)
        goto fail;
    child->labels = labels.data;
    atomic_init (&child->value, family->type == S_GAUGE ? s_bits (0.0) : 0);
    atomic_init (&child->sum, s_bits (0.0));
    for (size_t i = 0; i < nbuckets; i++)
        atomic_init (&child->buckets [i], 0);
    return child;
fail:
    free (labels.data);
    s_child_destroy (&child);
    return NULL;
}

static s_child_t *
s_register (trove_metrics_t *self, s_type_t type, const char *name, const char *help,
            const char *const *label_names, const char *const *label_values, const double *bounds,
            size_t nbounds)
{
    assert (self);
    assert (help);
    size_t nlabels;
    if (!s_name_valid (name, true) || (type == S_COUNTER && !s_ends_with (name, "_total"))
        || !s_labels_valid (label_names, label_values, &nlabels)
        || (type == S_HISTOGRAM && !s_bounds_valid (bounds, &nbounds)))
        return NULL;
    uint64_t hash = s_hash (label_values, nlabels);
    s_child_t *child = NULL;
    pthread_mutex_lock (&self->mutex);
    s_family_t *family = self->head;
    while (family && strcmp (family->name, name) != 0)
        family = family->next;
    if (family) {
        if (!s_family_matches (family, type, label_names, nlabels, bounds, nbounds))
            goto done;
    }
    else {
        if (s_collides (self, type, name))
            goto done;
        family = s_family_new (type, name, help, label_names, nlabels, bounds, nbounds);
        if (!family)
            goto done;
        if (self->tail)
            self->tail->next = family;
        else
            self->head = family;
        self->tail = family;
    }
    child = s_child_find (family, label_values, hash);
    if (child)
        goto done;
    if (family->nchildren >= TROVE_METRICS_MAX_CHILDREN) {
        if (!family->warned)
            trove_log ('W', "metrics: %s has %d label sets already; dropping samples of new ones", name,
                       TROVE_METRICS_MAX_CHILDREN);
        family->warned = true;
        goto done;
    }
    if (s_index_reserve (family))
        goto done;
    child = s_child_new (family, label_values, hash);
    if (!child)
        goto done;
    s_index_put (family->index, family->index_size, child);
    if (family->tail)
        family->tail->next = child;
    else
        family->head = child;
    family->tail = child;
    family->nchildren++;
done:
    pthread_mutex_unlock (&self->mutex);
    return child;
}

trove_counter_t *
trove_metrics_counter (trove_metrics_t *self, const char *name, const char *help,
                       const char *const *label_names, const char *const *label_values)
{
    return (trove_counter_t *) s_register (self, S_COUNTER, name, help, label_names, label_values, NULL, 0);
}

trove_gauge_t *
trove_metrics_gauge (trove_metrics_t *self, const char *name, const char *help,
                     const char *const *label_names, const char *const *label_values)
{
    return (trove_gauge_t *) s_register (self, S_GAUGE, name, help, label_names, label_values, NULL, 0);
}

trove_histogram_t *
trove_metrics_histogram (trove_metrics_t *self, const char *name, const char *help,
                         const char *const *label_names, const char *const *label_values,
                         const double *bounds, size_t nbounds)
{
    return (trove_histogram_t *) s_register (self, S_HISTOGRAM, name, help, label_names, label_values, bounds,
                                             nbounds);
}


//  --------------------------------------------------------------------------
//  Registry

trove_metrics_t *
trove_metrics_new (void)
{
    trove_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (pthread_mutex_init (&self->mutex, NULL)) {
        free (self);
        return NULL;
    }
    return self;
}

void
trove_metrics_destroy (trove_metrics_t **self_p)
{
    assert (self_p);
    trove_metrics_t *self = *self_p;
    if (!self)
        return;
    //  First: no request may be rendering while the families go.
    trove_http_destroy (&self->http);
    while (self->head) {
        s_family_t *next = self->head->next;
        s_family_destroy (&self->head);
        self->head = next;
    }
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

//  Start time of this process in seconds since the epoch: boot time
//  (/proc/stat btime) plus the process start in ticks since boot
//  (/proc/self/stat, field 22). -1 when either is unreadable.
static double
s_process_start_seconds (void)
{
    double result = -1;
    char *stat = trove_read_file ("/proc/self/stat", NULL);
    char *sys = trove_read_file ("/proc/stat", NULL);
    long ticks = sysconf (_SC_CLK_TCK);
    if (!stat || !sys || ticks <= 0)
        goto cleanup;
    //  The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    char *p = strrchr (stat, ')');
    if (!p)
        goto cleanup;
    p++;
    //  p is at the space before field 3; move it to the one before field 22.
    for (int field = 3; field < 22 && p; field++)
        p = strchr (p + 1, ' ');
    char *btime = strstr (sys, "\nbtime ");
    if (!p || !btime)
        goto cleanup;
    unsigned long long start = strtoull (p + 1, NULL, 10);
    unsigned long long boot = strtoull (btime + 7, NULL, 10);
    if (boot > 0)
        result = (double) boot + (double) start / (double) ticks;
cleanup:
    free (stat);
    free (sys);
    return result;
}

int
trove_metrics_process_start (trove_metrics_t *self)
{
    trove_gauge_t *gauge =
        trove_metrics_gauge (self, "process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", NULL, NULL);
    if (!gauge)
        return -1;
    double start = s_process_start_seconds ();
    trove_gauge_set (gauge, start > 0 ? start : (double) trove_now_ms () / 1000.0);
    return 0;
}

static void
s_render_sample (s_buf_t *buf, const char *name, const char *suffix, const char *labels, const char *le,
                 const char *value)
{
    s_buf_puts (buf, name);
    s_buf_puts (buf, suffix);
    if (*labels || le) {
        s_buf_puts (buf, "{");
        s_buf_puts (buf, labels);
        if (le) {
            s_buf_puts (buf, *labels ? ",le=\"" : "le=\"");
            s_buf_puts (buf, le);
            s_buf_puts (buf, "\"");
        }
        s_buf_puts (buf, "}");
    }
    s_buf_puts (buf, " ");
    s_buf_puts (buf, value);
    s_buf_puts (buf, "\n");
}

static void
s_render_family (s_buf_t *buf, s_family_t *family)
{
    s_buf_puts (buf, "# HELP ");
    s_buf_puts (buf, family->name);
    if (*family->help) {
        s_buf_puts (buf, " ");
        s_buf_escaped (buf, family->help, false);
    }
    s_buf_puts (buf, "\n# TYPE ");
    s_buf_puts (buf, family->name);
    s_buf_puts (buf, " ");
    s_buf_puts (buf, s_type_names [family->type]);
    s_buf_puts (buf, "\n");
    char value [32], le [32];
    for (s_child_t *child = family->head; child; child = child->next) {
        switch (family->type) {
            case S_COUNTER:
                snprintf (value, sizeof value, "%" PRIu64,
                          atomic_load_explicit (&child->value, memory_order_relaxed));
                s_render_sample (buf, family->name, "", child->labels, NULL, value);
                break;
            case S_GAUGE:
                s_format_double (s_double (atomic_load_explicit (&child->value, memory_order_relaxed)),
                                 value);
                s_render_sample (buf, family->name, "", child->labels, NULL, value);
                break;
            case S_HISTOGRAM: {
                //  _count is the +Inf bucket, whatever runs concurrently.
                uint64_t cumulative = 0;
                for (size_t i = 0; i <= family->nbounds; i++) {
                    cumulative += atomic_load_explicit (&child->buckets [i], memory_order_relaxed);
                    if (i < family->nbounds)
                        s_format_double (family->bounds [i], le);
                    else
                        strcpy (le, "+Inf");
                    snprintf (value, sizeof value, "%" PRIu64, cumulative);
                    s_render_sample (buf, family->name, "_bucket", child->labels, le, value);
                }
                s_format_double (s_double (atomic_load_explicit (&child->sum, memory_order_relaxed)), value);
                s_render_sample (buf, family->name, "_sum", child->labels, NULL, value);
                snprintf (value, sizeof value, "%" PRIu64, cumulative);
                s_render_sample (buf, family->name, "_count", child->labels, NULL, value);
                break;
            }
        }
    }
}

char *
trove_metrics_render (trove_metrics_t *self)
{
    assert (self);
    s_buf_t buf = {0};
    s_buf_puts (&buf, "");
    pthread_mutex_lock (&self->mutex);
    for (s_family_t *family = self->head; family; family = family->next)
        s_render_family (&buf, family);
    pthread_mutex_unlock (&self->mutex);
    if (buf.failed) {
        free (buf.data);
        return NULL;
    }
    return buf.data;
}


//  --------------------------------------------------------------------------
//  HTTP: the route, on trove_http's server (its own listener or the
//  process's API listener).

static void
s_serve (void *arg, const trove_http_request_t *req, trove_http_response_t *resp)
{
    (void) req;
    char *body = trove_metrics_render (arg);
    if (!body) {
        trove_http_reply_error (resp, 500, trove_strerror (TROVE_E_INTERNAL), "out of memory");
        return;
    }
    trove_http_reply (resp, 200, body);
    resp->content_type = "text/plain; version=0.0.4";
}

int
trove_metrics_route (trove_metrics_t *self, trove_http_t *http)
{
    assert (self);
    assert (http);
    //  GET first: a 405 lists `Allow: GET, HEAD` in this order.
    if (trove_http_route_open (http, "GET", "/metrics", s_serve, self)
        || trove_http_route_open (http, "HEAD", "/metrics", s_serve, self))
        return -1;
    return 0;
}

int
trove_metrics_serve (trove_metrics_t *self, const char *address, char **err)
{
    assert (self);
    assert (address);
    char *message = NULL;
    if (self->http) {
        message = trove_strdupf ("metrics: already serving on port %u", trove_http_port (self->http));
        goto fail;
    }
    //  A scrape is a bodiless GET; a body is read only to answer 405.
    trove_http_limits_t limits = {.max_connections = S_HTTP_CONNECTIONS,
                                  .max_per_client = 0,
                                  .header_timeout_s = S_HTTP_TIMEOUT_S,
                                  .body_timeout_s = S_HTTP_TIMEOUT_S,
                                  .idle_timeout_s = S_HTTP_TIMEOUT_S};
    self->http = trove_http_new (S_HTTP_MAX_BODY);
    if (!self->http || trove_http_set_limits (self->http, &limits) || trove_metrics_route (self, self->http))
        goto fail;
    if (trove_http_start (self->http, address, 1, &message))
        goto fail;
    return 0;
fail:
    if (self->http && !trove_http_port (self->http))
        trove_http_destroy (&self->http);
    if (err)
        *err = message;
    else
        free (message);
    return -1;
}

uint16_t
trove_metrics_port (trove_metrics_t *self)
{
    assert (self);
    return self->http ? trove_http_port (self->http) : 0;
}
