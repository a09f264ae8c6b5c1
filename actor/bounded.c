/* Bounded mailboxes: the count, the high-water mark, ax_mailbox_stats. */
#include "actor/bounded.h"
#include "actor/system.h"
#include "common/error.h"

ax_status_t ax__bound_reserve(ax__cell_t *c, const ax_actor_vtable_t *vt, uint64_t id)
{
    uint32_t cap = vt->mailbox_capacity, n;

    do {
        n = ck_pr_load_32(&c->mcount); /* checked again by the CAS */
        if (n >= cap)
            return ax__error(AX_EFULL, "tell: the mailbox of \"%s\" (actor %llu) is full: %u messages",
                             vt->name ? vt->name : "?", (unsigned long long)id, cap);
        /* Full barrier; only the count's own consistency needs it: the
         * message is published later by the push's exchange. */
    } while (!ck_pr_cas_32(&c->mcount, n, n + 1));
    return AX_OK;
}

void ax__bound_unreserve(ax__cell_t *c)
{
    ck_pr_dec_32(&c->mcount); /* a count: any order */
}

void ax__bound_taken_slow(ax__cell_t *c)
{
    /* The value before the decrement is how many waited, this one
     * included; between two takes the count only grows, so the largest of
     * these values is the true high-water mark. */
    uint32_t waited = ck_pr_faa_32(&c->mcount, (uint32_t)-1);
    const ax_actor_vtable_t *vt = c->vt;
    ax__bound_t *b;

    /* A marked message for an earlier, bounded owner of the cell may reach
     * an unbounded one: its place goes back, there is no mark to keep. */
    if (vt == NULL || vt->mailbox_capacity == 0)
        return;
    b = ax__bound(c, vt);
    if (waited > b->high_water)
        ck_pr_store_32(&b->high_water, waited); /* one writer; read by ax_mailbox_stats */
}

ax_status_t ax_mailbox_stats(ax_ref_t ref, ax_mailbox_stats_t *out)
{
    ax__cell_t *c = ref.target;
    const ax_actor_vtable_t *vt;
    ax_mailbox_stats_t s;
    uint64_t w;

    if (out == NULL || !ax__ref_is(ref, AX__REF_LOCAL))
        return ax__error(AX_EINVAL, "mailbox_stats: not a local actor ref");
    w = ck_pr_load_64(&c->word);
    if ((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED))
        return ax__error(AX_ENOTFOUND, "mailbox_stats: actor %llu has ended", (unsigned long long)ref.id);
    /* After the word, as bound_take reads it (actor.c): create stored vt
     * before the id, and two volatile loads keep their order (TSO). */
    vt = ck_pr_load_ptr(&c->vt);
    if (vt->mailbox_capacity == 0)
        return ax__error(AX_ESTATE, "mailbox_stats: \"%s\" has an unbounded mailbox",
                         vt->name ? vt->name : "?");
    s.capacity = vt->mailbox_capacity;
    /* Relaxed: figures to report, nothing read through them; the id check
     * below tells whether they were this actor's. */
    s.queued = ck_pr_load_32(&c->mcount);
    s.high_water = ck_pr_load_32(&ax__bound(c, vt)->high_water);
    if (s.queued > s.high_water) /* the mark is kept as messages leave */
        s.high_water = s.queued;
    /* Still the same actor: the values were its own. */
    w = ck_pr_load_64(&c->word);
    if ((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED))
        return ax__error(AX_ENOTFOUND, "mailbox_stats: actor %llu has ended", (unsigned long long)ref.id);
    *out = s;
    return AX_OK;
}
