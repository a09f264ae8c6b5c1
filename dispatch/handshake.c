/*
 * The handshake of wire version 2 (docs/wire.md section 7): Hello both
 * ways, then, when both sides have a secret, an Auth proof from the
 * initiator and one from the acceptor. Until it is complete a connection
 * is a stranger: it reads into its own small buffer (c->hs), never into the
 * shared receive pool, a frame header above AX__HANDSHAKE_FRAME_MAX closes
 * it without a reply, and it can replace no established connection unless
 * it proved the secret.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "dispatch/net_internal.h"
#include "serial/mpcheck.h"

#define HELLO_FIELDS 9u

/* ---- packing into a fixed buffer -------------------------------------------- */

typedef struct fixed_buf {
    unsigned char *p;
    size_t len, cap;
} fixed_buf_t;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_buf_t *fb = data;

    if (len > fb->cap - fb->len)
        return -1;
    memcpy(fb->p + fb->len, buf, len);
    fb->len += len;
    return 0;
}

/* Pack our Hello body into out (the transcript keeps it byte for byte);
 * 0 on failure. */
static size_t pack_hello(ax__conn_t *c, unsigned char *out, size_t cap)
{
    ax__net_t *net = c->net;
    const ax_addr_t *a = &net->self;
    size_t n = a->family == 6 ? 16 : 4;
    fixed_buf_t fb = {out, 0, cap};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &fb, fixed_write);
    if (msgpack_pack_array(&pk, HELLO_FIELDS) || msgpack_pack_str(&pk, 4) ||
        msgpack_pack_str_body(&pk, AX__PROTO_MAGIC, 4) || msgpack_pack_uint32(&pk, AX__PROTO_VERSION) ||
        msgpack_pack_array(&pk, 3) || msgpack_pack_uint8(&pk, a->family == 6 ? 0x04 : 0x00) ||
        msgpack_pack_bin(&pk, n) || msgpack_pack_bin_body(&pk, a->ip, n) ||
        msgpack_pack_uint16(&pk, a->port) || msgpack_pack_uint64(&pk, net->incarnation) ||
        msgpack_pack_uint64(&pk, c->session) ||
        msgpack_pack_uint32(&pk, (net->secret.len > 0 ? AX__HELLO_AUTH : 0) |
                                     (net->cfg.client_only ? AX__HELLO_CLIENT : 0)) ||
        msgpack_pack_uint64(&pk, net->fmt.max_frame_size) || msgpack_pack_bin(&pk, AX__NONCE_SIZE) ||
        msgpack_pack_bin_body(&pk, c->hs->nonce, AX__NONCE_SIZE) ||
        /* Path ids we accept (section 6.1); 0 when off. */
        msgpack_pack_uint32(&pk, net->cfg.path_ids))
        return 0;
    return fb.len;
}

/* A body of pre-packed bytes, written as they are. */
struct raw_body {
    const unsigned char *p;
    size_t len;
};

static int pack_raw(msgpack_packer *pk, const void *arg)
{
    const struct raw_body *r = arg;

    return pk->callback(pk->data, (const char *)r->p, r->len);
}

static int pack_proof(msgpack_packer *pk, const void *arg)
{
    return msgpack_pack_bin(pk, AX__PROOF_SIZE) || msgpack_pack_bin_body(pk, arg, AX__PROOF_SIZE);
}

/* ---- begin and end ------------------------------------------------------------ */

bool ax__hs_begin(ax__conn_t *c)
{
    ax__net_t *net = c->net;
    ax__handshake_t *hs = calloc(1, sizeof(*hs));

    if (hs == NULL)
        return false;
    ax__nonce_fill(hs->nonce);
    hs->deadline_ns = ax__now_ns() + net->cfg.handshake_timeout_ms * 1000000u;
    c->hs = hs;
    if (!c->outgoing) {
        /* Newest at the tail: the oldest is evicted first at the cap. */
        hs->older = net->newest_stranger;
        if (net->newest_stranger != NULL)
            net->newest_stranger->hs->newer = c;
        else
            net->oldest_stranger = c;
        net->newest_stranger = c;
        net->nstrangers++;
    }
    return true;
}

void ax__hs_end(ax__conn_t *c)
{
    ax__net_t *net = c->net;
    ax__handshake_t *hs = c->hs;

    if (hs == NULL)
        return;
    if (!c->outgoing) {
        if (hs->older != NULL)
            hs->older->hs->newer = hs->newer;
        else
            net->oldest_stranger = hs->newer;
        if (hs->newer != NULL)
            hs->newer->hs->older = hs->older;
        else
            net->newest_stranger = hs->older;
        net->nstrangers--;
    }
    /* The transcript is not secret, but the nonce need not linger. */
    memset(hs, 0, sizeof(*hs));
    free(hs);
    c->hs = NULL;
}

void ax__hs_send_hello(ax__conn_t *c)
{
    ax__handshake_t *hs = c->hs;
    unsigned char *out = c->outgoing ? hs->hello_i : hs->hello_a;
    size_t *len = c->outgoing ? &hs->hello_i_len : &hs->hello_a_len;
    struct raw_body body;

    *len = pack_hello(c, out, sizeof hs->hello_i);
    body = (struct raw_body){out, *len};
    if (*len == 0 || !ax__queue_control(c, AX__FRAME_HELLO, AX_OK, pack_raw, &body))
        ax__conn_end(c, AX_NET_LOST, ax__error(AX_ENOBUFS, "net: cannot build a Hello"));
}

/* ---- the peer's Hello ------------------------------------------------------ */

typedef struct hello {
    ax_addr_t addr;
    uint64_t incarnation, session, flags, max_frame, path_ids;
} hello_t;

static bool is_uint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

static ax_status_t parse_hello(const msgpack_object *o, hello_t *h)
{
    const msgpack_object *f, *a;

    if (o->type != MSGPACK_OBJECT_ARRAY)
        return ax__error(AX_EPROTO, "hello: not an array");
    f = o->via.array.ptr;
    /* Magic and version first, so that another version is named as such
     * whatever else its Hello holds. */
    if (o->via.array.size < 2 || f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size != 4 ||
        memcmp(f[0].via.str.ptr, AX__PROTO_MAGIC, 4) != 0)
        return ax__error(AX_EPROTO, "hello: bad protocol magic");
    if (!is_uint(&f[1]) || f[1].via.u64 != AX__PROTO_VERSION)
        return ax__error(AX_EPROTO, "hello: protocol version %llu; this system speaks only version %u",
                         is_uint(&f[1]) ? (unsigned long long)f[1].via.u64 : 0ull, AX__PROTO_VERSION);
    if (o->via.array.size != HELLO_FIELDS)
        return ax__error(AX_EPROTO, "hello: expected an array of %u", HELLO_FIELDS);
    if (f[2].type != MSGPACK_OBJECT_ARRAY || f[2].via.array.size != 3)
        return ax__error(AX_EPROTO, "hello: bad address");
    a = f[2].via.array.ptr;
    if (!is_uint(&a[0]) || (a[0].via.u64 != 0 && a[0].via.u64 != 4) || a[1].type != MSGPACK_OBJECT_BIN ||
        a[1].via.bin.size != (a[0].via.u64 == 4 ? 16u : 4u) || !is_uint(&a[2]) || a[2].via.u64 > 65535)
        return ax__error(AX_EPROTO, "hello: bad address");
    /* Session 0 means "this system" on a NetMessage: never a connection's. */
    if (!is_uint(&f[3]) || !is_uint(&f[4]) || f[4].via.u64 == 0)
        return ax__error(AX_EPROTO, "hello: bad incarnation or session");
    if (!is_uint(&f[5]) || (f[5].via.u64 & ~(uint64_t)(AX__HELLO_AUTH | AX__HELLO_CLIENT)) != 0)
        return ax__error(AX_EPROTO, "hello: unknown flags");
    if (!is_uint(&f[6]) || f[6].via.u64 < 64)
        return ax__error(AX_EPROTO, "hello: the maximum frame size must be a uint of at least 64");
    if (f[7].type != MSGPACK_OBJECT_BIN || f[7].via.bin.size != AX__NONCE_SIZE)
        return ax__error(AX_EPROTO, "hello: the nonce must be a bin of %u bytes", AX__NONCE_SIZE);
    if (!is_uint(&f[8]))
        return ax__error(AX_EPROTO, "hello: the path-id offer must be a uint");
    memset(&h->addr, 0, sizeof h->addr);
    h->addr.family = a[0].via.u64 == 4 ? 6 : 4;
    memcpy(h->addr.ip, a[1].via.bin.ptr, a[1].via.bin.size);
    h->addr.port = (uint16_t)a[2].via.u64;
    h->incarnation = f[3].via.u64;
    h->session = f[4].via.u64;
    h->flags = f[5].via.u64;
    h->max_frame = f[6].via.u64;
    h->path_ids = f[8].via.u64;
    return AX_OK;
}

/* The peer's secret and ours must both be there, or both be absent. */
static bool auth_agrees(ax__conn_t *c, uint64_t flags)
{
    bool mine = c->net->secret.len > 0, theirs = (flags & AX__HELLO_AUTH) != 0;

    if (mine == theirs)
        return true;
    ax__counter_add(&c->net->c.auth_failures, 1);
    return false;
}

static void auth_failed(ax__conn_t *c, const char *why)
{
    char text[64];
    ax_addr_t from;

    /* Name the peer, never the secret. */
    from = c->peer != NULL ? c->peer->addr : c->hs->addr;
    ax_addr_format(&from, text, sizeof text);
    ax__conn_end(c, AX_NET_LOST, ax__error(AX_EPROTO, "net: authentication failed for %s: %s", text, why));
}

/*
 * The rules of docs/wire.md section 11 for an accepted connection whose
 * peer announced h->addr. Returns the peer when c is kept, NULL when c was
 * closed. Only a connection that proved the secret may replace an open
 * one: without a secret anybody could announce any address.
 */
static ax__peer_t *admit(ax__conn_t *c, const hello_t *h, bool proven)
{
    ax__net_t *net = c->net;
    ax__peer_t *p = ax__peer_get(net, &h->addr);
    ax__conn_t *other;
    bool lower = ax_addr_cmp(&net->self, &h->addr) < 0;

    if (p == NULL) {
        ax__conn_end(c, AX_NET_LOST, AX_ENOMEM);
        return NULL;
    }
    other = p->conn;
    if (other != NULL && other->state == AX__CONN_OPEN) {
        if (!proven) {
            ax__counter_add(&net->c.replace_refused, 1);
            ax__conn_end(c, AX_NET_CLOSED, AX_OK);
            return NULL;
        }
        if (other->peer_incarnation == h->incarnation && other->outgoing && lower) {
            /* Both sides connected at once: the connection opened by the
             * system with the lower address wins. This one loses. */
            ax__conn_end(c, AX_NET_CLOSED, AX_OK);
            return NULL;
        }
    } else if (other != NULL && other->outgoing && lower) {
        ax__conn_end(c, AX_NET_CLOSED, AX_OK); /* our own attempt wins */
        return NULL;
    }
    if (other != NULL) {
        /* The new connection replaces ours: the peer restarted (another
         * incarnation: ours is lost, say so), or it wins the simultaneous
         * connect. Its unwritten frames move to the new one. */
        if (other->state == AX__CONN_OPEN && other->peer_incarnation != h->incarnation)
            ax__net_event(net, AX_NET_LOST, &p->addr, other->session, AX_ECLOSED);
        ax__conn_drop_duplicate(other);
    }
    return p;
}

/* A CLIENT (docs/wire.md section 6, "Clients") takes no part in the rules
 * of section 11: its connection gets a peer of its own, which c holds from
 * now on, so that whatever ends c frees it. */
static ax__peer_t *admit_any(ax__conn_t *c, const hello_t *h, bool proven)
{
    ax__peer_t *p;

    if (!c->hs->client)
        return admit(c, h, proven);
    p = ax__client_admit(c->net, &h->addr);
    if (p == NULL)
        ax__conn_end(c, AX_NET_LOST, ax__error(AX_ENOMEM, "net: out of memory admitting a client"));
    c->peer = p;
    return p;
}

/* The handshake is done: leave the stranger state. Bytes that came
 * behind the last handshake frame (the start of the first Data frame)
 * move to c->pre, which the receive path feeds to the decoder first. */
static void finish(ax__conn_t *c, ax__peer_t *p, const unsigned char *rest, size_t rest_len)
{
    ax__net_t *net = c->net;

    if (ax_decode_buffer_create_shared(net->rx_pool, &net->fmt, &c->rx) != AX_OK ||
        (rest_len > 0 && (c->pre = malloc(rest_len)) == NULL)) {
        ax__conn_end(c, AX_NET_LOST, ax__error(AX_ENOMEM, "net: out of memory opening a connection"));
        return;
    }
    if (rest_len > 0)
        memcpy(c->pre, rest, rest_len);
    c->pre_len = rest_len;
    c->peer_incarnation = c->hs->incarnation;
    ax__hs_end(c);
    ax__conn_open(c, p);
}

/* Handle one handshake frame; false when c ended or opened (the caller
 * stops parsing: the remaining bytes were taken by finish()). */
static bool on_hs_frame(ax__conn_t *c, const ax__frame_header_t *fh, const unsigned char *body,
                        const unsigned char *rest, size_t rest_len)
{
    ax__net_t *net = c->net;
    ax__handshake_t *hs = c->hs;
    msgpack_object o;
    size_t off = 0;
    hello_t h;
    ax_status_t st;

    if (fh->type != AX__FRAME_HELLO && fh->type != AX__FRAME_AUTH) {
        ax__conn_malformed(c, ax__error(AX_EPROTO, "net: frame type %u before the handshake", fh->type));
        return false;
    }
    st = ax__msgpack_check(body, fh->body_len, 1);
    if (st == AX_OK && msgpack_unpack((const char *)body, fh->body_len, &off, ax__thread_zone(), &o) !=
                           MSGPACK_UNPACK_SUCCESS)
        st = ax__error(AX_EPROTO, "net: a handshake frame's body is not one msgpack object");
    if (st != AX_OK) {
        msgpack_zone_clear(ax__thread_zone());
        ax__conn_malformed(c, st);
        return false;
    }

    if (fh->type == AX__FRAME_HELLO) {
        bool received = c->outgoing ? hs->hello_a_len > 0 : hs->hello_i_len > 0;

        st = received ? ax__error(AX_EPROTO, "net: a second Hello") : parse_hello(&o, &h);
        msgpack_zone_clear(ax__thread_zone());
        if (st != AX_OK) {
            ax__conn_malformed(c, st);
            return false;
        }
        if (c->outgoing && h.session != c->session) {
            ax__conn_malformed(c, ax__error(AX_EPROTO, "net: the acceptor's Hello has another session"));
            return false;
        }
        if (c->outgoing && (h.flags & AX__HELLO_CLIENT)) {
            ax__conn_malformed(c, ax__error(AX_EPROTO, "net: the acceptor's Hello has the CLIENT flag"));
            return false;
        }
        hs->client = (h.flags & AX__HELLO_CLIENT) != 0;
        hs->addr = h.addr;
        hs->incarnation = h.incarnation;
        c->peer_max_frame = h.max_frame;
        c->peer_path_ids = h.path_ids;
        if (!auth_agrees(c, h.flags)) {
            auth_failed(c, net->secret.len > 0 ? "the peer has no secret" : "the peer requires a secret we do not have");
            return false;
        }
        hs->auth = net->secret.len > 0;
        if (c->outgoing) {
            unsigned char proof[AX__PROOF_SIZE];

            memcpy(hs->hello_a, body, fh->body_len);
            hs->hello_a_len = fh->body_len;
            if (!hs->auth) {
                finish(c, c->peer, rest, rest_len);
                return false;
            }
            /* We prove first, over both fresh nonces; the acceptor
             * answers with its proof once it keeps the connection. */
            ax__proof_make(&net->secret, AX__PROOF_INITIATOR, hs->hello_i, hs->hello_i_len, hs->hello_a,
                           hs->hello_a_len, proof);
            ax__queue_control(c, AX__FRAME_AUTH, AX_OK, pack_proof, proof);
            hs->await_auth = true;
            return true;
        }
        memcpy(hs->hello_i, body, fh->body_len);
        hs->hello_i_len = fh->body_len;
        c->session = h.session;
        if (!hs->auth) {
            ax__peer_t *p = admit_any(c, &h, false);

            if (p == NULL)
                return false;
            ax__hs_send_hello(c);
            if (c->state == AX__CONN_DEAD)
                return false;
            finish(c, p, rest, rest_len);
            return false;
        }
        ax__hs_send_hello(c);
        hs->await_auth = true;
        return c->state != AX__CONN_DEAD;
    }

    /* An Auth frame. */
    if (!hs->await_auth || o.type != MSGPACK_OBJECT_BIN) {
        msgpack_zone_clear(ax__thread_zone());
        ax__conn_malformed(c, ax__error(AX_EPROTO, "net: an Auth frame out of turn, or not a bin"));
        return false;
    }
    if (!ax__proof_check(&net->secret, c->outgoing ? AX__PROOF_ACCEPTOR : AX__PROOF_INITIATOR, hs->hello_i,
                         hs->hello_i_len, hs->hello_a, hs->hello_a_len, (const unsigned char *)o.via.bin.ptr,
                         o.via.bin.size)) {
        msgpack_zone_clear(ax__thread_zone());
        ax__counter_add(&net->c.auth_failures, 1);
        auth_failed(c, "wrong proof");
        return false;
    }
    msgpack_zone_clear(ax__thread_zone());
    if (c->outgoing) {
        finish(c, c->peer, rest, rest_len);
    } else {
        unsigned char proof[AX__PROOF_SIZE];
        hello_t hh = {.addr = hs->addr, .incarnation = hs->incarnation, .session = c->session};
        ax__peer_t *p = admit_any(c, &hh, true);

        if (p == NULL)
            return false;
        ax__proof_make(&net->secret, AX__PROOF_ACCEPTOR, hs->hello_i, hs->hello_i_len, hs->hello_a,
                       hs->hello_a_len, proof);
        ax__queue_control(c, AX__FRAME_AUTH, AX_OK, pack_proof, proof);
        finish(c, p, rest, rest_len);
    }
    return false;
}

bool ax__hs_readable(ax__conn_t *c)
{
    for (;;) {
        ax__handshake_t *hs = c->hs;
        ssize_t n = read(c->fd, hs->buf + hs->len, sizeof hs->buf - hs->len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            /* A stranger that leaves is not a lost peer. */
            ax__conn_end(c, AX_NET_LOST, n == 0 ? AX_ECLOSED : AX_EIO);
            return false;
        }
        c->last_rx_ns = ax__now_ns();
        hs->len += (size_t)n;
        ax__counter_add(&c->net->c.bytes_received, (uint64_t)n);
        while (hs->len >= AX__FRAME_HEADER_SIZE) {
            ax__frame_header_t fh;
            size_t total;
            ax_status_t st = ax__frame_header_read(hs->buf, &fh);

            if (st == AX_OK && (uint64_t)fh.body_len + AX__FRAME_HEADER_SIZE > AX__HANDSHAKE_FRAME_MAX)
                st = ax__error(AX_ETOOBIG, "net: a %u-byte frame before the handshake (the limit is %u)",
                               fh.body_len, AX__HANDSHAKE_FRAME_MAX - AX__FRAME_HEADER_SIZE);
            if (st != AX_OK) {
                /* No reply before the handshake: whoever this is learns
                 * nothing from us. */
                ax__conn_malformed(c, st);
                return false;
            }
            total = AX__FRAME_HEADER_SIZE + fh.body_len;
            if (hs->len < total)
                break;
            if (!on_hs_frame(c, &fh, hs->buf + AX__FRAME_HEADER_SIZE, hs->buf + total, hs->len - total))
                return c->state != AX__CONN_DEAD;
            memmove(hs->buf, hs->buf + total, hs->len - total);
            hs->len -= total;
        }
    }
}
