/* The timer calls actors make, and each actor's list of its timers. */
#include <stdlib.h>

#include "actor/actor_run.h"
#include "actor/system.h"
#include "actor/timer.h"
#include "common/error.h"
#include "common/grow.h"

/*
 * Each actor keeps the ids of its timers, to end them with it. Timers that
 * fired or were cancelled are not looked for and removed one by one (that
 * would cost a scan per timer); the list is pruned when it is full, which
 * keeps the cost per timer constant however many an actor has.
 */
static ax_status_t reserve(ax__cell_t *c)
{
    ax__cell_ext_t *ext = ax__ext(c);
    size_t need;

    if (ext == NULL)
        return AX_ENOMEM;
    need = ext->ntimers + 1;
    if (ext->ntimers == ext->timers_cap && ext->ntimers > 0) {
        size_t kept = 0;

        for (size_t i = 0; i < ext->ntimers; i++)
            if (ax__timer_live(c->sys->timers, ext->timers[i]))
                ext->timers[kept++] = ext->timers[i];
        ext->ntimers = kept;
        /* Still more than half live: double, so the next prune is as far
         * away as this one was. */
        need = kept > ext->timers_cap / 2 ? 2 * ext->timers_cap : kept + 1;
    }
    if (!ax__grow(&ext->timers, &ext->timers_cap, need, sizeof(uint64_t), 4))
        return ax__error(AX_ENOMEM, "timer: out of memory");
    return AX_OK;
}

void ax__end_timers(ax__cell_t *c)
{
    ax__cell_ext_t *ext = c->ext;

    for (size_t i = 0; ext != NULL && i < ext->ntimers; i++)
        ax__timer_cancel(c->sys->timers, ext->timers[i]);
    if (ext != NULL)
        ext->ntimers = 0;
}

static ax_status_t schedule(ax_actor_t *self, uint64_t delay_ns, uint64_t period_ns, ax_msg_t **msg,
                            ax_timer_t *timer)
{
    ax__cell_t *c = ax__cell(self);
    uint64_t id;
    ax_status_t st;

    if (self == NULL || msg == NULL || *msg == NULL)
        return ax__error(AX_EINVAL, "schedule: %s", self == NULL ? "NULL actor" : "no message (msg or *msg is NULL)");
    st = ax__check_self(self, "schedule");
    if (st != AX_OK)
        return st;
    if (ck_pr_load_32(&c->sys->shutdown)) /* a hint: the wheel refuses later */
        return ax__error(AX_ESHUTDOWN, "schedule: the system is shutting down");
    st = reserve(c);
    if (st == AX_OK)
        st = ax__timer_user(c->sys->timers, ax__now_ns() + delay_ns, period_ns, ax_self(self), msg, &id);
    if (st != AX_OK)
        return st;
    c->ext->timers[c->ext->ntimers++] = id;
    if (timer != NULL)
        *timer = id;
    return AX_OK;
}

ax_status_t ax_schedule_once(ax_actor_t *self, uint64_t delay_ns, ax_msg_t **msg, ax_timer_t *timer)
{
    return schedule(self, delay_ns, 0, msg, timer);
}

ax_status_t ax_schedule_periodic(ax_actor_t *self, uint64_t delay_ns, uint64_t period_ns,
                                 ax_msg_t **msg, ax_timer_t *timer)
{
    if (period_ns == 0)
        return ax__error(AX_EINVAL, "schedule_periodic: a period of 0");
    return schedule(self, delay_ns, period_ns, msg, timer);
}

ax_status_t ax_cancel_timer(ax_actor_t *self, ax_timer_t timer)
{
    ax__cell_t *c = ax__cell(self);
    ax_status_t st;

    if (self == NULL || timer == 0)
        return ax__error(AX_EINVAL, "cancel_timer: NULL actor or timer 0");
    st = ax__check_self(self, "cancel_timer");
    if (st != AX_OK)
        return st;
    /* The id stays in self's list until the list is next pruned. */
    return ax__timer_cancel(c->sys->timers, timer);
}
