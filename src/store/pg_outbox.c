/* The PostgreSQL backend's outbox (store.h): events waiting to be delivered,
 * claimed by an instance under a lease, finished after each attempt.
 * sqlite_outbox.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_outbox.c"
