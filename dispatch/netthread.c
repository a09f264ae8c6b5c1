/* The network thread: sockets, peers, connections, frames. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/fault.h"
#include "actor/sched.h"
#include "buffers/chunk.h"
#include "dispatch/net_internal.h"
#include "serial/msgmem.h"
#include "serial/mpcheck.h"

#define EVENTS_MAX 64
/* Slices per sendmsg: Linux's UIO_MAXIOV, the most one call takes. At 256,
 * 64 B frames (a path-id head and a payload slice each) left in writes of
 * 128 frames, about 10 KB; 1024 cut the CPU per message by up to 5%
 * (dispatch/NOTES.md, "Larger writes"). Such frames are staged now (below),
 * so the limit matters for larger ones. */
#define IOV_BATCH 1024
/* Frames of at most STAGE_FRAME_MAX bytes are copied into the network
 * thread's stage (ax__net_t.tx_stage), so that a run of them is one slice
 * of sendmsg instead of two per frame: the kernel's copy pays per slice
 * (dispatch/NOTES.md, "Coalesced small frames"). */
#define STAGE_FRAME_MAX 256
/* What one connection's reads take in one turn, before the actors they
 * woke run and the other connections are read (read_on; dispatch/NOTES.md,
 * "A turn reads at most 256 KiB of a connection"). */
#define NET_READ_TURN_BYTES (256u * 1024u)
#define RESUME_DELAY_NS (1000u * 1000u) /* retry paused reads after 1 ms */

#define ACCEPT_RETRY_NS (10u * 1000u * 1000u) /* out of descriptors: retry in 10 ms */

/* Spinning for replies (net_spin): clock reads every so many looks at the
 * inbox, and a look at the sockets every NET_SPIN_POLL_NS. */
#define NET_SPIN_CLOCK_EVERY 16u
#define NET_SPIN_POLL_NS (10u * 1000u)

/* Timer contexts that are not peers. */
static char resume_marker, deadline_marker, tick_marker, accept_marker;

static bool flush_now(ax__conn_t *c);
static bool closing_step(ax__conn_t *c);
static void ring_enter(ax__conn_t *c);

/* ---- small helpers ----------------------------------------------------- */

/* The ring slot i places after the unacked ring's head. ua_cap is 0 or a
 * power of two (64, doubled, quartered to no less than 64: unacked_push,
 * the tick's shrink), so a mask does what a modulo did with two 64-bit
 * divisions per frame on the network thread. */
static size_t ua_slot(const ax__conn_t *c, size_t i)
{
    return (c->ua_head + i) & (c->ua_cap - 1);
}

static void fifo_push(ax__nm_fifo_t *f, ax_net_msg_t *nm)
{
    nm->hdr.link.next = NULL;
    if (f->tail != NULL)
        f->tail->next = &nm->hdr.link;
    else
        f->head = &nm->hdr.link;
    f->tail = &nm->hdr.link;
    f->count++;
}

static ax_net_msg_t *fifo_pop(ax__nm_fifo_t *f)
{
    ax_msg_link_t *l = f->head;

    if (l == NULL)
        return NULL;
    f->head = l->next;
    if (f->head == NULL)
        f->tail = NULL;
    f->count--;
    return (ax_net_msg_t *)l;
}

void ax__nm_fifo_release(ax__nm_fifo_t *f)
{
    ax_net_msg_t *nm;

    while ((nm = fifo_pop(f)) != NULL) {
        ax_msg_t *m = &nm->hdr;

        ax_msg_release(&m);
    }
}

/* Move all of src to the front of dst, keeping both orders. */
static void fifo_prepend(ax__nm_fifo_t *dst, ax__nm_fifo_t *src)
{
    if (src->head == NULL)
        return;
    src->tail->next = dst->head;
    if (dst->tail == NULL)
        dst->tail = src->tail;
    dst->head = src->head;
    dst->count += src->count;
    *src = (ax__nm_fifo_t){0};
}

/* A ref to a frame's destination, which the frame pins. */
static ax_ref_t remote_ref(ax__remote_t *r)
{
    return ax__remote_ref(r, 0);
}

static void count_dead(ax__net_t *net)
{
    /* Two writers (this thread and the dispatcher): an atomic increment. */
    ck_pr_inc_64(&net->c.dead_lettered);
}

/* A serialised frame that will not be sent goes to dead letters. */
static void dead_frame(ax__net_t *net, ax_net_msg_t *nm, ax_status_t why)
{
    ax_msg_t *m = &nm->hdr;

    if (nm->wire == AX__WIRE_DATA) {
        ax_ref_t to = remote_ref(nm->route);

        count_dead(net);
        ax_dead_letter(net->sys, &m, why, to);
    } else {
        ax_msg_release(&m);
    }
}

static void dead_fifo(ax__net_t *net, ax__nm_fifo_t *f, ax_status_t why)
{
    ax_net_msg_t *nm;

    while ((nm = fifo_pop(f)) != NULL)
        dead_frame(net, nm, why);
}

/* A written frame that was never acknowledged. */
static void dead_unacked(ax__net_t *net, ax__conn_t *c, ax_status_t why)
{
    while (c->ua_count > 0) {
        ax__unacked_t *u = &c->unacked[c->ua_head];

        c->ua_head = ua_slot(c, 1);
        c->ua_count--;
        if (!u->returned) {
            ax_msg_t *m;

            count_dead(net);
            if (ax_msg_alloc(&ax_net_undelivered_type, &m) == AX_OK) {
                ((ax_net_undelivered_t *)m)->serialiser_id = u->serialiser_id;
                ((ax_net_undelivered_t *)m)->session = c->session;
                m->sender = u->from;
                ax_dead_letter(net->sys, &m, why, u->dst);
            } else if (ax__ref_is(u->from, AX__REF_REPLY)) {
                ax__ask_undelivered(u->from, why);
            }
        }
    }
}

/* ---- interest -------------------------------------------------------------- */

static void set_interest(ax__conn_t *c, uint32_t interest)
{
    if (c->state != AX__CONN_DEAD && c->interest != interest && ax__poller_modify(c->net->poller, c->reg, interest) == AX_OK)
        c->interest = interest;
}

static void mark_dirty(ax__conn_t *c)
{
    if (!c->dirty && c->state != AX__CONN_DEAD) {
        c->dirty = true;
        c->flush_next = c->net->flush_list;
        c->net->flush_list = c;
    }
}

/* ---- control frames --------------------------------------------------------- */

bool ax__queue_control(ax__conn_t *c, uint8_t type, ax_status_t status, ax__body_fn body,
                       const void *arg)
{
    ax__net_t *net = c->net;
    unsigned char hdr[AX__FRAME_HEADER_SIZE];
    ax_net_msg_t *nm;
    ax_lease_t frame;
    size_t mark, len;
    ax_status_t st = ax_encode_begin(net->ctl, 64);

    if (st != AX_OK)
        return false;
    st = ax_encode_reserve(net->ctl, AX__FRAME_HEADER_SIZE, &mark);
    if (st == AX_OK && body != NULL && body(ax_encode_packer(net->ctl), arg) != 0)
        st = AX_ENOBUFS;
    if (st != AX_OK) {
        ax_encode_abort(net->ctl);
        return false;
    }
    len = ax_encode_len(net->ctl) - AX__FRAME_HEADER_SIZE;
    ax__frame_header_write(hdr, &(ax__frame_header_t){(uint32_t)len, type, 0, ax_status_to_byte(status)});
    ax_encode_fill(net->ctl, mark, hdr, sizeof hdr);
    if (ax_encode_end(net->ctl, &frame) != AX_OK)
        return false;
    if (ax__net_msg_new(ax__system_netmsg_pool(net->sys), &frame, 0, 0, 0, &nm) != AX_OK) {
        ax_lease_release(&frame);
        return false;
    }
    nm->wire = AX__WIRE_CONTROL;
    fifo_push(&c->wq, nm);
    mark_dirty(c);
    return true;
}

static int pack_u64(msgpack_packer *pk, const void *arg)
{
    return msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

struct status_body {
    uint64_t seq;
    const ax_lease_t *frame; /* the Data frame returned, or NULL */
};

static int pack_status(msgpack_packer *pk, const void *arg)
{
    const struct status_body *s = arg;
    struct iovec iov[64];
    size_t len, first = 0, n;
    int rc;

    if (s->frame == NULL)
        return msgpack_pack_array(pk, 1) || msgpack_pack_uint64(pk, s->seq);
    len = ax__lease_len(s->frame) - AX__FRAME_HEADER_SIZE;
    rc = msgpack_pack_array(pk, 2) || msgpack_pack_uint64(pk, s->seq) || msgpack_pack_bin(pk, len);
    /* The returned body: every slice of the frame after its header. */
    while (rc == 0 && (n = ax_lease_iovec(s->frame, first, iov, 64)) > 0) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *p = iov[i].iov_base;
            size_t l = iov[i].iov_len;

            if (first == 0 && i == 0) {
                p += AX__FRAME_HEADER_SIZE;
                l -= AX__FRAME_HEADER_SIZE;
            }
            if (l > 0)
                rc = msgpack_pack_bin_body(pk, p, l);
        }
        first += n;
    }
    return rc;
}

static void send_ack(ax__conn_t *c)
{
    if (c->rx_frames > c->rx_acked && ax__queue_control(c, AX__FRAME_ACK, AX_OK, pack_u64, &c->rx_frames))
        c->rx_acked = c->rx_frames;
}

static void send_status(ax__conn_t *c, ax_status_t why, uint64_t seq, const ax_lease_t *frame)
{
    struct status_body s = {seq, frame};

    /* A frame too large for the control pool is returned without its
     * body: the sender still learns which one failed. */
    if (!ax__queue_control(c, AX__FRAME_STATUS, why, pack_status, &s)) {
        s.frame = NULL;
        ax__queue_control(c, AX__FRAME_STATUS, why, pack_status, &s);
    }
}

static void send_bye(ax__conn_t *c)
{
    if (!c->bye_sent && ax__queue_control(c, AX__FRAME_BYE, AX_OK, NULL, NULL))
        c->bye_sent = true;
}

/* ---- peers --------------------------------------------------------------- */

ax__peer_t *ax__peer_get(ax__net_t *net, const ax_addr_t *addr)
{
    ax__peer_t *p;

    for (p = net->peers; p != NULL; p = p->next)
        if (ax_addr_eq(&p->addr, addr))
            return p;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->addr = *addr;
    p->state = AX__PEER_IDLE;
    p->next = net->peers;
    net->peers = p;
    return p;
}

static void start_connect(ax__net_t *net, ax__peer_t *p);

/* A connection attempt for p failed: back off, or give up. */
static void attempt_failed(ax__net_t *net, ax__peer_t *p, ax_status_t why)
{
    uint64_t delay_ms;

    p->conn = NULL;
    p->attempts++;
    /* stopping: set once by another thread; a late read only delays the
     * stop by one loop turn. */
    if (p->attempts > net->cfg.max_retries || ck_pr_load_32(&net->stopping)) {
        p->state = AX__PEER_IDLE;
        p->attempts = 0;
        dead_fifo(net, &p->pending, ck_pr_load_32(&net->stopping) ? AX_ECLOSED : AX_ETIMEDOUT);
        ax__net_event(net, AX_NET_DROPPED, &p->addr, 0, why);
        return;
    }
    delay_ms = net->cfg.backoff_initial_ms << (p->attempts - 1 < 30 ? p->attempts - 1 : 30);
    if (delay_ms > net->cfg.backoff_max_ms || delay_ms < net->cfg.backoff_initial_ms)
        delay_ms = net->cfg.backoff_max_ms;
    p->state = AX__PEER_BACKOFF;
    if (ax__poller_timer_add(net->poller, delay_ms * 1000000u, p, &p->backoff_timer) != AX_OK)
        start_connect(net, p); /* no timer: try again at once rather than stall */
}

/* ---- connections ------------------------------------------------------------- */

static ax__conn_t *conn_new(ax__net_t *net, int fd, bool outgoing, ax__peer_t *peer)
{
    ax__conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->net = net;
    c->fd = fd;
    c->outgoing = outgoing;
    c->peer = peer;
    c->state = outgoing ? AX__CONN_TCP : AX__CONN_HELLO;
    /* RDHUP: a peer's shutdown shows in the event, so that on_readable
     * may stop at a short read (see there). */
    c->interest = AX__POLL_IN | AX__POLL_RDHUP | (outgoing ? AX__POLL_OUT : 0);
    if (!ax__hs_begin(c)) {
        free(c);
        return NULL;
    }
    if (ax__poller_add(net->poller, fd, c->interest, c, &c->reg) != AX_OK) {
        ax__hs_end(c);
        free(c);
        return NULL;
    }
    c->next = net->conns;
    net->conns = c;
    net->nconns++;
    ax__counter_add(&net->c.connections, 1);
    return c;
}

/* Free the connections that ended during this loop turn. Nothing else
 * frees a connection, so a pointer taken earlier in the turn is safe. */
static void reap(ax__net_t *net)
{
    for (ax__conn_t **pp = &net->conns; *pp != NULL;) {
        ax__conn_t *c = *pp;

        /* One whose receive a broken ring never gave back is never freed
         * (ax__ring_cancel): the kernel may still write to it. */
        if (c->state != AX__CONN_DEAD || c->ring_posted) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        free(c);
    }
}

/* Release what a connection holds and mark it DEAD; reap() frees it. */
static void conn_close(ax__conn_t *c)
{
    ax__net_t *net = c->net;

    for (ax__conn_t **pp = &net->flush_list; *pp != NULL; pp = &(*pp)->flush_next) {
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    }
    c->dirty = false;
    ax__hs_end(c);
    ax__poller_remove(net->poller, c->reg);
    /* Its receive through the ring ends before its decoder goes. */
    if (net->ring != NULL)
        ax__ring_cancel(net->ring, c);
    close(c->fd);
    c->fd = -1;
    ax__nm_fifo_release(&c->wq);
    if (c->ring_posted)
        c->rx = NULL; /* still the kernel's (a broken ring): never freed */
    ax_decode_buffer_destroy(&c->rx);
    free(c->pre);
    c->pre = NULL;
    free(c->unacked);
    c->unacked = NULL;
    c->ua_count = 0;
    c->ua_cap = 0;
    c->ua_head = 0;
    /* Path ids live as long as their connection (docs/wire.md 6.1). */
    ax__pathtab_free(c->tx_ids);
    c->tx_ids = NULL;
    ax__pathtab_free(c->route.ids);
    c->route.ids = NULL;
    c->route.env_len = 0; /* its view pointed into that table */
    c->tx_tag = 0;
    c->state = AX__CONN_DEAD;
    net->nconns--;
    ax__counter_add(&net->c.connections, (uint64_t)-1);
}

/*
 * The end of a connection, for whatever reason. Frames not yet written
 * go back to the peer's pending queue (they may still be sent on a new
 * connection); written ones not acknowledged go to dead letters. Safe to
 * call on a connection that ended already (it does nothing).
 */
void ax__conn_end(ax__conn_t *c, ax_net_event_kind_t kind, ax_status_t why)
{
    ax__net_t *net = c->net;
    ax__peer_t *p = c->peer;
    bool was_open = ax__conn_carries(c);
    ax__nm_fifo_t data = {0};
    ax_net_msg_t *nm;

    if (c->state == AX__CONN_DEAD)
        return;
    dead_unacked(net, c, AX_ECLOSED);
    while ((nm = fifo_pop(&c->wq)) != NULL) {
        if (nm->wire == AX__WIRE_DATA && c->wq_off == 0) {
            fifo_push(&data, nm);
        } else {
            /* A frame half written cannot be resent from its middle: the
             * peer has part of it, and this connection is gone. */
            dead_frame(net, nm, AX_ECLOSED);
        }
        c->wq_off = 0;
    }
    /* Mark it dead before anything below can look at it again (an event
     * subscriber, a reconnect to the same peer). */
    conn_close(c);
    if (p != NULL && p->via != 0) {
        /* A CLIENT connection (docs/wire.md section 6, "Clients"): it does
         * not listen, so no other connection can carry what was not
         * written, and it is no system to raise events about. */
        c->peer = NULL;
        dead_fifo(net, &data, AX_ECLOSED);
        ax__client_forget(net, p);
        return;
    }
    if (ck_pr_load_32(&net->stopping)) {
        /* No new connection while stopping: what was not written stays
         * unsent. */
        dead_fifo(net, &data, AX_ECLOSED);
        if (p != NULL && p->conn == c) {
            dead_fifo(net, &p->pending, AX_ECLOSED);
            p->conn = NULL;
            p->state = AX__PEER_IDLE;
            if (was_open)
                ax__net_event(net, kind, &p->addr, c->session, why);
        }
    } else if (p != NULL && p->conn == c) {
        p->conn = NULL;
        fifo_prepend(&p->pending, &data);
        p->state = AX__PEER_IDLE;
        if (was_open) {
            p->attempts = 0;
            ax__net_event(net, kind, &p->addr, c->session, why);
        }
        if (p->pending.count > 0) {
            if (was_open)
                start_connect(net, p);
            else
                attempt_failed(net, p, why);
        }
    } else {
        dead_fifo(net, &data, AX_ECLOSED);
    }
}

void ax__conn_malformed(ax__conn_t *c, ax_status_t why)
{
    if (c->state == AX__CONN_DEAD)
        return;
    ax__counter_add(&c->net->c.malformed, 1);
    ax__conn_end(c, AX_NET_LOST, why);
}

/*
 * Give nm a head with path ids for c (docs/wire.md section 6.1), written
 * in place of its frame's header and envelope; the frame keeps its full
 * paths for any later connection. A head too long for nm's inline room
 * (a definition of long paths) takes an allocation; when that fails the
 * ids it bound cannot be defined, so c must end before it writes
 * anything more (flush_now), and its frames go to a new connection and
 * table.
 */
static void compact(ax__conn_t *c, ax_net_msg_t *nm)
{
    unsigned char head[AX__COMPACT_HEAD_MAX];
    size_t len;
    ax_status_t st;

    if (nm->env_tag != 0 && nm->env_tag == c->tx_tag && nm->payload_off == c->tx_head_poff) {
        /* The envelope of the frames before it: their head, with this
         * frame's length. */
        len = c->tx_head_len;
        memcpy(nm->alt_inline, c->tx_head, len);
        ax__compact_head_header(nm->alt_inline, len, ax__lease_len(&nm->frame), nm->payload_off);
        ax__net_msg_keep_inline_alt(nm, AX__NM_ALT_TX, len);
        return;
    }
    /* A stream's head (two ids) is written straight into nm's room. */
    st = ax__pathtab_compact(c->tx_ids, &nm->frame, nm->payload_off, nm->alt_inline, sizeof nm->alt_inline, &len);
    if (st == AX_OK) {
        ax__net_msg_keep_inline_alt(nm, AX__NM_ALT_TX, len);
        /* The second frame in a row with one envelope binds nothing: the
         * first bound what it could, and bindings never change
         * (serial/pathtab.h). Its head serves every later frame with
         * that envelope on c. */
        if (nm->env_tag != 0 && nm->env_tag == c->tx_tag_last) {
            c->tx_tag = nm->env_tag;
            c->tx_head_poff = nm->payload_off;
            c->tx_head_len = (uint16_t)len;
            memcpy(c->tx_head, nm->alt_inline, len);
        }
        c->tx_tag_last = nm->env_tag;
        return;
    }
    c->tx_tag_last = 0;
    if (st != AX_ENOBUFS ||
        ax__pathtab_compact(c->tx_ids, &nm->frame, nm->payload_off, head, sizeof head, &len) != AX_OK)
        return; /* nothing to gain: the frame goes as it is */
    if (ax__net_msg_set_alt(nm, AX__NM_ALT_TX, head, len) != AX_OK) {
        c->tx_ids_lost = true;
        mark_dirty(c);
    }
}

/* Queue a Data frame on an open connection, unless it is above what the
 * peer said it accepts: then it goes to dead letters (AX_ETOOBIG) here,
 * once, and the connection stays up. */
static void conn_enqueue_data(ax__conn_t *c, ax_net_msg_t *nm)
{
    if (ax__lease_len(&nm->frame) > c->peer_max_frame) {
        ax__counter_add(&c->net->c.too_big, 1);
        dead_frame(c->net, nm, ax__error(AX_ETOOBIG, "net: a %zu-byte frame is above the peer's limit of %llu bytes",
                                         ax__lease_len(&nm->frame), (unsigned long long)c->peer_max_frame));
        return;
    }
    ax__net_msg_clear_alt(nm); /* a head for an earlier connection's table */
    if (c->tx_ids != NULL)
        compact(c, nm);
    fifo_push(&c->wq, nm);
    mark_dirty(c);
}

void ax__conn_open(ax__conn_t *c, ax__peer_t *p)
{
    ax__net_t *net = c->net;
    ax_net_msg_t *nm;
    uint64_t now = ax__now_ns();

    c->state = AX__CONN_OPEN;
    c->peer = p;
    c->last_rx_ns = c->last_tx_ns = now;
    p->conn = c;
    p->state = AX__PEER_OPEN;
    p->attempts = 0;
    if (p->ever_open)
        ax__counter_add(&net->c.reconnects, 1);
    p->ever_open = true;
    /* A fresh table each way for every connection (docs/wire.md 6.1):
     * theirs when the first Data frame comes, ours now if they offered
     * ids. Without memory for ours, paths go in full. */
    c->route.ids_n = net->cfg.path_ids;
    if (net->cfg.path_ids > 0 && c->peer_path_ids > 0)
        c->tx_ids = ax__pathtab_new(c->peer_path_ids > AX__PATH_IDS_MAX ? AX__PATH_IDS_MAX
                                                                         : (uint32_t)c->peer_path_ids,
                                    true);
    while ((nm = fifo_pop(&p->pending)) != NULL)
        conn_enqueue_data(c, nm);
    mark_dirty(c);
    /* From now on it is read through the ring: the receive is posted
     * when the read that opened it ends (on_readable). */
    if (net->ring != NULL)
        ring_enter(c);
    if (p->via == 0) /* a CLIENT is no system to raise events about */
        ax__net_event(net, AX_NET_ESTABLISHED, &p->addr, c->session, AX_OK);
}

socklen_t ax__sockaddr_of(const ax_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->ip, 16);
        s6->sin6_port = htons(a->port);
        return sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a->ip, 4);
        s4->sin_port = htons(a->port);
        return sizeof(*s4);
    }
}

int ax__tcp_congestion_set(int fd, const char *name)
{
    size_t len = strlen(name);

    if (len == 0)
        return 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)len) == 0 ? 0 : errno;
}

/* Whether a connection from local to peer stays on this host: a peer at a
 * loopback address, or at the address the connection leaves from (one of
 * this host's own, which the kernel routes through lo too). */
static bool same_host(const struct sockaddr_storage *local, const struct sockaddr_storage *peer)
{
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)peer, *l = (const struct sockaddr_in *)local;

        return (ntohl(p->sin_addr.s_addr) >> 24) == 127 ||
               (local->ss_family == AF_INET && p->sin_addr.s_addr == l->sin_addr.s_addr);
    }
    if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer, *l = (const struct sockaddr_in6 *)local;

        return IN6_IS_ADDR_LOOPBACK(&p->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127) ||
               (local->ss_family == AF_INET6 && memcmp(&p->sin6_addr, &l->sin6_addr, sizeof l->sin6_addr) == 0);
    }
    return false;
}

/*
 * The congestion control of a new connection to or from peer, once
 * connect() or accept() has bound fd (a route's unlocked congctl is in
 * place by then, and this overrides it): network.tcp_congestion on every
 * connection, else network.tcp_congestion_loopback on one that stays on
 * this host. Returns 0, or the errno with which the socket refused
 * tcp_congestion, which fails the connection. A refused
 * tcp_congestion_loopback (a route that locks its congctl) leaves the
 * route's choice, and the connection goes on.
 */
static int congestion_apply(const ax__net_t *net, int fd, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;

    if (net->cfg.tcp_congestion[0] != '\0')
        return ax__tcp_congestion_set(fd, net->cfg.tcp_congestion);
    if (net->cfg.tcp_congestion_loopback[0] != '\0' && getsockname(fd, (struct sockaddr *)&local, &ll) == 0 &&
        same_host(&local, peer))
        (void)ax__tcp_congestion_set(fd, net->cfg.tcp_congestion_loopback);
    return 0;
}

static void start_connect(ax__net_t *net, ax__peer_t *p)
{
    struct sockaddr_storage ss;
    socklen_t sl = ax__sockaddr_of(&p->addr, &ss);
    int fd, err, one = 1;
    ax__conn_t *c;

    p->backoff_timer = 0;
    p->state = AX__PEER_CONNECTING;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        attempt_failed(net, p, ax__error(AX_EIO, "net: socket: %s", strerror(errno)));
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        close(fd);
        attempt_failed(net, p, ax__error(AX_EIO, "net: connect: %s", strerror(errno)));
        return;
    }
    if ((err = congestion_apply(net, fd, &ss)) != 0) {
        close(fd);
        attempt_failed(net, p, ax__error(AX_EIO, "net: network.tcp_congestion \"%s\" refused on a connection: %s",
                                         net->cfg.tcp_congestion, strerror(err)));
        return;
    }
    c = conn_new(net, fd, true, p);
    if (c == NULL) {
        close(fd);
        attempt_failed(net, p, AX_ENOMEM);
        return;
    }
    c->session = ax__random64();
    p->conn = c;
}

/* An outgoing connect() finished: send our Hello, or count a failure. */
static void connect_done(ax__conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        ax__conn_end(c, AX_NET_LOST, ax__error(AX_EIO, "net: connect: %s", strerror(err)));
        return;
    }
    c->state = AX__CONN_HELLO;
    set_interest(c, AX__POLL_IN | AX__POLL_RDHUP);
    ax__hs_send_hello(c);
}

/* Out of descriptors with a connection waiting: take the reserve
 * descriptor back, accept the connection and close it at once, so that
 * the backlog drains and the listener sees new edges (libuv's trick).
 * false when there is no reserve to use: retry from a timer. */
static bool refuse_one(ax__net_t *net)
{
    int fd;

    if (net->reserve_fd < 0)
        return false;
    close(net->reserve_fd);
    net->reserve_fd = -1;
    fd = accept4(net->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        ax__counter_add(&net->c.refused, 1);
    }
    net->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
}

/* Close the oldest stranger to make room for a new one. */
static void evict_oldest_stranger(ax__net_t *net)
{
    ax__conn_t *old = net->oldest_stranger;

    if (old != NULL) {
        ax__counter_add(&net->c.handshakes_evicted, 1);
        ax__conn_end(old, AX_NET_LOST, AX_ECLOSED);
    }
}

static void accept_all(ax__net_t *net)
{
    while (net->listen_fd >= 0) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int one = 1, fd = accept4(net->listen_fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                refuse_one(net))
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && net->accept_timer == 0)
                ax__poller_timer_add(net->poller, ACCEPT_RETRY_NS, &accept_marker, &net->accept_timer);
            return;
        }
        if (ck_pr_load_32(&net->stopping) || net->nconns >= net->cfg.max_connections) {
            close(fd);
            ax__counter_add(&net->c.refused, 1);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* network.tcp_congestion refused on this socket only (ax_net_start
         * checked the name): a stranger closed and counted, as at
         * max_connections. */
        if (congestion_apply(net, fd, &peer) != 0) {
            close(fd);
            ax__counter_add(&net->c.refused, 1);
            continue;
        }
        if (net->nstrangers >= net->cfg.max_pending_handshakes)
            evict_oldest_stranger(net);
        if (conn_new(net, fd, false, NULL) == NULL) {
            close(fd);
            ax__counter_add(&net->c.refused, 1);
        }
    }
}

/* Close the losing connection of a pair without counting it as a failed
 * attempt: its frames are handed over to the peer's queue first. */
void ax__conn_drop_duplicate(ax__conn_t *c)
{
    ax__peer_t *p = c->peer;

    if (p != NULL && p->conn == c) {
        ax_net_msg_t *nm;

        p->conn = NULL;
        while ((nm = fifo_pop(&c->wq)) != NULL) {
            if (nm->wire == AX__WIRE_DATA)
                fifo_push(&p->pending, nm);
            else
                dead_frame(c->net, nm, AX_ECLOSED);
        }
        c->peer = NULL;
    }
    ax__conn_end(c, AX_NET_CLOSED, AX_OK);
}

/* ---- receiving ------------------------------------------------------------- */

/* Unpack a small control body into the thread's zone; the caller clears
 * the zone. */
static ax_status_t control_body(const ax_lease_t *frame, ax_lease_t *flat, msgpack_object *o)
{
    size_t off = 0, len;
    ax_status_t st = ax_lease_flatten(frame, flat);

    if (st != AX_OK)
        return st;
    len = ax__lease_len(flat) - AX__FRAME_HEADER_SIZE;
    st = ax__msgpack_check((const char *)ax_lease_data(flat) + AX__FRAME_HEADER_SIZE, len, 1);
    if (st == AX_OK &&
        msgpack_unpack((const char *)ax_lease_data(flat) + AX__FRAME_HEADER_SIZE, len, &off,
                       ax__thread_zone(), o) != MSGPACK_UNPACK_SUCCESS)
        st = ax__error(AX_EPROTO, "net: a control frame's body is not one msgpack object");
    return st;
}

static void on_ack(ax__conn_t *c, uint64_t upto)
{
    uint64_t first = c->tx_frames - c->ua_count + 1;

    while (c->ua_count > 0 && first <= upto) {
        if (!c->unacked[c->ua_head].returned)
            ax__counter_add(&c->net->c.acked, 1);
        c->ua_head = ua_slot(c, 1);
        c->ua_count--;
        first++;
    }
}

/*
 * The envelope of a Data frame body a Status frame returned. It is the
 * frame as we wrote it, so its ids are the ones we bound on c; with ids,
 * *full_len receives the envelope with its paths in full.
 */
static ax_status_t returned_envelope(ax__conn_t *c, const ax_lease_t *flat, size_t env_off, ax__envelope_t *env,
                                     unsigned char full[AX__ENVELOPE_MAX], size_t *full_len)
{
    const unsigned char *body = (const unsigned char *)ax_lease_data(flat) + env_off;
    ax__env_view_t v;
    ax_status_t st;

    if (c->tx_ids == NULL)
        return ax__envelope_read(flat, env_off, env);
    st = ax__env_view_read(body, ax__lease_len(flat) - env_off, c->tx_ids, false, &v);
    if (st == AX_OK)
        st = ax__path_read(v.p[0].bytes, v.p[0].len, &env->dst);
    env->has_src = st == AX_OK && v.p[1].bytes != NULL;
    if (env->has_src)
        st = ax__path_read(v.p[1].bytes, v.p[1].len, &env->src);
    if (st != AX_OK)
        return st;
    env->serialiser_id = v.serialiser_id;
    env->payload_off = (uint32_t)(env_off + v.len);
    if (ax__env_view_has_ids(&v))
        *full_len = ax__env_view_full(&v, full);
    return AX_OK;
}

/* A Data frame we sent came back undeliverable: dead-letter it here. */
static void on_status(ax__conn_t *c, ax_lease_t *flat, const msgpack_object *o, ax_status_t why)
{
    ax__net_t *net = c->net;
    const msgpack_object *f = o->via.array.ptr;
    uint64_t seq = f[0].via.u64, first = c->tx_frames - c->ua_count + 1;
    ax__unacked_t *u = NULL;
    ax_ref_t dst = AX_REF_NULL;
    ax__envelope_t env;
    ax_net_msg_t *nm;
    ax_msg_t *m;
    ax_ref_t to;

    if (seq >= first && seq < first + c->ua_count) {
        u = &c->unacked[ua_slot(c, seq - first)];
        if (u->returned)
            return;
        u->returned = true;
        dst = u->dst;
    }
    ax__counter_add(&net->c.returned, 1);
    count_dead(net);
    if (o->via.array.size == 2 && f[1].type == MSGPACK_OBJECT_BIN) {
        size_t env_off = (size_t)((const unsigned char *)f[1].via.bin.ptr -
                                  (const unsigned char *)ax_lease_data(flat));

        unsigned char full[AX__ENVELOPE_MAX];
        size_t full_len = 0;

        if (returned_envelope(c, flat, env_off, &env, full, &full_len) == AX_OK &&
            ax_ref_from_path(net->sys, &env.dst, &to) == AX_OK &&
            ax__net_msg_new(ax__system_netmsg_pool(net->sys), flat, env.payload_off, env.serialiser_id,
                            c->session, &nm) == AX_OK) {
            nm->env_off = (uint32_t)env_off;
            /* Its paths in full for whoever reads the dead letter (the ids
             * in it are this connection's). Without memory they stay
             * unreadable, and the message is dead-lettered even so. */
            if (full_len > 0)
                ax__net_msg_set_alt(nm, AX__NM_ALT_RX, full, full_len);
            m = &nm->hdr;
            m->sender = u != NULL ? u->from : AX_REF_NULL;
            ax_dead_letter(net->sys, &m, why, to);
            return;
        }
    }
    /* No body to return: say what we know. */
    if (ax_msg_alloc(&ax_net_undelivered_type, &m) == AX_OK) {
        ((ax_net_undelivered_t *)m)->serialiser_id = u != NULL ? u->serialiser_id : 0;
        ((ax_net_undelivered_t *)m)->session = c->session;
        m->sender = u != NULL ? u->from : AX_REF_NULL;
        ax_dead_letter(net->sys, &m, why, dst);
    } else if (u != NULL && ax__ref_is(u->from, AX__REF_REPLY)) {
        ax__ask_undelivered(u->from, why);
    }
}

static void on_control(ax__conn_t *c, const ax__frame_header_t *h, ax_lease_t *frame)
{
    ax_lease_t flat = AX_LEASE_EMPTY;
    msgpack_object o;
    ax_status_t st = control_body(frame, &flat, &o);

    if (st != AX_OK) {
        ax_lease_release(&flat);
        msgpack_zone_clear(ax__thread_zone());
        ax__conn_malformed(c, st);
        return;
    }
    switch (h->type) {
    case AX__FRAME_ACK:
        if (o.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            ax__conn_malformed(c, AX_EPROTO);
        else
            on_ack(c, o.via.u64);
        break;
    case AX__FRAME_STATUS:
        if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 1 || o.via.array.size > 2 ||
            o.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            ax__conn_malformed(c, AX_EPROTO);
        else
            on_status(c, &flat, &o, ax_status_from_byte(h->status));
        break;
    default:
        /* A Hello or an Auth after the handshake. */
        ax__conn_malformed(c, ax__error(AX_EPROTO, "net: a handshake frame after the handshake"));
        break;
    }
    msgpack_zone_clear(ax__thread_zone());
    ax_lease_release(&flat);
}

/* Handle one frame; false when the connection was closed by it. */
static bool on_frame(ax__conn_t *c, ax_lease_t *frame)
{
    ax__net_t *net = c->net;
    unsigned char raw[AX__FRAME_HEADER_SIZE];
    ax__frame_header_t h;
    ax_status_t st;

    ax__counter_add(&net->c.bytes_received, ax__lease_len(frame));
    c->m.rx_bytes += ax__lease_len(frame); /* metrics: per connection */
    ax_lease_copy_out(frame, 0, raw, sizeof raw);
    if (ax__frame_header_read(raw, &h) != AX_OK) {
        ax_lease_release(frame);
        ax__conn_malformed(c, AX_EPROTO);
        return false;
    }
    if (h.type == AX__FRAME_DATA) {
        c->rx_frames++;
        ax__counter_add(&net->c.frames_received, 1);
        st = ax__deliver_frame(net->sys, frame, c->session, c->peer->via, &c->route);
        /* No such actor, or its bounded mailbox is full: the frame goes
         * back to its sender, who dead-letters it with this status. */
        if (st == AX_ENOTFOUND || st == AX_EFULL)
            send_status(c, st, c->rx_frames, frame);
        ax_lease_release(frame); /* empty when delivered */
        if (st == AX_EPROTO) {
            ax__conn_malformed(c, st);
            return false;
        }
        if (c->route.ids_lost) {
            /* A path id could not be bound: later references to it could
             * not be read, so the connection cannot go on. */
            ax__conn_end(c, AX_NET_LOST, AX_ENOMEM);
            return false;
        }
        return true;
    }
    if (h.type == AX__FRAME_BYE) {
        /* The peer sends nothing more: answer with our Bye (after what is
         * queued), and the connection ends once it is written. */
        ax_lease_release(frame);
        c->bye_received = true;
        c->state = AX__CONN_CLOSING;
        send_bye(c);
        mark_dirty(c);
        return closing_step(c);
    }
    if (h.type == AX__FRAME_HEARTBEAT) {
        ax_lease_release(frame);
        return true;
    }
    on_control(c, &h, frame);
    ax_lease_release(frame);
    return c->state != AX__CONN_DEAD; /* on_control may have ended c */
}

static void pause_reading(ax__conn_t *c)
{
    ax__net_t *net = c->net;

    c->paused = true;
    set_interest(c, c->interest & ~AX__POLL_IN);
    /* Retries that find the pool still full are the same pause. */
    if (!c->starved)
        ax__counter_add(&net->c.read_pauses, 1);
    c->starved = true;
    if (net->resume_timer == 0)
        ax__poller_timer_add(net->poller, RESUME_DELAY_NS, &resume_marker, &net->resume_timer);
}

/* Take every complete frame out of c's decoder; false when c closed. */
static bool take_frames(ax__conn_t *c)
{
    ax_lease_t frame;
    ax_status_t st;

    while ((st = ax_decode_buffer_next(c->rx, &frame)) == AX_OK)
        if (!on_frame(c, &frame))
            return false;
    if (st == AX_ETOOBIG) {
        /* Tell the peer why, as far as the socket takes it, and close. */
        send_status(c, AX_ETOOBIG, 0, NULL);
        c->state = AX__CONN_CLOSING;
        if (flush_now(c))
            ax__conn_malformed(c, AX_ETOOBIG);
        return false;
    }
    return true;
}

/* n bytes came into c's decoder's free space (a read, or a receive
 * through the ring): hand them on. false when take_frames ended c. */
static bool bytes_came(ax__conn_t *c, size_t n)
{
    c->starved = false;
    c->last_rx_ns = ax__now_ns();
    ax_decode_buffer_commit(c->rx, n);
    return take_frames(c);
}

/* Read c on in a later turn (read_on), not now. */
static void read_later(ax__conn_t *c, bool short_ok)
{
    c->rx_more = true;
    c->rx_more_short_ok = short_ok;
    c->rx_more_turn = c->net->turn;
    c->net->rx_more = true;
}

/*
 * The decoder's free space for c's next read, in *p and *room; false when
 * there is none. Without a chunk c stops reading (pause_reading), its
 * frames taken and acknowledged first: the sender counts on the Acks, and
 * may be waiting on them to shut down. After an oversized header,
 * take_frames closes c.
 */
static bool read_room(ax__conn_t *c, void **p, size_t *room)
{
    ax_status_t st = ax_decode_buffer_space(c->rx, p, room);

    if (st == AX_OK)
        return true;
    if (st == AX_ENOBUFS) {
        if (take_frames(c)) {
            pause_reading(c);
            send_ack(c);
        }
    } else {
        take_frames(c);
    }
    return false;
}

/* The end of c's stream (eof), or a read error. */
static void read_ended(ax__conn_t *c, bool eof)
{
    if (c->bye_received || c->bye_sent)
        ax__conn_end(c, AX_NET_CLOSED, AX_OK);
    else
        ax__conn_end(c, AX_NET_LOST, eof ? AX_ECLOSED : AX_EIO);
}

/*
 * Read what the socket holds and hand the frames on. short_ok: the event
 * that brought us here said nothing of a hangup (RDHUP, HUP, ERR), so a
 * read shorter than the room it was given has emptied the socket, and the
 * read that would only say EAGAIN is skipped (one system call on each
 * side of a round trip). Bytes or a FIN that come after that read raise a
 * new edge: an edge-triggered epoll wakes for every arrival. A FIN that
 * came before it is in the event (RDHUP), and then we read to the end.
 * At most NET_READ_TURN_BYTES are read in one turn; read_on goes on
 * from there in the next. Returns the bytes read from the socket.
 */
static size_t read_socket(ax__conn_t *c, bool short_ok)
{
    size_t turn_bytes = 0, got = 0;

    c->rx_more = false;
    if (c->state == AX__CONN_HELLO) {
        /* A stranger reads into its own small buffer, never the pool. */
        if (!ax__hs_readable(c) || c->state == AX__CONN_HELLO)
            return got;
    }
    for (;;) {
        void *p;
        size_t room;
        ssize_t n;

        if (!read_room(c, &p, &room))
            return got;
        if (c->pre != NULL) {
            /* First the bytes that came behind the handshake. */
            n = (ssize_t)(c->pre_len - c->pre_off < room ? c->pre_len - c->pre_off : room);
            memcpy(p, c->pre + c->pre_off, (size_t)n);
            c->pre_off += (size_t)n;
            if (c->pre_off == c->pre_len) {
                free(c->pre);
                c->pre = NULL;
            }
            ax_decode_buffer_commit(c->rx, (size_t)n);
            if (!take_frames(c))
                return got;
            continue;
        }
        n = read(c->fd, p, room);
        if (n > 0) {
            got += (size_t)n;
            if (!bytes_came(c, (size_t)n))
                return got;
            if (short_ok && (size_t)n < room)
                break; /* emptied: see above */
            turn_bytes += (size_t)n;
            if (turn_bytes >= NET_READ_TURN_BYTES) {
                /* Enough for one turn: let the actors take these frames
                 * (and give their chunks back) before reading on. */
                read_later(c, short_ok);
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        read_ended(c, n == 0);
        return got;
    }
    if (ax__conn_carries(c))
        send_ack(c);
    return got;
}

/*
 * A connection whose reads bring RING_STREAM_BYTES or more is streaming:
 * it is read with epoll and read until a short read, as without the ring.
 * A receive posted each turn finds the socket empty and arms a poll in the
 * kernel every time, which cost a 1 KiB stream 10-25% more CPU a message
 * (dispatch/NOTES.md). Two reads in a row that bring less put it back on
 * the ring, where a round trip's wait and read are one call.
 */
#define RING_STREAM_BYTES 8192

/* c's reads go to the ring: no more EPOLLIN (a receive tells of a hangup). */
static void ring_enter(ax__conn_t *c)
{
    c->ring_mode = true;
    set_interest(c, c->interest & ~(AX__POLL_IN | AX__POLL_RDHUP));
}

/* c's reads go back to epoll (its count of small reads is the caller's). */
static void ring_leave(ax__conn_t *c)
{
    c->ring_mode = false;
    set_interest(c, c->interest | AX__POLL_IN | AX__POLL_RDHUP);
}

/*
 * Post c's next receive through the ring (uring.h), when c is read that
 * way and nothing else is reading it: not paused, not stopped by the
 * turn's limit (read_on goes on), and no bytes behind its handshake left.
 * Without room in the pool it pauses (read_room). A ring that
 * takes no more puts c back on epoll, to be read in the next turn.
 */
static void ring_post(ax__conn_t *c)
{
    void *p;
    size_t room;

    if (!c->ring_mode || c->ring_posted || c->ring_done || c->paused || c->rx_more || c->pre != NULL ||
        !ax__conn_carries(c) || !read_room(c, &p, &room))
        return;
    if (!ax__ring_recv(c->net->ring, c, p, room)) {
        /* Back to epoll, its count of small reads kept, and read in the
         * next turn. */
        ring_leave(c);
        read_later(c, false);
    }
}

/* After read_socket read got bytes of c: back to the ring if its reads
 * are small. (An open or closing connection is the ring's when the system
 * has one: ax__conn_open.) */
static void ring_resume(ax__conn_t *c, size_t got)
{
    if (c->net->ring != NULL && !c->ring_mode && !c->rx_more && !c->paused && ax__conn_carries(c)) {
        c->ring_small = got < RING_STREAM_BYTES ? c->ring_small + 1 : 0;
        if (c->ring_small >= 2)
            ring_enter(c);
    }
    ring_post(c);
}

/* Read c now, unless its reads are the ring's: a posted receive, or a
 * completion not yet taken, owns the decoder's free space. */
static void on_readable(ax__conn_t *c, bool short_ok)
{
    if (c->ring_posted || c->ring_done)
        return;
    ring_resume(c, read_socket(c, short_ok));
}

/* A receive through the ring completed with res: bytes, 0 at the end of
 * the stream, or -errno. As read_socket does with what read returns. */
static void ring_received(ax__conn_t *c, int res)
{
    if (c->state == AX__CONN_DEAD)
        return;
    if (res > 0) {
        ax__counter_add(&c->net->c.ring_reads, 1);
        if (!bytes_came(c, (size_t)res))
            return;
        if ((size_t)res >= RING_STREAM_BYTES || (size_t)res == c->ring_len) {
            /* A stream, or the room filled: read on, as epoll would, to
             * the turn's limit (and leave the ring while it streams). */
            if ((size_t)res >= RING_STREAM_BYTES) {
                c->ring_small = 0; /* two small reads to come back */
                ring_leave(c);
            }
            ring_resume(c, read_socket(c, true));
            return;
        }
        if (ax__conn_carries(c))
            send_ack(c);
        ring_post(c);
        return;
    }
    if (res == -EINTR || res == -EAGAIN || res == -ENOMEM || res == -ENOBUFS) {
        ring_post(c); /* nothing read: again */
        return;
    }
    read_ended(c, res == 0);
}

/* ---- sending ------------------------------------------------------------ */

/* Move the records of written, unacked frames into a ring of cap; false
 * without memory (the old ring is kept). */
static bool unacked_resize(ax__conn_t *c, size_t cap)
{
    ax__unacked_t *u = ax__fault("net.unacked") ? NULL : malloc(cap * sizeof(*u));

    if (u == NULL)
        return false;
    for (size_t i = 0; i < c->ua_count; i++)
        u[i] = c->unacked[ua_slot(c, i)];
    free(c->unacked);
    c->unacked = u;
    c->ua_head = 0;
    c->ua_cap = cap;
    return true;
}

/* Keep the record of a written frame; false without memory for it. */
static bool unacked_push(ax__conn_t *c, ax_net_msg_t *nm)
{
    if (c->ua_count == c->ua_cap && !unacked_resize(c, c->ua_cap ? c->ua_cap * 2 : 64))
        return false;
    c->unacked[ua_slot(c, c->ua_count++)] =
        (ax__unacked_t){remote_ref(nm->route), nm->hdr.sender, nm->serialiser_id, false};
    return true;
}

/*
 * The references that the frames of one write hold on their chunk and on
 * their destination's remote entry, dropped together: one atomic
 * operation for each run of frames on the same chunk and the same entry
 * (nearly the whole write, for a stream), instead of two per frame
 * (dispatch/NOTES.md, "Releases by the write").
 */
typedef struct release_batch {
    ax_chunk_t *chunk;
    uint32_t chunk_refs;
    ax__remote_t *route;
    uint64_t route_pins;
} release_batch_t;

static void batch_drop(release_batch_t *b)
{
    if (b->chunk_refs > 0)
        ax__chunk_unref_n(b->chunk, b->chunk_refs);
    if (b->route_pins > 0)
        ax__remote_unpin_n(b->route, b->route_pins);
    *b = (release_batch_t){0};
}

/* Move nm's reference on its chunk (a one-slice frame) and its pin on its
 * route into b; nm's release then skips them. */
static void batch_take(release_batch_t *b, ax_net_msg_t *nm)
{
    if (nm->frame.chunk != NULL && nm->frame.ext == NULL) {
        if (nm->frame.chunk != b->chunk && b->chunk_refs > 0) {
            ax__chunk_unref_n(b->chunk, b->chunk_refs);
            b->chunk_refs = 0;
        }
        b->chunk = nm->frame.chunk;
        b->chunk_refs++;
        nm->frame = AX_LEASE_EMPTY;
    }
    if (nm->route_release == ax__net_route_unpin) {
        if (nm->route != b->route && b->route_pins > 0) {
            ax__remote_unpin_n(b->route, b->route_pins);
            b->route_pins = 0;
        }
        b->route = nm->route;
        b->route_pins++;
        nm->route_release = NULL;
    }
}

/*
 * A frame has been written in full; its references go to b. false when
 * its record could not be kept: the frame itself then goes to dead
 * letters (AX_ENOMEM: it may arrive even so), and the caller ends the
 * connection, whose acks could no longer be matched to records.
 */
static bool written(ax__conn_t *c, ax_net_msg_t *nm, release_batch_t *b)
{
    ax_msg_t *m = &nm->hdr;

    ax__counter_add(&c->net->c.bytes_sent, ax__net_msg_wire_len(nm));
    c->m.tx_bytes += ax__net_msg_wire_len(nm); /* metrics: per connection */
    if (nm->wire == AX__WIRE_DATA) {
        c->tx_frames++;
        ax__counter_add(&c->net->c.frames_sent, 1);
        if (!unacked_push(c, nm)) {
            dead_frame(c->net, nm, AX_ENOMEM);
            return false;
        }
    }
    batch_take(b, nm);
    ax_msg_release(&m); /* the lease goes with it: released as soon as written */
    return true;
}

/*
 * A closing connection's next step, once its queue is written: with Bye
 * gone both ways (ours written, the peer's read) nothing more can come,
 * and the connection ends. Until the peer's Bye arrives our writing side
 * stays open, so that Acks for what the peer still sends can go out
 * (docs/wire.md section 12). false when it ended.
 */
static bool closing_step(ax__conn_t *c)
{
    if (c->state != AX__CONN_CLOSING || !c->bye_sent || c->wq.head != NULL)
        return true;
    if (c->bye_received) {
        ax__conn_end(c, AX_NET_CLOSED, AX_OK);
        return false;
    }
    return true;
}

/* Drop the first skip bytes of iov[0, got); the slices left. */
static size_t iov_skip(struct iovec *iov, size_t got, size_t skip)
{
    while (skip > 0 && got > 0) {
        if (skip >= iov[0].iov_len) {
            skip -= iov[0].iov_len;
            memmove(iov, iov + 1, (got - 1) * sizeof(*iov));
            got--;
        } else {
            iov[0].iov_base = (char *)iov[0].iov_base + skip;
            iov[0].iov_len -= skip;
            skip = 0;
        }
    }
    return got;
}

/* The slices nm puts on the wire, from its first byte: its path-id head
 * and the payload, or its whole frame. */
static size_t nm_iovec(const ax_net_msg_t *nm, struct iovec *iov, size_t max)
{
    const ax_lease_t *f = &nm->frame;

    if (nm->alt_kind != AX__NM_ALT_TX)
        return ax_lease_iovec(f, 0, iov, max);
    if (max < 2)
        return 0;
    iov[0] = (struct iovec){(void *)ax__net_msg_alt(nm), nm->alt_len};
    if (f->ext == NULL && f->chunk != NULL && f->len > nm->payload_off) {
        /* One slice, a stream's case: the payload is its tail, with no
         * call and no skip. */
        iov[1] = (struct iovec){f->chunk->data + f->off + nm->payload_off, f->len - nm->payload_off};
        return 2;
    }
    return 1 + iov_skip(iov + 1, ax_lease_iovec(f, 0, iov + 1, max - 1), nm->payload_off);
}

/*
 * Copy a small frame's got slices (iov[k..]) to stage + *staged, and slice
 * it there: the frame joins the slice before it when that one ends where
 * the frame's copy starts. Returns the new slice count. The stage is
 * scratch for one sendmsg: what a partial write leaves is copied again
 * from its frames, which keep their bytes until they are written.
 */
static size_t stage_frame(uint8_t *stage, size_t *staged, struct iovec *iov, size_t k, size_t got)
{
    uint8_t *at = stage + *staged, *end = at;

    for (size_t i = 0; i < got; i++) {
        ax__copy_small(end, iov[k + i].iov_base, iov[k + i].iov_len);
        end += iov[k + i].iov_len;
    }
    *staged += (size_t)(end - at);
    if (k > 0 && (uint8_t *)iov[k - 1].iov_base + iov[k - 1].iov_len == at) {
        iov[k - 1].iov_len += (size_t)(end - at);
        return k;
    }
    iov[k] = (struct iovec){at, (size_t)(end - at)};
    return k + 1;
}

/* Write as much of the queue as the socket takes; false when c closed. */
static bool flush_now(ax__conn_t *c)
{
    struct iovec iov[IOV_BATCH];
    release_batch_t rb = {0};

    if (c->state == AX__CONN_DEAD)
        return false;
    if (c->state == AX__CONN_TCP)
        return true;
    if (c->tx_ids_lost) {
        ax__conn_end(c, AX_NET_LOST, ax__error(AX_ENOMEM, "net: no memory for a path-id definition"));
        return false;
    }
    while (c->wq.head != NULL) {
        size_t k = 0, skip = c->wq_off, staged = 0;
        ssize_t n;

        for (ax_msg_link_t *l = c->wq.head; l != NULL && k < IOV_BATCH; l = l->next) {
            ax_net_msg_t *nm = (ax_net_msg_t *)l;
            size_t got = nm_iovec(nm, iov + k, IOV_BATCH - k);
            size_t want = ax__net_msg_wire_len(nm) - skip, have = 0;

            /* Skip what a partial write already sent of the first frame
             * (less than the frame: its slices cover it). */
            got = iov_skip(iov + k, got, skip);
            skip = 0;
            for (size_t i = 0; i < got; i++)
                have += iov[k + i].iov_len;
            /* A frame whose slices did not all fit ends the batch: the
             * next frame's bytes may only follow its last byte (the
             * release below counts whole frames in queue order). */
            if (have < want) {
                k += got;
                break;
            }
            if (want > STAGE_FRAME_MAX) {
                k += got;
            } else if (sizeof c->net->tx_stage - staged >= want) {
                k = stage_frame(c->net->tx_stage, &staged, iov, k, got);
            } else {
                break; /* the stage is full: this frame starts the next write */
            }
        }
        /* sendmsg rather than writev, for MSG_NOSIGNAL: a peer that has
         * gone must give EPIPE here, not a SIGPIPE that ends the process. */
        n = sendmsg(c->fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = k}, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_interest(c, c->interest | AX__POLL_OUT);
                return true;
            }
            ax__conn_end(c, AX_NET_LOST, AX_EIO);
            return false;
        }
        c->last_tx_ns = ax__now_ns();
        /* Release every frame written in full; remember where the first
         * unfinished one stopped. */
        while (n > 0 && c->wq.head != NULL) {
            ax_net_msg_t *nm = (ax_net_msg_t *)c->wq.head;
            size_t left = ax__net_msg_wire_len(nm) - c->wq_off;

            if ((size_t)n < left) {
                c->wq_off += (size_t)n;
                n = 0;
                break;
            }
            n -= (ssize_t)left;
            c->wq_off = 0;
            if (!written(c, fifo_pop(&c->wq), &rb)) {
                batch_drop(&rb);
                ax__conn_end(c, AX_NET_LOST, AX_ENOMEM);
                return false;
            }
        }
        batch_drop(&rb);
    }
    if (c->interest & AX__POLL_OUT)
        set_interest(c, c->interest & ~AX__POLL_OUT);
    return closing_step(c);
}

static void flush_all(ax__net_t *net)
{
    while (net->flush_list != NULL) {
        ax__conn_t *c = net->flush_list;

        net->flush_list = c->flush_next;
        c->dirty = false;
        flush_now(c);
    }
}

/* ---- the inbox -------------------------------------------------------------- */

static void route(ax__net_t *net, ax_net_msg_t *nm)
{
    ax__remote_t *r = nm->route;
    ax__peer_t *p = r->peer;

    if (r->via != 0) {
        /* A sender that came over a CLIENT connection: back over that one
         * while it is open, never to its address (nobody listens there). */
        ax__conn_t *cc = ax__client_conn(net, r->via);

        if (cc != NULL && cc->state == AX__CONN_OPEN)
            conn_enqueue_data(cc, nm);
        else
            dead_frame(net, nm, ax__error(AX_ECLOSED, "net: the client connection of this ref has %s",
                                          cc != NULL ? "said Bye" : "closed"));
        return;
    }
    if (p == NULL) {
        p = ax__peer_get(net, &r->addr); /* r is pinned by nm */
        if (p == NULL) {
            dead_frame(net, nm, AX_ENOMEM);
            return;
        }
        r->peer = p; /* only this thread reads or writes it */
    }
    if (p->state == AX__PEER_OPEN && p->conn->state == AX__CONN_OPEN) {
        conn_enqueue_data(p->conn, nm);
        return;
    }
    /* While stopping too: what actors sent last is delivered within the
     * flush timeout (a new peer is connected to for it). */
    if (p->pending.count >= net->cfg.peer_queue) {
        dead_frame(net, nm, AX_ENOBUFS);
        return;
    }
    fifo_push(&p->pending, nm);
    if (p->state == AX__PEER_IDLE)
        start_connect(net, p);
}

static void drain_inbox(ax__net_t *net)
{
    for (;;) {
        ax_msg_link_t *l;

        while ((l = ax__mpsc_pop(&net->inbox)) != NULL)
            route(net, (ax_net_msg_t *)l);
        /* Idle again: the next push wakes the poller. A push in flight
         * makes this fail, and we take it on the next round. */
        if (ax__mpsc_try_idle(&net->inbox))
            return;
    }
}

void ax__net_submit(ax__net_t *net, ax_msg_link_t *first, ax_msg_link_t *last)
{
    ax__sched_expect_remote(net->sys);
    if (!ax__mpsc_push_chain(&net->inbox, first, last))
        return; /* the inbox was busy: whoever made it so owes the wake */
    /* Full fence (store-load): our push is visible before we read
     * sleeping; pairs with the exchange in net_sleep (Dekker). Either we
     * see sleeping == 1 and write the eventfd, or the network thread,
     * about to sleep, sees our push and does not sleep. Only on the push
     * that found the inbox idle, so once per burst. */
    ck_pr_fence_memory();
    if (ck_pr_load_32(&net->sleeping))
        ax__poller_wake(net->poller);
}

/* ---- stopping ----------------------------------------------------------------- */

static void begin_stop(ax__net_t *net)
{
    uint64_t timer;

    if (net->listen_fd >= 0) {
        ax__poller_remove(net->poller, net->listen_reg);
        close(net->listen_fd);
        net->listen_fd = -1;
    }
    for (ax__peer_t *p = net->peers; p != NULL; p = p->next) {
        if (p->backoff_timer != 0) {
            ax__poller_timer_cancel(net->poller, p->backoff_timer);
            p->backoff_timer = 0;
        }
        /* A connection under way may still carry the pending frames out
         * before the deadline. */
        if (p->state != AX__PEER_OPEN && p->state != AX__PEER_CONNECTING) {
            p->state = AX__PEER_IDLE;
            dead_fifo(net, &p->pending, AX_ECLOSED);
        }
    }
    ax__poller_timer_add(net->poller, net->cfg.flush_timeout_ms * 1000000u, &deadline_marker, &timer);
}

/* An outgoing connection being set up for frames that wait on it. */
static bool connecting_out(const ax__conn_t *c)
{
    return c->outgoing && c->peer != NULL && c->peer->conn == c && c->peer->pending.count > 0;
}

/* One step of a graceful stop; true when every connection is closed. */
static bool stop_step(ax__net_t *net, bool deadline)
{
    for (ax__conn_t *c = net->conns; c != NULL; c = c->next) {
        if (c->state == AX__CONN_DEAD)
            continue;
        if (!ax__conn_carries(c) && !deadline && connecting_out(c))
            continue; /* its Hello first, then its frames, then Bye */
        if (deadline || !ax__conn_carries(c)) {
            ax__conn_end(c, AX_NET_CLOSED, AX_OK);
            continue;
        }
        /* Everything written and acknowledged: say Bye. The connection
         * ends once the peer's Bye has come too (closing_step). */
        if (c->wq.head == NULL && c->ua_count == 0 && !c->bye_sent) {
            send_bye(c);
            c->state = AX__CONN_CLOSING;
            flush_now(c);
        }
    }
    return net->nconns == 0;
}

/* ---- the loop --------------------------------------------------------------------- */

/* The receive pool's stats walk every chunk it has given back (one per
 * 64 KiB frame in flight): 3.7% of the receiving network thread's time
 * when it ran every turn. Once a millisecond is enough for ax_net_stats;
 * an idle loop still turns on every tick. */
#define NET_POOL_STATS_EVERY_NS 1000000u

static void publish_stats(ax__net_t *net)
{
    ax_buffer_pool_stats_t s;
    uint64_t now;

    /* A gauge, written only here: a plain store that readers load atomically. */
    ck_pr_store_64(&net->c.pending_handshakes, net->nstrangers);
    ax__conn_snap_publish(net); /* metrics: per connection, when asked */
    now = ax__now_ns();
    if (now - net->pool_stats_ns < NET_POOL_STATS_EVERY_NS)
        return;
    net->pool_stats_ns = now;
    ax_buffer_pool_stats(net->rx_pool, &s);
    pthread_mutex_lock(&net->stats_lock);
    net->rx_stats = s;
    pthread_mutex_unlock(&net->stats_lock);
}

/*
 * Give receive and control chunks back after a burst, one of each per
 * tick (up to 10 a second): the pools shrink to their initial size once the
 * burst is over, and a steady flow, whose chunks are busy, loses nothing.
 * glibc keeps what the burst freed (queued frames, acknowledgement
 * records, chunks) in its heaps; once no Data frame has moved for half a
 * second after some did, malloc_trim (at most once a second) hands whole
 * free pages back to the system. A steady flow never pays for it: pages
 * given back in the middle of a flow would only fault in again.
 */
static void trim_pools(ax__net_t *net, uint64_t now)
{
    size_t n = ax_buffer_pool_trim(net->rx_pool, net->cfg.buffer_config.initial_chunk_count, 1);
    uint64_t moved = 0;

    n += ax_buffer_pool_trim(ax_encode_buffer_pool(net->ctl), 1, 1);
    /* The dispatcher trims its own pool and says so here. */
    n += ck_pr_fas_32(&net->trimmed_elsewhere, 0);
    /* Data frames of the connections now: it changes while frames move,
     * and when a connection goes (its queues were freed). */
    for (ax__conn_t *c = net->conns; c != NULL; c = c->next) {
        moved += c->rx_frames + c->tx_frames;
        /* A backlog grew the ring of unacked records; once acks drained
         * it to an eighth, it goes back to a quarter (never below 64). A
         * failed malloc keeps the bigger ring. */
        if (c->state != AX__CONN_DEAD && c->unacked != NULL && c->ua_cap > 64 &&
            c->ua_count <= c->ua_cap / 8 &&
            unacked_resize(c, c->ua_cap / 4 < 64 ? 64 : c->ua_cap / 4))
            n++;
    }
    if (moved != net->frames_moved) {
        net->frames_moved = moved;
        net->last_moved_ns = now;
        n++;
    }
    if (n > 0)
        net->trim_pending = true;
    if (net->trim_pending && now - net->last_moved_ns >= 500000000u &&
        now - net->last_malloc_trim_ns >= 1000000000u) {
        ax__chunk_cache_trim(); /* first: malloc_trim can then return it */
        malloc_trim(0);
        ax__msgmem_collect(); /* messages this thread allocated */
        net->trim_pending = false;
        net->last_malloc_trim_ns = now;
    }
}

static void arm_tick(ax__net_t *net)
{
    uint64_t id;

    ax__poller_timer_add(net->poller, ax__net_tick_period_ns(&net->cfg), &tick_marker, &id);
}

static void on_timer(ax__net_t *net, void *ctx, bool *deadline)
{
    if (ctx == &resume_marker) {
        net->resume_timer = 0;
        /* on_readable may end any connection, this one or another: none
         * is freed before the turn ends, and DEAD ones are skipped. */
        for (ax__conn_t *c = net->conns; c != NULL; c = c->next) {
            if (c->state != AX__CONN_DEAD && c->paused) {
                c->paused = false;
                if (!c->ring_mode)
                    set_interest(c, c->interest | AX__POLL_IN);
                on_readable(c, false); /* edge-triggered: read what waited */
            }
        }
    } else if (ctx == &deadline_marker) {
        *deadline = true;
    } else if (ctx == &tick_marker) {
        uint64_t now = ax__now_ns();

        ax__net_tick(net, now);
        trim_pools(net, now);
        arm_tick(net);
    } else if (ctx == &accept_marker) {
        net->accept_timer = 0;
        accept_all(net);
    } else {
        ax__peer_t *p = ctx;

        p->backoff_timer = 0;
        if (p->state == AX__PEER_BACKOFF)
            start_connect(net, p);
    }
}

static void on_fd(ax__net_t *net, const ax__poll_event_t *ev)
{
    ax__conn_t *c = ev->ctx;

    if (ev->ctx == &net->listen_fd) {
        if (ev->id == net->listen_reg)
            accept_all(net);
        return;
    }
    /* Matched by the poller's never-reused id: an event for a connection
     * that ended earlier in this batch names a DEAD connection (its memory
     * lives until reap) whose registration id was removed. */
    if (c->state == AX__CONN_DEAD || ev->id != c->reg)
        return;
    if (c->state == AX__CONN_TCP) {
        if (ev->events & (AX__POLL_OUT | AX__POLL_ERR | AX__POLL_HUP))
            connect_done(c);
        return;
    }
    if (ev->events & AX__POLL_OUT) {
        mark_dirty(c);
    }
    /* A connection read through the ring learns of a hangup from its
     * receive; on_readable leaves it alone while one is posted. */
    if ((ev->events & (AX__POLL_IN | AX__POLL_ERR | AX__POLL_HUP | AX__POLL_RDHUP)) && !c->paused)
        on_readable(c, !(ev->events & (AX__POLL_ERR | AX__POLL_HUP | AX__POLL_RDHUP)));
}

/*
 * Read on where an earlier turn stopped at NET_READ_TURN_BYTES. A
 * connection stopped in this turn waits for the next (its frames go to
 * the actors first); on_readable may end any connection, none is freed
 * before the turn ends, and DEAD ones are skipped.
 */
static void read_on(ax__net_t *net)
{
    if (!net->rx_more)
        return;
    net->rx_more = false;
    for (ax__conn_t *c = net->conns; c != NULL; c = c->next) {
        if (!c->rx_more || c->state == AX__CONN_DEAD || c->paused)
            continue;
        if (c->rx_more_turn == net->turn)
            net->rx_more = true; /* stopped in this turn: the next one */
        else
            on_readable(c, c->rx_more_short_ok);
    }
}

/* Nothing pushed since drain_inbox marked the inbox idle. */
static bool inbox_idle(ax__net_t *net)
{
    /* Only this thread tags the head, so a tagged head is no stale read;
     * an untagged one is a push to take on the next drain. */
    return ck_pr_load_ptr(&net->inbox.head) == ax__mpsc_tagged(&net->inbox.stub);
}

/*
 * Wait for events (block) or only look (not). With a ring, its wait ends
 * at a receive's completion (taken with ax__ring_next) or when epoll has
 * events, which are then taken with epoll_wait(0); without one, epoll_wait
 * waits. true when there is something to handle: *n events, or kept
 * completions.
 */
static bool net_wait(ax__net_t *net, bool block, ax__poll_event_t *ev, size_t *n)
{
    bool epoll = true, more = ax__poller_full(net->poller);

    *n = 0;
    if (net->ring == NULL) {
        ax__poller_wait(net->poller, block ? -1 : 0, ev, EVENTS_MAX, n);
        return *n > 0;
    }
    /* A failed enter leaves the completions it has; epoll is looked at. */
    if (ax__ring_wait(net->ring, block && !more, &epoll) != AX_OK)
        epoll = true;
    if (epoll || more)
        ax__poller_wait(net->poller, 0, ev, EVENTS_MAX, n);
    return *n > 0 || ax__ring_pending(net->ring);
}

/*
 * Wait for events, unless the inbox has work. The eventfd is written only
 * for a sleeping thread (ax__net_submit), so before it sleeps the thread
 * says so and then looks at the inbox once more.
 */
static void net_sleep(ax__net_t *net, ax__poll_event_t *ev, size_t *n)
{
    *n = 0;
    /* An exchange, a full barrier: sleeping = 1 is visible before we read
     * the inbox's head (store-load); pairs with the fence in
     * ax__net_submit. */
    ck_pr_fas_32(&net->sleeping, 1);
    if (inbox_idle(net))
        net_wait(net, true, ev, n);
    /* Awake: later pushes skip the eventfd. A sender that still reads 1
     * only writes one eventfd too many; no order needed. */
    ck_pr_store_32(&net->sleeping, 0);
}

/*
 * After a turn that handed Data frames to actors: watch the inbox for
 * their replies for up to network.spin_us, without a system call, and
 * look at the sockets every NET_SPIN_POLL_NS (epoll_wait with timeout 0)
 * so that a reply does not hide other connections' input for long. true
 * when there is work: inbox frames or *n events. The caller holds back
 * the turn's Acks until then, so an Ack leaves with the reply, in one
 * sendmsg, rather than in a write of its own.
 */
static bool net_spin(ax__net_t *net, ax__poll_event_t *ev, size_t *n)
{
    uint64_t spin_ns = (uint64_t)net->cfg.spin_us * 1000u;
    uint64_t start = ax__now_ns(), polled = start;

    *n = 0;
    for (unsigned i = 1;; i++) {
        if (!inbox_idle(net))
            return true;
        if (i % NET_SPIN_CLOCK_EVERY == 0) {
            uint64_t t = ax__now_ns();

            if (t - start >= spin_ns)
                return false;
            if (t - polled >= NET_SPIN_POLL_NS) {
                if (net_wait(net, false, ev, n))
                    return true;
                polled = t;
            }
        }
        ck_pr_stall();
    }
}

/* The system whose network thread this is; NULL on any other thread. */
static _Thread_local const ax__net_t *tls_net;

bool ax__on_net_thread(const ax__net_t *net)
{
    return tls_net == net;
}

void *ax__net_main(void *arg)
{
    ax__net_t *net = arg;
    ax__poll_event_t ev[EVENTS_MAX];
    bool stopping = false, deadline = false, held = false;
    uint64_t run_ns = (uint64_t)net->cfg.run_actors_us * 1000u;

    /* Seen in top -H, gdb and /proc; handlers it runs see it too. */
    pthread_setname_np(pthread_self(), "ax-net");
    tls_net = net;

    arm_tick(net);
    /* On this thread: the ring takes submissions from its creator only. */
    if (net->cfg.io_uring && ax__ring_create(ax__poller_fd(net->poller), &net->ring) != AX_OK)
        net->ring = NULL; /* refused by the kernel: epoll, as with io_uring = false */
    for (;;) {
        size_t n = 0;
        uint64_t received;

        /* Bytes left to read are work: no spin for replies then. */
        if (!held || net->rx_more || !net_spin(net, ev, &n)) {
            if (held)
                flush_all(net); /* no reply came (or no wait): the Acks go alone */
            if (net->rx_more)
                net_wait(net, false, ev, &n); /* look, read on */
            else
                net_sleep(net, ev, &n);
        }
        net->turn++;
        received = net->c.frames_received; /* this thread is its writer */
        /* Actors this turn wakes while every worker is parked are run here,
         * after the turn (network.run_actors_us; actor/sched.c, "guest");
         * their replies are in the inbox for the drain below. */
        if (run_ns > 0)
            ax__sched_guest_enter(net->sys);
        if (net->ring != NULL) {
            ax__conn_t *c;
            int res;

            while (ax__ring_next(net->ring, &c, &res))
                ring_received(c, res);
        }
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kind == AX__EV_FD)
                on_fd(net, &ev[i]);
            else if (ev[i].kind == AX__EV_TIMER)
                on_timer(net, ev[i].ctx, &deadline);
        }
        read_on(net);
        if (run_ns > 0)
            ax__sched_guest_leave(net->sys, run_ns);
        drain_inbox(net);
        /* Frames went to actors: hold this turn's writes (their Acks)
         * back while we spin for the replies, so that both leave in one
         * sendmsg. Never two turns running: a steady inflow still gets
         * its writes out every other turn. */
        held = !held && net->cfg.spin_us > 0 && !stopping && net->c.frames_received != received;
        if (!held)
            flush_all(net);
        publish_stats(net);
        if (!stopping && ck_pr_load_32(&net->stopping)) {
            stopping = true;
            begin_stop(net);
        }
        if (stopping && stop_step(net, deadline)) {
            reap(net);
            break;
        }
        reap(net);
    }
    drain_inbox(net); /* anything that came in after the end: dead letters */
    ax__ring_destroy(&net->ring);
    return NULL;
}
