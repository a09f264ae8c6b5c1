/*
 * Ask (ChrysaLisp's transient reply mailboxes, libmtev's blocking waits).
 *
 * An ask's request carries a reply ref as its sender: a slot and the
 * slot's generation. A slot completes once (reply, timeout, or failed
 * delivery); it is recycled, with a new generation, only once it has
 * completed and its future has been released. A reply that finds another
 * generation or a completed slot goes to dead letters, so it can never
 * reach a later ask. Slots live in blocks freed only with the system, so
 * a stale reply ref always points at a slot.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor_run.h"
#include "actor/ask.h"
#include "actor/net.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "common/error.h"
#include "common/grow.h"

#define SLOTS_PER_BLOCK 64u
/* A reply path's id holds the slot index in bits 32..54 (below the ask
 * bit, 2^55) and the generation in bits 0..31. */
#define SLOT_INDEX_LIMIT (UINT32_C(1) << 23)

enum { SLOT_FREE, SLOT_PENDING, SLOT_DONE };

struct timeout_arg {
    struct ax_future_s *slot;
    uint32_t gen;
};

struct ax_future_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ax_system_t *sys;
    uint32_t gen;
    uint32_t index;
    int state;
    bool released;          /* the caller let go of the future */
    ax_status_t status;
    ax_msg_t *reply;        /* for a waiting thread, until taken */
    ax_ref_t asker;         /* an actor to send the result to, or none */
    uint64_t timer;
    struct timeout_arg *timeout;
    struct ax_future_s *next_free;
};

const ax_msg_type_t ax_ask_result_type = {
    .name = "axon.ask-result",
    .size = sizeof(ax_ask_result_t),
    .reset = ax__ask_result_reset,
};

void ax__ask_result_reset(ax_msg_t *msg)
{
    ax_msg_release(&((ax_ask_result_t *)msg)->reply);
}

/* ---- the slot table ------------------------------------------------------- */

ax_status_t ax__asks_init(ax__asks_t *a)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    return AX_OK;
}

void ax__asks_destroy(ax__asks_t *a)
{
    for (size_t b = 0; b < a->nblocks; b++) {
        for (size_t i = 0; i < SLOTS_PER_BLOCK; i++) {
            struct ax_future_s *s = &a->blocks[b][i];

            ax_msg_release(&s->reply);
            free(s->timeout);
            pthread_cond_destroy(&s->cond);
            pthread_mutex_destroy(&s->lock);
        }
        free(a->blocks[b]);
    }
    free(a->blocks);
    pthread_mutex_destroy(&a->lock);
}

static struct ax_future_s *slot_alloc(ax_system_t *sys)
{
    ax__asks_t *a = &sys->asks;
    struct ax_future_s *s;

    pthread_mutex_lock(&a->lock);
    if (a->free == NULL) {
        struct ax_future_s *block;
        pthread_condattr_t ca;

        if ((a->nblocks + 1) * SLOTS_PER_BLOCK > SLOT_INDEX_LIMIT || !ax__grow(&a->blocks, &a->cap, a->nblocks + 1, sizeof(*a->blocks), 8)) {
            pthread_mutex_unlock(&a->lock);
            return NULL;
        }
        block = calloc(SLOTS_PER_BLOCK, sizeof(*block));
        if (block == NULL) {
            pthread_mutex_unlock(&a->lock);
            return NULL;
        }
        /* Waits use CLOCK_MONOTONIC deadlines. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        for (uint32_t i = SLOTS_PER_BLOCK; i-- > 0;) {
            pthread_mutex_init(&block[i].lock, NULL);
            pthread_cond_init(&block[i].cond, &ca);
            block[i].sys = sys;
            block[i].gen = 1;
            block[i].index = (uint32_t)(a->nblocks * SLOTS_PER_BLOCK + i);
            block[i].next_free = a->free;
            a->free = &block[i];
        }
        pthread_condattr_destroy(&ca);
        a->blocks[a->nblocks++] = block;
    }
    s = a->free;
    a->free = s->next_free;
    pthread_mutex_unlock(&a->lock);
    return s;
}

/* Back to the table with a new generation: replies to the old one will
 * find it changed. */
static void slot_recycle(struct ax_future_s *s)
{
    ax__asks_t *a = &s->sys->asks;

    pthread_mutex_lock(&s->lock);
    s->gen++;
    s->state = SLOT_FREE;
    s->released = false;
    ax_msg_release(&s->reply);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&a->lock);
    s->next_free = a->free;
    a->free = s;
    pthread_mutex_unlock(&a->lock);
}

/* ---- completion ------------------------------------------------------------- */

/*
 * Complete the ask of generation gen with status and reply (taken on
 * success). false when the slot has completed already or holds another
 * ask: the caller keeps the reply.
 */
static bool complete(struct ax_future_s *s, uint32_t gen, ax_status_t status, ax_msg_t **reply)
{
    struct timeout_arg *targ;
    ax_msg_t *result = NULL;
    ax_ref_t asker;
    uint64_t timer;
    bool recycle;

    pthread_mutex_lock(&s->lock);
    if (s->gen != gen || s->state != SLOT_PENDING) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    s->state = SLOT_DONE;
    s->status = status;
    asker = s->asker;
    timer = s->timer;
    targ = s->timeout;
    s->timer = 0;
    s->timeout = NULL;
    if (ax_ref_is_null(asker) && !s->released) {
        s->reply = reply != NULL ? *reply : NULL;
    } else if (!ax_ref_is_null(asker) && ax_msg_alloc(&ax_ask_result_type, &result) == AX_OK) {
        ((ax_ask_result_t *)result)->future_id = ax_future_id(s);
        ((ax_ask_result_t *)result)->status = status;
        ((ax_ask_result_t *)result)->reply = reply != NULL ? *reply : NULL;
    } else {
        if (!ax_ref_is_null(asker))
            ck_pr_inc_64(&s->sys->lost_notices); /* no memory for the result; any order */
        if (reply != NULL)
            ax_msg_release(reply); /* nobody will ever look at it */
    }
    if (reply != NULL)
        *reply = NULL;
    recycle = s->released;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* A timeout that was not cancelled in time runs anyway, finds the
     * ask completed and frees its argument itself. */
    if (timer != 0 && ax__timer_cancel(s->sys->timers, timer) == AX_OK)
        free(targ);
    if (result != NULL && ax__tell_unbounded(asker, &result, AX_REF_NULL) != AX_OK)
        ax_msg_release(&result);
    if (recycle)
        slot_recycle(s);
    return true;
}

static void timed_out(void *arg)
{
    struct timeout_arg *t = arg;
    struct ax_future_s *s = t->slot;
    uint32_t gen = t->gen;

    pthread_mutex_lock(&s->lock);
    /* Ours to free unless complete() cancelled the timer: it sets timeout
     * to NULL when it takes over. */
    if (s->gen == gen && s->timeout == t)
        s->timeout = NULL, s->timer = 0;
    pthread_mutex_unlock(&s->lock);
    complete(s, gen, AX_ETIMEDOUT, NULL);
    free(t);
}

void ax__ask_undelivered(ax_ref_t reply_to, ax_status_t why)
{
    complete(reply_to.target, (uint32_t)reply_to.id, why, NULL);
}

bool ax__ask_pending(ax_ref_t reply_to)
{
    struct ax_future_s *s = reply_to.target;
    bool pending;

    pthread_mutex_lock(&s->lock);
    pending = s->gen == (uint32_t)reply_to.id && s->state == SLOT_PENDING;
    pthread_mutex_unlock(&s->lock);
    return pending;
}

/* ---- reply slots on the wire ------------------------------------------------ */

void ax__ask_path(ax_ref_t reply_to, ax_path_t *out)
{
    const struct ax_future_s *s = reply_to.target;

    /* index and sys never change: no lock. */
    memset(out, 0, sizeof(*out));
    ax_system_address(s->sys, &out->addr);
    out->kind = AX_PATH_UNIQUE;
    out->id = AX__ASK_ID_BIT | (uint64_t)s->index << 32 | (uint32_t)reply_to.id;
}

ax_status_t ax__ask_ref_of_id(ax_system_t *sys, uint64_t id, ax_ref_t *out)
{
    ax__asks_t *a = &sys->asks;
    uint64_t index = (id & ~AX__ASK_ID_BIT) >> 32;
    struct ax_future_s *s = NULL;

    pthread_mutex_lock(&a->lock);
    if ((id & AX__ASK_ID_BIT) && index < a->nblocks * SLOTS_PER_BLOCK)
        s = &a->blocks[index / SLOTS_PER_BLOCK][index % SLOTS_PER_BLOCK];
    pthread_mutex_unlock(&a->lock);
    if (s == NULL)
        return ax__error(AX_ENOTFOUND, "ref_from_path: no ask slot has id %llu", (unsigned long long)id);
    /* A stale generation is a ref all the same: a reply through it goes
     * to dead letters, as a late reply does. */
    *out = (ax_ref_t){s, AX__REF_REPLY | (uint32_t)id};
    return AX_OK;
}

ax_status_t ax__ask_reply(ax_ref_t reply_to, ax_msg_t **reply, ax_ref_t from)
{
    struct ax_future_s *s = reply_to.target;

    (*reply)->sender = from;
    if (!complete(s, (uint32_t)reply_to.id, AX_OK, reply)) {
        /* Too late (timed out, or already answered): dead letters, as for
         * any message that cannot be delivered. */
        ax_dead_letter(s->sys, reply, AX_ETIMEDOUT, reply_to);
    }
    return AX_OK;
}

/* Undo an ask whose request was never sent: no result to anyone. */
static void abandon(struct ax_future_s *s, uint32_t gen)
{
    pthread_mutex_lock(&s->lock);
    s->asker = AX_REF_NULL;
    s->released = true;
    pthread_mutex_unlock(&s->lock);
    complete(s, gen, AX_ECANCELED, NULL); /* recycles it */
}

void ax__ask_cancel(ax_future_t **fp)
{
    struct ax_future_s *s = *fp;
    uint32_t gen;

    pthread_mutex_lock(&s->lock);
    s->asker = AX_REF_NULL; /* no result message for a cancelled ask */
    gen = s->gen;
    pthread_mutex_unlock(&s->lock);
    /* false: it completed first, and its result is on its way to whoever
     * holds it then (dead letters, for an ended actor). */
    complete(s, gen, AX_ECANCELED, NULL);
    ax_future_release(fp);
}

/* ---- the API ------------------------------------------------------------------ */

static ax_system_t *system_of(ax_ref_t dst)
{
    ax__remote_t *r = ax__remote_of(dst);

    if (r != NULL)
        return r->sys;
    if (ax__ref_is(dst, AX__REF_LOCAL))
        return ((ax__cell_t *)dst.target)->sys;
    return NULL;
}

uint64_t ax__asks_bytes(ax__asks_t *a)
{
    uint64_t n;

    pthread_mutex_lock(&a->lock);
    n = (uint64_t)a->nblocks * SLOTS_PER_BLOCK * sizeof(struct ax_future_s);
    pthread_mutex_unlock(&a->lock);
    return n;
}

/* How an ask sends its request once its slot is ready. */
typedef ax_status_t (*ask_send_fn)(void *arg, ax_ref_t reply_to);

/*
 * Take a slot, arm its timeout, send the request with the slot's reply
 * ref as its sender. On failure nothing was sent: the slot goes back.
 */
static ax_status_t ask_with(ax_system_t *sys, uint64_t timeout_ns, ask_send_fn send, void *arg,
                            ax_future_t **future)
{
    ax__cell_t *me = ax__current_cell();
    struct ax_future_s *s;
    struct timeout_arg *targ = NULL;
    ax_ref_t reply_to;
    ax_status_t st;

    if (timeout_ns != 0 && (targ = malloc(sizeof(*targ))) == NULL)
        return ax__error(AX_ENOMEM, "ask: out of memory");
    s = slot_alloc(sys);
    if (s == NULL) {
        free(targ);
        return ax__error(AX_ENOMEM, "ask: out of memory (or %u asks pending)", SLOT_INDEX_LIMIT);
    }
    pthread_mutex_lock(&s->lock);
    s->state = SLOT_PENDING;
    s->released = false;
    s->status = AX_OK;
    s->reply = NULL;
    /* From a handler, the result comes back as a message. */
    s->asker = me != NULL && me->sys == sys ? ax_self((ax_actor_t *)me) : AX_REF_NULL;
    s->timer = 0;
    s->timeout = targ;
    reply_to = (ax_ref_t){s, AX__REF_REPLY | s->gen};
    pthread_mutex_unlock(&s->lock);
    if (targ != NULL) {
        uint64_t timer;

        targ->slot = s;
        targ->gen = (uint32_t)reply_to.id;
        st = ax__timer_fn(sys->timers, ax__now_ns() + timeout_ns, timed_out, targ, &timer);
        if (st != AX_OK) {
            free(targ);
            s->timeout = NULL;
            slot_recycle(s);
            return st;
        }
        pthread_mutex_lock(&s->lock);
        if (s->timeout == targ)
            s->timer = timer;
        pthread_mutex_unlock(&s->lock);
    }
    st = send(arg, reply_to);
    if (st != AX_OK) {
        /* Nothing was sent: the caller keeps the request, and the slot,
         * which nobody else knows, goes back once its timer is settled. */
        abandon(s, (uint32_t)reply_to.id);
        return st;
    }
    *future = s;
    return AX_OK;
}

struct lazy_ask {
    ax_ref_t dst;
    ax_msg_t **msg;
};

static ax_status_t send_lazy(void *arg, ax_ref_t reply_to)
{
    struct lazy_ask *la = arg;

    return ax_tell(la->dst, la->msg, reply_to);
}

ax_status_t ax_ask(ax_ref_t dst, ax_msg_t **msg, uint64_t timeout_ns, ax_future_t **future)
{
    ax_system_t *sys = system_of(dst);

    if (sys == NULL || msg == NULL || *msg == NULL || future == NULL)
        return ax__error(AX_EINVAL, "ask: NULL argument or not an actor ref");
    return ask_with(sys, timeout_ns, send_lazy, &(struct lazy_ask){dst, msg}, future);
}

struct eager_ask {
    ax_actor_t *self;
    ax_ref_t dst;
    const ax_msg_type_t *type;
    const ax_msg_t *msg;
};

static ax_status_t send_eager(void *arg, ax_ref_t reply_to)
{
    struct eager_ask *ea = arg;

    return ax__tell_serialised_from(ea->self, ea->dst, reply_to, ea->type, ea->msg);
}

ax_status_t ax_ask_serialised(ax_actor_t *self, ax_ref_t dst, const ax_msg_type_t *type, const ax_msg_t *msg,
                              uint64_t timeout_ns, ax_future_t **future)
{
    ax_system_t *sys = system_of(dst);
    ax_status_t st;

    if (self == NULL || sys == NULL || sys != ax__cell(self)->sys || future == NULL)
        return ax__error(AX_EINVAL, "ask_serialised: NULL argument, or dst is not a ref of self's system");
    /* Self's pool is written only from self's handlers, as for tell_serialised. */
    st = ax__check_self(self, "ask_serialised");
    if (st != AX_OK)
        return st;
    return ask_with(sys, timeout_ns, send_eager, &(struct eager_ask){self, dst, type, msg}, future);
}

/* A request that came over the network: its sender path names the
 * asker's reply slot in the asker's system. */
static ax_status_t reply_to_net(const ax_net_msg_t *request, ax_msg_t **reply, ax_ref_t from)
{
    ax_system_t *sys = system_of(from);
    ax__cell_t *me = ax__current_cell();
    ax_path_t src;
    ax_ref_t back;
    ax_status_t st;

    if (sys == NULL && me != NULL)
        sys = me->sys;
    if (sys == NULL)
        return ax__error(AX_EINVAL, "reply: from must be a local actor to answer a request from the network");
    st = ax_net_msg_sender_path(request, &src);
    if (st != AX_OK || src.kind != AX_PATH_UNIQUE || !(src.id & AX__ASK_ID_BIT))
        return ax__error(AX_EINVAL, "reply: the request was not sent by ax_ask");
    st = ax__net_msg_sender_ref(sys, request, &src, &back);
    return st == AX_OK ? ax_tell(back, reply, from) : st;
}

ax_status_t ax_reply(const ax_msg_t *request, ax_msg_t **reply, ax_ref_t from)
{
    if (request == NULL || reply == NULL || *reply == NULL)
        return ax__error(AX_EINVAL, "reply: NULL argument");
    if (!ax__ref_is(request->sender, AX__REF_REPLY) && request->type == &ax_net_msg_type)
        return reply_to_net((const ax_net_msg_t *)request, reply, from);
    if (!ax__ref_is(request->sender, AX__REF_REPLY))
        return ax__error(AX_EINVAL, "reply: the request was not sent by ax_ask");
    return ax_tell(request->sender, reply, from);
}

uint64_t ax_future_id(const ax_future_t *f)
{
    return (uint64_t)f->gen << 32 | f->index;
}

/* Wait for completion until deadline (0: none); true once done. With the
 * lock held. */
static bool wait_done(struct ax_future_s *s, uint64_t deadline)
{
    while (s->state == SLOT_PENDING) {
        struct timespec ts;

        if (deadline == 0) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        if (ax__now_ns() >= deadline)
            return false;
        ts = ax__timespec_of(deadline);
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    return true;
}

static ax_status_t not_on_a_worker(ax_system_t *sys)
{
    if (ax__current_worker(sys) != NULL)
        return ax__error(AX_ESTATE, "future: waiting on a worker thread would block actors");
    return AX_OK;
}

ax_status_t ax_future_wait(ax_future_t *f, uint64_t timeout_ns, ax_msg_t **reply)
{
    ax_status_t st;

    if (f == NULL || reply == NULL)
        return ax__error(AX_EINVAL, "future_wait: NULL argument");
    st = not_on_a_worker(f->sys);
    if (st != AX_OK)
        return st;
    *reply = NULL;
    pthread_mutex_lock(&f->lock);
    if (!wait_done(f, timeout_ns != 0 ? ax__now_ns() + timeout_ns : 0)) {
        pthread_mutex_unlock(&f->lock);
        return ax__error(AX_ETIMEDOUT, "future_wait: not completed in time");
    }
    st = f->status;
    *reply = f->reply;
    f->reply = NULL;
    pthread_mutex_unlock(&f->lock);
    return st == AX_OK ? AX_OK : ax__error(st, "future: the ask completed with %s", ax_status_name(st));
}

void ax_future_release(ax_future_t **fp)
{
    struct ax_future_s *f;
    bool done;

    if (fp == NULL || *fp == NULL)
        return;
    f = *fp;
    *fp = NULL;
    pthread_mutex_lock(&f->lock);
    f->released = true;
    done = f->state == SLOT_DONE;
    pthread_mutex_unlock(&f->lock);
    if (done)
        slot_recycle(f); /* else complete() recycles it */
}

ax_status_t ax_gather(ax_future_t *const *futures, size_t n, uint64_t timeout_ns, size_t *completed)
{
    uint64_t deadline = timeout_ns != 0 ? ax__now_ns() + timeout_ns : 0;
    size_t done = 0;

    if (futures == NULL || completed == NULL)
        return ax__error(AX_EINVAL, "gather: NULL argument");
    for (size_t i = 0; i < n; i++) {
        ax_status_t st = not_on_a_worker(futures[i]->sys);

        if (st != AX_OK)
            return st;
        pthread_mutex_lock(&futures[i]->lock);
        if (wait_done(futures[i], deadline))
            done++;
        pthread_mutex_unlock(&futures[i]->lock);
    }
    *completed = done;
    return done == n ? AX_OK : ax__error(AX_ETIMEDOUT, "gather: %zu of %zu completed in time", done, n);
}
