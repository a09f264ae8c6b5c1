/* DecodeBuffer: frames fed in any split come out exactly and in order;
 * oversized frames are refused; an exhausted pool pushes back. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "axon/buffers.h"

#define CHUNK 512
#define HDR 8
#define MAX_BODY 2048

/* ---- a stream of frames ------------------------------------------------ */

/* Each frame: a big-endian body length, a big-endian sequence number (the
 * four header bytes the decoder does not interpret), then the body. */
struct stream {
    unsigned char *bytes;
    size_t len;
    size_t nframes;
    size_t *off;   /* where frame i starts in bytes */
    size_t *flen;  /* frame i's length, header included */
};

static void put_be32(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Body sizes that hit every path of the decoder: tiny frames, frames near
 * half a chunk, near a chunk (copied when they straddle and fit one,
 * chained when larger), and several chunks long. */
static size_t random_body(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);

    switch (r % 5) {
    case 0:
        return r / 5 % 41;
    case 1:
        return 200 + r / 5 % 120;
    case 2:
        return 440 + r / 5 % 100;
    case 3:
        return 600 + r / 5 % (MAX_BODY - 600 + 1);
    default:
        return r / 5 % 200;
    }
}

static struct stream make_stream(const size_t *bodies, size_t n, unsigned seed)
{
    struct stream s = {.nframes = n};
    size_t at = 0;

    s.off = calloc(n + 1, sizeof *s.off);
    s.flen = calloc(n + 1, sizeof *s.flen);
    for (size_t i = 0; i < n; i++)
        s.len += HDR + bodies[i];
    s.bytes = malloc(s.len + 1);
    for (size_t i = 0; i < n; i++) {
        s.off[i] = at;
        s.flen[i] = HDR + bodies[i];
        put_be32(s.bytes + at, bodies[i]);
        put_be32(s.bytes + at + 4, i);
        for (size_t k = 0; k < bodies[i]; k++)
            s.bytes[at + HDR + k] = (unsigned char)rand_r(&seed);
        at += s.flen[i];
    }
    return s;
}

static struct stream random_stream(size_t n, unsigned seed)
{
    size_t *bodies = malloc(n * sizeof *bodies);
    struct stream s;

    for (size_t i = 0; i < n; i++)
        bodies[i] = random_body(&seed);
    s = make_stream(bodies, n, seed);
    free(bodies);
    return s;
}

static void free_stream(struct stream *s)
{
    free(s->bytes);
    free(s->off);
    free(s->flen);
}

/* ---- the decoder side -------------------------------------------------- */

static ax_decode_buffer_t *make_decoder(size_t initial, size_t max)
{
    ax_buffer_config_t cfg = {
        .chunk_size = CHUNK,
        .initial_chunk_count = initial,
        .max_chunk_count = max,
        .encode_buf_min_free_space = 16,
    };
    ax_frame_format_t fmt = {.header_size = HDR, .max_frame_size = HDR + MAX_BODY};
    ax_decode_buffer_t *db = NULL;

    cr_assert_eq(ax_decode_buffer_create(&cfg, &fmt, &db), AX_OK);
    return db;
}

/* Frame `i` of the stream, byte for byte. */
static void expect_frame(const struct stream *s, size_t i, const ax_lease_t *frame)
{
    unsigned char *got;
    size_t n;

    cr_assert_lt(i, s->nframes, "more frames than were sent");
    n = s->flen[i];
    cr_assert_eq(ax_lease_len(frame), n, "frame %zu: %zu bytes, want %zu", i,
                 ax_lease_len(frame), n);
    got = malloc(n);
    cr_assert_eq(ax_lease_copy_out(frame, 0, got, n), n);
    cr_assert_eq(memcmp(got, s->bytes + s->off[i], n), 0, "frame %zu differs", i);
    free(got);
}

/* Held frames, released together later. */
struct held {
    ax_lease_t *l;
    size_t *idx; /* which frame of the stream each one is */
    size_t n;
};

static struct held make_held(size_t cap)
{
    return (struct held){.l = calloc(cap + 1, sizeof(ax_lease_t)),
                         .idx = calloc(cap + 1, sizeof(size_t))};
}

static void free_held(struct held *h)
{
    free(h->l);
    free(h->idx);
}

/* A frame stays intact for as long as it is held, however the decoder
 * moved on meanwhile: check each one again just before letting it go. */
static void release_held(struct held *h, const struct stream *s)
{
    for (size_t i = 0; i < h->n; i++) {
        expect_frame(s, h->idx[i], &h->l[i]);
        ax_lease_release(&h->l[i]);
    }
    h->n = 0;
}

/* Take every complete frame, check it against the stream, and release it
 * at once (h == NULL) or keep it in h. */
static void drain(ax_decode_buffer_t *db, const struct stream *s, size_t *next, struct held *h)
{
    ax_lease_t frame = AX_LEASE_EMPTY;
    ax_status_t st;

    while ((st = ax_decode_buffer_next(db, &frame)) == AX_OK) {
        expect_frame(s, *next, &frame);
        if (h != NULL) {
            h->idx[h->n] = *next;
            ax_lease_move(&h->l[h->n++], &frame);
        } else {
            ax_lease_release(&frame);
        }
        (*next)++;
    }
    cr_assert_eq(st, AX_EAGAIN, "next: %s", ax_status_name(st));
}

static void expect_all_free(ax_decode_buffer_t *db)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(ax_decode_buffer_pool(db), &st);
    cr_assert_eq(st.chunks_leased, 0);
    cr_assert_eq(st.chunks_free + st.chunks_active, st.chunks_allocated);
}

/* Feed the stream in pieces whose sizes come from split(), draining after
 * each piece; every frame must come out exactly once, in order. */
static void run_stream(const struct stream *s, size_t (*split)(unsigned *), unsigned seed,
                       int hold)
{
    ax_decode_buffer_t *db = make_decoder(2, 4096);
    struct held h = make_held(s->nframes);
    size_t off = 0, next = 0, taken;

    while (off < s->len) {
        size_t n = split(&seed);

        if (n > s->len - off)
            n = s->len - off;
        cr_assert_eq(ax_decode_buffer_feed(db, s->bytes + off, n, &taken), AX_OK);
        cr_assert_eq(taken, n);
        off += n;
        drain(db, s, &next, hold ? &h : NULL);
    }
    cr_assert_eq(next, s->nframes, "%zu of %zu frames came out", next, s->nframes);
    release_held(&h, s);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    cr_assert_null(db);
    free_held(&h);
}

static size_t one_byte(unsigned *seed)
{
    (void)seed;
    return 1;
}

static size_t small_split(unsigned *seed)
{
    return 1 + (size_t)rand_r(seed) % 64;
}

static size_t any_split(unsigned *seed)
{
    return 1 + (size_t)rand_r(seed) % (3 * CHUNK);
}

static size_t everything(unsigned *seed)
{
    (void)seed;
    return SIZE_MAX;
}

Test(decode, one_byte_at_a_time)
{
    struct stream s = random_stream(300, 1);

    run_stream(&s, one_byte, 0, 0);
    free_stream(&s);
}

Test(decode, one_byte_at_a_time_holding_every_frame)
{
    struct stream s = random_stream(300, 2);

    run_stream(&s, one_byte, 0, 1);
    free_stream(&s);
}

Test(decode, random_splits)
{
    for (unsigned seed = 10; seed < 20; seed++) {
        struct stream s = random_stream(200, seed);

        run_stream(&s, small_split, seed, 0);
        run_stream(&s, any_split, seed, 0);
        free_stream(&s);
    }
}

Test(decode, random_splits_holding_every_frame)
{
    for (unsigned seed = 20; seed < 30; seed++) {
        struct stream s = random_stream(200, seed);

        run_stream(&s, small_split, seed, 1);
        run_stream(&s, any_split, seed, 1);
        free_stream(&s);
    }
}

Test(decode, whole_stream_at_once)
{
    struct stream s = random_stream(400, 3);

    run_stream(&s, everything, 0, 0);
    run_stream(&s, everything, 0, 1);
    free_stream(&s);
}

/* The reader side of a socket: write straight into the space the decoder
 * offers, less than offered at random, as read() would. */
Test(decode, space_and_commit_with_short_reads)
{
    struct stream s = random_stream(300, 4);
    ax_decode_buffer_t *db = make_decoder(2, 4096);
    size_t off = 0, next = 0;
    unsigned seed = 4;

    while (off < s.len) {
        void *ptr;
        size_t room, n;

        cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
        cr_assert_geq(room, 1);
        n = 1 + (size_t)rand_r(&seed) % room;
        if (n > s.len - off)
            n = s.len - off;
        memcpy(ptr, s.bytes + off, n);
        ax_decode_buffer_commit(db, n);
        off += n;
        drain(db, &s, &next, NULL);
    }
    cr_assert_eq(next, s.nframes);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free_stream(&s);
}

/*
 * A socket with plenty to read fills whatever space it is offered. Frames
 * just over half a chunk, read that way and held: after the first frame
 * that straddles (the decoder had no length to go by yet), each frame is
 * read into a chunk where it ends, and its lease points at the very bytes
 * the read wrote: none is copied to keep it whole.
 */
Test(decode, frames_that_fit_a_chunk_are_read_where_they_end_and_never_moved)
{
    enum { N = 24, BODY = CHUNK / 2 + 40 };
    size_t bodies[N];
    struct stream s;
    ax_decode_buffer_t *db = make_decoder(1, N + 4);
    struct held h = make_held(N);
    unsigned char *at[N + 1] = {0}; /* where each frame's first byte was read to */
    size_t off = 0, next = 0, frame = 0, reads = 0;

    for (size_t i = 0; i < N; i++)
        bodies[i] = BODY;
    s = make_stream(bodies, N, 9);
    while (off < s.len) {
        void *ptr;
        size_t room, n;

        cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
        n = room < s.len - off ? room : s.len - off;
        memcpy(ptr, s.bytes + off, n);
        for (; frame < N && s.off[frame] < off + n; frame++)
            at[frame] = (unsigned char *)ptr + (s.off[frame] - off);
        ax_decode_buffer_commit(db, n);
        off += n;
        reads++;
        drain(db, &s, &next, &h);
    }
    cr_assert_eq(next, N);
    for (size_t i = 2; i < N; i++) {
        cr_assert_eq(ax_lease_slice_count(&h.l[i]), 1, "frame %zu", i);
        cr_assert_eq(ax_lease_data(&h.l[i]), at[i], "frame %zu was moved after it was read", i);
    }
    /* One read a frame: the decoder never offers the start of a frame that
     * cannot end in the chunk. */
    cr_assert_leq(reads, N + 2, "%zu reads for %d frames", reads, N);
    release_held(&h, &s);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free_held(&h);
    free_stream(&s);
}

/*
 * A frame that cannot end in the chunk makes the decoder try a fresh chunk
 * before the read. When the pool has none, the read goes on in the room
 * left, and that is no exhaustion: the pool counts one only when the
 * decoder has no room at all. Once the held frame goes back, the rest
 * arrives whole.
 */
Test(decode, a_full_pool_before_a_read_that_has_room_is_no_exhaustion)
{
    static const size_t bodies[] = {CHUNK - 112 - HDR, 300 - HDR}; /* 400 and 300 bytes */
    struct stream s = make_stream(bodies, 2, 3);
    ax_decode_buffer_t *db = make_decoder(1, 1);
    ax_buffer_pool_stats_t st;
    ax_lease_t a, b;
    void *ptr;
    size_t room, off = 408; /* frame 0 and frame 1's header */

    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
    cr_assert_geq(room, off);
    memcpy(ptr, s.bytes, off);
    ax_decode_buffer_commit(db, off);
    cr_assert_eq(ax_decode_buffer_next(db, &a), AX_OK);
    expect_frame(&s, 0, &a);

    /* Frame 1 would end at 700, past the chunk; the only chunk is held. */
    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
    cr_assert_eq(room, CHUNK - off);
    ax_buffer_pool_stats(ax_decode_buffer_pool(db), &st);
    cr_assert_eq(st.exhausted, 0, "a swap that the read could do without counted");
    memcpy(ptr, s.bytes + off, room);
    ax_decode_buffer_commit(db, room);
    off += room;

    /* Now there is no room: that is exhaustion. */
    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_ENOBUFS);
    ax_buffer_pool_stats(ax_decode_buffer_pool(db), &st);
    cr_assert_eq(st.exhausted, 1);

    ax_lease_release(&a);
    while (off < s.len) {
        cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
        room = room < s.len - off ? room : s.len - off;
        memcpy(ptr, s.bytes + off, room);
        ax_decode_buffer_commit(db, room);
        off += room;
    }
    cr_assert_eq(ax_decode_buffer_next(db, &b), AX_OK);
    expect_frame(&s, 1, &b);
    ax_lease_release(&b);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free_stream(&s);
}

/* With the earlier frames still held, a frame that straddles a chunk
 * boundary is copied into the next chunk when it fits in one, and chained
 * across chunks when larger. */
Test(decode, straddling_frames_are_copied_when_they_fit_a_chunk_and_chained_when_larger)
{
    /* The whole stream is fed at once. Frame 1 ends at 408; frame 2 (208
     * bytes) straddles 512 and moves to a fresh chunk; frame 3 (308 bytes,
     * more than half a chunk) straddles too and moves; frame 4 (a whole
     * chunk, 512 bytes) starts in a chunk of its own, since the decoder
     * offers no space for a frame that cannot end there; frame 5 (513
     * bytes) cannot fit one chunk and is chained; frame 6 follows it. */
    static const size_t bodies[] = {400, 200, 300, CHUNK - HDR, CHUNK - HDR + 1, 10};
    static const size_t slices[] = {1, 1, 1, 1, 2, 1};
    struct stream s = make_stream(bodies, 6, 5);
    ax_decode_buffer_t *db = make_decoder(1, 8);
    ax_lease_t f[6];
    size_t taken;

    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes, s.len, &taken), AX_OK);
    cr_assert_eq(taken, s.len);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(ax_decode_buffer_next(db, &f[i]), AX_OK);
        expect_frame(&s, i, &f[i]);
        cr_assert_eq(ax_lease_slice_count(&f[i]), slices[i], "frame %zu", i);
    }
    cr_assert_eq(ax_decode_buffer_next(db, &f[0]), AX_EAGAIN);
    for (size_t i = 0; i < 6; i++)
        ax_lease_release(&f[i]);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free_stream(&s);
}

Test(decode, frames_larger_than_a_chunk)
{
    static const size_t bodies[] = {MAX_BODY, 3 * CHUNK, CHUNK - HDR, CHUNK, 0, CHUNK + 1, 7};
    struct stream s = make_stream(bodies, 7, 6);

    run_stream(&s, one_byte, 0, 1);
    run_stream(&s, any_split, 6, 0);
    run_stream(&s, everything, 0, 1);
    free_stream(&s);
}

Test(decode, minimal_header_and_empty_frames)
{
    ax_buffer_config_t cfg = {CHUNK, 1, 4, 16};
    ax_frame_format_t fmt = {.header_size = 4, .max_frame_size = 4};
    ax_decode_buffer_t *db = NULL;
    unsigned char zeros[4 * 300] = {0};
    ax_lease_t f = AX_LEASE_EMPTY;
    size_t taken, frames = 0;

    cr_assert_eq(ax_decode_buffer_create(&cfg, &fmt, &db), AX_OK);
    cr_assert_eq(ax_decode_buffer_feed(db, zeros, sizeof zeros, &taken), AX_OK);
    while (ax_decode_buffer_next(db, &f) == AX_OK) {
        cr_assert_eq(ax_lease_len(&f), 4);
        ax_lease_release(&f);
        frames++;
    }
    cr_assert_eq(frames, 300);
    ax_decode_buffer_destroy(&db);
}

Test(decode, frames_outlive_the_decoder)
{
    struct stream s = random_stream(50, 7);
    ax_decode_buffer_t *db = make_decoder(2, 4096);
    ax_lease_t *f = calloc(50, sizeof *f);
    size_t taken;

    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes, s.len, &taken), AX_OK);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(ax_decode_buffer_next(db, &f[i]), AX_OK);
    ax_decode_buffer_destroy(&db);
    for (size_t i = 0; i < 50; i++) {
        expect_frame(&s, i, &f[i]);
        ax_lease_release(&f[i]);
    }
    free(f);
    free_stream(&s);
}

/* Tiny frames, each held until 70 more have been cut: more leases on a
 * chunk than the decoder takes references for at once (buffers/chunk.h,
 * AX__REF_STOCK), and chunks slid over in place once their frames are
 * gone. Every frame keeps its bytes while held, and nothing stays leased. */
Test(decode, tiny_frames_held_past_a_stock_of_references)
{
    enum { N = 2000, HOLD = 70 };
    size_t *bodies = calloc(N, sizeof *bodies);
    struct stream s;
    ax_decode_buffer_t *db = make_decoder(2, 64);
    ax_lease_t *f = calloc(N, sizeof *f);
    size_t off = 0, next = 0, released = 0, taken;
    ax_buffer_pool_stats_t st;

    for (size_t i = 0; i < N; i++)
        bodies[i] = i % 3; /* 8 to 10 bytes a frame: 51 to 64 in a chunk */
    s = make_stream(bodies, N, 11);
    while (off < s.len) {
        size_t n = s.len - off < 100 ? s.len - off : 100;

        cr_assert_eq(ax_decode_buffer_feed(db, s.bytes + off, n, &taken), AX_OK);
        cr_assert_eq(taken, n);
        off += n;
        while (ax_decode_buffer_next(db, &f[next]) == AX_OK) {
            expect_frame(&s, next, &f[next]);
            next++;
        }
        for (; released + HOLD < next; released++) {
            expect_frame(&s, released, &f[released]);
            ax_lease_release(&f[released]);
        }
    }
    cr_assert_eq(next, N);
    for (; released < N; released++) {
        expect_frame(&s, released, &f[released]);
        ax_lease_release(&f[released]);
    }
    ax_buffer_pool_stats(ax_decode_buffer_pool(db), &st);
    cr_assert_leq(st.chunks_allocated, 4, "%zu chunks for at most 80 held frames", st.chunks_allocated);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free(f);
    free(bodies);
    free_stream(&s);
}

/* ---- oversized frames -------------------------------------------------- */

Test(decode, oversized_length_is_refused_as_soon_as_the_header_is_complete)
{
    static const size_t bodies[] = {10, MAX_BODY};
    struct stream s = make_stream(bodies, 2, 8);
    ax_decode_buffer_t *db = make_decoder(1, 8);
    unsigned char bad[HDR];
    ax_lease_t f = AX_LEASE_EMPTY;
    size_t taken, next = 0;
    void *ptr;

    /* A frame of exactly max_frame_size is fine. */
    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes, s.len, &taken), AX_OK);
    drain(db, &s, &next, NULL);
    cr_assert_eq(next, 2);

    put_be32(bad, MAX_BODY + 1);
    memset(bad + 4, 0xEE, 4);
    for (size_t i = 0; i + 1 < HDR; i++) {
        cr_assert_eq(ax_decode_buffer_feed(db, bad + i, 1, &taken), AX_OK);
        cr_assert_eq(ax_decode_buffer_next(db, &f), AX_EAGAIN, "after %zu header bytes", i + 1);
    }
    cr_assert_eq(ax_decode_buffer_feed(db, bad + HDR - 1, 1, &taken), AX_OK);
    cr_assert_eq(ax_decode_buffer_next(db, &f), AX_ETOOBIG);
    cr_assert_eq(ax_lease_slice_count(&f), 0);
    /* The stream cannot continue. */
    cr_assert_eq(ax_decode_buffer_next(db, &f), AX_ETOOBIG);
    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &taken), AX_ETOOBIG);
    cr_assert_eq(ax_decode_buffer_feed(db, "x", 1, &taken), AX_ETOOBIG);
    cr_assert_eq(taken, 0);
    ax_decode_buffer_destroy(&db);
    free_stream(&s);
}

Test(decode, frames_before_an_oversized_one_are_still_delivered)
{
    struct stream s = random_stream(40, 9);
    ax_decode_buffer_t *db = make_decoder(2, 4096);
    unsigned char *bytes = malloc(s.len + HDR + 3 * CHUNK);
    ax_lease_t f = AX_LEASE_EMPTY;
    size_t taken, next = 0;
    ax_status_t st;

    /* The good frames, a header announcing 4 GiB, then noise. */
    memcpy(bytes, s.bytes, s.len);
    put_be32(bytes + s.len, 0xFFFFFFFFu);
    memset(bytes + s.len + 4, 0xAB, 4 + 3 * CHUNK);
    st = ax_decode_buffer_feed(db, bytes, s.len + HDR + 3 * CHUNK, &taken);
    cr_assert(st == AX_ETOOBIG || st == AX_OK, "feed: %s", ax_status_name(st));
    while ((st = ax_decode_buffer_next(db, &f)) == AX_OK) {
        expect_frame(&s, next++, &f);
        ax_lease_release(&f);
    }
    cr_assert_eq(st, AX_ETOOBIG);
    cr_assert_eq(next, s.nframes);
    ax_decode_buffer_destroy(&db);
    free(bytes);
    free_stream(&s);
}

/* ---- an exhausted pool pushes back --------------------------------------- */

Test(decode, space_reports_enobufs_and_recovers_after_release)
{
    /* Four 108-byte frames and 80 bytes of a fifth fill the only chunk. */
    static const size_t bodies[] = {100, 100, 100, 100, 100};
    struct stream s = make_stream(bodies, 5, 10);
    ax_decode_buffer_t *db = make_decoder(1, 1);
    struct held h = make_held(5);
    size_t taken, next = 0;
    void *ptr;
    size_t room;

    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes, CHUNK, &taken), AX_OK);
    cr_assert_eq(taken, CHUNK);
    drain(db, &s, &next, &h);
    cr_assert_eq(next, 4);
    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_ENOBUFS);
    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes + CHUNK, 1, &taken), AX_ENOBUFS);
    cr_assert_eq(taken, 0);
    drain(db, &s, &next, &h);
    cr_assert_eq(next, 4, "nothing more is complete");

    release_held(&h, &s);
    cr_assert_eq(ax_decode_buffer_space(db, &ptr, &room), AX_OK);
    cr_assert_eq(ax_decode_buffer_feed(db, s.bytes + CHUNK, s.len - CHUNK, &taken), AX_OK);
    drain(db, &s, &next, NULL);
    cr_assert_eq(next, 5, "the partial frame survived the exhaustion");
    ax_decode_buffer_destroy(&db);
    free_held(&h);
    free_stream(&s);
}

/* Hold every frame until the pool runs out, then release them all and go
 * on from where feed stopped: no byte is lost or repeated. */
static void run_exhausting(unsigned seed, size_t max_chunks, size_t (*split)(unsigned *))
{
    struct stream s = random_stream(300, seed);
    ax_decode_buffer_t *db = make_decoder(1, max_chunks);
    struct held h = make_held(s.nframes);
    size_t off = 0, next = 0, taken, pushbacks = 0;
    int stuck = 0;

    while (off < s.len) {
        size_t n = split(&seed);
        ax_status_t st;

        if (n > s.len - off)
            n = s.len - off;
        st = ax_decode_buffer_feed(db, s.bytes + off, n, &taken);
        off += taken;
        drain(db, &s, &next, &h);
        if (st == AX_ENOBUFS) {
            pushbacks++;
            cr_assert(taken > 0 || h.n > 0 || !stuck, "no progress possible at byte %zu", off);
            stuck = taken == 0 && h.n == 0;
            release_held(&h, &s);
        } else {
            cr_assert_eq(st, AX_OK, "feed: %s", ax_status_name(st));
            cr_assert_eq(taken, n);
            stuck = 0;
        }
    }
    cr_assert_eq(next, s.nframes);
    cr_assert_gt(pushbacks, 0, "the pool never ran out: the test proves nothing");
    release_held(&h, &s);
    expect_all_free(db);
    ax_decode_buffer_destroy(&db);
    free_held(&h);
    free_stream(&s);
}

Test(decode, exhausted_pool_loses_nothing)
{
    /* A frame spans at most 6 chunks (2056 bytes from the end of one). */
    for (unsigned seed = 40; seed < 46; seed++) {
        run_exhausting(seed, 6, any_split);
        run_exhausting(seed, 8, small_split);
    }
}
