/* The external input guard over HTTP: POSTs a user message to
 * AGENTD_GUARD_URL and reads its verdict, on the loop's outbound client. */
#ifndef AGENTD_AUTH_INPUT_GUARD_H
#define AGENTD_AUTH_INPUT_GUARD_H

#include <stdint.h>

#include "core/guard.h"

struct input_guard;

/* url: the guard's endpoint (the operator's: loopback and private hosts
 * allowed); timeout_ms bounds one call. NULL out of memory. */
struct input_guard *input_guard_new(const char *url, int64_t timeout_ms);
/* After the loops stopped and every call was cancelled or ended, before the
 * loops' event bases are freed. NULL is fine. */
void input_guard_free(struct input_guard *g);
/* The agent's view of it (core/guard.h): check and cancel; ud = g. */
struct guard_external input_guard_external(struct input_guard *g);

#endif
