/*
 * axon/axon.h: the whole public API.
 *
 * Which headers include <msgpack.h> (and with it the socket headers, whose
 * names such as recv and send then clash with a program's own):
 * axon/serial.h, axon/net.h, and so this one. A program of local actors
 * needs only axon/actor.h (which brings axon/message.h, axon/buffers.h and
 * axon/status.h) and axon/config.h: none of them includes msgpack.
 */
#ifndef AXON_AXON_H
#define AXON_AXON_H

#include "axon/status.h"
#include "axon/buffers.h"
#include "axon/message.h"
#include "axon/config.h"
#include "axon/serial.h"
#include "axon/actor.h"
#include "axon/net.h"
#include "axon/coro.h"
#include "axon/metrics.h"

#endif
