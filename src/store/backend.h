/* The contract between store.c (timing, retries, health) and a storage
 * backend. Each entry has the meaning of the store.h call of the same name. */
#ifndef AGENTD_STORE_BACKEND_H
#define AGENTD_STORE_BACKEND_H

#include "store/store.h"

struct store_backend {
    int (*open)(const struct store_options *opt, void **out, struct agentd_error *e);
    void (*close)(void *b);
    int (*batch_begin)(void *b); /* 1 if opened, 0 if batches are not available */
    int (*batch_open)(void *b);
    int (*batch_end)(void *b);
    int (*ping)(void *b, int probe_write);
    int (*backup)(void *b, const char *path);
    int (*purge_expired)(void *b, int batch_limit, int *n_deleted);
    int (*vacuum)(void *b, int64_t *before, int64_t *after);
    int (*schema_version)(void *b, int *version);
    int (*meta_get)(void *b, const char *key, char **value);
    int (*meta_set)(void *b, const char *key, const char *value);
    int (*principal_create)(void *b, struct store_principal *p);
    int (*principal_get)(void *b, const char *id, struct store_principal **out);
    int (*apikey_create)(void *b, struct store_apikey *k);
    int (*apikey_get_by_hash)(void *b, const char *hash, struct store_apikey **out);
    int (*apikey_get)(void *b, const char *id, struct store_apikey **out);
    int (*apikey_revoke)(void *b, const char *id);
    int (*apikey_list)(void *b, const char *principal_id, struct store_apikey **out, size_t *n);
    int (*session_create)(void *b, struct store_session *v);
    int (*session_get)(void *b, const char *id, struct store_session **out);
    int (*session_update)(void *b, const char *id, const char *context);
    int (*session_list)(void *b, const char *owner, int64_t before_created, const char *before_id,
                        int limit, struct store_session **out, size_t *n);
    int (*session_delete_idle)(void *b, const char *id, const char *owner);
    int (*message_append)(void *b, struct store_message *m);
    int (*message_list)(void *b, const char *session_id, int64_t after_seq, int limit,
                        struct store_message **out, size_t *n);
    int (*message_tail)(void *b, const char *session_id, int limit, struct store_message **out,
                        size_t *n);
    int (*task_create)(void *b, struct store_task *t);
    int (*task_get)(void *b, const char *id, struct store_task **out);
    int (*task_update_if)(void *b, const char *id, const char *state, const char *artifacts,
                          const char *old_state, const char *old_artifacts);
    int (*task_accept)(void *b, struct store_task_accept *a, struct store_idem **existing);
    int (*task_list)(void *b, const char *context_id, struct store_task **out, size_t *n);
    int (*task_list_owner)(void *b, const struct store_task_query *q, struct store_task **out,
                           size_t *n);
    int (*turn_begin)(void *b, struct store_turn *t, int64_t lease_ms);
    int (*turn_interrupt)(void *b, const char *session_id);
    int (*turn_adopt)(void *b, const char *id, const char *from_instance,
                      const char *to_instance);
    int (*turn_get)(void *b, const char *id, struct store_turn **out);
    int (*turn_list_unfinished)(void *b, const struct store_turn_scan *scan,
                                struct store_turn **out, size_t *n);
    int (*checkpoint_list)(void *b, const char *turn_id, struct store_checkpoint **out,
                           size_t *n);
    int (*event_append)(void *b, struct store_event *v, size_t n); /* n >= 1 */
    int (*event_list)(void *b, const char *session_id, int64_t after_seq, int limit,
                      struct store_event **out, size_t *n);
    int (*turn_record)(void *b, struct store_checkpoint *c, struct store_message *m,
                       struct store_event *ev, size_t nev);
    int (*turn_finish_events)(void *b, const char *id, const char *state,
                              struct store_event *ev, size_t nev, /* nev may be 0 */
                              const struct store_task_write *task, /* may be NULL */
                              int *task_written);
    int (*turn_step)(void *b, const char *turn_id, const char *principal, const char *model,
                     const struct store_usage *u, int *interrupt);
    int (*turn_step_record)(void *b, const char *turn_id, const char *principal,
                            const char *model, const struct store_usage *u, int *interrupt,
                            struct store_checkpoint *c, struct store_message *m,
                            struct store_event *ev, size_t nev);
    int (*usage_day)(void *b, const char *principal, int64_t day, struct store_usage *out);
    int (*usage_session)(void *b, const char *session_id, struct store_usage *out);
    int (*checkout_create)(void *b, struct store_checkout *c);
    int (*checkout_get)(void *b, const char *id, struct store_checkout **out);
    int (*checkout_update)(void *b, const char *id, int64_t expected_version,
                           const char *status, const char *document);
    int (*checkout_list_after)(void *b, const char *after, int limit, struct store_checkout **out,
                               size_t *n);
    int (*order_create)(void *b, struct store_order *o, int64_t checkout_version,
                        const char *checkout_status, const char *checkout_document,
                        const struct store_stock_line *take, size_t ntake);
    int (*stock_seed)(void *b, const struct store_stock_line *v, size_t n, int replace);
    int (*stock_get)(void *b, const char *product_id, int64_t *quantity);
    int (*address_save)(void *b, const char *id, const char *customer, const char *body);
    int (*address_list)(void *b, const char *customer, int limit, struct store_address **out,
                        size_t *n);
    int (*address_list_after)(void *b, const char *after, int limit,
                              struct store_address **out, size_t *n);
    /* compare-and-swap on the body (AGENTD_ECONFLICT when it changed or is gone) */
    int (*address_reseal)(void *b, const char *id, const char *old_body, const char *new_body);
    int (*order_get)(void *b, const char *id, struct store_order **out);
    /* compare-and-swap on the version (AGENTD_ECONFLICT, AGENTD_ENOTFOUND);
     * ev (may be NULL) joins the outbox in the same transaction */
    int (*order_update)(void *b, const char *id, int64_t expected_version,
                        const char *document, struct store_outbox *ev);
    int (*outbox_add)(void *b, struct store_outbox *ev);
    int (*outbox_claim)(void *b, const char *kind, const char *instance, int64_t lease_ms,
                        int limit, struct store_outbox **out, size_t *n);
    int (*outbox_finish)(void *b, const char *id, const char *instance, const char *state,
                         int64_t next_attempt_at, const char *last_error);
    int (*outbox_release)(void *b, const char *instance, int *n);
    int (*outbox_holders)(void *b, char ***out, size_t *n);
    int (*outbox_depth)(void *b, const char *kind, int64_t *pending);
    int (*outbox_get)(void *b, const char *id, struct store_outbox **out);
    int (*instance_beat)(void *b, const struct store_instance *inst);
    int (*instance_list)(void *b, struct store_instance **out, size_t *n);
    int (*instance_delete)(void *b, const char *id);
    int (*idem_begin)(void *b, const char *principal, const char *key, const char *fingerprint,
                      const char *owner, int64_t expires_at, struct store_idem **existing);
    int (*idem_takeover)(void *b, const char *principal, const char *key, const char *dead_owner,
                         const char *owner);
    int (*idem_finish)(void *b, const char *principal, const char *key, int status,
                       const char *headers, const void *body, size_t body_len);
    int (*idem_abandon)(void *b, const char *principal, const char *key);
    int (*idem_drop)(void *b, const char *principal, const char *key);
    int (*audit_append)(void *b, struct store_audit *e);
    int (*audit_bump)(void *b, struct store_audit *e, int64_t since_ms);
    int (*audit_list)(void *b, const struct store_audit_query *q, struct store_audit **out,
                      size_t *n);
};

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_pg; /* postgres:// URLs (pg.c) */

#endif
