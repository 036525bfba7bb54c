/* The one storage interface for everything agentd keeps: principals and API
 * keys, sessions and messages, tasks, turn checkpoints, checkouts and orders,
 * idempotency records, audit events. Backends: SQLite (default); PostgreSQL
 * plugs in behind the same calls.
 *
 * Rules every backend keeps, and callers may rely on:
 *  - Every call is a whole operation (one transaction); nothing stays open
 *    between calls. Lists page by key (after_seq, limit), never by cursor.
 *  - Every call returns 0 or a negative AGENTD_E* status (core/err.h):
 *      AGENTD_ENOTFOUND  no such row, or it has expired
 *      AGENTD_EEXIST     the id/key is taken
 *      AGENTD_ECONFLICT  a compare-and-swap lost (version or state moved on)
 *      AGENTD_EBUSY      the database stayed locked after bounded retries
 *      AGENTD_EIO        disk full, read-only or I/O error (see store_healthy)
 *      AGENTD_ECORRUPT   the database file is damaged
 *      AGENTD_ENOMEM, AGENTD_EINVAL (bad arguments)
 *    Out-params are only written on success (and by store_idem_begin on
 *    AGENTD_EEXIST, which returns the record that is there).
 *  - Times are int64 Unix milliseconds from the store's clock (options.now);
 *    0 means "never" for expires_at. A row whose expires_at <= now is
 *    invisible to every call at once, before any purge removes it.
 *  - Thread-safe: any number of threads may call into one store at once.
 *    Calls block on disk; loop threads use store/async.h instead.
 *
 * Memory: strings passed in are copied (the caller keeps them). Structs
 * passed to *_create/_append/_begin are read and have their store-assigned
 * fields (timestamps, version, seq, id) filled in; the caller still owns them.
 * A struct returned through `struct store_x **out` is heap-allocated and
 * freed with store_x_free(); an array returned through `**out, size_t *n`
 * is freed with store_x_list_free(v, n). Both accept NULL. */
#ifndef AGENTD_STORE_STORE_H
#define AGENTD_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_outbox;

enum store_sync {
    STORE_SYNC_NORMAL, /* survives a process crash; a power cut may lose the last commits */
    STORE_SYNC_FULL,   /* every commit is on disk before the call returns */
};

struct store_options {
    const char *url;          /* AGENTD_DB: a file path (SQLite; parent dirs are created)
                                 or a postgres:// / postgresql:// URL (PostgreSQL) */
    enum store_sync sync;     /* AGENTD_DB_SYNC */
    int64_t session_ttl_ms;   /* AGENTD_SESSION_TTL: sessions expire this long after
                                 their last write; 0 = keep forever */
    int readers;              /* AGENTD_DB_POOL: reader connections beside the one writer
                                 (SQLite or PostgreSQL); 0 = default (4), -1 = none
                                 (reads share the writer connection) */
    int quota_sessions;       /* AGENTD_QUOTA_SESSIONS: sessions per owner; 0 = unlimited */
    int quota_idempotency_keys; /* AGENTD_QUOTA_IDEMPOTENCY_KEYS: records per principal */
    int64_t audit_retention_ms; /* AGENTD_AUDIT_RETENTION: purge drops older audit rows;
                                   0 = keep forever */
    int wal_checkpoint_pages; /* SQLite: WAL pages that start a background (PASSIVE)
                                 checkpoint; 0 = 1000 */
    int wal_limit_pages;      /* SQLite: WAL pages past which the commit that crossed
                                 them checkpoints (TRUNCATE); 0 = 4 x the above */
    int64_t (*now)(void *ud); /* Unix ms; NULL = the wall clock. Tests pass a fake. */
    void *now_ud;
};

/* ---- lifecycle ---- */

/* Opens (creating if missing) and migrates the database. On failure returns
 * a status and says why in e->msg, one line (corrupt file, schema newer
 * than this binary, unsupported URL...); e may be NULL. */
struct agentd_error;
int store_open(const struct store_options *opt, struct store **out, struct agentd_error *e);
void store_close(struct store *s);

/* A real round trip to the database (for /readyz). While the store is
 * unhealthy it also tries a tiny write, so recovery is noticed without
 * user traffic. */
int store_ping(struct store *s);
/* 0 after an AGENTD_EIO/ECORRUPT until a later write succeeds, else 1. */
int store_healthy(const struct store *s);

/* One commit for several write calls of one worker job (a group commit).
 * Between store_batch_begin and store_batch_end, on the same thread, each
 * write call stays all-or-nothing on its own (a failed one leaves nothing)
 * but commits only at store_batch_end, with the others: a crash keeps all
 * of them or none. The batch holds the writer from its first write to its
 * end: keep it to one job's work, no waiting inside. Reads inside it see
 * only what was committed before it (they use other connections).
 * store_batch_begin returns 1 when a batch opened, 0 when this store has no
 * batches (each call then commits on its own, as outside a batch) or one is
 * open on this thread already; call store_batch_end after a 1 only. It
 * returns the commit's result: on failure nothing of the batch is kept. */
int store_batch_begin(struct store *s);
/* 1 while this thread has a batch open on s. */
int store_batch_open(struct store *s);
int store_batch_end(struct store *s);

/* A consistent copy of the whole database at `path` (written beside it and
 * renamed into place), taken while serving. */
int store_backup(struct store *s, const char *path);

/* Deletes at most batch_limit expired rows (sessions with their messages,
 * tasks, turns, checkpoints and events; checkouts; idempotency records;
 * usage_daily rows of UTC days more than 400 days before today's; audit rows
 * older than audit_retention_ms; delivered and dead outbox rows older than
 * STORE_OUTBOX_KEEP_MS), each kind
 * in its own short transaction. Call again while *n_deleted == batch_limit. */
int store_purge_expired(struct store *s, int batch_limit, int *n_deleted);

/* Gives the space of deleted rows back to the filesystem (SQLite: VACUUM,
 * then a WAL checkpoint that truncates the log). It holds the write lock
 * for its whole run, so writers wait (or get AGENTD_EBUSY past the busy
 * timeout) meanwhile, and it needs free disk about the size of the
 * database. *before and *after are the database's bytes (pages in use and
 * free), either may be NULL. */
int store_vacuum(struct store *s, int64_t *before, int64_t *after);

int store_schema_version(struct store *s, int *version);

/* Free-form key/value settings; "schema_version" is the store's own. */
int store_meta_get(struct store *s, const char *key, char **value); /* free() */
int store_meta_set(struct store *s, const char *key, const char *value);

/* ---- principals and API keys ---- */

struct store_principal {
    char *id;           /* stable name, e.g. "alice" or "svc-checkout" */
    char *name;         /* display name */
    int64_t created_at;
};
int store_principal_create(struct store *s, struct store_principal *p);
int store_principal_get(struct store *s, const char *id, struct store_principal **out);
void store_principal_free(struct store_principal *p);

/* Keys are stored only as hashes: store_apikey_hash() of the secret. */
struct store_apikey {
    char *id;           /* public key id, safe to show and log */
    char *principal_id;
    char *hash;         /* 64 hex chars */
    int64_t created_at;
    int64_t revoked_at; /* 0 = active */
    char *scopes;       /* comma-separated (auth/auth.h); "" or NULL = the default set */
};
void store_apikey_hash(const char *secret, char out[65]);
/* AGENTD_ENOTFOUND if the principal does not exist. */
int store_apikey_create(struct store *s, struct store_apikey *k);
/* Active keys only: a revoked key is AGENTD_ENOTFOUND. */
int store_apikey_get_by_hash(struct store *s, const char *hash, struct store_apikey **out);
/* By id, revoked too (revoked_at says so): the key check reads the row as
 * fresh as the store, so a revocation holds at once on every replica. */
int store_apikey_get(struct store *s, const char *id, struct store_apikey **out);
int store_apikey_revoke(struct store *s, const char *id);
/* All keys of a principal (principal_id NULL: of everyone), revoked too,
 * oldest first. */
int store_apikey_list(struct store *s, const char *principal_id, struct store_apikey **out,
                      size_t *n);
void store_apikey_free(struct store_apikey *k);
void store_apikey_list_free(struct store_apikey *v, size_t n);

/* ---- sessions and messages ---- */

/* A conversation. Every write to it or its messages pushes expires_at to
 * now + session_ttl_ms. */
struct store_session {
    char *id;
    char *owner;        /* principal id */
    char *context;      /* JSON */
    int64_t created_at, updated_at, expires_at;
};
int store_session_create(struct store *s, struct store_session *v);
int store_session_get(struct store *s, const char *id, struct store_session **out);
int store_session_update(struct store *s, const char *id, const char *context);
void store_session_free(struct store_session *v);

struct store_message {
    char *session_id;
    int64_t seq;        /* 1, 2, ... per session, assigned by append */
    char *role;         /* "user", "agent", "tool"... */
    char *parts;        /* JSON */
    int64_t created_at;
};
int store_message_append(struct store *s, struct store_message *m);
/* Messages with seq > after_seq in order, at most limit (<= 0: all). */
int store_message_list(struct store *s, const char *session_id, int64_t after_seq, int limit,
                       struct store_message **out, size_t *n);
/* The session's last limit (>= 1) messages, in order: a turn's window of
 * history, read in time independent of the session's length. */
int store_message_tail(struct store *s, const char *session_id, int limit,
                       struct store_message **out, size_t *n);
void store_message_list_free(struct store_message *v, size_t n);

/* ---- tasks (A2A): live and expire with their session ---- */

struct store_task {
    char *id;
    char *context_id;   /* session id */
    char *owner;
    char *state;        /* "submitted", "working", "input-required", "completed"... */
    char *artifacts;    /* JSON */
    int64_t created_at, updated_at;
};
int store_task_create(struct store *s, struct store_task *t);
int store_task_get(struct store *s, const char *id, struct store_task **out);
/* Compare-and-swap: the update applies only while the row still has
 * old_state and old_artifacts (what the caller read), else AGENTD_ECONFLICT
 * (read again and retry). AGENTD_ENOTFOUND if no such live task. */
int store_task_update_if(struct store *s, const char *id, const char *state,
                         const char *artifacts, const char *old_state,
                         const char *old_artifacts);
/* An A2A message accepted, in ONE transaction (one commit instead of a
 * claim, a session and a task write each):
 *  1. claims (principal, key) as store_idem_begin does, but stores the
 *     record already done (status 200, headers "{}", body = task->id), so a
 *     duplicate never sees a claim without its task;
 *  2. creates `session` when it is not NULL (a new context; an expired
 *     session of that id is replaced);
 *  3. creates `task` when old_state is NULL, else updates it to task->state
 *     and task->artifacts as store_task_update_if does (compare-and-swap on
 *     old_state and old_artifacts).
 * Returns 0 when all of it is written; else nothing is written and:
 *   AGENTD_EEXIST with *existing = the live record: the key is taken
 *     (compare its fingerprint, then replay its task or wait for it);
 *   AGENTD_EEXIST with *existing = NULL: the session or task id is taken;
 *   AGENTD_ECONFLICT: the task moved on, or is gone (read it again);
 *   AGENTD_ENOTFOUND: a new task's context is not a live session;
 *   AGENTD_EBUSY, AGENTD_EIO, AGENTD_ENOMEM, AGENTD_EINVAL.
 * On success the created rows' timestamps are filled in (session, task) and
 * *existing is NULL. Strings are copied; the caller keeps the structs. */
struct store_idem;
struct store_task_accept {
    const char *principal, *key, *fingerprint;
    int64_t expires_at;              /* of the record, > 0 */
    struct store_session *session;   /* may be NULL */
    struct store_task *task;         /* id, context_id, owner, state, artifacts */
    const char *old_state, *old_artifacts; /* NULL: create the task */
};
int store_task_accept(struct store *s, struct store_task_accept *a, struct store_idem **existing);
/* A context's tasks, oldest first. */
int store_task_list(struct store *s, const char *context_id, struct store_task **out, size_t *n);
/* One owner's tasks, newest first (updated_at, then id, descending), at
 * most limit (1..1000), optionally only one context's and/or one state's.
 * Pages by key: pass the last task's updated_at and id as before_updated /
 * before_id (before_id NULL: from the newest). */
struct store_task_query {
    const char *owner;        /* required */
    const char *context_id;   /* NULL: any */
    const char *state;        /* NULL: any */
    int64_t before_updated;
    const char *before_id;
    int limit;
};
int store_task_list_owner(struct store *s, const struct store_task_query *q,
                          struct store_task **out, size_t *n);
void store_task_free(struct store_task *t);
void store_task_list_free(struct store_task *v, size_t n);

/* ---- turns and their checkpoints ---- */

#define STORE_TURN_RUNNING "running"

/* One agent turn; "running" until finished. A session has at most one
 * running turn at a time, in the store, so it holds across replicas. */
struct store_turn {
    char *id;
    char *session_id;
    char *state;
    char *owner;        /* read-only: the session's owner (filled by get/list) */
    char *instance;     /* the process running it (agent instance id); may be NULL */
    char *input;        /* JSON the runner needs to resume it (the message's client
                           data, the front's idempotency key, the request id);
                           dropped when it finishes; may be NULL */
    int64_t prompt_tokens, completion_tokens; /* read-only: usage so far */
    double cost_usd;                          /* (store_turn_step) */
    int64_t created_at, updated_at;
};
/* Claims the session for a new turn (state := running), in one
 * transaction, storing t->instance and t->input. AGENTD_ECONFLICT ("turn in
 * progress") if the session already has a running turn whose lease is live:
 * its updated_at (set at begin and at every store_turn_step /
 * store_turn_record / store_turn_adopt) is newer than now - lease_ms. A
 * running turn whose lease ran out (its process died) no longer blocks: the
 * claim marks it "failed". lease_ms <= 0: a running turn never expires.
 * AGENTD_EEXIST if the turn id is taken; AGENTD_ENOTFOUND if the session
 * does not exist. Fills created_at, updated_at and zero usage; owner is
 * left alone (only get/list hand it out). */
int store_turn_begin(struct store *s, struct store_turn *t, int64_t lease_ms);
/* Asks the session's running turn to stop at its next step boundary (it
 * sees the mark through store_turn_step). AGENTD_ENOTFOUND if the session
 * has no running turn. */
int store_turn_interrupt(struct store *s, const char *session_id);
/* Takes over a running turn whose process died: instance := to_instance
 * and updated_at := now, only if the turn is running and its instance is
 * from_instance (NULL matches a NULL instance) — a compare-and-swap, so of
 * two replicas adopting the same orphan exactly one wins (the other gets
 * AGENTD_ECONFLICT, as does a finished turn). AGENTD_ENOTFOUND if no such
 * turn (or its session expired). */
int store_turn_adopt(struct store *s, const char *id, const char *from_instance,
                     const char *to_instance);
int store_turn_get(struct store *s, const char *id, struct store_turn **out);
void store_turn_free(struct store_turn *t);
/* Which running turns to list (NULL: all of them). */
struct store_turn_scan {
    const char *skip_instance; /* not the turns of this instance (ours) */
    const char *after_id;      /* only those after (after_created, after_id) */
    int64_t after_created;     /* in the order below; after_id NULL: from the first */
    int limit;                 /* at most this many; <= 0: all */
};
/* Running turns, oldest first (created_at, then id): what to resume. A
 * caller pages through them by passing the last one's created_at and id. */
int store_turn_list_unfinished(struct store *s, const struct store_turn_scan *scan,
                               struct store_turn **out, size_t *n);
void store_turn_list_free(struct store_turn *v, size_t n);

/* A step's durable result, written before the next step runs. */
struct store_checkpoint {
    char *turn_id;
    int64_t step;       /* 0, 1, 2 ... within the turn */
    char *kind;         /* "user_message" | "llm_reply" | "tool_result" */
    char *payload;      /* JSON */
    int64_t created_at;
};
/* A turn's checkpoints in step order. */
int store_checkpoint_list(struct store *s, const char *turn_id, struct store_checkpoint **out,
                          size_t *n);
void store_checkpoint_list_free(struct store_checkpoint *v, size_t n);

/* ---- turn events: what a front streams live and replays ---- */

/* One event of a session's turns. seq is 1, 2, ... per session, assigned
 * at append in commit order: a reader that saw seq N and asks for
 * after_seq = N misses nothing. Events live and expire with their session. */
struct store_event {
    char *session_id;
    int64_t seq;        /* assigned by append */
    char *turn_id;
    char *type;         /* "turn-started", "text-delta", "tool-call", "tool-result",
                           "checkout-updated", "turn-completed", "turn-failed" */
    char *data;         /* JSON */
    int64_t created_at; /* assigned by append */
};
/* Appends n events (n may be 0) in one transaction, in order, filling each
 * seq and created_at. AGENTD_ENOTFOUND if the session does not exist (a
 * batch may span sessions; one missing session and nothing is appended).
 * session_id, type (non-empty) and data are required (else AGENTD_EINVAL);
 * turn_id may be NULL. Like a message, an event is a write to its session:
 * it pushes the session's expires_at. */
int store_event_append(struct store *s, struct store_event *v, size_t n);
/* Events with seq > after_seq in order, at most limit (<= 0: all). An
 * unknown or expired session is AGENTD_ENOTFOUND. */
int store_event_list(struct store *s, const char *session_id, int64_t after_seq, int limit,
                     struct store_event **out, size_t *n);
void store_event_list_free(struct store_event *v, size_t n);

/* One step of a turn in one transaction: the checkpoint, the session
 * message (m may be NULL) and the events (nev may be 0), and the turn's
 * heartbeat (updated_at := now). If the step is already checkpointed (a
 * replay) nothing is written and the result is AGENTD_EEXIST. AGENTD_ECONFLICT
 * if the turn is no longer running. Fills m->seq and each event's seq. */
/* Details: c->kind is "user_message", "llm_reply" or "tool_result", else
 * AGENTD_EINVAL. The replay check comes
 * first (a replayed step of a since-finished turn is AGENTD_EEXIST).
 * AGENTD_ENOTFOUND if the turn does not exist or its session expired.
 * m->session_id and every event's session_id must be the turn's session,
 * else AGENTD_EINVAL (nothing written). The session's expires_at is pushed
 * as by store_message_append. Also fills c->created_at, m->created_at and
 * each event's created_at. Nothing is filled unless the call returns 0. */
int store_turn_record(struct store *s, struct store_checkpoint *c, struct store_message *m,
                      struct store_event *ev, size_t nev);
/* Ends a turn and appends its last events (as store_event_append) in one
 * transaction: state is anything but "running" ("completed", "failed"...);
 * the turn's input is dropped (it may hold payment data). The events are
 * appended only if the finish applies: a turn that already finished is
 * AGENTD_ECONFLICT and nothing is written. nev may be 0. Fills each event's
 * seq/created_at. */
/* Details: AGENTD_ENOTFOUND if
 * the turn does not exist or its session expired. Every event's session_id
 * must be the turn's session, else AGENTD_EINVAL (nothing written, the turn
 * still runs); a finished turn answers AGENTD_ECONFLICT first, as in
 * store_turn_record. Nothing is filled unless the call returns 0. */
int store_turn_finish_events(struct store *s, const char *id, const char *state,
                             struct store_event *ev, size_t nev);
/* A task write that rides along another call's transaction: a
 * compare-and-swap as store_task_update_if (applies only while the live row
 * still has old_state and old_artifacts). */
struct store_task_write {
    const char *id, *state, *artifacts, *old_state, *old_artifacts;
};
/* store_turn_finish_events, and `task` in the same transaction (one commit:
 * the turn's end, its events and the A2A task's outcome show together).
 * Returns as store_turn_finish_events; the task never makes it fail: on 0,
 * *task_written = 1 if the task was written, 0 if it had moved on or is
 * gone (the caller writes it its own way). Nothing is written, and
 * *task_written is left alone, unless it returns 0. Timed as
 * turn_finish_events. */
int store_turn_finish_task(struct store *s, const char *id, const char *state,
                           struct store_event *ev, size_t nev,
                           const struct store_task_write *task, int *task_written);

/* ---- usage and cost ---- */

struct store_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    double cost_usd;
    int64_t calls;      /* model calls */
};
/* A model call's bookkeeping in one transaction: adds its usage to the
 * turn's totals and to the principal's totals for the UTC day of now, per
 * model, then heartbeats the running turn at its step boundary (updated_at
 * := now; *interrupt (may be NULL) := 1 if store_turn_interrupt() asked it
 * to stop). The usage is kept even when the turn is no longer running (a
 * late call still cost money): then the result is AGENTD_ECONFLICT (the turn
 * finished, or was failed as stale by another claim: it must stop).
 * AGENTD_ENOTFOUND if the turn does not exist (nothing written). */
/* Details: calls are added as given (u->calls, normally 1). model NULL is
 * stored as "". principal NULL, a negative count or a negative or
 * non-finite cost is AGENTD_EINVAL. A turn whose session expired is
 * AGENTD_ENOTFOUND. */
/* *interrupt is set only when the call returns 0. */
int store_turn_step(struct store *s, const char *turn_id, const char *principal,
                    const char *model, const struct store_usage *u, int *interrupt);
/* store_turn_step, then — only if the turn still runs and no interrupt is
 * marked — store_turn_record(c, m, ev, nev), in one transaction: a model
 * step's bookkeeping and its reply, one commit. c->turn_id must be
 * turn_id. The usage is kept whatever becomes of the record (it sits in a
 * savepoint). Returns: AGENTD_ECONFLICT if the turn no longer runs (usage
 * kept, nothing recorded); 0 with *interrupt = 1 if it is asked to stop
 * (nothing recorded); else store_turn_record's result (0: the step is
 * written and c, m, ev are filled). */
int store_turn_step_record(struct store *s, const char *turn_id, const char *principal,
                           const char *model, const struct store_usage *u, int *interrupt,
                           struct store_checkpoint *c, struct store_message *m,
                           struct store_event *ev, size_t nev);
/* A principal's totals over every model for one UTC day (day = Unix ms /
 * 86 400 000); all zero when nothing was used. */
int store_usage_day(struct store *s, const char *principal, int64_t day, struct store_usage *out);
/* A session's totals over its turns (calls = model calls); all zero for a
 * session without usage. AGENTD_ENOTFOUND if the session does not exist or
 * expired. */
int store_usage_session(struct store *s, const char *session_id, struct store_usage *out);

/* ---- stock: live inventory, seeded from the catalog ---- */

struct store_stock_line {
    const char *product_id;
    int64_t quantity;
};

/* replace = 0: inserts products that have no stock row yet (seeding at
 * start never undoes sales). replace = 1: the stock table becomes exactly
 * these rows (catalog import). One transaction. */
int store_stock_seed(struct store *s, const struct store_stock_line *v, size_t n, int replace);
/* AGENTD_ENOTFOUND when the product has no stock row. */
int store_stock_get(struct store *s, const char *product_id, int64_t *quantity);

/* ---- the address book: addresses buyers gave, per customer ---- */

struct store_address {
    char *id;
    char *customer;     /* the customer key (lowercased email) */
    char *body;         /* the address, as the caller wrote it (sealed JSON) */
    int64_t created_at;
};
/* Saves an address; an id already there is left as it is (0). */
int store_address_save(struct store *s, const char *id, const char *customer, const char *body);
/* The customer's addresses, oldest first, at most limit. */
int store_address_list(struct store *s, const char *customer, int limit,
                       struct store_address **out, size_t *n);
void store_address_list_free(struct store_address *v, size_t n);
/* Every customer's addresses with an id after `after` ("" = from the
 * start), by id, at most limit: a walk over the whole book (key rotation). */
int store_address_list_after(struct store *s, const char *after, int limit,
                             struct store_address **out, size_t *n);
/* Replaces the sealed body of address id when it is still old_body (the
 * same address re-sealed): AGENTD_ECONFLICT when it changed or is gone. */
int store_address_reseal(struct store *s, const char *id, const char *old_body,
                         const char *new_body);

/* ---- checkouts and orders ---- */

struct store_checkout {
    char *id;
    char *owner;
    char *status;       /* "incomplete", "ready_for_complete", "completed"... */
    char *document;     /* JSON: the UCP checkout object */
    int64_t version;    /* 1 at create, +1 per update */
    int64_t created_at, updated_at;
    int64_t expires_at; /* set by the caller; 0 = never */
};
int store_checkout_create(struct store *s, struct store_checkout *c);
int store_checkout_get(struct store *s, const char *id, struct store_checkout **out);
/* Compare-and-swap: applies only if the stored version is expected_version,
 * else AGENTD_ECONFLICT (reload and retry). */
int store_checkout_update(struct store *s, const char *id, int64_t expected_version,
                          const char *status, const char *document);
void store_checkout_free(struct store_checkout *c);
/* Up to limit live checkouts with an id after `after` ("" = from the start),
 * in id order: a walk over every checkout a page at a time (key rotation). */
int store_checkout_list_after(struct store *s, const char *after, int limit,
                              struct store_checkout **out, size_t *n);
void store_checkout_list_free(struct store_checkout *v, size_t n);

struct store_order {
    char *id;
    char *checkout_id;  /* one order per checkout */
    char *owner;
    char *document;     /* JSON */
    int64_t created_at;
    int64_t version;    /* 1 at create, +1 per update */
    char *access_hash;  /* SHA-256 hex of the permalink page's token; NULL = none */
    /* write-only (create): an outbox row written in the same transaction
     * (the order's placed event), so no crash can keep one without the
     * other; NULL = none. Never filled by get. */
    struct store_outbox *event;
};
/* Places an order and moves its checkout on in one transaction: the same
 * compare-and-swap as store_checkout_update(o->checkout_id, ...), takes
 * each `take` line from stock, then the insert. AGENTD_ESTOCK (nothing
 * applied) if any product lacks the quantity; AGENTD_EEXIST if the order id
 * or the checkout's order exists. */
int store_order_create(struct store *s, struct store_order *o, int64_t checkout_version,
                       const char *checkout_status, const char *checkout_document,
                       const struct store_stock_line *take, size_t ntake);
int store_order_get(struct store *s, const char *id, struct store_order **out);
/* Compare-and-swap of an order's document (updates, fulfilment events):
 * applies only if the stored version is expected_version, else
 * AGENTD_ECONFLICT; AGENTD_ENOTFOUND if none. ev (may be NULL) is added to
 * the outbox in the same transaction (an order change and its event). */
int store_order_update(struct store *s, const char *id, int64_t expected_version,
                       const char *document, struct store_outbox *ev);
void store_order_free(struct store_order *o);

/* ---- outbox: events to deliver to someone else, durably ---- */

/* One event to send (a signed webhook today; A2A push notifications
 * later), kept until it is delivered or given up. A deliverer claims due
 * rows with its instance id and a lease, sends them, and finishes each
 * claim; a claim whose lease ran out (its process died mid-send) is free
 * again, so replicas share one outbox and a row is sent by one of them at
 * a time. The id is the event id the receiver sees on every attempt. */
#define STORE_OUTBOX_PENDING "pending"
#define STORE_OUTBOX_DELIVERED "delivered"
#define STORE_OUTBOX_DEAD "dead"
/* Delivered and dead rows are purged this long after their last attempt
 * (store_purge_expired); pending ones never. */
#define STORE_OUTBOX_KEEP_MS (7LL * 24 * 3600 * 1000)
struct store_outbox {
    char *id;              /* event id, stable across attempts */
    char *kind;            /* "webhook" */
    char *target;          /* where to (a URL) */
    char *headers;         /* JSON object of extra headers; NULL = "{}" */
    char *body;
    char *state;           /* pending | delivered | dead (read-only) */
    int64_t attempts;      /* read-only */
    int64_t next_attempt_at; /* 0 at add = now */
    char *last_error;      /* read-only */
    char *claimed_by;      /* read-only */
    int64_t lease_until;   /* read-only */
    int64_t created_at, updated_at; /* read-only (filled by add) */
    /* Events of one seq_key (NULL: none) are claimed one at a time, in seq
     * order: a row waits while one with a lower seq is still pending (an
     * order's webhooks: placed, then each change, never overtaking). */
    char *seq_key;
    int64_t seq;
};
/* AGENTD_EEXIST when the id is taken. */
int store_outbox_add(struct store *s, struct store_outbox *ev);
/* Claims up to limit (1..1000) pending rows of kind that are due
 * (next_attempt_at <= now) and unclaimed or whose claim's lease ended, for
 * instance until now + lease_ms, oldest due first; returns them claimed. */
int store_outbox_claim(struct store *s, const char *kind, const char *instance, int64_t lease_ms,
                       int limit, struct store_outbox **out, size_t *n);
/* Ends instance's claim on id after one attempt: attempts + 1, the new
 * state (pending with next_attempt_at for a retry, delivered or dead),
 * last_error (may be NULL). AGENTD_ECONFLICT when instance no longer holds
 * the claim (its lease ran out and another took it), AGENTD_ENOTFOUND when
 * there is no such row. */
int store_outbox_finish(struct store *s, const char *id, const char *instance, const char *state,
                        int64_t next_attempt_at, const char *last_error);
/* Drops every claim of instance (a clean stop, or an instance known dead),
 * so the rows are due at once elsewhere; *n (may be NULL) = how many. */
int store_outbox_release(struct store *s, const char *instance, int *n);
/* The instances holding live claims (lease not ended) on pending rows,
 * each once: the deliverer asks whether their processes still live
 * (core/instance.h) and releases the claims of dead ones at once, rather
 * than waiting out their leases. *out is freed with store_strings_free. */
int store_outbox_holders(struct store *s, char ***out, size_t *n);
void store_strings_free(char **v, size_t n);
/* Pending rows of kind (NULL: any). */
int store_outbox_depth(struct store *s, const char *kind, int64_t *pending);
int store_outbox_get(struct store *s, const char *id, struct store_outbox **out);
void store_outbox_free(struct store_outbox *ev);
void store_outbox_list_free(struct store_outbox *v, size_t n);

/* ---- instances: the heartbeats of running processes ---- */

/* One agentd process sharing this database. Each writes its row every few
 * seconds; one whose heartbeat_at stopped moving is dead, and a live one
 * adopts what it held (docs/deployment.md "Replicas"). */
struct store_instance {
    char *id;             /* "host@pidns/pid/nonce" (core/instance.h) */
    char *host;
    int64_t pid;
    int64_t started_at;
    int64_t heartbeat_at; /* read-only: the store's clock at the last beat */
};
/* Writes inst's row (created at its first beat) with heartbeat_at = now. */
int store_instance_beat(struct store *s, const struct store_instance *inst);
/* Every row, by id. */
int store_instance_list(struct store *s, struct store_instance **out, size_t *n);
/* Removes id's row (a clean stop, or one dead long ago); AGENTD_ENOTFOUND
 * when there is none. */
int store_instance_delete(struct store *s, const char *id);
void store_instance_list_free(struct store_instance *v, size_t n);

/* ---- idempotency records ---- */

#define STORE_IDEM_IN_PROGRESS "in_progress"
#define STORE_IDEM_DONE "done"
/* An in_progress claim older than this is taken to be abandoned (the
 * process that held it died) and may be claimed again. Longer than any
 * request agentd serves with default limits. */
#define STORE_IDEM_LEASE_MS (5LL * 60 * 1000)

struct store_idem {
    char *principal;
    char *key;          /* the client's Idempotency-Key */
    char *fingerprint;  /* store_idem_fingerprint() of the first request */
    char *state;        /* STORE_IDEM_IN_PROGRESS | STORE_IDEM_DONE */
    int status;         /* the stored response (done only) */
    char *headers;      /* JSON */
    char *body;         /* body_len bytes, NUL-terminated for convenience */
    size_t body_len;
    int64_t created_at, expires_at;
    char *owner;        /* the claiming process's instance id (core/instance.h); NULL = unknown */
};
/* SHA-256 hex of method "\n" path "\n" body. */
void store_idem_fingerprint(const char *method, const char *path, const void *body,
                            size_t body_len, char out[65]);
/* Claims (principal, key) until expires_at. Returns 0 with *existing = NULL
 * when the claim is new (the caller runs the request, then finishes or
 * abandons it), or AGENTD_EEXIST with *existing = the live record (compare
 * its fingerprint, then replay it or report it in progress). */
int store_idem_begin(struct store *s, const char *principal, const char *key,
                     const char *fingerprint, int64_t expires_at, struct store_idem **existing);
/* store_idem_begin naming the claiming process (its instance id), so a
 * later request can tell the claim of a dead process. */
int store_idem_claim(struct store *s, const char *principal, const char *key,
                     const char *fingerprint, const char *owner, int64_t expires_at,
                     struct store_idem **existing);
/* Takes an in_progress claim over from dead_owner (NULL = a claim that
 * named none) for owner, restarting its lease; compare-and-swap on the
 * owner, so of several takers one wins. AGENTD_ENOTFOUND when the claim is
 * no longer dead_owner's in progress. */
int store_idem_takeover(struct store *s, const char *principal, const char *key,
                        const char *dead_owner, const char *owner);
/* in_progress -> done with the response. AGENTD_ENOTFOUND if not in progress. */
int store_idem_finish(struct store *s, const char *principal, const char *key, int status,
                      const char *headers, const void *body, size_t body_len);
/* Drops an in_progress claim so a failed request can be retried. */
int store_idem_abandon(struct store *s, const char *principal, const char *key);
/* Drops the record whatever its state (a message store_task_accept took
 * whose turn was then refused before it ran, so it may be sent again).
 * AGENTD_ENOTFOUND if there is none. */
int store_idem_drop(struct store *s, const char *principal, const char *key);
void store_idem_free(struct store_idem *r);

/* ---- audit events (append-only) ---- */

struct store_audit {
    int64_t id;         /* assigned by append, increasing */
    int64_t ts;         /* assigned by append */
    char *principal;
    char *action;       /* "apikey.create", "checkout.complete"... */
    char *target;
    char *request_id;
    char *outcome;      /* "ok", "denied", "error"... */
    int64_t count;      /* events the row stands for (a burst); 0 on append = 1 */
};
/* Never a secret in a row: ids, names and outcomes only. */
int store_audit_append(struct store *s, struct store_audit *e);
/* Adds e->count (0 = 1) to the newest row with e's principal, action and
 * target written at or after since_ms; appends e when there is none. One
 * row per burst (auth failures per address per minute), not per event. */
int store_audit_bump(struct store *s, struct store_audit *e, int64_t since_ms);
struct store_audit_query {
    const char *principal; /* NULL = everyone */
    int64_t since_ms;      /* rows written at or after (Unix ms); 0 = all */
    int limit;             /* the newest `limit` matching rows; <= 0 = all */
};
/* Oldest first (the newest q->limit rows that match, in the order written). */
int store_audit_list(struct store *s, const struct store_audit_query *q,
                     struct store_audit **out, size_t *n);
void store_audit_list_free(struct store_audit *v, size_t n);

/* ---- session listing and deletion (the REST chat front) ---- */

/* A page of owner's live sessions, newest first: created_at descending,
 * then id descending. The page after the one that ended with session
 * (before_created, before_id) is the rest of that order; before_id NULL =
 * from the newest. A keyset cursor: sessions created or deleted between
 * pages neither repeat nor shift the ones not yet read. limit >= 1. */
int store_session_list(struct store *s, const char *owner, int64_t before_created,
                       const char *before_id, int limit, struct store_session **out, size_t *n);
void store_session_list_free(struct store_session *v, size_t n);
/* Deletes owner's session with its messages, tasks, turns, checkpoints and
 * events, in one write transaction that first checks it has no running
 * turn: a turn is never cut in half. AGENTD_ENOTFOUND if there is no live
 * session id of owner's; AGENTD_ECONFLICT if a turn is running in it. */
int store_session_delete_idle(struct store *s, const char *id, const char *owner);

#endif
