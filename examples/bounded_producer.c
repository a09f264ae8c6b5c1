/*
 * bounded_producer: a fast producer, a slower consumer with a bounded
 * mailbox, and nothing lost.
 *
 * The consumer's vtable sets mailbox_capacity, so at most 32 messages wait
 * for it. The producer sends numbered messages as fast as it can. When
 * ax_tell answers AX_EFULL, the message stays with the producer: it keeps
 * it, stops sending, and sets a 1 ms timer. When the timer's message
 * arrives it sends the kept message again and carries on. A handler never
 * waits in a loop: backing off through a timer leaves the worker free to
 * run the consumer meanwhile.
 *
 * The consumer checks that every number arrives, in order; main() checks
 * the total and that the mailbox never held more than its capacity.
 */
#define _POSIX_C_SOURCE 200809L /* semaphores */

#include <semaphore.h>
#include <stdio.h>

#include "axon/axon.h"

#define CAPACITY 32
#define MESSAGES 20000

/* ---- messages ----------------------------------------------------------------- */

typedef struct item {
    ax_msg_t hdr;
    uint64_t seq;
} item_t;

static const ax_msg_type_t item_type = {.name = "item", .size = sizeof(item_t)};
static const ax_msg_type_t retry_type = {.name = "retry", .size = sizeof(ax_msg_t)};

/* ---- the consumer ------------------------------------------------------------- */

typedef struct report {
    uint64_t received, out_of_order, backoffs;
    ax_mailbox_stats_t mailbox;
    sem_t done;
} report_t;

typedef struct consumer {
    ax_actor_t actor;
    uint64_t next; /* the seq expected next */
    report_t *report;
} consumer_t;

static ax_status_t consumer_init(ax_actor_t *self, void *arg)
{
    ((consumer_t *)self)->report = arg;
    return AX_OK;
}

static ax_status_t consumer_receive(ax_actor_t *self, ax_msg_t **msg)
{
    consumer_t *c = (consumer_t *)self;
    volatile uint64_t work = 0;

    if (((item_t *)*msg)->seq != c->next)
        c->report->out_of_order++;
    c->next = ((item_t *)*msg)->seq + 1;
    for (int i = 0; i < 2000; i++) /* some work per message: slower than the producer */
        work += (uint64_t)i;
    if (++c->report->received == MESSAGES) {
        ax_mailbox_stats(ax_self(self), &c->report->mailbox);
        sem_post(&c->report->done); /* publishes the report to main() */
    }
    return AX_OK;
}

static const ax_actor_vtable_t consumer_vtable = {
    .name = "consumer",
    .size = sizeof(consumer_t),
    .init = consumer_init,
    .receive_local = consumer_receive,
    .mailbox_capacity = CAPACITY, /* a full mailbox answers AX_EFULL */
};

/* ---- the producer ------------------------------------------------------------- */

typedef struct producer {
    ax_actor_t actor;
    ax_ref_t consumer;
    uint64_t next;   /* the next seq to create */
    ax_msg_t *kept;  /* refused by a full mailbox, to send again */
    report_t *report;
} producer_t;

typedef struct producer_args {
    ax_ref_t consumer;
    report_t *report;
} producer_args_t;

static ax_status_t producer_init(ax_actor_t *self, void *arg)
{
    producer_t *p = (producer_t *)self;
    producer_args_t *a = arg;

    p->consumer = a->consumer;
    p->report = a->report;
    return AX_OK;
}

/* Send until done or refused; on AX_EFULL keep the message and back off. */
static void produce(ax_actor_t *self)
{
    producer_t *p = (producer_t *)self;

    for (int burst = 0; burst < 256; burst++) {
        ax_status_t st;

        if (p->kept == NULL) {
            if (p->next == MESSAGES)
                return;
            if (ax_msg_alloc(&item_type, &p->kept) != AX_OK)
                break; /* out of memory: try again after a back-off */
            ((item_t *)p->kept)->seq = p->next++;
        }
        st = ax_tell(p->consumer, &p->kept, ax_self(self));
        if (st == AX_EFULL)
            break; /* p->kept is still ours: nothing is lost */
        if (st != AX_OK) {
            fprintf(stderr, "producer: %s (%s)\n", ax_status_str(st), ax_error_detail());
            ax_msg_release(&p->kept);
            return;
        }
    }
    ax_msg_t *retry = NULL;
    ax_status_t st = ax_msg_alloc(&retry_type, &retry);

    if (st == AX_OK && p->kept != NULL) {
        /* Full: come back in 1 ms, when the consumer has made room. */
        p->report->backoffs++;
        st = ax_schedule_once(self, AX_MS(1), &retry, NULL); /* never cancelled: no id */
    } else if (st == AX_OK) {
        /* A burst done: yield the worker with a message to ourselves. */
        st = ax_tell(ax_self(self), &retry, ax_self(self));
    }
    if (st != AX_OK) {
        fprintf(stderr, "producer: cannot go on: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_msg_release(&retry);
    }
}

static ax_status_t producer_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg; /* a retry: the runtime releases it */
    produce(self);
    return AX_OK;
}

static void producer_destroy(ax_actor_t *self)
{
    ax_msg_release(&((producer_t *)self)->kept);
}

static const ax_actor_vtable_t producer_vtable = {
    .name = "producer",
    .size = sizeof(producer_t),
    .init = producer_init,
    .on_start = produce,
    .receive_local = producer_receive,
    .destroy = producer_destroy,
};

int main(void)
{
    ax_system_t *sys = NULL;
    report_t report = {0};
    producer_args_t args;
    ax_ref_t consumer, producer;
    ax_status_t st;

    sem_init(&report.done, 0, 0);
    if ((st = ax_system_create(NULL, &sys)) != AX_OK ||
        (st = ax_spawn(sys, &consumer_vtable, &report, &consumer)) != AX_OK) {
        fprintf(stderr, "setup: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&sys);
        return 1;
    }
    args = (producer_args_t){consumer, &report};
    if ((st = ax_spawn(sys, &producer_vtable, &args, &producer)) != AX_OK) {
        fprintf(stderr, "spawn: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&sys);
        return 1;
    }
    sem_wait(&report.done);
    printf("consumer received %llu of %d messages, %llu out of order; the producer backed off "
           "%llu times; mailbox capacity %u, high-water mark %u\n",
           (unsigned long long)report.received, MESSAGES, (unsigned long long)report.out_of_order,
           (unsigned long long)report.backoffs, report.mailbox.capacity, report.mailbox.high_water);
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax_system_destroy(&sys);
    sem_destroy(&report.done);
    return report.received == MESSAGES && report.out_of_order == 0 &&
                   report.mailbox.high_water <= CAPACITY
               ? 0
               : 1;
}
