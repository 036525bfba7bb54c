/* The PostgreSQL backend's commerce rows: checkouts (compare-and-swap on
 * version), orders placed with their stock taken, and stock.
 * sqlite_commerce.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_commerce.c"
