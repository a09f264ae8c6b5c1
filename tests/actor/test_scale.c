/*
 * Scale: a million actors alive at once in one system, and several systems
 * in one process.
 */
#include "helpers.h"

#define MILLION 1000000u

/* The smallest useful actor: the runtime header and one counter. */
typedef struct tiny {
    ax_actor_t actor;
    uint32_t got;
} tiny_t;

static _Atomic uint64_t tiny_handled;
static _Atomic uint64_t tiny_double;

static ax_status_t tiny_receive(ax_actor_t *self, ax_msg_t **msg)
{
    tiny_t *t = (tiny_t *)self;

    (void)msg;
    if (t->got++ != 0)
        atomic_fetch_add(&tiny_double, 1);
    atomic_fetch_add(&tiny_handled, 1);
    return AX_OK;
}

static const ax_actor_vtable_t tiny_vtable = {
    .name = "test.tiny",
    .size = sizeof(tiny_t),
    .receive_local = tiny_receive,
};

Test(scale, a_million_actors_alive_at_once)
{
    ax_system_t *sys = axt_system(2);
    ax_ref_t *refs = malloc(MILLION * sizeof(*refs));
    /* Messages come from a pool and return to it after each handler, so
     * the sender reuses them. */
    ax_msg_pool_options_t po = {.initial = 0, .max = MILLION};
    ax_msg_pool_t *pool;
    uint64_t made = 0;

    cr_assert_not_null(refs);
    cr_assert_eq(ax_msg_pool_create(&num_type, &po, &pool), AX_OK);
    for (uint32_t i = 0; i < MILLION; i++)
        cr_assert_eq(ax_spawn(sys, &tiny_vtable, NULL, &refs[i]), AX_OK, "actor %u", i);
    cr_assert_eq(axt_stats(sys).actors_alive, MILLION, "all alive at once");
    for (uint32_t i = 0; i < MILLION; i++) {
        ax_msg_t *m = NULL;

        cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &m), AX_OK);
        if (((num_msg_t *)m)->flags == 0) { /* a fresh one: the body is zeroed */
            ((num_msg_t *)m)->flags = 1;
            made++;
        }
        cr_assert_eq(ax_tell(refs[i], &m, AX_REF_NULL), AX_OK);
    }
    AXT_WAIT_COUNT(tiny_handled, MILLION);
    cr_assert_eq(atomic_load(&tiny_double), 0, "each actor got exactly its one message");
    cr_assert_eq(axt_stats(sys).actors_alive, MILLION, "none ended while idle");
    ax_system_shutdown(sys);
    cr_assert_eq(axt_await(sys), AX_OK);
    ax_system_stats_t st = axt_stats(sys);
    cr_assert_eq(st.actors_alive, 0);
    cr_assert_eq(st.delivered, MILLION);
    cr_assert_eq(st.dead_letters, 0);
    axt_destroy(&sys);
    /* Each message went back to the pool (or was freed by it when full):
     * none is lost or freed twice. */
    cr_assert_eq(ax_msg_pool_count(pool) + atomic_load(&num_releases), made,
                 "%zu in the pool, %llu freed, %llu made", ax_msg_pool_count(pool),
                 (unsigned long long)atomic_load(&num_releases), (unsigned long long)made);
    ax_msg_pool_destroy(&pool);
    cr_assert_eq(atomic_load(&num_releases), made);
    free(refs);
}

/* ---- several systems ----------------------------------------------------- */

#define SYSTEMS 3
#define ROUND_TRIPS 20000

typedef struct bouncer {
    ax_actor_t actor;
    uint64_t remaining;
    ax_system_t *home;
    _Atomic uint64_t *foreign; /* a message from another system arrived */
    sem_t *done;
} bouncer_t;

typedef struct bouncer_args {
    uint64_t remaining;
    _Atomic uint64_t *foreign;
    sem_t *done;
} bouncer_args_t;

static ax_status_t bouncer_init(ax_actor_t *self, void *arg)
{
    bouncer_t *b = (bouncer_t *)self;
    bouncer_args_t *a = arg;

    b->remaining = a->remaining;
    b->foreign = a->foreign;
    b->done = a->done;
    b->home = ax_actor_system(self);
    return AX_OK;
}

static ax_status_t bouncer_receive(ax_actor_t *self, ax_msg_t **msg)
{
    bouncer_t *b = (bouncer_t *)self;
    num_msg_t *m = (num_msg_t *)*msg;

    /* `seq` carries the system the ball belongs to. */
    if ((ax_system_t *)(uintptr_t)m->seq != b->home)
        atomic_fetch_add(b->foreign, 1);
    if (ax_ref_is_null((*msg)->sender))
        return AX_OK; /* no one to answer */
    if (b->remaining == 0) {
        sem_post(b->done);
        return AX_OK;
    }
    b->remaining--;
    AXT_CHECK(ax_tell((*msg)->sender, msg, ax_self(self)) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t bouncer_vtable = {
    .name = "test.bouncer",
    .size = sizeof(bouncer_t),
    .init = bouncer_init,
    .receive_local = bouncer_receive,
};

Test(systems, several_systems_run_side_by_side)
{
    ax_system_t *sys[SYSTEMS];
    ax_ref_t a[SYSTEMS], b[SYSTEMS];
    probe_t extra[SYSTEMS]; /* outlive their actors: until shutdown */
    _Atomic uint64_t foreign = 0;
    sem_t done;

    sem_init(&done, 0, 0);
    for (int s = 0; s < SYSTEMS; s++) {
        bouncer_args_t pa = {UINT64_MAX, &foreign, &done};
        bouncer_args_t pb = {ROUND_TRIPS, &foreign, &done};
        ax_msg_t *ball = NULL;

        sys[s] = axt_system(1 + (unsigned)s % 2);
        cr_assert_eq(ax_spawn(sys[s], &bouncer_vtable, &pa, &a[s]), AX_OK);
        cr_assert_eq(ax_spawn(sys[s], &bouncer_vtable, &pb, &b[s]), AX_OK);
        cr_assert_eq(ax_register(sys[s], b[s], "bouncer"), AX_OK, "names are per system");
        ball = num_new(0, (uint64_t)(uintptr_t)sys[s]);
        /* b serves first: a's ref as the sender starts the rally. */
        cr_assert_eq(ax_tell(b[s], &ball, a[s]), AX_OK);
    }
    for (int s = 0; s < SYSTEMS; s++)
        AXT_WAIT_SEM(&done);
    cr_assert_eq(atomic_load(&foreign), 0, "no message crossed into another system");
    for (int s = 0; s < SYSTEMS; s++) {
        ax_ref_t found;

        cr_assert_eq(ax_lookup(sys[s], "bouncer", &found), AX_OK);
        cr_assert(ax_ref_eq(found, b[s]));
        cr_assert_geq(axt_stats(sys[s]).delivered, 2 * ROUND_TRIPS);
    }
    /* Tear down in an order unrelated to creation; the others keep going. */
    axt_shutdown(&sys[1]);
    for (int s = 0; s < SYSTEMS; s += 2) {
        ax_ref_t r;

        probe_init(&extra[s]);
        cr_assert_eq(ax_spawn(sys[s], &probe_vtable, &extra[s], &r), AX_OK);
        num_tell(r, 0, 0, 0);
        AXT_WAIT_COUNT(extra[s].received, 1);
    }
    axt_shutdown(&sys[2]);
    axt_shutdown(&sys[0]);
    AXT_ASSERT_NO_BAD();
    cr_assert_eq(atomic_load(&foreign), 0);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}

/* An actor of one system telling an actor of another: the message goes to
 * the other system's scheduler, not the sender's worker. */
Test(systems, an_actor_can_tell_an_actor_of_another_system)
{
    ax_system_t *s1 = axt_system(1), *s2 = axt_system(1);
    _Atomic uint64_t foreign = 0;
    sem_t done;
    ax_ref_t a, b;

    sem_init(&done, 0, 0);
    bouncer_args_t pa = {UINT64_MAX, &foreign, &done};
    bouncer_args_t pb = {1000, &foreign, &done};
    cr_assert_eq(ax_spawn(s1, &bouncer_vtable, &pa, &a), AX_OK);
    cr_assert_eq(ax_spawn(s2, &bouncer_vtable, &pb, &b), AX_OK);
    ax_msg_t *ball = num_new(0, 0);
    cr_assert_eq(ax_tell(b, &ball, a), AX_OK);
    AXT_WAIT_SEM(&done);
    /* Every hop crossed systems, so every handler saw a foreign ball. */
    cr_assert_eq(atomic_load(&foreign), 2 * 1000 + 1);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&s1);
    axt_shutdown(&s2);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
}
