/* What shop.c shares with the shop's other operation files (orders.c,
 * shop_metrics.c): the store, the public URL, the audit row, the metrics.
 * Not for other layers. */
#ifndef AGENTD_SHOP_INTERNAL_H
#define AGENTD_SHOP_INTERNAL_H

#include "shop/shop.h"
#include "shop/merchant.h"

const char *shop_public_url(const struct shop *sh);
/* One audit row for a change tried (see shop_audit_as); returns rc. */
int shop_audit_row(struct shop *sh, const char *owner, const char *action, const char *target,
                   int rc, const struct agentd_error *e);

/* An order as stored (owner NULL: any owner; another owner's is
 * AGENTD_ENOTFOUND), its version set. */
int shop_order_load(struct shop *sh, const char *owner, const char *id, struct order **out,
                    struct agentd_error *e);
/* A new permalink page token (base64url of 24 random bytes) and the
 * SHA-256 hex the store keeps instead. 0 or AGENTD_EINTERNAL. */
#define SHOP_ORDER_TOKEN_LEN 32
int shop_order_token_new(char token[SHOP_ORDER_TOKEN_LEN + 1], char hash[65]);

/* Metrics (shop_metrics.c): every series at 0 from the start; one order
 * placed; one checkout document parsed, serialised or found cached, or a
 * reply cut from the document just saved (saved_reply.c). */
enum doc_way { DOC_PARSED, DOC_SERIALISED, DOC_CACHED, DOC_REPLY };
void shop_metrics_init(struct merchant *m);
void shop_orders_count(const struct checkout *c);
void shop_documents_count(enum doc_way way);

/* saved_reply.c: doc, the store document just saved from c (which has
 * `version` once the operation ends), is kept for the reply to this
 * thread's operation. */
void shop_saved_keep(const struct checkout *c, const char *doc, int64_t version);

/* The webhook_url a stored order document keeps (NULL: none), malloc'd. */
char *shop_order_stored_webhook(const char *document);

#endif
