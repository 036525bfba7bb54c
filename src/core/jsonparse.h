/* A fast JSON reader for small request bodies: the common subset parsed in
 * one pass into a jansson tree, anything else left to json_loadb. */
#ifndef AGENTD_CORE_JSONPARSE_H
#define AGENTD_CORE_JSONPARSE_H

#include <stddef.h>

#include <jansson.h>

/* The tree json_loadb(s, n, 0, ...) gives (same values, types and member
 * order), or NULL when s is not in the subset this reads: invalid JSON,
 * non-ASCII bytes, real numbers, integers of 19+ digits, \u0000 or
 * surrogate escapes, nesting over 64, or no memory. On NULL call
 * json_loadb: it gives the tree or the error text, as before. */
json_t *jsonparse_loadb(const char *s, size_t n);

/* The deepest nesting read here (objects and arrays); deeper is NULL. */
#define JSONPARSE_MAX_DEPTH 64

#endif
