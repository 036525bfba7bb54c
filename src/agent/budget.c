#include "agent/budget.h"

#include <math.h>

#define DAY_MS 86400000LL

enum budget_verdict budget_next_step(const struct budget_limits *b, int steps, int64_t tokens)
{
    if (steps >= b->max_steps)
        return BUDGET_STEPS;
    if (b->turn_tokens > 0 && tokens >= b->turn_tokens)
        return BUDGET_TURN_TOKENS;
    return BUDGET_OK;
}

enum budget_verdict budget_daily(const struct budget_limits *b, int64_t day_tokens,
                                 double day_cost_usd)
{
    if (b->day_tokens > 0 && day_tokens >= b->day_tokens)
        return BUDGET_DAY_TOKENS;
    /* compared in micro-dollars, rounded, so 0.05 spent of 0.05 is "reached" */
    if (b->day_cost_micro > 0 && (int64_t)(day_cost_usd * 1e6 + 0.5) >= b->day_cost_micro)
        return BUDGET_DAY_COST;
    return BUDGET_OK;
}

int budget_daily_unlimited(const struct budget_limits *b)
{
    return b->day_tokens <= 0 && b->day_cost_micro <= 0;
}

int64_t budget_day(int64_t wall_ms)
{
    return wall_ms >= 0 ? wall_ms / DAY_MS : -((-wall_ms + DAY_MS - 1) / DAY_MS);
}

int budget_seconds_to_midnight(int64_t wall_ms)
{
    int64_t into = wall_ms - budget_day(wall_ms) * DAY_MS;
    int64_t left = DAY_MS - into;
    return (int)((left + 999) / 1000);
}

double budget_usd_round(double usd)
{
    if (!isfinite(usd))
        return 0;
    return round(usd * 1e6) / 1e6;
}
