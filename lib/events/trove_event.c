/*  trove_event - validation and JSON for events. */
#include "trove_event.h"
#include "trove_error.h"
#include "trove_util.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
s_check_text (const char *field, const char *value, size_t max, bool required, char *detail, size_t size)
{
    size_t len = value ? strlen (value) : 0;
    if (len == 0) {
        if (!required)
            return NULL;
        snprintf (detail, size, "'%s' is missing or empty", field);
        return trove_strerror (TROVE_E_MISSING_FIELD);
    }
    if (len > max) {
        snprintf (detail, size, "'%s' is %zu bytes, limit %zu", field, len, max);
        return trove_strerror (TROVE_E_TOO_LONG);
    }
    if (!trove_utf8_valid (value, len)) {
        snprintf (detail, size, "'%s' is not valid UTF-8 text", field);
        return trove_strerror (TROVE_E_BAD_UTF8);
    }
    return NULL;
}

//  The first code point of UTF-8 text s that does not show: a control
//  (Unicode category Cc), a format character (Cf: bidirectional controls
//  such as U+202E, zero-width ones such as U+200B, U+2066..U+2069, ...) or
//  a line or paragraph separator (U+2028, U+2029); 0 when there is none.
//  A user id holding one could pass for another on a leaderboard.
static uint32_t
s_invisible (const char *s, size_t len)
{
    static const uint32_t ranges [][2] = {
        {0x0000, 0x001f},   {0x007f, 0x009f},   {0x00ad, 0x00ad},   {0x0600, 0x0605},   {0x061c, 0x061c},
        {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x0890, 0x0891},   {0x08e2, 0x08e2},   {0x180e, 0x180e},
        {0x200b, 0x200f},   {0x2028, 0x202e},   {0x2060, 0x2064},   {0x2066, 0x206f},   {0xfeff, 0xfeff},
        {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3},
        {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f},
    };
    const uint8_t *p = (const uint8_t *) s;
    for (size_t i = 0; i < len;) {
        uint32_t cp = p [i];
        size_t n = cp < 0x80 ? 0 : cp < 0xe0 ? 1 : cp < 0xf0 ? 2 : 3;
        if (n)
            cp &= 0x3f >> n;
        for (size_t k = 1; k <= n && i + k < len; k++)
            cp = (cp << 6) | (p [i + k] & 0x3f);
        for (size_t r = 0; r < sizeof ranges / sizeof ranges [0]; r++)
            if (cp >= ranges [r][0] && cp <= ranges [r][1])
                return cp ? cp : 0xffffffff;
        i += n + 1;
    }
    return 0;
}

const char *
trove_event_check (const Trove__Event *ev, const trove_cfg_t *cfg, int64_t now_ms, char *detail, size_t size)
{
    const trove_limits_t *lim = trove_cfg_limits (cfg);
    const char *reason;
    if ((reason = s_check_text ("source", ev->source, lim->max_source, true, detail, size))
        || (reason = s_check_text ("id", ev->id, lim->max_id, true, detail, size))
        || (reason = s_check_text ("user", ev->user, lim->max_user, true, detail, size))
        || (reason = s_check_text ("type", ev->type, lim->max_type, true, detail, size)))
        return reason;
    uint32_t hidden = s_invisible (ev->user, strlen (ev->user));
    if (hidden) {
        snprintf (detail, size,
                  "'user' holds U+%04X, an invisible or format character (controls, "
                  "bidirectional marks, zero-width characters are refused)",
                  (unsigned) hidden);
        return trove_strerror (TROVE_E_INVISIBLE_CHAR);
    }
    if (!trove_cfg_source_known (cfg, ev->source)) {
        snprintf (detail, size, "source '%s' is not declared in the cluster config", ev->source);
        return trove_strerror (TROVE_E_UNKNOWN_SOURCE);
    }
    if (ev->ts_ms == 0) {
        snprintf (detail, size, "'ts' is missing");
        return trove_strerror (TROVE_E_MISSING_FIELD);
    }
    if (ev->ts_ms < now_ms - lim->max_past_ms || ev->ts_ms > now_ms + lim->max_future_ms) {
        char ts [40];
        trove_format_rfc3339 (ev->ts_ms, ts, sizeof ts);
        snprintf (detail, size, "ts %s is more than %lld s in the past or %lld s in the future", ts,
                  (long long) (lim->max_past_ms / 1000), (long long) (lim->max_future_ms / 1000));
        return trove_strerror (TROVE_E_BAD_TS);
    }
    if (ev->n_attrs > lim->max_attrs) {
        snprintf (detail, size, "%zu attributes, limit %zu", ev->n_attrs, lim->max_attrs);
        return trove_strerror (TROVE_E_TOO_MANY_ATTRS);
    }
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const Trove__Attr *a = ev->attrs [i];
        if ((reason = s_check_text ("attrs key", a->key, lim->max_attr_key, true, detail, size)))
            return reason;
        for (size_t j = 0; j < i; j++)
            if (strcmp (ev->attrs [j]->key, a->key) == 0) {
                snprintf (detail, size, "attribute '%s' appears twice", a->key);
                return trove_strerror (TROVE_E_BAD_ATTR);
            }
        switch (a->value_case) {
            case TROVE__ATTR__VALUE_S:
                if ((reason = s_check_text ("attrs value", a->s, lim->max_attr_value, false, detail, size)))
                    return reason;
                break;
            case TROVE__ATTR__VALUE_N:
                if (!isfinite (a->n)) {
                    snprintf (detail, size, "attribute '%s' is not a finite number", a->key);
                    return trove_strerror (TROVE_E_BAD_ATTR);
                }
                break;
            case TROVE__ATTR__VALUE_B:
                break;
            default:
                snprintf (detail, size, "attribute '%s' has no value", a->key);
                return trove_strerror (TROVE_E_BAD_ATTR);
        }
    }
    if (strcmp (ev->type, "undo") == 0) {
        //  An undo names its target; it must be the same user's event.
        const char *keys [] = {"target_source", "target_id"};
        for (int k = 0; k < 2; k++) {
            const Trove__Attr *found = NULL;
            for (size_t i = 0; i < ev->n_attrs; i++)
                if (strcmp (ev->attrs [i]->key, keys [k]) == 0)
                    found = ev->attrs [i];
            if (!found || found->value_case != TROVE__ATTR__VALUE_S || !*found->s) {
                snprintf (detail, size, "an undo event needs the string attribute '%s'", keys [k]);
                return trove_strerror (TROVE_E_BAD_UNDO);
            }
        }
    }
    return NULL;
}

void
trove_event_destroy (Trove__Event **ev_p)
{
    assert (ev_p);
    Trove__Event *ev = *ev_p;
    if (!ev)
        return;
    free (ev->source);
    free (ev->id);
    free (ev->user);
    free (ev->type);
    for (size_t i = 0; i < ev->n_attrs; i++) {
        Trove__Attr *a = ev->attrs [i];
        if (!a)
            continue;
        free (a->key);
        if (a->value_case == TROVE__ATTR__VALUE_S)
            free (a->s);
        free (a);
    }
    free (ev->attrs);
    free (ev);
    *ev_p = NULL;
}

//  protobuf-c represents an absent proto3 string as the shared empty string;
//  our own events always own their strings, so normalise to a heap "".
static char *
s_strdup (const char *s)
{
    return strdup (s ? s : "");
}

Trove__Event *
trove_event_dup (const Trove__Event *src)
{
    Trove__Event *ev = calloc (1, sizeof *ev);
    if (!ev)
        return NULL;
    trove__event__init (ev);
    ev->source = s_strdup (src->source);
    ev->id = s_strdup (src->id);
    ev->user = s_strdup (src->user);
    ev->type = s_strdup (src->type);
    ev->ts_ms = src->ts_ms;
    ev->attrs = src->n_attrs ? calloc (src->n_attrs, sizeof *ev->attrs) : NULL;
    if (!ev->source || !ev->id || !ev->user || !ev->type || (src->n_attrs && !ev->attrs))
        goto fail;
    for (size_t i = 0; i < src->n_attrs; i++) {
        Trove__Attr *a = calloc (1, sizeof *a);
        if (!a)
            goto fail;
        trove__attr__init (a);
        ev->attrs [ev->n_attrs++] = a;
        a->key = s_strdup (src->attrs [i]->key);
        a->value_case = src->attrs [i]->value_case;
        if (a->value_case == TROVE__ATTR__VALUE_S) {
            a->s = s_strdup (src->attrs [i]->s);
            if (!a->s) {
                a->value_case = TROVE__ATTR__VALUE__NOT_SET;
                goto fail;
            }
        }
        else if (a->value_case == TROVE__ATTR__VALUE_N)
            a->n = src->attrs [i]->n;
        else if (a->value_case == TROVE__ATTR__VALUE_B)
            a->b = src->attrs [i]->b;
        if (!a->key)
            goto fail;
    }
    return ev;
fail:
    trove_event_destroy (&ev);
    return NULL;
}

Trove__Event *
trove_event_from_json (const char *text, size_t len, const char **reason_p, char **err_p)
{
    const char *reason = trove_strerror (TROVE_E_BAD_JSON);
    char *err = NULL;
    Trove__Event *ev = NULL;
    json_error_t jerr;
    //  jansson rejects invalid UTF-8 and NUL bytes in strings.
    json_t *root = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err = trove_strdupf ("invalid JSON: %s", jerr.text);
        goto fail;
    }
    if (!json_is_object (root)) {
        err = trove_strdupf ("an event must be a JSON object");
        goto fail;
    }
    ev = calloc (1, sizeof *ev);
    if (!ev)
        goto oom;
    trove__event__init (ev);
    ev->source = strdup ("");
    ev->id = strdup ("");
    ev->user = strdup ("");
    ev->type = strdup ("");
    if (!ev->source || !ev->id || !ev->user || !ev->type)
        goto oom;
    const char *key;
    json_t *value;
    json_object_foreach (root, key, value)
    {
        char **slot = strcmp (key, "source") == 0 ? &ev->source
                    : strcmp (key, "id") == 0     ? &ev->id
                    : strcmp (key, "user") == 0   ? &ev->user
                    : strcmp (key, "type") == 0   ? &ev->type
                                                  : NULL;
        if (slot) {
            if (!json_is_string (value)) {
                reason = trove_strerror (TROVE_E_MISSING_FIELD);
                err = trove_strdupf ("'%s' must be a string", key);
                goto fail;
            }
            free (*slot);
            *slot = strdup (json_string_value (value));
            if (!*slot)
                goto oom;
        }
        else if (strcmp (key, "ts") == 0) {
            if (json_is_integer (value))
                ev->ts_ms = json_integer_value (value);
            else if (!json_is_string (value) || trove_parse_rfc3339 (json_string_value (value), &ev->ts_ms)) {
                reason = trove_strerror (TROVE_E_BAD_TS);
                err = trove_strdupf ("'ts' must be RFC 3339 text or integer epoch milliseconds");
                goto fail;
            }
        }
        else if (strcmp (key, "attrs") == 0) {
            if (!json_is_object (value)) {
                reason = trove_strerror (TROVE_E_BAD_ATTR);
                err = trove_strdupf ("'attrs' must be an object");
                goto fail;
            }
            size_t n = json_object_size (value);
            ev->attrs = n ? calloc (n, sizeof *ev->attrs) : NULL;
            if (n && !ev->attrs)
                goto oom;
            const char *akey;
            json_t *aval;
            json_object_foreach (value, akey, aval)
            {
                Trove__Attr *a = calloc (1, sizeof *a);
                if (!a)
                    goto oom;
                trove__attr__init (a);
                ev->attrs [ev->n_attrs++] = a;
                a->key = strdup (akey);
                if (!a->key)
                    goto oom;
                if (json_is_string (aval)) {
                    a->s = strdup (json_string_value (aval));
                    if (!a->s)
                        goto oom;
                    a->value_case = TROVE__ATTR__VALUE_S;
                }
                else if (json_is_number (aval)) {
                    a->n = json_number_value (aval);
                    a->value_case = TROVE__ATTR__VALUE_N;
                }
                else if (json_is_boolean (aval)) {
                    a->b = json_is_true (aval);
                    a->value_case = TROVE__ATTR__VALUE_B;
                }
                else {
                    reason = trove_strerror (TROVE_E_BAD_ATTR);
                    err = trove_strdupf ("attribute '%s' must be a string, number or boolean", akey);
                    goto fail;
                }
            }
        }
        else {
            reason = trove_strerror (TROVE_E_UNKNOWN_FIELD);
            err = trove_strdupf ("unknown field '%s'", key);
            goto fail;
        }
    }
    json_decref (root);
    return ev;
oom:
    reason = trove_strerror (TROVE_E_INTERNAL);
    free (err);
    err = strdup ("out of memory");
fail:
    json_decref (root);
    trove_event_destroy (&ev);
    if (reason_p)
        *reason_p = reason;
    if (err_p)
        *err_p = err;
    else
        free (err);
    return NULL;
}

char *
trove_event_to_json (const Trove__Event *ev)
{
    json_t *attrs = json_object ();
    for (size_t i = 0; attrs && i < ev->n_attrs; i++) {
        const Trove__Attr *a = ev->attrs [i];
        json_t *v = a->value_case == TROVE__ATTR__VALUE_S ? json_string (a->s)
                  : a->value_case == TROVE__ATTR__VALUE_N ? json_real (a->n)
                  : a->value_case == TROVE__ATTR__VALUE_B ? json_boolean (a->b)
                                                          : json_null ();
        json_object_set_new (attrs, a->key, v);
    }
    char ts [40];
    trove_format_rfc3339 (ev->ts_ms, ts, sizeof ts);
    json_t *root = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:o}", "source", ev->source, "id", ev->id, "user",
                              ev->user, "type", ev->type, "ts", ts, "attrs", attrs);
    if (!root)
        return NULL;
    char *text = json_dumps (root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (root);
    return text;
}

const char *
trove_event_status_name (int status)
{
    switch (status) {
        case TROVE__STATUS__ACCEPTED:
            return "accepted";
        case TROVE__STATUS__DUPLICATE:
            return "duplicate";
        case TROVE__STATUS__REJECTED:
            return "rejected";
        case TROVE__STATUS__RETRY:
            return "retry";
        default:
            return "unspecified";
    }
}

static int
s_attr_order (const void *a, const void *b)
{
    return strcmp ((*(Trove__Attr *const *) a)->key, (*(Trove__Attr *const *) b)->key);
}

void
trove_event_content_hash (const Trove__Event *ev, uint8_t out [TROVE_EVENT_CONTENT_SIZE])
{
    crypto_generichash_state st;
    crypto_generichash_init (&st, NULL, 0, TROVE_EVENT_CONTENT_SIZE);
    char num [40];
    //  Each part ends with a NUL: no two events share a byte stream.
    crypto_generichash_update (&st, (const unsigned char *) "trove-content-v1", 17);
    crypto_generichash_update (&st, (const unsigned char *) ev->user, strlen (ev->user) + 1);
    crypto_generichash_update (&st, (const unsigned char *) ev->type, strlen (ev->type) + 1);
    int len = snprintf (num, sizeof num, "%lld", (long long) ev->ts_ms);
    crypto_generichash_update (&st, (const unsigned char *) num, (size_t) len + 1);
    //  Validation bounds attrs (limits/max_attrs <= 1024).
    Trove__Attr *sorted [1024];
    size_t n = ev->n_attrs < 1024 ? ev->n_attrs : 1024;
    if (n)
        memcpy (sorted, ev->attrs, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_attr_order);
    for (size_t i = 0; i < n; i++) {
        const Trove__Attr *a = sorted [i];
        crypto_generichash_update (&st, (const unsigned char *) a->key, strlen (a->key) + 1);
        if (a->value_case == TROVE__ATTR__VALUE_S) {
            crypto_generichash_update (&st, (const unsigned char *) "s", 1);
            crypto_generichash_update (&st, (const unsigned char *) a->s, strlen (a->s) + 1);
        }
        else {
            if (a->value_case == TROVE__ATTR__VALUE_N)
                len = snprintf (num, sizeof num, "n%.17g", a->n);
            else
                len = snprintf (num, sizeof num, "b%d", a->value_case == TROVE__ATTR__VALUE_B && a->b);
            crypto_generichash_update (&st, (const unsigned char *) num, (size_t) len + 1);
        }
    }
    crypto_generichash_final (&st, out, TROVE_EVENT_CONTENT_SIZE);
}
