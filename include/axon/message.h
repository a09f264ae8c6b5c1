/*
 * axon/message.h: messages, message types and actor references.
 *
 * A message is any struct whose first member is an ax_msg_t:
 *
 *     typedef struct ping { ax_msg_t hdr; uint64_t seq; } ping_t;
 *     static const ax_msg_type_t ping_type = { .name = "ping", .size = sizeof(ping_t) };
 *
 * Ownership follows one rule everywhere: a call that takes `ax_msg_t **`
 * and succeeds takes the message and sets the caller's pointer to NULL; a
 * call that fails leaves both the message and the pointer with the caller.
 */
#ifndef AXON_MESSAGE_H
#define AXON_MESSAGE_H

#include "axon/api.h"

#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A reference to an actor: a local actor, a remote actor, or a one-shot
 * reply slot. A ref is a 16-byte value: copy it, store it, compare it with
 * ax_ref_eq(). It stays safe to send to after its actor has stopped: the
 * message then goes to dead letters. A ref is valid for the lifetime of the
 * system that made it, except that a remote ref can expire when
 * network.max_remote_refs newer remote paths push its path out of the
 * system's table: it then returns AX_ENOTFOUND wherever it is used (see
 * ax_ref_from_path). The fields are not part of the API.
 */
typedef struct ax_ref_s {
    void *target;
    uint64_t id;
} ax_ref_t;

#define AX_REF_NULL ((ax_ref_t){NULL, 0})

static inline int ax_ref_is_null(ax_ref_t r)
{
    return r.target == NULL;
}

static inline int ax_ref_eq(ax_ref_t a, ax_ref_t b)
{
    return a.target == b.target && a.id == b.id;
}

/* msgpack-c's packer and object, declared here without <msgpack.h>: that
 * header pulls in the socket headers (recv, send, ...) and would clash with
 * a user's own names in every file. Code that packs or reads msgpack
 * includes <msgpack.h> itself (axon/serial.h does). Repeating msgpack-c's
 * own typedefs is allowed in C11. */
typedef struct msgpack_packer msgpack_packer;
typedef struct msgpack_object msgpack_object;

typedef struct ax_msg_s ax_msg_t;

/* The intrusive mailbox link. */
typedef struct ax_msg_link_s {
    struct ax_msg_link_s *next;
} ax_msg_link_t;

typedef struct ax_msg_type_s ax_msg_type_t;
typedef struct ax_msg_pool_s ax_msg_pool_t;
typedef struct ax_payload_s ax_payload_t; /* axon/serial.h */

/*
 * The header every message starts with. ax_msg_init() (or a pool) sets it
 * up; the runtime writes next and to while it owns the message. sender is
 * the ref the message was sent from (AX_REF_NULL when sent from outside
 * any actor); handlers read it to reply.
 */
struct ax_msg_s {
    ax_msg_link_t link;          /* runtime: mailbox link, first member */
    const ax_msg_type_t *type;   /* what the message is */
    ax_ref_t sender;             /* who sent it, set by ax_tell */
    uint64_t to;                 /* runtime: the recipient's id */
    ax_msg_pool_t *pool;         /* the pool it returns to, or NULL; a
                                    message from ax_msg_alloc carries a
                                    mark of the message allocator here */
};

/*
 * A message type. name and size are required. release, when set, frees
 * everything the message owns and the message itself (with free(), or
 * ax_msg_free). When release is NULL, releasing a message not from a pool
 * calls reset (if set) to drop what it owns, then frees its memory with
 * ax_msg_free. A message from a pool returns to its pool instead (reset
 * runs), and release is called only when the pool discards it.
 *
 * Memory: ax_msg_alloc gives a type without release memory from Axon's
 * message allocator, built for messages freed on another thread than the
 * one that allocated them (actor/NOTES.md); a type with release gets
 * calloc memory, since its release frees it. So for the fast path, drop
 * owned resources in reset and leave release NULL.
 *
 * The serialiser fields make a type sendable over the network or with
 * ax_tell_serialised (axon/serial.h). serialiser_id 0 means local only.
 */
struct ax_msg_type_s {
    const char *name;
    size_t size;
    void (*release)(ax_msg_t *msg);
    /* For pooled messages: drop what the message holds (leases, buffers)
     * when it goes back to its pool; its memory stays pooled. Optional. */
    void (*reset)(ax_msg_t *msg);

    uint64_t serialiser_id;
    /* Expected encoded size in bytes, or 0 when unknown. Optional. */
    size_t (*size_hint)(const ax_msg_t *msg);
    /* Encode msg's payload with pk. Return AX_OK, or the failure when a
     * msgpack_pack_* call returned non-zero (AX_ENOBUFS is typical). */
    ax_status_t (*serialise)(const ax_msg_t *msg, msgpack_packer *pk);
    /* Decode a payload into a new message of this type: *out must be a
     * message the receiver owns (ax_msg_alloc() is convenient). obj is the
     * unpacked payload; its strings and bins point into memory that stays
     * valid only during this call unless the deserialiser holds the
     * payload with ax_payload_hold() (zero copy). Return AX_EPROTO for an
     * object of the wrong shape. On any failure, release what was made and
     * leave *out unset: nothing frees a message set there for you. */
    ax_status_t (*deserialise)(const msgpack_object *obj, const ax_payload_t *payload,
                               ax_msg_t **out);
};

/* Initialise the header of a message the caller allocated itself (with
 * malloc or calloc, which is how the runtime frees it when its type has no
 * release). Not for a message from ax_msg_alloc or a pool: that would lose
 * the mark of where its memory goes back to. A message that is only read,
 * never given away (ax_tell_serialised, ax_preserialise), may live anywhere,
 * on the stack too. */
AX_API void ax_msg_init(ax_msg_t *msg, const ax_msg_type_t *type);

/* type->size zeroed bytes with the header initialised: from the message
 * allocator, or calloc for a type with release (see ax_msg_type_t). The
 * caller owns the message; give it away with ax_tell, or release it with
 * ax_msg_release, never with free(). AX_EINVAL when type is NULL or
 * type->size is smaller than the header, AX_ENOMEM. */
AX_API ax_status_t ax_msg_alloc(const ax_msg_type_t *type, ax_msg_t **out);

/* Release a message the caller owns: back to its pool, or type->release,
 * or reset and ax_msg_free. Sets *msg to NULL; a NULL *msg does nothing. */
AX_API void ax_msg_release(ax_msg_t **msg);

/* Free a message's memory, and nothing it owns, with the allocator it came
 * from: the message allocator for a message from ax_msg_alloc (its header
 * says so), free() otherwise. Usable in a type's release in place of
 * free(). NULL does nothing. */
AX_API void ax_msg_free(ax_msg_t *msg);

/* ------------------------------------------------------------------ */
/* Message pools (thread-safe)                                         */
/* ------------------------------------------------------------------ */

typedef enum ax_alloc_strategy_e {
    AX_POOL_ONLY, /* a pooled message, or NULL when the pool is empty */
    AX_ALWAYS,    /* a pooled message, or a newly allocated one */
} ax_alloc_strategy_t;

typedef struct ax_msg_pool_options_s {
    size_t initial; /* messages allocated at creation */
    size_t max;     /* messages the pool keeps at most; 0 means initial,
                       or 1024 when both are 0 */
} ax_msg_pool_options_t;

/*
 * A pool of messages of one type. Get and put are safe on any thread;
 * each thread works mostly in its own cache, so they do not contend in the
 * steady state. With max below a few hundred, the pool keeps exactly max.
 * On AX_OK *out is the caller's, freed with ax_msg_pool_destroy; on
 * failure (AX_EINVAL, AX_ENOMEM) nothing is made and *out is unchanged.
 */
AX_API ax_status_t ax_msg_pool_create(const ax_msg_type_t *type, const ax_msg_pool_options_t *opts,
                               ax_msg_pool_t **out);

/* Free the pool and the messages in it; sets *pool to NULL. Messages of
 * the pool still out stay valid and are freed (type->release or free)
 * when put or released; the pool's memory goes with the last of them. */
AX_API void ax_msg_pool_destroy(ax_msg_pool_t **pool);

/*
 * Get a message with its header initialised and pool set. With
 * AX_POOL_ONLY an empty pool gives AX_OK and *out == NULL: not an error.
 * AX_ENOMEM when AX_ALWAYS cannot allocate (*out is unchanged). The rest of
 * the message keeps what it held when it was put. The message is the
 * caller's: give it away with ax_tell, or back with ax_msg_put or
 * ax_msg_release.
 */
AX_API ax_status_t ax_msg_get(ax_msg_pool_t *pool, ax_alloc_strategy_t strategy, ax_msg_t **out);

/* Return a message to the pool it came from and set *msg to NULL. A NULL
 * *msg does nothing. When the pool is full, the message is freed. A
 * message from another pool (or none) is released as ax_msg_release does. */
AX_API void ax_msg_put(ax_msg_pool_t *pool, ax_msg_t **msg);

/* Free the messages the pool holds beyond keep (about: other threads may
 * put and get meanwhile), for a pool that grew in a burst. Messages that
 * are out are not touched. Returns how many were freed. Any thread; a
 * NULL pool frees nothing. */
AX_API size_t ax_msg_pool_trim(ax_msg_pool_t *pool, size_t keep);

/* Messages held by the pool now (an estimate while other threads use it). */
AX_API size_t ax_msg_pool_count(ax_msg_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* AXON_MESSAGE_H */
