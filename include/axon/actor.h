/*
 * axon/actor.h: systems, actors, tell and lanes, names, dead letters,
 * supervision, timers, ask, eager serialisation, paths and refs. Messages
 * and message pools are in axon/message.h, networking in axon/net.h.
 *
 * An actor is a struct whose first member is an ax_actor_t, described by a
 * const ax_actor_vtable_t. The runtime allocates vtable->size bytes for it
 * (cache-line aligned, zeroed, mailbox included), calls init, and from then
 * on runs its handlers on the system's worker threads, one message at a
 * time: an actor's handlers never run concurrently with each other, so its
 * state needs no locks.
 *
 * Calls marked "call from self's handlers" (ax_spawn_child, ax_spawn_opts
 * with a parent, ax_fail, the timer calls, ax_actor_init_buffers,
 * ax_actor_buffer_stats, ax_tell_serialised, ax_ask_serialised,
 * ax_preserialise, ax_tell_preserialised) work on the actor's private parts: they accept
 * only the thread running self's code (a handler, a hook, or init) and
 * return AX_ESTATE anywhere else, changing nothing. Calls marked "not on a
 * worker thread" return AX_ESTATE on one of the system's workers.
 *
 * Handlers must not block or wait in a loop (for a reply, a lock held
 * elsewhere, a full pool): the actor a handler wakes runs next on the same
 * worker, after the handler returns. To try again later, send yourself a
 * message or set a timer. While every worker is parked, the network thread
 * may run the handlers of actors it delivers to (config.h,
 * network.run_actors_us): a handler that blocks there holds every
 * connection of the system. Calls marked "not on a worker thread" treat
 * the network thread as a worker while it runs a handler.
 *
 *     typedef struct counter { ax_actor_t actor; uint64_t total; } counter_t;
 *
 *     static ax_status_t counter_receive(ax_actor_t *self, ax_msg_t **msg)
 *     {
 *         ((counter_t *)self)->total += ((add_t *)*msg)->amount;
 *         return AX_OK;              // *msg is released by the runtime
 *     }
 *
 *     static const ax_actor_vtable_t counter_vtable = {
 *         .name = "counter", .size = sizeof(counter_t),
 *         .receive_local = counter_receive,
 *     };
 *
 *     ax_system_t *sys;  ax_ref_t c;  ax_msg_t *m;
 *     ax_system_create(NULL, &sys);
 *     ax_spawn(sys, &counter_vtable, NULL, &c);
 *     ax_msg_alloc(&add_type, &m);  ((add_t *)m)->amount = 2;
 *     ax_tell(c, &m, AX_REF_NULL);   // m is NULL now: the runtime owns it
 *     ...
 *     ax_system_shutdown(sys); ax_system_await_termination(sys); ax_system_destroy(&sys);
 *
 * Lifecycle of an actor
 *   created   ax_create: init(self, arg) has run on the caller's thread.
 *             Messages sent now wait in the mailbox.
 *   running   ax_start: on_start runs on a worker, before any message.
 *   stopping  ax_stop (graceful): the actor stops accepting messages before
 *             its next message is handled. Every message already in its
 *             mailbox at that moment is still handled, in order; then its
 *             children are told to stop, on_stop runs, and the actor ends.
 *             A message that arrives after that moment goes to dead
 *             letters with AX_ECLOSED.
 *   killed    ax_kill (immediate): takes effect before the next message.
 *             on_kill runs (on_stop does not), children are killed, and
 *             every message still in the mailbox goes to dead letters with
 *             AX_ECLOSED.
 *   ended     destroy(self) runs, the actor's name is released and its
 *             memory is recycled. Its refs stay safe: messages sent through
 *             them go to dead letters.
 * Control (start, stop, kill) always goes before user messages. An actor
 * stops itself with ax_stop(ax_self(self)) from a handler; the current
 * handler finishes first. Stopping or killing a created actor that was
 * never started ends it without on_start/on_stop/on_kill.
 *
 * Children: ax_spawn_child makes the new actor a child of self. When a
 * parent stops, each child is told to stop (gracefully); when a parent is
 * killed, each child is killed. The parent does not wait for its children
 * to end.
 */
#ifndef AXON_ACTOR_H
#define AXON_ACTOR_H

#include "axon/api.h"

#include <stddef.h>
#include <stdint.h>

#include "axon/buffers.h"
#include "axon/message.h"
#include "axon/status.h"

/* Declared here, defined in axon/serial.h: this header does not include
 * serial.h, which pulls <msgpack.h> and with it the socket headers. Include
 * axon/serial.h to build paths, read NetMessages or serialise. */
typedef struct ax_addr_s ax_addr_t;
typedef struct ax_path_s ax_path_t;
typedef struct ax_net_msg_s ax_net_msg_t;

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_system_s ax_system_t;
typedef struct ax_config_s ax_config_t;

/* The runtime's part of an actor, 112 bytes. Only the runtime reads or
 * writes it. */
typedef struct ax_actor_s {
    uint64_t opaque_[14];
} ax_actor_t;

typedef struct ax_actor_vtable_s {
    const char *name;   /* for diagnostics */
    size_t size;        /* sizeof the user struct, >= sizeof(ax_actor_t) */

    /* Called by ax_create on the caller's thread with the arg given there.
     * A status other than AX_OK makes ax_create fail with it (destroy is
     * then called and the actor never exists). Optional. */
    ax_status_t (*init)(ax_actor_t *self, void *arg);
    /* On a worker, before the first message. Optional. */
    void (*on_start)(ax_actor_t *self);
    /* After a graceful stop has handled the mailbox. Optional. */
    void (*on_stop)(ax_actor_t *self);
    /* When killed. Optional. */
    void (*on_kill)(ax_actor_t *self);
    /*
     * A local message. The handler owns *msg: it may keep it or pass it on
     * (ax_tell(dst, msg, ...) sets *msg to NULL on success), or leave it,
     * and the runtime releases a non-NULL *msg when the handler returns.
     * Return AX_OK; another status marks the actor as failed.
     */
    ax_status_t (*receive_local)(ax_actor_t *self, ax_msg_t **msg);
    /* A serialised message (axon/serial.h), with the same ownership rule.
     * An actor without the handler a message needs (a NetMessage and no
     * receive_network, or the reverse) sends it to dead letters with
     * AX_ETYPE. */
    ax_status_t (*receive_network)(ax_actor_t *self, ax_net_msg_t **nm);
    /* Last call: free what the actor owns (not the actor itself). Runs on
     * the thread that ends the actor, and before a restart. Optional. */
    void (*destroy)(ax_actor_t *self);
    /* Mailbox lanes, in priority order (0 and 1 both mean one lane); at
     * most AX_MAX_LANES. See ax_tell_lane. */
    unsigned lanes;
    /* A bounded mailbox: at most this many messages sent with ax_tell,
     * ax_tell_lane or ax_ask (or from the network) wait in it; one more
     * is refused with AX_EFULL and stays with its sender. A message
     * counts until the worker takes it from the mailbox (an actor with
     * lanes takes up to 4096 at a time into its lanes). Timer messages,
     * ask results and child events are never refused. 0: unbounded, and
     * no count is kept. See ax_mailbox_stats. */
    uint32_t mailbox_capacity;
} ax_actor_vtable_t;

#define AX_MAX_LANES 8

/* ------------------------------------------------------------------ */
/* Systems                                                             */
/* ------------------------------------------------------------------ */

typedef struct ax_system_stats_s {
    uint64_t delivered;    /* messages handed to a handler */
    uint64_t dead_letters; /* messages that went to dead letters */
    uint64_t actors_alive; /* created and not yet ended */
    uint64_t steals;       /* actors a worker took from another's queue */
    uint64_t parks;        /* times a worker went to sleep */
    uint64_t failures;     /* actors that failed (a handler's error, ax_fail) */
    uint64_t restarts;     /* actors restarted by their policy */
    /*
     * Memory the runtime holds for actor cells, timer records and ask
     * slots, in bytes. None of them shrinks while the system lives: an
     * ended actor's cell, a finished timer's record and a completed ask's
     * slot are recycled for the next one, never returned, so that a stale
     * ref or id always lands on memory that says it is stale. Each value is
     * therefore also its high-water mark: what the busiest moment needed,
     * held until ax_system_destroy.
     */
    uint64_t cell_bytes;
    uint64_t timer_bytes;
    uint64_t ask_bytes;
    uint64_t lost_notices; /* runtime notices not sent for want of memory: child
                              events (a parent's ended or failed child, an
                              escalation), ask results to an asking actor; and
                              dead letters that reached the counter but not the
                              dead-letter actor (no memory for the wrapper, or
                              the actor refused it: a full bounded mailbox) */
    /* Remote entries (the targets of remote refs): how many paths are
     * kept, their memory (slots, path bytes, index; slots, like cells, are
     * not returned) and how many were evicted for newer paths, at most
     * network.max_remote_refs at once (see ax_ref_from_path). */
    uint64_t remote_refs;
    uint64_t remote_bytes;
    uint64_t remote_evicted;
} ax_system_stats_t;

/* Create a system and start its workers. cfg may be NULL for the defaults
 * (axon/config.h); it is copied. Several systems may live in one process.
 * On AX_OK *out is the caller's, freed with ax_system_destroy; on failure
 * (AX_EINVAL for a config that fails validation, AX_ENOMEM, ...) nothing
 * is made and *out is unchanged. */
AX_API ax_status_t ax_system_create(const ax_config_t *cfg, ax_system_t **out);

/* Ask every actor to stop (gracefully, as ax_stop) and refuse new actors
 * (AX_ESHUTDOWN). Returns at once; any thread, including a worker. */
AX_API void ax_system_shutdown(ax_system_t *sys);

/* Wait until every actor has ended and the workers have exited. Call from a
 * thread that is not one of sys's workers, after ax_system_shutdown. */
AX_API ax_status_t ax_system_await_termination(ax_system_t *sys);

/* Free the system. If it was not shut down and awaited, this does both.
 * Messages still anywhere in the system are released. Every ref into the
 * system becomes invalid. Sets *sys to NULL. Call from a thread that is
 * not one of sys's workers: from a handler or hook of one of its actors
 * (or while the destroy is under way, from an actor's destroy) it returns
 * AX_ESTATE and changes nothing. AX_OK for a NULL system. */
AX_API ax_status_t ax_system_destroy(ax_system_t **sys);

/* Counters summed over the workers now. Any thread. */
AX_API void ax_system_stats(ax_system_t *sys, ax_system_stats_t *out);

/* Number of worker threads. */
AX_API unsigned ax_system_workers(const ax_system_t *sys);

/* A bounded mailbox, now: its capacity, the messages waiting in it, and
 * the most that ever waited (the high-water mark). */
typedef struct ax_mailbox_stats_s {
    uint32_t capacity;
    uint32_t queued;
    uint32_t high_water;
} ax_mailbox_stats_t;

/* The mailbox of the live local actor ref names. AX_ENOTFOUND when it has
 * ended, AX_EINVAL for a ref that is not a local actor's, AX_ESTATE for an
 * unbounded mailbox (it keeps no count). Any thread. */
AX_API ax_status_t ax_mailbox_stats(ax_ref_t ref, ax_mailbox_stats_t *out);

/* ------------------------------------------------------------------ */
/* Actors                                                              */
/* ------------------------------------------------------------------ */

/*
 * Create an actor (its parent is the system) without starting it. On
 * success *ref is its ref. AX_EINVAL for a bad vtable (size smaller than
 * ax_actor_t, no receive handler), AX_ESHUTDOWN after shutdown, AX_ENOMEM,
 * or the status init returned.
 */
AX_API ax_status_t ax_create(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref);

/* Start a created actor. AX_ESTATE if it was already started or stopped,
 * AX_ENOTFOUND if ref is not a live local actor. */
AX_API ax_status_t ax_start(ax_ref_t ref);

/* ax_create then ax_start. A failure of ax_create makes no actor. When a
 * shutdown stopped the new actor between the two, AX_ESHUTDOWN comes with
 * *ref set all the same: the actor exists, never starts (no on_start) and
 * ends by itself (destroy runs); its ref is good for nothing more. */
AX_API ax_status_t ax_spawn(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref);

/* ax_spawn with self as the parent. Call from self's handlers. */
AX_API ax_status_t ax_spawn_child(ax_actor_t *self, const ax_actor_vtable_t *vt, void *arg, ax_ref_t *ref);

/* Graceful and immediate stop, as described at the top. AX_ENOTFOUND when
 * the actor has already ended (nothing to do); AX_OK otherwise, including
 * when a stop is already under way. Any thread. */
AX_API ax_status_t ax_stop(ax_ref_t ref);
AX_API ax_status_t ax_kill(ax_ref_t ref);

/* The ref of the running actor, its system, and its id (unique within the
 * system, never reused). */
AX_API ax_ref_t ax_self(const ax_actor_t *self);
AX_API ax_system_t *ax_actor_system(const ax_actor_t *self);
AX_API uint64_t ax_ref_id(ax_ref_t ref);

/* ------------------------------------------------------------------ */
/* Tell                                                                */
/* ------------------------------------------------------------------ */

/*
 * Send *msg to dst, from `from` (AX_REF_NULL outside an actor). A local
 * actor receives the pointer itself: no copy, one atomic exchange.
 *
 * From a handler (or a hook, or init), once a tell finds a local actor's
 * mailbox already holding messages, the next tells to that actor may be
 * held and handed over together, in one exchange: at the latest when the
 * handler returns, and always before the handler's next send to another
 * actor, ax_stop, ax_kill, ax_start, spawn, ax_register, ax_unregister or
 * ax_system_shutdown. So messages still arrive in the order they were
 * sent, and nothing the handler does after a tell overtakes it; a busy
 * receiver only gets some of them a little later. A bounded mailbox is
 * never held for: its AX_EFULL comes at the tell. (Do not block in a
 * handler: held tells wait for it.)
 *
 * AX_OK: the runtime owns the message and *msg is NULL. If dst has ended,
 * or ends before handling it, the message goes to dead letters with
 * AX_ECLOSED (also after a shutdown). Any other status: nothing was sent
 * and the caller still owns *msg: AX_EINVAL (NULL msg, null ref, a type
 * without a serialiser for a remote ref), AX_ENOTFOUND (a remote ref in a
 * system without a network, or one that expired: see ax_ref_from_path),
 * AX_ENOBUFS (network.dispatch_queue is full, axon/net.h), AX_EFULL (dst's
 * bounded mailbox is full: try again later, from a timer or a
 * self-message, never in a loop in a handler). A remote actor's full
 * mailbox sends the message to dead letters with AX_EFULL, on this side.
 */
AX_API ax_status_t ax_tell(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from);

/*
 * ax_tell into one of dst's lanes (lane 0 is what ax_tell uses). The
 * worker serves lane 0 first, then 1, 2, ...; but every 8th message it
 * takes one from the next non-empty lower lane in turn (1, 2, ..., K-1, 1,
 * ...), so under any flood each non-empty lane gets at least one message
 * in every 8 * (K - 1). Order is FIFO within a lane. A lane beyond dst's
 * count is AX_EINVAL (the caller keeps the message). Local actors only.
 */
AX_API ax_status_t ax_tell_lane(ax_ref_t dst, unsigned lane, ax_msg_t **msg, ax_ref_t from);

/* ------------------------------------------------------------------ */
/* Supervision                                                         */
/* ------------------------------------------------------------------ */

/*
 * An actor fails when a handler returns a status other than AX_OK, or
 * when it calls ax_fail(). The failure takes effect when the handler
 * returns. Its supervisor (its parent, or the system for a top-level
 * actor) is told with an ax_child_event_t, and the actor's restart policy
 * decides what happens:
 *   AX_RESTART_NEVER    the actor ends: on_stop and on_kill do not run,
 *                       destroy does, its children are killed, and the
 *                       messages in its mailbox go to dead letters with
 *                       AX_EFAILED.
 *   AX_RESTART_BACKOFF  after a delay (backoff_initial_ns, doubled for each
 *                       further restart in the window, at most
 *                       backoff_max_ns) the actor restarts: destroy runs,
 *                       its memory past ax_actor_t is zeroed, init runs
 *                       again with the original arg, then on_start. The
 *                       ref stays valid (same actor, same id), and the
 *                       messages queued at the failure, and those that
 *                       arrive during the delay, are handled by the
 *                       restarted actor. The message being handled when it
 *                       failed is not redelivered. A failure beyond
 *                       max_restarts within window_ns escalates: the actor
 *                       ends as with AX_RESTART_NEVER, and its parent
 *                       fails in turn with AX_EFAILED (a top-level actor
 *                       just ends).
 * A stop or kill requested while a restart is pending ends the actor at
 * once, without restarting it (its queued messages go to dead letters
 * with AX_ECLOSED). A restart ends the failed incarnation's timers. During
 * a system shutdown a failed actor is not restarted.
 */
typedef enum ax_restart_mode_e {
    AX_RESTART_NEVER = 0,
    AX_RESTART_BACKOFF = 1,
} ax_restart_mode_t;

typedef struct ax_restart_policy_s {
    ax_restart_mode_t mode;
    uint32_t max_restarts;       /* restarts allowed within window_ns */
    uint64_t window_ns;
    uint64_t backoff_initial_ns;
    uint64_t backoff_max_ns;
} ax_restart_policy_t;

typedef struct ax_spawn_opts_s {
    ax_actor_t *parent;          /* NULL: the system is the parent */
    ax_restart_policy_t restart; /* zero: AX_RESTART_NEVER */
} ax_spawn_opts_t;

/* ax_spawn with options. A parent must be the calling actor itself (call
 * from its handlers). */
AX_API ax_status_t ax_spawn_opts(ax_system_t *sys, const ax_actor_vtable_t *vt, void *arg,
                          const ax_spawn_opts_t *opts, ax_ref_t *ref);

/* Mark self as failed with status (AX_OK means AX_EFAILED); see above.
 * Call from self's handlers: AX_ESTATE on a thread that is not running
 * self (nothing is marked). */
AX_API ax_status_t ax_fail(ax_actor_t *self, ax_status_t status);

/* The system guardian supervises top-level actors: it applies their
 * policy and counts their failures (ax_system_stats). With a guardian
 * actor installed, it also sends that actor the ax_child_event_t of every
 * top-level actor (failed and ended), as a parent would get them.
 * AX_REF_NULL removes it. */
AX_API void ax_set_guardian_actor(ax_system_t *sys, ax_ref_t ref);

typedef enum ax_child_event_kind_e {
    AX_CHILD_FAILED = 1, /* it failed; action says what happens next */
    AX_CHILD_ENDED = 2,  /* it ended (stopped, killed, or failed for good) */
} ax_child_event_kind_t;

typedef enum ax_supervision_action_e {
    AX_SUPERVISE_NONE = 0,     /* (for AX_CHILD_ENDED) */
    AX_SUPERVISE_RESTART = 1,  /* it restarts after its back-off */
    AX_SUPERVISE_STOP = 2,     /* it ends */
    AX_SUPERVISE_ESCALATE = 3, /* it ends and the receiving parent fails */
} ax_supervision_action_t;

/* What a parent receives through receive_local about its children. */
typedef struct ax_child_event_s {
    ax_msg_t hdr;
    ax_child_event_kind_t kind;
    ax_ref_t child;
    ax_status_t status;             /* why it failed (AX_CHILD_FAILED) */
    ax_supervision_action_t action;
    uint32_t restarts;              /* restarts within the current window */
} ax_child_event_t;

AX_API extern const ax_msg_type_t ax_child_event_type;

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

/* Durations are in nanoseconds. */
#define AX_MS(ms) ((uint64_t)(ms) * 1000000u)
#define AX_US(us) ((uint64_t)(us) * 1000u)

/* A timer's id: 0 is never a timer. */
typedef uint64_t ax_timer_t;

/*
 * Deliver *msg to self after delay (once), or after delay and then every
 * period (periodic), as an ordinary message through receive_local. Takes
 * *msg on AX_OK. A timer never fires early; it is late by at most a tick
 * (timer_tick_us) plus scheduling delay. A periodic timer's due times are
 * delay + k * period from now (no drift); it sends the same message each
 * time, which the handler must not keep (if it does, the timer ends), and
 * a period whose previous message is still queued or being handled is
 * skipped. When self ends, its timers end and their messages are
 * released. Call from self's handlers. AX_ESHUTDOWN after shutdown; on
 * any status but AX_OK the caller keeps *msg.
 * *timer receives the timer's id, for ax_cancel_timer; timer may be NULL
 * when the timer will not be cancelled.
 */
AX_API ax_status_t ax_schedule_once(ax_actor_t *self, uint64_t delay_ns, ax_msg_t **msg, ax_timer_t *timer);
AX_API ax_status_t ax_schedule_periodic(ax_actor_t *self, uint64_t delay_ns, uint64_t period_ns,
                                 ax_msg_t **msg, ax_timer_t *timer);

/* Cancel one of self's timers. Its message is not delivered after this
 * returns, even if it was queued already. AX_ENOTFOUND when a one-shot
 * timer has fired (its message was handled) or the id is not live. */
AX_API ax_status_t ax_cancel_timer(ax_actor_t *self, ax_timer_t timer);

/* ------------------------------------------------------------------ */
/* Ask                                                                 */
/* ------------------------------------------------------------------ */

/*
 * Ask: send *msg to dst with a one-shot reply slot as its sender. The
 * receiver answers with ax_reply(). The future completes with the reply,
 * with AX_ETIMEDOUT once timeout_ns has passed (0: no timeout), or with
 * the status of a failed delivery (AX_ECLOSED when dst has ended). A reply
 * that comes after the future completed goes to dead letters; a slot is
 * never reused for a later ask while a reply could still find it.
 *
 * Called from a handler, the result arrives as an ax_ask_result_t message
 * to the asking actor (never wait on a worker). From any other thread,
 * wait with ax_future_wait. Either way the caller owns *future and
 * releases it with ax_future_release (before or after completion).
 * AX_OK takes *msg; otherwise the caller keeps it.
 */
typedef struct ax_future_s ax_future_t;

/* Ask dst, as described above; *future is the caller's on AX_OK. */
AX_API ax_status_t ax_ask(ax_ref_t dst, ax_msg_t **msg, uint64_t timeout_ns, ax_future_t **future);

/*
 * Ask eagerly: msg is serialised now into self's pool, as by
 * ax_tell_serialised, with the reply slot as its sender. Call from self's
 * handlers.
 * The caller keeps msg (it was copied into the frame). Statuses as for
 * ax_tell_serialised; the result arrives as for ax_ask. On AX_OK *future
 * is the caller's, to release with ax_future_release; on failure nothing
 * was sent and no future is made.
 *
 * Across systems, the reply slot travels as a unique path whose id is
 * 2^55 or above (docs/wire.md, 5.3): the replier answers it like any
 * sender (ax_reply, ax_net_msg_sender then ax_tell or
 * ax_tell_serialised). A failed delivery of the request (the remote actor
 * missing: AX_ENOTFOUND; the connection lost, also while the reply is
 * awaited: AX_ECLOSED; the peer unreachable: AX_ETIMEDOUT; a queue full:
 * AX_ENOBUFS) completes the future at once with that status.
 */
AX_API ax_status_t ax_ask_serialised(ax_actor_t *self, ax_ref_t dst, const ax_msg_type_t *type, const ax_msg_t *msg,
                              uint64_t timeout_ns, ax_future_t **future);

/* Answer an ask: send *reply to request's reply slot, from `from`. Takes
 * *reply on AX_OK (a reply to a completed ask goes to dead letters and is
 * AX_OK too); on any other status the caller keeps it. AX_EINVAL when
 * request was not sent by ax_ask. A request
 * that came from another system (a NetMessage) is answered over the
 * network, lazily; `from` (or the calling handler's actor) names the
 * system that answers. */
AX_API ax_status_t ax_reply(const ax_msg_t *request, ax_msg_t **reply, ax_ref_t from);

/* A number that identifies the future (in ax_ask_result_t). */
AX_API uint64_t ax_future_id(const ax_future_t *future);

/*
 * Wait up to timeout_ns (0: no limit) for the future. AX_OK gives the
 * reply in *reply, the caller's to release (once only: a later wait gives
 * AX_OK and NULL); otherwise *reply is NULL and the status is the one the
 * future completed with, or AX_ETIMEDOUT when the wait ran out first (the
 * future may still complete). AX_ESTATE on a worker thread (*reply is not
 * touched).
 */
AX_API ax_status_t ax_future_wait(ax_future_t *future, uint64_t timeout_ns, ax_msg_t **reply);

/* Release the future; sets *future to NULL. A reply not taken with
 * ax_future_wait is released with it, and so is one that arrives later
 * (from a handler's ask, the ax_ask_result_t is still sent). */
AX_API void ax_future_release(ax_future_t **future);

/* What an asking actor receives: the future's id, how it completed, and
 * the reply (owned by this message; take it by setting it to NULL). */
typedef struct ax_ask_result_s {
    ax_msg_t hdr;
    uint64_t future_id;
    ax_status_t status;
    ax_msg_t *reply;
} ax_ask_result_t;

AX_API extern const ax_msg_type_t ax_ask_result_type;

/*
 * Gather: wait until all n futures have completed or timeout_ns has
 * passed. *completed receives how many have. AX_OK when all did,
 * AX_ETIMEDOUT otherwise. Replies stay in the futures (ax_future_wait with
 * a 0 timeout then returns each at once). Not on a worker thread.
 */
AX_API ax_status_t ax_gather(ax_future_t *const *futures, size_t n, uint64_t timeout_ns, size_t *completed);

/* ------------------------------------------------------------------ */
/* Serialised messages (axon/serial.h)                                 */
/* ------------------------------------------------------------------ */

/*
 * When to use which send:
 *   ax_tell             by pointer. For a local actor nothing is copied or
 *                       encoded. For a remote ref the message is serialised
 *                       later, by the network dispatcher (lazy).
 *   ax_tell_serialised  encode now, on this actor's thread, into this
 *                       actor's own buffer pool (eager). The receiver gets
 *                       a NetMessage and decodes it when it wants to. Use it
 *                       to take encoding work off the dispatcher, to bound
 *                       an actor's outgoing memory with its own
 *                       BufferConfig, or when the payload is sent to many
 *                       (ax_preserialise).
 *
 * Why the arguments come in different orders: the calls follow two
 * families. Calls on refs, usable from any thread (ax_tell, ax_tell_lane,
 * ax_ask, ax_reply), put the destination first and the sender last,
 * because the sender is optional (AX_REF_NULL outside an actor). Calls
 * that work with an actor's own parts and may only run in its handlers
 * (ax_tell_serialised, ax_preserialise, ax_schedule_once, ax_spawn_child,
 * ...) take that actor, self, first: ax_tell_serialised encodes into
 * self's pool on self's thread, and self is also the sender. So
 * ax_tell(dst, &msg, from) and ax_tell_serialised(self, dst, type, msg)
 * differ on purpose; ax_tell also takes the message (ax_msg_t **), while
 * ax_tell_serialised only reads it (const ax_msg_t *) and needs its type.
 */

/* Register a serialisable type with the system: AX_EEXIST when another
 * type has its serialiser id, AX_EINVAL when it lacks a serialiser id,
 * serialise or deserialise. The system keeps the pointer, so type must
 * outlive it (a static const, as usual); registering it again is AX_OK.
 * The built-in types are registered already. */
AX_API ax_status_t ax_serialiser_register(ax_system_t *sys, const ax_msg_type_t *type);

/* The registered type of an id; AX_ENOTFOUND when there is none. */
AX_API ax_status_t ax_serialiser_lookup(ax_system_t *sys, uint64_t id, const ax_msg_type_t **type);

/*
 * Give self its own BufferConfig for ax_tell_serialised, normally in
 * on_start. cfg is copied; NULL means the system's buffer_config. The pool
 * is the actor's and ends with it. AX_ESTATE when the
 * actor's pool exists already (an earlier call, or a tell_serialised);
 * AX_EINVAL for a config that fails validation. Call from self's handlers.
 * Without it, the first tell_serialised creates the pool from the system
 * configuration (whose default is AX_BUFFER_CONFIG_DEFAULT with at most
 * 256 chunks, axon/config.h).
 */
AX_API ax_status_t ax_actor_init_buffers(ax_actor_t *self, const ax_buffer_config_t *cfg);

/* Stats of self's pool; AX_ENOTFOUND when it has none yet. Call from
 * self's handlers (AX_ESTATE elsewhere: the pool is the actor's own). */
AX_API ax_status_t ax_actor_buffer_stats(ax_actor_t *self, ax_buffer_pool_stats_t *out);

/* Give memory back after a burst: free up to `most` chunks of self's pool
 * that no message uses, while the pool holds more than its
 * initial_chunk_count (ax_buffer_pool_trim). *freed (may be NULL) says how
 * many. AX_ENOTFOUND when self has no pool yet. Call from self's handlers,
 * now and then (a periodic timer), a chunk or two at a time. */
AX_API ax_status_t ax_actor_trim_buffers(ax_actor_t *self, size_t most, size_t *freed);

/*
 * Serialise msg now into self's pool and send it to dst, from self. The
 * caller keeps msg (it is only read). A local dst receives a NetMessage
 * whose payload is still in self's chunk (no copy). AX_ENOBUFS when self's
 * pool is exhausted: nothing was sent; retry later, from a later message
 * or a timer (not by looping in the handler). AX_ETOOBIG when the frame
 * could never fit, even in the whole pool (chunk_size x max_chunk_count):
 * do not retry. A frame above the remote peer's frame limit (announced in
 * its Hello) goes to dead letters with AX_ETOOBIG instead, once; the
 * connection stays up. AX_EFULL when a local dst's bounded mailbox is
 * full: nothing was sent. AX_EINVAL for a type
 * without a serialiser. AX_ENOTFOUND for a remote dst when the system has
 * no network, or that expired (see ax_ref_from_path). A dst that has ended gets it as a dead letter (AX_OK).
 * Call from self's handlers.
 */
AX_API ax_status_t ax_tell_serialised(ax_actor_t *self, ax_ref_t dst, const ax_msg_type_t *type,
                               const ax_msg_t *msg);

/* A payload serialised once, to send to many; owned by the caller, and
 * kept in self's pool until released. */
typedef struct ax_preserialised_s ax_preserialised_t;

/* Serialise msg once into self's pool. On AX_OK *out is the caller's, to
 * send with ax_tell_preserialised and free with ax_preserialised_release
 * (from any thread); msg stays the caller's either way. Statuses as for
 * ax_tell_serialised (nothing is allocated on failure). Call from self's
 * handlers. */
AX_API ax_status_t ax_preserialise(ax_actor_t *self, const ax_msg_type_t *type, const ax_msg_t *msg,
                            ax_preserialised_t **out);

/* Send a preserialised payload to dst (each send writes only a frame head
 * into self's pool). Statuses as for ax_tell_serialised. */
AX_API ax_status_t ax_tell_preserialised(ax_actor_t *self, ax_ref_t dst, const ax_preserialised_t *shared);

/* Release a preserialised payload; sets *shared to NULL. Messages already
 * sent keep their own reference. */
AX_API void ax_preserialised_release(ax_preserialised_t **shared);

/* ------------------------------------------------------------------ */
/* Paths and refs                                                      */
/* ------------------------------------------------------------------ */

/* The system's own address: network.listen from its configuration, with
 * the bound port once the network runs. */
AX_API void ax_system_address(ax_system_t *sys, ax_addr_t *out);

/*
 * A ref for a path. A path with the system's own address resolves to the
 * local actor (which still receives by pointer): AX_ENOTFOUND when no live
 * actor has that id or name. Any other address gives a remote ref.
 *
 * Remote refs and memory. A system keeps one entry per remote path (about
 * 130 bytes), at most network.max_remote_refs of them (65536), so that
 * peers sending from ever new sender paths cannot grow its memory. When
 * the table is full, a new path takes the entry of one not used for a
 * while (a clock with a second chance: every send through a ref, and
 * every ax_ref_from_path or ax_net_msg_sender of its path, marks it used),
 * and refs to the path it held expire. What a user who stores a remote
 * ref (a sender's, say) can rely on:
 *  - A ref that is used, or whose path is asked for again, at least once
 *    while max_remote_refs other new paths arrive, never expires.
 *  - Messages on their way (queued for the dispatcher or for a connecting
 *    peer, being written) hold their entry: they are delivered, or dead-
 *    lettered with the ref they were sent to, whatever else arrives. If
 *    every entry is held that way, a new path gets AX_ENOBUFS.
 *  - An expired ref never reaches another path and never touches freed
 *    memory: ax_tell, ax_tell_serialised, ax_ask and ax_ref_path return
 *    AX_ENOTFOUND with a detail saying it expired, and the caller keeps
 *    its message. Get a new ref with ax_ref_from_path (keep the path, not
 *    only the ref, if a ref may sit unused for long). ax_ref_eq tells the
 *    new ref from the expired one.
 *  - Refs are not pinned by being stored: a ref is 16 bytes anyone may copy,
 *    so nothing could ever release it.
 * ax_system_stats reports the entries, their bytes and the evictions.
 */
AX_API ax_status_t ax_ref_from_path(ax_system_t *sys, const ax_path_t *path, ax_ref_t *out);

/* The unique path of a local actor, of an ask's reply slot, or the path
 * of a remote ref. AX_EINVAL for other refs; AX_ENOTFOUND for a remote ref
 * that expired (see ax_ref_from_path). */
AX_API ax_status_t ax_ref_path(ax_ref_t ref, ax_path_t *out);

/* A ref to a NetMessage's sender, to reply to: local or remote.
 * AX_ENOTFOUND when it was sent from outside any actor. A remote sender's
 * ref is an ordinary remote ref: stored and left unused, it can expire
 * (see ax_ref_from_path); ax_net_msg_sender_path gives the path to keep. */
AX_API ax_status_t ax_net_msg_sender(ax_actor_t *self, const ax_net_msg_t *nm, ax_ref_t *out);

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

/* Register a local actor under a name (copied; at most 255 bytes). The
 * name is released when the actor ends. AX_EEXIST if the name is taken or
 * the actor already has a name, AX_ENOTFOUND if the actor has ended. */
AX_API ax_status_t ax_register(ax_system_t *sys, ax_ref_t ref, const char *name);

/* AX_ENOTFOUND when no live actor has the name. */
AX_API ax_status_t ax_lookup(ax_system_t *sys, const char *name, ax_ref_t *ref);

/* Release a name early. AX_ENOTFOUND if it is not registered. */
AX_API ax_status_t ax_unregister(ax_system_t *sys, const char *name);

/* ------------------------------------------------------------------ */
/* Dead letters                                                        */
/* ------------------------------------------------------------------ */

/*
 * What a dead-letter actor receives: the undeliverable message (owned by
 * this wrapper and released with it), why, and for whom. Handlers may take
 * msg (set the field to NULL) to keep it.
 */
typedef struct ax_dead_letter_s {
    ax_msg_t hdr;
    ax_status_t status;
    ax_ref_t recipient;
    ax_msg_t *msg;
} ax_dead_letter_t;

AX_API extern const ax_msg_type_t ax_dead_letter_type;

/* Send every dead letter of sys to ref as an ax_dead_letter_t from now on;
 * AX_REF_NULL restores the default sink, which counts and releases. If the
 * dead-letter actor has ended, dead letters are counted and released. */
AX_API void ax_set_dead_letter_actor(ax_system_t *sys, ax_ref_t ref);

/* Hand a message the caller owns to dead letters; *msg becomes NULL. */
AX_API void ax_dead_letter(ax_system_t *sys, ax_msg_t **msg, ax_status_t why, ax_ref_t recipient);

#ifdef __cplusplus
}
#endif

#endif /* AXON_ACTOR_H */
