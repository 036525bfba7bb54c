/* Parsing a Chat Completions reply: the whole-JSON form, and an incremental
 * SSE parser that assembles content and tool-call deltas from input split at
 * any byte boundary. Pure: no I/O, no clock; the fuzz and unit tests drive it. */
#ifndef AGENTD_LLM_STREAM_H
#define AGENTD_LLM_STREAM_H

#include <stddef.h>

#include "llm/llm.h"

struct llm_stream;

/* on_delta gets each content fragment as it is parsed (may be NULL). */
struct llm_stream *llm_stream_new(llm_delta_fn on_delta, void *ud);
void llm_stream_free(struct llm_stream *s);

/* Feeds bytes. Returns 0, or -1 when the stream is malformed (bad JSON in a
 * data event, an "error" event, a line over 1 MiB, too many tool calls); the
 * reason is in err. After -1 or [DONE] further input is ignored. */
int llm_stream_feed(struct llm_stream *s, const char *data, size_t len, char *err, size_t errlen);

/* 1 once the terminating "data: [DONE]" arrived. */
int llm_stream_done(const struct llm_stream *s);

/* Ends the stream (the transfer finished) and moves the assembled reply into
 * *out (fields only; provider/model/attempts are left to the caller except
 * model, taken from the chunks). A stream without [DONE] and without a
 * finish_reason is truncated: returns -1 with err. */
int llm_stream_finish(struct llm_stream *s, struct llm_reply *out, char *err, size_t errlen);

/* Parses a non-streaming response body into *out (fields as above).
 * Returns 0, or -1 with err when it is not JSON, carries an "error", or has
 * no choices. */
int llm_reply_parse(const char *body, size_t len, struct llm_reply *out, char *err, size_t errlen);

/* Frees the fields of *r and zeroes it (not r itself). */
void llm_reply_clear(struct llm_reply *r);

#endif
