/*
 * Eager serialisation into per-actor pools: messages spanning chunks, the
 * NetMessage's paths, preserialised payloads sent to many, exhaustion and
 * recovery, where an actor's BufferConfig comes from, what is freed when
 * nobody decodes or the sender ends first, dead letters, and refs resolved
 * from paths.
 *
 * A sender's pool is only ever touched on its own thread, so the test runs
 * every send and every stats read as a job on the actor (RUN_ON), and
 * waits for each step with a bounded semaphore wait.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"

/* ---- a user type that counts its allocations and releases -------------- */

typedef struct tick {
    ax_msg_t hdr;
    uint64_t seq;
} tick_t;

#define TICK_SER_ID (AX_SER_USER_MIN + 1)

static _Atomic uint64_t tick_allocs, tick_releases;

static void tick_release(ax_msg_t *m)
{
    atomic_fetch_add(&tick_releases, 1);
    free(m);
}

static ax_status_t tick_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    return msgpack_pack_uint64(pk, ((const tick_t *)m)->seq) == 0 ? AX_OK : AX_ENOBUFS;
}

static ax_msg_t *tick_new(uint64_t seq);

static ax_status_t tick_deserialise(const msgpack_object *obj, const ax_payload_t *payload, ax_msg_t **out)
{
    (void)payload;
    if (obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return AX_EPROTO;
    *out = tick_new(obj->via.u64);
    return *out != NULL ? AX_OK : AX_ENOMEM;
}

static const ax_msg_type_t tick_type = {
    .name = "test.tick",
    .size = sizeof(tick_t),
    .release = tick_release,
    .serialiser_id = TICK_SER_ID,
    .serialise = tick_serialise,
    .deserialise = tick_deserialise,
};

static ax_msg_t *tick_new(uint64_t seq)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&tick_type, &m) != AX_OK)
        return NULL;
    ((tick_t *)m)->seq = seq;
    atomic_fetch_add(&tick_allocs, 1);
    return m;
}

/* ---- a node: an actor that runs jobs and records what it receives ----- */

typedef enum rx_mode {
    RX_DECODE, /* deserialise as node->type, keep the result */
    RX_KEEP,   /* keep the NetMessage itself (*nm = NULL) */
    RX_IGNORE, /* return AX_OK without touching it */
} rx_mode_t;

#define NODE_MAX 256

typedef struct rx_entry {
    ax_status_t st;
    ax_msg_t *msg;     /* RX_DECODE: the decoded message */
    ax_net_msg_t *nm;  /* RX_KEEP: the NetMessage */
} rx_entry_t;

typedef struct node {
    /* Set before spawning. */
    rx_mode_t mode;
    const ax_msg_type_t *type;
    const ax_buffer_config_t *start_cfg; /* ax_actor_init_buffers in on_start */
    bool start_init_null;                /* ax_actor_init_buffers(self, NULL) in on_start */

    /* What happened. */
    ax_status_t start_st;
    sem_t started, got, ended, local;
    _Atomic uint64_t n;
    rx_entry_t e[NODE_MAX];
    /* From the first NetMessage. */
    ax_status_t src_st, dst_st, sender_st;
    ax_path_t src, dst;
    ax_ref_t sender;
    uint64_t session;
    /* The last local message that was not a job, kept. */
    ax_msg_t *local_msg;
} node_t;

typedef struct node_actor {
    ax_actor_t actor;
    node_t *node;
} node_actor_t;

static node_t *node_of(ax_actor_t *self)
{
    return ((node_actor_t *)self)->node;
}

static ax_status_t node_init(ax_actor_t *self, void *arg)
{
    ((node_actor_t *)self)->node = arg;
    return AX_OK;
}

static void node_start(ax_actor_t *self)
{
    node_t *n = node_of(self);

    if (n->start_cfg != NULL || n->start_init_null)
        n->start_st = ax_actor_init_buffers(self, n->start_cfg);
    sem_post(&n->started);
}

static void node_destroy(ax_actor_t *self)
{
    sem_post(&node_of(self)->ended);
}

static ax_status_t node_local(ax_actor_t *self, ax_msg_t **msg)
{
    node_t *n = node_of(self);

    if (axt_job_run(self, *msg))
        return AX_OK;
    ax_msg_release(&n->local_msg);
    n->local_msg = *msg;
    *msg = NULL;
    sem_post(&n->local);
    return AX_OK;
}

static ax_status_t node_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    node_t *n = node_of(self);
    uint64_t i = atomic_load(&n->n);
    rx_entry_t *e = NULL;

    if (n->mode != RX_IGNORE) {
        AXT_CHECK(i < NODE_MAX);
        if (i >= NODE_MAX)
            return AX_OK;
        e = &n->e[i];
    }
    if (i == 0) {
        n->src_st = ax_net_msg_sender_path(*nm, &n->src);
        n->dst_st = ax_net_msg_receiver_path(*nm, &n->dst);
        n->sender_st = ax_net_msg_sender(self, *nm, &n->sender);
        n->session = ax_net_msg_session(*nm);
    }
    switch (n->mode) {
    case RX_DECODE:
        e->st = ax_net_msg_deserialise(*nm, n->type, &e->msg);
        break;
    case RX_KEEP:
        e->nm = *nm;
        *nm = NULL;
        break;
    case RX_IGNORE:
        break;
    }
    /* Last: the test reads the entry once it sees the count. */
    atomic_fetch_add(&n->n, 1);
    sem_post(&n->got);
    return AX_OK;
}

static const ax_actor_vtable_t node_vtable = {
    .name = "test.node",
    .size = sizeof(node_actor_t),
    .init = node_init,
    .on_start = node_start,
    .receive_local = node_local,
    .receive_network = node_network,
    .destroy = node_destroy,
};

static node_t *node_new(rx_mode_t mode, const ax_msg_type_t *type)
{
    node_t *n = calloc(1, sizeof(*n));

    cr_assert_not_null(n);
    n->mode = mode;
    n->type = type;
    sem_init(&n->started, 0, 0);
    sem_init(&n->got, 0, 0);
    sem_init(&n->ended, 0, 0);
    sem_init(&n->local, 0, 0);
    return n;
}

/* Release what the node kept; the actor must be idle or ended. */
static void node_release_all(node_t *n)
{
    for (size_t i = 0; i < NODE_MAX; i++) {
        ax_msg_release(&n->e[i].msg);
        ax_msg_release((ax_msg_t **)&n->e[i].nm);
    }
    ax_msg_release(&n->local_msg);
}

static void node_free(node_t *n)
{
    node_release_all(n);
    sem_destroy(&n->started);
    sem_destroy(&n->got);
    sem_destroy(&n->ended);
    sem_destroy(&n->local);
    free(n);
}

/* Spawn and wait until on_start has run. */
static ax_ref_t node_spawn(ax_system_t *sys, node_t *n)
{
    ax_ref_t r;

    cr_assert_eq(ax_spawn(sys, &node_vtable, n, &r), AX_OK);
    AXT_WAIT_SEM(&n->started);
    return r;
}

static void wait_got(node_t *n, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        AXT_WAIT_SEM(&n->got);
}

/* ---- jobs the tests run on senders ------------------------------------ */

static ax_buffer_pool_stats_t stats_of(ax_ref_t actor)
{
    ax_buffer_pool_stats_t s;
    ax_status_t st = axt_buffer_stats(actor, &s);

    cr_assert_eq(st, AX_OK, "buffer_stats: %s", ax_status_name(st));
    return s;
}

typedef struct init_job {
    const ax_buffer_config_t *cfg;
    ax_status_t st;
} init_job_t;

static void do_init_buffers(ax_actor_t *self, void *arg)
{
    init_job_t *j = arg;

    j->st = ax_actor_init_buffers(self, j->cfg);
}

static void do_release_all(ax_actor_t *self, void *arg)
{
    (void)arg;
    node_release_all(node_of(self));
}

/* A pattern that tells every byte's offset apart. */
static unsigned char *pattern(size_t len, unsigned salt)
{
    unsigned char *p = malloc(len);

    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i ^ (i >> 8) ^ (i >> 16) ^ salt);
    return p;
}

static ax_buffer_config_t bufcfg(size_t chunk, size_t initial, size_t max)
{
    return (ax_buffer_config_t){.chunk_size = chunk, .initial_chunk_count = initial,
                                .max_chunk_count = max, .encode_buf_min_free_space = 64};
}

/* ---- messages spanning several chunks --------------------------------- */

Test(eager, message_spanning_chunks_arrives_byte_exact)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 2, 64);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_KEEP, NULL);
    size_t len = 100 * 1024;
    unsigned char *data = pattern(len, 0x5a);
    ax_msg_t *m = NULL, *out = NULL;
    ax_lease_t payload;
    ax_ref_t sender, receiver;
    ax_buffer_pool_stats_t st;

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    cr_assert_eq(s->start_st, AX_OK);
    cr_assert_eq(ax_bytes_msg_new(data, len, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(sender, receiver, &ax_bytes_type, m), AX_OK);
    wait_got(r, 1);
    axt_flush(receiver);

    /* The payload really is a chain over the sender's 4 KiB chunks. */
    cr_assert_eq(ax_net_msg_payload(r->e[0].nm, &payload), AX_OK);
    cr_assert_geq(ax_lease_slice_count(&payload), len / 4096, "slices: %zu",
                  ax_lease_slice_count(&payload));
    cr_assert_gt(ax_lease_len(&payload), len);
    ax_lease_release(&payload);
    st = stats_of(sender);
    cr_assert_geq(st.chunks_allocated, len / 4096);
    cr_assert_eq(st.bytes_allocated, st.chunks_allocated * 4096);

    cr_assert_eq(ax_net_msg_deserialise(r->e[0].nm, &ax_bytes_type, &out), AX_OK);
    cr_assert_eq(((ax_bytes_msg_t *)out)->len, len);
    cr_assert_eq(memcmp(((ax_bytes_msg_t *)out)->data, data, len), 0, "the bytes differ");
    ax_msg_release(&out);
    /* The view of a chained payload holds a flat copy, byte-exact too. */
    cr_assert_eq(ax_net_msg_deserialise(r->e[0].nm, &ax_bytes_view_type, &out), AX_OK);
    cr_assert_eq(((ax_bytes_msg_t *)out)->len, len);
    cr_assert_eq(memcmp(((ax_bytes_msg_t *)out)->data, data, len), 0, "the view's bytes differ");
    ax_msg_release(&out);

    RUN_ON(receiver, do_release_all, NULL);
    st = stats_of(sender);
    cr_assert_eq(st.chunks_leased, 0, "every chunk of the chain is unleased");
    ax_msg_release(&m);
    free(data);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    AXT_ASSERT_NO_BAD();
}

/* ---- paths -------------------------------------------------------------- */

static void assert_unique_path_of(const ax_path_t *p, ax_system_t *sys, ax_ref_t ref)
{
    ax_path_t want;
    ax_addr_t addr;
    char a[AX_PATH_STR_MAX], b[AX_PATH_STR_MAX];

    cr_assert_eq(ax_ref_path(ref, &want), AX_OK);
    ax_system_address(sys, &addr);
    ax_path_format(p, a, sizeof a);
    ax_path_format(&want, b, sizeof b);
    cr_assert_eq(ax_path_cmp(p, &want), 0, "%s is not %s", a, b);
    cr_assert_eq(p->kind, AX_PATH_UNIQUE);
    cr_assert_eq(p->id, ax_ref_id(ref));
    cr_assert(ax_addr_eq(&p->addr, &addr));
}

Test(eager, net_message_names_sender_and_receiver)
{
    ax_system_t *sys = axt_system(2);
    node_t *s = node_new(RX_DECODE, &ax_u64_type), *r = node_new(RX_DECODE, &ax_u64_type);
    ax_ref_t sender, receiver;
    ax_msg_t *m = NULL;

    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    cr_assert_eq(ax_u64_msg_new(5, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(sender, receiver, &ax_u64_type, m), AX_OK);
    wait_got(r, 1);
    cr_assert_eq(r->src_st, AX_OK);
    cr_assert_eq(r->dst_st, AX_OK);
    assert_unique_path_of(&r->src, sys, sender);
    assert_unique_path_of(&r->dst, sys, receiver);
    cr_assert_eq(r->sender_st, AX_OK);
    cr_assert(ax_ref_eq(r->sender, sender), "net_msg_sender gives the sender's ref");
    cr_assert_eq(r->session, 0, "a message from this system has session 0");
    cr_assert_eq(((ax_u64_msg_t *)r->e[0].msg)->value, 5);

    /* The receiver replies through the ref it got: the paths swap. */
    cr_assert_eq(axt_tell_serialised_from(receiver, r->sender, &ax_u64_type, m), AX_OK);
    wait_got(s, 1);
    assert_unique_path_of(&s->src, sys, receiver);
    assert_unique_path_of(&s->dst, sys, sender);
    cr_assert(ax_ref_eq(s->sender, receiver));
    cr_assert_eq(((ax_u64_msg_t *)s->e[0].msg)->value, 5);
    ax_msg_release(&m);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    AXT_ASSERT_NO_BAD();
}

/* Messages from one sender to one receiver arrive in the order sent. */
Test(eager, one_sender_keeps_its_order)
{
    ax_system_t *sys = axt_system(2);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_DECODE, &tick_type);
    ax_ref_t sender = node_spawn(sys, s), receiver = node_spawn(sys, r);
    enum { N = 200 };

    for (uint64_t i = 0; i < N; i++) {
        ax_msg_t *m = tick_new(i);

        cr_assert_eq(axt_tell_serialised_from(sender, receiver, &tick_type, m), AX_OK);
        ax_msg_release(&m);
    }
    wait_got(r, N);
    for (uint64_t i = 0; i < N; i++) {
        cr_assert_eq(r->e[i].st, AX_OK);
        cr_assert_eq(((tick_t *)r->e[i].msg)->seq, i);
    }
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    cr_assert_eq(atomic_load(&tick_allocs), 2 * N);
    cr_assert_eq(atomic_load(&tick_releases), 2 * N);
    AXT_ASSERT_NO_BAD();
}

/* ---- preserialised payloads ----------------------------------------------- */

#define FANOUT 100

typedef struct fanout_job {
    ax_ref_t dst[FANOUT];
    const ax_msg_t *msg;
    ax_status_t pre_st, st[FANOUT];
} fanout_job_t;

/* Serialise once, send to every receiver, and release the handle at once:
 * the messages in flight keep their own reference. */
static void do_fanout(ax_actor_t *self, void *arg)
{
    fanout_job_t *f = arg;
    ax_preserialised_t *shared = NULL;

    f->pre_st = ax_preserialise(self, &ax_string_type, f->msg, &shared);
    if (f->pre_st != AX_OK)
        return;
    for (size_t i = 0; i < FANOUT; i++)
        f->st[i] = ax_tell_preserialised(self, f->dst[i], shared);
    ax_preserialised_release(&shared);
    AXT_CHECK(shared == NULL);
}

Test(eager, preserialise_once_to_a_hundred_receivers)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(1024, 1, 64);
    node_t *s = node_new(RX_IGNORE, NULL), *sink = node_new(RX_IGNORE, NULL);
    node_t *r[FANOUT];
    ax_ref_t sender, sink_ref;
    fanout_job_t *f = calloc(1, sizeof(*f));
    char text[1001];
    ax_msg_t *m = NULL, *churn = NULL;
    unsigned char *filler = pattern(900, 0xee);
    ax_buffer_pool_stats_t st;

    /* 1000 bytes: the payload fills a 1 KiB chunk alone, so only the
     * handle and the messages' own references keep that chunk. */
    memset(text, 'p', 1000);
    memcpy(text, "shared payload:", 15);
    text[1000] = '\0';
    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    sink_ref = node_spawn(sys, sink);
    for (size_t i = 0; i < FANOUT; i++) {
        r[i] = node_new(RX_KEEP, NULL);
        f->dst[i] = node_spawn(sys, r[i]);
    }
    cr_assert_eq(ax_string_msg_new(text, &m), AX_OK);
    f->msg = m;
    RUN_ON(sender, do_fanout, f);
    cr_assert_eq(f->pre_st, AX_OK);
    for (size_t i = 0; i < FANOUT; i++) {
        cr_assert_eq(f->st[i], AX_OK, "receiver %zu: %s", i, ax_status_name(f->st[i]));
        wait_got(r[i], 1);
        axt_flush(f->dst[i]);
    }

    /* The handle is gone and the receivers still hold their messages.
     * Churn the sender's pool: any chunk that came back too early would be
     * written over here. */
    cr_assert_eq(ax_bytes_msg_new(filler, 900, &churn), AX_OK);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(axt_tell_serialised_from(sender, sink_ref, &ax_bytes_type, churn), AX_OK, "churn %d", i);
        wait_got(sink, 1);
    }
    axt_flush(sink_ref);

    for (size_t i = 0; i < FANOUT; i++) {
        ax_msg_t *out = NULL;

        cr_assert_eq(ax_net_msg_serialiser(r[i]->e[0].nm), AX_SER_STRING);
        cr_assert_eq(ax_net_msg_deserialise(r[i]->e[0].nm, &ax_string_type, &out), AX_OK);
        cr_assert_eq(((ax_string_msg_t *)out)->len, 1000);
        cr_assert_eq(memcmp(((ax_string_msg_t *)out)->data, text, 1000), 0, "receiver %zu", i);
        assert_unique_path_of(&r[i]->dst, sys, f->dst[i]);
        assert_unique_path_of(&r[i]->src, sys, sender);
        ax_msg_release(&out);
        RUN_ON(f->dst[i], do_release_all, NULL);
    }
    st = stats_of(sender);
    cr_assert_eq(st.chunks_leased, 0, "%zu chunks still leased", st.chunks_leased);
    cr_assert_eq(st.exhausted, 0);

    ax_msg_release(&m);
    ax_msg_release(&churn);
    free(filler);
    free(f);
    axt_shutdown(&sys);
    node_free(s);
    node_free(sink);
    for (size_t i = 0; i < FANOUT; i++)
        node_free(r[i]);
    AXT_ASSERT_NO_BAD();
}

/* ---- exhaustion and recovery ---------------------------------------------- */

typedef struct burst_job {
    ax_ref_t dst;
    const ax_msg_t *bytes; /* NULL: ticks; else this ax_bytes_type message */
    uint64_t next_seq; /* the seq of the next successful send */
    uint64_t sent;     /* successful sends in this burst */
    ax_status_t last;  /* the status that ended the burst */
    ax_buffer_pool_stats_t stats;
} burst_job_t;

/* Send ticks (or b->bytes) until the pool runs out (bounded), then read
 * the stats. */
static void do_burst(ax_actor_t *self, void *arg)
{
    burst_job_t *b = arg;

    b->sent = 0;
    for (int tries = 0; tries < 10000; tries++) {
        if (b->bytes != NULL) {
            b->last = ax_tell_serialised(self, b->dst, &ax_bytes_type, b->bytes);
        } else {
            ax_msg_t *m = tick_new(b->next_seq);

            b->last = ax_tell_serialised(self, b->dst, &tick_type, m);
            ax_msg_release(&m);
        }
        if (b->last != AX_OK)
            break;
        b->next_seq++;
        b->sent++;
    }
    ax_actor_buffer_stats(self, &b->stats);
}

static void assert_tick(const ax_net_msg_t *nm, uint64_t seq)
{
    ax_msg_t *out = NULL;

    cr_assert_not_null(nm);
    cr_assert_eq(ax_net_msg_deserialise(nm, &tick_type, &out), AX_OK);
    cr_assert_eq(((tick_t *)out)->seq, seq);
    ax_msg_release(&out);
}

Test(eager, exhausted_pool_returns_enobufs_and_recovers)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(256, 1, 2);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_KEEP, NULL);
    ax_ref_t sender, receiver;
    /* Ticks of 2^40 and up all encode in 9 bytes: every frame is the same
     * size, so both bursts fit exactly the same number. */
    burst_job_t b = {.next_seq = (uint64_t)1 << 40};
    uint64_t first;

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    b.dst = receiver;

    RUN_ON(sender, do_burst, &b);
    cr_assert_eq(b.last, AX_ENOBUFS, "burst ended with %s", ax_status_name(b.last));
    cr_assert_gt(b.sent, 2, "a 256 B chunk holds several ticks");
    cr_assert_eq(b.stats.chunks_allocated, 2);
    cr_assert_eq(b.stats.exhausted, 1);
    first = b.sent;
    wait_got(r, first);
    axt_flush(receiver);
    cr_assert_eq(atomic_load(&r->n), first, "the failed send delivered nothing");

    /* Still exhausted while the receiver holds everything. */
    RUN_ON(sender, do_burst, &b);
    cr_assert_eq(b.last, AX_ENOBUFS);
    cr_assert_eq(b.sent, 0);
    axt_flush(receiver);
    cr_assert_eq(atomic_load(&r->n), first);

    /* Every successful send arrived exactly once, in order. */
    for (uint64_t i = 0; i < first; i++)
        assert_tick(r->e[i].nm, ((uint64_t)1 << 40) + i);

    /* The receiver lets go: the whole pool is usable again. */
    RUN_ON(receiver, do_release_all, NULL);
    RUN_ON(sender, do_burst, &b);
    cr_assert_eq(b.last, AX_ENOBUFS);
    cr_assert_eq(b.sent, first, "after recovery: %llu sends, before: %llu",
                 (unsigned long long)b.sent, (unsigned long long)first);
    cr_assert_eq(b.stats.chunks_allocated, 2);
    wait_got(r, b.sent);
    axt_flush(receiver);

    cr_assert_eq(atomic_load(&r->n), 2 * first);
    for (uint64_t i = first; i < 2 * first; i++)
        assert_tick(r->e[i].nm, ((uint64_t)1 << 40) + i);
    RUN_ON(receiver, do_release_all, NULL);
    cr_assert_eq(stats_of(sender).chunks_leased, 0);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    cr_assert_eq(atomic_load(&tick_allocs), atomic_load(&tick_releases));
    AXT_ASSERT_NO_BAD();
}

/*
 * With the system's defaults, an actor's pool holds 256 chunks of 128 KiB
 * (32 MiB) of frames not yet released, and no more: a 64 KiB message's
 * frame takes a chunk of its own, so the 257th send, while the receiver
 * keeps every frame, is refused with AX_ENOBUFS and sends nothing. Each of
 * the 256 arrives once, in order, byte for byte, and every chunk comes back.
 */
#define BIG_LEN ((size_t)65536)

Test(eager, defaults_queue_at_most_256_chunks_of_frames)
{
    ax_system_t *sys = axt_system(2);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_KEEP, NULL);
    unsigned char *body = pattern(BIG_LEN, 7);
    ax_msg_t *m = NULL;
    ax_ref_t sender, receiver;
    burst_job_t b = {0};

    cr_assert_eq(ax_bytes_msg_new(body, BIG_LEN, &m), AX_OK);
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    b.dst = receiver;
    b.bytes = m;
    RUN_ON(sender, do_burst, &b);
    cr_assert_eq(b.last, AX_ENOBUFS, "the burst ended with %s after %llu sends", ax_status_name(b.last),
                 (unsigned long long)b.sent);
    cr_assert_eq(b.sent, 256, "%llu sends of 64 KiB were queued", (unsigned long long)b.sent);
    cr_assert_eq(b.stats.chunks_allocated, 256);
    cr_assert_eq(b.stats.bytes_allocated, (size_t)256 * 128 * 1024);
    cr_assert_eq(b.stats.exhausted, 1);

    wait_got(r, 256);
    axt_flush(receiver);
    cr_assert_eq(atomic_load(&r->n), 256, "the refused send delivered something");
    for (size_t i = 0; i < 256; i++) {
        ax_msg_t *out = NULL;
        const ax_bytes_msg_t *got;

        cr_assert_eq(ax_net_msg_deserialise(r->e[i].nm, &ax_bytes_type, &out), AX_OK, "message %zu", i);
        got = (const ax_bytes_msg_t *)out;
        cr_assert_eq(got->len, BIG_LEN, "message %zu", i);
        cr_assert_eq(memcmp(got->data, body, BIG_LEN), 0, "message %zu differs", i);
        ax_msg_release(&out);
    }
    RUN_ON(receiver, do_release_all, NULL);
    cr_assert_eq(stats_of(sender).chunks_leased, 0);
    ax_msg_release(&m);
    free(body);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    AXT_ASSERT_NO_BAD();
}

/* ---- where an actor's BufferConfig comes from ------------------------------ */

static ax_system_t *system_with_chunk(size_t chunk, size_t initial)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cfg.buffer_config.chunk_size = chunk;
    cfg.buffer_config.initial_chunk_count = initial;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    return sys;
}

/* Send one u64 from a fresh actor to a sink and return its pool stats. */
static ax_buffer_pool_stats_t stats_after_first_send(ax_system_t *sys, node_t *s)
{
    node_t *sink = node_new(RX_IGNORE, NULL);
    ax_ref_t sender = node_spawn(sys, s), sink_ref = node_spawn(sys, sink);
    ax_msg_t *m = NULL;
    ax_buffer_pool_stats_t st;

    if (s->start_cfg == NULL && !s->start_init_null)
        cr_assert_eq(axt_buffer_stats(sender, &st), AX_ENOTFOUND, "no pool before the first tell_serialised");
    cr_assert_eq(ax_u64_msg_new(1, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(sender, sink_ref, &ax_u64_type, m), AX_OK);
    st = stats_of(sender);
    wait_got(sink, 1);
    ax_msg_release(&m);
    axt_shutdown(&sys);
    node_free(sink);
    return st;
}

Test(buffers, init_buffers_in_on_start_wins)
{
    ax_system_t *sys = system_with_chunk(8192, 1);
    ax_buffer_config_t cfg = bufcfg(4096, 3, 10);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_buffer_pool_stats_t st;

    s->start_cfg = &cfg;
    st = stats_after_first_send(sys, s);
    cr_assert_eq(s->start_st, AX_OK);
    cr_assert_eq(st.chunks_allocated, 3);
    cr_assert_eq(st.bytes_allocated, 3 * 4096);
    node_free(s);
}

/* The pool exists from init_buffers on, before any send. */
Test(buffers, init_buffers_creates_the_pool_at_once)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 3, 10);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_ref_t sender;
    ax_buffer_pool_stats_t st;

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    st = stats_of(sender);
    cr_assert_eq(st.chunks_allocated, 3);
    cr_assert_eq(st.chunks_free, 3);
    cr_assert_eq(st.bytes_allocated, 3 * 4096);
    axt_shutdown(&sys);
    node_free(s);
}

Test(buffers, system_config_is_used_without_init_buffers)
{
    ax_system_t *sys = system_with_chunk(8192, 1);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_buffer_pool_stats_t st = stats_after_first_send(sys, s);

    cr_assert_eq(st.chunks_allocated, 1);
    cr_assert_eq(st.bytes_allocated, 8192);
    node_free(s);
}

/* init_buffers(self, NULL) takes the system's config too. */
Test(buffers, init_buffers_null_takes_the_system_config)
{
    ax_system_t *sys = system_with_chunk(8192, 3);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_buffer_pool_stats_t st;

    s->start_init_null = true;
    st = stats_after_first_send(sys, s);
    cr_assert_eq(s->start_st, AX_OK);
    cr_assert_eq(st.chunks_allocated, 3);
    cr_assert_eq(st.bytes_allocated, 3 * 8192);
    node_free(s);
}

Test(buffers, system_config_loaded_from_text_is_used)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_buffer_pool_stats_t st;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { threads = 2; buffer_config = {"
                                             " chunk_size = \"8KiB\"; initial_chunk_count = 1; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    st = stats_after_first_send(sys, s);
    cr_assert_eq(st.chunks_allocated, 1);
    cr_assert_eq(st.bytes_allocated, 8192);
    node_free(s);
}

Test(buffers, defaults_without_any_config)
{
    ax_system_t *sys = NULL;
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_buffer_pool_stats_t st;

    cr_assert_eq(ax_system_create(NULL, &sys), AX_OK);
    st = stats_after_first_send(sys, s);
    cr_assert_eq(st.chunks_allocated, AX_BUFFER_CONFIG_DEFAULT.initial_chunk_count);
    cr_assert_eq(st.bytes_allocated, AX_BUFFER_CONFIG_DEFAULT.initial_chunk_count * 128 * 1024);
    node_free(s);
}

Test(buffers, init_buffers_twice_is_estate)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 1, 4), other = bufcfg(8192, 2, 4);
    node_t *s = node_new(RX_IGNORE, NULL);
    init_job_t j = {.cfg = &other};
    ax_ref_t sender;
    ax_buffer_pool_stats_t st;

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    cr_assert_eq(s->start_st, AX_OK);
    RUN_ON(sender, do_init_buffers, &j);
    cr_assert_eq(j.st, AX_ESTATE);
    st = stats_of(sender);
    cr_assert_eq(st.bytes_allocated, 4096, "the first config stays");
    axt_shutdown(&sys);
    node_free(s);
}

Test(buffers, init_buffers_after_tell_serialised_is_estate)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 1, 4);
    node_t *s = node_new(RX_IGNORE, NULL), *sink = node_new(RX_IGNORE, NULL);
    init_job_t j = {.cfg = &cfg};
    ax_ref_t sender = node_spawn(sys, s), sink_ref = node_spawn(sys, sink);
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_u64_msg_new(9, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(sender, sink_ref, &ax_u64_type, m), AX_OK);
    RUN_ON(sender, do_init_buffers, &j);
    cr_assert_eq(j.st, AX_ESTATE);
    cr_assert_eq(stats_of(sender).bytes_allocated, AX_BUFFER_CONFIG_DEFAULT.initial_chunk_count * 128 * 1024);
    ax_msg_release(&m);
    axt_shutdown(&sys);
    node_free(s);
    node_free(sink);
}

/* An invalid config is refused and leaves no pool behind: a valid one can
 * still be given. */
Test(buffers, invalid_init_buffers_is_einval_and_applies_nothing)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t bad[] = {
        bufcfg(100, 1, 4),                      /* chunk below 128 B */
        bufcfg(4096, 5, 4),                     /* initial above max */
        bufcfg(4096, 1, 0),                     /* max 0 */
        {.chunk_size = 256, .initial_chunk_count = 1, .max_chunk_count = 4,
         .encode_buf_min_free_space = 256},     /* min free space not below chunk */
    };
    ax_buffer_config_t good = bufcfg(4096, 2, 4);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_ref_t sender = node_spawn(sys, s);
    ax_buffer_pool_stats_t none;
    init_job_t j;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = (init_job_t){.cfg = &bad[i]};
        RUN_ON(sender, do_init_buffers, &j);
        cr_assert_eq(j.st, AX_EINVAL, "bad config %zu: %s", i, ax_status_name(j.st));
    }
    cr_assert_eq(axt_buffer_stats(sender, &none), AX_ENOTFOUND, "a refused config creates no pool");
    j = (init_job_t){.cfg = &good};
    RUN_ON(sender, do_init_buffers, &j);
    cr_assert_eq(j.st, AX_OK);
    cr_assert_eq(stats_of(sender).bytes_allocated, 2 * 4096);
    axt_shutdown(&sys);
    node_free(s);
}

/* ---- what is freed --------------------------------------------------------- */

/*
 * The receiver returns AX_OK without looking at its messages: the runtime
 * releases every NetMessage and its lease. With two 256 B chunks the sender
 * could not send 200 ticks one after another unless each was freed (one
 * chunk holds only a few).
 */
Test(freeing, receiver_that_never_deserialises_frees_everything)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(256, 1, 2);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_IGNORE, NULL);
    ax_ref_t sender, receiver;
    ax_buffer_pool_stats_t st;
    enum { N = 200 };

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    for (uint64_t i = 0; i < N; i++) {
        ax_msg_t *m = tick_new(i);

        cr_assert_eq(axt_tell_serialised_from(sender, receiver, &tick_type, m), AX_OK, "tick %llu",
                     (unsigned long long)i);
        ax_msg_release(&m);
        wait_got(r, 1);
    }
    axt_flush(receiver);
    st = stats_of(sender);
    cr_assert_eq(st.chunks_leased, 0);
    cr_assert_leq(st.chunks_allocated, 2);
    cr_assert_eq(st.chunks_free + st.chunks_active, st.chunks_allocated);
    cr_assert_eq(st.exhausted, 0);
    cr_assert_eq(atomic_load(&r->n), N);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    /* Only the sender's ticks exist: nobody decoded one. */
    cr_assert_eq(atomic_load(&tick_allocs), N);
    cr_assert_eq(atomic_load(&tick_releases), N);
    AXT_ASSERT_NO_BAD();
}

/* Like above, but many messages are in flight at once. */
typedef struct many_job {
    ax_ref_t dst;
    uint64_t n;
    ax_status_t st;
} many_job_t;

static void do_many(ax_actor_t *self, void *arg)
{
    many_job_t *j = arg;

    for (uint64_t i = 0; i < j->n && j->st == AX_OK; i++) {
        ax_msg_t *m = tick_new(i);

        j->st = ax_tell_serialised(self, j->dst, &tick_type, m);
        ax_msg_release(&m);
    }
}

Test(freeing, unread_messages_in_flight_are_freed)
{
    ax_system_t *sys = axt_system(2);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_IGNORE, NULL);
    ax_ref_t sender = node_spawn(sys, s), receiver = node_spawn(sys, r);
    many_job_t j = {.dst = receiver, .n = 5000};
    ax_buffer_pool_stats_t st;

    RUN_ON(sender, do_many, &j);
    cr_assert_eq(j.st, AX_OK);
    wait_got(r, j.n);
    axt_flush(receiver);
    st = stats_of(sender);
    cr_assert_eq(st.chunks_leased, 0);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    cr_assert_eq(atomic_load(&tick_allocs), j.n);
    cr_assert_eq(atomic_load(&tick_releases), j.n);
}

/* The sender ends (stop or kill) while the receiver still holds its
 * NetMessages: they stay readable, and their release frees the chunks of a
 * pool that is gone (ASan reports a leak or a use after free otherwise). */
static void check_sender_ends_while_leased(ax_status_t (*end)(ax_ref_t))
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 1, 16);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_KEEP, NULL);
    ax_ref_t sender, receiver;
    unsigned char *data[5];
    size_t len = 3000; /* one chunk each */

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    for (unsigned i = 0; i < 5; i++) {
        ax_msg_t *m = NULL;

        data[i] = pattern(len, i);
        cr_assert_eq(ax_bytes_msg_new(data[i], len, &m), AX_OK);
        cr_assert_eq(axt_tell_serialised_from(sender, receiver, &ax_bytes_type, m), AX_OK);
        ax_msg_release(&m);
    }
    wait_got(r, 5);
    cr_assert_eq(end(sender), AX_OK);
    AXT_WAIT_SEM(&s->ended);

    for (unsigned i = 0; i < 5; i++) {
        ax_msg_t *out = NULL;

        cr_assert_eq(ax_net_msg_deserialise(r->e[i].nm, &ax_bytes_type, &out), AX_OK);
        cr_assert_eq(((ax_bytes_msg_t *)out)->len, len);
        cr_assert_eq(memcmp(((ax_bytes_msg_t *)out)->data, data[i], len), 0, "message %u", i);
        ax_msg_release(&out);
        free(data[i]);
    }
    /* Released on the receiver's thread, after its sender has ended. */
    RUN_ON(receiver, do_release_all, NULL);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    AXT_ASSERT_NO_BAD();
}

Test(freeing, sender_stopped_while_its_leases_are_out)
{
    check_sender_ends_while_leased(ax_stop);
}

Test(freeing, sender_killed_while_its_leases_are_out)
{
    check_sender_ends_while_leased(ax_kill);
}

/* The sender is killed while its messages still wait in the receiver's
 * mailbox; the receiver then decodes them as views (zero copy) and the
 * test reads the views after the NetMessages are gone. */
typedef struct gate {
    sem_t in, open;
} gate_t;

static void do_wait_gate(ax_actor_t *self, void *arg)
{
    gate_t *g = arg;

    (void)self;
    sem_post(&g->in);
    AXT_CHECK(axt_sem_wait(&g->open, WAIT_S));
}

Test(freeing, sender_killed_while_its_messages_wait_in_a_mailbox)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(4096, 1, 16);
    node_t *s = node_new(RX_IGNORE, NULL), *r = node_new(RX_DECODE, &ax_bytes_view_type);
    ax_ref_t sender, receiver;
    unsigned char *data = pattern(2000, 7);
    gate_t g;
    sem_t job_done;
    ax_msg_t *m = NULL;

    sem_init(&g.in, 0, 0);
    sem_init(&g.open, 0, 0);
    sem_init(&job_done, 0, 0);
    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    receiver = node_spawn(sys, r);
    /* Hold the receiver in a job so the messages queue up. */
    cr_assert(axt_job_send(receiver, do_wait_gate, &g, &job_done));
    AXT_WAIT_SEM(&g.in);
    cr_assert_eq(ax_bytes_msg_new(data, 2000, &m), AX_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(axt_tell_serialised_from(sender, receiver, &ax_bytes_type, m), AX_OK);
    cr_assert_eq(ax_kill(sender), AX_OK);
    AXT_WAIT_SEM(&s->ended);
    sem_post(&g.open);
    AXT_WAIT_SEM(&job_done);
    wait_got(r, 3);
    axt_flush(receiver);

    for (int i = 0; i < 3; i++) {
        const ax_bytes_msg_t *b = (const ax_bytes_msg_t *)r->e[i].msg;

        cr_assert_eq(r->e[i].st, AX_OK);
        cr_assert_eq(b->len, 2000);
        cr_assert_eq(memcmp(b->data, data, 2000), 0, "view %d", i);
    }
    node_release_all(r); /* on the test's thread: the last release frees the chunks */
    ax_msg_release(&m);
    free(data);
    axt_shutdown(&sys);
    node_free(s);
    node_free(r);
    sem_destroy(&g.in);
    sem_destroy(&g.open);
    sem_destroy(&job_done);
    AXT_ASSERT_NO_BAD();
}

/* ---- dead letters ------------------------------------------------------------- */

typedef struct dl_seen {
    _Atomic int netmsgs;
    ax_status_t status;
    ax_ref_t recipient;
    ax_status_t decode_st;
    uint64_t value;
} dl_seen_t;

static void on_letter(dl_log_t *log, const ax_dead_letter_t *dl)
{
    dl_seen_t *seen = log->ctx;
    ax_msg_t *out = NULL;

    if (dl->msg == NULL || dl->msg->type != &ax_net_msg_type)
        return;
    seen->status = dl->status;
    seen->recipient = dl->recipient;
    seen->decode_st = ax_net_msg_deserialise((const ax_net_msg_t *)dl->msg, &ax_u64_type, &out);
    if (out != NULL)
        seen->value = ((ax_u64_msg_t *)out)->value;
    ax_msg_release(&out);
    atomic_fetch_add(&seen->netmsgs, 1);
}

Test(dead_letters, tell_serialised_to_an_ended_actor_is_a_dead_letter)
{
    ax_system_t *sys = axt_system(2);
    dl_seen_t seen = {0};
    dl_log_t log = {.on_letter = on_letter, .ctx = &seen};
    node_t *s = node_new(RX_IGNORE, NULL), *gone = node_new(RX_IGNORE, NULL);
    ax_ref_t sender, dead;
    ax_msg_t *m = NULL;

    axt_collect_dead_letters(sys, &log);
    sender = node_spawn(sys, s);
    dead = node_spawn(sys, gone);
    log.watch = dead;
    cr_assert_eq(ax_stop(dead), AX_OK);
    AXT_WAIT_SEM(&gone->ended);

    cr_assert_eq(ax_u64_msg_new(31337, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(sender, dead, &ax_u64_type, m), AX_OK);
    AXT_WAIT_COUNT(log.count, 1);
    cr_assert_eq(atomic_load(&seen.netmsgs), 1, "the dead letter carries the NetMessage");
    cr_assert_eq(seen.status, AX_ECLOSED);
    cr_assert(ax_ref_eq(seen.recipient, dead));
    cr_assert_eq(atomic_load(&log.for_watch), 1);
    cr_assert_eq(seen.decode_st, AX_OK);
    cr_assert_eq(seen.value, 31337);
    cr_assert_eq(atomic_load(&gone->n), 0);
    ax_msg_release(&m);
    axt_shutdown(&sys);
    node_free(s);
    node_free(gone);
    AXT_ASSERT_NO_BAD();
}

/* ---- refs from paths ---------------------------------------------------------- */

Test(paths, unique_path_resolves_to_the_same_actor)
{
    ax_system_t *sys = axt_system(2);
    node_t *n = node_new(RX_IGNORE, NULL);
    ax_ref_t a = node_spawn(sys, n), back = AX_REF_NULL;
    ax_path_t p;
    ax_msg_t *m;
    void *sent;

    cr_assert_eq(ax_ref_path(a, &p), AX_OK);
    cr_assert_eq(p.kind, AX_PATH_UNIQUE);
    cr_assert_eq(p.id, ax_ref_id(a));
    cr_assert_eq(ax_ref_from_path(sys, &p, &back), AX_OK);
    cr_assert(ax_ref_eq(back, a));

    /* A local message through the resolved ref still moves by pointer. */
    m = tick_new(3);
    sent = m;
    cr_assert_eq(ax_tell(back, &m, AX_REF_NULL), AX_OK);
    cr_assert_null(m);
    AXT_WAIT_SEM(&n->local);
    cr_assert_eq((void *)n->local_msg, sent, "the receiver got the very same message");
    cr_assert_eq(((tick_t *)n->local_msg)->seq, 3);
    cr_assert_eq(atomic_load(&n->n), 0, "not as a NetMessage");
    axt_shutdown(&sys);
    node_free(n);
    cr_assert_eq(atomic_load(&tick_allocs), 1);
    cr_assert_eq(atomic_load(&tick_releases), 1);
}

/* The text form parses back to the same actor. */
Test(paths, formatted_path_parses_and_resolves)
{
    ax_system_t *sys = axt_system(2);
    node_t *n = node_new(RX_IGNORE, NULL);
    ax_ref_t a = node_spawn(sys, n), back = AX_REF_NULL;
    ax_path_t p, q;
    char text[AX_PATH_STR_MAX];

    cr_assert_eq(ax_ref_path(a, &p), AX_OK);
    ax_path_format(&p, text, sizeof text);
    cr_assert_eq(ax_path_parse(text, &q), AX_OK, "%s: %s", text, ax_error_detail());
    cr_assert_eq(ax_ref_from_path(sys, &q, &back), AX_OK);
    cr_assert(ax_ref_eq(back, a));
    axt_shutdown(&sys);
    node_free(n);
}

Test(paths, unknown_or_ended_id_is_not_found)
{
    ax_system_t *sys = axt_system(2);
    node_t *n = node_new(RX_IGNORE, NULL);
    ax_ref_t a = node_spawn(sys, n), back = AX_REF_NULL;
    ax_path_t p;

    cr_assert_eq(ax_ref_path(a, &p), AX_OK);
    p.id = ax_ref_id(a) + 1000;
    cr_assert_eq(ax_ref_from_path(sys, &p, &back), AX_ENOTFOUND);
    cr_assert(ax_ref_is_null(back));
    p.id = ax_ref_id(a);
    cr_assert_eq(ax_stop(a), AX_OK);
    AXT_WAIT_SEM(&n->ended);
    cr_assert_eq(ax_ref_from_path(sys, &p, &back), AX_ENOTFOUND, "an ended actor is gone");
    axt_shutdown(&sys);
    node_free(n);
}

Test(paths, named_path_resolves_through_register)
{
    ax_system_t *sys = axt_system(2);
    node_t *n = node_new(RX_IGNORE, NULL);
    ax_ref_t a = node_spawn(sys, n), back = AX_REF_NULL;
    ax_addr_t addr;
    ax_path_t p;
    char addr_text[64], text[AX_PATH_STR_MAX];

    ax_system_address(sys, &addr);
    ax_addr_format(&addr, addr_text, sizeof addr_text);
    snprintf(text, sizeof text, "tcp://%s/svc/echo", addr_text);
    cr_assert_eq(ax_path_parse(text, &p), AX_OK, "%s: %s", text, ax_error_detail());
    cr_assert_eq(ax_ref_from_path(sys, &p, &back), AX_ENOTFOUND, "not registered yet");
    cr_assert_eq(ax_register(sys, a, "svc/echo"), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &p, &back), AX_OK);
    cr_assert(ax_ref_eq(back, a));
    axt_shutdown(&sys);
    node_free(n);
}

/* A path on another address is a remote ref; without a network, sends to
 * it fail with AX_ENOTFOUND, the caller keeps its message, and nothing of
 * the encoded frames stays leased. */
typedef struct remote_job {
    ax_ref_t dst;
    int n;
    ax_status_t st[64];
} remote_job_t;

static void do_remote_sends(ax_actor_t *self, void *arg)
{
    remote_job_t *j = arg;

    for (int i = 0; i < j->n; i++) {
        ax_msg_t *m = tick_new((uint64_t)i);

        j->st[i] = ax_tell_serialised(self, j->dst, &tick_type, m);
        ax_msg_release(&m);
    }
}

Test(paths, another_address_gives_a_remote_ref_that_cannot_send_yet)
{
    ax_system_t *sys = axt_system(2);
    ax_buffer_config_t cfg = bufcfg(256, 1, 1);
    node_t *s = node_new(RX_IGNORE, NULL);
    ax_ref_t sender, remote = AX_REF_NULL, again = AX_REF_NULL;
    ax_path_t p, q;
    ax_msg_t *m;
    remote_job_t j = {.n = 64};
    ax_buffer_pool_stats_t st;

    s->start_cfg = &cfg;
    sender = node_spawn(sys, s);
    cr_assert_eq(ax_path_parse("tcp://10.1.2.3:9000#5", &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &p, &remote), AX_OK);
    cr_assert(!ax_ref_is_null(remote));
    cr_assert(!ax_ref_eq(remote, sender));
    cr_assert_eq(ax_ref_path(remote, &q), AX_OK);
    cr_assert_eq(ax_path_cmp(&p, &q), 0);
    cr_assert_eq(ax_ref_from_path(sys, &p, &again), AX_OK);
    cr_assert(ax_ref_eq(again, remote), "one path, one remote ref");

    m = tick_new(1);
    cr_assert_eq(ax_tell(remote, &m, AX_REF_NULL), AX_ENOTFOUND);
    cr_assert_not_null(m, "the caller keeps the message after an error");
    cr_assert_eq(((tick_t *)m)->seq, 1);
    ax_msg_release(&m);

    /* 64 frames through a single 256 B chunk: had one stayed leased, the
     * pool would run out (AX_ENOBUFS) long before the end. */
    j.dst = remote;
    RUN_ON(sender, do_remote_sends, &j);
    for (int i = 0; i < j.n; i++)
        cr_assert_eq(j.st[i], AX_ENOTFOUND, "send %d: %s", i, ax_status_name(j.st[i]));
    st = stats_of(sender);
    cr_assert_eq(st.exhausted, 0);
    cr_assert_eq(st.chunks_leased, 0);
    axt_shutdown(&sys);
    node_free(s);
    cr_assert_eq(atomic_load(&tick_allocs), 1 + 64);
    cr_assert_eq(atomic_load(&tick_releases), 1 + 64);
}

/*
 * A stale ref (its actor ended and its cell was reused by a new actor)
 * must not disturb the new actor's path: the new actor's unique path
 * still resolves to it.
 */
#define SPARES 16

Test(paths, stale_ref_does_not_hide_the_actor_that_reuses_its_cell)
{
    ax_system_t *sys = axt_system(2);
    node_t *old = node_new(RX_IGNORE, NULL), *fresh = NULL;
    ax_ref_t a = node_spawn(sys, old), b = AX_REF_NULL, back = AX_REF_NULL;
    ax_path_t pa, pb;
    bool reused = false;

    cr_assert_eq(ax_stop(a), AX_OK);
    AXT_WAIT_SEM(&old->ended);
    cr_assert(axt_wait_alive(sys, 0, WAIT_S));
    /* Cells are recycled: spawn until one lands in a's cell (bounded). */
    node_t *spare[SPARES] = {0};
    for (int i = 0; i < SPARES && !reused; i++) {
        spare[i] = node_new(RX_IGNORE, NULL);
        b = node_spawn(sys, spare[i]);
        reused = b.target == a.target;
        if (reused)
            fresh = spare[i];
    }
    if (!reused) {
        axt_shutdown(&sys);
        node_free(old);
        for (int i = 0; i < SPARES; i++)
            node_free(spare[i]);
        cr_skip_test("no new actor reused the ended actor's cell");
    }
    cr_assert_eq(ax_ref_path(a, &pa), AX_OK); /* the path of the stale ref */
    cr_assert_eq(ax_ref_from_path(sys, &pa, &back), AX_ENOTFOUND);
    cr_assert_eq(ax_ref_path(b, &pb), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &pb, &back), AX_OK, "the new actor's path must resolve: %s",
                 ax_error_detail());
    cr_assert(ax_ref_eq(back, b));
    axt_shutdown(&sys);
    node_free(old);
    for (int i = 0; i < SPARES; i++)
        if (spare[i] != NULL)
            node_free(spare[i]);
    cr_assert_not_null(fresh);
}
