/*
 * Internal to dispatch/: the network thread, its peers and connections.
 *
 * Threads. The network thread owns every socket, every peer and every
 * connection; nothing below is touched by another thread except the
 * inbox (an MPSC queue any thread pushes frames to), the stopping flag,
 * the stats counters and the subscriber list (under its own mutex).
 *
 * Peers and connections. A peer is another system, by address. It has at
 * most one open connection. While it has none, frames for it wait in the
 * peer's bounded pending queue while the network thread connects, with
 * exponential backoff between attempts; after max_retries failed attempts
 * the pending frames go to dead letters (AX_ETIMEDOUT) and the peer is
 * DROPPED until the next frame for it.
 *
 * Accounting. Data frames written on a connection are numbered. The
 * receiver acknowledges the count it has received (Ack frames, after each
 * read burst); a Status frame returns one undeliverable frame by number.
 * A written frame's lease is released as soon as it is written; the
 * connection keeps a small record (recipient, serialiser id) until the
 * ack, so that when a connection is lost every unacknowledged frame still
 * goes to dead letters (AX_ECLOSED) as an ax_net_undelivered_t.
 */
#ifndef AXON_DISPATCH_NET_INTERNAL_H
#define AXON_DISPATCH_NET_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <sys/socket.h>
#include <stdbool.h>

#include "actor/net.h"
#include "axon/config.h"
#include "dispatch/auth.h"
#include "axon/net.h"
#include "dispatch/metrics_conn.h"
#include "dispatch/poller.h"
#include "dispatch/uring.h"
#include "serial/frame.h"
#include "serial/mpsc.h"
#include "serial/netmsg.h"
#include "serial/pathtab.h"

#define AX__PROTO_MAGIC "axon"
#define AX__PROTO_VERSION 2u

/* Hello flags (docs/wire.md section 7). */
#define AX__HELLO_AUTH 0x1u /* the sender has a secret and requires proofs */
#define AX__HELLO_CLIENT 0x2u /* the initiator does not listen: not addressable */

/* The largest frame (header + body) accepted before a connection's
 * handshake is complete: a Hello or an Auth, with room to spare. A larger
 * header closes the connection without a reply. */
#define AX__HANDSHAKE_FRAME_MAX 256u

/* What a NetMessage on a send queue carries (ax_net_msg_t.wire). */
enum ax__wire_kind {
    AX__WIRE_DATA = 0,    /* a Data frame for nm->route */
    AX__WIRE_CONTROL = 1, /* Hello, Ack, Status, Bye: not counted */
};

enum ax__peer_state {
    AX__PEER_IDLE,       /* no connection, nothing to send */
    AX__PEER_CONNECTING, /* an outgoing connection is being set up */
    AX__PEER_BACKOFF,    /* waiting before the next attempt */
    AX__PEER_OPEN,       /* handshake done: conn carries its frames */
};

/*
 * A connection's life. TCP and HELLO are "strangers": they hold only a
 * small handshake buffer of their own (ax__handshake_t), never the shared
 * receive pool, and they can replace nothing. DEAD is a connection that has
 * ended during this turn of the loop: its socket is closed and its frames
 * accounted for, but its memory stays until the end of the turn (reap), so
 * that any pointer to it taken earlier in the turn still reads a DEAD
 * connection rather than freed memory.
 */
enum ax__conn_state {
    AX__CONN_TCP,     /* outgoing, connect() in progress */
    AX__CONN_HELLO,   /* handshake in progress (Hello, then Auth) */
    AX__CONN_OPEN,    /* handshake done */
    AX__CONN_CLOSING, /* Bye sent or received; flushing, then close */
    AX__CONN_DEAD,    /* ended; freed at the end of this loop turn */
};

/* The state of a handshake in progress: freed when the connection opens. */
typedef struct ax__handshake_s {
    unsigned char buf[AX__HANDSHAKE_FRAME_MAX]; /* bytes read, not yet taken */
    size_t len;
    /* Both Hello bodies as sent, for the proofs (the transcript). */
    unsigned char hello_i[AX__HANDSHAKE_FRAME_MAX], hello_a[AX__HANDSHAKE_FRAME_MAX];
    size_t hello_i_len, hello_a_len;
    unsigned char nonce[AX__NONCE_SIZE]; /* ours, fresh per connection */
    uint64_t deadline_ns;   /* closed if not open by then */
    bool auth;              /* both sides have a secret: proofs follow */
    bool await_auth;        /* our Hello is out; the peer's proof is next */
    bool client;            /* the peer's Hello had the CLIENT flag */
    ax_addr_t addr;         /* from the peer's Hello */
    uint64_t incarnation;
    struct ax__conn_s *older, *newer; /* strangers, oldest first (accepted only) */
} ax__handshake_t;

typedef struct ax__net_s ax__net_t;
typedef struct ax__conn_s ax__conn_t;

/* A FIFO of NetMessages linked through hdr.link. */
typedef struct ax__nm_fifo_s {
    ax_msg_link_t *head, *tail;
    size_t count;
} ax__nm_fifo_t;

typedef struct ax__unacked_s {
    ax_ref_t dst;   /* a ref, not a pin: it only names the recipient */
    ax_ref_t from;  /* the sender: an ask's reply ref fails with its frame */
    uint64_t serialiser_id;
    bool returned; /* a Status frame sent it back already */
} ax__unacked_t;

typedef struct ax__peer_s {
    ax_addr_t addr;
    int state;
    ax__conn_t *conn;       /* the open (or opening, outgoing) connection */
    ax__nm_fifo_t pending;  /* frames waiting for a connection */
    uint32_t attempts;      /* failed attempts since the last success */
    uint64_t backoff_timer; /* poller timer id, 0 when none */
    bool ever_open;         /* for the reconnects stat */
    /* Not 0: the peer of one CLIENT connection (dispatch/client.c), with
     * that connection's id. Not on the peers list and never connected to:
     * it lives and dies with its connection. */
    uint64_t via;
    struct ax__peer_s *next;
} ax__peer_t;

struct ax__conn_s {
    ax__net_t *net;
    int fd;
    uint64_t reg;           /* poller registration id */
    uint32_t interest;
    int state;
    bool outgoing;
    ax__peer_t *peer;       /* NULL for an incoming one before its Hello */
    uint64_t session;
    uint64_t peer_incarnation;
    uint64_t peer_max_frame; /* the largest frame the peer accepts (Hello) */
    uint64_t peer_path_ids; /* the path ids the peer offered (Hello) */
    ax__pathtab_t *tx_ids;  /* the ids we bound towards the peer, or NULL */
    bool tx_ids_lost;       /* a definition could not be kept: end c */
    /* The head tx_ids gives frames with envelope tag tx_tag (compact),
     * and the tag of the frame compacted last. */
    uint64_t tx_tag, tx_tag_last;
    uint32_t tx_head_poff;
    uint16_t tx_head_len;
    unsigned char tx_head[AX__NM_ALT_INLINE];
    ax__handshake_t *hs;    /* while a stranger; NULL once open */
    uint64_t last_rx_ns, last_tx_ns; /* for heartbeats and silence */
    ax_decode_buffer_t *rx; /* created when the connection opens */
    unsigned char *pre;     /* bytes read behind the handshake, for rx */
    size_t pre_len, pre_off;
    bool paused;            /* the receive pool is exhausted */
    /* A turn's reads stopped at NET_READ_TURN_BYTES with bytes maybe left
     * in the socket (no edge will say so): read on in a later turn
     * (netthread.c, read_on). rx_more_turn: the turn that stopped;
     * rx_more_short_ok: on_readable's short_ok then. */
    bool rx_more, rx_more_short_ok;
    uint64_t rx_more_turn;
    bool starved;           /* paused since data last came in (one pause) */
    bool bye_received, bye_sent; /* Bye read; Bye queued */
    ax__nm_fifo_t wq;       /* frames to write, in order */
    size_t wq_off;          /* bytes of the first already written */
    bool dirty;             /* on the net's flush list */
    ax__route_cache_t route; /* where the last Data frame went */
    uint64_t rx_frames;     /* Data frames received */
    uint64_t rx_acked;      /* the count in our last Ack */
    uint64_t tx_frames;     /* Data frames written */
    ax__unacked_t *unacked; /* ring of written, unacked frames */
    size_t ua_head, ua_count, ua_cap; /* ua_cap: 0 or a power of two (ua_slot) */
    ax__conn_counts_t m;    /* metrics (metrics_conn.h) */
    /* Receives through io_uring (uring.h), network thread only. */
    bool ring_mode;         /* read through the ring now, not EPOLLIN (a
                               stream is read with epoll: netthread.c) */
    unsigned ring_small;    /* reads in a row below RING_STREAM_BYTES */
    bool ring_posted;       /* a receive is posted: the kernel owns rx's free space */
    bool ring_done;         /* its completion is kept in the ring's list */
    int ring_res;           /* that completion's result */
    void *ring_buf;         /* where the posted receive writes, */
    size_t ring_len;        /* and how much it may */
    struct ax__conn_s *next, *flush_next, *ring_next;
};

/* Whether c carries frames: its handshake is done and it has not ended
 * (OPEN, or CLOSING while it flushes). Network thread only. */
static inline bool ax__conn_carries(const ax__conn_t *c)
{
    return c->state == AX__CONN_OPEN || c->state == AX__CONN_CLOSING;
}

typedef struct ax__net_counters_s {
    /* Written by the network thread only (ck_pr_store), read anywhere;
     * dead_lettered also by the dispatcher, so it is incremented
     * atomically. */
    uint64_t frames_sent, frames_received, bytes_sent, bytes_received;
    uint64_t acked, dead_lettered, returned, too_big, malformed;
    uint64_t connections, pending_handshakes, reconnects, read_pauses, ring_reads;
    uint64_t refused, handshake_timeouts, handshakes_evicted, auth_failures;
    uint64_t replace_refused, heartbeat_timeouts;
} ax__net_counters_t;

struct ax__net_s {
    ax_system_t *sys;
    ax_net_config_t cfg;
    ax_addr_t self;          /* our bound address */
    uint64_t incarnation;    /* random, for this run of the system */
    pthread_t thread;
    bool thread_started;
    uint32_t orphaned;       /* atomic: ax_net_start failed after spawning
                                the dispatcher, which frees net as it ends */
    ax__poller_t *poller;
    ax__ring_t *ring;        /* receives through io_uring, or NULL (uring.h);
                                network thread only */
    int listen_fd;
    uint64_t listen_reg;
    ax__mpsc_t inbox;        /* frames to send, from any thread */
    uint32_t stopping;       /* atomic: flush, say Bye, exit; set once, by
                                net_stop, then the poller is woken. Loads
                                are hints: nothing is published through it,
                                and a late one acts as just before the stop */
    ax_buffer_pool_t *rx_pool;
    ax_encode_buffer_t *ctl; /* control frames, network thread only */
    ax__peer_t *peers;
    ax__conn_t *conns;       /* DEAD ones stay listed until the turn ends */
    ax__conn_t *flush_list;
    uint64_t resume_timer;   /* retries reading paused connections */
    uint64_t turn;           /* turns of the loop so far */
    bool rx_more;            /* a connection has rx_more: do not sleep */
    uint64_t accept_timer;   /* retries accepting when out of descriptors */
    int reserve_fd;          /* spare descriptor for accepting under EMFILE */
    ax__secret_t secret;     /* len 0: unauthenticated */
    uint32_t trimmed_elsewhere; /* atomic: chunks the dispatcher freed since
                                   the last tick (any thread adds, this
                                   thread swaps to 0; no ordering needed,
                                   it only asks for a malloc_trim) */
    bool trim_pending;       /* memory was freed since the last malloc_trim */
    uint64_t last_malloc_trim_ns;
    uint64_t frames_moved;   /* Data frames of the open connections, last tick */
    uint64_t last_moved_ns;  /* when that sum last changed */
    size_t nconns;           /* not DEAD, strangers included */
    size_t nstrangers;       /* accepted, handshake not complete */
    ax__conn_t *oldest_stranger, *newest_stranger;
    struct ax__client_slot_s *clients; /* CLIENT connections by id (client.c) */
    uint32_t clients_cap, clients_free; /* free: the first free slot + 1, 0 none */
    ax_frame_format_t fmt;
    ax__net_counters_t c;

    /* Published snapshots of pool stats, for ax_net_stats. */
    pthread_mutex_t stats_lock;
    ax_buffer_pool_stats_t rx_stats, dispatch_stats;
    uint64_t pool_stats_ns;  /* network thread only: when rx_stats was last taken */
    ax__conn_snap_t snap;    /* per-connection metrics (metrics_conn.h) */

    pthread_mutex_t sub_lock;
    ax_ref_t *subs;
    size_t nsubs, subs_cap;

    ax_ref_t dispatcher;
    /* Atomic counters (any thread): events that could not be sent for
     * want of memory; asks the dispatcher could not track. */
    uint64_t events_lost, asks_untracked;
    uint64_t lazy_queued;    /* atomic: lazy sends in the dispatcher's mailbox;
                                a bound, not a hand-off: any order (net.c) */

    /* Small frames copied together for one sendmsg (flush_now); network
     * thread only, scratch for one call. 32 KiB: 16 KiB wrote more often,
     * 64 KiB held back too much of a window of 1000 64 B messages for one
     * write (dispatch/NOTES.md, "Coalesced small frames"). */
    uint8_t tx_stage[32 * 1024];

    /* 1 while the network thread is (about to be) asleep in epoll_wait:
     * only then does a push to an idle inbox write the eventfd
     * (netthread.c, net_sleep). Every sender reads it: its own line. */
    alignas(64) uint32_t sleeping;
};

/* Release every NetMessage in f, silently (a connection or peer is being
 * freed and what it still holds was accounted for). */
void ax__nm_fifo_release(ax__nm_fifo_t *f);

/* The socket address of an Axon address; returns its length. */
socklen_t ax__sockaddr_of(const ax_addr_t *a, struct sockaddr_storage *ss);

/* Set network.tcp_congestion (name) on the TCP socket fd; "" sets
 * nothing. Returns 0, or the errno of the refusal. */
int ax__tcp_congestion_set(int fd, const char *name);

/* A random non-zero 64-bit id (sessions, incarnations). */
uint64_t ax__random64(void);

/* The network thread's main loop (netthread.c). */
void *ax__net_main(void *arg);

/* True on net's network thread (which also runs handlers: sched.c,
 * "guest"), for calls that would otherwise wait for it. */
bool ax__on_net_thread(const ax__net_t *net);

/* ---- shared by netthread.c, handshake.c and heartbeat.c (network thread) ---- */

/* End c for good (accounting as in docs/wire.md section 8); it becomes
 * DEAD and is freed at the end of the loop turn. */
void ax__conn_end(ax__conn_t *c, ax_net_event_kind_t kind, ax_status_t why);

/* c broke the protocol: count it in `malformed`, then end it. */
void ax__conn_malformed(ax__conn_t *c, ax_status_t why);

/* Queue a control frame; body packs its msgpack body (NULL: empty).
 * false when it could not be built (the control pool is exhausted). */
typedef int (*ax__body_fn)(msgpack_packer *pk, const void *arg);
bool ax__queue_control(ax__conn_t *c, uint8_t type, ax_status_t status, ax__body_fn body,
                       const void *arg);

/* The handshake is complete: c opens for peer p (handshake.c calls it). */
void ax__conn_open(ax__conn_t *c, ax__peer_t *p);

/* The peer state for addr, created on first use; NULL when out of memory. */
ax__peer_t *ax__peer_get(ax__net_t *net, const ax_addr_t *addr);

/* Close c, a connection that lost a simultaneous connect or a
 * replacement, handing its unwritten frames to its peer first. */
void ax__conn_drop_duplicate(ax__conn_t *c);

/* handshake.c: start the handshake of a new connection (allocates c->hs;
 * false when out of memory); an outgoing one sends its Hello once
 * connected (ax__hs_send_hello). */
bool ax__hs_begin(ax__conn_t *c);
void ax__hs_send_hello(ax__conn_t *c);
/* Read and handle handshake frames from c's socket; false when c ended. */
bool ax__hs_readable(ax__conn_t *c);
/* Free c->hs and take c off the strangers' list. */
void ax__hs_end(ax__conn_t *c);

/* client.c: CLIENT connections (docs/wire.md section 6, "Clients"). The
 * peer of an accepted connection whose Hello had the CLIENT flag, with a
 * fresh id (NULL when out of memory); the open connection with that id, or
 * NULL once it has ended; its end (frees the peer and retires the id); the
 * table's memory, when the network is freed. */
ax__peer_t *ax__client_admit(ax__net_t *net, const ax_addr_t *announced);
ax__conn_t *ax__client_conn(ax__net_t *net, uint64_t via);
void ax__client_forget(ax__net_t *net, ax__peer_t *p);
void ax__clients_free(ax__net_t *net);

/* heartbeat.c: one housekeeping pass over every connection (handshake
 * deadlines, heartbeats, silence), and the period between passes. */
void ax__net_tick(ax__net_t *net, uint64_t now_ns);
uint64_t ax__net_tick_period_ns(const ax_net_config_t *cfg);

/* Set nm's route to dst, handing it the caller's pin on dst (released
 * with nm, by ax__net_route_unpin). */
void ax__net_msg_route(ax_net_msg_t *nm, ax__remote_t *dst);
void ax__net_route_unpin(void *route);

/* Hand frames to the network thread: NetMessages with route set and
 * wire = DATA, linked first to last through hdr.link, with one exchange
 * on its inbox. Takes them. The dispatcher is the inbox's only producer
 * (dispatch/net.c, "outgoing chain"). */
void ax__net_submit(ax__net_t *net, ax_msg_link_t *first, ax_msg_link_t *last);

/* Publish an event to the subscribers (any thread). */
void ax__net_event(ax__net_t *net, ax_net_event_kind_t kind, const ax_addr_t *peer, uint64_t session,
                   ax_status_t status);

static inline void ax__counter_add(uint64_t *counter, uint64_t n)
{
    /* Single writer (the network thread): a plain add published with a
     * store that readers load atomically. */
    ck_pr_store_64(counter, ck_pr_load_64(counter) + n);
}

#endif
