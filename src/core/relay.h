/* "Session S has new events" across processes: the interface the event hub
 * (agent/events.c) signals through; kv/pubsub.c implements it on Redis. */
#ifndef AGENTD_CORE_RELAY_H
#define AGENTD_CORE_RELAY_H

typedef void (*relay_wake_fn)(void *ud);
struct relay_watch;

/* Signals only: what changed is read from the store, so a lost signal
 * costs a poll interval, never data. */
struct relay {
    /* Any thread: tell the other processes that topic has news. */
    void (*publish)(void *impl, const char *topic);
    /* On a loop thread: wake(ud) runs on this loop each time another
     * process publishes topic, until unwatched. NULL out of memory. */
    struct relay_watch *(*watch)(void *impl, const char *topic, relay_wake_fn wake, void *ud);
    /* On the watch's loop: no wake runs after this returns. NULL is fine. */
    void (*unwatch)(void *impl, struct relay_watch *w);
    /* On a loop thread: 1 while this loop's signals flow (its subscriber
     * connection is up), so its followers may poll the store less often. */
    int (*healthy)(void *impl);
    void *impl;
};

#endif
