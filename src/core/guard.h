/* The input guard's pure side: verdicts, the built-in rules that screen a
 * user message before the model sees it, and the external guard's contract. */
#ifndef AGENTD_CORE_GUARD_H
#define AGENTD_CORE_GUARD_H

#include <stddef.h>

enum guard_verdict { GUARD_ALLOW, GUARD_FLAG, GUARD_REJECT };

/* "allow" | "flag" | "reject" -> the verdict, else AGENTD_EINVAL. */
int guard_verdict_parse(const char *s);
const char *guard_verdict_name(int verdict);

/* The longest message the built-in rules let through (bytes): /chat's own
 * limit (CHAT_MESSAGE_MAX), so it binds the fronts that have none. */
#define GUARD_MAX_TEXT 16384

/* The built-in rules (docs/security.md "Input guard and PII"): GUARD_REJECT
 * with *reason set ("too_long", "control_characters", "prompt_injection",
 * "price_manipulation") when text hits one, else GUARD_ALLOW. */
int guard_rules_check(const char *text, size_t len, const char **reason);

/* A short fingerprint of text for logs (the text itself never is logged):
 * the first 12 hex digits of its SHA-256; out holds at least 13 bytes. */
void guard_text_hash(const char *text, size_t len, char out[13]);

struct loop;
struct guard_call;

/* What an external guard is asked. */
struct guard_request {
    const char *text;
    const char *session_id;   /* may be NULL (a session not yet made) */
    const char *principal;
    const char *request_id;   /* may be NULL */
};

/* Runs on the loop when the guard answered: a verdict and its reason (may
 * be NULL), or verdict < 0 (AGENTD_E*) when it could not be asked (timeout,
 * refused, a bad answer): the caller's fail-open/closed decides then. */
typedef void (*guard_done_fn)(int verdict, const char *reason, void *ud);

/* An external guard as the agent sees it (set up by serve.c; the HTTP one
 * is auth/input_guard.c). check() starts a call on `loop` and never runs
 * done() inside itself; *call is the handle cancel() takes (done() then
 * never runs). */
struct guard_external {
    int (*check)(void *ud, struct loop *loop, const struct guard_request *rq, guard_done_fn done,
                 void *done_ud, struct guard_call **call);
    void (*cancel)(struct guard_call *call);
    void *ud;
};

#endif
