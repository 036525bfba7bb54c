/* The PostgreSQL backend's callers and their trail: principals, API keys (by
 * hash) and the append-only audit log.
 * sqlite_auth.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_auth.c"
