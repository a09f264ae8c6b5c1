/*
 * The poller: one edge-triggered epoll, a registration table, an eventfd
 * wake channel and a timerfd driven by a min-heap of deadlines.
 *
 * Locking. One mutex (lock) guards the registration table, the timer
 * table, the heap and the id counter. Registrars hold it across their
 * epoll_ctl call, so the table and the kernel's interest list change
 * together. The poll thread never holds it while it sleeps in epoll_wait;
 * it takes it once per batch to turn kernel events into reports. Waking
 * takes no lock at all.
 *
 * Why ids and not pointers. epoll_event.data.u64 carries the registration
 * id. The poll thread looks every id up, under the lock, while it builds
 * the output, so a report is linearised at that moment: once
 * ax__poller_remove() has returned, no later wait reports the id, even if
 * epoll_wait had already fetched the event. (A batch already handed to the
 * caller may still hold the id; the caller removing registrations while it
 * works through a batch must check its own table, as it would anyway.)
 * Ids are never reused, so a late event for a closed descriptor whose
 * number the kernel gave to a new socket can never be taken for the new
 * registration.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/ax_atomic.h"

#include <ck_ht.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/ht_alloc.h"
#include "dispatch/poller.h"

/* The header promises the epoll values, so interest passes straight
 * through and readiness straight back. */
_Static_assert(AX__POLL_IN == EPOLLIN, "AX__POLL_IN must equal EPOLLIN");
_Static_assert(AX__POLL_OUT == EPOLLOUT, "AX__POLL_OUT must equal EPOLLOUT");
_Static_assert(AX__POLL_ERR == EPOLLERR, "AX__POLL_ERR must equal EPOLLERR");
_Static_assert(AX__POLL_HUP == EPOLLHUP, "AX__POLL_HUP must equal EPOLLHUP");
_Static_assert(AX__POLL_RDHUP == EPOLLRDHUP, "AX__POLL_RDHUP must equal EPOLLRDHUP");
/* ck_ht DIRECT keys are uintptr_t; a 64-bit id must fit unchanged. */
_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "ids are ck_ht keys");

#define POLL_BITS (AX__POLL_IN | AX__POLL_OUT | AX__POLL_ERR | AX__POLL_HUP | AX__POLL_RDHUP)

/* Reserved epoll ids for the internal descriptors. The counter starts at
 * 1 and cannot reach UINT64_MAX, and ck_ht never sees either key (0 and
 * UINTPTR_MAX are its empty and tombstone markers). */
#define WAKE_ID ((uint64_t)0)
#define TIMER_ID UINT64_MAX

/* Kernel events fetched per wait; more simply wait for the next call. */
#define BATCH 64

struct reg {
    int fd;
    uint32_t interest; /* AX__POLL_*, without EPOLLET */
    void *ctx;
};

struct ptimer {
    uint64_t deadline; /* absolute CLOCK_MONOTONIC ns */
    uint64_t id;
    void *ctx;
    size_t slot; /* index in the heap, kept by every move */
};

struct ax__poller_s {
    int epfd;
    bool full; /* the last epoll_wait filled its batch: more may be ready */
    int evfd;
    int tfd;

    pthread_mutex_t lock;
    uint64_t next_id; /* under lock */
    ck_ht_t regs;     /* id -> struct reg *, under lock */
    ck_ht_t timers;   /* id -> struct ptimer *, under lock */
    struct ptimer **heap; /* min-heap on (deadline, id), under lock */
    size_t heap_len;
    size_t heap_cap;

    /* Hammered by every waker: on its own line, away from the fields the
     * poll thread and registrars touch. */
    alignas(64) uint64_t wake_pending;
    uint64_t wake_writes;
};

/* The wake counters start a cache line, and the struct's size rounds up
 * to whole lines, so nothing else shares theirs. */
_Static_assert(offsetof(struct ax__poller_s, wake_pending) % 64 == 0, "wake line");
_Static_assert(sizeof(struct ax__poller_s) % 64 == 0, "whole lines");

/* ---- the id tables (caller holds lock) --------------------------------- */

static void *tab_get(ck_ht_t *t, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash_direct(&h, t, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    return ck_ht_get_spmc(t, h, &e) ? (void *)ck_ht_entry_value_direct(&e) : NULL;
}

static bool tab_put(ck_ht_t *t, uint64_t id, void *v)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash_direct(&h, t, (uintptr_t)id);
    ck_ht_entry_set_direct(&e, h, (uintptr_t)id, (uintptr_t)v);
    /* Ids are fresh, so false can only mean the table could not grow. */
    return ck_ht_put_spmc(t, h, &e);
}

static void *tab_del(ck_ht_t *t, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash_direct(&h, t, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    return ck_ht_remove_spmc(t, h, &e) ? (void *)ck_ht_entry_value_direct(&e) : NULL;
}

static void tab_free_values(ck_ht_t *t)
{
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;

    while (ck_ht_next(t, &it, &e))
        free((void *)ck_ht_entry_value_direct(e));
}

/* ---- the timer heap (caller holds lock) -------------------------------- */

/* Ties go to the older timer, so equal deadlines fire in creation order. */
static bool earlier(const struct ptimer *a, const struct ptimer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_set(ax__poller_t *p, size_t i, struct ptimer *t)
{
    p->heap[i] = t;
    t->slot = i;
}

static void sift_up(ax__poller_t *p, size_t i)
{
    struct ptimer *t = p->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!earlier(t, p->heap[parent]))
            break;
        heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    heap_set(p, i, t);
}

static void sift_down(ax__poller_t *p, size_t i)
{
    struct ptimer *t = p->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= p->heap_len)
            break;
        if (child + 1 < p->heap_len && earlier(p->heap[child + 1], p->heap[child]))
            child++;
        if (!earlier(p->heap[child], t))
            break;
        heap_set(p, i, p->heap[child]);
        i = child;
    }
    heap_set(p, i, t);
}

static bool heap_push(ax__poller_t *p, struct ptimer *t)
{
    if (!ax__grow(&p->heap, &p->heap_cap, p->heap_len + 1, sizeof(*p->heap), 16))
        return false;
    heap_set(p, p->heap_len++, t);
    sift_up(p, t->slot);
    return true;
}

/* Take t out of the heap wherever it sits. */
static void heap_remove(ax__poller_t *p, struct ptimer *t)
{
    size_t i = t->slot;
    struct ptimer *last = p->heap[--p->heap_len];

    if (last == t)
        return;
    heap_set(p, i, last);
    /* The moved element may belong above or below its new slot. */
    sift_down(p, i);
    sift_up(p, last->slot);
}

/* Arm the timerfd for the earliest deadline, or disarm it when no timer
 * is left. TFD_TIMER_ABSTIME on CLOCK_MONOTONIC, the clock ax__now_ns()
 * reads, so the kernel cannot expire it before the deadline we later
 * compare with. */
static ax_status_t arm_timerfd(ax__poller_t *p)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (p->heap_len > 0) {
        its.it_value = ax__timespec_of(p->heap[0]->deadline);
        /* An all-zero it_value would disarm instead of firing at once. */
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        return ax__error(AX_EIO, "poller: timerfd_settime(fd %d): %s", p->tfd, strerror(errno));
    return AX_OK;
}

/* ---- create and destroy ------------------------------------------------ */

static ax_status_t add_internal(int epfd, int fd, uint64_t id, const char *what)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = id;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return ax__error(AX_EIO, "poller: epoll_ctl(ADD, %s fd %d): %s", what, fd, strerror(errno));
    return AX_OK;
}

static void close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

ax_status_t ax__poller_create(ax__poller_t **out)
{
    ax__poller_t *p;
    ax_status_t st;

    if (out == NULL)
        return ax__error(AX_EINVAL, "poller_create: out is NULL");
    *out = NULL;
    p = aligned_alloc(alignof(ax__poller_t), sizeof(*p));
    if (p == NULL)
        return ax__error(AX_ENOMEM, "poller_create: out of memory");
    memset(p, 0, sizeof(*p));
    p->next_id = 1;
    p->epfd = p->evfd = p->tfd = -1;

    if (!ck_ht_init(&p->regs, CK_HT_MODE_DIRECT | CK_HT_WORKLOAD_DELETE, NULL,
                    &ax__ht_allocator, 64, 0x7f4a7c159e3779b9ull)) {
        free(p);
        return ax__error(AX_ENOMEM, "poller_create: out of memory");
    }
    if (!ck_ht_init(&p->timers, CK_HT_MODE_DIRECT | CK_HT_WORKLOAD_DELETE, NULL,
                    &ax__ht_allocator, 16, 0x94d049bb133111ebull)) {
        ck_ht_destroy(&p->regs);
        free(p);
        return ax__error(AX_ENOMEM, "poller_create: out of memory");
    }
    pthread_mutex_init(&p->lock, NULL);

    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        st = ax__error(AX_EIO, "poller_create: epoll_create1: %s", strerror(errno));
        goto fail;
    }
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->evfd < 0) {
        st = ax__error(AX_EIO, "poller_create: eventfd: %s", strerror(errno));
        goto fail;
    }
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->tfd < 0) {
        st = ax__error(AX_EIO, "poller_create: timerfd_create: %s", strerror(errno));
        goto fail;
    }
    st = add_internal(p->epfd, p->evfd, WAKE_ID, "eventfd");
    if (st == AX_OK)
        st = add_internal(p->epfd, p->tfd, TIMER_ID, "timerfd");
    if (st != AX_OK)
        goto fail;
    *out = p;
    return AX_OK;

fail:
    ax__poller_destroy(&p);
    return st;
}

void ax__poller_destroy(ax__poller_t **pp)
{
    ax__poller_t *p;

    if (pp == NULL || *pp == NULL)
        return;
    p = *pp;
    *pp = NULL;
    close_fd(p->epfd);
    close_fd(p->evfd);
    close_fd(p->tfd);
    /* Every timer is in the timer table, so freeing its values frees them
     * all; the heap only borrows the pointers. */
    tab_free_values(&p->regs);
    tab_free_values(&p->timers);
    ck_ht_destroy(&p->regs);
    ck_ht_destroy(&p->timers);
    free(p->heap);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- the registrar ----------------------------------------------------- */

/* epoll_ctl's errno as a status: the descriptor's fault is AX_EINVAL. */
static ax_status_t ctl_error(const char *op, int fd, uint64_t id, int err)
{
    ax_status_t s;

    switch (err) {
    case EBADF:  /* not an open descriptor */
    case EPERM:  /* a descriptor epoll cannot watch, e.g. a regular file */
    case EINVAL: /* the epoll itself, or otherwise unusable */
    case EEXIST: /* already registered with this poller */
        s = AX_EINVAL;
        break;
    case ENOMEM:
        s = AX_ENOMEM;
        break;
    default:
        s = AX_EIO;
        break;
    }
    if (id == 0)
        return ax__error(s, "poller: epoll_ctl(%s, fd %d): %s", op, fd, strerror(err));
    return ax__error(s, "poller: epoll_ctl(%s, fd %d, id %llu): %s", op, fd,
                     (unsigned long long)id, strerror(err));
}

static ax_status_t check_interest(const char *who, uint32_t interest)
{
    if ((interest & ~POLL_BITS) != 0)
        return ax__error(AX_EINVAL, "%s: unknown interest bits 0x%x", who,
                         (unsigned)(interest & ~POLL_BITS));
    return AX_OK;
}

ax_status_t ax__poller_add(ax__poller_t *p, int fd, uint32_t interest, void *ctx, uint64_t *id)
{
    struct epoll_event ev;
    struct reg *r;
    uint64_t nid;
    ax_status_t st;

    if (p == NULL || id == NULL)
        return ax__error(AX_EINVAL, "poller_add: %s is NULL", p == NULL ? "poller" : "id");
    if (fd < 0)
        return ax__error(AX_EINVAL, "poller_add: fd %d is not a descriptor", fd);
    st = check_interest("poller_add", interest);
    if (st != AX_OK)
        return st;
    r = malloc(sizeof(*r));
    if (r == NULL)
        return ax__error(AX_ENOMEM, "poller_add: out of memory");
    r->fd = fd;
    r->interest = interest;
    r->ctx = ctx;

    memset(&ev, 0, sizeof(ev));
    ev.events = interest | EPOLLET;
    pthread_mutex_lock(&p->lock);
    nid = p->next_id++;
    ev.data.u64 = nid;
    /* Into the table before the kernel learns of it: with edge
     * triggering, an event dropped because its id was not yet known would
     * be an edge lost for good. */
    if (!tab_put(&p->regs, nid, r)) {
        st = ax__error(AX_ENOMEM, "poller_add: out of memory");
    } else if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        st = ctl_error("ADD", fd, 0, errno);
        tab_del(&p->regs, nid);
    } else {
        r = NULL;
        *id = nid;
    }
    pthread_mutex_unlock(&p->lock);
    free(r);
    return st;
}

ax_status_t ax__poller_modify(ax__poller_t *p, uint64_t id, uint32_t interest)
{
    struct epoll_event ev;
    struct reg *r;
    ax_status_t st;

    if (p == NULL)
        return ax__error(AX_EINVAL, "poller_modify: poller is NULL");
    st = check_interest("poller_modify", interest);
    if (st != AX_OK)
        return st;
    memset(&ev, 0, sizeof(ev));
    ev.events = interest | EPOLLET;
    ev.data.u64 = id;
    pthread_mutex_lock(&p->lock);
    r = (id == WAKE_ID || id == TIMER_ID) ? NULL : tab_get(&p->regs, id);
    if (r == NULL) {
        st = ax__error(AX_ENOTFOUND, "poller_modify: no registration %llu", (unsigned long long)id);
    } else if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, r->fd, &ev) != 0) {
        st = ctl_error("MOD", r->fd, id, errno);
    } else {
        r->interest = interest;
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

ax_status_t ax__poller_remove(ax__poller_t *p, uint64_t id)
{
    struct reg *r;
    ax_status_t st = AX_OK;

    if (p == NULL)
        return ax__error(AX_EINVAL, "poller_remove: poller is NULL");
    pthread_mutex_lock(&p->lock);
    /* Leaving the table is what stops the reports: the poll thread looks
     * ids up under this lock. */
    r = (id == WAKE_ID || id == TIMER_ID) ? NULL : tab_del(&p->regs, id);
    if (r == NULL) {
        st = ax__error(AX_ENOTFOUND, "poller_remove: no registration %llu", (unsigned long long)id);
    } else if (epoll_ctl(p->epfd, EPOLL_CTL_DEL, r->fd, NULL) != 0 && errno != EBADF &&
               errno != ENOENT) {
        /* EBADF or ENOENT: the caller closed the descriptor first. The
         * kernel drops its entry when the file's last reference goes;
         * until then its events carry an id that is gone and die in the
         * lookup, so the registration is removed all the same. */
        st = ctl_error("DEL", r->fd, id, errno);
    }
    pthread_mutex_unlock(&p->lock);
    free(r);
    return st;
}

/* ---- waking ------------------------------------------------------------ */

/*
 * Why no wake is lost. A waker does (1) pending += 1 and, only when it saw
 * 0, (2) writes the eventfd. The poll thread, on an eventfd event, does
 * (a) read the eventfd (drains it), then (b) pending = 0, then (c)
 * reports one AX__EV_WAKE. Take any wake W and look at the order in which
 * the increments and resets hit `pending`:
 *  - W saw 0: its write comes after its increment, which comes after the
 *    last reset, whose drain (a) came earlier still. So the write is still
 *    in the eventfd, or is read by a later drain; either way it raises an
 *    edge that epoll reports after the write, and the cycle it triggers
 *    resets and reports after W.
 *  - W saw n > 0: some W' saw 0 after the last reset and no reset has come
 *    since. The cycle W' is owed (above) resets after W, so its report
 *    covers W too.
 * The order (a) before (b) is what makes this hold. Reset first, and a
 * waker could see 0, write, and have its write swallowed by the drain of
 * the cycle in progress; its increment would then outlive that cycle's
 * reset, leave pending > 0 with an empty eventfd, and every later waker
 * would skip its write: stuck for good. Drain first, and any write a drain
 * consumes came from a waker whose increment the following reset erases.
 * A waker that increments between (a) and (b) is reported by (c) and its
 * write, if it made one, costs one extra, harmless wake.
 */
void ax__poller_wake(ax__poller_t *p)
{
    uint64_t one = 1;

    if (p == NULL)
        return;
    /* Release: what the waker did before waking (the work it queued) is
     * visible to the poll thread once its reset reads this increment. */
    ck_pr_fence_release();
    if (ck_pr_faa_64(&p->wake_pending, 1) != 0)
        return;
    /* A non-blocking eventfd write of 1 fails only if the counter is near
     * UINT64_MAX, and it holds at most one write per reset. */
    if (write(p->evfd, &one, sizeof(one)) == (ssize_t)sizeof(one)) {
        /* A statistic for tests, read after they join their threads:
         * atomicity is all it needs. */
        ck_pr_inc_64(&p->wake_writes);
    }
}

uint64_t ax__poller_wake_writes(const ax__poller_t *p)
{
    /* A plain atomic read of a counter; callers order it by joining. */
    return p == NULL ? 0 : ck_pr_load_64(&p->wake_writes);
}

/* Steps (a) and (b) above, on the poll thread. */
static void consume_wake(ax__poller_t *p)
{
    uint64_t v;

    /* One read takes the whole count; EAGAIN means a write already
     * drained by an earlier cycle (see above), which is fine. */
    while (read(p->evfd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    /* An atomic exchange, not a store: reading the last increment is what
     * makes each waker's release pair with the acquire below. */
    ck_pr_fas_64(&p->wake_pending, 0);
    /* Acquire: the caller handling this wake sees what the wakers did
     * before they woke us. */
    ck_pr_fence_acquire();
}

/* ---- timers ------------------------------------------------------------ */

ax_status_t ax__poller_timer_add(ax__poller_t *p, uint64_t delay_ns, void *ctx, uint64_t *id)
{
    struct ptimer *t;
    uint64_t now;
    ax_status_t st = AX_OK;

    if (p == NULL || id == NULL)
        return ax__error(AX_EINVAL, "poller_timer_add: %s is NULL", p == NULL ? "poller" : "id");
    t = malloc(sizeof(*t));
    if (t == NULL)
        return ax__error(AX_ENOMEM, "poller_timer_add: out of memory");
    now = ax__now_ns();
    /* Saturate: a deadline past the end of time simply never comes. */
    t->deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
    t->ctx = ctx;

    pthread_mutex_lock(&p->lock);
    t->id = p->next_id++;
    if (!tab_put(&p->timers, t->id, t)) {
        st = ax__error(AX_ENOMEM, "poller_timer_add: out of memory");
    } else if (!heap_push(p, t)) {
        tab_del(&p->timers, t->id);
        st = ax__error(AX_ENOMEM, "poller_timer_add: out of memory");
    } else if (t->slot == 0) {
        /* A new earliest deadline: re-arm, which also wakes a poll thread
         * asleep in epoll_wait when the new deadline comes. */
        st = arm_timerfd(p);
        if (st != AX_OK) {
            heap_remove(p, t);
            tab_del(&p->timers, t->id);
        }
    }
    if (st == AX_OK) {
        *id = t->id;
        t = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(t);
    return st;
}

ax_status_t ax__poller_timer_cancel(ax__poller_t *p, uint64_t id)
{
    struct ptimer *t;
    ax_status_t st = AX_OK;

    if (p == NULL)
        return ax__error(AX_EINVAL, "poller_timer_cancel: poller is NULL");
    pthread_mutex_lock(&p->lock);
    t = (id == WAKE_ID || id == TIMER_ID) ? NULL : tab_del(&p->timers, id);
    if (t == NULL) {
        st = ax__error(AX_ENOTFOUND, "poller_timer_cancel: no pending timer %llu",
                       (unsigned long long)id);
    } else {
        bool was_first = t->slot == 0;

        heap_remove(p, t);
        /* Keep the timerfd on the earliest live deadline; a failure here
         * only means an early, empty expiry, which the poll thread
         * re-arms, so the cancel itself has succeeded. */
        if (was_first)
            (void)arm_timerfd(p);
    }
    pthread_mutex_unlock(&p->lock);
    free(t);
    return st;
}

/* Report due timers into out[0..room) and re-arm for the rest. Caller
 * holds lock. Timers beyond room stay in the heap; the timerfd, armed for
 * a deadline already past, fires again at once for the next wait. */
static size_t pop_due(ax__poller_t *p, ax__poll_event_t *out, size_t room, ax_status_t *st)
{
    uint64_t now = ax__now_ns();
    size_t k = 0;

    /* `now` is read after the timerfd fired, and we only take deadlines
     * <= now, so no timer is reported early whatever woke us. */
    while (k < room && p->heap_len > 0 && p->heap[0]->deadline <= now) {
        struct ptimer *t = p->heap[0];

        heap_remove(p, t);
        tab_del(&p->timers, t->id);
        out[k].kind = AX__EV_TIMER;
        out[k].id = t->id;
        out[k].ctx = t->ctx;
        out[k].events = 0;
        k++;
        free(t);
    }
    *st = arm_timerfd(p);
    return k;
}

/* ---- waiting ----------------------------------------------------------- */

/* Turn a batch of kernel events into fd reports in out, noting whether
 * the eventfd or the timerfd fired. Returns the number of reports. */
static size_t take_batch(ax__poller_t *p, const struct epoll_event *evs, int got,
                         ax__poll_event_t *out, bool *woken, bool *timed)
{
    size_t k = 0;
    int i;

    pthread_mutex_lock(&p->lock);
    for (i = 0; i < got; i++) {
        uint64_t id = evs[i].data.u64;
        struct reg *r;

        if (id == WAKE_ID) {
            *woken = true;
        } else if (id == TIMER_ID) {
            *timed = true;
        } else if ((r = tab_get(&p->regs, id)) != NULL) {
            /* Looked up under the lock: a remove that has returned took
             * the id out first, so its late events die here. */
            out[k].kind = AX__EV_FD;
            out[k].id = id;
            out[k].ctx = r->ctx;
            out[k].events = evs[i].events & POLL_BITS;
            k++;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return k;
}

ax_status_t ax__poller_wait(ax__poller_t *p, int timeout_ms, ax__poll_event_t *out, size_t max, size_t *n)
{
    struct epoll_event evs[BATCH];
    bool woken = false, timed = false;
    size_t k;
    int got;
    ax_status_t st = AX_OK;

    if (n != NULL)
        *n = 0;
    if (p == NULL || out == NULL || n == NULL || max == 0)
        return ax__error(AX_EINVAL, "poller_wait: %s",
                         p == NULL ? "poller is NULL" : out == NULL ? "out is NULL"
                                                    : n == NULL   ? "n is NULL"
                                                                  : "max is 0");
    /* Each kernel event yields at most one fd or wake report, so asking
     * for at most max of them leaves room for all of those. */
    got = epoll_wait(p->epfd, evs, (int)(max < BATCH ? max : BATCH), timeout_ms);
    p->full = got == (int)(max < BATCH ? max : BATCH);
    if (got < 0) {
        if (errno == EINTR)
            return AX_OK;
        return ax__error(AX_EIO, "poller: epoll_wait(fd %d): %s", p->epfd, strerror(errno));
    }

    k = take_batch(p, evs, got, out, &woken, &timed);
    if (woken) {
        consume_wake(p);
        out[k].kind = AX__EV_WAKE;
        out[k].id = 0;
        out[k].ctx = NULL;
        out[k].events = 0;
        k++;
    }
    if (timed) {
        uint64_t v;

        /* Drain the expiry count before re-arming; EAGAIN means a
         * registrar re-armed meanwhile, and pop_due re-arms anyway. */
        while (read(p->tfd, &v, sizeof(v)) < 0 && errno == EINTR)
            ;
        /* The timer event took a kernel slot but gave no report, so
         * room >= 1 here. */
        pthread_mutex_lock(&p->lock);
        k += pop_due(p, out + k, max - k, &st);
        pthread_mutex_unlock(&p->lock);
    }
    *n = k;
    /* A failed re-arm leaves the reports in out valid; the caller sees
     * them through *n and the failure through the status. */
    return st;
}

int ax__poller_fd(const ax__poller_t *p)
{
    return p->epfd;
}

bool ax__poller_full(const ax__poller_t *p)
{
    return p->full;
}
