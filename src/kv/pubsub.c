/* Redis pub/sub signalling: a turn's new events are PUBLISHed to
 * agentd:session:<id>; each loop keeps one subscriber connection for the sessions its streams follow. */
#include "kv/pubsub.h"
#include "kv/redis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/relay.h"

#define MAX_LOOPS 512
#define PREFIX "agentd:session:"
/* Subscribed for the connection's life: its count never drops to 0, so
 * hiredis (0.14) never leaves subscribed mode while a SUBSCRIBE is on its
 * way (a reply it then takes for a regular one would trip its assert). */
#define ANCHOR "agentd:pubsub"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct sloop;

/* A session followed on one loop: its channel and the streams waiting on it. */
struct chan {
    struct sloop *sl;
    char *name;                 /* PREFIX + session id */
    struct relay_watch *watchers;
    int unsubscribing;          /* UNSUBSCRIBE sent, its answer not seen */
    struct chan *next;
};

struct relay_watch {
    struct chan *ch;
    relay_wake_fn wake;
    void *ud;
    struct relay_watch *prev, *next;
};

/* One loop's subscriber connection; touched only on that loop's thread
 * (and by pubsub_close once the loops stopped). */
struct sloop {
    struct pubsub *ps;
    struct event_base *base;
    redisAsyncContext *ac; /* NULL: not connected */
    struct event *retry;
    int64_t backoff_ms;
    int waiting;           /* a reconnect is planned */
    int up;                /* a subscription was confirmed on ac */
    struct chan *chans;
};

struct pubsub {
    struct redis *r;
    char instance[192];
    struct loop *home;
    pthread_mutex_t mu; /* guards loops[] (a loop adds its own) */
    struct sloop *loops[MAX_LOOPS];
    int nloops;
    int closed;
};

static struct metric_child *m_published, *m_failed, *m_received;

void pubsub_metrics_register(void)
{
    static const char *const labels[] = { "outcome", NULL };
    struct metric *m = metric_register("agentd_events_signals_total",
                                       "Session-event signals over Redis pub/sub, by outcome: "
                                       "published, publish_failed (the store poll carries on), "
                                       "received (a stream here woke at once)",
                                       METRIC_COUNTER, labels, NULL);
    if (!m)
        return;
    m_published = metric_child(m, (const char *[]){ "published" });
    m_failed = metric_child(m, (const char *[]){ "publish_failed" });
    m_received = metric_child(m, (const char *[]){ "received" });
}

static void count(struct metric_child *c)
{
    if (c)
        metric_inc(c);
}

/* ---- publishing: fire and forget on the shared per-loop connection ---- */

static void published(struct redisReply *reply, void *ud)
{
    (void)ud;
    count(reply && reply->type != REDIS_REPLY_ERROR ? m_published : m_failed);
}

static void publish_here(struct pubsub *ps, const char *session)
{
    char ch[320];
    int n = snprintf(ch, sizeof ch, PREFIX "%s", session);
    if (n < 0 || (size_t)n >= sizeof ch) {
        count(m_failed); /* an id this long is not ours; the poll serves it */
        return;
    }
    const char *argv[] = { "PUBLISH", ch, ps->instance };
    redis_command(ps->r, 3, argv, NULL, published, NULL);
}

struct post {
    struct pubsub *ps;
    char session[];
};

static void publish_posted(void *arg)
{
    struct post *p = arg;
    publish_here(p->ps, p->session);
    free(p);
}

static void ps_publish(void *impl, const char *session)
{
    struct pubsub *ps = impl;
    if (loop_current()) {
        publish_here(ps, session);
        return;
    }
    size_t len = strlen(session) + 1;
    struct post *p = ps->home ? malloc(sizeof *p + len) : NULL;
    if (p) {
        p->ps = ps;
        memcpy(p->session, session, len);
        if (loop_post(ps->home, publish_posted, p) == 0)
            return;
        free(p);
    }
    count(m_failed);
}

/* ---- the subscriber connection of one loop ---- */

static void sl_connect(struct sloop *sl);

static void sl_backoff(struct sloop *sl)
{
    if (sl->waiting || sl->ps->closed || !sl->chans)
        return; /* nothing followed: the next watch connects */
    sl->waiting = 1;
    struct timeval tv = { sl->backoff_ms / 1000, (sl->backoff_ms % 1000) * 1000 };
    evtimer_add(sl->retry, &tv);
    sl->backoff_ms = sl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : sl->backoff_ms * 2;
}

static void wake_all(struct chan *ch)
{
    for (struct relay_watch *w = ch->watchers, *next; w; w = next) {
        next = w->next; /* a wake only reads the store: it unwatches nothing */
        w->wake(w->ud);
    }
}

static void chan_free(struct chan *ch)
{
    struct sloop *sl = ch->sl;
    for (struct chan **p = &sl->chans; *p; p = &(*p)->next)
        if (*p == ch) {
            *p = ch->next;
            break;
        }
    free(ch->name);
    free(ch);
}

/* Drops the connection: followers wake (a signal may have been missed) and
 * their polls shorten; a reconnect is planned. */
static void sl_down(struct sloop *sl, const char *why)
{
    int was_up = sl->up;
    sl->ac = NULL;
    sl->up = 0;
    if (was_up)
        log_msg(LOG_WARN, NULL, "redis pub/sub: subscriber lost (%s): streams poll the store",
                why ? why : "closed");
    for (struct chan *ch = sl->chans, *next; ch; ch = next) {
        next = ch->next;
        ch->unsubscribing = 0;
        if (!ch->watchers)
            chan_free(ch);
        else if (was_up) /* once per loss, not at each failed reconnect */
            wake_all(ch);
    }
    sl_backoff(sl);
}

static struct chan *chan_find(struct sloop *sl, const char *name, size_t len)
{
    for (struct chan *ch = sl->chans; ch; ch = ch->next)
        if (strlen(ch->name) == len && memcmp(ch->name, name, len) == 0)
            return ch;
    return NULL;
}

static void sub_send(struct sloop *sl, const char *verb, const char *name);

/* Every reply of the subscriber: subscribe and unsubscribe confirmations,
 * messages; NULL when the connection goes. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct sloop *sl = priv;
    redisReply *rep = reply;
    if (!rep || sl->ac != ac || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    struct chan *ch = chan_find(sl, rep->element[1]->str, rep->element[1]->len);
    if (strcmp(kind, "subscribe") == 0) {
        if (!sl->up) {
            sl->up = 1;
            sl->backoff_ms = BACKOFF_MIN_MS;
        }
    } else if (strcmp(kind, "unsubscribe") == 0 && ch) {
        ch->unsubscribing = 0;
        if (ch->watchers)
            sub_send(sl, "SUBSCRIBE", ch->name); /* watched again meanwhile */
        else
            chan_free(ch);
    } else if (strcmp(kind, "message") == 0 && ch && rep->element[2]->type == REDIS_REPLY_STRING &&
               strcmp(rep->element[2]->str, sl->ps->instance) != 0) {
        /* ours already woke this process's streams through the hub */
        count(m_received);
        wake_all(ch);
    }
}

static void sub_send(struct sloop *sl, const char *verb, const char *name)
{
    const char *argv[] = { verb, name };
    if (sl->ac && redisAsyncCommandArgv(sl->ac, on_sub_reply, sl, 2, argv, NULL) != REDIS_OK) {
        redisAsyncContext *ac = sl->ac;
        sl_down(sl, "command refused");
        redisAsyncFree(ac);
    }
}

static void on_sub_connect(const redisAsyncContext *ac, int status)
{
    struct sloop *sl = ac->data;
    if (status != REDIS_OK && sl->ac == ac) /* hiredis frees ac after this */
        sl_down(sl, ac->errstr);
}

static void on_sub_disconnect(const redisAsyncContext *ac, int status)
{
    struct sloop *sl = ac->data;
    if (sl->ac == ac)
        sl_down(sl, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void sl_connect(struct sloop *sl)
{
    if (sl->ac || sl->waiting || sl->ps->closed || !sl->chans)
        return;
    redisAsyncContext *ac = redis_connect_own(sl->ps->r, sl->base);
    if (!ac) {
        sl_backoff(sl);
        return;
    }
    ac->data = sl;
    redisAsyncSetConnectCallback(ac, on_sub_connect);
    redisAsyncSetDisconnectCallback(ac, on_sub_disconnect);
    sl->ac = ac;
    sub_send(sl, "SUBSCRIBE", ANCHOR);
    /* every followed session again: queued behind the handshake */
    for (struct chan *ch = sl->chans; ch && sl->ac == ac; ch = ch->next)
        sub_send(sl, "SUBSCRIBE", ch->name);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sloop *sl = arg;
    sl->waiting = 0;
    sl_connect(sl);
}

static struct sloop *sloop_here(struct pubsub *ps)
{
    struct loop *l = loop_current();
    if (!l)
        return NULL;
    struct event_base *base = loop_base(l);
    struct sloop *sl = NULL;
    pthread_mutex_lock(&ps->mu);
    for (int i = 0; i < ps->nloops && !sl; i++)
        if (ps->loops[i]->base == base)
            sl = ps->loops[i];
    if (!sl && !ps->closed && ps->nloops < MAX_LOOPS && (sl = calloc(1, sizeof *sl)) != NULL) {
        *sl = (struct sloop){ .ps = ps, .base = base, .backoff_ms = BACKOFF_MIN_MS };
        sl->retry = evtimer_new(base, on_retry, sl);
        if (sl->retry) {
            ps->loops[ps->nloops++] = sl;
        } else {
            free(sl);
            sl = NULL;
        }
    }
    pthread_mutex_unlock(&ps->mu);
    return sl;
}

static struct relay_watch *ps_watch(void *impl, const char *session, relay_wake_fn wake, void *ud)
{
    struct sloop *sl = sloop_here(impl);
    struct relay_watch *w = sl ? calloc(1, sizeof *w) : NULL;
    if (!w)
        return NULL;
    char name[320];
    int n = snprintf(name, sizeof name, PREFIX "%s", session);
    if (n < 0 || (size_t)n >= sizeof name) {
        free(w);
        return NULL;
    }
    struct chan *ch = chan_find(sl, name, (size_t)n);
    int fresh = !ch;
    if (fresh) {
        ch = calloc(1, sizeof *ch);
        if (!ch || !(ch->name = strdup(name))) {
            free(ch);
            free(w);
            return NULL;
        }
        ch->sl = sl;
        ch->next = sl->chans;
        sl->chans = ch;
    }
    *w = (struct relay_watch){ .ch = ch, .wake = wake, .ud = ud, .next = ch->watchers };
    if (ch->watchers)
        ch->watchers->prev = w;
    ch->watchers = w;
    if (!sl->ac)
        sl_connect(sl); /* subscribes every channel, this one too */
    else if (fresh)
        sub_send(sl, "SUBSCRIBE", ch->name);
    /* unsubscribing: its answer subscribes again, now that it is watched */
    return w;
}

static void ps_unwatch(void *impl, struct relay_watch *w)
{
    (void)impl;
    if (!w)
        return;
    struct chan *ch = w->ch;
    struct sloop *sl = ch->sl;
    if (w->prev)
        w->prev->next = w->next;
    else
        ch->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
    if (ch->watchers || ch->unsubscribing)
        return;
    if (!sl->ac) {
        chan_free(ch);
        return;
    }
    ch->unsubscribing = 1; /* freed when Redis confirms, or the connection goes */
    sub_send(sl, "UNSUBSCRIBE", ch->name);
}

static int ps_healthy(void *impl)
{
    struct pubsub *ps = impl;
    struct loop *l = loop_current();
    if (!l)
        return 0;
    struct event_base *base = loop_base(l);
    int up = 0;
    pthread_mutex_lock(&ps->mu);
    for (int i = 0; i < ps->nloops; i++)
        if (ps->loops[i]->base == base)
            up = ps->loops[i]->up;
    pthread_mutex_unlock(&ps->mu);
    return up;
}

struct pubsub *pubsub_new(struct redis *r, const char *instance)
{
    struct pubsub *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->r = r;
    snprintf(ps->instance, sizeof ps->instance, "%s", instance);
    pthread_mutex_init(&ps->mu, NULL);
    return ps;
}

void pubsub_relay(struct pubsub *ps, struct relay *out)
{
    *out = (struct relay){ .publish = ps_publish, .watch = ps_watch, .unwatch = ps_unwatch,
                           .healthy = ps_healthy, .impl = ps };
}

void pubsub_set_home(struct pubsub *ps, struct loop *home)
{
    if (ps)
        ps->home = home;
}

void pubsub_close(struct pubsub *ps)
{
    if (!ps || ps->closed)
        return;
    pthread_mutex_lock(&ps->mu);
    ps->closed = 1;
    pthread_mutex_unlock(&ps->mu);
    for (int i = 0; i < ps->nloops; i++) {
        struct sloop *sl = ps->loops[i];
        event_free(sl->retry);
        sl->retry = NULL;
        redisAsyncContext *ac = sl->ac;
        sl->ac = NULL; /* its callbacks see a connection that is not ours */
        if (ac)
            redisAsyncFree(ac);
    }
}

void pubsub_free(struct pubsub *ps)
{
    if (!ps)
        return;
    pubsub_close(ps);
    for (int i = 0; i < ps->nloops; i++) {
        struct sloop *sl = ps->loops[i];
        while (sl->chans) {
            struct chan *ch = sl->chans;
            sl->chans = ch->next;
            while (ch->watchers) { /* streams the loops' stop left watching */
                struct relay_watch *w = ch->watchers;
                ch->watchers = w->next;
                free(w);
            }
            free(ch->name);
            free(ch);
        }
        free(sl);
    }
    pthread_mutex_destroy(&ps->mu);
    free(ps);
}
