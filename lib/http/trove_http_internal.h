/*  trove_http_internal - what the files of the HTTP server share; not for
    use outside lib/http. trove_http.c: the route table, dispatch, the
    libmicrohttpd glue, refusal counting, start and stop. trove_http_door.c:
    the door (accepts each connection and reads its first head before
    libmicrohttpd does; under TLS it cannot read it and hands the connection
    over at once), the per-client caps, the listener.
    trove_http_frame.c: the framing checks both apply. trove_http_tls.c:
    the certificate and key of HTTPS, and their reload.

    Invariants (self->mutex guards clients, socks and their counts; the
    door's pending list is its thread's alone):
      - a client entry exists while it has a pending or an active
        connection (http_client_forget drops it at zero);
      - a socket is either pending (the door holds it) or in socks
        (libmicrohttpd holds it), never both: the door hands it over once
        its first head passed the framing checks. */
#ifndef TROVE_HTTP_INTERNAL_H
#define TROVE_HTTP_INTERNAL_H

#include "trove_http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_MAX_ROUTES 32
#define HTTP_MAX_PAIRS 128      //  headers or query arguments kept per request
#define HTTP_TICK_MS 200        //  the door's reaper and log cadence
#define HTTP_LINGER_US 2000000  //  a refused connection is drained this long, then closed
#define HTTP_REPEEK_US 20000    //  an incomplete head is looked at again no sooner
#define HTTP_SLOW_US 1000000    //  a head not complete after this may give way (the per-client cap)
#define HTTP_NREASONS 25        //  refusal reasons counted (s_reasons in trove_http.c)

typedef struct {
    char *method;  //  exact method
    char *path;    //  exact path, or prefix when it ends in '/'
    trove_http_fn *fn;
    void *arg;
    bool open;  //  served without the authentication hook
} http_route_t;

//  A client address as the caps count it: IPv4, or the /64 of IPv6.
typedef struct {
    uint8_t key [16];
    size_t pending;  //  connections the door holds
    size_t active;   //  connections libmicrohttpd holds
} http_client_t;

//  A connection libmicrohttpd holds (its socket context).
typedef struct _http_sock_t {
    struct _http_sock_t *prev, *next;
    int fd;
    uint8_t key [16];
    int state;          //  HTTP_WAIT_HEAD, HTTP_IN_BODY, HTTP_HANDLING
    int64_t since_us;   //  when that state began
    uint64_t requests;  //  request heads read (0: the first is still due)
} http_sock_t;

enum { HTTP_WAIT_HEAD, HTTP_IN_BODY, HTTP_HANDLING };

//  A connection the door holds, before its first head is complete.
typedef struct {
    int fd;
    uint8_t key [16];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t since_us;
    int64_t not_before_us;  //  next look at an incomplete head
    size_t seen;            //  bytes peeked last time
    bool closing;           //  refused: its answer is sent, the rest is drained
} http_pending_t;

//  A certificate chain and its key (trove_http_tls.c).
typedef struct _http_tls_pair_t http_tls_pair_t;

struct _trove_http_t {
    http_route_t routes [HTTP_MAX_ROUTES];
    size_t nroutes;
    size_t max_body;  //  bytes; more is answered 413
    trove_http_limits_t limits;
    trove_http_auth_fn *auth;
    void *auth_arg;
    struct MHD_Daemon *daemon;  //  NULL until started
    uint16_t port;              //  served port
    int listen_fd;              //  -1 when not serving
    int wake [2];               //  the door's wake-up pipe
    pthread_t door;
    bool door_running;
    atomic_bool stopping;
    //  Clients and the connections libmicrohttpd holds, under mutex.
    pthread_mutex_t mutex;
    http_client_t *clients;  //  max_connections entries, nclients used
    size_t nclients;
    http_sock_t *socks;  //  list
    size_t nsocks;
    //  The door's own (its thread only).
    http_pending_t *pending;
    size_t npending;
    //  Counters (NULL when no registry).
    trove_counter_t *refused [HTTP_NREASONS];
    trove_gauge_t *connections;
    trove_gauge_t *streams_open;  //  streaming responses open
    //  Log lines about dropped connections, at most one a minute, under log_mutex.
    pthread_mutex_t log_mutex;
    char last_error [256];                     //  libmicrohttpd's last message, for start errors
    bool log_direct;                           //  while starting: every message goes through
    int64_t log_window_us;                     //  start of the current minute
    uint64_t log_dropped [HTTP_NREASONS + 1];  //  in this minute, by reason (last: libmicrohttpd's messages)
    bool log_said;                             //  a line was written in this minute
    //  HTTPS (trove_http_tls.c): NULL when plain HTTP.
    http_tls_pair_t *tls_pair;  //  the newest pair read (older ones chained behind it)
    char *tls_priorities;       //  GnuTLS priority string
    //  Streaming responses open (trove_http_stream.c), under mutex.
    trove_http_stream_t *streams;  //  list
    size_t nstreams;
    pthread_cond_t streams_gone;  //  signalled when a stream is freed
};

//  Per request state, while the body arrives.
typedef struct {
    char *body;  //  received so far (NUL-terminated), NULL when none
    size_t size, cap;
    bool too_large;         //  over max_body: the rest is discarded
    bool answered;          //  a response is queued
    const void *principal;  //  from the authentication hook
} s_conn_t;

//  trove_http.c
size_t http_reason_index (const char *code, unsigned status);
//  Count a dropped connection or a refusal (reason: http_reason_index);
//  a log line at most once a minute.
void http_dropped (trove_http_t *self, size_t reason, const char *what);
//  Once a minute: the summary line of what http_dropped did not log.
void http_log_tick (trove_http_t *self, int64_t now_us);

//  trove_http_tls.c
//  GnuTLS's certificate callback (for MHD_OPTION_HTTPS_CERT_CALLBACK).
void *http_tls_callback (void);
//  Make self the process's HTTPS server (its pair is what handshakes get).
//  -1 when another server holds that place.
int http_tls_claim (trove_http_t *self);
//  Give the place up (a failed start).
void http_tls_release (trove_http_t *self);
//  Give it up and free every pair read (after libmicrohttpd stopped).
void http_tls_free (trove_http_t *self);
//  trove_http_stream.c (lock order: self->mutex, then a stream's mutex;
//  libmicrohttpd is called under a stream's mutex, never the other way)
//  The libmicrohttpd response of a stream answer, for connection. Takes the
//  connection's reference (also on failure: NULL).
struct MHD_Response *http_stream_response (trove_http_stream_t *stream, struct MHD_Connection *connection);
//  Release the connection's reference of an answer never sent (trove_http_dispatch,
//  an answer replaced by an error).
void http_stream_drop (trove_http_stream_t *stream);
//  Before libmicrohttpd stops: close every stream and resume the
//  connections waiting for bytes (libmicrohttpd must not stop with one
//  suspended).
void http_streams_stop (trove_http_t *self);
//  After it stopped: wait until every writer has released its handle.
void http_streams_wait (trove_http_t *self);

//  trove_http_door.c (clients under self->mutex)
void http_client_key (const struct sockaddr *addr, uint8_t key [16]);
http_client_t *http_client (trove_http_t *self, const uint8_t key [16], bool create);
void http_client_forget (trove_http_t *self, http_client_t *c);
//  The door's thread (pthread start routine; arg is the server).
void *http_door (void *arg);
//  "a.b.c.d:port" or "[v6]:port" into *addr. Returns 0 or -1.
int http_parse_address (const char *address, struct sockaddr_storage *addr);
//  Bind and listen (non-blocking); sets listen_fd and port. Returns 0 or -1.
int http_listen (trove_http_t *self, const struct sockaddr_storage *addr);

#endif
