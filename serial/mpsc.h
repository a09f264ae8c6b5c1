/*
 * Internal: an intrusive multi-producer, single-consumer queue of
 * messages (Vyukov's, with a stub node), with an idle tag.
 *
 * A push is one atomic exchange. head == stub|TAG means "empty, and the
 * consumer is not running": the producer whose exchange replaces a tagged
 * head learns so from push() and is the one that must wake the consumer.
 * Only the consumer sets the tag (try_idle), and only when the queue is
 * empty, so each idle -> non-empty transition wakes the consumer exactly
 * once. Actor mailboxes and the network thread's inbox are such queues.
 */
#ifndef AXON_SERIAL_MPSC_H
#define AXON_SERIAL_MPSC_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/message.h"
#include "common/ax_atomic.h"

typedef struct ax__mpsc_s {
    ax_msg_link_t *head;  /* producers: exchange; TAG bit = idle */
    ax_msg_link_t *tail;  /* consumer only */
    ax_msg_link_t stub;
} ax__mpsc_t;

#define AX__MPSC_TAG ((uintptr_t)1)

static inline ax_msg_link_t *ax__mpsc_tagged(ax_msg_link_t *l)
{
    return (ax_msg_link_t *)((uintptr_t)l | AX__MPSC_TAG);
}

/* Empty; idle (the first push reports it) or held by the consumer. */
static inline void ax__mpsc_init(ax__mpsc_t *q, bool idle)
{
    q->stub.next = NULL;
    q->tail = &q->stub;
    /* Before the queue is shared: any store would do. */
    ck_pr_store_ptr(&q->head, idle ? ax__mpsc_tagged(&q->stub) : &q->stub);
}

/* Push the messages first to last, already linked through next, with one
 * exchange; true when the queue was idle and the caller must wake the
 * consumer. */
static inline bool ax__mpsc_push_chain(ax__mpsc_t *q, ax_msg_link_t *first, ax_msg_link_t *last)
{
    ax_msg_link_t *prev;

    last->next = NULL;
    /* Full barrier: the messages' contents and their links to each other
     * are published before the chain can be reached from the queue. */
    prev = ck_pr_fas_ptr(&q->head, last);
    /* Release (after the fas above on every ck target): the consumer that
     * loads prev->next sees the whole chain. */
    ck_pr_store_ptr(&((ax_msg_link_t *)((uintptr_t)prev & ~AX__MPSC_TAG))->next, first);
    return ((uintptr_t)prev & AX__MPSC_TAG) != 0;
}

/* Push one message; as push_chain. */
static inline bool ax__mpsc_push(ax__mpsc_t *q, ax_msg_link_t *n)
{
    return ax__mpsc_push_chain(q, n, n);
}

/* Pop, by the consumer. NULL when empty, or when a producer is between its
 * exchange and its link (try_idle then fails, because head moved). */
static inline ax_msg_link_t *ax__mpsc_pop(ax__mpsc_t *q)
{
    ax_msg_link_t *tail = q->tail;
    /* Acquire, paired with the producer's store of next in push: the
     * message is complete once it can be reached. */
    ax_msg_link_t *next = ck_pr_load_ptr(&tail->next);

    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        q->tail = next;
        tail = next;
        next = ck_pr_load_ptr(&next->next); /* acquire, as above */
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    /* tail is not the last node yet: a producer is between its exchange
     * and its link. */
    if (tail != ck_pr_load_ptr(&q->head))
        return NULL;
    /* tail is the last node: put the stub behind it so tail can leave. */
    q->stub.next = NULL;
    ax__mpsc_push(q, &q->stub);
    next = ck_pr_load_ptr(&tail->next);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

/* Empty for good: no message and no push in flight. Consumer only.
 * Relaxed loads: a snapshot; a push that lands after it is the caller's to
 * catch (run.c: pushes past a seal are dead-lettered when the cell is reused). */
static inline bool ax__mpsc_drained(ax__mpsc_t *q)
{
    return q->tail == &q->stub && ck_pr_load_ptr(&q->stub.next) == NULL &&
           ck_pr_load_ptr(&q->head) == &q->stub;
}

/* Mark an empty queue idle; false when it is not empty or a push is in
 * flight (the consumer keeps running). Consumer only. */
static inline bool ax__mpsc_try_idle(ax__mpsc_t *q)
{
    /* Idle already (nothing was pushed since): only the consumer tags, so
     * a tagged head cannot be a stale read. */
    if (ck_pr_load_ptr(&q->head) == ax__mpsc_tagged(&q->stub))
        return true;
    /* A stale NULL is harmless: the push behind it moved head, and the CAS fails. */
    if (q->tail != &q->stub || ck_pr_load_ptr(&q->stub.next) != NULL)
        return false;
    /* Full barrier: pairs with whatever a waker writes before it reads the
     * tag (a request bit, say): one of the two sees the other. */
    return ck_pr_cas_ptr(&q->head, &q->stub, ax__mpsc_tagged(&q->stub));
}

/* Take an idle queue's consumer role: true when the caller must run (or
 * schedule) the consumer. Any thread. */
static inline bool ax__mpsc_try_wake(ax__mpsc_t *q)
{
    /* The CAS is the claim (one caller wins) and a full barrier, the other
     * side of try_idle's: see there. */
    return ck_pr_cas_ptr(&q->head, ax__mpsc_tagged(&q->stub), &q->stub);
}

#endif
