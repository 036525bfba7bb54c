/* Server-Sent Events over a chunked HTTP reply: event/id/data framing,
 * heartbeat comments that keep proxies from cutting idle streams, and a
 * callback when the client goes away. Later fronts (A2A, chat) stream turn
 * events through this. */
#ifndef AGENTD_HTTP_SSE_H
#define AGENTD_HTTP_SSE_H

#include <stddef.h>

#include "core/buf.h"

struct http_req;
struct sse;

/* Pure framing. event and id may be NULL; neither may contain CR or LF
 * (returns AGENTD_EINVAL, nothing appended). data is split on CR, LF or CRLF into one
 * "data:" line per line, so a payload can never end an event early. */
int sse_format(struct buf *out, const char *event, const char *id, const char *data, size_t len);
/* ": text\n\n" — a comment line; newlines in text are replaced by spaces. */
void sse_format_comment(struct buf *out, const char *text);

/* Starts a 200 text/event-stream reply on r. heartbeat_ms > 0 sends a comment
 * that often. on_gone(s, ud) runs once if the client disconnects; the owner
 * must still call sse_end(). Returns NULL on out of memory (r is then
 * answered with an error and finished). */
struct sse *sse_start(struct http_req *r, int heartbeat_ms,
                      void (*on_gone)(struct sse *s, void *ud), void *ud);

/* Queues one event. Returns 0, or AGENTD_EIO when the client is gone or reads too
 * slowly (its unread output passed the cap): end the stream then. */
int sse_send(struct sse *s, const char *event, const char *id, const char *data, size_t len);
int sse_comment(struct sse *s, const char *text);
int sse_client_gone(const struct sse *s);
struct http_req *sse_request(struct sse *s);

/* Ends the reply and frees s (and its request). */
void sse_end(struct sse *s);
/* Frees s without touching its request: for a request's on_abort, when the
 * server drops the request itself at shutdown. */
void sse_abort(struct sse *s);

#endif
