/*
 * net_demo: two systems talk over TCP on loopback, in one process.
 *
 * Systems "alpha" and "beta" each listen on 127.0.0.1 with a port the OS
 * picks, and each runs one actor registered as "node". Each node greets
 * the other twice, both ways a remote message can be sent:
 *
 *   lazy   ax_tell(remote_ref, &msg, self): the message moves by pointer
 *          to the network dispatcher, which serialises it later, in its
 *          own buffer pool, and frees it.
 *   eager  ax_tell_serialised(self, remote_ref, &type, msg): the message is
 *          serialised now, on the sender's thread, into the sender's own
 *          buffer pool; the caller keeps msg.
 *
 * The receiver gets either as a NetMessage, decodes it when it wants to,
 * and answers the same way it was greeted. The wire cannot tell the two
 * apart, so the greeting says how it was sent. At the end each node prints
 * its own pool's stats and main() prints both systems' network stats.
 */
#define _POSIX_C_SOURCE 200809L /* semaphores */

#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "axon/axon.h"

/* ---- a message type with its own msgpack serialiser -------------------- */

/* On the wire: the msgpack array [seq, eager, is_reply, text]. */
typedef struct greeting {
    ax_msg_t hdr;
    uint32_t seq;
    bool eager;    /* how it was sent, for the printout */
    bool is_reply;
    char text[48];
} greeting_t;

/* User serialiser ids start at AX_SER_USER_MIN; 1..1023 are Axon's. */
#define GREETING_ID (AX_SER_USER_MIN + 7)

static ax_status_t greeting_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    const greeting_t *g = (const greeting_t *)msg;
    int rc = msgpack_pack_array(pk, 4);

    rc = rc ? rc : msgpack_pack_uint32(pk, g->seq);
    rc = rc ? rc : (g->eager ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    rc = rc ? rc : (g->is_reply ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    rc = rc ? rc : msgpack_pack_str_with_body(pk, g->text, strlen(g->text));
    return rc == 0 ? AX_OK : AX_ENOBUFS; /* a pack fails only when the pool is full */
}

static ax_status_t greeting_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                        ax_msg_t **out);

static const ax_msg_type_t greeting_type = {
    .name = "demo.greeting",
    .size = sizeof(greeting_t),
    .serialiser_id = GREETING_ID,
    .serialise = greeting_serialise,
    .deserialise = greeting_deserialise,
};

/* Runs on the receiver's thread. The bytes come from another process in
 * general: check the shape before trusting it. */
static ax_status_t greeting_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                        ax_msg_t **out)
{
    const msgpack_object *f = obj->via.array.ptr;
    greeting_t *g;
    ax_status_t st;

    (void)payload; /* we copy the text, so we need not hold the bytes */
    if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 4 ||
        f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 > UINT32_MAX ||
        f[1].type != MSGPACK_OBJECT_BOOLEAN || f[2].type != MSGPACK_OBJECT_BOOLEAN ||
        f[3].type != MSGPACK_OBJECT_STR || f[3].via.str.size >= sizeof g->text)
        return AX_EPROTO;
    st = ax_msg_alloc(&greeting_type, out); /* zeroed: the text ends in NUL */
    if (st != AX_OK)
        return st;
    g = (greeting_t *)*out;
    g->seq = (uint32_t)f[0].via.u64;
    g->eager = f[1].via.boolean;
    g->is_reply = f[2].via.boolean;
    memcpy(g->text, f[3].via.str.ptr, f[3].via.str.size);
    return AX_OK;
}

/* ---- the node actor ------------------------------------------------------- */

#define GREETINGS 2 /* one lazy, one eager */

typedef struct node_args {
    const char *name; /* "alpha" or "beta" */
    ax_ref_t peer;    /* the other system's node: a remote ref */
    sem_t *done;      /* posted when both replies are in, or on failure */
    int failed;
} node_args_t;

typedef struct node {
    ax_actor_t actor;
    node_args_t *args;
    unsigned replies;
} node_t;

static ax_status_t node_init(ax_actor_t *self, void *arg)
{
    ((node_t *)self)->args = arg;
    return AX_OK;
}

static void fail(node_t *n, const char *what, ax_status_t st)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", n->args->name, what, ax_status_str(st), ax_error_detail());
    n->args->failed = 1;
    sem_post(n->args->done);
}

/* Send a greeting or a reply to `to`, lazily or eagerly. */
static ax_status_t send_greeting(node_t *n, ax_ref_t to, uint32_t seq, bool eager, bool is_reply)
{
    ax_actor_t *self = &n->actor;

    if (eager) {
        /* Serialised now into our own pool: the message may live on the
         * stack, and stays ours. */
        greeting_t g = {.seq = seq, .eager = true, .is_reply = is_reply};

        ax_msg_init(&g.hdr, &greeting_type);
        snprintf(g.text, sizeof g.text, "%s from %s", is_reply ? "thanks" : "hello", n->args->name);
        return ax_tell_serialised(self, to, &greeting_type, &g.hdr);
    } else {
        /* By pointer to the dispatcher: it must be a message we can hand
         * over. On AX_OK m is NULL; on failure it is still ours. */
        ax_msg_t *m = NULL;
        greeting_t *g;
        ax_status_t st = ax_msg_alloc(&greeting_type, &m);

        if (st != AX_OK)
            return st;
        g = (greeting_t *)m;
        g->seq = seq;
        g->is_reply = is_reply;
        snprintf(g->text, sizeof g->text, "%s from %s", is_reply ? "thanks" : "hello", n->args->name);
        st = ax_tell(to, &m, ax_self(self));
        ax_msg_release(&m); /* a no-op when the send took it */
        return st;
    }
}

static void node_start(ax_actor_t *self)
{
    node_t *n = (node_t *)self;
    /* A pool of our own for the eager sends (otherwise the first
     * tell_serialised creates one from the system's buffer_config). */
    const ax_buffer_config_t pool = {
        .chunk_size = 16 * 1024, .initial_chunk_count = 1, .max_chunk_count = 8,
        .encode_buf_min_free_space = 64,
    };
    ax_status_t st = ax_actor_init_buffers(self, &pool);

    if (st == AX_OK)
        st = send_greeting(n, n->args->peer, 1, false, false); /* lazy */
    if (st == AX_OK)
        st = send_greeting(n, n->args->peer, 2, true, false); /* eager */
    if (st != AX_OK)
        fail(n, "greet", st);
}

static void print_own_pool(node_t *n)
{
    ax_buffer_pool_stats_t s;

    /* Owner only: the pool belongs to this actor, so ask from its handler. */
    if (ax_actor_buffer_stats(&n->actor, &s) == AX_OK)
        printf("%s node's own pool: %zu chunks (%zu bytes), %zu free, %zu writing, %zu leased, "
               "%llu exhausted\n",
               n->args->name, s.chunks_allocated, s.bytes_allocated, s.chunks_free, s.chunks_active,
               s.chunks_leased, (unsigned long long)s.exhausted);
}

static ax_status_t node_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    node_t *n = (node_t *)self;
    ax_msg_t *msg = NULL;
    ax_path_t from_path;
    char from_text[AX_PATH_STR_MAX];
    ax_ref_t from;
    greeting_t *g;
    ax_status_t st;

    /* Decoding happens here, now, on this actor's thread. */
    st = ax_net_msg_deserialise(*nm, &greeting_type, &msg);
    if (st != AX_OK) {
        fail(n, "decode", st);
        return AX_OK;
    }
    g = (greeting_t *)msg;
    if (ax_net_msg_sender_path(*nm, &from_path) == AX_OK)
        ax_path_format(&from_path, from_text, sizeof from_text);
    else
        strcpy(from_text, "(outside any actor)");
    printf("%s <- %s: \"%s\" #%u, sent %s, session %016llx\n", n->args->name, from_text, g->text,
           (unsigned)g->seq, g->eager ? "eager (ax_tell_serialised)" : "lazy (ax_tell)",
           (unsigned long long)ax_net_msg_session(*nm));

    if (!g->is_reply) {
        /* Answer the way we were greeted. The sender ref is remote: a
         * reply goes back over the same connection. */
        st = ax_net_msg_sender(self, *nm, &from);
        if (st == AX_OK)
            st = send_greeting(n, from, g->seq, g->eager, true);
        if (st != AX_OK)
            fail(n, "reply", st);
    } else if (++n->replies == GREETINGS) {
        print_own_pool(n);
        sem_post(n->args->done);
    }
    ax_msg_release(&msg);
    return AX_OK; /* the runtime releases *nm, and with it the received bytes */
}

static const ax_actor_vtable_t node_vtable = {
    .name = "node",
    .size = sizeof(node_t),
    .init = node_init,
    .on_start = node_start,
    .receive_network = node_network,
};

/* ---- main ------------------------------------------------------------------- */

/* A system on 127.0.0.1 (port chosen by the OS) with networking and a
 * created (not yet started) node registered as "node". */
static ax_status_t make_system(node_args_t *args, ax_system_t **sys, ax_ref_t *node)
{
    ax_config_t cfg;
    ax_status_t st;

    ax_config_init(&cfg);
    cfg.threads = 1;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "127.0.0.1:0");
    st = ax_system_create(&cfg, sys);
    if (st == AX_OK)
        st = ax_serialiser_register(*sys, &greeting_type);
    if (st == AX_OK)
        st = ax_net_start(*sys);
    if (st == AX_OK)
        st = ax_create(*sys, &node_vtable, args, node);
    if (st == AX_OK)
        st = ax_register(*sys, *node, "node");
    return st;
}

/* A remote ref, in `from`, to the actor named "node" in system `to`. */
static ax_status_t ref_to_node(ax_system_t *from, const char *from_name, ax_system_t *to, ax_ref_t *out)
{
    char addr[64], text[128];
    ax_addr_t a;
    ax_path_t path;
    ax_status_t st;

    ax_system_address(to, &a); /* carries the bound port */
    ax_addr_format(&a, addr, sizeof addr);
    snprintf(text, sizeof text, "tcp://%s/node", addr);
    st = ax_path_parse(text, &path);
    if (st == AX_OK)
        st = ax_ref_from_path(from, &path, out);
    if (st == AX_OK)
        printf("%s: the other node is %s\n", from_name, text);
    return st;
}

/* Has the peer acknowledged everything this system wrote? */
static bool all_acked(ax_system_t *sys)
{
    ax_net_stats_t s;

    return ax_net_stats(sys, &s) == AX_OK && s.frames_sent == 2 * GREETINGS && s.acked == s.frames_sent;
}

static void print_stats(const char *name, ax_system_t *sys)
{
    ax_net_stats_t s;
    const ax_buffer_pool_stats_t *pools[2];
    const char *pool_names[2] = {"receive_pool", "dispatch_pool"};

    if (ax_net_stats(sys, &s) != AX_OK)
        return;
    printf("%s net: %llu frames sent (%llu bytes), %llu received (%llu bytes), %llu acked by the "
           "peer, %llu dead-lettered, %llu malformed, %llu connections, %llu read pauses\n",
           name, (unsigned long long)s.frames_sent, (unsigned long long)s.bytes_sent,
           (unsigned long long)s.frames_received, (unsigned long long)s.bytes_received,
           (unsigned long long)s.acked, (unsigned long long)s.dead_lettered,
           (unsigned long long)s.malformed, (unsigned long long)s.connections,
           (unsigned long long)s.read_pauses);
    pools[0] = &s.receive_pool;
    pools[1] = &s.dispatch_pool;
    for (int i = 0; i < 2; i++)
        printf("%s %s: %zu chunks (%zu bytes), %zu free, %zu writing, %zu leased, %llu exhausted\n",
               name, pool_names[i], pools[i]->chunks_allocated, pools[i]->bytes_allocated,
               pools[i]->chunks_free, pools[i]->chunks_active, pools[i]->chunks_leased,
               (unsigned long long)pools[i]->exhausted);
}

int main(void)
{
    sem_t done;
    node_args_t a = {.name = "alpha", .done = &done}, b = {.name = "beta", .done = &done};
    ax_system_t *alpha = NULL, *beta = NULL;
    ax_ref_t node_a, node_b;
    ax_status_t st;

    sem_init(&done, 0, 0);
    st = make_system(&a, &alpha, &node_a);
    if (st == AX_OK)
        st = make_system(&b, &beta, &node_b);
    /* Each node gets a remote ref to the other before it starts. */
    if (st == AX_OK)
        st = ref_to_node(alpha, "alpha", beta, &a.peer);
    if (st == AX_OK)
        st = ref_to_node(beta, "beta", alpha, &b.peer);
    if (st == AX_OK)
        st = ax_start(node_a);
    if (st == AX_OK)
        st = ax_start(node_b);
    if (st != AX_OK) {
        fprintf(stderr, "setup: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&alpha);
        ax_system_destroy(&beta);
        return 1;
    }

    /* Each node posts once: when its two replies are in, or it failed. */
    sem_wait(&done);
    sem_wait(&done);
    /* A peer acknowledges frames after it has read them, so the last acks
     * may still be on their way: give them a moment (the stats are a
     * snapshot either way). */
    for (int i = 0; i < 100 && !(all_acked(alpha) && all_acked(beta)); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    print_stats("alpha", alpha);
    print_stats("beta", beta);

    /* Shutting down flushes what is queued, says Bye to the peer, and
     * closes the connection cleanly. */
    ax_system_shutdown(alpha);
    ax_system_shutdown(beta);
    ax_system_await_termination(alpha);
    ax_system_await_termination(beta);
    ax_system_destroy(&alpha);
    ax_system_destroy(&beta);
    sem_destroy(&done);
    return a.failed || b.failed;
}
