/* Router: method + path template ("/checkout-sessions/{id}/complete") to a
 * handler. Templates give bounded metric labels; {name} matches exactly one
 * non-empty path segment. Literal segments beat parameters. Pure: no I/O. */
#ifndef AGENTD_HTTP_ROUTER_H
#define AGENTD_HTTP_ROUTER_H

#include <stddef.h>

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_POST = 1 << 1,
    HTTP_PUT = 1 << 2,
    HTTP_DELETE = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_HEAD = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_MAX_PARAMS 4
#define ROUTER_MAX_PATH 2048

struct http_req;
typedef void (*http_handler)(struct http_req *r);

struct route;
struct router;

struct route_match {
    const struct route *route; /* NULL when status != 0 */
    int status;                /* 0 matched, 404 no such path, 405 wrong method */
    unsigned allow;            /* 405: methods the path accepts */
    int nparams;
    const char *names[ROUTER_MAX_PARAMS];
    const char *values[ROUTER_MAX_PARAMS]; /* point into `path` below */
    char path[ROUTER_MAX_PATH];
};

struct router *router_new(void);
void router_free(struct router *rt);

/* methods: a mask of enum http_method. GET routes also answer HEAD.
 * Returns 0, AGENTD_EINVAL on a bad template, AGENTD_ENOMEM. */
int router_add(struct router *rt, unsigned methods, const char *tmpl, http_handler h, void *ud);

/* A front's routes as a table: router_add_table() adds them in order, each
 * with the same ud, and returns the first failure (0 when all were added). */
struct router_route {
    unsigned methods;
    const char *tmpl;
    http_handler h;
};
int router_add_table(struct router *rt, const struct router_route *t, size_t n, void *ud);

/* Match a path (no query string). Fills *m; returns m->status. A path that
 * is too long or has too many segments is a 404. */
int router_match(const struct router *rt, enum http_method method, const char *path,
                 struct route_match *m);

const char *route_template(const struct route *r);
http_handler route_handler(const struct route *r);
void *route_ud(const struct route *r);
int route_index(const struct route *r);
/* The methods a route was added with (a mask of enum http_method). */
unsigned route_methods(const struct route *r);
int router_count(const struct router *rt);
const struct route *router_at(const struct router *rt, int i);

/* Value of a path parameter, NULL if absent. */
const char *route_param(const struct route_match *m, const char *name);

/* "GET" for HTTP_GET; "OTHER" for anything unknown. */
const char *http_method_name(enum http_method m);
/* Writes "GET, HEAD, POST" for a mask into buf. */
void http_allow_header(unsigned mask, char *buf, size_t len);

#endif
