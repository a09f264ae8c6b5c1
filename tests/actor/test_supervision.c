/*
 * Supervision (ax_spawn_opts, ax_fail, restart policies, child events):
 * what a parent is told, what happens to the failed actor and to its
 * mail, restarts with back-off, restart limits and escalation, and stops
 * that come during a back-off.
 *
 * A "supervisor" test actor spawns children on command (ax_spawn_opts
 * must be called by the parent itself) and logs every child event it
 * gets. A "worker" child does what each message says: handle it, fail by
 * returning a status, fail with ax_fail, or block on a gate first. Its
 * counters live outside the actor, in the arg, which a restart passes to
 * init again.
 */
#include "helpers.h"

#include "axon/serial.h"

/* ---- worker messages ----------------------------------------------------- */

#define W_FAIL_RET  0x1u /* return status from the handler */
#define W_FAIL_CALL 0x2u /* ax_fail(self, status), return AX_OK */
#define W_BLOCK     0x4u /* wait on the gate first */

typedef struct wmsg {
    ax_msg_t hdr;
    uint32_t flags;
    ax_status_t status;
    uint64_t seq;
} wmsg_t;

static _Atomic uint64_t wmsg_allocs, wmsg_releases;

static void wmsg_release(ax_msg_t *m)
{
    atomic_fetch_add(&wmsg_releases, 1);
    free(m);
}

static const ax_msg_type_t wmsg_type = {.name = "test.wmsg", .size = sizeof(wmsg_t),
                                        .release = wmsg_release};

static ax_msg_t *wmsg_new(uint64_t seq, uint32_t flags, ax_status_t status)
{
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_alloc(&wmsg_type, &m), AX_OK);
    atomic_fetch_add(&wmsg_allocs, 1);
    ((wmsg_t *)m)->flags = flags;
    ((wmsg_t *)m)->status = status;
    ((wmsg_t *)m)->seq = seq;
    return m;
}

static void wtell(ax_ref_t dst, uint64_t seq, uint32_t flags, ax_status_t status)
{
    ax_msg_t *m = wmsg_new(seq, flags, status);

    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
}

/* ---- the worker ------------------------------------------------------------ */

#define W_MAX 64

typedef struct wk {
    _Atomic uint64_t inits, starts, stops, kills, destroys, handled;
    _Atomic uint64_t start_fails_left; /* on_start calls ax_fail while > 0 */
    ax_status_t start_fail_status;
    uint64_t init_at[W_MAX];      /* when each init ran */
    uint64_t fail_at[W_MAX];      /* when each failing handler returned */
    _Atomic uint64_t nfail;
    uint64_t seen[4 * W_MAX];     /* seq of each message handed to a handler */
    _Atomic uint64_t nseen;
    sem_t started, in_handler, gate, destroyed;
} wk_t;

typedef struct wk_actor {
    ax_actor_t actor;
    wk_t *w;
    uint64_t marker; /* set by init: a restart must find it zeroed */
} wk_actor_t;

static void wk_setup(wk_t *w)
{
    memset(w, 0, sizeof(*w));
    sem_init(&w->started, 0, 0);
    sem_init(&w->in_handler, 0, 0);
    sem_init(&w->gate, 0, 0);
    sem_init(&w->destroyed, 0, 0);
}

static ax_status_t wk_init(ax_actor_t *self, void *arg)
{
    wk_actor_t *a = (wk_actor_t *)self;
    wk_t *w = arg;
    uint64_t k = atomic_load(&w->inits);

    /* A fresh actor each time: a restart zeroes what init left. */
    AXT_CHECK(a->marker == 0 && a->w == NULL);
    a->w = w;
    a->marker = 0xfeedu;
    if (k < W_MAX)
        w->init_at[k] = ax__now_ns();
    atomic_store(&w->inits, k + 1);
    return AX_OK;
}

static void wk_start(ax_actor_t *self)
{
    wk_t *w = ((wk_actor_t *)self)->w;
    uint64_t left = atomic_load(&w->start_fails_left);

    if (left > 0) {
        atomic_store(&w->start_fails_left, left - 1);
        ax_fail(self, w->start_fail_status);
    }
    atomic_fetch_add(&w->starts, 1);
    sem_post(&w->started);
}

static void wk_stop(ax_actor_t *self)
{
    atomic_fetch_add(&((wk_actor_t *)self)->w->stops, 1);
}

static void wk_kill(ax_actor_t *self)
{
    atomic_fetch_add(&((wk_actor_t *)self)->w->kills, 1);
}

static void wk_destroy(ax_actor_t *self)
{
    wk_t *w = ((wk_actor_t *)self)->w;

    atomic_fetch_add(&w->destroys, 1);
    sem_post(&w->destroyed);
}

static ax_status_t wk_receive(ax_actor_t *self, ax_msg_t **msg)
{
    wk_t *w = ((wk_actor_t *)self)->w;
    wmsg_t *m = (wmsg_t *)*msg;
    uint64_t n = atomic_load(&w->nseen);

    if ((*msg)->type != &wmsg_type)
        return AX_OK;
    AXT_CHECK(((wk_actor_t *)self)->marker == 0xfeedu);
    if (n < 4 * W_MAX)
        w->seen[n] = m->seq;
    atomic_store(&w->nseen, n + 1);
    if (m->flags & W_BLOCK) {
        sem_post(&w->in_handler);
        AXT_CHECK(axt_sem_wait(&w->gate, WAIT_S));
    }
    if (m->flags & (W_FAIL_RET | W_FAIL_CALL)) {
        uint64_t k = atomic_load(&w->nfail);

        if (k < W_MAX)
            w->fail_at[k] = ax__now_ns();
        atomic_store(&w->nfail, k + 1);
        if (m->flags & W_FAIL_RET)
            return m->status;
        ax_fail(self, m->status);
        return AX_OK;
    }
    atomic_fetch_add(&w->handled, 1);
    return AX_OK;
}

#define WK_VTABLE(nm, k)                                                                      \
    {                                                                                         \
        .name = nm, .size = sizeof(wk_actor_t), .init = wk_init, .on_start = wk_start,        \
        .on_stop = wk_stop, .on_kill = wk_kill, .receive_local = wk_receive,                  \
        .destroy = wk_destroy, .lanes = (k),                                                  \
    }

static const ax_actor_vtable_t wk_vtable = WK_VTABLE("test.worker", 0);
static const ax_actor_vtable_t wk_lanes_vtable = WK_VTABLE("test.worker-lanes", 2);

/* ---- the supervisor ---------------------------------------------------------- */

#define EV_MAX 1024

typedef struct ev {
    ax_child_event_kind_t kind;
    ax_ref_t child;
    ax_status_t status;
    ax_supervision_action_t action;
    uint32_t restarts;
} ev_t;

typedef struct sup_log {
    ev_t ev[EV_MAX];
    _Atomic uint64_t n;
    _Atomic uint64_t destroys, stops, kills;
} sup_log_t;

typedef struct sup_actor {
    ax_actor_t actor;
    sup_log_t *log;
} sup_actor_t;

static ax_status_t sup_init(ax_actor_t *self, void *arg)
{
    ((sup_actor_t *)self)->log = arg;
    return AX_OK;
}

static ax_status_t sup_receive(ax_actor_t *self, ax_msg_t **msg)
{
    sup_log_t *log = ((sup_actor_t *)self)->log;

    if (axt_job_run(self, *msg))
        return AX_OK;
    if ((*msg)->type == &ax_child_event_type) {
        const ax_child_event_t *e = (const ax_child_event_t *)*msg;
        uint64_t n = atomic_load(&log->n);

        AXT_CHECK(n < EV_MAX);
        if (n < EV_MAX)
            log->ev[n] = (ev_t){e->kind, e->child, e->status, e->action, e->restarts};
        atomic_store(&log->n, n + 1); /* after the entry: readers see it */
    }
    return AX_OK;
}

static void sup_stop(ax_actor_t *self)
{
    atomic_fetch_add(&((sup_actor_t *)self)->log->stops, 1);
}

static void sup_kill(ax_actor_t *self)
{
    atomic_fetch_add(&((sup_actor_t *)self)->log->kills, 1);
}

static void sup_destroy(ax_actor_t *self)
{
    atomic_fetch_add(&((sup_actor_t *)self)->log->destroys, 1);
}

static const ax_actor_vtable_t sup_vtable = {
    .name = "test.supervisor",
    .size = sizeof(sup_actor_t),
    .init = sup_init,
    .on_stop = sup_stop,
    .on_kill = sup_kill,
    .receive_local = sup_receive,
    .destroy = sup_destroy,
};

static ax_ref_t spawn_sup(ax_system_t *sys, sup_log_t *log)
{
    ax_ref_t ref;

    memset(log, 0, sizeof(*log));
    cr_assert_eq(ax_spawn(sys, &sup_vtable, log, &ref), AX_OK);
    return ref;
}

typedef struct spawn_job {
    const ax_actor_vtable_t *vt;
    void *arg;
    ax_restart_policy_t policy;
    ax_ref_t child;
    ax_status_t st;
} spawn_job_t;

static void do_spawn(ax_actor_t *self, void *arg)
{
    spawn_job_t *j = arg;
    ax_spawn_opts_t opts = {.parent = self, .restart = j->policy};

    j->st = ax_spawn_opts(ax_actor_system(self), j->vt, j->arg, &opts, &j->child);
}

/* Have the supervisor sup spawn a child with a policy. */
static ax_ref_t spawn_child(ax_ref_t sup, const ax_actor_vtable_t *vt, void *arg,
                            ax_restart_policy_t policy)
{
    spawn_job_t j = {.vt = vt, .arg = arg, .policy = policy, .child = AX_REF_NULL,
                     .st = AX_EUNKNOWN};

    RUN_ON(sup, do_spawn, &j);
    cr_assert_eq(j.st, AX_OK, "spawn_opts: %s", ax_status_name(j.st));
    return j.child;
}

static void wait_events(sup_log_t *log, uint64_t n)
{
    cr_assert(axt_wait_at_least(&log->n, n, WAIT_S), "%llu child event(s), waiting for %llu",
              (unsigned long long)atomic_load(&log->n), (unsigned long long)n);
}

static void assert_event(const sup_log_t *log, uint64_t i, ax_child_event_kind_t kind,
                         ax_ref_t child, ax_status_t status, ax_supervision_action_t action)
{
    const ev_t *e = &log->ev[i];

    cr_assert_eq(e->kind, kind, "event %llu: kind %d, expected %d", (unsigned long long)i, e->kind,
                 kind);
    cr_assert(ax_ref_eq(e->child, child), "event %llu is about another child",
              (unsigned long long)i);
    if (kind == AX_CHILD_FAILED) {
        cr_assert_eq(e->status, status, "event %llu: status %s, expected %s", (unsigned long long)i,
                     ax_status_name(e->status), ax_status_name(status));
        cr_assert_eq(e->action, action, "event %llu: action %d, expected %d", (unsigned long long)i,
                     e->action, action);
    } else {
        cr_assert_eq(e->action, AX_SUPERVISE_NONE);
    }
}

static const ax_restart_policy_t never = {.mode = AX_RESTART_NEVER};

static ax_restart_policy_t backoff(uint32_t max_restarts, uint64_t window_ns, uint64_t initial_ns,
                                   uint64_t max_ns)
{
    return (ax_restart_policy_t){.mode = AX_RESTART_BACKOFF,
                                 .max_restarts = max_restarts,
                                 .window_ns = window_ns,
                                 .backoff_initial_ns = initial_ns,
                                 .backoff_max_ns = max_ns};
}

/* Dead letters carrying a worker message, by status. */
typedef struct wletters {
    _Atomic uint64_t efailed, eclosed, other;
} wletters_t;

static void count_wletters(dl_log_t *log, const ax_dead_letter_t *dl)
{
    wletters_t *c = log->ctx;

    if (dl->msg == NULL || dl->msg->type != &wmsg_type)
        return;
    if (dl->status == AX_EFAILED)
        atomic_fetch_add(&c->efailed, 1);
    else if (dl->status == AX_ECLOSED)
        atomic_fetch_add(&c->eclosed, 1);
    else
        atomic_fetch_add(&c->other, 1);
}

static void end_checks(ax_system_t **sys)
{
    AXT_ASSERT_NO_BAD();
    axt_shutdown(sys);
    cr_assert_eq(atomic_load(&wmsg_releases), atomic_load(&wmsg_allocs));
}

/* ---- restart never -------------------------------------------------------------- */

Test(supervision, a_failed_child_is_reported_and_ends_with_its_mail_dead_lettered)
{
    ax_system_t *sys = axt_system(2);
    static wletters_t wl;
    dl_log_t dl = {.on_letter = count_wletters, .ctx = &wl};
    sup_log_t log;
    wk_t w;
    ax_ref_t sup, child;

    axt_collect_dead_letters(sys, &dl);
    sup = spawn_sup(sys, &log);
    wk_setup(&w);
    child = spawn_child(sup, &wk_vtable, &w, never);
    /* Five messages queued behind the one that fails. */
    wtell(child, 0, W_BLOCK | W_FAIL_RET, AX_EIO);
    AXT_WAIT_SEM(&w.in_handler);
    for (uint64_t i = 1; i <= 5; i++)
        wtell(child, i, 0, AX_OK);
    sem_post(&w.gate);

    wait_events(&log, 2);
    assert_event(&log, 0, AX_CHILD_FAILED, child, AX_EIO, AX_SUPERVISE_STOP);
    assert_event(&log, 1, AX_CHILD_ENDED, child, AX_OK, AX_SUPERVISE_NONE);
    AXT_WAIT_SEM(&w.destroyed);
    cr_assert(axt_wait_at_least(&wl.efailed, 5, WAIT_S),
              "the queued mail goes to dead letters with AX_EFAILED");
    cr_assert_eq(atomic_load(&w.handled), 0);
    cr_assert_eq(atomic_load(&w.stops), 0, "on_stop does not run for a failed actor");
    cr_assert_eq(atomic_load(&w.kills), 0, "nor does on_kill");
    cr_assert_eq(atomic_load(&w.destroys), 1);
    cr_assert_eq(atomic_load(&w.inits), 1);
    cr_assert_eq(axt_stats(sys).failures, 1);
    cr_assert_eq(axt_stats(sys).restarts, 0);
    /* It has ended: later mail is a dead letter like for any ended actor. */
    wtell(child, 6, 0, AX_OK);
    cr_assert(axt_wait_at_least(&wl.eclosed, 1, WAIT_S));
    cr_assert_eq(ax_stop(child), AX_ENOTFOUND);
    cr_assert_eq(atomic_load(&wl.other), 0);
    end_checks(&sys);
}

Test(supervision, ax_fail_from_a_handler_fails_the_actor_with_that_status)
{
    ax_system_t *sys = axt_system(2);
    sup_log_t log;
    wk_t w;
    ax_ref_t sup = spawn_sup(sys, &log), child;

    wk_setup(&w);
    child = spawn_child(sup, &wk_vtable, &w, never);
    wtell(child, 0, W_FAIL_CALL, AX_EPROTO);
    wait_events(&log, 2);
    assert_event(&log, 0, AX_CHILD_FAILED, child, AX_EPROTO, AX_SUPERVISE_STOP);
    assert_event(&log, 1, AX_CHILD_ENDED, child, AX_OK, AX_SUPERVISE_NONE);
    cr_assert_eq(atomic_load(&w.handled), 0);
    cr_assert_eq(axt_stats(sys).failures, 1);
    end_checks(&sys);
}

Test(supervision, ax_fail_from_on_start_fails_the_actor_before_any_message)
{
    ax_system_t *sys = axt_system(2);
    sup_log_t log;
    wk_t never_w, backoff_w;
    ax_ref_t sup = spawn_sup(sys, &log), a, b;

    /* Restart never: it ends at once, its message unhandled. */
    wk_setup(&never_w);
    atomic_store(&never_w.start_fails_left, 1);
    never_w.start_fail_status = AX_EIO;
    a = spawn_child(sup, &wk_vtable, &never_w, never);
    wtell(a, 0, 0, AX_OK);
    wait_events(&log, 2);
    assert_event(&log, 0, AX_CHILD_FAILED, a, AX_EIO, AX_SUPERVISE_STOP);
    assert_event(&log, 1, AX_CHILD_ENDED, a, AX_OK, AX_SUPERVISE_NONE);
    AXT_WAIT_SEM(&never_w.destroyed);
    cr_assert_eq(atomic_load(&never_w.handled), 0);

    /* With back-off: on_start fails on the first start and again after
     * the first restart; the third start holds, and the message queued
     * all along is handled. */
    wk_setup(&backoff_w);
    atomic_store(&backoff_w.start_fails_left, 2);
    backoff_w.start_fail_status = AX_EPROTO;
    b = spawn_child(sup, &wk_vtable, &backoff_w, backoff(5, AX_MS(60000), AX_MS(1), AX_MS(1)));
    wtell(b, 0, 0, AX_OK);
    AXT_WAIT_COUNT(backoff_w.handled, 1);
    wait_events(&log, 4);
    assert_event(&log, 2, AX_CHILD_FAILED, b, AX_EPROTO, AX_SUPERVISE_RESTART);
    assert_event(&log, 3, AX_CHILD_FAILED, b, AX_EPROTO, AX_SUPERVISE_RESTART);
    cr_assert_eq(log.ev[2].restarts, 1);
    cr_assert_eq(log.ev[3].restarts, 2);
    cr_assert_eq(atomic_load(&backoff_w.inits), 3);
    cr_assert_eq(atomic_load(&backoff_w.starts), 3);
    cr_assert_eq(atomic_load(&backoff_w.destroys), 2, "destroy runs before each restart");
    cr_assert_eq(axt_stats(sys).failures, 3);
    cr_assert_eq(axt_stats(sys).restarts, 2);
    end_checks(&sys);
}

/* ---- restart with back-off ----------------------------------------------------------- */

static void restart_keeps_ref_and_mail(const ax_actor_vtable_t *vt)
{
    ax_system_t *sys = axt_system(2);
    sup_log_t log;
    wk_t w;
    ax_ref_t sup = spawn_sup(sys, &log), child;

    wk_setup(&w);
    child = spawn_child(sup, vt, &w, backoff(3, AX_MS(60000), AX_MS(5), AX_MS(5)));
    AXT_WAIT_SEM(&w.started);
    wtell(child, 0, W_BLOCK | W_FAIL_RET, AX_EIO);
    AXT_WAIT_SEM(&w.in_handler);
    for (uint64_t i = 1; i <= 10; i++) {
        if (vt->lanes > 1 && i % 2 == 0) {
            ax_msg_t *m = wmsg_new(i, 0, AX_OK);

            /* Half in the second lane: a restart keeps the lanes too. */
            cr_assert_eq(ax_tell_lane(child, 1, &m, AX_REF_NULL), AX_OK);
        } else {
            wtell(child, i, 0, AX_OK);
        }
    }
    sem_post(&w.gate);

    /* The ten queued at the failure are handled by the restarted actor. */
    AXT_WAIT_COUNT(w.handled, 10);
    wait_events(&log, 1);
    assert_event(&log, 0, AX_CHILD_FAILED, child, AX_EIO, AX_SUPERVISE_RESTART);
    cr_assert_eq(log.ev[0].restarts, 1);
    cr_assert_eq(atomic_load(&w.inits), 2, "init runs again");
    cr_assert_eq(atomic_load(&w.starts), 2, "then on_start");
    cr_assert_eq(atomic_load(&w.destroys), 1, "destroy ran before the restart");
    cr_assert_eq(atomic_load(&w.stops) + atomic_load(&w.kills), 0);
    /* Message 0 failed and is not handed over again. */
    uint64_t seen = atomic_load(&w.nseen), zeros = 0;
    for (uint64_t i = 0; i < seen; i++)
        zeros += w.seen[i] == 0;
    cr_assert_eq(zeros, 1, "the failed message was handed to a handler %llu times",
                 (unsigned long long)zeros);
    cr_assert_eq(seen, 11);
    if (vt->lanes <= 1) {
        for (uint64_t i = 0; i < seen; i++)
            cr_assert_eq(w.seen[i], i, "in order across the restart");
    }

    /* The same ref reaches the restarted actor. */
    wtell(child, 11, 0, AX_OK);
    AXT_WAIT_COUNT(w.handled, 11);
    cr_assert_eq(atomic_load(&log.n), 1, "no other event: it did not end");
    cr_assert_eq(axt_stats(sys).failures, 1);
    cr_assert_eq(axt_stats(sys).restarts, 1);
    cr_assert_eq(ax_stop(child), AX_OK);
    wait_events(&log, 2);
    assert_event(&log, 1, AX_CHILD_ENDED, child, AX_OK, AX_SUPERVISE_NONE);
    cr_assert_eq(atomic_load(&w.stops), 1, "a restarted actor stops normally");
    end_checks(&sys);
}

Test(supervision, a_restarted_actor_keeps_its_ref_and_handles_the_mail_queued_at_the_failure)
{
    restart_keeps_ref_and_mail(&wk_vtable);
}

Test(supervision, a_restart_keeps_the_mail_of_every_lane)
{
    restart_keeps_ref_and_mail(&wk_lanes_vtable);
}

Test(supervision, back_off_delays_are_never_shorter_than_configured)
{
    ax_system_t *sys = axt_system(2);
    /* Doubled per restart in the window, capped: 10, 20, 40, 40 ms. */
    static const uint64_t want[] = {AX_MS(10), AX_MS(20), AX_MS(40), AX_MS(40)};
    sup_log_t log;
    wk_t w;
    ax_ref_t sup = spawn_sup(sys, &log), child;

    wk_setup(&w);
    child = spawn_child(sup, &wk_vtable, &w, backoff(4, AX_MS(60000), AX_MS(10), AX_MS(40)));
    /* Each failure's successor waits in the mailbox for the restart. */
    for (uint64_t i = 0; i < 4; i++)
        wtell(child, i, W_FAIL_RET, AX_EIO);
    wtell(child, 4, 0, AX_OK);
    AXT_WAIT_COUNT(w.handled, 1);
    wait_events(&log, 4);
    cr_assert_eq(atomic_load(&w.inits), 5);
    for (int k = 0; k < 4; k++) {
        /* fail_at is taken in the handler before it returns, init_at when
         * the next init starts: their distance can only exceed the delay. */
        uint64_t waited = w.init_at[k + 1] - w.fail_at[k];

        assert_event(&log, (uint64_t)k, AX_CHILD_FAILED, child, AX_EIO, AX_SUPERVISE_RESTART);
        cr_assert_eq(log.ev[k].restarts, (uint32_t)k + 1);
        cr_assert_geq(waited, want[k], "restart %d came after %.3f ms, its back-off is %.3f ms",
                      k + 1,
                      waited / 1e6, want[k] / 1e6);
        cr_log_info("restart %d after %.3f ms (back-off %.3f ms)", k + 1, waited / 1e6,
                    want[k] / 1e6);
    }
    cr_assert_eq(axt_stats(sys).restarts, 4);
    end_checks(&sys);
}

/* ---- limits and escalation -------------------------------------------------------------- */

Test(supervision, too_many_restarts_in_the_window_escalate_to_the_parent_and_its_parent)
{
    ax_system_t *sys = axt_system(2);
    static wletters_t wl;
    dl_log_t dl = {.on_letter = count_wletters, .ctx = &wl};
    sup_log_t glog, plog;
    wk_t w;
    ax_ref_t g, p, c;

    axt_collect_dead_letters(sys, &dl);
    g = spawn_sup(sys, &glog);
    memset(&plog, 0, sizeof(plog));
    p = spawn_child(g, &sup_vtable, &plog, never);
    wk_setup(&w);
    c = spawn_child(p, &wk_vtable, &w, backoff(2, AX_MS(60000), AX_MS(1), AX_MS(1)));
    /* Three failures in a row: two restarts are allowed, the third
     * failure escalates. */
    for (uint64_t i = 0; i < 3; i++)
        wtell(c, i, W_FAIL_RET, AX_EIO);

    wait_events(&plog, 3);
    assert_event(&plog, 0, AX_CHILD_FAILED, c, AX_EIO, AX_SUPERVISE_RESTART);
    assert_event(&plog, 1, AX_CHILD_FAILED, c, AX_EIO, AX_SUPERVISE_RESTART);
    assert_event(&plog, 2, AX_CHILD_FAILED, c, AX_EIO, AX_SUPERVISE_ESCALATE);
    cr_assert_eq(plog.ev[0].restarts, 1);
    cr_assert_eq(plog.ev[1].restarts, 2);

    /* The parent fails in turn (AX_EFAILED) and, restart never, ends. */
    wait_events(&glog, 2);
    assert_event(&glog, 0, AX_CHILD_FAILED, p, AX_EFAILED, AX_SUPERVISE_STOP);
    assert_event(&glog, 1, AX_CHILD_ENDED, p, AX_OK, AX_SUPERVISE_NONE);
    cr_assert(axt_wait_at_least(&plog.destroys, 1, WAIT_S));
    cr_assert_eq(atomic_load(&plog.stops) + atomic_load(&plog.kills), 0);
    /* The child ended for good: destroy before each restart, then once. */
    cr_assert(axt_wait_at_least(&w.destroys, 3, WAIT_S));
    cr_assert_eq(atomic_load(&w.inits), 3);
    cr_assert_eq(axt_stats(sys).failures, 4);
    cr_assert_eq(axt_stats(sys).restarts, 2);
    cr_assert(axt_wait_alive(sys, 2, WAIT_S), "only the grandparent and the collector are left");
    wtell(c, 3, 0, AX_OK);
    cr_assert(axt_wait_at_least(&wl.eclosed, 1, WAIT_S));
    /* The grandparent carries on. */
    cr_assert_eq(atomic_load(&glog.destroys), 0);
    end_checks(&sys);
}

Test(supervision, a_top_level_actor_over_its_limit_just_ends)
{
    ax_system_t *sys = axt_system(2);
    ax_spawn_opts_t opts = {.restart = backoff(1, AX_MS(60000), AX_MS(1), AX_MS(1))};
    wk_t w;
    ax_ref_t a;

    wk_setup(&w);
    cr_assert_eq(ax_spawn_opts(sys, &wk_vtable, &w, &opts, &a), AX_OK);
    wtell(a, 0, W_FAIL_RET, AX_EIO);
    wtell(a, 1, W_FAIL_RET, AX_EIO);
    cr_assert(axt_wait_alive(sys, 0, WAIT_S), "it should have ended");
    cr_assert_eq(atomic_load(&w.inits), 2);
    cr_assert_eq(atomic_load(&w.destroys), 2);
    cr_assert_eq(axt_stats(sys).failures, 2);
    cr_assert_eq(axt_stats(sys).restarts, 1);
    end_checks(&sys);
}

Test(supervision, failures_spread_out_beyond_the_window_keep_restarting)
{
    ax_system_t *sys = axt_system(2);
    const uint64_t window = AX_MS(40);
    sup_log_t log;
    wk_t w;
    ax_ref_t sup = spawn_sup(sys, &log), child;

    wk_setup(&w);
    /* One restart per window: two failures within 40 ms would escalate. */
    child = spawn_child(sup, &wk_vtable, &w, backoff(1, window, AX_MS(1), AX_MS(1)));
    for (uint64_t i = 0; i < 4; i++) {
        wtell(child, i, W_FAIL_RET, AX_EIO);
        wait_events(&log, i + 1);
        AXT_WAIT_COUNT(w.starts, i + 2);
        /* Longer than the window: the next failure starts a new one. */
        axt_sleep_us((unsigned)(2 * window / 1000));
    }
    for (uint64_t i = 0; i < 4; i++) {
        assert_event(&log, i, AX_CHILD_FAILED, child, AX_EIO, AX_SUPERVISE_RESTART);
        cr_assert_eq(log.ev[i].restarts, 1, "a new window each time");
    }
    wtell(child, 4, 0, AX_OK);
    AXT_WAIT_COUNT(w.handled, 1);
    cr_assert_eq(atomic_load(&log.n), 4);
    cr_assert_eq(axt_stats(sys).restarts, 4);
    end_checks(&sys);
}

/* ---- stop or kill during the back-off ----------------------------------------------------- */

static void ended_during_back_off(bool kill)
{
    ax_system_t *sys = axt_system(2);
    static wletters_t wl;
    dl_log_t dl = {.on_letter = count_wletters, .ctx = &wl};
    sup_log_t log;
    wk_t w;
    ax_ref_t sup, child;

    axt_collect_dead_letters(sys, &dl);
    sup = spawn_sup(sys, &log);
    wk_setup(&w);
    /* A back-off far longer than the test may take (WAIT_S): the stop or
     * kill always lands within it, however slow the machine, and an end
     * that waited for the back-off would time out. */
    child = spawn_child(sup, &wk_vtable, &w, backoff(5, AX_MS(600000), AX_MS(300000), AX_MS(300000)));
    wtell(child, 0, W_FAIL_RET, AX_EIO);
    wait_events(&log, 1);
    assert_event(&log, 0, AX_CHILD_FAILED, child, AX_EIO, AX_SUPERVISE_RESTART);
    /* Within the back-off: mail, then the stop or kill. */
    wtell(child, 1, 0, AX_OK);
    cr_assert_eq(kill ? ax_kill(child) : ax_stop(child), AX_OK);
    wait_events(&log, 2);
    assert_event(&log, 1, AX_CHILD_ENDED, child, AX_OK, AX_SUPERVISE_NONE);
    cr_assert_eq(atomic_load(&w.inits), 1, "no restart after a %s", kill ? "kill" : "stop");
    cr_assert_eq(atomic_load(&w.starts), 1);
    cr_assert_eq(atomic_load(&w.handled), 0);
    cr_assert_eq(atomic_load(&w.destroys), 1);
    cr_assert_eq(axt_stats(sys).restarts, 0);
    /* The mail that waited for the restart goes to dead letters. */
    cr_assert(axt_wait_at_least(&wl.eclosed, 1, WAIT_S));
    end_checks(&sys);
}

Test(supervision, a_stop_during_the_back_off_ends_the_actor_without_a_restart)
{
    ended_during_back_off(false);
}

Test(supervision, a_kill_during_the_back_off_ends_the_actor_without_a_restart)
{
    ended_during_back_off(true);
}

/*
 * Many children failing and restarting at once, with no back-off to speak
 * of: the restart of one failure may run on another worker while the
 * worker that handled the failure is still reporting it. Every failure
 * must be reported once, with the restart count of its own window, and
 * every child must come back each time.
 */
#define STRESS_CHILDREN 16
#define STRESS_FAILS 30

Test(supervision, many_quick_restarts_are_each_reported_once_in_order)
{
    ax_system_t *sys = axt_system(2);
    static sup_log_t log;
    static wk_t w[STRESS_CHILDREN];
    ax_ref_t sup = spawn_sup(sys, &log), child[STRESS_CHILDREN];
    uint32_t last[STRESS_CHILDREN] = {0};

    for (int c = 0; c < STRESS_CHILDREN; c++) {
        wk_setup(&w[c]);
        child[c] = spawn_child(sup, &wk_vtable, &w[c], backoff(1000, AX_MS(60000), 0, AX_US(100)));
    }
    for (uint64_t i = 0; i < STRESS_FAILS; i++)
        for (int c = 0; c < STRESS_CHILDREN; c++)
            wtell(child[c], i, i % 2 ? W_FAIL_CALL : W_FAIL_RET, AX_EIO);
    for (int c = 0; c < STRESS_CHILDREN; c++)
        wtell(child[c], STRESS_FAILS, 0, AX_OK);
    for (int c = 0; c < STRESS_CHILDREN; c++)
        AXT_WAIT_COUNT(w[c].handled, 1);
    wait_events(&log, STRESS_CHILDREN * STRESS_FAILS);
    cr_assert_eq(atomic_load(&log.n), STRESS_CHILDREN * STRESS_FAILS);
    for (uint64_t i = 0; i < STRESS_CHILDREN * STRESS_FAILS; i++) {
        const ev_t *e = &log.ev[i];
        int c = 0;

        while (c < STRESS_CHILDREN && !ax_ref_eq(e->child, child[c]))
            c++;
        cr_assert_lt(c, STRESS_CHILDREN, "an event about an unknown child");
        cr_assert_eq(e->kind, AX_CHILD_FAILED);
        cr_assert_eq(e->action, AX_SUPERVISE_RESTART);
        cr_assert_eq(e->restarts, last[c] + 1, "child %d: restart %u reported after %u", c,
                     e->restarts,
                     last[c]);
        last[c] = e->restarts;
    }
    for (int c = 0; c < STRESS_CHILDREN; c++)
        cr_assert_eq(atomic_load(&w[c].inits), STRESS_FAILS + 1);
    cr_assert_eq(axt_stats(sys).failures, STRESS_CHILDREN * STRESS_FAILS);
    cr_assert_eq(axt_stats(sys).restarts, STRESS_CHILDREN * STRESS_FAILS);
    end_checks(&sys);
}

/* ---- children that end normally ------------------------------------------------------------ */

Test(supervision, a_parent_is_told_when_a_child_stops_or_is_killed)
{
    ax_system_t *sys = axt_system(2);
    sup_log_t log;
    wk_t w1, w2;
    ax_ref_t sup = spawn_sup(sys, &log), a, b;

    wk_setup(&w1);
    wk_setup(&w2);
    a = spawn_child(sup, &wk_vtable, &w1, never);
    b = spawn_child(sup, &wk_vtable, &w2, backoff(3, AX_MS(60000), AX_MS(1), AX_MS(1)));
    AXT_WAIT_SEM(&w1.started);
    AXT_WAIT_SEM(&w2.started);
    cr_assert_eq(ax_stop(a), AX_OK);
    wait_events(&log, 1);
    assert_event(&log, 0, AX_CHILD_ENDED, a, AX_OK, AX_SUPERVISE_NONE);
    cr_assert_eq(ax_kill(b), AX_OK);
    wait_events(&log, 2);
    assert_event(&log, 1, AX_CHILD_ENDED, b, AX_OK, AX_SUPERVISE_NONE);
    cr_assert_eq(atomic_load(&w1.stops), 1);
    cr_assert_eq(atomic_load(&w2.kills), 1);
    cr_assert_eq(atomic_load(&w2.inits), 1, "a kill is not a failure: no restart");
    cr_assert_eq(axt_stats(sys).failures, 0);
    end_checks(&sys);
}

/* A restart policy is checked at spawn. */
Test(supervision, a_bad_restart_policy_is_einval)
{
    ax_system_t *sys = axt_system(2);
    ax_spawn_opts_t bad_mode = {.restart = {.mode = (ax_restart_mode_t)7}};
    ax_spawn_opts_t bad_backoff = {.restart = backoff(1, AX_MS(10), AX_MS(50), AX_MS(5))};
    wk_t w;
    ax_ref_t r;

    wk_setup(&w);
    cr_assert_eq(ax_spawn_opts(sys, &wk_vtable, &w, &bad_mode, &r), AX_EINVAL);
    cr_assert_eq(ax_spawn_opts(sys, &wk_vtable, &w, &bad_backoff, &r), AX_EINVAL,
                 "initial back-off above its maximum");
    cr_assert_eq(atomic_load(&w.inits), 0);
    cr_assert_eq(axt_stats(sys).actors_alive, 0);
    end_checks(&sys);
}

/* ---- the system guardian ---------------------------------------------- */

typedef struct guardian_log {
    sem_t got;
    _Atomic int failed, ended;
    ax_status_t status;
    ax_ref_t child;
} guardian_log_t;

typedef struct guardian_actor {
    ax_actor_t actor;
    guardian_log_t *log;
} guardian_actor_t;

static ax_status_t guardian_init(ax_actor_t *self, void *arg)
{
    ((guardian_actor_t *)self)->log = arg;
    return AX_OK;
}

static ax_status_t guardian_receive(ax_actor_t *self, ax_msg_t **msg)
{
    guardian_log_t *log = ((guardian_actor_t *)self)->log;
    const ax_child_event_t *e = (const ax_child_event_t *)*msg;

    if ((*msg)->type != &ax_child_event_type)
        return AX_OK;
    if (e->kind == AX_CHILD_FAILED) {
        log->status = e->status;
        log->child = e->child;
        atomic_fetch_add(&log->failed, 1);
    } else {
        atomic_fetch_add(&log->ended, 1);
    }
    sem_post(&log->got);
    return AX_OK;
}

static const ax_actor_vtable_t guardian_vtable = {
    .name = "test.guardian",
    .size = sizeof(guardian_actor_t),
    .init = guardian_init,
    .receive_local = guardian_receive,
};

static ax_status_t fails_with_eio(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    (void)msg;
    return AX_EIO;
}

static const ax_actor_vtable_t top_failer_vtable = {
    .name = "test.top-failer",
    .size = sizeof(ax_actor_t),
    .receive_local = fails_with_eio,
};

/* A top-level actor's failure reaches the guardian actor: failed (with
 * the handler's status) and then ended, as a parent would hear it. */
Test(supervision, a_top_level_failure_reaches_the_guardian_actor)
{
    ax_system_t *sys = axt_system(2);
    guardian_log_t log = {0};
    ax_ref_t guardian, top;
    ax_msg_t *m = NULL;

    sem_init(&log.got, 0, 0);
    cr_assert_eq(ax_spawn(sys, &guardian_vtable, &log, &guardian), AX_OK);
    ax_set_guardian_actor(sys, guardian);
    cr_assert_eq(ax_spawn(sys, &top_failer_vtable, NULL, &top), AX_OK);
    cr_assert_eq(ax_u64_msg_new(1, &m), AX_OK);
    cr_assert_eq(ax_tell(top, &m, AX_REF_NULL), AX_OK);
    AXT_WAIT_SEM(&log.got);
    AXT_WAIT_SEM(&log.got);
    cr_assert_eq(atomic_load(&log.failed), 1);
    cr_assert_eq(atomic_load(&log.ended), 1);
    cr_assert_eq(log.status, AX_EIO);
    cr_assert(ax_ref_eq(log.child, top));
    cr_assert_eq(axt_stats(sys).failures, 1);
    ax_set_guardian_actor(sys, AX_REF_NULL);
    axt_shutdown(&sys);
    sem_destroy(&log.got);
}
