/*
 * network.client_only: an Axon system that listens nowhere and connects as
 * a CLIENT (docs/wire.md section 6, "Clients"). Two such systems announce
 * the same address, 0.0.0.0 port 0, and their pingers have the same path;
 * the server keeps them apart by connection, so each gets exactly its own
 * replies, in order, with and without a secret, and neither is refused.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define ROUNDS 300
#define COOKIE "client-only-test-cookie"

static ax_system_t *start(bool client_only, bool secret)
{
    ax_config_t cfg = nt_config();
    ax_system_t *sys;

    if (client_only) {
        /* Listen nowhere: not even a loopback address needs a secret. */
        cfg.network.client_only = true;
        snprintf(cfg.network.listen, sizeof cfg.network.listen, "0.0.0.0:0");
    }
    if (secret)
        snprintf(cfg.network.cookie, sizeof cfg.network.cookie, "%s", COOKIE);
    sys = nt_start(&cfg);
    cr_assert_not_null(sys, "start (client_only %d, secret %d): %s", client_only, secret, ax_error_detail());
    return sys;
}

Test(client_only, two_systems_one_address)
{
    for (int secret = 0; secret <= 1; secret++) {
        ax_system_t *srv = start(false, secret), *cl[2];
        nt_node_t echo, ping[2];
        nt_events_t log;
        ax_ref_t echo_ref, log_ref, ping_ref[2];
        ax_path_t path[2];
        ax_addr_t addr[2];
        ax_net_stats_t st;

        nt_node_setup(&echo, NT_ECHO);
        echo_ref = nt_spawn_node(srv, &echo, NULL);
        cr_assert_eq(ax_register(srv, echo_ref, "echo"), AX_OK);
        nt_events_setup(&log);
        cr_assert_eq(ax_spawn(srv, &nt_events_vtable, &log, &log_ref), AX_OK);
        cr_assert_eq(ax_net_subscribe(srv, log_ref), AX_OK);
        for (int k = 0; k < 2; k++) {
            cl[k] = start(true, secret);
            ax_system_address(cl[k], &addr[k]);
            cr_assert_eq(addr[k].family, 4);
            cr_assert_eq(addr[k].port, 0, "a system that listens nowhere has port 0");
            nt_node_setup(&ping[k], NT_PING);
            ping[k].rounds = ROUNDS;
            ping[k].peer = nt_ref_to(cl[k], nt_port(srv), "echo");
            cr_assert(!ax_ref_is_null(ping[k].peer));
            ping_ref[k] = nt_spawn_node(cl[k], &ping[k], NULL);
            cr_assert_eq(ax_ref_path(ping_ref[k], &path[k]), AX_OK);
        }
        cr_assert(ax_addr_eq(&addr[0], &addr[1]), "both announce 0.0.0.0:0");
        /* The very same sender path from both: only the connection tells
         * them apart. */
        cr_assert_eq(ax_path_cmp(&path[0], &path[1]), 0, "the two pingers have the same path");

        for (int k = 0; k < 2; k++)
            RUN_ON(ping_ref[k], nt_ping_start, NULL);
        for (int k = 0; k < 2; k++) {
            cr_assert(axt_sem_wait(&ping[k].done, WAIT_S), "pinger %d (secret %d) did not finish", k, secret);
            cr_assert_eq(atomic_load(&ping[k].received), ROUNDS, "pinger %d got another's replies", k);
            cr_assert_eq(atomic_load(&ping[k].out_of_order), 0);
            cr_assert_eq(atomic_load(&ping[k].gaps), 0);
            cr_assert_eq(atomic_load(&ping[k].bad), 0);
            cr_assert_eq(atomic_load(&ping[k].session_changes), 0);
        }
        cr_assert_eq(atomic_load(&echo.received), 2 * ROUNDS);
        cr_assert_eq(atomic_load(&echo.bad), 0, "every echo reply could be sent");
        cr_assert_eq(ax_net_stats(srv, &st), AX_OK);
        cr_assert_eq(st.connections, 2);
        cr_assert_eq(st.replace_refused, 0, "a CLIENT is never refused for its address");
        cr_assert_eq(st.malformed, 0);
        cr_assert_eq(st.auth_failures, 0);
        cr_assert_eq(st.dead_lettered, 0);
        cr_assert_eq(nt_events_count(&log, AX_NET_ESTABLISHED), 0, "a CLIENT raises no events");

        for (int k = 0; k < 2; k++)
            axt_destroy(&cl[k]);
        WAIT_UNTIL(ax_net_stats(srv, &st) == AX_OK && st.connections == 0, "the clients left");
        cr_assert_eq(st.dead_lettered, 0, "the clients said Bye after their last reply");
        cr_assert_eq(nt_events_count(&log, AX_NET_LOST) + nt_events_count(&log, AX_NET_CLOSED), 0);
        axt_destroy(&srv);
    }
}
