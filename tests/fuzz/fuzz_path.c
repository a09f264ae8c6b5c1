/*
 * libFuzzer target for the ActorPath codecs. The same bytes are tried two
 * ways: as text for ax_path_parse/ax_addr_parse, and as msgpack for
 * ax_path_unpack. Besides "never crash", it checks the round-trip
 * promises of serial.h, and abort()s when one breaks so that libFuzzer
 * keeps the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "axon/serial.h"
#include "serial/mpcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Everything that must hold for a path either codec accepted. */
static void check_valid_path(const ax_path_t *p)
{
    char text[AX_PATH_STR_MAX];
    char small[16];
    ax_path_t q;
    msgpack_sbuffer sb, sb2;
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t off = 0;
    size_t n;

    check(ax_path_cmp(p, p) == 0);

    /* Text: the canonical form fits, parses back to an equal path, and is
     * a fixed point. */
    n = ax_path_format(p, text, sizeof text);
    check(n < sizeof text && n == strlen(text));
    check(ax_path_parse(text, &q) == AX_OK);
    check(ax_path_cmp(p, &q) == 0 && ax_path_cmp(&q, p) == 0);
    check(ax_path_hash(p) == ax_path_hash(&q));
    {
        char again[AX_PATH_STR_MAX];

        check(ax_path_format(&q, again, sizeof again) == n && strcmp(again, text) == 0);
    }
    /* A short buffer gets a NUL-terminated prefix and the full length. */
    check(ax_path_format(p, small, sizeof small) == n);
    check(strlen(small) == (n < sizeof small ? n : sizeof small - 1));
    check(strncmp(small, text, strlen(small)) == 0);

    /* Wire: pack, unpack, equal; and packing the result gives the same
     * bytes (the encoding is a function of the path). */
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    check(ax_path_pack(p, &pk) == 0);
    msgpack_unpacked_init(&u);
    check(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
    check(off == sb.size);
    memset(&q, 0xa5, sizeof q);
    check(ax_path_unpack(&u.data, &q) == AX_OK);
    check(ax_path_cmp(p, &q) == 0 && ax_path_hash(p) == ax_path_hash(&q));
    msgpack_packer_init(&pk, &sb2, msgpack_sbuffer_write);
    check(ax_path_pack(&q, &pk) == 0);
    check(sb.size == sb2.size && memcmp(sb.data, sb2.data, sb.size) == 0);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    ax_path_t p, before;
    ax_addr_t a;
    ax_status_t s;

    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';

    memset(&p, 0x5a, sizeof p);
    before = p;
    s = ax_path_parse(text, &p);
    if (s == AX_OK) {
        check_valid_path(&p);
        /* Outside IPv6 literals the grammar has one spelling per path, so
         * an accepted text is already canonical. */
        if (strchr(text, '[') == NULL) {
            char canon[AX_PATH_STR_MAX];

            ax_path_format(&p, canon, sizeof canon);
            check(strcmp(canon, text) == 0);
        }
    } else {
        check(s == AX_EINVAL);
        check(ax_error_detail()[0] != '\0');
        check(memcmp(&p, &before, sizeof p) == 0);
    }

    s = ax_addr_parse(text, &a);
    if (s == AX_OK) {
        char buf[64];
        ax_addr_t b;
        size_t n = ax_addr_format(&a, buf, sizeof buf);

        check(n < sizeof buf);
        check(ax_addr_parse(buf, &b) == AX_OK && ax_addr_eq(&a, &b));
        check(strchr(text, '[') != NULL || strcmp(buf, text) == 0);
    } else {
        check(s == AX_EINVAL && ax_error_detail()[0] != '\0');
    }
    free(text);
}

static void fuzz_wire(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    size_t off = 0;

    msgpack_unpacked_init(&u);
    /* Every object in the input, not just the first: a corpus entry can
     * then carry several candidate paths. Each passes the receive path's
     * bounds check first: msgpack-c allocates a container's elements as
     * soon as it reads the header, so five bytes claiming an array of 2^27
     * elements would cost gigabytes. What the check refuses (truncated,
     * not msgpack, nested too deep), msgpack-c would refuse too. */
    while (off < size && ax__msgpack_check(data + off, size - off, 1) == AX_OK) {
        size_t prev = off;
        msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)data, size, &off);
        ax_path_t p, before;
        ax_status_t s;

        if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES)
            break;
        memset(&p, 0x3c, sizeof p);
        before = p;
        s = ax_path_unpack(&u.data, &p);
        if (s == AX_OK) {
            check_valid_path(&p);
        } else {
            check(s == AX_EPROTO && ax_error_detail()[0] != '\0');
            check(memcmp(&p, &before, sizeof p) == 0);
        }
        if (off <= prev)
            break;
    }
    msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_text(data, size);
    fuzz_wire(data, size);
    return 0;
}
