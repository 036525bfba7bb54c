/* A compact JSON writer for jansson trees: exactly json_dumps(JSON_COMPACT)'s
 * bytes, without its per-container loop-check bookkeeping (a checkout flow's hot path). */
#ifndef AGENTD_CORE_JSONDUMP_H
#define AGENTD_CORE_JSONDUMP_H

#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"

/* j as json_dumps(j, flags) writes it, flags being JSON_COMPACT with an
 * optional JSON_REAL_PRECISION, JSON_ENCODE_ANY and JSON_SORT_KEYS (other
 * flags are passed to jansson whole).
 * malloc'd text and its length in *len (may be NULL); NULL where json_dumps
 * gives NULL (a string that is not UTF-8, a top-level scalar without
 * JSON_ENCODE_ANY, nesting deeper than 2048) or out of memory. */
char *jsondump(const json_t *j, size_t flags, size_t *len);

/* The same, appended to b: 0, or AGENTD_EINVAL / AGENTD_ENOMEM. */
int jsondump_buf(struct buf *b, const json_t *j, size_t flags);

/* 1 if j holds a real number anywhere: its dump then depends on the
 * precision asked (a reply's 10 digits, the store's 17). */
int jsondump_has_real(const json_t *j);

#endif
