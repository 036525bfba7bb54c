/* `agentd probe`: one blocking GET with a deadline. Blocking is right here:
 * it is a short-lived CLI process, not a loop thread. */
#define _GNU_SOURCE
#include "http/probe.h"
#include "core/clock.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

int http_probe_parse_url(const char *url, struct http_probe_target *t, struct agentd_error *e)
{
    memset(t, 0, sizeof *t);
    if (strncmp(url, "https://", 8) == 0) {
        t->tls = 1;
    } else if (strncmp(url, "http://", 7) != 0) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "%s: only http:// and https:// URLs can be probed", url);
    }
    const char *h = url + (t->tls ? 8 : 7), *end;
    size_t hlen;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: unclosed '[' in the host", url);
        }
        hlen = (size_t)(end - h - 1);
        h++;
        end++;
    } else {
        end = h + strcspn(h, ":/?#");
        hlen = (size_t)(end - h);
    }
    if (hlen == 0 || hlen >= sizeof t->host) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: no usable host", url);
    }
    memcpy(t->host, h, hlen);
    t->port = t->tls ? 443 : 80;
    if (*end == ':') {
        char *pe;
        errno = 0;
        long p = strtol(end + 1, &pe, 10);
        if (errno || pe == end + 1 || p < 1 || p > 65535 || (*pe && *pe != '/' && *pe != '?')) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: bad port", url);
        }
        t->port = (int)p;
        end = pe;
    } else if (*end && *end != '/' && *end != '?') {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: unexpected '%c' after the host", url, *end);
    }
    const char *path = *end ? end : "/";
    if (*path == '?') { /* "http://h?x" -> "/?x" */
        if (snprintf(t->path, sizeof t->path, "/%s", path) >= (int)sizeof t->path)
            goto toolong;
    } else if (snprintf(t->path, sizeof t->path, "%s", path) >= (int)sizeof t->path) {
        goto toolong;
    }
    if (strpbrk(t->path, " \r\n\t")) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: the path has a space or control character", url);
    }
    return 0;
toolong:
    return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s: the path is too long", url);
}

const char *http_probe_local_host(const char *host)
{
    if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0)
        return "::1";
    return host;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - clock_mono_ms();
    return left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

/* A connected socket within the deadline, or a negative AGENTD_E* with the reason. */
static int connect_by(const struct addrinfo *ai, int64_t deadline, struct agentd_error *e)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        return agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "socket: %s", strerror(errno));
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        int rc = agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "connect: %s", strerror(errno));
        close(fd);
        return rc;
    }
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int n;
    do
        n = poll(&p, 1, remaining_ms(deadline));
    while (n < 0 && errno == EINTR);
    int soerr = 0, rc;
    socklen_t len = sizeof soerr;
    if (n == 0) {
        rc = agentd_fail(e, AGENTD_ETIMEOUT, NULL, NULL, "connect: timed out");
    } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        rc = agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "connect: %s", strerror(errno));
    } else if (soerr) {
        rc = agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "connect: %s", strerror(soerr));
    } else {
        return fd;
    }
    close(fd);
    return rc;
}

/* Waits for fd to be ready for `events`; 0, or a negative AGENTD_E* with the reason. */
static int wait_fd(int fd, short events, int64_t deadline, const char *what,
                   struct agentd_error *e)
{
    struct pollfd p = { .fd = fd, .events = events };
    int n;
    do
        n = poll(&p, 1, remaining_ms(deadline));
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return 0;
    return agentd_fail(e, n == 0 ? AGENTD_ETIMEOUT : AGENTD_EUNAVAILABLE, NULL, NULL, "%s: %s", what,
                       n == 0 ? "timed out" : strerror(errno));
}

/* One connection, plain or TLS: a send or receive that waits (bounded) for
 * the socket as the protocol needs. n > 0 bytes, 0 at the end of the
 * stream, or a negative AGENTD_E* with the reason in *e. */
struct conn {
    int fd;
    SSL *ssl;
    int64_t deadline;
};

static int tls_wait(struct conn *c, int rc, const char *what, struct agentd_error *e)
{
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ)
        return wait_fd(c->fd, POLLIN, c->deadline, what, e);
    if (err == SSL_ERROR_WANT_WRITE)
        return wait_fd(c->fd, POLLOUT, c->deadline, what, e);
    char why[160];
    unsigned long le = ERR_get_error();
    if (le)
        ERR_error_string_n(le, why, sizeof why);
    else
        snprintf(why, sizeof why, "%s", err == SSL_ERROR_SYSCALL && errno ? strerror(errno)
                                                                        : "connection closed");
    ERR_clear_error();
    return agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "%s: TLS: %s", what, why);
}

static int conn_tls_start(struct conn *c, const char *host, SSL_CTX **ctxp, struct agentd_error *e)
{
    SSL_CTX *ctx = *ctxp = SSL_CTX_new(TLS_client_method());
    if (!ctx || !(c->ssl = SSL_new(ctx)))
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "TLS: out of memory");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* agentd closes after a Connection: close reply without close_notify;
     * the reply's own framing, not the alert, says it is whole */
    SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
    SSL_set_fd(c->ssl, c->fd);
    if (!strchr(host, ':') && strspn(host, "0123456789.") != strlen(host))
        SSL_set_tlsext_host_name(c->ssl, host); /* SNI for a name, never an address */
    for (;;) {
        int rc = SSL_connect(c->ssl);
        if (rc == 1)
            return 0;
        if ((rc = tls_wait(c, rc, "handshake", e)) != 0)
            return rc;
    }
}

static int conn_send(struct conn *c, const char *buf, size_t len, struct agentd_error *e)
{
    for (;;) {
        if (c->ssl) {
            int n = SSL_write(c->ssl, buf, (int)len);
            if (n > 0)
                return n;
            int rc = tls_wait(c, n, "send", e);
            if (rc != 0)
                return rc;
            continue;
        }
        int rc = wait_fd(c->fd, POLLOUT, c->deadline, "send", e);
        if (rc != 0)
            return rc;
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "send: %s", strerror(errno));
        return (int)n;
    }
}

static int conn_recv(struct conn *c, char *buf, size_t len, struct agentd_error *e)
{
    for (;;) {
        if (c->ssl) {
            int n = SSL_read(c->ssl, buf, (int)len);
            if (n > 0)
                return n;
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                ERR_clear_error();
                return 0; /* closed, with or without close_notify: the reply is what we have */
            }
            int rc = tls_wait(c, n, "receive", e);
            if (rc != 0)
                return rc;
            continue;
        }
        int rc = wait_fd(c->fd, POLLIN, c->deadline, "receive", e);
        if (rc != 0)
            return rc;
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? 0 /* closed after its reply */
                                       : agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL,
                                                     "receive: %s", strerror(errno));
        return (int)n;
    }
}

int http_probe_get(const struct http_probe_target *t, int64_t timeout_ms, int *status,
                   char *body, size_t bodylen, struct agentd_error *e)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(t->host, port, &hints, &res);
    if (gai != 0) {
        return agentd_fail(e, AGENTD_EUNAVAILABLE, NULL, NULL, "%s: %s", t->host,
                           gai_strerror(gai));
    }
    int fd = AGENTD_ETIMEOUT; /* no address tried before the deadline */
    for (struct addrinfo *ai = res; ai && fd < 0 && remaining_ms(deadline) > 0; ai = ai->ai_next)
        fd = connect_by(ai, deadline, e);
    freeaddrinfo(res);
    if (fd == AGENTD_ETIMEOUT)
        agentd_fail(e, AGENTD_ETIMEOUT, NULL, NULL, "connect: timed out");
    if (fd < 0)
        return fd;

    struct conn c = { .fd = fd, .deadline = deadline };
    SSL_CTX *ctx = NULL;
    char req[1400];
    int ipv6 = strchr(t->host, ':') != NULL;
    int rlen = snprintf(req, sizeof req,
                        "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: agentd-probe\r\n"
                        "Accept: application/json\r\nConnection: close\r\n\r\n",
                        t->path, ipv6 ? "[" : "", t->host, ipv6 ? "]" : "", t->port);
    int rc;
    if (rlen <= 0 || rlen >= (int)sizeof req) {
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "request too long");
        goto out;
    }
    if (t->tls && (rc = conn_tls_start(&c, t->host, &ctx, e)) != 0)
        goto out;
    for (int off = 0; off < rlen;) {
        int n = conn_send(&c, req + off, (size_t)(rlen - off), e);
        if (n <= 0) {
            rc = n < 0 ? n : AGENTD_EUNAVAILABLE;
            goto out;
        }
        off += n;
    }

    /* Read to EOF (Connection: close), keeping the first 8 KiB: the status
     * line, the head and the start of the body are all a probe needs. */
    char resp[8192];
    size_t have = 0;
    for (;;) {
        char scratch[4096];
        char *dst = have < sizeof resp - 1 ? resp + have : scratch;
        size_t room = have < sizeof resp - 1 ? sizeof resp - 1 - have : sizeof scratch;
        int n = conn_recv(&c, dst, room, e);
        if (n < 0) {
            rc = n;
            goto out;
        }
        if (n == 0)
            break;
        if (dst == resp + have)
            have += (size_t)n;
    }
    resp[have] = 0;
    int major = 0, minor = 0, code = 0;
    if (sscanf(resp, "HTTP/%d.%d %3d", &major, &minor, &code) != 3 || code < 100 || code > 599) {
        rc = agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL, "not an HTTP response%s",
                         have ? "" : " (the connection closed)");
        goto out;
    }
    *status = code;
    if (body && bodylen) {
        const char *b = strstr(resp, "\r\n\r\n");
        snprintf(body, bodylen, "%s", b ? b + 4 : "");
    }
    rc = 0;
out:
    SSL_free(c.ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}
