/*
 * libFuzzer target for the connection layer: the bytes choose what several
 * raw clients do to a real Axon system's network thread over loopback,
 * with tiny pools and caps, so that pool exhaustion, stranger eviction,
 * handshake deadlines, replacement attempts and closes mid-frame all
 * happen within a few hundred bytes of input. Built with ASan and UBSan
 * (./dev fuzz), so a use-after-free in the network thread is a crash here.
 *
 * Input: a sequence of operations, each one byte `op` (low 3 bits: the
 * action, high 5 bits: the client slot, modulo SLOTS) followed by the
 * action's own bytes:
 *   0 open          connect the slot (closing what it had)
 *   1 raw N bytes   one length byte, then that many bytes, sent as they are
 *   2 hello A I     a valid version-2 Hello announcing 127.0.0.1:(40000+A%8),
 *                   incarnation I (one byte each): replacements, duplicates;
 *                   with A&8 it has the CLIENT flag (docs/wire.md section 6,
 *                   "Clients"), and the slot's Data frames then carry the
 *                   sender tcp://0.0.0.0:0#7, which the sink answers: replies
 *                   over CLIENT connections, and to ones that have closed
 *   3 close         close the slot
 *   4 data K        a Data frame for "sink" (after a Hello it is delivered;
 *                   without a sender, unless the slot's Hello was CLIENT);
 *                   the byte K picks how its receiver path is written
 *                   (docs/wire.md section 6.1; the server offers 4 ids):
 *                   K & 3 = 0 in full, 1 a definition of id K >> 2,
 *                   2 a reference to id K >> 2 (bound or not), 3 a
 *                   definition of id 4 + (K >> 2), at or above the offer
 *   5 stall         let the server run for a millisecond
 *   6 huge          a header announcing a 16 MiB Data frame
 *   7 half-close    shutdown(SHUT_WR)
 *
 * After every input all clients close, and the server must be back to no
 * connections within two seconds: a connection that is never freed, or a
 * network thread that stopped, aborts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/net.h"
#include "axon/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 8

static ax_system_t *srv;
static uint16_t srv_port;

typedef struct sink_actor {
    ax_actor_t actor;
} sink_actor_t;

/* Answers a message that has a sender (only CLIENT slots send one); the
 * NetMessage itself is released by the runtime when the handler returns. */
static ax_status_t sink_net(ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_ref_t from;
    ax_msg_t *reply = NULL;

    if (ax_net_msg_sender(self, *nm, &from) == AX_OK && ax_u64_msg_new(42, &reply) == AX_OK &&
        ax_tell(from, &reply, ax_self(self)) != AX_OK)
        ax_msg_release(&reply);
    return AX_OK;
}

static const ax_actor_vtable_t sink_vtable = {
    .name = "fuzz.sink",
    .size = sizeof(sink_actor_t),
    .receive_network = sink_net,
};

static void die(const char *what)
{
    fprintf(stderr, "fuzz_conn: %s: %s\n", what, ax_error_detail());
    abort();
}

static void setup(void)
{
    ax_config_t cfg;
    ax_addr_t self;
    ax_ref_t ref;

    ax_config_init(&cfg);
    cfg.threads = 1;
    cfg.network.buffer_config.chunk_size = 512;
    cfg.network.buffer_config.initial_chunk_count = 1;
    cfg.network.buffer_config.max_chunk_count = 4;
    cfg.network.max_pending_handshakes = 3;
    cfg.network.max_connections = 6;
    cfg.network.handshake_timeout_ms = 30;
    cfg.network.heartbeat_interval_ms = 10;
    cfg.network.heartbeat_timeout_ms = 60;
    cfg.network.max_retries = 0;
    cfg.network.path_ids = 4;
    if (ax_system_create(&cfg, &srv) != AX_OK)
        die("system_create");
    if (ax_spawn(srv, &sink_vtable, NULL, &ref) != AX_OK || ax_register(srv, ref, "sink") != AX_OK)
        die("spawn");
    if (ax_net_start(srv) != AX_OK)
        die("net_start");
    ax_system_address(srv, &self);
    srv_port = self.port;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int open_slot(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(srv_port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Send without blocking: a server that stopped reading must not hang us. */
static void put(int fd, const void *p, size_t n)
{
    if (fd >= 0)
        (void)send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void frame(int fd, uint8_t type, const msgpack_sbuffer *sb)
{
    unsigned char h[8] = {(unsigned char)(sb->size >> 24), (unsigned char)(sb->size >> 16),
                          (unsigned char)(sb->size >> 8), (unsigned char)sb->size, type, 0, 0, 0};

    put(fd, h, sizeof h);
    put(fd, sb->data, sb->size);
}

static void pack_addr(msgpack_packer *pk, uint16_t port)
{
    static const unsigned char lo[4] = {127, 0, 0, 1};

    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, lo, 4);
    msgpack_pack_uint16(pk, port);
}

static void send_hello(int fd, uint8_t a, uint8_t inc)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "axon", 4);
    msgpack_pack_uint8(&pk, 2);
    pack_addr(&pk, (uint16_t)(40000 + (a & 7)));
    msgpack_pack_uint64(&pk, 1000u + inc);
    msgpack_pack_uint64(&pk, 1u + (uint64_t)fd);
    msgpack_pack_uint8(&pk, (a & 8) ? 2 : 0); /* CLIENT */
    msgpack_pack_uint32(&pk, 4096);
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, "fuzz-nonce-fuzz-nonce-fuzz-nonce", 32);
    msgpack_pack_uint8(&pk, 0);
    frame(fd, 1, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void send_data(int fd, bool client, uint8_t k)
{
    static const unsigned char any[4] = {0, 0, 0, 0};

    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    if ((k & 3) == 2) {
        msgpack_pack_uint8(&pk, (uint8_t)(k >> 2)); /* a reference */
    } else {
        if ((k & 3) != 0) { /* a definition [id, path] */
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint16(&pk, (uint16_t)(((k & 3) == 3 ? 4 : 0) + (k >> 2)));
        }
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_bin(&pk, 4);
        msgpack_pack_bin_body(&pk, "\x7f\0\0\x01", 4);
        msgpack_pack_uint16(&pk, srv_port);
        msgpack_pack_str(&pk, 4);
        msgpack_pack_str_body(&pk, "sink", 4);
    }
    if (client) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_bin(&pk, 4);
        msgpack_pack_bin_body(&pk, any, 4);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint8(&pk, 7);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_uint8(&pk, 3);
    msgpack_pack_uint64(&pk, 41);
    frame(fd, 2, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* All clients gone: the server must get back to no connections. */
static void settle(void)
{
    for (int i = 0; i < 2000; i++) {
        ax_net_stats_t s;

        if (ax_net_stats(srv, &s) != AX_OK)
            die("net_stats");
        if (s.connections == 0)
            return;
        pause_ms(1);
    }
    fprintf(stderr, "fuzz_conn: connections were not all freed after the clients left\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[SLOTS];
    bool client[SLOTS] = {false};
    size_t i = 0;

    if (srv == NULL)
        setup();
    for (int s = 0; s < SLOTS; s++)
        fds[s] = -1;
    while (i < size) {
        uint8_t op = data[i++];
        int s = (op >> 3) % SLOTS;

        switch (op & 7) {
        case 0:
            if (fds[s] >= 0)
                close(fds[s]);
            fds[s] = open_slot();
            break;
        case 1: {
            size_t n = i < size ? data[i++] : 0;

            if (n > size - i)
                n = size - i;
            put(fds[s], data + i, n);
            i += n;
            break;
        }
        case 2:
            if (i + 2 <= size) {
                client[s] = (data[i] & 8) != 0;
                send_hello(fds[s], data[i], data[i + 1]);
                i += 2;
            }
            break;
        case 3:
            if (fds[s] >= 0)
                close(fds[s]);
            fds[s] = -1;
            break;
        case 4:
            send_data(fds[s], client[s], i < size ? data[i++] : 0);
            break;
        case 5:
            pause_ms(1);
            break;
        case 6: {
            static const unsigned char huge[8] = {0x01, 0x00, 0x00, 0x00, 2, 0, 0, 0};

            put(fds[s], huge, sizeof huge);
            break;
        }
        default:
            if (fds[s] >= 0)
                shutdown(fds[s], SHUT_WR);
            break;
        }
    }
    pause_ms(1);
    for (int s = 0; s < SLOTS; s++)
        if (fds[s] >= 0)
            close(fds[s]);
    settle();
    return 0;
}
