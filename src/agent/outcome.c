/* Turn and tool outcomes (see outcome.h). */
#include "agent/outcome.h"

#include <stdio.h>
#include <string.h>

const char *const OUTCOME_TURN_KNOWN[] = {
    OUTCOME_COMPLETED, OUTCOME_PAYMENT_DECLINED, OUTCOME_OUT_OF_STOCK, OUTCOME_TOOL_ERROR,
    /* how a turn that did not answer ends (runner.c, recover.c) */
    "model_unavailable", "model_refused", "turn_timeout", "turn_interrupted",
    "turn_in_progress", "step_budget_exhausted", "token_budget_exhausted",
    "daily_budget_exhausted", "session_not_found", "shutting_down", "busy",
    "turn_not_resumable", "input_rejected", "guard_unavailable", NULL
};

const char *const OUTCOME_TOOL_KNOWN[] = { "ok",        "invalid_arguments", "not_found",
                                           "declined",  "out_of_stock",      "payment_required",
                                           "conflict",  "unknown_tool",      "error",
                                           NULL };

static int in(const char *code, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (strcmp(code, set[i]) == 0)
            return 1;
    return 0;
}

const char *outcome_tool(const char *code)
{
    static const char *const invalid[] = { "invalid_arguments", "invalid", "missing",
                                           "invalid_option", "invalid_quantity", "invalid_version",
                                           "unsupported", "unsupported_currency",
                                           "amount_too_large", NULL };
    static const char *const not_found[] = { "not_found", "no_checkout", NULL };
    static const char *const conflict[] = { "conflict", "version_conflict", "complete_in_progress",
                                            "invalid_state", "not_modifiable", "not_ready",
                                            "total_changed", NULL };
    if (!code || !*code)
        return "ok";
    if (strcmp(code, "payment_declined") == 0)
        return "declined";
    if (strcmp(code, "out_of_stock") == 0)
        return "out_of_stock";
    if (strcmp(code, "payment_required") == 0)
        return "payment_required";
    if (strcmp(code, "unknown_tool") == 0)
        return "unknown_tool";
    if (in(code, invalid))
        return "invalid_arguments";
    if (in(code, not_found))
        return "not_found";
    if (in(code, conflict))
        return "conflict";
    return "error";
}

void outcome_note_checkout(char *last, size_t len, const char *code)
{
    if (!len)
        return;
    if (!code || !*code)
        last[0] = '\0';
    else if (strcmp(code, "payment_required") != 0)
        snprintf(last, len, "%s", code);
}

const char *outcome_turn(int failed, const char *code, const char *last)
{
    if (failed)
        return code && *code ? code : "failed";
    if (!last || !*last)
        return OUTCOME_COMPLETED;
    if (strcmp(last, "payment_declined") == 0)
        return OUTCOME_PAYMENT_DECLINED;
    if (strcmp(last, "out_of_stock") == 0)
        return OUTCOME_OUT_OF_STOCK;
    return OUTCOME_TOOL_ERROR;
}
