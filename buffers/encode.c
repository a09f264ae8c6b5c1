/*
 * EncodeBuffer: writes messages into the chunks of its own pool.
 *
 * While a message is open, the chunk that was active at begin (orig) is
 * kept as it was, and every chunk taken from the pool is recorded, either
 * as a finished segment of a chained message or as the current chunk. A
 * failure therefore rolls back by giving those chunks back and restoring
 * orig and its position: nothing the message did remains.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "buffers/chunk.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/grow.h"

struct ax_encode_buffer_s {
    ax_buffer_pool_t *pool;
    ax_chunk_t *cur;  /* active chunk; NULL until the first message */
    size_t pos;       /* write offset in cur */
    msgpack_packer pk;

    /* The open message. */
    bool open;
    ax_status_t err;  /* sticky failure of the open message */
    ax_chunk_t *orig; /* cur at begin */
    size_t orig_pos;
    size_t start;     /* where the message's current segment starts in cur */
    struct ax_lease_slice_s *segs; /* finished segments of a chained message */
    size_t nsegs, segs_cap;
    size_t seg_bytes; /* bytes in segs */

    ax__ref_stock_t stock; /* references for the leases cut from cur (chunk.h) */
};

static int pk_write(void *data, const char *buf, size_t len);

ax_status_t ax_encode_buffer_create(const ax_buffer_config_t *cfg, ax_encode_buffer_t **out)
{
    ax_encode_buffer_t *eb;
    ax_status_t st;

    if (out == NULL)
        return ax__error(AX_EINVAL, "encode buffer: NULL out");
    eb = calloc(1, sizeof(*eb));
    if (eb == NULL)
        return ax__error(AX_ENOMEM, "encode buffer: out of memory");
    st = ax_buffer_pool_create(cfg, &eb->pool);
    if (st != AX_OK) {
        free(eb);
        return st;
    }
    msgpack_packer_init(&eb->pk, eb, pk_write);
    *out = eb;
    return AX_OK;
}

void ax_encode_buffer_destroy(ax_encode_buffer_t **ebp)
{
    ax_encode_buffer_t *eb;

    if (ebp == NULL || *ebp == NULL)
        return;
    eb = *ebp;
    ax_encode_abort(eb);
    ax__stock_drop(&eb->stock);
    ax_buffer_pool_destroy(&eb->pool); /* retires cur with everything else */
    free(eb->segs);
    free(eb);
    *ebp = NULL;
}

ax_buffer_pool_t *ax_encode_buffer_pool(ax_encode_buffer_t *eb)
{
    return eb->pool;
}

msgpack_packer *ax_encode_packer(ax_encode_buffer_t *eb)
{
    return &eb->pk;
}

size_t ax_encode_len(const ax_encode_buffer_t *eb)
{
    return eb->open ? eb->seg_bytes + (eb->pos - eb->start) : 0;
}

static size_t space_left(const ax_encode_buffer_t *eb)
{
    return eb->cur->size - eb->pos;
}

/* Give back a chunk taken during the open message (never orig). */
static void give_back(ax_encode_buffer_t *eb, ax_chunk_t *c)
{
    if (c != NULL && c != eb->orig)
        ax__stock_put(eb->pool, &eb->stock, &c);
}

static void close_message(ax_encode_buffer_t *eb)
{
    eb->open = false;
    eb->err = AX_OK;
    eb->orig = NULL;
    eb->nsegs = 0;
    eb->seg_bytes = 0;
}

void ax_encode_abort(ax_encode_buffer_t *eb)
{
    if (!eb->open)
        return;
    for (size_t i = 0; i < eb->nsegs; i++)
        give_back(eb, eb->segs[i].chunk);
    give_back(eb, eb->cur);
    eb->cur = eb->orig;
    eb->pos = eb->orig_pos;
    close_message(eb);
}

static ax_status_t fail(ax_encode_buffer_t *eb, ax_status_t st)
{
    if (eb->err == AX_OK)
        eb->err = st;
    return eb->err;
}

ax_status_t ax_encode_begin(ax_encode_buffer_t *eb, size_t size_hint)
{
    size_t need = eb->pool->cfg.encode_buf_min_free_space;
    ax_chunk_t *fresh;
    ax_status_t st;

    if (eb->open)
        return ax__error(AX_ESTATE, "encode buffer: a message is already open");
    if (need == 0)
        need = 1;
    if (size_hint > need && size_hint <= eb->pool->cfg.chunk_size)
        need = size_hint;
    /* Every earlier message in the active chunk has been released: write
     * over it rather than taking another chunk. */
    if (eb->cur != NULL && eb->pos > 0 && ax__chunk_reusable_stocked(eb->cur, &eb->stock))
        eb->pos = 0;
    eb->orig = eb->cur;
    eb->orig_pos = eb->pos;
    if (eb->cur == NULL || space_left(eb) < need) {
        st = ax_buffer_pool_get(eb->pool, &fresh);
        if (st != AX_OK)
            return st;
        eb->cur = fresh;
        eb->pos = 0;
    }
    eb->open = true;
    eb->err = AX_OK;
    eb->start = eb->pos;
    eb->nsegs = 0;
    eb->seg_bytes = 0;
    return AX_OK;
}

/* Move the open, unchained message to the start of a fresh chunk. */
static ax_status_t relocate(ax_encode_buffer_t *eb)
{
    size_t len = eb->pos - eb->start;
    ax_chunk_t *fresh;
    ax_status_t st = ax_buffer_pool_get(eb->pool, &fresh);

    if (st != AX_OK)
        return fail(eb, st);
    memcpy(fresh->data, eb->cur->data + eb->start, len);
    give_back(eb, eb->cur); /* a chunk taken earlier in this message */
    eb->cur = fresh;
    eb->start = 0;
    eb->pos = len;
    return AX_OK;
}

/* Room for at least `need` entries in the segment table. */
static ax_status_t segs_reserve(ax_encode_buffer_t *eb, size_t need)
{
    if (!ax__grow(&eb->segs, &eb->segs_cap, need, sizeof(*eb->segs), 4))
        return fail(eb, ax__error(AX_ENOMEM, "encode buffer: out of memory"));
    return AX_OK;
}

/* End the current segment here and continue the message in a fresh chunk. */
static ax_status_t chain(ax_encode_buffer_t *eb)
{
    ax_chunk_t *fresh;
    ax_status_t st = segs_reserve(eb, eb->nsegs + 2); /* +1 for end() */

    if (st != AX_OK)
        return st;
    st = ax_buffer_pool_get(eb->pool, &fresh);
    if (st != AX_OK)
        return fail(eb, st);
    eb->segs[eb->nsegs++] =
        (struct ax_lease_slice_s){eb->cur, (uint32_t)eb->start, (uint32_t)(eb->pos - eb->start)};
    eb->seg_bytes += eb->pos - eb->start;
    eb->cur = fresh;
    eb->start = 0;
    eb->pos = 0;
    return AX_OK;
}

/* The open message has not been chained, does not start at the front of
 * its chunk, and with n more bytes still fits in one chunk: moving it to a
 * fresh chunk keeps it contiguous. */
static bool should_relocate(const ax_encode_buffer_t *eb, size_t n)
{
    return eb->nsegs == 0 && eb->start > 0 && ax_encode_len(eb) + n <= eb->cur->size;
}

/* Out of line: inlined, it made the fast path save six registers. */
static __attribute__((noinline)) ax_status_t write_slow(ax_encode_buffer_t *eb, const unsigned char *src,
                                                        size_t n)
{
    if (!eb->open)
        return ax__error(AX_ESTATE, "encode buffer: write without begin");
    if (n == 0)
        return eb->err;
    while (eb->err == AX_OK) {
        size_t space = space_left(eb);

        if (n <= space) {
            memcpy(eb->cur->data + eb->pos, src, n);
            eb->pos += n;
            return AX_OK;
        }
        if (should_relocate(eb, n)) {
            relocate(eb);
            continue;
        }
        /* Larger than a chunk: fill this one and go on in the next. If the
         * next cannot be had, the rollback discards these bytes too. */
        memcpy(eb->cur->data + eb->pos, src, space);
        eb->pos += space;
        src += space;
        n -= space;
        if (chain(eb) == AX_ENOBUFS && ax_encode_len(eb) + n > eb->pool->cfg.chunk_size * eb->pool->cfg.max_chunk_count)
            /* More than every chunk the pool may ever have: no release
             * will make room, so "busy, retry later" would be a lie. */
            eb->err = ax__error(AX_ETOOBIG, "encode buffer: a message of more than %zu bytes needs more "
                                            "than the pool's %zu chunks of %zu bytes",
                                ax_encode_len(eb) + n, eb->pool->cfg.max_chunk_count, eb->pool->cfg.chunk_size);
    }
    return eb->err;
}

ax_status_t ax_encode_write(ax_encode_buffer_t *eb, const void *src, size_t n)
{
    /* n - 1: an empty write takes the slow path, which answers it. cur
     * is set while a message is open. */
    if (eb->open && n - 1 < space_left(eb) && eb->err == AX_OK) {
        ax__copy_small(eb->cur->data + eb->pos, src, n);
        eb->pos += n;
        return AX_OK;
    }
    return write_slow(eb, src, n);
}

/* msgpack-c calls this for every token it packs; the common case is a few
 * bytes that fit in the active chunk. */
static int pk_write(void *data, const char *buf, size_t len)
{
    return ax_encode_write(data, buf, len) == AX_OK ? 0 : -1;
}

ax_status_t ax_encode_reserve(ax_encode_buffer_t *eb, size_t n, size_t *mark)
{
    if (!eb->open)
        return ax__error(AX_ESTATE, "encode buffer: reserve without begin");
    if (eb->err != AX_OK)
        return eb->err;
    if (n > eb->cur->size)
        return fail(eb, ax__error(AX_EINVAL, "encode buffer: cannot reserve %zu contiguous bytes "
                                             "in chunks of %u", n, eb->cur->size));
    if (n > space_left(eb)) {
        if (should_relocate(eb, n))
            relocate(eb);
        else
            chain(eb); /* end the segment early: the reservation must not straddle */
        if (eb->err != AX_OK)
            return eb->err;
    }
    *mark = ax_encode_len(eb);
    eb->pos += n;
    return AX_OK;
}

ax_status_t ax_encode_fill(ax_encode_buffer_t *eb, size_t mark, const void *src, size_t n)
{
    unsigned char *dst = NULL;

    if (!eb->open)
        return ax__error(AX_ESTATE, "encode buffer: fill without begin");
    if (mark >= eb->seg_bytes) {
        size_t off = mark - eb->seg_bytes;

        if (off + n <= eb->pos - eb->start)
            dst = eb->cur->data + eb->start + off;
    } else {
        for (size_t i = 0; i < eb->nsegs; i++) {
            const struct ax_lease_slice_s *s = &eb->segs[i];

            if (mark < s->len) {
                if (mark + n <= s->len)
                    dst = s->chunk->data + s->off + mark;
                break;
            }
            mark -= s->len;
        }
    }
    if (dst == NULL)
        return ax__error(AX_EINVAL, "encode buffer: fill outside a reservation");
    memcpy(dst, src, n);
    return AX_OK;
}

ax_status_t ax_encode_end(ax_encode_buffer_t *eb, ax_lease_t *out)
{
    ax_status_t st;
    bool orig_in_segs;

    if (!eb->open)
        return ax__error(AX_ESTATE, "encode buffer: end without begin");
    st = eb->err;
    if (st == AX_OK && eb->nsegs == 0) {
        if (eb->pos > eb->start) {
            ax__stock_take(&eb->stock, eb->cur);
            *out = (ax_lease_t){eb->cur, (uint32_t)eb->start, (uint32_t)(eb->pos - eb->start), NULL};
        } else {
            *out = AX_LEASE_EMPTY;
        }
    } else if (st == AX_OK) {
        /* chain() kept a spare entry for this last segment. */
        eb->segs[eb->nsegs] = (struct ax_lease_slice_s){eb->cur, (uint32_t)eb->start,
                                                        (uint32_t)(eb->pos - eb->start)};
        st = ax__lease_build(eb->segs, eb->nsegs + 1, out);
    }
    if (st != AX_OK) {
        ax_encode_abort(eb);
        return st;
    }
    /* The message is out: retire the chunks it filled, and orig if the
     * message moved away from it. Only a message's first segment can be
     * in orig (a relocated message is never chained from orig). */
    orig_in_segs = eb->nsegs > 0 && eb->segs[0].chunk == eb->orig;
    for (size_t i = 0; i < eb->nsegs; i++)
        ax__stock_put(eb->pool, &eb->stock, &eb->segs[i].chunk);
    if (eb->orig != NULL && eb->orig != eb->cur && !orig_in_segs)
        ax__stock_put(eb->pool, &eb->stock, &eb->orig);
    close_message(eb);
    return AX_OK;
}
