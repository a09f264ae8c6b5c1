/*
 * Internal to actor/: ax_config_validate that also says which members broke
 * the rule (offsets in ax_config_t, see buffers/config_check.h), for the
 * loader's file:line: key details. A rule without members (AX__NO_MEMBER)
 * is blamed on the innermost group the text set.
 */
#ifndef AXON_ACTOR_CONFIG_CHECK_H
#define AXON_ACTOR_CONFIG_CHECK_H

#include "axon/config.h"
#include "buffers/config_check.h"

/* Default spins, in microseconds (why these: dispatch/NOTES.md, "Where
 * one round trip's time goes"). */
#define AX__SPIN_US_DEFAULT 20u
#define AX__NET_SPIN_US_DEFAULT 0u
#define AX__NET_RUN_ACTORS_US_DEFAULT 200u
#define AX__NET_SLOW_RUN_US_DEFAULT 1000u

ax_status_t ax__config_check(const ax_config_t *cfg, ax__blame_t *blame);

#endif
