/* Test-only crash points: AGENTD_FAILPOINT=NAME (refused in production)
 * makes the process die with _exit(FAILPOINT_EXIT) the first time it passes
 * failpoint(NAME) — the way the e2e tests put a kill -9 at an exact spot
 * (e.g. after a tool's effect is saved and before its checkpoint). */
#ifndef AGENTD_CORE_FAILPOINT_H
#define AGENTD_CORE_FAILPOINT_H

#define FAILPOINT_EXIT 86

/* Once at start, before any thread; name NULL = none. Copies name. */
void failpoint_set(const char *name);
/* Dies here if `name` is the armed point. */
void failpoint(const char *name);

#endif
