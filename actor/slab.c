/* Cell memory: per-class free lists over blocks that live as long as the
 * system. */
#include <stdlib.h>
#include <string.h>

#include "actor/slab.h"
#include "common/error.h"
#include "common/prefetch.h"

#define BLOCK_BYTES ((size_t)64 * 1024)

struct ax__slab_block_s {
    ax__slab_block_t *next;
    size_t count;
    size_t cell_size;
    unsigned char *mem;
};

void ax__slabs_init(ax__slabs_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->big_lock, NULL);
}

static size_t round_class(size_t size)
{
    return (size + 63) & ~(size_t)63;
}

static ax__slab_class_t *class_new(size_t cell_size)
{
    ax__slab_class_t *k = aligned_alloc(_Alignof(ax__slab_class_t), sizeof(*k));

    if (k != NULL) {
        memset(k, 0, sizeof(*k));
        ck_spinlock_init(&k->lock);
        k->cell_size = cell_size;
    }
    return k;
}

static ax__slab_class_t *class_for(ax__slabs_t *s, size_t cell_size, bool create)
{
    size_t idx = cell_size / 64 - 1;
    ax__slab_class_t *k;

    if (idx < AX__SLAB_SMALL_CLASSES) {
        /* Classes are published once (by the CAS below, a full barrier)
         * and never change; their fields are read through this pointer
         * (a dependency, docs/memory-model.md class D). */
        k = ck_pr_load_ptr(&s->small[idx]);
        if (k != NULL || !create)
            return k;
        k = class_new(cell_size);
        if (k == NULL)
            return NULL;
        /* Full barrier: the class is written before it is published. */
        if (!ck_pr_cas_ptr(&s->small[idx], NULL, k)) {
            free(k);
            k = ck_pr_load_ptr(&s->small[idx]);
        }
        return k;
    }
    pthread_mutex_lock(&s->big_lock);
    for (k = s->big; k != NULL; k = k->next_big)
        if (k->cell_size == cell_size)
            break;
    if (k == NULL && create && (k = class_new(cell_size)) != NULL) {
        k->next_big = s->big;
        s->big = k;
    }
    pthread_mutex_unlock(&s->big_lock);
    return k;
}

/* A new block's cells go on the class's free list; called with the lock. */
static bool grow(ax__slab_class_t *k, uint64_t *added)
{
    size_t count = BLOCK_BYTES / k->cell_size;
    ax__slab_block_t *b = malloc(sizeof(*b));

    if (count == 0)
        count = 1;
    if (b == NULL)
        return false;
    b->mem = aligned_alloc(64, count * k->cell_size);
    if (b->mem == NULL) {
        free(b);
        return false;
    }
    memset(b->mem, 0, count * k->cell_size);
    b->count = count;
    b->cell_size = k->cell_size;
    for (size_t i = count; i-- > 0;) {
        ax__cell_t *c = (ax__cell_t *)(void *)(b->mem + i * k->cell_size);

        ax__mbox_init(c);
        c->sched_next = k->free;
        k->free = c;
    }
    /* Published for ax__slab_each, which reads the list without the lock;
     * the block's fields are written before it becomes reachable. */
    b->next = k->blocks;
    ck_pr_fence_release(); /* the fields above before the block is reachable */
    ck_pr_store_ptr(&k->blocks, b);
    *added = count * k->cell_size;
    return true;
}

uint64_t ax__slab_bytes(ax__slabs_t *s)
{
    return ck_pr_load_64(&s->bytes); /* a statistic: any recent value will do */
}

ax_status_t ax__slab_alloc(ax__slabs_t *s, size_t size, ax__cell_t **out)
{
    size_t cell_size = round_class(size);
    ax__slab_class_t *k = class_for(s, cell_size, true);
    uint64_t added = 0;
    ax__cell_t *c, *next;

    if (k == NULL)
        return ax__error(AX_ENOMEM, "actor: out of memory for a cell of %zu bytes", cell_size);
    ck_spinlock_lock(&k->lock);
    /* An exchange, a full barrier: pairs with the CAS in ax__slab_free, so
     * the cells come with everything their last owner wrote. */
    if (k->free == NULL)
        k->free = ck_pr_fas_ptr(&k->freed, NULL);
    if (k->free == NULL && !grow(k, &added)) {
        ck_spinlock_unlock(&k->lock);
        return ax__error(AX_ENOMEM, "actor: out of memory for a cell of %zu bytes", cell_size);
    }
    c = k->free;
    next = k->free = c->sched_next;
    ck_spinlock_unlock(&k->lock);
    c->sched_next = NULL;
    /* The next spawn's cell, both of its header's lines (see prefetch.h):
     * create writes them all. */
    if (next != NULL) {
        ax__prefetch_write(next);
        ax__prefetch_write((const unsigned char *)next + 64);
    }
    if (added != 0)
        ck_pr_add_64(&s->bytes, added); /* a statistic: atomic, no ordering */
    /* The mailbox and word survive recycling (a stale sender may still
     * touch them); everything after the header is the new actor's. */
    memset((unsigned char *)c + sizeof(*c), 0, cell_size - sizeof(*c));
    *out = c;
    return AX_OK;
}

void ax__slab_free(ax__slabs_t *s, ax__cell_t *c)
{
    ax__slab_class_t *k = class_for(s, round_class(ax__cell_size(c->vt)), false);
    ax__cell_t *top;

    /* A push without the lock; only ax__slab_alloc takes, and it takes the
     * whole stack at once, so no pop can see a cell leave and come back
     * (no ABA). The CAS is a full barrier: c's last writes go before it. */
    do {
        top = ck_pr_load_ptr(&k->freed);
        c->sched_next = top;
    } while (!ck_pr_cas_ptr(&k->freed, top, c));
}

static void each_in_class(ax__slab_class_t *k, void (*fn)(ax__cell_t *, void *), void *arg)
{
    /* Acquire, paired with grow's store: blocks are complete once seen. */
    for (ax__slab_block_t *b = ck_pr_load_ptr(&k->blocks); b != NULL; b = b->next)
        for (size_t i = 0; i < b->count; i++)
            fn((ax__cell_t *)(void *)(b->mem + i * b->cell_size), arg);
}

void ax__slab_each(ax__slabs_t *s, void (*fn)(ax__cell_t *c, void *arg), void *arg)
{
    for (size_t i = 0; i < AX__SLAB_SMALL_CLASSES; i++) {
        ax__slab_class_t *k = ck_pr_load_ptr(&s->small[i]); /* see class_for */

        if (k != NULL)
            each_in_class(k, fn, arg);
    }
    pthread_mutex_lock(&s->big_lock);
    for (ax__slab_class_t *k = s->big; k != NULL; k = k->next_big)
        each_in_class(k, fn, arg);
    pthread_mutex_unlock(&s->big_lock);
}

static void class_destroy(ax__slab_class_t *k)
{
    ax__slab_block_t *b = k->blocks, *next;

    for (; b != NULL; b = next) {
        next = b->next;
        free(b->mem);
        free(b);
    }
    free(k);
}

void ax__slabs_destroy(ax__slabs_t *s)
{
    ax__slab_class_t *k, *next;

    for (size_t i = 0; i < AX__SLAB_SMALL_CLASSES; i++)
        if (s->small[i] != NULL)
            class_destroy(s->small[i]);
    for (k = s->big; k != NULL; k = next) {
        next = k->next_big;
        class_destroy(k);
    }
    pthread_mutex_destroy(&s->big_lock);
    memset(s, 0, sizeof(*s));
}
