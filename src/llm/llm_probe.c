/* The start-up check (AGENTD_LLM_STARTUP_CHECK): GET {url}/models per
 * provider on the loop, refusals recorded in the provider's state. */
#define _GNU_SOURCE
#include "llm/llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "http/client.h"

struct probe_one {
    struct llm_probe *pr;
    int i;
    CURL *easy;
    char *url;
    struct buf body;
};

struct llm_probe {
    struct llm *llm;
    struct llm_loop *ll;
    llm_probe_done_fn done;
    void *ud;
    int left, refused;
    struct buf report;
    struct event *ev;              /* finishes a probe that had nothing to wait for */
    struct probe_one one[LLM_MAX_PROVIDERS];
};

void llm_probe_free(struct llm_probe *pr)
{
    if (!pr)
        return;
    for (int i = 0; i < LLM_MAX_PROVIDERS; i++) {
        struct probe_one *o = &pr->one[i];
        if (o->easy) {
            http_client_remove(pr->ll->cl, o->easy);
            curl_easy_cleanup(o->easy);
        }
        free(o->url);
        buf_free(&o->body);
    }
    if (pr->ev)
        event_free(pr->ev);
    buf_free(&pr->report);
    if (pr->ll && pr->ll->probe == pr)
        pr->ll->probe = NULL;
    free(pr);
}

static void probe_finish(struct llm_probe *pr)
{
    llm_probe_done_fn done = pr->done;
    void *ud = pr->ud;
    int refused = pr->refused;
    char report[1024];
    snprintf(report, sizeof report, "%s", pr->report.data ? pr->report.data : "");
    llm_probe_free(pr);
    done(refused, report, ud);
}

static void probe_finish_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    probe_finish(arg);
}

static void probe_note(struct llm_probe *pr, enum log_level lvl, const struct provider *p,
                       long status, const char *what)
{
    if (lvl > LOG_INFO)
        buf_printf(&pr->report, "%s%s", pr->report.len ? "; " : "", what);
    struct logline l;
    if (!log_begin(&l, lvl, "llm start-up check"))
        return;
    char host[128];
    log_str(&l, "provider", p->cfg->name);
    log_str(&l, "model", p->cfg->model);
    log_str(&l, "host", llm_url_host(p->cfg->url, host, sizeof host));
    if (status)
        log_int(&l, "http_status", status);
    log_str(&l, lvl > LOG_INFO ? "error" : "result", what);
    log_end(&l);
}

/* Does GET /models list the model? (-1: the answer is not such a list) */
static int lists_model(const struct buf *b, const char *model)
{
    json_t *o = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    json_t *data = json_object_get(o, "data");
    int found = json_is_array(data) ? 0 : -1;
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id && strcmp(id, model) == 0)
            found = 1;
    }
    json_decref(o);
    return found;
}

static size_t probe_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct probe_one *o = ud;
    size_t n = size * nmemb;
    if (o->body.len + n > (4u << 20))
        return 0; /* a models list past 4 MB is not one */
    buf_append(&o->body, ptr, n);
    return o->body.oom ? 0 : n;
}

static void probe_done_one(CURL *easy, CURLcode res, void *ud)
{
    struct probe_one *o = ud;
    struct llm_probe *pr = o->pr;
    struct provider *p = &pr->llm->prov[o->i];
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char what[400];
    enum llm_refusal rf = res == CURLE_OK ? llm_http_refusal(status, o->body.data, o->body.len)
                                          : LLM_REFUSAL_NONE;
    if (res != CURLE_OK) {
        /* a flaky network must not keep a replica from starting: say so */
        snprintf(what, sizeof what, "provider '%s' did not answer the start-up check: %s",
                 p->cfg->name, curl_easy_strerror(res));
        probe_note(pr, LOG_WARN, p, 0, what);
    } else if (status >= 200 && status < 300) {
        llm_provider_set_state(p, PS_OK, status);
        if (lists_model(&o->body, p->cfg->model) == 0) {
            snprintf(what, sizeof what, "provider '%s' does not list model '%s' (GET /models): "
                     "calls may fail; check its model name", p->cfg->name, p->cfg->model);
            probe_note(pr, LOG_WARN, p, status, what);
        } else
            probe_note(pr, LOG_INFO, p, status, "ok");
    } else if (rf == LLM_REFUSAL_KEY || rf == LLM_REFUSAL_ACCESS) {
        llm_refusal_text(p, status, rf, what, sizeof what);
        llm_provider_set_state(p, PS_UNAUTHORIZED, status); /* probe_note logs it */
        probe_note(pr, LOG_ERROR, p, status, what);
        pr->refused++;
    } else {
        /* 404: many OpenAI-compatible servers have no /models: not a verdict */
        snprintf(what, sizeof what, "provider '%s' answered the start-up check (GET /models) with "
                 "HTTP %ld: not checked", p->cfg->name, status);
        probe_note(pr, LOG_WARN, p, status, what);
    }
    curl_easy_cleanup(easy);
    o->easy = NULL;
    if (--pr->left == 0)
        probe_finish(pr);
}

int llm_probe(struct llm *l, struct loop *loop, llm_probe_done_fn done, void *ud)
{
    if (!l || !loop || !done || !l->nprov)
        return AGENTD_EINVAL;
    struct llm_loop *ll = llm_loop_state(l, loop);
    if (!ll)
        return AGENTD_ENOMEM;
    if (ll->probe)
        return AGENTD_EBUSY;
    struct llm_probe *pr = calloc(1, sizeof *pr);
    if (!pr || !(pr->ev = evtimer_new(loop_base(loop), probe_finish_ev, pr))) {
        free(pr);
        return AGENTD_ENOMEM;
    }
    pr->llm = l;
    pr->ll = ll;
    pr->done = done;
    pr->ud = ud;
    ll->probe = pr;
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        struct probe_one *o = &pr->one[i];
        o->pr = pr;
        o->i = i;
        CURL *e = (o->url = llm_join(p->cfg->url, "/models")) ? curl_easy_init() : NULL;
        if (!e) {
            probe_note(pr, LOG_WARN, p, 0, "out of memory starting the start-up check");
            continue;
        }
        int64_t t = p->cfg->timeout_ms;
        curl_easy_setopt(e, CURLOPT_URL, o->url);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs[0]); /* the key, as calls send it */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t < CONNECT_TIMEOUT_MS ? t : CONNECT_TIMEOUT_MS));
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "agentd");
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        llm_easy_transport(e, p->cfg, 0);
        o->easy = e;
        pr->left++;
        if (http_client_add(ll->cl, e, probe_done_one, o) != 0) {
            curl_easy_cleanup(e);
            o->easy = NULL;
            pr->left--;
            probe_note(pr, LOG_WARN, p, 0, "could not start the start-up check");
        }
    }
    if (pr->left == 0) { /* nothing started: answer from the loop, never inside this call */
        struct timeval zero = { 0, 0 };
        evtimer_add(pr->ev, &zero);
    }
    return 0;
}
