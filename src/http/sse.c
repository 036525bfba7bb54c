/* SSE streams: framing is a pure function (unit-tested); a stream is a
 * request in streaming mode plus a heartbeat timer on the request's loop. */
#include "http/sse.h"
#include "core/err.h"
#include "http/server.h"
#include "core/loop.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct sse {
    struct http_req *r;
    struct event *heartbeat;
    struct timeval every;
    void (*on_gone)(struct sse *s, void *ud);
    void *ud;
    int gone;
};

static int has_newline(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

int sse_format(struct buf *out, const char *event, const char *id, const char *data, size_t len)
{
    if (has_newline(event) || has_newline(id))
        return AGENTD_EINVAL;
    if (id) {
        buf_puts(out, "id: ");
        buf_puts(out, id);
        buf_puts(out, "\n");
    }
    if (event) {
        buf_puts(out, "event: ");
        buf_puts(out, event);
        buf_puts(out, "\n");
    }
    /* one data line per payload line; a trailing newline yields a final empty
     * data line, so the client rebuilds the payload byte for byte */
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        buf_puts(out, "data: ");
        buf_append(out, data + i, j - i);
        buf_puts(out, "\n");
        if (j >= len)
            break;
        if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    buf_puts(out, "\n");
    return 0;
}

void sse_format_comment(struct buf *out, const char *text)
{
    buf_puts(out, ": ");
    for (const char *p = text; *p; p++)
        buf_append(out, (*p == '\r' || *p == '\n') ? " " : p, 1);
    buf_puts(out, "\n\n");
}

static void on_gone(struct http_req *r, void *ud)
{
    (void)r;
    struct sse *s = ud;
    s->gone = 1;
    if (s->heartbeat)
        evtimer_del(s->heartbeat);
    if (s->on_gone)
        s->on_gone(s, s->ud);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct sse *s = arg;
    if (sse_comment(s, "keep-alive") == 0)
        evtimer_add(s->heartbeat, &s->every);
}

struct sse *sse_start(struct http_req *r, int heartbeat_ms,
                      void (*gone_cb)(struct sse *s, void *ud), void *ud)
{
    struct sse *s = calloc(1, sizeof *s);
    if (!s) {
        http_reply_error(r, 503, "out_of_memory", "cannot start the event stream");
        return NULL;
    }
    s->r = r;
    s->on_gone = gone_cb;
    s->ud = ud;
    if (heartbeat_ms > 0) {
        s->heartbeat = evtimer_new(loop_base(r->loop), on_heartbeat, s);
        if (!s->heartbeat) {
            free(s);
            http_reply_error(r, 503, "out_of_memory", "cannot start the event stream");
            return NULL;
        }
        s->every.tv_sec = heartbeat_ms / 1000;
        s->every.tv_usec = (heartbeat_ms % 1000) * 1000;
        evtimer_add(s->heartbeat, &s->every);
    }
    http_set_header(r, "X-Accel-Buffering", "no"); /* nginx: do not buffer the stream */
    http_stream_start(r, 200, "text/event-stream; charset=utf-8", on_gone, s);
    return s;
}

static int write_buf(struct sse *s, struct buf *b)
{
    int rc = b->oom ? AGENTD_ENOMEM : http_stream_write(s->r, b->data, b->len);
    buf_free(b);
    return rc;
}

int sse_send(struct sse *s, const char *event, const char *id, const char *data, size_t len)
{
    if (s->gone)
        return AGENTD_EIO;
    struct buf b = { 0 };
    int rc = sse_format(&b, event, id, data, len);
    if (rc != 0) {
        buf_free(&b);
        return rc;
    }
    return write_buf(s, &b);
}

int sse_comment(struct sse *s, const char *text)
{
    if (s->gone)
        return AGENTD_EIO;
    struct buf b = { 0 };
    sse_format_comment(&b, text);
    return write_buf(s, &b);
}

int sse_client_gone(const struct sse *s) { return s->gone; }
struct http_req *sse_request(struct sse *s) { return s->r; }

void sse_end(struct sse *s)
{
    if (s->heartbeat)
        event_free(s->heartbeat);
    http_stream_end(s->r);
    free(s);
}

void sse_abort(struct sse *s)
{
    if (!s)
        return;
    if (s->heartbeat)
        event_free(s->heartbeat);
    free(s);
}
