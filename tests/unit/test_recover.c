/* Crash recovery's decisions: which running turns belong to a dead process
 * (by pid on this host and pid namespace, else by heartbeat age), and the
 * pid probe itself (gone, zombie, ours, alive). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/turn.h"

#define OURS "vm@pid:[4026531836]/100/aaaaaa"
#define LEASE 90000

static long dead_pid = -1; /* the fake probe's one dead pid */
static int probes;

static int fake_dead(long pid)
{
    probes++;
    return pid == dead_pid;
}

static void test_orphan_rules(void **state)
{
    (void)state;
    dead_pid = 200;
    probes = 0;
    /* ours is alive, however old its heartbeat */
    assert_false(agent_turn_orphaned(OURS, OURS, 10 * LEASE, LEASE, fake_dead));
    /* an old row without an instance is dead */
    assert_true(agent_turn_orphaned(OURS, NULL, 0, LEASE, fake_dead));
    /* this host and namespace: the pid decides at once */
    assert_true(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/200/bbbbbb", 0, LEASE, fake_dead));
    assert_false(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", 0, LEASE, fake_dead));
    /* ... and a live pid still dies by its lease */
    assert_true(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", LEASE + 1, LEASE,
                                    fake_dead));
    assert_false(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", LEASE, LEASE,
                                     fake_dead));
    int before = probes;
    /* another pid namespace or host: never the pid (it means another process) */
    assert_false(agent_turn_orphaned(OURS, "vm@pid:[4026532000]/200/cccccc", 0, LEASE, fake_dead));
    assert_false(agent_turn_orphaned(OURS, "other@pid:[4026531836]/200/cccccc", 0, LEASE,
                                     fake_dead));
    assert_false(agent_turn_orphaned(OURS, "vm2@pid:[4026531836]/200/cccccc", 0, LEASE,
                                     fake_dead));
    assert_true(agent_turn_orphaned(OURS, "other@pid:[4026531836]/200/cccccc", LEASE + 1, LEASE,
                                    fake_dead));
    /* a host that is a prefix of ours is another host */
    assert_false(agent_turn_orphaned(OURS, "v/200/cccccc", 0, LEASE, fake_dead));
    assert_int_equal(probes, before);
    /* malformed instances fall back to the lease */
    assert_false(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/x200/b", 0, LEASE, fake_dead));
    assert_false(agent_turn_orphaned(OURS, "vm@pid:[4026531836]/200", 0, LEASE, fake_dead));
    assert_false(agent_turn_orphaned(OURS, "", 0, LEASE, fake_dead));
    assert_true(agent_turn_orphaned(OURS, "", LEASE + 1, LEASE, fake_dead));
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_pid_probe(void **state)
{
    (void)state;
    assert_true(agent_pid_dead((long)getpid())); /* ours: the process before us */
    assert_true(agent_pid_dead(0));
    assert_true(agent_pid_dead(-5));
    /* a live child */
    pid_t live = fork();
    assert_true(live >= 0);
    if (live == 0) {
        sleep_ms(5000);
        _exit(0);
    }
    assert_false(agent_pid_dead(live));
    /* a zombie: exited, not yet reaped (kill(pid, 0) still succeeds) */
    pid_t z = fork();
    assert_true(z >= 0);
    if (z == 0)
        _exit(0);
    for (int i = 0; i < 200 && !agent_pid_dead(z); i++)
        sleep_ms(5);
    assert_true(agent_pid_dead(z));
    assert_int_equal(kill(z, 0), 0); /* the zombie is still there */
    /* reaped: gone */
    assert_int_equal(waitpid(z, NULL, 0), z);
    assert_true(agent_pid_dead(z));
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    assert_true(agent_pid_dead(live));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orphan_rules),
        cmocka_unit_test(test_pid_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
