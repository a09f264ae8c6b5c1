/*
 * Delivery: by pointer, FIFO per sender->receiver pair, and exactly once
 * under 8 concurrent senders (threads outside the system, then actors).
 *
 * The exactly-once tests send 8 x 1,000,000 messages. AXON_TEST_SCALE=n
 * divides that count by n for slow instrumented builds (TSan); the normal
 * run always does the full count. Messages come from a message pool so the
 * run stays fast, and senders keep at most WINDOW messages in flight each,
 * so memory stays bounded however the scheduler interleaves them.
 */
#include <pthread.h>
#include <sched.h>

#include "helpers.h"

#define SENDERS 8
#define FULL_COUNT 1000000u
#define WINDOW 4096u

/* ---- a receiver that checks order and exactly-once -------------------- */

typedef struct tally {
    uint64_t per_sender;           /* messages each sender sends */
    uint8_t *seen;                 /* bitmap: SENDERS x per_sender, receiver only */
    uint64_t next[SENDERS];        /* the next seq expected from each sender */
    _Atomic uint64_t handled;
    _Atomic uint64_t handled_from[SENDERS]; /* flow control for the senders */
    _Atomic uint64_t duplicates, out_of_order, bad_sender;
    ax_msg_t *last_ptr;            /* the pointer of the last message seen */
    sem_t done;                    /* posted when all have arrived */
    /* For actor senders: credits go back to them. */
    ax_ref_t senders[SENDERS];
    ax_msg_pool_t *credit_pool;
} tally_t;

typedef struct receiver {
    ax_actor_t actor;
    tally_t *t;
} receiver_t;

typedef struct credit_msg {
    ax_msg_t hdr;
    uint64_t amount;
} credit_msg_t;

static const ax_msg_type_t credit_type = {.name = "test.credit", .size = sizeof(credit_msg_t)};

#define CREDIT_EVERY 1024u

static ax_status_t receiver_init(ax_actor_t *self, void *arg)
{
    ((receiver_t *)self)->t = arg;
    return AX_OK;
}

static ax_status_t receiver_receive(ax_actor_t *self, ax_msg_t **msg)
{
    tally_t *t = ((receiver_t *)self)->t;
    num_msg_t *m = (num_msg_t *)*msg;
    uint64_t bit;

    t->last_ptr = *msg;
    if (m->from >= SENDERS || m->seq >= t->per_sender) {
        atomic_fetch_add(&t->bad_sender, 1);
        return AX_OK;
    }
    if (m->seq != t->next[m->from])
        atomic_fetch_add(&t->out_of_order, 1);
    t->next[m->from] = m->seq + 1;
    bit = m->from * t->per_sender + m->seq;
    if (t->seen[bit / 8] & (1u << (bit % 8)))
        atomic_fetch_add(&t->duplicates, 1);
    t->seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
    uint64_t from_n = atomic_fetch_add(&t->handled_from[m->from], 1) + 1;
    /* An actor sender gets its credit back in batches. */
    if (!ax_ref_is_null(t->senders[m->from]) && from_n % CREDIT_EVERY == 0) {
        ax_msg_t *c = NULL;

        AXT_CHECK(ax_msg_get(t->credit_pool, AX_ALWAYS, &c) == AX_OK);
        ((credit_msg_t *)c)->amount = CREDIT_EVERY;
        AXT_CHECK(ax_tell(t->senders[m->from], &c, ax_self(self)) == AX_OK);
    }
    if (atomic_fetch_add(&t->handled, 1) + 1 == SENDERS * t->per_sender)
        sem_post(&t->done);
    return AX_OK;
}

static const ax_actor_vtable_t receiver_vtable = {
    .name = "test.receiver",
    .size = sizeof(receiver_t),
    .init = receiver_init,
    .receive_local = receiver_receive,
};

static void tally_init(tally_t *t, uint64_t per_sender)
{
    memset(t, 0, sizeof(*t));
    t->per_sender = per_sender;
    t->seen = calloc((SENDERS * per_sender + 7) / 8, 1);
    cr_assert_not_null(t->seen);
    sem_init(&t->done, 0, 0);
}

static void tally_check(tally_t *t)
{
    uint64_t total = SENDERS * t->per_sender;
    uint64_t missing = 0;

    cr_assert_eq(atomic_load(&t->handled), total, "handled %llu of %llu",
                 (unsigned long long)atomic_load(&t->handled), (unsigned long long)total);
    cr_assert_eq(atomic_load(&t->duplicates), 0);
    cr_assert_eq(atomic_load(&t->bad_sender), 0);
    cr_assert_eq(atomic_load(&t->out_of_order), 0, "FIFO per sender");
    for (uint64_t i = 0; i < total; i++)
        missing += !(t->seen[i / 8] & (1u << (i % 8)));
    cr_assert_eq(missing, 0, "%llu messages never arrived", (unsigned long long)missing);
    free(t->seen);
}

/* ---- senders outside the system: plain threads ------------------------ */

typedef struct thread_sender {
    pthread_t thread;
    uint32_t index;
    ax_ref_t dst;
    ax_msg_pool_t *pool;
    tally_t *t;
} thread_sender_t;

static void *thread_sender_main(void *arg)
{
    thread_sender_t *s = arg;
    tally_t *t = s->t;

    for (uint64_t seq = 0; seq < t->per_sender; seq++) {
        ax_msg_t *m = NULL;
        double deadline = 0;

        /* Flow control only; the runtime itself is unbounded. */
        while (seq - atomic_load(&t->handled_from[s->index]) >= WINDOW) {
            if (deadline == 0)
                deadline = axt_now() + WAIT_S;
            if (axt_now() > deadline) {
                atomic_fetch_add(&axt_bad, 1);
                return NULL;
            }
            sched_yield();
        }
        if (ax_msg_get(s->pool, AX_ALWAYS, &m) != AX_OK) {
            atomic_fetch_add(&axt_bad, 1);
            return NULL;
        }
        ((num_msg_t *)m)->from = s->index;
        ((num_msg_t *)m)->seq = seq;
        if (ax_tell(s->dst, &m, AX_REF_NULL) != AX_OK || m != NULL) {
            atomic_fetch_add(&axt_bad, 1);
            return NULL;
        }
    }
    return NULL;
}

static void run_thread_senders(uint64_t per_sender)
{
    ax_system_t *sys = axt_system(2);
    ax_msg_pool_options_t po = {.initial = 1024, .max = 8 * WINDOW};
    ax_msg_pool_t *pool;
    thread_sender_t s[SENDERS];
    tally_t t;
    ax_ref_t dst;

    tally_init(&t, per_sender);
    cr_assert_eq(ax_msg_pool_create(&num_type, &po, &pool), AX_OK);
    cr_assert_eq(ax_spawn(sys, &receiver_vtable, &t, &dst), AX_OK);
    for (uint32_t i = 0; i < SENDERS; i++) {
        s[i] = (thread_sender_t){.index = i, .dst = dst, .pool = pool, .t = &t};
        cr_assert_eq(pthread_create(&s[i].thread, NULL, thread_sender_main, &s[i]), 0);
    }
    for (uint32_t i = 0; i < SENDERS; i++)
        pthread_join(s[i].thread, NULL);
    AXT_ASSERT_NO_BAD();
    cr_assert(axt_sem_wait(&t.done, WAIT_S), "only %llu of %llu arrived",
              (unsigned long long)atomic_load(&t.handled),
              (unsigned long long)(SENDERS * per_sender));

    ax_system_shutdown(sys);
    cr_assert_eq(axt_await(sys), AX_OK);
    ax_system_stats_t st = axt_stats(sys);
    cr_assert_eq(st.dead_letters, 0, "nothing dead-lettered");
    cr_assert_eq(st.delivered, SENDERS * per_sender);
    axt_destroy(&sys);
    tally_check(&t);
    ax_msg_pool_destroy(&pool);
}

Test(delivery, exactly_once_from_8_threads_x_1M)
{
    run_thread_senders(axt_scaled(FULL_COUNT));
}

/* ---- senders inside the system: actors with credit --------------------- */

/*
 * A sender actor sends bursts of BURST, keeping within its credit (WINDOW
 * to begin with, CREDIT_EVERY back from the receiver per CREDIT_EVERY
 * handled). Between bursts it tells itself "go", so a burst never holds a
 * worker for long.
 */
#define BURST 256u

typedef struct go_msg {
    ax_msg_t hdr;
} go_msg_t;

static const ax_msg_type_t go_type = {.name = "test.go", .size = sizeof(go_msg_t)};

typedef struct actor_sender {
    ax_actor_t actor;
    uint32_t index;
    uint64_t next_seq, credit;
    bool go_pending;
    ax_ref_t dst;
    ax_msg_pool_t *pool;
    tally_t *t;
} actor_sender_t;

typedef struct sender_args {
    uint32_t index;
    ax_ref_t dst;
    ax_msg_pool_t *pool;
    tally_t *t;
} sender_args_t;

static ax_status_t actor_sender_init(ax_actor_t *self, void *arg)
{
    actor_sender_t *s = (actor_sender_t *)self;
    sender_args_t *a = arg;

    s->index = a->index;
    s->dst = a->dst;
    s->pool = a->pool;
    s->t = a->t;
    s->credit = WINDOW;
    return AX_OK;
}

static void actor_sender_burst(actor_sender_t *s)
{
    ax_ref_t self = ax_self(&s->actor);

    for (unsigned i = 0; i < BURST && s->credit > 0 && s->next_seq < s->t->per_sender; i++) {
        ax_msg_t *m = NULL;

        AXT_CHECK(ax_msg_get(s->pool, AX_ALWAYS, &m) == AX_OK);
        ((num_msg_t *)m)->from = s->index;
        ((num_msg_t *)m)->seq = s->next_seq++;
        AXT_CHECK(ax_tell(s->dst, &m, self) == AX_OK && m == NULL);
        s->credit--;
    }
    if (!s->go_pending && s->credit > 0 && s->next_seq < s->t->per_sender) {
        ax_msg_t *go = NULL;

        AXT_CHECK(ax_msg_alloc(&go_type, &go) == AX_OK);
        AXT_CHECK(ax_tell(self, &go, self) == AX_OK);
        s->go_pending = true;
    }
}

static ax_status_t actor_sender_receive(ax_actor_t *self, ax_msg_t **msg)
{
    actor_sender_t *s = (actor_sender_t *)self;

    if ((*msg)->type == &go_type)
        s->go_pending = false;
    else if ((*msg)->type == &credit_type)
        s->credit += ((credit_msg_t *)*msg)->amount;
    else
        atomic_fetch_add(&axt_bad, 1);
    actor_sender_burst(s);
    return AX_OK;
}

static void actor_sender_start(ax_actor_t *self)
{
    actor_sender_burst((actor_sender_t *)self);
}

static const ax_actor_vtable_t actor_sender_vtable = {
    .name = "test.sender",
    .size = sizeof(actor_sender_t),
    .init = actor_sender_init,
    .on_start = actor_sender_start,
    .receive_local = actor_sender_receive,
};

static void run_actor_senders(uint64_t per_sender)
{
    ax_system_t *sys = axt_system(2);
    ax_msg_pool_options_t po = {.initial = 1024, .max = 8 * WINDOW};
    ax_msg_pool_options_t cpo = {.initial = 64, .max = 1024};
    ax_msg_pool_t *pool, *credit_pool;
    sender_args_t a[SENDERS];
    tally_t t;
    ax_ref_t dst;

    tally_init(&t, per_sender);
    cr_assert_eq(ax_msg_pool_create(&num_type, &po, &pool), AX_OK);
    cr_assert_eq(ax_msg_pool_create(&credit_type, &cpo, &credit_pool), AX_OK);
    t.credit_pool = credit_pool;
    cr_assert_eq(ax_spawn(sys, &receiver_vtable, &t, &dst), AX_OK);
    /* Create all senders first so the receiver knows where credit goes
     * before any message arrives; then start them together. */
    for (uint32_t i = 0; i < SENDERS; i++) {
        a[i] = (sender_args_t){.index = i, .dst = dst, .pool = pool, .t = &t};
        cr_assert_eq(ax_create(sys, &actor_sender_vtable, &a[i], &t.senders[i]), AX_OK);
    }
    for (uint32_t i = 0; i < SENDERS; i++)
        cr_assert_eq(ax_start(t.senders[i]), AX_OK);
    cr_assert(axt_sem_wait(&t.done, WAIT_S * 4), "only %llu of %llu arrived",
              (unsigned long long)atomic_load(&t.handled),
              (unsigned long long)(SENDERS * per_sender));
    /* Every sender is still alive here, so not even a credit was lost.
     * (Shutdown may dead-letter credits in flight to stopped senders.) */
    cr_assert_eq(axt_stats(sys).dead_letters, 0, "nothing dead-lettered");

    ax_system_shutdown(sys);
    cr_assert_eq(axt_await(sys), AX_OK);
    ax_system_stats_t st = axt_stats(sys);
    axt_destroy(&sys);
    AXT_ASSERT_NO_BAD();
    tally_check(&t);
    cr_assert_geq(st.delivered, SENDERS * per_sender);
    ax_msg_pool_destroy(&pool);
    ax_msg_pool_destroy(&credit_pool);
}

Test(delivery, exactly_once_from_8_actors_x_1M)
{
    run_actor_senders(axt_scaled(FULL_COUNT));
}

/* ---- FIFO per pair, with a small throughput so runs interleave --------- */

Test(delivery, fifo_per_sender_with_threads_and_throughput_1)
{
    ax_config_t cfg;
    ax_system_t *sys;
    ax_msg_pool_t *pool;
    thread_sender_t s[SENDERS];
    tally_t t;
    ax_ref_t dst;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cfg.throughput = 1; /* the receiver is rescheduled after every message */
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    tally_init(&t, axt_scaled(20000));
    cr_assert_eq(ax_msg_pool_create(&num_type, NULL, &pool), AX_OK);
    cr_assert_eq(ax_spawn(sys, &receiver_vtable, &t, &dst), AX_OK);
    for (uint32_t i = 0; i < SENDERS; i++) {
        s[i] = (thread_sender_t){.index = i, .dst = dst, .pool = pool, .t = &t};
        cr_assert_eq(pthread_create(&s[i].thread, NULL, thread_sender_main, &s[i]), 0);
    }
    for (uint32_t i = 0; i < SENDERS; i++)
        pthread_join(s[i].thread, NULL);
    AXT_ASSERT_NO_BAD();
    AXT_WAIT_SEM(&t.done);
    axt_shutdown(&sys);
    tally_check(&t);
    ax_msg_pool_destroy(&pool);
}

Test(delivery, fifo_per_sender_with_actors)
{
    run_actor_senders(axt_scaled(20000));
}

/* ---- by pointer ---------------------------------------------------------- */

typedef struct forwarder {
    ax_actor_t actor;
    ax_ref_t next;
} forwarder_t;

static ax_status_t forwarder_init(ax_actor_t *self, void *arg)
{
    ((forwarder_t *)self)->next = *(ax_ref_t *)arg;
    return AX_OK;
}

/* Pass the very message on: ax_tell takes it, so the runtime must not
 * release it when the handler returns. */
static ax_status_t forwarder_receive(ax_actor_t *self, ax_msg_t **msg)
{
    forwarder_t *f = (forwarder_t *)self;

    AXT_CHECK(ax_tell(f->next, msg, ax_self(self)) == AX_OK);
    AXT_CHECK(*msg == NULL);
    return AX_OK;
}

static const ax_actor_vtable_t forwarder_vtable = {
    .name = "test.forwarder",
    .size = sizeof(forwarder_t),
    .init = forwarder_init,
    .receive_local = forwarder_receive,
};

typedef struct keeper {
    ax_actor_t actor;
} keeper_t;

static ax_msg_t *_Atomic kept;

/* Keep the message: set *msg to NULL and the runtime leaves it alone. */
static ax_status_t keeper_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    atomic_store(&kept, *msg);
    *msg = NULL;
    return AX_OK;
}

static const ax_actor_vtable_t keeper_vtable = {
    .name = "test.keeper",
    .size = sizeof(keeper_t),
    .receive_local = keeper_receive,
};

Test(delivery, a_handler_receives_the_same_pointer_and_may_keep_it)
{
    ax_system_t *sys = axt_system(2);
    ax_ref_t k;
    ax_msg_t *m = num_new(0, 42);
    ax_msg_t *sent = m;

    cr_assert_eq(ax_spawn(sys, &keeper_vtable, NULL, &k), AX_OK);
    cr_assert_eq(ax_tell(k, &m, AX_REF_NULL), AX_OK);
    WAIT_UNTIL(atomic_load(&kept) != NULL, "the keeper never got the message");
    cr_assert_eq(atomic_load(&kept), sent, "no copy: the receiver has the sender's pointer");
    cr_assert(ax_ref_is_null(sent->sender), "sent from outside: the sender is AX_REF_NULL");
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_releases), 0, "a kept message is not released");
    ax_msg_t *back = atomic_load(&kept);
    cr_assert_eq(((num_msg_t *)back)->seq, 42);
    ax_msg_release(&back);
    cr_assert_null(back);
    cr_assert_eq(atomic_load(&num_releases), 1);
}

Test(delivery, a_forwarded_message_arrives_as_the_same_pointer_from_the_forwarder)
{
    ax_system_t *sys = axt_system(2);
    ax_ref_t k, fwd;
    ax_msg_t *m = num_new(0, 7);
    ax_msg_t *sent = m;

    cr_assert_eq(ax_spawn(sys, &keeper_vtable, NULL, &k), AX_OK);
    cr_assert_eq(ax_spawn(sys, &forwarder_vtable, &k, &fwd), AX_OK);
    cr_assert_eq(ax_tell(fwd, &m, AX_REF_NULL), AX_OK);
    WAIT_UNTIL(atomic_load(&kept) != NULL, "the keeper never got the message");
    cr_assert_eq(atomic_load(&kept), sent);
    cr_assert(ax_ref_eq(sent->sender, fwd), "the sender is the last teller, the forwarder");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_releases), 0, "the forwarder did not release what it passed on");
    ax_msg_release(&sent);
    cr_assert_eq(atomic_load(&num_releases), 1);
}
