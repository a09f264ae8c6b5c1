/*
 * buffers_tour: Axon's pooled message buffers in one short program.
 *
 *   1. build a BufferConfig from size strings and validate it
 *   2. serialise a few msgpack messages straight into pooled chunks,
 *      each behind an 8-byte frame header that is filled in afterwards
 *   3. hand one message (a lease) to another thread, which releases it
 *   4. look at the pool's stats
 *   5. cut the same bytes back into frames with a decode buffer, as a
 *      network thread would after reading them from a socket
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h> /* to pack into ax_encode_packer() */

#include "axon/buffers.h"

#define HEADER 8 /* 4-byte big-endian body length, then 4 bytes of our own */

static int fail(const char *what, ax_status_t st)
{
    fprintf(stderr, "%s: %s (%s)\n", what, ax_status_str(st), ax_error_detail());
    return 1;
}

/* One framed message: {"seq": seq, "text": text}. The header is reserved
 * first and back-filled once the body's length is known. */
static ax_status_t encode_greeting(ax_encode_buffer_t *eb, unsigned seq, const char *text,
                                   ax_lease_t *out)
{
    msgpack_packer *pk = ax_encode_packer(eb);
    unsigned char hdr[HEADER] = {0, 0, 0, 0, 'T', 'O', 'U', 'R'};
    size_t mark, body;
    ax_status_t st;

    st = ax_encode_begin(eb, 0);
    if (st != AX_OK)
        return st;
    ax_encode_reserve(eb, HEADER, &mark);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "seq", 3);
    msgpack_pack_unsigned_int(pk, seq);
    msgpack_pack_str_with_body(pk, "text", 4);
    msgpack_pack_str_with_body(pk, text, strlen(text));
    body = ax_encode_len(eb) - HEADER;
    hdr[0] = (unsigned char)(body >> 24);
    hdr[1] = (unsigned char)(body >> 16);
    hdr[2] = (unsigned char)(body >> 8);
    hdr[3] = (unsigned char)body;
    ax_encode_fill(eb, mark, hdr, HEADER);
    /* A failure anywhere above (an exhausted pool, say) is reported here,
     * and the buffer is left as it was before ax_encode_begin(). */
    return ax_encode_end(eb, out);
}

/* Leases may be released on any thread; this one just checks the length
 * and lets go. The chunk returns to its pool once every lease is gone. */
static void *release_elsewhere(void *arg)
{
    ax_lease_t *lease = arg;

    printf("other thread: releasing a %zu-byte message\n", ax_lease_len(lease));
    ax_lease_release(lease);
    return NULL;
}

/* "active" is the chunk the encoder writes into, whether or not leases
 * point into it; "leased" counts retired chunks still waiting for their
 * last lease, and "free" the chunks ready for reuse. */
static void print_stats(const char *when, ax_buffer_pool_t *pool)
{
    ax_buffer_pool_stats_t st;

    ax_buffer_pool_stats(pool, &st);
    printf("%s: %zu chunks (%zu bytes): %zu free, %zu active, %zu leased\n", when,
           st.chunks_allocated, st.bytes_allocated, st.chunks_free, st.chunks_active,
           st.chunks_leased);
}

/* Print a decoded frame's body, which is one msgpack map. */
static void print_frame(const ax_lease_t *frame)
{
    size_t len = ax_lease_len(frame), off = 0;
    char *bytes = malloc(len);
    msgpack_unpacked msg;

    /* A frame may be a chain of slices; copy_out makes it contiguous. */
    ax_lease_copy_out(frame, 0, bytes, len);
    msgpack_unpacked_init(&msg);
    if (msgpack_unpack_next(&msg, bytes + HEADER, len - HEADER, &off) == MSGPACK_UNPACK_SUCCESS) {
        printf("frame of %zu bytes: ", len);
        msgpack_object_print(stdout, msg.data);
        printf("\n");
    }
    msgpack_unpacked_destroy(&msg);
    free(bytes);
}

int main(void)
{
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;
    ax_frame_format_t fmt = {.header_size = HEADER, .max_frame_size = 64 * 1024};
    static const char *const texts[] = {"hello", "from the", "encode buffer"};
    ax_encode_buffer_t *eb = NULL;
    ax_decode_buffer_t *db = NULL;
    ax_lease_t msgs[3], frame;
    unsigned char wire[1024];
    size_t wire_len = 0, taken;
    pthread_t thread;
    ax_status_t st;

    /* 1. Sizes usually come from a configuration file as strings. */
    if ((st = ax_parse_size("16KiB", &cfg.chunk_size)) != AX_OK)
        return fail("chunk_size", st);
    cfg.initial_chunk_count = 1;
    cfg.max_chunk_count = 8;
    if ((st = ax_buffer_config_validate(&cfg)) != AX_OK)
        return fail("config", st);
    printf("config: chunk_size %zu, up to %zu chunks\n", cfg.chunk_size, cfg.max_chunk_count);

    /* A broken config is refused with a reason, never an abort. */
    ax_buffer_config_t bad = cfg;
    bad.encode_buf_min_free_space = bad.chunk_size;
    if (ax_buffer_config_validate(&bad) == AX_EINVAL)
        printf("rejected as expected: %s\n", ax_error_detail());

    /* 2. The encode buffer owns its pool; this thread is the owner. */
    if ((st = ax_encode_buffer_create(&cfg, &eb)) != AX_OK)
        return fail("encode buffer", st);
    for (unsigned i = 0; i < 3; i++) {
        if ((st = encode_greeting(eb, i, texts[i], &msgs[i])) != AX_OK)
            return fail("encode", st);
        /* What a network thread would writev(): copy it to our "socket". */
        wire_len += ax_lease_copy_out(&msgs[i], 0, wire + wire_len, sizeof wire - wire_len);
    }
    print_stats("after encoding", ax_encode_buffer_pool(eb));

    /* 3. Give message 0 to another thread; it releases it there. */
    pthread_create(&thread, NULL, release_elsewhere, &msgs[0]);
    pthread_join(thread, NULL);
    ax_lease_release(&msgs[1]);
    ax_lease_release(&msgs[2]);

    /* 4. Every lease is gone, so no chunk counts as leased: the encoder
     * will write over its chunk instead of taking another. */
    print_stats("after releasing", ax_encode_buffer_pool(eb));
    ax_encode_buffer_destroy(&eb);

    /* 5. The receiving side: feed bytes in odd-sized pieces, as reads from
     * a socket arrive, and take out whole frames. */
    if ((st = ax_decode_buffer_create(&cfg, &fmt, &db)) != AX_OK)
        return fail("decode buffer", st);
    for (size_t off = 0; off < wire_len; off += taken) {
        size_t piece = wire_len - off < 7 ? wire_len - off : 7;

        if ((st = ax_decode_buffer_feed(db, wire + off, piece, &taken)) != AX_OK)
            return fail("feed", st);
        while (ax_decode_buffer_next(db, &frame) == AX_OK) {
            print_frame(&frame);
            ax_lease_release(&frame);
        }
    }
    ax_decode_buffer_destroy(&db);
    return 0;
}
