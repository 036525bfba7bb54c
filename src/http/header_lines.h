/* Reply header lines written to evhttp in one output-header entry, and the
 * checked parts they are made of (the Date text, header-safe bytes). */
#ifndef AGENTD_HTTP_HEADER_LINES_H
#define AGENTD_HTTP_HEADER_LINES_H

#include <stddef.h>

struct evkeyvalq;

/* Append one entry `key: value` to an evhttp header list, where value may
 * hold further lines joined by CR LF ("v\r\nName: v2"). evhttp writes each
 * entry with one printf, so n lines cost one; evhttp_add_header would refuse
 * the CR LF. No byte is checked here: every part must be checked where it
 * is made (http_header_text_safe). The list owns the entry (free()).
 * 0, or AGENTD_ENOMEM (nothing added). */
int http_header_lines_add(struct evkeyvalq *h, const char *key, const char *value, size_t vlen);

/* 1 when t[0..n) has no byte that could end or split a header line. */
int http_header_text_safe(const char *t, size_t n);

/* The current RFC 1123 date ("Thu, 03 Dec 2026 23:41:30 GMT"), formatted
 * by libevent once a second per thread and checked header-safe then; NULL
 * if it could not be made (evhttp then writes its own). */
const char *http_date_now(void);

#endif
