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

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * msgpack-c allocates a container's elements as soon as it reads the
 * header, before it knows whether the input holds them: five bytes
 * claiming an array of 2^27 elements cost gigabytes. That is msgpack-c's
 * behaviour, not the path decoder's, so the harness walks the token stream
 * first and skips inputs whose containers declare more elements in all
 * than there are bytes (each element needs at least one). Any decoder of
 * untrusted bytes needs the same guard.
 */
static bool container_counts_fit(const uint8_t *d, size_t n)
{
    /* For each type byte 0xc0 + i up to 0xdf: the width of its length field,
     * the fixed bytes that follow it, and what the length counts: 0 body
     * bytes, 1 array elements, 2 map pairs. */
    static const struct { uint8_t len_width, extra, counts; } ext[32] = {
        [0x04] = {1, 0, 0}, [0x05] = {2, 0, 0}, [0x06] = {4, 0, 0},             /* bin */
        [0x07] = {1, 1, 0}, [0x08] = {2, 1, 0}, [0x09] = {4, 1, 0},             /* ext */
        [0x0a] = {0, 4, 0}, [0x0b] = {0, 8, 0},                                 /* float */
        [0x0c] = {0, 1, 0}, [0x0d] = {0, 2, 0}, [0x0e] = {0, 4, 0}, [0x0f] = {0, 8, 0},
        [0x10] = {0, 1, 0}, [0x11] = {0, 2, 0}, [0x12] = {0, 4, 0}, [0x13] = {0, 8, 0},
        [0x14] = {0, 2, 0}, [0x15] = {0, 3, 0}, [0x16] = {0, 5, 0}, [0x17] = {0, 9, 0},
        [0x18] = {0, 17, 0},                                                    /* fixext */
        [0x19] = {1, 0, 0}, [0x1a] = {2, 0, 0}, [0x1b] = {4, 0, 0},             /* str */
        [0x1c] = {2, 0, 1}, [0x1d] = {4, 0, 1}, [0x1e] = {2, 0, 2}, [0x1f] = {4, 0, 2},
    };
    uint64_t elements = 0;
    size_t i = 0;

    while (i < n) {
        uint8_t b = d[i++];

        if (b >= 0x80 && b <= 0x8f) {
            elements += 2u * (b & 0x0fu);
        } else if (b >= 0x90 && b <= 0x9f) {
            elements += b & 0x0fu;
        } else if (b >= 0xa0 && b <= 0xbf) {
            i += b & 0x1fu;
        } else if (b >= 0xc4 && b <= 0xdf) {
            uint64_t len;

            if (n - i < ext[b - 0xc0].len_width)
                break;
            len = be(d + i, ext[b - 0xc0].len_width);
            i += ext[b - 0xc0].len_width;
            if (ext[b - 0xc0].counts != 0)
                elements += len * ext[b - 0xc0].counts;
            else if (len > n - i)
                break;
            else
                i += (size_t)len + ext[b - 0xc0].extra;
        }
        if (elements > n)
            return false;
    }
    return elements <= n;
}

static void fuzz_wire(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    size_t off = 0;

    if (!container_counts_fit(data, size))
        return;
    msgpack_unpacked_init(&u);
    /* Every object in the input, not just the first: a corpus entry can
     * then carry several candidate paths. */
    while (off < size) {
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
