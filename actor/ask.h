/* Internal to actor/: the system's ask slots (ask.c). */
#ifndef AXON_ACTOR_ASK_H
#define AXON_ACTOR_ASK_H

#include <pthread.h>

#include "axon/actor.h"

typedef struct ax__asks_s {
    pthread_mutex_t lock;
    struct ax_future_s **blocks;
    size_t nblocks, cap;
    struct ax_future_s *free;
} ax__asks_t;

ax_status_t ax__asks_init(ax__asks_t *a);
void ax__asks_destroy(ax__asks_t *a);

/* Bytes of ask slots held; slots are recycled, never freed before the
 * system, so this is also the high-water mark. */
uint64_t ax__asks_bytes(ax__asks_t *a);

/* A reply sent to a reply ref: completes its ask, or goes to dead letters
 * when it is too late. Takes *reply. */
ax_status_t ax__ask_reply(ax_ref_t reply_to, ax_msg_t **reply, ax_ref_t from);


void ax__ask_result_reset(ax_msg_t *msg);

/* Cancel an ask the caller no longer waits for: its timeout is stopped,
 * a reply that comes later goes to dead letters, and the future is
 * released (*future becomes NULL). */
void ax__ask_cancel(ax_future_t **future);

#endif
