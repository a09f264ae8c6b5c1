/* EncodeBuffer: byte-exact round trips, where messages start, relocation,
 * chaining, reserved headers, msgpack packing and rollback on failure. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h> /* to pack into ax_encode_packer() */

#include "axon/buffers.h"

#define CHUNK 1024
#define MIN_FREE 64

/* The usual encoder has CHUNK-byte chunks and MIN_FREE; the small pools
 * the exhaustion tests use have 256-byte chunks and a minimum of 16. */
static ax_buffer_config_t config(size_t chunk, size_t initial, size_t max)
{
    return (ax_buffer_config_t){
        .chunk_size = chunk,
        .initial_chunk_count = initial,
        .max_chunk_count = max,
        .encode_buf_min_free_space = chunk == CHUNK ? MIN_FREE : 16,
    };
}

static ax_encode_buffer_t *make_encoder_with(ax_buffer_config_t cfg)
{
    ax_encode_buffer_t *eb = NULL;

    cr_assert_eq(ax_encode_buffer_create(&cfg, &eb), AX_OK);
    cr_assert_not_null(eb);
    return eb;
}

static ax_encode_buffer_t *make_encoder(void)
{
    return make_encoder_with(config(CHUNK, 2, 64));
}

static void fill(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
}

/* One message of n bytes, written `piece` bytes at a time (all at once
 * when piece is 0). */
static ax_lease_t encode(ax_encode_buffer_t *eb, const unsigned char *src, size_t n, size_t piece)
{
    ax_lease_t l = AX_LEASE_EMPTY;

    if (piece == 0)
        piece = n ? n : 1;
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;

        cr_assert_eq(ax_encode_write(eb, src + off, k), AX_OK);
    }
    cr_assert_eq(ax_encode_len(eb), n);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    return l;
}

/* A message of n fresh pattern bytes; the pattern is checked later with
 * expect_bytes(). */
static ax_lease_t encode_n(ax_encode_buffer_t *eb, size_t n, unsigned seed)
{
    unsigned char *src = malloc(n + 1);
    ax_lease_t l;

    fill(src, n, seed);
    l = encode(eb, src, n, 0);
    free(src);
    return l;
}

static void expect_bytes(const ax_lease_t *l, size_t n, unsigned seed)
{
    unsigned char *want = malloc(n + 1), *got = malloc(n + 1);

    fill(want, n, seed);
    cr_assert_eq(ax_lease_len(l), n);
    cr_assert_eq(ax_lease_copy_out(l, 0, got, n), n);
    cr_assert_eq(memcmp(got, want, n), 0, "bytes of a %zu-byte message differ", n);
    free(want);
    free(got);
}

/* Where the previous message ended: a message that starts here continued
 * in the same chunk. */
static const unsigned char *end_of(const ax_lease_t *l)
{
    return (const unsigned char *)ax_lease_data(l) + ax_lease_len(l);
}

static ax_buffer_pool_stats_t stats_of(ax_encode_buffer_t *eb)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(ax_encode_buffer_pool(eb), &st);
    return st;
}

/* Every chunk count is as it was before (the exhausted counter aside). */
static void expect_same_stats(ax_encode_buffer_t *eb, const ax_buffer_pool_stats_t *before)
{
    ax_buffer_pool_stats_t now = stats_of(eb);

    cr_assert_eq(now.chunks_allocated, before->chunks_allocated);
    cr_assert_eq(now.chunks_free, before->chunks_free);
    cr_assert_eq(now.chunks_active, before->chunks_active);
    cr_assert_eq(now.chunks_leased, before->chunks_leased);
    cr_assert_eq(now.bytes_allocated, before->bytes_allocated);
}

/* ---- round trips and chaining ------------------------------------------ */

Test(encode, round_trip_sizes_from_a_fresh_chunk)
{
    static const size_t sizes[] = {0, 1, MIN_FREE - 1, MIN_FREE, MIN_FREE + 1, CHUNK, CHUNK + 1,
                                   5 * CHUNK};
    static const size_t pieces[] = {0, 1, 7, 500};

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            ax_encode_buffer_t *eb = make_encoder();
            size_t n = sizes[s];
            unsigned char *src = malloc(n + 1);
            ax_lease_t l;

            fill(src, n, (unsigned)(n + p));
            l = encode(eb, src, n, pieces[p]);
            expect_bytes(&l, n, (unsigned)(n + p));
            /* From the front of a chunk a message chains only when it is
             * larger than a chunk, and then over whole chunks. */
            cr_assert_eq(ax_lease_slice_count(&l), (n + CHUNK - 1) / CHUNK, "size %zu piece %zu",
                         n, pieces[p]);
            ax_lease_release(&l);
            free(src);
            ax_encode_buffer_destroy(&eb);
        }
    }
}

/* Small writes are copied inline by size class (1-3, 4-7, 8-15, 16-31,
 * 32-128 bytes, then memcpy): every size, at every alignment the previous
 * pieces leave, lands byte for byte, and messages follow each other intact. */
Test(encode, writes_of_every_small_size_land_byte_for_byte)
{
    ax_encode_buffer_t *eb = make_encoder();
    unsigned char src[3 * 200 + 5];

    for (size_t piece = 1; piece <= 200; piece++) {
        size_t n = 3 * piece + piece % 5;
        ax_lease_t l;

        fill(src, n, (unsigned)piece);
        l = encode(eb, src, n, piece);
        expect_bytes(&l, n, (unsigned)piece);
        ax_lease_release(&l);
    }
    ax_encode_buffer_destroy(&eb);
}

Test(encode, large_message_chains_over_whole_chunks)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = encode_n(eb, 5 * CHUNK, 5);
    struct iovec iov[8];

    cr_assert_eq(ax_lease_iovec(&l, 0, iov, 8), 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(iov[i].iov_len, CHUNK);
    expect_bytes(&l, 5 * CHUNK, 5);
    cr_assert_eq(stats_of(eb).chunks_leased, 4);
    cr_assert_eq(stats_of(eb).chunks_active, 1);
    ax_lease_release(&l);
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

/* A held message that leaves exactly `left` bytes in the active chunk. */
static ax_lease_t leave_space(ax_encode_buffer_t *eb, size_t left)
{
    return encode_n(eb, CHUNK - left, 99);
}

static void expect_start(size_t left, size_t hint, int same_chunk)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t first = leave_space(eb, left), second = AX_LEASE_EMPTY;

    cr_assert_eq(ax_encode_begin(eb, hint), AX_OK);
    cr_assert_eq(ax_encode_write(eb, "x", 1), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &second), AX_OK);
    if (same_chunk) {
        cr_assert_eq(ax_lease_data(&second), end_of(&first), "left %zu hint %zu", left, hint);
        cr_assert_eq(stats_of(eb).chunks_leased, 0);
    } else {
        cr_assert_neq(ax_lease_data(&second), end_of(&first), "left %zu hint %zu", left, hint);
        cr_assert_eq(stats_of(eb).chunks_leased, 1, "the full chunk is retired");
    }
    expect_bytes(&first, CHUNK - left, 99);
    ax_lease_release(&first);
    ax_lease_release(&second);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, message_starts_in_a_fresh_chunk_below_min_free_space)
{
    expect_start(MIN_FREE - 1, 0, 0);
    expect_start(1, 0, 0);
}

Test(encode, message_starts_in_the_active_chunk_at_or_above_min_free_space)
{
    expect_start(MIN_FREE, 0, 1);
    expect_start(MIN_FREE + 1, 0, 1);
}

Test(encode, size_hint_that_does_not_fit_starts_a_fresh_chunk)
{
    expect_start(200, 200, 1);
    expect_start(200, 201, 0);
    /* A hint larger than a chunk cannot be honoured by any chunk. */
    expect_start(200, 10 * CHUNK, 1);
}

Test(encode, message_that_fills_the_space_left_exactly_stays_in_place)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t first = leave_space(eb, MIN_FREE), second = encode_n(eb, MIN_FREE, 2);

    cr_assert_eq(ax_lease_slice_count(&second), 1);
    cr_assert_eq(ax_lease_data(&second), end_of(&first));
    expect_bytes(&second, MIN_FREE, 2);
    ax_lease_release(&first);
    ax_lease_release(&second);
    ax_encode_buffer_destroy(&eb);
}

/* A message that fits in a chunk but not in the space left is moved whole
 * to a fresh chunk, however it was written. */
Test(encode, message_outgrowing_the_space_left_is_relocated_contiguous)
{
    static const size_t sizes[] = {MIN_FREE + 1, 500, CHUNK};
    static const size_t pieces[] = {0, 1, 13};

    for (size_t s = 0; s < 3; s++) {
        for (size_t p = 0; p < 3; p++) {
            ax_encode_buffer_t *eb = make_encoder();
            ax_lease_t first = leave_space(eb, MIN_FREE), second;
            unsigned char *src = malloc(sizes[s]);

            fill(src, sizes[s], 3);
            second = encode(eb, src, sizes[s], pieces[p]);
            cr_assert_eq(ax_lease_slice_count(&second), 1, "size %zu piece %zu", sizes[s],
                         pieces[p]);
            cr_assert_neq(ax_lease_data(&second), end_of(&first));
            expect_bytes(&second, sizes[s], 3);
            expect_bytes(&first, CHUNK - MIN_FREE, 99);
            cr_assert_eq(stats_of(eb).chunks_leased, 1, "the old chunk is retired");
            ax_lease_release(&first);
            ax_lease_release(&second);
            free(src);
            ax_encode_buffer_destroy(&eb);
        }
    }
}

/* Larger than a chunk and started mid-chunk: a chain, whose first slice is
 * the space that was left when written at once, or a whole chunk after a
 * relocation when written in small pieces. */
Test(encode, message_larger_than_a_chunk_chains_from_mid_chunk)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t first = leave_space(eb, MIN_FREE), big = encode_n(eb, CHUNK + 1, 4);
    unsigned char src[CHUNK + 1];
    struct iovec iov[4];

    cr_assert_eq(ax_lease_iovec(&big, 0, iov, 4), 2);
    cr_assert_eq(iov[0].iov_base, end_of(&first));
    cr_assert_eq(iov[0].iov_len, MIN_FREE);
    cr_assert_eq(iov[1].iov_len, CHUNK + 1 - MIN_FREE);
    expect_bytes(&big, CHUNK + 1, 4);
    ax_lease_release(&big);
    ax_lease_release(&first);

    first = leave_space(eb, MIN_FREE);
    fill(src, sizeof src, 4);
    big = encode(eb, src, sizeof src, 8);
    cr_assert_eq(ax_lease_iovec(&big, 0, iov, 4), 2);
    cr_assert_eq(iov[0].iov_len, CHUNK);
    cr_assert_eq(iov[1].iov_len, 1);
    expect_bytes(&big, CHUNK + 1, 4);
    ax_lease_release(&first);

    /* The previous message holds the first byte of the active chunk. */
    first = big;
    big = encode_n(eb, 5 * CHUNK, 6);
    cr_assert_eq(ax_lease_iovec(&big, 0, iov, 1), 1);
    cr_assert_eq(iov[0].iov_len, CHUNK - 1);
    cr_assert_eq(ax_lease_slice_count(&big), 6);
    expect_bytes(&big, 5 * CHUNK, 6);
    ax_lease_release(&big);
    ax_lease_release(&first);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, many_messages_share_a_chunk_back_to_back)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l[10];

    for (unsigned i = 0; i < 10; i++) {
        l[i] = encode_n(eb, 90, i);
        if (i > 0)
            cr_assert_eq(ax_lease_data(&l[i]), end_of(&l[i - 1]));
    }
    for (unsigned i = 0; i < 10; i++) {
        expect_bytes(&l[i], 90, i);
        ax_lease_release(&l[i]);
    }
    ax_encode_buffer_destroy(&eb);
}

/* More leases on one chunk than the encoder takes references for at once
 * (buffers/chunk.h, AX__REF_STOCK): the chunk is written over only once
 * the last of them is released, and every one keeps its bytes till then. */
Test(encode, a_chunk_with_hundreds_of_leases_is_reused_only_after_the_last)
{
    ax_encode_buffer_t *eb = make_encoder_with(config(64 * 1024, 2, 64));
    enum { N = 300 };
    ax_lease_t l[N], next;
    const unsigned char *first, *last_end;

    for (unsigned i = 0; i < N; i++)
        l[i] = encode_n(eb, 8, i);
    first = ax_lease_data(&l[0]);
    for (unsigned i = 1; i < N; i++)
        cr_assert_eq(ax_lease_data(&l[i]), end_of(&l[i - 1]), "message %u not back to back", i);
    last_end = end_of(&l[N - 1]);
    /* Every lease but one released, the one in the middle kept: the next
     * message goes after the others, not over them. */
    for (unsigned i = 0; i < N; i++)
        if (i != N / 2)
            ax_lease_release(&l[i]);
    next = encode_n(eb, 8, 1000);
    cr_assert_eq(ax_lease_data(&next), last_end, "written over a chunk still leased");
    expect_bytes(&l[N / 2], 8, N / 2);
    ax_lease_release(&l[N / 2]);
    ax_lease_release(&next);
    /* Now nothing is leased: the chunk is written over from its start. */
    next = encode_n(eb, 8, 1001);
    cr_assert_eq(ax_lease_data(&next), first, "a chunk with no lease left was not reused");
    ax_lease_release(&next);
    cr_assert_eq(stats_of(eb).chunks_allocated, 2);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, released_chunk_is_written_over_instead_of_growing_the_pool)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_buffer_pool_stats_t st;

    for (unsigned i = 0; i < 20000; i++) {
        ax_lease_t l = encode_n(eb, 1 + i % 700, i);

        expect_bytes(&l, 1 + i % 700, i);
        ax_lease_release(&l);
    }
    st = stats_of(eb);
    cr_assert_eq(st.chunks_allocated, 2);
    cr_assert_eq(st.exhausted, 0);
    cr_assert_eq(st.chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, leases_outlive_the_encoder)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t small = encode_n(eb, 10, 1), big = encode_n(eb, 3 * CHUNK, 2);

    ax_encode_buffer_destroy(&eb);
    cr_assert_null(eb);
    expect_bytes(&small, 10, 1);
    expect_bytes(&big, 3 * CHUNK, 2);
    ax_lease_release(&big);
    ax_lease_release(&small);
}

/* ---- msgpack ----------------------------------------------------------- */

/* Pack {"seq": seq, "data": <bin of n bytes>} through the encoder's packer. */
static ax_lease_t pack_record(ax_encode_buffer_t *eb, uint64_t seq, size_t n)
{
    msgpack_packer *pk = ax_encode_packer(eb);
    unsigned char *data = malloc(n + 1);
    ax_lease_t l = AX_LEASE_EMPTY;

    fill(data, n, (unsigned)seq);
    cr_assert_eq(ax_encode_begin(eb, n + 32), AX_OK);
    cr_assert_eq(msgpack_pack_map(pk, 2), 0);
    cr_assert_eq(msgpack_pack_str_with_body(pk, "seq", 3), 0);
    cr_assert_eq(msgpack_pack_uint64(pk, seq), 0);
    cr_assert_eq(msgpack_pack_str_with_body(pk, "data", 4), 0);
    cr_assert_eq(msgpack_pack_bin_with_body(pk, data, n), 0);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    free(data);
    return l;
}

/* The lease holds exactly one msgpack object, the record pack_record()
 * made, and nothing after it. */
static void expect_record(const ax_lease_t *l, uint64_t seq, size_t n)
{
    size_t len = ax_lease_len(l), off = 0;
    char *buf = malloc(len + 1);
    unsigned char *want = malloc(n + 1);
    msgpack_unpacked up;
    msgpack_object_map *map;

    cr_assert_eq(ax_lease_copy_out(l, 0, buf, len), len);
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len, "trailing bytes after the record");
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_MAP);
    map = &up.data.via.map;
    cr_assert_eq(map->size, 2);
    cr_assert_eq(map->ptr[0].key.via.str.size, 3);
    cr_assert_eq(memcmp(map->ptr[0].key.via.str.ptr, "seq", 3), 0);
    cr_assert_eq(map->ptr[0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(map->ptr[0].val.via.u64, seq);
    cr_assert_eq(map->ptr[1].val.type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(map->ptr[1].val.via.bin.size, n);
    fill(want, n, (unsigned)seq);
    cr_assert_eq(memcmp(map->ptr[1].val.via.bin.ptr, want, n), 0);
    msgpack_unpacked_destroy(&up);
    free(want);
    free(buf);
}

Test(encode, msgpack_records_round_trip)
{
    ax_encode_buffer_t *eb = make_encoder();
    static const size_t sizes[] = {0, 1, MIN_FREE - 1, MIN_FREE, MIN_FREE + 1, CHUNK - 20,
                                   CHUNK, 5 * CHUNK};

    for (uint64_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ax_lease_t l = pack_record(eb, i, sizes[i]);

        expect_record(&l, i, sizes[i]);
        ax_lease_release(&l);
    }
    ax_encode_buffer_destroy(&eb);
}

Test(encode, msgpack_stream_of_mixed_sizes_with_held_leases)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t held[64];
    size_t sizes[64];
    unsigned seed = 42;

    for (int round = 0; round < 20; round++) {
        for (uint64_t i = 0; i < 64; i++) {
            sizes[i] = (size_t)rand_r(&seed) % (i % 8 == 0 ? 3 * CHUNK : 200);
            held[i] = pack_record(eb, i, sizes[i]);
        }
        for (uint64_t i = 0; i < 64; i++) {
            expect_record(&held[i], i, sizes[i]);
            ax_lease_release(&held[i]);
        }
    }
    cr_assert_eq(stats_of(eb).chunks_leased, 0);
    ax_encode_buffer_destroy(&eb);
}

/* ---- reserved headers ------------------------------------------------- */

/* begin, reserve an 8-byte header, pack a bin body of n bytes, then
 * back-fill the header with the body length (big-endian) and a tag. */
static ax_lease_t framed(ax_encode_buffer_t *eb, size_t n, unsigned seed)
{
    unsigned char *body = malloc(n + 1), hdr[8];
    size_t mark = SIZE_MAX, body_len;
    ax_lease_t l = AX_LEASE_EMPTY;

    fill(body, n, seed);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, 8, &mark), AX_OK);
    cr_assert_eq(mark, 0);
    cr_assert_eq(msgpack_pack_bin_with_body(ax_encode_packer(eb), body, n), 0);
    body_len = ax_encode_len(eb) - 8;
    hdr[0] = (unsigned char)(body_len >> 24);
    hdr[1] = (unsigned char)(body_len >> 16);
    hdr[2] = (unsigned char)(body_len >> 8);
    hdr[3] = (unsigned char)body_len;
    memcpy(hdr + 4, "AXON", 4);
    cr_assert_eq(ax_encode_fill(eb, mark, hdr, 8), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    free(body);
    return l;
}

static void expect_framed(const ax_lease_t *l, size_t n, unsigned seed)
{
    size_t len = ax_lease_len(l), off = 0, body_len;
    unsigned char *buf = malloc(len), *want = malloc(n + 1);
    msgpack_unpacked up;

    cr_assert_eq(ax_lease_copy_out(l, 0, buf, len), len);
    body_len = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
    cr_assert_eq(body_len, len - 8);
    cr_assert_eq(memcmp(buf + 4, "AXON", 4), 0);
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, (char *)buf + 8, len - 8, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len - 8);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(up.data.via.bin.size, n);
    fill(want, n, seed);
    cr_assert_eq(memcmp(up.data.via.bin.ptr, want, n), 0);
    msgpack_unpacked_destroy(&up);
    free(want);
    free(buf);
}

Test(encode, reserved_header_is_back_filled)
{
    ax_encode_buffer_t *eb = make_encoder();
    static const size_t sizes[] = {0, 1, 100, CHUNK - 20, CHUNK, 3 * CHUNK};

    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ax_lease_t l = framed(eb, sizes[i], i);

        expect_framed(&l, sizes[i], i);
        ax_lease_release(&l);
    }
    ax_encode_buffer_destroy(&eb);
}

Test(encode, reservation_that_does_not_fit_relocates_the_message)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t first = leave_space(eb, MIN_FREE), l = AX_LEASE_EMPTY;
    unsigned char head[MIN_FREE - 4];
    size_t mark = 0;

    fill(head, sizeof head, 7);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, head, sizeof head), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, 8, &mark), AX_OK); /* 4 bytes were left */
    cr_assert_eq(mark, sizeof head);
    cr_assert_eq(ax_encode_fill(eb, mark, "ABCDEFGH", 8), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&l), 1);
    cr_assert_neq(ax_lease_data(&l), end_of(&first));
    cr_assert_eq(memcmp(ax_lease_data(&l), head, sizeof head), 0);
    cr_assert_eq(memcmp((const char *)ax_lease_data(&l) + sizeof head, "ABCDEFGH", 8), 0);
    ax_lease_release(&first);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, reservation_in_a_chained_message_never_straddles_chunks)
{
    ax_encode_buffer_t *eb = make_encoder();
    unsigned char body[CHUNK - 4], out[CHUNK + 4];
    ax_lease_t l = AX_LEASE_EMPTY;
    size_t mark = 0;

    fill(body, sizeof body, 8);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, body, sizeof body), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, 8, &mark), AX_OK);
    cr_assert_eq(ax_encode_fill(eb, mark, "12345678", 8), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    cr_assert_eq(ax_lease_slice_count(&l), 2);
    cr_assert_eq(ax_lease_copy_out(&l, 0, out, sizeof out), sizeof out);
    cr_assert_eq(memcmp(out, body, sizeof body), 0);
    cr_assert_eq(memcmp(out + sizeof body, "12345678", 8), 0);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, reserve_larger_than_a_chunk_and_fill_outside_are_rejected)
{
    ax_encode_buffer_t *eb = make_encoder();
    size_t mark = 0;
    ax_lease_t l = AX_LEASE_EMPTY;

    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, CHUNK + 1, &mark), AX_EINVAL);
    ax_encode_abort(eb);

    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, 4, &mark), AX_OK);
    cr_assert_eq(ax_encode_fill(eb, mark, "12345", 5), AX_EINVAL);
    cr_assert_eq(ax_encode_fill(eb, mark + 1, "1234", 4), AX_EINVAL);
    cr_assert_eq(ax_encode_fill(eb, mark, "1234", 4), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    cr_assert_eq(memcmp(ax_lease_data(&l), "1234", 4), 0);
    ax_lease_release(&l);
    ax_encode_buffer_destroy(&eb);
}

/* ---- misuse and abort ------------------------------------------------- */

Test(encode, calls_outside_a_message_return_estate)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t l = AX_LEASE_EMPTY;
    size_t mark;

    cr_assert_eq(ax_encode_write(eb, "x", 1), AX_ESTATE);
    cr_assert_eq(ax_encode_reserve(eb, 1, &mark), AX_ESTATE);
    cr_assert_eq(ax_encode_fill(eb, 0, "x", 1), AX_ESTATE);
    cr_assert_eq(ax_encode_end(eb, &l), AX_ESTATE);
    cr_assert_neq(msgpack_pack_int(ax_encode_packer(eb), 1), 0);
    cr_assert_eq(ax_encode_len(eb), 0);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_ESTATE);
    ax_encode_abort(eb);
    ax_encode_abort(eb); /* no message open: nothing to do */
    ax_encode_buffer_destroy(&eb);
}

Test(encode, abort_leaves_no_trace)
{
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t first = encode_n(eb, 100, 1), next;
    ax_buffer_pool_stats_t before = stats_of(eb);
    unsigned char big[1500]; /* spills into the one free chunk */

    fill(big, sizeof big, 0);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, big, sizeof big), AX_OK);
    ax_encode_abort(eb);
    expect_same_stats(eb, &before);
    next = encode_n(eb, 10, 2);
    cr_assert_eq(ax_lease_data(&next), end_of(&first));
    ax_lease_release(&first);
    ax_lease_release(&next);
    ax_encode_buffer_destroy(&eb);
}

/* ---- exhaustion: a failed message leaves the buffer as it was ----------- */

/* A pool of `max` 256-byte chunks, all allocated up front, holding one
 * 100-byte message: 156 bytes are left in the active chunk and the other
 * chunks (if any) are free. */
static ax_encode_buffer_t *tight_encoder(size_t max, ax_lease_t *held)
{
    ax_encode_buffer_t *eb = make_encoder_with(config(256, max, max));

    *held = encode_n(eb, 100, 77);
    return eb;
}

/* After a failed message the next one still works, starts exactly where the
 * failed one did, and the held message is intact. */
static void expect_recovered(ax_encode_buffer_t *eb, ax_lease_t *held)
{
    ax_lease_t next = encode_n(eb, 50, 78);

    cr_assert_eq(ax_lease_data(&next), end_of(held));
    expect_bytes(&next, 50, 78);
    expect_bytes(held, 100, 77);
    ax_lease_release(&next);
    ax_lease_release(held);
}

Test(encode, chained_write_that_exhausts_the_pool_rolls_back)
{
    ax_lease_t held, l = AX_LEASE_EMPTY;
    ax_encode_buffer_t *eb = tight_encoder(2, &held);
    ax_buffer_pool_stats_t before = stats_of(eb);
    unsigned char big[600];

    fill(big, sizeof big, 1);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, big, sizeof big), AX_ETOOBIG);
    cr_assert_eq(ax_encode_write(eb, big, 1), AX_ETOOBIG, "the failure is sticky");
    cr_assert_eq(ax_encode_end(eb, &l), AX_ETOOBIG);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
    expect_same_stats(eb, &before);
    cr_assert_eq(stats_of(eb).exhausted, before.exhausted + 1);
    expect_recovered(eb, &held);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, msgpack_packer_reports_exhaustion_and_end_rolls_back)
{
    ax_lease_t held, l = AX_LEASE_EMPTY;
    ax_encode_buffer_t *eb = tight_encoder(2, &held);
    ax_buffer_pool_stats_t before = stats_of(eb);
    unsigned char big[600];
    msgpack_packer *pk = ax_encode_packer(eb);

    fill(big, sizeof big, 1);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(msgpack_pack_array(pk, 2), 0);
    cr_assert_eq(msgpack_pack_bin(pk, sizeof big), 0);
    cr_assert_neq(msgpack_pack_bin_body(pk, big, sizeof big), 0);
    cr_assert_neq(msgpack_pack_nil(pk), 0);
    cr_assert_eq(ax_encode_end(eb, &l), AX_ETOOBIG);
    cr_assert_eq(ax_lease_slice_count(&l), 0);
    expect_same_stats(eb, &before);
    expect_recovered(eb, &held);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, relocation_that_finds_no_chunk_rolls_back)
{
    ax_lease_t held, l = AX_LEASE_EMPTY;
    ax_encode_buffer_t *eb = tight_encoder(1, &held);
    ax_buffer_pool_stats_t before = stats_of(eb);
    unsigned char mid[200];

    fill(mid, sizeof mid, 2);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, mid, 100), AX_OK);
    cr_assert_eq(ax_encode_write(eb, mid + 100, 100), AX_ENOBUFS);
    cr_assert_eq(ax_encode_end(eb, &l), AX_ENOBUFS);
    expect_same_stats(eb, &before);
    expect_recovered(eb, &held);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, reservation_that_finds_no_chunk_fails_the_message)
{
    ax_lease_t held, l = AX_LEASE_EMPTY;
    ax_encode_buffer_t *eb = tight_encoder(1, &held);
    size_t mark;
    unsigned char mid[150];

    fill(mid, sizeof mid, 2);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, mid, sizeof mid), AX_OK);
    cr_assert_eq(ax_encode_reserve(eb, 8, &mark), AX_ENOBUFS);
    cr_assert_eq(ax_encode_end(eb, &l), AX_ENOBUFS);
    expect_recovered(eb, &held);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, begin_fails_when_no_chunk_has_room_and_recovers_after_release)
{
    ax_encode_buffer_t *eb = make_encoder_with(config(256, 1, 1));
    ax_lease_t full = encode_n(eb, 250, 3), next;
    const void *front = ax_lease_data(&full);

    /* 6 bytes left, below the minimum of 16, and no other chunk. */
    cr_assert_eq(ax_encode_begin(eb, 0), AX_ENOBUFS);
    cr_assert_eq(stats_of(eb).exhausted, 1);
    cr_assert_eq(ax_encode_write(eb, "x", 1), AX_ESTATE, "no message is open");
    ax_lease_release(&full);
    next = encode_n(eb, 200, 4);
    cr_assert_eq(ax_lease_data(&next), front, "the released chunk is written over");
    expect_bytes(&next, 200, 4);
    ax_lease_release(&next);
    ax_encode_buffer_destroy(&eb);
}

Test(encode, failed_message_gives_back_the_chunks_it_took)
{
    ax_encode_buffer_t *eb = make_encoder_with(config(256, 1, 3));
    ax_lease_t held = encode_n(eb, 100, 77), l = AX_LEASE_EMPTY;
    ax_buffer_pool_stats_t st;
    unsigned char big[1000];

    /* Needs four chunks; the pool grows to three, then runs out: the
     * message can never fit, so the status says so (not "busy"). */
    fill(big, sizeof big, 5);
    cr_assert_eq(ax_encode_begin(eb, 0), AX_OK);
    cr_assert_eq(ax_encode_write(eb, big, sizeof big), AX_ETOOBIG);
    cr_assert_eq(ax_encode_end(eb, &l), AX_ETOOBIG);
    st = stats_of(eb);
    cr_assert_eq(st.chunks_allocated, 3);
    cr_assert_eq(st.chunks_active, 1);
    cr_assert_eq(st.chunks_free, 2, "the chunks the failed message took are free again");
    cr_assert_eq(st.chunks_leased, 0);
    expect_recovered(eb, &held);
    ax_encode_buffer_destroy(&eb);
}
