/* The A2A task model in the store: a task row keeps its state in its
 * column and the rest of the model as JSON in its artifacts column. */
#define _GNU_SOURCE
#include "api/a2a_task_model.h"
#include "api/a2a_wire.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/reqid.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void a2a_task_stamp(json_t *task)
{
    char ts[32];
    a2a_timestamp(clock_wall_ms(), ts);
    /* ASCII digits and punctuation: no UTF-8 check */
    json_object_set_new_nocheck(task, "timestamp", json_stringn_nocheck(ts, strlen(ts)));
}

/* The stored document is compact (a2a_task_doc): each message's contextId
 * and taskId are the row's, and "message" / an artifact's "parts" may be an
 * index into history (that message / its parts, stored once). */
static void task_expand(json_t *m, const char *id, const char *context_id)
{
    json_t *hist = json_object_get(m, "history");
    size_t i;
    json_t *v;
    json_array_foreach(hist, i, v) {
        if (json_is_object(v) && !json_object_get(v, "contextId"))
            json_object_set_new(v, "contextId", json_string(context_id));
        if (json_is_object(v) && !json_object_get(v, "taskId"))
            json_object_set_new(v, "taskId", json_string(id));
    }
    json_t *msg = json_object_get(m, "message");
    if (json_is_integer(msg)) {
        json_t *h = json_array_get(hist, (size_t)json_integer_value(msg));
        if (h)
            json_object_set(m, "message", h); /* in place: the key keeps its order */
        else
            json_object_del(m, "message");
    }
    json_array_foreach(json_object_get(m, "artifacts"), i, v) {
        json_t *parts = json_object_get(v, "parts");
        if (json_is_integer(parts)) {
            json_t *h = json_object_get(json_array_get(hist, (size_t)json_integer_value(parts)),
                                        "parts");
            json_object_set_new(v, "parts", h ? json_incref(h) : json_array());
        }
    }
}

json_t *a2a_task_model(const struct store_task *t)
{
    json_error_t je;
    json_t *m = json_loads(t->artifacts, 0, &je);
    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    json_object_set_new(m, "id", json_string(t->id));
    json_object_set_new(m, "contextId", json_string(t->context_id));
    json_object_set_new(m, "state", json_string(t->state));
    if (!json_is_array(json_object_get(m, "artifacts")))
        json_object_set_new(m, "artifacts", json_array());
    if (!json_is_array(json_object_get(m, "history")))
        json_object_set_new(m, "history", json_array());
    task_expand(m, t->id, t->context_id);
    return m;
}

/* The history entry that is v (or whose `key` is), else the first one from
 * `from` on equal to it (the last one with from < 0); -1 if none. Pointers
 * first: the front shares them; a copied model compares by value. */
static json_int_t hist_find(const json_t *hist, long from, const json_t *v, const char *key)
{
    size_t n = json_array_size(hist);
    for (size_t i = 0; i < n; i++) {
        const json_t *h = json_array_get(hist, i);
        if ((key ? json_object_get(h, key) : h) == v)
            return (json_int_t)i;
    }
    for (size_t j = 0; j < n; j++) {
        size_t i = from < 0 ? n - 1 - j : (size_t)from + j;
        const json_t *h = json_array_get(hist, i);
        const json_t *x = key ? json_object_get(h, key) : h;
        if (x && json_equal((json_t *)x, (json_t *)v))
            return (json_int_t)i;
    }
    return -1;
}

/* core/jsondump writes json_dumps' bytes without jansson's per-container
 * bookkeeping (the task's document is written twice a turn). */
static int doc_value(struct buf *b, const json_t *v)
{
    if (json_is_string(v)) /* most of a task's values: straight to the buffer */
        return buf_json_str(b, json_string_value(v), json_string_length(v)) == 0 ? 0
                                                                                  : AGENTD_ENOMEM;
    return jsondump_buf(b, v, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? 0 : AGENTD_ENOMEM;
}

/* A history index (>= 0) in decimal, without a format parse per call. */
static void doc_index(struct buf *b, json_int_t at)
{
    char d[24], *p = d + sizeof d;
    unsigned long long v = (unsigned long long)at;
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    buf_append(b, p, (size_t)(d + sizeof d - p));
}

static void doc_key(struct buf *b, int *first, const char *k)
{
    if (!*first)
        buf_append(b, ",", 1);
    *first = 0;
    buf_json_str(b, k, strlen(k)); /* jansson checked the key's UTF-8 on insert */
    buf_append(b, ":", 1);
}

/* A message less the ids the task's row holds (a non-object as it is). */
static int doc_message(struct buf *b, const json_t *msg, const json_t *id,
                       const json_t *context_id)
{
    if (!json_is_object(msg))
        return doc_value(b, msg);
    int first = 1, rc = 0;
    const char *k;
    json_t *v;
    buf_append(b, "{", 1);
    json_object_foreach((json_t *)msg, k, v) {
        if ((!strcmp(k, "contextId") && json_equal(v, (json_t *)context_id)) ||
            (!strcmp(k, "taskId") && json_equal(v, (json_t *)id)))
            continue;
        doc_key(b, &first, k);
        if ((rc = doc_value(b, v)) != 0)
            return rc;
    }
    buf_append(b, "}", 1);
    return 0;
}

static int doc_artifacts(struct buf *b, const json_t *arts, const json_t *hist)
{
    size_t i;
    long from = 0;
    const json_t *a;
    int rc = 0;
    buf_append(b, "[", 1);
    json_array_foreach(arts, i, a) {
        if (i)
            buf_append(b, ",", 1);
        const json_t *parts = json_object_get(a, "parts");
        json_int_t at = json_is_array(parts) ? hist_find(hist, from, parts, "parts") : -1;
        if (at < 0) {
            if ((rc = doc_value(b, a)) != 0)
                return rc;
            continue;
        }
        from = (long)at + 1; /* answers follow the history's order */
        int first = 1;
        const char *k;
        json_t *v;
        buf_append(b, "{", 1);
        json_object_foreach((json_t *)a, k, v) {
            doc_key(b, &first, k);
            if (!strcmp(k, "parts"))
                doc_index(b, at);
            else if ((rc = doc_value(b, v)) != 0)
                return rc;
        }
        buf_append(b, "}", 1);
    }
    buf_append(b, "]", 1);
    return 0;
}

/* The document kept in the artifacts column: the model less its columns
 * (id, contextId, state), compact (task_expand reads it back). Written
 * straight into one buffer; the model is only read. */
char *a2a_task_doc(const json_t *task)
{
    const json_t *id = json_object_get(task, "id"), *ctx = json_object_get(task, "contextId");
    const json_t *hist = json_object_get(task, "history");
    struct buf b = { 0 };
    const char *k;
    json_t *v;
    int first = 1, rc = json_is_object(task) ? 0 : AGENTD_EINVAL;
    buf_reserve(&b, 512);
    buf_append(&b, "{", 1);
    json_object_foreach((json_t *)task, k, v) {
        if (rc)
            break;
        if (!strcmp(k, "id") || !strcmp(k, "contextId") || !strcmp(k, "state"))
            continue;
        doc_key(&b, &first, k);
        if (!strcmp(k, "history") && json_is_array(v)) {
            size_t i;
            json_t *h;
            buf_append(&b, "[", 1);
            json_array_foreach(v, i, h) {
                if (i)
                    buf_append(&b, ",", 1);
                if ((rc = doc_message(&b, h, id, ctx)) != 0)
                    break;
            }
            buf_append(&b, "]", 1);
        } else if (!strcmp(k, "message") && json_is_object(v)) {
            json_int_t at = hist_find(hist, -1, v, NULL);
            if (at >= 0)
                doc_index(&b, at);
            else
                rc = doc_message(&b, v, id, ctx);
        } else if (!strcmp(k, "artifacts") && json_is_array(v)) {
            rc = doc_artifacts(&b, v, hist);
        } else {
            rc = doc_value(&b, v);
        }
    }
    buf_append(&b, "}", 1);
    if (rc || b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

int a2a_task_create(struct store *st, const json_t *task, const char *owner)
{
    char *doc = a2a_task_doc(task);
    if (!doc)
        return AGENTD_ENOMEM;
    struct store_task t = { .id = (char *)json_string_value(json_object_get(task, "id")),
                            .context_id = (char *)json_string_value(
                                json_object_get(task, "contextId")),
                            .owner = (char *)owner,
                            .state = (char *)json_string_value(json_object_get(task, "state")),
                            .artifacts = doc };
    int rc = store_task_create(st, &t);
    free(doc);
    return rc;
}

int a2a_task_load(struct store *st, const char *id, const char *owner, json_t **out)
{
    struct store_task *t = NULL;
    int rc = store_task_get(st, id, &t);
    if (rc == 0 && strcmp(t->owner, owner) != 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0 && !(*out = a2a_task_model(t)))
        rc = AGENTD_ENOMEM;
    store_task_free(t);
    return rc;
}

int a2a_task_mutate(struct store *st, const char *id, const char *owner, a2a_task_fn fn,
                    void *arg, json_t **out)
{
    for (int tries = 0; tries < 50; tries++) {
        struct store_task *t = NULL;
        int rc = store_task_get(st, id, &t);
        if (rc == 0 && strcmp(t->owner, owner) != 0)
            rc = AGENTD_ENOTFOUND;
        json_t *m = rc == 0 ? a2a_task_model(t) : NULL;
        if (rc == 0 && !m)
            rc = AGENTD_ENOMEM;
        int r = rc == 0 ? fn(m, arg) : rc;
        if (r == 0) {
            char *doc = a2a_task_doc(m);
            r = doc ? store_task_update_if(st, id,
                                           json_string_value(json_object_get(m, "state")), doc,
                                           t->state, t->artifacts)
                    : AGENTD_ENOMEM;
            free(doc);
        }
        store_task_free(t);
        if (r == AGENTD_ECONFLICT) {
            json_decref(m);
            continue;
        }
        if (r >= 0 && out)
            *out = m;
        else
            json_decref(m);
        return r;
    }
    return AGENTD_EBUSY;
}

