/* Timers: one hashed timing wheel per system, turned by one thread. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor_run.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "common/error.h"
#include "common/grow.h"

#define WHEEL_SLOTS 4096u /* a power of two */
#define RECORDS_PER_BLOCK 256u

enum {
    T_FREE,
    T_ARMED,
    T_QUEUED,
    T_DELIVERING,
    T_CANCELLED,
};

typedef struct timer_rec {
    uint32_t gen;       /* bumped when the record is freed */
    /* See timer.h. Changed under the lock, except QUEUED -> DELIVERING
     * by the worker's CAS (ax__timer_claim); so loads under the lock may
     * be plain atomic loads. */
    uint32_t state;
    uint32_t index;     /* in the record table, for ids */
    bool linked;        /* in a wheel slot (under the lock) */
    uint64_t due_ns;
    uint64_t due_tick;
    uint64_t period_ns;
    ax_ref_t target;
    ax_msg_t *msg;      /* owned while ARMED */
    void (*fn)(void *);
    void *arg;
    struct timer_rec *prev, *next; /* wheel slot list, or free list (next) */
} timer_rec_t;

struct ax__timers_s {
    ax_system_t *sys;
    uint64_t tick_ns;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* signalled when a timer is due before wake_tick */
    bool stop;
    /* The tick the thread sleeps until: UINT64_MAX while the wheel is
     * empty, 0 while it is awake (it looks at the wheel again before it
     * sleeps, so nothing armed meanwhile is missed). */
    uint64_t wake_tick;
    uint64_t last_tick;        /* every tick up to here has been processed */
    size_t armed;              /* records in the wheel */
    timer_rec_t *slots[WHEEL_SLOTS];
    timer_rec_t *free;
    /* Records live in blocks that are never freed before the system, so
     * a stale id or ref always finds a record (with another gen). */
    timer_rec_t **blocks;
    size_t nblocks, cap_blocks;
};

/* ---- ids and refs -------------------------------------------------------- */

static uint64_t make_id(const timer_rec_t *r)
{
    return (uint64_t)r->gen << 32 | r->index;
}

static timer_rec_t *rec_of_id(ax__timers_t *t, uint64_t id)
{
    uint32_t index = (uint32_t)id, block = index / RECORDS_PER_BLOCK;
    timer_rec_t *r;

    if (block >= t->nblocks)
        return NULL;
    r = &t->blocks[block][index % RECORDS_PER_BLOCK];
    return r->gen == (uint32_t)(id >> 32) ? r : NULL;
}

/* The sender ref a timer puts on its message: the record and its gen. */
static ax_ref_t timer_ref(timer_rec_t *r)
{
    return (ax_ref_t){r, AX__REF_TIMER | r->gen};
}

static timer_rec_t *rec_of_msg(const ax_msg_t *msg)
{
    return msg->sender.target;
}

/* ---- records ------------------------------------------------------------- */

static timer_rec_t *rec_alloc(ax__timers_t *t)
{
    timer_rec_t *r;

    if (t->free == NULL) {
        timer_rec_t *block;

        if (!ax__grow(&t->blocks, &t->cap_blocks, t->nblocks + 1, sizeof(*t->blocks), 16))
            return NULL;
        block = calloc(RECORDS_PER_BLOCK, sizeof(*block));
        if (block == NULL)
            return NULL;
        for (uint32_t i = RECORDS_PER_BLOCK; i-- > 0;) {
            block[i].index = (uint32_t)(t->nblocks * RECORDS_PER_BLOCK + i);
            block[i].gen = 1;
            block[i].next = t->free;
            t->free = &block[i];
        }
        t->blocks[t->nblocks++] = block;
    }
    r = t->free;
    t->free = r->next;
    r->prev = r->next = NULL;
    return r;
}

/* Back to the free list with a new generation; with the lock. */
static void rec_free(ax__timers_t *t, timer_rec_t *r)
{
    r->gen++;
    ck_pr_store_32(&r->state, T_FREE);
    r->msg = NULL;
    r->fn = NULL;
    r->next = t->free;
    t->free = r;
}

static void slot_link(ax__timers_t *t, timer_rec_t *r)
{
    timer_rec_t **slot = &t->slots[r->due_tick & (WHEEL_SLOTS - 1)];

    r->prev = NULL;
    r->next = *slot;
    if (*slot != NULL)
        (*slot)->prev = r;
    *slot = r;
    r->linked = true;
    t->armed++;
}

static void slot_unlink(ax__timers_t *t, timer_rec_t *r)
{
    if (!r->linked)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        t->slots[r->due_tick & (WHEEL_SLOTS - 1)] = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->linked = false;
    t->armed--;
}

/* Put r in the wheel for its due time: the first tick at or after it. */
static void arm(ax__timers_t *t, timer_rec_t *r)
{
    r->due_tick = (r->due_ns + t->tick_ns - 1) / t->tick_ns;
    if (r->due_tick <= t->last_tick)
        r->due_tick = t->last_tick + 1; /* that tick has gone by: the next */
    slot_link(t, r);
    if (r->due_tick < t->wake_tick)
        pthread_cond_signal(&t->cond); /* due before the thread would wake */
}

static ax_status_t add(ax__timers_t *t, timer_rec_t *proto, uint64_t *id)
{
    timer_rec_t *r;
    ax_status_t st = AX_OK;

    pthread_mutex_lock(&t->lock);
    if (t->stop) {
        st = ax__error(AX_ESHUTDOWN, "timer: the system is shutting down");
    } else if ((r = rec_alloc(t)) == NULL) {
        st = ax__error(AX_ENOMEM, "timer: out of memory");
    } else {
        r->due_ns = proto->due_ns;
        r->period_ns = proto->period_ns;
        r->target = proto->target;
        r->msg = proto->msg;
        r->fn = proto->fn;
        r->arg = proto->arg;
        ck_pr_store_32(&r->state, T_ARMED);
        arm(t, r);
        *id = make_id(r);
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

ax_status_t ax__timer_user(ax__timers_t *t, uint64_t due_ns, uint64_t period_ns, ax_ref_t target,
                           ax_msg_t **msg, uint64_t *id)
{
    timer_rec_t proto = {.due_ns = due_ns, .period_ns = period_ns, .target = target, .msg = *msg};
    ax_status_t st = add(t, &proto, id);

    if (st == AX_OK)
        *msg = NULL;
    return st;
}

ax_status_t ax__timer_fn(ax__timers_t *t, uint64_t due_ns, void (*fn)(void *arg), void *arg, uint64_t *id)
{
    timer_rec_t proto = {.due_ns = due_ns, .fn = fn, .arg = arg};

    return add(t, &proto, id);
}

bool ax__timer_live(ax__timers_t *t, uint64_t id)
{
    timer_rec_t *r;
    bool live;

    pthread_mutex_lock(&t->lock);
    r = rec_of_id(t, id);
    live = r != NULL && ck_pr_load_32(&r->state) != T_FREE;
    pthread_mutex_unlock(&t->lock);
    return live;
}

uint64_t ax__timers_bytes(ax__timers_t *t)
{
    uint64_t n;

    pthread_mutex_lock(&t->lock);
    n = (uint64_t)t->nblocks * RECORDS_PER_BLOCK * sizeof(timer_rec_t);
    pthread_mutex_unlock(&t->lock);
    return n;
}

bool ax__timer_probe(ax__timers_t *t, uint64_t id, ax__timer_probe_t *out)
{
    timer_rec_t *r;
    bool live;

    pthread_mutex_lock(&t->lock);
    r = rec_of_id(t, id);
    live = r != NULL && ck_pr_load_32(&r->state) != T_FREE;
    if (live)
        *out = (ax__timer_probe_t){.due_ns = r->due_ns, .period_ns = r->period_ns,
                                   .due_tick = r->due_tick, .last_tick = t->last_tick,
                                   .tick_ns = t->tick_ns, .linked = r->linked};
    pthread_mutex_unlock(&t->lock);
    return live;
}

ax_status_t ax__timer_cancel(ax__timers_t *t, uint64_t id)
{
    ax_msg_t *release = NULL;
    ax_status_t st = AX_OK;
    timer_rec_t *r;

    pthread_mutex_lock(&t->lock);
    r = rec_of_id(t, id);
    if (r == NULL) {
        st = AX_ENOTFOUND;
    } else {
        uint32_t s = ck_pr_load_32(&r->state);

        slot_unlink(t, r);
        if (s == T_ARMED) {
            /* Not fired: the message is still ours. */
            release = r->msg;
            rec_free(t, r);
        } else if (s == T_QUEUED || s == T_DELIVERING) {
            /* The message is on its way or in the handler: whoever holds
             * it next sees CANCELLED, releases it and frees the record. */
            if (!ck_pr_cas_32(&r->state, s, T_CANCELLED))
                st = AX_ENOTFOUND; /* the worker just finished a one-shot */
        } else {
            st = AX_ENOTFOUND;
        }
    }
    pthread_mutex_unlock(&t->lock);
    ax_msg_release(&release);
    return st == AX_OK ? AX_OK : ax__error(st, "timer: no live timer with that id");
}

/* ---- delivery ------------------------------------------------------------ */

bool ax__timer_claim(ax_msg_t **msg)
{
    timer_rec_t *r = rec_of_msg(*msg);

    /* QUEUED -> DELIVERING, unless cancelled meanwhile. The CAS orders the
     * canceller's writes before our decision. */
    if (ck_pr_cas_32(&r->state, T_QUEUED, T_DELIVERING))
        return true;
    ax__timer_discard(msg);
    return false;
}

/* The system's timers, reached through the target actor's cell. */
static ax__timers_t *timers_of(const timer_rec_t *r)
{
    return ((ax__cell_t *)r->target.target)->sys->timers;
}

bool ax__timer_done(ax_ref_t timer, ax_msg_t **msg)
{
    timer_rec_t *r = timer.target;
    ax__timers_t *t = timers_of(r);
    ax_msg_t *release = NULL;
    bool ended = false;

    pthread_mutex_lock(&t->lock);
    if (r->period_ns != 0 && *msg != NULL && ck_pr_load_32(&r->state) == T_DELIVERING) {
        /* The same message goes out again next period. */
        r->msg = *msg;
        *msg = NULL;
        ck_pr_store_32(&r->state, T_ARMED);
        if (!r->linked)
            arm(t, r);
    } else {
        /* A one-shot, a cancelled timer, or a periodic one whose handler
         * kept the message (nothing left to send): the timer ends. */
        release = *msg;
        *msg = NULL;
        slot_unlink(t, r);
        rec_free(t, r);
        ended = true;
    }
    pthread_mutex_unlock(&t->lock);
    if (release != NULL)
        release->sender = AX_REF_NULL; /* no longer a timer's */
    ax_msg_release(&release);
    return ended;
}

void ax__timer_discard(ax_msg_t **msg)
{
    timer_rec_t *r = rec_of_msg(*msg);
    ax__timers_t *t = timers_of(r);
    ax_msg_t *m = *msg;

    *msg = NULL;
    pthread_mutex_lock(&t->lock);
    slot_unlink(t, r);
    rec_free(t, r);
    pthread_mutex_unlock(&t->lock);
    /* The sender is a timer ref to a recycled record: drop it so releasing
     * the message cannot be mistaken for a timer's again. */
    m->sender = AX_REF_NULL;
    ax_msg_release(&m);
}

/* ---- the thread -------------------------------------------------------------- */

/* Fire r (unlinked, with the lock held) at time now. Returns the message
 * to send, and through *fn the function to run, outside the lock. */
static ax_msg_t *fire(ax__timers_t *t, timer_rec_t *r, uint64_t now, void (**fn)(void *), void **arg)
{
    ax_msg_t *m = NULL;

    if (r->fn != NULL) {
        *fn = r->fn;
        *arg = r->arg;
        rec_free(t, r);
        return NULL;
    }
    if (ck_pr_load_32(&r->state) == T_ARMED) {
        m = r->msg;
        r->msg = NULL;
        m->sender = timer_ref(r);
        ck_pr_store_32(&r->state, T_QUEUED);
    }
    /* A periodic timer whose last message is still queued or handled
     * skips this period (coalesces); either way it stays on schedule:
     * due times stay start + k * period, and periods that have gone by
     * (a period shorter than a tick, a late wake-up) are skipped. */
    if (r->period_ns != 0) {
        do
            r->due_ns += r->period_ns;
        while (r->due_ns <= now);
        arm(t, r);
    }
    return m;
}

/*
 * The first tick after last_tick at which an armed record is due; with the
 * lock and a non-empty wheel. The slots are walked in tick order for one
 * turn: the first record found in its own tick's slot is the earliest.
 * Records a turn or more away are skipped on the way, and the earliest of
 * them is the answer when nothing is due within the turn. The walk costs
 * at most one turn of slots and is done once per wake-up, never per tick.
 */
static uint64_t next_due_tick(const ax__timers_t *t)
{
    uint64_t far = UINT64_MAX;

    for (uint64_t k = t->last_tick + 1; k <= t->last_tick + WHEEL_SLOTS; k++) {
        for (const timer_rec_t *r = t->slots[k & (WHEEL_SLOTS - 1)]; r != NULL; r = r->next) {
            if (r->due_tick <= k)
                return k; /* due now (or overdue: fire at once) */
            if (r->due_tick < far)
                far = r->due_tick;
        }
    }
    return far;
}

/* One message or function to run after the lock is dropped. */
struct due {
    ax_ref_t target;
    ax_msg_t *msg;
    void (*fn)(void *);
    void *arg;
};

static void *timer_main(void *arg)
{
    ax__timers_t *t = arg;
    struct due *due = NULL;
    size_t ndue = 0, cap = 0;

    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        uint64_t now = ax__now_ns(), tick = now / t->tick_ns;
        struct timespec ts;

        /* Every tick that has gone by, each slot at most once. A tick is
         * marked processed before its timers fire, so that one re-armed
         * now (periodic) goes into a later slot, not this one. */
        uint64_t first = t->last_tick + 1;

        if (tick >= WHEEL_SLOTS && first < tick - WHEEL_SLOTS + 1)
            first = tick - WHEEL_SLOTS + 1;
        for (uint64_t k = first; k <= tick && t->armed > 0; k++) {
            timer_rec_t *r = t->slots[k & (WHEEL_SLOTS - 1)], *next;

            t->last_tick = k;
            for (; r != NULL; r = next) {
                next = r->next;
                if (r->due_tick > tick)
                    continue;
                if (!ax__grow(&due, &cap, ndue + 1, sizeof(*due), 64))
                    break; /* the rest fires next time round */
                slot_unlink(t, r);
                due[ndue].target = r->target;
                due[ndue].fn = NULL;
                due[ndue].msg = fire(t, r, now, &due[ndue].fn, &due[ndue].arg);
                if (due[ndue].msg != NULL || due[ndue].fn != NULL)
                    ndue++;
            }
        }
        t->last_tick = tick;
        if (ndue > 0) {
            pthread_mutex_unlock(&t->lock);
            for (size_t i = 0; i < ndue; i++) {
                if (due[i].fn != NULL) {
                    due[i].fn(due[i].arg);
                } else if (ax__tell_timer(due[i].target, &due[i].msg) != AX_OK) {
                    ax__timer_discard(&due[i].msg);
                }
            }
            ndue = 0;
            pthread_mutex_lock(&t->lock);
            continue;
        }
        if (t->armed == 0) {
            t->wake_tick = UINT64_MAX;
            pthread_cond_wait(&t->cond, &t->lock);
            t->wake_tick = 0;
            continue;
        }
        /* Sleep to the start of the tick of the next due time, not to the
         * next tick: an idle system with armed timers stays asleep. An
         * earlier timer armed meanwhile signals (arm). */
        t->wake_tick = next_due_tick(t);
        ts = ax__timespec_of(t->wake_tick * t->tick_ns);
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        t->wake_tick = 0;
    }
    pthread_mutex_unlock(&t->lock);
    free(due);
    return NULL;
}

ax_status_t ax__timers_start(ax_system_t *sys, uint64_t tick_ns, ax__timers_t **out)
{
    ax__timers_t *t = calloc(1, sizeof(*t));
    pthread_condattr_t ca;

    if (t == NULL)
        return ax__error(AX_ENOMEM, "timers: out of memory");
    t->sys = sys;
    t->tick_ns = tick_ns;
    t->last_tick = ax__now_ns() / tick_ns;
    pthread_mutex_init(&t->lock, NULL);
    /* Deadlines are CLOCK_MONOTONIC, like the due times. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return ax__error(AX_ENOMEM, "timers: cannot start the timer thread");
    }
    t->started = true;
    *out = t;
    return AX_OK;
}

void ax__timers_stop(ax__timers_t *t)
{
    if (t == NULL || !t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    t->started = false;
}

void ax__timers_destroy(ax__timers_t **tp)
{
    ax__timers_t *t;

    if (tp == NULL || *tp == NULL)
        return;
    t = *tp;
    ax__timers_stop(t);
    /* Messages still owned by armed timers are released; a queued one was
     * released with its mailbox. */
    for (size_t b = 0; b < t->nblocks; b++) {
        for (size_t i = 0; i < RECORDS_PER_BLOCK; i++) {
            timer_rec_t *r = &t->blocks[b][i];

            if (ck_pr_load_32(&r->state) == T_ARMED)
                ax_msg_release(&r->msg);
        }
        free(t->blocks[b]);
    }
    free(t->blocks);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
    *tp = NULL;
}
