/* Actors: create, start, stop, kill, tell, and the run loop. */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/system.h"
#include "common/error.h"
#include "serial/netmsg.h"

/* Sent by an ended child to its parent, which forgets it. */
typedef struct child_ended {
    ax_msg_t hdr;
    ax_ref_t child;
} child_ended_t;

static const ax_msg_type_t child_ended_type = {
    .name = "axon.child-ended",
    .size = sizeof(child_ended_t),
};

/* ---- refs ----------------------------------------------------------- */

static ax__cell_t *local_cell(ax_ref_t ref)
{
    if (ref.target == NULL || (ref.id & AX__REF_KIND_MASK) != AX__REF_LOCAL)
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
    return AX_OK;
}

static void end_actor(ax__cell_t *c);

/* Undo the count create took for an actor that never came to exist. As
 * at the end of end_actor, the last one out after shutdown lets the
 * workers exit. */
static void create_abandon(ax_system_t *sys)
{
    if (ck_pr_faa_64(&sys->alive, (uint64_t)-1) == 1 && ck_pr_load_32(&sys->shutdown))
        ax__sched_wake_all(sys);
}

static ax_status_t create(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg,
                          ax__cell_t *parent, ax_ref_t *ref)
{
    ax__cell_t *c;
    ax_status_t st;
    uint64_t id;

    if (sys == NULL || ref == NULL)
        return ax__error(AX_EINVAL, "create: NULL argument");
    st = check_vtable(vt);
    if (st != AX_OK)
        return st;
    /* Counted alive before the shutdown check, each a full barrier: the
     * workers exit only once shutdown is set and alive is 0, so either we
     * see the flag here or they wait for this actor to end. (Checking
     * first and counting after let the workers exit in between, leaving a
     * new actor that never ran and whose destroy was never called.) */
    ck_pr_inc_64(&sys->alive);
    if (ck_pr_load_32(&sys->shutdown)) {
        create_abandon(sys);
        return ax__error(AX_ESHUTDOWN, "create \"%s\": the system is shutting down", vt->name);
    }
    id = ck_pr_faa_64(&sys->next_id, 1) + 1;
    if (id > AX__ID_MAX) {
        create_abandon(sys);
        return ax__error(AX_ESTATE, "create: the system has used every actor id");
    }
    st = ax__slab_alloc(&sys->slabs, vt->size, &c);
    if (st != AX_OK) {
        create_abandon(sys);
        return st;
    }
    c->sys = sys;
    c->vt = vt;
    c->ext = NULL;
    ck_pr_store_32(&c->lflags, 0);
    if (parent != NULL) {
        c->ext = calloc(1, sizeof(*c->ext));
        if (c->ext == NULL) {
            ax__slab_free(&sys->slabs, c);
            create_abandon(sys);
            return ax__error(AX_ENOMEM, "create: out of memory");
        }
        c->ext->parent = ax_self((ax_actor_t *)parent);
    }
    /* Publishes the new owner of the cell: from here senders with this id
     * reach the mailbox, and stale ones are turned away. */
    ck_pr_store_64(&c->word, id << AX__W_ID_SHIFT);
    *ref = (ax_ref_t){c, id};
    if (vt->init != NULL && (st = vt->init((ax_actor_t *)c, arg)) != AX_OK) {
        end_actor(c);
        return st;
    }
    /* Pairs with the fence in ax_system_shutdown: it either sees this
     * actor when it stops every live one, or we see its flag here. */
    ck_pr_fence_memory();
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
    do {
        w = ck_pr_load_64(&c->word);
        if ((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED) != 0)
            return ax__error(AX_ENOTFOUND, "actor %llu has ended", (unsigned long long)ref.id);
        if (claim_only && (w & AX__W_CLAIMED) != 0)
            return ax__error(AX_ESTATE, "actor %llu was already started or stopped",
                             (unsigned long long)ref.id);
        /* Full barrier: pairs with the one in ax__mbox_try_idle, so that an
         * actor going idle sees these bits or we see it idle below. */
    } while (!ck_pr_cas_64(&c->word, w, w | bits | AX__W_CLAIMED));
    if ((w & AX__W_CLAIMED) == 0)
        ax__schedule(c); /* a created actor: its first schedule is ours */
    else if (ax__mbox_try_wake(c))
        ax__schedule(c);
    return AX_OK;
}

ax_status_t ax_start(ax_ref_t ref)
{
    return request(ref, AX__W_START, true);
}

ax_status_t ax_spawn(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref)
{
    ax_status_t st = create(sys, vt, arg, NULL, ref);

    return st == AX_OK ? ax_start(*ref) : st;
}

ax_status_t ax_spawn_child(ax_actor_t *self, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref)
{
    ax__cell_t *p = (ax__cell_t *)self;
    ax__cell_ext_t *ext;
    ax_status_t st;

    if (self == NULL)
        return ax__error(AX_EINVAL, "spawn_child: NULL parent");
    if (p->ext == NULL && (p->ext = calloc(1, sizeof(*p->ext))) == NULL)
        return ax__error(AX_ENOMEM, "spawn_child: out of memory");
    ext = p->ext;
    if (ext->nchildren == ext->cap) {
        size_t cap = ext->cap ? ext->cap * 2 : 4;
        ax_ref_t *children = realloc(ext->children, cap * sizeof(*children));

        if (children == NULL)
            return ax__error(AX_ENOMEM, "spawn_child: out of memory");
        ext->children = children;
        ext->cap = cap;
    }
    st = create(p->sys, vt, arg, p, ref);
    if (st != AX_OK)
        return st;
    ext->children[ext->nchildren++] = *ref;
    return ax_start(*ref);
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

ax_status_t ax_tell(ax_ref_t dst, ax_msg_t **msgp, ax_ref_t from)
{
    ax_msg_t *msg;
    ax__cell_t *c;
    uint64_t w;

    if (msgp == NULL || (msg = *msgp) == NULL)
        return ax__error(AX_EINVAL, "tell: NULL message");
    c = local_cell(dst);
    if (c == NULL)
        return ax__tell_remote(dst, msgp, from);
    msg->sender = from;
    msg->to = dst.id;
    *msgp = NULL;
    w = ck_pr_load_64(&c->word);
    if ((w >> AX__W_ID_SHIFT) != dst.id || (w & AX__W_SEALED) != 0) {
        ax_dead_letter(c->sys, &msg, AX_ECLOSED, dst);
        return AX_OK;
    }
    if (ax__mbox_push(c, &msg->link))
        ax__schedule(c);
    return AX_OK;
}

/* ---- the run loop ---------------------------------------------------- */

/* Empty for good: no message, and no push in flight. */
static bool mailbox_drained(ax__cell_t *c)
{
    return c->tail == &c->stub && ck_pr_load_ptr(&c->stub.next) == NULL &&
           ck_pr_load_ptr(&c->head) == &c->stub;
}

static void dead_letter_rest(ax__cell_t *c, ax_status_t why)
{
    ax_msg_link_t *l;

    while ((l = ax__mbox_pop(c)) != NULL) {
        ax_msg_t *m = (ax_msg_t *)l;

        ax_dead_letter(c->sys, &m, why, (ax_ref_t){c, m->to});
    }
}

static void seal(ax__cell_t *c)
{
    /* Atomic or: controllers may CAS the word at the same time. */
    ck_pr_or_64(&c->word, AX__W_SEALED);
    if (ck_pr_load_32(&c->lflags) & AX__L_NAMED)
        ax__registry_release_id(&c->sys->registry, ax__cell_id(c));
}

static void tell_children(ax__cell_t *c, ax_status_t (*how)(ax_ref_t))
{
    if (c->ext == NULL)
        return;
    for (size_t i = 0; i < c->ext->nchildren; i++)
        how(c->ext->children[i]);
}

static void forget_child(ax__cell_t *c, ax_ref_t child)
{
    ax__cell_ext_t *ext = c->ext;

    for (size_t i = 0; ext != NULL && i < ext->nchildren; i++) {
        if (ax_ref_eq(ext->children[i], child)) {
            ext->children[i] = ext->children[--ext->nchildren];
            return;
        }
    }
}

/*
 * The actor's last steps, on the thread that owns it. Its mailbox is
 * emptied to dead letters; pushes that raced past the seal afterwards stay
 * in the cell and are dead-lettered when it is reused or destroyed.
 */
static void end_actor(ax__cell_t *c)
{
    ax_system_t *sys = c->sys;
    uint64_t id = ax__cell_id(c);
    ax_ref_t parent = c->ext != NULL ? c->ext->parent : AX_REF_NULL;

    seal(c);
    ck_pr_or_64(&c->word, AX__W_ENDED);
    if (ck_pr_load_32(&c->lflags) & AX__L_NAMED)
        ax__registry_release_id(&sys->registry, id);
    if (ck_pr_load_32(&c->lflags) & AX__L_PUBLISHED)
        ax__registry_unpublish(&sys->registry, id);
    dead_letter_rest(c, AX_ECLOSED);
    if (!ax_ref_is_null(parent)) {
        ax_msg_t *m;

        if (ax_msg_alloc(&child_ended_type, &m) == AX_OK) {
            ((child_ended_t *)m)->child = (ax_ref_t){c, id};
            ax_tell(parent, &m, AX_REF_NULL);
        }
    }
    if (c->vt->destroy != NULL)
        c->vt->destroy((ax_actor_t *)c);
    if (c->ext != NULL) {
        /* Leases still out keep their chunks; the last release frees them. */
        ax_encode_buffer_destroy(&c->ext->eb);
        free(c->ext->children);
        free(c->ext);
        c->ext = NULL;
    }
    ax__slab_free(&sys->slabs, c);
    /* Last: once alive reaches 0 after shutdown the workers may exit. */
    if (ck_pr_faa_64(&sys->alive, (uint64_t)-1) == 1 && ck_pr_load_32(&sys->shutdown))
        ax__sched_wake_all(sys);
}

static void kill_now(ax__cell_t *c)
{
    seal(c);
    tell_children(c, ax_kill);
    if ((ck_pr_load_32(&c->lflags) & AX__L_STARTED) && c->vt->on_kill != NULL)
        c->vt->on_kill((ax_actor_t *)c);
    end_actor(c);
}

static void finish_stop(ax__cell_t *c)
{
    tell_children(c, ax_stop);
    if ((ck_pr_load_32(&c->lflags) & AX__L_STARTED) && c->vt->on_stop != NULL)
        c->vt->on_stop((ax_actor_t *)c);
    end_actor(c);
}

/* Take and act on the pending requests. false when the actor ended. */
static bool control(ax__cell_t *c)
{
    uint64_t w;

    do {
        w = ck_pr_load_64(&c->word);
    } while (!ck_pr_cas_64(&c->word, w, w & ~(uint64_t)AX__W_REQUESTS));
    if (w & AX__W_KILL) {
        kill_now(c);
        return false;
    }
    if ((w & AX__W_START) && !(ck_pr_load_32(&c->lflags) & AX__L_STARTED)) {
        ck_pr_or_32(&c->lflags, AX__L_STARTED);
        if (c->vt->on_start != NULL)
            c->vt->on_start((ax_actor_t *)c);
    }
    if ((w & AX__W_STOP) && !(ck_pr_load_32(&c->lflags) & AX__L_STOPPING)) {
        if (!(ck_pr_load_32(&c->lflags) & AX__L_STARTED)) {
            end_actor(c); /* never started: no hooks, mail to dead letters */
            return false;
        }
        ck_pr_or_32(&c->lflags, AX__L_STOPPING);
        seal(c);
    }
    return true;
}

static void deliver(ax__worker_t *w, ax__cell_t *c, ax_msg_t *msg)
{
    ax_status_t st;

    if (msg->type == &child_ended_type) {
        forget_child(c, ((child_ended_t *)msg)->child);
        ax_msg_release(&msg);
        return;
    }
    if (msg->type == &ax_net_msg_type) {
        ax_net_msg_t *nm = (ax_net_msg_t *)msg;

        if (c->vt->receive_network == NULL) {
            ax_dead_letter(c->sys, &msg, AX_ETYPE, (ax_ref_t){c, msg->to});
            return;
        }
        st = c->vt->receive_network((ax_actor_t *)c, &nm);
        msg = (ax_msg_t *)nm;
    } else if (c->vt->receive_local != NULL) {
        st = c->vt->receive_local((ax_actor_t *)c, &msg);
    } else {
        ax_dead_letter(c->sys, &msg, AX_ETYPE, (ax_ref_t){c, msg->to});
        return;
    }
    if (msg != NULL)
        ax_msg_release(&msg);
    ax__stat_inc(&w->delivered);
    (void)st;
}

bool ax__cell_run(ax__worker_t *w, ax__cell_t *c)
{
    unsigned budget = c->sys->cfg.throughput;
    uint64_t id = ax__cell_id(c);

    for (unsigned n = 0; n < budget;) {
        ax_msg_link_t *l;
        ax_msg_t *msg;

        /* Control goes before the next user message. */
        if ((ck_pr_load_64(&c->word) & AX__W_REQUESTS) && !control(c))
            return false;
        l = ax__mbox_pop(c);
        if (l == NULL) {
            if (!(ck_pr_load_32(&c->lflags) & AX__L_STOPPING))
                break;
            if (!mailbox_drained(c))
                return true; /* a push is in flight: come back for it */
            finish_stop(c);
            return false;
        }
        msg = (ax_msg_t *)l;
        if (msg->to != id) {
            /* Sent to an earlier actor that used this cell. */
            ax_dead_letter(c->sys, &msg, AX_ECLOSED, (ax_ref_t){c, msg->to});
            continue;
        }
        deliver(w, c, msg);
        n++;
    }
    /* Out of budget while stopping: never go idle. The actor is sealed, so
     * no push would wake it again to finish the stop; stay scheduled and
     * the next run handles the rest or ends it. */
    if (ck_pr_load_32(&c->lflags) & AX__L_STOPPING)
        return true;
    if (!ax__mbox_try_idle(c))
        return true;
    /* Idle now, and possibly already scheduled by a sender elsewhere:
     * only a successful wake makes c ours again. */
    return (ck_pr_load_64(&c->word) & AX__W_REQUESTS) && ax__mbox_try_wake(c);
}

/* ---- system-wide passes --------------------------------------------- */

static void stop_if_live(ax__cell_t *c, void *arg)
{
    uint64_t w = ck_pr_load_64(&c->word);

    (void)arg;
    if (w != 0 && !(w & AX__W_ENDED))
        ax_stop((ax_ref_t){c, w >> AX__W_ID_SHIFT});
}

void ax__stop_all(ax_system_t *sys)
{
    ax__slab_each(&sys->slabs, stop_if_live, NULL);
}

static void drain_cell(ax__cell_t *c, void *arg)
{
    (void)arg;
    dead_letter_rest(c, AX_ECLOSED);
}

void ax__drain_all(ax_system_t *sys)
{
    ax__slab_each(&sys->slabs, drain_cell, NULL);
}
