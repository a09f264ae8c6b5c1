/* Internal: copying and comparing the few bytes of a msgpack token, a path
 * or a small frame. */
#ifndef AXON_COMMON_BYTES_H
#define AXON_COMMON_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * memcpy for the sizes the wire paths copy most: msgpack tokens of 1 to 9
 * bytes and frame heads and payloads of a few dozen. Up to 128 bytes the copy
 * is a few fixed-size moves (the last may overlap the one before), inline, instead of a call into
 * the C library, whose dispatch costs more than such a copy. Larger copies
 * call memcpy. dst and src must not overlap, as for memcpy.
 */
static inline void ax__copy_small(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (n > 128) {
        memcpy(d, s, n);
    } else if (n >= 32) {
        for (size_t i = 0; i + 32 < n; i += 32)
            memcpy(d + i, s + i, 32);
        memcpy(d + n - 32, s + n - 32, 32);
    } else if (n >= 16) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/*
 * memcmp(a, b, n) == 0 for the wire's paths, which are a few dozen bytes:
 * up to 64 bytes, words of 8 (the last may overlap the one before) and
 * no call; longer ones call memcmp.
 */
static inline bool ax__same_small(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    uint64_t u, v, diff = 0;

    if (n > 64)
        return memcmp(x, y, n) == 0;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&u, x + i, 8);
            memcpy(&v, y + i, 8);
            diff |= u ^ v;
        }
        memcpy(&u, x + n - 8, 8);
        memcpy(&v, y + n - 8, 8);
        return (diff | (u ^ v)) == 0;
    }
    for (size_t i = 0; i < n; i++)
        diff |= (uint64_t)(x[i] ^ y[i]);
    return diff == 0;
}

#endif
