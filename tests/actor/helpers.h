/*
 * Shared by the actor tests: bounded waits, a message type that counts its
 * allocations and releases, a configurable probe actor, and a dead-letter
 * collector actor.
 *
 * No test asserts on time. Every wait is bounded (WAIT_S, generous), so a
 * lost message or a lost wakeup fails the test instead of hanging CI.
 *
 * AXON_TEST_SCALE=n divides the largest message counts by n (the TSan job
 * may set it); a normal run always does the full count.
 */
#ifndef AXON_TESTS_ACTOR_HELPERS_H
#define AXON_TESTS_ACTOR_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "tests/common.h"

/* Criterion's assertions belong on the test's own thread. Code running on
 * workers or helper threads counts what went wrong here instead, and the
 * test asserts the count is zero. */
static _Atomic uint64_t axt_bad AXT_UNUSED;
#define AXT_CHECK(cond) ((cond) ? (void)0 : (void)atomic_fetch_add(&axt_bad, 1))
#define AXT_ASSERT_NO_BAD() \
    cr_assert_eq(atomic_load(&axt_bad), 0, "%llu check(s) failed off the test thread", \
                 (unsigned long long)atomic_load(&axt_bad))

/* Seconds a single step may take before the test fails. */
#define WAIT_S 60.0

#define AXT_WAIT_SEM(s) cr_assert(axt_sem_wait((s), WAIT_S), "timed out waiting on " #s)

/* Wait until *v >= target; false on timeout. */
static inline bool axt_wait_at_least(_Atomic uint64_t *v, uint64_t target, double secs)
{
    double end = axt_now() + secs;

    while (atomic_load(v) < target) {
        if (axt_now() > end)
            return false;
        axt_sleep_us(100);
    }
    return true;
}

#define AXT_WAIT_COUNT(v, n)                                                                   \
    cr_assert(axt_wait_at_least(&(v), (n), WAIT_S), "timed out: " #v " is %llu, waiting for %llu", \
              (unsigned long long)atomic_load(&(v)), (unsigned long long)(n))

/* Poll cond until it holds or WAIT_S passes; then assert it with the
 * printf-style message. */
#define WAIT_UNTIL(cond, ...)                                                   \
    do {                                                                        \
        double wait_end_ = axt_now() + WAIT_S;                                  \
        while (!(cond) && axt_now() < wait_end_)                                \
            axt_sleep_us(500);                                                  \
        cr_assert((cond), __VA_ARGS__);                                         \
    } while (0)

/* Run fn(self, arg) on the actor's own thread and wait for it to finish. */
#define RUN_ON(ref, fn, arg) cr_assert(axt_run_on((ref), (fn), (arg), WAIT_S), "job " #fn " did not run in time")

static inline void axt_nop_job(ax_actor_t *self, void *arg)
{
    (void)self;
    (void)arg;
}

/* Returns once a one-lane actor that runs jobs has handled everything
 * queued to it before this call (its mailbox is FIFO), and the runtime
 * has released those messages (a handler returns before the next runs). */
static inline void axt_flush(ax_ref_t ref)
{
    RUN_ON(ref, axt_nop_job, NULL);
}

typedef struct axt_serialised_send {
    ax_ref_t dst;
    const ax_msg_type_t *type;
    const ax_msg_t *msg;
    ax_status_t st;
} axt_serialised_send_t;

static inline void axt_serialised_send_job(ax_actor_t *self, void *arg)
{
    axt_serialised_send_t *s = arg;

    s->st = ax_tell_serialised(self, s->dst, s->type, s->msg);
}

/* ax_tell_serialised(sender, dst, type, msg) run on the sender's own
 * thread, as the call requires; returns its status. msg stays the
 * caller's. */
static inline ax_status_t axt_tell_serialised_from(ax_ref_t sender, ax_ref_t dst, const ax_msg_type_t *type,
                                                   const ax_msg_t *msg)
{
    axt_serialised_send_t s = {.dst = dst, .type = type, .msg = msg};

    RUN_ON(sender, axt_serialised_send_job, &s);
    return s.st;
}

typedef struct axt_stats_job {
    ax_status_t st;
    ax_buffer_pool_stats_t stats;
} axt_stats_job_t;

static inline void axt_stats_job(ax_actor_t *self, void *arg)
{
    axt_stats_job_t *j = arg;

    j->st = ax_actor_buffer_stats(self, &j->stats);
}

/* ax_actor_buffer_stats of actor, read on the actor's own thread (a pool
 * has one owner); returns its status (AX_ENOTFOUND: no pool yet). */
static inline ax_status_t axt_buffer_stats(ax_ref_t actor, ax_buffer_pool_stats_t *out)
{
    axt_stats_job_t j = {0};

    RUN_ON(actor, axt_stats_job, &j);
    *out = j.stats;
    return j.st;
}

/* For printing 64-bit counters with %llu. */
#define U(x) ((unsigned long long)(x))

static inline ax_system_t *axt_system(unsigned threads)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;

    ax_config_init(&cfg);
    cfg.threads = threads;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_not_null(sys);
    return sys;
}

/*
 * ax_system_await_termination and ax_system_destroy wait for every actor
 * to end, without a bound. Run them on a helper thread and join it with a
 * bound, so that an actor that never ends fails the test instead of
 * hanging it. (Criterion's own .timeout would do, but its runner leaks a
 * small allocation per timed test under LeakSanitizer.)
 */
typedef struct axt_bounded {
    ax_system_t *sys;
    ax_system_t **destroy;
    ax_status_t st;
} axt_bounded_t;

static inline void *axt_bounded_main(void *arg)
{
    axt_bounded_t *b = arg;

    if (b->destroy != NULL)
        ax_system_destroy(b->destroy);
    else
        b->st = ax_system_await_termination(b->sys);
    return NULL;
}

static inline void axt_bounded_run(axt_bounded_t *b, const char *what)
{
    struct timespec ts;
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, axt_bounded_main, b), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)WAIT_S;
    cr_assert_eq(pthread_timedjoin_np(t, NULL, &ts), 0, "%s did not return within %.0f s", what,
                 WAIT_S);
}

/* ax_system_await_termination, bounded. */
static inline ax_status_t axt_await(ax_system_t *sys)
{
    axt_bounded_t b = {.sys = sys};

    axt_bounded_run(&b, "ax_system_await_termination");
    return b.st;
}

/* ax_system_destroy (which shuts down and awaits if needed), bounded. */
static inline void axt_destroy(ax_system_t **sys)
{
    axt_bounded_t b = {.destroy = sys};

    axt_bounded_run(&b, "ax_system_destroy");
    cr_assert_null(*sys);
}

static inline void axt_shutdown(ax_system_t **sys)
{
    ax_system_shutdown(*sys);
    cr_assert_eq(axt_await(*sys), AX_OK);
    axt_destroy(sys);
}

static inline ax_system_stats_t axt_stats(ax_system_t *sys)
{
    ax_system_stats_t st;

    ax_system_stats(sys, &st);
    return st;
}

/* Poll until the system's actors_alive equals n; false on timeout. */
static inline bool axt_wait_alive(ax_system_t *sys, uint64_t n, double secs)
{
    double end = axt_now() + secs;

    while (axt_stats(sys).actors_alive != n) {
        if (axt_now() > end)
            return false;
        axt_sleep_us(100);
    }
    return true;
}

/* ---- a numbered message that counts allocations and releases -------- */

typedef struct num_msg {
    ax_msg_t hdr;
    uint32_t from;  /* the sender's index */
    uint32_t flags; /* NUM_* */
    uint64_t seq;   /* the sender's sequence number */
} num_msg_t;

#define NUM_BLOCK 0x1u /* the probe's handler waits on the gate */

static _Atomic uint64_t num_allocs AXT_UNUSED, num_releases AXT_UNUSED;

static AXT_UNUSED void num_release(ax_msg_t *m)
{
    atomic_fetch_add(&num_releases, 1);
    free(m);
}

static const ax_msg_type_t num_type AXT_UNUSED = {
    .name = "test.num",
    .size = sizeof(num_msg_t),
    .release = num_release,
};

static inline ax_msg_t *num_new(uint32_t from, uint64_t seq)
{
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_alloc(&num_type, &m), AX_OK);
    atomic_fetch_add(&num_allocs, 1);
    ((num_msg_t *)m)->from = from;
    ((num_msg_t *)m)->seq = seq;
    return m;
}

static inline void num_tell(ax_ref_t dst, uint32_t from, uint64_t seq, uint32_t flags)
{
    ax_msg_t *m = num_new(from, seq);

    ((num_msg_t *)m)->flags = flags;
    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
    cr_assert_null(m, "ax_tell must take the message");
}

/* ---- the probe: an actor that records what happens to it ------------ */

typedef struct probe {
    _Atomic uint64_t starts, stops, kills, destroys;
    _Atomic uint64_t received;
    _Atomic uint64_t out_of_order;
    uint64_t next_seq;       /* the seq the actor expects next (from 0) */
    uint64_t stop_self_at;   /* ax_stop(self) in the handler of this seq, or 0 */
    sem_t started, ended;    /* on_start, destroy */
    sem_t in_handler, gate;  /* for NUM_BLOCK messages */
} probe_t;

typedef struct probe_actor {
    ax_actor_t actor;
    probe_t *p;
} probe_actor_t;

static inline void probe_init(probe_t *p)
{
    memset(p, 0, sizeof(*p));
    sem_init(&p->started, 0, 0);
    sem_init(&p->ended, 0, 0);
    sem_init(&p->in_handler, 0, 0);
    sem_init(&p->gate, 0, 0);
}

static inline ax_status_t probe_a_init(ax_actor_t *self, void *arg)
{
    ((probe_actor_t *)self)->p = arg;
    return AX_OK;
}

static inline void probe_a_start(ax_actor_t *self)
{
    probe_t *p = ((probe_actor_t *)self)->p;

    atomic_fetch_add(&p->starts, 1);
    sem_post(&p->started);
}

static inline void probe_a_stop(ax_actor_t *self)
{
    atomic_fetch_add(&((probe_actor_t *)self)->p->stops, 1);
}

static inline void probe_a_kill(ax_actor_t *self)
{
    atomic_fetch_add(&((probe_actor_t *)self)->p->kills, 1);
}

static inline void probe_a_destroy(ax_actor_t *self)
{
    probe_t *p = ((probe_actor_t *)self)->p;

    atomic_fetch_add(&p->destroys, 1);
    sem_post(&p->ended);
}

static inline ax_status_t probe_a_receive(ax_actor_t *self, ax_msg_t **msg)
{
    probe_t *p = ((probe_actor_t *)self)->p;
    num_msg_t *m = (num_msg_t *)*msg;

    if (m->seq != p->next_seq)
        atomic_fetch_add(&p->out_of_order, 1);
    p->next_seq = m->seq + 1;
    if (m->flags & NUM_BLOCK) {
        sem_post(&p->in_handler);
        /* Bounded: a test that forgets to open the gate fails, not hangs. */
        axt_sem_wait(&p->gate, WAIT_S);
    }
    if (p->stop_self_at != 0 && m->seq == p->stop_self_at)
        AXT_CHECK(ax_stop(ax_self(self)) == AX_OK);
    atomic_fetch_add(&p->received, 1);
    return AX_OK;
}

static const ax_actor_vtable_t probe_vtable AXT_UNUSED = {
    .name = "test.probe",
    .size = sizeof(probe_actor_t),
    .init = probe_a_init,
    .on_start = probe_a_start,
    .on_stop = probe_a_stop,
    .on_kill = probe_a_kill,
    .receive_local = probe_a_receive,
    .destroy = probe_a_destroy,
};

/* Spawn a probe (vt: probe_vtable, or a variant of it) and park it in the
 * handler of its message seq 0, a NUM_BLOCK one: its mailbox holds
 * whatever is sent to it until its gate opens. */
static inline ax_ref_t probe_spawn_parked(ax_system_t *sys, const ax_actor_vtable_t *vt, probe_t *p)
{
    ax_ref_t r;

    probe_init(p);
    cr_assert_eq(ax_spawn(sys, vt, p, &r), AX_OK);
    num_tell(r, 0, 0, NUM_BLOCK);
    AXT_WAIT_SEM(&p->in_handler);
    return r;
}

/* ---- a dead-letter collector ------------------------------------------ */

typedef struct dl_log dl_log_t;
struct dl_log {
    _Atomic uint64_t count;   /* dead letters received */
    _Atomic uint64_t eclosed; /* of which with status AX_ECLOSED */
    _Atomic uint64_t for_watch; /* of which for recipient `watch` */
    _Atomic uint64_t nums;    /* of which carrying a num_msg_t */
    ax_ref_t watch;
    /* Optional, called on the collector for each letter. */
    void (*on_letter)(dl_log_t *log, const ax_dead_letter_t *dl);
    void *ctx;
};

typedef struct dl_actor {
    ax_actor_t actor;
    dl_log_t *log;
} dl_actor_t;

static inline ax_status_t dl_a_init(ax_actor_t *self, void *arg)
{
    ((dl_actor_t *)self)->log = arg;
    return AX_OK;
}

static inline ax_status_t dl_a_receive(ax_actor_t *self, ax_msg_t **msg)
{
    dl_log_t *log = ((dl_actor_t *)self)->log;
    const ax_dead_letter_t *dl = (const ax_dead_letter_t *)*msg;

    AXT_CHECK((*msg)->type == &ax_dead_letter_type);
    if ((*msg)->type != &ax_dead_letter_type)
        return AX_OK;
    if (log->on_letter != NULL)
        log->on_letter(log, dl);
    if (dl->status == AX_ECLOSED)
        atomic_fetch_add(&log->eclosed, 1);
    if (ax_ref_eq(dl->recipient, log->watch))
        atomic_fetch_add(&log->for_watch, 1);
    if (dl->msg != NULL && dl->msg->type == &num_type)
        atomic_fetch_add(&log->nums, 1);
    /* Last: a test that sees the count sees the rest. */
    atomic_fetch_add(&log->count, 1);
    return AX_OK; /* the wrapper and the message inside go back */
}

static const ax_actor_vtable_t dl_vtable AXT_UNUSED = {
    .name = "test.dead-letters",
    .size = sizeof(dl_actor_t),
    .init = dl_a_init,
    .receive_local = dl_a_receive,
};

/* Spawn a collector and install it as sys's dead-letter actor. */
static inline ax_ref_t axt_collect_dead_letters(ax_system_t *sys, dl_log_t *log)
{
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &dl_vtable, log, &ref), AX_OK);
    ax_set_dead_letter_actor(sys, ref);
    return ref;
}

#endif
