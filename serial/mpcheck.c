/* Bounds check for untrusted msgpack (see mpcheck.h). */
#include <stdint.h>

#include "common/error.h"
#include "serial/mpcheck.h"

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

ax_status_t ax__msgpack_check(const void *data, size_t len, size_t objects)
{
    size_t consumed;

    return ax__msgpack_span(data, len, objects, &consumed);
}

/*
 * One pass over the headers with an explicit count of elements still owed,
 * so nesting costs no recursion: `owed` is how many more objects must
 * follow, `depth` tracks containers only to bound them.
 */
ax_status_t ax__msgpack_span(const void *data, size_t len, size_t objects, size_t *consumed)
{
    const unsigned char *p = data, *end = p + len;
    size_t owed = objects;
    /* Remaining element count of each open container. */
    uint64_t stack[AX__MSGPACK_MAX_DEPTH];
    size_t depth = 0;

    while (owed > 0 || depth > 0) {
        uint64_t count = 0, skip = 0;
        size_t left;
        unsigned char b;

        /* Close containers whose elements have all been seen. */
        while (depth > 0 && stack[depth - 1] == 0)
            depth--;
        if (depth == 0 && owed == 0)
            break;
        if (p >= end)
            return ax__error(AX_EPROTO, "msgpack: truncated at byte %zu", (size_t)(p - (const unsigned char *)data));
        if (depth > 0)
            stack[depth - 1]--;
        else
            owed--;
        b = *p++;
        left = (size_t)(end - p);
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (left < (n))                                                                            \
            return ax__error(AX_EPROTO, "msgpack: truncated header at byte %zu",                   \
                             (size_t)(p - 1 - (const unsigned char *)data));                       \
    } while (0)
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if ((b & 0xe0) == 0xa0) {
            skip = b & 0x1f; /* fixstr */
        } else if ((b & 0xf0) == 0x90) {
            count = b & 0x0f; /* fixarray */
        } else if ((b & 0xf0) == 0x80) {
            count = 2 * (uint64_t)(b & 0x0f); /* fixmap */
        } else {
            switch (b) {
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext 1: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xc4: case 0xd9: NEED(1); skip = be(p, 1); p += 1; left -= 1; break;
            case 0xc5: case 0xda: NEED(2); skip = be(p, 2); p += 2; left -= 2; break;
            case 0xc6: case 0xdb: NEED(4); skip = be(p, 4); p += 4; left -= 4; break;
            case 0xc7: NEED(1); skip = be(p, 1) + 1; p += 1; left -= 1; break;
            case 0xc8: NEED(2); skip = be(p, 2) + 1; p += 2; left -= 2; break;
            case 0xc9: NEED(4); skip = be(p, 4) + 1; p += 4; left -= 4; break;
            case 0xdc: NEED(2); count = be(p, 2); p += 2; left -= 2; break;
            case 0xdd: NEED(4); count = be(p, 4); p += 4; left -= 4; break;
            case 0xde: NEED(2); count = 2 * be(p, 2); p += 2; left -= 2; break;
            case 0xdf: NEED(4); count = 2 * be(p, 4); p += 4; left -= 4; break;
            default:
                return ax__error(AX_EPROTO, "msgpack: byte 0x%02x at %zu is not a type",
                                 b, (size_t)(p - 1 - (const unsigned char *)data));
            }
        }
#undef NEED
        if (skip > left)
            return ax__error(AX_EPROTO, "msgpack: %llu bytes declared at byte %zu, %zu left",
                             (unsigned long long)skip, (size_t)(p - 1 - (const unsigned char *)data), left);
        p += skip;
        left -= (size_t)skip;
        if (count > 0) {
            if (count > left)
                return ax__error(AX_EPROTO, "msgpack: a container of %llu elements with %zu bytes left",
                                 (unsigned long long)count, left);
            if (depth == AX__MSGPACK_MAX_DEPTH)
                return ax__error(AX_EPROTO, "msgpack: nested deeper than %d", AX__MSGPACK_MAX_DEPTH);
            stack[depth++] = count;
        }
    }
    *consumed = (size_t)(p - (const unsigned char *)data);
    return AX_OK;
}
