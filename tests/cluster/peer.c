/*
 * cluster_peer: one Axon system of the 16-system cluster test
 * (tests/cluster/run_cluster.py starts 16 of these, one per network
 * namespace). Written against the public API only (axon/axon.h), as a
 * user would write it.
 *
 *   cluster_peer config=FILE state=FILE index=I inc=N npeers=P
 *                prefix=10.77.0. port=7100 msgs=M duration_ms=D
 *                [targets=all|J,K,...]
 *
 * The system's configuration comes from FILE (ax_config_load_file): the
 * listen address, the cookie and the heartbeat settings are the driver's.
 * Peer J listens on <prefix>(J+1):<port>; every peer has one actor, the
 * hub, registered as "sink", which
 *   - on "go" (a line on stdin) sends M numbered messages to "sink" on
 *     every target (all other peers by default), lazily (ax_tell of a
 *     fresh ax_u64_msg_new message to a remote ref), round-robin, paced
 *     evenly over D ms. A message's u64 is inc << 40 | index << 32 | seq.
 *   - receives those messages and records each (sender, incarnation, seq)
 *     in a bitmap: a bit already set is a duplicate; a seq not above the
 *     last one from that sender incarnation is out of order.
 *   - is the system's dead-letter actor: a dead-lettered message of ours
 *     is counted against its destination, with its seq when the message or
 *     its bytes came back (known) or without (ax_net_undelivered_t:
 *     written, then the connection was lost; it may have been delivered).
 * A second actor, the watcher, is subscribed to network events and prints
 * each one with the time it handled it.
 * The counters and bitmaps live in FILE, mapped shared: they are in the
 * page cache the moment they are written, so they survive a SIGKILL of
 * this process (the driver reads them afterwards). stdout carries JSON
 * lines: ready, net events, a status line every 250 ms, errors.
 * "quit" (or end of file) on stdin shuts the system down gracefully.
 *
 * Exit status: 0 after a clean shutdown, 2 when the system cannot be set
 * up (the reason is printed as an "error" line).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, ftruncate */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "axon/axon.h"

#include "state.h"

typedef struct peer {
    const char *config, *state_path, *prefix;
    unsigned index, inc, npeers, port;
    uint64_t msgs, duration_ms;
    bool target[CL_MAX_PEERS];
    unsigned ntargets;
    uint64_t *st; /* the shared state file's words */
    size_t st_len;
    ax_system_t *sys;
} peer_t;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_error(const char *what, ax_status_t st)
{
    printf("{\"event\":\"error\",\"what\":\"%s\",\"status\":\"%s\",\"detail\":\"", what,
           ax_status_name(st));
    for (const char *p = ax_error_detail(); p != NULL && *p != '\0'; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\",\"t\":%.1f}\n", now_ms());
}

/* ---- the hub actor ----------------------------------------------------------- */

static const ax_msg_type_t go_type = {.name = "cluster.go", .size = sizeof(ax_msg_t)};
static const ax_msg_type_t tick_type = {.name = "cluster.tick", .size = sizeof(ax_msg_t)};

#define TICK_MS 5
#define STATUS_MS 250
#define MAX_PER_TICK 2000

typedef struct hub {
    ax_actor_t actor;
    peer_t *p;
    ax_ref_t dst[CL_MAX_PEERS];
    uint64_t seq[CL_MAX_PEERS]; /* next seq per destination */
    unsigned rr;                /* round-robin position */
    uint64_t sent_total, total;
    double t_go, t_status;
    bool going, done;
} hub_t;

static ax_status_t hub_init(ax_actor_t *self, void *arg)
{
    hub_t *h = (hub_t *)self;
    peer_t *p = arg;

    h->p = p;
    for (unsigned j = 0; j < p->npeers; j++) {
        char text[128];
        ax_path_t path;
        ax_status_t st;

        if (!p->target[j])
            continue;
        snprintf(text, sizeof text, "tcp://%s%u:%u/sink", p->prefix, j + 1, p->port);
        st = ax_path_parse(text, &path);
        if (st == AX_OK)
            st = ax_ref_from_path(p->sys, &path, &h->dst[j]);
        if (st != AX_OK)
            return st;
    }
    h->total = p->msgs * p->ntargets;
    return AX_OK;
}

/* The destination index of a remote ref's path, or -1. */
static int dst_index(const peer_t *p, ax_ref_t ref)
{
    ax_path_t path;
    char want[64];
    char have[64];

    if (ax_ref_path(ref, &path) != AX_OK)
        return -1;
    ax_addr_format(&path.addr, have, sizeof have);
    for (unsigned j = 0; j < p->npeers; j++) {
        snprintf(want, sizeof want, "%s%u:%u", p->prefix, j + 1, p->port);
        if (strcmp(want, have) == 0)
            return (int)j;
    }
    return -1;
}

static void print_status(hub_t *h)
{
    peer_t *p = h->p;
    ax_net_stats_t ns;
    uint64_t dl = 0, recv = 0;

    ax_system_stats_t ss;
    struct mallinfo2 mi = mallinfo2();

    memset(&ns, 0, sizeof ns);
    ax_net_stats(p->sys, &ns);
    ax_system_stats(p->sys, &ss);
    for (unsigned j = 0; j < CL_MAX_PEERS; j++) {
        const uint64_t *s = cl_send(p->st, j);

        dl += s[CL_DL_KNOWN] + s[CL_DL_UNKNOWN] + s[CL_DL_OTHER];
    }
    for (unsigned i = 0; i < CL_MAX_PEERS * CL_MAX_INC; i++)
        recv += cl_recv(p->st, i / CL_MAX_INC, i % CL_MAX_INC)[CL_DELIVERED];
    printf("{\"event\":\"status\",\"t\":%.1f,\"sent\":%llu,\"acked\":%llu,\"dl\":%llu,"
           "\"recv\":%llu,\"done\":%s,\"connections\":%llu,\"net_dead_lettered\":%llu,"
           "\"malformed\":%llu,\"reconnects\":%llu,\"auth_failures\":%llu,"
           "\"heartbeat_timeouts\":%llu,\"mem\":{\"cells\":%llu,\"recv_pool\":%zu,"
           "\"dispatch_pool\":%zu,\"malloc_used\":%zu,\"malloc_free\":%zu,\"malloc_mmap\":%zu}}\n",
           now_ms(), (unsigned long long)h->sent_total, (unsigned long long)ns.acked,
           (unsigned long long)dl, (unsigned long long)recv, h->done ? "true" : "false",
           (unsigned long long)ns.connections, (unsigned long long)ns.dead_lettered,
           (unsigned long long)ns.malformed, (unsigned long long)ns.reconnects,
           (unsigned long long)ns.auth_failures, (unsigned long long)ns.heartbeat_timeouts,
           (unsigned long long)ss.cell_bytes, ns.receive_pool.bytes_allocated,
           ns.dispatch_pool.bytes_allocated, mi.uordblks, mi.fordblks, mi.hblkhd);
}

/* Send what the pace allows by now. */
static void send_some(hub_t *h)
{
    peer_t *p = h->p;
    double elapsed = now_ms() - h->t_go;
    uint64_t due = p->duration_ms == 0 ? h->total
                   : (uint64_t)((double)h->total * elapsed / (double)p->duration_ms) + 1;
    unsigned budget = MAX_PER_TICK;

    if (due > h->total)
        due = h->total;
    while (h->sent_total < due && budget-- > 0) {
        unsigned j = h->rr++ % p->npeers;
        uint64_t *s;
        ax_msg_t *m = NULL;
        ax_status_t st;

        if (!p->target[j] || h->seq[j] >= p->msgs)
            continue;
        s = cl_send(p->st, j);
        /* Counted before the send: a SIGKILL between the two then leaves
         * sent one too high, never too low. */
        s[CL_SENT]++;
        st = ax_u64_msg_new(cl_value(p->inc, p->index, h->seq[j]), &m);
        if (st == AX_OK)
            st = ax_tell(h->dst[j], &m, ax_self(&h->actor));
        ax_msg_release(&m); /* NULL when sent */
        if (st != AX_OK) {
            s[CL_SENT]--;
            s[CL_TELL_ERRORS]++;
            print_error("ax_tell", st);
            return;
        }
        h->seq[j]++;
        h->sent_total++;
    }
    if (h->sent_total == h->total && !h->done) {
        h->done = true;
        p->st[CL_H_DONE] = 1;
        printf("{\"event\":\"done_sending\",\"t\":%.1f,\"sent\":%llu}\n", now_ms(),
               (unsigned long long)h->sent_total);
    }
}

static void on_tick(hub_t *h)
{
    double t = now_ms();

    if (h->going)
        send_some(h);
    if (t - h->t_status >= STATUS_MS) {
        h->t_status = t;
        print_status(h);
    }
}

static void on_dead_letter(hub_t *h, ax_dead_letter_t *d)
{
    peer_t *p = h->p;
    int j = dst_index(p, d->recipient);
    ax_msg_t *m = d->msg, *dec = NULL;
    uint64_t *s, value;
    bool known = false;

    if (j < 0) {
        p->st[CL_H_FOREIGN_DL]++;
        return;
    }
    s = cl_send(p->st, (unsigned)j);
    switch (d->status) {
    case AX_ECLOSED: s[CL_ST_CLOSED]++; break;
    case AX_ETIMEDOUT: s[CL_ST_TIMEDOUT]++; break;
    case AX_ENOBUFS: s[CL_ST_NOBUFS]++; break;
    case AX_ENOTFOUND: s[CL_ST_NOTFOUND]++; break;
    default: s[CL_ST_OTHER]++; break;
    }
    if (m != NULL && m->type == &ax_u64_type) {
        value = ((ax_u64_msg_t *)m)->value;
        known = true;
    } else if (m != NULL && m->type == &ax_net_msg_type &&
               ax_net_msg_deserialise((ax_net_msg_t *)m, &ax_u64_type, &dec) == AX_OK) {
        value = ((ax_u64_msg_t *)dec)->value;
        ax_msg_release(&dec);
        known = true;
    } else if (m != NULL && m->type == &ax_net_undelivered_type) {
        s[CL_DL_UNKNOWN]++;
        return;
    } else {
        s[CL_DL_OTHER]++;
        return;
    }
    if (!known || cl_value_idx(value) != p->index || cl_value_inc(value) != p->inc ||
        cl_value_seq(value) >= p->msgs) {
        s[CL_DL_OTHER]++;
        return;
    }
    if (cl_bit_test_set(cl_send_bits(p->st, (unsigned)j), cl_value_seq(value)))
        s[CL_DL_DUP]++;
    else
        s[CL_DL_KNOWN]++;
}

static const char *kind_name(ax_net_event_kind_t k)
{
    switch (k) {
    case AX_NET_ESTABLISHED: return "ESTABLISHED";
    case AX_NET_LOST: return "LOST";
    case AX_NET_CLOSED: return "CLOSED";
    case AX_NET_DROPPED: return "DROPPED";
    }
    return "UNKNOWN";
}

static void on_net_event(const ax_net_event_t *e)
{
    char peer[64];

    ax_addr_format(&e->peer, peer, sizeof peer);
    printf("{\"event\":\"net\",\"kind\":\"%s\",\"peer\":\"%s\",\"status\":\"%s\",\"session\":%llu,"
           "\"t\":%.1f}\n",
           kind_name(e->kind), peer, ax_status_name(e->status), (unsigned long long)e->session,
           now_ms());
}

static ax_status_t hub_local(ax_actor_t *self, ax_msg_t **msg)
{
    hub_t *h = (hub_t *)self;
    const ax_msg_type_t *t = (*msg)->type;

    if (t == &tick_type) {
        on_tick(h);
    } else if (t == &ax_dead_letter_type) {
        on_dead_letter(h, (ax_dead_letter_t *)*msg);
    } else if (t == &go_type) {
        h->going = true;
        h->t_go = now_ms();
        printf("{\"event\":\"go\",\"t\":%.1f}\n", h->t_go);
        send_some(h);
    } else {
        h->p->st[CL_H_UNEXPECTED]++;
    }
    return AX_OK;
}

static ax_status_t hub_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    hub_t *h = (hub_t *)self;
    peer_t *p = h->p;
    ax_msg_t *m = NULL;
    uint64_t value, seq, *r;
    unsigned idx, inc;

    if (ax_net_msg_deserialise(*nm, &ax_u64_type, &m) != AX_OK) {
        p->st[CL_H_BAD_RECV]++;
        return AX_OK;
    }
    value = ((ax_u64_msg_t *)m)->value;
    ax_msg_release(&m);
    idx = cl_value_idx(value);
    inc = cl_value_inc(value);
    seq = cl_value_seq(value);
    if (idx >= CL_MAX_PEERS || inc >= CL_MAX_INC || seq >= p->msgs) {
        p->st[CL_H_BAD_RECV]++;
        return AX_OK;
    }
    r = cl_recv(p->st, idx, inc);
    if (cl_bit_test_set(cl_recv_bits(p->st, idx, inc), seq)) {
        r[CL_DUPS]++;
        return AX_OK;
    }
    r[CL_DELIVERED]++;
    if (r[CL_LAST_PLUS1] > seq)
        r[CL_OOO]++;
    r[CL_LAST_PLUS1] = seq + 1;
    return AX_OK;
}

static void hub_start(ax_actor_t *self)
{
    ax_msg_t *m = NULL;
    ax_timer_t timer;
    ax_status_t st = ax_msg_alloc(&tick_type, &m);

    if (st == AX_OK)
        st = ax_schedule_periodic(self, AX_MS(TICK_MS), AX_MS(TICK_MS), &m, &timer);
    ax_msg_release(&m);
    if (st != AX_OK) {
        print_error("ax_schedule_periodic", st);
        ax_fail(self, st);
    }
}

/* Network events go to an actor of their own, so that their timestamps
 * are not delayed behind the hub's mailbox of traffic. */
static ax_status_t watcher_local(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    if ((*msg)->type == &ax_net_event_type)
        on_net_event((const ax_net_event_t *)*msg);
    return AX_OK;
}

static const ax_actor_vtable_t watcher_vtable = {
    .name = "cluster.watcher", .size = sizeof(ax_actor_t), .receive_local = watcher_local,
};

static const ax_actor_vtable_t hub_vtable = {
    .name = "cluster.hub", .size = sizeof(hub_t), .init = hub_init, .on_start = hub_start,
    .receive_local = hub_local, .receive_network = hub_network,
};

/* ---- setup --------------------------------------------------------------------- */

static bool parse_args(peer_t *p, int argc, char **argv)
{
    const char *targets = "all";

    memset(p, 0, sizeof *p);
    p->port = 7100;
    p->prefix = "10.77.0.";
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        const char *k = argv[i], *v;

        if (eq == NULL)
            return false;
        *eq = '\0';
        v = eq + 1;
        if (strcmp(k, "config") == 0) p->config = v;
        else if (strcmp(k, "state") == 0) p->state_path = v;
        else if (strcmp(k, "prefix") == 0) p->prefix = v;
        else if (strcmp(k, "index") == 0) p->index = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "inc") == 0) p->inc = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "npeers") == 0) p->npeers = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "port") == 0) p->port = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "msgs") == 0) p->msgs = strtoull(v, NULL, 10);
        else if (strcmp(k, "duration_ms") == 0) p->duration_ms = strtoull(v, NULL, 10);
        else if (strcmp(k, "targets") == 0) targets = v;
        else return false;
    }
    if (p->config == NULL || p->state_path == NULL || p->npeers == 0 ||
        p->npeers > CL_MAX_PEERS - 1 || p->index >= CL_MAX_PEERS || p->inc >= CL_MAX_INC ||
        p->msgs == 0 || p->msgs > CL_MAX_MSGS)
        return false;
    if (strcmp(targets, "all") == 0) {
        for (unsigned j = 0; j < p->npeers; j++)
            p->target[j] = j != p->index;
    } else {
        for (const char *s = targets; *s != '\0';) {
            char *end;
            unsigned long j = strtoul(s, &end, 10);

            if (end == s || j >= p->npeers)
                return false;
            p->target[j] = true;
            s = *end == ',' ? end + 1 : end;
        }
    }
    for (unsigned j = 0; j < p->npeers; j++)
        p->ntargets += p->target[j];
    return p->ntargets > 0;
}

static bool map_state(peer_t *p)
{
    int fd = open(p->state_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

    p->st_len = cl_state_words(p->msgs) * sizeof(uint64_t);
    if (fd < 0 || ftruncate(fd, (off_t)p->st_len) != 0) {
        printf("{\"event\":\"error\",\"what\":\"state file %s: %s\"}\n", p->state_path,
               strerror(errno));
        return false;
    }
    p->st = mmap(NULL, p->st_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p->st == MAP_FAILED) {
        printf("{\"event\":\"error\",\"what\":\"mmap: %s\"}\n", strerror(errno));
        return false;
    }
    cl_state_init(p->st, p->msgs, p->index, p->inc);
    return true;
}

int main(int argc, char **argv)
{
    static peer_t p;
    ax_config_t cfg;
    ax_ref_t hub, watcher;
    ax_status_t st;
    char line[64];
    ax_addr_t addr;
    char addr_text[64];

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!parse_args(&p, argc, argv)) {
        fprintf(stderr, "usage: cluster_peer config=FILE state=FILE index=I inc=N npeers=P "
                        "[prefix=10.77.0.] [port=7100] msgs=M [duration_ms=D] [targets=all|J,K]\n");
        return 2;
    }
    if (!map_state(&p))
        return 2;
    ax_config_init(&cfg);
    if ((st = ax_config_load_file(&cfg, p.config)) != AX_OK) {
        print_error("ax_config_load_file", st);
        return 2;
    }
    if ((st = ax_system_create(&cfg, &p.sys)) != AX_OK) {
        print_error("ax_system_create", st);
        return 2;
    }
    /* The sink is named before the network starts: a message that arrives
     * early must find it. */
    if ((st = ax_spawn(p.sys, &hub_vtable, &p, &hub)) != AX_OK ||
        (st = ax_register(p.sys, hub, "sink")) != AX_OK) {
        print_error("spawn the hub", st);
        ax_system_destroy(&p.sys);
        return 2;
    }
    ax_set_dead_letter_actor(p.sys, hub);
    if ((st = ax_net_start(p.sys)) != AX_OK) {
        print_error("ax_net_start", st);
        ax_system_destroy(&p.sys);
        return 2;
    }
    if ((st = ax_spawn(p.sys, &watcher_vtable, NULL, &watcher)) != AX_OK ||
        (st = ax_net_subscribe(p.sys, watcher)) != AX_OK) {
        print_error("ax_net_subscribe", st);
        ax_system_destroy(&p.sys);
        return 2;
    }
    ax_system_address(p.sys, &addr);
    ax_addr_format(&addr, addr_text, sizeof addr_text);
    printf("{\"event\":\"ready\",\"index\":%u,\"inc\":%u,\"address\":\"%s\",\"pid\":%ld,"
           "\"t\":%.1f}\n",
           p.index, p.inc, addr_text, (long)getpid(), now_ms());

    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "go", 2) == 0) {
            ax_msg_t *m = NULL;

            st = ax_msg_alloc(&go_type, &m);
            if (st == AX_OK)
                st = ax_tell(hub, &m, AX_REF_NULL);
            ax_msg_release(&m);
            if (st != AX_OK)
                print_error("tell go", st);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    ax_system_shutdown(p.sys);
    st = ax_system_await_termination(p.sys);
    ax_system_destroy(&p.sys);
    printf("{\"event\":\"exit\",\"t\":%.1f}\n", now_ms());
    munmap(p.st, p.st_len);
    return st == AX_OK ? 0 : 2;
}
