/* Internal: the one clock the runtime measures time with. */
#ifndef AXON_COMMON_CLOCK_H
#define AXON_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

#define AX__NS_PER_S UINT64_C(1000000000)

/* CLOCK_MONOTONIC in nanoseconds: timer due times, deadlines and the
 * timerfd all use it, so none of them can disagree about "now". */
static inline uint64_t ax__now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * AX__NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* An absolute CLOCK_MONOTONIC time in ns as a timespec (for
 * pthread_cond_timedwait on a monotonic condvar, or a timerfd). */
static inline struct timespec ax__timespec_of(uint64_t ns)
{
    return (struct timespec){(time_t)(ns / AX__NS_PER_S), (long)(ns % AX__NS_PER_S)};
}

#endif
