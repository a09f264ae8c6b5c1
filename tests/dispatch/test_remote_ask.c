/*
 * Ask across systems (two systems in one process, over loopback, real
 * sockets): the request lazy (ax_ask) or eager (ax_ask_serialised), the
 * reply lazy (ax_reply) or eager (ax_tell_serialised to the sender); an
 * actor of either system asking the other; the remote actor missing
 * (AX_ENOTFOUND at once, with no timeout set); the peer unreachable
 * (AX_ETIMEDOUT once the retries are spent); the peer going away while
 * the reply is awaited (AX_ECLOSED); a reply after the timeout (a dead
 * letter, as locally); and a local ask answered eagerly.
 *
 * The futures are asked with no timeout wherever the status must come
 * from the delivery itself: a test then fails (bounded by WAIT_S) if the
 * failed delivery is not tied back to the future.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define ANSWER_OFFSET 1000u

static ax_system_t *ask_system(void)
{
    ax_system_t *sys = NULL;
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cfg.network.max_retries = 2;
    cfg.network.backoff_initial_ms = 10;
    cfg.network.backoff_max_ms = 20;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_ref_t remote_named(ax_system_t *from, ax_system_t *to, const char *name)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(nt_named_path(to, name, &p), AX_OK, "path: %s", ax_error_detail());
    cr_assert_eq(ax_ref_from_path(from, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

/* ---- the answering side: a node whose on_net answers seq with seq+1000 ---- */

typedef enum answer_mode {
    ANSWER_LAZY,  /* ax_reply */
    ANSWER_EAGER, /* ax_net_msg_sender, then ax_tell_serialised */
    ANSWER_NONE,  /* keep the request unanswered (the node holds it) */
} answer_mode_t;

static void answer(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    answer_mode_t mode = (answer_mode_t)(uintptr_t)n->ctx;
    uint64_t seq;
    ax_ref_t back;

    if (!seq_of(*nm, &seq)) {
        atomic_fetch_add(&n->bad, 1);
        return;
    }
    if (mode == ANSWER_NONE) {
        nt_node_keep(n, nm);
        return;
    }
    if (mode == ANSWER_LAZY) {
        ax_msg_t *r = seq_new(seq + ANSWER_OFFSET);

        if (ax_reply((const ax_msg_t *)*nm, &r, ax_self(self)) != AX_OK) {
            atomic_fetch_add(&n->bad, 1);
            ax_msg_release(&r);
        }
        return;
    }
    if (ax_net_msg_sender(self, *nm, &back) != AX_OK || seq_send(self, back, seq + ANSWER_OFFSET, true) != AX_OK)
        atomic_fetch_add(&n->bad, 1);
}

static ax_ref_t spawn_answerer(ax_system_t *sys, nt_node_t *n, answer_mode_t mode, const char *name)
{
    ax_ref_t ref;

    nt_node_setup(n, NT_SINK);
    n->on_net = answer;
    n->ctx = (void *)(uintptr_t)mode;
    cr_assert_eq(ax_spawn(sys, &nt_node_vtable, n, &ref), AX_OK);
    cr_assert_eq(ax_register(sys, ref, name), AX_OK);
    return ref;
}

/* ---- the asking side from a thread -------------------------------------------- */

/* Ask dst for seq from this thread; the future completes with st, and on
 * AX_OK with a NetMessage carrying seq+1000. */
static void thread_ask(ax_ref_t dst, uint64_t seq, uint64_t timeout_ns, ax_status_t want)
{
    ax_msg_t *m = seq_new(seq), *reply = NULL;
    ax_future_t *f = NULL;
    ax_status_t st;
    uint64_t got = 0;

    cr_assert_eq(ax_ask(dst, &m, timeout_ns, &f), AX_OK, "ask: %s", ax_error_detail());
    cr_assert_null(m);
    st = ax_future_wait(f, AX_MS(60000), &reply);
    cr_assert_eq(st, want, "ask %llu completed with %s, not %s (%s)", (unsigned long long)seq, ax_status_name(st),
                 ax_status_name(want), ax_error_detail());
    if (want == AX_OK) {
        cr_assert_not_null(reply);
        cr_assert_eq(reply->type, &ax_net_msg_type, "a remote reply is a NetMessage");
        cr_assert(seq_of((const ax_net_msg_t *)reply, &got));
        cr_assert_eq(got, seq + ANSWER_OFFSET);
    } else {
        cr_assert_null(reply);
    }
    ax_msg_release(&reply);
    ax_future_release(&f);
}

/* ---- the asking side from an actor -------------------------------------------- */

typedef struct asker {
    ax_ref_t dst;
    bool eager;
    uint64_t seq, timeout_ns;
    ax_status_t ask_status;      /* what ax_ask / ax_ask_serialised returned */
    ax_future_t *future;
    _Atomic int result_status;   /* the ax_ask_result's status */
    _Atomic uint64_t reply_seq;  /* its reply's seq, 0 when none */
    _Atomic uint64_t results;
    sem_t done;
} asker_t;

typedef struct asker_actor {
    ax_actor_t actor;
    asker_t *a;
} asker_actor_t;

static ax_status_t asker_init(ax_actor_t *self, void *arg)
{
    ((asker_actor_t *)self)->a = arg;
    return AX_OK;
}

static ax_status_t asker_receive(ax_actor_t *self, ax_msg_t **msg)
{
    asker_t *a = ((asker_actor_t *)self)->a;
    ax_ask_result_t *r = (ax_ask_result_t *)*msg;
    uint64_t seq = 0;

    if (axt_job_run(self, *msg) || (*msg)->type != &ax_ask_result_type)
        return AX_OK;
    if (r->reply != NULL && r->reply->type == &ax_net_msg_type && seq_of((const ax_net_msg_t *)r->reply, &seq))
        atomic_store(&a->reply_seq, seq);
    atomic_store(&a->result_status, r->status);
    ax_future_release(&a->future);
    atomic_fetch_add(&a->results, 1);
    sem_post(&a->done);
    return AX_OK;
}

static const ax_actor_vtable_t asker_vtable = {
    .name = "test.asker",
    .size = sizeof(asker_actor_t),
    .init = asker_init,
    .receive_local = asker_receive,
};

/* A job: ask a->dst for a->seq, lazily or eagerly. */
static void asker_go(ax_actor_t *self, void *arg)
{
    asker_t *a = arg;

    if (a->eager) {
        seq_msg_t s;

        ax_msg_init(&s.hdr, &seq_type);
        s.seq = a->seq;
        a->ask_status = ax_ask_serialised(self, a->dst, &seq_type, &s.hdr, a->timeout_ns, &a->future);
    } else {
        ax_msg_t *m = seq_new(a->seq);

        a->ask_status = ax_ask(a->dst, &m, a->timeout_ns, &a->future);
        ax_msg_release(&m);
    }
}

/* An actor of `sys` asks dst; the result message carries want (and on
 * AX_OK the answer to seq). */
static void actor_ask(ax_system_t *sys, ax_ref_t dst, bool eager, uint64_t seq, ax_status_t want)
{
    asker_t a = {.dst = dst, .eager = eager, .seq = seq};
    ax_ref_t ref;

    sem_init(&a.done, 0, 0);
    cr_assert_eq(ax_spawn(sys, &asker_vtable, &a, &ref), AX_OK);
    RUN_ON(ref, asker_go, &a);
    cr_assert_eq(a.ask_status, AX_OK, "ask from an actor: %s", ax_status_name(a.ask_status));
    AXT_WAIT_SEM(&a.done);
    cr_assert_eq(atomic_load(&a.result_status), want, "the ask completed with %s, not %s",
                 ax_status_name(atomic_load(&a.result_status)), ax_status_name(want));
    if (want == AX_OK)
        cr_assert_eq(atomic_load(&a.reply_seq), seq + ANSWER_OFFSET);
    cr_assert_eq(ax_stop(ref), AX_OK);
}

/* ---- ask and reply ---------------------------------------------------------------- */

static void ask_and_reply(answer_mode_t mode)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    nt_node_t echo;
    ax_ref_t dst;

    spawn_answerer(b, &echo, mode, "echo");
    dst = remote_named(a, b, "echo");
    /* From a thread: the future is waited on. */
    for (uint64_t i = 1; i <= 50; i++)
        thread_ask(dst, i, 0, AX_OK);
    /* From an actor, lazily and eagerly: the result is a message. */
    actor_ask(a, dst, false, 77, AX_OK);
    actor_ask(a, dst, true, 78, AX_OK);
    cr_assert_eq(atomic_load(&echo.bad), 0);
    cr_assert_eq(atomic_load(&echo.received), 52);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases), "every seq was released");
}

Test(remote_ask, lazy_reply)
{
    ask_and_reply(ANSWER_LAZY);
}

Test(remote_ask, eager_reply)
{
    ask_and_reply(ANSWER_EAGER);
}

/* The other direction at once: each system's actors ask the other's. */
Test(remote_ask, both_directions)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    nt_node_t echo_a, echo_b;

    spawn_answerer(a, &echo_a, ANSWER_EAGER, "echo");
    spawn_answerer(b, &echo_b, ANSWER_LAZY, "echo");
    actor_ask(a, remote_named(a, b, "echo"), false, 1, AX_OK);
    actor_ask(b, remote_named(b, a, "echo"), true, 2, AX_OK);
    actor_ask(b, remote_named(b, a, "echo"), false, 3, AX_OK);
    thread_ask(remote_named(b, a, "echo"), 4, 0, AX_OK);
    cr_assert_eq(atomic_load(&echo_a.received), 3);
    cr_assert_eq(atomic_load(&echo_b.received), 1);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

/* ---- failed deliveries --------------------------------------------------------------- */

Test(remote_ask, missing_actor_is_enotfound_at_once)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    nt_node_t echo;
    ax_ref_t nobody;

    spawn_answerer(b, &echo, ANSWER_LAZY, "echo");
    nobody = remote_named(a, b, "nobody");
    /* No ask timeout: only the returned frame can complete these. */
    thread_ask(nobody, 5, 0, AX_ENOTFOUND);
    actor_ask(a, nobody, false, 6, AX_ENOTFOUND);
    actor_ask(a, nobody, true, 7, AX_ENOTFOUND);
    /* The connection still serves asks that can be answered. */
    thread_ask(remote_named(a, b, "echo"), 8, 0, AX_OK);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

Test(remote_ask, unreachable_peer_is_etimedout)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    ax_ref_t dst = remote_named(a, b, "echo");

    /* b is gone before anything was sent to it: nothing listens there. */
    ax_system_destroy(&b);
    thread_ask(dst, 9, 0, AX_ETIMEDOUT);
    actor_ask(a, dst, true, 10, AX_ETIMEDOUT);
    ax_system_destroy(&a);
}

/* b holds the request unanswered and shuts down (it says Bye): the asks
 * waiting on it end with AX_ECLOSED, though their requests were
 * delivered. (A peer killed outright: test_remote_ask_proc.) */
Test(remote_ask, peer_gone_while_pending_is_eclosed)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    ax_msg_t *m = seq_new(11), *reply = NULL;
    nt_node_t silent;
    ax_future_t *f = NULL;
    asker_t act = {.seq = 12, .eager = true};
    ax_ref_t asker_ref;

    spawn_answerer(b, &silent, ANSWER_NONE, "silent");
    cr_assert_eq(ax_ask(remote_named(a, b, "silent"), &m, 0, &f), AX_OK);
    act.dst = remote_named(a, b, "silent");
    sem_init(&act.done, 0, 0);
    cr_assert_eq(ax_spawn(a, &asker_vtable, &act, &asker_ref), AX_OK);
    RUN_ON(asker_ref, asker_go, &act);
    cr_assert_eq(act.ask_status, AX_OK);
    WAIT_UNTIL(atomic_load(&silent.held) == 2, "both requests arrived");
    cr_assert_eq(ax_future_wait(f, AX_MS(20), &reply), AX_ETIMEDOUT, "not answered yet");
    ax_system_destroy(&b);
    cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_ECLOSED, "%s", ax_error_detail());
    AXT_WAIT_SEM(&act.done);
    cr_assert_eq(atomic_load(&act.result_status), AX_ECLOSED);
    ax_future_release(&f);
    ax_system_destroy(&a);
}

/* ---- late replies ------------------------------------------------------------------- */

static void release_kept_answering(ax_actor_t *self, void *arg)
{
    nt_node_t *n = ((nt_node_actor_t *)self)->n;
    size_t count = (size_t)atomic_load(&n->held);

    (void)arg;
    for (size_t i = 0; i < count; i++) {
        ax_msg_t *r = seq_new(500 + i), *req = (ax_msg_t *)n->keep[i];

        if (ax_reply(req, &r, ax_self(self)) != AX_OK)
            atomic_fetch_add(&n->bad, 1);
        ax_msg_release(&r);
        ax_msg_release(&req);
    }
    atomic_store(&n->held, 0);
}

Test(remote_ask, late_reply_goes_to_dead_letters)
{
    ax_system_t *a = ask_system(), *b = ask_system();
    ax_msg_t *m = seq_new(13), *reply = NULL;
    nt_node_t silent;
    ax_future_t *f = NULL;
    nt_dl_t dl = {0};
    ax_ref_t dl_ref, silent_ref;

    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    silent_ref = spawn_answerer(b, &silent, ANSWER_NONE, "silent");
    cr_assert_eq(ax_ask(remote_named(a, b, "silent"), &m, AX_MS(50), &f), AX_OK);
    WAIT_UNTIL(atomic_load(&silent.held) == 1, "the request arrived");
    cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_ETIMEDOUT);
    /* Now the answer comes: a dead letter in a, the reply itself. */
    RUN_ON(silent_ref, release_kept_answering, NULL);
    WAIT_UNTIL(atomic_load(&dl.count) == 1, "the late reply reached dead letters");
    cr_assert_eq(atomic_load(&dl.net_msgs), 1);
    cr_assert_eq(atomic_load(&dl.seq_decoded), 1, "the dead letter is the reply (seq 500)");
    cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT), 1);
    cr_assert_eq(atomic_load(&silent.bad), 0);
    cr_assert_null(reply);
    ax_future_release(&f);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

/* ---- a local ask, answered eagerly ----------------------------------------------------- */

typedef struct local_echo {
    ax_actor_t actor;
} local_echo_t;

static _Atomic uint64_t local_echo_bad;

static ax_status_t local_echo_receive(ax_actor_t *self, ax_msg_t **msg)
{
    seq_msg_t r;

    ax_msg_init(&r.hdr, &seq_type);
    r.seq = ((seq_msg_t *)*msg)->seq + ANSWER_OFFSET;
    /* The request's sender is the reply slot: eager to it works too. */
    if (ax_tell_serialised(self, (*msg)->sender, &seq_type, &r.hdr) != AX_OK)
        atomic_fetch_add(&local_echo_bad, 1);
    return AX_OK;
}

static const ax_actor_vtable_t local_echo_vtable = {
    .name = "test.local-echo",
    .size = sizeof(local_echo_t),
    .receive_local = local_echo_receive,
};

Test(remote_ask, local_ask_answered_eagerly)
{
    ax_system_t *a = ask_system();
    ax_ref_t echo;

    cr_assert_eq(ax_spawn(a, &local_echo_vtable, NULL, &echo), AX_OK);
    thread_ask(echo, 21, 0, AX_OK);
    cr_assert_eq(atomic_load(&local_echo_bad), 0);
    ax_system_destroy(&a);
}
