/* Store calls from loop threads: the call runs on the default worker pool and
 * its completion comes back to the loop that asked, so loops never block. */
#ifndef AGENTD_STORE_ASYNC_H
#define AGENTD_STORE_ASYNC_H

#include "store/store.h"

struct loop;

/* Pack a call's arguments and results in `args`, write `op` to make the
 * store calls, and get `done` with op's status on `origin`'s thread (origin
 * NULL: on the worker, right after op). args stays the caller's throughout;
 * done is where it is usually freed. Uses pool_default().
 * Returns 0, or AGENTD_EBUSY (queue full), AGENTD_ENOMEM, AGENTD_EINVAL (no
 * pool): then neither op nor done runs. */
int store_async(struct store *s, struct loop *origin, int (*op)(struct store *s, void *args),
                void *args, void (*done)(int status, void *args));

#endif
