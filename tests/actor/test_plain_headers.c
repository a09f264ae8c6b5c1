/*
 * A program of local actors includes axon/actor.h and axon/config.h only,
 * and may then use names that the socket headers declare (recv, send,
 * accept, ...) for its own functions: none of those headers pulls
 * <msgpack.h>, which would bring <sys/socket.h> with it. This file would
 * not compile otherwise; the test also runs the actor, to show the headers
 * are enough to use the API.
 *
 * Deliberately self-contained: no test helpers, which include more.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdint.h>

#include "axon/actor.h"
#include "axon/config.h"

/* The user's own recv and send, with signatures that clash with POSIX's. */
typedef struct inbox {
    uint64_t total;
    sem_t got;
} inbox_t;

static inbox_t inbox;

static void recv(uint64_t amount)
{
    inbox.total += amount;
    sem_post(&inbox.got);
}

typedef struct add {
    ax_msg_t hdr;
    uint64_t amount;
} add_t;

static const ax_msg_type_t add_type = {.name = "plain.add", .size = sizeof(add_t)};

static ax_status_t counter_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    recv(((add_t *)*msg)->amount);
    return AX_OK;
}

static const ax_actor_vtable_t counter_vtable = {
    .name = "plain.counter",
    .size = sizeof(ax_actor_t),
    .receive_local = counter_receive,
};

static int send(ax_ref_t to, uint64_t amount)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&add_type, &m) != AX_OK)
        return -1;
    ((add_t *)m)->amount = amount;
    if (ax_tell(to, &m, AX_REF_NULL) != AX_OK) {
        ax_msg_release(&m);
        return -1;
    }
    return 0;
}

Test(plain_headers, a_user_may_name_its_own_functions_recv_and_send)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;
    ax_ref_t c;

    sem_init(&inbox.got, 0, 0);
    ax_config_init(&cfg);
    cfg.threads = 1;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_spawn(sys, &counter_vtable, NULL, &c), AX_OK);
    cr_assert_eq(send(c, 40), 0);
    cr_assert_eq(send(c, 2), 0);
    sem_wait(&inbox.got);
    sem_wait(&inbox.got);
    cr_assert_eq(inbox.total, 42);
    ax_system_shutdown(sys);
    cr_assert_eq(ax_system_await_termination(sys), AX_OK);
    cr_assert_eq(ax_system_destroy(&sys), AX_OK);
}
