/* The PostgreSQL backend's agent turns: the one-running-turn claim, checkpoints,
 * events, the per-step transactions and model usage.
 * sqlite_turns.c's own logic, compiled against pg_int.h (its helpers on libpq). */
#include "store/pg_int.h"
#include "store/sqlite_turns.c"
