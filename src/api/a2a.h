/* The A2A front: JSON-RPC 2.0 at POST / (A2A 1.0 with the A2A-Version
 * header, 0.3 without), tasks over the agent's turns, SSE streams over the
 * session events. See docs/a2a.md. */
#ifndef AGENTD_API_A2A_H
#define AGENTD_API_A2A_H

#include <jansson.h>

struct router;
struct agent;
struct store;
struct events;
struct http_req;

/* production: http:// UCP-Agent profiles only from allow-listed hosts. */
int a2a_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev,
               const char *public_url, int production);

/* ---- shared with a2a_stream.c ---- */

/* Starts an SSE reply of JSON-RPC frames for the task (model borrowed):
 * first the task itself (unless resuming after a Last-Event-ID), then its
 * current turn's updates from event seq `after` on, ending with the final
 * status update. turn_id NULL: the task has no running turn; the stream
 * sends the task and ends. Answers r in every case. */
void a2a_stream_open(struct http_req *r, int ver, const json_t *rpc_id, const json_t *task,
                     const char *turn_id, long long after, int resume);
void a2a_stream_init(struct store *st, struct events *ev);

#endif
