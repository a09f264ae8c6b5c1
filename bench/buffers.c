/*
 * bench_buffers: the cost of one small serialised message.
 *
 * Every case packs the same msgpack message, [fix_uint32 seq, bin payload],
 * of 16, 32 or 64 bytes, and each prints one JSON line with ns per message
 * and its ratio to the flat floor measured in the same run:
 *
 *   flat_pack                 msgpack_pack into a preallocated flat buffer
 *                             (the floor: nothing is handed over)
 *   flat_pack_ring_xthread    flat_pack, plus a token sent through a ck_ring
 *                             SPSC to another thread (what the hand-off
 *                             alone costs, with no memory to give back)
 *   malloc_copy_free          pack into a scratch buffer, then malloc +
 *                             memcpy + free on the same thread
 *   malloc_copy_free_xthread  the same, but free on another thread
 *   lease_encode_release      ax_encode_packer into a lease, release it on
 *                             the same thread
 *   lease_encode_release_xthread
 *                             the same, but the lease goes through a ck_ring
 *                             SPSC to another thread, which releases it
 *
 * The lease lines also give ratio_vs_malloc, against the malloc case with
 * the same threading. With two or more CPUs the owner runs on CPU 0 and
 * the other thread on CPU 1 ("pinned":true).
 *
 * Usage: bench_buffers [messages per trial] (default 1000000). Each case
 * runs several trials and reports the median, since these machines are
 * noisy. The target: the xthread lease path within 1.5x of the
 * floor, and faster than malloc per message.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/buffers.h"
/* Before ck_ring.h, so that a TSan build sees ck's loads and stores. */
#include "common/ax_atomic.h"

#define BENCH_NAME "bench_buffers"
#include "bench.h"
#include <ck_ring.h>

#include <msgpack.h> /* to pack into ax_encode_packer() */

#define TRIALS 5
#define RING_SLOTS 4096

CK_RING_PROTOTYPE(lease, ax_lease_s)

static size_t n_msgs = 1000000;
static volatile unsigned sink; /* keeps the compiler from dropping work */
static int pinned;             /* owner on CPU 0, other thread on CPU 1 */

/* Pin the calling thread, so that "another thread" always means another
 * core: otherwise the scheduler may run both on one core in turns, which
 * hides the cost of moving cache lines between cores and varies from run
 * to run. */
static void pin_to(int cpu)
{
    cpu_set_t set;

    if (!pinned)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Spin briefly, then give the core away: with two cores and two busy
 * threads a pure spin would starve the other side. */
static void backoff(unsigned *spins)
{
    if (++*spins < 64) {
        ck_pr_stall();
    } else {
        *spins = 0;
        sched_yield();
    }
}

/* ---- the message ------------------------------------------------------ */

static unsigned char payload[64];

/* 1 (array) + 5 (fix_uint32) + 2 (bin8 header) + body = msg_bytes. */
static void pack_msg(msgpack_packer *pk, uint32_t seq, size_t msg_bytes)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_fix_uint32(pk, seq);
    msgpack_pack_bin_with_body(pk, payload, msg_bytes - 8);
}

/* ---- flat buffer: the floor ------------------------------------------- */

struct flat {
    unsigned char *buf;
    size_t pos, cap;
};

static int flat_write(void *data, const char *src, size_t n)
{
    struct flat *f = data;

    memcpy(f->buf + f->pos, src, n);
    f->pos += n;
    return 0;
}

static double run_flat(size_t msg_bytes)
{
    struct flat f = {.buf = malloc(1 << 20), .cap = 1 << 20};
    msgpack_packer pk;
    double t0;

    msgpack_packer_init(&pk, &f, flat_write);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n_msgs; i++) {
        if (f.cap - f.pos < 128)
            f.pos = 0; /* wrap, like a ring of messages already sent */
        pack_msg(&pk, (uint32_t)i, msg_bytes);
    }
    t0 = bench_now_ns() - t0;
    sink += f.buf[f.pos - 1];
    free(f.buf);
    return t0 / (double)n_msgs;
}

/* ---- malloc + memcpy + free ------------------------------------------- */

static double run_malloc(size_t msg_bytes)
{
    unsigned char scratch[128];
    struct flat f = {.buf = scratch, .cap = sizeof scratch};
    msgpack_packer pk;
    double t0;

    msgpack_packer_init(&pk, &f, flat_write);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n_msgs; i++) {
        unsigned char *copy;

        f.pos = 0;
        pack_msg(&pk, (uint32_t)i, msg_bytes);
        copy = malloc(f.pos);
        memcpy(copy, scratch, f.pos);
        sink += copy[f.pos - 1];
        free(copy);
    }
    return (bench_now_ns() - t0) / (double)n_msgs;
}

/* A pointer ring from the owner to a thread that frees what it receives. */
struct ptr_consumer {
    ck_ring_t ring;
    ck_ring_buffer_t slots[RING_SLOTS];
    pthread_t thread;
    int tokens;
};

/* tokens != 0 means the pointers are tokens to count, not memory to free. */
static void *free_main(void *arg)
{
    struct ptr_consumer *c = arg;
    unsigned spins = 0;
    void *p;

    pin_to(1);
    for (;;) {
        if (!ck_ring_dequeue_spsc(&c->ring, c->slots, &p)) {
            backoff(&spins);
            continue;
        }
        if (p == NULL)
            return NULL;
        if (c->tokens) {
            sink += (unsigned)(uintptr_t)p;
            continue;
        }
        sink += *(unsigned char *)p;
        free(p);
    }
}

static void ptr_send(struct ptr_consumer *c, void *p)
{
    unsigned spins = 0;

    while (!ck_ring_enqueue_spsc(&c->ring, c->slots, p))
        backoff(&spins);
}

static double run_malloc_xthread(size_t msg_bytes)
{
    struct ptr_consumer *c = calloc(1, sizeof *c);
    unsigned char scratch[128];
    struct flat f = {.buf = scratch, .cap = sizeof scratch};
    msgpack_packer pk;
    double t0;

    ck_ring_init(&c->ring, RING_SLOTS);
    msgpack_packer_init(&pk, &f, flat_write);
    pthread_create(&c->thread, NULL, free_main, c);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n_msgs; i++) {
        unsigned char *copy;

        f.pos = 0;
        pack_msg(&pk, (uint32_t)i, msg_bytes);
        copy = malloc(f.pos);
        memcpy(copy, scratch, f.pos);
        ptr_send(c, copy);
    }
    ptr_send(c, NULL);
    pthread_join(c->thread, NULL); /* the time includes the last free */
    t0 = bench_now_ns() - t0;
    free(c);
    return t0 / (double)n_msgs;
}

static double run_flat_ring(size_t msg_bytes)
{
    struct ptr_consumer *c = calloc(1, sizeof *c);
    struct flat f = {.buf = malloc(1 << 20), .cap = 1 << 20};
    msgpack_packer pk;
    double t0;

    c->tokens = 1;
    ck_ring_init(&c->ring, RING_SLOTS);
    msgpack_packer_init(&pk, &f, flat_write);
    pthread_create(&c->thread, NULL, free_main, c);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n_msgs; i++) {
        if (f.cap - f.pos < 128)
            f.pos = 0;
        pack_msg(&pk, (uint32_t)i, msg_bytes);
        ptr_send(c, (void *)(uintptr_t)(i + 1));
    }
    ptr_send(c, NULL);
    pthread_join(c->thread, NULL);
    t0 = bench_now_ns() - t0;
    free(f.buf);
    free(c);
    return t0 / (double)n_msgs;
}

/* ---- leases ------------------------------------------------------------ */

static ax_encode_buffer_t *make_encoder(void)
{
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;
    ax_encode_buffer_t *eb = NULL;

    BENCH_CHECK(ax_encode_buffer_create(&cfg, &eb));
    return eb;
}

/* Encode one message, waiting while the pool is exhausted (backpressure:
 * the releasing thread has not caught up yet). */
static void encode_msg(ax_encode_buffer_t *eb, uint32_t seq, size_t msg_bytes, ax_lease_t *out)
{
    unsigned spins = 0;

    for (;;) {
        ax_status_t st = ax_encode_begin(eb, msg_bytes);

        if (st == AX_OK) {
            pack_msg(ax_encode_packer(eb), seq, msg_bytes);
            st = ax_encode_end(eb, out);
            if (st == AX_OK)
                return;
        }
        if (st != AX_ENOBUFS)
            bench_die("encode", st);
        backoff(&spins);
    }
}

static double run_lease(size_t msg_bytes)
{
    ax_encode_buffer_t *eb = make_encoder();
    double t0 = bench_now_ns();

    for (size_t i = 0; i < n_msgs; i++) {
        ax_lease_t l;

        encode_msg(eb, (uint32_t)i, msg_bytes, &l);
        sink += ((const unsigned char *)ax_lease_data(&l))[0];
        ax_lease_release(&l);
    }
    t0 = bench_now_ns() - t0;
    ax_encode_buffer_destroy(&eb);
    return t0 / (double)n_msgs;
}

struct lease_consumer {
    ck_ring_t ring;
    struct ax_lease_s slots[RING_SLOTS];
    pthread_t thread;
};

static void *release_main(void *arg)
{
    struct lease_consumer *c = arg;
    unsigned spins = 0;
    ax_lease_t l;

    pin_to(1);
    for (;;) {
        if (!ck_ring_dequeue_spsc_lease(&c->ring, c->slots, &l)) {
            backoff(&spins);
            continue;
        }
        if (ax_lease_slice_count(&l) == 0)
            return NULL;
        sink += ((const unsigned char *)ax_lease_data(&l))[0];
        ax_lease_release(&l);
    }
}

static void lease_send(struct lease_consumer *c, ax_lease_t *l)
{
    unsigned spins = 0;

    while (!ck_ring_enqueue_spsc_lease(&c->ring, c->slots, l))
        backoff(&spins);
}

static double run_lease_xthread(size_t msg_bytes)
{
    struct lease_consumer *c = calloc(1, sizeof *c);
    ax_encode_buffer_t *eb = make_encoder();
    ax_lease_t done = AX_LEASE_EMPTY;
    double t0;

    ck_ring_init(&c->ring, RING_SLOTS);
    pthread_create(&c->thread, NULL, release_main, c);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n_msgs; i++) {
        ax_lease_t l;

        encode_msg(eb, (uint32_t)i, msg_bytes, &l);
        lease_send(c, &l);
    }
    lease_send(c, &done);
    pthread_join(c->thread, NULL); /* the time includes the last release */
    t0 = bench_now_ns() - t0;
    ax_encode_buffer_destroy(&eb);
    free(c);
    return t0 / (double)n_msgs;
}

/* ---- driver ------------------------------------------------------------ */

static double median_of(double (*run)(size_t), size_t msg_bytes)
{
    double t[TRIALS];

    run(msg_bytes); /* warm-up: page faults, pool growth, thread start */
    for (int i = 0; i < TRIALS; i++)
        t[i] = run(msg_bytes);
    return bench_median(t, TRIALS);
}

static void report(const char *name, size_t msg_bytes, double ns, double flat, double vs_malloc)
{
    printf("{\"bench\":\"buffers\",\"case\":\"%s\",\"msg_bytes\":%zu,\"msgs\":%zu,"
           "\"ns_per_msg\":%.2f,\"ratio_vs_flat\":%.3f,\"pinned\":%s",
           name, msg_bytes, n_msgs, ns, ns / flat, pinned ? "true" : "false");
    if (vs_malloc > 0)
        printf(",\"ratio_vs_malloc\":%.3f", ns / vs_malloc);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {16, 32, 64};

    if (argc > 1)
        n_msgs = strtoul(argv[1], NULL, 10);
    if (n_msgs == 0)
        n_msgs = 1;
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 37 + 1);
    {
        cpu_set_t set;

        pinned = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_ISSET(0, &set) &&
                 CPU_ISSET(1, &set);
        pin_to(0);
    }
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t b = sizes[s];
        double flat = median_of(run_flat, b);
        double ring = median_of(run_flat_ring, b);
        double mal = median_of(run_malloc, b);
        double mal_x = median_of(run_malloc_xthread, b);
        double lease = median_of(run_lease, b);
        double lease_x = median_of(run_lease_xthread, b);

        report("flat_pack", b, flat, flat, 0);
        report("flat_pack_ring_xthread", b, ring, flat, 0);
        report("malloc_copy_free", b, mal, flat, 0);
        report("malloc_copy_free_xthread", b, mal_x, flat, 0);
        report("lease_encode_release", b, lease, flat, mal);
        report("lease_encode_release_xthread", b, lease_x, flat, mal_x);
    }
    return 0;
}
