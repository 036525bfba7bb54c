/* SQLite schema migrations: numbered SQL scripts compiled into the binary and
 * applied in one transaction, with the version kept in meta.schema_version. */
#ifndef AGENTD_STORE_MIGRATIONS_H
#define AGENTD_STORE_MIGRATIONS_H

#include <stddef.h>

#include <sqlite3.h>

#include "core/err.h"

/* The newest schema version this binary knows. */
int migrations_latest(void);

/* Brings db up to migrations_latest() in one IMMEDIATE transaction (all or
 * nothing) and sets *version to the result. A database newer than this
 * binary is refused with AGENTD_EINVAL. A failure says why in e (may be
 * NULL). */
int migrations_apply(sqlite3 *db, int *version, struct agentd_error *e);
/* The same, stopping at version target (tests build older databases). */
int migrations_apply_upto(sqlite3 *db, int target, int *version, struct agentd_error *e);

/* An SQLite result code as an AGENTD_E* status (the backend's too). */
int sqlite_status(int rc);

#endif
