/*
 * bench_coro: coroutine actors against their same-run baselines.
 *
 *   switch      a suspend + resume pair: bare fcontext jumps (the floor),
 *               then ax_coro_yield in a coroutine (through the runtime:
 *               a wake message to self, the handler, two switches)
 *   pingpong    two coroutines, one message in flight, a fresh message
 *               per send; baseline: two vtable actors doing the same
 *   ask         ax_coro_ask round trips to a vtable echo actor; baseline:
 *               a vtable actor calling ax_ask from its handler and asking
 *               again when the ax_ask_result_t comes
 *   idle_rss    resident memory per coroutine suspended in receive (its
 *               own 64 KiB stack); baseline: an idle vtable actor
 *
 * One worker, so that the numbers are the cost of the path and not of
 * the scheduler's cross-core hand-offs; times are that worker thread's
 * CPU time (CLOCK_THREAD_CPUTIME_ID), which the machine's other load does
 * not inflate as it does wall time. Each case is the median of
 * TRIALS runs. Usage: bench_coro [scale] (0.1: a tenth of the counts).
 * Prints one JSON object per line.
 */
#define BENCH_NAME "bench_coro"
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor/coro_stack.h"
#include "actor/coro_switch.h"
#include "axon/coro.h"
#include "bench.h"

#define TRIALS 5

typedef struct token {
    ax_msg_t hdr;
    uint64_t n;
} token_t;

static const ax_msg_type_t token_type = {.name = "bench.token", .size = sizeof(token_t)};

static ax_msg_t *token_new(uint64_t n)
{
    ax_msg_t *m;

    BENCH_CHECK(ax_msg_alloc(&token_type, &m));
    ((token_t *)m)->n = n;
    return m;
}

/* CPU time of the calling thread: with one worker every case below runs
 * on that worker's thread, and this clock leaves out the time the machine
 * (shared, often loaded) gave to other processes. */
static double cpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void line(const char *name, double ns, const char *base, double base_ns, double target_ratio,
                 double target_ns)
{
    double ratio = ns / base_ns;
    int meets = target_ns > 0 ? ns <= target_ns : ratio <= target_ratio;

    printf("{\"bench\":\"coro\",\"case\":\"%s\",\"clock\":\"thread_cpu\",\"ns_per_op\":%.2f,\"baseline\":\"%s\","
           "\"baseline_ns_per_op\":%.2f,\"ratio\":%.2f,",
           name, ns, base, base_ns, ratio);
    if (target_ns > 0)
        printf("\"target_ns\":%.0f,", target_ns);
    else
        printf("\"target_ratio\":%.2f,", target_ratio);
    printf("\"meets_target\":%s}\n", meets ? "true" : "false");
    fflush(stdout);
}

/* ---- switch ------------------------------------------------------------------ */

static ax__fctx_t bare_back;

static void bare_main(ax__transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static double run_bare_switch(size_t n)
{
    ax__stack_t s;
    size_t usable;
    ax__fctx_t f;
    double t0, t1;

    BENCH_CHECK(ax__stack_alloc(AX_CORO_STACK_DEFAULT, &s));
    ax__stack_bottom(&s, &usable);
    f = make_fcontext(ax__stack_top(&s), usable, bare_main);
    t0 = cpu_now_ns();
    for (size_t i = 0; i < n; i++)
        f = jump_fcontext(f, NULL).fctx;
    t1 = cpu_now_ns();
    (void)bare_back;
    ax__stack_free(&s, false);
    return (t1 - t0) / (double)n;
}

typedef struct job {
    size_t n;
    double ns;
    ax_ref_t peer;
    sem_t done;
} job_t;

static ax_status_t yielder(ax_coro_t *self, void *arg)
{
    job_t *j = arg;
    double t0 = cpu_now_ns();

    for (size_t i = 0; i < j->n; i++)
        BENCH_CHECK(ax_coro_yield(self));
    j->ns = (cpu_now_ns() - t0) / (double)j->n;
    sem_post(&j->done);
    return AX_OK;
}

static double run_coro(ax_coro_fn_t fn, job_t *j)
{
    ax_system_t *sys = bench_system(1);
    ax_ref_t r;

    sem_init(&j->done, 0, 0);
    BENCH_CHECK(ax_spawn_coro(sys, NULL, fn, j, &r));
    bench_wait(&j->done, "end of the coroutine's job");
    bench_system_end(&sys);
    sem_destroy(&j->done);
    return j->ns;
}

/* ---- pingpong ------------------------------------------------------------------ */

static ax_status_t pong_coro(ax_coro_t *self, void *arg)
{
    ax_msg_t *m;

    (void)arg;
    while (ax_coro_receive(self, 0, &m) == AX_OK) {
        ax_ref_t to = m->sender;

        ax_msg_release(&m);
        m = token_new(0);
        BENCH_CHECK(ax_tell(to, &m, ax_coro_ref(self)));
    }
    return AX_OK;
}

static ax_status_t ping_coro(ax_coro_t *self, void *arg)
{
    job_t *j = arg;
    double t0 = cpu_now_ns();
    ax_msg_t *m;

    for (size_t i = 0; i < j->n; i++) {
        m = token_new(i);
        BENCH_CHECK(ax_tell(j->peer, &m, ax_coro_ref(self)));
        BENCH_CHECK(ax_coro_receive(self, 0, &m));
        ax_msg_release(&m);
    }
    j->ns = (cpu_now_ns() - t0) / (double)j->n;
    sem_post(&j->done);
    return AX_OK;
}

static double run_coro_pingpong(size_t n)
{
    ax_system_t *sys = bench_system(1);
    job_t j = {.n = n};
    ax_ref_t ping;

    sem_init(&j.done, 0, 0);
    BENCH_CHECK(ax_spawn_coro(sys, NULL, pong_coro, NULL, &j.peer));
    BENCH_CHECK(ax_spawn_coro(sys, NULL, ping_coro, &j, &ping));
    bench_wait(&j.done, "end of the coroutine ping-pong");
    bench_system_end(&sys);
    sem_destroy(&j.done);
    return j.ns;
}

typedef struct player {
    ax_actor_t actor;
    job_t *job; /* the pinger's; NULL for the ponger */
    size_t i;
    double t0;
} player_t;

static ax_status_t player_init(ax_actor_t *self, void *arg)
{
    ((player_t *)self)->job = arg;
    return AX_OK;
}

static void player_start(ax_actor_t *self)
{
    player_t *p = (player_t *)self;
    ax_msg_t *m;

    if (p->job == NULL)
        return;
    p->t0 = cpu_now_ns();
    m = token_new(0);
    BENCH_CHECK(ax_tell(p->job->peer, &m, ax_self(self)));
}

static ax_status_t player_receive(ax_actor_t *self, ax_msg_t **msg)
{
    player_t *p = (player_t *)self;
    ax_ref_t to = (*msg)->sender;
    ax_msg_t *m;

    if (p->job != NULL && ++p->i == p->job->n) {
        p->job->ns = (cpu_now_ns() - p->t0) / (double)p->job->n;
        sem_post(&p->job->done);
        return AX_OK;
    }
    m = token_new(p->i);
    BENCH_CHECK(ax_tell(to, &m, ax_self(self)));
    return AX_OK;
}

static const ax_actor_vtable_t player_vtable = {
    .name = "bench.player", .size = sizeof(player_t), .init = player_init,
    .on_start = player_start, .receive_local = player_receive,
};

static double run_vtable_pingpong(size_t n)
{
    ax_system_t *sys = bench_system(1);
    job_t j = {.n = n};
    ax_ref_t ping;

    sem_init(&j.done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &player_vtable, NULL, &j.peer));
    BENCH_CHECK(ax_spawn(sys, &player_vtable, &j, &ping));
    bench_wait(&j.done, "end of the handler ping-pong");
    bench_system_end(&sys);
    sem_destroy(&j.done);
    return j.ns;
}

/* ---- ask ------------------------------------------------------------------------ */

static ax_status_t echo_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ax_msg_t *reply = token_new(((token_t *)*msg)->n + 1);

    BENCH_CHECK(ax_reply(*msg, &reply, ax_self(self)));
    return AX_OK;
}

static const ax_actor_vtable_t echo_vtable = {
    .name = "bench.echo", .size = sizeof(ax_actor_t), .receive_local = echo_receive,
};

static ax_status_t ask_coro(ax_coro_t *self, void *arg)
{
    job_t *j = arg;
    double t0 = cpu_now_ns();
    ax_msg_t *m, *reply;

    for (size_t i = 0; i < j->n; i++) {
        m = token_new(i);
        BENCH_CHECK(ax_coro_ask(self, j->peer, &m, 0, &reply));
        ax_msg_release(&reply);
    }
    j->ns = (cpu_now_ns() - t0) / (double)j->n;
    sem_post(&j->done);
    return AX_OK;
}

/* The handler way: ask, return, and ask again when the result comes. */
typedef struct handler_asker {
    ax_actor_t actor;
    job_t *job;
    ax_future_t *f;
    size_t i;
    double t0;
} handler_asker_t;

static void handler_ask(handler_asker_t *a)
{
    ax_msg_t *m = token_new(a->i);

    BENCH_CHECK(ax_ask(a->job->peer, &m, 0, &a->f));
}

static ax_status_t handler_asker_init(ax_actor_t *self, void *arg)
{
    ((handler_asker_t *)self)->job = arg;
    return AX_OK;
}

static void handler_asker_start(ax_actor_t *self)
{
    handler_asker_t *a = (handler_asker_t *)self;

    a->t0 = cpu_now_ns();
    handler_ask(a);
}

static ax_status_t handler_asker_receive(ax_actor_t *self, ax_msg_t **msg)
{
    handler_asker_t *a = (handler_asker_t *)self;

    (void)msg; /* the ax_ask_result_t, released with its reply */
    ax_future_release(&a->f);
    if (++a->i == a->job->n) {
        a->job->ns = (cpu_now_ns() - a->t0) / (double)a->job->n;
        sem_post(&a->job->done);
        return AX_OK;
    }
    handler_ask(a);
    return AX_OK;
}

static const ax_actor_vtable_t handler_asker_vtable = {
    .name = "bench.asker", .size = sizeof(handler_asker_t), .init = handler_asker_init,
    .on_start = handler_asker_start, .receive_local = handler_asker_receive,
};

static double run_ask(size_t n, bool coro)
{
    ax_system_t *sys = bench_system(1);
    job_t j = {.n = n};
    ax_ref_t a;

    sem_init(&j.done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &echo_vtable, NULL, &j.peer));
    if (coro)
        BENCH_CHECK(ax_spawn_coro(sys, NULL, ask_coro, &j, &a));
    else
        BENCH_CHECK(ax_spawn(sys, &handler_asker_vtable, &j, &a));
    bench_wait(&j.done, "end of the asks");
    bench_system_end(&sys);
    sem_destroy(&j.done);
    return j.ns;
}

/* ---- idle memory ------------------------------------------------------------------- */

static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        bench_die("reading /proc/self/statm", AX_EIO);
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static _Atomic size_t idle_waiting;

static ax_status_t idle_coro(ax_coro_t *self, void *arg)
{
    ax_msg_t *m;

    (void)arg;
    atomic_fetch_add(&idle_waiting, 1);
    while (ax_coro_receive(self, 0, &m) == AX_OK)
        ax_msg_release(&m);
    return AX_OK;
}

static ax_status_t idle_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    (void)msg;
    return AX_OK;
}

static const ax_actor_vtable_t idle_vtable = {
    .name = "bench.idle", .size = sizeof(ax_actor_t) + 56, .receive_local = idle_receive,
};

/* Bytes of RSS per idle actor: n of them spawned, coroutines (each
 * suspended in receive) or vtable actors. */
static double run_idle(size_t n, bool coro)
{
    ax_system_t *sys = bench_system(1);
    double before, after;
    ax_ref_t r;

    atomic_store(&idle_waiting, 0);
    before = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        if (coro)
            BENCH_CHECK(ax_spawn_coro(sys, NULL, idle_coro, NULL, &r));
        else
            BENCH_CHECK(ax_spawn(sys, &idle_vtable, NULL, &r));
    }
    while (coro && atomic_load(&idle_waiting) < n)
        usleep(1000);
    usleep(20000); /* the worker's queues settle */
    after = rss_bytes();
    bench_system_end(&sys);
    return (after - before) / (double)n;
}

/* ---- main ------------------------------------------------------------------------ */


static double median_of(double (*fn)(size_t, int), size_t n, int which)
{
    double v[TRIALS];

    for (int i = 0; i < TRIALS; i++)
        v[i] = fn(n, which);
    return bench_median(v, TRIALS);
}

static double t_bare(size_t n, int w)
{
    (void)w;
    return run_bare_switch(n);
}

static double t_yield(size_t n, int w)
{
    job_t j = {.n = n};

    (void)w;
    return run_coro(yielder, &j);
}

static double t_pingpong(size_t n, int coro)
{
    return coro ? run_coro_pingpong(n) : run_vtable_pingpong(n);
}

static double t_ask(size_t n, int coro)
{
    return run_ask(n, coro);
}

/* In a child process of its own, so that neither case reuses memory the
 * other (or an earlier trial) made resident. */
static double t_idle(size_t n, int coro)
{
    int fds[2];
    double v = 0;
    pid_t pid;

    if (pipe(fds) != 0 || (pid = fork()) < 0)
        bench_die("fork for idle_rss", AX_EIO);
    if (pid == 0) {
        v = run_idle(n, coro);
        _exit(write(fds[1], &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
    }
    close(fds[1]);
    if (read(fds[0], &v, sizeof v) != (ssize_t)sizeof v || waitpid(pid, NULL, 0) != pid)
        bench_die("idle_rss child", AX_EIO);
    close(fds[0]);
    return v;
}

int main(int argc, char **argv)
{
    double bare, yield, pp_coro, pp_vt, ask_coro_ns, ask_vt, idle_coro_b, idle_vt;

    bench_set_scale(argc > 1 ? argv[1] : NULL);
    bare = median_of(t_bare, bench_scaled(10000000), 0);
    yield = median_of(t_yield, bench_scaled(2000000), 0);
    line("suspend_resume_yield", yield, "fcontext_jump_pair", bare, 0, 50);
    line("suspend_resume_bare", bare, "fcontext_jump_pair", bare, 0, 50);

    pp_vt = median_of(t_pingpong, bench_scaled(1000000), 0);
    pp_coro = median_of(t_pingpong, bench_scaled(1000000), 1);
    line("pingpong_round_trip", pp_coro, "vtable_pingpong", pp_vt, 2.0, 0);

    ask_vt = median_of(t_ask, bench_scaled(300000), 0);
    ask_coro_ns = median_of(t_ask, bench_scaled(300000), 1);
    line("ask_round_trip", ask_coro_ns, "ax_ask_from_handler", ask_vt, 1.5, 0);

    idle_vt = median_of(t_idle, bench_scaled(20000), 0);
    idle_coro_b = median_of(t_idle, bench_scaled(20000), 1);
    printf("{\"bench\":\"coro\",\"case\":\"idle_rss\",\"bytes_per_actor\":%.0f,\"baseline\":"
           "\"idle_vtable_actor\",\"baseline_bytes_per_actor\":%.0f,\"ratio\":%.2f,"
           "\"stack_size\":%zu,\"guard_regions\":%s,\"target_bytes\":16384,\"meets_target\":%s}\n",
           idle_coro_b, idle_vt, idle_coro_b / idle_vt, AX_CORO_STACK_DEFAULT,
           ax__stack_guard_regions() ? "true" : "false", idle_coro_b <= 16384 ? "true" : "false");
    return 0;
}
