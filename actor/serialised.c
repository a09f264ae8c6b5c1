/* Eager serialisation: per-actor pools, tell_serialised, preserialised
 * payloads, and routing of encoded frames. */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/net.h"
#include "actor/system.h"
#include "common/error.h"
#include "serial/frame.h"
#include "serial/mpcheck.h"
#include "serial/netmsg.h"

struct ax_preserialised_s {
    ax_lease_t payload;
    uint64_t serialiser_id;
};

ax_status_t ax_serialiser_register(ax_system_t *sys, const ax_msg_type_t *type)
{
    if (sys == NULL)
        return ax__error(AX_EINVAL, "serialiser_register: NULL system");
    return ax__ser_register(&sys->serialisers, type);
}

ax_status_t ax_serialiser_lookup(ax_system_t *sys, uint64_t id, const ax_msg_type_t **type)
{
    const ax_msg_type_t *t;

    if (sys == NULL || type == NULL)
        return ax__error(AX_EINVAL, "serialiser_lookup: NULL argument");
    t = ax__ser_lookup(&sys->serialisers, id);
    if (t == NULL)
        return ax__error(AX_ENOTFOUND, "serialiser_lookup: no type has id %llu", (unsigned long long)id);
    *type = t;
    return AX_OK;
}

ax_status_t ax_actor_init_buffers(ax_actor_t *self, const ax_buffer_config_t *cfg)
{
    ax__cell_t *c = ax__cell(self);
    ax__cell_ext_t *ext;

    ax_status_t st = ax__check_self(self, "init_buffers");

    if (st != AX_OK)
        return st;
    if ((ext = ax__ext(c)) == NULL)
        return AX_ENOMEM;
    if (ext->eb != NULL)
        return ax__error(AX_ESTATE, "init_buffers: the actor's buffer pool exists already");
    return ax_encode_buffer_create(cfg != NULL ? cfg : &c->sys->cfg.buffer_config, &ext->eb);
}

/*
 * The last envelope an actor packed, with what it was packed for: a
 * stream of frames with the same ends and type (an actor's sends to one
 * receiver; the dispatcher's lazy sends from one actor) packs it once and
 * copies it into each frame (dispatch/NOTES.md, "One envelope packed for
 * a stream"). Kept only for ends whose ref names one path for as long as
 * it is valid: a local ref with the system's address (its pointer), or a
 * remote ref the caller holds a pin on (a pinned entry's generation is
 * the ref's, so its path is the one packed).
 */
typedef struct ax__env_memo_s {
    bool valid;
    uint64_t tag;      /* this envelope's, for its frames (ax_net_msg_t.env_tag) */
    ax_ref_t dst, from;
    uint64_t serialiser_id;
    const ax_addr_t *addr;
    ax__packed_env_t env;
} ax__env_memo_t;

static ax_status_t encode_buffer(ax__cell_t *c, ax_encode_buffer_t **out)
{
    ax__cell_ext_t *ext = ax__ext(c);
    ax_status_t st = AX_OK;

    *out = NULL;
    if (ext == NULL)
        return AX_ENOMEM;
    if (ext->env == NULL && (ext->env = calloc(1, sizeof(*ext->env))) == NULL)
        return ax__error(AX_ENOMEM, "tell_serialised: out of memory");
    if (ext->eb == NULL)
        st = ax_encode_buffer_create(&c->sys->cfg.buffer_config, &ext->eb);
    if (st == AX_OK)
        *out = ext->eb;
    return st;
}

ax_status_t ax_actor_buffer_stats(ax_actor_t *self, ax_buffer_pool_stats_t *out)
{
    ax__cell_t *c = ax__cell(self);

    if (self == NULL || out == NULL)
        return ax__error(AX_EINVAL, "actor_buffer_stats: NULL argument");
    if (ax__check_self(self, "actor_buffer_stats") != AX_OK)
        return AX_ESTATE;
    if (c->ext == NULL || c->ext->eb == NULL)
        return ax__error(AX_ENOTFOUND, "actor_buffer_stats: the actor has no pool yet");
    ax_buffer_pool_stats(ax_encode_buffer_pool(c->ext->eb), out);
    return AX_OK;
}

ax_status_t ax_actor_trim_buffers(ax_actor_t *self, size_t most, size_t *freed)
{
    ax__cell_t *c = ax__cell(self);
    size_t n;

    if (self == NULL)
        return ax__error(AX_EINVAL, "actor_trim_buffers: NULL actor");
    if (ax__check_self(self, "actor_trim_buffers") != AX_OK)
        return AX_ESTATE;
    if (c->ext == NULL || c->ext->eb == NULL)
        return ax__error(AX_ENOTFOUND, "actor_trim_buffers: the actor has no pool yet");
    n = ax_buffer_pool_trim(ax_encode_buffer_pool(c->ext->eb),
                            ax_buffer_pool_config(ax_encode_buffer_pool(c->ext->eb))->initial_chunk_count, most);
    if (freed != NULL)
        *freed = n;
    return AX_OK;
}

/* The current system address object: packed paths are valid for it. */
static const ax_addr_t *addr_now(ax_system_t *sys)
{
    /* Relaxed: only compared with a cached pointer, never read through
     * here (ax_system_address reads the address with its acquire). */
    return ck_pr_load_ptr(&sys->addr);
}

/* The receiver's packed path: a remote ref's is copied from its entry
 * (AX_ENOTFOUND when the ref expired); a local one is packed once and
 * kept until self sends elsewhere. */
static ax_status_t packed_dst(ax__cell_t *c, ax_ref_t dst, bool held, ax__packed_path_t *tmp,
                              const ax__packed_path_t **out)
{
    ax__cell_ext_t *ext = c->ext;
    const ax_addr_t *addr;
    ax_path_t p;
    ax_status_t st;

    if (ax__ref_is(dst, AX__REF_REMOTE)) {
        *out = tmp;
        if (!held)
            return ax__remote_packed(dst, tmp);
        ax__remote_packed_held(dst, tmp);
        return AX_OK;
    }
    if (ax__ref_is(dst, AX__REF_REPLY)) {
        /* A local ask answered eagerly: the slot takes the NetMessage. */
        ax__ask_path(dst, &p);
        st = ax__path_packed(&p, tmp);
        *out = tmp;
        return st;
    }
    /* Read once, before the path: a port bound while it is packed leaves
     * the older address as its key, so the next send packs it again. */
    addr = addr_now(c->sys);
    if (!ax_ref_eq(ext->dst_ref, dst) || ext->dst_addr != addr) {
        st = ax_ref_path(dst, &p);
        if (st == AX_OK)
            st = ax__path_packed(&p, &ext->dst_packed);
        if (st != AX_OK) {
            ext->dst_ref = AX_REF_NULL;
            return st;
        }
        ext->dst_ref = dst;
        ext->dst_addr = addr;
    }
    *out = &ext->dst_packed;
    return AX_OK;
}

/* The sender's packed path, none for a message from outside any actor. A
 * local sender's is packed once and kept until another sends (self's own,
 * or, for the dispatcher, the actor whose lazy sends it encodes: a flow
 * from one actor packs it once, not per frame; dispatch/NOTES.md). A
 * local path is the address and the id, so the ref and the address are
 * the whole key. Any other sender's is packed into tmp. */
static ax_status_t packed_src(ax__cell_t *c, ax_ref_t from, ax__packed_path_t *tmp,
                              const ax__packed_path_t **out)
{
    ax__cell_ext_t *ext = c->ext;
    const ax_addr_t *addr;
    ax_path_t p;
    ax_status_t st;

    *out = NULL;
    if (ax_ref_is_null(from))
        return AX_OK;
    if (ax__ref_is(from, AX__REF_LOCAL)) {
        addr = addr_now(c->sys); /* once, before the path: see packed_dst */
        if (!ax_ref_eq(ext->src_ref, from) || ext->src_addr != addr) {
            st = ax__local_path(from.target, from.id, &p);
            if (st == AX_OK)
                st = ax__path_packed(&p, &ext->src_packed);
            if (st != AX_OK) {
                ext->src_ref = AX_REF_NULL;
                return st;
            }
            ext->src_ref = from;
            ext->src_addr = addr;
        }
        *out = &ext->src_packed;
        return AX_OK;
    }
    st = ax_ref_path(from, &p);
    if (st == AX_OK)
        st = ax__path_packed(&p, tmp);
    if (st == AX_OK)
        *out = tmp;
    return st;
}

/*
 * Route a serialised message: a local dst gets the NetMessage itself (its
 * frame still in the sender's chunk: no copy); a remote dst's goes to the
 * network. pinned: the caller's pin on a remote dst, which the frame then
 * holds, or NULL (one is taken here). Takes *nm, and the pin, on every
 * status.
 */
static ax_status_t route_net_msg(ax_system_t *sys, ax_ref_t dst, ax_net_msg_t **nm, ax_ref_t from,
                                 ax__remote_t *pinned)
{
    ax__remote_t *remote = pinned;
    ax_msg_t *m = &(*nm)->hdr;
    ax_status_t st;

    *nm = NULL;
    if (ax__ref_is(dst, AX__REF_REMOTE)) {
        /* Acquire: the ops and their context were published together. */
        const ax__net_ops_t *ops = ck_pr_load_ptr(&sys->net_ops);

        ck_pr_fence_acquire();
        if (ops == NULL) {
            ax_msg_release(&m);
            if (pinned != NULL)
                ax__remote_unpin(pinned);
            return ax__error(AX_ENOTFOUND, "tell_serialised: the system has no network");
        }
        /* The frame holds a pin on its destination until it is gone. */
        if (remote == NULL && (st = ax__remote_pin(dst, &remote)) != AX_OK) {
            ax_msg_release(&m);
            return st;
        }
        ops->send_frame(sys->net_ctx, remote, (ax_net_msg_t **)&m, from);
        return AX_OK;
    }
    st = ax_tell(dst, &m, from);
    ax_msg_release(&m); /* NULL unless the tell failed */
    return st;
}

/* Whether messages of type can be put on the wire. */
static bool serialisable(const ax_msg_type_t *type)
{
    return type != NULL && type->serialiser_id != 0 && type->serialise != NULL;
}

static ax_status_t check_type(const ax_msg_type_t *type, const ax_msg_t *msg)
{
    if (type == NULL || msg == NULL)
        return ax__error(AX_EINVAL, "tell_serialised: NULL type or message");
    if (!serialisable(type))
        return ax__error(AX_EINVAL, "tell_serialised: \"%s\" has no serialiser",
                         type->name ? type->name : "?");
    return AX_OK;
}

/*
 * NetMessages on the data path come from message memory (ax_msg_alloc:
 * mimalloc), not from the system's NetMessage pool: one thread makes them
 * (the network thread on receipt, a worker on send) and another releases
 * them. The pool then refilled its taker's stripe by walking a list of
 * messages last written on the other core, one cache miss after another
 * under the pool's lock: 44% of the receiving network thread's samples in
 * bench_net_procs' 64 B case (dispatch/NOTES.md, "Throughput"). The
 * network thread gives its pages back when it trims, a worker once it has
 * allocated none for half a second (sched.c, collect_if_quiet).
 */
static ax_status_t data_net_msg_new(ax_lease_t *frame, uint32_t payload_off, uint64_t serialiser_id,
                                    uint64_t session, ax_net_msg_t **out)
{
    return ax__net_msg_new(NULL, frame, payload_off, serialiser_id, session, out);
}

/* The envelope tags handed out so far (ax__env_memo_t.tag). */
static uint64_t env_tags;

/* Whether the envelope from `from` to dst can be kept (ax__env_memo_t). */
static bool env_keyable(ax_ref_t dst, bool dst_held, ax_ref_t from)
{
    return (ax__ref_is(dst, AX__REF_LOCAL) || (dst_held && ax__ref_is(dst, AX__REF_REMOTE))) &&
           (ax_ref_is_null(from) || ax__ref_is(from, AX__REF_LOCAL));
}

/* The envelope of a frame from `from` to dst of type: the memo's when it
 * was packed for the same, else packed now (into the memo). */
static ax_status_t envelope_for(ax__cell_t *c, ax_ref_t dst, bool dst_held, ax_ref_t from,
                                const ax_msg_type_t *type, const ax__packed_env_t **out)
{
    ax__env_memo_t *m = c->ext->env; /* made with the encode buffer */
    const ax_addr_t *addr = addr_now(c->sys);
    bool keyable = env_keyable(dst, dst_held, from);
    const ax__packed_path_t *to, *src;
    ax__packed_path_t tmp, tmp_dst;
    ax_status_t st;

    if (keyable && m->valid && ax_ref_eq(m->dst, dst) && ax_ref_eq(m->from, from) &&
        m->serialiser_id == type->serialiser_id && m->addr == addr) {
        *out = &m->env;
        return AX_OK;
    }
    m->valid = false;
    m->tag = 0;
    st = packed_dst(c, dst, dst_held, &tmp_dst, &to);
    if (st == AX_OK)
        st = packed_src(c, from, &tmp, &src);
    if (st == AX_OK)
        st = ax__envelope_packed(to, src, type->serialiser_id, &m->env);
    if (st != AX_OK)
        return st;
    m->valid = keyable;
    /* Unique in the process: a counter, any order (only equality counts). */
    m->tag = keyable ? ck_pr_faa_64(&env_tags, 1) + 1 : 0;
    m->dst = dst;
    m->from = from;
    m->serialiser_id = type->serialiser_id;
    m->addr = addr;
    *out = &m->env;
    return AX_OK;
}

/*
 * Bodies lent to frames and not yet given back, in bytes, process-wide. A
 * copied body waits in the encoding actor's pool, whose limit makes a
 * flood to a peer that does not read fail with AX_ENOBUFS (the dispatcher
 * dead-letters it); a lent body is outside the pool. So a body is lent
 * only while this total stays within the pool's own limit (chunk_size x
 * max_chunk_count); beyond it bodies are copied, and the pool's limit
 * holds as before: lent bodies at most double what a flood can hold.
 * Relaxed: a budget, read and changed by many threads; two encoders that
 * pass the check together overshoot it by a body each.
 */
static uint64_t lent_bytes;

/* A message lent to its frame goes when the frame's last lease does. Its
 * body (ax_bytes_msg_t, the only kind lent) is unchanged since lent. */
static void release_lent(void *msg)
{
    ax_msg_t *m = msg;

    ck_pr_sub_64(&lent_bytes, ((const ax_bytes_msg_t *)m)->len);
    ax_msg_release(&m);
}

/* Whether msg's body is to be lent to its frame by the encoder eb: a
 * built-in bytes or string body of AX__FRAME_LEND_MIN bytes or more,
 * within the budget; *len is its size. */
static bool lendable(ax_encode_buffer_t *eb, const ax_msg_type_t *type, const ax_msg_t *msg, size_t *len)
{
    const ax_buffer_config_t *cfg;
    const uint8_t *body;
    bool str;

    if (!ax__bytes_body(type, msg, &body, len, &str) || *len < AX__FRAME_LEND_MIN)
        return false;
    cfg = ax_buffer_pool_config(ax_encode_buffer_pool(eb));
    return ck_pr_load_64(&lent_bytes) + *len <= (uint64_t)cfg->chunk_size * cfg->max_chunk_count;
}

/* A lendable message's frame (len: its body's size). The NetMessage
 * comes first, so that once the message is lent nothing can fail and
 * hand it back released. */
static ax_status_t encode_lent(ax_encode_buffer_t *eb, const ax__packed_env_t *env, const ax_msg_type_t *type,
                               size_t len, ax_msg_t **lend, ax_net_msg_t **out)
{
    ax_lease_t frame = AX_LEASE_EMPTY;
    ax_net_msg_t *nm = NULL;
    uint32_t poff = 0;
    bool lent = false;
    ax_status_t st = data_net_msg_new(&frame, 0, type->serialiser_id, 0, &nm);

    if (st == AX_OK) {
        ck_pr_add_64(&lent_bytes, len); /* taken back below if not lent after all */
        st = ax__frame_encode_data_lent(eb, env, type, *lend, release_lent, *lend, &nm->frame, &poff, &lent);
        if (!lent)
            ck_pr_sub_64(&lent_bytes, len);
    }
    if (st != AX_OK) {
        if (nm != NULL) {
            ax_msg_t *m = &nm->hdr;

            ax_msg_release(&m);
        }
        return st;
    }
    nm->payload_off = poff;
    if (lent)
        *lend = NULL;
    *out = nm;
    return AX_OK;
}

ax_status_t ax__encode_net_msg(ax_actor_t *self, ax_ref_t dst, bool dst_held, ax_ref_t from,
                              const ax_msg_type_t *type, const ax_msg_t *msg, ax_msg_t **lend,
                              ax_net_msg_t **out)
{
    ax__cell_t *c = ax__cell(self);
    const ax__packed_env_t *env;
    ax_encode_buffer_t *eb;
    ax_lease_t frame;
    uint32_t poff;
    size_t len = 0;
    bool lending; /* encode_lent made the NetMessage, lent or not */
    ax_status_t st;

    if (self == NULL || out == NULL)
        return ax__error(AX_EINVAL, "tell_serialised: NULL actor");
    st = check_type(type, msg);
    if (st == AX_OK)
        st = encode_buffer(c, &eb); /* and the cell's ext, which the envelope uses */
    if (st == AX_OK)
        st = envelope_for(c, dst, dst_held, from, type, &env);
    lending = st == AX_OK && lend != NULL && lendable(eb, type, msg, &len);
    if (lending)
        st = encode_lent(eb, env, type, len, lend, out);
    else if (st == AX_OK)
        st = ax__frame_encode_data_env(eb, env, type, msg, &frame, &poff);
    if (st != AX_OK)
        return st;
    if (!lending) {
        st = data_net_msg_new(&frame, poff, type->serialiser_id, 0, out);
        if (st != AX_OK) {
            ax_lease_release(&frame);
            return st;
        }
    }
    (*out)->hdr.sender = from;
    (*out)->env_tag = c->ext->env->tag;
    return AX_OK;
}

ax_status_t ax__tell_serialised_from(ax_actor_t *self, ax_ref_t dst, ax_ref_t from,
                                     const ax_msg_type_t *type, const ax_msg_t *msg)
{
    ax__remote_t *pinned = NULL;
    ax_net_msg_t *nm;
    ax_status_t st = AX_OK;

    /* A remote dst is pinned once, for the encoding (its path is read
     * under the pin) and then for the frame, instead of twice. */
    if (ax__ref_is(dst, AX__REF_REMOTE)) {
        st = check_type(type, msg); /* a bad message says so before the ref does */
        if (st == AX_OK)
            st = ax__remote_pin(dst, &pinned);
    }
    if (st == AX_OK)
        st = ax__encode_net_msg(self, dst, pinned != NULL, from, type, msg, NULL, &nm);
    if (st != AX_OK) {
        if (pinned != NULL)
            ax__remote_unpin(pinned);
        return st;
    }
    return route_net_msg(ax__cell(self)->sys, dst, &nm, from, pinned);
}

ax_status_t ax_tell_serialised(ax_actor_t *self, ax_ref_t dst, const ax_msg_type_t *type,
                               const ax_msg_t *msg)
{
    ax_status_t st = ax__check_self(self, "tell_serialised");

    if (st != AX_OK)
        return st;
    return ax__tell_serialised_from(self, dst, ax_self(self), type, msg);
}

ax_status_t ax_preserialise(ax_actor_t *self, const ax_msg_type_t *type, const ax_msg_t *msg,
                            ax_preserialised_t **out)
{
    ax__cell_t *c = ax__cell(self);
    ax_preserialised_t *p;
    ax_encode_buffer_t *eb;
    ax_status_t st;

    if (self == NULL || out == NULL)
        return ax__error(AX_EINVAL, "preserialise: NULL argument");
    st = ax__check_self(self, "preserialise");
    if (st == AX_OK)
        st = check_type(type, msg);
    if (st == AX_OK)
        st = encode_buffer(c, &eb);
    if (st != AX_OK)
        return st;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ax__error(AX_ENOMEM, "preserialise: out of memory");
    st = ax_encode_begin(eb, type->size_hint != NULL ? type->size_hint(msg) : 0);
    if (st == AX_OK) {
        st = type->serialise(msg, ax_encode_packer(eb));
        if (st != AX_OK && ax_encode_write(eb, NULL, 0) == AX_ETOOBIG)
            st = AX_ETOOBIG; /* never fits: not "busy" */
        if (st != AX_OK)
            ax_encode_abort(eb);
        else
            st = ax_encode_end(eb, &p->payload);
    }
    if (st != AX_OK) {
        free(p);
        return st;
    }
    p->serialiser_id = type->serialiser_id;
    *out = p;
    return AX_OK;
}

ax_status_t ax_tell_preserialised(ax_actor_t *self, ax_ref_t dst, const ax_preserialised_t *shared)
{
    ax__cell_t *c = ax__cell(self);
    const ax__packed_path_t *to, *src;
    ax__packed_path_t tmp, tmp_dst;
    ax_encode_buffer_t *eb;
    ax_lease_t frame, payload = AX_LEASE_EMPTY;
    ax_net_msg_t *nm;
    size_t head_len;
    ax_status_t st;

    if (self == NULL || shared == NULL)
        return ax__error(AX_EINVAL, "tell_preserialised: NULL argument");
    st = ax__check_self(self, "tell_preserialised");
    if (st != AX_OK)
        return st;
    st = encode_buffer(c, &eb);
    if (st == AX_OK)
        st = packed_dst(c, dst, false, &tmp_dst, &to);
    if (st == AX_OK)
        st = packed_src(c, ax_self(self), &tmp, &src);
    if (st == AX_OK)
        st = ax__frame_encode_head_packed(eb, to, src, shared->serialiser_id,
                                          ax__lease_len(&shared->payload), &frame);
    if (st != AX_OK)
        return st;
    head_len = ax__lease_len(&frame);
    st = ax_lease_clone(&shared->payload, &payload);
    if (st == AX_OK)
        st = ax_lease_concat(&frame, &payload);
    if (st == AX_OK)
        st = data_net_msg_new(&frame, (uint32_t)head_len, shared->serialiser_id, 0, &nm);
    if (st != AX_OK) {
        ax_lease_release(&payload);
        ax_lease_release(&frame);
        return st;
    }
    nm->hdr.sender = ax_self(self);
    return route_net_msg(c->sys, dst, &nm, ax_self(self), NULL);
}

void ax_preserialised_release(ax_preserialised_t **shared)
{
    if (shared == NULL || *shared == NULL)
        return;
    ax_lease_release(&(*shared)->payload);
    free(*shared);
    *shared = NULL;
}

ax_status_t ax__tell_remote(ax_ref_t dst, ax_msg_t **msg, ax_ref_t from)
{
    ax__remote_t *remote = ax__remote_of(dst);
    const ax__net_ops_t *ops;

    if (ax__ref_is(dst, AX__REF_REPLY))
        return ax__ask_reply(dst, msg, from);
    if (remote == NULL)
        return ax__error(AX_EINVAL, "tell: not an actor ref");
    if (!serialisable((*msg)->type))
        return ax__error(AX_EINVAL, "tell: \"%s\" has no serialiser and cannot go to a remote actor",
                         (*msg)->type && (*msg)->type->name ? (*msg)->type->name : "?");
    ops = ck_pr_load_ptr(&remote->sys->net_ops); /* acquire: with its context */
    ck_pr_fence_acquire();
    if (ops == NULL)
        return ax__error(AX_ENOTFOUND, "tell: the system has no network for a remote ref");
    /* The lazy send pins its destination until it is gone (send_lazy
     * takes the pin, in batches when it can). sys and net_ctx are the
     * slot's for its life, so reading them needs no pin. */
    return ops->send_lazy(remote->sys->net_ctx, dst, msg, from);
}

/*
 * A stream of frames mostly goes to one actor. When the envelope begins
 * with the very receiver path bytes the previous frame had, and that
 * actor still takes messages, the path need not be decoded or looked up
 * again: skip the sender path (bounds-checked) and read the serialiser
 * id. The sender path is decoded, fully checked, only if a handler asks.
 */
static bool route_cached(const ax_lease_t *frame, const ax__route_cache_t *rc, uint64_t epoch, ax_ref_t *dst,
                         uint32_t *payload_off, uint64_t *serialiser_id)
{
    const unsigned char *body = ax_lease_data(frame);
    const ax__cell_t *c = rc->ref.target;
    size_t len, off, span, u = 0;
    msgpack_object o;
    uint64_t w;
    int rc_unpack;

    if (body == NULL || rc->path.len == 0)
        return false;
    body += AX__FRAME_HEADER_SIZE;
    len = ax__lease_len(frame) - AX__FRAME_HEADER_SIZE;
    if (len <= 1u + rc->path.len || body[0] != 0x93 || memcmp(body + 1, rc->path.bytes, rc->path.len) != 0)
        return false;
    w = ck_pr_load_64(&c->word); /* as a sender reads it (ax_tell) */
    if ((w >> AX__W_ID_SHIFT) != rc->ref.id || (w & AX__W_SEALED) != 0)
        return false;
    /* A name may have moved to another actor that lives too. */
    if (rc->epoch != epoch)
        return false;
    off = 1 + rc->path.len;
    if (ax__msgpack_span(body + off, len - off, 1, &span) != AX_OK)
        return false;
    off += span;
    if (ax__msgpack_span(body + off, len - off, 1, &span) != AX_OK)
        return false;
    rc_unpack = msgpack_unpack((const char *)body + off, span, &u, ax__thread_zone(), &o);
    msgpack_zone_clear(ax__thread_zone());
    if (rc_unpack != MSGPACK_UNPACK_SUCCESS || o.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *dst = rc->ref;
    *serialiser_id = o.via.u64;
    *payload_off = (uint32_t)(AX__FRAME_HEADER_SIZE + off + span);
    return true;
}

/* Remember the receiver path bytes of a frame that just resolved to a
 * local actor. */
static void route_remember(const ax_lease_t *frame, ax__route_cache_t *rc, ax_ref_t dst, uint64_t epoch)
{
    const unsigned char *body = ax_lease_data(frame);
    size_t span;

    rc->path.len = 0;
    if (body == NULL || !ax__ref_is(dst, AX__REF_LOCAL))
        return;
    body += AX__FRAME_HEADER_SIZE;
    if (ax__msgpack_span(body + 1, ax__lease_len(frame) - AX__FRAME_HEADER_SIZE - 1, 1, &span) != AX_OK ||
        span > sizeof rc->path.bytes)
        return;
    memcpy(rc->path.bytes, body + 1, span);
    rc->path.len = (uint16_t)span;
    rc->ref = dst;
    rc->epoch = epoch;
}

/* Whether a cached ref still names a live actor that takes messages, as
 * a sender reads it (ax_tell). */
static bool ref_live(ax_ref_t r)
{
    const ax__cell_t *c = r.target;
    uint64_t w;

    if (c == NULL || !ax__ref_is(r, AX__REF_LOCAL))
        return false;
    w = ck_pr_load_64(&c->word);
    return (w >> AX__W_ID_SHIFT) == r.id && (w & AX__W_SEALED) == 0;
}

/* The local actor a receiver path's wire bytes name (any address: the
 * frame came to this system). */
static ax_status_t resolve(ax_system_t *sys, const unsigned char *bytes, size_t len, ax_ref_t *dst)
{
    ax_path_t path;
    ax_status_t st = ax__path_read(bytes, len, &path);

    if (st != AX_OK)
        return ax__error(AX_EPROTO, "envelope: the receiver: %s", ax_error_detail());
    ax_system_address(sys, &path.addr);
    return ax_ref_from_path(sys, &path, dst);
}

/*
 * The receiver of an envelope read with ids on. An id remembers the actor
 * it resolved to, checked as any ref is (an actor that ended has another
 * id in its cell word, or is sealed), and for a name against the
 * registry's epoch (a name can move to another actor while the first
 * lives: ax_unregister, ax_register). So streams to many actors look
 * nothing up. A full path goes through the connection's one-path memory,
 * as without ids.
 */
static ax_status_t route_view(ax_system_t *sys, const ax__env_view_t *v, ax__route_cache_t *cache,
                              ax_ref_t *dst)
{
    const ax__env_path_t *p = &v->p[0];
    uint64_t epoch = ax__registry_epoch(&sys->registry);
    ax__pathent_t *e = p->ent;
    bool named;
    ax_status_t st;

    if (e != NULL) {
        /* Entries hold canonical bytes: 94, then the flags (kind in bits
         * 0-1); a unique id cannot move, a name can. */
        named = (e->bytes[1] & 3u) != 0;
        if (ref_live(e->ref) && (!named || e->stamp == epoch)) {
            *dst = e->ref;
            return AX_OK;
        }
        st = resolve(sys, p->bytes, p->len, dst);
        if (st == AX_OK && ax__ref_is(*dst, AX__REF_LOCAL)) {
            e->ref = *dst;
            e->stamp = epoch;
        }
        return st;
    }
    if (cache->path.len == p->len && memcmp(cache->path.bytes, p->bytes, p->len) == 0 && ref_live(cache->ref) &&
        cache->epoch == epoch) {
        *dst = cache->ref;
        return AX_OK;
    }
    st = resolve(sys, p->bytes, p->len, dst);
    cache->path.len = 0;
    if (st == AX_OK && ax__ref_is(*dst, AX__REF_LOCAL) && p->len <= sizeof cache->path.bytes) {
        memcpy(cache->path.bytes, p->bytes, p->len);
        cache->path.len = (uint16_t)p->len;
        cache->ref = *dst;
        cache->epoch = epoch;
    }
    return st;
}

/*
 * The envelope at body[0, avail): the cache's when its bytes are the same
 * (a stream's frames), else read, binding what it defines, and kept when
 * it has references only. *full: its paths in full (NULL when it has no
 * ids: the frame's own envelope is whole), in the cache or in scratch.
 */
static ax_status_t view_of(const unsigned char *body, size_t avail, ax__route_cache_t *cache, ax__env_view_t *v,
                           const unsigned char **full, size_t *full_len, unsigned char scratch[AX__ENVELOPE_MAX])
{
    ax_status_t st;

    /* A complete msgpack array at body's start: equal bytes are the
     * whole envelope. */
    if (cache->env_len > 0 && avail > cache->env_len && memcmp(body, cache->env, cache->env_len) == 0) {
        *v = cache->view;
        *full = cache->full;
        *full_len = cache->full_len;
        return AX_OK;
    }
    st = ax__env_view_read(body, avail, cache->ids, true, v);
    if (st != AX_OK)
        return st;
    *full = NULL;
    if (!ax__env_view_has_ids(v))
        return AX_OK;
    if (v->p[0].form == AX__PATH_REF && (v->p[1].form == AX__PATH_REF || v->p[1].form == AX__PATH_NIL) &&
        v->len <= sizeof cache->env) {
        /* References only: their bytes are the table's, which live as
         * long as the connection; the serialiser id's are copied. */
        cache->full_len = (uint16_t)ax__env_view_full(v, cache->full);
        memcpy(cache->env, body, v->len);
        cache->env_len = (uint8_t)v->len;
        cache->view = *v;
        cache->view.sid = NULL; /* in the frame: not kept, nor needed again */
        *full = cache->full;
        *full_len = cache->full_len;
        return AX_OK;
    }
    *full_len = ax__env_view_full(v, scratch);
    *full = scratch;
    return AX_OK;
}

/* ax__deliver_frame on a connection where the peer may use path ids. */
static ax_status_t deliver_view(ax_system_t *sys, ax_lease_t *frame, uint64_t session, uint64_t via,
                                ax__route_cache_t *cache)
{
    unsigned char copy[AX__ENVELOPE_MAX], scratch[AX__ENVELOPE_MAX];
    const unsigned char *body = ax_lease_data(frame), *full;
    size_t avail = ax__lease_len(frame) - AX__FRAME_HEADER_SIZE, n = 0;
    ax__env_view_t v;
    ax_net_msg_t *nm;
    ax_ref_t dst;
    ax_msg_t *m;
    ax_status_t st;

    if (ax__lease_len(frame) <= AX__FRAME_HEADER_SIZE)
        return ax__error(AX_EPROTO, "envelope: a Data frame with no body");
    if (body != NULL) {
        body += AX__FRAME_HEADER_SIZE;
    } else {
        /* A chained frame: the envelope is short, copy its start. */
        if (avail > sizeof copy)
            avail = sizeof copy;
        ax_lease_copy_out(frame, AX__FRAME_HEADER_SIZE, copy, avail);
        body = copy;
    }
    if (cache->ids == NULL && (cache->ids = ax__pathtab_new(cache->ids_n, false)) == NULL) {
        cache->ids_lost = true;
        return ax__error(AX_ENOMEM, "net: no memory for a path-id table");
    }
    st = view_of(body, avail, cache, &v, &full, &n, scratch);
    if (st == AX_ENOMEM)
        cache->ids_lost = true;
    if (st == AX_OK)
        st = route_view(sys, &v, cache, &dst);
    if (st == AX_OK)
        st = data_net_msg_new(frame, (uint32_t)(AX__FRAME_HEADER_SIZE + v.len), v.serialiser_id,
                             session, &nm);
    if (st != AX_OK)
        return st; /* *frame stays with the caller, to echo back */
    if (full != NULL) {
        /* The paths in full beside the frame: the handler decodes them
         * later, on its own thread, without this connection's table. */
        st = ax__net_msg_set_alt(nm, AX__NM_ALT_RX, full, n);
        if (st != AX_OK) {
            ax_lease_move(frame, &nm->frame);
            m = &nm->hdr;
            ax_msg_release(&m);
            return st;
        }
    }
    nm->via = via;
    m = &nm->hdr;
    st = ax_tell(dst, &m, AX_REF_NULL);
    if (st == AX_EFULL)
        ax_lease_move(frame, &nm->frame);
    ax_msg_release(&m);
    return st;
}

ax_status_t ax__deliver_frame(ax_system_t *sys, ax_lease_t *frame, uint64_t session, uint64_t via,
                              ax__route_cache_t *cache)
{
    ax__envelope_t env;
    ax_net_msg_t *nm;
    ax_ref_t dst;
    ax_msg_t *m;
    ax_status_t st = AX_OK;
    uint64_t epoch;

    if (cache != NULL && cache->ids_n > 0)
        return deliver_view(sys, frame, session, via, cache);
    epoch = ax__registry_epoch(&sys->registry);
    if (cache == NULL || !route_cached(frame, cache, epoch, &dst, &env.payload_off, &env.serialiser_id)) {
        st = ax__envelope_read(frame, AX__FRAME_HEADER_SIZE, &env);
        if (st == AX_OK) {
            /* The receiver is ours whatever address the peer used for us. */
            ax_system_address(sys, &env.dst.addr);
            st = ax_ref_from_path(sys, &env.dst, &dst);
        }
        if (st == AX_OK && cache != NULL)
            route_remember(frame, cache, dst, epoch);
    }
    if (st == AX_OK)
        st = data_net_msg_new(frame, env.payload_off, env.serialiser_id, session, &nm);
    if (st != AX_OK)
        return st; /* *frame stays with the caller, to echo back */
    nm->via = via;
    m = &nm->hdr;
    st = ax_tell(dst, &m, AX_REF_NULL);
    if (st == AX_EFULL) {
        /* The frame goes back to the caller, to return it to its sender
         * in a Status frame. */
        ax_lease_move(frame, &nm->frame);
    }
    ax_msg_release(&m);
    return st;
}
