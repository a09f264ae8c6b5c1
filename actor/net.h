/*
 * The actor module's interface for the network (dispatch/): remote refs,
 * and the hooks through which remote sends leave the system. actor/ calls
 * these hooks and never includes dispatch/.
 */
#ifndef AXON_ACTOR_NET_H
#define AXON_ACTOR_NET_H

#include "actor/cell.h"
#include "axon/actor.h"
#include "serial/pathtab.h"

/*
 * The target of a remote ref: one entry per path, in a table of at most
 * network.max_remote_refs slots (actor/remote_table.c). A slot's memory
 * lives as long as the system, so a stale ref always lands on a slot;
 * the slot is recycled for another path when the table is full (clock
 * eviction), and its generation tells a stale ref from a current one.
 *
 * `word` holds the generation (high 32 bits, 30 of them used) and the
 * pins (low 32): a reader pins the entry (ax__remote_pin) before it reads
 * any field but `sys`, and an entry is evicted only by a CAS that finds no
 * pin, so nothing it reads can change or be freed under it. Messages in
 * flight hold a pin each (a lazy send, a NetMessage's route).
 */
typedef struct ax__remote_s {
    uint64_t word;              /* atomic: generation << 32 | pins */
    uint32_t used;              /* atomic: set by each use; the clock clears it */
    /* A reply slot of another system (docs/wire.md 5.3): one entry per
     * slot index, its path with generation 0; the generation travels in
     * each ref's id (low 32 bits), so that asks answered one after the
     * other do not each leave an entry behind. */
    bool reply_slot;
    ax_addr_t addr;             /* the path's system */
    ax_system_t *sys;           /* constant for the slot's life */
    /* Not 0: a sender path that came over a CLIENT connection (docs/wire.md
     * section 6, "Clients"), with the acceptor's id of that connection.
     * Frames to it go back over that connection, never by address; the
     * id is part of the entry's key, so two CLIENTs never share one. */
    uint64_t via;
    void *peer; /* the network's per-peer state, set by the network thread */
    struct ax__remote_key_s *key; /* the path's wire bytes; NULL when free */
} ax__remote_t;

/* The generation bits of a remote ref's id (bits 32 to 61). */
#define AX__REMOTE_GEN_MASK ((UINT32_C(1) << 30) - 1)

/* Pin the entry of remote ref `ref`, to read it or to hand it to a
 * message in flight. AX_ENOTFOUND, with a detail, when the ref expired
 * (its entry was evicted for another path); AX_EINVAL for other refs. */
ax_status_t ax__remote_pin(ax_ref_t ref, ax__remote_t **out);

/* Release a pin. */
void ax__remote_unpin(ax__remote_t *r);

/* Drop n pins at once (the network thread, for the frames of one write). */
void ax__remote_unpin_n(ax__remote_t *r, uint64_t n);

/* Add n pins to an entry the caller holds a pin on already (so it cannot
 * have expired): one atomic addition for the pins of a batch of lazy
 * sends to one destination. */
void ax__remote_pin_more(ax__remote_t *r, uint64_t n);

/* A current ref to pinned entry r (reply_gen: a reply slot's generation). */
ax_ref_t ax__remote_ref(const ax__remote_t *r, uint32_t reply_gen);

/* The wire bytes of a remote ref's path (its reply generation included),
 * copied under a pin. AX_ENOTFOUND when the ref expired. */
ax_status_t ax__remote_packed(ax_ref_t ref, ax__packed_path_t *out);

/* The same, for a caller that holds a pin on the entry the remote ref
 * names (a lazy send's envelope does): no pin of its own, and it cannot
 * fail. */
void ax__remote_packed_held(ax_ref_t ref, ax__packed_path_t *out);

/* For one of self's handlers, on its thread: true when self's mailbox
 * holds nothing more right now (no message, no push in flight, nothing in
 * its lanes), so that its run ends after this handler unless a message
 * comes meanwhile. The dispatcher hands its frames over then. */
bool ax__mailbox_drained(ax_actor_t *self);

/*
 * ax_tell for the dispatcher's mailbox (unbounded), deferred: called from an
 * actor's code (a handler, a hook, init), the message joins a chain that is
 * pushed in one exchange when that code returns, or at 32 messages, or
 * when the same thread sends, stops or starts anything else first (the
 * chain ax_tell uses for a busy mailbox, actor/actor_run.h). Messages
 * keep their order, and a send from a handler still leaves before the
 * handler's actor can run again, on this thread or another. From any other
 * thread it is ax_tell. Always AX_OK for a live or ended local dst (an ended
 * one gets dead letters, as with ax_tell); takes *msg.
 */
ax_status_t ax__tell_deferred(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);

/*
 * The last message of this thread's deferred chain (NULL when there is
 * none) and, in *gen, the number of chains this thread has handed over.
 * While both are what they were right after ax__tell_deferred took m, m
 * is still in the chain, last, and not yet in dst's mailbox: the caller
 * may still change it (the dispatcher's lazy sends add to it, below).
 */
ax_msg_t *ax__deferred_tail(uint64_t *gen);

/* Hand this thread's deferred chain over now, if there is one. */
void ax__deferred_hand_over(void);

/* Local pushes made by this thread (any thread; only workers read it):
 * the run loop charges an actor's sends to its run's budget (run.c).
 * Initial-exec: one fs-relative add per send, no __tls_get_addr. */
extern _Thread_local unsigned ax__tls_sends __attribute__((tls_model("initial-exec")));

/*
 * Lazy sends on their way to the dispatcher (dispatch/net.c), to one
 * destination: the user's messages, in the order they were sent, linked
 * through their own mailbox links (they are in no mailbox meanwhile), each
 * with its sender in its header and a pin on dst. Dead letters unwrap it:
 * the user's own messages reach them, never this envelope.
 *
 * The sender reserves pins and network.dispatch_queue units for a batch
 * in one atomic addition each (dispatch/net.c, net_send_lazy); what the
 * batch did not use rides in spare_pins and spare_credits. The spare pins
 * go with the last message taken out (ax__lazy_send_take), whoever takes
 * it; the dispatcher gives the spare units back.
 */
typedef struct ax__lazy_send_s {
    ax_msg_t hdr;
    ax__remote_t *dst; /* pinned once for each message still held, and
                          spare_pins times more */
    uint64_t dst_id; /* the remote ref's id (a reply slot's generation) */
    ax_msg_t *msg, *last; /* the first and last message held */
    uint32_t spare_pins;    /* pins on dst that no message holds */
    uint32_t spare_credits; /* a batch's first envelope: dispatch_queue
                               units reserved and not used */
    /* The lazy sends to other destinations made right after these by the
     * same code, in order, which travel with them (a batch: only its first
     * envelope goes through the dispatcher's mailbox). Releasing or
     * dead-lettering the first does the same to each of them. */
    struct ax__lazy_send_s *more;
} ax__lazy_send_t;

extern const ax_msg_type_t ax__lazy_send_type;

/* The rest of ls's batch, detached from it (NULL when ls travels alone):
 * each holder of a batch walks it this way. */
static inline ax__lazy_send_t *ax__lazy_send_detach(ax__lazy_send_t *ls)
{
    ax__lazy_send_t *more = ls->more;

    ls->more = NULL;
    return more;
}

/* The first message ls still holds, taken out of it with its pin on
 * ls->dst (the caller's to pass on or drop); NULL when none is left, and
 * then ls's spare pins are dropped. */
static inline ax_msg_t *ax__lazy_send_take(ax__lazy_send_t *ls)
{
    ax_msg_t *m = ls->msg;

    if (m != NULL) {
        ls->msg = (ax_msg_t *)(void *)m->link.next;
        m->link.next = NULL;
    } else if (ls->spare_pins != 0) {
        ax__remote_unpin_n(ls->dst, ls->spare_pins);
        ls->spare_pins = 0;
    }
    return m;
}

typedef struct ax__net_ops_s {
    /* An encoded Data frame for dst, as a NetMessage, sent by `from`.
     * Takes *nm and the caller's pin on dst always; one that cannot be sent goes to dead letters. It
     * travels behind the lazy sends made before it (FIFO per pair). */
    void (*send_frame)(void *ctx, ax__remote_t *dst, ax_net_msg_t **nm, ax_ref_t from);
    /* A message to serialise lazily for remote ref dst. It pins dst's
     * entry itself (AX_ENOTFOUND when the ref expired). AX_OK takes *msg;
     * any other status leaves it, and no pin, with the caller. */
    ax_status_t (*send_lazy)(void *ctx, ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);
    /* After the workers have exited: flush, say Bye, stop the thread. */
    void (*stop)(void *ctx);
    /* Free everything (the system is being destroyed). */
    void (*destroy)(void *ctx);
} ax__net_ops_t;

/* Stop ref after the user's actors at shutdown (actor/late.c): tier 0
 * for the dispatcher, 1 for the dead-letter actor (after it). */
void ax__late_mark(ax_ref_t ref, unsigned tier);

/* Install the network of sys; AX_ESTATE when one is installed already or
 * the system is shutting down. */
ax_status_t ax__system_set_net(ax_system_t *sys, const ax__net_ops_t *ops, void *ctx);

/* The installed network's context, or NULL. */
void *ax__system_net(ax_system_t *sys);

/* The system's configuration (read only) and its NetMessage pool. */
const ax_config_t *ax__system_config(ax_system_t *sys);
ax_msg_pool_t *ax__system_netmsg_pool(ax_system_t *sys);

/* Serialise msg into self's pool as a Data frame from `from` (a local
 * actor, or AX_REF_NULL) to dst, as a NetMessage (hdr.sender = from) the
 * caller then owns. dst_held: dst is a remote ref whose entry the caller
 * holds a pin on (ax__remote_pin), so its path is read without another.
 * lend: NULL, or where the caller's owned message (msg itself) is: a
 * large bytes or string body may then be lent to the frame instead of
 * copied (serial/frame.h, ax__frame_encode_data_lent), and *lend is set to
 * NULL when it was: the frame releases the message after its last write.
 * Otherwise, and on any failure, the caller keeps it. Statuses as for
 * ax_tell_serialised. */
ax_status_t ax__encode_net_msg(ax_actor_t *self, ax_ref_t dst, bool dst_held, ax_ref_t from,
                              const ax_msg_type_t *type, const ax_msg_t *msg, ax_msg_t **lend,
                              ax_net_msg_t **out);

/* ax__encode_net_msg, then route it like ax_tell_serialised. */
ax_status_t ax__tell_serialised_from(ax_actor_t *self, ax_ref_t dst, ax_ref_t from,
                                     const ax_msg_type_t *type, const ax_msg_t *msg);

/* Set the port of the system's address once the listener is bound. */
void ax__system_set_port(ax_system_t *sys, uint16_t port);

/* A ref to the remote entry for path (created on first use, evicting the
 * least recently used entry when the table is full). AX_ENOBUFS when every
 * entry is pinned by messages in flight. */
ax_status_t ax__remote_intern(ax_system_t *sys, const ax_path_t *path, ax_ref_t *out);

/* The same for a sender path that came over CLIENT connection `via` (not
 * 0): an entry of its own, bound to that connection. */
ax_status_t ax__remote_intern_via(ax_system_t *sys, const ax_path_t *path, uint64_t via, ax_ref_t *out);

/* The path of a remote ref, read under a pin. AX_ENOTFOUND when expired. */
ax_status_t ax__remote_path(ax_ref_t ref, ax_path_t *out);

/* The ref a NetMessage's sender path names for the actors of sys: for one
 * that came over a CLIENT connection (nm->via), a remote ref bound to that
 * connection whatever the path's address; otherwise ax_ref_from_path. */
ax_status_t ax__net_msg_sender_ref(ax_system_t *sys, const ax_net_msg_t *nm, const ax_path_t *src,
                                   ax_ref_t *out);

/* The unique path of a local actor (made findable by id from then on). */
ax_status_t ax__local_path(ax__cell_t *c, uint64_t id, ax_path_t *out);

/* Ask reply slots (ask.c). The wire path of a reply ref: a unique path
 * of this system whose id has AX__ASK_ID_BIT set. */
void ax__ask_path(ax_ref_t reply_to, ax_path_t *out);

/* The reply ref for such an id (any generation: a stale one leads to
 * dead letters). AX_ENOTFOUND when no slot has that index. */
ax_status_t ax__ask_ref_of_id(ax_system_t *sys, uint64_t id, ax_ref_t *out);

/* Whether the ask behind a reply ref still waits. */
bool ax__ask_pending(ax_ref_t reply_to);

/* An ask's request could not be delivered: complete it with why. */
void ax__ask_undelivered(ax_ref_t reply_to, ax_status_t why);

/* ax_tell for a ref that is not a local actor. */
ax_status_t ax__tell_remote(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);

/* The remote entry of a ref, or NULL for other refs. Not checked: read
 * only its `sys` (constant) without pinning it. */
ax__remote_t *ax__remote_of(ax_ref_t ref);

/* A connection's memory of where its last Data frame went: the receiver
 * path's wire bytes and the local actor they named. Zero-initialise. */
typedef struct ax__route_cache_s {
    ax__packed_path_t path;
    ax_ref_t ref;
    uint64_t epoch;      /* the registry's names epoch before ref was looked up */
    /* Path ids (docs/wire.md section 6.1): the table of the ids the peer
     * binds, when this side offered some (NULL: ids are malformed), and
     * whether a binding failed for want of memory (the connection must
     * end: the peer's later references could not be read). */
    uint32_t ids_n;      /* ids this side offered (0: none) */
    ax__pathtab_t *ids;  /* created at the first Data frame */
    bool ids_lost;
    /* The last envelope that came with references only: its bytes
     * (env_len 0: none yet), its view and its paths in full. A frame whose
     * envelope has the same bytes shares them: ids never change their
     * path on a connection (serial/pathtab.h). */
    uint8_t env_len;
    unsigned char env[16];
    ax__env_view_t view;
    uint16_t full_len;
    unsigned char full[AX__ENVELOPE_MAX];
} ax__route_cache_t;

/* Deliver a received Data frame to the local actor its envelope names,
 * as a NetMessage. AX_OK takes *frame. Otherwise *frame stays with the
 * caller: AX_ENOTFOUND when no live actor has that id or name, AX_EFULL
 * when that actor's bounded mailbox is full (for both, the network returns
 * the frame to its sender in a Status frame with that status, and the
 * sender dead-letters the message with it), AX_EPROTO for a malformed
 * envelope. via: the acceptor's id of the CLIENT connection it came over,
 * or 0 (ax_net_msg_t.via). */
ax_status_t ax__deliver_frame(ax_system_t *sys, ax_lease_t *frame, uint64_t session, uint64_t via,
                              ax__route_cache_t *cache);

#endif
