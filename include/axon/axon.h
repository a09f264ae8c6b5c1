/* axon/axon.h: the whole public API. */
#ifndef AXON_AXON_H
#define AXON_AXON_H

#include "axon/status.h"
#include "axon/buffers.h"
#include "axon/message.h"
#include "axon/config.h"
#include "axon/serial.h"
#include "axon/actor.h"
#include "axon/net.h"
#include "axon/metrics.h"

#endif
