/*
 * network.tcp_congestion and network.tcp_congestion_loopback
 * (include/axon/config.h): the TCP congestion control a system sets on its
 * connections. Two systems in this process talk over loopback, so both
 * ends of their connection are sockets of this process: the test finds
 * them in /proc/self/fd by the listener's port and asks the kernel which
 * congestion control each uses. The cluster test (tests/cluster) checks
 * that connections between hosts keep the kernel's choice.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/tcp.h>

#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define SEQS 100u

/* The congestion control of a new loopback connection made with plain
 * sockets: what the kernel chooses here without Axon's say. */
static void kernel_choice(char *out, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa, len = (socklen_t)cap;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 1) == 0 &&
              getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    fd = nt_connect_port(ntohs(sa.sin_port));
    cr_assert(fd >= 0, "connect: %s", strerror(errno));
    memset(out, 0, cap);
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, out, &len), 0);
    close(fd);
    close(lfd);
}

/* A name the kernel offers that differs from `not`: reno and cubic are
 * built into Debian's kernels and allowed to every process. */
static const char *other_than(const char *not)
{
    return strcmp(not, "reno") != 0 ? "reno" : "cubic";
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/*
 * The congestion controls of this process's TCP sockets that have port at
 * one end, into names[]; returns how many there are.
 */
static size_t sockets_on_port(uint16_t port, char names[][16], size_t max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL) {
        struct sockaddr_storage mine, theirs;
        socklen_t ml = sizeof mine, tl = sizeof theirs, len = 16;
        int fd = atoi(e->d_name), type = 0;
        socklen_t tlen = sizeof type;

        if (e->d_name[0] == '.' || fd == dirfd(d) ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM ||
            getsockname(fd, (struct sockaddr *)&mine, &ml) != 0 ||
            (mine.ss_family != AF_INET && mine.ss_family != AF_INET6) ||
            getpeername(fd, (struct sockaddr *)&theirs, &tl) != 0)
            continue;
        if (port_of(&mine) != port && port_of(&theirs) != port)
            continue;
        cr_assert_lt(n, max);
        memset(names[n], 0, 16);
        cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, names[n], &len), 0);
        n++;
    }
    closedir(d);
    return n;
}

/*
 * Two systems with cfg, and SEQS messages from b to a sink on a, all
 * delivered in order; then every socket of their connection (the end b
 * opened and the end a accepted) must use `want`. kernel is what a plain
 * connection uses here, for the message.
 */
static void check_connection(const ax_config_t *cfg, const char *want, const char *kernel)
{
    ax_system_t *a = nt_start(cfg), *b;
    char names[8][16];
    nt_node_t sink; /* its actor uses it until a is destroyed */
    ax_ref_t to;
    size_t n;

    cr_assert_not_null(a, "%s", ax_error_detail());
    b = nt_start(cfg);
    cr_assert_not_null(b, "%s", ax_error_detail());
    to = nt_sink_on(a, b, &sink);
    for (uint64_t i = 0; i < SEQS; i++)
        cr_assert_eq(nt_send_seq(to, i), AX_OK, "send %llu: %s", (unsigned long long)i, ax_error_detail());
    WAIT_UNTIL(atomic_load(&sink.received) == SEQS, "%llu of %u delivered",
               (unsigned long long)atomic_load(&sink.received), SEQS);
    cr_assert_eq(atomic_load(&sink.out_of_order) + atomic_load(&sink.gaps) + atomic_load(&sink.bad), 0);
    n = sockets_on_port(nt_port(a), names, 8);
    cr_assert_eq(n, 2, "%zu sockets on a's port", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(names[i], want, "socket %zu uses %s, the kernel's choice is %s", i, names[i], kernel);
    ax_system_destroy(&b);
    ax_system_destroy(&a);
}

/* Set name (a field of cfg, of cap bytes) to a congestion control other
 * than the kernel's choice; then both ends of a connection must use it. */
static void check_other_name(ax_config_t *cfg, char *name, size_t cap)
{
    char kernel[16];
    const char *want;

    kernel_choice(kernel, sizeof kernel);
    want = other_than(kernel);
    snprintf(name, cap, "%s", want);
    check_connection(cfg, want, kernel);
}

/* tcp_congestion, and on its own tcp_congestion_loopback. */
Test(tcp_congestion, each_key_sets_its_name_on_both_ends_of_a_loopback_connection)
{
    ax_config_t all = nt_config(), loopback = nt_config();

    check_other_name(&all, all.network.tcp_congestion, sizeof all.network.tcp_congestion);
    check_other_name(&loopback, loopback.network.tcp_congestion_loopback,
                     sizeof loopback.network.tcp_congestion_loopback);
}

/* What a system does unless told: a connection that stays on this host,
 * over IPv4 or IPv6, does not pace. */
Test(tcp_congestion, loopback_connections_use_reno_by_default)
{
    char kernel[16];
    ax_config_t cfg = nt_config();

    cr_assert_str_eq(cfg.network.tcp_congestion, "", "the default");
    cr_assert_str_eq(cfg.network.tcp_congestion_loopback, "reno", "the default");
    kernel_choice(kernel, sizeof kernel);
    check_connection(&cfg, "reno", kernel);
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "[::1]:0");
    check_connection(&cfg, "reno", kernel);
}

/* network.tcp_congestion names every connection's, loopback or not. */
Test(tcp_congestion, tcp_congestion_wins_over_the_loopback_name)
{
    char kernel[16];
    ax_config_t cfg = nt_config();
    const char *want, *loopback;

    kernel_choice(kernel, sizeof kernel);
    want = other_than(kernel);
    loopback = other_than(want);
    snprintf(cfg.network.tcp_congestion, sizeof cfg.network.tcp_congestion, "%s", want);
    snprintf(cfg.network.tcp_congestion_loopback, sizeof cfg.network.tcp_congestion_loopback, "%s", loopback);
    check_connection(&cfg, want, kernel);
}

Test(tcp_congestion, both_empty_keep_the_kernels_choice)
{
    char kernel[16];
    ax_config_t cfg = nt_config();

    cfg.network.tcp_congestion_loopback[0] = '\0';
    kernel_choice(kernel, sizeof kernel);
    check_connection(&cfg, kernel, kernel);
}

/* A name the kernel lacks: ax_net_start refuses it, says which key and
 * name it was and what may be used, and leaves the system without a
 * network, so that the same call fails the same way again rather than with
 * AX_ESTATE. */
static void refused_at_start(ax_config_t *cfg, const char *key)
{
    ax_system_t *sys = NULL;
    char want[64];

    snprintf(want, sizeof want, "network.%s \"no-such-cc\"", key);
    cr_assert_eq(ax_system_create(cfg, &sys), AX_OK, "%s", ax_error_detail());
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(ax_net_start(sys), AX_EINVAL);
        cr_assert_not_null(strstr(ax_error_detail(), want), "%s", ax_error_detail());
        cr_assert_not_null(strstr(ax_error_detail(), "may use: "), "%s", ax_error_detail());
    }
    ax_system_destroy(&sys);
}

Test(tcp_congestion, an_unknown_name_is_refused_at_start)
{
    ax_config_t cfg = nt_config();

    snprintf(cfg.network.tcp_congestion, sizeof cfg.network.tcp_congestion, "no-such-cc");
    refused_at_start(&cfg, "tcp_congestion");
}

Test(tcp_congestion, an_unknown_loopback_name_is_refused_at_start)
{
    ax_config_t cfg = nt_config();

    snprintf(cfg.network.tcp_congestion_loopback, sizeof cfg.network.tcp_congestion_loopback, "no-such-cc");
    refused_at_start(&cfg, "tcp_congestion_loopback");
}
