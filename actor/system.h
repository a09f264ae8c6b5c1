/* Internal to actor/: the system. */
#ifndef AXON_ACTOR_SYSTEM_H
#define AXON_ACTOR_SYSTEM_H

#include <pthread.h>


#include "actor/ask.h"
#include "actor/cell.h"
#include "actor/net.h"
#include "actor/metrics.h"
#include "actor/registry.h"
#include "actor/remote_table.h"
#include "actor/sched.h"
#include "actor/slab.h"
#include "axon/config.h"
#include "common/ht_alloc.h"
#include "serial/registry.h"

struct ax_system_s {
    ax_config_t cfg;

    /* Scheduler. Set at start and read on every steal and wake: */
    unsigned nworkers;
    ax__worker_t *workers;
    ax__worker_t *guest;      /* the network thread's, while it runs actors (sched.c) */
    bool workers_started;
    /* One line for the inject queue and the parking state: a push and its
     * wake (inject_and_wake) touch them in turn, and so do park and its
     * last look. Apart, they measured no better (actor/NOTES.md, "Alive
     * as two counters"). */
    alignas(64) ck_spinlock_t inject_lock;
    ax__cell_t *inject_head, *inject_tail;
    ck_spinlock_t park_lock;
    ax__worker_t *parked;     /* stack of parked workers, under park_lock */
    uint32_t nparked;         /* atomic: how many are in that stack */
    uint32_t nspinning;       /* atomic: workers looking for work before parking */
    uint32_t max_spinning;    /* at most this many look at once (sched.c) */
    uint32_t max_awake;       /* wakes stop at this many awake: the CPUs (sched.c) */
    /* Bit i: worker i is not parked. Atomic; set and cleared by worker i
     * only, read by workers looking for work to steal (sched.c). A parked
     * worker's ring is empty, so lookers skip it. */
    alignas(64) uint64_t awake[AX__AWAKE_WORDS];

    /* Lifecycle. Actors alive = created - ended (ax__alive), two counters
     * on lines of their own: a thread that spawns writes only the first,
     * the workers that end actors only the second, and neither reads the
     * other's before shutdown. One counter moved its line between the
     * spawning thread and the workers twice per actor (actor/NOTES.md,
     * "Alive as two counters"). */
    alignas(64) uint64_t created; /* atomic: actors counted in by create */
    uint64_t next_id;         /* atomic: the last id given out (by create too) */
    alignas(64) uint64_t ended; /* atomic: actors ended, or creates abandoned */
    alignas(64) uint32_t shutdown; /* atomic: 1 once ax_system_shutdown ran; read-mostly */
    uint64_t late[2];         /* atomic: live late actors per tier (late.c) */
    uint32_t late_stopped[2]; /* atomic: 1 once that tier was told to stop */
    bool awaited;
    bool destroying;           /* ax_system_destroy is under way (its thread) */
    int parts; /* how far init_parts got, for free_parts */

    ax__slabs_t slabs;
    ax__registry_t registry;

    /* Serialisation and paths. */
    ax__ser_registry_t serialisers;
    ax_msg_pool_t *netmsg_pool;
    ax_addr_t *addr;            /* atomic: addr_initial, then addr_bound */
    ax_addr_t addr_initial, addr_bound;
    pthread_mutex_t remote_lock;
    ax__remote_table_t remotes; /* remote entries, under remote_lock */
    const ax__net_ops_t *net_ops; /* atomic; NULL without a network */
    void *net_ctx;

    /* Timers and asks. */
    struct ax__timers_s *timers;
    ax__asks_t asks;

    /* Dead letters. */
    pthread_mutex_t dl_lock;
    ax_ref_t dl_actor;
    ax_ref_t guardian;          /* under dl_lock too: rarely read or set */
    uint32_t has_guardian;      /* atomic: lets every ending skip the lock */
    uint64_t dead_letters_ext; /* atomic: counted off the workers */

    /* Metrics: the clock, the sample epoch, the endpoint (metrics.h). */
    ax__metrics_sys_t metrics;
    uint64_t lost_notices;     /* atomic: see ax_system_stats_t */
};

/*
 * Actors created and not ended. ended is read first: both counters only
 * grow, so created - ended is then at least the count at either read,
 * and 0 only when it was 0 at the second read. The full barriers that
 * pair with the shutdown flag are the increments themselves (create,
 * ax__count_ended).
 */
static inline uint64_t ax__alive(ax_system_t *sys)
{
    uint64_t ended = ck_pr_load_64(&sys->ended);

    return ck_pr_load_64(&sys->created) - ended;
}

#endif
