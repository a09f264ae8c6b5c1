/*
 * Internal to actor/: bounded mailboxes (vtable->mailbox_capacity).
 *
 * A sender reserves a place in the cell's count (a CAS that never takes
 * it past the capacity) before it pushes, and marks the message
 * AX__TO_COUNTED; the worker gives the place back when it takes a marked
 * message from the mailbox. The count is exact: with any number of
 * concurrent senders, the messages counted in and not yet taken never
 * exceed the capacity. An unbounded actor's senders read the capacity
 * (0) from the vtable and touch no counter.
 */
#ifndef AXON_ACTOR_BOUNDED_H
#define AXON_ACTOR_BOUNDED_H

#include "actor/cell.h"

/* Reserve a place in c's count for one message: AX_OK, or AX_EFULL (with
 * a detail naming the actor) when capacity places are taken. */
ax_status_t ax__bound_reserve(ax__cell_t *c, const ax_actor_vtable_t *vt, uint64_t id);

/* Give back a place reserved for a message that was not pushed. */
void ax__bound_unreserve(ax__cell_t *c);

/* The place of a counted message goes back (below). */
void ax__bound_taken_slow(ax__cell_t *c);

/* The worker took m from c's mailbox: give its place back, if it had one,
 * and keep the high-water mark. */
static inline void ax__bound_taken(ax__cell_t *c, const ax_msg_t *m)
{
    if (m->to & AX__TO_COUNTED)
        ax__bound_taken_slow(c);
}

#endif
