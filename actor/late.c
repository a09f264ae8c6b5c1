/*
 * Late actors: the runtime's own actors that must outlive the user's at
 * shutdown. The network dispatcher (tier 1) still serialises what user
 * actors send from on_stop; the dead-letter actor (tier 2) still receives
 * what the dispatcher cannot send. Shutdown stops every other actor
 * first; once only late actors are alive, tier 1 is stopped, and once
 * only tier 2 is left, tier 2.
 *
 * Counting. late[t] counts the live actors of tier t. A late actor's
 * count goes down before it is counted as ended (ax__late_ended, then
 * ax__count_ended in ax__end_actor), so the late counts never exceed the
 * late actors alive. A reader that loads ax__alive, at least the count
 * alive when it read `created`, and then the late counts sees them equal
 * only when no user actor was left at that read.
 */
#include "actor/actor_run.h"
#include "actor/system.h"

static const uint32_t tier_flag[AX__LATE_TIERS] = {AX__L_LATE1, AX__L_LATE2};

/* Take c's late flag; true for the one caller that took it. */
static bool take_flag(ax__cell_t *c, unsigned tier)
{
    uint32_t f;

    /* A CAS loop (a full barrier): the marker and the ending race for it. */
    do {
        f = ck_pr_load_32(&c->lflags);
        if (!(f & tier_flag[tier]))
            return false;
    } while (!ck_pr_cas_32(&c->lflags, f, f & ~tier_flag[tier]));
    return true;
}

void ax__late_mark(ax_ref_t ref, unsigned tier)
{
    ax__cell_t *c = ref.target;
    uint64_t w;

    if (!ax__ref_is(ref, AX__REF_LOCAL) || tier >= AX__LATE_TIERS)
        return;
    /* A first look (relaxed): the or's barrier and the re-read below
     * settle a race with the ending. */
    w = ck_pr_load_64(&c->word);
    if ((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED) ||
        (ck_pr_load_32(&c->lflags) & (AX__L_LATE1 | AX__L_LATE2)))
        return;
    /* Counted before the flag is visible: never below the flags set. */
    ck_pr_inc_64(&c->sys->late[tier]);
    ck_pr_or_32(&c->lflags, tier_flag[tier]);
    /* Full barrier (the or), paired with the one in ax__end_actor: if
     * the actor ended meanwhile and missed our flag, we take it back. */
    w = ck_pr_load_64(&c->word);
    if (((w >> AX__W_ID_SHIFT) != ref.id || (w & AX__W_ENDED)) && take_flag(c, tier))
        ck_pr_dec_64(&c->sys->late[tier]);
}

void ax__late_ended(ax__cell_t *c)
{
    for (unsigned t = 0; t < AX__LATE_TIERS; t++)
        if (take_flag(c, t))
            ck_pr_dec_64(&c->sys->late[t]); /* before it counts as ended: see above */
}

bool ax__late_skip(const ax__cell_t *c)
{
    /* Relaxed: only the flag's value counts; a mark that races with the
     * shutdown asking here is a race no ordering would settle. */
    return (ck_pr_load_32(&c->lflags) & (AX__L_LATE1 | AX__L_LATE2)) != 0;
}

struct stop_tier {
    uint32_t flag;
};

static void stop_tier(ax__cell_t *c, void *arg)
{
    /* A snapshot (relaxed): ax_stop's CAS checks the id again. */
    uint64_t w = ck_pr_load_64(&c->word);

    if (w != 0 && !(w & AX__W_ENDED) && (ck_pr_load_32(&c->lflags) & ((struct stop_tier *)arg)->flag))
        ax_stop((ax_ref_t){c, w >> AX__W_ID_SHIFT});
}

void ax__late_check(ax_system_t *sys)
{
    uint64_t alive, rest = 0;

    /* Relaxed: both callers set the flag or saw it set before calling. */
    if (!ck_pr_load_32(&sys->shutdown))
        return;
    /* alive first, then the late counts: see the note at the top. */
    alive = ax__alive(sys);
    for (unsigned t = AX__LATE_TIERS; t-- > 0;) {
        rest += ck_pr_load_64(&sys->late[t]);
        /* Tier t goes once every actor but the tiers from t up ended. The
         * load only skips a FAS once set; the FAS picks the one stopper. */
        if (alive == rest && !ck_pr_load_32(&sys->late_stopped[t]) &&
            ck_pr_fas_32(&sys->late_stopped[t], 1) == 0)
            ax__slab_each(&sys->slabs, stop_tier, &(struct stop_tier){tier_flag[t]});
    }
}
