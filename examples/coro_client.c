/*
 * coro_client: a multi-step request/response exchange with a remote echo
 * server, written as straight-line code in a coroutine actor.
 *
 * Two systems run in this process and talk over TCP on 127.0.0.1: a
 * server with an actor registered as "echo" (it answers a u64 with the
 * value plus one), and a client whose coroutine actor sends three
 * requests, each with a timeout, and checks each answer. Then the server
 * goes away, and the coroutine notices the lost peer (the network event,
 * or the timeout of its next request) and ends cleanly. Exits 0 when all
 * of that happened.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>

#include "axon/axon.h"

#define STEP_TIMEOUT AX_MS(2000)

/* ---- the server: answers every u64 with value + 1 ------------------------- */

static ax_status_t echo_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_msg_t *reply = NULL;
    ax_ref_t sender;

    if (ax_net_msg_sender(self, *nm, &sender) != AX_OK ||
        ax_net_msg_deserialise(*nm, &ax_u64_type, &reply) != AX_OK)
        return AX_OK; /* nobody to answer, or not a u64: ignore it */
    ((ax_u64_msg_t *)reply)->value++;
    if (ax_tell(sender, &reply, ax_self(self)) != AX_OK)
        ax_msg_release(&reply);
    return AX_OK;
}

static const ax_actor_vtable_t echo_vtable = {
    .name = "echo", .size = sizeof(ax_actor_t), .receive_network = echo_network,
};

/* ---- the client: a coroutine --------------------------------------------- */

typedef struct client_args {
    ax_ref_t echo;    /* a remote ref to the server's "echo" */
    sem_t asked;      /* posted after the three steps */
    sem_t finished;   /* posted when the coroutine is done */
    int answers, wrong, noticed_loss;
} client_args_t;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait for the echo's answer until deadline. Network events (the client
 * is subscribed to them) say when the server's connection is gone. */
static ax_status_t answer(ax_coro_t *self, uint64_t deadline, uint64_t *value)
{
    for (;;) {
        uint64_t now = now_ns();
        ax_msg_t *m = NULL, *decoded = NULL;
        ax_status_t st;

        if (now >= deadline)
            return AX_ETIMEDOUT;
        st = ax_coro_receive(self, deadline - now, &m);
        if (st != AX_OK)
            return st; /* AX_ETIMEDOUT, or AX_ECLOSED: the actor is ending */
        if (m->type == &ax_net_event_type) {
            ax_net_event_kind_t kind = ((ax_net_event_t *)m)->kind;

            ax_msg_release(&m);
            if (kind != AX_NET_ESTABLISHED)
                return AX_ECLOSED; /* lost, closed (Bye) or given up */
            continue;
        }
        if (m->type == &ax_net_msg_type &&
            ax_net_msg_deserialise((ax_net_msg_t *)m, &ax_u64_type, &decoded) == AX_OK) {
            *value = ((ax_u64_msg_t *)decoded)->value;
            ax_msg_release(&decoded);
            ax_msg_release(&m);
            return AX_OK;
        }
        ax_msg_release(&m); /* something else: not what we wait for */
    }
}

/* Send value to the echo and wait for its answer, at most STEP_TIMEOUT. */
static ax_status_t request(ax_coro_t *self, client_args_t *a, uint64_t value, uint64_t *out)
{
    ax_msg_t *m = NULL;
    ax_status_t st = ax_u64_msg_new(value, &m);

    if (st == AX_OK)
        st = ax_tell(a->echo, &m, ax_coro_ref(self)); /* from self: the answer finds us */
    if (st != AX_OK) {
        ax_msg_release(&m);
        return st;
    }
    return answer(self, now_ns() + STEP_TIMEOUT, out);
}

static ax_status_t client(ax_coro_t *self, void *arg)
{
    client_args_t *a = arg;
    uint64_t got = 0;
    ax_status_t st;

    /* Step by step, as if each call blocked. */
    for (uint64_t step = 1; step <= 3; step++) {
        st = request(self, a, step * 10, &got);
        if (st != AX_OK) {
            printf("client: step %llu failed: %s\n", (unsigned long long)step, ax_status_name(st));
            a->wrong++;
            break;
        }
        printf("client: step %llu: sent %llu, got %llu\n", (unsigned long long)step,
               (unsigned long long)(step * 10), (unsigned long long)got);
        a->answers++;
        a->wrong += got != step * 10 + 1;
    }
    sem_post(&a->asked);

    /* The server goes away now. Wait for the network to say so (or give
     * up after a timeout), then try once more: the request cannot be
     * answered, and its timeout says so. */
    st = answer(self, now_ns() + STEP_TIMEOUT, &got);
    printf("client: waiting for the server: %s\n",
           st == AX_ECLOSED ? "the connection is gone" : ax_status_name(st));
    st = request(self, a, 99, &got);
    if (st == AX_ETIMEDOUT || st == AX_ECLOSED) {
        printf("client: the echo server is lost (%s): giving up cleanly\n", ax_status_name(st));
        a->noticed_loss = 1;
    } else {
        printf("client: unexpected %s after the server left\n", ax_status_name(st));
    }
    sem_post(&a->finished);
    return AX_OK; /* the actor ends */
}

/* ---- main ------------------------------------------------------------------- */

static int wait_sem(sem_t *s, int seconds)
{
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    while (sem_timedwait(s, &deadline) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static ax_status_t start(ax_system_t **sys, int with_echo)
{
    ax_config_t cfg;
    ax_ref_t echo;
    ax_status_t st;

    ax_config_init(&cfg);
    cfg.threads = 2;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "127.0.0.1:0");
    st = ax_system_create(&cfg, sys);
    if (st == AX_OK)
        st = ax_net_start(*sys);
    if (st == AX_OK && with_echo)
        st = ax_spawn(*sys, &echo_vtable, NULL, &echo);
    if (st == AX_OK && with_echo)
        st = ax_register(*sys, echo, "echo");
    return st;
}

int main(void)
{
    ax_system_t *server = NULL, *client_sys = NULL;
    client_args_t a = {.answers = 0};
    char text[AX_PATH_STR_MAX], addr[64];
    ax_path_t path;
    ax_addr_t at;
    ax_ref_t c;
    int ok = 0;

    sem_init(&a.asked, 0, 0);
    sem_init(&a.finished, 0, 0);
    if (start(&server, 1) != AX_OK || start(&client_sys, 0) != AX_OK) {
        fprintf(stderr, "coro_client: cannot start: %s\n", ax_error_detail());
        goto out;
    }
    ax_system_address(server, &at);
    ax_addr_format(&at, addr, sizeof addr);
    snprintf(text, sizeof text, "tcp://%s/echo", addr);
    if (ax_path_parse(text, &path) != AX_OK || ax_ref_from_path(client_sys, &path, &a.echo) != AX_OK ||
        ax_spawn_coro(client_sys, NULL, client, &a, &c) != AX_OK ||
        ax_net_subscribe(client_sys, c) != AX_OK) {
        fprintf(stderr, "coro_client: %s\n", ax_error_detail());
        goto out;
    }
    printf("coro_client: talking to %s\n", text);
    if (wait_sem(&a.asked, 30) != 0)
        goto out;
    /* The peer goes away: a graceful shutdown says Bye to the client. */
    ax_system_destroy(&server);
    /* The coroutine ends by itself once it has noticed. */
    if (wait_sem(&a.finished, 30) != 0)
        goto out;
    ax_system_shutdown(client_sys);
    ax_system_await_termination(client_sys);
    ok = a.answers == 3 && a.wrong == 0 && a.noticed_loss;
out:
    ax_system_destroy(&client_sys);
    ax_system_destroy(&server);
    sem_destroy(&a.asked);
    sem_destroy(&a.finished);
    printf("coro_client: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
