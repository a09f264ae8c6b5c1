/*
 * Bounded mailboxes (vtable->mailbox_capacity): a full mailbox refuses a
 * tell with AX_EFULL and the sender keeps its message; concurrent senders
 * never take it past its capacity; each sender's messages still arrive in
 * order; the high-water mark is in ax_mailbox_stats.
 */
#include "tests/actor/helpers.h"

#define CAP 64
#define NPRODUCERS 8

typedef struct brecv {
    _Atomic uint64_t received, out_of_order, over_capacity;
    uint64_t next_seq[NPRODUCERS];
    sem_t in_handler, gate;
} brecv_t;

typedef struct brecv_actor {
    ax_actor_t actor;
    brecv_t *b;
} brecv_actor_t;

static ax_status_t brecv_init(ax_actor_t *self, void *arg)
{
    ((brecv_actor_t *)self)->b = arg;
    return AX_OK;
}

/* Counts, checks each sender's order, and checks the mailbox's own count
 * against the capacity; the first NUM_BLOCK message waits on the gate. */
static ax_status_t brecv_receive(ax_actor_t *self, ax_msg_t **msg)
{
    brecv_t *b = ((brecv_actor_t *)self)->b;
    num_msg_t *m = (num_msg_t *)*msg;
    ax_mailbox_stats_t ms;

    if (m->flags & NUM_BLOCK) {
        sem_post(&b->in_handler);
        axt_sem_wait(&b->gate, WAIT_S);
    } else if (m->from < NPRODUCERS) {
        if (m->seq != b->next_seq[m->from])
            atomic_fetch_add(&b->out_of_order, 1);
        b->next_seq[m->from] = m->seq + 1;
    }
    AXT_CHECK(ax_mailbox_stats(ax_self(self), &ms) == AX_OK);
    if (ms.queued > CAP || ms.high_water > CAP)
        atomic_fetch_add(&b->over_capacity, 1);
    atomic_fetch_add(&b->received, 1);
    return AX_OK;
}

static const ax_actor_vtable_t brecv_vtable = {
    .name = "test.bounded",
    .size = sizeof(brecv_actor_t),
    .init = brecv_init,
    .receive_local = brecv_receive,
    .mailbox_capacity = CAP,
};

static void brecv_setup(brecv_t *b)
{
    memset(b, 0, sizeof(*b));
    sem_init(&b->in_handler, 0, 0);
    sem_init(&b->gate, 0, 0);
}

/* Spawn the receiver and park it in the handler of a blocking message, so
 * that nothing leaves its mailbox until the gate opens. */
static ax_ref_t spawn_blocked(ax_system_t *sys, brecv_t *b)
{
    ax_ref_t r;
    ax_msg_t *m = num_new(NPRODUCERS, 0);

    cr_assert_eq(ax_spawn(sys, &brecv_vtable, b, &r), AX_OK);
    ((num_msg_t *)m)->flags = NUM_BLOCK;
    cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_OK);
    AXT_WAIT_SEM(&b->in_handler);
    return r;
}

Test(bounded, a_full_mailbox_refuses_and_the_caller_keeps_the_message)
{
    ax_system_t *sys = axt_system(2);
    ax_mailbox_stats_t ms;
    brecv_t b;
    ax_ref_t r;
    ax_msg_t *m, *kept;

    brecv_setup(&b);
    r = spawn_blocked(sys, &b);
    for (uint64_t i = 0; i < CAP; i++) {
        m = num_new(0, i);
        cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_OK, "message %llu of %d", U(i), CAP);
        cr_assert_null(m);
    }
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_OK);
    cr_assert_eq(ms.capacity, CAP);
    cr_assert_eq(ms.queued, CAP);
    cr_assert_eq(ms.high_water, CAP);

    m = num_new(0, CAP);
    kept = m;
    /* As if m had come from r: a handler that forwards a message and is
     * refused still finds whom it came from. */
    m->sender = r;
    cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_EFULL);
    cr_assert_eq(m, kept, "AX_EFULL must leave the message with the caller");
    cr_assert_eq(((num_msg_t *)m)->seq, CAP, "and untouched");
    cr_assert(ax_ref_eq(m->sender, r), "its sender too");
    cr_assert(strstr(ax_error_detail(), "full") != NULL, "detail: %s", ax_error_detail());
    /* ax_tell_lane and ax_ask obey the same bound. */
    cr_assert_eq(ax_tell_lane(r, 0, &m, AX_REF_NULL), AX_EFULL);
    cr_assert_eq(m, kept);
    cr_assert(ax_ref_eq(m->sender, r), "its sender too");
    {
        ax_future_t *f = NULL;

        cr_assert_eq(ax_ask(r, &m, 0, &f), AX_EFULL);
        cr_assert_eq(m, kept);
        cr_assert(ax_ref_eq(m->sender, r), "its sender too");
        cr_assert_null(f);
    }

    /* Once the worker takes messages, the same message goes through. */
    sem_post(&b.gate);
    AXT_WAIT_COUNT(b.received, CAP + 1);
    cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_OK);
    cr_assert_null(m);
    AXT_WAIT_COUNT(b.received, CAP + 2);
    cr_assert_eq(atomic_load(&b.out_of_order), 0);
    cr_assert_eq(atomic_load(&b.over_capacity), 0);
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_OK);
    cr_assert_eq(ms.high_water, CAP);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

typedef struct producer {
    ax_ref_t dst;
    uint32_t index;
    uint64_t n;
    uint64_t full;        /* AX_EFULL answers */
    uint64_t accepted_0;  /* accepted before the gate opened */
    _Atomic int *gate_open;
    sem_t *filled;        /* posted once the first AX_EFULL came back */
} producer_t;

/* Send n numbered messages; on AX_EFULL keep the message, wait a little
 * and send the same one again: nothing is lost, nothing reordered. */
static void *producer_main(void *arg)
{
    producer_t *p = arg;
    bool told_full = false;

    for (uint64_t seq = 0; seq < p->n; seq++) {
        ax_msg_t *m = num_new(p->index, seq);
        ax_status_t st;

        while ((st = ax_tell(p->dst, &m, AX_REF_NULL)) == AX_EFULL) {
            AXT_CHECK(m != NULL);
            p->full++;
            if (!told_full) {
                told_full = true;
                sem_post(p->filled);
            }
            axt_sleep_us(20);
        }
        AXT_CHECK(st == AX_OK && m == NULL);
        if (!atomic_load(p->gate_open))
            p->accepted_0++;
    }
    if (!told_full)
        sem_post(p->filled);
    return NULL;
}

Test(bounded, eight_producers_never_pass_the_capacity_and_each_keeps_its_order)
{
    ax_system_t *sys = axt_system(2);
    uint64_t per = axt_scaled(20000), accepted_0 = 0, full = 0;
    producer_t p[NPRODUCERS];
    pthread_t t[NPRODUCERS];
    _Atomic int gate_open = 0;
    ax_mailbox_stats_t ms;
    sem_t filled;
    brecv_t b;
    ax_ref_t r;

    brecv_setup(&b);
    sem_init(&filled, 0, 0);
    r = spawn_blocked(sys, &b);
    for (uint32_t i = 0; i < NPRODUCERS; i++) {
        p[i] = (producer_t){.dst = r, .index = i, .n = per, .gate_open = &gate_open, .filled = &filled};
        cr_assert_eq(pthread_create(&t[i], NULL, producer_main, &p[i]), 0);
    }
    /* Every producer has met the full mailbox (or finished): while the
     * receiver is blocked, the 8 of them got exactly CAP places. */
    for (int i = 0; i < NPRODUCERS; i++)
        AXT_WAIT_SEM(&filled);
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_OK);
    cr_assert_eq(ms.queued, CAP, "queued %u", ms.queued);
    atomic_store(&gate_open, 1);
    sem_post(&b.gate);
    for (int i = 0; i < NPRODUCERS; i++) {
        pthread_join(t[i], NULL);
        accepted_0 += p[i].accepted_0;
        full += p[i].full;
    }
    AXT_WAIT_COUNT(b.received, NPRODUCERS * per + 1);
    cr_assert_geq(accepted_0, CAP, "the mailbox filled up before the gate opened");
    cr_assert_gt(full, 0);
    cr_assert_eq(atomic_load(&b.out_of_order), 0, "FIFO within each sender");
    cr_assert_eq(atomic_load(&b.over_capacity), 0, "the count never passed the capacity");
    for (int i = 0; i < NPRODUCERS; i++)
        cr_assert_eq(b.next_seq[i], per, "producer %d: every message arrived", i);
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_OK);
    cr_assert_eq(ms.high_water, CAP, "high water %u", ms.high_water);
    cr_assert_eq(ms.queued, 0);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

Test(bounded, stats_need_a_live_local_bounded_actor)
{
    ax_system_t *sys = axt_system(1);
    ax_mailbox_stats_t ms;
    probe_t pr;
    ax_ref_t r;

    probe_init(&pr);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &pr, &r), AX_OK);
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_ESTATE, "an unbounded mailbox keeps no count");
    cr_assert_eq(ax_mailbox_stats(AX_REF_NULL, &ms), AX_EINVAL);
    cr_assert_eq(ax_stop(r), AX_OK);
    AXT_WAIT_SEM(&pr.ended);
    cr_assert_eq(ax_mailbox_stats(r, &ms), AX_ENOTFOUND);
    axt_shutdown(&sys);
}

/* A stopped bounded actor: what was queued goes to dead letters, and its
 * places go back, so a new actor in the recycled cell starts empty. */
Test(bounded, places_come_back_when_the_actor_ends)
{
    ax_system_t *sys = axt_system(2);
    ax_mailbox_stats_t ms;
    brecv_t b, b2;
    ax_ref_t r, r2;

    brecv_setup(&b);
    brecv_setup(&b2);
    r = spawn_blocked(sys, &b);
    for (uint64_t i = 0; i < CAP; i++) {
        ax_msg_t *m = num_new(0, i);

        cr_assert_eq(ax_tell(r, &m, AX_REF_NULL), AX_OK);
    }
    cr_assert_eq(ax_kill(r), AX_OK);
    sem_post(&b.gate);
    WAIT_UNTIL(ax_mailbox_stats(r, &ms) == AX_ENOTFOUND, "the actor ended");
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(ax_spawn(sys, &brecv_vtable, &b2, &r2), AX_OK);
        cr_assert_eq(ax_mailbox_stats(r2, &ms), AX_OK);
        cr_assert_eq(ms.queued, 0);
        cr_assert_eq(ms.high_water, 0);
        cr_assert_eq(ax_kill(r2), AX_OK);
    }
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}

/* A dead-letter actor with room for one wrapper in its mailbox; the first
 * wrapper holds it in its handler until the gate opens. */
static ax_status_t dlfull_receive(ax_actor_t *self, ax_msg_t **msg)
{
    brecv_t *b = ((brecv_actor_t *)self)->b;

    (void)msg;
    if (atomic_fetch_add(&b->received, 1) == 0) {
        sem_post(&b->in_handler);
        axt_sem_wait(&b->gate, WAIT_S);
    }
    return AX_OK;
}

static const ax_actor_vtable_t dlfull_vtable = {
    .name = "test.dead-letters-bounded",
    .size = sizeof(brecv_actor_t),
    .init = brecv_init,
    .receive_local = dlfull_receive,
    .mailbox_capacity = 1,
};

Test(bounded, a_full_dead_letter_actor_is_counted_in_lost_notices)
{
    ax_system_t *sys = axt_system(2);
    uint64_t lost0;
    brecv_t b;
    ax_ref_t dl;
    ax_msg_t *m;

    brecv_setup(&b);
    cr_assert_eq(ax_spawn(sys, &dlfull_vtable, &b, &dl), AX_OK);
    ax_set_dead_letter_actor(sys, dl);
    lost0 = axt_stats(sys).lost_notices;
    m = num_new(0, 0);
    ax_dead_letter(sys, &m, AX_ECLOSED, AX_REF_NULL);
    AXT_WAIT_SEM(&b.in_handler);
    /* The first of these waits in the mailbox; the other three find it full. */
    for (uint64_t i = 1; i <= 4; i++) {
        m = num_new(0, i);
        ax_dead_letter(sys, &m, AX_ECLOSED, AX_REF_NULL);
        cr_assert_null(m, "ax_dead_letter takes the message");
    }
    cr_assert_eq(axt_stats(sys).dead_letters, 5, "every dead letter is counted");
    cr_assert_eq(axt_stats(sys).lost_notices - lost0, 3,
                 "the three the dead-letter actor could not take are counted as lost notices");
    sem_post(&b.gate);
    AXT_WAIT_COUNT(b.received, 2);
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases), "every message released");
}
