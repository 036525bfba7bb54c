/* The concern files' functions (sqlite_{sessions,turns,tasks,commerce,...}.c):
 * what each backend's vtable points at, and what they share. Included by
 * sqlite_int.h and by pg_int.h, which compiles the same files on libpq
 * under pgs_* names; it needs struct sq, enum st and the row maps of the
 * header that includes it. */
#ifndef AGENTD_STORE_CONCERNS_H
#define AGENTD_STORE_CONCERNS_H

/* ---- shared between concern files ---- */

/* sqlite_sessions.c: a session's rows with seq > after_seq (messages,
 * events): the parent check and the list read one snapshot; the list is
 * written only on success. */
int sq_session_rows(struct sq *q, enum st id, const char *session_id, int64_t after_seq,
                    int limit, const struct row_map *m, void *outp, size_t *n);
/* sqlite_sessions.c, inside a write transaction: pushes a live session's
 * expiry (and sets its context unless NULL), else AGENTD_ENOTFOUND; inserts
 * a session; appends a message to its session (touching it unless touched:
 * this transaction touched it at now already), *seq = its seq. */
int sq_session_touch(struct sq *q, const char *id, const char *context, int64_t now);
int sq_session_insert(struct sq *q, const struct store_session *v, int64_t now);
int sq_message_insert(struct sq *q, const struct store_message *m, int64_t now, int64_t *seq,
                      int touched);
/* sqlite_idem.c: the claim part of task_accept, inside its transaction:
 * *claimed = 1, or 0 with *existing = the live record that holds the key. */
int sq_idem_claim_done(struct sq *q, const struct store_task_accept *a, int64_t now,
                       int *claimed, struct store_idem **existing);

/* ---- the backend's entries (store/backend.h), by file ---- */

/* sqlite.c */
int sq_open(const struct store_options *opt, void **out, struct agentd_error *e);
void sq_close(void *b);
/* sqlite_maint.c */
int sq_ping(void *b, int probe_write);
int sq_backup(void *b, const char *path);
int sq_purge_expired(void *b, int batch_limit, int *n_deleted);
int sq_vacuum(void *b, int64_t *before, int64_t *after);
int sq_schema_version(void *b, int *version);
int sq_meta_get(void *b, const char *key, char **value);
int sq_meta_set(void *b, const char *key, const char *value);
/* sqlite_auth.c */
int sq_principal_create(void *b, struct store_principal *p);
int sq_principal_get(void *b, const char *id, struct store_principal **out);
int sq_apikey_create(void *b, struct store_apikey *k);
int sq_apikey_get_by_hash(void *b, const char *hash, struct store_apikey **out);
int sq_apikey_get(void *b, const char *id, struct store_apikey **out);
int sq_apikey_revoke(void *b, const char *id);
int sq_apikey_list(void *b, const char *principal_id, struct store_apikey **out, size_t *n);
int sq_audit_append(void *b, struct store_audit *e);
int sq_audit_bump(void *b, struct store_audit *e, int64_t since_ms);
int sq_audit_list(void *b, const struct store_audit_query *aq, struct store_audit **out,
                  size_t *n);
/* sqlite_sessions.c */
int sq_session_create(void *b, struct store_session *v);
int sq_session_get(void *b, const char *id, struct store_session **out);
int sq_session_update(void *b, const char *id, const char *context);
int sq_session_list(void *b, const char *owner, int64_t before_created, const char *before_id,
                    int limit, struct store_session **out, size_t *n);
int sq_session_delete_idle(void *b, const char *id, const char *owner);
int sq_message_append(void *b, struct store_message *m);
int sq_message_list(void *b, const char *session_id, int64_t after_seq, int limit,
                    struct store_message **out, size_t *n);
int sq_message_tail(void *b, const char *session_id, int limit, struct store_message **out,
                    size_t *n);
/* sqlite_tasks.c */
int sq_task_create(void *b, struct store_task *t);
int sq_task_get(void *b, const char *id, struct store_task **out);
int sq_task_update_if(void *b, const char *id, const char *state, const char *artifacts,
                      const char *old_state, const char *old_artifacts);
int sq_task_accept(void *b, struct store_task_accept *a, struct store_idem **existing);
int sq_task_list(void *b, const char *context_id, struct store_task **out, size_t *n);
int sq_task_list_owner(void *b, const struct store_task_query *q, struct store_task **out,
                       size_t *n);
/* sqlite_turns.c */
int sq_turn_begin(void *b, struct store_turn *t, int64_t lease_ms);
int sq_turn_interrupt(void *b, const char *session_id);
int sq_turn_adopt(void *b, const char *id, const char *from_instance, const char *to_instance);
int sq_turn_get(void *b, const char *id, struct store_turn **out);
int sq_turn_list_unfinished(void *b, const struct store_turn_scan *scan,
                            struct store_turn **out, size_t *n);
int sq_checkpoint_list(void *b, const char *turn_id, struct store_checkpoint **out, size_t *n);
int sq_event_append(void *b, struct store_event *v, size_t n);
int sq_event_list(void *b, const char *session_id, int64_t after_seq, int limit,
                  struct store_event **out, size_t *n);
int sq_turn_record(void *b, struct store_checkpoint *c, struct store_message *m,
                   struct store_event *ev, size_t nev);
int sq_turn_finish_events(void *b, const char *id, const char *state, struct store_event *ev,
                          size_t nev, const struct store_task_write *task, int *task_written);
int sq_turn_step(void *b, const char *turn_id, const char *principal, const char *model,
                 const struct store_usage *u, int *interrupt);
int sq_turn_step_record(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u, int *interrupt, struct store_checkpoint *c,
                        struct store_message *m, struct store_event *ev, size_t nev);
int sq_usage_day(void *b, const char *principal, int64_t day, struct store_usage *out);
int sq_usage_session(void *b, const char *session_id, struct store_usage *out);
/* sqlite_commerce.c */
int sq_checkout_create(void *b, struct store_checkout *c);
int sq_checkout_get(void *b, const char *id, struct store_checkout **out);
int sq_checkout_list_after(void *b, const char *after, int limit, struct store_checkout **out,
                           size_t *n);
int sq_checkout_update(void *b, const char *id, int64_t expected_version, const char *status,
                       const char *document);
int sq_order_create(void *b, struct store_order *o, int64_t checkout_version,
                    const char *checkout_status, const char *checkout_document,
                    const struct store_stock_line *take, size_t ntake);
int sq_order_get(void *b, const char *id, struct store_order **out);
int sq_order_update(void *b, const char *id, int64_t expected_version, const char *document,
                    struct store_outbox *ev);
/* sqlite_outbox.c; sq_outbox_insert runs inside the caller's transaction */
int sq_outbox_insert(struct sq *q, struct store_outbox *ev, int64_t now);
int sq_outbox_add(void *b, struct store_outbox *ev);
int sq_outbox_claim(void *b, const char *kind, const char *instance, int64_t lease_ms, int limit,
                    struct store_outbox **out, size_t *n);
int sq_outbox_finish(void *b, const char *id, const char *instance, const char *state,
                     int64_t next_attempt_at, const char *last_error);
int sq_outbox_release(void *b, const char *instance, int *n);
int sq_outbox_holders(void *b, char ***out, size_t *n);
int sq_instance_beat(void *b, const struct store_instance *inst);
int sq_instance_list(void *b, struct store_instance **out, size_t *n);
int sq_instance_delete(void *b, const char *id);
int sq_outbox_depth(void *b, const char *kind, int64_t *pending);
int sq_outbox_get(void *b, const char *id, struct store_outbox **out);
int sq_stock_seed(void *b, const struct store_stock_line *v, size_t n, int replace);
int sq_stock_get(void *b, const char *product_id, int64_t *quantity);
/* sqlite_addresses.c */
int sq_address_save(void *b, const char *id, const char *customer, const char *body);
int sq_address_list(void *b, const char *customer, int limit, struct store_address **out,
                    size_t *n);
int sq_address_list_after(void *b, const char *after, int limit, struct store_address **out,
                          size_t *n);
int sq_address_reseal(void *b, const char *id, const char *old_body, const char *new_body);
/* sqlite_idem.c */
int sq_idem_begin(void *b, const char *principal, const char *key, const char *fingerprint,
                  const char *owner, int64_t expires_at, struct store_idem **existing);
int sq_idem_takeover(void *b, const char *principal, const char *key, const char *dead_owner,
                     const char *owner);
int sq_idem_finish(void *b, const char *principal, const char *key, int status,
                   const char *headers, const void *body, size_t body_len);
int sq_idem_abandon(void *b, const char *principal, const char *key);
int sq_idem_drop(void *b, const char *principal, const char *key);

#endif
