/* BufferPool: limits, reclaiming, exhaustion, stats and deferred freeing. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "axon/buffers.h"

#define CHUNK 256

static ax_buffer_config_t pool_config(size_t initial, size_t max)
{
    return (ax_buffer_config_t){
        .chunk_size = CHUNK,
        .initial_chunk_count = initial,
        .max_chunk_count = max,
        .encode_buf_min_free_space = 16,
    };
}

static ax_buffer_pool_t *make_pool(size_t initial, size_t max)
{
    ax_buffer_config_t cfg = pool_config(initial, max);
    ax_buffer_pool_t *pool = NULL;

    cr_assert_eq(ax_buffer_pool_create(&cfg, &pool), AX_OK);
    cr_assert_not_null(pool);
    return pool;
}

/* Compare every stats field at once, so each step of a test pins the whole
 * picture a user (or a monitoring page) would see. */
static void expect_stats(ax_buffer_pool_t *pool, size_t allocated, size_t free_, size_t active,
                         size_t leased, uint64_t exhausted)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(pool, &st);
    cr_assert_eq(st.chunks_allocated, allocated, "allocated %zu != %zu", st.chunks_allocated,
                 allocated);
    cr_assert_eq(st.chunks_free, free_, "free %zu != %zu", st.chunks_free, free_);
    cr_assert_eq(st.chunks_active, active, "active %zu != %zu", st.chunks_active, active);
    cr_assert_eq(st.chunks_leased, leased, "leased %zu != %zu", st.chunks_leased, leased);
    cr_assert_eq(st.bytes_allocated, allocated * CHUNK);
    cr_assert_eq(st.exhausted, exhausted, "exhausted %llu != %llu",
                 (unsigned long long)st.exhausted, (unsigned long long)exhausted);
}

Test(pool, create_preallocates_initial_chunks)
{
    ax_buffer_pool_t *pool = make_pool(2, 4);

    expect_stats(pool, 2, 2, 0, 0, 0);
    cr_assert_eq(ax_buffer_pool_config(pool)->chunk_size, CHUNK);
    cr_assert_eq(ax_buffer_pool_config(pool)->max_chunk_count, 4);
    ax_buffer_pool_destroy(&pool);
    cr_assert_null(pool);
}

Test(pool, chunks_are_allocated_on_demand_up_to_max)
{
    ax_buffer_pool_t *pool = make_pool(0, 3);
    ax_chunk_t *c[3], *extra = NULL;

    expect_stats(pool, 0, 0, 0, 0, 0);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(ax_buffer_pool_get(pool, &c[i]), AX_OK);
        cr_assert_eq(ax_chunk_size(c[i]), CHUNK);
        expect_stats(pool, i + 1, 0, i + 1, 0, 0);
    }
    cr_assert_eq(ax_buffer_pool_get(pool, &extra), AX_ENOBUFS);
    cr_assert_null(extra);
    expect_stats(pool, 3, 0, 3, 0, 1);
    for (size_t i = 0; i < 3; i++)
        ax_buffer_pool_put(pool, &c[i]);
    expect_stats(pool, 3, 3, 0, 0, 1);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, chunk_memory_is_writable_over_its_whole_size)
{
    ax_buffer_pool_t *pool = make_pool(1, 1);
    ax_chunk_t *c;

    cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
    memset(ax_chunk_data(c), 0xA5, ax_chunk_size(c));
    cr_assert_eq(ax_chunk_data(c)[CHUNK - 1], 0xA5);
    ax_buffer_pool_put(pool, &c);
    cr_assert_null(c);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, put_chunk_without_leases_is_reused_at_once)
{
    ax_buffer_pool_t *pool = make_pool(1, 1);
    ax_chunk_t *c, *again;

    cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
    ax_chunk_t *first = c;

    ax_buffer_pool_put(pool, &c);
    expect_stats(pool, 1, 1, 0, 0, 0);
    cr_assert_eq(ax_buffer_pool_get(pool, &again), AX_OK);
    cr_assert_eq(again, first);
    ax_buffer_pool_put(pool, &again);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, chunk_is_reclaimed_only_after_every_lease_is_released)
{
    ax_buffer_pool_t *pool = make_pool(1, 1);
    ax_chunk_t *c, *again = NULL;
    ax_lease_t a, b;

    cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
    ax_chunk_t *first = c;

    cr_assert(ax_chunk_unleased(c));
    cr_assert_eq(ax_chunk_lease(c, 0, 10, &a), AX_OK);
    cr_assert_eq(ax_chunk_lease(c, 10, 20, &b), AX_OK);
    cr_assert_not(ax_chunk_unleased(c));
    ax_buffer_pool_put(pool, &c);
    expect_stats(pool, 1, 0, 0, 1, 0);

    cr_assert_eq(ax_buffer_pool_get(pool, &again), AX_ENOBUFS);
    ax_lease_release(&a);
    expect_stats(pool, 1, 0, 0, 1, 1);
    cr_assert_eq(ax_buffer_pool_get(pool, &again), AX_ENOBUFS);
    expect_stats(pool, 1, 0, 0, 1, 2);

    ax_lease_release(&b);
    expect_stats(pool, 1, 1, 0, 0, 2);
    cr_assert_eq(ax_buffer_pool_get(pool, &again), AX_OK);
    cr_assert_eq(again, first);
    expect_stats(pool, 1, 0, 1, 0, 2);
    ax_buffer_pool_put(pool, &again);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, exhaustion_recovers_once_leases_are_released)
{
    ax_buffer_pool_t *pool = make_pool(2, 4);
    ax_chunk_t *c[4], *more = NULL;
    ax_lease_t l[4];

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ax_buffer_pool_get(pool, &c[i]), AX_OK);
        cr_assert_eq(ax_chunk_lease(c[i], 0, CHUNK, &l[i]), AX_OK);
        ax_buffer_pool_put(pool, &c[i]);
    }
    expect_stats(pool, 4, 0, 0, 4, 0);
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq(ax_buffer_pool_get(pool, &more), AX_ENOBUFS);
        expect_stats(pool, 4, 0, 0, 4, i);
    }
    ax_lease_release(&l[2]);
    expect_stats(pool, 4, 1, 0, 3, 3);
    cr_assert_eq(ax_buffer_pool_get(pool, &more), AX_OK);
    expect_stats(pool, 4, 0, 1, 3, 3);
    ax_buffer_pool_put(pool, &more);
    for (size_t i = 0; i < 4; i++)
        ax_lease_release(&l[i]);
    expect_stats(pool, 4, 4, 0, 0, 3);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, oldest_reclaimable_chunk_is_handed_out_first)
{
    ax_buffer_pool_t *pool = make_pool(4, 4);
    ax_chunk_t *c[4], *order[4], *got = NULL;
    ax_lease_t l[4];

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ax_buffer_pool_get(pool, &c[i]), AX_OK);
        order[i] = c[i];
        cr_assert_eq(ax_chunk_lease(c[i], 0, 1, &l[i]), AX_OK);
    }
    for (size_t i = 0; i < 4; i++)
        ax_buffer_pool_put(pool, &c[i]); /* retired in order 0, 1, 2, 3 */
    ax_lease_release(&l[3]);
    ax_lease_release(&l[1]);
    cr_assert_eq(ax_buffer_pool_get(pool, &got), AX_OK);
    cr_assert_eq(got, order[1]);
    ax_buffer_pool_put(pool, &got);
    /* order[1] went to the back of the retired queue: order[3] is older. */
    cr_assert_eq(ax_buffer_pool_get(pool, &got), AX_OK);
    cr_assert_eq(got, order[3]);
    ax_lease_release(&l[0]);
    ax_lease_release(&l[2]);
    ax_buffer_pool_put(pool, &got);
    ax_buffer_pool_destroy(&pool);
}

Test(pool, chunk_lease_checks_its_range)
{
    ax_buffer_pool_t *pool = make_pool(1, 1);
    ax_chunk_t *c;
    ax_lease_t l = AX_LEASE_EMPTY;

    cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
    cr_assert_eq(ax_chunk_lease(c, CHUNK + 1, 0, &l), AX_EINVAL);
    cr_assert_eq(ax_chunk_lease(c, 1, CHUNK, &l), AX_EINVAL);
    cr_assert_eq(ax_chunk_lease(c, 0, SIZE_MAX, &l), AX_EINVAL);
    cr_assert_eq(ax_lease_len(&l), 0);
    cr_assert(ax_chunk_unleased(c));

    cr_assert_eq(ax_chunk_lease(c, CHUNK, 0, &l), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&l), 0, "a zero-length lease holds nothing");
    cr_assert(ax_chunk_unleased(c));

    cr_assert_eq(ax_chunk_lease(c, CHUNK - 1, 1, &l), AX_OK);
    cr_assert_eq(ax_lease_data(&l), ax_chunk_data(c) + CHUNK - 1);
    ax_lease_release(&l);
    ax_buffer_pool_put(pool, &c);
    ax_buffer_pool_destroy(&pool);
}

/* ---- destroy with outstanding leases ---------------------------------- */

struct late_release {
    ax_lease_t leases[3];
    unsigned char expect[3];
    int bytes_ok;
};

static void *release_later(void *arg)
{
    struct late_release *lr = arg;

    lr->bytes_ok = 1;
    for (size_t i = 0; i < 3; i++) {
        const unsigned char *p = ax_lease_data(&lr->leases[i]);

        for (size_t k = 0; k < ax_lease_len(&lr->leases[i]); k++)
            if (p[k] != lr->expect[i])
                lr->bytes_ok = 0;
        ax_lease_release(&lr->leases[i]);
    }
    return NULL;
}

Test(pool, destroy_with_outstanding_leases_defers_freeing_to_last_release)
{
    ax_buffer_pool_t *pool = make_pool(2, 4);
    struct late_release lr = {.expect = {0x11, 0x22, 0x33}};
    ax_chunk_t *retired, *active, *unused;
    pthread_t t;

    /* One retired chunk with two leases, one chunk still handed out with a
     * lease, one chunk with no lease at all. */
    cr_assert_eq(ax_buffer_pool_get(pool, &retired), AX_OK);
    memset(ax_chunk_data(retired), 0x11, 100);
    memset(ax_chunk_data(retired) + 100, 0x22, 100);
    cr_assert_eq(ax_chunk_lease(retired, 0, 100, &lr.leases[0]), AX_OK);
    cr_assert_eq(ax_chunk_lease(retired, 100, 100, &lr.leases[1]), AX_OK);
    ax_buffer_pool_put(pool, &retired);
    cr_assert_eq(ax_buffer_pool_get(pool, &active), AX_OK);
    memset(ax_chunk_data(active), 0x33, 50);
    cr_assert_eq(ax_chunk_lease(active, 0, 50, &lr.leases[2]), AX_OK);
    cr_assert_eq(ax_buffer_pool_get(pool, &unused), AX_OK);
    ax_buffer_pool_put(pool, &unused);

    ax_buffer_pool_destroy(&pool);
    cr_assert_null(pool);
    /* The leases outlive their pool; the last release frees each chunk. */
    cr_assert_eq(pthread_create(&t, NULL, release_later, &lr), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert(lr.bytes_ok, "leased bytes changed after the pool was destroyed");
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(ax_lease_slice_count(&lr.leases[i]), 0);
}

Test(pool, destroy_null_is_harmless)
{
    ax_buffer_pool_t *pool = NULL;

    ax_buffer_pool_destroy(&pool);
    ax_buffer_pool_destroy(NULL);
}

/* After a burst the pool gives back free chunks down to `keep`, at most
 * `most` per call; a chunk with a lease, or handed out, is never freed. */
Test(pool, trim_frees_only_free_chunks_down_to_keep)
{
    ax_buffer_pool_t *pool = make_pool(1, 6);
    ax_chunk_t *c[6];
    ax_lease_t held;
    ax_buffer_pool_stats_t st;

    for (int i = 0; i < 6; i++)
        cr_assert_eq(ax_buffer_pool_get(pool, &c[i]), AX_OK);
    cr_assert_eq(ax_chunk_lease(c[0], 0, 16, &held), AX_OK);
    cr_assert_eq(ax_buffer_pool_trim(pool, 1, 10), 0, "every chunk is handed out");
    for (int i = 0; i < 5; i++)
        ax_buffer_pool_put(pool, &c[i]); /* c[0] keeps a lease; c[5] stays out */
    cr_assert_eq(ax_buffer_pool_trim(pool, 1, 2), 2, "at most two per call");
    cr_assert_eq(ax_buffer_pool_trim(pool, 1, 10), 2, "the other two free ones");
    ax_buffer_pool_stats(pool, &st);
    cr_assert_eq(st.chunks_allocated, 2, "the leased chunk and the one handed out remain");
    cr_assert_eq(st.chunks_leased, 1);
    ax_lease_release(&held);
    cr_assert_eq(ax_buffer_pool_trim(pool, 1, 10), 1, "down to keep once the lease is gone");
    ax_buffer_pool_stats(pool, &st);
    cr_assert_eq(st.chunks_allocated, 1);
    ax_buffer_pool_put(pool, &c[5]);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ax_buffer_pool_get(pool, &c[i]), AX_OK, "the pool grows again after a trim");
    for (int i = 0; i < 6; i++)
        ax_buffer_pool_put(pool, &c[i]);
    ax_buffer_pool_destroy(&pool);
}
