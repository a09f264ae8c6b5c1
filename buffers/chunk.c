/* BufferChunk and BufferPool. */
#include <stdlib.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/error.h"
#include <ck_spinlock.h>

/*
 * Chunk memory outlives its pool in a bounded process-wide cache. A pool
 * dies with its actor, and a chunk (128 KiB by default) is above glibc's
 * mmap threshold: each new actor's pool mapped and faulted in its chunks
 * afresh and each end unmapped them again. An actor spawned per transfer
 * of 64 KiB messages then ran at 0.4x of a bare socket, and at 1.0x with
 * the chunks kept (dispatch/NOTES.md, "Throughput"). The cache holds at
 * most CACHE_BYTES_MAX, room for a window of 1000 such messages (about
 * 66 MB; 64 MiB of room gave 0.5x); it is emptied when the process goes
 * idle (the network thread's malloc_trim, a worker's idle collect) and at
 * exit.
 * Under ASan it is off, so that a stale lease's access stays a
 * use-after-free that ASan reports.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_BYTES_MAX ((size_t)0)
#else
#define CACHE_BYTES_MAX ((size_t)128 << 20)
#endif
#define CACHE_SCAN 8 /* entries looked at for a chunk of the wanted size */

static ck_spinlock_t cache_lock = CK_SPINLOCK_INITIALIZER;
static ax_chunk_t *cache_head; /* under cache_lock (stores atomic: peeks) */
static size_t cache_bytes;     /* under cache_lock */

static void cache_put(ax_chunk_t *c)
{
    ck_spinlock_lock(&cache_lock);
    if (cache_bytes + c->size <= CACHE_BYTES_MAX) {
        c->next = cache_head;
        ck_pr_store_ptr(&cache_head, c); /* read unlocked by the peeks */
        cache_bytes += c->size;
        ck_spinlock_unlock(&cache_lock);
        return;
    }
    ck_spinlock_unlock(&cache_lock);
    free(c);
}

static ax_chunk_t *cache_take(uint32_t size)
{
    ax_chunk_t **pp, *c = NULL;
    unsigned n = 0;

    /* An unlocked peek: a stale answer costs an allocation or a lock. */
    if (ck_pr_load_ptr(&cache_head) == NULL)
        return NULL;
    ck_spinlock_lock(&cache_lock);
    for (pp = &cache_head; *pp != NULL && n < CACHE_SCAN; pp = &(*pp)->next, n++) {
        if ((*pp)->size == size) {
            c = *pp;
            ck_pr_store_ptr(pp, c->next); /* pp may be &cache_head: see cache_put */
            cache_bytes -= c->size;
            break;
        }
    }
    ck_spinlock_unlock(&cache_lock);
    return c;
}

size_t ax__chunk_cache_trim(void)
{
    ax_chunk_t *c, *next;
    size_t bytes;

    /* A peek, as in cache_take: a chunk put meanwhile waits for the next trim. */
    if (ck_pr_load_ptr(&cache_head) == NULL)
        return 0;
    ck_spinlock_lock(&cache_lock);
    c = cache_head;
    bytes = cache_bytes;
    ck_pr_store_ptr(&cache_head, NULL); /* see cache_put */
    cache_bytes = 0;
    ck_spinlock_unlock(&cache_lock);
    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    return bytes;
}

/* At exit: what the cache holds is nobody's leak. */
__attribute__((destructor)) static void cache_drain(void)
{
    ax__chunk_cache_trim();
}

/* What a foreign chunk keeps in own_: how to give the memory back. */
struct foreign_lender {
    void (*release)(void *arg);
    void *arg;
};

ax_status_t ax__lease_foreign(const void *data, size_t len, void (*release)(void *arg), void *arg,
                              ax_lease_t *out)
{
    size_t bytes = (sizeof(ax_chunk_t) + sizeof(struct foreign_lender) + 63) & ~(size_t)63;
    ax_chunk_t *c;

    *out = AX_LEASE_EMPTY;
    if (len > UINT32_MAX)
        return ax__error(AX_EINVAL, "foreign lease: %zu bytes is above a slice's 4 GiB - 1", len);
    c = aligned_alloc(64, bytes);
    if (c == NULL)
        return ax__error(AX_ENOMEM, "foreign lease: out of memory");
    c->refs = 1; /* the lease's; not yet visible to any other thread */
    c->state = AX__CHUNK_FOREIGN;
    c->size = (uint32_t)len;
    c->pad_ = 0;
    c->next = NULL;
    c->all_next = NULL;
    c->data = (unsigned char *)(uintptr_t)data; /* read only: leases are read-only */
    *(struct foreign_lender *)(void *)c->own_ = (struct foreign_lender){release, arg};
    *out = (ax_lease_t){c, 0, (uint32_t)len, NULL};
    return AX_OK;
}

static void foreign_free(ax_chunk_t *c, bool give_back)
{
    struct foreign_lender l = *(struct foreign_lender *)(void *)c->own_;

    free(c);
    if (give_back && l.release != NULL)
        l.release(l.arg);
}

void ax__lease_foreign_cancel(ax_lease_t *l)
{
    /* Relaxed: a lease never shared has had refs touched by this thread
     * only, so no other thread's accesses need ordering before the free. */
    if (l->chunk != NULL && l->ext == NULL && l->chunk->state == AX__CHUNK_FOREIGN &&
        ck_pr_load_32(&l->chunk->refs) == 1)
        foreign_free(l->chunk, false);
    else
        ax_lease_release(l); /* shared after all: released with its last lease */
    *l = AX_LEASE_EMPTY;
}

void ax__chunk_unref_n(ax_chunk_t *c, uint32_t n)
{
    /* A full barrier on every ck target: the bytes these holders read are
     * ordered before the owner can observe refs == 1 and reuse them, and
     * the thread that drops the count to 0 sees every earlier write. The
     * old count was n when these were the last references. */
    if (ck_pr_faa_32(&c->refs, (uint32_t)0 - n) == n) {
        if (c->state == AX__CHUNK_FOREIGN)
            foreign_free(c, true);
        else
            cache_put(c);
    }
}

void ax__chunk_unref(ax_chunk_t *c)
{
    ax__chunk_unref_n(c, 1);
}

static ax_status_t chunk_alloc(ax_buffer_pool_t *pool, ax_chunk_t **out)
{
    ax_chunk_t *c;
    size_t bytes = sizeof(*c) + pool->cfg.chunk_size;

    /* Round up so aligned_alloc's size is a multiple of the alignment. */
    bytes = (bytes + 63) & ~(size_t)63;
    c = cache_take((uint32_t)pool->cfg.chunk_size);
    if (c == NULL)
        c = aligned_alloc(64, bytes);
    if (c == NULL)
        return ax__error(AX_ENOMEM, "buffer pool: cannot allocate a chunk of %zu bytes",
                         pool->cfg.chunk_size);
    c->refs = 1; /* the pool's hold; not yet visible to any other thread */
    c->state = AX__CHUNK_FREE;
    c->size = (uint32_t)pool->cfg.chunk_size;
    c->pad_ = 0;
    c->data = c->own_;
    c->next = NULL;
    c->all_next = pool->all;
    pool->all = c;
    pool->count++;
    *out = c;
    return AX_OK;
}

ax_status_t ax_buffer_pool_create(const ax_buffer_config_t *cfg, ax_buffer_pool_t **out)
{
    ax_buffer_pool_t *pool;
    ax_status_t st;

    if (out == NULL)
        return ax__error(AX_EINVAL, "buffer pool: NULL out");
    st = ax_buffer_config_validate(cfg);
    if (st != AX_OK)
        return st;
    pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return ax__error(AX_ENOMEM, "buffer pool: out of memory");
    pool->cfg = *cfg;
    for (size_t i = 0; i < cfg->initial_chunk_count; i++) {
        ax_chunk_t *c = NULL; /* set on success; gcc -O3 cannot see that */

        st = chunk_alloc(pool, &c);
        if (st != AX_OK) {
            ax_buffer_pool_destroy(&pool);
            return st;
        }
        c->next = pool->free_top;
        pool->free_top = c;
    }
    *out = pool;
    return AX_OK;
}

void ax_buffer_pool_destroy(ax_buffer_pool_t **poolp)
{
    ax_buffer_pool_t *pool;
    ax_chunk_t *c, *next;

    if (poolp == NULL || *poolp == NULL)
        return;
    pool = *poolp;
    for (c = pool->all; c != NULL; c = next) {
        next = c->all_next;
        c->state = AX__CHUNK_RETIRED;
        ax__chunk_unref(c); /* drop the pool's hold; leases free the rest */
    }
    free(pool);
    *poolp = NULL;
}

/* Unlink the first retired chunk that has no lease left, oldest first. */
static ax_chunk_t *reclaim_retired(ax_buffer_pool_t *pool)
{
    ax_chunk_t *prev = NULL;

    for (ax_chunk_t *c = pool->retired_head; c != NULL; prev = c, c = c->next) {
        if (!ax__chunk_reusable(c))
            continue;
        if (prev == NULL)
            pool->retired_head = c->next;
        else
            prev->next = c->next;
        if (pool->retired_tail == c)
            pool->retired_tail = prev;
        return c;
    }
    return NULL;
}

/* ax_buffer_pool_get without the count and the detail (buffers/chunk.h). */
ax_status_t ax__buffer_pool_try_get(ax_buffer_pool_t *pool, ax_chunk_t **out)
{
    ax_chunk_t *c = pool->free_top;

    if (c != NULL) {
        pool->free_top = c->next;
    } else if ((c = reclaim_retired(pool)) == NULL) {
        if (pool->count >= pool->cfg.max_chunk_count)
            return AX_ENOBUFS;
        if (chunk_alloc(pool, &c) != AX_OK)
            return AX_ENOMEM;
    }
    c->next = NULL;
    c->state = AX__CHUNK_ACTIVE;
    pool->active++;
    *out = c;
    return AX_OK;
}

ax_status_t ax_buffer_pool_get(ax_buffer_pool_t *pool, ax_chunk_t **out)
{
    ax_status_t st = ax__buffer_pool_try_get(pool, out);

    if (st == AX_ENOBUFS) {
        pool->exhausted++;
        return ax__error(AX_ENOBUFS, "buffer pool: all %zu chunks are leased (max_chunk_count)",
                         pool->count);
    }
    return st;
}

void ax_buffer_pool_put(ax_buffer_pool_t *pool, ax_chunk_t **chunkp)
{
    ax_chunk_t *c;

    if (chunkp == NULL || *chunkp == NULL)
        return;
    c = *chunkp;
    *chunkp = NULL;
    pool->active--;
    c->state = AX__CHUNK_RETIRED;
    c->next = NULL;
    if (pool->retired_tail != NULL)
        pool->retired_tail->next = c;
    else
        pool->retired_head = c;
    pool->retired_tail = c;
}

/* Forget c (a chunk the pool holds alone) and free it. */
static void chunk_drop(ax_buffer_pool_t *pool, ax_chunk_t *c)
{
    for (ax_chunk_t **pp = &pool->all; *pp != NULL; pp = &(*pp)->all_next) {
        if (*pp == c) {
            *pp = c->all_next;
            break;
        }
    }
    pool->count--;
    ax__chunk_unref(c); /* the pool's hold was the last: frees it */
}

size_t ax_buffer_pool_trim(ax_buffer_pool_t *pool, size_t keep, size_t most)
{
    size_t freed = 0;

    while (freed < most && pool->count > keep && pool->free_top != NULL) {
        ax_chunk_t *c = pool->free_top;

        pool->free_top = c->next;
        chunk_drop(pool, c);
        freed++;
    }
    /* Retired chunks whose leases are all gone are free too. */
    while (freed < most && pool->count > keep) {
        ax_chunk_t *c = reclaim_retired(pool);

        if (c == NULL)
            break;
        chunk_drop(pool, c);
        freed++;
    }
    return freed;
}

void ax_buffer_pool_stats(const ax_buffer_pool_t *pool, ax_buffer_pool_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->chunks_allocated = pool->count;
    out->chunks_active = pool->active;
    out->bytes_allocated = pool->count * pool->cfg.chunk_size;
    out->exhausted = pool->exhausted;
    for (const ax_chunk_t *c = pool->free_top; c != NULL; c = c->next)
        out->chunks_free++;
    for (const ax_chunk_t *c = pool->retired_head; c != NULL; c = c->next) {
        if (ax__chunk_reusable(c))
            out->chunks_free++;
        else
            out->chunks_leased++;
    }
}

const ax_buffer_config_t *ax_buffer_pool_config(const ax_buffer_pool_t *pool)
{
    return &pool->cfg;
}

unsigned char *ax_chunk_data(ax_chunk_t *chunk)
{
    return chunk->data;
}

size_t ax_chunk_size(const ax_chunk_t *chunk)
{
    return chunk->size;
}

int ax_chunk_unleased(const ax_chunk_t *chunk)
{
    return ax__chunk_reusable(chunk);
}

ax_status_t ax_chunk_lease(ax_chunk_t *chunk, size_t off, size_t len, ax_lease_t *out)
{
    if (chunk == NULL || out == NULL || off > chunk->size || len > chunk->size - off)
        return ax__error(AX_EINVAL, "chunk lease: range [%zu, +%zu) is outside the chunk", off, len);
    if (len == 0) {
        *out = AX_LEASE_EMPTY;
        return AX_OK;
    }
    ax__chunk_ref(chunk);
    out->chunk = chunk;
    out->off = (uint32_t)off;
    out->len = (uint32_t)len;
    out->ext = NULL;
    return AX_OK;
}
