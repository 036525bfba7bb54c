/* A Redis client on agentd's event loops (hiredis async): one connection per
 * loop thread, made lazily on that loop, with a command timeout and reconnect
 * with backoff. The connection only; users (rate limits, pub/sub) sit above. */
#ifndef AGENTD_KV_REDIS_H
#define AGENTD_KV_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/redis_url.h"

struct redis;
struct redisReply;
struct redisAsyncContext;
struct event_base;

/* A command's answer, on the loop that sent it: the reply (valid only during
 * the call; may be an error reply), or NULL when Redis could not answer in
 * time (down, connecting in backoff, timed out, shutting down). Called
 * exactly once, possibly before redis_command returns. */
typedef void (*redis_reply_fn)(struct redisReply *reply, void *ud);

/* A client for url; timeout_ms bounds each command (and a connect) so a hung
 * Redis cannot hold requests. NULL without memory. Thread-safe to use from
 * any loop thread; each loop gets its own connection. A host name is
 * resolved here (blocking: call it at start-up, off the loops) and again on
 * the default worker pool after a connection to it fails. */
struct redis *redis_new(const struct redis_url *url, int timeout_ms);

/* Sends argv on the calling loop's connection (loop_current(); off a loop,
 * done(NULL) at once). */
void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens,
                   redis_reply_fn done, void *ud);

/* A connection of the caller's own on base, outside the per-loop ones: a
 * subscriber (a subscribed connection takes no other commands). Its
 * handshake (AUTH, SELECT) is queued without callbacks, so a refused one
 * shows as the next command failing. NULL when it cannot be made (no
 * address known, out of memory, a socket error). The caller sets its
 * callbacks and data and frees it (redisAsyncFree). */
struct redisAsyncContext *redis_connect_own(struct redis *r, struct event_base *base);

/* Closes every connection, answering pending commands with NULL; later
 * commands get NULL at once. Call after the loops stopped, before their
 * event bases are freed. */
void redis_close(struct redis *r);
void redis_free(struct redis *r);

/* State for /health and metrics, from any thread: 1 when the latest
 * command or connect anywhere succeeded, 0 after a failure; the latest round
 * trip in ns. */
int redis_up(const struct redis *r);
int64_t redis_latency_ns(const struct redis *r);

/* agentd_redis_up, registered once per process; r may be NULL (no Redis: 0),
 * so the series exists on every server. */
void redis_metrics_register(struct redis *r);

/* /health's probe, blocking (run it on the worker pool): connect, AUTH,
 * SELECT and PING with the client's timeout. 0 when Redis answered PONG,
 * else -1 with a short reason (never the password) in detail. */
int redis_probe(struct redis *r, char *detail, size_t len);

#endif
