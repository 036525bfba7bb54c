/* store_async(): one small job record per call carries the op and its status
 * from the worker thread back to the loop. */
#include "store/async.h"

#include <errno.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/pool.h"

struct job {
    struct store *s;
    int (*op)(struct store *s, void *args);
    void *args;
    void (*done)(int status, void *args);
    int status;
};

static void job_work(void *arg)
{
    struct job *j = arg;
    j->status = j->op(j->s, j->args);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    if (j->done)
        j->done(j->status, j->args);
    free(j);
}

int store_async(struct store *s, struct loop *origin, int (*op)(struct store *s, void *args),
                void *args, void (*done)(int status, void *args))
{
    struct pool *p = pool_default();
    if (!s || !op || !p)
        return AGENTD_EINVAL;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return AGENTD_ENOMEM;
    *j = (struct job){ .s = s, .op = op, .args = args, .done = done };
    int rc = pool_submit(p, origin, job_work, job_done, j);
    if (rc) {
        free(j);
        return rc; /* AGENTD_EBUSY or AGENTD_ENOMEM */
    }
    return 0;
}
