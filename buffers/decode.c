/*
 * DecodeBuffer: bytes from a socket into pooled chunks, cut into frames.
 *
 * Bytes arrive at cur[w]. Frames not yet handed out start at cur[p]. When
 * cur is full, the complete frames in [p, w) move to the ready queue and
 * the one incomplete frame left is continued in a fresh chunk: copied when
 * it fits in one, chained (cur keeps a reference in the chain) when larger.
 * A chained frame always continues at offset 0 of the following chunk.
 * The space offered for a read is planned so that the copy is rare: a
 * frame that fits in one chunk is not started where it cannot end
 * (plan_read).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/error.h"
#include "common/grow.h"

struct ax_decode_buffer_s {
    ax_buffer_pool_t *pool;
    bool shared;     /* the pool is the caller's */
    ax_frame_format_t fmt;
    ax_chunk_t *cur;
    size_t w, p;
    ax_status_t err; /* sticky: the stream cannot continue */

    /* Earlier chunks' parts of a frame larger than what was left of them;
     * each slice holds one reference. */
    struct ax_lease_slice_s *chain;
    size_t nchain, chain_cap, chain_bytes, chain_frame_len;

    ax__ref_stock_t stock; /* references for the frames cut from cur (chunk.h) */
    size_t last_len;       /* length of the last frame cut: the next is read as if alike */

    /* Complete frames cut at a swap, not yet handed out (FIFO). */
    ax_lease_t *ready;
    size_t ready_head, ready_count, ready_cap; /* ready_cap: 0 or a power of two */
};

/* The ready ring's slot i places after its head: a mask, not a modulo
 * (ready_cap starts at 8 and doubles). */
static size_t ready_slot(const ax_decode_buffer_t *db, size_t i)
{
    return (db->ready_head + i) & (db->ready_cap - 1);
}

static ax_status_t check_format(size_t chunk_size, const ax_frame_format_t *fmt)
{
    if (fmt->header_size < 4 || fmt->header_size > chunk_size / 2)
        return ax__error(AX_EINVAL, "decode buffer: header_size (%zu) must be in [4, chunk_size/2]",
                         fmt->header_size);
    if (fmt->max_frame_size < fmt->header_size)
        return ax__error(AX_EINVAL, "decode buffer: max_frame_size (%zu) is below header_size (%zu)",
                         fmt->max_frame_size, fmt->header_size);
    return AX_OK;
}

static ax_status_t create(ax_buffer_pool_t *pool, bool shared, const ax_frame_format_t *fmt,
                          ax_decode_buffer_t **out)
{
    ax_decode_buffer_t *db = calloc(1, sizeof(*db));

    if (db == NULL)
        return ax__error(AX_ENOMEM, "decode buffer: out of memory");
    db->pool = pool;
    db->shared = shared;
    db->fmt = *fmt;
    *out = db;
    return AX_OK;
}

ax_status_t ax_decode_buffer_create(const ax_buffer_config_t *cfg, const ax_frame_format_t *fmt,
                                    ax_decode_buffer_t **out)
{
    ax_buffer_pool_t *pool;
    ax_status_t st;

    if (out == NULL || fmt == NULL)
        return ax__error(AX_EINVAL, "decode buffer: NULL argument");
    st = ax_buffer_config_validate(cfg);
    if (st == AX_OK)
        st = check_format(cfg->chunk_size, fmt);
    if (st == AX_OK)
        st = ax_buffer_pool_create(cfg, &pool);
    if (st != AX_OK)
        return st;
    st = create(pool, false, fmt, out);
    if (st != AX_OK)
        ax_buffer_pool_destroy(&pool);
    return st;
}

ax_status_t ax_decode_buffer_create_shared(ax_buffer_pool_t *pool, const ax_frame_format_t *fmt,
                                           ax_decode_buffer_t **out)
{
    ax_status_t st;

    if (pool == NULL || out == NULL || fmt == NULL)
        return ax__error(AX_EINVAL, "decode buffer: NULL argument");
    st = check_format(pool->cfg.chunk_size, fmt);
    return st != AX_OK ? st : create(pool, true, fmt, out);
}

static void drop_chain(ax_decode_buffer_t *db)
{
    for (size_t i = 0; i < db->nchain; i++)
        ax__chunk_unref(db->chain[i].chunk);
    db->nchain = 0;
    db->chain_bytes = 0;
    db->chain_frame_len = 0;
}

void ax_decode_buffer_destroy(ax_decode_buffer_t **dbp)
{
    ax_decode_buffer_t *db;

    if (dbp == NULL || *dbp == NULL)
        return;
    db = *dbp;
    while (db->ready_count > 0) {
        ax_lease_release(&db->ready[db->ready_head]);
        db->ready_head = ready_slot(db, 1);
        db->ready_count--;
    }
    drop_chain(db);
    ax__stock_drop(&db->stock);
    if (db->shared)
        ax_buffer_pool_put(db->pool, &db->cur); /* retired; reused once unleased */
    else
        ax_buffer_pool_destroy(&db->pool);
    free(db->chain);
    free(db->ready);
    free(db);
    *dbp = NULL;
}

ax_buffer_pool_t *ax_decode_buffer_pool(ax_decode_buffer_t *db)
{
    return db->pool;
}

static size_t be32_at(const unsigned char *b)
{
    return (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | (size_t)b[3];
}

/* Length of the frame starting at cur[p], or 0 while its header is
 * incomplete. Sets the sticky AX_ETOOBIG for an oversized frame. */
static size_t frame_len_at_p(ax_decode_buffer_t *db)
{
    size_t len;

    if (db->w - db->p < db->fmt.header_size)
        return 0;
    len = db->fmt.header_size + be32_at(db->cur->data + db->p);
    if (len > db->fmt.max_frame_size) {
        db->err = ax__error(AX_ETOOBIG, "decode buffer: frame of %zu bytes exceeds the maximum of %zu",
                            len, db->fmt.max_frame_size);
        return 0;
    }
    return len;
}

/* Room for `need` chain entries. */
static ax_status_t chain_reserve(ax_decode_buffer_t *db, size_t need)
{
    if (!ax__grow(&db->chain, &db->chain_cap, need, sizeof(*db->chain), 4))
        return ax__error(AX_ENOMEM, "decode buffer: out of memory");
    return AX_OK;
}

/* Room for one more ready frame. */
static ax_status_t ready_reserve(ax_decode_buffer_t *db)
{
    ax_lease_t *ready;
    size_t cap;

    if (db->ready_count < db->ready_cap)
        return AX_OK;
    cap = db->ready_cap ? db->ready_cap * 2 : 8;
    ready = malloc(cap * sizeof(*ready));
    if (ready == NULL)
        return ax__error(AX_ENOMEM, "decode buffer: out of memory");
    for (size_t i = 0; i < db->ready_count; i++)
        ready[i] = db->ready[ready_slot(db, i)];
    free(db->ready);
    db->ready = ready;
    db->ready_head = 0;
    db->ready_cap = cap;
    return AX_OK;
}

/* Cut the next complete frame out of cur, if there is one. */
static ax_status_t cut_frame(ax_decode_buffer_t *db, ax_lease_t *frame)
{
    size_t len;
    ax_status_t st;

    if (db->cur == NULL)
        return AX_EAGAIN;
    if (db->nchain > 0) {
        /* A chained frame continues at cur[0]; chain_reserve() always
         * leaves room for this last slice. */
        size_t need = db->chain_frame_len - db->chain_bytes;

        if (db->w < need)
            return AX_EAGAIN;
        db->chain[db->nchain] = (struct ax_lease_slice_s){db->cur, 0, (uint32_t)need};
        st = ax__lease_build(db->chain, db->nchain + 1, frame);
        if (st != AX_OK)
            return st;
        db->last_len = db->chain_frame_len;
        drop_chain(db);
        db->p = need;
        return AX_OK;
    }
    len = frame_len_at_p(db);
    if (db->err != AX_OK)
        return db->err;
    if (len == 0 || db->w - db->p < len)
        return AX_EAGAIN;
    ax__stock_take(&db->stock, db->cur);
    *frame = (ax_lease_t){db->cur, (uint32_t)db->p, (uint32_t)len, NULL};
    db->p += len;
    db->last_len = len;
    return AX_OK;
}


/* Add [off, off + len) of cur to the chain of the frame in progress and
 * continue in fresh. */
static void chain_and_continue(ax_decode_buffer_t *db, size_t off, size_t len, ax_chunk_t *fresh)
{
    ax__chunk_ref(db->cur); /* the chain's reference */
    db->chain[db->nchain++] = (struct ax_lease_slice_s){db->cur, (uint32_t)off, (uint32_t)len};
    db->chain_bytes += len;
    ax__stock_put(db->pool, &db->stock, &db->cur);
    db->cur = fresh;
    db->w = 0;
    db->p = 0;
}

/* Move cur's complete frames to the ready queue and continue the
 * incomplete one, if any, in another chunk: when cur is full, or early,
 * before a read, when the frame in progress cannot end in cur (plan_read).
 * An early swap leaves room in cur that the read can fill instead, so a
 * pool with no chunk to give is not counted as exhausted then. On failure
 * nothing is lost and the call can be repeated. */
static ax_status_t swap(ax_decode_buffer_t *db, bool early)
{
    size_t partial, size = db->cur->size, len;
    ax_chunk_t *fresh;
    ax_lease_t frame;
    ax_status_t st;

    for (;;) {
        st = ready_reserve(db);
        if (st != AX_OK)
            return st;
        st = cut_frame(db, &frame);
        if (st != AX_OK)
            break;
        db->ready[ready_slot(db, db->ready_count++)] = frame;
    }
    if (st != AX_EAGAIN)
        return st;
    partial = db->w - db->p;
    if (partial < size && db->nchain == 0 && ax__chunk_reusable_stocked(db->cur, &db->stock)) {
        /* No lease on cur: slide the partial frame (if any) to its front. */
        memmove(db->cur->data, db->cur->data + db->p, partial);
        db->w = partial;
        db->p = 0;
        return AX_OK;
    }
    st = chain_reserve(db, db->nchain + 2); /* +1 for cut_frame's last slice */
    if (st != AX_OK)
        return st;
    st = early ? ax__buffer_pool_try_get(db->pool, &fresh) : ax_buffer_pool_get(db->pool, &fresh);
    if (st != AX_OK)
        return st;
    if (db->nchain > 0) {
        chain_and_continue(db, 0, db->w, fresh);
        return AX_OK;
    }
    /* A frame that fits in one chunk is copied to the fresh one, so that it
     * stays contiguous: a chained frame is copied whole anyway by the
     * deserialiser that reads it (ax_lease_flatten), and the part copied
     * here is less than the frame. When its header is incomplete the
     * partial frame is shorter than a header (len 0), so it fits too. */
    len = frame_len_at_p(db);
    if (partial == 0 || (len != 0 ? len : partial) <= size) {
        memcpy(fresh->data, db->cur->data + db->p, partial);
        ax__stock_put(db->pool, &db->stock, &db->cur);
        db->cur = fresh;
        db->w = partial;
        db->p = 0;
        return AX_OK;
    }
    db->chain_frame_len = len;
    chain_and_continue(db, db->p, partial, fresh);
    return AX_OK;
}

/*
 * How much of cur's room the next read should fill, for a frame that fits
 * in one chunk not to straddle the chunk's end (a straddling frame is
 * copied at the swap). Sets *swap_now when the frame at p, or the next
 * frame if it is like the last one, cannot end in cur: better to move to
 * another chunk now, with at most a header's bytes to copy, than after
 * the read. Otherwise the read stops at the end of the frame in progress,
 * or of one frame like the last, when another like it would not fit
 * behind: one read a frame near a chunk's end, and none copied. Frames
 * larger than a chunk are chained anyway and read as they come.
 */
static size_t plan_read(ax_decode_buffer_t *db, bool *swap_now)
{
    size_t size = db->cur->size, room = size - db->w, len, end;

    *swap_now = false;
    if (db->nchain > 0)
        return room;
    len = frame_len_at_p(db); /* 0 while the header is incomplete */
    if (len == 0)
        len = db->last_len;
    if (len == 0 || len > size || db->w - db->p >= len)
        return room; /* nothing to go by, chained anyway, or complete */
    end = db->p + len;
    if (end > size) {
        *swap_now = true;
        return room;
    }
    return size - end < len ? end - db->w : room;
}

ax_status_t ax_decode_buffer_space(ax_decode_buffer_t *db, void **ptr, size_t *len)
{
    ax_status_t st;
    size_t room;
    bool swap_now;

    if (db->err != AX_OK)
        return db->err;
    if (db->cur == NULL) {
        st = ax_buffer_pool_get(db->pool, &db->cur);
        if (st != AX_OK)
            return st;
        db->w = 0;
        db->p = 0;
    } else if (db->w == db->cur->size) {
        st = swap(db, false);
        if (st != AX_OK)
            return st;
    }
    room = plan_read(db, &swap_now);
    if (swap_now && swap(db, true) == AX_OK)
        room = plan_read(db, &swap_now); /* the frame starts at 0 now: no second swap */
    if (db->err != AX_OK)
        return db->err; /* the header just read announced an oversized frame */
    *ptr = db->cur->data + db->w;
    *len = room;
    return AX_OK;
}

void ax_decode_buffer_commit(ax_decode_buffer_t *db, size_t n)
{
    if (db->cur != NULL && n <= db->cur->size - db->w)
        db->w += n;
}

ax_status_t ax_decode_buffer_next(ax_decode_buffer_t *db, ax_lease_t *frame)
{
    if (db->ready_count > 0) {
        *frame = db->ready[db->ready_head];
        db->ready_head = ready_slot(db, 1);
        db->ready_count--;
        return AX_OK;
    }
    if (db->err != AX_OK)
        return db->err;
    return cut_frame(db, frame);
}

ax_status_t ax_decode_buffer_feed(ax_decode_buffer_t *db, const void *src, size_t n, size_t *taken)
{
    const unsigned char *in = src;
    size_t done = 0;
    ax_status_t st = AX_OK;

    while (done < n) {
        void *ptr;
        size_t room;

        st = ax_decode_buffer_space(db, &ptr, &room);
        if (st != AX_OK)
            break;
        if (room > n - done)
            room = n - done;
        memcpy(ptr, in + done, room);
        ax_decode_buffer_commit(db, room);
        done += room;
    }
    if (taken != NULL)
        *taken = done;
    return st;
}
