/* Backoff, Retry-After and the circuit breaker. Kept apart from the client
 * so their arithmetic is tested exactly, with injected randomness and time. */
#define _GNU_SOURCE
#include "llm/retry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "core/err.h"

int64_t llm_backoff_ms(int retry, int64_t base_ms, int64_t cap_ms, uint64_t rnd)
{
    if (retry < 0)
        retry = 0;
    int64_t ceiling = base_ms;
    for (int i = 0; i < retry && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    if (ceiling <= 0)
        return 0;
    /* full jitter: spreads synchronized clients over the whole window */
    return (int64_t)(rnd % (uint64_t)(ceiling + 1));
}

int llm_http_retryable(long status)
{
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

/* "The model `x` does not exist", "model 'x' not found", code model_not_found */
static int says_no_model(const char *body, size_t len)
{
    json_t *o = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(o, "error");
    int yes = 0;
    const char *fields[] = { "code", "type" };
    for (size_t i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(e, fields[i]));
        if (v && strcasecmp(v, "model_not_found") == 0)
            yes = 1;
    }
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!m)
        m = json_string_value(e); /* {"error": "model 'x' not found"} (Ollama) */
    if (m && strcasestr(m, "model") &&
        (strcasestr(m, "does not exist") || strcasestr(m, "not found")))
        yes = 1;
    json_decref(o);
    return yes;
}

enum llm_refusal llm_http_refusal(long status, const char *body, size_t len)
{
    if (status == 401)
        return LLM_REFUSAL_KEY;
    if (status == 403)
        return LLM_REFUSAL_ACCESS;
    if (status == 404)
        return LLM_REFUSAL_MODEL;
    if ((status == 400 || status == 422) && says_no_model(body, len))
        return LLM_REFUSAL_MODEL;
    return LLM_REFUSAL_NONE;
}

static int month_index(const char *m)
{
    static const char *const names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    for (int i = 0; i < 12; i++)
        if (strncasecmp(m, names[i], 3) == 0)
            return i;
    return -1;
}

/* HTTP-date in its three RFC 9110 forms; returns 0 and epoch seconds, or
 * AGENTD_EINVAL. */
static int parse_http_date(const char *s, int64_t *out)
{
    struct tm tm = { 0 };
    char wd[16], mon[8], tz[8];
    int day, year, hh, mi, ss;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    int ok = sscanf(s, "%15[A-Za-z], %d %3s %d %d:%d:%d %7s", wd, &day, mon, &year, &hh, &mi, &ss, tz) == 8;
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    if (!ok && sscanf(s, "%15[A-Za-z], %d-%3s-%d %d:%d:%d %7s", wd, &day, mon, &year, &hh, &mi, &ss, tz) == 8) {
        ok = 1;
        if (year < 100)
            year += year < 70 ? 2000 : 1900;
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    if (!ok && sscanf(s, "%15[A-Za-z] %3s %d %d:%d:%d %d", wd, mon, &day, &hh, &mi, &ss, &year) == 7) {
        ok = 1;
        strcpy(tz, "GMT");
    }
    if (!ok)
        return AGENTD_EINVAL;
    int m = month_index(mon);
    if (m < 0 || strcasecmp(tz, "GMT") != 0 || day < 1 || day > 31 || hh > 23 || mi > 59 ||
        ss > 60 || year < 1970)
        return AGENTD_EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return AGENTD_EINVAL;
    *out = (int64_t)t;
    return 0;
}

int64_t llm_retry_after_ms(const char *v, int64_t now_wall_ms, int64_t cap_ms)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    int64_t ms;
    if (isdigit((unsigned char)*v)) {
        char *end;
        errno = 0;
        long long secs = strtoll(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno == ERANGE || *end)
            return -1;
        ms = secs > cap_ms / 1000 ? cap_ms : (int64_t)secs * 1000;
    } else {
        int64_t when;
        if (parse_http_date(v, &when) != 0)
            return -1;
        ms = when * 1000 - now_wall_ms;
        if (ms < 0)
            ms = 0;
    }
    return ms > cap_ms ? cap_ms : ms;
}

/* ---- circuit breaker ---- */

void llm_breaker_init(struct llm_breaker *b, int threshold, int64_t cooldown_ms)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold > 0 ? threshold : 1;
    b->cooldown_ms = cooldown_ms;
}

void llm_breaker_destroy(struct llm_breaker *b) { pthread_mutex_destroy(&b->mu); }

int llm_breaker_allow(struct llm_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    int r = 1;
    if (b->state == LLM_BREAKER_OPEN && now_ms - b->opened_at_ms >= b->cooldown_ms) {
        b->state = LLM_BREAKER_HALF_OPEN;
        b->probe_out = 0;
    }
    if (b->state == LLM_BREAKER_OPEN)
        r = 0;
    else if (b->state == LLM_BREAKER_HALF_OPEN) {
        /* one probe at a time decides whether the provider is back */
        r = b->probe_out ? 0 : 2;
        b->probe_out = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void llm_breaker_success(struct llm_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    b->state = LLM_BREAKER_CLOSED;
    b->failures = 0;
    b->probe_out = 0;
    pthread_mutex_unlock(&b->mu);
}

void llm_breaker_failure(struct llm_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    if (b->state == LLM_BREAKER_HALF_OPEN) {
        b->state = LLM_BREAKER_OPEN;
        b->opened_at_ms = now_ms;
        b->probe_out = 0;
    } else if (b->state == LLM_BREAKER_CLOSED && ++b->failures >= b->threshold) {
        b->state = LLM_BREAKER_OPEN;
        b->opened_at_ms = now_ms;
    }
    /* already open: attempts started before it opened finish here; the
     * cooldown keeps counting from the opening */
    pthread_mutex_unlock(&b->mu);
}

void llm_breaker_release(struct llm_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->state == LLM_BREAKER_HALF_OPEN)
        b->probe_out = 0;
    pthread_mutex_unlock(&b->mu);
}

enum llm_breaker_state llm_breaker_state(struct llm_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    enum llm_breaker_state s = b->state;
    if (s == LLM_BREAKER_OPEN && now_ms - b->opened_at_ms >= b->cooldown_ms)
        s = LLM_BREAKER_HALF_OPEN;
    pthread_mutex_unlock(&b->mu);
    return s;
}

int64_t llm_breaker_wait_ms(struct llm_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    int64_t w = 0;
    if (b->state == LLM_BREAKER_OPEN) {
        w = b->opened_at_ms + b->cooldown_ms - now_ms;
        if (w < 0)
            w = 0;
    }
    pthread_mutex_unlock(&b->mu);
    return w;
}
