/*
 * Message memory: ax_msg_alloc's allocator (serial/msgmem.h) under
 * allocation on one thread and release on others, and every kind of
 * message a user makes still released by the right allocator: their own
 * malloc'd messages with and without release, types with reset, pooled
 * messages. A message freed by the wrong allocator is an error under
 * ASan (and a crash without it), so these tests fail on a mix-up.
 */
#include <sched.h>

#include "tests/actor/helpers.h"
#include "serial/mpsc.h"
#include "common/ax_atomic.h"

/* The 10 M of the issue; the TSan build (about 10 times slower per
 * atomic) runs 2 M, which still cycles every block many times over. */
#if defined(__SANITIZE_THREAD__)
#define CROSS_TOTAL 2000000u
#else
#define CROSS_TOTAL 10000000u
#endif
#define NCONSUMERS 2
#define MAX_IN_FLIGHT 65536u

typedef struct sized {
    ax_msg_t hdr;
    uint64_t seq;
    uint64_t check;  /* seq * PATTERN: written by the allocating thread */
    unsigned char body[];
} sized_t;

#define PATTERN UINT64_C(0x9e3779b97f4a7c15)

/* Three sizes, so that several size classes cycle. */
static const ax_msg_type_t small_type = {.name = "test.small", .size = sizeof(sized_t)};
static const ax_msg_type_t mid_type = {.name = "test.mid", .size = sizeof(sized_t) + 200};
static const ax_msg_type_t big_type = {.name = "test.big", .size = sizeof(sized_t) + 1500};
static const ax_msg_type_t *const types[] = {&small_type, &mid_type, &big_type};

typedef struct consumer {
    ax__mpsc_t q;
    pthread_t thread;
    uint64_t expect;     /* messages this consumer will get */
    uint64_t bad;        /* corrupted or unzeroed messages */
    uint64_t sent;       /* by the producer */
    _Alignas(64) _Atomic uint64_t done; /* released, published every 256 */
} consumer_t;

static void *consumer_main(void *arg)
{
    consumer_t *c = arg;

    for (uint64_t got = 0; got < c->expect;) {
        sized_t *m = (sized_t *)ax__mpsc_pop(&c->q);

        if (m == NULL) {
            sched_yield(); /* 2 cores: let the producer run */
            continue;
        }
        if (m->check != m->seq * PATTERN || m->hdr.type != types[m->seq % 3])
            c->bad++;
        ax_msg_t *msg = &m->hdr;
        ax_msg_release(&msg);
        if (++got % 256 == 0 || got == c->expect)
            atomic_store_explicit(&c->done, got, memory_order_relaxed); /* progress only */
    }
    return NULL;
}

Test(msgalloc, ten_million_allocated_on_one_thread_released_on_others)
{
    static consumer_t cons[NCONSUMERS];
    uint64_t unzeroed = 0, bad = 0;

    for (int i = 0; i < NCONSUMERS; i++) {
        memset(&cons[i], 0, sizeof(cons[i]));
        ax__mpsc_init(&cons[i].q, false);
        cons[i].expect = CROSS_TOTAL / NCONSUMERS + (i < (int)(CROSS_TOTAL % NCONSUMERS));
        cr_assert_eq(pthread_create(&cons[i].thread, NULL, consumer_main, &cons[i]), 0);
    }
    for (uint64_t seq = 0; seq < CROSS_TOTAL; seq++) {
        consumer_t *c = &cons[seq % NCONSUMERS];
        ax_msg_t *msg = NULL;
        sized_t *m;

        /* At most MAX_IN_FLIGHT messages alive at once. */
        while (c->sent - atomic_load_explicit(&c->done, memory_order_relaxed) >= MAX_IN_FLIGHT / NCONSUMERS)
            sched_yield();
        cr_assert_eq(ax_msg_alloc(types[seq % 3], &msg), AX_OK);
        m = (sized_t *)msg;
        /* ax_msg_alloc promises zeroed memory, recycled or not. */
        if (m->seq != 0 || m->check != 0 || (msg->type != &small_type && m->body[0] != 0))
            unzeroed++;
        m->seq = seq;
        m->check = seq * PATTERN;
        if (msg->type != &small_type)
            memset(m->body, 0xA5, msg->type->size - sizeof(sized_t));
        c->sent++;
        ax__mpsc_push(&c->q, &msg->link);
    }
    for (int i = 0; i < NCONSUMERS; i++) {
        pthread_join(cons[i].thread, NULL);
        bad += cons[i].bad;
    }
    cr_assert_eq(unzeroed, 0, "%llu messages came back not zeroed", U(unzeroed));
    cr_assert_eq(bad, 0, "%llu messages were corrupted on the way", U(bad));
    for (int i = 0; i < NCONSUMERS; i++)
        cr_assert_eq(atomic_load(&cons[i].done), cons[i].sent);
}

/* ---- messages users make themselves ---------------------------------- */

static _Atomic uint64_t released_count, reset_count;

static void counting_release(ax_msg_t *m)
{
    atomic_fetch_add(&released_count, 1);
    free(m); /* what user code has always written */
}

static void counting_reset(ax_msg_t *m)
{
    atomic_fetch_add(&reset_count, 1);
    free(((sized_t *)m)->hdr.sender.target); /* something the message owns */
    ((sized_t *)m)->hdr.sender.target = NULL;
}

static const ax_msg_type_t with_release = {.name = "test.rel", .size = sizeof(sized_t),
                                           .release = counting_release};
static const ax_msg_type_t with_reset = {.name = "test.reset", .size = sizeof(sized_t),
                                         .reset = counting_reset};

/* A sink actor: the runtime releases whatever it receives. */
typedef struct sink_actor {
    ax_actor_t actor;
    _Atomic uint64_t *got;
} sink_actor_t;

static ax_status_t sink_init(ax_actor_t *self, void *arg)
{
    ((sink_actor_t *)self)->got = arg;
    return AX_OK;
}

static ax_status_t sink_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    atomic_fetch_add(((sink_actor_t *)self)->got, 1);
    return AX_OK;
}

static const ax_actor_vtable_t sink_vtable = {
    .name = "test.sink", .size = sizeof(sink_actor_t), .init = sink_init, .receive_local = sink_receive};

Test(msgalloc, user_allocated_messages_go_back_to_malloc)
{
    ax_system_t *sys = axt_system(2);
    _Atomic uint64_t got = 0;
    ax_ref_t sink;
    int n = 0;

    atomic_store(&released_count, 0);
    cr_assert_eq(ax_spawn(sys, &sink_vtable, &got, &sink), AX_OK);
    for (int i = 0; i < 1000; i++) {
        /* Without release: malloc'd by the user, freed by the runtime on
         * a worker. */
        ax_msg_t *a = malloc(sizeof(sized_t));
        /* With release: the user's release frees it with free(). */
        ax_msg_t *b = malloc(sizeof(sized_t));
        /* ax_msg_alloc of a type with release: calloc memory, which the
         * user's free() in release may free. */
        ax_msg_t *c = NULL;

        cr_assert_not_null(a);
        cr_assert_not_null(b);
        ax_msg_init(a, &small_type);
        ax_msg_init(b, &with_release);
        cr_assert_eq(ax_msg_alloc(&with_release, &c), AX_OK);
        cr_assert_eq(ax_tell(sink, &a, AX_REF_NULL), AX_OK);
        cr_assert_eq(ax_tell(sink, &b, AX_REF_NULL), AX_OK);
        cr_assert_eq(ax_tell(sink, &c, AX_REF_NULL), AX_OK);
        n += 3;
    }
    AXT_WAIT_COUNT(got, (uint64_t)n);
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&released_count), 2000, "release ran for every message of its type");

    /* The same, released on this thread. */
    {
        ax_msg_t *a = malloc(sizeof(sized_t)), *b = NULL;

        cr_assert_not_null(a);
        ax_msg_init(a, &mid_type); /* smaller than mid_type->size: never reused as one */
        ax_msg_release(&a);
        cr_assert_null(a);
        b = malloc(sizeof(sized_t));
        cr_assert_not_null(b);
        ax_msg_init(b, &small_type);
        ax_msg_free(b);
        cr_assert_eq(ax_msg_alloc(&small_type, &b), AX_OK);
        ax_msg_free(b);
        ax_msg_free(NULL);
    }
}

Test(msgalloc, reset_drops_what_a_message_owns_when_it_has_no_release)
{
    ax_msg_t *m = NULL;

    atomic_store(&reset_count, 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(ax_msg_alloc(&with_reset, &m), AX_OK);
        m->sender.target = malloc(32); /* owned, dropped by reset */
        ax_msg_release(&m);
        cr_assert_null(m);
    }
    cr_assert_eq(atomic_load(&reset_count), 100);
}

typedef struct pool_job {
    ax_msg_pool_t *pool;
    ax_msg_t *out[256];
} pool_job_t;

static void *put_all(void *arg)
{
    pool_job_t *j = arg;

    for (int i = 0; i < 256; i++)
        ax_msg_put(j->pool, &j->out[i]);
    return NULL;
}

Test(msgalloc, pooled_messages_return_and_outlive_their_pool)
{
    ax_msg_pool_options_t o = {.initial = 64, .max = 128};
    ax_msg_pool_t *pool = NULL, *rpool = NULL;
    pool_job_t j;
    pthread_t t;
    ax_msg_t *late = NULL, *late_rel = NULL;

    atomic_store(&released_count, 0);
    /* A type without release (the message allocator) and one with. */
    cr_assert_eq(ax_msg_pool_create(&small_type, &o, &pool), AX_OK);
    cr_assert_eq(ax_msg_pool_create(&with_release, &o, &rpool), AX_OK);
    j.pool = pool;
    for (int i = 0; i < 256; i++)
        cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &j.out[i]), AX_OK);
    /* Put on another thread: 128 stay, the rest are freed there. */
    cr_assert_eq(pthread_create(&t, NULL, put_all, &j), 0);
    pthread_join(t, NULL);
    cr_assert_leq(ax_msg_pool_count(pool), 128);
    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &late), AX_OK);
    cr_assert_eq(ax_msg_get(rpool, AX_ALWAYS, &late_rel), AX_OK);
    ax_msg_pool_destroy(&pool);
    ax_msg_pool_destroy(&rpool);
    cr_assert_eq(atomic_load(&released_count), 63, "the pool discards its 63 held messages with release");
    /* Released after their pools: freed for good, by the right allocator. */
    ax_msg_release(&late);
    ax_msg_release(&late_rel);
    cr_assert_eq(atomic_load(&released_count), 64);
}
