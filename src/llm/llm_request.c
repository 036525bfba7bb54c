/* The request a call sends: the body serialized once from the caller's
 * messages (a long conversation borrowed, read in place), each provider's head. */
#define _GNU_SOURCE
#include "llm/llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* jansson's dump callback: its contract is 0 or -1 (not an AGENTD_E* status). */
static int dump_to_buf(const char *s, size_t n, void *ud)
{
    struct buf *b = ud;
    buf_append(b, s, n);
    return b->oom ? -1 : 0;
}

/* The tools array as JSON text, serialized once per loop (see llm_loop). */
static const char *tools_text(struct llm_loop *ll, const json_t *tools, size_t *len)
{
    if (ll->tools_key != tools) {
        struct buf b = { 0 };
        if (json_dump_callback(tools, dump_to_buf, &b, JSON_COMPACT) != 0 || b.oom || !b.data) {
            buf_free(&b);
            return NULL;
        }
        json_decref(ll->tools_key);
        free(ll->tools_text);
        ll->tools_key = json_incref((json_t *)tools);
        ll->tools_text = b.data;
        ll->tools_len = b.len;
    }
    *len = ll->tools_len;
    return ll->tools_text;
}

/* The request body, serialized once, straight from the caller's messages
 * (no copy of them is kept): the first provider's {"model":... head, then
 * "messages", "tools" (the cached text), "tool_choice", "max_tokens",
 * "stream". A fallback swaps the head (llm_request_for_provider). */
int llm_request_build(struct llm_call *c, struct llm_loop *ll, const struct llm_request *req)
{
    const struct provider *p = &c->llm->prov[0];
    struct buf b = { 0 };
    /* a long conversation is borrowed (llm_request_read), a short one copied */
    int borrow = req->messages_json && req->messages_json_len > BODY_INLINE_MAX;
    buf_reserve(&b, p->body_head_len + ll->tools_len + 256 +
                        (req->messages_json && !borrow ? req->messages_json_len : 0));
    buf_append(&b, p->body_head, p->body_head_len);
    size_t rest = b.len;
    buf_puts(&b, ",\"messages\":");
    if (borrow) {
        c->msgs = req->messages_json;
        c->msgs_len = req->messages_json_len;
        c->msgs_at = b.len - rest;
    } else if (req->messages_json)
        buf_append(&b, req->messages_json, req->messages_json_len);
    else if (!req->messages)
        buf_puts(&b, "[]");
    else if (json_dump_callback(req->messages, dump_to_buf, &b, JSON_COMPACT) != 0)
        b.oom = 1;
    if (req->tools && json_is_array(req->tools) && json_array_size(req->tools)) {
        size_t tl = 0;
        const char *tt = tools_text(ll, req->tools, &tl);
        if (!tt)
            b.oom = 1;
        buf_puts(&b, ",\"tools\":");
        buf_append(&b, tt, tl);
        const char *tc = req->tool_choice ? req->tool_choice : "auto";
        if (!strcmp(tc, "auto") || !strcmp(tc, "none") || !strcmp(tc, "required"))
            buf_printf(&b, ",\"tool_choice\":\"%s\"", tc);
        else { /* a tool's name: force that one */
            json_t *name = json_string(tc);
            buf_puts(&b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
            if (!name || json_dump_callback(name, dump_to_buf, &b, JSON_ENCODE_ANY) != 0)
                b.oom = 1;
            json_decref(name);
            buf_puts(&b, "}}");
        }
    }
    if (req->max_tokens > 0)
        buf_printf(&b, ",\"max_tokens\":%d", req->max_tokens);
    if (req->stream) /* usage arrives in a last chunk only when asked for */
        buf_puts(&b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    buf_puts(&b, "}");
    if (b.oom || !b.data) {
        buf_free(&b);
        return AGENTD_ENOMEM;
    }
    char *fit = realloc(b.data, b.len + 1); /* tools text met for the first time */
    c->body = fit ? fit : b.data;
    c->body_len = b.len;
    c->body_rest = rest;
    c->body_prov = 0;
    return 0;
}

/* The body for the current provider: that provider's {"model":... head,
 * then what follows it (the same for every provider), built once by
 * llm_call. Only a fallback to another provider rebuilds it. */
int llm_request_for_provider(struct llm_call *c)
{
    if (c->body && c->body_prov == c->prov)
        return 0;
    const struct provider *p = &c->llm->prov[c->prov];
    size_t rest = c->body_len - c->body_rest;
    char *b = malloc(p->body_head_len + rest + 1);
    if (!b)
        return AGENTD_ENOMEM;
    memcpy(b, p->body_head, p->body_head_len);
    memcpy(b + p->body_head_len, c->body + c->body_rest, rest);
    b[p->body_head_len + rest] = 0;
    free(c->body);
    c->body = b;
    c->body_len = p->body_head_len + rest;
    c->body_rest = p->body_head_len;
    c->body_prov = c->prov;
    return 0;
}

/* A large body, handed to libcurl a piece at a time (BODY_INLINE_MAX). */
size_t llm_request_read(char *dst, size_t size, size_t n, void *ud)
{
    struct llm_call *c = ud;
    if (c->msgs_len && !c->msgs)
        return CURL_READFUNC_ABORT; /* cancelled: the conversation is the caller's again */
    size_t want = size * n, done = 0;
    size_t split = c->body_rest + c->msgs_at, total = c->body_len + c->msgs_len;
    while (done < want && c->body_off < total) {
        size_t off = c->body_off, len;
        const char *src;
        if (off < split) { /* the head and ,"messages": */
            src = c->body + off;
            len = split - off;
        } else if (off < split + c->msgs_len) { /* the borrowed conversation */
            src = c->msgs + (off - split);
            len = split + c->msgs_len - off;
        } else { /* tools and the rest */
            src = c->body + (off - c->msgs_len);
            len = total - off;
        }
        if (len > want - done)
            len = want - done;
        memcpy(dst + done, src, len);
        done += len;
        c->body_off += len;
    }
    return done;
}

/* libcurl rewinds to resend the body (a reused connection found dead). */
int llm_request_seek(void *ud, curl_off_t off, int origin)
{
    struct llm_call *c = ud;
    if (origin != SEEK_SET || off < 0 || (size_t)off > c->body_len + c->msgs_len)
        return CURL_SEEKFUNC_CANTSEEK;
    c->body_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* What every request to this provider starts with: the body's model head
 * and the header lists (curl does not copy a list: these live until
 * llm_free). */
int llm_provider_request_init(struct provider *p)
{
    json_t *m = json_string(p->cfg->model);
    char *model = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    p->body_head = model ? llm_join("{\"model\":", model) : NULL;
    free(model);
    if (!p->body_head)
        return AGENTD_ENOMEM;
    p->body_head_len = strlen(p->body_head);
    static const char *const accept[2] = { "Accept: application/json", "Accept: text/event-stream" };
    for (int k = 0; k < 2; k++) {
        const char *lines[] = { "Content-Type: application/json", accept[k],
                                "Expect:", /* no 100-continue round trip for large conversations */
                                p->auth };
        for (size_t i = 0; i < sizeof lines / sizeof *lines && lines[i]; i++) {
            struct curl_slist *t = curl_slist_append(p->hdrs[k], lines[i]);
            if (!t)
                return AGENTD_ENOMEM;
            p->hdrs[k] = t;
        }
    }
    return 0;
}
