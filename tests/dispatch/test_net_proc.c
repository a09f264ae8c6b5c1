/*
 * Networking between processes: this test's system talks to net_peer
 * (NET_PEER_PATH), a system in a process of its own, over loopback.
 *
 *   - ping-pong across processes, lazy and eager;
 *   - the peer killed with SIGKILL in the middle of a stream, then
 *     restarted on the same port: this system does not crash, reconnects
 *     (a new session), and accounts for every message it sent: each one
 *     was acknowledged by a peer (ax_net_stats().acked) or came to the
 *     dead-letter actor with a status, and the two add up to what was sent,
 *     exactly.
 *
 * Waits are bounded (WAIT_S) and fail rather than hang; a peer process
 * dies with the test (PR_SET_PDEATHSIG) if the test fails half-way.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#ifndef NET_PEER_PATH
#error "NET_PEER_PATH must name the net_peer program"
#endif

#include "tests/dispatch/peer_proc.h"

static ax_system_t *net_system_with(const ax_config_t *cfg)
{
    ax_system_t *sys = NULL;

    cr_assert_eq(ax_system_create(cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_net_stats_t nstats(ax_system_t *sys)
{
    ax_net_stats_t s;

    cr_assert_eq(ax_net_stats(sys, &s), AX_OK);
    return s;
}

static ax_ref_t peer_ref(ax_system_t *sys, uint16_t port, const char *name)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(nt_port_path(port, name, &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

/* ---- ping-pong across processes -------------------------------------------------- */

#define ROUNDS 1000

static void proc_pingpong(bool eager)
{
    peer_t peer = peer_start(0, NULL, "echo", eager ? "eager" : "lazy");
    ax_config_t cfg;
    ax_system_t *a;
    nt_node_t ping;
    ax_ref_t ping_ref;
    peer_report_t r;

    ax_config_init(&cfg);
    cfg.threads = 2;
    a = net_system_with(&cfg);
    nt_node_setup(&ping, NT_PING);
    ping.eager = eager;
    ping.rounds = ROUNDS;
    ping.peer = peer_ref(a, peer.port, "echo");
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &ping, &ping_ref), AX_OK);

    RUN_ON(ping_ref, nt_ping_start, NULL);
    cr_assert(axt_sem_wait(&ping.done, WAIT_S), "ping-pong stalled after %llu replies",
              U(atomic_load(&ping.received)));
    cr_assert_eq(atomic_load(&ping.received), ROUNDS);
    cr_assert_eq(atomic_load(&ping.bad), 0);
    cr_assert_eq(atomic_load(&ping.out_of_order), 0);
    cr_assert_eq(atomic_load(&ping.gaps), 0);
    cr_assert_eq(atomic_load(&ping.session_changes), 0);
    cr_assert_neq(atomic_load(&ping.session), 0);
    WAIT_UNTIL(nstats(a).acked == ROUNDS, "delivered %llu", U(nstats(a).acked));
    cr_assert_eq(nstats(a).frames_received, ROUNDS);
    cr_assert_eq(nstats(a).dead_lettered, 0);

    r = peer_stop(&peer);
    cr_assert_eq(r.received, ROUNDS);
    cr_assert_eq(r.out_of_order + r.gaps + r.bad, 0);
    axt_destroy(&a);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases));
}

Test(net_proc, pingpong_lazy)
{
    proc_pingpong(false);
}

Test(net_proc, pingpong_eager)
{
    proc_pingpong(true);
}

/* ---- SIGKILL mid-stream, then a restart on the same port ------------------------- */

/* Send count seqs from the running actor, mixing lazy and eager; count
 * those the runtime took (AX_OK): each of them must end delivered or as
 * a dead letter. */
typedef struct batch {
    ax_ref_t dst;
    uint64_t first, count;
    uint64_t taken, refused;
} batch_t;

static void send_batch(ax_actor_t *self, void *arg)
{
    batch_t *b = arg;

    for (uint64_t i = 0; i < b->count; i++) {
        uint64_t seq = b->first + i;

        /* Runs of 1..4 of each kind. */
        if (seq_send(self, b->dst, seq, (seq * 7 / 3) % 2 == 1) == AX_OK)
            b->taken++;
        else
            b->refused++;
    }
}

/* Run fn on actor's thread without waiting; *done is posted at its end. */
static void start_job(ax_ref_t actor, void (*fn)(ax_actor_t *, void *), void *arg, sem_t *done)
{
    cr_assert(axt_job_send(actor, fn, arg, done));
}

/*
 * The stream runs in rounds of per_round messages. In a kill round the
 * batch is started, and the peer is killed while its frames are being
 * written and acknowledged; it is restarted on the same port a few rounds
 * later. Two such cycles.
 */
#define KILLS 2

Test(net_proc, sigkill_mid_stream_then_restart)
{
    const uint64_t rounds = 36, per_round = 2000;
    const uint64_t kill_at[KILLS] = {6, 22}, restart_at[KILLS] = {10, 26};
    peer_t peer = peer_start(0, NULL, "sink", "none");
    uint16_t port = peer.port;
    ax_config_t cfg;
    ax_system_t *a;
    nt_node_t sender;
    nt_dl_t dl = {0};
    nt_events_t ev;
    ax_net_event_t e;
    batch_t b = {0};
    ax_ref_t sender_ref, ref;
    ax_path_t pp;
    ax_addr_t paddr;
    ax_net_stats_t s;
    peer_report_t r;
    size_t from = 0;
    uint64_t sent = 0, sessions[KILLS + 1], dead, by_status;
    sem_t done;

    ax_config_init(&cfg);
    cfg.threads = 2;
    /* Keep trying while the peer is down (it comes back within seconds). */
    cfg.network.max_retries = 1000;
    cfg.network.backoff_initial_ms = 5;
    cfg.network.backoff_max_ms = 50;
    a = net_system_with(&cfg);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &ref), AX_OK);
    ax_set_dead_letter_actor(a, ref);
    nt_events_setup(&ev);
    cr_assert_eq(ax_spawn(a, &nt_events_vtable, &ev, &ref), AX_OK);
    cr_assert_eq(ax_net_subscribe(a, ref), AX_OK);
    nt_node_setup(&sender, NT_SINK);
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &sender, &sender_ref), AX_OK);
    b.dst = peer_ref(a, port, "sink");
    cr_assert_eq(ax_ref_path(b.dst, &pp), AX_OK);
    paddr = pp.addr;
    sem_init(&done, 0, 0);

    /* Connected first. */
    b.count = 1;
    RUN_ON(sender_ref, send_batch, &b);
    sent += b.taken;
    cr_assert_eq(sent, 1);
    WAIT_UNTIL(nstats(a).acked == 1, "the first message was not acknowledged");
    cr_assert(nt_events_wait(&ev, &from, AX_NET_ESTABLISHED, &paddr, WAIT_S, &e), "no ESTABLISHED");
    sessions[0] = e.session;

    for (uint64_t round = 0, k = 0, rs = 0; round < rounds; round++) {
        b = (batch_t){.dst = b.dst, .first = sent, .count = per_round};
        start_job(sender_ref, send_batch, &b, &done);
        if (k < KILLS && round == kill_at[k]) {
            /* Mid-stream: the batch is on its way. */
            axt_sleep_us(500);
            peer_kill(&peer);
            k++;
        }
        cr_assert(axt_sem_wait(&done, WAIT_S), "a batch did not finish");
        sent += b.taken;
        if (rs < KILLS && round == restart_at[rs]) {
            cr_assert(nt_events_wait(&ev, &from, AX_NET_LOST, &paddr, WAIT_S, &e), "no LOST after kill %llu",
                      U(rs + 1));
            cr_assert_eq(e.session, sessions[rs], "LOST names another session");
            cr_log_info("kill %llu: lost with %s", U(rs + 1), ax_status_name(e.status));
            peer = peer_start(port, NULL, "sink", "none");
            /* Nothing is lost silently: what was sent is accounted for
             * before the peer is back... */
            b = (batch_t){.dst = b.dst, .first = sent, .count = 1};
            RUN_ON(sender_ref, send_batch, &b);
            sent += b.taken;
            /* ...and a message after the restart reconnects, with a new
             * session. */
            cr_assert(nt_events_wait(&ev, &from, AX_NET_ESTABLISHED, &paddr, WAIT_S, &e),
                      "no ESTABLISHED after restart %llu", U(rs + 1));
            rs++;
            sessions[rs] = e.session;
            for (uint64_t i = 0; i < rs; i++)
                cr_assert_neq(sessions[rs], sessions[i], "a new connection reuses a session id");
        }
        axt_sleep_us(2000);
    }
    sem_destroy(&done);

    /* A message at the end, on the last connection. */
    b = (batch_t){.dst = b.dst, .first = sent, .count = 1};
    RUN_ON(sender_ref, send_batch, &b);
    sent += b.taken;
    WAIT_UNTIL(nstats(a).acked + atomic_load(&dl.count) >= sent, "accounted for %llu + %llu of %llu",
               U(nstats(a).acked), U(atomic_load(&dl.count)), U(sent));
    /* Nothing is counted twice: let anything late come in, then compare. */
    axt_sleep_us(300000);
    s = nstats(a);
    dead = atomic_load(&dl.count);
    cr_log_info("sent %llu: delivered %llu, dead letters %llu (ECLOSED %llu, ENOBUFS %llu, ETIMEDOUT %llu; "
                "%llu NetMessages, %llu undelivered records, %llu unserialised); reconnects %llu",
                U(sent), U(s.acked), U(dead), U(nt_dl_status(&dl, AX_ECLOSED)), U(nt_dl_status(&dl, AX_ENOBUFS)),
                U(nt_dl_status(&dl, AX_ETIMEDOUT)), U(atomic_load(&dl.net_msgs)), U(atomic_load(&dl.undelivered)),
                U(atomic_load(&dl.seqs)), U(s.reconnects));
    cr_assert_eq(s.acked + dead, sent, "delivered %llu + dead-lettered %llu != sent %llu", U(s.acked),
                 U(dead), U(sent));
    cr_assert_eq(s.dead_lettered, dead, "the stats count %llu dead letters, the actor got %llu",
                 U(s.dead_lettered), U(dead));
    by_status = nt_dl_status(&dl, AX_ECLOSED) + nt_dl_status(&dl, AX_ENOBUFS) + nt_dl_status(&dl, AX_ETIMEDOUT);
    for (int i = 1; i < NT_STATUS_SLOTS; i++)
        if (i != -AX_ECLOSED && i != -AX_ENOBUFS && i != -AX_ETIMEDOUT && atomic_load(&dl.by_status[i]) > 0)
            cr_log_error("%llu dead letters with %s", U(atomic_load(&dl.by_status[i])), ax_status_name(-i));
    cr_assert_eq(by_status, dead, "a dead letter with an unexpected status");
    cr_assert_eq(atomic_load(&dl.others), 0);
    cr_assert_eq(s.reconnects, KILLS);
    cr_assert_eq(s.connections, 1);

    r = peer_stop(&peer);
    cr_log_info("the last peer received %llu", r.received);
    cr_assert_geq(r.received, 1);
    cr_assert_eq(r.out_of_order, 0, "the last peer saw %llu out of order", r.out_of_order);
    cr_assert_eq(r.bad, 0);
    axt_destroy(&a);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases));
}
