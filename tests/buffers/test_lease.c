/* ChunkLease: empty leases, clone, slice, split, iovec, copy_out, move and
 * release on another thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "axon/buffers.h"
#include "buffers/chunk.h"

#define CHUNK 256
#define CHAIN_LEN 1000 /* 4 slices of 256, 256, 256 and 232 bytes */

/* Not periodic in the chunk size, so a byte in the wrong slice shows. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)((i ^ (i >> 8)) * 131 + 17);
}

static ax_encode_buffer_t *make_encoder(void)
{
    ax_buffer_config_t cfg = {
        .chunk_size = CHUNK,
        .initial_chunk_count = 1,
        .max_chunk_count = 64,
        .encode_buf_min_free_space = 16,
    };
    ax_encode_buffer_t *eb = NULL;

    cr_assert_eq(ax_encode_buffer_create(&cfg, &eb), AX_OK);
    return eb;
}

/* A message of n pattern bytes written in one go; the encoder's first
 * message starts at the front of a chunk, so it has ceil(n / CHUNK) slices. */
static ax_lease_t encode_pattern(ax_encode_buffer_t *eb, size_t n)
{
    unsigned char buf[4096];
    ax_lease_t l = AX_LEASE_EMPTY;

    cr_assert(n <= sizeof buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(i);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, buf, n), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    return l;
}

/* The lease holds exactly pattern(first .. first + n). */
static void expect_pattern(const ax_lease_t *l, size_t first, size_t n)
{
    unsigned char buf[4096];

    cr_assert_eq(ax_lease_len(l), n);
    cr_assert_eq(ax_lease_copy_out(l, 0, buf, sizeof buf), n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(buf[i], pattern(first + i), "byte %zu", i);
}

static ax_buffer_pool_stats_t stats_of(ax_encode_buffer_t *eb)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(ax_encode_buffer_pool(eb), &st);
    return st;
}

/* A one-slice lease on [0, n) of a chunk filled with the pattern. The chunk
 * is retired at once, so the pool's stats count it as leased exactly while
 * some lease on it remains. */
static ax_lease_t plain_lease(ax_encode_buffer_t *eb, size_t n)
{
    ax_buffer_pool_t *pool = ax_encode_buffer_pool(eb);
    ax_lease_t l = AX_LEASE_EMPTY;
    ax_chunk_t *c;

    cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
    for (size_t i = 0; i < CHUNK; i++)
        ax_chunk_data(c)[i] = pattern(i);
    cr_assert_eq(ax_chunk_lease(c, 0, n, &l), AX_OK);
    ax_buffer_pool_put(pool, &c);
    return l;
}

Test(lease, empty_lease_is_inert)
{
    ax_lease_t l = AX_LEASE_EMPTY, zero;
    struct iovec iov[2];
    unsigned char b = 0x5A;

    memset(&zero, 0, sizeof zero);
    cr_assert_eq(ax_lease_len(&l), 0);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
    cr_assert_null(ax_lease_data(&l));
    cr_assert_eq(ax_lease_iovec(&l, 0, iov, 2), 0);
    cr_assert_eq(ax_lease_copy_out(&l, 0, &b, 1), 0);
    cr_assert_eq(b, 0x5A);
    ax_lease_release(&l);
    ax_lease_release(&l);
    ax_lease_release(&zero);
    ax_lease_release(NULL);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
}

Test(lease, plain_lease_exposes_its_bytes)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 100);
    struct iovec iov[1];

    cr_assert_eq(ax_lease_slice_count(&l), 1);
    cr_assert_eq(ax_lease_len(&l), 100);
    cr_assert_not_null(ax_lease_data(&l));
    cr_assert_eq(((const unsigned char *)ax_lease_data(&l))[99], pattern(99));
    cr_assert_eq(ax_lease_iovec(&l, 0, iov, 1), 1);
    cr_assert_eq(iov[0].iov_base, ax_lease_data(&l));
    cr_assert_eq(iov[0].iov_len, 100);
    expect_pattern(&l, 0, 100);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, clone_keeps_the_chunk_after_the_original_is_released)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 100), c = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_clone(&l, &c), AX_OK);
    cr_assert_eq(ax_lease_data(&c), ax_lease_data(&l), "a clone shares bytes, no copy");
    ax_lease_release(&l);
    cr_assert_eq(stats_of(eb).chunks_leased, 1);
    expect_pattern(&c, 0, 100);
    ax_lease_release(&c);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, clone_of_a_chain_has_the_same_slices)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN), c = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_slice_count(&l), 4);
    cr_assert_eq(ax_lease_clone(&l, &c), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&c), 4);
    cr_assert_null(ax_lease_data(&c), "a chained lease has no single data pointer");
    ax_lease_release(&l);
    expect_pattern(&c, 0, CHAIN_LEN);
    cr_assert_eq(stats_of(eb).chunks_leased, 3, "the chain still holds its retired chunks");
    ax_lease_release(&c);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, clone_of_empty_is_empty)
{
    ax_lease_t l = AX_LEASE_EMPTY, c;

    memset(&c, 0xFF, sizeof c);
    cr_assert_eq(ax_lease_clone(&l, &c), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&c), 0);
}

Test(lease, slice_covers_the_requested_range)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200), s = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_slice(&l, 50, 100, &s), AX_OK);
    expect_pattern(&s, 50, 100);
    expect_pattern(&l, 0, 200);
    ax_lease_release(&s);
    cr_assert_eq(ax_lease_slice(&l, 200, 0, &s), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&s), 0);
    cr_assert_eq(ax_lease_slice(&l, 0, 200, &s), AX_OK);
    expect_pattern(&s, 0, 200);
    ax_lease_release(&s);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, slice_outside_the_lease_is_rejected)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200), s = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_slice(&l, 201, 0, &s), AX_EINVAL);
    cr_assert_eq(ax_lease_slice(&l, 150, 51, &s), AX_EINVAL);
    cr_assert_eq(ax_lease_slice(&l, 1, SIZE_MAX, &s), AX_EINVAL);
    cr_assert_eq(ax_lease_slice_count(&s), 0);
    expect_pattern(&l, 0, 200);
    ax_lease_release(&l);
    cr_assert_eq(stats_of(eb).chunks_leased, 0, "a failed slice must not take a reference");
    ax_encode_buffer_destroy(&eb);
}

Test(lease, slice_of_a_chain_keeps_only_the_slices_it_needs)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN), s = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_slice(&l, 300, 100, &s), AX_OK); /* inside slice 1 */
    cr_assert_eq(ax_lease_slice_count(&s), 1);
    expect_pattern(&s, 300, 100);
    ax_lease_release(&s);

    cr_assert_eq(ax_lease_slice(&l, 250, 300, &s), AX_OK); /* slices 0 to 2 */
    cr_assert_eq(ax_lease_slice_count(&s), 3);
    expect_pattern(&s, 250, 300);
    ax_lease_release(&l);
    /* Only the three retired chunks s covers stay leased; the last chunk
     * of the chain is still the encoder's active one. */
    cr_assert_eq(stats_of(eb).chunks_leased, 3);
    cr_assert_eq(stats_of(eb).chunks_active, 1);
    expect_pattern(&s, 250, 300);
    ax_lease_release(&s);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, split_single_slice_in_the_middle)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200), tail = AX_LEASE_EMPTY;
    const unsigned char *start = ax_lease_data(&l);

    cr_assert_eq(ax_lease_split(&l, 80, &tail), AX_OK);
    expect_pattern(&l, 0, 80);
    expect_pattern(&tail, 80, 120);
    cr_assert_eq(ax_lease_data(&tail), start + 80, "a split copies nothing");
    ax_lease_release(&l);
    cr_assert_eq(stats_of(eb).chunks_leased, 1, "the tail holds its own reference");
    ax_lease_release(&tail);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, split_at_the_ends)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200), tail = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_split(&l, 200, &tail), AX_OK);
    expect_pattern(&l, 0, 200);
    cr_assert_eq(ax_lease_slice_count(&tail), 0);

    cr_assert_eq(ax_lease_split(&l, 0, &tail), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
    expect_pattern(&tail, 0, 200);
    ax_lease_release(&l);
    ax_lease_release(&tail);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, split_beyond_the_end_changes_nothing)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN), tail = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_split(&l, CHAIN_LEN + 1, &tail), AX_EINVAL);
    cr_assert_eq(ax_lease_slice_count(&l), 4);
    expect_pattern(&l, 0, CHAIN_LEN);
    cr_assert_eq(ax_lease_slice_count(&tail), 0);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, split_chain_inside_and_at_slice_boundaries)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN), tail = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_split(&l, 512, &tail), AX_OK); /* a slice boundary */
    cr_assert_eq(ax_lease_slice_count(&l), 2);
    cr_assert_eq(ax_lease_slice_count(&tail), 2);
    expect_pattern(&l, 0, 512);
    expect_pattern(&tail, 512, CHAIN_LEN - 512);
    ax_lease_release(&tail);

    cr_assert_eq(ax_lease_split(&l, 300, &tail), AX_OK); /* inside slice 1 */
    cr_assert_eq(ax_lease_slice_count(&l), 2);
    cr_assert_eq(ax_lease_slice_count(&tail), 1);
    expect_pattern(&l, 0, 300);
    expect_pattern(&tail, 300, 212);
    ax_lease_release(&l);
    ax_lease_release(&tail);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, chained_splits_cut_a_message_into_pieces)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t rest = encode_pattern(eb, CHAIN_LEN), piece[8];
    size_t at = 0, cuts[] = {1, 127, 255, 257, 400, 700, 999};
    size_t n = sizeof cuts / sizeof cuts[0];

    /* Each split of the remainder leaves one piece behind, as a reader
     * taking frames off the front of a stream would. */
    for (size_t i = 0; i < n; i++) {
        ax_lease_t tail = AX_LEASE_EMPTY;

        cr_assert_eq(ax_lease_split(&rest, cuts[i] - at, &tail), AX_OK);
        ax_lease_move(&piece[i], &rest);
        ax_lease_move(&rest, &tail);
        at = cuts[i];
    }
    ax_lease_move(&piece[n], &rest);
    at = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : CHAIN_LEN;

        expect_pattern(&piece[i], at, end - at);
        at = end;
    }
    for (size_t i = 0; i <= n; i++)
        ax_lease_release(&piece[i]);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, iovec_walks_a_chain_in_batches)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN);
    unsigned char joined[CHAIN_LEN];
    size_t first = 0, got = 0, calls = 0;
    struct iovec iov[3];

    /* The writev() loop from the header: advance first by what came back. */
    for (;;) {
        size_t n = ax_lease_iovec(&l, first, iov, 3);

        if (n == 0)
            break;
        calls++;
        for (size_t i = 0; i < n; i++) {
            cr_assert_leq(got + iov[i].iov_len, sizeof joined);
            memcpy(joined + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        first += n;
    }
    cr_assert_eq(calls, 2);
    cr_assert_eq(first, 4);
    cr_assert_eq(got, CHAIN_LEN);
    for (size_t i = 0; i < CHAIN_LEN; i++)
        cr_assert_eq(joined[i], pattern(i));
    cr_assert_eq(ax_lease_iovec(&l, 0, iov, 0), 0);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, copy_out_across_slices_and_past_the_end)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN);
    unsigned char buf[600];

    cr_assert_eq(ax_lease_copy_out(&l, 250, buf, 300), 300);
    for (size_t i = 0; i < 300; i++)
        cr_assert_eq(buf[i], pattern(250 + i));
    cr_assert_eq(ax_lease_copy_out(&l, 900, buf, 600), 100, "stops at the end of the lease");
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(buf[i], pattern(900 + i));
    cr_assert_eq(ax_lease_copy_out(&l, CHAIN_LEN, buf, 1), 0);
    cr_assert_eq(ax_lease_copy_out(&l, CHAIN_LEN + 50, buf, 1), 0);
    cr_assert_eq(ax_lease_copy_out(&l, 0, buf, 0), 0);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

/* Every length up to max_n at each offset in offs: ax_lease_copy_out of
 * the total bytes of l returns what is there, copies exactly that, and
 * writes nothing past it. */
static void check_copy_out(const ax_lease_t *l, size_t total, const size_t *offs, size_t noffs,
                           size_t max_n)
{
    unsigned char buf[CHAIN_LEN + 16];

    cr_assert_leq(max_n, CHAIN_LEN);
    for (size_t o = 0; o < noffs; o++) {
        for (size_t n = 0; n <= max_n; n++) {
            size_t left = offs[o] >= total ? 0 : total - offs[o];
            size_t want = n < left ? n : left, got;

            memset(buf, 0xEE, sizeof buf);
            got = ax_lease_copy_out(l, offs[o], buf, n);
            cr_assert_eq(got, want, "off %zu n %zu", offs[o], n);
            for (size_t i = 0; i < got; i++)
                cr_assert_eq(buf[i], pattern(offs[o] + i));
            for (size_t i = got; i < got + 16; i++)
                cr_assert_eq(buf[i], 0xEE, "off %zu n %zu: wrote byte %zu", offs[o], n, i);
        }
    }
}

Test(lease, copy_out_never_writes_past_what_it_returns)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN);
    static const size_t offs[] = {0, 1, 255, 256, 257, 511, 700, 999};

    /* Every length at every interesting offset: slice ends fall at each
     * possible distance from the end of the copy. */
    check_copy_out(&l, CHAIN_LEN, offs, sizeof offs / sizeof offs[0], 600);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

/* The same for a lease of one slice, which has a path of its own: frame
 * headers are read this way. */
Test(lease, copy_out_of_one_slice_never_writes_past_what_it_returns)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200);
    static const size_t offs[] = {0, 1, 100, 199, 200, 201};

    check_copy_out(&l, 200, offs, sizeof offs / sizeof offs[0], 256);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

/* A slice of one slice holds its own reference: the chunk stays leased
 * until the last of the two is released. */
Test(lease, slice_of_one_slice_keeps_the_chunk)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = plain_lease(eb, 200), s = AX_LEASE_EMPTY;

    cr_assert_eq(ax_lease_slice(&l, 10, 20, &s), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&s), 1);
    cr_assert_eq(ax_lease_len(&s), 20);
    ax_lease_release(&l);
    cr_assert_eq(stats_of(eb).chunks_leased, 1);
    expect_pattern(&s, 10, 20);
    ax_lease_release(&s);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(lease, move_transfers_the_reference)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_pattern(eb, CHAIN_LEN), dst = AX_LEASE_EMPTY;

    ax_lease_move(&dst, &l);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
    ax_lease_release(&l); /* empty now: must not drop dst's references */
    expect_pattern(&dst, 0, CHAIN_LEN);
    cr_assert_eq(stats_of(eb).chunks_leased, 3);
    ax_lease_release(&dst);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

/* ---- release on another thread ------------------------------------ */

static void *release_in_thread(void *arg)
{
    ax_lease_release(arg);
    return NULL;
}

Test(lease, release_on_another_thread)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t plain = plain_lease(eb, 100), chain = encode_pattern(eb, CHAIN_LEN);
    ax_lease_t keep = AX_LEASE_EMPTY;
    pthread_t t1, t2;

    cr_assert_eq(ax_lease_clone(&plain, &keep), AX_OK);
    cr_assert_eq(pthread_create(&t1, NULL, release_in_thread, &plain), 0);
    cr_assert_eq(pthread_create(&t2, NULL, release_in_thread, &chain), 0);
    cr_assert_eq(pthread_join(t1, NULL), 0);
    cr_assert_eq(pthread_join(t2, NULL), 0);
    cr_assert_eq(ax_lease_slice_count(&plain), 0);
    cr_assert_eq(ax_lease_slice_count(&chain), 0);
    expect_pattern(&keep, 0, 100);
    cr_assert_eq(stats_of(eb).chunks_leased, 1);
    ax_lease_release(&keep);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

/* ---- leases on lent memory (buffers/chunk.h, ax__lease_foreign) ---------- */

static void count_release(void *arg)
{
    (*(int *)arg)++;
}

/* A lease on memory Axon does not own reads it in place, however it is
 * cloned, sliced or chained; the lender hears once, when the last lease
 * on it is released, and not before. */
Test(lease, lent_memory_is_read_in_place_and_given_back_once_after_the_last_lease)
{
    static unsigned char lent[3000];
    int released = 0;
    ax_lease_t l, clone, part, head = AX_LEASE_EMPTY;
    ax_chunk_t *c = NULL;
    struct iovec iov[4];

    for (size_t i = 0; i < sizeof lent; i++)
        lent[i] = (unsigned char)(i * 7);
    cr_assert_eq(ax__lease_foreign(lent, sizeof lent, count_release, &released, &l), AX_OK);
    cr_assert_eq(ax_lease_data(&l), lent, "the lease reads the lender's bytes, not a copy");
    cr_assert_eq(ax_lease_len(&l), sizeof lent);
    cr_assert_eq(ax_lease_clone(&l, &clone), AX_OK);
    cr_assert_eq(ax_lease_slice(&l, 1000, 500, &part), AX_OK);
    cr_assert_eq(ax_lease_data(&part), lent + 1000);

    /* Chained behind a pooled chunk's bytes, as a frame's body. */
    {
        ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;
        ax_buffer_pool_t *pool = NULL;

        bc.chunk_size = 4096;
        cr_assert_eq(ax_buffer_pool_create(&bc, &pool), AX_OK);
        cr_assert_eq(ax_buffer_pool_get(pool, &c), AX_OK);
        memset(ax_chunk_data(c), 0xee, 16);
        cr_assert_eq(ax_chunk_lease(c, 0, 16, &head), AX_OK);
        ax_buffer_pool_put(pool, &c);
        ax_buffer_pool_destroy(&pool); /* the lease outlives it */
    }
    cr_assert_eq(ax_lease_concat(&head, &l), AX_OK);
    cr_assert_eq(ax_lease_len(&l), 0, "concat took the lent lease");
    cr_assert_eq(ax_lease_iovec(&head, 0, iov, 4), 2);
    cr_assert_eq(iov[1].iov_base, lent, "the chain's second slice is the lent memory itself");
    cr_assert_eq(iov[1].iov_len, sizeof lent);

    ax_lease_release(&clone);
    ax_lease_release(&head);
    cr_assert_eq(released, 0, "given back while a slice of it was still held");
    cr_assert_eq(memcmp(ax_lease_data(&part), lent + 1000, 500), 0);
    ax_lease_release(&part);
    cr_assert_eq(released, 1, "the lender heard %d times", released);
}

/* A loan taken back before it was shared is not given back: the lender
 * still owns its memory and is not told. Once shared, it is released. */
Test(lease, a_loan_cancelled_before_it_was_shared_calls_nothing)
{
    static unsigned char lent[64];
    int released = 0;
    ax_lease_t l, clone;

    cr_assert_eq(ax__lease_foreign(lent, sizeof lent, count_release, &released, &l), AX_OK);
    ax__lease_foreign_cancel(&l);
    cr_assert_eq(ax_lease_len(&l), 0);
    cr_assert_eq(released, 0);

    cr_assert_eq(ax__lease_foreign(lent, sizeof lent, count_release, &released, &l), AX_OK);
    cr_assert_eq(ax_lease_clone(&l, &clone), AX_OK);
    ax__lease_foreign_cancel(&l); /* shared: only this lease goes */
    cr_assert_eq(released, 0);
    ax_lease_release(&clone);
    cr_assert_eq(released, 1);
}
