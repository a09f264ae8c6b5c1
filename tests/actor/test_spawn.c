/*
 * Spawn at scale with many workers: a million actors spawned and stopped
 * with 16 workers (more workers than this machine has cores), from a
 * thread and from an actor. Every one starts, handles its message, ends,
 * and gives back everything: cells, messages, the alive count.
 */
#include "helpers.h"

/* A million, as the issue asks; the TSan build (20 to 50 times slower
 * here, with 16 instrumented workers on 2 cores) runs 50,000, which still
 * recycles every cell many times. AXON_TEST_SCALE divides it further. */
#if defined(__SANITIZE_THREAD__)
#define SPAWN_TOTAL 50000u
#else
#define SPAWN_TOTAL 1000000u
#endif
#define WORKERS 16

static _Atomic uint64_t started, handled, destroyed;

typedef struct brief {
    ax_actor_t actor;
    uint64_t got;
} brief_t;

static void brief_start(ax_actor_t *self)
{
    (void)self;
    atomic_fetch_add(&started, 1);
}

/* One message, then the actor stops itself. */
static ax_status_t brief_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    if (((brief_t *)self)->got++ == 0)
        atomic_fetch_add(&handled, 1);
    AXT_CHECK(ax_stop(ax_self(self)) == AX_OK);
    return AX_OK;
}

static void brief_destroy(ax_actor_t *self)
{
    (void)self;
    atomic_fetch_add(&destroyed, 1);
}

static const ax_actor_vtable_t brief_vtable = {
    .name = "test.brief",
    .size = sizeof(brief_t),
    .on_start = brief_start,
    .receive_local = brief_receive,
    .destroy = brief_destroy,
};

static void reset_counts(void)
{
    atomic_store(&started, 0);
    atomic_store(&handled, 0);
    atomic_store(&destroyed, 0);
    atomic_store(&num_allocs, 0);
    atomic_store(&num_releases, 0);
}

static void check_all_ended(ax_system_t **sys, uint64_t n)
{
    AXT_WAIT_COUNT(destroyed, n);
    cr_assert(axt_wait_alive(*sys, 0, WAIT_S), "every actor ended");
    cr_assert_eq(atomic_load(&started), n);
    cr_assert_eq(atomic_load(&handled), n, "each handled its one message");
    axt_shutdown(sys);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs), "every message released");
    AXT_ASSERT_NO_BAD();
}

Test(spawn, a_million_spawned_and_stopped_from_a_thread_with_16_workers)
{
    ax_system_t *sys = axt_system(WORKERS);
    uint64_t n = axt_scaled(SPAWN_TOTAL);

    reset_counts();
    for (uint64_t i = 0; i < n; i++) {
        ax_ref_t r;
        ax_msg_t *m = num_new(0, i);

        cr_assert_eq(ax_spawn(sys, &brief_vtable, NULL, &r), AX_OK, "actor %llu", U(i));
        cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_OK);
    }
    check_all_ended(&sys, n);
}

/* The spawner spawns in batches and messages itself between them, so the
 * workers run the new actors meanwhile. */
typedef struct spawner {
    ax_actor_t actor;
    uint64_t remaining;
} spawner_t;

static void spawn_batch(ax_actor_t *self)
{
    spawner_t *s = (spawner_t *)self;
    ax_msg_t *m;

    for (int i = 0; i < 512 && s->remaining > 0; i++, s->remaining--) {
        ax_ref_t r;

        m = num_new(1, s->remaining);
        AXT_CHECK(ax_spawn(ax_actor_system(self), &brief_vtable, NULL, &r) == AX_OK);
        AXT_CHECK(ax_tell(r, &m, ax_self(self)) == AX_OK);
    }
    if (s->remaining > 0) {
        m = num_new(1, 0);
        AXT_CHECK(ax_tell(ax_self(self), &m, ax_self(self)) == AX_OK);
    } else {
        AXT_CHECK(ax_stop(ax_self(self)) == AX_OK); /* done: alive goes to 0 */
    }
}

static ax_status_t spawner_init(ax_actor_t *self, void *arg)
{
    ((spawner_t *)self)->remaining = *(uint64_t *)arg;
    return AX_OK;
}

static ax_status_t spawner_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    spawn_batch(self);
    return AX_OK;
}

static const ax_actor_vtable_t spawner_vtable = {
    .name = "test.spawner",
    .size = sizeof(spawner_t),
    .init = spawner_init,
    .on_start = spawn_batch,
    .receive_local = spawner_receive,
};

Test(spawn, a_million_spawned_and_stopped_from_an_actor_with_16_workers)
{
    ax_system_t *sys = axt_system(WORKERS);
    uint64_t n = axt_scaled(SPAWN_TOTAL);
    ax_ref_t sp;

    reset_counts();
    cr_assert_eq(ax_spawn(sys, &spawner_vtable, &n, &sp), AX_OK);
    check_all_ended(&sys, n);
}
