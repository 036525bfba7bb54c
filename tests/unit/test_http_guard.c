/* http/guard.c's output side: a reply added to the filter in many pieces (as
 * evhttp writes one, a line per header) reaches the socket whole, reply after
 * reply, and the unflushed-connection count follows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "http/guard.h"

/* reads what has arrived on fd (non-blocking) into buf after *n */
static void drain_into(int fd, char *buf, size_t cap, size_t *n)
{
    for (;;) {
        ssize_t r = read(fd, buf + *n, cap - *n);
        if (r <= 0)
            return;
        *n += (size_t)r;
    }
}

static void test_pieces_reach_the_socket(void **state)
{
    (void)state;
    atomic_int conns = 0, unflushed = 0;
    struct guard_limits lim = { .max_header_bytes = 8192, .max_body_bytes = 1 << 20,
                                .read_timeout_ms = 10000, .max_connections = 10,
                                .connections = &conns, .unflushed = &unflushed };
    struct event_base *base = event_base_new();
    assert_non_null(base);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    struct bufferevent *bev = guard_bev_new(base, &lim, NULL);
    assert_non_null(bev);
    assert_int_equal(atomic_load(&conns), 1);
    assert_int_equal(bufferevent_setfd(bev, sv[0]), 0);
    assert_int_equal(bufferevent_enable(bev, EV_READ | EV_WRITE), 0);

    char want[4096], got[4096];
    size_t wn = 0, gn = 0;
    for (int reply = 0; reply < 3; reply++) { /* the kick must come back for each */
        for (int piece = 0; piece < 10; piece++) {
            char line[64];
            int k = snprintf(line, sizeof line, "reply %d header %d: value\r\n", reply, piece);
            assert_int_equal(evbuffer_add(bufferevent_get_output(bev), line, (size_t)k), 0);
            memcpy(want + wn, line, (size_t)k);
            wn += (size_t)k;
            assert_int_equal(atomic_load(&unflushed), 1); /* bytes queued: counted */
        }
        for (int i = 0; i < 20 && (atomic_load(&unflushed) || gn < wn); i++) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            drain_into(sv[1], got, sizeof got, &gn);
        }
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, wn);
        assert_int_equal(atomic_load(&unflushed), 0); /* every byte in the kernel */
    }
    bufferevent_free(bev); /* closes sv[0] */
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(atomic_load(&conns), 0);
    close(sv[1]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_reach_the_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
