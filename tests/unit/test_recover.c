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
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "agent/heartbeat.h"
#include "core/instance.h"
#include "store/store.h"

#include <stdlib.h>
#include "agent/recover.h"
#include "agent/runner.h"
#include "agent/turn.h"

#define OURS "vm@pid:[4026531836]/100/aaaaaa"
#define LEASE 90000

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

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
    assert_false(instance_orphaned(OURS, OURS, 10 * LEASE, LEASE, NULL, NULL, fake_dead));
    /* an old row without an instance is dead */
    assert_true(instance_orphaned(OURS, NULL, 0, LEASE, NULL, NULL, fake_dead));
    /* this host and namespace: the pid decides at once */
    assert_true(instance_orphaned(OURS, "vm@pid:[4026531836]/200/bbbbbb", 0, LEASE, NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", 0, LEASE, NULL, NULL, fake_dead));
    /* ... and a live pid still dies by its lease */
    assert_true(instance_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", LEASE + 1, LEASE,
                                    NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "vm@pid:[4026531836]/201/bbbbbb", LEASE, LEASE,
                                     NULL, NULL, fake_dead));
    int before = probes;
    /* another pid namespace or host: never the pid (it means another process) */
    assert_false(instance_orphaned(OURS, "vm@pid:[4026532000]/200/cccccc", 0, LEASE, NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "other@pid:[4026531836]/200/cccccc", 0, LEASE,
                                     NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "vm2@pid:[4026531836]/200/cccccc", 0, LEASE,
                                     NULL, NULL, fake_dead));
    assert_true(instance_orphaned(OURS, "other@pid:[4026531836]/200/cccccc", LEASE + 1, LEASE,
                                    NULL, NULL, fake_dead));
    /* a host that is a prefix of ours is another host */
    assert_false(instance_orphaned(OURS, "v/200/cccccc", 0, LEASE, NULL, NULL, fake_dead));
    assert_int_equal(probes, before);
    /* malformed instances fall back to the lease */
    assert_false(instance_orphaned(OURS, "vm@pid:[4026531836]/x200/b", 0, LEASE, NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "vm@pid:[4026531836]/200", 0, LEASE, NULL, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "", 0, LEASE, NULL, NULL, fake_dead));
    assert_true(instance_orphaned(OURS, "", LEASE + 1, LEASE, NULL, NULL, fake_dead));
}

static int lock_answer;

static int fake_lock(void *ud, const char *instance)
{
    (void)ud;
    (void)instance;
    return lock_answer;
}

static void test_lock_file_decides_first(void **state)
{
    (void)state;
    dead_pid = 200;
    /* held: alive, even with a dead pid and an old heartbeat */
    lock_answer = 1;
    assert_false(instance_orphaned(OURS, "vm@pid:[4026531836]/200/b", 10 * LEASE, LEASE,
                                     fake_lock, NULL, fake_dead));
    /* free: dead at once, on another host or pid namespace too (a restarted
     * container on the same volume) */
    lock_answer = 0;
    assert_true(instance_orphaned(OURS, "vm@pid:[4026532999]/1/b", 0, LEASE, fake_lock, NULL,
                                    fake_dead));
    /* no file: the pid and lease rules */
    lock_answer = -1;
    assert_true(instance_orphaned(OURS, "vm@pid:[4026531836]/200/b", 0, LEASE, fake_lock, NULL,
                                    fake_dead));
    assert_false(instance_orphaned(OURS, "vm@pid:[4026532999]/1/b", 0, LEASE, fake_lock, NULL,
                                     fake_dead));
    /* ours is never probed */
    lock_answer = 0;
    assert_false(instance_orphaned(OURS, OURS, 0, LEASE, fake_lock, NULL, fake_dead));
}

/* The heartbeat verdict: an instance named dead is orphaned at once on
 * another host (where neither lock file nor pid can tell), a lock file
 * that is held still wins, and a new verdict replaces the old one. */
static void test_heartbeat_verdict(void **state)
{
    (void)state;
    dead_pid = -1;
    const char *far = "replica-b/42/cafe01";
    assert_int_equal(instance_probe(NULL, far), -1);
    assert_false(instance_orphaned(OURS, far, 0, LEASE, instance_probe, NULL, fake_dead));
    char *ids[] = { (char *)far };
    assert_int_equal(instance_dead_set(ids, 1), 0);
    assert_true(instance_heartbeat_dead(far));
    assert_int_equal(instance_probe(NULL, far), 0);
    assert_true(instance_orphaned(OURS, far, 0, LEASE, instance_probe, NULL, fake_dead));
    assert_false(instance_orphaned(OURS, "replica-c/42/cafe02", 0, LEASE, instance_probe, NULL,
                                   fake_dead));
    /* held lock file: alive whatever the heartbeat says */
    lock_answer = 1;
    assert_false(instance_orphaned(OURS, far, 0, LEASE, fake_lock, NULL, fake_dead));
    assert_int_equal(instance_dead_set(NULL, 0), 0);
    assert_false(instance_heartbeat_dead(far));
    assert_false(instance_orphaned(OURS, far, 0, LEASE, instance_probe, NULL, fake_dead));
}

static int64_t hb_now = 1000000;
static int64_t hb_clock(void *ud)
{
    (void)ud;
    return hb_now;
}

/* The heartbeat against a real store: each beat writes our row; another
 * instance whose row stopped is dead once (counted as new at one beat
 * only), named in the verdict, and reaped an hour later; a clean stop
 * removes our row. */
static void test_heartbeat_beats_and_judges(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_heartbeat_XXXXXX", url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "%s/db.sqlite", dir);
    struct store *st = NULL;
    struct store_options o = { .url = url, .now = hb_clock };
    assert_int_equal(store_open(&o, &st, NULL), 0);
    struct heartbeat me, other;
    heartbeat_init(&me, st, "replica-a/1/aa", 10000);
    heartbeat_init(&other, st, "replica-b/2/bb", 10000);
    assert_string_equal(me.host, "replica-a");
    assert_int_equal(heartbeat_every_ms(10000), 2000);
    assert_int_equal(heartbeat_every_ms(1000), 250);
    assert_int_equal(heartbeat_beat(&other, hb_now), 0);
    assert_int_equal(heartbeat_beat(&me, hb_now), 0);
    assert_false(instance_heartbeat_dead("replica-b/2/bb"));
    hb_now += 10000; /* exactly the bound: still alive */
    assert_int_equal(heartbeat_beat(&me, hb_now), 0);
    assert_false(instance_heartbeat_dead("replica-b/2/bb"));
    hb_now += 1;
    assert_int_equal(heartbeat_beat(&me, hb_now), 1);
    assert_true(instance_heartbeat_dead("replica-b/2/bb"));
    assert_false(instance_heartbeat_dead("replica-a/1/aa"));
    hb_now += 2000;
    assert_int_equal(heartbeat_beat(&me, hb_now), 0); /* not new any more */
    assert_true(instance_heartbeat_dead("replica-b/2/bb"));
    hb_now += 3600LL * 1000; /* an hour on: its row goes, the verdict forgets it */
    assert_int_equal(heartbeat_beat(&me, hb_now), 0);
    assert_false(instance_heartbeat_dead("replica-b/2/bb"));
    struct store_instance *v = NULL;
    size_t n = 0;
    assert_int_equal(store_instance_list(st, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "replica-a/1/aa");
    store_instance_list_free(v, n);
    heartbeat_stop(&me);
    assert_int_equal(store_instance_list(st, &v, &n), 0);
    assert_int_equal(n, 0);
    heartbeat_free(&me);
    heartbeat_free(&other);
    store_close(st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* AGENTD_INSTANCE_HOST names the host part of the id (no pid namespace). */
static void test_instance_host_override(void **state)
{
    (void)state;
    char id[192];
    instance_set_host("replica/a");
    instance_id(id, sizeof id);
    char want[64];
    snprintf(want, sizeof want, "replica_a/%ld/", (long)getpid());
    assert_int_equal(strncmp(id, want, strlen(want)), 0);
    instance_set_host(NULL);
    instance_id(id, sizeof id);
    assert_int_not_equal(strncmp(id, "replica_a/", 10), 0);
}

static void test_instance_lock_files(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/agentd-lock-XXXXXX";
    char *base = mkdtemp(tmpl);
    assert_non_null(base);
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s/instances", base);
    struct agent ag = { 0 };
    agent_init(&ag);
    assert_int_equal(agent_instance_lock(&ag, dir), 0);
    instance_lock_path(dir, ag.instance, path, sizeof path);
    assert_int_equal(access(path, F_OK), 0);
    assert_null(strchr(path + strlen(dir) + 1, '/')); /* one file name */
    assert_int_equal(instance_lock_probe(dir, ag.instance), 1); /* held: alive */
    assert_int_equal(instance_lock_probe(dir, "nobody/1/x"), -1); /* no file */
    /* a process that holds its lock, then dies */
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct agent other = { 0 };
        agent_init(&other);
        snprintf(other.instance, sizeof other.instance, "otherhost@ns/77/abc");
        char ok = agent_instance_lock(&other, dir) == 0 ? 'y' : 'n';
        if (write(pipefd[1], &ok, 1) != 1)
            _exit(2);
        sleep_ms(5000);
        _exit(0);
    }
    char ok = 0;
    assert_int_equal(read(pipefd[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    assert_int_equal(instance_lock_probe(dir, "otherhost@ns/77/abc"), 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_int_equal(instance_lock_probe(dir, "otherhost@ns/77/abc"), 0); /* dead */
    /* the file stays, so each of its turns finds it dead */
    assert_int_equal(instance_lock_probe(dir, "otherhost@ns/77/abc"), 0);
    /* the reaper removes the dead one's file, never a live one's */
    assert_int_equal(instance_lock_reap(dir), 1);
    assert_int_equal(instance_lock_probe(dir, "otherhost@ns/77/abc"), -1);
    assert_int_equal(instance_lock_probe(dir, ag.instance), 1);
    assert_int_equal(instance_lock_reap(dir), 0);
    /* no temporary file is left behind by a take */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
    /* our own stop removes our file */
    agent_destroy(&ag);
    assert_int_equal(access(path, F_OK), -1);
    close(pipefd[0]);
    close(pipefd[1]);
    rmdir(dir);
    rmdir(base);
}


static void test_pid_probe(void **state)
{
    (void)state;
    assert_true(instance_pid_dead((long)getpid())); /* ours: the process before us */
    assert_true(instance_pid_dead(0));
    assert_true(instance_pid_dead(-5));
    /* a live child */
    pid_t live = fork();
    assert_true(live >= 0);
    if (live == 0) {
        sleep_ms(5000);
        _exit(0);
    }
    assert_false(instance_pid_dead(live));
    /* a zombie: exited, not yet reaped (kill(pid, 0) still succeeds) */
    pid_t z = fork();
    assert_true(z >= 0);
    if (z == 0)
        _exit(0);
    for (int i = 0; i < 200 && !instance_pid_dead(z); i++)
        sleep_ms(5);
    assert_true(instance_pid_dead(z));
    assert_int_equal(kill(z, 0), 0); /* the zombie is still there */
    /* reaped: gone */
    assert_int_equal(waitpid(z, NULL, 0), z);
    assert_true(instance_pid_dead(z));
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    assert_true(instance_pid_dead(live));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orphan_rules),
        cmocka_unit_test(test_pid_probe),
        cmocka_unit_test(test_lock_file_decides_first),
        cmocka_unit_test(test_instance_lock_files),
        cmocka_unit_test(test_heartbeat_verdict),
        cmocka_unit_test(test_instance_host_override),
        cmocka_unit_test(test_heartbeat_beats_and_judges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
