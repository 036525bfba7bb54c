/* The input guard on a turn: each user message is screened by the built-in
 * rules (core/guard.c) and, when configured, an external guard before the
 * turn's first store job, so a refused message never reaches the model. */
#include "agent/runner.h"
#include "agent/turn.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/metrics.h"

static struct metric *m_verdicts;

void turn_screen_metrics_init(void)
{
    static const char *const labels[] = { "source", "verdict", NULL };
    m_verdicts = metric_register("agentd_guard_verdicts_total",
                                 "Input guard verdicts by source (rules, external) and verdict "
                                 "(allow, flag, reject, error)",
                                 METRIC_COUNTER, labels, NULL);
    static const char *const series[][2] = {
        { "rules", "allow" },    { "rules", "reject" },    { "external", "allow" },
        { "external", "flag" },  { "external", "reject" }, { "external", "error" },
    };
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        metric_child(m_verdicts, series[i]);
}

/* Counted always; logged when not a plain allow, with the text's length and
 * hash, never the text. */
static void note(const struct turn *t, const char *source, int verdict, const char *reason,
                 const char *action)
{
    const char *labels[] = { source, guard_verdict_name(verdict) };
    if (m_verdicts)
        metric_inc(metric_child(m_verdicts, labels));
    if (verdict == GUARD_ALLOW)
        return;
    struct logline l;
    if (!log_begin(&l, LOG_WARN, "input guard"))
        return;
    char hash[13];
    size_t len = strlen(t->text);
    guard_text_hash(t->text, len, hash);
    log_str(&l, "source", source);
    log_str(&l, "verdict", guard_verdict_name(verdict));
    log_str(&l, "reason", reason ? reason : "");
    log_str(&l, "action", action);
    log_int(&l, "text_len", (int64_t)len);
    log_str(&l, "text_sha256", hash);
    log_str(&l, "principal", t->owner);
    if (t->session_id)
        log_str(&l, "session_id", t->session_id);
    if (t->request_id[0])
        log_str(&l, "request_id", t->request_id);
    log_end(&l);
}

/* What the audit row says (runner.c writes it in the turn's own store job). */
static void audit_as(struct turn *t, const char *action, const char *source, const char *why)
{
    t->guard_action = action;
    snprintf(t->guard_outcome, sizeof t->guard_outcome, "%s%s%s", source, why ? ":" : "",
             why ? why : "");
}

/* A refusal in reject mode ends the turn; in flag mode it is recorded on
 * the turn (its turn-started event) and the turn runs. 1 = ended. */
static int decide(struct turn *t, const char *source, int verdict, const char *reason)
{
    if (verdict == GUARD_ALLOW) {
        note(t, source, verdict, reason, "allowed");
        return 0;
    }
    if (!reason || !*reason)
        reason = "unspecified";
    /* the rules' reasons are their own names; an external one is not ours */
    const char *why = strcmp(source, "rules") == 0 ? reason : NULL;
    if (verdict == GUARD_REJECT && !t->ag->guard_flag_only) {
        note(t, source, verdict, reason, "rejected");
        audit_as(t, "guard.reject", source, why);
        turn_fail(t, AGENTD_EUNPROCESSABLE, 422, "input_rejected",
                  "This message was not accepted (%.48s). Please rephrase it as a plain "
                  "shopping request.", reason);
        turn_finish(t);
        return 1;
    }
    note(t, source, verdict, reason, "flagged");
    audit_as(t, "guard.flag", source, why);
    snprintf(t->flag_source, sizeof t->flag_source, "%s", source);
    snprintf(t->flag_reason, sizeof t->flag_reason, "%s", reason);
    return 0;
}

/* The external guard could not be asked: AGENTD_GUARD_FAIL decides. Closed
 * counts it as a refusal: 503 in reject mode (the message was not judged,
 * a retry may pass), flagged in flag mode. 1 = ended. */
static int unreachable(struct turn *t, int status)
{
    const char *why = status == AGENTD_ETIMEOUT ? "guard_timeout" : "guard_unavailable";
    if (t->ag->guard_fail_open) {
        note(t, "external", status, why, "allowed (fail open)");
        return 0;
    }
    if (!t->ag->guard_flag_only) {
        note(t, "external", status, why, "rejected (fail closed)");
        audit_as(t, "guard.reject", "external", why);
        turn_fail(t, AGENTD_EUNAVAILABLE, 503, "guard_unavailable",
                  "The message could not be checked right now; please retry shortly.");
        t->retry_after_s = 1;
        turn_finish(t);
        return 1;
    }
    note(t, "external", status, why, "flagged (fail closed)");
    audit_as(t, "guard.flag", "external", why);
    snprintf(t->flag_source, sizeof t->flag_source, "external");
    snprintf(t->flag_reason, sizeof t->flag_reason, "%s", why);
    return 0;
}

static void on_external(int verdict, const char *reason, void *ud)
{
    struct turn *t = ud;
    t->guard_call = NULL;
    int ended = verdict < 0 ? unreachable(t, verdict) : decide(t, "external", verdict, reason);
    if (!ended)
        turn_begin(t);
}

int turn_screen(struct turn *t)
{
    const char *reason = NULL;
    int v = guard_rules_check(t->text, strlen(t->text), &reason);
    if (decide(t, "rules", v, reason))
        return 1;
    const struct guard_external *g = &t->ag->guard;
    if (!g->check)
        return 0;
    struct guard_request rq = { .text = t->text, .session_id = t->session_id,
                                .principal = t->owner,
                                .request_id = t->request_id[0] ? t->request_id : NULL };
    int rc = g->check(g->ud, t->loop, &rq, on_external, t, &t->guard_call);
    if (rc != 0)
        return unreachable(t, rc);
    return 1;
}
