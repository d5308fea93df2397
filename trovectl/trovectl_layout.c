/*  trovectl up - the files of a local cluster: its directories, the config
    (the port layout of --port-base, --shards, --ingestors), the demo key of
    source web, the CURVE certificates and the demo hunt. Everything is
    written atomically (temporary file, then rename), mode 0600: the config,
    the keys and the hunts are the cluster owner's only. */
#include "trovectl_up.h"
#include "trove_curve.h"
#include "trove_source.h"
#include "trove_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


//  The demo hunt, exactly etc/rules/demo.yaml.
static const char *s_demo_yaml =
    "# Demo hunt used by `trovectl up` and the tests: every event of a type earns coins.\n"
    "hunt: demo\n"
    "version: 1\n"
    "effective: 2020-01-01T00:00:00Z\n"
    "rules:\n"
    "  - id: checkin\n"
    "    kind: each\n"
    "    match: {type: checkin}\n"
    "    coins: 1\n"
    "  - id: visit\n"
    "    kind: each\n"
    "    match: {type: visit}\n"
    "    coins: 2\n"
    "  - id: purchase\n"
    "    kind: each\n"
    "    match: {type: purchase}\n"
    "    coins: 5\n";


bool
trovectl_layout_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}


//  Write a whole file atomically (temporary file, then rename), 0600: the
//  config and the hunts are the cluster's own. 0 or -1.
int
trovectl_write_file (const char *path, const char *text)
{
    char tmp [PATH_MAX + 16];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *file = fd >= 0 && fchmod (fd, 0600) == 0 ? fdopen (fd, "w") : NULL;
    if (!file) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    bool ok = fputs (text, file) >= 0;
    ok = fflush (file) == 0 && ok;
    ok = fsync (fileno (file)) == 0 && ok;
    ok = fclose (file) == 0 && ok;
    if (!ok || rename (tmp, path)) {
        unlink (tmp);
        return -1;
    }
    return 0;
}


//  Write a secret file atomically, mode 0600 from its creation. 0 or -1.
static int
s_write_secret (const char *path, const char *text)
{
    char tmp [PATH_MAX + 16];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1)
        return -1;
    size_t len = strlen (text);
    bool ok = fchmod (fd, 0600) == 0 && write (fd, text, len) == (ssize_t) len;
    ok = fsync (fd) == 0 && ok;
    ok = close (fd) == 0 && ok;
    if (!ok || rename (tmp, path)) {
        unlink (tmp);
        return -1;
    }
    return 0;
}


//  The config of a new cluster, in the format of etc/trove.cfg; web_hash is
//  the hash of source web's demo key; curve_key the public key of DIR/curve's
//  certificate when CURVE is on, else NULL. Caller frees.
static char *
s_config_text (const char *dir, long base, long shards, long ingestors, const char *sync,
               const char *web_hash, const char *curve_key)
{
    //  One host, one certificate: every process serves and connects with it.
    char broker_line [96] = "", key_line [96] = "", reconcile_line [96] = "";
    if (curve_key) {
        snprintf (broker_line, sizeof broker_line, "    curve_key = \"%s\"\n", curve_key);
        snprintf (key_line, sizeof key_line, "        curve_key = \"%s\"\n", curve_key);
        snprintf (reconcile_line, sizeof reconcile_line, "        reconcile_key = \"%s\"\n", curve_key);
    }
    //  Every section may name dir twice.
    size_t size = 8192 + (size_t) (shards + ingestors + 2) * (512 + 2 * strlen (dir));
    char *text = malloc (size);
    if (!text)
        return NULL;
    size_t used = 0;
#define S_ADD(...) used += (size_t) snprintf (text + used, size - used, __VA_ARGS__)
    S_ADD ("#   Trove cluster configuration (ZPL: ZeroMQ Property Language, indent 4 spaces).\n"
           "#   Written by `trovectl up`; every process of the cluster reads this file: the\n"
           "#   shard map and the endpoints below are the single source of truth. See\n"
           "#   etc/trove.cfg for what each knob means.\n"
           "trove\n"
           "    #   Number of partitions; fixed when the cluster is created.\n"
           "    partitions = 256\n"
           "    #   Directory of hunt files (*.yaml), one per hunt.\n"
           "    rules = \"%s/rules\"\n"
           "    #   LMDB map size per scorer, MiB.\n"
           "    map_size_mb = 4096\n"
           "    #   full: fsync every commit (survives process kill, OS crash, power loss).\n"
           "    #   none: no fsync (survives a process kill only).\n"
           "    sync = %s\n"
           "%s"
           "\n"
           "limits\n"
           "    #   Events per submit request; frame size limit (bytes) on every socket.\n"
           "    max_batch = 1000\n"
           "    max_frame = 1048576\n"
           "    max_attrs = 32\n"
           "    #   How far ts may be before / after the receiving ingestor's clock (seconds).\n"
           "    max_past_s = 31622400\n"
           "    max_future_s = 300\n"
           "\n"
           "#   Sources allowed to submit events. HTTP (POST /v1/events, the GET query\n"
           "#   API) needs a key of a source: the config holds only its hash\n"
           "#   (docs/security.md, trove-ingestor --new-key).\n"
           "sources\n"
           "    web\n"
           "        #   the demo key is in web.key, next to this file; after its hash, what\n"
           "        #   it may do (scopes, docs/security.md)\n"
           "        keys = \"%s=events:write+users:read+boards:read\"\n"
           "    mobile\n"
           "    game\n"
           "    partner\n"
           "    load\n"
           "\n"
           "broker\n"
           "    #   Scorers publish awards and heartbeats to `pub` (XSUB);\n"
           "    #   subscribers connect to `sub` (XPUB); `control` answers status.\n"
           "    pub = \"tcp://127.0.0.1:%ld\"\n"
           "    sub = \"tcp://127.0.0.1:%ld\"\n"
           "    control = \"tcp://127.0.0.1:%ld\"\n"
           "    #   Prometheus /metrics of each process (plain HTTP, loopback).\n"
           "    metrics = \"127.0.0.1:%ld\"\n"
           "%s"
           "\n"
           "ingestor\n",
           dir, sync,
           curve_key ? "    #   CURVE on every ZeroMQ link (docs/security.md); certificates in curve/\n"
                       "    curve = yes\n"
                       "\n"
                       "curve\n"
                       "    cert = \"curve/host.cert\"\n"
                       "    peers = \"curve/peers\"\n"
                       "    #   trovectl presents this one: role operator (control operations)\n"
                       "    operator = \"curve/operator.cert\"\n"
                     : "",
           web_hash, base + 1, base + 2, base + 3, base + 200, broker_line);
    for (long k = 0; k < ingestors; k++)
        S_ADD ("    i%ld\n"
               "        endpoint = \"tcp://127.0.0.1:%ld\"\n"
               "        metrics = \"127.0.0.1:%ld\"\n"
               "        #   HTTP: POST /v1/events and the GET query API (source keys)\n"
               "        http = \"127.0.0.1:%ld\"\n"
               "%s",
               k, base + 10 + k, base + 210 + k, base + 250 + k, key_line);
    S_ADD ("\nscorer\n");
    for (long k = 0; k < shards; k++)
        S_ADD ("    s%ld\n"
               "        events = \"tcp://127.0.0.1:%ld\"\n"
               "        query = \"tcp://127.0.0.1:%ld\"\n"
               "        partitions = \"%ld-%ld\"\n"
               "        data = \"%s/data/s%ld\"\n"
               "        metrics = \"127.0.0.1:%ld\"\n"
               "        #   its reconciler (trove-reconciler --shard s%ld)\n"
               "        replica = \"%s/data/r%ld\"\n"
               "        reconcile = \"tcp://127.0.0.1:%ld\"\n"
               "        reconcile_every_s = 60\n"
               "%s%s",
               k, base + 20 + 2 * k, base + 21 + 2 * k, k * 256 / shards, (k + 1) * 256 / shards - 1, dir, k,
               base + 230 + k, k, dir, k, base + 60 + k, key_line, reconcile_line);
#undef S_ADD
    return text;
}


//  A new certificate DIR/curve/NAME.cert (+ _secret) of role, admitted in
//  DIR/curve/peers. Returns its public key (caller frees), or NULL after
//  printing the error.
static char *
s_curve_cert (const char *dir, const char *name, const char *role)
{
    char folder [PATH_MAX], cert [PATH_MAX + 32], peer [PATH_MAX + 32];
    snprintf (folder, sizeof folder, "%s/curve/peers", dir);
    if (trove_mkdir_p (folder, 0700)) {
        trovectl_fail ("cannot create %s: %s", folder, strerror (errno));
        return NULL;
    }
    snprintf (cert, sizeof cert, "%s/curve/%s.cert", dir, name);
    snprintf (peer, sizeof peer, "%s/curve/peers/%s.cert", dir, name);
    char *err = NULL;
    char *key = trove_curve_keygen (cert, name, role, NULL, &err);
    FILE *in = key ? fopen (cert, "r") : NULL;
    char text [4096];
    size_t size = in ? fread (text, 1, sizeof text - 1, in) : 0;
    if (in)
        fclose (in);
    text [size] = 0;
    if (key && (size == 0 || trovectl_write_file (peer, text))) {
        err = trove_strdupf ("cannot copy %s to %s", cert, peer);
        free (key);
        key = NULL;
    }
    if (!key)
        trovectl_fail ("up (CURVE): %s", err ? err : "out of memory");
    free (err);
    return key;
}


//  The certificates of a local cluster: the host's (every daemon, role
//  daemon) and the operator's (trovectl). Returns the host's public key
//  (caller frees), or NULL after printing the error.
static char *
s_curve_certs (const char *dir)
{
    char *op = s_curve_cert (dir, "operator", "operator");
    if (!op)
        return NULL;
    free (op);
    return s_curve_cert (dir, "host", "daemon");
}


//  DIR/web.key, the demo key of source web, into path; false when absent.
bool
trovectl_layout_key_file (const char *dir, char *path, size_t size)
{
    snprintf (path, size, "%s/web.key", dir);
    return trovectl_layout_exists (path);
}

int
trovectl_layout_dirs (const char *dir, char *absolute)
{
    char path [PATH_MAX];
    if (trove_mkdir_p (dir, 0700) || !realpath (dir, path)) {
        trovectl_fail ("cannot create %s: %s", dir, strerror (errno));
        return -1;
    }
    if (strlen (path) >= TROVECTL_DIR_MAX) {
        trovectl_fail ("directory name too long: %s", path);
        return -1;
    }
    memcpy (absolute, path, strlen (path) + 1);
    const char *subdirs [] = {"logs", "pids", "rules", "data"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs [0]; i++) {
        snprintf (path, sizeof path, "%s/%s", absolute, subdirs [i]);
        //  Logs, pids, hunts and ledgers are the cluster owner's only, also
        //  when an older trovectl made them 0755.
        if (trove_mkdir_p (path, 0700) || chmod (path, 0700)) {
            trovectl_fail ("cannot create %s: %s", path, strerror (errno));
            return -1;
        }
    }
    return 0;
}

int
trovectl_layout_new (const char *dir, const char *cfgpath, long base, long shards, long ingestors,
                     const char *sync, bool insecure)
{
    //  A new cluster: a new demo key for source web, the config gets its hash.
    char key [80], hash [TROVE_SOURCE_HASH_SIZE], keyfile [PATH_MAX], line [96];
    trove_source_key_new (key);
    trove_source_key_hash (key, strlen (key), hash);
    snprintf (line, sizeof line, "%s\n", key);
    trovectl_layout_key_file (dir, keyfile, sizeof keyfile);
    bool written = s_write_secret (keyfile, line) == 0;
    explicit_bzero (key, sizeof key);
    explicit_bzero (line, sizeof line);
    if (!written) {
        trovectl_fail ("cannot write %s: %s", keyfile, strerror (errno));
        return -1;
    }
    char *curve_key = NULL;
    if (!insecure && !(curve_key = s_curve_certs (dir)))
        return -1;
    char *text = s_config_text (dir, base, shards, ingestors, sync, hash, curve_key);
    free (curve_key);
    if (!text || trovectl_write_file (cfgpath, text)) {
        free (text);
        trovectl_fail ("cannot write %s: %s", cfgpath, strerror (errno));
        return -1;
    }
    free (text);
    return 0;
}

int
trovectl_layout_demo_rules (const char *dir)
{
    char rules [PATH_MAX + 32];
    snprintf (rules, sizeof rules, "%s/rules/demo.yaml", dir);
    if (!trovectl_layout_exists (rules) && trovectl_write_file (rules, s_demo_yaml)) {
        trovectl_fail ("cannot write %s: %s", rules, strerror (errno));
        return -1;
    }
    return 0;
}
