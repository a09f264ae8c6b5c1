/* Internal: growing an array of any element type. */
#ifndef AXON_COMMON_GROW_H
#define AXON_COMMON_GROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/*
 * Make room for `need` elements of `size` bytes in *items (capacity *cap),
 * doubling from `first`. false when out of memory: *items and *cap are
 * then unchanged, so a failed growth loses nothing.
 */
static inline bool ax__grow(void *items, size_t *cap, size_t need, size_t size, size_t first)
{
    void **p = items;
    size_t n = *cap ? *cap : first;
    void *grown;

    if (need <= *cap)
        return true;
    while (n < need)
        n *= 2;
    if (n > (size_t)-1 / size)
        return false;
    grown = realloc(*p, n * size);
    if (grown == NULL)
        return false;
    *p = grown;
    *cap = n;
    return true;
}

#endif
