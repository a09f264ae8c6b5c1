/*
 * Per-actor metrics: the worker's slow paths (charging handler time,
 * sampling a mailbox), the metrics clock, and the reader that walks every
 * cell for the top actors. See metrics.h for why it is built this way.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "actor/metrics.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "axon/metrics.h"
#include "common/clock.h"
#include "common/error.h"

void ax__metrics_init(ax__metrics_sys_t *m)
{
    pthread_mutex_init(&m->lock, NULL);
}

/* ---- the worker's side ------------------------------------------------ */

void ax__metrics_charge(ax__cell_t *c, uint64_t ticks_ns)
{
    /* Single writer (this worker): stores, no read-modify-write. */
    ck_pr_store_64(&c->m_time_ns, c->m_time_ns + ticks_ns);
    if (ticks_ns > c->m_time_max_ns)
        ck_pr_store_64(&c->m_time_max_ns, ticks_ns);
}

/* The side struct, created by the owner on first need; NULL when out of
 * memory (that sample or count is then skipped, nothing else). */
static ax__actor_msx_t *side(ax__cell_t *c)
{
    ax__actor_msx_t *s = c->m_side;

    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        /* Release: the zeroed fields before the pointer that read_cell
         * reads them through (docs/memory-model.md, class F). */
        ck_pr_fence_release();
        ck_pr_store_ptr(&c->m_side, s);
    }
    return s;
}

static void side_set(uint64_t *field, uint64_t v)
{
    /* Single writer; readers take whatever value they load. */
    ck_pr_store_64(field, v);
}

/* Messages from the mailbox's tail to its head. Only the consumer (the
 * worker running c) may walk them: nobody else frees them meanwhile. A
 * push between its exchange and its link ends the walk early. */
static uint64_t mailbox_depth(ax__cell_t *c)
{
    ax__lanes_t *lz = ax__lanes(c);
    uint64_t n = lz != NULL ? lz->queued : 0;

    for (ax_msg_link_t *l = c->mbox.tail; l != NULL && n < AX__METRICS_WALK_MAX;
         l = ck_pr_load_ptr(&l->next)) /* acquire: a linked node is complete */
        if (l != &c->mbox.stub)
            n++;
    return n;
}

void ax__metrics_sample(ax__cell_t *c, uint32_t epoch)
{
    ax__actor_msx_t *s = side(c);
    uint64_t depth;

    c->m_epoch = epoch;
    if (s == NULL)
        return;
    depth = mailbox_depth(c);
    /* The largest depth before the depth, with a store fence between: a
     * reader loads them the other way round (read_cell), so no read sees
     * a depth above the largest. */
    if (depth > s->depth_max)
        side_set(&s->depth_max, depth);
    ck_pr_fence_store();
    side_set(&s->depth, depth);
    if (c->ext != NULL && c->ext->eb != NULL) {
        ax_buffer_pool_stats_t ps;

        ax_buffer_pool_stats(ax_encode_buffer_pool(c->ext->eb), &ps);
        side_set(&s->pool[0], ps.chunks_allocated);
        side_set(&s->pool[1], ps.chunks_free);
        side_set(&s->pool[2], ps.chunks_active);
        side_set(&s->pool[3], ps.chunks_leased);
        side_set(&s->pool[4], ps.bytes_allocated);
        side_set(&s->pool[5], ps.exhausted);
        side_set(&s->has_pool, 1);
    }
}

void ax__metrics_failed(ax__cell_t *c)
{
    ax__actor_msx_t *s = side(c);

    if (s != NULL)
        side_set(&s->failures, s->failures + 1);
}

void ax__metrics_restarted(ax__cell_t *c)
{
    ax__actor_msx_t *s = side(c);

    if (s != NULL)
        side_set(&s->restarts, s->restarts + 1);
}

void ax__metrics_cell_reset(ax__cell_t *c)
{
    ax__actor_msx_t *s = c->m_side;

    /* Atomic stores: a reader may be looking at the old actor's figures
     * (it drops them when it sees the new id in the word). */
    c->m_epoch = 0;
    ck_pr_store_64(&c->m_handled, 0);
    ck_pr_store_64(&c->m_time_ns, 0);
    ck_pr_store_64(&c->m_time_max_ns, 0);
    if (s != NULL) {
        uint64_t *f = &s->depth;

        for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
            side_set(&f[i], 0);
    }
}

/* ---- the metrics clock --------------------------------------------------- */

/* On the timer thread: store the time, come back in a tick. When the
 * timer cannot be re-armed (the wheel is stopping) the clock stops too. */
static void tick(void *arg)
{
    ax_system_t *sys = arg;
    uint64_t now = ax__now_ns(), id;

    /* Single writer (the timer thread); workers read it before and after
     * each handler and need no ordering with anything else. */
    ck_pr_store_64(&sys->metrics.now_ns, now);
    if (ax__timer_fn(sys->timers, now + AX__METRICS_TICK_NS, tick, sys, &id) != AX_OK)
        ck_pr_store_32(&sys->metrics.clock_started, 0);
}

static void clock_start(ax_system_t *sys)
{
    uint64_t id;

    /* A CAS: exactly one reader starts the ticker. */
    if (ck_pr_load_32(&sys->metrics.clock_started) || !ck_pr_cas_32(&sys->metrics.clock_started, 0, 1))
        return;
    ck_pr_store_64(&sys->metrics.now_ns, ax__now_ns());
    if (ax__timer_fn(sys->timers, ax__now_ns() + AX__METRICS_TICK_NS, tick, sys, &id) != AX_OK)
        ck_pr_store_32(&sys->metrics.clock_started, 0);
}

/* ---- the reader ------------------------------------------------------------ */

typedef struct top_s {
    ax_metrics_sort_t by;
    ax_actor_metrics_t *heap; /* a min-heap on the key, of up to cap */
    size_t cap, n, total;
} top_t;

static uint64_t key_of(const top_t *t, const ax_actor_metrics_t *m)
{
    return t->by == AX_METRICS_BY_TIME ? m->handler_ns : m->mailbox_depth;
}

/* a ranks below b: a smaller key, or the same key and a larger id (so the
 * order is total and older actors win ties). */
static bool below(const top_t *t, const ax_actor_metrics_t *a, const ax_actor_metrics_t *b)
{
    uint64_t ka = key_of(t, a), kb = key_of(t, b);

    return ka < kb || (ka == kb && a->id > b->id);
}

static void sift_down(top_t *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        ax_actor_metrics_t tmp;

        if (l < t->n && below(t, &t->heap[l], &t->heap[m]))
            m = l;
        if (r < t->n && below(t, &t->heap[r], &t->heap[m]))
            m = r;
        if (m == i)
            return;
        tmp = t->heap[i];
        t->heap[i] = t->heap[m];
        t->heap[m] = tmp;
        i = m;
    }
}

static void sift_up(top_t *t, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        ax_actor_metrics_t tmp;

        if (!below(t, &t->heap[i], &t->heap[p]))
            return;
        tmp = t->heap[i];
        t->heap[i] = t->heap[p];
        t->heap[p] = tmp;
        i = p;
    }
}

static void offer(top_t *t, const ax_actor_metrics_t *m)
{
    if (t->cap == 0)
        return;
    if (t->n < t->cap) {
        t->heap[t->n] = *m;
        sift_up(t, t->n++);
    } else if (below(t, &t->heap[0], m)) {
        t->heap[0] = *m;
        sift_down(t, 0);
    }
}

/* A consistent view of c's actor, or false when c holds none (free, ended,
 * or taken by another actor while we read). */
static bool read_cell(ax__cell_t *c, ax_actor_metrics_t *m)
{
    /* Acquire: the id is published after the cell (and its reset
     * metrics) were set up. */
    uint64_t w = ck_pr_load_64(&c->word), id = w >> AX__W_ID_SHIFT;
    const ax_actor_vtable_t *vt;
    ax__actor_msx_t *s;

    if (id == 0 || (w & AX__W_ENDED))
        return false;
    m->name[0] = '\0';
    memset(&m->mailbox_depth, 0, sizeof(*m) - offsetof(ax_actor_metrics_t, mailbox_depth));
    m->id = id;
    m->ref = (ax_ref_t){c, id};
    vt = ck_pr_load_ptr(&c->vt); /* stored atomically by create for us */
    m->type = vt != NULL && vt->name != NULL ? vt->name : "";
    m->handled = ck_pr_load_64(&c->m_handled);
    m->handler_ns = ck_pr_load_64(&c->m_time_ns);
    m->handler_max_ns = ck_pr_load_64(&c->m_time_max_ns);
    s = ck_pr_load_ptr(&c->m_side); /* dependency: fields read through it; side() fences */
    if (s != NULL) {
        m->mailbox_depth = ck_pr_load_64(&s->depth);
        ck_pr_fence_load(); /* pairs with ax__metrics_sample's: the largest is read after the depth */
        m->mailbox_depth_max = ck_pr_load_64(&s->depth_max);
        m->failures = ck_pr_load_64(&s->failures);
        m->restarts = ck_pr_load_64(&s->restarts);
        m->has_pool = ck_pr_load_64(&s->has_pool) != 0;
        m->pool.chunks_allocated = (size_t)ck_pr_load_64(&s->pool[0]);
        m->pool.chunks_free = (size_t)ck_pr_load_64(&s->pool[1]);
        m->pool.chunks_active = (size_t)ck_pr_load_64(&s->pool[2]);
        m->pool.chunks_leased = (size_t)ck_pr_load_64(&s->pool[3]);
        m->pool.bytes_allocated = (size_t)ck_pr_load_64(&s->pool[4]);
        m->pool.exhausted = ck_pr_load_64(&s->pool[5]);
    }
    /* An idle mailbox is empty now, whatever the last sample said. */
    if (ck_pr_load_ptr(&c->mbox.head) == ax__mpsc_tagged(&c->mbox.stub))
        m->mailbox_depth = 0;
    /* Everything above is read before the word is checked again. */
    ck_pr_fence_load();
    return ck_pr_load_64(&c->word) >> AX__W_ID_SHIFT == id;
}

static void visit(ax__cell_t *c, void *arg)
{
    top_t *t = arg;
    ax_actor_metrics_t m;

    if (!read_cell(c, &m))
        return;
    t->total++;
    offer(t, &m);
}

static int by_rank(const void *a, const void *b, void *arg)
{
    const top_t *t = arg;

    return below(t, a, b) ? 1 : below(t, b, a) ? -1 : 0;
}

ax_status_t ax_metrics_actors(ax_system_t *sys, ax_metrics_sort_t by, ax_actor_metrics_t *out,
                              size_t cap, size_t *count, size_t *total)
{
    top_t t = {by, out, cap, 0, 0};

    if (sys == NULL || count == NULL || (out == NULL && cap > 0))
        return ax__error(AX_EINVAL, "metrics_actors: NULL argument");
    if (by != AX_METRICS_BY_MAILBOX && by != AX_METRICS_BY_TIME)
        return ax__error(AX_EINVAL, "metrics_actors: unknown sort %d", (int)by);
    if (ax__current_worker(sys) != NULL)
        return ax__error(AX_ESTATE, "metrics_actors: called from one of the system's workers");
    clock_start(sys);
    /* Ask for fresh mailbox samples (a plain increment would race with
     * another reader; the workers only load it). */
    ck_pr_inc_32(&sys->metrics.epoch);
    ax__slab_each(&sys->slabs, visit, &t);
    if (t.n > 1)
        qsort_r(out, t.n, sizeof(*out), by_rank, &t);
    for (size_t i = 0; i < t.n; i++)
        ax__registry_name_of(&sys->registry, out[i].id, out[i].name, sizeof out[i].name);
    *count = t.n;
    if (total != NULL)
        *total = t.total;
    return AX_OK;
}

/* ---- the endpoint hook ---------------------------------------------------- */

ax_status_t ax__metrics_set_endpoint(ax_system_t *sys, void (*stop)(void *), void *ctx)
{
    ax_status_t st = AX_OK;

    pthread_mutex_lock(&sys->metrics.lock);
    if (sys->metrics.endpoint_stop != NULL)
        st = ax__error(AX_ESTATE, "metrics: the endpoint is serving already");
    else if (ck_pr_load_32(&sys->shutdown)) /* a hint: destroy stops a late endpoint */
        st = ax__error(AX_ESTATE, "metrics: the system is shutting down");
    else {
        sys->metrics.endpoint_stop = stop;
        sys->metrics.endpoint_ctx = ctx;
    }
    pthread_mutex_unlock(&sys->metrics.lock);
    if (st == AX_OK)
        clock_start(sys);
    return st;
}

void *ax__metrics_endpoint(ax_system_t *sys)
{
    void *ctx;

    pthread_mutex_lock(&sys->metrics.lock);
    ctx = sys->metrics.endpoint_ctx;
    pthread_mutex_unlock(&sys->metrics.lock);
    return ctx;
}

void ax__metrics_stop_endpoint(ax_system_t *sys)
{
    void (*stop)(void *);
    void *ctx;

    pthread_mutex_lock(&sys->metrics.lock);
    stop = sys->metrics.endpoint_stop;
    ctx = sys->metrics.endpoint_ctx;
    sys->metrics.endpoint_stop = NULL;
    sys->metrics.endpoint_ctx = NULL;
    pthread_mutex_unlock(&sys->metrics.lock);
    if (stop != NULL)
        stop(ctx);
}

static void free_side(ax__cell_t *c, void *arg)
{
    (void)arg;
    free(c->m_side);
    c->m_side = NULL;
}

void ax__metrics_destroy(ax_system_t *sys)
{
    ax__slab_each(&sys->slabs, free_side, NULL);
    pthread_mutex_destroy(&sys->metrics.lock);
}
