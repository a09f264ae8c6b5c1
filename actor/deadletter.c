/* Dead letters: counted, then released or handed to the user's actor. */
#include <stdlib.h>

#include "actor/system.h"
#include "common/fault.h"
#include "actor/timer.h"

static void dead_letter_reset(ax_msg_t *msg)
{
    ax_msg_release(&((ax_dead_letter_t *)msg)->msg);
}

const ax_msg_type_t ax_dead_letter_type = {
    .name = "axon.dead-letter",
    .size = sizeof(ax_dead_letter_t),
    .reset = dead_letter_reset,
};

void ax_set_dead_letter_actor(ax_system_t *sys, ax_ref_t ref)
{
    /* It outlives the other actors at shutdown, the dispatcher too, so it
     * sees what they leave behind. */
    ax__late_mark(ref, 1);
    pthread_mutex_lock(&sys->dl_lock);
    sys->dl_actor = ref;
    pthread_mutex_unlock(&sys->dl_lock);
}

static void dead_letter_one(ax_system_t *sys, ax_msg_t *msg, ax_status_t why, ax_ref_t recipient);

/* The user's messages a lazy send's envelope holds, each with its own
 * sender (in its header) and the envelope's remote recipient, in order;
 * then the envelope. */
static void dead_letter_lazy(ax_system_t *sys, ax__lazy_send_t *ls, ax_status_t why)
{
    ax_ref_t to = {ls->dst, ls->dst_id};
    ax_msg_t *m;

    while ((m = ax__lazy_send_take(ls)) != NULL) {
        dead_letter_one(sys, m, why, to);
        ax__remote_unpin(ls->dst); /* its pin; the ref above is only an id */
    }
    m = &ls->hdr;
    ax_msg_release(&m);
}

void ax_dead_letter(ax_system_t *sys, ax_msg_t **msgp, ax_status_t why, ax_ref_t recipient)
{
    ax_msg_t *msg;
    ax__lazy_send_t *more;

    if (msgp == NULL || (msg = *msgp) == NULL)
        return;
    *msgp = NULL;
    if (msg->type != &ax__lazy_send_type) {
        dead_letter_one(sys, msg, why, recipient);
        return;
    }
    /* A batch of lazy sends: each message in it, in order. */
    more = ax__lazy_send_detach((ax__lazy_send_t *)msg);
    dead_letter_lazy(sys, (ax__lazy_send_t *)msg, why);
    while (more != NULL) {
        ax__lazy_send_t *next = ax__lazy_send_detach(more);

        dead_letter_lazy(sys, more, why);
        more = next;
    }
}

static void dead_letter_one(ax_system_t *sys, ax_msg_t *msg, ax_status_t why, ax_ref_t recipient)
{
    ax__worker_t *w;
    ax_dead_letter_t *dl;
    ax_msg_t *m;
    ax_ref_t target;

    /* The runtime's notice to a parent that has ended: nobody's message. */
    if (msg->type == &ax_child_event_type) {
        ax_msg_release(&msg);
        return;
    }
    /* A timer's message whose actor is gone: the timer ends with it. */
    if (ax__is_timer_msg(msg)) {
        ax__timer_discard(&msg);
        return;
    }
    /* An ask's request that cannot be delivered completes its future. */
    if (ax__ref_is(msg->sender, AX__REF_REPLY))
        ax__ask_undelivered(msg->sender, why);
    /* A wrapper that could not reach the dead-letter actor was counted
     * already, as the message inside it. */
    if (msg->type == &ax_dead_letter_type) {
        ax_msg_release(&msg);
        return;
    }
    w = ax__current_worker(sys);
    if (w != NULL)
        ax__stat_inc(&w->dead_letters);
    else
        ck_pr_inc_64(&sys->dead_letters_ext); /* a counter: any order */

    pthread_mutex_lock(&sys->dl_lock);
    target = sys->dl_actor;
    pthread_mutex_unlock(&sys->dl_lock);
    if (ax_ref_is_null(target)) {
        ax_msg_release(&msg);
        return;
    }
    if (ax__fault("axon.dead-letter-wrapper") || ax_msg_alloc(&ax_dead_letter_type, &m) != AX_OK) {
        /* Counted above; its actor cannot see it. */
        ck_pr_inc_64(&sys->lost_notices); /* a counter: any order */
        ax_msg_release(&msg);
        return;
    }
    dl = (ax_dead_letter_t *)m;
    dl->status = why;
    dl->recipient = recipient;
    dl->msg = msg;
    msg = &dl->hdr;
    if (ax_tell(target, &msg, AX_REF_NULL) != AX_OK) {
        /* Refused (a bounded dead-letter actor that is full, a ref the
         * wrapper cannot travel to): counted above, unseen by its actor. */
        ck_pr_inc_64(&sys->lost_notices); /* a counter: any order */
        ax_msg_release(&msg);
    }
}
