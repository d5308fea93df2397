/*  trove_error - Trove's one error vocabulary: the reason codes that go on
    the wire, defined once, and the function that turns a code into its
    text (as LMDB's mdb_strerror and SQLite's sqlite3_errstr).

    The texts are a protocol: clients match on them (docs/events.md,
    "Answers and reason codes"; docs/protocol.md; docs/queries.md), so a text is
    never changed, only added. Code compares codes, never strings: a module
    that answers with a reason writes trove_strerror (TROVE_E_BAD_TS), and a
    module that reads a peer's reason text turns it back into a code with
    trove_error_parse.

    Return conventions, and where each is used:
      - 0 / -1: every function that can fail (czmq's rule). What went
        wrong, when a caller may need it, comes back beside the result:
          - as a code (trove_err_t) or its borrowed text (const char *)
            when the failure is something the wire reports: a rejected
            event (trove_event_check returns the reason text, NULL when
            valid), a query's error (reply.error);
          - as a malloc'd sentence in char **err_p when the failure is for
            an operator to read (a bad config line, a hunt file, a socket
            that cannot bind): free it after use;
      - 0 / 1 / -1 (found / not found / failed) for lookups, where "not
        there" is an answer, not an error (trove_ledger_coin);
      - bool for predicates that cannot fail.
    A reply's error text may carry a detail after the code and ": "
    ("cost_limit: the query needs more than ..."): the code is what is
    stable, the detail is for people. */
#ifndef TROVE_ERROR_H_INCLUDED
#define TROVE_ERROR_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TROVE_OK = 0,
    TROVE_E_UNKNOWN,  //  a text that is no code of ours ("internal")

    //  An event rejected (docs/events.md, "Answers and reason codes")
    TROVE_E_BAD_JSON,
    TROVE_E_UNKNOWN_FIELD,
    TROVE_E_MISSING_FIELD,
    TROVE_E_TOO_LONG,
    TROVE_E_BAD_UTF8,
    TROVE_E_INVISIBLE_CHAR,
    TROVE_E_UNKNOWN_SOURCE,
    TROVE_E_BAD_TS,
    TROVE_E_TOO_MANY_ATTRS,
    TROVE_E_BAD_ATTR,
    TROVE_E_BAD_UNDO,
    TROVE_E_WRONG_SHARD,
    TROVE_E_ID_CONFLICT,
    TROVE_E_HISTORY_LIMIT,
    TROVE_E_TYPE_NOT_ALLOWED,  //  the source may not send this type (docs/protocol.md)
    TROVE_E_SOURCE_MISMATCH,   //  HTTP: the event names another source than the key's
    TROVE_E_BAD_RECONCILE,     //  a reconciler event without its user or id
    //  An event to retry
    TROVE_E_SHARD_UNAVAILABLE,
    TROVE_E_OVERLOADED,
    TROVE_E_STORAGE_FULL,
    TROVE_E_STORAGE_ERROR,
    TROVE_E_INTERNAL,

    //  A whole request refused
    TROVE_E_MALFORMED,
    TROVE_E_FRAME_TOO_LARGE,
    TROVE_E_BATCH_TOO_LARGE,
    TROVE_E_EMPTY,
    TROVE_E_TOO_MANY_EVENTS,
    TROVE_E_EVENT_TOO_LARGE,
    TROVE_E_BAD_IDEMPOTENCY_KEY,
    TROVE_E_IDEMPOTENCY_MISMATCH,
    TROVE_E_RATE_LIMITED,
    TROVE_E_OVER_BURST,
    TROVE_E_UNAUTHORIZED,
    TROVE_E_NOT_ALLOWED,  //  the peer's certificate role may not make the request

    //  A query refused or failed (reply.error, HTTP "error")
    TROVE_E_NOT_FOUND,
    TROVE_E_COST_LIMIT,
    TROVE_E_EXCLUDED,
    TROVE_E_BAD_REQUEST,
    TROVE_E_BAD_PATH,
    TROVE_E_BAD_PARAM,
    TROVE_E_BAD_USER,
    TROVE_E_BAD_HUNT,
    TROVE_E_BAD_COIN_ID,
    TROVE_E_BAD_PERIOD,
    //  The scorer's query texts, older than the codes and kept as they are
    //  on the wire: trove_api maps them onto the HTTP codes above.
    TROVE_E_MISSING_USER,  //  "missing user"
    TROVE_E_MISSING_HUNT,  //  "missing hunt"
    TROVE_E_PERIOD_TEXT,   //  "bad period" (HTTP: bad_period)
    TROVE_E_BAD_CURSOR,    //  "bad cursor"
    TROVE_E_UNKNOWN_KIND,  //  "unknown query kind"
    TROVE_E_NO_MEMORY,     //  "out of memory"
    TROVE_E_NO_RULES,      //  "no rules loaded"

    //  Why a coin entry was written (Coin.reason; docs/architecture.md)
    TROVE_REASON_SCORED,      //  minted by the event that earned it
    TROVE_REASON_RESCORED,    //  minted or revoked by re-scoring (a late event)
    TROVE_REASON_UNDO,        //  revoked or minted by an undo event
    TROVE_REASON_RECONCILED,  //  written by a reconciler repair
    TROVE_E_COUNT_            //  not a code: the number of codes
} trove_err_t;

//  The wire text of code: a static string, never NULL ("internal" for a
//  value that is no code). This function can't fail.
const char *trove_strerror (trove_err_t code);

//  The code a reason text carries: text equal to a code's text, or that
//  text followed by ':' and a detail. TROVE_OK for NULL or "", and
//  TROVE_E_UNKNOWN for any other text.
trove_err_t trove_error_parse (const char *text);

#ifdef __cplusplus
}
#endif
#endif
