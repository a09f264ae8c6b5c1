/*
 * The port under abuse (issue: no remote crash, no lockout, bounded memory
 * before the handshake, exact accounting for oversized messages).
 *
 * A stranger is whoever connects to a listening system; these tests do to
 * a server what an attacker would, with raw sockets, and check that
 * established peers keep being served, that memory stays bounded, and that
 * every oversized message has exactly one outcome. The servers under
 * attack that need their own limits (descriptors) or their own RSS run as
 * net_peer processes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"
#include "tests/dispatch/peer_proc.h"

#define U(x) ((unsigned long long)(x))

/* A started system, or the test fails saying why. */
static ax_system_t *start_net(const ax_config_t *cfg)
{
    ax_system_t *sys = nt_start(cfg);

    cr_assert_not_null(sys, "system with network: %s", ax_error_detail());
    return sys;
}

/* ---- raw strangers -------------------------------------------------------------- */

static void put_header(unsigned char h[8], uint32_t len, uint8_t type)
{
    h[0] = (unsigned char)(len >> 24);
    h[1] = (unsigned char)(len >> 16);
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    h[4] = type;
    h[5] = h[6] = h[7] = 0;
}

/* Read until the peer closes (bounded); how many bytes came. */
static size_t read_to_close(int fd)
{
    unsigned char buf[512];
    size_t got = 0;
    double end = axt_now() + WAIT_S;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (axt_now() < end) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);

        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return got;
        if (k > 0)
            got += (size_t)k;
    }
    cr_assert_fail("the server did not close a stranger's connection");
    return got;
}

/* ---- systems ------------------------------------------------------------------- */

static ax_net_stats_t nstats(ax_system_t *sys)
{
    ax_net_stats_t s;

    cr_assert_eq(ax_net_stats(sys, &s), AX_OK);
    return s;
}

static ax_ref_t spawn_named(ax_system_t *sys, nt_node_t *n, const char *name)
{
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &nt_node_vtable, n, &ref), AX_OK, "spawn: %s", ax_error_detail());
    if (name != NULL)
        cr_assert_eq(ax_register(sys, ref, name), AX_OK);
    return ref;
}

/* A good client: a system of its own with one pinger, for an echo. */
typedef struct good_client {
    ax_system_t *sys;
    nt_node_t ping;
    ax_ref_t ref;
} good_client_t;

static void good_start(good_client_t *g, uint16_t port, const char *name)
{
    ax_config_t cfg = nt_config();

    g->sys = start_net(&cfg);
    nt_node_setup(&g->ping, NT_PING);
    g->ping.rounds = 1;
    g->ping.peer = nt_ref_to(g->sys, port, name);
    g->ref = spawn_named(g->sys, &g->ping, NULL);
}

/* Connect, say Hello and have one seq there and back; returns when the
 * reply came (axt_now's clock), or fails the test after WAIT_S. */
static double good_ping(good_client_t *g)
{
    RUN_ON(g->ref, nt_ping_start, NULL);
    cr_assert(axt_sem_wait(&g->ping.done, WAIT_S), "the good client got no reply");
    cr_assert_eq(atomic_load(&g->ping.bad), 0);
    return axt_now();
}

/* A good client's round trip to an echo at port, from a fresh system:
 * the seconds from the start (system creation excluded) to the reply. */
static double good_round_trip(uint16_t port, const char *name)
{
    good_client_t g;
    double t0, dt;

    good_start(&g, port, name);
    t0 = axt_now();
    dt = good_ping(&g) - t0;
    axt_destroy(&g.sys);
    return dt;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert_gt(kib, 0);
    return kib;
}

/* Enough descriptors for a thousand strangers in this process and its
 * children (root may raise the hard limit; anyone may raise the soft one). */
static void raise_nofile(rlim_t want)
{
    struct rlimit rl;

    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < want) {
        rl.rlim_max = want;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "cannot raise RLIMIT_NOFILE to %llu: %s",
                     U(want), strerror(errno));
    }
    rl.rlim_cur = want;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "cannot raise RLIMIT_NOFILE: %s", strerror(errno));
}

/* ---- (1) a stranger cannot replace an established peer -------------------------- */

/*
 * The sequence that once freed a connection under the network thread's
 * feet: strangers fill the server (each sends one byte), a good peer
 * shakes hands, an impostor announces the good peer's address with a new
 * incarnation, a filler leaves. With a tiny receive pool, under ASan in
 * CI. Now: strangers never touch the receive pool, the impostor is refused
 * (no proof), and the good peer's connection is the same one throughout.
 */
Test(hostile, replacement_needs_proof)
{
    ax_config_t cfg = nt_config();
    ax_system_t *srv, *good;
    nt_node_t sink, sender;
    ax_ref_t sender_ref, dst;
    ax_addr_t good_addr;
    unsigned char frame[256];
    int fillers[64], imp;
    size_t n;
    uint64_t session;

    cfg.network.buffer_config.chunk_size = 4096;
    cfg.network.buffer_config.initial_chunk_count = 1;
    cfg.network.buffer_config.max_chunk_count = 4;
    cfg.network.max_pending_handshakes = 80;
    srv = start_net(&cfg);
    nt_node_setup(&sink, NT_SINK);
    spawn_named(srv, &sink, "sink");

    for (size_t i = 0; i < 64; i++) {
        fillers[i] = nt_connect_port(nt_port(srv));
        cr_assert_geq(fillers[i], 0, "connect: %s", strerror(errno));
        cr_assert_eq(send(fillers[i], "x", 1, MSG_NOSIGNAL), 1);
    }
    WAIT_UNTIL(nstats(srv).pending_handshakes == 64, "pending %llu", U(nstats(srv).pending_handshakes));
    cr_assert_eq(nstats(srv).receive_pool.chunks_leased, 0, "strangers took receive chunks");

    cfg = nt_config();
    good = start_net(&cfg);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = spawn_named(good, &sender, NULL);
    dst = nt_ref_to(good, nt_port(srv), "sink");
    cr_assert_eq(nt_send_seq(dst, 0), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "the good peer's first message did not arrive");
    session = atomic_load(&sink.session);
    (void)sender_ref;

    ax_system_address(good, &good_addr);
    imp = nt_connect_port(nt_port(srv));
    cr_assert_geq(imp, 0);
    n = nt_hello_frame(frame, sizeof frame, &good_addr, 0xbadc0ffee0ddf00dull, 0x5eed5eed5eedull);
    cr_assert_gt(n, 0);
    cr_assert_eq(send(imp, frame, n, MSG_NOSIGNAL), (ssize_t)n);
    cr_assert_eq(read_to_close(imp), 0, "the server answered an impostor");
    close(imp);
    close(fillers[0]);
    WAIT_UNTIL(nstats(srv).replace_refused == 1, "replace_refused %llu", U(nstats(srv).replace_refused));

    cr_assert_eq(nt_send_seq(dst, 1), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 2, "the good peer was cut off");
    cr_assert_eq(atomic_load(&sink.session), session, "the good peer's connection was replaced");
    cr_assert_eq(atomic_load(&sink.session_changes), 0);
    cr_assert_eq(atomic_load(&sink.out_of_order) + atomic_load(&sink.gaps) + atomic_load(&sink.bad), 0);
    for (size_t i = 1; i < 64; i++)
        close(fillers[i]);
    axt_destroy(&good);
    axt_destroy(&srv);
}

/* ---- (2) descriptors run out, the listener keeps serving ----------------------- */

Test(hostile, accepts_again_after_descriptor_exhaustion)
{
    enum { LIMIT = 64, BURST = 2 * LIMIT };
    peer_t peer = peer_start(0, "64", "echo", "lazy");
    int fds[BURST];
    size_t opened = 0;
    good_client_t good;
    double closed_at, served;

    for (size_t i = 0; i < BURST; i++) {
        fds[i] = nt_connect_port(peer.port);
        if (fds[i] >= 0) {
            opened++;
            (void)send(fds[i], "x", 1, MSG_NOSIGNAL);
        }
    }
    cr_assert_gt(opened, LIMIT / 2, "only %zu connections opened", opened);
    axt_sleep_us(200000); /* let the server run into its limit */
    /* The good client's own system is ready before the clock starts:
     * what is timed is the server's. */
    good_start(&good, peer.port, "echo");
    for (size_t i = 0; i < BURST; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    closed_at = axt_now();
    served = good_ping(&good) - closed_at;
    cr_log_info("burst of %zu connections against %d descriptors; a good round trip %.1f ms after it closed",
                opened, LIMIT, served * 1000.0);
    cr_assert_lt(served, 1.0, "the listener took %.3f s to serve again", served);
    axt_destroy(&good.sys);
    peer_stop(&peer);
}

/* ---- (3) strangers do not starve the peers ------------------------------------- */

Test(hostile, strangers_do_not_starve_peers, .timeout = 120)
{
    enum { ONE_BYTE = 1000, SLOW_BIG = 10 };
    peer_t peer;
    int fds[ONE_BYTE + SLOW_BIG];
    unsigned char h[8];
    long before, after;
    double rtt;

    raise_nofile(4096);
    peer = peer_start(0, NULL, "echo", "lazy");
    good_round_trip(peer.port, "echo"); /* warm up: threads, pools */
    before = rss_kib(peer.pid);
    for (size_t i = 0; i < ONE_BYTE; i++) {
        fds[i] = nt_connect_port(peer.port);
        cr_assert_geq(fds[i], 0, "connect %zu: %s", i, strerror(errno));
        cr_assert_eq(send(fds[i], "x", 1, MSG_NOSIGNAL), 1);
    }
    put_header(h, (16u << 20) - 8, 2); /* a 16 MiB Data frame, before any Hello */
    for (size_t i = ONE_BYTE; i < ONE_BYTE + SLOW_BIG; i++) {
        fds[i] = nt_connect_port(peer.port);
        cr_assert_geq(fds[i], 0);
        (void)send(fds[i], h, sizeof h, MSG_NOSIGNAL);
        (void)send(fds[i], "slowly", 6, MSG_NOSIGNAL);
    }
    axt_sleep_us(100000);
    rtt = good_round_trip(peer.port, "echo");
    after = rss_kib(peer.pid);
    cr_log_info("strangers: %d one-byte + %d 16 MiB announcers; good client handshake + round trip %.2f ms; "
                "server RSS %ld -> %ld KiB",
                ONE_BYTE, SLOW_BIG, rtt * 1000.0, before, after);
    /* The bounds the issue states, and dispatch/NOTES.md documents. */
    cr_assert_lt(rtt, 0.100, "the good client needed %.1f ms", rtt * 1000.0);
    cr_assert_lt(after - before, 16 * 1024, "the server grew by %ld KiB under the strangers", after - before);
    for (size_t i = 0; i < ONE_BYTE + SLOW_BIG; i++)
        close(fds[i]);
    peer_stop(&peer);
}

/* ---- (5) oversized messages: one outcome each, the connection stays ------------ */

typedef struct big_msg {
    ax_msg_t hdr;
    size_t len;
} big_msg_t;

static ax_status_t big_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    const big_msg_t *b = (const big_msg_t *)m;
    static const char zeros[8192];

    if (msgpack_pack_bin(pk, b->len) != 0 || msgpack_pack_bin_body(pk, zeros, b->len) != 0)
        return AX_ENOBUFS;
    return AX_OK;
}

static const ax_msg_type_t big_type = {
    .name = "test.big",
    .size = sizeof(big_msg_t),
    .serialiser_id = AX_SER_USER_MIN + 99,
    .serialise = big_serialise,
};

static ax_msg_t *big_new(size_t len)
{
    ax_msg_t *m;

    cr_assert_eq(ax_msg_alloc(&big_type, &m), AX_OK);
    ((big_msg_t *)m)->len = len;
    return m;
}

typedef struct eager_job {
    ax_ref_t dst;
    size_t len;
    ax_status_t st;
} eager_job_t;

static void send_big_eager(ax_actor_t *self, void *arg)
{
    eager_job_t *j = arg;
    ax_msg_t *m = big_new(j->len);

    j->st = ax_tell_serialised(self, j->dst, &big_type, m);
    ax_msg_release(&m);
}

static void init_small_pool(ax_actor_t *self, void *arg)
{
    ax_status_t *st = arg;

    *st = ax_actor_init_buffers(self, &(ax_buffer_config_t){.chunk_size = 1024, .initial_chunk_count = 1,
                                                              .max_chunk_count = 2,
                                                              .encode_buf_min_free_space = 64});
}

Test(hostile, oversized_messages_have_one_outcome)
{
    enum { N = 5 };
    ax_config_t cfg = nt_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender, small;
    nt_dl_t dl = {0};
    ax_ref_t sender_ref, small_ref, dst, dl_ref;
    eager_job_t job;
    ax_status_t st = AX_EINVAL;
    uint64_t session;

    cfg.network.max_frame_size = 3072; /* b accepts frames up to 3 KiB */
    b = start_net(&cfg);
    nt_node_setup(&sink, NT_SINK);
    spawn_named(b, &sink, "sink");
    cfg = nt_config();
    a = start_net(&cfg);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = spawn_named(a, &sender, NULL);
    dst = nt_ref_to(a, nt_port(b), "sink");
    cr_assert_eq(nt_send_seq(dst, 0), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "first message");
    session = atomic_load(&sink.session);

    /* Lazy, 4 KiB to a peer that accepts 3 KiB: each comes back once, as
     * AX_ETOOBIG, from our side; nothing reaches the peer. */
    for (int i = 0; i < N; i++) {
        ax_msg_t *m = big_new(4096);

        cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
    }
    /* Eager, the same size, through the actor's default pool. */
    job = (eager_job_t){dst, 4096, AX_EINVAL};
    for (int i = 0; i < N; i++) {
        RUN_ON(sender_ref, send_big_eager, &job);
        cr_assert_eq(job.st, AX_OK, "eager: %s", ax_status_name(job.st));
    }
    WAIT_UNTIL(atomic_load(&dl.count) == 2 * N, "dead letters %llu of %d", U(atomic_load(&dl.count)), 2 * N);
    cr_assert_eq(nt_dl_status(&dl, AX_ETOOBIG), 2 * N);
    cr_assert_eq(nstats(a).too_big, 2 * N);

    /* Eager into a pool that can never hold it (two 1 KiB chunks): the
     * caller hears it at once, and keeps its message. */
    nt_node_setup(&small, NT_SINK);
    small_ref = spawn_named(a, &small, NULL);
    RUN_ON(small_ref, init_small_pool, &st);
    cr_assert_eq(st, AX_OK, "init_buffers: %s", ax_error_detail());
    job = (eager_job_t){dst, 4096, AX_EINVAL};
    RUN_ON(small_ref, send_big_eager, &job);
    cr_assert_eq(job.st, AX_ETOOBIG, "eager above the whole pool: %s", ax_status_name(job.st));

    /* The connection stayed up: same session, nothing malformed, and the
     * next message arrives. */
    cr_assert_eq(nt_send_seq(dst, 1), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 2, "the message after the oversized ones");
    cr_assert_eq(atomic_load(&sink.session), session, "the connection was replaced");
    cr_assert_eq(nstats(b).malformed, 0);
    cr_assert_eq(nstats(a).connections, 1);
    axt_sleep_us(100000);
    cr_assert_eq(atomic_load(&dl.count), 2 * N, "a message was dead-lettered twice");
    cr_assert_eq(nt_dl_status(&dl, AX_ECLOSED), 0);
    axt_destroy(&a);
    axt_destroy(&b);
}
