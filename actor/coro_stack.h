/*
 * Internal to actor/: coroutine stacks (coro_stack.c).
 *
 * A stack is one anonymous mapping: a guard page at its low end, then the
 * usable bytes, touched only as deep as the coroutine goes. The guard is
 * a guard region (madvise MADV_GUARD_INSTALL, Linux 6.13) where the kernel
 * has them: it does not split the mapping, so 100,000 stacks stay within
 * vm.max_map_count (65530 by default). Older kernels get an mprotect'ed
 * page, two map entries per stack, which caps live stacks near 32,000.
 */
#ifndef AXON_ACTOR_CORO_STACK_H
#define AXON_ACTOR_CORO_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"

typedef struct ax__stack_s {
    void *base;   /* the mapping's low end (the guard page); NULL: none */
    size_t size;  /* the whole mapping, guard included */
    unsigned vg_id; /* Valgrind's id for the stack, when built with it */
} ax__stack_t;

/* A stack with `usable` bytes (a multiple of the page size) above its
 * guard: from this thread's cache, or newly mapped. AX_ENOMEM with a
 * detail when the mapping fails. */
ax_status_t ax__stack_alloc(size_t usable, ax__stack_t *out);

/* Give a stack back: into this thread's cache when `cache` (workers), or
 * unmapped. Sets s->base to NULL; a stack without base does nothing. */
void ax__stack_free(ax__stack_t *s, bool cache);

/* The page-rounded usable size for a requested one. */
size_t ax__stack_round(size_t usable);

/* The usable bytes: from the guard's end to the top. */
static inline void *ax__stack_bottom(const ax__stack_t *s, size_t *usable);

/* Stacks held by coroutines now (allocated and not freed), in every
 * system of the process: for tests and benchmarks. */
uint64_t ax__stacks_held(void);

/* Whether guards are guard regions (true) or mprotect'ed pages. */
bool ax__stack_guard_regions(void);

size_t ax__page_size(void);

static inline void *ax__stack_bottom(const ax__stack_t *s, size_t *usable)
{
    size_t page = ax__page_size();

    if (usable != NULL)
        *usable = s->size - page;
    return (unsigned char *)s->base + page;
}

static inline void *ax__stack_top(const ax__stack_t *s)
{
    return (unsigned char *)s->base + s->size;
}

#endif
