/* Fuzz target: the HTTP/1.x request-head scanner (http/head.c), the first code
 * that reads a client's bytes. Checks the answer is consistent with itself. */
#include "fuzz.h"
#include "http/head.h"

#include <string.h>
#include <strings.h>

/* An accepted head's Transfer-Encoding lines, read independently of the
 * scanner: each must be exactly "chunked" (OWS aside), so a coding the
 * guard would not decode (e.g. "xchunked") never passes as a body framing
 * one hop reads differently from the next. Returns how many there were. */
static int check_te(const char *buf, size_t len)
{
    static const char name[] = "transfer-encoding:";
    int n = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (end - i >= sizeof name - 1 && strncasecmp(buf + i, name, sizeof name - 1) == 0) {
            const char *v = buf + i + sizeof name - 1, *e = buf + end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                e--;
            FUZZ_CHECK(e - v == 7 && strncasecmp(v, "chunked", 7) == 0);
            n++;
        }
        i = end + 1;
    }
    return n;
}

static void same(const struct head_info *a, const struct head_info *b)
{
    FUZZ_CHECK(a->head_len == b->head_len);
    FUZZ_CHECK(a->content_length == b->content_length);
    FUZZ_CHECK(a->chunked == b->chunked);
    FUZZ_CHECK(a->expect_continue == b->expect_continue);
    FUZZ_CHECK(a->method_len == b->method_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct head_info h;
    enum head_result r = head_scan(buf, size, &h);
    FUZZ_CHECK(r == HEAD_INCOMPLETE || r == HEAD_OK || r == HEAD_MALFORMED);
    if (r == HEAD_MALFORMED)
        FUZZ_CHECK(h.why && h.why[0]);
    if (r != HEAD_OK)
        return 0;
    FUZZ_CHECK(h.head_len > 0 && h.head_len <= size);
    FUZZ_CHECK(h.content_length >= -1);
    FUZZ_CHECK(!(h.content_length >= 0 && h.chunked)); /* smuggling: never both */
    FUZZ_CHECK(check_te(buf, h.head_len) == (h.chunked ? 1 : 0));
    FUZZ_CHECK(h.method && h.method >= buf && h.method_len > 0);
    FUZZ_CHECK(h.method + h.method_len <= buf + h.head_len);
    /* the bytes after the head (a body, a pipelined request) change nothing */
    struct head_info h2;
    FUZZ_CHECK(head_scan(buf, h.head_len, &h2) == HEAD_OK);
    same(&h, &h2);
    /* one byte short of its blank line, the head is not complete yet */
    FUZZ_CHECK(head_scan(buf, h.head_len - 1, &h2) == HEAD_INCOMPLETE);
    return 0;
}
