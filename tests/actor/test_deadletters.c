/*
 * Dead letters: the default sink, a user's dead-letter actor, and refs that
 * outlive their actor's memory (the cell was recycled for a new actor).
 * Under ASan these tests also prove no send touches freed memory.
 */
#include <pthread.h>

#include "helpers.h"

Test(deadletters, default_sink_counts_and_releases)
{
    ax_system_t *sys = axt_system(2);
    probe_t p;
    ax_ref_t ref;

    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    cr_assert_eq(ax_stop(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);
    for (uint64_t i = 0; i < 10; i++)
        num_tell(ref, 0, i, 0);
    cr_assert_eq(axt_stats(sys).dead_letters, 10);
    cr_assert_eq(atomic_load(&num_releases), 10, "the default sink releases at once");
    axt_shutdown(&sys);
}

Test(deadletters, ax_dead_letter_hands_over_a_message_with_its_status)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    probe_t p;
    ax_ref_t ref;
    ax_msg_t *m = num_new(0, 0);

    probe_init(&p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    axt_collect_dead_letters(sys, &log);
    log.watch = ref;
    ax_dead_letter(sys, &m, AX_ETIMEDOUT, ref);
    cr_assert_null(m, "ax_dead_letter takes the message");
    AXT_WAIT_COUNT(log.count, 1);
    cr_assert_eq(atomic_load(&log.eclosed), 0);
    cr_assert_eq(atomic_load(&log.for_watch), 1);
    cr_assert_eq(atomic_load(&p.received), 0);
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&num_releases), 1);
}

Test(deadletters, a_dead_letter_actor_that_ended_falls_back_to_counting)
{
    ax_system_t *sys = axt_system(2);
    probe_t p, dlp;
    ax_ref_t ref, dl;

    probe_init(&p);
    probe_init(&dlp);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, &dlp, &dl), AX_OK);
    ax_set_dead_letter_actor(sys, dl);
    cr_assert_eq(ax_stop(dl), AX_OK);
    AXT_WAIT_SEM(&dlp.ended);
    cr_assert_eq(ax_stop(ref), AX_OK);
    AXT_WAIT_SEM(&p.ended);
    num_tell(ref, 0, 0, 0);
    cr_assert_eq(axt_stats(sys).dead_letters, 1, "counted once, not again as the wrapper");
    cr_assert_eq(atomic_load(&num_releases), 1, "released with its wrapper");
    /* Restore the default sink. */
    ax_set_dead_letter_actor(sys, AX_REF_NULL);
    num_tell(ref, 0, 1, 0);
    cr_assert_eq(atomic_load(&num_releases), 2);
    axt_shutdown(&sys);
}

/* ---- stale refs into recycled cells ------------------------------------ */

#define GENERATIONS 4
#define PER_GEN 2000

typedef struct stale_ctx {
    ax_ref_t *old;          /* refs of ended actors */
    size_t nold;
    _Atomic uint64_t wrong_recipient;
} stale_ctx_t;

/* Each dead letter must name the old ref its message was sent through;
 * the message's seq is the index of that ref. */
static void check_recipient(dl_log_t *log, const ax_dead_letter_t *dl)
{
    stale_ctx_t *ctx = log->ctx;
    const num_msg_t *m = (const num_msg_t *)dl->msg;

    if (m == NULL || m->seq >= ctx->nold || !ax_ref_eq(dl->recipient, ctx->old[m->seq]) ||
        dl->status != AX_ECLOSED)
        atomic_fetch_add(&ctx->wrong_recipient, 1);
}

typedef struct gen_actor {
    ax_actor_t actor;
    _Atomic uint64_t *received;
    _Atomic uint64_t *destroyed;
} gen_actor_t;

typedef struct gen_args {
    _Atomic uint64_t *received, *destroyed;
} gen_args_t;

static ax_status_t gen_init(ax_actor_t *self, void *arg)
{
    gen_args_t *a = arg;

    ((gen_actor_t *)self)->received = a->received;
    ((gen_actor_t *)self)->destroyed = a->destroyed;
    return AX_OK;
}

static ax_status_t gen_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg;
    atomic_fetch_add(((gen_actor_t *)self)->received, 1);
    return AX_OK;
}

static void gen_destroy(ax_actor_t *self)
{
    atomic_fetch_add(((gen_actor_t *)self)->destroyed, 1);
}

static const ax_actor_vtable_t gen_vtable = {
    .name = "test.generation",
    .size = sizeof(gen_actor_t),
    .init = gen_init,
    .receive_local = gen_receive,
    .destroy = gen_destroy,
};

Test(deadletters, refs_into_recycled_cells_dead_letter_and_never_reach_new_actors)
{
    ax_system_t *sys = axt_system(2);
    dl_log_t log = {0};
    stale_ctx_t ctx = {0};
    _Atomic uint64_t received = 0, destroyed = 0;
    gen_args_t args = {&received, &destroyed};
    ax_ref_t *old = calloc((GENERATIONS - 1) * PER_GEN, sizeof(*old));
    ax_ref_t live[PER_GEN];
    size_t reused = 0;

    cr_assert_not_null(old);
    log.on_letter = check_recipient;
    log.ctx = &ctx;
    ctx.old = old;
    axt_collect_dead_letters(sys, &log);

    /* Generations of same-sized actors: each one ends before the next is
     * spawned, so the next reuses its cells. The last one stays alive. */
    for (int g = 0; g < GENERATIONS; g++) {
        ax_ref_t *refs = g < GENERATIONS - 1 ? old + (size_t)g * PER_GEN : live;

        for (size_t i = 0; i < PER_GEN; i++)
            cr_assert_eq(ax_spawn(sys, &gen_vtable, &args, &refs[i]), AX_OK);
        if (g == GENERATIONS - 1)
            break;
        for (size_t i = 0; i < PER_GEN; i++)
            cr_assert_eq(ax_stop(refs[i]), AX_OK);
        AXT_WAIT_COUNT(destroyed, (uint64_t)(g + 1) * PER_GEN);
    }
    ctx.nold = (GENERATIONS - 1) * PER_GEN;
    for (size_t i = 0; i < ctx.nold; i++)
        for (size_t j = 0; j < PER_GEN; j++)
            if (old[i].target == live[j].target) {
                cr_assert_neq(old[i].id, live[j].id, "ids never repeat");
                reused++;
                break;
            }
    cr_assert_gt(reused, 0, "the test needs recycled cells to mean anything");

    /* Send through every stale ref, several times; control calls on them
     * must not touch the new owners either. */
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < ctx.nold; i++) {
            num_tell(old[i], 0, i, 0);
            cr_assert_eq(ax_stop(old[i]), AX_ENOTFOUND);
            cr_assert_eq(ax_kill(old[i]), AX_ENOTFOUND);
            cr_assert_eq(ax_start(old[i]), AX_ENOTFOUND);
        }
    }
    AXT_WAIT_COUNT(log.count, 3 * ctx.nold);

    /* Now one message to each live actor; when all have arrived, nothing
     * else had reached them. */
    for (size_t j = 0; j < PER_GEN; j++)
        num_tell(live[j], 1, j, 0);
    AXT_WAIT_COUNT(received, PER_GEN);
    cr_assert_eq(atomic_load(&log.nums), 3 * ctx.nold);
    cr_assert_eq(atomic_load(&log.eclosed), 3 * ctx.nold);
    cr_assert_eq(atomic_load(&ctx.wrong_recipient), 0);
    cr_assert_eq(atomic_load(&destroyed), (GENERATIONS - 1) * PER_GEN, "no live actor was stopped");
    AXT_ASSERT_NO_BAD();
    axt_shutdown(&sys);
    cr_assert_eq(atomic_load(&received), PER_GEN, "no stale message was delivered");
    cr_assert_eq(atomic_load(&num_allocs), atomic_load(&num_releases));
    free(old);
}

/* Senders racing with the end of their target: every message is either
 * handled or dead-lettered, and each is released exactly once (the count
 * of releases, and ASan for double frees). */
typedef struct race_sender {
    pthread_t thread;
    ax_ref_t dst;
    uint64_t sent;
    _Atomic int *stop;
} race_sender_t;

static void *race_sender_main(void *arg)
{
    race_sender_t *s = arg;

    while (!atomic_load(s->stop) || s->sent < 1000) {
        ax_msg_t *m = NULL;

        if (ax_msg_alloc(&num_type, &m) != AX_OK) {
            atomic_fetch_add(&axt_bad, 1);
            return NULL;
        }
        atomic_fetch_add(&num_allocs, 1);
        if (ax_tell(s->dst, &m, AX_REF_NULL) != AX_OK) {
            atomic_fetch_add(&axt_bad, 1);
            return NULL;
        }
        s->sent++;
    }
    return NULL;
}

Test(deadletters, sends_racing_with_stop_and_kill_are_released_exactly_once)
{
    for (int round = 0; round < 20; round++) {
        ax_system_t *sys = axt_system(2);
        race_sender_t s[3];
        _Atomic int stop = 0;
        probe_t p;
        ax_ref_t ref;
        uint64_t sent = 0, before = atomic_load(&num_releases);

        probe_init(&p);
        cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &ref), AX_OK);
        for (int i = 0; i < 3; i++) {
            s[i] = (race_sender_t){.dst = ref, .stop = &stop};
            cr_assert_eq(pthread_create(&s[i].thread, NULL, race_sender_main, &s[i]), 0);
        }
        axt_sleep_us(200);
        cr_assert_eq(round % 2 ? ax_kill(ref) : ax_stop(ref), AX_OK);
        AXT_WAIT_SEM(&p.ended);
        /* Keep sending a little past the end. */
        axt_sleep_us(200);
        atomic_store(&stop, 1);
        for (int i = 0; i < 3; i++) {
            pthread_join(s[i].thread, NULL);
            sent += s[i].sent;
        }
        AXT_ASSERT_NO_BAD();
        ax_system_shutdown(sys);
        cr_assert_eq(axt_await(sys), AX_OK);
        uint64_t dead = axt_stats(sys).dead_letters;
        /* A push that raced past the end waits in the ended cell until the
         * system is destroyed, which releases it. */
        axt_destroy(&sys);
        cr_assert_eq(atomic_load(&num_releases) - before, sent, "round %d: %llu sent, %llu released",
                     round, (unsigned long long)sent,
                     (unsigned long long)(atomic_load(&num_releases) - before));
        cr_assert_leq(atomic_load(&p.received) + dead, sent);
        cr_assert_eq(atomic_load(&p.destroys), 1);
    }
}
