/*
 * Internal to buffers/: the chunk and pool layout shared by its files.
 * Other modules use only the lease's inline length and the batched
 * reference drop (the network thread's per-frame paths).
 *
 * Reference counting. refs = 1 while the pool holds the chunk (from its
 * allocation until the pool is destroyed), plus 1 per lease. So:
 *   refs == 1   no lease: the owner may write over or reuse the chunk;
 *   refs == 0   the pool is gone and so is every lease: free the memory.
 * Only the owner creates leases, so once the owner reads refs == 1 it stays
 * 1 until the owner itself leases again.
 */
#ifndef AXON_BUFFERS_CHUNK_H
#define AXON_BUFFERS_CHUNK_H

#include <stdalign.h>
#include <stdbool.h>

#include "axon/buffers.h"
#include "common/ax_atomic.h"

enum ax__chunk_state {
    AX__CHUNK_FREE,    /* in the pool's free stack */
    AX__CHUNK_ACTIVE,  /* handed out for writing */
    AX__CHUNK_RETIRED, /* locked: given back, waiting for its leases */
    AX__CHUNK_FOREIGN, /* no pool: data is memory of its lender (ax__lease_foreign) */
};

struct ax_chunk_s {
    uint32_t refs;        /* atomic (ck_pr); see above */
    uint32_t state;       /* owner only; FOREIGN is set at creation and never changes */
    uint32_t size;        /* bytes at data */
    uint32_t pad_;
    ax_chunk_t *next;     /* owner only: free stack or retired FIFO link */
    ax_chunk_t *all_next; /* owner only: every chunk of the pool */
    unsigned char *data;  /* own_, or a foreign chunk's lent memory */
    alignas(64) unsigned char own_[]; /* the bytes of a pooled or standalone chunk */
};

struct ax_lease_slice_s {
    ax_chunk_t *chunk;
    uint32_t off;
    uint32_t len;
};

/* The slices after the first of a chained lease. */
struct ax_lease_ext_s {
    size_t count;
    size_t total; /* bytes in these slices */
    struct ax_lease_slice_s slice[];
};

struct ax_buffer_pool_s {
    ax_buffer_config_t cfg;
    size_t count;          /* chunks allocated */
    size_t active;         /* chunks handed out */
    ax_chunk_t *free_top;  /* stack of free chunks */
    ax_chunk_t *retired_head, *retired_tail; /* FIFO, oldest first */
    ax_chunk_t *all;       /* every chunk, for stats and destroy */
    uint64_t exhausted;
};

/* ax_lease_len, inline for the library's per-frame paths: the call cost
 * the sending network thread 3.5% of its time at 64 B a message, for a
 * load and an add (dispatch/NOTES.md, "Where the slow phase's time goes,
 * and fewer instructions per frame"). */
static inline size_t ax__lease_len(const ax_lease_t *l)
{
    if (l == NULL || l->chunk == NULL)
        return 0;
    return l->len + (l->ext != NULL ? l->ext->total : 0);
}

/* One more reference. The caller already holds one (a lease or the pool's
 * hold), so the chunk cannot be freed or reused meanwhile: no ordering is
 * needed beyond the increment being atomic. */
static inline void ax__chunk_ref(ax_chunk_t *c)
{
    ck_pr_inc_32(&c->refs);
}

/* Drop a reference; free the chunk when it was the last one (into the
 * process-wide cache of chunk memory, chunk.c, while it has room). */
void ax__chunk_unref(ax_chunk_t *c);

/* Drop n references at once, for a holder of n leases on c that releases
 * them together; frees the chunk as ax__chunk_unref does when they were
 * the last. */
void ax__chunk_unref_n(ax_chunk_t *c, uint32_t n);

/* Free every chunk the cache holds; the bytes freed. Called when the
 * process goes idle. */
size_t ax__chunk_cache_trim(void);

/* True when only the pool's hold remains (owner only). */
static inline bool ax__chunk_reusable(const ax_chunk_t *c)
{
    /* Pairs with the release in ax__chunk_unref: once refs reads 1, every
     * reader of the chunk's bytes has finished before we write over them. */
    bool r = ck_pr_load_32(&c->refs) == 1;

    ck_pr_fence_acquire();
    return r;
}

/*
 * References on one chunk taken ahead by the chunk's owner (an encoder or
 * a decoder), AX__REF_STOCK at a time with one atomic add, and handed to
 * the leases it cuts from that chunk: one locked instruction for many
 * frames instead of one each. The owner returns the rest (ax__stock_drop)
 * before the chunk goes back to its pool or the pool is destroyed, and
 * meanwhile reads the chunk as unleased at refs == 1 + stock
 * (ax__chunk_reusable_stocked). Owner only, like the chunk's writing.
 */
#define AX__REF_STOCK 64u

typedef struct ax__ref_stock_s {
    ax_chunk_t *chunk; /* NULL when empty */
    uint32_t n;        /* references on chunk held ahead */
} ax__ref_stock_t;

static inline void ax__stock_drop(ax__ref_stock_t *s)
{
    if (s->n > 0)
        ax__chunk_unref_n(s->chunk, s->n);
    s->chunk = NULL;
    s->n = 0;
}

/* One reference on c, which the caller holds (the pool's hold), for a
 * new lease. */
static inline void ax__stock_take(ax__ref_stock_t *s, ax_chunk_t *c)
{
    if (c != s->chunk) {
        ax__stock_drop(s);
        s->chunk = c;
    }
    if (s->n == 0) {
        /* As ax__chunk_ref: c is held, so the add needs no ordering. */
        ck_pr_add_32(&c->refs, AX__REF_STOCK);
        s->n = AX__REF_STOCK;
    }
    s->n--;
}

/* ax_buffer_pool_get for a chunk the caller can do without: AX_ENOBUFS
 * sets no error detail and does not count in the pool's exhausted. */
ax_status_t ax__buffer_pool_try_get(ax_buffer_pool_t *pool, ax_chunk_t **out);

/* Give *c back to pool (ax_buffer_pool_put) with the stock returned
 * first if it is on *c. */
static inline void ax__stock_put(ax_buffer_pool_t *pool, ax__ref_stock_t *s, ax_chunk_t **c)
{
    if (*c != NULL && *c == s->chunk)
        ax__stock_drop(s);
    ax_buffer_pool_put(pool, c);
}

/* ax__chunk_reusable for the owner of stock s. */
static inline bool ax__chunk_reusable_stocked(const ax_chunk_t *c, const ax__ref_stock_t *s)
{
    bool r = ck_pr_load_32(&c->refs) == 1 + (c == s->chunk ? s->n : 0);

    ck_pr_fence_acquire(); /* as in ax__chunk_reusable */
    return r;
}

/*
 * A lease on len bytes at data that are not Axon's: a foreign chunk, which
 * no pool holds, whose last release calls release(arg) instead of freeing
 * the bytes. The lender keeps them valid and unchanged until then. The
 * chunk starts with one reference, the lease's. AX_ENOMEM (release not
 * called: the lender keeps its memory) or AX_EINVAL above 4 GiB - 1.
 */
ax_status_t ax__lease_foreign(const void *data, size_t len, void (*release)(void *arg), void *arg,
                              ax_lease_t *out);

/* Take back a foreign lease that was never shared (no clone, slice or
 * chain holds its chunk): free it without calling its release, so that the
 * lender keeps its memory after all. */
void ax__lease_foreign_cancel(ax_lease_t *l);

/* Slice i of a non-empty lease. */
static inline struct ax_lease_slice_s ax__lease_slice_at(const ax_lease_t *l, size_t i)
{
    if (i == 0)
        return (struct ax_lease_slice_s){l->chunk, l->off, l->len};
    return l->ext->slice[i - 1];
}

/* Build a lease over n slices, taking one reference per slice (slices of
 * length 0 are skipped). AX_ENOMEM leaves *out empty and takes nothing. */
ax_status_t ax__lease_build(const struct ax_lease_slice_s *s, size_t n, ax_lease_t *out);

#endif
