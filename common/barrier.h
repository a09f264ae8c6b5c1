/*
 * Internal: an asymmetric full barrier, for a store-then-load pairing
 * (Dekker's) between a side that runs on every operation and a side that
 * runs almost never.
 *
 * Each side stores its flag and then loads the other's; a full barrier
 * between the two keeps both from missing the other. On the frequent
 * side, ax__barrier_light() is only a compiler barrier; on the rare side,
 * ax__barrier_heavy() makes every running thread of the process execute a
 * full barrier (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED) before it
 * returns, which orders the frequent side's store and load wherever they
 * were. Where the kernel does not offer that command or refuses the
 * registration (before Linux 4.14, a seccomp filter), both sides are a
 * full fence. Valgrind passes the command through.
 *
 * Used by ax_create against ax_system_shutdown (actor/actor.c): a fence on
 * every create was a third of a spawn's CPU time on the spawning thread
 * (actor/NOTES.md, "A create without a fence").
 */
#ifndef AXON_COMMON_BARRIER_H
#define AXON_COMMON_BARRIER_H

#include <stdbool.h>

#include "common/ax_atomic.h"

/* true once ax__barrier_init found the command and registered for it.
 * Written once, inside pthread_once, before the first system exists;
 * every thread that uses a system was created by, or was handed the
 * system by, a thread that returned from that call. */
extern bool ax__barrier_asym;

/* Once per process; any thread, any number of times. */
void ax__barrier_init(void);

/* The frequent side: between its store and its load. */
static inline void ax__barrier_light(void)
{
    if (ax__barrier_asym)
        ck_pr_barrier(); /* the compiler's order; the heavy side does the rest */
    else
        ck_pr_fence_memory();
}

/* The rare side: between its store and its loads. A system call when the
 * command is there (a few microseconds); a fence otherwise. */
void ax__barrier_heavy(void);

#endif
