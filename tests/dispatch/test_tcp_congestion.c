/*
 * network.tcp_congestion (include/axon/config.h): the TCP congestion
 * control a system sets on its connections. Two systems in this process
 * talk over loopback, so both ends of their connection are sockets of this
 * process: the test finds them in /proc/self/fd by the listener's port and
 * asks the kernel which congestion control each uses.
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
            getsockname(fd, (struct sockaddr *)&mine, &ml) != 0 || mine.ss_family != AF_INET ||
            getpeername(fd, (struct sockaddr *)&theirs, &tl) != 0)
            continue;
        if (ntohs(((struct sockaddr_in *)&mine)->sin_port) != port &&
            ntohs(((struct sockaddr_in *)&theirs)->sin_port) != port)
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

Test(tcp_congestion, the_name_is_set_on_both_ends_of_a_connection)
{
    char kernel[16];
    ax_config_t cfg = nt_config();
    const char *want;

    kernel_choice(kernel, sizeof kernel);
    want = other_than(kernel);
    snprintf(cfg.network.tcp_congestion, sizeof cfg.network.tcp_congestion, "%s", want);
    check_connection(&cfg, want, kernel);
}

Test(tcp_congestion, empty_keeps_the_kernels_choice)
{
    char kernel[16];
    ax_config_t cfg = nt_config();

    cr_assert_str_eq(cfg.network.tcp_congestion, "", "the default");
    kernel_choice(kernel, sizeof kernel);
    check_connection(&cfg, kernel, kernel);
}

/* A name the kernel lacks: ax_net_start refuses it, says what it was and
 * what may be used, and leaves the system without a network, so that the
 * same call fails the same way again rather than with AX_ESTATE. */
Test(tcp_congestion, an_unknown_name_is_refused_at_start)
{
    ax_config_t cfg = nt_config();
    ax_system_t *sys = NULL;

    snprintf(cfg.network.tcp_congestion, sizeof cfg.network.tcp_congestion, "no-such-cc");
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK, "%s", ax_error_detail());
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(ax_net_start(sys), AX_EINVAL);
        cr_assert_not_null(strstr(ax_error_detail(), "network.tcp_congestion \"no-such-cc\""), "%s",
                           ax_error_detail());
        cr_assert_not_null(strstr(ax_error_detail(), "may use: "), "%s", ax_error_detail());
    }
    ax_system_destroy(&sys);
}
