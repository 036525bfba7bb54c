/* Test helper shared by test_llm_client.c and test_http_client.c: the
 * Python fake LLM (tests/fake_llm/fake_llm.py) started on a free port. */
#ifndef AGENTD_TEST_FAKE_LLM_FIXTURE_H
#define AGENTD_TEST_FAKE_LLM_FIXTURE_H

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t fake_pid;
static int fake_port;

/* Forks the fake and reads the port it prints: 0, or -1. */
static int fake_start(void)
{
    char src[1024], script[1100];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(script, sizeof script, "%s/../fake_llm/fake_llm.py", dirname(src));
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fake_pid = fork();
    if (fake_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", script, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[32] = "";
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    close(fds[0]);
    fake_port = atoi(line);
    return fake_port > 0 ? 0 : -1;
}

/* Stops the fake fake_start started, if it did. */
static void fake_stop(void)
{
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
        fake_pid = 0;
    }
}

#endif
