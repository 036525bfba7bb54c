/* The A2A task model in the store (shared by the A2A front's files): the
 * row's state column plus the rest of the model as JSON in its artifacts
 * column, read and changed by compare-and-swap. */
#ifndef AGENTD_API_A2A_TASK_MODEL_H
#define AGENTD_API_A2A_TASK_MODEL_H

#include <jansson.h>

struct store;
struct store_task;

/* The task row -> the internal task model (a2a_wire.h), a new reference or NULL. */
json_t *a2a_task_model(const struct store_task *t);
/* Sets the model's status timestamp to now. */
void a2a_task_stamp(json_t *task);
/* The JSON kept in the row's artifacts column: the model less its columns
 * (id, contextId, state). Heap string or NULL (out of memory). */
char *a2a_task_doc(const json_t *task);
/* Writes a new task (owner = the principal). */
int a2a_task_create(struct store *st, const json_t *task, const char *owner);
/* The caller's task, or AGENTD_ENOTFOUND (another principal's too). */
int a2a_task_load(struct store *st, const char *id, const char *owner, json_t **out);

/* Applies fn to the caller's task and saves the result by compare-and-swap
 * on what was read, retrying on a lost race: a turn's outcome, a cancel,
 * the next message and the turn mark never undo each other (across
 * replicas too). fn returns 0 (save), A2A_TASK_KEEP, A2A_TASK_ENDED or an
 * AGENTD_E* status; that is returned (0 once saved). *out (may be NULL)
 * := the task as saved or left. */
typedef int (*a2a_task_fn)(json_t *task, void *arg);
#define A2A_TASK_KEEP 1  /* fn: leave the task as it is */
#define A2A_TASK_ENDED 2 /* fn: the task is terminal; nothing saved */
int a2a_task_mutate(struct store *st, const char *id, const char *owner, a2a_task_fn fn,
                    void *arg, json_t **out);


#endif
