/*
 * Coroutine stacks: mmap with a guard page, and a small cache per thread
 * (each worker keeps the stacks of the coroutines that ended on it, so a
 * spawn and end cycle costs no system call in the steady state).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "actor/coro_stack.h"
#include "actor/coro_switch.h"
#include "common/ax_atomic.h"
#include "common/error.h"

#if defined(AXON_ASAN) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define CACHE_MAX 32u /* stacks kept per thread */

typedef struct stack_cache {
    ax__stack_t s[CACHE_MAX];
    unsigned n;
    bool registered;
} stack_cache_t;

static _Thread_local stack_cache_t tls_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
/* Both atomic, any order: held is a count for tests; guard_regions is a hint
 * for the next stack, which checks its own madvise or mprotect anyway. */
static uint64_t held;        /* stacks out of the cache, in coroutines */
static int guard_regions = -1; /* unknown until the first stack */

size_t ax__page_size(void)
{
    /* glibc answers from the auxiliary vector: no system call. */
    return (size_t)sysconf(_SC_PAGESIZE);
}

size_t ax__stack_round(size_t usable)
{
    size_t page = ax__page_size();

    return (usable + page - 1) / page * page;
}

uint64_t ax__stacks_held(void)
{
    return ck_pr_load_64(&held);
}

bool ax__stack_guard_regions(void)
{
    return ck_pr_load_int(&guard_regions) == 1;
}

/* A thread that exits unmaps what it cached. */
static void unmap_stack(ax__stack_t *s)
{
#ifdef AX__CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    munmap(s->base, s->size);
}

static void cache_destructor(void *arg)
{
    stack_cache_t *c = arg;

    while (c->n > 0)
        unmap_stack(&c->s[--c->n]);
}

static void cache_key_create(void)
{
    pthread_key_create(&cache_key, cache_destructor);
}

static ax_status_t map_stack(size_t usable, ax__stack_t *out)
{
    size_t page = ax__page_size(), size = usable + page;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

    if (base == MAP_FAILED)
        return ax__error(AX_ENOMEM, "coro: mmap of a %zu-byte stack failed: %s", size, strerror(errno));
    /* A guard region keeps the mapping whole; the fallback splits it. Only
     * the first stack tries the region on a kernel without them. */
    if (ck_pr_load_int(&guard_regions) != 0 && madvise(base, page, MADV_GUARD_INSTALL) == 0) {
        ck_pr_store_int(&guard_regions, 1); /* a hint for the next stacks */
    } else {
        ck_pr_store_int(&guard_regions, 0);
        if (mprotect(base, page, PROT_NONE) != 0) {
            int e = errno;

            munmap(base, size);
            return ax__error(AX_ENOMEM, "coro: guard page for a stack: %s%s", strerror(e),
                             e == ENOMEM ? " (vm.max_map_count reached?)" : "");
        }
    }
    out->base = base;
    out->size = size;
    out->vg_id = 0;
#ifdef AX__CORO_VALGRIND
    /* Without it Valgrind takes each switch for a wild stack pointer. */
    out->vg_id = VALGRIND_STACK_REGISTER(ax__stack_bottom(out, NULL), ax__stack_top(out));
#endif
    return AX_OK;
}

ax_status_t ax__stack_alloc(size_t usable, ax__stack_t *out)
{
    stack_cache_t *c = &tls_cache;
    size_t size = usable + ax__page_size();
    ax_status_t st = AX_OK;
    bool found = false;

    for (unsigned i = c->n; i-- > 0;) {
        if (c->s[i].size == size) {
            *out = c->s[i];
            c->s[i] = c->s[--c->n];
            found = true;
            break;
        }
    }
    if (!found)
        st = map_stack(usable, out);
    if (st == AX_OK)
        ck_pr_inc_64(&held); /* a count for tests: no order needed beyond atomicity */
    return st;
}

void ax__stack_free(ax__stack_t *s, bool cache)
{
    stack_cache_t *c = &tls_cache;

    if (s->base == NULL)
        return;
    ck_pr_dec_64(&held); /* a count for tests, as in alloc */
    /* Frames that never returned (a coroutine that was switched away from
     * for the last time) may leave poisoned shadow behind. */
    UNPOISON(ax__stack_bottom(s, NULL), s->size - ax__page_size());
    if (cache && c->n < CACHE_MAX) {
        if (!c->registered) {
            pthread_once(&cache_once, cache_key_create);
            pthread_setspecific(cache_key, c);
            c->registered = true;
        }
        c->s[c->n++] = *s;
    } else {
        unmap_stack(s);
    }
    s->base = NULL;
}
