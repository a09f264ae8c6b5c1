/*
 * bench_actor: the local actor runtime against a bare Vyukov MPSC queue.
 *
 * Baselines, measured in the same run (the queue below is the same
 * algorithm as an actor's mailbox, with nothing around it):
 *
 *   mpsc_same_thread      push one node, pop it, repeat: one message in
 *                         flight, on one thread (the pingpong floor)
 *   mpsc_same_thread_b64  push 64, pop 64: a burst, on one thread
 *   mpsc_xthread          one producer thread, one consumer thread, nodes
 *                         recycled through a window (the fan-in floor)
 *
 * Runtime cases, on a system with `workers` worker threads:
 *
 *   pingpong    2 actors, one message in flight; round trips/s
 *   fanin_8to1  8 sender actors -> 1 receiver, bursts with credit;
 *   fanin_1to1  the same with 1 sender; messages/s
 *   ring        1000 actors pass one token 1,000,000 hops; hops/s
 *   spawn_from_thread  1,000,000 actors spawned by a thread outside the
 *               system, each messaged once and stopping itself; actors/s
 *               until all have ended
 *   spawn_from_actor   the same, spawned (in batches) by an actor
 *   pingpong_alloc  pingpong with a new message (ax_msg_alloc) per hop
 *   pairs_P     P independent pingpong pairs (P = 1, 4, 16)
 *   flood_fanin_K  K senders (1, 8, 16) -> 1 receiver: slices of 1000
 *               messages, each from ax_msg_alloc, then a self-message; no
 *               credits, no pools (what a new user writes)
 *   flood_bounded_8  flood_fanin_8 into a mailbox bounded at 100,000:
 *               senders keep a refused message and yield; RSS growth
 *   spawn_from_{thread,actor}_W  the spawn cases at W = 2, 4, 8, 16 workers,
 *               four rounds of one trial each, in alternating order;
 *               ratio_vs_W2 is the median of each round's rate over its
 *               rate at W = 2
 *   idle_rss    1,000,000 idle actors alive: resident bytes per actor
 *               (RSS delta / count), the user state's size, and the
 *               runtime's overhead = per-actor RSS - user state
 *
 * Each line is one JSON object with the figure, its target from the issue,
 * ns per message, and ratio_vs_mpsc = ns per message / the baseline's ns
 * per push+pop (how many bare queue operations one actor message costs).
 * Each case runs TRIALS times; the median is reported.
 *
 * Every case but idle_rss runs each trial in a child process and reports
 * its peak RSS (peak_rss_kb, the largest over the trials).
 *
 * Usage: bench_actor [scale [workers [case-substring]]]
 *   scale 0.1 runs a tenth of every count; workers (default 2) is every
 *   system's worker count but the spawn_W cases'; a case runs when its
 *   name contains case-substring.
 *        bench_actor --pingpong [scale]   only the pingpong, one line per
 *                    trial, no baselines (for A/B runs of two builds)
 *        bench_actor --ring [scale]       only the ring, the same way
 *        bench_actor --sweep [scale]      fan-in by senders (1-8) and fan-in
 *                    and ring by workers (1-4), for bench/report
 */
#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/actor.h"
#include "serial/mpsc.h"
/* Before any ck header, so that a TSan build sees ck's loads and stores. */
#include "common/ax_atomic.h"

#define BENCH_NAME "bench_actor"
#include "bench.h"

#define TRIALS 3
/* Workers of every system but the spawn_W cases': the second argument
 * (--sweep varies it for fan-in and ring). */
static unsigned workers = 2;

/* ---- the baseline: a bare intrusive Vyukov MPSC queue ------------------ */

/* The baseline is the queue every mailbox is: serial/mpsc.h, without the
 * runtime around it (no scheduling, no control word, no message header). */

static volatile uintptr_t sink;

/* ns per push+pop, one node in flight. */
static double base_same_thread(size_t n)
{
    static ax__mpsc_t q;
    static ax_msg_link_t nodes[64];
    double t0;

    ax__mpsc_init(&q, false);
    t0 = bench_now_s();
    for (size_t i = 0; i < n; i++) {
        ax__mpsc_push(&q, &nodes[i & 63]);
        sink += (uintptr_t)ax__mpsc_pop(&q);
    }
    return (bench_now_s() - t0) * 1e9 / (double)n;
}

/* ns per push+pop, bursts of 64. */
static double base_same_thread_b64(size_t n)
{
    static ax__mpsc_t q;
    static ax_msg_link_t nodes[64];
    double t0;

    ax__mpsc_init(&q, false);
    t0 = bench_now_s();
    for (size_t i = 0; i < n; i += 64) {
        for (int k = 0; k < 64; k++)
            ax__mpsc_push(&q, &nodes[k]);
        for (int k = 0; k < 64; k++) {
            ax_msg_link_t *x;

            while ((x = ax__mpsc_pop(&q)) == NULL)
                ; /* the last node waits for the stub: never on one thread */
            sink += (uintptr_t)x;
        }
    }
    return (bench_now_s() - t0) * 1e9 / (double)n;
}

#define XWINDOW 4096

typedef struct xthread {
    ax__mpsc_t q;
    ax_msg_link_t nodes[XWINDOW];
    size_t n;
    _Alignas(64) size_t consumed; /* the consumer publishes its progress */
} xthread_t;

static void *xthread_consumer(void *arg)
{
    xthread_t *x = arg;

    for (size_t got = 0; got < x->n;) {
        ax_msg_link_t *nd = ax__mpsc_pop(&x->q);

        if (nd == NULL) {
            ck_pr_stall();
            continue;
        }
        sink += (uintptr_t)nd;
        /* Release: the producer may reuse this node after it sees it. */
        ck_pr_fence_release();
        ck_pr_store_64((uint64_t *)&x->consumed, ++got);
    }
    return NULL;
}

/* ns per message, producer and consumer on two threads. */
static double base_xthread(size_t n)
{
    xthread_t *x = aligned_alloc(64, sizeof(*x));
    pthread_t t;
    double t0;

    memset(x, 0, sizeof(*x));
    ax__mpsc_init(&x->q, false);
    x->n = n;
    pthread_create(&t, NULL, xthread_consumer, x);
    t0 = bench_now_s();
    for (size_t i = 0; i < n; i++) {
        while (i - ck_pr_load_64((uint64_t *)&x->consumed) >= XWINDOW)
            ck_pr_stall();
        ax__mpsc_push(&x->q, &x->nodes[i % XWINDOW]);
    }
    pthread_join(t, NULL);
    t0 = bench_now_s() - t0;
    free(x);
    return t0 * 1e9 / (double)n;
}

static struct {
    double same, same_b64, xthread; /* ns per push+pop */
} base;

static double base_median(double (*run)(size_t))
{
    double v[TRIALS];

    for (int i = 0; i < TRIALS; i++)
        v[i] = run(bench_scaled(20000000));
    return bench_median(v, TRIALS);
}

static void run_baselines(void)
{
    base.same = base_median(base_same_thread);
    base.same_b64 = base_median(base_same_thread_b64);
    base.xthread = base_median(base_xthread);
    printf("{\"bench\":\"actor\",\"case\":\"mpsc_same_thread\",\"baseline\":true,"
           "\"ns_per_msg\":%.2f,\"msgs_per_s\":%.0f}\n", base.same, 1e9 / base.same);
    printf("{\"bench\":\"actor\",\"case\":\"mpsc_same_thread_b64\",\"baseline\":true,"
           "\"ns_per_msg\":%.2f,\"msgs_per_s\":%.0f}\n", base.same_b64, 1e9 / base.same_b64);
    printf("{\"bench\":\"actor\",\"case\":\"mpsc_xthread\",\"baseline\":true,"
           "\"ns_per_msg\":%.2f,\"msgs_per_s\":%.0f}\n", base.xthread, 1e9 / base.xthread);
}

/* The peak RSS of the last case's trials (the largest), in KiB. */
static long last_peak_kb = -1;
/* CPU time (user + system, all threads) per unit and voluntary context
 * switches per 1000 units, medians over the last case's trials: on a
 * shared machine wall time measures the load, CPU time much less so. */
static double last_cpu_ns = -1, last_vcsw_k = -1;

/* One result line. rate is per second of `unit`; msgs_per_unit says how
 * many actor messages one unit is (2 for a round trip). */
static void report(const char *name, const char *unit, double rate, double target,
                   double msgs_per_unit, const char *baseline, double base_ns, const char *extra)
{
    double ns_per_msg = 1e9 / (rate * msgs_per_unit);

    printf("{\"bench\":\"actor\",\"case\":\"%s\",\"workers\":%d,\"unit\":\"%s\","
           "\"per_s\":%.0f,\"target_per_s\":%.0f,\"meets_target\":%s,\"ns_per_msg\":%.2f,"
           "\"baseline\":\"%s\",\"baseline_ns_per_msg\":%.2f,\"ratio_vs_mpsc\":%.2f,"
           "\"peak_rss_kb\":%ld,\"cpu_ns_per_msg\":%.2f,\"vcsw_per_kmsg\":%.3f%s}\n",
           name, workers, unit, rate, target, rate >= target ? "true" : "false", ns_per_msg,
           baseline, base_ns, ns_per_msg / base_ns, last_peak_kb, last_cpu_ns / msgs_per_unit,
           last_vcsw_k / msgs_per_unit, extra != NULL ? extra : "");
}

typedef struct token {
    ax_msg_t hdr;
    uint64_t n;
} token_t;

static const ax_msg_type_t token_type = {.name = "bench.token", .size = sizeof(token_t)};

/* ---- pingpong ------------------------------------------------------------ */

typedef struct player {
    ax_actor_t actor;
    ax_ref_t peer;   /* the pinger's pong; null for the pong */
    uint64_t remaining;
    sem_t *done;
} player_t;

typedef struct player_args {
    ax_ref_t peer;
    uint64_t remaining;
    sem_t *done;
} player_args_t;

static ax_status_t player_init(ax_actor_t *self, void *arg)
{
    player_t *p = (player_t *)self;
    player_args_t *a = arg;

    p->peer = a->peer;
    p->remaining = a->remaining;
    p->done = a->done;
    return AX_OK;
}

/* The pong answers the sender; the ping counts round trips. The message
 * itself goes back and forth: no allocation per hop. */
static ax_status_t player_receive(ax_actor_t *self, ax_msg_t **msg)
{
    player_t *p = (player_t *)self;
    ax_ref_t to = p->peer;

    if (ax_ref_is_null(to)) {
        to = (*msg)->sender;
    } else if (p->remaining-- == 0) {
        sem_post(p->done);
        return AX_OK;
    }
    ax_tell(to, msg, ax_self(self));
    return AX_OK;
}

static const ax_actor_vtable_t player_vtable = {
    .name = "bench.player",
    .size = sizeof(player_t),
    .init = player_init,
    .receive_local = player_receive,
};

static double run_pingpong(size_t round_trips)
{
    ax_system_t *sys = bench_system(workers);
    player_args_t pa = {AX_REF_NULL, 0, NULL}, pb;
    ax_ref_t pong, ping;
    ax_msg_t *ball;
    sem_t done;
    double t0;

    sem_init(&done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &player_vtable, &pa, &pong));
    pb = (player_args_t){pong, round_trips, &done};
    BENCH_CHECK(ax_spawn(sys, &player_vtable, &pb, &ping));
    BENCH_CHECK(ax_msg_alloc(&token_type, &ball));
    t0 = bench_now_s();
    BENCH_CHECK(ax_tell(ping, &ball, AX_REF_NULL));
    bench_wait(&done, "end of the ping-pong");
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    sem_destroy(&done);
    return (double)round_trips / t0;
}

/* ---- fan-in ---------------------------------------------------------------- */

#define FAN_WINDOW 4096u   /* messages in flight per sender */
#define FAN_CREDIT 1024u   /* credit returned per this many handled */
#define FAN_BURST 256u

typedef struct fan {
    uint64_t per_sender, total;
    ax_ref_t receiver, senders[8];
    ax_msg_pool_t *pool, *credit_pool;
    sem_t done;
} fan_t;

typedef struct fan_recv {
    ax_actor_t actor;
    fan_t *f;
    uint64_t got;
    uint32_t from_count[8];
} fan_recv_t;

typedef struct fan_send {
    ax_actor_t actor;
    fan_t *f;
    unsigned index;
    uint64_t sent, credit;
    int go_pending;
} fan_send_t;

typedef struct fan_args {
    fan_t *f;
    unsigned index;
} fan_args_t;

static const ax_msg_type_t credit_type = {.name = "bench.credit", .size = sizeof(token_t)};
static const ax_msg_type_t go_type = {.name = "bench.go", .size = sizeof(token_t)};

static ax_status_t fan_recv_init(ax_actor_t *self, void *arg)
{
    ((fan_recv_t *)self)->f = arg;
    return AX_OK;
}

static ax_status_t fan_recv_receive(ax_actor_t *self, ax_msg_t **msg)
{
    fan_recv_t *r = (fan_recv_t *)self;
    unsigned from = (unsigned)((token_t *)*msg)->n;

    if (++r->from_count[from] == FAN_CREDIT) {
        ax_msg_t *c = NULL;

        r->from_count[from] = 0;
        ax_msg_get(r->f->credit_pool, AX_ALWAYS, &c);
        ((token_t *)c)->n = FAN_CREDIT;
        ax_tell(r->f->senders[from], &c, ax_self(self));
    }
    if (++r->got == r->f->total)
        sem_post(&r->f->done);
    return AX_OK;
}

static const ax_actor_vtable_t fan_recv_vtable = {
    .name = "bench.fan-recv",
    .size = sizeof(fan_recv_t),
    .init = fan_recv_init,
    .receive_local = fan_recv_receive,
};

static ax_status_t fan_send_init(ax_actor_t *self, void *arg)
{
    fan_send_t *s = (fan_send_t *)self;
    fan_args_t *a = arg;

    s->f = a->f;
    s->index = a->index;
    s->credit = FAN_WINDOW;
    return AX_OK;
}

static void fan_burst(fan_send_t *s)
{
    ax_ref_t self = ax_self(&s->actor);

    for (unsigned i = 0; i < FAN_BURST && s->credit > 0 && s->sent < s->f->per_sender; i++) {
        ax_msg_t *m = NULL;

        ax_msg_get(s->f->pool, AX_ALWAYS, &m);
        ((token_t *)m)->n = s->index;
        ax_tell(s->f->receiver, &m, self);
        s->sent++;
        s->credit--;
    }
    /* Yield the worker between bursts: continue through a self-message. */
    if (!s->go_pending && s->credit > 0 && s->sent < s->f->per_sender) {
        ax_msg_t *go = NULL;

        ax_msg_alloc(&go_type, &go);
        ax_tell(self, &go, self);
        s->go_pending = 1;
    }
}

static void fan_send_start(ax_actor_t *self)
{
    fan_burst((fan_send_t *)self);
}

static ax_status_t fan_send_receive(ax_actor_t *self, ax_msg_t **msg)
{
    fan_send_t *s = (fan_send_t *)self;

    if ((*msg)->type == &go_type)
        s->go_pending = 0;
    else
        s->credit += ((token_t *)*msg)->n;
    fan_burst(s);
    return AX_OK;
}

static const ax_actor_vtable_t fan_send_vtable = {
    .name = "bench.fan-send",
    .size = sizeof(fan_send_t),
    .init = fan_send_init,
    .on_start = fan_send_start,
    .receive_local = fan_send_receive,
};

static double run_fanin(unsigned nsenders, size_t total)
{
    ax_system_t *sys = bench_system(workers);
    ax_msg_pool_options_t po = {.initial = 8 * FAN_WINDOW, .max = 8 * FAN_WINDOW};
    ax_msg_pool_options_t cpo = {.initial = 256, .max = 1024};
    fan_t f = {.per_sender = total / nsenders};
    fan_args_t args[8];
    double t0;

    f.total = f.per_sender * nsenders;
    sem_init(&f.done, 0, 0);
    BENCH_CHECK(ax_msg_pool_create(&token_type, &po, &f.pool));
    BENCH_CHECK(ax_msg_pool_create(&credit_type, &cpo, &f.credit_pool));
    BENCH_CHECK(ax_spawn(sys, &fan_recv_vtable, &f, &f.receiver));
    for (unsigned i = 0; i < nsenders; i++) {
        args[i] = (fan_args_t){&f, i};
        BENCH_CHECK(ax_create(sys, &fan_send_vtable, &args[i], &f.senders[i]));
    }
    t0 = bench_now_s();
    for (unsigned i = 0; i < nsenders; i++)
        BENCH_CHECK(ax_start(f.senders[i]));
    bench_wait(&f.done, "end of the fan-in");
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    ax_msg_pool_destroy(&f.pool);
    ax_msg_pool_destroy(&f.credit_pool);
    sem_destroy(&f.done);
    return (double)f.total / t0;
}

/* ---- ring ------------------------------------------------------------------- */

typedef struct ring_node {
    ax_actor_t actor;
    ax_ref_t next;
    sem_t *done;
} ring_node_t;

static ax_status_t ring_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ring_node_t *r = (ring_node_t *)self;
    token_t *t = (token_t *)*msg;

    if (t->n-- == 0) {
        sem_post(r->done);
        return AX_OK;
    }
    ax_tell(r->next, msg, ax_self(self));
    return AX_OK;
}

static const ax_actor_vtable_t ring_vtable = {
    .name = "bench.ring",
    .size = sizeof(ring_node_t),
    .receive_local = ring_receive,
};

static double run_ring(size_t nodes, size_t hops)
{
    ax_system_t *sys = bench_system(workers);
    ax_ref_t *refs = malloc(nodes * sizeof(*refs));
    ax_msg_t *tok;
    sem_t done;
    double t0;

    sem_init(&done, 0, 0);
    for (size_t i = 0; i < nodes; i++)
        BENCH_CHECK(ax_create(sys, &ring_vtable, NULL, &refs[i]));
    /* Wire the ring before anyone runs. The nodes are not running yet,
     * so writing their state from here is safe; ax_start publishes it. */
    for (size_t i = 0; i < nodes; i++) {
        ring_node_t *r = (ring_node_t *)refs[i].target;

        r->next = refs[(i + 1) % nodes];
        r->done = &done;
    }
    for (size_t i = 0; i < nodes; i++)
        BENCH_CHECK(ax_start(refs[i]));
    BENCH_CHECK(ax_msg_alloc(&token_type, &tok));
    ((token_t *)tok)->n = hops;
    t0 = bench_now_s();
    BENCH_CHECK(ax_tell(refs[0], &tok, AX_REF_NULL));
    bench_wait(&done, "end of the ring's hops");
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    free(refs);
    sem_destroy(&done);
    return (double)hops / t0;
}

/* ---- spawn, and resident bytes per idle actor -------------------------- */

/* A small actor: the header plus 8 bytes of state. */
typedef struct small {
    ax_actor_t actor;
    uint64_t state;
} small_t;

static atomic_uint_fast64_t small_ended, small_started;

static ax_status_t small_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    ((small_t *)self)->state++;
    ax_stop(ax_self(self));
    return AX_OK;
}

static void small_start(ax_actor_t *self)
{
    (void)self;
    atomic_fetch_add_explicit(&small_started, 1, memory_order_relaxed);
}

static void small_destroy(ax_actor_t *self)
{
    (void)self;
    atomic_fetch_add_explicit(&small_ended, 1, memory_order_relaxed);
}

static const ax_actor_vtable_t small_vtable = {
    .name = "bench.small",
    .size = sizeof(small_t),
    .on_start = small_start,
    .receive_local = small_receive,
    .destroy = small_destroy,
};

static void wait_count(atomic_uint_fast64_t *v, uint64_t n)
{
    while (atomic_load(v) < n)
        usleep(50);
}

/* Actors per second: spawn, one message each (from a pool), each stops
 * itself; the clock stops when the last one has ended. */
static double run_spawn(size_t n, unsigned nworkers)
{
    ax_system_t *sys = bench_system(nworkers);
    ax_msg_pool_options_t po = {.initial = 4096, .max = 65536};
    ax_msg_pool_t *pool;
    double t0;

    BENCH_CHECK(ax_msg_pool_create(&token_type, &po, &pool));
    atomic_store(&small_ended, 0);
    t0 = bench_now_s();
    for (size_t i = 0; i < n; i++) {
        ax_ref_t r;
        ax_msg_t *m = NULL;

        BENCH_CHECK(ax_spawn(sys, &small_vtable, NULL, &r));
        ax_msg_get(pool, AX_ALWAYS, &m);
        BENCH_CHECK(ax_tell(r, &m, AX_REF_NULL));
    }
    wait_count(&small_ended, n);
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    ax_msg_pool_destroy(&pool);
    return (double)n / t0;
}

/* The same, with the spawning done by an actor: its spawns schedule on its
 * own worker instead of going through the inject queue from outside. */
typedef struct spawner {
    ax_actor_t actor;
    size_t remaining;
    ax_msg_pool_t *pool;
} spawner_t;

typedef struct spawner_args {
    size_t n;
    ax_msg_pool_t *pool;
} spawner_args_t;

#define SPAWN_BATCH 256

static ax_status_t spawner_init(ax_actor_t *self, void *arg)
{
    spawner_args_t *a = arg;

    ((spawner_t *)self)->remaining = a->n;
    ((spawner_t *)self)->pool = a->pool;
    return AX_OK;
}

static void spawner_batch(ax_actor_t *self)
{
    spawner_t *s = (spawner_t *)self;
    ax_msg_t *go = NULL;

    for (int i = 0; i < SPAWN_BATCH && s->remaining > 0; i++, s->remaining--) {
        ax_ref_t r;
        ax_msg_t *m = NULL;

        BENCH_CHECK(ax_spawn(ax_actor_system(self), &small_vtable, NULL, &r));
        ax_msg_get(s->pool, AX_ALWAYS, &m);
        ax_tell(r, &m, ax_self(self));
    }
    if (s->remaining > 0) {
        /* Continue in a next run, so the worker also runs the new ones. */
        ax_msg_get(s->pool, AX_ALWAYS, &go);
        ax_tell(ax_self(self), &go, ax_self(self));
    }
}

static ax_status_t spawner_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    spawner_batch(self);
    return AX_OK;
}

static const ax_actor_vtable_t spawner_vtable = {
    .name = "bench.spawner",
    .size = sizeof(spawner_t),
    .init = spawner_init,
    .on_start = spawner_batch,
    .receive_local = spawner_receive,
};

static double run_spawn_inside(size_t n, unsigned nworkers)
{
    ax_system_t *sys = bench_system(nworkers);
    ax_msg_pool_options_t po = {.initial = 4096, .max = 65536};
    spawner_args_t a;
    ax_ref_t sp;
    double t0;

    BENCH_CHECK(ax_msg_pool_create(&token_type, &po, &a.pool));
    a.n = n;
    atomic_store(&small_ended, 0);
    t0 = bench_now_s();
    BENCH_CHECK(ax_spawn(sys, &spawner_vtable, &a, &sp));
    wait_count(&small_ended, n);
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    ax_msg_pool_destroy(&a.pool);
    return (double)n / t0;
}


/* ---- what a new user writes: fresh messages, no credits ------------------- */

/* pingpong_alloc: the pingpong above, but each hop allocates a new message
 * (ax_msg_alloc) and the runtime releases the one received. */
static ax_status_t player_alloc_receive(ax_actor_t *self, ax_msg_t **msg)
{
    player_t *p = (player_t *)self;
    ax_ref_t to = p->peer;
    ax_msg_t *m = NULL;

    if (ax_ref_is_null(to)) {
        to = (*msg)->sender;
    } else if (p->remaining-- == 0) {
        sem_post(p->done);
        return AX_OK;
    }
    BENCH_CHECK(ax_msg_alloc(&token_type, &m));
    ax_tell(to, &m, ax_self(self));
    return AX_OK; /* *msg is released by the runtime */
}

static const ax_actor_vtable_t player_alloc_vtable = {
    .name = "bench.player-alloc",
    .size = sizeof(player_t),
    .init = player_init,
    .receive_local = player_alloc_receive,
};

/* P independent pairs, each doing round_trips / P round trips; round
 * trips per second over all pairs. */
static double run_pairs(size_t round_trips, unsigned npairs, const ax_actor_vtable_t *vt)
{
    ax_system_t *sys = bench_system(workers);
    player_args_t pa = {AX_REF_NULL, 0, NULL}, pb;
    size_t per_pair = round_trips / npairs;
    ax_ref_t *pings = calloc(npairs, sizeof(*pings));
    sem_t done;
    double t0;

    if (pings == NULL)
        bench_die("calloc", AX_ENOMEM);
    sem_init(&done, 0, 0);
    for (unsigned i = 0; i < npairs; i++) {
        ax_ref_t pong;

        BENCH_CHECK(ax_spawn(sys, vt, &pa, &pong));
        pb = (player_args_t){pong, per_pair, &done};
        BENCH_CHECK(ax_spawn(sys, vt, &pb, &pings[i]));
    }
    t0 = bench_now_s();
    for (unsigned i = 0; i < npairs; i++) {
        ax_msg_t *ball;

        BENCH_CHECK(ax_msg_alloc(&token_type, &ball));
        BENCH_CHECK(ax_tell(pings[i], &ball, AX_REF_NULL));
    }
    for (unsigned i = 0; i < npairs; i++)
        bench_wait(&done, "end of a pair's round trips");
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    sem_destroy(&done);
    free(pings);
    return (double)(per_pair * npairs) / t0;
}

static double run_pingpong_alloc(size_t round_trips, unsigned unused)
{
    (void)unused;
    return run_pairs(round_trips, 1, &player_alloc_vtable);
}

static double run_pairs_reuse(size_t round_trips, unsigned npairs)
{
    return run_pairs(round_trips, npairs, &player_vtable);
}

/* flood_fanin_K: each of K senders sends slices of FLOOD_SLICE messages,
 * each from ax_msg_alloc, to one receiver, then a (fresh) message to
 * itself to yield the worker. No credits, no pools. */
#define FLOOD_SLICE 1000

typedef struct flood {
    uint64_t per_sender, total;
    ax_ref_t receiver;
    sem_t done;
} flood_t;

typedef struct flood_actor {
    ax_actor_t actor;
    flood_t *f;
    uint64_t count; /* sent (a sender) or received (the receiver) */
} flood_actor_t;

static ax_status_t flood_init(ax_actor_t *self, void *arg)
{
    ((flood_actor_t *)self)->f = arg;
    return AX_OK;
}

static ax_status_t flood_recv_receive(ax_actor_t *self, ax_msg_t **msg)
{
    flood_actor_t *r = (flood_actor_t *)self;

    (void)msg;
    if (++r->count == r->f->total)
        sem_post(&r->f->done);
    return AX_OK;
}

static void flood_slice(ax_actor_t *self)
{
    flood_actor_t *s = (flood_actor_t *)self;
    ax_ref_t me = ax_self(self);
    ax_msg_t *m = NULL;

    for (unsigned i = 0; i < FLOOD_SLICE && s->count < s->f->per_sender; i++, s->count++) {
        BENCH_CHECK(ax_msg_alloc(&token_type, &m));
        ((token_t *)m)->n = s->count;
        BENCH_CHECK(ax_tell(s->f->receiver, &m, me));
    }
    if (s->count < s->f->per_sender) {
        BENCH_CHECK(ax_msg_alloc(&go_type, &m));
        BENCH_CHECK(ax_tell(me, &m, me));
    }
}

static ax_status_t flood_send_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    flood_slice(self);
    return AX_OK;
}

static const ax_actor_vtable_t flood_recv_vtable = {
    .name = "bench.flood-recv",
    .size = sizeof(flood_actor_t),
    .init = flood_init,
    .receive_local = flood_recv_receive,
};

static const ax_actor_vtable_t flood_send_vtable = {
    .name = "bench.flood-send",
    .size = sizeof(flood_actor_t),
    .init = flood_init,
    .on_start = flood_slice,
    .receive_local = flood_send_receive,
};

static double run_flood(size_t total, unsigned nsenders)
{
    ax_system_t *sys = bench_system(workers);
    flood_t f = {.per_sender = total / nsenders};
    ax_ref_t senders[64];
    double t0;

    f.total = f.per_sender * nsenders;
    sem_init(&f.done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &flood_recv_vtable, &f, &f.receiver));
    for (unsigned i = 0; i < nsenders; i++)
        BENCH_CHECK(ax_create(sys, &flood_send_vtable, &f, &senders[i]));
    t0 = bench_now_s();
    for (unsigned i = 0; i < nsenders; i++)
        BENCH_CHECK(ax_start(senders[i]));
    bench_wait(&f.done, "end of the flood");
    t0 = bench_now_s() - t0;
    bench_system_end(&sys);
    sem_destroy(&f.done);
    return (double)f.total / t0;
}


/* flood_bounded_K: flood_fanin_K into a receiver with a bounded mailbox
 * (BOUNDED_CAP). A refused message stays with its sender, which ends the
 * slice and yields (self-message) before it tries the same one again. */
#define BOUNDED_CAP 100000u

typedef struct bflood_send {
    ax_actor_t actor;
    flood_t *f;
    uint64_t count;
    ax_msg_t *kept;
} bflood_send_t;

static void bflood_slice(ax_actor_t *self)
{
    bflood_send_t *s = (bflood_send_t *)self;
    ax_ref_t me = ax_self(self);
    ax_msg_t *m = NULL;

    for (unsigned i = 0; i < FLOOD_SLICE; i++) {
        if (s->kept == NULL) {
            if (s->count == s->f->per_sender)
                return;
            BENCH_CHECK(ax_msg_alloc(&token_type, &s->kept));
            ((token_t *)s->kept)->n = s->count++;
        }
        if (ax_tell(s->f->receiver, &s->kept, me) != AX_OK)
            break; /* AX_EFULL: kept, try again after yielding */
    }
    BENCH_CHECK(ax_msg_alloc(&go_type, &m));
    BENCH_CHECK(ax_tell(me, &m, me));
}

static ax_status_t bflood_send_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    bflood_slice(self);
    return AX_OK;
}

static const ax_actor_vtable_t bflood_recv_vtable = {
    .name = "bench.bflood-recv",
    .size = sizeof(flood_actor_t),
    .init = flood_init,
    .receive_local = flood_recv_receive,
    .mailbox_capacity = BOUNDED_CAP,
};

static const ax_actor_vtable_t bflood_send_vtable = {
    .name = "bench.bflood-send",
    .size = sizeof(bflood_send_t),
    .init = flood_init,
    .on_start = bflood_slice,
    .receive_local = bflood_send_receive,
};

static long resident_bytes(void);
static long trial_aux; /* a second figure a trial reports (here: KiB) */

static double run_flood_bounded(size_t total, unsigned nsenders)
{
    ax_system_t *sys = bench_system(workers);
    flood_t f = {.per_sender = total / nsenders};
    ax_ref_t senders[64];
    struct rusage ru;
    long before;
    double t0;

    f.total = f.per_sender * nsenders;
    sem_init(&f.done, 0, 0);
    BENCH_CHECK(ax_spawn(sys, &bflood_recv_vtable, &f, &f.receiver));
    for (unsigned i = 0; i < nsenders; i++)
        BENCH_CHECK(ax_create(sys, &bflood_send_vtable, &f, &senders[i]));
    before = resident_bytes() / 1024;
    t0 = bench_now_s();
    for (unsigned i = 0; i < nsenders; i++)
        BENCH_CHECK(ax_start(senders[i]));
    bench_wait(&f.done, "end of the bounded flood");
    t0 = bench_now_s() - t0;
    getrusage(RUSAGE_SELF, &ru);
    trial_aux = ru.ru_maxrss - before; /* growth of the peak over the flood */
    bench_system_end(&sys);
    sem_destroy(&f.done);
    return (double)f.total / t0;
}

static long resident_bytes(void)
{
    long pages_total, pages_res;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2) {
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    return pages_res * sysconf(_SC_PAGESIZE);
}

/* Bytes of RSS per idle actor: n spawned and started, none stopped. Run
 * in a fresh process (see main): memory freed by earlier cases stays
 * resident in the heap and would hide the growth. */
static double run_idle_rss(size_t n)
{
    ax_system_t *sys = bench_system(workers);
    ax_ref_t warm;
    long before, after;

    /* Warm up the system (worker stacks, first slab class) first. */
    atomic_store(&small_started, 0);
    BENCH_CHECK(ax_spawn(sys, &small_vtable, NULL, &warm));
    wait_count(&small_started, 1);
    before = resident_bytes();
    for (size_t i = 0; i < n; i++) {
        ax_ref_t r;

        BENCH_CHECK(ax_spawn(sys, &small_vtable, NULL, &r));
    }
    wait_count(&small_started, n + 1);
    after = resident_bytes();
    bench_system_end(&sys);
    return (double)(after - before) / (double)n;
}

/* run_idle_rss in a child process that re-executes this program, so the
 * child starts with a clean heap. */
static double idle_rss_in_child(size_t n)
{
    char cmd[4200], self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    double per_actor = -1;
    FILE *p;

    if (len <= 0)
        return -1;
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "'%s' --idle-rss %zu", self, n);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fscanf(p, "%lf", &per_actor) != 1)
        per_actor = -1;
    pclose(p);
    return per_actor;
}

/* ---- running cases: each trial in a child process ---------------------- */

typedef double (*case_fn)(size_t n, unsigned param);

static double case_pingpong(size_t n, unsigned unused)
{
    (void)unused;
    return run_pingpong(n);
}

static double case_fanin(size_t n, unsigned nsenders)
{
    return run_fanin(nsenders, n);
}

static double case_ring(size_t n, unsigned nodes)
{
    return run_ring(nodes, n);
}

static const char *case_filter; /* the third argument: run matching cases */
static long last_aux;

static bool selected(const char *name)
{
    return case_filter == NULL || strstr(name, case_filter) != NULL;
}

/* Run fn(n, param) in a fork of this process, so that each trial's peak
 * RSS (ru_maxrss) is its own: the rate comes back through a pipe. */
static double trial_in_child(case_fn fn, size_t n, unsigned param, long *peak_kb,
                             double *cpu_ns, double *vcsw_k)
{
    struct {
        double rate, cpu_ns, vcsw_k;
        long peak_kb, aux;
    } r = {-1, -1, -1, -1, 0};
    int fd[2], status;
    pid_t pid;

    fflush(stdout);
    if (pipe(fd) != 0 || (pid = fork()) < 0)
        bench_die("fork", AX_ENOMEM);
    if (pid == 0) {
        struct rusage ru;

        struct rusage ru0;
        double units = (double)n; /* every case does about n units */

        close(fd[0]);
        getrusage(RUSAGE_SELF, &ru0);
        r.rate = fn(n, param);
        getrusage(RUSAGE_SELF, &ru);
        r.cpu_ns = ((double)(ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                    (double)(ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec)) * 1e9 +
                   ((double)(ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                    (double)(ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) * 1e3;
        r.cpu_ns /= units;
        r.vcsw_k = (double)(ru.ru_nvcsw - ru0.ru_nvcsw) * 1000 / units;
        r.peak_kb = ru.ru_maxrss;
        r.aux = trial_aux;
        if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r)
        r.rate = -1;
    close(fd[0]);
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r.rate < 0) {
        fprintf(stderr, "%s: a trial failed\n", BENCH_NAME);
        exit(1);
    }
    if (r.peak_kb > *peak_kb)
        *peak_kb = r.peak_kb;
    *cpu_ns = r.cpu_ns;
    *vcsw_k = r.vcsw_k;
    if (r.aux > last_aux)
        last_aux = r.aux;
    return r.rate;
}

/* The median rate of TRIALS trials; last_peak_kb gets their largest peak,
 * last_aux their largest trial_aux, last_cpu_ns and last_vcsw_k their
 * medians. */
static double measure(case_fn fn, size_t n, unsigned param)
{
    double v[TRIALS], cpu[TRIALS], vcsw[TRIALS];

    last_peak_kb = -1;
    last_aux = 0;
    for (int i = 0; i < TRIALS; i++)
        v[i] = trial_in_child(fn, n, param, &last_peak_kb, &cpu[i], &vcsw[i]);
    last_cpu_ns = bench_median(cpu, TRIALS);
    last_vcsw_k = bench_median(vcsw, TRIALS);
    return bench_median(v, TRIALS);
}

/*
 * The spawn_W cases. Their trials interleave, round by round: each round
 * runs every W from a thread and from an actor, so that the machine's
 * drift between its fast and slow phases (minutes long, see bench/report)
 * hits every W alike. The order within a round alternates (ascending W,
 * thread first, in even rounds; descending W, actor first, in odd ones),
 * so that a drift within one round does not always fall on the same W:
 * in a fixed order W = 16 always ran last. SPAWN_ROUNDS is even for that.
 * Each line gives the medians of its trials, and for W > 2 ratio_vs_W2:
 * the median over rounds of the round's rate over the same round's rate
 * at W = 2 (issue 9: no lower at 16 workers than at 2).
 */
#define SPAWN_W_MAX 4
#define SPAWN_ROUNDS 4

static void spawn_w_cases(const unsigned *ws, size_t nw, size_t n, double base_ns, const char *extra)
{
    static const case_fn fns[2] = {run_spawn, run_spawn_inside};
    static const char *const from[2] = {"thread", "actor"};
    double v[2][SPAWN_W_MAX][SPAWN_ROUNDS], cpu[2][SPAWN_W_MAX][SPAWN_ROUNDS];
    double vcsw[2][SPAWN_W_MAX][SPAWN_ROUNDS], ratio[2][SPAWN_W_MAX] = {{0}}, r[SPAWN_ROUNDS];
    double by_round[2][SPAWN_W_MAX][SPAWN_ROUNDS];
    long peak[2][SPAWN_W_MAX];
    bool on[SPAWN_W_MAX];
    char name[64], more[384];
    size_t w2 = nw;

    if (nw > SPAWN_W_MAX)
        nw = SPAWN_W_MAX;
    for (size_t i = 0; i < nw; i++) {
        snprintf(name, sizeof name, "spawn_W%u", ws[i]);
        on[i] = selected(name);
        peak[0][i] = peak[1][i] = -1;
        if (ws[i] == 2)
            w2 = i;
    }
    for (int t = 0; t < SPAWN_ROUNDS; t++)
        for (size_t k = 0; k < nw; k++) {
            size_t i = t % 2 == 0 ? k : nw - 1 - k;

            for (int g = 0; on[i] && g < 2; g++) {
                int f = t % 2 == 0 ? g : 1 - g;

                last_aux = 0;
                v[f][i][t] = trial_in_child(fns[f], n, ws[i], &peak[f][i], &cpu[f][i][t], &vcsw[f][i][t]);
            }
        }
    /* Before any median: bench_median sorts its array, and a round's
     * trials pair by index. */
    for (size_t i = 0; w2 < nw && on[w2] && i < nw; i++)
        for (int f = 0; on[i] && i != w2 && f < 2; f++) {
            for (int t = 0; t < SPAWN_ROUNDS; t++)
                r[t] = by_round[f][i][t] = v[f][i][t] / v[f][w2][t];
            ratio[f][i] = bench_median(r, SPAWN_ROUNDS);
        }
    for (size_t i = 0; i < nw; i++) {
        unsigned saved = workers;

        if (!on[i])
            continue;
        workers = ws[i];
        for (int f = 0; f < 2; f++) {
            snprintf(more, sizeof more, "%s", extra);
            if (ratio[f][i] > 0) {
                /* Each round's ratio too, in round order: even rounds ran
                 * W = 2 first, odd ones last. */
                snprintf(more + strlen(more), sizeof more - strlen(more), ",\"ratio_vs_W2\":%.3f",
                         ratio[f][i]);
                for (int t = 0; t < SPAWN_ROUNDS; t++)
                    snprintf(more + strlen(more), sizeof more - strlen(more), "%s%.3f",
                             t == 0 ? ",\"ratio_vs_W2_by_round\":[" : ",", by_round[f][i][t]);
                snprintf(more + strlen(more), sizeof more - strlen(more), "]");
            }
            last_peak_kb = peak[f][i];
            last_cpu_ns = bench_median(cpu[f][i], SPAWN_ROUNDS);
            last_vcsw_k = bench_median(vcsw[f][i], SPAWN_ROUNDS);
            snprintf(name, sizeof name, "spawn_from_%s_W%u", from[f], ws[i]);
            report(name, "actor", bench_median(v[f][i], SPAWN_ROUNDS), 2e6, 1, "mpsc_same_thread", base_ns,
                   more);
        }
        workers = saved;
    }
}

/* The ring of main's case: 1000 actors. */
static double ring_1000(size_t hops)
{
    return run_ring(1000, hops);
}

/* One case alone, for A/B runs of two builds: one line per trial, no
 * baselines. n0 is the count at scale 1, in `unit`. */
static int run_alone(const char *scale, const char *name, const char *unit, size_t n0,
                     double (*run)(size_t))
{
    size_t n;

    bench_set_scale(scale);
    setvbuf(stdout, NULL, _IOLBF, 0);
    n = bench_scaled(n0);
    for (int i = 0; i < TRIALS; i++)
        printf("{\"bench\":\"actor\",\"case\":\"%s\",\"%s\":%zu,\"per_s\":%.0f}\n", name, unit, n,
               run(n));
    return 0;
}

int main(int argc, char **argv)
{
    static const unsigned fan_k[] = {1, 8, 16}, pair_p[] = {1, 4, 16}, spawn_w[] = {2, 4, 8, 16};
    double rate, reuse_ns = 0, v[TRIALS];
    char extra[256], name[64];
    size_t n;

    if (argc > 2 && strcmp(argv[1], "--idle-rss") == 0) {
        printf("%.2f\n", run_idle_rss((size_t)strtoull(argv[2], NULL, 10)));
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--ring") == 0)
        return run_alone(argc > 2 ? argv[2] : NULL, "ring", "hops", 1000000, ring_1000);
    if (argc > 1 && strcmp(argv[1], "--pingpong") == 0)
        return run_alone(argc > 2 ? argv[2] : NULL, "pingpong", "round_trips", 2000000, run_pingpong);
    if (argc > 1 && strcmp(argv[1], "--sweep") == 0) {
        /* For bench/report: fan-in by number of senders, then fan-in and
         * ring by number of workers. Medians of TRIALS; one line each. */
        bench_set_scale(argc > 2 ? argv[2] : NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        n = bench_scaled(4000000);
        for (unsigned s = 1; s <= 8; s *= 2) {
            for (int i = 0; i < TRIALS; i++)
                v[i] = run_fanin(s, n);
            printf("{\"bench\":\"actor\",\"case\":\"fanin_by_senders\",\"senders\":%u,"
                   "\"workers\":%u,\"messages\":%zu,\"per_s\":%.0f}\n",
                   s, workers, n, bench_median(v, TRIALS));
        }
        for (unsigned w = 1; w <= 4; w *= 2) {
            double fan, ring;

            workers = w;
            for (int i = 0; i < TRIALS; i++)
                v[i] = run_fanin(8, n);
            fan = bench_median(v, TRIALS);
            for (int i = 0; i < TRIALS; i++)
                v[i] = run_ring(1000, bench_scaled(1000000));
            ring = bench_median(v, TRIALS);
            printf("{\"bench\":\"actor\",\"case\":\"by_workers\",\"workers\":%u,"
                   "\"fanin_8to1_per_s\":%.0f,\"ring_hops_per_s\":%.0f}\n", w, fan, ring);
        }
        return 0;
    }
    bench_set_scale(argc > 1 ? argv[1] : NULL);
    if (argc > 2 && strtoul(argv[2], NULL, 10) > 0)
        workers = (unsigned)strtoul(argv[2], NULL, 10);
    case_filter = argc > 3 ? argv[3] : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    run_baselines();

    n = bench_scaled(2000000);
    if (selected("pingpong")) {
        rate = measure(case_pingpong, n, 0);
        reuse_ns = 1e9 / rate;
        snprintf(extra, sizeof extra, ",\"round_trips\":%zu", n);
        report("pingpong", "round_trip", rate, 5e6, 2, "mpsc_same_thread", base.same, extra);
    }
    if (selected("pingpong_alloc")) {
        rate = measure(run_pingpong_alloc, n, 0);
        /* Target: at most 1.3x the time of the reuse pingpong, same run. */
        snprintf(extra, sizeof extra, ",\"round_trips\":%zu,\"ratio_vs_pingpong\":%.2f", n,
                 reuse_ns > 0 ? 1e9 / rate / reuse_ns : 0);
        report("pingpong_alloc", "round_trip", rate, reuse_ns > 0 ? 1e9 / (1.3 * reuse_ns) : 0, 2,
               "mpsc_same_thread", base.same, extra);
    }
    for (size_t i = 0; i < sizeof pair_p / sizeof pair_p[0]; i++) {
        snprintf(name, sizeof name, "pairs_%u", pair_p[i]);
        if (!selected(name))
            continue;
        rate = measure(run_pairs_reuse, n, pair_p[i]);
        snprintf(extra, sizeof extra, ",\"pairs\":%u,\"round_trips\":%zu", pair_p[i], n);
        report(name, "round_trip", rate, 0, 2, "mpsc_same_thread", base.same, extra);
    }

    n = bench_scaled(8000000);
    if (selected("fanin_8to1")) {
        rate = measure(case_fanin, n, 8);
        snprintf(extra, sizeof extra, ",\"messages\":%zu", n);
        report("fanin_8to1", "msg", rate, 20e6, 1, "mpsc_xthread", base.xthread, extra);
    }
    if (selected("fanin_1to1")) {
        rate = measure(case_fanin, bench_scaled(4000000), 1);
        snprintf(extra, sizeof extra, ",\"messages\":%zu", bench_scaled(4000000));
        report("fanin_1to1", "msg", rate, 0, 1, "mpsc_xthread", base.xthread, extra);
    }
    for (size_t i = 0; i < sizeof fan_k / sizeof fan_k[0]; i++) {
        snprintf(name, sizeof name, "flood_fanin_%u", fan_k[i]);
        if (!selected(name))
            continue;
        rate = measure(run_flood, n, fan_k[i]);
        snprintf(extra, sizeof extra, ",\"senders\":%u,\"messages\":%zu,\"slice\":%d", fan_k[i], n,
                 FLOOD_SLICE);
        report(name, "msg", rate, 12e6, 1, "mpsc_xthread", base.xthread, extra);
    }

    if (selected("flood_bounded_8")) {
        double limit_kb = 2.0 * BOUNDED_CAP * (double)sizeof(token_t) / 1024;

        rate = measure(run_flood_bounded, n, 8);
        snprintf(extra, sizeof extra,
                 ",\"senders\":8,\"messages\":%zu,\"capacity\":%u,\"msg_bytes\":%zu,"
                 "\"rss_growth_kb\":%ld,\"rss_limit_kb\":%.0f,\"rss_within_limit\":%s",
                 n, BOUNDED_CAP, sizeof(token_t), last_aux, limit_kb,
                 (double)last_aux <= limit_kb ? "true" : "false");
        report("flood_bounded_8", "msg", rate, 0, 1, "mpsc_xthread", base.xthread, extra);
    }

    n = bench_scaled(1000000);
    if (selected("ring")) {
        rate = measure(case_ring, n, 1000);
        snprintf(extra, sizeof extra, ",\"actors\":1000,\"hops\":%zu", n);
        report("ring", "hop", rate, 10e6, 1, "mpsc_same_thread", base.same, extra);
    }

    n = bench_scaled(1000000);
    snprintf(extra, sizeof extra, ",\"actors\":%zu", n);
    /* Per actor: a spawn, a start, one message, a stop and an end. */
    if (selected("spawn_from_thread")) {
        rate = measure(run_spawn, n, workers);
        report("spawn_from_thread", "actor", rate, 3e6, 1, "mpsc_same_thread", base.same, extra);
    }
    if (selected("spawn_from_actor")) {
        rate = measure(run_spawn_inside, n, workers);
        report("spawn_from_actor", "actor", rate, 3e6, 1, "mpsc_same_thread", base.same, extra);
    }
    spawn_w_cases(spawn_w, sizeof spawn_w / sizeof spawn_w[0], n, base.same, extra);

    n = bench_scaled(1000000);
    if (selected("idle_rss")) {
        for (int i = 0; i < TRIALS; i++)
            v[i] = idle_rss_in_child(n);
        double per_actor = bench_median(v, TRIALS);
        double user = (double)(sizeof(small_t) - sizeof(ax_actor_t));
        double overhead = per_actor - user;

        printf("{\"bench\":\"actor\",\"case\":\"idle_rss\",\"workers\":%u,\"actors\":%zu,"
               "\"rss_bytes_per_actor\":%.1f,\"user_state_bytes\":%.0f,"
               "\"actor_struct_bytes\":%zu,\"runtime_overhead_bytes\":%.1f,"
               "\"target_overhead_bytes\":128,\"meets_target\":%s}\n",
               workers, n, per_actor, user, sizeof(small_t), overhead,
               overhead <= 128.0 ? "true" : "false");
    }
    return 0;
}
