/*
 * Internal: a bounds check for msgpack from untrusted peers.
 *
 * msgpack-c's unpacker reserves room for every element an array or map
 * header declares before it reads them, so five bytes declaring 2^32
 * elements make it allocate gigabytes. This walk reads only the headers
 * and refuses any container that declares more elements than bytes are
 * left (each element takes at least one), any length that runs past the
 * end, and nesting deeper than max_depth. It decodes nothing; msgpack-c
 * does that once the input has passed.
 */
#ifndef AXON_SERIAL_MPCHECK_H
#define AXON_SERIAL_MPCHECK_H

#include <stddef.h>

#include "axon/status.h"

/* msgpack-c's unpacker nests at most 32 deep: accepting more would pass
 * input it then refuses. */
#define AX__MSGPACK_MAX_DEPTH 32

/* Check the msgpack objects in data[0, len): AX_OK, or AX_EPROTO with a
 * detail. Trailing bytes after complete objects are allowed (an envelope
 * is followed by its payload). */
ax_status_t ax__msgpack_check(const void *data, size_t len, size_t objects);

/* As ax__msgpack_check, and *consumed receives how many bytes the objects
 * span. */
ax_status_t ax__msgpack_span(const void *data, size_t len, size_t objects, size_t *consumed);

#endif
