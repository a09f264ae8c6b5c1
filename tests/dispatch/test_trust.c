/*
 * Distribution you can trust: failure detection (heartbeats), limits
 * (handshake timeout, max connections) and authentication (the cookie),
 * between real systems and raw sockets in one process.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define U(x) ((unsigned long long)(x))

/* A started system, or the test fails saying why. */
static ax_system_t *start_net(const ax_config_t *cfg)
{
    ax_system_t *sys = nt_start(cfg);

    cr_assert_not_null(sys, "system with network: %s", ax_error_detail());
    return sys;
}

static ax_net_stats_t nstats(ax_system_t *sys)
{
    ax_net_stats_t s;

    cr_assert_eq(ax_net_stats(sys, &s), AX_OK);
    return s;
}

/* A connection to 127.0.0.1:port, or the test fails. */
static int connect_port(uint16_t port)
{
    int fd = nt_connect_port(port);

    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    return fd;
}

/* Whether the server closed fd within secs (reads and drops what comes). */
static bool closed_within(int fd, double secs)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
    double end = axt_now() + secs;
    char buf[256];

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (axt_now() < end) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);

        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return true;
    }
    return false;
}

/* ---- failure detection ------------------------------------------------------------ */

/*
 * A blackhole: a socket that completes the handshake and then neither
 * reads nor answers. The sender's unacked message is dead-lettered and
 * the loss is reported with AX_ETIMEDOUT within heartbeat_timeout_ms (plus
 * a tick and scheduling slack, the bound the issue allows: 1 s).
 */
Test(trust, silent_peer_is_detected)
{
    ax_config_t cfg = nt_config();
    ax_system_t *a;
    nt_events_t ev;
    nt_dl_t dl = {0};
    ax_ref_t evr, dlr;
    ax_net_event_t e;
    ax_addr_t hole_addr;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    unsigned char buf[512];
    size_t from = 0;
    int lfd, fd;
    ssize_t k;
    double t0, dt;

    /* The blackhole listens; a connects to it on the first message. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    cr_assert_eq(ax_addr_parse("127.0.0.1:1", &hole_addr), AX_OK);
    hole_addr.port = ntohs(sa.sin_port);

    cfg.network.heartbeat_interval_ms = 100;
    cfg.network.heartbeat_timeout_ms = 500;
    a = start_net(&cfg);
    nt_events_setup(&ev);
    cr_assert_eq(ax_spawn(a, &nt_events_vtable, &ev, &evr), AX_OK);
    cr_assert_eq(ax_net_subscribe(a, evr), AX_OK);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dlr), AX_OK);
    ax_set_dead_letter_actor(a, dlr);
    cr_assert_eq(nt_send_seq(nt_ref_to(a, hole_addr.port, "void"), 1), AX_OK);

    /* Answer a's Hello with a Hello of the same session (flags 0), as an
     * Axon acceptor would, then go silent. */
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0);
    k = recv(fd, buf, sizeof buf, 0);
    cr_assert_gt(k, 8, "no Hello from a");
    {
        msgpack_unpacked u;
        size_t off = 0, n;
        unsigned char hello[256];
        uint64_t session;

        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, (const char *)buf + 8, (size_t)k - 8, &off), MSGPACK_UNPACK_SUCCESS);
        cr_assert(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 9);
        session = u.data.via.array.ptr[4].via.u64;
        msgpack_unpacked_destroy(&u);
        n = nt_hello_frame(hello, sizeof hello, &hole_addr, 77, session);
        cr_assert_gt(n, 0);
        cr_assert_eq(send(fd, hello, n, MSG_NOSIGNAL), (ssize_t)n);
    }
    cr_assert(nt_events_wait(&ev, &from, AX_NET_ESTABLISHED, &hole_addr, WAIT_S, &e), "no ESTABLISHED");
    t0 = axt_now();
    cr_assert(nt_events_wait(&ev, &from, AX_NET_LOST, &hole_addr, WAIT_S, &e), "the silence was not detected");
    dt = axt_now() - t0;
    cr_log_info("silent peer detected after %.0f ms (timeout 500 ms)", dt * 1000.0);
    cr_assert_eq(e.status, AX_ETIMEDOUT, "lost with %s", ax_status_name(e.status));
    cr_assert_lt(dt, 0.5 + 1.0, "detected late: %.3f s", dt);
    WAIT_UNTIL(atomic_load(&dl.count) >= 1, "the unacked message was not dead-lettered");
    cr_assert_eq(nt_dl_status(&dl, AX_ECLOSED), 1);
    cr_assert_eq(nstats(a).heartbeat_timeouts, 1);
    close(fd);
    close(lfd);
    axt_destroy(&a);
}

/* A quiet connection is kept alive by heartbeats: nothing is lost or
 * re-established while both sides idle for several timeouts. The timeout
 * leaves a network thread about 750 ms off the CPU (1000 less the 200 ms
 * interval and a 50 ms tick) before a heartbeat is late
 * (two systems' threads share the machine with another test binary). */
Test(trust, idle_connection_stays_up)
{
    ax_config_t cfg = nt_config();
    ax_system_t *a, *b;
    nt_node_t sink;
    ax_ref_t sref, dst;
    uint64_t session;

    cfg.network.heartbeat_interval_ms = 200;
    cfg.network.heartbeat_timeout_ms = 1000;
    a = start_net(&cfg);
    b = start_net(&cfg);
    nt_node_setup(&sink, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sref), AX_OK);
    cr_assert_eq(ax_register(b, sref, "sink"), AX_OK);
    dst = nt_ref_to(a, nt_port(b), "sink");
    cr_assert_eq(nt_send_seq(dst, 0), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "first");
    session = atomic_load(&sink.session);
    axt_sleep_us(3000000); /* three timeouts of silence from the user */
    cr_assert_eq(nt_send_seq(dst, 1), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 2, "second");
    cr_assert_eq(atomic_load(&sink.session), session, "the idle connection was lost and replaced");
    cr_assert_eq(nstats(a).heartbeat_timeouts + nstats(b).heartbeat_timeouts, 0);
    axt_destroy(&a);
    axt_destroy(&b);
}

/* ---- limits ---------------------------------------------------------------------- */

Test(trust, handshake_timeout_closes_strangers)
{
    ax_config_t cfg = nt_config();
    ax_system_t *b;
    int fd;

    cfg.network.handshake_timeout_ms = 200;
    b = start_net(&cfg);
    fd = connect_port(nt_port(b));
    cr_assert(closed_within(fd, WAIT_S), "a silent stranger was kept");
    cr_assert_eq(nstats(b).handshake_timeouts, 1);
    close(fd);
    axt_destroy(&b);
}

Test(trust, max_connections_refuses_the_rest)
{
    ax_config_t cfg = nt_config();
    ax_system_t *b;
    int fds[6];
    size_t closed = 0;

    cfg.network.max_connections = 4;
    b = start_net(&cfg);
    for (size_t i = 0; i < 6; i++)
        fds[i] = connect_port(nt_port(b));
    WAIT_UNTIL(nstats(b).refused == 2, "refused %llu", U(nstats(b).refused));
    for (size_t i = 0; i < 6; i++)
        closed += closed_within(fds[i], 0.2);
    cr_assert_eq(closed, 2, "%zu connections closed, not the 2 above the cap", closed);
    cr_assert_eq(nstats(b).connections, 4);
    for (size_t i = 0; i < 6; i++)
        close(fds[i]);
    axt_destroy(&b);
}

/* ---- authentication ------------------------------------------------------------- */

typedef struct auth_case {
    const char *a_cookie, *b_cookie;
    bool delivered;
} auth_case_t;

static void run_auth(const auth_case_t *c)
{
    ax_config_t ca = nt_config(), cb = nt_config();
    ax_system_t *a, *b;
    nt_node_t sink;
    nt_dl_t dl = {0};
    ax_ref_t sref, dlr;

    ca.network.max_retries = 1;
    ca.network.backoff_initial_ms = 10;
    snprintf(ca.network.cookie, sizeof ca.network.cookie, "%s", c->a_cookie);
    snprintf(cb.network.cookie, sizeof cb.network.cookie, "%s", c->b_cookie);
    a = start_net(&ca);
    b = start_net(&cb);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dlr), AX_OK);
    ax_set_dead_letter_actor(a, dlr);
    nt_node_setup(&sink, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sref), AX_OK);
    cr_assert_eq(ax_register(b, sref, "sink"), AX_OK);
    cr_assert_eq(nt_send_seq(nt_ref_to(a, nt_port(b), "sink"), 7), AX_OK);
    if (c->delivered) {
        WAIT_UNTIL(atomic_load(&sink.received) == 1, "not delivered with matching secrets");
        cr_assert_eq(nstats(a).auth_failures + nstats(b).auth_failures, 0);
    } else {
        WAIT_UNTIL(atomic_load(&dl.count) == 1, "the message was neither delivered nor dead-lettered");
        cr_assert_eq(atomic_load(&sink.received), 0, "delivered across a failed authentication");
        cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT), 1);
        cr_assert_gt(nstats(a).auth_failures + nstats(b).auth_failures, 0);
    }
    axt_destroy(&a);
    axt_destroy(&b);
}

Test(trust, auth_matching_secrets)
{
    run_auth(&(auth_case_t){"same secret", "same secret", true});
}

Test(trust, auth_wrong_secret)
{
    run_auth(&(auth_case_t){"one secret", "another secret", false});
}

Test(trust, auth_secret_on_initiator_only)
{
    run_auth(&(auth_case_t){"only here", "", false});
}

Test(trust, auth_secret_on_acceptor_only)
{
    run_auth(&(auth_case_t){"", "only there", false});
}

/* ---- the secure default and the cookie file ------------------------------------- */

Test(trust, no_secret_no_wildcard_listen)
{
    ax_config_t cfg = nt_config();
    ax_system_t *sys = NULL;

    strcpy(cfg.network.listen, "0.0.0.0:0");
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_net_start(sys), AX_EINVAL, "listening beyond loopback without a secret was allowed");
    cr_assert_not_null(strstr(ax_error_detail(), "network.cookie"), "detail: %s", ax_error_detail());
    ax_system_destroy(&sys);

    cfg.network.allow_unauthenticated = true;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_net_start(sys), AX_OK, "allow_unauthenticated: %s", ax_error_detail());
    ax_system_destroy(&sys);
}

Test(trust, cookie_file_must_be_private_and_is_never_echoed)
{
    static const char secret[] = "s3cret-d0-not-print";
    char path[] = "/tmp/axon-cookie-XXXXXX";
    ax_config_t cfg = nt_config();
    ax_system_t *sys = NULL;
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, secret, sizeof secret - 1), (ssize_t)(sizeof secret - 1));
    close(fd);
    cr_assert_eq(chmod(path, 0644), 0);
    snprintf(cfg.network.cookie_file, sizeof cfg.network.cookie_file, "%s", path);
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_net_start(sys), AX_EINVAL, "a world-readable cookie file was accepted");
    cr_assert_not_null(strstr(ax_error_detail(), path), "detail: %s", ax_error_detail());
    cr_assert_null(strstr(ax_error_detail(), secret), "the secret appeared in an error");
    ax_system_destroy(&sys);

    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_net_start(sys), AX_OK, "a private cookie file: %s", ax_error_detail());
    ax_system_destroy(&sys);
    unlink(path);
}
