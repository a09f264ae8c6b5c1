/*
 * Internal to actor/: the system's timers (ChrysaLisp's mail-timeout).
 *
 * One hashed timing wheel per system, turned by one thread, ticks of
 * cfg.timer_tick_us. A timer is due at a time in nanoseconds
 * (CLOCK_MONOTONIC); it fires at the first tick at or after that time, so
 * it never fires early and is late by at most a tick plus the thread's
 * scheduling delay. A periodic timer's next due time is its previous due
 * time plus the period: no drift.
 *
 * User timers deliver a message to their actor; they never run a callback
 * on the timer thread. Internal timers (ask timeouts, restart back-off)
 * run a runtime function on the timer thread.
 *
 * A record's state decides who owns its message:
 *   ARMED       in the wheel; the record owns the message
 *   QUEUED      fired: the message is in the actor's mailbox
 *   DELIVERING  the actor's handler has it now
 *   CANCELLED   cancelled while QUEUED or DELIVERING: whoever holds the
 *               message next releases it and frees the record
 * The message carries a timer ref (the record and its generation) as its
 * sender; the worker checks it when it pops the message, so a cancelled
 * timer's message is discarded even after it was queued. Records are
 * recycled with a new generation, never unmapped, so a stale timer id or
 * ref is harmless.
 */
#ifndef AXON_ACTOR_TIMER_H
#define AXON_ACTOR_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/actor.h"
#include "actor/cell.h"
#include "common/clock.h"

typedef struct ax__timers_s ax__timers_t;

ax_status_t ax__timers_start(ax_system_t *sys, uint64_t tick_ns, ax__timers_t **out);

/* Stop the thread and release the messages of every timer left. No timer
 * may be added afterwards. */
void ax__timers_stop(ax__timers_t *t);
void ax__timers_destroy(ax__timers_t **t);

/* A user timer: deliver msg to target at due_ns, then every period_ns
 * (0: once). Takes *msg on AX_OK. */
ax_status_t ax__timer_user(ax__timers_t *t, uint64_t due_ns, uint64_t period_ns, ax_ref_t target,
                           ax_msg_t **msg, uint64_t *id);

/* An internal timer: fn(arg) on the timer thread at due_ns. */
ax_status_t ax__timer_fn(ax__timers_t *t, uint64_t due_ns, void (*fn)(void *arg), void *arg, uint64_t *id);

/* True while the timer has not ended (fired for good, or cancelled). */
bool ax__timer_live(ax__timers_t *t, uint64_t id);

/* Cancel: AX_OK when the timer was live (its message will not be handled
 * after this returns, unless it is being handled right now), AX_ENOTFOUND
 * when it fired (one-shot) or was cancelled already. */
ax_status_t ax__timer_cancel(ax__timers_t *t, uint64_t id);

/* A message popped from a mailbox that a timer sent (its sender is a timer
 * ref). ax__timer_claim: true when it may be handed to the handler; false
 * when the timer was cancelled (the message was released, *msg is NULL).
 * ax__timer_done after the handler with what is left of the message (NULL
 * if the handler kept it): a one-shot message is released, a periodic one
 * goes back to its timer. ax__timer_discard: release a timer's message and
 * end the timer (its actor ended, or the message could not be sent).
 * The first is inline: the worker asks it of every message marked
 * AX__TO_RUNTIME, and dead letters of every message they take. */
static inline bool ax__is_timer_msg(const ax_msg_t *msg)
{
    return ax__ref_is(msg->sender, AX__REF_TIMER);
}
bool ax__timer_claim(ax_msg_t **msg);
/* timer is the claimed message's sender (read before the handler ran, as
 * the handler may have freed the message). true when the timer ended. */
bool ax__timer_done(ax_ref_t timer, ax_msg_t **msg);
void ax__timer_discard(ax_msg_t **msg);

/* What the wheel holds for a live timer, for tests of the schedule
 * itself (due times on the grid, never a slot already gone by). false when
 * the timer has ended. */
typedef struct ax__timer_probe {
    uint64_t due_ns;    /* the next due time */
    uint64_t period_ns;
    uint64_t due_tick;  /* the tick it fires at */
    uint64_t last_tick; /* every tick up to here has been processed */
    uint64_t tick_ns;
    bool linked;        /* in the wheel (false: its message is out) */
} ax__timer_probe_t;
bool ax__timer_probe(ax__timers_t *t, uint64_t id, ax__timer_probe_t *out);

/* Bytes of timer records held; records are recycled, never freed before
 * the system, so this is also the high-water mark. */
uint64_t ax__timers_bytes(ax__timers_t *t);

#endif
