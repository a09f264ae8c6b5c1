/* ChunkLease: refcounted read-only slices of chunks. */
#include <stdlib.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/error.h"

/* Slice i of a non-empty lease. */
static struct ax_lease_slice_s slice_at(const ax_lease_t *l, size_t i)
{
    if (i == 0)
        return (struct ax_lease_slice_s){l->chunk, l->off, l->len};
    return l->ext->slice[i - 1];
}

size_t ax_lease_slice_count(const ax_lease_t *l)
{
    if (l == NULL || l->chunk == NULL)
        return 0;
    return 1 + (l->ext != NULL ? l->ext->count : 0);
}

size_t ax_lease_len(const ax_lease_t *l)
{
    return ax__lease_len(l);
}

const void *ax_lease_data(const ax_lease_t *l)
{
    if (l == NULL || l->chunk == NULL || l->ext != NULL)
        return NULL;
    return l->chunk->data + l->off;
}

size_t ax_lease_iovec(const ax_lease_t *l, size_t first, struct iovec *iov, size_t max)
{
    size_t n, k = 0;

    /* One slice, the common case (the network thread asks for every
     * frame it writes): no count and no loop. */
    if (l != NULL && l->chunk != NULL && l->ext == NULL) {
        if (first > 0 || max == 0)
            return 0;
        iov[0] = (struct iovec){l->chunk->data + l->off, l->len};
        return 1;
    }
    n = ax_lease_slice_count(l);

    for (size_t i = first; i < n && k < max; i++, k++) {
        struct ax_lease_slice_s s = slice_at(l, i);

        iov[k].iov_base = s.chunk->data + s.off;
        iov[k].iov_len = s.len;
    }
    return k;
}

size_t ax_lease_copy_out(const ax_lease_t *l, size_t off, void *dst, size_t n)
{
    size_t count, done = 0;
    unsigned char *out = dst;

    /* One slice (every frame header the network thread reads). */
    if (l != NULL && l->chunk != NULL && l->ext == NULL) {
        if (off >= l->len)
            return 0;
        done = l->len - off < n ? l->len - off : n;
        memcpy(out, l->chunk->data + l->off + off, done);
        return done;
    }
    count = ax_lease_slice_count(l);

    for (size_t i = 0; i < count && done < n; i++) {
        struct ax_lease_slice_s s = slice_at(l, i);
        size_t take;

        if (off >= s.len) {
            off -= s.len;
            continue;
        }
        take = s.len - off;
        if (take > n - done)
            take = n - done;
        memcpy(out + done, s.chunk->data + s.off + off, take);
        done += take;
        off = 0;
    }
    return done;
}

void ax_lease_move(ax_lease_t *dst, ax_lease_t *src)
{
    *dst = *src;
    *src = AX_LEASE_EMPTY;
}

ax_status_t ax__lease_build(const struct ax_lease_slice_s *s, size_t n, ax_lease_t *out)
{
    size_t used = 0, first = n;

    for (size_t i = 0; i < n; i++) {
        if (s[i].len == 0)
            continue;
        if (first == n)
            first = i;
        used++;
    }
    *out = AX_LEASE_EMPTY;
    if (used == 0)
        return AX_OK;
    if (used > 1) {
        ax_lease_ext_t *ext = malloc(sizeof(*ext) + (used - 1) * sizeof(ext->slice[0]));

        if (ext == NULL)
            return ax__error(AX_ENOMEM, "lease: cannot allocate a chain of %zu slices", used);
        ext->count = 0;
        ext->total = 0;
        for (size_t i = first + 1; i < n; i++) {
            if (s[i].len == 0)
                continue;
            ext->slice[ext->count++] = s[i];
            ext->total += s[i].len;
        }
        out->ext = ext;
    }
    out->chunk = s[first].chunk;
    out->off = s[first].off;
    out->len = s[first].len;
    for (size_t i = first; i < n; i++)
        if (s[i].len != 0)
            ax__chunk_ref(s[i].chunk);
    return AX_OK;
}

ax_status_t ax_lease_clone(const ax_lease_t *src, ax_lease_t *dst)
{
    /* One slice or none: a reference and a copy (see ax_lease_slice). */
    if (src != NULL && dst != NULL && src->ext == NULL) {
        *dst = AX_LEASE_EMPTY;
        if (src->chunk != NULL && src->len > 0) {
            ax__chunk_ref(src->chunk);
            *dst = *src;
        }
        return AX_OK;
    }
    return ax_lease_slice(src, 0, ax_lease_len(src), dst);
}

/* The slices of l covering [off, off + len), trimmed, written to out. */
static size_t collect_range(const ax_lease_t *l, size_t off, size_t len,
                            struct ax_lease_slice_s *out)
{
    size_t count = ax_lease_slice_count(l), k = 0;

    for (size_t i = 0; i < count && len > 0; i++) {
        struct ax_lease_slice_s s = slice_at(l, i);

        if (off >= s.len) {
            off -= s.len;
            continue;
        }
        s.off += (uint32_t)off;
        s.len -= (uint32_t)off;
        if (s.len > len)
            s.len = (uint32_t)len;
        len -= s.len;
        off = 0;
        out[k++] = s;
    }
    return k;
}

ax_status_t ax_lease_slice(const ax_lease_t *src, size_t off, size_t len, ax_lease_t *dst)
{
    size_t total = ax_lease_len(src), count = ax_lease_slice_count(src), n;
    struct ax_lease_slice_s one = {0}, *tmp = &one;
    ax_status_t st;

    if (dst == NULL || off > total || len > total - off)
        return ax__error(AX_EINVAL, "lease slice: range [%zu, +%zu) is outside a lease of %zu bytes",
                         off, len, total);
    /* One slice (every payload the network thread hands over that fit its
     * chunk): a reference and a copy, without the general path's
     * gathering, which cost about 180 instructions per received message. */
    if (count == 1) {
        *dst = AX_LEASE_EMPTY;
        if (len == 0)
            return AX_OK;
        ax__chunk_ref(src->chunk);
        *dst = (ax_lease_t){src->chunk, src->off + (uint32_t)off, (uint32_t)len, NULL};
        return AX_OK;
    }
    if (count > 1) {
        tmp = calloc(count, sizeof(*tmp)); /* zeroed: keeps -Wmaybe-uninitialized quiet */
        if (tmp == NULL) {
            *dst = AX_LEASE_EMPTY; /* as ax__lease_build leaves it when it fails */
            return ax__error(AX_ENOMEM, "lease slice: out of memory");
        }
    }
    n = collect_range(src, off, len, tmp);
    st = ax__lease_build(tmp, n, dst);
    if (tmp != &one)
        free(tmp);
    return st;
}

ax_status_t ax_lease_split(ax_lease_t *l, size_t at, ax_lease_t *tail)
{
    size_t total = ax_lease_len(l);
    ax_lease_t head;
    ax_status_t st;

    if (tail == NULL || at > total)
        return ax__error(AX_EINVAL, "lease split: offset %zu is beyond a lease of %zu bytes", at, total);
    if (l->ext == NULL) {
        /* One slice: hand the tail its own reference, no allocation. */
        *tail = AX_LEASE_EMPTY;
        if (at == total)
            return AX_OK;
        if (at == 0) {
            ax_lease_move(tail, l);
            return AX_OK;
        }
        ax__chunk_ref(l->chunk);
        *tail = (ax_lease_t){l->chunk, l->off + (uint32_t)at, l->len - (uint32_t)at, NULL};
        l->len = (uint32_t)at;
        return AX_OK;
    }
    st = ax_lease_slice(l, at, total - at, tail);
    if (st != AX_OK)
        return st;
    st = ax_lease_slice(l, 0, at, &head);
    if (st != AX_OK) {
        ax_lease_release(tail);
        return st;
    }
    ax_lease_release(l);
    *l = head;
    return AX_OK;
}

void ax_lease_release(ax_lease_t *l)
{
    size_t count;

    if (l == NULL || l->chunk == NULL)
        return;
    if (l->ext == NULL) { /* one slice */
        ax__chunk_unref(l->chunk);
        *l = AX_LEASE_EMPTY;
        return;
    }
    count = ax_lease_slice_count(l);
    for (size_t i = 0; i < count; i++)
        ax__chunk_unref(slice_at(l, i).chunk);
    free(l->ext);
    *l = AX_LEASE_EMPTY;
}
