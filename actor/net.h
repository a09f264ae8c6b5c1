/*
 * The actor module's interface for the network (dispatch/): remote refs,
 * and the hooks through which remote sends leave the system. actor/ calls
 * these hooks and never includes dispatch/.
 */
#ifndef AXON_ACTOR_NET_H
#define AXON_ACTOR_NET_H

#include "actor/cell.h"
#include "axon/actor.h"

/* The target of a remote ref: interned once per system and path, freed
 * with the system, so a remote ref is as cheap to copy as a local one. */
typedef struct ax__remote_s {
    ax_path_t path;
    ax_system_t *sys;
    void *peer; /* the network's per-peer state, set by the network thread */
} ax__remote_t;

typedef struct ax__net_ops_s {
    /* An encoded Data frame for dst. AX_OK takes *frame. */
    ax_status_t (*send_frame)(void *ctx, ax__remote_t *dst, ax_lease_t *frame);
    /* A message to serialise lazily for dst. AX_OK takes *msg. */
    ax_status_t (*send_lazy)(void *ctx, ax__remote_t *dst, ax_msg_t **msg, ax_ref_t from);
} ax__net_ops_t;

/* Install (or with NULL remove) the network of sys. */
void ax__system_set_net(ax_system_t *sys, const ax__net_ops_t *ops, void *ctx);

/* Set the port of the system's address once the listener is bound. */
void ax__system_set_port(ax_system_t *sys, uint16_t port);

/* The remote target for path (created on first use). */
ax_status_t ax__remote_intern(ax_system_t *sys, const ax_path_t *path, ax__remote_t **out);

/* The unique path of a local actor (made findable by id from then on). */
ax_status_t ax__local_path(ax__cell_t *c, uint64_t id, ax_path_t *out);

/* ax_tell for a ref that is not a local actor. */
ax_status_t ax__tell_remote(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);

/* The remote target of a ref, or NULL for other refs. */
ax__remote_t *ax__remote_of(ax_ref_t ref);

/* Deliver a received Data frame to the local actor its envelope names,
 * as a NetMessage. Takes *frame on every status. When no live actor has
 * that id or name the frame is released and AX_ENOTFOUND returned (the
 * sending system learns of it by a Status frame); AX_EPROTO for a
 * malformed envelope. */
ax_status_t ax__deliver_frame(ax_system_t *sys, ax_lease_t *frame, uint64_t session);

#endif
