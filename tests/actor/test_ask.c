/*
 * Ask (ax_ask, ax_reply, ax_future_*, ax_gather): from a thread and from
 * an actor, timeouts against late replies and reused reply slots, asks
 * that cannot be delivered, gather, and what may not be done where.
 *
 * One responder actor answers requests as each request's flags say: at
 * once, later (it keeps the request and answers when told to flush), or
 * never. Requests and replies count their allocations and releases, so
 * every test ends by checking that each was released exactly once.
 */
#include "helpers.h"

#include "axon/serial.h"

/* ---- requests and replies ------------------------------------------------- */

#define R_NOW   0x01u /* reply at once with 2 * value */
#define R_KEEP  0x02u /* keep the request, reply at the next flush */
#define R_FLUSH 0x04u /* first reply to every kept request (late) */
#define R_PLAIN 0x08u /* sent with ax_tell: ax_reply must refuse it */
#define R_BLOCK 0x10u /* wait on the gate, then reply */
#define R_SPIN  0x20u /* busy for spin_us, then reply */

typedef struct req {
    ax_msg_t hdr;
    uint64_t value;
    uint32_t flags;
    uint32_t spin_us;
} req_t;

typedef struct rep {
    ax_msg_t hdr;
    uint64_t value;
} rep_t;

static _Atomic uint64_t req_allocs, req_releases, rep_allocs, rep_releases;

static void req_release(ax_msg_t *m)
{
    atomic_fetch_add(&req_releases, 1);
    free(m);
}

static void rep_release(ax_msg_t *m)
{
    atomic_fetch_add(&rep_releases, 1);
    free(m);
}

static const ax_msg_type_t req_type = {.name = "test.req", .size = sizeof(req_t),
                                       .release = req_release};
static const ax_msg_type_t rep_type = {.name = "test.rep", .size = sizeof(rep_t),
                                       .release = rep_release};

static ax_msg_t *req_new(uint64_t value, uint32_t flags)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&req_type, &m) != AX_OK)
        return NULL;
    atomic_fetch_add(&req_allocs, 1);
    ((req_t *)m)->value = value;
    ((req_t *)m)->flags = flags;
    return m;
}

static ax_msg_t *rep_new(uint64_t value)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&rep_type, &m) != AX_OK)
        return NULL;
    atomic_fetch_add(&rep_allocs, 1);
    ((rep_t *)m)->value = value;
    return m;
}

static uint64_t rep_value(const ax_msg_t *m)
{
    return m != NULL && m->type == &rep_type ? ((const rep_t *)m)->value : UINT64_MAX;
}

static void check_released(void)
{
    cr_assert_eq(atomic_load(&req_releases), atomic_load(&req_allocs),
                 "requests: %llu of %llu released",
                 (unsigned long long)atomic_load(&req_releases),
                 (unsigned long long)atomic_load(&req_allocs));
    cr_assert_eq(atomic_load(&rep_releases), atomic_load(&rep_allocs),
                 "replies: %llu of %llu released",
                 (unsigned long long)atomic_load(&rep_releases),
                 (unsigned long long)atomic_load(&rep_allocs));
}

/* ---- the responder ------------------------------------------------------------ */

#define MAX_KEPT 4096

typedef struct resp_log {
    _Atomic uint64_t handled;   /* requests handled */
    _Atomic uint64_t replied;   /* replies sent with AX_OK */
    _Atomic uint64_t late;      /* of which to kept requests */
    _Atomic uint64_t plain_einval; /* ax_reply refused a plain tell */
    sem_t gate, in_block, ended;
} resp_log_t;

typedef struct responder {
    ax_actor_t actor;
    resp_log_t *log;
    ax_msg_t *kept[MAX_KEPT];
    size_t nkept;
} responder_t;

static ax_status_t resp_init(ax_actor_t *self, void *arg)
{
    ((responder_t *)self)->log = arg;
    return AX_OK;
}

static void resp_reply(ax_actor_t *self, const ax_msg_t *request, uint64_t value)
{
    resp_log_t *log = ((responder_t *)self)->log;
    ax_msg_t *rep = rep_new(value);

    AXT_CHECK(ax_reply(request, &rep, ax_self(self)) == AX_OK);
    AXT_CHECK(rep == NULL); /* taken, even when it is too late */
    atomic_fetch_add(&log->replied, 1);
}

static ax_status_t resp_receive(ax_actor_t *self, ax_msg_t **msg)
{
    responder_t *r = (responder_t *)self;
    req_t *q = (req_t *)*msg;

    AXT_CHECK((*msg)->type == &req_type);
    if ((*msg)->type != &req_type)
        return AX_OK;
    if (q->flags & R_FLUSH) {
        for (size_t i = 0; i < r->nkept; i++) {
            resp_reply(self, r->kept[i], 2 * ((req_t *)r->kept[i])->value);
            atomic_fetch_add(&r->log->late, 1);
            ax_msg_release(&r->kept[i]);
        }
        r->nkept = 0;
    }
    if (q->flags & R_PLAIN) {
        ax_msg_t *rep = rep_new(0);

        if (ax_reply(*msg, &rep, ax_self(self)) == AX_EINVAL && rep != NULL)
            atomic_fetch_add(&r->log->plain_einval, 1);
        ax_msg_release(&rep); /* refused: still ours */
    }
    if (q->flags & R_BLOCK) {
        sem_post(&r->log->in_block);
        AXT_CHECK(axt_sem_wait(&r->log->gate, WAIT_S));
    }
    if (q->flags & R_SPIN)
        axt_spin_us(q->spin_us);
    if (q->flags & (R_NOW | R_BLOCK | R_SPIN))
        resp_reply(self, *msg, 2 * q->value);
    if ((q->flags & R_KEEP) && r->nkept < MAX_KEPT) {
        r->kept[r->nkept++] = *msg;
        *msg = NULL;
    }
    atomic_fetch_add(&r->log->handled, 1);
    return AX_OK;
}

static void resp_destroy(ax_actor_t *self)
{
    responder_t *r = (responder_t *)self;

    for (size_t i = 0; i < r->nkept; i++)
        ax_msg_release(&r->kept[i]);
    sem_post(&r->log->ended);
}

static const ax_actor_vtable_t responder_vtable = {
    .name = "test.responder",
    .size = sizeof(responder_t),
    .init = resp_init,
    .receive_local = resp_receive,
    .destroy = resp_destroy,
};

static ax_ref_t spawn_responder(ax_system_t *sys, resp_log_t *log)
{
    ax_ref_t ref;

    memset(log, 0, sizeof(*log));
    sem_init(&log->gate, 0, 0);
    sem_init(&log->in_block, 0, 0);
    sem_init(&log->ended, 0, 0);
    cr_assert_eq(ax_spawn(sys, &responder_vtable, log, &ref), AX_OK);
    return ref;
}

/* ax_ask from the test thread; asserts it was taken. */
static ax_future_t *ask(ax_ref_t dst, uint64_t value, uint32_t flags, uint64_t timeout_ns)
{
    ax_msg_t *m = req_new(value, flags);
    ax_future_t *f = NULL;

    cr_assert_eq(ax_ask(dst, &m, timeout_ns, &f), AX_OK, "ask: %s", ax_error_detail());
    cr_assert_null(m, "ax_ask takes the request on AX_OK");
    cr_assert_not_null(f);
    return f;
}

static void tell_flags(ax_ref_t dst, uint32_t flags)
{
    ax_msg_t *m = req_new(0, flags);

    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
}

/* Has f completed? (ax_gather with a 1 ns deadline does not wait.) */
static bool completed(ax_future_t *f)
{
    size_t n = 0;

    ax_gather(&f, 1, 1, &n);
    return n == 1;
}

/* ---- thread -> actor ------------------------------------------------------------ */

Test(ask, a_thread_asks_and_waits_for_the_reply)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    uint64_t n = axt_scaled(2000);

    for (uint64_t i = 1; i <= n; i++) {
        /* Half with a timeout that does not expire: its timer must be
         * settled by the reply. */
        ax_future_t *f = ask(r, i, R_NOW, i % 2 ? AX_MS(60000) : 0);
        ax_msg_t *reply = NULL;

        cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_OK, "ask %llu: %s",
                     (unsigned long long)i, ax_error_detail());
        cr_assert_eq(rep_value(reply), 2 * i);
        cr_assert(ax_ref_eq(reply->sender, r), "a reply's sender is the `from` of ax_reply");
        ax_msg_release(&reply);
        /* Once only: the reply has been taken. */
        cr_assert_eq(ax_future_wait(f, 0, &reply), AX_OK);
        cr_assert_null(reply);
        ax_future_release(&f);
        cr_assert_null(f);
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

Test(ask, a_wait_that_runs_out_leaves_the_future_to_complete_later)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    ax_future_t *f = ask(r, 21, R_KEEP, 0);
    ax_msg_t *reply = NULL;
    double t0 = axt_now();

    cr_assert_eq(ax_future_wait(f, AX_MS(20), &reply), AX_ETIMEDOUT);
    cr_assert_geq(axt_now() - t0, 0.020, "the wait returned before its timeout");
    cr_assert_null(reply);
    cr_assert(!completed(f));
    tell_flags(r, R_FLUSH);
    cr_assert_eq(ax_future_wait(f, 0, &reply), AX_OK);
    cr_assert_eq(rep_value(reply), 42);
    ax_msg_release(&reply);
    ax_future_release(&f);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- actor -> actor ------------------------------------------------------------- */

#define ASKER_MAX 512

typedef struct asker_plan {
    ax_ref_t dst[ASKER_MAX];
    uint32_t flags[ASKER_MAX];
    uint64_t timeout[ASKER_MAX];
    int expect[ASKER_MAX];      /* the status each ask should complete with */
    uint32_t n;
    /* Results, written by the asker. */
    int ask_st[ASKER_MAX];
    int got_st[ASKER_MAX];
    uint64_t got_value[ASKER_MAX];
    uint32_t results[ASKER_MAX];
    uint32_t unknown_ids;       /* results whose id matched no future */
    _Atomic uint64_t done;      /* results received */
    sem_t all;
} asker_plan_t;

typedef struct asker {
    ax_actor_t actor;
    asker_plan_t *plan;
    ax_future_t *futures[ASKER_MAX];
    uint64_t ids[ASKER_MAX];
} asker_t;

static const ax_msg_type_t go_type = {.name = "test.go", .size = sizeof(ax_msg_t)};

static ax_status_t asker_init(ax_actor_t *self, void *arg)
{
    ((asker_t *)self)->plan = arg;
    return AX_OK;
}

static ax_status_t asker_receive(ax_actor_t *self, ax_msg_t **msg)
{
    asker_t *a = (asker_t *)self;
    asker_plan_t *p = a->plan;

    if (axt_job_run(self, *msg))
        return AX_OK;
    if ((*msg)->type == &go_type) {
        /* All asks go out before any result can come back: results are
         * messages to this actor, handled after this handler returns. */
        for (uint32_t i = 0; i < p->n; i++) {
            ax_msg_t *m = req_new(i + 1, p->flags[i]);

            p->ask_st[i] = ax_ask(p->dst[i], &m, p->timeout[i], &a->futures[i]);
            AXT_CHECK(p->ask_st[i] == AX_OK && m == NULL);
            a->ids[i] = ax_future_id(a->futures[i]);
        }
        for (uint32_t i = 0; i < p->n; i++)
            for (uint32_t j = 0; j < i; j++)
                AXT_CHECK(a->ids[i] != a->ids[j]); /* ids tell futures apart */
        return AX_OK;
    }
    AXT_CHECK((*msg)->type == &ax_ask_result_type);
    if ((*msg)->type != &ax_ask_result_type)
        return AX_OK;
    ax_ask_result_t *res = (ax_ask_result_t *)*msg;
    uint32_t i = 0;

    while (i < p->n && a->ids[i] != res->future_id)
        i++;
    if (i == p->n) {
        p->unknown_ids++;
        return AX_OK;
    }
    p->results[i]++;
    p->got_st[i] = res->status;
    p->got_value[i] = rep_value(res->reply);
    if (i % 2 == 0 && res->reply != NULL) {
        /* Take the reply from the result; odd ones go with it. */
        ax_msg_t *reply = res->reply;

        res->reply = NULL;
        ax_msg_release(&reply);
    }
    ax_future_release(&a->futures[i]);
    if (atomic_fetch_add(&p->done, 1) + 1 == p->n)
        sem_post(&p->all);
    return AX_OK;
}

static const ax_actor_vtable_t asker_vtable = {
    .name = "test.asker",
    .size = sizeof(asker_t),
    .init = asker_init,
    .receive_local = asker_receive,
};

Test(ask, an_actor_asks_and_gets_each_result_as_a_message)
{
    ax_system_t *sys = axt_system(2);
    static asker_plan_t p;
    resp_log_t log, dead_log;
    ax_ref_t r = spawn_responder(sys, &log), dead = spawn_responder(sys, &dead_log), asker;
    ax_msg_t *go = NULL;

    cr_assert_eq(ax_stop(dead), AX_OK);
    AXT_WAIT_SEM(&dead_log.ended);
    /* A mix: answered (AX_OK), never answered in time (AX_ETIMEDOUT), and
     * sent to an actor that has ended (AX_ECLOSED). */
    p.n = 300;
    for (uint32_t i = 0; i < p.n; i++) {
        p.dst[i] = r;
        p.flags[i] = R_NOW;
        p.expect[i] = AX_OK;
        p.timeout[i] = i % 3 == 0 ? AX_MS(60000) : 0;
        if (i % 10 == 1) {
            p.flags[i] = R_KEEP;
            p.timeout[i] = AX_MS(5);
            p.expect[i] = AX_ETIMEDOUT;
        } else if (i % 10 == 2) {
            p.dst[i] = dead;
            p.expect[i] = AX_ECLOSED;
        }
    }
    sem_init(&p.all, 0, 0);
    cr_assert_eq(ax_spawn(sys, &asker_vtable, &p, &asker), AX_OK);
    cr_assert_eq(ax_msg_alloc(&go_type, &go), AX_OK);
    cr_assert_eq(ax_tell(asker, &go, AX_REF_NULL), AX_OK);
    AXT_WAIT_SEM(&p.all);
    axt_sleep_us(20000); /* no second result may follow */
    axt_flush(asker);

    cr_assert_eq(p.unknown_ids, 0);
    for (uint32_t i = 0; i < p.n; i++) {
        cr_assert_eq(p.ask_st[i], AX_OK);
        cr_assert_eq(p.results[i], 1, "ask %u: %u results", i, p.results[i]);
        cr_assert_eq(p.got_st[i], p.expect[i], "ask %u: completed with %s, expected %s", i,
                     ax_status_name(p.got_st[i]), ax_status_name(p.expect[i]));
        if (p.expect[i] == AX_OK)
            cr_assert_eq(p.got_value[i], 2 * (i + 1), "ask %u got another ask's reply", i);
        else
            cr_assert_eq(p.got_value[i], UINT64_MAX, "ask %u: a failed ask carries no reply", i);
    }
    /* The kept requests are answered late: to dead letters, released. */
    tell_flags(r, R_FLUSH);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- timeout against a late reply, slots reused ---------------------------------------- */

typedef struct late_count {
    _Atomic uint64_t timed_out; /* replies dead-lettered with AX_ETIMEDOUT */
    _Atomic uint64_t other;     /* anything else */
    _Atomic uint64_t sum;       /* of their values */
} late_count_t;

static void count_late(dl_log_t *log, const ax_dead_letter_t *dl)
{
    late_count_t *c = log->ctx;

    if (dl->msg != NULL && dl->msg->type == &rep_type && dl->status == AX_ETIMEDOUT) {
        atomic_fetch_add(&c->sum, rep_value(dl->msg));
        atomic_fetch_add(&c->timed_out, 1);
    } else {
        atomic_fetch_add(&c->other, 1);
    }
}

/*
 * Each round: an ask that the responder keeps times out; then a fresh ask
 * is answered, and the responder also sends the late reply to the first
 * one. The fresh ask usually gets the first one's slot back (the test
 * checks it happened): it must get exactly its own reply, and the late one
 * must go to dead letters. The late reply comes in three orders: before
 * the fresh ask (the slot is free), in the same handler as the fresh
 * reply (the slot holds the fresh ask), and before the timed-out future
 * is released (the slot has completed but is not yet free).
 */
Test(ask, a_late_reply_goes_to_dead_letters_never_to_a_reused_slot)
{
    ax_system_t *sys = axt_system(2);
    static late_count_t lc;
    dl_log_t dl = {.on_letter = count_late, .ctx = &lc};
    resp_log_t log;
    ax_ref_t r;
    uint64_t rounds = axt_scaled(150), reused = 0, late_sum = 0;

    axt_collect_dead_letters(sys, &dl);
    r = spawn_responder(sys, &log);
    for (uint64_t i = 0; i < rounds; i++) {
        uint64_t va = 1000000 + i, vb = 2000000 + i, late_before = atomic_load(&log.late);
        ax_future_t *fa = ask(r, va, R_KEEP, AX_MS(2)), *fb;
        uintptr_t slot_a = (uintptr_t)fa;
        ax_msg_t *reply = NULL;

        cr_assert_eq(ax_future_wait(fa, AX_MS(60000), &reply), AX_ETIMEDOUT);
        cr_assert(completed(fa), "the ask itself timed out, not the wait");
        cr_assert_null(reply);
        late_sum += 2 * va;
        switch (i % 3) {
        case 0: /* late reply to a released, free slot; then a fresh ask */
            ax_future_release(&fa);
            tell_flags(r, R_FLUSH);
            fb = ask(r, vb, R_NOW, 0);
            break;
        case 1: /* late reply in the handler that answers the fresh ask */
            ax_future_release(&fa);
            fb = ask(r, vb, R_NOW | R_FLUSH, 0);
            break;
        default: /* late reply while the timed-out future is still held */
            tell_flags(r, R_FLUSH);
            cr_assert(axt_wait_at_least(&log.late, late_before + 1, WAIT_S));
            ax_future_release(&fa);
            fb = ask(r, vb, R_NOW, 0);
            break;
        }
        reused += (uintptr_t)fb == slot_a;
        cr_assert_eq(ax_future_wait(fb, AX_MS(60000), &reply), AX_OK, "round %llu: %s",
                     (unsigned long long)i, ax_error_detail());
        cr_assert_eq(rep_value(reply), 2 * vb,
                     "round %llu: the fresh ask got %llu, not its own reply",
                     (unsigned long long)i, (unsigned long long)rep_value(reply));
        ax_msg_release(&reply);
        ax_future_release(&fb);
    }
    cr_assert(axt_wait_at_least(&lc.timed_out, rounds, WAIT_S),
              "%llu late replies reached dead letters",
              (unsigned long long)atomic_load(&lc.timed_out));
    cr_assert_eq(atomic_load(&lc.sum), late_sum, "the dead letters carry the late replies");
    cr_log_info("%llu of %llu fresh asks reused the timed-out ask's slot",
                (unsigned long long)reused, (unsigned long long)rounds);
    /* Otherwise this test would not test what it says. */
    cr_assert_gt(reused, 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&lc.other), 0);
    check_released();
}

/*
 * Many asks whose timeout and reply race: every future completes exactly
 * once, with its own reply or with AX_ETIMEDOUT, and every reply either
 * reaches its future or goes to dead letters.
 */
typedef struct racer {
    ax_ref_t r;
    uint64_t base, n;
    uint64_t ok, timed_out, wrong;
} racer_t;

static void *racer_main(void *arg)
{
    racer_t *rc = arg;
    uint64_t seed = rc->base | 1;

    for (uint64_t i = 0; i < rc->n; i++) {
        uint64_t v = rc->base + i;
        ax_msg_t *m = req_new(v, R_SPIN), *reply = NULL;
        ax_future_t *f = NULL;
        ax_status_t st;

        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ((req_t *)m)->spin_us = (uint32_t)((seed >> 33) % 600);
        AXT_CHECK(ax_ask(rc->r, &m, AX_US(700), &f) == AX_OK);
        st = ax_future_wait(f, AX_MS(60000), &reply);
        if (st == AX_OK && rep_value(reply) == 2 * v)
            rc->ok++;
        else if (st == AX_ETIMEDOUT && reply == NULL)
            rc->timed_out++;
        else
            rc->wrong++;
        ax_msg_release(&reply);
        ax_future_release(&f);
    }
    return NULL;
}

Test(ask, timeouts_racing_replies_complete_each_future_once)
{
    ax_system_t *sys = axt_system(2);
    static late_count_t lc;
    dl_log_t dl = {.on_letter = count_late, .ctx = &lc};
    resp_log_t log;
    ax_ref_t r;
    racer_t rc[2];
    pthread_t t[2];
    uint64_t ok = 0, timed_out = 0, n = axt_scaled(300);

    axt_collect_dead_letters(sys, &dl);
    r = spawn_responder(sys, &log);
    for (int k = 0; k < 2; k++) {
        rc[k] = (racer_t){.r = r, .base = (uint64_t)(k + 1) << 32, .n = n};
        cr_assert_eq(pthread_create(&t[k], NULL, racer_main, &rc[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        cr_assert_eq(rc[k].wrong, 0);
        ok += rc[k].ok;
        timed_out += rc[k].timed_out;
    }
    cr_assert_eq(ok + timed_out, 2 * n);
    /* Every reply sent went to its future or, too late, to dead letters. */
    AXT_WAIT_COUNT(log.handled, 2 * n);
    cr_assert(axt_wait_at_least(&lc.timed_out, atomic_load(&log.replied) - ok, WAIT_S));
    cr_assert_eq(atomic_load(&lc.timed_out) + ok, atomic_load(&log.replied));
    cr_log_info("%llu answered in time, %llu timed out", (unsigned long long)ok,
                (unsigned long long)timed_out);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- asks that cannot be delivered ---------------------------------------------------- */

static void count_requests(dl_log_t *log, const ax_dead_letter_t *dl)
{
    if (dl->msg != NULL && dl->msg->type == &req_type && dl->status == AX_ECLOSED)
        atomic_fetch_add((_Atomic uint64_t *)log->ctx, 1);
}

Test(ask, an_ask_to_an_actor_that_has_ended_completes_with_eclosed)
{
    ax_system_t *sys = axt_system(2);
    static _Atomic uint64_t dead_requests;
    dl_log_t dl = {.on_letter = count_requests, .ctx = (void *)&dead_requests};
    resp_log_t log;
    ax_ref_t r;
    ax_msg_t *reply = NULL;

    axt_collect_dead_letters(sys, &dl);
    r = spawn_responder(sys, &log);
    cr_assert_eq(ax_stop(r), AX_OK);
    AXT_WAIT_SEM(&log.ended);

    /* With and without a timeout: the failed delivery completes it first. */
    for (int k = 0; k < 2; k++) {
        ax_future_t *f = ask(r, 1, R_NOW, k ? AX_MS(60000) : 0);

        cr_assert_eq(ax_future_wait(f, AX_MS(60000), &reply), AX_ECLOSED);
        cr_assert_null(reply);
        ax_future_release(&f);
    }
    cr_assert(axt_wait_at_least(&dead_requests, 2, WAIT_S), "the requests go to dead letters");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

Test(ask, an_ask_queued_when_its_receiver_is_killed_completes_with_eclosed)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    ax_future_t *busy = ask(r, 1, R_BLOCK, 0), *queued;
    ax_msg_t *reply = NULL;

    AXT_WAIT_SEM(&log.in_block);
    queued = ask(r, 2, R_NOW, 0);
    cr_assert_eq(ax_kill(r), AX_OK);
    sem_post(&log.gate);
    /* The one in the handler is answered; the kill takes effect before
     * the next message, whose ask fails. */
    cr_assert_eq(ax_future_wait(busy, AX_MS(60000), &reply), AX_OK);
    cr_assert_eq(rep_value(reply), 2);
    ax_msg_release(&reply);
    cr_assert_eq(ax_future_wait(queued, AX_MS(60000), &reply), AX_ECLOSED);
    cr_assert_null(reply);
    ax_future_release(&busy);
    ax_future_release(&queued);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

Test(ask, an_ask_to_a_remote_ref_without_a_network_fails_and_the_caller_keeps_the_request)
{
    ax_system_t *sys = axt_system(2);
    ax_path_t path;
    ax_ref_t remote;
    ax_future_t *f = NULL;
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_path_parse("tcp://10.255.255.1:9#42", &path), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &path, &remote), AX_OK);
    cr_assert_eq(ax_msg_alloc(&ax_u64_type, &m), AX_OK);
    ((ax_u64_msg_t *)m)->value = 7;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(ax_ask(remote, &m, k ? AX_MS(60000) : 0, &f), AX_ENOTFOUND);
        cr_assert_not_null(m, "the caller keeps the request");
        cr_assert_eq(((ax_u64_msg_t *)m)->value, 7);
    }
    ax_msg_release(&m);
    /* A type without a serialiser cannot go to a remote actor at all. */
    m = req_new(1, R_NOW);
    cr_assert_eq(ax_ask(remote, &m, 0, &f), AX_EINVAL);
    cr_assert_not_null(m);
    /* Arguments. */
    cr_assert_eq(ax_ask(remote, NULL, 0, &f), AX_EINVAL);
    cr_assert_eq(ax_ask(AX_REF_NULL, &m, 0, &f), AX_EINVAL, "not an actor ref");
    cr_assert_not_null(m);
    ax_msg_release(&m);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- ax_reply on a message that was not an ask ------------------------------------------ */

Test(ask, reply_to_a_message_not_sent_by_ask_is_einval)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    ax_msg_t *plain = req_new(1, 0), *rep = rep_new(1);

    /* In a handler, for a message sent with ax_tell. */
    tell_flags(r, R_PLAIN);
    AXT_WAIT_COUNT(log.handled, 1);
    cr_assert_eq(atomic_load(&log.plain_einval), 1);
    /* Outside any actor, for a message never sent. */
    cr_assert_eq(ax_reply(plain, &rep, AX_REF_NULL), AX_EINVAL);
    cr_assert_not_null(rep, "the caller keeps a refused reply");
    cr_assert_eq(ax_reply(NULL, &rep, AX_REF_NULL), AX_EINVAL);
    cr_assert_eq(ax_reply(plain, NULL, AX_REF_NULL), AX_EINVAL);
    ax_msg_release(&plain);
    ax_msg_release(&rep);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- gather ---------------------------------------------------------------------------------- */

#define GATHER_N 64

Test(ask, gather_completes_when_every_future_has)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    ax_future_t *f[GATHER_N];
    size_t done = 0;

    for (int i = 0; i < GATHER_N; i++)
        f[i] = ask(r, (uint64_t)i, R_NOW, i % 2 ? AX_MS(60000) : 0);
    cr_assert_eq(ax_gather(f, GATHER_N, AX_MS(60000), &done), AX_OK);
    cr_assert_eq(done, GATHER_N);
    for (int i = 0; i < GATHER_N; i++) {
        ax_msg_t *reply = NULL;

        /* The replies stay in the futures: each wait returns at once. */
        cr_assert(completed(f[i]));
        cr_assert_eq(ax_future_wait(f[i], 0, &reply), AX_OK);
        cr_assert_eq(rep_value(reply), 2 * (uint64_t)i);
        ax_msg_release(&reply);
        ax_future_release(&f[i]);
    }
    done = 99;
    cr_assert_eq(ax_gather(f, 0, AX_MS(1), &done), AX_OK, "nothing to wait for");
    cr_assert_eq(done, 0);
    cr_assert_eq(ax_gather(NULL, 1, AX_MS(1), &done), AX_EINVAL);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/*
 * Half the asks are never answered in time: gather returns AX_ETIMEDOUT
 * once its deadline has passed, counting the answered half. The pending
 * futures are then released before they complete (safe, and nothing
 * leaks), and the replies that come afterwards are released too. The
 * answered half is waited for first: on a loaded machine the responder's
 * worker may not run within the gather's 50 ms, and the count must not
 * depend on that.
 */
Test(ask, gather_times_out_with_the_number_completed)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    ax_future_t *f[GATHER_N];
    size_t done = 0;
    double t0;

    for (int i = 0; i < GATHER_N; i++)
        f[i] = ask(r, (uint64_t)i, i % 2 ? R_KEEP : R_NOW, 0);
    for (int i = 0; i < GATHER_N; i += 2)
        WAIT_UNTIL(completed(f[i]), "ask %d was never answered", i);
    t0 = axt_now();
    cr_assert_eq(ax_gather(f, GATHER_N, AX_MS(50), &done), AX_ETIMEDOUT);
    cr_assert_geq(axt_now() - t0, 0.050, "gather returned before its deadline");
    cr_assert_eq(done, GATHER_N / 2);
    for (int i = 0; i < GATHER_N; i++) {
        cr_assert_eq(completed(f[i]), i % 2 == 0, "future %d", i);
        ax_future_release(&f[i]);
    }
    tell_flags(r, R_FLUSH);
    AXT_WAIT_COUNT(log.late, GATHER_N / 2);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* ---- not on a worker, and releasing early ---------------------------------------------------- */

typedef struct worker_wait {
    ax_ref_t responder;
    int wait_st, gather_st;
    _Atomic uint64_t ran, results;
} worker_wait_t;

typedef struct waiter {
    ax_actor_t actor;
    worker_wait_t *w;
} waiter_t;

static ax_status_t waiter_init(ax_actor_t *self, void *arg)
{
    ((waiter_t *)self)->w = arg;
    return AX_OK;
}

static ax_status_t waiter_receive(ax_actor_t *self, ax_msg_t **msg)
{
    worker_wait_t *w = ((waiter_t *)self)->w;

    if ((*msg)->type == &ax_ask_result_type) {
        /* The future was released already; its result still comes. */
        AXT_CHECK(((ax_ask_result_t *)*msg)->status == AX_OK);
        atomic_fetch_add(&w->results, 1);
        return AX_OK;
    }
    ax_msg_t *m = req_new(5, R_NOW), *reply = NULL;
    ax_future_t *f = NULL;
    size_t done = 0;

    AXT_CHECK(ax_ask(w->responder, &m, 0, &f) == AX_OK);
    /* Blocking here would hold a worker hostage: refused. */
    w->wait_st = ax_future_wait(f, AX_MS(1), &reply);
    w->gather_st = ax_gather(&f, 1, AX_MS(1), &done);
    AXT_CHECK(reply == NULL);
    ax_future_release(&f);
    atomic_store(&w->ran, 1);
    return AX_OK;
}

static const ax_actor_vtable_t waiter_vtable = {
    .name = "test.waiter",
    .size = sizeof(waiter_t),
    .init = waiter_init,
    .receive_local = waiter_receive,
};

Test(ask, waiting_on_a_worker_thread_is_estate)
{
    ax_system_t *sys = axt_system(2);
    static worker_wait_t w;
    resp_log_t log;
    ax_ref_t waiter;
    ax_msg_t *go = NULL;

    w.responder = spawn_responder(sys, &log);
    cr_assert_eq(ax_spawn(sys, &waiter_vtable, &w, &waiter), AX_OK);
    cr_assert_eq(ax_msg_alloc(&go_type, &go), AX_OK);
    cr_assert_eq(ax_tell(waiter, &go, AX_REF_NULL), AX_OK);
    AXT_WAIT_COUNT(w.ran, 1);
    AXT_WAIT_COUNT(w.results, 1);
    cr_assert_eq(w.wait_st, AX_ESTATE, "ax_future_wait on a worker gave %s",
                 ax_status_name(w.wait_st));
    cr_assert_eq(w.gather_st, AX_ESTATE, "ax_gather on a worker gave %s",
                 ax_status_name(w.gather_st));
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}

/* Futures released before anything happened to them: with and without a
 * timeout, answered later or timing out later. Nothing may leak (ASan)
 * and a late reply is still released. */
Test(ask, releasing_a_future_before_it_completes_is_safe)
{
    ax_system_t *sys = axt_system(2);
    resp_log_t log;
    ax_ref_t r = spawn_responder(sys, &log);
    uint64_t n = axt_scaled(400);

    for (uint64_t i = 0; i < n; i++) {
        ax_future_t *f = ask(r, i, i % 4 < 2 ? R_KEEP : R_NOW, i % 2 ? AX_MS(3) : 0);

        ax_future_release(&f);
        cr_assert_null(f);
    }
    axt_sleep_us(20000); /* the timeouts fire on released futures */
    tell_flags(r, R_FLUSH);
    AXT_WAIT_COUNT(log.handled, n + 1);
    /* Every ask completes or is released without a word; new asks still
     * work, on recycled slots. */
    ax_future_t *f = ask(r, 77, R_NOW, AX_MS(60000));
    ax_msg_t *reply = NULL;

    cr_assert_eq(ax_future_wait(f, 0, &reply), AX_OK);
    cr_assert_eq(rep_value(reply), 154);
    ax_msg_release(&reply);
    ax_future_release(&f);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    check_released();
}
