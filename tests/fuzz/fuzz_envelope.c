/*
 * libFuzzer target for the Data frame envelope decoder
 * (ax__envelope_read) and the msgpack bounds check in front of msgpack-c
 * (ax__msgpack_check).
 *
 * Input: one mode byte, then the envelope bytes (what follows the 8-byte
 * header of a Data frame: [receiver, sender or nil, serialiser id], then
 * any payload).
 *   bits 0-1  how the bytes become a lease:
 *             0  one flat slice of an encode buffer, envelope at offset 0
 *             1  an encode buffer of 128-byte chunks: a chain of slices
 *                once the input is longer than a chunk
 *             2  a frame cut by a decode buffer (header added here),
 *                envelope at offset 8, as the network thread sees it
 *             3  flat, after bits 2-4 + 1 bytes of junk (another offset)
 *
 *   bits 5-7  the path-id offer for the second pass (1, 2, 3, 4, 8, 16,
 *             128 or 1024 ids)
 *
 * A second pass reads the same bytes as a stream of envelopes on one
 * connection that offered path ids (docs/wire.md section 6.1), each
 * followed by one payload byte: definitions bind, references resolve,
 * ids at or above the offer and references before their definition fail.
 *
 * Checks, each an abort() so that libFuzzer keeps the input:
 *   - an accepted envelope re-encodes (ax_path_pack) into bytes that
 *     decode to the same envelope, and re-encoding that gives the same
 *     bytes again;
 *   - a chained lease decodes as its flattened copy does;
 *   - with path ids: every id stays below the offer, an accepted
 *     envelope's paths in full parse as an envelope with the same paths,
 *     and Axon's own rewrite of it (ax__pathtab_compact, a definition
 *     then a reference) reads back as the same envelope on a fresh table;
 *   - whatever ax__msgpack_check accepts, msgpack_unpack parses without
 *     a huge allocation (libFuzzer's -rss_limit_mb and malloc limit,
 *     2048 MB by default, turn one into a crash) and without running out
 *     of input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axon/buffers.h"
#include "serial/frame.h"
#include "serial/mpcheck.h"
#include "serial/netmsg.h"
#include "serial/pathtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool same_envelope(const ax__envelope_t *a, const ax__envelope_t *b)
{
    return ax_path_cmp(&a->dst, &b->dst) == 0 && a->has_src == b->has_src &&
           (!a->has_src || ax_path_cmp(&a->src, &b->src) == 0) &&
           a->serialiser_id == b->serialiser_id;
}

/* bytes[0, n) as a lease of an encode buffer with chunks of chunk_size,
 * after `pad` junk bytes. */
static ax_status_t encoded_lease(const void *pre, size_t pad, const void *bytes, size_t n,
                                 size_t chunk_size, ax_encode_buffer_t **eb, ax_lease_t *out)
{
    ax_buffer_config_t cfg = {
        .chunk_size = chunk_size,
        .initial_chunk_count = 1,
        .max_chunk_count = 4 + (pad + n) / 64,
        .encode_buf_min_free_space = 64,
    };
    ax_status_t st = ax_encode_buffer_create(&cfg, eb);

    if (st == AX_OK)
        st = ax_encode_begin(*eb, pad + n);
    if (st == AX_OK && pad > 0)
        st = ax_encode_write(*eb, pre, pad);
    if (st == AX_OK && n > 0)
        st = ax_encode_write(*eb, bytes, n);
    if (st == AX_OK)
        st = ax_encode_end(*eb, out);
    return st;
}

/* The frame 8-byte header + bytes, as cut by a decode buffer. */
static ax_status_t decoded_lease(const void *bytes, size_t n, ax_decode_buffer_t **db, ax_lease_t *out)
{
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;
    ax_frame_format_t fmt = {.header_size = AX__FRAME_HEADER_SIZE,
                             .max_frame_size = AX__FRAME_HEADER_SIZE + n};
    unsigned char hdr[AX__FRAME_HEADER_SIZE];
    size_t taken;
    ax_status_t st;

    cfg.chunk_size = 4096;
    cfg.initial_chunk_count = 1;
    cfg.max_chunk_count = 4 + n / 2048;
    ax__frame_header_write(hdr, &(ax__frame_header_t){(uint32_t)n, AX__FRAME_DATA, 0, 0});
    st = ax_decode_buffer_create(&cfg, &fmt, db);
    if (st == AX_OK)
        st = ax_decode_buffer_feed(*db, hdr, sizeof hdr, &taken);
    if (st == AX_OK)
        st = ax_decode_buffer_feed(*db, bytes, n, &taken);
    if (st == AX_OK)
        st = ax_decode_buffer_next(*db, out);
    return st;
}

/* [dst, src or nil, id], packed again from the decoded envelope. */
static void repack(const ax__envelope_t *env, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    check(msgpack_pack_array(&pk, 3) == 0);
    check(ax_path_pack(&env->dst, &pk) == 0);
    check((env->has_src ? ax_path_pack(&env->src, &pk) : msgpack_pack_nil(&pk)) == 0);
    check(msgpack_pack_uint64(&pk, env->serialiser_id) == 0);
}

static void check_round_trip(const ax__envelope_t *env)
{
    msgpack_sbuffer sb, sb2;
    ax_encode_buffer_t *eb = NULL;
    ax_lease_t lease = AX_LEASE_EMPTY;
    ax__envelope_t again;

    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    repack(env, &sb);
    check(sb.size <= AX__ENVELOPE_MAX);
    check(encoded_lease(NULL, 0, sb.data, sb.size, 4096, &eb, &lease) == AX_OK);
    check(ax__envelope_read(&lease, 0, &again) == AX_OK);
    check(same_envelope(env, &again) && again.payload_off == sb.size);
    repack(&again, &sb2);
    check(sb.size == sb2.size && memcmp(sb.data, sb2.data, sb.size) == 0);
    ax_lease_release(&lease);
    ax_encode_buffer_destroy(&eb);
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
}

static void fuzz_envelope(uint8_t mode, const uint8_t *bytes, size_t n)
{
    static const uint8_t junk[8] = {0xc1, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x92, 0x00};
    ax_encode_buffer_t *eb = NULL;
    ax_decode_buffer_t *db = NULL;
    ax_lease_t lease = AX_LEASE_EMPTY;
    size_t env_off = 0;
    ax__envelope_t env;
    ax_status_t st;

    switch (mode & 3u) {
    case 0:
        st = encoded_lease(NULL, 0, bytes, n, n + 128, &eb, &lease);
        break;
    case 1:
        st = encoded_lease(NULL, 0, bytes, n, 128, &eb, &lease);
        break;
    case 2:
        st = decoded_lease(bytes, n, &db, &lease);
        env_off = AX__FRAME_HEADER_SIZE;
        break;
    default:
        env_off = 1 + ((mode >> 2) & 7u);
        st = encoded_lease(junk, env_off, bytes, n, n + 128, &eb, &lease);
        break;
    }
    check(st == AX_OK);
    check(ax_lease_len(&lease) == env_off + n);

    st = ax__envelope_read(&lease, env_off, &env);
    if (st == AX_OK) {
        check(env.payload_off > env_off && env.payload_off <= env_off + n);
        check_round_trip(&env);
    } else {
        check(ax_error_detail()[0] != '\0');
    }
    if (ax_lease_slice_count(&lease) > 1) {
        ax_lease_t flat = AX_LEASE_EMPTY;
        ax__envelope_t env_flat;

        check(ax_lease_flatten(&lease, &flat) == AX_OK);
        check((ax__envelope_read(&flat, env_off, &env_flat) == AX_OK) == (st == AX_OK));
        check(st != AX_OK || (same_envelope(&env, &env_flat) && env.payload_off == env_flat.payload_off));
        ax_lease_release(&flat);
    }
    ax_lease_release(&lease);
    ax_encode_buffer_destroy(&eb);
    ax_decode_buffer_destroy(&db);
}

/*
 * The bounds check's promise: what it accepts, msgpack-c unpacks within
 * memory proportional to the input. A NOMEM_ERROR is msgpack-c refusing
 * nesting deeper than its own stack (32 levels; the check allows 64), not
 * an allocation: the envelope decoder then fails cleanly.
 */
static void fuzz_check(const uint8_t *bytes, size_t n)
{
    msgpack_zone *zone;
    msgpack_object obj;
    size_t off = 0;
    int rc;

    if (ax__msgpack_check(bytes, n, 1) != AX_OK)
        return;
    zone = msgpack_zone_new(2048);
    check(zone != NULL);
    rc = msgpack_unpack((const char *)bytes, n, &off, zone, &obj);
    check(rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES ||
          rc == MSGPACK_UNPACK_NOMEM_ERROR);
    check(rc == MSGPACK_UNPACK_NOMEM_ERROR || (off > 0 && off <= n));
    msgpack_zone_free(zone);
}

/* The envelope `full` as a sender rewrites it with tx, read back with the
 * receiver's table rx, must be the same envelope. */
static void check_compact(const unsigned char *full, size_t len, ax__pathtab_t *tx, ax__pathtab_t *rx)
{
    unsigned char frame[AX__FRAME_HEADER_SIZE + AX__ENVELOPE_MAX + 1], head[AX__COMPACT_HEAD_MAX];
    unsigned char again[AX__ENVELOPE_MAX], small[AX__NM_ALT_INLINE];
    ax_encode_buffer_t *eb = NULL;
    ax_status_t st;
    ax_lease_t lease = AX_LEASE_EMPTY;
    ax__env_view_t v;
    ax__envelope_t a, b;
    size_t hlen = 0;

    ax__frame_header_write(frame, &(ax__frame_header_t){(uint32_t)(len + 1), 2, 0, 0});
    memcpy(frame + AX__FRAME_HEADER_SIZE, full, len);
    frame[AX__FRAME_HEADER_SIZE + len] = 0x2a; /* the payload */
    check(encoded_lease(NULL, 0, frame, AX__FRAME_HEADER_SIZE + len + 1, 4096, &eb, &lease) == AX_OK);
    /* As the network thread does: first into a NetMessage's inline room,
     * which takes a stream's head; AX_ENOBUFS left tx as it was. */
    st = ax__pathtab_compact(tx, &lease, (uint32_t)(AX__FRAME_HEADER_SIZE + len), small, sizeof small, &hlen);
    if (st == AX_OK)
        memcpy(head, small, hlen);
    else if (st == AX_ENOBUFS)
        st = ax__pathtab_compact(tx, &lease, (uint32_t)(AX__FRAME_HEADER_SIZE + len), head, sizeof head, &hlen);
    if (st == AX_OK) {
        check(hlen <= sizeof head && hlen > AX__FRAME_HEADER_SIZE);
        check(ax__env_view_read(head + AX__FRAME_HEADER_SIZE, hlen - AX__FRAME_HEADER_SIZE, rx, true, &v) ==
              AX_OK);
        check(v.len == hlen - AX__FRAME_HEADER_SIZE);
        /* The same envelope, though not always the same bytes: a
         * definition holds its path in canonical form. */
        check(ax__envelope_parse(full, len, &a) == AX_OK);
        check(ax__envelope_parse(again, ax__env_view_full(&v, again), &b) == AX_OK);
        check(same_envelope(&a, &b));
    }
    ax_lease_release(&lease);
    ax_encode_buffer_destroy(&eb);
}

static void fuzz_ids(uint8_t mode, const uint8_t *bytes, size_t n)
{
    static const uint32_t offers[8] = {1, 2, 3, 4, 8, 16, 128, 1024};
    uint32_t offer = offers[mode >> 5];
    ax__pathtab_t *t = ax__pathtab_new(offer, false);
    ax__pathtab_t *tx = ax__pathtab_new(offer, true), *rx = ax__pathtab_new(offer, false);
    unsigned char full[AX__ENVELOPE_MAX];
    size_t off = 0;

    check(t != NULL && tx != NULL && rx != NULL);
    while (off < n) {
        ax__env_view_t v;
        ax__envelope_t env;
        ax_path_t p;
        size_t len;

        if (ax__env_view_read(bytes + off, n - off, t, true, &v) != AX_OK) {
            check(ax_error_detail()[0] != '\0');
            break;
        }
        check(v.len > 0 && v.len <= n - off);
        for (int i = 0; i < 2; i++) {
            if (v.p[i].form == AX__PATH_DEF || v.p[i].form == AX__PATH_REF) {
                /* Bound, below the offer, and a checked path. */
                uint32_t id = 0;

                while (id < t->n && t->ent[id] != v.p[i].ent)
                    id++;
                check(v.p[i].ent != NULL && id < t->n && t->n == offer);
                check(ax__path_read(v.p[i].bytes, v.p[i].len, &p) == AX_OK);
            }
        }
        len = ax__env_view_full(&v, full);
        check(len <= sizeof full);
        if (ax__envelope_parse(full, len, &env) == AX_OK) {
            check(env.payload_off == len);
            check_compact(full, len, tx, rx);
            check_compact(full, len, tx, rx);
        } else {
            /* Only a full path the view did not check can be bad. */
            check(v.p[0].form == AX__PATH_FULL || v.p[1].form == AX__PATH_FULL);
        }
        off += v.len + 1; /* one payload byte */
    }
    ax__pathtab_free(t);
    ax__pathtab_free(tx);
    ax__pathtab_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_envelope(data[0], data + 1, size - 1);
    fuzz_ids(data[0], data + 1, size - 1);
    fuzz_check(data + 1, size - 1);
    return 0;
}
