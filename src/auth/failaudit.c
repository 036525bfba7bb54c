/* Authentication failures (and throttled requests) into the audit log: one
 * row per action and address per minute (store_audit_bump), at most one
 * write in flight for each. */
#include "auth/failaudit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/reqid.h"
#include "http/server.h"
#include "store/async.h"
#include "store/store.h"

#define SLOTS 64
#define WINDOW_MS 60000

/* An (action, address) with a write in flight, or recently seen. Its
 * failures that arrive while the write runs wait in `pending` for the next. */
struct slot {
    char addr[96]; /* "<action> <address>" */
    int64_t last_ms;
    int64_t pending;
    int busy;
};

struct write {
    char slot[96];
    char action[24];
    char target[80];
    char reason[16];
    char request_id[REQID_MAX + 1];
    int64_t count, since_ms;
};

static struct store *_Atomic audit_store;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];

void auth_failaudit_set_store(struct store *st) { atomic_store(&audit_store, st); }

static int op_bump(struct store *st, void *arg)
{
    struct write *w = arg;
    struct store_audit a = { .principal = "", .action = w->action, .target = w->target,
                             .request_id = w->request_id, .outcome = w->reason,
                             .count = w->count };
    return store_audit_bump(st, &a, w->since_ms);
}

static struct slot *slot_of(const char *addr, int64_t now)
{
    struct slot *spare = NULL;
    for (int i = 0; i < SLOTS; i++) {
        if (!strcmp(slots[i].addr, addr))
            return &slots[i];
        /* an idle slot not seen for the longest is reused */
        if (!slots[i].busy && (!spare || slots[i].last_ms < spare->last_ms))
            spare = &slots[i];
    }
    if (spare) {
        snprintf(spare->addr, sizeof spare->addr, "%s", addr);
        spare->pending = 0;
        spare->last_ms = now;
    }
    return spare;
}

static void submit(struct write *w);

/* On the worker, after the write: the failures that came meanwhile go next. */
static void bump_done(int status, void *arg)
{
    (void)status; /* a lost audit write loses a count, never a request */
    struct write *w = arg;
    const char *addr = w->slot;
    int64_t more = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++)
        if (!strcmp(slots[i].addr, addr)) {
            more = slots[i].pending;
            slots[i].pending = 0;
            slots[i].busy = more > 0;
            break;
        }
    pthread_mutex_unlock(&mu);
    if (more > 0) {
        int64_t now = clock_wall_ms();
        w->count = more;
        w->since_ms = now - now % WINDOW_MS;
        submit(w);
        return;
    }
    free(w);
}

static void submit(struct write *w)
{
    struct store *st = atomic_load(&audit_store);
    if (!st || store_async(st, NULL, op_bump, w, bump_done) != 0)
        bump_done(0, w); /* frees w or tries the pending ones */
}

static void note(const struct http_req *r, const char *action, const char *reason)
{
    if (!atomic_load(&audit_store))
        return;
    /* the address without the port (r->remote is "addr:port", IPv6 bare):
     * each connection of a flood has a port of its own */
    char addr[64];
    snprintf(addr, sizeof addr, "%s", r->remote[0] ? r->remote : "-");
    char *colon = strrchr(addr, ':');
    if (colon && colon != addr)
        *colon = '\0';
    char key[96];
    snprintf(key, sizeof key, "%s %s", action, addr);
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&mu);
    struct slot *s = slot_of(key, now);
    int go = !s || !s->busy;
    if (s) {
        s->last_ms = now;
        if (go)
            s->busy = 1;
        else
            s->pending++;
    }
    pthread_mutex_unlock(&mu);
    if (!go)
        return;
    struct write *w = calloc(1, sizeof *w);
    if (!w) {
        if (s) {
            pthread_mutex_lock(&mu);
            s->busy = 0;
            pthread_mutex_unlock(&mu);
        }
        return;
    }
    snprintf(w->slot, sizeof w->slot, "%s", key);
    snprintf(w->action, sizeof w->action, "%s", action);
    snprintf(w->target, sizeof w->target, "addr:%s", addr);
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    snprintf(w->request_id, sizeof w->request_id, "%s", r->request_id);
    w->count = 1;
    w->since_ms = now - now % WINDOW_MS;
    submit(w);
}

void auth_failaudit_note(const struct http_req *r, const char *reason)
{
    note(r, "auth.failure", reason);
}

void auth_failaudit_throttled(const struct http_req *r)
{
    note(r, "auth.throttled", "throttled");
}
