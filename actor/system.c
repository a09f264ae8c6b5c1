/* Systems: create, shut down, await, destroy, stats. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor_run.h"
#include "actor/timer.h"
#include "serial/netmsg.h"
#include "actor/system.h"
#include "common/barrier.h"
#include "common/error.h"
#include "serial/msgmem.h"

/* Every part of a system but its workers; on failure nothing is left. */
static ax_status_t init_parts(ax_system_t *sys)
{
    static const ax_msg_pool_options_t netmsg_pool = {.initial = 0, .max = 1024};
    ax_status_t st = ax_addr_parse(sys->cfg.network.listen, &sys->addr_initial);

    if (st != AX_OK)
        return ax__error(st, "config: network.listen: %s", ax_error_detail());
    sys->addr = &sys->addr_initial;
    ck_spinlock_init(&sys->inject_lock);
    ck_spinlock_init(&sys->park_lock);
    pthread_mutex_init(&sys->dl_lock, NULL);
    pthread_mutex_init(&sys->remote_lock, NULL);
    ax__slabs_init(&sys->slabs);
    ax__metrics_init(&sys->metrics);
    sys->parts = 1;
    st = ax__registry_init(&sys->registry);
    if (st != AX_OK)
        return st;
    sys->parts = 2;
    st = ax__ser_registry_init(&sys->serialisers);
    if (st != AX_OK)
        return st;
    sys->parts = 3;
    st = ax__remote_table_init(&sys->remotes, sys, sys->cfg.network.max_remote_refs);
    if (st != AX_OK)
        return st;
    sys->parts = 4;
    st = ax_msg_pool_create(&ax_net_msg_type, &netmsg_pool, &sys->netmsg_pool);
    if (st != AX_OK)
        return st;
    sys->parts = 5;
    st = ax__asks_init(&sys->asks);
    if (st != AX_OK)
        return st;
    sys->parts = 6;
    st = ax__timers_start(sys, (uint64_t)sys->cfg.timer_tick_us * 1000u, &sys->timers);
    if (st != AX_OK)
        return st;
    sys->parts = 7;
    return AX_OK;
}

static void free_parts(ax_system_t *sys)
{
    ax__sched_destroy(sys);
    if (sys->parts >= 7)
        ax__timers_destroy(&sys->timers);
    if (sys->parts >= 6)
        ax__asks_destroy(&sys->asks);
    if (sys->parts >= 5)
        ax_msg_pool_destroy(&sys->netmsg_pool);
    if (sys->parts >= 4)
        ax__remote_table_destroy(&sys->remotes);
    if (sys->parts >= 3)
        ax__ser_registry_destroy(&sys->serialisers);
    if (sys->parts >= 2)
        ax__registry_destroy(&sys->registry);
    if (sys->parts >= 1) {
        ax__metrics_destroy(sys);
        ax__slabs_destroy(&sys->slabs);
        pthread_mutex_destroy(&sys->dl_lock);
        pthread_mutex_destroy(&sys->remote_lock);
    }
    free(sys);
}

ax_status_t ax_system_create(const ax_config_t *cfg, ax_system_t **out)
{
    ax_system_t *sys;
    ax_status_t st;

    if (out == NULL)
        return ax__error(AX_EINVAL, "system: NULL out");
    /* Aligned as its lines are (system.h: the awake bits, the counters). */
    sys = aligned_alloc(alignof(ax_system_t), sizeof(*sys));
    if (sys == NULL)
        return ax__error(AX_ENOMEM, "system: out of memory");
    memset(sys, 0, sizeof(*sys));
    if (cfg != NULL)
        sys->cfg = *cfg;
    else
        ax_config_init(&sys->cfg);
    st = ax_config_validate(&sys->cfg);
    if (st != AX_OK) {
        free(sys);
        return st;
    }
    /* Load the message allocator (a dlopen, serial/msgmem.c) before this
     * system starts any thread: mimalloc's thread-local heap pointer is
     * initial-exec TLS, and glibc can leave it zero in a thread created
     * while another thread runs the dlopen (glibc bug 19329). A network
     * thread started that way crashed in its first mi_malloc (test_net,
     * ASan, once). */
    (void)ax__msgmem_name();
    /* Before any system's first create: the two sides of create's
     * barrier must agree on what it is (common/barrier.h). */
    ax__barrier_init();
    sys->nworkers = sys->cfg.threads;
    if (sys->nworkers == 0)
        sys->nworkers = ax__cpus_usable(); /* as many as may run at once */
    st = init_parts(sys);
    if (st == AX_OK)
        st = ax__sched_start(sys);
    if (st != AX_OK) {
        free_parts(sys);
        return st;
    }
    *out = sys;
    return AX_OK;
}

void ax_system_shutdown(ax_system_t *sys)
{
    /* Once: the exchange makes a second shutdown a no-op. */
    if (sys == NULL)
        return;
    /* From a handler: what it sent before reaches the mailboxes before
     * the stops, as a tell before ax_stop does. */
    ax__deferred_end();
    if (ck_pr_fas_32(&sys->shutdown, 1) != 0)
        return;
    /* Pairs with the light barrier in create: a concurrent ax_create
     * either is visited here or sees the flag and stops its actor itself. */
    ax__barrier_heavy();
    ax__stop_all(sys);
    ax__late_check(sys); /* only late actors may be left already */
    if (ax__alive(sys) == 0)
        ax__sched_wake_all(sys);
}

ax_status_t ax_system_await_termination(ax_system_t *sys)
{
    if (sys == NULL)
        return ax__error(AX_EINVAL, "system: NULL");
    if (ax__current_worker(sys) != NULL)
        return ax__error(AX_ESTATE, "system: await_termination called from one of its workers");
    /* Relaxed: the caller ran shutdown, or is synchronised with a thread that did. */
    if (!ck_pr_load_32(&sys->shutdown))
        return ax__error(AX_ESTATE, "system: await_termination before shutdown would never return");
    ax__sched_join(sys);
    /* Every actor has ended: the network flushes what they sent, says
     * Bye and stops. Relaxed: ax_net_start ran on this thread, on a worker
     * joined above, or on a thread the caller synchronised with. */
    if (ck_pr_load_ptr(&sys->net_ops) != NULL)
        sys->net_ops->stop(sys->net_ctx);
    sys->awaited = true;
    return AX_OK;
}

ax_status_t ax_system_destroy(ax_system_t **sysp)
{
    ax_system_t *sys;

    if (sysp == NULL || *sysp == NULL)
        return AX_OK;
    sys = *sysp;
    /* From one of its own workers (a handler, a hook) the system would be
     * freed under the run loop that called us: refuse, change nothing. */
    if (ax__current_worker(sys) != NULL)
        return ax__error(AX_ESTATE, "system: destroy called from one of its workers (a handler); "
                         "shut it down there and destroy it from another thread");
    /* From code the destroy itself runs (an actor's destroy hook while the
     * mailboxes are drained): the outer call frees the system. */
    if (sys->destroying)
        return ax__error(AX_ESTATE, "system: destroy called while it is being destroyed");
    sys->destroying = true;
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax__metrics_stop_endpoint(sys); /* it reads cells and the network */
    /* No thread runs in the system now: release what late senders left
     * in ended cells, then free everything. */
    if (sys->net_ops != NULL)
        sys->net_ops->destroy(sys->net_ctx);
    /* No actor is left to receive a timer's message; stop the wheel
     * before the mailboxes are drained (a drained timer message frees its
     * record under the wheel's lock). */
    ax__timers_stop(sys->timers);
    ax__drain_all(sys);
    free_parts(sys);
    *sysp = NULL;
    return AX_OK;
}

static void add_worker_stats(const ax__worker_t *w, ax_system_stats_t *out)
{
    out->delivered += ck_pr_load_64(&w->delivered);
    out->dead_letters += ck_pr_load_64(&w->dead_letters);
    out->steals += ck_pr_load_64(&w->steals);
    out->parks += ck_pr_load_64(&w->parks);
    out->failures += ck_pr_load_64(&w->failures);
    out->restarts += ck_pr_load_64(&w->restarts);
}

void ax_system_stats(ax_system_t *sys, ax_system_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    /* Single-writer counters: atomic loads give each a recent value; the
     * sum is not a snapshot across workers, and need not be. */
    for (unsigned i = 0; i < sys->nworkers; i++)
        add_worker_stats(&sys->workers[i], out);
    if (sys->guest != NULL)
        add_worker_stats(sys->guest, out); /* the network thread's (sched.c) */
    out->dead_letters += ck_pr_load_64(&sys->dead_letters_ext);
    out->lost_notices = ck_pr_load_64(&sys->lost_notices);
    out->actors_alive = ax__alive(sys);
    out->cell_bytes = ax__slab_bytes(&sys->slabs);
    out->timer_bytes = ax__timers_bytes(sys->timers);
    out->ask_bytes = ax__asks_bytes(&sys->asks);
    pthread_mutex_lock(&sys->remote_lock);
    ax__remote_table_stats(&sys->remotes, &out->remote_refs, &out->remote_bytes, &out->remote_evicted);
    pthread_mutex_unlock(&sys->remote_lock);
}

unsigned ax_system_workers(const ax_system_t *sys)
{
    return sys->nworkers;
}
