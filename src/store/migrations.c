/* The SQLite schema as numbered migrations. Never edit a released one: add
 * the next number. Each script may hold several statements. */
#include "store/migrations.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"

int sqlite_status(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return AGENTD_EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return AGENTD_ENOTFOUND;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return AGENTD_EBUSY;
    case SQLITE_NOMEM:
        return AGENTD_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return AGENTD_ECORRUPT;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
        return AGENTD_EINVAL;
    default: /* FULL, IOERR, READONLY, CANTOPEN, PROTOCOL, PERM... */
        return AGENTD_EIO;
    }
}

struct migration {
    int version;
    const char *sql;
};

/* Times are Unix ms; expires_at NULL = never. Children point at their
 * session with ON DELETE CASCADE, so deleting (or purging) a session takes
 * its messages, tasks, turns, checkpoints and (from 4) events in the same
 * statement. */
static const struct migration migrations[] = {
    { 1,
      "CREATE TABLE principals ("
      "  id TEXT PRIMARY KEY,"
      "  name TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL);"

      "CREATE TABLE api_keys ("
      "  id TEXT PRIMARY KEY,"
      "  principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,"
      "  hash TEXT NOT NULL UNIQUE,"
      "  created_at INTEGER NOT NULL,"
      "  revoked_at INTEGER);"
      "CREATE INDEX api_keys_principal ON api_keys(principal_id, created_at);"

      "CREATE TABLE sessions ("
      "  id TEXT PRIMARY KEY,"
      "  owner TEXT NOT NULL,"
      "  context TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  updated_at INTEGER NOT NULL,"
      "  expires_at INTEGER);"
      "CREATE INDEX sessions_expires ON sessions(expires_at) WHERE expires_at IS NOT NULL;"

      "CREATE TABLE messages ("
      "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
      "  seq INTEGER NOT NULL,"
      "  role TEXT NOT NULL,"
      "  parts TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  PRIMARY KEY (session_id, seq)) WITHOUT ROWID;"

      "CREATE TABLE tasks ("
      "  id TEXT PRIMARY KEY,"
      "  context_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
      "  owner TEXT NOT NULL,"
      "  state TEXT NOT NULL,"
      "  artifacts TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  updated_at INTEGER NOT NULL);"
      "CREATE INDEX tasks_context ON tasks(context_id, created_at);"

      "CREATE TABLE turns ("
      "  id TEXT PRIMARY KEY,"
      "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
      "  state TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  updated_at INTEGER NOT NULL);"
      "CREATE INDEX turns_session ON turns(session_id);"
      "CREATE INDEX turns_running ON turns(created_at) WHERE state = 'running';"

      "CREATE TABLE checkpoints ("
      "  turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,"
      "  step INTEGER NOT NULL,"
      "  kind TEXT NOT NULL CHECK (kind IN ('llm_reply', 'tool_result')),"
      "  payload TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  PRIMARY KEY (turn_id, step)) WITHOUT ROWID;"

      "CREATE TABLE checkouts ("
      "  id TEXT PRIMARY KEY,"
      "  owner TEXT NOT NULL,"
      "  status TEXT NOT NULL,"
      "  document TEXT NOT NULL,"
      "  version INTEGER NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  updated_at INTEGER NOT NULL,"
      "  expires_at INTEGER);"
      "CREATE INDEX checkouts_expires ON checkouts(expires_at) WHERE expires_at IS NOT NULL;"

      /* No foreign key to checkouts: an order outlives its checkout's expiry. */
      "CREATE TABLE orders ("
      "  id TEXT PRIMARY KEY,"
      "  checkout_id TEXT NOT NULL UNIQUE,"
      "  owner TEXT NOT NULL,"
      "  document TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL);"

      "CREATE TABLE idempotency ("
      "  principal TEXT NOT NULL,"
      "  key TEXT NOT NULL,"
      "  fingerprint TEXT NOT NULL,"
      "  state TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),"
      "  status INTEGER NOT NULL DEFAULT 0,"
      "  headers TEXT,"
      "  body BLOB,"
      "  created_at INTEGER NOT NULL,"
      "  expires_at INTEGER NOT NULL,"
      "  PRIMARY KEY (principal, key)) WITHOUT ROWID;"
      "CREATE INDEX idempotency_expires ON idempotency(expires_at);"

      "CREATE TABLE audit ("
      "  id INTEGER PRIMARY KEY,"
      "  ts INTEGER NOT NULL,"
      "  principal TEXT NOT NULL,"
      "  action TEXT NOT NULL,"
      "  target TEXT NOT NULL,"
      "  request_id TEXT NOT NULL,"
      "  outcome TEXT NOT NULL);"
      "CREATE INDEX audit_principal ON audit(principal, id);" },
    { 2,
      "CREATE TABLE stock ("
      "  product_id TEXT PRIMARY KEY,"
      "  quantity INTEGER NOT NULL CHECK (quantity >= 0)) WITHOUT ROWID;" },
    /* one running turn per session (store_turn_begin claims it); older
     * databases may hold several: all but the newest are failed first */
    { 3,
      "ALTER TABLE turns ADD COLUMN interrupt_requested INTEGER NOT NULL DEFAULT 0;"
      "UPDATE turns SET state = 'failed' WHERE state = 'running' AND rowid NOT IN ("
      "  SELECT max(rowid) FROM turns WHERE state = 'running' GROUP BY session_id);"
      "CREATE UNIQUE INDEX turns_one_running ON turns(session_id) WHERE state = 'running';" },
    /* turns: who runs them, what resumes them, what they cost; checkpoint
     * kind "user_message" (SQLite cannot alter a CHECK: the table is rebuilt
     * the documented way, and nothing references it); per-session turn
     * events (deleted with their session); per-principal daily usage (kept
     * after its sessions; store_purge_expired drops days older than 400) */
    { 4,
      "ALTER TABLE turns ADD COLUMN instance TEXT;"
      "ALTER TABLE turns ADD COLUMN input TEXT;"
      "ALTER TABLE turns ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE turns ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE turns ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;"
      "ALTER TABLE turns ADD COLUMN calls INTEGER NOT NULL DEFAULT 0;"

      "CREATE TABLE checkpoints_v4 ("
      "  turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,"
      "  step INTEGER NOT NULL,"
      "  kind TEXT NOT NULL CHECK (kind IN ('user_message', 'llm_reply', 'tool_result')),"
      "  payload TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  PRIMARY KEY (turn_id, step)) WITHOUT ROWID;"
      "INSERT INTO checkpoints_v4(turn_id, step, kind, payload, created_at) "
      "  SELECT turn_id, step, kind, payload, created_at FROM checkpoints;"
      "DROP TABLE checkpoints;"
      "ALTER TABLE checkpoints_v4 RENAME TO checkpoints;"

      "CREATE TABLE events ("
      "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
      "  seq INTEGER NOT NULL,"
      "  turn_id TEXT,"
      "  type TEXT NOT NULL,"
      "  data TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  PRIMARY KEY (session_id, seq)) WITHOUT ROWID;"

      "CREATE TABLE usage_daily ("
      "  principal TEXT NOT NULL,"
      "  day INTEGER NOT NULL,"
      "  model TEXT NOT NULL,"
      "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
      "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
      "  cost_usd REAL NOT NULL DEFAULT 0,"
      "  calls INTEGER NOT NULL DEFAULT 0,"
      "  PRIMARY KEY (principal, day, model)) WITHOUT ROWID;"
      "CREATE INDEX usage_daily_day ON usage_daily(day);" },
    /* GET /chat/sessions: a principal's sessions newest first, by keyset */
    { 5, "CREATE INDEX sessions_owner ON sessions(owner, created_at, id);" },
    /* an Idempotency-Key claim names its process (core/instance.h), so a
     * claim whose process died is taken over at once, not after its lease */
    { 6, "ALTER TABLE idempotency ADD COLUMN owner TEXT;" },
    /* an API key's scopes (auth/auth.h), comma-separated; "" = the default set */
    { 7, "ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '';" },
    /* per-principal quotas (AGENTD_QUOTA_*): rows held, kept by triggers so
     * the check in an insert's transaction is one lookup, not a count */
    { 8, "CREATE TABLE quota_usage ("
         "  principal TEXT NOT NULL,"
         "  kind TEXT NOT NULL," /* 'sessions' | 'idempotency' */
         "  n INTEGER NOT NULL,"
         "  PRIMARY KEY (principal, kind)) WITHOUT ROWID;"
         "INSERT INTO quota_usage SELECT owner, 'sessions', COUNT(*) FROM sessions GROUP BY owner;"
         "INSERT INTO quota_usage SELECT principal, 'idempotency', COUNT(*) FROM idempotency "
         "  GROUP BY principal;"
         "CREATE TRIGGER quota_sessions_add AFTER INSERT ON sessions BEGIN "
         "  INSERT INTO quota_usage VALUES (NEW.owner, 'sessions', 1) "
         "  ON CONFLICT (principal, kind) DO UPDATE SET n = n + 1; END;"
         "CREATE TRIGGER quota_sessions_drop AFTER DELETE ON sessions BEGIN "
         "  UPDATE quota_usage SET n = n - 1 WHERE principal = OLD.owner AND kind = 'sessions';"
         "  END;"
         "CREATE TRIGGER quota_idem_add AFTER INSERT ON idempotency BEGIN "
         "  INSERT INTO quota_usage VALUES (NEW.principal, 'idempotency', 1) "
         "  ON CONFLICT (principal, kind) DO UPDATE SET n = n + 1; END;"
         "CREATE TRIGGER quota_idem_drop AFTER DELETE ON idempotency BEGIN "
         "  UPDATE quota_usage SET n = n - 1 WHERE principal = OLD.principal "
         "  AND kind = 'idempotency'; END;" },
    /* an audit row can stand for a burst (auth failures: one row per
     * address per minute); purge by age (AGENTD_AUDIT_RETENTION) */
    { 9, "ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
         "CREATE INDEX audit_ts ON audit(ts);" },
    /* the outbox (store.h): events for others (signed order webhooks, later
     * A2A push), delivered with retries by whichever instance claims them;
     * claimed_by/lease_until is that claim, pending rows only */
    { 10, "CREATE TABLE outbox ("
          "  id TEXT PRIMARY KEY,"
          "  kind TEXT NOT NULL,"
          "  target TEXT NOT NULL,"
          "  headers TEXT NOT NULL DEFAULT '{}',"
          "  body TEXT NOT NULL,"
          "  state TEXT NOT NULL DEFAULT 'pending'," /* pending | delivered | dead */
          "  attempts INTEGER NOT NULL DEFAULT 0,"
          "  next_attempt_at INTEGER NOT NULL,"
          "  last_error TEXT,"
          "  claimed_by TEXT,"
          "  lease_until INTEGER,"
          "  created_at INTEGER NOT NULL,"
          "  updated_at INTEGER NOT NULL);"
          "CREATE INDEX outbox_due ON outbox(kind, next_attempt_at) WHERE state = 'pending';" },
    /* orders are updated (PUT /orders/{id},
     * fulfillment events) under compare-and-swap on version; access_hash is
     * the SHA-256 of the permalink page's token (the token itself is never
     * kept in this column) */
    { 11, "ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 1;"
          "ALTER TABLE orders ADD COLUMN access_hash TEXT;" },
    /* addresses buyers gave at checkout, saved for the
     * merchant's customer (customer = the lowercased email); body is the
     * address JSON, sealed (core/seal.c) when a keyring is configured. */
    { 12, "CREATE TABLE saved_addresses ("
          "  id TEXT PRIMARY KEY,"
          "  customer TEXT NOT NULL,"
          "  body TEXT NOT NULL,"
          "  created_at INTEGER NOT NULL"
          ");"
          "CREATE INDEX saved_addresses_customer ON saved_addresses(customer, created_at, id);" },
    /* one row per running agentd process, its heartbeat refreshed every
     * few seconds: a replica whose heartbeat stopped is dead, and what it
     * held (turns, completions, outbox claims) is adopted by a live one.
     * PostgreSQL: the same table (BIGINT for the times). */
    { 13, "CREATE TABLE instances ("
          "  id TEXT PRIMARY KEY,"
          "  host TEXT NOT NULL,"
          "  pid INTEGER NOT NULL,"
          "  started_at INTEGER NOT NULL,"
          "  heartbeat_at INTEGER NOT NULL"
          ");" },
    /* events of one sequence (an order's webhooks) go out one at a time, in
     * order: a later one waits while an earlier one is pending */
    { 14, "ALTER TABLE outbox ADD COLUMN seq_key TEXT;"
          "ALTER TABLE outbox ADD COLUMN seq INTEGER;"
          "CREATE INDEX outbox_seq ON outbox(seq_key, seq) WHERE state = 'pending';" },
    /* checkpoints' kind CHECK as comparisons: SQLite
     * builds a temporary table for an IN list on every INSERT (two a turn);
     * the table is rebuilt the documented way (nothing references it).
     * PostgreSQL's IN costs nothing: its 15 is a no-op. */
    { 15, "CREATE TABLE checkpoints_v15 ("
          "  turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,"
          "  step INTEGER NOT NULL,"
          "  kind TEXT NOT NULL CHECK (kind = 'user_message' OR kind = 'llm_reply' OR "
          "    kind = 'tool_result'),"
          "  payload TEXT NOT NULL,"
          "  created_at INTEGER NOT NULL,"
          "  PRIMARY KEY (turn_id, step)) WITHOUT ROWID;"
          "INSERT INTO checkpoints_v15(turn_id, step, kind, payload, created_at) "
          "  SELECT turn_id, step, kind, payload, created_at FROM checkpoints;"
          "DROP TABLE checkpoints;"
          "ALTER TABLE checkpoints_v15 RENAME TO checkpoints;" },
    /* a context's tasks in (created_at, id) order straight from the index:
     * without id in it every list sorted its rows (an A2A message that
     * names only its context lists them) */
    { 16, "DROP INDEX tasks_context;"
          "CREATE INDEX tasks_context ON tasks(context_id, created_at, id);" },
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int migrations_latest(void) { return migrations[NMIGRATIONS - 1].version; }

/* sql on db; a failure says why in e ("migration N failed: ..." when
 * version is not 0). */
static int exec(sqlite3 *db, const char *sql, int version, struct agentd_error *e)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    if (version)
        return agentd_fail(e, sqlite_status(rc), NULL, NULL, "migration %d failed: %s", version,
                           sqlite3_errmsg(db));
    return agentd_fail(e, sqlite_status(rc), NULL, NULL, "%s", sqlite3_errmsg(db));
}

static int read_version(sqlite3 *db, int *version, struct agentd_error *e)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return agentd_fail(e, sqlite_status(rc), NULL, NULL, "%s", sqlite3_errmsg(db));
    *version = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    int status = rc == SQLITE_ROW || rc == SQLITE_DONE
                     ? 0
                     : agentd_fail(e, sqlite_status(rc), NULL, NULL, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return status;
}

static int write_version(sqlite3 *db, int version, struct agentd_error *e)
{
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT INTO meta(key, value) VALUES('schema_version', '%d') "
             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
             version);
    return exec(db, sql, 0, e);
}

int migrations_apply(sqlite3 *db, int *version, struct agentd_error *e)
{
    return migrations_apply_upto(db, migrations_latest(), version, e);
}

int migrations_apply_upto(sqlite3 *db, int target, int *version, struct agentd_error *e)
{
    /* IMMEDIATE: two processes starting at once must not both migrate. */
    int rc = exec(db, "BEGIN IMMEDIATE", 0, e);
    if (rc)
        return rc;
    int have = 0;
    rc = exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) "
                  "WITHOUT ROWID",
              0, e);
    if (rc == 0)
        rc = read_version(db, &have, e);
    if (rc == 0 && have > migrations_latest()) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "database schema version %d is newer than this agentd (max %d); "
                           "upgrade agentd",
                           have, migrations_latest());
    }
    int applied = have;
    for (int i = 0; rc == 0 && i < NMIGRATIONS; i++) {
        if (migrations[i].version <= have || migrations[i].version > target)
            continue;
        rc = exec(db, migrations[i].sql, migrations[i].version, e);
        applied = migrations[i].version;
    }
    if (rc == 0 && applied != have)
        rc = write_version(db, applied, e);
    if (rc == 0)
        rc = exec(db, "COMMIT", 0, e);
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    *version = applied;
    return 0;
}
