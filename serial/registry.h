/* Internal: a system's serialiser registry (id -> type), ck_ht under a
 * mutex. The actor module owns one per system and exposes it. */
#ifndef AXON_SERIAL_REGISTRY_H
#define AXON_SERIAL_REGISTRY_H

#include <pthread.h>

#include "common/ax_atomic.h"

#include <ck_ht.h>

#include "axon/message.h"

typedef struct ax__ser_registry_s {
    pthread_mutex_t lock;
    ck_ht_t by_id;
} ax__ser_registry_t;

/* An empty registry with the built-in types registered. */
ax_status_t ax__ser_registry_init(ax__ser_registry_t *r);
void ax__ser_registry_destroy(ax__ser_registry_t *r);

/* AX_EINVAL for a type that cannot serialise (id 0, a missing function),
 * AX_EEXIST when another type has the id. Registering the same type again
 * is AX_OK. */
ax_status_t ax__ser_register(ax__ser_registry_t *r, const ax_msg_type_t *type);

/* The type registered for id, or NULL. */
const ax_msg_type_t *ax__ser_lookup(ax__ser_registry_t *r, uint64_t id);

#endif
