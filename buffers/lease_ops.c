/* Lease operations that build new leases: concatenation and flattening. */
#include <stdlib.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/error.h"

ax_status_t ax_lease_concat(ax_lease_t *a, ax_lease_t *b)
{
    size_t na = ax_lease_slice_count(a), nb = ax_lease_slice_count(b), k = 0;
    struct ax_lease_slice_s *s;
    ax_lease_t out;
    ax_status_t st;

    if (nb == 0)
        return AX_OK;
    if (na == 0) {
        ax_lease_move(a, b);
        return AX_OK;
    }
    s = malloc((na + nb) * sizeof(*s));
    if (s == NULL)
        return ax__error(AX_ENOMEM, "lease concat: out of memory");
    for (size_t i = 0; i < na; i++)
        s[k++] = ax__lease_slice_at(a, i);
    for (size_t i = 0; i < nb; i++)
        s[k++] = ax__lease_slice_at(b, i);
    /* The new lease takes its own references; then the old ones go. */
    st = ax__lease_build(s, k, &out);
    free(s);
    if (st != AX_OK)
        return st;
    ax_lease_release(a);
    ax_lease_release(b);
    *a = out;
    return AX_OK;
}

ax_status_t ax_lease_flatten(const ax_lease_t *src, ax_lease_t *dst)
{
    size_t len = ax__lease_len(src), bytes;
    ax_chunk_t *c;

    if (ax_lease_slice_count(src) <= 1)
        return ax_lease_clone(src, dst);
    if (len > UINT32_MAX)
        return ax__error(AX_ETOOBIG, "lease flatten: %zu bytes is too large", len);
    bytes = (sizeof(*c) + len + 63) & ~(size_t)63;
    c = aligned_alloc(64, bytes);
    if (c == NULL) {
        *dst = AX_LEASE_EMPTY;
        return ax__error(AX_ENOMEM, "lease flatten: out of memory for %zu bytes", len);
    }
    /* No pool holds this chunk: the lease's reference is the only one,
     * and its release frees the chunk. */
    c->refs = 1;
    c->state = AX__CHUNK_RETIRED;
    c->size = (uint32_t)len;
    c->data = c->own_;
    c->next = NULL;
    c->all_next = NULL;
    ax_lease_copy_out(src, 0, c->data, len);
    *dst = (ax_lease_t){c, 0, (uint32_t)len, NULL};
    return AX_OK;
}
