/* jansson's allocator for agentd: a per-thread cache of small freed blocks
 * in front of malloc, so building and dropping JSON trees stops churning glibc. */
#ifndef AGENTD_CORE_JSONALLOC_H
#define AGENTD_CORE_JSONALLOC_H

#include <stddef.h>

/* Makes jansson allocate through jsonalloc_malloc/jsonalloc_free. Call
 * first thing in main, before any jansson call. The blocks stay plain
 * malloc blocks: text json_dumps returns is still free()d by its caller.
 * Does nothing under AddressSanitizer (a cache would hide a use after free). */
void jsonalloc_install(void);

/* The functions themselves (tests call them directly). */
void *jsonalloc_malloc(size_t size);
void jsonalloc_free(void *p);

/* Blocks cached by the calling thread (tests). */
size_t jsonalloc_cached(void);
/* Blocks in the shared depot, all threads' overflow (tests). */
size_t jsonalloc_depot(void);

#endif
