/*
 * axon/coro.h: coroutine actors. An actor whose body is one function
 * written as straight-line code: it waits for the next message, for the
 * reply to an ask, or for a delay, and the worker it runs on never waits.
 *
 *     static ax_status_t client(ax_coro_t *self, void *arg)
 *     {
 *         ax_msg_t *req, *reply, *msg;
 *         ax_status_t st;
 *
 *         ax_msg_alloc(&query_type, &req);
 *         st = ax_coro_ask(self, server, &req, AX_MS(500), &reply);
 *         if (st != AX_OK) {               // AX_ETIMEDOUT, AX_ECLOSED, ...
 *             ax_msg_release(&req);        // still ours if not sent, else NULL
 *             return st == AX_ECLOSED ? AX_OK : st;
 *         }
 *         ...
 *         while (ax_coro_receive(self, AX_MS(100), &msg) == AX_OK)
 *             ax_msg_release(&msg);
 *         ax_coro_sleep(self, AX_MS(10));
 *         return AX_OK;                    // the actor ends (as ax_stop)
 *     }
 *
 *     ax_spawn_coro(sys, NULL, client, NULL, &ref);
 *
 * How it works. A coroutine actor is an ordinary actor (same mailbox,
 * refs, names, supervision) whose handler resumes the function on its own
 * stack. Each ax_coro_* call below saves the function's registers and
 * returns to the worker (a suspension); the event it waits for arrives
 * as an ordinary message (the next mail, the ask's result, a timer's),
 * and the handler that receives it resumes the function, on whichever
 * worker runs the actor then. The function may therefore resume on
 * another thread than the one it suspended on: do not keep the address of
 * a thread-local variable (errno's included) across a suspension.
 *
 * Messages that arrive while the function waits for something else (an
 * ask's reply, a delay, another lane) are kept, in order, for its next
 * receive. A message the function receives is its own: release it or
 * pass it on. Everything else of axon/actor.h works from the function,
 * with ax_coro_actor(self) as the actor: ax_tell and ax_tell_serialised
 * (from ax_coro_ref(self)), ax_spawn_child, names, one-shot timers (their
 * message is received like any other), ax_fail. A periodic timer's
 * message is taken by the receive, so its timer ends after the first
 * tick (as when a handler keeps it): loop over ax_coro_sleep instead.
 *
 * Endings.
 *   - When the function returns AX_OK the actor ends as with ax_stop;
 *     mail still queued goes to dead letters with AX_ECLOSED. Any other
 *     status fails it (axon/actor.h, supervision): under a restart policy
 *     the function starts again from the top, on a fresh stack, with the
 *     messages that were queued.
 *   - ax_stop, ax_kill, a failure (ax_fail, which takes effect at the next
 *     suspension) and system shutdown end a suspended function this way:
 *     the call it waits in returns AX_ECLOSED, its pending ask is
 *     cancelled and its timer stopped, and from then on every ax_coro_*
 *     call returns AX_ECLOSED at once. The function must then release
 *     what it holds and return; its stack is freed when it does. (After a
 *     graceful ax_stop the mail already queued is still received first.)
 *
 * Stacks. Each coroutine has its own stack of opts.stack_size bytes
 * (default AX_CORO_STACK_DEFAULT, 64 KiB, rounded up to whole pages),
 * mapped with mmap and touched only as deep as the function goes, so an
 * idle coroutine costs the pages it used (a few KiB), not the whole size.
 * Below each stack lies a guard page: a function that overflows its stack
 * hits it and the process dies with SIGSEGV (there is no recovery). Size
 * stacks for the deepest call the function makes, Axon's own calls
 * included (a few KiB); large local arrays belong on the heap; sanitizer
 * builds need about twice the stack. Stacks of ended coroutines are kept
 * per worker for reuse.
 */
#ifndef AXON_CORO_H
#define AXON_CORO_H

#include <stddef.h>
#include <stdint.h>

#include "axon/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The coroutine actor, as its function sees it. */
typedef struct ax_coro_s ax_coro_t;

/* The body of a coroutine actor. arg is the one given to ax_spawn_coro,
 * again on every restart. AX_OK ends the actor; another status fails it. */
typedef ax_status_t (*ax_coro_fn_t)(ax_coro_t *self, void *arg);

#define AX_CORO_STACK_DEFAULT ((size_t)64 << 10)
#define AX_CORO_STACK_MIN ((size_t)16 << 10)
#define AX_CORO_STACK_MAX ((size_t)1 << 30)

typedef struct ax_coro_opts_s {
    ax_actor_t *parent;          /* NULL: the system; else the calling actor */
    ax_restart_policy_t restart; /* zero: AX_RESTART_NEVER */
    size_t stack_size;           /* 0: AX_CORO_STACK_DEFAULT */
    unsigned lanes;              /* mailbox lanes (ax_tell_lane); 0 or 1: one */
} ax_coro_opts_t;

/*
 * Spawn a coroutine actor running fn(self, arg) on the system's workers.
 * opts may be NULL for the defaults; it is copied. arg stays the caller's
 * (it must outlive the actor's restarts). The first stack is mapped here,
 * so AX_ENOMEM says at once when memory (or the process's map count) runs
 * out. AX_EINVAL for a NULL argument, a stack size outside
 * [AX_CORO_STACK_MIN, AX_CORO_STACK_MAX], more than AX_MAX_LANES lanes or
 * a bad restart policy; AX_ESHUTDOWN after shutdown. On AX_OK *ref is the
 * actor's ref.
 */
AX_API ax_status_t ax_spawn_coro(ax_system_t *sys, const ax_coro_opts_t *opts, ax_coro_fn_t fn, void *arg,
                          ax_ref_t *ref);

/* The coroutine as an actor (for the calls of axon/actor.h), and its ref. */
AX_API ax_actor_t *ax_coro_actor(ax_coro_t *self);
AX_API ax_ref_t ax_coro_ref(ax_coro_t *self);

/*
 * The calls below suspend. Each is for the coroutine's own function only
 * (AX_ESTATE from anywhere else), and each returns AX_ECLOSED when the
 * actor is ending (see the top).
 */

/*
 * Take the next message, local or from the network (a NetMessage, type
 * ax_net_msg_type), waiting at most timeout_ns (0: no limit). With lanes,
 * lane 0 first, then 1, and so on. AX_OK: *msg is the caller's.
 * AX_ETIMEDOUT when none came in time; on any status but AX_OK the caller
 * gets no message.
 */
AX_API ax_status_t ax_coro_receive(ax_coro_t *self, uint64_t timeout_ns, ax_msg_t **msg);

/* ax_coro_receive for one lane only (mail-select): messages of the other
 * lanes stay queued, in order. AX_EINVAL for a lane beyond the actor's. */
AX_API ax_status_t ax_coro_receive_lane(ax_coro_t *self, unsigned lane, uint64_t timeout_ns, ax_msg_t **msg);

/*
 * Ask dst (ax_ask, axon/actor.h) and wait for the reply, at most
 * timeout_ns (0: no limit). AX_OK gives the reply in *reply (the
 * caller's). Otherwise *reply is NULL and the status says why:
 * AX_ETIMEDOUT (a reply that comes later goes to dead letters), the
 * status of a failed delivery (AX_ECLOSED when dst has ended), or the
 * send's own error. Ownership of the request as everywhere: *msg is NULL
 * once it was sent, whatever the status (AX_ECLOSED while waiting too);
 * when it could not be (the send's error, or AX_ECLOSED at once for an
 * actor already ending), *msg is still the caller's.
 */
AX_API ax_status_t ax_coro_ask(ax_coro_t *self, ax_ref_t dst, ax_msg_t **msg, uint64_t timeout_ns,
                        ax_msg_t **reply);

/* Wait ns nanoseconds, never less (a timer: late by at most a tick). */
AX_API ax_status_t ax_coro_sleep(ax_coro_t *self, uint64_t ns);

/* Let the worker run other actors and this actor's queued mail in
 * between (a message to self: the coroutine resumes after the mail that
 * was already queued, which is kept for its receives). */
AX_API ax_status_t ax_coro_yield(ax_coro_t *self);

#ifdef __cplusplus
}
#endif

#endif /* AXON_CORO_H */
