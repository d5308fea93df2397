/*  trovectl_prom - Prometheus text format samples and histogram quantiles.
    See trovectl_prom.h. */
#include "trovectl_prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
trovectl_prom_destroy (trovectl_prom_t **self_p)
{
    trovectl_prom_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->count; i++)
            free (self->samples [i].key);  //  one block per sample
        free (self->samples);
        free (self);
        *self_p = NULL;
    }
}

static bool
s_name_char (char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'
        || (!first && c >= '0' && c <= '9');
}

//  Decode the labels of series text [q, qend) (from the '{', already
//  checked to close) into sample, their strings into out (room enough).
//  Returns 0, or -1 when a label is malformed.
static int
s_decode_labels (const char *q, const char *qend, char *out, trovectl_prom_sample_t *sample)
{
    q++;  //  '{'
    while (q < qend) {
        while (q < qend && (*q == ' ' || *q == ','))
            q++;
        if (q >= qend || *q == '}')
            break;
        const char *lname = q;
        while (q < qend && s_name_char (*q, false))
            q++;
        size_t lname_len = (size_t) (q - lname);
        while (q < qend && *q == ' ')
            q++;
        if (lname_len == 0 || q >= qend || *q != '=')
            return -1;
        q++;
        while (q < qend && *q == ' ')
            q++;
        if (q >= qend || *q != '"')
            return -1;
        q++;
        char *lvalue = out + lname_len + 1;
        char *v = lvalue;
        while (q < qend && *q != '"') {
            if (*q == '\\' && q + 1 < qend) {
                q++;
                *v++ = *q == 'n' ? '\n' : *q;
            }
            else
                *v++ = *q;
            q++;
        }
        if (q >= qend)
            return -1;
        q++;  //  closing quote
        *v = 0;
        if (sample->nlabels < TROVECTL_PROM_MAX_LABELS) {
            memcpy (out, lname, lname_len);
            out [lname_len] = 0;
            sample->label_name [sample->nlabels] = out;
            sample->label_value [sample->nlabels] = lvalue;
            sample->nlabels++;
        }
        out = v + 1;
    }
    return 0;
}

//  Parse one sample line (len bytes, no newline) into sample. Returns 0, or
//  -1 when the line is not a sample (comment, blank, malformed). On -1
//  nothing is allocated.
int
trovectl_prom_parse_line (const char *line, size_t len, trovectl_prom_sample_t *sample)
{
    const char *end = line + len;
    const char *p = line;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *series = p;
    if (p == end || *p == '#' || !s_name_char (*p, true))
        return -1;
    while (p < end && s_name_char (*p, false))
        p++;
    size_t name_len = (size_t) (p - series);
    //  Labels: only checked here; decoded below once memory is allocated.
    if (p < end && *p == '{') {
        p++;
        bool in_value = false;
        while (p < end && (in_value || *p != '}')) {
            if (*p == '"')
                in_value = !in_value;
            else if (in_value && *p == '\\')
                p++;
            p++;
        }
        if (p >= end)
            return -1;
        p++;  //  '}'
    }
    size_t series_len = (size_t) (p - series);
    if (p == end || (*p != ' ' && *p != '\t'))
        return -1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    char number [64];
    size_t nlen = 0;
    while (p + nlen < end && p [nlen] != ' ' && p [nlen] != '\t')
        nlen++;
    if (nlen == 0 || nlen >= sizeof number)
        return -1;
    memcpy (number, p, nlen);
    number [nlen] = 0;
    char *stop;
    double value = strtod (number, &stop);
    if (*stop)
        return -1;

    //  One block: the series text, then the decoded name, label names and
    //  values (each no longer than its text, plus a NUL).
    char *mem = malloc (2 * series_len + 2);
    if (!mem)
        return -1;
    memset (sample, 0, sizeof *sample);
    sample->key = mem;
    memcpy (mem, series, series_len);
    mem [series_len] = 0;
    char *out = mem + series_len + 1;
    sample->name = out;
    memcpy (out, series, name_len);
    out [name_len] = 0;
    out += name_len + 1;
    sample->value = value;
    const char *q = series + name_len;
    const char *qend = series + series_len;
    if (q < qend && *q == '{' && s_decode_labels (q, qend, out, sample))
        goto bad;
    return 0;
bad:
    free (mem);
    memset (sample, 0, sizeof *sample);
    return -1;
}

//  Parse a /metrics body. Lines that are not samples are skipped. NULL on
//  OOM.
trovectl_prom_t *
trovectl_prom_parse (const char *body, size_t size)
{
    trovectl_prom_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->started = NAN;
    const char *end = body + size;
    for (const char *line = body; line < end;) {
        const char *eol = memchr (line, '\n', (size_t) (end - line));
        size_t len = eol ? (size_t) (eol - line) : (size_t) (end - line);
        if (len && line [len - 1] == '\r')
            len--;
        if (self->count == self->max) {
            size_t max = self->max ? self->max * 2 : 256;
            trovectl_prom_sample_t *samples = realloc (self->samples, max * sizeof *samples);
            if (!samples)
                goto fail;
            self->samples = samples;
            self->max = max;
        }
        trovectl_prom_sample_t *sample = &self->samples [self->count];
        if (trovectl_prom_parse_line (line, len, sample) == 0) {
            self->count++;
            if (strcmp (sample->name, "process_start_time_seconds") == 0 && sample->nlabels == 0)
                self->started = sample->value;
        }
        line = eol ? eol + 1 : end;
    }
    return self;
fail:
    trovectl_prom_destroy (&self);
    return NULL;
}

//  Value of a label of sample, or NULL.
const char *
trovectl_prom_label (const trovectl_prom_sample_t *sample, const char *name)
{
    for (int i = 0; i < sample->nlabels; i++)
        if (strcmp (sample->label_name [i], name) == 0)
            return sample->label_value [i];
    return NULL;
}

//  The sample of scrape with this key; hint is where to look first (series
//  keep their order from one scrape to the next).
const trovectl_prom_sample_t *
trovectl_prom_find (const trovectl_prom_t *scrape, const char *key, size_t hint)
{
    if (hint < scrape->count && strcmp (scrape->samples [hint].key, key) == 0)
        return &scrape->samples [hint];
    for (size_t i = 0; i < scrape->count; i++)
        if (strcmp (scrape->samples [i].key, key) == 0)
            return &scrape->samples [i];
    return NULL;
}

void
trovectl_prom_hist_add (trovectl_prom_hist_t *self, double le, double count)
{
    size_t at = 0;
    while (at < self->n && self->le [at] < le)
        at++;
    if (at < self->n && self->le [at] == le) {
        self->count [at] += count;
        return;
    }
    if (self->n == TROVECTL_PROM_MAX_BUCKETS)
        return;  //  a daemon never has this many: drop
    memmove (self->le + at + 1, self->le + at, (self->n - at) * sizeof self->le [0]);
    memmove (self->count + at + 1, self->count + at, (self->n - at) * sizeof self->count [0]);
    self->le [at] = le;
    self->count [at] = count;
    self->n++;
}

//  The q-quantile the way PromQL histogram_quantile () computes it, or NAN
//  when there is no observation (or no +Inf bucket).
double
trovectl_prom_hist_quantile (const trovectl_prom_hist_t *self, double q)
{
    if (self->n < 2 || !isinf (self->le [self->n - 1]))
        return NAN;
    //  Cumulative counts must not decrease (a reset of one series could
    //  make them): take the running maximum.
    double count [TROVECTL_PROM_MAX_BUCKETS];
    for (size_t i = 0; i < self->n; i++)
        count [i] = i && self->count [i] < count [i - 1] ? count [i - 1] : self->count [i];
    double total = count [self->n - 1];
    if (!(total > 0))
        return NAN;
    double rank = q * total;
    size_t b = 0;
    while (b < self->n - 1 && count [b] < rank)
        b++;
    if (b == self->n - 1)
        return self->le [self->n - 2];
    if (b == 0 && self->le [0] <= 0)
        return self->le [0];
    double start = 0, in_bucket = count [b];
    if (b > 0) {
        start = self->le [b - 1];
        in_bucket -= count [b - 1];
        rank -= count [b - 1];
    }
    return start + (self->le [b] - start) * (rank / in_bucket);
}
