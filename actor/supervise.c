/*
 * Supervision (after ChrysaLisp's Farm): what happens when an actor fails,
 * restarts with back-off, escalation, and the child events parents get.
 */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/metrics.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "common/error.h"

const ax_msg_type_t ax_child_event_type = {
    .name = "axon.child-event",
    .size = sizeof(ax_child_event_t),
};

ax_status_t ax_fail(ax_actor_t *self, ax_status_t status)
{
    ax__cell_t *c = ax__cell(self);
    ax__cell_ext_t *ext;
    ax_status_t st = ax__check_self(self, "fail");

    if (st != AX_OK)
        return st;
    ext = ax__ext(c);
    if (ext != NULL)
        ext->fail_status = status != AX_OK ? status : AX_EFAILED;
    /* Only this actor's thread reads it, after the handler returns. */
    ck_pr_or_32(&c->lflags, AX__L_FAILED);
    return AX_OK;
}

void ax_set_guardian_actor(ax_system_t *sys, ax_ref_t ref)
{
    pthread_mutex_lock(&sys->dl_lock);
    sys->guardian = ref;
    /* A hint for parent_of, which then reads the ref under the lock. */
    ck_pr_store_32(&sys->has_guardian, !ax_ref_is_null(ref));
    pthread_mutex_unlock(&sys->dl_lock);
}

/* Who hears about c: its parent, or for a top-level actor the guardian
 * actor when one is installed. */
static ax_ref_t parent_of(const ax__cell_t *c)
{
    ax_ref_t g;

    if (c->ext != NULL && !ax_ref_is_null(c->ext->parent))
        return c->ext->parent;
    /* Relaxed: a hint, set under dl_lock with the ref read below; an end
     * that races with ax_set_guardian_actor may miss it either way. */
    if (!ck_pr_load_32(&c->sys->has_guardian))
        return AX_REF_NULL;
    pthread_mutex_lock(&c->sys->dl_lock);
    g = c->sys->guardian;
    pthread_mutex_unlock(&c->sys->dl_lock);
    return g;
}

/* An event for parent about child, built from values the caller read:
 * once a restart is armed the child's cell may already run elsewhere. */
static void notify(ax_ref_t parent, ax_ref_t child, ax_child_event_kind_t kind, ax_status_t status,
                   ax_supervision_action_t action, uint32_t restarts)
{
    ax_child_event_t *e;
    ax_msg_t *m;

    if (ax_ref_is_null(parent))
        return;
    if (ax_msg_alloc(&ax_child_event_type, &m) != AX_OK) {
        /* The parent cannot hear of it: say so in the stats. */
        ck_pr_inc_64(&ax__cell(parent.target)->sys->lost_notices); /* a counter: any order */
        return;
    }
    e = (ax_child_event_t *)m;
    e->kind = kind;
    e->child = child;
    e->status = status;
    e->action = action;
    e->restarts = restarts;
    ax__tell_notice(parent, &m);
}

void ax__notify_ended(ax__cell_t *c)
{
    notify(parent_of(c), ax_self((ax_actor_t *)c), AX_CHILD_ENDED, AX_OK, AX_SUPERVISE_NONE,
           c->ext != NULL ? c->ext->restarts : 0);
}

bool ax__child_event(ax__cell_t *c, const ax_msg_t *msg)
{
    const ax_child_event_t *e = (const ax_child_event_t *)msg;
    ax__cell_ext_t *ext = c->ext;

    if (e->kind == AX_CHILD_ENDED) {
        for (size_t i = 0; ext != NULL && i < ext->nchildren; i++) {
            if (ax_ref_eq(ext->children[i], e->child)) {
                ext->children[i] = ext->children[--ext->nchildren];
                break;
            }
        }
    }
    return e->kind == AX_CHILD_FAILED && e->action == AX_SUPERVISE_ESCALATE;
}

/* The end of an actor that will not run again: it failed for good (why
 * AX_EFAILED), or was stopped or killed while waiting for a restart
 * (AX_ECLOSED). Its children are killed and its mail dead-lettered. */
static void end_unrun(ax__cell_t *c, ax_status_t why)
{
    ax__seal(c);
    ax__tell_children(c, ax_kill);
    ax__dead_letter_rest(c, why);
    ax__end_actor(c);
}

/*
 * A held actor's schedule belongs to whoever clears AX__W_SUSPENDED: the
 * restart timer when the back-off is over, or a stop or kill requested
 * meanwhile (ax__take_suspended in actor.c), so that a kill is immediate.
 */
bool ax__take_suspended(ax__cell_t *c)
{
    uint64_t w;

    /* The CAS is the claim: exactly one caller clears the flag. */
    do {
        w = ck_pr_load_64(&c->word);
        if (!(w & AX__W_SUSPENDED))
            return false;
    } while (!ck_pr_cas_64(&c->word, w, w & ~(uint64_t)AX__W_SUSPENDED));
    return true;
}

/* On the timer thread: the back-off is over. A request may have taken
 * the actor's schedule first; then the actor may even have ended, and
 * this only finds the flag clear. */
static void restart_due(void *arg)
{
    if (ax__take_suspended(arg))
        ax__schedule(arg);
}

static uint64_t backoff_ns(const ax_restart_policy_t *p, uint32_t restarts)
{
    uint64_t d = p->backoff_initial_ns;

    for (uint32_t i = 1; i < restarts && d < p->backoff_max_ns; i++)
        d *= 2;
    return d < p->backoff_max_ns ? d : p->backoff_max_ns;
}

bool ax__fail_now(ax__worker_t *w, ax__cell_t *c, ax_status_t status)
{
    ax__cell_ext_t *ext = c->ext;
    ax_supervision_action_t action = AX_SUPERVISE_STOP;
    ax_ref_t self = ax_self((ax_actor_t *)c), parent = parent_of(c);
    uint64_t now = ax__now_ns(), timer, due;
    ax__timers_t *timers;
    uint32_t restarts;

    ax__stat_inc(&w->failures);
    ax__metrics_failed(c);
    /* A failure racing with shutdown may still restart once: the restart
     * then sees the stop request and ends the actor. */
    if (ext != NULL && ext->policy.mode == AX_RESTART_BACKOFF && !ck_pr_load_32(&c->sys->shutdown)) {
        if (ext->restarts == 0 || now - ext->window_start > ext->policy.window_ns) {
            ext->window_start = now;
            ext->restarts = 0;
        }
        if (ext->restarts < ext->policy.max_restarts)
            action = AX_SUPERVISE_RESTART;
        else if (!ax_ref_is_null(ext->parent))
            action = AX_SUPERVISE_ESCALATE;
    }
    restarts = ext != NULL ? ext->restarts + (action == AX_SUPERVISE_RESTART) : 0;
    if (action != AX_SUPERVISE_RESTART) {
        notify(parent, self, AX_CHILD_FAILED, status, action, restarts);
        end_unrun(c, AX_EFAILED);
        return false;
    }
    ext->restarts = restarts;
    /* Read what the timer needs now: once SUSPENDED is up, a stop or kill
     * may claim the actor and end it on another worker (freeing ext). */
    due = now + backoff_ns(&ext->policy, restarts);
    timers = c->sys->timers;
    ck_pr_or_32(&c->lflags, AX__L_SUSPENDED);
    /* The parent hears before the restart is armed: from then on the
     * actor may run on another worker, and c must not be touched here.
     * No mailbox tag is set: pushes queue up without scheduling it. */
    notify(parent, self, AX_CHILD_FAILED, status, action, restarts);
    ck_pr_or_64(&c->word, AX__W_SUSPENDED);
    /* A stop or kill requested before the flag went up is seen here. */
    if ((ck_pr_load_64(&c->word) & (AX__W_STOP | AX__W_KILL)) && ax__take_suspended(c))
        return ax__restart_now(w, c);
    if (ax__timer_fn(timers, due, restart_due, c, &timer) != AX_OK && ax__take_suspended(c))
        return ax__restart_now(w, c); /* no timer: the attempt comes at once */
    return false;
}

bool ax__restart_now(ax__worker_t *w, ax__cell_t *c)
{
    const ax_actor_vtable_t *vt = c->vt;
    ax_status_t st = AX_OK;
    uint64_t word;

    ck_pr_and_32(&c->lflags, ~AX__L_SUSPENDED);
    /* A stop or kill asked for during the back-off ends the actor. */
    do {
        word = ck_pr_load_64(&c->word);
    } while ((word & (AX__W_STOP | AX__W_KILL)) &&
             !ck_pr_cas_64(&c->word, word, word & ~(uint64_t)AX__W_REQUESTS));
    if (word & (AX__W_STOP | AX__W_KILL)) {
        end_unrun(c, AX_ECLOSED);
        return false;
    }
    ck_pr_and_32(&c->lflags, ~AX__L_STARTED);
    /* The failed incarnation's timers end with it: the new one never knew
     * their ids. */
    ax__end_timers(c);
    ax__run_hook(c, vt->destroy);
    /* A fresh actor in the same cell: its fields past the runtime's part
     * zeroed as at create (the lanes area, beyond vt->size, keeps its
     * queued messages). */
    memset((unsigned char *)c + sizeof(ax_actor_t), 0, vt->size - sizeof(ax_actor_t));
    ax__stat_inc(&w->restarts);
    ax__metrics_restarted(c);
    if (vt->init != NULL) {
        ax__cell_t *prev = ax__swap_current(c);

        st = vt->init((ax_actor_t *)c, c->ext->arg);
        ax__swap_current(prev);
    }
    if (st != AX_OK)
        return ax__fail_now(w, c, st);
    ck_pr_or_32(&c->lflags, AX__L_STARTED);
    ax__run_hook(c, vt->on_start);
    st = ax__take_failure(c, AX_OK); /* ax_fail in on_start */
    if (st != AX_OK)
        return ax__fail_now(w, c, st);
    return true;
}
