/* Live fan-out of turn events inside one process. The store is the source
 * of truth (store_event_*): the runner appends a session's events there,
 * then calls events_publish(); every subscriber of that session is woken on
 * its own loop and reads what is new from the store after the last seq it
 * sent. Live streaming and replay after a reconnect are thus one code
 * path, and a subscriber on another replica only needs to poll. Wake-ups
 * are coalesced: a subscriber woken twice before it ran runs once. */
#ifndef AGENTD_AGENT_EVENTS_H
#define AGENTD_AGENT_EVENTS_H

struct loop;
struct events;
struct events_sub;
struct relay;

typedef void (*events_wake_fn)(void *ud);

struct events *events_new(void);
/* After every loop stopped; subscriptions still open are dropped. */
void events_free(struct events *h);

/* On loop `loop`'s thread: wake(ud) runs on that loop after each publish
 * for session_id, until unsubscribed. NULL on out of memory. */
struct events_sub *events_subscribe(struct events *h, const char *session_id, struct loop *loop,
                                    events_wake_fn wake, void *ud);
/* On the subscriber's loop: no wake runs after this returns. */
void events_unsubscribe(struct events_sub *s);

/* Any thread: new events of session_id are in the store. With a relay,
 * other processes are told too. */
void events_publish(struct events *h, const char *session_id);

/* Signals to and from other processes (core/relay.h; Redis pub/sub), set
 * before the loops run: each subscription also watches its session there,
 * and another process's publish wakes it on its loop. r is copied. */
void events_set_relay(struct events *h, const struct relay *r);
/* On a loop thread: 1 while signals from other processes reach this loop,
 * so a follower may stretch its store poll; 0 without a relay. */
int events_relay_healthy(struct events *h);

#endif
