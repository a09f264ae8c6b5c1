/*
 * pingpong_local: two actors bounce one message back and forth.
 *
 * The ball is a single message. Each side hands it straight back with
 * ax_tell, which moves the pointer: nothing is copied or allocated per hop.
 * When the pinger has counted enough round trips it tells the main thread,
 * which shuts the system down.
 *
 *     ./pingpong_local [round trips]      (default 100000)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, semaphores */

#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "axon/axon.h"

/* The message: a header, then our data. */
typedef struct ball {
    ax_msg_t hdr;
    uint64_t hits;
} ball_t;

static const ax_msg_type_t ball_type = {.name = "ball", .size = sizeof(ball_t)};

/* The pong side answers whoever sent the ball. */
static ax_status_t pong_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ((ball_t *)*msg)->hits++;
    /* On success ax_tell sets *msg to NULL: the ball is on its way and the
     * runtime will not release it when we return. */
    return ax_tell((*msg)->sender, msg, ax_self(self));
}

static const ax_actor_vtable_t pong_vtable = {
    .name = "pong",
    .size = sizeof(ax_actor_t), /* no state of its own */
    .receive_local = pong_receive,
};

/* The ping side serves to its peer and counts round trips. */
typedef struct pinger {
    ax_actor_t actor; /* the runtime's header, always first */
    ax_ref_t peer;
    uint64_t remaining;
    sem_t *done; /* posted for main() when the rally is over */
} pinger_t;

typedef struct pinger_args {
    ax_ref_t peer;
    uint64_t round_trips;
    sem_t *done;
} pinger_args_t;

/* init runs inside ax_spawn, on the caller's thread: copy what we need. */
static ax_status_t pinger_init(ax_actor_t *self, void *arg)
{
    pinger_t *p = (pinger_t *)self;
    const pinger_args_t *a = arg;

    p->peer = a->peer;
    p->remaining = a->round_trips;
    p->done = a->done;
    return AX_OK;
}

static ax_status_t pinger_receive(ax_actor_t *self, ax_msg_t **msg)
{
    pinger_t *p = (pinger_t *)self;

    if (p->remaining == 0) {
        printf("rally over: the ball was hit %llu times\n",
               (unsigned long long)((ball_t *)*msg)->hits);
        sem_post(p->done);
        return AX_OK; /* *msg is still ours: the runtime releases it */
    }
    p->remaining--;
    ((ball_t *)*msg)->hits++;
    return ax_tell(p->peer, msg, ax_self(self));
}

static const ax_actor_vtable_t pinger_vtable = {
    .name = "pinger",
    .size = sizeof(pinger_t),
    .init = pinger_init,
    .receive_local = pinger_receive,
};

static double seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    uint64_t round_trips = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    ax_system_t *sys;
    ax_ref_t ping;
    ax_msg_t *ball;
    ax_status_t st;
    sem_t done;
    double t0;

    sem_init(&done, 0, 0);
    st = ax_system_create(NULL, &sys); /* default config: one worker per CPU */
    if (st != AX_OK) {
        fprintf(stderr, "system: %s\n", ax_status_str(st));
        return 1;
    }
    /* The pong first: the pinger needs its ref. */
    pinger_args_t args = {.round_trips = round_trips, .done = &done};
    if ((st = ax_spawn(sys, &pong_vtable, NULL, &args.peer)) != AX_OK ||
        (st = ax_spawn(sys, &pinger_vtable, &args, &ping)) != AX_OK ||
        (st = ax_msg_alloc(&ball_type, &ball)) != AX_OK) {
        fprintf(stderr, "setup: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&sys);
        return 1;
    }

    /* Serve: from outside any actor, so the sender is AX_REF_NULL. */
    t0 = seconds();
    ax_tell(ping, &ball, AX_REF_NULL);
    sem_wait(&done);
    t0 = seconds() - t0;
    printf("%llu round trips in %.3f s: %.2f M round trips/s\n", (unsigned long long)round_trips,
           t0, (double)round_trips / t0 / 1e6);

    /* Stop every actor, wait for them to end, free everything. */
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax_system_destroy(&sys);
    sem_destroy(&done);
    return 0;
}
