/*
 * The run loop: one worker runs one actor for up to `throughput` messages.
 * Control requests (start, stop, kill) go before the next message. An
 * actor with lanes first moves what its mailbox holds into per-lane lists
 * (only this worker touches them) and then takes by priority.
 */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/metrics.h"
#include "actor/net.h"
#include "actor/bounded.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "common/error.h"
#include "serial/netmsg.h"

#define LANE_FAIR_EVERY 8   /* every 8th message goes to a lower lane's turn */
#define LANE_MOVE_MAX 4096  /* mailbox messages sorted into lanes per look */

_Thread_local ax__cell_t *ax__tls_current __attribute__((tls_model("initial-exec")));
_Thread_local unsigned ax__tls_sends __attribute__((tls_model("initial-exec")));

/* ---- taking messages ----------------------------------------------------- */

/* Every message leaves the mailbox here: a bounded mailbox's place goes
 * back. */
static ax_msg_t *mbox_take(ax__cell_t *c)
{
    ax_msg_link_t *l = ax__mbox_pop(c);

    if (l != NULL)
        ax__bound_taken(c, (ax_msg_t *)l);
    return (ax_msg_t *)l;
}

/* A message sent to an earlier actor that had this cell: dead letter. */
static bool stale(ax__cell_t *c, ax_msg_t *m, uint64_t id)
{
    if (ax__to_id(m->to) == id)
        return false;
    ax_dead_letter(c->sys, &m, AX_ECLOSED, (ax_ref_t){c, ax__to_id(m->to)});
    return true;
}

static void lane_append(ax__lanes_t *lz, unsigned lane, ax_msg_t *m)
{
    m->link.next = NULL;
    if (lz->lane[lane].tail != NULL)
        lz->lane[lane].tail->next = &m->link;
    else
        lz->lane[lane].head = &m->link;
    lz->lane[lane].tail = &m->link;
    lz->queued++;
}

static ax_msg_t *lane_take(ax__lanes_t *lz, unsigned lane)
{
    ax_msg_link_t *l = lz->lane[lane].head;

    lz->lane[lane].head = l->next;
    if (l->next == NULL)
        lz->lane[lane].tail = NULL;
    lz->queued--;
    return (ax_msg_t *)l;
}

/* Lane 0 first, then 1, 2, ...; every LANE_FAIR_EVERY-th message the
 * next non-empty lower lane in turn goes first (see ax_tell_lane). */
static ax_msg_t *lane_next(ax__lanes_t *lz)
{
    unsigned lower = lz->count - 1;

    if (lz->queued == 0)
        return NULL;
    if (++lz->served % LANE_FAIR_EVERY == 0) {
        for (unsigned k = 0; k < lower; k++) {
            unsigned lane = 1 + (lz->turn + k) % lower;

            if (lz->lane[lane].head != NULL) {
                lz->turn = lane % lower;
                return lane_take(lz, lane);
            }
        }
    }
    for (unsigned lane = 0; lane < lz->count; lane++)
        if (lz->lane[lane].head != NULL)
            return lane_take(lz, lane);
    return NULL;
}

/* Out of line: inlined, the lanes' loop took registers that the run
 * loop of every actor without lanes then kept on the stack. */
static __attribute__((noinline)) ax_msg_t *next_in_lanes(ax__cell_t *c, ax__lanes_t *lz,
                                                         uint64_t id)
{
    ax_msg_t *m;

    for (unsigned i = 0; i < LANE_MOVE_MAX && (m = mbox_take(c)) != NULL; i++) {
        unsigned lane = ax__to_lane(m->to);

        if (!stale(c, m, id))
            lane_append(lz, lane < lz->count ? lane : lz->count - 1, m);
    }
    return lane_next(lz);
}

/* lz: the actor's lanes (ax__lanes), or NULL; the run reads it once. */
static ax_msg_t *next_message(ax__cell_t *c, ax__lanes_t *lz, uint64_t id)
{
    ax_msg_t *m;

    if (lz != NULL)
        return next_in_lanes(c, lz, id);
    while ((m = mbox_take(c)) != NULL)
        if (!stale(c, m, id))
            return m;
    return NULL;
}

/* Empty for good: no message, no push in flight, nothing in the lanes. */
static bool drained(ax__cell_t *c, const ax__lanes_t *lz)
{
    return ax__mpsc_drained(&c->mbox) && (lz == NULL || lz->queued == 0);
}

bool ax__mailbox_drained(ax_actor_t *self)
{
    ax__cell_t *c = ax__cell(self);

    return drained(c, ax__lanes(c));
}

void ax__dead_letter_rest(ax__cell_t *c, ax_status_t why)
{
    ax__lanes_t *lz = ax__lanes(c);
    ax_msg_t *m;

    while ((m = mbox_take(c)) != NULL)
        ax_dead_letter(c->sys, &m, why, (ax_ref_t){c, ax__to_id(m->to)});
    for (unsigned lane = 0; lz != NULL && lane < lz->count; lane++) {
        while (lz->lane[lane].head != NULL) {
            m = lane_take(lz, lane);
            ax_dead_letter(c->sys, &m, why, (ax_ref_t){c, ax__to_id(m->to)});
        }
    }
}

/* ---- endings ------------------------------------------------------------------ */

void ax__seal(ax__cell_t *c)
{
    /* Atomic or: controllers may CAS the word at the same time. */
    ck_pr_or_64(&c->word, AX__W_SEALED);
    if (ck_pr_load_32(&c->lflags) & AX__L_NAMED)
        ax__registry_release_id(&c->sys->registry, ax__cell_id(c));
}

void ax__tell_children(ax__cell_t *c, ax_status_t (*how)(ax_ref_t))
{
    if (c->ext == NULL)
        return;
    for (size_t i = 0; i < c->ext->nchildren; i++)
        how(c->ext->children[i]);
}

/*
 * The actor's last steps, on the thread that owns it. Its mailbox is
 * emptied to dead letters; pushes that raced past the seal afterwards stay
 * in the cell and are dead-lettered when it is reused or destroyed.
 */
void ax__end_actor(ax__cell_t *c)
{
    ax_system_t *sys = c->sys;
    uint64_t id = ax__cell_id(c);

    /* Sealed and ended at once. A full barrier, before NAMED and
     * PUBLISHED are read: a concurrent ax_register or ax__local_path sets
     * its flag and then reads ENDED, so one of the two sides always
     * removes the entry. */
    ck_pr_or_64(&c->word, AX__W_SEALED | AX__W_ENDED);
    if (ck_pr_load_32(&c->lflags) & AX__L_NAMED)
        ax__registry_release_id(&sys->registry, id);
    if (ck_pr_load_32(&c->lflags) & AX__L_PUBLISHED)
        ax__registry_unpublish(&sys->registry, id);
    ax__end_timers(c);
    ax__dead_letter_rest(c, AX_ECLOSED);
    ax__notify_ended(c);
    ax__run_hook(c, c->vt->destroy);
    if (c->ext != NULL) {
        /* Leases still out keep their chunks; the last release frees them. */
        ax_encode_buffer_destroy(&c->ext->eb);
        free(c->ext->env);
        free(c->ext->children);
        free(c->ext->timers);
        free(c->ext);
        c->ext = NULL;
    }
    ax__late_ended(c);
    ax__slab_free(&sys->slabs, c);
    ax__count_ended(sys); /* last: see there */
}

void ax__count_ended(ax_system_t *sys)
{
    /* A full barrier, paired with shutdown's: if the flag is not seen
     * here, ax_system_shutdown counts this end when it reads ax__alive.
     * Before shutdown nothing reads created here, so the spawning
     * thread's line stays with it. */
    ck_pr_inc_64(&sys->ended);
    if (!ck_pr_load_32(&sys->shutdown))
        return;
    /* Two that end at once may both see 0 and both wake: harmless. */
    if (ax__alive(sys) == 0)
        ax__sched_wake_all(sys);
    else
        ax__late_check(sys); /* others are alive: sys cannot be gone */
}

ax__cell_t *ax__swap_current(ax__cell_t *c)
{
    ax__cell_t *prev = ax__tls_current;

    ax__deferred_end(); /* sent by the code of the actor that was current */
    ax__tls_current = c;
    return prev;
}

ax_status_t ax__check_self(const ax_actor_t *self, const char *call)
{
    if (self == NULL)
        return ax__error(AX_EINVAL, "%s: NULL actor", call);
    if (ax__tls_current != ax__cell(self))
        return ax__error(AX_ESTATE, "%s: call it from the actor's own handlers; this thread is "
                         "not running actor %llu", call, (unsigned long long)ax__cell_id(ax__cell(self)));
    return AX_OK;
}

void ax__run_hook(ax__cell_t *c, void (*hook)(ax_actor_t *))
{
    ax__cell_t *prev;

    if (hook == NULL)
        return;
    prev = ax__swap_current(c);
    hook((ax_actor_t *)c);
    ax__swap_current(prev);
}

static void kill_now(ax__cell_t *c)
{
    ax__seal(c);
    ax__tell_children(c, ax_kill);
    if (ck_pr_load_32(&c->lflags) & AX__L_STARTED)
        ax__run_hook(c, c->vt->on_kill);
    ax__end_actor(c);
}

static void finish_stop(ax__cell_t *c)
{
    ax__tell_children(c, ax_stop);
    if (ck_pr_load_32(&c->lflags) & AX__L_STARTED)
        ax__run_hook(c, c->vt->on_stop);
    ax__end_actor(c);
}

/* Take and act on the pending requests. false when the actor ended.
 * Cold and out of line, as next_in_lanes is. */
static __attribute__((noinline, cold)) bool control(ax__cell_t *c)
{
    uint64_t w;

    /* Take the requests: a CAS, since requesters OR bits in concurrently
     * (a full barrier: what they wrote before is visible here). */
    do {
        w = ck_pr_load_64(&c->word);
    } while (!ck_pr_cas_64(&c->word, w, w & ~(uint64_t)AX__W_REQUESTS));
    if (w & AX__W_KILL) {
        kill_now(c);
        return false;
    }
    if ((w & AX__W_START) && !(ck_pr_load_32(&c->lflags) & AX__L_STARTED)) {
        ck_pr_or_32(&c->lflags, AX__L_STARTED);
        ax__run_hook(c, c->vt->on_start);
    }
    if ((w & AX__W_STOP) && !(ck_pr_load_32(&c->lflags) & AX__L_STOPPING)) {
        if (!(ck_pr_load_32(&c->lflags) & AX__L_STARTED)) {
            ax__end_actor(c); /* never started: no hooks, mail to dead letters */
            return false;
        }
        ck_pr_or_32(&c->lflags, AX__L_STOPPING);
        ax__seal(c);
    }
    return true;
}

ax_status_t ax__take_failure(ax__cell_t *c, ax_status_t st)
{
    if (ck_pr_load_32(&c->lflags) & AX__L_FAILED) {
        ck_pr_and_32(&c->lflags, ~AX__L_FAILED);
        if (st == AX_OK)
            st = c->ext != NULL && c->ext->fail_status != AX_OK ? c->ext->fail_status : AX_EFAILED;
    }
    return st;
}

/*
 * Hand msg to the actor's handler, and release what the handler left of
 * it. vt and sys are c's, read once per run by the caller: the line they
 * are on is the one senders write for every message (cell.h). timer is
 * the sender of a timer's message (read before the handler, which may
 * free it), or AX_REF_NULL; the plain path passes the constant, so none
 * of the timer's code stays in it. false when the message went to dead
 * letters unhandled (no handler for its kind).
 */
static inline __attribute__((always_inline)) bool
handle(ax__worker_t *w, ax__cell_t *c, const ax_actor_vtable_t *vt, ax_system_t *sys,
       ax_msg_t *msg, ax_ref_t timer, ax_status_t *st)
{
    uint64_t t0 = ax__metrics_now(&sys->metrics); /* the tick the handler started in */

    ax__tls_current = c;
    if (msg->type == &ax_net_msg_type && vt->receive_network != NULL) {
        ax_net_msg_t *nm = (ax_net_msg_t *)msg;

        *st = vt->receive_network((ax_actor_t *)c, &nm);
        msg = (ax_msg_t *)nm;
    } else if (msg->type != &ax_net_msg_type && vt->receive_local != NULL) {
        *st = vt->receive_local((ax_actor_t *)c, &msg);
    } else {
        ax__tls_current = NULL;
        ax_dead_letter(sys, &msg, AX_ETYPE, (ax_ref_t){c, ax__to_id(msg->to)});
        return false;
    }
    ax__deferred_end(); /* the tells the handler still holds */
    ax__tls_current = NULL;
    if (!ax_ref_is_null(timer))
        ax__timer_done(timer, &msg);
    if (msg != NULL)
        ax_msg_release(&msg);
    ax__stat_inc(&w->delivered);
    ax__metrics_handled(&sys->metrics, c, t0);
    return true;
}

/* A message the runtime marked AX__TO_RUNTIME: a child's event, or a
 * timer's. Out of line, so that the plain path keeps no timer or
 * escalation across the handler's call. The status marks a failure. */
static __attribute__((noinline)) ax_status_t deliver_runtime(ax__worker_t *w, ax__cell_t *c,
                                                            const ax_actor_vtable_t *vt,
                                                            ax_system_t *sys, ax_msg_t *msg)
{
    ax_ref_t timer = AX_REF_NULL;
    bool escalate = false;
    ax_status_t st = AX_OK;

    if (msg->type == &ax_child_event_type) {
        escalate = ax__child_event(c, msg);
        if (vt->receive_local == NULL) {
            ax_msg_release(&msg);
            return escalate ? AX_EFAILED : AX_OK;
        }
    } else if (ax__is_timer_msg(msg)) {
        timer = msg->sender;
        if (!ax__timer_claim(&msg))
            return AX_OK; /* cancelled after it was queued */
    }
    if (!handle(w, c, vt, sys, msg, timer, &st))
        return AX_OK;
    if (escalate && st == AX_OK)
        st = AX_EFAILED;
    return ax__take_failure(c, st);
}

/* Hand msg to the actor's handler; the status marks a failure. */
static inline ax_status_t deliver(ax__worker_t *w, ax__cell_t *c, const ax_actor_vtable_t *vt,
                                  ax_system_t *sys, ax_msg_t *msg)
{
    ax_status_t st = AX_OK;

    if (msg->to & AX__TO_RUNTIME)
        return deliver_runtime(w, c, vt, sys, msg);
    if (!handle(w, c, vt, sys, msg, AX_REF_NULL, &st))
        return AX_OK;
    return ax__take_failure(c, st);
}

/*
 * The budget of a run, in messages taken plus messages sent. Charging the
 * sends ends a flooding sender's run after its slice (and its self-message
 * then yields the worker, as its author meant), instead of after
 * `throughput` slices. An actor whose runs end with mail left while it
 * receives at least as much as it sends (the receiver of a flood from many
 * senders, or a relay) gets twice the budget next time, up to
 * RUN_SHIFT_MAX doublings; going idle resets it. With a fixed budget such
 * a receiver takes `throughput` messages per turn while each of its
 * senders, in its own turn, sends a whole slice: the mailbox grows without
 * end and every message is cold by the time it is taken.
 */
#define RUN_SHIFT_MAX 8

static unsigned run_budget(const ax__cell_t *c, const ax_system_t *sys)
{
    unsigned base = sys->cfg.throughput, shift = c->run_shift;

    if (shift == 0) /* most runs: no shifts and compares */
        return base;
    return base > (AX__RUN_BUDGET_MAX >> shift) ? AX__RUN_BUDGET_MAX : base << shift;
}

/*
 * Whether a controller has put a request in c's word. The word is on the
 * line senders write for every message (cell.h); `reqs`, on the runner's
 * line, says when it is worth reading. Cleared first, then a full fence,
 * then the word: a controller sets reqs after its CAS, so a request whose
 * reqs we cleared is in the word we read, and one that comes later sets
 * reqs again for the next look. A request the runner misses by a hair
 * goes before the message after, as it did when the runner missed the
 * word's CAS by as much.
 */
static inline bool requested(ax__cell_t *c)
{
    if (ck_pr_load_16(&c->reqs) == 0)
        return false;
    ck_pr_store_16(&c->reqs, 0);
    ck_pr_fence_memory(); /* the clear before the word's load */
    return (ck_pr_load_64(&c->word) & AX__W_REQUESTS) != 0;
}

bool ax__cell_run(ax__worker_t *w, ax__cell_t *c)
{
    const ax_actor_vtable_t *vt = c->vt; /* once a run: see deliver */
    ax_system_t *sys = c->sys;
    unsigned budget = run_budget(c, sys);
    unsigned sends0 = ax__tls_sends, handled = 0, sent, shift;
    uint64_t id = ax__cell_id(c);
    ax__lanes_t *lz;

    if ((ck_pr_load_32(&c->lflags) & AX__L_SUSPENDED) && !ax__restart_now(w, c))
        return false;
    lz = ax__lanes_of(c, vt); /* the vtable's, fixed for the actor's life */
    ax__metrics_run(&sys->metrics, c);
    for (unsigned n = 0; n < budget;) {
        ax_msg_t *msg;
        ax_status_t st;

        /* Control goes before the next user message. */
        if (requested(c)) {
            if (!control(c))
                return false;
            st = ax__take_failure(c, AX_OK); /* ax_fail in on_start */
            if (st != AX_OK)
                return ax__fail_now(w, c, st);
        }
        msg = next_message(c, lz, id);
        if (msg == NULL) {
            if (!(ck_pr_load_32(&c->lflags) & AX__L_STOPPING))
                break;
            if (!drained(c, lz))
                return true; /* a push is in flight: come back for it */
            finish_stop(c);
            return false;
        }
        st = deliver(w, c, vt, sys, msg);
        handled++;
        n = handled + (ax__tls_sends - sends0);
        if (st != AX_OK)
            return ax__fail_now(w, c, st);
    }
    /* A stopping actor is sealed: no push would wake it again to finish
     * the stop, so it stays scheduled until a run ends it. Likewise an
     * actor with messages sorted into its lanes. */
    if ((ck_pr_load_32(&c->lflags) & AX__L_STOPPING) || (lz != NULL && lz->queued > 0))
        return true;
    /* Reset before try_idle: once idle, another worker may run c. Only
     * when set: a store just before the CAS makes the CAS wait for it. */
    shift = c->run_shift;
    if (shift != 0)
        c->run_shift = 0;
    if (!ax__mbox_try_idle(c)) {
        sent = ax__tls_sends - sends0;
        if (sent <= handled)
            c->run_shift = (uint16_t)(shift < RUN_SHIFT_MAX ? shift + 1 : RUN_SHIFT_MAX);
        return true;
    }
    /* Idle now, and possibly already scheduled by a sender elsewhere:
     * only a successful wake makes c ours again. The word is read after
     * try_idle's full barrier: a request shows here or its try_wake finds
     * the tag (cell.h). */
    return (ck_pr_load_64(&c->word) & AX__W_REQUESTS) && ax__mbox_try_wake(c);
}

/* ---- system-wide passes --------------------------------------------- */

static void stop_if_live(ax__cell_t *c, void *arg)
{
    /* A snapshot (relaxed): ax_stop's CAS checks the id again. */
    uint64_t w = ck_pr_load_64(&c->word);

    (void)arg;
    if (w != 0 && !(w & AX__W_ENDED) && !ax__late_skip(c))
        ax_stop((ax_ref_t){c, w >> AX__W_ID_SHIFT});
}

void ax__stop_all(ax_system_t *sys)
{
    ax__slab_each(&sys->slabs, stop_if_live, NULL);
}

static void drain_cell(ax__cell_t *c, void *arg)
{
    (void)arg;
    ax__dead_letter_rest(c, AX_ECLOSED);
}

void ax__drain_all(ax_system_t *sys)
{
    ax__slab_each(&sys->slabs, drain_cell, NULL);
}
