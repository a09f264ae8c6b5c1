/*
 * Internal: path ids (docs/wire.md section 6.1), one table per connection
 * and direction.
 *
 * A sender that the receiver offered n ids writes, in place of a path in
 * an envelope, a definition [id, path] the first time and the bare id
 * afterwards. Bindings never change for the life of a connection: the
 * first n distinct paths sent get ids 0 to n-1 in order, later ones go in
 * full. So an id read anywhere on the connection (a Data frame, or a body
 * a Status frame returns) always means the same path, and a reference
 * never needs a table older than its connection.
 *
 * Sending side: ax__pathtab_compact() rewrites a Data frame's header and
 * envelope with ids. Receiving side: ax__env_view_read() reads an envelope
 * whose paths may be ids or definitions and binds the definitions.
 * Both tables belong to one connection and its network thread.
 */
#ifndef AXON_SERIAL_PATHTAB_H
#define AXON_SERIAL_PATHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/buffers.h"
#include "axon/serial.h"
#include "serial/frame.h"

/* The largest offer Axon makes or uses: ids stay below 2^16 (uint 16 on
 * the wire), and a table's memory stays bounded (section 15). */
#define AX__PATH_IDS_MAX 65536u

/* One bound path: its canonical wire bytes, and on the receiving side the
 * local actor it last resolved to (a hint: checked as any ref is, and for
 * a name against the registry's epoch in stamp). */
typedef struct ax__pathent_s {
    ax_ref_t ref;
    uint64_t stamp; /* the receiver's: when ref was looked up (its own clock) */
    uint16_t len;
    unsigned char bytes[];
} ax__pathent_t;

typedef struct ax__pathtab_s {
    uint32_t n;          /* ids 0 to n-1 may be bound */
    uint32_t used;       /* bound so far (the sender binds in order) */
    ax__pathent_t **ent; /* n slots, NULL while unbound */
    uint32_t *index;     /* sending side: open addressing, id + 1 (0 empty) */
    uint32_t mask;       /* index slots - 1 */
    uint32_t memo[2];    /* sending: the receiver's and the sender's last
                            id + 1 (0: none), tried before the index */
} ax__pathtab_t;

/* A table for n ids (capped at AX__PATH_IDS_MAX), for sending (with an
 * index from path to id) or receiving; NULL when n is 0 or out of memory.
 * The slots are allocated here, the entries as paths are bound. */
ax__pathtab_t *ax__pathtab_new(uint32_t n, bool sending);
void ax__pathtab_free(ax__pathtab_t *t);

/* The longest head ax__pathtab_compact writes: the frame header and an
 * envelope of two definitions. */
#define AX__COMPACT_HEAD_MAX (AX__FRAME_HEADER_SIZE + 1 + 2 * (4 + AX__PACKED_PATH_MAX) + 9)

/*
 * The head to write in place of frame[0, payload_off) of a Data frame
 * that Axon encoded (full paths): the header with the new body length and
 * the envelope with a reference for each path of t, a definition for each
 * path bound now, and the path in full when t is full. out holds cap
 * bytes: AX__COMPACT_HEAD_MAX always suffices, and a smaller room is
 * enough for a frame whose two paths are the ones the table's memo names
 * (a stream's frames). AX_OK with *out_len; AX_ENOBUFS when the head may
 * not fit in cap (try again with AX__COMPACT_HEAD_MAX); anything else:
 * the frame is sent as it is. Only AX_OK changes t.
 */
ax_status_t ax__pathtab_compact(ax__pathtab_t *t, const ax_lease_t *frame, uint32_t payload_off,
                                unsigned char *out, size_t cap, size_t *out_len);

/* The header of a head of head_len bytes (header included) that goes in
 * place of frame[0, payload_off) of a frame of frame_len bytes. */
static inline void ax__compact_head_header(unsigned char *head, size_t head_len, size_t frame_len,
                                           uint32_t payload_off)
{
    size_t body = head_len - AX__FRAME_HEADER_SIZE + (frame_len - payload_off);

    ax__frame_header_write(head, &(ax__frame_header_t){(uint32_t)body, AX__FRAME_DATA, 0, 0});
}

/* How one path of an envelope came. */
enum ax__path_form { AX__PATH_FULL, AX__PATH_DEF, AX__PATH_REF, AX__PATH_NIL };

/*
 * An envelope read without copying: for the receiver [0] and the sender
 * [1], the full path's wire bytes (in the envelope, or the table's) and
 * how it came; the serialiser id's bytes; where the payload starts.
 */
typedef struct ax__env_path_s {
    const unsigned char *bytes; /* NULL for a nil sender */
    size_t len;
    uint8_t form;               /* enum ax__path_form */
    ax__pathent_t *ent;         /* DEF and REF: the table's entry */
} ax__env_path_t;

typedef struct ax__env_view_s {
    ax__env_path_t p[2];
    const unsigned char *sid;
    size_t sid_len;
    uint64_t serialiser_id;
    size_t len;                     /* bytes of the envelope */
} ax__env_view_t;

/*
 * Read the envelope at body[0, avail) (after a Data frame's header). t is
 * the table of the direction the envelope travelled (NULL: ids are
 * malformed). With bind, a definition binds its id in t (a definition of
 * a bound id, an id >= t->n, a reference to an unbound id are malformed);
 * without, a definition must match what t holds (for bodies a Status frame
 * returns). Definitions are fully checked (ax_path_unpack); full paths
 * only for their extent, as the caller decodes what it needs. AX_EPROTO
 * with a detail when malformed.
 */
ax_status_t ax__env_view_read(const unsigned char *body, size_t avail, ax__pathtab_t *t, bool bind,
                              ax__env_view_t *v);

/* Decode and check the one path at p[0, len) (bytes from a peer). */
ax_status_t ax__path_read(const unsigned char *p, size_t len, ax_path_t *out);

/* Whether the view used ids (a DEF or a REF). */
bool ax__env_view_has_ids(const ax__env_view_t *v);

/* The envelope of v with every path in full, into out (at most
 * AX__ENVELOPE_MAX bytes); its length. */
size_t ax__env_view_full(const ax__env_view_t *v, unsigned char out[AX__ENVELOPE_MAX]);

#endif
