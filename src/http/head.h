/* HTTP/1.x request-head scanner: finds the end of a request head, checks its
 * shape and reads the framing headers, before the HTTP library sees it. Pure
 * (no I/O), so it is unit-tested and fuzzed on its own. */
#ifndef AGENTD_HTTP_HEAD_H
#define AGENTD_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

enum head_result {
    HEAD_INCOMPLETE = 0, /* no blank line yet: need more bytes */
    HEAD_OK = 1,
    HEAD_MALFORMED = -1,
};

struct head_info {
    size_t head_len;        /* bytes up to and including the blank line */
    int64_t content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding ends in chunked */
    int expect_continue;
    const char *method;     /* points into the scanned buffer */
    size_t method_len;
    const char *why;        /* HEAD_MALFORMED: a static reason */
};

/* Scan buf[0..len). Accepts CRLF or bare LF line ends. Leading empty lines
 * (RFC 9112 §2.2) are counted in head_len. */
enum head_result head_scan(const char *buf, size_t len, struct head_info *out);

#endif
