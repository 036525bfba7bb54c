/* The PostgreSQL backend's conversations: sessions (with listing and idle
 * deletion) and their messages.
 * sqlite_sessions.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_sessions.c"
