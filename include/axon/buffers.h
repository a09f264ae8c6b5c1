/*
 * axon/buffers.h: pooled, refcounted memory for serialised messages.
 *
 *   ax_buffer_config_t  how big a pool's chunks are and how many it may hold
 *   ax_buffer_pool_t    a set of chunks owned by one thread
 *   ax_chunk_t          one pooled memory area with an atomic reference count
 *   ax_lease_t          a read-only slice of a chunk (or a chain of slices)
 *                       that keeps its chunk alive; released on any thread
 *   ax_encode_buffer_t  writes messages into its pool's chunks and hands each
 *                       one out as a lease; msgpack-c packs straight into it
 *   ax_decode_buffer_t  takes bytes from a socket into its pool's chunks and
 *                       cuts them into length-prefixed frames, as leases
 *
 * Threading: a pool, and the encode or decode buffer that owns it, belong to
 * one thread at a time (the owner). Leases are the only thing that crosses
 * threads: cloning and releasing a lease are safe on any thread.
 *
 * The chunk rule: a chunk is reused or freed only once it has been retired
 * from writing and no lease on it remains. Destroying a pool while leases
 * are outstanding is legal; each remaining chunk is freed by its last
 * release, on whatever thread that happens.
 */
#ifndef AXON_BUFFERS_H
#define AXON_BUFFERS_H

#include "axon/api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* BufferConfig                                                        */
/* ------------------------------------------------------------------ */

/*
 * The rules ax_buffer_config_validate() enforces:
 *   chunk_size >= 128 and chunk_size <= AX_BUFFER_MAX_CHUNK_SIZE
 *   chunk_size > encode_buf_min_free_space
 *   max_chunk_count >= 1
 *   max_chunk_count >= initial_chunk_count
 *   chunk_size * max_chunk_count fits in size_t
 */
typedef struct ax_buffer_config_s {
    size_t chunk_size;                /* bytes per chunk (128 KiB) */
    size_t initial_chunk_count;       /* chunks allocated up front (2) */
    size_t max_chunk_count;           /* chunks the pool may ever hold (1000) */
    size_t encode_buf_min_free_space; /* start a message in a fresh chunk when
                                         less than this is left (64 B) */
} ax_buffer_config_t;

#define AX_BUFFER_MIN_CHUNK_SIZE ((size_t)128)
#define AX_BUFFER_MAX_CHUNK_SIZE ((size_t)1 << 30)

#define AX_BUFFER_CONFIG_DEFAULT                                             \
    ((ax_buffer_config_t){                                                   \
        .chunk_size = 128 * 1024,                                            \
        .initial_chunk_count = 2,                                            \
        .max_chunk_count = 1000,                                             \
        .encode_buf_min_free_space = 64,                                     \
    })

/* AX_OK, or AX_EINVAL with ax_error_detail() naming the broken rule. */
AX_API ax_status_t ax_buffer_config_validate(const ax_buffer_config_t *cfg);

/*
 * Parse a byte size: a decimal integer, optionally followed by one space and
 * a unit: B, KB or kB (1000), KiB (1024), MB (1000^2), MiB (1024^2), GB,
 * GiB. "4096", "20B", "128KB", "256KiB" and "1MiB" are all valid. A sign,
 * a fraction, an unknown unit, trailing garbage or a value that does not fit
 * in size_t returns AX_EINVAL with a detail; *out is then unchanged.
 */
AX_API ax_status_t ax_parse_size(const char *text, size_t *out);

/* ------------------------------------------------------------------ */
/* Chunks and leases                                                   */
/* ------------------------------------------------------------------ */

/* msgpack-c's packer, declared without <msgpack.h> (see axon/message.h):
 * include <msgpack.h> to pack into ax_encode_packer(). */
typedef struct msgpack_packer msgpack_packer;

typedef struct ax_chunk_s ax_chunk_t;
typedef struct ax_lease_ext_s ax_lease_ext_t;

/*
 * A lease is a small value: copy it only through ax_lease_move() or
 * ax_lease_clone(); every lease must be released exactly once. A released
 * or zero-initialised lease is empty, and releasing an empty lease does
 * nothing. The fields are not part of the API.
 */
typedef struct ax_lease_s {
    ax_chunk_t *chunk;   /* first slice's chunk, NULL when empty */
    uint32_t off;        /* first slice: [off, off + len) of chunk */
    uint32_t len;
    ax_lease_ext_t *ext; /* further slices of a chained lease, or NULL */
} ax_lease_t;

#define AX_LEASE_EMPTY ((ax_lease_t){0})

/* Total bytes covered by the lease (0 for an empty lease). */
AX_API size_t ax_lease_len(const ax_lease_t *lease);

/* Number of slices: 0 when empty, 1 for a plain lease, more when chained. */
AX_API size_t ax_lease_slice_count(const ax_lease_t *lease);

/* The bytes of a one-slice lease, or NULL for an empty or chained one. The
 * pointer is valid while the lease is held. */
AX_API const void *ax_lease_data(const ax_lease_t *lease);

/*
 * Fill iov with up to max slices starting at slice first. Returns how many
 * were written. The pointers are valid while the lease is held. Meant for
 * writev(): iterate with first += returned count.
 */
AX_API size_t ax_lease_iovec(const ax_lease_t *lease, size_t first, struct iovec *iov, size_t max);

/* Copy n bytes starting at byte off of the lease into dst. Returns the
 * number copied (less than n only when the lease is shorter). */
AX_API size_t ax_lease_copy_out(const ax_lease_t *lease, size_t off, void *dst, size_t n);

/* Move: *dst takes *src's reference and *src becomes empty. *dst must be
 * empty or released before. */
AX_API void ax_lease_move(ax_lease_t *dst, ax_lease_t *src);

/*
 * A second lease on the same bytes (one more reference on each chunk).
 * Safe on any thread while src is held. AX_ENOMEM only for a chained lease
 * whose slice table cannot be copied; no reference is taken then, and *dst
 * is empty.
 */
AX_API ax_status_t ax_lease_clone(const ax_lease_t *src, ax_lease_t *dst);

/*
 * A new lease on bytes [off, off + len) of src; src is unchanged. AX_EINVAL
 * when the range is outside src, AX_ENOMEM as for clone.
 */
AX_API ax_status_t ax_lease_slice(const ax_lease_t *src, size_t off, size_t len, ax_lease_t *dst);

/*
 * Split at byte at: *lease keeps [0, at) and *tail receives [at, len). The
 * split adds no copy of the bytes. AX_EINVAL when at > len (nothing changes);
 * AX_ENOMEM (a chained lease) leaves *lease whole and *tail with no reference.
 */
AX_API ax_status_t ax_lease_split(ax_lease_t *lease, size_t at, ax_lease_t *tail);

/* Drop the lease's references and make it empty. Any thread. When the last
 * reference of a chunk whose pool is gone is dropped, the chunk is freed. */
AX_API void ax_lease_release(ax_lease_t *lease);

/* Append: *a becomes *a followed by *b, and *b becomes empty; no byte is
 * copied. AX_ENOMEM (for the slice table) leaves both unchanged. */
AX_API ax_status_t ax_lease_concat(ax_lease_t *a, ax_lease_t *b);

/*
 * A one-slice lease on the same bytes as src: a clone when src has one
 * slice; otherwise one copy into a standalone chunk, belonging to no pool,
 * that its last release frees. For code that needs the bytes contiguous
 * (a msgpack decoder). AX_ENOMEM leaves *dst empty.
 */
AX_API ax_status_t ax_lease_flatten(const ax_lease_t *src, ax_lease_t *dst);

/* ------------------------------------------------------------------ */
/* BufferPool                                                          */
/* ------------------------------------------------------------------ */

typedef struct ax_buffer_pool_s ax_buffer_pool_t;

typedef struct ax_buffer_pool_stats_s {
    size_t chunks_allocated; /* chunks that exist and belong to the pool */
    size_t chunks_free;      /* reusable now, including retired chunks whose
                                leases have all been released */
    size_t chunks_active;    /* handed out for writing (get without put) */
    size_t chunks_leased;    /* retired, with leases still outstanding */
    size_t bytes_allocated;  /* chunks_allocated * chunk_size */
    uint64_t exhausted;      /* gets that returned AX_ENOBUFS */
} ax_buffer_pool_stats_t;

/* Create a pool and allocate cfg->initial_chunk_count chunks. The calling
 * thread becomes the owner. On AX_OK *out is the caller's, freed with
 * ax_buffer_pool_destroy. AX_EINVAL for a config that fails validation,
 * AX_ENOMEM: nothing is made and *out is unchanged. */
AX_API ax_status_t ax_buffer_pool_create(const ax_buffer_config_t *cfg, ax_buffer_pool_t **out);

/* Destroy the pool and set *pool to NULL. Chunks without leases are freed
 * now; a chunk with leases is freed by its last release. Chunks still
 * handed out (get without put) are retired by this call. Owner only.
 * "Freed" chunk memory goes first to a process-wide cache (at most
 * 128 MiB) from which the next pool's chunks of the same size come, so
 * that a pool made per actor does not map and fault in fresh memory each
 * time; the cache empties when the process goes idle and at exit. */
AX_API void ax_buffer_pool_destroy(ax_buffer_pool_t **pool);

/*
 * Hand out a chunk for writing: a free one, else the oldest retired chunk
 * whose leases are all released, else a new one while fewer than
 * max_chunk_count exist. AX_ENOBUFS when none of these is possible; the
 * pool is unchanged and a later get succeeds once leases are released.
 * AX_ENOMEM when a new chunk cannot be allocated. The chunk stays the
 * pool's: give it back with ax_buffer_pool_put, never free it. Owner only.
 */
AX_API ax_status_t ax_buffer_pool_get(ax_buffer_pool_t *pool, ax_chunk_t **out);

/* Retire a chunk from writing and give it back; *chunk becomes NULL. It is
 * reused once its leases are released. Owner only. */
AX_API void ax_buffer_pool_put(ax_buffer_pool_t *pool, ax_chunk_t **chunk);

/* Stats, computed now. Owner only. */
AX_API void ax_buffer_pool_stats(const ax_buffer_pool_t *pool, ax_buffer_pool_stats_t *out);

/*
 * Give memory back: free up to `most` chunks that are free (no writer, no
 * lease) while the pool holds more than `keep` chunks. Returns how many
 * were freed. A pool otherwise keeps every chunk it ever allocated (its
 * high-water mark); calling this now and then, a chunk at a time, lets it
 * shrink after a burst without churning during one. The memory goes to
 * the chunk cache (see ax_buffer_pool_destroy), then back to the C
 * allocator, which may keep it (glibc's malloc_trim returns it to the
 * system). Owner only.
 */
AX_API size_t ax_buffer_pool_trim(ax_buffer_pool_t *pool, size_t keep, size_t most);

/* The pool's copy of its config, valid while the pool lives. */
AX_API const ax_buffer_config_t *ax_buffer_pool_config(const ax_buffer_pool_t *pool);

/* The writable memory of a chunk the caller got from its pool. */
AX_API unsigned char *ax_chunk_data(ax_chunk_t *chunk);
AX_API size_t ax_chunk_size(const ax_chunk_t *chunk);

/* True when no lease references the chunk. */
AX_API int ax_chunk_unleased(const ax_chunk_t *chunk);

/* A lease on [off, off + len) of a chunk the caller holds from its pool.
 * AX_EINVAL for a range outside the chunk. Owner only. */
AX_API ax_status_t ax_chunk_lease(ax_chunk_t *chunk, size_t off, size_t len, ax_lease_t *out);

/* ------------------------------------------------------------------ */
/* EncodeBuffer                                                        */
/* ------------------------------------------------------------------ */

typedef struct ax_encode_buffer_s ax_encode_buffer_t;

/*
 * An encode buffer owns its pool. Writing one message:
 *
 *     ax_encode_begin(eb, hint);              // pick where it starts
 *     ax_encode_reserve(eb, 8, &hdr);         // header, filled in later
 *     msgpack_pack_map(ax_encode_packer(eb), 2);  ... pack the body ...
 *     ax_encode_fill(eb, hdr, bytes, 8);      // back-fill the header
 *     ax_encode_end(eb, &lease);              // the message, as a lease
 *
 * A message starts in the active chunk when at least
 * encode_buf_min_free_space bytes and the size hint fit there; otherwise
 * the encoder swaps in a fresh chunk. A message that outgrows the space
 * left is moved to a fresh chunk while it fits in one, and becomes a chain
 * of slices across chunks once it is larger than a chunk.
 *
 * Any failure (AX_ENOBUFS when the pool is exhausted for now, AX_ETOOBIG
 * when the message needs more than every chunk the pool may have, AX_ENOMEM) is sticky
 * until ax_encode_end() or ax_encode_abort(), which then leave the buffer
 * exactly as it was before ax_encode_begin(): no lease, no chunk consumed.
 */

/* Create an encode buffer and its own pool from cfg (copied); the calling
 * thread becomes the owner. On AX_OK *out is the caller's, freed with
 * ax_encode_buffer_destroy. AX_EINVAL for a config that fails validation,
 * AX_ENOMEM: nothing is made and *out is unchanged. */
AX_API ax_status_t ax_encode_buffer_create(const ax_buffer_config_t *cfg, ax_encode_buffer_t **out);

/* Destroy the buffer and its pool; outstanding leases stay valid and free
 * their chunks on release. Sets *eb to NULL. Owner only. */
AX_API void ax_encode_buffer_destroy(ax_encode_buffer_t **eb);

/* The buffer's pool, for stats and trim: the buffer owns it and destroys it
 * with itself. */
AX_API ax_buffer_pool_t *ax_encode_buffer_pool(ax_encode_buffer_t *eb);

/* Start a message; size_hint may be 0 when unknown. AX_ENOBUFS when no
 * chunk is available (nothing changed), AX_ESTATE when a message is
 * already open. */
AX_API ax_status_t ax_encode_begin(ax_encode_buffer_t *eb, size_t size_hint);

/* Append n bytes. */
AX_API ax_status_t ax_encode_write(ax_encode_buffer_t *eb, const void *src, size_t n);

/* Reserve n contiguous bytes at the current position, to be written later
 * with ax_encode_fill(); *mark identifies them. n above chunk_size fails
 * the open message with AX_EINVAL (sticky, like any failure). */
AX_API ax_status_t ax_encode_reserve(ax_encode_buffer_t *eb, size_t n, size_t *mark);

/* Write n bytes into a reservation made in this message. */
AX_API ax_status_t ax_encode_fill(ax_encode_buffer_t *eb, size_t mark, const void *src, size_t n);

/* Bytes written to the open message so far. */
AX_API size_t ax_encode_len(const ax_encode_buffer_t *eb);

/* A packer whose writes append to the open message. A failed write returns
 * -1 from msgpack_pack_* and makes the message fail at ax_encode_end(). The
 * packer stays valid for the buffer's lifetime. */
AX_API msgpack_packer *ax_encode_packer(ax_encode_buffer_t *eb);

/* Finish the message: *out receives a lease on all of it. On a recorded
 * failure, returns it and rolls back as described above. */
AX_API ax_status_t ax_encode_end(ax_encode_buffer_t *eb, ax_lease_t *out);

/* Drop the open message, if any, leaving the buffer as before begin. */
AX_API void ax_encode_abort(ax_encode_buffer_t *eb);

/* ------------------------------------------------------------------ */
/* DecodeBuffer                                                        */
/* ------------------------------------------------------------------ */

typedef struct ax_decode_buffer_s ax_decode_buffer_t;

/*
 * Frames are length-prefixed: a header of header_size bytes (at least 4)
 * whose first four bytes are the big-endian length of the body that follows
 * the header. A frame is header_size + body bytes, and at most
 * max_frame_size.
 */
typedef struct ax_frame_format_s {
    size_t header_size;
    size_t max_frame_size;
} ax_frame_format_t;

/* A decode buffer with its own pool made from cfg (copied). On AX_OK *out
 * is the caller's, freed with ax_decode_buffer_destroy; on failure nothing
 * is made. AX_EINVAL for a bad config or format (header_size below 4 or
 * above half a chunk, max_frame_size below header_size), AX_ENOMEM. A pool
 * too small for the largest frame makes ax_decode_buffer_space() return
 * AX_ENOBUFS until frames are released, so size max_chunk_count *
 * chunk_size for it. */
AX_API ax_status_t ax_decode_buffer_create(const ax_buffer_config_t *cfg, const ax_frame_format_t *fmt,
                                    ax_decode_buffer_t **out);

/* A decode buffer that takes its chunks from pool, which the caller owns
 * and keeps for longer than the decoder: several decoders (one per
 * connection) can share one receive pool on one thread. *out as for
 * ax_decode_buffer_create. */
AX_API ax_status_t ax_decode_buffer_create_shared(ax_buffer_pool_t *pool, const ax_frame_format_t *fmt,
                                           ax_decode_buffer_t **out);

/* Destroy the buffer and, unless it is shared, its pool, and set *db to
 * NULL. Frames already handed out stay valid; complete frames not yet taken
 * are released. A shared pool gets the buffer's chunk back. */
AX_API void ax_decode_buffer_destroy(ax_decode_buffer_t **db);

/* The pool the buffer takes chunks from: its own (destroyed with it), or
 * the shared one, which stays the caller's. */
AX_API ax_buffer_pool_t *ax_decode_buffer_pool(ax_decode_buffer_t *db);

/*
 * Where the next bytes may be written: at least one byte at *ptr. The
 * region is valid until the next call on db. When the active chunk is full
 * it swaps in another: its complete frames wait in a ready queue, and an
 * incomplete frame is copied to the new chunk when the whole frame fits in
 * one chunk (so that it stays contiguous), chained across chunks when
 * larger. *len may be less than the chunk has left, and the swap may come
 * early: a frame that fits in a chunk is not started where it cannot end
 * (going by its header, or by the last frame's length while the header is
 * still to come), so that frames stay contiguous where they were read
 * without a copy. AX_ENOBUFS when no
 * chunk is available: take the frames that are ready with
 * ax_decode_buffer_next(), stop reading, and call again once leases have
 * been released. AX_ETOOBIG after a header announced an oversized frame.
 */
AX_API ax_status_t ax_decode_buffer_space(ax_decode_buffer_t *db, void **ptr, size_t *len);

/* n bytes (at most the *len of the last space call) were written. A
 * larger n is a caller bug and is ignored (nothing is committed). */
AX_API void ax_decode_buffer_commit(ax_decode_buffer_t *db, size_t n);

/*
 * The next complete frame, header included, as a lease. AX_EAGAIN when no
 * complete frame is buffered yet. AX_ETOOBIG as soon as a header announces
 * a frame longer than max_frame_size; the stream cannot continue after it.
 */
AX_API ax_status_t ax_decode_buffer_next(ax_decode_buffer_t *db, ax_lease_t *frame);

/* Copy up to n bytes in through space/commit. *taken receives how many were
 * consumed; AX_ENOBUFS (with *taken < n) when the pool ran out. Frames must
 * still be taken with ax_decode_buffer_next(). */
AX_API ax_status_t ax_decode_buffer_feed(ax_decode_buffer_t *db, const void *src, size_t n, size_t *taken);

#ifdef __cplusplus
}
#endif

#endif /* AXON_BUFFERS_H */
