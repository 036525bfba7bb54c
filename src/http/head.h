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
    int chunked;            /* Transfer-Encoding is exactly "chunked" */
    int not_implemented;    /* HEAD_MALFORMED because of a transfer coding we do not decode */
    int hosts;              /* Host header lines seen */
    int http11;             /* HTTP/1.1 (else 1.0) */
    int expect_continue;
    const char *method;     /* points into the scanned buffer */
    size_t method_len;
    const char *why;        /* HEAD_MALFORMED: a static reason */
};

/* Scan buf[0..len). Accepts CRLF or bare LF line ends. Leading empty lines
 * (RFC 9112 §2.2) are counted in head_len. */
enum head_result head_scan(const char *buf, size_t len, struct head_info *out);

/* Chunked body framing (RFC 9112 §7.1), fed in pieces: the guard follows a
 * chunked body to its end itself, so a malformed or oversized one gets our
 * JSON answer and the next request's head is found where the body ends. */
enum chunk_result {
    CHUNK_MORE = 0,       /* every byte given belongs to the body; need more */
    CHUNK_DONE = 1,       /* the body (and its trailers) ended inside this piece */
    CHUNK_BAD = -1,       /* not chunked framing */
    CHUNK_TOO_LARGE = -2, /* the chunks' data is over the limit */
};

struct chunk_scan {
    int st;
    uint64_t left;   /* data bytes left in the current chunk */
    uint64_t size;   /* size being read */
    int digits;
    size_t line;     /* bytes in the current size or trailer line */
    size_t trailers; /* bytes of trailer lines */
    int64_t total;   /* data bytes so far */
};

/* Starts a body: zero the scanner. */
void chunk_scan_init(struct chunk_scan *cs);
/* Scans buf[0..len); *used = the bytes that belong to the body (all of them
 * unless CHUNK_DONE). max_body bounds the sum of the chunks' data. */
enum chunk_result chunk_scan(struct chunk_scan *cs, const char *buf, size_t len, int64_t max_body,
                             size_t *used);

#endif
