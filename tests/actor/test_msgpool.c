/* Message pools: get strategies, put, the max bound, destroy with messages
 * out, and concurrent use. A counting release function shows exactly which
 * messages the pool freed. */
#include <pthread.h>

#include "helpers.h"

typedef struct pooled {
    ax_msg_t hdr;
    uint64_t magic; /* 0 in a fresh message; kept across get/put */
    uint64_t owner;
} pooled_t;

static _Atomic uint64_t released;

static void pooled_release(ax_msg_t *m)
{
    atomic_fetch_add(&released, 1);
    free(m);
}

static const ax_msg_type_t pooled_type = {
    .name = "test.pooled",
    .size = sizeof(pooled_t),
    .release = pooled_release,
};

static ax_msg_pool_t *make_pool(size_t initial, size_t max)
{
    ax_msg_pool_options_t o = {.initial = initial, .max = max};
    ax_msg_pool_t *pool = NULL;

    cr_assert_eq(ax_msg_pool_create(&pooled_type, &o, &pool), AX_OK);
    cr_assert_not_null(pool);
    return pool;
}

Test(msgpool, pool_only_on_an_empty_pool_gives_ok_and_null)
{
    ax_msg_pool_t *pool = make_pool(0, 8);
    ax_msg_t *m = (ax_msg_t *)0x1;

    cr_assert_eq(ax_msg_get(pool, AX_POOL_ONLY, &m), AX_OK);
    cr_assert_null(m);
    cr_assert_eq(ax_msg_pool_count(pool), 0);
    ax_msg_pool_destroy(&pool);
    cr_assert_null(pool);
    cr_assert_eq(atomic_load(&released), 0);
}

Test(msgpool, always_allocates_when_empty_with_the_header_set)
{
    ax_msg_pool_t *pool = make_pool(0, 8);
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &m), AX_OK);
    cr_assert_not_null(m);
    cr_assert_eq(m->type, &pooled_type);
    cr_assert_eq(m->pool, pool);
    cr_assert_eq(((pooled_t *)m)->magic, 0, "a new message is zeroed");
    ax_msg_put(pool, &m);
    cr_assert_null(m, "put sets the pointer to NULL");
    cr_assert_eq(ax_msg_pool_count(pool), 1);
    cr_assert_eq(atomic_load(&released), 0, "kept, not freed");
    ax_msg_pool_destroy(&pool);
    cr_assert_eq(atomic_load(&released), 1);
}

Test(msgpool, initial_messages_are_there_at_creation)
{
    ax_msg_pool_t *pool = make_pool(5, 16);
    ax_msg_t *m[6];

    cr_assert_eq(ax_msg_pool_count(pool), 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ax_msg_get(pool, AX_POOL_ONLY, &m[i]), AX_OK);
        cr_assert_not_null(m[i]);
        cr_assert_eq(m[i]->pool, pool);
    }
    cr_assert_eq(ax_msg_get(pool, AX_POOL_ONLY, &m[5]), AX_OK);
    cr_assert_null(m[5], "only the initial 5");
    cr_assert_eq(ax_msg_pool_count(pool), 0);
    for (int i = 0; i < 5; i++)
        ax_msg_put(pool, &m[i]);
    cr_assert_eq(ax_msg_pool_count(pool), 5);
    ax_msg_pool_destroy(&pool);
    cr_assert_eq(atomic_load(&released), 5);
}

Test(msgpool, a_message_comes_back_with_its_contents)
{
    ax_msg_pool_t *pool = make_pool(0, 1);
    ax_msg_t *m, *again;

    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &m), AX_OK);
    ((pooled_t *)m)->magic = 0xfeed;
    m->sender = (ax_ref_t){(void *)m, 99};
    ax_msg_t *first = m;
    ax_msg_put(pool, &m);
    cr_assert_eq(ax_msg_get(pool, AX_POOL_ONLY, &again), AX_OK);
    cr_assert_eq(again, first, "the same message is reused");
    cr_assert_eq(((pooled_t *)again)->magic, 0xfeed, "the body keeps what it held");
    cr_assert(ax_ref_is_null(again->sender), "the header is reset");
    ax_msg_put(pool, &again);
    ax_msg_pool_destroy(&pool);
}

Test(msgpool, put_of_null_does_nothing)
{
    ax_msg_pool_t *pool = make_pool(2, 8);
    ax_msg_t *none = NULL;

    ax_msg_put(pool, &none);
    ax_msg_put(pool, NULL);
    ax_msg_release(&none);
    ax_msg_release(NULL);
    cr_assert_eq(ax_msg_pool_count(pool), 2);
    cr_assert_eq(atomic_load(&released), 0);
    ax_msg_pool_destroy(&pool);
}

Test(msgpool, putting_beyond_max_frees_the_extra)
{
    ax_msg_pool_t *pool = make_pool(0, 8);
    ax_msg_t *m[10];

    for (int i = 0; i < 10; i++) {
        cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &m[i]), AX_OK);
        cr_assert_not_null(m[i]);
    }
    for (int i = 0; i < 10; i++) {
        ax_msg_put(pool, &m[i]);
        cr_assert_null(m[i]);
    }
    cr_assert_eq(atomic_load(&released), 2, "released %llu",
                 (unsigned long long)atomic_load(&released));
    cr_assert_eq(ax_msg_pool_count(pool), 8);
    ax_msg_pool_destroy(&pool);
    cr_assert_eq(atomic_load(&released), 10);
}

Test(msgpool, max_zero_means_initial)
{
    ax_msg_pool_t *pool = make_pool(3, 0);
    ax_msg_t *extra = NULL;

    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &extra), AX_OK);
    cr_assert_eq(ax_msg_pool_count(pool), 2);
    ax_msg_t *more = NULL;
    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &more), AX_OK);
    ax_msg_t *more2 = NULL;
    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &more2), AX_OK);
    ax_msg_t *fresh = NULL;
    cr_assert_eq(ax_msg_get(pool, AX_ALWAYS, &fresh), AX_OK); /* the pool was empty */
    ax_msg_put(pool, &extra);
    ax_msg_put(pool, &more);
    ax_msg_put(pool, &more2);
    ax_msg_put(pool, &fresh);
    cr_assert_eq(ax_msg_pool_count(pool), 3);
    cr_assert_eq(atomic_load(&released), 1);
    ax_msg_pool_destroy(&pool);
}

Test(msgpool, bad_options_are_einval)
{
    ax_msg_pool_options_t o = {.initial = 9, .max = 8};
    static const ax_msg_type_t tiny = {.name = "tiny", .size = sizeof(ax_msg_t) - 1};
    ax_msg_pool_t *pool = NULL;
    ax_msg_t *m;

    cr_assert_eq(ax_msg_pool_create(&pooled_type, &o, &pool), AX_EINVAL);
    cr_assert_eq(ax_msg_pool_create(&tiny, NULL, &pool), AX_EINVAL);
    cr_assert_eq(ax_msg_pool_create(NULL, NULL, &pool), AX_EINVAL);
    cr_assert_null(pool);
    cr_assert_eq(ax_msg_get(NULL, AX_ALWAYS, &m), AX_EINVAL);
}

Test(msgpool, destroy_with_messages_out_frees_them_when_they_come_back)
{
    ax_msg_pool_t *pool = make_pool(4, 8);
    ax_msg_pool_t *handle;
    ax_msg_t *out[3];

    for (int i = 0; i < 3; i++)
        cr_assert_eq(ax_msg_get(pool, AX_POOL_ONLY, &out[i]), AX_OK);
    handle = pool;
    ax_msg_pool_destroy(&pool);
    cr_assert_null(pool);
    cr_assert_eq(atomic_load(&released), 1, "the one held is freed at once");
    /* The messages still out stay valid... */
    ((pooled_t *)out[0])->magic = 1;
    /* ...and are freed when put (to the old handle) or released. */
    ax_msg_put(handle, &out[0]);
    cr_assert_null(out[0]);
    cr_assert_eq(atomic_load(&released), 2);
    ax_msg_release(&out[1]);
    cr_assert_eq(atomic_load(&released), 3);
    ax_msg_release(&out[2]); /* the last one frees the pool's memory (ASan) */
    cr_assert_eq(atomic_load(&released), 4);
}

Test(msgpool, a_message_of_another_pool_goes_home)
{
    ax_msg_pool_t *a = make_pool(0, 8), *b = make_pool(0, 8);
    ax_msg_t *m, *plain;

    cr_assert_eq(ax_msg_get(a, AX_ALWAYS, &m), AX_OK);
    ax_msg_put(b, &m);
    cr_assert_null(m);
    cr_assert_eq(ax_msg_pool_count(a), 1);
    cr_assert_eq(ax_msg_pool_count(b), 0);
    cr_assert_eq(ax_msg_alloc(&pooled_type, &plain), AX_OK);
    ax_msg_put(a, &plain); /* from no pool: released */
    cr_assert_eq(atomic_load(&released), 1);
    cr_assert_eq(ax_msg_pool_count(a), 1);
    ax_msg_pool_destroy(&a);
    ax_msg_pool_destroy(&b);
    cr_assert_eq(atomic_load(&released), 2);
}

Test(msgpool, messages_sent_to_an_actor_return_to_their_pool)
{
    ax_system_t *sys = axt_system(2);
    ax_msg_pool_options_t o = {.initial = 16, .max = 16};
    ax_msg_pool_t *pool;
    probe_t p;
    ax_ref_t ref;

    cr_assert_eq(ax_msg_pool_create(&num_type, &o, &pool), AX_OK);
    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    /* 1000 sends from a pool of 16: only possible if each comes back. */
    for (uint64_t i = 0; i < 1000; i++) {
        ax_msg_t *m = NULL;
        double end = axt_now() + WAIT_S;

        while (ax_msg_get(pool, AX_POOL_ONLY, &m) == AX_OK && m == NULL) {
            cr_assert_lt(axt_now(), end, "message %llu never came back", (unsigned long long)i);
            axt_sleep_us(10);
        }
        cr_assert_not_null(m);
        ((num_msg_t *)m)->seq = i;
        cr_assert_eq(ax_tell(ref, &m, AX_REF_NULL), AX_OK);
    }
    AXT_WAIT_COUNT(p.received, 1000);
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&p.out_of_order), 0);
    cr_assert_eq(atomic_load(&num_releases), 0, "nothing was freed");
    cr_assert_eq(ax_msg_pool_count(pool), 16);
    ax_msg_pool_destroy(&pool);
    cr_assert_eq(atomic_load(&num_releases), 16);
}

/* ---- concurrent get and put ----------------------------------------------- */

#define THREADS 4
#define ROUNDS 50000
#define HOLD 8

static _Atomic uint64_t fresh_allocs;

typedef struct pool_thread {
    pthread_t thread;
    uint64_t id;
    ax_msg_pool_t *pool;
} pool_thread_t;

static void *pool_thread_main(void *arg)
{
    pool_thread_t *t = arg;

    for (unsigned r = 0; r < axt_scaled(ROUNDS); r++) {
        ax_msg_t *held[HOLD];
        unsigned n = 1 + r % HOLD;

        for (unsigned i = 0; i < n; i++) {
            pooled_t *m;

            AXT_CHECK(ax_msg_get(t->pool, r % 3 ? AX_ALWAYS : AX_POOL_ONLY, &held[i]) == AX_OK);
            m = (pooled_t *)held[i];
            if (m == NULL)
                continue;
            AXT_CHECK(held[i]->pool == t->pool && held[i]->type == &pooled_type);
            if (m->magic == 0)
                atomic_fetch_add(&fresh_allocs, 1);
            m->magic = 0xabc;
            m->owner = t->id; /* two holders at once would overwrite this */
        }
        for (unsigned i = 0; i < n; i++)
            if (held[i] != NULL)
                AXT_CHECK(((pooled_t *)held[i])->owner == t->id);
        for (unsigned i = 0; i < n; i++) {
            ax_msg_put(t->pool, &held[i]);
            AXT_CHECK(held[i] == NULL);
        }
    }
    return NULL;
}

static void concurrent(size_t max)
{
    ax_msg_pool_t *pool = make_pool(0, max);
    pool_thread_t t[THREADS];

    for (unsigned i = 0; i < THREADS; i++) {
        t[i] = (pool_thread_t){.id = i + 1, .pool = pool};
        cr_assert_eq(pthread_create(&t[i].thread, NULL, pool_thread_main, &t[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i].thread, NULL);
    AXT_ASSERT_NO_BAD();
    cr_assert_leq(ax_msg_pool_count(pool), max);
    ax_msg_pool_destroy(&pool);
    /* Every message ever made was freed exactly once: by a full pool, or by
     * destroy. */
    cr_assert_eq(atomic_load(&released), atomic_load(&fresh_allocs), "%llu made, %llu freed",
                 (unsigned long long)atomic_load(&fresh_allocs),
                 (unsigned long long)atomic_load(&released));
}

Test(msgpool, concurrent_get_put_from_4_threads_small_pool)
{
    concurrent(16);
}

Test(msgpool, concurrent_get_put_from_4_threads_striped_pool)
{
    concurrent(4096);
}
