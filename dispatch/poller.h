/*
 * Internal to dispatch/: the poller and its registrar (after amy).
 *
 * One thread polls (the network thread). Any thread may register,
 * change or remove a file descriptor, wake the poller, or add and cancel
 * timers. Every registration gets a 64-bit id that is never reused, and an
 * event carries the id, not a pointer: an event that arrives for a
 * registration removed meanwhile is dropped by the poller, so the loop
 * never acts on a closed or reused descriptor.
 *
 * Waking: ax__poller_wake() increments a pending count and writes the
 * eventfd only on its 0 -> 1 transition; the poll thread resets the count
 * when it reads the eventfd. Many wakes before the poller runs cost one
 * write, and no wake is lost: a wake after the reset writes again.
 *
 * Timers: one timerfd, armed for the earliest deadline of a min-heap of
 * timers. A timer never fires before its deadline (CLOCK_MONOTONIC).
 */
#ifndef AXON_DISPATCH_POLLER_H
#define AXON_DISPATCH_POLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"
#include "common/clock.h"

typedef struct ax__poller_s ax__poller_t;

/* Interest and readiness bits (the same values as EPOLLIN etc.). Polling
 * is always edge-triggered. */
#define AX__POLL_IN 0x001u
#define AX__POLL_OUT 0x004u
#define AX__POLL_ERR 0x008u
#define AX__POLL_HUP 0x010u
#define AX__POLL_RDHUP 0x2000u /* the peer shut its writing side down */

typedef enum ax__poll_kind_e {
    AX__EV_FD,    /* readiness of a registered descriptor */
    AX__EV_TIMER, /* a timer reached its deadline */
    AX__EV_WAKE,  /* ax__poller_wake() was called since the last poll */
} ax__poll_kind_t;

typedef struct ax__poll_event_s {
    ax__poll_kind_t kind;
    uint64_t id;     /* registration id (AX__EV_FD) or timer id (AX__EV_TIMER) */
    void *ctx;       /* the ctx given at registration or timer creation */
    uint32_t events; /* AX__POLL_* for AX__EV_FD */
} ax__poll_event_t;

ax_status_t ax__poller_create(ax__poller_t **out);

/* Close the epoll, eventfd and timerfd (registered descriptors are the
 * caller's to close). No other thread may use the poller any more. */
void ax__poller_destroy(ax__poller_t **p);

/* Register fd for the given interest; *id receives a fresh id (never 0,
 * never reused). Any thread. AX_EINVAL for a bad fd, AX_EIO for another
 * epoll_ctl failure (detail says which), AX_ENOMEM. */
ax_status_t ax__poller_add(ax__poller_t *p, int fd, uint32_t interest, void *ctx, uint64_t *id);

/* Change the interest of a registration (edge-triggered: re-arming
 * reports readiness that is present now). AX_ENOTFOUND for an unknown or
 * removed id. Any thread. */
ax_status_t ax__poller_modify(ax__poller_t *p, uint64_t id, uint32_t interest);

/* Remove a registration; its pending and later events are dropped. Call
 * before closing the fd. AX_ENOTFOUND for an unknown id. Any thread. */
ax_status_t ax__poller_remove(ax__poller_t *p, uint64_t id);

/* Wake the poll thread (see above). Any thread; async-signal-safe is not
 * required. */
void ax__poller_wake(ax__poller_t *p);

/* How many times the eventfd was actually written (for tests). */
uint64_t ax__poller_wake_writes(const ax__poller_t *p);

/* A one-shot timer firing at or after now + delay_ns; *id receives a
 * fresh timer id (never 0, never reused). Any thread. */
ax_status_t ax__poller_timer_add(ax__poller_t *p, uint64_t delay_ns, void *ctx, uint64_t *id);

/* Cancel a timer that has not fired; AX_ENOTFOUND when it fired or was
 * cancelled already. Any thread. */
ax_status_t ax__poller_timer_cancel(ax__poller_t *p, uint64_t id);

/*
 * Wait up to timeout_ms (-1: no limit) for events and return up to max of
 * them in out (*n). A wake is reported once as AX__EV_WAKE however many
 * wakes there were. Due timers are reported as AX__EV_TIMER, each once.
 * Events of removed registrations are not reported. Poll thread only.
 * AX_EIO with a detail when epoll_wait fails with something other than
 * EINTR (EINTR returns AX_OK with *n == 0).
 */
ax_status_t ax__poller_wait(ax__poller_t *p, int timeout_ms, ax__poll_event_t *out, size_t max, size_t *n);

/* The epoll descriptor, for a ring that watches it (uring.h); it becomes
 * readable when events are ready. Not for waiting on directly. */
int ax__poller_fd(const ax__poller_t *p);

/* Whether the last ax__poller_wait filled its batch, so that more events
 * may be ready without another wake-up of the descriptor. Poll thread
 * only. */
bool ax__poller_full(const ax__poller_t *p);

#endif
