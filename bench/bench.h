/*
 * bench.h: what every benchmark program shares: the run-size scale from
 * the command line, a monotonic clock, the median of the trials, a system
 * to run actors on, a bounded wait for the actors, and dying with a
 * message that names the failed call.
 *
 * Each benchmark is a single translation unit that defines BENCH_NAME
 * (its program name, used in error messages) before including this file,
 * so the definitions here are static.
 */
#ifndef AXON_BENCH_H
#define AXON_BENCH_H

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/status.h"
#include "common/clock.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program name) before including bench.h"
#endif

/* Every count a benchmark runs is multiplied by this (0.1: a tenth). */
static double bench_scale = 1.0;

/* Take the scale from a command-line argument; NULL, zero, negative or
 * garbage leave the default of 1. */
static inline void bench_set_scale(const char *arg)
{
    double s = arg != NULL ? strtod(arg, NULL) : 1.0;

    bench_scale = s > 0 ? s : 1.0;
}

/* n times the scale, at least 1. */
static inline size_t bench_scaled(size_t n)
{
    size_t s = (size_t)((double)n * bench_scale);

    return s > 0 ? s : 1;
}

/* The runtime's own monotonic clock (common/clock.h), as a double for
 * the arithmetic of rates and ratios. */
static inline double bench_now_ns(void)
{
    return (double)ax__now_ns();
}

static inline double bench_now_s(void)
{
    return bench_now_ns() * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The median of n trials; sorts v in place. */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

_Noreturn static inline void bench_die(const char *what, ax_status_t st)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", BENCH_NAME, what, ax_status_name(st), ax_error_detail());
    exit(1);
}

/* Run an Axon call; on failure print it with its status and exit. */
#define BENCH_CHECK(call)              \
    do {                               \
        ax_status_t st_ = (call);      \
        if (st_ != AX_OK)              \
            bench_die(#call, st_);     \
    } while (0)

/* How long bench_wait waits at scale 1 or below; longer in proportion at
 * larger scales. The longest case at scale 1 takes a few seconds. */
#define BENCH_WAIT_S 120.0

/* bench_wait's limit at this run's scale, in seconds. */
static inline double bench_wait_limit_s(void)
{
    return BENCH_WAIT_S * (bench_scale > 1.0 ? bench_scale : 1.0);
}

/* The time bench_wait_until gives up at: bench_wait_limit_s from now. */
static inline struct timespec bench_wait_deadline(void)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)bench_wait_limit_s();
    return until;
}

/*
 * Wait for a post that the actors make when a case (or one round of it) is
 * done. A message that the runtime lost would otherwise hang the bench for
 * good: at `until` (CLOCK_MONOTONIC, from bench_wait_deadline) this says
 * what it waited for and exits 1 instead. A loop that waits once a round
 * takes its deadline once, so that the clock is not read every round.
 */
static inline void bench_wait_until(sem_t *s, const struct timespec *until, const char *what)
{
    while (sem_clockwait(s, CLOCK_MONOTONIC, until) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == ETIMEDOUT)
            fprintf(stderr, "%s: no %s after %.0f s: a message was lost or the run stalled\n",
                    BENCH_NAME, what, bench_wait_limit_s());
        else
            fprintf(stderr, "%s: waiting for the %s: %s\n", BENCH_NAME, what, strerror(errno));
        exit(1);
    }
}

/* bench_wait_until, with the deadline bench_wait_limit_s from now. */
static inline void bench_wait(sem_t *s, const char *what)
{
    struct timespec until = bench_wait_deadline();

    bench_wait_until(s, &until, what);
}

/* A system with `threads` workers and otherwise default configuration. */
static inline ax_system_t *bench_system(unsigned threads)
{
    ax_config_t cfg;
    ax_system_t *sys;

    ax_config_init(&cfg);
    cfg.threads = threads;
    /* A variant to compare, such as "axon = { spin_us = 0; };". */
    if (getenv("AXON_BENCH_CONFIG") != NULL)
        BENCH_CHECK(ax_config_load_string(&cfg, getenv("AXON_BENCH_CONFIG")));
    BENCH_CHECK(ax_system_create(&cfg, &sys));
    return sys;
}

/* Shut a system down, wait for every actor to end, and free it. */
static inline void bench_system_end(ax_system_t **sys)
{
    ax_system_shutdown(*sys);
    BENCH_CHECK(ax_system_await_termination(*sys));
    ax_system_destroy(sys);
}

#endif /* AXON_BENCH_H */
