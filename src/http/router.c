/* Router: a flat list of split templates, scanned in order; with tens of
 * routes a scan is cheaper than any tree. The best match is the one with the
 * most literal segments, so /a/{id} and /a/new can coexist. */
#include "http/router.h"
#include "core/err.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct route {
    char *tmpl;
    unsigned methods;
    http_handler handler;
    void *ud;
    int index;
    int nseg;
    char *seg[ROUTER_MAX_SEGMENTS]; /* "{id}" segments are stored as NULL name in lit */
    int is_param[ROUTER_MAX_SEGMENTS];
};

struct router {
    struct route **routes;
    int n, cap;
};

struct router *router_new(void) { return calloc(1, sizeof(struct router)); }

static void route_free(struct route *r)
{
    for (int i = 0; i < r->nseg; i++)
        free(r->seg[i]);
    free(r->tmpl);
    free(r);
}

void router_free(struct router *rt)
{
    if (!rt)
        return;
    for (int i = 0; i < rt->n; i++)
        route_free(rt->routes[i]);
    free(rt->routes);
    free(rt);
}

/* Splits "/a/b/" into segments in place; returns count or AGENTD_EINVAL (too many). */
static int split(char *path, char **seg)
{
    int n = 0;
    char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        if (n == ROUTER_MAX_SEGMENTS)
            return AGENTD_EINVAL;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = 0;
        p = slash + 1;
        /* an empty segment ("//") is kept as "" so it never matches {param} */
    }
    return n;
}

int router_add(struct router *rt, unsigned methods, const char *tmpl, http_handler h, void *ud)
{
    if (!tmpl || tmpl[0] != '/' || strlen(tmpl) >= ROUTER_MAX_PATH)
        return AGENTD_EINVAL;
    if (methods & HTTP_GET)
        methods |= HTTP_HEAD;
    struct route *r = calloc(1, sizeof *r);
    if (!r)
        return AGENTD_ENOMEM;
    r->tmpl = strdup(tmpl);
    char *copy = strdup(tmpl);
    char *segs[ROUTER_MAX_SEGMENTS];
    int n = copy ? split(copy, segs) : AGENTD_ENOMEM;
    if (!r->tmpl || n < 0) {
        int rc = !r->tmpl || n == AGENTD_ENOMEM ? AGENTD_ENOMEM : AGENTD_EINVAL;
        free(copy);
        route_free(r);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(segs[i]);
        if (len >= 3 && segs[i][0] == '{' && segs[i][len - 1] == '}') {
            r->is_param[i] = 1;
            r->seg[i] = strndup(segs[i] + 1, len - 2);
        } else {
            r->seg[i] = strdup(segs[i]);
        }
        r->nseg++;
        if (!r->seg[i]) {
            free(copy);
            route_free(r);
            return AGENTD_ENOMEM;
        }
    }
    free(copy);
    if (rt->n == rt->cap) {
        int cap = rt->cap ? rt->cap * 2 : 16;
        struct route **routes = realloc(rt->routes, (size_t)cap * sizeof *routes);
        if (!routes) {
            route_free(r);
            return AGENTD_ENOMEM;
        }
        rt->routes = routes;
        rt->cap = cap;
    }
    r->methods = methods;
    r->handler = h;
    r->ud = ud;
    r->index = rt->n;
    rt->routes[rt->n++] = r;
    return 0;
}

int router_add_table(struct router *rt, const struct router_route *t, size_t n, void *ud)
{
    for (size_t i = 0; i < n; i++) {
        int rc = router_add(rt, t[i].methods, t[i].tmpl, t[i].h, ud);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The number of literal segments matched, or AGENTD_ENOTFOUND (no match). */
static int score(const struct route *r, char **seg, int nseg)
{
    if (r->nseg != nseg)
        return AGENTD_ENOTFOUND;
    int lits = 0;
    for (int i = 0; i < nseg; i++) {
        if (r->is_param[i]) {
            if (!seg[i][0])
                return AGENTD_ENOTFOUND;
        } else if (strcmp(r->seg[i], seg[i]) != 0) {
            return AGENTD_ENOTFOUND;
        } else {
            lits++;
        }
    }
    return lits;
}

int router_match(const struct router *rt, enum http_method method, const char *path,
                 struct route_match *m)
{
    memset(m, 0, offsetof(struct route_match, path));
    m->status = 404;
    size_t len = strlen(path);
    if (len >= sizeof m->path)
        return m->status;
    memcpy(m->path, path, len + 1);
    char *seg[ROUTER_MAX_SEGMENTS];
    int nseg = split(m->path, seg);
    if (nseg < 0)
        return m->status;
    const struct route *best = NULL;
    int best_score = -1;
    for (int i = 0; i < rt->n; i++) {
        const struct route *r = rt->routes[i];
        int s = score(r, seg, nseg);
        if (s < 0)
            continue;
        m->allow |= r->methods;
        if ((r->methods & (unsigned)method) && s > best_score) {
            best = r;
            best_score = s;
        }
    }
    if (best) {
        m->route = best;
        m->status = 0;
        for (int i = 0; i < best->nseg && m->nparams < ROUTER_MAX_PARAMS; i++)
            if (best->is_param[i]) {
                m->names[m->nparams] = best->seg[i];
                m->values[m->nparams++] = seg[i];
            }
    } else if (m->allow) {
        m->status = 405;
    }
    return m->status;
}

const char *route_param(const struct route_match *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}

const char *route_template(const struct route *r) { return r->tmpl; }
http_handler route_handler(const struct route *r) { return r->handler; }
void *route_ud(const struct route *r) { return r->ud; }
int route_index(const struct route *r) { return r->index; }
unsigned route_methods(const struct route *r) { return r->methods; }
int router_count(const struct router *rt) { return rt->n; }
const struct route *router_at(const struct router *rt, int i) { return rt->routes[i]; }

static const struct { enum http_method m; const char *name; } methods[] = {
    { HTTP_GET, "GET" },       { HTTP_HEAD, "HEAD" },   { HTTP_POST, "POST" },
    { HTTP_PUT, "PUT" },       { HTTP_PATCH, "PATCH" }, { HTTP_DELETE, "DELETE" },
    { HTTP_OPTIONS, "OPTIONS" },
};

const char *http_method_name(enum http_method m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].m == m)
            return methods[i].name;
    return "OTHER";
}

void http_allow_header(unsigned mask, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (!(mask & methods[i].m))
            continue;
        size_t need = strlen(methods[i].name) + (n ? 2 : 0);
        if (n + need + 1 > len)
            break;
        if (n) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }
        memcpy(buf + n, methods[i].name, strlen(methods[i].name));
        n += strlen(methods[i].name);
        buf[n] = 0;
    }
}
