/* The SQLite backend's SQL: every statement it runs, one X-macro table that
 * gives each connection's statement cache its slots (enum st in sqlite_int.h). */
#ifndef AGENTD_STORE_SQLITE_SQL_H
#define AGENTD_STORE_SQLITE_SQL_H

#define LIVE(col, p) "(" col " IS NULL OR " col " > " p ")"

/* usage_daily rows older than this many days are purged. */
#define USAGE_KEEP_DAYS 400
#define APIKEY_COLS "id, principal_id, hash, created_at, revoked_at, scopes"
#define STR_(x) #x
#define STR(x) STR_(x)
#define MS_PER_DAY 86400000
#define OUTBOX_COLS "id, kind, target, headers, body, state, attempts, next_attempt_at, "      \
                    "last_error, claimed_by, lease_until, created_at, updated_at"

/* A turn row with its session's owner (store_turn_get / _list_unfinished). */
#define TURN_COLS "t.id, t.session_id, t.state, s.owner, t.instance, t.input, "               \
                  "t.prompt_tokens, t.completion_tokens, t.cost_usd, t.created_at, "          \
                  "t.updated_at FROM turns t JOIN sessions s ON s.id = t.session_id "
#define USAGE_SUMS "coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), "   \
                   "coalesce(sum(cost_usd), 0.0), coalesce(sum(calls), 0) "

/* X(name, sql). Parameters are numbered; "now" is always bound by the
 * caller, so an expired row is invisible whatever the purge has done. */
#define STATEMENTS(X)                                                                          \
    X(BEGIN, "BEGIN")                                                                          \
    X(BEGIN_IMMEDIATE, "BEGIN IMMEDIATE")                                                      \
    X(COMMIT, "COMMIT")                                                                        \
    X(ROLLBACK, "ROLLBACK")                                                                    \
    X(SAVEPOINT, "SAVEPOINT step")                                                             \
    X(RELEASE, "RELEASE step")                                                                 \
    X(ROLLBACK_TO, "ROLLBACK TO step")                                                         \
    X(SAVEPOINT_OP, "SAVEPOINT op")                                                            \
    X(RELEASE_OP, "RELEASE op")                                                                \
    X(ROLLBACK_TO_OP, "ROLLBACK TO op")                                                        \
    X(PING, "SELECT count(*) FROM meta")                                                       \
    X(META_GET, "SELECT value FROM meta WHERE key = ?1")                                       \
    X(META_SET, "INSERT INTO meta(key, value) VALUES(?1, ?2) "                                 \
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value")                       \
    X(PRINCIPAL_INSERT, "INSERT INTO principals(id, name, created_at) VALUES(?1, ?2, ?3)")     \
    X(PRINCIPAL_GET, "SELECT id, name, created_at FROM principals WHERE id = ?1")              \
    X(PRINCIPAL_EXISTS, "SELECT 1 FROM principals WHERE id = ?1")                              \
    X(APIKEY_INSERT, "INSERT INTO api_keys(id, principal_id, hash, created_at, scopes) "       \
                     "VALUES(?1, ?2, ?3, ?4, ?5)")                                             \
    X(APIKEY_BY_HASH, "SELECT " APIKEY_COLS " FROM api_keys "                                  \
                      "WHERE hash = ?1 AND revoked_at IS NULL")                                \
    X(APIKEY_GET, "SELECT " APIKEY_COLS " FROM api_keys WHERE id = ?1")                        \
    X(APIKEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL") \
    X(APIKEY_LIST, "SELECT " APIKEY_COLS " FROM api_keys "                                     \
                   "WHERE principal_id = ?1 ORDER BY created_at, id")                          \
    X(APIKEY_LIST_ALL, "SELECT " APIKEY_COLS " FROM api_keys ORDER BY created_at, id")         \
    X(SESSION_DROP_EXPIRED, "DELETE FROM sessions WHERE id = ?1 AND expires_at <= ?2")         \
    X(SESSION_INSERT, "INSERT INTO sessions(id, owner, context, created_at, updated_at, "      \
                      "expires_at) VALUES(?1, ?2, ?3, ?4, ?4, ?5)")                            \
    X(SESSION_COUNT_OWNER, "SELECT n FROM quota_usage WHERE principal = ?1 "                   \
                           "AND kind = 'sessions'")                                            \
    X(SESSION_GET, "SELECT id, owner, context, created_at, updated_at, expires_at "            \
                   "FROM sessions WHERE id = ?1 AND " LIVE("expires_at", "?2"))                \
    X(SESSION_LIVE, "SELECT 1 FROM sessions WHERE id = ?1 AND " LIVE("expires_at", "?2"))      \
    X(SESSION_TOUCH, "UPDATE sessions SET context = coalesce(?2, context), updated_at = ?3, "   \
                     "expires_at = ?4 WHERE id = ?1 AND " LIVE("expires_at", "?3"))            \
    X(SESSION_DELETE, "DELETE FROM sessions WHERE id = ?1 AND " LIVE("expires_at", "?2"))      \
    X(SESSION_LIST, "SELECT id, owner, context, created_at, updated_at, expires_at "           \
                    "FROM sessions WHERE owner = ?1 AND " LIVE("expires_at", "?2")             \
                    " AND (?4 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) "   \
                    "ORDER BY created_at DESC, id DESC LIMIT ?5")                              \
    X(SESSION_OWNED, "SELECT 1 FROM sessions WHERE id = ?1 AND owner = ?2 AND "                \
                     LIVE("expires_at", "?3"))                                                 \
    X(SESSION_RUNNING, "SELECT 1 FROM turns WHERE session_id = ?1 AND state = 'running'")      \
    X(MESSAGE_NEXT_SEQ, "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = ?1") \
    X(MESSAGE_INSERT, "INSERT INTO messages(session_id, seq, role, parts, created_at) "         \
                      "VALUES(?1, ?2, ?3, ?4, ?5)")                                            \
    X(MESSAGE_LIST, "SELECT session_id, seq, role, parts, created_at FROM messages "           \
                    "WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")                \
    X(MESSAGE_TAIL, "SELECT * FROM (SELECT session_id, seq, role, parts, created_at FROM "     \
                    "messages WHERE session_id = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3) " \
                    "ORDER BY seq")                                                            \
    X(TASK_INSERT, "INSERT INTO tasks(id, context_id, owner, state, artifacts, created_at, "   \
                   "updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)")                           \
    X(TASK_GET, "SELECT t.id, t.context_id, t.owner, t.state, t.artifacts, t.created_at, "     \
                "t.updated_at FROM tasks t JOIN sessions s ON s.id = t.context_id "            \
                "WHERE t.id = ?1 AND " LIVE("s.expires_at", "?2"))                             \
    X(TASK_UPDATE_IF, "UPDATE tasks SET state = ?2, artifacts = ?3, updated_at = ?4 "          \
                      "WHERE id = ?1 AND state = ?5 AND artifacts = ?6 AND EXISTS (SELECT 1 "  \
                      "FROM sessions s WHERE s.id = tasks.context_id AND "                     \
                      LIVE("s.expires_at", "?4") ")")                                          \
    /* the same, in a transaction that found the task's context live (a      \
     * turn's finish, sqlite_turns.c): the context named, not looked up */    \
    X(TASK_UPDATE_IF_IN, "UPDATE tasks SET state = ?2, artifacts = ?3, updated_at = ?4 "       \
                         "WHERE id = ?1 AND state = ?5 AND artifacts = ?6 AND context_id = ?7") \
    X(TASK_LIST, "SELECT t.id, t.context_id, t.owner, t.state, t.artifacts, t.created_at, "    \
                 "t.updated_at FROM tasks t JOIN sessions s ON s.id = t.context_id "           \
                 "WHERE t.context_id = ?1 AND " LIVE("s.expires_at", "?2")                     \
                 " ORDER BY t.created_at, t.id")                                               \
    X(TASK_LIST_OWNER, "SELECT t.id, t.context_id, t.owner, t.state, t.artifacts, t.created_at, " \
                       "t.updated_at FROM tasks t JOIN sessions s ON s.id = t.context_id "      \
                       "WHERE t.owner = ?1 AND (?2 IS NULL OR t.context_id = ?2) AND "           \
                       "(?3 IS NULL OR t.state = ?3) AND (?4 IS NULL OR t.updated_at < ?5 OR "   \
                       "(t.updated_at = ?5 AND t.id < ?4)) AND " LIVE("s.expires_at", "?6")     \
                       " ORDER BY t.updated_at DESC, t.id DESC LIMIT ?7")                       \
    X(TURN_EXISTS, "SELECT 1 FROM turns WHERE id = ?1")                                        \
    X(TURN_EXPIRE_STALE, "UPDATE turns SET state = 'failed', updated_at = ?2 "                 \
                         "WHERE session_id = ?1 AND state = 'running' AND updated_at <= ?3")   \
    X(TURN_CLAIM, "INSERT INTO turns(id, session_id, state, instance, input, created_at, "     \
                  "updated_at) VALUES(?1, ?2, 'running', ?4, ?5, ?3, ?3)")                     \
    X(TURN_INTERRUPT_REQUESTED, "SELECT interrupt_requested FROM turns WHERE id = ?1 AND "     \
                                "state = 'running'")                                           \
    X(TURN_HEARTBEAT, "UPDATE turns SET updated_at = ?2 WHERE id = ?1")                        \
    X(TURN_INTERRUPT, "UPDATE turns SET interrupt_requested = 1 WHERE session_id = ?1 AND "    \
                      "state = 'running'")                                                     \
    X(TURN_LIVE, "SELECT 1 FROM turns t JOIN sessions s ON s.id = t.session_id "               \
                 "WHERE t.id = ?1 AND " LIVE("s.expires_at", "?2"))                            \
    X(TURN_FINISH, "UPDATE turns SET state = ?2, input = NULL, updated_at = ?3 "               \
                   "WHERE id = ?1 AND state = 'running' AND EXISTS (SELECT 1 FROM sessions s " \
                   "WHERE s.id = turns.session_id AND " LIVE("s.expires_at", "?3") ")")        \
    X(TURN_ADOPT, "UPDATE turns SET instance = ?3, updated_at = ?4 WHERE id = ?1 AND "         \
                  "state = 'running' AND instance IS ?2 AND EXISTS (SELECT 1 FROM sessions s " \
                  "WHERE s.id = turns.session_id AND " LIVE("s.expires_at", "?4") ")")         \
    X(TURN_GET, "SELECT " TURN_COLS "WHERE t.id = ?1 AND " LIVE("s.expires_at", "?2"))         \
    X(TURN_UNFINISHED, "SELECT " TURN_COLS "WHERE t.state = 'running' AND "                    \
                       "(?3 IS NULL OR t.instance IS NOT ?3) AND (t.created_at > ?4 OR "       \
                       "(t.created_at = ?4 AND t.id > ?5)) AND " LIVE("s.expires_at", "?1")    \
                       " ORDER BY t.created_at, t.id LIMIT ?2")                                \
    X(TURN_IN_SESSION, "SELECT 1 FROM turns WHERE id = ?1 AND session_id = ?2")                \
    X(TURN_USAGE_ADD, "UPDATE turns SET prompt_tokens = prompt_tokens + ?2, "                  \
                      "completion_tokens = completion_tokens + ?3, cost_usd = cost_usd + ?4, " \
                      "calls = calls + ?5 WHERE id = ?1 AND EXISTS (SELECT 1 FROM sessions s " \
                      "WHERE s.id = turns.session_id AND " LIVE("s.expires_at", "?6") ")")     \
    X(USAGE_DAILY_ADD, "INSERT INTO usage_daily(principal, day, model, prompt_tokens, "        \
                       "completion_tokens, cost_usd, calls) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) " \
                       "ON CONFLICT(principal, day, model) DO UPDATE SET "                     \
                       "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "              \
                       "completion_tokens = completion_tokens + excluded.completion_tokens, "  \
                       "cost_usd = cost_usd + excluded.cost_usd, calls = calls + excluded.calls") \
    X(USAGE_DAY, "SELECT " USAGE_SUMS "FROM usage_daily WHERE principal = ?1 AND day = ?2")    \
    X(USAGE_SESSION, "SELECT " USAGE_SUMS "FROM turns WHERE session_id = ?1")                  \
    X(EVENT_NEXT_SEQ, "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE session_id = ?1")     \
    X(EVENT_INSERT, "INSERT INTO events(session_id, seq, turn_id, type, data, created_at) "    \
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")                                          \
    X(EVENT_LIST, "SELECT session_id, seq, turn_id, type, data, created_at FROM events "       \
                  "WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")                  \
    X(CHECKPOINT_INSERT, "INSERT INTO checkpoints(turn_id, step, kind, payload, created_at) "  \
                         "VALUES(?1, ?2, ?3, ?4, ?5)")                                         \
    X(CHECKPOINT_LIST, "SELECT turn_id, step, kind, payload, created_at FROM checkpoints "     \
                       "WHERE turn_id = ?1 ORDER BY step")                                     \
    X(CHECKOUT_DROP_EXPIRED, "DELETE FROM checkouts WHERE id = ?1 AND expires_at <= ?2")       \
    X(CHECKOUT_INSERT, "INSERT INTO checkouts(id, owner, status, document, version, "          \
                       "created_at, updated_at, expires_at) VALUES(?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)") \
    X(CHECKOUT_GET, "SELECT id, owner, status, document, version, created_at, updated_at, "    \
                    "expires_at FROM checkouts WHERE id = ?1 AND " LIVE("expires_at", "?2"))   \
    X(CHECKOUT_LIST_AFTER, "SELECT id, owner, status, document, version, created_at, "          \
                           "updated_at, expires_at FROM checkouts WHERE id > ?1 AND "          \
                           LIVE("expires_at", "?2") " ORDER BY id LIMIT ?3")                   \
    X(CHECKOUT_LIVE, "SELECT 1 FROM checkouts WHERE id = ?1 AND " LIVE("expires_at", "?2"))    \
    X(CHECKOUT_CAS, "UPDATE checkouts SET status = ?3, document = ?4, version = version + 1, " \
                    "updated_at = ?5 WHERE id = ?1 AND version = ?2 AND "                      \
                    LIVE("expires_at", "?5"))                                                  \
    X(ORDER_INSERT, "INSERT INTO orders(id, checkout_id, owner, document, created_at, "        \
                    "access_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")                             \
    X(ORDER_GET, "SELECT id, checkout_id, owner, document, created_at, version, access_hash "  \
                 "FROM orders WHERE id = ?1")                                                  \
    X(ORDER_CAS, "UPDATE orders SET document = ?3, version = version + 1 "                     \
                 "WHERE id = ?1 AND version = ?2")                                             \
    X(ORDER_EXISTS, "SELECT 1 FROM orders WHERE id = ?1")                                      \
    X(OUTBOX_INSERT, "INSERT INTO outbox(id, kind, target, headers, body, next_attempt_at, "   \
                     "created_at, updated_at, seq_key, seq) "                                  \
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)")                         \
    X(OUTBOX_CLAIM, "UPDATE outbox SET claimed_by = ?2, lease_until = ?3 + ?4 WHERE id IN ("   \
                    "SELECT id FROM outbox WHERE kind = ?1 AND state = 'pending' AND "         \
                    "next_attempt_at <= ?3 AND (claimed_by IS NULL OR lease_until <= ?3) "     \
                    "AND (seq_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox e WHERE "        \
                    "e.seq_key = outbox.seq_key AND e.state = 'pending' AND e.seq < outbox.seq)) " \
                    "ORDER BY next_attempt_at, id LIMIT ?5) RETURNING " OUTBOX_COLS)           \
    X(OUTBOX_FINISH, "UPDATE outbox SET state = ?3, attempts = attempts + 1, "                 \
                     "next_attempt_at = ?4, last_error = ?5, claimed_by = NULL, "              \
                     "lease_until = NULL, updated_at = ?6 WHERE id = ?1 AND claimed_by = ?2 "  \
                     "AND state = 'pending'")                                                  \
    X(OUTBOX_EXISTS, "SELECT 1 FROM outbox WHERE id = ?1")                                     \
    X(OUTBOX_RELEASE, "UPDATE outbox SET claimed_by = NULL, lease_until = NULL "               \
                      "WHERE claimed_by = ?1")                                                 \
    X(OUTBOX_HOLDERS, "SELECT DISTINCT claimed_by FROM outbox WHERE state = 'pending' AND "     \
                      "claimed_by IS NOT NULL AND lease_until > ?1")                           \
    X(OUTBOX_DEPTH, "SELECT count(*) FROM outbox WHERE state = 'pending' "                     \
                    "AND (?1 IS NULL OR kind = ?1)")                                           \
    X(OUTBOX_GET, "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1")                          \
    X(INSTANCE_BEAT, "INSERT INTO instances(id, host, pid, started_at, heartbeat_at) "           \
                     "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET "               \
                     "heartbeat_at = excluded.heartbeat_at")                                   \
    X(INSTANCE_LIST, "SELECT id, host, pid, started_at, heartbeat_at FROM instances ORDER BY id") \
    X(INSTANCE_DELETE, "DELETE FROM instances WHERE id = ?1")                                  \
    X(STOCK_TAKE, "UPDATE stock SET quantity = quantity - ?2 WHERE product_id = ?1 "            \
                  "AND quantity >= ?2")                                                        \
    X(STOCK_SET, "INSERT INTO stock(product_id, quantity) VALUES(?1, ?2) "                    \
                 "ON CONFLICT(product_id) DO UPDATE SET quantity = excluded.quantity")         \
    X(STOCK_SEED, "INSERT INTO stock(product_id, quantity) VALUES(?1, ?2) ON CONFLICT DO NOTHING") \
    X(STOCK_CLEAR, "DELETE FROM stock")                                                        \
    X(STOCK_GET, "SELECT quantity FROM stock WHERE product_id = ?1")                           \
    X(ADDRESS_SAVE, "INSERT INTO saved_addresses(id, customer, body, created_at) "             \
                    "VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING")                           \
    X(ADDRESS_LIST, "SELECT id, customer, body, created_at FROM saved_addresses "              \
                    "WHERE customer = ?1 ORDER BY created_at, id LIMIT ?2")                    \
    X(ADDRESS_LIST_AFTER, "SELECT id, customer, body, created_at FROM saved_addresses "        \
                          "WHERE id > ?1 ORDER BY id LIMIT ?2")                                \
    X(ADDRESS_RESEAL, "UPDATE saved_addresses SET body = ?3 WHERE id = ?1 AND body = ?2")      \
    X(IDEM_DROP_EXPIRED, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "          \
                         "AND expires_at <= ?3")                                               \
    X(IDEM_DROP_STALE, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "            \
                       "AND state = 'in_progress' AND created_at <= ?3")                       \
    X(IDEM_INSERT, "INSERT INTO idempotency(principal, key, fingerprint, state, created_at, "  \
                   "expires_at, owner) VALUES(?1, ?2, ?3, 'in_progress', ?4, ?5, ?6) "         \
                   "ON CONFLICT DO NOTHING")                                                   \
    X(IDEM_TAKEOVER, "UPDATE idempotency SET owner = ?4, created_at = ?5 WHERE principal = ?1 " \
                     "AND key = ?2 AND state = 'in_progress' AND owner IS ?3")                 \
    X(IDEM_INSERT_DONE, "INSERT INTO idempotency(principal, key, fingerprint, state, status, "  \
                        "headers, body, created_at, expires_at) VALUES(?1, ?2, ?3, 'done', "  \
                        "200, '{}', ?4, ?5, ?6) ON CONFLICT DO NOTHING")                       \
    X(IDEM_COUNT_PRINCIPAL, "SELECT n FROM quota_usage WHERE principal = ?1 "                  \
                            "AND kind = 'idempotency'")                                        \
    X(IDEM_DROP, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2")                  \
    X(IDEM_GET, "SELECT principal, key, fingerprint, state, status, headers, body, "           \
                "created_at, expires_at, owner FROM idempotency WHERE principal = ?1 AND key = ?2 "   \
                "AND expires_at > ?3")                                                         \
    X(IDEM_FINISH, "UPDATE idempotency SET state = 'done', status = ?3, headers = ?4, "        \
                   "body = ?5 WHERE principal = ?1 AND key = ?2 AND state = 'in_progress' "    \
                   "AND expires_at > ?6")                                                      \
    X(IDEM_ABANDON, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "               \
                    "AND state = 'in_progress'")                                               \
    X(AUDIT_INSERT, "INSERT INTO audit(ts, principal, action, target, request_id, outcome, "   \
                    "count) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")                                \
    X(AUDIT_LOCK, "SELECT ?1, ?2, ?3") /* the writer lock is enough here (pg_sql.h) */     \
    X(AUDIT_BUMP, "UPDATE audit SET count = count + ?5 WHERE id = (SELECT id FROM audit "       \
                  "WHERE principal = ?1 AND action = ?2 AND target = ?3 AND ts >= ?4 "         \
                  "ORDER BY id DESC LIMIT 1) RETURNING id")                                    \
    X(AUDIT_LIST, "SELECT id, ts, principal, action, target, request_id, outcome, count "      \
                  "FROM (SELECT * FROM audit WHERE (?1 IS NULL OR principal = ?1) "            \
                  "AND ts >= ?2 ORDER BY id DESC LIMIT ?3) ORDER BY id")                       \
    X(PURGE_AUDIT, "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts < ?1 "        \
                   "LIMIT ?2)")                                                                \
    X(PURGE_SESSIONS, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "             \
                      "WHERE expires_at <= ?1 LIMIT ?2)")                                      \
    X(PURGE_CHECKOUTS, "DELETE FROM checkouts WHERE id IN (SELECT id FROM checkouts "          \
                       "WHERE expires_at <= ?1 LIMIT ?2)")                                     \
    X(PURGE_IDEM, "DELETE FROM idempotency WHERE (principal, key) IN (SELECT principal, key "  \
                  "FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)")                         \
    X(PURGE_OUTBOX, "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE "            \
                    "state != 'pending' AND updated_at < ?1 LIMIT ?2)")                        \
    X(PURGE_USAGE, "DELETE FROM usage_daily WHERE (principal, day, model) IN (SELECT "         \
                   "principal, day, model FROM usage_daily WHERE day < ?1 / " STR(MS_PER_DAY)  \
                   " - " STR(USAGE_KEEP_DAYS) " LIMIT ?2)")

#endif
