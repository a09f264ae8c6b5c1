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
 * Checks, each an abort() so that libFuzzer keeps the input:
 *   - an accepted envelope re-encodes (ax_path_pack) into bytes that
 *     decode to the same envelope, and re-encoding that gives the same
 *     bytes again;
 *   - a chained lease decodes as its flattened copy does;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_envelope(data[0], data + 1, size - 1);
    fuzz_check(data + 1, size - 1);
    return 0;
}
