/* The ck_malloc shared by Axon's tables (see ht_alloc.h). */
#include <stdlib.h>

#include "common/ht_alloc.h"

static void *ht_malloc(size_t n)
{
    return malloc(n);
}

static void *ht_realloc(void *p, size_t old, size_t n, bool defer)
{
    (void)old;
    (void)defer;
    return realloc(p, n);
}

static void ht_free(void *p, size_t n, bool defer)
{
    (void)n;
    (void)defer;
    free(p);
}

struct ck_malloc ax__ht_allocator = {ht_malloc, ht_realloc, ht_free};
