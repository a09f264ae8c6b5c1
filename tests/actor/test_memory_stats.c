/*
 * ax_system_stats reports the memory the runtime holds for cells, timer
 * records and ask slots. None of it shrinks while the system lives (it is
 * recycled, so a stale ref or id finds memory that says it is stale): the
 * numbers are high-water marks. They grow with use, stay put when the
 * actors end, and do not grow again when the same number comes back.
 */
#include "helpers.h"

#define ACTORS 2000
#define TIMERS 600

typedef struct quiet {
    ax_actor_t actor;
    sem_t *ended;
} quiet_t;

static ax_status_t quiet_init(ax_actor_t *self, void *arg)
{
    ((quiet_t *)self)->ended = arg;
    return AX_OK;
}

static ax_status_t quiet_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)axt_job_run(self, *msg);
    return AX_OK;
}

static void quiet_destroy(ax_actor_t *self)
{
    sem_post(((quiet_t *)self)->ended);
}

static const ax_actor_vtable_t quiet_vtable = {
    .name = "test.quiet",
    .size = sizeof(quiet_t),
    .init = quiet_init,
    .receive_local = quiet_receive,
    .destroy = quiet_destroy,
};

static void spawn_and_stop(ax_system_t *sys, sem_t *ended)
{
    static ax_ref_t refs[ACTORS];

    for (int i = 0; i < ACTORS; i++)
        cr_assert_eq(ax_spawn(sys, &quiet_vtable, ended, &refs[i]), AX_OK);
    for (int i = 0; i < ACTORS; i++)
        cr_assert_eq(ax_stop(refs[i]), AX_OK);
    for (int i = 0; i < ACTORS; i++)
        AXT_WAIT_SEM(ended);
    cr_assert(axt_wait_alive(sys, 0, WAIT_S));
}

Test(memory_stats, cell_memory_is_a_high_water_mark)
{
    ax_system_t *sys = axt_system(2);
    sem_t ended;
    uint64_t before, peak;

    sem_init(&ended, 0, 0);
    before = axt_stats(sys).cell_bytes;
    spawn_and_stop(sys, &ended);
    peak = axt_stats(sys).cell_bytes;
    cr_log_info("cells: %llu bytes before, %llu after %d actors", U(before), U(peak), ACTORS);
    cr_assert_geq(peak - before, (uint64_t)ACTORS * sizeof(ax_actor_t),
                  "%d live actors need at least %zu bytes of cells; stats grew by %llu", ACTORS,
                  ACTORS * sizeof(ax_actor_t), U(peak - before));
    /* All ended: the memory is kept, and the next generation reuses it. */
    cr_assert_eq(axt_stats(sys).cell_bytes, peak, "cell memory shrank");
    spawn_and_stop(sys, &ended);
    cr_assert_eq(axt_stats(sys).cell_bytes, peak, "the same number of actors needed more cells");
    axt_shutdown(&sys);
}

static void arm_and_cancel(ax_actor_t *self, void *arg)
{
    static ax_timer_t ids[TIMERS];
    uint64_t *after_arm = arg;

    for (int i = 0; i < TIMERS; i++) {
        ax_msg_t *m = NULL;

        AXT_CHECK(ax_msg_alloc(&axt_job_type, &m) == AX_OK);
        ((axt_job_t *)m)->fn = axt_nop_job;
        AXT_CHECK(ax_schedule_once(self, AX_MS(3600000), &m, &ids[i]) == AX_OK);
    }
    after_arm[0] = axt_stats(ax_actor_system(self)).timer_bytes;
    for (int i = 0; i < TIMERS; i++)
        AXT_CHECK(ax_cancel_timer(self, ids[i]) == AX_OK);
}

Test(memory_stats, timer_memory_is_a_high_water_mark)
{
    ax_system_t *sys = axt_system(2);
    sem_t ended;
    ax_ref_t ref;
    uint64_t before = axt_stats(sys).timer_bytes, armed[1], again[1];

    sem_init(&ended, 0, 0);
    cr_assert_eq(ax_spawn(sys, &quiet_vtable, &ended, &ref), AX_OK);
    RUN_ON(ref, arm_and_cancel, armed);
    cr_assert_gt(armed[0], before, "%d armed timers hold no memory?", TIMERS);
    cr_assert_eq(axt_stats(sys).timer_bytes, armed[0], "timer memory shrank after the cancels");
    RUN_ON(ref, arm_and_cancel, again);
    cr_assert_eq(again[0], armed[0], "the same number of timers needed more records");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
}
