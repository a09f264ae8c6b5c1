/*
 * Path ids between two Axon systems (docs/wire.md section 6.1), across a
 * reconnect: a relay between them reads the frames system A writes and
 * cuts the connection mid-stream. Each connection must start a fresh
 * table (the first Data frame on it defines the receiver's id again), the
 * stream must use references after that, and the messages must still
 * arrive in order, with every one delivered or dead-lettered (or both,
 * for one delivered whose Ack the cut lost).
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

#define RELAY_WAIT_S 10.0
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
 * every acknowledged one handled by the sink. */
static bool wait_settled(ax_system_t *a, nt_node_t *sink, nt_dl_t *dl, uint64_t n)
{
    double end = axt_now() + RELAY_WAIT_S;
    ax_net_stats_t st;

    for (;;) {
        if (ax_net_stats(a, &st) != AX_OK || axt_now() > end)
            return false;
        if (st.acked + atomic_load(&dl->count) >= n && atomic_load(&sink->received) >= st.acked)
            return true;
        axt_sleep_us(2000);
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
    for (uint64_t i = FIRST; i < TOTAL; i++)
        cr_assert_eq(nt_send_seq(to, i), AX_OK);
    cr_assert(wait_settled(a, &sink, &dl, TOTAL), "delivered %llu + dead-lettered %llu of %d",
              (unsigned long long)atomic_load(&sink.received), (unsigned long long)atomic_load(&dl.count), TOTAL);

    cr_assert_eq(atomic_load(&sink.out_of_order), 0, "FIFO across the reconnect");
    cr_assert_eq(atomic_load(&sink.bad), 0);
    /* Each was delivered or dead-lettered; a frame delivered just before
     * the cut, whose Ack the cut lost, is both ("it may arrive even so"). */
    cr_assert_geq(atomic_load(&sink.received) + atomic_load(&dl.count), TOTAL);
    cr_assert_leq(atomic_load(&sink.received), TOTAL);
    cr_assert_eq(atomic_load(&dl.count), nt_dl_status(&dl, AX_ECLOSED), "only the unacknowledged, AX_ECLOSED");
    cr_assert_eq(sink.next, TOTAL, "the last message arrived, on the new connection");
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
