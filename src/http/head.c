/* Request-head scanner and chunked-body framing. Strict where ambiguity enables request smuggling
 * (both Content-Length and Transfer-Encoding, conflicting lengths, bytes that
 * are not allowed in a header), lenient where RFC 9112 allows it. */
#include "http/head.h"
#include "core/hex.h"
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

/* The one transfer coding decoded here: "chunked" alone (OWS trimmed). A
 * lookalike (xchunked), a parameter or a stacked coding is not it. */
static int is_chunked(const char *v, const char *e)
{
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return e - v == 7 && strncasecmp(v, "chunked", 7) == 0;
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
            if (have_te && (have_te > 1 || !out->chunked)) {
                out->why = "unsupported Transfer-Encoding (only chunked is accepted)";
                out->not_implemented = 1;
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
            out->http11 = e[-1] == '1';
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
                have_te++;
                out->chunked = is_chunked(v, e);
            } else if (nlen == 4 && strncasecmp(p, "host", 4) == 0) {
                out->hosts++;
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

/* ---- chunked body framing ---- */

enum { CS_SIZE, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TRAILER_START,
       CS_TRAILER_LINE, CS_END_LF, CS_DONE };
#define CHUNK_LINE_MAX 1024      /* a size line with its extensions */
#define CHUNK_TRAILERS_MAX 8192  /* all trailer lines together */

void chunk_scan_init(struct chunk_scan *cs)
{
    memset(cs, 0, sizeof *cs);
}

/* The size line ended: a data chunk, or the last chunk (then trailers). */
static enum chunk_result size_line_done(struct chunk_scan *cs, int64_t max_body)
{
    if (cs->size == 0) {
        cs->st = CS_TRAILER_START;
        cs->line = 0;
        return CHUNK_MORE;
    }
    if (cs->size > (uint64_t)max_body || cs->total + (int64_t)cs->size > max_body)
        return CHUNK_TOO_LARGE;
    cs->total += (int64_t)cs->size;
    cs->left = cs->size;
    cs->st = CS_DATA;
    return CHUNK_MORE;
}

enum chunk_result chunk_scan(struct chunk_scan *cs, const char *buf, size_t len, int64_t max_body,
                             size_t *used)
{
    size_t i = 0;
    enum chunk_result r = CHUNK_MORE;
    while (i < len && r == CHUNK_MORE && cs->st != CS_DONE) {
        unsigned char c = (unsigned char)buf[i];
        switch (cs->st) {
        case CS_DATA: {
            size_t n = len - i < cs->left ? len - i : (size_t)cs->left;
            cs->left -= n;
            i += n;
            if (cs->left == 0)
                cs->st = CS_DATA_CR;
            continue;
        }
        case CS_SIZE:
            if (++cs->line > CHUNK_LINE_MAX)
                r = CHUNK_BAD;
            else if (hex_value((unsigned char)c) >= 0) {
                if (++cs->digits > 15)
                    r = CHUNK_BAD;
                cs->size = cs->size * 16 + (uint64_t)hex_value((unsigned char)c);
            } else if (!cs->digits)
                r = CHUNK_BAD;
            else if (c == ';' || c == ' ' || c == '\t')
                cs->st = CS_EXT;
            else if (c == '\r')
                cs->st = CS_SIZE_LF;
            else if (c == '\n')
                r = size_line_done(cs, max_body);
            else
                r = CHUNK_BAD;
            break;
        case CS_EXT:
            if (++cs->line > CHUNK_LINE_MAX || (c < 0x20 && c != '\t' && c != '\r' && c != '\n') ||
                c == 0x7f)
                r = CHUNK_BAD;
            else if (c == '\r')
                cs->st = CS_SIZE_LF;
            else if (c == '\n')
                r = size_line_done(cs, max_body);
            break;
        case CS_SIZE_LF:
            r = c == '\n' ? size_line_done(cs, max_body) : CHUNK_BAD;
            break;
        case CS_DATA_CR:
            if (c == '\r')
                cs->st = CS_DATA_LF;
            else if (c == '\n')
                goto next_chunk;
            else
                r = CHUNK_BAD;
            break;
        case CS_DATA_LF:
            if (c != '\n') {
                r = CHUNK_BAD;
                break;
            }
        next_chunk:
            cs->st = CS_SIZE;
            cs->size = 0;
            cs->digits = 0;
            cs->line = 0;
            break;
        case CS_TRAILER_START:
            if (c == '\r') {
                cs->st = CS_END_LF;
                break;
            }
            if (c == '\n') {
                cs->st = CS_DONE;
                break;
            }
            cs->st = CS_TRAILER_LINE;
            __attribute__((fallthrough)); /* the line's first byte counts too */
        case CS_TRAILER_LINE:
            if (++cs->trailers > CHUNK_TRAILERS_MAX ||
                (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
                r = CHUNK_BAD;
            else if (c == '\n')
                cs->st = CS_TRAILER_START;
            break;
        case CS_END_LF:
            if (c == '\n')
                cs->st = CS_DONE;
            else
                r = CHUNK_BAD;
            break;
        }
        i++;
    }
    *used = i;
    if (r != CHUNK_MORE)
        return r;
    return cs->st == CS_DONE ? CHUNK_DONE : CHUNK_MORE;
}
