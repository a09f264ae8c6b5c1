/*
 * Internal to dispatch/: per-connection metrics.
 *
 * A connection's counters (ax__conn_counts_t, a field of ax__conn_t) are
 * written and read only by the network thread, as plain fields. Other
 * threads see them through a snapshot of every open connection, which the
 * network thread builds at the end of a loop turn when a reader has asked
 * for one since the last (one atomic load per turn otherwise). A reader
 * asks, wakes the loop and waits for the snapshot (at most 200 ms; after
 * the network has stopped it takes the last one at once).
 */
#ifndef AXON_DISPATCH_METRICS_CONN_H
#define AXON_DISPATCH_METRICS_CONN_H

#include <pthread.h>
#include <stdint.h>

#include "axon/metrics.h"

typedef struct ax__conn_counts_s {
    uint64_t tx_bytes, rx_bytes; /* every frame, control frames too */
} ax__conn_counts_t;

typedef struct ax__conn_snap_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* broadcast when a snapshot is published */
    uint64_t wanted;        /* atomic: bumped (under lock) by readers */
    uint64_t done;          /* under lock: the request last answered */
    ax_conn_metrics_t *a;   /* under lock: the snapshot */
    size_t n, cap;
} ax__conn_snap_t;

struct ax__net_s;

void ax__conn_snap_init(ax__conn_snap_t *s);
void ax__conn_snap_destroy(ax__conn_snap_t *s);

/* On the network thread, at the end of a loop turn. */
void ax__conn_snap_publish(struct ax__net_s *net);

#endif
