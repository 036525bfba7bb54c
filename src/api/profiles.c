/* Platform profile fetcher for UCP negotiation: cache, per-loop fetches on
 * http_client (http/client.h) with the SSRF guard in CURLOPT_OPENSOCKETFUNCTION, metrics. */
#define _GNU_SOURCE
#include "api/profiles.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/netguard.h"
#include "http/client.h"
#include "version.h"

#define PROFILES_MAX_LOOPS 1024

void profiles_options_default(struct profiles_options *o)
{
    *o = (struct profiles_options){
        .timeout_ms = 2000,
        .max_body = 256 * 1024,
        .cache_cap = 1024,
        .ttl_default_ms = 300 * 1000,
        .ttl_max_ms = 3600 * 1000,
        .ttl_fail_ms = 30 * 1000,
        .max_fetches_per_loop = 64,
    };
}

/* ---- Cache-Control ---- */

int64_t profiles_ttl_ms(const char *cc, const struct profiles_options *o)
{
    if (!cc)
        return o->ttl_default_ms;
    int64_t best = -1; /* seconds; the smallest max-age seen */
    const char *p = cc;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t nlen = (size_t)(p - name);
        while (*p == ' ' || *p == '\t')
            p++;
        const char *val = NULL;
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            int quoted = *p == '"';
            if (quoted)
                p++;
            val = p;
            while (*p && (quoted ? *p != '"' : (*p != ',' && *p != ' ' && *p != '\t')))
                p++;
            vlen = (size_t)(p - val);
            if (quoted && *p == '"')
                p++;
        }
        while (*p && *p != ',') /* skip junk up to the next directive */
            p++;
        if ((nlen == 8 && strncasecmp(name, "no-store", 8) == 0) ||
            (nlen == 8 && strncasecmp(name, "no-cache", 8) == 0))
            return 0;
        if (nlen == 7 && strncasecmp(name, "max-age", 7) == 0 && val && vlen) {
            int64_t v = 0;
            size_t i = 0;
            for (; i < vlen && val[i] >= '0' && val[i] <= '9'; i++)
                if (v < INT64_MAX / 1000 / 10) /* saturate: anything huge is capped anyway */
                    v = v * 10 + (val[i] - '0');
            if (i == vlen && (best < 0 || v < best))
                best = v;
        }
    }
    if (best < 0)
        return o->ttl_default_ms;
    int64_t ms = best * 1000;
    return ms > o->ttl_max_ms ? o->ttl_max_ms : ms;
}

/* ---- profile body ---- */

/* The order capability's config.webhook_url (UCP 2026-01-11, platform
 * order config) into neg, when it is an http(s) URL that fits; else none.
 * Whether we may send there is the deliverer's SSRF guard's question. */
static void webhook_from_config(const json_t *cap, struct ucp_negotiated *neg)
{
    const char *url =
        json_string_value(json_object_get(json_object_get(cap, "config"), "webhook_url"));
    if (url && strlen(url) < sizeof neg->webhook_url &&
        (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7)))
        snprintf(neg->webhook_url, sizeof neg->webhook_url, "%s", url);
}

/* capabilities as an array of {name, version, config}, or keyed by name
 * ({"dev.ucp.shopping.order": [{version, config}]} or {version, config}) */
static void webhook_from_caps(const json_t *caps, struct ucp_negotiated *neg)
{
    neg->webhook_url[0] = 0;
    size_t i;
    const json_t *cap;
    if (json_is_object(caps)) {
        const json_t *entry = json_object_get(caps, UCP_CAP_ORDER_NAME);
        webhook_from_config(json_is_array(entry) ? json_array_get(entry, 0) : entry, neg);
        return;
    }
    json_array_foreach(caps, i, cap) {
        const char *name = json_string_value(json_object_get(cap, "name"));
        if (name && strcmp(name, UCP_CAP_ORDER_NAME) == 0) {
            webhook_from_config(cap, neg);
            return;
        }
    }
}

int profiles_parse(const char *body, size_t len, struct ucp_negotiated *neg,
                   struct agentd_error *e)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    if (!doc)
        return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, "invalid JSON at line %d, column %d: %s",
                           je.line, je.column, je.text);
    int rc = 0;
    const json_t *ucp = json_object_get(doc, "ucp");
    const json_t *caps = json_object_get(ucp, "capabilities");
    struct agentd_error ne = { 0 };
    if (!json_is_object(doc))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "$", "the profile is not a JSON object");
    else if (!json_is_object(ucp))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "$.ucp", "the profile has no ucp object");
    else if (!json_is_array(caps) && !json_is_object(caps))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "$.ucp.capabilities",
                         "ucp.capabilities is neither an array nor an object");
    else if ((rc = ucp_negotiate(caps, neg, &ne)) != 0)
        rc = agentd_fail(e, rc, ne.code, ne.path, "negotiation failed: %s", ne.msg);
    if (rc == 0)
        webhook_from_caps(caps, neg);
    json_decref(doc);
    return rc;
}

/* ---- the shared cache: a chained hash plus an insertion-order list ---- */

struct centry {
    struct centry *hnext;          /* bucket chain */
    struct centry *older, *newer;  /* eviction order */
    uint64_t hash;
    int64_t expires_ms;
    struct profiles_cache_entry v;
    char url[];
};

struct profiles_cache {
    pthread_mutex_t mu;
    struct centry **buckets;
    size_t nbuckets, n, cap;
    struct centry *oldest, *newest;
    profiles_clock_fn now;
    void *now_ud;
};

static int64_t mono_now(void *ud)
{
    (void)ud;
    return clock_mono_ms();
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct profiles_cache *profiles_cache_new(size_t cap, profiles_clock_fn now_ms, void *ud)
{
    struct profiles_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = cap ? cap : 1;
    c->nbuckets = 16;
    while (c->nbuckets < c->cap * 2) /* load factor <= 0.5 */
        c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->buckets);
        free(c);
        return NULL;
    }
    c->now = now_ms ? now_ms : mono_now;
    c->now_ud = ud;
    return c;
}

/* Unlinks and frees e; the lock is held. */
static void centry_drop(struct profiles_cache *c, struct centry *e)
{
    struct centry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    c->n--;
    free(e);
}

static struct centry *centry_find(struct profiles_cache *c, const char *url, uint64_t h)
{
    for (struct centry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->url, url) == 0)
            return e;
    return NULL;
}

void profiles_cache_free(struct profiles_cache *c)
{
    if (!c)
        return;
    while (c->oldest)
        centry_drop(c, c->oldest);
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c);
}

int profiles_cache_get(struct profiles_cache *c, const char *url, struct profiles_cache_entry *out)
{
    uint64_t h = fnv1a(url);
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    struct centry *e = centry_find(c, url, h);
    if (e && c->now(c->now_ud) >= e->expires_ms) {
        centry_drop(c, e);
        e = NULL;
    }
    if (e) {
        *out = e->v;
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

int profiles_cache_put(struct profiles_cache *c, const char *url, const struct profiles_cache_entry *v,
                       int64_t ttl_ms)
{
    uint64_t h = fnv1a(url);
    size_t len = strlen(url);
    /* allocate before the lock: the critical section stays short */
    struct centry *n = ttl_ms > 0 ? malloc(sizeof *n + len + 1) : NULL;
    if (ttl_ms > 0 && !n)
        return AGENTD_ENOMEM;
    pthread_mutex_lock(&c->mu);
    struct centry *old = centry_find(c, url, h);
    if (old)
        centry_drop(c, old);
    if (n) {
        if (c->n >= c->cap)
            centry_drop(c, c->oldest);
        memcpy(n->url, url, len + 1);
        n->hash = h;
        n->v = *v;
        n->expires_ms = c->now(c->now_ud) + ttl_ms;
        n->hnext = c->buckets[h & (c->nbuckets - 1)];
        c->buckets[h & (c->nbuckets - 1)] = n;
        n->newer = NULL;
        n->older = c->newest;
        if (c->newest)
            c->newest->newer = n;
        else
            c->oldest = n;
        c->newest = n;
        c->n++;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

size_t profiles_cache_size(struct profiles_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- fetcher state ---- */

/* One loop's fetches; touched only on that loop's thread (and at free). */
struct profiles_loop {
    struct loop *loop;
    struct http_client *cl;
    struct profiles_fetch *fetches;
    int n;
};

struct profiles {
    struct netguard_allowlist allow;
    struct profiles_options opt;
    struct profiles_cache *cache;
    struct metric_child *m[4]; /* by enum profiles_outcome */
    struct profiles_loop *loops[PROFILES_MAX_LOOPS];
};

struct profiles_fetch {
    struct profiles_fetch *prev, *next;
    struct profiles *p;
    struct profiles_loop *pl;
    char *url;
    CURLU *cu;
    CURL *easy;
    struct curl_slist *hdrs;
    int allowlisted;
    char refused[96];         /* what the guard refused last; "" = nothing */
    char *body;
    size_t len;
    int too_large;
    char cc[512];             /* Cache-Control values, joined with ", " */
    size_t cc_len;
    struct profiles_wait *waiters;
};

static _Atomic(struct profiles *) default_profiles;

void profiles_set_default(struct profiles *p) { atomic_store(&default_profiles, p); }
struct profiles *profiles_default(void) { return atomic_load(&default_profiles); }

static const char *const outcome_names[] = { "ok", "cached", "refused", "error" };

struct profiles *profiles_new(const char *allowlist, const struct profiles_options *opt,
                              struct agentd_error *e)
{
    struct profiles *p = calloc(1, sizeof *p);
    if (!p) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        return NULL;
    }
    if (opt)
        p->opt = *opt;
    else
        profiles_options_default(&p->opt);
    int bad = netguard_allowlist_parse(allowlist, &p->allow, NULL, NULL);
    if (bad) {
        if (bad < 0)
            agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        else
            agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_PROFILE_ALLOWLIST",
                        "AGENTD_PROFILE_ALLOWLIST has bad entries");
        profiles_free(p);
        return NULL;
    }
    p->cache = profiles_cache_new(p->opt.cache_cap, NULL, NULL);
    static const char *const labels[] = { "outcome", NULL };
    struct metric *m = metric_register("agentd_ucp_profile_fetch_total",
                                       "UCP platform profile resolutions by outcome (ok, cached, "
                                       "refused by the SSRF guard, error)",
                                       METRIC_COUNTER, labels, NULL);
    for (int i = 0; m && i < 4; i++) {
        const char *v[] = { outcome_names[i] };
        p->m[i] = metric_child(m, v);
    }
    if (!p->cache || !m) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        profiles_free(p);
        return NULL;
    }
    return p;
}

static void count(struct profiles *p, enum profiles_outcome o)
{
    if (p->m[o])
        metric_inc(p->m[o]);
}

static void result_degraded(struct profiles_result *res, enum profiles_outcome o)
{
    res->outcome = o;
    res->degraded = 1;
    ucp_negotiated_all(&res->neg);
}

/* At most 10 warnings a second over the process: distinct hostile URLs
 * must not flood the log (each URL warns once per negative-cache period). */
static int warn_allowed(void)
{
    static _Atomic int64_t window;
    static atomic_int used;
    int64_t now = clock_mono_ms() / 1000;
    int64_t w = atomic_load(&window);
    if (w != now && atomic_compare_exchange_strong(&window, &w, now))
        atomic_store(&used, 0);
    return atomic_fetch_add(&used, 1) < 10;
}

static void warn(const char *url, const char *outcome, const char *reason)
{
    if (!warn_allowed())
        return;
    struct logline l;
    if (!log_begin(&l, LOG_WARN, "ucp platform profile unusable: negotiating with our full capability set"))
        return;
    char *shown = config_redact_url(url); /* a profile URL may carry user:password@ */
    log_str(&l, "profile", shown ? shown : "(url)");
    log_str(&l, "outcome", outcome);
    log_str(&l, "reason", reason);
    log_end(&l);
    free(shown);
}

static void fetch_free(struct profiles_fetch *f)
{
    if (f->easy)
        curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->hdrs);
    if (f->cu)
        curl_url_cleanup(f->cu);
    free(f->body);
    free(f->url);
    free(f);
}

static void fetch_unlink(struct profiles_fetch *f)
{
    struct profiles_loop *pl = f->pl;
    if (f->prev)
        f->prev->next = f->next;
    else
        pl->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    pl->n--;
}

static void wait_link(struct profiles_fetch *f, struct profiles_wait *w, profiles_done_fn done, void *ud)
{
    w->f = f;
    w->done = done;
    w->ud = ud;
    w->prev = NULL;
    w->next = f->waiters;
    if (f->waiters)
        f->waiters->prev = w;
    f->waiters = w;
}

void profiles_cancel(struct profiles_wait *w)
{
    if (!w || !w->f)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->f->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->f = NULL;
}

void profiles_free(struct profiles *p)
{
    if (!p)
        return;
    for (int i = 0; i < PROFILES_MAX_LOOPS; i++) {
        struct profiles_loop *pl = p->loops[i];
        if (!pl)
            continue;
        while (pl->fetches) {
            struct profiles_fetch *f = pl->fetches;
            while (f->waiters)
                profiles_cancel(f->waiters);
            fetch_unlink(f);
            http_client_remove(pl->cl, f->easy);
            fetch_free(f);
        }
        http_client_free(pl->cl);
        free(pl);
    }
    profiles_cache_free(p->cache);
    netguard_allowlist_free(&p->allow);
    free(p);
}

static struct profiles_loop *loop_state(struct profiles *p, struct loop *loop)
{
    int id = loop_id(loop);
    if (id < 0 || id >= PROFILES_MAX_LOOPS)
        return NULL;
    struct profiles_loop *pl = p->loops[id];
    if (pl)
        return pl->loop == loop ? pl : NULL;
    pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    pl->loop = loop;
    if (!(pl->cl = http_client_new(loop))) {
        free(pl);
        return NULL;
    }
    p->loops[id] = pl;
    return pl;
}

/* ---- curl callbacks ---- */

/* The SSRF guard: runs for every address curl is about to connect to,
 * after DNS, so a name that resolves (or rebinds) to an internal address
 * is refused just like a literal one. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct profiles_fetch *f = ud;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!f->allowlisted) {
        socklen_t len = a->addrlen;
        enum netguard_class c = netguard_classify(&a->addr, len);
        if (c != NETGUARD_PUBLIC) {
            char ip[INET6_ADDRSTRLEN] = "?";
            if (a->family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
                struct sockaddr_in in;
                memcpy(&in, &a->addr, sizeof in);
                inet_ntop(AF_INET, &in.sin_addr, ip, sizeof ip);
            } else if (a->family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
                struct sockaddr_in6 in6;
                memcpy(&in6, &a->addr, sizeof in6);
                inet_ntop(AF_INET6, &in6.sin6_addr, ip, sizeof ip);
            }
            snprintf(f->refused, sizeof f->refused, "%s address %s is not on AGENTD_PROFILE_ALLOWLIST",
                     netguard_class_name(c), ip);
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct profiles_fetch *f = ud;
    size_t n = size * nmemb;
    if (n > f->p->opt.max_body - f->len) {
        f->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    char *b = realloc(f->body, f->len + n + 1);
    if (!b)
        return 0;
    f->body = b;
    memcpy(f->body + f->len, data, n);
    f->len += n;
    f->body[f->len] = 0;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct profiles_fetch *f = ud;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        f->cc_len = 0; /* a new response (after a 100 Continue): forget the last */
        f->cc[0] = 0;
        return n;
    }
    static const char name[] = "cache-control:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        const char *v = data + sizeof name - 1;
        size_t vlen = n - (sizeof name - 1);
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        /* too long to keep: treated as absent rather than half read */
        if (f->cc_len + vlen + 3 < sizeof f->cc) {
            if (f->cc_len)
                f->cc[f->cc_len++] = ',';
            memcpy(f->cc + f->cc_len, v, vlen);
            f->cc_len += vlen;
            f->cc[f->cc_len] = 0;
        }
    }
    return n;
}

static void on_done(CURL *easy, CURLcode result, void *ud)
{
    struct profiles_fetch *f = ud;
    struct profiles *p = f->p;
    struct profiles_result res = { 0 };
    struct agentd_error why = { 0 };
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    struct profiles_cache_entry ce = { 0 };
    int64_t ttl = p->opt.ttl_fail_ms;
    if (result == CURLE_OK && status == 200) {
        if (profiles_parse(f->body ? f->body : "", f->len, &res.neg, &why) == 0) {
            res.outcome = PROFILES_OK;
            ce.ok = 1;
            ce.neg = res.neg;
            ttl = profiles_ttl_ms(f->cc_len ? f->cc : NULL, &p->opt);
        } else {
            result_degraded(&res, PROFILES_ERROR);
        }
    } else if (f->refused[0] && result != CURLE_OK) {
        result_degraded(&res, PROFILES_REFUSED);
        agentd_fail(&why, AGENTD_EFORBIDDEN, NULL, NULL, "%s", f->refused);
    } else {
        result_degraded(&res, PROFILES_ERROR);
        if (f->too_large || result == CURLE_FILESIZE_EXCEEDED)
            agentd_fail(&why, AGENTD_ETOOLARGE, NULL, NULL, "the profile is larger than %zu bytes",
                        p->opt.max_body);
        else if (result != CURLE_OK)
            agentd_fail(&why, AGENTD_EUNAVAILABLE, NULL, NULL, "%s", curl_easy_strerror(result));
        else
            agentd_fail(&why, AGENTD_EUNAVAILABLE, NULL, NULL, "HTTP status %ld", status);
    }
    count(p, res.outcome);
    if (res.degraded)
        warn(f->url, outcome_names[res.outcome], why.msg);
    profiles_cache_put(p->cache, f->url, &ce, ttl);
    fetch_unlink(f);
    /* detach every waiter first: a callback may cancel or start others */
    struct profiles_wait *w = f->waiters;
    f->waiters = NULL;
    for (struct profiles_wait *x = w; x; x = x->next)
        x->f = NULL;
    fetch_free(f);
    while (w) {
        struct profiles_wait *next = w->next;
        w->prev = w->next = NULL;
        w->done(&res, w->ud);
        w = next;
    }
}

/* ---- resolve ---- */

/* scheme, host and port (explicit or the scheme's default) of url, by
 * curl's own parser; 0 or AGENTD_EINVAL. The strings are curl_free()d by the caller. */
static int url_split(CURLU *cu, const char *url, char **scheme, char **host, char **port)
{
    *scheme = *host = *port = NULL;
    if (curl_url_set(cu, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(cu, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK ||
        curl_url_get(cu, CURLUPART_HOST, host, 0) != CURLUE_OK ||
        curl_url_get(cu, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        (strcasecmp(*scheme, "http") != 0 && strcasecmp(*scheme, "https") != 0)) {
        curl_free(*scheme);
        curl_free(*host);
        curl_free(*port);
        *scheme = *host = *port = NULL;
        return AGENTD_EINVAL;
    }
    return 0;
}

int profiles_allowlisted(const struct profiles *p, const char *url)
{
    if (!p || !p->allow.n)
        return 0;
    CURLU *cu = curl_url();
    char *scheme, *host, *port;
    int ok = cu && url_split(cu, url, &scheme, &host, &port) == 0;
    int listed = ok && netguard_allowlist_match(&p->allow, host, atoi(port));
    if (ok) {
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
    }
    if (cu)
        curl_url_cleanup(cu);
    return listed;
}

static int fetch_start(struct profiles *p, struct profiles_loop *pl, const char *url,
                       struct profiles_fetch **out, struct agentd_error *e)
{
    struct profiles_fetch *f = calloc(1, sizeof *f);
    if (!f || !(f->url = strdup(url)) || !(f->cu = curl_url()) || !(f->easy = curl_easy_init())) {
        if (f)
            fetch_free(f);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    }
    f->p = p;
    f->pl = pl;
    /* Parse once with curl's own parser and hand curl that parse
     * (CURLOPT_CURLU): the host we match against the allow-list is exactly
     * the host curl connects to. */
    char *scheme, *host, *port;
    if (url_split(f->cu, url, &scheme, &host, &port) != 0) {
        fetch_free(f);
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "not an http(s) URL curl can parse");
    }
    f->allowlisted = netguard_allowlist_match(&p->allow, host, atoi(port));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    CURL *c = f->easy;
    int bad = 0;
    f->hdrs = curl_slist_append(NULL, "Accept: application/json");
    bad |= !f->hdrs;
    bad |= curl_easy_setopt(c, CURLOPT_CURLU, f->cu) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    /* No redirects: a 3xx is a failure, so no second URL escapes the
     * allow-list decision made for the first. */
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->opt.timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->opt.timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    /* A proxy would make the guard see the proxy's address, not the
     * platform's: profile fetches always go direct. */
    bad |= curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK;
    /* A fresh connection per fetch: every connection has passed the guard
     * for this URL, and fetches are rare enough (cached) not to need reuse. */
    bad |= curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->opt.max_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, f) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, f) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, f) != CURLE_OK;
    if (bad || http_client_add(pl->cl, c, on_done, f) != 0) {
        fetch_free(f);
        return agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "cannot start the fetch");
    }
    f->next = pl->fetches;
    if (pl->fetches)
        pl->fetches->prev = f;
    pl->fetches = f;
    pl->n++;
    *out = f;
    return 0;
}

int profiles_resolve(struct profiles *p, struct loop *loop, const char *url,
                     struct profiles_result *res, struct profiles_wait *w, profiles_done_fn done,
                     void *ud)
{
    w->f = NULL;
    w->prev = w->next = NULL;
    if (!p) {
        result_degraded(res, PROFILES_CACHED);
        res->degraded = 0; /* nothing to negotiate with: not a failure */
        return 0;
    }
    struct profiles_cache_entry ce;
    if (profiles_cache_get(p->cache, url, &ce)) {
        count(p, PROFILES_CACHED);
        if (ce.ok) {
            res->outcome = PROFILES_CACHED;
            res->degraded = 0;
            res->neg = ce.neg;
        } else {
            result_degraded(res, PROFILES_CACHED);
        }
        return 0;
    }
    struct profiles_loop *pl = loop_state(p, loop);
    struct agentd_error why = { 0 };
    if (pl) {
        for (struct profiles_fetch *f = pl->fetches; f; f = f->next)
            if (strcmp(f->url, url) == 0) {
                count(p, PROFILES_CACHED);
                wait_link(f, w, done, ud);
                return PROFILES_PENDING;
            }
        if (pl->n >= p->opt.max_fetches_per_loop) {
            agentd_fail(&why, AGENTD_EBUSY, NULL, NULL, "%d profile fetches in flight on this loop",
                        p->opt.max_fetches_per_loop);
        } else {
            struct profiles_fetch *f = NULL;
            if (fetch_start(p, pl, url, &f, &why) == 0) {
                wait_link(f, w, done, ud);
                return PROFILES_PENDING;
            }
        }
    } else {
        agentd_fail(&why, AGENTD_ENOMEM, NULL, NULL, "cannot set up a fetcher on this loop");
    }
    /* Nothing was fetched, so nothing is cached: the next request tries. */
    count(p, PROFILES_ERROR);
    warn(url, "error", why.msg);
    result_degraded(res, PROFILES_ERROR);
    return 0;
}
