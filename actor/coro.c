/*
 * Coroutine actors (libmtev's ACO). A coroutine is an ordinary actor whose
 * handlers resume a function on its own stack. A suspension is a switch
 * back to the handler, which returns to the worker; what the function
 * waits for comes back as an ordinary message:
 *
 *   receive   the next message in the mailbox (a timeout is a one-shot
 *             timer with a wake message)
 *   ask       ax_ask from this actor: its ax_ask_result_t message
 *   sleep     a one-shot timer with a wake message
 *   yield     a wake message to self, behind the mail already queued
 *
 * Messages that arrive for something else than the current wait are kept
 * in the stash, in arrival order, for later receives. Every field below
 * is touched only by the thread that runs the actor (its handlers never
 * run concurrently), so none is atomic; the mailbox hand-off orders them
 * from one worker to the next.
 */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/ask.h"
#include "actor/coro_stack.h"
#include "actor/coro_switch.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "axon/coro.h"
#include "common/error.h"
#include "serial/netmsg.h"

enum phase {
    P_NEW,       /* never ran */
    P_RUNNING,   /* on its stack now */
    P_SUSPENDED, /* waiting (wait says for what) */
    P_DONE,      /* the function returned */
};

enum wait {
    W_NONE,
    W_RECEIVE, /* any message */
    W_LANE,    /* a message of wait_lane */
    W_ASK,     /* the result of the future whose id is token */
    W_SLEEP,   /* the wake message with token */
    W_YIELD,   /* the wake message with token */
};

/* What a coroutine was spawned with; kept across restarts (the runtime
 * calls init again with it) and freed when the actor ends for good. */
typedef struct coro_spec {
    ax_coro_fn_t fn;
    void *arg;
    size_t stack_usable;
    ax__stack_t first; /* mapped by ax_spawn_coro, taken by the first init */
} coro_spec_t;

struct ax_coro_s {
    ax_actor_t actor;
    coro_spec_t *spec;
    ax__stack_t stack;
    ax__fctx_t ctx;        /* the function, while suspended */
    ax__fctx_t back;       /* the handler that resumed it, while it runs */
    uint8_t phase, wait;
    bool ending;           /* the actor ends: calls return AX_ECLOSED */
    unsigned wait_lane;
    uint64_t token;        /* the current wait's wake token or future id */
    uint64_t next_token;
    ax_timer_t timer;      /* the current wait's timer, or 0 */
    ax_status_t wake_st;   /* what the resume says */
    ax_status_t result;    /* the function's return value */
    ax_msg_t *got;         /* what the resume hands over */
    ax_msg_link_t *stash_head, *stash_tail;
    ax_msg_t *spare;       /* a wake message to reuse */
#ifdef AX__CORO_ASAN
    void *asan_fake;              /* the function's fake stack, while away */
    const void *from_bottom;      /* the stack of the handler that resumed it */
    size_t from_size;
#endif
#ifdef AX__CORO_TSAN
    void *fiber, *caller;
#endif
};

/* A timer's or yield's wake-up; token tells a current wait from a stale one. */
typedef struct coro_wake {
    ax_msg_t hdr;
    uint64_t token;
} coro_wake_t;

static const ax_msg_type_t coro_wake_type = {
    .name = "axon.coro-wake",
    .size = sizeof(coro_wake_t),
};

static ax_coro_t *co_of(ax_actor_t *self)
{
    return (ax_coro_t *)(void *)self;
}

ax_actor_t *ax_coro_actor(ax_coro_t *self)
{
    return &self->actor;
}

ax_ref_t ax_coro_ref(ax_coro_t *self)
{
    return ax_self(&self->actor);
}

/* ---- switching ------------------------------------------------------------ */

/* On the coroutine's stack, right after a switch into it. */
static void arrived(ax_coro_t *co)
{
#ifdef AX__CORO_ASAN
    __sanitizer_finish_switch_fiber(co->asan_fake, &co->from_bottom, &co->from_size);
#else
    (void)co;
#endif
}

/* On the coroutine's stack, right before switching back; last: the
 * function has returned and its stack is about to go. A macro, not a
 * function: TSan's shadow call stack belongs to the fiber, so the fiber
 * must change in the frame that jumps, or the frames of a helper would
 * be entered on one fiber and left on the other. */
#ifdef AX__CORO_ASAN
#define LEAVE_ASAN(co, last) \
    __sanitizer_start_switch_fiber((last) ? NULL : &(co)->asan_fake, (co)->from_bottom, (co)->from_size)
#else
#define LEAVE_ASAN(co, last) ((void)(co), (void)(last))
#endif
#ifdef AX__CORO_TSAN
#define LEAVE_TSAN(co) __tsan_switch_to_fiber((co)->caller, 0)
#else
#define LEAVE_TSAN(co) ((void)(co))
#endif
#define LEAVING(co, last)        \
    do {                         \
        LEAVE_ASAN((co), (last)); \
        LEAVE_TSAN(co);          \
    } while (0)

static void coro_main(ax__transfer_t t)
{
    ax_coro_t *co = t.data;

    co->back = t.fctx;
    arrived(co);
    co->result = co->spec->fn(co, co->spec->arg);
    co->phase = P_DONE;
    LEAVING(co, true);
    jump_fcontext(co->back, NULL);
    /* Never resumed. */
}

/* On the handler's side: run the function until it suspends or returns. */
static void switch_in(ax_coro_t *co)
{
    ax__transfer_t t;
#ifdef AX__CORO_ASAN
    void *fake = NULL;
    size_t usable;
    const void *bottom = ax__stack_bottom(&co->stack, &usable);

    __sanitizer_start_switch_fiber(&fake, bottom, usable);
#endif
#ifdef AX__CORO_TSAN
    co->caller = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(co->fiber, 0);
#endif
    co->phase = P_RUNNING;
    t = jump_fcontext(co->ctx, co);
    co->ctx = t.fctx;
#ifdef AX__CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* On the coroutine's side: wait (co->wait is set) until a handler resumes
 * it; returns what the resume says. */
static ax_status_t suspend(ax_coro_t *co)
{
    ax__transfer_t t;

    co->phase = P_SUSPENDED;
    LEAVING(co, false);
    t = jump_fcontext(co->back, NULL);
    co->back = t.fctx;
    arrived(co);
    return co->wake_st;
}

static bool on_worker(ax_coro_t *co)
{
    return ax__current_worker(ax__cell(&co->actor)->sys) != NULL;
}

/* The function returned (or never ran): its stack and fiber go. */
static void release_stack(ax_coro_t *co)
{
#ifdef AX__CORO_TSAN
    if (co->fiber != NULL)
        __tsan_destroy_fiber(co->fiber);
    co->fiber = NULL;
#endif
    ax__stack_free(&co->stack, on_worker(co));
}

/* After a switch: when the function has returned, its stack goes, and
 * AX_OK ends the actor (as ax_stop); another status is the handler's, a
 * failure. (Unwound by an ending, the actor ends anyway.) */
static ax_status_t after_switch(ax_coro_t *co)
{
    if (co->phase != P_DONE)
        return AX_OK;
    release_stack(co);
    if (co->ending)
        return AX_OK;
    if (co->result == AX_OK)
        ax_stop(ax_self(&co->actor));
    return co->result;
}

/* Resume a suspended function with st and msg (handed over). */
static ax_status_t resume(ax_coro_t *co, ax_status_t st, ax_msg_t *msg)
{
    co->wait = W_NONE;
    co->wake_st = st;
    co->got = msg;
    switch_in(co);
    return after_switch(co);
}

/* ---- the stash ---------------------------------------------------------------- */

static unsigned lane_of(ax_coro_t *co, const ax_msg_t *m)
{
    unsigned lanes = ax__cell(&co->actor)->vt->lanes, lane = ax__to_lane(m->to);

    if (lanes <= 1)
        return 0;
    return lane < lanes ? lane : lanes - 1;
}

static void stash_put(ax_coro_t *co, ax_msg_t *m)
{
    m->link.next = NULL;
    if (co->stash_tail != NULL)
        co->stash_tail->next = &m->link;
    else
        co->stash_head = &m->link;
    co->stash_tail = &m->link;
}

/* The first kept message of lane (any lane: the lowest lane's first). */
static ax_msg_t *stash_take(ax_coro_t *co, bool any, unsigned lane)
{
    ax_msg_link_t *prev = NULL, *best_prev = NULL, *best = NULL;
    unsigned best_lane = ~0u;

    for (ax_msg_link_t *l = co->stash_head; l != NULL; prev = l, l = l->next) {
        unsigned ml = lane_of(co, (ax_msg_t *)l);

        if (any ? ml < best_lane : ml == lane) {
            best = l, best_prev = prev, best_lane = ml;
            if (!any || ml == 0)
                break;
        }
    }
    if (best == NULL)
        return NULL;
    if (best_prev != NULL)
        best_prev->next = best->next;
    else
        co->stash_head = best->next;
    if (co->stash_tail == best)
        co->stash_tail = best_prev;
    best->next = NULL;
    return (ax_msg_t *)best;
}

/* ---- waking ------------------------------------------------------------------- */

static ax_status_t wake_msg(ax_coro_t *co, ax_msg_t **out)
{
    ax_status_t st = AX_OK;

    if (co->spare != NULL) {
        *out = co->spare;
        co->spare = NULL;
    } else {
        st = ax_msg_alloc(&coro_wake_type, out);
    }
    if (st == AX_OK)
        ((coro_wake_t *)*out)->token = co->token = ++co->next_token;
    return st;
}

/* Arm the wait's timer: a wake message to self after ns. */
static ax_status_t arm(ax_coro_t *co, uint64_t ns)
{
    ax__cell_t *c = ax__cell(&co->actor);
    ax_msg_t *m;
    ax_status_t st = wake_msg(co, &m);

    if (st == AX_OK)
        st = ax__timer_user(c->sys->timers, ax__now_ns() + ns, 0, ax_self(&co->actor), &m, &co->timer);
    if (st != AX_OK)
        ax_msg_release(&m);
    return st;
}

static void disarm(ax_coro_t *co)
{
    if (co->timer != 0)
        ax__timer_cancel(ax__cell(&co->actor)->sys->timers, co->timer);
    co->timer = 0;
}

/* ---- the handlers --------------------------------------------------------------- */

/* A message for the coroutine actor: resume the function if it waits for
 * it, else keep it. */
static ax_status_t coro_deliver(ax_coro_t *co, ax_msg_t **msgp)
{
    ax_msg_t *m = *msgp;

    if (m->type == &coro_wake_type) {
        uint64_t token = ((coro_wake_t *)m)->token;
        uint8_t w = co->wait;

        *msgp = NULL;
        if (co->spare == NULL)
            co->spare = m;
        else
            ax_msg_release(&m);
        if (co->phase != P_SUSPENDED || token != co->token || w == W_ASK || w == W_NONE)
            return AX_OK; /* a wait that ended otherwise */
        co->timer = 0;
        return resume(co, w == W_SLEEP || w == W_YIELD ? AX_OK : AX_ETIMEDOUT, NULL);
    }
    *msgp = NULL;
    if (co->phase != P_SUSPENDED) {
        /* The function has returned: the actor is ending. */
        ax_dead_letter(ax__cell(&co->actor)->sys, &m, AX_ECLOSED, ax_coro_ref(co));
        return AX_OK;
    }
    if (co->wait == W_ASK && m->type == &ax_ask_result_type &&
        ((ax_ask_result_t *)m)->future_id == co->token)
        return resume(co, AX_OK, m);
    if (co->wait == W_RECEIVE || (co->wait == W_LANE && lane_of(co, m) == co->wait_lane)) {
        disarm(co);
        return resume(co, AX_OK, m);
    }
    stash_put(co, m);
    return AX_OK;
}

static ax_status_t coro_receive_local(ax_actor_t *self, ax_msg_t **msg)
{
    return coro_deliver(co_of(self), msg);
}

static ax_status_t coro_receive_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_msg_t *m = (ax_msg_t *)*nm;
    ax_status_t st = coro_deliver(co_of(self), &m);

    *nm = (ax_net_msg_t *)m;
    return st;
}

static ax_status_t coro_init(ax_actor_t *self, void *arg)
{
    ax_coro_t *co = co_of(self);
    coro_spec_t *spec = arg;

    /* Never fails: ax_spawn_coro tells who owns spec by whether a ref
     * came back. The first incarnation takes the stack spawn mapped. */
    co->spec = spec;
    co->stack = spec->first;
    spec->first.base = NULL;
    return AX_OK;
}

/* The first run: on a worker, before any message. */
static void coro_start(ax_actor_t *self)
{
    ax_coro_t *co = co_of(self);
    size_t usable;
    ax_status_t st;

    if (co->stack.base == NULL) {
        /* A restart: a fresh stack (the last one went with destroy). */
        st = ax__stack_alloc(co->spec->stack_usable, &co->stack);
        if (st != AX_OK) {
            ax_fail(self, st);
            return;
        }
    }
#ifdef AX__CORO_TSAN
    co->fiber = __tsan_create_fiber(0);
#endif
    ax__stack_bottom(&co->stack, &usable);
    co->ctx = make_fcontext(ax__stack_top(&co->stack), usable, coro_main);
    switch_in(co);
    st = after_switch(co);
    if (st != AX_OK)
        ax_fail(self, st);
}

/* Ends and restarts alike: a suspended function is unwound (its call
 * returns AX_ECLOSED), then what the actor holds is released. */
static void coro_destroy(ax_actor_t *self)
{
    ax_coro_t *co = co_of(self);
    ax__cell_t *c = ax__cell(self);
    ax_msg_t *m;

    co->ending = true;
    if (co->phase == P_SUSPENDED) {
        disarm(co);
        resume(co, AX_ECLOSED, NULL);
        if (co->phase != P_DONE) {
            /* It cannot suspend again (every call returns at once), so it
             * came back only by returning. */
            ax__error(AX_ESTATE, "coro: the function did not return when its actor ended");
        }
    }
    release_stack(co);
    while ((m = stash_take(co, true, 0)) != NULL)
        ax_dead_letter(c->sys, &m, AX_ECLOSED, ax_self(self));
    ax_msg_release(&co->spare);
    /* For good (not a restart, which calls init again with the spec).
     * Relaxed: ax__end_actor set ENDED on this thread before destroy. */
    if (ck_pr_load_64(&c->word) & AX__W_ENDED) {
        free(co->spec);
        co->spec = NULL;
    }
}

#define CORO_VTABLE(n)                                                                      \
    {                                                                                       \
        .name = "coro", .size = sizeof(ax_coro_t), .init = coro_init, .on_start = coro_start, \
        .receive_local = coro_receive_local, .receive_network = coro_receive_network,      \
        .destroy = coro_destroy, .lanes = (n),                                              \
    }

/* One vtable per lane count: the runtime reads lanes from the vtable. */
static const ax_actor_vtable_t coro_vtables[AX_MAX_LANES + 1] = {
    CORO_VTABLE(1), CORO_VTABLE(1), CORO_VTABLE(2), CORO_VTABLE(3), CORO_VTABLE(4),
    CORO_VTABLE(5), CORO_VTABLE(6), CORO_VTABLE(7), CORO_VTABLE(8),
};
_Static_assert(AX_MAX_LANES == 8, "one coro vtable per lane count");

/* ---- spawning ----------------------------------------------------------------- */

ax_status_t ax_spawn_coro(ax_system_t *sys, const ax_coro_opts_t *opts, ax_coro_fn_t fn, void *arg,
                          ax_ref_t *ref)
{
    static const ax_coro_opts_t defaults = {0};
    ax_spawn_opts_t so;
    coro_spec_t *spec;
    ax_ref_t made = AX_REF_NULL;
    size_t size;
    ax_status_t st;

    if (sys == NULL || fn == NULL || ref == NULL)
        return ax__error(AX_EINVAL, "spawn_coro: NULL argument");
    if (opts == NULL)
        opts = &defaults;
    size = opts->stack_size != 0 ? opts->stack_size : AX_CORO_STACK_DEFAULT;
    if (size < AX_CORO_STACK_MIN || size > AX_CORO_STACK_MAX)
        return ax__error(AX_EINVAL, "spawn_coro: stack_size %zu is outside [%zu, %zu]", size,
                         AX_CORO_STACK_MIN, AX_CORO_STACK_MAX);
    if (opts->lanes > AX_MAX_LANES)
        return ax__error(AX_EINVAL, "spawn_coro: %u lanes, at most %d", opts->lanes, AX_MAX_LANES);
    spec = calloc(1, sizeof(*spec));
    if (spec == NULL)
        return ax__error(AX_ENOMEM, "spawn_coro: out of memory");
    spec->fn = fn;
    spec->arg = arg;
    spec->stack_usable = ax__stack_round(size);
    st = ax__stack_alloc(spec->stack_usable, &spec->first);
    if (st != AX_OK) {
        free(spec);
        return st;
    }
    so = (ax_spawn_opts_t){.parent = opts->parent, .restart = opts->restart};
    st = ax_spawn_opts(sys, &coro_vtables[opts->lanes], spec, &so, &made);
    if (st != AX_OK && ax_ref_is_null(made)) {
        /* init never ran: spec and its stack are still ours. */
        ax__stack_free(&spec->first, ax__current_worker(sys) != NULL);
        free(spec);
        return st;
    }
    if (st == AX_OK)
        *ref = made;
    return st;
}

/* ---- the calls that suspend ------------------------------------------------------ */

/* AX_OK when co is the running coroutine and its actor is not ending. */
static ax_status_t check_call(ax_coro_t *co, const char *what)
{
    if (co == NULL)
        return ax__error(AX_EINVAL, "%s: NULL coroutine", what);
    if (co->phase != P_RUNNING)
        return ax__error(AX_ESTATE, "%s: not called from the coroutine's own function", what);
    if (co->ending)
        return ax__error(AX_ECLOSED, "%s: the actor is ending", what);
    return AX_OK;
}

/* Inlined into each caller: a function that returns right after a switch
 * mispredicts its return (the CPU's return stack holds the other stack's
 * calls), so each level between the caller and the switch costs one
 * misprediction a resume (actor/NOTES.md, "The coroutine ping-pong against
 * a faster baseline"). */
static inline __attribute__((always_inline)) ax_status_t receive(ax_coro_t *co, bool any, unsigned lane,
                                                                 uint64_t timeout_ns, ax_msg_t **msg,
                                                                 const char *what)
{
    ax_status_t st = check_call(co, what);

    if (st == AX_OK && msg == NULL)
        st = ax__error(AX_EINVAL, "%s: NULL msg", what);
    if (st != AX_OK)
        return st;
    *msg = stash_take(co, any, lane);
    if (*msg != NULL)
        return AX_OK;
    if (timeout_ns != 0 && (st = arm(co, timeout_ns)) != AX_OK)
        return st;
    co->wait = any ? W_RECEIVE : W_LANE;
    co->wait_lane = lane;
    st = suspend(co);
    if (st == AX_OK) {
        *msg = co->got;
        co->got = NULL;
        return AX_OK;
    }
    return ax__error(st, "%s: %s", what, st == AX_ETIMEDOUT ? "no message in time" : "the actor is ending");
}

ax_status_t ax_coro_receive(ax_coro_t *self, uint64_t timeout_ns, ax_msg_t **msg)
{
    return receive(self, true, 0, timeout_ns, msg, "coro_receive");
}

ax_status_t ax_coro_receive_lane(ax_coro_t *self, unsigned lane, uint64_t timeout_ns, ax_msg_t **msg)
{
    if (self != NULL) {
        unsigned lanes = ax__cell(&self->actor)->vt->lanes;

        if (lane >= (lanes > 1 ? lanes : 1u))
            return ax__error(AX_EINVAL, "coro_receive_lane: lane %u, the actor has %u", lane,
                             lanes > 1 ? lanes : 1u);
    }
    return receive(self, false, lane, timeout_ns, msg, "coro_receive_lane");
}

ax_status_t ax_coro_ask(ax_coro_t *self, ax_ref_t dst, ax_msg_t **msg, uint64_t timeout_ns,
                        ax_msg_t **reply)
{
    ax_status_t st = check_call(self, "coro_ask");
    ax_ask_result_t *res;
    ax_future_t *f;

    if (st == AX_OK && reply == NULL)
        st = ax__error(AX_EINVAL, "coro_ask: NULL reply");
    if (st != AX_OK)
        return st;
    *reply = NULL;
    /* From this actor's handler (the function runs inside one), so the
     * result comes back as a message to this actor. */
    st = ax_ask(dst, msg, timeout_ns, &f);
    if (st != AX_OK)
        return st;
    self->token = ax_future_id(f);
    self->wait = W_ASK;
    st = suspend(self);
    if (st != AX_OK) {
        ax__ask_cancel(&f);
        return ax__error(st, "coro_ask: the actor is ending");
    }
    res = (ax_ask_result_t *)self->got;
    self->got = NULL;
    st = res->status;
    *reply = res->reply;
    res->reply = NULL;
    ax_msg_release((ax_msg_t **)&res);
    ax_future_release(&f);
    if (st != AX_OK)
        return ax__error(st, "coro_ask: %s", st == AX_ETIMEDOUT ? "no reply in time" : "not delivered");
    return AX_OK;
}

ax_status_t ax_coro_sleep(ax_coro_t *self, uint64_t ns)
{
    ax_status_t st = check_call(self, "coro_sleep");

    if (st == AX_OK)
        st = arm(self, ns);
    if (st != AX_OK)
        return st;
    self->wait = W_SLEEP;
    st = suspend(self);
    return st == AX_OK ? AX_OK : ax__error(st, "coro_sleep: the actor is ending");
}

ax_status_t ax_coro_yield(ax_coro_t *self)
{
    ax_status_t st = check_call(self, "coro_yield");
    ax_msg_t *m;

    if (st != AX_OK)
        return st;
    /* A sealed actor (a graceful stop under way) takes no message, not
     * even from itself: it is ending. Relaxed: only the worker running
     * the actor seals it (ax__seal), and the schedule orders runs. */
    if (ck_pr_load_64(&ax__cell(&self->actor)->word) & AX__W_SEALED)
        return ax__error(AX_ECLOSED, "coro_yield: the actor is stopping");
    st = wake_msg(self, &m);
    if (st == AX_OK)
        st = ax_tell(ax_coro_ref(self), &m, ax_coro_ref(self));
    if (st != AX_OK) {
        ax_msg_release(&m);
        return st;
    }
    self->wait = W_YIELD;
    st = suspend(self);
    return st == AX_OK ? AX_OK : ax__error(st, "coro_yield: the actor is ending");
}
