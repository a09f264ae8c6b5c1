/*
 * Nothing lost when memory runs out. Linked against a library built with
 * the allocation fault hook (common/fault.h), each test fails one
 * allocation on a path that used to drop something, and checks that what
 * was dropped reaches a status, a counter or a dead letter:
 *
 *   - a child event, and an escalation (actor/supervise.c): lost_notices;
 *   - a network event (dispatch/net.c): events_lost;
 *   - the dead-letter wrapper (actor/deadletter.c): counted as a dead
 *     letter and in lost_notices;
 *   - pthread_create in ax_net_start: a status, and nothing half-started
 *     (the network can be started again);
 *   - the record of a written frame (dispatch/netthread.c, unacked_push):
 *     the frame itself goes to dead letters (AX_ENOMEM), the connection is
 *     ended and remade, and sent = delivered + dead-lettered still holds.
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
#include "common/fault.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

static ax_system_t *fault_system(bool net)
{
    ax_system_t *sys = NULL;
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    if (net)
        cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_system_stats_t sstats(ax_system_t *sys)
{
    ax_system_stats_t s;

    ax_system_stats(sys, &s);
    return s;
}

static void disarm(void)
{
    ax__fault_arm(NULL, 0, 0);
}

Test(fault_inject, the_hook_is_built_in)
{
    cr_assert(ax__fault_arm("nothing.here", 1, 1), "this test needs the fault-injection library");
    disarm();
}

/* ---- child events ------------------------------------------------------------ */

typedef struct family {
    ax_ref_t child;
    bool child_fails;          /* the child fails at once, and escalates */
    _Atomic uint64_t events;   /* child events the parent received */
} family_t;

typedef struct parent_actor {
    ax_actor_t actor;
    family_t *f;
} parent_actor_t;

static ax_status_t parent_init(ax_actor_t *self, void *arg)
{
    ((parent_actor_t *)self)->f = arg;
    return AX_OK;
}

static ax_status_t child_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    ax_fail(self, AX_EIO);
    return AX_OK;
}

static const ax_actor_vtable_t child_vtable = {
    .name = "test.child",
    .size = sizeof(ax_actor_t),
    .receive_local = child_receive,
};

static void spawn_child(ax_actor_t *self, void *arg)
{
    family_t *f = arg;
    ax_spawn_opts_t opts = {.parent = self};

    /* Escalate on the first failure: no restart is allowed. */
    if (f->child_fails)
        opts.restart = (ax_restart_policy_t){AX_RESTART_BACKOFF, 0, AX_MS(1000), AX_MS(1), AX_MS(1)};
    if (ax_spawn_opts(ax_actor_system(self), &child_vtable, NULL, &opts, &f->child) != AX_OK)
        f->child = AX_REF_NULL;
}

static ax_status_t parent_receive(ax_actor_t *self, ax_msg_t **msg)
{
    family_t *f = ((parent_actor_t *)self)->f;

    if (axt_job_run(self, *msg))
        return AX_OK;
    if ((*msg)->type == &ax_child_event_type)
        atomic_fetch_add(&f->events, 1);
    return AX_OK;
}

static const ax_actor_vtable_t parent_vtable = {
    .name = "test.parent",
    .size = sizeof(parent_actor_t),
    .init = parent_init,
    .receive_local = parent_receive,
};

static void child_event_lost(bool escalation)
{
    ax_system_t *sys = fault_system(false);
    family_t f = {.child_fails = escalation};
    ax_ref_t parent;
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_spawn(sys, &parent_vtable, &f, &parent), AX_OK);
    RUN_ON(parent, spawn_child, &f);
    cr_assert(!ax_ref_is_null(f.child));
    ax__fault_arm("axon.child-event", 1, 1);
    if (escalation) {
        /* Fails: the escalation notice is the first child event. */
        cr_assert_eq(ax_msg_alloc(&axt_job_type, &m), AX_OK);
        cr_assert_eq(ax_tell(f.child, &m, AX_REF_NULL), AX_OK);
    } else {
        cr_assert_eq(ax_stop(f.child), AX_OK);
    }
    WAIT_UNTIL(sstats(sys).lost_notices == 1, "the lost child event is counted");
    cr_assert_eq(ax__fault_hits(), 1);
    disarm();
    if (escalation) /* the ended notice after the lost escalation comes */
        WAIT_UNTIL(atomic_load(&f.events) == 1, "the next event arrives");
    else
        cr_assert_eq(atomic_load(&f.events), 0);
    ax_system_destroy(&sys);
}

Test(fault_inject, child_event_lost_is_counted)
{
    child_event_lost(false);
}

Test(fault_inject, escalation_lost_is_counted)
{
    child_event_lost(true);
}

/* ---- the dead-letter wrapper ---------------------------------------------------- */

Test(fault_inject, dead_letter_wrapper_lost_is_counted)
{
    ax_system_t *sys = fault_system(false);
    nt_dl_t dl = {0};
    ax_ref_t dl_ref, gone;
    family_t f = {0};

    cr_assert_eq(ax_spawn(sys, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(sys, dl_ref);
    cr_assert_eq(ax_spawn(sys, &parent_vtable, &f, &gone), AX_OK);
    cr_assert_eq(ax_kill(gone), AX_OK);
    WAIT_UNTIL(sstats(sys).actors_alive == 1, "the actor ended");
    ax__fault_arm("axon.dead-letter-wrapper", 1, 1);
    for (int i = 0; i < 2; i++) {
        ax_msg_t *m = seq_new((uint64_t)i);

        cr_assert_eq(ax_tell(gone, &m, AX_REF_NULL), AX_OK);
        ax_msg_release(&m);
    }
    WAIT_UNTIL(atomic_load(&dl.count) == 1, "the second dead letter reaches the actor");
    cr_assert_eq(sstats(sys).dead_letters, 2, "both are counted");
    cr_assert_eq(sstats(sys).lost_notices, 1, "one could not be reported");
    disarm();
    ax_system_destroy(&sys);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases));
}

/* ---- network ------------------------------------------------------------------- */

Test(fault_inject, network_thread_that_cannot_start_leaves_nothing)
{
    ax_system_t *sys = fault_system(false);
    ax_net_stats_t ns;

    ax__fault_arm("net.thread", 1, 1);
    cr_assert_eq(ax_net_start(sys), AX_ENOMEM, "the failure is a status");
    disarm();
    cr_assert_eq(ax_net_stats(sys, &ns), AX_ESTATE, "no network is installed");
    WAIT_UNTIL(sstats(sys).actors_alive == 0, "no dispatcher is left");
    cr_assert_eq(ax_net_start(sys), AX_OK, "it can be started afresh: %s", ax_error_detail());
    cr_assert_eq(ax_net_stats(sys, &ns), AX_OK);
    ax_system_destroy(&sys);
}

static void spawn_events(ax_system_t *sys, nt_events_t *log)
{
    ax_ref_t ref;

    nt_events_setup(log);
    cr_assert_eq(ax_spawn(sys, &nt_events_vtable, log, &ref), AX_OK);
    cr_assert_eq(ax_net_subscribe(sys, ref), AX_OK);
}

Test(fault_inject, network_event_lost_is_counted)
{
    ax_system_t *a = fault_system(true), *b = fault_system(true);
    nt_events_t log;
    nt_node_t sink;
    ax_net_stats_t ns;
    ax_ref_t dst = nt_sink_on(b, a, &sink);

    spawn_events(a, &log);
    ax__fault_arm("axon.net-event", 1, 1);
    cr_assert_eq(seq_send(NULL, dst, 0, false), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "the message arrives");
    WAIT_UNTIL(ax_net_stats(a, &ns) == AX_OK && ns.events_lost == 1, "the lost ESTABLISHED is counted");
    disarm();
    cr_assert_eq(nt_events_count(&log, AX_NET_ESTABLISHED), 0);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

#define FRAMES 100

Test(fault_inject, unacked_record_lost_dead_letters_the_frame)
{
    ax_system_t *a = fault_system(true), *b = fault_system(true);
    nt_node_t sink;
    nt_dl_t dl = {0};
    ax_ref_t dl_ref, dst = nt_sink_on(b, a, &sink);
    ax_net_stats_t ns;

    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    /* The first frame written needs the first record. */
    ax__fault_arm("net.unacked", 1, 1);
    for (uint64_t i = 0; i < FRAMES; i++)
        cr_assert_eq(seq_send(NULL, dst, i, false), AX_OK);
    WAIT_UNTIL(ax_net_stats(a, &ns) == AX_OK && ns.acked + ns.dead_lettered == FRAMES,
               "every frame is accounted for (%llu delivered, %llu dead-lettered)",
               (unsigned long long)ns.acked, (unsigned long long)ns.dead_lettered);
    disarm();
    cr_assert_geq(ns.dead_lettered, 1);
    WAIT_UNTIL(nt_dl_status(&dl, AX_ENOMEM) == 1, "the frame without a record is a dead letter");
    cr_assert_geq(atomic_load(&dl.seq_decoded), 1, "as the user's message, still decodable");
    /* Acked means handed to the sink's mailbox; its handler counts them
     * a moment later. */
    WAIT_UNTIL(atomic_load(&sink.received) >= FRAMES - ns.dead_lettered,
               "every frame not dead-lettered reaches the sink (%llu of %llu)",
               (unsigned long long)atomic_load(&sink.received),
               (unsigned long long)(FRAMES - ns.dead_lettered));
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

/* ---- a lazy send in a batch that cannot be serialised ----------------------- */

/*
 * Lazy sends that a handler makes one after another reach the dispatcher
 * as one batch (dispatch/net.c). When two in the middle cannot be
 * serialised (no memory for their NetMessages), those two go to dead
 * letters, as the user's messages, with AX_ENOMEM; the batch's others
 * arrive, in order, and every send is accounted for.
 */
Test(fault_inject, a_batch_member_without_memory_is_a_dead_letter)
{
    ax_system_t *a = fault_system(true), *b = fault_system(true);
    nt_node_t sink, sender;
    nt_dl_t dl = {0};
    ax_ref_t dl_ref, sender_ref, dst = nt_sink_on(b, a, &sink);
    seq_stream_t job = {.dst = dst, .first = 0, .count = 1};
    ax_net_stats_t ns;

    dl.watch = dst;
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);
    /* seq 0 first: the connection is up and the paths are known. */
    cr_assert(axt_run_on(sender_ref, seq_stream_send, &job, WAIT_S));
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "the first seq arrives");

    /* Seqs 1 to 10 in one handler; the third and fourth NetMessages made
     * after this (seqs 3 and 4) cannot be had. The batch's frames go to
     * the network thread together when the dispatcher has made them all,
     * so b's receiving side, which makes NetMessages too, makes none in
     * between. */
    job = (seq_stream_t){.dst = dst, .first = 1, .count = 10};
    ax__fault_arm("axon.net-message", 3, 2);
    cr_assert(axt_run_on(sender_ref, seq_stream_send, &job, WAIT_S));
    WAIT_UNTIL(nt_dl_status(&dl, AX_ENOMEM) == 2, "two dead letters with AX_ENOMEM (%llu of %llu)",
               (unsigned long long)nt_dl_status(&dl, AX_ENOMEM), (unsigned long long)atomic_load(&dl.count));
    disarm();
    cr_assert_eq(atomic_load(&job.failed), 0, "every send was taken");
    cr_assert_eq(atomic_load(&dl.seqs), 2, "the user's messages, not their envelopes");
    cr_assert_eq(atomic_load(&dl.wrong_recipient), 0, "each names the remote ref it was sent to");
    WAIT_UNTIL(atomic_load(&sink.received) == 9, "the other eight arrive (%llu)",
               (unsigned long long)atomic_load(&sink.received) - 1);
    cr_assert_eq(atomic_load(&sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&sink.gaps), 1, "one gap: seqs 3 and 4");
    cr_assert_eq(sink.next, 11);
    WAIT_UNTIL(ax_net_stats(a, &ns) == AX_OK && ns.acked == 9, "9 delivered (%llu)",
               (unsigned long long)ns.acked);
    cr_assert_eq(ns.dead_lettered, 2);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases), "every seq was released");
}
