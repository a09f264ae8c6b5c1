/* Workers: run next slot, local rings, the inject queue, stealing, parking. */
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor_run.h"
#include "actor/system.h"
#include "buffers/chunk.h"
#include "common/clock.h"
#include "common/error.h"
#include "serial/msgmem.h"

#define SPIN_CLOCK_EVERY 16      /* find-work attempts between clock reads */
#define RUN_NEXT_STREAK_MAX 32   /* then the ring gets a turn */
#define INJECT_EVERY 61          /* check the inject queue first this often */
#define STEAL_BACKLOG 32         /* a ring this long gives a thief half */

_Thread_local ax__worker_t *ax__tls_worker __attribute__((tls_model("initial-exec")));

ax__worker_t *ax__current_worker(const ax_system_t *sys)
{
    ax__worker_t *w = ax__tls_worker;

    return w != NULL && w->sys == sys ? w : NULL;
}

/* ---- the inject queue: a FIFO under a spinlock ---------------------- */

static void inject_push(ax_system_t *sys, ax__cell_t *c)
{
    c->sched_next = NULL;
    ck_spinlock_lock(&sys->inject_lock);
    if (sys->inject_tail != NULL)
        sys->inject_tail->sched_next = c;
    else
        ck_pr_store_ptr(&sys->inject_head, c); /* read unlocked by peeks */
    sys->inject_tail = c;
    ck_spinlock_unlock(&sys->inject_lock);
}

/* Take the whole queue in one lock hold: its first cell, with *tail set
 * to its last (NULL when empty). */
static ax__cell_t *inject_take_all(ax_system_t *sys, ax__cell_t **tail)
{
    ax__cell_t *c;

    /* Unlocked peek: a stale NULL only delays us until the next look, and
     * parking re-checks after its full barrier. */
    *tail = NULL;
    if (ck_pr_load_ptr(&sys->inject_head) == NULL)
        return NULL;
    ck_spinlock_lock(&sys->inject_lock);
    c = sys->inject_head;
    *tail = sys->inject_tail;
    ck_pr_store_ptr(&sys->inject_head, NULL); /* as in inject_push */
    sys->inject_tail = NULL;
    ck_spinlock_unlock(&sys->inject_lock);
    return c;
}

/* Put the chain head..tail back in front of the queue, in order. */
static void inject_push_front(ax_system_t *sys, ax__cell_t *head, ax__cell_t *tail)
{
    ck_spinlock_lock(&sys->inject_lock);
    tail->sched_next = sys->inject_head;
    if (sys->inject_tail == NULL)
        sys->inject_tail = tail;
    ck_pr_store_ptr(&sys->inject_head, head); /* as in inject_push */
    ck_spinlock_unlock(&sys->inject_lock);
}

/* ---- parking ---------------------------------------------------------- */

static void wake_one(ax_system_t *sys)
{
    ax__worker_t *w;

    /* The caller made work visible and then fenced, or pushed it under
     * the inject lock (see sched.h). A worker that is looking for work
     * will find it, or see it when it parks (park looks again after its
     * full barrier): waking another would only add a futex call here and
     * a spinner on a busy core. */
    uint32_t parked = ck_pr_load_32(&sys->nparked);

    if (ck_pr_load_32(&sys->nspinning) != 0 || parked == 0)
        return;
    /* As many workers as the process has CPUs are awake already: each of
     * them looks for work before it parks (and park looks again after its
     * barrier), so one of them takes this. A worker woken beyond that only
     * takes a CPU from one that has work: with 16 workers on 2 CPUs, every
     * wake was a futex call, a context switch and a spinner, and spawning
     * ran at a fifth of its 2-worker rate (actor/NOTES.md). Handlers do
     * not block (actor.h), so an awake worker always comes back to look. */
    if (sys->nworkers - parked >= sys->max_awake)
        return;
    ck_spinlock_lock(&sys->park_lock);
    /* Again under the lock, which every waker's decrement holds: two
     * wakers that both read one awake worker above would otherwise both
     * wake one, and with 16 workers on 2 CPUs such races kept 3 to 5
     * workers taking turns at parking (actor/NOTES.md). */
    if (sys->nworkers - ck_pr_load_32(&sys->nparked) >= sys->max_awake) {
        ck_spinlock_unlock(&sys->park_lock);
        return;
    }
    w = sys->parked;
    if (w != NULL) {
        sys->parked = w->park_next;
        ck_pr_dec_32(&sys->nparked); /* under park_lock, like the list */
    }
    ck_spinlock_unlock(&sys->park_lock);
    if (w != NULL)
        sem_post(&w->sem);
}

/* After a push onto a ring (and any overflow onto the inject queue): a
 * full fence, so that the work is visible to thieves before we read
 * nparked (a parker looks again after its own full barrier: one of us
 * sees the other), then wake_one. A push onto the inject queue alone
 * needs no fence (inject_and_wake). */
static void wake_after_publish(ax_system_t *sys)
{
    ck_pr_fence_memory();
    wake_one(sys);
}

void ax__sched_wake_all(ax_system_t *sys)
{
    ax__worker_t *w, *next;

    ck_spinlock_lock(&sys->park_lock);
    w = sys->parked;
    sys->parked = NULL;
    ck_pr_store_32(&sys->nparked, 0); /* under park_lock, like the list */
    ck_spinlock_unlock(&sys->park_lock);
    for (; w != NULL; w = next) {
        next = w->park_next;
        sem_post(&w->sem);
    }
}

/* ---- who is awake -------------------------------------------------------
 *
 * Only a worker pushes onto its own ring, and it parks only when it has
 * found that ring empty; so a parked worker's ring stays empty until the
 * worker is back, and whoever looks for work (steal, work_visible) skips
 * it. With 16 workers on 2 CPUs, 14 of them parked, the spinner's every
 * look went over 16 rings, and took the CPU that the spawning thread or
 * the working worker needed (actor/NOTES.md, "Spawn under many workers").
 * A worker sets its bit before it can push anything, with a full barrier,
 * so a looker that could see a push sees the bit; a stale bit only makes
 * it look at an empty ring, or miss a steal from a worker that runs its
 * own ring anyway. */

static void awake_set(ax__worker_t *w, bool awake)
{
    uint64_t bit = UINT64_C(1) << (w->index % 64);

    /* Full barrier (lock-prefixed on x86), see above. */
    if (awake)
        ck_pr_or_64(&w->sys->awake[w->index / 64], bit);
    else
        ck_pr_and_64(&w->sys->awake[w->index / 64], ~bit);
}

/* The first awake worker at or after i and before end, or end. */
static unsigned awake_next(ax_system_t *sys, unsigned i, unsigned end)
{
    while (i < end) {
        uint64_t bits = ck_pr_load_64(&sys->awake[i / 64]) >> (i % 64);

        if (bits != 0) {
            i += (unsigned)__builtin_ctzll(bits);
            return i < end ? i : end;
        }
        i = (i | 63u) + 1;
    }
    return end;
}

/* The inject queue holds a cell, read under its lock: for park's last
 * look, which inject_and_wake relies on. */
static bool inject_nonempty(ax_system_t *sys)
{
    bool some;

    ck_spinlock_lock(&sys->inject_lock);
    some = sys->inject_head != NULL;
    ck_spinlock_unlock(&sys->inject_lock);
    return some;
}

/* Plain atomic loads of the rings. For park's last look (parking: after
 * its full barrier) the inject queue is read under its lock, which
 * inject_and_wake relies on; otherwise an unlocked peek. */
static bool work_visible(ax_system_t *sys, bool parking)
{
    unsigned n = sys->nworkers;

    if (parking ? inject_nonempty(sys) : ck_pr_load_ptr(&sys->inject_head) != NULL)
        return true;
    for (unsigned i = awake_next(sys, 0, n); i < n; i = awake_next(sys, i + 1, n))
        if (ck_ring_size(&sys->workers[i].ring) > 0)
            return true;
    return false;
}

/* The flag and the counts each go up with a full barrier
 * (ax_system_shutdown, create, ax__count_ended); a worker that reads the
 * flag set and nothing alive may leave. */
static bool should_exit(ax_system_t *sys)
{
    return ck_pr_load_32(&sys->shutdown) != 0 && ax__alive(sys) == 0;
}

/*
 * Sleep until posted. A thread that allocated message memory since it last
 * gave some back sleeps a second at most first, and if nothing came, gives
 * its emptied message pages back (serial/msgmem.h) before sleeping on: an
 * idle system does not keep what a burst needed, and a busy one, which
 * never sleeps a whole second, never pays for it.
 */
/* This thread's emptied message pages, and the chunk memory of pools that
 * ended (buffers/chunk.c's cache), back to the system. */
static void give_back_memory(void)
{
    ax__msgmem_collect();
    ax__chunk_cache_trim();
}

static void park_wait(ax__worker_t *w)
{
    if (ax__msgmem_collect_due()) {
        struct timespec until;

        /* sem_timedwait (CLOCK_REALTIME), not sem_clockwait: TSan knows
         * it as a wait. A clock step only moves this one collect. */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        for (;;) {
            if (sem_timedwait(&w->sem, &until) == 0)
                return;
            if (errno == ETIMEDOUT)
                break;
            if (errno != EINTR)
                break; /* not expected; the plain wait below still works */
        }
        give_back_memory();
    }
    while (sem_wait(&w->sem) != 0 && errno == EINTR)
        ;
}

/*
 * A worker that allocated message memory and has allocated none since for
 * QUIET_NS, over parks, gives its emptied pages back as it parks again:
 * a worker of a system with a network is woken every 100 ms (the
 * dispatcher's tick) and never sleeps the whole second park_wait waits
 * for. A steady flow allocates between parks and never pays for it.
 */
#define QUIET_NS 500000000u

static void collect_if_quiet(ax__worker_t *w)
{
    unsigned long n;
    uint64_t now;

    if (!ax__msgmem_collect_due())
        return;
    n = ax__msgmem_allocs();
    now = ax__now_ns();
    if (n != w->allocs_seen) {
        w->allocs_seen = n;
        w->allocs_quiet_ns = now;
    } else if (now - w->allocs_quiet_ns >= QUIET_NS) {
        give_back_memory();
    }
}

static void park(ax__worker_t *w)
{
    ax_system_t *sys = w->sys;
    bool listed;

    awake_set(w, false); /* its ring is empty: find_work found nothing */
    ck_spinlock_lock(&sys->park_lock);
    w->park_next = sys->parked;
    sys->parked = w;
    ck_spinlock_unlock(&sys->park_lock);
    /* Full barrier before looking again: pairs with the fence a waker
     * issues between making work visible and reading nparked. */
    ck_pr_inc_32(&sys->nparked);
    if (work_visible(sys, true) || should_exit(sys)) {
        ck_spinlock_lock(&sys->park_lock);
        listed = false;
        for (ax__worker_t **pp = &sys->parked; *pp != NULL; pp = &(*pp)->park_next) {
            if (*pp == w) {
                *pp = w->park_next;
                ck_pr_dec_32(&sys->nparked); /* under park_lock */
                listed = true;
                break;
            }
        }
        ck_spinlock_unlock(&sys->park_lock);
        if (listed) {
            awake_set(w, true);
            return;
        }
        /* A waker took us off the list and posts: consume that post. */
    } else {
        ax__stat_inc(&w->parks);
    }
    collect_if_quiet(w);
    park_wait(w);
    awake_set(w, true);
}

/* ---- scheduling ------------------------------------------------------- */

/*
 * Put a cell on w's ring; overflow goes to the inject queue. A parked
 * worker is woken only when w has more runnable actors than the one it is
 * about to run itself: at once for two or more, and for one (a surplus)
 * only when it has waited AX__SURPLUS_WAIT_NS (surplus_check, when w
 * looks for work).
 *
 * Why one waits: a sender that floods one receiver ends each run with the
 * receiver in its run-next slot and itself on the ring. Woken at once, the
 * other worker stole the sender, and every message was then made on one
 * core and taken, freed and given back to its allocator on the other:
 * `flood_fanin_1` ran at 80 ns a message in a slow phase, against 18 on
 * one worker (actor/NOTES.md, "One surplus actor waits"). A spinning worker
 * still steals it at once: only the futex wake waits. What that costs:
 * two busy actors share one core for up to about twice the wait, or, if
 * a handler runs longer, until that run ends (handlers do not block,
 * actor.h).
 */
static void ring_push(ax__worker_t *w, ax__cell_t *c)
{
    unsigned runnable;

    if (!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, c))
        inject_push(w->sys, c);
    runnable = ck_ring_size(&w->ring) + (w->run_next != NULL);
    if (runnable < 2)
        return;
    if (runnable == 2) {
        if (w->surplus_since == 0) {
            w->surplus_since = ax__now_ns();
            w->surplus_looks = 0;
        }
        return;
    }
    w->surplus_since = 0;
    wake_after_publish(w->sys);
}

/*
 * A surplus is over when w's ring is empty (w or a thief took it); one
 * that has waited long enough gets its wake. The clock is read at the
 * 1st, 2nd, 4th, 8th... look for work since the surplus began, so the
 * wake comes within twice the runs that AX__SURPLUS_WAIT_NS took. Read at
 * every look it cost pairs_4 5-9% (two pairs on a worker keep a surplus
 * for good, and each run there is one message). w's own loop only.
 */
static void surplus_check(ax__worker_t *w)
{
    unsigned looks = ++w->surplus_looks;

    if (ck_ring_size(&w->ring) == 0) {
        w->surplus_since = 0;
    } else if ((looks & (looks - 1)) == 0 && ax__now_ns() - w->surplus_since >= AX__SURPLUS_WAIT_NS) {
        w->surplus_since = 0;
        wake_after_publish(w->sys);
    }
}

/* ---- the network thread as a guest worker ----------------------------
 *
 * A message the network thread hands to an actor whose worker is parked
 * costs a futex wake here and a context switch there, on each side of a
 * round trip; the reply then goes back to the network thread the same
 * way (dispatch/NOTES.md, "Where one round trip's time goes"). While every
 * worker is parked, the network thread keeps the actors it wakes and runs
 * them itself after its turn, within network.run_actors_us; once a worker
 * is awake it takes them as before, so a busy system keeps its network
 * thread for the network. Only the network thread reads or writes the
 * guest's list. */

/* Two runs in a row on the network thread longer than network.slow_run_us
 * (1 ms by default) mark their actor slow (AX__L_SLOW): workers only from
 * then on. Not the turn's budget (200 us by default): an actor's first run
 * (its first remote ref, cold caches) and runs under the sanitizers often
 * take longer than that, and would mark every actor; a millisecond is what
 * such a run may cost the network. Two, because the time is wall-clock
 * time (a CPU clock read is a system call, 1.3 us here): a thread
 * preempted in the middle of a short run is seldom preempted in the next
 * one too. On a machine loaded enough for that to happen (tests under
 * TSan beside others on 2 cores: an actor marked after its first 2 runs),
 * the key can be raised, or 0 turns the marks off. */

/* After a run on the network thread that took ns (slow_ns: the key, in
 * ns; 0: no marks): the slow marks. */
static void guest_timed(ax__cell_t *c, uint64_t ns, uint64_t slow_ns)
{
    uint32_t f = ck_pr_load_32(&c->lflags);

    /* Atomic: once the run is over c may be running on a worker, or
     * have ended and been reused (cells live in slabs until the system
     * goes, so the memory is there); a reused cell that gets a mark runs
     * on workers only, which costs it a wake, nothing else. */
    if (slow_ns == 0)
        return;
    if (ns > slow_ns)
        ck_pr_or_32(&c->lflags, (f & AX__L_SLOW_ONCE) ? AX__L_SLOW : AX__L_SLOW_ONCE);
    else if (f & AX__L_SLOW_ONCE)
        ck_pr_and_32(&c->lflags, ~AX__L_SLOW_ONCE);
}

static void guest_push(ax__worker_t *g, ax__cell_t *c)
{
    c->sched_next = NULL;
    if (g->guest_tail != NULL)
        g->guest_tail->sched_next = c;
    else
        g->guest_head = c;
    g->guest_tail = c;
}

static ax__cell_t *guest_pop(ax__worker_t *g)
{
    ax__cell_t *c = g->guest_head;

    if (c != NULL) {
        g->guest_head = c->sched_next;
        if (g->guest_head == NULL)
            g->guest_tail = NULL;
    }
    return c;
}

/*
 * A push onto the inject queue, then a wake, without the full fence that
 * a ring push needs before reading nparked (wake_after_publish). park
 * increments nparked and then looks at the queue under its lock; the push
 * holds the same lock. If the parker holds it first, the push's lock
 * acquires everything the parker did before its release, the increment
 * too, so our read of nparked below counts it; if the push holds it
 * first, the parker's look finds the cell. nspinning is read the same
 * way: a spinner that gave up has parked, or is in park's last look.
 * A thread outside the workers that spawns paid for the fence on every
 * actor: after the stores into a recycled cell, the fence waited for them
 * all, two thirds of ax__schedule's samples (actor/NOTES.md, "The inject
 * queue needs no fence").
 */
static void inject_and_wake(ax_system_t *sys, ax__cell_t *c)
{
    inject_push(sys, c);
    wake_one(sys);
}

static void guest_schedule(ax__worker_t *g, ax__cell_t *c)
{
    ax_system_t *sys = g->sys;

    /* A plain load: a worker that woke since only finds this cell gone
     * to us, and one that parked since is woken by inject_and_wake as
     * from any other thread. An actor whose runs here were slow
     * (guest_timed) always goes to the workers: its next long run would
     * hold up every connection. */
    if (ck_pr_load_32(&sys->nparked) < sys->nworkers || (ck_pr_load_32(&c->lflags) & AX__L_SLOW))
        inject_and_wake(sys, c);
    else
        guest_push(g, c);
}

void ax__sched_guest_enter(ax_system_t *sys)
{
    ax__tls_worker = sys->guest;
}

void ax__sched_guest_leave(ax_system_t *sys, uint64_t budget_ns)
{
    ax__worker_t *g = sys->guest;
    uint64_t slow_ns = (uint64_t)sys->cfg.network.slow_run_us * 1000u;
    uint64_t start = 0, t = 0, t0;
    ax__cell_t *c;
    bool again;

    while (g->guest_head != NULL) {
        if (start == 0)
            start = t = ax__now_ns();
        else if (t - start >= budget_ns)
            break;
        c = guest_pop(g);
        t0 = t;
        again = ax__cell_run(g, c);
        t = ax__now_ns();
        guest_timed(c, t - t0, slow_ns);
        if (again)
            guest_schedule(g, c);
    }
    ax__tls_worker = NULL;
    /* Out of time: the rest goes to the workers. */
    while ((c = guest_pop(g)) != NULL)
        inject_and_wake(sys, c);
}

void ax__schedule_other(ax__cell_t *c, ax__worker_t *w)
{
    ax_system_t *sys = c->sys;

    if (w != NULL && w->sys != sys)
        w = NULL; /* a worker of another system: as from any thread */
    if (w == NULL) {
        inject_and_wake(sys, c);
        return;
    }
    if (w->guest) {
        guest_schedule(w, c);
        return;
    }
    /* The newly woken actor runs next on this core; the one it displaces
     * goes where other workers can steal it. */
    if (w->run_next != NULL)
        ring_push(w, w->run_next);
    w->run_next = c;
}

/*
 * After a steal from v: if v's ring still holds a backlog, half of it moves
 * to w's own ring. An actor that spawns or wakes many others in one run
 * (256 spawns a run in bench_actor's spawn_from_actor) fills its ring
 * faster than one thief empties it an actor at a time, and each of those
 * steals moved the ring's head line, and the slot's, between the cores:
 * ring_push and steal_between were a third of that case's samples, and
 * taking half of a backlog at once made it 1.4 to 1.5 times as fast
 * (actor/NOTES.md). A short ring is left alone: its actors are about to
 * run where they are, and moving half of 16 ping-pong pairs at a time
 * made pairs_16 slower. Only w pushes onto its own ring (the single
 * producer); w is awake, so thieves look at it, and a parked worker is
 * woken for what it now holds beyond the actor it runs, as ring_push does.
 */
static void steal_backlog(ax__worker_t *w, ax__worker_t *v)
{
    unsigned left = ck_ring_size(&v->ring), n = left / 2;
    void *c;

    if (left < STEAL_BACKLOG)
        return;
    while (n-- > 0 && ck_ring_dequeue_spmc(&v->ring, v->ring_buf, &c))
        if (!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, c))
            inject_push(w->sys, c);
    wake_after_publish(w->sys);
}

/*
 * The inject queue's cells, for w: all of them at once, the first to run
 * and the rest on w's own ring, where other workers steal them. A thread
 * outside the workers that spawns or tells actors puts one cell on the
 * queue per actor; taken one per lock hold, each take moved the lock's
 * line and the queue's head between the cores, and spawning from a
 * thread ran 1.02 M actors/s in a slow phase against 1.39 taken whole
 * (medians; actor/NOTES.md, "The inject queue is taken whole"). What the
 * ring cannot hold goes back to the queue's front, in order, in one
 * splice: pushing it back one at a time made the next take walk it again.
 * Each cell's link is read before the cell is on the ring: from then on a
 * thief may run it, and its run may put it on the queue again.
 */
static ax__cell_t *inject_take(ax__worker_t *w)
{
    ax__cell_t *tail, *first = inject_take_all(w->sys, &tail), *c, *next;
    bool pushed = false;

    if (first == NULL || first == tail)
        return first;
    /* The queue's last cell links to NULL: inject_push and the splice
     * leave it so, and no push can reach it once the queue is empty. */
    for (c = first->sched_next; c != NULL; c = next) {
        next = c->sched_next;
        if (!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, c)) {
            inject_push_front(w->sys, c, tail);
            break;
        }
        pushed = true;
    }
    if (pushed)
        wake_after_publish(w->sys);
    return first;
}

/* From the rings of awake workers in [i, end), other than w's. */
static ax__cell_t *steal_between(ax__worker_t *w, unsigned i, unsigned end)
{
    ax_system_t *sys = w->sys;
    void *c;

    for (i = awake_next(sys, i, end); i < end; i = awake_next(sys, i + 1, end)) {
        ax__worker_t *v = &sys->workers[i];

        if (v != w && ck_ring_dequeue_spmc(&v->ring, v->ring_buf, &c)) {
            ax__stat_inc(&w->steals);
            steal_backlog(w, v);
            return c;
        }
    }
    return NULL;
}

static ax__cell_t *steal(ax__worker_t *w)
{
    unsigned n = w->sys->nworkers;
    unsigned start;
    ax__cell_t *c;

    if (n < 2)
        return NULL;
    /* From a random worker on, so that thieves spread over the victims. */
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    start = (unsigned)(w->rng % n);
    c = steal_between(w, start, n);
    return c != NULL ? c : steal_between(w, 0, start);
}

static ax__cell_t *find_work(ax__worker_t *w)
{
    ax__cell_t *c;
    void *p;

    if (w->surplus_since != 0)
        surplus_check(w);
    if (++w->tick % INJECT_EVERY == 0 && (c = inject_take(w)) != NULL)
        return c;
    if (w->run_next != NULL) {
        c = w->run_next;
        w->run_next = NULL;
        if (++w->run_next_streak <= RUN_NEXT_STREAK_MAX || ck_ring_size(&w->ring) == 0)
            return c;
        /* A pair bouncing through run next has had its share: queue it
         * behind the others. */
        ring_push(w, c);
    }
    w->run_next_streak = 0;
    if (ck_ring_dequeue_spmc(&w->ring, w->ring_buf, &p)) {
        if (w->surplus_since != 0 && ck_ring_size(&w->ring) == 0)
            w->surplus_since = 0; /* we took the one that waited */
        return p;
    }
    if ((c = inject_take(w)) != NULL)
        return c;
    return steal(w);
}

/*
 * Look for work for up to spin_us (config `spin_us`) before parking, as
 * one of at most max_spinning workers: with many workers on few cores,
 * every extra spinner takes a core from a worker (or a spawning thread)
 * that has work, and every wake of a parked worker costs its waker a futex
 * call. Counted in nspinning throughout (also when over the limit, until
 * it parks), so wakers skip the wake: a message the network thread hands
 * over while we spin costs it no futex call and us no context switch
 * (dispatch/NOTES.md measures what that saves and what the spin costs).
 * park's last look covers what they published meanwhile. A spinner that
 * finds work while more is visible wakes a replacement, so a burst still
 * spreads over the workers. With spin_us 0, or right after this worker
 * handed a frame to the network (ax__sched_expect_remote), it parks at
 * once.
 */
static ax__cell_t *spin_for_work(ax__worker_t *w)
{
    ax_system_t *sys = w->sys;
    uint64_t spin_ns = (uint64_t)sys->cfg.spin_us * 1000u, start;
    ax__cell_t *c = NULL;

    if (spin_ns == 0 || w->no_spin) {
        w->no_spin = false;
        return NULL;
    }
    /* Full barrier: pairs with the waker's fence before it reads
     * nspinning; one of the two sees the other's write. */
    if (ck_pr_faa_32(&sys->nspinning, 1) < sys->max_spinning) {
        start = ax__now_ns();
        for (unsigned i = 1; c == NULL && !should_exit(sys); i++) {
            ck_pr_stall();
            c = find_work(w);
            if (i % SPIN_CLOCK_EVERY == 0 && ax__now_ns() - start >= spin_ns)
                break;
        }
    }
    ck_pr_dec_32(&sys->nspinning); /* full barrier, as above */
    if (c != NULL && work_visible(sys, false))
        wake_one(sys);
    return c;
}

/*
 * What follows a send to the network is a network round trip away (tens of
 * microseconds), longer than a spin: spinning then only takes the core that
 * the network threads of both ends need to carry the round trip (measured:
 * dispatch/NOTES.md, "Where one round trip's time goes"). Only this worker
 * reads or writes the flag.
 */
void ax__sched_expect_remote(ax_system_t *sys)
{
    ax__worker_t *w = ax__current_worker(sys);

    if (w != NULL)
        w->no_spin = true;
}

static void *worker_main(void *arg)
{
    ax__worker_t *w = arg;
    ax_system_t *sys = w->sys;
    char name[16];

    /* Seen in top -H, gdb and /proc: the handlers that ran here. */
    snprintf(name, sizeof name, "ax-worker-%u", w->index % 10000u);
    pthread_setname_np(pthread_self(), name);
    ax__tls_worker = w;
    for (;;) {
        ax__cell_t *c = find_work(w);

        if (c == NULL)
            c = spin_for_work(w);
        if (c != NULL) {
            if (ax__cell_run(w, c))
                ring_push(w, c);
            continue;
        }
        if (should_exit(sys))
            break;
        park(w);
    }
    ax__tls_worker = NULL;
    return NULL;
}

unsigned ax__cpus_usable(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;

    /* The CPUs this process may run on (taskset, a container's cpuset). */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        cpus = CPU_COUNT(&set);
    return cpus > 0 ? (unsigned)cpus : 1;
}

ax_status_t ax__sched_start(ax_system_t *sys)
{
    unsigned cpus = ax__cpus_usable();

    /* Half the cores look for work at most (as Go's scheduler does), and
     * at least one. */
    sys->max_spinning = cpus >= 4 ? (uint32_t)(cpus / 2) : 1;
    /* Wakes stop once this many workers are awake (wake_one). */
    sys->max_awake = (uint32_t)cpus;
    sys->workers = aligned_alloc(64, sizeof(ax__worker_t) * sys->nworkers);
    if (sys->workers == NULL)
        return ax__error(AX_ENOMEM, "system: out of memory for %u workers", sys->nworkers);
    memset(sys->workers, 0, sizeof(ax__worker_t) * sys->nworkers);
    sys->guest = aligned_alloc(64, sizeof(ax__worker_t));
    if (sys->guest == NULL)
        return ax__error(AX_ENOMEM, "system: out of memory for the network thread's guest worker");
    memset(sys->guest, 0, sizeof(ax__worker_t));
    sys->guest->sys = sys;
    sys->guest->guest = true;
    sys->guest->index = UINT32_MAX;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        ax__worker_t *w = &sys->workers[i];

        w->sys = sys;
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        w->ring_buf = calloc(AX__RING_SIZE, sizeof(ck_ring_buffer_t));
        if (w->ring_buf == NULL)
            return ax__error(AX_ENOMEM, "system: out of memory");
        ck_ring_init(&w->ring, AX__RING_SIZE);
        sem_init(&w->sem, 0, 0);
        /* Before the threads start: a plain store would do. */
        ck_pr_or_64(&sys->awake[i / 64], UINT64_C(1) << (i % 64));
    }
    for (unsigned i = 0; i < sys->nworkers; i++) {
        if (pthread_create(&sys->workers[i].thread, NULL, worker_main, &sys->workers[i]) != 0) {
            /* Let the ones already started exit, then report. A plain
             * store: nothing is alive, and wake_all's lock and posts carry
             * it to parked workers (should_exit). */
            ck_pr_store_32(&sys->shutdown, 1);
            ax__sched_wake_all(sys);
            for (unsigned j = 0; j < i; j++)
                pthread_join(sys->workers[j].thread, NULL);
            return ax__error(AX_ENOMEM, "system: cannot start worker thread %u", i);
        }
    }
    sys->workers_started = true;
    return AX_OK;
}

void ax__sched_join(ax_system_t *sys)
{
    if (!sys->workers_started)
        return;
    for (unsigned i = 0; i < sys->nworkers; i++)
        pthread_join(sys->workers[i].thread, NULL);
    sys->workers_started = false;
}

void ax__sched_destroy(ax_system_t *sys)
{
    if (sys->workers == NULL)
        return;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        free(sys->workers[i].ring_buf);
        sem_destroy(&sys->workers[i].sem);
    }
    free(sys->workers);
    sys->workers = NULL;
    free(sys->guest);
    sys->guest = NULL;
}
