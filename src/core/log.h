/* Structured logs: one JSON object per line on stdout, written with a single
 * write() so lines from different threads never interleave.
 *
 *   struct logline l;
 *   if (log_begin(&l, LOG_INFO, "request")) {
 *       log_str(&l, "request_id", id);
 *       log_int(&l, "status", 200);
 *       log_end(&l);
 *   }
 *
 * Redaction is not optional: log_str() passes every key through
 * redact_key_is_secret(), so a field named like a credential is written as
 * "***" whatever the caller passed. */
#ifndef AGENTD_CORE_LOG_H
#define AGENTD_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_LINE_MAX 4096

struct logline {
    size_t n;
    int truncated;
    char buf[LOG_LINE_MAX];
};

void log_set_level(enum log_level lvl);
int log_enabled(enum log_level lvl);
/* Where lines go (default 1 = stdout); tests point it at a pipe or file. */
void log_set_fd(int fd);

/* Starts a line with ts, level and msg. Returns 0 when the level is off
 * (then skip the rest), 1 otherwise. */
int log_begin(struct logline *l, enum log_level lvl, const char *msg);
void log_str(struct logline *l, const char *key, const char *val);
void log_strn(struct logline *l, const char *key, const char *val, size_t len);
/* A key written on every line of a kind (the access line's own keys): its
 * redaction verdicts, which depend on the key alone, are worked out on first
 * use and kept, so log_str_key writes what log_str writes without redoing
 * them per line. Static storage: `static struct log_key k = LOG_KEY("route");` */
struct log_key {
    const char *name;
    _Atomic int kind; /* 0 = not yet known (log.c: LOG_KEY_*) */
};
#define LOG_KEY(k) { .name = (k) }
void log_str_key(struct logline *l, struct log_key *key, const char *val);
void log_int(struct logline *l, const char *key, int64_t val);
void log_double(struct logline *l, const char *key, double val);
/* val / 1000 with three decimals, as log_double's "%.3f" writes it, from
 * an integer (a duration in microseconds as milliseconds): no snprintf. */
void log_thousandths(struct logline *l, const char *key, int64_t val);
void log_end(struct logline *l);

/* Access lines without a write(2) each (core/logbuf.c). A thread that
 * called log_buffer_start keeps lines ended with log_end_buffered in its
 * own buffer: written when it holds `cap` bytes, when log_flush runs (the
 * loop's flush timer, which `arm(ud)` is asked to start whenever the buffer
 * goes from empty to not empty), before any log_end line of the same thread
 * (order kept), and by log_buffer_stop. On a thread without a buffer,
 * log_end_buffered is log_end. Returns 0 or AGENTD_ENOMEM (then lines are
 * written through). */
int log_buffer_start(size_t cap, void (*arm)(void *ud), void *ud);
void log_buffer_stop(void);
void log_end_buffered(struct logline *l);
void log_flush(void);
/* Bytes this thread holds unwritten (tests). */
size_t log_buffered(void);
/* The line's closing bytes (log_end = log_finish + log_write), and one
 * write of ready bytes to the log's descriptor. */
void log_finish(struct logline *l);
void log_write(const char *p, size_t n);

/* One-shot helper: a line with msg and optional request_id. */
void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends s to buf[*n..len) as JSON string contents (no quotes), escaping
 * control characters and invalid UTF-8 bytes. Used by logs and SSE. */
void json_escape_into(char *buf, size_t *n, size_t len, const char *s, size_t slen);

#endif
