/*
 * Allocation fault injection (tests only). Built with AXON_FAULT_INJECT,
 * the library asks ax__fault(site) before the allocations on the paths
 * that must lose nothing when memory runs out; a test arms it to fail the
 * nth allocation of a site. Without AXON_FAULT_INJECT it is a constant
 * false and costs nothing.
 *
 * Sites: a message type's name for ax_msg_alloc ("axon.child-event",
 * "axon.net-event", "axon.net-undelivered", "axon.ask-result"...),
 * "axon.dead-letter-wrapper", "net.unacked", "net.thread".
 */
#ifndef AXON_COMMON_FAULT_H
#define AXON_COMMON_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef AXON_FAULT_INJECT
/* True when this allocation at site must fail. Any thread. */
bool ax__fault(const char *site);
#else
static inline bool ax__fault(const char *site)
{
    (void)site;
    return false;
}
#endif

/*
 * Fail `count` allocations at site (NULL: any site) from the nth (1: the
 * next one) on; count 0 disarms. The environment variable
 * AXON_FAULT_ALLOC="site:nth[:count]" arms it at the first allocation.
 * Without AXON_FAULT_INJECT: false, and nothing is armed.
 */
bool ax__fault_arm(const char *site, uint64_t nth, uint64_t count);

/* Allocations failed so far at armed sites. */
uint64_t ax__fault_hits(void);

#endif
