/* The SQLite backend's agent turns: the one-running-turn claim, checkpoints,
 * events, the per-step transactions and model usage. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- turns and checkpoints ---- */

/* The claim, in one write transaction (so it holds across processes
 * sharing the file): a running turn of the session whose lease ran out is
 * failed, then the insert happens only if no running turn is left. */
int sq_turn_begin(void *b, struct store_turn *t, int64_t lease_ms)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int changed = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->session_id, now);
    if (rc == 0) {
        rc = sq_run(&q->writer, ST_TURN_EXISTS, &one, NULL, "t", t->id);
        rc = rc == 0 ? AGENTD_EEXIST : rc == AGENTD_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0 && lease_ms > 0)
        rc = sq_run(&q->writer, ST_TURN_EXPIRE_STALE, NULL, NULL, "tii", t->session_id, now,
                 now - lease_ms);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_TURN_CLAIM, NULL, &changed, "ttitt", t->id, t->session_id, now,
                 t->instance, t->input);
    if (rc == 0 && !changed)
        rc = AGENTD_ECONFLICT;
    if ((rc = sq_writer_end(q, rc)) == 0) {
        t->created_at = t->updated_at = now;
        t->prompt_tokens = t->completion_tokens = 0;
        t->cost_usd = 0;
    }
    return rc;
}

int sq_turn_touch(void *b, const char *id, int *interrupt)
{
    struct sq *q = b;
    int64_t now = now_ms(q), flag = 0, one;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", id, now);
    if (rc == AGENTD_ENOTFOUND) {
        rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT; /* finished, or failed as stale by another claim */
    }
    if ((rc = sq_writer_end(q, rc)) == 0 && interrupt)
        *interrupt = flag != 0;
    return rc;
}

int sq_turn_interrupt(void *b, const char *session_id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_TURN_INTERRUPT, &changed, "t", session_id);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* Inside a write transaction: the finish of store_turn_finish. */
static int turn_finish_tx(struct sq *q, const char *id, const char *state, int64_t now)
{
    int64_t one;
    int changed = 0;
    int rc = sq_run(&q->writer, ST_TURN_FINISH, NULL, &changed, "tti", id, state, now);
    /* Nothing changed: finished already (conflict) or not there at all. */
    if (rc == 0 && !changed) {
        rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return rc;
}

int sq_turn_finish(void *b, const char *id, const char *state)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, turn_finish_tx(q, id, state, now_ms(q)));
}

/* The compare-and-swap on (running, instance IS from); a miss is a
 * conflict if the turn is there at all. */
int sq_turn_adopt(void *b, const char *id, const char *from_instance,
                         const char *to_instance)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int changed = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_TURN_ADOPT, NULL, &changed, "ttti", id, from_instance, to_instance,
             now);
    if (rc == 0 && !changed) {
        rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return sq_writer_end(q, rc);
}

/* Columns of TURN_COLS. */
static int row_turn(sqlite3_stmt *st, void *item)
{
    struct store_turn *t = item;
    int oom = 0;
    t->id = sq_col_str(st, 0, &oom);
    t->session_id = sq_col_str(st, 1, &oom);
    t->state = sq_col_str(st, 2, &oom);
    t->owner = sq_col_str(st, 3, &oom);
    t->instance = sq_col_str(st, 4, &oom);
    t->input = sq_col_str(st, 5, &oom);
    t->prompt_tokens = sq_col_i64(st, 6);
    t->completion_tokens = sq_col_i64(st, 7);
    t->cost_usd = sqlite3_column_double(st, 8);
    t->created_at = sq_col_i64(st, 9);
    t->updated_at = sq_col_i64(st, 10);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_turn_get(void *b, const char *id, struct store_turn **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_TURN_GET, row_turn, store_turn_free, out, "ti", id, now_ms(q));
}

int sq_turn_list_unfinished(void *b, const struct store_turn_scan *scan,
                                   struct store_turn **out, size_t *n)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    void *v;
    size_t nv;
    int rc = sq_fetch(c, ST_TURN_UNFINISHED, sizeof **out, row_turn, &v, &nv, "iitit", now_ms(q),
                   (int64_t)(scan->limit > 0 ? scan->limit : -1), scan->skip_instance,
                   scan->after_id ? scan->after_created : INT64_MIN,
                   scan->after_id ? scan->after_id : "");
    sq_conn_put(c);
    if (rc) {
        store_turn_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int sq_checkpoint_put(void *b, struct store_checkpoint *cp)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", cp->turn_id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_CHECKPOINT_INSERT, NULL, NULL, "titti", cp->turn_id, cp->step,
                 cp->kind, cp->payload, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_TURN_TOUCH, NULL, NULL, "ti", cp->turn_id, now);
    if ((rc = sq_writer_end(q, rc)) == 0)
        cp->created_at = now;
    return rc;
}

static int row_checkpoint(sqlite3_stmt *st, void *item)
{
    struct store_checkpoint *cp = item;
    int oom = 0;
    cp->turn_id = sq_col_str(st, 0, &oom);
    cp->step = sq_col_i64(st, 1);
    cp->kind = sq_col_str(st, 2, &oom);
    cp->payload = sq_col_str(st, 3, &oom);
    cp->created_at = sq_col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_checkpoint_list(void *b, const char *turn_id, struct store_checkpoint **out,
                              size_t *n)
{
    struct sq *q = b;
    int64_t one;
    void *v = NULL;
    size_t nv = 0;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_TURN_LIVE, &one, NULL, "ti", turn_id, now_ms(q));
    if (rc == 0)
        rc = sq_fetch(c, ST_CHECKPOINT_LIST, sizeof **out, row_checkpoint, &v, &nv, "t", turn_id);
    rc = sq_read_end(c, rc);
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
            rc = sq_run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", v[i].session_id,
                     NULL, now, session_expiry(q, now));
            if (rc == 0 && !changed)
                rc = AGENTD_ENOTFOUND;
        }
        if (rc == 0)
            rc = sq_run(&q->writer, ST_EVENT_INSERT, &seq[i], NULL, "tttti", v[i].session_id,
                     v[i].turn_id, v[i].type, v[i].data, now);
    }
    return rc;
}

int sq_event_append(void *b, struct store_event *v, size_t n)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int64_t *seq = calloc(n, sizeof *seq);
    if (!seq)
        return AGENTD_ENOMEM;
    int rc = sq_writer_begin(q);
    if (rc == 0)
        rc = sq_writer_end(q, events_insert(q, v, n, now, seq));
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
    e->session_id = sq_col_str(st, 0, &oom);
    e->seq = sq_col_i64(st, 1);
    e->turn_id = sq_col_str(st, 2, &oom);
    e->type = sq_col_str(st, 3, &oom);
    e->data = sq_col_str(st, 4, &oom);
    e->created_at = sq_col_i64(st, 5);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_event_list(void *b, const char *session_id, int64_t after_seq, int limit,
                         struct store_event **out, size_t *n)
{
    void *v = NULL;
    size_t nv = 0;
    int rc = sq_session_rows(b, ST_EVENT_LIST, session_id, after_seq, limit, sizeof **out,
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
    int rc = sq_run(&q->writer, ST_TURN_IN_SESSION, &one, NULL, "tt", turn_id, session_id);
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
    int rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", cp->turn_id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_CHECKPOINT_INSERT, NULL, NULL, "titti", cp->turn_id, cp->step,
                 cp->kind, cp->payload, now);
    if (rc == 0) { /* the heartbeat, and whether the turn still runs */
        rc = sq_run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", cp->turn_id, now);
        if (rc == AGENTD_ENOTFOUND)
            rc = AGENTD_ECONFLICT;
    }
    if (rc == 0 && m)
        rc = turn_in_session(q, cp->turn_id, m->session_id);
    for (size_t i = 0; rc == 0 && i < nev; i++)
        rc = turn_in_session(q, cp->turn_id, ev[i].session_id);
    if (rc == 0 && m) {
        int changed = 0;
        rc = sq_run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", m->session_id, NULL, now,
                 session_expiry(q, now));
        if (rc == 0 && !changed)
            rc = AGENTD_ENOTFOUND;
        if (rc == 0)
            rc = sq_run(&q->writer, ST_MESSAGE_INSERT, mseq, NULL, "ttti", m->session_id, m->role,
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
int sq_turn_record(void *b, struct store_checkpoint *cp, struct store_message *m,
                          struct store_event *ev, size_t nev)
{
    struct sq *q = b;
    int64_t now = now_ms(q), mseq = 0;
    int64_t *seq = nev ? calloc(nev, sizeof *seq) : NULL;
    if (nev && !seq)
        return AGENTD_ENOMEM;
    int rc = sq_writer_begin(q);
    if (rc) {
        free(seq);
        return rc;
    }
    rc = turn_record_tx(q, cp, m, ev, nev, now, &mseq, seq);
    if ((rc = sq_writer_end(q, rc)) == 0)
        turn_record_filled(cp, m, ev, nev, now, mseq, seq);
    free(seq);
    return rc;
}

/* A turn's finish and its last events, all or nothing: the events are
 * appended only if the finish applies. */
int sq_turn_finish_events(void *b, const char *id, const char *state,
                                 struct store_event *ev, size_t nev,
                                 const struct store_task_write *task, int *task_written)
{
    int changed = 0;
    struct sq *q = b;
    int64_t now = now_ms(q);
    int64_t *seq = nev ? calloc(nev, sizeof *seq) : NULL;
    if (nev && !seq)
        return AGENTD_ENOMEM;
    int rc = sq_writer_begin(q);
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
        rc = sq_run(&q->writer, ST_TASK_UPDATE_IF, NULL, &changed, "tttitt", task->id, task->state,
                 task->artifacts, now, task->old_state, task->old_artifacts);
    if ((rc = sq_writer_end(q, rc)) == 0) {
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
    int rc = sq_run(&q->writer, ST_TURN_USAGE_ADD, NULL, &changed, "tiidii", turn_id,
                 u->prompt_tokens, u->completion_tokens, u->cost_usd, u->calls, now);
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        rc = sq_run(&q->writer, ST_USAGE_DAILY_ADD, NULL, NULL, "titiidi", principal, day_of(now),
                 model, u->prompt_tokens, u->completion_tokens, u->cost_usd, u->calls);
    return rc;
}

int sq_usage_add(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, usage_add_tx(q, turn_id, principal, model, u, now_ms(q)));
}

/* usage_add then turn_touch in one transaction. A turn that no longer runs
 * keeps the usage (the transaction commits) and answers AGENTD_ECONFLICT. */
int sq_turn_step(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u, int *interrupt)
{
    struct sq *q = b;
    int64_t now = now_ms(q), flag = 0;
    int running = 1;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = usage_add_tx(q, turn_id, principal, model, u, now);
    if (rc == 0) { /* the turn is there (the usage found it): a miss is a finish */
        rc = sq_run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", turn_id, now);
        if (rc == AGENTD_ENOTFOUND) {
            running = 0;
            rc = 0;
        }
    }
    if ((rc = sq_writer_end(q, rc)) != 0)
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
int sq_turn_step_record(void *b, const char *turn_id, const char *principal,
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
    int rc = sq_writer_begin(q);
    if (rc) {
        free(seq);
        return rc;
    }
    rc = usage_add_tx(q, turn_id, principal, model, u, now);
    if (rc == 0) {
        rc = sq_run(&q->writer, ST_TURN_HEARTBEAT, &flag, NULL, "ti", turn_id, now);
        if (rc == AGENTD_ENOTFOUND) {
            running = 0;
            rc = 0;
        }
    }
    if (rc == 0 && running && !flag && (rc = sq_run(&q->writer, ST_SAVEPOINT, NULL, NULL, "")) == 0) {
        rec = turn_record_tx(q, cp, m, ev, nev, now, &mseq, seq);
        if (rec)
            rc = sq_run(&q->writer, ST_ROLLBACK_TO, NULL, NULL, "");
        if (rc == 0)
            rc = sq_run(&q->writer, ST_RELEASE, NULL, NULL, "");
    }
    if ((rc = sq_writer_end(q, rc)) == 0 && running && !flag && rec == 0)
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
    u->prompt_tokens = sq_col_i64(st, 0);
    u->completion_tokens = sq_col_i64(st, 1);
    u->cost_usd = sqlite3_column_double(st, 2);
    u->calls = sq_col_i64(st, 3);
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

int sq_usage_day(void *b, const char *principal, int64_t day, struct store_usage *out)
{
    struct conn *c = sq_reader_get(b);
    void *v = NULL;
    size_t nv = 0;
    int rc = sq_fetch(c, ST_USAGE_DAY, sizeof *out, row_usage, &v, &nv, "ti", principal, day);
    sq_conn_put(c);
    return usage_result(rc, v, nv, out);
}

/* The session check and the sums read one snapshot. */
int sq_usage_session(void *b, const char *session_id, struct store_usage *out)
{
    struct sq *q = b;
    int64_t one;
    void *v = NULL;
    size_t nv = 0;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now_ms(q));
    if (rc == 0)
        rc = sq_fetch(c, ST_USAGE_SESSION, sizeof *out, row_usage, &v, &nv, "t", session_id);
    rc = sq_read_end(c, rc);
    return usage_result(rc, v, nv, out);
}

