/*
 * bench_serial: eager serialisation against lazy local delivery and a bare
 * msgpack baseline, for 16 B, 256 B, 4 KiB and 64 KiB payloads.
 *
 * The payload is a bytes message (ax_bytes_msg_t, packed as one msgpack
 * bin of that many bytes). Cases, each printed as one JSON line:
 *
 *   baseline   one thread: msgpack_pack the bin into a preallocated flat
 *              buffer, then msgpack_unpack it (zone cleared each time).
 *              One copy of the bytes; unpack points into the buffer.
 *   eager      actor A -> actor B on a system of 2 workers:
 *              ax_tell_serialised into A's pool, local delivery of the
 *              NetMessage, ax_net_msg_deserialise as ax_bytes_view_type in
 *              B (zero copy, like the baseline's unpack), then release.
 *   eager_copy the same, decoding as ax_bytes_type (one more copy and a
 *              malloc per message), for comparison.
 *   lazy       the same two actors, ax_tell by pointer of a pooled bytes
 *              message: no serialisation at all.
 *   encode_payload_only
 *              a diagnostic, one actor on one thread: ax_preserialise
 *              (the payload alone, no frame header or envelope, into the
 *              actor's pool) then ax_preserialised_release. The part of
 *              eager that corresponds to the baseline's pack.
 *
 * Actor cases run a pipeline: A keeps at most WINDOW messages in flight,
 * B acks every ACK_EVERY messages with a local message, and A sends more
 * on each ack. Time per message is wall time / messages, so the actor
 * cases benefit from A and B running on two cores while the baseline runs
 * on one.
 *
 * Each line gives msgs_per_s, mb_per_s (payload bytes only, 10^6) and
 * ns_per_msg (wall time). Actor lines add cpu_ns_per_msg, the CPU time of
 * every thread per message (it includes workers spinning before they
 * park, so it is an upper bound on the work). Eager lines add
 * ratio_vs_baseline (eager ns / baseline ns; the target is <= 1.5
 * at 256 B, reported as target_met) and ratio_vs_lazy. Each case runs
 * TRIALS times and the median is reported: these machines are noisy.
 * Senders use the system's default BufferConfig (128 KiB chunks).
 *
 * Usage: bench_serial [scale [size]]   (scale 0.1 runs a tenth of every
 * count; size runs only that payload size, e.g. for perf record)
 */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "axon/actor.h"
#include "axon/serial.h"

#define BENCH_NAME "bench_serial"
#include "bench.h"

#define TRIALS 5
#define WORKERS 2
#define WINDOW 256
#define ACK_EVERY 32
#define TARGET_RATIO_256 1.5

static volatile uint64_t sink; /* keeps the compiler from dropping work */

/* CPU time of every thread of the process: with 2 workers, wall time
 * alone hides whether they were busy or parked. */
static double cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

/* ---- baseline: msgpack_pack into a flat buffer, then unpack ------------ */

static double run_baseline(const unsigned char *payload, size_t len, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone *zone = msgpack_zone_new(2048);
    msgpack_object obj;
    double t0;

    /* An sbuffer grown once to the message size: later packs only copy. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin_with_body(&pk, payload, len);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        size_t off = 0;

        sb.size = 0;
        msgpack_pack_bin_with_body(&pk, payload, len);
        if (msgpack_unpack(sb.data, sb.size, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS ||
            obj.type != MSGPACK_OBJECT_BIN)
            bench_die("baseline unpack", AX_EPROTO);
        sink += obj.via.bin.size + (unsigned char)obj.via.bin.ptr[len ? len - 1 : 0];
        msgpack_zone_clear(zone);
    }
    t0 = bench_now_ns() - t0;
    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&sb);
    return t0 / (double)n;
}

/* ---- the actor pipeline ------------------------------------------------ */

enum mode { EAGER, EAGER_COPY, LAZY, ENCODE_ONLY };

typedef struct run {
    enum mode mode;
    size_t n;                /* messages to send */
    const unsigned char *payload;
    size_t len;
    ax_msg_t *eager_msg;     /* EAGER*: the message A serialises (A keeps it) */
    ax_msg_pool_t *lazy_pool; /* LAZY: bytes messages A sends by pointer */
    ax_msg_pool_t *ack_pool;
    ax_ref_t a, b;
    sem_t done;
    ax_status_t failed;      /* first unexpected status, or AX_OK */
    uint64_t enobufs;        /* sends A had to retry later */
} run_t;

typedef struct ack {
    ax_msg_t hdr;
    uint64_t count;
} ack_t;

static const ax_msg_type_t ack_type = {.name = "bench.ack", .size = sizeof(ack_t)};
static const ax_msg_type_t go_type = {.name = "bench.go", .size = sizeof(ax_msg_t)};

typedef struct sender {
    ax_actor_t actor;
    run_t *run;
    uint64_t sent, acked;
} sender_t;

typedef struct receiver {
    ax_actor_t actor;
    run_t *run;
    uint64_t got, unacked;
} receiver_t;

static ax_status_t sender_init(ax_actor_t *self, void *arg)
{
    ((sender_t *)self)->run = arg;
    return AX_OK;
}

static ax_status_t receiver_init(ax_actor_t *self, void *arg)
{
    ((receiver_t *)self)->run = arg;
    return AX_OK;
}

static void fail(run_t *r, ax_status_t st)
{
    if (r->failed == AX_OK)
        r->failed = st;
    sem_post(&r->done);
}

/* One message from A to B; AX_ENOBUFS means "later". */
static ax_status_t send_one(ax_actor_t *self, run_t *r)
{
    ax_msg_t *m = NULL;
    ax_bytes_msg_t *b;
    ax_status_t st;

    if (r->mode != LAZY)
        return ax_tell_serialised(self, r->b, &ax_bytes_type, r->eager_msg);
    st = ax_msg_get(r->lazy_pool, AX_ALWAYS, &m);
    if (st != AX_OK)
        return st;
    b = (ax_bytes_msg_t *)m;
    b->data = r->payload; /* not owned: the pool keeps the message, not the bytes */
    b->len = r->len;
    st = ax_tell(r->b, &m, ax_self(self));
    ax_msg_release(&m); /* NULL unless the tell failed */
    return st;
}

/* Fill the window. */
static void pump(ax_actor_t *self)
{
    sender_t *s = (sender_t *)self;
    run_t *r = s->run;

    while (s->sent < r->n && s->sent - s->acked < WINDOW) {
        ax_status_t st = send_one(self, r);

        if (st == AX_ENOBUFS) {
            r->enobufs++; /* the next ack frees chunks: retry then */
            return;
        }
        if (st != AX_OK) {
            fail(r, st);
            return;
        }
        s->sent++;
    }
}

/* ENCODE_ONLY: serialise the payload n times into self's pool. */
static void encode_only(ax_actor_t *self, run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ax_preserialised_t *p = NULL;
        ax_status_t st = ax_preserialise(self, &ax_bytes_type, r->eager_msg, &p);

        if (st != AX_OK) {
            fail(r, st);
            return;
        }
        ax_preserialised_release(&p);
    }
    sem_post(&r->done);
}

static ax_status_t sender_receive(ax_actor_t *self, ax_msg_t **msg)
{
    sender_t *s = (sender_t *)self;

    if (s->run->mode == ENCODE_ONLY) {
        encode_only(self, s->run);
        return AX_OK;
    }
    if ((*msg)->type == &ack_type)
        s->acked += ((ack_t *)*msg)->count;
    pump(self);
    return AX_OK;
}

/* Count one message and ack in batches (and the last, partial batch). */
static void received(ax_actor_t *self)
{
    receiver_t *rc = (receiver_t *)self;
    run_t *r = rc->run;
    ax_msg_t *m = NULL;
    ax_status_t st;

    rc->got++;
    if (rc->got == r->n) {
        sem_post(&r->done);
        return;
    }
    if (++rc->unacked < ACK_EVERY)
        return;
    st = ax_msg_get(r->ack_pool, AX_ALWAYS, &m);
    if (st == AX_OK) {
        ((ack_t *)m)->count = rc->unacked;
        st = ax_tell(r->a, &m, ax_self(self));
    }
    if (st != AX_OK)
        fail(r, st);
    rc->unacked = 0;
}

static ax_status_t receiver_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    run_t *r = ((receiver_t *)self)->run;
    const ax_msg_type_t *type = r->mode == EAGER ? &ax_bytes_view_type : &ax_bytes_type;
    ax_msg_t *out = NULL;
    ax_status_t st = ax_net_msg_deserialise(*nm, type, &out);

    if (st != AX_OK) {
        fail(r, st);
        return AX_OK;
    }
    sink += ((ax_bytes_msg_t *)out)->len;
    ax_msg_release(&out);
    received(self);
    return AX_OK;
}

static ax_status_t receiver_local(ax_actor_t *self, ax_msg_t **msg)
{
    sink += ((ax_bytes_msg_t *)*msg)->len;
    received(self);
    return AX_OK; /* the runtime puts the message back in its pool */
}

static const ax_actor_vtable_t sender_vtable = {
    .name = "bench.sender", .size = sizeof(sender_t),
    .init = sender_init, .receive_local = sender_receive,
};

static const ax_actor_vtable_t receiver_vtable = {
    .name = "bench.receiver", .size = sizeof(receiver_t),
    .init = receiver_init, .receive_local = receiver_local, .receive_network = receiver_network,
};

static double run_actors(ax_system_t *sys, enum mode mode, const unsigned char *payload, size_t len,
                         size_t n, uint64_t *enobufs, double *cpu)
{
    static const ax_msg_pool_options_t pool_opts = {.initial = WINDOW + ACK_EVERY, .max = 2 * WINDOW};
    run_t r = {.mode = mode, .n = n, .payload = payload, .len = len};
    ax_msg_t *go = NULL;
    double t0, c0;

    sem_init(&r.done, 0, 0);
    BENCH_CHECK(ax_msg_pool_create(&ack_type, &pool_opts, &r.ack_pool));
    BENCH_CHECK(ax_msg_pool_create(&ax_bytes_type, &pool_opts, &r.lazy_pool));
    BENCH_CHECK(ax_bytes_msg_new(payload, len, &r.eager_msg));
    BENCH_CHECK(ax_spawn(sys, &receiver_vtable, &r, &r.b));
    BENCH_CHECK(ax_spawn(sys, &sender_vtable, &r, &r.a));
    BENCH_CHECK(ax_msg_alloc(&go_type, &go));
    c0 = cpu_ns();
    t0 = bench_now_ns();
    BENCH_CHECK(ax_tell(r.a, &go, AX_REF_NULL));
    bench_wait(&r.done, "end of the relay");
    t0 = bench_now_ns() - t0;
    *cpu = (cpu_ns() - c0) / (double)n;
    if (r.failed != AX_OK)
        bench_die("pipeline", r.failed);
    ax_stop(r.a);
    ax_stop(r.b);
    /* Wait until both have ended before their run (and pools) go away. */
    for (;;) {
        struct timespec ms = {0, 1000000};
        ax_system_stats_t stats;

        ax_system_stats(sys, &stats);
        if (stats.actors_alive == 0)
            break;
        nanosleep(&ms, NULL);
    }
    *enobufs += r.enobufs;
    ax_msg_release(&r.eager_msg);
    ax_msg_pool_destroy(&r.lazy_pool);
    ax_msg_pool_destroy(&r.ack_pool);
    sem_destroy(&r.done);
    return t0 / (double)n;
}

/* ---- reporting ---------------------------------------------------------- */

typedef struct result {
    double ns;
    double cpu_ns; /* CPU time of all threads per message (0: not measured) */
    uint64_t enobufs;
} result_t;

static result_t measure(ax_system_t *sys, int mode /* -1: baseline */, const unsigned char *payload,
                        size_t len, size_t n)
{
    double t[TRIALS], c[TRIALS];
    result_t res = {0};

    for (int i = 0; i < TRIALS; i++) {
        c[i] = 0;
        t[i] = mode < 0 ? run_baseline(payload, len, n)
                        : run_actors(sys, (enum mode)mode, payload, len, n, &res.enobufs, &c[i]);
    }
    res.ns = bench_median(t, TRIALS);
    res.cpu_ns = bench_median(c, TRIALS);
    return res;
}

static void report(const char *name, size_t len, size_t n, int threads, result_t r,
                   const result_t *base, const result_t *lazy)
{
    double mps = 1e9 / r.ns;

    printf("{\"bench\":\"serial\",\"case\":\"%s\",\"payload\":\"bytes\",\"payload_bytes\":%zu,"
           "\"msgs\":%zu,\"busy_threads\":%d,\"ns_per_msg\":%.1f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f",
           name, len, n, threads, r.ns, mps, mps * (double)len / 1e6);
    if (r.cpu_ns > 0)
        printf(",\"cpu_ns_per_msg\":%.1f", r.cpu_ns);
    if (base != NULL)
        printf(",\"ratio_vs_baseline\":%.3f", r.ns / base->ns);
    if (lazy != NULL)
        printf(",\"ratio_vs_lazy\":%.3f", r.ns / lazy->ns);
    if (base != NULL && lazy != NULL && len == 256)
        printf(",\"target_ratio_vs_baseline\":%.1f,\"target_met\":%s", TARGET_RATIO_256,
               r.ns / base->ns <= TARGET_RATIO_256 ? "true" : "false");
    if (r.enobufs > 0)
        printf(",\"enobufs_retries\":%llu", (unsigned long long)r.enobufs);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const struct {
        size_t len, n;
    } sizes[] = {{16, 1000000}, {256, 1000000}, {4096, 200000}, {65536, 20000}};
    ax_system_t *sys;
    size_t only = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;

    bench_set_scale(argc > 1 ? argv[1] : NULL);
    sys = bench_system(WORKERS);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s].len, n = bench_scaled(sizes[s].n);
        unsigned char *payload;
        result_t base, eager, copy, lazy, enc;

        if (only != 0 && len != only)
            continue;
        payload = malloc(len);
        if (n < 100)
            n = 100;
        for (size_t i = 0; i < len; i++)
            payload[i] = (unsigned char)(i * 37 + 1);
        base = measure(sys, -1, payload, len, n);
        lazy = measure(sys, LAZY, payload, len, n);
        eager = measure(sys, EAGER, payload, len, n);
        copy = measure(sys, EAGER_COPY, payload, len, n);
        enc = measure(sys, ENCODE_ONLY, payload, len, n);
        report("baseline_msgpack_pack_unpack", len, n, 1, base, NULL, NULL);
        report("lazy_tell_by_pointer", len, n, WORKERS, lazy, &base, NULL);
        report("eager_tell_serialised_view", len, n, WORKERS, eager, &base, &lazy);
        report("eager_tell_serialised_copy", len, n, WORKERS, copy, &base, &lazy);
        report("encode_payload_only", len, n, 1, enc, &base, NULL);
        free(payload);
    }
    bench_system_end(&sys);
    return 0;
}
