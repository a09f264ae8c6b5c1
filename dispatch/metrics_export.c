/*
 * Writing a system's metrics as Prometheus text (exposition format 0.0.4)
 * or JSON. This file sits above everything it reads: the actor module's
 * per-actor figures (ax_metrics_actors), the system's counters, and the
 * network's counters, pools and connections. docs/observability.md lists
 * the series.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "actor/net.h"
#include "axon/config.h"
#include "axon/metrics.h"
#include "axon/net.h"
#include "common/error.h"

/* ---- escaping ------------------------------------------------------------ */

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void put_label(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '"')
            fputs("\\\"", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* A JSON string, quotes included. */
static void put_json(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- what a write reads ---------------------------------------------------- */

typedef struct snapshot_s {
    ax_system_stats_t sys;
    bool has_net;
    ax_net_stats_t net;
    ax_conn_metrics_t *conns;
    size_t nconns;
    ax_actor_metrics_t *by_mailbox, *by_time;
    size_t nmailbox, ntime, total;
} snapshot_t;

static void snapshot_free(snapshot_t *s)
{
    free(s->conns);
    free(s->by_mailbox);
    free(s->by_time);
}

static ax_status_t take_connections(ax_system_t *sys, snapshot_t *s)
{
    size_t n = 0;

    for (;;) {
        ax_conn_metrics_t *c;
        size_t cap = n + 8;

        if (ax_metrics_connections(sys, NULL, 0, &n) != AX_OK)
            return AX_OK; /* no network: no connections */
        cap = n + 8;
        c = calloc(cap, sizeof(*c));
        if (c == NULL)
            return ax__error(AX_ENOMEM, "metrics: no memory for %zu connections", cap);
        if (ax_metrics_connections(sys, c, cap, &n) != AX_OK || n <= cap) {
            s->conns = c;
            s->nconns = n <= cap ? n : cap;
            return AX_OK;
        }
        free(c); /* more opened meanwhile: again */
    }
}

static ax_status_t snapshot_take(ax_system_t *sys, size_t top_n, snapshot_t *s)
{
    ax_status_t st;

    memset(s, 0, sizeof(*s));
    ax_system_stats(sys, &s->sys);
    s->has_net = ax__system_net(sys) != NULL && ax_net_stats(sys, &s->net) == AX_OK;
    s->by_mailbox = calloc(top_n, sizeof(*s->by_mailbox));
    s->by_time = calloc(top_n, sizeof(*s->by_time));
    if (s->by_mailbox == NULL || s->by_time == NULL) {
        snapshot_free(s);
        return ax__error(AX_ENOMEM, "metrics: no memory for %zu actors", top_n);
    }
    st = ax_metrics_actors(sys, AX_METRICS_BY_MAILBOX, s->by_mailbox, top_n, &s->nmailbox, &s->total);
    if (st == AX_OK)
        st = ax_metrics_actors(sys, AX_METRICS_BY_TIME, s->by_time, top_n, &s->ntime, NULL);
    if (st == AX_OK && s->has_net)
        st = take_connections(sys, s);
    if (st != AX_OK)
        snapshot_free(s);
    return st;
}

/* ---- Prometheus ------------------------------------------------------------ */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(FILE *out, const char *name, uint64_t v)
{
    fprintf(out, "%s %" PRIu64 "\n", name, v);
}

/* The actors in both rankings, each once: the by-mailbox list, then the
 * by-time actors not in it. */
typedef struct actor_list_s {
    const ax_actor_metrics_t **a;
    size_t n;
} actor_list_t;

static ax_status_t union_of(const snapshot_t *s, actor_list_t *l)
{
    l->n = 0;
    l->a = calloc(s->nmailbox + s->ntime + 1, sizeof(*l->a));
    if (l->a == NULL)
        return ax__error(AX_ENOMEM, "metrics: out of memory");
    for (size_t i = 0; i < s->nmailbox; i++)
        l->a[l->n++] = &s->by_mailbox[i];
    for (size_t i = 0; i < s->ntime; i++) {
        bool seen = false;

        for (size_t j = 0; j < s->nmailbox && !seen; j++)
            seen = s->by_mailbox[j].id == s->by_time[i].id;
        if (!seen)
            l->a[l->n++] = &s->by_time[i];
    }
    return AX_OK;
}

static void actor_labels(FILE *out, const ax_actor_metrics_t *m)
{
    fprintf(out, "{id=\"%" PRIu64 "\",type=\"", m->id);
    put_label(out, m->type);
    fputs("\",name=\"", out);
    put_label(out, m->name);
    fputc('"', out);
}

typedef enum { V_U64, V_SECONDS } vkind_t;

/* One family with a sample per listed actor; field is read by offset. */
static void actor_family(FILE *out, const actor_list_t *l, const char *name, const char *type,
                         const char *help, size_t offset, vkind_t kind, bool pool_only)
{
    family(out, name, type, help);
    for (size_t i = 0; i < l->n; i++) {
        const ax_actor_metrics_t *m = l->a[i];
        uint64_t v;

        if (pool_only && !m->has_pool)
            continue;
        memcpy(&v, (const unsigned char *)m + offset, sizeof v);
        fputs(name, out);
        actor_labels(out, m);
        if (kind == V_SECONDS)
            fprintf(out, "} %.9f\n", seconds(v));
        else
            fprintf(out, "} %" PRIu64 "\n", v);
    }
}

#define AM(f) offsetof(ax_actor_metrics_t, f)

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "pool stats are read as 64-bit");

static void prom_actors(FILE *out, const actor_list_t *l)
{
    static const struct {
        const char *state;
        size_t offset;
    } chunks[] = {
        {"allocated", AM(pool.chunks_allocated)},
        {"free", AM(pool.chunks_free)},
        {"active", AM(pool.chunks_active)},
        {"leased", AM(pool.chunks_leased)},
    };

    actor_family(out, l, "axon_actor_mailbox_depth", "gauge",
                 "Messages in the actor's mailbox at the last sample.", AM(mailbox_depth), V_U64,
                 false);
    actor_family(out, l, "axon_actor_mailbox_depth_max", "gauge",
                 "The largest sampled mailbox depth.", AM(mailbox_depth_max), V_U64, false);
    actor_family(out, l, "axon_actor_messages_handled_total", "counter",
                 "Messages handed to the actor's handlers.", AM(handled), V_U64, false);
    actor_family(out, l, "axon_actor_handler_seconds_total", "counter",
                 "Time in the actor's handlers, sampled against a 1 ms clock.", AM(handler_ns),
                 V_SECONDS, false);
    actor_family(out, l, "axon_actor_handler_max_seconds", "gauge",
                 "The longest single handler run, to within 1 ms.", AM(handler_max_ns), V_SECONDS,
                 false);
    actor_family(out, l, "axon_actor_failures_total", "counter",
                 "Handler errors and ax_fail calls of the actor.", AM(failures), V_U64, false);
    actor_family(out, l, "axon_actor_restarts_total", "counter",
                 "Restarts of the actor by its policy.", AM(restarts), V_U64, false);
    family(out, "axon_actor_pool_chunks", "gauge",
           "Chunks of the actor's tell_serialised pool, by state.");
    for (size_t i = 0; i < l->n; i++) {
        const ax_actor_metrics_t *m = l->a[i];

        for (size_t k = 0; m->has_pool && k < sizeof chunks / sizeof chunks[0]; k++) {
            uint64_t v;

            memcpy(&v, (const unsigned char *)m + chunks[k].offset, sizeof v);
            fputs("axon_actor_pool_chunks", out);
            actor_labels(out, m);
            fprintf(out, ",state=\"%s\"} %" PRIu64 "\n", chunks[k].state, v);
        }
    }
    actor_family(out, l, "axon_actor_pool_bytes", "gauge",
                 "Bytes allocated by the actor's tell_serialised pool.", AM(pool.bytes_allocated),
                 V_U64, true);
    actor_family(out, l, "axon_actor_pool_exhausted_total", "counter",
                 "Gets from the actor's pool that found it exhausted.", AM(pool.exhausted), V_U64,
                 true);
}

static void prom_pool(FILE *out, const char *pool, const ax_buffer_pool_stats_t *p, int what)
{
    if (what == 0) {
        const char *states[] = {"allocated", "free", "active", "leased"};
        const size_t v[] = {p->chunks_allocated, p->chunks_free, p->chunks_active,
                            p->chunks_leased};

        for (size_t k = 0; k < 4; k++)
            fprintf(out, "axon_net_pool_chunks{pool=\"%s\",state=\"%s\"} %zu\n", pool, states[k],
                    v[k]);
    } else if (what == 1) {
        fprintf(out, "axon_net_pool_bytes{pool=\"%s\"} %zu\n", pool, p->bytes_allocated);
    } else {
        fprintf(out, "axon_net_pool_exhausted_total{pool=\"%s\"} %" PRIu64 "\n", pool, p->exhausted);
    }
}

static void conn_labels(FILE *out, const ax_conn_metrics_t *c)
{
    char addr[AX_PATH_STR_MAX];

    ax_addr_format(&c->peer, addr, sizeof addr);
    fputs("{peer=\"", out);
    put_label(out, addr);
    fprintf(out, "\",session=\"%016" PRIx64 "\"}", c->session);
}

static void prom_conns(FILE *out, const snapshot_t *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
        bool seconds;
    } f[] = {
        {"axon_conn_frames_sent_total", "counter", "Data frames written on the connection.",
         offsetof(ax_conn_metrics_t, frames_sent), false},
        {"axon_conn_frames_received_total", "counter", "Data frames read from the connection.",
         offsetof(ax_conn_metrics_t, frames_received), false},
        {"axon_conn_bytes_sent_total", "counter", "Bytes written, control frames included.",
         offsetof(ax_conn_metrics_t, bytes_sent), false},
        {"axon_conn_bytes_received_total", "counter", "Bytes read, control frames included.",
         offsetof(ax_conn_metrics_t, bytes_received), false},
        {"axon_conn_unacked", "gauge", "Data frames written and not yet acknowledged.",
         offsetof(ax_conn_metrics_t, unacked), false},
        {"axon_conn_last_receive_seconds", "gauge",
         "CLOCK_MONOTONIC time of the last read from the connection.",
         offsetof(ax_conn_metrics_t, last_receive_ns), true},
    };

    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        family(out, f[k].name, f[k].type, f[k].help);
        for (size_t i = 0; i < s->nconns; i++) {
            uint64_t v;

            memcpy(&v, (const unsigned char *)&s->conns[i] + f[k].offset, sizeof v);
            fputs(f[k].name, out);
            conn_labels(out, &s->conns[i]);
            if (f[k].seconds)
                fprintf(out, " %.9f\n", seconds(v));
            else
                fprintf(out, " %" PRIu64 "\n", v);
        }
    }
}

static void prom_net(FILE *out, const snapshot_t *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } f[] = {
        {"axon_net_frames_sent_total", "counter", "Data frames written to sockets.",
         offsetof(ax_net_stats_t, frames_sent)},
        {"axon_net_frames_received_total", "counter", "Data frames read from sockets.",
         offsetof(ax_net_stats_t, frames_received)},
        {"axon_net_bytes_sent_total", "counter", "Bytes written, control frames included.",
         offsetof(ax_net_stats_t, bytes_sent)},
        {"axon_net_bytes_received_total", "counter", "Bytes read, control frames included.",
         offsetof(ax_net_stats_t, bytes_received)},
        {"axon_net_acked_total", "counter", "Sent frames the peer acknowledged (took charge of).",
         offsetof(ax_net_stats_t, acked)},
        {"axon_net_dead_lettered_total", "counter", "Messages for peers that went to dead letters.",
         offsetof(ax_net_stats_t, dead_lettered)},
        {"axon_net_returned_total", "counter", "Frames the peer reported as undeliverable.",
         offsetof(ax_net_stats_t, returned)},
        {"axon_net_too_big_total", "counter", "Frames above the peer's frame limit.",
         offsetof(ax_net_stats_t, too_big)},
        {"axon_net_malformed_total", "counter", "Connections closed for breaking the protocol.",
         offsetof(ax_net_stats_t, malformed)},
        {"axon_net_connections", "gauge", "Connections open now, strangers included.",
         offsetof(ax_net_stats_t, connections)},
        {"axon_net_pending_handshakes", "gauge", "Accepted connections whose handshake is not complete.",
         offsetof(ax_net_stats_t, pending_handshakes)},
        {"axon_net_refused_total", "counter", "Accepts closed at once (limits, descriptors, tcp_congestion refused).",
         offsetof(ax_net_stats_t, refused)},
        {"axon_net_handshake_timeouts_total", "counter", "Connections closed: no handshake in time.",
         offsetof(ax_net_stats_t, handshake_timeouts)},
        {"axon_net_handshakes_evicted_total", "counter",
         "Strangers closed to make room under max_pending_handshakes.",
         offsetof(ax_net_stats_t, handshakes_evicted)},
        {"axon_net_auth_failures_total", "counter", "Handshakes that failed authentication.",
         offsetof(ax_net_stats_t, auth_failures)},
        {"axon_net_replace_refused_total", "counter",
         "Hellos for a connected address refused for want of proof.",
         offsetof(ax_net_stats_t, replace_refused)},
        {"axon_net_heartbeat_timeouts_total", "counter", "Connections lost to silence.",
         offsetof(ax_net_stats_t, heartbeat_timeouts)},
        {"axon_net_reconnects_total", "counter", "Connections established after a loss.",
         offsetof(ax_net_stats_t, reconnects)},
        {"axon_net_read_pauses_total", "counter",
         "Times a connection stopped reading for want of receive buffers.",
         offsetof(ax_net_stats_t, read_pauses)},
        {"axon_net_ring_reads_total", "counter",
         "Reads of open connections that came through io_uring (0 with network.io_uring off or refused).",
         offsetof(ax_net_stats_t, ring_reads)},
    };

    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        uint64_t v;

        memcpy(&v, (const unsigned char *)&s->net + f[k].offset, sizeof v);
        family(out, f[k].name, f[k].type, f[k].help);
        sample_u64(out, f[k].name, v);
    }
    family(out, "axon_net_pool_chunks", "gauge",
           "Chunks of the network's pools (receive, dispatch), by state.");
    prom_pool(out, "receive", &s->net.receive_pool, 0);
    prom_pool(out, "dispatch", &s->net.dispatch_pool, 0);
    family(out, "axon_net_pool_bytes", "gauge", "Bytes allocated by the network's pools.");
    prom_pool(out, "receive", &s->net.receive_pool, 1);
    prom_pool(out, "dispatch", &s->net.dispatch_pool, 1);
    family(out, "axon_net_pool_exhausted_total", "counter",
           "Gets from the network's pools that found them exhausted.");
    prom_pool(out, "receive", &s->net.receive_pool, 2);
    prom_pool(out, "dispatch", &s->net.dispatch_pool, 2);
    prom_conns(out, s);
}

static void prom_system(FILE *out, const snapshot_t *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } f[] = {
        {"axon_messages_delivered_total", "counter", "Messages handed to a handler.",
         offsetof(ax_system_stats_t, delivered)},
        {"axon_dead_letters_total", "counter", "Messages that went to dead letters.",
         offsetof(ax_system_stats_t, dead_letters)},
        {"axon_actors_alive", "gauge", "Actors created and not yet ended.",
         offsetof(ax_system_stats_t, actors_alive)},
        {"axon_worker_steals_total", "counter", "Actors a worker took from another's queue.",
         offsetof(ax_system_stats_t, steals)},
        {"axon_worker_parks_total", "counter", "Times a worker went to sleep.",
         offsetof(ax_system_stats_t, parks)},
        {"axon_failures_total", "counter", "Actor failures (handler errors, ax_fail).",
         offsetof(ax_system_stats_t, failures)},
        {"axon_restarts_total", "counter", "Actors restarted by their policy.",
         offsetof(ax_system_stats_t, restarts)},
    };

    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        uint64_t v;

        memcpy(&v, (const unsigned char *)&s->sys + f[k].offset, sizeof v);
        family(out, f[k].name, f[k].type, f[k].help);
        sample_u64(out, f[k].name, v);
    }
}

static ax_status_t write_prometheus(FILE *out, const snapshot_t *s)
{
    actor_list_t l;
    ax_status_t st = union_of(s, &l);

    if (st != AX_OK)
        return st;
    prom_system(out, s);
    if (s->has_net)
        prom_net(out, s);
    prom_actors(out, &l);
    free(l.a);
    return AX_OK;
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_pool(FILE *out, const ax_buffer_pool_stats_t *p)
{
    fprintf(out,
            "{\"chunks_allocated\":%zu,\"chunks_free\":%zu,\"chunks_active\":%zu,"
            "\"chunks_leased\":%zu,\"bytes_allocated\":%zu,\"exhausted\":%" PRIu64 "}",
            p->chunks_allocated, p->chunks_free, p->chunks_active, p->chunks_leased,
            p->bytes_allocated, p->exhausted);
}

static void json_actor(FILE *out, const ax_actor_metrics_t *m)
{
    fprintf(out, "{\"id\":%" PRIu64 ",\"type\":", m->id);
    put_json(out, m->type);
    fputs(",\"name\":", out);
    put_json(out, m->name);
    fprintf(out,
            ",\"mailbox_depth\":%" PRIu64 ",\"mailbox_depth_max\":%" PRIu64
            ",\"handled\":%" PRIu64 ",\"handler_seconds\":%.9f,\"handler_max_seconds\":%.9f"
            ",\"failures\":%" PRIu64 ",\"restarts\":%" PRIu64 ",\"pool\":",
            m->mailbox_depth, m->mailbox_depth_max, m->handled, seconds(m->handler_ns),
            seconds(m->handler_max_ns), m->failures, m->restarts);
    if (m->has_pool)
        json_pool(out, &m->pool);
    else
        fputs("null", out);
    fputc('}', out);
}

static void json_actors(FILE *out, const ax_actor_metrics_t *a, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fputc(',', out);
        json_actor(out, &a[i]);
    }
    fputc(']', out);
}

static void json_conn(FILE *out, const ax_conn_metrics_t *c)
{
    char addr[AX_PATH_STR_MAX];

    ax_addr_format(&c->peer, addr, sizeof addr);
    fputs("{\"peer\":", out);
    put_json(out, addr);
    fprintf(out,
            ",\"session\":\"%016" PRIx64 "\",\"frames_sent\":%" PRIu64
            ",\"frames_received\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
            ",\"bytes_received\":%" PRIu64 ",\"unacked\":%" PRIu64
            ",\"last_receive_seconds\":%.9f,\"rtt_seconds\":",
            c->session, c->frames_sent, c->frames_received, c->bytes_sent, c->bytes_received,
            c->unacked, seconds(c->last_receive_ns));
    if (c->rtt_ns != 0)
        fprintf(out, "%.9f}", seconds(c->rtt_ns));
    else
        fputs("null}", out);
}

static void write_json(FILE *out, const snapshot_t *s)
{
    const ax_system_stats_t *y = &s->sys;

    fprintf(out,
            "{\"system\":{\"delivered\":%" PRIu64 ",\"dead_letters\":%" PRIu64
            ",\"actors_alive\":%" PRIu64 ",\"steals\":%" PRIu64 ",\"parks\":%" PRIu64
            ",\"failures\":%" PRIu64 ",\"restarts\":%" PRIu64 "},\"network\":",
            y->delivered, y->dead_letters, y->actors_alive, y->steals, y->parks, y->failures,
            y->restarts);
    if (s->has_net) {
        const ax_net_stats_t *n = &s->net;

        fprintf(out,
                "{\"frames_sent\":%" PRIu64 ",\"frames_received\":%" PRIu64
                ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
                ",\"acked\":%" PRIu64 ",\"dead_lettered\":%" PRIu64 ",\"returned\":%" PRIu64
                ",\"too_big\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"connections\":%" PRIu64
                ",\"pending_handshakes\":%" PRIu64 ",\"reconnects\":%" PRIu64
                ",\"read_pauses\":%" PRIu64 ",\"ring_reads\":%" PRIu64 ",\"refused\":%" PRIu64
                ",\"handshake_timeouts\":%" PRIu64 ",\"handshakes_evicted\":%" PRIu64
                ",\"auth_failures\":%" PRIu64 ",\"replace_refused\":%" PRIu64
                ",\"heartbeat_timeouts\":%" PRIu64 ",\"receive_pool\":",
                n->frames_sent, n->frames_received, n->bytes_sent, n->bytes_received, n->acked,
                n->dead_lettered, n->returned, n->too_big, n->malformed, n->connections,
                n->pending_handshakes, n->reconnects, n->read_pauses, n->ring_reads, n->refused,
                n->handshake_timeouts, n->handshakes_evicted, n->auth_failures,
                n->replace_refused, n->heartbeat_timeouts);
        json_pool(out, &n->receive_pool);
        fputs(",\"dispatch_pool\":", out);
        json_pool(out, &n->dispatch_pool);
        fputs(",\"connections_open\":[", out);
        for (size_t i = 0; i < s->nconns; i++) {
            if (i > 0)
                fputc(',', out);
            json_conn(out, &s->conns[i]);
        }
        fputs("]}", out);
    } else {
        fputs("null", out);
    }
    fprintf(out, ",\"actors_total\":%zu,\"actors_by_mailbox\":", s->total);
    json_actors(out, s->by_mailbox, s->nmailbox);
    fputs(",\"actors_by_time\":", out);
    json_actors(out, s->by_time, s->ntime);
    fputs("}\n", out);
}

/* ---- entry points -------------------------------------------------------------- */

static ax_status_t finish(FILE *out, ax_status_t st)
{
    if (st == AX_OK && (fflush(out) != 0 || ferror(out)))
        return ax__error(AX_EIO, "metrics: writing the output failed");
    return st;
}

ax_status_t ax_metrics_write(ax_system_t *sys, FILE *out, ax_metrics_format_t format)
{
    snapshot_t s;
    ax_status_t st;

    if (sys == NULL || out == NULL)
        return ax__error(AX_EINVAL, "metrics_write: NULL argument");
    if (format != AX_METRICS_PROMETHEUS && format != AX_METRICS_JSON)
        return ax__error(AX_EINVAL, "metrics_write: unknown format %d", (int)format);
    st = snapshot_take(sys, ax__system_config(sys)->metrics.top_n, &s);
    if (st != AX_OK)
        return st;
    if (format == AX_METRICS_JSON)
        write_json(out, &s);
    else
        st = write_prometheus(out, &s);
    snapshot_free(&s);
    return finish(out, st);
}

ax_status_t ax_metrics_write_actors(ax_system_t *sys, FILE *out, ax_metrics_sort_t by, size_t limit)
{
    ax_actor_metrics_t *a;
    size_t n = 0, total = 0;
    ax_status_t st;

    if (sys == NULL || out == NULL)
        return ax__error(AX_EINVAL, "metrics_write_actors: NULL argument");
    a = calloc(limit > 0 ? limit : 1, sizeof(*a));
    if (a == NULL)
        return ax__error(AX_ENOMEM, "metrics_write_actors: no memory for %zu actors", limit);
    st = ax_metrics_actors(sys, by, a, limit, &n, &total);
    if (st == AX_OK) {
        fprintf(out, "{\"sort\":\"%s\",\"limit\":%zu,\"total\":%zu,\"actors\":",
                by == AX_METRICS_BY_TIME ? "time" : "mailbox", limit, total);
        json_actors(out, a, n);
        fputs("}\n", out);
    }
    free(a);
    return finish(out, st);
}
