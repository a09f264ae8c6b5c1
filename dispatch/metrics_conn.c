/* Per-connection metrics: the network thread's snapshot and its reader
 * (see metrics_conn.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "dispatch/metrics_conn.h"
#include "dispatch/net_internal.h"

#define SNAP_WAIT_NS (200 * UINT64_C(1000000))

void ax__conn_snap_init(ax__conn_snap_t *s)
{
    pthread_condattr_t ca;

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
}

void ax__conn_snap_destroy(ax__conn_snap_t *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->a);
}

static void fill(const ax__conn_t *c, ax_conn_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->peer = c->peer->addr;
    m->session = c->session;
    m->frames_sent = c->tx_frames;
    m->frames_received = c->rx_frames;
    m->bytes_sent = c->m.tx_bytes;
    m->bytes_received = c->m.rx_bytes;
    m->unacked = c->ua_count;
    m->last_receive_ns = c->last_rx_ns;
    m->rtt_ns = 0; /* heartbeats are not timed yet: no estimate */
}

void ax__conn_snap_publish(ax__net_t *net)
{
    ax__conn_snap_t *s = &net->snap;
    /* Acquire is not needed: a request seen late is answered next turn,
     * and the reader has woken the loop for it. */
    uint64_t wanted = ck_pr_load_64(&s->wanted);
    size_t n = 0, cap;
    ax_conn_metrics_t *a;

    if (wanted == s->done) /* done is only written by this thread */
        return;
    for (ax__conn_t *c = net->conns; c != NULL; c = c->next)
        n += c->peer != NULL && ax__conn_carries(c);
    cap = n > 0 ? n : 1;
    a = calloc(cap, sizeof(*a));
    n = 0;
    if (a != NULL)
        for (ax__conn_t *c = net->conns; c != NULL; c = c->next)
            if (c->peer != NULL && ax__conn_carries(c))
                fill(c, &a[n++]);
    pthread_mutex_lock(&s->lock);
    if (a != NULL) { /* out of memory: the readers keep the last one */
        free(s->a);
        s->a = a;
        s->n = n;
        s->cap = cap;
    }
    s->done = wanted;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

ax_status_t ax_metrics_connections(ax_system_t *sys, ax_conn_metrics_t *out, size_t cap,
                                   size_t *count)
{
    ax__net_t *net;
    ax__conn_snap_t *s;
    uint64_t want;
    struct timespec until;

    if (sys == NULL || count == NULL || (out == NULL && cap > 0))
        return ax__error(AX_EINVAL, "metrics_connections: NULL argument");
    net = ax__system_net(sys);
    if (net == NULL)
        return ax__error(AX_ESTATE, "metrics_connections: the network is not started");
    s = &net->snap;
    until = ax__timespec_of(ax__now_ns() + SNAP_WAIT_NS);
    pthread_mutex_lock(&s->lock);
    want = s->wanted + 1;
    /* Under the lock, so requests are numbered in order; the network
     * thread loads it without the lock. */
    ck_pr_store_64(&s->wanted, want);
    if (ax__on_net_thread(net)) {
        /* A handler the network thread runs (network.run_actors_us):
         * waiting for it would wait for ourselves. Answer here. */
        pthread_mutex_unlock(&s->lock);
        ax__conn_snap_publish(net);
        pthread_mutex_lock(&s->lock);
    } else if (!ck_pr_load_32(&net->stopping)) {
        ax__poller_wake(net->poller);
        while (s->done < want &&
               pthread_cond_timedwait(&s->cond, &s->lock, &until) != ETIMEDOUT)
            ;
    }
    *count = s->n;
    if (out != NULL && s->n > 0 && cap > 0)
        memcpy(out, s->a, (s->n < cap ? s->n : cap) * sizeof(*out));
    pthread_mutex_unlock(&s->lock);
    return AX_OK;
}
