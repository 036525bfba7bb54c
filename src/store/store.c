/* The backend-neutral half of the store: picks the backend from the URL and
 * wraps every call with argument checks, busy retries, metrics and health. */
#include "store/store.h"
#include "store/backend.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "core/pool.h"

/* AGENTD_EBUSY from a backend means its own waiting (SQLite's busy timeout)
 * ran out; the whole operation rolled back, so running it again is safe. */
#define BUSY_TRIES 3

/* X(op, kind): kind R reads, W writes (a success proves the disk takes
 * writes again), N neither (a backup's failures concern the destination). */
#define STORE_OPS(X)                                                                   \
    X(ping, R) X(backup, N) X(purge_expired, W) X(vacuum, W) X(schema_version, R)    \
    X(meta_get, R) X(meta_set, W) X(principal_create, W) X(principal_get, R)          \
    X(apikey_create, W) X(apikey_get_by_hash, R) X(apikey_get, R) X(apikey_revoke, W)                   \
    X(apikey_list, R) X(session_create, W) X(session_get, R) X(session_update, W)      \
    X(message_append, W) X(message_list, R) X(message_tail, R)   \
    X(task_create, W) X(task_get, R) X(task_update_if, W) X(task_accept, W) X(task_list, R) X(task_list_owner, R) \
    X(turn_begin, W)                                                                   \
    X(turn_interrupt, W) X(turn_adopt, W)           \
    X(turn_get, R) X(turn_list_unfinished, R)                     \
    X(checkpoint_list, R) X(event_append, W) X(event_list, R) X(turn_record, W)        \
    X(usage_day, R) X(usage_session, R)                                \
    X(turn_step, W) X(turn_step_record, W) X(turn_finish_events, W)                    \
    X(checkout_create, W) X(checkout_get, R)                                           \
    X(checkout_update, W) X(checkout_list_after, R) X(order_create, W) X(order_get, R) X(idem_begin, W)          \
    X(idem_takeover, W) X(idem_finish, W) X(idem_abandon, W) X(idem_drop, W) X(audit_append, W) X(audit_bump, W) X(audit_list, R)            \
    X(stock_seed, W) X(stock_get, R) X(order_update, W)                                \
    X(session_list, R) X(session_delete_idle, W) X(batch_commit, W)                    \
    X(address_save, W) X(address_list, R) X(address_list_after, R)               \
    X(address_reseal, W) X(outbox_add, W) X(outbox_claim, W)           \
    X(outbox_finish, W) X(outbox_release, W) X(outbox_holders, R) X(outbox_depth, R)    \
    X(outbox_get, R) X(instance_beat, W) X(instance_list, R) X(instance_delete, W)

enum store_op {
#define X(op, kind) OP_##op,
    STORE_OPS(X)
#undef X
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
#define X(op, kind) #op,
    STORE_OPS(X)
#undef X
};

static const char op_kinds[OP_COUNT] = {
#define X(op, kind) #kind[0],
    STORE_OPS(X)
#undef X
};

struct store {
    const struct store_backend *be;
    void *b;
    atomic_int healthy;
    struct metric_child *duration[OP_COUNT];
    struct metric_child *errors[OP_COUNT];
};

static int64_t wall_now(void *ud)
{
    (void)ud;
    return clock_wall_ms();
}

static double worker_queue_depth(void *ud)
{
    (void)ud;
    struct pool *p = pool_default();
    return p ? (double)pool_queue_depth(p) : 0.0;
}

/* Seconds. Most calls finish in tens of microseconds; fsyncs and lock waits
 * reach into milliseconds and seconds. */
static const double op_buckets[] = { 0.0001, 0.00025, 0.001, 0.0025, 0.01, 0.025, 0.1, 0.25,
                                     1, 5, 0 };

static void metrics_bind(struct store *s)
{
    static const char *const labels[] = { "op", NULL };
    struct metric *dur = metric_register("agentd_store_op_duration_seconds",
                                         "Time spent in a storage operation, retries included.",
                                         METRIC_HISTOGRAM, labels, op_buckets);
    struct metric *err = metric_register("agentd_store_errors_total",
                                         "Storage operations that failed (not-found, exists and "
                                         "conflict are answers, not errors).",
                                         METRIC_COUNTER, labels, NULL);
    for (int i = 0; i < OP_COUNT; i++) {
        const char *v[] = { op_names[i] };
        s->duration[i] = metric_child(dur, v);
        s->errors[i] = metric_child(err, v);
    }
    metric_register_fn("agentd_worker_queue_depth", "Jobs waiting for a worker-pool thread.",
                       METRIC_GAUGE, worker_queue_depth, NULL);
}

static int is_postgres(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

int store_open(const struct store_options *opt, struct store **out, struct agentd_error *e)
{
    struct agentd_error scratch;
    if (!e) /* backends quote the message they are writing */
        e = &scratch;
    if (!opt || !opt->url || !*opt->url || !out)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "no database path (AGENTD_DB) given");
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    struct store_options o = *opt;
    if (!o.now)
        o.now = wall_now;
    s->be = is_postgres(opt->url) ? &store_backend_pg : &store_backend_sqlite;
    int rc = s->be->open(&o, &s->b, e);
    if (rc) {
        free(s);
        return rc;
    }
    atomic_init(&s->healthy, 1);
    metrics_bind(s);
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    s->be->close(s->b);
    free(s);
}

int store_healthy(const struct store *s) { return atomic_load(&((struct store *)s)->healthy); }

/* A store call's span: a child of the context the call runs in (the worker
 * pool hands each job its submitter's, core/pool.c); none outside one. */
static void trace_op(enum store_op op, int64_t t0, int rc)
{
    const struct trace_ctx *parent = trace_current();
    if (!parent || !(parent->flags & TRACE_FLAG_SAMPLED))
        return;
    struct trace_span sp;
    trace_span_start_at(&sp, op_names[op], TRACE_INTERNAL, parent, t0);
    trace_attr_str(&sp, "db.operation.name", op_names[op]);
    if (rc != 0) {
        trace_attr_str(&sp, "error.type", agentd_err_code(rc));
        if (rc != AGENTD_ENOTFOUND && rc != AGENTD_EEXIST && rc != AGENTD_ECONFLICT)
            trace_span_set_status(&sp, TRACE_STATUS_ERROR);
    }
    trace_span_end(&sp);
}

static int observed(struct store *s, enum store_op op, int64_t t0, int rc)
{
    metric_observe(s->duration[op], (double)(clock_mono_ns() - t0) / 1e9);
    if (trace_enabled())
        trace_op(op, t0, rc);
    if (rc != 0 && rc != AGENTD_ENOTFOUND && rc != AGENTD_EEXIST && rc != AGENTD_ECONFLICT)
        metric_inc(s->errors[op]);
    if ((rc == AGENTD_EIO || rc == AGENTD_ECORRUPT) && op_kinds[op] != 'N')
        atomic_store(&s->healthy, 0);
    else if (rc == 0 && op_kinds[op] == 'W')
        atomic_store(&s->healthy, 1);
    return rc;
}

/* The body of every public call: time it, retry a busy backend, count. */
#define CALL(s, op, ...)                                                     \
    do {                                                                     \
        int64_t t0_ = clock_mono_ns();                                       \
        int rc_, tries_ = 0;                                                 \
        do                                                                   \
            rc_ = (s)->be->op((s)->b, __VA_ARGS__);                          \
        while (rc_ == AGENTD_EBUSY && ++tries_ < BUSY_TRIES);                \
        return observed((s), OP_##op, t0_, rc_);                             \
    } while (0)

/* Bad arguments are a caller's bug: answered, and counted as an error. */
#define REQUIRE(s, op, cond)                                                 \
    do {                                                                     \
        if (!(s))                                                            \
            return AGENTD_EINVAL;                                            \
        if (!(cond))                                                         \
            return observed((s), OP_##op, clock_mono_ns(), AGENTD_EINVAL);   \
    } while (0)

static int nonempty(const char *str) { return str && *str; }
static int outbox_ok(const struct store_outbox *ev);

int store_ping(struct store *s)
{
    REQUIRE(s, ping, 1);
    int probe = !atomic_load(&s->healthy);
    int64_t t0 = clock_mono_ns();
    int rc = s->be->ping(s->b, probe);
    if (rc == 0 && probe)
        atomic_store(&s->healthy, 1);
    return observed(s, OP_ping, t0, rc);
}

int store_backup(struct store *s, const char *path)
{
    REQUIRE(s, backup, nonempty(path));
    CALL(s, backup, path);
}

int store_purge_expired(struct store *s, int batch_limit, int *n_deleted)
{
    REQUIRE(s, purge_expired, batch_limit > 0 && n_deleted);
    CALL(s, purge_expired, batch_limit, n_deleted);
}

int store_vacuum(struct store *s, int64_t *before, int64_t *after)
{
    REQUIRE(s, vacuum, 1);
    int64_t b = 0, a = 0;
    int64_t t0 = clock_mono_ns();
    int rc = s->be->vacuum(s->b, &b, &a);
    if (rc == 0) {
        if (before)
            *before = b;
        if (after)
            *after = a;
    }
    return observed(s, OP_vacuum, t0, rc);
}

int store_schema_version(struct store *s, int *version)
{
    REQUIRE(s, schema_version, version);
    CALL(s, schema_version, version);
}

int store_meta_get(struct store *s, const char *key, char **value)
{
    REQUIRE(s, meta_get, nonempty(key) && value);
    CALL(s, meta_get, key, value);
}

int store_meta_set(struct store *s, const char *key, const char *value)
{
    REQUIRE(s, meta_set, nonempty(key) && value);
    CALL(s, meta_set, key, value);
}

int store_principal_create(struct store *s, struct store_principal *p)
{
    REQUIRE(s, principal_create, p && nonempty(p->id) && p->name);
    CALL(s, principal_create, p);
}

int store_principal_get(struct store *s, const char *id, struct store_principal **out)
{
    REQUIRE(s, principal_get, id && out);
    CALL(s, principal_get, id, out);
}

int store_apikey_create(struct store *s, struct store_apikey *k)
{
    REQUIRE(s, apikey_create, k && nonempty(k->id) && nonempty(k->principal_id) && k->hash &&
            strlen(k->hash) == 64);
    CALL(s, apikey_create, k);
}

int store_apikey_get_by_hash(struct store *s, const char *hash, struct store_apikey **out)
{
    REQUIRE(s, apikey_get_by_hash, hash && out);
    CALL(s, apikey_get_by_hash, hash, out);
}

int store_apikey_get(struct store *s, const char *id, struct store_apikey **out)
{
    REQUIRE(s, apikey_get, id && out);
    CALL(s, apikey_get, id, out);
}

int store_apikey_revoke(struct store *s, const char *id)
{
    REQUIRE(s, apikey_revoke, id);
    CALL(s, apikey_revoke, id);
}

int store_apikey_list(struct store *s, const char *principal_id, struct store_apikey **out,
                      size_t *n)
{
    REQUIRE(s, apikey_list, out && n);
    CALL(s, apikey_list, principal_id, out, n);
}

int store_session_create(struct store *s, struct store_session *v)
{
    REQUIRE(s, session_create, v && nonempty(v->id) && v->owner && v->context);
    CALL(s, session_create, v);
}

int store_session_get(struct store *s, const char *id, struct store_session **out)
{
    REQUIRE(s, session_get, id && out);
    CALL(s, session_get, id, out);
}

int store_session_update(struct store *s, const char *id, const char *context)
{
    REQUIRE(s, session_update, id && context);
    CALL(s, session_update, id, context);
}

int store_message_append(struct store *s, struct store_message *m)
{
    REQUIRE(s, message_append, m && m->session_id && nonempty(m->role) && m->parts);
    CALL(s, message_append, m);
}

int store_message_list(struct store *s, const char *session_id, int64_t after_seq, int limit,
                       struct store_message **out, size_t *n)
{
    REQUIRE(s, message_list, session_id && out && n);
    CALL(s, message_list, session_id, after_seq, limit, out, n);
}

int store_message_tail(struct store *s, const char *session_id, int limit,
                       struct store_message **out, size_t *n)
{
    REQUIRE(s, message_tail, session_id && limit > 0 && out && n);
    CALL(s, message_tail, session_id, limit, out, n);
}

int store_task_create(struct store *s, struct store_task *t)
{
    REQUIRE(s, task_create, t && nonempty(t->id) && t->context_id && t->owner &&
                                nonempty(t->state) && t->artifacts);
    CALL(s, task_create, t);
}

int store_task_get(struct store *s, const char *id, struct store_task **out)
{
    REQUIRE(s, task_get, id && out);
    CALL(s, task_get, id, out);
}

int store_task_update_if(struct store *s, const char *id, const char *state,
                         const char *artifacts, const char *old_state,
                         const char *old_artifacts)
{
    REQUIRE(s, task_update_if,
            id && nonempty(state) && artifacts && old_state && old_artifacts);
    CALL(s, task_update_if, id, state, artifacts, old_state, old_artifacts);
}

int store_batch_begin(struct store *s) { return s ? s->be->batch_begin(s->b) : 0; }

int store_batch_open(struct store *s) { return s ? s->be->batch_open(s->b) : 0; }

/* Not retried on AGENTD_EBUSY: the writes it commits are gone by then. */
int store_batch_end(struct store *s)
{
    REQUIRE(s, batch_commit, 1);
    int64_t t0 = clock_mono_ns();
    return observed(s, OP_batch_commit, t0, s->be->batch_end(s->b));
}

int store_task_accept(struct store *s, struct store_task_accept *a, struct store_idem **existing)
{
    REQUIRE(s, task_accept,
            a && a->principal && nonempty(a->key) && a->fingerprint && a->expires_at > 0 &&
                a->task && nonempty(a->task->id) && a->task->context_id && a->task->owner &&
                nonempty(a->task->state) && a->task->artifacts &&
                (!a->old_state) == (!a->old_artifacts) &&
                (!a->session || (nonempty(a->session->id) && a->session->owner &&
                                 a->session->context &&
                                 strcmp(a->session->id, a->task->context_id) == 0)) &&
                existing);
    *existing = NULL;
    CALL(s, task_accept, a, existing);
}

int store_task_list(struct store *s, const char *context_id, struct store_task **out, size_t *n)
{
    REQUIRE(s, task_list, context_id && out && n);
    CALL(s, task_list, context_id, out, n);
}

int store_task_list_owner(struct store *s, const struct store_task_query *q,
                          struct store_task **out, size_t *n)
{
    REQUIRE(s, task_list_owner, q && q->owner && q->limit > 0 && q->limit <= 1000 && out && n);
    CALL(s, task_list_owner, q, out, n);
}

int store_turn_begin(struct store *s, struct store_turn *t, int64_t lease_ms)
{
    REQUIRE(s, turn_begin, t && nonempty(t->id) && t->session_id);
    CALL(s, turn_begin, t, lease_ms);
}

int store_turn_interrupt(struct store *s, const char *session_id)
{
    REQUIRE(s, turn_interrupt, session_id);
    CALL(s, turn_interrupt, session_id);
}

int store_turn_adopt(struct store *s, const char *id, const char *from_instance,
                     const char *to_instance)
{
    REQUIRE(s, turn_adopt, id);
    CALL(s, turn_adopt, id, from_instance, to_instance);
}

int store_turn_get(struct store *s, const char *id, struct store_turn **out)
{
    REQUIRE(s, turn_get, id && out);
    CALL(s, turn_get, id, out);
}

int store_turn_list_unfinished(struct store *s, const struct store_turn_scan *scan,
                               struct store_turn **out, size_t *n)
{
    static const struct store_turn_scan all = { 0 };
    REQUIRE(s, turn_list_unfinished, out && n);
    CALL(s, turn_list_unfinished, scan ? scan : &all, out, n);
}

static int checkpoint_ok(const struct store_checkpoint *c)
{
    return c && c->turn_id && c->kind && c->payload && c->step >= 0 &&
           (strcmp(c->kind, "user_message") == 0 || strcmp(c->kind, "llm_reply") == 0 ||
            strcmp(c->kind, "tool_result") == 0);
}

int store_checkpoint_list(struct store *s, const char *turn_id, struct store_checkpoint **out,
                          size_t *n)
{
    REQUIRE(s, checkpoint_list, turn_id && out && n);
    CALL(s, checkpoint_list, turn_id, out, n);
}

static int events_ok(const struct store_event *v, size_t n)
{
    if (!v && n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!v[i].session_id || !nonempty(v[i].type) || !v[i].data)
            return 0;
    return 1;
}

int store_event_append(struct store *s, struct store_event *v, size_t n)
{
    REQUIRE(s, event_append, events_ok(v, n));
    if (n == 0) /* nothing to write; a no-op must not count as a write for health */
        return 0;
    CALL(s, event_append, v, n);
}

int store_event_list(struct store *s, const char *session_id, int64_t after_seq, int limit,
                     struct store_event **out, size_t *n)
{
    REQUIRE(s, event_list, session_id && out && n);
    CALL(s, event_list, session_id, after_seq, limit, out, n);
}

int store_turn_record(struct store *s, struct store_checkpoint *c, struct store_message *m,
                      struct store_event *ev, size_t nev)
{
    REQUIRE(s, turn_record,
            checkpoint_ok(c) && (!m || (m->session_id && nonempty(m->role) && m->parts)) &&
                events_ok(ev, nev));
    CALL(s, turn_record, c, m, ev, nev);
}

int store_turn_finish_events(struct store *s, const char *id, const char *state,
                             struct store_event *ev, size_t nev)
{
    REQUIRE(s, turn_finish_events, id && nonempty(state) &&
                                       strcmp(state, STORE_TURN_RUNNING) != 0 &&
                                       events_ok(ev, nev));
    CALL(s, turn_finish_events, id, state, ev, nev, NULL, NULL);
}

int store_turn_finish_task(struct store *s, const char *id, const char *state,
                           struct store_event *ev, size_t nev,
                           const struct store_task_write *task, int *task_written)
{
    REQUIRE(s, turn_finish_events,
            id && nonempty(state) && strcmp(state, STORE_TURN_RUNNING) != 0 &&
                events_ok(ev, nev) && task && task->id && nonempty(task->state) &&
                task->artifacts && task->old_state && task->old_artifacts && task_written);
    CALL(s, turn_finish_events, id, state, ev, nev, task, task_written);
}

static int usage_ok(const struct store_usage *u)
{
    return u && u->prompt_tokens >= 0 && u->completion_tokens >= 0 && u->calls >= 0 &&
           isfinite(u->cost_usd) && u->cost_usd >= 0;
}

int store_turn_step(struct store *s, const char *turn_id, const char *principal,
                    const char *model, const struct store_usage *u, int *interrupt)
{
    REQUIRE(s, turn_step, turn_id && principal && usage_ok(u));
    CALL(s, turn_step, turn_id, principal, model ? model : "", u, interrupt);
}

int store_turn_step_record(struct store *s, const char *turn_id, const char *principal,
                           const char *model, const struct store_usage *u, int *interrupt,
                           struct store_checkpoint *c, struct store_message *m,
                           struct store_event *ev, size_t nev)
{
    REQUIRE(s, turn_step_record,
            turn_id && principal && usage_ok(u) && checkpoint_ok(c) &&
                strcmp(c->turn_id, turn_id) == 0 &&
                (!m || (m->session_id && nonempty(m->role) && m->parts)) && events_ok(ev, nev));
    CALL(s, turn_step_record, turn_id, principal, model ? model : "", u, interrupt, c, m, ev, nev);
}

int store_usage_day(struct store *s, const char *principal, int64_t day, struct store_usage *out)
{
    REQUIRE(s, usage_day, principal && out);
    CALL(s, usage_day, principal, day, out);
}

int store_usage_session(struct store *s, const char *session_id, struct store_usage *out)
{
    REQUIRE(s, usage_session, session_id && out);
    CALL(s, usage_session, session_id, out);
}

int store_checkout_create(struct store *s, struct store_checkout *c)
{
    REQUIRE(s, checkout_create, c && nonempty(c->id) && c->owner && nonempty(c->status) &&
                                    c->document && c->expires_at >= 0);
    CALL(s, checkout_create, c);
}

int store_checkout_get(struct store *s, const char *id, struct store_checkout **out)
{
    REQUIRE(s, checkout_get, id && out);
    CALL(s, checkout_get, id, out);
}

int store_checkout_update(struct store *s, const char *id, int64_t expected_version,
                          const char *status, const char *document)
{
    REQUIRE(s, checkout_update, id && nonempty(status) && document);
    CALL(s, checkout_update, id, expected_version, status, document);
}

int store_checkout_list_after(struct store *s, const char *after, int limit,
                              struct store_checkout **out, size_t *n)
{
    REQUIRE(s, checkout_list_after, after && limit > 0 && out && n);
    CALL(s, checkout_list_after, after, limit, out, n);
}

static int stock_lines_ok(const struct store_stock_line *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!nonempty(v[i].product_id) || v[i].quantity < 0)
            return 0;
    return 1;
}

int store_order_create(struct store *s, struct store_order *o, int64_t checkout_version,
                       const char *checkout_status, const char *checkout_document,
                       const struct store_stock_line *take, size_t ntake)
{
    REQUIRE(s, order_create, o && nonempty(o->id) && o->checkout_id && o->owner &&
                                 (!o->event || outbox_ok(o->event)) &&
                                 o->document && nonempty(checkout_status) && checkout_document &&
                                 (take || ntake == 0) && stock_lines_ok(take, ntake));
    CALL(s, order_create, o, checkout_version, checkout_status, checkout_document, take, ntake);
}

static int outbox_ok(const struct store_outbox *ev)
{
    return ev && nonempty(ev->id) && nonempty(ev->kind) && nonempty(ev->target) && ev->body;
}

int store_order_update(struct store *s, const char *id, int64_t expected_version,
                       const char *document, struct store_outbox *ev)
{
    REQUIRE(s, order_update, nonempty(id) && document && (!ev || outbox_ok(ev)));
    CALL(s, order_update, id, expected_version, document, ev);
}

int store_outbox_add(struct store *s, struct store_outbox *ev)
{
    REQUIRE(s, outbox_add, outbox_ok(ev));
    CALL(s, outbox_add, ev);
}

int store_outbox_claim(struct store *s, const char *kind, const char *instance, int64_t lease_ms,
                       int limit, struct store_outbox **out, size_t *n)
{
    REQUIRE(s, outbox_claim, nonempty(kind) && nonempty(instance) && lease_ms > 0 &&
                                 limit >= 1 && limit <= 1000 && out && n);
    CALL(s, outbox_claim, kind, instance, lease_ms, limit, out, n);
}

static int outbox_state_ok(const char *st)
{
    return st && (!strcmp(st, STORE_OUTBOX_PENDING) || !strcmp(st, STORE_OUTBOX_DELIVERED) ||
                  !strcmp(st, STORE_OUTBOX_DEAD));
}

int store_outbox_finish(struct store *s, const char *id, const char *instance, const char *state,
                        int64_t next_attempt_at, const char *last_error)
{
    REQUIRE(s, outbox_finish, nonempty(id) && nonempty(instance) && outbox_state_ok(state));
    CALL(s, outbox_finish, id, instance, state, next_attempt_at, last_error);
}

int store_outbox_release(struct store *s, const char *instance, int *n)
{
    REQUIRE(s, outbox_release, nonempty(instance));
    CALL(s, outbox_release, instance, n);
}

int store_outbox_holders(struct store *s, char ***out, size_t *n)
{
    REQUIRE(s, outbox_holders, out && n);
    CALL(s, outbox_holders, out, n);
}

void store_strings_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int store_instance_beat(struct store *s, const struct store_instance *inst)
{
    REQUIRE(s, instance_beat, inst && nonempty(inst->id) && inst->host);
    CALL(s, instance_beat, inst);
}

int store_instance_list(struct store *s, struct store_instance **out, size_t *n)
{
    REQUIRE(s, instance_list, out && n);
    CALL(s, instance_list, out, n);
}

int store_instance_delete(struct store *s, const char *id)
{
    REQUIRE(s, instance_delete, nonempty(id));
    CALL(s, instance_delete, id);
}

int store_outbox_depth(struct store *s, const char *kind, int64_t *pending)
{
    REQUIRE(s, outbox_depth, pending);
    CALL(s, outbox_depth, kind, pending);
}

int store_outbox_get(struct store *s, const char *id, struct store_outbox **out)
{
    REQUIRE(s, outbox_get, nonempty(id) && out);
    CALL(s, outbox_get, id, out);
}

int store_stock_seed(struct store *s, const struct store_stock_line *v, size_t n, int replace)
{
    REQUIRE(s, stock_seed, (v || n == 0) && stock_lines_ok(v, n));
    CALL(s, stock_seed, v, n, replace);
}

int store_stock_get(struct store *s, const char *product_id, int64_t *quantity)
{
    REQUIRE(s, stock_get, nonempty(product_id) && quantity);
    CALL(s, stock_get, product_id, quantity);
}

int store_address_save(struct store *s, const char *id, const char *customer, const char *body)
{
    REQUIRE(s, address_save, nonempty(id) && nonempty(customer) && body);
    CALL(s, address_save, id, customer, body);
}

int store_address_list(struct store *s, const char *customer, int limit,
                       struct store_address **out, size_t *n)
{
    REQUIRE(s, address_list, nonempty(customer) && limit > 0 && out && n);
    CALL(s, address_list, customer, limit, out, n);
}

int store_address_list_after(struct store *s, const char *after, int limit,
                             struct store_address **out, size_t *n)
{
    REQUIRE(s, address_list_after, after && limit > 0 && out && n);
    CALL(s, address_list_after, after, limit, out, n);
}

int store_address_reseal(struct store *s, const char *id, const char *old_body,
                         const char *new_body)
{
    REQUIRE(s, address_reseal, nonempty(id) && old_body && nonempty(new_body));
    CALL(s, address_reseal, id, old_body, new_body);
}

int store_order_get(struct store *s, const char *id, struct store_order **out)
{
    REQUIRE(s, order_get, id && out);
    CALL(s, order_get, id, out);
}

int store_idem_begin(struct store *s, const char *principal, const char *key,
                     const char *fingerprint, int64_t expires_at, struct store_idem **existing)
{
    return store_idem_claim(s, principal, key, fingerprint, NULL, expires_at, existing);
}

int store_idem_claim(struct store *s, const char *principal, const char *key,
                     const char *fingerprint, const char *owner, int64_t expires_at,
                     struct store_idem **existing)
{
    REQUIRE(s, idem_begin,
            principal && nonempty(key) && fingerprint && expires_at > 0 && existing);
    CALL(s, idem_begin, principal, key, fingerprint, owner, expires_at, existing);
}

int store_idem_takeover(struct store *s, const char *principal, const char *key,
                        const char *dead_owner, const char *owner)
{
    REQUIRE(s, idem_takeover, principal && nonempty(key) && nonempty(owner));
    CALL(s, idem_takeover, principal, key, dead_owner, owner);
}

int store_idem_finish(struct store *s, const char *principal, const char *key, int status,
                      const char *headers, const void *body, size_t body_len)
{
    REQUIRE(s, idem_finish, principal && key && headers && (body || body_len == 0));
    CALL(s, idem_finish, principal, key, status, headers, body, body_len);
}

int store_idem_abandon(struct store *s, const char *principal, const char *key)
{
    REQUIRE(s, idem_abandon, principal && key);
    CALL(s, idem_abandon, principal, key);
}

int store_idem_drop(struct store *s, const char *principal, const char *key)
{
    REQUIRE(s, idem_drop, principal && key);
    CALL(s, idem_drop, principal, key);
}

int store_audit_append(struct store *s, struct store_audit *e)
{
    REQUIRE(s, audit_append, e && e->principal && nonempty(e->action) && e->target &&
                                 e->request_id && e->outcome && e->count >= 0);
    CALL(s, audit_append, e);
}

int store_audit_bump(struct store *s, struct store_audit *e, int64_t since_ms)
{
    REQUIRE(s, audit_bump, e && e->principal && nonempty(e->action) && e->target &&
                               e->request_id && e->outcome && e->count >= 0);
    CALL(s, audit_bump, e, since_ms);
}

int store_audit_list(struct store *s, const struct store_audit_query *q,
                     struct store_audit **out, size_t *n)
{
    REQUIRE(s, audit_list, q && out && n);
    CALL(s, audit_list, q, out, n);
}

/* ---- session listing and deletion ---- */

int store_session_list(struct store *s, const char *owner, int64_t before_created,
                       const char *before_id, int limit, struct store_session **out, size_t *n)
{
    REQUIRE(s, session_list, owner && limit >= 1 && out && n);
    CALL(s, session_list, owner, before_created, before_id, limit, out, n);
}

int store_session_delete_idle(struct store *s, const char *id, const char *owner)
{
    REQUIRE(s, session_delete_idle, id && owner);
    CALL(s, session_delete_idle, id, owner);
}
