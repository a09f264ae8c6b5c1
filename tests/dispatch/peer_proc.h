/*
 * Tests' handle on a net_peer process (tests/dispatch/net_peer.c): start it,
 * read its lines, reap it. Used by test_net_proc and test_hostile.
 */
#ifndef AXON_TESTS_DISPATCH_PEER_PROC_H
#define AXON_TESTS_DISPATCH_PEER_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/dispatch/net_helpers.h"

#ifndef NET_PEER_PATH
#error "NET_PEER_PATH must name the net_peer program"
#endif

/* ---- the peer process --------------------------------------------------------- */

typedef struct peer {
    pid_t pid;
    int out; /* its stdout */
    uint16_t port;
} peer_t;

/* Read one line of the peer's output (without the newline); false at the
 * end of its output. Bounded. */
static bool peer_line(peer_t *p, char *line, size_t cap)
{
    double end = axt_now() + WAIT_S;
    size_t n = 0;

    for (;;) {
        struct pollfd pf = {.fd = p->out, .events = POLLIN};
        char c;
        ssize_t k;

        cr_assert(axt_now() < end, "net_peer said nothing for %.0f s", WAIT_S);
        if (poll(&pf, 1, 100) <= 0)
            continue;
        k = read(p->out, &c, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        if (c == '\n') {
            line[n] = '\0';
            return true;
        }
        if (n + 1 < cap)
            line[n++] = c;
    }
}

/* Start net_peer on 127.0.0.1:port (0: any) and wait for READY. nofile,
 * when not NULL, is its RLIMIT_NOFILE (net_peer --nofile). */
static AXT_UNUSED peer_t peer_start(uint16_t port, const char *nofile, const char *name, const char *reply)
{
    peer_t p = {0};
    char listen[32], line[128];
    unsigned got = 0;
    pid_t parent = getpid();
    int fds[2];

    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    p.pid = fork();
    cr_assert_geq(p.pid, 0, "fork: %s", strerror(errno));
    if (p.pid == 0) {
        /* Only async-signal-safe calls between fork and exec. The peer dies
         * with this process, whatever ends it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fds[1], STDOUT_FILENO);
        if (nofile != NULL)
            execl(NET_PEER_PATH, "net_peer", "--listen", listen, "--name", name, "--reply", reply, "--nofile",
                  nofile, (char *)NULL);
        else
            execl(NET_PEER_PATH, "net_peer", "--listen", listen, "--name", name, "--reply", reply, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p.out = fds[0];
    cr_assert(peer_line(&p, line, sizeof line), "net_peer exited before READY");
    cr_assert_eq(sscanf(line, "READY %u", &got), 1, "net_peer said \"%s\"", line);
    cr_assert(got > 0 && got < 65536);
    cr_assert(port == 0 || got == port);
    p.port = (uint16_t)got;
    return p;
}

/* waitpid, bounded. */
static AXT_UNUSED int peer_reap(peer_t *p)
{
    double end = axt_now() + WAIT_S;
    int status = 0;
    pid_t r;

    while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && axt_now() < end)
        axt_sleep_us(1000);
    cr_assert_eq(r, p->pid, "net_peer (pid %d) did not exit", (int)p->pid);
    close(p->out);
    p->pid = 0;
    return status;
}

typedef struct peer_report {
    unsigned long long received, out_of_order, gaps, bad;
} peer_report_t;

/* SIGTERM: a graceful stop; the peer reports what it received. */
static AXT_UNUSED peer_report_t peer_stop(peer_t *p)
{
    peer_report_t r = {0};
    char line[256];
    bool found = false;
    int status;

    cr_assert_eq(kill(p->pid, SIGTERM), 0);
    while (peer_line(p, line, sizeof line))
        if (sscanf(line, "RECEIVED %llu OUT_OF_ORDER %llu GAPS %llu BAD %llu", &r.received, &r.out_of_order,
                   &r.gaps, &r.bad) == 4)
            found = true;
    status = peer_reap(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "net_peer ended with status 0x%x", status);
    cr_assert(found, "net_peer did not report");
    return r;
}

static AXT_UNUSED void peer_kill(peer_t *p)
{
    int status;

    cr_assert_eq(kill(p->pid, SIGKILL), 0);
    status = peer_reap(p);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* ---- this side ------------------------------------------------------------------ */

#endif
