/* The A2A task model in the store: a task row keeps its state in its
 * column and the rest of the model as JSON in its artifacts column. */
#define _GNU_SOURCE
#include "api/a2a_task_model.h"
#include "api/a2a_wire.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/reqid.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void a2a_task_stamp(json_t *task)
{
    char ts[32];
    a2a_timestamp(clock_wall_ms(), ts);
    json_object_set_new(task, "timestamp", json_string(ts));
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
    return m;
}

/* The document kept in the artifacts column: the model less its columns. */
char *a2a_task_doc(const json_t *task)
{
    json_t *d = json_deep_copy(task);
    if (!d)
        return NULL;
    json_object_del(d, "id");
    json_object_del(d, "contextId");
    json_object_del(d, "state");
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return s;
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

