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

/* Length of the valid UTF-8 sequence at s[0..n) (jansson's rules: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (k > n)
        return 0;
    cp = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* 1 for a byte written as it is outside a UTF-8 sequence: printable ASCII
 * but '"' (0x22) and '\\' (0x5c). */
static const unsigned char json_plain[256] = {
    [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

/* One pass: plain bytes are a table lookup, a multi-byte sequence is
 * checked where it starts, an escape flushes the run before it. A bad
 * sequence found late takes back what was appended. */
int buf_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    if (reserve(b, n + 2) != 0)
        return AGENTD_ENOMEM;
    size_t start = b->len;
    b->data[b->len++] = '"';
    size_t run = 0; /* bytes copied as they are, appended in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (json_plain[c]) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (!k) {
                b->len = start;
                b->data[start] = 0;
                return AGENTD_EINVAL;
            }
            i += k;
            continue;
        }
        buf_append(b, s + run, i - run);
        run = ++i;
        char esc[6] = { '\\', 0 };
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        buf_append(b, esc, el);
    }
    /* the tail and the closing quote: room was reserved for them unless an
     * escape grew the text (then the general path) */
    size_t tail = n - run;
    if (!b->oom && b->len + tail + 2 <= b->cap) {
        memcpy(b->data + b->len, s + run, tail);
        b->len += tail;
        b->data[b->len++] = '"';
        b->data[b->len] = 0;
        return 0;
    }
    buf_append(b, s + run, tail);
    buf_append(b, "\"", 1);
    return b->oom ? AGENTD_ENOMEM : 0;
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
