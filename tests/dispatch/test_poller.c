/*
 * The poller and its registrar, on real descriptors (pipes, eventfds,
 * socketpairs, TCP loopback) and real threads.
 *
 * No assertion is about speed. Timers are checked for order and for never
 * firing early; everything that waits for an event is bounded (STEP_MS) and
 * fails instead of hanging, and "this must not be reported" is checked by
 * polling for QUIET_MS.
 *
 * AXON_TEST_SCALE=n divides the largest iteration counts by n (for a slow
 * sanitizer job); a normal run does the full count.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch/poller.h"
#include "tests/actor/helpers.h"

#define STEP_MS 60000 /* the most one expected event may take (a hang bound) */
#define QUIET_MS 150  /* how long we look for an event that must not come */
#define MS 1000000ull

/* ---- helpers ------------------------------------------------------------ */

static ax__poller_t *make_poller(void)
{
    ax__poller_t *p = NULL;

    cr_assert_eq(ax__poller_create(&p), AX_OK, "create: %s", ax_error_detail());
    cr_assert_not_null(p);
    return p;
}

typedef struct pipe_s {
    int rd, wr;
} pipe_t;

static pipe_t make_pipe(void)
{
    int fds[2];

    cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
    return (pipe_t){fds[0], fds[1]};
}

static void close_pipe(pipe_t *pp)
{
    close(pp->rd);
    close(pp->wr);
}

static void put_byte(int fd)
{
    cr_assert_eq(write(fd, "x", 1), 1, "write: %s", strerror(errno));
}

/* A connected, non-blocking TCP pair over 127.0.0.1. */
static void tcp_pair(int *a, int *b)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(lst >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lst, (struct sockaddr *)&addr, sizeof(addr)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(lst, 1), 0);
    cr_assert_eq(getsockname(lst, (struct sockaddr *)&addr, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(*a >= 0);
    cr_assert_eq(connect(*a, (struct sockaddr *)&addr, sizeof(addr)), 0, "connect: %s",
                 strerror(errno));
    *b = accept4(lst, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert(*b >= 0, "accept: %s", strerror(errno));
    cr_assert_eq(fcntl(*a, F_SETFL, fcntl(*a, F_GETFL) | O_NONBLOCK), 0);
    close(lst);
}

/* Everything polled in a test, in the order it was reported, with the
 * time each batch came back. */
typedef struct seen_s {
    ax__poll_event_t ev[4096];
    uint64_t at[4096];
    size_t n;
} seen_t;

static void poll_once(ax__poller_t *p, int timeout_ms, size_t max, seen_t *s)
{
    ax__poll_event_t out[64];
    size_t n = 0, i;
    uint64_t now;

    cr_assert(max <= 64);
    cr_assert_eq(ax__poller_wait(p, timeout_ms, out, max, &n), AX_OK, "wait: %s",
                 ax_error_detail());
    cr_assert(n <= max, "wait returned %zu events for max %zu", n, max);
    now = ax__now_ns();
    for (i = 0; i < n; i++) {
        cr_assert(s->n < 4096, "too many events");
        s->at[s->n] = now;
        s->ev[s->n++] = out[i];
    }
}

static size_t count(const seen_t *s, ax__poll_kind_t kind, uint64_t id)
{
    size_t i, c = 0;

    for (i = 0; i < s->n; i++)
        if (s->ev[i].kind == kind && (kind == AX__EV_WAKE || s->ev[i].id == id))
            c++;
    return c;
}

/* The index of the first FD event of id carrying any of bits, or -1. */
static long find_fd(const seen_t *s, uint64_t id, uint32_t bits)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->ev[i].kind == AX__EV_FD && s->ev[i].id == id && (s->ev[i].events & bits) != 0)
            return (long)i;
    return -1;
}

/* Poll until id reports one of bits; fail after STEP_MS. */
static const ax__poll_event_t *expect_fd(ax__poller_t *p, seen_t *s, uint64_t id, uint32_t bits)
{
    uint64_t end = ax__now_ns() + STEP_MS * MS;
    long at;

    while ((at = find_fd(s, id, bits)) < 0) {
        cr_assert(ax__now_ns() < end, "registration %llu never reported 0x%x",
                  (unsigned long long)id, bits);
        poll_once(p, 50, 64, s);
    }
    return &s->ev[at];
}

/* Poll for QUIET_MS, collecting whatever comes. */
static void poll_quiet(ax__poller_t *p, seen_t *s)
{
    uint64_t end = ax__now_ns() + QUIET_MS * MS;

    while (ax__now_ns() < end)
        poll_once(p, 20, 64, s);
}

static seen_t *new_seen(void)
{
    seen_t *s = calloc(1, sizeof(*s));

    cr_assert_not_null(s);
    return s;
}

/* ---- registration ids --------------------------------------------------- */

Test(poller, ids_are_unique_and_increasing)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe(), b = make_pipe();
    uint64_t prev = 0, id, keep[8], tid;
    int i;

    /* Some registrations stay while others churn, and failed adds and
     * timers draw from the same counter: ids still only go up. */
    for (i = 0; i < 8; i++) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

        cr_assert(fd >= 0);
        cr_assert_eq(ax__poller_add(p, fd, AX__POLL_IN, NULL, &keep[i]), AX_OK);
        cr_assert_gt(keep[i], prev);
        prev = keep[i];
    }
    for (i = 0; i < 5000; i++) {
        cr_assert_eq(ax__poller_add(p, (i & 1) ? a.rd : b.rd, AX__POLL_IN, NULL, &id), AX_OK,
                     "add: %s", ax_error_detail());
        cr_assert_neq(id, 0);
        cr_assert_gt(id, prev, "id %llu after %llu", (unsigned long long)id,
                     (unsigned long long)prev);
        prev = id;
        cr_assert_eq(ax__poller_remove(p, id), AX_OK);
        if (i % 500 == 0) {
            cr_assert_eq(ax__poller_add(p, -1, AX__POLL_IN, NULL, &id), AX_EINVAL);
            cr_assert_eq(ax__poller_timer_add(p, 3600 * 1000 * MS, NULL, &tid), AX_OK);
            cr_assert_gt(tid, prev);
            prev = tid;
            cr_assert_eq(ax__poller_timer_cancel(p, tid), AX_OK);
        }
    }
    /* A removed id is gone for good. */
    cr_assert_eq(ax__poller_remove(p, prev - 1), AX_ENOTFOUND);
    for (i = 0; i < 8; i++)
        cr_assert_eq(ax__poller_remove(p, keep[i]), AX_OK);
    ax__poller_destroy(&p);
    cr_assert_null(p);
    close_pipe(&a);
    close_pipe(&b);
}

/* ---- readiness ---------------------------------------------------------- */

Test(poller, readiness_carries_id_and_ctx)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe(), b = make_pipe();
    int sp[2], efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int ctx_a, ctx_b, ctx_s, ctx_e;
    uint64_t ida, idb, ids, ide, v = 1;
    seen_t *s = new_seen();
    const ax__poll_event_t *ev;
    char buf[8];

    cr_assert(efd >= 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, &ctx_a, &ida), AX_OK);
    cr_assert_eq(ax__poller_add(p, b.rd, AX__POLL_IN, &ctx_b, &idb), AX_OK);
    cr_assert_eq(ax__poller_add(p, sp[0], AX__POLL_IN, &ctx_s, &ids), AX_OK);
    cr_assert_eq(ax__poller_add(p, efd, AX__POLL_IN, &ctx_e, &ide), AX_OK);

    put_byte(b.wr);
    ev = expect_fd(p, s, idb, AX__POLL_IN);
    cr_assert_eq(ev->ctx, &ctx_b);
    cr_assert_eq(ev->events & AX__POLL_OUT, 0);

    cr_assert_eq(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    ev = expect_fd(p, s, ide, AX__POLL_IN);
    cr_assert_eq(ev->ctx, &ctx_e);

    cr_assert_eq(write(sp[1], "hi", 2), 2);
    ev = expect_fd(p, s, ids, AX__POLL_IN);
    cr_assert_eq(ev->ctx, &ctx_s);

    /* Edge-triggered: b is still readable but reports no new edge. */
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_FD, idb), 1, "an edge-triggered fd reported twice");
    cr_assert_eq(count(s, AX__EV_FD, ida), 0, "a pipe nobody wrote to was reported");
    put_byte(b.wr);
    expect_fd(p, s, idb, AX__POLL_IN);
    (void)!read(b.rd, buf, sizeof(buf));

    /* The peer closing is reported as readable (end of file). */
    close(sp[1]);
    s->n = 0;
    ev = expect_fd(p, s, ids, AX__POLL_IN | AX__POLL_HUP);
    cr_assert_eq(ev->ctx, &ctx_s);

    ax__poller_destroy(&p);
    close_pipe(&a);
    close_pipe(&b);
    close(sp[0]);
    close(efd);
    free(s);
}

Test(poller, several_ready_with_a_small_max)
{
    ax__poller_t *p = make_poller();
    pipe_t pp[5];
    uint64_t id[5];
    seen_t *s = new_seen();
    uint64_t end = ax__now_ns() + STEP_MS * MS;
    size_t i, got;

    for (i = 0; i < 5; i++) {
        pp[i] = make_pipe();
        cr_assert_eq(ax__poller_add(p, pp[i].rd, AX__POLL_IN, &pp[i], &id[i]), AX_OK);
        put_byte(pp[i].wr);
    }
    /* One at a time: the events not taken stay queued for the next call. */
    for (got = 0; got < 5;) {
        cr_assert(ax__now_ns() < end, "only %zu of 5 ready pipes reported", got);
        poll_once(p, 50, 1, s);
        got = s->n;
    }
    poll_quiet(p, s);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(count(s, AX__EV_FD, id[i]), 1, "pipe %zu reported %zu times", i,
                     count(s, AX__EV_FD, id[i]));
        cr_assert_eq(s->ev[find_fd(s, id[i], AX__POLL_IN)].ctx, &pp[i]);
        close_pipe(&pp[i]);
    }
    ax__poller_destroy(&p);
    free(s);
}

/* ---- removal ------------------------------------------------------------ */

Test(poller, removed_after_ready_is_not_reported)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe(), b = make_pipe();
    uint64_t ida, idb;
    seen_t *s = new_seen();

    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, &ida), AX_OK);
    cr_assert_eq(ax__poller_add(p, b.rd, AX__POLL_IN, NULL, &idb), AX_OK);
    /* Both become ready; a is removed before anyone polls. b shows that
     * the poll does see what is ready. */
    put_byte(a.wr);
    put_byte(b.wr);
    cr_assert_eq(ax__poller_remove(p, ida), AX_OK);
    expect_fd(p, s, idb, AX__POLL_IN);
    put_byte(a.wr);
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_FD, ida), 0, "a removed registration was reported");
    cr_assert_eq(ax__poller_remove(p, ida), AX_ENOTFOUND);
    cr_assert_eq(ax__poller_modify(p, ida, AX__POLL_IN), AX_ENOTFOUND);
    ax__poller_destroy(&p);
    close_pipe(&a);
    close_pipe(&b);
    free(s);
}

/* One thread registers a pipe, makes it ready, removes it and only then
 * publishes its id as removed; the poll thread notes the highest removed id
 * before each wait. A wait that starts after a remove returned must never
 * report that id, even when the event was queued before the remove. */
typedef struct churn_s {
    ax__poller_t *p;
    uint64_t rounds;
    _Atomic uint64_t removed_upto;
    atomic_bool done;
} churn_t;

static void *churn_thread(void *arg)
{
    churn_t *c = arg;
    uint64_t i, id, prev = 0;

    for (i = 0; i < c->rounds; i++) {
        int fds[2];

        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
            AXT_CHECK(0);
            break;
        }
        AXT_CHECK(ax__poller_add(c->p, fds[0], AX__POLL_IN, c, &id) == AX_OK);
        AXT_CHECK(id > prev);
        prev = id;
        AXT_CHECK(write(fds[1], "x", 1) == 1);
        if (i & 1)
            sched_yield(); /* sometimes let the poll thread fetch it first */
        AXT_CHECK(ax__poller_remove(c->p, id) == AX_OK);
        atomic_store_explicit(&c->removed_upto, id, memory_order_release);
        close(fds[0]);
        close(fds[1]);
    }
    atomic_store(&c->done, true);
    return NULL;
}

Test(poller, remove_is_final_under_concurrency)
{
    churn_t c = {.p = make_poller(), .rounds = axt_scaled(20000)};
    ax__poll_event_t out[64];
    uint64_t reported = 0, late = 0, end = ax__now_ns() + 120000 * MS;
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, churn_thread, &c), 0);
    while (!atomic_load(&c.done)) {
        uint64_t upto = atomic_load_explicit(&c.removed_upto, memory_order_acquire);
        size_t n = 0, i;

        cr_assert(ax__now_ns() < end, "the churn thread did not finish");
        cr_assert_eq(ax__poller_wait(c.p, 5, out, 64, &n), AX_OK);
        for (i = 0; i < n; i++) {
            if (out[i].kind != AX__EV_FD)
                continue;
            reported++;
            if (out[i].id <= upto)
                late++;
            else
                cr_assert_eq(out[i].ctx, &c);
        }
    }
    pthread_join(t, NULL);
    cr_assert_eq(late, 0, "%llu events reported after their registration was removed",
                 (unsigned long long)late);
    AXT_ASSERT_NO_BAD();
    cr_log_info("remove_is_final: %llu of %llu registrations were reported before removal",
                (unsigned long long)reported, (unsigned long long)c.rounds);
    ax__poller_destroy(&c.p);
}

Test(poller, reused_fd_number_gets_a_new_id)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe(), b;
    uint64_t ida, idb;
    int ctx_a, ctx_b, old_rd = a.rd;
    seen_t *s = new_seen();
    const ax__poll_event_t *ev;

    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, &ctx_a, &ida), AX_OK);
    put_byte(a.wr); /* ready, and never polled */
    cr_assert_eq(ax__poller_remove(p, ida), AX_OK);
    close_pipe(&a);

    b = make_pipe(); /* the kernel hands out the lowest free number */
    cr_assert_eq(b.rd, old_rd, "fd %d was not reused (got %d)", old_rd, b.rd);
    cr_assert_eq(ax__poller_add(p, b.rd, AX__POLL_IN, &ctx_b, &idb), AX_OK);
    cr_assert_gt(idb, ida);
    put_byte(b.wr);
    ev = expect_fd(p, s, idb, AX__POLL_IN);
    cr_assert_eq(ev->ctx, &ctx_b);
    put_byte(b.wr);
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_FD, ida), 0, "an event for the old id appeared");
    cr_assert_geq(count(s, AX__EV_FD, idb), 1);
    ax__poller_destroy(&p);
    close_pipe(&b);
    free(s);
}

/* ---- modify ------------------------------------------------------------- */

Test(poller, modify_changes_interest)
{
    ax__poller_t *p = make_poller();
    int a, b, ctx;
    uint64_t id;
    seen_t *s = new_seen();
    const ax__poll_event_t *ev;
    char buf[16];

    tcp_pair(&a, &b);
    cr_assert_eq(ax__poller_add(p, a, AX__POLL_IN, &ctx, &id), AX_OK);
    /* Writable, but nobody asked: nothing to report. */
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_FD, id), 0);

    cr_assert_eq(ax__poller_modify(p, id, AX__POLL_IN | AX__POLL_OUT), AX_OK);
    ev = expect_fd(p, s, id, AX__POLL_OUT);
    cr_assert_eq(ev->ctx, &ctx);
    cr_assert_eq(ev->events & AX__POLL_IN, 0);

    /* Back to reading only: data arrives, and OUT is no longer reported. */
    cr_assert_eq(ax__poller_modify(p, id, AX__POLL_IN), AX_OK);
    s->n = 0;
    cr_assert_eq(write(b, "hello", 5), 5);
    ev = expect_fd(p, s, id, AX__POLL_IN);
    cr_assert_eq(ev->events & AX__POLL_OUT, 0, "OUT reported after it was dropped");
    cr_assert_eq(read(a, buf, sizeof(buf)), 5);

    /* No interest at all: more data arrives unreported... */
    cr_assert_eq(ax__poller_modify(p, id, 0), AX_OK);
    s->n = 0;
    cr_assert_eq(write(b, "again", 5), 5);
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_FD, id), 0, "reported with no interest");
    /* ...until re-arming, which reports the readiness present now. */
    cr_assert_eq(ax__poller_modify(p, id, AX__POLL_IN), AX_OK);
    expect_fd(p, s, id, AX__POLL_IN);

    cr_assert_eq(ax__poller_modify(p, id, 0x100), AX_EINVAL);
    cr_assert_eq(ax__poller_remove(p, id), AX_OK);
    cr_assert_eq(ax__poller_modify(p, id, AX__POLL_IN), AX_ENOTFOUND);
    cr_assert_eq(ax__poller_modify(p, id + 1000, AX__POLL_IN), AX_ENOTFOUND);
    cr_assert_eq(ax__poller_modify(p, 0, AX__POLL_IN), AX_ENOTFOUND);
    cr_assert_eq(ax__poller_remove(p, UINT64_MAX), AX_ENOTFOUND);
    ax__poller_destroy(&p);
    close(a);
    close(b);
    free(s);
}

/* ---- errors ------------------------------------------------------------- */

Test(poller, bad_descriptors_are_reported_with_a_detail)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe();
    FILE *f = tmpfile();
    uint64_t id = 0, good, after;
    ax__poll_event_t evs[4];
    int closed;
    char want[64];

    cr_assert_not_null(f);
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, &good), AX_OK);

    cr_assert_eq(ax__poller_add(p, -1, AX__POLL_IN, NULL, &id), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "fd -1") != NULL, "detail: %s", ax_error_detail());

    closed = a.wr;
    close(a.wr);
    cr_assert_eq(ax__poller_add(p, closed, AX__POLL_IN, NULL, &id), AX_EINVAL);
    snprintf(want, sizeof(want), "epoll_ctl(ADD, fd %d)", closed);
    cr_assert(strstr(ax_error_detail(), want) != NULL, "detail: %s", ax_error_detail());
    cr_assert(strstr(ax_error_detail(), strerror(EBADF)) != NULL, "detail: %s",
              ax_error_detail());

    /* A regular file cannot be polled. */
    cr_assert_eq(ax__poller_add(p, fileno(f), AX__POLL_IN, NULL, &id), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "epoll_ctl(ADD") != NULL, "detail: %s",
              ax_error_detail());

    /* Registered twice. */
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, &id), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), strerror(EEXIST)) != NULL, "detail: %s",
              ax_error_detail());

    cr_assert_eq(ax__poller_add(p, a.rd, 0x8000u, NULL, &id), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "interest") != NULL, "detail: %s", ax_error_detail());
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, NULL), AX_EINVAL);
    cr_assert_eq(ax__poller_add(NULL, a.rd, AX__POLL_IN, NULL, &id), AX_EINVAL);
    cr_assert_eq(id, 0, "a failed add wrote an id");

    /* Failed adds leave nothing behind: the fd registers again, with a
     * larger id. */
    cr_assert_eq(ax__poller_remove(p, good), AX_OK);
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, &after), AX_OK);
    cr_assert_gt(after, good);

    cr_assert_eq(ax__poller_wait(p, 0, evs, 0, &(size_t){0}), AX_EINVAL);
    cr_assert_eq(ax__poller_wait(p, 0, NULL, 4, &(size_t){0}), AX_EINVAL);
    cr_assert_eq(ax__poller_timer_add(p, 0, NULL, NULL), AX_EINVAL);
    cr_assert_eq(ax__poller_timer_cancel(NULL, 1), AX_EINVAL);
    cr_assert_eq(ax__poller_create(NULL), AX_EINVAL);

    ax__poller_destroy(&p);
    ax__poller_destroy(&p); /* NULL after the first: harmless */
    ax__poller_destroy(NULL);
    close(a.rd);
    fclose(f);
}

/* ---- waking ------------------------------------------------------------- */

typedef struct burst_s {
    ax__poller_t *p;
    int n;
} burst_t;

static void *wake_burst(void *arg)
{
    burst_t *b = arg;
    int i;

    for (i = 0; i < b->n; i++)
        ax__poller_wake(b->p);
    return NULL;
}

Test(poller, many_wakes_before_a_poll_cost_one_write)
{
    ax__poller_t *p = make_poller();
    seen_t *s = new_seen();
    burst_t b = {.p = p, .n = 1000};
    pthread_t t[4];
    uint64_t w0 = ax__poller_wake_writes(p);
    int i;

    for (i = 0; i < 1000; i++)
        ax__poller_wake(p);
    cr_assert_eq(ax__poller_wake_writes(p), w0 + 1);
    for (i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, wake_burst, &b), 0);
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(ax__poller_wake_writes(p), w0 + 1, "%llu writes for 5000 wakes",
                 (unsigned long long)(ax__poller_wake_writes(p) - w0));

    poll_once(p, STEP_MS, 64, s);
    cr_assert_eq(s->n, 1);
    cr_assert_eq(s->ev[0].kind, AX__EV_WAKE);
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_WAKE, 0), 1, "one write must give one wake");

    /* The poll reset the count: the next wake writes again. */
    ax__poller_wake(p);
    ax__poller_wake(p);
    cr_assert_eq(ax__poller_wake_writes(p), w0 + 2);
    s->n = 0;
    poll_once(p, STEP_MS, 64, s);
    cr_assert_eq(count(s, AX__EV_WAKE, 0), 1);
    ax__poller_destroy(&p);
    free(s);
}

/* Each waker publishes a sequence number, wakes, and waits until the poll
 * thread has seen that number after a wake report. A lost wake leaves its
 * waker waiting, and the step fails after STEP_MS instead of hanging. With
 * burst > 1 each step wakes 1..burst times in a row, so that more wakes
 * land while the poll thread is between its drain and its reset. */
#define WAKERS 4

typedef struct storm_s {
    ax__poller_t *p;
    uint64_t per_thread;
    unsigned burst;
    _Atomic uint64_t seq[WAKERS];
    _Atomic uint64_t ack[WAKERS];
    _Atomic uint64_t lost;
    _Atomic uint64_t wakes;
    _Atomic uint64_t reports;
    atomic_bool stop;
} storm_t;

typedef struct waker_arg_s {
    storm_t *st;
    int i;
} waker_arg_t;

static void *storm_waker(void *arg)
{
    waker_arg_t *w = arg;
    storm_t *st = w->st;
    uint64_t k;

    for (k = 1; k <= st->per_thread; k++) {
        uint64_t end, b, times = 1 + (k * 7 + (uint64_t)w->i) % st->burst;

        atomic_store_explicit(&st->seq[w->i], k, memory_order_relaxed);
        /* The poller's wake is the only thing that orders seq for the poll
         * thread: that is part of what is under test. */
        for (b = 0; b < times; b++)
            ax__poller_wake(st->p);
        atomic_fetch_add(&st->wakes, times);
        end = ax__now_ns() + STEP_MS * MS;
        while (atomic_load_explicit(&st->ack[w->i], memory_order_relaxed) < k) {
            if (ax__now_ns() > end) {
                atomic_fetch_add(&st->lost, 1);
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

static void *storm_poller(void *arg)
{
    storm_t *st = arg;
    ax__poll_event_t out[16];

    while (!atomic_load(&st->stop)) {
        size_t n = 0, i;
        int j;

        /* A bounded wait only so that stop is noticed; a timeout acks
         * nothing, so it cannot hide a lost wake. */
        AXT_CHECK(ax__poller_wait(st->p, 100, out, 16, &n) == AX_OK);
        for (i = 0; i < n; i++) {
            AXT_CHECK(out[i].kind == AX__EV_WAKE);
            if (out[i].kind != AX__EV_WAKE)
                continue;
            atomic_fetch_add(&st->reports, 1);
            for (j = 0; j < WAKERS; j++)
                atomic_store_explicit(
                    &st->ack[j], atomic_load_explicit(&st->seq[j], memory_order_relaxed),
                    memory_order_relaxed);
        }
    }
    return NULL;
}

static void wake_storm(unsigned burst)
{
    storm_t st = {.p = make_poller(), .per_thread = axt_scaled(10000), .burst = burst};
    waker_arg_t args[WAKERS];
    pthread_t poll_t, wk[WAKERS];
    uint64_t writes, reports, wakes;
    int i;

    cr_assert_eq(pthread_create(&poll_t, NULL, storm_poller, &st), 0);
    for (i = 0; i < WAKERS; i++) {
        args[i] = (waker_arg_t){&st, i};
        cr_assert_eq(pthread_create(&wk[i], NULL, storm_waker, &args[i]), 0);
    }
    for (i = 0; i < WAKERS; i++)
        pthread_join(wk[i], NULL);
    atomic_store(&st.stop, true);
    pthread_join(poll_t, NULL);

    writes = ax__poller_wake_writes(st.p);
    reports = atomic_load(&st.reports);
    wakes = atomic_load(&st.wakes);
    cr_assert_eq(atomic_load(&st.lost), 0, "a wake was lost (%llu waker(s) timed out)",
                 (unsigned long long)atomic_load(&st.lost));
    for (i = 0; i < WAKERS; i++)
        cr_assert_eq(atomic_load(&st.ack[i]), st.per_thread);
    AXT_ASSERT_NO_BAD();
    cr_assert(writes >= 1 && writes <= wakes, "%llu writes for %llu wakes",
              (unsigned long long)writes, (unsigned long long)wakes);
    /* Each report needs an eventfd edge, and each edge a write. */
    cr_assert(reports >= 1 && reports <= writes, "%llu wake reports for %llu writes",
              (unsigned long long)reports, (unsigned long long)writes);
    cr_log_info("wake storm (burst %u): %llu wakes, %llu eventfd writes, %llu wake reports",
                burst, (unsigned long long)wakes, (unsigned long long)writes,
                (unsigned long long)reports);
    ax__poller_destroy(&st.p);
}

Test(poller, no_wake_is_lost_under_contention, .timeout = 300)
{
    wake_storm(1);
}

Test(poller, no_wake_is_lost_in_bursts, .timeout = 300)
{
    wake_storm(4);
}

/* ---- timers ------------------------------------------------------------- */

/* A timer's deadline lies in [lo, hi]: now before and after the add, plus
 * the delay. */
typedef struct tinfo_s {
    uint64_t id, lo, hi;
    int fired;
} tinfo_t;

static void add_timer(ax__poller_t *p, tinfo_t *t, uint64_t delay_ns)
{
    t->lo = ax__now_ns() + delay_ns;
    cr_assert_eq(ax__poller_timer_add(p, delay_ns, t, &t->id), AX_OK, "timer_add: %s",
                 ax_error_detail());
    t->hi = ax__now_ns() + delay_ns;
    t->fired = 0;
}

/* Poll (max per call) until every timer in ts[0..n) fired; check each
 * fired once, not before its deadline, and in deadline order. */
static void run_timers(ax__poller_t *p, tinfo_t *ts, size_t n, size_t max, seen_t *s)
{
    uint64_t end = ax__now_ns() + STEP_MS * MS;
    size_t fired = 0, i, j;
    tinfo_t *prev = NULL;

    while (fired < n) {
        size_t from = s->n;

        cr_assert(ax__now_ns() < end, "%zu of %zu timers fired", fired, n);
        poll_once(p, 50, max, s);
        for (i = from; i < s->n; i++) {
            tinfo_t *t = s->ev[i].ctx;

            cr_assert_eq(s->ev[i].kind, AX__EV_TIMER);
            cr_assert(t >= ts && t < ts + n);
            cr_assert_eq(s->ev[i].id, t->id);
            cr_assert_eq(t->fired, 0, "timer %llu fired twice", (unsigned long long)t->id);
            t->fired = 1;
            fired++;
            cr_assert_geq(s->at[i], t->lo, "timer %llu fired %llu ns early",
                          (unsigned long long)t->id, (unsigned long long)(t->lo - s->at[i]));
            /* The earlier report cannot have a certainly later deadline. */
            if (prev != NULL)
                cr_assert(prev->lo <= t->hi, "timer %llu fired before the earlier %llu",
                          (unsigned long long)prev->id, (unsigned long long)t->id);
            prev = t;
        }
    }
    /* And over every pair, not only neighbours. */
    for (i = 0; i < s->n; i++)
        for (j = i + 1; j < s->n; j++) {
            const tinfo_t *a = s->ev[i].ctx, *b = s->ev[j].ctx;

            cr_assert(a->lo <= b->hi, "timers out of deadline order");
        }
}

Test(poller, timers_fire_in_deadline_order_never_early)
{
    ax__poller_t *p = make_poller();
    static const unsigned delays_ms[] = {40, 10, 70, 0, 25, 55, 10, 5, 90, 1};
    tinfo_t ts[10];
    seen_t *s = new_seen();
    size_t i;

    for (i = 0; i < 10; i++)
        add_timer(p, &ts[i], delays_ms[i] * MS);
    run_timers(p, ts, 10, 64, s);
    poll_quiet(p, s);
    cr_assert_eq(s->n, 10, "a timer fired twice or something else was reported");
    ax__poller_destroy(&p);
    free(s);
}

Test(poller, many_random_timers_with_a_small_max)
{
    ax__poller_t *p = make_poller();
    tinfo_t *ts = calloc(300, sizeof(*ts));
    seen_t *s = new_seen();
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t i;

    cr_assert_not_null(ts);
    for (i = 0; i < 300; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* 0..30 ms, many sharing a deadline window, some already due. */
        add_timer(p, &ts[i], (x % 31) * MS + (x >> 40) % 1000);
    }
    /* At most 3 per wait: the due timers that do not fit wait for the next
     * call, and none is lost or repeated. */
    run_timers(p, ts, 300, 3, s);
    ax__poller_destroy(&p);
    free(ts);
    free(s);
}

Test(poller, due_timers_beyond_max_come_in_creation_order)
{
    ax__poller_t *p = make_poller();
    tinfo_t ts[10];
    seen_t *s = new_seen();
    size_t i;

    for (i = 0; i < 10; i++)
        add_timer(p, &ts[i], 0);
    run_timers(p, ts, 10, 3, s);
    /* Deadlines do not decrease across the adds, and equal ones go in id
     * order: so exactly the order of creation. */
    for (i = 0; i < 10; i++)
        cr_assert_eq(s->ev[i].id, ts[i].id);
    ax__poller_destroy(&p);
    free(s);
}

Test(poller, cancel_prevents_firing)
{
    ax__poller_t *p = make_poller();
    tinfo_t a, b, c, d;
    seen_t *s = new_seen();
    uint64_t end = ax__now_ns() + STEP_MS * MS;

    add_timer(p, &a, 20 * MS);
    add_timer(p, &b, 40 * MS);
    add_timer(p, &c, 60 * MS);
    add_timer(p, &d, 5 * MS); /* the earliest, cancelled: the timerfd is re-armed */
    cr_assert_eq(ax__poller_timer_cancel(p, b.id), AX_OK);
    cr_assert_eq(ax__poller_timer_cancel(p, d.id), AX_OK);
    cr_assert_eq(ax__poller_timer_cancel(p, b.id), AX_ENOTFOUND);
    cr_assert_eq(ax__poller_timer_cancel(p, 987654321), AX_ENOTFOUND);
    cr_assert(strstr(ax_error_detail(), "987654321") != NULL, "detail: %s", ax_error_detail());

    while (count(s, AX__EV_TIMER, c.id) == 0) {
        cr_assert(ax__now_ns() < end, "timer c never fired");
        poll_once(p, 50, 64, s);
    }
    /* c's deadline is after b's and d's: had they not been cancelled,
     * they would have fired by now. */
    poll_quiet(p, s);
    cr_assert_eq(count(s, AX__EV_TIMER, a.id), 1);
    cr_assert_eq(count(s, AX__EV_TIMER, b.id), 0, "a cancelled timer fired");
    cr_assert_eq(count(s, AX__EV_TIMER, d.id), 0, "a cancelled timer fired");
    cr_assert_eq(count(s, AX__EV_TIMER, c.id), 1);
    cr_assert_eq(ax__poller_timer_cancel(p, a.id), AX_ENOTFOUND, "cancel after fire");
    cr_assert_eq(ax__poller_timer_cancel(p, c.id), AX_ENOTFOUND, "cancel after fire");
    /* A timer id is not a registration id and the other way round. */
    cr_assert_eq(ax__poller_remove(p, a.id), AX_ENOTFOUND);
    ax__poller_destroy(&p);
    free(s);
}

/* The poll thread sleeps in wait(-1); another thread adds a timer earlier
 * than anything armed, and the timer add alone must wake it. */
typedef struct sleeper_s {
    ax__poller_t *p;
    ax__poll_event_t out[8];
    size_t n;
    ax_status_t st;
    uint64_t returned_at;
    atomic_bool entered, done;
} sleeper_t;

static void *sleeper(void *arg)
{
    sleeper_t *sl = arg;

    atomic_store(&sl->entered, true);
    do {
        sl->st = ax__poller_wait(sl->p, -1, sl->out, 8, &sl->n);
    } while (sl->st == AX_OK && sl->n == 0); /* EINTR */
    sl->returned_at = ax__now_ns();
    atomic_store(&sl->done, true);
    return NULL;
}

static void sleeper_round(ax__poller_t *p, uint64_t delay_ns)
{
    sleeper_t sl = {.p = p};
    tinfo_t t;
    pthread_t th;
    uint64_t end;

    cr_assert_eq(pthread_create(&th, NULL, sleeper, &sl), 0);
    while (!atomic_load(&sl.entered))
        sched_yield();
    axt_sleep_us(30000); /* most likely asleep in epoll_wait by now; either way must work */
    add_timer(p, &t, delay_ns);
    end = ax__now_ns() + STEP_MS * MS;
    while (!atomic_load(&sl.done)) {
        /* A hang here is the bug under test: fail rather than wait forever
         * (the stuck thread dies with the test process). */
        cr_assert(ax__now_ns() < end, "timer add did not wake a poller in wait(-1)");
        axt_sleep_us(1000);
    }
    pthread_join(th, NULL);
    cr_assert_eq(sl.st, AX_OK);
    cr_assert_eq(sl.n, 1);
    cr_assert_eq(sl.out[0].kind, AX__EV_TIMER);
    cr_assert_eq(sl.out[0].id, t.id);
    cr_assert_eq(sl.out[0].ctx, &t);
    cr_assert_geq(sl.returned_at, t.lo, "fired early");
}

Test(poller, timer_add_wakes_a_sleeping_poller)
{
    ax__poller_t *p = make_poller();
    uint64_t far;

    /* Nothing armed at all. */
    sleeper_round(p, 20 * MS);
    /* A far timer armed: the add must re-arm for the earlier deadline. */
    cr_assert_eq(ax__poller_timer_add(p, 3600 * 1000 * MS, NULL, &far), AX_OK);
    sleeper_round(p, 20 * MS);
    cr_assert_eq(ax__poller_timer_cancel(p, far), AX_OK);
    ax__poller_destroy(&p);
}

/* Timers added and cancelled from several threads while one polls: every
 * timer either fires once or was cancelled, never both. */
#define TIMER_THREADS 3

typedef struct tstorm_s {
    ax__poller_t *p;
    uint64_t per_thread;
    _Atomic uint64_t cancelled, added;
    atomic_bool stop;
} tstorm_t;

typedef struct tslot_s {
    _Atomic int state; /* 0 pending, 1 fired, 2 cancelled */
    uint64_t lo;
} tslot_t;

static void *timer_adder(void *arg)
{
    tstorm_t *st = arg;
    tslot_t *slots = calloc(st->per_thread, sizeof(*slots));
    uint64_t i, id, x = (uint64_t)(uintptr_t)&i | 1;

    AXT_CHECK(slots != NULL);
    if (slots == NULL)
        return NULL;
    for (i = 0; i < st->per_thread; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        slots[i].lo = ax__now_ns() + (x % 2000) * 1000;
        AXT_CHECK(ax__poller_timer_add(st->p, (x % 2000) * 1000, &slots[i], &id) == AX_OK);
        atomic_fetch_add(&st->added, 1);
        if (x & 0x10000) {
            ax_status_t s = ax__poller_timer_cancel(st->p, id);
            int expect = 0;

            if (s == AX_OK) {
                /* Cancelled before firing: it must never be reported. */
                AXT_CHECK(atomic_compare_exchange_strong(&slots[i].state, &expect, 2));
                atomic_fetch_add(&st->cancelled, 1);
            } else {
                AXT_CHECK(s == AX_ENOTFOUND);
            }
        }
    }
    return slots;
}

Test(poller, timers_from_many_threads_fire_or_cancel_exactly_once, .timeout = 300)
{
    tstorm_t st = {.p = make_poller(), .per_thread = axt_scaled(3000)};
    pthread_t th[TIMER_THREADS];
    tslot_t *slots[TIMER_THREADS];
    ax__poll_event_t out[32];
    uint64_t fired = 0, early = 0, end = ax__now_ns() + 120000 * MS;
    int i, joined = 0;

    for (i = 0; i < TIMER_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, timer_adder, &st), 0);
    while (joined == 0 ||
           fired + atomic_load(&st.cancelled) < st.per_thread * TIMER_THREADS) {
        size_t n = 0, k;

        cr_assert(ax__now_ns() < end, "%llu fired + %llu cancelled of %llu",
                  (unsigned long long)fired, (unsigned long long)atomic_load(&st.cancelled),
                  (unsigned long long)(st.per_thread * TIMER_THREADS));
        cr_assert_eq(ax__poller_wait(st.p, 20, out, 32, &n), AX_OK);
        for (k = 0; k < n; k++) {
            tslot_t *sl = out[k].ctx;
            int expect = 0;

            cr_assert_eq(out[k].kind, AX__EV_TIMER);
            if (ax__now_ns() < sl->lo)
                early++;
            cr_assert(atomic_compare_exchange_strong(&sl->state, &expect, 1),
                      "a timer fired twice or after it was cancelled (state %d)", expect);
            fired++;
        }
        if (joined == 0 && atomic_load(&st.added) == st.per_thread * TIMER_THREADS) {
            for (i = 0; i < TIMER_THREADS; i++)
                pthread_join(th[i], (void **)&slots[i]);
            joined = 1;
        }
    }
    cr_assert_eq(early, 0, "%llu timers fired early", (unsigned long long)early);
    AXT_ASSERT_NO_BAD();
    for (i = 0; i < TIMER_THREADS; i++)
        free(slots[i]);
    ax__poller_destroy(&st.p);
}

/* ---- teardown ----------------------------------------------------------- */

Test(poller, destroy_with_live_registrations_and_timers)
{
    ax__poller_t *p = make_poller();
    pipe_t a = make_pipe();
    uint64_t id;
    int i;

    for (i = 0; i < 100; i++)
        cr_assert_eq(ax__poller_timer_add(p, (uint64_t)i * 1000 * MS, NULL, &id), AX_OK);
    cr_assert_eq(ax__poller_add(p, a.rd, AX__POLL_IN, NULL, &id), AX_OK);
    cr_assert_eq(ax__poller_add(p, a.wr, AX__POLL_OUT, NULL, &id), AX_OK);
    ax__poller_wake(p);
    /* The sanitizer build checks that nothing leaks. */
    ax__poller_destroy(&p);
    cr_assert_null(p);
    /* The caller's descriptors are still the caller's. */
    cr_assert_eq(write(a.wr, "x", 1), 1);
    close_pipe(&a);
}
