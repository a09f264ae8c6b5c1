/* Internal to actor/: the table of remote entries (remote_table.c). */
#ifndef AXON_ACTOR_REMOTE_TABLE_H
#define AXON_ACTOR_REMOTE_TABLE_H

#include <ck_ht.h>
#include <stdint.h>

#include "actor/net.h"

/*
 * Slots come in segments of AX__REMOTE_SEG, allocated as the table fills
 * and freed only with it. Everything but the slots' atomics is under the
 * system's remote_lock.
 */
typedef struct ax__remote_table_s {
    ck_ht_t index;          /* path wire bytes -> slot */
    ax_system_t *sys;
    ax__remote_t **segs;    /* cap / AX__REMOTE_SEG of them, rounded up */
    uint32_t cap;           /* network.max_remote_refs */
    uint32_t nslots;        /* slots made so far (<= cap) */
    uint32_t live;          /* slots holding a path */
    uint32_t hand;          /* the clock's next slot */
    uint32_t removed;       /* removals from index since it was built */
    uint64_t key_bytes;     /* bytes of the live paths' keys */
    uint64_t evicted;       /* entries given to another path */
} ax__remote_table_t;

#define AX__REMOTE_SEG 1024u

ax_status_t ax__remote_table_init(ax__remote_table_t *t, ax_system_t *sys, uint32_t cap);
void ax__remote_table_destroy(ax__remote_table_t *t);

/* Live entries, their memory (slots, keys, index) and the evictions so
 * far; with the system's remote_lock. */
void ax__remote_table_stats(ax__remote_table_t *t, uint64_t *live, uint64_t *bytes, uint64_t *evicted);

#endif
