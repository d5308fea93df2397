/*  trove_curve - CURVE on every link between processes. */
#include "trove_curve.h"
#include "trove_util.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  One log line per watched socket per this many microseconds; the rest
//  are counted (a refused client retries every few seconds, forever).
#define S_LOG_EVERY_US (10 * 1000000LL)

//  What czmq reports for a key a certificate file does not hold.
#define S_NO_KEY "0000000000000000000000000000000000000000"

#define S_EVENTS                                                                \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL \
     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

typedef enum { S_UNKNOWN_KEY, S_BAD_KEY, S_NOT_CURVE, S_OTHER, S_REASONS } s_reason_t;

static const char *s_reason_names [] = {"unknown_key", "bad_key", "not_curve", "other"};

//  What a refusal means, seen from the server (a peer we refused) and from
//  the client (a server that refused us).
static const char *s_server_text [] = {
    "its public key is not in the peers folder",
    "the CURVE handshake failed (the peer does not have this server's public key)",
    "the peer does not use CURVE",
    "the handshake failed",
};
static const char *s_client_text [] = {
    "the server refused this host's key (its public certificate is not in the server's peers folder)",
    "the CURVE handshake failed (is the server's curve_key in the config right?)",
    "the server does not use CURVE",
    "the handshake failed",
};

//  A socket under watch: the watcher thread's end of its monitor.
typedef struct {
    char inproc [96];     //  the monitor's endpoint
    char endpoint [256];  //  what was bound or connected
    bool server;
    zsock_t *pair;                  //  watcher's end, created in the watcher thread
    int64_t logged_us [S_REASONS];  //  per reason: last log line
    uint64_t unlogged [S_REASONS];  //  per reason: refusals since then
} s_watch_t;

//  The process's state (see the header for why there is one).
static struct {
    bool enabled;
    zcert_t *cert;
    zhash_t *keys;  //  endpoint -> Z85 server key
    zactor_t *auth;
    zactor_t *watcher;
    pthread_mutex_t watcher_mutex;  //  the watcher's pipe is one socket
    trove_metrics_t *metrics;
} s_curve = {.watcher_mutex = PTHREAD_MUTEX_INITIALIZER};

static s_reason_t
s_classify (uint16_t event, uint32_t value)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return S_UNKNOWN_KEY;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return S_NOT_CURVE;
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC || value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE)
            return S_BAD_KEY;
    }
    return S_OTHER;
}

//  One monitor event of watch: count it, log it unless one was logged lately.
static void
s_refused (s_watch_t *watch, uint16_t event, uint32_t value)
{
    s_reason_t reason = s_classify (event, value);
    const char *names [] = {"endpoint", "reason", NULL};
    const char *values [] = {watch->endpoint, s_reason_names [reason], NULL};
    if (s_curve.metrics)
        trove_counter_inc (trove_metrics_counter (
            s_curve.metrics, watch->server ? "trove_curve_refused_total" : "trove_curve_rejected_total",
            watch->server
                ? "CURVE peers refused by this process's servers, by endpoint and reason."
                : "CURVE handshakes servers refused to this process's clients, by endpoint and reason.",
            names, values));
    int64_t now = trove_mono_us ();
    if (watch->logged_us [reason] && now - watch->logged_us [reason] < S_LOG_EVERY_US) {
        watch->unlogged [reason]++;
        return;
    }
    char more [64] = "";
    if (watch->unlogged [reason])
        snprintf (more, sizeof more, "; %llu more like it since the last report",
                  (unsigned long long) watch->unlogged [reason]);
    if (watch->server)
        trove_log ('W', "CURVE: refused a peer on %s: %s (%s, event 0x%x/0x%x)%s", watch->endpoint,
                   s_server_text [reason], s_reason_names [reason], event, value, more);
    else
        trove_log ('W', "CURVE: %s refused us: %s (%s, event 0x%x/0x%x)%s", watch->endpoint,
                   s_client_text [reason], s_reason_names [reason], event, value, more);
    watch->logged_us [reason] = now;
    watch->unlogged [reason] = 0;
}

//  Drain one watch's monitor: each event is [u16 event, u32 value] and the
//  endpoint.
static void
s_drain (s_watch_t *watch)
{
    zmsg_t *msg;
    while ((msg = zmsg_recv_nowait (watch->pair))) {
        zframe_t *head = zmsg_first (msg);
        if (head && zframe_size (head) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy (&event, zframe_data (head), sizeof event);
            memcpy (&value, zframe_data (head) + 2, sizeof value);
            if (event & S_EVENTS)
                s_refused (watch, event, value);
        }
        zmsg_destroy (&msg);
    }
}

//  The watcher thread: a PAIR per watched socket's monitor.
static void
s_watcher (zsock_t *pipe, void *args)
{
    (void) args;
    zlistx_t *watches = zlistx_new ();
    zpoller_t *poller = zpoller_new (pipe, NULL);
    zsock_signal (pipe, 0);
    while (watches && poller) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *command = msg ? zmsg_popstr (msg) : NULL;
            bool term = !command || streq (command, "$TERM");
            if (!term && streq (command, "WATCH")) {
                zframe_t *frame = zmsg_pop (msg);
                s_watch_t *watch = NULL;
                if (frame && zframe_size (frame) == sizeof watch)
                    memcpy (&watch, zframe_data (frame), sizeof watch);
                zframe_destroy (&frame);
                int rc = -1;
                if (watch) {
                    //  The one socket not made by trove_sock, which applies
                    //  CURVE through this module: inproc, no options to share.
                    watch->pair = zsock_new (ZMQ_PAIR);
                    if (watch->pair && zsock_connect (watch->pair, "%s", watch->inproc) == 0
                        && zpoller_add (poller, watch->pair) == 0 && zlistx_add_end (watches, watch))
                        rc = 0;
                    else {
                        zsock_destroy (&watch->pair);
                        free (watch);
                    }
                }
                zsock_signal (pipe, (byte) (rc == 0 ? 0 : 1));
            }
            free (command);
            zmsg_destroy (&msg);
            if (term)
                break;
        }
        else if (which) {
            for (s_watch_t *watch = zlistx_first (watches); watch; watch = zlistx_next (watches))
                if (watch->pair == which)
                    s_drain (watch);
        }
        else if (zpoller_terminated (poller))
            break;
    }
    for (s_watch_t *watch = watches ? zlistx_first (watches) : NULL; watch; watch = zlistx_next (watches)) {
        zsock_destroy (&watch->pair);
        free (watch);
    }
    zlistx_destroy (&watches);
    zpoller_destroy (&poller);
}

//  Start watching sock's handshake failures. Failure to watch is logged and
//  not fatal: the link works, its refusals are just not reported.
static void
s_watch (zsock_t *sock, const char *endpoint, bool server)
{
    static _Atomic unsigned long counter = 0;
    s_watch_t *watch = calloc (1, sizeof *watch);
    if (!watch)
        return;
    snprintf (watch->inproc, sizeof watch->inproc, "inproc://trove-curve-watch-%d-%lu", (int) getpid (),
              (unsigned long) atomic_fetch_add (&counter, 1));
    snprintf (watch->endpoint, sizeof watch->endpoint, "%s", endpoint);
    watch->server = server;
    if (zmq_socket_monitor (zsock_resolve (sock), watch->inproc, S_EVENTS)) {
        trove_log ('W', "CURVE: cannot watch %s for refusals: %s", endpoint, zmq_strerror (zmq_errno ()));
        free (watch);
        return;
    }
    pthread_mutex_lock (&s_curve.watcher_mutex);
    if (!s_curve.watcher)
        s_curve.watcher = zactor_new (s_watcher, NULL);
    int rc = -1;
    if (s_curve.watcher && zsock_send (s_curve.watcher, "sp", "WATCH", watch) == 0)
        rc = zsock_wait (s_curve.watcher);
    else
        free (watch);
    pthread_mutex_unlock (&s_curve.watcher_mutex);
    if (rc) {
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        trove_log ('W', "CURVE: cannot watch %s for refusals", endpoint);
    }
}

//  True when path is absent, or reads and parses as ZPL. czmq's zconfig_load
//  (under zcert_load) leaks on a file that does not parse; its chunk loader
//  does not, so files are checked with it first.
static bool
s_parses (const char *path)
{
    if (access (path, F_OK))
        return true;
    zchunk_t *chunk = zchunk_slurp (path, 1 << 20);
    zconfig_t *root = chunk ? zconfig_chunk_load (chunk) : NULL;
    bool ok = root != NULL;
    zconfig_destroy (&root);
    zchunk_destroy (&chunk);
    return ok;
}

//  zcert_load, for files that parse (see s_parses); NULL otherwise.
static zcert_t *
s_zcert_load (const char *path)
{
    char secret [4200];
    snprintf (secret, sizeof secret, "%s_secret", path);
    return s_parses (secret) && s_parses (path) ? zcert_load (path) : NULL;
}

//  Load path's certificate for this process: it must carry a secret key
//  that only its owner can read. NULL with *err set otherwise.
static zcert_t *
s_load_cert (const char *path, char **err)
{
    char *secret = trove_strdupf ("%s_secret", path);
    if (!secret) {
        *err = strdup ("out of memory");
        return NULL;
    }
    zcert_t *cert = NULL;
    struct stat st;
    if (stat (secret, &st))
        *err = trove_strdupf ("curve/cert: cannot read %s: %s (create it with `trovectl curve new %s`)",
                              secret, strerror (errno), path);
    else if (st.st_mode & 077)
        *err = trove_strdupf ("curve/cert: %s is readable by others (mode %04o): it holds a secret "
                              "key; chmod 600 it",
                              secret, (unsigned) (st.st_mode & 07777));
    else if (!(cert = s_zcert_load (path)))
        *err = trove_strdupf ("curve/cert: %s is not a CURVE certificate", secret);
    else if (streq (zcert_secret_txt (cert), S_NO_KEY)) {
        *err = trove_strdupf ("curve/cert: %s holds no secret key", secret);
        zcert_destroy (&cert);
    }
    free (secret);
    return cert;
}

static void
s_key (const char *endpoint, const char *key)
{
    if (endpoint && key)
        zhash_update (s_curve.keys, endpoint, (void *) key);  //  a copy (autofree)
}

//  --- roles -----------------------------------------------------------------

static const char *s_role_names [] = {"any", "daemon", "operator", "producer", "reader"};

const char *
trove_curve_role_name (trove_role_t role)
{
    return (unsigned) role < sizeof s_role_names / sizeof *s_role_names ? s_role_names [role] : "?";
}

trove_role_t
trove_curve_role_of (const char *name)
{
    for (size_t i = 1; name && i < sizeof s_role_names / sizeof *s_role_names; i++)
        if (streq (name, s_role_names [i]))
            return (trove_role_t) i;
    return TROVE_ROLE_ANY;
}

void
trove_curve_peer (zframe_t *frame, trove_peer_t *peer)
{
    assert (peer);
    memset (peer, 0, sizeof *peer);
    if (!s_curve.enabled || !frame)
        return;
    //  Only certificate metadata from zauth carries these names: a peer's
    //  own ZMTP properties must start with "X-" (ZMQ_METADATA).
    const char *role = zframe_meta (frame, "role");
    const char *source = zframe_meta (frame, "source");
    const char *name = zframe_meta (frame, "name");
    if (!role)
        peer->role = TROVE_ROLE_DAEMON;  //  a certificate from before roles
    else if ((peer->role = trove_curve_role_of (role)) == TROVE_ROLE_ANY)
        peer->role = TROVE_ROLE_READER;  //  unknown: the least
    snprintf (peer->source, sizeof peer->source, "%s",
              peer->role == TROVE_ROLE_PRODUCER && source ? source : "");
    snprintf (peer->name, sizeof peer->name, "%s", name ? name : "?");
}

bool
trove_curve_allows (const trove_peer_t *peer, trove_role_t needs)
{
    switch (peer->role) {
        case TROVE_ROLE_ANY:
        case TROVE_ROLE_OPERATOR:
            return true;
        case TROVE_ROLE_DAEMON:
            return needs != TROVE_ROLE_OPERATOR;
        case TROVE_ROLE_PRODUCER:
            return needs == TROVE_ROLE_PRODUCER || needs == TROVE_ROLE_READER;
        case TROVE_ROLE_READER:
            return needs == TROVE_ROLE_READER;
    }
    return false;
}

//  Certificates of the peers folder without a role: they count as daemons.
static void
s_warn_roleless (const char *peers)
{
    zdir_t *dir = zdir_new (peers, NULL);
    if (!dir)
        return;
    zfile_t **files = zdir_flatten (dir);
    for (size_t i = 0; files && files [i]; i++) {
        const char *path = zfile_filename (files [i], NULL);
        if (!zfile_is_regular (files [i]) || !s_parses (path))
            continue;
        zcert_t *cert = zcert_load (path);
        if (cert && !zcert_meta (cert, "role"))
            trove_log ('W',
                       "CURVE: %s has no role: it counts as a daemon (everything but control "
                       "operations); give it role = daemon, operator, producer or reader (docs/security.md)",
                       path);
        zcert_destroy (&cert);
    }
    zdir_flatten_free (&files);
    zdir_destroy (&dir);
}

int
trove_curve_start (const trove_cfg_t *cfg, trove_metrics_t *metrics, bool serve, char **err_p)
{
    return trove_curve_start_as (cfg, trove_cfg_curve (cfg) ? trove_cfg_curve_cert (cfg) : NULL, metrics,
                                 serve, err_p);
}

int
trove_curve_start_as (const trove_cfg_t *cfg, const char *cert_path, trove_metrics_t *metrics, bool serve,
                      char **err_p)
{
    assert (cfg);
    trove_curve_stop ();  //  a second start replaces the first
    char *err = NULL;
    s_curve.metrics = metrics;
    if (!trove_cfg_curve (cfg))
        return 0;
    struct stat st;
    const char *peers = trove_cfg_curve_peers (cfg);
    if (!(s_curve.cert = s_load_cert (cert_path, &err)))
        goto fail;
    if (stat (peers, &st) || !S_ISDIR (st.st_mode)) {
        err = trove_strdupf ("curve/peers: %s is not a folder of public certificates", peers);
        goto fail;
    }
    s_curve.keys = zhash_new ();
    if (!s_curve.keys) {
        err = strdup ("out of memory");
        goto fail;
    }
    zhash_autofree (s_curve.keys);
    s_key (trove_cfg_broker_pub (cfg), trove_cfg_broker_curve_key (cfg));
    s_key (trove_cfg_broker_sub (cfg), trove_cfg_broker_curve_key (cfg));
    s_key (trove_cfg_broker_control (cfg), trove_cfg_broker_curve_key (cfg));
    for (size_t i = 0; i < trove_cfg_ingestors (cfg); i++)
        s_key (trove_cfg_ingestor_endpoint (cfg, i), trove_cfg_ingestor_curve_key (cfg, i));
    for (size_t s = 0; s < trove_cfg_shards (cfg); s++) {
        s_key (trove_cfg_shard_events (cfg, s), trove_cfg_shard_curve_key (cfg, s));
        s_key (trove_cfg_shard_query (cfg, s), trove_cfg_shard_curve_key (cfg, s));
        s_key (trove_cfg_shard_reconcile (cfg, s), trove_cfg_shard_reconcile_key (cfg, s));
    }
    if (trove_cfg_webhooks (cfg))
        s_key (trove_cfg_webhooks (cfg)->control, trove_cfg_webhooks (cfg)->curve_key);
    if (serve) {
        //  Synchronous: the policy is in place before anything binds.
        s_curve.auth = zactor_new (zauth, NULL);
        if (!s_curve.auth || zstr_sendx (s_curve.auth, "CURVE", peers, NULL) || zsock_wait (s_curve.auth)) {
            err = strdup ("cannot start the ZAP handler (zauth)");
            goto fail;
        }
        s_warn_roleless (peers);
    }
    s_curve.enabled = true;
    trove_log (serve ? 'I' : 'D', "CURVE on: certificate %s (public key %s), peers %s", cert_path,
               zcert_public_txt (s_curve.cert), peers);
    return 0;
fail:
    trove_curve_stop ();
    if (err_p)
        *err_p = err;
    else
        free (err);
    return -1;
}

void
trove_curve_stop (void)
{
    zactor_destroy (&s_curve.auth);
    pthread_mutex_lock (&s_curve.watcher_mutex);
    zactor_destroy (&s_curve.watcher);
    pthread_mutex_unlock (&s_curve.watcher_mutex);
    zcert_destroy (&s_curve.cert);
    zhash_destroy (&s_curve.keys);
    s_curve.metrics = NULL;
    s_curve.enabled = false;
}

bool
trove_curve_enabled (void)
{
    return s_curve.enabled;
}

const char *
trove_curve_hint (void)
{
    return s_curve.enabled
             ? " (CURVE is on: a server that does not admit this host's certificate never answers; "
               "its log says 'refused a peer')"
             : "";
}

int
trove_curve_bind (zsock_t *sock, const char *endpoint, bool watch)
{
    assert (sock);
    assert (endpoint);
    if (s_curve.enabled) {
        zsock_set_zap_domain (sock, TROVE_CURVE_DOMAIN);
        zsock_set_curve_server (sock, 1);
        zcert_apply (s_curve.cert, sock);
        if (watch)
            s_watch (sock, endpoint, true);
    }
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        trove_log ('E', "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int
trove_curve_connect (zsock_t *sock, const char *endpoint, bool watch)
{
    assert (sock);
    assert (endpoint);
    if (s_curve.enabled) {
        const char *key = zhash_lookup (s_curve.keys, endpoint);
        if (!key) {
            trove_log ('E', "cannot connect %s: CURVE is on and the config gives no server key for it",
                       endpoint);
            return -1;
        }
        zcert_apply (s_curve.cert, sock);
        zsock_set_curve_serverkey (sock, key);
        if (watch)
            s_watch (sock, endpoint, false);
    }
    if (zsock_connect (sock, "%s", endpoint) == -1) {
        trove_log ('E', "cannot connect %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

char *
trove_curve_keygen (const char *path, const char *name, const char *role, const char *source, char **err_p)
{
    assert (path);
    char *err = NULL;
    char *key = NULL;
    char *secret = trove_strdupf ("%s_secret", path);
    zcert_t *cert = NULL;
    struct stat st;
    trove_role_t r = role ? trove_curve_role_of (role) : TROVE_ROLE_DAEMON;
    if (!secret)
        err = strdup ("out of memory");
    else if (r == TROVE_ROLE_ANY)
        err = trove_strdupf ("role '%s': want daemon, operator, producer or reader", role);
    else if ((r == TROVE_ROLE_PRODUCER) != (source != NULL))
        err =
            strdup (source ? "only a producer has a source" : "a producer needs its source (--source NAME)");
    else if (stat (secret, &st) == 0)
        err = trove_strdupf ("%s exists: not overwriting a secret key (remove it to make a new one)", secret);
    else if (!(cert = zcert_new ()))
        err = strdup ("cannot make a key pair (libzmq without CURVE?)");
    else {
        if (name)
            zcert_set_meta (cert, "name", "%s", name);
        zcert_set_meta (cert, "role", "%s", trove_curve_role_name (r));
        if (source)
            zcert_set_meta (cert, "source", "%s", source);
        //  The secret file is created 0600 before anything is written to it.
        mode_t old = umask (077);
        int rc = zcert_save_secret (cert, secret);
        umask (old);
        if (rc)
            err = trove_strdupf ("cannot write %s: %s", secret, strerror (errno));
        else if (zcert_save_public (cert, path) || chmod (path, 0644))
            err = trove_strdupf ("cannot write %s: %s", path, strerror (errno));
        else if (!(key = strdup (zcert_public_txt (cert))))
            err = strdup ("out of memory");
    }
    zcert_destroy (&cert);
    free (secret);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return key;
}

char *
trove_curve_public_key (const char *path, char **err_p)
{
    assert (path);
    char *key = NULL;
    char *err = NULL;
    //  zcert_load falls back to path + "_secret"; a missing file must not
    //  turn into an all-zero key.
    bool readable = access (path, R_OK) == 0;
    zcert_t *cert = readable ? s_zcert_load (path) : NULL;
    if (!readable)
        err = trove_strdupf ("cannot read %s: %s", path, strerror (errno));
    else if (!cert || streq (zcert_public_txt (cert), S_NO_KEY))
        err = trove_strdupf ("%s is not a CURVE certificate", path);
    else if (!(key = strdup (zcert_public_txt (cert))))
        err = strdup ("out of memory");
    zcert_destroy (&cert);
    if (err_p)
        *err_p = err;
    else
        free (err);
    return key;
}
