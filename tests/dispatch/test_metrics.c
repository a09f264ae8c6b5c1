/*
 * Metrics: per-actor counters, rankings, the Prometheus and JSON writers
 * (checked by real parsers in metrics_check.py), per-connection figures,
 * and the HTTP endpoint under load.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/axon.h"
#include "tests/actor/helpers.h"

#define PYTHON "/usr/bin/python3"

/* Run metrics_check.py with args (no shell: names may hold anything). */
static int run_check(const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {PYTHON, METRICS_CHECK_PY, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        execv(PYTHON, argv);
        _exit(127);
    }
    cr_assert(pid > 0, "fork failed");
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ---- actors under test ---------------------------------------------------- */

typedef struct counting {
    ax_actor_t actor;
    _Atomic uint64_t *count;
    unsigned spin_us;   /* per message */
    sem_t *gate;        /* when set, the first message waits on it */
} counting_t;

typedef struct counting_args {
    _Atomic uint64_t *count;
    unsigned spin_us;
    sem_t *gate;
} counting_args_t;

static ax_status_t counting_init(ax_actor_t *self, void *arg)
{
    counting_t *c = (counting_t *)self;
    counting_args_t *a = arg;

    c->count = a->count;
    c->spin_us = a->spin_us;
    c->gate = a->gate;
    return AX_OK;
}

static ax_status_t counting_receive(ax_actor_t *self, ax_msg_t **msg)
{
    counting_t *c = (counting_t *)self;

    (void)msg;
    if (c->gate != NULL) {
        sem_wait(c->gate);
        c->gate = NULL;
    }
    if (c->spin_us > 0)
        axt_spin_us(c->spin_us);
    atomic_fetch_add(c->count, 1);
    if ((*msg)->type == &ax_u64_type && ((ax_u64_msg_t *)*msg)->value == UINT64_MAX)
        return AX_EFAILED; /* the failure message */
    return AX_OK;
}

/* From another system: counted only. */
static ax_status_t counting_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    (void)nm;
    atomic_fetch_add(((counting_t *)self)->count, 1);
    return AX_OK;
}

static const ax_actor_vtable_t counting_vtable = {
    .name = "test.counting",
    .size = sizeof(counting_t),
    .init = counting_init,
    .receive_local = counting_receive,
    .receive_network = counting_network,
};

static void tell_u64(ax_ref_t dst, uint64_t v)
{
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_alloc(&ax_u64_type, &m), AX_OK);
    ((ax_u64_msg_t *)m)->value = v;
    cr_assert_eq(ax_tell(dst, &m, AX_REF_NULL), AX_OK);
}

/* The metrics of actor id, by reading the top `cap` by `by`. */
static bool find_actor(ax_system_t *sys, ax_metrics_sort_t by, uint64_t id, ax_actor_metrics_t *out)
{
    ax_actor_metrics_t top[16];
    size_t n = 0;

    cr_assert_eq(ax_metrics_actors(sys, by, top, 16, &n, NULL), AX_OK);
    for (size_t i = 0; i < n; i++) {
        if (top[i].id == id) {
            *out = top[i];
            return true;
        }
    }
    return false;
}

static bool handled_is(ax_system_t *sys, uint64_t id, uint64_t n)
{
    ax_actor_metrics_t m;

    return find_actor(sys, AX_METRICS_BY_TIME, id, &m) && m.handled == n;
}

/* ---- counters and rankings -------------------------------------------------- */

/*
 * Handler time is sampled against the timer thread's 1 ms clock. On a
 * loaded machine that thread can be held off the CPU for a while, and a
 * handler that ends then reads a clock that is behind. So the slow actor
 * below spins 10 ms, then waits until the timer thread is known to have
 * ticked after the spin: the ticker actor has had two timers of its own
 * fire one after the other (the second is armed after the first fired,
 * so the timer thread had finished the pass that fired the first, and
 * with it any clock tick due by then). Only then does the handler return.
 */
typedef struct slow_s {
    ax_actor_t actor;
    _Atomic uint64_t *count;
    sem_t *spun, *fresh;
} slow_t;

typedef struct slow_args_s {
    _Atomic uint64_t *count;
    sem_t *spun, *fresh;
} slow_args_t;

static ax_status_t slow_init(ax_actor_t *self, void *arg)
{
    slow_t *a = (slow_t *)self;
    const slow_args_t *args = arg;

    a->count = args->count;
    a->spun = args->spun;
    a->fresh = args->fresh;
    return AX_OK;
}

static ax_status_t slow_receive(ax_actor_t *self, ax_msg_t **msg)
{
    slow_t *a = (slow_t *)self;

    (void)msg;
    axt_spin_us(10000);
    sem_post(a->spun);
    AXT_CHECK(axt_sem_wait(a->fresh, WAIT_S));
    atomic_fetch_add(a->count, 1);
    return AX_OK;
}

static const ax_actor_vtable_t slow_vtable = {
    .name = "test.slow",
    .size = sizeof(slow_t),
    .init = slow_init,
    .receive_local = slow_receive,
};

typedef struct ticker_s {
    ax_actor_t actor;
    sem_t *done;
} ticker_t;

static ax_status_t ticker_init(ax_actor_t *self, void *arg)
{
    ((ticker_t *)self)->done = arg;
    return AX_OK;
}

/* 0 (from the test) and 1 arm the next timer, 2 is the second firing. */
static ax_status_t ticker_receive(ax_actor_t *self, ax_msg_t **msg)
{
    ax_u64_msg_t *m = (ax_u64_msg_t *)*msg;
    ax_timer_t id;

    if (m->value == 2) {
        sem_post(((ticker_t *)self)->done);
        return AX_OK;
    }
    m->value++;
    AXT_CHECK(ax_schedule_once(self, 2000000u, msg, &id) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t ticker_vtable = {
    .name = "test.ticker",
    .size = sizeof(ticker_t),
    .init = ticker_init,
    .receive_local = ticker_receive,
};

Test(metrics, handled_time_and_type_per_actor)
{
    enum { SLOW_N = 10 };
    ax_system_t *sys = axt_system(2);
    _Atomic uint64_t fast_n = 0, slow_n = 0;
    counting_args_t fast = {&fast_n, 0, NULL};
    sem_t spun, fresh, ticked;
    slow_args_t slow = {&slow_n, &spun, &fresh};
    ax_ref_t f, s, t;
    ax_actor_metrics_t m;
    size_t count = 0, total = 0;
    double t0, wall_ns;

    sem_init(&spun, 0, 0);
    sem_init(&fresh, 0, 0);
    sem_init(&ticked, 0, 0);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &fast, &f), AX_OK);
    cr_assert_eq(ax_spawn(sys, &slow_vtable, &slow, &s), AX_OK);
    cr_assert_eq(ax_spawn(sys, &ticker_vtable, &ticked, &t), AX_OK);
    /* The first read starts the metrics clock. */
    t0 = axt_now();
    cr_assert_eq(ax_metrics_actors(sys, AX_METRICS_BY_TIME, NULL, 0, &count, &total), AX_OK);
    for (int i = 0; i < 1000; i++)
        tell_u64(f, (uint64_t)i);
    AXT_WAIT_COUNT(fast_n, 1000);
    for (int i = 0; i < SLOW_N; i++) {
        tell_u64(s, (uint64_t)i);
        AXT_WAIT_SEM(&spun);
        tell_u64(t, 0);
        AXT_WAIT_SEM(&ticked);
        sem_post(&fresh);
    }
    AXT_WAIT_COUNT(slow_n, SLOW_N);
    WAIT_UNTIL(handled_is(sys, f.id, 1000) && handled_is(sys, s.id, SLOW_N), "handled counts");
    wall_ns = (axt_now() - t0) * 1e9;
    AXT_ASSERT_NO_BAD();

    cr_assert(find_actor(sys, AX_METRICS_BY_TIME, s.id, &m));
    cr_assert_str_eq(m.type, "test.slow");
    cr_assert_eq(m.name[0], '\0');
    /* Each handler spun 10 ms before a tick it then read. */
    cr_assert(m.handler_ns >= SLOW_N * 10000000u, "slow actor's handler time %llu ns", U(m.handler_ns));
    cr_assert(m.handler_max_ns >= 10000000u, "slow actor's longest handler %llu ns", U(m.handler_max_ns));
    /* A sampled clock never runs ahead of the real one: one actor's
     * handlers, run one after another, took at most the time since the
     * clock started. */
    cr_assert(m.handler_ns <= (uint64_t)wall_ns, "handler time %llu ns in %.0f ns of wall clock",
              U(m.handler_ns), wall_ns);
    {
        ax_actor_metrics_t top[3];

        cr_assert_eq(ax_metrics_actors(sys, AX_METRICS_BY_TIME, top, 3, &count, &total), AX_OK);
        cr_assert_eq(count, 3);
        cr_assert_eq(total, 3);
        cr_assert_eq(top[0].id, s.id, "the slow actor ranks first by time");
        cr_assert_eq(top[0].handled, SLOW_N);
    }
    find_actor(sys, AX_METRICS_BY_TIME, f.id, &m);
    cr_assert_str_eq(m.type, "test.counting");
    cr_assert_eq(m.handled, 1000);
    axt_destroy(&sys);
    sem_destroy(&spun);
    sem_destroy(&fresh);
    sem_destroy(&ticked);
}

Test(metrics, failures_and_restarts_per_actor)
{
    ax_system_t *sys = axt_system(2);
    _Atomic uint64_t n = 0;
    counting_args_t args = {&n, 0, NULL};
    ax_spawn_opts_t opts = {.restart = {.mode = AX_RESTART_BACKOFF,
                                        .max_restarts = 5,
                                        .window_ns = 10 * AX__NS_PER_S,
                                        .backoff_initial_ns = 1000000,
                                        .backoff_max_ns = 1000000}};
    ax_ref_t r;
    ax_actor_metrics_t m;

    cr_assert_eq(ax_spawn_opts(sys, &counting_vtable, &args, &opts, &r), AX_OK);
    tell_u64(r, UINT64_MAX);
    tell_u64(r, UINT64_MAX);
    tell_u64(r, 1);
    AXT_WAIT_COUNT(n, 3);
    WAIT_UNTIL(find_actor(sys, AX_METRICS_BY_MAILBOX, r.id, &m) && m.restarts == 2,
               "two restarts counted");
    cr_assert_eq(m.failures, 2);
    axt_destroy(&sys);
}

/* A mailbox that grows shows up first by mailbox depth. */
Test(metrics, growing_mailbox_ranks_first)
{
    ax_system_t *sys = axt_system(2);
    _Atomic uint64_t n_slow = 0, n_other = 0;
    counting_args_t slow = {&n_slow, 200, NULL}, other = {&n_other, 0, NULL};
    ax_ref_t s, o;
    ax_actor_metrics_t top[4];
    size_t count = 0;
    bool first = false;

    cr_assert_eq(ax_spawn(sys, &counting_vtable, &slow, &s), AX_OK);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &other, &o), AX_OK);
    /* 4 s of backlog: time enough for this thread to read it on a loaded
     * machine (3000 messages gave it 0.6 s). */
    for (int i = 0; i < 20000; i++) {
        tell_u64(s, (uint64_t)i);
        if (i % 10 == 0)
            tell_u64(o, (uint64_t)i);
    }
    /* Each read asks for fresh samples; the slow actor takes one at the
     * start of each of its runs. */
    for (double end = axt_now() + WAIT_S; !first && axt_now() < end; axt_sleep_us(2000)) {
        cr_assert_eq(ax_metrics_actors(sys, AX_METRICS_BY_MAILBOX, top, 4, &count, NULL), AX_OK);
        first = count >= 1 && top[0].id == s.id && top[0].mailbox_depth > 100;
    }
    cr_assert(first, "the growing mailbox never ranked first");
    cr_assert(top[0].mailbox_depth_max >= top[0].mailbox_depth);
    AXT_WAIT_COUNT(n_other, 2000);
    ax_kill(s); /* its backlog goes to dead letters, not 4 s of spinning */
    axt_destroy(&sys);
}

/* ---- the writers, through real parsers ----------------------------------------- */

static const char weird_name[] = "we\"ird\\na\nme";

static void write_to(ax_system_t *sys, const char *path, ax_metrics_format_t fmt)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f);
    cr_assert_eq(ax_metrics_write(sys, f, fmt), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(fclose(f), 0);
}

Test(metrics, prometheus_and_json_parse_with_escaped_names)
{
    ax_system_t *sys = axt_system(2);
    _Atomic uint64_t n = 0;
    counting_args_t args = {&n, 0, NULL};
    char prom[] = "/tmp/axon_metrics_XXXXXX", json[] = "/tmp/axon_metrics_json_XXXXXX";
    ax_ref_t r;
    int fd;

    cr_assert_eq(ax_net_start(sys), AX_OK);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &args, &r), AX_OK);
    cr_assert_eq(ax_register(sys, r, weird_name), AX_OK);
    for (int i = 0; i < 77; i++)
        tell_u64(r, (uint64_t)i);
    AXT_WAIT_COUNT(n, 77);
    WAIT_UNTIL(handled_is(sys, r.id, 77), "handled count");
    fd = mkstemp(prom);
    cr_assert(fd >= 0);
    close(fd);
    fd = mkstemp(json);
    cr_assert(fd >= 0);
    close(fd);
    write_to(sys, prom, AX_METRICS_PROMETHEUS);
    write_to(sys, json, AX_METRICS_JSON);
    cr_assert_eq(run_check("prom", prom, weird_name, "77"), 0, "Prometheus check failed");
    cr_assert_eq(run_check("json", json, weird_name, "77"), 0, "JSON check failed");
    unlink(prom);
    unlink(json);
    cr_assert_eq(ax_metrics_write(sys, stdout, (ax_metrics_format_t)7), AX_EINVAL);
    axt_destroy(&sys);
}

/* ---- connections ------------------------------------------------------------------ */

Test(metrics, connection_figures)
{
    ax_system_t *a = axt_system(1), *b = axt_system(1);
    _Atomic uint64_t n = 0;
    counting_args_t args = {&n, 0, NULL};
    ax_conn_metrics_t conns[4];
    ax_addr_t baddr;
    ax_path_t path;
    ax_ref_t local, remote;
    size_t count = 99;

    cr_assert_eq(ax_metrics_connections(a, conns, 4, &count), AX_ESTATE);
    cr_assert_eq(ax_net_start(a), AX_OK);
    cr_assert_eq(ax_net_start(b), AX_OK);
    cr_assert_eq(ax_metrics_connections(a, conns, 4, &count), AX_OK);
    cr_assert_eq(count, 0);
    cr_assert_eq(ax_spawn(b, &counting_vtable, &args, &local), AX_OK);
    cr_assert_eq(ax_register(b, local, "sink"), AX_OK);
    ax_system_address(b, &baddr);
    path = (ax_path_t){.addr = baddr, .kind = AX_PATH_NAMED, .name_len = 4};
    memcpy(path.name, "sink", 5);
    cr_assert_eq(ax_ref_from_path(a, &path, &remote), AX_OK);
    for (int i = 0; i < 10; i++)
        tell_u64(remote, (uint64_t)i);
    AXT_WAIT_COUNT(n, 10);
    WAIT_UNTIL(ax_metrics_connections(a, conns, 4, &count) == AX_OK && count == 1 &&
                   conns[0].frames_sent == 10 && conns[0].unacked == 0,
               "one connection with 10 frames sent and acked");
    cr_assert(ax_addr_eq(&conns[0].peer, &baddr));
    cr_assert_neq(conns[0].session, 0);
    cr_assert(conns[0].bytes_sent > 10 * 8);
    cr_assert(conns[0].bytes_received > 0, "acks and the handshake came back");
    cr_assert(conns[0].last_receive_ns > 0);
    WAIT_UNTIL(ax_metrics_connections(b, conns, 4, &count) == AX_OK && count == 1 &&
                   conns[0].frames_received == 10,
               "the receiver counted 10 frames");
    axt_destroy(&a);
    axt_destroy(&b);
}

/* ---- the HTTP endpoint ----------------------------------------------------------- */

typedef struct flood {
    ax_ref_t dst;
    uint64_t n;                /* at least this many */
    _Atomic uint64_t sent;
    _Atomic uint64_t *handled; /* the receiver's count */
    _Atomic bool stop;         /* set when the HTTP checks are done */
} flood_t;

/* Messages flow until the HTTP checks are over and at least n were sent,
 * never more than 100,000 ahead of the receiver (memory stays bounded). */
static void *flood_main(void *arg)
{
    flood_t *f = arg;

    for (uint64_t i = 0; i < f->n || !atomic_load(&f->stop); i++) {
        ax_msg_t *m = NULL;

        while (i - atomic_load(f->handled) > 100000)
            axt_sleep_us(100);
        if (ax_msg_alloc(&ax_u64_type, &m) != AX_OK)
            break;
        ((ax_u64_msg_t *)m)->value = i;
        if (ax_tell(f->dst, &m, AX_REF_NULL) != AX_OK) {
            ax_msg_release(&m);
            break;
        }
        atomic_fetch_add(&f->sent, 1);
    }
    return NULL;
}

Test(metrics, endpoint_serves_under_load)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;
    _Atomic uint64_t n = 0;
    counting_args_t args = {&n, 0, NULL};
    flood_t flood = {.n = axt_scaled(1000000), .handled = &n};
    char addr[64];
    pthread_t th;
    ax_ref_t r;
    ax_system_stats_t st;
    uint64_t sent;

    ax_config_init(&cfg);
    cfg.threads = 2;
    cr_assert_eq(ax_metrics_start(NULL), AX_EINVAL);
    strcpy(cfg.metrics.listen, "127.0.0.1:0");
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_metrics_address(sys, addr, sizeof addr), AX_ESTATE);
    cr_assert_eq(ax_metrics_start(sys), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_metrics_start(sys), AX_ESTATE);
    cr_assert_eq(ax_metrics_address(sys, addr, sizeof addr), AX_OK);
    cr_assert(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0, "%s", addr);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &args, &r), AX_OK);
    flood.dst = r;
    cr_assert_eq(pthread_create(&th, NULL, flood_main, &flood), 0);
    cr_assert_eq(run_check("http", addr, NULL, NULL), 0, "HTTP checks failed");
    atomic_store(&flood.stop, true);
    pthread_join(th, NULL);
    sent = atomic_load(&flood.sent);
    cr_assert_geq(sent, flood.n);
    AXT_WAIT_COUNT(n, sent);
    /* The numbers add up: handled = sent. */
    WAIT_UNTIL(handled_is(sys, r.id, sent), "the actor's handled count reaches what was sent");
    ax_system_stats(sys, &st);
    cr_assert_geq(st.delivered, sent);
    cr_assert_eq(st.dead_letters, 0);
    axt_destroy(&sys);
}

Test(metrics, endpoint_bad_address_fails_clearly)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;

    ax_config_init(&cfg);
    cfg.threads = 1;
    strcpy(cfg.metrics.listen, "not an address");
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_metrics_start(sys), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "metrics.listen") != NULL, "%s", ax_error_detail());
    axt_destroy(&sys);
    /* Off by default: start does nothing. */
    sys = axt_system(1);
    cr_assert_eq(ax_metrics_start(sys), AX_OK);
    cr_assert_eq(ax_metrics_address(sys, (char[8]){0}, 8), AX_ESTATE);
    axt_destroy(&sys);
}

Test(metrics, config_keys_load_and_validate)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_str_eq(cfg.metrics.listen, "", "off by default");
    cr_assert_eq(cfg.metrics.top_n, 50);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { metrics = { listen = \"127.0.0.1:9464\"; "
                                             "top_n = 7; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_str_eq(cfg.metrics.listen, "127.0.0.1:9464");
    cr_assert_eq(cfg.metrics.top_n, 7);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { metrics = { top_n = 0; }; };"), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "top_n") != NULL, "%s", ax_error_detail());
    cr_assert_eq(cfg.metrics.top_n, 7, "a failed load changes nothing");
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { metrics = { port = 1; }; };"), AX_EINVAL);
}

/* A mailbox that grows shows up first in /actors?sort=mailbox. */
Test(metrics, endpoint_growing_mailbox_first)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;
    _Atomic uint64_t n_slow = 0, n_other = 0;
    counting_args_t slow = {&n_slow, 500, NULL}, other = {&n_other, 0, NULL};
    char addr[64];
    ax_ref_t s, o;

    ax_config_init(&cfg);
    cfg.threads = 2;
    strcpy(cfg.metrics.listen, "127.0.0.1:0");
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    cr_assert_eq(ax_metrics_start(sys), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_metrics_address(sys, addr, sizeof addr), AX_OK);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &slow, &s), AX_OK);
    cr_assert_eq(ax_register(sys, s, "slow"), AX_OK);
    cr_assert_eq(ax_spawn(sys, &counting_vtable, &other, &o), AX_OK);
    for (int i = 0; i < 20000; i++) {
        tell_u64(s, (uint64_t)i);
        tell_u64(o, (uint64_t)i);
    }
    cr_assert_eq(run_check("growing", addr, "slow", NULL), 0, "the slow actor never ranked first");
    ax_kill(s); /* its backlog goes to dead letters, not 10 s of spinning */
    axt_destroy(&sys);
}
