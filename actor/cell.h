/*
 * Internal to actor/: the runtime header of every actor (a cell) and its
 * mailbox.
 *
 * The control word. `word` holds the actor's id in its top 56 bits and
 * the flags below in the low 8. Senders read it once to decide between the
 * mailbox and dead letters; stop, kill and start are a CAS on it that
 * checks the id. Cell memory is recycled for new actors (never returned to
 * the OS while the system lives), so a ref may point at a cell that now
 * belongs to someone else: the id in the word tells, and a CAS with an old
 * id fails instead of stopping the wrong actor.
 *
 * The mailbox is the tagged MPSC queue of serial/mpsc.h: a push is one
 * atomic exchange, and the pusher that finds it idle schedules the actor,
 * so an actor is scheduled exactly once per transition from idle to
 * non-empty. Only the worker running the actor marks it idle, and only
 * when it is empty.
 */
#ifndef AXON_ACTOR_CELL_H
#define AXON_ACTOR_CELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/actor.h"
#include "common/ax_atomic.h"
#include "serial/frame.h"
#include "serial/mpsc.h"

#define AX__W_START  0x01u /* request: run on_start */
#define AX__W_STOP   0x02u /* request: graceful stop */
#define AX__W_KILL   0x04u /* request: kill */
#define AX__W_SUSPENDED 0x08u /* failed, waiting for a restart: held, and its
                                 schedule goes to whoever clears this bit */
#define AX__W_SEALED 0x10u /* accepts no more messages */
#define AX__W_ENDED  0x20u /* ended; the cell awaits reuse */
#define AX__W_CLAIMED 0x40u /* a created actor has been scheduled once */
#define AX__W_BOUNDED 0x80u /* its vtable has a mailbox_capacity: set with the
                             * id and never changed, so that a tell tests it
                             * with SEALED in the word it loads anyway */
#define AX__W_REQUESTS (AX__W_START | AX__W_STOP | AX__W_KILL)
#define AX__W_ID_SHIFT 8
#define AX__ID_MAX ((UINT64_C(1) << 56) - 1)
/* Unique ids from 2^55 up name ask reply slots on the wire (ask.c): actor
 * ids stay below, so the two never collide. */
#define AX__ASK_ID_BIT (UINT64_C(1) << 55)

/* The kind of a ref lives in the top bits of its id; actor ids stay below
 * 2^56, so a local ref's id is the actor id itself. */
#define AX__REF_KIND_MASK (UINT64_C(3) << 62)
#define AX__REF_LOCAL (UINT64_C(0) << 62)
#define AX__REF_REMOTE (UINT64_C(1) << 62)
#define AX__REF_REPLY (UINT64_C(2) << 62)
#define AX__REF_TIMER (UINT64_C(3) << 62)

/* Whether ref points somewhere, as a ref of the given kind (one of the
 * AX__REF_* values above). */
static inline bool ax__ref_is(ax_ref_t ref, uint64_t kind)
{
    return ref.target != NULL && (ref.id & AX__REF_KIND_MASK) == kind;
}

/* Flags only the actor's own worker writes (STARTED) or that registry
 * calls set atomically (NAMED, PUBLISHED). */
#define AX__L_STARTED   0x1u /* on_start has run */
#define AX__L_NAMED     0x2u /* has a registered name */
#define AX__L_PUBLISHED 0x4u /* is in the id table */
#define AX__L_STOPPING  0x8u /* sealed by a graceful stop, draining */
#define AX__L_FAILED    0x10u /* ax_fail was called in this handler */
#define AX__L_SUSPENDED 0x20u /* failed; a restart is pending */
#define AX__L_LATE1     0x40u /* stopped after the user's actors (late.c) */
#define AX__L_LATE2     0x80u /* stopped after those of LATE1 */
#define AX__L_SLOW      0x100u /* two runs running on the network thread took
                                  over 1 ms: workers only from then on (sched.c) */
#define AX__L_SLOW_ONCE 0x200u /* the last run there took over 1 ms */

/* The optional parts of an actor, allocated on first need and touched
 * only by the actor's own thread (and its creator before it starts). */
typedef struct ax__cell_ext_s {
    ax_ref_t parent;            /* AX_REF_NULL when the system is the parent */
    ax_ref_t *children;         /* live children, as far as this actor knows */
    size_t nchildren, cap;
    ax_encode_buffer_t *eb;     /* tell_serialised's pool, once created */
    /* Envelope caches for tell_serialised: the last local sender's packed
     * path (this actor's own, or, for the dispatcher, the actor it encodes
     * for) and the last local destination's, each with its ref and the
     * system address (its pointer) it was packed for. */
    const ax_addr_t *src_addr, *dst_addr;
    ax_ref_t src_ref, dst_ref;
    ax__packed_path_t src_packed, dst_packed;
    struct ax__env_memo_s *env; /* the last whole envelope, made with eb */
    /* Supervision. */
    ax_restart_policy_t policy;
    void *arg;                  /* init's argument, for restarts */
    uint64_t window_start;      /* of the current restart window */
    uint32_t restarts;          /* restarts in that window */
    ax_status_t fail_status;    /* from ax_fail */
    /* This actor's live timers, to end them with it. */
    uint64_t *timers;
    size_t ntimers, timers_cap;
} ax__cell_ext_t;

/*
 * Two cache lines, split by who writes them for every message. Senders
 * read the first line's word, sys and vt and exchange the mailbox's head,
 * its last field; the worker running the actor writes the second line
 * (the mailbox's tail and stub, its flags, its metrics) and, for each
 * message, reads only that line: the word only when `reqs` says a request
 * may be there, and vt and sys once per run (run.c). With both sides on
 * one line, it crossed the cores twice for every message of a flood
 * (actor/NOTES.md, "Two lines: senders' and the runner's"). Cells are
 * 64-byte aligned (slab.c), so the offsets below are the lines.
 */
typedef struct ax__cell_s {
    /* ---- line 0: what senders touch, and what seldom changes ---- */
    /* Plain loads are snapshots: a push that races with the end still goes to dead
     * letters (run.c, stale). After create's store every change is a CAS or an OR. */
    uint64_t word;              /* senders read, controllers CAS */
    ax_system_t *sys;           /* constant for the cell's life */
    const ax_actor_vtable_t *vt;
    struct ax__cell_s *sched_next; /* inject queue or free-list link */
    ax__cell_ext_t *ext;        /* optional parts, allocated on demand */
    struct ax__actor_msx_s *m_side; /* cold metrics, on the first sample */
    /* Bounded mailboxes: messages counted in and not yet taken (see
     * actor/bounded.c). At a fixed place for every cell, so a sender that
     * raced with the cell's reuse undoes its count where it made it. */
    uint32_t mcount;
    /* Metrics (actor/metrics.h): written only by the worker running the
     * actor, read by metrics readers with atomic loads (stale is fine). */
    uint32_t m_epoch;           /* the sample epoch last taken; once a run */
    /* Senders push; the running worker pops. Its head ends line 0, its
     * tail and stub begin line 1. */
    ax__mpsc_t mbox;
    /* ---- line 1: the running worker's ---- */
    /* AX__L_*. Atomic ops because NAMED and PUBLISHED are set by other
     * threads (ax_register, ax_ref_path), as are the LATE marks (late.c)
     * and the SLOW marks (sched.c, the network thread); the other flags
     * are the owning worker's, whose own reads need no ordering. */
    uint32_t lflags;
    /* The run budget is throughput << run_shift: it grows while runs end
     * with mail left, and resets when the actor goes idle (run.c). Only
     * the running worker touches it. */
    uint16_t run_shift;
    /* 1 once a controller has put a request in word (ax_start, ax_stop,
     * ax_kill: actor.c's request); the runner clears it before it reads
     * the word. A stale 1 only costs a read of the word. */
    uint16_t reqs;
    uint64_t m_handled;         /* messages handed to a handler */
    uint64_t m_time_ns;         /* handler time, in metrics-clock ticks */
    uint64_t m_time_max_ns;     /* the longest handler, same clock */
} ax__cell_t;

_Static_assert(sizeof(ax__cell_t) == sizeof(ax_actor_t), "ax_actor_t must match the cell");
_Static_assert(offsetof(ax__cell_t, mbox.head) < 64 && offsetof(ax__cell_t, mbox.tail) == 64,
               "the mailbox's head ends line 0 and its tail begins line 1");

static inline ax__cell_t *ax__cell(const ax_actor_t *a)
{
    return (ax__cell_t *)(uintptr_t)a;
}

static inline uint64_t ax__cell_id(const ax__cell_t *c)
{
    /* Relaxed (docs/memory-model.md, class R): the id is only compared,
     * never used to reach other data; a reader of the cell's fields orders
     * them itself. */
    return ck_pr_load_64(&c->word) >> AX__W_ID_SHIFT;
}

/* The mailbox is a tagged MPSC (serial/mpsc.h). A fresh cell's mailbox is
 * held (not idle), so messages sent before ax_start wait without
 * scheduling the actor. */
static inline void ax__mbox_init(ax__cell_t *c)
{
    ax__mpsc_init(&c->mbox, false);
}

/* True when the mailbox was idle and the caller must schedule. */
static inline bool ax__mbox_push(ax__cell_t *c, ax_msg_link_t *n)
{
    return ax__mpsc_push(&c->mbox, n);
}

/* first..last, linked in order, in one exchange; as ax__mbox_push. */
static inline bool ax__mbox_push_chain(ax__cell_t *c, ax_msg_link_t *first, ax_msg_link_t *last)
{
    return ax__mpsc_push_chain(&c->mbox, first, last);
}

static inline ax_msg_link_t *ax__mbox_pop(ax__cell_t *c)
{
    return ax__mpsc_pop(&c->mbox);
}

/* Paired with the full barrier of a controller's CAS on word: either it
 * sees the actor idle (and wakes it) or the actor sees its request. */
static inline bool ax__mbox_try_idle(ax__cell_t *c)
{
    return ax__mpsc_try_idle(&c->mbox);
}

static inline bool ax__mbox_try_wake(ax__cell_t *c)
{
    return ax__mpsc_try_wake(&c->mbox);
}

/* The recipient id and the lane that ax_tell_lane put in msg->to;
 * whether the message holds a place in a bounded mailbox's count; and
 * whether the runtime sent it for the runtime to act on before the
 * handler (a timer's message, a child's event: run.c, deliver_runtime),
 * so that a plain message is told apart by the word the stale check
 * loads anyway. */
#define AX__TO_LANE_SHIFT 56
#define AX__TO_LANE_MASK 7u
#define AX__TO_RUNTIME (UINT64_C(1) << 62)
#define AX__TO_COUNTED (UINT64_C(1) << 63)
_Static_assert(AX_MAX_LANES <= AX__TO_LANE_MASK + 1, "msg->to holds every lane");
static inline uint64_t ax__to_id(uint64_t to)
{
    return to & AX__ID_MAX;
}

static inline unsigned ax__to_lane(uint64_t to)
{
    return (unsigned)(to >> AX__TO_LANE_SHIFT) & AX__TO_LANE_MASK;
}

/* An actor's lanes, after its struct in the same allocation: per-lane
 * lists that only the running worker touches (see actor/run.c). */
typedef struct ax__lanes_s {
    uint32_t count;
    uint32_t served; /* messages taken, for the every-8th turn */
    uint32_t turn;   /* the lower lane whose turn comes next */
    uint32_t queued; /* messages in the lists */
    struct {
        ax_msg_link_t *head, *tail;
    } lane[];
} ax__lanes_t;

static inline size_t ax__lanes_offset(const ax_actor_vtable_t *vt)
{
    return (vt->size + 7) & ~(size_t)7;
}

/* Bytes of the user struct and the lanes. */
static inline size_t ax__lanes_end(const ax_actor_vtable_t *vt)
{
    if (vt->lanes <= 1)
        return vt->size;
    return ax__lanes_offset(vt) + sizeof(ax__lanes_t) +
           vt->lanes * sizeof(((ax__lanes_t *)0)->lane[0]);
}

/* A bounded mailbox's high-water mark, after the lanes: written by the
 * worker that takes messages, read by ax_mailbox_stats. */
typedef struct ax__bound_s {
    uint32_t high_water;
    uint32_t pad_;
} ax__bound_t;

static inline size_t ax__bound_offset(const ax_actor_vtable_t *vt)
{
    return (ax__lanes_end(vt) + 7) & ~(size_t)7;
}

/* Bytes the runtime allocates for an actor of vt. */
static inline size_t ax__cell_size(const ax_actor_vtable_t *vt)
{
    if (vt->mailbox_capacity == 0)
        return ax__lanes_end(vt);
    return ax__bound_offset(vt) + sizeof(ax__bound_t);
}

static inline ax__bound_t *ax__bound(ax__cell_t *c, const ax_actor_vtable_t *vt)
{
    return (ax__bound_t *)(void *)((unsigned char *)c + ax__bound_offset(vt));
}

static inline ax__lanes_t *ax__lanes_of(ax__cell_t *c, const ax_actor_vtable_t *vt)
{
    if (vt->lanes <= 1)
        return NULL;
    return (ax__lanes_t *)(void *)((unsigned char *)c + ax__lanes_offset(vt));
}

static inline ax__lanes_t *ax__lanes(ax__cell_t *c)
{
    /* A cell never used has no vtable yet (system destroy visits it). */
    if (c->vt == NULL)
        return NULL;
    return ax__lanes_of(c, c->vt);
}

#endif
