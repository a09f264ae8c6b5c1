/*
 * Shared by every test (and the net_peer program): time, bounded waits,
 * scaling, and jobs, which run a function on an actor's own thread.
 *
 * Criterion-free: waits return false on timeout, and a test turns that
 * into a failure (tests/actor/helpers.h has the Criterion wrappers).
 */
#ifndef AXON_TESTS_COMMON_H
#define AXON_TESTS_COMMON_H

#include <errno.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "axon/actor.h"
#include "common/clock.h"

#define AXT_UNUSED __attribute__((unused))

/* Seconds on the runtime's monotonic clock (ax__now_ns is the same in
 * nanoseconds, the unit of its timers). */
static inline double axt_now(void)
{
    return (double)ax__now_ns() * 1e-9;
}

static inline void axt_sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Busy for us microseconds, like a handler doing real work (a sleep of a
 * few microseconds takes far longer). */
static inline void axt_spin_us(unsigned us)
{
    uint64_t until = ax__now_ns() + (uint64_t)us * 1000u;

    while (ax__now_ns() < until)
        ;
}

/* n divided by AXON_TEST_SCALE (when set and > 1), at least 1. */
static inline uint64_t axt_scaled(uint64_t n)
{
    const char *s = getenv("AXON_TEST_SCALE");
    long div = s != NULL ? strtol(s, NULL, 10) : 1;

    if (div > 1)
        n /= (uint64_t)div;
    return n > 0 ? n : 1;
}

/* sem_wait bounded by secs; false on timeout. */
static inline bool axt_sem_wait(sem_t *s, double secs)
{
    struct timespec ts;
    double whole = (double)(long)secs;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((secs - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (sem_timedwait(s, &ts) == 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

/* ---- jobs: run a function on an actor's own thread ------------------- */

/* A job message: the actor runs fn(self, arg) and posts done (if set). */
typedef struct axt_job {
    ax_msg_t hdr;
    void (*fn)(ax_actor_t *self, void *arg);
    void *arg;
    sem_t *done;
} axt_job_t;

static const ax_msg_type_t axt_job_type AXT_UNUSED = {.name = "test.job", .size = sizeof(axt_job_t)};

/* For an actor's receive_local: run *msg if it is a job (true), else leave
 * it (false). */
static inline bool axt_job_run(ax_actor_t *self, const ax_msg_t *msg)
{
    const axt_job_t *j = (const axt_job_t *)msg;

    if (msg->type != &axt_job_type)
        return false;
    j->fn(self, j->arg);
    if (j->done != NULL)
        sem_post(j->done);
    return true;
}

/* Send a job (done may be NULL: nobody waits); false when it could not be
 * sent. */
static inline bool axt_job_send(ax_ref_t actor, void (*fn)(ax_actor_t *, void *), void *arg, sem_t *done)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&axt_job_type, &m) != AX_OK)
        return false;
    ((axt_job_t *)m)->fn = fn;
    ((axt_job_t *)m)->arg = arg;
    ((axt_job_t *)m)->done = done;
    if (ax_tell(actor, &m, AX_REF_NULL) != AX_OK) {
        ax_msg_release(&m);
        return false;
    }
    return true;
}

/* Run fn(self, arg) on actor's thread and wait for it; false when the job
 * could not be sent or did not finish within secs. */
static inline bool axt_run_on(ax_ref_t actor, void (*fn)(ax_actor_t *, void *), void *arg, double secs)
{
    sem_t done;
    bool ok;

    sem_init(&done, 0, 0);
    if (!axt_job_send(actor, fn, arg, &done)) {
        sem_destroy(&done);
        return false;
    }
    ok = axt_sem_wait(&done, secs);
    /* A job that timed out may still post later: leave the semaphore
     * rather than destroy it under the actor (the test fails anyway). */
    if (ok)
        sem_destroy(&done);
    return ok;
}

#endif
