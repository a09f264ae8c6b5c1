/*
 * Internal to actor/: the system's tables, ck_ht under one mutex.
 *
 *   names   name -> entry        ax_register / ax_lookup
 *   by_id   actor id -> entry    to release an actor's name when it ends
 *   cells   actor id -> cell     actors whose unique path was handed out,
 *                                so a path or a network frame can find them
 * None of these is on a per-message path.
 */
#ifndef AXON_ACTOR_REGISTRY_H
#define AXON_ACTOR_REGISTRY_H

#include <pthread.h>

#include "common/ax_atomic.h"

#include <ck_ht.h>

#include "actor/cell.h"

typedef struct ax__registry_s {
    pthread_mutex_t lock;
    ck_ht_t names;
    ck_ht_t by_id;
    ck_ht_t cells;
    /* Atomic: bumped each time a name is dropped (unregistered, or its
     * actor ended), so that a network connection's memory of which actor
     * a name meant can tell it may have moved (actor/serialised.c). */
    uint64_t names_epoch;
} ax__registry_t;

/* The names epoch, before a name is looked up for a cache. */
static inline uint64_t ax__registry_epoch(ax__registry_t *r)
{
    /* Acquire: a lookup after this load sees every drop before it. */
    uint64_t e = ck_pr_load_64(&r->names_epoch);

    ck_pr_fence_acquire();
    return e;
}

ax_status_t ax__registry_init(ax__registry_t *r);
void ax__registry_destroy(ax__registry_t *r);

/* Drop the name of actor id, if it has one. */
void ax__registry_release_id(ax__registry_t *r, uint64_t id);

/* Make cell findable by id until ax__registry_unpublish. */
ax_status_t ax__registry_publish(ax__registry_t *r, ax__cell_t *c, uint64_t id);
void ax__registry_unpublish(ax__registry_t *r, uint64_t id);

/* The published cell of id, or NULL. The cell may have ended since: check
 * its word. */
ax__cell_t *ax__registry_cell(ax__registry_t *r, uint64_t id);

/* Copy the registered name of actor id into buf (NUL-terminated,
 * truncated to size); "" when it has none. */
void ax__registry_name_of(ax__registry_t *r, uint64_t id, char *buf, size_t size);

#endif
