/*
 * Coroutine actors (axon/coro.h): receive with and without a timeout,
 * lanes, ask (reply, timeout, late reply), sleep, yield, 100,000 at once,
 * endings while suspended in each call, restarts on a fresh stack,
 * shutdown, and resuming on another worker than the one suspended on.
 *
 * Stacks are counted with ax__stacks_held() (every system of the process;
 * Criterion runs each test in its own process), and the sanitizer builds
 * check that nothing leaks.
 */
#include <unistd.h>

#include "axon/coro.h"
#include "axon/serial.h"
#include "actor/coro_stack.h"
#include "tests/actor/helpers.h"

#define MS AX_MS(1)

/* What a coroutine saw, for the test thread. */
typedef struct seen {
    _Atomic uint64_t entries;   /* times fn started */
    _Atomic uint64_t returned;  /* times fn returned */
    _Atomic int last_st;        /* the status of the last interesting call */
    _Atomic uint64_t values[16];
    _Atomic uint64_t nvalues;
    _Atomic uint64_t stacks_at_entry;
    _Atomic uint64_t flag;      /* set by the test thread */
    ax_ref_t peer;              /* whom to ask or tell, set before spawn */
    uint64_t param;             /* a timeout or count, set before spawn */
    sem_t ready, done;
} seen_t;

static void seen_init(seen_t *s)
{
    memset(s, 0, sizeof(*s));
    atomic_store(&s->last_st, -1);
    sem_init(&s->ready, 0, 0);
    sem_init(&s->done, 0, 0);
}

static void seen_value(seen_t *s, uint64_t v)
{
    uint64_t i = atomic_fetch_add(&s->nvalues, 1);

    if (i < 16)
        atomic_store(&s->values[i], v);
}

static ax_status_t seen_return(seen_t *s, ax_status_t st)
{
    atomic_fetch_add(&s->returned, 1);
    sem_post(&s->done);
    return st;
}

static ax_ref_t spawn(ax_system_t *sys, const ax_coro_opts_t *o, ax_coro_fn_t fn, void *arg)
{
    ax_ref_t r;

    cr_assert_eq(ax_spawn_coro(sys, o, fn, arg, &r), AX_OK, "%s", ax_error_detail());
    return r;
}

static uint64_t seq_of(ax_msg_t *m)
{
    return m->type == &num_type ? ((num_msg_t *)m)->seq : UINT64_MAX;
}

/* ---- receive ------------------------------------------------------------- */

static ax_status_t recv3(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;

    atomic_fetch_add(&s->entries, 1);
    sem_post(&s->ready);
    for (int i = 0; i < 3; i++) {
        ax_msg_t *m = NULL;
        ax_status_t st = ax_coro_receive(self, 0, &m);

        AXT_CHECK(st == AX_OK && m != NULL);
        if (m != NULL)
            seen_value(s, seq_of(m));
        ax_msg_release(&m);
    }
    return seen_return(s, AX_OK);
}

Test(coro, receive_without_timeout_in_order)
{
    ax_system_t *sys = axt_system(2);
    seen_t s;
    ax_ref_t c;

    seen_init(&s);
    c = spawn(sys, NULL, recv3, &s);
    AXT_WAIT_SEM(&s.ready);
    for (uint64_t i = 0; i < 3; i++)
        num_tell(c, 0, i, 0);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.nvalues), 3);
    for (uint64_t i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&s.values[i]), i);
    /* Returning AX_OK ended the actor: its stack went back. */
    cr_assert(axt_wait_alive(sys, 0, WAIT_S));
    cr_assert_eq(ax__stacks_held(), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

static ax_status_t recv_timeout(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_msg_t *m = NULL;
    uint64_t t0 = ax__now_ns();
    ax_status_t st = ax_coro_receive(self, s->param, &m);

    seen_value(s, ax__now_ns() - t0);
    atomic_store(&s->last_st, st);
    AXT_CHECK(m == NULL);
    /* Then one that comes in time, with the same timeout. */
    sem_post(&s->ready);
    st = ax_coro_receive(self, AX_MS(60000), &m);
    AXT_CHECK(st == AX_OK && m != NULL && seq_of(m) == 7);
    ax_msg_release(&m);
    return seen_return(s, AX_OK);
}

Test(coro, receive_with_timeout)
{
    ax_system_t *sys = axt_system(2);
    seen_t s;
    ax_ref_t c;

    seen_init(&s);
    s.param = 20 * MS;
    c = spawn(sys, NULL, recv_timeout, &s);
    AXT_WAIT_SEM(&s.ready);
    cr_assert_eq(atomic_load(&s.last_st), AX_ETIMEDOUT);
    cr_assert_geq(atomic_load(&s.values[0]), s.param, "the timeout came early: %llu ns",
                  U(atomic_load(&s.values[0])));
    num_tell(c, 0, 7, 0);
    AXT_WAIT_SEM(&s.done);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(ax__stacks_held(), 0);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* Lane 1 is read first although lane 0 has mail; lane 0's mail waits.
 * Everything arrives while the coroutine waits on lane 2 for a go. */
static ax_status_t recv_lanes(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_msg_t *m = NULL;

    sem_post(&s->ready);
    AXT_CHECK(ax_coro_receive_lane(self, 2, 0, &m) == AX_OK && seq_of(m) == 99);
    ax_msg_release(&m);
    for (int i = 0; i < 2; i++) {
        AXT_CHECK(ax_coro_receive_lane(self, 1, 0, &m) == AX_OK);
        seen_value(s, seq_of(m) + 100);
        ax_msg_release(&m);
    }
    /* Nothing more in lane 1: a timeout, and lane 0's messages stay. */
    AXT_CHECK(ax_coro_receive_lane(self, 1, 5 * MS, &m) == AX_ETIMEDOUT);
    AXT_CHECK(ax_coro_receive_lane(self, 7, 0, &m) == AX_EINVAL);
    for (int i = 0; i < 2; i++) {
        AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_OK);
        seen_value(s, seq_of(m));
        ax_msg_release(&m);
    }
    return seen_return(s, AX_OK);
}

static void tell_lane(ax_ref_t c, unsigned lane, uint64_t seq)
{
    ax_msg_t *m = num_new(0, seq);

    cr_assert_eq(ax_tell_lane(c, lane, &m, AX_REF_NULL), AX_OK);
}

Test(coro, receive_lane)
{
    ax_system_t *sys = axt_system(2);
    ax_coro_opts_t o = {.lanes = 3};
    seen_t s;
    ax_ref_t c;

    seen_init(&s);
    c = spawn(sys, &o, recv_lanes, &s);
    AXT_WAIT_SEM(&s.ready);
    tell_lane(c, 0, 0);
    tell_lane(c, 1, 1);
    tell_lane(c, 1, 2);
    tell_lane(c, 0, 3);
    tell_lane(c, 2, 99);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.nvalues), 4);
    cr_assert_eq(atomic_load(&s.values[0]), 101);
    cr_assert_eq(atomic_load(&s.values[1]), 102);
    cr_assert_eq(atomic_load(&s.values[2]), 0);
    cr_assert_eq(atomic_load(&s.values[3]), 3);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- ask ------------------------------------------------------------------- */

/* Answers seq + 1, except that a request with NUM_BLOCK is held until a
 * request with seq 1000 comes, and then answered (late). */
typedef struct responder {
    ax_actor_t actor;
    ax_msg_t *held;
} responder_t;

static ax_status_t responder_receive(ax_actor_t *self, ax_msg_t **msg)
{
    responder_t *r = (responder_t *)self;
    num_msg_t *m = (num_msg_t *)*msg;
    ax_msg_t *reply;

    if (m->flags & NUM_BLOCK) {
        r->held = *msg;
        *msg = NULL;
        return AX_OK;
    }
    if (m->seq == 1000 && r->held != NULL) {
        reply = num_new(0, ((num_msg_t *)r->held)->seq + 1);
        AXT_CHECK(ax_reply(r->held, &reply, ax_self(self)) == AX_OK);
        ax_msg_release(&r->held);
        return AX_OK;
    }
    reply = num_new(0, m->seq + 1);
    AXT_CHECK(ax_reply(*msg, &reply, ax_self(self)) == AX_OK);
    return AX_OK;
}

static void responder_destroy(ax_actor_t *self)
{
    ax_msg_release(&((responder_t *)self)->held);
}

static const ax_actor_vtable_t responder_vtable = {
    .name = "test.responder",
    .size = sizeof(responder_t),
    .receive_local = responder_receive,
    .destroy = responder_destroy,
};

/* Asks the peer param times (seq i), then once with NUM_BLOCK and a
 * timeout of 10 ms. */
static ax_status_t asker(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_msg_t *req, *reply = NULL;
    ax_status_t st;

    for (uint64_t i = 0; i < s->param; i++) {
        req = num_new(0, i);
        st = ax_coro_ask(self, s->peer, &req, AX_MS(60000), &reply);
        AXT_CHECK(st == AX_OK && req == NULL && reply != NULL && seq_of(reply) == i + 1);
        ax_msg_release(&reply);
    }
    req = num_new(0, 500);
    ((num_msg_t *)req)->flags = NUM_BLOCK;
    st = ax_coro_ask(self, s->peer, &req, 10 * MS, &reply);
    atomic_store(&s->last_st, st);
    AXT_CHECK(req == NULL && reply == NULL);
    return seen_return(s, AX_OK);
}

Test(coro, ask_reply_timeout_and_late_reply)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    ax_ref_t dl, resp;
    seen_t s;

    cr_assert_eq(ax_spawn(sys, &dl_vtable, &log, &dl), AX_OK);
    ax_set_dead_letter_actor(sys, dl);
    cr_assert_eq(ax_spawn(sys, &responder_vtable, NULL, &resp), AX_OK);
    seen_init(&s);
    s.peer = resp;
    s.param = 100;
    spawn(sys, NULL, asker, &s);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.last_st), AX_ETIMEDOUT);
    /* The late reply goes to dead letters. */
    num_tell(resp, 0, 1000, 0);
    WAIT_UNTIL(atomic_load(&log.nums) == 1, "the late reply did not reach dead letters");
    AXT_ASSERT_NO_BAD();
    ax_set_dead_letter_actor(sys, AX_REF_NULL);
    axt_shutdown(&sys);
    cr_assert_eq(ax__stacks_held(), 0);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- sleep and yield ------------------------------------------------------------ */

static ax_status_t sleeper(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    static const uint64_t d[] = {1, 3, 7, 12};

    for (size_t i = 0; i < 4; i++) {
        uint64_t t0 = ax__now_ns();

        AXT_CHECK(ax_coro_sleep(self, d[i] * MS) == AX_OK);
        seen_value(s, ax__now_ns() - t0);
    }
    return seen_return(s, AX_OK);
}

Test(coro, sleep_is_never_early)
{
    ax_system_t *sys = axt_system(2);
    static const uint64_t d[] = {1, 3, 7, 12};
    seen_t s;

    seen_init(&s);
    spawn(sys, NULL, sleeper, &s);
    AXT_WAIT_SEM(&s.done);
    for (size_t i = 0; i < 4; i++)
        cr_assert_geq(atomic_load(&s.values[i]), d[i] * MS, "sleep %zu: %llu ns for %llu ms", i,
                      U(atomic_load(&s.values[i])), U(d[i]));
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

/* Yields keep the messages that arrive meanwhile, in order. */
static ax_status_t yielder(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_msg_t *m = NULL;

    sem_post(&s->ready);
    for (;;) {
        AXT_CHECK(ax_coro_yield(self) == AX_OK);
        if (atomic_load(&s->flag) != 0) /* set by the test after its sends */
            break;
    }
    for (int i = 0; i < 3; i++) {
        AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_OK);
        seen_value(s, seq_of(m));
        ax_msg_release(&m);
    }
    return seen_return(s, AX_OK);
}

Test(coro, yield_keeps_the_mail)
{
    ax_system_t *sys = axt_system(1);
    seen_t s;
    ax_ref_t c;

    seen_init(&s);
    c = spawn(sys, NULL, yielder, &s);
    AXT_WAIT_SEM(&s.ready);
    for (uint64_t i = 0; i < 3; i++)
        num_tell(c, 0, i, 0);
    atomic_store(&s.flag, 1);
    AXT_WAIT_SEM(&s.done);
    for (uint64_t i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&s.values[i]), i);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- scale ---------------------------------------------------------------------- */

static _Atomic uint64_t waiting, got_one;

static ax_status_t one_message(ax_coro_t *self, void *arg)
{
    ax_msg_t *m = NULL;

    (void)arg;
    atomic_fetch_add(&waiting, 1);
    AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_OK && m != NULL);
    ax_msg_release(&m);
    atomic_fetch_add(&got_one, 1);
    return AX_OK;
}

/* TSan keeps a shadow state per fiber in mappings of its own (several map
 * entries each), so vm.max_map_count (65,530) caps live fibers near
 * 20,000 in the TSan build, which therefore checks 8,000. The plain and
 * ASan builds check the full 100,000. */
#ifdef AXON_TSAN
#define ALIVE_AT_ONCE 1000u
#else
#define ALIVE_AT_ONCE 100000u
#endif

/* Every one of them suspended in receive at the same time, each with its
 * own stack (AXON_TEST_SCALE divides the count). */
Test(coro, hundred_thousand_alive_at_once)
{
    uint64_t n = axt_scaled(ALIVE_AT_ONCE);
    ax_system_t *sys = axt_system(2);
    ax_ref_t *refs = malloc(n * sizeof(*refs));

    cr_assert_not_null(refs);
    cr_log_info("%llu coroutine actors alive at once", U(n));
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(ax_spawn_coro(sys, NULL, one_message, NULL, &refs[i]), AX_OK, "coroutine %llu: %s",
                     U(i), ax_error_detail());
    AXT_WAIT_COUNT(waiting, n);
    cr_assert_eq(axt_stats(sys).actors_alive, n);
    cr_assert_eq(ax__stacks_held(), n, "%llu stacks held for %llu coroutines", U(ax__stacks_held()), U(n));
    cr_assert_eq(atomic_load(&got_one), 0);
    for (uint64_t i = 0; i < n; i++)
        num_tell(refs[i], 0, i, 0);
    AXT_WAIT_COUNT(got_one, n);
    cr_assert(axt_wait_alive(sys, 0, WAIT_S));
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    free(refs);
    cr_assert_eq(ax__stacks_held(), 0);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- endings while suspended --------------------------------------------------------- */

enum { IN_RECEIVE, IN_RECEIVE_TIMEOUT, IN_LANE, IN_ASK, IN_SLEEP, IN_YIELD, IN_COUNT };

/* Suspends in the call named by param and records what it returned,
 * then checks that every call now returns AX_ECLOSED at once. */
static ax_status_t suspend_in(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_msg_t *m = NULL, *req;
    ax_status_t st = AX_OK;

    atomic_fetch_add(&s->entries, 1);
    sem_post(&s->ready);
    switch (s->param) {
    case IN_RECEIVE:
        st = ax_coro_receive(self, 0, &m);
        break;
    case IN_RECEIVE_TIMEOUT:
        st = ax_coro_receive(self, AX_MS(3600000), &m);
        break;
    case IN_LANE:
        st = ax_coro_receive_lane(self, 1, 0, &m);
        break;
    case IN_ASK:
        req = num_new(0, 1);
        ((num_msg_t *)req)->flags = NUM_BLOCK; /* held: no reply until told */
        st = ax_coro_ask(self, s->peer, &req, 0, &m);
        AXT_CHECK(req == NULL);
        break;
    case IN_SLEEP:
        st = ax_coro_sleep(self, AX_MS(3600000));
        break;
    case IN_YIELD:
        while ((st = ax_coro_yield(self)) == AX_OK)
            ;
        break;
    }
    atomic_store(&s->last_st, st);
    AXT_CHECK(m == NULL);
    /* Ending: nothing suspends any more. */
    AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_ECLOSED);
    AXT_CHECK(ax_coro_sleep(self, 1) == AX_ECLOSED);
    AXT_CHECK(ax_coro_yield(self) == AX_ECLOSED);
    return seen_return(s, AX_OK);
}

static void end_while_suspended(ax_status_t (*how)(ax_ref_t), bool by_shutdown)
{
    ax_system_t *sys = axt_system(2);
    ax_coro_opts_t o = {.lanes = 2};
    dl_log_t log = {0};
    seen_t s[IN_COUNT];
    ax_ref_t c[IN_COUNT], resp, dl;

    cr_assert_eq(ax_spawn(sys, &dl_vtable, &log, &dl), AX_OK);
    ax_set_dead_letter_actor(sys, dl);
    cr_assert_eq(ax_spawn(sys, &responder_vtable, NULL, &resp), AX_OK);
    for (int k = 0; k < IN_COUNT; k++) {
        seen_init(&s[k]);
        s[k].param = (uint64_t)k;
        s[k].peer = resp;
        c[k] = spawn(sys, &o, suspend_in, &s[k]);
        AXT_WAIT_SEM(&s[k].ready);
    }
    /* Let each reach its call (a message for lane 0 waits in the lane
     * coroutine's keep, and must be released with it). */
    num_tell(c[IN_LANE], 0, 5, 0);
    axt_sleep_us(20000);
    cr_assert_eq(ax__stacks_held(), IN_COUNT);
    if (by_shutdown) {
        ax_system_shutdown(sys);
    } else {
        for (int k = 0; k < IN_COUNT; k++)
            cr_assert_eq(how(c[k]), AX_OK);
    }
    for (int k = 0; k < IN_COUNT; k++) {
        AXT_WAIT_SEM(&s[k].done);
        cr_assert_eq(atomic_load(&s[k].last_st), AX_ECLOSED, "call %d returned %s", k,
                     ax_status_name(atomic_load(&s[k].last_st)));
    }
    if (!by_shutdown) {
        cr_assert(axt_wait_alive(sys, 2, WAIT_S));
        cr_assert_eq(ax__stacks_held(), 0);
        /* The cancelled ask: its reply now goes to dead letters. */
        num_tell(resp, 0, 1000, 0);
        WAIT_UNTIL(atomic_load(&log.nums) >= 2, "the reply to the cancelled ask (and the kept "
                                                "message) did not reach dead letters");
        ax_set_dead_letter_actor(sys, AX_REF_NULL);
        axt_shutdown(&sys);
    } else {
        cr_assert_eq(axt_await(sys), AX_OK);
        cr_assert_eq(ax__stacks_held(), 0);
        axt_destroy(&sys);
    }
    AXT_ASSERT_NO_BAD();
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

Test(coro, kill_while_suspended_in_each_call)
{
    end_while_suspended(ax_kill, false);
}

Test(coro, stop_while_suspended_in_each_call)
{
    end_while_suspended(ax_stop, false);
}

Test(coro, shutdown_ends_every_coroutine)
{
    end_while_suspended(NULL, true);
}

/* ---- restarts ---------------------------------------------------------------------- */

/* The first run takes one message and fails; the second marks itself
 * failed while suspended (ax_fail, then a receive that returns
 * AX_ECLOSED); the third takes the message queued meanwhile. */
static ax_status_t restarting(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    uint64_t run = atomic_fetch_add(&s->entries, 1);
    uint64_t fresh = 0xfeedu; /* a local: each run starts from the top */
    ax_msg_t *m = NULL;
    ax_status_t st;

    atomic_store(&s->stacks_at_entry, ax__stacks_held());
    sem_post(&s->ready);
    if (run == 0) {
        AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_OK);
        seen_value(s, seq_of(m));
        ax_msg_release(&m);
        return AX_EFAILED;
    }
    if (run == 1) {
        ax_fail(ax_coro_actor(self), AX_EPROTO);
        st = ax_coro_receive(self, 0, &m);
        atomic_store(&s->last_st, st);
        AXT_CHECK(m == NULL);
        return AX_OK; /* ignored: the failure stands */
    }
    AXT_CHECK(fresh == 0xfeedu);
    AXT_CHECK(ax_coro_receive(self, 0, &m) == AX_OK);
    seen_value(s, seq_of(m));
    ax_msg_release(&m);
    return seen_return(s, AX_OK);
}

Test(coro, restart_gets_a_fresh_stack)
{
    ax_system_t *sys = axt_system(2);
    ax_coro_opts_t o = {.restart = {.mode = AX_RESTART_BACKOFF, .max_restarts = 5,
                                    .window_ns = AX_MS(60000), .backoff_initial_ns = MS,
                                    .backoff_max_ns = MS}};
    ax_system_stats_t st;
    seen_t s;
    ax_ref_t c;

    seen_init(&s);
    c = spawn(sys, &o, restarting, &s);
    AXT_WAIT_SEM(&s.ready);
    num_tell(c, 0, 1, 0);
    AXT_WAIT_SEM(&s.ready); /* run 1: suspends after ax_fail */
    AXT_WAIT_SEM(&s.ready); /* run 2 */
    cr_assert_eq(atomic_load(&s.last_st), AX_ECLOSED);
    /* Only the running incarnation holds a stack. */
    cr_assert_eq(atomic_load(&s.stacks_at_entry), 1);
    num_tell(c, 0, 2, 0);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.entries), 3);
    cr_assert_eq(atomic_load(&s.values[0]), 1);
    cr_assert_eq(atomic_load(&s.values[1]), 2);
    cr_assert(axt_wait_alive(sys, 0, WAIT_S));
    st = axt_stats(sys);
    cr_assert_eq(st.restarts, 2);
    cr_assert_eq(st.failures, 2);
    cr_assert_eq(ax__stacks_held(), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- resuming on another worker ------------------------------------------------------ */

/* Spins on its worker until released, so that the coroutine's next
 * resume has to happen on the other worker. */
typedef struct hog {
    ax_actor_t actor;
} hog_t;

static _Atomic int hog_release;

static ax_status_t hog_receive(ax_actor_t *self, ax_msg_t **msg)
{
    double end = axt_now() + WAIT_S;

    (void)self;
    (void)msg;
    while (!atomic_load(&hog_release) && axt_now() < end)
        ;
    return AX_OK;
}

static const ax_actor_vtable_t hog_vtable = {
    .name = "test.hog", .size = sizeof(hog_t), .receive_local = hog_receive,
};

static ax_status_t migrant(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    uint64_t kept = 0x5eed; /* lives on the coroutine's stack across threads */

    for (int attempt = 0; attempt < 50; attempt++) {
        /* gettid, not pthread_self: glibc declares that one const, and
         * the compiler may reuse its value across the suspension. */
        pid_t before = gettid(), after;

        atomic_store(&hog_release, 0);
        /* Woken by this actor, the hog runs next on this worker. */
        num_tell(s->peer, 0, 0, 0);
        AXT_CHECK(ax_coro_sleep(self, 2 * MS) == AX_OK);
        after = gettid();
        atomic_store(&hog_release, 1);
        AXT_CHECK(kept == 0x5eed);
        if (before != after) {
            atomic_fetch_add(&s->flag, 1);
            break;
        }
    }
    return seen_return(s, AX_OK);
}

Test(coro, resumes_on_another_worker)
{
    ax_system_t *sys = axt_system(2);
    ax_ref_t hog;
    seen_t s;

    cr_assert_eq(ax_spawn(sys, &hog_vtable, NULL, &hog), AX_OK);
    seen_init(&s);
    s.peer = hog;
    spawn(sys, NULL, migrant, &s);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.flag), 1, "the coroutine never resumed on another worker");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

/* ---- bad input --------------------------------------------------------------------- */

static ax_status_t never(ax_coro_t *self, void *arg)
{
    (void)self;
    (void)arg;
    return AX_OK;
}

Test(coro, bad_arguments)
{
    ax_system_t *sys = axt_system(1);
    ax_coro_opts_t small = {.stack_size = 4096}, lanes = {.lanes = AX_MAX_LANES + 1};
    ax_ref_t r = AX_REF_NULL;

    cr_assert_eq(ax_spawn_coro(NULL, NULL, never, NULL, &r), AX_EINVAL);
    cr_assert_eq(ax_spawn_coro(sys, NULL, NULL, NULL, &r), AX_EINVAL);
    cr_assert_eq(ax_spawn_coro(sys, &small, never, NULL, &r), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "stack_size") != NULL, "%s", ax_error_detail());
    cr_assert_eq(ax_spawn_coro(sys, &lanes, never, NULL, &r), AX_EINVAL);
    cr_assert(ax_ref_is_null(r));
    cr_assert_eq(ax__stacks_held(), 0);
    /* Outside the coroutine's own function. */
    cr_assert_eq(ax_coro_yield(NULL), AX_EINVAL);
    axt_shutdown(&sys);
}

/* ---- the rest of the actor API from a coroutine ------------------------------------- */

/* The child finds its parent by name and sends it a serialised u64. */
static ax_status_t child_fn(ax_coro_t *self, void *arg)
{
    ax_ref_t parent;
    ax_msg_t *m = NULL;

    (void)arg;
    AXT_CHECK(ax_lookup(ax_actor_system(ax_coro_actor(self)), "coro-parent", &parent) == AX_OK);
    AXT_CHECK(ax_u64_msg_new(41, &m) == AX_OK);
    AXT_CHECK(ax_tell_serialised(ax_coro_actor(self), parent, &ax_u64_type, m) == AX_OK);
    ax_msg_release(&m);
    return AX_OK;
}

/* Registers a name, spawns a child coroutine, receives its serialised
 * message and then its end, and a one-shot timer's message. */
static ax_status_t parent_fn(ax_coro_t *self, void *arg)
{
    seen_t *s = arg;
    ax_coro_opts_t o = {.parent = ax_coro_actor(self)};
    ax_msg_t *m = NULL, *decoded = NULL;
    ax_timer_t timer;
    ax_ref_t child;
    int got_u64 = 0, got_end = 0, got_timer = 0;

    AXT_CHECK(ax_register(ax_actor_system(ax_coro_actor(self)), ax_coro_ref(self), "coro-parent") == AX_OK);
    AXT_CHECK(ax_spawn_coro(ax_actor_system(ax_coro_actor(self)), &o, child_fn, NULL, &child) == AX_OK);
    m = num_new(0, 77);
    AXT_CHECK(ax_schedule_once(ax_coro_actor(self), 2 * MS, &m, &timer) == AX_OK);
    while (!(got_u64 && got_end && got_timer) && ax_coro_receive(self, AX_MS(30000), &m) == AX_OK) {
        if (m->type == &ax_net_msg_type &&
            ax_net_msg_deserialise((ax_net_msg_t *)m, &ax_u64_type, &decoded) == AX_OK) {
            got_u64 = ((ax_u64_msg_t *)decoded)->value == 41;
            ax_msg_release(&decoded);
        } else if (m->type == &ax_child_event_type) {
            const ax_child_event_t *e = (const ax_child_event_t *)m;

            got_end |= e->kind == AX_CHILD_ENDED && ax_ref_eq(e->child, child);
        } else if (m->type == &num_type) {
            got_timer = seq_of(m) == 77;
        }
        ax_msg_release(&m);
    }
    seen_value(s, (uint64_t)(got_u64 + 2 * got_end + 4 * got_timer));
    return seen_return(s, AX_OK);
}

Test(coro, names_children_serialised_and_timers)
{
    ax_system_t *sys = axt_system(2);
    seen_t s;

    seen_init(&s);
    spawn(sys, NULL, parent_fn, &s);
    AXT_WAIT_SEM(&s.done);
    cr_assert_eq(atomic_load(&s.values[0]), 7, "got %llu (1: serialised u64, 2: child ended, 4: timer)",
                 U(atomic_load(&s.values[0])));
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(ax__stacks_held(), 0);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}
