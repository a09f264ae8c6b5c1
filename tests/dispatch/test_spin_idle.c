/*
 * Spinning stops when the system is idle (issue 10). Workers spin for
 * `spin_us` before they park, and the network thread watches its inbox for
 * `network.spin_us` after it hands frames to actors. Both spins are
 * bounded: once the traffic stops, two systems with their workers and
 * network threads running, a connection open, heartbeats flowing and a
 * periodic timer on each system use less than 5% of one core, read with
 * getrusage(RUSAGE_SELF) over 2 idle seconds. Criterion runs each test in
 * a process of its own, so nothing else is counted.
 */
#include <criterion/criterion.h>
#include <sys/resource.h>

#include "tests/dispatch/net_helpers.h"

#define ROUNDS 2000u
#define IDLE_S 2.0
#define CPU_BOUND 0.05 /* of one core */
#define TICK_NS (100u * 1000u * 1000u)
#define WAIT_S 20.0

/* ---- a ticker: a periodic timer, as a typical system arms ------------------ */

static const ax_msg_type_t tick_type = {.name = "test.tick", .size = sizeof(ax_msg_t)};

typedef struct ticker {
    ax_actor_t actor;
    _Atomic uint64_t *ticks;
} ticker_t;

static ax_status_t ticker_init(ax_actor_t *self, void *arg)
{
    ((ticker_t *)self)->ticks = arg;
    return AX_OK;
}

static void ticker_start(ax_actor_t *self)
{
    ax_msg_t *m = NULL;
    ax_timer_t timer;

    if (ax_msg_alloc(&tick_type, &m) != AX_OK ||
        ax_schedule_periodic(self, TICK_NS, TICK_NS, &m, &timer) != AX_OK)
        ax_msg_release(&m); /* the test sees no ticks */
}

static ax_status_t ticker_local(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    atomic_fetch_add(((ticker_t *)self)->ticks, 1);
    return AX_OK;
}

static const ax_actor_vtable_t ticker_vtable = {
    .name = "test.ticker", .size = sizeof(ticker_t), .init = ticker_init,
    .on_start = ticker_start, .receive_local = ticker_local,
};

/* ---- helpers ------------------------------------------------------------------ */

static double cpu_s(void)
{
    struct rusage ru;

    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ROUNDS round trips from a to b's echo, then the rest: true when done. */
static bool ping_rounds(nt_node_t *ping, ax_ref_t ping_ref, uint64_t rounds)
{
    ping->rounds = rounds;
    ping->any = false; /* a new run starts at seq 0: the actor is idle now */
    return axt_job_send(ping_ref, nt_ping_start, NULL, NULL) && axt_sem_wait(&ping->done, WAIT_S);
}

/*
 * The CPU (seconds) that two busy-then-idle systems with cfg use over
 * IDLE_S idle seconds; the traffic before and after proves them live.
 */
static double idle_cpu(const ax_config_t *cfg, bool eager)
{
    ax_system_t *a = nt_start(cfg), *b = nt_start(cfg);
    _Atomic uint64_t ticks = 0;
    nt_node_t echo, ping;
    ax_ref_t ping_ref, t;
    uint64_t ticks0;
    double before, after;

    cr_assert_not_null(a, "%s", ax_error_detail());
    cr_assert_not_null(b, "%s", ax_error_detail());
    nt_node_setup(&echo, NT_ECHO);
    echo.eager = eager;
    nt_spawn_node(b, &echo, "echo");
    nt_node_setup(&ping, NT_PING);
    ping.eager = eager;
    ping.peer = nt_ref_to(a, nt_port(b), "echo");
    cr_assert(!ax_ref_is_null(ping.peer));
    ping_ref = nt_spawn_node(a, &ping, NULL);
    cr_assert_eq(ax_spawn(a, &ticker_vtable, &ticks, &t), AX_OK);
    cr_assert_eq(ax_spawn(b, &ticker_vtable, &ticks, &t), AX_OK);

    /* Busy: round trips, which is when the spins pay. */
    cr_assert(ping_rounds(&ping, ping_ref, ROUNDS), "ping-pong stalled after %llu replies",
              (unsigned long long)atomic_load(&ping.received));
    /* Let the last spins run out and the Acks go, then measure idleness. */
    sleep_s(0.2);
    ticks0 = atomic_load(&ticks);
    before = cpu_s();
    sleep_s(IDLE_S);
    after = cpu_s();

    /* The timers kept firing (each ticker about 10 times a second) and
     * the connection still carries a round trip: the systems were idle,
     * not dead. */
    cr_assert_geq(atomic_load(&ticks) - ticks0, 20, "only %llu ticks in %.0f s",
                  (unsigned long long)(atomic_load(&ticks) - ticks0), IDLE_S);
    cr_assert(ping_rounds(&ping, ping_ref, 1), "no round trip after the idle time");
    cr_assert_eq(atomic_load(&ping.bad) + atomic_load(&echo.bad), 0);
    cr_assert_eq(atomic_load(&echo.session_changes), 0, "the connection was replaced");

    ax_system_destroy(&a);
    ax_system_destroy(&b);
    return after - before;
}

static void check_idle(const ax_config_t *cfg, bool eager)
{
    double cpu = idle_cpu(cfg, eager);

    cr_log_info("idle CPU over %.0f s (spin_us %u, network.spin_us %u, %s): %.1f ms = %.2f%% of a core",
                IDLE_S, cfg->spin_us, (unsigned)cfg->network.spin_us, eager ? "eager" : "lazy", cpu * 1e3,
                100.0 * cpu / IDLE_S);
    cr_assert_lt(cpu, CPU_BOUND * IDLE_S, "%.1f ms of CPU in %.0f idle seconds (bound %.0f ms)",
                 cpu * 1e3, IDLE_S, CPU_BOUND * IDLE_S * 1e3);
}

/* Spinning on, in both kinds of thread: the workers (on by default) and
 * the network thread (off by default), at twice the workers' default. */
static ax_config_t spin_config(void)
{
    ax_config_t cfg = nt_config();

    cr_assert_gt(cfg.spin_us, 0, "workers spin by default");
    cfg.network.spin_us = 2 * cfg.spin_us;
    cr_assert_eq(ax_config_validate(&cfg), AX_OK, "%s", ax_error_detail());
    return cfg;
}

Test(spin_idle, spins_stop_when_the_system_is_idle, .timeout = 60)
{
    ax_config_t cfg = spin_config();

    check_idle(&cfg, false);
}

/* The same with eager sends (tell_serialised), whose frames take the
 * same way through the dispatcher and the network thread. */
Test(spin_idle, spins_stop_after_eager_traffic, .timeout = 60)
{
    ax_config_t cfg = spin_config();

    check_idle(&cfg, true);
}
