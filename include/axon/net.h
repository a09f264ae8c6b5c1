/*
 * axon/net.h: connecting systems over TCP.
 *
 *     ax_system_t *sys;
 *     ax_system_create(&cfg, &sys);      // cfg.network.listen = "127.0.0.1:9000"
 *     ax_net_start(sys);                  // listen, start the network thread
 *     ax_path_parse("tcp://127.0.0.1:9001/pong", &path);
 *     ax_ref_from_path(sys, &path, &pong);   // a remote ref
 *     ax_tell(pong, &msg, self);             // lazy: serialised by the dispatcher
 *     ax_tell_serialised(self, pong, &t, m); // eager: serialised now
 *
 * One network thread per system owns every socket: the listener, and one
 * connection per peer system, opened on first use. The network dispatcher
 * (an actor of the system) serialises lazy sends into its own pool
 * (network.buffer_config); eager frames go to the network thread as they
 * are. Received frames land in the network thread's receive pool and
 * reach actors as NetMessages, decoded only when the receiver asks.
 *
 * Delivery: FIFO per sender -> receiver pair over a connection. Each
 * message sent to a peer ends in exactly one of two ways: the peer's
 * system acknowledges receiving it, or it goes to dead letters with a
 * status (AX_ECLOSED: the connection was lost with the message unacked or
 * unsent; AX_ETIMEDOUT: the peer could not be reached within the retries;
 * AX_ETOOBIG: above the peer's frame limit, which it announces in its
 * Hello, or above what the dispatcher's pool can ever hold; the connection
 * stays up. AX_ENOBUFS: the queue for a connecting peer, or the dispatcher's pool,
 * was full; AX_ENOTFOUND: the peer has no such actor; AX_EFULL: that
 * actor's bounded mailbox was full). "Acknowledged" means the peer system
 * took the frame, not that its actor handled it (see ax_net_stats_t.acked).
 *
 * Trust: with network.cookie or network.cookie_file set, every connection
 * proves the secret in both directions (HMAC-SHA-256 over fresh nonces,
 * libsodium) before any message passes; the secret never travels and never
 * appears in an error. Without one, ax_net_start refuses to listen beyond
 * loopback unless network.allow_unauthenticated. Only a connection that
 * proved the secret can replace an open one (docs/wire.md section 11).
 *
 * Clients that do not listen (docs/wire.md section 6, "Clients"): a peer
 * whose Hello has the CLIENT flag is known by its connection, not by the
 * address it announces. The sender refs of its messages (ax_net_msg_sender,
 * ax_reply) go back over that connection; once it has ended (or said Bye)
 * a message to one goes to dead letters with AX_ECLOSED, and nothing
 * connects to its address. It raises no network events. With
 * network.client_only a system is such a client itself: it listens
 * nowhere, and its address has port 0.
 *
 * Lazy sends are bounded: at most network.dispatch_queue of them wait for
 * the dispatcher. Beyond that ax_tell to a remote ref returns AX_ENOBUFS
 * at once and the caller keeps its message (retry later, or slow down). A message whose
 * connection was lost after it was written may have been delivered even so:
 * its dead letter says AX_ECLOSED, "unknown". Messages that are dead-lettered
 * after they were serialised arrive at the dead-letter actor as NetMessages.
 *
 * What each bound does (docs/config.md gives the keys):
 *  - Queue for a peer that is connecting: network.peer_queue messages; the
 *    next goes to dead letters with AX_ENOBUFS.
 *  - Frames waiting to be written on a connection: they hold leases on
 *    pooled chunks (the dispatcher's for lazy sends, the sender's for eager
 *    ones), so the pools bound them: ax_tell_serialised returns AX_ENOBUFS,
 *    a lazy send is dead-lettered with AX_ENOBUFS.
 *  - Receiving: when the receive pool (network.buffer_config) is exhausted
 *    the connection stops reading (TCP pushes back on the sender) and
 *    resumes when a chunk is free; nothing received is dropped.
 *  - Reading: one connection's reads take at most 256 KiB in a turn of
 *    the network thread. The actors that those frames woke run, and the
 *    other connections are read, before that connection reads on. So one
 *    peer's flood does not hold the thread, and the receive pool holds
 *    what the actors have not taken yet, not a whole burst.
 *  - A frame above the peer's limit (it announces it in its Hello):
 *    dead-lettered with AX_ETOOBIG here; the connection stays up.
 *  - Strangers (connections before their handshake): max_pending_handshakes,
 *    handshake_timeout_ms, max_connections; a few hundred bytes each and no
 *    receive-pool chunk (dispatch/NOTES.md, "Hostile networks").
 *  - Silence: heartbeat_timeout_ms, then AX_NET_LOST with AX_ETIMEDOUT.
 * Not bounded: the record of written, unacknowledged frames (24 bytes
 * each) of a peer that reads but never acknowledges; Axon peers
 * acknowledge after every read burst.
 */
#ifndef AXON_NET_H
#define AXON_NET_H

#include "axon/api.h"

#include <stdint.h>

#include "axon/actor.h"
#include "axon/serial.h" /* ax_addr_t by value; pulls <msgpack.h> */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Start networking for sys with its configuration's network section:
 * bind and listen on network.listen (port 0 picks a free port; the system
 * address then carries the bound port), start the network thread and the
 * dispatcher. AX_EIO with a detail when the address cannot be bound,
 * AX_ESTATE when already started or after shutdown. Stopping is part of
 * ax_system_await_termination/ax_system_destroy: queued frames are flushed
 * (at most network.flush_timeout_ms), every peer is sent Bye, and
 * connections close cleanly.
 */
AX_API ax_status_t ax_net_start(ax_system_t *sys);

typedef enum ax_net_event_kind_e {
    AX_NET_ESTABLISHED = 1, /* handshake done; session is the new id */
    AX_NET_LOST = 2,        /* the connection failed or the peer vanished */
    AX_NET_CLOSED = 3,      /* the peer said Bye, or we did */
    AX_NET_DROPPED = 4,     /* gave up on the peer after the retries */
} ax_net_event_kind_t;

/* What a subscriber receives (from the network thread). */
typedef struct ax_net_event_s {
    ax_msg_t hdr;
    ax_net_event_kind_t kind;
    ax_addr_t peer;     /* the peer system's address */
    uint64_t session;   /* the connection's session id */
    ax_status_t status; /* why, for LOST and DROPPED */
} ax_net_event_t;

AX_API extern const ax_msg_type_t ax_net_event_type;

/* What the dead-letter actor receives for a message that was written to a
 * connection that was then lost before the peer acknowledged it: the
 * bytes are gone (released when written), the recipient (the dead
 * letter's recipient ref), the serialiser id and the session remain. */
typedef struct ax_net_undelivered_s {
    ax_msg_t hdr;
    uint64_t serialiser_id;
    uint64_t session;
} ax_net_undelivered_t;

AX_API extern const ax_msg_type_t ax_net_undelivered_type;

/* Send network events of sys to ref from now on. AX_ENOMEM, AX_EEXIST when
 * subscribed already. */
AX_API ax_status_t ax_net_subscribe(ax_system_t *sys, ax_ref_t ref);
AX_API ax_status_t ax_net_unsubscribe(ax_system_t *sys, ax_ref_t ref);

typedef struct ax_net_stats_s {
    uint64_t frames_sent;       /* Data frames written to sockets */
    uint64_t frames_received;   /* Data frames read from sockets */
    uint64_t bytes_sent;        /* every frame's bytes, control frames too */
    uint64_t bytes_received;
    /* Sent Data frames the peer acknowledged. An ack means "the peer
     * system read the frame off its socket and took charge of it", NOT
     * "the receiving actor handled it": a frame the peer cannot deliver
     * (unknown actor, full mailbox) is acked and then returned in a Status
     * frame, and counts in `returned` and `dead_lettered` instead. So
     * acked + dead_lettered == messages handed to the network, once every
     * connection has settled. */
    uint64_t acked;
    uint64_t dead_lettered;     /* messages for peers that went to dead letters */
    uint64_t returned;          /* of those, sent back by the peer (Status) */
    uint64_t too_big;           /* of those, above the peer's frame limit (AX_ETOOBIG) */
    uint64_t malformed;         /* connections closed for breaking the protocol */
    uint64_t connections;       /* open now, strangers included */
    uint64_t pending_handshakes; /* accepted, handshake not complete, now */
    uint64_t reconnects;        /* connections established after a loss */
    uint64_t read_pauses;       /* times a connection stopped reading for want of
                                   receive buffers (retried every millisecond
                                   until a chunk is free; a pause counts once) */
    uint64_t ring_reads;        /* reads of open connections that came through
                                   io_uring (network.io_uring); 0 while it is
                                   off, where the kernel refuses it, and under
                                   Valgrind */
    /* What strangers and silent peers cost us (docs: dispatch/NOTES.md,
     * "Hostile networks"). */
    uint64_t refused;           /* accepts closed at once: max_connections
                                   reached, out of descriptors, or the
                                   socket refused network.tcp_congestion */
    uint64_t handshake_timeouts; /* closed: no complete handshake in time */
    uint64_t handshakes_evicted; /* closed: the oldest stranger, at
                                    max_pending_handshakes */
    uint64_t auth_failures;     /* handshakes that failed authentication */
    uint64_t replace_refused;   /* Hellos for an address already connected,
                                   refused for want of proof */
    uint64_t heartbeat_timeouts; /* connections lost to silence */
    ax_buffer_pool_stats_t receive_pool;  /* the network thread's receive pool, as
                                             it stood up to 1 ms ago (a heartbeat
                                             tick ago when the network is idle) */
    ax_buffer_pool_stats_t dispatch_pool; /* the dispatcher's buffer pool, which lazy
                                             sends are serialised into (all but a
                                             large bytes body, which is lent:
                                             ax_bytes_msg_t, axon/serial.h) */
    uint64_t events_lost;       /* events (to subscribers, or to the dispatcher)
                                   not sent for want of memory */
    uint64_t asks_untracked;    /* remote asks whose connection loss could not be
                                   tracked for want of memory (they still end
                                   by reply, timeout or a dead letter) */
} ax_net_stats_t;

/* AX_ESTATE when the network was not started. Any thread. */
AX_API ax_status_t ax_net_stats(ax_system_t *sys, ax_net_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* AXON_NET_H */
