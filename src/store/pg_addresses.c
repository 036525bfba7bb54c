/* The PostgreSQL backend's address book: addresses buyers gave at checkout,
 * kept per customer key (the store never reads the sealed body).
 * sqlite_addresses.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_addresses.c"
