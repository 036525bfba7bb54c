/* Following a session's events for an SSE reply: read the store after a
 * cursor, page by page, wake on the event hub, poll for other replicas. */
#ifndef AGENTD_API_FOLLOW_H
#define AGENTD_API_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

struct event;
struct events;
struct events_sub;
struct http_req;
struct sse;
struct store;
struct store_event;

#define FOLLOW_PAGE 200 /* events per store read */

/* What a front does with what its follower reads. The follower lives inside
 * the front's own stream struct (ud); the front frees that struct when
 * follow_busy() is 0 and its own reasons to live are gone. */
struct follow_ops {
    /* On a worker, after the page was read into f->rc/v/n (NULL: nothing more). */
    int (*read_more)(struct store *st, void *ud);
    /* On the loop: the page (f->rc, f->v, f->n; more = a full page). Sends,
     * ends the stream if it is over; returns 1 to read the next page now. */
    int (*page)(void *ud, int more);
    /* The follower went idle (ended, aborted, or a read finished): the
     * front frees itself if nothing else keeps it. */
    void (*release)(void *ud);
};

struct follow {
    struct http_req *r;
    struct sse *sse;
    struct store *st;
    const char *session_id;  /* the front's string */
    int64_t after;           /* the last seq handled */
    struct events_sub *sub;
    struct events *ev;       /* the hub (NULL: none), asked whether signals flow */
    struct event *poll;
    int stretched;           /* the next read is far off: signals were flowing */
    int64_t read_due_ms;     /* monotonic: when the poll reads the store next */
    int backlogged;          /* a read waits for the client to drain (next tick) */
    int open;                /* r is ours: not yet ended or aborted */
    int reading, again;      /* a store read in flight / wanted again after it */
    int end_on_drain;        /* the poll ends the stream once the server drains */
    const struct follow_ops *ops;
    void *ud;
    /* the read's results, valid during ops->page */
    int rc;
    struct store_event *v;
    size_t n;
};

/* The store poll of an open stream (AGENTD_EVENTS_POLL; default 1 s): how
 * soon it sees another replica's events without a signal. While the
 * loop's Redis signals flow, it polls ten times less often (60 s at most,
 * never less than ms); set at start, before the loops run. */
void follow_set_poll_ms(int64_t ms);
int64_t follow_poll_ms(int healthy);

void follow_init(struct follow *f, struct http_req *r, struct store *st,
                 const struct follow_ops *ops, void *ud);
/* The poll timer and (ev not NULL) the hub subscription for session_id,
 * which must outlive f. 0 or AGENTD_ENOMEM (the caller answers r). */
int follow_watch(struct follow *f, struct events *ev, const char *session_id);
/* Starts the SSE reply. 0, or AGENTD_ENOMEM with r answered and finished. */
int follow_open(struct follow *f, int heartbeat_ms);
/* Arms the poll and reads the first page. */
void follow_start(struct follow *f);
/* Reads the next page (now, or after the read in flight; not while the
 * client has too much unread). */
void follow_read(struct follow *f);
/* Ends the SSE reply; ops->release runs. */
void follow_end(struct follow *f);
/* 1 while the reply is open or a read is in flight. */
int follow_busy(const struct follow *f);
/* Frees the timer and the subscription (when the front frees itself). */
void follow_free(struct follow *f);

#endif
