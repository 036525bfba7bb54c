/* Metrics registry. Values are doubles kept as bit patterns in atomic
 * 64-bit words and updated by compare-and-swap; children sit in an
 * open-addressed table of atomic pointers, so the read path takes no lock. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double METRICS_BUCKETS_LATENCY[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 0 };

#define TABLE_SIZE (METRICS_MAX_CHILDREN * 2)

struct metric_child {
    char *values[METRICS_MAX_LABELS];
    char *key;
    uint64_t hash;
    _Atomic uint64_t value;   /* double bits: counter/gauge value, histogram sum */
    _Atomic uint64_t count;   /* histogram observations */
    _Atomic uint64_t *buckets;/* histogram: per-bucket (non-cumulative) counts, +Inf last */
    const double *bounds;     /* the family's bucket bounds */
    int nbuckets;
};

struct metric {
    struct metric *next;
    char *name, *help;
    enum metric_type type;
    int nlabels;
    char *labels[METRICS_MAX_LABELS];
    int nbuckets;
    double *bounds;
    metric_value_fn fn;
    void *fn_ud;
    pthread_mutex_t mu;
    int nchildren;
    struct metric_child *overflow;
    _Atomic(struct metric_child *) table[TABLE_SIZE];
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metric *families, *families_tail;

static uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
static double u2d(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static struct metric *find_family(const char *name)
{
    for (struct metric *m = families; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static struct metric *family_new(const char *name, const char *help, enum metric_type type)
{
    struct metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->name = strdup(name);
    m->help = strdup(help);
    m->type = type;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void family_link(struct metric *m)
{
    if (families_tail)
        families_tail->next = m;
    else
        families = m;
    families_tail = m;
}

static struct metric_child *child_new(struct metric *m, const char *const *values, const char *key,
                                      uint64_t hash)
{
    struct metric_child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < m->nlabels; i++)
        c->values[i] = strdup(values[i] ? values[i] : "");
    c->key = strdup(key);
    c->hash = hash;
    if (m->type == METRIC_HISTOGRAM) {
        c->buckets = calloc((size_t)m->nbuckets + 1, sizeof *c->buckets);
        c->bounds = m->bounds;
        c->nbuckets = m->nbuckets;
    }
    atomic_init(&c->value, d2u(0.0));
    return c;
}

struct metric *metric_register(const char *name, const char *help, enum metric_type type,
                               const char *const *labels, const double *buckets)
{
    pthread_mutex_lock(&reg_mu);
    struct metric *m = find_family(name);
    if (m) {
        pthread_mutex_unlock(&reg_mu);
        return m;
    }
    m = family_new(name, help, type);
    if (!m) {
        pthread_mutex_unlock(&reg_mu);
        return NULL;
    }
    for (int i = 0; labels && labels[i] && i < METRICS_MAX_LABELS; i++)
        m->labels[m->nlabels++] = strdup(labels[i]);
    if (type == METRIC_HISTOGRAM) {
        if (!buckets)
            buckets = METRICS_BUCKETS_LATENCY;
        int n = 1;
        while (buckets[n] > buckets[n - 1])
            n++;
        m->bounds = malloc((size_t)n * sizeof *m->bounds);
        if (m->bounds) {
            memcpy(m->bounds, buckets, (size_t)n * sizeof *m->bounds);
            m->nbuckets = n;
        }
    }
    const char *other[METRICS_MAX_LABELS] = { "other", "other", "other", "other" };
    m->overflow = child_new(m, other, "\x1fother", 0);
    family_link(m);
    pthread_mutex_unlock(&reg_mu);
    return m;
}

void metric_register_fn(const char *name, const char *help, enum metric_type type,
                        metric_value_fn fn, void *ud)
{
    pthread_mutex_lock(&reg_mu);
    struct metric *m = find_family(name);
    if (!m) {
        m = family_new(name, help, type);
        if (m)
            family_link(m);
    }
    if (m) {
        m->fn = fn;
        m->fn_ud = ud;
    }
    pthread_mutex_unlock(&reg_mu);
}

struct metric_child *metric_child(struct metric *m, const char *const *values)
{
    if (!m)
        return NULL;
    char key[512];
    size_t n = 0;
    for (int i = 0; i < m->nlabels; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t len = strlen(v);
        if (n + len + 2 >= sizeof key)
            return m->overflow;
        key[n++] = '\x1f';
        memcpy(key + n, v, len);
        n += len;
    }
    key[n] = 0;
    uint64_t h = fnv1a(key);
    size_t start = (size_t)(h % TABLE_SIZE);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < TABLE_SIZE; i++) {
            size_t slot = (start + i) % TABLE_SIZE;
            struct metric_child *c = atomic_load_explicit(&m->table[slot], memory_order_acquire);
            if (!c)
                break;
            if (c->hash == h && strcmp(c->key, key) == 0)
                return c;
        }
        if (pass == 1)
            break;
        /* slow path: insert under the family lock, then look again */
        pthread_mutex_lock(&m->mu);
        if (m->nchildren >= METRICS_MAX_CHILDREN) {
            pthread_mutex_unlock(&m->mu);
            return m->overflow;
        }
        for (size_t i = 0; i < TABLE_SIZE; i++) {
            size_t slot = (start + i) % TABLE_SIZE;
            struct metric_child *c = atomic_load_explicit(&m->table[slot], memory_order_acquire);
            if (c && c->hash == h && strcmp(c->key, key) == 0) {
                pthread_mutex_unlock(&m->mu);
                return c;
            }
            if (!c) {
                c = child_new(m, values, key, h);
                if (!c) {
                    pthread_mutex_unlock(&m->mu);
                    return m->overflow;
                }
                atomic_store_explicit(&m->table[slot], c, memory_order_release);
                m->nchildren++;
                pthread_mutex_unlock(&m->mu);
                return c;
            }
        }
        pthread_mutex_unlock(&m->mu);
    }
    return m->overflow;
}

struct metric_child *metric_only(struct metric *m)
{
    static const char *const none[1] = { NULL };
    return metric_child(m, none);
}

void metric_add(struct metric_child *c, double v)
{
    if (!c)
        return;
    uint64_t old = atomic_load_explicit(&c->value, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&c->value, &old, d2u(u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metric_inc(struct metric_child *c) { metric_add(c, 1.0); }

void metric_set(struct metric_child *c, double v)
{
    if (c)
        atomic_store_explicit(&c->value, d2u(v), memory_order_relaxed);
}

void metric_observe(struct metric_child *c, double v)
{
    if (!c || !c->buckets)
        return;
    int i = 0;
    while (i < c->nbuckets && v > c->bounds[i])
        i++;
    atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
    metric_add(c, v);
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
}

double metric_value(const struct metric_child *c)
{
    if (!c)
        return 0;
    if (c->buckets)
        return (double)atomic_load_explicit(&((struct metric_child *)c)->count, memory_order_relaxed);
    return u2d(atomic_load_explicit(&((struct metric_child *)c)->value, memory_order_relaxed));
}

/* ---- text format 0.0.4 ---- */

static void put_escaped(struct buf *out, const char *s, int help)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else if (*s == '"' && !help)
            buf_puts(out, "\\\"");
        else
            buf_append(out, s, 1);
    }
}

static void put_number(struct buf *out, double v)
{
    if (isnan(v))
        buf_puts(out, "NaN");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_printf(out, "%.0f", v);
    else
        buf_printf(out, "%.17g", v);
}

/* name{labels[,extra="v"]} */
static void put_series(struct buf *out, const struct metric *m, const char *suffix,
                       const struct metric_child *c, const char *extra_name, const char *extra_val)
{
    buf_puts(out, m->name);
    buf_puts(out, suffix);
    int any = 0;
    for (int i = 0; c && i < m->nlabels; i++) {
        buf_puts(out, any ? "," : "{");
        buf_puts(out, m->labels[i]);
        buf_puts(out, "=\"");
        put_escaped(out, c->values[i], 0);
        buf_puts(out, "\"");
        any = 1;
    }
    if (extra_name) {
        buf_puts(out, any ? "," : "{");
        buf_printf(out, "%s=\"%s\"", extra_name, extra_val);
        any = 1;
    }
    if (any)
        buf_puts(out, "}");
    buf_puts(out, " ");
}

static void render_child(struct buf *out, const struct metric *m, const struct metric_child *c)
{
    if (m->type != METRIC_HISTOGRAM) {
        put_series(out, m, "", c, NULL, NULL);
        put_number(out, metric_value(c));
        buf_puts(out, "\n");
        return;
    }
    uint64_t cum = 0;
    for (int i = 0; i <= c->nbuckets; i++) {
        cum += atomic_load_explicit(&((struct metric_child *)c)->buckets[i], memory_order_relaxed);
        char le[32];
        if (i == c->nbuckets)
            snprintf(le, sizeof le, "+Inf");
        else
            snprintf(le, sizeof le, "%g", c->bounds[i]);
        put_series(out, m, "_bucket", c, "le", le);
        buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    put_series(out, m, "_sum", c, NULL, NULL);
    put_number(out, u2d(atomic_load_explicit(&((struct metric_child *)c)->value, memory_order_relaxed)));
    buf_puts(out, "\n");
    put_series(out, m, "_count", c, NULL, NULL);
    /* the +Inf bucket is the count by definition; use it so they agree */
    buf_printf(out, "%llu\n", (unsigned long long)cum);
}

void metrics_render(struct buf *out)
{
    static const char *const type_names[] = { "counter", "gauge", "histogram" };
    pthread_mutex_lock(&reg_mu);
    for (struct metric *m = families; m; m = m->next) {
        buf_printf(out, "# HELP %s ", m->name);
        put_escaped(out, m->help, 1);
        buf_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
        if (m->fn) {
            buf_printf(out, "%s ", m->name);
            put_number(out, m->fn(m->fn_ud));
            buf_puts(out, "\n");
            continue;
        }
        if (m->nlabels == 0) {
            struct metric_child *c = atomic_load(&m->table[fnv1a("") % TABLE_SIZE]);
            render_child(out, m, c ? c : m->overflow);
            continue;
        }
        for (size_t i = 0; i < TABLE_SIZE; i++) {
            struct metric_child *c = atomic_load_explicit(&m->table[i], memory_order_acquire);
            if (c)
                render_child(out, m, c);
        }
        if (metric_value(m->overflow) != 0)
            render_child(out, m, m->overflow);
    }
    pthread_mutex_unlock(&reg_mu);
}

static void child_free(struct metric_child *c)
{
    if (!c)
        return;
    for (int i = 0; i < METRICS_MAX_LABELS; i++)
        free(c->values[i]);
    free(c->key);
    free(c->buckets);
    free(c);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    struct metric *m = families;
    while (m) {
        struct metric *next = m->next;
        for (size_t i = 0; i < TABLE_SIZE; i++)
            child_free(atomic_load(&m->table[i]));
        child_free(m->overflow);
        for (int i = 0; i < m->nlabels; i++)
            free(m->labels[i]);
        free(m->bounds);
        free(m->name);
        free(m->help);
        pthread_mutex_destroy(&m->mu);
        free(m);
        m = next;
    }
    families = families_tail = NULL;
    pthread_mutex_unlock(&reg_mu);
}
