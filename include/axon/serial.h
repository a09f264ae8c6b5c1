/*
 * axon/serial.h: actor paths, serialisers and serialised (network)
 * messages.
 *
 * A message type becomes serialisable by giving it a non-zero
 * serialiser_id and serialise/deserialise functions (axon/message.h).
 * msgpack-c does all the encoding: serialise packs exactly one msgpack
 * object (usually an array or a map) with the packer it is given, and
 * deserialise builds a message from the unpacked object.
 *
 * Serialiser ids 1..1023 are reserved for Axon; these are built in:
 *   AX_SER_BYTES    (1)  ax_bytes_msg_t    a byte string (msgpack bin)
 *   AX_SER_STRING   (2)  ax_string_msg_t   a UTF-8 string (msgpack str)
 *   AX_SER_U64      (3)  ax_u64_msg_t      an unsigned integer
 *   AX_SER_MSGPACK  (4)  ax_object_msg_t   any one msgpack object
 * User types take ids from 1024 on.
 */
#ifndef AXON_SERIAL_H
#define AXON_SERIAL_H

#include "axon/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "axon/buffers.h"
#include "axon/message.h"
#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Actor paths                                                         */
/* ------------------------------------------------------------------ */

/*
 * A path names an actor in some system:
 *   unique  tcp://127.0.0.1:9000#42      the actor with id 42
 *   named   tcp://127.0.0.1:9000/a/b     the actor registered as "a/b"
 *   IPv6    tcp://[::1]:9000/a, tcp://[::1]:9000#42
 * Addresses are numeric IPv4 or IPv6 literals; the port is required
 * (0 to 65535). A name is 1 to AX_PATH_NAME_MAX bytes of printable ASCII
 * other than '#', and has no empty segment ("a//b", trailing '/'). A
 * unique id is a decimal number from 1 to 2^56 - 1.
 */
#define AX_PATH_NAME_MAX 255
#define AX_PATH_STR_MAX (AX_PATH_NAME_MAX + 64) /* longest formatted path + NUL */

typedef enum ax_path_kind_e {
    AX_PATH_UNIQUE = 0,
    AX_PATH_NAMED = 1,
} ax_path_kind_t;

typedef struct ax_addr_s {
    uint8_t family;    /* 4 or 6 */
    uint8_t ip[16];    /* network byte order; IPv4 uses the first 4 */
    uint16_t port;
} ax_addr_t;

typedef struct ax_path_s {
    ax_addr_t addr;
    ax_path_kind_t kind;
    uint64_t id;                       /* AX_PATH_UNIQUE */
    uint16_t name_len;                 /* AX_PATH_NAMED */
    char name[AX_PATH_NAME_MAX + 1];   /* NUL-terminated */
} ax_path_t;

/* Parse a path. AX_EINVAL with a detail saying what is wrong and where;
 * *out is then unchanged. */
AX_API ax_status_t ax_path_parse(const char *text, ax_path_t *out);

/* Parse "host:port" or "[v6]:port" (the listen setting). */
AX_API ax_status_t ax_addr_parse(const char *text, ax_addr_t *out);

/* Write the canonical text form into buf (at most len bytes, always NUL-
 * terminated when len > 0). Returns the length of the full text, as
 * snprintf does; AX_PATH_STR_MAX bytes always suffice. */
AX_API size_t ax_path_format(const ax_path_t *p, char *buf, size_t len);
AX_API size_t ax_addr_format(const ax_addr_t *a, char *buf, size_t len);

/* Total orders (-1, 0, 1) and equality over every field that names the
 * actor or the system: family, then ip, then port for an address. */
AX_API int ax_path_cmp(const ax_path_t *a, const ax_path_t *b);
AX_API int ax_addr_cmp(const ax_addr_t *a, const ax_addr_t *b);
AX_API bool ax_addr_eq(const ax_addr_t *a, const ax_addr_t *b);

/* A hash consistent with ax_path_cmp() == 0. */
AX_API uint64_t ax_path_hash(const ax_path_t *p);

/*
 * The wire encoding (docs/wire.md): a msgpack array of 4 elements
 *   [flags, ip, port, id-or-name]
 * flags is an unsigned integer whose bits each mean one thing:
 *   bits 0-1 kind (0 unique, 1 named), bits 2-3 family (0 IPv4, 1 IPv6),
 *   bits 4-5 protocol (0 tcp), bits 6-7 zero.
 * ip is a bin of 4 or 16 bytes, port an unsigned integer, and the last
 * element the id (unsigned integer) or the name (str).
 */
AX_API int ax_path_pack(const ax_path_t *p, msgpack_packer *pk);
AX_API ax_status_t ax_path_unpack(const msgpack_object *obj, ax_path_t *out);

/* ------------------------------------------------------------------ */
/* Built-in message types                                              */
/* ------------------------------------------------------------------ */

#define AX_SER_BYTES 1u
#define AX_SER_STRING 2u
#define AX_SER_U64 3u
#define AX_SER_MSGPACK 4u
#define AX_SER_USER_MIN 1024u

/* Bytes and strings point at data: `owned` is a copy freed with the
 * message, or `hold` keeps the received payload alive (the view types,
 * zero copy). data must stay valid and unchanged until the message is
 * released, which for a lazy send (ax_tell to a remote ref) is after the
 * runtime has serialised it: a body of 8 KiB or more is then written to
 * the socket from data itself, and the message released once it is
 * written, on the network thread. A type of your own may reuse
 * ax_bytes_type's serialise (with this struct) and get the same. */
typedef struct ax_bytes_msg_s {
    ax_msg_t hdr;
    const uint8_t *data;
    size_t len;
    ax_lease_t hold;
    void *owned;
} ax_bytes_msg_t;

typedef ax_bytes_msg_t ax_string_msg_t; /* data is UTF-8, not NUL-terminated */

typedef struct ax_u64_msg_s {
    ax_msg_t hdr;
    uint64_t value;
} ax_u64_msg_t;

/* One msgpack object; its arrays and maps live in zone, its strings and
 * bins in `owned` (a copy) or in the received payload kept by `hold`. */
typedef struct ax_object_msg_s {
    ax_msg_t hdr;
    msgpack_object obj;
    msgpack_zone *zone;
    ax_lease_t hold;
    void *owned;
} ax_object_msg_t;

AX_API extern const ax_msg_type_t ax_bytes_type;
AX_API extern const ax_msg_type_t ax_string_type;
AX_API extern const ax_msg_type_t ax_u64_type;
AX_API extern const ax_msg_type_t ax_object_type;

/*
 * Zero-copy variants for deserialising: the same serialiser ids as
 * ax_bytes_type, ax_string_type and ax_object_type, but the message points
 * into the received payload and holds it instead of copying. Pass them to
 * ax_net_msg_deserialise() when the data is large or short-lived; a held
 * payload keeps its whole chunk from being reused until released. They
 * are not registered (the registry has the copying types).
 */
AX_API extern const ax_msg_type_t ax_bytes_view_type;
AX_API extern const ax_msg_type_t ax_string_view_type;
AX_API extern const ax_msg_type_t ax_object_view_type;

/* New messages of the built-in types; the data is copied. On AX_OK *out is
 * the caller's (give it away with ax_tell, or ax_msg_release it); on
 * failure (AX_EINVAL, AX_ENOMEM) nothing is made and *out is unchanged. */
AX_API ax_status_t ax_bytes_msg_new(const void *data, size_t len, ax_msg_t **out);
AX_API ax_status_t ax_string_msg_new(const char *text, ax_msg_t **out);
AX_API ax_status_t ax_u64_msg_new(uint64_t value, ax_msg_t **out);
/* obj is deep-copied into the message's own zone. */
AX_API ax_status_t ax_object_msg_new(const msgpack_object *obj, ax_msg_t **out);

/* ------------------------------------------------------------------ */
/* Deserialisation                                                     */
/* ------------------------------------------------------------------ */

/*
 * What a deserialiser gets besides the unpacked object: the payload the
 * object points into. A deserialiser that keeps pointers into the object's
 * strings or bins (zero copy) takes a lease with ax_payload_hold() and
 * releases it with its message.
 */
typedef struct ax_payload_s ax_payload_t;

/* A lease on the whole payload for the caller (release it with
 * ax_lease_release, from any thread); AX_EINVAL for a NULL argument. */
AX_API ax_status_t ax_payload_hold(const ax_payload_t *payload, ax_lease_t *out);

/* ------------------------------------------------------------------ */
/* NetMessage                                                          */
/* ------------------------------------------------------------------ */

/*
 * A serialised message as delivered to receive_network: the frame's bytes
 * are still in the pooled chunk they were written or received into (zero
 * copy), and the payload is decoded only when the handler asks.
 *
 * A NetMessage is a message: its ax_msg_t header comes first and its type
 * is ax_net_msg_type, so (ax_msg_t *)nm and (ax_net_msg_t *)msg convert
 * (ax_coro_receive and the dead-letter actor get it as an ax_msg_t; ax_reply
 * takes it as the request). Whoever owns one releases it with ax_msg_release,
 * which lets go of its frame: until then the pool the frame is in (the
 * sender's, or the network thread's receive pool) cannot reuse its chunk.
 */
struct ax_net_msg_s;
typedef struct ax_net_msg_s ax_net_msg_t;

AX_API extern const ax_msg_type_t ax_net_msg_type;

/* The serialiser id of the payload. */
AX_API uint64_t ax_net_msg_serialiser(const ax_net_msg_t *nm);

/* The id of the connection the message came over (it changes when a lost
 * connection is re-established), or 0 for a message from this system. */
AX_API uint64_t ax_net_msg_session(const ax_net_msg_t *nm);

/* The sender and receiver paths, decoded from the envelope. */
AX_API ax_status_t ax_net_msg_sender_path(const ax_net_msg_t *nm, ax_path_t *out);
AX_API ax_status_t ax_net_msg_receiver_path(const ax_net_msg_t *nm, ax_path_t *out);

/* A new lease on the payload bytes, the caller's to release with
 * ax_lease_release. AX_ENOMEM (a chained frame) takes no reference. */
AX_API ax_status_t ax_net_msg_payload(const ax_net_msg_t *nm, ax_lease_t *out);

/*
 * Decode the payload as `type`, on the calling thread. AX_ETYPE when the
 * message's serialiser id is not type's: nothing changed, try another
 * type. AX_EPROTO when the payload is not one well-formed msgpack object,
 * or the status the type's deserialiser returned. On AX_OK *out is a new
 * message the caller owns; on any other status no message is made (given a
 * deserialiser that keeps the rule in axon/message.h) and *out is left as it
 * was. Either way nm is unchanged and still the caller's.
 */
AX_API ax_status_t ax_net_msg_deserialise(const ax_net_msg_t *nm, const ax_msg_type_t *type, ax_msg_t **out);

#ifdef __cplusplus
}
#endif

#endif /* AXON_SERIAL_H */
