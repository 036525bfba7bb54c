/* Tracing core: ids, W3C traceparent, span records and the bounded queue of
 * finished spans the OTLP exporter drains (see trace.h for the context rules). */
#include "core/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/reqid.h"

static atomic_int enabled;
static double ratio = 1.0;
static atomic_uint_fast64_t dropped;

/* The queue: a ring of finished spans under one mutex (held for a copy). */
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static struct trace_span *ring;
static size_t qhead, qlen;

static _Thread_local struct trace_ctx current;

static double dropped_value(void *ud)
{
    (void)ud;
    return (double)atomic_load(&dropped);
}

void trace_metrics_register(void)
{
    metric_register_fn("agentd_trace_spans_dropped_total",
                       "Finished spans lost: the export queue was full or their export failed.",
                       METRIC_COUNTER, dropped_value, NULL);
}

void trace_setup(double sample_ratio)
{
    pthread_mutex_lock(&qmu);
    if (!ring)
        ring = calloc(TRACE_QUEUE_MAX, sizeof *ring);
    qhead = qlen = 0;
    pthread_mutex_unlock(&qmu);
    ratio = sample_ratio < 0 ? 0 : sample_ratio > 1 ? 1 : sample_ratio;
    atomic_store(&enabled, ring != NULL);
}

void trace_reset(void)
{
    atomic_store(&enabled, 0);
    pthread_mutex_lock(&qmu);
    qhead = qlen = 0;
    pthread_mutex_unlock(&qmu);
    atomic_store(&dropped, 0);
}

int trace_enabled(void) { return atomic_load_explicit(&enabled, memory_order_relaxed); }

/* Ids: xoshiro256** per thread, seeded from the kernel CSPRNG; ids must be
 * unique and not guessable from each other, not secret. */
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next64(void)
{
    static _Thread_local uint64_t s[4];
    static _Thread_local int seeded;
    if (!seeded) {
        if (random_bytes(s, sizeof s) != 0 || (s[0] | s[1] | s[2] | s[3]) == 0) {
            s[0] = (uint64_t)clock_mono_ns() ^ 0x9e3779b97f4a7c15ULL;
            s[1] = (uint64_t)(uintptr_t)&s;
            s[2] = (uint64_t)clock_wall_ms();
            s[3] = 0x2545f4914f6cdd1dULL;
        }
        seeded = 1;
    }
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void fill_id(uint8_t *b, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = next64();
            memcpy(b + i, &v, n - i < 8 ? n - i : 8);
        }
    } while (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0); /* all zero is invalid */
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid in traceparent */
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= out[i];
    }
    return nonzero ? 0 : 1;
}

void trace_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int trace_parse_traceparent(const char *s, struct trace_ctx *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return AGENTD_EINVAL;
    size_t len = strlen(s);
    uint8_t ver, flags;
    if (len < TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return AGENTD_EINVAL;
    if (unhex(s, &ver, 1) < 0 || ver == 0xff)
        return AGENTD_EINVAL;
    /* version 00 is exactly 55 characters; a later one may add fields */
    if ((ver == 0 && len != TRACEPARENT_LEN) || (ver != 0 && len > TRACEPARENT_LEN && s[55] != '-'))
        return AGENTD_EINVAL;
    struct trace_ctx c = { 0 };
    if (unhex(s + 3, c.trace_id, 16) != 0 || unhex(s + 36, c.span_id, 8) != 0 ||
        unhex(s + 53, &flags, 1) < 0)
        return AGENTD_EINVAL;
    c.flags = flags & TRACE_FLAG_SAMPLED;
    c.valid = 1;
    *out = c;
    return 0;
}

void trace_format_traceparent(const struct trace_ctx *c, char out[TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    trace_hex(c->trace_id, 16, out + 3);
    out[35] = '-';
    trace_hex(c->span_id, 8, out + 36);
    out[52] = '-';
    trace_hex(&c->flags, 1, out + 53);
}

#define STATES 256
static pthread_mutex_t smu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int nstates;
static struct {
    uint8_t trace_id[16];
    char *value;
} states[STATES];
static size_t snext;

int trace_state_remember(const struct trace_ctx *c, const char *state)
{
    size_t n = state ? strlen(state) : 0;
    if (!c || !c->valid || n == 0 || n > TRACESTATE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (state[i] < 0x20 || state[i] > 0x7e) /* never a byte that could end a header */
            return 0;
    char *v = strdup(state);
    if (!v)
        return 0;
    pthread_mutex_lock(&smu);
    free(states[snext].value);
    memcpy(states[snext].trace_id, c->trace_id, 16);
    states[snext].value = v;
    snext = (snext + 1) % STATES;
    pthread_mutex_unlock(&smu);
    if (atomic_load(&nstates) < STATES)
        atomic_fetch_add(&nstates, 1);
    return 1;
}

int trace_state_lookup(const struct trace_ctx *c, char *out)
{
    if (!c || !c->valid || atomic_load_explicit(&nstates, memory_order_relaxed) == 0)
        return 0;
    int found = 0;
    pthread_mutex_lock(&smu);
    for (size_t k = 1; k <= STATES && !found; k++) { /* newest first */
        size_t i = (snext + STATES - k) % STATES;
        if (states[i].value && memcmp(states[i].trace_id, c->trace_id, 16) == 0) {
            snprintf(out, TRACESTATE_MAX + 1, "%s", states[i].value);
            found = 1;
        }
    }
    pthread_mutex_unlock(&smu);
    return found;
}

static int64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void trace_span_start_at(struct trace_span *s, const char *name, enum trace_kind kind,
                         const struct trace_ctx *parent, int64_t mono_start_ns)
{
    s->recording = 0;
    s->ctx.valid = 0;
    if (!trace_enabled())
        return;
    s->nattrs = 0;
    s->status = TRACE_STATUS_UNSET;
    s->kind = (uint8_t)kind;
    s->has_parent = parent && parent->valid;
    if (s->has_parent) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent_span_id, parent->span_id, 8);
        s->ctx.flags = parent->flags & TRACE_FLAG_SAMPLED;
    } else {
        fill_id(s->ctx.trace_id, 16);
        /* head sampling on the id's bits: a fresh 53-bit uniform value */
        double u = (double)(next64() >> 11) / 9007199254740992.0;
        s->ctx.flags = u < ratio ? TRACE_FLAG_SAMPLED : 0;
    }
    fill_id(s->ctx.span_id, 8);
    s->ctx.valid = 1;
    s->recording = (s->ctx.flags & TRACE_FLAG_SAMPLED) != 0;
    if (!s->recording)
        return;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "span");
    int64_t now = now_unix_ns();
    s->start_unix_ns = mono_start_ns ? now - (clock_mono_ns() - mono_start_ns) : now;
    s->end_unix_ns = 0;
}

void trace_span_start(struct trace_span *s, const char *name, enum trace_kind kind,
                      const struct trace_ctx *parent)
{
    trace_span_start_at(s, name, kind, parent, 0);
}

static struct trace_attr *attr_new(struct trace_span *s, const char *key, char type)
{
    if (!s->recording || s->nattrs >= TRACE_ATTRS_MAX || !key)
        return NULL;
    struct trace_attr *a = &s->attrs[s->nattrs++];
    snprintf(a->key, sizeof a->key, "%s", key);
    a->type = type;
    return a;
}

void trace_attr_str(struct trace_span *s, const char *key, const char *val)
{
    struct trace_attr *a = attr_new(s, key, 's');
    if (a)
        snprintf(a->v.s, sizeof a->v.s, "%s", val ? val : "");
}

void trace_attr_int(struct trace_span *s, const char *key, int64_t val)
{
    struct trace_attr *a = attr_new(s, key, 'i');
    if (a)
        a->v.i = val;
}

void trace_attr_bool(struct trace_span *s, const char *key, int val)
{
    struct trace_attr *a = attr_new(s, key, 'b');
    if (a)
        a->v.i = val != 0;
}

void trace_attr_double(struct trace_span *s, const char *key, double val)
{
    struct trace_attr *a = attr_new(s, key, 'd');
    if (a)
        a->v.d = val;
}

void trace_span_set_status(struct trace_span *s, enum trace_status st)
{
    if (s->recording)
        s->status = (uint8_t)st;
}

void trace_span_end(struct trace_span *s)
{
    if (!s->recording)
        return;
    s->recording = 0;
    s->end_unix_ns = now_unix_ns();
    if (s->end_unix_ns < s->start_unix_ns)
        s->end_unix_ns = s->start_unix_ns;
    int full;
    pthread_mutex_lock(&qmu);
    full = !ring || qlen >= TRACE_QUEUE_MAX;
    if (!full) {
        ring[(qhead + qlen) % TRACE_QUEUE_MAX] = *s;
        qlen++;
    }
    pthread_mutex_unlock(&qmu);
    if (full)
        atomic_fetch_add(&dropped, 1);
}

const struct trace_ctx *trace_current(void) { return current.valid ? &current : NULL; }

struct trace_ctx trace_enter(const struct trace_ctx *c)
{
    struct trace_ctx prev = current;
    if (c && c->valid)
        current = *c;
    else
        memset(&current, 0, sizeof current);
    return prev;
}

void trace_leave(struct trace_ctx prev) { current = prev; }

size_t trace_drain(struct trace_span *out, size_t max)
{
    pthread_mutex_lock(&qmu);
    size_t n = qlen < max ? qlen : max;
    for (size_t i = 0; i < n; i++)
        out[i] = ring[(qhead + i) % TRACE_QUEUE_MAX];
    qhead = (qhead + n) % TRACE_QUEUE_MAX;
    qlen -= n;
    pthread_mutex_unlock(&qmu);
    return n;
}

size_t trace_queued(void)
{
    pthread_mutex_lock(&qmu);
    size_t n = qlen;
    pthread_mutex_unlock(&qmu);
    return n;
}

void trace_count_dropped(uint64_t n) { atomic_fetch_add(&dropped, n); }

uint64_t trace_dropped(void) { return atomic_load(&dropped); }
