/* Per-thread batching of access-log lines: one write(2) per buffer-full or
 * per flush-timer tick instead of one per request (issue #14 item 4). */
#include "core/log.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

/* Only the owning thread touches its buffer: no lock. */
struct logbuf {
    char *buf;
    size_t n, cap;
    void (*arm)(void *ud);
    void *ud;
};

static _Thread_local struct logbuf tl;

int log_buffer_start(size_t cap, void (*arm)(void *ud), void *ud)
{
    log_buffer_stop();
    if (cap < LOG_LINE_MAX)
        cap = LOG_LINE_MAX; /* a whole line always fits after a flush */
    char *b = malloc(cap);
    if (!b)
        return AGENTD_ENOMEM;
    tl = (struct logbuf){ .buf = b, .cap = cap, .arm = arm, .ud = ud };
    return 0;
}

void log_flush(void)
{
    if (tl.n) {
        size_t n = tl.n;
        tl.n = 0; /* written or dropped: a log that cannot be written must not stop the server */
        log_write(tl.buf, n);
    }
}

void log_buffer_stop(void)
{
    log_flush();
    free(tl.buf);
    memset(&tl, 0, sizeof tl);
}

size_t log_buffered(void) { return tl.n; }

void log_end_buffered(struct logline *l)
{
    if (!tl.buf) {
        log_end(l);
        return;
    }
    log_finish(l);
    if (tl.n + l->n > tl.cap)
        log_flush();
    int was_empty = tl.n == 0;
    memcpy(tl.buf + tl.n, l->buf, l->n);
    tl.n += l->n;
    if (tl.n == tl.cap)
        log_flush();
    else if (was_empty && tl.arm)
        tl.arm(tl.ud);
}
