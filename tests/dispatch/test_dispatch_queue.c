/*
 * Lazy sends are bounded (network.dispatch_queue): while the dispatcher
 * cannot run (its only worker is held by another actor), a producer gets
 * AX_ENOBUFS for the send past the bound and keeps its message; once the
 * dispatcher runs, everything that was taken arrives, in order, and
 * sending works again.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define BOUND 16

static ax_system_t *queue_system(unsigned threads, size_t bound)
{
    ax_system_t *sys = NULL;
    ax_config_t cfg;
    char text[128];

    ax_config_init(&cfg);
    cfg.threads = threads;
    /* The key, through the loader as a user writes it. */
    snprintf(text, sizeof text, "axon = { network = { dispatch_queue = %zu; }; };", bound);
    cr_assert_eq(ax_config_load_string(&cfg, text), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(cfg.network.dispatch_queue, bound);
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

/* A job that holds its worker until released. */
typedef struct hold {
    sem_t running, release;
} hold_t;

static void hold_worker(ax_actor_t *self, void *arg)
{
    hold_t *h = arg;

    (void)self;
    sem_post(&h->running);
    sem_wait(&h->release);
}

Test(dispatch_queue, a_fast_producer_learns_enobufs)
{
    ax_system_t *a = queue_system(1, BOUND), *b = queue_system(2, 65536);
    nt_node_t sink, holder;
    ax_ref_t sink_ref, holder_ref, dst;
    ax_path_t p;
    hold_t h;
    ax_msg_t *m;

    nt_node_setup(&sink, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sink_ref), AX_OK);
    cr_assert_eq(ax_register(b, sink_ref, "sink"), AX_OK);
    cr_assert_eq(nt_named_path(b, "sink", &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(a, &p, &dst), AX_OK);

    /* a's only worker is held: its dispatcher cannot run. */
    nt_node_setup(&holder, NT_SINK);
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &holder, &holder_ref), AX_OK);
    sem_init(&h.running, 0, 0);
    sem_init(&h.release, 0, 0);
    cr_assert(axt_job_send(holder_ref, hold_worker, &h, NULL));
    AXT_WAIT_SEM(&h.running);

    for (uint64_t i = 0; i < BOUND; i++)
        cr_assert_eq(seq_send(NULL, dst, i, false), AX_OK, "send %llu: %s", (unsigned long long)i,
                     ax_error_detail());
    m = seq_new(BOUND);
    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_ENOBUFS, "the send past the bound is refused");
    cr_assert_not_null(m, "the caller keeps the refused message");
    ax_msg_release(&m);

    sem_post(&h.release);
    WAIT_UNTIL(atomic_load(&sink.received) == BOUND, "what was taken arrives");
    /* Room again: the refused one is sent now. */
    cr_assert_eq(seq_send(NULL, dst, BOUND, false), AX_OK, "sending works again: %s", ax_error_detail());
    WAIT_UNTIL(atomic_load(&sink.received) == BOUND + 1, "and arrives (%llu received, %llu bad)",
               (unsigned long long)atomic_load(&sink.received), (unsigned long long)atomic_load(&sink.bad));
    cr_assert_eq(atomic_load(&sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&sink.gaps), 0);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases), "every seq was released");
}

Test(dispatch_queue, zero_is_refused_by_the_loader)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(cfg.network.dispatch_queue, 65536, "the documented default");
    cr_assert_neq(ax_config_load_string(&cfg, "axon = { network = { dispatch_queue = 0; }; };"), AX_OK);
    cr_assert_eq(cfg.network.dispatch_queue, 65536, "nothing half-applied");
}
