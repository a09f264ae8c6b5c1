/*
 * consumer.c: a program built against an installed Axon, as a user would
 * build it (find_package(axon) or pkg-config). It packs one msgpack message
 * into a pooled encode buffer and checks the lease holds exactly the bytes
 * msgpack-c produces on its own. Exits 0 on success.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h> /* axon/buffers.h only declares msgpack_packer */

#include <axon/buffers.h>
#include <axon/status.h>

static void pack_greeting(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "hello", 5);
    msgpack_pack_str_with_body(pk, "axon", 4);
    msgpack_pack_str_with_body(pk, "n", 1);
    msgpack_pack_uint32(pk, 42);
}

static int fail(const char *what, ax_status_t st)
{
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, ax_status_str(st), ax_error_detail());
    return 1;
}

int main(void)
{
    /* The reference bytes, from msgpack-c alone. */
    msgpack_sbuffer ref;
    msgpack_sbuffer_init(&ref);
    msgpack_packer ref_pk;
    msgpack_packer_init(&ref_pk, &ref, msgpack_sbuffer_write);
    pack_greeting(&ref_pk);

    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;
    cfg.chunk_size = 4096;
    ax_encode_buffer_t *eb = NULL;
    ax_status_t st = ax_encode_buffer_create(&cfg, &eb);
    if (st != AX_OK) {
        msgpack_sbuffer_destroy(&ref);
        return fail("ax_encode_buffer_create", st);
    }

    ax_lease_t lease = AX_LEASE_EMPTY;
    st = ax_encode_begin(eb, ref.size);
    if (st == AX_OK) {
        pack_greeting(ax_encode_packer(eb));
        st = ax_encode_end(eb, &lease);
    }
    if (st != AX_OK) {
        ax_encode_buffer_destroy(&eb);
        msgpack_sbuffer_destroy(&ref);
        return fail("encode", st);
    }

    int rc = 0;
    size_t len = ax_lease_len(&lease);
    char copy[64];
    if (len != ref.size || len > sizeof copy ||
        ax_lease_copy_out(&lease, 0, copy, len) != len || memcmp(copy, ref.data, len) != 0) {
        fprintf(stderr, "consumer: the lease holds %zu bytes, msgpack-c made %zu, or they differ\n",
                len, ref.size);
        rc = 1;
    }

    /* The status vocabulary round-trips through its wire byte. */
    if (ax_status_from_byte(ax_status_to_byte(AX_ENOBUFS)) != AX_ENOBUFS) {
        fprintf(stderr, "consumer: AX_ENOBUFS did not survive its wire byte\n");
        rc = 1;
    }

    printf("consumer: packed a %zu-byte msgpack message into a lease: %s; "
           "an exhausted pool says \"%s\"\n",
           len, ax_status_str(AX_OK), ax_status_str(AX_ENOBUFS));

    ax_lease_release(&lease);
    ax_encode_buffer_destroy(&eb);
    msgpack_sbuffer_destroy(&ref);
    return rc;
}
