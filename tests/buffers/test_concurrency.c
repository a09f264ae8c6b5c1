/* Leases released on other threads while the owner keeps writing: every
 * byte arrives intact and every chunk comes back to the pool. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "axon/buffers.h"
/* Before ck_ring.h, so that the TSan build sees ck's loads and stores. */
#include "common/ax_atomic.h"
#include <ck_ring.h>

#include <msgpack.h> /* to pack into ax_encode_packer() */

CK_RING_PROTOTYPE(lease, ax_lease_s)

#define RING_SLOTS 1024

/* One releasing thread, fed by the owner through its own SPSC ring. It
 * checks each lease with `verify` and releases it; an empty lease means
 * the owner is done. Failures are counted here and asserted on the test's
 * own thread, where Criterion can report them. */
struct releaser {
    ck_ring_t ring;
    struct ax_lease_s slots[RING_SLOTS];
    int (*verify)(struct releaser *r, const ax_lease_t *l);
    uint64_t expect;   /* the sequence number due next on this ring */
    uint64_t step;     /* how far apart this ring's sequence numbers are */
    uint64_t released;
    uint64_t bad;
    pthread_t thread;
};

static void *releaser_main(void *arg)
{
    struct releaser *r = arg;
    ax_lease_t l;

    for (;;) {
        if (!ck_ring_dequeue_spsc_lease(&r->ring, r->slots, &l)) {
            sched_yield();
            continue;
        }
        if (ax_lease_slice_count(&l) == 0)
            break;
        if (!r->verify(r, &l))
            r->bad++;
        ax_lease_release(&l);
        r->released++;
    }
    return NULL;
}

static void start_releaser(struct releaser *r, int (*verify)(struct releaser *, const ax_lease_t *),
                           uint64_t first, uint64_t step)
{
    memset(r, 0, sizeof *r);
    ck_ring_init(&r->ring, RING_SLOTS);
    r->verify = verify;
    r->expect = first;
    r->step = step;
    cr_assert_eq(pthread_create(&r->thread, NULL, releaser_main, r), 0);
}

/* Owner side: hand a lease over, waiting while the ring is full. */
static void hand_over(struct releaser *r, ax_lease_t *l)
{
    while (!ck_ring_enqueue_spsc_lease(&r->ring, r->slots, l))
        sched_yield();
    *l = AX_LEASE_EMPTY; /* the releaser owns it now */
}

static void stop_releaser(struct releaser *r)
{
    ax_lease_t done = AX_LEASE_EMPTY;

    hand_over(r, &done);
    cr_assert_eq(pthread_join(r->thread, NULL), 0);
}

/* Every chunk is back: nothing leased, and all but the chunk the owner is
 * writing into are free. */
static void expect_pool_back(ax_buffer_pool_t *pool)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(pool, &st);
    cr_assert_eq(st.chunks_leased, 0);
    cr_assert_leq(st.chunks_active, 1);
    cr_assert_eq(st.chunks_free + st.chunks_active, st.chunks_allocated);
    cr_assert_leq(st.chunks_allocated, ax_buffer_pool_config(pool)->max_chunk_count);
}

/* ---- encode on the owner, release on two other threads ------------------ */

#define MESSAGES 1000000

static unsigned char payload_byte(uint64_t seq, size_t i)
{
    return (unsigned char)(seq * 131 + i * 7);
}

static size_t payload_len(uint64_t seq)
{
    return 8 + seq % 41;
}

static uint32_t checksum(uint64_t seq, const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)seq;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* [seq, bin payload, checksum of the payload] */
static ax_status_t encode_record(ax_encode_buffer_t *eb, uint64_t seq, ax_lease_t *out)
{
    msgpack_packer *pk = ax_encode_packer(eb);
    unsigned char payload[64];
    size_t n = payload_len(seq);
    ax_status_t st;

    for (size_t i = 0; i < n; i++)
        payload[i] = payload_byte(seq, i);
    st = ax_encode_begin(eb, 0);
    if (st != AX_OK)
        return st;
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, seq);
    msgpack_pack_bin_with_body(pk, payload, n);
    msgpack_pack_uint32(pk, checksum(seq, payload, n));
    return ax_encode_end(eb, out);
}

static int verify_record(struct releaser *r, const ax_lease_t *l)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t off = 0, n;
    int ok;

    if (ax_lease_slice_count(l) != 1)
        return 0; /* small messages are never chained */
    msgpack_unpacked_init(&up);
    ok = msgpack_unpack_next(&up, ax_lease_data(l), ax_lease_len(l), &off) ==
             MSGPACK_UNPACK_SUCCESS &&
         off == ax_lease_len(l) && up.data.type == MSGPACK_OBJECT_ARRAY &&
         up.data.via.array.size == 3;
    if (ok) {
        o = up.data.via.array.ptr;
        n = payload_len(r->expect);
        ok = o[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && o[0].via.u64 == r->expect &&
             o[1].type == MSGPACK_OBJECT_BIN && o[1].via.bin.size == n &&
             o[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)o[1].via.bin.ptr[i] == payload_byte(r->expect, i);
        ok = ok && o[2].via.u64 ==
                       checksum(r->expect, (const unsigned char *)o[1].via.bin.ptr, n);
    }
    msgpack_unpacked_destroy(&up);
    r->expect += r->step;
    return ok;
}

Test(concurrency, a_million_messages_released_on_two_threads, .timeout = 300)
{
    ax_buffer_config_t cfg = {
        .chunk_size = 4096,
        .initial_chunk_count = 2,
        .max_chunk_count = 8, /* fewer bytes than the rings can hold */
        .encode_buf_min_free_space = 64,
    };
    ax_encode_buffer_t *eb = NULL;
    struct releaser *rel = calloc(2, sizeof *rel);
    uint64_t waits = 0;

    cr_assert_eq(ax_encode_buffer_create(&cfg, &eb), AX_OK);
    start_releaser(&rel[0], verify_record, 0, 2);
    start_releaser(&rel[1], verify_record, 1, 2);
    for (uint64_t seq = 0; seq < MESSAGES; seq++) {
        ax_lease_t l = AX_LEASE_EMPTY;
        ax_status_t st;

        /* The pool is small on purpose: when the releasers fall behind the
         * owner sees AX_ENOBUFS, which is backpressure, and tries again. */
        while ((st = encode_record(eb, seq, &l)) == AX_ENOBUFS) {
            waits++;
            sched_yield();
        }
        cr_assert_eq(st, AX_OK, "seq %llu: %s", (unsigned long long)seq, ax_status_name(st));
        hand_over(&rel[seq % 2], &l);
    }
    stop_releaser(&rel[0]);
    stop_releaser(&rel[1]);

    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rel[i].bad, 0, "releaser %d saw %llu corrupt messages", i,
                     (unsigned long long)rel[i].bad);
        cr_assert_eq(rel[i].released, MESSAGES / 2);
    }
    expect_pool_back(ax_encode_buffer_pool(eb));
    cr_log_info("owner waited for chunks %llu times", (unsigned long long)waits);
    ax_encode_buffer_destroy(&eb);
    free(rel);
}

/* ---- one message, two leases, released on different threads ------------ */

#define BROADCASTS 200000

Test(concurrency, clones_released_on_different_threads, .timeout = 300)
{
    ax_buffer_config_t cfg = {
        .chunk_size = 4096,
        .initial_chunk_count = 1,
        .max_chunk_count = 8,
        .encode_buf_min_free_space = 64,
    };
    ax_encode_buffer_t *eb = NULL;
    struct releaser *rel = calloc(2, sizeof *rel);

    cr_assert_eq(ax_encode_buffer_create(&cfg, &eb), AX_OK);
    /* Both threads see every message, so both expect 0, 1, 2, ... */
    start_releaser(&rel[0], verify_record, 0, 1);
    start_releaser(&rel[1], verify_record, 0, 1);
    for (uint64_t seq = 0; seq < BROADCASTS; seq++) {
        ax_lease_t l = AX_LEASE_EMPTY, copy = AX_LEASE_EMPTY;
        ax_status_t st;

        while ((st = encode_record(eb, seq, &l)) == AX_ENOBUFS)
            sched_yield();
        cr_assert_eq(st, AX_OK);
        cr_assert_eq(ax_lease_clone(&l, &copy), AX_OK);
        hand_over(&rel[0], &l);
        hand_over(&rel[1], &copy);
    }
    stop_releaser(&rel[0]);
    stop_releaser(&rel[1]);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rel[i].bad, 0);
        cr_assert_eq(rel[i].released, BROADCASTS);
    }
    expect_pool_back(ax_encode_buffer_pool(eb));
    ax_encode_buffer_destroy(&eb);
    free(rel);
}

/* ---- decode on the owner, frames released on two other threads --------- */

#define FRAMES 100000
#define FRAME_HDR 8

static size_t frame_body_len(uint64_t seq)
{
    /* Mostly small, every 50th larger than a chunk (so chained). */
    return seq % 50 == 0 ? 1500 + seq % 300 : seq % 97;
}

static int verify_frame(struct releaser *r, const ax_lease_t *l)
{
    unsigned char buf[FRAME_HDR + 2000];
    size_t n = frame_body_len(r->expect), len = ax_lease_len(l);
    int ok = len == FRAME_HDR + n && ax_lease_copy_out(l, 0, buf, len) == len;
    uint64_t seq = r->expect;

    ok = ok && buf[0] == (unsigned char)(n >> 24) && buf[1] == (unsigned char)(n >> 16) &&
         buf[2] == (unsigned char)(n >> 8) && buf[3] == (unsigned char)n;
    ok = ok && buf[4] == (unsigned char)(seq >> 24) && buf[5] == (unsigned char)(seq >> 16) &&
         buf[6] == (unsigned char)(seq >> 8) && buf[7] == (unsigned char)seq;
    for (size_t i = 0; ok && i < n; i++)
        ok = buf[FRAME_HDR + i] == payload_byte(seq, i);
    r->expect += r->step;
    return ok;
}

/* The bytes of frames [first, ...) written into out, up to cap bytes, whole
 * frames only; returns the bytes written and advances *first. */
static size_t write_frames(uint64_t *first, unsigned char *out, size_t cap)
{
    size_t at = 0;

    while (*first < FRAMES) {
        uint64_t seq = *first;
        size_t n = frame_body_len(seq);

        if (at + FRAME_HDR + n > cap)
            break;
        for (int k = 0; k < 4; k++) {
            out[at + (size_t)k] = (unsigned char)(n >> (24 - 8 * k));
            out[at + 4 + (size_t)k] = (unsigned char)(seq >> (24 - 8 * k));
        }
        for (size_t i = 0; i < n; i++)
            out[at + FRAME_HDR + i] = payload_byte(seq, i);
        at += FRAME_HDR + n;
        (*first)++;
    }
    return at;
}

Test(concurrency, decoded_frames_released_on_two_threads, .timeout = 300)
{
    ax_buffer_config_t cfg = {
        .chunk_size = 1024,
        .initial_chunk_count = 2,
        .max_chunk_count = 8,
        .encode_buf_min_free_space = 64,
    };
    ax_frame_format_t fmt = {.header_size = FRAME_HDR, .max_frame_size = FRAME_HDR + 2000};
    ax_decode_buffer_t *db = NULL;
    struct releaser *rel = calloc(2, sizeof *rel);
    unsigned char *wire = malloc(64 * 1024);
    uint64_t produced = 0, delivered = 0;
    unsigned seed = 7;

    cr_assert_eq(ax_decode_buffer_create(&cfg, &fmt, &db), AX_OK);
    start_releaser(&rel[0], verify_frame, 0, 2);
    start_releaser(&rel[1], verify_frame, 1, 2);
    while (produced < FRAMES) {
        size_t len = write_frames(&produced, wire, 64 * 1024), off = 0;

        /* Feed in random pieces, as reads from a socket would arrive; on
         * AX_ENOBUFS hand out what is ready and wait for releases. */
        while (off < len) {
            size_t n = 1 + (size_t)rand_r(&seed) % 3000, taken;
            ax_lease_t frame = AX_LEASE_EMPTY;
            ax_status_t st;

            if (n > len - off)
                n = len - off;
            st = ax_decode_buffer_feed(db, wire + off, n, &taken);
            cr_assert(st == AX_OK || st == AX_ENOBUFS, "feed: %s", ax_status_name(st));
            off += taken;
            while (ax_decode_buffer_next(db, &frame) == AX_OK) {
                hand_over(&rel[delivered % 2], &frame);
                delivered++;
            }
            if (st == AX_ENOBUFS)
                sched_yield();
        }
    }
    stop_releaser(&rel[0]);
    stop_releaser(&rel[1]);
    cr_assert_eq(delivered, FRAMES);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rel[i].bad, 0);
        cr_assert_eq(rel[i].released, FRAMES / 2);
    }
    expect_pool_back(ax_decode_buffer_pool(db));
    ax_decode_buffer_destroy(&db);
    free(wire);
    free(rel);
}
