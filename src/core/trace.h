/* Tracing: W3C trace context (traceparent), spans with a small fixed set of
 * attributes, and a bounded process-wide queue of finished spans that an
 * exporter (http/otlp.c) drains. Off (one branch per call) until trace_setup.
 *
 * Context passes explicitly: a span's parent is a struct trace_ctx the
 * caller holds (a request, a turn, a store job). The "current" context is a
 * scoped per-thread value: trace_enter() sets it and returns the previous
 * one, trace_leave() puts that back before the callback returns, so nothing
 * leaks from one loop callback into the next. Log lines and store calls read
 * it. */
#ifndef AGENTD_CORE_TRACE_H
#define AGENTD_CORE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_FLAG_SAMPLED 0x01
#define TRACE_ATTRS_MAX 10
#define TRACE_QUEUE_MAX 4096   /* finished spans waiting for export; then dropped */
#define TRACEPARENT_LEN 55     /* "00-" 32 "-" 16 "-" 2 */
#define TRACESTATE_MAX 512

struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* TRACE_FLAG_SAMPLED */
    uint8_t valid; /* 0: no context */
};

enum trace_kind { TRACE_INTERNAL = 1, TRACE_SERVER = 2, TRACE_CLIENT = 3 };
enum trace_status { TRACE_STATUS_UNSET = 0, TRACE_STATUS_OK = 1, TRACE_STATUS_ERROR = 2 };

struct trace_attr {
    char key[40];
    char type; /* 's' string, 'i' int, 'b' bool, 'd' double */
    union {
        char s[96];
        int64_t i;
        double d;
    } v;
};

/* Fixed size: a span lives in its owner (request, turn, call) and is copied
 * into the queue at its end; no allocation on the request path. */
struct trace_span {
    struct trace_ctx ctx;
    uint8_t parent_span_id[8];
    uint8_t has_parent;
    uint8_t recording; /* sampled and tracing on: attributes and end count */
    uint8_t kind;
    uint8_t status;
    char name[64];
    int64_t start_unix_ns, end_unix_ns;
    int nattrs;
    struct trace_attr attrs[TRACE_ATTRS_MAX];
};

/* Turns tracing on with a head-sampling ratio in [0, 1] for new roots (a
 * parent's decision is always kept). Before the loops start. */
void trace_setup(double sample_ratio);
/* agentd_trace_spans_dropped_total (every server has the series, at 0 when off). */
void trace_metrics_register(void);
/* Off again (tests). */
void trace_reset(void);
int trace_enabled(void);

/* traceparent "00-<32 hex>-<16 hex>-<2 hex>": 0 and *out, or AGENTD_EINVAL
 * (wrong length or version 00 with extra text, upper-case or bad hex, an
 * all-zero id, version ff). A later version is read by its first 55
 * characters when a '-' follows them, as the spec asks. */
int trace_parse_traceparent(const char *s, struct trace_ctx *out);
/* Writes TRACEPARENT_LEN characters and a NUL into out. */
void trace_format_traceparent(const struct trace_ctx *c, char out[TRACEPARENT_LEN + 1]);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void trace_hex(const uint8_t *b, size_t n, char *out);

/* tracestate (vendor state) is passed through, not interpreted: the value a
 * request brought is remembered by trace id in a small table (the oldest of
 * 256 entries goes first; empty and free unless clients send it) and
 * forwarded with the trace's outgoing traceparent. Remember refuses (0) a
 * value over TRACESTATE_MAX or with a byte outside printable ASCII. */
int trace_state_remember(const struct trace_ctx *c, const char *state);
/* 1 and the value in out (TRACESTATE_MAX + 1 bytes), or 0. */
int trace_state_lookup(const struct trace_ctx *c, char *out);

/* Starts a span as a child of parent (NULL or invalid: a new root, sampled
 * by the ratio). Tracing off: s->ctx stays invalid and nothing is kept. */
void trace_span_start(struct trace_span *s, const char *name, enum trace_kind kind,
                      const struct trace_ctx *parent);
/* The same with a start time taken earlier (clock_mono_ns()). */
void trace_span_start_at(struct trace_span *s, const char *name, enum trace_kind kind,
                         const struct trace_ctx *parent, int64_t mono_start_ns);
/* Attributes beyond TRACE_ATTRS_MAX are dropped; strings are cut at 95. */
void trace_attr_str(struct trace_span *s, const char *key, const char *val);
void trace_attr_int(struct trace_span *s, const char *key, int64_t val);
void trace_attr_bool(struct trace_span *s, const char *key, int val);
void trace_attr_double(struct trace_span *s, const char *key, double val);
void trace_span_set_status(struct trace_span *s, enum trace_status st);
/* Ends the span and queues it (dropped and counted when the queue is full).
 * Ending twice or a span that never recorded is harmless. */
void trace_span_end(struct trace_span *s);

/* The scoped current context of this thread (NULL when none). */
const struct trace_ctx *trace_current(void);
/* Sets c (NULL clears) as current and returns what it replaces. */
struct trace_ctx trace_enter(const struct trace_ctx *c);
void trace_leave(struct trace_ctx prev);

/* Moves up to max finished spans into out; returns how many. */
size_t trace_drain(struct trace_span *out, size_t max);
/* Spans waiting in the queue. */
size_t trace_queued(void);
/* Counts spans lost (queue full, failed export): agentd_trace_spans_dropped_total. */
void trace_count_dropped(uint64_t n);
uint64_t trace_dropped(void);

#endif
