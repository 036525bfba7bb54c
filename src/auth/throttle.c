/* Authentication failures throttled per client address: failures are charged
 * to a rate-limit backend; exhausted addresses are remembered in a bounded
 * local table that the gate reads before any key lookup. */
#include "auth/throttle.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define NS_PER_S 1000000000LL
#define SHARDS 16
#define SLOTS 256 /* per shard: at most 4096 addresses blocked at once */
#define PROBE 8

/* An address blocked until `until_ns` (monotonic); "" = free. */
struct block {
    char addr[48];
    int64_t until_ns;
};

struct shard {
    pthread_mutex_t mu;
    struct block b[SLOTS];
};

struct auth_throttle {
    struct ratelimit_backend *be;
    struct ratelimit_rule rule;
    struct shard shards[SHARDS];
};

/* One failure's charge in flight (the backend may answer later). */
struct charge {
    struct auth_throttle *t;
    int64_t now_ns;
    char addr[48];
};

int auth_throttle_new(const struct ratelimit_rule *rule, struct ratelimit_backend *b,
                      struct auth_throttle **out)
{
    *out = NULL;
    if (!rule->interval_ns) {
        if (b)
            b->free(b);
        return 0;
    }
    struct auth_throttle *t = b ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        if (b)
            b->free(b);
        return AGENTD_ENOMEM;
    }
    t->be = b;
    t->rule = *rule;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->shards[i].mu, NULL);
    *out = t;
    return 0;
}

void auth_throttle_free(struct auth_throttle *t)
{
    if (!t)
        return;
    t->be->free(t->be);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].mu);
    free(t);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int64_t auth_throttle_wait(struct auth_throttle *t, const char *addr, int64_t now_ns)
{
    if (!t || !addr)
        return 0;
    uint64_t h = hash(addr);
    struct shard *s = &t->shards[h % SHARDS];
    int64_t until = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < PROBE; i++) {
        struct block *b = &s->b[(h / SHARDS + (uint64_t)i) % SLOTS];
        if (b->addr[0] && strcmp(b->addr, addr) == 0) {
            until = b->until_ns;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return until > now_ns ? (until - now_ns + NS_PER_S - 1) / NS_PER_S : 0;
}

/* Blocks addr until until_ns. A full probe window gives up the entry that
 * expires first, so a flood from many addresses costs bounded memory (and
 * an evicted address only gets its budget's next unit early). */
static void block(struct auth_throttle *t, const char *addr, int64_t until_ns)
{
    uint64_t h = hash(addr);
    struct shard *s = &t->shards[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct block *hit = NULL, *spare = NULL;
    for (int i = 0; i < PROBE && !hit; i++) {
        struct block *b = &s->b[(h / SHARDS + (uint64_t)i) % SLOTS];
        if (b->addr[0] && strcmp(b->addr, addr) == 0)
            hit = b;
        else if (!spare || b->until_ns < spare->until_ns) /* free slots hold 0 */
            spare = b;
    }
    if (!hit) {
        snprintf(spare->addr, sizeof spare->addr, "%s", addr);
        spare->until_ns = until_ns;
    } else if (until_ns > hit->until_ns) {
        hit->until_ns = until_ns;
    }
    pthread_mutex_unlock(&s->mu);
}

static void charged(const struct ratelimit_decision *d, void *ud)
{
    struct charge *c = ud;
    int64_t wait_ns = 0;
    if (d->unavailable)
        wait_ns = 0; /* the shared limiter cannot decide: the lookup still protects */
    else if (!d->allowed)
        wait_ns = (d->retry_after_s > 0 ? d->retry_after_s : 1) * NS_PER_S;
    else if (d->remaining <= 0)
        wait_ns = c->t->rule.interval_ns; /* the last unit is spent: until the next one */
    if (wait_ns > 0)
        block(c->t, c->addr, c->now_ns + wait_ns);
    free(c);
}

void auth_throttle_fail(struct auth_throttle *t, const char *addr, int64_t now_ns)
{
    if (!t || !addr)
        return;
    struct charge *c = calloc(1, sizeof *c);
    if (!c)
        return; /* a lost charge lets one more failure through, never refuses */
    c->t = t;
    c->now_ns = now_ns;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    t->be->check(t->be, addr, "auth_failures", &t->rule, 1, now_ns, charged, c);
}
