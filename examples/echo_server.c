/*
 * echo_server: an actor that answers over the network, for clients written
 * in any language (the protocol is docs/wire.md; tests/interop/client.py is
 * such a client, in Python).
 *
 *   echo_server                               self-check: a second system in
 *                                             this process asks, and checks
 *                                             the answers
 *   echo_server --port N [--seconds S]        serve on 127.0.0.1:N
 *   echo_server --listen HOST:PORT [--seconds S]
 *   ... [--cookie-file PATH]                  require peers to prove the
 *                                             secret in PATH (a file only
 *                                             its owner may read; see
 *                                             docs/wire.md section 7.3)
 *
 * The actor registered as "echo" answers every message with a message of
 * the same serialiser id, sent back to the sender's path: a u64 comes back
 * plus one, strings and bytes come back unchanged. When it is ready the
 * server prints "LISTENING <port>" (port 0 picks a free one). It exits 0
 * after S seconds, or on SIGTERM or SIGINT (without --seconds, only then),
 * after printing one line "STATS name=value ..." of its network counters
 * (what a client in another language can check: refusals, auth failures).
 */
#define _POSIX_C_SOURCE 200809L /* sigtimedwait, clock_gettime, semaphores */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/axon.h"

/* ---- the echo actor ------------------------------------------------------ */

typedef struct echo {
    ax_actor_t actor;
} echo_t;

/* Messages from other systems arrive as NetMessages, still encoded. */
static ax_status_t echo_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    const ax_msg_type_t *type;
    ax_msg_t *reply = NULL;
    ax_ref_t sender;

    /* No sender path (sent from outside any actor): nobody to answer. */
    if (ax_net_msg_sender(self, *nm, &sender) != AX_OK)
        return AX_OK;
    /* Decode with whatever type the system registered for the id; an id
     * it does not know, or a bad payload, is dropped rather than failing
     * the actor for the client's mistake. */
    if (ax_serialiser_lookup(ax_actor_system(self), ax_net_msg_serialiser(*nm), &type) != AX_OK ||
        ax_net_msg_deserialise(*nm, type, &reply) != AX_OK)
        return AX_OK;
    if (type == &ax_u64_type)
        ((ax_u64_msg_t *)reply)->value++;
    /* A plain tell to a remote ref: the network dispatcher serialises it
     * with the same type, so the reply keeps the serialiser id. */
    if (ax_tell(sender, &reply, ax_self(self)) != AX_OK)
        ax_msg_release(&reply);
    return AX_OK;
}

static const ax_actor_vtable_t echo_vtable = {
    .name = "echo",
    .size = sizeof(echo_t),
    .receive_network = echo_network,
};

/* A system listening on `listen`, with the echo actor registered; with a
 * cookie file (not NULL), only peers that prove its secret get in. */
static ax_status_t start_server(const char *listen, const char *cookie_file, ax_system_t **sys)
{
    ax_config_t cfg;
    ax_ref_t echo;
    ax_status_t st;

    ax_config_init(&cfg);
    cfg.threads = 2;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "%s", listen);
    if (cookie_file != NULL) /* main checked that it fits */
        snprintf(cfg.network.cookie_file, sizeof cfg.network.cookie_file, "%s", cookie_file);
    st = ax_system_create(&cfg, sys);
    if (st != AX_OK)
        return st;
    st = ax_net_start(*sys);
    if (st == AX_OK)
        st = ax_spawn(*sys, &echo_vtable, NULL, &echo);
    if (st == AX_OK)
        st = ax_register(*sys, echo, "echo");
    if (st != AX_OK)
        ax_system_destroy(sys);
    return st;
}

/* ---- serving --------------------------------------------------------------- */

/* SIGTERM and SIGINT are blocked in every thread (set before any system
 * starts its threads) and taken here synchronously: no handler, no flag. */
static void wait_for_stop(sigset_t *stop, long seconds)
{
    struct timespec limit = {seconds, 0};

    for (;;) {
        int sig = seconds > 0 ? sigtimedwait(stop, NULL, &limit) : sigwaitinfo(stop, NULL);

        if (sig >= 0 || errno != EINTR)
            return; /* a signal, or the time is up (EAGAIN) */
    }
}

static int serve(const char *listen, const char *cookie_file, long seconds, sigset_t *stop)
{
    ax_system_t *sys = NULL;
    ax_addr_t self;
    ax_net_stats_t ns;
    ax_status_t st = start_server(listen, cookie_file, &sys);

    if (st != AX_OK) {
        fprintf(stderr, "echo_server: %s: %s\n", ax_status_str(st), ax_error_detail());
        return 1;
    }
    ax_system_address(sys, &self);
    printf("LISTENING %u\n", (unsigned)self.port);
    fflush(stdout); /* a client waits for this line on a pipe */
    wait_for_stop(stop, seconds);
    if (ax_net_stats(sys, &ns) == AX_OK) {
        printf("STATS malformed=%llu auth_failures=%llu replace_refused=%llu heartbeat_timeouts=%llu "
               "handshake_timeouts=%llu\n",
               (unsigned long long)ns.malformed, (unsigned long long)ns.auth_failures,
               (unsigned long long)ns.replace_refused, (unsigned long long)ns.heartbeat_timeouts,
               (unsigned long long)ns.handshake_timeouts);
        fflush(stdout);
    }
    /* Graceful: queued replies are flushed and every peer is sent Bye. */
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax_system_destroy(&sys);
    return 0;
}

/* ---- the self-check: a client actor in a second system ----------------------- */

typedef struct ask_args {
    ax_ref_t echo; /* a remote ref to the server's "echo" */
    sem_t done;    /* posted when all answers are in, or one is wrong */
    int answers, wrong;
} ask_args_t;

typedef struct asker {
    ax_actor_t actor;
    ask_args_t *args;
} asker_t;

static const uint8_t blob[3] = {1, 2, 3};

static ax_status_t asker_init(ax_actor_t *self, void *arg)
{
    ((asker_t *)self)->args = arg;
    return AX_OK;
}

/* Three questions, one per built-in type. Sent from this actor, so the
 * frames carry its path and the answers find their way back. */
static void asker_start(ax_actor_t *self)
{
    ask_args_t *a = ((asker_t *)self)->args;
    ax_msg_t *m[3] = {NULL, NULL, NULL};

    ax_u64_msg_new(41, &m[0]);
    ax_string_msg_new("hello", &m[1]);
    ax_bytes_msg_new(blob, sizeof blob, &m[2]);
    for (int i = 0; i < 3; i++) {
        if (m[i] == NULL || ax_tell(a->echo, &m[i], ax_self(self)) != AX_OK) {
            ax_msg_release(&m[i]);
            a->wrong++;
            sem_post(&a->done);
        }
    }
}

static ax_status_t asker_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    ask_args_t *a = ((asker_t *)self)->args;
    const ax_msg_type_t *type;
    ax_msg_t *msg = NULL;
    int ok = 0;

    if (ax_serialiser_lookup(ax_actor_system(self), ax_net_msg_serialiser(*nm), &type) == AX_OK &&
        ax_net_msg_deserialise(*nm, type, &msg) == AX_OK) {
        if (type == &ax_u64_type) {
            ok = ((ax_u64_msg_t *)msg)->value == 42;
            printf("asker: u64 41 came back as %llu\n", (unsigned long long)((ax_u64_msg_t *)msg)->value);
        } else {
            const ax_bytes_msg_t *b = (const ax_bytes_msg_t *)msg; /* strings share the layout */
            const void *want = type == &ax_string_type ? (const void *)"hello" : (const void *)blob;
            size_t want_len = type == &ax_string_type ? 5 : sizeof blob;

            ok = b->len == want_len && memcmp(b->data, want, want_len) == 0;
            printf("asker: %s came back %s\n", type->name, ok ? "unchanged" : "changed");
        }
        ax_msg_release(&msg);
    }
    a->wrong += !ok;
    if (++a->answers == 3 || !ok)
        sem_post(&a->done);
    return AX_OK;
}

static const ax_actor_vtable_t asker_vtable = {
    .name = "asker",
    .size = sizeof(asker_t),
    .init = asker_init,
    .on_start = asker_start,
    .receive_network = asker_network,
};

static int self_check(void)
{
    ax_system_t *server = NULL, *client = NULL;
    ax_config_t cfg;
    ax_addr_t at;
    ax_path_t echo_path;
    char text[AX_PATH_STR_MAX], addr[64];
    ask_args_t args = {.answers = 0};
    struct timespec deadline;
    ax_ref_t asker;
    int failed = 1;

    sem_init(&args.done, 0, 0);
    ax_config_init(&cfg);
    cfg.threads = 2;
    if (start_server("127.0.0.1:0", NULL, &server) != AX_OK || ax_system_create(&cfg, &client) != AX_OK ||
        ax_net_start(client) != AX_OK) {
        fprintf(stderr, "self-check: cannot start: %s\n", ax_error_detail());
        goto out;
    }
    /* The server's echo as the client system sees it: a path, then a ref. */
    ax_system_address(server, &at);
    ax_addr_format(&at, addr, sizeof addr);
    snprintf(text, sizeof text, "tcp://%s/echo", addr);
    if (ax_path_parse(text, &echo_path) != AX_OK ||
        ax_ref_from_path(client, &echo_path, &args.echo) != AX_OK ||
        ax_spawn(client, &asker_vtable, &args, &asker) != AX_OK)
        goto out;
    printf("self-check: asking %s\n", text);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    while (sem_timedwait(&args.done, &deadline) != 0 && errno == EINTR)
        ;
    failed = args.answers != 3 || args.wrong != 0;
    printf("self-check: %d answers, %d wrong\n", args.answers, args.wrong);
out:
    ax_system_destroy(&client); /* shuts down and waits, when not done yet */
    ax_system_destroy(&server);
    sem_destroy(&args.done);
    return failed;
}

int main(int argc, char **argv)
{
    char listen[128] = "";
    const char *cookie_file = NULL;
    long seconds = 0;
    sigset_t stop;

    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (v != NULL && strcmp(argv[i], "--port") == 0)
            snprintf(listen, sizeof listen, "127.0.0.1:%s", v);
        else if (v != NULL && strcmp(argv[i], "--listen") == 0)
            snprintf(listen, sizeof listen, "%s", v);
        else if (v != NULL && strcmp(argv[i], "--seconds") == 0)
            seconds = strtol(v, NULL, 10);
        else if (v != NULL && strcmp(argv[i], "--cookie-file") == 0) {
            if (strlen(v) >= sizeof(((ax_net_config_t *)0)->cookie_file)) {
                fprintf(stderr, "%s: --cookie-file: the path is longer than %zu bytes\n", argv[0],
                        sizeof(((ax_net_config_t *)0)->cookie_file) - 1);
                return 2;
            }
            cookie_file = v;
        } else {
            fprintf(stderr, "usage: %s [--port N | --listen HOST:PORT] [--seconds S] [--cookie-file PATH]\n",
                    argv[0]);
            return 2;
        }
        i++;
    }
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (listen[0] == '\0') {
        if (cookie_file != NULL) {
            fprintf(stderr, "%s: --cookie-file needs --port or --listen\n", argv[0]);
            return 2;
        }
        return self_check() == 0 ? 0 : 1;
    }
    return serve(listen, cookie_file, seconds, &stop);
}
