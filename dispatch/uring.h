/*
 * Internal to dispatch/: the network thread's receives through io_uring
 * (network.io_uring; dispatch/NOTES.md, "Receives through io_uring").
 *
 * With epoll, a round trip costs each side three system calls: the wait,
 * the read, the write. Here an open connection keeps one receive posted
 * into its decoder's free space (unless it streams: netthread.c reads a
 * stream with epoll), and the network thread waits in io_uring_enter,
 * which returns with the bytes: two calls a side. The
 * poller's epoll descriptor is watched by a multishot poll in the same
 * ring, so the wait also ends for every epoll event (wakes, timers,
 * accepts, handshakes, writable sockets), which the thread then takes
 * with epoll_wait(0) as before.
 *
 * One ring per network thread, set up on it with SINGLE_ISSUER and
 * DEFER_TASKRUN: only that thread submits, and completions are run when it
 * waits. Every call below is for the network thread only.
 *
 * The rule that keeps a decoder's memory safe: while a connection has a
 * receive posted (c->ring_posted), the kernel owns its decoder's free
 * space. Nothing else reads that socket or asks that decoder for space
 * until the completion has been taken, and a connection that closes
 * cancels its receive and waits for the completion (ax__ring_cancel)
 * before its decoder and its memory go.
 */
#ifndef AXON_DISPATCH_URING_H
#define AXON_DISPATCH_URING_H

#include <stdbool.h>
#include <stddef.h>

#include "axon/status.h"

typedef struct ax__conn_s ax__conn_t;
typedef struct ax__ring_s ax__ring_t;

/* A ring for the calling thread that also watches epfd. AX_EIO when the
 * kernel refuses io_uring (the detail gives its reason: no support, the
 * io_uring_disabled sysctl, a seccomp filter), AX_ENOMEM. */
ax_status_t ax__ring_create(int epfd, ax__ring_t **out);

/* Close the ring. No receive may be posted any more. */
void ax__ring_destroy(ax__ring_t **r);

/* Post a receive of up to len bytes from c's socket into buf; it is
 * submitted by the next ax__ring_wait. c->ring_posted is set. false
 * (nothing posted) when the ring cannot take it now. */
bool ax__ring_recv(ax__ring_t *r, ax__conn_t *c, void *buf, size_t len);

/* Cancel c's posted receive and wait until it completes; completions of
 * other connections that arrive meanwhile are kept for ax__ring_next.
 * Drops c from the completions not yet taken, too. Afterwards no
 * completion names c. */
void ax__ring_cancel(ax__ring_t *r, ax__conn_t *c);

/*
 * Submit what was posted, and if block, wait until at least one
 * completion is there. Receives' completions are kept for ax__ring_next;
 * *epoll is set when epoll may have events (then take them with the
 * poller, timeout 0). AX_EIO with a detail when io_uring_enter fails with
 * something other than EINTR (EINTR returns AX_OK).
 */
ax_status_t ax__ring_wait(ax__ring_t *r, bool block, bool *epoll);

/* The next kept completion: its connection (ring_posted cleared) and the
 * receive's result (bytes, 0 at the end of the stream, or -errno). false
 * when none is left. */
bool ax__ring_next(ax__ring_t *r, ax__conn_t **c, int *res);

/* Whether completions are kept for ax__ring_next. */
bool ax__ring_pending(const ax__ring_t *r);

#endif
