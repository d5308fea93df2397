/*  trove_stream - the live award stream of the HTTP API, GET
    /v1/awards/stream (Server-Sent Events; docs/queries.md, "The award
    stream"). trove_api checks the key, the scope and the parameters and
    hands the request here.

    Each client has its own award subscriber (trove_awardsub: its own SUB
    socket, resumed per shard from the client's event id) and its own
    thread, which writes the client's events into its HTTP stream
    (trove_http_reply_stream). A slow client makes its thread wait on the
    stream's full buffer; meanwhile its SUB socket drops at its high-water
    mark and the subscriber later fetches what it missed from the scorers:
    memory stays bounded per client and nothing is lost or repeated, the
    client only falls behind. The number of clients is bounded by the
    server's limits/http_max_streams.

    An event:
        id: 0:15,1:22        (every shard's last award sequence after it)
        event: award
        data: {coin JSON of trove_json_coin, "revoked" included}
    A comment (": keep-alive") every 15 s while nothing is sent; when the
    position moved meanwhile (filtered out awards), an "id:" line alone
    instead, so that a resumed filtered client does not fetch them again. */
#ifndef TROVE_STREAM_H_INCLUDED
#define TROVE_STREAM_H_INCLUDED
#include "trove_cfg.h"
#include "trove_http.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _trove_stream_t trove_stream_t;

//  What one client asked for. Strings and after are copied by open.
typedef struct {
    const char *user;       //  only this user's awards, or NULL
    const char *hunt;       //  only this hunt's, or NULL
    const char *rule;       //  only this rule's (of any hunt), or NULL
    const char *source;     //  show other sources' events redacted (NULL: admin, all)
    const uint64_t *after;  //  per shard: the last aseq the client has; NULL: from now
} trove_stream_want_t;

//  The award streams of cfg's cluster (cfg must outlive it). NULL on OOM.
trove_stream_t *trove_stream_new (const trove_cfg_t *cfg);
//  Stop every client's thread and join it. Destroy the HTTP server first
//  (it closes the clients' streams); safe on NULL.
void trove_stream_destroy (trove_stream_t **self_p);
//  Shards of the cluster: the length of every position.
size_t trove_stream_shards (trove_stream_t *self);
//  Parse an event id "SHARD:ASEQ,..." naming every shard once (any order)
//  into positions (trove_stream_shards entries). Returns 0, or -1 when it
//  is not one.
int trove_stream_parse_id (trove_stream_t *self, const char *text, uint64_t *positions);
//  Start a client's stream as the answer to req: 200 text/event-stream, or
//  503 (shard_unavailable: a scorer did not tell its position for a
//  stream from now; overloaded: too many streams, no thread, no memory).
void trove_stream_open (trove_stream_t *self, const trove_http_request_t *req, trove_http_response_t *resp,
                        const trove_stream_want_t *want);

#ifdef __cplusplus
}
#endif
#endif
