/* The Redis connection layer: per-loop hiredis async contexts driven by the
 * loop's event_base, a timer per command, reconnect with backoff. */
#include "kv/redis.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"

#define MAX_CONNS 512         /* loops per process (AGENTD_THREADS <= 256) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct redis;

/* One loop's connection; touched only on that loop's thread (and by
 * redis_close once the loops stopped). */
struct conn {
    struct redis *r;
    struct event_base *base;
    redisAsyncContext *ac; /* NULL: not connected */
    struct event *retry;   /* reconnect timer */
    int64_t backoff_ms;
    int waiting;           /* in backoff or resolving: commands fail at once */
    char addr[64];         /* the host's address, numeric; "" = not known */
    int stale;             /* a host name whose connection failed: resolve again */
};

struct cmd {
    struct conn *c;
    struct event *timer;
    redis_reply_fn done; /* NULL: a handshake command of the connection */
    void *ud;
    int64_t t0;
    int last_handshake;
};

struct redis {
    struct redis_url url;
    int timeout_ms;
    int named;          /* the host is a DNS name, resolved on the worker pool */
    char addr0[64];     /* its address when redis_new resolved it (start-up) */
    pthread_mutex_t mu; /* guards conns[] (a loop adds its own) */
    struct conn *conns[MAX_CONNS];
    int nconns;
    atomic_int up;
    _Atomic int64_t latency_ns;
    atomic_int closed;
};

static void conn_connect(struct conn *c);

/* up/down is process-wide: log the transitions, not every failure */
static void note_state(struct redis *r, int up, const char *why)
{
    int was = atomic_exchange(&r->up, up);
    if (was == up)
        return;
    if (up)
        log_msg(LOG_INFO, NULL, "redis: connected");
    else
        log_msg(LOG_WARN, NULL, "redis: unavailable (%s)", why ? why : "unknown");
}

static void conn_backoff(struct conn *c)
{
    if (c->waiting || atomic_load(&c->r->closed))
        return;
    c->waiting = 1;
    struct timeval tv = { c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000 };
    evtimer_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* getaddrinfo into numeric text; blocking: at start-up or on the pool only */
static int resolve(const char *host, char *addr, size_t len)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    int ok = inet_ntop(res->ai_family, a, addr, (socklen_t)len) != NULL;
    freeaddrinfo(res);
    return ok ? 0 : -1;
}

/* Drops the connection: every pending command is answered NULL (hiredis
 * calls their callbacks from redisAsyncFree), then a reconnect is planned. */
static void conn_fail(struct conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->stale = c->r->named;
    note_state(c->r, 0, why);
    conn_backoff(c);
    if (ac)
        redisAsyncFree(ac);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    c->waiting = 0;
    conn_connect(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cmd *cmd = arg;
    conn_fail(cmd->c, "command timed out"); /* answers cmd too */
}

static void cmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct cmd *cmd = priv;
    struct conn *c = cmd->c;
    event_free(cmd->timer);
    redisReply *rep = reply;
    if (rep)
        atomic_store(&c->r->latency_ns, clock_mono_ns() - cmd->t0);
    if (cmd->done) {
        cmd->done(rep, cmd->ud);
    } else if (rep && rep->type != REDIS_REPLY_ERROR) {
        if (cmd->last_handshake) {
            c->backoff_ms = BACKOFF_MIN_MS;
            note_state(c->r, 1, NULL);
        }
    } else if (rep && c->ac == ac) { /* AUTH or SELECT refused: misconfigured */
        char why[128];
        snprintf(why, sizeof why, "%.100s", rep->str ? rep->str : "error");
        conn_fail(c, why);
    }
    free(cmd);
}

static int send_cmd(struct conn *c, int argc, const char **argv, const size_t *lens,
                    redis_reply_fn done, void *ud, int last_handshake)
{
    struct cmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        return -1;
    cmd->c = c;
    cmd->done = done;
    cmd->ud = ud;
    cmd->t0 = clock_mono_ns();
    cmd->last_handshake = last_handshake;
    cmd->timer = evtimer_new(c->base, on_timeout, cmd);
    if (!cmd->timer ||
        redisAsyncCommandArgv(c->ac, cmd_reply, cmd, argc, argv, lens) != REDIS_OK) {
        if (cmd->timer)
            event_free(cmd->timer);
        free(cmd);
        return -1;
    }
    struct timeval tv = { c->r->timeout_ms / 1000, (c->r->timeout_ms % 1000) * 1000 };
    evtimer_add(cmd->timer, &tv);
    return 0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    if (status != REDIS_OK && c->ac == ac) { /* hiredis frees ac after this */
        c->ac = NULL;
        c->stale = c->r->named;
        note_state(c->r, 0, ac->errstr);
        conn_backoff(c);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    if (c->ac != ac) /* one we dropped ourselves */
        return;
    c->ac = NULL;
    c->stale = c->r->named;
    note_state(c->r, 0, status == REDIS_OK ? "connection closed" : ac->errstr);
    conn_backoff(c);
}

/* ---- a host name, resolved again on the worker pool (never on a loop) ---- */

struct resolving {
    struct conn *c;
    char addr[64];
    int ok;
};

static void resolve_work(void *p)
{
    struct resolving *rs = p;
    rs->ok = resolve(rs->c->r->url.host, rs->addr, sizeof rs->addr) == 0;
}

static void connect_addr(struct conn *c);

static void resolve_done(void *p) /* on the conn's loop */
{
    struct resolving *rs = p;
    struct conn *c = rs->c;
    c->waiting = 0;
    if (!atomic_load(&c->r->closed)) {
        if (rs->ok) {
            memcpy(c->addr, rs->addr, sizeof c->addr);
            c->stale = 0;
        }
        if (c->addr[0]) { /* a failed lookup keeps the last address */
            connect_addr(c);
        } else {
            note_state(c->r, 0, "cannot resolve the host");
            conn_backoff(c);
        }
    }
    free(rs);
}

static void conn_connect(struct conn *c)
{
    struct pool *pool = pool_default();
    struct loop *l = loop_current();
    if (!c->r->url.path[0] && c->r->named && (c->stale || !c->addr[0]) && pool && l) {
        struct resolving *rs = calloc(1, sizeof *rs);
        if (rs) {
            rs->c = c;
            c->waiting = 1; /* commands fail at once until it connects */
            if (pool_submit(pool, l, resolve_work, resolve_done, rs) == 0)
                return;
            c->waiting = 0;
            free(rs);
        }
    }
    if (!c->r->url.path[0] && !c->addr[0]) {
        note_state(c->r, 0, "cannot resolve the host");
        conn_backoff(c);
        return;
    }
    connect_addr(c);
}

/* Connects and queues the handshake (AUTH, SELECT, or a PING): commands sent
 * meanwhile queue behind it, and its timer bounds a connect that hangs. */
static void connect_addr(struct conn *c)
{
    const struct redis_url *u = &c->r->url;
    redisAsyncContext *ac = u->path[0] ? redisAsyncConnectUnix(u->path)
                                       : redisAsyncConnect(c->addr, u->port);
    if (!ac || ac->err) {
        note_state(c->r, 0, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_backoff(c);
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_backoff(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    const char *auth[] = { "AUTH", u->user, u->password };
    const char *select[] = { "SELECT", db };
    const char *ping[] = { "PING" };
    int ok = 0;
    if (u->password[0])
        ok |= u->user[0] ? send_cmd(c, 3, auth, NULL, NULL, NULL, !u->db)
                         : send_cmd(c, 2, (const char *[]){ "AUTH", u->password }, NULL, NULL,
                                    NULL, !u->db);
    if (u->db)
        ok |= send_cmd(c, 2, select, NULL, NULL, NULL, 1);
    if (!u->password[0] && !u->db)
        ok |= send_cmd(c, 1, ping, NULL, NULL, NULL, 1);
    if (ok != 0 && c->ac == ac)
        conn_fail(c, "out of memory");
}

redisAsyncContext *redis_connect_own(struct redis *r, struct event_base *base)
{
    const struct redis_url *u = &r->url;
    if (atomic_load(&r->closed) || (!u->path[0] && !r->addr0[0]))
        return NULL;
    redisAsyncContext *ac = u->path[0] ? redisAsyncConnectUnix(u->path)
                                       : redisAsyncConnect(r->addr0, u->port);
    if (!ac)
        return NULL;
    if (ac->err || redisLibeventAttach(ac, base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    int ok = REDIS_OK;
    if (u->password[0] && u->user[0])
        ok |= redisAsyncCommandArgv(ac, NULL, NULL, 3,
                                    (const char *[]){ "AUTH", u->user, u->password }, NULL);
    else if (u->password[0])
        ok |= redisAsyncCommandArgv(ac, NULL, NULL, 2, (const char *[]){ "AUTH", u->password },
                                    NULL);
    if (u->db)
        ok |= redisAsyncCommandArgv(ac, NULL, NULL, 2, (const char *[]){ "SELECT", db }, NULL);
    if (ok != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

static struct conn *conn_for(struct redis *r)
{
    struct loop *l = loop_current();
    if (!l)
        return NULL;
    struct event_base *base = loop_base(l);
    struct conn *c = NULL;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nconns && !c; i++)
        if (r->conns[i]->base == base)
            c = r->conns[i];
    if (!c && r->nconns < MAX_CONNS && (c = calloc(1, sizeof *c)) != NULL) {
        c->r = r;
        c->base = base;
        c->backoff_ms = BACKOFF_MIN_MS;
        memcpy(c->addr, r->addr0, sizeof c->addr);
        c->retry = evtimer_new(base, on_retry, c);
        if (c->retry) {
            r->conns[r->nconns++] = c;
        } else {
            free(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return c;
}

void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens,
                   redis_reply_fn done, void *ud)
{
    struct conn *c = atomic_load(&r->closed) ? NULL : conn_for(r);
    if (c && !c->ac && !c->waiting)
        conn_connect(c);
    if (!c || !c->ac || send_cmd(c, argc, argv, lens, done, ud, 0) != 0)
        done(NULL, ud);
}

struct redis *redis_new(const struct redis_url *url, int timeout_ms)
{
    struct redis *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->url = *url;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 200;
    if (!url->path[0]) {
        unsigned char buf[sizeof(struct in6_addr)];
        r->named = inet_pton(AF_INET, url->host, buf) != 1 &&
                   inet_pton(AF_INET6, url->host, buf) != 1;
        /* a name is looked up now, at start (blocking is fine here), and again
         * on the worker pool when a connection to it fails */
        if (!r->named)
            snprintf(r->addr0, sizeof r->addr0, "%.63s", url->host);
        else if (resolve(url->host, r->addr0, sizeof r->addr0) != 0)
            r->addr0[0] = 0;
    }
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->up, 0);
    atomic_init(&r->latency_ns, 0);
    atomic_init(&r->closed, 0);
    return r;
}

void redis_close(struct redis *r)
{
    if (!r || atomic_exchange(&r->closed, 1))
        return;
    pthread_mutex_lock(&r->mu);
    int n = r->nconns;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++) {
        struct conn *c = r->conns[i];
        event_free(c->retry);
        c->retry = NULL;
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        if (ac)
            redisAsyncFree(ac);
    }
}

void redis_free(struct redis *r)
{
    if (!r)
        return;
    redis_close(r);
    for (int i = 0; i < r->nconns; i++)
        free(r->conns[i]);
    pthread_mutex_destroy(&r->mu);
    explicit_bzero(r->url.password, sizeof r->url.password);
    free(r);
}

int redis_up(const struct redis *r) { return atomic_load(&r->up); }

static double up_value(void *ud) { return ud ? redis_up(ud) : 0; }

void redis_metrics_register(struct redis *r)
{
    metric_register_fn("agentd_redis_up", "1 when the latest Redis command or connect "
                       "succeeded; 0 after a failure, and without AGENTD_REDIS_URL",
                       METRIC_GAUGE, up_value, r);
}
int64_t redis_latency_ns(const struct redis *r) { return atomic_load(&r->latency_ns); }

/* ---- the blocking probe (worker pool only) ---- */

static int probe_cmd(redisContext *rc, int argc, const char **argv, char *detail, size_t len)
{
    redisReply *rep = redisCommandArgv(rc, argc, argv, NULL);
    if (!rep) {
        snprintf(detail, len, "%.120s", rc->errstr[0] ? rc->errstr : "no reply");
        return -1;
    }
    int ok = rep->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(detail, len, "%s: %.100s", argv[0], rep->str ? rep->str : "error");
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

int redis_probe(struct redis *r, char *detail, size_t len)
{
    const struct redis_url *u = &r->url;
    struct timeval tv = { r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000 };
    redisContext *rc = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv)
                                  : redisConnectWithTimeout(u->host, u->port, tv);
    if (!rc || rc->err) {
        snprintf(detail, len, "%.120s", rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return -1;
    }
    redisSetTimeout(rc, tv);
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    int rc_ok = 0;
    if (u->password[0])
        rc_ok = u->user[0] ? probe_cmd(rc, 3, (const char *[]){ "AUTH", u->user, u->password },
                                       detail, len)
                           : probe_cmd(rc, 2, (const char *[]){ "AUTH", u->password }, detail, len);
    if (rc_ok == 0 && u->db)
        rc_ok = probe_cmd(rc, 2, (const char *[]){ "SELECT", db }, detail, len);
    if (rc_ok == 0)
        rc_ok = probe_cmd(rc, 1, (const char *[]){ "PING" }, detail, len);
    redisFree(rc);
    return rc_ok;
}
