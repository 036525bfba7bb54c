/* /testing/ routes. GET /testing/sleep?ms=N answers after N ms from a loop
 * timer: a deferred reply that holds a request in flight, which the drain,
 * timeout and concurrency tests need before real slow routes exist.
 * GET /testing/routes lists the routing table the binary serves, so a test
 * can hold the OpenAPI document (src/api/openapi.json) to it. */
#include "api/testing.h"
#include "core/config.h"
#include "http/server.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "core/loop.h"

static const struct config *conf;

int testing_authorized(struct http_req *r)
{
    const char *got = http_req_header(r, "Simulation-Secret");
    const char *want = conf ? conf->simulation_secret : NULL;
    if (want && got && strlen(got) == strlen(want) && CRYPTO_memcmp(got, want, strlen(want)) == 0)
        return 1;
    http_reply_error(r, 403, "forbidden", "missing or wrong Simulation-Secret header");
    return 0;
}

struct sleeper {
    struct http_req *r;
    struct event *timer;
    long ms;
};

static void wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct sleeper *s = arg;
    struct http_req *r = s->r;
    long ms = s->ms;
    r->on_abort = NULL;
    event_free(s->timer);
    free(s);
    http_reply_json(r, 200, json_pack("{s:s,s:i}", "status", "awake", "slept_ms", (int)ms));
}

static void sleeper_abort(struct http_req *r, void *ud)
{
    (void)r;
    struct sleeper *s = ud;
    event_free(s->timer);
    free(s);
}

static void sleep_handler(struct http_req *r)
{
    if (!testing_authorized(r))
        return;
    const char *q = r->query ? strstr(r->query, "ms=") : NULL;
    char *end = NULL;
    long ms = q ? strtol(q + 3, &end, 10) : -1;
    if (!q || end == q + 3 || ms < 0 || ms > 120000) {
        http_reply_error(r, 400, "invalid_request", "ms must be an integer in [0, 120000]");
        return;
    }
    struct sleeper *s = calloc(1, sizeof *s);
    if (s)
        s->timer = evtimer_new(loop_base(r->loop), wake, s);
    if (!s || !s->timer) {
        free(s);
        http_reply_error(r, 503, "out_of_memory", "cannot schedule");
        return;
    }
    s->r = r;
    s->ms = ms;
    r->on_abort = sleeper_abort;
    r->abort_ud = s;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(s->timer, &tv);
}

/* {"routes":[{"path":"/chat/sessions/{id}","methods":["GET","HEAD"]},...]}:
 * what the router matches, HEAD included where GET implies it. */
static void routes_handler(struct http_req *r)
{
    if (!testing_authorized(r))
        return;
    const struct router *rt = http_server_router(r->srv);
    json_t *list = json_array();
    for (int i = 0; list && i < router_count(rt); i++) {
        const struct route *ro = router_at(rt, i);
        unsigned m = route_methods(ro);
        if (m & HTTP_GET)
            m |= HTTP_HEAD;
        json_t *methods = json_array();
        for (unsigned bit = 1; bit <= HTTP_OPTIONS; bit <<= 1)
            if (m & bit)
                json_array_append_new(methods, json_string(http_method_name((enum http_method)bit)));
        json_array_append_new(list, json_pack("{s:s,s:o}", "path", route_template(ro), "methods",
                                              methods));
    }
    http_reply_json(r, 200, json_pack("{s:o}", "routes", list));
}

int testing_routes(struct router *rt, const struct config *cfg)
{
    conf = cfg;
    if (!cfg->simulation_secret)
        return 0;
    static const struct router_route routes[] = {
        { HTTP_GET, "/testing/sleep", sleep_handler },
        { HTTP_GET, "/testing/routes", routes_handler },
    };
    return router_add_table(rt, routes, sizeof routes / sizeof routes[0], NULL);
}
