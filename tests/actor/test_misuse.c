/*
 * Misuse: every call documented "not on a worker thread" or "call from
 * self's handlers", made from the wrong thread, returns a status (AX_ESTATE)
 * and changes nothing; the system carries on. Under ASan this also proves
 * that none of them touches freed or foreign memory (ax_system_destroy from
 * a handler used to free the cell the run loop was still reading).
 *
 * Each scene keeps an actor pointer from its init (self) and then calls
 * with it from the test thread, or from another actor's handler.
 */
#include "helpers.h"

#include "axon/serial.h"

typedef struct victim {
    ax_actor_t actor;
    ax_actor_t **self_out;
} victim_t;

static ax_status_t victim_init(ax_actor_t *self, void *arg)
{
    ((victim_t *)self)->self_out = arg;
    if (arg != NULL)
        *(ax_actor_t **)arg = self;
    return AX_OK;
}

static ax_status_t victim_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)axt_job_run(self, *msg);
    return AX_OK;
}

static const ax_actor_vtable_t victim_vtable = {
    .name = "test.victim",
    .size = sizeof(victim_t),
    .init = victim_init,
    .receive_local = victim_receive,
};

/* A victim actor and the pointer handlers get as self. */
static ax_ref_t victim_spawn(ax_system_t *sys, ax_actor_t **self)
{
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &victim_vtable, self, &ref), AX_OK);
    cr_assert_not_null(*self);
    return ref;
}

static ax_msg_t *u64_new(uint64_t v)
{
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_alloc(&ax_u64_type, &m), AX_OK);
    ((ax_u64_msg_t *)m)->value = v;
    return m;
}

/* The system still works: a job runs on the actor. */
static void assert_alive(ax_ref_t ref)
{
    axt_flush(ref);
}

/* ---- ax_system_destroy from a handler ------------------------------------ */

typedef struct destroy_job {
    ax_system_t *sys;
    ax_system_t *copy;
    ax_status_t st;
} destroy_job_t;

static void destroy_from_handler(ax_actor_t *self, void *arg)
{
    destroy_job_t *j = arg;

    (void)self;
    j->copy = j->sys;
    j->st = ax_system_destroy(&j->copy);
}

Test(misuse, system_destroy_from_a_handler_is_refused)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_t *self = NULL;
    ax_ref_t ref = victim_spawn(sys, &self);
    destroy_job_t j = {.sys = sys};

    RUN_ON(ref, destroy_from_handler, &j);
    cr_assert_eq(j.st, AX_ESTATE, "destroy from a handler gave %s", ax_status_name(j.st));
    cr_assert_eq(j.copy, sys, "a refused destroy must leave the caller's pointer alone");
    /* Nothing was shut down or freed: the actor still runs and new ones
     * can be made. */
    assert_alive(ref);
    ax_actor_t *other = NULL;
    assert_alive(victim_spawn(sys, &other));
    cr_assert_eq(axt_stats(sys).actors_alive, 2);
    axt_shutdown(&sys);
}

/* From on_stop, while the test thread's own destroy waits for the actors:
 * the worker check refuses it, and the outer destroy completes. */
static _Atomic int on_stop_st = -1000;

static void destroyer_on_stop(ax_actor_t *self)
{
    ax_system_t *sys = ax_actor_system(self);

    atomic_store(&on_stop_st, ax_system_destroy(&sys));
}

static const ax_actor_vtable_t destroyer_vtable = {
    .name = "test.destroyer",
    .size = sizeof(victim_t),
    .receive_local = victim_receive,
    .on_stop = destroyer_on_stop,
};

Test(misuse, system_destroy_from_on_stop_during_destroy_is_refused)
{
    ax_system_t *sys = axt_system(2);
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &destroyer_vtable, NULL, &ref), AX_OK);
    assert_alive(ref);
    axt_destroy(&sys);
    cr_assert_eq(atomic_load(&on_stop_st), AX_ESTATE, "destroy from on_stop gave %d",
                 atomic_load(&on_stop_st));
}

/* ---- waiting on a worker --------------------------------------------------- */

typedef struct wait_job {
    ax_ref_t dst;
    ax_status_t ask_st, wait_st, gather_st, await_st;
    size_t completed;
    bool released;
} wait_job_t;

static void wait_from_handler(ax_actor_t *self, void *arg)
{
    wait_job_t *j = arg;
    ax_msg_t *m = u64_new(1), *reply = NULL;
    ax_future_t *f = NULL;

    j->ask_st = ax_ask(j->dst, &m, AX_MS(60000), &f);
    ax_msg_release(&m);
    if (j->ask_st == AX_OK) {
        j->wait_st = ax_future_wait(f, AX_MS(1), &reply);
        j->gather_st = ax_gather(&f, 1, AX_MS(1), &j->completed);
        ax_msg_release(&reply);
        ax_future_release(&f);
        j->released = f == NULL;
    }
    j->await_st = ax_system_await_termination(ax_actor_system(self));
}

Test(misuse, waiting_calls_on_a_worker_are_refused)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_t *a = NULL, *b = NULL;
    ax_ref_t ra = victim_spawn(sys, &a), rb = victim_spawn(sys, &b);
    wait_job_t j = {.dst = rb, .completed = 99};

    RUN_ON(ra, wait_from_handler, &j);
    cr_assert_eq(j.ask_st, AX_OK);
    cr_assert_eq(j.wait_st, AX_ESTATE, "future_wait on a worker gave %s", ax_status_name(j.wait_st));
    cr_assert_eq(j.gather_st, AX_ESTATE, "gather on a worker gave %s", ax_status_name(j.gather_st));
    cr_assert_eq(j.await_st, AX_ESTATE, "await_termination on a worker gave %s",
                 ax_status_name(j.await_st));
    cr_assert(j.released);
    cr_assert_eq(axt_stats(sys).actors_alive, 2, "a refused await must not shut anything down");
    assert_alive(ra);
    axt_shutdown(&sys);
}

/* ---- calls that belong to self's handlers, from the test thread ------------- */

typedef struct pre_job {
    ax_preserialised_t *pre;
    ax_status_t st;
} pre_job_t;

static void preserialise_job(ax_actor_t *self, void *arg)
{
    pre_job_t *j = arg;
    ax_msg_t *m = u64_new(7);

    j->st = ax_preserialise(self, &ax_u64_type, m, &j->pre);
    ax_msg_release(&m);
}

Test(misuse, self_calls_from_a_foreign_thread_are_refused)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_t *self = NULL;
    ax_ref_t ref = victim_spawn(sys, &self), child = AX_REF_NULL;
    ax_buffer_pool_stats_t stats;
    ax_spawn_opts_t opts = {.parent = self};
    ax_msg_t *m = u64_new(3);
    ax_preserialised_t *pre = NULL;
    ax_timer_t id = 0;
    pre_job_t pj = {0};

    /* Timers: the caller keeps the message on refusal. */
    cr_assert_eq(ax_schedule_once(self, AX_MS(1), &m, &id), AX_ESTATE);
    cr_assert_not_null(m, "a refused schedule must leave the message with the caller");
    cr_assert_eq(ax_schedule_periodic(self, AX_MS(1), AX_MS(1), &m, &id), AX_ESTATE);
    cr_assert_not_null(m);
    cr_assert_eq(id, 0, "no timer id on refusal");
    cr_assert_eq(ax_cancel_timer(self, 12345), AX_ESTATE);

    /* Children. */
    cr_assert_eq(ax_spawn_child(self, &victim_vtable, NULL, &child), AX_ESTATE);
    cr_assert_eq(ax_spawn_opts(sys, &victim_vtable, NULL, &opts, &child), AX_ESTATE);
    cr_assert(ax_ref_is_null(child), "no child on refusal");

    /* Failing. */
    cr_assert_eq(ax_fail(self, AX_EIO), AX_ESTATE);

    /* Eager serialisation and the actor's pool. */
    cr_assert_eq(ax_actor_init_buffers(self, NULL), AX_ESTATE);
    cr_assert_eq(ax_actor_buffer_stats(self, &stats), AX_ESTATE);
    cr_assert_eq(ax_tell_serialised(self, ref, &ax_u64_type, m), AX_ESTATE);
    {
        ax_future_t *f = NULL;

        cr_assert_eq(ax_ask_serialised(self, ref, &ax_u64_type, m, 0, &f), AX_ESTATE);
        cr_assert_null(f, "no future on refusal");
    }
    cr_assert_eq(ax_preserialise(self, &ax_u64_type, m, &pre), AX_ESTATE);
    cr_assert_null(pre);
    RUN_ON(ref, preserialise_job, &pj);
    cr_assert_eq(pj.st, AX_OK, "preserialise from the handler: %s", ax_status_name(pj.st));
    cr_assert_eq(ax_tell_preserialised(self, ref, pj.pre), AX_ESTATE);
    ax_preserialised_release(&pj.pre);
    ax_msg_release(&m);

    /* Nothing happened to the actor: not failed, no children, still
     * running; the pool made by the handler is the only one. */
    assert_alive(ref);
    cr_assert_eq(axt_stats(sys).failures, 0, "a refused ax_fail marked the actor");
    cr_assert_eq(axt_stats(sys).actors_alive, 1, "a refused spawn made an actor");
    cr_assert_eq(axt_buffer_stats(ref, &stats), AX_OK);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}

/* The same calls from another actor's handler: a worker thread, but not
 * self's. */
typedef struct cross_job {
    ax_actor_t *victim;
    ax_ref_t victim_ref;
    ax_status_t sched, cancel, child, fail, init_buffers, tell_serialised;
    bool kept;
} cross_job_t;

static void cross_job(ax_actor_t *self, void *arg)
{
    cross_job_t *j = arg;
    ax_msg_t *m = u64_new(5);
    ax_timer_t id = 0;
    ax_ref_t child = AX_REF_NULL;

    (void)self;
    j->sched = ax_schedule_once(j->victim, AX_MS(1), &m, &id);
    j->kept = m != NULL;
    j->cancel = ax_cancel_timer(j->victim, 1);
    j->child = ax_spawn_child(j->victim, &victim_vtable, NULL, &child);
    j->fail = ax_fail(j->victim, AX_EIO);
    j->init_buffers = ax_actor_init_buffers(j->victim, NULL);
    j->tell_serialised = ax_tell_serialised(j->victim, j->victim_ref, &ax_u64_type, m);
    ax_msg_release(&m);
}

Test(misuse, self_calls_from_another_actors_handler_are_refused)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_t *victim = NULL, *other = NULL;
    ax_ref_t rv = victim_spawn(sys, &victim), ro = victim_spawn(sys, &other);
    cross_job_t j = {.victim = victim, .victim_ref = rv};

    RUN_ON(ro, cross_job, &j);
    cr_assert_eq(j.sched, AX_ESTATE);
    cr_assert(j.kept);
    cr_assert_eq(j.cancel, AX_ESTATE);
    cr_assert_eq(j.child, AX_ESTATE);
    cr_assert_eq(j.fail, AX_ESTATE);
    cr_assert_eq(j.init_buffers, AX_ESTATE);
    cr_assert_eq(j.tell_serialised, AX_ESTATE);
    assert_alive(rv);
    assert_alive(ro);
    cr_assert_eq(axt_stats(sys).failures, 0);
    cr_assert_eq(axt_stats(sys).actors_alive, 2);
    axt_shutdown(&sys);
}

/* The same calls from the actor's own handler still work (the check is not
 * a blanket refusal). */
typedef struct own_job {
    ax_status_t sched, cancel, init_buffers;
} own_job_t;

static void own_job(ax_actor_t *self, void *arg)
{
    own_job_t *j = arg;
    ax_msg_t *m = u64_new(9);
    ax_timer_t id = 0;

    j->sched = ax_schedule_once(self, AX_MS(3600000), &m, &id);
    ax_msg_release(&m);
    j->cancel = ax_cancel_timer(self, id);
    j->init_buffers = ax_actor_init_buffers(self, NULL);
}

Test(misuse, the_same_calls_from_self_are_accepted)
{
    ax_system_t *sys = axt_system(2);
    ax_actor_t *self = NULL;
    ax_ref_t ref = victim_spawn(sys, &self);
    own_job_t j;

    RUN_ON(ref, own_job, &j);
    cr_assert_eq(j.sched, AX_OK);
    cr_assert_eq(j.cancel, AX_OK);
    cr_assert_eq(j.init_buffers, AX_OK);
    axt_shutdown(&sys);
}
