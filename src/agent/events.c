/* Subscribers hang off 256 buckets by session id hash, under one mutex
 * (publish is one short scan of a bucket). A wake-up crosses threads as a
 * small message naming the subscription by id, never by pointer: the
 * subscription may be gone by the time the message runs. */
#include "agent/events.h"
#include "core/loop.h"
#include "core/relay.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256

struct events_sub {
    struct events *h;
    uint64_t id;
    unsigned bucket;
    char *session_id;
    struct loop *loop;
    events_wake_fn wake;
    void *ud;
    int pending; /* a wake message is on its way */
    struct relay_watch *rw; /* the same session at other processes */
    struct events_sub *next;
};

struct events {
    pthread_mutex_t mu;
    uint64_t next_id;
    struct events_sub *buckets[NBUCKETS];
    struct relay relay; /* publish NULL: none */
};

struct wake_msg {
    struct events *h;
    uint64_t id;
    unsigned bucket;
};

static unsigned hash(const char *s)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 16777619u;
    return x % NBUCKETS;
}

struct events *events_new(void)
{
    struct events *h = calloc(1, sizeof *h);
    if (h)
        pthread_mutex_init(&h->mu, NULL);
    return h;
}

void events_free(struct events *h)
{
    if (!h)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        while (h->buckets[i]) {
            struct events_sub *s = h->buckets[i];
            h->buckets[i] = s->next;
            free(s->session_id);
            free(s);
        }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

struct events_sub *events_subscribe(struct events *h, const char *session_id, struct loop *loop,
                                    events_wake_fn wake, void *ud)
{
    struct events_sub *s = calloc(1, sizeof *s);
    if (!s || !(s->session_id = strdup(session_id))) {
        free(s);
        return NULL;
    }
    s->h = h;
    s->bucket = hash(session_id);
    s->loop = loop;
    s->wake = wake;
    s->ud = ud;
    pthread_mutex_lock(&h->mu);
    s->id = ++h->next_id;
    s->next = h->buckets[s->bucket];
    h->buckets[s->bucket] = s;
    pthread_mutex_unlock(&h->mu);
    /* without it (out of memory) the follower's poll still sees other
     * processes' events */
    if (h->relay.watch)
        s->rw = h->relay.watch(h->relay.impl, session_id, wake, ud);
    return s;
}

void events_unsubscribe(struct events_sub *s)
{
    if (!s)
        return;
    struct events *h = s->h;
    if (h->relay.unwatch)
        h->relay.unwatch(h->relay.impl, s->rw);
    pthread_mutex_lock(&h->mu);
    for (struct events_sub **p = &h->buckets[s->bucket]; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    free(s->session_id);
    free(s);
}

/* On the subscriber's loop. Unsubscribe runs on this same thread, so a
 * subscription found here stays alive while its wake runs. */
static void on_wake(void *arg)
{
    struct wake_msg *m = arg;
    struct events *h = m->h;
    events_wake_fn wake = NULL;
    void *ud = NULL;
    pthread_mutex_lock(&h->mu);
    for (struct events_sub *s = h->buckets[m->bucket]; s; s = s->next)
        if (s->id == m->id) {
            s->pending = 0;
            wake = s->wake;
            ud = s->ud;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    free(m);
    if (wake)
        wake(ud);
}

void events_set_relay(struct events *h, const struct relay *r)
{
    if (h && r)
        h->relay = *r;
}

int events_relay_healthy(struct events *h)
{
    return h && h->relay.healthy ? h->relay.healthy(h->relay.impl) : 0;
}

void events_publish(struct events *h, const char *session_id)
{
    if (!h || !session_id)
        return;
    if (h->relay.publish)
        h->relay.publish(h->relay.impl, session_id);
    unsigned b = hash(session_id);
    pthread_mutex_lock(&h->mu);
    for (struct events_sub *s = h->buckets[b]; s; s = s->next) {
        if (s->pending || strcmp(s->session_id, session_id) != 0)
            continue;
        struct wake_msg *m = malloc(sizeof *m);
        if (!m)
            continue; /* the subscriber's poll picks the events up */
        *m = (struct wake_msg){ h, s->id, b };
        if (loop_post(s->loop, on_wake, m) == 0)
            s->pending = 1;
        else
            free(m);
    }
    pthread_mutex_unlock(&h->mu);
}
