/* JSON-lines logger. Each line is built in a stack buffer and written with
 * one write(2) (access lines batched per thread: core/logbuf.c), under a
 * mutex that keeps batches whole on a pipe; no allocation. Lines longer
 * than LOG_LINE_MAX are cut and marked "truncated":true. */
#include "core/log.h"
#include "core/trace.h"
#include "core/clock.h"
#include "core/redact.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int min_level = LOG_INFO;
static atomic_int out_fd = 1;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl) { atomic_store(&min_level, (int)lvl); }
int log_enabled(enum log_level lvl) { return (int)lvl >= atomic_load(&min_level); }
void log_set_fd(int fd) { atomic_store(&out_fd, fd); }

/* Room kept at the end for ',"truncated":true}\n'. */
#define TAIL_RESERVE 24

static void put(struct logline *l, const char *s, size_t n)
{
    size_t room = LOG_LINE_MAX - TAIL_RESERVE;
    if (l->n + n > room) {
        n = l->n < room ? room - l->n : 0;
        l->truncated = 1;
    }
    memcpy(l->buf + l->n, s, n);
    l->n += n;
}

/* printable ASCII other than the two JSON escapes itself */
static inline int json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

void json_escape_into(char *buf, size_t *n, size_t len, const char *s, size_t slen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *n;
    for (size_t i = 0; i < slen; i++) {
        /* a run of bytes written as they are, copied at once: most text is
         * one such run (an access line's fields always are) */
        size_t run = i;
        while (run < slen && json_plain((unsigned char)s[run]))
            run++;
        if (run > i) {
            if (o + (run - i) >= len) { /* what fits, as one byte at a time would */
                size_t fit = len > o + 1 ? len - 1 - o : 0;
                memcpy(buf + o, s + i, fit);
                o += fit;
                break;
            }
            memcpy(buf + o, s + i, run - i);
            o += run - i;
            i = run;
            if (i == slen)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        char tmp[6];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c == '\n') {
            tmp[k++] = '\\'; tmp[k++] = 'n';
        } else if (c == '\r') {
            tmp[k++] = '\\'; tmp[k++] = 'r';
        } else if (c == '\t') {
            tmp[k++] = '\\'; tmp[k++] = 't';
        } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
            /* bytes >= 0x80: keep valid UTF-8 sequences, escape stray bytes */
            if (c >= 0x80) {
                size_t need = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
                size_t j = 0;
                if (need && i + need < slen) {
                    for (j = 1; j <= need; j++)
                        if (((unsigned char)s[i + j] & 0xc0) != 0x80)
                            break;
                }
                if (need && j == need + 1) {
                    if (o + need + 1 >= len)
                        break;
                    memcpy(buf + o, s + i, need + 1);
                    o += need + 1;
                    i += need;
                    continue;
                }
            }
            tmp[k++] = '\\'; tmp[k++] = 'u'; tmp[k++] = '0'; tmp[k++] = '0';
            tmp[k++] = hex[c >> 4]; tmp[k++] = hex[c & 15];
        } else {
            tmp[k++] = (char)c;
        }
        if (o + k >= len)
            break;
        memcpy(buf + o, tmp, k);
        o += k;
    }
    *n = o;
}

static void put_escaped(struct logline *l, const char *s, size_t n)
{
    size_t room = LOG_LINE_MAX - TAIL_RESERVE;
    size_t before = l->n;
    json_escape_into(l->buf, &l->n, room, s, n);
    if (l->n - before < n && l->n + 6 >= room)
        l->truncated = 1;
}

static void put_key(struct logline *l, const char *key)
{
    /* a plain key (every key agentd writes) that fits: ,"key": in one copy */
    size_t kl = 0;
    while (key[kl] && json_plain((unsigned char)key[kl]))
        kl++;
    if (!key[kl] && l->n + kl + 4 < LOG_LINE_MAX - TAIL_RESERVE) {
        char *p = l->buf + l->n;
        p[0] = ',';
        p[1] = '"';
        memcpy(p + 2, key, kl);
        p[kl + 2] = '"';
        p[kl + 3] = ':';
        l->n += kl + 4;
        return;
    }
    put(l, ",\"", 2);
    put_escaped(l, key, strlen(key));
    put(l, "\":", 2);
}

/* A value with personal data masked (redact_pii): emails, phone numbers,
 * street addresses never reach a log line, whichever field carries them. */
static void put_masked(struct logline *l, const char *val, size_t len)
{
    /* every redact_pii match holds a digit or an '@' (an email, a number,
     * a house number, "strasse 5"): without either the text stays as it is */
    size_t k = 0;
    while (k < len && !(val[k] >= '0' && val[k] <= '9') && val[k] != '@')
        k++;
    if (k == len) {
        put_escaped(l, val, len);
        return;
    }
    char small[1024];
    char *out = len <= sizeof small ? small : malloc(len);
    size_t n = 0;
    if (!out) {
        put(l, REDACTED, sizeof REDACTED - 1); /* unchecked text never goes out */
        return;
    }
    redact_pii(val, len, out, &n);
    put_escaped(l, out, n);
    if (out != small)
        free(out);
}

int log_begin(struct logline *l, enum log_level lvl, const char *msg)
{
    if (!log_enabled(lvl))
        return 0;
    l->n = 0;
    l->truncated = 0;
    char ts[32];
    size_t tn = clock_rfc3339_ms(clock_wall_ms(), ts, sizeof ts);
    put(l, "{\"ts\":\"", 7);
    put(l, ts, tn);
    put(l, "\",\"level\":\"", 11);
    put(l, level_names[lvl], strlen(level_names[lvl]));
    put(l, "\",\"msg\":\"", 9);
    put_masked(l, msg, strlen(msg)); /* error paths may quote user text */
    put(l, "\"", 1);
    /* the trace of the request, turn or job this thread works for now
     * (core/trace.h: a scoped context, so it is never a stale one) */
    const struct trace_ctx *tc = trace_current();
    if (tc) {
        char tid[33];
        trace_hex(tc->trace_id, 16, tid);
        put(l, ",\"trace_id\":\"", 13);
        put(l, tid, 32);
        put(l, "\"", 1);
    }
    return 1;
}

void log_strn(struct logline *l, const char *key, const char *val, size_t len)
{
    put_key(l, key);
    if (!val) {
        put(l, "null", 4);
        return;
    }
    /* ids are validated to [A-Za-z0-9._:-] before they get here; a numeric
     * or hex id must not be mistaken for a card number */
    int is_id = redact_key_is_id(key, val, len); /* request_id, ours: turn_0a1b... */
    if (redact_key_is_secret(key) || (!is_id && redact_value_is_secret(val, len))) {
        put(l, "\"" REDACTED "\"", sizeof REDACTED + 1);
        return;
    }
    put(l, "\"", 1);
    if (is_id)
        put_escaped(l, val, len);
    else
        put_masked(l, val, len);
    put(l, "\"", 1);
}

void log_str(struct logline *l, const char *key, const char *val)
{
    log_strn(l, key, val, val ? strlen(val) : 0);
}

enum {
    LOG_KEY_OTHER = 1, /* escaped, or an id key whose verdict reads the value: log_strn */
    LOG_KEY_PLAIN,     /* neither secret nor an id key: values checked and masked */
    LOG_KEY_SECRET,    /* every value is "***" */
    LOG_KEY_ID,        /* request_id, trace_id: values written escaped, never masked */
};

static int key_kind(const char *name)
{
    for (const char *p = name; *p; p++)
        if (!json_plain((unsigned char)*p))
            return LOG_KEY_OTHER;
    if (redact_key_is_secret(name))
        return LOG_KEY_SECRET;
    /* a key that is an id whatever the value (an empty one decides it) */
    if (redact_key_is_id(name, "", 0))
        return LOG_KEY_ID;
    size_t n = strlen(name);
    if ((n == 2 && strcmp(name, "id") == 0) || (n > 3 && strcmp(name + n - 3, "_id") == 0))
        return LOG_KEY_OTHER;
    return LOG_KEY_PLAIN;
}

void log_str_key(struct logline *l, struct log_key *key, const char *val)
{
    int kind = atomic_load_explicit(&key->kind, memory_order_relaxed);
    if (!kind) { /* threads racing here store the same verdict */
        kind = key_kind(key->name);
        atomic_store_explicit(&key->kind, kind, memory_order_relaxed);
    }
    if (kind == LOG_KEY_OTHER || !val) {
        log_str(l, key->name, val);
        return;
    }
    const size_t room = LOG_LINE_MAX - TAIL_RESERVE;
    size_t klen = strlen(key->name), len = strlen(val);
    if (l->n + klen + 4 < room) { /* the key is plain (key_kind): as put_key writes it */
        char *p = l->buf + l->n;
        p[0] = ',';
        p[1] = '"';
        memcpy(p + 2, key->name, klen);
        p[klen + 2] = '"';
        p[klen + 3] = ':';
        l->n += klen + 4;
    } else {
        put_key(l, key->name);
    }
    if (kind == LOG_KEY_SECRET || (kind == LOG_KEY_PLAIN && redact_value_is_secret(val, len))) {
        put(l, "\"" REDACTED "\"", sizeof REDACTED + 1);
        return;
    }
    /* a value of plain bytes (and, unless an id, no digit or '@': nothing
     * redact_pii matches) that fits is written as it is, in one copy */
    size_t k = 0;
    if (kind == LOG_KEY_ID)
        while (k < len && json_plain((unsigned char)val[k]))
            k++;
    else
        while (k < len && json_plain((unsigned char)val[k]) &&
               !(val[k] >= '0' && val[k] <= '9') && val[k] != '@')
            k++;
    if (k == len && l->n + len + 2 < room) {
        char *p = l->buf + l->n;
        p[0] = '"';
        memcpy(p + 1, val, len);
        p[len + 1] = '"';
        l->n += len + 2;
        return;
    }
    put(l, "\"", 1);
    if (kind == LOG_KEY_ID)
        put_escaped(l, val, len);
    else
        put_masked(l, val, len);
    put(l, "\"", 1);
}

/* val in decimal at the end of num[24]: its first digit (or '-'). Every
 * access line has two of these; snprintf was ~1 K instructions each. */
static char *i64_text(char num[24], int64_t val)
{
    uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    char *p = num + 24;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (val < 0)
        *--p = '-';
    return p;
}

void log_int(struct logline *l, const char *key, int64_t val)
{
    char num[24];
    char *p = i64_text(num, val);
    put_key(l, key);
    put(l, p, (size_t)(num + 24 - p));
}

void log_thousandths(struct logline *l, const char *key, int64_t val)
{
    uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    char num[24];
    char *p = i64_text(num, (int64_t)(u / 1000));
    unsigned frac = (unsigned)(u % 1000);
    put_key(l, key);
    if (val < 0)
        put(l, "-", 1);
    put(l, p, (size_t)(num + 24 - p));
    char f[4] = { '.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                  (char)('0' + frac % 10) };
    put(l, f, 4);
}

void log_double(struct logline *l, const char *key, double val)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%.3f", val);
    put_key(l, key);
    put(l, num, (size_t)n);
}

void log_finish(struct logline *l)
{
    if (l->truncated) {
        static const char t[] = ",\"truncated\":true";
        memcpy(l->buf + l->n, t, sizeof t - 1);
        l->n += sizeof t - 1;
    }
    l->buf[l->n++] = '}';
    l->buf[l->n++] = '\n';
}

/* A batch of access lines is larger than PIPE_BUF: on a pipe (a container's
 * stdout) the kernel may split it between writers, so writes are one at a
 * time in this process and a line is never cut by another thread's. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

void log_write(const char *p, size_t n)
{
    int fd = atomic_load(&out_fd);
    size_t off = 0;
    pthread_mutex_lock(&write_mu);
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0)
            break; /* a log that cannot be written must not stop the server */
        off += (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

void log_end(struct logline *l)
{
    log_finish(l);
    log_flush(); /* this thread's buffered access lines go out first, in order */
    log_write(l->buf, l->n);
}

void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
{
    struct logline l;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!log_begin(&l, lvl, msg))
        return;
    if (request_id)
        log_str(&l, "request_id", request_id);
    log_end(&l);
}
