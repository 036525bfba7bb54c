/* The PostgreSQL backend's instances table (store.h): each process's
 * heartbeat row. sqlite_instances.c's own logic, compiled against pg_int.h
 * (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_instances.c"
