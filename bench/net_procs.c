/*
 * bench_net_procs: bench_net's cases between two processes, as users
 * deploy them, against a bare TCP client/server pair measured in the same
 * run (bench_net itself runs both systems in one process).
 *
 * Processes: this program is the client and the coordinator. It starts
 * two servers by running its own executable again (/proc/self/exe) with a
 * role argument and the descriptor of the round trips' CPU record (below),
 * each with a pipe on stdin and stdout:
 *   --axon-server  one system (cfg.threads = 1 worker, its own network
 *                  thread), listening on 127.0.0.1:0, with four named
 *                  actors: pong_lazy, pong_eager, sink_lazy, sink_eager.
 *   --bare-server  a blocking TCP server, a thread for each connection.
 * Each server prints "port N" once it listens and ends when its stdin
 * reaches end of file (the client closes it, or dies). The client's own
 * system also has one worker and a network thread. Both servers live for
 * the whole run; the trials of each case interleave bare and Axon so that
 * drift in the machine's load hits them alike.
 *
 * Cases (definitions as in bench_net):
 *   pingpong    8-byte payload (a u64 message) client -> server -> client,
 *               one in flight. lazy: ax_tell to a remote ref (a fresh
 *               ax_u64_msg_new message per send; the dispatcher
 *               serialises); eager: ax_tell_serialised. The server's
 *               ponger decodes the u64 and answers value + 1 the same way.
 *               Bare: 8 bytes each way over blocking TCP_NODELAY sockets.
 *               Median and mean RTT in microseconds; cpu_us_per_rtt is
 *               the CPU (user + system) of both processes per round trip,
 *               warm-up included (getrusage for this one, /proc/PID/stat
 *               for the server). same_cpu_share: the share of round
 *               trips whose two ends ran on one CPU (see "where each end
 *               of a round trip ran" below), the median of the trials;
 *               trials_rtt_us_same_cpu lists each trial's median RTT and
 *               share in trial order.
 *   throughput  messages of 64 B, 1 KiB and 64 KiB from the client to the
 *               server's sink, at most WINDOW unacknowledged; the sink
 *               acks the first message and every ACK_EVERY-th (and the
 *               last) with a u64 sent the same way as the data, and
 *               decodes each message (zero copy, ax_bytes_view_type).
 *               lazy: a fresh ax_msg_alloc'd ax_bytes_type message per
 *               send, pointing at the payload (what a new user writes);
 *               lazy_pool: the same from a message pool (the tuned
 *               variant bench_net measures); eager: ax_tell_serialised.
 *               Timed from the first ack (the warm-up message has
 *               arrived) to the last. Bare: the client writes one frame,
 *               waits for a 1-byte ack, then writes the rest in frames of
 *               the same size into a blocking socket; the server reads
 *               them all and acks with one byte; timed from after the
 *               first ack to the second. Bare batched: the same bytes in
 *               writes of up to 256 KiB (what the socket carries; issue
 *               10's table compares small messages with that); its ratio
 *               is ratio_vs_bare_batched_bw. Bare copied: one write
 *               per frame, each frame first copied into a buffer the
 *               client reuses, which is the least an eager send must do
 *               (its caller keeps the message); its ratio is
 *               ratio_vs_bare_copied_bw. Bare persistent: the plain
 *               writes over one connection that the client keeps for
 *               every trial of the case, as Axon keeps its connection
 *               (the other kinds connect for each trial); its ratio is
 *               ratio_vs_bare_persistent_bw. The targets use the
 *               one-write-per-frame pair, as bench_net does. Each bare
 *               kind's cpu_ns_per_msg is both processes' CPU a message,
 *               as for Axon (this process's getrusage also counts the
 *               idle Axon client system's threads).
 *
 * Each case runs TRIALS times, the kinds' trials interleaved; medians are
 * reported, with ratios to the bare pair's median of the same run and the
 * targets of issue 10. A throughput line also lists each trial's
 * [msgs/s, CPU ns a message] in trial order.
 * One JSON object per line.
 *
 * Usage: [AXON_BENCH_CONFIG=text] [AXON_BENCH_PIN=1] bench_net_procs [scale [case [kind]]]
 *        scale 0.1 runs a tenth of every count; case is one of pingpong,
 *        64, 1024, 65536; kind (bare, lazy, eager, or for throughput
 *        lazy_pool) runs only that kind, for profiling (without bare, no
 *        ratio to it is printed). AXON_BENCH_PIN=1: the clients on CPU 0,
 *        the servers on CPU 1 (see pin_to); the config line says so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "axon/axon.h"

#define BENCH_NAME "bench_net_procs"
#include "bench.h"

#define TRIALS 5
#define WINDOW 1000
#define ACK_EVERY 100
/* Ping-pong round trips a trial: a warm-up, then the measured ones. The
 * warm-up outlasts the scheduler's first 40-60 ms after a pair has been
 * idle (while the other kinds ran), in which it keeps both ends on one CPU
 * (dispatch/NOTES.md, "Where each end of a round trip ran"): with 500, the
 * first 1,500-1,860 measured round trips of every lazy trial ran on one
 * CPU, and none of eager's, which follows lazy without a pause. */
#define PP_WARMUP 3000
#define PP_ROUNDS 10000
/* Issue 10's targets for the two-process mode. */
#define RTT_TARGET 1.5
#define MSGS_TARGET_64B 3e6
#define MBS_TARGET_1K 1000.0
#define BW_TARGET_64K 0.7

enum { LAZY, LAZY_POOL, EAGER, MODES };
static const char *const mode_name[MODES] = {"lazy", "lazy_pool", "eager"};

static _Noreturn void die_errno(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, strerror(errno));
    exit(1);
}

static double mean(const double *v, size_t n)
{
    double s = 0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s / (double)n;
}

/* ---- shared by both processes --------------------------------------------- */

/* Send a u64 to dst, lazily (a new message, by pointer) or eagerly. */
static ax_status_t send_u64(ax_actor_t *self, ax_ref_t dst, uint64_t v, bool eager)
{
    if (eager) {
        ax_u64_msg_t m = {.value = v};

        ax_msg_init(&m.hdr, &ax_u64_type);
        return ax_tell_serialised(self, dst, &ax_u64_type, &m.hdr);
    } else {
        ax_msg_t *m = NULL;
        ax_status_t st = ax_u64_msg_new(v, &m);

        if (st == AX_OK)
            st = ax_tell(dst, &m, ax_self(self));
        ax_msg_release(&m); /* NULL when sent */
        return st;
    }
}

static uint64_t read_u64(const ax_net_msg_t *nm)
{
    ax_msg_t *m = NULL;
    uint64_t v;

    BENCH_CHECK(ax_net_msg_deserialise(nm, &ax_u64_type, &m));
    v = ((ax_u64_msg_t *)m)->value;
    ax_msg_release(&m);
    return v;
}

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t k = write(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die_errno("write");
        p += k;
        n -= (size_t)k;
    }
}

/* false at end of stream before the first byte; dies on a short read. */
static bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t want = n;

    while (n > 0) {
        ssize_t k = read(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0 && n == want)
            return false;
        if (k <= 0)
            die_errno("read");
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- where each end of a round trip ran ------------------------------------- */

/* The scheduler now and then puts both ends of a ping-pong pair on one CPU,
 * where a round trip costs only the CPU it takes, and a run's ratio then
 * depends on which pair that happened to (dispatch/NOTES.md, "Where the
 * round trip's miss came from"). So each round trip records where its two
 * ends ran: the server writes the CPU it answered ping i on into byte i of
 * a memfd that the client made before starting it (its descriptor is the
 * server's third argument), and the client writes the CPU it read the
 * answer on into byte i of its own array. After a trial the client counts
 * the round trips whose two bytes agree. sched_getcpu reads the kernel's
 * rseq area here, a load rather than a system call, and each end reads it
 * once a round trip; the client reads it after its clock. */
static uint8_t *srv_cpu; /* shared with the servers; NULL in a server without it */
static uint8_t *cli_cpu;
static size_t cpu_len;
static int cpu_fd = -1;

static void note_cpu(uint8_t *where, uint64_t i)
{
    if (where != NULL && i < cpu_len)
        where[i] = (uint8_t)sched_getcpu(); /* -1 (no CPU) reads 255: a mismatch */
}

/* The client: a memfd of len bytes, inherited by the servers it starts. */
static void cpu_record_create(size_t len)
{
    cpu_fd = memfd_create("bench_net_procs_cpus", 0);
    if (cpu_fd < 0 || ftruncate(cpu_fd, (off_t)len) != 0)
        die_errno("memfd for the round trips' CPUs");
    srv_cpu = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, cpu_fd, 0);
    cli_cpu = malloc(len);
    if (srv_cpu == MAP_FAILED || cli_cpu == NULL)
        die_errno("mapping the round trips' CPUs");
    cpu_len = len;
}

/* A server: map the client's memfd, named by its third argument. */
static void cpu_record_open(const char *arg)
{
    struct stat st;
    char *end;
    long fd = arg != NULL ? strtol(arg, &end, 10) : -1;

    if (fd < 0 || *end != '\0' || fstat((int)fd, &st) != 0 || st.st_size <= 0)
        return; /* started by hand: no record */
    srv_cpu = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
    if (srv_cpu == MAP_FAILED)
        die_errno("server: mapping the round trips' CPUs");
    cpu_len = (size_t)st.st_size;
}

/* Before a trial: bytes that cannot agree. */
static void cpu_record_reset(void)
{
    memset(srv_cpu, 0xfe, cpu_len);
    memset(cli_cpu, 0xfd, cpu_len);
}

/* After a trial: the share of the measured round trips (warmup onwards)
 * whose two ends ran on one CPU. */
static double cpu_record_same(size_t warmup, size_t rounds)
{
    size_t same = 0;

    for (size_t i = warmup; i < warmup + rounds; i++)
        same += srv_cpu[i] == cli_cpu[i];
    return (double)same / (double)rounds;
}

/* ---- the Axon server ------------------------------------------------------- */

/* Decodes the ping and answers the sender with value + 1. */
typedef struct ponger {
    ax_actor_t actor;
    bool eager;
} ponger_t;

static ax_status_t ponger_init(ax_actor_t *self, void *arg)
{
    ((ponger_t *)self)->eager = arg != NULL;
    return AX_OK;
}

static ax_status_t ponger_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_ref_t from;
    uint64_t v = read_u64(*nm);

    note_cpu(srv_cpu, v);
    BENCH_CHECK(ax_net_msg_sender(self, *nm, &from));
    BENCH_CHECK(send_u64(self, from, v + 1, ((ponger_t *)self)->eager));
    return AX_OK;
}

static const ax_actor_vtable_t ponger_vtable = {
    .name = "ponger", .size = sizeof(ponger_t), .init = ponger_init,
    .receive_network = ponger_network,
};

/* Each payload starts with its run's id and message count (two u64s): a
 * new run id restarts the sink's count, so one sink serves every trial. */
typedef struct sink {
    ax_actor_t actor;
    bool eager;
    uint64_t run, total, received;
    ax_ref_t back; /* the source, from the run's first message */
} sink_t;

static ax_status_t sink_init(ax_actor_t *self, void *arg)
{
    ((sink_t *)self)->eager = arg != NULL;
    return AX_OK;
}

static ax_status_t sink_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    sink_t *k = (sink_t *)self;
    ax_msg_t *m = NULL;
    const ax_bytes_msg_t *b;
    uint64_t run, total;

    BENCH_CHECK(ax_net_msg_deserialise(*nm, &ax_bytes_view_type, &m));
    b = (const ax_bytes_msg_t *)m;
    if (b->len < 2 * sizeof(uint64_t))
        bench_die("sink: payload too short", AX_EPROTO);
    memcpy(&run, b->data, sizeof run);
    memcpy(&total, b->data + sizeof run, sizeof total);
    ax_msg_release(&m);
    if (run != k->run) {
        k->run = run;
        k->total = total;
        k->received = 0;
        BENCH_CHECK(ax_net_msg_sender(self, *nm, &k->back));
    }
    k->received++;
    if (k->received == 1 || k->received % ACK_EVERY == 0 || k->received == k->total)
        BENCH_CHECK(send_u64(self, k->back, k->received, k->eager));
    return AX_OK;
}

static const ax_actor_vtable_t sink_vtable = {
    .name = "sink", .size = sizeof(sink_t), .init = sink_init, .receive_network = sink_network,
};

/* Each system's configuration, the same in both processes. */
static void bench_config(ax_config_t *out)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 1;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "127.0.0.1:0");
    /* Variants for bench/net_rtt_profile.sh (both processes inherit it),
     * such as "axon = { spin_us = 0; network = { spin_us = 0; }; };". */
    if (getenv("AXON_BENCH_CONFIG") != NULL)
        BENCH_CHECK(ax_config_load_string(&cfg, getenv("AXON_BENCH_CONFIG")));
    /* AXON_BENCH_PATH_IDS=0 measures envelopes without path ids (both
     * processes inherit it); unset, the default offer. */
    if (getenv("AXON_BENCH_PATH_IDS") != NULL)
        cfg.network.path_ids = (uint32_t)strtoul(getenv("AXON_BENCH_PATH_IDS"), NULL, 10);
    *out = cfg;
}

static ax_system_t *make_system(void)
{
    ax_config_t cfg;
    ax_system_t *sys;

    bench_config(&cfg);
    BENCH_CHECK(ax_system_create(&cfg, &sys));
    BENCH_CHECK(ax_net_start(sys));
    return sys;
}

static void spawn_named(ax_system_t *sys, const ax_actor_vtable_t *vt, bool eager, const char *name)
{
    ax_ref_t ref;

    BENCH_CHECK(ax_spawn(sys, vt, eager ? (void *)1 : NULL, &ref));
    BENCH_CHECK(ax_register(sys, ref, name));
}

/* Block until stdin reaches end of file: the client is done (or gone). */
static void wait_stdin_eof(void)
{
    char c[64];

    for (;;) {
        ssize_t k = read(0, c, sizeof c);

        if (k == 0 || (k < 0 && errno != EINTR))
            return;
    }
}

static int run_axon_server(void)
{
    ax_system_t *sys = make_system();
    ax_addr_t addr;

    spawn_named(sys, &ponger_vtable, false, "pong_lazy");
    spawn_named(sys, &ponger_vtable, true, "pong_eager");
    spawn_named(sys, &sink_vtable, false, "sink_lazy");
    spawn_named(sys, &sink_vtable, true, "sink_eager");
    ax_system_address(sys, &addr);
    printf("port %u\n", (unsigned)addr.port);
    fflush(stdout);
    wait_stdin_eof();
    bench_system_end(&sys);
    return 0;
}

/* ---- the bare server --------------------------------------------------------- */

/* One request: 'P' rounds (echo value + 1, 8 bytes each way), or 'S'
 * frame count (read one frame, ack a byte, read count frames, ack a
 * byte). */
static void bare_serve_one(int fd, char op)
{
    static _Thread_local char buf[256 * 1024];
    uint64_t a, b;

    if (!read_all(fd, &a, sizeof a) || !read_all(fd, &b, sizeof b))
        die_errno("bare server: request");
    if (op == 'P') {
        nodelay(fd);
        for (uint64_t i = 0; i < a; i++) {
            uint64_t v;

            if (!read_all(fd, &v, sizeof v))
                die_errno("bare server: ping");
            note_cpu(srv_cpu, i);
            v++;
            write_all(fd, &v, sizeof v);
        }
    } else if (op == 'S') {
        uint64_t left = a; /* the warm-up frame */

        for (int phase = 0; phase < 2; phase++) {
            while (left > 0) {
                ssize_t k = read(fd, buf, left < sizeof buf ? left : sizeof buf);

                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    die_errno("bare server: stream");
                left -= (uint64_t)k;
            }
            write_all(fd, "k", 1);
            left = a * b;
        }
    } else {
        fprintf(stderr, "%s: bare server: unknown request '%c'\n", BENCH_NAME, op);
        exit(1);
    }
}

/* Requests until the client closes the connection. */
static void bare_serve(int fd)
{
    char op;

    while (read_all(fd, &op, 1))
        bare_serve_one(fd, op);
}

/* A thread for each connection: the persistent bare stream keeps its
 * connection open while the other kinds connect beside it. */
static void *bare_conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;

    bare_serve(fd);
    close(fd);
    return NULL;
}

static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        die_errno("bare server: listen");
    *port = ntohs(sa.sin_port);
    return fd;
}

static int run_bare_server(void)
{
    uint16_t port;
    int lfd = listen_loopback(&port);

    printf("port %u\n", (unsigned)port);
    fflush(stdout);
    for (;;) {
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
        pthread_t th;
        int fd;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("bare server: poll");
        }
        if (p[0].revents != 0) {
            char c;

            if (read(0, &c, 1) <= 0)
                break; /* the client is done */
        }
        if (p[1].revents == 0)
            continue;
        fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            die_errno("bare server: accept");
        if (pthread_create(&th, NULL, bare_conn_main, (void *)(intptr_t)fd) != 0)
            die_errno("bare server: pthread_create");
        pthread_detach(th);
    }
    close(lfd);
    return 0;
}

/* ---- starting the servers ------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int to;   /* its stdin: closing it ends the server */
    uint16_t port;
} server_t;

/* CPU seconds (user + system) of this process, from getrusage, and of a
 * server child, from /proc/PID/stat (clock ticks): for cpu_us_per_rtt. */
static double self_cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die_errno("getrusage");
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static double child_cpu_s(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        die_errno(path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime) follow the command name's ')'. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        bench_die("cannot read /proc/PID/stat", AX_EIO);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Both processes of a pair: this one and the server. */
static double pair_cpu_s(pid_t server)
{
    return self_cpu_s() + child_cpu_s(server);
}

/* AXON_BENCH_PIN=1 puts this process (the clients, bare and Axon) on CPU 0
 * and the servers on CPU 1: one core for each side, as on two hosts.
 * Unset, the kernel places the threads, as for a user (the targets). */
static bool pinned;

static void pin_to(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die_errno("AXON_BENCH_PIN: sched_setaffinity");
}

static server_t start_server(const char *role)
{
    int in[2], out[2];
    server_t s;
    FILE *f;
    unsigned port;

    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        die_errno("pipe");
    s.pid = fork();
    if (s.pid < 0)
        die_errno("fork");
    if (s.pid == 0) {
        char fd_arg[16];
        char *const argv[] = {(char *)BENCH_NAME, (char *)role, fd_arg, NULL};

        snprintf(fd_arg, sizeof fd_arg, "%d", cpu_fd);

        if (pinned)
            pin_to(1);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execv("/proc/self/exe", argv);
        die_errno("exec /proc/self/exe");
    }
    close(in[0]);
    close(out[1]);
    s.to = in[1];
    f = fdopen(out[0], "r");
    if (f == NULL || fscanf(f, "port %u", &port) != 1) {
        fprintf(stderr, "%s: %s did not report its port\n", BENCH_NAME, role);
        exit(1);
    }
    fclose(f);
    s.port = (uint16_t)port;
    return s;
}

static void stop_server(server_t *s, const char *role)
{
    int status;

    close(s->to);
    if (waitpid(s->pid, &status, 0) != s->pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: %s failed (status %d)\n", BENCH_NAME, role, status);
        exit(1);
    }
}

static int bare_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die_errno("bare connect");
    return fd;
}

static void bare_request(int fd, char op, uint64_t a, uint64_t b)
{
    char req[17];

    req[0] = op;
    memcpy(req + 1, &a, 8);
    memcpy(req + 9, &b, 8);
    write_all(fd, req, sizeof req);
}

/* ---- the client: bare ------------------------------------------------------------ */

static void bare_pingpong(uint16_t port, size_t warmup, size_t rounds, double *rtt)
{
    int fd = bare_connect(port);

    nodelay(fd);
    bare_request(fd, 'P', warmup + rounds, 0);
    for (size_t i = 0; i < warmup + rounds; i++) {
        uint64_t v = i;
        double t0 = bench_now_s();

        write_all(fd, &v, sizeof v);
        if (!read_all(fd, &v, sizeof v) || v != i + 1)
            bench_die("bare pong", AX_EPROTO);
        if (i >= warmup)
            rtt[i - warmup] = bench_now_s() - t0;
        note_cpu(cli_cpu, i);
    }
    close(fd);
}

/* How the bare client writes a stream: one write() per frame; the same
 * bytes in writes of up to 256 KiB; or one write per frame, each frame
 * first copied into a buffer the client reuses. */
typedef enum { BARE_PLAIN, BARE_BATCHED, BARE_COPIED, BARE_KINDS } bare_kind_t;

/* Seconds to move count frames of `frame` bytes over fd, after one
 * warm-up frame. */
static double bare_stream(int fd, size_t frame, size_t count, const uint8_t *payload, bare_kind_t kind)
{
    static uint8_t big[256 * 1024];
    char ack;
    double t0;

    if (kind == BARE_BATCHED)
        for (size_t off = 0; off + frame <= sizeof big; off += frame)
            memcpy(big + off, payload, frame);
    bare_request(fd, 'S', frame, count);
    write_all(fd, payload, frame);
    if (!read_all(fd, &ack, 1))
        bench_die("bare stream: warm-up ack", AX_EPROTO);
    t0 = bench_now_s();
    if (kind == BARE_BATCHED) {
        size_t per = sizeof big / frame, left = count;

        while (left > 0) {
            size_t k = left < per ? left : per;

            write_all(fd, big, k * frame);
            left -= k;
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            if (kind == BARE_COPIED) {
                memcpy(big, payload, frame);
                write_all(fd, big, frame);
            } else {
                write_all(fd, payload, frame);
            }
        }
    }
    if (!read_all(fd, &ack, 1))
        bench_die("bare stream: ack", AX_EPROTO);
    return bench_now_s() - t0;
}

/* bare_stream over fd, adding both processes' CPU seconds to *cpu. */
static double bare_stream_cpu(const server_t *srv, int fd, size_t frame, size_t count,
                              const uint8_t *payload, bare_kind_t kind, double *cpu)
{
    double c0 = pair_cpu_s(srv->pid);
    double secs = bare_stream(fd, frame, count, payload, kind);

    *cpu += pair_cpu_s(srv->pid) - c0;
    return secs;
}

/* ---- the client: Axon ping-pong --------------------------------------------------- */

static ax_system_t *client_sys;
static uint16_t axon_port;

/* A ref, in the client's system, to the server's actor `name`. */
static ax_ref_t server_ref(const char *name)
{
    char text[128];
    ax_path_t path;
    ax_ref_t out;

    snprintf(text, sizeof text, "tcp://127.0.0.1:%u/%s", (unsigned)axon_port, name);
    BENCH_CHECK(ax_path_parse(text, &path));
    BENCH_CHECK(ax_ref_from_path(client_sys, &path, &out));
    return out;
}

typedef struct pp_args {
    bool eager;
    ax_ref_t peer;
    size_t warmup, rounds;
    double *rtt;
    sem_t done;  /* the last pong is in */
    sem_t ended; /* the pinger no longer touches these args */
} pp_args_t;

typedef struct pinger {
    ax_actor_t actor;
    pp_args_t *a;
    size_t n;
    double t_sent;
} pinger_t;

static ax_status_t pinger_init(ax_actor_t *self, void *arg)
{
    ((pinger_t *)self)->a = arg;
    return AX_OK;
}

static void ping(pinger_t *p)
{
    p->t_sent = bench_now_s();
    BENCH_CHECK(send_u64(&p->actor, p->a->peer, p->n, p->a->eager));
}

static void pinger_start(ax_actor_t *self)
{
    ping((pinger_t *)self);
}

static ax_status_t pinger_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    pinger_t *p = (pinger_t *)self;
    double t = bench_now_s();

    if (read_u64(*nm) != p->n + 1)
        bench_die("pong out of order", AX_EPROTO);
    if (p->n >= p->a->warmup)
        p->a->rtt[p->n - p->a->warmup] = t - p->t_sent;
    note_cpu(cli_cpu, p->n);
    if (++p->n == p->a->warmup + p->a->rounds)
        sem_post(&p->a->done);
    else
        ping(p);
    return AX_OK;
}

static void pinger_destroy(ax_actor_t *self)
{
    sem_post(&((pinger_t *)self)->a->ended);
}

static const ax_actor_vtable_t pinger_vtable = {
    .name = "pinger", .size = sizeof(pinger_t), .init = pinger_init,
    .on_start = pinger_start, .receive_network = pinger_network, .destroy = pinger_destroy,
};

static void axon_pingpong(bool eager, size_t warmup, size_t rounds, double *rtt)
{
    pp_args_t a = {.eager = eager, .warmup = warmup, .rounds = rounds, .rtt = rtt};
    ax_ref_t pinger;

    sem_init(&a.done, 0, 0);
    sem_init(&a.ended, 0, 0);
    a.peer = server_ref(eager ? "pong_eager" : "pong_lazy");
    BENCH_CHECK(ax_spawn(client_sys, &pinger_vtable, &a, &pinger));
    bench_wait(&a.done, "last pong");
    ax_stop(pinger);
    bench_wait(&a.ended, "end of the pinger");
    sem_destroy(&a.done);
    sem_destroy(&a.ended);
}

/* ---- the client: Axon throughput ---------------------------------------------------- */

typedef struct tp_args {
    int mode;
    size_t size, total; /* payload bytes; messages, the first one the warm-up */
    ax_ref_t sink;
    const uint8_t *payload; /* starts with run id and total */
    ax_msg_pool_t *pool;    /* lazy_pool */
    double t_start, t_end;
    uint64_t enobufs;
    sem_t done, ended;
} tp_args_t;

typedef struct source {
    ax_actor_t actor;
    tp_args_t *a;
    size_t sent, acked;
    bool retry_queued;
} source_t;

static const ax_msg_type_t retry_type = {.name = "bench.retry", .size = sizeof(ax_msg_t)};

static ax_status_t source_init(ax_actor_t *self, void *arg)
{
    ((source_t *)self)->a = arg;
    return AX_OK;
}

static ax_status_t send_payload(source_t *s)
{
    tp_args_t *a = s->a;
    ax_msg_t *m = NULL;
    ax_bytes_msg_t *b;
    ax_status_t st;

    if (a->mode == EAGER) {
        ax_bytes_msg_t e = {.data = a->payload, .len = a->size};

        ax_msg_init(&e.hdr, &ax_bytes_type);
        return ax_tell_serialised(&s->actor, a->sink, &ax_bytes_type, &e.hdr);
    }
    st = a->mode == LAZY ? ax_msg_alloc(&ax_bytes_type, &m) : ax_msg_get(a->pool, AX_ALWAYS, &m);
    if (st != AX_OK)
        return st;
    b = (ax_bytes_msg_t *)m;
    b->data = a->payload; /* not copied: the payload outlives the run */
    b->len = a->size;
    st = ax_tell(a->sink, &m, ax_self(&s->actor));
    if (a->mode == LAZY)
        ax_msg_release(&m); /* NULL when sent */
    else
        ax_msg_put(a->pool, &m);
    return st;
}

static void fill(source_t *s)
{
    tp_args_t *a = s->a;
    size_t limit = s->acked == 0 ? 1 : a->total;

    while (s->sent < limit && s->sent - s->acked < WINDOW) {
        ax_status_t st = send_payload(s);

        if (st == AX_ENOBUFS) {
            /* The eager pool is full until the network thread has written
             * what is queued: retry after the next ack, or soon if none is due. */
            a->enobufs++;
            if (s->sent == s->acked && !s->retry_queued) {
                ax_msg_t *r = NULL;

                if (ax_msg_alloc(&retry_type, &r) == AX_OK &&
                    ax_tell(ax_self(&s->actor), &r, ax_self(&s->actor)) == AX_OK)
                    s->retry_queued = true;
                ax_msg_release(&r);
            }
            return;
        }
        if (st != AX_OK)
            bench_die("send", st);
        s->sent++;
    }
}

static void source_start(ax_actor_t *self)
{
    fill((source_t *)self);
}

static ax_status_t source_local(ax_actor_t *self, ax_msg_t **msg)
{
    (void)msg; /* the retry tick */
    ((source_t *)self)->retry_queued = false;
    fill((source_t *)self);
    return AX_OK;
}

static ax_status_t source_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    source_t *s = (source_t *)self;
    uint64_t n = read_u64(*nm);

    if (s->acked == 0)
        s->a->t_start = bench_now_s();
    if (n > s->acked)
        s->acked = n;
    if (s->acked == s->a->total) {
        s->a->t_end = bench_now_s();
        sem_post(&s->a->done);
    } else {
        fill(s);
    }
    return AX_OK;
}

static void source_destroy(ax_actor_t *self)
{
    sem_post(&((source_t *)self)->a->ended);
}

static const ax_actor_vtable_t source_vtable = {
    .name = "source", .size = sizeof(source_t), .init = source_init, .on_start = source_start,
    .receive_local = source_local, .receive_network = source_network, .destroy = source_destroy,
};

/* The client's dead letters so far. */
static uint64_t client_dead_letters(void)
{
    ax_net_stats_t st;

    BENCH_CHECK(ax_net_stats(client_sys, &st));
    return st.dead_lettered;
}

/*
 * Wait for the flood's last ack. A message that went to dead letters (a
 * network pool too small for the window, say) never gets one: say so and
 * end, rather than wait for good. Any other loss ends the wait after
 * bench_wait's limit.
 */
static void wait_last_ack(sem_t *done, uint64_t dead0)
{
    double limit = bench_wait_limit_s();

    for (double waited = 0; waited < limit;) {
        struct timespec until;
        uint64_t dead;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        if (sem_clockwait(done, CLOCK_MONOTONIC, &until) == 0)
            return;
        if (errno == ETIMEDOUT)
            waited += 1;
        else if (errno != EINTR)
            die_errno("sem_clockwait");
        dead = client_dead_letters();
        if (dead > dead0) {
            fprintf(stderr,
                    "%s: %llu messages of the flood went to dead letters, so their acks will never "
                    "come (is network.buffer_config too small for a window of %d?)\n",
                    BENCH_NAME, (unsigned long long)(dead - dead0), WINDOW);
            exit(1);
        }
    }
    fprintf(stderr, "%s: no last ack of the flood after %.0f s, and no dead letter: a message was "
            "lost or the run stalled\n", BENCH_NAME, limit);
    exit(1);
}

typedef struct tp_result {
    double seconds; /* for total - 1 messages, after the warm-up */
    uint64_t enobufs;
} tp_result_t;

static tp_result_t axon_throughput(int mode, size_t size, size_t total, uint8_t *payload, uint64_t run)
{
    tp_args_t a = {.mode = mode, .size = size, .total = total, .payload = payload};
    ax_msg_pool_options_t po = {.initial = 2 * WINDOW, .max = 4 * WINDOW};
    uint64_t t64 = total, dead0 = client_dead_letters();
    ax_ref_t source;

    memcpy(payload, &run, sizeof run);
    memcpy(payload + sizeof run, &t64, sizeof t64);
    sem_init(&a.done, 0, 0);
    sem_init(&a.ended, 0, 0);
    if (mode == LAZY_POOL)
        BENCH_CHECK(ax_msg_pool_create(&ax_bytes_type, &po, &a.pool));
    a.sink = server_ref(mode == EAGER ? "sink_eager" : "sink_lazy");
    BENCH_CHECK(ax_spawn(client_sys, &source_vtable, &a, &source));
    wait_last_ack(&a.done, dead0);
    ax_stop(source);
    bench_wait(&a.ended, "end of the source");
    /* Every message was acked, so the dispatcher has released them all. */
    ax_msg_pool_destroy(&a.pool);
    sem_destroy(&a.done);
    sem_destroy(&a.ended);
    return (tp_result_t){a.t_end - a.t_start, a.enobufs};
}

/* ---- output --------------------------------------------------------------------------- */

/* fd's TCP congestion control into cc (cap bytes, safe inside a JSON
 * string); false, with cc empty, when it cannot be read. */
static bool congestion_of(int fd, char *cc, size_t cap)
{
    socklen_t len = (socklen_t)cap - 1;

    memset(cc, 0, cap);
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) != 0)
        cc[0] = '\0';
    cc[strcspn(cc, "\n\"\\")] = '\0';
    return cc[0] != '\0';
}

/* The congestion control of a loopback connection: with bbr, TCP paces
 * each socket with a timer of its own, which moves the 64 KiB results
 * more than anything in Axon does (dispatch/NOTES.md, "Two more
 * baselines, and what BBR does to a long-lived loopback connection").
 * Read from a connection of its own, so that a route's congctl, which
 * overrides the system's default, shows (docs/guide.md, "Two systems"). */
static const char *tcp_congestion(void)
{
    static char cc[32];
    uint16_t port;
    int lfd, fd;

    if (cc[0] != '\0')
        return cc;
    lfd = listen_loopback(&port);
    fd = bare_connect(port);
    if (!congestion_of(fd, cc, sizeof cc))
        snprintf(cc, sizeof cc, "unknown");
    close(fd);
    close(lfd);
    return cc;
}

/* What Axon's connection uses, read from the client's own socket to the
 * Axon server (the kernel's, network.tcp_congestion_loopback's reno by
 * default, or what AXON_BENCH_CONFIG names); "?" before it connects. */
static const char *axon_congestion(void)
{
    static char cc[16];
    DIR *d;
    struct dirent *e;

    if (cc[0] != '\0' || (d = opendir("/proc/self/fd")) == NULL)
        return cc[0] != '\0' ? cc : "?";
    while (cc[0] == '\0' && (e = readdir(d)) != NULL) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = atoi(e->d_name);

        if (e->d_name[0] != '.' && fd != dirfd(d) && getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 &&
            peer.sin_family == AF_INET && ntohs(peer.sin_port) == axon_port)
            congestion_of(fd, cc, sizeof cc);
    }
    closedir(d);
    return cc[0] != '\0' ? cc : "?";
}

/* tcp_congestion_control is what the bare kinds use, axon_tcp_congestion
 * what Axon's connections use. axon_io_uring: whether the client's
 * network thread has read through io_uring so far (network.io_uring, and
 * a kernel that allows it). */
static void print_config(void)
{
    ax_net_stats_t st;
    bool ring = client_sys != NULL && ax_net_stats(client_sys, &st) == AX_OK && st.ring_reads > 0;

    printf("\"config\":{\"systems\":2,\"processes\":2,\"threads_per_system\":1,"
           "\"network_threads_per_system\":1,\"cpus\":%ld,\"transport\":\"tcp 127.0.0.1\","
           "\"tcp_congestion_control\":\"%s\",\"axon_tcp_congestion\":\"%s\",\"axon_io_uring\":%s,"
           "\"trials\":%d,\"pinned\":%s}",
           sysconf(_SC_NPROCESSORS_ONLN), tcp_congestion(), axon_congestion(), ring ? "true" : "false", TRIALS,
           pinned ? "true" : "false");
}

/* Which kind to run: NULL for all, else "bare", "lazy", "eager" or (for
 * throughput) "lazy_pool" (bench/net_rtt_profile.sh profiles one kind at
 * a time). */
static const char *kind_only;

static bool kind_wanted(const char *kind)
{
    return kind_only == NULL || strcmp(kind_only, kind) == 0;
}

/* The median of a kind's TRIALS trials, leaving them in trial order. */
static double trials_median(const double *v)
{
    double c[TRIALS];

    memcpy(c, v, sizeof c);
    return bench_median(c, TRIALS);
}

/* Each trial's median round trip and its share of round trips with both
 * ends on one CPU, in trial order: "trials_rtt_us_same_cpu":[[µs, share], ...]. */
static void print_trials_rtt(const double *med, const double *same)
{
    printf("\"trials_rtt_us_same_cpu\":[");
    for (int t = 0; t < TRIALS; t++)
        printf("%s[%.2f,%.3f]", t ? "," : "", med[t] * 1e6, same[t]);
    printf("],");
}

static void run_pingpong(const server_t *bare, const server_t *axon)
{
    size_t warmup = bench_scaled(PP_WARMUP), rounds = bench_scaled(PP_ROUNDS);
    double *rtt = malloc(rounds * sizeof(*rtt));
    double bare_med[TRIALS], bare_mean[TRIALS], med[2][TRIALS], avg[2][TRIALS];
    double bare_same[TRIALS], same[2][TRIALS], bs;
    double bm, ba, cpu[3] = {0, 0, 0}, c0, trips = (double)TRIALS * (double)(warmup + rounds);

    if (rtt == NULL)
        bench_die("malloc", AX_ENOMEM);
    memset(bare_med, 0, sizeof bare_med);
    memset(bare_mean, 0, sizeof bare_mean);
    memset(med, 0, sizeof med);
    memset(avg, 0, sizeof avg);
    memset(bare_same, 0, sizeof bare_same);
    memset(same, 0, sizeof same);
    for (int t = 0; t < TRIALS; t++) {
        if (kind_wanted("bare")) {
            cpu_record_reset();
            c0 = pair_cpu_s(bare->pid);
            bare_pingpong(bare->port, warmup, rounds, rtt);
            cpu[2] += pair_cpu_s(bare->pid) - c0;
            bare_mean[t] = mean(rtt, rounds);
            bare_med[t] = bench_median(rtt, rounds);
            bare_same[t] = cpu_record_same(warmup, rounds);
        }
        for (int e = 0; e < 2; e++) {
            if (!kind_wanted(e ? "eager" : "lazy"))
                continue;
            cpu_record_reset();
            c0 = pair_cpu_s(axon->pid);
            axon_pingpong(e == 1, warmup, rounds, rtt);
            cpu[e] += pair_cpu_s(axon->pid) - c0;
            avg[e][t] = mean(rtt, rounds);
            med[e][t] = bench_median(rtt, rounds);
            same[e][t] = cpu_record_same(warmup, rounds);
        }
    }
    bm = trials_median(bare_med);
    ba = trials_median(bare_mean);
    bs = trials_median(bare_same);
    if (kind_wanted("bare")) {
        printf("{\"bench\":\"net_procs\",\"case\":\"pingpong_bare_tcp\",\"payload_bytes\":8,"
               "\"round_trips\":%zu,\"median_rtt_us\":%.2f,\"mean_rtt_us\":%.2f,\"cpu_us_per_rtt\":%.1f,"
               "\"same_cpu_share\":%.3f,",
               rounds, bm * 1e6, ba * 1e6, cpu[2] / trips * 1e6, bs);
        print_trials_rtt(bare_med, bare_same);
        print_config();
        printf("}\n");
    }
    for (int e = 0; e < 2; e++) {
        double m = trials_median(med[e]), a = trials_median(avg[e]);

        if (!kind_wanted(e ? "eager" : "lazy"))
            continue;

        printf("{\"bench\":\"net_procs\",\"case\":\"pingpong\",\"mode\":\"%s\",\"payload_bytes\":8,"
               "\"round_trips\":%zu,\"median_rtt_us\":%.2f,\"mean_rtt_us\":%.2f,\"cpu_us_per_rtt\":%.1f,"
               "\"same_cpu_share\":%.3f,",
               e ? "eager" : "lazy", rounds, m * 1e6, a * 1e6, cpu[e] / trips * 1e6, trials_median(same[e]));
        print_trials_rtt(med[e], same[e]);
        if (kind_wanted("bare"))
            printf("\"bare_median_rtt_us\":%.2f,\"bare_mean_rtt_us\":%.2f,\"ratio_median\":%.3f,"
                   "\"ratio_mean\":%.3f,\"target_ratio\":%.1f,\"target_met\":%s,"
                   "\"bare_cpu_us_per_rtt\":%.1f,\"bare_same_cpu_share\":%.3f,",
                   bm * 1e6, ba * 1e6, m / bm, a / ba, RTT_TARGET, m / bm <= RTT_TARGET ? "true" : "false",
                   cpu[2] / trips * 1e6, bs);
        print_config();
        printf("}\n");
    }
    free(rtt);
}

static void run_throughput(const server_t *axon, const server_t *bare_srv, size_t size, size_t total,
                           uint8_t *payload)
{
    static uint64_t run;
    double bare[BARE_KINDS][TRIALS], bare_s[BARE_KINDS], secs[MODES][TRIALS], cpu[MODES] = {0}, c0;
    double bare_cpu[BARE_KINDS] = {0}; /* seconds, all trials */
    double persist[TRIALS], persist_s, persist_cpu = 0;
    int persist_fd = kind_wanted("bare") ? bare_connect(bare_srv->port) : -1;
    double cpu_t[MODES][TRIALS]; /* each trial's CPU, seconds */
    uint64_t enobufs[MODES] = {0};
    double bare_mbs, n = (double)(total - 1);
    /* A bare kind's CPU seconds over all trials, times this: ns a message. */
    double ns_per_msg = 1e9 / ((double)TRIALS * n);

    /* Each bare kind runs just before one Axon kind: with the bare kinds
     * back to back, half a second could pass with no Axon frame moving,
     * and the network thread's idle trim (dispatch/netthread.c) would give
     * back the chunk memory that the next eager trial then faults in
     * again. A first trial shows that cost. */
    _Static_assert((int)BARE_KINDS == (int)MODES, "one bare kind before each Axon kind");
    for (int t = 0; t < TRIALS; t++) {
        for (int e = 0; e < MODES; e++) {
            tp_result_t r;

            if (kind_wanted("bare")) {
                int fd = bare_connect(bare_srv->port);

                bare[e][t] = bare_stream_cpu(bare_srv, fd, size, total - 1, payload, (bare_kind_t)e,
                                             &bare_cpu[e]);
                close(fd);
                /* The same writes as BARE_PLAIN over one connection kept
                 * for every trial of the case, as Axon's is. */
                if (e == BARE_PLAIN)
                    persist[t] = bare_stream_cpu(bare_srv, persist_fd, size, total - 1, payload,
                                                 BARE_PLAIN, &persist_cpu);
            } else {
                bare[e][t] = persist[t] = 1;
            }

            c0 = pair_cpu_s(axon->pid);
            r = kind_wanted(mode_name[e]) ? axon_throughput(e, size, total, payload, ++run) : (tp_result_t){1, 0};
            cpu_t[e][t] = pair_cpu_s(axon->pid) - c0;
            cpu[e] += cpu_t[e][t];

            secs[e][t] = r.seconds;
            enobufs[e] += r.enobufs;
        }
    }
    if (persist_fd >= 0)
        close(persist_fd);
    for (int k = 0; k < BARE_KINDS; k++)
        bare_s[k] = bench_median(bare[k], TRIALS);
    persist_s = bench_median(persist, TRIALS);
    bare_mbs = (double)size * n / bare_s[BARE_PLAIN] / 1e6;
    /* With a kind filter, only what was measured is printed. */
    if (kind_wanted("bare")) {
        printf("{\"bench\":\"net_procs\",\"case\":\"throughput_bare_tcp\",\"payload_bytes\":%zu,"
               "\"messages\":%zu,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f,"
               "\"batched_msgs_per_s\":%.0f,\"batched_mb_per_s\":%.1f,"
               "\"copied_msgs_per_s\":%.0f,\"copied_mb_per_s\":%.1f,"
               "\"persistent_msgs_per_s\":%.0f,\"persistent_mb_per_s\":%.1f,"
               "\"cpu_ns_per_msg\":%.0f,\"batched_cpu_ns_per_msg\":%.0f,\"copied_cpu_ns_per_msg\":%.0f,"
               "\"persistent_cpu_ns_per_msg\":%.0f,",
               size, total - 1, n / bare_s[BARE_PLAIN], bare_mbs, n / bare_s[BARE_BATCHED],
               (double)size * n / bare_s[BARE_BATCHED] / 1e6, n / bare_s[BARE_COPIED],
               (double)size * n / bare_s[BARE_COPIED] / 1e6, n / persist_s,
               (double)size * n / persist_s / 1e6, bare_cpu[BARE_PLAIN] * ns_per_msg,
               bare_cpu[BARE_BATCHED] * ns_per_msg, bare_cpu[BARE_COPIED] * ns_per_msg,
               persist_cpu * ns_per_msg);
        print_config();
        printf("}\n");
    }
    for (int e = 0; e < MODES; e++) {
        char by_trial[TRIALS * 48] = "";
        double s, msgs, mbs;

        if (!kind_wanted(mode_name[e]))
            continue;
        /* Each trial's rate and CPU in trial order (the trials of the
         * kinds interleave): a kind that is slower in every trial differs
         * from one whose median met a slow stretch. Before the median,
         * which sorts secs[e]. */
        for (int t = 0; t < TRIALS; t++)
            snprintf(by_trial + strlen(by_trial), sizeof by_trial - strlen(by_trial), "%s[%.0f,%.0f]",
                     t == 0 ? "" : ",", n / secs[e][t], cpu_t[e][t] / (double)total * 1e9);
        s = bench_median(secs[e], TRIALS);
        msgs = n / s;
        mbs = (double)size * n / s / 1e6;
        printf("{\"bench\":\"net_procs\",\"case\":\"throughput\",\"mode\":\"%s\",\"payload_bytes\":%zu,"
               "\"messages\":%zu,\"window\":%d,\"ack_every\":%d,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f,"
               "\"trials_msgs_per_s_cpu_ns\":[%s],",
               mode_name[e], size, total - 1, WINDOW, ACK_EVERY, msgs, mbs, by_trial);
        if (kind_wanted("bare"))
            printf("\"bare_msgs_per_s\":%.0f,\"bare_mb_per_s\":%.1f,\"ratio_vs_bare_bw\":%.3f,"
                   "\"ratio_vs_bare_batched_bw\":%.3f,\"ratio_vs_bare_copied_bw\":%.3f,"
                   "\"ratio_vs_bare_persistent_bw\":%.3f,",
                   n / bare_s[BARE_PLAIN], bare_mbs, mbs / bare_mbs, bare_s[BARE_BATCHED] / s,
                   bare_s[BARE_COPIED] / s, persist_s / s);
        if (size == 64)
            printf("\"target_msgs_per_s\":%.0f,\"target_met\":%s,", MSGS_TARGET_64B,
                   msgs >= MSGS_TARGET_64B ? "true" : "false");
        if (size == 1024)
            printf("\"target_mb_per_s\":%.0f,\"target_met\":%s,", MBS_TARGET_1K,
                   mbs >= MBS_TARGET_1K ? "true" : "false");
        if (size == 65536 && kind_wanted("bare"))
            printf("\"target_ratio_vs_bare_bw\":%.2f,\"target_met\":%s,", BW_TARGET_64K,
                   mbs / bare_mbs >= BW_TARGET_64K ? "true" : "false");
        /* Both processes' CPU (user + system) per message, all trials. */
        printf("\"enobufs_retries\":%llu,\"cpu_ns_per_msg\":%.0f,", (unsigned long long)enobufs[e],
               cpu[e] / ((double)TRIALS * (double)total) * 1e9);
        print_config();
        printf("}\n");
    }
}

int main(int argc, char **argv)
{
    static uint8_t payload[65536];
    const char *only;
    server_t axon, bare;

    if (argc > 1 && strcmp(argv[1], "--axon-server") == 0) {
        cpu_record_open(argc > 2 ? argv[2] : NULL);
        return run_axon_server();
    }
    if (argc > 1 && strcmp(argv[1], "--bare-server") == 0) {
        cpu_record_open(argc > 2 ? argv[2] : NULL);
        return run_bare_server();
    }
    only = argc > 2 ? argv[2] : NULL;
    kind_only = argc > 3 ? argv[3] : NULL;
    bench_set_scale(argc > 1 ? argv[1] : NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(payload, 0x5a, sizeof payload);

    pinned = getenv("AXON_BENCH_PIN") != NULL && strcmp(getenv("AXON_BENCH_PIN"), "1") == 0;
    cpu_record_create(bench_scaled(PP_WARMUP) + bench_scaled(PP_ROUNDS));
    axon = start_server("--axon-server");
    bare = start_server("--bare-server");
    if (pinned)
        pin_to(0); /* before make_system: its threads inherit the mask */
    axon_port = axon.port;
    client_sys = make_system();

    if (only == NULL || strcmp(only, "pingpong") == 0)
        run_pingpong(&bare, &axon);
    fflush(stdout);
    /* 64 B: a million messages, so that an Axon trial lasts about as long
     * as the bare one (0.2-0.4 s against 0.5-1.7 s). With 300,000 (under
     * 0.1 s) the first 40 ms of each trial were a third of it: the trial
     * follows the bare pair's, the Axon processes having waited idle, and
     * the kernel's wake-ups on loopback pull the server's network thread
     * onto the client's CPU until its load is seen again (pinning the two
     * processes to different CPUs removed the difference;
     * dispatch/NOTES.md, "A stream's first 40 ms"). */
    if (only == NULL || strcmp(only, "64") == 0)
        run_throughput(&axon, &bare, 64, bench_scaled(1000000), payload);
    fflush(stdout);
    if (only == NULL || strcmp(only, "1024") == 0)
        run_throughput(&axon, &bare, 1024, bench_scaled(200000), payload);
    fflush(stdout);
    if (only == NULL || strcmp(only, "65536") == 0)
        run_throughput(&axon, &bare, 65536, bench_scaled(10000), payload);
    fflush(stdout);

    bench_system_end(&client_sys);
    stop_server(&axon, "axon server");
    stop_server(&bare, "bare server");
    return 0;
}
