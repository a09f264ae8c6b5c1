/*
 * Timers (ax_schedule_once, ax_schedule_periodic, ax_cancel_timer): never
 * early, cancel racing with firing, no drift, a cancelled message is
 * discarded even once queued, a stopped actor's timers are dropped, a kept
 * periodic message ends its timer, and what scheduling after shutdown does.
 *
 * Timers may only be scheduled from the actor's own handlers, so every
 * scenario runs inside a "scene" actor: the test sends it jobs (functions
 * to run, tests/common.h), and the scene hands every other message to a
 * per-test callback.
 *
 * Time is only ever asserted as a lower bound (a timer never fires early).
 * No drift is asserted on the due times the wheel computes (read through
 * ax__timer_probe), never on how late a delivery is: lateness depends on
 * the machine's load and is measured by bench/timers.c.
 */
#include <sys/resource.h>

#include "helpers.h"

#include "actor/cell.h"
#include "actor/system.h"
#include "actor/timer.h"

/* ---- a timer message that counts its releases, per index ---------------- */

#define MAX_TICKS 4096

typedef struct tick {
    ax_msg_t hdr;
    uint32_t idx;
} tick_t;

static _Atomic uint64_t tick_allocs, tick_releases;
static _Atomic uint32_t tick_rel[MAX_TICKS];

static void tick_release(ax_msg_t *m)
{
    atomic_fetch_add(&tick_rel[((tick_t *)m)->idx], 1);
    atomic_fetch_add(&tick_releases, 1);
    free(m);
}

static const ax_msg_type_t tick_type = {
    .name = "test.tick",
    .size = sizeof(tick_t),
    .release = tick_release,
};

/* Callable on any thread (Criterion asserts are fine on workers only
 * through AXT_CHECK, so this one does not assert). */
static ax_msg_t *tick_new(uint32_t idx)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&tick_type, &m) != AX_OK)
        return NULL;
    atomic_fetch_add(&tick_allocs, 1);
    ((tick_t *)m)->idx = idx;
    return m;
}

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = ax__timespec_of(t);

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* xorshift64*: a reproducible stream of delays per test. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* The median of n values (sorted in place). */
static uint64_t median_u64(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

/* ---- the scene actor ----------------------------------------------------- */

typedef void (*scene_on)(ax_actor_t *self, ax_msg_t **msg, void *ctx);

typedef struct scene {
    scene_on on_msg; /* every message but jobs */
    void *ctx;
    sem_t ended;     /* destroy */
} scene_t;

typedef struct scene_actor {
    ax_actor_t actor;
    scene_t *s;
} scene_actor_t;

static ax_status_t scene_init(ax_actor_t *self, void *arg)
{
    ((scene_actor_t *)self)->s = arg;
    return AX_OK;
}

static ax_status_t scene_receive(ax_actor_t *self, ax_msg_t **msg)
{
    scene_t *s = ((scene_actor_t *)self)->s;

    if (!axt_job_run(self, *msg) && s->on_msg != NULL)
        s->on_msg(self, msg, s->ctx);
    return AX_OK;
}

static void scene_destroy(ax_actor_t *self)
{
    sem_post(&((scene_actor_t *)self)->s->ended);
}

static const ax_actor_vtable_t scene_vtable = {
    .name = "test.scene",
    .size = sizeof(scene_actor_t),
    .init = scene_init,
    .receive_local = scene_receive,
    .destroy = scene_destroy,
};

static ax_ref_t scene_spawn(ax_system_t *sys, scene_t *s, scene_on on_msg, void *ctx)
{
    ax_ref_t ref;

    s->on_msg = on_msg;
    s->ctx = ctx;
    sem_init(&s->ended, 0, 0);
    cr_assert_eq(ax_spawn(sys, &scene_vtable, s, &ref), AX_OK);
    return ref;
}

/* Run fn(self, ctx) inside the actor, without waiting for it. */
static void scene_run(ax_ref_t ref, void (*fn)(ax_actor_t *self, void *ctx), void *ctx)
{
    cr_assert(axt_job_send(ref, fn, ctx, NULL), "the job was not sent");
}

/* ---- never early ------------------------------------------------------------ */

#define NE_ACTORS 4
#define NE_PER 500
#define NE_N (NE_ACTORS * NE_PER)

static struct {
    uint64_t delay[NE_N];
    uint64_t before[NE_N]; /* CLOCK_MONOTONIC just before ax_schedule_once */
    uint64_t at[NE_N];     /* ... when the handler got the message */
    _Atomic uint32_t got[NE_N];
    _Atomic uint64_t delivered;
} ne;

static void ne_schedule(ax_actor_t *self, void *ctx)
{
    uint32_t first = (uint32_t)(uintptr_t)ctx;

    for (uint32_t i = first; i < first + NE_PER; i++) {
        ax_msg_t *m = tick_new(i);
        ax_timer_t id = 0;

        /* Read before the call: the due time is taken inside it, so
         * before + delay <= due <= delivery is what "never early" means. */
        ne.before[i] = ax__now_ns();
        AXT_CHECK(ax_schedule_once(self, ne.delay[i], &m, &id) == AX_OK);
        AXT_CHECK(m == NULL && id != 0);
    }
}

static void ne_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    uint32_t i = ((tick_t *)*msg)->idx;

    (void)self;
    (void)ctx;
    ne.at[i] = ax__now_ns();
    atomic_fetch_add(&ne.got[i], 1);
    atomic_fetch_add(&ne.delivered, 1);
}

Test(timers, a_timer_never_fires_early)
{
    ax_system_t *sys = axt_system(2);
    scene_t scenes[NE_ACTORS];
    ax_ref_t refs[NE_ACTORS];
    uint64_t seed = 0x9e3779b97f4a7c15ull, late[NE_N];

    /* Uniform over 0-20 ms at nanosecond resolution: most due times fall
     * inside a tick, some are 0, some under a tick. */
    for (uint32_t i = 0; i < NE_N; i++)
        ne.delay[i] = i % 50 == 0 ? 0 : rng_next(&seed) % AX_MS(20);
    for (int a = 0; a < NE_ACTORS; a++)
        refs[a] = scene_spawn(sys, &scenes[a], ne_on_tick, NULL);
    /* All actors schedule at once, from two workers. */
    for (int a = 0; a < NE_ACTORS; a++)
        scene_run(refs[a], ne_schedule, (void *)(uintptr_t)(a * NE_PER));
    AXT_WAIT_COUNT(ne.delivered, NE_N);

    for (uint32_t i = 0; i < NE_N; i++) {
        cr_assert_eq(atomic_load(&ne.got[i]), 1, "timer %u delivered %u times", i,
                     atomic_load(&ne.got[i]));
        cr_assert_geq(ne.at[i], ne.before[i] + ne.delay[i],
                      "timer %u (delay %llu ns) fired %lld ns early", i,
                      (unsigned long long)ne.delay[i],
                      (long long)(ne.before[i] + ne.delay[i] - ne.at[i]));
        late[i] = ne.at[i] - (ne.before[i] + ne.delay[i]);
    }
    uint64_t med = median_u64(late, NE_N);
    cr_log_info("lateness: median %.3f ms, p99 %.3f ms, max %.3f ms", med / 1e6,
                late[NE_N * 99 / 100] / 1e6, late[NE_N - 1] / 1e6);
    /* How late is for bench/timers.c: a loaded machine delays any thread. */
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- cancel racing with firing -------------------------------------------------- */

#define CR_N 1000
#define CR_LINGER 0x2u /* the cancel handler waits a little first */

static struct {
    ax_timer_t id[CR_N];
    uint64_t due[CR_N]; /* a lower bound of the due time: before + delay */
    /* Written by the actor only; the test reads them once it is done. */
    int cancel_st[CR_N];
    bool cancelled[CR_N];
    uint64_t deliv_order[CR_N], cancel_order[CR_N], order;
    uint64_t armed_path, queued_path, too_late;
    _Atomic uint32_t delivered[CR_N];
    _Atomic uint64_t cancels_done;
} cr;

static void cr_schedule(ax_actor_t *self, void *ctx)
{
    uint64_t seed = 0x1234567887654321ull;

    (void)ctx;
    for (uint32_t i = 0; i < CR_N; i++) {
        uint64_t delay = AX_MS(5) + rng_next(&seed) % AX_MS(150);
        ax_msg_t *m = tick_new(i);

        cr.due[i] = ax__now_ns() + delay;
        AXT_CHECK(ax_schedule_once(self, delay, &m, &cr.id[i]) == AX_OK);
    }
}

static void cr_on_msg(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)ctx;
    if ((*msg)->type == &tick_type) {
        uint32_t i = ((tick_t *)*msg)->idx;

        /* A message of a timer whose cancel returned AX_OK must never
         * reach the handler. */
        AXT_CHECK(!(cr.cancelled[i] && cr.cancel_st[i] == AX_OK));
        cr.deliv_order[i] = ++cr.order;
        atomic_fetch_add(&cr.delivered[i], 1);
        return;
    }
    num_msg_t *c = (num_msg_t *)*msg;
    uint32_t i = (uint32_t)c->seq;

    if (c->flags & CR_LINGER) {
        /* Busy for a moment, so that a timer firing now lands in the
         * mailbox behind us: the cancel then finds it queued. */
        axt_spin_us(100);
    }
    cr.cancel_st[i] = ax_cancel_timer(self, cr.id[i]);
    cr.cancelled[i] = true;
    cr.cancel_order[i] = ++cr.order;
    if (cr.cancel_st[i] == AX_OK) {
        /* Released inside the cancel: it was still armed. Not yet
         * released: it had fired and waits in the mailbox. */
        if (atomic_load(&tick_rel[i]) == 1)
            cr.armed_path++;
        else
            cr.queued_path++;
    } else {
        cr.too_late++;
    }
    atomic_fetch_add(&cr.cancels_done, 1);
}

static int cmp_by_due(const void *a, const void *b)
{
    uint64_t x = cr.due[*(const uint32_t *)a], y = cr.due[*(const uint32_t *)b];

    return (x > y) - (x < y);
}

Test(timers, cancel_racing_with_firing_delivers_once_or_never)
{
    ax_system_t *sys = axt_system(2);
    uint32_t order[CR_N];
    uint64_t seed = 42;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, cr_on_msg, NULL);

    RUN_ON(ref, cr_schedule, NULL);
    for (uint32_t i = 0; i < CR_N; i++)
        order[i] = i;
    qsort(order, CR_N, sizeof(order[0]), cmp_by_due);
    /* Each cancel is sent within a millisecond either side of its timer's
     * due time, so some find it armed, some queued, some delivered. */
    for (uint32_t k = 0; k < CR_N; k++) {
        uint32_t i = order[k];
        uint64_t jitter = rng_next(&seed) % AX_MS(2);

        sleep_until_ns(cr.due[i] + jitter - AX_MS(1));
        num_tell(ref, 0, i, k % 8 == 0 ? CR_LINGER : 0);
    }
    AXT_WAIT_COUNT(cr.cancels_done, CR_N);
    /* Every timer is settled now; the queued ones that were cancelled are
     * released when the actor pops them. */
    AXT_WAIT_COUNT(tick_releases, CR_N);
    axt_flush(ref);

    for (uint32_t i = 0; i < CR_N; i++) {
        uint32_t d = atomic_load(&cr.delivered[i]);

        cr_assert_eq(atomic_load(&tick_rel[i]), 1, "timer %u: message released %u times", i,
                     atomic_load(&tick_rel[i]));
        if (cr.cancel_st[i] == AX_OK) {
            cr_assert_eq(d, 0, "timer %u: cancelled (AX_OK) yet delivered", i);
        } else {
            cr_assert_eq(cr.cancel_st[i], AX_ENOTFOUND, "timer %u: cancel gave %s", i,
                         ax_status_name(cr.cancel_st[i]));
            cr_assert_eq(d, 1, "timer %u: AX_ENOTFOUND but delivered %u times", i, d);
            cr_assert_lt(cr.deliv_order[i], cr.cancel_order[i],
                         "timer %u: AX_ENOTFOUND before its message was handled", i);
        }
    }
    cr_log_info("cancel found the timer armed %llu, queued %llu, already handled %llu times",
                (unsigned long long)cr.armed_path, (unsigned long long)cr.queued_path,
                (unsigned long long)cr.too_late);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

/* ---- periodic: no drift -------------------------------------------------------- */

/*
 * No drift is a property of the due times the wheel computes, not of how
 * late a loaded machine delivers: each delivery's handler reads its
 * timer's next due time from the wheel (ax__timer_probe) and the test
 * asserts that every due time lies on the grid origin + j * period, that
 * the grid only moves forward, that no delivery comes before the due time
 * that released it, and that the wheel never files a timer in a slot it
 * has already passed (which would stall it for a whole turn). How late
 * deliveries are is measured by bench/timers.c, not asserted here.
 */
#define PD_MAX 1000

typedef struct pd {
    uint64_t delay, period;
    uint32_t want;      /* deliveries to record */
    uint32_t idx;       /* the tick's index */
    uint64_t start;     /* just before ax_schedule_periodic */
    uint64_t origin;    /* a due time read right after scheduling: on the grid */
    bool origin_ok;
    uint64_t at[PD_MAX];
    ax__timer_probe_t seen[PD_MAX]; /* the wheel's view, in each handler */
    bool live[PD_MAX];
    uint32_t n;
    ax_timer_t id;
    const ax_msg_t *first; /* the message of the first delivery */
    uint32_t same_msg;     /* deliveries that carried that same message */
    int cancel_st;
    _Atomic uint64_t done;     /* 1 once want deliveries were seen */
    _Atomic uint64_t after;    /* deliveries after the cancel */
} pd_t;

static bool pd_probe(ax_actor_t *self, ax_timer_t id, ax__timer_probe_t *out)
{
    return ax__timer_probe(ax__cell(self)->sys->timers, id, out);
}

static void pd_schedule(ax_actor_t *self, void *ctx)
{
    pd_t *p = ctx;
    ax_msg_t *m = tick_new(p->idx);
    ax__timer_probe_t pr;

    p->start = ax__now_ns();
    AXT_CHECK(ax_schedule_periodic(self, p->delay, p->period, &m, &p->id) == AX_OK);
    /* A due time on the grid: the first one, or a later one if the timer
     * thread fired (and re-armed) the timer already; its message cannot
     * have been delivered while this handler runs. */
    p->origin_ok = pd_probe(self, p->id, &pr);
    p->origin = pr.due_ns;
}

static void pd_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    pd_t *p = ctx;

    if (atomic_load(&p->done)) {
        atomic_fetch_add(&p->after, 1);
        return;
    }
    if (p->n == 0)
        p->first = *msg;
    if (*msg == p->first)
        p->same_msg++;
    p->at[p->n] = ax__now_ns();
    p->live[p->n] = pd_probe(self, p->id, &p->seen[p->n]);
    p->n++;
    if (p->n == p->want) {
        /* Cancelled from the handler of its own message: AX_OK, and the
         * message is released when this handler returns. */
        p->cancel_st = ax_cancel_timer(self, p->id);
        atomic_store(&p->done, 1);
    }
}

static uint64_t abs_diff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

static void pd_check(pd_t *p)
{
    uint64_t first = p->start + p->delay; /* no due time comes before this */

    cr_assert_eq(p->n, p->want);
    cr_assert_eq(p->cancel_st, AX_OK);
    cr_assert_eq(p->same_msg, p->want, "a periodic timer sends the same message each time");
    cr_assert(p->origin_ok, "the timer was not live right after scheduling");
    cr_assert_geq(p->origin, first, "a due time before start + delay");
    for (uint32_t k = 0; k < p->n; k++) {
        const ax__timer_probe_t *s = &p->seen[k];

        cr_assert(p->live[k], "delivery %u: a periodic timer ended while delivering", k);
        /* Never early: the k-th delivery is for the k-th due time or a
         * later one, and due times are first + j * period at the
         * earliest. Delivery k is released by a due time at or after the
         * next due time that delivery k - 1 saw (due times only move
         * forward). */
        cr_assert_geq(p->at[k], first + k * p->period, "delivery %u came early", k);
        if (k > 0)
            cr_assert_geq(p->at[k], p->seen[k - 1].due_ns,
                          "delivery %u came %lld ns before its due time", k,
                          (long long)(p->seen[k - 1].due_ns - p->at[k]));
        /* No drift: every due time the wheel computes is on one grid,
         * spaced by the period, and it moves forward by whole periods. */
        cr_assert_eq(s->period_ns, p->period);
        cr_assert_eq(abs_diff(s->due_ns, p->origin) % p->period, 0,
                     "delivery %u: next due time %llu ns off the grid (drift)", k,
                     (unsigned long long)(abs_diff(s->due_ns, p->origin) % p->period));
        if (k > 0)
            cr_assert_geq(s->due_ns, p->seen[k - 1].due_ns + p->period,
                          "delivery %u: the next due time did not move on", k);
        /* The wheel fires it at the first tick at or after its due time,
         * and the tick is one still to come, never one gone by. */
        if (s->linked) {
            cr_assert_geq(s->due_tick * s->tick_ns, s->due_ns, "delivery %u: filed early", k);
            cr_assert_gt(s->due_tick, s->last_tick,
                         "delivery %u: filed in a slot already passed (a turn late)", k);
        }
    }
}

Test(timers, periodic_timers_do_not_drift_over_1000_periods)
{
    ax_config_t cfg;
    ax_system_t *sys;
    static pd_t a = {.delay = AX_MS(1), .period = AX_MS(1), .want = 1000, .idx = 0};
    /* A period that is not a multiple of the tick: rounding each due time
     * up to a tick must not accumulate either. */
    static pd_t b = {.delay = AX_US(730), .period = AX_US(1250), .want = 1000, .idx = 1};
    scene_t sa, sb;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cfg.timer_tick_us = 100;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    ax_ref_t ra = scene_spawn(sys, &sa, pd_on_tick, &a), rb = scene_spawn(sys, &sb, pd_on_tick, &b);

    scene_run(ra, pd_schedule, &a);
    scene_run(rb, pd_schedule, &b);
    AXT_WAIT_COUNT(a.done, 1);
    AXT_WAIT_COUNT(b.done, 1);
    /* The cancelled timers' message goes back once its last handler
     * returns; nothing is delivered after the cancel. */
    AXT_WAIT_COUNT(tick_releases, 2);
    axt_sleep_us(20000); /* room for a wrong delivery to show up */
    axt_flush(ra);
    axt_flush(rb);
    cr_assert_eq(atomic_load(&a.after) + atomic_load(&b.after), 0, "delivered after the cancel");
    pd_check(&a);
    pd_check(&b);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/*
 * A period shorter than the tick: several due times fall in one tick, and
 * the previous message is still queued for all but the first, so the
 * timer delivers about once a tick. It must keep doing so: a due time
 * that lands back in the tick being processed must not wait for the
 * wheel's next turn (4096 ticks). pd_check asserts exactly that (the
 * timer is never filed in a slot gone by); the wait is only a bound on a
 * hang.
 */
Test(timers, periodic_timer_shorter_than_the_tick_keeps_firing)
{
    ax_system_t *sys = axt_system(2);
    static pd_t p = {.delay = AX_US(100), .period = AX_US(250), .want = 40, .idx = 0};
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, pd_on_tick, &p);

    scene_run(ref, pd_schedule, &p);
    AXT_WAIT_COUNT(p.done, 1);
    axt_flush(ref);
    pd_check(&p);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- a cancelled timer's message is discarded even if already queued ---------- */

/*
 * To know that the victim timer has fired and its message sits in the
 * busy actor's mailbox, a witness actor schedules a later timer: the
 * wheel fires in due order and sends each tick's messages in order, so
 * when the witness gets its own message, the victim's was sent already.
 *
 * The test thread, not the busy actor, tells the witness to arm: a
 * message sent from a handler puts the receiver in that worker's "run
 * next" slot, where it waits for the handler to return (other workers do
 * not take it), and this handler waits for the witness.
 */
typedef struct witness_ctx {
    sem_t fired;
    sem_t scheduled; /* the busy actor has scheduled its victim */
} witness_ctx_t;

static void witness_arm(ax_actor_t *self, void *ctx)
{
    ax_msg_t *m = tick_new(MAX_TICKS - 1);
    ax_timer_t id;

    (void)ctx;
    AXT_CHECK(ax_schedule_once(self, AX_MS(3), &m, &id) == AX_OK);
}

static void witness_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)self;
    (void)msg;
    sem_post(&((witness_ctx_t *)ctx)->fired);
}

typedef struct queued_ctx {
    witness_ctx_t *w;
    bool periodic;
    uint32_t idx;
    int cancel_st;
    uint32_t rel_at_cancel; /* releases of the victim right after the cancel */
    bool witnessed;
    _Atomic uint64_t delivered;
} queued_ctx_t;

static void queued_scene(ax_actor_t *self, void *ctx)
{
    queued_ctx_t *q = ctx;
    ax_msg_t *m = tick_new(q->idx);
    ax_timer_t id;

    if (q->periodic)
        AXT_CHECK(ax_schedule_periodic(self, AX_MS(1), AX_MS(1), &m, &id) == AX_OK);
    else
        AXT_CHECK(ax_schedule_once(self, AX_MS(1), &m, &id) == AX_OK);
    sem_post(&q->w->scheduled);
    /* Stay in this handler until the victim's message is queued behind. */
    q->witnessed = axt_sem_wait(&q->w->fired, WAIT_S);
    q->cancel_st = ax_cancel_timer(self, id);
    q->rel_at_cancel = atomic_load(&tick_rel[q->idx]);
}

static void queued_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)self;
    (void)msg;
    atomic_fetch_add(&((queued_ctx_t *)ctx)->delivered, 1);
}

Test(timers, a_cancelled_timers_message_is_discarded_even_if_already_queued)
{
    ax_system_t *sys = axt_system(2);
    witness_ctx_t w;
    scene_t sw;
    ax_ref_t witness;

    sem_init(&w.fired, 0, 0);
    sem_init(&w.scheduled, 0, 0);
    witness = scene_spawn(sys, &sw, witness_on_tick, &w);
    for (int periodic = 0; periodic <= 1; periodic++) {
        static queued_ctx_t qs[2];
        queued_ctx_t *q = &qs[periodic];
        scene_t s;
        ax_ref_t ref;

        *q = (queued_ctx_t){.w = &w, .periodic = periodic, .idx = 10u + periodic};
        ref = scene_spawn(sys, &s, queued_on_tick, q);
        scene_run(ref, queued_scene, q);
        AXT_WAIT_SEM(&w.scheduled);
        scene_run(witness, witness_arm, NULL);
        /* The victim goes back when the actor pops it and finds it cancelled. */
        WAIT_UNTIL(atomic_load(&tick_rel[q->idx]) >= 1, "the cancelled victim was never released");
        axt_flush(ref);
        axt_sleep_us(10000); /* a periodic one would have fired again by now */
        axt_flush(ref);
        cr_assert(q->witnessed);
        cr_assert_eq(q->cancel_st, AX_OK, "%s: cancel gave %s", periodic ? "periodic" : "one-shot",
                     ax_status_name(q->cancel_st));
        cr_assert_eq(q->rel_at_cancel, 0,
                     "the victim's message should have been queued, not armed");
        cr_assert_eq(atomic_load(&q->delivered), 0, "%s: a cancelled timer's queued message was "
                     "delivered", periodic ? "periodic" : "one-shot");
        cr_assert_eq(atomic_load(&tick_rel[q->idx]), 1);
        cr_assert_eq(ax_stop(ref), AX_OK);
        AXT_WAIT_SEM(&s.ended);
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- a stopped actor's timers are dropped ------------------------------------- */

typedef struct stop_ctx {
    witness_ctx_t *w;
    bool kill_self;          /* kill from the handler, with one message queued */
    _Atomic uint64_t delivered;
    _Atomic uint64_t armed;  /* timers scheduled */
} stop_ctx_t;

static void stop_scene(ax_actor_t *self, void *ctx)
{
    stop_ctx_t *sc = ctx;
    ax_timer_t id;

    /* Far in the future: still armed when the actor ends. */
    for (uint32_t i = 0; i < 16; i++) {
        ax_msg_t *m = tick_new(100 + i);

        if (i % 2 == 0)
            AXT_CHECK(ax_schedule_once(self, AX_MS(3600000), &m, &id) == AX_OK);
        else
            AXT_CHECK(ax_schedule_periodic(self, AX_MS(1000) * (i + 1), AX_MS(1000), &m, &id) ==
                      AX_OK);
        atomic_fetch_add(&sc->armed, 1);
    }
    if (sc->kill_self) {
        /* And one that has fired and waits in the mailbox when the kill
         * takes effect (before the next message). */
        ax_msg_t *m = tick_new(200);

        AXT_CHECK(ax_schedule_once(self, AX_MS(1), &m, &id) == AX_OK);
        atomic_fetch_add(&sc->armed, 1);
        sem_post(&sc->w->scheduled);
        AXT_CHECK(axt_sem_wait(&sc->w->fired, WAIT_S));
        AXT_CHECK(ax_kill(ax_self(self)) == AX_OK);
    }
}

static void stop_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)self;
    (void)msg;
    atomic_fetch_add(&((stop_ctx_t *)ctx)->delivered, 1);
}

static void tick_letter(dl_log_t *log, const ax_dead_letter_t *dl)
{
    if (dl->msg != NULL && dl->msg->type == &tick_type)
        atomic_fetch_add((_Atomic uint64_t *)log->ctx, 1);
}

Test(timers, the_timers_of_a_stopped_or_killed_actor_are_dropped_and_released)
{
    ax_system_t *sys = axt_system(2);
    static _Atomic uint64_t tick_letters;
    dl_log_t log = {.on_letter = tick_letter, .ctx = (void *)&tick_letters};
    witness_ctx_t w;
    scene_t sw;
    ax_ref_t witness;

    axt_collect_dead_letters(sys, &log);
    sem_init(&w.fired, 0, 0);
    sem_init(&w.scheduled, 0, 0);
    witness = scene_spawn(sys, &sw, witness_on_tick, &w);
    for (int kill = 0; kill <= 1; kill++) {
        static stop_ctx_t scs[2];
        stop_ctx_t *sc = &scs[kill];
        uint64_t base_allocs = atomic_load(&tick_allocs), base_rel = atomic_load(&tick_releases);
        scene_t s;
        ax_ref_t ref;

        *sc = (stop_ctx_t){.w = &w, .kill_self = kill};
        ref = scene_spawn(sys, &s, stop_on_tick, sc);
        scene_run(ref, stop_scene, sc);
        if (kill) {
            AXT_WAIT_SEM(&w.scheduled);
            scene_run(witness, witness_arm, NULL);
        } else {
            axt_flush(ref);
            cr_assert_eq(ax_stop(ref), AX_OK);
        }
        AXT_WAIT_SEM(&s.ended);
        /* The witness's own tick is the only other one: let it go back
         * first. */
        if (kill)
            WAIT_UNTIL(atomic_load(&tick_rel[MAX_TICKS - 1]) >= 1,
                       "the witness's tick was never released");
        /* By destroy every timer has ended: the armed ones' messages are
         * released, and so is one queued in the mailbox. A message the
         * timer thread had just taken to fire when the actor ended is
         * released by that thread once its tell finds the actor gone,
         * which can come a little after destroy (TSan's timing showed it,
         * 16 of 17): wait for that one, bounded. */
        uint64_t allocs = atomic_load(&tick_allocs) - base_allocs - (kill ? 1 : 0);

        cr_assert_eq(allocs, atomic_load(&sc->armed));
        WAIT_UNTIL(atomic_load(&tick_releases) - base_rel - (kill ? 1 : 0) == allocs,
                   "%s: %llu of %llu timer messages released at the end", kill ? "killed" : "stopped",
                   (unsigned long long)(atomic_load(&tick_releases) - base_rel - (kill ? 1 : 0)),
                   (unsigned long long)allocs);
        cr_assert_eq(atomic_load(&sc->delivered), 0);
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_letters), 0, "a dropped timer's message is not a dead letter");
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- a periodic handler that keeps the message ends the timer ---------------- */

typedef struct keep_ctx {
    ax_timer_t id;
    ax_msg_t *kept;
    int cancel_st;
    _Atomic uint64_t delivered;
} keep_ctx_t;

static void keep_schedule(ax_actor_t *self, void *ctx)
{
    keep_ctx_t *k = ctx;
    ax_msg_t *m = tick_new(0);

    AXT_CHECK(ax_schedule_periodic(self, AX_MS(1), AX_MS(1), &m, &k->id) == AX_OK);
}

static void keep_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    keep_ctx_t *k = ctx;

    (void)self;
    if (k->kept == NULL) {
        k->kept = *msg; /* ours now: the timer has nothing left to send */
        *msg = NULL;
    }
    atomic_fetch_add(&k->delivered, 1);
}

static void keep_finish(ax_actor_t *self, void *ctx)
{
    keep_ctx_t *k = ctx;

    k->cancel_st = ax_cancel_timer(self, k->id);
    ax_msg_release(&k->kept);
}

Test(timers, a_periodic_handler_that_keeps_the_message_ends_the_timer)
{
    ax_system_t *sys = axt_system(2);
    static keep_ctx_t k;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, keep_on_tick, &k);

    scene_run(ref, keep_schedule, &k);
    AXT_WAIT_COUNT(k.delivered, 1);
    axt_sleep_us(30000); /* 30 periods */
    axt_flush(ref);
    cr_assert_eq(atomic_load(&k.delivered), 1, "the timer went on after its message was kept");
    cr_assert_eq(atomic_load(&tick_releases), 0, "the kept message belongs to the handler");
    RUN_ON(ref, keep_finish, &k);
    cr_assert_eq(k.cancel_st, AX_ENOTFOUND, "the timer has ended: cancel gave %s",
                 ax_status_name(k.cancel_st));
    cr_assert_eq(atomic_load(&tick_releases), 1);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- statuses ------------------------------------------------------------------------ */

typedef struct status_ctx {
    ax_timer_t once, twice, fired;
    int st_fired, st_twice_1, st_twice_2, st_zero, st_period0, st_null;
    bool period0_kept;
    _Atomic uint64_t delivered;
} status_ctx_t;

static void status_schedule(ax_actor_t *self, void *ctx)
{
    status_ctx_t *c = ctx;
    ax_msg_t *m = tick_new(1), *none = NULL;

    AXT_CHECK(ax_schedule_once(self, 0, &m, &c->fired) == AX_OK);
    m = tick_new(2);
    AXT_CHECK(ax_schedule_once(self, AX_MS(3600000), &m, &c->twice) == AX_OK);
    AXT_CHECK(c->fired != 0 && c->twice != 0 && c->fired != c->twice);
    c->st_twice_1 = ax_cancel_timer(self, c->twice);
    c->st_twice_2 = ax_cancel_timer(self, c->twice);
    c->st_zero = ax_cancel_timer(self, 0);
    m = tick_new(3);
    c->st_period0 = ax_schedule_periodic(self, AX_MS(1), 0, &m, &c->once);
    c->period0_kept = m != NULL; /* on error the caller keeps it */
    ax_msg_release(&m);
    c->st_null = ax_schedule_once(self, AX_MS(1), &none, &c->once);
}

static void status_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)self;
    (void)msg;
    atomic_fetch_add(&((status_ctx_t *)ctx)->delivered, 1);
}

static void status_cancel_fired(ax_actor_t *self, void *ctx)
{
    status_ctx_t *c = ctx;

    c->st_fired = ax_cancel_timer(self, c->fired);
}

Test(timers, cancel_and_schedule_statuses)
{
    ax_system_t *sys = axt_system(2);
    static status_ctx_t c;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, status_on_tick, &c);

    scene_run(ref, status_schedule, &c);
    AXT_WAIT_COUNT(c.delivered, 1);
    RUN_ON(ref, status_cancel_fired, &c);
    cr_assert_eq(c.st_fired, AX_ENOTFOUND, "cancel after the one-shot was handled");
    cr_assert_eq(c.st_twice_1, AX_OK);
    cr_assert_eq(c.st_twice_2, AX_ENOTFOUND, "a second cancel");
    cr_assert_eq(c.st_zero, AX_EINVAL, "timer 0 is never a timer");
    cr_assert_eq(c.st_period0, AX_EINVAL, "a period of 0");
    cr_assert(c.period0_kept, "the caller keeps the message when scheduling fails");
    cr_assert_eq(c.st_null, AX_EINVAL);
    cr_assert_eq(atomic_load(&tick_rel[2]), 1, "a cancelled armed timer's message is released");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&c.delivered), 1);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* A timer whose id the caller did not ask for fires all the same, once;
 * a periodic one goes on until its actor ends, which releases it. */
typedef struct noid_ctx {
    int st_once, st_periodic;
    _Atomic uint64_t once, periodic; /* deliveries of each */
} noid_ctx_t;

static void noid_schedule(ax_actor_t *self, void *ctx)
{
    noid_ctx_t *c = ctx;
    ax_msg_t *once = tick_new(1), *periodic = tick_new(2);

    c->st_once = ax_schedule_once(self, AX_MS(1), &once, NULL);
    c->st_periodic = ax_schedule_periodic(self, AX_MS(1), AX_MS(1), &periodic, NULL);
    AXT_CHECK(once == NULL && periodic == NULL);
}

static void noid_on_tick(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    noid_ctx_t *c = ctx;

    (void)self;
    atomic_fetch_add(((tick_t *)*msg)->idx == 1 ? &c->once : &c->periodic, 1);
}

Test(timers, a_timer_without_an_id_fires)
{
    ax_system_t *sys = axt_system(2);
    static noid_ctx_t c;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, noid_on_tick, &c);

    RUN_ON(ref, noid_schedule, &c); /* returns once they are scheduled */
    cr_assert_eq(c.st_once, AX_OK, "schedule_once without an id: %s", ax_status_name(c.st_once));
    cr_assert_eq(c.st_periodic, AX_OK, "schedule_periodic without an id: %s", ax_status_name(c.st_periodic));
    AXT_WAIT_COUNT(c.periodic, 2);
    AXT_WAIT_COUNT(c.once, 1);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&c.once), 1, "the one-shot fired %llu times", U(atomic_load(&c.once)));
    cr_assert_eq(atomic_load(&tick_rel[1]), 1);
    cr_assert_eq(atomic_load(&tick_rel[2]), 1, "the periodic timer's message was released at the end");
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}

/* ---- scheduling after shutdown ------------------------------------------------------ */

typedef struct late_ctx {
    int st_now, st_far;
    bool kept_now, kept_far;
    _Atomic uint64_t ran;
    _Atomic uint64_t delivered;
} late_ctx_t;

static void late_schedule(ax_actor_t *self, void *ctx)
{
    late_ctx_t *c = ctx;
    ax_msg_t *now = tick_new(1), *far = tick_new(2);
    ax_timer_t id;

    c->st_now = ax_schedule_once(self, 0, &now, &id);
    c->kept_now = now != NULL;
    c->st_far = ax_schedule_periodic(self, AX_MS(3600000), AX_MS(1000), &far, &id);
    c->kept_far = far != NULL;
    /* On failure the message is still ours. */
    ax_msg_release(&now);
    ax_msg_release(&far);
    atomic_store(&c->ran, 1);
}

static void late_on_msg(ax_actor_t *self, ax_msg_t **msg, void *ctx)
{
    (void)self;
    if ((*msg)->type == &tick_type)
        atomic_fetch_add(&((late_ctx_t *)ctx)->delivered, 1);
}

/*
 * The actor schedules while it drains its mailbox after
 * ax_system_shutdown. The header says AX_ESHUTDOWN; a runtime that takes
 * the timer instead must never deliver it (the actor stopped accepting
 * messages) and must release it when the actor ends. Either way nothing
 * leaks and nothing is delivered.
 */
static void block_fn(ax_actor_t *self, void *ctx)
{
    (void)self;
    AXT_CHECK(axt_sem_wait(ctx, WAIT_S));
}

Test(timers, scheduling_after_shutdown_is_refused_or_dropped)
{
    ax_system_t *sys = axt_system(2);
    static late_ctx_t c;
    sem_t gate;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, late_on_msg, &c);

    /* The scene is busy while the shutdown comes, with the run message
     * queued behind: it runs during the graceful drain. */
    sem_init(&gate, 0, 0);
    scene_run(ref, block_fn, &gate);
    scene_run(ref, late_schedule, &c);
    ax_system_shutdown(sys);
    sem_post(&gate);
    cr_assert_eq(axt_await(sys), AX_OK);
    cr_assert_eq(atomic_load(&c.ran), 1);
    cr_log_info("after shutdown: schedule_once gave %s, schedule_periodic %s",
                ax_status_name(c.st_now), ax_status_name(c.st_far));
    cr_assert(c.st_now == AX_OK || c.st_now == AX_ESHUTDOWN, "%s", ax_status_name(c.st_now));
    cr_assert(c.st_far == AX_OK || c.st_far == AX_ESHUTDOWN, "%s", ax_status_name(c.st_far));
    cr_assert_eq(c.kept_now, c.st_now != AX_OK, "the message is taken exactly on AX_OK");
    cr_assert_eq(c.kept_far, c.st_far != AX_OK);
    /* Destroy first: the timer thread may still be handing a fired
     * message to dead letters after the last actor ended. */
    axt_destroy(&sys);
    cr_assert_eq(atomic_load(&c.delivered), 0, "a timer delivered after its actor was sealed");
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs),
                 "taken or not, each message is released");
    AXT_ASSERT_NO_BAD();
}

/* ---- an idle system with armed timers sleeps ------------------------------------------ */

static void idle_schedule(ax_actor_t *self, void *ctx)
{
    ax_msg_t *once = tick_new(1), *periodic = tick_new(2);
    ax_timer_t *ids = ctx;

    AXT_CHECK(ax_schedule_once(self, AX_MS(10000), &once, &ids[0]) == AX_OK);
    AXT_CHECK(ax_schedule_periodic(self, AX_MS(10000), AX_MS(10000), &periodic, &ids[1]) == AX_OK);
}

static void idle_cancel(ax_actor_t *self, void *ctx)
{
    ax_timer_t *ids = ctx;

    AXT_CHECK(ax_cancel_timer(self, ids[0]) == AX_OK);
    AXT_CHECK(ax_cancel_timer(self, ids[1]) == AX_OK);
}

static double rusage_cpu_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec * 1e-6 + (double)r->ru_stime.tv_sec +
           r->ru_stime.tv_usec * 1e-6;
}

/*
 * The bound: an idle system whose only work is timers due in 10 s
 * uses under 1% of one core. The timer thread sleeps until the next due
 * time instead of waking every tick (1 ms), so the whole process also
 * blocks only a handful of times in the window (a thread woken every tick
 * would block about 1000 times a second). Both are counted by getrusage
 * over the whole process: workers, timer thread, and this thread, which
 * only sleeps. A loaded machine delays threads but adds neither CPU time
 * nor voluntary context switches to this process.
 */
Test(timers, an_idle_system_with_armed_timers_uses_under_one_percent_of_a_core)
{
    ax_system_t *sys = axt_system(2);
    static ax_timer_t ids[2];
    struct rusage r0, r1;
    double t0, wall, cpu;
    long switches;
    scene_t s;
    ax_ref_t ref = scene_spawn(sys, &s, NULL, NULL);

    RUN_ON(ref, idle_schedule, ids);
    axt_sleep_us(100000); /* let the workers finish spinning and park */
    t0 = axt_now();
    cr_assert_eq(getrusage(RUSAGE_SELF, &r0), 0);
    axt_sleep_us(1000000);
    cr_assert_eq(getrusage(RUSAGE_SELF, &r1), 0);
    wall = axt_now() - t0;
    cpu = rusage_cpu_s(&r1) - rusage_cpu_s(&r0);
    switches = r1.ru_nvcsw - r0.ru_nvcsw;
    cr_log_info("idle with 2 armed timers: %.3f%% of a core, %ld voluntary context switches in %.2f s",
                100.0 * cpu / wall, switches, wall);
    cr_assert_lt(cpu, 0.01 * wall, "an idle system with armed timers used %.2f%% of a core",
                 100.0 * cpu / wall);
    cr_assert_lt(switches, 50, "%ld voluntary context switches in %.2f s: a thread wakes on "
                 "every tick", switches, wall);
    RUN_ON(ref, idle_cancel, ids);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&tick_releases), atomic_load(&tick_allocs));
}
