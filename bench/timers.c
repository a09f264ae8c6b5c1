/*
 * bench_timers: ask round trips and the timing wheel, each against a
 * baseline measured in the same run.
 *
 * Round trips, all on a system with 2 worker threads:
 *
 *   tell_pingpong     baseline: 2 actors bounce one message with ax_tell
 *   ask_actor         an actor asks another (ax_ask, ax_reply), gets the
 *                     result as an ax_ask_result_t, asks again
 *   tell_thread_sem   baseline: a thread tells an actor, which hands the
 *                     message back through a shared slot and posts a
 *                     semaphore (what a thread would hand-roll)
 *   ask_thread        a thread asks an actor and blocks in ax_future_wait
 *
 * The request is reused as the reply (ax_reply may send the request
 * itself back), so user code allocates nothing per round trip; what is
 * left is the runtime's cost. ratio = ns per round trip / the baseline's.
 *
 * Timers: 1,000,000 one-shot timers (split over 8 actors, scheduled from
 * their handlers, due times spread uniformly over 0-100 ms) and fired:
 *
 *   schedule_per_s    timers scheduled per second of scheduling (wall
 *                     time from the first ax_schedule_once to the last)
 *   fire_per_s        timers delivered per second, from the first
 *                     schedule to the last delivery (the spread alone
 *                     allows 10 M/s)
 *   last_lag_ms       last delivery - the latest due time
 *   baseline          the same actors tell the same number of messages
 *                     to themselves: delivered per second
 *
 * Periodic lateness (moved here from the test suite, which asserts the
 * schedule itself): one actor, a 1 ms periodic timer for 1000 periods on a
 * 100 us tick. Each delivery's lag is its time past the last due time of
 * the grid start + delay + k * period, modulo the period (a skipped period
 * does not move the grid; drift would).
 *
 *   periodic_lag       median and p99 lag, the share of deliveries within
 *                      half a period of their due time, periods skipped
 *   sleep_lag          baseline: a thread sleeping to the same grid with
 *                      clock_nanosleep(TIMER_ABSTIME)
 *
 * Each case runs TRIALS times; the median is reported.
 *
 * Usage: bench_timers [scale]   (scale 0.1 runs a tenth of every count)
 */
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "axon/actor.h"

#define BENCH_NAME "bench_timers"
#include "bench.h"

#define TRIALS 3
#define WORKERS 2

typedef struct ball {
    ax_msg_t hdr;
    uint64_t n;
} ball_t;

static const ax_msg_type_t ball_type = {.name = "bench.ball", .size = sizeof(ball_t)};

/* ---- round trips ----------------------------------------------------------- */

/* One actor type plays every part; its mode says which. */
enum { ECHO_TELL, ECHO_ASK, PING_TELL, PING_ASK, TO_THREAD };

typedef struct player {
    ax_actor_t actor;
    int mode;
    ax_ref_t peer;
    uint64_t remaining;
    sem_t *done;
    ax_msg_t **slot;   /* TO_THREAD: where the thread finds the ball */
    ax_future_t *future;
} player_t;

typedef struct player_args {
    int mode;
    ax_ref_t peer;
    uint64_t remaining;
    sem_t *done;
    ax_msg_t **slot;
} player_args_t;

static ax_status_t player_init(ax_actor_t *self, void *arg)
{
    player_t *p = (player_t *)self;
    const player_args_t *a = arg;

    p->mode = a->mode;
    p->peer = a->peer;
    p->remaining = a->remaining;
    p->done = a->done;
    p->slot = a->slot;
    return AX_OK;
}

static void ask_again(player_t *p, ax_msg_t **msg)
{
    BENCH_CHECK(ax_ask(p->peer, msg, 0, &p->future));
}

static ax_status_t player_receive(ax_actor_t *self, ax_msg_t **msg)
{
    player_t *p = (player_t *)self;

    switch (p->mode) {
    case ECHO_ASK:
        /* The request goes back as its own reply. */
        ax_reply(*msg, msg, ax_self(self));
        return AX_OK;
    case ECHO_TELL:
        ax_tell((*msg)->sender, msg, ax_self(self));
        return AX_OK;
    case PING_TELL:
        if (p->remaining-- == 0) {
            sem_post(p->done);
            return AX_OK;
        }
        ax_tell(p->peer, msg, ax_self(self));
        return AX_OK;
    case PING_ASK:
        if ((*msg)->type == &ax_ask_result_type) {
            ax_ask_result_t *r = (ax_ask_result_t *)*msg;
            ax_msg_t *ball = r->reply;

            r->reply = NULL; /* the ball comes back inside the result */
            ax_future_release(&p->future);
            if (p->remaining-- == 0) {
                ax_msg_release(&ball);
                sem_post(p->done);
                return AX_OK;
            }
            ask_again(p, &ball);
            return AX_OK;
        }
        ask_again(p, msg); /* the first serve */
        return AX_OK;
    default: /* TO_THREAD: hand the ball to the waiting thread */
        *p->slot = *msg;
        *msg = NULL;
        sem_post(p->done); /* orders the store above before the thread's read */
        return AX_OK;
    }
}

static const ax_actor_vtable_t player_vtable = {
    .name = "bench.player",
    .size = sizeof(player_t),
    .init = player_init,
    .receive_local = player_receive,
};

static ax_ref_t spawn_player(ax_system_t *sys, int mode, ax_ref_t peer, uint64_t n, sem_t *done,
                             ax_msg_t **slot)
{
    player_args_t a = {mode, peer, n, done, slot};
    ax_ref_t ref;

    BENCH_CHECK(ax_spawn(sys, &player_vtable, &a, &ref));
    return ref;
}

/* Round trips per second between two actors, by tell or by ask. */
static double actor_round_trips(int mode, uint64_t n)
{
    ax_system_t *sys = bench_system(WORKERS);
    ax_ref_t echo, ping;
    ax_msg_t *ball;
    sem_t done;
    double t;

    sem_init(&done, 0, 0);
    echo = spawn_player(sys, mode == PING_ASK ? ECHO_ASK : ECHO_TELL, AX_REF_NULL, 0, NULL, NULL);
    ping = spawn_player(sys, mode, echo, n, &done, NULL);
    BENCH_CHECK(ax_msg_alloc(&ball_type, &ball));
    t = bench_now_s();
    BENCH_CHECK(ax_tell(ping, &ball, AX_REF_NULL));
    bench_wait(&done, "end of the timed ping-pong");
    t = bench_now_s() - t;
    bench_system_end(&sys);
    sem_destroy(&done);
    return (double)n / t;
}

/* Round trips per second from a thread: ask + wait, or the hand-rolled
 * tell + semaphore. */
static double thread_round_trips(bool ask, uint64_t n)
{
    ax_system_t *sys = bench_system(WORKERS);
    ax_ref_t echo;
    ax_msg_t *ball, *slot = NULL;
    struct timespec until;
    sem_t done;
    double t;

    sem_init(&done, 0, 0);
    if (ask)
        echo = spawn_player(sys, ECHO_ASK, AX_REF_NULL, 0, NULL, NULL);
    else
        echo = spawn_player(sys, TO_THREAD, AX_REF_NULL, 0, &done, &slot);
    BENCH_CHECK(ax_msg_alloc(&ball_type, &ball));
    until = bench_wait_deadline();
    t = bench_now_s();
    for (uint64_t i = 0; i < n; i++) {
        if (ask) {
            ax_future_t *f;

            BENCH_CHECK(ax_ask(echo, &ball, 0, &f));
            BENCH_CHECK(ax_future_wait(f, 0, &ball));
            ax_future_release(&f);
        } else {
            BENCH_CHECK(ax_tell(echo, &ball, AX_REF_NULL));
            bench_wait_until(&done, &until, "reply from the echo");
            ball = slot;
        }
    }
    t = bench_now_s() - t;
    ax_msg_release(&ball);
    bench_system_end(&sys);
    sem_destroy(&done);
    return (double)n / t;
}

static void report_rt(const char *name, double per_s, const char *baseline, double base_per_s)
{
    double ns = 1e9 / per_s, base_ns = 1e9 / base_per_s;

    printf("{\"bench\":\"timers\",\"case\":\"%s\",\"workers\":%d,\"unit\":\"round_trip\","
           "\"per_s\":%.0f,\"ns_per_round_trip\":%.1f,\"baseline\":\"%s\","
           "\"baseline_ns_per_round_trip\":%.1f,\"ratio\":%.2f}\n",
           name, WORKERS, per_s, ns, baseline, base_ns, ns / base_ns);
    fflush(stdout);
}

static void run_round_trips(void)
{
    double tell[TRIALS], ask[TRIALS], tsem[TRIALS], task[TRIALS];
    uint64_t n = bench_scaled(1000000), nt = bench_scaled(200000);

    /* Interleaved, so that drift in the machine's load hits all alike. */
    for (int i = 0; i < TRIALS; i++) {
        tell[i] = actor_round_trips(PING_TELL, n);
        ask[i] = actor_round_trips(PING_ASK, n);
        tsem[i] = thread_round_trips(false, nt);
        task[i] = thread_round_trips(true, nt);
    }
    double m_tell = bench_median(tell, TRIALS), m_tsem = bench_median(tsem, TRIALS);
    double m_task = bench_median(task, TRIALS);

    printf("{\"bench\":\"timers\",\"case\":\"tell_pingpong\",\"baseline\":true,\"workers\":%d,"
           "\"per_s\":%.0f,\"ns_per_round_trip\":%.1f}\n", WORKERS, m_tell, 1e9 / m_tell);
    report_rt("ask_actor", bench_median(ask, TRIALS), "tell_pingpong", m_tell);
    printf("{\"bench\":\"timers\",\"case\":\"tell_thread_sem\",\"baseline\":true,\"workers\":%d,"
           "\"per_s\":%.0f,\"ns_per_round_trip\":%.1f}\n", WORKERS, m_tsem, 1e9 / m_tsem);
    report_rt("ask_thread", m_task, "tell_thread_sem", m_tsem);
    report_rt("ask_thread_vs_pingpong", m_task, "tell_pingpong", m_tell);
}

/* ---- timers ------------------------------------------------------------------------ */

#define TACTORS 8
#define SPREAD_NS 100000000ull /* due times over 0-100 ms */

typedef struct tplan {
    bool timers;               /* false: the tell baseline */
    uint64_t per_actor;
    ax_msg_t **msgs;           /* allocated before the clock starts */
    uint64_t *delays;
    _Atomic uint64_t delivered;
    _Atomic uint64_t sched_start_ns, sched_end_ns, last_ns;
    _Atomic uint64_t max_due_ns;
    uint64_t total;
    sem_t done;
} tplan_t;

typedef struct tactor {
    ax_actor_t actor;
    tplan_t *p;
    uint64_t first;            /* this actor's part of msgs */
} tactor_t;

typedef struct targs {
    tplan_t *p;
    uint64_t first;
} targs_t;

static void atomic_min(_Atomic uint64_t *v, uint64_t x)
{
    uint64_t cur = atomic_load(v);

    while (x < cur && !atomic_compare_exchange_weak(v, &cur, x))
        ;
}

static void atomic_max(_Atomic uint64_t *v, uint64_t x)
{
    uint64_t cur = atomic_load(v);

    while (x > cur && !atomic_compare_exchange_weak(v, &cur, x))
        ;
}

static ax_status_t tactor_init(ax_actor_t *self, void *arg)
{
    const targs_t *a = arg;

    ((tactor_t *)self)->p = a->p;
    ((tactor_t *)self)->first = a->first;
    return AX_OK;
}

static const ax_msg_type_t go_type = {.name = "bench.go", .size = sizeof(ax_msg_t)};

static ax_status_t tactor_receive(ax_actor_t *self, ax_msg_t **msg)
{
    tactor_t *a = (tactor_t *)self;
    tplan_t *p = a->p;

    if ((*msg)->type == &go_type) {
        uint64_t t0 = ax__now_ns(), max_due = 0;

        atomic_min(&p->sched_start_ns, t0);
        for (uint64_t i = a->first; i < a->first + p->per_actor; i++) {
            ax_timer_t id;

            if (p->timers) {
                BENCH_CHECK(ax_schedule_once(self, p->delays[i], &p->msgs[i], &id));
                if (t0 + p->delays[i] > max_due)
                    max_due = t0 + p->delays[i];
            } else {
                BENCH_CHECK(ax_tell(ax_self(self), &p->msgs[i], ax_self(self)));
            }
        }
        atomic_max(&p->sched_end_ns, ax__now_ns());
        atomic_max(&p->max_due_ns, max_due);
        return AX_OK;
    }
    if (atomic_fetch_add(&p->delivered, 1) + 1 == p->total) {
        atomic_store(&p->last_ns, ax__now_ns());
        sem_post(&p->done);
    }
    return AX_OK;
}

static const ax_actor_vtable_t tactor_vtable = {
    .name = "bench.timers",
    .size = sizeof(tactor_t),
    .init = tactor_init,
    .receive_local = tactor_receive,
};

typedef struct tresult {
    double schedule_per_s, fire_per_s, last_lag_ms;
} tresult_t;

static tresult_t run_timers_once(bool timers, uint64_t n)
{
    ax_system_t *sys = bench_system(WORKERS);
    tplan_t *p = calloc(1, sizeof(*p));
    ax_ref_t refs[TACTORS];
    uint64_t seed = 0x2545f4914f6cdd1dull;
    tresult_t r;

    p->timers = timers;
    p->per_actor = n / TACTORS;
    p->total = p->per_actor * TACTORS;
    p->msgs = malloc(p->total * sizeof(*p->msgs));
    p->delays = malloc(p->total * sizeof(*p->delays));
    if (p->msgs == NULL || p->delays == NULL)
        bench_die("malloc", AX_ENOMEM);
    for (uint64_t i = 0; i < p->total; i++) {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        p->delays[i] = (seed * 0x2545f4914f6cdd1dull) % SPREAD_NS;
        BENCH_CHECK(ax_msg_alloc(&ball_type, &p->msgs[i]));
    }
    atomic_store(&p->sched_start_ns, UINT64_MAX);
    sem_init(&p->done, 0, 0);
    for (int a = 0; a < TACTORS; a++) {
        targs_t args = {p, (uint64_t)a * p->per_actor};

        BENCH_CHECK(ax_spawn(sys, &tactor_vtable, &args, &refs[a]));
    }
    for (int a = 0; a < TACTORS; a++) {
        ax_msg_t *go;

        BENCH_CHECK(ax_msg_alloc(&go_type, &go));
        BENCH_CHECK(ax_tell(refs[a], &go, AX_REF_NULL));
    }
    bench_wait(&p->done, "delivery of the last scheduled timer");
    r.schedule_per_s = (double)p->total * 1e9 / (double)(p->sched_end_ns - p->sched_start_ns);
    r.fire_per_s = (double)p->total * 1e9 / (double)(p->last_ns - p->sched_start_ns);
    r.last_lag_ms = timers ? ((double)p->last_ns - (double)p->max_due_ns) / 1e6 : 0;
    bench_system_end(&sys);
    sem_destroy(&p->done);
    free(p->msgs);
    free(p->delays);
    free(p);
    return r;
}

static void run_timers(void)
{
    double sched[TRIALS], fire[TRIALS], lag[TRIALS], base_send[TRIALS], base_deliv[TRIALS];
    uint64_t n = bench_scaled(1000000);

    for (int i = 0; i < TRIALS; i++) {
        tresult_t t = run_timers_once(true, n), b = run_timers_once(false, n);

        sched[i] = t.schedule_per_s;
        fire[i] = t.fire_per_s;
        lag[i] = t.last_lag_ms;
        base_send[i] = b.schedule_per_s;
        base_deliv[i] = b.fire_per_s;
    }
    double ms = bench_median(sched, TRIALS), mf = bench_median(fire, TRIALS);
    double bs = bench_median(base_send, TRIALS), bd = bench_median(base_deliv, TRIALS);

    printf("{\"bench\":\"timers\",\"case\":\"tell_self_burst\",\"baseline\":true,\"workers\":%d,"
           "\"actors\":%d,\"messages\":%llu,\"send_per_s\":%.0f,\"delivered_per_s\":%.0f}\n",
           WORKERS, TACTORS, (unsigned long long)n, bs, bd);
    printf("{\"bench\":\"timers\",\"case\":\"one_shot_timers\",\"workers\":%d,\"actors\":%d,"
           "\"timers\":%llu,\"spread_ms\":%.0f,\"schedule_per_s\":%.0f,\"ns_per_schedule\":%.1f,"
           "\"fire_per_s\":%.0f,\"last_lag_ms\":%.2f,\"baseline\":\"tell_self_burst\","
           "\"schedule_ratio\":%.2f,\"fire_ratio\":%.2f}\n",
           WORKERS, TACTORS, (unsigned long long)n, SPREAD_NS / 1e6, ms, 1e9 / ms, mf,
           bench_median(lag, TRIALS), bs / ms, bd / mf);
    fflush(stdout);
}

/* ---- periodic lateness ----------------------------------------------------------- */

#define PERIODS 1000
#define PERIOD_NS 1000000ull

typedef struct pplan {
    uint64_t origin;       /* start + delay: the grid's first point */
    uint64_t at[PERIODS];
    uint32_t n;
    ax_timer_t id;
    sem_t done;
} pplan_t;

typedef struct pactor {
    ax_actor_t actor;
    pplan_t *p;
} pactor_t;

static ax_status_t pactor_init(ax_actor_t *self, void *arg)
{
    ((pactor_t *)self)->p = arg;
    return AX_OK;
}

static ax_status_t pactor_receive(ax_actor_t *self, ax_msg_t **msg)
{
    pplan_t *p = ((pactor_t *)self)->p;

    if ((*msg)->type == &go_type) {
        ax_msg_t *tick;

        BENCH_CHECK(ax_msg_alloc(&ball_type, &tick));
        p->origin = ax__now_ns() + PERIOD_NS;
        BENCH_CHECK(ax_schedule_periodic(self, PERIOD_NS, PERIOD_NS, &tick, &p->id));
        return AX_OK;
    }
    if (p->n < PERIODS) {
        p->at[p->n++] = ax__now_ns();
        if (p->n == PERIODS) {
            BENCH_CHECK(ax_cancel_timer(self, p->id));
            sem_post(&p->done);
        }
    }
    return AX_OK;
}

static const ax_actor_vtable_t pactor_vtable = {
    .name = "bench.periodic",
    .size = sizeof(pactor_t),
    .init = pactor_init,
    .receive_local = pactor_receive,
};

typedef struct lags {
    double median_us, p99_us, prompt, skipped;
} lags_t;

static lags_t lags_of(const uint64_t *at, uint64_t origin)
{
    double v[PERIODS];
    uint32_t prompt = 0;
    lags_t l;

    for (uint32_t k = 0; k < PERIODS; k++) {
        uint64_t lag = at[k] >= origin ? (at[k] - origin) % PERIOD_NS : 0;

        v[k] = (double)lag / 1e3;
        prompt += lag < PERIOD_NS / 2;
    }
    l.skipped = (double)((at[PERIODS - 1] - origin) / PERIOD_NS) - (PERIODS - 1);
    qsort(v, PERIODS, sizeof(v[0]), bench_cmp_double);
    l.median_us = v[PERIODS / 2];
    l.p99_us = v[PERIODS * 99 / 100];
    l.prompt = (double)prompt / PERIODS;
    return l;
}

static lags_t run_periodic_once(void)
{
    ax_config_t cfg;
    ax_system_t *sys;
    pplan_t *p = calloc(1, sizeof(*p));
    ax_ref_t ref;
    ax_msg_t *go;
    lags_t l;

    if (p == NULL)
        bench_die("calloc", AX_ENOMEM);
    ax_config_init(&cfg);
    cfg.threads = WORKERS;
    cfg.timer_tick_us = 100;
    BENCH_CHECK(ax_system_create(&cfg, &sys));
    sem_init(&p->done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &pactor_vtable, p, &ref));
    BENCH_CHECK(ax_msg_alloc(&go_type, &go));
    BENCH_CHECK(ax_tell(ref, &go, AX_REF_NULL));
    bench_wait(&p->done, "last periodic tick");
    l = lags_of(p->at, p->origin);
    bench_system_end(&sys);
    sem_destroy(&p->done);
    free(p);
    return l;
}

static lags_t run_sleep_once(void)
{
    static uint64_t at[PERIODS];
    uint64_t origin = ax__now_ns() + PERIOD_NS;

    for (uint32_t k = 0; k < PERIODS; k++) {
        struct timespec ts = ax__timespec_of(origin + k * PERIOD_NS);

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
            ;
        at[k] = ax__now_ns();
    }
    return lags_of(at, origin);
}

static void run_periodic(void)
{
    double med[TRIALS], p99[TRIALS], prompt[TRIALS], skipped[TRIALS];
    double bmed[TRIALS], bp99[TRIALS], bprompt[TRIALS];

    for (int i = 0; i < TRIALS; i++) {
        lags_t t = run_periodic_once(), b = run_sleep_once();

        med[i] = t.median_us;
        p99[i] = t.p99_us;
        prompt[i] = t.prompt;
        skipped[i] = t.skipped;
        bmed[i] = b.median_us;
        bp99[i] = b.p99_us;
        bprompt[i] = b.prompt;
    }
    double bm = bench_median(bmed, TRIALS), m = bench_median(med, TRIALS);

    printf("{\"bench\":\"timers\",\"case\":\"sleep_lag\",\"baseline\":true,\"periods\":%d,"
           "\"period_us\":%llu,\"median_lag_us\":%.1f,\"p99_lag_us\":%.1f,\"prompt_share\":%.3f}\n",
           PERIODS, PERIOD_NS / 1000, bm, bench_median(bp99, TRIALS), bench_median(bprompt, TRIALS));
    printf("{\"bench\":\"timers\",\"case\":\"periodic_lag\",\"workers\":%d,\"tick_us\":100,"
           "\"periods\":%d,\"period_us\":%llu,\"median_lag_us\":%.1f,\"p99_lag_us\":%.1f,"
           "\"prompt_share\":%.3f,\"periods_skipped\":%.0f,\"baseline\":\"sleep_lag\","
           "\"median_ratio\":%.2f}\n",
           WORKERS, PERIODS, PERIOD_NS / 1000, m, bench_median(p99, TRIALS),
           bench_median(prompt, TRIALS), bench_median(skipped, TRIALS), bm > 0 ? m / bm : 0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    bench_set_scale(argc > 1 ? argv[1] : NULL);
    run_round_trips();
    run_timers();
    run_periodic();
    return 0;
}
