/* The SQLite backend's agent turns: the one-running-turn claim, checkpoints,
 * events, the per-step transactions and model usage. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- rows ---- */

/* Columns of TURN_COLS. */
static const struct col turn_cols[] = {
    COL(TEXT, struct store_turn, id),
    COL(TEXT, struct store_turn, session_id),
    COL(TEXT, struct store_turn, state),
    COL(TEXT, struct store_turn, owner),
    COL(TEXT, struct store_turn, instance),
    COL(TEXT, struct store_turn, input),
    COL(I64, struct store_turn, prompt_tokens),
    COL(I64, struct store_turn, completion_tokens),
    COL(DOUBLE, struct store_turn, cost_usd),
    COL(I64, struct store_turn, created_at),
    COL(I64, struct store_turn, updated_at),
};
static const struct row_map turn_rows = ROW_MAP(struct store_turn, turn_cols);

/* turn_id, step, kind, payload, created_at */
static const struct col checkpoint_cols[] = {
    COL(TEXT, struct store_checkpoint, turn_id), COL(I64, struct store_checkpoint, step),
    COL(TEXT, struct store_checkpoint, kind),    COL(TEXT, struct store_checkpoint, payload),
    COL(I64, struct store_checkpoint, created_at),
};
static const struct row_map checkpoint_rows = ROW_MAP(struct store_checkpoint, checkpoint_cols);

/* session_id, seq, turn_id, type, data, created_at */
static const struct col event_cols[] = {
    COL(TEXT, struct store_event, session_id), COL(I64, struct store_event, seq),
    COL(TEXT, struct store_event, turn_id),    COL(TEXT, struct store_event, type),
    COL(TEXT, struct store_event, data),       COL(I64, struct store_event, created_at),
};
static const struct row_map event_rows = ROW_MAP(struct store_event, event_cols);

/* The sums of USAGE_SUMS. */
static const struct col usage_cols[] = {
    COL(I64, struct store_usage, prompt_tokens),
    COL(I64, struct store_usage, completion_tokens),
    COL(DOUBLE, struct store_usage, cost_usd),
    COL(I64, struct store_usage, calls),
};
static const struct row_map usage_rows = ROW_MAP(struct store_usage, usage_cols);

/* ---- turns and checkpoints ---- */

/* Inside a write transaction, after a write to turn id touched nothing:
 * AGENTD_ECONFLICT if the turn is there (it moved on), else why not. */
static int turn_missed(struct sq *q, const char *id, int64_t now)
{
    int64_t one;
    int rc = sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", id, now);
    return rc == 0 ? AGENTD_ECONFLICT : rc;
}

/* The claim, in one write transaction (so it holds across processes
 * sharing the file): a running turn of the session whose lease ran out is
 * failed, then the insert happens only if no running turn is left. */
/* Inside a write transaction: the running turn id's heartbeat at now and
 * whether it was asked to stop (*flag); AGENTD_ENOTFOUND when it does not
 * run. SQLite: a read, then a plain UPDATE (sqlite_int.h). */
static int turn_heartbeat(struct sq *q, const char *id, int64_t now, int64_t *flag)
{
#if SQ_PLAIN_WRITES
    int rc = sq_run(&q->writer, ST_TURN_INTERRUPT_REQUESTED, flag, NULL, "t", id);
    return rc ? rc : sq_run(&q->writer, ST_TURN_HEARTBEAT, NULL, NULL, "ti", id, now);
#else
    return sq_run(&q->writer, ST_TURN_HEARTBEAT, flag, NULL, "ti", id, now);
#endif
}

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
#if SQ_PLAIN_WRITES /* a running turn left fails the claim: a check, then a plain insert */
    if (rc == 0) {
        rc = sq_run(&q->writer, ST_SESSION_RUNNING, &one, NULL, "t", t->session_id);
        rc = rc == 0 ? AGENTD_ECONFLICT : rc == AGENTD_ENOTFOUND ? 0 : rc;
    }
#endif
    if (rc == 0)
        rc = sq_run(&q->writer, ST_TURN_CLAIM, NULL, &changed, "ttitt", t->id, t->session_id, now,
                    t->instance, t->input);
    if (rc == 0 && !changed)
        rc = AGENTD_ECONFLICT;
    if ((rc = sq_writer_end(q, rc)) == 0) {
        /* claimed: live, running and in its session (not touched) */
        sq_batch_note_running(q, &(struct sq_running){ .turn_id = t->id,
                                                       .session_id = t->session_id,
                                                       .now = now });
        t->created_at = t->updated_at = now;
        t->prompt_tokens = t->completion_tokens = 0;
        t->cost_usd = 0;
    }
    return rc;
}

int sq_turn_interrupt(void *b, const char *session_id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_TURN_INTERRUPT, &changed, "t", session_id);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* Inside a write transaction: a running turn ends in state. */
static int turn_finish_tx(struct sq *q, const char *id, const char *state, int64_t now)
{
    int changed = 0;
    int rc = sq_run(&q->writer, ST_TURN_FINISH, NULL, &changed, "tti", id, state, now);
    /* Nothing changed: finished already (conflict) or not there at all. */
    if (rc == 0 && !changed)
        rc = turn_missed(q, id, now);
    return rc;
}

/* The compare-and-swap on (running, instance IS from); a miss is a
 * conflict if the turn is there at all. */
int sq_turn_adopt(void *b, const char *id, const char *from_instance,
                  const char *to_instance)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_TURN_ADOPT, NULL, &changed, "ttti", id, from_instance, to_instance,
                now);
    if (rc == 0 && !changed)
        rc = turn_missed(q, id, now);
    return sq_writer_end(q, rc);
}

int sq_turn_get(void *b, const char *id, struct store_turn **out)
{
    struct sq *q = b;
    return sq_get(q, ST_TURN_GET, &turn_rows, out, "ti", id, now_ms(q));
}

int sq_turn_list_unfinished(void *b, const struct store_turn_scan *scan,
                            struct store_turn **out, size_t *n)
{
    struct sq *q = b;
    return sq_list(q, ST_TURN_UNFINISHED, &turn_rows, out, n, "iitit", now_ms(q),
                   (int64_t)(scan->limit > 0 ? scan->limit : -1), scan->skip_instance,
                   scan->after_id ? scan->after_created : INT64_MIN,
                   scan->after_id ? scan->after_id : "");
}

int sq_checkpoint_list(void *b, const char *turn_id, struct store_checkpoint **out,
                       size_t *n)
{
    struct sq *q = b;
    int64_t one;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_TURN_LIVE, &one, NULL, "ti", turn_id, now_ms(q));
    if (rc == 0)
        rc = sq_fetch(c, ST_CHECKPOINT_LIST, &checkpoint_rows, out, n, "t", turn_id);
    return sq_read_end(c, rc);
}

/* ---- turn events and steps ---- */

static int64_t day_of(int64_t ms) { return ms / MS_PER_DAY; }

/* Inside a write transaction: appends v[0..n) in order, their seqs into
 * seq[]. Each session is checked live and has its expiry pushed once per
 * run of events that share it; touched (may be NULL) names a session this
 * transaction already touched at now, which the first run need not touch
 * again (same values, one UPDATE less). */
static int events_insert(struct sq *q, const struct store_event *v, size_t n, int64_t now,
                         int64_t *seq, const char *touched)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *prev = i ? v[i - 1].session_id : touched;
        if (!prev || strcmp(v[i].session_id, prev) != 0)
            rc = sq_session_touch(q, v[i].session_id, NULL, now);
#if SQ_PLAIN_WRITES /* plain inserts (sqlite_int.h): a run's first seq looked
                      up, the rest counted on (the writer is ours) */
        if (rc == 0 && i && strcmp(v[i].session_id, v[i - 1].session_id) == 0)
            seq[i] = seq[i - 1] + 1;
        else if (rc == 0)
            rc = sq_run(&q->writer, ST_EVENT_NEXT_SEQ, &seq[i], NULL, "t", v[i].session_id);
        if (rc == 0)
            rc = sq_run(&q->writer, ST_EVENT_INSERT, NULL, NULL, "tittti", v[i].session_id,
                        seq[i], v[i].turn_id, v[i].type, v[i].data, now);
#else
        if (rc == 0)
            rc = sq_run(&q->writer, ST_EVENT_INSERT, &seq[i], NULL, "tttti", v[i].session_id,
                        v[i].turn_id, v[i].type, v[i].data, now);
#endif
    }
    return rc;
}

/* The time, room for nev events' seqs (*seq NULL when nev is 0), then the
 * writer's transaction; on failure nothing is held. */
static int events_begin(struct sq *q, size_t nev, int64_t *now, int64_t **seq)
{
    *now = now_ms(q);
    *seq = nev ? calloc(nev, sizeof **seq) : NULL;
    if (nev && !*seq)
        return AGENTD_ENOMEM;
    int rc = sq_writer_begin(q);
    if (rc) {
        free(*seq);
        *seq = NULL;
    }
    return rc;
}

/* What written events hand back: their seqs and time. */
static void events_filled(struct store_event *ev, size_t nev, int64_t now, const int64_t *seq)
{
    for (size_t i = 0; i < nev; i++) {
        ev[i].seq = seq[i];
        ev[i].created_at = now;
    }
}

/* Ends the transaction events_begin opened (committing when rc is 0) and
 * hands the events their seqs and time once written. */
static int events_end(struct sq *q, int rc, struct store_event *ev, size_t nev, int64_t now,
                      int64_t *seq)
{
    if ((rc = sq_writer_end(q, rc)) == 0)
        events_filled(ev, nev, now, seq);
    free(seq);
    return rc;
}

int sq_event_append(void *b, struct store_event *v, size_t n)
{
    struct sq *q = b;
    int64_t now, *seq;
    int rc = events_begin(q, n, &now, &seq);
    return rc ? rc : events_end(q, events_insert(q, v, n, now, seq, NULL), v, n, now, seq);
}

int sq_event_list(void *b, const char *session_id, int64_t after_seq, int limit,
                  struct store_event **out, size_t *n)
{
    return sq_session_rows(b, ST_EVENT_LIST, session_id, after_seq, limit, &event_rows, out, n);
}

/* Inside a write transaction: AGENTD_EINVAL unless session_id is the turn's
 * (a step never writes into another session). *checked is the last id
 * found to be the turn's (NULL: none yet): a run of writes into one session
 * looks it up once. */
static int turn_in_session(struct sq *q, const char *turn_id, const char *session_id,
                           const char **checked)
{
    if (*checked && strcmp(*checked, session_id) == 0)
        return 0;
    int64_t one;
    int rc = sq_run(&q->writer, ST_TURN_IN_SESSION, &one, NULL, "tt", turn_id, session_id);
    if (rc == 0)
        *checked = session_id;
    return rc == AGENTD_ENOTFOUND ? AGENTD_EINVAL : rc;
}

/* One step's writes inside the writer's transaction. The checkpoint goes
 * first: a replayed step answers AGENTD_EEXIST whatever became of the turn
 * since. known (may be NULL) says this transaction has already found the
 * turn live and running and heartbeat it at now (sq_turn_step_record, or
 * the batch's write just before: sq_batch_running): those checks are then
 * not run again, nor the session check and touch it did. Fills *mseq and
 * seq[] (nev). */
static int turn_record_tx(struct sq *q, const struct store_checkpoint *cp,
                          const struct store_message *m, const struct store_event *ev, size_t nev,
                          int64_t now, const struct sq_running *known, int64_t *mseq,
                          int64_t *seq)
{
    int64_t one, flag;
    int running = known != NULL;
    const char *checked = known ? known->session_id : NULL;
    const char *touched = known && known->touched ? known->session_id : NULL;
    int rc = running ? 0 : sq_run(&q->writer, ST_TURN_LIVE, &one, NULL, "ti", cp->turn_id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_CHECKPOINT_INSERT, NULL, NULL, "titti", cp->turn_id, cp->step,
                    cp->kind, cp->payload, now);
    if (rc == 0 && !running) { /* the heartbeat, and whether the turn still runs */
        rc = turn_heartbeat(q, cp->turn_id, now, &flag);
        if (rc == AGENTD_ENOTFOUND)
            rc = AGENTD_ECONFLICT;
    }
    if (rc == 0 && m)
        rc = turn_in_session(q, cp->turn_id, m->session_id, &checked);
    for (size_t i = 0; rc == 0 && i < nev; i++)
        rc = turn_in_session(q, cp->turn_id, ev[i].session_id, &checked);
    if (rc == 0 && m)
        rc = sq_message_insert(q, m, now, mseq, touched && strcmp(touched, m->session_id) == 0);
    if (rc == 0)
        rc = events_insert(q, (struct store_event *)ev, nev, now, seq,
                           m ? m->session_id : touched);
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
    events_filled(ev, nev, now, seq);
}

/* A step's record written in a batch: its turn runs, in the session its
 * message (or first event) went to, which it touched at now. */
static void note_recorded(struct sq *q, const char *turn_id, const struct store_message *m,
                          const struct store_event *ev, size_t nev, int64_t now)
{
    const char *sid = m ? m->session_id : nev ? ev[0].session_id : NULL;
    sq_batch_note_running(q, &(struct sq_running){ .turn_id = turn_id, .session_id = sid,
                                                   .now = now, .touched = sid != NULL });
}

/* One step, all or nothing. */
int sq_turn_record(void *b, struct store_checkpoint *cp, struct store_message *m,
                   struct store_event *ev, size_t nev)
{
    struct sq *q = b;
    int64_t now, mseq = 0, *seq;
    int rc = events_begin(q, nev, &now, &seq);
    if (rc)
        return rc;
    struct sq_running known;
    int k = sq_batch_running(q, cp->turn_id, &known);
    if (k) /* the batch's write before found it running: at its time (one commit) */
        now = known.now;
    rc = turn_record_tx(q, cp, m, ev, nev, now, k ? &known : NULL, &mseq, seq);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        turn_record_filled(cp, m, ev, nev, now, mseq, seq);
        note_recorded(q, cp->turn_id, m, ev, nev, now);
    }
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
    int64_t now, *seq;
    int rc = events_begin(q, nev, &now, &seq);
    if (rc)
        return rc;
    /* right after its last step in a batch: that step's session check and
     * touch hold, at its time (one commit) */
    struct sq_running known = { 0 };
    if (sq_batch_running(q, id, &known))
        now = known.now;
    const char *checked = known.session_id;
    rc = turn_finish_tx(q, id, state, now);
    for (size_t i = 0; rc == 0 && i < nev; i++)
        rc = turn_in_session(q, id, ev[i].session_id, &checked);
    if (rc == 0)
        rc = events_insert(q, ev, nev, now, seq, known.touched ? known.session_id : NULL);
    /* a task that moved on changes nothing, and fails nothing. Its context
     * is live when it is the events' session (the usual case): the finish
     * found the turn's session live, and each event's session the turn's;
     * that check is not run again. A miss tries the whole form (a task of
     * another context; or it moved on, and misses again). */
#if SQ_PLAIN_WRITES
    if (rc == 0 && task && nev)
        rc = sq_run(&q->writer, ST_TASK_UPDATE_IF_IN, NULL, &changed, "tttittt", task->id,
                    task->state, task->artifacts, now, task->old_state, task->old_artifacts,
                    ev[0].session_id);
#endif
    if (rc == 0 && task && !changed)
        rc = sq_run(&q->writer, ST_TASK_UPDATE_IF, NULL, &changed, "tttitt", task->id, task->state,
                    task->artifacts, now, task->old_state, task->old_artifacts);
    if ((rc = events_end(q, rc, ev, nev, now, seq)) == 0 && task)
        *task_written = changed > 0;
    return rc;
}

/* ---- usage ---- */

/* Inside a write transaction: a model call's usage, to the turn and the
 * principal's day. */
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
        rc = turn_heartbeat(q, turn_id, now, &flag);
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
    int64_t now, flag = 0, mseq = 0, *seq;
    int running = 1, rec = AGENTD_ECONFLICT; /* not written */
    int rc = events_begin(q, nev, &now, &seq);
    if (rc)
        return rc;
    rc = usage_add_tx(q, turn_id, principal, model, u, now);
    if (rc == 0) {
        rc = turn_heartbeat(q, turn_id, now, &flag);
        if (rc == AGENTD_ENOTFOUND) {
            running = 0;
            rc = 0;
        }
    }
    if (rc == 0 && running && !flag && (rc = sq_run(&q->writer, ST_SAVEPOINT, NULL, NULL, "")) == 0) {
        rec = turn_record_tx(q, cp, m, ev, nev, now, &(struct sq_running){ .turn_id = turn_id },
                             &mseq, seq);
        if (rec)
            rc = sq_run(&q->writer, ST_ROLLBACK_TO, NULL, NULL, "");
        if (rc == 0)
            rc = sq_run(&q->writer, ST_RELEASE, NULL, NULL, "");
    }
    if ((rc = sq_writer_end(q, rc)) == 0 && running && !flag && rec == 0) {
        turn_record_filled(cp, m, ev, nev, now, mseq, seq);
        if (strcmp(turn_id, cp->turn_id) == 0)
            note_recorded(q, turn_id, m, ev, nev, now);
    }
    free(seq);
    if (rc)
        return rc;
    if (!running)
        return AGENTD_ECONFLICT;
    if (interrupt)
        *interrupt = flag != 0;
    return flag ? 0 : rec;
}

/* A read of sums: always one row (zeros when nothing matched). */
static int usage_result(int rc, struct store_usage *v, size_t nv, struct store_usage *out)
{
    if (rc == 0 && nv != 1)
        rc = AGENTD_ECORRUPT; /* an aggregate without GROUP BY yields one row */
    if (rc == 0)
        *out = *v;
    free(v);
    return rc;
}

int sq_usage_day(void *b, const char *principal, int64_t day, struct store_usage *out)
{
    struct store_usage *v = NULL;
    size_t nv = 0;
    int rc = sq_list(b, ST_USAGE_DAY, &usage_rows, &v, &nv, "ti", principal, day);
    return usage_result(rc, v, nv, out);
}

/* The session check and the sums read one snapshot. */
int sq_usage_session(void *b, const char *session_id, struct store_usage *out)
{
    struct sq *q = b;
    int64_t one;
    struct store_usage *v = NULL;
    size_t nv = 0;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now_ms(q));
    if (rc == 0)
        rc = sq_fetch(c, ST_USAGE_SESSION, &usage_rows, &v, &nv, "t", session_id);
    rc = sq_read_end(c, rc);
    return usage_result(rc, v, nv, out);
}

