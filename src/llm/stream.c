/* Chat Completions reply parsing: whole JSON bodies and SSE streams. The SSE
 * side is a byte-at-a-time state machine so chunk boundaries never matter. */
#define _GNU_SOURCE
#include "llm/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonparse.h"

#define MAX_LINE (1u << 20)        /* one SSE line; a chunk is far smaller */
#define MAX_EVENT (4u << 20)       /* one event's data */
#define MAX_CONTENT (8u << 20)     /* the assembled text */
#define MAX_TOOL_CALLS 32          /* parallel tool calls by index */

struct tool_acc {
    int used;
    char *id;
    struct buf name;
    struct buf args;
};

struct llm_stream {
    llm_delta_fn on_delta;
    void *ud;
    struct buf line;               /* the line being read */
    struct buf data;               /* the event being read: data lines joined by \n */
    int have_data;
    int cr;                        /* the last byte was \r: a \n right after it ends nothing */
    int done, failed;
    struct buf content;
    int have_content;
    struct tool_acc tc[MAX_TOOL_CALLS];
    int ntc;                       /* highest index used + 1 */
    char *finish_reason;
    char *model;
    int64_t prompt_tokens, completion_tokens;
};

void llm_reply_clear(struct llm_reply *r)
{
    if (!r)
        return;
    free(r->content);
    json_decref(r->tool_calls);
    free(r->finish_reason);
    free(r->provider);
    free(r->model);
    memset(r, 0, sizeof *r);
}

struct llm_stream *llm_stream_new(llm_delta_fn on_delta, void *ud)
{
    struct llm_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->on_delta = on_delta;
    s->ud = ud;
    return s;
}

void llm_stream_free(struct llm_stream *s)
{
    if (!s)
        return;
    buf_free(&s->line);
    buf_free(&s->data);
    buf_free(&s->content);
    for (int i = 0; i < MAX_TOOL_CALLS; i++) {
        free(s->tc[i].id);
        buf_free(&s->tc[i].name);
        buf_free(&s->tc[i].args);
    }
    free(s->finish_reason);
    free(s->model);
    free(s);
}

int llm_stream_done(const struct llm_stream *s) { return s->done; }

/* Marks the stream failed: a reply it cannot use (AGENTD_EMALFORMED). fmt
 * has one %s, for arg ("" when NULL). */
static int fail(struct llm_stream *s, struct agentd_error *e, const char *fmt, const char *arg)
{
    s->failed = 1;
    return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, fmt, arg ? arg : "");
}

static void set_str(char **dst, const char *src)
{
    char *d = strdup(src);
    if (d) {
        free(*dst);
        *dst = d;
    }
}

/* The provider's own words from {"error":{"message":...}}; cut short because
 * it ends up in logs and error sentences. */
static void error_message(json_t *e, char *out, size_t len)
{
    const char *msg = NULL;
    if (json_is_object(e))
        msg = json_string_value(json_object_get(e, "message"));
    else if (json_is_string(e))
        msg = json_string_value(e);
    snprintf(out, len, "%.160s", msg ? msg : "unspecified error");
}

static void read_usage(json_t *u, int64_t *prompt, int64_t *completion)
{
    if (!json_is_object(u))
        return;
    json_t *p = json_object_get(u, "prompt_tokens"), *c = json_object_get(u, "completion_tokens");
    if (json_is_integer(p))
        *prompt = json_integer_value(p);
    if (json_is_integer(c))
        *completion = json_integer_value(c);
}

static int apply_tool_delta(struct llm_stream *s, json_t *calls, struct agentd_error *e)
{
    size_t j;
    json_t *d;
    json_array_foreach(calls, j, d) {
        if (!json_is_object(d))
            continue;
        json_t *ix = json_object_get(d, "index");
        /* some servers omit index for a single call: position stands in */
        json_int_t idx = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)j;
        if (idx < 0 || idx >= MAX_TOOL_CALLS)
            return fail(s, e, "tool call index out of range%s", NULL);
        struct tool_acc *t = &s->tc[idx];
        t->used = 1;
        if (idx + 1 > s->ntc)
            s->ntc = (int)idx + 1;
        const char *id = json_string_value(json_object_get(d, "id"));
        if (id && *id)
            set_str(&t->id, id);
        json_t *fn = json_object_get(d, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        /* names normally arrive whole, but appending is right either way */
        if (name)
            buf_puts(&t->name, name);
        if (args)
            buf_puts(&t->args, args);
        if (t->name.oom || t->args.oom || t->args.len > MAX_CONTENT)
            return fail(s, e, "tool call arguments too large%s", NULL);
    }
    return 0;
}

static int dispatch(struct llm_stream *s, struct agentd_error *e)
{
    const char *d = s->data.data ? s->data.data : "";
    size_t n = s->data.len;
    s->have_data = 0;
    if (n == 6 && memcmp(d, "[DONE]", 6) == 0) {
        s->done = 1;
        s->data.len = 0;
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(d, n, 0, &je);
    s->data.len = 0;
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(s, e, "malformed JSON in a stream chunk%s", NULL);
    }
    int rc = 0;
    json_t *eo = json_object_get(o, "error");
    if (eo) {
        char msg[200];
        error_message(eo, msg, sizeof msg);
        rc = fail(s, e, "the provider sent an error event: %s", msg);
        goto out;
    }
    const char *model = json_string_value(json_object_get(o, "model"));
    if (model && !s->model)
        s->model = strdup(model);
    read_usage(json_object_get(o, "usage"), &s->prompt_tokens, &s->completion_tokens);
    json_t *choices = json_object_get(o, "choices");
    size_t i;
    json_t *ch;
    json_array_foreach(choices, i, ch) {
        json_t *ci = json_object_get(ch, "index");
        if (json_is_integer(ci) && json_integer_value(ci) != 0)
            continue; /* we ask for one choice; ignore any other */
        json_t *delta = json_object_get(ch, "delta");
        const char *text = json_string_value(json_object_get(delta, "content"));
        if (text && *text) {
            size_t tl = strlen(text);
            buf_append(&s->content, text, tl);
            s->have_content = 1;
            if (s->content.oom || s->content.len > MAX_CONTENT) {
                rc = fail(s, e, "reply too large%s", NULL);
                goto out;
            }
            if (s->on_delta)
                s->on_delta(text, tl, s->ud);
        }
        json_t *calls = json_object_get(delta, "tool_calls");
        if (json_is_array(calls) && (rc = apply_tool_delta(s, calls, e)) != 0)
            goto out;
        const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
        if (fr)
            set_str(&s->finish_reason, fr);
    }
out:
    json_decref(o);
    return rc;
}

/* One complete line (without its terminator). */
static int on_line(struct llm_stream *s, struct agentd_error *e)
{
    const char *l = s->line.data ? s->line.data : "";
    size_t n = s->line.len;
    int rc = 0;
    if (n == 0) {
        if (s->have_data)
            rc = dispatch(s, e);
    } else if (l[0] != ':') { /* ':' starts a comment (keep-alives) */
        const char *colon = memchr(l, ':', n);
        size_t fl = colon ? (size_t)(colon - l) : n;
        if (fl == 4 && memcmp(l, "data", 4) == 0) {
            const char *v = colon ? colon + 1 : l + n;
            if (v < l + n && *v == ' ')
                v++;
            size_t vl = (size_t)(l + n - v);
            if (s->have_data)
                buf_append(&s->data, "\n", 1);
            buf_append(&s->data, v, vl);
            s->have_data = 1;
            if (s->data.oom || s->data.len > MAX_EVENT)
                rc = fail(s, e, "stream event too large%s", NULL);
        }
        /* event:, id:, retry: carry nothing we need */
    }
    s->line.len = 0;
    return rc;
}

int llm_stream_feed(struct llm_stream *s, const char *data, size_t len, struct agentd_error *e)
{
    if (s->failed)
        return AGENTD_EMALFORMED;
    size_t i = 0;
    while (i < len && !s->done) {
        char c = data[i];
        if (s->cr && c == '\n') { /* the \n of a \r\n that ended the last line */
            s->cr = 0;
            i++;
            continue;
        }
        s->cr = 0;
        if (c == '\n' || c == '\r') {
            s->cr = c == '\r';
            i++;
            int rc = on_line(s, e);
            if (rc != 0)
                return rc;
            continue;
        }
        /* copy the run up to the next terminator in one append */
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        buf_append(&s->line, data + i, j - i);
        if (s->line.oom || s->line.len > MAX_LINE)
            return fail(s, e, "stream line too long%s", NULL);
        i = j;
    }
    return 0;
}

/* Builds one OpenAI-shaped tool call; NULL when the name is missing. */
static json_t *tool_call_json(const char *id, int index, const char *name, const char *args)
{
    if (!name || !*name)
        return NULL;
    char idbuf[32];
    if (!id || !*id) {
        snprintf(idbuf, sizeof idbuf, "call_%d", index + 1);
        id = idbuf;
    }
    return json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function", "name",
                     name, "arguments", args && *args ? args : "{}");
}

int llm_stream_finish(struct llm_stream *s, struct llm_reply *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    if (s->failed) {
        return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, "stream already failed");
    }
    /* a last line without terminator, then an event without blank line */
    int rc;
    if (!s->done && s->line.len && (rc = on_line(s, e)) != 0)
        return rc;
    if (!s->done && s->have_data && (rc = dispatch(s, e)) != 0)
        return rc;
    if (!s->done && !s->finish_reason)
        return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL,
                           "the stream ended early (no [DONE] and no finish_reason)");
    json_t *calls = NULL;
    for (int i = 0; i < s->ntc; i++) {
        struct tool_acc *t = &s->tc[i];
        if (!t->used)
            continue;
        json_t *tc = tool_call_json(t->id, i, t->name.data, t->args.data);
        if (!tc) {
            json_decref(calls);
            return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, "a streamed tool call has no function name");
        }
        if (!calls)
            calls = json_array();
        if (!calls || json_array_append_new(calls, tc)) {
            json_decref(calls);
            return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        }
    }
    out->tool_calls = calls;
    if (s->have_content || !calls)
        out->content = strndup(s->content.data ? s->content.data : "", s->content.len);
    out->finish_reason = strdup(s->finish_reason ? s->finish_reason : (calls ? "tool_calls" : "stop"));
    out->model = s->model ? strdup(s->model) : NULL;
    out->usage.prompt_tokens = s->prompt_tokens;
    out->usage.completion_tokens = s->completion_tokens;
    if ((!out->content && !calls) || !out->finish_reason) {
        llm_reply_clear(out);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    }
    return 0;
}

int llm_reply_parse(const char *body, size_t len, struct llm_reply *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    /* the common reply (ASCII, integers) read in one pass; anything else,
     * and every error's text, is jansson's (core/jsonparse.h) */
    json_error_t je = { 0 };
    json_t *o = jsonparse_loadb(body, len);
    if (!o)
        o = json_loadb(body, len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, "the reply is not JSON: %.80s", je.text);
    }
    int rc = AGENTD_EMALFORMED;
    json_t *eo = json_object_get(o, "error");
    if (eo && !json_is_null(eo)) {
        char msg[200];
        error_message(eo, msg, sizeof msg);
        agentd_fail(e, rc, NULL, NULL, "the provider returned an error: %s", msg);
        goto out;
    }
    json_t *choices = json_object_get(o, "choices");
    json_t *msg = json_object_get(json_array_get(choices, 0), "message");
    if (!json_is_object(msg)) {
        agentd_fail(e, rc, NULL, NULL, "the reply has no choices");
        goto out;
    }
    json_t *content = json_object_get(msg, "content");
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_is_array(calls) && json_array_size(calls)) {
        out->tool_calls = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(calls, i, c) {
            json_t *fn = json_object_get(c, "function");
            json_t *args = json_object_get(fn, "arguments");
            char *dumped = NULL;
            const char *a = json_string_value(args);
            if (!a && json_is_object(args)) /* some servers send an object, not its text */
                a = dumped = json_dumps(args, JSON_COMPACT);
            json_t *tc = tool_call_json(json_string_value(json_object_get(c, "id")), (int)i,
                                        json_string_value(json_object_get(fn, "name")), a);
            free(dumped);
            if (!tc) {
                agentd_fail(e, rc, NULL, NULL, "a tool call has no function name");
                goto out;
            }
            if (!out->tool_calls || json_array_append_new(out->tool_calls, tc)) {
                rc = agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
                goto out;
            }
        }
    }
    if (json_is_string(content))
        out->content = strdup(json_string_value(content));
    else if (!out->tool_calls)
        out->content = strdup("");
    const char *fr = json_string_value(json_object_get(json_array_get(choices, 0), "finish_reason"));
    out->finish_reason = strdup(fr ? fr : (out->tool_calls ? "tool_calls" : "stop"));
    const char *model = json_string_value(json_object_get(o, "model"));
    if (model)
        out->model = strdup(model);
    read_usage(json_object_get(o, "usage"), &out->usage.prompt_tokens,
               &out->usage.completion_tokens);
    if ((!out->content && !out->tool_calls) || !out->finish_reason) {
        rc = agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        llm_reply_clear(out);
    json_decref(o);
    return rc;
}
