/* TLS server contexts: a certificate chain and key (PEM files) into an
 * OpenSSL SSL_CTX with agentd's policy, and the slot that SIGHUP swaps. */
#ifndef AGENTD_CORE_TLS_H
#define AGENTD_CORE_TLS_H

#include "core/err.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* A server context from cert_file (PEM chain, leaf first) and key_file (PEM
 * private key): TLS 1.2 minimum, no renegotiation, ALPN "http/1.1" only,
 * the key checked against the certificate. 0 with *out set (the caller
 * frees it with SSL_CTX_free), or AGENTD_EINVAL with the reason in *e
 * (file and OpenSSL's reason, never key bytes). */
int tls_ctx_load(const char *cert_file, const char *key_file, SSL_CTX **out,
                 struct agentd_error *e);

/* The current context, shared by every loop thread. A swap holds for new
 * connections only: each SSL keeps a reference to the context it was made
 * from, so live connections keep theirs. */
struct tls_slot;
struct tls_slot *tls_slot_new(const char *cert_file, const char *key_file,
                              struct agentd_error *e);
/* Loads the files again; on success the new context replaces the old one.
 * On failure the old one stays and *e says why. Any thread. */
int tls_slot_reload(struct tls_slot *s, struct agentd_error *e);
/* A new server-side SSL from the current context, or NULL. Any thread. */
SSL *tls_slot_ssl_new(struct tls_slot *s);
void tls_slot_free(struct tls_slot *s);

#endif
