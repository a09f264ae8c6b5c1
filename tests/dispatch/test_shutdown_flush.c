/*
 * Graceful shutdown keeps the network for the actors' last words: what
 * actors send to remote actors from on_stop is delivered (the dispatcher
 * and the network outlive the user's actors), and what cannot go out
 * reaches dead letters as the user's own message, never as the
 * dispatcher's private envelope.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

/* An actor that sends `count` seqs to dst from its on_stop. */
typedef struct last_words {
    ax_ref_t dst;
    uint64_t count;
    bool eager;
    _Atomic uint64_t refused; /* sends that returned an error */
} last_words_t;

typedef struct last_words_actor {
    ax_actor_t actor;
    last_words_t *w;
} last_words_actor_t;

static ax_status_t lw_init(ax_actor_t *self, void *arg)
{
    ((last_words_actor_t *)self)->w = arg;
    return AX_OK;
}

static void lw_stop(ax_actor_t *self)
{
    last_words_t *w = ((last_words_actor_t *)self)->w;

    for (uint64_t i = 0; i < w->count; i++)
        if (seq_send(self, w->dst, i, w->eager) != AX_OK)
            atomic_fetch_add(&w->refused, 1);
}

static ax_status_t lw_receive(ax_actor_t *self, ax_msg_t **msg)
{
    axt_job_run(self, *msg);
    return AX_OK;
}

static const ax_actor_vtable_t lw_vtable = {
    .name = "test.last-words",
    .size = sizeof(last_words_actor_t),
    .init = lw_init,
    .on_stop = lw_stop,
    .receive_local = lw_receive,
};

static ax_system_t *flush_system(const ax_config_t *cfg)
{
    ax_system_t *sys = NULL;

    cr_assert_eq(ax_system_create(cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_ref_t remote_named(ax_system_t *from, ax_system_t *to, const char *name)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(nt_named_path(to, name, &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(from, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

#define SENT 200

/* Actors that say nothing when they stop. */
static last_words_t quiet;

static void on_stop_is_delivered(bool eager)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    /* The flush ends when everything is acknowledged; its bound is not
     * what is tested here, and a loaded machine must not decide it. */
    cfg.network.flush_timeout_ms = 60000;
    for (int run = 0; run < 3; run++) {
        ax_system_t *a = flush_system(&cfg), *b = flush_system(&cfg);
        last_words_t w = {.count = SENT, .eager = eager};
        nt_node_t sink;
        ax_ref_t sink_ref, lw;
        ax_net_stats_t ns;
        ax_system_stats_t ss;

        nt_node_setup(&sink, NT_SINK);
        cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sink_ref), AX_OK);
        cr_assert_eq(ax_register(b, sink_ref, "sink"), AX_OK);
        w.dst = remote_named(a, b, "sink");
        /* Several actors, so that the dispatcher is not simply last in
         * the slab order. */
        for (int i = 0; i < 4; i++) {
            ax_ref_t other;

            cr_assert_eq(ax_spawn(a, &lw_vtable, &quiet, &other), AX_OK);
        }
        cr_assert_eq(ax_spawn(a, &lw_vtable, &w, &lw), AX_OK);
        ax_system_shutdown(a);
        cr_assert_eq(ax_system_await_termination(a), AX_OK);
        cr_assert_eq(ax_net_stats(a, &ns), AX_OK);
        ax_system_stats(a, &ss);
        ax_system_destroy(&a);
        cr_assert_eq(atomic_load(&w.refused), 0, "run %d: every send from on_stop was taken", run);
        cr_assert_eq(ns.acked, SENT, "run %d: %llu acknowledged, %llu sent, %llu dead-lettered (%llu in all)",
                     run, (unsigned long long)ns.acked, (unsigned long long)ns.frames_sent,
                     (unsigned long long)ns.dead_lettered, (unsigned long long)ss.dead_letters);
        WAIT_UNTIL(atomic_load(&sink.received) == SENT, "run %d: %llu of %d arrived", run,
                   (unsigned long long)atomic_load(&sink.received), SENT);
        cr_assert_eq(atomic_load(&sink.out_of_order), 0);
        cr_assert_eq(atomic_load(&sink.gaps), 0);
        ax_system_destroy(&b);
    }
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases), "every seq was released");
}

Test(shutdown_flush, on_stop_lazy_sends_are_delivered)
{
    on_stop_is_delivered(false);
}

Test(shutdown_flush, on_stop_eager_sends_are_delivered)
{
    on_stop_is_delivered(true);
}

/*
 * Nobody listens at dst, and the dispatcher's pool is tiny: the frames
 * the pool can hold wait for a connection that never comes (dead letters
 * with AX_ECLOSED when the network stops), and the rest are refused by
 * the dispatcher (AX_ENOBUFS). Those reach the dead-letter actor, which
 * outlives the sender, as the user's seq messages.
 */
Test(shutdown_flush, what_cannot_go_out_is_dead_lettered_as_the_users_message)
{
    ax_config_t cfg;
    ax_system_t *a, *gone;
    last_words_t w = {.count = 1000};
    nt_dl_t dl = {0};
    ax_ref_t dl_ref, lw;
    ax_net_stats_t ns;
    ax_system_stats_t ss;

    ax_config_init(&cfg);
    cfg.threads = 2;
    gone = flush_system(&cfg);
    cfg.network.buffer_config = (ax_buffer_config_t){
        .chunk_size = 4096, .initial_chunk_count = 1, .max_chunk_count = 4, .encode_buf_min_free_space = 64};
    cfg.network.max_frame_size = 4096;
    cfg.network.peer_queue = 100000;
    cfg.network.backoff_initial_ms = 10000;
    cfg.network.backoff_max_ms = 10000;
    cfg.network.flush_timeout_ms = 100;
    a = flush_system(&cfg);
    w.dst = remote_named(a, gone, "sink");
    ax_system_destroy(&gone);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    cr_assert_eq(ax_spawn(a, &lw_vtable, &w, &lw), AX_OK);
    ax_system_shutdown(a);
    cr_assert_eq(ax_system_await_termination(a), AX_OK);
    cr_assert_eq(atomic_load(&w.refused), 0);
    cr_assert_eq(ax_net_stats(a, &ns), AX_OK);
    ax_system_stats(a, &ss);
    cr_assert_eq(ns.dead_lettered, w.count, "every message is a dead letter: %llu",
                 (unsigned long long)ns.dead_lettered);
    cr_assert_eq(ss.dead_letters, w.count);
    cr_assert_gt(atomic_load(&dl.seqs), 0, "the dead-letter actor saw the user's messages");
    cr_assert_eq(nt_dl_status(&dl, AX_ENOBUFS), atomic_load(&dl.seqs));
    cr_assert_eq(atomic_load(&dl.others), 0, "no envelope and nothing unknown reached it");
    ax_system_destroy(&a);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases), "every seq was released");
}
