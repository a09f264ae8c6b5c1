/* The network thread's receives through io_uring: see uring.h. */
#include "dispatch/uring.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "dispatch/net_internal.h"

/* Valgrind cannot see the kernel write a posted buffer; without this it
 * would call every byte received through the ring uninitialised. And
 * Valgrind 3.19 does not know that io_uring_enter may block: a thread that
 * waits in it holds Valgrind's lock, and every other thread stops until a
 * completion comes (a stand-alone program whose second thread was to wake
 * the waiter hung for good). So under Valgrind the network thread reads
 * with epoll, as where the kernel refuses io_uring (under_valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MARK_WRITTEN(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#define VALGRIND_SAYS() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef MARK_WRITTEN
#define MARK_WRITTEN(p, n) ((void)(p), (void)(n))
#define VALGRIND_SAYS() false
#endif

/*
 * Whether this program runs under Valgrind. Its client request answers
 * where the build found Valgrind's headers. Where it did not (Valgrind
 * installed later, or an object built before it was), the preload that
 * Valgrind gives every program it runs (LD_PRELOAD naming its
 * vgpreload_*.so) answers: without it such a build would wait in the ring
 * and stop every thread.
 */
static bool under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");

    return VALGRIND_SAYS() || (preload != NULL && strstr(preload, "vgpreload") != NULL);
}

/* ThreadSanitizer orders a socket's reader after its writers in its read
 * and recv interceptors, which a receive through the ring never passes:
 * bytes sent by one system and received by another in the same process
 * would look unordered. A read of no bytes, which the kernel answers at
 * once, stands in for it. TSan builds only. */
#if defined(AXON_TSAN) || defined(__SANITIZE_THREAD__)
#define SHOW_TSAN_READ(fd)                                                                               \
    do {                                                                                                 \
        char byte_;                                                                                      \
        (void)!read((fd), &byte_, 0);                                                                    \
    } while (0)
#else
#define SHOW_TSAN_READ(fd) ((void)(fd))
#endif

/* Submission queue entries: a receive per open connection and the poll,
 * posted between two waits. A fuller queue is submitted on the spot. */
#define RING_ENTRIES 256

/* user_data of what is not a receive (a receive's is its connection). */
#define TAG_EPOLL ((uint64_t)1) /* the multishot poll on epfd */
#define TAG_CANCEL ((uint64_t)2) /* a cancel request */

struct ax__ring_s {
    struct io_uring ring;
    int epfd;
    bool polling;    /* the multishot poll on epfd is posted */
    bool epoll_seen; /* it completed since the last ax__ring_wait said so */
    ax__conn_t *done, **done_tail; /* kept completions, oldest first */
};

/* A free submission entry, submitting what is queued when none is left;
 * NULL when the kernel takes none either. */
static struct io_uring_sqe *entry(ax__ring_t *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

    if (sqe == NULL && io_uring_submit(&r->ring) >= 0)
        sqe = io_uring_get_sqe(&r->ring);
    return sqe;
}

static void arm_poll(ax__ring_t *r)
{
    struct io_uring_sqe *sqe = entry(r);

    if (sqe == NULL)
        return; /* the next wait tries again */
    io_uring_prep_poll_multishot(sqe, r->epfd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_EPOLL);
    r->polling = true;
}

ax_status_t ax__ring_create(int epfd, ax__ring_t **out)
{
    ax__ring_t *r = calloc(1, sizeof(*r));
    int rc;

    *out = NULL;
    if (r == NULL)
        return ax__error(AX_ENOMEM, "net: out of memory for the receive ring");
    if (under_valgrind()) {
        free(r);
        return ax__error(AX_EIO, "net: io_uring under Valgrind, whose waits it stops: reading with epoll");
    }
    rc = io_uring_queue_init(RING_ENTRIES, &r->ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    if (rc < 0) {
        free(r);
        return ax__error(AX_EIO, "net: io_uring refused (%s): reading with epoll", strerror(-rc));
    }
    r->epfd = epfd;
    r->done_tail = &r->done;
    arm_poll(r);
    *out = r;
    return AX_OK;
}

void ax__ring_destroy(ax__ring_t **r)
{
    if (*r == NULL)
        return;
    io_uring_queue_exit(&(*r)->ring);
    free(*r);
    *r = NULL;
}

bool ax__ring_recv(ax__ring_t *r, ax__conn_t *c, void *buf, size_t len)
{
    struct io_uring_sqe *sqe = entry(r);

    if (sqe == NULL)
        return false;
    io_uring_prep_recv(sqe, c->fd, buf, len, 0);
    io_uring_sqe_set_data(sqe, c);
    c->ring_posted = true;
    c->ring_buf = buf;
    c->ring_len = len;
    return true;
}

/* Whether io_uring_enter's result rc says the ring is broken, not just
 * interrupted (EINTR), short of memory for now (EAGAIN), holding
 * completions it could not post (EBUSY) or at its timeout (ETIME). */
static bool broken(int rc)
{
    return rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME;
}

/* Move every completion out of the completion queue. */
static void collect(ax__ring_t *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, k = 0;

    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        k++;
        if (cqe->user_data == TAG_EPOLL) {
            r->epoll_seen = true;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                r->polling = false; /* it ended: posted again by the next wait */
        } else if (cqe->user_data != TAG_CANCEL) {
            ax__conn_t *c = io_uring_cqe_get_data(cqe);

            c->ring_posted = false;
            c->ring_res = cqe->res;
            if (cqe->res > 0) {
                MARK_WRITTEN(c->ring_buf, (size_t)cqe->res);
                SHOW_TSAN_READ(c->fd);
            }
            c->ring_next = NULL;
            *r->done_tail = c;
            r->done_tail = &c->ring_next;
            c->ring_done = true;
        }
    }
    io_uring_cq_advance(&r->ring, k);
}

/* Drop c from the kept completions. */
static void unkeep(ax__ring_t *r, ax__conn_t *c)
{
    if (!c->ring_done)
        return;
    for (ax__conn_t **pp = &r->done; *pp != NULL; pp = &(*pp)->ring_next) {
        if (*pp == c) {
            *pp = c->ring_next;
            if (r->done_tail == &c->ring_next)
                r->done_tail = pp;
            break;
        }
    }
    c->ring_done = false;
}

void ax__ring_cancel(ax__ring_t *r, ax__conn_t *c)
{
    if (c->ring_posted) {
        struct io_uring_sqe *sqe = entry(r);

        if (sqe != NULL) {
            io_uring_prep_cancel(sqe, c, 0);
            io_uring_sqe_set_data64(sqe, TAG_CANCEL);
        } else {
            /* No entry for a cancel: a socket shut down ends its
             * receive too (c is closing). */
            shutdown(c->fd, SHUT_RDWR);
        }
        while (c->ring_posted) {
            if (broken(io_uring_submit_and_wait(&r->ring, 1)))
                break; /* c stays posted, and is never freed */
            collect(r);
        }
    }
    unkeep(r, c);
}

ax_status_t ax__ring_wait(ax__ring_t *r, bool block, bool *epoll)
{
    int rc;

    if (!r->polling)
        arm_poll(r);
    rc = block && r->done == NULL && !r->epoll_seen ? io_uring_submit_and_wait(&r->ring, 1)
                                                     : io_uring_submit_and_get_events(&r->ring);
    collect(r);
    *epoll = r->epoll_seen;
    r->epoll_seen = false;
    if (broken(rc))
        return ax__error(AX_EIO, "net: io_uring_enter: %s", strerror(-rc));
    return AX_OK;
}

bool ax__ring_next(ax__ring_t *r, ax__conn_t **c, int *res)
{
    ax__conn_t *d = r->done;

    if (d == NULL)
        return false;
    r->done = d->ring_next;
    if (r->done == NULL)
        r->done_tail = &r->done;
    d->ring_done = false;
    *c = d;
    *res = d->ring_res;
    return true;
}

bool ax__ring_pending(const ax__ring_t *r)
{
    return r->done != NULL;
}
