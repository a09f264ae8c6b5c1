/*
 * libFuzzer target for the receive path under the network thread: a byte
 * stream from a peer goes through a DecodeBuffer, which cuts it into
 * frames, and each frame's header and (for Data frames) envelope are
 * decoded, as dispatch/netthread.c does with what read() returns.
 *
 * Input: four settings bytes, then the stream.
 *   byte 0  chunk size, 256 + 15 * b (256..4081)
 *   byte 1  bits 0-1: chunks in the pool, 2..5; bits 2-3: frames the
 *           harness may hold at once, 0..3 (a slow receiver)
 *   byte 2  max_frame_size, 8 + 32 * (b + 1) (up to about 8 KiB)
 *   byte 3  seed for the sizes of the pieces the stream arrives in
 * A tiny pool on purpose: chunk swaps, chained frames and AX_ENOBUFS all
 * happen within a few KiB of input.
 *
 * Besides "no crash, no leak, no hang" it checks, and abort()s on:
 *   - every frame is exactly the next bytes of the stream, and its length
 *     is the header's body length + 8 (the decoder neither loses,
 *     duplicates nor reorders bytes, across chunks and chains);
 *   - AX_ETOOBIG comes only when the next header announces too much;
 *   - once the harness holds nothing, the decoder makes progress when
 *     the pool can hold the largest frame (no stall that would hang a
 *     connection);
 *   - a chained frame's envelope decodes as its flattened copy does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axon/buffers.h"
#include "serial/frame.h"
#include "serial/mpcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SETTINGS 4
#define MAX_HELD 3

static void check(bool ok)
{
    if (!ok)
        abort();
}

typedef struct harness {
    const uint8_t *stream; /* the bytes after the settings */
    size_t len;
    size_t consumed;       /* stream bytes handed out as frames so far */
    size_t max_frame;
    uint32_t rng;
    ax_lease_t held[MAX_HELD];
    size_t nheld, max_held;
    unsigned char frame[8 + 32 * 256 + 64]; /* scratch: one whole frame */
} harness_t;

static uint32_t next_rand(harness_t *h)
{
    /* xorshift32: the piece sizes and hold choices are a function of the
     * input, so a crash replays exactly. */
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 17;
    h->rng ^= h->rng << 5;
    return h->rng;
}

static void release_held(harness_t *h)
{
    for (size_t i = 0; i < h->nheld; i++)
        ax_lease_release(&h->held[i]);
    h->nheld = 0;
}

static bool same_envelope(const ax__envelope_t *a, const ax__envelope_t *b)
{
    return ax_path_cmp(&a->dst, &b->dst) == 0 && a->has_src == b->has_src &&
           (!a->has_src || ax_path_cmp(&a->src, &b->src) == 0) &&
           a->serialiser_id == b->serialiser_id && a->payload_off == b->payload_off;
}

/* A Status frame may return one of our Data frames as [seq, bin]; the
 * network thread then reads the envelope inside the bin, at an offset that
 * is not 8. Do the same. */
static void status_body(const ax_lease_t *frame)
{
    ax_lease_t flat = AX_LEASE_EMPTY;
    msgpack_zone *zone = ax__thread_zone();
    const char *body;
    size_t len, off = 0;
    msgpack_object o;
    ax__envelope_t env;

    if (zone == NULL || ax_lease_flatten(frame, &flat) != AX_OK)
        return;
    body = (const char *)ax_lease_data(&flat) + AX__FRAME_HEADER_SIZE;
    len = ax_lease_len(&flat) - AX__FRAME_HEADER_SIZE;
    if (ax__msgpack_check(body, len, 1) == AX_OK &&
        msgpack_unpack(body, len, &off, zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 2 &&
        o.via.array.ptr[1].type == MSGPACK_OBJECT_BIN) {
        size_t env_off = (size_t)(o.via.array.ptr[1].via.bin.ptr - (const char *)ax_lease_data(&flat));

        /* envelope_read clears the zone o lives in: o is dead after this. */
        if (ax__envelope_read(&flat, env_off, &env) == AX_OK)
            check(env.payload_off > env_off && env.payload_off <= ax_lease_len(&flat));
    }
    msgpack_zone_clear(zone);
    ax_lease_release(&flat);
}

static void on_frame(harness_t *h, ax_lease_t *frame)
{
    size_t len = ax_lease_len(frame), n, first = 0, total = 0;
    struct iovec iov[8];
    ax__frame_header_t hdr;
    ax__envelope_t env, env_flat;

    /* Exactly the next bytes of the stream. */
    check(len >= AX__FRAME_HEADER_SIZE && len <= h->max_frame && len <= sizeof h->frame);
    check(h->consumed + len <= h->len);
    check(ax_lease_copy_out(frame, 0, h->frame, len) == len);
    check(memcmp(h->frame, h->stream + h->consumed, len) == 0);
    while ((n = ax_lease_iovec(frame, first, iov, 8)) > 0) {
        for (size_t i = 0; i < n; i++)
            total += iov[i].iov_len;
        first += n;
    }
    check(total == len && first == ax_lease_slice_count(frame));
    h->consumed += len;

    if (ax__frame_header_read(h->frame, &hdr) == AX_OK) {
        check(hdr.body_len + (size_t)AX__FRAME_HEADER_SIZE == len);
        if (hdr.type == AX__FRAME_DATA) {
            ax_status_t st = ax__envelope_read(frame, AX__FRAME_HEADER_SIZE, &env);

            if (st == AX_OK)
                check(env.payload_off > AX__FRAME_HEADER_SIZE && env.payload_off <= len);
            if (ax_lease_slice_count(frame) > 1) {
                /* A chained frame's envelope is read from a bounded copy
                 * of its start; it must decode as the whole would. */
                ax_lease_t flat = AX_LEASE_EMPTY;

                if (ax_lease_flatten(frame, &flat) == AX_OK) {
                    ax_status_t st2 = ax__envelope_read(&flat, AX__FRAME_HEADER_SIZE, &env_flat);

                    check((st == AX_OK) == (st2 == AX_OK));
                    check(st != AX_OK || same_envelope(&env, &env_flat));
                    ax_lease_release(&flat);
                }
            }
        } else if (hdr.type == AX__FRAME_STATUS) {
            status_body(frame);
        }
    }

    /* A slow receiver keeps a few frames (their chunks stay leased). */
    if (h->max_held > 0 && (next_rand(h) & 1) != 0) {
        if (h->nheld == h->max_held) {
            ax_lease_release(&h->held[0]);
            memmove(&h->held[0], &h->held[1], (h->nheld - 1) * sizeof h->held[0]);
            h->nheld--;
        }
        ax_lease_move(&h->held[h->nheld++], frame);
    } else {
        ax_lease_release(frame);
    }
}

/* Take every complete frame; false once the stream cannot continue. */
static bool take_frames(harness_t *h, ax_decode_buffer_t *db)
{
    ax_lease_t frame;
    ax_status_t st;

    while ((st = ax_decode_buffer_next(db, &frame)) == AX_OK)
        on_frame(h, &frame);
    if (st == AX_ETOOBIG) {
        const uint8_t *b = h->stream + h->consumed;

        check(h->len - h->consumed >= AX__FRAME_HEADER_SIZE);
        check(AX__FRAME_HEADER_SIZE + ((size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3]) >
              h->max_frame);
        return false;
    }
    check(st == AX_EAGAIN);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static harness_t h;
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;
    ax_frame_format_t fmt = {.header_size = AX__FRAME_HEADER_SIZE};
    ax_decode_buffer_t *db;
    size_t off = 0;
    bool fits;

    if (size < SETTINGS)
        return 0;
    cfg.chunk_size = 256 + 15 * (size_t)data[0];
    cfg.initial_chunk_count = 1;
    cfg.max_chunk_count = 2 + (data[1] & 3u);
    fmt.max_frame_size = AX__FRAME_HEADER_SIZE + 32 * ((size_t)data[2] + 1);
    /* A frame starting anywhere in a chunk spans at most max_chunk_count
     * chunks when it is no longer than max_chunk_count - 1 of them. */
    fits = fmt.max_frame_size <= (cfg.max_chunk_count - 1) * cfg.chunk_size;
    if (ax_decode_buffer_create(&cfg, &fmt, &db) != AX_OK)
        abort();

    h.stream = data + SETTINGS;
    h.len = size - SETTINGS;
    h.consumed = 0;
    h.max_frame = fmt.max_frame_size;
    h.rng = 0x9e3779b9u ^ data[3] ^ (uint32_t)size << 8;
    h.nheld = 0;
    h.max_held = (data[1] >> 2) & 3u;

    while (off < h.len) {
        /* A read() returns anything from one byte to the room offered. */
        uint32_t r = next_rand(&h);
        size_t want = (r & 3) == 0 ? 1 + (r >> 8) % 8 : 1 + (r >> 8) % (2 * cfg.chunk_size);
        void *p;
        size_t room;
        ax_status_t st = ax_decode_buffer_space(db, &p, &room);

        if (st == AX_ENOBUFS) {
            /* What the network thread does: take the ready frames and
             * wait for leases to come back; here they come back now. */
            if (!take_frames(&h, db))
                break;
            release_held(&h);
            st = ax_decode_buffer_space(db, &p, &room);
            if (st == AX_ENOBUFS) {
                check(!fits); /* nothing is leased: a stall would hang */
                break;
            }
        }
        if (st != AX_OK) {
            check(st == AX_ETOOBIG);
            take_frames(&h, db);
            break;
        }
        check(room > 0);
        if (want > room)
            want = room;
        if (want > h.len - off)
            want = h.len - off;
        memcpy(p, h.stream + off, want);
        ax_decode_buffer_commit(db, want);
        off += want;
        if (!take_frames(&h, db))
            break;
    }
    release_held(&h);
    ax_decode_buffer_destroy(&db);
    return 0;
}
