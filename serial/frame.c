/* Frame headers and Data frame envelopes. */
#include <pthread.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/error.h"
#include "serial/frame.h"
#include "serial/mpcheck.h"

ax_status_t ax__frame_header_read(const unsigned char in[AX__FRAME_HEADER_SIZE], ax__frame_header_t *h)
{
    h->body_len = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
    h->type = in[4];
    h->flags = in[5];
    h->status = in[6];
    if (h->type < AX__FRAME_HELLO || h->type > AX__FRAME_AUTH)
        return ax__error(AX_EPROTO, "frame: unknown frame type %u", h->type);
    if (h->flags != 0 || in[7] != 0)
        return ax__error(AX_EPROTO, "frame: reserved header bits are set (flags %u, byte 7 %u)",
                         h->flags, in[7]);
    return AX_OK;
}

/* A packer over a fixed buffer (a packed path or envelope: never more
 * than its array holds); a write that would overflow fails. */
typedef struct fixed_out {
    unsigned char *bytes;
    size_t cap;
    uint16_t *len;
} fixed_out_t;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_out_t *o = data;

    if (len > o->cap - *o->len)
        return -1;
    memcpy(o->bytes + *o->len, buf, len);
    *o->len = (uint16_t)(*o->len + len);
    return 0;
}

ax_status_t ax__path_packed(const ax_path_t *p, ax__packed_path_t *out)
{
    fixed_out_t o = {out->bytes, sizeof out->bytes, &out->len};
    msgpack_packer pk;

    out->len = 0;
    msgpack_packer_init(&pk, &o, fixed_write);
    if (ax_path_pack(p, &pk) != 0)
        return ax__error(AX_EINVAL, "frame: the path cannot be encoded");
    return AX_OK;
}

ax_status_t ax__envelope_packed(const ax__packed_path_t *dst, const ax__packed_path_t *src,
                                uint64_t serialiser_id, ax__packed_env_t *out)
{
    fixed_out_t o = {out->bytes, sizeof out->bytes, &out->len};
    msgpack_packer pk;
    int rc;

    out->len = 0;
    msgpack_packer_init(&pk, &o, fixed_write);
    rc = msgpack_pack_array(&pk, 3);
    if (rc == 0)
        rc = fixed_write(&o, (const char *)dst->bytes, dst->len);
    if (rc == 0)
        rc = src != NULL ? fixed_write(&o, (const char *)src->bytes, src->len) : msgpack_pack_nil(&pk);
    if (rc == 0)
        rc = msgpack_pack_uint64(&pk, serialiser_id);
    /* Two packed paths and an id always fit (AX__ENVELOPE_MAX). */
    return rc == 0 ? AX_OK : ax__error(AX_EINVAL, "frame: an envelope above %u bytes", AX__ENVELOPE_MAX);
}

/* In the open message: the header's room, then the envelope in one write. */
static ax_status_t write_head(ax_encode_buffer_t *eb, const ax__packed_env_t *env, size_t *mark)
{
    ax_status_t st = ax_encode_reserve(eb, AX__FRAME_HEADER_SIZE, mark);

    return st == AX_OK ? ax_encode_write(eb, env->bytes, env->len) : st;
}

static void fill_header(ax_encode_buffer_t *eb, size_t mark, size_t body_len)
{
    unsigned char hdr[AX__FRAME_HEADER_SIZE];

    ax__frame_header_write(hdr, &(ax__frame_header_t){(uint32_t)body_len, AX__FRAME_DATA, 0, 0});
    ax_encode_fill(eb, mark, hdr, sizeof hdr);
}

ax_status_t ax__frame_encode_data_env(ax_encode_buffer_t *eb, const ax__packed_env_t *env,
                                      const ax_msg_type_t *type, const ax_msg_t *msg, ax_lease_t *frame,
                                      uint32_t *payload_off)
{
    size_t hint = AX__FRAME_HEADER_SIZE + env->len + 16, mark = 0, off, len;
    ax_status_t st;

    if (type->size_hint != NULL)
        hint += type->size_hint(msg);
    st = ax_encode_begin(eb, hint);
    if (st != AX_OK)
        return st;
    st = write_head(eb, env, &mark);
    off = ax_encode_len(eb);
    if (st == AX_OK)
        st = type->serialise(msg, ax_encode_packer(eb));
    /* A serialiser reports a failed pack as it likes (AX_ENOBUFS is
     * typical); the buffer knows when the message can never fit. */
    if (st != AX_OK && ax_encode_write(eb, NULL, 0) == AX_ETOOBIG)
        st = AX_ETOOBIG;
    len = ax_encode_len(eb);
    if (st == AX_OK && len - AX__FRAME_HEADER_SIZE > UINT32_MAX)
        st = ax__error(AX_ETOOBIG, "frame: a body of %zu bytes does not fit a frame",
                       len - AX__FRAME_HEADER_SIZE);
    if (st != AX_OK) {
        ax_encode_abort(eb);
        return st;
    }
    fill_header(eb, mark, len - AX__FRAME_HEADER_SIZE);
    st = ax_encode_end(eb, frame);
    if (st == AX_OK)
        *payload_off = (uint32_t)off;
    return st;
}

/* In eb, as one message: the header and envelope env of a Data frame,
 * then lead (lead_len bytes, none when 0), for a body that goes on for
 * rest more bytes in a later slice. */
static ax_status_t encode_head(ax_encode_buffer_t *eb, const ax__packed_env_t *env, const void *lead,
                               size_t lead_len, size_t rest, ax_lease_t *head)
{
    size_t mark = 0, len;
    ax_status_t st = ax_encode_begin(eb, AX__FRAME_HEADER_SIZE + env->len + lead_len);

    if (st != AX_OK)
        return st;
    st = write_head(eb, env, &mark);
    if (st == AX_OK && lead_len > 0)
        st = ax_encode_write(eb, lead, lead_len);
    len = ax_encode_len(eb) - AX__FRAME_HEADER_SIZE + rest;
    if (st == AX_OK && len > UINT32_MAX)
        st = ax__error(AX_ETOOBIG, "frame: a body of %zu bytes does not fit a frame", len);
    if (st != AX_OK) {
        ax_encode_abort(eb);
        return st;
    }
    fill_header(eb, mark, len);
    return ax_encode_end(eb, head);
}

ax_status_t ax__frame_encode_data_lent(ax_encode_buffer_t *eb, const ax__packed_env_t *env,
                                       const ax_msg_type_t *type, const ax_msg_t *msg,
                                       void (*release)(void *arg), void *arg, ax_lease_t *frame,
                                       uint32_t *payload_off, bool *lent)
{
    const uint8_t *data;
    unsigned char lead[5]; /* a bin or str header: at most 5 bytes */
    uint16_t lead_len = 0;
    fixed_out_t o = {lead, sizeof lead, &lead_len};
    msgpack_packer pk;
    size_t len;
    ax_lease_t head, lease;
    bool str;
    ax_status_t st;

    *lent = false;
    if (!ax__bytes_body(type, msg, &data, &len, &str) || len < AX__FRAME_LEND_MIN ||
        ax__lease_foreign(data, len, release, arg, &lease) != AX_OK)
        return ax__frame_encode_data_env(eb, env, type, msg, frame, payload_off);
    /* The frame's first slice: header, envelope and the body's msgpack
     * header; the lent body follows. */
    msgpack_packer_init(&pk, &o, fixed_write);
    if (str)
        msgpack_pack_str(&pk, len); /* cannot fail: 5 bytes at most */
    else
        msgpack_pack_bin(&pk, len);
    st = encode_head(eb, env, lead, lead_len, len, &head);
    if (st == AX_OK) {
        st = ax_lease_concat(&head, &lease); /* on failure both are as they were */
        if (st != AX_OK)
            ax_lease_release(&head);
    }
    if (st != AX_OK) {
        ax__lease_foreign_cancel(&lease); /* never shared: release is not called */
        return st;
    }
    *frame = head;
    *payload_off = (uint32_t)(AX__FRAME_HEADER_SIZE + env->len);
    *lent = true;
    return AX_OK;
}

ax_status_t ax__frame_encode_head_packed(ax_encode_buffer_t *eb, const ax__packed_path_t *dst,
                                         const ax__packed_path_t *src, uint64_t serialiser_id,
                                         size_t payload_len, ax_lease_t *head)
{
    ax__packed_env_t env;
    ax_status_t st = ax__envelope_packed(dst, src, serialiser_id, &env);

    return st != AX_OK ? st : encode_head(eb, &env, NULL, 0, payload_len, head);
}

/* msgpack_unpack needs a zone for the envelope's arrays; one per thread,
 * cleared after each use, so decoding allocates nothing in the steady
 * state. */
static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;

static void zone_free(void *z)
{
    msgpack_zone_free(z);
}

static void zone_key_init(void)
{
    pthread_key_create(&zone_key, zone_free);
}

msgpack_zone *ax__thread_zone(void)
{
    msgpack_zone *z;

    pthread_once(&zone_once, zone_key_init);
    z = pthread_getspecific(zone_key);
    if (z == NULL) {
        z = msgpack_zone_new(2048);
        if (z != NULL)
            pthread_setspecific(zone_key, z);
    }
    return z;
}

ax_status_t ax__envelope_read(const ax_lease_t *frame, size_t env_off, ax__envelope_t *env)
{
    unsigned char copy[AX__ENVELOPE_MAX];
    size_t frame_len = ax__lease_len(frame), avail;
    const unsigned char *body;
    ax_status_t st;

    if (frame_len <= env_off)
        return ax__error(AX_EPROTO, "envelope: frame of %zu bytes has no body", frame_len);
    avail = frame_len - env_off;
    if (ax_lease_data(frame) != NULL) {
        body = (const unsigned char *)ax_lease_data(frame) + env_off;
    } else {
        /* A chained frame: the envelope is short, copy its start. */
        if (avail > sizeof copy)
            avail = sizeof copy;
        ax_lease_copy_out(frame, env_off, copy, avail);
        body = copy;
    }
    st = ax__envelope_parse(body, avail, env);
    if (st == AX_OK)
        env->payload_off = (uint32_t)(env_off + env->payload_off);
    return st;
}

ax_status_t ax__envelope_parse(const unsigned char *body, size_t avail, ax__envelope_t *env)
{
    size_t off = 0;
    msgpack_zone *zone = ax__thread_zone();
    msgpack_object obj;
    msgpack_object *f;
    ax_status_t st;
    int rc;

    if (zone == NULL)
        return ax__error(AX_ENOMEM, "envelope: out of memory");
    if (avail == 0)
        return ax__error(AX_EPROTO, "envelope: empty");
    /* Bytes from a peer: bound every container before msgpack-c reserves
     * memory for it. */
    st = ax__msgpack_check(body, avail, 1);
    if (st != AX_OK)
        return ax__error(AX_EPROTO, "envelope: %s", ax_error_detail());
    rc = msgpack_unpack((const char *)body, avail, &off, zone, &obj);
    if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) {
        st = ax__error(AX_EPROTO, "envelope: not a complete msgpack object");
    } else if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != 3) {
        st = ax__error(AX_EPROTO, "envelope: expected an array of 3 elements");
    } else {
        f = obj.via.array.ptr;
        st = ax_path_unpack(&f[0], &env->dst);
        if (st == AX_OK && f[1].type == MSGPACK_OBJECT_NIL) {
            env->has_src = false;
        } else if (st == AX_OK) {
            env->has_src = true;
            st = ax_path_unpack(&f[1], &env->src);
        }
        if (st == AX_OK && f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            st = ax__error(AX_EPROTO, "envelope: the serialiser id is not an unsigned integer");
        if (st == AX_OK) {
            env->serialiser_id = f[2].via.u64;
            env->payload_off = (uint32_t)off;
        }
    }
    msgpack_zone_clear(zone);
    return st;
}
