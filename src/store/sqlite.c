/* The SQLite backend: WAL, one writer connection behind a mutex plus a few
 * read-only connections, prepared statements cached per connection. */
#include "store/backend.h"
#include "store/migrations.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/err.h"

#define DEFAULT_READERS 4
/* SQLite's own bounded wait on another process's lock; store.c retries the
 * whole operation a few times on top of it before answering AGENTD_EBUSY. */
#define BUSY_TIMEOUT_MS 1000

#define LIVE(col, p) "(" col " IS NULL OR " col " > " p ")"

/* usage_daily rows older than this many days are purged. */
#define USAGE_KEEP_DAYS 400
#define STR_(x) #x
#define STR(x) STR_(x)
#define MS_PER_DAY 86400000

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
    X(PING, "SELECT count(*) FROM meta")                                                       \
    X(META_GET, "SELECT value FROM meta WHERE key = ?1")                                       \
    X(META_SET, "INSERT INTO meta(key, value) VALUES(?1, ?2) "                                 \
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value")                       \
    X(PRINCIPAL_INSERT, "INSERT INTO principals(id, name, created_at) VALUES(?1, ?2, ?3)")     \
    X(PRINCIPAL_GET, "SELECT id, name, created_at FROM principals WHERE id = ?1")              \
    X(PRINCIPAL_EXISTS, "SELECT 1 FROM principals WHERE id = ?1")                              \
    X(APIKEY_INSERT, "INSERT INTO api_keys(id, principal_id, hash, created_at) "               \
                     "VALUES(?1, ?2, ?3, ?4)")                                                 \
    X(APIKEY_BY_HASH, "SELECT id, principal_id, hash, created_at, revoked_at FROM api_keys "   \
                      "WHERE hash = ?1 AND revoked_at IS NULL")                                \
    X(APIKEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL") \
    X(APIKEY_LIST, "SELECT id, principal_id, hash, created_at, revoked_at FROM api_keys "      \
                   "WHERE principal_id = ?1 ORDER BY created_at, id")                          \
    X(SESSION_DROP_EXPIRED, "DELETE FROM sessions WHERE id = ?1 AND expires_at <= ?2")         \
    X(SESSION_INSERT, "INSERT INTO sessions(id, owner, context, created_at, updated_at, "      \
                      "expires_at) VALUES(?1, ?2, ?3, ?4, ?4, ?5)")                            \
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
    X(MESSAGE_INSERT, "INSERT INTO messages(session_id, seq, role, parts, created_at) "         \
                      "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4 FROM messages "        \
                      "WHERE session_id = ?1 RETURNING seq")                                   \
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
    X(TASK_UPDATE, "UPDATE tasks SET state = ?2, artifacts = ?3, updated_at = ?4 "             \
                   "WHERE id = ?1 AND EXISTS (SELECT 1 FROM sessions s WHERE "                 \
                   "s.id = tasks.context_id AND " LIVE("s.expires_at", "?4") ")")              \
    X(TASK_UPDATE_IF, "UPDATE tasks SET state = ?2, artifacts = ?3, updated_at = ?4 "          \
                      "WHERE id = ?1 AND state = ?5 AND artifacts = ?6 AND EXISTS (SELECT 1 "  \
                      "FROM sessions s WHERE s.id = tasks.context_id AND "                     \
                      LIVE("s.expires_at", "?4") ")")                                          \
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
                  "updated_at) SELECT ?1, ?2, 'running', ?4, ?5, ?3, ?3 WHERE NOT EXISTS "     \
                  "(SELECT 1 FROM turns WHERE session_id = ?2 AND state = 'running')")         \
    X(TURN_HEARTBEAT, "UPDATE turns SET updated_at = ?2 WHERE id = ?1 AND state = 'running' "  \
                      "RETURNING interrupt_requested")                                         \
    X(TURN_INTERRUPT, "UPDATE turns SET interrupt_requested = 1 WHERE session_id = ?1 AND "    \
                      "state = 'running'")                                                     \
    X(TURN_LIVE, "SELECT 1 FROM turns t JOIN sessions s ON s.id = t.session_id "               \
                 "WHERE t.id = ?1 AND " LIVE("s.expires_at", "?2"))                            \
    X(TURN_FINISH, "UPDATE turns SET state = ?2, input = NULL, updated_at = ?3 "               \
                   "WHERE id = ?1 AND state = 'running' AND EXISTS (SELECT 1 FROM sessions s " \
                   "WHERE s.id = turns.session_id AND " LIVE("s.expires_at", "?3") ")")        \
    X(TURN_TOUCH, "UPDATE turns SET updated_at = ?2 WHERE id = ?1")                            \
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
    X(EVENT_INSERT, "INSERT INTO events(session_id, seq, turn_id, type, data, created_at) "    \
                    "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM events "        \
                    "WHERE session_id = ?1 RETURNING seq")                                     \
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
    X(CHECKOUT_LIVE, "SELECT 1 FROM checkouts WHERE id = ?1 AND " LIVE("expires_at", "?2"))    \
    X(CHECKOUT_CAS, "UPDATE checkouts SET status = ?3, document = ?4, version = version + 1, " \
                    "updated_at = ?5 WHERE id = ?1 AND version = ?2 AND "                      \
                    LIVE("expires_at", "?5"))                                                  \
    X(ORDER_INSERT, "INSERT INTO orders(id, checkout_id, owner, document, created_at) "        \
                    "VALUES(?1, ?2, ?3, ?4, ?5)")                                              \
    X(ORDER_GET, "SELECT id, checkout_id, owner, document, created_at FROM orders WHERE id = ?1") \
    X(ORDER_UPDATE, "UPDATE orders SET document = ?2 WHERE id = ?1")                           \
    X(STOCK_TAKE, "UPDATE stock SET quantity = quantity - ?2 WHERE product_id = ?1 "            \
                  "AND quantity >= ?2")                                                        \
    X(STOCK_SET, "INSERT INTO stock(product_id, quantity) VALUES(?1, ?2) "                    \
                 "ON CONFLICT(product_id) DO UPDATE SET quantity = excluded.quantity")         \
    X(STOCK_SEED, "INSERT INTO stock(product_id, quantity) VALUES(?1, ?2) ON CONFLICT DO NOTHING") \
    X(STOCK_CLEAR, "DELETE FROM stock")                                                        \
    X(STOCK_GET, "SELECT quantity FROM stock WHERE product_id = ?1")                           \
    X(IDEM_DROP_EXPIRED, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "          \
                         "AND expires_at <= ?3")                                               \
    X(IDEM_DROP_STALE, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "            \
                       "AND state = 'in_progress' AND created_at <= ?3")                       \
    X(IDEM_INSERT, "INSERT INTO idempotency(principal, key, fingerprint, state, created_at, "  \
                   "expires_at) VALUES(?1, ?2, ?3, 'in_progress', ?4, ?5) ON CONFLICT DO NOTHING") \
    X(IDEM_INSERT_DONE, "INSERT INTO idempotency(principal, key, fingerprint, state, status, "  \
                        "headers, body, created_at, expires_at) VALUES(?1, ?2, ?3, 'done', "  \
                        "200, '{}', ?4, ?5, ?6) ON CONFLICT DO NOTHING")                       \
    X(IDEM_DROP, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2")                  \
    X(IDEM_GET, "SELECT principal, key, fingerprint, state, status, headers, body, "           \
                "created_at, expires_at FROM idempotency WHERE principal = ?1 AND key = ?2 "   \
                "AND expires_at > ?3")                                                         \
    X(IDEM_FINISH, "UPDATE idempotency SET state = 'done', status = ?3, headers = ?4, "        \
                   "body = ?5 WHERE principal = ?1 AND key = ?2 AND state = 'in_progress' "    \
                   "AND expires_at > ?6")                                                      \
    X(IDEM_ABANDON, "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2 "               \
                    "AND state = 'in_progress'")                                               \
    X(AUDIT_INSERT, "INSERT INTO audit(ts, principal, action, target, request_id, outcome) "   \
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) RETURNING id")                             \
    X(AUDIT_LIST_ALL, "SELECT id, ts, principal, action, target, request_id, outcome "         \
                      "FROM audit ORDER BY id DESC LIMIT ?1")                                  \
    X(AUDIT_LIST_PRINCIPAL, "SELECT id, ts, principal, action, target, request_id, outcome "   \
                            "FROM audit WHERE principal = ?1 ORDER BY id DESC LIMIT ?2")       \
    X(PURGE_SESSIONS, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "             \
                      "WHERE expires_at <= ?1 LIMIT ?2)")                                      \
    X(PURGE_CHECKOUTS, "DELETE FROM checkouts WHERE id IN (SELECT id FROM checkouts "          \
                       "WHERE expires_at <= ?1 LIMIT ?2)")                                     \
    X(PURGE_IDEM, "DELETE FROM idempotency WHERE (principal, key) IN (SELECT principal, key "  \
                  "FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)")                         \
    X(PURGE_USAGE, "DELETE FROM usage_daily WHERE (principal, day, model) IN (SELECT "         \
                   "principal, day, model FROM usage_daily WHERE day < ?1 / " STR(MS_PER_DAY)  \
                   " - " STR(USAGE_KEEP_DAYS) " LIMIT ?2)")

enum st {
#define X(name, sql) ST_##name,
    STATEMENTS(X)
#undef X
    ST_COUNT
};

static const char *const st_sql[ST_COUNT] = {
#define X(name, sql) sql,
    STATEMENTS(X)
#undef X
};

struct conn {
    pthread_mutex_t mu;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

struct sq {
    struct conn writer;
    struct conn *readers;
    int nreaders;
    char *path;
    int64_t (*now)(void *ud);
    void *now_ud;
    int64_t session_ttl_ms;
};

static int64_t now_ms(const struct sq *q) { return q->now(q->now_ud); }

/* ---- statements ---- */

/* Prepares (once per connection) and binds. fmt has one letter per
 * parameter: t text (NULL binds NULL), i int64_t, e int64_t expiry (0 binds
 * NULL = never), d double, b blob as (const void *, size_t). Values are bound
 * SQLITE_STATIC: every statement is reset before its caller returns. */
static int st_prepare(struct conn *c, enum st id, sqlite3_stmt **out, const char *fmt, va_list ap)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, st_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                                    NULL);
        if (rc != SQLITE_OK)
            return sqlite_status(rc);
    }
    sqlite3_stmt *st = c->st[id];
    int rc = SQLITE_OK;
    for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
        switch (*fmt) {
        case 't': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        case 'e': {
            int64_t v = va_arg(ap, int64_t);
            rc = v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
            break;
        }
        case 'd':
            rc = sqlite3_bind_double(st, i, va_arg(ap, double));
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(st, i, len ? p : "", len, SQLITE_STATIC);
            break;
        }
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(st);
        return sqlite_status(rc);
    }
    *out = st;
    return 0;
}

static void st_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement to the end. changes (may be NULL) gets the rows it
 * changed; val (may be NULL) gets column 0 of the first row, and a statement
 * that yields no row then answers AGENTD_ENOTFOUND. */
static int run(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    int rc = st_prepare(c, id, &st, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    int rows = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (val && rows++ == 0)
            *val = sqlite3_column_int64(st, 0);
    }
    rc = sqlite_status(src);
    if (rc == 0 && val && rows == 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0 && changes)
        *changes = sqlite3_changes(c->db);
    st_done(st);
    return rc;
}

/* Fills one zeroed item from the current row; AGENTD_ENOMEM if a copy failed
 * (the fields copied so far stay set, for the caller's free). */
typedef int (*row_fn)(sqlite3_stmt *st, void *item);

/* Runs a query and collects every row into a malloc'd array of items. On
 * error *out and *n still describe what was built, so the caller frees it. */
static int fetch(struct conn *c, enum st id, size_t size, row_fn fn, void **out, size_t *n,
                 const char *fmt, ...)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    int rc = st_prepare(c, id, &st, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    size_t cap = 0;
    char *v = NULL;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            char *nv = realloc(v, ncap * size);
            if (!nv) {
                rc = AGENTD_ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
            *out = v;
        }
        void *item = v + *n * size;
        memset(item, 0, size);
        ++*n;
        if ((rc = fn(st, item)) != 0)
            break;
    }
    if (rc == 0)
        rc = sqlite_status(src);
    st_done(st);
    return rc;
}

/* A copy of a text column; NULL for SQL NULL. */
static char *col_str(sqlite3_stmt *st, int i, int *oom)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    char *s = t ? strdup((const char *)t) : NULL;
    if (!s)
        *oom = 1;
    return s;
}

static int64_t col_i64(sqlite3_stmt *st, int i) { return sqlite3_column_int64(st, i); }

/* ---- connections ---- */

static struct conn *reader_get(struct sq *q)
{
    if (q->nreaders == 0) {
        pthread_mutex_lock(&q->writer.mu);
        return &q->writer;
    }
    /* A thread keeps to "its" reader while it is free, so connections stay
     * warm in one thread's cache; otherwise take any free one, else wait. */
    static atomic_uint next_hint;
    static _Thread_local unsigned hint = UINT_MAX;
    if (hint == UINT_MAX)
        hint = atomic_fetch_add(&next_hint, 1);
    unsigned n = (unsigned)q->nreaders;
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &q->readers[(hint + i) % n];
        if (pthread_mutex_trylock(&c->mu) == 0)
            return c;
    }
    struct conn *c = &q->readers[hint % n];
    pthread_mutex_lock(&c->mu);
    return c;
}

static void conn_put(struct conn *c) { pthread_mutex_unlock(&c->mu); }

static int writer_begin(struct sq *q)
{
    pthread_mutex_lock(&q->writer.mu);
    int rc = run(&q->writer, ST_BEGIN_IMMEDIATE, NULL, NULL, "");
    if (rc)
        pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

/* Commits if rc is 0, else rolls back; releases the writer. */
static int writer_end(struct sq *q, int rc)
{
    if (rc == 0)
        rc = run(&q->writer, ST_COMMIT, NULL, NULL, "");
    if (rc && !sqlite3_get_autocommit(q->writer.db))
        run(&q->writer, ST_ROLLBACK, NULL, NULL, "");
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

/* Several reads that must see one snapshot. */
static int read_begin(struct conn *c) { return run(c, ST_BEGIN, NULL, NULL, ""); }

static int read_end(struct conn *c, int rc)
{
    if (!sqlite3_get_autocommit(c->db))
        run(c, ST_COMMIT, NULL, NULL, "");
    conn_put(c);
    return rc;
}

static void conn_close(struct conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close_v2(c->db);
    pthread_mutex_destroy(&c->mu);
}

static int wal_enabled(sqlite3 *db)
{
    sqlite3_stmt *st;
    int wal = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    return wal;
}

static int conn_open(struct conn *c, const char *path, int writer, enum store_sync sync,
                     char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    int flags = SQLITE_OPEN_NOMUTEX |
                (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    }
    /* journal_mode reads the header: a file that is no database fails here. */
    if (rc == SQLITE_OK && writer)
        rc = sqlite3_exec(c->db,
                          sync == STORE_SYNC_FULL
                              ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                " PRAGMA foreign_keys = ON"
                              : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                " PRAGMA foreign_keys = ON",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && writer && !wal_enabled(c->db)) {
        /* Without WAL readers and the writer block each other. */
        snprintf(err, errlen, "cannot use WAL journaling for %s; put AGENTD_DB on a local "
                              "filesystem", path);
        conn_close(c);
        return AGENTD_EIO;
    }
    if (rc != SQLITE_OK) {
        int st = sqlite_status(rc);
        const char *why = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        if (st == AGENTD_ECORRUPT)
            snprintf(err, errlen,
                     "database %s is corrupt or not an SQLite database (%s); "
                     "restore it from a backup (see docs/operations.md, Database)",
                     path, why);
        else
            snprintf(err, errlen, "cannot open database %s: %s", path, why);
        conn_close(c);
        return st;
    }
    return 0;
}

/* Zero config: the first run creates the data directory (private to us). */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        snprintf(err, errlen, "database path too long");
        return AGENTD_EINVAL;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
            return AGENTD_EIO;
        }
        *p = saved;
        if (!saved)
            return 0;
    }
}

/* Created here rather than by SQLite so the file, and the -wal and -shm
 * files SQLite later gives the same mode, are private (0600). */
static int create_private(const char *path, int truncate, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %.200s: %s", path, strerror(errno));
        return AGENTD_EIO;
    }
    close(fd);
    return 0;
}

static void sq_close(void *b)
{
    struct sq *q = b;
    if (!q)
        return;
    for (int i = 0; i < q->nreaders; i++)
        conn_close(&q->readers[i]);
    free(q->readers);
    /* Closed last: the last connection checkpoints the WAL into the file. */
    if (q->writer.db)
        conn_close(&q->writer);
    free(q->path);
    free(q);
}

static int sq_open(const struct store_options *opt, void **out, char *err, size_t errlen)
{
    if (strcmp(opt->url, ":memory:") == 0 || strncmp(opt->url, "file:", 5) == 0) {
        snprintf(err, errlen, "AGENTD_DB must be a file path (got %s)", opt->url);
        return AGENTD_EINVAL;
    }
    if (!sqlite3_threadsafe()) {
        snprintf(err, errlen, "this SQLite library was built without thread support");
        return AGENTD_EINVAL;
    }
    struct sq *q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(opt->url))) {
        free(q);
        snprintf(err, errlen, "out of memory");
        return AGENTD_ENOMEM;
    }
    q->now = opt->now;
    q->now_ud = opt->now_ud;
    q->session_ttl_ms = opt->session_ttl_ms > 0 ? opt->session_ttl_ms : 0;
    int rc = make_parent_dirs(q->path, err, errlen);
    if (rc == 0 && access(q->path, F_OK) != 0)
        rc = create_private(q->path, 0, err, errlen);
    if (rc == 0)
        rc = conn_open(&q->writer, q->path, 1, opt->sync, err, errlen);
    if (rc) {
        q->writer.db = NULL; /* conn_open cleaned up */
        sq_close(q);
        return rc;
    }
    int version;
    if ((rc = migrations_apply(q->writer.db, &version, err, errlen)) != 0) {
        if (rc == AGENTD_ECORRUPT) {
            char why[200];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen,
                     "database %s is corrupt (%s); restore it from a backup (see docs/operations.md, Database)",
                     q->path, why);
        }
        sq_close(q);
        return rc;
    }
    int n = opt->readers == 0 ? DEFAULT_READERS : opt->readers < 0 ? 0 : opt->readers;
    if (n && !(q->readers = calloc((size_t)n, sizeof *q->readers))) {
        sq_close(q);
        snprintf(err, errlen, "out of memory");
        return AGENTD_ENOMEM;
    }
    for (; q->nreaders < n; q->nreaders++) {
        if ((rc = conn_open(&q->readers[q->nreaders], q->path, 0, opt->sync, err, errlen))) {
            sq_close(q);
            return rc;
        }
    }
    *out = q;
    return 0;
}

/* ---- lifecycle ---- */

static int sq_ping(void *b, int probe_write)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    int64_t n;
    int rc = run(c, ST_PING, &n, NULL, "");
    conn_put(c);
    if (rc == 0 && probe_write) {
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)now_ms(q));
        if ((rc = writer_begin(q)) == 0)
            rc = writer_end(q, run(&q->writer, ST_META_SET, NULL, NULL, "tt", "write_probe", ts));
    }
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Its own source connection: the copy runs in one read transaction (one WAL
 * snapshot, so it is consistent) and writers carry on meanwhile. */
static int sq_backup(void *b, const char *path)
{
    struct sq *q = b;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return AGENTD_EINVAL;
    int rc = make_parent_dirs(path, NULL, 0);
    if (rc == 0)
        rc = create_private(tmp, 1, NULL, 0);
    if (rc)
        return rc;
    sqlite3 *src = NULL, *dst = NULL;
    int sqlrc = sqlite3_open_v2(q->path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc == SQLITE_OK)
        sqlrc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc == SQLITE_OK) {
        sqlite3_extended_result_codes(src, 1);
        sqlite3_busy_timeout(src, BUSY_TIMEOUT_MS);
        sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
        if (!bk) {
            sqlrc = sqlite3_extended_errcode(dst);
        } else {
            sqlrc = sqlite3_backup_step(bk, -1);
            int fin = sqlite3_backup_finish(bk);
            if (sqlrc == SQLITE_DONE)
                sqlrc = fin;
        }
    }
    rc = sqlite_status(sqlrc);
    /* A busy source is the caller's to retry; a damaged one is reported as
     * such; anything else went wrong on the destination side. */
    sqlite3_close_v2(src);
    if (sqlite3_close_v2(dst) != SQLITE_OK && rc == 0)
        rc = AGENTD_EIO;
    if (rc == 0 && (rename(tmp, path) != 0 || fsync_dir_of(path) != 0))
        rc = AGENTD_EIO;
    if (rc)
        unlink(tmp);
    return rc;
}

static int sq_purge_expired(void *b, int batch_limit, int *n_deleted)
{
    struct sq *q = b;
    static const enum st kinds[] = { ST_PURGE_SESSIONS, ST_PURGE_CHECKOUTS, ST_PURGE_IDEM,
                                     ST_PURGE_USAGE };
    int total = 0, rc = 0;
    /* One short transaction per kind: other writers get the lock in between. */
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && total < batch_limit; k++) {
        int changed = 0;
        if ((rc = writer_begin(q)) != 0)
            break;
        rc = run(&q->writer, kinds[k], NULL, &changed, "ii", now_ms(q),
                 (int64_t)(batch_limit - total));
        if ((rc = writer_end(q, rc)) != 0)
            break;
        total += changed;
    }
    if (rc == 0)
        *n_deleted = total;
    return rc;
}

/* page_count x page_size: every page of the main database, free or not. */
static int db_bytes(sqlite3 *db, int64_t *bytes)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT page_count * page_size FROM pragma_page_count(), "
                                "pragma_page_size()",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *bytes = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sqlite_status(rc);
}

/* VACUUM rewrites the file through the WAL; the TRUNCATE checkpoint then
 * copies it back and empties the log, which is when the file shrinks. A
 * reader holding an old snapshot (another process) can keep the checkpoint
 * from finishing: the space comes back at the next checkpoint instead. */
static int sq_vacuum(void *b, int64_t *before, int64_t *after)
{
    struct sq *q = b;
    pthread_mutex_lock(&q->writer.mu);
    int rc = db_bytes(q->writer.db, before);
    if (rc == 0) {
        int sqlrc = sqlite3_exec(q->writer.db, "VACUUM", NULL, NULL, NULL);
        if (sqlrc == SQLITE_OK)
            sqlrc = sqlite3_exec(q->writer.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        rc = sqlrc == SQLITE_OK ? 0 : sqlite_status(sqlrc);
    }
    if (rc == 0)
        rc = db_bytes(q->writer.db, after);
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

static int sq_migrate(void *b)
{
    struct sq *q = b;
    char err[256];
    int version;
    pthread_mutex_lock(&q->writer.mu);
    int rc = migrations_apply(q->writer.db, &version, err, sizeof err);
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

static int row_str(sqlite3_stmt *st, void *item)
{
    int oom = 0;
    *(char **)item = col_str(st, 0, &oom);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_meta_get(void *b, const char *key, char **value)
{
    struct conn *c = reader_get(b);
    void *v;
    size_t n;
    int rc = fetch(c, ST_META_GET, sizeof(char *), row_str, &v, &n, "t", key);
    conn_put(c);
    if (rc == 0 && n == 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        *value = *(char **)v;
    else if (n)
        free(*(char **)v);
    free(v);
    return rc;
}

static int sq_schema_version(void *b, int *version)
{
    char *v;
    int rc = sq_meta_get(b, "schema_version", &v);
    if (rc == AGENTD_ENOTFOUND) {
        *version = 0;
        return 0;
    }
    if (rc == 0) {
        *version = atoi(v);
        free(v);
    }
    return rc;
}

static int sq_meta_set(void *b, const char *key, const char *value)
{
    struct sq *q = b;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    return writer_end(q, run(&q->writer, ST_META_SET, NULL, NULL, "tt", key, value));
}

/* ---- principals and API keys ---- */

static int row_principal(sqlite3_stmt *st, void *item)
{
    struct store_principal *p = item;
    int oom = 0;
    p->id = col_str(st, 0, &oom);
    p->name = col_str(st, 1, &oom);
    p->created_at = col_i64(st, 2);
    return oom ? AGENTD_ENOMEM : 0;
}

static int row_apikey(sqlite3_stmt *st, void *item)
{
    struct store_apikey *k = item;
    int oom = 0;
    k->id = col_str(st, 0, &oom);
    k->principal_id = col_str(st, 1, &oom);
    k->hash = col_str(st, 2, &oom);
    k->created_at = col_i64(st, 3);
    k->revoked_at = col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

/* A single-row read: fetch into a one-item array, which is exactly the
 * heap struct store_x_free() expects. */
#define GET_ONE(q, stid, rowfn, freefn, out, fmt, ...)                                         \
    do {                                                                                       \
        struct conn *c_ = reader_get(q);                                                       \
        void *v_;                                                                              \
        size_t n_;                                                                             \
        int rc_ = fetch(c_, stid, sizeof **(out), rowfn, &v_, &n_, fmt, __VA_ARGS__);          \
        conn_put(c_);                                                                          \
        if (rc_ == 0 && n_ == 0)                                                               \
            rc_ = AGENTD_ENOTFOUND;                                                            \
        if (rc_) {                                                                             \
            freefn(v_);                                                                        \
            return rc_;                                                                        \
        }                                                                                      \
        *(out) = v_;                                                                           \
        return 0;                                                                              \
    } while (0)

static int sq_principal_create(void *b, struct store_principal *p)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = writer_end(q, run(&q->writer, ST_PRINCIPAL_INSERT, NULL, NULL, "tti", p->id, p->name,
                           now));
    if (rc == 0)
        p->created_at = now;
    return rc;
}

static int sq_principal_get(void *b, const char *id, struct store_principal **out)
{
    GET_ONE((struct sq *)b, ST_PRINCIPAL_GET, row_principal, store_principal_free, out, "t", id);
}

static int sq_apikey_create(void *b, struct store_apikey *k)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_PRINCIPAL_EXISTS, &one, NULL, "t", k->principal_id);
    if (rc == 0)
        rc = run(&q->writer, ST_APIKEY_INSERT, NULL, NULL, "ttti", k->id, k->principal_id,
                 k->hash, now);
    if ((rc = writer_end(q, rc)) == 0) {
        k->created_at = now;
        k->revoked_at = 0;
    }
    return rc;
}

static int sq_apikey_get_by_hash(void *b, const char *hash, struct store_apikey **out)
{
    GET_ONE((struct sq *)b, ST_APIKEY_BY_HASH, row_apikey, store_apikey_free, out, "t", hash);
}

/* A write whose only answer is whether it touched a row. */
static int write_one(struct sq *q, enum st id, int *changed, const char *fmt, ...)
{
    int rc = writer_begin(q);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    rc = st_prepare(&q->writer, id, &st, fmt, ap);
    va_end(ap);
    if (rc == 0) {
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW)
            ;
        rc = sqlite_status(src);
        *changed = sqlite3_changes(q->writer.db);
        st_done(st);
    }
    return writer_end(q, rc);
}

static int sq_apikey_revoke(void *b, const char *id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_APIKEY_REVOKE, &changed, "ti", id, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

static int sq_apikey_list(void *b, const char *principal_id, struct store_apikey **out, size_t *n)
{
    struct conn *c = reader_get(b);
    void *v;
    size_t nv;
    int rc = fetch(c, ST_APIKEY_LIST, sizeof **out, row_apikey, &v, &nv, "t", principal_id);
    conn_put(c);
    if (rc) {
        store_apikey_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

/* ---- sessions and messages ---- */

static int64_t session_expiry(const struct sq *q, int64_t now)
{
    return q->session_ttl_ms ? now + q->session_ttl_ms : 0;
}

static int row_session(sqlite3_stmt *st, void *item)
{
    struct store_session *v = item;
    int oom = 0;
    v->id = col_str(st, 0, &oom);
    v->owner = col_str(st, 1, &oom);
    v->context = col_str(st, 2, &oom);
    v->created_at = col_i64(st, 3);
    v->updated_at = col_i64(st, 4);
    v->expires_at = col_i64(st, 5);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_session_create(void *b, struct store_session *v)
{
    struct sq *q = b;
    int64_t now = now_ms(q), exp = session_expiry(q, now);
    int rc = writer_begin(q);
    if (rc)
        return rc;
    /* An expired session's id is free again, even before the purge. */
    rc = run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", v->id, now);
    if (rc == 0)
        rc = run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", v->id, v->owner, v->context,
                 now, exp);
    if ((rc = writer_end(q, rc)) == 0) {
        v->created_at = v->updated_at = now;
        v->expires_at = exp;
    }
    return rc;
}

static int sq_session_get(void *b, const char *id, struct store_session **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_SESSION_GET, row_session, store_session_free, out, "ti", id, now_ms(q));
}

static int sq_session_update(void *b, const char *id, const char *context)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    int rc = write_one(q, ST_SESSION_TOUCH, &changed, "ttie", id, context, now,
                       session_expiry(q, now));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

static int sq_session_delete(void *b, const char *id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_SESSION_DELETE, &changed, "ti", id, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* ---- session listing and deletion ---- */

static int sq_session_list(void *b, const char *owner, int64_t before_created,
                           const char *before_id, int limit, struct store_session **out,
                           size_t *n)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    void *v;
    size_t nv;
    int rc = fetch(c, ST_SESSION_LIST, sizeof **out, row_session, &v, &nv, "tiiti", owner,
                   now_ms(q), before_created, before_id, (int64_t)limit);
    conn_put(c);
    if (rc) {
        store_session_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

static int sq_session_delete_idle(void *b, const char *id, const char *owner)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_SESSION_OWNED, &one, NULL, "tti", id, owner, now);
    if (rc == 0) {
        rc = run(&q->writer, ST_SESSION_RUNNING, &one, NULL, "t", id);
        rc = rc == 0 ? AGENTD_ECONFLICT : rc == AGENTD_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0)
        rc = run(&q->writer, ST_SESSION_DELETE, NULL, NULL, "ti", id, now);
    return writer_end(q, rc);
}

static int sq_message_append(void *b, struct store_message *m)
{
    struct sq *q = b;
    int64_t now = now_ms(q), seq = 0;
    int changed = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", m->session_id, NULL, now,
             session_expiry(q, now));
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        rc = run(&q->writer, ST_MESSAGE_INSERT, &seq, NULL, "ttti", m->session_id, m->role,
                 m->parts, now);
    if ((rc = writer_end(q, rc)) == 0) {
        m->seq = seq;
        m->created_at = now;
    }
    return rc;
}

static int row_message(sqlite3_stmt *st, void *item)
{
    struct store_message *m = item;
    int oom = 0;
    m->session_id = col_str(st, 0, &oom);
    m->seq = col_i64(st, 1);
    m->role = col_str(st, 2, &oom);
    m->parts = col_str(st, 3, &oom);
    m->created_at = col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

/* A session's rows with seq > after_seq (messages, events): the parent
 * check and the list read one snapshot. On failure the rows read so far
 * are left in *v / *nv for the caller's typed free. */
static int session_rows(struct sq *q, enum st id, const char *session_id, int64_t after_seq,
                        int limit, size_t size, row_fn row, void **v, size_t *nv)
{
    int64_t now = now_ms(q), one;
    struct conn *c = reader_get(q);
    int rc = read_begin(c);
    if (rc == 0)
        rc = run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now);
    if (rc == 0)
        rc = fetch(c, id, size, row, v, nv, "tii", session_id, after_seq,
                   (int64_t)(limit > 0 ? limit : -1));
    return read_end(c, rc);
}

static int message_rows(void *b, enum st id, const char *session_id, int64_t after_seq,
                        int limit, struct store_message **out, size_t *n)
{
    void *v = NULL;
    size_t nv = 0;
    int rc = session_rows(b, id, session_id, after_seq, limit, sizeof **out, row_message, &v,
                          &nv);
    if (rc) {
        store_message_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

static int sq_message_list(void *b, const char *session_id, int64_t after_seq, int limit,
                           struct store_message **out, size_t *n)
{
    return message_rows(b, ST_MESSAGE_LIST, session_id, after_seq, limit, out, n);
}

static int sq_message_tail(void *b, const char *session_id, int limit, struct store_message **out,
                           size_t *n)
{
    return message_rows(b, ST_MESSAGE_TAIL, session_id, 0, limit, out, n);
}

/* ---- tasks ---- */

static int row_task(sqlite3_stmt *st, void *item);
static int sq_task_list_owner(void *b, const struct store_task_query *tq, struct store_task **out,
                              size_t *n)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    void *v;
    size_t nv;
    int rc = fetch(c, ST_TASK_LIST_OWNER, sizeof **out, row_task, &v, &nv, "ttttiii", tq->owner,
                   tq->context_id, tq->state, tq->before_id, tq->before_updated, now_ms(q),
                   (int64_t)tq->limit);
    conn_put(c);
    if (rc) {
        store_task_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

static int row_task(sqlite3_stmt *st, void *item)
{
    struct store_task *t = item;
    int oom = 0;
    t->id = col_str(st, 0, &oom);
    t->context_id = col_str(st, 1, &oom);
    t->owner = col_str(st, 2, &oom);
    t->state = col_str(st, 3, &oom);
    t->artifacts = col_str(st, 4, &oom);
    t->created_at = col_i64(st, 5);
    t->updated_at = col_i64(st, 6);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_task_create(void *b, struct store_task *t)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->context_id, now);
    if (rc == 0)
        rc = run(&q->writer, ST_TASK_INSERT, NULL, NULL, "ttttti", t->id, t->context_id,
                 t->owner, t->state, t->artifacts, now);
    if ((rc = writer_end(q, rc)) == 0)
        t->created_at = t->updated_at = now;
    return rc;
}

static int sq_task_get(void *b, const char *id, struct store_task **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_TASK_GET, row_task, store_task_free, out, "ti", id, now_ms(q));
}

static int sq_task_update(void *b, const char *id, const char *state, const char *artifacts)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_TASK_UPDATE, &changed, "ttti", id, state, artifacts, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

static int sq_task_update_if(void *b, const char *id, const char *state, const char *artifacts,
                             const char *old_state, const char *old_artifacts)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_TASK_UPDATE_IF, &changed, "tttitt", id, state, artifacts, now_ms(q),
                       old_state, old_artifacts);
    if (rc || changed)
        return rc;
    /* nothing changed: the row moved on, or there is no live row */
    struct store_task *t = NULL;
    rc = sq_task_get(b, id, &t);
    store_task_free(t);
    return rc ? rc : AGENTD_ECONFLICT;
}

static int row_idem(sqlite3_stmt *st, void *item);

/* The claim part of task_accept, inside its transaction: *claimed = 1,
 * or 0 with *existing = the live record that holds the key. */
static int accept_claim(struct sq *q, const struct store_task_accept *a, int64_t now,
                        int *claimed, struct store_idem **existing)
{
    void *v = NULL;
    size_t nv = 0;
    /* a new key (the usual case) takes one statement; only a collision
     * looks for an expired or stale row to replace */
    int rc = run(&q->writer, ST_IDEM_INSERT_DONE, NULL, claimed, "tttbii", a->principal, a->key,
                 a->fingerprint, a->task->id, strlen(a->task->id), now, a->expires_at);
    if (rc == 0 && !*claimed) {
        rc = run(&q->writer, ST_IDEM_DROP_EXPIRED, NULL, NULL, "tti", a->principal, a->key, now);
        if (rc == 0) /* a claim whose process died never finishes: its lease ran out */
            rc = run(&q->writer, ST_IDEM_DROP_STALE, NULL, NULL, "tti", a->principal, a->key,
                     now - STORE_IDEM_LEASE_MS);
        if (rc == 0)
            rc = run(&q->writer, ST_IDEM_INSERT_DONE, NULL, claimed, "tttbii", a->principal,
                     a->key, a->fingerprint, a->task->id, strlen(a->task->id), now,
                     a->expires_at);
    }
    if (rc == 0 && !*claimed) {
        rc = fetch(&q->writer, ST_IDEM_GET, sizeof **existing, row_idem, &v, &nv, "tti",
                   a->principal, a->key, now);
        if (rc == 0 && nv == 0) /* cannot be: the insert just collided with a live row */
            rc = AGENTD_ECORRUPT;
    }
    if (rc == 0)
        *existing = v;
    else
        store_idem_free(v);
    return rc;
}

static int sq_task_accept(void *b, struct store_task_accept *a, struct store_idem **existing)
{
    struct sq *q = b;
    struct store_session *ses = a->session;
    struct store_task *t = a->task;
    int64_t now = now_ms(q), exp = session_expiry(q, now), one;
    int claimed = 0, changed = 0;
    struct store_idem *ex = NULL;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = accept_claim(q, a, now, &claimed, &ex);
    if (rc == 0 && claimed && ses) {
        rc = run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", ses->id, ses->owner,
                 ses->context, now, exp);
        if (rc == AGENTD_EEXIST) { /* an expired session's id is free again */
            rc = run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", ses->id, now);
            if (rc == 0)
                rc = run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", ses->id,
                         ses->owner, ses->context, now, exp);
        }
    }
    if (rc == 0 && claimed && !a->old_state) {
        if (!ses) /* a context made just now is live */
            rc = run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->context_id, now);
        if (rc == 0)
            rc = run(&q->writer, ST_TASK_INSERT, NULL, NULL, "ttttti", t->id, t->context_id,
                     t->owner, t->state, t->artifacts, now);
    } else if (rc == 0 && claimed) {
        rc = run(&q->writer, ST_TASK_UPDATE_IF, NULL, &changed, "tttitt", t->id, t->state,
                 t->artifacts, now, a->old_state, a->old_artifacts);
        if (rc == 0 && !changed)
            rc = AGENTD_ECONFLICT; /* moved on or gone: the caller reads it again */
    }
    /* a taken key writes nothing: its expired or stale row stays until a
     * claim that wins drops it */
    rc = writer_end(q, rc == 0 && !claimed ? AGENTD_EEXIST : rc);
    if (rc == AGENTD_EEXIST && !claimed) {
        *existing = ex;
        return rc;
    }
    store_idem_free(ex);
    if (rc == 0) {
        if (ses) {
            ses->created_at = ses->updated_at = now;
            ses->expires_at = exp;
        }
        if (!a->old_state)
            t->created_at = now;
        t->updated_at = now;
    }
    return rc;
}

static int sq_task_list(void *b, const char *context_id, struct store_task **out, size_t *n)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    void *v;
    size_t nv;
    int rc = fetch(c, ST_TASK_LIST, sizeof **out, row_task, &v, &nv, "ti", context_id,
                   now_ms(q));
    conn_put(c);
    if (rc) {
        store_task_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

/* ---- turns and checkpoints ---- */

/* The claim, in one write transaction (so it holds across processes
 * sharing the file): a running turn of the session whose lease ran out is
 * failed, then the insert happens only if no running turn is left. */
static int sq_turn_begin(void *b, struct store_turn *t, int64_t lease_ms)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int changed = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->session_id, now);
    if (rc == 0) {
        rc = run(&q->writer, ST_TURN_EXISTS, &one, NULL, "t", t->id);
        rc = rc == 0 ? AGENTD_EEXIST : rc == AGENTD_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0 && lease_ms > 0)
        rc = run(&q->writer, ST_TURN_EXPIRE_STALE, NULL, NULL, "tii", t->session_id, now,
                 now - lease_ms);
    if (rc == 0)
        rc = run(&q->writer, ST_TURN_CLAIM, NULL, &changed, "ttitt", t->id, t->session_id, now,
                 t->instance, t->input);
    if (rc == 0 && !changed)
        rc = AGENTD_ECONFLICT;
    if ((rc = writer_end(q, rc)) == 0) {
        t->created_at = t->updated_at = now;
        t->prompt_tokens = t->completion_tokens = 0;
        t->cost_usd = 0;
    }
    return rc;
}

static int sq_turn_touch(void *b, const char *id, int *interrupt)
{
    struct sq *q = b;
    int64_t now = now_ms(q), flag = 0, one;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", id, now);
    if (rc == AGENTD_ENOTFOUND) {
        rc = run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT; /* finished, or failed as stale by another claim */
    }
    if ((rc = writer_end(q, rc)) == 0 && interrupt)
        *interrupt = flag != 0;
    return rc;
}

static int sq_turn_interrupt(void *b, const char *session_id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_TURN_INTERRUPT, &changed, "t", session_id);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* Inside a write transaction: the finish of store_turn_finish. */
static int turn_finish_tx(struct sq *q, const char *id, const char *state, int64_t now)
{
    int64_t one;
    int changed = 0;
    int rc = run(&q->writer, ST_TURN_FINISH, NULL, &changed, "tti", id, state, now);
    /* Nothing changed: finished already (conflict) or not there at all. */
    if (rc == 0 && !changed) {
        rc = run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return rc;
}

static int sq_turn_finish(void *b, const char *id, const char *state)
{
    struct sq *q = b;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    return writer_end(q, turn_finish_tx(q, id, state, now_ms(q)));
}

/* The compare-and-swap on (running, instance IS from); a miss is a
 * conflict if the turn is there at all. */
static int sq_turn_adopt(void *b, const char *id, const char *from_instance,
                         const char *to_instance)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int changed = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_TURN_ADOPT, NULL, &changed, "ttti", id, from_instance, to_instance,
             now);
    if (rc == 0 && !changed) {
        rc = run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return writer_end(q, rc);
}

/* Columns of TURN_COLS. */
static int row_turn(sqlite3_stmt *st, void *item)
{
    struct store_turn *t = item;
    int oom = 0;
    t->id = col_str(st, 0, &oom);
    t->session_id = col_str(st, 1, &oom);
    t->state = col_str(st, 2, &oom);
    t->owner = col_str(st, 3, &oom);
    t->instance = col_str(st, 4, &oom);
    t->input = col_str(st, 5, &oom);
    t->prompt_tokens = col_i64(st, 6);
    t->completion_tokens = col_i64(st, 7);
    t->cost_usd = sqlite3_column_double(st, 8);
    t->created_at = col_i64(st, 9);
    t->updated_at = col_i64(st, 10);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_turn_get(void *b, const char *id, struct store_turn **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_TURN_GET, row_turn, store_turn_free, out, "ti", id, now_ms(q));
}

static int sq_turn_list_unfinished(void *b, const struct store_turn_scan *scan,
                                   struct store_turn **out, size_t *n)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    void *v;
    size_t nv;
    int rc = fetch(c, ST_TURN_UNFINISHED, sizeof **out, row_turn, &v, &nv, "iitit", now_ms(q),
                   (int64_t)(scan->limit > 0 ? scan->limit : -1), scan->skip_instance,
                   scan->after_id ? scan->after_created : INT64_MIN,
                   scan->after_id ? scan->after_id : "");
    conn_put(c);
    if (rc) {
        store_turn_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

static int sq_checkpoint_put(void *b, struct store_checkpoint *cp)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", cp->turn_id, now);
    if (rc == 0)
        rc = run(&q->writer, ST_CHECKPOINT_INSERT, NULL, NULL, "titti", cp->turn_id, cp->step,
                 cp->kind, cp->payload, now);
    if (rc == 0)
        rc = run(&q->writer, ST_TURN_TOUCH, NULL, NULL, "ti", cp->turn_id, now);
    if ((rc = writer_end(q, rc)) == 0)
        cp->created_at = now;
    return rc;
}

static int row_checkpoint(sqlite3_stmt *st, void *item)
{
    struct store_checkpoint *cp = item;
    int oom = 0;
    cp->turn_id = col_str(st, 0, &oom);
    cp->step = col_i64(st, 1);
    cp->kind = col_str(st, 2, &oom);
    cp->payload = col_str(st, 3, &oom);
    cp->created_at = col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_checkpoint_list(void *b, const char *turn_id, struct store_checkpoint **out,
                              size_t *n)
{
    struct sq *q = b;
    int64_t one;
    void *v = NULL;
    size_t nv = 0;
    struct conn *c = reader_get(q);
    int rc = read_begin(c);
    if (rc == 0)
        rc = run(c, ST_TURN_LIVE, &one, NULL, "ti", turn_id, now_ms(q));
    if (rc == 0)
        rc = fetch(c, ST_CHECKPOINT_LIST, sizeof **out, row_checkpoint, &v, &nv, "t", turn_id);
    rc = read_end(c, rc);
    if (rc) {
        store_checkpoint_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

/* ---- turn events and steps ---- */

static int64_t day_of(int64_t ms) { return ms / MS_PER_DAY; }

/* Inside a write transaction: appends v[0..n) in order, their seqs into
 * seq[]. Each session is checked live and has its expiry pushed once per
 * run of events that share it. */
static int events_insert(struct sq *q, const struct store_event *v, size_t n, int64_t now,
                         int64_t *seq)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i == 0 || strcmp(v[i].session_id, v[i - 1].session_id) != 0) {
            int changed = 0;
            rc = run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", v[i].session_id,
                     NULL, now, session_expiry(q, now));
            if (rc == 0 && !changed)
                rc = AGENTD_ENOTFOUND;
        }
        if (rc == 0)
            rc = run(&q->writer, ST_EVENT_INSERT, &seq[i], NULL, "tttti", v[i].session_id,
                     v[i].turn_id, v[i].type, v[i].data, now);
    }
    return rc;
}

static int sq_event_append(void *b, struct store_event *v, size_t n)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int64_t *seq = calloc(n, sizeof *seq);
    if (!seq)
        return AGENTD_ENOMEM;
    int rc = writer_begin(q);
    if (rc == 0)
        rc = writer_end(q, events_insert(q, v, n, now, seq));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        v[i].seq = seq[i];
        v[i].created_at = now;
    }
    free(seq);
    return rc;
}

static int row_event(sqlite3_stmt *st, void *item)
{
    struct store_event *e = item;
    int oom = 0;
    e->session_id = col_str(st, 0, &oom);
    e->seq = col_i64(st, 1);
    e->turn_id = col_str(st, 2, &oom);
    e->type = col_str(st, 3, &oom);
    e->data = col_str(st, 4, &oom);
    e->created_at = col_i64(st, 5);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_event_list(void *b, const char *session_id, int64_t after_seq, int limit,
                         struct store_event **out, size_t *n)
{
    void *v = NULL;
    size_t nv = 0;
    int rc = session_rows(b, ST_EVENT_LIST, session_id, after_seq, limit, sizeof **out,
                          row_event, &v, &nv);
    if (rc) {
        store_event_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

/* Inside a write transaction: AGENTD_EINVAL unless session_id is the turn's
 * (a step never writes into another session). */
static int turn_in_session(struct sq *q, const char *turn_id, const char *session_id)
{
    int64_t one;
    int rc = run(&q->writer, ST_TURN_IN_SESSION, &one, NULL, "tt", turn_id, session_id);
    return rc == AGENTD_ENOTFOUND ? AGENTD_EINVAL : rc;
}

/* One step's writes inside the writer's transaction. The checkpoint goes
 * first: a replayed step answers AGENTD_EEXIST whatever became of the turn
 * since. Fills *mseq and seq[] (nev). */
static int turn_record_tx(struct sq *q, const struct store_checkpoint *cp,
                          const struct store_message *m, const struct store_event *ev, size_t nev,
                          int64_t now, int64_t *mseq, int64_t *seq)
{
    int64_t one, flag;
    int rc = run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", cp->turn_id, now);
    if (rc == 0)
        rc = run(&q->writer, ST_CHECKPOINT_INSERT, NULL, NULL, "titti", cp->turn_id, cp->step,
                 cp->kind, cp->payload, now);
    if (rc == 0) { /* the heartbeat, and whether the turn still runs */
        rc = run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", cp->turn_id, now);
        if (rc == AGENTD_ENOTFOUND)
            rc = AGENTD_ECONFLICT;
    }
    if (rc == 0 && m)
        rc = turn_in_session(q, cp->turn_id, m->session_id);
    for (size_t i = 0; rc == 0 && i < nev; i++)
        rc = turn_in_session(q, cp->turn_id, ev[i].session_id);
    if (rc == 0 && m) {
        int changed = 0;
        rc = run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", m->session_id, NULL, now,
                 session_expiry(q, now));
        if (rc == 0 && !changed)
            rc = AGENTD_ENOTFOUND;
        if (rc == 0)
            rc = run(&q->writer, ST_MESSAGE_INSERT, mseq, NULL, "ttti", m->session_id, m->role,
                     m->parts, now);
    }
    if (rc == 0)
        rc = events_insert(q, (struct store_event *)ev, nev, now, seq);
    return rc;
}

/* What a written step hands back: times and sequence numbers. */
static void turn_record_filled(struct store_checkpoint *cp, struct store_message *m,
                               struct store_event *ev, size_t nev, int64_t now, int64_t mseq,
                               const int64_t *seq)
{
    cp->created_at = now;
    if (m) {
        m->seq = mseq;
        m->created_at = now;
    }
    for (size_t i = 0; i < nev; i++) {
        ev[i].seq = seq[i];
        ev[i].created_at = now;
    }
}

/* One step, all or nothing. */
static int sq_turn_record(void *b, struct store_checkpoint *cp, struct store_message *m,
                          struct store_event *ev, size_t nev)
{
    struct sq *q = b;
    int64_t now = now_ms(q), mseq = 0;
    int64_t *seq = nev ? calloc(nev, sizeof *seq) : NULL;
    if (nev && !seq)
        return AGENTD_ENOMEM;
    int rc = writer_begin(q);
    if (rc) {
        free(seq);
        return rc;
    }
    rc = turn_record_tx(q, cp, m, ev, nev, now, &mseq, seq);
    if ((rc = writer_end(q, rc)) == 0)
        turn_record_filled(cp, m, ev, nev, now, mseq, seq);
    free(seq);
    return rc;
}

/* A turn's finish and its last events, all or nothing: the events are
 * appended only if the finish applies. */
static int sq_turn_finish_events(void *b, const char *id, const char *state,
                                 struct store_event *ev, size_t nev,
                                 const struct store_task_write *task, int *task_written)
{
    int changed = 0;
    struct sq *q = b;
    int64_t now = now_ms(q);
    int64_t *seq = nev ? calloc(nev, sizeof *seq) : NULL;
    if (nev && !seq)
        return AGENTD_ENOMEM;
    int rc = writer_begin(q);
    if (rc) {
        free(seq);
        return rc;
    }
    rc = turn_finish_tx(q, id, state, now);
    for (size_t i = 0; rc == 0 && i < nev; i++)
        rc = turn_in_session(q, id, ev[i].session_id);
    if (rc == 0)
        rc = events_insert(q, ev, nev, now, seq);
    if (rc == 0 && task) /* a task that moved on changes nothing, and fails nothing */
        rc = run(&q->writer, ST_TASK_UPDATE_IF, NULL, &changed, "tttitt", task->id, task->state,
                 task->artifacts, now, task->old_state, task->old_artifacts);
    if ((rc = writer_end(q, rc)) == 0) {
        for (size_t i = 0; i < nev; i++) {
            ev[i].seq = seq[i];
            ev[i].created_at = now;
        }
        if (task)
            *task_written = changed > 0;
    }
    free(seq);
    return rc;
}

/* ---- usage ---- */

/* Inside a write transaction: the writes of store_usage_add. */
static int usage_add_tx(struct sq *q, const char *turn_id, const char *principal,
                        const char *model, const struct store_usage *u, int64_t now)
{
    int changed = 0;
    int rc = run(&q->writer, ST_TURN_USAGE_ADD, NULL, &changed, "tiidii", turn_id,
                 u->prompt_tokens, u->completion_tokens, u->cost_usd, u->calls, now);
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        rc = run(&q->writer, ST_USAGE_DAILY_ADD, NULL, NULL, "titiidi", principal, day_of(now),
                 model, u->prompt_tokens, u->completion_tokens, u->cost_usd, u->calls);
    return rc;
}

static int sq_usage_add(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u)
{
    struct sq *q = b;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    return writer_end(q, usage_add_tx(q, turn_id, principal, model, u, now_ms(q)));
}

/* usage_add then turn_touch in one transaction. A turn that no longer runs
 * keeps the usage (the transaction commits) and answers AGENTD_ECONFLICT. */
static int sq_turn_step(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u, int *interrupt)
{
    struct sq *q = b;
    int64_t now = now_ms(q), flag = 0;
    int running = 1;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = usage_add_tx(q, turn_id, principal, model, u, now);
    if (rc == 0) { /* the turn is there (the usage found it): a miss is a finish */
        rc = run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", turn_id, now);
        if (rc == AGENTD_ENOTFOUND) {
            running = 0;
            rc = 0;
        }
    }
    if ((rc = writer_end(q, rc)) != 0)
        return rc;
    if (!running)
        return AGENTD_ECONFLICT;
    if (interrupt)
        *interrupt = flag != 0;
    return 0;
}

/* sq_turn_step, then the step's record in the same transaction — unless
 * the turn no longer runs or is asked to stop. The record sits in a
 * savepoint: if it fails the usage still commits. */
static int sq_turn_step_record(void *b, const char *turn_id, const char *principal,
                               const char *model, const struct store_usage *u, int *interrupt,
                               struct store_checkpoint *cp, struct store_message *m,
                               struct store_event *ev, size_t nev)
{
    struct sq *q = b;
    int64_t now = now_ms(q), flag = 0, mseq = 0;
    int64_t *seq = nev ? calloc(nev, sizeof *seq) : NULL;
    if (nev && !seq)
        return AGENTD_ENOMEM;
    int running = 1, rec = AGENTD_ECONFLICT; /* not written */
    int rc = writer_begin(q);
    if (rc) {
        free(seq);
        return rc;
    }
    rc = usage_add_tx(q, turn_id, principal, model, u, now);
    if (rc == 0) {
        rc = run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", turn_id, now);
        if (rc == AGENTD_ENOTFOUND) {
            running = 0;
            rc = 0;
        }
    }
    if (rc == 0 && running && !flag && (rc = run(&q->writer, ST_SAVEPOINT, NULL, NULL, "")) == 0) {
        rec = turn_record_tx(q, cp, m, ev, nev, now, &mseq, seq);
        if (rec)
            rc = run(&q->writer, ST_ROLLBACK_TO, NULL, NULL, "");
        if (rc == 0)
            rc = run(&q->writer, ST_RELEASE, NULL, NULL, "");
    }
    if ((rc = writer_end(q, rc)) == 0 && running && !flag && rec == 0)
        turn_record_filled(cp, m, ev, nev, now, mseq, seq);
    free(seq);
    if (rc)
        return rc;
    if (!running)
        return AGENTD_ECONFLICT;
    if (interrupt)
        *interrupt = flag != 0;
    return flag ? 0 : rec;
}

static int row_usage(sqlite3_stmt *st, void *item)
{
    struct store_usage *u = item;
    u->prompt_tokens = col_i64(st, 0);
    u->completion_tokens = col_i64(st, 1);
    u->cost_usd = sqlite3_column_double(st, 2);
    u->calls = col_i64(st, 3);
    return 0;
}

/* A fetch of sums: always one row (zeros when nothing matched). */
static int usage_result(int rc, void *v, size_t nv, struct store_usage *out)
{
    if (rc == 0 && nv != 1)
        rc = AGENTD_ECORRUPT; /* an aggregate without GROUP BY yields one row */
    if (rc == 0)
        *out = *(struct store_usage *)v;
    free(v);
    return rc;
}

static int sq_usage_day(void *b, const char *principal, int64_t day, struct store_usage *out)
{
    struct conn *c = reader_get(b);
    void *v = NULL;
    size_t nv = 0;
    int rc = fetch(c, ST_USAGE_DAY, sizeof *out, row_usage, &v, &nv, "ti", principal, day);
    conn_put(c);
    return usage_result(rc, v, nv, out);
}

/* The session check and the sums read one snapshot. */
static int sq_usage_session(void *b, const char *session_id, struct store_usage *out)
{
    struct sq *q = b;
    int64_t one;
    void *v = NULL;
    size_t nv = 0;
    struct conn *c = reader_get(q);
    int rc = read_begin(c);
    if (rc == 0)
        rc = run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now_ms(q));
    if (rc == 0)
        rc = fetch(c, ST_USAGE_SESSION, sizeof *out, row_usage, &v, &nv, "t", session_id);
    rc = read_end(c, rc);
    return usage_result(rc, v, nv, out);
}

/* ---- checkouts and orders ---- */

static int row_checkout(sqlite3_stmt *st, void *item)
{
    struct store_checkout *c = item;
    int oom = 0;
    c->id = col_str(st, 0, &oom);
    c->owner = col_str(st, 1, &oom);
    c->status = col_str(st, 2, &oom);
    c->document = col_str(st, 3, &oom);
    c->version = col_i64(st, 4);
    c->created_at = col_i64(st, 5);
    c->updated_at = col_i64(st, 6);
    c->expires_at = col_i64(st, 7);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_checkout_create(void *b, struct store_checkout *c)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_CHECKOUT_DROP_EXPIRED, NULL, NULL, "ti", c->id, now);
    if (rc == 0)
        rc = run(&q->writer, ST_CHECKOUT_INSERT, NULL, NULL, "ttttie", c->id, c->owner,
                 c->status, c->document, now, c->expires_at);
    if ((rc = writer_end(q, rc)) == 0) {
        c->version = 1;
        c->created_at = c->updated_at = now;
    }
    return rc;
}

static int sq_checkout_get(void *b, const char *id, struct store_checkout **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_CHECKOUT_GET, row_checkout, store_checkout_free, out, "ti", id, now_ms(q));
}

/* Inside a write transaction: the compare-and-swap, and why it missed. */
static int checkout_cas(struct sq *q, const char *id, int64_t expected, const char *status,
                        const char *document, int64_t now)
{
    int changed = 0;
    int64_t one;
    int rc = run(&q->writer, ST_CHECKOUT_CAS, NULL, &changed, "titti", id, expected, status,
                 document, now);
    if (rc == 0 && !changed) {
        rc = run(&q->writer, ST_CHECKOUT_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return rc;
}

static int sq_checkout_update(void *b, const char *id, int64_t expected_version,
                              const char *status, const char *document)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = writer_begin(q);
    if (rc)
        return rc;
    return writer_end(q, checkout_cas(q, id, expected_version, status, document, now));
}

static int sq_order_create(void *b, struct store_order *o, int64_t checkout_version,
                           const char *checkout_status, const char *checkout_document,
                           const struct store_stock_line *take, size_t ntake)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = checkout_cas(q, o->checkout_id, checkout_version, checkout_status, checkout_document,
                      now);
    for (size_t i = 0; rc == 0 && i < ntake; i++) {
        int changed = 0;
        rc = run(&q->writer, ST_STOCK_TAKE, NULL, &changed, "ti", take[i].product_id,
                 take[i].quantity);
        if (rc == 0 && !changed)
            rc = AGENTD_ESTOCK;
    }
    if (rc == 0)
        rc = run(&q->writer, ST_ORDER_INSERT, NULL, NULL, "tttti", o->id, o->checkout_id,
                 o->owner, o->document, now);
    if ((rc = writer_end(q, rc)) == 0)
        o->created_at = now;
    return rc;
}

static int sq_order_update(void *b, const char *id, const char *document)
{
    struct sq *q = b;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    int changed = 0;
    rc = run(&q->writer, ST_ORDER_UPDATE, NULL, &changed, "tt", id, document);
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    return writer_end(q, rc);
}

static int sq_stock_seed(void *b, const struct store_stock_line *v, size_t n, int replace)
{
    struct sq *q = b;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    if (replace)
        rc = run(&q->writer, ST_STOCK_CLEAR, NULL, NULL, "");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = run(&q->writer, replace ? ST_STOCK_SET : ST_STOCK_SEED, NULL, NULL, "ti",
                 v[i].product_id, v[i].quantity);
    return writer_end(q, rc);
}

static int sq_stock_get(void *b, const char *product_id, int64_t *quantity)
{
    struct sq *q = b;
    struct conn *c = reader_get(q);
    int64_t v = -1;
    int rc = run(c, ST_STOCK_GET, &v, NULL, "t", product_id);
    conn_put(c);
    if (rc == 0 && v < 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        *quantity = v;
    return rc;
}

static int row_order(sqlite3_stmt *st, void *item)
{
    struct store_order *o = item;
    int oom = 0;
    o->id = col_str(st, 0, &oom);
    o->checkout_id = col_str(st, 1, &oom);
    o->owner = col_str(st, 2, &oom);
    o->document = col_str(st, 3, &oom);
    o->created_at = col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_order_get(void *b, const char *id, struct store_order **out)
{
    GET_ONE((struct sq *)b, ST_ORDER_GET, row_order, store_order_free, out, "t", id);
}

/* ---- idempotency ---- */

static int row_idem(sqlite3_stmt *st, void *item)
{
    struct store_idem *r = item;
    int oom = 0;
    r->principal = col_str(st, 0, &oom);
    r->key = col_str(st, 1, &oom);
    r->fingerprint = col_str(st, 2, &oom);
    r->state = col_str(st, 3, &oom);
    r->status = (int)col_i64(st, 4);
    r->headers = col_str(st, 5, &oom);
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
        const void *p = sqlite3_column_blob(st, 6);
        size_t len = (size_t)sqlite3_column_bytes(st, 6);
        if ((r->body = malloc(len + 1)) != NULL) {
            if (len)
                memcpy(r->body, p, len);
            r->body[len] = 0;
            r->body_len = len;
        } else {
            oom = 1;
        }
    }
    r->created_at = col_i64(st, 7);
    r->expires_at = col_i64(st, 8);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_idem_begin(void *b, const char *principal, const char *key, const char *fingerprint,
                         int64_t expires_at, struct store_idem **existing)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    void *v = NULL;
    size_t nv = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = run(&q->writer, ST_IDEM_DROP_EXPIRED, NULL, NULL, "tti", principal, key, now);
    if (rc == 0) /* a claim whose process died never finishes: its lease ran out */
        rc = run(&q->writer, ST_IDEM_DROP_STALE, NULL, NULL, "tti", principal, key,
                 now - STORE_IDEM_LEASE_MS);
    if (rc == 0)
        rc = run(&q->writer, ST_IDEM_INSERT, NULL, &changed, "tttii", principal, key,
                 fingerprint, now, expires_at);
    if (rc == 0 && !changed) {
        rc = fetch(&q->writer, ST_IDEM_GET, sizeof **existing, row_idem, &v, &nv, "tti",
                   principal, key, now);
        if (rc == 0 && nv == 0) /* cannot be: the insert just collided with a live row */
            rc = AGENTD_ECORRUPT;
    }
    rc = writer_end(q, rc);
    if (rc) {
        store_idem_free(v);
        return rc;
    }
    *existing = v;
    return changed ? 0 : AGENTD_EEXIST;
}

static int sq_idem_finish(void *b, const char *principal, const char *key, int status,
                          const char *headers, const void *body, size_t body_len)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_IDEM_FINISH, &changed, "ttitbi", principal, key, (int64_t)status,
                       headers, body, body_len, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

static int sq_idem_abandon(void *b, const char *principal, const char *key)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_IDEM_ABANDON, &changed, "tt", principal, key);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

static int sq_idem_drop(void *b, const char *principal, const char *key)
{
    struct sq *q = b;
    int changed = 0;
    int rc = write_one(q, ST_IDEM_DROP, &changed, "tt", principal, key);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* ---- audit ---- */

static int sq_audit_append(void *b, struct store_audit *e)
{
    struct sq *q = b;
    int64_t now = now_ms(q), id = 0;
    int rc = writer_begin(q);
    if (rc)
        return rc;
    rc = writer_end(q, run(&q->writer, ST_AUDIT_INSERT, &id, NULL, "ittttt", now,
                           e->principal, e->action, e->target, e->request_id, e->outcome));
    if (rc == 0) {
        e->id = id;
        e->ts = now;
    }
    return rc;
}

static int row_audit(sqlite3_stmt *st, void *item)
{
    struct store_audit *e = item;
    int oom = 0;
    e->id = col_i64(st, 0);
    e->ts = col_i64(st, 1);
    e->principal = col_str(st, 2, &oom);
    e->action = col_str(st, 3, &oom);
    e->target = col_str(st, 4, &oom);
    e->request_id = col_str(st, 5, &oom);
    e->outcome = col_str(st, 6, &oom);
    return oom ? AGENTD_ENOMEM : 0;
}

static int sq_audit_list(void *b, const char *principal, int limit, struct store_audit **out,
                         size_t *n)
{
    struct conn *c = reader_get(b);
    int64_t lim = limit > 0 ? limit : -1;
    void *v;
    size_t nv;
    int rc = principal
                 ? fetch(c, ST_AUDIT_LIST_PRINCIPAL, sizeof **out, row_audit, &v, &nv, "ti",
                         principal, lim)
                 : fetch(c, ST_AUDIT_LIST_ALL, sizeof **out, row_audit, &v, &nv, "i", lim);
    conn_put(c);
    if (rc) {
        store_audit_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

const struct store_backend store_backend_sqlite = {
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .backup = sq_backup,
    .purge_expired = sq_purge_expired,
    .vacuum = sq_vacuum,
    .migrate = sq_migrate,
    .schema_version = sq_schema_version,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .principal_create = sq_principal_create,
    .principal_get = sq_principal_get,
    .apikey_create = sq_apikey_create,
    .apikey_get_by_hash = sq_apikey_get_by_hash,
    .apikey_revoke = sq_apikey_revoke,
    .apikey_list = sq_apikey_list,
    .session_create = sq_session_create,
    .session_get = sq_session_get,
    .session_update = sq_session_update,
    .session_delete = sq_session_delete,
    .session_list = sq_session_list,
    .session_delete_idle = sq_session_delete_idle,
    .message_append = sq_message_append,
    .message_list = sq_message_list,
    .message_tail = sq_message_tail,
    .task_create = sq_task_create,
    .task_get = sq_task_get,
    .task_update = sq_task_update,
    .task_update_if = sq_task_update_if,
    .task_accept = sq_task_accept,
    .task_list = sq_task_list,
    .task_list_owner = sq_task_list_owner,
    .turn_begin = sq_turn_begin,
    .turn_finish = sq_turn_finish,
    .turn_touch = sq_turn_touch,
    .turn_interrupt = sq_turn_interrupt,
    .turn_adopt = sq_turn_adopt,
    .turn_get = sq_turn_get,
    .turn_list_unfinished = sq_turn_list_unfinished,
    .checkpoint_put = sq_checkpoint_put,
    .checkpoint_list = sq_checkpoint_list,
    .event_append = sq_event_append,
    .event_list = sq_event_list,
    .turn_record = sq_turn_record,
    .usage_add = sq_usage_add,
    .turn_step = sq_turn_step,
    .turn_step_record = sq_turn_step_record,
    .turn_finish_events = sq_turn_finish_events,
    .usage_day = sq_usage_day,
    .usage_session = sq_usage_session,
    .checkout_create = sq_checkout_create,
    .checkout_get = sq_checkout_get,
    .checkout_update = sq_checkout_update,
    .order_create = sq_order_create,
    .stock_seed = sq_stock_seed,
    .order_update = sq_order_update,
    .stock_get = sq_stock_get,
    .order_get = sq_order_get,
    .idem_begin = sq_idem_begin,
    .idem_finish = sq_idem_finish,
    .idem_abandon = sq_idem_abandon,
    .idem_drop = sq_idem_drop,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
};
