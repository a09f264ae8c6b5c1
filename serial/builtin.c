/* The built-in serialisers: bytes, strings, u64 and any msgpack object. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "serial/netmsg.h"

/* ---- bytes and strings ------------------------------------------------ */

/* Drops what the message owns; with no release, the runtime then frees
 * the message itself with the allocator it came from. */
static void bytes_reset(ax_msg_t *msg)
{
    ax_bytes_msg_t *b = (ax_bytes_msg_t *)msg;

    ax_lease_release(&b->hold);
    free(b->owned);
    b->owned = NULL;
}

static size_t bytes_hint(const ax_msg_t *msg)
{
    return ((const ax_bytes_msg_t *)msg)->len + 5;
}

static ax_status_t pack_result(int rc)
{
    return rc == 0 ? AX_OK : AX_ENOBUFS;
}

/* An empty message has data NULL: msgpack-c would still pass (NULL, 0)
 * to the write callback, and memcpy from NULL is undefined even for 0
 * bytes. So an empty body is not written at all. */
static ax_status_t bytes_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    const ax_bytes_msg_t *b = (const ax_bytes_msg_t *)msg;
    int rc = msgpack_pack_bin(pk, b->len);

    return pack_result(rc == 0 && b->len > 0 ? msgpack_pack_bin_body(pk, b->data, b->len) : rc);
}

static ax_status_t string_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    const ax_bytes_msg_t *b = (const ax_bytes_msg_t *)msg;
    int rc = msgpack_pack_str(pk, b->len);

    return pack_result(rc == 0 && b->len > 0 ? msgpack_pack_str_body(pk, b->data, b->len) : rc);
}

/* A message over [data, data + len): a copy, or a view holding payload. */
static ax_status_t bytes_make(const ax_msg_type_t *type, const void *data, size_t len,
                              const ax_payload_t *payload, ax_msg_t **out)
{
    ax_bytes_msg_t *b;
    ax_msg_t *msg;
    ax_status_t st = ax_msg_alloc(type, &msg);

    if (st != AX_OK)
        return st;
    b = (ax_bytes_msg_t *)msg;
    if (payload != NULL) {
        st = ax_payload_hold(payload, &b->hold);
        b->data = data;
    } else if (len > 0) {
        b->owned = malloc(len);
        if (b->owned == NULL)
            st = ax__error(AX_ENOMEM, "%s: out of memory for %zu bytes", type->name, len);
        else
            memcpy(b->owned, data, len);
        b->data = b->owned;
    }
    if (st != AX_OK) {
        ax_msg_release(&msg);
        return st;
    }
    b->len = len;
    *out = msg;
    return AX_OK;
}

static ax_status_t expect(const msgpack_object *obj, msgpack_object_type t, const char *what)
{
    if (obj->type != t)
        return ax__error(AX_EPROTO, "deserialise: expected %s", what);
    return AX_OK;
}

static ax_status_t bytes_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                     ax_msg_t **out)
{
    ax_status_t st = expect(obj, MSGPACK_OBJECT_BIN, "a msgpack bin");

    (void)payload;
    return st != AX_OK ? st : bytes_make(&ax_bytes_type, obj->via.bin.ptr, obj->via.bin.size, NULL, out);
}

static ax_status_t bytes_view_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                          ax_msg_t **out)
{
    ax_status_t st = expect(obj, MSGPACK_OBJECT_BIN, "a msgpack bin");

    return st != AX_OK ? st
                       : bytes_make(&ax_bytes_view_type, obj->via.bin.ptr, obj->via.bin.size, payload, out);
}

static ax_status_t string_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                      ax_msg_t **out)
{
    ax_status_t st = expect(obj, MSGPACK_OBJECT_STR, "a msgpack str");

    (void)payload;
    return st != AX_OK ? st : bytes_make(&ax_string_type, obj->via.str.ptr, obj->via.str.size, NULL, out);
}

static ax_status_t string_view_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                           ax_msg_t **out)
{
    ax_status_t st = expect(obj, MSGPACK_OBJECT_STR, "a msgpack str");

    return st != AX_OK ? st
                       : bytes_make(&ax_string_view_type, obj->via.str.ptr, obj->via.str.size, payload, out);
}

#define BYTES_TYPE(var, tname, id, ser, deser)                                                     \
    const ax_msg_type_t var = {                                                                    \
        .name = tname,                                                                             \
        .size = sizeof(ax_bytes_msg_t),                                                            \
        .reset = bytes_reset,                                                                      \
        .serialiser_id = id,                                                                       \
        .size_hint = bytes_hint,                                                                   \
        .serialise = ser,                                                                          \
        .deserialise = deser,                                                                      \
    }

BYTES_TYPE(ax_bytes_type, "axon.bytes", AX_SER_BYTES, bytes_serialise, bytes_deserialise);
BYTES_TYPE(ax_bytes_view_type, "axon.bytes-view", AX_SER_BYTES, bytes_serialise, bytes_view_deserialise);
BYTES_TYPE(ax_string_type, "axon.string", AX_SER_STRING, string_serialise, string_deserialise);
BYTES_TYPE(ax_string_view_type, "axon.string-view", AX_SER_STRING, string_serialise,
           string_view_deserialise);

ax_status_t ax_bytes_msg_new(const void *data, size_t len, ax_msg_t **out)
{
    if (out == NULL || (data == NULL && len > 0))
        return ax__error(AX_EINVAL, "bytes_msg_new: NULL argument");
    return bytes_make(&ax_bytes_type, data, len, NULL, out);
}

ax_status_t ax_string_msg_new(const char *text, ax_msg_t **out)
{
    if (out == NULL || text == NULL)
        return ax__error(AX_EINVAL, "string_msg_new: NULL argument");
    return bytes_make(&ax_string_type, text, strlen(text), NULL, out);
}

/* ---- u64 ----------------------------------------------------------------- */

static size_t u64_hint(const ax_msg_t *msg)
{
    (void)msg;
    return 9;
}

static ax_status_t u64_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    return pack_result(msgpack_pack_uint64(pk, ((const ax_u64_msg_t *)msg)->value));
}

static ax_status_t u64_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                   ax_msg_t **out)
{
    ax_status_t st = expect(obj, MSGPACK_OBJECT_POSITIVE_INTEGER, "an unsigned integer");

    (void)payload;
    return st != AX_OK ? st : ax_u64_msg_new(obj->via.u64, out);
}

const ax_msg_type_t ax_u64_type = {
    .name = "axon.u64",
    .size = sizeof(ax_u64_msg_t),
    .serialiser_id = AX_SER_U64,
    .size_hint = u64_hint,
    .serialise = u64_serialise,
    .deserialise = u64_deserialise,
};

ax_status_t ax_u64_msg_new(uint64_t value, ax_msg_t **out)
{
    ax_status_t st = ax_msg_alloc(&ax_u64_type, out);

    if (st == AX_OK)
        ((ax_u64_msg_t *)*out)->value = value;
    return st;
}

/* ---- any msgpack object --------------------------------------------------- */

/* As bytes_reset. */
static void object_reset(ax_msg_t *msg)
{
    ax_object_msg_t *o = (ax_object_msg_t *)msg;

    if (o->zone != NULL)
        msgpack_zone_free(o->zone);
    o->zone = NULL;
    ax_lease_release(&o->hold);
    free(o->owned);
    o->owned = NULL;
}

static ax_status_t object_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    return pack_result(msgpack_pack_object(pk, ((const ax_object_msg_t *)msg)->obj));
}

/* Unpack bytes (which stay valid as long as the message) into the
 * message's own zone. */
static ax_status_t object_fill(ax_object_msg_t *o, const char *bytes, size_t len)
{
    size_t off = 0;

    o->zone = msgpack_zone_new(256);
    if (o->zone == NULL)
        return ax__error(AX_ENOMEM, "object message: out of memory");
    if (msgpack_unpack(bytes, len, &off, o->zone, &o->obj) != MSGPACK_UNPACK_SUCCESS)
        return ax__error(AX_EPROTO, "object message: not exactly one msgpack object");
    return AX_OK;
}

static ax_status_t object_make(const ax_msg_type_t *type, const ax_payload_t *payload,
                               const char *bytes, size_t len, void *owned, ax_msg_t **out)
{
    ax_object_msg_t *o;
    ax_msg_t *msg;
    ax_status_t st = ax_msg_alloc(type, &msg);

    if (st != AX_OK) {
        free(owned);
        return st;
    }
    o = (ax_object_msg_t *)msg;
    o->owned = owned;
    if (payload != NULL)
        st = ax_payload_hold(payload, &o->hold);
    if (st == AX_OK)
        st = object_fill(o, bytes, len);
    if (st != AX_OK) {
        ax_msg_release(&msg);
        return st;
    }
    *out = msg;
    return AX_OK;
}

/* Pack obj into a fresh buffer: the deep copy that backs a message. */
static ax_status_t object_bytes(const msgpack_object *obj, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *obj) != 0) {
        msgpack_sbuffer_destroy(sb);
        return ax__error(AX_ENOMEM, "object message: out of memory");
    }
    return AX_OK;
}

ax_status_t ax_object_msg_new(const msgpack_object *obj, ax_msg_t **out)
{
    msgpack_sbuffer sb;
    ax_status_t st;

    if (obj == NULL || out == NULL)
        return ax__error(AX_EINVAL, "object_msg_new: NULL argument");
    st = object_bytes(obj, &sb);
    if (st != AX_OK)
        return st;
    return object_make(&ax_object_type, NULL, sb.data, sb.size, sb.data, out);
}

static ax_status_t object_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                      ax_msg_t **out)
{
    (void)payload;
    return ax_object_msg_new(obj, out);
}

static ax_status_t object_view_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                           ax_msg_t **out)
{
    const ax_lease_t *l = &payload->lease;

    (void)obj;
    return object_make(&ax_object_view_type, payload, ax_lease_data(l), ax__lease_len(l), NULL, out);
}

const ax_msg_type_t ax_object_type = {
    .name = "axon.msgpack",
    .size = sizeof(ax_object_msg_t),
    .reset = object_reset,
    .serialiser_id = AX_SER_MSGPACK,
    .serialise = object_serialise,
    .deserialise = object_deserialise,
};

const ax_msg_type_t ax_object_view_type = {
    .name = "axon.msgpack-view",
    .size = sizeof(ax_object_msg_t),
    .reset = object_reset,
    .serialiser_id = AX_SER_MSGPACK,
    .serialise = object_serialise,
    .deserialise = object_view_deserialise,
};
