/* Idempotency-Key: claim (store) -> run the handler -> capture its reply
 * through the request's reply hook -> persist it -> send it. Every store call
 * goes through store_async, so the loop never waits on disk. */
#include "api/idempotency.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/instance.h"
#include "core/log.h"
#include "store/async.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

struct idem_job {
    struct http_req *r;
    struct store *st;
    char *principal, *key;
    char fingerprint[65];
    http_handler handler;
    idem_error_fn on_error;
    unsigned flags;
    struct store_idem *existing;
    /* the captured reply */
    int status;
    char *content_type;
    char *body;
    size_t len;
    char *headers;
};

/* Process-wide: one instance per process, set before serving. */
static char our_instance[160];
static char our_lock_dir[512];

void idem_set_instance(const char *instance, const char *lock_dir)
{
    snprintf(our_instance, sizeof our_instance, "%s", instance ? instance : "");
    snprintf(our_lock_dir, sizeof our_lock_dir, "%s", lock_dir ? lock_dir : "");
}

int idem_key_valid(const char *key)
{
    size_t n = 0;
    for (; key[n]; n++)
        if ((unsigned char)key[n] < 0x21 || (unsigned char)key[n] > 0x7e || n >= IDEM_KEY_MAX)
            return 0;
    return n > 0;
}

static void job_free(struct idem_job *j)
{
    store_idem_free(j->existing);
    free(j->principal);
    free(j->key);
    free(j->content_type);
    free(j->body);
    free(j->headers);
    free(j);
}

static void error_reply(struct idem_job *j, int status, const char *code, const char *msg)
{
    if (j->on_error)
        j->on_error(j->r, status, code, msg);
    else
        http_reply_error(j->r, status, code, msg);
}

/* ---- after the handler replied: persist, then send ---- */

int idem_record(struct store *st, const char *principal, const char *key, unsigned flags,
                int status, const char *headers, const char *body, size_t len)
{
    if (status >= 500 && !(flags & IDEM_KEEP_5XX))
        return store_idem_abandon(st, principal, key);
    return store_idem_finish(st, principal, key, status, headers, body, len);
}

static int op_finish(struct store *st, void *arg)
{
    struct idem_job *j = arg;
    return idem_record(st, j->principal, j->key, j->flags, j->status, j->headers, j->body, j->len);
}

static void finish_done(int status, void *arg)
{
    struct idem_job *j = arg;
    if (status != 0)
        log_msg(LOG_WARN, j->r->request_id, "idempotency record not saved: %s", agentd_err_msg(status));
    http_reply_raw(j->r, j->status, j->content_type, j->body, j->len);
    job_free(j);
}

static void capture(struct http_req *r, int status, const char *content_type, char *body, size_t len,
                    void *ud)
{
    struct idem_job *j = ud;
    j->status = status;
    j->content_type = content_type ? strdup(content_type) : NULL;
    j->body = body;
    j->len = len;
    json_t *h = http_reply_headers_json(r);
    if (content_type)
        json_object_set_new(h, "Content-Type", json_string(content_type));
    j->headers = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (store_async(j->st, r->loop, op_finish, j, finish_done) != 0)
        finish_done(AGENTD_EBUSY, j);
}

/* ---- the claim ---- */

/* A claim in progress whose process is known dead (its lock file free, or
 * its pid on this host gone; elsewhere the lease). A claim that names no
 * process (written before claims did, or by an older replica) is left to
 * the lease. */
static int claim_orphaned(const struct idem_request *q, const struct store_idem *ex)
{
    if (!ex->owner || !q->owner || strcmp(ex->owner, q->owner) == 0)
        return 0;
    int64_t age = clock_wall_ms() - ex->created_at;
    return instance_orphaned(q->owner, ex->owner, age, STORE_IDEM_LEASE_MS,
                             instance_probe, (void *)q->lock_dir,
                             instance_pid_dead);
}

int idem_claim(struct store *st, const struct idem_request *q, char fingerprint[65],
               struct store_idem **existing)
{
    const char *principal = q->principal ? q->principal : "anonymous";
    store_idem_fingerprint(q->method, q->uri, q->body, q->body_len, fingerprint);
    int rc = store_idem_claim(st, principal, q->key, fingerprint, q->owner,
                              clock_wall_ms() + IDEM_TTL_MS, existing);
    struct store_idem *ex = rc == AGENTD_EEXIST ? *existing : NULL;
    if (!q->takeover || !ex || strcmp(ex->state, STORE_IDEM_IN_PROGRESS) != 0 ||
        strcmp(ex->fingerprint, fingerprint) != 0 || !claim_orphaned(q, ex))
        return rc;
    /* of several takers one wins; the others see the winner's live claim */
    int trc = store_idem_takeover(st, principal, q->key, ex->owner, q->owner);
    if (trc != 0)
        return rc;
    log_msg(LOG_INFO, NULL, "idempotency: took over the claim of dead process %s", ex->owner);
    instance_recovered("idempotency_claim");
    store_idem_free(ex);
    *existing = NULL;
    return 0;
}

static int op_begin(struct store *st, void *arg)
{
    struct idem_job *j = arg;
    struct http_req *r = j->r;
    struct idem_request q = { .principal = j->principal, .key = j->key,
                              .method = http_method_name(r->method), .uri = r->uri,
                              .body = r->body, .body_len = r->body_len,
                              .owner = our_instance[0] ? our_instance : NULL,
                              .lock_dir = our_lock_dir[0] ? our_lock_dir : NULL,
                              .takeover = (j->flags & IDEM_TAKEOVER) != 0 };
    return idem_claim(st, &q, j->fingerprint, &j->existing);
}

static void replay(struct idem_job *j)
{
    struct store_idem *rec = j->existing;
    json_error_t e;
    json_t *h = rec->headers ? json_loads(rec->headers, 0, &e) : NULL;
    const char *ctype = NULL;
    const char *name;
    json_t *v;
    json_object_foreach(h, name, v) {
        if (strcasecmp(name, "Content-Type") == 0)
            ctype = json_string_value(v);
        else if (json_is_string(v))
            http_set_header(j->r, name, json_string_value(v));
    }
    http_set_header(j->r, "Idempotent-Replayed", "true");
    http_reply_raw(j->r, rec->status, ctype, rec->body, rec->body_len);
    json_decref(h);
}

void idem_decide(int claim_rc, const struct store_idem *existing, const char *fingerprint,
                 struct idem_decision *d)
{
    *d = (struct idem_decision){ .verdict = IDEM_REFUSE, .status = 409 };
    if (claim_rc == 0) {
        d->verdict = IDEM_RUN;
    } else if (claim_rc == AGENTD_EEXIST && existing) {
        if (strcmp(existing->fingerprint, fingerprint) != 0) {
            d->code = "idempotency_key_reused";
            d->message = "this Idempotency-Key was already used with a different request";
        } else if (strcmp(existing->state, STORE_IDEM_DONE) != 0) {
            d->code = "idempotency_in_progress";
            d->message = "a request with this Idempotency-Key is still being processed; retry later";
            d->retry_after = 1;
        } else {
            d->verdict = IDEM_REPLAY;
        }
    } else {
        d->status = agentd_err_http(claim_rc);
        d->code = agentd_err_code(claim_rc);
        d->message = agentd_err_msg(claim_rc);
        d->retry_after = d->status == 503;
    }
}

static void begin_done(int status, void *arg)
{
    struct idem_job *j = arg;
    struct idem_decision d;
    idem_decide(status, j->existing, j->fingerprint, &d);
    if (d.verdict == IDEM_RUN) {
        j->r->reply_hook = capture;
        j->r->hook_ud = j;
        j->handler(j->r);
        return;
    }
    if (d.verdict == IDEM_REPLAY) {
        replay(j);
    } else {
        if (d.retry_after)
            http_set_header(j->r, "Retry-After", "1");
        error_reply(j, d.status, d.code, d.message);
    }
    job_free(j);
}

void idem_handle(struct http_req *r, struct store *st, const char *principal, http_handler handler,
                 idem_error_fn on_error, unsigned flags)
{
    const char *key = http_req_header(r, "Idempotency-Key");
    if (!key) {
        handler(r);
        return;
    }
    struct idem_job tmp = { .r = r, .on_error = on_error };
    if (!idem_key_valid(key)) {
        error_reply(&tmp, 400, "invalid_idempotency_key",
                    "Idempotency-Key must be 1-255 visible ASCII characters");
        return;
    }
    struct idem_job *j = calloc(1, sizeof *j);
    if (j) {
        j->principal = strdup(principal ? principal : "anonymous");
        j->key = strdup(key);
    }
    if (!j || !j->principal || !j->key) {
        if (j)
            job_free(j);
        error_reply(&tmp, 503, "out_of_memory", "out of memory");
        return;
    }
    j->r = r;
    j->st = st;
    j->handler = handler;
    j->on_error = on_error;
    j->flags = flags;
    int rc = store_async(st, r->loop, op_begin, j, begin_done);
    if (rc != 0) {
        job_free(j);
        http_set_header(r, "Retry-After", "1");
        error_reply(&tmp, agentd_err_http(rc), agentd_err_code(rc), agentd_err_msg(rc));
    }
}
