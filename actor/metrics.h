/*
 * Internal to actor/: per-actor and per-system metrics, kept beside what
 * they count.
 *
 * Hot counters live in the cell (cell.h: m_handled, m_time_ns,
 * m_time_max_ns) and are written only by the worker running the actor, as
 * single-writer atomic stores: no read-modify-write, no fence, no shared
 * cache line on the send path. Readers load them and accept a recent value.
 *
 * Handler time is tick-sampled, as the kernel accounts CPU time: a ticker
 * (an internal timer, started on the first metrics read) stores the
 * monotonic time in ns into sys->metrics.now_ns every millisecond, and the
 * worker reads that word before and after each handler. A handler that
 * crosses no tick is charged nothing, one that crosses a tick is charged
 * the time between the ticks, so totals are unbiased and a handler that
 * runs for many ticks is measured to within a tick. A real clock read per
 * message would cost 25-80 ns here, as much as a whole local send.
 *
 * Mailbox depth is sampled by the consumer: a reader bumps
 * sys->metrics.epoch, and the worker that next runs each actor counts the
 * messages between its mailbox's tail and head (only the consumer may walk
 * them) and records the depth, its high-water mark and the actor's buffer
 * pool stats in the cell's side struct. An idle mailbox reads as empty at
 * once. So a read returns the depths sampled after the previous read.
 */
#ifndef AXON_ACTOR_METRICS_H
#define AXON_ACTOR_METRICS_H

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>

#include "actor/cell.h"
#include "axon/buffers.h"

#define AX__METRICS_TICK_NS UINT64_C(1000000) /* the metrics clock's period */
#define AX__METRICS_WALK_MAX (UINT64_C(1) << 24) /* mailbox walk cap */
/* The most actors one ranking lists: metrics.top_n (config.c) and
 * GET /actors?limit= (dispatch/metrics_http.c). */
#define AX__METRICS_RANK_MAX 10000u

/* The cold part of an actor's metrics: allocated by its worker on the
 * first sample or failure, kept with the cell across reuse (reset when a
 * new actor takes the cell), freed with the system. Single writer (the
 * owning worker, or the creator before the actor is published). Readers
 * take each field's latest value with a relaxed load: nothing is published
 * through them; only depth and depth_max are ordered, by fences (metrics.c). */
typedef struct ax__actor_msx_s {
    uint64_t depth;        /* mailbox depth at the last sample */
    uint64_t depth_max;    /* the largest sampled depth */
    uint64_t failures;
    uint64_t restarts;
    uint64_t has_pool;     /* 1 once the pool fields below are set */
    uint64_t pool[6];      /* ax_buffer_pool_stats_t, field by field */
} ax__actor_msx_t;

/* Per system. now_ns and epoch share a line that workers only read. */
typedef struct ax__metrics_sys_s {
    alignas(64) uint64_t now_ns; /* the metrics clock (0 until started) */
    uint32_t epoch;              /* bumped by readers: resample mailboxes */
    /* 1 once the ticker runs: set by CAS (one starter), cleared with a plain
     * store when it cannot re-arm. Only its own value matters: any order. */
    uint32_t clock_started;
    alignas(64) pthread_mutex_t lock; /* the endpoint hook below */
    void (*endpoint_stop)(void *ctx);
    void *endpoint_ctx;
} ax__metrics_sys_t;

void ax__metrics_init(ax__metrics_sys_t *m);

/* Stop the endpoint, if one is installed (system destroy, first thing
 * after the workers are gone). */
void ax__metrics_stop_endpoint(ax_system_t *sys);

/* Free the side structs of every cell (system destroy, no thread left). */
void ax__metrics_destroy(ax_system_t *sys);

/* A new actor takes c: zero its metrics (before its id is published). */
void ax__metrics_cell_reset(ax__cell_t *c);

/* The worker's slow paths: charge handler time, take a sample, count a
 * failure or a restart. */
void ax__metrics_charge(ax__cell_t *c, uint64_t ticks_ns);
void ax__metrics_sample(ax__cell_t *c, uint32_t epoch);
void ax__metrics_failed(ax__cell_t *c);
void ax__metrics_restarted(ax__cell_t *c);

/* Install the HTTP endpoint (dispatch/metrics_http.c), stopped by
 * ax__metrics_stop_endpoint. AX_ESTATE when one is installed already or
 * the system is shutting down. Also starts the metrics clock. */
ax_status_t ax__metrics_set_endpoint(ax_system_t *sys, void (*stop)(void *ctx), void *ctx);

/* The installed endpoint's context, or NULL. */
void *ax__metrics_endpoint(ax_system_t *sys);

/* Read by the worker before each handler. */
static inline uint64_t ax__metrics_now(const ax__metrics_sys_t *m)
{
    /* A plain load (single writer, the ticker): any recent tick will do. */
    return ck_pr_load_64(&m->now_ns);
}

/* After a handler that started at tick t0. */
static inline void ax__metrics_handled(const ax__metrics_sys_t *m, ax__cell_t *c, uint64_t t0)
{
    uint64_t t1 = ck_pr_load_64(&m->now_ns);

    /* Single writer: a store, no read-modify-write (see ax__stat_inc). */
    ck_pr_store_64(&c->m_handled, c->m_handled + 1);
    if (t1 != t0)
        ax__metrics_charge(c, t1 - t0);
}

/* At the start of a run: resample if a reader asked since the last one. */
static inline void ax__metrics_run(const ax__metrics_sys_t *m, ax__cell_t *c)
{
    /* A plain load: a reader's bump is seen on some later run. */
    uint32_t e = ck_pr_load_32(&m->epoch);

    if (e != c->m_epoch)
        ax__metrics_sample(c, e);
}

#endif
