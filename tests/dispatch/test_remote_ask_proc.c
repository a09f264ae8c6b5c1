/*
 * Ask across processes: this test's system asks the echo of net_peer, a
 * system in a process of its own (lazy and eager requests, lazy and eager
 * replies), and an ask waiting on a peer that is then killed with SIGKILL
 * ends with AX_ECLOSED at once, though no ask timeout was set.
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
#include "tests/dispatch/peer_proc.h"

static ax_system_t *ask_system(void)
{
    ax_system_t *sys = NULL;
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_ref_t peer_ref(ax_system_t *sys, uint16_t port, const char *name)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(nt_port_path(port, name, &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

/* net_peer's echo sends each seq back to its sender: to the reply slot. */
static void ask_echo(ax_ref_t dst, uint64_t seq)
{
    ax_msg_t *m = seq_new(seq), *reply = NULL;
    ax_future_t *f = NULL;
    uint64_t got = UINT64_MAX;

    cr_assert_eq(ax_ask(dst, &m, 0, &f), AX_OK, "ask: %s", ax_error_detail());
    cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_OK, "ask %llu: %s", (unsigned long long)seq,
                 ax_error_detail());
    cr_assert_eq(reply->type, &ax_net_msg_type);
    cr_assert(seq_of((const ax_net_msg_t *)reply, &got));
    cr_assert_eq(got, seq);
    ax_msg_release(&reply);
    ax_future_release(&f);
}

/* An actor asks eagerly; its result message is checked there. */
typedef struct eager_asker {
    ax_actor_t actor;
    ax_ref_t dst;
    ax_future_t *future;
    _Atomic int status;
    _Atomic uint64_t seq;
    sem_t *done;
} eager_asker_t;

static ax_status_t eager_init(ax_actor_t *self, void *arg)
{
    eager_asker_t *a = (eager_asker_t *)self;

    a->done = arg;
    atomic_store(&a->status, AX_EUNKNOWN);
    return AX_OK;
}

static ax_status_t eager_receive(ax_actor_t *self, ax_msg_t **msg)
{
    eager_asker_t *a = (eager_asker_t *)self;
    ax_ask_result_t *r = (ax_ask_result_t *)*msg;
    uint64_t seq = UINT64_MAX;

    if (axt_job_run(self, *msg) || (*msg)->type != &ax_ask_result_type)
        return AX_OK;
    if (r->reply != NULL && r->reply->type == &ax_net_msg_type && seq_of((const ax_net_msg_t *)r->reply, &seq))
        atomic_store(&a->seq, seq);
    atomic_store(&a->status, r->status);
    ax_future_release(&a->future);
    sem_post(a->done);
    return AX_OK;
}

static const ax_actor_vtable_t eager_vtable = {
    .name = "test.eager-asker",
    .size = sizeof(eager_asker_t),
    .init = eager_init,
    .receive_local = eager_receive,
};

static void eager_go(ax_actor_t *self, void *arg)
{
    eager_asker_t *a = (eager_asker_t *)self;
    seq_msg_t s;

    ax_msg_init(&s.hdr, &seq_type);
    s.seq = 4242;
    if (ax_ask_serialised(self, *(ax_ref_t *)arg, &seq_type, &s.hdr, 0, &a->future) != AX_OK)
        atomic_store(&a->status, AX_EINVAL);
}

static void ask_peer(const char *reply_mode)
{
    peer_t peer = peer_start(0, NULL, "echo", reply_mode);
    ax_system_t *a = ask_system();
    ax_ref_t dst = peer_ref(a, peer.port, "echo"), asker;
    eager_asker_t *view;
    sem_t done;
    peer_report_t r;

    for (uint64_t i = 0; i < 20; i++)
        ask_echo(dst, i);
    sem_init(&done, 0, 0);
    cr_assert_eq(ax_spawn(a, &eager_vtable, &done, &asker), AX_OK);
    RUN_ON(asker, eager_go, &dst);
    AXT_WAIT_SEM(&done);
    view = (eager_asker_t *)asker.target; /* alive until stopped: read its result */
    cr_assert_eq(atomic_load(&view->status), AX_OK, "%s", ax_status_name(atomic_load(&view->status)));
    cr_assert_eq(atomic_load(&view->seq), 4242);
    ax_system_destroy(&a);
    r = peer_stop(&peer);
    cr_assert_eq(r.received, 21);
    cr_assert_eq(r.bad, 0);
}

Test(remote_ask_proc, echo_replies_lazily)
{
    ask_peer("lazy");
}

Test(remote_ask_proc, echo_replies_eagerly)
{
    ask_peer("eager");
}

Test(remote_ask_proc, peer_killed_while_pending_is_eclosed)
{
    peer_t peer = peer_start(0, NULL, "sink", "none");
    ax_system_t *a = ask_system();
    ax_msg_t *m = seq_new(1), *reply = NULL;
    ax_future_t *f = NULL;
    ax_net_stats_t s;

    cr_assert_eq(ax_ask(peer_ref(a, peer.port, "sink"), &m, 0, &f), AX_OK);
    /* Delivered: the peer acknowledged the request. */
    WAIT_UNTIL(ax_net_stats(a, &s) == AX_OK && s.acked == 1, "the request was not acknowledged");
    cr_assert_eq(ax_future_wait(f, AX_MS(20), &reply), AX_ETIMEDOUT, "nobody answers");
    peer_kill(&peer);
    cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_ECLOSED, "%s", ax_error_detail());
    cr_assert_null(reply);
    ax_future_release(&f);
    ax_system_destroy(&a);
}
