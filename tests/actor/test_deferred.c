/*
 * Tells from a handler to a busy mailbox (actor/NOTES.md, "Tells to a busy
 * mailbox, deferred"): once a push from an actor's code finds a target's
 * mailbox holding messages, the next tells to that target may be handed
 * over together, at the latest when the handler returns. What a user
 * relies on must not change:
 *   - every message arrives, once, in the order it was sent;
 *   - a send to another actor, a stop, a name registered, or the handler's
 *     return hands the earlier tells over first, so that no later effect
 *     overtakes them;
 *   - a target that ends meanwhile sends them to dead letters (AX_ECLOSED);
 *   - a bounded mailbox still answers AX_EFULL at the tell.
 *
 * Each test makes the target's mailbox busy for every tell that follows:
 * the target waits in the handler of a blocking message, or it is created
 * and not yet started.
 */
#include "tests/actor/helpers.h"

/* More than one deferred chain's worth (32) and not a multiple of it. */
#define BURST 327u

/* An actor that only runs jobs: the code of each job is a handler's. */
static ax_status_t jobs_receive(ax_actor_t *self, ax_msg_t **msg)
{
    AXT_CHECK(axt_job_run(self, *msg));
    return AX_OK;
}

static const ax_actor_vtable_t jobs_vtable = {
    .name = "test.jobs",
    .size = sizeof(ax_actor_t),
    .receive_local = jobs_receive,
};

static ax_ref_t spawn_jobs(ax_system_t *sys)
{
    ax_ref_t r;

    cr_assert_eq(ax_spawn(sys, &jobs_vtable, NULL, &r), AX_OK);
    return r;
}

/* A probe created and not started, with message 0 queued: its mailbox is
 * busy for every tell until ax_start. */
static ax_ref_t probe_create_busy(ax_system_t *sys, probe_t *p)
{
    ax_ref_t r;

    probe_init(p);
    cr_assert_eq(ax_create(sys, &probe_vtable, p, &r), AX_OK);
    num_tell(r, 0, 0, 0);
    return r;
}

/* num_new for a handler, which must not assert: NULL when out of memory
 * (counted as a failure). */
static ax_msg_t *num_new_in_handler(uint64_t seq)
{
    ax_msg_t *m = NULL;

    AXT_CHECK(ax_msg_alloc(&num_type, &m) == AX_OK);
    if (m != NULL) {
        atomic_fetch_add(&num_allocs, 1);
        ((num_msg_t *)m)->seq = seq;
    }
    return m;
}

/* Tell dst the numbered messages first..last (from 0), from a handler. */
static void tell_run(ax_ref_t dst, uint64_t first, uint64_t last, ax_ref_t from)
{
    for (uint64_t seq = first; seq <= last; seq++) {
        ax_msg_t *m = num_new_in_handler(seq);

        if (m == NULL)
            return;
        AXT_CHECK(ax_tell(dst, &m, from) == AX_OK);
        AXT_CHECK(m == NULL);
    }
}

typedef struct burst_job {
    ax_ref_t dst;        /* the probe, busy */
    ax_ref_t relay;      /* a jobs actor that runs relay_park, then relay */
    probe_t *p;
    sem_t relayed;       /* posted by the relay after its tell */
    sem_t relay_parked, relay_gate;
    ax_system_t *sys;
} burst_job_t;

static void burst(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, 1, BURST, ax_self(self));
}

Test(deferred, a_burst_to_a_busy_actor_arrives_whole_and_in_order)
{
    ax_system_t *sys = axt_system(2);
    burst_job_t j = {0};
    probe_t p;
    ax_ref_t s;

    j.dst = probe_spawn_parked(sys, &probe_vtable, &p);
    s = spawn_jobs(sys);
    RUN_ON(s, burst, &j);
    /* The probe still waits at its gate: nothing is handled yet, and what
     * the job held reaches the mailbox when its handler returns. */
    cr_assert_eq(atomic_load(&p.received), 0);
    sem_post(&p.gate);
    AXT_WAIT_COUNT(p.received, BURST + 1);
    cr_assert_eq(atomic_load(&p.out_of_order), 0, "FIFO from the handler");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* On the relay: first wait at the gate, so that the relay's mailbox is
 * busy and the relay keeps a worker of its own; then one more message for
 * the probe, after everything the burst sent before it told the relay. */
static void relay_park(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    (void)self;
    sem_post(&j->relay_parked);
    AXT_CHECK(axt_sem_wait(&j->relay_gate, WAIT_S));
}

static void relay(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, BURST / 2 + 1, BURST / 2 + 1, ax_self(self));
    sem_post(&j->relayed);
}

/* Half the burst, then a job for the relay, then open the relay's gate;
 * and the handler does not return before the relay has told the probe.
 * Had the burst waited for the return, the relay's message would overtake
 * it. */
static void burst_then_relay(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, 1, BURST / 2, ax_self(self));
    AXT_CHECK(axt_job_send(j->relay, relay, j, NULL));
    sem_post(&j->relay_gate);
    AXT_CHECK(axt_sem_wait(&j->relayed, WAIT_S));
}

Test(deferred, a_send_to_another_actor_hands_the_earlier_tells_over_first)
{
    /* Handlers must not block (actor.h), and two workers wake for two
     * CPUs: so only the relay and the burst wait in a handler. The probe
     * is created and not started: its mailbox holds messages, so it is
     * busy for every tell, until ax_start. */
    ax_system_t *sys = axt_system(2);
    burst_job_t j = {0};
    probe_t p;
    ax_ref_t s;

    sem_init(&j.relayed, 0, 0);
    sem_init(&j.relay_parked, 0, 0);
    sem_init(&j.relay_gate, 0, 0);
    j.dst = probe_create_busy(sys, &p);
    j.relay = spawn_jobs(sys);
    cr_assert(axt_job_send(j.relay, relay_park, &j, NULL));
    AXT_WAIT_SEM(&j.relay_parked);
    s = spawn_jobs(sys);
    RUN_ON(s, burst_then_relay, &j);
    cr_assert_eq(ax_start(j.dst), AX_OK);
    AXT_WAIT_COUNT(p.received, BURST / 2 + 2);
    cr_assert_eq(atomic_load(&p.out_of_order), 0,
                 "the relay's message must come after the burst's first half");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    sem_destroy(&j.relayed);
    sem_destroy(&j.relay_parked);
    sem_destroy(&j.relay_gate);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* A thread outside the system: once the name is there, one more message
 * for the probe. */
static void *lookup_then_tell(void *arg)
{
    burst_job_t *j = arg;
    ax_ref_t r = AX_REF_NULL;
    double end = axt_now() + WAIT_S;

    while (ax_lookup(j->sys, "test.deferred.probe", &r) != AX_OK && axt_now() < end)
        axt_sleep_us(50);
    if (!ax_ref_is_null(r))
        tell_run(r, BURST / 2 + 1, BURST / 2 + 1, AX_REF_NULL);
    sem_post(&j->relayed);
    return NULL;
}

/* Half the burst, then the probe's name, and wait until the thread that
 * looks the name up has told the probe. */
static void burst_then_register(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, 1, BURST / 2, ax_self(self));
    AXT_CHECK(ax_register(j->sys, j->dst, "test.deferred.probe") == AX_OK);
    AXT_CHECK(axt_sem_wait(&j->relayed, WAIT_S));
}

Test(deferred, a_name_registered_after_a_burst_is_seen_after_the_burst)
{
    ax_system_t *sys = axt_system(2);
    burst_job_t j = {0};
    pthread_t t;
    probe_t p;
    ax_ref_t s;

    sem_init(&j.relayed, 0, 0);
    j.sys = sys;
    j.dst = probe_create_busy(sys, &p);
    cr_assert_eq(pthread_create(&t, NULL, lookup_then_tell, &j), 0);
    s = spawn_jobs(sys);
    RUN_ON(s, burst_then_register, &j);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(ax_start(j.dst), AX_OK);
    AXT_WAIT_COUNT(p.received, BURST / 2 + 2);
    cr_assert_eq(atomic_load(&p.out_of_order), 0,
                 "the message sent after the lookup must come after the burst's first half");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    sem_destroy(&j.relayed);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* The burst, then ax_stop of the probe; then open its gate and wait, in
 * the handler, until the probe has ended. The stop must come after the
 * burst in the probe's mailbox, so the probe handles all of it first. */
static void burst_then_stop(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, 1, BURST, ax_self(self));
    AXT_CHECK(ax_stop(j->dst) == AX_OK);
    sem_post(&j->p->gate);
    AXT_CHECK(axt_sem_wait(&j->p->ended, WAIT_S));
}

Test(deferred, a_stop_after_a_burst_comes_after_the_burst)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    burst_job_t j = {0};
    probe_t p;
    ax_ref_t s;

    axt_collect_dead_letters(sys, &log);
    j.dst = probe_spawn_parked(sys, &probe_vtable, &p);
    j.p = &p;
    s = spawn_jobs(sys);
    RUN_ON(s, burst_then_stop, &j);
    cr_assert_eq(atomic_load(&p.received), BURST + 1, "every message before the stop is handled");
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    cr_assert_eq(atomic_load(&p.stops), 1);
    cr_assert_eq(atomic_load(&log.nums), 0, "no message of the burst went to dead letters");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* The burst, then let the probe stop itself (stop_self_at) and wait, in
 * the handler, until it has ended: the tells still held by this handler
 * find it ended when they are handed over. */
static void burst_to_an_ending_actor(ax_actor_t *self, void *arg)
{
    burst_job_t *j = arg;

    tell_run(j->dst, 1, BURST, ax_self(self));
    sem_post(&j->p->gate);
    AXT_CHECK(axt_sem_wait(&j->p->ended, WAIT_S));
}

Test(deferred, tells_held_for_an_actor_that_ends_go_to_dead_letters_as_closed)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    burst_job_t j = {0};
    uint64_t received, dead;
    probe_t p;
    ax_ref_t s;

    axt_collect_dead_letters(sys, &log);
    j.dst = probe_spawn_parked(sys, &probe_vtable, &p);
    p.stop_self_at = 1; /* stops in the handler of the burst's first */
    j.p = &p;
    log.watch = j.dst;
    s = spawn_jobs(sys);
    RUN_ON(s, burst_to_an_ending_actor, &j);
    received = atomic_load(&p.received);
    /* Handed over on the return, after the probe ended. */
    AXT_WAIT_COUNT(log.nums, BURST + 1 - received);
    dead = atomic_load(&log.nums);
    cr_assert_geq(received, 2, "seq 0 and the stopping message were handled");
    cr_assert_eq(received + dead, BURST + 1, "each message handled or dead-lettered, once");
    cr_assert_eq(atomic_load(&log.eclosed), dead, "with AX_ECLOSED");
    cr_assert_eq(atomic_load(&log.for_watch), dead, "addressed to the probe");
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* ---- a bounded mailbox still answers at the tell ---------------------- */

#define CAP 16u

typedef struct fill_job {
    ax_ref_t dst;
    uint64_t accepted;
    ax_status_t refused;
    bool kept; /* the refused message stayed with the handler */
} fill_job_t;

/* Tell until refused: the place count must stop the handler's tells at the
 * capacity, each one answered at the tell. */
static void fill(ax_actor_t *self, void *arg)
{
    fill_job_t *f = arg;

    for (uint64_t seq = 1; seq <= 2 * CAP; seq++) {
        ax_msg_t *m = num_new_in_handler(seq);
        ax_status_t st;

        if (m == NULL)
            return;
        st = ax_tell(f->dst, &m, ax_self(self));
        if (st != AX_OK) {
            f->refused = st;
            f->kept = m != NULL;
            ax_msg_release(&m);
            return;
        }
        f->accepted++;
    }
}

Test(deferred, a_bounded_mailbox_answers_efull_at_the_tell_from_a_handler)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_vtable_t bounded_probe_vtable = probe_vtable;
    fill_job_t f = {0};
    probe_t p;
    ax_ref_t s;

    bounded_probe_vtable.mailbox_capacity = CAP; /* the probe, bounded */
    f.dst = probe_spawn_parked(sys, &bounded_probe_vtable, &p);
    s = spawn_jobs(sys);
    RUN_ON(s, fill, &f);
    cr_assert_eq(f.accepted, CAP, "the handler's tells stop at the capacity");
    cr_assert_eq(f.refused, AX_EFULL);
    cr_assert(f.kept, "AX_EFULL leaves the message with the handler");
    sem_post(&p.gate);
    AXT_WAIT_COUNT(p.received, CAP + 1);
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}
