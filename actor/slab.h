/*
 * Internal to actor/: cell memory.
 *
 * Cells are carved from blocks, one free list per size class (multiples of
 * 64 bytes). Memory stays with the system until ax_system_destroy: a cell
 * is recycled for a later actor of the same class but never unmapped, so a
 * stale ref always points at a cell whose control word says who owns it
 * now. That is what makes sending through any ref safe.
 */
#ifndef AXON_ACTOR_SLAB_H
#define AXON_ACTOR_SLAB_H

#include <pthread.h>
#include <stddef.h>


#include "actor/cell.h"
#include "common/ax_atomic.h"

#define AX__SLAB_SMALL_CLASSES 64 /* cells up to 4 KiB */

typedef struct ax__slab_block_s ax__slab_block_t;

typedef struct ax__slab_class_s {
    ck_spinlock_t lock;
    size_t cell_size;
    ax__cell_t *free;          /* via sched_next, under lock */
    ax__slab_block_t *blocks;  /* every block, newest first */
    struct ax__slab_class_s *next_big;
    /* Cells given back, via sched_next: a stack that ax__slab_free pushes
     * onto without the lock, and that an allocation under the lock takes
     * whole when `free` runs dry. On a line of its own: the workers that
     * end actors write it, the thread that spawns them only reads it once
     * per batch (actor/NOTES.md, "Cell memory"). */
    _Alignas(64) ax__cell_t *freed;
} ax__slab_class_t;

typedef struct ax__slabs_s {
    ax__slab_class_t *small[AX__SLAB_SMALL_CLASSES]; /* created on demand */
    pthread_mutex_t big_lock;
    ax__slab_class_t *big;     /* classes above 4 KiB */
    uint64_t bytes;            /* of cell blocks; only grows (stats) */
} ax__slabs_t;

void ax__slabs_init(ax__slabs_t *s);

/* A cell of at least `size` bytes. A recycled cell keeps its mailbox and
 * control word as they were; fresh cells are zeroed with an initialised,
 * held mailbox. The user part beyond the header is zeroed either way. */
ax_status_t ax__slab_alloc(ax__slabs_t *s, size_t size, ax__cell_t **out);

/* Give an ended cell back for reuse. */
void ax__slab_free(ax__slabs_t *s, ax__cell_t *c);

/* Call fn on every cell ever allocated (live, ended or free). Cells may be
 * allocated concurrently; those may or may not be visited. */
void ax__slab_each(ax__slabs_t *s, void (*fn)(ax__cell_t *c, void *arg), void *arg);

/* Bytes of cell memory held: cells are never returned before destroy, so
 * this is also the high-water mark. Any thread. */
uint64_t ax__slab_bytes(ax__slabs_t *s);

/* Free all memory. No other thread may use the cells. */
void ax__slabs_destroy(ax__slabs_t *s);

#endif
