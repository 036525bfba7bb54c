/* A growable byte buffer for building text (metrics, JSON snippets).
 * Zero-initialise, append, take ->data (NUL-terminated), buf_free(). On
 * out of memory further appends are dropped and ->oom is set. */
#ifndef AGENTD_CORE_BUF_H
#define AGENTD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len, cap;
    int oom;
};

void buf_append(struct buf *b, const char *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);
/* Makes room for at least extra more bytes with one allocation of exactly
 * that size (no doubling slack), for a buffer whose final size is known. */
void buf_reserve(struct buf *b, size_t extra);

/* Appends s[0..n) as a quoted JSON string escaped exactly as jansson's
 * json_dumps does without flags: \" \\ \b \f \n \r \t, other controls as
 * \u00XX, UTF-8 kept as is. Invalid UTF-8 (which jansson refuses to dump)
 * appends nothing and returns AGENTD_EINVAL; 0 on success. */
int buf_json_str(struct buf *b, const char *s, size_t n);

/* Appends to a fixed buffer out[0..outlen) at *off, truncating silently and
 * always leaving it NUL-terminated (error-message collectors). */
void fixbuf_vappendf(char *out, size_t outlen, size_t *off, const char *fmt, va_list ap);

#endif
