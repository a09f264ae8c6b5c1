/*
 * Internal to actor/: workers and run queues.
 *
 * Each worker has a "run next" slot and a local ring (ck_ring, single
 * producer = the worker, many consumers = the worker and thieves). An
 * actor woken by the actor running on a worker goes to that worker's run
 * next slot, so a ping-pong stays on one core and touches no queue. An
 * actor woken from outside the workers goes to the system's inject queue.
 * Idle workers steal from the rings of the others that are awake (a
 * parked worker's ring is empty), spin briefly, then park. A parked worker
 * is woken at once for two or more actors beyond the one its waker runs
 * next, and for one only after that one has waited AX__SURPLUS_WAIT_NS:
 * a producer and its consumer then take turns on one core.
 *
 * No lost wakeups: whoever makes work visible in a ring then issues a full
 * fence and reads nparked; a parking worker increments nparked (a full
 * barrier) and then looks for work once more. One of the two always sees
 * the other. A wake that waits for a surplus loses nothing: the worker
 * that holds the surplus is awake and runs it itself. The inject queue
 * needs no fence: its pushers and the parker's last look both hold the
 * queue's lock, and whichever holds it second sees what the first did
 * (sched.c, inject_and_wake).
 */
#ifndef AXON_ACTOR_SCHED_H
#define AXON_ACTOR_SCHED_H

#include <pthread.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdbool.h>


#include "actor/cell.h"

#define AX__RING_SIZE 1024u
/* How long one actor beyond the one its worker runs next may wait on that
 * worker's ring before a parked worker is woken for it (sched.c,
 * ring_push): 200 us, the network thread's default turn for actors. */
#define AX__SURPLUS_WAIT_NS 200000u
/* Words of the system's awake bitmap: one bit per worker, up to the
 * `threads` bound (actor/config.c). */
#define AX__AWAKE_WORDS 16u

typedef struct ax__worker_s {
    alignas(64) ck_ring_t ring;
    /* What each look for work reads, on the line after the ring's. */
    ck_ring_buffer_t *ring_buf;
    ax_system_t *sys;
    ax__cell_t *run_next;
    unsigned run_next_streak;
    unsigned tick;
    uint64_t rng;
    /* When this worker's one runnable actor beyond the one it runs next
     * began to wait for a parked worker's wake (sched.c, ring_push), 0
     * when none waits; and the looks for work since then. This worker's
     * only. */
    uint64_t surplus_since;
    unsigned surplus_looks;
    unsigned index;
    pthread_t thread;
    sem_t sem;
    bool no_spin;        /* park without spinning next time (sched.c) */
    unsigned long allocs_seen; /* message allocations at the last park (sched.c) */
    uint64_t allocs_quiet_ns;  /* since when that count has not moved */
    struct ax__worker_s *park_next;
    /* The network thread's guest worker only (sched.c, "guest"): the
     * cells it keeps to run itself, FIFO through sched_next, and when
     * its turn of running them ends. */
    bool guest;
    struct ax__cell_s *guest_head, *guest_tail;
    /* Counters written by this worker only and read by ax_system_stats:
     * single-writer, so a plain increment published with ck_pr_store. */
    alignas(64) uint64_t delivered;
    uint64_t dead_letters;
    uint64_t steals;
    uint64_t parks;
    uint64_t failures;
    uint64_t restarts;
} ax__worker_t;

/* The worker of the calling thread, if it is one of sys's workers. */
ax__worker_t *ax__current_worker(const ax_system_t *sys);

/* The calling thread's worker, of whichever system; NULL on other
 * threads. Set by sched.c only, for its workers and the guest. */
extern _Thread_local ax__worker_t *ax__tls_worker __attribute__((tls_model("initial-exec")));

/* ax__schedule when the fast case below does not hold (sched.c). */
void ax__schedule_other(ax__cell_t *c, ax__worker_t *w);

/*
 * Make a cell runnable. The caller owns its schedule (a push that found
 * the mailbox idle, a successful try_wake, or a first claim).
 * Inline for the case of every ping-pong and relay: an actor that the
 * actor running on one of its system's workers wakes goes to that
 * worker's free run-next slot. As a call it was 22 instructions of a
 * local message's 369 (actor/NOTES.md, "Instructions per message,
 * again").
 */
static inline void ax__schedule(ax__cell_t *c)
{
    ax__worker_t *w = ax__tls_worker;

    if (w != NULL && w->run_next == NULL && w->sys == c->sys && !w->guest)
        w->run_next = c;
    else
        ax__schedule_other(c, w);
}

/* The calling worker (if it is one of sys's) has handed a frame to the
 * network: its next wait for work parks without spinning (sched.c). */
void ax__sched_expect_remote(ax_system_t *sys);

/*
 * The network thread as a guest worker. Between enter and leave, an actor
 * that the calling thread makes runnable while every worker is parked is
 * kept for the caller instead of costing a futex wake and a context
 * switch; leave runs the kept actors (and what they make runnable, on the
 * same terms) for up to budget_ns, then hands what is left to the workers.
 * One thread per system (its network thread); sys->guest must exist
 * (ax__sched_start makes it).
 */
void ax__sched_guest_enter(ax_system_t *sys);
void ax__sched_guest_leave(ax_system_t *sys, uint64_t budget_ns);

/* The most an actor's run budget reaches as it doubles (run.c); the
 * configured throughput, its base, may not be larger (config.c). */
#define AX__RUN_BUDGET_MAX (1u << 20)

/* The CPUs this process may run on: its affinity mask (taskset, a
 * container's cpuset), else the online CPUs; at least 1. */
unsigned ax__cpus_usable(void);

ax_status_t ax__sched_start(ax_system_t *sys);
void ax__sched_join(ax_system_t *sys);
void ax__sched_wake_all(ax_system_t *sys);
void ax__sched_destroy(ax_system_t *sys);

static inline void ax__stat_inc(uint64_t *counter)
{
    /* One writer; readers load it atomically and take any recent value. */
    ck_pr_store_64(counter, ck_pr_load_64(counter) + 1);
}

#endif
