/*
 * No lost wakeups. Each test hammers the moment where a worker goes to
 * sleep while someone makes work for it: pauses of a few microseconds
 * between steps let the workers spin out and park, and the next message
 * must wake one. A lost wakeup leaves a message unhandled for good, so
 * every step has a bounded wait (STEP_S) that fails the test instead.
 */
#include <pthread.h>

#include "helpers.h"

#define STEP_S 60.0 /* a hang bound, far beyond any load-induced stall */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- an echo to a thread outside the system ---------------------------- */

typedef struct ping_msg {
    ax_msg_t hdr;
    sem_t *reply;
    uint64_t seq;
} ping_msg_t;

static const ax_msg_type_t ping_type = {.name = "test.ping", .size = sizeof(ping_msg_t)};

typedef struct echo {
    ax_actor_t actor;
    uint64_t expect;
} echo_t;

static ax_status_t echo_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ping_msg_t *p = (ping_msg_t *)*msg;

    (void)self;
    sem_post(p->reply);
    return AX_OK;
}

static const ax_actor_vtable_t echo_vtable = {
    .name = "test.echo",
    .size = sizeof(echo_t),
    .receive_local = echo_receive,
};

Test(wakeup, a_thread_pinging_with_pauses_is_always_answered)
{
    ax_system_t *sys = axt_system(2);
    ax_msg_pool_options_t po = {.initial = 1, .max = 4};
    ax_msg_pool_t *pool;
    uint64_t rng = 0x1234567;
    uint64_t steps = axt_scaled(20000) < 5000 ? 5000 : axt_scaled(20000);
    sem_t reply;
    ax_ref_t e;

    sem_init(&reply, 0, 0);
    cr_assert_eq(ax_msg_pool_create(&ping_type, &po, &pool), AX_OK);
    cr_assert_eq(ax_spawn(sys, &echo_vtable, NULL, &e), AX_OK);
    for (uint64_t i = 0; i < steps; i++) {
        ax_msg_t *m = NULL;

        cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &m), AX_OK);
        ((ping_msg_t *)m)->reply = &reply;
        ((ping_msg_t *)m)->seq = i;
        cr_assert_eq(ax_tell(e, &m, AX_REF_NULL), AX_OK);
        cr_assert(axt_sem_wait(&reply, STEP_S), "step %llu: no reply (a lost wakeup)",
                  (unsigned long long)i);
        /* 0-63 us: sometimes the workers are still spinning, sometimes
         * they have parked. */
        axt_sleep_us((unsigned)(xorshift(&rng) % 64));
    }
    ax_system_stats_t st = axt_stats(sys);
    cr_log_info("%llu steps, %llu parks", (unsigned long long)steps, (unsigned long long)st.parks);
    cr_assert_gt(st.parks, 0, "the test must make workers park to mean anything");
    axt_shutdown(&sys);
    ax_msg_pool_destroy(&pool);
}

Test(wakeup, bursts_to_many_idle_actors_wake_enough_workers)
{
    enum { ACTORS = 16 };
    ax_system_t *sys = axt_system(2);
    uint64_t rng = 0x9876543;
    uint64_t rounds = axt_scaled(5000) < 1000 ? 1000 : axt_scaled(5000);
    sem_t reply;
    ax_ref_t e[ACTORS];

    sem_init(&reply, 0, 0);
    for (int i = 0; i < ACTORS; i++)
        cr_assert_eq(ax_spawn(sys, &echo_vtable, NULL, &e[i]), AX_OK);
    for (uint64_t r = 0; r < rounds; r++) {
        unsigned n = 1 + (unsigned)(xorshift(&rng) % ACTORS);

        for (unsigned i = 0; i < n; i++) {
            ax_msg_t *m = NULL;

            cr_assert_eq(ax_msg_alloc(&ping_type, &m), AX_OK);
            ((ping_msg_t *)m)->reply = &reply;
            cr_assert_eq(ax_tell(e[i], &m, AX_REF_NULL), AX_OK);
        }
        for (unsigned i = 0; i < n; i++)
            cr_assert(axt_sem_wait(&reply, STEP_S), "round %llu: reply %u of %u never came",
                      (unsigned long long)r, i, n);
        axt_sleep_us((unsigned)(xorshift(&rng) % 64));
    }
    axt_shutdown(&sys);
}

/* ---- actors waking actors, with pauses inside handlers ------------------ */

/*
 * A hub fans a round out to SPOKES idle actors; each answers; when all have
 * answered the hub pauses a few microseconds (long enough for the other
 * worker to park) and starts the next round. Wakeups here come from a
 * worker: through its run-next slot and its ring, and by waking the other.
 */
#define SPOKES 8

typedef struct round_msg {
    ax_msg_t hdr;
    uint64_t round;
} round_msg_t;

static const ax_msg_type_t round_type = {.name = "test.round", .size = sizeof(round_msg_t)};

typedef struct hub {
    ax_actor_t actor;
    ax_ref_t spokes[SPOKES];
    uint64_t round, answers, rounds;
    uint64_t rng;
    _Atomic uint64_t *progress;
    sem_t *done;
} hub_t;

typedef struct hub_args {
    ax_ref_t *spokes;
    uint64_t rounds;
    _Atomic uint64_t *progress;
    sem_t *done;
} hub_args_t;

static ax_status_t spoke_receive(ax_actor_t *self, ax_msg_t **msg)
{
    /* Answer with the same message: ownership moves back to the hub. */
    AXT_CHECK(ax_tell((*msg)->sender, msg, ax_self(self)) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t spoke_vtable = {
    .name = "test.spoke",
    .size = sizeof(ax_actor_t),
    .receive_local = spoke_receive,
};

static void hub_fan_out(hub_t *h)
{
    for (int i = 0; i < SPOKES; i++) {
        ax_msg_t *m = NULL;

        AXT_CHECK(ax_msg_alloc(&round_type, &m) == AX_OK);
        ((round_msg_t *)m)->round = h->round;
        AXT_CHECK(ax_tell(h->spokes[i], &m, ax_self(&h->actor)) == AX_OK);
    }
}

static ax_status_t hub_init(ax_actor_t *self, void *arg)
{
    hub_t *h = (hub_t *)self;
    hub_args_t *a = arg;

    memcpy(h->spokes, a->spokes, sizeof(h->spokes));
    h->rounds = a->rounds;
    h->progress = a->progress;
    h->done = a->done;
    h->rng = (uintptr_t)self | 1;
    return AX_OK;
}

static void hub_start(ax_actor_t *self)
{
    hub_fan_out((hub_t *)self);
}

static ax_status_t hub_receive(ax_actor_t *self, ax_msg_t **msg)
{
    hub_t *h = (hub_t *)self;

    AXT_CHECK(((round_msg_t *)*msg)->round == h->round);
    if (++h->answers < SPOKES)
        return AX_OK;
    h->answers = 0;
    atomic_fetch_add(h->progress, 1);
    if (++h->round == h->rounds) {
        sem_post(h->done);
        return AX_OK;
    }
    /* A pause on the worker: the other one runs dry and parks. */
    axt_sleep_us((unsigned)(xorshift(&h->rng) % 32));
    hub_fan_out(h);
    return AX_OK;
}

static const ax_actor_vtable_t hub_vtable = {
    .name = "test.hub",
    .size = sizeof(hub_t),
    .init = hub_init,
    .on_start = hub_start,
    .receive_local = hub_receive,
};

/* Wait until *progress reaches target, failing when it stalls for STEP_S. */
static void wait_progress(_Atomic uint64_t *progress, uint64_t target)
{
    uint64_t last = atomic_load(progress);
    double stalled_since = axt_now();

    while (last < target) {
        uint64_t now = atomic_load(progress);

        if (now != last) {
            last = now;
            stalled_since = axt_now();
        } else {
            cr_assert_lt(axt_now() - stalled_since, STEP_S,
                         "no progress for %.0f s at %llu of %llu (a lost wakeup)", STEP_S,
                         (unsigned long long)last, (unsigned long long)target);
        }
        axt_sleep_us(200);
    }
}

Test(wakeup, hubs_fanning_out_with_pauses_always_complete)
{
    enum { HUBS = 4 };
    ax_system_t *sys = axt_system(2);
    uint64_t rounds = axt_scaled(5000) < 1000 ? 1000 : axt_scaled(5000);
    _Atomic uint64_t progress = 0;
    sem_t done;

    sem_init(&done, 0, 0);
    for (int h = 0; h < HUBS; h++) {
        ax_ref_t spokes[SPOKES], hub;
        hub_args_t a = {spokes, rounds, &progress, &done};

        for (int i = 0; i < SPOKES; i++)
            cr_assert_eq(ax_spawn(sys, &spoke_vtable, NULL, &spokes[i]), AX_OK);
        cr_assert_eq(ax_spawn(sys, &hub_vtable, &a, &hub), AX_OK);
    }
    wait_progress(&progress, HUBS * rounds);
    for (int h = 0; h < HUBS; h++)
        AXT_WAIT_SEM(&done);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

/* ---- pairs ping-ponging, pausing now and then -------------------------- */

typedef struct pair_actor {
    ax_actor_t actor;
    ax_ref_t peer;
    uint64_t rng;
    uint64_t remaining;
    _Atomic uint64_t *progress;
} pair_actor_t;

typedef struct pair_args {
    ax_ref_t peer;
    uint64_t remaining;
    _Atomic uint64_t *progress;
} pair_args_t;

static ax_status_t pair_init(ax_actor_t *self, void *arg)
{
    pair_actor_t *p = (pair_actor_t *)self;
    pair_args_t *a = arg;

    p->peer = a->peer;
    p->remaining = a->remaining;
    p->progress = a->progress;
    p->rng = ((uintptr_t)self >> 6) | 1;
    return AX_OK;
}

static ax_status_t pair_receive(ax_actor_t *self, ax_msg_t **msg)
{
    pair_actor_t *p = (pair_actor_t *)self;
    ax_ref_t to = ax_ref_is_null(p->peer) ? (*msg)->sender : p->peer;

    atomic_fetch_add(p->progress, 1);
    if (p->remaining == 0)
        return AX_OK; /* the ball stops here */
    p->remaining--;
    if (xorshift(&p->rng) % 32 == 0)
        axt_sleep_us((unsigned)(xorshift(&p->rng) % 16));
    AXT_CHECK(ax_tell(to, msg, ax_self(self)) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t pair_vtable = {
    .name = "test.pair",
    .size = sizeof(pair_actor_t),
    .init = pair_init,
    .receive_local = pair_receive,
};

Test(wakeup, many_pairs_ping_ponging_with_pauses_finish)
{
    enum { PAIRS = 32 };
    ax_system_t *sys = axt_system(2);
    uint64_t hops = axt_scaled(10000) < 2000 ? 2000 : axt_scaled(10000);
    _Atomic uint64_t progress = 0;

    for (int i = 0; i < PAIRS; i++) {
        ax_ref_t ponger, pinger;
        pair_args_t pa = {AX_REF_NULL, UINT64_MAX, &progress}; /* replies to the sender */
        ax_msg_t *ball = NULL;

        cr_assert_eq(ax_spawn(sys, &pair_vtable, &pa, &ponger), AX_OK);
        pair_args_t pb = {ponger, hops, &progress};
        cr_assert_eq(ax_spawn(sys, &pair_vtable, &pb, &pinger), AX_OK);
        cr_assert_eq(ax_msg_alloc(&round_type, &ball), AX_OK);
        cr_assert_eq(ax_tell(pinger, &ball, AX_REF_NULL), AX_OK);
    }
    /* Each pinger handles hops + 1 messages and its ponger hops. */
    wait_progress(&progress, PAIRS * (2 * hops + 1));
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

/* ---- one surplus actor still gets a worker of its own -------------------- */

/*
 * A worker holding one runnable actor beyond the one it runs next does not
 * wake a parked worker at once (sched.c, ring_push): a flooding sender and
 * its receiver then take turns on one core. Once that actor has waited
 * AX__SURPLUS_WAIT_NS the wake must come, or two busy actors would share
 * one core for good. Here a busy actor wakes a second one from its
 * handler (into its own worker's run-next slot) and both keep busy: they
 * must end up on two workers.
 *
 * The woken worker must be scheduled while both still have work. With a
 * fixed number of rounds (60 of 1 ms) that left it about 35 ms, and under
 * ctest -j2 in CI it once got no CPU that long ("only ever ran on one
 * worker", in 0.14 s). So each actor goes on past BUSY_ROUNDS until the
 * handlers have run on two threads, or BUSY_GIVE_UP_S have passed: the
 * test fails only if the wake never comes.
 */
#define BUSY_ROUNDS 500
#define BUSY_US 200.0
#define BUSY_GIVE_UP_S 20.0

typedef struct busy_shared {
    _Atomic uint64_t handled;
    double give_up_at; /* axt_now() after which the actors stop regardless */
    pthread_mutex_t lock;
    pthread_t threads[2]; /* the threads the handlers ran on, first two */
    int nthreads;
    sem_t done;
} busy_shared_t;

/* Note the calling thread among those the handlers ran on. */
static void busy_note_thread(busy_shared_t *s)
{
    pthread_t me = pthread_self();

    pthread_mutex_lock(&s->lock);
    if (s->nthreads == 0 || (s->nthreads == 1 && !pthread_equal(s->threads[0], me)))
        s->threads[s->nthreads++] = me;
    pthread_mutex_unlock(&s->lock);
}

/* How many threads the handlers have run on so far (at most 2 counted). */
static int busy_threads(busy_shared_t *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->nthreads;
    pthread_mutex_unlock(&s->lock);
    return n;
}

typedef struct busy_args {
    busy_shared_t *s;
    ax_ref_t partner; /* woken once by the first handling; NULL for none */
} busy_args_t;

typedef struct busy_actor {
    ax_actor_t actor;
    busy_args_t a;
    unsigned rounds;
} busy_actor_t;

static ax_status_t busy_init(ax_actor_t *self, void *arg)
{
    ((busy_actor_t *)self)->a = *(busy_args_t *)arg;
    return AX_OK;
}

static ax_status_t busy_receive(ax_actor_t *self, ax_msg_t **msg)
{
    busy_actor_t *b = (busy_actor_t *)self;
    busy_shared_t *s = b->a.s;
    double until = axt_now() + BUSY_US / 1e6;
    ax_msg_t *m = NULL;

    busy_note_thread(s);
    while (axt_now() < until)
        ; /* CPU work, not a wait */
    atomic_fetch_add(&s->handled, 1);
    if (b->rounds == 0 && !ax_ref_is_null(b->a.partner)) {
        AXT_CHECK(ax_msg_alloc(&round_type, &m) == AX_OK);
        AXT_CHECK(ax_tell(b->a.partner, &m, ax_self(self)) == AX_OK);
    }
    if (++b->rounds >= BUSY_ROUNDS && (busy_threads(s) == 2 || axt_now() > s->give_up_at)) {
        sem_post(&s->done);
        return AX_OK;
    }
    /* The same message again: the actor stays runnable. */
    AXT_CHECK(ax_tell(ax_self(self), msg, ax_self(self)) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t busy_vtable = {
    .name = "test.busy",
    .size = sizeof(busy_actor_t),
    .init = busy_init,
    .receive_local = busy_receive,
};

Test(wakeup, two_busy_actors_woken_on_one_worker_end_up_on_two)
{
    ax_system_t *sys = axt_system(2);
    busy_shared_t s = {0};
    busy_args_t second_args = {&s, AX_REF_NULL}, first_args = {&s, AX_REF_NULL};
    ax_ref_t first, second;
    ax_msg_t *m = NULL;

    sem_init(&s.done, 0, 0);
    pthread_mutex_init(&s.lock, NULL);
    s.give_up_at = axt_now() + BUSY_GIVE_UP_S;
    cr_assert_eq(ax_spawn(sys, &busy_vtable, &second_args, &second), AX_OK);
    first_args.partner = second;
    cr_assert_eq(ax_spawn(sys, &busy_vtable, &first_args, &first), AX_OK);
    cr_assert_eq(ax_msg_alloc(&round_type, &m), AX_OK);
    cr_assert_eq(ax_tell(first, &m, AX_REF_NULL), AX_OK);
    AXT_WAIT_SEM(&s.done);
    AXT_WAIT_SEM(&s.done);
    AXT_ASSERT_NO_BAD();
    cr_assert_geq(atomic_load(&s.handled), 2 * BUSY_ROUNDS, "handled %llu of at least %d",
                  U(atomic_load(&s.handled)), 2 * BUSY_ROUNDS);
    /* On two workers, whether or not the machine had two CPUs free for
     * them at the time (the suite runs two tests at once). */
    cr_assert_eq(s.nthreads, 2, "the two busy actors only ever ran on one worker");
    axt_shutdown(&sys);
    pthread_mutex_destroy(&s.lock);
    sem_destroy(&s.done);
}
