/* The PostgreSQL backend's idempotency records: claim, finish, abandon, drop,
 * and the claim stored already done that an A2A accept makes.
 * sqlite_idem.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_idem.c"
