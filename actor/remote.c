/* Paths and refs: the system address, local paths, remote refs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/net.h"
#include "actor/system.h"
#include "common/error.h"
#include "serial/frame.h"
#include "serial/netmsg.h"

/* The envelope of lazy sends (from ax_msg_alloc) ends: the messages it
 * still holds go (the others were serialised or dead-lettered), and so do
 * their pins on the destination. */
static void lazy_send_reset(ax_msg_t *m)
{
    ax__lazy_send_t *ls = (ax__lazy_send_t *)m, *more = ax__lazy_send_detach(ls);
    ax_msg_t *held;

    while ((held = ax__lazy_send_take(ls)) != NULL) {
        ax_msg_release(&held);
        ax__remote_unpin(ls->dst);
    }
    /* The rest of its batch, one by one (no recursion). */
    while (more != NULL) {
        ax__lazy_send_t *next = ax__lazy_send_detach(more);
        ax_msg_t *rest = &more->hdr;

        ax_msg_release(&rest);
        more = next;
    }
}

const ax_msg_type_t ax__lazy_send_type = {
    .name = "axon.lazy-send",
    .size = sizeof(ax__lazy_send_t),
    .reset = lazy_send_reset,
};

void ax_system_address(ax_system_t *sys, ax_addr_t *out)
{
    /* Published whole by ax__system_set_port: an acquire load sees it
     * (the fence makes the acquire explicit in every build). */
    const ax_addr_t *addr = ck_pr_load_ptr(&sys->addr);

    ck_pr_fence_acquire();
    *out = *addr;
}

void ax__system_set_port(ax_system_t *sys, uint16_t port)
{
    pthread_mutex_lock(&sys->remote_lock);
    /* Once per system: the network binds one listener. Readers holding
     * the first address keep a valid copy; the second is written whole
     * before the release store publishes it. */
    if (ck_pr_load_ptr(&sys->addr) == &sys->addr_initial) {
        sys->addr_bound = sys->addr_initial;
        sys->addr_bound.port = port;
        ck_pr_fence_release(); /* the copy above before the pointer to it */
        ck_pr_store_ptr(&sys->addr, &sys->addr_bound);
    }
    pthread_mutex_unlock(&sys->remote_lock);
}

ax_status_t ax__system_set_net(ax_system_t *sys, const ax__net_ops_t *ops, void *ctx)
{
    ax_status_t st = AX_OK;

    pthread_mutex_lock(&sys->remote_lock);
    if (sys->net_ops != NULL)
        st = ax__error(AX_ESTATE, "net: the network of this system is started already");
    else if (ck_pr_load_32(&sys->shutdown)) /* under the lock: a hint is enough */
        st = ax__error(AX_ESTATE, "net: the system is shutting down");
    if (st == AX_OK) {
        sys->net_ctx = ctx;
        /* Release: the context is written before the ops that lead to it. */
        ck_pr_fence_release();
        ck_pr_store_ptr(&sys->net_ops, ops);
    }
    pthread_mutex_unlock(&sys->remote_lock);
    return st;
}

void *ax__system_net(ax_system_t *sys)
{
    /* Acquire: the context was written before the ops were published. */
    const ax__net_ops_t *ops = ck_pr_load_ptr(&sys->net_ops);

    ck_pr_fence_acquire();
    return ops != NULL ? sys->net_ctx : NULL;
}

const ax_config_t *ax__system_config(ax_system_t *sys)
{
    return &sys->cfg;
}

ax_msg_pool_t *ax__system_netmsg_pool(ax_system_t *sys)
{
    return sys->netmsg_pool;
}

/* The unique path of a local actor, made findable by it. */
ax_status_t ax__local_path(ax__cell_t *c, uint64_t id, ax_path_t *out)
{
    uint64_t w = ck_pr_load_64(&c->word);
    ax_status_t st;

    /* Only the cell's current, live actor is published: a stale ref (its
     * actor ended, the cell may hold another actor now) would otherwise
     * set the new actor's flag and keep the new actor from ever being
     * published. A stale ref still gets its path. This first look is
     * relaxed: the or's barrier and the re-read below settle a race. */
    if ((w >> AX__W_ID_SHIFT) == id && !(w & AX__W_ENDED) &&
        !(ck_pr_load_32(&c->lflags) & AX__L_PUBLISHED)) {
        st = ax__registry_publish(&c->sys->registry, c, id);
        if (st != AX_OK)
            return st;
        ck_pr_or_32(&c->lflags, AX__L_PUBLISHED);
        /* Full barrier (the or above), paired with end_actor's: if the
         * actor ended meanwhile and missed our flag, we take it out. */
        w = ck_pr_load_64(&c->word);
        if ((w >> AX__W_ID_SHIFT) != id || (w & AX__W_ENDED))
            ax__registry_unpublish(&c->sys->registry, id);
    }
    ax_system_address(c->sys, &out->addr);
    out->kind = AX_PATH_UNIQUE;
    out->id = id;
    out->name_len = 0;
    out->name[0] = '\0';
    return AX_OK;
}

ax__remote_t *ax__remote_of(ax_ref_t ref)
{
    if (!ax__ref_is(ref, AX__REF_REMOTE))
        return NULL;
    return ref.target;
}

ax_status_t ax__net_msg_sender_ref(ax_system_t *sys, const ax_net_msg_t *nm, const ax_path_t *src,
                                   ax_ref_t *out)
{
    if (nm->via == 0)
        return ax_ref_from_path(sys, src, out);
    /* A CLIENT's path names an actor behind that connection, whatever its
     * address says: never one of ours, never another system's. */
    return ax__remote_intern_via(sys, src, nm->via, out);
}

static ax_status_t local_ref(ax_system_t *sys, const ax_path_t *path, ax_ref_t *out)
{
    ax__cell_t *c;
    char text[AX_PATH_STR_MAX];

    if (path->kind == AX_PATH_NAMED)
        return ax_lookup(sys, path->name, out);
    if (path->id & AX__ASK_ID_BIT)
        return ax__ask_ref_of_id(sys, path->id, out);
    c = ax__registry_cell(&sys->registry, path->id);
    /* A snapshot (relaxed): every use of the ref checks the word again. */
    if (c == NULL || ax__cell_id(c) != path->id || (ck_pr_load_64(&c->word) & AX__W_ENDED)) {
        ax_path_format(path, text, sizeof text);
        return ax__error(AX_ENOTFOUND, "ref_from_path: no live actor at %s", text);
    }
    *out = (ax_ref_t){c, path->id};
    return AX_OK;
}

ax_status_t ax_ref_from_path(ax_system_t *sys, const ax_path_t *path, ax_ref_t *out)
{
    ax_addr_t self;

    if (sys == NULL || path == NULL || out == NULL)
        return ax__error(AX_EINVAL, "ref_from_path: NULL argument");
    ax_system_address(sys, &self);
    if (ax_addr_eq(&self, &path->addr))
        return local_ref(sys, path, out);
    return ax__remote_intern(sys, path, out);
}

ax_status_t ax_ref_path(ax_ref_t ref, ax_path_t *out)
{
    if (out == NULL)
        return ax__error(AX_EINVAL, "ref_path: NULL out");
    if (ax__ref_is(ref, AX__REF_REMOTE))
        return ax__remote_path(ref, out);
    if (ax__ref_is(ref, AX__REF_REPLY)) {
        ax__ask_path(ref, out);
        return AX_OK;
    }
    if (!ax__ref_is(ref, AX__REF_LOCAL))
        return ax__error(AX_EINVAL, "ref_path: not an actor ref");
    return ax__local_path(ref.target, ref.id, out);
}

ax_status_t ax_net_msg_sender(ax_actor_t *self, const ax_net_msg_t *nm, ax_ref_t *out)
{
    ax_path_t src;
    ax_status_t st;

    if (self == NULL || nm == NULL || out == NULL)
        return ax__error(AX_EINVAL, "net_msg_sender: NULL argument");
    if (!ax_ref_is_null(nm->hdr.sender)) {
        *out = nm->hdr.sender;
        return AX_OK;
    }
    st = ax_net_msg_sender_path(nm, &src);
    return st == AX_OK ? ax__net_msg_sender_ref(ax_actor_system(self), nm, &src, out) : st;
}
