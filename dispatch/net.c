/* Networking: start-up, the network dispatcher actor, events, stats. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/grow.h"
#include "dispatch/net_internal.h"

/* ---- message types ---------------------------------------------------- */

const ax_msg_type_t ax_net_event_type = {
    .name = "axon.net-event",
    .size = sizeof(ax_net_event_t),
};

const ax_msg_type_t ax_net_undelivered_type = {
    .name = "axon.net-undelivered",
    .size = sizeof(ax_net_undelivered_t),
};

typedef ax__lazy_send_t lazy_send_t;
#define lazy_send_type ax__lazy_send_type

uint64_t ax__random64(void)
{
    uint64_t v = 0;

    /* getrandom on Linux; the time is a fallback that still differs per
     * run, which is all a session or incarnation id needs. */
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = ax__now_ns() * 0x9e3779b97f4a7c15ull;
    return v != 0 ? v : 1;
}

/* ---- the dispatcher actor --------------------------------------------- */

void ax__net_route_unpin(void *route)
{
    ax__remote_unpin(route);
}

void ax__net_msg_route(ax_net_msg_t *nm, ax__remote_t *dst)
{
    nm->route = dst;
    nm->route_release = ax__net_route_unpin;
}

/* An ask whose request went to a peer: failed when the connection to
 * that peer ends before the reply comes. */
typedef struct asked {
    ax_addr_t peer;
    ax_ref_t reply_to;
} asked_t;

typedef struct dispatcher {
    ax_actor_t actor;
    ax__net_t *net;
    uint64_t sent;
    /* Lazy sends handled since lazy_queued was last lowered, and how many
     * are given back at once (give_back). */
    uint64_t taken, take_batch;
    /* The outgoing chain: frames made since the last hand-over, oldest
     * first (out_flush). */
    ax_msg_link_t *out_first, *out_last;
    uint32_t out_n;
    size_t out_bytes;
    asked_t *asked;
    size_t nasked, asked_cap;
} dispatcher_t;

/*
 * Frames go to the network thread's inbox in chains, one exchange for
 * each, not one per frame: a frame joins the outgoing chain, and the chain
 * is handed over when the dispatcher's mailbox holds nothing more (its run
 * is ending), or at OUT_MAX frames or OUT_BYTES bytes, so that the network
 * thread can write large frames while the next ones are encoded. A
 * ping-pong's frame thus goes at once, and a stream's in runs. The
 * dispatcher is the inbox's only producer, and its frames keep their
 * order.
 */
#define OUT_MAX 32
#define OUT_BYTES 65536

static void out_flush(dispatcher_t *d)
{
    if (d->out_n == 0)
        return;
    ax__net_submit(d->net, d->out_first, d->out_last);
    d->out_first = d->out_last = NULL;
    d->out_n = 0;
    d->out_bytes = 0;
}

static void out_add(dispatcher_t *d, ax_net_msg_t **nm)
{
    ax_msg_link_t *l = &(*nm)->hdr.link;

    (*nm)->wire = AX__WIRE_DATA;
    d->out_bytes += ax__lease_len(&(*nm)->frame);
    *nm = NULL;
    l->next = NULL;
    if (d->out_n++ == 0)
        d->out_first = l;
    else
        d->out_last->next = l;
    d->out_last = l;
}

static bool out_full(const dispatcher_t *d)
{
    return d->out_n >= OUT_MAX || d->out_bytes >= OUT_BYTES;
}

/* After each message the dispatcher handles. Within a batch only a full
 * chain goes (the batch is the mailbox's last message, so the mailbox
 * reads as drained until it is done). */
static void out_maybe_flush(dispatcher_t *d)
{
    if (out_full(d) || (d->out_n > 0 && ax__mailbox_drained(&d->actor)))
        out_flush(d);
}

/*
 * Lower lazy_queued by the lazy sends handled since the last time: one
 * atomic subtraction per take_batch of them, not one each (the count is
 * a bound, not a hand-off: any order). Until then the bound counts them as
 * still waiting, so a send may be refused up to take_batch - 1 early,
 * never late; the housekeeping tick gives back what is left, so that
 * lasts at most a tick. take_batch is 1/16 of network.dispatch_queue, from
 * 1 (exact, for a bound below 32) to 64.
 */
static void give_back(dispatcher_t *d)
{
    if (d->taken > 0) {
        ck_pr_sub_64(&d->net->lazy_queued, d->taken);
        d->taken = 0;
    }
}

/* Keep only the asks that still wait; true when any was dropped. */
static bool asked_prune(dispatcher_t *d)
{
    size_t kept = 0, before = d->nasked;

    for (size_t i = 0; i < d->nasked; i++)
        if (ax__ask_pending(d->asked[i].reply_to))
            d->asked[kept++] = d->asked[i];
    d->nasked = kept;
    return kept < before;
}

/*
 * Remember that the request of the ask behind `from` left for dst's
 * system. Pruned when full, so the table holds at most twice the asks
 * pending. Without memory for it, the ask still completes by its reply,
 * its timeout, or a dead letter of the request: only a loss after
 * delivery goes unnoticed, and the failure is counted.
 */
static void asked_add(dispatcher_t *d, const ax__remote_t *dst, ax_ref_t from)
{
    /* Asks to a CLIENT (dst->via) end by their reply, their timeout or a
     * dead letter: its connection raises no events. */
    if (!ax__ref_is(from, AX__REF_REPLY) || dst->via != 0)
        return;
    if (d->nasked == d->asked_cap && (!asked_prune(d) || d->nasked > d->asked_cap / 2) &&
        !ax__grow(&d->asked, &d->asked_cap, d->nasked + 1, sizeof(*d->asked), 16)) {
        ck_pr_inc_64(&d->net->asks_untracked); /* a counter: any order */
        return;
    }
    d->asked[d->nasked++] = (asked_t){dst->addr, from}; /* dst is pinned */
}

/* The connection to peer ended (or it could not be reached): the asks
 * sent there cannot be answered any more. */
static void asked_fail(dispatcher_t *d, const ax_addr_t *peer, ax_status_t why)
{
    size_t kept = 0;

    for (size_t i = 0; i < d->nasked; i++) {
        if (ax_addr_eq(&d->asked[i].peer, peer))
            ax__ask_undelivered(d->asked[i].reply_to, why);
        else
            d->asked[kept++] = d->asked[i];
    }
    d->nasked = kept;
}

static void net_free(ax__net_t *net);

static void dispatcher_destroy(ax_actor_t *self)
{
    dispatcher_t *d = (dispatcher_t *)self;

    out_flush(d); /* what the last run made, as a submit then would have */
    free(d->asked);
    /* A network that failed to start is ours to free: we may have been
     * running our on_start on it when ax_net_start gave up. The flag was
     * set before the kill that ended us (the kill orders it). */
    if (ck_pr_load_32(&d->net->orphaned))
        net_free(d->net);
}

/* What the network thread tells the dispatcher about a peer. */
static void dispatcher_event(dispatcher_t *d, const ax_net_event_t *e)
{
    if (e->kind == AX_NET_LOST || e->kind == AX_NET_CLOSED)
        asked_fail(d, &e->peer, AX_ECLOSED);
    else if (e->kind == AX_NET_DROPPED)
        asked_fail(d, &e->peer, AX_ETIMEDOUT);
}

static ax_status_t dispatcher_init(ax_actor_t *self, void *arg)
{
    dispatcher_t *d = (dispatcher_t *)self;

    d->net = arg;
    d->take_batch = d->net->cfg.dispatch_queue / 16;
    if (d->take_batch < 1)
        d->take_batch = 1;
    if (d->take_batch > 64)
        d->take_batch = 64;
    return AX_OK;
}

static void dispatcher_publish(dispatcher_t *d)
{
    ax_buffer_pool_stats_t s;

    if (ax_actor_buffer_stats(&d->actor, &s) == AX_OK) {
        pthread_mutex_lock(&d->net->stats_lock);
        d->net->dispatch_stats = s;
        pthread_mutex_unlock(&d->net->stats_lock);
    }
}

/* The dispatcher's housekeeping tick: after a burst (a peer that was
 * unreachable for a while) its pool shrinks back a chunk per tick. */
static const ax_msg_type_t trim_tick_type = {
    .name = "axon.dispatcher-trim",
    .size = sizeof(ax_msg_t),
};

#define TRIM_PERIOD_NS (100u * 1000u * 1000u)

static void dispatcher_start(ax_actor_t *self)
{
    dispatcher_t *d = (dispatcher_t *)self;
    ax_timer_t timer;
    ax_msg_t *tick;

    /* Its own pool, from network.buffer_config: lazy sends never use the
     * senders' pools. */
    ax_actor_init_buffers(self, &d->net->cfg.buffer_config);
    dispatcher_publish(d);
    /* Without the tick the pool keeps its high-water mark: that costs
     * memory, never a message, so a failure here is not fatal. */
    if (ax_msg_alloc(&trim_tick_type, &tick) == AX_OK &&
        ax_schedule_periodic(self, TRIM_PERIOD_NS, TRIM_PERIOD_NS, &tick, &timer) != AX_OK)
        ax_msg_release(&tick);
}

/* What the system's NetMessage pool (control frames, returned messages)
 * keeps after a burst: enough for the frames in flight between two ticks. */
#define TRIM_MSG_KEEP 64

static void trim_msg_pool(dispatcher_t *d, ax_msg_pool_t *pool)
{
    size_t count = ax_msg_pool_count(pool);

    /* Half of the excess per tick: a burst's messages go within a second,
     * and a flow that is still running keeps what it reuses. */
    if (count > TRIM_MSG_KEEP &&
        ax_msg_pool_trim(pool, TRIM_MSG_KEEP + (count - TRIM_MSG_KEEP) / 2) > 0)
        ck_pr_add_32(&d->net->trimmed_elsewhere, 1); /* asks for a malloc_trim */
}

static void dispatcher_trim(dispatcher_t *d)
{
    size_t freed = 0;

    give_back(d);
    trim_msg_pool(d, ax__system_netmsg_pool(d->net->sys));
    if (ax_actor_trim_buffers(&d->actor, 1, &freed) == AX_OK && freed > 0) {
        /* Tell the network thread, which calls malloc_trim: a counter, any order. */
        ck_pr_add_32(&d->net->trimmed_elsewhere, (uint32_t)freed);
        dispatcher_publish(d);
    }
}

/*
 * Serialise a lazy send now, into the dispatcher's pool: from here only its
 * bytes travel (the caller releases the envelope, and the message with
 * it). The frame goes straight to the network thread, so it keeps its
 * place among the eager frames that pass through this mailbox (FIFO per
 * sender and receiver).
 */
static void dispatcher_lazy_one(dispatcher_t *d, ax_ref_t to, ax_msg_t *msg)
{
    ax__remote_t *dst = to.target;
    ax_net_msg_t *nm;
    ax_ref_t sender;
    ax_status_t st;

    if (++d->taken >= d->take_batch)
        give_back(d);
    /* The message came with a pin on dst (net_send_lazy). */
    sender = msg->sender;
    st = ax__encode_net_msg(&d->actor, to, true, sender, msg->type, msg, &msg, &nm);
    if (st == AX_OK) {
        asked_add(d, dst, sender);
        ax_msg_release(&msg); /* NULL when lent to its frame */
        /* The pin on dst goes to the frame. */
        ax__net_msg_route(nm, dst);
        out_add(d, &nm);
    } else {
        ck_pr_inc_64(&d->net->c.dead_lettered); /* also written by the network thread */
        ax_dead_letter(ax_actor_system(&d->actor), &msg, st, to);
        ax__remote_unpin(dst); /* the dead letter's ref is only an id */
    }
    if (++d->sent % 256 == 0 || st == AX_ENOBUFS)
        dispatcher_publish(d);
}

/* Each message of an envelope in turn; the caller releases the envelope.
 * Within a batch only a full outgoing chain goes early (out_maybe_flush
 * runs after the whole batch). */
static void dispatcher_lazy(dispatcher_t *d, lazy_send_t *ls)
{
    ax_ref_t to = {ls->dst, ls->dst_id};
    ax_msg_t *msg;

    while ((msg = ax__lazy_send_take(ls)) != NULL) {
        if (out_full(d))
            out_flush(d);
        dispatcher_lazy_one(d, to, msg);
    }
}

static ax_status_t dispatcher_handle(ax_actor_t *self, ax_msg_t **msg)
{
    dispatcher_t *d = (dispatcher_t *)self;
    lazy_send_t *ls = (lazy_send_t *)*msg, *more;

    if ((*msg)->type == &ax_net_event_type) {
        dispatcher_event(d, (const ax_net_event_t *)*msg);
        return AX_OK;
    }
    if ((*msg)->type == &trim_tick_type) {
        dispatcher_trim(d);
        return AX_OK;
    }
    if ((*msg)->type != &lazy_send_type)
        return AX_OK; /* nothing else is sent to the dispatcher */
    /* The batch's reserve of dispatch_queue units that no send used is
     * handed back with the units of the sends it holds (give_back). */
    d->taken += ls->spare_credits;
    ls->spare_credits = 0;
    more = ax__lazy_send_detach(ls);
    dispatcher_lazy(d, ls); /* the runtime releases this envelope */
    /* The rest of its batch, in order, each released here. */
    while (more != NULL) {
        lazy_send_t *next = ax__lazy_send_detach(more);
        ax_msg_t *m = &more->hdr;

        dispatcher_lazy(d, more);
        ax_msg_release(&m);
        more = next;
    }
    return AX_OK;
}

static ax_status_t dispatcher_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ax_status_t st = dispatcher_handle(self, msg);

    out_maybe_flush((dispatcher_t *)self);
    return st;
}

/* An eager frame: already encoded in its sender's pool, on its way. */
static ax_status_t dispatcher_forward(ax_actor_t *self, ax_net_msg_t **nm)
{
    dispatcher_t *d = (dispatcher_t *)self;

    asked_add(d, (*nm)->route, (*nm)->hdr.sender);
    out_add(d, nm);
    out_maybe_flush(d);
    return AX_OK;
}

static const ax_actor_vtable_t dispatcher_vtable = {
    .name = "axon.dispatcher",
    .size = sizeof(dispatcher_t),
    .init = dispatcher_init,
    .on_start = dispatcher_start,
    .receive_local = dispatcher_receive,
    .receive_network = dispatcher_forward,
    .destroy = dispatcher_destroy,
};

/* ---- the hooks the actor module calls ------------------------------------- */

/* Eager frames queue behind the lazy sends made before them. */
static void net_send_frame(void *ctx, ax__remote_t *dst, ax_net_msg_t **nm, ax_ref_t from)
{
    ax__net_t *net = ctx;
    ax_msg_t *m = &(*nm)->hdr;

    *nm = NULL;
    ax__net_msg_route((ax_net_msg_t *)m, dst);
    if (ax__tell_deferred(net->dispatcher, &m, from) != AX_OK)
        ax_msg_release(&m);
}

/*
 * Lazy sends that an actor's code makes one after another travel to the
 * dispatcher together: the first envelope goes into the thread's deferred
 * chain (ax__tell_deferred), and the next ones hang from it (`more`) while
 * it is still the chain's last message, up to BATCH_MAX. The dispatcher then
 * takes one message from its mailbox and serialises the whole batch in
 * order. An eager frame, a send to another system, or the chain's hand-over
 * ends a batch; a full one is handed over at once.
 *
 * A batch also saves the sends' atomic operations. The second send into
 * an envelope pins the destination for the rest of the batch in one
 * addition (batch_join), and a send that finds the batch's reserve of
 * network.dispatch_queue units empty reserves as many as the batch holds
 * already (credit_take): 6 additions for a full batch of 32, not 32 each.
 * What a batch that ends early leaves goes back with it: whoever takes an
 * envelope's last message drops its spare pins (actor/net.h), and the
 * dispatcher returns the spare units.
 */
#define BATCH_MAX 32

typedef struct batch {
    ax__net_t *net;
    lazy_send_t *first, *last;
    unsigned n;
    uint64_t gen; /* ax__deferred_tail's, when first went into the chain */
    bool tight;   /* a reserve did not fit the bound: one unit at a time */
} batch_t;

static _Thread_local batch_t tls_batch __attribute__((tls_model("initial-exec")));

/* Right after ax__tell_deferred took ls: start a batch with it, if it
 * waits in the chain (it does unless the chain was just handed over, or
 * this thread is not running an actor's code). */
static void batch_open(ax__net_t *net, lazy_send_t *ls)
{
    batch_t *b = &tls_batch;
    uint64_t gen;

    if (ax__deferred_tail(&gen) == &ls->hdr)
        *b = (batch_t){net, ls, ls, 1, gen, false};
    else
        b->first = NULL;
}

/* This thread's batch, when it is open for net and can still grow; else
 * NULL. */
static batch_t *batch_live(ax__net_t *net)
{
    batch_t *b = &tls_batch;
    uint64_t gen;

    if (b->first != NULL && b->net == net && ax__deferred_tail(&gen) == &b->first->hdr && gen == b->gen)
        return b;
    return NULL;
}

/* One more message in the open batch b. */
static void batch_grew(batch_t *b)
{
    ax__tls_sends++; /* a send, for the run's budget */
    if (++b->n == BATCH_MAX) {
        b->first = NULL;
        ax__deferred_hand_over();
    }
}

/* The sends b can still take before it is handed over, the next one's
 * included: each reserve of a batch covers at most these. */
static unsigned batch_room(const batch_t *b)
{
    return BATCH_MAX - b->n;
}

/*
 * One network.dispatch_queue unit for a lazy send; false at the bound. In
 * an open batch b (else NULL) it comes from the batch's reserve, or the
 * send reserves in one addition as many as the batch holds (at most what
 * it can still take), this send's included: a stream's batch of 32 makes
 * 6 additions. Units reserved and not used count until the dispatcher
 * takes the batch, so a send elsewhere may be refused early by them;
 * they are fewer than the batch's sends, which bounds that. Close to the
 * bound a reserve does not fit, and the batch takes one at a time, so that
 * the bound itself is reached exactly. The count is a bound, not a
 * hand-off: it needs no order of its own.
 */
static bool credit_take(ax__net_t *net, batch_t *b)
{
    uint64_t k;

    if (b != NULL && b->first->spare_credits > 0) {
        b->first->spare_credits--;
        return true;
    }
    if (b != NULL && !b->tight && b->n > 1) {
        k = b->n < batch_room(b) ? b->n : batch_room(b);
        if (ck_pr_faa_64(&net->lazy_queued, k) + k <= net->cfg.dispatch_queue) {
            b->first->spare_credits = (uint32_t)(k - 1);
            return true;
        }
        ck_pr_sub_64(&net->lazy_queued, k);
        b->tight = true;
    }
    if (ck_pr_faa_64(&net->lazy_queued, 1) >= net->cfg.dispatch_queue) {
        ck_pr_dec_64(&net->lazy_queued);
        return false;
    }
    return true;
}

/* Give back a unit credit_take gave, for a send that failed after it. */
static void credit_undo(ax__net_t *net, batch_t *b)
{
    if (b != NULL)
        b->first->spare_credits++; /* counted: the dispatcher gives it back */
    else
        ck_pr_dec_64(&net->lazy_queued);
}

/* Whether a send to `to` joins b's last envelope: the same destination
 * (a stream to one actor needs one envelope per batch, not one per
 * message). Its entry is pinned by that envelope's messages, so an equal
 * id is a current ref. */
static bool joins_last(const batch_t *b, ax_ref_t to)
{
    const lazy_send_t *last = b->last;

    return last->dst == to.target && last->dst_id == to.id && last->msg != NULL;
}

/* Add msg to b's last envelope (joins_last), with a pin on its
 * destination: from the envelope's spare pins, or, for the first message
 * to join it, pins for the rest of the batch in one addition. */
static void batch_join(batch_t *b, ax_msg_t *msg)
{
    lazy_send_t *last = b->last;

    if (last->spare_pins == 0) {
        uint32_t k = batch_room(b);

        ax__remote_pin_more(last->dst, k);
        last->spare_pins = k;
    }
    last->spare_pins--;
    msg->link.next = NULL;
    last->last->link.next = &msg->link;
    last->last = msg;
    batch_grew(b);
}

/* Add ls to the open batch b. */
static void batch_add(batch_t *b, lazy_send_t *ls)
{
    b->last->more = ls;
    b->last = ls;
    batch_grew(b);
}

static ax_status_t net_send_lazy(void *ctx, ax_ref_t to, ax_msg_t **msg, ax_ref_t from)
{
    ax__net_t *net = ctx;
    batch_t *b = batch_live(net);
    ax__remote_t *dst = NULL;
    ax_ref_t prev_sender;
    lazy_send_t *ls;
    ax_msg_t *m;
    ax_status_t st;

    /* A pin of its own, unless it joins an envelope for the same entry:
     * first, so that an expired ref is AX_ENOTFOUND as before. */
    if ((b == NULL || !joins_last(b, to)) && (st = ax__remote_pin(to, &dst)) != AX_OK)
        return st;
    if (!credit_take(net, b)) {
        if (dst != NULL)
            ax__remote_unpin(dst);
        return ax__error(AX_ENOBUFS, "tell: network.dispatch_queue (%zu) is full: lazy sends, and room "
                         "their batches reserved, wait for the network dispatcher", net->cfg.dispatch_queue);
    }
    /* The message's own sender: the dispatcher encodes it, and a dead
     * letter of it (an ask's request) must say who sent it. Written once
     * the send can no longer fail, or put back when it does: a caller that
     * keeps its message finds it as it was. */
    if (dst == NULL) {
        (*msg)->sender = from;
        batch_join(b, *msg);
        *msg = NULL;
        return AX_OK;
    }
    /* Message memory, not a pool: made here, on the sender's thread, and
     * freed on the dispatcher's, one push onto the block's page (a pool
     * took a lock on each side; dispatch/NOTES.md, "The lazy envelope from
     * message memory"). Zeroed: no spare pins or units yet. */
    st = ax_msg_alloc(&lazy_send_type, &m);
    if (st != AX_OK) {
        credit_undo(net, b);
        ax__remote_unpin(dst);
        return st;
    }
    ls = (lazy_send_t *)m;
    ls->dst = dst;
    ls->dst_id = to.id;
    ls->msg = ls->last = *msg;
    prev_sender = ls->msg->sender;
    ls->msg->sender = from;
    ls->msg->link.next = NULL;
    *msg = NULL;
    if (b != NULL) {
        batch_add(b, ls);
        return AX_OK;
    }
    st = ax__tell_deferred(net->dispatcher, &m, from);
    if (st != AX_OK) {
        credit_undo(net, NULL);
        *msg = ls->msg;
        (*msg)->sender = prev_sender;
        ls->msg = NULL; /* the caller keeps its message */
        ax_msg_release(&m);
        ax__remote_unpin(dst);
        return st;
    }
    batch_open(net, ls);
    return AX_OK;
}

static void net_stop(void *ctx)
{
    ax__net_t *net = ctx;

    if (!net->thread_started)
        return;
    ck_pr_store_32(&net->stopping, 1); /* seen after the wake's barrier */
    ax__poller_wake(net->poller);
    pthread_join(net->thread, NULL);
    net->thread_started = false;
}

static void net_free(ax__net_t *net)
{
    ax__peer_t *p, *next;

    for (p = net->peers; p != NULL; p = next) {
        next = p->next;
        ax__nm_fifo_release(&p->pending);
        free(p);
    }
    ax__clients_free(net);
    if (net->listen_fd >= 0)
        close(net->listen_fd);
    if (net->reserve_fd >= 0)
        close(net->reserve_fd);
    ax__secret_wipe(&net->secret);
    ax_encode_buffer_destroy(&net->ctl);
    ax_buffer_pool_destroy(&net->rx_pool);
    ax__poller_destroy(&net->poller);
    pthread_mutex_destroy(&net->stats_lock);
    ax__conn_snap_destroy(&net->snap);
    pthread_mutex_destroy(&net->sub_lock);
    free(net->subs);
    free(net);
}

static void net_destroy(void *ctx)
{
    net_stop(ctx);
    net_free(ctx);
}

static const ax__net_ops_t net_ops = {
    .send_frame = net_send_frame,
    .send_lazy = net_send_lazy,
    .stop = net_stop,
    .destroy = net_destroy,
};

/* ---- start -------------------------------------------------------------------- */

static ax_status_t listen_on(ax__net_t *net)
{
    struct sockaddr_storage ss;
    const ax_addr_t *a = &net->self;
    socklen_t sl = ax__sockaddr_of(a, &ss);
    int one = 1, fd;

    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ax__error(AX_EIO, "net: socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 256) != 0) {
        char text[64];
        int err = errno;

        close(fd);
        ax_addr_format(a, text, sizeof text);
        return ax__error(AX_EIO, "net: cannot listen on %s: %s", text, strerror(err));
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        net->self.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                        : ((struct sockaddr_in *)&ss)->sin_port);
    net->listen_fd = fd;
    return AX_OK;
}

static bool addr_is_loopback(const ax_addr_t *a)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};

    return a->family == 6 ? memcmp(a->ip, v6_loopback, 16) == 0 : a->ip[0] == 127;
}

/* The first line of a small /proc file into out ("?" when unreadable). */
static void read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    size_t n = 0;

    if (f != NULL) {
        n = fread(out, 1, cap - 1, f);
        fclose(f);
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    if (out[0] == '\0')
        snprintf(out, cap, "?");
}

/* One congestion control name (key: its config key), tried on a socket of
 * the listening address's family before anything is built: a name this
 * process may not use is refused at start, not on each connection. */
static ax_status_t congestion_check(const ax__net_t *net, const char *key, const char *name)
{
    char avail[256], allowed[256];
    int fd, err;

    if (name[0] == '\0')
        return AX_OK;
    fd = socket(net->self.family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ax__error(AX_EIO, "net: socket: %s", strerror(errno));
    err = ax__tcp_congestion_set(fd, name);
    close(fd);
    if (err == 0)
        return AX_OK;
    read_line("/proc/sys/net/ipv4/tcp_available_congestion_control", avail, sizeof avail);
    read_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control", allowed, sizeof allowed);
    return ax__error(AX_EINVAL,
                     "net_start: network.%s \"%s\" cannot be used: %s (this kernel has: %s; "
                     "processes without CAP_NET_ADMIN may use: %s)",
                     key, name, strerror(err), avail, allowed);
}

static ax_status_t net_build(ax_system_t *sys, ax__net_t *net)
{
    static const ax_buffer_config_t ctl_cfg = {
        /* Control frames are small; their own pool keeps them independent
         * of a tiny network.buffer_config. */
        .chunk_size = 64 * 1024,
        .initial_chunk_count = 1,
        .max_chunk_count = 256,
        .encode_buf_min_free_space = 64,
    };
    size_t pool_max;
    ax_status_t st;

    net->sys = sys;
    net->cfg = ax__system_config(sys)->network;
    net->listen_fd = -1;
    net->reserve_fd = -1;
    net->incarnation = ax__random64();
    /* A frame the receive pool could never hold in full would stall its
     * connection for good: such a frame is refused (AX_ETOOBIG) like one
     * above max_frame_size. A chained frame may start part-way into its
     * first chunk, hence one chunk less than the whole pool. */
    pool_max = net->cfg.buffer_config.chunk_size * (net->cfg.buffer_config.max_chunk_count - 1);
    if (net->cfg.buffer_config.max_chunk_count < 2)
        pool_max = net->cfg.buffer_config.chunk_size;
    net->fmt = (ax_frame_format_t){AX__FRAME_HEADER_SIZE,
                                   net->cfg.max_frame_size < pool_max ? net->cfg.max_frame_size : pool_max};
    pthread_mutex_init(&net->stats_lock, NULL);
    ax__conn_snap_init(&net->snap);
    pthread_mutex_init(&net->sub_lock, NULL);
    ax__mpsc_init(&net->inbox, true);
    ax_system_address(sys, &net->self);
    /* A CLIENT listens nowhere (docs/wire.md section 6, "Clients"): no
     * port, and no port to guard with a secret. */
    if (net->cfg.client_only)
        net->self.port = 0;
    st = congestion_check(net, "tcp_congestion", net->cfg.tcp_congestion);
    if (st == AX_OK)
        st = congestion_check(net, "tcp_congestion_loopback", net->cfg.tcp_congestion_loopback);
    if (st == AX_OK)
        st = ax__secret_load(&net->cfg, net->cfg.client_only || addr_is_loopback(&net->self), &net->secret);
    if (st == AX_OK && !net->cfg.client_only)
        st = listen_on(net);
    /* A spare descriptor, given up to accept (and close) a connection when
     * the process runs out of them, so the listener never stalls. */
    if (st == AX_OK && (net->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        st = ax__error(AX_EIO, "net: cannot open the reserve descriptor: %s", strerror(errno));
    if (st == AX_OK)
        st = ax__poller_create(&net->poller);
    if (st == AX_OK && net->listen_fd >= 0)
        st = ax__poller_add(net->poller, net->listen_fd, AX__POLL_IN, &net->listen_fd, &net->listen_reg);
    if (st == AX_OK)
        st = ax_buffer_pool_create(&net->cfg.buffer_config, &net->rx_pool);
    if (st == AX_OK)
        st = ax_encode_buffer_create(&ctl_cfg, &net->ctl);
    return st;
}

/* glibc's malloc sets itself up on its first call, and malloc_trim is
 * such a call. Where malloc is another allocator's (the sanitizers',
 * valgrind's, a preloaded one), glibc's is never set up before the network
 * threads trim, and two that trim first at once race in that set-up: one
 * walks bins the other has not made yet (a SEGV that ASan caught). One trim
 * here, once a process and before any network thread starts, does the
 * set-up; pthread_create then orders it before every thread's trim. */
static pthread_once_t malloc_once = PTHREAD_ONCE_INIT;

static void malloc_set_up(void)
{
    malloc_trim(0);
}

ax_status_t ax_net_start(ax_system_t *sys)
{
    ax__net_t *net;
    ax_status_t st;

    if (sys == NULL)
        return ax__error(AX_EINVAL, "net_start: NULL system");
    if (ax__system_net(sys) != NULL)
        return ax__error(AX_ESTATE, "net_start: the network of this system is started already");
    /* Aligned: the sleeping flag has a cache line of its own. */
    _Static_assert(sizeof(ax__net_t) % alignof(ax__net_t) == 0, "whole lines");
    net = aligned_alloc(alignof(ax__net_t), sizeof(*net));
    if (net == NULL)
        return ax__error(AX_ENOMEM, "net_start: out of memory");
    memset(net, 0, sizeof(*net));
    st = net_build(sys, net);
    if (st == AX_OK)
        st = ax_spawn(sys, &dispatcher_vtable, net, &net->dispatcher);
    if (st == AX_OK) /* it serialises what actors send from on_stop */
        ax__late_mark(net->dispatcher, 0);
    pthread_once(&malloc_once, malloc_set_up); /* before any network thread */
    /* The thread before the network is installed: a failure to start it
     * leaves nothing behind (it only touches net until then). */
    if (st == AX_OK) {
        int err = ax__fault("net.thread") ? EAGAIN : pthread_create(&net->thread, NULL, ax__net_main, net);

        if (err != 0)
            st = ax__error(AX_ENOMEM, "net_start: cannot start the network thread: %s", strerror(err));
        else
            net->thread_started = true;
    }
    if (st == AX_OK)
        st = ax__system_set_net(sys, &net_ops, net);
    if (st != AX_OK) {
        net_stop(net);
        if (ax_ref_is_null(net->dispatcher)) {
            net_free(net);
        } else {
            /* The dispatcher may be in its on_start now: it frees net as
             * it ends (dispatcher_destroy). A plain store: the kill's CAS,
             * which its run takes, orders it before that read. */
            ck_pr_store_32(&net->orphaned, 1);
            ax_kill(net->dispatcher);
        }
        return st;
    }
    /* Paths handed out from now on carry the bound port. */
    ax__system_set_port(sys, net->self.port);
    return AX_OK;
}

/* ---- events ----------------------------------------------------------------------- */

void ax__net_event(ax__net_t *net, ax_net_event_kind_t kind, const ax_addr_t *peer, uint64_t session,
                   ax_status_t status)
{
    ax_msg_t *own;

    /* The dispatcher fails the asks that were waiting on the peer. */
    /* (Not once stopping: the dispatcher has ended then.) */
    if (kind != AX_NET_ESTABLISHED && !ck_pr_load_32(&net->stopping)) {
        if (ax_msg_alloc(&ax_net_event_type, &own) != AX_OK) {
            ck_pr_inc_64(&net->events_lost); /* a counter: any order */
        } else {
            ax_net_event_t *e = (ax_net_event_t *)own;

            e->kind = kind;
            e->peer = *peer;
            e->session = session;
            e->status = status;
            if (ax_tell(net->dispatcher, &own, AX_REF_NULL) != AX_OK)
                ax_msg_release(&own);
        }
    }
    pthread_mutex_lock(&net->sub_lock);
    for (size_t i = 0; i < net->nsubs; i++) {
        ax_msg_t *m;
        ax_net_event_t *e;

        if (ax_msg_alloc(&ax_net_event_type, &m) != AX_OK) {
            ck_pr_inc_64(&net->events_lost); /* a counter: any order */
            continue;
        }
        e = (ax_net_event_t *)m;
        e->kind = kind;
        e->peer = *peer;
        e->session = session;
        e->status = status;
        if (ax_tell(net->subs[i], &m, AX_REF_NULL) != AX_OK)
            ax_msg_release(&m);
    }
    pthread_mutex_unlock(&net->sub_lock);
}

static ax__net_t *net_of(ax_system_t *sys)
{
    return sys != NULL ? ax__system_net(sys) : NULL;
}

/* Where ref is in the subscriber list, or nsubs; with the lock. */
static size_t sub_index(const ax__net_t *net, ax_ref_t ref)
{
    size_t i = 0;

    while (i < net->nsubs && !ax_ref_eq(net->subs[i], ref))
        i++;
    return i;
}

ax_status_t ax_net_subscribe(ax_system_t *sys, ax_ref_t ref)
{
    ax__net_t *net = net_of(sys);
    ax_status_t st = AX_OK;

    if (net == NULL)
        return ax__error(AX_ESTATE, "net_subscribe: the network is not started");
    pthread_mutex_lock(&net->sub_lock);
    if (sub_index(net, ref) < net->nsubs)
        st = ax__error(AX_EEXIST, "net_subscribe: subscribed already");
    else if (!ax__grow(&net->subs, &net->subs_cap, net->nsubs + 1, sizeof(ax_ref_t), 4))
        st = ax__error(AX_ENOMEM, "net_subscribe: out of memory");
    else
        net->subs[net->nsubs++] = ref;
    pthread_mutex_unlock(&net->sub_lock);
    return st;
}

ax_status_t ax_net_unsubscribe(ax_system_t *sys, ax_ref_t ref)
{
    ax__net_t *net = net_of(sys);
    ax_status_t st = AX_OK;
    size_t i;

    if (net == NULL)
        return ax__error(AX_ESTATE, "net_unsubscribe: the network is not started");
    pthread_mutex_lock(&net->sub_lock);
    i = sub_index(net, ref);
    if (i < net->nsubs)
        net->subs[i] = net->subs[--net->nsubs];
    else
        st = ax__error(AX_ENOTFOUND, "net_unsubscribe: not subscribed");
    pthread_mutex_unlock(&net->sub_lock);
    return st;
}

ax_status_t ax_net_stats(ax_system_t *sys, ax_net_stats_t *out)
{
    ax__net_t *net = net_of(sys);
    const ax__net_counters_t *c;

    if (net == NULL || out == NULL)
        return ax__error(AX_ESTATE, "net_stats: the network is not started");
    c = &net->c;
    memset(out, 0, sizeof(*out));
    /* Single-writer counters (ax__counter_add): each load is a recent
     * value; together they are not one snapshot. */
    out->frames_sent = ck_pr_load_64(&c->frames_sent);
    out->frames_received = ck_pr_load_64(&c->frames_received);
    out->bytes_sent = ck_pr_load_64(&c->bytes_sent);
    out->bytes_received = ck_pr_load_64(&c->bytes_received);
    out->acked = ck_pr_load_64(&c->acked);
    out->dead_lettered = ck_pr_load_64(&c->dead_lettered);
    out->returned = ck_pr_load_64(&c->returned);
    out->too_big = ck_pr_load_64(&c->too_big);
    out->malformed = ck_pr_load_64(&c->malformed);
    out->connections = ck_pr_load_64(&c->connections);
    out->pending_handshakes = ck_pr_load_64(&c->pending_handshakes);
    out->reconnects = ck_pr_load_64(&c->reconnects);
    out->read_pauses = ck_pr_load_64(&c->read_pauses);
    out->ring_reads = ck_pr_load_64(&c->ring_reads);
    out->events_lost = ck_pr_load_64(&net->events_lost);
    out->asks_untracked = ck_pr_load_64(&net->asks_untracked);
    out->refused = ck_pr_load_64(&c->refused);
    out->handshake_timeouts = ck_pr_load_64(&c->handshake_timeouts);
    out->handshakes_evicted = ck_pr_load_64(&c->handshakes_evicted);
    out->auth_failures = ck_pr_load_64(&c->auth_failures);
    out->replace_refused = ck_pr_load_64(&c->replace_refused);
    out->heartbeat_timeouts = ck_pr_load_64(&c->heartbeat_timeouts);
    pthread_mutex_lock(&net->stats_lock);
    out->receive_pool = net->rx_stats;
    out->dispatch_pool = net->dispatch_stats;
    pthread_mutex_unlock(&net->stats_lock);
    return AX_OK;
}
