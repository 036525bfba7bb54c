/* Growable byte buffer: doubling growth, always NUL-terminated. */
#include "core/buf.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct buf *b, size_t extra)
{
    if (b->oom)
        return AGENTD_ENOMEM;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return AGENTD_ENOMEM;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap)
        return;
    char *d = realloc(b->data, b->len + extra + 1);
    if (!d) {
        b->oom = 1;
        return;
    }
    if (!b->data)
        d[0] = '\0';
    b->data = d;
    b->cap = b->len + extra + 1;
}

void buf_append(struct buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        buf_append(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fixbuf_vappendf(char *out, size_t outlen, size_t *off, const char *fmt, va_list ap)
{
    if (!out || outlen == 0 || *off >= outlen - 1)
        return;
    int k = vsnprintf(out + *off, outlen - *off, fmt, ap);
    if (k < 0)
        return;
    *off += (size_t)k;
    if (*off > outlen - 1)
        *off = outlen - 1;
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){ 0 };
}
