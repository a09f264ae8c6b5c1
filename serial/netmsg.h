/* Internal: the NetMessage layout, shared with actor/ and dispatch/. */
#ifndef AXON_SERIAL_NETMSG_H
#define AXON_SERIAL_NETMSG_H

#include "axon/serial.h"
#include "buffers/chunk.h"

/* Room for a path-id head or a full envelope without an allocation: two
 * IPv4 paths with short names. */
#define AX__NM_ALT_INLINE 56

struct ax_net_msg_s {
    ax_msg_t hdr;          /* hdr.sender is the sender when it is local */
    ax_lease_t frame;      /* the whole Data frame (or the frame holding it) */
    uint32_t env_off;      /* where the envelope starts in frame */
    uint32_t payload_off;  /* where the payload starts in frame */
    uint64_t serialiser_id;
    uint64_t session;
    /* dispatch/: the acceptor's id of the CLIENT connection (docs/wire.md
     * section 6, "Clients") this message came over, to which replies to its sender go
     * back; 0 when it came from a system reached by its address. */
    uint64_t via;
    void *route;           /* dispatch/: the ax__remote_t it is going to */
    void (*route_release)(void *route); /* called on route when the message
                                           is reset (a pin it holds), or NULL */
    uint32_t wire;         /* dispatch/: what the frame is on a send queue */
    /* Not 0: frames with the same tag were encoded with the same envelope
     * bytes (actor/serialised.c, the sender's envelope memo), so a
     * connection compacts it once (dispatch/netthread.c, compact). */
    uint64_t env_tag;
    /* Path ids (docs/wire.md section 6.1, serial/pathtab.h). TX: alt is
     * the header and envelope to write in place of frame[0, payload_off)
     * on the connection the frame is queued on. RX: the envelope with its
     * paths in full, for a frame that came with ids (frame keeps the
     * payload). */
    uint8_t alt_kind;      /* enum ax__nm_alt */
    uint16_t alt_len;
    unsigned char *alt_heap; /* the bytes when above the inline room */
    unsigned char alt_inline[AX__NM_ALT_INLINE];
};

enum ax__nm_alt { AX__NM_ALT_NONE, AX__NM_ALT_TX, AX__NM_ALT_RX };

/* Keep a copy of bytes[0, len) as nm's alt of this kind (replacing any);
 * AX_ENOMEM leaves nm without one. */
ax_status_t ax__net_msg_set_alt(ax_net_msg_t *nm, uint8_t kind, const unsigned char *bytes, size_t len);
void ax__net_msg_clear_alt(ax_net_msg_t *nm);

/* Keep alt_inline[0, len), written there by the caller, as nm's alt of
 * this kind; nm has no alt (ax__net_msg_clear_alt). */
static inline void ax__net_msg_keep_inline_alt(ax_net_msg_t *nm, uint8_t kind, size_t len)
{
    nm->alt_kind = kind;
    nm->alt_len = (uint16_t)len;
}

static inline const unsigned char *ax__net_msg_alt(const ax_net_msg_t *nm)
{
    return nm->alt_heap != NULL ? nm->alt_heap : nm->alt_inline;
}

/* The bytes nm puts on the wire: the alt head and the payload, or the
 * frame. */
static inline size_t ax__net_msg_wire_len(const ax_net_msg_t *nm)
{
    size_t len = ax__lease_len(&nm->frame);

    return nm->alt_kind == AX__NM_ALT_TX ? nm->alt_len + len - nm->payload_off : len;
}

struct ax_payload_s {
    ax_lease_t lease; /* one slice */
};

/* A NetMessage from pool (or allocated when pool is NULL) that takes over
 * *frame (emptied on success). */
ax_status_t ax__net_msg_new(ax_msg_pool_t *pool, ax_lease_t *frame, uint32_t payload_off,
                            uint64_t serialiser_id, uint64_t session, ax_net_msg_t **out);

#endif
