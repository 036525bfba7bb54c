/* The LLM client: the provider chain built from its config (metrics,
 * breakers), per-loop state, and what /health and metrics read of it. */
#define _GNU_SOURCE
#include "llm/llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "http/client.h"
#include "llm/stream.h"

static const char *const outcome_names[OUT_COUNT] = { "ok", "retry", "error", "timeout",
                                                      "breaker_open", "refused" };

void llm_reply_free(struct llm_reply *r)
{
    if (!r)
        return;
    llm_reply_clear(r);
    free(r);
}

struct llm_loop *llm_loop_state(struct llm *l, struct loop *loop)
{
    int id = loop_id(loop);
    if (id < 0 || id >= LLM_MAX_LOOPS)
        return NULL;
    struct llm_loop *ll = l->loops[id];
    if (ll)
        return ll->loop == loop ? ll : NULL;
    ll = calloc(1, sizeof *ll);
    if (!ll)
        return NULL;
    ll->loop = loop;
    if (l->nprov && !(ll->cl = http_client_new(loop))) {
        free(ll);
        return NULL;
    }
    if (ll->cl && l->cfg.max_connections > 0)
        http_client_set_max_connections(ll->cl, l->cfg.max_connections);
    l->loops[id] = ll;
    return ll;
}

char *llm_join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

struct llm *llm_new(const struct llm_config *cfg, const struct llm_local_model *local,
                    struct agentd_error *e)
{
    if (cfg->builtin && (!local || !local->plan || !local->name)) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "AGENTD_LLM=builtin needs a local model");
        return NULL;
    }
    struct llm *l = calloc(1, sizeof *l);
    if (!l || llm_config_copy(&l->cfg, cfg) != 0) {
        free(l);
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        return NULL;
    }
    static const char *const outcome_labels[] = { "provider", "model", "outcome", NULL };
    static const char *const pm_labels[] = { "provider", "model", NULL };
    static const char *const tok_labels[] = { "provider", "model", "kind", NULL };
    static const char *const p_labels[] = { "provider", NULL };
    struct metric *m_req = metric_register("agentd_llm_requests_total",
                                           "LLM attempts by provider, model and outcome",
                                           METRIC_COUNTER, outcome_labels, NULL);
    struct metric *m_dur = metric_register("agentd_llm_request_duration_seconds",
                                           "LLM HTTP attempt duration by provider",
                                           METRIC_HISTOGRAM, p_labels, METRICS_BUCKETS_LATENCY);
    struct metric *m_tok = metric_register("agentd_llm_tokens_total",
                                           "LLM tokens by provider, model and kind (prompt|completion)",
                                           METRIC_COUNTER, tok_labels, NULL);
    struct metric *m_cost = metric_register("agentd_llm_cost_usd_total",
                                            "LLM cost in USD from the configured prices",
                                            METRIC_COUNTER, pm_labels, NULL);
    struct metric *m_state = metric_register("agentd_llm_breaker_state",
                                             "LLM circuit breaker: 0 closed, 1 half-open, 2 open",
                                             METRIC_GAUGE, p_labels, NULL);
    if (l->cfg.builtin) {
        l->local = *local;
        const char *v[] = { "builtin", local->name, "ok" };
        l->m_local_ok = m_req ? metric_child(m_req, v) : NULL;
        return l;
    }
    l->nprov = l->cfg.n_providers;
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        p->cfg = &l->cfg.providers[i];
        llm_breaker_init(&p->breaker, l->cfg.breaker_failures, l->cfg.breaker_cooldown_ms);
        p->endpoint = llm_join(p->cfg->url, "/chat/completions");
        p->auth = p->cfg->api_key ? llm_join("Authorization: Bearer ", p->cfg->api_key) : NULL;
        if (!p->endpoint || (p->cfg->api_key && !p->auth) || llm_provider_request_init(p) != 0) {
            llm_free(l);
            agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
            return NULL;
        }
        for (int o = 0; o < OUT_COUNT; o++) {
            const char *v[] = { p->cfg->name, p->cfg->model, outcome_names[o] };
            p->m_outcome[o] = metric_child(m_req, v);
        }
        const char *pv[] = { p->cfg->name };
        const char *pmv[] = { p->cfg->name, p->cfg->model };
        const char *tp[] = { p->cfg->name, p->cfg->model, "prompt" };
        const char *tc[] = { p->cfg->name, p->cfg->model, "completion" };
        p->m_duration = metric_child(m_dur, pv);
        p->m_prompt = metric_child(m_tok, tp);
        p->m_completion = metric_child(m_tok, tc);
        p->m_cost = metric_child(m_cost, pmv);
        p->m_state = metric_child(m_state, pv);
        llm_provider_gauge(p);
    }
    return l;
}

void llm_free(struct llm *l)
{
    if (!l)
        return;
    for (int i = 0; i < LLM_MAX_LOOPS; i++) {
        struct llm_loop *ll = l->loops[i];
        if (!ll)
            continue;
        while (ll->calls)
            llm_call_free(ll->calls);
        llm_probe_free(ll->probe);
        while (ll->nspare > 0)
            curl_easy_cleanup(ll->spare[--ll->nspare]);
        http_client_free(ll->cl);
        json_decref(ll->tools_key);
        free(ll->tools_text);
        free(ll);
    }
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        llm_breaker_destroy(&p->breaker);
        free(p->endpoint);
        free(p->body_head);
        for (int k = 0; k < 2; k++) {
            for (struct curl_slist *h = p->hdrs[k]; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data)); /* one holds the key */
            curl_slist_free_all(p->hdrs[k]);
        }
        if (p->auth) {
            explicit_bzero(p->auth, strlen(p->auth));
            free(p->auth);
        }
    }
    llm_config_free(&l->cfg);
    free(l);
}

int llm_provider_count(const struct llm *l) { return l->nprov ? l->nprov : 1; }

const char *llm_provider_name(const struct llm *l, int i)
{
    if (!l->nprov)
        return i == 0 ? "builtin" : NULL;
    return i >= 0 && i < l->nprov ? l->prov[i].cfg->name : NULL;
}

const char *llm_provider_model(const struct llm *l, int i)
{
    if (!l->nprov)
        return i == 0 ? l->local.name : NULL;
    return i >= 0 && i < l->nprov ? l->prov[i].cfg->model : NULL;
}

const char *llm_provider_breaker(const struct llm *l, int i)
{
    if (!l->nprov || i < 0 || i >= l->nprov)
        return "closed";
    /* the breaker's mutex is not const, the state read is */
    struct llm_breaker *b = (struct llm_breaker *)&l->prov[i].breaker;
    switch (llm_breaker_state(b, clock_mono_ms())) {
    case LLM_BREAKER_OPEN: return "open";
    case LLM_BREAKER_HALF_OPEN: return "half_open";
    default: return "closed";
    }
}

int llm_is_builtin(const struct llm *l) { return l->nprov == 0; }

const char *llm_provider_state(const struct llm *l, int i, int *http_status)
{
    if (http_status)
        *http_status = 0;
    if (!l->nprov)
        return i == 0 ? "ok" : NULL; /* the local model has nothing to refuse */
    if (i < 0 || i >= l->nprov)
        return NULL;
    const struct provider *p = &l->prov[i];
    int st = atomic_load(&p->state);
    if (st == PS_UNAUTHORIZED || st == PS_MODEL) {
        if (http_status)
            *http_status = atomic_load(&p->state_status);
        return st == PS_UNAUTHORIZED ? "unauthorized" : "model_not_found";
    }
    const char *b = llm_provider_breaker(l, i);
    if (strcmp(b, "closed") != 0)
        return b; /* "open" | "half_open" */
    return st == PS_OK ? "ok" : "unknown";
}

const char *llm_provider_host(const struct llm *l, int i, char *out, size_t len)
{
    if (len)
        out[0] = 0;
    if (l->nprov && i >= 0 && i < l->nprov)
        llm_url_host(l->prov[i].cfg->url, out, len);
    return out;
}
