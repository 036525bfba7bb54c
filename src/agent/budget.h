/* Turn budgets as pure decisions: the runner asks before each model step
 * and at each step boundary; the numbers come from the turn and the store.
 * No I/O, no clock of its own (unit-tested in tests/unit/test_budget.c). */
#ifndef AGENTD_AGENT_BUDGET_H
#define AGENTD_AGENT_BUDGET_H

#include <stdint.h>

struct budget_limits {
    int max_steps;              /* AGENTD_MAX_STEPS (>= 1) */
    int64_t turn_tokens;        /* AGENTD_TURN_TOKEN_BUDGET; 0 = unlimited */
    int64_t day_tokens;         /* AGENTD_DAILY_TOKEN_BUDGET; 0 = unlimited */
    int64_t day_cost_micro;     /* AGENTD_DAILY_COST_BUDGET in micro-USD; 0 = unlimited */
};

enum budget_verdict {
    BUDGET_OK,
    BUDGET_STEPS,               /* the turn made max_steps model steps */
    BUDGET_TURN_TOKENS,         /* the turn used its tokens */
    BUDGET_DAY_TOKENS,          /* the principal used today's tokens */
    BUDGET_DAY_COST,            /* the principal spent today's money */
};

/* May the turn make another model step, after `steps` steps that used
 * `tokens` tokens? A budget is used up when reached, not only when passed. */
enum budget_verdict budget_next_step(const struct budget_limits *b, int steps, int64_t tokens);
/* May the principal start (or go on with) a turn, having used these today? */
enum budget_verdict budget_daily(const struct budget_limits *b, int64_t day_tokens,
                                 double day_cost_usd);
/* 1 when the daily budgets are both unlimited (no need to read usage). */
int budget_daily_unlimited(const struct budget_limits *b);
/* The UTC day of a Unix-ms time, and the whole seconds (>= 1) from it to
 * the next 00:00 UTC, for Retry-After. */
int64_t budget_day(int64_t wall_ms);
int budget_seconds_to_midnight(int64_t wall_ms);

/* Money in JSON: a cost in USD is shown rounded to the micro-dollar (a sum
 * of float prices is never exact: 0.00028604999999999999). Dump every
 * document that holds one with JSON_REAL_PRECISION(BUDGET_JSON_PRECISION): 15 significant digits
 * print any micro-dollar amount below a billion exactly, where jansson's
 * default 17 would print the double's noise again. */
double budget_usd_round(double usd);
#define BUDGET_JSON_PRECISION 15

#endif
