/*
 * Path ids between two Axon systems (docs/wire.md section 6.1), across a
 * reconnect: a relay between them reads the frames system A writes and
 * cuts the connection mid-stream. Each connection must start a fresh
 * table (the first Data frame on it defines the receiver's id again), the
 * stream must use references after that, and the messages must still
 * arrive in order, with every one delivered or dead-lettered (or both,
 * for one delivered whose Ack the cut lost).
 *
 * And a backlog of frames with path-id heads, Acks among them, written in
 * batches: each batch must end on a frame's last byte or inside the frame
 * it stopped at, never skip one (a bug that broke the 64 KiB case of
 * bench_net_procs: the peer closed the stream as malformed).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

/* Every wait ends at its outcome: only a failing test waits this long
 * (the sanitizer builds move 20,000 frames of 3 KB through the relay). */
#define RELAY_WAIT_S WAIT_S
#define MAX_CONNS 8

/* What the relay saw A write on one connection. */
typedef struct relay_conn {
    uint64_t data;        /* Data frames */
    uint64_t defs, refs;  /* whose receiver was a definition, a reference */
    bool first_defines;   /* the first Data frame defines the receiver */
    bool ref_before_def;  /* a reference came before any definition */
} relay_conn_t;

typedef struct relay {
    int lfd;
    uint16_t port, to_port;
    _Atomic bool cut, stop;
    _Atomic int conns;    /* connections relayed so far */
    _Atomic int accepted; /* connections A opened through the relay */
    relay_conn_t seen[MAX_CONNS];
    pthread_t thread;
} relay_t;

/* Frames of A's stream, byte by byte as they pass: a header, then a body
 * whose first bytes say how the receiver path came. */
typedef struct parser {
    unsigned char head[12];
    size_t have, body_left;
    uint8_t type;
} parser_t;

static void classify(const parser_t *p, relay_conn_t *rc)
{
    /* 93, then 92 (a definition), a fixint (a reference) or 94 (in full). */
    bool def = p->head[9] == 0x92, ref = p->head[9] < 0x80;

    if (rc->data == 0)
        rc->first_defines = def;
    if (ref && rc->defs == 0)
        rc->ref_before_def = true;
    rc->defs += def;
    rc->refs += ref;
    rc->data++;
}

static void parse(parser_t *p, relay_conn_t *rc, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->have < 8) {
            p->head[p->have++] = b[i];
            if (p->have == 8) {
                p->body_left = (size_t)p->head[0] << 24 | (size_t)p->head[1] << 16 |
                               (size_t)p->head[2] << 8 | p->head[3];
                p->type = p->head[4];
                if (p->body_left == 0)
                    p->have = 0;
            }
            continue;
        }
        if (p->type == 2 && p->have < 10) {
            p->head[p->have++] = b[i];
            if (p->have == 10)
                classify(p, rc);
        }
        if (--p->body_left == 0)
            p->have = 0;
    }
}

static bool pump(int from, int to, parser_t *p, relay_conn_t *rc)
{
    unsigned char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);

    if (n <= 0)
        return false;
    if (p != NULL)
        parse(p, rc, buf, (size_t)n);
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *relay_main(void *arg)
{
    relay_t *r = arg;

    while (!atomic_load(&r->stop)) {
        struct pollfd lp = {r->lfd, POLLIN, 0};
        int a, b, k;
        parser_t p = {0};

        if (poll(&lp, 1, 20) <= 0)
            continue;
        a = accept(r->lfd, NULL, NULL);
        if (a < 0)
            continue;
        atomic_fetch_add(&r->accepted, 1);
        b = nt_connect_port(r->to_port);
        k = atomic_load(&r->conns);
        if (b < 0 || k >= MAX_CONNS) {
            close(a);
            if (b >= 0)
                close(b);
            continue;
        }
        atomic_store(&r->cut, false);
        for (;;) {
            struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};

            if (atomic_load(&r->cut) || atomic_load(&r->stop))
                break;
            if (poll(fds, 2, 20) < 0 && errno != EINTR)
                break;
            if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(a, b, &p, &r->seen[k]))
                break;
            if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(b, a, NULL, NULL))
                break;
        }
        close(a);
        close(b);
        atomic_store(&r->conns, k + 1);
    }
    return NULL;
}

static void relay_start(relay_t *r, uint16_t to_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;

    memset(r, 0, sizeof *r);
    r->to_port = to_port;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(r->lfd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(r->lfd, 8), 0);
    cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
    r->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static void relay_stop(relay_t *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->lfd);
}

/* Every message settled at A (acknowledged by B, or dead-lettered), and
 * every one B read handled by the sink. A frame whose Ack the cut lost is
 * dead-lettered at A and may still be on its way to the sink, so the
 * sink's count is matched against what B read, not what A saw acked. */
static bool wait_settled(ax_system_t *a, ax_system_t *b, nt_node_t *sink, nt_dl_t *dl, uint64_t n)
{
    double end = axt_now() + RELAY_WAIT_S;
    ax_net_stats_t st, sb;

    for (;;) {
        if (ax_net_stats(a, &st) != AX_OK || ax_net_stats(b, &sb) != AX_OK || axt_now() > end)
            return false;
        if (st.acked + atomic_load(&dl->count) >= n && atomic_load(&sink->received) >= st.acked &&
            atomic_load(&sink->received) == sb.frames_received)
            return true;
        axt_sleep_us(2000);
    }
}

/* The relay closed its first connection, and A saw it: A has no
 * connection open, or (with frames left to write) it dialled again. */
static bool wait_cut_seen(ax_system_t *a, relay_t *r)
{
    double end = axt_now() + RELAY_WAIT_S;
    ax_net_stats_t st;

    for (;;) {
        if (ax_net_stats(a, &st) != AX_OK || axt_now() > end)
            return false;
        if (atomic_load(&r->conns) >= 1 && (st.connections == 0 || atomic_load(&r->accepted) >= 2))
            return true;
        axt_sleep_us(1000);
    }
}

Test(path_ids, fresh_table_after_reconnect_and_fifo)
{
    enum { FIRST = 3000, TOTAL = 6000 };
    ax_config_t cfg = nt_config();
    ax_system_t *a, *b;
    nt_node_t sink;
    nt_dl_t dl = {0};
    relay_t r;
    ax_ref_t sink_ref, dl_ref, to;
    double end;

    cfg.network.backoff_initial_ms = 5;
    cfg.network.backoff_max_ms = 50;
    cfg.network.max_retries = 100;
    cfg.network.peer_queue = TOTAL;
    b = nt_start(&cfg);
    a = nt_start(&cfg);
    cr_assert(a != NULL && b != NULL, "%s", ax_error_detail());
    nt_node_setup(&sink, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sink_ref), AX_OK);
    cr_assert_eq(ax_register(b, sink_ref, "sink"), AX_OK);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    relay_start(&r, nt_port(b));
    /* A reaches the sink through the relay: B ignores the address. */
    to = nt_ref_to(a, r.port, "sink");
    cr_assert(!ax_ref_is_null(to));

    for (uint64_t i = 0; i < FIRST; i++)
        cr_assert_eq(nt_send_seq(to, i), AX_OK);
    /* Cut mid-stream, once some have arrived. */
    end = axt_now() + RELAY_WAIT_S;
    while (atomic_load(&sink.received) < FIRST / 10 && axt_now() < end)
        axt_sleep_us(1000);
    atomic_store(&r.cut, true);
    /* The rest only once A has seen the cut: sent before, they could all
     * go down the dying connection (and be dead-lettered), and none would
     * show what a new connection does. A dials again when it next sends. */
    cr_assert(wait_cut_seen(a, &r), "A saw the relay close the connection");
    for (uint64_t i = FIRST; i < TOTAL; i++)
        cr_assert_eq(nt_send_seq(to, i), AX_OK);
    cr_assert(wait_settled(a, b, &sink, &dl, TOTAL), "delivered %llu + dead-lettered %llu of %d",
              (unsigned long long)atomic_load(&sink.received), (unsigned long long)atomic_load(&dl.count), TOTAL);

    cr_assert_eq(atomic_load(&sink.out_of_order), 0, "FIFO across the reconnect");
    cr_assert_eq(atomic_load(&sink.bad), 0);
    /* Each was delivered or dead-lettered; a frame delivered just before
     * the cut, whose Ack the cut lost, is both ("it may arrive even so"). */
    cr_assert_geq(atomic_load(&sink.received) + atomic_load(&dl.count), TOTAL);
    cr_assert_leq(atomic_load(&sink.received), TOTAL);
    cr_assert_eq(atomic_load(&dl.count), nt_dl_status(&dl, AX_ECLOSED), "only the unacknowledged, AX_ECLOSED");
    cr_assert_eq(sink.next, TOTAL, "the last message arrived, on the new connection (last seq %llu, received %llu, dead-lettered %llu, relay connections %d)",
                 (unsigned long long)sink.next, (unsigned long long)atomic_load(&sink.received),
                 (unsigned long long)atomic_load(&dl.count), atomic_load(&r.conns));
    cr_assert_geq(atomic_load(&sink.session_changes), 1, "a second connection carried the rest");
    relay_stop(&r);
    cr_assert_geq(atomic_load(&r.conns), 2);
    for (int k = 0; k < atomic_load(&r.conns); k++) {
        relay_conn_t *c = &r.seen[k];

        if (c->data == 0)
            continue;
        cr_assert(c->first_defines, "connection %d: its first Data frame defines the receiver again", k);
        cr_assert(!c->ref_before_def, "connection %d: no reference before its definition", k);
        cr_assert_eq(c->defs, 1, "connection %d: one definition (one path), got %llu", k,
                     (unsigned long long)c->defs);
        cr_assert_eq(c->refs, c->data - 1, "connection %d: references afterwards", k);
    }
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}

/* ---- a backlog of frames that span chunks ---------------------------- */

/* A seq followed by BIG_PAD bytes: [seq, bin]. A's dispatcher pool has
 * chunks of BIG_CHUNK bytes, so most frames span two chunks, and a frame
 * with a path-id head then takes three iovecs: a write batch of them
 * (256 iovecs) ends inside a frame. */
#define BIG_PAD 3000
#define BIG_CHUNK 4096
#define BIG_SER_ID (AX_SER_USER_MIN + 21)

static uint8_t big_pad[BIG_PAD];

static ax_status_t big_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    if (msgpack_pack_array(pk, 2) != 0 || msgpack_pack_uint64(pk, ((const seq_msg_t *)m)->seq) != 0 ||
        msgpack_pack_bin_with_body(pk, big_pad, sizeof big_pad) != 0)
        return AX_ENOBUFS;
    return AX_OK;
}

static ax_msg_t *big_new(uint64_t seq);

static ax_status_t big_deserialise(const msgpack_object *o, const ax_payload_t *payload, ax_msg_t **out)
{
    (void)payload;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_BIN || o->via.array.ptr[1].via.bin.size != BIG_PAD ||
        memcmp(o->via.array.ptr[1].via.bin.ptr, big_pad, BIG_PAD) != 0)
        return AX_EPROTO;
    *out = big_new(o->via.array.ptr[0].via.u64);
    return *out != NULL ? AX_OK : AX_ENOMEM;
}

static const ax_msg_type_t big_type = {
    .name = "test.big_seq",
    .size = sizeof(seq_msg_t),
    .serialiser_id = BIG_SER_ID,
    .serialise = big_serialise,
    .deserialise = big_deserialise,
};

static ax_msg_t *big_new(uint64_t seq)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&big_type, &m) != AX_OK)
        return NULL;
    ((seq_msg_t *)m)->seq = seq;
    return m;
}

/* B's sink: checks each frame and answers every fourth with a seq, so that
 * A's queue holds its Acks for those among its Data frames. */
static void big_on_net(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_msg_t *m = NULL;
    ax_ref_t back;
    uint64_t seq;

    if (ax_net_msg_deserialise(*nm, &big_type, &m) != AX_OK) {
        atomic_fetch_add(&n->bad, 1);
        return;
    }
    seq = ((seq_msg_t *)m)->seq;
    ax_msg_release(&m);
    nt_node_track(n, seq);
    if (seq % 4 == 0 && (ax_net_msg_sender(self, *nm, &back) != AX_OK || seq_send(self, back, seq, false) != AX_OK))
        atomic_fetch_add(&n->bad, 1);
}

/* Sent faster than the connection takes them, the frames queue for it,
 * with the Acks of B's answers among them, and its writes take full
 * batches. */
Test(path_ids, batches_of_frames_that_span_chunks_keep_the_stream_whole)
{
    enum { TOTAL = 20000 };
    ax_config_t cfg = nt_config();
    ax_system_t *a, *b;
    nt_node_t sink, back;
    nt_dl_t dl = {0};
    ax_ref_t sink_ref, back_ref, dl_ref, to;
    ax_net_stats_t sa, sb;
    double end;

    for (size_t i = 0; i < sizeof big_pad; i++)
        big_pad[i] = (uint8_t)(i * 131 + 7);
    cfg.network.peer_queue = TOTAL;
    b = nt_start(&cfg);
    cfg.network.buffer_config.chunk_size = BIG_CHUNK;
    cfg.network.buffer_config.max_chunk_count = 2 * TOTAL;
    a = nt_start(&cfg);
    cr_assert(a != NULL && b != NULL, "%s", ax_error_detail());
    nt_node_setup(&sink, NT_SINK);
    sink.on_net = big_on_net;
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &sink, &sink_ref), AX_OK);
    cr_assert_eq(ax_register(b, sink_ref, "sink"), AX_OK);
    nt_node_setup(&back, NT_SINK);
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &back, &back_ref), AX_OK);
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dl_ref), AX_OK);
    ax_set_dead_letter_actor(a, dl_ref);
    to = nt_ref_to(a, nt_port(b), "sink");
    cr_assert(!ax_ref_is_null(to));

    for (uint64_t i = 0; i < TOTAL; i++) {
        ax_msg_t *m = big_new(i);

        cr_assert_not_null(m);
        cr_assert_eq(ax_tell(to, &m, back_ref), AX_OK, "message %llu: %s", (unsigned long long)i,
                     ax_error_detail());
    }
    end = axt_now() + RELAY_WAIT_S;
    while ((atomic_load(&sink.received) < TOTAL || atomic_load(&back.received) < TOTAL / 4) &&
           atomic_load(&dl.count) == 0 && axt_now() < end)
        axt_sleep_us(2000);
    cr_assert_eq(ax_net_stats(a, &sa), AX_OK);
    cr_assert_eq(ax_net_stats(b, &sb), AX_OK);
    cr_assert_eq(sb.malformed, 0, "B read a broken stream from A (frames out of step)");
    cr_assert_eq(sa.reconnects, 0);
    cr_assert_eq(atomic_load(&dl.count), 0, "nothing dead-lettered");
    cr_assert_eq(atomic_load(&sink.received), TOTAL, "all %d delivered, got %llu", TOTAL,
                 (unsigned long long)atomic_load(&sink.received));
    cr_assert_eq(atomic_load(&sink.bad), 0);
    cr_assert_eq(atomic_load(&sink.out_of_order), 0);
    cr_assert_eq(atomic_load(&sink.gaps), 0);
    cr_assert_eq(sink.next, TOTAL);
    cr_assert_eq(atomic_load(&back.received), TOTAL / 4, "B's answers");
    cr_assert_eq(atomic_load(&back.out_of_order) + atomic_load(&back.bad), 0);
    ax_system_destroy(&a);
    ax_system_destroy(&b);
}
