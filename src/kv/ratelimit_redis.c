/* GCRA on Redis: one Lua script reads and writes a bucket atomically, on
 * Redis's own clock (TIME), so replicas with skewed clocks agree. */
#define _GNU_SOURCE
#include "kv/ratelimit_redis.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "kv/redis.h"

#define NS_PER_S 1000000000LL

/* KEYS[1] the bucket; ARGV interval (ns), burst, cost. Times are Redis's
 * TIME in microseconds (a double holds today's epoch in us exactly; in ns it
 * would not): the key holds the bucket's theoretical arrival time, expiring
 * when the bucket is full again. Returns {allowed, ns until full, remaining}. */
const char ratelimit_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1]) / 1000\n"
    "local tau = tonumber(ARGV[2]) * interval\n"
    "local cost = tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "if tat < now then tat = now end\n"
    "local nxt = tat + cost * interval\n"
    "local allowed = 1\n"
    "if nxt - now > tau then allowed = 0; nxt = tat\n"
    "elseif nxt > now then\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))\n"
    "end\n"
    "local ahead = nxt - now\n"
    "return {allowed, math.floor(ahead * 1000 + 0.5), math.floor((tau - ahead) / interval + 1e-6)}\n";

struct rl {
    struct ratelimit_backend base; /* first: the interface pointer is the object */
    struct redis *r;
    int closed;
    struct ratelimit_backend *fallback;
    char sha[41];
};

/* agentd_ratelimit_backend_errors_total: process-wide, as the registry is */
static struct metric_child *errors;
static _Atomic int64_t last_warn_ns;

struct call {
    struct rl *b;
    struct ratelimit_rule rule;
    int64_t cost, now_ns;
    ratelimit_done_fn done;
    void *ud;
    int evaled; /* EVAL sent after NOSCRIPT */
    char *key, *bucket, *rkey;
};

static void call_free(struct call *c)
{
    free(c->key);
    free(c->bucket);
    free(c->rkey);
    free(c);
}

int ratelimit_redis_decision(const struct redisReply *rep, const struct ratelimit_rule *rule,
                             int64_t cost, struct ratelimit_decision *d)
{
    memset(d, 0, sizeof *d);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
        return -1;
    for (int i = 0; i < 3; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    int64_t ahead = rep->element[1]->integer, t = rule->interval_ns;
    int64_t tau = rule->burst * t;
    d->allowed = rep->element[0]->integer == 1;
    d->limit = rule->burst;
    d->remaining = rep->element[2]->integer > 0 ? rep->element[2]->integer : 0;
    if (ahead < 0)
        ahead = 0;
    d->reset_s = (ahead + NS_PER_S - 1) / NS_PER_S;
    if (!d->allowed) {
        if (cost > rule->burst)
            cost = rule->burst + 1;
        int64_t wait = ahead + cost * t - tau;
        d->retry_after_s = wait <= 0 ? 1 : (wait + NS_PER_S - 1) / NS_PER_S;
    }
    return 0;
}

/* Redis could not decide: refuse 503 (closed) or decide here (open) */
static void decide_without(struct call *c, const char *why)
{
    if (errors)
        metric_inc(errors);
    int64_t now = clock_mono_ns(), last = atomic_load(&last_warn_ns);
    if ((last == 0 || now - last > 60 * NS_PER_S) &&
        atomic_compare_exchange_strong(&last_warn_ns, &last, now))
        log_msg(LOG_WARN, NULL, "rate limit: redis cannot decide (%s): %s", why,
                c->b->closed ? "refusing (AGENTD_RATE_LIMIT_ON_REDIS_DOWN=closed)"
                             : "this replica limits on its own (AGENTD_RATE_LIMIT_ON_REDIS_DOWN=open)");
    if (c->b->closed) {
        struct ratelimit_decision d = { .allowed = 0, .unavailable = 1, .limit = c->rule.burst,
                                        .retry_after_s = 1 };
        c->done(&d, c->ud);
    } else {
        c->b->fallback->check(c->b->fallback, c->key, c->bucket, &c->rule, c->cost, c->now_ns,
                              c->done, c->ud);
    }
    call_free(c);
}

static void send_script(struct call *c);

static void on_reply(struct redisReply *rep, void *ud)
{
    struct call *c = ud;
    if (!rep) {
        decide_without(c, "unreachable or timed out");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && !c->evaled && rep->str &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        c->evaled = 1; /* first use on this Redis (or after SCRIPT FLUSH/restart) */
        send_script(c);
        return;
    }
    struct ratelimit_decision d;
    if (ratelimit_redis_decision(rep, &c->rule, c->cost, &d) != 0) {
        char why[120];
        snprintf(why, sizeof why, "unexpected reply %.80s",
                 rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str : "");
        decide_without(c, why);
        return;
    }
    c->done(&d, c->ud);
    call_free(c);
}

static void send_script(struct call *c)
{
    char interval[24], burst[24], cost[24];
    snprintf(interval, sizeof interval, "%" PRId64, c->rule.interval_ns);
    snprintf(burst, sizeof burst, "%" PRId64, c->rule.burst);
    snprintf(cost, sizeof cost, "%" PRId64, c->cost);
    const char *argv[] = { c->evaled ? "EVAL" : "EVALSHA",
                           c->evaled ? ratelimit_redis_script : c->b->sha, "1", c->rkey,
                           interval, burst, cost };
    redis_command(c->b->r, 7, argv, NULL, on_reply, c);
}

static void rl_check(struct ratelimit_backend *base, const char *key, const char *bucket,
                     const struct ratelimit_rule *rule, int64_t cost, int64_t now_ns,
                     ratelimit_done_fn done, void *ud)
{
    struct rl *b = (struct rl *)base;
    struct call *c = calloc(1, sizeof *c);
    if (c) {
        c->key = strdup(key);
        c->bucket = strdup(bucket);
        if (asprintf(&c->rkey, "agentd:rl:%s:%s", bucket, key) < 0)
            c->rkey = NULL;
    }
    if (!c || !c->key || !c->bucket || !c->rkey) {
        if (c)
            call_free(c);
        /* out of memory: the in-process answer, as the in-process limiter does */
        b->fallback->check(b->fallback, key, bucket, rule, cost, now_ns, done, ud);
        return;
    }
    c->b = b;
    c->rule = *rule;
    c->cost = cost < 0 ? 0 : cost > rule->burst ? rule->burst + 1 : cost;
    c->now_ns = now_ns;
    c->done = done;
    c->ud = ud;
    send_script(c);
}

void ratelimit_redis_metrics_register(void)
{
    struct metric *m = metric_register("agentd_ratelimit_backend_errors_total",
                                       "Rate-limit checks the shared backend (Redis) could not "
                                       "decide: unreachable, timed out or a bad reply",
                                       METRIC_COUNTER, NULL, NULL);
    errors = m ? metric_only(m) : NULL;
}

static void rl_free(struct ratelimit_backend *base)
{
    struct rl *b = (struct rl *)base;
    b->fallback->free(b->fallback);
    free(b);
}

struct ratelimit_backend *ratelimit_redis_new(struct redis *r, int closed,
                                              struct ratelimit_backend *fallback)
{
    struct rl *b = fallback ? calloc(1, sizeof *b) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!b || !EVP_Digest(ratelimit_redis_script, strlen(ratelimit_redis_script), md, &mdlen,
                          EVP_sha1(), NULL) || mdlen != 20) {
        free(b);
        if (fallback)
            fallback->free(fallback);
        return NULL;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(b->sha + 2 * i, 3, "%02x", md[i]);
    b->base.check = rl_check;
    b->base.free = rl_free;
    b->r = r;
    b->closed = closed;
    b->fallback = fallback;
    ratelimit_redis_metrics_register();
    return &b->base;
}
