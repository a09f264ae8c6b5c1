/* Actors: create, start, stop, kill, tell. The run loop is in run.c. */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/metrics.h"
#include "actor/bounded.h"
#include "actor/net.h"
#include "actor/system.h"
#include "common/barrier.h"
#include "common/error.h"
#include "common/grow.h"

/* ---- refs ----------------------------------------------------------- */

static ax__cell_t *local_cell(ax_ref_t ref)
{
    if (!ax__ref_is(ref, AX__REF_LOCAL))
        return NULL;
    return ref.target;
}

ax_ref_t ax_self(const ax_actor_t *self)
{
    const ax__cell_t *c = (const ax__cell_t *)self;

    return (ax_ref_t){(void *)(uintptr_t)c, ax__cell_id(c)};
}

ax_system_t *ax_actor_system(const ax_actor_t *self)
{
    return ((const ax__cell_t *)self)->sys;
}

uint64_t ax_ref_id(ax_ref_t ref)
{
    return ref.id & ~AX__REF_KIND_MASK;
}

ax__cell_ext_t *ax__ext(ax__cell_t *c)
{
    if (c->ext == NULL && (c->ext = calloc(1, sizeof(*c->ext))) == NULL)
        ax__error(AX_ENOMEM, "actor: out of memory");
    return c->ext;
}

/* ---- create and start ------------------------------------------------ */

static ax_status_t check_vtable(const ax_actor_vtable_t *vt)
{
    if (vt == NULL)
        return ax__error(AX_EINVAL, "actor: NULL vtable");
    if (vt->size < sizeof(ax_actor_t))
        return ax__error(AX_EINVAL, "actor \"%s\": size %zu is smaller than ax_actor_t (%zu)",
                         vt->name ? vt->name : "?", vt->size, sizeof(ax_actor_t));
    if (vt->receive_local == NULL && vt->receive_network == NULL)
        return ax__error(AX_EINVAL, "actor \"%s\": no receive handler", vt->name ? vt->name : "?");
    if (vt->lanes > AX_MAX_LANES)
        return ax__error(AX_EINVAL, "actor \"%s\": %u lanes, at most %d", vt->name ? vt->name : "?",
                         vt->lanes, AX_MAX_LANES);
    return AX_OK;
}

static ax_status_t check_policy(const ax_restart_policy_t *p)
{
    if (p->mode != AX_RESTART_NEVER && p->mode != AX_RESTART_BACKOFF)
        return ax__error(AX_EINVAL, "spawn: unknown restart mode %d", (int)p->mode);
    if (p->mode == AX_RESTART_BACKOFF && p->backoff_initial_ns > p->backoff_max_ns)
        return ax__error(AX_EINVAL, "spawn: backoff_initial_ns is above backoff_max_ns");
    return AX_OK;
}

/* The parts a parent or a restart policy need, set before the actor
 * exists for anyone else. */
static ax_status_t init_ext(ax__cell_t *c, ax__cell_t *parent, const ax_spawn_opts_t *opts, void *arg)
{
    ax__cell_ext_t *ext;

    if (parent == NULL && opts->restart.mode == AX_RESTART_NEVER)
        return AX_OK;
    ext = ax__ext(c);
    if (ext == NULL)
        return AX_ENOMEM;
    if (parent != NULL)
        ext->parent = ax_self((ax_actor_t *)parent);
    ext->policy = opts->restart;
    ext->arg = arg;
    return AX_OK;
}

static ax_status_t create(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg,
                          const ax_spawn_opts_t *opts, ax_ref_t *ref)
{
    ax__cell_t *c, *parent = opts != NULL ? ax__cell(opts->parent) : NULL;
    static const ax_spawn_opts_t none = {0};
    ax__lanes_t *lanes;
    ax_status_t st;
    uint64_t id;

    if (sys == NULL || ref == NULL)
        return ax__error(AX_EINVAL, "create: NULL argument");
    if (opts == NULL)
        opts = &none;
    st = check_vtable(vt);
    if (st == AX_OK)
        st = check_policy(&opts->restart);
    if (st != AX_OK)
        return st;
    /* Counted alive before the shutdown check, each a full barrier: the
     * workers exit only once shutdown is set and ax__alive is 0, so either
     * we see the flag here or they wait for this actor to end. Every
     * failure below undoes the count with ax__count_ended. */
    ck_pr_inc_64(&sys->created);
    if (ck_pr_load_32(&sys->shutdown)) {
        ax__count_ended(sys);
        return ax__error(AX_ESHUTDOWN, "create \"%s\": the system is shutting down", vt->name);
    }
    id = ck_pr_faa_64(&sys->next_id, 1) + 1; /* only uniqueness matters */
    if (id >= AX__ASK_ID_BIT) {
        ax__count_ended(sys);
        return ax__error(AX_ESTATE, "create: the system has used every actor id");
    }
    st = ax__slab_alloc(&sys->slabs, ax__cell_size(vt), &c);
    if (st != AX_OK) {
        ax__count_ended(sys);
        return st;
    }
    /* A recycled cell already names this system (slabs are per system),
     * and stale refs may read the field: write it only into a fresh cell,
     * which no ref can reach yet. */
    if (c->sys != sys)
        c->sys = sys;
    ck_pr_store_ptr(&c->vt, vt); /* metrics readers load it (metrics.c) */
    c->ext = NULL;
    c->run_shift = 0;
    ax__metrics_cell_reset(c);
    ck_pr_store_32(&c->lflags, 0); /* published with the id, below */
    if ((lanes = ax__lanes(c)) != NULL)
        lanes->count = vt->lanes;
    st = init_ext(c, parent, opts, arg);
    if (st != AX_OK) {
        free(c->ext);
        ax__slab_free(&sys->slabs, c);
        ax__count_ended(sys);
        return st;
    }
    /* Publishes the new owner of the cell: from here senders with this id
     * reach the mailbox, and stale ones are turned away. A plain store: the
     * id reaches other threads through *ref, handed on by an RMW, a lock or
     * the schedule; the metrics walk reads only fields stored atomically above. */
    ck_pr_store_64(&c->word, id << AX__W_ID_SHIFT | (vt->mailbox_capacity != 0 ? AX__W_BOUNDED : 0));
    *ref = (ax_ref_t){c, id};
    if (vt->init != NULL) {
        /* init runs as the new actor: the calls it may make "from self's
         * handlers" (timers, children, buffers) pass their check. */
        ax__cell_t *prev = ax__swap_current(c);

        st = vt->init((ax_actor_t *)c, arg);
        ax__swap_current(prev);
        if (st != AX_OK) {
            ax__end_actor(c);
            return st;
        }
    }
    /* Pairs with the heavy barrier in ax_system_shutdown: it either sees
     * this actor when it stops every live one, or we see its flag here.
     * The light side is a compiler barrier where the kernel has
     * membarrier (common/barrier.h): a fence here cost every spawn the
     * wait for the new cell's stores (actor/NOTES.md). */
    ax__barrier_light();
    if (ck_pr_load_32(&sys->shutdown))
        ax_stop(*ref);
    return AX_OK;
}

ax_status_t ax_create(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref)
{
    return create(sys, vt, arg, NULL, ref);
}

/* Set request bits on a live actor whose id matches. claim_only: fail with
 * AX_ESTATE if it was scheduled before (ax_start). */
static ax_status_t request(ax_ref_t ref, uint64_t bits, bool claim_only)
{
    ax__cell_t *c = local_cell(ref);
    uint64_t w;

    if (c == NULL)
        return ax__error(AX_EINVAL, "actor: not a local actor ref");
    /* The tells this thread's actor made before reach their mailboxes
     * first: a stop comes after them, as it would have without the
     * deferral. */
    ax__deferred_end();
    do {
        w = ck_pr_load_64(&c->word); /* checked again by the CAS */
        if ((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED) != 0)
            return ax__error(AX_ENOTFOUND, "actor %llu has ended", (unsigned long long)ref.id);
        if (claim_only && (w & AX__W_CLAIMED) != 0)
            return ax__error(AX_ESTATE, "actor %llu was already started or stopped",
                             (unsigned long long)ref.id);
        /* Full barrier: pairs with the one in ax__mbox_try_idle, so that an
         * actor going idle sees these bits or we see it idle below. */
    } while (!ck_pr_cas_64(&c->word, w, w | bits | AX__W_CLAIMED));
    /* After the CAS: a runner that sees this clears it and then reads the
     * word, which holds our bits by then (run.c). */
    ck_pr_store_16(&c->reqs, 1);
    if ((w & AX__W_CLAIMED) == 0)
        ax__schedule(c); /* a created actor: its first schedule is ours */
    else if (ax__mbox_try_wake(c))
        ax__schedule(c);
    else if ((bits & (AX__W_STOP | AX__W_KILL)) && ax__take_suspended(c))
        ax__schedule(c); /* waiting for a restart: end it now instead */
    return AX_OK;
}

ax_status_t ax_start(ax_ref_t ref)
{
    return request(ref, AX__W_START, true);
}

ax_status_t ax_spawn_opts(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg,
                          const ax_spawn_opts_t *opts, ax_ref_t *ref)
{
    ax__cell_t *p = opts != NULL ? ax__cell(opts->parent) : NULL;
    ax__cell_ext_t *ext = NULL;
    ax_status_t st;

    if (p != NULL) {
        /* The parent's list of children is the parent's own: it spawns
         * from its handlers, on its thread. */
        st = ax__check_self(opts->parent, "spawn with a parent");
        if (st != AX_OK)
            return st;
        if (p->sys != sys)
            return ax__error(AX_EINVAL, "spawn: the parent belongs to another system");
        if ((ext = ax__ext(p)) == NULL)
            return AX_ENOMEM;
        if (!ax__grow(&ext->children, &ext->cap, ext->nchildren + 1, sizeof(ax_ref_t), 4))
            return ax__error(AX_ENOMEM, "spawn: out of memory");
    }
    st = create(sys, vt, arg, opts, ref);
    if (st != AX_OK)
        return st;
    if (ext != NULL)
        ext->children[ext->nchildren++] = *ref;
    st = ax_start(*ref);
    /* Only a shutdown that stopped the new actor first can make the start
     * fail: say so. */
    return st == AX_OK ? AX_OK : ax__error(AX_ESHUTDOWN, "spawn: the system is shutting down");
}

ax_status_t ax_spawn(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref)
{
    return ax_spawn_opts(sys, vt, arg, NULL, ref);
}

ax_status_t ax_spawn_child(ax_actor_t *self, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref)
{
    ax_spawn_opts_t opts = {.parent = self};

    ax_status_t st = ax__check_self(self, "spawn_child");

    if (st != AX_OK)
        return st;
    return ax_spawn_opts(ax__cell(self)->sys, vt, arg, &opts, ref);
}

ax_status_t ax_stop(ax_ref_t ref)
{
    return request(ref, AX__W_STOP, false);
}

ax_status_t ax_kill(ax_ref_t ref)
{
    return request(ref, AX__W_KILL, false);
}

/* ---- tell ----------------------------------------------------------- */

/* Is the actor dst names still taking messages? */
static bool accepts(ax__cell_t *c, ax_ref_t dst)
{
    uint64_t w = ck_pr_load_64(&c->word);

    return (w >> AX__W_ID_SHIFT) == dst.id && (w & AX__W_SEALED) == 0;
}

/* A push from an actor's code found dst's mailbox, which has no capacity,
 * busy: note dst (tell, below). Out of line: the push that finds the
 * mailbox idle saves no register for it. */
static __attribute__((noinline)) void note_busy(ax_ref_t dst)
{
    ax__tls_deferred.dst = dst;
}

/* dst has ended or is sealed: msg goes to dead letters, or a quiet
 * notice is dropped. Out of line, and with its own copy of msg, so that
 * the push keeps msg in a register rather than on the stack. */
static __attribute__((noinline)) void tell_closed(ax__cell_t *c, ax_msg_t *msg, ax_ref_t dst,
                                                  bool quiet)
{
    if (quiet)
        ax_msg_release(&msg);
    else
        ax_dead_letter(c->sys, &msg, AX_ECLOSED, dst);
}

/* A place in dst's bounded mailbox: AX_OK, and the message that takes it
 * must be marked as counted; AX_EFULL (with its detail); or AX_ECLOSED when
 * dst ended in between, and no place is held. Out of line, as tell_closed
 * is. */
static __attribute__((noinline)) ax_status_t bound_take(ax__cell_t *c, ax_ref_t dst)
{
    /* Read after the word (acquire): create wrote vt before it published
     * the id. */
    ax_status_t st = ax__bound_reserve(c, ck_pr_load_ptr(&c->vt), dst.id);

    if (st != AX_OK)
        return st;
    /* The place was taken in this actor's count, unless it ended in
     * between (the cell may even be another actor's now): then the place
     * goes back, and the message to dead letters. */
    if (!accepts(c, dst)) {
        ax__bound_unreserve(c);
        return AX_ECLOSED;
    }
    return AX_OK;
}

/* Push onto a local actor's mailbox, or, when it has ended or is sealed,
 * hand to dead letters (or drop a quiet notice). to carries the id and
 * mark: the lane's bits, or AX__TO_RUNTIME (cell.h). bounded: a full
 * bounded mailbox refuses the message with AX_EFULL, and the caller keeps
 * it as it was (its sender too); any other outcome takes it. note: a
 * push from an actor's code that finds a mailbox without capacity busy
 * notes its target (tell, below).
 * Inlined into each caller, whose constant mark, quiet and bounded drop
 * the branches it does not take: as a call with seven arguments (three on
 * the stack) it was a third of ax_tell's instructions in a local ping-pong
 * (actor/NOTES.md, "Instructions per message"). */
static inline __attribute__((always_inline)) ax_status_t
push_local(ax__cell_t *c, ax_ref_t dst, ax_msg_t *msg, ax_ref_t from, uint64_t mark, bool quiet,
           bool bounded, bool note)
{
    uint64_t w = ck_pr_load_64(&c->word), counted = 0;
    bool idle;

    if ((w >> AX__W_ID_SHIFT) != dst.id)
        goto closed;
    /* One test for most tells: not sealed, and no capacity to count. */
    if (w & (AX__W_SEALED | AX__W_BOUNDED)) {
        if (w & AX__W_SEALED)
            goto closed;
        if (bounded) {
            ax_status_t st = bound_take(c, dst);

            if (st == AX_ECLOSED)
                goto closed;
            if (st != AX_OK)
                return st; /* before any field is written: msg is as it came */
            counted = AX__TO_COUNTED;
        }
    }
    msg->sender = from;
    msg->to = dst.id | mark | counted;
    idle = ax__mbox_push(c, &msg->link);
    /* The send counts for the run's budget after the exchange, which
     * would otherwise wait for this store. */
    ax__tls_sends++;
    if (idle)
        ax__schedule(c);
    else if (note && ax__tls_current != NULL && !(w & AX__W_BOUNDED))
        note_busy(dst);
    return AX_OK;
closed:
    msg->sender = from;
    msg->to = dst.id | mark;
    tell_closed(c, msg, dst, quiet);
    return AX_OK;
}

static inline __attribute__((always_inline)) ax_status_t
tell_local(ax__cell_t *c, ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from, uint64_t mark, bool bounded,
           bool note)
{
    ax_status_t st = push_local(c, dst, *msgp, from, mark, false, bounded, note);

    if (st == AX_OK)
        *msgp = NULL;
    return st;
}

static void defer_link(ax__deferred_t *d, ax_msg_t *m, ax_ref_t from);
static void deferred_flush(void);

/* A tell while this thread's actor code has a target noted (below): it
 * joins the chain for that target, or the chain goes first and the tell is
 * pushed. Out of line, so that the common push saves no registers. */
static __attribute__((noinline)) ax_status_t tell_noted(ax__cell_t *c, ax_ref_t dst,
                                                      ax_msg_t **msgp, ax_ref_t from, bool bounded)
{
    ax__deferred_t *d = &ax__tls_deferred;

    if (ax_ref_eq(d->dst, dst)) { /* c is dst's cell */
        defer_link(d, *msgp, from);
        *msgp = NULL;
        return AX_OK;
    }
    ax__deferred_close();
    return tell_local(c, dst, msgp, from, 0, bounded, true);
}

/* Not a local actor. An ask's reply ref completes a future that a thread
 * may be waiting on: what the handler told before goes first. A remote
 * actor's message goes to the dispatcher through the same chain
 * (ax__tell_deferred), which hands over one for another actor first; so
 * consecutive remote sends still travel together. */
static __attribute__((noinline)) ax_status_t tell_remote(ax_ref_t dst, ax_msg_t **msgp,
                                                       ax_ref_t from)
{
    if (ax__ref_is(dst, AX__REF_REPLY))
        ax__deferred_end();
    return ax__tell_remote(dst, msgp, from);
}

/*
 * ax_tell, counting against a bounded mailbox's capacity or not.
 *
 * From an actor's code (a handler, a hook, its init), a push that finds
 * the target's mailbox already holding messages notes the target: the
 * target is behind, and pushing one message at a time only moves the
 * mailbox's line between the cores. The next tells to it join a chain,
 * pushed in one exchange when the code returns, when it holds DEFER_MAX
 * messages, or before any other send, stop, start or shutdown. So sends
 * take effect in the order they were made, some of them later
 * (actor/NOTES.md, "Tells to a busy mailbox, deferred"). A bounded mailbox
 * is never noted: it answers AX_EFULL at the tell.
 */
static inline __attribute__((always_inline)) ax_status_t
tell(ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from, bool bounded)
{
    ax__cell_t *c;

    if (msgp == NULL || *msgp == NULL)
        return ax__error(AX_EINVAL, "tell: NULL message");
    c = local_cell(dst);
    if (c == NULL)
        return tell_remote(dst, msgp, from);
    if (ax__tls_deferred.dst.target != NULL)
        return tell_noted(c, dst, msgp, from, bounded);
    return tell_local(c, dst, msgp, from, 0, bounded, true);
}

ax_status_t ax_tell(ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from)
{
    return tell(dst, msgp, from, true);
}

ax_status_t ax__tell_unbounded(ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from)
{
    return tell(dst, msgp, from, false);
}

ax_status_t ax_tell_lane(ax_ref_t dst, unsigned lane, ax_msg_t **msgp, ax_ref_t from)
{
    ax__cell_t *c = local_cell(dst);
    const ax_actor_vtable_t *vt;

    if (msgp == NULL || *msgp == NULL)
        return ax__error(AX_EINVAL, "tell_lane: NULL message");
    if (lane == 0)
        return ax_tell(dst, msgp, from);
    if (c == NULL)
        return ax__error(AX_EINVAL, "tell_lane: lanes are for local actors");
    ax__deferred_end(); /* sends take effect in the order they were made */
    /* A message for an actor that has ended goes to dead letters whatever
     * its lane; only a live actor's lane count is checked. (One that ends
     * right after is caught on arrival: the runtime checks the id.) */
    if (accepts(c, dst)) {
        /* Read after the word (acquire): the vtable create wrote before it
         * published this id. */
        vt = c->vt;
        if (lane >= (vt->lanes > 1 ? vt->lanes : 1u))
            return ax__error(AX_EINVAL, "tell_lane: lane %u, \"%s\" has %u", lane,
                             vt->name ? vt->name : "?", vt->lanes > 1 ? vt->lanes : 1u);
    }
    return tell_local(c, dst, msgp, from, (uint64_t)lane << AX__TO_LANE_SHIFT, true, false);
}

/* ---- tells deferred to the end of the handler ---------------------- */

/* At most this many messages wait in a thread's deferred chain: a handler
 * that sends a long burst hands it over in runs of this size. */
#define DEFER_MAX 32

_Thread_local ax__deferred_t ax__tls_deferred __attribute__((tls_model("initial-exec")));

/* Link m at the end of the chain, which is for d->dst. */
static void defer_link(ax__deferred_t *d, ax_msg_t *m, ax_ref_t from)
{
    m->sender = from;
    m->to = d->dst.id;
    m->link.next = NULL;
    if (d->n == 0)
        d->first = &m->link;
    else
        d->last->next = &m->link;
    d->last = &m->link;
    ax__tls_sends++; /* a send, for the run's budget, as in push_local */
    if (++d->n >= DEFER_MAX)
        deferred_flush();
}

ax_status_t ax__tell_deferred(ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from)
{
    ax__deferred_t *d = &ax__tls_deferred;
    ax_msg_t *m = msgp != NULL ? *msgp : NULL;

    /* Outside an actor's code nothing would hand the chain over; and
     * ax_tell answers a NULL message. */
    if (m == NULL || local_cell(dst) == NULL || ax__tls_current == NULL)
        return ax__tell_unbounded(dst, msgp, from);
    if (!ax_ref_eq(d->dst, dst)) {
        ax__deferred_end();
        d->dst = dst;
    }
    defer_link(d, m, from);
    *msgp = NULL;
    return AX_OK;
}

ax_msg_t *ax__deferred_tail(uint64_t *gen)
{
    *gen = ax__tls_deferred.gen;
    return ax__tls_deferred.n != 0 ? (ax_msg_t *)ax__tls_deferred.last : NULL;
}

void ax__deferred_hand_over(void)
{
    ax__deferred_end();
}

void ax__deferred_close(void)
{
    /* A loop: dead letters for a chain whose target ended are tells too,
     * and may start a chain of their own. */
    while (ax__tls_deferred.n != 0)
        deferred_flush();
    ax__tls_deferred.dst.target = NULL;
}

/* Push the deferred chain now (n > 0): to dead letters if dst has ended.
 * dst stays noted. */
static void deferred_flush(void)
{
    ax__deferred_t *d = &ax__tls_deferred;
    ax_ref_t dst = d->dst;
    ax__cell_t *c = dst.target;
    ax_msg_link_t *l = d->first, *last = d->last;

    /* Emptied first: a dead letter below may send again. dst stays:
     * later tells to it join a new chain. */
    d->first = d->last = NULL;
    d->n = 0;
    d->gen++;
    if (accepts(c, dst)) {
        if (ax__mbox_push_chain(c, l, last))
            ax__schedule(c);
        return;
    }
    /* Ended or sealed meanwhile: each message to dead letters, as
     * push_local does with one. */
    while (l != NULL) {
        ax_msg_t *m = (ax_msg_t *)l;

        l = l->next;
        ax_dead_letter(c->sys, &m, AX_ECLOSED, dst);
    }
}

/* Internal notices (child events): like ax_tell, but when the receiver has
 * ended the notice is simply released, not dead-lettered. */
void ax__tell_notice(ax_ref_t dst, ax_msg_t **msgp)
{
    ax__cell_t *c = local_cell(dst);

    if (c == NULL) {
        ax_msg_release(msgp);
        return;
    }
    ax__deferred_end(); /* after what the current actor sent before */
    push_local(c, dst, *msgp, AX_REF_NULL, AX__TO_RUNTIME, true, false, false);
    *msgp = NULL;
}

ax_status_t ax__tell_timer(ax_ref_t dst, ax_msg_t **msgp)
{
    ax__cell_t *c = local_cell(dst);

    if (c == NULL)
        return ax__tell_unbounded(dst, msgp, (*msgp)->sender);
    return tell_local(c, dst, msgp, (*msgp)->sender, AX__TO_RUNTIME, false, false);
}
