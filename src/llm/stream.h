/* Parsing a Chat Completions reply: the whole-JSON form, and an incremental
 * SSE parser that assembles content and tool-call deltas from input split at
 * any byte boundary. Pure: no I/O, no clock; the fuzz and unit tests drive it. */
#ifndef AGENTD_LLM_STREAM_H
#define AGENTD_LLM_STREAM_H

#include <stddef.h>

#include "llm/llm.h"

struct agentd_error;
struct llm_stream;

/* on_delta gets each content fragment as it is parsed (may be NULL). */
struct llm_stream *llm_stream_new(llm_delta_fn on_delta, void *ud);
void llm_stream_free(struct llm_stream *s);

/* Feeds bytes. Returns 0, or AGENTD_EMALFORMED when the stream is not a
 * usable reply (bad JSON in a data event, an "error" event, a line over
 * 1 MiB, too many tool calls), the reason in *e (may be NULL). After a
 * failure or [DONE] further input is ignored. */
int llm_stream_feed(struct llm_stream *s, const char *data, size_t len, struct agentd_error *e);

/* 1 once the terminating "data: [DONE]" arrived. */
int llm_stream_done(const struct llm_stream *s);

/* Ends the stream (the transfer finished) and moves the assembled reply into
 * *out (fields only; provider/model/attempts are left to the caller except
 * model, taken from the chunks). A stream without [DONE] and without a
 * finish_reason is truncated: AGENTD_EMALFORMED with *e filled (AGENTD_ENOMEM
 * when memory ran out). */
int llm_stream_finish(struct llm_stream *s, struct llm_reply *out, struct agentd_error *e);

/* Parses a non-streaming response body into *out (fields as above).
 * Returns 0, or AGENTD_EMALFORMED with *e filled when it is not JSON, carries
 * an "error", or has no choices (AGENTD_ENOMEM when memory ran out). */
int llm_reply_parse(const char *body, size_t len, struct llm_reply *out, struct agentd_error *e);

/* Frees the fields of *r and zeroes it (not r itself). */
void llm_reply_clear(struct llm_reply *r);

#endif
