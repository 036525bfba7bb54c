/* Redis pub/sub for "session S has new events" between replicas: PUBLISH on
 * the shared per-loop connections, one subscriber connection per loop. */
#ifndef AGENTD_KV_PUBSUB_H
#define AGENTD_KV_PUBSUB_H

struct loop;
struct redis;
struct relay;

struct pubsub;

/* r borrowed (outlives it); instance names this process in what it
 * publishes, so its own signals are not taken for another's. NULL without
 * memory. */
struct pubsub *pubsub_new(struct redis *r, const char *instance);
/* The relay (core/relay.h) the event hub signals through. */
void pubsub_relay(struct pubsub *ps, struct relay *out);
/* Where a publish from a thread that is no loop (a worker) is sent from. */
void pubsub_set_home(struct pubsub *ps, struct loop *home);
/* After the loops stopped, before their event bases are freed: closes the
 * subscriber connections. */
void pubsub_close(struct pubsub *ps);
void pubsub_free(struct pubsub *ps);

/* agentd_events_signals_total{outcome}: published, publish_failed,
 * received. Registered on every server (the series exist without Redis). */
void pubsub_metrics_register(void);

#endif
