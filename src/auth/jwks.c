/* The JWT verifier on the loops: each loop caches the issuer's JWKS, fetches
 * it (after discovery when no JWKS URL is set) with the outbound client behind
 * the SSRF guard, refetches on an unknown kid at most once per
 * AGENTD_OIDC_JWKS_REFRESH, and resumes the requests that waited for a fetch. */
#include "auth/jwks.h"
#include "auth/gate.h"
#include "auth/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/netguard.h"
#include "http/client.h"
#include "http/server.h"
#include "version.h"

#define JWKS_MAX_LOOPS 256

struct jwks_wait {
    struct jwks_wait *next;
    struct http_req *r;
    char *token;
    unsigned need;
};

struct jwks_fetch {
    struct jwks_loop *jl;
    CURL *easy;
    char *url;
    int discovery;             /* fetching {issuer}/.well-known/openid-configuration */
    int trusted;               /* the operator's host: loopback/private allowed */
    int too_large;
    char refused[160];
    char *body;
    size_t len;
};

struct jwks_loop {
    struct jwks *j;
    struct loop *loop;
    struct http_client *cl;
    struct jwt_keyset *ks;     /* NULL until a fetch succeeded */
    int64_t keys_at_ms;        /* when ks was fetched (monotonic) */
    int64_t attempt_at_ms;     /* last fetch start; 0 = never */
    struct jwks_fetch *fetch;  /* the one fetch in progress, or NULL */
    struct jwks_wait *waiters; /* requests resuming when it ends */
    char *jwks_uri;            /* from discovery */
};

struct jwks {
    const struct config *cfg;
    struct jwt_policy policy;
    char trusted_host[NETGUARD_HOST_MAX + 3]; /* the issuer's (and JWKS URL's) host */
    char trusted_host2[NETGUARD_HOST_MAX + 3];
    struct jwks_loop *loops[JWKS_MAX_LOOPS];
};

static struct metric_child *fetches_ok, *fetches_failed;

/* ---- URLs ---- */

/* the lower-case host of an http(s) URL into out ("" when it has none) */
static void url_host(const char *url, char *out, size_t len)
{
    out[0] = 0;
    CURLU *cu = curl_url();
    char *host = NULL;
    if (cu && curl_url_set(cu, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(cu, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        snprintf(out, len, "%s", host);
        for (char *p = out; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
    curl_free(host);
    curl_url_cleanup(cu);
}

/* the same rule as the configuration's: https, or http to loopback in development */
static int url_allowed(const struct jwks *j, const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return 1;
    if (j->cfg->env == CONFIG_ENV_PRODUCTION || strncmp(url, "http://", 7) != 0)
        return 0;
    char host[NETGUARD_HOST_MAX + 3];
    url_host(url, host, sizeof host);
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* ---- lifecycle ---- */

/* The fetch counter exists from start, JWTs on or not: every documented
 * series is there on a fresh server (a dashboard reads 0, not "no data"). */
static void jwks_metrics_register(void)
{
    static const char *const labels[] = { "outcome", NULL };
    struct metric *m = metric_register("agentd_jwks_fetches_total",
                                       "JWKS and discovery fetches by outcome (ok, failed)",
                                       METRIC_COUNTER, labels, NULL);
    const char *ok[] = { "ok" }, *failed[] = { "failed" };
    fetches_ok = m ? metric_child(m, ok) : NULL;
    fetches_failed = m ? metric_child(m, failed) : NULL;
}

struct jwks *jwks_new(const struct config *cfg, int *oom)
{
    *oom = 0;
    jwks_metrics_register();
    if (!cfg->oidc_issuer)
        return NULL;
    struct jwks *j = calloc(1, sizeof *j);
    if (!j) {
        *oom = 1;
        return NULL;
    }
    j->cfg = cfg;
    j->policy = (struct jwt_policy){ cfg->oidc_issuer, cfg->oidc_audience, cfg->jwt_hs256_secret,
                                     JWT_SKEW_S };
    url_host(cfg->oidc_issuer, j->trusted_host, sizeof j->trusted_host);
    if (cfg->oidc_jwks_url)
        url_host(cfg->oidc_jwks_url, j->trusted_host2, sizeof j->trusted_host2);
    return j;
}

static void fetch_free(struct jwks_fetch *f)
{
    if (!f)
        return;
    if (f->easy)
        curl_easy_cleanup(f->easy);
    free(f->url);
    free(f->body);
    free(f);
}

static void waiters_free(struct jwks_wait *w)
{
    while (w) {
        struct jwks_wait *next = w->next;
        free(w->token);
        free(w);
        w = next;
    }
}

void jwks_free(struct jwks *j)
{
    if (!j)
        return;
    for (int i = 0; i < JWKS_MAX_LOOPS; i++) {
        struct jwks_loop *jl = j->loops[i];
        if (!jl)
            continue;
        if (jl->fetch) {
            http_client_remove(jl->cl, jl->fetch->easy);
            fetch_free(jl->fetch);
        }
        waiters_free(jl->waiters); /* their requests are dropped by http_server_free */
        http_client_free(jl->cl);
        jwt_keyset_free(jl->ks);
        free(jl->jwks_uri);
        free(jl);
    }
    free(j);
}

/* this loop's state, made on first use (on the loop thread: the client is the loop's) */
static struct jwks_loop *loop_state(struct jwks *j, struct loop *loop)
{
    int id = loop_id(loop);
    if (id < 0 || id >= JWKS_MAX_LOOPS)
        return NULL;
    if (j->loops[id])
        return j->loops[id]->loop == loop ? j->loops[id] : NULL;
    struct jwks_loop *jl = calloc(1, sizeof *jl);
    if (!jl)
        return NULL;
    jl->j = j;
    jl->loop = loop;
    if (!(jl->cl = http_client_new(loop))) {
        free(jl);
        return NULL;
    }
    j->loops[id] = jl;
    return jl;
}

/* ---- curl callbacks ---- */

/* The SSRF guard: a discovered jwks_uri on another host may only reach
 * public addresses; the operator's own issuer/JWKS host is trusted config. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct jwks_fetch *f = ud;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    enum netguard_class c = netguard_classify(&a->addr, a->addrlen);
    if (!f->trusted && c != NETGUARD_PUBLIC) {
        snprintf(f->refused, sizeof f->refused, "a %s address is not the issuer's host",
                 netguard_class_name(c));
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct jwks_fetch *f = ud;
    size_t n = size * nmemb;
    if (n > JWKS_MAX_BYTES - f->len) {
        f->too_large = 1;
        return 0;
    }
    char *b = realloc(f->body, f->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + f->len, data, n);
    f->body = b;
    f->len += n;
    b[f->len] = 0;
    return n;
}

static void on_done(CURL *easy, CURLcode result, void *ud);

static int fetch_start(struct jwks_loop *jl, const char *url, int discovery)
{
    struct jwks *j = jl->j;
    struct jwks_fetch *f = calloc(1, sizeof *f);
    if (!f || !(f->url = strdup(url)) || !(f->easy = curl_easy_init())) {
        fetch_free(f);
        return AGENTD_ENOMEM;
    }
    f->jl = jl;
    f->discovery = discovery;
    char host[NETGUARD_HOST_MAX + 3];
    url_host(url, host, sizeof host);
    f->trusted = host[0] && (strcmp(host, j->trusted_host) == 0 ||
                             strcmp(host, j->trusted_host2) == 0);
    CURL *c = f->easy;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)JWKS_FETCH_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK; /* the guard sees the real peer */
    bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)JWKS_MAX_BYTES) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, f) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, f) != CURLE_OK;
    if (bad || http_client_add(jl->cl, c, on_done, f) != 0) {
        fetch_free(f);
        return AGENTD_EINTERNAL;
    }
    jl->fetch = f;
    return 0;
}

/* the JWKS URL: configured, or learnt from discovery (NULL: discover first) */
static const char *jwks_url(struct jwks_loop *jl)
{
    return jl->j->cfg->oidc_jwks_url ? jl->j->cfg->oidc_jwks_url : jl->jwks_uri;
}

static int refresh_start(struct jwks_loop *jl)
{
    jl->attempt_at_ms = clock_mono_ms();
    const char *url = jwks_url(jl);
    if (url)
        return fetch_start(jl, url, 0);
    char disc[1024];
    const char *iss = jl->j->cfg->oidc_issuer;
    size_t n = strlen(iss);
    while (n && iss[n - 1] == '/')
        n--;
    snprintf(disc, sizeof disc, "%.*s/.well-known/openid-configuration", (int)n, iss);
    return fetch_start(jl, disc, 1);
}

/* ---- verdicts ---- */

static void verify_now(struct jwks_loop *jl, struct http_req *r, const char *token,
                       unsigned need, int may_fetch);

static void resume_waiters(struct jwks_loop *jl)
{
    struct jwks_wait *w = jl->waiters;
    jl->waiters = NULL;
    while (w) {
        struct jwks_wait *next = w->next;
        verify_now(jl, w->r, w->token, w->need, 0);
        free(w->token);
        free(w);
        w = next;
    }
}

static void fetch_failed(struct jwks_fetch *f, const char *why)
{
    if (fetches_failed)
        metric_inc(fetches_failed);
    log_msg(LOG_WARN, NULL, "jwks: fetching %s failed: %s", f->url, why);
}

static void on_done(CURL *easy, CURLcode result, void *ud)
{
    struct jwks_fetch *f = ud;
    struct jwks_loop *jl = f->jl;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    jl->fetch = NULL;
    char why[200] = "";
    if (result != CURLE_OK)
        snprintf(why, sizeof why, "%s", f->refused[0] ? f->refused
                                        : f->too_large ? "the document is too large"
                                                       : curl_easy_strerror(result));
    else if (status != 200)
        snprintf(why, sizeof why, "HTTP status %ld", status);
    if (!why[0] && f->discovery) {
        json_t *doc = json_loadb(f->body ? f->body : "", f->len, 0, NULL);
        const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
        const char *named = json_string_value(json_object_get(doc, "issuer"));
        /* OpenID Connect Discovery 1.0, 4.3: a document naming another
         * issuer is not this issuer's; its keys are never fetched */
        if (!named || strcmp(named, jl->j->cfg->oidc_issuer) != 0)
            snprintf(why, sizeof why, "the discovery document names issuer \"%.60s\", not %.60s",
                     named ? named : "", jl->j->cfg->oidc_issuer);
        else if (!uri)
            snprintf(why, sizeof why, "the discovery document has no jwks_uri");
        else if (!url_allowed(jl->j, uri))
            snprintf(why, sizeof why, "jwks_uri must be https://");
        else if (!(jl->jwks_uri = strdup(uri)))
            snprintf(why, sizeof why, "out of memory");
        json_decref(doc);
        if (!why[0] && fetch_start(jl, jl->jwks_uri, 0) == 0) {
            if (fetches_ok)
                metric_inc(fetches_ok);
            fetch_free(f); /* the waiters stay: they wait for the JWKS now */
            return;
        }
    } else if (!why[0]) {
        struct jwt_keyset *ks = NULL;
        struct agentd_error e = { 0 };
        if (jwt_keyset_parse(f->body ? f->body : "", f->len, &ks, &e) != 0) {
            snprintf(why, sizeof why, "%.150s", e.msg[0] ? e.msg : "out of memory");
        } else {
            jwt_keyset_free(jl->ks);
            jl->ks = ks;
            jl->keys_at_ms = clock_mono_ms();
            if (fetches_ok)
                metric_inc(fetches_ok);
            log_msg(LOG_INFO, NULL, "jwks: %zu signing keys from %s", jwt_keyset_count(ks), f->url);
        }
    }
    if (why[0])
        fetch_failed(f, why);
    fetch_free(f);
    resume_waiters(jl);
}

static int wait_for_fetch(struct jwks_loop *jl, struct http_req *r, const char *token,
                          unsigned need)
{
    struct jwks_wait *w = calloc(1, sizeof *w);
    if (!w || !(w->token = strdup(token))) {
        free(w);
        return AGENTD_ENOMEM;
    }
    w->r = r;
    w->need = need;
    w->next = jl->waiters;
    jl->waiters = w;
    return 0;
}

static void verify_now(struct jwks_loop *jl, struct http_req *r, const char *token,
                       unsigned need, int may_fetch)
{
    struct jwks *j = jl->j;
    struct jwt_identity id;
    struct agentd_error e = { 0 };
    int64_t now = clock_mono_ms();
    /* old keys: refetch in the background, keep using them meanwhile */
    if (jl->ks && !jl->fetch && now - jl->keys_at_ms > JWKS_MAX_AGE_MS)
        refresh_start(jl);
    int rc = jwt_verify(token, jl->ks, &j->policy, clock_wall_ms() / 1000, &id, &e);
    if (rc == AGENTD_ENOTFOUND && may_fetch) {
        /* an unknown kid: refetch unless one is running or ran too recently */
        int64_t gap = j->cfg->oidc_jwks_refresh_ms;
        if (!jl->ks && gap > JWKS_RETRY_MS)
            gap = JWKS_RETRY_MS; /* no keys at all: every token is 503 until a fetch works */
        int can = jl->fetch || !jl->attempt_at_ms || now - jl->attempt_at_ms >= gap;
        if (can && (jl->fetch || refresh_start(jl) == 0)) {
            if (wait_for_fetch(jl, r, token, need) == 0)
                return;
            http_reply_err(r, AGENTD_ENOMEM, NULL);
            return;
        }
    }
    if (rc == 0) {
        http_req_note(r, "auth_method", "jwt");
        auth_gate_accept(r, id.principal, id.scopes, need);
    } else if (rc == AGENTD_ENOTFOUND && !jl->ks) {
        /* no keys were ever fetched: the token may be fine, we cannot tell */
        http_set_header(r, "Retry-After", JWKS_RETRY_AFTER);
        http_reply_error(r, 503, "unavailable",
                         "the token signing keys (JWKS) could not be fetched; try again");
    } else if (rc == AGENTD_EINVAL || rc == AGENTD_ENOTFOUND) {
        http_req_note(r, "jwt", e.code[0] ? e.code : "invalid");
        auth_gate_refuse(r, AUTH_FAIL_INVALID, 1, NULL);
    } else {
        http_reply_err(r, rc, NULL);
    }
}

void jwks_verify(struct http_req *r, const char *token, unsigned need, void *ud)
{
    struct jwks_loop *jl = loop_state(ud, r->loop);
    if (!jl) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    verify_now(jl, r, token, need, 1);
}
