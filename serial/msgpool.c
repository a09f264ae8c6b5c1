/*
 * Message pools, as in tofu: get with a strategy, put that nulls the
 * pointer.
 *
 * Each thread uses one stripe (a small cache under its own spinlock,
 * uncontended in the steady state); stripes exchange batches with a global
 * list. The pool never holds more than max: the stripes' capacities plus
 * the global list's add up to max, and for a small max the stripes hold
 * nothing, so the bound is also exact for a single thread.
 *
 * The global list is a stack of chains, so that a batch moves between it
 * and a stripe in one step under its lock. A chain is messages linked by
 * link.next and ended by NULL; while it sits in the pool, its first
 * message keeps the chain's length in `to`, and the next chain and its
 * own last message in `sender` (get rewrites a pooled message's whole
 * header, so these fields are free). A stripe that fills gives half of
 * itself as one chain; a stripe that runs dry takes one chain whole.
 * Taking a batch by walking it under the lock read one message line per
 * message, each last written on another core, while every thread that
 * put a message spun on that lock: in bench_actor's spawn from a thread
 * the walk was two thirds of ax_msg_get and the spin 86% of ax_msg_put
 * (actor/NOTES.md, "The pool's batches move whole").
 *
 * `live` counts the messages of the pool that exist (held or out). It
 * changes only when a message is allocated or discarded, never on get or
 * put, so it costs nothing in the steady state; it lets the pool's memory
 * outlive ax_msg_pool_destroy until its last message comes back.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "serial/message_internal.h"
#include "common/ax_atomic.h"
#include "common/error.h"
#include "common/prefetch.h"

#define STRIPE_CAP_MAX 64

struct stripe {
    alignas(64) ck_spinlock_t lock;
    ax_msg_link_t *head;
    size_t count;
};

struct ax_msg_pool_s {
    const ax_msg_type_t *type;
    size_t max;
    size_t stripe_cap;
    unsigned nstripes; /* a power of two */
    uint64_t live;     /* atomic */
    uint32_t destroyed; /* set under every lock, read under one (or in discard: see there) */
    alignas(64) ck_spinlock_t glock;
    ax_msg_t *ghead;   /* the top chain; see above. Under glock; stores atomic for get's peek */
    size_t gcount, gcap;
    struct stripe stripes[];
};


static unsigned next_thread_index;
static _Thread_local unsigned thread_index_plus1;

static struct stripe *my_stripe(ax_msg_pool_t *pool)
{
    if (thread_index_plus1 == 0)
        thread_index_plus1 = ck_pr_faa_uint(&next_thread_index, 1) + 1; /* uniqueness only */
    return &pool->stripes[(thread_index_plus1 - 1) & (pool->nstripes - 1)];
}

static void free_pool(ax_msg_pool_t *pool)
{
    free(pool);
}

/* A message leaves the pool for good. */
static void discard(ax_msg_pool_t *pool, ax_msg_t *msg)
{
    /* A chain's marks (below) are not a sender: the type's release sees
     * an empty one. */
    msg->sender = AX_REF_NULL;
    msg->to = 0;
    msg->pool = NULL;
    ax__msg_discard(msg);
    /* The last message of a destroyed pool frees it; the full barrier of
     * the decrement orders every earlier use of the pool before that. The
     * flag's load needs no lock: destroy stores it before its own last
     * decrement, and a decrement that reaches 0 after that one sees it. */
    if (ck_pr_faa_64(&pool->live, (uint64_t)-1) == 1 && ck_pr_load_32(&pool->destroyed))
        free_pool(pool);
}

static ax_msg_t *new_message(ax_msg_pool_t *pool)
{
    ax_msg_t *msg = calloc(1, pool->type->size);

    if (msg == NULL)
        return NULL;
    ck_pr_inc_64(&pool->live); /* full barrier; see discard */
    return msg;
}

static void reset_header(ax_msg_pool_t *pool, ax_msg_t *msg)
{
    ax_msg_init(msg, pool->type);
    msg->pool = pool;
}

/* Under s's lock (or before the pool is shared). */
static void stripe_push(struct stripe *s, ax_msg_t *msg)
{
    msg->link.next = s->head;
    s->head = &msg->link;
    s->count++;
}

/* ---- the global stack of chains (under glock) ------------------------- */

static size_t chain_len(const ax_msg_t *h)
{
    return (size_t)h->to;
}

static ax_msg_t *chain_next(const ax_msg_t *h)
{
    return h->sender.target;
}

static ax_msg_t *chain_last(const ax_msg_t *h)
{
    return (ax_msg_t *)(uintptr_t)h->sender.id;
}

static void chain_mark(ax_msg_t *h, size_t len, ax_msg_t *last, ax_msg_t *next)
{
    h->to = len;
    h->sender = (ax_ref_t){next, (uint64_t)(uintptr_t)last};
}

/* The largest chain a stripe gives or takes; 1 when stripes hold nothing. */
static size_t chain_max(const ax_msg_pool_t *pool)
{
    return pool->stripe_cap > 1 ? pool->stripe_cap / 2 : 1;
}

/* ghead is read without the lock by get's peek: every write of it after
 * creation is an atomic store. */
static void gpush_chain(ax_msg_pool_t *pool, ax_msg_t *h, size_t len, ax_msg_t *last)
{
    last->link.next = NULL;
    chain_mark(h, len, last, pool->ghead);
    ck_pr_store_ptr(&pool->ghead, h);
    pool->gcount += len;
}

/* One message onto the top chain, or a new chain when that one is full. */
static void gpush_one(ax_msg_pool_t *pool, ax_msg_t *m)
{
    ax_msg_t *h = pool->ghead;

    if (h != NULL && chain_len(h) < chain_max(pool)) {
        m->link.next = &h->link;
        chain_mark(m, chain_len(h) + 1, chain_last(h), chain_next(h));
        ck_pr_store_ptr(&pool->ghead, m);
        pool->gcount++;
    } else {
        gpush_chain(pool, m, 1, m);
    }
}

/* The top chain, whole; NULL when the list is empty. */
static ax_msg_t *gpop_chain(ax_msg_pool_t *pool)
{
    ax_msg_t *h = pool->ghead;

    if (h != NULL) {
        ck_pr_store_ptr(&pool->ghead, chain_next(h));
        pool->gcount -= chain_len(h);
    }
    return h;
}

/* One message, off the top chain. */
static ax_msg_t *gpop_one(ax_msg_pool_t *pool)
{
    ax_msg_t *h = pool->ghead, *rest;

    if (h == NULL)
        return NULL;
    if (chain_len(h) == 1) {
        ck_pr_store_ptr(&pool->ghead, chain_next(h));
    } else {
        rest = (ax_msg_t *)h->link.next;
        chain_mark(rest, chain_len(h) - 1, chain_last(h), chain_next(h));
        ck_pr_store_ptr(&pool->ghead, rest);
    }
    pool->gcount--;
    return h;
}

ax_status_t ax_msg_pool_create(const ax_msg_type_t *type, const ax_msg_pool_options_t *opts,
                               ax_msg_pool_t **out)
{
    ax_msg_pool_options_t o = opts != NULL ? *opts : (ax_msg_pool_options_t){0};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nstripes = 4;
    ax_msg_pool_t *pool;

    if (type == NULL || out == NULL)
        return ax__error(AX_EINVAL, "msg_pool: NULL argument");
    if (type->size < sizeof(ax_msg_t))
        return ax__error(AX_EINVAL, "msg_pool \"%s\": size %zu is smaller than ax_msg_t",
                         type->name ? type->name : "?", type->size);
    if (o.max == 0)
        o.max = o.initial != 0 ? o.initial : 1024;
    if (o.initial > o.max)
        return ax__error(AX_EINVAL, "msg_pool: initial (%zu) is above max (%zu)", o.initial, o.max);
    while (nstripes < 2 * (unsigned)(cpus > 0 ? cpus : 1) && nstripes < 64)
        nstripes *= 2;
    /* Aligned as its lines are (the global lock, each stripe). */
    pool = aligned_alloc(alignof(ax_msg_pool_t), sizeof(*pool) + nstripes * sizeof(struct stripe));
    if (pool == NULL)
        return ax__error(AX_ENOMEM, "msg_pool: out of memory");
    memset(pool, 0, sizeof(*pool) + nstripes * sizeof(struct stripe));
    pool->type = type;
    pool->max = o.max;
    pool->nstripes = nstripes;
    /* Stripes get a share only when it is worth having; the global list
     * gets the rest, so the total is exactly max. */
    pool->stripe_cap = o.max / (4 * nstripes);
    if (pool->stripe_cap < 8)
        pool->stripe_cap = 0;
    if (pool->stripe_cap > STRIPE_CAP_MAX)
        pool->stripe_cap = STRIPE_CAP_MAX;
    pool->gcap = o.max - pool->stripe_cap * nstripes;
    ck_spinlock_init(&pool->glock);
    for (unsigned i = 0; i < nstripes; i++)
        ck_spinlock_init(&pool->stripes[i].lock);
    for (size_t i = 0; i < o.initial; i++) {
        ax_msg_t *msg = new_message(pool);

        if (msg == NULL) {
            ax_msg_pool_destroy(&pool);
            return ax__error(AX_ENOMEM, "msg_pool: out of memory");
        }
        reset_header(pool, msg);
        if (pool->gcount < pool->gcap) {
            gpush_one(pool, msg);
        } else {
            stripe_push(&pool->stripes[i % nstripes], msg);
        }
    }
    *out = pool;
    return AX_OK;
}

/* Detach a list under its lock; discard it after. */
static void discard_list(ax_msg_pool_t *pool, ax_msg_link_t *l)
{
    while (l != NULL) {
        ax_msg_link_t *next = l->next;

        discard(pool, (ax_msg_t *)l);
        l = next;
    }
}

void ax_msg_pool_destroy(ax_msg_pool_t **poolp)
{
    ax_msg_pool_t *pool;
    ax_msg_link_t *lists[64];
    ax_msg_t *chains;
    unsigned n = 0;

    if (poolp == NULL || *poolp == NULL)
        return;
    pool = *poolp;
    *poolp = NULL;
    /* Take every lock: a put that holds one sees destroyed afterwards and
     * discards instead of caching. */
    ck_spinlock_lock(&pool->glock);
    for (unsigned i = 0; i < pool->nstripes; i++)
        ck_spinlock_lock(&pool->stripes[i].lock);
    ck_pr_store_32(&pool->destroyed, 1); /* under every lock, read under one */
    chains = pool->ghead;
    ck_pr_store_ptr(&pool->ghead, NULL); /* see gpush_chain */
    pool->gcount = 0;
    for (unsigned i = 0; i < pool->nstripes; i++) {
        lists[n++] = pool->stripes[i].head;
        pool->stripes[i].head = NULL;
        pool->stripes[i].count = 0;
    }
    /* Hold one extra reference so discarding the held messages cannot
     * free the pool before we unlock. */
    ck_pr_inc_64(&pool->live);
    for (unsigned i = 0; i < pool->nstripes; i++)
        ck_spinlock_unlock(&pool->stripes[i].lock);
    ck_spinlock_unlock(&pool->glock);
    for (unsigned i = 0; i < n; i++)
        discard_list(pool, lists[i]);
    while (chains != NULL) {
        ax_msg_t *next = chain_next(chains); /* before the chain is freed */

        discard_list(pool, &chains->link);
        chains = next;
    }
    if (ck_pr_faa_64(&pool->live, (uint64_t)-1) == 1) /* as in discard */
        free_pool(pool);
}

static ax_msg_link_t *pop(ax_msg_link_t **head)
{
    ax_msg_link_t *l = *head;

    if (l != NULL)
        *head = l->next;
    return l;
}

/* The chain h came off the global list; all of it but h goes to stripe s,
 * as far as s has room (another thread may share s and have filled it
 * since), and back to the global list otherwise, where it came from. */
static void refill(ax_msg_pool_t *pool, struct stripe *s, ax_msg_t *h)
{
    ax_msg_t *rest = (ax_msg_t *)h->link.next, *last = chain_last(h);
    size_t n = chain_len(h) - 1;
    bool fits;

    ck_spinlock_lock(&s->lock);
    fits = s->count + n <= pool->stripe_cap;
    if (fits) {
        last->link.next = s->head;
        s->head = &rest->link;
        s->count += n;
    }
    ck_spinlock_unlock(&s->lock);
    if (fits)
        return;
    ck_spinlock_lock(&pool->glock);
    fits = pool->gcount + n <= pool->gcap; /* others may have put since */
    if (fits)
        gpush_chain(pool, rest, n, last);
    ck_spinlock_unlock(&pool->glock);
    if (!fits)
        discard_list(pool, &rest->link); /* the pool is full */
}

ax_status_t ax_msg_get(ax_msg_pool_t *pool, ax_alloc_strategy_t strategy, ax_msg_t **out)
{
    struct stripe *s;
    ax_msg_link_t *l, *next;
    ax_msg_t *msg = NULL;

    if (pool == NULL || out == NULL)
        return ax__error(AX_EINVAL, "msg_get: NULL argument");
    s = my_stripe(pool);
    ck_spinlock_lock(&s->lock);
    l = pop(&s->head);
    if (l != NULL)
        s->count--;
    next = s->head;
    ck_spinlock_unlock(&s->lock);
    if (l != NULL) {
        /* The next get's message, most likely put back on another core
         * (see prefetch.h). */
        ax__prefetch_write(next);
        msg = (ax_msg_t *)l;
    } else if (ck_pr_load_ptr(&pool->ghead) != NULL) {
        /* An unlocked peek: a stale answer only costs a lock or an alloc.
         * Refill: one chain, the first message for us and the rest for
         * this stripe, or one message when stripes hold nothing. */
        ck_spinlock_lock(&pool->glock);
        msg = pool->stripe_cap == 0 ? gpop_one(pool) : gpop_chain(pool);
        ck_spinlock_unlock(&pool->glock);
        if (msg != NULL && pool->stripe_cap != 0 && chain_len(msg) > 1)
            refill(pool, s, msg);
    }
    if (msg == NULL) {
        if (strategy == AX_POOL_ONLY) {
            *out = NULL;
            return AX_OK;
        }
        if ((msg = new_message(pool)) == NULL)
            return ax__error(AX_ENOMEM, "msg_get \"%s\": out of memory", pool->type->name);
    }
    reset_header(pool, msg);
    *out = msg;
    return AX_OK;
}

void ax_msg_put(ax_msg_pool_t *pool, ax_msg_t **msgp)
{
    ax_msg_t *msg;
    struct stripe *s;

    if (msgp == NULL || (msg = *msgp) == NULL)
        return;
    *msgp = NULL;
    if (pool == NULL || msg->pool != pool) {
        ax_msg_release(&msg);
        return;
    }
    /* Drop what the message holds (a NetMessage's lease, say) before it
     * sits in the pool. */
    if (msg->type != NULL && msg->type->reset != NULL)
        msg->type->reset(msg);
    s = my_stripe(pool);
    ck_spinlock_lock(&s->lock);
    /* Under the stripe lock, which destroy also takes: definitive. */
    if (ck_pr_load_32(&pool->destroyed)) {
        ck_spinlock_unlock(&s->lock);
        discard(pool, msg);
        return;
    }
    if (s->count < pool->stripe_cap) {
        stripe_push(s, msg);
        ck_spinlock_unlock(&s->lock);
        return;
    }
    if (pool->stripe_cap == 0) {
        /* Stripes unused: the message goes to the global list, if it has
         * room. */
        ck_spinlock_lock(&pool->glock);
        if (pool->gcount < pool->gcap) {
            gpush_one(pool, msg);
            msg = NULL;
        }
        ck_spinlock_unlock(&pool->glock);
        ck_spinlock_unlock(&s->lock);
    } else {
        /* Stripe full: half of it goes to the global list as one chain,
         * walked here on this stripe's own messages, and the message
         * takes its place. When the global list has no room for the
         * chain, the stripe keeps it and the message is discarded. The
         * stripe lock is held, so destroy cannot run in between. */
        size_t k = chain_max(pool);
        ax_msg_t *h = (ax_msg_t *)s->head, *last = h;
        bool moved;

        for (size_t i = 1; i < k; i++)
            last = (ax_msg_t *)last->link.next;
        ck_spinlock_lock(&pool->glock);
        moved = pool->gcount + k <= pool->gcap;
        if (moved) {
            s->head = last->link.next;
            s->count -= k;
            gpush_chain(pool, h, k, last);
        }
        ck_spinlock_unlock(&pool->glock);
        if (moved) {
            stripe_push(s, msg);
            msg = NULL;
        }
        ck_spinlock_unlock(&s->lock);
    }
    if (msg != NULL)
        discard(pool, msg); /* the pool is full */
}

size_t ax_msg_pool_trim(ax_msg_pool_t *pool, size_t keep)
{
    ax_msg_link_t *freed = NULL, *l;
    size_t n = 0, total;

    if (pool == NULL)
        return 0;
    /* The global list first, then the stripes, each under its own lock
     * (never two at once: puts take a stripe's, then the global one). */
    total = ax_msg_pool_count(pool);
    ck_spinlock_lock(&pool->glock);
    while (total > keep && (l = (ax_msg_link_t *)gpop_one(pool)) != NULL) {
        total--;
        l->next = freed;
        freed = l;
        n++;
    }
    ck_spinlock_unlock(&pool->glock);
    for (unsigned i = 0; i < pool->nstripes && total > keep; i++) {
        struct stripe *s = &pool->stripes[i];

        ck_spinlock_lock(&s->lock);
        while (total > keep && (l = pop(&s->head)) != NULL) {
            s->count--;
            total--;
            l->next = freed;
            freed = l;
            n++;
        }
        ck_spinlock_unlock(&s->lock);
    }
    discard_list(pool, freed);
    return n;
}

size_t ax_msg_pool_count(ax_msg_pool_t *pool)
{
    size_t n;

    /* Each count under its own lock (they are written under it with plain
     * stores): exact per list, an estimate for the whole while other
     * threads put and get. */
    ck_spinlock_lock(&pool->glock);
    n = pool->gcount;
    ck_spinlock_unlock(&pool->glock);
    for (unsigned i = 0; i < pool->nstripes; i++) {
        ck_spinlock_lock(&pool->stripes[i].lock);
        n += pool->stripes[i].count;
        ck_spinlock_unlock(&pool->stripes[i].lock);
    }
    return n;
}
