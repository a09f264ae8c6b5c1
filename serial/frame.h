/*
 * Internal to the library (serial/ and its users actor/, dispatch/): the
 * frame layout of docs/wire.md.
 *
 * Every frame is an 8-byte big-endian header and a body:
 *   0..3  body length (bytes after the header)
 *   4     frame type (ax__frame_type)
 *   5     flags (0; reserved)
 *   6     status (an ax_status_t wire byte; 0 except in Status frames)
 *   7     reserved (0)
 * A Data frame's body is the envelope, a msgpack array
 *   [receiver path, sender path or nil, serialiser id]
 * followed by the payload: one msgpack object from the serialiser.
 */
#ifndef AXON_SERIAL_FRAME_H
#define AXON_SERIAL_FRAME_H

#include "axon/buffers.h"
#include "axon/serial.h"

#define AX__FRAME_HEADER_SIZE 8
/* Longest envelope: two named paths of 255-byte names and an id. */
#define AX__ENVELOPE_MAX 640

enum ax__frame_type {
    AX__FRAME_HELLO = 1,
    AX__FRAME_DATA = 2,
    AX__FRAME_STATUS = 3,
    AX__FRAME_BYE = 4,
    AX__FRAME_HEARTBEAT = 5,
    AX__FRAME_ACK = 6,
    AX__FRAME_AUTH = 7, /* wire version 2: a handshake proof */
};

typedef struct ax__frame_header_s {
    uint32_t body_len;
    uint8_t type;
    uint8_t flags;
    uint8_t status;
} ax__frame_header_t;

/* Inline: every Data frame's head is written here, on the sending thread. */
static inline void ax__frame_header_write(unsigned char out[AX__FRAME_HEADER_SIZE], const ax__frame_header_t *h)
{
    out[0] = (unsigned char)(h->body_len >> 24);
    out[1] = (unsigned char)(h->body_len >> 16);
    out[2] = (unsigned char)(h->body_len >> 8);
    out[3] = (unsigned char)h->body_len;
    out[4] = h->type;
    out[5] = h->flags;
    out[6] = h->status;
    out[7] = 0;
}

/* AX_EPROTO for a reserved byte that is not zero or an unknown type. */
ax_status_t ax__frame_header_read(const unsigned char in[AX__FRAME_HEADER_SIZE], ax__frame_header_t *h);

/* A path already packed in its wire encoding (ax_path_pack), so that a
 * sender packs each path once and copies the bytes into every envelope. */
#define AX__PACKED_PATH_MAX (AX_PATH_NAME_MAX + 32)

typedef struct ax__packed_path_s {
    uint16_t len;
    unsigned char bytes[AX__PACKED_PATH_MAX];
} ax__packed_path_t;

ax_status_t ax__path_packed(const ax_path_t *p, ax__packed_path_t *out);

/* A Data frame's envelope in its wire encoding: [dst, src or nil, id],
 * packed by msgpack-c. A sender keeps the last one it packed and copies it
 * into each frame with the same receiver, sender and serialiser
 * (actor/serialised.c, envelope_for). */
typedef struct ax__packed_env_s {
    uint16_t len;
    unsigned char bytes[AX__ENVELOPE_MAX];
} ax__packed_env_t;

/* The envelope from src (NULL: sent from outside any actor: nil) to dst. */
ax_status_t ax__envelope_packed(const ax__packed_path_t *dst, const ax__packed_path_t *src,
                                uint64_t serialiser_id, ax__packed_env_t *out);

/*
 * Encode a whole Data frame into eb: header, the envelope env (packed for
 * type->serialiser_id), then the payload from type->serialise.
 * *payload_off receives where the payload starts in the frame. On failure
 * eb is as before (AX_ENOBUFS when its pool is exhausted).
 *
 * ax__frame_encode_head_packed: the header and envelope of a Data frame
 * whose payload follows separately (preserialised payloads); payload_len
 * counts the payload too.
 */
ax_status_t ax__frame_encode_data_env(ax_encode_buffer_t *eb, const ax__packed_env_t *env,
                                      const ax_msg_type_t *type, const ax_msg_t *msg, ax_lease_t *frame,
                                      uint32_t *payload_off);
ax_status_t ax__frame_encode_head_packed(ax_encode_buffer_t *eb, const ax__packed_path_t *dst,
                                         const ax__packed_path_t *src, uint64_t serialiser_id,
                                         size_t payload_len, ax_lease_t *head);

/*
 * Payloads of at least this many bytes are lent to their frame rather than
 * copied into it, where the frame may hold the message (the dispatcher's
 * lazy sends): below it, a copy costs less than the loan's allocations
 * (dispatch/NOTES.md, "64 KiB: frames read where they end, bodies lent to
 * their frames").
 */
#define AX__FRAME_LEND_MIN 8192u

/* The built-in bytes and string types (and any type that reuses their
 * serialise, with their struct) write their body last, as one bin or str:
 * true, with the body, when type is one of them. Inline: the dispatcher
 * asks it of every lazy send. */
static inline bool ax__bytes_body(const ax_msg_type_t *type, const ax_msg_t *msg, const uint8_t **data,
                                  size_t *len, bool *str)
{
    const ax_bytes_msg_t *b = (const ax_bytes_msg_t *)msg;

    if (type->serialise != ax_bytes_type.serialise && type->serialise != ax_string_type.serialise)
        return false;
    *data = b->data;
    *len = b->len;
    *str = type->serialise == ax_string_type.serialise;
    return true;
}

/*
 * ax__frame_encode_data_env, with the body of a built-in bytes or string
 * message of at least AX__FRAME_LEND_MIN bytes lent instead of copied: the
 * frame's last slice is the message's own memory (buffers/chunk.h,
 * ax__lease_foreign), and release(arg) is called when the frame's last
 * lease goes. *lent true: the frame now holds the message through arg. Any
 * other message, a smaller body, or no memory for the loan: the frame is
 * a copy (*lent false) and the caller keeps the message. On failure
 * nothing was lent.
 */
ax_status_t ax__frame_encode_data_lent(ax_encode_buffer_t *eb, const ax__packed_env_t *env,
                                       const ax_msg_type_t *type, const ax_msg_t *msg,
                                       void (*release)(void *arg), void *arg, ax_lease_t *frame,
                                       uint32_t *payload_off, bool *lent);

typedef struct ax__envelope_s {
    ax_path_t dst;
    ax_path_t src;
    bool has_src;
    uint64_t serialiser_id;
    uint32_t payload_off; /* from the start of the frame */
} ax__envelope_t;

/* Decode the envelope that starts at byte env_off of frame (8 for a Data
 * frame); env->payload_off is relative to the start of frame. AX_EPROTO
 * with a detail when it is malformed. It uses and then clears the
 * thread's zone (ax__thread_zone): objects the caller unpacked there are
 * gone afterwards. */
ax_status_t ax__envelope_read(const ax_lease_t *frame, size_t env_off, ax__envelope_t *env);

/* The same over body[0, avail), every path in full; env->payload_off is
 * relative to body. */
ax_status_t ax__envelope_parse(const unsigned char *body, size_t avail, ax__envelope_t *env);

/* A msgpack zone for the calling thread, to be cleared after each use;
 * NULL when out of memory. */
msgpack_zone *ax__thread_zone(void);

#endif
