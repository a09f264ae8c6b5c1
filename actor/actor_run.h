/* Internal to actor/: running an actor, and what the run loop needs. */
#ifndef AXON_ACTOR_RUN_H
#define AXON_ACTOR_RUN_H

#include "actor/sched.h"

/* Run c for up to `throughput` messages on w. true when c must be run
 * again (it stays scheduled); false when it went idle or ended. */
bool ax__cell_run(ax__worker_t *w, ax__cell_t *c);

/* Stop every live actor of sys (shutdown). */
void ax__stop_all(ax_system_t *sys);

/* Release the messages left in the mailboxes of ended or free cells
 * (system destroy; no other thread runs). */
void ax__drain_all(ax_system_t *sys);

#endif
