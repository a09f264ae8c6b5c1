/* Internal: the NetMessage layout, shared with actor/ and dispatch/. */
#ifndef AXON_SERIAL_NETMSG_H
#define AXON_SERIAL_NETMSG_H

#include "axon/serial.h"

struct ax_net_msg_s {
    ax_msg_t hdr;          /* hdr.sender is the sender when it is local */
    ax_lease_t frame;      /* the whole Data frame (or the frame holding it) */
    uint32_t env_off;      /* where the envelope starts in frame */
    uint32_t payload_off;  /* where the payload starts in frame */
    uint64_t serialiser_id;
    uint64_t session;
    void *route;           /* dispatch/: the ax__remote_t it is going to */
    void (*route_release)(void *route); /* called on route when the message
                                           is reset (a pin it holds), or NULL */
    uint32_t wire;         /* dispatch/: what the frame is on a send queue */
};

struct ax_payload_s {
    ax_lease_t lease; /* one slice */
};

/* A NetMessage from pool (or allocated when pool is NULL) that takes over
 * *frame (emptied on success). */
ax_status_t ax__net_msg_new(ax_msg_pool_t *pool, ax_lease_t *frame, uint32_t payload_off,
                            uint64_t serialiser_id, uint64_t session, ax_net_msg_t **out);

#endif
