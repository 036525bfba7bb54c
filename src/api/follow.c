/* Following a session's events for an SSE reply (api/chat.c, api/a2a_stream.c):
 * the store is the source of truth; the hub wakes the follower, a poll catches other replicas. */
#include "api/follow.h"
#include "agent/events.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/loop.h"
#include "http/server.h"
#include "http/sse.h"
#include "store/async.h"
#include "store/store.h"

#include <event2/event.h>

#define POLL_MS 1000                /* cross-replica poll of an open stream */
#define STRETCHED_MAX_MS 60000      /* the poll while Redis signals flow, at most */
#define STREAM_BACKLOG (256 * 1024) /* unsent bytes before a replay pauses */

void follow_init(struct follow *f, struct http_req *r, struct store *st,
                 const struct follow_ops *ops, void *ud)
{
    *f = (struct follow){ .r = r, .st = st, .ops = ops, .ud = ud, .end_on_drain = 1 };
}

static int64_t poll_ms = POLL_MS;

void follow_set_poll_ms(int64_t ms) { poll_ms = ms > 0 ? ms : POLL_MS; }

int64_t follow_poll_ms(int healthy)
{
    if (!healthy)
        return poll_ms;
    int64_t ms = poll_ms * 10 < STRETCHED_MAX_MS ? poll_ms * 10 : STRETCHED_MAX_MS;
    return ms > poll_ms ? ms : poll_ms;
}

/* The timer ticks at least once a second, whatever the poll: a drain ends
 * follower streams at their next tick. It reads the store when due. */
static void arm_poll(struct follow *f)
{
    int64_t ms = follow_poll_ms(0) < POLL_MS ? follow_poll_ms(0) : POLL_MS;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(f->poll, &tv);
}

static void plan_read(struct follow *f)
{
    f->stretched = events_relay_healthy(f->ev);
    f->read_due_ms = clock_mono_ms() + follow_poll_ms(f->stretched);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct follow *f = arg;
    if (!f->open)
        return;
    if (f->end_on_drain && http_server_draining(f->r->srv)) {
        follow_end(f); /* a follower stream must not hold the drain up */
        return;
    }
    if (f->backlogged || clock_mono_ms() >= f->read_due_ms) {
        follow_read(f);
        plan_read(f);
    }
    arm_poll(f);
}

static void on_wake(void *ud)
{
    struct follow *f = ud;
    follow_read(f);
    /* signals stopped (a wake comes when the subscriber drops): poll at
     * the short interval from now on */
    if (f->open && f->stretched && !events_relay_healthy(f->ev)) {
        f->stretched = 0;
        f->read_due_ms = clock_mono_ms() + follow_poll_ms(0);
    }
}

int follow_watch(struct follow *f, struct events *ev, const char *session_id)
{
    f->session_id = session_id;
    f->ev = ev;
    f->poll = evtimer_new(loop_base(f->r->loop), on_poll, f);
    f->sub = ev ? events_subscribe(ev, session_id, f->r->loop, on_wake, f) : NULL;
    return !f->poll || (ev && !f->sub) ? AGENTD_ENOMEM : 0;
}

static void on_gone(struct sse *sse, void *ud)
{
    (void)sse;
    follow_end(ud); /* a turn runs on: it belongs to the server */
}

static void on_abort(struct http_req *r, void *ud)
{
    (void)r;
    struct follow *f = ud;
    f->open = 0;
    sse_abort(f->sse);
    f->sse = NULL;
    events_unsubscribe(f->sub);
    f->sub = NULL;
    f->ops->release(f->ud);
}

int follow_open(struct follow *f, int heartbeat_ms)
{
    f->sse = sse_start(f->r, heartbeat_ms, on_gone, f);
    if (!f->sse)
        return AGENTD_ENOMEM;
    f->open = 1;
    f->r->on_abort = on_abort;
    f->r->abort_ud = f;
    return 0;
}

void follow_start(struct follow *f)
{
    plan_read(f);
    arm_poll(f);
    follow_read(f);
}

static int op_read(struct store *st, void *arg)
{
    struct follow *f = arg;
    f->v = NULL;
    f->n = 0;
    f->rc = store_event_list(st, f->session_id, f->after, FOLLOW_PAGE, &f->v, &f->n);
    return f->ops->read_more ? f->ops->read_more(st, f->ud) : 0;
}

static void read_done(int status, void *arg)
{
    (void)status;
    struct follow *f = arg;
    /* f->reading stays set until the end: follow_end() in page() must not free f */
    int next = f->ops->page(f->ud, f->rc == 0 && f->n == FOLLOW_PAGE);
    store_event_list_free(f->v, f->n);
    f->v = NULL;
    f->n = 0;
    f->reading = 0;
    if (f->open && (next || f->again)) {
        f->again = 0;
        follow_read(f);
        return;
    }
    f->ops->release(f->ud);
}

void follow_read(struct follow *f)
{
    if (!f->open)
        return;
    f->backlogged = http_stream_pending(f->r) > STREAM_BACKLOG;
    if (f->backlogged)
        return; /* a slow reader: the poll timer reads on once it drained */
    if (f->reading) {
        f->again = 1;
        return;
    }
    f->reading = 1;
    if (store_async(f->st, f->r->loop, op_read, f, read_done) != 0)
        f->reading = 0; /* the next wake or poll tries again */
}

void follow_end(struct follow *f)
{
    if (!f->open)
        return;
    f->open = 0;
    if (f->poll)
        evtimer_del(f->poll);
    events_unsubscribe(f->sub);
    f->sub = NULL;
    f->r->on_abort = NULL;
    sse_end(f->sse);
    f->sse = NULL;
    f->ops->release(f->ud);
}

int follow_busy(const struct follow *f) { return f->open || f->reading; }

void follow_free(struct follow *f)
{
    events_unsubscribe(f->sub);
    f->sub = NULL;
    if (f->poll)
        event_free(f->poll);
    f->poll = NULL;
}
