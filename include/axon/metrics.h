/*
 * axon/metrics.h: what a system is doing, per actor, per connection and
 * in total, as numbers, as Prometheus text or JSON, and over HTTP.
 *
 *     ax_metrics_write(sys, stdout, AX_METRICS_PROMETHEUS);
 *
 *     cfg.metrics.listen = "127.0.0.1:9464" (or metrics.listen in a file)
 *     ax_metrics_start(sys);   // GET /metrics and /actors?sort=mailbox&limit=20
 *
 * Collecting costs the message path nothing measurable: counters live in
 * each actor and are written only by the worker running it, handler time
 * is sampled against a 1 ms clock (started on the first read, so handler
 * times count from then on), and mailbox depths are sampled by the worker
 * that runs each actor after a read asked for them: a read returns the
 * depths sampled since the read before it (an idle mailbox reads 0 at
 * once). docs/observability.md explains every series.
 */
#ifndef AXON_METRICS_H
#define AXON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "axon/actor.h"
#include "axon/buffers.h"
#include "axon/serial.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_METRICS_NAME_MAX 256 /* a registered name, NUL included */

/* One actor, as a read saw it. */
typedef struct ax_actor_metrics_s {
    ax_ref_t ref;                  /* valid while the actor lives */
    uint64_t id;
    const char *type;              /* its vtable's name ("" without one) */
    char name[AX_METRICS_NAME_MAX]; /* its registered name, or "" */
    uint64_t mailbox_depth;        /* sampled (see above) */
    uint64_t mailbox_depth_max;    /* the largest sampled depth; never below mailbox_depth */
    uint64_t handled;              /* messages handed to its handlers */
    uint64_t handler_ns;           /* time in handlers, tick-sampled */
    uint64_t handler_max_ns;       /* the longest handler, to within 1 ms */
    uint64_t failures;             /* handler errors and ax_fail calls */
    uint64_t restarts;             /* restarts by its policy */
    bool has_pool;                 /* it has a tell_serialised pool: */
    ax_buffer_pool_stats_t pool;   /* its stats at the last sample */
} ax_actor_metrics_t;

typedef enum ax_metrics_sort_e {
    AX_METRICS_BY_MAILBOX = 0, /* deepest mailbox first */
    AX_METRICS_BY_TIME = 1,    /* most handler time first */
} ax_metrics_sort_t;

/*
 * The top `cap` live actors of sys by `by`, largest first, into out[];
 * *count says how many were written and, when total is not NULL, *total
 * how many live actors were seen. Also asks every worker to resample the
 * mailboxes of the actors it runs next. Any thread but sys's workers
 * (a read walks every actor). AX_EINVAL for NULL arguments or a bad sort.
 */
AX_API ax_status_t ax_metrics_actors(ax_system_t *sys, ax_metrics_sort_t by, ax_actor_metrics_t *out,
                              size_t cap, size_t *count, size_t *total);

/* One connection, as the network thread last published it. */
typedef struct ax_conn_metrics_s {
    ax_addr_t peer;            /* the peer system's address */
    uint64_t session;          /* the connection's session id */
    uint64_t frames_sent, frames_received;
    uint64_t bytes_sent, bytes_received;
    uint64_t unacked;          /* Data frames written and not yet acked */
    uint64_t last_receive_ns;  /* CLOCK_MONOTONIC ns of the last read, or 0 */
    uint64_t rtt_ns;           /* 0: the protocol gives no estimate */
} ax_conn_metrics_t;

/*
 * The open connections of sys, up to cap, into out[]; *count says how many
 * there are (it may exceed cap). AX_ESTATE when the network was not
 * started. The figures are those of the network thread's last published
 * snapshot (it publishes after every loop turn).
 */
AX_API ax_status_t ax_metrics_connections(ax_system_t *sys, ax_conn_metrics_t *out, size_t cap,
                                   size_t *count);

typedef enum ax_metrics_format_e {
    AX_METRICS_PROMETHEUS = 0, /* text exposition format 0.0.4 */
    AX_METRICS_JSON = 1,
} ax_metrics_format_t;

/*
 * Write every metric of sys to out: the system's counters, the network's
 * (when started) with its pools and connections, and per-actor series for
 * the top metrics.top_n actors by mailbox depth and by handler time. The
 * caller keeps out. AX_EINVAL for NULL arguments or an unknown format,
 * AX_ENOMEM, AX_EIO when writing to out fails, AX_ESTATE when called from
 * one of sys's workers (a read walks every actor and may wait up to 200 ms
 * for the network thread's connection snapshot: not in a handler).
 */
AX_API ax_status_t ax_metrics_write(ax_system_t *sys, FILE *out, ax_metrics_format_t format);

/* The /actors document: {"sort": ..., "limit": N, "total": T, "actors":
 * [...]}, the top `limit` actors by `by`, as JSON. Statuses as above. */
AX_API ax_status_t ax_metrics_write_actors(ax_system_t *sys, FILE *out, ax_metrics_sort_t by,
                                    size_t limit);

/*
 * Serve the metrics over HTTP on metrics.listen, on a thread of its own
 * (libmicrohttpd): GET /metrics (Prometheus text) and GET
 * /actors?sort=mailbox|time&limit=N (JSON). When metrics.listen is empty
 * (the default) this does nothing and returns AX_OK. AX_EIO with a detail
 * when the address cannot be bound, AX_ESTATE when already serving or
 * after shutdown. The endpoint stops in ax_system_destroy.
 */
AX_API ax_status_t ax_metrics_start(ax_system_t *sys);

/* The endpoint's bound address ("127.0.0.1:9464") into buf (always NUL-
 * terminated when size > 0). AX_ESTATE when it is not serving. */
AX_API ax_status_t ax_metrics_address(ax_system_t *sys, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* AXON_METRICS_H */
