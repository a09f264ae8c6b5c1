/*
 * Remote entries: one per remote path, at most network.max_remote_refs of
 * them. What a peer sends us (sender paths) cannot grow our memory beyond
 * that: when the table is full, a new path takes the slot of the entry
 * the clock finds unused since its last pass (second chance), and that
 * slot's generation moves on, so refs to the old path expire (every use
 * of them returns AX_ENOTFOUND) instead of reaching the new one.
 *
 * Slots are never freed before the table, so a stale ref always reads a
 * slot's word, never freed memory. The path's bytes (the key) are freed
 * on eviction: readers pin the entry first, and eviction is a CAS that
 * requires no pin (see ax__remote_t in actor/net.h).
 */
#include <stdlib.h>
#include <string.h>

#include "actor/remote_table.h"
#include "actor/system.h"
#include "common/error.h"
#include "serial/frame.h"

struct ax__remote_key_s {
    uint16_t len;          /* of the key: the path, and a CLIENT's id */
    uint16_t path_len;     /* of the path's bytes */
    unsigned char bytes[]; /* the path's wire encoding (serial/frame.h), then
                              for a CLIENT's sender a byte 0xc1 and its 8-byte
                              connection id. A msgpack object's encoding is
                              never the prefix of another's, so no other key,
                              with or without an id, equals it */
};

/* Room behind a path's bytes for a CLIENT's id. */
#define VIA_KEY_LEN 9

#define PINS_MASK UINT64_C(0xffffffff)
#define SEED 0x3c6ef372fe94f82bull

static uint32_t gen_of(uint64_t word)
{
    return (uint32_t)(word >> 32) & AX__REMOTE_GEN_MASK;
}

/* The generation after g; never 0, which no ref carries. */
static uint32_t gen_next(uint32_t g)
{
    g = (g + 1) & AX__REMOTE_GEN_MASK;
    return g != 0 ? g : 1;
}

static ax__remote_t *slot_at(ax__remote_table_t *t, uint32_t i)
{
    return &t->segs[i / AX__REMOTE_SEG][i % AX__REMOTE_SEG];
}

ax_status_t ax__remote_table_init(ax__remote_table_t *t, ax_system_t *sys, uint32_t cap)
{
    memset(t, 0, sizeof(*t));
    t->sys = sys;
    t->cap = cap;
    t->segs = calloc((cap + AX__REMOTE_SEG - 1) / AX__REMOTE_SEG, sizeof(*t->segs));
    if (t->segs == NULL || !ck_ht_init(&t->index, CK_HT_MODE_BYTESTRING, NULL, &ax__ht_allocator, 16, SEED)) {
        free(t->segs);
        return ax__error(AX_ENOMEM, "system: out of memory");
    }
    return AX_OK;
}

void ax__remote_table_destroy(ax__remote_table_t *t)
{
    for (uint32_t i = 0; i < t->nslots; i++)
        free(slot_at(t, i)->key);
    for (uint32_t s = 0; s * AX__REMOTE_SEG < t->nslots; s++)
        free(t->segs[s]);
    free(t->segs);
    ck_ht_destroy(&t->index);
}

void ax__remote_table_stats(ax__remote_table_t *t, uint64_t *live, uint64_t *bytes, uint64_t *evicted)
{
    uint32_t nsegs = (t->nslots + AX__REMOTE_SEG - 1) / AX__REMOTE_SEG;

    *live = t->live;
    /* Slots, keys with their malloc headers (16 bytes), and ck_ht's
     * entries (16 bytes each, with pointer packing). */
    *bytes = (uint64_t)nsegs * AX__REMOTE_SEG * sizeof(ax__remote_t) + t->key_bytes + 16u * t->live +
             16u * ck_ht_count(&t->index) * 2u;
    *evicted = t->evicted;
}

/* ---- pins ----------------------------------------------------------------- */

static ax_status_t expired(ax__remote_t *r, uint64_t word, ax_ref_t ref)
{
    uint32_t newer = (gen_of(word) - gen_of(ref.id)) & AX__REMOTE_GEN_MASK;

    return ax__error(AX_ENOTFOUND,
                     "remote ref expired: its entry went to another path (%u time%s since), after %u "
                     "newer remote paths filled network.max_remote_refs; get a new ref with "
                     "ax_ref_from_path",
                     newer, newer == 1 ? "" : "s", r->sys->remotes.cap);
}

ax_status_t ax__remote_pin(ax_ref_t ref, ax__remote_t **out)
{
    ax__remote_t *r = ax__remote_of(ref);
    uint64_t w;

    if (r == NULL)
        return ax__error(AX_EINVAL, "not a remote ref");
    /* A full barrier (an atomic add): the pin is in place before we read
     * the generation beside it, and an evictor's CAS sees it or we see the
     * evictor's new generation. */
    w = ck_pr_faa_64(&r->word, 1);
    if (gen_of(w) != gen_of(ref.id)) {
        ck_pr_dec_64(&r->word); /* undo: we read nothing */
        return expired(r, w, ref);
    }
    /* Second chance: a relaxed flag, read by the clock under the lock. */
    if (!ck_pr_load_32(&r->used))
        ck_pr_store_32(&r->used, 1);
    *out = r;
    return AX_OK;
}

void ax__remote_unpin_n(ax__remote_t *r, uint64_t n)
{
    /* Release (the RMW is a full barrier): our reads of the entry come
     * before an evictor's CAS that finds no pin. Pins are the low bits of
     * the word, so n of them come off in one subtraction. */
    ck_pr_sub_64(&r->word, n);
}

void ax__remote_pin_more(ax__remote_t *r, uint64_t n)
{
    /* The caller's pin keeps the generation and the entry: no check, and
     * the addition needs no order of its own (an evictor's CAS that finds
     * no pin cannot run while that pin is held). */
    ck_pr_add_64(&r->word, n);
}

void ax__remote_unpin(ax__remote_t *r)
{
    ax__remote_unpin_n(r, 1);
}

ax_ref_t ax__remote_ref(const ax__remote_t *r, uint32_t reply_gen)
{
    /* Pinned: the generation is stable; any load order will do. */
    uint64_t gen = gen_of(ck_pr_load_64((uint64_t *)&r->word));

    return (ax_ref_t){(void *)r, AX__REF_REMOTE | gen << 32 | (r->reply_slot ? reply_gen : 0)};
}

/* A reply slot's packed id is a uint64 (0xcf and 8 bytes, as it is at or
 * above 2^55), last in the path: its low 4 bytes take the generation. */
static void patch_reply_gen(ax__packed_path_t *p, uint32_t gen)
{
    unsigned char *b = p->bytes + p->len - 4;

    b[0] = (unsigned char)(gen >> 24);
    b[1] = (unsigned char)(gen >> 16);
    b[2] = (unsigned char)(gen >> 8);
    b[3] = (unsigned char)gen;
}

void ax__remote_packed_held(ax_ref_t ref, ax__packed_path_t *out)
{
    const ax__remote_t *r = ref.target; /* a remote ref: its entry */

    out->len = r->key->path_len;
    memcpy(out->bytes, r->key->bytes, r->key->path_len);
    if (r->reply_slot)
        patch_reply_gen(out, (uint32_t)ref.id);
}

ax_status_t ax__remote_packed(ax_ref_t ref, ax__packed_path_t *out)
{
    ax__remote_t *r = NULL; /* set when the pin succeeds; NULL quiets -O2 -Wmaybe-uninitialized */
    ax_status_t st = ax__remote_pin(ref, &r);

    if (st != AX_OK)
        return st;
    ax__remote_packed_held(ref, out);
    ax__remote_unpin(r);
    return AX_OK;
}

ax_status_t ax__remote_path(ax_ref_t ref, ax_path_t *out)
{
    ax__remote_t *r = NULL; /* as above */
    msgpack_object o;
    size_t off = 0;
    ax_status_t st = ax__remote_pin(ref, &r);

    if (st != AX_OK)
        return st;
    if (msgpack_unpack((const char *)r->key->bytes, r->key->path_len, &off, ax__thread_zone(), &o) !=
        MSGPACK_UNPACK_SUCCESS)
        st = ax__error(AX_EPROTO, "ref_path: a remote entry's path does not decode"); /* never */
    else
        st = ax_path_unpack(&o, out);
    msgpack_zone_clear(ax__thread_zone());
    if (st == AX_OK && r->reply_slot)
        out->id |= (uint32_t)ref.id; /* its generation */
    ax__remote_unpin(r);
    return st;
}

/* ---- the table -------------------------------------------------------------- */

/*
 * ck_ht leaves a tombstone for each removal, and lookups of a missing key
 * (every new path) probe past them: under steady eviction the probes grow
 * until the table is all tombstones. Once there have been as many
 * removals as live entries, the index is built afresh from the slots
 * (amortised: one more insert per eviction). Without memory for the new
 * index, the old one stays, correct if slower.
 */
static void reindex(ax__remote_table_t *t)
{
    ck_ht_t fresh;

    if (!ck_ht_init(&fresh, CK_HT_MODE_BYTESTRING, NULL, &ax__ht_allocator, 2u * t->live + 16u, SEED))
        return;
    for (uint32_t i = 0; i < t->nslots; i++) {
        ax__remote_t *r = slot_at(t, i);
        ck_ht_entry_t e;
        ck_ht_hash_t h;

        if (r->key == NULL)
            continue;
        ck_ht_hash(&h, &fresh, r->key->bytes, r->key->len);
        ck_ht_entry_set(&e, h, r->key->bytes, r->key->len, r);
        if (!ck_ht_put_spmc(&fresh, h, &e)) {
            ck_ht_destroy(&fresh);
            return;
        }
    }
    ck_ht_destroy(&t->index);
    t->index = fresh; /* a ck_ht_t holds no pointer to itself */
    t->removed = 0;
}

/* Take r out of the index and free its key. */
static void drop_key(ax__remote_table_t *t, ax__remote_t *r)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash(&h, &t->index, r->key->bytes, r->key->len);
    ck_ht_entry_key_set(&e, r->key->bytes, r->key->len);
    ck_ht_remove_spmc(&t->index, h, &e);
    t->removed++;
    t->key_bytes -= sizeof(*r->key) + r->key->len;
    t->live--;
    free(r->key);
    r->key = NULL;
}

/* A fresh slot while the table grows; NULL without memory for it. */
static ax__remote_t *new_slot(ax__remote_table_t *t)
{
    uint32_t i = t->nslots;

    if (i % AX__REMOTE_SEG == 0) {
        ax__remote_t *seg = calloc(AX__REMOTE_SEG, sizeof(*seg));

        if (seg == NULL)
            return NULL;
        for (uint32_t k = 0; k < AX__REMOTE_SEG; k++) {
            seg[k].sys = t->sys;
            seg[k].word = (uint64_t)1 << 32;
        }
        t->segs[i / AX__REMOTE_SEG] = seg;
    }
    t->nslots++;
    return slot_at(t, i);
}

/*
 * The clock: the first slot from the hand that is free, or holds an entry
 * without pins whose used flag was clear (flags found set are cleared on
 * the way). Two turns at most; NULL when every entry is pinned. The
 * victim's generation has moved on: its refs have expired.
 */
static ax__remote_t *evict(ax__remote_table_t *t)
{
    for (uint64_t n = 0; n < 2u * (uint64_t)t->nslots + 1u; n++) {
        ax__remote_t *r = slot_at(t, t->hand);
        /* Any order: a stale value only makes the CAS below fail. */
        uint64_t w = ck_pr_load_64(&r->word);

        t->hand = (t->hand + 1) % t->nslots;
        if (r->key == NULL)
            return r; /* free: its generation moved on when it was freed */
        if ((w & PINS_MASK) != 0)
            continue;
        /* The flag is a hint (relaxed both ways): a use that races with
         * the clearing is at worst one turn late to count. */
        if (ck_pr_load_32(&r->used)) {
            ck_pr_store_32(&r->used, 0); /* a second chance */
            continue;
        }
        /* Full barrier (CAS): fails if a reader pinned it meanwhile; once
         * it succeeds, no reader of the old generation reads it again. */
        if (!ck_pr_cas_64(&r->word, w, (uint64_t)gen_next(gen_of(w)) << 32))
            continue;
        drop_key(t, r);
        t->evicted++;
        if (t->removed > t->live)
            reindex(t);
        return r;
    }
    return NULL;
}

/* Give r back after a failed insert: its generation moves on, so a
 * partial entry is never reachable. With no pin possible (no ref). */
static void free_slot(ax__remote_t *r)
{
    uint64_t w = ck_pr_load_64(&r->word);

    /* Pins only from stale refs, which undo them: keep them as they are. */
    ck_pr_add_64(&r->word, ((uint64_t)gen_next(gen_of(w)) << 32) - (w & ~PINS_MASK));
}

static bool is_reply_slot(const ax_path_t *path)
{
    return path->kind == AX_PATH_UNIQUE && (path->id & AX__ASK_ID_BIT);
}

/* A new entry for key (hash h) in a slot of its own; with the lock. */
static ax_status_t insert(ax__remote_table_t *t, const ax_path_t *path, bool reply_slot, uint64_t via,
                          const unsigned char *kb, size_t klen, size_t path_len, ck_ht_hash_t h,
                          ax__remote_t **out)
{
    struct ax__remote_key_s *key = malloc(sizeof(*key) + klen);
    ax__remote_t *r = NULL;
    ck_ht_entry_t e;

    if (key == NULL)
        return ax__error(AX_ENOMEM, "remote ref: out of memory");
    if (t->nslots < t->cap)
        r = new_slot(t);
    if (r == NULL && t->nslots > 0)
        r = evict(t);
    if (r == NULL) {
        free(key);
        if (t->nslots < t->cap)
            return ax__error(AX_ENOMEM, "remote ref: out of memory");
        return ax__error(AX_ENOBUFS,
                         "remote ref: all %u entries (network.max_remote_refs) are held by messages "
                         "in flight", t->cap);
    }
    key->len = (uint16_t)klen;
    key->path_len = (uint16_t)path_len;
    memcpy(key->bytes, kb, klen);
    ck_ht_entry_set(&e, h, key->bytes, key->len, r);
    if (!ck_ht_put_spmc(&t->index, h, &e)) {
        free(key);
        free_slot(r);
        return ax__error(AX_ENOMEM, "remote ref: out of memory");
    }
    r->key = key;
    r->addr = path->addr;
    r->reply_slot = reply_slot;
    r->via = via;
    r->peer = NULL;
    ck_pr_store_32(&r->used, 0); /* new: first out unless used first (a hint, any order) */
    t->key_bytes += sizeof(*key) + key->len;
    t->live++;
    *out = r;
    return AX_OK;
}

ax_status_t ax__remote_intern(ax_system_t *sys, const ax_path_t *in, ax_ref_t *out)
{
    return ax__remote_intern_via(sys, in, 0, out);
}

ax_status_t ax__remote_intern_via(ax_system_t *sys, const ax_path_t *in, uint64_t via, ax_ref_t *out)
{
    ax__remote_table_t *t = &sys->remotes;
    ax__packed_path_t packed;
    unsigned char kb[sizeof packed.bytes + VIA_KEY_LEN];
    size_t klen;
    ax_path_t slot_path;
    const ax_path_t *path = in;
    ax__remote_t *r = NULL;
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    ax_status_t st = AX_OK;

    if (is_reply_slot(in)) {
        slot_path = *in;
        slot_path.id &= ~(uint64_t)UINT32_MAX;
        path = &slot_path;
    }
    st = ax__path_packed(path, &packed);
    if (st != AX_OK)
        return st;
    memcpy(kb, packed.bytes, packed.len);
    klen = packed.len;
    if (via != 0) {
        kb[klen++] = 0xc1;
        for (int i = 7; i >= 0; i--)
            kb[klen++] = (unsigned char)(via >> (8 * i));
    }
    pthread_mutex_lock(&sys->remote_lock);
    ck_ht_hash(&h, &t->index, kb, (uint16_t)klen);
    ck_ht_entry_key_set(&e, kb, (uint16_t)klen);
    if (ck_ht_get_spmc(&t->index, h, &e)) {
        r = ck_ht_entry_value(&e);
        ck_pr_store_32(&r->used, 1); /* asked for again: in use (a hint, any order) */
    } else {
        st = insert(t, path, path != in, via, kb, klen, packed.len, h, &r);
    }
    /* Under the lock: nobody evicts r before its generation is read. */
    if (st == AX_OK)
        *out = ax__remote_ref(r, (uint32_t)in->id);
    pthread_mutex_unlock(&sys->remote_lock);
    return st;
}
