/*
 * A network message for a full bounded mailbox comes back to its sender
 * in a Status frame, and the sender dead-letters it with AX_EFULL: once,
 * and the connection stays up.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define CAP 2

typedef struct gate_actor {
    ax_actor_t actor;
} gate_actor_t;

static sem_t entered, release;
static _Atomic uint64_t handled;

/* The first message parks the actor until the test lets it go, so the
 * mailbox fills up behind it. */
static ax_status_t gate_net(ax_actor_t *self, ax_net_msg_t **nm)
{
    (void)self;
    (void)nm;
    if (atomic_fetch_add(&handled, 1) == 0) {
        sem_post(&entered);
        axt_sem_wait(&release, WAIT_S);
    }
    return AX_OK;
}

static const ax_actor_vtable_t gate_vtable = {
    .name = "test.gate",
    .size = sizeof(gate_actor_t),
    .receive_network = gate_net,
    .mailbox_capacity = CAP,
};

static ax_system_t *start(void)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;

    ax_config_init(&cfg);
    cfg.threads = 2;
    /* The gate's handler blocks on purpose. Run by the network thread
     * (network.run_actors_us, config.h) it would hold the connection it
     * must read the rest from: keep handlers on the workers. */
    cfg.network.run_actors_us = 0;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_net_start(sys), AX_OK, "%s", ax_error_detail());
    return sys;
}

static void send_seq(ax_ref_t dst, uint64_t seq)
{
    ax_msg_t *m = seq_new(seq);

    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
}

Test(remote_full, full_mailbox_returns_efull_once)
{
    enum { SENT = 1 + CAP + 3 };
    ax_system_t *a = start(), *b = start();
    nt_dl_t dl = {0};
    ax_ref_t gate, dlr, dst;
    ax_path_t p;
    ax_net_stats_t s;

    sem_init(&entered, 0, 0);
    sem_init(&release, 0, 0);
    cr_assert_eq(ax_spawn(b, &gate_vtable, NULL, &gate), AX_OK);
    cr_assert_eq(ax_register(b, gate, "gate"), AX_OK);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dlr), AX_OK);
    ax_set_dead_letter_actor(a, dlr);
    cr_assert_eq(nt_named_path(b, "gate", &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(a, &p, &dst), AX_OK);

    send_seq(dst, 0);
    cr_assert(axt_sem_wait(&entered, WAIT_S), "the first message did not arrive");
    for (uint64_t i = 1; i < SENT; i++)
        send_seq(dst, i);
    WAIT_UNTIL(atomic_load(&dl.count) == SENT - 1 - CAP, "dead letters %llu",
               (unsigned long long)atomic_load(&dl.count));
    cr_assert_eq(nt_dl_status(&dl, AX_EFULL), SENT - 1 - CAP);
    cr_assert_eq(atomic_load(&dl.seq_decoded), SENT - 1 - CAP, "the dead letters are the messages themselves");
    sem_post(&release);
    WAIT_UNTIL(atomic_load(&handled) == 1 + CAP, "handled %llu", (unsigned long long)atomic_load(&handled));

    /* The connection stayed up: the next message is handled. */
    send_seq(dst, SENT);
    WAIT_UNTIL(atomic_load(&handled) == 2 + CAP, "the message after the full mailbox");
    cr_assert_eq(ax_net_stats(a, &s), AX_OK);
    cr_assert_eq(s.returned, SENT - 1 - CAP);
    cr_assert_eq(s.connections, 1);
    axt_sleep_us(100000);
    cr_assert_eq(atomic_load(&dl.count), SENT - 1 - CAP, "a message was dead-lettered twice");
    axt_destroy(&a);
    axt_destroy(&b);
}
