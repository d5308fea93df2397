/*  trove_error - reason codes and their texts. See trove_error.h. */
#include "trove_error.h"

#include <string.h>

//  Indexed by code: a code without its text here fails the build's unit
//  test (test_trove_error), not a client.
static const char *const s_text [TROVE_E_COUNT_] = {
    [TROVE_OK] = "ok",
    [TROVE_E_UNKNOWN] = "internal",
    [TROVE_E_BAD_JSON] = "bad_json",
    [TROVE_E_UNKNOWN_FIELD] = "unknown_field",
    [TROVE_E_MISSING_FIELD] = "missing_field",
    [TROVE_E_TOO_LONG] = "too_long",
    [TROVE_E_BAD_UTF8] = "bad_utf8",
    [TROVE_E_INVISIBLE_CHAR] = "invisible_char",
    [TROVE_E_UNKNOWN_SOURCE] = "unknown_source",
    [TROVE_E_BAD_TS] = "bad_ts",
    [TROVE_E_TOO_MANY_ATTRS] = "too_many_attrs",
    [TROVE_E_BAD_ATTR] = "bad_attr",
    [TROVE_E_BAD_UNDO] = "bad_undo",
    [TROVE_E_WRONG_SHARD] = "wrong_shard",
    [TROVE_E_ID_CONFLICT] = "id_conflict",
    [TROVE_E_HISTORY_LIMIT] = "history_limit",
    [TROVE_E_TYPE_NOT_ALLOWED] = "type_not_allowed",
    [TROVE_E_SOURCE_MISMATCH] = "source_mismatch",
    [TROVE_E_BAD_RECONCILE] = "bad_reconcile",
    [TROVE_E_SHARD_UNAVAILABLE] = "shard_unavailable",
    [TROVE_E_OVERLOADED] = "overloaded",
    [TROVE_E_STORAGE_FULL] = "storage_full",
    [TROVE_E_STORAGE_ERROR] = "storage_error",
    [TROVE_E_INTERNAL] = "internal",
    [TROVE_E_MALFORMED] = "malformed",
    [TROVE_E_FRAME_TOO_LARGE] = "frame_too_large",
    [TROVE_E_BATCH_TOO_LARGE] = "batch_too_large",
    [TROVE_E_EMPTY] = "empty",
    [TROVE_E_TOO_MANY_EVENTS] = "too_many_events",
    [TROVE_E_EVENT_TOO_LARGE] = "event_too_large",
    [TROVE_E_BAD_IDEMPOTENCY_KEY] = "bad_idempotency_key",
    [TROVE_E_IDEMPOTENCY_MISMATCH] = "idempotency_mismatch",
    [TROVE_E_RATE_LIMITED] = "rate_limited",
    [TROVE_E_OVER_BURST] = "over_burst",
    [TROVE_E_UNAUTHORIZED] = "unauthorized",
    [TROVE_E_NOT_ALLOWED] = "not_allowed",
    [TROVE_E_NOT_FOUND] = "not_found",
    [TROVE_E_COST_LIMIT] = "cost_limit",
    [TROVE_E_EXCLUDED] = "excluded",
    [TROVE_E_BAD_REQUEST] = "bad_request",
    [TROVE_E_BAD_PATH] = "bad_path",
    [TROVE_E_BAD_PARAM] = "bad_param",
    [TROVE_E_BAD_USER] = "bad_user",
    [TROVE_E_BAD_HUNT] = "bad_hunt",
    [TROVE_E_BAD_COIN_ID] = "bad_coin_id",
    [TROVE_E_BAD_PERIOD] = "bad_period",
    [TROVE_E_MISSING_USER] = "missing user",
    [TROVE_E_MISSING_HUNT] = "missing hunt",
    [TROVE_E_PERIOD_TEXT] = "bad period",
    [TROVE_E_BAD_CURSOR] = "bad cursor",
    [TROVE_E_UNKNOWN_KIND] = "unknown query kind",
    [TROVE_E_NO_MEMORY] = "out of memory",
    [TROVE_E_NO_RULES] = "no rules loaded",
    [TROVE_REASON_SCORED] = "scored",
    [TROVE_REASON_RESCORED] = "rescored",
    [TROVE_REASON_UNDO] = "undo",
    [TROVE_REASON_RECONCILED] = "reconciled",
};

const char *
trove_strerror (trove_err_t code)
{
    if ((int) code < 0 || code >= TROVE_E_COUNT_ || !s_text [code])
        return s_text [TROVE_E_UNKNOWN];
    return s_text [code];
}

trove_err_t
trove_error_parse (const char *text)
{
    if (!text || !*text)
        return TROVE_OK;
    //  From TROVE_E_UNKNOWN + 1: "internal" is TROVE_E_INTERNAL
    for (int code = TROVE_E_UNKNOWN + 1; code < TROVE_E_COUNT_; code++) {
        size_t n = strlen (s_text [code]);
        if (strncmp (text, s_text [code], n) == 0 && (text [n] == '\0' || text [n] == ':'))
            return (trove_err_t) code;
    }
    return TROVE_E_UNKNOWN;
}
