/*
 * Networking between several systems in one process, over loopback, with
 * real sockets and real threads: lazy and eager ping-pong by named and
 * unique paths, a 10 MB message, 100,000 messages in order across lazy
 * and eager sends, receive-pool exhaustion and recovery (and acks while
 * paused), malformed, truncated and oversized frames from a raw socket (and
 * a good raw peer), an unreachable peer and a full peer queue, an unknown
 * recipient, network events and sessions, graceful shutdown (it flushes,
 * it ends with Bye, and a peer may stream into it meanwhile).
 *
 * What is asserted is what a user relies on: what arrived, in what order,
 * what went to dead letters with which status, what the counters say and
 * that every message was released. Nothing is timed: each wait is bounded
 * (WAIT_S) and fails rather than hangs.
 *
 * AXON_TEST_SCALE=n divides the largest message counts by n (for the
 * sanitizer jobs); a normal run does the full count.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "serial/frame.h" /* AX__FRAME_LEND_MIN */
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

/* ---- systems, actors, waits ------------------------------------------------ */

/* AXON_TEST_IO_URING=0 runs every test with network.io_uring off: the
 * CTest entry test_net_epoll, so that both ways of reading are tested. */
static bool ring_on(void)
{
    const char *v = getenv("AXON_TEST_IO_URING");

    return v == NULL || strcmp(v, "0") != 0;
}

static ax_config_t net_config(void)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cfg.network.io_uring = ring_on();
    return cfg;
}

static ax_system_t *net_system_with(const ax_config_t *cfg)
{
    ax_system_t *sys = NULL;

    cr_assert_eq(ax_system_create(cfg, &sys), AX_OK, "system_create: %s", ax_error_detail());
    cr_assert_eq(ax_net_start(sys), AX_OK, "net_start: %s", ax_error_detail());
    return sys;
}

static ax_system_t *net_system(void)
{
    ax_config_t cfg = net_config();

    return net_system_with(&cfg);
}

static ax_net_stats_t nstats(ax_system_t *sys)
{
    ax_net_stats_t s;

    cr_assert_eq(ax_net_stats(sys, &s), AX_OK);
    return s;
}

/* A dead-letter counter installed as sys's dead-letter actor. */
static void spawn_dl(ax_system_t *sys, nt_dl_t *dl)
{
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &nt_dl_vtable, dl, &ref), AX_OK);
    ax_set_dead_letter_actor(sys, ref);
}

/* An event log subscribed to sys's network events. */
static void spawn_events(ax_system_t *sys, nt_events_t *log)
{
    ax_ref_t ref;

    nt_events_setup(log);
    cr_assert_eq(ax_spawn(sys, &nt_events_vtable, log, &ref), AX_OK);
    cr_assert_eq(ax_net_subscribe(sys, ref), AX_OK, "subscribe: %s", ax_error_detail());
    cr_assert_eq(ax_net_subscribe(sys, ref), AX_EEXIST, "a second subscription is refused");
}

/* A ref, in `from`, to the actor registered as name in `to`. */
static ax_ref_t remote_named(ax_system_t *from, ax_system_t *to, const char *name)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(nt_named_path(to, name, &p), AX_OK, "path: %s", ax_error_detail());
    cr_assert_eq(ax_ref_from_path(from, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

/* A ref, in `from`, to a local actor of another system by its unique path. */
static ax_ref_t remote_unique(ax_system_t *from, ax_ref_t local)
{
    ax_path_t p;
    ax_ref_t ref;

    cr_assert_eq(ax_ref_path(local, &p), AX_OK, "ref_path: %s", ax_error_detail());
    cr_assert_eq(p.kind, AX_PATH_UNIQUE);
    cr_assert_eq(ax_ref_from_path(from, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}

/* Every seq message ever allocated (sent lazily, or decoded by a receiver)
 * was released. Call after the systems are destroyed. */
static void assert_seqs_released(void)
{
    cr_assert_eq(atomic_load(&seq_allocs), atomic_load(&seq_releases),
                 "seq messages: %llu allocated, %llu released", U(atomic_load(&seq_allocs)),
                 U(atomic_load(&seq_releases)));
}

static void assert_node_clean(nt_node_t *n, const char *who)
{
    cr_assert_eq(atomic_load(&n->bad), 0, "%s: %llu bad messages", who, U(atomic_load(&n->bad)));
    cr_assert_eq(atomic_load(&n->out_of_order), 0, "%s: %llu out of order", who,
                 U(atomic_load(&n->out_of_order)));
    cr_assert_eq(atomic_load(&n->gaps), 0, "%s: %llu gaps", who, U(atomic_load(&n->gaps)));
}

/* ---- jobs that send ------------------------------------------------------------ */

/*
 * Send seqs first .. first+count-1 to dst from the sender, each lazily or
 * eagerly as `pattern` says, as a job on the sender (flood()).
 *
 * An eager send that finds the sender's pool exhausted (AX_ENOBUFS:
 * nothing was sent) is retried in a later job, after the handler has
 * returned: the pool drains only when the dispatcher and the network
 * thread move its frames, and the dispatcher may need this very worker.
 * With retry_lazy, a lazy send that the dispatcher's queue refuses
 * (AX_ENOBUFS, network.dispatch_queue) is retried the same way.
 */
typedef enum send_pattern {
    SEND_LAZY,
    SEND_EAGER,
    SEND_MIXED, /* runs of random length of each kind */
} send_pattern_t;

typedef struct send_job {
    ax_ref_t dst;
    uint64_t first, count;
    send_pattern_t pattern;
    const ax_msg_type_t *type; /* NULL: seq_type; pad_type, pad_small_type: padded seqs */
    uint64_t pace;             /* 0, or a short pause after every pace sends */
    bool retry_lazy;           /* a lazy send refused with AX_ENOBUFS (the
                                  dispatcher's queue is full) is retried too */
    /* Progress, on the sender's thread. */
    uint64_t rng, i, paused_at;
    bool retrying, retry_eager, prev, pausing;
    sem_t finished;
    /* Results. */
    uint64_t lazy, eager, switches, failed;
    _Atomic uint64_t enobufs; /* sends refused for want of buffers, retried */
    ax_status_t first_failure;
} send_job_t;

static bool pick_eager(send_job_t *j)
{
    if (j->pattern != SEND_MIXED)
        return j->pattern == SEND_EAGER;
    /* xorshift64: runs of one kind have random lengths, so every boundary
     * (lazy then eager, eager then lazy, long and short runs) occurs. */
    j->rng ^= j->rng << 13;
    j->rng ^= j->rng >> 7;
    j->rng ^= j->rng << 17;
    return (j->rng >> 60) & 1u;
}

static ax_status_t send_one(ax_actor_t *self, send_job_t *j, uint64_t seq, bool eager);

static void send_job_step(ax_actor_t *self, void *arg);

/* Continue the job in a new message to self. */
static bool send_job_later(ax_actor_t *self, send_job_t *j)
{
    return axt_job_send(ax_self(self), send_job_step, j, NULL);
}

static void send_job_step(ax_actor_t *self, void *arg)
{
    send_job_t *j = arg;

    if (j->rng == 0)
        j->rng = 0x9e3779b97f4a7c15ull;
    if (j->retrying || j->pausing)
        axt_sleep_us(100); /* not a hot loop while the pool drains */
    j->pausing = false;
    for (; j->i < j->count; j->i++) {
        bool eager;
        ax_status_t st;

        if (j->pace > 0 && j->i > 0 && j->i % j->pace == 0 && j->paused_at != j->i) {
            /* A steady stream rather than one burst: continue later. */
            j->paused_at = j->i;
            j->pausing = true;
            if (send_job_later(self, j))
                return;
        }
        eager = j->retrying ? j->retry_eager : pick_eager(j);
        st = send_one(self, j, j->first + j->i, eager);

        j->retrying = false;
        if (st == AX_ENOBUFS && (eager || j->retry_lazy)) {
            atomic_fetch_add(&j->enobufs, 1);
            j->retrying = true;
            j->retry_eager = eager;
            if (send_job_later(self, j))
                return;
        }
        if (st != AX_OK) {
            if (j->failed++ == 0)
                j->first_failure = st;
            continue;
        }
        if (j->i > 0 && eager != j->prev)
            j->switches++;
        j->prev = eager;
        if (eager)
            j->eager++;
        else
            j->lazy++;
    }
    sem_post(&j->finished);
}

/* Start the job on the sender; flood_wait() waits for its end. */
static void flood_start(ax_ref_t sender, send_job_t *j)
{
    j->i = 0;
    j->retrying = false;
    j->pausing = false;
    j->paused_at = 0;
    sem_init(&j->finished, 0, 0);
    cr_assert(axt_job_send(sender, send_job_step, j, NULL));
}

static void flood_wait(send_job_t *j)
{
    cr_assert(axt_sem_wait(&j->finished, WAIT_S), "the sender did not finish: %llu of %llu sent",
              (unsigned long long)j->i, (unsigned long long)j->count);
    sem_destroy(&j->finished);
}

static void flood(ax_ref_t sender, send_job_t *j)
{
    flood_start(sender, j);
    flood_wait(j);
}

/* The usual two-system set-up: a sink named "sink" on `to`, an unnamed
 * sender on `from`, and one lazy message (seq 0) from the sender to the
 * sink, delivered, so the connection is up before the test begins.
 * Returns the sender's ref; *dst is the sink as `from` addresses it. */
static ax_ref_t connected_pair(ax_system_t *from, ax_system_t *to, nt_node_t *sender, nt_node_t *sink, ax_ref_t *dst)
{
    send_job_t first;
    ax_ref_t sender_ref;

    nt_node_setup(sink, NT_SINK);
    nt_spawn_node(to, sink, "sink");
    nt_node_setup(sender, NT_SINK);
    sender_ref = nt_spawn_node(from, sender, NULL);
    first = (send_job_t){.dst = remote_named(from, to, "sink"), .count = 1, .pattern = SEND_LAZY};
    flood(sender_ref, &first);
    WAIT_UNTIL(atomic_load(&sink->received) == 1, "the first message did not arrive");
    *dst = first.dst;
    return sender_ref;
}

/* ---- a padded seq: a seq and some bytes, for bigger frames ------------------- */

#define PAD_SER_ID (AX_SER_USER_MIN + 8)
#define PAD_LEN 1000
/* Small padded seqs: frames under the 256 bytes that the network thread
 * copies together for a write (small_frames_through_full_socket). */
#define PAD_SMALL_SER_ID (AX_SER_USER_MIN + 9)
#define PAD_SMALL_LEN 160

typedef struct pad_msg {
    ax_msg_t hdr;
    uint64_t seq;
} pad_msg_t;

static ax_status_t pad_pack(const ax_msg_t *m, msgpack_packer *pk, size_t len)
{
    unsigned char pad[PAD_LEN];

    /* The filler depends on the seq, so a receiver can tell a frame was
     * not mixed up with another. */
    memset(pad, (int)(((const pad_msg_t *)m)->seq & 0xffu), len);
    return msgpack_pack_array(pk, 2) == 0 && msgpack_pack_uint64(pk, ((const pad_msg_t *)m)->seq) == 0 &&
                   msgpack_pack_bin(pk, len) == 0 && msgpack_pack_bin_body(pk, pad, len) == 0
               ? AX_OK
               : AX_ENOBUFS;
}

/* Decoding keeps only the seq, after checking the filler. */
static ax_status_t pad_unpack(const msgpack_object *obj, size_t len, ax_msg_t **out)
{
    const msgpack_object *f = obj->via.array.ptr;
    ax_msg_t *m;

    if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 2 ||
        f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].type != MSGPACK_OBJECT_BIN ||
        f[1].via.bin.size != len)
        return AX_EPROTO;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)f[1].via.bin.ptr[i] != (f[0].via.u64 & 0xffu))
            return AX_EPROTO;
    m = seq_new(f[0].via.u64);
    if (m == NULL)
        return AX_ENOMEM;
    *out = m;
    return AX_OK;
}

static ax_status_t pad_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    return pad_pack(m, pk, PAD_LEN);
}

static ax_status_t pad_deserialise(const msgpack_object *obj, const ax_payload_t *payload, ax_msg_t **out)
{
    (void)payload;
    return pad_unpack(obj, PAD_LEN, out);
}

static ax_status_t pad_small_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    return pad_pack(m, pk, PAD_SMALL_LEN);
}

static ax_status_t pad_small_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                         ax_msg_t **out)
{
    (void)payload;
    return pad_unpack(obj, PAD_SMALL_LEN, out);
}

static const ax_msg_type_t pad_type = {
    .name = "test.padded-seq",
    .size = sizeof(pad_msg_t),
    .serialiser_id = PAD_SER_ID,
    .serialise = pad_serialise,
    .deserialise = pad_deserialise,
};

static const ax_msg_type_t pad_small_type = {
    .name = "test.small-padded-seq",
    .size = sizeof(pad_msg_t),
    .serialiser_id = PAD_SMALL_SER_ID,
    .serialise = pad_small_serialise,
    .deserialise = pad_small_deserialise,
};

static ax_status_t send_one(ax_actor_t *self, send_job_t *j, uint64_t seq, bool eager)
{
    pad_msg_t p;
    ax_msg_t *m;
    ax_status_t st;

    if (j->type == NULL)
        return seq_send(self, j->dst, seq, eager);
    if (eager) {
        ax_msg_init(&p.hdr, j->type);
        p.seq = seq;
        return ax_tell_serialised(self, j->dst, j->type, &p.hdr);
    }
    if ((st = ax_msg_alloc(j->type, &m)) != AX_OK)
        return st;
    ((pad_msg_t *)m)->seq = seq;
    st = ax_tell(j->dst, &m, ax_self(self));
    ax_msg_release(&m);
    return st;
}

/* A sink's handling of padded seqs (n->kept_type: pad_type or
 * pad_small_type): decode, track order, keep while held. */
static void pad_on_net(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_msg_t *m = NULL;

    (void)self;
    if (ax_net_msg_deserialise(*nm, n->kept_type, &m) != AX_OK) {
        atomic_fetch_add(&n->bad, 1);
        return;
    }
    nt_node_track(n, ((seq_msg_t *)m)->seq);
    ax_msg_release(&m);
    if (atomic_load(&n->hold))
        nt_node_keep(n, nm);
}

/* ---- ping-pong ------------------------------------------------------------------ */

#define ROUNDS 1000

static void pingpong(bool eager, bool named)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t ping, echo;
    ax_ref_t echo_ref, ping_ref;
    ax_net_stats_t sa, sb;

    nt_node_setup(&echo, NT_ECHO);
    echo.eager = eager;
    echo_ref = nt_spawn_node(b, &echo, named ? "pong" : NULL);
    nt_node_setup(&ping, NT_PING);
    ping.eager = eager;
    ping.rounds = ROUNDS;
    ping.peer = named ? remote_named(a, b, "pong") : remote_unique(a, echo_ref);
    ping_ref = nt_spawn_node(a, &ping, NULL);

    RUN_ON(ping_ref, nt_ping_start, NULL);
    cr_assert(axt_sem_wait(&ping.done, WAIT_S), "ping-pong stalled after %llu replies",
              U(atomic_load(&ping.received)));

    cr_assert_eq(atomic_load(&ping.received), ROUNDS);
    cr_assert_eq(atomic_load(&echo.received), ROUNDS);
    assert_node_clean(&ping, "ping");
    assert_node_clean(&echo, "echo");
    /* One connection carried both directions: the same session on both
     * sides, never changed. */
    cr_assert_neq(atomic_load(&ping.session), 0);
    cr_assert_eq(atomic_load(&ping.session), atomic_load(&echo.session));
    cr_assert_eq(atomic_load(&ping.session_changes), 0);
    cr_assert_eq(atomic_load(&echo.session_changes), 0);

    /* Each side wrote exactly its data frames, and the other acknowledged
     * every one of them (acks follow each read burst). */
    WAIT_UNTIL(nstats(a).acked == ROUNDS && nstats(b).acked == ROUNDS,
               "delivered: a %llu b %llu", U(nstats(a).acked), U(nstats(b).acked));
    sa = nstats(a);
    sb = nstats(b);
    cr_assert_eq(sa.frames_sent, ROUNDS);
    cr_assert_eq(sa.frames_received, ROUNDS);
    cr_assert_eq(sb.frames_sent, ROUNDS);
    cr_assert_eq(sb.frames_received, ROUNDS);
    cr_assert_eq(sa.dead_lettered + sb.dead_lettered, 0);
    cr_assert_eq(sa.malformed + sb.malformed, 0);
    cr_assert_eq(sa.connections, 1);
    cr_assert_eq(sb.connections, 1);
    cr_assert_eq(sa.reconnects + sb.reconnects, 0);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

Test(net, pingpong_lazy_named)
{
    pingpong(false, true);
}

Test(net, pingpong_lazy_unique)
{
    pingpong(false, false);
}

Test(net, pingpong_eager_named)
{
    pingpong(true, true);
}

Test(net, pingpong_eager_unique)
{
    pingpong(true, false);
}

/* ---- a 10 MB message -------------------------------------------------------------- */

#define BLOB_LEN ((size_t)10 << 20)

/* Bytes that differ from their neighbours at every scale, so a chunk
 * dropped, repeated or swapped anywhere in the message shows. */
static uint8_t blob_byte(size_t i)
{
    return (uint8_t)(((uint32_t)i * 0x9E3779B1u) >> 24);
}

/* A byte string sent under the built-in bytes serialiser id (the receiver
 * decodes it with ax_bytes_view_type), whose release is counted. */
typedef struct blob {
    ax_msg_t hdr;
    uint8_t *data;
    size_t len;
} blob_t;

static _Atomic uint64_t blob_releases;

static void blob_release(ax_msg_t *m)
{
    free(((blob_t *)m)->data);
    free(m);
    atomic_fetch_add(&blob_releases, 1);
}

static size_t blob_hint(const ax_msg_t *m)
{
    return ((const blob_t *)m)->len + 5;
}

static ax_status_t blob_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    const blob_t *b = (const blob_t *)m;

    return msgpack_pack_bin(pk, b->len) == 0 && msgpack_pack_bin_body(pk, b->data, b->len) == 0 ? AX_OK
                                                                                                : AX_ENOBUFS;
}

static const ax_msg_type_t blob_type = {
    .name = "test.blob",
    .size = sizeof(blob_t),
    .release = blob_release,
    .serialiser_id = AX_SER_BYTES,
    .size_hint = blob_hint,
    .serialise = blob_serialise,
};

static ax_msg_t *blob_new(void)
{
    ax_msg_t *m = NULL;
    blob_t *b;

    cr_assert_eq(ax_msg_alloc(&blob_type, &m), AX_OK);
    b = (blob_t *)m;
    b->data = malloc(BLOB_LEN);
    cr_assert_not_null(b->data);
    b->len = BLOB_LEN;
    for (size_t i = 0; i < BLOB_LEN; i++)
        b->data[i] = blob_byte(i);
    return m;
}

typedef struct blob_check {
    _Atomic uint64_t exact, wrong;
    size_t wrong_len, first_diff;
} blob_check_t;

/* nm's payload as a bytes view, held by *m (release it), or NULL. */
static const ax_bytes_msg_t *bytes_view(ax_net_msg_t *nm, ax_msg_t **m)
{
    return ax_net_msg_deserialise(nm, &ax_bytes_view_type, m) == AX_OK ? (const ax_bytes_msg_t *)*m : NULL;
}

static void blob_on_net(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    blob_check_t *c = n->ctx;
    ax_msg_t *m = NULL;
    const ax_bytes_msg_t *b = bytes_view(*nm, &m);
    size_t i = 0;

    (void)self;
    if (b == NULL) {
        atomic_fetch_add(&c->wrong, 1);
        return;
    }
    if (b->len == BLOB_LEN)
        while (i < BLOB_LEN && b->data[i] == blob_byte(i))
            i++;
    if (b->len == BLOB_LEN && i == BLOB_LEN) {
        atomic_fetch_add(&c->exact, 1);
    } else {
        c->wrong_len = b->len;
        c->first_diff = i;
        atomic_fetch_add(&c->wrong, 1);
    }
    ax_msg_release(&m);
}

typedef struct blob_send {
    ax_ref_t dst;
    ax_msg_t *blob;
    ax_status_t st;
} blob_send_t;

static void blob_send_eager(ax_actor_t *self, void *arg)
{
    blob_send_t *s = arg;

    s->st = ax_tell_serialised(self, s->dst, &blob_type, s->blob);
}

/* A sink named `name` on b that hands each NetMessage to on_net with ctx,
 * and an unnamed sender on a. Returns the sender's ref; *dst is the sink
 * as a addresses it, *sink_ref (if not NULL) its ref on b. */
static ax_ref_t sink_and_sender(ax_system_t *a, ax_system_t *b, const char *name, nt_node_t *sink,
                                void (*on_net)(nt_node_t *, ax_actor_t *, ax_net_msg_t **), void *ctx,
                                nt_node_t *sender, ax_ref_t *dst, ax_ref_t *sink_ref)
{
    ax_ref_t ref, sender_ref;

    nt_node_setup(sink, NT_SINK);
    sink->on_net = on_net;
    sink->ctx = ctx;
    ref = nt_spawn_node(b, sink, name);
    if (sink_ref != NULL)
        *sink_ref = ref;
    nt_node_setup(sender, NT_SINK);
    sender_ref = nt_spawn_node(a, sender, NULL);
    *dst = remote_named(a, b, name);
    return sender_ref;
}

static void big_message(bool eager)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sink, sender;
    blob_check_t check = {0};
    blob_send_t send = {0};
    ax_buffer_pool_stats_t ps = {0};
    ax_ref_t sender_ref;
    ax_msg_t *m;

    sender_ref = sink_and_sender(a, b, "sink", &sink, blob_on_net, &check, &sender, &send.dst, NULL);

    m = blob_new();
    if (eager) {
        /* Serialised now, into the sender's own pool, as a chain of leases
         * across its 128 KiB chunks; the caller keeps the message. */
        send.blob = m;
        RUN_ON(sender_ref, blob_send_eager, &send);
        cr_assert_eq(send.st, AX_OK, "tell_serialised: %s", ax_status_name(send.st));
    } else {
        /* The dispatcher serialises it and releases it. */
        cr_assert_eq(ax_tell(send.dst, &m, AX_REF_NULL), AX_OK);
        cr_assert_null(m);
    }
    WAIT_UNTIL(atomic_load(&sink.received) >= 1, "the 10 MB message did not arrive");
    cr_assert_eq(atomic_load(&check.wrong), 0, "received %zu bytes, first difference at byte %zu",
                 check.wrong_len, check.first_diff);
    cr_assert_eq(atomic_load(&check.exact), 1);
    WAIT_UNTIL(nstats(a).acked == 1, "the peer did not acknowledge the 10 MB frame");
    cr_assert_eq(nstats(b).frames_received, 1);
    cr_assert_gt(nstats(b).bytes_received, BLOB_LEN);
    if (eager) {
        /* Every slice was released once written: the sender's chunks are
         * all reusable again (only the one it writes into stays active). */
        ax_msg_release(&send.blob);
        WAIT_UNTIL(axt_buffer_stats(sender_ref, &ps) == AX_OK && ps.chunks_leased == 0,
                   "sender pool: %zu chunks still leased", ps.chunks_leased);
        cr_assert_geq(ps.chunks_allocated, BLOB_LEN / (128 * 1024));
        cr_assert_eq(ps.exhausted, 0);
    }
    /* Lazy: the message left as bytes; the dispatcher released it (it may
     * finish doing so just after the bytes arrive). */
    WAIT_UNTIL(atomic_load(&blob_releases) == 1, "the blob was not released");
    cr_assert_eq(atomic_load(&sink.received), 1);

    axt_destroy(&a);
    axt_destroy(&b);
}

Test(net, ten_mb_lazy)
{
    big_message(false);
}

Test(net, ten_mb_eager)
{
    big_message(true);
}

/* ---- 100,000 messages in order, lazy and eager mixed ---------------------------- */

Test(net, fifo_mixed_lazy_eager)
{
    const uint64_t n = axt_scaled(100000);
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sink, sender;
    send_job_t job = {0};
    ax_ref_t sender_ref, dst;
    ax_net_stats_t sa;

    /* One message first: the connection is up before the flood, so none
     * waits in the bounded queue of a connecting peer. */
    sender_ref = connected_pair(a, b, &sender, &sink, &dst);

    job = (send_job_t){.dst = dst, .first = 1, .count = n, .pattern = SEND_MIXED};
    flood(sender_ref, &job);
    cr_assert_eq(job.failed, 0, "%llu sends failed, first with %s", U(job.failed),
                 ax_status_name(job.first_failure));
    cr_assert_gt(job.lazy, 0);
    cr_assert_gt(job.eager, 0);
    cr_assert_gt(job.switches, n / 100, "only %llu switches between lazy and eager", U(job.switches));

    WAIT_UNTIL(atomic_load(&sink.received) == n + 1, "received %llu of %llu",
               U(atomic_load(&sink.received)), U(n + 1));
    assert_node_clean(&sink, "sink");
    cr_assert_eq(sink.next, n + 1, "the last seq was not the last one sent");
    WAIT_UNTIL(nstats(a).acked == n + 1, "delivered %llu of %llu", U(nstats(a).acked), U(n + 1));
    sa = nstats(a);
    cr_assert_eq(sa.frames_sent, n + 1);
    cr_assert_eq(sa.dead_lettered, 0);
    cr_assert_eq(nstats(b).frames_received, n + 1);
    cr_assert_eq(atomic_load(&sink.session_changes), 0);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* ---- every frame's envelope is its own ------------------------------------------ */

/*
 * A sender keeps the last envelope it packed and copies it into the next
 * frame with the same receiver, sender and type (actor/serialised.c,
 * envelope_for). Two senders on one system send to two receivers on
 * another, with two types, lazily and eagerly, switching receiver and
 * type from one message to the next, at the same time: each message
 * must reach its own receiver, name its own sender, carry its own
 * serialiser id, and keep its order per sender and receiver.
 */
#define ENDS_SER_ID2 (AX_SER_USER_MIN + 17)
#define ENDS_PER_SENDER 3000

static const ax_msg_type_t seq2_type = {
    .name = "test.seq2",
    .size = sizeof(seq_msg_t),
    .release = seq_release,
    .serialiser_id = ENDS_SER_ID2,
    .serialise = seq_serialise,
    .deserialise = seq_deserialise,
};

/* A message's seq: (i << 3) | (second type << 2) | (sender << 1) | receiver. */
typedef struct ends_check {
    ax_path_t senders[2];      /* as the receivers' system sees them */
    uint64_t next[2][2];       /* [sender][receiver]: the i expected next */
    _Atomic uint64_t warm, received, wrong_receiver, wrong_sender, wrong_type, out_of_order, bad;
} ends_check_t;

/* The seq of the one message that opens the connection first, so that
 * none of the test's waits in the bounded queue of a connecting peer. */
#define ENDS_WARM UINT64_MAX

typedef struct ends_job {
    ax_ref_t dst[2];
    unsigned sender;
    uint64_t i, sent[2]; /* the sender's own progress */
    _Atomic uint64_t failed;
    sem_t done;
} ends_job_t;

static void ends_on_net(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    ends_check_t *c = n->ctx;
    unsigned receiver = n->rounds; /* this node's index, set by the test */
    uint64_t ser = ax_net_msg_serialiser(*nm), seq;
    ax_msg_t *m = NULL;
    ax_path_t from;
    unsigned sender;

    (void)self;
    if (ax_net_msg_deserialise(*nm, ser == ENDS_SER_ID2 ? &seq2_type : &seq_type, &m) != AX_OK) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    seq = ((seq_msg_t *)m)->seq;
    ax_msg_release(&m);
    if (seq == ENDS_WARM) {
        atomic_fetch_add(&c->warm, 1);
        return;
    }
    sender = (unsigned)(seq >> 1) & 1u;
    if ((seq & 1u) != receiver)
        atomic_fetch_add(&c->wrong_receiver, 1);
    if (((seq >> 2) & 1u) != (ser == ENDS_SER_ID2))
        atomic_fetch_add(&c->wrong_type, 1);
    if (ax_net_msg_sender_path(*nm, &from) != AX_OK || ax_path_cmp(&from, &c->senders[sender]) != 0)
        atomic_fetch_add(&c->wrong_sender, 1);
    /* Only this receiver's handler touches next[.][receiver]. */
    if (seq >> 3 != c->next[sender][receiver])
        atomic_fetch_add(&c->out_of_order, 1);
    c->next[sender][receiver] = (seq >> 3) + 1;
    atomic_fetch_add(&c->received, 1);
}

static ax_status_t ends_send(ax_actor_t *self, ax_ref_t dst, const ax_msg_type_t *type, uint64_t seq, bool eager)
{
    ax_msg_t *m = NULL;
    ax_status_t st;

    if (eager) {
        seq_msg_t sm;

        ax_msg_init(&sm.hdr, type);
        sm.seq = seq;
        return ax_tell_serialised(self, dst, type, &sm.hdr);
    }
    if ((st = ax_msg_alloc(type, &m)) != AX_OK)
        return st;
    atomic_fetch_add(&seq_allocs, 1); /* seq_release counts it back */
    ((seq_msg_t *)m)->seq = seq;
    st = ax_tell(dst, &m, ax_self(self));
    ax_msg_release(&m); /* NULL unless the tell failed */
    return st;
}

/* In the first half message i goes to receiver i % 2 (every 4th pair to
 * the same twice), as type i / 3 % 2, eagerly every 5th; in the second
 * half all go lazily to receiver 0 as the first type, so that only the
 * sender tells the two senders' envelopes apart. 40 a handler run, so
 * that the two senders' lazy sends take turns in the dispatcher. */
static void ends_warm_up(ax_actor_t *self, void *arg)
{
    ends_job_t *j = arg;

    if (ends_send(self, j->dst[0], &seq_type, ENDS_WARM, false) != AX_OK)
        atomic_fetch_add(&j->failed, 1);
}

static void ends_job_run(ax_actor_t *self, void *arg)
{
    ends_job_t *j = arg;

    for (uint64_t end = j->i + 40; j->i < end && j->i < ENDS_PER_SENDER; j->i++) {
        uint64_t i = j->i;
        bool mixed = i < ENDS_PER_SENDER / 2;
        unsigned r = mixed ? (unsigned)((i % 8 == 7 ? i - 1 : i) % 2) : 0;
        unsigned second = mixed ? (unsigned)(i / 3 % 2) : 0;
        uint64_t seq = (j->sent[r]++ << 3) | (second << 2) | (j->sender << 1) | r;

        if (ends_send(self, j->dst[r], second ? &seq2_type : &seq_type, seq, mixed && i % 5 == 4) != AX_OK)
            atomic_fetch_add(&j->failed, 1);
    }
    if (j->i < ENDS_PER_SENDER && axt_job_send(ax_self(self), ends_job_run, j, NULL))
        return;
    sem_post(&j->done); /* all sent, or the next run could not be asked for */
}

Test(net, each_frame_carries_its_own_receiver_sender_and_type)
{
    ax_system_t *a = net_system(), *b = net_system();
    static ends_check_t check;
    nt_node_t rx[2], tx[2];
    ends_job_t jobs[2];
    ax_ref_t tx_ref[2];
    const char *names[2] = {"ends-0", "ends-1"};

    memset(&check, 0, sizeof check);
    for (unsigned k = 0; k < 2; k++) {
        nt_node_setup(&rx[k], NT_SINK);
        rx[k].on_net = ends_on_net;
        rx[k].ctx = &check;
        rx[k].rounds = k; /* the receiver's index, for ends_on_net */
        nt_spawn_node(b, &rx[k], names[k]);
        nt_node_setup(&tx[k], NT_SINK);
        tx_ref[k] = nt_spawn_node(a, &tx[k], NULL);
        cr_assert_eq(ax_ref_path(tx_ref[k], &check.senders[k]), AX_OK, "ref_path: %s", ax_error_detail());
    }
    for (unsigned k = 0; k < 2; k++) {
        jobs[k] = (ends_job_t){.dst = {remote_named(a, b, names[0]), remote_named(a, b, names[1])}, .sender = k};
        sem_init(&jobs[k].done, 0, 0);
    }
    cr_assert(axt_job_send(tx_ref[0], ends_warm_up, &jobs[0], NULL));
    WAIT_UNTIL(atomic_load(&check.warm) == 1, "the first message did not arrive");
    for (unsigned k = 0; k < 2; k++)
        cr_assert(axt_job_send(tx_ref[k], ends_job_run, &jobs[k], NULL));
    for (unsigned k = 0; k < 2; k++) {
        cr_assert(axt_sem_wait(&jobs[k].done, WAIT_S), "sender %u did not finish", k);
        cr_assert_eq(jobs[k].i, ENDS_PER_SENDER, "sender %u stopped at %llu", k, U(jobs[k].i));
        cr_assert_eq(atomic_load(&jobs[k].failed), 0, "sender %u: %llu sends failed", k,
                     U(atomic_load(&jobs[k].failed)));
        sem_destroy(&jobs[k].done);
    }
    WAIT_UNTIL(atomic_load(&check.received) == 2 * ENDS_PER_SENDER, "received %llu of %d (%llu dead letters)",
               U(atomic_load(&check.received)), 2 * ENDS_PER_SENDER, U(nstats(a).dead_lettered));
    cr_assert_eq(atomic_load(&check.bad), 0, "%llu did not decode", U(atomic_load(&check.bad)));
    cr_assert_eq(atomic_load(&check.wrong_receiver), 0, "%llu at the other receiver",
                 U(atomic_load(&check.wrong_receiver)));
    cr_assert_eq(atomic_load(&check.wrong_sender), 0, "%llu named the other sender",
                 U(atomic_load(&check.wrong_sender)));
    cr_assert_eq(atomic_load(&check.wrong_type), 0, "%llu with the other type's id",
                 U(atomic_load(&check.wrong_type)));
    cr_assert_eq(atomic_load(&check.out_of_order), 0, "%llu out of order",
                 U(atomic_load(&check.out_of_order)));
    for (unsigned k = 0; k < 2; k++)
        cr_assert_eq(atomic_load(&rx[k].bad), 0);
    cr_assert_eq(nstats(a).dead_lettered, 0);
    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* Once b has paused reading: wait (up to WAIT_S) until a's frames written
 * (and, with dead, its dead letters) have stood still for half a second,
 * and return that count. */
static uint64_t wait_still(ax_system_t *a, ax_system_t *b, bool dead)
{
    uint64_t sent = 0, seen = UINT64_MAX;
    double end = axt_now() + WAIT_S, still_since = 0;

    while (axt_now() < end) {
        sent = nstats(a).frames_sent + (dead ? nstats(a).dead_lettered : 0);
        if (sent != seen) {
            seen = sent;
            still_since = axt_now();
        } else if (axt_now() - still_since > 0.5 && nstats(b).read_pauses > 0) {
            break;
        }
        axt_sleep_us(1000);
    }
    return sent;
}

/* ---- large bodies lent to their frames -------------------------------------------- */

/*
 * A lazy send's body of at least AX__FRAME_LEND_MIN bytes is written from
 * the message itself (serial/frame.h), which the frame then keeps until
 * it is written. Bodies either side of the threshold, sent lazily with a
 * bytes type of the user's (ax_bytes_type's serialiser, its own reset),
 * arrive whole and in order, and every message is released exactly once.
 */
#define LENT_N 240

static _Atomic uint64_t lent_resets;
static ax_msg_type_t lent_type;

static void lent_reset(ax_msg_t *m)
{
    atomic_fetch_add(&lent_resets, 1);
    ax_bytes_type.reset(m); /* frees `owned`, the body */
}

static size_t lent_size(uint64_t i)
{
    static const size_t sizes[] = {AX__FRAME_LEND_MIN - 1, AX__FRAME_LEND_MIN, 65536, 100003, 24};

    return sizes[i % 5];
}

/* Body i: i in its first 8 bytes, then byte k is (uint8_t)(i * 31 + k). */
typedef struct lent_check {
    size_t size;   /* every body's, or 0 for lent_size's mix */
    uint64_t next; /* the i expected next */
    _Atomic uint64_t received, bad, gaps;
} lent_check_t;

static void lent_on_net(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    lent_check_t *c = n->ctx;
    ax_msg_t *m = NULL;
    const ax_bytes_msg_t *b = bytes_view(*nm, &m);
    uint64_t i = 0;
    bool ok;

    (void)self;
    if (b == NULL) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    ok = b->len >= sizeof i;
    if (ok)
        memcpy(&i, b->data, sizeof i);
    ok = ok && i >= c->next && b->len == (c->size != 0 ? c->size : lent_size(i));
    for (size_t k = sizeof i; ok && k < b->len; k++)
        ok = b->data[k] == (uint8_t)(i * 31 + k);
    if (!ok) {
        atomic_fetch_add(&c->bad, 1);
    } else {
        if (i > c->next)
            atomic_fetch_add(&c->gaps, i - c->next);
        c->next = i + 1;
    }
    atomic_fetch_add(&c->received, 1);
    ax_msg_release(&m);
    if (atomic_load(&n->hold))
        nt_node_keep(n, nm);
}

typedef struct lent_job {
    ax_ref_t dst;
    uint64_t count;
    size_t size; /* every body's, or 0 for lent_size's mix */
    _Atomic uint64_t failed;
    sem_t done;
} lent_job_t;

static void lent_send_all(ax_actor_t *self, void *arg)
{
    lent_job_t *j = arg;

    for (uint64_t i = 0; i < j->count; i++) {
        ax_msg_t *m = NULL;
        ax_bytes_msg_t *b;
        size_t size = j->size != 0 ? j->size : lent_size(i);
        uint8_t *body = malloc(size);

        if (body == NULL || ax_msg_alloc(&lent_type, &m) != AX_OK) {
            free(body);
            atomic_fetch_add(&j->failed, 1);
            continue;
        }
        for (size_t k = sizeof i; k < size; k++)
            body[k] = (uint8_t)(i * 31 + k);
        memcpy(body, &i, sizeof i);
        b = (ax_bytes_msg_t *)m;
        b->data = body;
        b->len = size;
        b->owned = body; /* freed by the reset, whenever the runtime releases it */
        if (ax_tell(j->dst, &m, ax_self(self)) != AX_OK)
            atomic_fetch_add(&j->failed, 1);
        ax_msg_release(&m); /* NULL when sent */
    }
    sem_post(&j->done);
}

static void lent_type_init(void)
{
    lent_type = ax_bytes_type;
    lent_type.name = "test.lent-bytes";
    lent_type.reset = lent_reset;
    atomic_store(&lent_resets, 0);
}

Test(net, large_lazy_bodies_arrive_whole_and_each_message_is_released_once)
{
    ax_system_t *a = net_system(), *b = net_system();
    static lent_check_t check;
    nt_node_t rx, tx;
    lent_job_t job = {.count = LENT_N};
    ax_ref_t tx_ref;

    lent_type_init();
    memset(&check, 0, sizeof check);
    tx_ref = sink_and_sender(a, b, "lent-sink", &rx, lent_on_net, &check, &tx, &job.dst, NULL);
    sem_init(&job.done, 0, 0);
    cr_assert(axt_job_send(tx_ref, lent_send_all, &job, NULL));
    cr_assert(axt_sem_wait(&job.done, WAIT_S), "the sender did not finish");
    cr_assert_eq(atomic_load(&job.failed), 0, "%llu sends failed", U(atomic_load(&job.failed)));
    WAIT_UNTIL(atomic_load(&check.received) == LENT_N, "received %llu of %d (%llu dead letters)",
               U(atomic_load(&check.received)), LENT_N, U(nstats(a).dead_lettered));
    cr_assert_eq(atomic_load(&check.bad), 0, "%llu arrived damaged or out of order", U(atomic_load(&check.bad)));
    cr_assert_eq(atomic_load(&check.gaps), 0, "%llu never arrived", U(atomic_load(&check.gaps)));
    cr_assert_eq(atomic_load(&rx.bad), 0);
    /* Every frame was written, so every message went back, once. */
    WAIT_UNTIL(atomic_load(&lent_resets) == LENT_N, "%llu of %d messages released",
               U(atomic_load(&lent_resets)), LENT_N);
    cr_assert_eq(nstats(a).dead_lettered, 0);
    sem_destroy(&job.done);
    axt_destroy(&a);
    axt_destroy(&b);
    cr_assert_eq(atomic_load(&lent_resets), LENT_N, "released %llu times", U(atomic_load(&lent_resets)));
}

/*
 * Lent bodies are outside the dispatcher's pool, whose limit is what
 * stops a lazy flood to a peer that does not read (its sends are then
 * dead-lettered with AX_ENOBUFS). So lending stops at that limit, and the
 * messages a flood holds stay bounded by it: with a pool of four 64 KiB
 * chunks, 64 KiB bodies to a peer that holds everything it receives, at
 * most a pool's worth stays lent, however many are sent. Once the peer
 * lets go, each message was delivered or dead-lettered, never both, and
 * every one was released.
 */
Test(net, lent_bodies_hold_no_more_than_the_dispatcher_pool_would)
{
    const uint64_t n = 400; /* 26 MB: more than loopback's buffers take */
    ax_config_t ca = net_config(), cb = net_config();
    ax_system_t *a, *b;
    static lent_check_t check;
    nt_node_t rx, tx;
    lent_job_t job = {.count = 1, .size = 65536};
    ax_ref_t tx_ref, rx_ref;
    uint64_t held_msgs, dead;

    lent_type_init();
    memset(&check, 0, sizeof check);
    check.size = 65536;
    ca.network.buffer_config =
        (ax_buffer_config_t){.chunk_size = 65536, .initial_chunk_count = 1, .max_chunk_count = 4,
                             .encode_buf_min_free_space = 64};
    cb.network.buffer_config =
        (ax_buffer_config_t){.chunk_size = 131072, .initial_chunk_count = 1, .max_chunk_count = 4,
                             .encode_buf_min_free_space = 64};
    a = net_system_with(&ca);
    b = net_system_with(&cb);
    tx_ref = sink_and_sender(a, b, "lent-sink", &rx, lent_on_net, &check, &tx, &job.dst, &rx_ref);
    sem_init(&job.done, 0, 0);
    cr_assert(axt_job_send(tx_ref, lent_send_all, &job, NULL)); /* the connection, first */
    cr_assert(axt_sem_wait(&job.done, WAIT_S));
    WAIT_UNTIL(atomic_load(&check.received) == 1, "the first message did not arrive");
    atomic_store(&rx.hold, true);

    job.count = n;
    check.next = 0; /* the flood's bodies count from 0 again */
    cr_assert(axt_job_send(tx_ref, lent_send_all, &job, NULL));
    cr_assert(axt_sem_wait(&job.done, WAIT_S), "the sender did not finish");
    /* The receiver stops reading; wait until nothing more is written. */
    wait_still(a, b, true);
    held_msgs = 1 + n - atomic_load(&lent_resets) - atomic_load(&job.failed);
    dead = nstats(a).dead_lettered;
    cr_log_info("while held: %llu messages unreleased, %llu frames written, %llu dead letters, %llu refused",
                U(held_msgs), U(nstats(a).frames_sent), U(dead), U(atomic_load(&job.failed)));
    cr_assert_gt(nstats(b).read_pauses, 0, "the receiver never paused reading");
    cr_assert_gt(dead + atomic_load(&job.failed), 0, "nothing pushed back on the flood");
    /* What the sink holds was written, so released: the rest are lent
     * (at most the pool's 256 KiB, one over when two pass together). */
    cr_assert_leq(held_msgs, 5, "%llu messages of 64 KiB held by frames", U(held_msgs));

    RUN_ON(rx_ref, nt_node_release_all, NULL);
    WAIT_UNTIL(atomic_load(&check.received) + nstats(a).dead_lettered + atomic_load(&job.failed) == 1 + n,
               "received %llu + dead-lettered %llu + refused %llu of %llu", U(atomic_load(&check.received)),
               U(nstats(a).dead_lettered), U(atomic_load(&job.failed)), U(1 + n));
    WAIT_UNTIL(atomic_load(&lent_resets) == 1 + n - atomic_load(&job.failed), "%llu released",
               U(atomic_load(&lent_resets)));
    cr_assert_eq(atomic_load(&check.bad), 0, "%llu arrived damaged", U(atomic_load(&check.bad)));
    sem_destroy(&job.done);
    axt_destroy(&a);
    axt_destroy(&b);
}

/* ---- remote sends from init, hooks and handlers ---------------------------------- */

/*
 * An actor's remote sends wait in a chain on their thread and leave in one
 * push when the code that made them returns (ax__tell_deferred,
 * actor/net.h). Sends from init, which runs on the spawning thread (the
 * test's own, which runs no handler afterwards), from on_start (more than
 * a chain holds, lazy and eager mixed), from a handler and from on_stop
 * all arrive, each once and in order.
 */
#define HOOK_INIT_SENDS 3
#define HOOK_START_SENDS 40
#define HOOK_HANDLER_SENDS 20
#define HOOK_TOTAL (HOOK_INIT_SENDS + HOOK_START_SENDS + HOOK_HANDLER_SENDS + 1)

typedef struct hook_sender {
    ax_actor_t actor;
    ax_ref_t dst;
    uint64_t next;
} hook_sender_t;

static _Atomic uint64_t hook_failures;

/* count seqs from h->next on; every third eager unless lazy_only. */
static void hook_send(hook_sender_t *h, uint64_t count, bool lazy_only)
{
    for (uint64_t i = 0; i < count; i++, h->next++)
        if (seq_send(&h->actor, h->dst, h->next, !lazy_only && h->next % 3 == 0) != AX_OK)
            atomic_fetch_add(&hook_failures, 1);
}

static ax_status_t hook_init(ax_actor_t *self, void *arg)
{
    hook_sender_t *h = (hook_sender_t *)self;

    h->dst = *(const ax_ref_t *)arg;
    h->next = 0; /* the sink expects 0 first */
    hook_send(h, HOOK_INIT_SENDS, true);
    return AX_OK;
}

static void hook_start(ax_actor_t *self)
{
    hook_send((hook_sender_t *)self, HOOK_START_SENDS, false);
}

static ax_status_t hook_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg; /* a poke; the runtime releases it */
    hook_send((hook_sender_t *)self, HOOK_HANDLER_SENDS, false);
    return AX_OK;
}

static void hook_stop(ax_actor_t *self)
{
    hook_send((hook_sender_t *)self, 1, false);
}

static const ax_actor_vtable_t hook_sender_vtable = {
    .name = "test.hook-sender",
    .size = sizeof(hook_sender_t),
    .init = hook_init,
    .on_start = hook_start,
    .receive_local = hook_receive,
    .on_stop = hook_stop,
};

Test(net, remote_sends_from_init_hooks_and_handlers_arrive_in_order)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sink;
    ax_ref_t dst = nt_sink_on(b, a, &sink), h;
    ax_msg_t *poke;

    atomic_store(&hook_failures, 0);
    cr_assert_eq(ax_spawn(a, &hook_sender_vtable, &dst, &h), AX_OK, "spawn: %s", ax_error_detail());
    WAIT_UNTIL(atomic_load(&sink.received) == HOOK_INIT_SENDS + HOOK_START_SENDS,
               "received %llu of init's and on_start's %d", U(atomic_load(&sink.received)),
               HOOK_INIT_SENDS + HOOK_START_SENDS);
    poke = seq_new(0);
    cr_assert_eq(ax_tell(h, &poke, AX_REF_NULL), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == HOOK_TOTAL - 1, "received %llu of %d before the stop",
               U(atomic_load(&sink.received)), HOOK_TOTAL - 1);
    cr_assert_eq(ax_stop(h), AX_OK);
    WAIT_UNTIL(atomic_load(&sink.received) == HOOK_TOTAL, "received %llu of %d",
               U(atomic_load(&sink.received)), HOOK_TOTAL);
    assert_node_clean(&sink, "sink");
    cr_assert_eq(sink.next, HOOK_TOTAL, "the last seq was not on_stop's");
    cr_assert_eq(atomic_load(&hook_failures), 0);
    WAIT_UNTIL(nstats(a).acked == HOOK_TOTAL, "delivered %llu of %d", U(nstats(a).acked), HOOK_TOTAL);
    cr_assert_eq(nstats(a).dead_lettered, 0);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* ---- a sink that holds what it receives ------------------------------------------ */

/* After a flood of total seqs (the warm-up's seq 0 included) whose job has
 * ended: none failed, the sink got each once and in order, and a saw
 * every one acknowledged and none dead-lettered. */
static void assert_all_delivered(ax_system_t *a, nt_node_t *sink, const send_job_t *job, uint64_t total)
{
    cr_assert_eq(job->failed, 0, "%llu sends failed, first with %s", U(job->failed),
                 ax_status_name(job->first_failure));
    WAIT_UNTIL(atomic_load(&sink->received) == total, "received %llu of %llu",
               U(atomic_load(&sink->received)), U(total));
    assert_node_clean(sink, "sink");
    cr_assert_eq(sink->next, total, "the last seq was not the last one sent");
    WAIT_UNTIL(nstats(a).acked == total, "delivered %llu of %llu", U(nstats(a).acked), U(total));
    cr_assert_eq(nstats(a).dead_lettered, 0);
}

/* A pool of four 4 KiB chunks: a receiver with it stops reading once a
 * holding sink keeps a few dozen frames. */
static const ax_buffer_config_t tiny_pool = {
    .chunk_size = 4096, .initial_chunk_count = 1, .max_chunk_count = 4, .encode_buf_min_free_space = 64};

/*
 * A sink named "sink" on b that decodes padded seqs of `type` and, once
 * the first one (seq 0, from an unnamed sender on a) has arrived, keeps
 * every NetMessage until nt_node_release_all: each pins its receive
 * chunk, so a small receive pool soon stops the reading. Returns the
 * sender's ref; *sink_ref is the sink's, *dst the sink as a addresses it.
 */
static ax_ref_t holding_pair(ax_system_t *a, ax_system_t *b, nt_node_t *sender, nt_node_t *sink,
                             const ax_msg_type_t *type, ax_ref_t *sink_ref, ax_ref_t *dst)
{
    send_job_t warm;
    ax_ref_t sender_ref;

    nt_node_setup(sink, NT_SINK);
    sink->on_net = pad_on_net;
    sink->kept_type = type;
    *sink_ref = nt_spawn_node(b, sink, "sink");
    nt_node_setup(sender, NT_SINK);
    sender_ref = nt_spawn_node(a, sender, NULL);
    warm = (send_job_t){.dst = remote_named(a, b, "sink"), .count = 1, .pattern = SEND_LAZY, .type = type};
    flood(sender_ref, &warm);
    WAIT_UNTIL(atomic_load(&sink->received) == 1, "the first message did not arrive");
    atomic_store(&sink->hold, true);
    *dst = warm.dst;
    return sender_ref;
}

/* ---- small frames through a full socket ----------------------------------------- */

/*
 * Frames of up to 256 bytes are copied together into one slice per write
 * (dispatch/NOTES.md, "Coalesced small frames"), and a write that the
 * socket takes only in part leaves them to be copied again. The sink holds
 * its NetMessages, so the receiver stops reading and the socket fills: the
 * sender's writes end part-way through its staged runs, many times over.
 * Once the sink lets go, every seq arrives once, in order, and undamaged
 * (a damaged frame would fail to decode or end the connection). Not
 * scaled: the volume is what fills loopback's buffers.
 */
Test(net, small_frames_through_full_socket)
{
    const uint64_t n = 100000; /* about 20 MB: more than loopback's buffers take */
    ax_config_t ca = net_config(), cb = net_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    send_job_t job;
    ax_ref_t sender_ref, sink_ref, dst;
    uint64_t sent;

    cb.network.buffer_config = tiny_pool;
    a = net_system_with(&ca);
    b = net_system_with(&cb);
    sender_ref = holding_pair(a, b, &sender, &sink, &pad_small_type, &sink_ref, &dst);

    /* Lazy sends only (each frame about 190 bytes); a send the
     * dispatcher's queue refuses is retried. */
    job = (send_job_t){.dst = dst, .first = 1, .count = n, .pattern = SEND_LAZY, .type = &pad_small_type,
                       .retry_lazy = true};
    flood_start(sender_ref, &job);
    /* The receiver stops reading once the sink holds its pool; the sender
     * then writes until the socket is full. Wait for the receiver to have
     * paused and for the written frames to stand still for half a second
     * short of the flood (a stall of the sender alone, on a loaded
     * machine, is not the end). */
    sent = wait_still(a, b, false);
    cr_log_info("while held: sender wrote %llu of %llu frames, sink kept %llu, receiver paused %llu times",
                U(sent), U(n + 1), U(atomic_load(&sink.held)), U(nstats(b).read_pauses));
    cr_assert_gt(nstats(b).read_pauses, 0, "the receiver never paused reading");
    cr_assert_lt(sent, n + 1, "every frame was written while the peer held: the socket never filled");

    RUN_ON(sink_ref, nt_node_release_all, NULL);
    flood_wait(&job);
    assert_all_delivered(a, &sink, &job, n + 1);
    cr_assert_eq(nstats(b).malformed, 0);
    cr_assert_eq(nstats(b).frames_received, n + 1);
    cr_assert_eq(atomic_load(&sink.session_changes), 0, "the connection was replaced");

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* ---- receive-pool exhaustion ------------------------------------------------------ */

/*
 * The receiver's network pool is 4 chunks of 4 KiB, and its sink keeps
 * every NetMessage (each pins its chunk) until told to let go. The network
 * thread must stop reading rather than drop or abort; the sender, whose
 * own pool is small too, must feel it; and once the sink lets go,
 * everything arrives, in order.
 *
 * The flood (about 20 MB) is far more than loopback's socket buffers can
 * absorb, so while the sink holds, the sender's frames queue behind a full
 * socket and pin its pool: its eager sends are refused with AX_ENOBUFS
 * (and wait, in the job, until the pool drains). Not scaled: the volume
 * is what makes the backpressure reach the sender.
 */
Test(net, receive_pool_exhaustion)
{
    const uint64_t n = 20000;
    ax_config_t ca = net_config(), cb = net_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    send_job_t job;
    ax_ref_t sender_ref, sink_ref, dst;
    ax_net_stats_t sa, sb;
    ax_buffer_pool_stats_t ps;
    bool finished = false;
    double end;
    uint64_t held;

    cb.network.buffer_config = tiny_pool;
    /* The sender's own pool (tell_serialised) is small as well: 16 x 4 KiB. */
    ca.buffer_config = tiny_pool;
    ca.buffer_config.max_chunk_count = 16;
    a = net_system_with(&ca);
    b = net_system_with(&cb);

    sender_ref = holding_pair(a, b, &sender, &sink, &pad_type, &sink_ref, &dst);

    /* The flood runs as a job on the sender while this thread watches. */
    job = (send_job_t){.dst = dst, .first = 1, .count = n, .pattern = SEND_MIXED, .type = &pad_type};
    flood_start(sender_ref, &job);

    /* The receiver runs out of buffers and stops reading; the sender's
     * pool runs out behind it. Stop watching early if the flood is all
     * out: that is a failure below. */
    end = axt_now() + WAIT_S;
    while ((nstats(b).read_pauses == 0 || atomic_load(&job.enobufs) == 0) && !finished && axt_now() < end) {
        finished = sem_trywait(&job.finished) == 0;
        axt_sleep_us(1000);
    }
    held = atomic_load(&sink.held);
    sa = nstats(a);
    sb = nstats(b);
    cr_log_info("while held: sink kept %llu, sender wrote %llu of %llu frames, %llu acked, "
                "%llu eager sends refused, receiver paused %llu times",
                U(held), U(sa.frames_sent), U(n + 1), U(sa.acked), U(atomic_load(&job.enobufs)),
                U(sb.read_pauses));
    cr_assert_gt(sb.read_pauses, 0, "the receiver never paused reading");
    cr_assert_gt(atomic_load(&job.enobufs), 0, "the sender's pool never ran out while the peer held");
    cr_assert(!finished, "the whole flood went out while the peer held");
    /* The receiver took no more than its pool holds (each frame is larger
     * than PAD_LEN), so the sender could not have been acknowledged more. */
    cr_assert_leq(sb.frames_received, 1 + 4 * (4096 / PAD_LEN + 1));
    cr_assert_leq(sa.acked, sb.frames_received);
    cr_assert_leq(sb.receive_pool.chunks_allocated, 4);

    /* Let go: every kept NetMessage still decodes, then is released. */
    RUN_ON(sink_ref, nt_node_release_all, NULL);
    if (!finished)
        flood_wait(&job);
    assert_all_delivered(a, &sink, &job, n + 1);
    sb = nstats(b);
    cr_assert_eq(sb.frames_received, n + 1);
    cr_assert_leq(sb.receive_pool.chunks_allocated, 4, "the receive pool outgrew its configuration");
    cr_assert_eq(axt_buffer_stats(sender_ref, &ps), AX_OK);
    cr_assert_leq(ps.chunks_allocated, 16);
    cr_assert_gt(ps.exhausted, 0);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* ---- malformed frames from a raw socket ---------------------------------------------- */

/* The frame header of docs/wire.md: length (big-endian), type, flags,
 * status, reserved. Written here by hand, as a stranger would. */
enum { F_HELLO = 1, F_DATA = 2, F_STATUS = 3, F_ACK = 6 };

static size_t raw_header(unsigned char *out, uint32_t body_len, uint8_t type, uint8_t status)
{
    out[0] = (unsigned char)(body_len >> 24);
    out[1] = (unsigned char)(body_len >> 16);
    out[2] = (unsigned char)(body_len >> 8);
    out[3] = (unsigned char)body_len;
    out[4] = type;
    out[5] = 0;
    out[6] = status;
    out[7] = 0;
    return 8;
}

static int raw_connect(ax_system_t *sys)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    ax_addr_t a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    ax_system_address(sys, &a);
    memcpy(&sa.sin_addr, a.ip, 4);
    sa.sin_port = htons(a.port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

        cr_assert(k > 0 || errno == EINTR, "send: %s", strerror(errno));
        if (k > 0) {
            c += k;
            n -= (size_t)k;
        }
    }
}

/* Read until the system closes the connection (end of stream or reset),
 * keeping the first cap bytes; fails if it stays open. Returns the bytes
 * read. */
static size_t raw_read_to_close(int fd, unsigned char *buf, size_t cap)
{
    double end = axt_now() + WAIT_S;
    size_t got = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        unsigned char tmp[4096];
        ssize_t k;

        cr_assert(axt_now() < end, "the system did not close the connection");
        if (poll(&p, 1, 100) <= 0)
            continue;
        k = recv(fd, tmp, sizeof tmp, 0);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return got;
        cr_assert(k > 0 || errno == EINTR, "recv: %s", strerror(errno));
        for (ssize_t i = 0; i < k; i++)
            if (got < cap)
                buf[got++] = tmp[i];
    }
}

/* Read exactly n bytes; fails on a close or after WAIT_S. */
static void raw_read_exact(int fd, unsigned char *buf, size_t n)
{
    double end = axt_now() + WAIT_S;
    size_t got = 0;

    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t k;

        cr_assert(axt_now() < end, "the system sent %zu of %zu bytes", got, n);
        if (poll(&p, 1, 100) <= 0)
            continue;
        k = recv(fd, buf + got, n - got, 0);
        cr_assert(k > 0 || (k < 0 && errno == EINTR), "the connection closed after %zu of %zu bytes", got, n);
        if (k > 0)
            got += (size_t)k;
    }
}

/* Read one frame: its header into h, its body into body (at most cap
 * bytes, which must be enough). Returns the body's length. */
static size_t raw_read_frame(int fd, unsigned char h[8], unsigned char *body, size_t cap)
{
    size_t len;

    raw_read_exact(fd, h, 8);
    len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    cr_assert_leq(len, cap, "a frame of %zu bytes", len);
    raw_read_exact(fd, body, len);
    return len;
}

#define RAW_SESSION 0x0fedcba987654321ull

/* A version-2 Hello body: ["axon", version, [0, ip, port], incarnation,
 * session, flags 0, max frame 1 MiB, nonce, path ids 0]. */
static size_t raw_hello(unsigned char *out, size_t cap, const char *magic, uint32_t version)
{
    static const unsigned char ip[4] = {127, 0, 0, 1};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_str(&pk, strlen(magic));
    msgpack_pack_str_body(&pk, magic, strlen(magic));
    msgpack_pack_uint32(&pk, version);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_bin(&pk, 4);
    msgpack_pack_bin_body(&pk, ip, 4);
    msgpack_pack_uint16(&pk, 9); /* a made-up peer address: nobody listens there */
    msgpack_pack_uint64(&pk, 0x1234567890abcdefull);
    msgpack_pack_uint64(&pk, RAW_SESSION);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 1u << 20);
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, "0123456789abcdef0123456789abcdef", 32);
    msgpack_pack_uint8(&pk, 0);
    cr_assert_leq(sb.size + 8, cap);
    n = raw_header(out, (uint32_t)sb.size, F_HELLO, 0);
    memcpy(out + n, sb.data, sb.size);
    n += sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* Two systems exchanging messages, and a raw socket into b. */
typedef struct raw_fixture {
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    nt_events_t bev;
    ax_ref_t sender_ref;
    send_job_t job;
    uint64_t sent, session;
    ax_net_stats_t base;
} raw_fixture_t;

/* a -> b: one more message, which must arrive on the same connection. */
static void raw_fixture_exchange(raw_fixture_t *f)
{
    f->job.first = f->sent;
    f->job.count = 1;
    flood(f->sender_ref, &f->job);
    f->sent++;
    WAIT_UNTIL(atomic_load(&f->sink.received) == f->sent, "a message to b did not arrive");
}

static void raw_fixture_setup_with(raw_fixture_t *f, const ax_config_t *cfg)
{
    memset(f, 0, sizeof(*f));
    f->a = net_system_with(cfg);
    f->b = net_system_with(cfg);
    spawn_events(f->b, &f->bev);
    nt_node_setup(&f->sink, NT_SINK);
    nt_spawn_node(f->b, &f->sink, "sink");
    nt_node_setup(&f->sender, NT_SINK);
    f->sender_ref = nt_spawn_node(f->a, &f->sender, NULL);
    f->job = (send_job_t){.dst = remote_named(f->a, f->b, "sink"), .pattern = SEND_MIXED};
    raw_fixture_exchange(f);
    f->session = atomic_load(&f->sink.session);
    f->base = nstats(f->b);
    cr_assert_eq(f->base.connections, 1);
    cr_assert_eq(f->base.malformed, 0);
}

static void raw_fixture_setup(raw_fixture_t *f)
{
    ax_config_t cfg = net_config();

    raw_fixture_setup_with(f, &cfg);
}

/*
 * After a bad connection: b closed only that one (its connection count is
 * back where it was), counted it as malformed when `malformed`, and
 * serves the others: the existing connection (same session) and a new
 * system that connects now.
 */
static void raw_fixture_check(raw_fixture_t *f, bool malformed)
{
    ax_system_t *c = net_system();
    nt_node_t csender;
    send_job_t cjob;
    ax_ref_t cref;

    WAIT_UNTIL(nstats(f->b).connections == f->base.connections, "b still has %llu connections",
               U(nstats(f->b).connections));
    if (malformed)
        WAIT_UNTIL(nstats(f->b).malformed == f->base.malformed + 1, "malformed is %llu, expected %llu",
                   U(nstats(f->b).malformed), U(f->base.malformed + 1));
    f->base = nstats(f->b);

    raw_fixture_exchange(f);
    raw_fixture_exchange(f);
    cr_assert_eq(atomic_load(&f->sink.session), f->session, "the good connection was replaced");
    assert_node_clean(&f->sink, "sink");

    nt_node_setup(&csender, NT_SINK);
    cref = nt_spawn_node(c, &csender, NULL);
    cjob = (send_job_t){.dst = remote_named(c, f->b, "sink"), .first = f->sent, .count = 1, .pattern = SEND_EAGER};
    flood(cref, &cjob);
    f->sent++;
    WAIT_UNTIL(atomic_load(&f->sink.received) == f->sent, "a new system's message to b did not arrive");
    cr_assert_eq(nstats(f->b).connections, 2);
    cr_assert_eq(nstats(f->b).malformed, f->base.malformed, "a good connection was counted as malformed");

    axt_destroy(&c);
    axt_destroy(&f->a);
    axt_destroy(&f->b);
    assert_seqs_released();
}

/* Send bytes on a fresh raw connection to b, and wait for b to close it. */
static size_t raw_case(raw_fixture_t *f, const void *bytes, size_t n, bool close_write, unsigned char *reply,
                       size_t cap)
{
    int fd = raw_connect(f->b);
    size_t got;

    raw_send(fd, bytes, n);
    if (close_write)
        shutdown(fd, SHUT_WR);
    got = raw_read_to_close(fd, reply, cap);
    close(fd);
    return got;
}

Test(net, raw_bad_frame_type)
{
    raw_fixture_t f;
    unsigned char h[8], reply[256];

    raw_fixture_setup(&f);
    raw_header(h, 0, 0x63, 0); /* no such frame type */
    cr_assert_eq(raw_case(&f, h, sizeof h, false, reply, sizeof reply), 0);
    raw_fixture_check(&f, true);
}

Test(net, raw_reserved_byte_set)
{
    raw_fixture_t f;
    unsigned char h[8], reply[256];

    raw_fixture_setup(&f);
    raw_header(h, 0, F_ACK, 0);
    h[7] = 0x5a; /* reserved: must be zero */
    cr_assert_eq(raw_case(&f, h, sizeof h, false, reply, sizeof reply), 0);
    raw_fixture_check(&f, true);
}

Test(net, raw_data_before_hello)
{
    raw_fixture_t f;
    unsigned char frame[16], reply[256];
    size_t n = raw_header(frame, 3, F_DATA, 0);

    raw_fixture_setup(&f);
    frame[n++] = 0x93; /* a body that would not even be an envelope */
    frame[n++] = 0xc0;
    frame[n++] = 0xc0;
    cr_assert_eq(raw_case(&f, frame, n, false, reply, sizeof reply), 0);
    raw_fixture_check(&f, true);
}

Test(net, raw_hello_bad_magic)
{
    raw_fixture_t f;
    unsigned char frame[128], reply[256];
    size_t n;

    raw_fixture_setup(&f);
    n = raw_hello(frame, sizeof frame, "nope", 2);
    cr_assert_eq(raw_case(&f, frame, n, false, reply, sizeof reply), 0, "b answered a bad Hello");
    raw_fixture_check(&f, true);
}

Test(net, raw_hello_bad_version)
{
    raw_fixture_t f;
    unsigned char frame[128], reply[256];
    size_t n;

    raw_fixture_setup(&f);
    n = raw_hello(frame, sizeof frame, "axon", 99);
    cr_assert_eq(raw_case(&f, frame, n, false, reply, sizeof reply), 0, "b answered a bad Hello");
    raw_fixture_check(&f, true);
}

/*
 * A good handshake from a raw socket: b answers with its own Hello, which
 * carries the session the connecting side chose, and reports the peer as
 * established. Returns the connected socket.
 */
static int raw_handshake(raw_fixture_t *f, ax_net_event_t *ev, size_t *from)
{
    unsigned char frame[160], h[8], body[256];
    msgpack_unpacked u;
    const msgpack_object *o;
    size_t n, len, off = 0;
    ax_addr_t raw_addr;
    int fd = raw_connect(f->b);

    n = raw_hello(frame, sizeof frame, "axon", 2);
    raw_send(fd, frame, n);
    len = raw_read_frame(fd, h, body, sizeof body);
    cr_assert_eq(h[4], F_HELLO, "b's first frame is of type %u, not Hello", h[4]);
    cr_assert_eq(h[6], 0);
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)body, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len, "b's Hello has bytes after its body");
    o = &u.data;
    cr_assert(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 9, "b's Hello is not an array of 9");
    cr_assert(o->via.array.ptr[0].type == MSGPACK_OBJECT_STR && o->via.array.ptr[0].via.str.size == 4 &&
              memcmp(o->via.array.ptr[0].via.str.ptr, "axon", 4) == 0);
    cr_assert(o->via.array.ptr[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              o->via.array.ptr[4].via.u64 == RAW_SESSION, "b's Hello does not carry our session");
    msgpack_unpacked_destroy(&u);
    cr_assert_eq(ax_addr_parse("127.0.0.1:9", &raw_addr), AX_OK);
    cr_assert(nt_events_wait(&f->bev, from, AX_NET_ESTABLISHED, &raw_addr, WAIT_S, ev), "b: no ESTABLISHED");
    cr_assert_eq(ev->session, RAW_SESSION);
    return fd;
}

/* After a handshake, an Ack whose body is not msgpack at all. */
Test(net, raw_garbage_after_hello)
{
    raw_fixture_t f;
    unsigned char frame[16], reply[256];
    size_t n, from = 0;
    ax_net_event_t ev;
    int fd;

    raw_fixture_setup(&f);
    fd = raw_handshake(&f, &ev, &from);
    n = raw_header(frame, 1, F_ACK, 0);
    frame[n++] = 0xc1; /* never used in msgpack */
    raw_send(fd, frame, n);
    cr_assert_eq(raw_read_to_close(fd, reply, sizeof reply), 0);
    close(fd);
    cr_assert(nt_events_wait(&f.bev, &from, AX_NET_LOST, &ev.peer, WAIT_S, &ev), "b: no LOST");
    raw_fixture_check(&f, true);
}

/*
 * A header announcing more than max_frame_size: the issue says the
 * connection is closed with an AX_ETOOBIG status. The implementation
 * queues a Status frame (status byte AX_ETOOBIG, body [0]) and flushes it
 * before closing, so it must be the last thing read.
 */
/* Before the handshake a header above the handshake limit (256 bytes)
 * closes the connection without a reply (wire v2, section 7): a stranger
 * learns nothing and can make us hold nothing. */
Test(net, raw_oversized_frame)
{
    raw_fixture_t f;
    unsigned char h[8], reply[256];

    raw_fixture_setup(&f);
    raw_header(h, 0x7ffffff0u, F_DATA, 0); /* far above the 16 MiB default */
    cr_assert_eq(raw_case(&f, h, sizeof h, false, reply, sizeof reply), 0, "b answered a stranger");
    raw_fixture_check(&f, true);
    raw_fixture_setup(&f);
    raw_header(h, 249, F_HELLO, 0); /* a Hello one byte above the limit */
    cr_assert_eq(raw_case(&f, h, sizeof h, false, reply, sizeof reply), 0, "b answered a stranger");
    raw_fixture_check(&f, true);
}

/* After the handshake an oversized header gets a Status AX_ETOOBIG [0],
 * then the close (section 15). */
Test(net, raw_oversized_frame_after_handshake)
{
    raw_fixture_t f;
    ax_net_event_t ev;
    unsigned char h[8], reply[256];
    size_t from = 0, got = 0, len;
    ssize_t k;
    int fd;

    raw_fixture_setup(&f);
    fd = raw_handshake(&f, &ev, &from);
    raw_header(h, 0x7ffffff0u, F_DATA, 0);
    raw_send(fd, h, sizeof h);
    /* Skip Acks and Heartbeats until the Status. */
    for (;;) {
        len = raw_read_frame(fd, h, reply, sizeof reply);
        if (h[4] == F_STATUS)
            break;
        cr_assert(h[4] == F_ACK || h[4] == 5, "frame type %u before the Status", h[4]);
    }
    cr_assert_eq(h[6], ax_status_to_byte(AX_ETOOBIG), "status byte %u", h[6]);
    cr_assert_eq(len, 2, "the Status body is [0]");
    while ((k = recv(fd, reply, sizeof reply, 0)) > 0)
        got += (size_t)k;
    cr_assert_eq(got, 0, "%zu bytes after the Status frame", got);
    close(fd);
    raw_fixture_check(&f, true);
}

/*
 * A frame cut short by the end of the stream. b closes the connection and
 * keeps serving. It is not asserted to be counted as malformed: from the
 * receiving side a truncated frame then a close is exactly what a peer
 * that dies mid-write looks like (a lost connection, not a protocol
 * error); the count is logged.
 */
Test(net, raw_truncated_then_close)
{
    raw_fixture_t f;
    unsigned char frame[64], reply[256];
    size_t n = raw_header(frame, 100, F_DATA, 0);

    raw_fixture_setup(&f);
    memset(frame + n, 0x90, 10);
    n += 10;
    cr_assert_eq(raw_case(&f, frame, n, true, reply, sizeof reply), 0);
    WAIT_UNTIL(nstats(f.b).connections == f.base.connections, "b kept the truncated connection");
    cr_log_info("truncated frame then close: malformed %llu -> %llu", U(f.base.malformed),
                U(nstats(f.b).malformed));
    raw_fixture_check(&f, false);
}

/* The same after a handshake: the peer is lost mid-frame. */
Test(net, raw_truncated_after_hello)
{
    raw_fixture_t f;
    unsigned char frame[64], reply[256];
    size_t n, from = 0;
    ax_net_event_t ev;
    int fd;

    raw_fixture_setup(&f);
    fd = raw_handshake(&f, &ev, &from);
    n = raw_header(frame, 100, F_DATA, 0);
    memset(frame + n, 0x90, 10);
    n += 10;
    raw_send(fd, frame, n);
    shutdown(fd, SHUT_WR);
    cr_assert_eq(raw_read_to_close(fd, reply, sizeof reply), 0);
    close(fd);
    cr_assert(nt_events_wait(&f.bev, &from, AX_NET_LOST, &ev.peer, WAIT_S, &ev),
              "b: no LOST for a peer gone mid-frame");
    cr_log_info("truncated frame after Hello: malformed %llu -> %llu", U(f.base.malformed),
                U(nstats(f.b).malformed));
    raw_fixture_check(&f, false);
}

/* ---- an unreachable peer ---------------------------------------------------------- */

/* A port bound on loopback but not listening: connecting to it is refused
 * at once, and no other test can be listening there meanwhile. */
static int closed_port(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

Test(net, closed_port_dead_letters)
{
    const uint64_t k = 100;
    ax_config_t cfg = net_config();
    ax_system_t *a;
    nt_node_t sender;
    nt_dl_t dl = {0};
    nt_events_t ev;
    ax_net_event_t e;
    send_job_t job;
    ax_ref_t sender_ref;
    ax_path_t p;
    uint8_t seen[128] = {0};
    uint16_t port;
    size_t from = 0;
    int hold = closed_port(&port);

    cfg.network.max_retries = 2;
    /* Long enough that all k are queued before the peer is given up (3
     * attempts, 2 waits: about 900 ms) even when the flooding handler is
     * preempted for a while on a loaded machine. */
    cfg.network.backoff_initial_ms = 300;
    cfg.network.backoff_max_ms = 600;
    a = net_system_with(&cfg);
    dl.seen = seen;
    dl.seen_cap = sizeof seen;
    spawn_dl(a, &dl);
    spawn_events(a, &ev);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);
    cr_assert_eq(nt_port_path(port, "nobody", &p), AX_OK);
    job = (send_job_t){.count = k, .pattern = SEND_MIXED};
    cr_assert_eq(ax_ref_from_path(a, &p, &job.dst), AX_OK);
    dl.watch = job.dst;

    flood(sender_ref, &job);
    cr_assert_eq(job.failed, 0);
    WAIT_UNTIL(atomic_load(&dl.count) >= k, "%llu of %llu dead letters", U(atomic_load(&dl.count)), U(k));
    cr_assert(nt_events_wait(&ev, &from, AX_NET_DROPPED, NULL, WAIT_S, &e), "no DROPPED event");
    cr_assert_eq(e.peer.port, port);
    cr_assert_neq(e.status, AX_OK, "DROPPED says why");
    cr_log_info("dropped with %s", ax_status_name(e.status));

    /* Every message, lazy or eager, came back serialised, with the reason
     * and its recipient, and still decodes. */
    cr_assert_eq(atomic_load(&dl.count), k, "%llu dead letters", U(atomic_load(&dl.count)));
    cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT), k, "%llu with AX_ETIMEDOUT", U(nt_dl_status(&dl, AX_ETIMEDOUT)));
    cr_assert_eq(atomic_load(&dl.net_msgs), k);
    cr_assert_eq(atomic_load(&dl.seq_decoded), k);
    cr_assert_eq(atomic_load(&dl.wrong_recipient), 0);
    for (uint64_t i = 0; i < k; i++)
        cr_assert_eq(seen[i], 1, "seq %llu came back %u times", U(i), seen[i]);
    cr_assert_eq(nstats(a).dead_lettered, k);
    cr_assert_eq(nstats(a).acked, 0);
    cr_assert_eq(nstats(a).frames_sent, 0);
    WAIT_UNTIL(nstats(a).connections == 0, "%llu connections", U(nstats(a).connections));
    cr_assert_eq(nt_events_count(&ev, AX_NET_ESTABLISHED), 0);
    cr_assert_eq(nt_events_count(&ev, AX_NET_DROPPED), 1, "%zu DROPPED events",
                 nt_events_count(&ev, AX_NET_DROPPED));

    /* A dropped peer is tried again by the next message, and dropped
     * again. */
    job.first = k;
    job.count = 1;
    flood(sender_ref, &job);
    WAIT_UNTIL(atomic_load(&dl.count) == k + 1, "the message after the drop did not come back");
    cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT), k + 1);
    cr_assert(nt_events_wait(&ev, &from, AX_NET_DROPPED, NULL, WAIT_S, &e), "no second DROPPED event");

    axt_destroy(&a);
    close(hold);
    assert_seqs_released();
}

/* Beyond network.peer_queue, messages for a connecting peer are refused
 * with AX_ENOBUFS; the queued ones time out. */
Test(net, peer_queue_overflow)
{
    const uint64_t k = 20, q = 8;
    ax_config_t cfg = net_config();
    ax_system_t *a;
    nt_node_t sender;
    nt_dl_t dl = {0};
    send_job_t job;
    ax_ref_t sender_ref;
    ax_path_t p;
    uint16_t port;
    int hold = closed_port(&port);

    cfg.network.peer_queue = q;
    cfg.network.max_retries = 2;
    /* Long enough that all k are routed before the peer is given up, even
     * when the flooding handler is preempted on a loaded machine. */
    cfg.network.backoff_initial_ms = 1000;
    cfg.network.backoff_max_ms = 1000;
    a = net_system_with(&cfg);
    spawn_dl(a, &dl);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);
    cr_assert_eq(nt_port_path(port, "nobody", &p), AX_OK);
    job = (send_job_t){.count = k, .pattern = SEND_MIXED};
    cr_assert_eq(ax_ref_from_path(a, &p, &job.dst), AX_OK);

    flood(sender_ref, &job);
    cr_assert_eq(job.failed, 0);
    WAIT_UNTIL(atomic_load(&dl.count) >= k, "%llu of %llu dead letters", U(atomic_load(&dl.count)), U(k));
    cr_assert_eq(atomic_load(&dl.count), k);
    cr_assert_eq(nt_dl_status(&dl, AX_ENOBUFS), k - q);
    cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT), q);
    cr_assert_eq(atomic_load(&dl.seq_decoded), k);
    cr_assert_eq(nstats(a).dead_lettered, k);

    axt_destroy(&a);
    close(hold);
    assert_seqs_released();
}

/* ---- an unknown recipient ------------------------------------------------------------ */

typedef struct unknown_job {
    ax_ref_t named, unique;
    ax_status_t st[4];
} unknown_job_t;

static void send_unknown(ax_actor_t *self, void *arg)
{
    unknown_job_t *j = arg;

    j->st[0] = seq_send(self, j->named, 0, false);
    j->st[1] = seq_send(self, j->named, 1, true);
    j->st[2] = seq_send(self, j->unique, 2, false);
    j->st[3] = seq_send(self, j->unique, 3, true);
}

Test(net, unknown_recipient_returns)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sink, sender;
    nt_dl_t dl = {0};
    unknown_job_t uj = {0};
    send_job_t job;
    ax_ref_t sender_ref, sink_ref;
    ax_path_t p;
    uint8_t seen[8] = {0};
    ax_net_stats_t sa;

    dl.seen = seen;
    dl.seen_cap = sizeof seen;
    spawn_dl(a, &dl);
    nt_node_setup(&sink, NT_SINK);
    sink_ref = nt_spawn_node(b, &sink, "sink");
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);

    uj.named = remote_named(a, b, "nobody/here");
    /* An id that b never gave out (ids are not reused, and b has few). */
    cr_assert_eq(ax_ref_path(sink_ref, &p), AX_OK);
    p.id += 1000000;
    cr_assert_eq(ax_ref_from_path(a, &p, &uj.unique), AX_OK);

    RUN_ON(sender_ref, send_unknown, &uj);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(uj.st[i], AX_OK, "send %d: %s", i, ax_status_name(uj.st[i]));
    WAIT_UNTIL(atomic_load(&dl.count) >= 4, "%llu of 4 returned", U(atomic_load(&dl.count)));

    /* Each came back to the sender's system as a dead letter with
     * AX_ENOTFOUND, as a NetMessage that still decodes. */
    cr_assert_eq(atomic_load(&dl.count), 4);
    cr_assert_eq(nt_dl_status(&dl, AX_ENOTFOUND), 4);
    cr_assert_eq(atomic_load(&dl.net_msgs), 4);
    cr_assert_eq(atomic_load(&dl.seq_decoded), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(seen[i], 1, "seq %d came back %u times", i, seen[i]);
    sa = nstats(a);
    cr_assert_eq(sa.returned, 4);
    cr_assert_eq(sa.dead_lettered, 4);
    cr_assert_eq(nstats(b).frames_received, 4);
    cr_assert_eq(atomic_load(&sink.received), 0);

    /* The connection stays up and good: a message to a real actor. */
    job = (send_job_t){.dst = remote_named(a, b, "sink"), .first = 10, .count = 1, .pattern = SEND_LAZY};
    flood(sender_ref, &job);
    WAIT_UNTIL(atomic_load(&sink.received) == 1, "the good message did not arrive");
    /* Returned frames are not also counted as delivered. */
    WAIT_UNTIL(nstats(a).acked == 1, "delivered %llu", U(nstats(a).acked));
    cr_assert_eq(nstats(a).acked + nstats(a).dead_lettered, 5);
    cr_assert_eq(atomic_load(&dl.count), 4);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* The same for a dead-letter recipient check: the returned letter names
 * the ref the message was sent to. */
Test(net, unknown_recipient_names_the_ref)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sender;
    nt_dl_t dl = {0};
    send_job_t job;
    ax_ref_t sender_ref;

    spawn_dl(a, &dl);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);
    job = (send_job_t){.dst = remote_named(a, b, "missing"), .count = 10, .pattern = SEND_MIXED};
    dl.watch = job.dst;
    flood(sender_ref, &job);
    WAIT_UNTIL(atomic_load(&dl.count) >= 10, "%llu of 10 returned", U(atomic_load(&dl.count)));
    cr_assert_eq(nt_dl_status(&dl, AX_ENOTFOUND), 10);
    cr_assert_eq(atomic_load(&dl.wrong_recipient), 0);
    cr_assert_eq(nstats(a).returned, 10);

    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
}

/* ---- events and sessions ------------------------------------------------------------- */

/* A system listening on the given port; the port may still be held by a
 * connection of the system that had it a moment ago, so retry. */
static ax_system_t *net_system_on(uint16_t port)
{
    ax_config_t cfg = net_config();
    ax_system_t *sys = NULL;
    ax_status_t st = AX_EIO;
    double end = axt_now() + WAIT_S;

    snprintf(cfg.network.listen, sizeof cfg.network.listen, "127.0.0.1:%u", (unsigned)port);
    while (st != AX_OK && axt_now() < end) {
        cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
        st = ax_net_start(sys);
        if (st != AX_OK) {
            axt_destroy(&sys);
            axt_sleep_us(20000);
        }
    }
    cr_assert_eq(st, AX_OK, "cannot listen on port %u again: %s", (unsigned)port, ax_error_detail());
    return sys;
}

Test(net, events_and_sessions)
{
    ax_system_t *a = net_system(), *b = net_system();
    nt_node_t sink, sink2, sender;
    nt_events_t aev, bev;
    ax_net_event_t e, eb;
    send_job_t job;
    ax_ref_t sender_ref;
    ax_addr_t aaddr, baddr;
    size_t afrom = 0, bfrom = 0;
    uint64_t s1, s2;

    spawn_events(a, &aev);
    spawn_events(b, &bev);
    ax_system_address(a, &aaddr);
    ax_system_address(b, &baddr);
    /* Connect on first use: both sides see ESTABLISHED, with one session id
     * that the received NetMessages carry too. */
    sender_ref = connected_pair(a, b, &sender, &sink, &job.dst);
    cr_assert(nt_events_wait(&aev, &afrom, AX_NET_ESTABLISHED, &baddr, WAIT_S, &e), "a: no ESTABLISHED");
    cr_assert(nt_events_wait(&bev, &bfrom, AX_NET_ESTABLISHED, &aaddr, WAIT_S, &eb), "b: no ESTABLISHED");
    s1 = e.session;
    cr_assert_neq(s1, 0);
    cr_assert_eq(eb.session, s1);
    cr_assert_eq(atomic_load(&sink.session), s1);
    cr_assert_eq(e.status, AX_OK);

    /* b shuts down gracefully: a sees CLOSED for that session, not LOST. */
    axt_destroy(&b);
    cr_assert(nt_events_wait(&aev, &afrom, AX_NET_CLOSED, &baddr, WAIT_S, &e), "a: no CLOSED");
    cr_assert_eq(e.session, s1);
    WAIT_UNTIL(nstats(a).connections == 0, "a still has a connection");
    cr_assert_eq(nt_events_count(&aev, AX_NET_LOST), 0, "a graceful close was reported as lost");
    cr_assert_eq(nstats(a).dead_lettered, 0);
    cr_assert_eq(nstats(a).acked, 1);

    /* A new system on the same address: the same ref reconnects, with a
     * new session. */
    b = net_system_on(baddr.port);
    nt_node_setup(&sink2, NT_SINK);
    nt_spawn_node(b, &sink2, "sink");
    job = (send_job_t){.dst = job.dst, .first = 1, .count = 1, .pattern = SEND_LAZY};
    flood(sender_ref, &job);
    WAIT_UNTIL(atomic_load(&sink2.received) == 1, "the message after the restart did not arrive");
    cr_assert(nt_events_wait(&aev, &afrom, AX_NET_ESTABLISHED, &baddr, WAIT_S, &e), "a: no second ESTABLISHED");
    s2 = e.session;
    cr_assert_neq(s2, 0);
    cr_assert_neq(s2, s1, "the session id did not change after a reconnect");
    cr_assert_eq(atomic_load(&sink2.session), s2);
    cr_assert_eq(nstats(a).reconnects, 1);
    cr_assert_eq(nstats(a).connections, 1);
    /* sink2 starts at seq 1: no gap check. */
    cr_assert_eq(atomic_load(&sink2.bad) + atomic_load(&sink2.out_of_order), 0);

    axt_destroy(&b);
    axt_destroy(&a);
    assert_seqs_released();
}

/* ---- graceful shutdown flushes --------------------------------------------------------- */

Test(net, shutdown_flushes)
{
    const uint64_t n = axt_scaled(20000);
    ax_config_t slow = net_config();
    ax_system_t *a, *b = net_system();
    nt_node_t sink, sender;
    nt_events_t bev;
    ax_net_event_t e;
    send_job_t job;
    ax_ref_t sender_ref;
    ax_addr_t aaddr;
    size_t from = 0;

    /* The flush ends when everything is acknowledged; its 2 s default
     * bound is not what is tested, and a loaded machine must not decide
     * whether 20,000 messages make it. */
    slow.network.flush_timeout_ms = 60000;
    a = net_system_with(&slow);
    spawn_events(b, &bev);
    ax_system_address(a, &aaddr);
    sender_ref = connected_pair(a, b, &sender, &sink, &job.dst);

    /* n sends, then at once the sender's system goes away: everything sent
     * must still arrive (the flush waits for the acks). */
    job = (send_job_t){.dst = job.dst, .first = 1, .count = n, .pattern = SEND_MIXED};
    flood(sender_ref, &job);
    cr_assert_eq(job.failed, 0);
    axt_destroy(&a);

    WAIT_UNTIL(atomic_load(&sink.received) == n + 1, "received %llu of %llu", U(atomic_load(&sink.received)),
               U(n + 1));
    assert_node_clean(&sink, "sink");
    cr_assert_eq(sink.next, n + 1);
    cr_assert(nt_events_wait(&bev, &from, AX_NET_CLOSED, &aaddr, WAIT_S, &e), "b: no CLOSED");
    cr_assert_eq(nt_events_count(&bev, AX_NET_LOST), 0);
    cr_assert_eq(nstats(b).malformed, 0);

    axt_destroy(&b);
    assert_seqs_released();
}

/* ax_system_destroy on a helper thread, joined within secs (shorter than
 * axt_destroy's bound); false when it did not return in time (the test
 * then fails, leaving it running). */
static bool destroy_within(ax_system_t **sys, double secs)
{
    axt_bounded_t b = {.destroy = sys};
    struct timespec ts;
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, axt_bounded_main, &b), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)secs;
    return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/*
 * A graceful close ends with the Bye exchange, not with the flush
 * deadline: with network.flush_timeout_ms at ten minutes on both sides,
 * destroying a connected system with nothing left to flush still returns
 * well within the bound here, and the peer sees CLOSED.
 */
Test(net, graceful_close_ends_with_bye)
{
    ax_config_t cfg = net_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    nt_events_t bev;
    ax_net_event_t e;
    ax_ref_t dst;
    ax_addr_t aaddr;
    size_t from = 0;

    cfg.network.flush_timeout_ms = 600000;
    a = net_system_with(&cfg);
    b = net_system_with(&cfg);
    spawn_events(b, &bev);
    ax_system_address(a, &aaddr);
    connected_pair(a, b, &sender, &sink, &dst);
    WAIT_UNTIL(nstats(a).acked == 1, "the message was not acknowledged");

    cr_assert(destroy_within(&a, 15.0), "destroying a connected system waited for the flush deadline "
                                        "(10 min) instead of ending with Bye");
    cr_assert(nt_events_wait(&bev, &from, AX_NET_CLOSED, &aaddr, WAIT_S, &e), "b: no CLOSED");
    cr_assert(destroy_within(&b, 15.0), "destroying the peer did not return");
    assert_seqs_released();
}

/* Whether log has a CLOSED or a LOST event for peer. */
static bool connection_ended(nt_events_t *log, const ax_addr_t *peer)
{
    ax_net_event_t e;
    size_t from = 0;

    return nt_events_wait(log, &from, AX_NET_CLOSED, peer, 0, &e) ||
           nt_events_wait(log, &from, AX_NET_LOST, peer, 0, &e);
}

/*
 * The receiving system shuts down gracefully while a peer streams to it.
 * Its network thread keeps reading (and acknowledging) what arrives after
 * its Bye, until the peer's Bye: the process must survive that (no
 * SIGPIPE from a write to a half-closed socket; a test worker has the
 * default SIGPIPE action, like any program). The streaming side accounts
 * for every message: acknowledged, or a dead letter with a status.
 */
static void shutdown_mid_stream(uint64_t n)
{
    ax_config_t ca = net_config(), cb = net_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    nt_dl_t dl = {0};
    nt_events_t bev;
    send_job_t job;
    ax_ref_t sender_ref;
    ax_addr_t aaddr;
    ax_net_stats_t s;
    uint64_t dead;

    a = net_system_with(&ca);
    /* Once a is gone, b gives up on it quickly. */
    cb.network.max_retries = 1;
    cb.network.backoff_initial_ms = 5;
    cb.network.backoff_max_ms = 10;
    b = net_system_with(&cb);
    ax_system_address(a, &aaddr);
    spawn_dl(b, &dl);
    spawn_events(b, &bev);
    sender_ref = connected_pair(b, a, &sender, &sink, &job.dst);

    job = (send_job_t){.dst = job.dst, .first = 1, .count = n, .pattern = SEND_MIXED};
    flood_start(sender_ref, &job);
    WAIT_UNTIL(atomic_load(&sink.received) >= n / 10 || atomic_load(&sink.received) == n + 1,
               "the stream did not start");
    axt_destroy(&a);
    flood_wait(&job);
    cr_assert_eq(job.failed, 0);

    WAIT_UNTIL(nstats(b).acked + atomic_load(&dl.count) >= n + 1, "accounted for %llu + %llu of %llu",
               U(nstats(b).acked), U(atomic_load(&dl.count)), U(n + 1));
    axt_sleep_us(200000); /* anything counted twice would show now */
    s = nstats(b);
    dead = atomic_load(&dl.count);
    cr_log_info("sent %llu: delivered %llu, dead letters %llu (ECLOSED %llu, ENOBUFS %llu, ETIMEDOUT %llu)",
                U(n + 1), U(s.acked), U(dead), U(nt_dl_status(&dl, AX_ECLOSED)),
                U(nt_dl_status(&dl, AX_ENOBUFS)), U(nt_dl_status(&dl, AX_ETIMEDOUT)));
    for (int i = 0; i < NT_STATUS_SLOTS; i++)
        if (atomic_load(&dl.by_status[i]) > 0)
            cr_log_info("  %s: %llu", ax_status_name((ax_status_t)-i), U(atomic_load(&dl.by_status[i])));
    cr_log_info("  %llu NetMessages, %llu undelivered records, %llu unserialised, %llu others",
                U(atomic_load(&dl.net_msgs)), U(atomic_load(&dl.undelivered)), U(atomic_load(&dl.seqs)),
                U(atomic_load(&dl.others)));
    cr_assert_eq(s.acked + dead, n + 1);
    cr_assert_eq(s.dead_lettered, dead);
    /* AX_ENOTFOUND: the sink ended with its system, and what arrived for
     * it after that came back. */
    cr_assert_eq(nt_dl_status(&dl, AX_ECLOSED) + nt_dl_status(&dl, AX_ENOBUFS) + nt_dl_status(&dl, AX_ETIMEDOUT) +
                     nt_dl_status(&dl, AX_ENOTFOUND),
                 dead, "a dead letter with an unexpected status");
    cr_assert_eq(nstats(b).returned, nt_dl_status(&dl, AX_ENOTFOUND));
    /* CLOSED, or LOST when a's close reset the connection under data b
     * was still writing. */
    WAIT_UNTIL(connection_ended(&bev, &aaddr), "b saw no end of its connection to a");
    cr_assert_eq(atomic_load(&sink.out_of_order) + atomic_load(&sink.bad), 0);

    axt_destroy(&b);
    assert_seqs_released();
}

/* A few times: how far the stream is when the Bye goes out varies. */
Test(net, peer_shuts_down_mid_stream)
{
    for (int i = 0; i < 3; i++)
        shutdown_mid_stream(axt_scaled(50000));
}

/* A Data frame to the actor named `name` of whatever system reads it
 * (the receiver takes the path as its own), from outside any actor,
 * carrying a seq: envelope [receiver path, nil, serialiser id], payload. */
static size_t raw_data_frame(unsigned char *out, size_t cap, const char *name, uint64_t seq)
{
    static const unsigned char ip[4] = {127, 0, 0, 1};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_array(&pk, 4); /* the path: [flags (named, IPv4, tcp), ip, port, name] */
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_bin(&pk, 4);
    msgpack_pack_bin_body(&pk, ip, 4);
    msgpack_pack_uint16(&pk, 1);
    msgpack_pack_str(&pk, strlen(name));
    msgpack_pack_str_body(&pk, name, strlen(name));
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, SEQ_SER_ID);
    msgpack_pack_uint64(&pk, seq);
    cr_assert_leq(sb.size + 8, cap);
    n = raw_header(out, (uint32_t)sb.size, F_DATA, 0);
    memcpy(out + n, sb.data, sb.size);
    n += sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* A raw peer's Data frame reaches a named actor, which can decode it. */
Test(net, raw_data_frame_delivered)
{
    raw_fixture_t f;
    unsigned char frame[128], h[8], body[64];
    size_t n, from = 0;
    ax_net_event_t ev;
    int fd;

    raw_fixture_setup(&f);
    fd = raw_handshake(&f, &ev, &from);
    n = raw_data_frame(frame, sizeof frame, "sink", f.sent);
    raw_send(fd, frame, n);
    f.sent++;
    WAIT_UNTIL(atomic_load(&f.sink.received) == f.sent, "the raw peer's message did not arrive");
    cr_assert_eq(atomic_load(&f.sink.session), RAW_SESSION);
    /* It is acknowledged: an Ack frame carrying the count, 1. */
    cr_assert_leq(raw_read_frame(fd, h, body, sizeof body), sizeof body);
    cr_assert_eq(h[4], F_ACK, "frame type %u, not Ack", h[4]);
    cr_assert_eq(body[0], 0x01, "Ack body 0x%02x, expected the count 1", body[0]);
    close(fd);
    cr_assert(nt_events_wait(&f.bev, &from, AX_NET_LOST, &ev.peer, WAIT_S, &ev), "b: no LOST");
    raw_fixture_check(&f, false); /* which also checks a's connection is the same */
}

/*
 * A burst far longer than what one turn of b's network thread reads
 * (256 KiB, dispatch/NOTES.md), then nothing more: no later arrival
 * raises an edge in epoll for the bytes left in the socket once a turn
 * stops reading, so b must read on by itself. Every frame arrives, in
 * order, and the connection is the same one throughout.
 */
Test(net, a_burst_longer_than_a_turns_reads_arrives_whole_with_nothing_after_it)
{
    raw_fixture_t f;
    size_t from = 0, n = 0, count = 60000, cap = count * 64;
    unsigned char *burst = malloc(cap);
    ax_net_event_t ev;
    int fd;

    cr_assert_not_null(burst);
    raw_fixture_setup(&f);
    fd = raw_handshake(&f, &ev, &from);
    for (size_t i = 0; i < count; i++)
        n += raw_data_frame(burst + n, cap - n, "sink", f.sent + i);
    cr_assert_gt(n, 4u * 256 * 1024, "the burst is only %zu bytes", n);
    raw_send(fd, burst, n);
    f.sent += count;
    WAIT_UNTIL(atomic_load(&f.sink.received) == f.sent, "%llu of the burst's %zu frames arrived",
               U(atomic_load(&f.sink.received) - (f.sent - count)), count);
    cr_assert_eq(atomic_load(&f.sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&f.sink.gaps), 0);
    cr_assert_eq(atomic_load(&f.sink.session), RAW_SESSION);
    cr_assert_eq(nstats(f.b).malformed, f.base.malformed);
    free(burst);
    close(fd);
    cr_assert(nt_events_wait(&f.bev, &from, AX_NET_LOST, &ev.peer, WAIT_S, &ev), "b: no LOST");
    raw_fixture_check(&f, false);
}

/*
 * Open connections are read through io_uring (network.io_uring, on by
 * default), or with epoll when it is off: frames sent one at a time, each
 * into an idle connection whose receive is posted, arrive in order, and
 * b's ring_reads says which way they were read. In the second round a
 * burst of 200 KB comes first, which b reads with epoll as a stream; the
 * single frames after it go back to the ring after two small reads. Each
 * round the raw peer closes while a receive is posted: b sees the
 * connection lost once, and a new connection is read the same way.
 */
Test(net, open_connections_are_read_through_io_uring_unless_it_is_off)
{
    raw_fixture_t f;
    unsigned char frame[128];
    size_t n, from = 0;
    ax_net_event_t ev;
    uint64_t before;
    int fd;

    raw_fixture_setup(&f);
    before = nstats(f.b).ring_reads;
    for (int round = 0; round < 2; round++) {
        fd = raw_handshake(&f, &ev, &from);
        if (round == 1) {
            size_t count = 4000, cap = count * 64, len = 0;
            unsigned char *burst = malloc(cap);

            cr_assert_not_null(burst);
            for (size_t i = 0; i < count; i++)
                len += raw_data_frame(burst + len, cap - len, "sink", f.sent + i);
            raw_send(fd, burst, len);
            f.sent += count;
            free(burst);
            WAIT_UNTIL(atomic_load(&f.sink.received) == f.sent, "the burst did not arrive whole");
            before = nstats(f.b).ring_reads;
        }
        for (int i = 0; i < 20; i++) {
            n = raw_data_frame(frame, sizeof frame, "sink", f.sent);
            raw_send(fd, frame, n);
            f.sent++;
            WAIT_UNTIL(atomic_load(&f.sink.received) == f.sent, "frame %d of round %d did not arrive", i, round);
        }
        if (ring_on())
            cr_assert_geq(nstats(f.b).ring_reads - before, round == 0 ? 20 : 18,
                          "round %d: %llu of 20 frames sent one at a time were read through io_uring "
                          "(after the burst, all but the first two should be) "
                          "(does this kernel refuse io_uring? io_uring_disabled, a seccomp filter)",
                          round, U(nstats(f.b).ring_reads - before));
        else
            cr_assert_eq(nstats(f.b).ring_reads, 0, "io_uring is off, yet %llu reads came through it",
                         U(nstats(f.b).ring_reads));
        before = nstats(f.b).ring_reads;
        /* b's Acks are unread here, so the close resets the connection,
         * and b's next read (posted or not) fails with ECONNRESET. */
        close(fd);
        cr_assert(nt_events_wait(&f.bev, &from, AX_NET_LOST, &ev.peer, WAIT_S, &ev),
                  "round %d: b did not lose the closed connection", round);
        cr_assert_eq(ev.status, AX_EIO, "round %d: lost with %s, not AX_EIO", round, ax_status_name(ev.status));
    }
    cr_assert_eq(atomic_load(&f.sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&f.sink.gaps), 0);
    raw_fixture_check(&f, false);
}

/*
 * Under Valgrind the network thread reads with epoll even with io_uring
 * on: Valgrind 3.19 stops every thread while one waits in io_uring_enter.
 * A build that did not find Valgrind's headers knows it from the
 * LD_PRELOAD that Valgrind gives every program it runs, set here by hand
 * (the loader has read it already: nothing is preloaded). Messages arrive
 * in order, and none through the ring.
 */
Test(net, valgrinds_preload_keeps_reads_on_epoll)
{
    raw_fixture_t f;
    ax_config_t cfg = net_config();

    cfg.network.io_uring = true; /* on in test_net_epoll too */
    cr_assert_eq(setenv("LD_PRELOAD", "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so", 1), 0);
    raw_fixture_setup_with(&f, &cfg);
    for (int i = 0; i < 20; i++)
        raw_fixture_exchange(&f);
    cr_assert_eq(nstats(f.a).ring_reads, 0, "a read %llu times through io_uring under (what looks like) Valgrind",
                 U(nstats(f.a).ring_reads));
    cr_assert_eq(nstats(f.b).ring_reads, 0, "b read %llu times through io_uring under (what looks like) Valgrind",
                 U(nstats(f.b).ring_reads));
    cr_assert_eq(atomic_load(&f.sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&f.sink.gaps), 0);
    unsetenv("LD_PRELOAD");
    raw_fixture_check(&f, false);
}

/*
 * A frame that arrives after a stopping system has said Bye and closed
 * its side for writing: the system must not try to write its answer (an
 * Ack, a Status) into the closed socket, or at least not die of it: a
 * write there fails with EPIPE and, without MSG_NOSIGNAL, raises SIGPIPE,
 * whose default action ends the whole process (a test worker, like any
 * program, has the default action).
 */
Test(net, no_sigpipe_after_bye)
{
    ax_config_t cfg = net_config();
    ax_system_t *a;
    unsigned char frame[160], h[8], body[256];
    ax_net_event_t ev;
    nt_events_t aev;
    axt_bounded_t d = {.destroy = &a};
    pthread_t t;
    struct timespec ts;
    size_t n, from = 0;
    ax_addr_t raw_addr;
    int fd;

    cfg.network.flush_timeout_ms = 3000;
    a = net_system_with(&cfg);
    spawn_events(a, &aev);
    fd = raw_connect(a);
    n = raw_hello(frame, sizeof frame, "axon", 2);
    raw_send(fd, frame, n);
    raw_read_frame(fd, h, body, sizeof body);
    cr_assert_eq(h[4], F_HELLO);
    cr_assert_eq(ax_addr_parse("127.0.0.1:9", &raw_addr), AX_OK);
    cr_assert(nt_events_wait(&aev, &from, AX_NET_ESTABLISHED, &raw_addr, WAIT_S, &ev));

    /* a stops: it says Bye, and keeps its writing side open for Acks
     * until our Bye (wire v2, section 12). */
    cr_assert_eq(pthread_create(&t, NULL, axt_bounded_main, &d), 0);
    raw_read_frame(fd, h, body, sizeof body);
    cr_assert_eq(h[4], 4 /* Bye */, "frame type %u, not Bye", h[4]);

    /* Now a message for an actor that is gone, our Bye, and we close the
     * socket at once: a has something to say back (a Status, an Ack) on a
     * socket nobody reads any more, and must get EPIPE, not SIGPIPE. */
    n = raw_data_frame(frame, sizeof frame, "nobody", 7);
    raw_send(fd, frame, n);
    n = raw_header(frame, 0, 4 /* Bye */, 0);
    raw_send(fd, frame, n);
    close(fd);
    fd = -1;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)WAIT_S;
    cr_assert_eq(pthread_timedjoin_np(t, NULL, &ts), 0, "a did not finish stopping");
    cr_assert_null(a);
}

/*
 * Frames a receiver has taken off the socket are acknowledged even while
 * its reading is paused for want of buffers: the sender's count of
 * delivered messages catches up with what the receiver took. (Otherwise a
 * sender under sustained backpressure sees no acknowledgement at all, its
 * record of unacknowledged frames grows, and when the connection ends
 * every one of them, delivered or not, becomes an AX_ECLOSED dead letter.)
 */
Test(net, acks_while_paused)
{
    ax_config_t cb = net_config();
    ax_system_t *a, *b;
    nt_node_t sink, sender;
    send_job_t job;
    ax_ref_t sender_ref, sink_ref;
    uint64_t taken, acked;
    double end;

    cb.network.buffer_config = tiny_pool;
    a = net_system();
    b = net_system_with(&cb);
    nt_node_setup(&sink, NT_SINK);
    sink.on_net = pad_on_net;
    sink.kept_type = &pad_type;
    sink_ref = nt_spawn_node(b, &sink, "sink");
    atomic_store(&sink.hold, true);
    nt_node_setup(&sender, NT_SINK);
    sender_ref = nt_spawn_node(a, &sender, NULL);

    job = (send_job_t){.dst = remote_named(a, b, "sink"), .count = 200, .pattern = SEND_MIXED, .type = &pad_type};
    flood(sender_ref, &job);
    WAIT_UNTIL(nstats(b).read_pauses > 0, "the receiver never paused reading");
    WAIT_UNTIL(atomic_load(&sink.held) > 0 && atomic_load(&sink.held) == nstats(b).frames_received,
               "the sink did not get what was received");
    end = axt_now() + WAIT_S;
    while (nstats(a).acked < nstats(b).frames_received && axt_now() < end)
        axt_sleep_us(1000);
    taken = nstats(b).frames_received;
    acked = nstats(a).acked;

    /* Recover and clean up before judging, so that a failure leaves
     * nothing behind. */
    RUN_ON(sink_ref, nt_node_release_all, NULL);
    WAIT_UNTIL(atomic_load(&sink.received) == 200, "received %llu of 200", U(atomic_load(&sink.received)));
    WAIT_UNTIL(nstats(a).acked == 200, "delivered %llu of 200", U(nstats(a).acked));
    axt_destroy(&a);
    axt_destroy(&b);
    assert_seqs_released();
    cr_assert_eq(acked, taken, "while paused, b had taken %llu frames off the socket and a saw %llu acknowledged",
                 U(taken), U(acked));
}
