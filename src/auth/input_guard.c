/* The external input guard: POST {"text","session_id","principal"} to the
 * operator's AGENTD_GUARD_URL, expect {"verdict","reason"}; one transfer per
 * message on the loop's outbound client, so no loop ever waits on it. */
#include "auth/input_guard.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/err.h"
#include "core/loop.h"
#include "http/client.h"
#include "version.h"

#define GUARD_MAX_LOOPS 256
#define GUARD_MAX_REPLY 16384

struct guard_loop {
    struct loop *loop;
    struct http_client *cl;
};

struct input_guard {
    char *url;
    int64_t timeout_ms;
    struct guard_loop *loops[GUARD_MAX_LOOPS]; /* each touched by its own loop only */
};

struct guard_call {
    struct guard_loop *gl;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char *reply;
    size_t len;
    guard_done_fn done;
    void *ud;
};

struct input_guard *input_guard_new(const char *url, int64_t timeout_ms)
{
    struct input_guard *g = calloc(1, sizeof *g);
    if (!g || !(g->url = strdup(url))) {
        free(g);
        return NULL;
    }
    g->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    return g;
}

void input_guard_free(struct input_guard *g)
{
    if (!g)
        return;
    for (int i = 0; i < GUARD_MAX_LOOPS; i++) {
        if (g->loops[i]) {
            http_client_free(g->loops[i]->cl);
            free(g->loops[i]);
        }
    }
    free(g->url);
    free(g);
}

/* this loop's client, made on first use (on the loop thread) */
static struct guard_loop *loop_state(struct input_guard *g, struct loop *loop)
{
    int id = loop_id(loop);
    if (id < 0 || id >= GUARD_MAX_LOOPS)
        return NULL;
    if (g->loops[id])
        return g->loops[id]->loop == loop ? g->loops[id] : NULL;
    struct guard_loop *gl = calloc(1, sizeof *gl);
    if (!gl)
        return NULL;
    gl->loop = loop;
    if (!(gl->cl = http_client_new(loop))) {
        free(gl);
        return NULL;
    }
    g->loops[id] = gl;
    return gl;
}

static void call_free(struct guard_call *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c->reply);
    free(c);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct guard_call *c = ud;
    size_t n = size * nmemb;
    if (n > GUARD_MAX_REPLY - c->len)
        return 0; /* too large: the transfer fails, the fail mode decides */
    char *b = realloc(c->reply, c->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + c->len, data, n);
    c->reply = b;
    c->len += n;
    b[c->len] = 0;
    return n;
}

/* the verdict in a 2xx reply, else AGENTD_E*; *reason points into j */
static int read_verdict(struct guard_call *c, CURLcode result, json_t **j, const char **reason)
{
    *j = NULL;
    *reason = NULL;
    if (result == CURLE_OPERATION_TIMEDOUT)
        return AGENTD_ETIMEOUT;
    if (result != CURLE_OK)
        return AGENTD_EUNAVAILABLE;
    long code = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299 || !c->reply)
        return AGENTD_EUNAVAILABLE;
    *j = json_loadb(c->reply, c->len, 0, NULL);
    int v = guard_verdict_parse(json_string_value(json_object_get(*j, "verdict")));
    if (v >= 0)
        *reason = json_string_value(json_object_get(*j, "reason"));
    return v >= 0 ? v : AGENTD_EMALFORMED;
}

static void on_done(CURL *easy, CURLcode result, void *ud)
{
    (void)easy;
    struct guard_call *c = ud;
    json_t *j;
    const char *reason;
    int v = read_verdict(c, result, &j, &reason);
    c->done(v, reason, c->ud);
    json_decref(j);
    call_free(c);
}

static char *request_body(const struct guard_request *rq)
{
    json_t *o = json_pack("{s:s,s:s?,s:s}", "text", rq->text, "session_id", rq->session_id,
                          "principal", rq->principal ? rq->principal : "");
    if (o && rq->request_id)
        json_object_set_new(o, "request_id", json_string(rq->request_id));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static int check(void *ud, struct loop *loop, const struct guard_request *rq, guard_done_fn done,
                 void *done_ud, struct guard_call **out)
{
    struct input_guard *g = ud;
    *out = NULL;
    struct guard_loop *gl = loop_state(g, loop);
    struct guard_call *c = gl ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return AGENTD_ENOMEM;
    c->gl = gl;
    c->done = done;
    c->ud = done_ud;
    c->body = request_body(rq);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->easy = curl_easy_init();
    if (!c->body || !c->headers || !c->easy) {
        call_free(c);
        return AGENTD_ENOMEM;
    }
    CURL *e = c->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, g->url) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)g->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c) != CURLE_OK;
    if (bad || http_client_add(gl->cl, e, on_done, c) != 0) {
        call_free(c);
        return AGENTD_EINTERNAL;
    }
    *out = c;
    return 0;
}

static void cancel(struct guard_call *c)
{
    if (!c)
        return;
    http_client_remove(c->gl->cl, c->easy);
    call_free(c);
}

struct guard_external input_guard_external(struct input_guard *g)
{
    return (struct guard_external){ .check = check, .cancel = cancel, .ud = g };
}
