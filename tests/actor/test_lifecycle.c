/*
 * An actor's lifecycle: create, start, graceful stop, kill, stopping
 * itself, never started, and the statuses each call returns.
 *
 * To put messages in a mailbox "before the stop" deterministically, the
 * first message blocks its handler on a gate (NUM_BLOCK); the test queues
 * the rest, stops or kills, then opens the gate.
 */
#include <sched.h>

#include "helpers.h"

#define QUEUED 100

/* A probe actor with its first message blocking in the handler; returns
 * once the handler is inside, with QUEUED more messages queued behind. */
static ax_ref_t spawn_blocked_with_queue(ax_system_t *sys, probe_t *p)
{
    ax_ref_t ref = probe_spawn_parked(sys, &probe_vtable, p);

    for (uint64_t i = 1; i <= QUEUED; i++)
        num_tell(ref, 0, i, 0);
    return ref;
}

Test(lifecycle, stop_handles_every_queued_message_then_on_stop_once)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref = spawn_blocked_with_queue(sys, &p);

    cr_assert_eq(ax_stop(ref), AX_OK);
    cr_assert_eq(ax_stop(ref), AX_OK, "a second stop while stopping is not an error");
    sem_post(&p.gate);
    AXT_WAIT_SEM(&p.ended);

    cr_assert_eq(atomic_load(&p.received), QUEUED + 1, "every message queued before the stop");
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    cr_assert_eq(atomic_load(&p.starts), 1);
    cr_assert_eq(atomic_load(&p.stops), 1);
    cr_assert_eq(atomic_load(&p.kills), 0);
    cr_assert_eq(atomic_load(&p.destroys), 1);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* Regression: with throughput 1, the run after the stop handles the last
 * queued message and ends on its budget with the mailbox empty. The actor
 * is sealed, so nothing would wake it again: it must not go idle there,
 * or its stop never finishes (and shutdown never terminates). */
Test(lifecycle, stop_finishes_when_a_run_ends_on_its_budget)
{
    for (unsigned throughput = 1; throughput <= 4; throughput++) {
        ax_config_t cfg;
        ax_system_t *sys;
        probe_t p;
        ax_ref_t ref;

        ax_config_init(&cfg);
        cfg.threads = 2;
        cfg.throughput = throughput;
        cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
        probe_init(&p);
        cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
        num_tell(ref, 0, 0, NUM_BLOCK);
        AXT_WAIT_SEM(&p.in_handler);
        for (uint64_t i = 1; i <= throughput; i++)
            num_tell(ref, 0, i, 0);
        cr_assert_eq(ax_stop(ref), AX_OK);
        sem_post(&p.gate);
        cr_assert(axt_sem_wait(&p.ended, WAIT_S), "throughput %u: the stop never finished",
                  throughput);
        cr_assert_eq(atomic_load(&p.received), throughput + 1);
        cr_assert_eq(atomic_load(&p.stops), 1);
        axt_shutdown(&sys);
    }
}

Test(lifecycle, tell_after_the_actor_ended_goes_to_dead_letters)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    probe_t p;
    ax_ref_t ref;

    axt_collect_dead_letters(sys, &log);
    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    log.watch = ref;
    cr_assert_eq(ax_stop(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);

    uint64_t before = axt_stats(sys).dead_letters;
    num_tell(ref, 0, 7, 0); /* AX_OK: the runtime took it */
    cr_assert_eq(axt_stats(sys).dead_letters, before + 1);
    AXT_WAIT_COUNT(log.count, 1);
    cr_assert_eq(atomic_load(&log.eclosed), 1);
    cr_assert_eq(atomic_load(&log.for_watch), 1, "the dead letter names the recipient");
    cr_assert_eq(atomic_load(&log.nums), 1, "the dead letter carries the message");
    cr_assert_eq(atomic_load(&p.received), 0);
    cr_assert_eq(ax_stop(ref), AX_ENOTFOUND);
    cr_assert_eq(ax_kill(ref), AX_ENOTFOUND);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

Test(lifecycle, kill_skips_the_queue_to_dead_letters_and_runs_on_kill)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    probe_t p;

    axt_collect_dead_letters(sys, &log);
    ax_ref_t ref = spawn_blocked_with_queue(sys, &p);
    log.watch = ref;
    cr_assert_eq(ax_kill(ref), AX_OK);
    sem_post(&p.gate);
    AXT_WAIT_SEM(&p.ended);
    AXT_WAIT_COUNT(log.count, QUEUED);

    /* The handler that was running finishes; nothing after it runs. */
    cr_assert_eq(atomic_load(&p.received), 1);
    cr_assert_eq(atomic_load(&p.received) + atomic_load(&log.count), QUEUED + 1);
    cr_assert_eq(atomic_load(&log.eclosed), QUEUED);
    cr_assert_eq(atomic_load(&log.for_watch), QUEUED);
    cr_assert_eq(atomic_load(&p.kills), 1);
    cr_assert_eq(atomic_load(&p.stops), 0);
    cr_assert_eq(atomic_load(&p.destroys), 1);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&log.count), QUEUED, "no dead letter is counted twice");
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

Test(lifecycle, kill_during_a_graceful_stop_wins)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    probe_t p;

    axt_collect_dead_letters(sys, &log);
    ax_ref_t ref = spawn_blocked_with_queue(sys, &p);
    cr_assert_eq(ax_stop(ref), AX_OK);
    cr_assert_eq(ax_kill(ref), AX_OK);
    sem_post(&p.gate);
    AXT_WAIT_SEM(&p.ended);
    AXT_WAIT_COUNT(log.count, QUEUED);

    cr_assert_eq(atomic_load(&p.received), 1);
    cr_assert_eq(atomic_load(&p.kills), 1);
    cr_assert_eq(atomic_load(&p.stops), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

Test(lifecycle, an_actor_stops_itself_and_still_handles_its_mailbox)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    p.stop_self_at = 3;
    /* Queue everything before the start, so all 10 are in the mailbox when
     * the actor stops itself in the handler of message 3. */
    cr_assert_eq(ax_create(sys, &probe_vtable, &p, &ref), AX_OK);
    for (uint64_t i = 0; i < 10; i++)
        num_tell(ref, 0, i, 0);
    cr_assert_eq(ax_start(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);

    cr_assert_eq(atomic_load(&p.received), 10);
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    cr_assert_eq(atomic_load(&p.stops), 1);
    cr_assert_eq(atomic_load(&p.kills), 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

Test(lifecycle, created_actor_waits_for_start_before_handling)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    cr_assert_eq(ax_create(sys, &probe_vtable, &p, &ref), AX_OK);
    num_tell(ref, 0, 0, 0);
    /* Nothing to wait for that would prove a negative quickly; give the
     * workers a moment, then check nothing ran. */
    axt_sleep_us(20000);
    cr_assert_eq(atomic_load(&p.starts), 0);
    cr_assert_eq(atomic_load(&p.received), 0);
    cr_assert_eq(ax_start(ref), AX_OK);
    AXT_WAIT_SEM(&p.started);
    AXT_WAIT_COUNT(p.received, 1);
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&p.stops), 1, "shutdown stops actors gracefully");
}

static void never_started(bool kill)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    probe_t p;
    ax_ref_t ref;

    axt_collect_dead_letters(sys, &log);
    probe_init(&p);
    cr_assert_eq(ax_create(sys, &probe_vtable, &p, &ref), AX_OK);
    log.watch = ref;
    for (uint64_t i = 0; i < 5; i++)
        num_tell(ref, 0, i, 0);
    cr_assert_eq(kill ? ax_kill(ref) : ax_stop(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);
    AXT_WAIT_COUNT(log.count, 5);

    cr_assert_eq(atomic_load(&p.starts), 0);
    cr_assert_eq(atomic_load(&p.stops), 0);
    cr_assert_eq(atomic_load(&p.kills), 0);
    cr_assert_eq(atomic_load(&p.destroys), 1);
    cr_assert_eq(atomic_load(&p.received), 0);
    cr_assert_eq(atomic_load(&log.eclosed), 5);
    cr_assert_eq(atomic_load(&log.for_watch), 5);
    cr_assert_eq(ax_start(ref), AX_ENOTFOUND, "an ended actor cannot be started");
    cr_assert(axt_wait_alive(sys, 1, WAIT_S), "only the collector is alive");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

Test(lifecycle, stopping_a_never_started_actor_runs_only_destroy)
{
    never_started(false);
}

Test(lifecycle, killing_a_never_started_actor_runs_only_destroy)
{
    never_started(true);
}

Test(lifecycle, start_twice_is_estate_and_stop_after_end_is_enotfound)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    cr_assert_eq(ax_start(ref), AX_ESTATE);
    AXT_WAIT_SEM(&p.started);
    cr_assert_eq(ax_start(ref), AX_ESTATE);
    cr_assert_eq(ax_stop(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);
    cr_assert_eq(ax_stop(ref), AX_ENOTFOUND);
    cr_assert_eq(ax_kill(ref), AX_ENOTFOUND);
    cr_assert_eq(ax_start(ref), AX_ENOTFOUND);
    cr_assert_eq(atomic_load(&p.starts), 1);
    axt_shutdown(&sys);
}

Test(lifecycle, start_after_stop_of_a_created_actor_is_refused)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref;
    ax_status_t st;

    probe_init(&p);
    cr_assert_eq(ax_create(sys, &probe_vtable, &p, &ref), AX_OK);
    cr_assert_eq(ax_stop(ref), AX_OK);
    /* Stopped (ESTATE) or already ended (ENOTFOUND): never started. */
    st = ax_start(ref);
    cr_assert(st == AX_ESTATE || st == AX_ENOTFOUND, "ax_start gave %s", ax_status_name(st));
    AXT_WAIT_SEM(&p.ended);
    cr_assert_eq(atomic_load(&p.starts), 0);
    axt_shutdown(&sys);
}

/* ---- ax_create errors -------------------------------------------------- */

static ax_status_t nop_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    (void)msg;
    return AX_OK;
}

Test(lifecycle, create_rejects_a_bad_vtable)
{
    ax_system_t *sys = axt_system(1);
    ax_actor_vtable_t too_small = {.name = "small", .size = sizeof(ax_actor_t) - 1,
                                   .receive_local = nop_receive};
    ax_actor_vtable_t no_receive = {.name = "deaf", .size = sizeof(ax_actor_t)};
    ax_ref_t ref;

    cr_assert_eq(ax_create(sys, NULL, NULL, &ref), AX_EINVAL);
    cr_assert_eq(ax_create(sys, &too_small, NULL, &ref), AX_EINVAL);
    cr_assert_eq(ax_create(sys, &no_receive, NULL, &ref), AX_EINVAL);
    cr_assert_eq(ax_spawn(sys, &no_receive, NULL, &ref), AX_EINVAL);
    cr_assert_neq(ax_error_detail()[0], '\0', "the failure says what was wrong");
    cr_assert_eq(axt_stats(sys).actors_alive, 0);
    axt_shutdown(&sys);
}

static _Atomic uint64_t failing_destroys;

static ax_status_t failing_init(ax_actor_t *self, void *arg)
{
    (void)self;
    (void)arg;
    return AX_EFAILED;
}

static void count_destroy(ax_actor_t *self)
{
    (void)self;
    atomic_fetch_add(&failing_destroys, 1);
}

Test(lifecycle, init_failure_is_returned_and_destroy_runs)
{
    static const ax_actor_vtable_t vt = {
        .name = "failing", .size = sizeof(ax_actor_t), .init = failing_init,
        .receive_local = nop_receive, .destroy = count_destroy,
    };
    ax_system_t *sys = axt_system(1);
    ax_ref_t ref;

    cr_assert_eq(ax_create(sys, &vt, NULL, &ref), AX_EFAILED);
    cr_assert_eq(atomic_load(&failing_destroys), 1);
    cr_assert_eq(ax_spawn(sys, &vt, NULL, &ref), AX_EFAILED);
    cr_assert_eq(atomic_load(&failing_destroys), 2);
    cr_assert_eq(axt_stats(sys).actors_alive, 0, "the actor never exists");
    axt_shutdown(&sys);
}

Test(lifecycle, create_after_shutdown_is_eshutdown)
{
    ax_system_t *sys = axt_system(1);
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    ax_system_shutdown(sys);
    cr_assert_eq(ax_create(sys, &probe_vtable, &p, &ref), AX_ESHUTDOWN);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_ESHUTDOWN);
    cr_assert_eq(atomic_load(&p.destroys), 0, "init never ran, so destroy does not either");
    cr_assert_eq(axt_await(sys), AX_OK);
    axt_destroy(&sys);
}

Test(lifecycle, tell_keeps_the_message_with_the_caller_on_error)
{
    ax_system_t *sys = axt_system(1);
    ax_msg_t *m = num_new(0, 0);
    ax_msg_t *none = NULL;
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    cr_assert_eq(ax_tell(AX_REF_NULL, &m, AX_REF_NULL), AX_EINVAL);
    cr_assert_not_null(m, "on error the caller still owns the message");
    cr_assert_eq(ax_tell(ref, &none, AX_REF_NULL), AX_EINVAL);
    cr_assert_eq(ax_tell(ref, NULL, AX_REF_NULL), AX_EINVAL);
    cr_assert_eq(ax_tell(ref, &m, AX_REF_NULL), AX_OK);
    cr_assert_null(m);
    AXT_WAIT_COUNT(p.received, 1);
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* ---- stats -------------------------------------------------------------- */

Test(lifecycle, stats_count_deliveries_and_live_actors)
{
    ax_system_t *sys = axt_system(2);
    probe_t a, b, c;
    ax_ref_t ra, rb, rc;

    probe_init(&a);
    probe_init(&b);
    probe_init(&c);
    cr_assert_eq(axt_stats(sys).actors_alive, 0);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &a, &ra), AX_OK);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &b, &rb), AX_OK);
    cr_assert_eq(ax_create(sys, &probe_vtable, &c, &rc), AX_OK);
    cr_assert_eq(axt_stats(sys).actors_alive, 3, "created counts as alive");
    for (uint64_t i = 0; i < 100; i++)
        num_tell(ra, 0, i, 0);
    for (uint64_t i = 0; i < 50; i++)
        num_tell(rb, 0, i, 0);
    AXT_WAIT_COUNT(a.received, 100);
    AXT_WAIT_COUNT(b.received, 50);

    cr_assert_eq(ax_stop(ra), AX_OK);
    AXT_WAIT_SEM(&a.ended);
    cr_assert(axt_wait_alive(sys, 2, WAIT_S));
    cr_assert_eq(ax_kill(rc), AX_OK);
    AXT_WAIT_SEM(&c.ended);
    cr_assert(axt_wait_alive(sys, 1, WAIT_S));

    ax_system_shutdown(sys);
    cr_assert_eq(axt_await(sys), AX_OK);
    ax_system_stats_t st = axt_stats(sys);
    cr_assert_eq(st.delivered, 150, "delivered %llu", (unsigned long long)st.delivered);
    cr_assert_eq(st.actors_alive, 0);
    cr_assert_eq(st.dead_letters, 0);
    axt_destroy(&sys);
}

Test(lifecycle, refs_have_unique_nonzero_ids)
{
    ax_system_t *sys = axt_system(1);
    probe_t p[8];
    ax_ref_t r[8];

    for (int i = 0; i < 8; i++) {
        probe_init(&p[i]);
        cr_assert_eq(ax_spawn(sys, &probe_vtable, &p[i], &r[i]), AX_OK);
        cr_assert_neq(ax_ref_id(r[i]), 0);
        for (int j = 0; j < i; j++)
            cr_assert_neq(ax_ref_id(r[i]), ax_ref_id(r[j]));
    }
    axt_shutdown(&sys);
}

/* threads = 0: one worker per CPU the process may run on (its affinity
 * mask, as Go's and the BEAM's schedulers count them), not per CPU online:
 * a process confined by taskset or a container's cpuset gets fewer. */
Test(lifecycle, zero_threads_means_one_worker_per_cpu_the_process_may_use)
{
    cpu_set_t all, one;
    ax_system_t *sys = NULL;
    ax_config_t cfg;

    cr_assert_eq(sched_getaffinity(0, sizeof all, &all), 0);
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all)) {
            CPU_SET(i, &one);
            break;
        }
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0, "cannot confine the test to one CPU");
    ax_config_init(&cfg);
    cfg.threads = 0;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_system_workers(sys), 1, "a process that may use one CPU gets one worker, not %u",
                 ax_system_workers(sys));
    axt_shutdown(&sys);
    cr_assert_eq(sched_setaffinity(0, sizeof all, &all), 0);
}
