/*  test_trove_curve - lib/net/trove_curve with real sockets on loopback TCP
    (ports 16000-16999, chosen from the pid) and real certificate files:

    - certificates: modes, no overwrite, public key read back, bad files;
    - config: CURVE on needs every server key, well formed;
    - start refuses a missing, world-readable or secret-less certificate and
      a missing peers folder;
    - an admitted client talks to a CURVE server; a client with an unknown
      key, a plain client and a client with the wrong server key are refused,
      deliver nothing, and each refusal is counted under its reason;
    - with CURVE on, the hardening check accepts ZeroMQ endpoints on any
      address but still refuses an exposed /metrics.

    Waits for a counter are bounded (5 s); nothing sleeps and hopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "trove_cfg.h"
#include "trove_curve.h"
#include "trove_harden.h"
#include "trove_metrics.h"
#include "trove_util.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir [256];  //  temp dir: certificates, configs
static int s_base;        //  first of our ports
static char s_server_ep [64];
static char s_key [41];  //  public key of the host certificate

static char *
s_path (const char *name)
{
    static char path [4][512];
    static int next = 0;
    char *out = path [next++ % 4];
    snprintf (out, 512, "%s/%s", s_dir, name);
    return out;
}

//  A config with CURVE on whose every server key is `key` (NULL: none
//  given), the certificate `cert`, the peers folder `peers`; `curve` is the
//  value of trove/curve (NULL: yes). Returns its path.
static const char *
s_write_cfg (const char *name, const char *cert, const char *peers, const char *key, const char *curve)
{
    char *path = s_path (name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    char key_line [80] = "";
    if (key)
        snprintf (key_line, sizeof key_line, "curve_key = \"%s\"", key);
    fprintf (f,
             "trove\n    curve = %s\n"
             "curve\n    cert = \"%s\"\n    peers = \"%s\"\n"
             "broker\n    pub = \"tcp://127.0.0.1:%d\"\n    sub = \"tcp://127.0.0.1:%d\"\n"
             "    control = \"tcp://127.0.0.1:%d\"\n    metrics = \"0.0.0.0:%d\"\n    %s\n"
             "scorer\n    s0\n        events = \"%s\"\n        query = \"tcp://0.0.0.0:%d\"\n"
             "        partitions = \"0-255\"\n        data = \"data\"\n        %s\n",
             curve ? curve : "yes", cert, peers, s_base + 1, s_base + 2, s_base + 3, s_base + 4, key_line,
             s_server_ep, s_base + 5, key_line);
    fclose (f);
    return path;
}

static int
s_setup (void **state)
{
    (void) state;
    s_base = 16000 + (int) (getpid () % 100) * 10;
    snprintf (s_server_ep, sizeof s_server_ep, "tcp://127.0.0.1:%d", s_base);
    snprintf (s_dir, sizeof s_dir, "/tmp/trove-test-curve-XXXXXX");
    if (!mkdtemp (s_dir))
        return -1;
    if (mkdir (s_path ("peers"), 0700) || mkdir (s_path ("nopeers"), 0700))
        return -1;
    char *key = trove_curve_keygen (s_path ("host.cert"), "host", NULL, NULL, NULL);
    if (!key)
        return -1;
    snprintf (s_key, sizeof s_key, "%s", key);
    free (key);
    //  The peers folder admits the host's own certificate only.
    char command [1200];
    snprintf (command, sizeof command, "cp %s %s", s_path ("host.cert"), s_path ("peers/host.cert"));
    return system (command) == 0 ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    char command [300];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    return system (command) == 0 ? 0 : -1;
}

static void
test_keygen (void **state)
{
    (void) state;
    struct stat st;
    assert_int_equal (stat (s_path ("host.cert"), &st), 0);
    assert_int_equal (st.st_mode & 0777, 0644);
    assert_int_equal (stat (s_path ("host.cert_secret"), &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    //  The public key reads back from either file.
    char *key = trove_curve_public_key (s_path ("host.cert"), NULL);
    assert_string_equal (key, s_key);
    free (key);
    key = trove_curve_public_key (s_path ("host.cert_secret"), NULL);
    assert_string_equal (key, s_key);
    free (key);
    //  Never overwrites a secret.
    char *err = NULL;
    assert_null (trove_curve_keygen (s_path ("host.cert"), "again", NULL, NULL, &err));
    assert_non_null (strstr (err, "exists"));
    free (err);
    key = trove_curve_public_key (s_path ("host.cert"), NULL);
    assert_string_equal (key, s_key);
    free (key);
    //  Missing and bogus files are errors, never an all-zero key.
    assert_null (trove_curve_public_key (s_path ("missing.cert"), &err));
    assert_non_null (strstr (err, "cannot read"));
    free (err);
    FILE *f = fopen (s_path ("bogus.cert"), "w");
    fputs ("this is not a certificate\n", f);
    fclose (f);
    assert_null (trove_curve_public_key (s_path ("bogus.cert"), &err));
    assert_non_null (err);
    free (err);
}

static void
test_cfg_needs_keys (void **state)
{
    (void) state;
    char *err = NULL;
    //  No server keys at all.
    const char *path = s_write_cfg ("nokey.cfg", "host.cert", "peers", NULL, NULL);
    assert_null (trove_cfg_load (path, &err));
    assert_non_null (strstr (err, "missing 'curve_key'"));
    free (err);
    //  A key that is not Z85 / not 40 characters.
    path = s_write_cfg ("badkey.cfg", "host.cert", "peers", "tooshort", NULL);
    assert_null (trove_cfg_load (path, &err));
    assert_non_null (strstr (err, "is not a CURVE public key"));
    free (err);
    //  A bad switch.
    path = s_write_cfg ("badswitch.cfg", "host.cert", "peers", s_key, "maybe");
    assert_null (trove_cfg_load (path, &err));
    assert_non_null (strstr (err, "want yes or no"));
    free (err);
    //  Good: paths resolve against the config's folder.
    path = s_write_cfg ("good.cfg", "host.cert", "peers", s_key, NULL);
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    assert_non_null (cfg);
    assert_true (trove_cfg_curve (cfg));
    assert_string_equal (trove_cfg_curve_cert (cfg), s_path ("host.cert"));
    assert_string_equal (trove_cfg_curve_peers (cfg), s_path ("peers"));
    assert_string_equal (trove_cfg_broker_curve_key (cfg), s_key);
    assert_string_equal (trove_cfg_shard_curve_key (cfg, 0), s_key);
    trove_cfg_destroy (&cfg);
}

static void
s_expect_start_error (const char *cert, const char *peers, const char *needle)
{
    const char *path = s_write_cfg ("start.cfg", cert, peers, s_key, NULL);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    assert_non_null (cfg);
    assert_int_equal (trove_curve_start (cfg, NULL, true, &err), -1);
    assert_non_null (err);
    if (!strstr (err, needle))
        fail_msg ("error '%s' does not say '%s'", err, needle);
    free (err);
    assert_false (trove_curve_enabled ());
    trove_cfg_destroy (&cfg);
}

static void
test_start_refusals (void **state)
{
    (void) state;
    s_expect_start_error ("absent.cert", "peers", "cannot read");
    //  A secret anyone can read is refused, not used.
    char *key = trove_curve_keygen (s_path ("open.cert"), NULL, NULL, NULL, NULL);
    free (key);
    assert_int_equal (chmod (s_path ("open.cert_secret"), 0644), 0);
    s_expect_start_error ("open.cert", "peers", "chmod 600");
    //  A public certificate alone cannot authenticate.
    char command [1200];
    snprintf (command, sizeof command, "cp %s %s && chmod 600 %s", s_path ("host.cert"),
              s_path ("public-only.cert_secret"), s_path ("public-only.cert_secret"));
    assert_int_equal (system (command), 0);
    s_expect_start_error ("public-only.cert", "peers", "holds no secret key");
    s_expect_start_error ("host.cert", "no-such-folder", "not a folder");
}

//  Wait (up to 5 s) until the counter family{endpoint=server, reason}
//  reaches want; its final value.
static uint64_t
s_wait_family (trove_metrics_t *metrics, const char *family, const char *help, const char *reason,
               uint64_t want)
{
    const char *names [] = {"endpoint", "reason", NULL};
    const char *values [] = {s_server_ep, reason, NULL};
    trove_counter_t *counter = trove_metrics_counter (metrics, family, help, names, values);
    assert_non_null (counter);
    int64_t deadline = trove_mono_us () + 5000000;
    while (trove_counter_value (counter) < want && trove_mono_us () < deadline)
        zclock_sleep (10);
    return trove_counter_value (counter);
}

static uint64_t
s_wait_count (trove_metrics_t *metrics, const char *reason, uint64_t want)
{
    return s_wait_family (metrics, "trove_curve_refused_total",
                          "CURVE peers refused by this process's servers, by endpoint and reason.", reason,
                          want);
}

//  A DEALER with cert (NULL: plain) that expects server_key, connected to
//  the test server; it sends "hello".
static zsock_t *
s_client (zcert_t *cert, const char *server_key)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    assert_non_null (sock);
    zsock_set_linger (sock, 0);
    if (cert) {
        zcert_apply (cert, sock);
        zsock_set_curve_serverkey (sock, server_key);
    }
    assert_int_equal (zsock_connect (sock, "%s", s_server_ep), 0);
    zstr_send (sock, "hello");
    return sock;
}

//  The next message the server receives (within 5 s) has body text.
static void
s_expect (zpoller_t *poller, zsock_t *server, const char *text)
{
    assert_ptr_equal (zpoller_wait (poller, 5000), server);
    zmsg_t *msg = zmsg_recv (server);
    assert_int_equal (zmsg_size (msg), 2);
    char *body = zframe_strdup (zmsg_last (msg));
    assert_string_equal (body, text);
    free (body);
    zmsg_destroy (&msg);
}

static void
test_refusals (void **state)
{
    (void) state;
    const char *path = s_write_cfg ("good.cfg", "host.cert", "peers", s_key, NULL);
    char *err = NULL;
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    assert_non_null (cfg);
    trove_metrics_t *metrics = trove_metrics_new ();
    assert_non_null (metrics);
    assert_int_equal (trove_curve_start (cfg, metrics, true, &err), 0);
    assert_true (trove_curve_enabled ());

    zsock_t *server = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (server, 0);
    assert_int_equal (trove_curve_bind (server, s_server_ep, true), 0);
    zpoller_t *poller = zpoller_new (server, NULL);

    //  Admitted: the client connects the Trove way (config key, host cert).
    zsock_t *good = zsock_new (ZMQ_DEALER);
    zsock_set_linger (good, 0);
    assert_int_equal (trove_curve_connect (good, s_server_ep, false), 0);
    zstr_send (good, "admitted");
    s_expect (poller, server, "admitted");

    //  An endpoint the config has no key for is refused before connecting.
    zsock_t *stray = zsock_new (ZMQ_DEALER);
    assert_int_equal (trove_curve_connect (stray, "tcp://127.0.0.1:1", false), -1);
    zsock_destroy (&stray);

    //  Unknown key, no CURVE, wrong server key: each refused and counted,
    //  nothing delivered.
    zcert_t *stranger = zcert_new ();
    zcert_t *other_server = zcert_new ();
    //  (A refused client reconnects and is refused again: at least one each.)
    zsock_t *unknown = s_client (stranger, s_key);
    assert_true (s_wait_count (metrics, "unknown_key", 1) >= 1);
    zsock_destroy (&unknown);
    zsock_t *plain = s_client (NULL, NULL);
    //  The server sees the wrong mechanism, or the plain client hanging up
    //  first on seeing CURVE: not_curve or other, whichever side is faster.
    int64_t deadline = trove_mono_us () + 5000000;
    while (s_wait_count (metrics, "not_curve", 0) + s_wait_count (metrics, "other", 0) == 0
           && trove_mono_us () < deadline)
        zclock_sleep (10);
    assert_true (s_wait_count (metrics, "not_curve", 0) + s_wait_count (metrics, "other", 0) >= 1);
    zsock_destroy (&plain);
    zsock_t *wrong = s_client (stranger, zcert_public_txt (other_server));
    assert_true (s_wait_count (metrics, "bad_key", 1) >= 1);
    zsock_destroy (&wrong);
    //  The admitted client still works, and its message is the only one.
    zstr_send (good, "still");
    s_expect (poller, server, "still");
    assert_null (zpoller_wait (poller, 200));

    //  A peer added to the folder is admitted without a restart.
    zcert_save_public (stranger, s_path ("peers/stranger.cert"));
    zsock_t *admitted = s_client (stranger, s_key);
    s_expect (poller, server, "hello");
    //  Our own client, watched, once the server stops admitting this host:
    //  counted as a server rejecting us (and refused on the server side).
    assert_int_equal (unlink (s_path ("peers/host.cert")), 0);
    zsock_t *shut_out = zsock_new (ZMQ_DEALER);
    zsock_set_linger (shut_out, 0);
    assert_int_equal (trove_curve_connect (shut_out, s_server_ep, true), 0);
    zstr_send (shut_out, "shut out");
    assert_true (
        s_wait_family (metrics, "trove_curve_rejected_total",
                       "CURVE handshakes servers refused to this process's clients, by endpoint and reason.",
                       "unknown_key", 1)
        >= 1);
    assert_null (zpoller_wait (poller, 200));
    zsock_destroy (&shut_out);
    char command [1200];
    snprintf (command, sizeof command, "cp %s %s", s_path ("host.cert"), s_path ("peers/host.cert"));
    assert_int_equal (system (command), 0);
    //  The counters are on /metrics.
    char *text = trove_metrics_render (metrics);
    assert_non_null (strstr (text, "trove_curve_refused_total{endpoint=\""));
    assert_non_null (strstr (text, "reason=\"unknown_key\"}"));
    free (text);

    zsock_destroy (&admitted);
    zsock_destroy (&good);
    zpoller_destroy (&poller);
    zsock_destroy (&server);
    zcert_destroy (&stranger);
    zcert_destroy (&other_server);
    trove_curve_stop ();
    assert_false (trove_curve_enabled ());
    trove_metrics_destroy (&metrics);
    trove_cfg_destroy (&cfg);
}

//  Roles come from the server's copy of each client's certificate: every
//  message of a peer carries them (trove_curve_peer), and
//  trove_curve_allows grants by them.
static void
test_roles (void **state)
{
    (void) state;
    char *err = NULL;
    //  Bad roles and sources are refused at key generation.
    assert_null (trove_curve_keygen (s_path ("x.cert"), "x", "king", NULL, &err));
    assert_non_null (strstr (err, "want daemon, operator, producer or reader"));
    free (err);
    assert_null (trove_curve_keygen (s_path ("x.cert"), "x", "producer", NULL, &err));
    assert_non_null (strstr (err, "needs its source"));
    free (err);
    assert_null (trove_curve_keygen (s_path ("x.cert"), "x", "reader", "web", &err));
    assert_non_null (strstr (err, "only a producer"));
    free (err);
    struct {
        const char *name, *role, *source;
        trove_role_t want;
    } peers [] = {
        {"op", "operator", NULL, TROVE_ROLE_OPERATOR},
        {"prod", "producer", "web", TROVE_ROLE_PRODUCER},
        {"read", "reader", NULL, TROVE_ROLE_READER},
        {"dmn", "daemon", NULL, TROVE_ROLE_DAEMON},
    };
    char command [1200];
    for (size_t i = 0; i < 4; i++) {
        char file [64];
        snprintf (file, sizeof file, "%s.cert", peers [i].name);
        char *key =
            trove_curve_keygen (s_path (file), peers [i].name, peers [i].role, peers [i].source, &err);
        assert_non_null (key);
        free (key);
        snprintf (command, sizeof command, "cp %s %s/peers/", s_path (file), s_dir);
        assert_int_equal (system (command), 0);
    }
    const char *path = s_write_cfg ("roles.cfg", "host.cert", "peers", s_key, NULL);
    trove_cfg_t *cfg = trove_cfg_load (path, &err);
    assert_non_null (cfg);
    assert_int_equal (trove_curve_start (cfg, NULL, true, &err), 0);
    zsock_t *server = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (server, 0);
    assert_int_equal (trove_curve_bind (server, s_server_ep, false), 0);
    zpoller_t *poller = zpoller_new (server, NULL);
    //  The host certificate (made before roles: no role) counts as daemon.
    const char *names [] = {"op", "prod", "read", "dmn", "host"};
    trove_role_t want [] = {TROVE_ROLE_OPERATOR, TROVE_ROLE_PRODUCER, TROVE_ROLE_READER, TROVE_ROLE_DAEMON,
                            TROVE_ROLE_DAEMON};
    for (size_t i = 0; i < 5; i++) {
        char file [64];
        snprintf (file, sizeof file, "%s.cert", names [i]);
        zcert_t *cert = zcert_load (s_path (file));
        assert_non_null (cert);
        zsock_t *client = s_client (cert, s_key);
        assert_ptr_equal (zpoller_wait (poller, 5000), server);
        zframe_t *rid = zframe_recv (server);
        zframe_t *body = zframe_recv (server);
        assert_non_null (body);
        trove_peer_t peer;
        trove_curve_peer (body, &peer);
        if (peer.role != want [i])
            fail_msg ("certificate %s: role %s, want %s", names [i], trove_curve_role_name (peer.role),
                      trove_curve_role_name (want [i]));
        assert_string_equal (peer.source, i == 1 ? "web" : "");
        assert_string_equal (peer.name, names [i]);
        zframe_destroy (&rid);
        zframe_destroy (&body);
        zsock_destroy (&client);
        zcert_destroy (&cert);
    }
    //  What each role may do.
    trove_peer_t p = {.role = TROVE_ROLE_READER};
    assert_true (trove_curve_allows (&p, TROVE_ROLE_READER));
    assert_false (trove_curve_allows (&p, TROVE_ROLE_PRODUCER));
    assert_false (trove_curve_allows (&p, TROVE_ROLE_DAEMON));
    p.role = TROVE_ROLE_PRODUCER;
    assert_true (trove_curve_allows (&p, TROVE_ROLE_PRODUCER));
    assert_false (trove_curve_allows (&p, TROVE_ROLE_DAEMON));
    assert_false (trove_curve_allows (&p, TROVE_ROLE_OPERATOR));
    p.role = TROVE_ROLE_DAEMON;
    assert_true (trove_curve_allows (&p, TROVE_ROLE_DAEMON));
    assert_false (trove_curve_allows (&p, TROVE_ROLE_OPERATOR));
    p.role = TROVE_ROLE_OPERATOR;
    assert_true (trove_curve_allows (&p, TROVE_ROLE_OPERATOR));
    p.role = TROVE_ROLE_ANY;  //  CURVE off
    assert_true (trove_curve_allows (&p, TROVE_ROLE_OPERATOR));
    zpoller_destroy (&poller);
    zsock_destroy (&server);
    trove_curve_stop ();
    //  CURVE off: no identity.
    trove_curve_peer (NULL, &p);
    assert_int_equal (p.role, TROVE_ROLE_ANY);
    trove_cfg_destroy (&cfg);
    //  Back to a folder that admits the host only, for the other tests.
    snprintf (command, sizeof command,
              "rm -f %s/peers/op.cert %s/peers/prod.cert %s/peers/read.cert %s/peers/dmn.cert", s_dir, s_dir,
              s_dir, s_dir);
    assert_int_equal (system (command), 0);
}

static void
test_harden (void **state)
{
    (void) state;
    //  good.cfg: scorer query on 0.0.0.0 (CURVE: fine), broker metrics on
    //  0.0.0.0 (plain HTTP: still refused).
    const char *path = s_write_cfg ("good.cfg", "host.cert", "peers", s_key, NULL);
    trove_cfg_t *cfg = trove_cfg_load (path, NULL);
    assert_non_null (cfg);
    char *err = NULL;
    assert_int_equal (trove_harden_check (cfg, "scorer", "s0", &err), 0);
    assert_int_equal (trove_harden_check (cfg, "broker", NULL, &err), -1);
    assert_non_null (strstr (err, "metrics"));
    free (err);
    trove_cfg_destroy (&cfg);
}

int
main (void)
{
    trove_log_init ("test_trove_curve");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_keygen),         cmocka_unit_test (test_cfg_needs_keys),
        cmocka_unit_test (test_start_refusals), cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_roles),          cmocka_unit_test (test_harden),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
