/* TLS server contexts (core/tls.h): the policy every listener shares and the
 * mutex-guarded slot a reload swaps; connections are built in http/server.c. */
#include "core/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct tls_slot {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    char *cert_file, *key_file;
};

/* OpenSSL's reason for the last failure, then the queue cleared: its text
 * names files and reasons, never key material. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long err = ERR_peek_last_error();
    if (err)
        ERR_error_string_n(err, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
    return buf;
}

/* ALPN: HTTP/1.1 is all agentd speaks; a client offering only h2 gets no
 * protocol selected rather than a mismatch it would misread. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl; (void)arg;
    static const unsigned char mine[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, mine, sizeof mine - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int tls_ctx_load(const char *cert_file, const char *key_file, SSL_CTX **out,
                 struct agentd_error *e)
{
    char why[256];
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "TLS: cannot create a context: %s",
                           ssl_reason(why, sizeof why));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* renegotiation lets a client make the server redo handshakes at will */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        SSL_CTX_free(ctx);
        return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_TLS_CERT_FILE",
                           "AGENTD_TLS_CERT_FILE=%s: not a usable PEM certificate chain (%s)",
                           cert_file, ssl_reason(why, sizeof why));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_TLS_KEY_FILE",
                               "AGENTD_TLS_KEY_FILE=%s does not match the certificate in "
                               "AGENTD_TLS_CERT_FILE=%s", key_file, cert_file);
        }
        return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_TLS_KEY_FILE",
                           "AGENTD_TLS_KEY_FILE=%s: not a usable PEM private key (%s)", key_file,
                           ssl_reason(why, sizeof why));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_TLS_KEY_FILE",
                           "AGENTD_TLS_KEY_FILE=%s does not match the certificate in "
                           "AGENTD_TLS_CERT_FILE=%s", key_file, cert_file);
    }
    *out = ctx;
    return 0;
}

struct tls_slot *tls_slot_new(const char *cert_file, const char *key_file,
                              struct agentd_error *e)
{
    struct tls_slot *s = calloc(1, sizeof *s);
    if (!s) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->cert_file = strdup(cert_file);
    s->key_file = strdup(key_file);
    if (!s->cert_file || !s->key_file) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        tls_slot_free(s);
        return NULL;
    }
    if (tls_ctx_load(cert_file, key_file, &s->ctx, e) != 0) {
        tls_slot_free(s);
        return NULL;
    }
    return s;
}

int tls_slot_reload(struct tls_slot *s, struct agentd_error *e)
{
    SSL_CTX *fresh = NULL;
    int rc = tls_ctx_load(s->cert_file, s->key_file, &fresh, e);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    SSL_CTX *old = s->ctx;
    s->ctx = fresh;
    pthread_mutex_unlock(&s->mu);
    SSL_CTX_free(old); /* live connections' SSLs still hold references */
    return 0;
}

SSL *tls_slot_ssl_new(struct tls_slot *s)
{
    pthread_mutex_lock(&s->mu);
    SSL *ssl = s->ctx ? SSL_new(s->ctx) : NULL;
    pthread_mutex_unlock(&s->mu);
    return ssl;
}

void tls_slot_free(struct tls_slot *s)
{
    if (!s)
        return;
    SSL_CTX_free(s->ctx);
    free(s->cert_file);
    free(s->key_file);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
