/*  trove_http_tls - HTTPS for the HTTP server: the certificate and key,
    checked when read, handed to libmicrohttpd (GnuTLS) per handshake by a
    callback, so that a reload (SIGHUP) serves new connections the new pair
    without a restart. Connections already open keep the pair they shook
    hands with: every pair read stays alive until the process ends (reloads
    are rare; a few KiB each).

    GnuTLS's certificate callback carries no argument of ours, so the
    current pair is the process's: one HTTPS listener per process (a second
    is refused at start). */
#include "trove_http_internal.h"
#include "trove_util.h"

#include <assert.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CHAIN 16  //  certificates in one chain file

struct _http_tls_pair_t {
    struct _http_tls_pair_t *older;  //  pairs read before this one, kept alive
    gnutls_pcert_st chain [S_MAX_CHAIN];
    unsigned nchain;
    gnutls_privkey_t key;
};

//  The pair new handshakes get, and who serves it.
static pthread_mutex_t s_mutex = PTHREAD_MUTEX_INITIALIZER;
static http_tls_pair_t *s_current;
static const trove_http_t *s_owner;

static void
s_pair_free (http_tls_pair_t *pair)
{
    while (pair) {
        http_tls_pair_t *older = pair->older;
        for (unsigned i = 0; i < pair->nchain; i++)
            gnutls_pcert_deinit (&pair->chain [i]);
        if (pair->key)
            gnutls_privkey_deinit (pair->key);
        free (pair);
        pair = older;
    }
}

//  Read and check a pair: both files PEM, the key the certificate's.
//  NULL with a message in *err_p.
static http_tls_pair_t *
s_pair_read (const char *cert_path, const char *key_path, char **err_p)
{
    char *message = NULL;
    size_t cert_size = 0, key_size = 0;
    char *cert = trove_read_file (cert_path, &cert_size);
    char *key = trove_read_file (key_path, &key_size);
    http_tls_pair_t *pair = calloc (1, sizeof *pair);
    gnutls_certificate_credentials_t check = NULL;
    if (!cert || !key || !pair) {
        message = !pair ? strdup ("out of memory")
                : !cert ? trove_strdupf ("tls: cannot read the certificate %s", cert_path)
                        : trove_strdupf ("tls: cannot read the key %s", key_path);
        goto fail;
    }
    gnutls_datum_t cert_datum = {(unsigned char *) cert, (unsigned) cert_size};
    gnutls_datum_t key_datum = {(unsigned char *) key, (unsigned) key_size};
    //  The credentials object is only the checker: it refuses a key that
    //  is not the certificate's (a reload must not break every handshake).
    int rc = gnutls_certificate_allocate_credentials (&check);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_certificate_set_x509_key_mem2 (check, &cert_datum, &key_datum, GNUTLS_X509_FMT_PEM, NULL,
                                                   0);
    if (rc < 0) {
        message = trove_strdupf ("tls: %s with %s: %s", cert_path, key_path, gnutls_strerror (rc));
        goto fail;
    }
    pair->nchain = S_MAX_CHAIN;
    rc = gnutls_pcert_list_import_x509_raw (pair->chain, &pair->nchain, &cert_datum, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        pair->nchain = 0;
        message = trove_strdupf ("tls: the certificate %s: %s", cert_path, gnutls_strerror (rc));
        goto fail;
    }
    rc = gnutls_privkey_init (&pair->key);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_privkey_import_x509_raw (pair->key, &key_datum, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        message = trove_strdupf ("tls: the key %s: %s", key_path, gnutls_strerror (rc));
        goto fail;
    }
    gnutls_certificate_free_credentials (check);
    //  The key stays in our memory only (GnuTLS holds its own copy).
    explicit_bzero (key, key_size);
    free (key);
    free (cert);
    return pair;
fail:
    if (check)
        gnutls_certificate_free_credentials (check);
    if (key)
        explicit_bzero (key, key_size);
    free (key);
    free (cert);
    s_pair_free (pair);
    if (err_p)
        *err_p = message;
    else
        free (message);
    return NULL;
}

//  GnuTLS asks for the server's certificate at each handshake.
static int
s_retrieve (gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
            const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
            unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void) session, (void) req_ca_dn, (void) nreqs, (void) pk_algos, (void) pk_algos_length;
    pthread_mutex_lock (&s_mutex);
    http_tls_pair_t *pair = s_current;
    pthread_mutex_unlock (&s_mutex);
    if (!pair)
        return -1;  //  the handshake fails
    *pcert = pair->chain;
    *pcert_length = pair->nchain;
    *pkey = pair->key;
    return 0;
}

int
trove_http_set_tls (trove_http_t *self, const char *cert_path, const char *key_path, const char *priorities,
                    char **err_p)
{
    assert (self);
    assert (cert_path);
    assert (key_path);
    if (self->daemon) {
        if (err_p)
            *err_p = strdup ("tls: set before the server starts");
        return -1;
    }
    if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES
        || MHD_is_feature_supported (MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        if (err_p)
            *err_p = strdup ("tls: this libmicrohttpd was built without TLS");
        return -1;
    }
    http_tls_pair_t *pair = s_pair_read (cert_path, key_path, err_p);
    if (!pair)
        return -1;
    char *prio = strdup (priorities ? priorities : TROVE_HTTP_TLS_PRIORITIES);
    if (!prio) {
        s_pair_free (pair);
        if (err_p)
            *err_p = strdup ("out of memory");
        return -1;
    }
    //  Checked here, not at the first handshake.
    gnutls_priority_t cache;
    const char *where = NULL;
    int rc = gnutls_priority_init (&cache, prio, &where);
    if (rc < 0) {
        if (err_p)
            *err_p = trove_strdupf ("tls: priorities '%s' at '%s': %s", prio, where ? where : "",
                                    gnutls_strerror (rc));
        free (prio);
        s_pair_free (pair);
        return -1;
    }
    gnutls_priority_deinit (cache);
    s_pair_free (self->tls_pair);
    free (self->tls_priorities);
    self->tls_pair = pair;
    self->tls_priorities = prio;
    return 0;
}

int
trove_http_reload_tls (trove_http_t *self, const char *cert_path, const char *key_path, char **err_p)
{
    assert (self);
    if (!self->tls_pair) {
        if (err_p)
            *err_p = strdup ("tls: this server does not serve HTTPS (a restart turns it on)");
        return -1;
    }
    http_tls_pair_t *pair = s_pair_read (cert_path, key_path, err_p);
    if (!pair)
        return -1;
    pthread_mutex_lock (&s_mutex);
    pair->older = self->tls_pair;
    self->tls_pair = pair;
    if (s_owner == self)
        s_current = pair;
    pthread_mutex_unlock (&s_mutex);
    return 0;
}

bool
trove_http_tls (const trove_http_t *self)
{
    assert (self);
    return self->tls_pair != NULL;
}

void *
http_tls_callback (void)
{
    return (void *) s_retrieve;
}

int
http_tls_claim (trove_http_t *self)
{
    pthread_mutex_lock (&s_mutex);
    bool taken = s_owner && s_owner != self;
    if (!taken) {
        s_owner = self;
        s_current = self->tls_pair;
    }
    pthread_mutex_unlock (&s_mutex);
    return taken ? -1 : 0;
}

void
http_tls_release (trove_http_t *self)
{
    pthread_mutex_lock (&s_mutex);
    if (s_owner == self) {
        s_owner = NULL;
        s_current = NULL;
    }
    pthread_mutex_unlock (&s_mutex);
}

void
http_tls_free (trove_http_t *self)
{
    http_tls_release (self);
    s_pair_free (self->tls_pair);
    self->tls_pair = NULL;
    free (self->tls_priorities);
    self->tls_priorities = NULL;
}
