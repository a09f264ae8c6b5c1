/* NetMessage: a serialised message delivered to receive_network, decoded
 * lazily on the receiver's thread. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "serial/frame.h"
#include "serial/mpcheck.h"
#include "serial/netmsg.h"

static void net_msg_reset(ax_msg_t *msg)
{
    ax_net_msg_t *nm = (ax_net_msg_t *)msg;

    /* A written frame's lease and pin went with its write (the network
     * thread's release batch): skip the calls for what is already empty. */
    if (nm->frame.chunk != NULL)
        ax_lease_release(&nm->frame);
    if (nm->alt_kind != AX__NM_ALT_NONE)
        ax__net_msg_clear_alt(nm);
    if (nm->route_release != NULL)
        nm->route_release(nm->route);
    nm->route = NULL;
    nm->route_release = NULL;
}

void ax__net_msg_clear_alt(ax_net_msg_t *nm)
{
    if (nm->alt_heap != NULL) {
        free(nm->alt_heap);
        nm->alt_heap = NULL;
    }
    nm->alt_kind = AX__NM_ALT_NONE;
    nm->alt_len = 0;
}

ax_status_t ax__net_msg_set_alt(ax_net_msg_t *nm, uint8_t kind, const unsigned char *bytes, size_t len)
{
    ax__net_msg_clear_alt(nm);
    if (len > UINT16_MAX)
        return ax__error(AX_EINVAL, "net message: an envelope of %zu bytes", len);
    if (len > sizeof nm->alt_inline) {
        nm->alt_heap = malloc(len);
        if (nm->alt_heap == NULL)
            return ax__error(AX_ENOMEM, "net message: no memory for an envelope");
        memcpy(nm->alt_heap, bytes, len);
    } else {
        memcpy(nm->alt_inline, bytes, len);
    }
    nm->alt_kind = kind;
    nm->alt_len = (uint16_t)len;
    return AX_OK;
}

const ax_msg_type_t ax_net_msg_type = {
    .name = "axon.net-message",
    .size = sizeof(ax_net_msg_t),
    .reset = net_msg_reset,
};

ax_status_t ax__net_msg_new(ax_msg_pool_t *pool, ax_lease_t *frame, uint32_t payload_off,
                            uint64_t serialiser_id, uint64_t session, ax_net_msg_t **out)
{
    ax_msg_t *msg;
    ax_net_msg_t *nm;
    ax_status_t st;

    st = pool != NULL ? ax_msg_get(pool, AX_ALWAYS, &msg) : ax_msg_alloc(&ax_net_msg_type, &msg);
    if (st != AX_OK)
        return st;
    nm = (ax_net_msg_t *)msg;
    ax_lease_move(&nm->frame, frame);
    nm->env_off = AX__FRAME_HEADER_SIZE;
    nm->payload_off = payload_off;
    nm->route = NULL;
    nm->route_release = NULL;
    nm->wire = 0;
    nm->env_tag = 0;
    nm->alt_kind = AX__NM_ALT_NONE;
    nm->alt_len = 0;
    nm->alt_heap = NULL;
    nm->serialiser_id = serialiser_id;
    nm->session = session;
    nm->via = 0;
    *out = nm;
    return AX_OK;
}

uint64_t ax_net_msg_serialiser(const ax_net_msg_t *nm)
{
    return nm->serialiser_id;
}

uint64_t ax_net_msg_session(const ax_net_msg_t *nm)
{
    return nm->session;
}

static ax_status_t paths(const ax_net_msg_t *nm, ax__envelope_t *env)
{
    if (nm->alt_kind == AX__NM_ALT_RX)
        return ax__envelope_parse(ax__net_msg_alt(nm), nm->alt_len, env);
    return ax__envelope_read(&nm->frame, nm->env_off, env);
}

ax_status_t ax_net_msg_sender_path(const ax_net_msg_t *nm, ax_path_t *out)
{
    ax__envelope_t env;
    ax_status_t st = paths(nm, &env);

    if (st != AX_OK)
        return st;
    if (!env.has_src)
        return ax__error(AX_ENOTFOUND, "net message: sent from outside any actor");
    *out = env.src;
    return AX_OK;
}

ax_status_t ax_net_msg_receiver_path(const ax_net_msg_t *nm, ax_path_t *out)
{
    ax__envelope_t env;
    ax_status_t st = paths(nm, &env);

    if (st == AX_OK)
        *out = env.dst;
    return st;
}

ax_status_t ax_net_msg_payload(const ax_net_msg_t *nm, ax_lease_t *out)
{
    size_t len = ax__lease_len(&nm->frame);

    return ax_lease_slice(&nm->frame, nm->payload_off, len - nm->payload_off, out);
}

ax_status_t ax_payload_hold(const ax_payload_t *payload, ax_lease_t *out)
{
    if (payload == NULL || out == NULL)
        return ax__error(AX_EINVAL, "payload_hold: NULL argument");
    return ax_lease_clone(&payload->lease, out);
}

/*
 * The payload in one piece, for msgpack. A one-slice frame lends its bytes
 * (payload->lease is a view that takes no reference: *owned = false, and
 * ax_payload_hold() takes a real one). A chained payload, larger than what
 * was left of a chunk, is copied once (*owned = true: release it).
 */
static ax_status_t payload_of(const ax_net_msg_t *nm, ax_payload_t *payload, bool *owned)
{
    const ax_lease_t *f = &nm->frame;
    size_t len = ax__lease_len(f) - nm->payload_off;
    ax_lease_t slice;
    ax_status_t st;

    if (f->ext == NULL) {
        payload->lease = (ax_lease_t){len > 0 ? f->chunk : NULL, f->off + nm->payload_off,
                                      (uint32_t)len, NULL};
        *owned = false;
        return AX_OK;
    }
    st = ax_net_msg_payload(nm, &slice);
    if (st == AX_OK) {
        st = ax_lease_flatten(&slice, &payload->lease);
        ax_lease_release(&slice);
    }
    *owned = st == AX_OK;
    return st;
}

ax_status_t ax_net_msg_deserialise(const ax_net_msg_t *nm, const ax_msg_type_t *type, ax_msg_t **out)
{
    ax_payload_t payload;
    msgpack_zone *zone;
    msgpack_object obj;
    const char *bytes;
    size_t off = 0, len;
    bool owned;
    ax_status_t st;
    int rc;

    if (nm == NULL || type == NULL || out == NULL)
        return ax__error(AX_EINVAL, "deserialise: NULL argument");
    if (type->serialiser_id != nm->serialiser_id)
        return ax__error(AX_ETYPE, "deserialise: the payload has serialiser id %llu, \"%s\" is %llu",
                         (unsigned long long)nm->serialiser_id, type->name ? type->name : "?",
                         (unsigned long long)type->serialiser_id);
    if (type->deserialise == NULL)
        return ax__error(AX_EINVAL, "deserialise: \"%s\" has no deserialise function", type->name);
    zone = ax__thread_zone();
    if (zone == NULL)
        return ax__error(AX_ENOMEM, "deserialise: out of memory");
    st = payload_of(nm, &payload, &owned);
    if (st != AX_OK)
        return st;
    bytes = ax_lease_data(&payload.lease);
    len = ax__lease_len(&payload.lease);
    /* Bytes from a peer (session != 0) are bounded before msgpack-c
     * allocates for them; this system's own serialisers produced the
     * rest. */
    if (nm->session != 0 && (st = ax__msgpack_check(bytes, len, 1)) != AX_OK) {
        st = ax__error(AX_EPROTO, "deserialise \"%s\": %s", type->name, ax_error_detail());
    } else {
        rc = bytes != NULL ? msgpack_unpack(bytes, len, &off, zone, &obj) : MSGPACK_UNPACK_CONTINUE;
        if (rc != MSGPACK_UNPACK_SUCCESS)
            st = ax__error(AX_EPROTO, "deserialise \"%s\": the payload is not exactly one msgpack object",
                           type->name);
        else
            st = type->deserialise(&obj, &payload, out);
    }
    msgpack_zone_clear(zone);
    if (owned)
        ax_lease_release(&payload.lease);
    return st;
}
