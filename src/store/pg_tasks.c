/* The PostgreSQL backend's A2A tasks: rows of a session, their compare-and-swap
 * update, and the one-transaction accept (messageId claim + context + task).
 * sqlite_tasks.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_tasks.c"
