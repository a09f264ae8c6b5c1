/*
 * Shared by the network tests (test_net.c, test_net_proc.c) and their peer
 * program (net_peer.c): a counted message type carrying a sequence number,
 * paths, and three small actors: a node (sink, echo or pinger, and it runs
 * jobs on its own thread), a dead-letter counter and a network-event log.
 *
 * Criterion-free, so that net_peer can use it too: waits return false on
 * timeout and the tests turn that into a failure.
 */
#ifndef AXON_TESTS_DISPATCH_NET_HELPERS_H
#define AXON_TESTS_DISPATCH_NET_HELPERS_H

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/common.h"

/* ---- seq: one sequence number, with a user serialiser ------------------ */

/*
 * The payload is one msgpack unsigned integer. Allocations and releases
 * are counted (process-wide), so a test can check that every lazily sent
 * message was released after it was serialised, and that every decoded
 * one was released by its receiver.
 */
typedef struct seq_msg {
    ax_msg_t hdr;
    uint64_t seq;
} seq_msg_t;

#define SEQ_SER_ID (AX_SER_USER_MIN + 7)

static _Atomic uint64_t seq_allocs AXT_UNUSED, seq_releases AXT_UNUSED;

static inline void seq_release(ax_msg_t *m)
{
    atomic_fetch_add(&seq_releases, 1);
    free(m);
}

static inline ax_status_t seq_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    return msgpack_pack_uint64(pk, ((const seq_msg_t *)m)->seq) == 0 ? AX_OK : AX_ENOBUFS;
}

static inline ax_msg_t *seq_new(uint64_t seq);

static inline ax_status_t seq_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                          ax_msg_t **out)
{
    (void)payload;
    if (obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return AX_EPROTO;
    *out = seq_new(obj->via.u64);
    return *out != NULL ? AX_OK : AX_ENOMEM;
}

static const ax_msg_type_t seq_type AXT_UNUSED = {
    .name = "test.seq",
    .size = sizeof(seq_msg_t),
    .release = seq_release,
    .serialiser_id = SEQ_SER_ID,
    .serialise = seq_serialise,
    .deserialise = seq_deserialise,
};

static inline ax_msg_t *seq_new(uint64_t seq)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&seq_type, &m) != AX_OK)
        return NULL;
    ((seq_msg_t *)m)->seq = seq;
    atomic_fetch_add(&seq_allocs, 1);
    return m;
}

/* The sequence number of a NetMessage carrying a seq; false when it does
 * not decode. */
static inline bool seq_of(const ax_net_msg_t *nm, uint64_t *seq)
{
    ax_msg_t *m = NULL;

    if (ax_net_msg_deserialise(nm, &seq_type, &m) != AX_OK)
        return false;
    *seq = ((seq_msg_t *)m)->seq;
    ax_msg_release(&m);
    return true;
}

/*
 * Send seq to dst from self: lazily (ax_tell: the dispatcher serialises
 * it) or eagerly (ax_tell_serialised: serialised now, into self's pool).
 * Call from self's handlers. On failure nothing was sent and nothing
 * leaks.
 */
static inline ax_status_t seq_send(ax_actor_t *self, ax_ref_t dst, uint64_t seq, bool eager)
{
    ax_msg_t *m;
    ax_status_t st;

    if (eager) {
        seq_msg_t s;

        ax_msg_init(&s.hdr, &seq_type);
        s.seq = seq;
        return ax_tell_serialised(self, dst, &seq_type, &s.hdr);
    }
    m = seq_new(seq);
    if (m == NULL)
        return AX_ENOMEM;
    st = ax_tell(dst, &m, self != NULL ? ax_self(self) : AX_REF_NULL);
    ax_msg_release(&m); /* NULL unless the tell failed */
    return st;
}

/* Lazy sends of seqs first .. first + count - 1 to dst, one after another
 * in one handler (a job for axt_run_on): they reach the dispatcher as one
 * batch, sharing envelopes (dispatch/net.c). */
typedef struct seq_stream {
    ax_ref_t dst;
    uint64_t first, count;
    _Atomic uint64_t failed; /* sends that returned an error */
} seq_stream_t;

static inline void seq_stream_send(ax_actor_t *self, void *arg)
{
    seq_stream_t *j = arg;

    for (uint64_t i = j->first; i < j->first + j->count; i++)
        if (seq_send(self, j->dst, i, false) != AX_OK)
            atomic_fetch_add(&j->failed, 1);
}

/* ---- paths ---------------------------------------------------------------- */

/* "tcp://<sys's address>/<name>", parsed. */
static inline ax_status_t nt_named_path(ax_system_t *sys, const char *name, ax_path_t *out)
{
    ax_addr_t a;
    char addr[AX_PATH_STR_MAX], text[2 * AX_PATH_STR_MAX + 8];

    ax_system_address(sys, &a);
    ax_addr_format(&a, addr, sizeof addr);
    snprintf(text, sizeof text, "tcp://%s/%s", addr, name);
    return ax_path_parse(text, out);
}

/* "tcp://127.0.0.1:<port>/<name>", parsed. */
static inline ax_status_t nt_port_path(uint16_t port, const char *name, ax_path_t *out)
{
    char text[AX_PATH_STR_MAX];

    snprintf(text, sizeof text, "tcp://127.0.0.1:%u/%s", (unsigned)port, name);
    return ax_path_parse(text, out);
}

/* ---- the node: sink, echo or pinger -------------------------------------- */

typedef enum nt_mode {
    NT_SINK, /* count and check seqs; keep NetMessages while `hold` */
    NT_ECHO, /* send each seq back to its sender */
    NT_PING, /* send 0..rounds-1 to peer, each after the previous reply */
} nt_mode_t;

typedef struct nt_node nt_node_t;

/*
 * What a node is and what happened to it. The test owns it and sets the
 * configuration before spawning; the actor writes the rest. Fields the
 * test reads while the actor runs are atomic.
 */
struct nt_node {
    /* Configuration. */
    nt_mode_t mode;
    bool eager;      /* echo and ping: send with tell_serialised */
    uint64_t rounds; /* ping: round trips */
    ax_ref_t peer;   /* ping: the echo's ref */
    /* Replaces the mode's handling of a NetMessage when set. */
    void (*on_net)(nt_node_t *n, ax_actor_t *self, ax_net_msg_t **nm);
    void *ctx;
    const ax_msg_type_t *kept_type; /* what kept NetMessages decode as (seq_type) */

    /* What happened. */
    _Atomic uint64_t received;     /* NetMessages handled */
    _Atomic uint64_t out_of_order; /* seqs at or below one seen before */
    _Atomic uint64_t gaps;         /* seqs above the next expected */
    _Atomic uint64_t bad;          /* undecodable, wrong reply, failed send */
    _Atomic uint64_t session;      /* of the last NetMessage */
    _Atomic uint64_t session_changes;
    _Atomic uint64_t held;         /* NetMessages kept (sink, hold) */
    _Atomic bool hold;             /* sink: keep NetMessages */
    uint64_t next;                 /* the seq expected next */
    bool any;                      /* a seq was seen */
    ax_net_msg_t **keep;           /* kept NetMessages, in arrival order */
    size_t keep_cap;
    sem_t done; /* ping: the last reply came */
};

typedef struct nt_node_actor {
    ax_actor_t actor;
    nt_node_t *n;
} nt_node_actor_t;

static inline void nt_node_setup(nt_node_t *n, nt_mode_t mode)
{
    memset(n, 0, sizeof(*n));
    n->mode = mode;
    sem_init(&n->done, 0, 0);
}

/* Record seq: order per sender is what the tests check (one sender per
 * node). */
static inline void nt_node_track(nt_node_t *n, uint64_t seq)
{
    if (n->any && seq < n->next)
        atomic_fetch_add(&n->out_of_order, 1);
    else if (seq > n->next)
        atomic_fetch_add(&n->gaps, 1);
    if (!n->any || seq >= n->next)
        n->next = seq + 1;
    n->any = true;
}

static inline void nt_node_keep(nt_node_t *n, ax_net_msg_t **nm)
{
    size_t count = (size_t)atomic_load(&n->held);

    if (count == n->keep_cap) {
        size_t cap = n->keep_cap ? n->keep_cap * 2 : 256;
        ax_net_msg_t **k = realloc(n->keep, cap * sizeof(*k));

        if (k == NULL) {
            atomic_fetch_add(&n->bad, 1);
            return; /* the runtime releases it: the test sees `bad` */
        }
        n->keep = k;
        n->keep_cap = cap;
    }
    n->keep[count] = *nm;
    *nm = NULL;
    atomic_store(&n->held, count + 1);
}

/* Release every kept NetMessage, after checking each still decodes (its
 * payload was kept alive by the NetMessage), and stop holding. A job. */
static inline void nt_node_release_all(ax_actor_t *self, void *arg)
{
    nt_node_t *n = ((nt_node_actor_t *)self)->n;
    size_t count = (size_t)atomic_load(&n->held);

    (void)arg;
    for (size_t i = 0; i < count; i++) {
        ax_msg_t *m = (ax_msg_t *)n->keep[i], *d = NULL;

        if (ax_net_msg_deserialise(n->keep[i], n->kept_type != NULL ? n->kept_type : &seq_type, &d) != AX_OK)
            atomic_fetch_add(&n->bad, 1);
        ax_msg_release(&d);
        ax_msg_release(&m);
    }
    free(n->keep);
    n->keep = NULL;
    n->keep_cap = 0;
    atomic_store(&n->held, 0);
    atomic_store(&n->hold, false);
}

static inline ax_status_t nt_node_a_init(ax_actor_t *self, void *arg)
{
    ((nt_node_actor_t *)self)->n = arg;
    return AX_OK;
}

static inline ax_status_t nt_node_a_local(ax_actor_t *self, ax_msg_t **msg)
{
    axt_job_run(self, *msg);
    return AX_OK;
}

static inline ax_status_t nt_node_a_net(ax_actor_t *self, ax_net_msg_t **nm)
{
    nt_node_t *n = ((nt_node_actor_t *)self)->n;
    uint64_t session = ax_net_msg_session(*nm), seq = 0;
    ax_ref_t back;
    bool finished = false;

    if (atomic_load(&n->received) > 0 && atomic_load(&n->session) != session)
        atomic_fetch_add(&n->session_changes, 1);
    atomic_store(&n->session, session);
    if (n->on_net != NULL) {
        n->on_net(n, self, nm);
    } else if (!seq_of(*nm, &seq)) {
        atomic_fetch_add(&n->bad, 1);
    } else {
        nt_node_track(n, seq);
        switch (n->mode) {
        case NT_SINK:
            if (atomic_load(&n->hold))
                nt_node_keep(n, nm);
            break;
        case NT_ECHO:
            if (ax_net_msg_sender(self, *nm, &back) != AX_OK || seq_send(self, back, seq, n->eager) != AX_OK)
                atomic_fetch_add(&n->bad, 1);
            break;
        case NT_PING:
            if (seq + 1 >= n->rounds)
                finished = true;
            else if (seq_send(self, n->peer, seq + 1, n->eager) != AX_OK)
                atomic_fetch_add(&n->bad, 1);
            break;
        }
    }
    /* Last: a test that sees the count sees what came before. */
    atomic_fetch_add(&n->received, 1);
    if (finished)
        sem_post(&n->done);
    return AX_OK;
}

/* A node that is told to stop releases what it still keeps. */
static inline void nt_node_a_destroy(ax_actor_t *self)
{
    nt_node_release_all(self, NULL);
}

static const ax_actor_vtable_t nt_node_vtable AXT_UNUSED = {
    .name = "test.node",
    .size = sizeof(nt_node_actor_t),
    .init = nt_node_a_init,
    .receive_local = nt_node_a_local,
    .receive_network = nt_node_a_net,
    .destroy = nt_node_a_destroy,
};

/* Ping: send the first seq. A job. */
static inline void nt_ping_start(ax_actor_t *self, void *arg)
{
    nt_node_t *n = ((nt_node_actor_t *)self)->n;

    (void)arg;
    if (seq_send(self, n->peer, 0, n->eager) != AX_OK)
        atomic_fetch_add(&n->bad, 1);
}

/* ---- dead letters, counted ---------------------------------------------------- */

#define NT_STATUS_SLOTS 32

typedef struct nt_dl {
    _Atomic uint64_t count;       /* every dead letter */
    _Atomic uint64_t by_status[NT_STATUS_SLOTS]; /* indexed by -status */
    _Atomic uint64_t net_msgs;    /* carrying a NetMessage */
    _Atomic uint64_t seq_decoded; /* of those, decoding as a seq */
    _Atomic uint64_t undelivered; /* carrying an ax_net_undelivered_t */
    _Atomic uint64_t seqs;        /* carrying a seq message not yet serialised */
    _Atomic uint64_t others;
    _Atomic uint64_t wrong_recipient; /* recipient is not `watch` (when set) */
    ax_ref_t watch;
    uint8_t *seen;                /* optional: seen[seq] counts decoded seqs */
    size_t seen_cap;
} nt_dl_t;

typedef struct nt_dl_actor {
    ax_actor_t actor;
    nt_dl_t *dl;
} nt_dl_actor_t;

static inline ax_status_t nt_dl_a_init(ax_actor_t *self, void *arg)
{
    ((nt_dl_actor_t *)self)->dl = arg;
    return AX_OK;
}

static inline ax_status_t nt_dl_a_receive(ax_actor_t *self, ax_msg_t **msg)
{
    nt_dl_t *dl = ((nt_dl_actor_t *)self)->dl;
    const ax_dead_letter_t *d = (const ax_dead_letter_t *)*msg;
    uint64_t seq;

    if ((*msg)->type != &ax_dead_letter_type) {
        atomic_fetch_add(&dl->others, 1);
        return AX_OK;
    }
    if (!ax_ref_is_null(dl->watch) && !ax_ref_eq(dl->watch, d->recipient))
        atomic_fetch_add(&dl->wrong_recipient, 1);
    if (d->msg == NULL) {
        atomic_fetch_add(&dl->others, 1);
    } else if (d->msg->type == &ax_net_msg_type) {
        atomic_fetch_add(&dl->net_msgs, 1);
        if (seq_of((const ax_net_msg_t *)d->msg, &seq)) {
            atomic_fetch_add(&dl->seq_decoded, 1);
            if (dl->seen != NULL && seq < dl->seen_cap && dl->seen[seq] < 255)
                dl->seen[seq]++;
        }
    } else if (d->msg->type == &ax_net_undelivered_type) {
        atomic_fetch_add(&dl->undelivered, 1);
    } else if (d->msg->type == &seq_type) {
        atomic_fetch_add(&dl->seqs, 1);
    } else {
        atomic_fetch_add(&dl->others, 1);
    }
    /* Last, the status and the count: a test that waits for either sees
     * the rest (the adds are sequentially consistent). */
    if (-(int)d->status >= 0 && -(int)d->status < NT_STATUS_SLOTS)
        atomic_fetch_add(&dl->by_status[-(int)d->status], 1);
    atomic_fetch_add(&dl->count, 1);
    return AX_OK;
}

static const ax_actor_vtable_t nt_dl_vtable AXT_UNUSED = {
    .name = "test.dead-letter-counter",
    .size = sizeof(nt_dl_actor_t),
    .init = nt_dl_a_init,
    .receive_local = nt_dl_a_receive,
};

static inline uint64_t nt_dl_status(nt_dl_t *dl, ax_status_t st)
{
    return atomic_load(&dl->by_status[-(int)st]);
}

/* ---- network events, logged ----------------------------------------------------- */

#define NT_EVENTS_MAX 256

typedef struct nt_events {
    pthread_mutex_t lock;
    size_t count;
    ax_net_event_t ev[NT_EVENTS_MAX];
} nt_events_t;

typedef struct nt_events_actor {
    ax_actor_t actor;
    nt_events_t *log;
} nt_events_actor_t;

static inline ax_status_t nt_events_a_init(ax_actor_t *self, void *arg)
{
    ((nt_events_actor_t *)self)->log = arg;
    return AX_OK;
}

static inline ax_status_t nt_events_a_receive(ax_actor_t *self, ax_msg_t **msg)
{
    nt_events_t *log = ((nt_events_actor_t *)self)->log;

    if ((*msg)->type != &ax_net_event_type)
        return AX_OK;
    pthread_mutex_lock(&log->lock);
    if (log->count < NT_EVENTS_MAX)
        log->ev[log->count++] = *(const ax_net_event_t *)*msg;
    pthread_mutex_unlock(&log->lock);
    return AX_OK;
}

static const ax_actor_vtable_t nt_events_vtable AXT_UNUSED = {
    .name = "test.net-events",
    .size = sizeof(nt_events_actor_t),
    .init = nt_events_a_init,
    .receive_local = nt_events_a_receive,
};

static inline void nt_events_setup(nt_events_t *log)
{
    memset(log, 0, sizeof(*log));
    pthread_mutex_init(&log->lock, NULL);
}

/*
 * Wait for the first event at index >= *from of this kind (for this peer
 * when peer is not NULL); on success *out is a copy and *from the index
 * after it. False on timeout.
 */
static inline bool nt_events_wait(nt_events_t *log, size_t *from, ax_net_event_kind_t kind,
                                  const ax_addr_t *peer, double secs, ax_net_event_t *out)
{
    double end = axt_now() + secs;

    for (;;) {
        pthread_mutex_lock(&log->lock);
        for (size_t i = *from; i < log->count; i++) {
            if (log->ev[i].kind == kind && (peer == NULL || ax_addr_eq(&log->ev[i].peer, peer))) {
                *out = log->ev[i];
                *from = i + 1;
                pthread_mutex_unlock(&log->lock);
                return true;
            }
        }
        pthread_mutex_unlock(&log->lock);
        if (axt_now() > end)
            return false;
        axt_sleep_us(1000);
    }
}

/* Events of this kind logged so far. */
static inline size_t nt_events_count(nt_events_t *log, ax_net_event_kind_t kind)
{
    size_t n = 0;

    pthread_mutex_lock(&log->lock);
    for (size_t i = 0; i < log->count; i++)
        n += log->ev[i].kind == kind;
    pthread_mutex_unlock(&log->lock);
    return n;
}

/* ---- systems for the network tests (test_hostile, test_trust) ------------------ */

/* The defaults with two workers. */
static inline ax_config_t nt_config(void)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    return cfg;
}

#ifdef cr_assert /* Criterion tests only (net_peer.c is a plain program) */
/* Spawn a node actor for n in sys, registered as name unless it is NULL;
 * asserts that both succeed. */
static inline ax_ref_t nt_spawn_node(ax_system_t *sys, nt_node_t *n, const char *name)
{
    ax_ref_t ref;

    cr_assert_eq(ax_spawn(sys, &nt_node_vtable, n, &ref), AX_OK, "spawn: %s", ax_error_detail());
    if (name != NULL)
        cr_assert_eq(ax_register(sys, ref, name), AX_OK, "register: %s", ax_error_detail());
    return ref;
}

/* A sink node for n in `to`, registered as "sink"; returns a ref to it in
 * `from` (by its named path). */
static inline ax_ref_t nt_sink_on(ax_system_t *to, ax_system_t *from, nt_node_t *n)
{
    ax_ref_t ref;
    ax_path_t p;

    nt_node_setup(n, NT_SINK);
    nt_spawn_node(to, n, "sink");
    cr_assert_eq(nt_named_path(to, "sink", &p), AX_OK, "path: %s", ax_error_detail());
    cr_assert_eq(ax_ref_from_path(from, &p, &ref), AX_OK, "ref_from_path: %s", ax_error_detail());
    return ref;
}
#endif

/* A system with its network started; NULL (with a detail) on failure. */
static inline ax_system_t *nt_start(const ax_config_t *cfg)
{
    ax_system_t *sys = NULL;

    if (ax_system_create(cfg, &sys) != AX_OK)
        return NULL;
    if (ax_net_start(sys) != AX_OK) {
        ax_system_destroy(&sys);
        return NULL;
    }
    return sys;
}

/* The port sys listens on. */
static inline uint16_t nt_port(ax_system_t *sys)
{
    ax_addr_t a;

    ax_system_address(sys, &a);
    return a.port;
}

/* A ref, in `from`, to the actor named `name` at 127.0.0.1:port;
 * AX_REF_NULL when the path is not valid. */
static inline ax_ref_t nt_ref_to(ax_system_t *from, uint16_t port, const char *name)
{
    ax_path_t p;
    ax_ref_t ref = AX_REF_NULL;

    if (nt_port_path(port, name, &p) != AX_OK || ax_ref_from_path(from, &p, &ref) != AX_OK)
        return AX_REF_NULL;
    return ref;
}

/* One seq, lazily, from outside any actor; on failure the message is
 * released here and the status returned. */
static inline ax_status_t nt_send_seq(ax_ref_t dst, uint64_t seq)
{
    ax_msg_t *m = seq_new(seq);
    ax_status_t st = ax_tell(dst, &m, AX_REF_NULL);

    if (st != AX_OK)
        ax_msg_release(&m);
    return st;
}

/* ---- raw wire-v2 peers, for tests that play a stranger or a silent peer ------- */

/* A blocking TCP connection to 127.0.0.1:port, or -1 (errno says why). */
static inline int nt_connect_port(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* A version-2 Hello frame (header and body, docs/wire.md section 7)
 * announcing the IPv4 address addr, with no secret, a 1 MiB frame limit and
 * a fixed nonce. Its length, or 0 when cap is too small. */
static inline size_t nt_hello_frame(unsigned char *out, size_t cap, const ax_addr_t *addr,
                                    uint64_t incarnation, uint64_t session)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "axon", 4);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_bin(&pk, 4);
    msgpack_pack_bin_body(&pk, addr->ip, 4);
    msgpack_pack_uint16(&pk, addr->port);
    msgpack_pack_uint64(&pk, incarnation);
    msgpack_pack_uint64(&pk, session);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 1u << 20);
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, "a test peer's nonce, 32 bytes...", 32);
    msgpack_pack_uint8(&pk, 0);
    if (sb.size + 8 <= cap) {
        memset(out, 0, 8);
        out[0] = (unsigned char)(sb.size >> 24);
        out[1] = (unsigned char)(sb.size >> 16);
        out[2] = (unsigned char)(sb.size >> 8);
        out[3] = (unsigned char)sb.size;
        out[4] = 1; /* Hello */
        memcpy(out + 8, sb.data, sb.size);
        n = sb.size + 8;
    }
    msgpack_sbuffer_destroy(&sb);
    return n;
}

#endif
