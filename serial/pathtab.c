/* Path ids: per-connection tables, the sender's rewrite, the receiver's
 * reading (docs/wire.md section 6.1). */
#include <stdlib.h>
#include <string.h>

#include "buffers/chunk.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/fault.h"
#include "serial/mpcheck.h"
#include "serial/pathtab.h"

ax__pathtab_t *ax__pathtab_new(uint32_t n, bool sending)
{
    ax__pathtab_t *t;
    uint32_t slots = 1;

    if (n == 0)
        return NULL;
    if (n > AX__PATH_IDS_MAX)
        n = AX__PATH_IDS_MAX;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->n = n;
    t->ent = calloc(n, sizeof *t->ent);
    if (sending) {
        /* At most half full, so probes stay short. */
        while (slots < 2 * (uint64_t)n)
            slots <<= 1;
        t->index = calloc(slots, sizeof *t->index);
        t->mask = slots - 1;
    }
    if (t->ent == NULL || (sending && t->index == NULL)) {
        ax__pathtab_free(t);
        return NULL;
    }
    return t;
}

void ax__pathtab_free(ax__pathtab_t *t)
{
    if (t == NULL)
        return;
    if (t->ent != NULL)
        for (uint32_t i = 0; i < t->n; i++)
            free(t->ent[i]);
    free(t->ent);
    free(t->index);
    free(t);
}

static ax__pathent_t *ent_new(const unsigned char *bytes, size_t len)
{
    ax__pathent_t *e = malloc(sizeof *e + len);

    if (e == NULL)
        return NULL;
    e->ref = AX_REF_NULL;
    e->stamp = 0;
    e->len = (uint16_t)len;
    memcpy(e->bytes, bytes, len);
    return e;
}

/* ---- sending ------------------------------------------------------------- */

/* Eight bytes at a time, multiply and fold: paths are 12 to 290 bytes. */
static uint32_t hash_bytes(const unsigned char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ len, w;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return (uint32_t)(h ^ h >> 29);
}

/* The id of a path's bytes in t: bound already (*def false), bound now
 * (*def true), or -1 when t is full (or out of memory: sent in full). */
static int64_t id_of(ax__pathtab_t *t, const unsigned char *bytes, size_t len, int slot, bool *def)
{
    uint32_t i, m = t->memo[slot];
    ax__pathent_t *e;

    /* A stream repeats its paths: try the id this slot had last time. */
    if (m != 0 && (e = t->ent[m - 1])->len == len && memcmp(e->bytes, bytes, len) == 0) {
        *def = false;
        return m - 1;
    }
    i = hash_bytes(bytes, len) & t->mask;

    for (; t->index[i] != 0; i = (i + 1) & t->mask) {
        e = t->ent[t->index[i] - 1];
        if (e->len == len && memcmp(e->bytes, bytes, len) == 0) {
            *def = false;
            t->memo[slot] = t->index[i];
            return t->index[i] - 1;
        }
    }
    if (t->used == t->n || len > AX__PACKED_PATH_MAX || ax__fault("net.pathtab"))
        return -1;
    e = ent_new(bytes, len);
    if (e == NULL)
        return -1;
    t->ent[t->used] = e;
    t->index[i] = ++t->used;
    t->memo[slot] = t->used;
    *def = true;
    return t->used - 1;
}

/* The extent of a path as Axon's encoder writes it (section 5.2, shortest
 * forms: 94, a fixint flags, bin 8 ip, a uint port, a uint id or a str
 * name), without a general msgpack walk; 0 when p[0, left) is not one. */
static size_t uint_len(unsigned char b)
{
    return b < 0x80 ? 1 : b == 0xcc ? 2 : b == 0xcd ? 3 : b == 0xce ? 5 : b == 0xcf ? 9 : 0;
}

static size_t path_extent(const unsigned char *p, size_t left)
{
    size_t n, k;

    if (left < 4 || p[0] != 0x94 || p[1] > 0x3f || p[2] != 0xc4)
        return 0;
    n = 4 + (size_t)p[3]; /* after the ip */
    if (n >= left || (k = uint_len(p[n])) == 0)
        return 0;
    n += k; /* after the port */
    if (n >= left)
        return 0;
    if ((p[n] & 0xe0) == 0xa0)
        k = 1 + (size_t)(p[n] & 0x1f);
    else if (p[n] == 0xd9 && n + 1 < left)
        k = 2 + (size_t)p[n + 1];
    else
        k = uint_len(p[n]);
    if (k == 0 || n + k > left)
        return 0;
    return n + k;
}

static size_t put_id(unsigned char *out, uint32_t id)
{
    if (id < 128) {
        out[0] = (unsigned char)id;
        return 1;
    }
    if (id < 256) {
        out[0] = 0xcc;
        out[1] = (unsigned char)id;
        return 2;
    }
    out[0] = 0xcd;
    out[1] = (unsigned char)(id >> 8);
    out[2] = (unsigned char)id;
    return 3;
}

/* One path of an envelope Axon encoded, as an id, a definition, or in
 * full; returns the bytes written. */
static size_t put_path(ax__pathtab_t *t, const unsigned char *p, size_t len, int slot, unsigned char *out,
                       bool *gain)
{
    bool def = false;
    int64_t id = id_of(t, p, len, slot, &def);
    size_t n = 0;

    if (id < 0) {
        memcpy(out, p, len);
        return len;
    }
    *gain = true;
    if (def)
        out[n++] = 0x92;
    n += put_id(out + n, (uint32_t)id);
    if (def) {
        memcpy(out + n, p, len);
        n += len;
    }
    return n;
}

/* A stream repeats its envelope: are the two paths at p (left bytes
 * before the serialiser id) the entries the memo names? Each entry's bytes
 * were one whole path when it was bound (path_extent), and path_extent
 * reads nothing past a path's end, so equal bytes have the same extents. */
static bool same_as_last(const ax__pathtab_t *t, const unsigned char *p, size_t left, size_t *dst_len,
                         size_t *src_len)
{
    const ax__pathent_t *d, *s;

    if (t->memo[0] == 0 || t->memo[1] == 0)
        return false;
    d = t->ent[t->memo[0] - 1];
    s = t->ent[t->memo[1] - 1];
    if ((size_t)d->len + s->len >= left || !ax__same_small(p, d->bytes, d->len) ||
        !ax__same_small(p + d->len, s->bytes, s->len))
        return false;
    *dst_len = d->len;
    *src_len = s->len;
    return true;
}

static size_t id_len(uint32_t id)
{
    return id < 128 ? 1 : id < 256 ? 2 : 3;
}

ax_status_t ax__pathtab_compact(ax__pathtab_t *t, const ax_lease_t *frame, uint32_t payload_off,
                                unsigned char *out, size_t cap, size_t *out_len)
{
    unsigned char copy[AX__FRAME_HEADER_SIZE + AX__ENVELOPE_MAX];
    /* The head is in the first slice, unless the frame was chained in its
     * first bytes; a lent body is a later slice (serial/frame.h). */
    const unsigned char *f = frame->chunk != NULL && frame->len >= payload_off ? frame->chunk->data + frame->off
                                                                                : NULL,
                        *env, *end;
    size_t frame_len = ax__lease_len(frame), dst_len, src_len, n;
    bool gain = false;

    if (payload_off <= AX__FRAME_HEADER_SIZE + 1 || payload_off > frame_len ||
        payload_off > sizeof copy)
        return AX_ENOTFOUND;
    if (f == NULL) {
        ax_lease_copy_out(frame, 0, copy, payload_off);
        f = copy;
    }
    env = f + AX__FRAME_HEADER_SIZE;
    end = f + payload_off;
    n = AX__FRAME_HEADER_SIZE;
    /* Axon's own encoding: [path, path or nil, id]. */
    if (env[0] != 0x93)
        return AX_ENOTFOUND;
    out[n++] = 0x93;
    if (same_as_last(t, env + 1, (size_t)(end - env - 1), &dst_len, &src_len)) {
        /* Both paths are the memo's: their references, nothing to parse. */
        if (n + id_len(t->memo[0] - 1) + id_len(t->memo[1] - 1) + (size_t)(end - env - 1) - dst_len - src_len >
            cap)
            return AX_ENOBUFS;
        n += put_id(out + n, t->memo[0] - 1);
        n += put_id(out + n, t->memo[1] - 1);
    } else {
        if (cap < AX__COMPACT_HEAD_MAX)
            return AX_ENOBUFS;
        if ((dst_len = path_extent(env + 1, (size_t)(end - env - 1))) == 0 ||
            1 + dst_len >= (size_t)(end - env))
            return AX_ENOTFOUND;
        if (env[1 + dst_len] == 0xc0)
            src_len = 1;
        else if ((src_len = path_extent(env + 1 + dst_len, (size_t)(end - env - 1 - dst_len))) == 0)
            return AX_ENOTFOUND;
        if (1 + dst_len + src_len >= (size_t)(end - env))
            return AX_ENOTFOUND;
        n += put_path(t, env + 1, dst_len, 0, out + n, &gain);
        if (src_len == 1) {
            out[n++] = 0xc0;
        } else {
            n += put_path(t, env + 1 + dst_len, src_len, 1, out + n, &gain);
        }
        if (!gain)
            return AX_ENOTFOUND;
    }
    ax__copy_small(out + n, env + 1 + dst_len + src_len, (size_t)(end - (env + 1 + dst_len + src_len)));
    n += (size_t)(end - (env + 1 + dst_len + src_len));
    ax__compact_head_header(out, n, frame_len, payload_off);
    *out_len = n;
    return AX_OK;
}

/* ---- receiving ------------------------------------------------------------ */

/* A msgpack uint (any encoding of a non-negative value, docs/wire.md
 * section 1) at p: its byte count, 0 when it is not one. */
static size_t read_uint(const unsigned char *p, size_t left, uint64_t *v)
{
    size_t w;
    uint64_t x = 0;
    bool is_signed = false;

    if (left == 0)
        return 0;
    if (p[0] < 0x80) {
        *v = p[0];
        return 1;
    }
    switch (p[0]) {
    case 0xcc: w = 1; break;
    case 0xcd: w = 2; break;
    case 0xce: w = 4; break;
    case 0xcf: w = 8; break;
    case 0xd0: w = 1; is_signed = true; break;
    case 0xd1: w = 2; is_signed = true; break;
    case 0xd2: w = 4; is_signed = true; break;
    case 0xd3: w = 8; is_signed = true; break;
    default: return 0;
    }
    if (left < 1 + w)
        return 0;
    if (is_signed && (p[1] & 0x80) != 0)
        return 0; /* negative */
    for (size_t i = 0; i < w; i++)
        x = x << 8 | p[1 + i];
    *v = x;
    return 1 + w;
}

/* An array header at p: its byte count (count in *count), 0 if none. */
static size_t read_array(const unsigned char *p, size_t left, uint64_t *count)
{
    if (left == 0)
        return 0;
    if ((p[0] & 0xf0) == 0x90) {
        *count = p[0] & 0x0f;
        return 1;
    }
    if (p[0] == 0xdc && left >= 3) {
        *count = (uint64_t)p[1] << 8 | p[2];
        return 3;
    }
    if (p[0] == 0xdd && left >= 5) {
        *count = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
        return 5;
    }
    return 0;
}

ax_status_t ax__path_read(const unsigned char *p, size_t len, ax_path_t *out)
{
    msgpack_zone *zone = ax__thread_zone();
    msgpack_object o;
    size_t off = 0;
    ax_status_t st;

    if (zone == NULL)
        return ax__error(AX_ENOMEM, "envelope: out of memory");
    /* p comes from a peer: bound it before msgpack-c allocates. */
    st = ax__msgpack_check(p, len, 1);
    if (st == AX_OK && msgpack_unpack((const char *)p, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS)
        st = ax__error(AX_EPROTO, "envelope: a path is not one msgpack object");
    if (st == AX_OK)
        st = ax_path_unpack(&o, out);
    msgpack_zone_clear(zone);
    return st;
}

/* Decode and check the path at p[0, len), and its canonical bytes. */
static ax_status_t canonical(const unsigned char *p, size_t len, ax__packed_path_t *pp)
{
    ax_path_t path;
    ax_status_t st = ax__path_read(p, len, &path);

    if (st == AX_OK)
        st = ax__path_packed(&path, pp);
    return st;
}

static const char *const which[2] = {"receiver", "sender"};

/* One path of the envelope at p (i: 0 receiver, 1 sender); its extent in
 * *used. */
static ax_status_t read_path(const unsigned char *p, size_t left, ax__pathtab_t *t, bool bind, int i,
                             ax__env_view_t *v, size_t *used)
{
    uint64_t id, count;
    size_t h, k, span;
    ax__packed_path_t pp;
    ax__pathent_t *e;
    ax_status_t st;

    v->p[i].ent = NULL;
    if (i == 1 && left > 0 && p[0] == 0xc0) {
        v->p[i].bytes = NULL;
        v->p[i].len = 0;
        v->p[i].form = AX__PATH_NIL;
        *used = 1;
        return AX_OK;
    }
    if ((k = read_uint(p, left, &id)) > 0) {
        if (t == NULL)
            return ax__error(AX_EPROTO, "envelope: a path id for the %s, but this connection has no path ids", which[i]);
        if (id >= t->n || t->ent[id] == NULL)
            return ax__error(AX_EPROTO, "envelope: the %s is path id %llu, which is not defined on this connection",
                             which[i], (unsigned long long)id);
        e = t->ent[id];
        v->p[i] = (ax__env_path_t){e->bytes, e->len, AX__PATH_REF, e};
        *used = k;
        return AX_OK;
    }
    h = read_array(p, left, &count);
    if (h == 0 || (count != 2 && count != 4))
        return ax__error(AX_EPROTO, "envelope: the %s is not a path, a path id or a definition", which[i]);
    st = ax__msgpack_span(p, left, 1, &span);
    if (st != AX_OK)
        return ax__error(AX_EPROTO, "envelope: the %s: %s", which[i], ax_error_detail());
    *used = span;
    if (count == 4) {
        v->p[i] = (ax__env_path_t){p, span, AX__PATH_FULL, NULL};
        return AX_OK;
    }
    /* A definition [id, path]. */
    if (t == NULL)
        return ax__error(AX_EPROTO, "envelope: a path-id definition for the %s, but this connection has no path ids",
                         which[i]);
    k = read_uint(p + h, span - h, &id);
    if (k == 0)
        return ax__error(AX_EPROTO, "envelope: the %s's definition has no uint id", which[i]);
    if (id >= t->n)
        return ax__error(AX_EPROTO, "envelope: the %s's definition binds id %llu, at or above the %u offered",
                         which[i], (unsigned long long)id, t->n);
    st = canonical(p + h + k, span - h - k, &pp);
    if (st != AX_OK)
        return ax__error(AX_EPROTO, "envelope: the %s's definition: %s", which[i], ax_error_detail());
    e = t->ent[id];
    if (bind) {
        if (e != NULL)
            return ax__error(AX_EPROTO, "envelope: the %s's definition binds id %llu, which is bound already",
                             which[i], (unsigned long long)id);
        e = ax__fault("net.pathtab") ? NULL : ent_new(pp.bytes, pp.len);
        if (e == NULL)
            return ax__error(AX_ENOMEM, "envelope: no memory to bind path id %llu", (unsigned long long)id);
        t->ent[id] = e;
    } else if (e == NULL || e->len != pp.len || memcmp(e->bytes, pp.bytes, pp.len) != 0) {
        return ax__error(AX_EPROTO, "envelope: the %s's definition of id %llu is not what this side bound",
                         which[i], (unsigned long long)id);
    }
    v->p[i] = (ax__env_path_t){e->bytes, e->len, AX__PATH_DEF, e};
    return AX_OK;
}

ax_status_t ax__env_view_read(const unsigned char *body, size_t avail, ax__pathtab_t *t, bool bind,
                              ax__env_view_t *v)
{
    uint64_t count;
    size_t off, used, k;
    ax_status_t st;

    off = read_array(body, avail, &count);
    if (off == 0 || count != 3)
        return ax__error(AX_EPROTO, "envelope: expected an array of 3 elements");
    for (int i = 0; i < 2; i++) {
        st = read_path(body + off, avail - off, t, bind, i, v, &used);
        if (st != AX_OK)
            return st;
        off += used;
    }
    k = read_uint(body + off, avail - off, &v->serialiser_id);
    if (k == 0)
        return ax__error(AX_EPROTO, "envelope: the serialiser id is not an unsigned integer");
    v->sid = body + off;
    v->sid_len = k;
    v->len = off + k;
    /* Also without ids: a full path is not checked here, and what
     * ax__env_view_full writes must fit its buffer whatever the view holds
     * (no valid envelope comes near the bound: two paths of at most
     * AX__PACKED_PATH_MAX bytes and a serialiser id). */
    if (1 + v->p[0].len + (v->p[1].bytes ? v->p[1].len : 1) + k > AX__ENVELOPE_MAX)
        return ax__error(AX_EPROTO, "envelope: above %u bytes with its paths in full", AX__ENVELOPE_MAX);
    return AX_OK;
}

bool ax__env_view_has_ids(const ax__env_view_t *v)
{
    return v->p[0].form == AX__PATH_DEF || v->p[0].form == AX__PATH_REF || v->p[1].form == AX__PATH_DEF ||
           v->p[1].form == AX__PATH_REF;
}

size_t ax__env_view_full(const ax__env_view_t *v, unsigned char out[AX__ENVELOPE_MAX])
{
    size_t n = 0;

    out[n++] = 0x93;
    memcpy(out + n, v->p[0].bytes, v->p[0].len);
    n += v->p[0].len;
    if (v->p[1].bytes == NULL) {
        out[n++] = 0xc0;
    } else {
        memcpy(out + n, v->p[1].bytes, v->p[1].len);
        n += v->p[1].len;
    }
    memcpy(out + n, v->sid, v->sid_len);
    return n + v->sid_len;
}
