/* Internal to actor/: running actors, and what the modules of actor/
 * share about it. */
#ifndef AXON_ACTOR_RUN_H
#define AXON_ACTOR_RUN_H

#include "actor/sched.h"

/* Run c for up to `throughput` messages on w. true when c must be run
 * again (it stays scheduled); false when it went idle, ended, or is held
 * for a restart. */
bool ax__cell_run(ax__worker_t *w, ax__cell_t *c);

/* ax__tls_sends, the sends that the run loop charges to a run's budget,
 * is declared in actor/net.h: the dispatcher counts its sends too. */

/*
 * Tells that this thread's running actor code made to one local actor and
 * holds, linked in order and not yet pushed (actor.c, "tell"): dst is
 * that actor. ax_tell starts such a chain once a push from actor code
 * found dst's mailbox busy (dst is then noted, with n 0);
 * ax__tell_deferred (actor/net.h) starts one for the dispatcher.
 * ax__deferred_end pushes the chain in one exchange and forgets dst before
 * anything else this code does could overtake it: another send, a stop or
 * start, a shutdown, and a change of the thread's current actor (deliver,
 * ax__swap_current). dst.target is NULL when nothing is noted; then n is
 * 0 too. Only actor code notes: outside it dst.target is NULL.
 */
typedef struct ax__deferred_s {
    ax_ref_t dst;
    ax_msg_link_t *first, *last;
    unsigned n;
    uint64_t gen; /* chains handed over so far on this thread */
} ax__deferred_t;

extern _Thread_local ax__deferred_t ax__tls_deferred __attribute__((tls_model("initial-exec")));

/* Push the chain if there is one (and any that its dead letters start),
 * and forget dst. */
void ax__deferred_close(void);

/* ax__deferred_close when something is noted: one load otherwise, on
 * every handler's return. */
static inline void ax__deferred_end(void)
{
    if (ax__tls_deferred.dst.target != NULL)
        ax__deferred_close();
}

/* The actor whose code runs on this thread now (a handler, a hook, its
 * init), or NULL. Initial-exec: every tell reads it. */
extern _Thread_local ax__cell_t *ax__tls_current __attribute__((tls_model("initial-exec")));

static inline ax__cell_t *ax__current_cell(void)
{
    return ax__tls_current;
}

/* Make c the actor whose code runs on this thread (NULL: none); returns
 * the one before, to put back. */
ax__cell_t *ax__swap_current(ax__cell_t *c);

/* AX_OK when this thread runs self's code now: one of its handlers or
 * hooks, or its init. Calls documented "from self's handlers" check it
 * first: on another thread they would race with the actor on its private
 * parts. AX_EINVAL for NULL, AX_ESTATE otherwise, with a detail naming
 * call. */
ax_status_t ax__check_self(const ax_actor_t *self, const char *call);

/* Run one of c's hooks (on_start, ...) as its current actor. */
void ax__run_hook(ax__cell_t *c, void (*hook)(ax_actor_t *));

/* The actor's optional parts, created on demand (NULL: out of memory). */
ax__cell_ext_t *ax__ext(ax__cell_t *c);

/* An actor's last steps, on the thread that owns it (run.c). */
void ax__end_actor(ax__cell_t *c);

/* Everything the actor holds in its mailbox and lanes, to dead letters. */
void ax__dead_letter_rest(ax__cell_t *c, ax_status_t why);

/* Seal (no more messages), kill or stop children, as endings need. */
void ax__seal(ax__cell_t *c);
void ax__tell_children(ax__cell_t *c, ax_status_t (*how)(ax_ref_t));

/* st when it is a failure already; otherwise the status ax_fail() gave
 * during the last hook or handler (AX_OK when it was not called). Clears
 * ax_fail's mark either way. */
ax_status_t ax__take_failure(ax__cell_t *c, ax_status_t st);

/* ax_tell that a bounded mailbox never refuses: for the runtime's own
 * deliveries (timer messages, ask results). */
ax_status_t ax__tell_unbounded(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);

/* A notice to an actor that is dropped, not dead-lettered, if it ended.
 * Marked AX__TO_RUNTIME: the run hands it to deliver_runtime (run.c). */
void ax__tell_notice(ax_ref_t dst, ax_msg_t **msg);

/* A timer's message (timer.c; its sender is the timer's ref) to the
 * timer's actor, as ax__tell_unbounded does, marked AX__TO_RUNTIME. The
 * timer thread is no actor's: nothing is deferred or noted. */
ax_status_t ax__tell_timer(ax_ref_t dst, ax_msg_t **msg);

/* Supervision (supervise.c): handle a failure of c (its handler returned
 * status, or it called ax_fail); false: c is no longer scheduled (it
 * ended or waits for its restart). */
bool ax__fail_now(ax__worker_t *w, ax__cell_t *c, ax_status_t status);

/* Take a suspended (held) actor's schedule: true when the caller got it
 * and must schedule or run the actor. */
bool ax__take_suspended(ax__cell_t *c);

/* Run a restart that came due; false when c ended instead. */
bool ax__restart_now(ax__worker_t *w, ax__cell_t *c);

/* Tell c's parent that c ended. */
void ax__notify_ended(ax__cell_t *c);

/* A child event reached c: true when it escalates (c must fail). */
bool ax__child_event(ax__cell_t *c, const ax_msg_t *msg);

/* Late actors (late.c): the dispatcher (tier 0) and the dead-letter
 * actor (tier 1) are stopped after every other actor, in that order. */
#define AX__LATE_TIERS 2
/* In ax__end_actor, before the actor is counted as ended. */
void ax__late_ended(ax__cell_t *c);
/* After shutdown, whenever an actor was counted as ended: stop the next
 * tier if due. */
void ax__late_check(ax_system_t *sys);
/* One actor fewer alive (an end, or a create abandoned). After shutdown
 * the last one out wakes the workers so that they can exit, and the late
 * tiers stop when due. Last in an ending: sys may go once the workers
 * have exited. */
void ax__count_ended(ax_system_t *sys);
/* Whether the shutdown's first pass leaves c alone. */
bool ax__late_skip(const ax__cell_t *c);

/* Stop every live actor of sys (shutdown) but the late ones. */
void ax__stop_all(ax_system_t *sys);

/* Release the messages left in the mailboxes of ended or free cells
 * (system destroy; no other thread runs). */
void ax__drain_all(ax_system_t *sys);

/* End every timer of c (timer_api.c). */
void ax__end_timers(ax__cell_t *c);

#endif
