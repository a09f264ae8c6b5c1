/*
 * Mailbox lanes (ax_tell_lane, vtable->lanes): priority with the
 * documented every-8th fairness rule, no starvation under a flood, FIFO
 * within a lane, bad lanes refused, and stops and kills that account for
 * every lane.
 *
 * The lane actor logs each message it handles: its lane (num_msg_t.from)
 * and its sequence number. Messages told to a created, not yet started
 * actor wait in its mailbox, so filling lanes before ax_start makes the
 * order of service fully determined by the rule.
 */
#include "helpers.h"

#include "axon/serial.h"

#define FAIR_EVERY 8 /* from the rule in axon/actor.h */

typedef struct lane_log {
    uint32_t *lane;     /* per handled message, in order */
    uint64_t *seq;
    uint64_t cap;
    _Atomic uint64_t n; /* handled */
    _Atomic uint64_t stops;
    unsigned spin_us;   /* busy this long per message */
    _Atomic uint64_t *progress; /* read when a lower lane's message is handled */
    uint64_t progress_seen;
    sem_t in_handler, gate, ended;
} lane_log_t;

typedef struct lane_actor {
    ax_actor_t actor;
    lane_log_t *log;
} lane_actor_t;

static ax_status_t la_init(ax_actor_t *self, void *arg)
{
    ((lane_actor_t *)self)->log = arg;
    return AX_OK;
}

static ax_status_t la_receive(ax_actor_t *self, ax_msg_t **msg)
{
    lane_log_t *log = ((lane_actor_t *)self)->log;
    num_msg_t *m = (num_msg_t *)*msg;
    uint64_t n = atomic_load(&log->n);

    if (m->flags & NUM_BLOCK) {
        sem_post(&log->in_handler);
        AXT_CHECK(axt_sem_wait(&log->gate, WAIT_S));
    }
    if (log->spin_us > 0)
        axt_spin_us(log->spin_us);
    if (log->progress != NULL && m->from > 0)
        log->progress_seen = atomic_load(log->progress);
    AXT_CHECK(n < log->cap);
    if (n < log->cap) {
        log->lane[n] = m->from;
        log->seq[n] = m->seq;
    }
    /* Last: a test that sees n sees the entries before it. */
    atomic_store(&log->n, n + 1);
    return AX_OK;
}

static void la_stop(ax_actor_t *self)
{
    atomic_fetch_add(&((lane_actor_t *)self)->log->stops, 1);
}

static void la_destroy(ax_actor_t *self)
{
    sem_post(&((lane_actor_t *)self)->log->ended);
}

#define LANE_VTABLE(k)                                                                         \
    {                                                                                          \
        .name = "test.lanes" #k, .size = sizeof(lane_actor_t), .init = la_init,                \
        .on_stop = la_stop, .receive_local = la_receive, .destroy = la_destroy, .lanes = (k),  \
    }

/* Indexed by lane count; 0 is the default (one lane). */
static const ax_actor_vtable_t lane_vt[] = {
    LANE_VTABLE(0), LANE_VTABLE(1), LANE_VTABLE(2), LANE_VTABLE(3), LANE_VTABLE(4),
    LANE_VTABLE(5), LANE_VTABLE(6), LANE_VTABLE(7), LANE_VTABLE(8),
};

static void log_init(lane_log_t *log, uint64_t cap)
{
    memset(log, 0, sizeof(*log));
    log->cap = cap;
    log->lane = calloc(cap, sizeof(*log->lane));
    log->seq = calloc(cap, sizeof(*log->seq));
    cr_assert(log->lane != NULL && log->seq != NULL);
    sem_init(&log->in_handler, 0, 0);
    sem_init(&log->gate, 0, 0);
    sem_init(&log->ended, 0, 0);
}

static void log_free(lane_log_t *log)
{
    free(log->lane);
    free(log->seq);
}

static void lane_tell(ax_ref_t dst, unsigned lane, uint64_t seq, uint32_t flags)
{
    ax_msg_t *m = num_new(lane, seq);

    ((num_msg_t *)m)->flags = flags;
    cr_assert_eq(ax_tell_lane(dst, lane, &m, AX_REF_NULL), AX_OK, "lane %u: %s", lane,
                 ax_error_detail());
    cr_assert_null(m);
}

/*
 * The order of service the rule in axon/actor.h gives for lanes filled
 * with count[l] messages each before the actor starts: the highest
 * priority non-empty lane, except that every 8th message comes from the
 * next non-empty lower lane in turn (1, 2, ..., K-1, 1, ...).
 */
static void expected_order(unsigned k, const uint64_t *count, uint32_t *out, uint64_t total)
{
    uint64_t left[AX_MAX_LANES];
    unsigned turn = 1; /* the lower lane whose turn comes next */

    memcpy(left, count, k * sizeof(*left));
    for (uint64_t served = 1; served <= total; served++) {
        int pick = -1;

        if (k > 1 && served % FAIR_EVERY == 0) {
            for (unsigned i = 0; i < k - 1 && pick < 0; i++) {
                unsigned lane = 1 + (turn - 1 + i) % (k - 1);

                if (left[lane] > 0) {
                    pick = (int)lane;
                    turn = lane % (k - 1) + 1;
                }
            }
        }
        for (unsigned lane = 0; lane < k && pick < 0; lane++)
            if (left[lane] > 0)
                pick = (int)lane;
        left[pick]--;
        out[served - 1] = (uint32_t)pick;
    }
}

/* Per lane, the sequence numbers must come in the order they were sent. */
static void assert_fifo_per_lane(const lane_log_t *log, uint64_t n, unsigned k)
{
    uint64_t next[AX_MAX_LANES] = {0};

    for (uint64_t i = 0; i < n; i++) {
        unsigned lane = log->lane[i];

        cr_assert_lt(lane, k);
        cr_assert_eq(log->seq[i], next[lane], "lane %u: message %llu came when %llu was due", lane,
                     (unsigned long long)log->seq[i], (unsigned long long)next[lane]);
        next[lane]++;
    }
}

/* ---- priority ----------------------------------------------------------------- */

Test(lanes, lanes_are_served_by_priority_with_every_8th_message_for_a_lower_lane)
{
    ax_system_t *sys = axt_system(2);
    /* Several shapes: lower lanes that run dry early, late, and a lane 0
     * that runs dry first. */
    static const uint64_t shapes[][4] = {
        {40, 30, 20, 10}, {100, 3, 0, 9}, {5, 60, 60, 60}, {0, 20, 0, 20}, {33, 1, 1, 1},
    };
    uint64_t seed = 7;

    for (unsigned k = 2; k <= 4; k++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            uint64_t total = 0, sent[4] = {0};
            lane_log_t log;
            ax_ref_t ref;
            uint32_t *want;

            for (unsigned l = 0; l < k; l++)
                total += shapes[s][l];
            log_init(&log, total);
            want = calloc(total, sizeof(*want));
            cr_assert_eq(ax_create(sys, &lane_vt[k], &log, &ref), AX_OK);
            /* Interleaved at random: arrival order must not matter. */
            for (uint64_t i = 0; i < total;) {
                unsigned l;

                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                l = (unsigned)((seed >> 33) % k);
                if (sent[l] == shapes[s][l])
                    continue;
                lane_tell(ref, l, sent[l]++, 0);
                i++;
            }
            cr_assert_eq(ax_start(ref), AX_OK);
            AXT_WAIT_COUNT(log.n, total);
            expected_order(k, shapes[s], want, total);
            for (uint64_t i = 0; i < total; i++)
                cr_assert_eq(log.lane[i], want[i],
                             "%u lanes, shape %zu: message %llu came from lane %u, "
                             "the rule says %u",
                             k, s, (unsigned long long)i, log.lane[i], want[i]);
            assert_fifo_per_lane(&log, total, k);
            cr_assert_eq(ax_stop(ref), AX_OK);
            AXT_WAIT_SEM(&log.ended);
            free(want);
            log_free(&log);
        }
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

/* ---- anti-starvation ---------------------------------------------------------- */

typedef struct flood {
    ax_ref_t dst;
    uint64_t first, n; /* lane-0 sequence numbers first .. first + n - 1 */
    _Atomic uint64_t sent;
} flood_t;

static void *flood_main(void *arg)
{
    flood_t *f = arg;

    for (uint64_t i = 0; i < f->n; i++) {
        ax_msg_t *m = num_new(0, f->first + i);

        AXT_CHECK(ax_tell_lane(f->dst, 0, &m, AX_REF_NULL) == AX_OK);
        atomic_store(&f->sent, i + 1);
    }
    return NULL;
}

/*
 * Lane 0 is never empty while the lower lanes have mail: it starts with
 * more than the lower lanes can need (8 * (K - 1) per lower message) and
 * another thread keeps flooding it, faster than the actor (busy 2 us per
 * message) can drain it. Each lower lane must still get one message in
 * every 8 * (K - 1), and all of them before the flood ends.
 */
static void flood_case(unsigned k)
{
    const uint64_t lower = 50, prefill = 8 * (k - 1) * lower + 500;
    ax_system_t *sys = axt_system(2);
    uint64_t flood_n = axt_scaled(60000), total = prefill + flood_n + (k - 1) * lower;
    uint64_t last_pos[AX_MAX_LANES] = {0}, prev[AX_MAX_LANES], max_gap[AX_MAX_LANES] = {0};
    lane_log_t log;
    flood_t f;
    pthread_t t;
    ax_ref_t ref;

    log_init(&log, total);
    log.spin_us = 2;
    log.progress = &f.sent;
    cr_assert_eq(ax_create(sys, &lane_vt[k], &log, &ref), AX_OK);
    for (uint64_t i = 0; i < prefill; i++)
        lane_tell(ref, 0, i, 0);
    for (unsigned l = 1; l < k; l++)
        for (uint64_t i = 0; i < lower; i++)
            lane_tell(ref, l, i, 0);
    f.dst = ref;
    f.first = prefill;
    f.n = flood_n;
    atomic_store(&f.sent, 0);
    cr_assert_eq(pthread_create(&t, NULL, flood_main, &f), 0);
    /* The flood is under way before the actor starts. */
    cr_assert(axt_wait_at_least(&f.sent, 1000, WAIT_S));
    cr_assert_eq(ax_start(ref), AX_OK);
    pthread_join(t, NULL);
    AXT_WAIT_COUNT(log.n, total);

    assert_fifo_per_lane(&log, total, k);
    for (unsigned l = 0; l < k; l++)
        prev[l] = UINT64_MAX; /* "before the first message" */
    for (uint64_t i = 0; i < total; i++) {
        unsigned l = log.lane[i];
        uint64_t gap = prev[l] == UINT64_MAX ? i : i - prev[l] - 1;

        if (l > 0 && gap > max_gap[l])
            max_gap[l] = gap;
        prev[l] = i;
        last_pos[l] = i;
    }
    cr_log_info("%u lanes: the flood had sent %llu of %llu when the lower lanes were done", k,
                (unsigned long long)log.progress_seen, (unsigned long long)flood_n);
    for (unsigned l = 1; l < k; l++) {
        cr_log_info("%u lanes: lane %u waited at most %llu messages (bound %u)", k, l,
                    (unsigned long long)max_gap[l], FAIR_EVERY * (k - 1) - 1);
        cr_assert_lt(max_gap[l], FAIR_EVERY * (k - 1),
                     "%u lanes: lane %u waited %llu messages for its turn", k, l,
                     (unsigned long long)max_gap[l]);
        cr_assert_lt(last_pos[l], last_pos[0], "lane %u was starved until the flood ended", l);
        cr_assert_leq(last_pos[l], FAIR_EVERY * (k - 1) * lower,
                      "lane %u finished at message %llu", l, (unsigned long long)last_pos[l]);
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    log_free(&log);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

Test(lanes, a_flood_on_lane_0_does_not_starve_lane_1)
{
    flood_case(2);
}

Test(lanes, a_flood_on_lane_0_does_not_starve_any_lower_lane)
{
    flood_case(4);
}

/* ---- FIFO within a lane, from several senders ------------------------------------ */

typedef struct sender {
    ax_ref_t dst;
    uint32_t id;
    uint64_t n;
} sender_t;

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    uint64_t seq[3] = {0};

    for (uint64_t i = 0; i < s->n; i++) {
        unsigned lane = (unsigned)(i % 3);
        /* The sender in the top bits, its per-lane count below. */
        ax_msg_t *m = num_new(lane, (uint64_t)s->id << 40 | seq[lane]++);

        AXT_CHECK(ax_tell_lane(s->dst, lane, &m, AX_REF_NULL) == AX_OK);
    }
    return NULL;
}

Test(lanes, order_is_fifo_within_a_lane_for_each_sender)
{
    ax_system_t *sys = axt_system(2);
    uint64_t per = axt_scaled(30000), next[2][3] = {{0}};
    sender_t s[2];
    pthread_t t[2];
    lane_log_t log;
    ax_ref_t ref;

    log_init(&log, 2 * per);
    cr_assert_eq(ax_spawn(sys, &lane_vt[3], &log, &ref), AX_OK);
    for (int i = 0; i < 2; i++) {
        s[i] = (sender_t){.dst = ref, .id = (uint32_t)i, .n = per};
        cr_assert_eq(pthread_create(&t[i], NULL, sender_main, &s[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    AXT_WAIT_COUNT(log.n, 2 * per);
    for (uint64_t i = 0; i < 2 * per; i++) {
        unsigned lane = log.lane[i], from = (unsigned)(log.seq[i] >> 40);
        uint64_t seq = log.seq[i] & ((UINT64_C(1) << 40) - 1);

        cr_assert_lt(from, 2);
        cr_assert_eq(seq, next[from][lane], "sender %u, lane %u: %llu came when %llu was due", from,
                     lane, (unsigned long long)seq, (unsigned long long)next[from][lane]);
        next[from][lane]++;
    }
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    log_free(&log);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

/* ---- bad lanes ---------------------------------------------------------------------- */

Test(lanes, a_lane_beyond_the_count_is_einval_and_the_caller_keeps_the_message)
{
    ax_system_t *sys = axt_system(2);
    lane_log_t log;
    ax_ref_t one, three, remote;
    ax_path_t path;
    ax_msg_t *m;

    log_init(&log, 16);
    cr_assert_eq(ax_spawn(sys, &lane_vt[0], &log, &one), AX_OK);
    cr_assert_eq(ax_spawn(sys, &lane_vt[3], &log, &three), AX_OK);

    m = num_new(1, 0);
    cr_assert_eq(ax_tell_lane(one, 1, &m, AX_REF_NULL), AX_EINVAL,
                 "a one-lane actor has lane 0 only");
    cr_assert_not_null(m, "the caller keeps a refused message");
    cr_assert_eq(ax_tell_lane(three, 3, &m, AX_REF_NULL), AX_EINVAL);
    cr_assert_eq(ax_tell_lane(three, AX_MAX_LANES, &m, AX_REF_NULL), AX_EINVAL);
    cr_assert_eq(ax_tell_lane(three, UINT32_MAX, &m, AX_REF_NULL), AX_EINVAL);
    cr_assert_not_null(m);
    cr_assert_eq(ax_tell_lane(three, 0, NULL, AX_REF_NULL), AX_EINVAL);
    /* Lanes are for local actors. */
    cr_assert_eq(ax_path_parse("tcp://10.255.255.1:9#42", &path), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &path, &remote), AX_OK);
    cr_assert_eq(ax_tell_lane(remote, 1, &m, AX_REF_NULL), AX_EINVAL);
    cr_assert_not_null(m);
    ax_msg_release(&m);

    /* Lane 0 of a one-lane actor is its mailbox; the last lane of a
     * three-lane actor works. */
    lane_tell(one, 0, 0, 0);
    AXT_WAIT_COUNT(log.n, 1); /* one at a time: the actors share the log */
    lane_tell(three, 2, 0, 0);
    AXT_WAIT_COUNT(log.n, 2);

    /* More lanes than AX_MAX_LANES: refused at spawn. */
    static const ax_actor_vtable_t too_many = {
        .name = "test.lanes9", .size = sizeof(lane_actor_t), .init = la_init,
        .receive_local = la_receive, .lanes = AX_MAX_LANES + 1,
    };
    ax_ref_t r;
    cr_assert_eq(ax_spawn(sys, &too_many, &log, &r), AX_EINVAL);
    cr_assert_eq(ax_spawn(sys, &lane_vt[AX_MAX_LANES], &log, &r), AX_OK);
    lane_tell(r, AX_MAX_LANES - 1, 1, 0);
    AXT_WAIT_COUNT(log.n, 3);

    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    log_free(&log);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

/* ---- stop and kill with mail in several lanes --------------------------------------- */

#define PER_LANE 100

/* The actor is busy with a blocking lane-0 message while the lanes fill;
 * returns with PER_LANE more messages queued in each of 3 lanes. */
static ax_ref_t busy_with_full_lanes(ax_system_t *sys, lane_log_t *log)
{
    ax_ref_t ref;

    log_init(log, 4 * PER_LANE);
    cr_assert_eq(ax_spawn(sys, &lane_vt[3], log, &ref), AX_OK);
    lane_tell(ref, 0, 0, NUM_BLOCK);
    AXT_WAIT_SEM(&log->in_handler);
    for (uint64_t i = 0; i < PER_LANE; i++)
        for (unsigned l = 0; l < 3; l++)
            lane_tell(ref, l, l == 0 ? i + 1 : i, 0);
    return ref;
}

Test(lanes, a_graceful_stop_handles_the_mail_of_every_lane)
{
    ax_system_t *sys = axt_system(2);
    lane_log_t log, fresh;
    ax_ref_t ref = busy_with_full_lanes(sys, &log), created;

    cr_assert_eq(ax_stop(ref), AX_OK);
    sem_post(&log.gate);
    AXT_WAIT_SEM(&log.ended);
    cr_assert_eq(atomic_load(&log.n), 3 * PER_LANE + 1);
    assert_fifo_per_lane(&log, atomic_load(&log.n), 3);
    cr_assert_eq(atomic_load(&log.stops), 1);

    /* Started and stopped at once, with the lanes filled before either. */
    log_init(&fresh, 3 * PER_LANE);
    cr_assert_eq(ax_create(sys, &lane_vt[3], &fresh, &created), AX_OK);
    for (uint64_t i = 0; i < PER_LANE; i++)
        for (unsigned l = 0; l < 3; l++)
            lane_tell(created, l, i, 0);
    cr_assert_eq(ax_start(created), AX_OK);
    cr_assert_eq(ax_stop(created), AX_OK);
    AXT_WAIT_SEM(&fresh.ended);
    cr_assert_eq(atomic_load(&fresh.n), 3 * PER_LANE);
    cr_assert_eq(atomic_load(&fresh.stops), 1);

    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    log_free(&log);
    log_free(&fresh);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

Test(lanes, a_kill_sends_the_mail_of_every_lane_to_dead_letters)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t dl = {0};
    lane_log_t log;
    ax_ref_t ref;

    axt_collect_dead_letters(sys, &dl);
    ref = busy_with_full_lanes(sys, &log);
    dl.watch = ref;
    cr_assert_eq(ax_kill(ref), AX_OK);
    sem_post(&log.gate);
    AXT_WAIT_SEM(&log.ended);
    AXT_WAIT_COUNT(dl.count, 3 * PER_LANE);
    cr_assert_eq(atomic_load(&log.n), 1, "only the message in the handler was handled");
    cr_assert_eq(atomic_load(&dl.eclosed), 3 * PER_LANE);
    cr_assert_eq(atomic_load(&dl.for_watch), 3 * PER_LANE);
    cr_assert_eq(atomic_load(&dl.nums), 3 * PER_LANE);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    log_free(&log);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}

/* ---- the runtime's own messages on an actor with lanes ---------------- */

/*
 * A timer's messages and a child's event carry the runtime's mark in the
 * same word as the lane (actor/cell.h, AX__TO_RUNTIME), and go in lane 0,
 * as they did before the mark. An actor with three lanes starts a
 * periodic timer and a child. The test holds the actor in a handler,
 * queues a backlog on lane 2, stops the child, and lets the actor go once
 * the child's event is queued (the child's destroy hook runs after it).
 * The child's event must be served before the backlog (at most one
 * lane-2 message first: the every-8th rule), the timer's message must
 * come back after each handling (periodic), and every lane-2 message must
 * be handled.
 */
#define RT_TICKS 3
#define RT_TICK_SEQ 777
#define RT_BACKLOG 20
#define RT_LOG_MAX 4096

typedef struct rt_log {
    ax_ref_t child;
    char kind[RT_LOG_MAX]; /* per handled message: B(lock), T(imer), C(hild), 2 (lane 2), ? */
    _Atomic uint64_t n;
    _Atomic uint64_t others; /* handled messages that are not the timer's, counted after n */
    _Atomic unsigned ticks;
    sem_t in_handler, gate, ticked, child_gone;
} rt_log_t;

typedef struct rt_actor {
    ax_actor_t actor;
    rt_log_t *log;
} rt_actor_t;

static ax_status_t rt_child_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    (void)msg;
    return AX_OK;
}

static rt_log_t *rt_child_log; /* the one test's log: the child's destroy posts to it */

static void rt_child_destroy(ax_actor_t *self)
{
    (void)self;
    sem_post(&rt_child_log->child_gone);
}

static const ax_actor_vtable_t rt_child_vt = {
    .name = "test.lanes.child", .size = sizeof(ax_actor_t), .receive_local = rt_child_receive,
    .destroy = rt_child_destroy,
};

static ax_status_t rt_init(ax_actor_t *self, void *arg)
{
    rt_log_t *log = arg;
    ax_msg_t *tick = num_new(0, RT_TICK_SEQ);
    ax_timer_t timer;

    ((rt_actor_t *)self)->log = log;
    cr_assert_eq(ax_spawn_child(self, &rt_child_vt, NULL, &log->child), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_schedule_periodic(self, 1000000, 1000000, &tick, &timer), AX_OK, "%s",
                 ax_error_detail());
    return AX_OK;
}

static ax_status_t rt_receive(ax_actor_t *self, ax_msg_t **msg)
{
    rt_log_t *log = ((rt_actor_t *)self)->log;
    uint64_t n = atomic_load(&log->n);
    char k = '?';

    if ((*msg)->type == &ax_child_event_type) {
        const ax_child_event_t *e = (const ax_child_event_t *)*msg;

        if (e->kind == AX_CHILD_ENDED && ax_ref_eq(e->child, log->child))
            k = 'C';
    } else if ((*msg)->type == &num_type) {
        const num_msg_t *m = (const num_msg_t *)*msg;

        if (m->seq == RT_TICK_SEQ) {
            /* Left with the runtime: a periodic timer's message goes back. */
            k = 'T';
            if (atomic_fetch_add(&log->ticks, 1) + 1 == RT_TICKS)
                sem_post(&log->ticked);
        } else if (m->from == 0 && (m->flags & NUM_BLOCK)) {
            k = 'B';
            sem_post(&log->in_handler);
            AXT_CHECK(axt_sem_wait(&log->gate, WAIT_S));
        } else if (m->from == 2) {
            k = '2';
        }
    }
    AXT_CHECK(n < RT_LOG_MAX);
    if (n < RT_LOG_MAX)
        log->kind[n] = k;
    atomic_store(&log->n, n + 1); /* a reader that sees n sees the entry */
    if (k != 'T')
        atomic_fetch_add(&log->others, 1); /* after n: its entry is below n once counted */
    return AX_OK;
}

Test(lanes, a_timers_messages_and_a_childs_event_reach_an_actor_with_lanes_in_lane_0)
{
    static const ax_actor_vtable_t vt = {
        .name = "test.lanes.runtime", .size = sizeof(rt_actor_t), .init = rt_init,
        .receive_local = rt_receive, .lanes = 3,
    };
    static rt_log_t log;
    ax_system_t *sys = axt_system(2);
    unsigned block = RT_LOG_MAX, child = RT_LOG_MAX, lane2 = 0, lane2_before_child = 0;
    uint64_t n;
    ax_ref_t ref;

    sem_init(&log.in_handler, 0, 0);
    sem_init(&log.gate, 0, 0);
    sem_init(&log.ticked, 0, 0);
    sem_init(&log.child_gone, 0, 0);
    rt_child_log = &log;
    cr_assert_eq(ax_spawn(sys, &vt, &log, &ref), AX_OK, "%s", ax_error_detail());
    AXT_WAIT_SEM(&log.ticked); /* the timer's message has come back twice */
    lane_tell(ref, 0, 1, NUM_BLOCK);
    AXT_WAIT_SEM(&log.in_handler);
    for (uint64_t i = 0; i < RT_BACKLOG; i++)
        lane_tell(ref, 2, i, 0);
    cr_assert_eq(ax_stop(log.child), AX_OK);
    AXT_WAIT_SEM(&log.child_gone); /* its event is in the parent's mailbox */
    sem_post(&log.gate);
    /* The timer goes on ticking meanwhile: wait for the test's own messages
     * (the held one, the backlog and the child's event), not for a total
     * that extra ticks can reach first. */
    AXT_WAIT_COUNT(log.others, (uint64_t)1 + RT_BACKLOG + 1);
    n = atomic_load(&log.n);
    for (unsigned i = 0; i < n && i < RT_LOG_MAX; i++) {
        cr_assert_neq(log.kind[i], '?', "message %u is none of the test's", i);
        if (log.kind[i] == 'B')
            block = i;
        else if (log.kind[i] == 'C')
            child = i;
        else if (log.kind[i] == '2' && ++lane2 && child == RT_LOG_MAX)
            lane2_before_child++;
    }
    cr_assert_lt(block, child, "the child's event came after the held message");
    cr_assert_leq(lane2_before_child, 1, "the child's event waited behind %u of lane 2's backlog",
                  lane2_before_child);
    cr_assert_eq(lane2, RT_BACKLOG);
    cr_assert_geq(atomic_load(&log.ticks), RT_TICKS);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_releases), atomic_load(&num_allocs));
}
