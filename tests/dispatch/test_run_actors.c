/*
 * network.run_actors_us: while every worker is parked, the network thread
 * runs the actors it hands messages to itself (the handler sees the
 * thread named "ax-net"); an actor whose runs there took over a
 * millisecond (network.slow_run_us) twice in a row goes to the workers
 * from then on; with 0 every handler runs on a worker. Whatever thread
 * runs them, every message arrives once, in order, and every reply comes
 * back.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/coro.h"
#include "axon/metrics.h"
#include "axon/net.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define ROUNDS 2000

/* What the echo saw, per handler run. */
typedef struct where {
    _Atomic uint64_t on_net;    /* runs on the network thread */
    _Atomic uint64_t on_worker; /* runs on a worker ("ax-worker-N") */
    _Atomic uint64_t elsewhere; /* neither: a thread we did not expect */
    _Atomic uint64_t net_after_slow; /* network-thread runs after the slow ones */
    _Atomic bool slow_done;     /* the slow runs happened */
    int slow_runs;              /* busy for SLOW_MS in this many network-thread runs */
    int slow_seen;
    ax_system_t *metrics_of;    /* ask for its connection metrics in each run */
    _Atomic uint64_t metrics_ok;  /* answers that counted the connection */
    _Atomic uint64_t metrics_net; /* of them, on the network thread */
    _Atomic uint64_t metrics_max_ns;
} where_t;

/* A slow run: well past the mark's threshold in the test that wants marks
 * (SLOW_MARK_US), which is itself far above what preemption on a loaded
 * machine adds to a run (10-13 ms seen under TSan beside other tests). */
#define SLOW_MS 120
#define SLOW_MARK_US 60000

static where_t where;

static bool thread_is(const char *prefix)
{
    char name[16] = "";

    pthread_getname_np(pthread_self(), name, sizeof name);
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static void busy_ms(int ms)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

/* The echo's handling: note the thread, then send the seq back. */
static void echo_where(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    uint64_t seq = 0;
    ax_ref_t back;

    if (thread_is("ax-net")) {
        atomic_fetch_add(&where.on_net, 1);
        if (atomic_load(&where.slow_done))
            atomic_fetch_add(&where.net_after_slow, 1);
        if (where.slow_seen < where.slow_runs) {
            busy_ms(SLOW_MS); /* beyond SLOW_MARK_US, which marks a run slow */
            if (++where.slow_seen == where.slow_runs)
                atomic_store(&where.slow_done, true);
        }
    } else if (thread_is("ax-worker-")) {
        atomic_fetch_add(&where.on_worker, 1);
    } else {
        atomic_fetch_add(&where.elsewhere, 1);
    }
    if (where.metrics_of != NULL) {
        /* Served by the network thread: on it, the call must not wait for
         * itself. */
        ax_conn_metrics_t m[4];
        size_t count = 0;
        struct timespec t0, t1;
        uint64_t ns;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* One connection or two: b may have connected back to a's
         * address for the replies, and one of the pair is then dropped. */
        if (ax_metrics_connections(where.metrics_of, m, 4, &count) == AX_OK && count >= 1 && count <= 2) {
            atomic_fetch_add(&where.metrics_ok, 1);
            if (thread_is("ax-net"))
                atomic_fetch_add(&where.metrics_net, 1);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec));
        /* Only the network thread's calls: one on a worker waits, as it
         * should, for the network thread to publish, which a loaded
         * machine may delay. */
        if (thread_is("ax-net") && ns > atomic_load(&where.metrics_max_ns))
            atomic_store(&where.metrics_max_ns, ns);
    }
    if (!seq_of(*nm, &seq)) {
        atomic_fetch_add(&n->bad, 1);
        return;
    }
    nt_node_track(n, seq);
    if (ax_net_msg_sender(self, *nm, &back) != AX_OK || seq_send(self, back, seq, n->eager) != AX_OK)
        atomic_fetch_add(&n->bad, 1);
}

typedef struct pair {
    ax_system_t *a, *b;
    nt_node_t echo, ping;
    ax_ref_t ping_ref;
} pair_t;

#define DEFAULT_RUN UINT32_MAX /* pair_start: leave the default */

/* slow_run_us: network.slow_run_us. The tests that count runs on the
 * network thread turn the marks off (0): on a loaded machine two
 * preempted runs in a row would mark the echo slow and send it to the
 * workers, which is the marks doing their job, not the network thread
 * failing to run it. */
static void pair_start(pair_t *p, uint32_t run_actors_us, uint32_t slow_run_us, bool eager)
{
    ax_config_t cfg = nt_config();

    memset(&where, 0, sizeof where);
    cr_assert_gt(cfg.network.run_actors_us, 0, "on by default");
    if (run_actors_us != DEFAULT_RUN)
        cfg.network.run_actors_us = run_actors_us;
    cfg.network.slow_run_us = slow_run_us;
    p->a = nt_start(&cfg);
    p->b = nt_start(&cfg);
    cr_assert_not_null(p->a, "%s", ax_error_detail());
    cr_assert_not_null(p->b, "%s", ax_error_detail());
    nt_node_setup(&p->echo, NT_ECHO);
    p->echo.on_net = echo_where;
    p->echo.eager = eager;
    nt_spawn_node(p->b, &p->echo, "echo");
    nt_node_setup(&p->ping, NT_PING);
    p->ping.eager = eager;
    p->ping.peer = nt_ref_to(p->a, nt_port(p->b), "echo");
    cr_assert(!ax_ref_is_null(p->ping.peer));
    p->ping_ref = nt_spawn_node(p->a, &p->ping, NULL);
}

/* rounds round trips, one in flight; asserts that all came back in order. */
static void pair_rounds(pair_t *p, uint64_t rounds)
{
    uint64_t echoed = atomic_load(&p->echo.received);

    p->ping.rounds = rounds;
    p->ping.any = false; /* a new run starts at seq 0: the actor is idle now */
    p->echo.any = false;
    cr_assert(axt_job_send(p->ping_ref, nt_ping_start, NULL, NULL), "%s", ax_error_detail());
    cr_assert(axt_sem_wait(&p->ping.done, WAIT_S), "ping-pong stalled after %llu replies",
              (unsigned long long)atomic_load(&p->ping.received));
    cr_assert_eq(atomic_load(&p->echo.received) - echoed, rounds);
    cr_assert_eq(atomic_load(&p->ping.out_of_order) + atomic_load(&p->echo.out_of_order), 0);
    cr_assert_eq(atomic_load(&p->ping.gaps) + atomic_load(&p->echo.gaps), 0);
    cr_assert_eq(atomic_load(&p->ping.bad) + atomic_load(&p->echo.bad), 0);
}

static void pair_end(pair_t *p)
{
    cr_assert_eq(atomic_load(&where.elsewhere), 0, "a handler ran on a thread that is neither");
    cr_assert_eq(atomic_load(&p->echo.session_changes), 0, "the connection was replaced");
    axt_destroy(&p->a);
    axt_destroy(&p->b);
}

static void runs_on_the_network_thread(bool eager)
{
    pair_t p;

    pair_start(&p, DEFAULT_RUN, 0, eager);
    pair_rounds(&p, ROUNDS);
    /* One message in flight: between two of them every worker of b
     * parks, so the network thread takes most; a worker still takes
     * those that came while it was awake (the dispatcher's tick). */
    cr_log_info("%s: %llu handler runs on the network thread, %llu on workers", eager ? "eager" : "lazy",
                (unsigned long long)atomic_load(&where.on_net), (unsigned long long)atomic_load(&where.on_worker));
    cr_assert_gt(atomic_load(&where.on_net), ROUNDS / 2, "only %llu of %d runs on the network thread",
                 (unsigned long long)atomic_load(&where.on_net), ROUNDS);
    pair_end(&p);
}

Test(run_actors, an_idle_systems_network_thread_runs_the_receiver_lazy)
{
    runs_on_the_network_thread(false);
}

Test(run_actors, an_idle_systems_network_thread_runs_the_receiver_eager)
{
    runs_on_the_network_thread(true);
}

Test(run_actors, zero_keeps_every_handler_on_the_workers)
{
    pair_t p;

    pair_start(&p, 0, 0, false);
    pair_rounds(&p, ROUNDS);
    cr_assert_eq(atomic_load(&where.on_net), 0);
    cr_assert_eq(atomic_load(&where.on_worker), ROUNDS);
    pair_end(&p);
}

Test(run_actors, an_actor_slower_than_the_budget_goes_to_the_workers)
{
    pair_t p;

    pair_start(&p, DEFAULT_RUN, SLOW_MARK_US, false);
    where.slow_runs = 2;
    /* Until two runs in a row land on the network thread and are slow
     * there (the echo runs again only after the reply came back). */
    for (int i = 0; i < 100 && !atomic_load(&where.slow_done); i++)
        pair_rounds(&p, 10);
    cr_assert(atomic_load(&where.slow_done), "not two runs on the network thread in 1000 round trips");
    /* From then on the echo runs on workers only, and still answers. */
    pair_rounds(&p, ROUNDS);
    cr_assert_eq(atomic_load(&where.net_after_slow), 0, "%llu runs on the network thread after the slow one",
                 (unsigned long long)atomic_load(&where.net_after_slow));
    pair_end(&p);
}

/* A handler on the network thread that asks for the connection metrics
 * (which the network thread serves) gets them at once, not after the
 * 200 ms that a reader waits for a network thread that does not answer. */
Test(run_actors, connection_metrics_from_a_handler_on_the_network_thread)
{
    pair_t p;

    pair_start(&p, DEFAULT_RUN, 0, false);
    where.metrics_of = p.b;
    pair_rounds(&p, 200);
    cr_assert_eq(atomic_load(&where.metrics_ok), 200, "%llu of 200 answers counted the connection",
                 (unsigned long long)atomic_load(&where.metrics_ok));
    cr_assert_gt(atomic_load(&where.metrics_net), 0, "no run on the network thread");
    cr_assert_lt(atomic_load(&where.metrics_max_ns), 100000000ull, "a call on the network thread took %llu ns",
                 (unsigned long long)atomic_load(&where.metrics_max_ns));
    pair_end(&p);
}

/* ---- a coroutine actor: its function resumes on the network thread too ---- */

#define CORO_ROUNDS 500

typedef struct coro_echo {
    _Atomic uint64_t answered, on_net, out_of_order, bad;
    _Atomic bool returned;
} coro_echo_t;

static ax_status_t coro_echo_fn(ax_coro_t *self, void *arg)
{
    coro_echo_t *e = arg;
    uint64_t next = 0;

    while (atomic_load(&e->answered) < CORO_ROUNDS) {
        ax_msg_t *m = NULL;
        uint64_t seq = 0;
        ax_ref_t back;

        if (ax_coro_receive(self, AX_MS(30000), &m) != AX_OK)
            break;
        if (thread_is("ax-net"))
            atomic_fetch_add(&e->on_net, 1);
        if (m->type != &ax_net_msg_type || !seq_of((ax_net_msg_t *)m, &seq) ||
            ax_net_msg_sender(ax_coro_actor(self), (ax_net_msg_t *)m, &back) != AX_OK ||
            seq_send(ax_coro_actor(self), back, seq, false) != AX_OK)
            atomic_fetch_add(&e->bad, 1);
        if (seq != next)
            atomic_fetch_add(&e->out_of_order, 1);
        next = seq + 1;
        ax_msg_release(&m);
        atomic_fetch_add(&e->answered, 1);
    }
    atomic_store(&e->returned, true);
    return AX_OK;
}

/* The function suspends in ax_coro_receive and is resumed by whichever
 * thread runs the actor: on an idle system, mostly the network thread. */
Test(run_actors, a_coroutine_actor_resumes_on_the_network_thread)
{
    ax_config_t cfg = nt_config();
    ax_system_t *a, *b;
    coro_echo_t e = {0};
    nt_node_t ping;
    ax_ref_t echo, ping_ref;

    cfg.network.slow_run_us = 0; /* as in pair_start */
    a = nt_start(&cfg);
    b = nt_start(&cfg);
    cr_assert_not_null(a, "%s", ax_error_detail());
    cr_assert_not_null(b, "%s", ax_error_detail());
    cr_assert_eq(ax_spawn_coro(b, NULL, coro_echo_fn, &e, &echo), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_register(b, echo, "echo"), AX_OK);
    nt_node_setup(&ping, NT_PING);
    ping.rounds = CORO_ROUNDS;
    ping.peer = nt_ref_to(a, nt_port(b), "echo");
    cr_assert(!ax_ref_is_null(ping.peer));
    ping_ref = nt_spawn_node(a, &ping, NULL);
    cr_assert(axt_job_send(ping_ref, nt_ping_start, NULL, NULL), "%s", ax_error_detail());
    cr_assert(axt_sem_wait(&ping.done, WAIT_S), "ping-pong stalled after %llu replies",
              (unsigned long long)atomic_load(&ping.received));
    cr_assert_eq(atomic_load(&e.answered), CORO_ROUNDS);
    cr_assert_eq(atomic_load(&e.bad) + atomic_load(&e.out_of_order), 0);
    cr_assert_eq(atomic_load(&ping.out_of_order) + atomic_load(&ping.gaps) + atomic_load(&ping.bad), 0);
    cr_assert_gt(atomic_load(&e.on_net), 0, "the function never resumed on the network thread");
    WAIT_UNTIL(atomic_load(&e.returned), "the coroutine did not return");
    cr_log_info("coroutine: %llu of %d resumes on the network thread", (unsigned long long)atomic_load(&e.on_net),
                CORO_ROUNDS);
    axt_destroy(&a);
    axt_destroy(&b);
}
