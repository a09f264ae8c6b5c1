/*
 * counter: an actor with state, fed from a message pool, stopped
 * gracefully, and its result read after it has ended.
 *
 * The counter adds up the amounts it is told. main() sends it 1000
 * messages taken from a message pool (the runtime puts each one back in
 * the pool after the handler), asks it to stop, and waits for on_stop,
 * which hands the total back through a small struct and a semaphore. A
 * graceful stop handles every message sent before it, so the total is
 * always exact.
 */
#define _POSIX_C_SOURCE 200809L /* semaphores */

#include <semaphore.h>
#include <stdio.h>

#include "axon/axon.h"

/* ---- the message ---------------------------------------------------------- */

typedef struct add {
    ax_msg_t hdr; /* every message starts with the header */
    uint64_t amount;
} add_t;

static const ax_msg_type_t add_type = {.name = "add", .size = sizeof(add_t)};

/* ---- the actor -------------------------------------------------------------- */

/* Where the counter reports when it ends; main() owns it. */
typedef struct result {
    uint64_t total, messages;
    sem_t ended;
} result_t;

typedef struct counter {
    ax_actor_t actor; /* the runtime's header, always first */
    uint64_t total;   /* state: only this actor's handlers touch it */
    uint64_t messages;
    result_t *result;
} counter_t;

static ax_status_t counter_init(ax_actor_t *self, void *arg)
{
    ((counter_t *)self)->result = arg;
    return AX_OK;
}

/* One message at a time, never concurrently: no locks needed. */
static ax_status_t counter_receive(ax_actor_t *self, ax_msg_t **msg)
{
    counter_t *c = (counter_t *)self;

    if ((*msg)->type == &add_type) {
        c->total += ((add_t *)*msg)->amount;
        c->messages++;
    }
    return AX_OK; /* the runtime returns *msg to its pool */
}

/* After a graceful stop has handled the whole mailbox. */
static void counter_stop(ax_actor_t *self)
{
    counter_t *c = (counter_t *)self;

    c->result->total = c->total;
    c->result->messages = c->messages;
    /* sem_post publishes the two writes above to the thread in sem_wait. */
    sem_post(&c->result->ended);
}

static const ax_actor_vtable_t counter_vtable = {
    .name = "counter",
    .size = sizeof(counter_t),
    .init = counter_init,
    .on_stop = counter_stop,
    .receive_local = counter_receive,
};

int main(void)
{
    ax_msg_pool_options_t pool_opts = {.initial = 64, .max = 256};
    ax_msg_pool_t *pool = NULL;
    ax_system_t *sys = NULL;
    result_t result = {0};
    uint64_t expected = 0;
    ax_ref_t counter;
    ax_status_t st;

    sem_init(&result.ended, 0, 0);
    if ((st = ax_system_create(NULL, &sys)) != AX_OK ||
        (st = ax_msg_pool_create(&add_type, &pool_opts, &pool)) != AX_OK ||
        (st = ax_spawn(sys, &counter_vtable, &result, &counter)) != AX_OK) {
        fprintf(stderr, "setup: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&sys);
        ax_msg_pool_destroy(&pool);
        return 1;
    }
    /* Optional: find it by name from anywhere in the program. */
    ax_register(sys, counter, "counter");

    for (uint64_t i = 1; i <= 1000; i++) {
        ax_msg_t *m = NULL;

        /* AX_ALWAYS: reuse a pooled message, or allocate when the pool is
         * empty. (AX_POOL_ONLY would give NULL instead.) */
        if (ax_msg_get(pool, AX_ALWAYS, &m) != AX_OK)
            break;
        ((add_t *)m)->amount = i;
        expected += i;
        /* On AX_OK the runtime owns m and sets it to NULL. On an error it
         * would still be ours: put it back. */
        if (ax_tell(counter, &m, AX_REF_NULL) != AX_OK)
            ax_msg_put(pool, &m);
    }

    /* Graceful: everything sent above is handled first, then on_stop. */
    ax_stop(counter);
    sem_wait(&result.ended);
    printf("counter handled %llu messages, total %llu (expected %llu)\n",
           (unsigned long long)result.messages, (unsigned long long)result.total,
           (unsigned long long)expected);

    /* It has stopped: its name is released, and its ref stays safe to use:
     * a message sent now would go to dead letters. */
    ax_ref_t found;
    printf("lookup after stop: %s\n", ax_status_name(ax_lookup(sys, "counter", &found)));

    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax_system_destroy(&sys);
    /* After the system: every message has come back to the pool by now. */
    ax_msg_pool_destroy(&pool);
    sem_destroy(&result.ended);
    return result.total == expected ? 0 : 1;
}
