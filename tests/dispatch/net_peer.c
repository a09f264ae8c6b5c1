/*
 * net_peer: an Axon system in a process of its own, for test_net_proc.
 *
 *     net_peer --listen 127.0.0.1:PORT --name NAME [--reply none|lazy|eager]
 *              [--nofile N]
 *
 * It listens on the address (port 0 picks one), registers a node under
 * NAME that counts the seq messages it receives and checks their order
 * (--reply lazy|eager: and sends each back to its sender), then prints
 * "READY <port>" on stdout. On SIGTERM it shuts down gracefully (flush,
 * Bye) and prints "RECEIVED <n> OUT_OF_ORDER <n> GAPS <n> BAD <n>", then
 * exits 0. The test may instead kill it with SIGKILL: that is the point.
 * --nofile N sets its RLIMIT_NOFILE (the hostile tests' descriptor
 * pressure).
 *
 * It never outlives the test by much: the test sets PR_SET_PDEATHSIG
 * before exec, and an alarm ends it after ten minutes whatever happens.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/dispatch/net_helpers.h"

static void usage(void)
{
    fprintf(stderr, "usage: net_peer --listen HOST:PORT --name NAME [--reply none|lazy|eager] [--nofile N]\n");
    exit(2);
}

/* Create the system, spawn and name the node, then listen: the name is
 * registered before any peer can connect, so nothing sent on arrival finds
 * it missing. Listening may fail for a moment when the port was just given
 * up by a killed predecessor: retry for a while. */
static ax_system_t *start(const ax_config_t *cfg, nt_node_t *node, const char *name)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        ax_system_t *sys = NULL;
        ax_ref_t ref;
        ax_status_t st = ax_system_create(cfg, &sys);

        if (st != AX_OK) {
            fprintf(stderr, "net_peer: system_create: %s\n", ax_error_detail());
            exit(1);
        }
        if (ax_spawn(sys, &nt_node_vtable, node, &ref) != AX_OK || ax_register(sys, ref, name) != AX_OK) {
            fprintf(stderr, "net_peer: cannot spawn \"%s\": %s\n", name, ax_error_detail());
            exit(1);
        }
        st = ax_net_start(sys);
        if (st == AX_OK)
            return sys;
        fprintf(stderr, "net_peer: net_start: %s (retrying)\n", ax_error_detail());
        ax_system_destroy(&sys);
        axt_sleep_us(50000);
    }
    fprintf(stderr, "net_peer: giving up on %s\n", cfg->network.listen);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *name = NULL, *reply = "none", *nofile = NULL;
    ax_config_t cfg;
    ax_system_t *sys;
    nt_node_t node;
    ax_addr_t self;
    sigset_t set;
    int sig = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0)
            name = argv[i + 1];
        else if (strcmp(argv[i], "--reply") == 0)
            reply = argv[i + 1];
        else if (strcmp(argv[i], "--nofile") == 0)
            nofile = argv[i + 1];
        else
            usage();
    }
    if (listen == NULL || name == NULL || argc % 2 == 0)
        usage();
    alarm(600);
    if (nofile != NULL) {
        struct rlimit rl = {.rlim_cur = strtoul(nofile, NULL, 10), .rlim_max = strtoul(nofile, NULL, 10)};

        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("net_peer: setrlimit");
            exit(1);
        }
    }

    /* Every thread the system starts inherits this mask, so SIGTERM is
     * taken only by sigwait below. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    ax_config_init(&cfg);
    cfg.threads = 2;
    if (strlen(listen) >= sizeof cfg.network.listen)
        usage();
    strcpy(cfg.network.listen, listen);
    if (strcmp(reply, "none") == 0) {
        nt_node_setup(&node, NT_SINK);
    } else if (strcmp(reply, "lazy") == 0 || strcmp(reply, "eager") == 0) {
        nt_node_setup(&node, NT_ECHO);
        node.eager = strcmp(reply, "eager") == 0;
    } else {
        usage();
    }
    sys = start(&cfg, &node, name);
    ax_system_address(sys, &self);
    printf("READY %u\n", (unsigned)self.port);
    fflush(stdout);

    while (sigwait(&set, &sig) != 0)
        ;
    ax_system_destroy(&sys);
    printf("RECEIVED %llu OUT_OF_ORDER %llu GAPS %llu BAD %llu\n",
           (unsigned long long)atomic_load(&node.received), (unsigned long long)atomic_load(&node.out_of_order),
           (unsigned long long)atomic_load(&node.gaps), (unsigned long long)atomic_load(&node.bad));
    fflush(stdout);
    return 0;
}
