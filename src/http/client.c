/* hiperfifo on libevent: CURLMOPT_SOCKETFUNCTION maps curl's socket interest
 * to persistent events, CURLMOPT_TIMERFUNCTION to one timer per multi handle.
 * HTTP/1.1 transfers on up to H1_SHARDS multi handles, one for HTTP/2. */
#include "http/client.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/err.h"
#include "core/loop.h"

/* Connections per host on the HTTP/2 multi handle. libcurl 7.88 waits
 * (PIPEWAIT) only for a host's first connection: once its connections are
 * full (the server's SETTINGS_MAX_CONCURRENT_STREAMS or ours), every further
 * transfer opens a connection of its own, all at once (measured: 2 000
 * transfers at once against a 1 000-stream server opened 1 001
 * connections). With a per-host cap the transfers past it wait inside curl
 * for a free stream instead. 32 per loop thread carry 3 200 calls at once
 * even on a 100-stream server. */
#define H2_HOST_CONNECTIONS 32L

/* libcurl 7.88 walks a multi handle's whole connection cache twice per
 * transfer (the reuse search when it starts, the connect-only scan in
 * curl_multi_remove_handle), so a call's cost grew with the calls in flight:
 * libcurl went from 5 % to 14 % of agentd's CPU between 64 and 8 000 turns in
 * flight (docs/performance.md, issue 14). HTTP/1.1 transfers therefore fill
 * one multi handle (its own connection cache) up to H1_SHARD_TRANSFERS in
 * flight before the next is opened; past H1_SHARDS full ones the least busy
 * takes the transfer. Below the first 512 nothing changes: one handle. */
#define H1_SHARDS 16
#define H1_SHARD_TRANSFERS 512

struct http_client;

/* One multi handle and its timer. */
struct multi {
    struct http_client *cl;
    CURLM *multi;
    struct event *timer;
    int active;                /* transfers on this handle */
};

/* What a transfer carries through CURLOPT_PRIVATE. */
struct xfer {
    http_client_done_fn done;
    void *ud;
    struct multi *m;
};

struct http_client {
    struct loop *loop;
    struct event_base *base;
    struct multi m[H1_SHARDS + 1]; /* [0, H1_SHARDS) HTTP/1.1, opened as
                                * needed; [H1_SHARDS] HTTP/2 multiplexed */
    int h1_max;                /* HTTP/1.1 handles usable (a connection cap
                                * is shared among them) */
    int shard_transfers;       /* in flight on a handle before the next */
    long max_n;                /* the loop's cap as set, 0 = none */
    long max_connections;      /* per HTTP/1.1 handle, 0 = no cap */
    int active;
    struct sock *socks;        /* every socket curl watches, freed at the end
                                * even if cleanup does not report them */
};

/* Per-socket state curl hands back to us through curl_multi_assign. */
struct sock {
    struct sock *prev, *next;
    struct event *ev;
    struct multi *m;
    curl_socket_t fd;
    int what;
};

static void sock_unlink(struct http_client *cl, struct sock *sk)
{
    if (sk->prev)
        sk->prev->next = sk->next;
    else
        cl->socks = sk->next;
    if (sk->next)
        sk->next->prev = sk->prev;
    if (sk->ev)
        event_free(sk->ev);
    free(sk);
}

static void check_done(struct multi *mh)
{
    struct http_client *cl = mh->cl;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(mh->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result;
        struct xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(mh->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        cl->active--;
        mh->active--;
        if (x) {
            struct xfer copy = *x;
            free(x);
            /* may add or remove other transfers: info_read copes */
            copy.done(easy, res, copy.ud);
        }
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct multi *mh = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(mh->multi, fd, flags, &running);
    check_done(mh);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct multi *mh = arg;
    int running;
    curl_multi_socket_action(mh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(mh);
}

/* curl: "call me back in timeout_ms" (-1 = delete the timer). Must not
 * call curl from here, hence the timer even for 0 ms. */
/* libcurl's callback contract: 0 = fine, -1 = failure (not an AGENTD_E* status). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct multi *mh = userp;
    if (timeout_ms < 0) {
        evtimer_del(mh->timer);
        return 0;
    }
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    return evtimer_add(mh->timer, &tv) == 0 ? 0 : -1;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct multi *mh = userp;
    struct http_client *cl = mh->cl;
    struct sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            curl_multi_assign(mh->multi, s, NULL);
            sock_unlink(cl, sk);
        }
        return 0;
    }
    if (!sk) {
        sk = calloc(1, sizeof *sk);
        if (!sk)
            return -1;
        sk->fd = s;
        sk->m = mh;
        sk->next = cl->socks;
        if (cl->socks)
            cl->socks->prev = sk;
        cl->socks = sk;
        curl_multi_assign(mh->multi, s, sk);
    } else if (sk->what == what) {
        return 0;
    } else {
        event_free(sk->ev);
        sk->ev = NULL;
    }
    short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
                         EV_PERSIST);
    sk->what = what;
    sk->ev = event_new(cl->base, s, kind, on_socket_event, mh);
    if (!sk->ev || event_add(sk->ev, NULL) != 0) {
        curl_multi_assign(mh->multi, s, NULL);
        sock_unlink(cl, sk);
        return -1;
    }
    return 0;
}

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Creates mh's multi handle and timer: 0 or AGENTD_ENOMEM (then the caller
 * frees what was made, http_client_free). */
static int multi_open(struct http_client *cl, struct multi *mh, int h2)
{
    mh->cl = cl;
    mh->multi = curl_multi_init();
    mh->timer = evtimer_new(cl->base, on_timer, mh);
    if (!mh->multi || !mh->timer)
        return AGENTD_ENOMEM;
    curl_multi_setopt(mh->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(mh->multi, CURLMOPT_SOCKETDATA, mh);
    curl_multi_setopt(mh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(mh->multi, CURLMOPT_TIMERDATA, mh);
    /* libcurl 7.88 counts busy connections against MAXCONNECTS too: with
     * 64, every call past 64 in flight closed a connection on return and
     * opened a new one (measured by bench/turns.sh: one connect per model
     * call and a cache scan at 16 % of CPU at 8 000 turns). Idle sockets
     * stay bounded by the peak concurrency, which the fd limit bounds. */
    curl_multi_setopt(mh->multi, CURLMOPT_MAXCONNECTS, 16384L);
    if (h2) {
        /* HTTP/2: many transfers on one connection, up to what the server's
         * SETTINGS allow, rather than curl's own cap of 100 streams. Only
         * here a per-host cap: an HTTP/1.1 transfer needs a connection
         * each, and the cap would queue it (see H2_HOST_CONNECTIONS). */
        curl_multi_setopt(mh->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
        curl_multi_setopt(mh->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
        curl_multi_setopt(mh->multi, CURLMOPT_MAX_HOST_CONNECTIONS, H2_HOST_CONNECTIONS);
    } else {
        curl_multi_setopt(mh->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, cl->max_connections);
    }
    return 0;
}

struct http_client *http_client_new(struct loop *loop)
{
    /* loops start lazily on several threads; curl's global init must run
     * once (and is not thread-safe in every build) */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    struct http_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->loop = loop;
    cl->base = loop_base(loop);
    cl->h1_max = H1_SHARDS;
    cl->shard_transfers = H1_SHARD_TRANSFERS;
    if (multi_open(cl, &cl->m[0], 0) != 0 || multi_open(cl, &cl->m[H1_SHARDS], 1) != 0) {
        http_client_free(cl);
        return NULL;
    }
    return cl;
}

/* The cap is split among the HTTP/1.1 handles it allows (one per
 * shard_transfers connections, at least one), so the loop's total stays n. */
static void apply_max_connections(struct http_client *cl, long n)
{
    int shards = H1_SHARDS;
    if (n > 0) {
        long k = n / cl->shard_transfers;
        shards = k < 1 ? 1 : k > H1_SHARDS ? H1_SHARDS : (int)k;
    }
    cl->h1_max = shards;
    cl->max_connections = n > 0 ? n / shards : 0;
    for (int i = 0; i < H1_SHARDS; i++)
        if (cl->m[i].multi)
            curl_multi_setopt(cl->m[i].multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, cl->max_connections);
    curl_multi_setopt(cl->m[H1_SHARDS].multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n > 0 ? n : 0L);
}

void http_client_set_max_connections(struct http_client *cl, long n)
{
    cl->max_n = n;
    apply_max_connections(cl, n);
}

void http_client_set_shard_transfers(struct http_client *cl, int n)
{
    cl->shard_transfers = n > 0 ? n : H1_SHARD_TRANSFERS;
    apply_max_connections(cl, cl->max_n);
}

int http_client_h1_handles(const struct http_client *cl)
{
    int n = 0;
    while (n < H1_SHARDS && cl->m[n].multi)
        n++;
    return n;
}

/* The first HTTP/1.1 handle with room (its idle connections are reused
 * first), a new one when all open ones are full, else the least busy. */
static struct multi *h1_pick(struct http_client *cl)
{
    struct multi *best = &cl->m[0];
    for (int i = 0; i < cl->h1_max; i++) {
        struct multi *mh = &cl->m[i];
        if (!mh->multi) {
            if (multi_open(cl, mh, 0) == 0)
                return mh;
            if (mh->timer)
                event_free(mh->timer);
            if (mh->multi)
                curl_multi_cleanup(mh->multi);
            memset(mh, 0, sizeof *mh);
            break;
        }
        if (mh->active < cl->shard_transfers)
            return mh;
        if (mh->active < best->active)
            best = mh;
    }
    return best;
}

static int client_add(struct http_client *cl, struct multi *mh, CURL *easy, http_client_done_fn done,
                      void *ud)
{
    struct xfer *x = malloc(sizeof *x);
    if (!x)
        return AGENTD_ENOMEM;
    x->done = done;
    x->ud = ud;
    x->m = mh;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(mh->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return AGENTD_EINTERNAL;
    }
    cl->active++;
    mh->active++;
    return 0;
}

int http_client_add(struct http_client *cl, CURL *easy, http_client_done_fn done, void *ud)
{
    return client_add(cl, h1_pick(cl), easy, done, ud);
}

int http_client_add_h2(struct http_client *cl, CURL *easy, http_client_done_fn done, void *ud)
{
    return client_add(cl, &cl->m[H1_SHARDS], easy, done, ud);
}

void http_client_remove(struct http_client *cl, CURL *easy)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x)
        return; /* not ours, or already finished */
    curl_multi_remove_handle(x->m->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    x->m->active--;
    free(x);
    cl->active--;
}

int http_client_active(const struct http_client *cl) { return cl->active; }

void http_client_free(struct http_client *cl)
{
    if (!cl)
        return;
    /* socket callbacks still fire during cleanup in some curl versions;
     * they free our per-socket events, which need the base alive */
    for (int i = 0; i <= H1_SHARDS; i++)
        if (cl->m[i].multi)
            curl_multi_cleanup(cl->m[i].multi);
    while (cl->socks)
        sock_unlink(cl, cl->socks);
    for (int i = 0; i <= H1_SHARDS; i++)
        if (cl->m[i].timer)
            event_free(cl->m[i].timer);
    free(cl);
}
