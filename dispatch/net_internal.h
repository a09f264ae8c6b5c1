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
#include <sys/socket.h>
#include <stdbool.h>

#include "actor/net.h"
#include "axon/config.h"
#include "axon/net.h"
#include "dispatch/poller.h"
#include "serial/frame.h"
#include "serial/mpsc.h"
#include "serial/netmsg.h"

#define AX__PROTO_MAGIC "axon"
#define AX__PROTO_VERSION 1u

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

enum ax__conn_state {
    AX__CONN_TCP,     /* outgoing, connect() in progress */
    AX__CONN_HELLO,   /* waiting for the peer's Hello */
    AX__CONN_OPEN,    /* handshake done */
    AX__CONN_CLOSING, /* Bye sent or received; flushing, then close */
};

typedef struct ax__net_s ax__net_t;
typedef struct ax__conn_s ax__conn_t;

/* A FIFO of NetMessages linked through hdr.link. */
typedef struct ax__nm_fifo_s {
    ax_msg_link_t *head, *tail;
    size_t count;
} ax__nm_fifo_t;

typedef struct ax__unacked_s {
    ax__remote_t *dst;
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
    ax_decode_buffer_t *rx;
    bool paused;            /* the receive pool is exhausted */
    bool starved;           /* paused since data last came in (one pause) */
    bool bye_received, bye_sent; /* Bye read; Bye queued */
    bool shut_wr;           /* our side is closed for writing */
    ax__nm_fifo_t wq;       /* frames to write, in order */
    size_t wq_off;          /* bytes of the first already written */
    bool dirty;             /* on the net's flush list */
    ax__route_cache_t route; /* where the last Data frame went */
    uint64_t rx_frames;     /* Data frames received */
    uint64_t rx_acked;      /* the count in our last Ack */
    uint64_t tx_frames;     /* Data frames written */
    ax__unacked_t *unacked; /* ring of written, unacked frames */
    size_t ua_head, ua_count, ua_cap;
    struct ax__conn_s *next, *flush_next;
};

typedef struct ax__net_counters_s {
    /* Written by the network thread only (ck_pr_store), read anywhere;
     * dead_lettered also by the dispatcher, so it is incremented
     * atomically. */
    uint64_t frames_sent, frames_received, bytes_sent, bytes_received;
    uint64_t acked, dead_lettered, returned, too_big, malformed;
    uint64_t connections, pending_handshakes, reconnects, read_pauses;
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
    ax__poller_t *poller;
    int listen_fd;
    uint64_t listen_reg;
    ax__mpsc_t inbox;        /* frames to send, from any thread */
    uint32_t stopping;       /* atomic: flush, say Bye, exit; set once, by
                                net_stop, then the poller is woken */
    ax_buffer_pool_t *rx_pool;
    ax_encode_buffer_t *ctl; /* control frames, network thread only */
    ax_msg_pool_t *lazy_pool; /* the dispatcher's envelopes of lazy sends */
    ax__peer_t *peers;
    ax__conn_t *conns;
    ax__conn_t *flush_list;
    uint64_t resume_timer;   /* retries reading paused connections */
    ax_frame_format_t fmt;
    ax__net_counters_t c;

    /* Published snapshots of pool stats, for ax_net_stats. */
    pthread_mutex_t stats_lock;
    ax_buffer_pool_stats_t rx_stats, dispatch_stats;

    pthread_mutex_t sub_lock;
    ax_ref_t *subs;
    size_t nsubs, subs_cap;

    ax_ref_t dispatcher;
    /* Atomic counters (any thread): events that could not be sent for
     * want of memory; asks the dispatcher could not track. */
    uint64_t events_lost, asks_untracked;
    uint64_t lazy_queued;    /* atomic: lazy sends in the dispatcher's mailbox */
};

/* Release every NetMessage in f, silently (a connection or peer is being
 * freed and what it still holds was accounted for). */
void ax__nm_fifo_release(ax__nm_fifo_t *f);

/* The socket address of an Axon address; returns its length. */
socklen_t ax__sockaddr_of(const ax_addr_t *a, struct sockaddr_storage *ss);

/* A random non-zero 64-bit id (sessions, incarnations). */
uint64_t ax__random64(void);

/* The network thread's main loop (netthread.c). */
void *ax__net_main(void *arg);

/* Hand a frame (nm->route set, nm->wire = DATA) to the network thread.
 * Takes *nm. Any thread. */
void ax__net_submit(ax__net_t *net, ax_net_msg_t **nm);

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
