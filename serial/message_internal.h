/* Internal to serial/: shared by message.c and msgpool.c. */
#ifndef AXON_SERIAL_MESSAGE_INTERNAL_H
#define AXON_SERIAL_MESSAGE_INTERNAL_H

#include "axon/message.h"

/* Free a message for good: type->release, or ax_msg_free (no reset: a
 * pool has reset it when it was put). */
void ax__msg_discard(ax_msg_t *msg);

#endif
