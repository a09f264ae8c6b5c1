/*
 * axon/config.h: a system's configuration.
 *
 * Start from ax_config_init() (the defaults), change fields, or load a
 * libconfig file or string over them (see docs/config.md for the schema),
 * and pass the result to ax_system_create(), which copies it.
 */
#ifndef AXON_CONFIG_H
#define AXON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/api.h"
#include "axon/buffers.h"
#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_config_s ax_config_t;

typedef struct ax_net_config_s {
    char listen[128];              /* "host:port" to listen on ("127.0.0.1:0") */
    bool client_only;              /* listen nowhere; connect as a CLIENT, known by
                                      each connection, not by an address: the
                                      system's address is listen's host, port 0
                                      (docs/wire.md section 6, "Clients") (false) */
    ax_buffer_config_t buffer_config; /* dispatcher and network thread pools
                                      (AX_BUFFER_CONFIG_DEFAULT) */
    size_t max_frame_size;         /* frames above this close the connection (16 MiB,
                                      at least 64); at most what buffer_config
                                      holds, less a chunk */
    size_t peer_queue;             /* messages queued per peer while connecting
                                      (1024, at least 1) */
    size_t dispatch_queue;         /* lazy sends waiting for the dispatcher; one more
                                      is refused with AX_ENOBUFS (65536, at least 1) */
    uint32_t max_retries;          /* reconnect attempts before dead-lettering (5) */
    uint64_t backoff_initial_ms;   /* first reconnect delay, doubled per retry
                                      (50, at least 1, at most backoff_max_ms;
                                      every _ms field at most 10^12) */
    uint64_t backoff_max_ms;       /* cap on the delay (2000) */
    uint64_t flush_timeout_ms;     /* graceful shutdown's bound on flushing (2000) */

    /* Trust (wire version 2, docs/wire.md section 7). A shared secret,
     * proven in the handshake by HMAC-SHA-256 in both directions and never
     * sent. Give it inline (cookie) or as a file readable by its owner
     * only (cookie_file, like Erlang's cookie); not both. The secret is
     * never written to logs or error details. Without a secret a system
     * listens only on a loopback address, unless allow_unauthenticated. */
    char cookie[256];              /* "" (none) */
    char cookie_file[256];         /* "" (none) */
    bool allow_unauthenticated;    /* listen beyond loopback without a secret (false) */

    /* Failure detection and limits. */
    uint64_t heartbeat_interval_ms; /* a quiet direction sends a Heartbeat
                                       (1000, at least 1) */
    uint64_t heartbeat_timeout_ms;  /* nothing received this long: lost (5000,
                                       above heartbeat_interval_ms) */
    uint64_t handshake_timeout_ms;  /* a connection not through its handshake
                                       by then is closed (5000, at least 1) */
    uint32_t max_connections;       /* open sockets, strangers included; an
                                       accept beyond it is closed at once
                                       (1024, at least 1) */
    uint32_t max_pending_handshakes; /* accepted connections still in their
                                        handshake; at the cap the oldest is
                                        closed (256, at least 1) */
    uint32_t spin_us;               /* after handing received messages to
                                       actors, the network thread watches for
                                       their replies this long before it
                                       sleeps; 0: never (0: it pays
                                       only with cores to spare; at most
                                       10000) */
    uint32_t run_actors_us;         /* while every worker is parked, the
                                       network thread runs the actors it
                                       hands messages to itself, for up to
                                       this long per turn, instead of waking
                                       a worker for them: a round trip then
                                       crosses one thread per side, not two.
                                       Handlers then also run on the
                                       network thread, so a slow one delays
                                       the network by its length; 0: always
                                       wake a worker (200, at most 10000) */
    uint32_t slow_run_us;           /* an actor whose runs on the network
                                       thread take longer than this twice
                                       in a row (wall-clock time, so
                                       preemption counts) runs on workers
                                       only from then on; 0: never moved
                                       (1000, at most 1000000) */

    /* Smaller envelopes (docs/wire.md section 6.1): how many path ids
     * this system offers each peer, per connection, and uses towards a
     * peer that offers some; 0 turns them off both ways (1024, at most
     * 65536). */
    uint32_t path_ids;
    uint32_t max_remote_refs;       /* remote paths kept for remote refs (the
                                       senders of what peers send, paths given
                                       to ax_ref_from_path); beyond it the least
                                       recently used entry is evicted and its
                                       refs expire (65536; 1 to 16777216) */

    /* TCP congestion control for this system's connections, by the
     * kernel's name ("cubic", "reno", "bbr"; see
     * /proc/sys/net/ipv4/tcp_available_congestion_control). "" keeps the
     * kernel's choice (net.ipv4.tcp_congestion_control, or a route's
     * congctl) for connections to other hosts, and leaves those that stay
     * on this host to tcp_congestion_loopback. A name is set on every
     * connection this system opens or accepts, loopback or not.
     * ax_net_start refuses a name this process may not use (AX_EINVAL);
     * unprivileged processes may use those in
     * /proc/sys/net/ipv4/tcp_allowed_congestion_control. Should a socket
     * refuse the name later (a route's "congctl lock"), a connection this
     * system opens fails its attempt with AX_EIO, and one it accepts is
     * closed and counted in ax_net_stats_t.refused. On one host, bbr
     * paces each socket with a timer of its own and costs Axon's
     * long-lived connections more than cubic does (docs/guide.md, "Two
     * systems") ("") */
    char tcp_congestion[16];

    /* TCP congestion control for a connection that stays on this host,
     * used while tcp_congestion is "": one whose peer is at a loopback
     * address (127.0.0.0/8, ::1) or at the address the connection leaves
     * from, which the kernel routes through lo as well. There is no path
     * to share there, and a pacing control such as bbr only costs timers
     * and reordered segments (docs/guide.md, "Two systems"). reno is
     * built into every kernel and allowed to every process. "" keeps the
     * kernel's choice on loopback too. ax_net_start refuses a name this
     * process may not use (AX_EINVAL), as for tcp_congestion. A socket
     * that refuses it later (a route's "congctl lock") keeps the route's
     * choice and its connection goes on ("reno") */
    char tcp_congestion_loopback[16];

    /* Read open connections through io_uring: each has a receive posted
     * before the network thread waits, and the wait returns with the
     * bytes, so a round trip takes one system call fewer on each side
     * (dispatch/NOTES.md, "Receives through io_uring"). Handshakes,
     * accepts and writes stay on epoll and sendmsg, and so do the reads
     * of a connection while it streams (reads of 8 KiB or more). Where
     * the kernel refuses io_uring (no support, the io_uring_disabled
     * sysctl, a seccomp filter), and under Valgrind, the network thread
     * reads with epoll and read, as with false; ax_net_stats_t.ring_reads
     * says which (true). */
    bool io_uring;
} ax_net_config_t;

typedef struct ax_metrics_config_s {
    char listen[128];              /* "host:port" of the HTTP endpoint ("": off) */
    unsigned top_n;                /* actors per ranking in /metrics (50, 1 to 10000) */
} ax_metrics_config_t;

struct ax_config_s {
    unsigned threads;                 /* worker threads (0: one per CPU the process
                                         may run on, its affinity mask; at most
                                         1024); at most one per CPU is awake at
                                         a time */
    unsigned throughput;              /* an actor's run budget (50, 1 to 2^20):
                                         messages taken plus messages sent; doubles
                                         (up to 256x) while a receiving actor's runs
                                         end with mail left */
    ax_buffer_config_t buffer_config; /* actors' tell_serialised pools
                                         (AX_BUFFER_CONFIG_DEFAULT, but at
                                         most 256 chunks: 32 MiB of frames
                                         an actor may have queued) */
    size_t timer_tick_us;             /* timing wheel resolution (1000, at least 1) */
    ax_net_config_t network;
    ax_metrics_config_t metrics;      /* axon/metrics.h */
    unsigned spin_us;                 /* an idle worker looks for work this
                                         long before it parks (not after it
                                         sent to the network); 0: parks at
                                         once (20, at most 10000) */
};

/* The defaults. */
AX_API void ax_config_init(ax_config_t *cfg);

/* AX_OK, or AX_EINVAL with ax_error_detail() naming the field. */
AX_API ax_status_t ax_config_validate(const ax_config_t *cfg);

/*
 * Load a libconfig file or string over *cfg (docs/config.md gives the
 * schema). Settings absent from the text keep their value in *cfg. The
 * result is validated before anything is written: on any error (a syntax
 * error, an unknown key, a wrong type, a bad size string, a broken rule)
 * *cfg is unchanged and the status is AX_EINVAL (AX_EIO when the file
 * cannot be read), with a detail giving file:line and the key.
 */
AX_API ax_status_t ax_config_load_file(ax_config_t *cfg, const char *path);
AX_API ax_status_t ax_config_load_string(ax_config_t *cfg, const char *text);

#ifdef __cplusplus
}
#endif

#endif /* AXON_CONFIG_H */
