/* Request-head scanner. Strict where ambiguity enables request smuggling
 * (both Content-Length and Transfer-Encoding, conflicting lengths, bytes that
 * are not allowed in a header), lenient where RFC 9112 allows it. */
#include "http/head.h"
#include "core/err.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One line [p, e) without its line end. */
static int request_line_ok(const char *p, const char *e)
{
    const char *sp1 = memchr(p, ' ', (size_t)(e - p));
    if (!sp1 || sp1 == p || sp1 - p > 32)
        return 0;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return 0;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(e - target));
    if (!sp2 || sp2 == target)
        return 0;
    for (const char *q = target; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
            return 0;
    if (*target != '/' && *target != '*' && strncasecmp(target, "http", 4) != 0)
        return 0;
    size_t vlen = (size_t)(e - (sp2 + 1));
    return vlen == 8 && (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0);
}

static int parse_length(const char *v, const char *e, int64_t *out)
{
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (v == e || e - v > 18)
        return AGENTD_EINVAL;
    int64_t n = 0;
    for (; v < e; v++) {
        if (*v < '0' || *v > '9')
            return AGENTD_EINVAL;
        n = n * 10 + (*v - '0');
    }
    *out = n;
    return 0;
}

static int ends_with_chunked(const char *v, const char *e)
{
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return e - v >= 7 && strncasecmp(e - 7, "chunked", 7) == 0;
}

enum head_result head_scan(const char *buf, size_t len, struct head_info *out)
{
    memset(out, 0, sizeof *out);
    out->content_length = -1;
    size_t pos = 0;
    /* skip empty lines before the request line */
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
        pos++;
    int line_no = 0;
    int have_te = 0;
    for (;;) {
        const char *p = buf + pos;
        const char *nl = memchr(p, '\n', len - pos);
        if (!nl)
            return HEAD_INCOMPLETE;
        const char *e = nl;
        if (e > p && e[-1] == '\r')
            e--;
        size_t next = (size_t)(nl - buf) + 1;
        if (e == p) { /* blank line: end of head */
            if (line_no == 0)
                return HEAD_INCOMPLETE;
            out->head_len = next;
            if (have_te && out->content_length >= 0) {
                out->why = "both Content-Length and Transfer-Encoding";
                return HEAD_MALFORMED;
            }
            if (have_te && !out->chunked) {
                out->why = "unsupported Transfer-Encoding";
                return HEAD_MALFORMED;
            }
            return HEAD_OK;
        }
        for (const char *q = p; q < e; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                out->why = "control character in the request head";
                return HEAD_MALFORMED;
            }
        }
        if (line_no == 0) {
            if (!request_line_ok(p, e)) {
                out->why = "malformed request line";
                return HEAD_MALFORMED;
            }
            out->method = p;
            out->method_len = (size_t)((const char *)memchr(p, ' ', (size_t)(e - p)) - p);
        } else {
            const char *colon = memchr(p, ':', (size_t)(e - p));
            if (!colon || colon == p) {
                out->why = "malformed header line";
                return HEAD_MALFORMED;
            }
            for (const char *q = p; q < colon; q++)
                if (!is_tchar((unsigned char)*q)) {
                    out->why = "malformed header name";
                    return HEAD_MALFORMED;
                }
            size_t nlen = (size_t)(colon - p);
            const char *v = colon + 1;
            if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
                int64_t n;
                if (parse_length(v, e, &n) != 0 ||
                    (out->content_length >= 0 && out->content_length != n)) {
                    out->why = "invalid Content-Length";
                    return HEAD_MALFORMED;
                }
                out->content_length = n;
            } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
                have_te = 1;
                out->chunked = ends_with_chunked(v, e);
            } else if (nlen == 6 && strncasecmp(p, "expect", 6) == 0) {
                while (v < e && (*v == ' ' || *v == '\t'))
                    v++;
                out->expect_continue = (e - v) >= 12 && strncasecmp(v, "100-continue", 12) == 0;
            }
        }
        line_no++;
        pos = next;
    }
}
