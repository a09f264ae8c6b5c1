/* Message memory: mimalloc, a per-thread pool, or libc (see msgmem.h). */
#include <stdlib.h>
#include <string.h>

#include "serial/msgmem.h"
#include "common/ax_atomic.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define MEM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MEM_POISON(p, n) ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if defined(AXON_TSAN)
/* The allocators' own synchronisation is invisible to TSan (mimalloc is
 * not instrumented; the pool's hand-over is, but reuse of an address is
 * what TSan must see): a free releases the address and the allocation
 * that returns it acquires it, as TSan's own malloc interceptors do. */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define MEM_HANDOVER_FREE(p) __tsan_release(p)
#define MEM_HANDOVER_ALLOC(p) __tsan_acquire(p)
#else
#define MEM_HANDOVER_FREE(p) ((void)(p))
#define MEM_HANDOVER_ALLOC(p) ((void)(p))
#endif

#if defined(AXON_MSGMEM_MIMALLOC)
/* ---- mimalloc ----------------------------------------------------------- */
/*
 * Loaded with dlopen(RTLD_LOCAL), not linked: Debian's libmimalloc.so also
 * defines malloc and free, and a program that had it among its DT_NEEDED
 * ahead of libc (any program linking libaxon.a) would get mimalloc for
 * every malloc in the process. Loaded locally, its malloc resolves nobody's
 * symbols; only the mi_ functions we look up are called. Without the
 * library (it is a runtime dependency, but a user may not have it), message
 * memory falls back to calloc/free, and ax__msgmem_name says so.
 */
#include <dlfcn.h>
#include <pthread.h>

static void *(*mi_malloc_fn)(size_t);
static void (*mi_free_fn)(void *);
static void (*mi_collect_fn)(bool);
static _Thread_local unsigned long allocs;       /* by this thread */
static _Thread_local unsigned long allocs_collected; /* allocs at its last collect */
static pthread_once_t mi_once = PTHREAD_ONCE_INIT;
/* Atomic: 1 once mi_load has run and its pointers are stored (mi_loaded):
 * an allocation reads it instead of calling pthread_once. */
static uint32_t mi_ready;
static const char *mi_name = "libc (mimalloc not found)";

static void mi_load(void)
{
    void *h;
    void *(*m)(size_t);
    void (*f)(void *);

#if defined(AXON_TSAN)
    /* TSan builds give messages calloc/free, which TSan intercepts and
     * understands: mimalloc is not instrumented, and the reuse of a block
     * freed on another thread is a hand-over TSan cannot see inside it. */
    mi_name = "libc (TSan build)";
    return;
#endif
    h = dlopen(AXON_MIMALLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        return;
    /* POSIX: a data pointer from dlsym converts to a function pointer. */
    /* mi_malloc, not mi_zalloc: with mi_zalloc, valgrind reported two
     * "Invalid free" of mimalloc memory in bounded_producer (not
     * understood), and it did not clearly pay: pingpong_alloc/pingpong
     * 1.24/1.24/1.25 with it, 1.23/1.24/1.78/1.52 with our own memset,
     * where the slow runs are the scheduling mode, not the zeroing. */
    *(void **)&m = dlsym(h, "mi_malloc");
    *(void **)&f = dlsym(h, "mi_free");
    *(void **)&mi_collect_fn = dlsym(h, "mi_collect"); /* optional */
    if (m == NULL || f == NULL) {
        dlclose(h);
        return;
    }
    mi_malloc_fn = m;
    mi_free_fn = f;
    mi_name = "mimalloc";
    /* The handle stays open for the life of the process: messages may be
     * freed by any thread until exit. */
}

/* mi_load, then the flag that lets allocations skip pthread_once. */
static void mi_loaded(void)
{
    mi_load();
    /* Store fence (a release in the TSan build): the pointers before the
     * flag, for ax__msgmem_alloc's load of it. */
    ck_pr_fence_store();
    ck_pr_store_32(&mi_ready, 1);
}

const char *ax__msgmem_name(void)
{
    pthread_once(&mi_once, mi_loaded);
    return mi_name;
}

bool ax__msgmem_collect_due(void)
{
    return allocs != allocs_collected;
}

unsigned long ax__msgmem_allocs(void)
{
    return allocs;
}

void ax__msgmem_collect(void)
{
    allocs_collected = allocs;
    pthread_once(&mi_once, mi_loaded);
    /* force: also decommit the emptied pages (RSS goes down), not only
     * keep them for this thread's next allocations. */
    if (mi_collect_fn != NULL)
        mi_collect_fn(true);
}

void *ax__msgmem_alloc(size_t size)
{
    void *p;

    /* The flag, then the pointers: a load fence pairs with mi_loaded's
     * store fence (the flag's load is an acquire in the TSan build). The
     * first allocations take pthread_once, which orders them itself. */
    if (ck_pr_load_32(&mi_ready) != 0)
        ck_pr_fence_load();
    else
        pthread_once(&mi_once, mi_loaded);
    if (mi_malloc_fn == NULL)
        return calloc(1, size);
    /* mi_malloc, then our own memset: under TSan the hand-over must come
     * before the first write (TSan builds use calloc today, but the order
     * keeps this right if they stop). */
    p = mi_malloc_fn(size);
    allocs++;
    if (p != NULL) {
        MEM_HANDOVER_ALLOC(p);
        memset(p, 0, size);
    }
    return p;
}

void ax__msgmem_free(void *p, size_t size)
{
    /* Not poisoned for ASan: mimalloc's own memsets (mi_zalloc, page
     * reuse) go through ASan's interceptors and would trip on it. */
    (void)size;
    if (p == NULL)
        return;
    /* No pthread_once here: p came from ax__msgmem_alloc, which ran the
     * once before it returned, and p reached this thread by a hand-off
     * after that, so the pointers it wrote are visible (happens-before is
     * transitive). */
    if (mi_free_fn == NULL) {
        free(p);
        return;
    }
    MEM_HANDOVER_FREE(p);
    mi_free_fn(p);
}

#elif defined(AXON_MSGMEM_POOL)
/* ---- per-thread size-class pool ----------------------------------------- */
#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>

#include "common/ax_atomic.h"
#include <ck_spinlock.h>

#define NCLASSES 6          /* 64, 128, ..., 2048 bytes */
#define MIN_SHIFT 6
#define BATCH 64            /* blocks moved between a thread and the global list */
#define LOCAL_MAX (4 * BATCH) /* per class and thread, before a batch leaves */
#define GLOBAL_MAX 1024     /* batches per class; beyond, blocks go to free() */

/* A free block; the first of a batch also links the batches. */
typedef struct block {
    struct block *next;
    struct block *next_batch;
    size_t nblocks;
} block_t;

static struct global_class {
    alignas(64) ck_spinlock_t lock;
    block_t *batches;
    size_t nbatches;
} global[NCLASSES]; /* zero: unlocked and empty */

typedef struct local_class {
    block_t *head;
    unsigned count;
} local_class_t;

static _Thread_local local_class_t local[NCLASSES];
static _Thread_local int local_registered;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* Blocks go back to the global lists or to free() as they are freed. */
bool ax__msgmem_collect_due(void)
{
    return false;
}

unsigned long ax__msgmem_allocs(void)
{
    return 0;
}

void ax__msgmem_collect(void)
{
}

const char *ax__msgmem_name(void)
{
    return "pool";
}

static int size_class(size_t size)
{
    int c = 0;

    while (c < NCLASSES && ((size_t)1 << (c + MIN_SHIFT)) < size)
        c++;
    return c < NCLASSES ? c : -1;
}

static size_t class_size(int c)
{
    return (size_t)1 << (c + MIN_SHIFT);
}

/* Hand a chain of n blocks to the global list, or to free() when it is
 * full. */
static void give_batch(int c, block_t *head, size_t n)
{
    struct global_class *g = &global[c];

    head->nblocks = n;
    ck_spinlock_lock(&g->lock);
    if (g->nbatches < GLOBAL_MAX) {
        head->next_batch = g->batches;
        ck_pr_store_ptr(&g->batches, head); /* read by take's unlocked peek */
        g->nbatches++;
        head = NULL;
    }
    ck_spinlock_unlock(&g->lock);
    while (head != NULL) {
        block_t *next = head->next;

        free(head);
        head = next;
    }
}

/* A thread that ends gives its blocks back. */
static void flush_local(void *unused)
{
    (void)unused;
    for (int c = 0; c < NCLASSES; c++) {
        if (local[c].head != NULL)
            give_batch(c, local[c].head, local[c].count);
        local[c].head = NULL;
        local[c].count = 0;
    }
}

static void make_key(void)
{
    pthread_key_create(&exit_key, flush_local);
}

static void register_thread(void)
{
    pthread_once(&exit_once, make_key);
    /* Any non-NULL value: the destructor runs only for those. */
    pthread_setspecific(exit_key, &local_registered);
    local_registered = 1;
}

void *ax__msgmem_alloc(size_t size)
{
    int c = size_class(size);
    local_class_t *l;
    block_t *b;

    if (c < 0)
        return calloc(1, size);
    l = &local[c];
    if (l->head == NULL) {
        struct global_class *g = &global[c];

        if (!local_registered)
            register_thread();
        /* Unlocked peek: a stale answer costs one malloc or one lock. */
        if (ck_pr_load_ptr(&g->batches) != NULL) {
            ck_spinlock_lock(&g->lock);
            b = g->batches;
            if (b != NULL) {
                ck_pr_store_ptr(&g->batches, b->next_batch); /* read by the peek */
                g->nbatches--;
                l->head = b;
                l->count = (unsigned)b->nblocks;
            }
            ck_spinlock_unlock(&g->lock);
        }
        if (l->head == NULL)
            return calloc(1, class_size(c));
    }
    b = l->head;
    MEM_UNPOISON(b, class_size(c));
    MEM_HANDOVER_ALLOC(b);
    l->head = b->next;
    l->count--;
    memset(b, 0, size);
    return b;
}

void ax__msgmem_free(void *p, size_t size)
{
    int c = size_class(size);
    local_class_t *l;
    block_t *b = p;

    if (p == NULL)
        return;
    /* Any malloc block big enough can serve the class, whoever made it. */
    if (c < 0 || malloc_usable_size(p) < class_size(c)) {
        free(p);
        return;
    }
    if (!local_registered)
        register_thread();
    l = &local[c];
    MEM_HANDOVER_FREE(b);
    MEM_POISON((char *)b + sizeof(block_t), class_size(c) - sizeof(block_t));
    b->next = l->head;
    l->head = b;
    if (++l->count > LOCAL_MAX) {
        /* Keep the newest blocks (warm in this cache); the BATCH oldest
         * leave together, so every global batch holds exactly BATCH. */
        block_t *cut = l->head;

        for (unsigned i = 1; i < LOCAL_MAX + 1 - BATCH; i++)
            cut = cut->next;
        b = cut->next;
        cut->next = NULL;
        l->count -= BATCH;
        give_batch(c, b, BATCH);
    }
}

#else
/* ---- libc ------------------------------------------------------------------ */

/* calloc and free: nothing is kept here. */
bool ax__msgmem_collect_due(void)
{
    return false;
}

unsigned long ax__msgmem_allocs(void)
{
    return 0;
}

void ax__msgmem_collect(void)
{
}

const char *ax__msgmem_name(void)
{
    return "libc";
}

void *ax__msgmem_alloc(size_t size)
{
    return calloc(1, size);
}

void ax__msgmem_free(void *p, size_t size)
{
    (void)size;
    free(p);
}
#endif
