/*
 * Internal to actor/: the runtime header of every actor (a cell) and its
 * mailbox.
 *
 * The control word. `word` holds the actor's id in its top 56 bits and
 * the flags below in the low 8. Senders read it once to decide between the
 * mailbox and dead letters; stop, kill and start are a CAS on it that
 * checks the id. Cell memory is recycled for new actors (never returned to
 * the OS while the system lives), so a ref may point at a cell that now
 * belongs to someone else: the id in the word tells, and a CAS with an old
 * id fails instead of stopping the wrong actor.
 *
 * The mailbox is an intrusive Vyukov MPSC queue with a stub node. Its head
 * carries a tag bit: head == stub|TAG means "empty and not scheduled". A
 * push is one atomic exchange; the pusher that replaces a tagged head is
 * the one that schedules the actor, so an actor is scheduled exactly once
 * per transition from idle to non-empty. Only the worker running the actor
 * sets the tag, and only when the queue is empty.
 */
#ifndef AXON_ACTOR_CELL_H
#define AXON_ACTOR_CELL_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/actor.h"
#include "common/ax_atomic.h"

#define AX__W_START  0x01u /* request: run on_start */
#define AX__W_STOP   0x02u /* request: graceful stop */
#define AX__W_KILL   0x04u /* request: kill */
#define AX__W_FAIL   0x08u /* request: the actor failed (supervision) */
#define AX__W_SEALED 0x10u /* accepts no more messages */
#define AX__W_ENDED  0x20u /* ended; the cell awaits reuse */
#define AX__W_CLAIMED 0x40u /* a created actor has been scheduled once */
#define AX__W_REQUESTS (AX__W_START | AX__W_STOP | AX__W_KILL | AX__W_FAIL)
#define AX__W_ID_SHIFT 8
#define AX__ID_MAX ((UINT64_C(1) << 56) - 1)

/* The kind of a ref lives in the top bits of its id; actor ids stay below
 * 2^56, so a local ref's id is the actor id itself. */
#define AX__REF_KIND_MASK (UINT64_C(3) << 62)
#define AX__REF_LOCAL (UINT64_C(0) << 62)
#define AX__REF_REMOTE (UINT64_C(1) << 62)
#define AX__REF_REPLY (UINT64_C(2) << 62)

/* Flags only the actor's own worker writes (STARTED) or that registry
 * calls set atomically (NAMED, PUBLISHED). */
#define AX__L_STARTED   0x1u /* on_start has run */
#define AX__L_NAMED     0x2u /* has a registered name */
#define AX__L_PUBLISHED 0x4u /* is in the id table */
#define AX__L_STOPPING  0x8u /* a stop marker is in the mailbox */

/* The optional parts of an actor, allocated on first need and touched
 * only by the actor's own thread (and its creator before it starts). */
typedef struct ax__cell_ext_s {
    ax_ref_t parent;            /* AX_REF_NULL when the system is the parent */
    ax_ref_t *children;         /* live children, as far as this actor knows */
    size_t nchildren, cap;
    ax_encode_buffer_t *eb;     /* tell_serialised's pool, once created */
} ax__cell_ext_t;

typedef struct ax__cell_s {
    ax_msg_link_t *head;        /* senders: exchange; TAG bit = idle */
    uint64_t word;              /* senders read, controllers CAS */
    ax_system_t *sys;           /* constant for the cell's life */
    ax_msg_link_t *tail;        /* owning worker only */
    ax_msg_link_t stub;
    const ax_actor_vtable_t *vt;
    struct ax__cell_s *sched_next; /* inject queue or free-list link */
    ax__cell_ext_t *ext;        /* optional parts, allocated on demand */
    uint32_t lflags;            /* AX__L_* (atomic) */
    uint32_t size_class;        /* slab class index */
} ax__cell_t;

_Static_assert(sizeof(ax__cell_t) == sizeof(ax_actor_t), "ax_actor_t must match the cell");

#define AX__TAG ((uintptr_t)1)

static inline ax__cell_t *ax__cell(const ax_actor_t *a)
{
    return (ax__cell_t *)(uintptr_t)a;
}

static inline uint64_t ax__cell_id(const ax__cell_t *c)
{
    return ck_pr_load_64(&c->word) >> AX__W_ID_SHIFT;
}

static inline ax_msg_link_t *ax__tagged(ax_msg_link_t *l)
{
    return (ax_msg_link_t *)((uintptr_t)l | AX__TAG);
}

/* A fresh mailbox: empty, and held by its creator (not idle), so that
 * messages sent before ax_start wait without scheduling the actor. */
static inline void ax__mbox_init(ax__cell_t *c)
{
    c->stub.next = NULL;
    c->tail = &c->stub;
    ck_pr_store_ptr(&c->head, &c->stub);
}

/* Push; true when the mailbox was idle and the caller must schedule. */
static inline bool ax__mbox_push(ax__cell_t *c, ax_msg_link_t *n)
{
    ax_msg_link_t *prev;

    n->next = NULL;
    /* Full barrier: the message's contents are published before it can be
     * reached from the queue. */
    prev = ck_pr_fas_ptr(&c->head, n);
    /* Release (by the fas above on every ck target): the consumer that
     * loads prev->next sees the whole message. */
    ck_pr_store_ptr(&((ax_msg_link_t *)((uintptr_t)prev & ~AX__TAG))->next, n);
    return ((uintptr_t)prev & AX__TAG) != 0;
}

/* Pop, by the worker running the actor. NULL when empty, or when a
 * producer is between its exchange and its link (the caller then does not
 * go idle: ax__mbox_try_idle fails because head moved). */
static inline ax_msg_link_t *ax__mbox_pop(ax__cell_t *c)
{
    ax_msg_link_t *tail = c->tail;
    ax_msg_link_t *next = ck_pr_load_ptr(&tail->next);

    if (tail == &c->stub) {
        if (next == NULL)
            return NULL;
        c->tail = next;
        tail = next;
        next = ck_pr_load_ptr(&next->next);
    }
    if (next != NULL) {
        c->tail = next;
        return tail;
    }
    if (tail != ck_pr_load_ptr(&c->head))
        return NULL;
    /* tail is the last node: put the stub behind it so tail can leave. */
    c->stub.next = NULL;
    ax__mbox_push(c, &c->stub);
    next = ck_pr_load_ptr(&tail->next);
    if (next != NULL) {
        c->tail = next;
        return tail;
    }
    return NULL;
}

/* Mark an empty mailbox idle. false when it is not empty (or a push is in
 * flight): the caller keeps the actor scheduled. */
static inline bool ax__mbox_try_idle(ax__cell_t *c)
{
    if (c->tail != &c->stub || ck_pr_load_ptr(&c->stub.next) != NULL)
        return false;
    /* Full barrier, paired with the one in a controller's CAS on word:
     * either it sees the tag or we see its request afterwards. */
    return ck_pr_cas_ptr(&c->head, &c->stub, ax__tagged(&c->stub));
}

/* Take an idle actor's schedule: true when the caller must schedule it. */
static inline bool ax__mbox_try_wake(ax__cell_t *c)
{
    return ck_pr_cas_ptr(&c->head, ax__tagged(&c->stub), &c->stub);
}

#endif
