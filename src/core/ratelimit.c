/* Rate limits: rule parsing, the GCRA bucket math, and the in-process
 * backend (a bounded, sharded hash table of one timestamp per bucket). */
#include "core/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000LL
#define MAX_N 1000000000LL
/* tau = burst * interval must leave room for now + tau without overflow */
#define MAX_TAU (INT64_MAX / 4)

static int parse_count(const char *s, char **end, int64_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, end, 10);
    if (errno || v < 1 || v > MAX_N)
        return -1;
    *out = v;
    return 0;
}

int ratelimit_rule_parse(const char *text, struct ratelimit_rule *rule, struct agentd_error *e)
{
    rule->interval_ns = 0;
    rule->burst = 0;
    if (!text || strcmp(text, "off") == 0)
        return 0;
    char *p;
    int64_t n, burst, per_ns;
    if (parse_count(text, &p, &n) != 0 || *p != '/')
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "\"%.40s\": expected off or RATE/UNIT[,BURST] such as 20/s,40 or 1200/m",
                           text);
    p++;
    switch (*p) {
    case 's': per_ns = NS_PER_S; break;
    case 'm': per_ns = 60 * NS_PER_S; break;
    case 'h': per_ns = 3600 * NS_PER_S; break;
    default:
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "\"%.40s\": the unit is s, m or h (per second, minute, hour)", text);
    }
    p++;
    burst = n;
    if (*p == ',') {
        if (parse_count(p + 1, &p, &burst) != 0)
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                               "\"%.40s\": the burst is a whole number from 1 to 1000000000", text);
    }
    if (*p)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "\"%.40s\": unexpected \"%.10s\" (expected RATE/UNIT[,BURST])", text, p);
    int64_t interval = per_ns / n;
    if (interval < 1)
        interval = 1;
    if (burst > MAX_TAU / interval)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "\"%.40s\": the burst is too large for this rate", text);
    rule->interval_ns = interval;
    rule->burst = burst;
    return 0;
}

static int64_t ceil_s(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + NS_PER_S - 1) / NS_PER_S;
}

int64_t ratelimit_gcra(const struct ratelimit_rule *rule, int64_t tat, int64_t cost,
                       int64_t now_ns, struct ratelimit_decision *d)
{
    int64_t t = rule->interval_ns, tau = rule->burst * t;
    memset(d, 0, sizeof *d);
    d->limit = rule->burst;
    if (cost < 0)
        cost = 0;
    if (cost > rule->burst)
        cost = rule->burst + 1; /* can never fit; keeps cost * t in range */
    int64_t base = tat > now_ns ? tat : now_ns;
    int64_t next = base + cost * t;
    if (next - now_ns > tau) {
        /* refused: nothing is taken; the caller learns when this cost fits */
        d->remaining = (tau - (base - now_ns)) / t;
        d->reset_s = ceil_s(base - now_ns);
        d->retry_after_s = ceil_s(next - now_ns - tau);
        if (d->retry_after_s < 1)
            d->retry_after_s = 1;
        return tat;
    }
    d->allowed = 1;
    d->remaining = (tau - (next - now_ns)) / t;
    d->reset_s = ceil_s(next - now_ns);
    return next;
}

/* ---- the in-process backend ---- */

#define NSHARDS 64

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t tat;
    char key[]; /* bucket '\x1f' key */
};

struct shard {
    pthread_mutex_t mu;
    struct entry **slots;
    size_t nslots; /* a power of two */
    size_t n, cap;
};

struct mem {
    struct ratelimit_backend base; /* first: the interface pointer is the object */
    struct shard shards[NSHARDS];
};

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = a; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *s = b; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int key_equal(const struct entry *en, const char *bucket, const char *key)
{
    size_t bl = strlen(bucket);
    return strncmp(en->key, bucket, bl) == 0 && en->key[bl] == 0x1f &&
           strcmp(en->key + bl + 1, key) == 0;
}

/* A full shard makes room: buckets full again (tat <= now) are the same as
 * no bucket; if none is, the one nearest to full goes (it forgets the
 * least). Either way memory stays bounded. */
static void shard_evict(struct shard *sh, int64_t now)
{
    struct entry **oldest = NULL;
    for (size_t i = 0; i < sh->nslots; i++) {
        for (struct entry **pp = &sh->slots[i]; *pp;) {
            struct entry *en = *pp;
            if (en->tat <= now) {
                *pp = en->next;
                free(en);
                sh->n--;
                continue;
            }
            if (!oldest || en->tat < (*oldest)->tat)
                oldest = pp;
            pp = &en->next;
        }
    }
    if (sh->n >= sh->cap && oldest) {
        struct entry *en = *oldest;
        *oldest = en->next;
        free(en);
        sh->n--;
    }
}

static void mem_check(struct ratelimit_backend *b, const char *key, const char *bucket,
                      const struct ratelimit_rule *rule, int64_t cost, int64_t now_ns,
                      ratelimit_done_fn done, void *ud)
{
    struct mem *m = (struct mem *)b;
    struct ratelimit_decision d;
    uint64_t h = fnv1a(bucket, key);
    struct shard *sh = &m->shards[h % NSHARDS];
    pthread_mutex_lock(&sh->mu);
    size_t slot = (size_t)(h / NSHARDS) & (sh->nslots - 1);
    struct entry *en = sh->slots[slot];
    while (en && !(en->hash == h && key_equal(en, bucket, key)))
        en = en->next;
    int64_t tat = ratelimit_gcra(rule, en ? en->tat : 0, cost, now_ns, &d);
    if (en) {
        en->tat = tat;
    } else if (tat > now_ns) { /* a bucket that is full needs no entry */
        if (sh->n >= sh->cap)
            shard_evict(sh, now_ns);
        size_t bl = strlen(bucket), kl = strlen(key);
        en = malloc(sizeof *en + bl + kl + 2);
        if (en) { /* out of memory: this request passes unrecorded */
            en->hash = h;
            en->tat = tat;
            memcpy(en->key, bucket, bl);
            en->key[bl] = 0x1f;
            memcpy(en->key + bl + 1, key, kl + 1);
            en->next = sh->slots[slot];
            sh->slots[slot] = en;
            sh->n++;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    done(&d, ud);
}

static void mem_free(struct ratelimit_backend *b)
{
    struct mem *m = (struct mem *)b;
    if (!m)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &m->shards[i];
        for (size_t j = 0; sh->slots && j < sh->nslots; j++) {
            for (struct entry *en = sh->slots[j], *nx; en; en = nx) {
                nx = en->next;
                free(en);
            }
        }
        free(sh->slots);
        pthread_mutex_destroy(&sh->mu);
    }
    free(m);
}

struct ratelimit_backend *ratelimit_mem_new(size_t max_entries)
{
    struct mem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.check = mem_check;
    m->base.free = mem_free;
    size_t cap = max_entries / NSHARDS;
    if (cap < 1)
        cap = 1;
    size_t nslots = 1;
    while (nslots < cap)
        nslots <<= 1;
    int ok = 1;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &m->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->cap = cap;
        sh->nslots = nslots;
        sh->slots = calloc(nslots, sizeof *sh->slots);
        ok = ok && sh->slots;
    }
    if (!ok) {
        mem_free(&m->base);
        return NULL;
    }
    return &m->base;
}

size_t ratelimit_mem_size(struct ratelimit_backend *b)
{
    struct mem *m = (struct mem *)b;
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&m->shards[i].mu);
        n += m->shards[i].n;
        pthread_mutex_unlock(&m->shards[i].mu);
    }
    return n;
}
